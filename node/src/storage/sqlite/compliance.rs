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
}
