//! [`NotifyStore`] for [`SqliteStore`]: the notification mail queue.
//!
//! Uses the store, `outbox` (a sender's notice; a pickup's delivery state follows its
//! notification) and the log's chain; `mail` queues a pickup's notification through
//! [`insert_notification`] in the submission's commit. Every state
//! change is one write with its log entry, so the log and the queue never disagree: a
//! notification is marked sent in the same commit that logs the relay's `250`.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use super::SqliteStore;
use super::outbox::{add_notice, external_sent, notify_failure, pickup_notified};
use crate::storage::error::{Result, StorageError, Timestamp};
use crate::storage::log::LogEvent;
use crate::storage::notify::{
    DueNotification, NewNotification, NotificationKind, NotificationRecord, NotificationState,
    NotifyOutcome, NotifyStore, TlsPolicy, Transit,
};

const COLUMNS: &str = "id, message_id, sender, recipient, mail_id, state, attempts, \
                       next_attempt_at, last_error, relay_answer, created_at, updated_at, kind";

fn kind_at(r: &rusqlite::Row, i: usize) -> rusqlite::Result<NotificationKind> {
    let kind: String = r.get(i)?;
    NotificationKind::parse(&kind).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown notification kind {kind:?}").into(),
        )
    })
}

fn record_row(r: &rusqlite::Row) -> rusqlite::Result<NotificationRecord> {
    let state: String = r.get(5)?;
    Ok(NotificationRecord {
        id: r.get(0)?,
        kind: kind_at(r, 12)?,
        message_id: r.get(1)?,
        sender: r.get(2)?,
        recipient: r.get(3)?,
        mail_id: r.get(4)?,
        state: NotificationState::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                5,
                rusqlite::types::Type::Text,
                format!("unknown notification state {state:?}").into(),
            )
        })?,
        attempts: r.get(6)?,
        next_attempt_at: r.get(7)?,
        last_error: r.get(8)?,
        relay_answer: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
    })
}

/// The subject of a notification's log entries: the message it announces, else the mail's
/// own Message-ID.
fn log_subject(message_id: &Option<String>, mail_id: &str) -> String {
    message_id.clone().unwrap_or_else(|| mail_id.to_owned())
}

/// Leaves the sender of `message_id` a notice that `recipient` could not be notified.
fn tell_sender(
    c: &Connection,
    sender: &str,
    message_id: &str,
    recipient: &str,
    reason: &str,
    now: Timestamp,
) -> Result<()> {
    let account: Option<i64> = c
        .prepare_cached("SELECT id FROM accounts WHERE address = ?1")?
        .query_row([sender], |r| r.get(0))
        .optional()?;
    if let Some(account) = account {
        let text = format!(
            "{recipient} could not be told of your message {message_id}: the notification mail \
             failed. {reason}"
        );
        add_notice(c, account, message_id, &text, now)?;
    }
    Ok(())
}

/// What a state change of a notification needs to know of its row.
struct Facts {
    message_id: Option<String>,
    recipient: String,
    mail_id: String,
    attempts: u32,
    sender: String,
    kind: NotificationKind,
}

/// The row `id` if it is in `state`.
fn facts_in_state(c: &Connection, id: i64, state: &str) -> Result<Option<Facts>> {
    Ok(c.prepare_cached(
        "SELECT message_id, recipient, mail_id, attempts, sender, kind
             FROM notifications WHERE id = ?1 AND state = ?2",
    )?
    .query_row(params![id, state], |r| {
        Ok(Facts {
            message_id: r.get(0)?,
            recipient: r.get(1)?,
            mail_id: r.get(2)?,
            attempts: r.get(3)?,
            sender: r.get(4)?,
            kind: kind_at(r, 5)?,
        })
    })
    .optional()?)
}

/// What a failed notification means beyond its row: an outside copy's recipient delivery
/// fails and its sender is told; a pickup's notification moves the pickup and tells its sender.
#[allow(clippy::too_many_arguments)]
fn failed_for_sender(
    c: &Connection,
    chain: &mut super::chain::Chain,
    kind: NotificationKind,
    message_id: &Option<String>,
    sender: &str,
    recipient: &str,
    reason: &str,
    now: Timestamp,
) -> Result<()> {
    match message_id {
        Some(message_id) if kind.is_external() => {
            external_sent(c, chain, message_id, recipient, Err(reason), now)?;
            notify_failure(c, message_id, &[recipient.to_owned()], reason, now)?;
        }
        Some(message_id) => {
            tell_sender(c, sender, message_id, recipient, reason, now)?;
            pickup_notified(c, chain, message_id, recipient, Some(reason), now)?;
        }
        None => {}
    }
    Ok(())
}

