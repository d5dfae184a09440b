//! Notification mail to outside recipients, through the organisation's mail relay
//! (`[relay]` in `sealpost.toml`): "Alice at Alpha has sent you a secure message; open this
//! link; Alice will give you the unlock code".
//!
//! - [`Notifier::enqueue`] builds the mail ([`message`]) and queues it durably
//!   ([`NotifyStore`](crate::storage::NotifyStore)), logged as `notify.queued` in the same
//!   commit. Without a relay it refuses with [`NotifyError::NoRelay`]: a recipient who cannot
//!   be told of a message must not be written to, so callers check
//!   [`Notifier::is_configured`] before they accept such a recipient.
//! - [`schedule`] is the delivery core (no I/O, no clock): what an attempt's result means,
//!   when to try again, when to give up.
//! - [`driver`] is the one task that sends (started by `Node::serve`): due notifications in
//!   batches, one connection per batch ([`relay`]), each marked sent in the commit that logs
//!   the relay's `250` to its data, before the next is sent.
//!
//! Delivery is at least once: a crash between the relay's `250` and that commit sends the mail
//! again after restart, with the same bytes and `Message-ID` (SMTP has no way to ask the relay
//! whether it has a mail). Nothing else sends twice: one driver per node, a notification is
//! taken from the queue only by recording its outcome, and the driver does not go on while
//! an outcome is unrecorded.

pub mod bounce;
pub mod dane;
pub mod direct;
pub mod driver;
pub mod external;
pub mod message;
pub mod mta_sts;
pub mod mx;
pub mod relay;
pub mod schedule;
pub mod transit;

use std::sync::Arc;

use crate::config::Config;
use crate::storage::notify::NewNotification;
use crate::storage::{MetaStore, StorageError, Timestamp};

pub use self::bounce::BounceKey;
pub use self::driver::{Driver, Route, Setup};
pub use self::mx::DirectLink;
pub use self::relay::RelayLink;
pub use self::transit::TransitKey;

/// Why a notification could not be queued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    #[error(
        "no way to send outside mail is configured (relay.host, or relay.route = \"direct\", in sealpost.toml), so outside recipients cannot be told of a message"
    )]
    NoRelay,
    #[error("{0:?} is not an address a notification can be sent to")]
    BadRecipient(String),
    #[error("the link to the message must be an http(s) URL without spaces, quotes or brackets")]
    BadLink,
    #[error("{0} notifications are already waiting for the mail relay; try again later")]
    QueueFull(u64),
    #[error("the notification mail could not be built: {0}")]
    Build(String),
    #[error(transparent)]
    Storage(StorageError),
}

impl NotifyError {
    /// The stable code a door reports.
    pub fn code(&self) -> &'static str {
        match self {
            NotifyError::NoRelay => "relay_not_configured",
            NotifyError::BadRecipient(_) => "bad_recipient",
            NotifyError::BadLink => "bad_link",
            NotifyError::QueueFull(_) => "notification_queue_full",
            NotifyError::Build(_) => "internal",
            NotifyError::Storage(StorageError::Overloaded) => "overloaded",
            NotifyError::Storage(_) => "storage",
        }
    }
}

impl From<StorageError> for NotifyError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotificationQueueFull(n) => NotifyError::QueueFull(n),
            e => NotifyError::Storage(e),
        }
    }
}

/// A notification to send: who tells whom of which message, and where it is opened.
#[derive(Clone, Debug)]
pub struct Notification<'a> {
    /// The Sealpost message it announces: its sender gets a notice if the mail fails.
    pub message_id: Option<&'a str>,
    /// The local account that sent the message (the log's actor).
    pub sender: &'a str,
    /// How the sender is named in the mail; their address if this is empty.
    pub sender_name: &'a str,
    /// How their organisation is named; the node's domain if this is empty.
    pub organisation: &'a str,
    pub recipient: &'a str,
    /// Where the recipient opens the message (the pickup page).
    pub link: &'a str,
}

/// Queues notification mail for the driver. Cheap to clone; one per node.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn MetaStore>,
    configured: bool,
    domain: String,
    from: String,
    max_queued: u64,
    wake: tokio::sync::Notify,
}

