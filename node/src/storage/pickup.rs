//! Pickups (docs/pickup.md): what the node keeps for each outside recipient of a message, the
//! pickup sessions opened with the right unlock code, and [`PickupStore`].
//!
//! The node holds no secret that opens a pickup: the hash of the link's token, a slow hash
//! of the unlock code's verifier, and the pickup key locked under the unlock code. Every state
//! change is one write with its log entries (`pickup.*`) and the sender's delivery state for
//! that recipient (`deliveries`). Withdrawal and expiry shred: the locked key, the sender's
//! copy of it, the verifier hash and the sessions are deleted in that commit.

use async_trait::async_trait;

use super::error::{Result, Timestamp};
use super::notify::NewNotification;

/// A pickup as accepted with its message (inside [`NewMessage`](super::NewMessage)).
#[derive(Clone, Debug)]
pub struct NewPickup {
    pub address: String,
    /// SHA-256 of the link's token.
    pub token_hash: [u8; 32],
    /// The pickup key's fingerprint (hex) and public certificate (armored).
    pub fingerprint: String,
    pub cert: String,
    pub locked_key: String,
    pub key_for_sender: String,
    /// Base64 salt and JSON `KdfParams` of the unlock code's derivation.
    pub salt: String,
    pub kdf: String,
    /// The verifier's Argon2id hash (PHC string).
    pub verifier_hash: String,
    pub expires_at: Timestamp,
    /// The notification mail, queued in the same commit (when a relay is configured).
    pub notification: Option<NewNotification>,
    /// The live pickup (by ID) of the same sender and address whose thread this one continues:
    /// its key material (locked key, sender's copy, salt, KDF, verifier hash) is copied in the
    /// commit, so the same unlock code opens both; this value's own are then unused. If that
    /// pickup is no longer open at commit, the submission fails (`Conflict`).
    pub continues: Option<i64>,
}

/// Whether a pickup can still be unlocked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PickupState {
    Open,
    /// Too many wrong unlock codes: only a new code from the sender opens it.
    Locked,
    Expired,
    Withdrawn,
}

impl PickupState {
    pub fn as_str(self) -> &'static str {
        match self {
            PickupState::Open => "open",
            PickupState::Locked => "locked",
            PickupState::Expired => "expired",
            PickupState::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "open" => PickupState::Open,
            "locked" => PickupState::Locked,
            "expired" => PickupState::Expired,
            "withdrawn" => PickupState::Withdrawn,
            _ => return None,
        })
    }
}

/// A pickup as stored. The secret-bearing fields are `None` once shredded.
#[derive(Clone, Debug)]
pub struct PickupRecord {
    pub id: i64,
    pub message_id: String,
    pub address: String,
    pub sender: String,
    pub fingerprint: String,
    pub cert: String,
    pub locked_key: Option<String>,
    pub key_for_sender: Option<String>,
    pub salt: Option<String>,
    pub kdf: Option<String>,
    pub verifier_hash: Option<String>,
    pub state: PickupState,
    pub failures: u32,
    pub opened_at: Option<Timestamp>,
    pub read_at: Option<Timestamp>,
    pub expires_at: Timestamp,
    /// The thread: the ID of its first pickup (the same key and unlock code throughout).
    pub thread: i64,
    /// Replies made through this pickup.
    pub replies: u32,
    pub created_at: Timestamp,
}

/// A pickup the sweep expired, with its message's signed envelope as it was before the
/// expiry (the message itself may go with the pickup).
#[derive(Clone, Debug)]
pub struct ExpiredPickup {
    pub pickup: PickupRecord,
    pub envelope: Option<String>,
}

/// A reply from a pickup session (docs/pickup.md, Replies): one message from the outside
/// address to the pickup's sender, stored with the pickup that authenticated it.
#[derive(Clone, Debug)]
pub struct PickupReply {
    pub pickup_id: i64,
    pub message_id: String,
    /// The outside address (the envelope's `from`).
    pub sender_address: String,
    pub envelope: String,
    pub signature: String,
    pub size: u64,
    pub parts: Vec<super::NewPart>,
    /// The original sender's account and address.
    pub recipient: (i64, String),
    /// Most replies one pickup may make (`pickup.max_replies`).
    pub max_replies: u32,
    /// Its evidence records (docs/evidence.md), kept in the same commit; none for a replay.
    pub evidence: Vec<super::evidence::NewEvidence>,
}

/// What became of a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyOutcome {
    Accepted {
        accepted_at: Timestamp,
    },
    /// The same envelope was already accepted (a retried submission).
    AlreadyAccepted {
        accepted_at: Timestamp,
    },
    /// The pickup has made `max_replies` replies already.
    TooManyReplies,
    /// The pickup is not open any more (locked, expired or withdrawn meanwhile).
    NotOpen(PickupState),
}

/// One message of a pickup thread, as the pickup session lists it.
#[derive(Clone, Debug)]
pub struct ThreadMessage {
    pub message_id: String,
    pub sender: String,
    pub envelope: String,
    pub signature: String,
    pub accepted_at: Timestamp,
    /// Each part's index, size and SHA-256.
    pub parts: Vec<(u32, u64, [u8; 32])>,
    /// A reply from the outside address (else a message of the sender to them).
    pub reply: bool,
}

