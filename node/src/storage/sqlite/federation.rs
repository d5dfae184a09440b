//! [`FederationStore`] on SQLite: peers, the outbox as the driver sees it (pending entries,
//! receipts, rejections, expiry), messages received from peers, certificates served to and
//! learned from peers, notices.
//!
//! Uses the store, `rows` and `outbox`; nothing uses it back.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::SqliteStore;
use super::outbox::{deliveries_of, dequeued, notify_failure, set_delivery, take_from_outbox};
use super::rows::{
    drop_message_if_unreferenced, hold_file_blob, insert_part, json, parse_sha, put_cert,
    query_certs,
};
use crate::storage::certs::CertRecord;
use crate::storage::error::{Result, StorageError, Timestamp};
use crate::storage::federation::{
    Expired, FederationStore, Notice, OutboxEntry, OutboxPart, PeerRecord, ReceiveOutcome,
    RemoteMessage,
};
use crate::storage::log::LogEvent;
use crate::storage::mail::DeliveryState;

const PEER_COLUMNS: &str = "domain, peer_id, addrs, ca_fingerprint, added_at, state, last_error, \
    retry_at, state_at, pull_cursor";

fn peer_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PeerRecord> {
    let addrs: String = r.get(2)?;
    Ok(PeerRecord {
        domain: r.get(0)?,
        peer_id: r.get(1)?,
        addrs: serde_json::from_str(&addrs).unwrap_or_default(),
        ca_fingerprint: r.get(3)?,
        added_at: r.get(4)?,
        state: r.get(5)?,
        last_error: r.get(6)?,
        retry_at: r.get(7)?,
        state_at: r.get(8)?,
        pull_cursor: r.get::<_, i64>(9)? as u64,
    })
}

fn bump_peer_generation(c: &Connection) -> Result<()> {
    c.prepare_cached("UPDATE meta SET value = value + 1 WHERE key = 'peer_generation'")?
        .execute([])?;
    Ok(())
}

#[async_trait]
impl FederationStore for SqliteStore {
    async fn put_peer(&self, peer: PeerRecord, event: LogEvent, now: Timestamp) -> Result<()> {
        self.write(move |c, chain| {
            let other: Option<String> = c
                .prepare_cached("SELECT domain FROM peers WHERE peer_id = ?1")?
                .query_row([&peer.peer_id], |r| r.get(0))
                .optional()?;
            if let Some(other) = other.filter(|d| *d != peer.domain) {
                return Err(StorageError::Conflict(format!(
                    "peer {} is already the node of {other}",
                    peer.peer_id
                )));
            }
            c.prepare_cached(
                "INSERT INTO peers (domain, peer_id, addrs, ca_fingerprint, added_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (domain) DO UPDATE SET peer_id = excluded.peer_id,
                     addrs = excluded.addrs, ca_fingerprint = excluded.ca_fingerprint",
            )?
            .execute(params![
                peer.domain,
                peer.peer_id,
                json(&peer.addrs),
                peer.ca_fingerprint,
                now
            ])?;
            bump_peer_generation(c)?;
            chain.append(c, now, &event)
        })
        .await
    }

    async fn remove_peer(&self, domain: &str, event: LogEvent, now: Timestamp) -> Result<()> {
        let domain = domain.to_owned();
        self.write(move |c, chain| {
            if c.execute("DELETE FROM peers WHERE domain = ?1", [&domain])? == 0 {
                return Err(StorageError::NotFound("peer"));
            }
            c.execute("DELETE FROM peer_served WHERE domain = ?1", [&domain])?;
            bump_peer_generation(c)?;
            chain.append(c, now, &event)
        })
        .await
    }

