//! The durable queue of notification mail to outside recipients ([`NotifyStore`]): what the
//! notification driver (`crate::notify`) sends through the organisation's relay, and what
//! became of each mail.
//!
//! A notification is `queued` until the relay accepts it (`sent`) or the node gives up on it
//! (`failed`); the rendered mail is kept only while it is queued. Same contract as
//! [`MetaStore`](super::MetaStore): a write that returns `Ok` is durable with its
//! transaction-log entries (`notify.queued`, `notify.sent`, `notify.retry`, `notify.failed`);
//! one that returns `Err` changed nothing. It depends only on `error`.
//!
//! The log names the outside recipient's address in clear (`to`), as `federation.queued`
//! names remote recipients: it is the evidence that this address was told of the message,
//! when and with which answer of the relay; the mail's words and link are not logged.

use async_trait::async_trait;

use super::error::{Result, Timestamp};

/// What a queued mail is (docs/mail.md, "SMTP out"): a notification mail, or the mail carrying
/// an outside recipient's external copy in one of the mail delivery modes. The driver sends
/// them alike; the outcome of a mode's mail moves the recipient's delivery state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NotificationKind {
    #[default]
    Notify,
    Openpgp,
    Smime,
    Tls,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Notify => "notify",
            NotificationKind::Openpgp => "openpgp",
            NotificationKind::Smime => "smime",
            NotificationKind::Tls => "tls",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            NotificationKind::Notify,
            NotificationKind::Openpgp,
            NotificationKind::Smime,
            NotificationKind::Tls,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Whether this mail carries an external copy (its outcome is the recipient's delivery).
    pub fn is_external(self) -> bool {
        self != NotificationKind::Notify
    }
}

/// A notification to queue: the rendered mail and what it is about.
#[derive(Clone, Debug)]
pub struct NewNotification {
    /// What the mail is.
    pub kind: NotificationKind,
    /// The Sealpost message it announces, if any: the sender is told there if it fails.
    pub message_id: Option<String>,
    /// The local account it is sent for (the log's actor for `notify.queued`).
    pub sender: String,
    /// The outside address it goes to (the envelope's only recipient).
    pub recipient: String,
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The mail's `Message-ID` header, with its angle brackets.
    pub mail_id: String,
    /// The whole mail, headers and body, as sent; for a [`Transit`] copy, the OpenPGP
    /// message to the node's transit key.
    pub mail: Vec<u8>,
    /// How the recipient's mail server must authenticate: `None` for opportunistic STARTTLS.
    pub tls: Option<TlsPolicy>,
    /// An enforced-TLS copy: `mail` is encrypted to the node's transit key.
    pub transit: Option<Transit>,
}

/// What the node adds to an enforced-TLS copy at send time (docs/mail.md, "The outer mail").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transit {
    /// The outer header block without `Subject` (`From`, `To`, `Date`, `Message-ID`, …),
    /// each line ending in CRLF.
    pub outer_headers: Vec<u8>,
}

/// A queued notification that is due, as the driver sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueNotification {
    pub id: i64,
    pub kind: NotificationKind,
    pub recipient: String,
    /// The mail's sender (its `From`); the envelope sender is the row's bounce address
    /// (`notify::bounce`).
    pub from: String,
    pub mail: Vec<u8>,
    pub tls: Option<TlsPolicy>,
    pub transit: Option<Transit>,
    /// Attempts made so far.
    pub attempts: u32,
    pub created_at: Timestamp,
}

/// How a domain's mail server must prove itself before mail goes to it.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TlsPolicy {
    /// The domain's MTA-STS policy (RFC 8461) must exist in mode `enforce`, list the MX, and
    /// the MX's certificate must be valid for its name.
    MtaSts,
    /// DANE (RFC 7672): the MX hosts' DNSSEC-signed TLSA records, asked of the validating
    /// `[relay] resolver`, must match the certificate chain (`notify/dane.rs`).
    Dane,
    /// The admin's word: STARTTLS with a certificate valid for the MX host name.
    Pinned,
}

