//! The service layer's one error type: what went wrong in the caller's terms, with a stable
//! code that every door reports unchanged.

use crate::storage::StorageError;

/// What kind of failure an error is, for a door to choose its answer (an HTTP status, an exit
/// message) without matching every variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed.
    Invalid,
    /// Well-formed, but refused by a rule.
    Refused,
    /// It is larger than this node accepts.
    TooLarge,
    /// It names something that does not exist (or that the actor may not see).
    NotFound,
    /// It contradicts the current state.
    Conflict,
    /// The actor may not do this.
    Forbidden,
    /// The node cannot do it now; try again later.
    Unavailable,
    /// The node failed; the cause is logged, not shown.
    Internal,
}

/// Why a service operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    #[error("{0:?} is not an e-mail address")]
    InvalidAddress(String),
    #[error("this node hosts addresses of {domain} only")]
    WrongDomain { domain: String },
    #[error("the name must be at most {max} printable characters")]
    InvalidName { max: usize },
    #[error("{address} has already enrolled; an invite is only for a new account")]
    AlreadyEnrolled { address: String },
    #[error("no account {address}")]
    UnknownUser { address: String },
    #[error("{address} has not enrolled yet")]
    NotEnrolled { address: String },
    #[error("you cannot disable or enable your own account; ask another administrator")]
    OwnAccount,
    #[error("{0}")]
    InvalidEnvelope(String),
    #[error("name at least one recipient")]
    NoRecipients,
    #[error("at most {max} recipients per message")]
    TooManyRecipients { max: usize },
    #[error("a message has 1 to {max} parts")]
    TooManyParts { max: usize },
    #[error("the message is larger than this node's limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the node's storage failed: {0}")]
    Storage(#[from] StorageError),
    #[error("the node failed: {0}")]
    Internal(String),
}

impl ServiceError {
    /// A stable, machine-readable code (`snake_case`), the same through every door.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::InvalidAddress(_) => "invalid_address",
            ServiceError::WrongDomain { .. } => "wrong_domain",
            ServiceError::InvalidName { .. } => "invalid_name",
            ServiceError::AlreadyEnrolled { .. } => "already_enrolled",
            ServiceError::UnknownUser { .. } => "unknown_user",
            ServiceError::NotEnrolled { .. } => "not_enrolled",
            ServiceError::OwnAccount => "own_account",
            ServiceError::InvalidEnvelope(_) => "invalid_envelope",
            ServiceError::NoRecipients => "no_recipients",
            ServiceError::TooManyRecipients { .. } => "too_many_recipients",
            ServiceError::TooManyParts { .. } => "too_many_parts",
            ServiceError::TooLarge { .. } => "too_large",
            ServiceError::Storage(StorageError::Overloaded) => "overloaded",
            ServiceError::Storage(StorageError::Conflict(_)) => "conflict",
            ServiceError::Storage(StorageError::NotFound(_)) => "not_found",
            ServiceError::Storage(_) | ServiceError::Internal(_) => "internal",
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            ServiceError::InvalidAddress(_)
            | ServiceError::InvalidName { .. }
            | ServiceError::InvalidEnvelope(_)
            | ServiceError::NoRecipients => ErrorKind::Invalid,
            ServiceError::WrongDomain { .. }
            | ServiceError::TooManyRecipients { .. }
            | ServiceError::TooManyParts { .. } => ErrorKind::Refused,
            ServiceError::TooLarge { .. } => ErrorKind::TooLarge,
            ServiceError::UnknownUser { .. } => ErrorKind::NotFound,
            ServiceError::AlreadyEnrolled { .. }
            | ServiceError::NotEnrolled { .. }
            | ServiceError::OwnAccount => ErrorKind::Conflict,
            ServiceError::Storage(StorageError::Overloaded) => ErrorKind::Unavailable,
            ServiceError::Storage(StorageError::Conflict(_)) => ErrorKind::Conflict,
            ServiceError::Storage(StorageError::NotFound(_)) => ErrorKind::NotFound,
            ServiceError::Storage(_) | ServiceError::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Wraps any failure of the node's own machinery (not the caller's mistake).
    pub fn internal(e: impl std::fmt::Display) -> Self {
        ServiceError::Internal(e.to_string())
    }
}
