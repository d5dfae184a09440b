//! [`PickupStore`] for [`SqliteStore`]: pickups, their sessions, and the sender's delivery
//! state of each pickup recipient.
//!
//! Uses the store, `rows` (a shredded pickup may free its message), `outbox` (delivery
//! states) and the log's chain. [`insert_pickups`] is called inside a submission's write
//! (`mail`), so a message and its pickups commit together.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use super::SqliteStore;
use super::chain::Chain;
use super::outbox::{set_delivery, start_delivery};
use super::rows::insert_part;
use super::rows::{drop_message_if_unreferenced, parse_sha};
use crate::storage::accounts::Enrolment;
use crate::storage::error::StorageError;
use crate::storage::error::{Result, Timestamp};
use crate::storage::log::LogEvent;
use crate::storage::mail::NewMessage;
use crate::storage::pickup::{
    Attempt, AttemptOutcome, ExpiredPickup, GuestOutcome, PickupRecord, PickupReply, PickupState,
    PickupStore, ReplyOutcome, SenderChange, SenderOutcome, ThreadMessage,
};

const COLUMNS: &str = "id, message_id, address, sender, fingerprint, cert, locked_key, \
    key_for_sender, salt, kdf, verifier_hash, state, failures, opened_at, read_at, expires_at, \
    thread, replies, created_at";

fn record_row(r: &rusqlite::Row) -> rusqlite::Result<PickupRecord> {
    let state: String = r.get(11)?;
    Ok(PickupRecord {
        id: r.get(0)?,
        message_id: r.get(1)?,
        address: r.get(2)?,
        sender: r.get(3)?,
        fingerprint: r.get(4)?,
        cert: r.get(5)?,
        locked_key: r.get(6)?,
        key_for_sender: r.get(7)?,
        salt: r.get(8)?,
        kdf: r.get(9)?,
        verifier_hash: r.get(10)?,
        state: PickupState::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                11,
                rusqlite::types::Type::Text,
                format!("unknown pickup state {state:?}").into(),
            )
        })?,
        failures: r.get(12)?,
        opened_at: r.get(13)?,
        read_at: r.get(14)?,
        expires_at: r.get(15)?,
        thread: r.get(16)?,
        replies: r.get(17)?,
        created_at: r.get(18)?,
    })
}

fn by_id(c: &Connection, id: i64) -> Result<Option<PickupRecord>> {
    Ok(
        c.prepare_cached(&format!("SELECT {COLUMNS} FROM pickups WHERE id = ?1"))?
            .query_row([id], record_row)
            .optional()?,
    )
}

/// The sender's view of this pickup recipient, unless it has already gone further.
fn set_state(
    c: &Connection,
    p: &PickupRecord,
    state: &str,
    unless: &[&str],
    now: Timestamp,
) -> Result<()> {
    let current: Option<String> = c
        .prepare_cached("SELECT state FROM deliveries WHERE message_id = ?1 AND address = ?2")?
        .query_row(params![p.message_id, p.address], |r| r.get(0))
        .optional()?;
    if current.is_some_and(|s| unless.contains(&s.as_str())) {
        return Ok(());
    }
    set_delivery(c, &p.message_id, &p.address, state, None, now)
}

fn log(
    c: &Connection,
    chain: &mut Chain,
    p: &PickupRecord,
    kind: &'static str,
    actor: &str,
    now: i64,
) -> Result<()> {
    chain.append(
        c,
        now,
        &LogEvent::new(kind, actor, &p.message_id).with(json!({ "pickup": p.address })),
    )
}

/// Deletes everything that could open the pickup (crypto-shredding), with its sessions, and
/// drops the message if nothing else holds it.
fn shred(c: &Connection, p: &PickupRecord, state: PickupState) -> Result<Vec<[u8; 32]>> {
    c.prepare_cached(
        "UPDATE pickups SET locked_key = NULL, key_for_sender = NULL, salt = NULL, kdf = NULL,
             verifier_hash = NULL, state = ?2 WHERE id = ?1",
    )?
    .execute(params![p.id, state.as_str()])?;
    c.prepare_cached("DELETE FROM pickup_sessions WHERE pickup_id = ?1")?
        .execute([p.id])?;
    drop_message_if_unreferenced(c, &p.message_id)
}

