//! [`AppPasswordStore`] for [`SqliteStore`]: app passwords (table `app_passwords`).
//!
//! Uses the store alone; it must not use another concern's module.

use rusqlite::{OptionalExtension, Row, params};

use super::SqliteStore;
use crate::storage::app_passwords::{AppPasswordRow, AppPasswordStore};
use crate::storage::error::{Result, Timestamp};
use crate::storage::log::LogEvent;

const COLUMNS: &str = "id, account_id, label, created_at, last_used_at";

fn row(r: &Row<'_>) -> rusqlite::Result<AppPasswordRow> {
    Ok(AppPasswordRow {
        id: r.get(0)?,
        account_id: r.get(1)?,
        label: r.get(2)?,
        created_at: r.get(3)?,
        last_used_at: r.get(4)?,
    })
}

#[async_trait::async_trait]
impl AppPasswordStore for SqliteStore {
    async fn create_app_password(
        &self,
        account_id: i64,
        actor: &str,
        label: &str,
        verifier: [u8; 32],
        max: u32,
        now: Timestamp,
    ) -> Result<Option<i64>> {
        let (actor, label) = (actor.to_owned(), label.to_owned());
        self.write(move |c, chain| {
            let live: i64 = c.query_row(
                "SELECT COUNT(*) FROM app_passwords WHERE account_id = ?1 AND revoked_at IS NULL",
                [account_id],
                |r| r.get(0),
            )?;
            if live >= i64::from(max) {
                return Ok(None);
            }
            let id: i64 = c.query_row(
                "INSERT INTO app_passwords (account_id, label, verifier, created_at)
                 VALUES (?1, ?2, ?3, ?4) RETURNING id",
                params![account_id, label, &verifier[..], now],
                |r| r.get(0),
            )?;
            chain.append(
                c,
                now,
                &LogEvent::new("app_password.created", &actor, &actor)
                    .with(serde_json::json!({ "id": id, "label": label })),
            )?;
            Ok(Some(id))
        })
        .await
    }

    async fn app_passwords_of(&self, account_id: i64) -> Result<Vec<AppPasswordRow>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM app_passwords
                 WHERE account_id = ?1 AND revoked_at IS NULL ORDER BY id"
            ))?;
            Ok(stmt
                .query_map([account_id], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn revoke_app_password(
        &self,
        account_id: i64,
        id: i64,
        actor: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let actor = actor.to_owned();
        self.write(move |c, chain| {
            let label = c
                .query_row(
                    "UPDATE app_passwords SET revoked_at = ?3
                     WHERE id = ?1 AND account_id = ?2 AND revoked_at IS NULL RETURNING label",
                    params![id, account_id, now],
                    |r| r.get::<_, String>(0),
                )
                .optional()?;
            let Some(label) = label else {
                return Ok(false);
            };
            chain.append(
                c,
                now,
                &LogEvent::new("app_password.revoked", &actor, &actor)
                    .with(serde_json::json!({ "id": id, "label": label })),
            )?;
            Ok(true)
        })
        .await
    }

    async fn app_password_by_verifier(&self, verifier: [u8; 32]) -> Result<Option<AppPasswordRow>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM app_passwords WHERE verifier = ?1 AND revoked_at IS NULL"
            ))?
            .query_row([&verifier[..]], row)
            .optional()?)
        })
        .await
    }

    async fn touch_app_password(&self, id: i64, now: Timestamp) -> Result<()> {
        self.write(move |c, _| {
            c.execute(
                "UPDATE app_passwords SET last_used_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            Ok(())
        })
        .await
    }
}
