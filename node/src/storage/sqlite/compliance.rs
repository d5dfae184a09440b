//! [`ComplianceStore`] for [`SqliteStore`]: the compliance key (table `compliance_keys`).
//!
//! Uses the store and `rows`; it must not use another concern's module.

use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::rows::put_cert;
use crate::storage::certs::CertRecord;
use crate::storage::compliance::{ComplianceKeyRow, ComplianceStore};
use crate::storage::error::{Result, Timestamp};
use crate::storage::log::LogEvent;

#[async_trait::async_trait]
impl ComplianceStore for SqliteStore {
    async fn install_compliance_key(
        &self,
        record: CertRecord,
        event: LogEvent,
        now: Timestamp,
    ) -> Result<()> {
        self.write(move |c, chain| {
            c.execute(
                "UPDATE compliance_keys SET retired_at = ?1
                 WHERE retired_at IS NULL AND fingerprint <> ?2",
                params![now, record.fingerprint],
            )?;
            c.execute(
                "INSERT INTO compliance_keys (fingerprint, cert, installed_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (fingerprint) DO UPDATE SET cert = excluded.cert, retired_at = NULL",
                params![record.fingerprint, record.armored, now],
            )?;
            put_cert(c, &record, "local", now)?;
            chain.append(c, now, &event)?;
            Ok(())
        })
        .await
    }

    async fn compliance_key(&self) -> Result<Option<ComplianceKeyRow>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT fingerprint, cert, installed_at, retired_at FROM compliance_keys
                 WHERE retired_at IS NULL ORDER BY installed_at DESC LIMIT 1",
                [],
                |r| {
                    Ok(ComplianceKeyRow {
                        fingerprint: r.get(0)?,
                        cert: r.get(1)?,
                        installed_at: r.get(2)?,
                        retired_at: r.get(3)?,
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    async fn add_compliance_packet(
        &self,
        message_id: &str,
        fingerprint: &str,
        packet: Vec<u8>,
        event: LogEvent,
        now: Timestamp,
    ) -> Result<bool> {
        let (id, fingerprint) = (message_id.to_owned(), fingerprint.to_owned());
        self.write(move |c, chain| {
            let added = c
                .prepare_cached(
                    "INSERT INTO compliance_packets (message_id, fingerprint, packet, added_by,
                         added_at)
                     SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM messages WHERE id = ?1)
                     ON CONFLICT (message_id, fingerprint) DO NOTHING",
                )?
                .execute(params![id, fingerprint, packet, event.actor, now])?;
            if added == 0 {
                return Ok(false);
            }
            c.prepare_cached("UPDATE messages SET compliance_pending = 0 WHERE id = ?1")?
                .execute([&id])?;
            chain.append(c, now, &event)?;
            Ok(true)
        })
        .await
    }

    async fn compliance_packets(&self, message_id: &str) -> Result<Vec<Vec<u8>>> {
        let id = message_id.to_owned();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT packet FROM compliance_packets WHERE message_id = ?1 ORDER BY added_at",
            )?
            .query_map([&id], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn compliance_pending_count(&self) -> Result<u64> {
        self.read(|c| {
            Ok(
                c.prepare_cached("SELECT COUNT(*) FROM messages WHERE compliance_pending = 1")?
                    .query_row([], |r| r.get::<_, i64>(0))? as u64,
            )
        })
        .await
    }
}
