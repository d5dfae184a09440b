//! Messages and mailboxes: what a submission stores, what a reader sees, uploads of large
//! parts, and [`MailStore`].
//!
//! Holds the trait and what it speaks in; the remote side of a message (its routes and each
//! recipient's delivery state) is named here because submission and listings carry it, and
//! it must not depend on the federation module (which depends on this one).

use async_trait::async_trait;
use serde::Serialize;

use super::error::{Result, Timestamp};

/// What a reader sees of a mailbox is the wire's (`sealpost-proto`): storage speaks it.
pub use sealpost_proto::{DeliveryState, Folder, MailboxItem};

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
    /// Outside recipients reached by pickup (docs/pickup.md), each with its notification.
    pub pickups: Vec<super::pickup::NewPickup>,
    /// Notification mail to guest recipients (docs/pickup.md, "Guests"), queued in this commit.
    pub notifications: Vec<super::notify::NewNotification>,
    /// Most notifications waiting for the relay (`relay.max_queued`).
    pub notify_max_queued: u64,
    /// Outside recipients reached by mail (docs/mail.md): each external copy, kept with the
    /// message, and its mail, queued in this commit.
    pub external: Vec<NewExternal>,
    /// A message the submission gateway sealed (docs/mail.md): its `Arrival` (JSON), with no
    /// signed envelope (empty envelope and signature); `None` for a client's submission.
    pub arrival: Option<String>,
    /// Its evidence records (docs/evidence.md), kept in the same commit; none for a replay.
    pub evidence: Vec<super::evidence::NewEvidence>,
}

/// An outside recipient reached by mail: the external copy the sender made, as the signed
/// envelope names it, and the mail that carries it (queued with the message).
#[derive(Clone, Debug)]
pub struct NewExternal {
    pub address: String,
    pub mode: sealpost_proto::DeliveryMode,
    pub sha256: [u8; 32],
    pub copy: Vec<u8>,
    pub mail: super::notify::NewNotification,
    /// The copy was the sender's upload: the upload is used up (and its file unlinked) by
    /// the submission.
    pub uploaded: bool,
}

/// One recipient's copy of a mail that came in over SMTP.
#[derive(Clone, Debug)]
pub struct SmtpMail {
    /// A new message ID (`new_message_id`).
    pub id: String,
    /// Who it says it is from (the `From` address, else the envelope sender), for listings.
    pub sender: String,
    /// The recipient: account and address.
    pub recipient: (i64, String),
    /// Part 0: an OpenPGP message to the recipient.
    pub part: NewPart,
    /// How it arrived (`proto::Arrival` as JSON).
    pub arrival: String,
    /// The message of ours it answers, if it went to `sender`.
    pub in_reply_to: Option<String>,
    /// Kept as it came without the organisation's compliance key: it waits for the user's
    /// client to add the compliance session-key packet (docs/compliance.md, "Waiting copies").
    pub compliance_pending: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitOutcome {
    Accepted {
        accepted_at: Timestamp,
        /// Blob files the submission used up (uploaded external copies, now in the queued
        /// mail): the caller removes them from the BlobStore after the commit.
        unlinked: Vec<[u8; 32]>,
    },
    /// The same envelope was already accepted (a client retrying after a lost answer).
    AlreadyAccepted { accepted_at: Timestamp },
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
    /// The sender's key as kept with the message: a pickup reply's pickup key (users' keys
    /// are looked up where they live).
    pub sender_cert: Option<String>,
}

/// Where the ciphertext of one part is.
#[derive(Clone, Debug)]
pub enum PartData {
    Inline(Vec<u8>),
    Blob { sha256: [u8; 32], size: u64 },
}

/// The recipients of one message at one peered organisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteRoute {
    pub domain: String,
    pub addresses: Vec<String>,
}

/// Messages: issued message IDs, uploads, submission, mailboxes, parts, read/move/delete.
#[async_trait]
pub trait MailStore: Send + Sync + 'static {
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
    /// Stores mail that came in over SMTP: per recipient a message of its own (its one part
    /// encrypted to that recipient) in their inbox, with the log entries; one commit.
    async fn receive_smtp(&self, mails: Vec<SmtpMail>, now: Timestamp) -> Result<()>;
    /// Whether `message_id` is a message sent from this node (not one that came in over SMTP)
    /// with `address` among its recipients.
    async fn sent_to(&self, message_id: &str, address: &str) -> Result<bool>;
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
    /// Removes the message from the user's folders and logs it. With `retain_until` (a
    /// compliance copy: `service::retention`), the message itself stays until then, for the
    /// expiry sweep. Returns the blobs no message refers to any more (for the caller to remove
    /// from the BlobStore).
    async fn delete(
        &self,
        account_id: i64,
        actor: &str,
        message_id: &str,
        retain_until: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Vec<[u8; 32]>>;
}