impl TlsPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsPolicy::MtaSts => "mta-sts",
            TlsPolicy::Dane => "dane",
            TlsPolicy::Pinned => "pinned",
        }
    }

    pub fn parse(s: &str) -> Option<TlsPolicy> {
        match s {
            "mta-sts" => Some(TlsPolicy::MtaSts),
            "dane" => Some(TlsPolicy::Dane),
            "pinned" => Some(TlsPolicy::Pinned),
            _ => None,
        }
    }
}

/// `queued`, `sent` or `failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationState {
    Queued,
    Sent,
    Failed,
}

impl NotificationState {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationState::Queued => "queued",
            NotificationState::Sent => "sent",
            NotificationState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(NotificationState::Queued),
            "sent" => Some(NotificationState::Sent),
            "failed" => Some(NotificationState::Failed),
            _ => None,
        }
    }
}

/// One notification as the sender's status and the admin see it (never the mail itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationRecord {
    pub id: i64,
    pub kind: NotificationKind,
    pub message_id: Option<String>,
    pub sender: String,
    pub recipient: String,
    pub mail_id: String,
    pub state: NotificationState,
    pub attempts: u32,
    /// When it is next tried (meaningful while queued).
    pub next_attempt_at: Timestamp,
    /// Why the last attempt did not deliver it, in plain words with the relay's answer.
    pub last_error: Option<String>,
    /// The relay's answer that accepted it (`250 …`, usually naming the relay's queue ID).
    pub relay_answer: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What one attempt to send a notification came to, as the delivery core decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifyOutcome {
    /// The relay answered `250` to the end of the data: it has the mail.
    Sent { answer: String },
    /// Try again at `at`.
    Retry { at: Timestamp, reason: String },
    /// Given up: the relay refused it for good, or it stayed undeliverable too long.
    Failed { reason: String },
}

#[async_trait]
pub trait NotifyStore: Send + Sync + 'static {
    /// Queues a notification, due at once, unless `max_queued` are already queued
    /// (`StorageError::NotificationQueueFull`). Returns its ID.
    async fn enqueue_notification(
        &self,
        n: NewNotification,
        max_queued: u64,
        now: Timestamp,
    ) -> Result<i64>;
    /// Queued notifications due at `now`, the longest-due first, at most `limit`, none to a
    /// recipient at one of `busy_domains` (lowercase; those being delivered to already).
    async fn due_notifications(
        &self,
        now: Timestamp,
        limit: usize,
        busy_domains: &[String],
    ) -> Result<Vec<DueNotification>>;
    /// When the next queued notification is due, if any is queued.
    async fn next_notification_at(&self) -> Result<Option<Timestamp>>;
    /// Records an attempt's outcome (counting the attempt) with its log entry, in one commit.
    /// A sent or failed notification loses its mail; a failed one about a message leaves its
    /// sender a notice. `false` if the notification is not queued (nothing changed).
    async fn record_notification(
        &self,
        id: i64,
        outcome: NotifyOutcome,
        now: Timestamp,
    ) -> Result<bool>;
    /// A later bounce (a delivery status notification saying `failed`) for a notification
    /// the relay had taken: it becomes failed with `reason`, as a refusal at SMTP time does
    /// (the recipient's delivery or the pickup's state, the sender's notice, the log), in one
    /// commit. `false` if the notification is not `sent` (queued, or failed already: nothing
    /// changed).
    async fn bounce_notification(&self, id: i64, reason: &str, now: Timestamp) -> Result<bool>;
    async fn notification(&self, id: i64) -> Result<Option<NotificationRecord>>;
    /// The notifications about a message, in the order they were queued.
    async fn notifications_of(&self, message_id: &str) -> Result<Vec<NotificationRecord>>;
}