/// Queues a notification (in the caller's write: a pickup's goes in its message's commit).
pub(super) fn insert_notification(
    c: &Connection,
    chain: &mut super::chain::Chain,
    n: &NewNotification,
    max_queued: u64,
    now: Timestamp,
) -> Result<i64> {
    // Counted on the partial index of queued rows: at most `max_queued` entries.
    let waiting: i64 = c
        .prepare_cached("SELECT COUNT(*) FROM notifications WHERE state = 'queued'")?
        .query_row([], |r| r.get(0))?;
    if waiting as u64 >= max_queued {
        return Err(StorageError::NotificationQueueFull(waiting as u64));
    }
    let id: i64 = c
        .prepare_cached(
            "INSERT INTO notifications (message_id, sender, recipient, mail_from, mail_id,
                 mail, state, next_attempt_at, created_at, updated_at, kind, tls_policy,
                 outer_headers)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?7, ?7, ?8, ?9, ?10) RETURNING id",
        )?
        .query_row(
            params![
                n.message_id,
                n.sender,
                n.recipient,
                n.from,
                n.mail_id,
                n.mail,
                now,
                n.kind.as_str(),
                n.tls.map(TlsPolicy::as_str),
                n.transit.as_ref().map(|t| &t.outer_headers),
            ],
            |r| r.get(0),
        )?;
    chain.append(
        c,
        now,
        &LogEvent::new(
            "notify.queued",
            &n.sender,
            &log_subject(&n.message_id, &n.mail_id),
        )
        .with(json!({
            "notification": id, "to": n.recipient, "mail_id": n.mail_id, "kind": n.kind.as_str(),
            "tls": n.tls.map(TlsPolicy::as_str),
        })),
    )?;
    Ok(id)
}

#[async_trait::async_trait]
impl NotifyStore for SqliteStore {
    async fn enqueue_notification(
        &self,
        n: NewNotification,
        max_queued: u64,
        now: Timestamp,
    ) -> Result<i64> {
        self.write(move |c, chain| insert_notification(c, chain, &n, max_queued, now))
            .await
    }