/// What an unlock attempt came to, as the verifier check decided it.
#[derive(Clone, Debug)]
pub enum Attempt {
    /// A wrong unlock code; the pickup locks at `max_wrong` failures.
    Wrong { max_wrong: u32 },
    /// The right one: a new session.
    Right {
        session_hash: [u8; 32],
        session_expires_at: Timestamp,
    },
}

/// What an attempt changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Wrong; this many are left before it locks (0: it is locked now).
    Wrong {
        attempts_left: u32,
    },
    Unlocked,
    /// The pickup was not open any more when the attempt was recorded (locked, expired or
    /// withdrawn meanwhile): nothing changed.
    NotOpen(PickupState),
}

/// A sender's change to one of their pickups.
#[derive(Clone, Debug)]
pub enum SenderChange {
    /// Withdraw an unread pickup: shredded.
    Withdraw,
    /// A new unlock code for an unread pickup: the same key locked anew, failures back to 0.
    Relock {
        locked_key: String,
        salt: String,
        kdf: String,
        verifier_hash: String,
    },
}

/// What a sender's change came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SenderOutcome {
    /// Done; the blobs no message refers to any more (for the caller to remove).
    Done(Vec<[u8; 32]>),
    /// No such pickup of a message this account sent.
    NotFound,
    /// It was read (or expired, or withdrawn) already: nothing changed.
    NotUnread(String),
}

/// What an upgrade of a pickup's recipient to a guest came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestOutcome {
    /// The guest account, active, with the enrolment's key and login.
    Created { account_id: i64 },
    /// The address already has an account (a guest from an earlier pickup): nothing changed.
    Exists,
    /// The pickup is not open any more (expired, withdrawn, locked meanwhile): nothing changed.
    NotOpen,
}

#[async_trait]
pub trait PickupStore: Send + Sync + 'static {
    async fn pickup_by_token(&self, token_hash: [u8; 32]) -> Result<Option<PickupRecord>>;
    /// The signed envelope, signature and parts (index, size, SHA-256) of a message a pickup
    /// is for.
    async fn pickup_message(
        &self,
        message_id: &str,
    ) -> Result<Option<(String, String, Vec<(u32, u64, [u8; 32])>)>>;
    /// Pickups of a message (for its sender's view).
    async fn pickups_of(&self, message_id: &str) -> Result<Vec<PickupRecord>>;
    /// Records an unlock attempt on pickup `id`, if it is still open, with its log entries.
    async fn pickup_attempt(
        &self,
        id: i64,
        attempt: Attempt,
        now: Timestamp,
    ) -> Result<AttemptOutcome>;
    /// The pickup a live session is for (an open pickup's).
    async fn pickup_session(
        &self,
        session_hash: [u8; 32],
        now: Timestamp,
    ) -> Result<Option<PickupRecord>>;
    /// Marks the pickup read (the first time: logged, the sender's state `read`).
    async fn pickup_read(&self, id: i64, now: Timestamp) -> Result<bool>;
    /// A change by the sender (`sender`: their address) to their message's pickup for
    /// `address`.
    async fn pickup_sender_change(
        &self,
        message_id: &str,
        sender: &str,
        address: &str,
        change: SenderChange,
        now: Timestamp,
    ) -> Result<SenderOutcome>;
    /// Expires (shreds) every open or locked pickup whose time is up at `now`; returns the
    /// blobs no message refers to any more.
    async fn expire_pickups(&self, now: Timestamp) -> Result<(Vec<ExpiredPickup>, Vec<[u8; 32]>)>;
    /// The newest live (open or locked, not yet due) pickup of `sender` for `address`: the
    /// thread a new message to them continues.
    async fn live_thread(
        &self,
        sender: &str,
        address: &str,
        now: Timestamp,
    ) -> Result<Option<PickupRecord>>;
    /// Issues a message ID for a reply through pickup `pickup_id`.
    async fn issue_pickup_message_id(
        &self,
        pickup_id: i64,
        message_id: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()>;
    /// Records that pickup `pickup_id`'s session uploaded blob `sha256` (already durable).
    async fn record_pickup_upload(
        &self,
        pickup_id: i64,
        sha256: [u8; 32],
        size: u64,
        now: Timestamp,
    ) -> Result<()>;
    /// Bytes the pickup's sessions uploaded and no reply used yet.
    async fn pickup_pending_upload_bytes(&self, pickup_id: i64) -> Result<u64>;
    /// Size of a blob the pickup's sessions uploaded, if they did.
    async fn pickup_uploaded(&self, pickup_id: i64, sha256: [u8; 32]) -> Result<Option<u64>>;
    /// Stores a reply in one commit: message ID claimed, message and parts, the recipient's
    /// inbox, the pickup's reply count and the sender's state `replied`, log entries.
    async fn pickup_reply(&self, reply: PickupReply, now: Timestamp) -> Result<ReplyOutcome>;
    /// The messages of a thread (`thread` of `sender` and `address`): the sender's that are
    /// still held, and the replies, oldest first.
    async fn thread_messages(
        &self,
        sender: &str,
        address: &str,
        thread: i64,
    ) -> Result<Vec<ThreadMessage>>;
    /// The recipient of open pickup `id` becomes a guest with `enrolment` (their key, stored
    /// as it came: no CA certification), in one commit with the sender's delivery state
    /// `guest` and the log entry `pickup.guest_created`.
    async fn pickup_upgrade(
        &self,
        id: i64,
        enrolment: super::accounts::Enrolment,
        now: Timestamp,
    ) -> Result<GuestOutcome>;
}