/// The open or locked pickups of `p`'s thread (`p` among them, if it is).
fn thread_live(c: &Connection, p: &PickupRecord) -> Result<Vec<PickupRecord>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM pickups WHERE sender = ?1 AND address = ?2 AND thread = ?3
               AND state IN ('open', 'locked')"
    ))?
    .query_map(params![p.sender, p.address, p.thread], record_row)?
    .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Stores a submitted message's pickups, each recipient's delivery state and notification
/// (called inside the submission's write).
pub(super) fn insert_pickups(
    c: &Connection,
    chain: &mut Chain,
    m: &NewMessage,
    now: Timestamp,
) -> Result<()> {
    for p in &m.pickups {
        match p.continues {
            None => {
                c.prepare_cached(
                    "INSERT INTO pickups (message_id, address, sender, token_hash, fingerprint,
                         cert, locked_key, key_for_sender, salt, kdf, verifier_hash, state,
                         expires_at, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'open', ?12, ?13)",
                )?
                .execute(params![
                    m.id,
                    p.address,
                    m.sender_address,
                    &p.token_hash[..],
                    p.fingerprint,
                    p.cert,
                    p.locked_key,
                    p.key_for_sender,
                    p.salt,
                    p.kdf,
                    p.verifier_hash,
                    p.expires_at,
                    now
                ])?;
                c.prepare_cached("UPDATE pickups SET thread = id WHERE id = last_insert_rowid()")?
                    .execute([])?;
            }
            // The thread's key material, copied in this commit from a pickup still open.
            Some(earlier) => {
                let copied = c
                    .prepare_cached(
                        "INSERT INTO pickups (message_id, address, sender, token_hash,
                             fingerprint, cert, locked_key, key_for_sender, salt, kdf,
                             verifier_hash, state, expires_at, created_at, thread)
                         SELECT ?1, address, sender, ?2, fingerprint, cert, locked_key,
                             key_for_sender, salt, kdf, verifier_hash, 'open', ?3, ?4, thread
                         FROM pickups
                         WHERE id = ?5 AND sender = ?6 AND address = ?7 AND fingerprint = ?8
                           AND state = 'open' AND expires_at > ?4 AND locked_key IS NOT NULL",
                    )?
                    .execute(params![
                        m.id,
                        &p.token_hash[..],
                        p.expires_at,
                        now,
                        earlier,
                        m.sender_address,
                        p.address,
                        p.fingerprint
                    ])?;
                if copied != 1 {
                    return Err(StorageError::Conflict(format!(
                        "the pickup thread of {} is no longer open",
                        p.address
                    )));
                }
            }
        }
        start_delivery(c, &m.id, &p.address, "pickup", "pickup", now)?;
        chain.append(
            c,
            now,
            &LogEvent::new("pickup.created", &m.sender_address, &m.id).with(json!({
                "pickup": p.address, "fingerprint": p.fingerprint, "expires_at": p.expires_at,
                "continues": p.continues.is_some(),
            })),
        )?;
        if let Some(n) = &p.notification {
            super::notify::insert_notification(c, chain, n, m.notify_max_queued, now)?;
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl PickupStore for SqliteStore {
    async fn pickup_by_token(&self, token_hash: [u8; 32]) -> Result<Option<PickupRecord>> {
        self.read_point(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM pickups WHERE token_hash = ?1"
            ))?
            .query_row([&token_hash[..]], record_row)
            .optional()?)
        })
        .await
    }

    async fn pickup_message(
        &self,
        message_id: &str,
    ) -> Result<Option<(String, String, Vec<(u32, u64, [u8; 32])>)>> {
        let id = message_id.to_owned();
        self.read_point(move |c| {
            let Some((envelope, signature)) = c
                .prepare_cached("SELECT envelope, signature FROM messages WHERE id = ?1")?
                .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
            else {
                return Ok(None);
            };
            let parts = c
                .prepare_cached(
                    "SELECT idx, size, sha256 FROM parts WHERE message_id = ?1 ORDER BY idx",
                )?
                .query_map([&id], |r| {
                    Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, parse_sha(r.get(2)?)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some((envelope, signature, parts)))
        })
        .await
    }

    async fn pickups_of(&self, message_id: &str) -> Result<Vec<PickupRecord>> {
        let id = message_id.to_owned();
        self.read_point(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM pickups WHERE message_id = ?1 ORDER BY address"
            ))?;
            let rows = stmt.query_map([id], record_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn pickup_attempt(
        &self,
        id: i64,
        attempt: Attempt,
        now: Timestamp,
    ) -> Result<AttemptOutcome> {
        self.write(move |c, chain| {
            let Some(p) = by_id(c, id)? else {
                return Ok(AttemptOutcome::NotOpen(PickupState::Withdrawn));
            };
            if p.state != PickupState::Open {
                return Ok(AttemptOutcome::NotOpen(p.state));
            }
            let actor = p.address.clone();
            match &attempt {
                Attempt::Wrong { max_wrong } => {
                    let failures = p.failures.saturating_add(1);
                    let locked = failures >= *max_wrong;
                    c.prepare_cached("UPDATE pickups SET failures = ?2, state = ?3 WHERE id = ?1")?
                        .execute(params![
                            id,
                            failures,
                            if locked { "locked" } else { "open" }
                        ])?;
                    log(c, chain, &p, "pickup.wrong_muc", &actor, now)?;
                    if locked {
                        // One unlock code for the whole thread: it locks everywhere.
                        for q in thread_live(c, &p)? {
                            c.prepare_cached("UPDATE pickups SET state = 'locked' WHERE id = ?1")?
                                .execute([q.id])?;
                            c.prepare_cached("DELETE FROM pickup_sessions WHERE pickup_id = ?1")?
                                .execute([q.id])?;
                            set_delivery(c, &q.message_id, &q.address, "locked", None, now)?;
                            log(c, chain, &q, "pickup.locked", &actor, now)?;
                        }
                    }
                    Ok(AttemptOutcome::Wrong {
                        attempts_left: max_wrong.saturating_sub(failures),
                    })
                }
                Attempt::Right {
                    session_hash,
                    session_expires_at,
                } => {
                    c.prepare_cached("DELETE FROM pickup_sessions WHERE expires_at < ?1")?
                        .execute([now])?;
                    c.prepare_cached(
                        "INSERT INTO pickup_sessions (token_hash, pickup_id, expires_at)
                         VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![
                        &session_hash[..],
                        id,
                        session_expires_at
                    ])?;
                    c.prepare_cached("UPDATE pickups SET failures = 0 WHERE id = ?1")?
                        .execute([id])?;
                    if p.opened_at.is_none() {
                        c.prepare_cached("UPDATE pickups SET opened_at = ?2 WHERE id = ?1")?
                            .execute(params![id, now])?;
                        set_state(c, &p, "opened", &["read", "replied"], now)?;
                        log(c, chain, &p, "pickup.opened", &actor, now)?;
                    }
                    log(c, chain, &p, "pickup.unlocked", &actor, now)?;
                    Ok(AttemptOutcome::Unlocked)
                }
            }
        })
        .await
    }

    async fn pickup_session(
        &self,
        session_hash: [u8; 32],
        now: Timestamp,
    ) -> Result<Option<PickupRecord>> {
        self.read_point(move |c| {
            let sql = format!(
                "SELECT {} FROM pickup_sessions s JOIN pickups p ON p.id = s.pickup_id
                 WHERE s.token_hash = ?1 AND s.expires_at >= ?2 AND p.state = 'open'
                   AND p.expires_at > ?2",
                COLUMNS
                    .split(", ")
                    .map(|col| format!("p.{col}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(c.prepare_cached(&sql)?
                .query_row(params![&session_hash[..], now], record_row)
                .optional()?)
        })
        .await
    }

    async fn pickup_read(&self, id: i64, now: Timestamp) -> Result<bool> {
        self.write(move |c, chain| {
            let Some(p) = by_id(c, id)? else {
                return Ok(false);
            };
            if p.read_at.is_some() {
                return Ok(false);
            }
            c.prepare_cached("UPDATE pickups SET read_at = ?2 WHERE id = ?1")?
                .execute(params![id, now])?;
            set_state(c, &p, "read", &["replied"], now)?;
            log(c, chain, &p, "pickup.read", &p.address, now)?;
            Ok(true)
        })
        .await
    }

    async fn pickup_sender_change(
        &self,
        message_id: &str,
        sender: &str,
        address: &str,
        change: SenderChange,
        now: Timestamp,
    ) -> Result<SenderOutcome> {
        let (id, sender, address) = (message_id.to_owned(), sender.to_owned(), address.to_owned());
        let out = self
            .write(move |c, chain| {
                let p: Option<PickupRecord> = c
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM pickups
                     WHERE message_id = ?1 AND address = ?2 AND sender = ?3"
                    ))?
                    .query_row(params![id, address, sender], record_row)
                    .optional()?;
                let Some(p) = p else {
                    return Ok(SenderOutcome::NotFound);
                };
                // A locked pickup can always be given a new code (in a thread, a read message's
                // code locks with the others); otherwise only an unread one changes.
                let relocking_locked =
                    matches!(change, SenderChange::Relock { .. }) && p.state == PickupState::Locked;
                if p.read_at.is_some() && !relocking_locked {
                    return Ok(SenderOutcome::NotUnread("read".into()));
                }
                if !matches!(p.state, PickupState::Open | PickupState::Locked) {
                    return Ok(SenderOutcome::NotUnread(p.state.as_str().into()));
                }
                match &change {
                    SenderChange::Withdraw => {
                        set_delivery(c, &p.message_id, &p.address, "withdrawn", None, now)?;
                        log(c, chain, &p, "pickup.withdrawn", &sender, now)?;
                        return Ok(SenderOutcome::Done(shred(c, &p, PickupState::Withdrawn)?));
                    }
                    SenderChange::Relock {
                        locked_key,
                        salt,
                        kdf,
                        verifier_hash,
                    } => {
                        // The same key throughout the thread: the new code opens all of it.
                        for q in thread_live(c, &p)? {
                            c.prepare_cached(
                                "UPDATE pickups SET locked_key = ?2, salt = ?3, kdf = ?4,
                                 verifier_hash = ?5, failures = 0, state = 'open' WHERE id = ?1",
                            )?
                            .execute(params![
                                q.id,
                                locked_key,
                                salt,
                                kdf,
                                verifier_hash
                            ])?;
                            c.prepare_cached("DELETE FROM pickup_sessions WHERE pickup_id = ?1")?
                                .execute([q.id])?;
                            if q.id == p.id || q.state == PickupState::Locked {
                                let state = if q.read_at.is_some() {
                                    "read"
                                } else {
                                    "notified"
                                };
                                set_delivery(c, &q.message_id, &q.address, state, None, now)?;
                            }
                            log(c, chain, &q, "pickup.relocked", &sender, now)?;
                        }
                    }
                }
                Ok(SenderOutcome::Done(Vec::new()))
            })
            .await;
        if matches!(out, Ok(SenderOutcome::Done(_))) {
            self.truncate_wal().await;
        }
        out
    }

    async fn expire_pickups(&self, now: Timestamp) -> Result<(Vec<ExpiredPickup>, Vec<[u8; 32]>)> {
        let out = self
            .write(move |c, chain| {
                let due: Vec<PickupRecord> = c
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM pickups
                     WHERE state IN ('open', 'locked') AND expires_at <= ?1 LIMIT 1000"
                    ))?
                    .query_map([now], record_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let mut orphans = Vec::new();
                let mut expired = Vec::with_capacity(due.len());
                for p in due {
                    let envelope = c
                        .prepare_cached("SELECT envelope FROM messages WHERE id = ?1")?
                        .query_row([&p.message_id], |r| r.get(0))
                        .optional()?;
                    set_delivery(c, &p.message_id, &p.address, "expired", None, now)?;
                    log(c, chain, &p, "pickup.expired", "node", now)?;
                    orphans.extend(shred(c, &p, PickupState::Expired)?);
                    expired.push(ExpiredPickup {
                        pickup: p,
                        envelope,
                    });
                }
                Ok((expired, orphans))
            })
            .await;
        if matches!(&out, Ok((n, _)) if !n.is_empty()) {
            self.truncate_wal().await;
        }
        out
    }

    async fn live_thread(
        &self,
        sender: &str,
        address: &str,
        now: Timestamp,
    ) -> Result<Option<PickupRecord>> {
        let (sender, address) = (sender.to_owned(), address.to_owned());
        self.read_point(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM pickups
                 WHERE sender = ?1 AND address = ?2 AND state IN ('open', 'locked')
                   AND expires_at > ?3 AND locked_key IS NOT NULL
                 ORDER BY id DESC LIMIT 1"
            ))?
            .query_row(params![sender, address, now], record_row)
            .optional()?)
        })
        .await
    }

    async fn issue_pickup_message_id(
        &self,
        pickup_id: i64,
        message_id: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        let id = message_id.to_owned();
        self.write(move |c, _| {
            c.prepare_cached("DELETE FROM pickup_issued_ids WHERE expires_at < ?1 AND used = 0")?
                .execute([now.saturating_sub(3600)])?;
            c.prepare_cached(
                "INSERT INTO pickup_issued_ids (message_id, pickup_id, expires_at)
                 VALUES (?1, ?2, ?3)",
            )?
            .execute(params![id, pickup_id, expires_at])?;
            Ok(())
        })
        .await
    }

    async fn record_pickup_upload(
        &self,
        pickup_id: i64,
        sha256: [u8; 32],
        size: u64,
        now: Timestamp,
    ) -> Result<()> {
        self.write(move |c, _| {
            super::rows::hold_file_blob(c, sha256, size)?;
            c.prepare_cached(
                "INSERT INTO pickup_uploads (pickup_id, sha256, size, created_at)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO UPDATE SET created_at = excluded.created_at",
            )?
            .execute(params![pickup_id, &sha256[..], size as i64, now])?;
            Ok(())
        })
        .await
    }

    async fn pickup_pending_upload_bytes(&self, pickup_id: i64) -> Result<u64> {
        self.read_point(move |c| {
            Ok(c.prepare_cached(
                "SELECT COALESCE(SUM(size), 0) FROM pickup_uploads WHERE pickup_id = ?1",
            )?
            .query_row([pickup_id], |r| r.get::<_, i64>(0))? as u64)
        })
        .await
    }

    async fn pickup_uploaded(&self, pickup_id: i64, sha256: [u8; 32]) -> Result<Option<u64>> {
        self.read_point(move |c| {
            Ok(c.prepare_cached(
                "SELECT size FROM pickup_uploads WHERE pickup_id = ?1 AND sha256 = ?2",
            )?
            .query_row(params![pickup_id, &sha256[..]], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|s| s as u64))
        })
        .await
    }

    async fn pickup_reply(&self, m: PickupReply, now: Timestamp) -> Result<ReplyOutcome> {
        self.write(move |c, chain| {
            if let Some(accepted_at) =
                super::rows::accepted_before(c, &m.message_id, &m.sender_address, &m.envelope)?
            {
                return Ok(ReplyOutcome::AlreadyAccepted { accepted_at });
            }
            let Some(p) = by_id(c, m.pickup_id)? else {
                return Ok(ReplyOutcome::NotOpen(PickupState::Withdrawn));
            };
            if p.state != PickupState::Open || p.expires_at <= now {
                return Ok(ReplyOutcome::NotOpen(if p.state == PickupState::Open {
                    PickupState::Expired
                } else {
                    p.state
                }));
            }
            if p.replies >= m.max_replies {
                return Ok(ReplyOutcome::TooManyReplies);
            }
            let claimed = c
                .prepare_cached(
                    "UPDATE pickup_issued_ids SET used = 1
                     WHERE message_id = ?1 AND pickup_id = ?2 AND used = 0 AND expires_at >= ?3",
                )?
                .execute(params![m.message_id, m.pickup_id, now])?;
            if claimed != 1 {
                let issued: Option<(i64, bool)> = c
                    .prepare_cached(
                        "SELECT pickup_id, used FROM pickup_issued_ids WHERE message_id = ?1",
                    )?
                    .query_row([&m.message_id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                return Err(match issued {
                    Some((id, false)) if id == m.pickup_id => StorageError::MessageIdExpired,
                    Some((id, true)) if id == m.pickup_id => {
                        StorageError::Conflict("message ID already used".into())
                    }
                    _ => StorageError::MessageIdNotIssued,
                });
            }
            let (account, to) = &m.recipient;
            c.prepare_cached(
                "INSERT INTO messages (id, sender, recipients, envelope, signature, size, parts,
                     accepted_at, via_pickup, pickup_thread, sender_cert)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                m.message_id,
                m.sender_address,
                serde_json::to_string(&[to]).expect("strings serialise"),
                m.envelope,
                m.signature,
                m.size as i64,
                m.parts.len() as i64,
                now,
                p.id,
                p.thread,
                p.cert
            ])?;
            for (i, part) in m.parts.iter().enumerate() {
                if part.inline.is_none() {
                    c.prepare_cached(
                        "DELETE FROM pickup_uploads WHERE pickup_id = ?1 AND sha256 = ?2",
                    )?
                    .execute(params![p.id, &part.sha256[..]])?;
                }
                insert_part(
                    c,
                    &m.message_id,
                    i,
                    part.sha256,
                    part.size,
                    part.inline.as_deref(),
                )?;
            }
            c.prepare_cached(
                "INSERT INTO mailbox (account_id, message_id, folder, unread, received_at)
                 VALUES (?1, ?2, 'inbox', 1, ?3) ON CONFLICT DO NOTHING",
            )?
            .execute(params![account, m.message_id, now])?;
            c.prepare_cached("UPDATE pickups SET replies = replies + 1 WHERE id = ?1")?
                .execute([p.id])?;
            let part_hashes: Vec<String> = m.parts.iter().map(|p| hex::encode(p.sha256)).collect();
            chain.append(
                c,
                now,
                &LogEvent::new("submission", &m.sender_address, &m.message_id).with(json!({
                    "to": [to], "size": m.size, "parts": part_hashes, "via": "pickup",
                    "in_reply_to": p.message_id,
                })),
            )?;
            chain.append(c, now, &LogEvent::new("delivery", to, &m.message_id))?;
            set_delivery(c, &p.message_id, &p.address, "replied", None, now)?;
            chain.append(
                c,
                now,
                &LogEvent::new("pickup.replied", &p.address, &p.message_id)
                    .with(json!({ "pickup": p.address, "reply": m.message_id })),
            )?;
            super::evidence::insert_records(c, &m.evidence)?;
            Ok(ReplyOutcome::Accepted { accepted_at: now })
        })
        .await
    }

    async fn thread_messages(
        &self,
        sender: &str,
        address: &str,
        thread: i64,
    ) -> Result<Vec<ThreadMessage>> {
        let (sender, address) = (sender.to_owned(), address.to_owned());
        self.read_point(move |c| {
            let rows = c
                .prepare_cached(
                    "SELECT g.id, g.sender, g.envelope, g.signature, g.accepted_at,
                            g.via_pickup IS NOT NULL
                     FROM messages g
                     WHERE g.id IN (SELECT message_id FROM pickups
                                    WHERE sender = ?1 AND address = ?2 AND thread = ?3
                                      AND state = 'open')
                        OR g.pickup_thread = ?3 AND g.sender = ?2
                     ORDER BY g.accepted_at, g.id",
                )?
                .query_map(params![sender, address, thread], |r| {
                    Ok(ThreadMessage {
                        message_id: r.get(0)?,
                        sender: r.get(1)?,
                        envelope: r.get(2)?,
                        signature: r.get(3)?,
                        accepted_at: r.get(4)?,
                        reply: r.get(5)?,
                        parts: Vec::new(),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut out = Vec::with_capacity(rows.len());
            for mut m in rows {
                m.parts = c
                    .prepare_cached(
                        "SELECT idx, size, sha256 FROM parts WHERE message_id = ?1 ORDER BY idx",
                    )?
                    .query_map([&m.message_id], |r| {
                        Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, parse_sha(r.get(2)?)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                out.push(m);
            }
            Ok(out)
        })
        .await
    }

    async fn pickup_upgrade(&self, id: i64, e: Enrolment, now: Timestamp) -> Result<GuestOutcome> {
        self.write(move |c, chain| {
            let Some(p) = by_id(c, id)? else {
                return Ok(GuestOutcome::NotOpen);
            };
            if p.state != PickupState::Open || p.expires_at <= now {
                return Ok(GuestOutcome::NotOpen);
            }
            let exists: bool = c
                .prepare_cached("SELECT EXISTS(SELECT 1 FROM accounts WHERE address = ?1)")?
                .query_row([&p.address], |r| r.get(0))?;
            if exists {
                return Ok(GuestOutcome::Exists);
            }
            super::rows::put_cert(c, &e.cert, "guest", now)?;
            c.prepare_cached(
                "INSERT INTO accounts (address, is_admin, state, created_at, fingerprint,
                     wrapped_key, kdf_salt, kdf_params, login_hash, kind)
                 VALUES (?1, 0, 'active', ?2, ?3, ?4, ?5, ?6, ?7, 'guest')",
            )?
            .execute(params![
                p.address,
                now,
                e.cert.fingerprint,
                e.wrapped_key,
                e.kdf_salt,
                e.kdf_params,
                e.login_hash
            ])?;
            let account_id = c.last_insert_rowid();
            set_delivery(c, &p.message_id, &p.address, "guest", None, now)?;
            chain.append(
                c,
                now,
                &LogEvent::new("pickup.guest_created", &p.address, &p.message_id).with(json!({
                    "pickup": p.address, "fingerprint": e.cert.fingerprint,
                })),
            )?;
            Ok(GuestOutcome::Created { account_id })
        })
        .await
    }
}
