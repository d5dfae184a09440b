//! [`SmimeStore`] for [`SqliteStore`]: S/MIME issuances (table `smime_certificates`).
//!
//! Uses the store alone; it must not use another concern's module.

use rusqlite::params;

use super::SqliteStore;
use crate::storage::error::{Result, Timestamp};
use crate::storage::log::LogEvent;
use crate::storage::smime::{SmimeIssuance, SmimeStore, StoredSmimeKey};

const COLUMNS: &str =
    "account_id, serial, spki_sha256, not_after, issued_at, certificate, wrapped_key";

fn issuance(r: &rusqlite::Row<'_>) -> rusqlite::Result<SmimeIssuance> {
    let certificate: Option<String> = r.get(5)?;
    let wrapped_key: Option<String> = r.get(6)?;
    Ok(SmimeIssuance {
        account_id: r.get(0)?,
        serial: r.get(1)?,
        spki_sha256: r.get(2)?,
        not_after: r.get(3)?,
        issued_at: r.get(4)?,
        stored: certificate
            .zip(wrapped_key)
            .map(|(certificate, wrapped_key)| StoredSmimeKey {
                certificate,
                wrapped_key,
            }),
    })
}

#[async_trait::async_trait]
impl SmimeStore for SqliteStore {
    async fn record_smime_issuance(
        &self,
        issuance: &SmimeIssuance,
        actor: &str,
        max: u32,
        since: Timestamp,
    ) -> Result<Option<Timestamp>> {
        let (i, actor) = (issuance.clone(), actor.to_owned());
        self.write(move |c, chain| {
            let (count, oldest): (i64, Option<Timestamp>) = c.query_row(
                "SELECT COUNT(*), MIN(issued_at) FROM smime_certificates
                 WHERE account_id = ?1 AND issued_at >= ?2",
                params![i.account_id, since],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if count >= i64::from(max) {
                return Ok(Some(oldest.unwrap_or(since)));
            }
            c.execute(
                "INSERT INTO smime_certificates
                 (account_id, serial, spki_sha256, not_after, issued_at, certificate, wrapped_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    i.account_id,
                    i.serial,
                    i.spki_sha256,
                    i.not_after,
                    i.issued_at,
                    i.stored.as_ref().map(|k| &k.certificate),
                    i.stored.as_ref().map(|k| &k.wrapped_key),
                ],
            )?;
            chain.append(
                c,
                i.issued_at,
                &LogEvent::new("smime.certificate_issued", &actor, &actor).with(
                    serde_json::json!({
                        "serial": i.serial,
                        "spki_sha256": i.spki_sha256,
                        "not_after": i.not_after,
                        "key_stored": i.stored.is_some(),
                    }),
                ),
            )?;
            Ok(None)
        })
        .await
    }

    async fn smime_issuances_of(&self, account_id: i64) -> Result<Vec<SmimeIssuance>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM smime_certificates WHERE account_id = ?1 ORDER BY id"
            ))?;
            Ok(stmt
                .query_map([account_id], issuance)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn newest_stored_smime_key(
        &self,
        account_id: i64,
        now: Timestamp,
    ) -> Result<Option<SmimeIssuance>> {
        use rusqlite::OptionalExtension as _;
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM smime_certificates
                 WHERE account_id = ?1 AND wrapped_key IS NOT NULL AND certificate IS NOT NULL
                   AND not_after > ?2
                 ORDER BY issued_at DESC, id DESC LIMIT 1"
            ))?;
            Ok(stmt
                .query_row(params![account_id, now], issuance)
                .optional()?)
        })
        .await
    }
}