    async fn due_notifications(
        &self,
        now: Timestamp,
        limit: usize,
        busy_domains: &[String],
    ) -> Result<Vec<DueNotification>> {
        let busy = serde_json::to_string(busy_domains).expect("strings serialise");
        self.read(move |c| {
            // Recipients are stored normalised (domain lowercase), so the domain after the
            // last '@' compares as it is.
            let mut stmt = c.prepare_cached(
                "SELECT id, recipient, mail_from, mail, attempts, created_at, kind, tls_policy,
                        outer_headers
                 FROM notifications
                 WHERE state = 'queued' AND next_attempt_at <= ?1
                   AND substr(recipient, instr(recipient, '@') + 1)
                       NOT IN (SELECT value FROM json_each(?3))
                 ORDER BY next_attempt_at, id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now, limit as i64, busy], |r| {
                let kind = kind_at(r, 6)?;
                let tls: Option<String> = r.get(7)?;
                Ok(DueNotification {
                    id: r.get(0)?,
                    kind,
                    recipient: r.get(1)?,
                    from: r.get(2)?,
                    mail: r.get::<_, Option<Vec<u8>>>(3)?.unwrap_or_default(),
                    attempts: r.get(4)?,
                    created_at: r.get(5)?,
                    tls: tls.as_deref().and_then(TlsPolicy::parse),
                    transit: (kind == NotificationKind::Tls).then(|| Transit {
                        outer_headers: r
                            .get::<_, Option<Vec<u8>>>(8)
                            .ok()
                            .flatten()
                            .unwrap_or_default(),
                    }),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn next_notification_at(&self) -> Result<Option<Timestamp>> {
        self.read_point(|c| {
            Ok(c.prepare_cached(
                "SELECT MIN(next_attempt_at) FROM notifications WHERE state = 'queued'",
            )?
            .query_row([], |r| r.get(0))?)
        })
        .await
    }

    async fn record_notification(
        &self,
        id: i64,
        outcome: NotifyOutcome,
        now: Timestamp,
    ) -> Result<bool> {
        let ends = !matches!(outcome, NotifyOutcome::Retry { .. });
        let recorded = self.write(move |c, chain| {
            let Some(Facts {
                message_id,
                recipient,
                mail_id,
                attempts,
                sender,
                kind,
            }) = facts_in_state(c, id, "queued")?
            else {
                return Ok((false, false));
            };
            let attempts = attempts + 1;
            let subject = log_subject(&message_id, &mail_id);
            let event = match &outcome {
                NotifyOutcome::Sent { answer } => {
                    c.prepare_cached(
                        "UPDATE notifications SET state = 'sent', mail = NULL, outer_headers = NULL,
                             attempts = ?2,
                             last_error = NULL, relay_answer = ?3, updated_at = ?4
                         WHERE id = ?1",
                    )?
                    .execute(params![id, attempts, answer, now])?;
                    match &message_id {
                        Some(message_id) if kind.is_external() => {
                            external_sent(c, chain, message_id, &recipient, Ok(answer), now)?;
                        }
                        Some(message_id) => {
                            pickup_notified(c, chain, message_id, &recipient, None, now)?;
                        }
                        None => {}
                    }
                    LogEvent::new("notify.sent", "node", &subject).with(json!({
                        "notification": id, "to": recipient, "mail_id": mail_id,
                        "attempts": attempts, "relay_answer": answer,
                    }))
                }
                NotifyOutcome::Retry { at, reason } => {
                    c.prepare_cached(
                        "UPDATE notifications SET attempts = ?2, next_attempt_at = ?3,
                             last_error = ?4, updated_at = ?5
                         WHERE id = ?1",
                    )?
                    .execute(params![id, attempts, at, reason, now])?;
                    LogEvent::new("notify.retry", "node", &subject).with(json!({
                        "notification": id, "to": recipient, "attempts": attempts,
                        "next_attempt_at": at, "reason": reason,
                    }))
                }
                NotifyOutcome::Failed { reason } => {
                    c.prepare_cached(
                        "UPDATE notifications SET state = 'failed', mail = NULL, outer_headers = NULL,
                             attempts = ?2,
                             last_error = ?3, updated_at = ?4
                         WHERE id = ?1",
                    )?
                    .execute(params![id, attempts, reason, now])?;
                    failed_for_sender(c, chain, kind, &message_id, &sender, &recipient, reason, now)?;
                    LogEvent::new("notify.failed", "node", &subject).with(json!({
                        "notification": id, "to": recipient, "attempts": attempts,
                        "reason": reason,
                    }))
                }
            };
            chain.append(c, now, &event)?;
            Ok((true, kind == NotificationKind::Tls))
        })
        .await?;
        // An enforced-TLS copy was readable by the node: once it is gone from its row
        // (secure_delete overwrote it), the WAL's older page versions go too.
        if recorded == (true, true) && ends {
            self.truncate_wal().await;
        }
        Ok(recorded.0)
    }

    async fn bounce_notification(&self, id: i64, reason: &str, now: Timestamp) -> Result<bool> {
        let reason = reason.to_owned();
        self.write(move |c, chain| {
            let Some(Facts {
                message_id,
                recipient,
                mail_id,
                sender,
                kind,
                ..
            }) = facts_in_state(c, id, "sent")?
            else {
                return Ok(false);
            };
            c.prepare_cached(
                "UPDATE notifications SET state = 'failed', last_error = ?2, updated_at = ?3
                 WHERE id = ?1",
            )?
            .execute(params![id, reason, now])?;
            failed_for_sender(
                c,
                chain,
                kind,
                &message_id,
                &sender,
                &recipient,
                &reason,
                now,
            )?;
            chain.append(
                c,
                now,
                &LogEvent::new(
                    "notify.bounced",
                    "node",
                    &log_subject(&message_id, &mail_id),
                )
                .with(json!({ "notification": id, "to": recipient, "reason": reason })),
            )?;
            Ok(true)
        })
        .await
    }

    async fn notification(&self, id: i64) -> Result<Option<NotificationRecord>> {
        self.read_point(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM notifications WHERE id = ?1"
            ))?
            .query_row([id], record_row)
            .optional()?)
        })
        .await
    }

    async fn notifications_of(&self, message_id: &str) -> Result<Vec<NotificationRecord>> {
        let message_id = message_id.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM notifications WHERE message_id = ?1 ORDER BY id"
            ))?;
            let rows = stmt.query_map([message_id], record_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::storage::{AccountStore, FederationStore, LogStore};

    fn store(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(
            &dir.path().join("sealpost.db"),
            SigningKey::from_bytes(&[7; 32]),
            super::super::tests::settings(),
        )
        .unwrap()
    }

    /// A store with one account, alice@a.test: its ID.
    async fn store_with_alice(dir: &tempfile::TempDir) -> (SqliteStore, i64) {
        let s = store(dir);
        let alice = s
            .create_account("alice@a.test", None, false, [1; 32], 100, "cli", 0)
            .await
            .unwrap();
        (s, alice)
    }

    fn new(recipient: &str, message_id: Option<&str>) -> NewNotification {
        NewNotification {
            kind: NotificationKind::Notify,
            message_id: message_id.map(str::to_owned),
            sender: "alice@a.test".into(),
            recipient: recipient.into(),
            from: "no-reply@a.test".into(),
            mail_id: format!("<n.{recipient}@a.test>"),
            mail: b"Subject: x\r\n\r\nbody\r\n".to_vec(),
            tls: None,
            transit: None,
        }
    }

    fn log_kinds(dir: &tempfile::TempDir) -> Vec<(String, String, String)> {
        let c = Connection::open(dir.path().join("sealpost.db")).unwrap();
        let mut stmt = c
            .prepare("SELECT kind, subject, detail FROM txlog ORDER BY seq")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
    }

    #[tokio::test]
    async fn queued_notifications_come_due_in_order_and_each_outcome_is_logged_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let a = s
            .enqueue_notification(new("carol@out.test", Some("m1")), 10, 100)
            .await
            .unwrap();
        let b = s
            .enqueue_notification(new("dave@out.test", None), 10, 101)
            .await
            .unwrap();
        assert_eq!(s.next_notification_at().await.unwrap(), Some(100));
        assert!(s.due_notifications(99, 10, &[]).await.unwrap().is_empty());
        let due = s.due_notifications(101, 10, &[]).await.unwrap();
        assert_eq!(due.iter().map(|d| d.id).collect::<Vec<_>>(), [a, b]);
        assert_eq!(due[0].mail, b"Subject: x\r\n\r\nbody\r\n");
        assert_eq!(
            (due[0].from.as_str(), due[0].attempts, due[0].created_at),
            ("no-reply@a.test", 0, 100)
        );
        assert_eq!(s.due_notifications(101, 1, &[]).await.unwrap().len(), 1);

        let retry = NotifyOutcome::Retry {
            at: 160,
            reason: "the relay is down".into(),
        };
        assert!(s.record_notification(a, retry, 102).await.unwrap());
        assert_eq!(s.next_notification_at().await.unwrap(), Some(101));
        let sent = NotifyOutcome::Sent {
            answer: "250 2.0.0 Ok: queued as 1234".into(),
        };
        assert!(s.record_notification(b, sent.clone(), 103).await.unwrap());
        // Recorded once only: a second outcome for a sent notification changes nothing.
        assert!(!s.record_notification(b, sent, 104).await.unwrap());
        assert_eq!(s.next_notification_at().await.unwrap(), Some(160));
        assert_eq!(
            s.due_notifications(200, 10, &[])
                .await
                .unwrap()
                .iter()
                .map(|d| (d.id, d.attempts))
                .collect::<Vec<_>>(),
            [(a, 1)]
        );
        let rb = s.notification(b).await.unwrap().unwrap();
        assert_eq!(rb.state, NotificationState::Sent);
        assert_eq!(rb.attempts, 1);
        assert_eq!(
            rb.relay_answer.as_deref(),
            Some("250 2.0.0 Ok: queued as 1234")
        );
        // The mail itself is gone once sent.
        let c = Connection::open(dir.path().join("sealpost.db")).unwrap();
        let mail: Option<Vec<u8>> = c
            .query_row("SELECT mail FROM notifications WHERE id = ?1", [b], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(mail, None);
        let ra = &s.notifications_of("m1").await.unwrap()[0];
        assert_eq!(
            (
                ra.id,
                ra.state,
                ra.last_error.as_deref(),
                ra.next_attempt_at
            ),
            (a, NotificationState::Queued, Some("the relay is down"), 160)
        );

        let kinds: Vec<_> = log_kinds(&dir)
            .into_iter()
            .map(|(k, subject, _)| (k, subject))
            .collect();
        assert_eq!(
            kinds,
            [
                ("notify.queued".into(), "m1".into()),
                ("notify.queued".into(), "<n.dave@out.test@a.test>".into()),
                ("notify.retry".into(), "m1".into()),
                ("notify.sent".into(), "<n.dave@out.test@a.test>".into()),
            ]
        );
        let report = s.verify_log().await.unwrap();
        assert_eq!((report.entries, report.first_broken), (4, None));
    }

    #[tokio::test]
    async fn due_mail_leaves_out_the_domains_being_delivered_to() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        for r in ["a@slow.test", "b@ok.test", "c@slow.test", "d@other.test"] {
            s.enqueue_notification(new(r, None), 10, 1).await.unwrap();
        }
        let due = |busy: &[&str]| {
            let busy: Vec<String> = busy.iter().map(|b| (*b).to_owned()).collect();
            let s = &s;
            async move {
                s.due_notifications(1, 10, &busy)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|d| d.recipient)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(due(&[]).await.len(), 4);
        assert_eq!(due(&["slow.test"]).await, ["b@ok.test", "d@other.test"]);
        assert_eq!(due(&["slow.test", "ok.test"]).await, ["d@other.test"]);
        // A domain is compared whole, not as a suffix.
        assert_eq!(due(&["test", "low.test"]).await.len(), 4);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_more_and_a_failure_tells_the_sender() {
        let dir = tempfile::tempdir().unwrap();
        let (s, alice) = store_with_alice(&dir).await;
        let a = s
            .enqueue_notification(new("carol@out.test", Some("m1")), 2, 1)
            .await
            .unwrap();
        s.enqueue_notification(new("dave@out.test", Some("m1")), 2, 1)
            .await
            .unwrap();
        let full = s
            .enqueue_notification(new("erin@out.test", Some("m1")), 2, 1)
            .await
            .unwrap_err();
        assert!(
            matches!(full, StorageError::NotificationQueueFull(2)),
            "{full}"
        );
        let reason = "The mail relay refused the recipient: 550 5.1.1 no such user";
        let failed = NotifyOutcome::Failed {
            reason: reason.into(),
        };
        assert!(s.record_notification(a, failed, 5).await.unwrap());
        // One left the queue: room for one more.
        s.enqueue_notification(new("erin@out.test", Some("m1")), 2, 6)
            .await
            .unwrap();
        let r = s.notification(a).await.unwrap().unwrap();
        assert_eq!(
            (r.state, r.last_error.as_deref()),
            (NotificationState::Failed, Some(reason))
        );
        let notices = s.notices(alice, 10).await.unwrap();
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].message_id.as_deref(), Some("m1"));
        assert!(
            notices[0].text.contains("carol@out.test") && notices[0].text.contains(reason),
            "{}",
            notices[0].text
        );
        let (kind, _, detail) = log_kinds(&dir).pop().unwrap();
        assert_eq!(kind, "notify.queued");
        assert!(detail.contains("erin@out.test"), "{detail}");
        assert!(
            log_kinds(&dir)
                .iter()
                .any(|(k, _, d)| k == "notify.failed" && d.contains("550 5.1.1"))
        );
    }

    #[tokio::test]
    async fn a_bounce_fails_a_sent_notification_once_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (s, alice) = store_with_alice(&dir).await;
        let mut ids = Vec::new();
        for r in ["carol@out.test", "dave@out.test"] {
            ids.push(
                s.enqueue_notification(new(r, Some("m1")), 10, 1)
                    .await
                    .unwrap(),
            );
        }
        let (a, queued) = (ids[0], ids[1]);
        let reason = "The mail server of out.test refused it after accepting: 5.1.1 no such user";
        // Not sent yet: a bounce changes nothing.
        assert!(!s.bounce_notification(queued, reason, 2).await.unwrap());
        let sent = NotifyOutcome::Sent {
            answer: "250 2.0.0 Ok".into(),
        };
        assert!(s.record_notification(a, sent, 2).await.unwrap());
        assert!(s.bounce_notification(a, reason, 3).await.unwrap());
        // A second bounce, or one for a row that does not exist: nothing.
        assert!(!s.bounce_notification(a, "again", 4).await.unwrap());
        assert!(!s.bounce_notification(9999, reason, 4).await.unwrap());
        let r = s.notification(a).await.unwrap().unwrap();
        assert_eq!(
            (r.state, r.last_error.as_deref(), r.updated_at),
            (NotificationState::Failed, Some(reason), 3)
        );
        assert_eq!(
            s.notification(queued).await.unwrap().unwrap().state,
            NotificationState::Queued
        );
        let notices = s.notices(alice, 10).await.unwrap();
        assert_eq!(notices.len(), 1);
        assert!(notices[0].text.contains(reason), "{}", notices[0].text);
        let kinds: Vec<String> = log_kinds(&dir).into_iter().map(|(k, _, _)| k).collect();
        assert_eq!(kinds.iter().filter(|k| *k == "notify.bounced").count(), 1);
        assert_eq!(s.verify_log().await.unwrap().first_broken, None);
    }
}
