//! The outbox's rows: queueing a submitted message's remote recipients, taking an entry out,
//! each recipient's delivery state, and the notice a sender gets when a delivery fails.
//!
//! Written inside the writes of `mail` (submission) and `federation` (receipts, rejections,
//! expiry). It uses `rows` and the log's chain, never a concern module or the store itself.

use rusqlite::{Connection, OptionalExtension, params};

use super::chain::Chain;
use super::rows::json;
use crate::storage::error::{Result, StorageError, Timestamp};
use crate::storage::log::LogEvent;
use crate::storage::mail::{DeliveryState, NewMessage};

/// Sets a recipient's delivery state.
pub(super) fn set_delivery(
    c: &Connection,
    message_id: &str,
    address: &str,
    state: &str,
    reason: Option<&str>,
    now: Timestamp,
) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO deliveries (message_id, address, state, reason, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (message_id, address) DO UPDATE SET state = excluded.state,
             reason = excluded.reason, updated_at = excluded.updated_at",
    )?
    .execute(params![message_id, address, state, reason, now])?;
    Ok(())
}

/// Records a new recipient's first delivery state with how it is reached (`mode`, the wire's
/// word: `remote`, `pickup`, `openpgp`, ...); later changes go through [`set_delivery`].
pub(super) fn start_delivery(
    c: &Connection,
    message_id: &str,
    address: &str,
    mode: &str,
    state: &str,
    now: Timestamp,
) -> Result<()> {
    set_delivery(c, message_id, address, state, None, now)?;
    c.prepare_cached("UPDATE deliveries SET mode = ?3 WHERE message_id = ?1 AND address = ?2")?
        .execute(params![message_id, address, mode])?;
    Ok(())
}

/// One outbox entry for `domain` left the outbox.
pub(super) fn dequeued(c: &Connection, domain: &str) -> Result<()> {
    c.prepare_cached("UPDATE peers SET queued = MAX(queued - 1, 0) WHERE domain = ?1")?
        .execute([domain])?;
    Ok(())
}

/// Removes a message's entry for `domain` from the outbox; its recipients, if it was there.
pub(super) fn take_from_outbox(
    c: &Connection,
    id: &str,
    domain: &str,
) -> Result<Option<Vec<String>>> {
    let recipients: Option<String> = c
        .prepare_cached(
            "DELETE FROM outbox WHERE message_id = ?1 AND domain = ?2 RETURNING recipients",
        )?
        .query_row(params![id, domain], |r| r.get(0))
        .optional()?;
    let Some(recipients) = recipients else {
        return Ok(None);
    };
    dequeued(c, domain)?;
    Ok(Some(serde_json::from_str(&recipients).unwrap_or_default()))
}

/// Tells the sender of `message_id` that it did not reach `addresses`.
pub(super) fn notify_failure(
    c: &Connection,
    message_id: &str,
    addresses: &[String],
    reason: &str,
    now: Timestamp,
) -> Result<()> {
    let account: Option<i64> = c
        .prepare_cached(
            "SELECT a.id FROM accounts a JOIN messages m ON m.sender = a.address WHERE m.id = ?1",
        )?
        .query_row([message_id], |r| r.get(0))
        .optional()?;
    if let Some(account) = account {
        let text = format!(
            "Your message {message_id} was not delivered to {}: {reason}.",
            addresses.join(", ")
        );
        add_notice(c, account, message_id, &text, now)?;
    }
    Ok(())
}

/// Leaves account `account` a notice about `message_id`.
pub(super) fn add_notice(
    c: &Connection,
    account: i64,
    message_id: &str,
    text: &str,
    now: Timestamp,
) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO notices (account_id, message_id, text, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![account, message_id, text, now])?;
    Ok(())
}

