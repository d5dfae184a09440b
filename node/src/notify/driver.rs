//! The one task that sends notification mail: it takes due notifications from the queue in
//! batches of `relay.batch_max`, hands each batch to the relay over one connection, asks the
//! delivery core ([`schedule`](super::schedule)) what each result means, and records that
//! before it sends the next mail. It holds no state of its own: after a restart it carries on
//! from the queue.

use std::time::Duration;

use tokio::sync::watch;

use super::Notifier;
use super::relay::{RelayLink, Session};
use super::schedule::{Attempt, RetryPolicy, decide};
use crate::storage::StorageError;
use crate::storage::notify::{DueNotification, NotifyOutcome};

/// The longest the driver sleeps without looking at the queue.
const MAX_IDLE: Duration = Duration::from_secs(30);
/// How long a stopping node waits for the mail in flight.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The running driver.
pub struct Driver {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Driver {
    /// Starts the node's one notification driver.
    pub fn start(
        notifier: Notifier,
        link: RelayLink,
        policy: RetryPolicy,
        batch_max: usize,
    ) -> Driver {
        let (stop, stopping) = watch::channel(false);
        let task = tokio::spawn(run(notifier, link, policy, batch_max, stopping));
        Driver { stop, task }
    }

    /// Stops after the mail in flight (waiting at most five seconds for it); the rest stays
    /// queued for the next start.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(STOP_GRACE, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

async fn run(
    notifier: Notifier,
    link: RelayLink,
    policy: RetryPolicy,
    batch_max: usize,
    mut stopping: watch::Receiver<bool>,
) {
    let store = notifier.store().clone();
    while !*stopping.borrow() {
        let now = crate::now();
        let due = match store.due_notifications(now, batch_max).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the notification queue");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if due.is_empty() {
            let next = store.next_notification_at().await.ok().flatten();
            let wait = next.map_or(MAX_IDLE, |at| {
                Duration::from_secs((at - crate::now()).max(0) as u64)
                    .clamp(Duration::from_millis(50), MAX_IDLE)
            });
            tokio::select! {
                _ = notifier.woken() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stopping.changed() => {}
            }
            continue;
        }
        send_batch(&notifier, &link, &policy, due, &stopping).await;
    }
}

/// Sends `due` over one connection (a new one only if the relay broke the first off), and
/// records each outcome before the next mail goes.
async fn send_batch(
    notifier: &Notifier,
    link: &RelayLink,
    policy: &RetryPolicy,
    due: Vec<DueNotification>,
    stopping: &watch::Receiver<bool>,
) {
    let (mut sent, mut retried, mut failed) = (0, 0, 0);
    let mut session: Option<Session> = None;
    let mut unreachable: Option<Attempt> = None;
    for n in due {
        if *stopping.borrow() {
            break;
        }
        let attempt = match (&unreachable, &mut session) {
            (Some(a), _) => a.clone(),
            (None, Some(s)) if s.is_usable() => s.send(&n.from, &n.recipient, &n.mail).await,
            (None, _) => match link.connect().await {
                Ok(mut s) => {
                    let a = s.send(&n.from, &n.recipient, &n.mail).await;
                    session = Some(s);
                    a
                }
                Err(a) => {
                    // The relay cannot be reached now: the rest of the batch counts the same
                    // attempt rather than trying again at once.
                    unreachable = Some(a.clone());
                    a
                }
            },
        };
        let outcome = decide(policy, &attempt, n.attempts, n.created_at, crate::now());
        match &outcome {
            NotifyOutcome::Sent { .. } => sent += 1,
            NotifyOutcome::Retry { .. } => retried += 1,
            NotifyOutcome::Failed { .. } => failed += 1,
        }
        tracing::debug!(notification = n.id, ?outcome, "notification attempt");
        if !record(notifier, n.id, outcome).await {
            break;
        }
    }
    if let Some(s) = session {
        s.quit().await;
    }
    match unreachable {
        Some(a) => tracing::warn!(reason = %a.reason(), "mail relay unreachable"),
        None => {
            tracing::info!(
                sent,
                retried,
                failed,
                "notification mail handed to the relay"
            )
        }
    }
}

/// Records an outcome, trying again until storage takes it: a mail the relay took must be
/// marked sent before anything else is sent, or it would go again. `false` if storage is shut
/// down (the node is stopping; the notification stays queued).
async fn record(notifier: &Notifier, id: i64, outcome: NotifyOutcome) -> bool {
    let mut wait = Duration::from_millis(100);
    loop {
        match notifier
            .store()
            .record_notification(id, outcome.clone(), crate::now())
            .await
        {
            Ok(_) => return true,
            Err(StorageError::Closed) => return false,
            Err(e) => {
                tracing::warn!(notification = id, error = %e, "could not record a notification's outcome; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}
