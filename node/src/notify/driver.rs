//! The one task that sends outside mail: it takes due mail from the queue, groups it by the
//! next hop (through the relay: one group; direct: one group per recipient domain), sends
//! each group in its own task over one connection (at most `relay.parallel_domains` groups
//! at once, so a slow or unreachable domain holds up no other), asks the delivery core
//! ([`schedule`](super::schedule)) what each result means, and records that before the
//! group's next mail is sent. It holds no state of its own: after a restart it carries on
//! from the queue.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Notifier;
use super::bounce::{BounceKey, bounce_address};
use super::mx::DirectLink;
use super::relay::{RelayLink, Session};
use super::schedule::{Attempt, Hop, RetryPolicy, decide};
use super::transit::TransitKey;
use crate::storage::StorageError;
use crate::storage::notify::{DueNotification, NotifyOutcome};

/// The longest the driver sleeps without looking at the queue.
const MAX_IDLE: Duration = Duration::from_secs(30);
/// How long a stopping node waits for the mail in flight.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The group key of everything sent through the relay.
const RELAY: &str = "";

/// Where outside mail goes next.
pub enum Route {
    Relay(RelayLink),
    Direct(Box<DirectLink>),
}

/// What the driver works with.
pub struct Setup {
    pub route: Route,
    pub policy: RetryPolicy,
    pub batch_max: usize,
    pub parallel: usize,
    /// Opens enforced-TLS copies; without it they fail.
    pub transit: Option<TransitKey>,
    /// Every mail's envelope sender is a bounce address of the organisation's `domain` under
    /// this key ([`bounce`](super::bounce)): a later bounce names its row.
    pub bounce_key: BounceKey,
    pub domain: String,
    /// Where sent and failed mail is counted (`deliveries{kind="smtp"}`).
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// The running driver.
pub struct Driver {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Driver {
    /// Starts the node's one outbound mail driver.
    pub fn start(notifier: Notifier, setup: Setup) -> Driver {
        let (stop, stopping) = watch::channel(false);
        let task = tokio::spawn(run(notifier, Arc::new(setup), stopping));
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

/// The group a mail belongs to: its recipient's domain (direct), or the relay.
fn group_of(setup: &Setup, n: &DueNotification) -> String {
    match setup.route {
        Route::Relay(_) => RELAY.to_owned(),
        Route::Direct(_) => n
            .recipient
            .split_once('@')
            .map_or("", |(_, d)| d)
            .to_owned(),
    }
}

async fn run(notifier: Notifier, setup: Arc<Setup>, mut stopping: watch::Receiver<bool>) {
    let store = notifier.store().clone();
    let mut tasks: JoinSet<()> = JoinSet::new();
    // The group each task sends, by task: a task that panicked frees its group too.
    let mut groups_of: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut busy: HashSet<String> = HashSet::new();
    while !*stopping.borrow() {
        while let Some(done) = tasks.try_join_next_with_id() {
            if let Some(g) = groups_of.remove(&task_id(&done)) {
                busy.remove(&g);
            }
        }
        let room = setup.parallel.saturating_sub(busy.len());
        let relay_busy = matches!(setup.route, Route::Relay(_)) && busy.contains(RELAY);
        let mut started = false;
        if room > 0 && !relay_busy {
            let now = crate::now();
            let exclude: Vec<String> = busy.iter().cloned().collect();
            match store
                .due_notifications(now, setup.batch_max, &exclude)
                .await
            {
                Ok(due) => {
                    let mut groups: Vec<(String, Vec<DueNotification>)> = Vec::new();
                    for n in due {
                        let g = group_of(&setup, &n);
                        match groups.iter_mut().find(|(k, _)| *k == g) {
                            Some((_, v)) => v.push(n),
                            None => groups.push((g, vec![n])),
                        }
                    }
                    for (group, due) in groups.into_iter().take(room) {
                        busy.insert(group.clone());
                        started = true;
                        let (notifier, setup, stopping) =
                            (notifier.clone(), setup.clone(), stopping.clone());
                        let g = group.clone();
                        let handle = tasks.spawn(async move {
                            send_group(&notifier, &setup, &g, due, &stopping).await;
                        });
                        groups_of.insert(handle.id(), group);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the outbound mail queue");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        if started {
            continue;
        }
        let next = store.next_notification_at().await.ok().flatten();
        let wait = next.map_or(MAX_IDLE, |at| {
            Duration::from_secs((at - crate::now()).max(0) as u64)
                .clamp(Duration::from_millis(50), MAX_IDLE)
        });
        tokio::select! {
            _ = notifier.woken() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stopping.changed() => {}
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                if let Some(g) = groups_of.remove(&task_id(&done)) {
                busy.remove(&g);
            }
            }
        }
    }
    let _ = tokio::time::timeout(STOP_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
}

fn task_id(done: &Result<(tokio::task::Id, ()), tokio::task::JoinError>) -> tokio::task::Id {
    match done {
        Ok((id, ())) => *id,
        Err(e) => {
            tracing::error!(error = %e, "an outbound mail task ended abnormally");
            e.id()
        }
    }
}

/// Sends one group: through the relay, or to one domain (one connection for each TLS
/// requirement among its mail), recording each outcome before the next mail goes.
async fn send_group(
    notifier: &Notifier,
    setup: &Setup,
    group: &str,
    due: Vec<DueNotification>,
    stopping: &watch::Receiver<bool>,
) {
    let (mut sent, mut retried, mut failed) = (0u32, 0u32, 0u32);
    // Mail with the same TLS requirement shares a connection; the order is kept within each.
    let mut parts: Vec<Vec<DueNotification>> = Vec::new();
    for n in due {
        match parts.iter_mut().find(|p| p[0].tls == n.tls) {
            Some(p) => p.push(n),
            None => parts.push(vec![n]),
        }
    }
    for part in parts {
        let required = part[0].tls;
        let mut session: Option<(Session, Hop)> = None;
        let mut unreachable: Option<(Attempt, Hop)> = None;
        for n in part {
            if *stopping.borrow() {
                return;
            }
            if unreachable.is_none() && !session.as_ref().is_some_and(|(s, _)| s.is_usable()) {
                match connect(setup, group, required).await {
                    Ok(s) => session = Some(s),
                    // The hop cannot be reached now: the rest of the part counts the same
                    // attempt rather than trying again at once.
                    Err(a) => unreachable = Some(a),
                }
            }
            let (attempt, hop) = match (&unreachable, &mut session) {
                (Some((a, hop)), _) => (a.clone(), hop.clone()),
                (None, Some((s, hop))) => (send_one(setup, s, &n).await, hop.clone()),
                (None, None) => unreachable!("connected or unreachable"),
            };
            let outcome = decide(
                &setup.policy,
                &attempt,
                &hop,
                n.attempts,
                n.created_at,
                crate::now(),
            );
            match &outcome {
                NotifyOutcome::Sent { .. } => sent += 1,
                NotifyOutcome::Retry { .. } => retried += 1,
                NotifyOutcome::Failed { .. } => failed += 1,
            }
            tracing::debug!(notification = n.id, ?outcome, "outbound mail attempt");
            let counted = match &outcome {
                NotifyOutcome::Sent { .. } => Some(true),
                NotifyOutcome::Failed { .. } => Some(false),
                NotifyOutcome::Retry { .. } => None,
            };
            if !record(notifier, n.id, outcome).await {
                return;
            }
            match counted {
                Some(true) => {
                    let waited = (crate::now() - n.created_at).max(0) as u64;
                    let took = std::time::Duration::from_secs(waited);
                    setup.metrics.delivered("smtp", 1, Some(took));
                }
                Some(false) => setup.metrics.delivery_failed("smtp"),
                None => {}
            }
        }
        if let Some((s, _)) = session {
            s.quit().await;
        }
        if let Some((a, hop)) = unreachable {
            tracing::warn!(reason = %a.reason_via(&hop), "outbound mail: next hop unreachable");
        }
    }
    tracing::info!(group, sent, retried, failed, "outbound mail handed on");
}

async fn connect(
    setup: &Setup,
    group: &str,
    required: Option<crate::storage::notify::TlsPolicy>,
) -> Result<(Session, Hop), (Attempt, Hop)> {
    match &setup.route {
        Route::Relay(link) => {
            if required.is_some() {
                // Enforced TLS is end to end with the recipient's server: a relay cannot
                // show it, so such mail needs `route = "direct"`.
                return Err((
                    Attempt::Insecure {
                        reason: "this mail must reach its recipient's server over authenticated \
                                 TLS, which the node checks only when it delivers directly \
                                 (relay.route = \"direct\"): not delivered"
                            .into(),
                    },
                    Hop::Relay,
                ));
            }
            link.connect()
                .await
                .map(|s| (s, Hop::Relay))
                .map_err(|a| (a, Hop::Relay))
        }
        Route::Direct(link) => link.connect(group, required).await,
    }
}

/// Sends one mail over `session`; an enforced-TLS copy is decrypted (in memory) first.
async fn send_one(setup: &Setup, session: &mut Session, n: &DueNotification) -> Attempt {
    // The envelope sender names the row (VERP), so that a bounce coming later finds it; the
    // `From` header in the mail stays the row's sender.
    let envelope_from = bounce_address(&setup.bounce_key, &setup.domain, n.id);
    let Some(transit) = &n.transit else {
        return session.send(&envelope_from, &n.recipient, &n.mail).await;
    };
    let opened = match &setup.transit {
        Some(key) => key.outer_mail(&transit.outer_headers, &n.mail),
        None => Err("the node has no transit key".into()),
    };
    match opened {
        Ok(mail) => session.send(&envelope_from, &n.recipient, &mail).await,
        Err(why) => Attempt::Undeliverable {
            reason: format!("The enforced-TLS copy could not be opened: {why}"),
        },
    }
}

/// Records an outcome, trying again until storage takes it: a mail the next hop took must be
/// marked sent before anything else of its group is sent, or it would go again. `false` if
/// storage is shut down (the node is stopping; the mail stays queued).
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
                tracing::warn!(notification = id, error = %e, "could not record an outbound mail's outcome; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}
