//! [`MailStore`] on SQLite: issued message IDs, uploads, submission (with its outbox entries),
//! mailboxes, parts, read, move and delete.
//!
//! Uses the store, `rows`, `outbox` (a submission queues its remote recipients in its own
//! commit; listings show delivery states) and the log's chain; nothing uses it back.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::outbox::{deliveries_of, enqueue_remote, start_delivery};
use super::pickup::insert_pickups;
use super::rows::{
    drop_message_if_unreferenced, drop_unreferenced, hold_file_blob, insert_part, parse_sha,
};
use crate::storage::error::{Result, StorageError, Timestamp};
use crate::storage::log::LogEvent;
use crate::storage::mail::{
    Folder, MailStore, MailboxItem, NewMessage, PartData, PartInfo, SmtpMail, StoredMessage,
    SubmitOutcome,
};

const ITEM_SELECT: &str = "SELECT m.message_id, m.folder, m.unread, g.sender, g.recipients, \
    m.received_at, g.size, g.parts, g.via_pickup IS NOT NULL, g.arrival, g.in_reply_to \
    FROM mailbox m JOIN messages g ON g.id = m.message_id";

/// Adds each remote recipient's delivery state to items in Sent.
fn with_deliveries(c: &Connection, mut items: Vec<MailboxItem>) -> Result<Vec<MailboxItem>> {
    for item in items.iter_mut().filter(|i| i.folder == Folder::Sent) {
        item.delivery = deliveries_of(c, &item.message_id)?;
    }
    Ok(items)
}

fn item_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MailboxItem> {
    let folder: String = r.get(1)?;
    let to: String = r.get(4)?;
    let arrival: Option<crate::proto::Arrival> = r
        .get::<_, Option<String>>(9)?
        .and_then(|a| serde_json::from_str(&a).ok());
    Ok(MailboxItem {
        message_id: r.get(0)?,
        folder: Folder::parse(&folder).unwrap_or(Folder::Inbox),
        unread: r.get(2)?,
        from: r.get(3)?,
        to: serde_json::from_str(&to).unwrap_or_default(),
        received_at: r.get(5)?,
        size: r.get::<_, i64>(6)? as u64,
        parts: r.get(7)?,
        delivery: Vec::new(),
        via: match (r.get::<_, bool>(8)?, arrival.is_some()) {
            (true, _) => Some("pickup".to_owned()),
            (_, true) => Some("smtp".to_owned()),
            _ => None,
        },
        arrival,
        in_reply_to: r.get(10)?,
    })
}