impl Notifier {
    pub fn new(store: Arc<dyn MetaStore>, config: &Config) -> Notifier {
        let r = &config.relay;
        Notifier {
            inner: Arc::new(Inner {
                store,
                configured: r.is_configured(),
                domain: config.domain.clone(),
                from: if r.from.is_empty() {
                    format!("no-reply@{}", config.domain)
                } else {
                    r.from.clone()
                },
                max_queued: r.max_queued,
                wake: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Whether notification mail can be sent at all (a relay is configured).
    pub fn is_configured(&self) -> bool {
        self.inner.configured
    }

    /// Builds the mail and queues it, durably and logged; the driver is woken to send it.
    /// Returns the notification's ID.
    pub async fn enqueue(&self, n: &Notification<'_>, now: Timestamp) -> Result<i64, NotifyError> {
        let inner = &self.inner;
        let new = self.render(n, now)?;
        let id = inner
            .store
            .enqueue_notification(new, inner.max_queued, now)
            .await?;
        inner.wake.notify_one();
        Ok(id)
    }

    /// Builds the mail of a notification, to be queued in a commit of the caller's (a pickup's
    /// goes with its message: `NewPickup::notification`); [`Notifier::wake`] after it.
    pub fn render(
        &self,
        n: &Notification<'_>,
        now: Timestamp,
    ) -> Result<NewNotification, NotifyError> {
        self.render_as(n, false, now)
    }

    /// [`Notifier::render`] for a guest (docs/pickup.md, "Guests"): the link is the web app's
    /// login, and the mail asks for no unlock code.
    pub fn render_for_guest(
        &self,
        n: &Notification<'_>,
        now: Timestamp,
    ) -> Result<NewNotification, NotifyError> {
        self.render_as(n, true, now)
    }

    fn render_as(
        &self,
        n: &Notification<'_>,
        guest: bool,
        now: Timestamp,
    ) -> Result<NewNotification, NotifyError> {
        let inner = &self.inner;
        if !inner.configured {
            return Err(NotifyError::NoRelay);
        }
        let recipient = crate::normalize_address(n.recipient)
            .ok_or_else(|| NotifyError::BadRecipient(n.recipient.to_owned()))?;
        if !message::is_valid_link(n.link) {
            return Err(NotifyError::BadLink);
        }
        let mail_id = format!("<{}.notify@{}>", crate::new_message_id(), inner.domain);
        let name = message::one_line(n.sender_name);
        let organisation = message::one_line(n.organisation);
        let mail = message::build(&message::Mail {
            from: &inner.from,
            to: &recipient,
            sender_name: if name.is_empty() { n.sender } else { &name },
            organisation: if organisation.is_empty() {
                &inner.domain
            } else {
                &organisation
            },
            link: n.link,
            mail_id: &mail_id,
            date: now,
            guest,
        })?;
        Ok(NewNotification {
            kind: crate::storage::notify::NotificationKind::Notify,
            message_id: n.message_id.map(str::to_owned),
            sender: n.sender.to_owned(),
            recipient,
            from: inner.from.clone(),
            mail_id,
            mail,
            tls: None,
            transit: None,
        })
    }

    /// The queue entry of an enforced-TLS copy (docs/mail.md, mode `tls`): `copy` is the
    /// OpenPGP message to the node's transit key (kept so until sent), the outer headers are
    /// the node's (`From` the sender, `To` the envelope's recipients, `Date`, `Message-ID:
    /// <MESSAGE_ID@DOMAIN>`); the driver adds the entity's `Subject` at send time. It is sent
    /// only over TLS authenticated as `tls` says.
    #[allow(clippy::too_many_arguments)]
    pub fn render_transit(
        &self,
        message_id: &str,
        sender: &str,
        recipient: &str,
        to: &[String],
        date: Timestamp,
        copy: Vec<u8>,
        tls: crate::storage::notify::TlsPolicy,
    ) -> Result<NewNotification, NotifyError> {
        use lettre::message::header;
        let inner = &self.inner;
        if !inner.configured {
            return Err(NotifyError::NoRelay);
        }
        let recipient = crate::normalize_address(recipient)
            .ok_or_else(|| NotifyError::BadRecipient(recipient.to_owned()))?;
        let mailbox = |a: &str| {
            a.parse::<lettre::message::Mailbox>()
                .map_err(|_| NotifyError::BadRecipient(a.to_owned()))
        };
        let mail_id = format!("<{message_id}@{}>", inner.domain);
        let mut h = header::Headers::new();
        h.set(header::From::from(lettre::message::Mailboxes::from(
            mailbox(sender)?,
        )));
        let mut tos = lettre::message::Mailboxes::new();
        for a in to {
            tos.push(mailbox(a)?);
        }
        h.set(header::To::from(tos));
        h.set(header::Date::new(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(date.max(0) as u64),
        ));
        h.set(header::MessageId::from(mail_id.clone()));
        Ok(NewNotification {
            kind: crate::storage::notify::NotificationKind::Tls,
            message_id: Some(message_id.to_owned()),
            sender: sender.to_owned(),
            recipient,
            from: sender.to_owned(),
            mail_id,
            mail: copy,
            tls: Some(tls),
            transit: Some(crate::storage::notify::Transit {
                outer_headers: h.to_string().into_bytes(),
            }),
        })
    }

    /// Most notifications waiting for the relay.
    pub fn max_queued(&self) -> u64 {
        self.inner.max_queued
    }

    /// Tells the driver that something was queued.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    fn store(&self) -> &Arc<dyn MetaStore> {
        &self.inner.store
    }

    /// Resolves when something was queued since the driver last looked.
    async fn woken(&self) {
        self.inner.wake.notified().await
    }
}