    async fn peers(&self) -> Result<Vec<PeerRecord>> {
        self.read(|c| {
            Ok(
                c.prepare_cached(&format!("SELECT {PEER_COLUMNS} FROM peers ORDER BY domain"))?
                    .query_map([], peer_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            )
        })
        .await
    }

    async fn peer(&self, domain: &str) -> Result<Option<PeerRecord>> {
        if let Some(p) = self.auth.peer(domain) {
            return Ok(Some(p));
        }
        let generation = self.auth.generation();
        let d = domain.to_owned();
        let peer = self
            .read_point(move |c| {
                Ok(c.prepare_cached(&format!(
                    "SELECT {PEER_COLUMNS} FROM peers WHERE domain = ?1"
                ))?
                .query_row([d], peer_row)
                .optional()?)
            })
            .await?;
        if let Some(p) = &peer {
            self.auth.keep_peer(generation, p);
        }
        Ok(peer)
    }

    async fn peer_generation(&self) -> Result<u64> {
        self.read_point(|c| {
            Ok(
                c.prepare_cached("SELECT value FROM meta WHERE key = 'peer_generation'")?
                    .query_row([], |r| r.get::<_, i64>(0))? as u64,
            )
        })
        .await
    }

    async fn set_peer_state(
        &self,
        domain: &str,
        state: &str,
        error: Option<String>,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<()> {
        let (domain, state) = (domain.to_owned(), state.to_owned());
        self.write(move |c, _| {
            c.prepare_cached(
                "UPDATE peers SET state = ?2, last_error = COALESCE(?3, last_error),
                     retry_at = ?4, state_at = ?5 WHERE domain = ?1",
            )?
            .execute(params![domain, state, error, retry_at, now])?;
            Ok(())
        })
        .await
    }

    async fn set_pull_cursor(&self, domain: &str, cursor: u64) -> Result<()> {
        let domain = domain.to_owned();
        self.write(move |c, _| {
            c.prepare_cached("UPDATE peers SET pull_cursor = ?2 WHERE domain = ?1")?
                .execute(params![domain, cursor as i64])?;
            Ok(())
        })
        .await
    }

    async fn outbox_pending(
        &self,
        domain: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>> {
        let domain = domain.to_owned();
        self.read(move |c| {
            let rows = c
                .prepare_cached(
                    "SELECT o.seq, o.message_id, m.sender, m.envelope, m.signature
                     FROM outbox o JOIN messages m ON m.id = o.message_id
                     WHERE o.domain = ?1 AND o.seq > ?2 ORDER BY o.seq LIMIT ?3",
                )?
                .query_map(params![domain, after as i64, limit as i64], |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        r.get::<_, String>(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut parts_of = c.prepare_cached(
                "SELECT sha256, size, data FROM parts WHERE message_id = ?1 ORDER BY idx",
            )?;
            rows.into_iter()
                .map(|(seq, message_id, sender, envelope, signature)| {
                    let parts = parts_of
                        .query_map([&message_id], |r| {
                            Ok(OutboxPart {
                                sha256: parse_sha(r.get(0)?)?,
                                size: r.get::<_, i64>(1)? as u64,
                                inline: r.get(2)?,
                            })
                        })?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    Ok(OutboxEntry {
                        seq,
                        message_id,
                        sender,
                        envelope,
                        signature,
                        parts,
                    })
                })
                .collect()
        })
        .await
    }

    async fn outbox_delivered(
        &self,
        domain: &str,
        message_id: &str,
        accepted: Vec<String>,
        refused: Vec<(String, String)>,
        receipt: serde_json::Value,
        now: Timestamp,
    ) -> Result<Vec<[u8; 32]>> {
        let (domain, id) = (domain.to_owned(), message_id.to_owned());
        self.write(move |c, chain| {
            // A receipt for something no longer queued (a late duplicate) changes nothing.
            let Some(queued) = take_from_outbox(c, &id, &domain)? else {
                return Ok(Vec::new());
            };
            for a in &queued {
                if accepted.contains(a) {
                    set_delivery(c, &id, a, "delivered", None, now)?;
                } else {
                    let reason = refused
                        .iter()
                        .find(|(r, _)| r == a)
                        .map(|(_, why)| why.as_str())
                        .unwrap_or("the receiving node did not accept this recipient");
                    set_delivery(c, &id, a, "failed", Some(reason), now)?;
                    notify_failure(c, &id, std::slice::from_ref(a), reason, now)?;
                }
            }
            chain.append(
                c,
                now,
                &LogEvent::new("federation.delivered", &domain, &id).with(receipt.clone()),
            )?;
            drop_message_if_unreferenced(c, &id)
        })
        .await
    }

    async fn outbox_rejected(
        &self,
        domain: &str,
        message_id: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<Vec<[u8; 32]>> {
        let (domain, id, reason) = (domain.to_owned(), message_id.to_owned(), reason.to_owned());
        self.write(move |c, chain| {
            let Some(addresses) = take_from_outbox(c, &id, &domain)? else {
                return Ok(Vec::new());
            };
            for a in &addresses {
                set_delivery(c, &id, a, "failed", Some(&reason), now)?;
            }
            notify_failure(c, &id, &addresses, &reason, now)?;
            chain.append(
                c,
                now,
                &LogEvent::new("federation.rejected", &domain, &id)
                    .with(serde_json::json!({ "to": addresses, "reason": reason })),
            )?;
            drop_message_if_unreferenced(c, &id)
        })
        .await
    }

    async fn outbox_expire(&self, now: Timestamp) -> Result<(Vec<Expired>, Vec<[u8; 32]>)> {
        self.write(move |c, chain| {
            let rows: Vec<(String, String, String, String)> = c
                .prepare_cached(
                    "DELETE FROM outbox WHERE expires_at <= ?1
                     RETURNING message_id, domain, recipients,
                         (SELECT sender FROM messages WHERE id = message_id)",
                )?
                .query_map([now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut expired = Vec::with_capacity(rows.len());
            let mut files = Vec::new();
            for (message_id, domain, recipients, sender) in rows {
                dequeued(c, &domain)?;
                let addresses: Vec<String> = serde_json::from_str(&recipients).unwrap_or_default();
                let last_error: Option<String> = c
                    .prepare_cached("SELECT last_error FROM peers WHERE domain = ?1")?
                    .query_row([&domain], |r| r.get(0))
                    .optional()?
                    .flatten();
                let reason = match &last_error {
                    Some(e) => format!(
                        "the node of {domain} could not be reached in time (last error: {e})"
                    ),
                    None => format!("the node of {domain} could not be reached in time"),
                };
                for a in &addresses {
                    set_delivery(c, &message_id, a, "failed", Some(&reason), now)?;
                }
                notify_failure(c, &message_id, &addresses, &reason, now)?;
                chain.append(
                    c,
                    now,
                    &LogEvent::new("federation.expired", &sender, &message_id).with(
                        serde_json::json!({ "domain": domain, "to": addresses, "reason": reason }),
                    ),
                )?;
                files.extend(drop_message_if_unreferenced(c, &message_id)?);
                expired.push(Expired {
                    message_id,
                    sender,
                    domain,
                    addresses,
                });
            }
            Ok((expired, files))
        })
        .await
    }

    async fn deliveries(&self, message_id: &str) -> Result<Vec<DeliveryState>> {
        let id = message_id.to_owned();
        self.read_point(move |c| deliveries_of(c, &id)).await
    }

    async fn receive_remote(&self, m: RemoteMessage, now: Timestamp) -> Result<ReceiveOutcome> {
        self.write(move |c, chain| {
            let envelope_sha: [u8; 32] = Sha256::digest(m.envelope.as_bytes()).into();
            let seen: Option<Vec<u8>> = c
                .prepare_cached("SELECT envelope_sha256 FROM received WHERE message_id = ?1")?
                .query_row([&m.id], |r| r.get(0))
                .optional()?;
            if let Some(seen) = seen {
                if seen == envelope_sha {
                    return Ok(ReceiveOutcome::Duplicate);
                }
                return Err(StorageError::Conflict("message ID already used".into()));
            }
            let taken: bool = c
                .prepare_cached("SELECT EXISTS(SELECT 1 FROM messages WHERE id = ?1)")?
                .query_row([&m.id], |r| r.get(0))?;
            if taken {
                return Err(StorageError::Conflict("message ID already used".into()));
            }
            c.prepare_cached(
                "INSERT INTO messages (id, sender, recipients, envelope, signature, size, parts, accepted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                m.id,
                m.sender,
                json(&m.all_recipients),
                m.envelope,
                m.signature,
                m.size as i64,
                m.parts.len() as i64,
                now
            ])?;
            for (i, p) in m.parts.iter().enumerate() {
                if p.inline.is_none() {
                    hold_file_blob(c, p.sha256, p.size)?;
                    // A message refers to the file now: it is no longer waiting for a commit.
                    c.prepare_cached("DELETE FROM peer_parts WHERE sha256 = ?1")?
                        .execute([&p.sha256[..]])?;
                }
                insert_part(c, &m.id, i, p.sha256, p.size, p.inline.as_deref())?;
            }
            let addresses: Vec<&str> = m.recipients.iter().map(|(_, a)| a.as_str()).collect();
            c.prepare_cached(
                "INSERT INTO received (message_id, domain, envelope_sha256, recipients, node_sig, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                m.id,
                m.peer_domain,
                &envelope_sha[..],
                json(&addresses),
                m.node_sig,
                now
            ])?;
            chain.append(
                c,
                now,
                &LogEvent::new("federation.received", &m.sender, &m.id).with(serde_json::json!({
                    "from_node": m.peer_domain, "to": addresses, "node_sig": m.node_sig,
                    "node_proof": m.node_proof,
                })),
            )?;
            let mut insert = c.prepare_cached(
                "INSERT INTO mailbox (account_id, message_id, folder, unread, received_at) VALUES (?1, ?2, 'inbox', 1, ?3)
                 ON CONFLICT DO NOTHING",
            )?;
            for (account, address) in &m.recipients {
                insert.execute(params![account, m.id, now])?;
                chain.append(c, now, &LogEvent::new("delivery", address, &m.id))?;
            }
            super::evidence::insert_records(c, &m.evidence)?;
            Ok(ReceiveOutcome::Stored)
        })
        .await
    }

    async fn received_by(&self, message_id: &str) -> Result<Option<(Vec<String>, [u8; 32])>> {
        let id = message_id.to_owned();
        self.read_point(move |c| {
            let r: Option<(String, Vec<u8>)> = c
                .prepare_cached(
                    "SELECT recipients, envelope_sha256 FROM received WHERE message_id = ?1",
                )?
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            r.map(|(to, sha)| {
                Ok((
                    serde_json::from_str(&to).unwrap_or_default(),
                    parse_sha(sha)?,
                ))
            })
            .transpose()
        })
        .await
    }

    async fn record_peer_part(
        &self,
        domain: &str,
        sha256: [u8; 32],
        size: u64,
        now: Timestamp,
    ) -> Result<()> {
        let domain = domain.to_owned();
        self.write(move |c, _| {
            hold_file_blob(c, sha256, size)?;
            c.prepare_cached(
                "INSERT INTO peer_parts (sha256, domain, size, received_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO UPDATE SET received_at = excluded.received_at",
            )?
            .execute(params![&sha256[..], domain, size as i64, now])?;
            Ok(())
        })
        .await
    }

    async fn blobs_held(&self, hashes: Vec<[u8; 32]>) -> Result<Vec<[u8; 32]>> {
        self.read_point(move |c| {
            let mut held = Vec::new();
            let mut q = c.prepare_cached("SELECT EXISTS(SELECT 1 FROM blobs WHERE sha256 = ?1)")?;
            for h in hashes {
                if q.query_row([&h[..]], |r| r.get::<_, bool>(0))? {
                    held.push(h);
                }
            }
            Ok(held)
        })
        .await
    }

    async fn record_served(&self, domain: &str, fingerprints: Vec<String>) -> Result<()> {
        let domain = domain.to_owned();
        self.write(move |c, _| {
            for f in &fingerprints {
                c.prepare_cached(
                    "INSERT OR IGNORE INTO peer_served (domain, fingerprint) VALUES (?1, ?2)",
                )?
                .execute(params![domain, f])?;
            }
            Ok(())
        })
        .await
    }

    async fn served_updates(
        &self,
        domain: &str,
        ca_fingerprint: &str,
        cursor: u64,
        max: usize,
    ) -> Result<(u64, Vec<String>)> {
        let (domain, ca) = (domain.to_owned(), ca_fingerprint.to_owned());
        self.read(move |c| {
            // Read first: changes made while we look are after it and come next time.
            let now_at: i64 = c
                .prepare_cached("SELECT value FROM meta WHERE key = 'cert_generation'")?
                .query_row([], |r| r.get(0))?;
            let rows = c
                .prepare_cached(
                    "SELECT generation, armored FROM certs
                     WHERE generation > ?1 AND generation <= ?5 AND (fingerprint = ?2 OR fingerprint IN
                         (SELECT fingerprint FROM peer_served WHERE domain = ?3))
                     ORDER BY generation LIMIT ?4",
                )?
                .query_map(params![cursor as i64, ca, domain, max as i64, now_at], |r| {
                    Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            // Everything up to the current generation has been looked at when the page is
            // not full: the peer need not ask again until something changes.
            let next = if rows.len() < max {
                (now_at as u64).max(cursor)
            } else {
                rows.last().map_or(cursor, |(g, _)| *g)
            };
            Ok((next, rows.into_iter().map(|(_, a)| a).collect()))
        })
        .await
    }

    async fn certs_by_email_from(&self, email: &str, origin: &str) -> Result<Vec<String>> {
        let key = (email.to_owned(), origin.to_owned());
        if let Some(certs) = self.auth.certs_from(&key) {
            return Ok(certs);
        }
        let generation = self.auth.generation();
        let (e, o) = key.clone();
        let certs = self
            .read_point(move |c| {
                query_certs(
                    c,
                    "SELECT c.armored FROM cert_emails e JOIN certs c ON c.fingerprint = e.fingerprint
                     WHERE e.email = ?1 AND c.origin = ?2",
                    params![e, o],
                )
            })
            .await?;
        if !certs.is_empty() {
            self.auth.keep_certs_from(generation, key, &certs);
        }
        Ok(certs)
    }

    async fn put_remote_certs(
        &self,
        origin: &str,
        certs: Vec<CertRecord>,
        now: Timestamp,
    ) -> Result<()> {
        let origin = origin.to_owned();
        self.write(move |c, _| {
            for r in &certs {
                let held_as: Option<String> = c
                    .prepare_cached("SELECT origin FROM certs WHERE fingerprint = ?1")?
                    .query_row([&r.fingerprint], |r| r.get(0))
                    .optional()?;
                // A peer never overwrites a certificate that came from elsewhere.
                if held_as.is_none_or(|o| o == origin) {
                    put_cert(c, r, &origin, now)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn notices(&self, account_id: i64, limit: u32) -> Result<Vec<Notice>> {
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT id, message_id, text, created_at, unread FROM notices
                 WHERE account_id = ?1 ORDER BY id DESC LIMIT ?2",
            )?
            .query_map(params![account_id, limit], |r| {
                Ok(Notice {
                    id: r.get(0)?,
                    message_id: r.get(1)?,
                    text: r.get(2)?,
                    created_at: r.get(3)?,
                    unread: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn outbox_count(&self, domain: &str) -> Result<u64> {
        let domain = domain.to_owned();
        self.read_point(move |c| {
            Ok(
                c.prepare_cached("SELECT queued FROM peers WHERE domain = ?1")?
                    .query_row([domain], |r| r.get::<_, i64>(0))
                    .optional()?
                    .unwrap_or(0) as u64,
            )
        })
        .await
    }

    async fn dismiss_notice(&self, account_id: i64, id: i64) -> Result<bool> {
        self.write(move |c, _| {
            Ok(
                c.prepare_cached(
                    "UPDATE notices SET unread = 0 WHERE account_id = ?1 AND id = ?2",
                )?
                .execute(params![account_id, id])?
                    > 0,
            )
        })
        .await
    }
}