#[async_trait]
impl MailStore for SqliteStore {
    async fn issue_message_id(
        &self,
        account_id: i64,
        message_id: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        let id = message_id.to_owned();
        self.write(move |c, _| {
            // Old, never-used IDs are of no use to anyone: drop them as we go.
            c.prepare_cached("DELETE FROM issued_ids WHERE expires_at < ?1 AND used = 0")?
                .execute([now - 3600])?;
            c.prepare_cached(
                "INSERT INTO issued_ids (message_id, account_id, issued_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![id, account_id, now, expires_at])?;
            Ok(())
        })
        .await
    }

    async fn record_upload(
        &self,
        account_id: i64,
        sha256: [u8; 32],
        size: u64,
        now: Timestamp,
    ) -> Result<()> {
        self.write(move |c, _| {
            hold_file_blob(c, sha256, size)?;
            c.execute(
                "INSERT INTO uploads (account_id, sha256, size, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO UPDATE SET created_at = excluded.created_at",
                params![account_id, &sha256[..], size as i64, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn pending_upload_bytes(&self, account_id: i64) -> Result<u64> {
        self.read_point(move |c| {
            Ok(
                c.prepare_cached(
                    "SELECT COALESCE(SUM(size), 0) FROM uploads WHERE account_id = ?1",
                )?
                .query_row([account_id], |r| r.get::<_, i64>(0))? as u64,
            )
        })
        .await
    }

    async fn expire_uploads(&self, before: Timestamp) -> Result<Vec<[u8; 32]>> {
        self.write(move |c, _| {
            let mut expired: Vec<Vec<u8>> = Vec::new();
            // Uploads no message used, and part files of peers' transfers that never committed.
            for sql in [
                "DELETE FROM uploads WHERE created_at < ?1 RETURNING sha256",
                "DELETE FROM pickup_uploads WHERE created_at < ?1 RETURNING sha256",
                "DELETE FROM peer_parts WHERE received_at < ?1 RETURNING sha256",
            ] {
                let rows = c
                    .prepare(sql)?
                    .query_map([before], |r| r.get::<_, Vec<u8>>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                expired.extend(rows);
            }
            expired.sort();
            expired.dedup();
            drop_unreferenced(c, expired)
        })
        .await
    }

    async fn uploaded_by(&self, account_id: i64, sha256: [u8; 32]) -> Result<Option<u64>> {
        self.read_point(move |c| {
            Ok(c.query_row(
                "SELECT size FROM uploads WHERE account_id = ?1 AND sha256 = ?2",
                params![account_id, &sha256[..]],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(|s| s as u64))
        })
        .await
    }

    async fn submit(&self, m: NewMessage, now: Timestamp) -> Result<SubmitOutcome> {
        self.write(move |c, chain| {
            if let Some(accepted_at) =
                super::rows::accepted_before(c, &m.id, &m.sender_address, &m.envelope)?
            {
                return Ok(SubmitOutcome::AlreadyAccepted { accepted_at });
            }
            let claimed = c
                .prepare_cached(
                    "UPDATE issued_ids SET used = 1
                     WHERE message_id = ?1 AND account_id = ?2 AND used = 0 AND expires_at >= ?3",
                )?
                .execute(params![m.id, m.sender_account, now])?;
            if claimed != 1 {
                let issued: Option<(i64, Timestamp, bool)> = c
                    .prepare_cached(
                        "SELECT account_id, expires_at, used FROM issued_ids WHERE message_id = ?1",
                    )?
                    .query_row([&m.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()?;
                return Err(match issued {
                    Some((account, _, false)) if account == m.sender_account => {
                        StorageError::MessageIdExpired
                    }
                    // Used, but its message is gone (deleted by everyone who had it).
                    Some((account, _, true)) if account == m.sender_account => {
                        StorageError::Conflict("message ID already used".into())
                    }
                    _ => StorageError::MessageIdNotIssued,
                });
            }
            let recipients: Vec<&str> = m
                .recipients
                .iter()
                .map(|(_, a)| a.as_str())
                .chain(m.remote.iter().flat_map(|r| r.addresses.iter().map(String::as_str)))
                .chain(m.pickups.iter().map(|p| p.address.as_str()))
                .chain(m.external.iter().map(|x| x.address.as_str()))
                .collect();
            c.prepare_cached(
                "INSERT INTO messages (id, sender, recipients, envelope, signature, size, parts, accepted_at,
                     arrival)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                m.id,
                m.sender_address,
                serde_json::to_string(&recipients).expect("strings serialise"),
                m.envelope,
                m.signature,
                m.size as i64,
                m.parts.len() as i64,
                now,
                m.arrival
            ])?;
            for (i, p) in m.parts.iter().enumerate() {
                if p.inline.is_none() {
                    use_up_upload(c, m.sender_account, &p.sha256)?;
                }
                insert_part(c, &m.id, i, p.sha256, p.size, p.inline.as_deref())?;
            }
            let mut insert = c.prepare_cached(
                "INSERT INTO mailbox (account_id, message_id, folder, unread, received_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT DO NOTHING",
            )?;
            insert.execute(params![m.sender_account, m.id, "sent", false, now])?;
            let part_hashes: Vec<String> = m.parts.iter().map(|p| hex::encode(p.sha256)).collect();
            chain.append(
                c,
                now,
                &LogEvent::new("submission", &m.sender_address, &m.id).with(
                    if m.arrival.is_some() {
                        // Sealed by the gateway: the node saw this message's content.
                        serde_json::json!({
                            "to": recipients, "size": m.size, "parts": part_hashes,
                            "gateway": true,
                        })
                    } else {
                        serde_json::json!({
                            "to": recipients, "size": m.size, "parts": part_hashes,
                        })
                    },
                ),
            )?;
            for (account, address) in &m.recipients {
                insert.execute(params![account, m.id, "inbox", true, now])?;
                chain.append(c, now, &LogEvent::new("delivery", address, &m.id))?;
            }
            enqueue_remote(c, chain, &m, now)?;
            insert_pickups(c, chain, &m, now)?;
            for n in &m.notifications {
                super::notify::insert_notification(c, chain, n, m.notify_max_queued, now)?;
            }
            let mut used_up = Vec::new();
            for x in &m.external {
                if x.uploaded {
                    use_up_upload(c, m.sender_account, &x.sha256)?;
                    used_up.push(x.sha256.to_vec());
                }
                c.prepare_cached(
                    "INSERT INTO external_copies (message_id, address, mode, sha256, copy)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![m.id, x.address, x.mode.as_str(), &x.sha256[..], x.copy])?;
                start_delivery(c, &m.id, &x.address, x.mode.as_str(), "queued", now)?;
                super::notify::insert_notification(c, chain, &x.mail, m.notify_max_queued, now)?;
            }
            super::evidence::insert_records(c, &m.evidence)?;
            let unlinked = drop_unreferenced(c, used_up)?;
            Ok(SubmitOutcome::Accepted {
                accepted_at: now,
                unlinked,
            })
        })
        .await
    }

    async fn receive_smtp(&self, mails: Vec<SmtpMail>, now: Timestamp) -> Result<()> {
        self.write(move |c, chain| {
            for m in &mails {
                let (account, to) = &m.recipient;
                c.prepare_cached(
                    "INSERT INTO messages (id, sender, recipients, envelope, signature, size, parts,
                         accepted_at, arrival, in_reply_to, compliance_pending)
                     VALUES (?1, ?2, ?3, '', '', ?4, 1, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    m.id,
                    m.sender,
                    serde_json::to_string(&[to]).expect("strings serialise"),
                    m.part.size as i64,
                    now,
                    m.arrival,
                    m.in_reply_to,
                    m.compliance_pending
                ])?;
                if m.part.inline.is_none() {
                    hold_file_blob(c, m.part.sha256, m.part.size)?;
                }
                insert_part(
                    c,
                    &m.id,
                    0,
                    m.part.sha256,
                    m.part.size,
                    m.part.inline.as_deref(),
                )?;
                c.prepare_cached(
                    "INSERT INTO mailbox (account_id, message_id, folder, unread, received_at)
                     VALUES (?1, ?2, 'inbox', 1, ?3)",
                )?
                .execute(params![account, m.id, now])?;
                chain.append(
                    c,
                    now,
                    &LogEvent::new("smtp.received", &m.sender, &m.id).with(serde_json::json!({
                        "to": [to], "size": m.part.size, "parts": [hex::encode(m.part.sha256)],
                        "in_reply_to": m.in_reply_to,
                    })),
                )?;
                chain.append(c, now, &LogEvent::new("delivery", to, &m.id))?;
            }
            Ok(())
        })
        .await
    }

    async fn sent_to(&self, message_id: &str, address: &str) -> Result<bool> {
        let (id, address) = (message_id.to_owned(), address.to_owned());
        self.read_point(move |c| {
            Ok(c.prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM messages g, json_each(g.recipients) r
                 WHERE g.id = ?1 AND g.arrival IS NULL AND r.value = ?2)",
            )?
            .query_row(params![id, address], |r| r.get(0))?)
        })
        .await
    }

    async fn mailbox(
        &self,
        account_id: i64,
        folder: Folder,
        limit: u32,
        before: Option<Timestamp>,
    ) -> Result<Vec<MailboxItem>> {
        self.read(move |c| {
            let sql = format!(
                "{ITEM_SELECT} WHERE m.account_id = ?1 AND m.folder = ?2 AND m.received_at < ?3
                 ORDER BY m.received_at DESC, m.message_id LIMIT ?4"
            );
            let rows = c
                .prepare_cached(&sql)?
                .query_map(
                    params![
                        account_id,
                        folder.as_str(),
                        before.unwrap_or(i64::MAX),
                        limit
                    ],
                    item_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            with_deliveries(c, rows)
        })
        .await
    }

    async fn message(&self, account_id: i64, message_id: &str) -> Result<Option<StoredMessage>> {
        let id = message_id.to_owned();
        self.read(move |c| {
            // A message sent to oneself is in Sent and Inbox: show the received copy.
            let sql = format!(
                "{ITEM_SELECT} WHERE m.account_id = ?1 AND m.message_id = ?2
                 ORDER BY CASE m.folder WHEN 'sent' THEN 1 ELSE 0 END LIMIT 1"
            );
            let Some(item) = c
                .prepare_cached(&sql)?
                .query_row(params![account_id, id], item_row)
                .optional()?
            else {
                return Ok(None);
            };
            let item = with_deliveries(c, vec![item])?.remove(0);
            let (envelope, signature, accepted_at, sender_cert) = c.query_row(
                "SELECT envelope, signature, accepted_at, sender_cert FROM messages WHERE id = ?1",
                [&id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
            let parts = c
                .prepare_cached(
                    "SELECT idx, size, sha256 FROM parts WHERE message_id = ?1 ORDER BY idx",
                )?
                .query_map([&id], |r| {
                    Ok(PartInfo {
                        index: r.get(0)?,
                        size: r.get::<_, i64>(1)? as u64,
                        sha256: parse_sha(r.get(2)?)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some(StoredMessage {
                item,
                envelope,
                signature,
                accepted_at,
                parts,
                sender_cert,
            }))
        })
        .await
    }

    async fn part(&self, message_id: &str, index: u32) -> Result<Option<PartData>> {
        let id = message_id.to_owned();
        self.read(move |c| {
            let row: Option<(Vec<u8>, i64, Option<Vec<u8>>)> = c
                .prepare_cached(
                    "SELECT p.sha256, p.size, coalesce(p.data, b.data) FROM parts p
                     LEFT JOIN blobs b ON p.data IS NULL AND b.sha256 = p.sha256
                     WHERE p.message_id = ?1 AND p.idx = ?2",
                )?
                .query_row(params![id, index], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            Ok(match row {
                None => None,
                Some((_, _, Some(data))) => Some(PartData::Inline(data)),
                Some((sha, size, None)) => Some(PartData::Blob {
                    sha256: parse_sha(sha)?,
                    size: size as u64,
                }),
            })
        })
        .await
    }

    async fn mark_read(
        &self,
        account_id: i64,
        actor: &str,
        message_id: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let (id, actor) = (message_id.to_owned(), actor.to_owned());
        self.write(move |c, chain| {
            let in_box: bool = c.query_row(
                "SELECT EXISTS(SELECT 1 FROM mailbox WHERE account_id = ?1 AND message_id = ?2 AND folder != 'sent')",
                params![account_id, id],
                |r| r.get(0),
            )?;
            if !in_box {
                return Err(StorageError::NotFound("message"));
            }
            let changed = c.execute(
                "UPDATE mailbox SET unread = 0 WHERE account_id = ?1 AND message_id = ?2 AND unread = 1",
                params![account_id, id],
            )?;
            if changed > 0 {
                chain.append(c, now, &LogEvent::new("read", &actor, &id))?;
            }
            Ok(changed > 0)
        })
        .await
    }

    async fn move_to(
        &self,
        account_id: i64,
        message_id: &str,
        from: Folder,
        to: Folder,
    ) -> Result<()> {
        let id = message_id.to_owned();
        self.write(move |c, _| {
            let n = c.execute(
                "UPDATE mailbox SET folder = ?1 WHERE account_id = ?2 AND message_id = ?3 AND folder = ?4",
                params![to.as_str(), account_id, id, from.as_str()],
            )?;
            if n == 0 {
                return Err(StorageError::NotFound("message in that folder"));
            }
            Ok(())
        })
        .await
    }

    async fn delete(
        &self,
        account_id: i64,
        actor: &str,
        message_id: &str,
        retain_until: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Vec<[u8; 32]>> {
        let (id, actor) = (message_id.to_owned(), actor.to_owned());
        self.write(move |c, chain| {
            let n = c.execute(
                "DELETE FROM mailbox WHERE account_id = ?1 AND message_id = ?2",
                params![account_id, id],
            )?;
            if n == 0 {
                return Err(StorageError::NotFound("message"));
            }
            if let Some(until) = retain_until {
                c.prepare_cached("UPDATE messages SET retain_until = ?2 WHERE id = ?1")?
                    .execute(params![id, until])?;
            }
            chain.append(c, now, &LogEvent::new("deletion", &actor, &id))?;
            drop_message_if_unreferenced(c, &id)
        })
        .await
    }
}

/// A submission used the sender's upload of `sha256`: it no longer counts as pending.
fn use_up_upload(c: &Connection, account: i64, sha256: &[u8; 32]) -> Result<()> {
    c.prepare_cached("DELETE FROM uploads WHERE account_id = ?1 AND sha256 = ?2")?
        .execute(params![account, &sha256[..]])?;
    Ok(())
}
