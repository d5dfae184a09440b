//! The transaction log as storage offers it: [`LogEvent`], [`LogReport`] and [`LogStore`].
//!
//! Writes that imply log entries append them themselves, in their own commit; this trait is for
//! events that are no part of another write, checkpoints and verification. It must not depend
//! on any other concern's module.

use async_trait::async_trait;

use super::error::{Result, Timestamp};

/// An event for the transaction log. `detail` never holds a secret or any content.
#[derive(Clone, Debug)]
pub struct LogEvent {
    pub kind: &'static str,
    pub actor: String,
    pub subject: String,
    pub detail: serde_json::Value,
}

impl LogEvent {
    pub fn new(kind: &'static str, actor: &str, subject: &str) -> Self {
        LogEvent {
            kind,
            actor: actor.to_owned(),
            subject: subject.to_owned(),
            detail: serde_json::Value::Null,
        }
    }
    pub fn with(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// The outcome of checking the transaction log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogReport {
    pub entries: u64,
    pub checkpoints: u64,
    /// The first entry (by sequence number) that does not verify, with the reason.
    pub first_broken: Option<(u64, String)>,
}

/// The transaction log: free-standing events, signed checkpoints, verification.
#[async_trait]
pub trait LogStore: Send + Sync + 'static {
    /// Appends events that are not part of another write (admin actions, logins refused).
    async fn log(&self, events: Vec<LogEvent>, now: Timestamp) -> Result<()>;
    /// Signs a checkpoint over the newest entry if it is not signed yet.
    async fn checkpoint(&self, now: Timestamp) -> Result<()>;
    async fn verify_log(&self) -> Result<LogReport>;
    /// The newest checkpoint when it has no time-stamp yet (`timestamp`): a failed stamp is
    /// not retried for its checkpoint, the next one gets it (it covers the earlier entries).
    async fn unstamped_checkpoint(&self) -> Result<Option<CheckpointRef>>;
    /// Stores a checked RFC 3161 token for checkpoint `seq`.
    async fn put_checkpoint_timestamp(
        &self,
        seq: u64,
        token: Vec<u8>,
        gen_time: Timestamp,
    ) -> Result<()>;
    /// The stored token and genTime for checkpoint `seq`.
    async fn checkpoint_timestamp(&self, seq: u64) -> Result<Option<(Vec<u8>, Timestamp)>>;
}

/// A signed checkpoint: what its time-stamp covers (`timestamp::checkpoint_imprint`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointRef {
    pub seq: u64,
    pub hash: [u8; 32],
    pub at: Timestamp,
}
