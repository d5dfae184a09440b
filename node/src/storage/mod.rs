//! Storage behind traits: [`MetaStore`] for everything that is rows (accounts, sessions,
//! messages, mailboxes, the transaction log) and [`BlobStore`] for ciphertext too large to keep
//! in a row. The embedded default is SQLite ([`sqlite::SqliteStore`]) and the file system
//! ([`blobs::FsBlobStore`]); an organisation that outgrows one machine implements these two
//! traits for PostgreSQL and an S3-compatible store and changes nothing else.
//!
//! Contract for every write method: when it returns `Ok`, the change is durable (it survives
//! `kill -9` and power loss), and every transaction-log entry it implies was appended in the
//! same commit. A method that returns `Err` changed nothing.

pub mod blobs;
pub mod federation;
pub mod sqlite;
mod sqlite_federation;
pub mod web;

use async_trait::async_trait;
use serde::Serialize;

pub use blobs::{BlobStore, FsBlobStore};
pub use federation::*;
pub use sqlite::{SqliteStore, WriterSettings};
pub use web::WebStore;

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
    #[error("storage is shut down")]
    Closed,
    #[error("database error: {0}")]
    Database(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        StorageError::Database(e.to_string())
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountState {
    /// Authorised by an administrator; waiting for the user to enrol with the invite.
    Invited,
    Active,
    Disabled,
}

impl AccountState {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountState::Invited => "invited",
            AccountState::Active => "active",
            AccountState::Disabled => "disabled",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "invited" => AccountState::Invited,
            "active" => AccountState::Active,
            "disabled" => AccountState::Disabled,
            other => return Err(StorageError::Corrupt(format!("account state {other:?}"))),
        })
    }
}

#[derive(Clone, Debug)]
pub struct Account {
    pub id: i64,
    pub address: String,
    pub name: Option<String>,
    pub is_admin: bool,
    pub state: AccountState,
    pub created_at: Timestamp,
    /// Armored public certificate, with the organisation CA's certification.
    pub cert: Option<String>,
    pub fingerprint: Option<String>,
    /// Armored secret key, encrypted in the client with the password-derived key.
    pub wrapped_key: Option<String>,
    pub kdf_salt: Option<Vec<u8>>,
    /// JSON of `crypto::KdfParams`, chosen by the client at enrolment.
    pub kdf_params: Option<String>,
    /// PHC string: the node's Argon2id hash of the login verifier.
    pub login_hash: Option<String>,
    pub totp_secret: Option<Vec<u8>>,
    pub totp_enabled: bool,
}

/// A certificate ready to store: its armored public form and what it is looked up by.
#[derive(Clone, Debug)]
pub struct CertRecord {
    /// Upper-case hex fingerprint of the primary key.
    pub fingerprint: String,
    pub armored: String,
    /// Lowercased e-mail addresses of its user IDs.
    pub emails: Vec<String>,
    /// Upper-case hex key IDs and fingerprints of the primary key and every subkey.
    pub handles: Vec<String>,
}

/// What a user's client registers at enrolment.
#[derive(Clone, Debug)]
pub struct Enrolment {
    pub cert: CertRecord,
    pub wrapped_key: String,
    pub kdf_salt: Vec<u8>,
    pub kdf_params: String,
    pub login_hash: String,
}

