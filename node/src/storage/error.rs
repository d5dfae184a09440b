//! What every storage call returns: [`StorageError`], [`Result`], and the [`Timestamp`] callers
//! pass in. A leaf: it depends on no other storage module, so each of them may use it.

/// Seconds since the Unix epoch. Storage never reads the clock: callers pass `now`.
pub type Timestamp = i64;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("the invite code is unknown, used or expired")]
    InviteInvalid,
    /// A submission's message ID was never issued to its sender (or was issued to another).
    #[error("the message ID was not issued to this sender")]
    MessageIdNotIssued,
    /// A submission's message ID was issued to its sender but has expired unused.
    #[error("the message ID has expired")]
    MessageIdExpired,
    #[error("storage is overloaded: too many writes waiting")]
    Overloaded,
    #[error("{0} messages are already waiting for the node of {1}")]
    Backlog(u64, String),
    /// Enqueueing a notification found the queue for the mail relay full.
    #[error("{0} notifications are already waiting for the mail relay")]
    NotificationQueueFull(u64),
    #[error("storage is shut down")]
    Closed,
    /// The database (or the machinery around it: the writer thread, a reader task) failed;
    /// what it reported is the source, shown as it was.
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The data disk (or the database's) refused a write for want of space: nothing of the
    /// refused operation was kept, and the next one succeeds once space returns
    /// (docs/operations.md, "Disk full").
    #[error("the node's storage is full")]
    Full,
    #[error("i/o error: {0}")]
    Io(std::io::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            return StorageError::Full;
        }
        StorageError::Database(Box::new(e))
    }
}

impl From<std::io::Error> for StorageError {
    fn from(e: std::io::Error) -> Self {
        if is_out_of_space(&e) {
            return StorageError::Full;
        }
        StorageError::Io(e)
    }
}

/// Whether a write failed for want of space: no space left on the device (`ENOSPC`), or over
/// the owner's disk quota (`EDQUOT`).
pub fn is_out_of_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