/// Queues a submitted message's remote recipients (called inside the submission's write).
pub(super) fn enqueue_remote(
    c: &Connection,
    chain: &mut Chain,
    m: &NewMessage,
    now: Timestamp,
) -> Result<()> {
    for route in &m.remote {
        let waiting: i64 = c
            .prepare_cached("SELECT queued FROM peers WHERE domain = ?1")?
            .query_row([&route.domain], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        if waiting as u64 >= m.remote_backlog_max {
            return Err(StorageError::Backlog(waiting as u64, route.domain.clone()));
        }
        c.prepare_cached("UPDATE peers SET queued = queued + 1 WHERE domain = ?1")?
            .execute([&route.domain])?;
        c.prepare_cached(
            "INSERT INTO outbox (message_id, domain, recipients, queued_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            m.id,
            route.domain,
            json(&route.addresses),
            now,
            m.remote_expires_at
        ])?;
        for a in &route.addresses {
            start_delivery(c, &m.id, a, "remote", "queued", now)?;
        }
        chain.append(
            c,
            now,
            &LogEvent::new("federation.queued", &m.sender_address, &m.id)
                .with(serde_json::json!({ "domain": route.domain, "to": route.addresses })),
        )?;
    }
    Ok(())
}

/// Delivery states of the given messages, for mailbox listings.
pub(super) fn deliveries_of(c: &Connection, message_id: &str) -> Result<Vec<DeliveryState>> {
    Ok(c.prepare_cached(
        "SELECT address, state, reason, updated_at, mode FROM deliveries WHERE message_id = ?1
             ORDER BY address",
    )?
    .query_map([message_id], |r| {
        Ok(DeliveryState {
            address: r.get(0)?,
            mode: r
                .get::<_, Option<String>>(4)?
                .and_then(|m| sealpost_proto::DeliveryMode::parse(&m)),
            state: r.get(1)?,
            reason: r.get(2)?,
            updated_at: r.get(3)?,
        })
    })?
    .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// A notification about `message_id` to `recipient` was sent (`failed`: `None`) or failed: if
/// it announced a pickup, the pickup's delivery state follows, unless the recipient has got
/// further already (called inside the notification's write).
pub(super) fn pickup_notified(
    c: &Connection,
    chain: &mut Chain,
    message_id: &str,
    recipient: &str,
    failed: Option<&str>,
    now: Timestamp,
) -> Result<()> {
    let is_pickup: bool = c
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM pickups WHERE message_id = ?1 AND address = ?2)",
        )?
        .query_row(params![message_id, recipient], |r| r.get(0))?;
    if !is_pickup {
        return Ok(());
    }
    let current: Option<String> = c
        .prepare_cached("SELECT state FROM deliveries WHERE message_id = ?1 AND address = ?2")?
        .query_row(params![message_id, recipient], |r| r.get(0))
        .optional()?;
    let kind = match failed {
        None => {
            if current.as_deref() == Some("pickup") {
                set_delivery(c, message_id, recipient, "notified", None, now)?;
            }
            "pickup.notified"
        }
        Some(reason) => {
            if matches!(current.as_deref(), Some("pickup" | "notified")) {
                set_delivery(c, message_id, recipient, "failed", Some(reason), now)?;
            }
            "pickup.notify_failed"
        }
    };
    chain.append(
        c,
        now,
        &LogEvent::new(kind, "node", message_id).with(serde_json::json!({ "pickup": recipient })),
    )
}

/// The mail carrying an external copy of `message_id` to `recipient` was accepted by the next
/// hop (`Ok(answer)`) or given up (`Err(reason)`): the recipient's delivery state follows
/// (`delivered` with the answer, `failed` with the reason), logged (called inside the
/// notification's write).
pub(super) fn external_sent(
    c: &Connection,
    chain: &mut Chain,
    message_id: &str,
    recipient: &str,
    outcome: std::result::Result<&str, &str>,
    now: Timestamp,
) -> Result<()> {
    let (state, said, kind) = match outcome {
        Ok(answer) => ("delivered", answer, "external.delivered"),
        Err(reason) => ("failed", reason, "external.failed"),
    };
    set_delivery(c, message_id, recipient, state, Some(said), now)?;
    chain.append(
        c,
        now,
        &LogEvent::new(kind, "node", message_id)
            .with(serde_json::json!({ "to": recipient, "answer": said })),
    )
}