#[derive(Clone, Debug)]
pub struct Session {
    pub account_id: i64,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// One part of a message as it is submitted: the SHA-256 of its ciphertext, and the
/// ciphertext itself when small enough to live in the database.
#[derive(Clone, Debug)]
pub struct NewPart {
    pub sha256: [u8; 32],
    pub size: u64,
    pub inline: Option<Vec<u8>>,
}

#[derive(Clone, Debug)]
pub struct NewMessage {
    pub id: String,
    pub sender_account: i64,
    pub sender_address: String,
    /// The exact envelope bytes the sender signed, and the armored signature.
    pub envelope: String,
    pub signature: String,
    pub size: u64,
    pub parts: Vec<NewPart>,
    /// Local recipients: (account id, address).
    pub recipients: Vec<(i64, String)>,
    /// Recipients at peered organisations, one outbox entry per destination domain.
    pub remote: Vec<RemoteRoute>,
    /// When undelivered remote entries give up (Unix seconds).
    pub remote_expires_at: Timestamp,
    /// Most entries one destination's outbox may hold; beyond it the submission is refused
    /// (`StorageError::Backlog`) rather than letting an unreachable peer fill the disk.
    pub remote_backlog_max: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitOutcome {
    Accepted {
        accepted_at: Timestamp,
    },
    /// The same envelope was already accepted (a client retrying after a lost answer).
    AlreadyAccepted {
        accepted_at: Timestamp,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Folder {
    Inbox,
    Sent,
    Archive,
}

impl Folder {
    pub fn as_str(self) -> &'static str {
        match self {
            Folder::Inbox => "inbox",
            Folder::Sent => "sent",
            Folder::Archive => "archive",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "inbox" => Folder::Inbox,
            "sent" => Folder::Sent,
            "archive" => Folder::Archive,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct MailboxItem {
    pub message_id: String,
    pub folder: Folder,
    pub unread: bool,
    pub from: String,
    pub to: Vec<String>,
    pub received_at: Timestamp,
    pub size: u64,
    pub parts: u32,
    /// For messages in Sent: each remote recipient's delivery state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivery: Vec<DeliveryState>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PartInfo {
    pub index: u32,
    pub size: u64,
    #[serde(serialize_with = "ser_hex")]
    pub sha256: [u8; 32],
}

fn ser_hex<S: serde::Serializer>(v: &[u8; 32], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(v))
}

#[derive(Clone, Debug)]
pub struct StoredMessage {
    pub item: MailboxItem,
    pub envelope: String,
    pub signature: String,
    pub accepted_at: Timestamp,
    pub parts: Vec<PartInfo>,
}

/// Where the ciphertext of one part is.
#[derive(Clone, Debug)]
pub enum PartData {
    Inline(Vec<u8>),
    Blob { sha256: [u8; 32], size: u64 },
}

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

/// Rows: accounts, sessions, messages, mailboxes, and the transaction log; and, through its
/// supertrait [`FederationStore`], peers, the outbox and delivery states.
#[async_trait]
pub trait MetaStore: FederationStore + WebStore + Send + Sync + 'static {
    /// Authorises an account and stores its (hashed) invite, logged as done by `actor`.
    /// Conflict if the address exists.
    #[allow(clippy::too_many_arguments)]
    async fn create_account(
        &self,
        address: &str,
        name: Option<&str>,
        is_admin: bool,
        invite_hash: [u8; 32],
        invite_expires: Timestamp,
        actor: &str,
        now: Timestamp,
    ) -> Result<i64>;
    /// A fresh invite for an account that has not enrolled yet (the old one stops working),
    /// logged as done by `actor`.
    async fn reissue_invite(
        &self,
        address: &str,
        invite_hash: [u8; 32],
        invite_expires: Timestamp,
        actor: &str,
        now: Timestamp,
    ) -> Result<()>;
    async fn account_by_address(&self, address: &str) -> Result<Option<Account>>;
    async fn account_by_id(&self, id: i64) -> Result<Option<Account>>;
    async fn accounts(&self) -> Result<Vec<Account>>;
    async fn set_account_state(
        &self,
        address: &str,
        state: AccountState,
        actor: &str,
        now: Timestamp,
    ) -> Result<()>;
    /// Consumes the invite (unused, unexpired, for `address`) and activates the account with
    /// the enrolment, in one commit. `InviteInvalid` changes nothing.
    async fn enroll(
        &self,
        invite_hash: [u8; 32],
        address: &str,
        enrolment: Enrolment,
        now: Timestamp,
    ) -> Result<()>;
    /// Writes a failed password check of the account to the transaction log, with `detail`
    /// (failures in a row of its source, which source, the delay imposed). Throttling itself
    /// is kept in memory by the API, for any address (`api/throttle.rs`).
    async fn login_failed(
        &self,
        account_id: i64,
        detail: serde_json::Value,
        now: Timestamp,
    ) -> Result<()>;
    /// Opens a session.
    async fn login_succeeded(
        &self,
        account_id: i64,
        token_hash: [u8; 32],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()>;
    async fn session(&self, token_hash: [u8; 32], now: Timestamp) -> Result<Option<Session>>;
    /// The account of a live session, in one look-up (every authenticated request needs it).
    async fn session_account(
        &self,
        token_hash: [u8; 32],
        now: Timestamp,
    ) -> Result<Option<Account>>;
    async fn end_session(&self, token_hash: [u8; 32], now: Timestamp) -> Result<()>;
    /// Records that the TOTP code of time step `step` was used; false if that step (or a later
    /// one) was already used, so that a code is good only once.
    async fn use_totp_step(&self, account_id: i64, step: i64) -> Result<bool>;
    async fn set_totp(&self, account_id: i64, secret: Option<Vec<u8>>, enabled: bool)
    -> Result<()>;
    async fn issue_message_id(
        &self,
        account_id: i64,
        message_id: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()>;
    /// Records that `account_id` uploaded the blob `sha256` (already durable in the BlobStore).
    async fn record_upload(
        &self,
        account_id: i64,
        sha256: [u8; 32],
        size: u64,
        now: Timestamp,
    ) -> Result<()>;
    /// Bytes `account_id` has uploaded and not yet used in a submitted message.
    async fn pending_upload_bytes(&self, account_id: i64) -> Result<u64>;
    /// Forgets uploads made before `before` that no message used, and returns the blobs that
    /// nothing refers to any more (for the caller to remove from the BlobStore).
    async fn expire_uploads(&self, before: Timestamp) -> Result<Vec<[u8; 32]>>;
    /// Size of a blob `account_id` uploaded, if they did.
    async fn uploaded_by(&self, account_id: i64, sha256: [u8; 32]) -> Result<Option<u64>>;
    /// Stores the message once, a mailbox entry per local recipient and one in the sender's
    /// Sent, marks the message ID used, and logs submission and deliveries: one commit.
    async fn submit(&self, message: NewMessage, now: Timestamp) -> Result<SubmitOutcome>;
    async fn mailbox(
        &self,
        account_id: i64,
        folder: Folder,
        limit: u32,
        before: Option<Timestamp>,
    ) -> Result<Vec<MailboxItem>>;
    /// The message as `account_id` sees it (None unless it is in one of their folders).
    async fn message(&self, account_id: i64, message_id: &str) -> Result<Option<StoredMessage>>;
    async fn part(&self, message_id: &str, index: u32) -> Result<Option<PartData>>;
    /// Marks read and logs the read (the evidence of registered mail). Returns whether it was
    /// unread before.
    async fn mark_read(
        &self,
        account_id: i64,
        actor: &str,
        message_id: &str,
        now: Timestamp,
    ) -> Result<bool>;
    async fn move_to(
        &self,
        account_id: i64,
        message_id: &str,
        from: Folder,
        to: Folder,
    ) -> Result<()>;
    /// Removes the message from the user's folders and logs it. Returns the blobs no message
    /// refers to any more (for the caller to remove from the BlobStore).
    async fn delete(
        &self,
        account_id: i64,
        actor: &str,
        message_id: &str,
        now: Timestamp,
    ) -> Result<Vec<[u8; 32]>>;
    /// Appends events that are not part of another write (admin actions, logins refused).
    async fn log(&self, events: Vec<LogEvent>, now: Timestamp) -> Result<()>;
    /// Signs a checkpoint over the newest entry if it is not signed yet.
    async fn checkpoint(&self, now: Timestamp) -> Result<()>;
    async fn verify_log(&self) -> Result<LogReport>;
    /// Stores (inserts or replaces) a certificate, optionally logging why, and bumps the
    /// certificate generation.
    async fn put_cert(
        &self,
        record: CertRecord,
        origin: &str,
        event: Option<LogEvent>,
        now: Timestamp,
    ) -> Result<()>;
    async fn cert_by_fingerprint(&self, fingerprint: &str) -> Result<Option<String>>;
    /// By key ID or fingerprint of the primary key or a subkey (upper-case hex).
    async fn certs_by_handle(&self, handle: &str) -> Result<Vec<String>>;
    async fn certs_by_email(&self, email: &str) -> Result<Vec<String>>;
    /// Certificates with an address containing `text` (case-insensitive), at most `limit`.
    async fn certs_search(&self, text: &str, limit: usize) -> Result<Vec<String>>;
    async fn all_certs(&self) -> Result<Vec<String>>;
    /// Certificates changed after certificate generation `generation`.
    async fn certs_since(&self, generation: u64) -> Result<Vec<String>>;
    /// Changes whenever any certificate changes (in any process sharing the store).
    async fn cert_generation(&self) -> Result<u64>;
}
