//! [`WebStore`] for [`SqliteStore`]: the web app's account settings and admin console.
//!
//! Uses the store and `rows`; it must not use another concern's module.

use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::rows::parse_sha;
use crate::storage::error::{Result, StorageError, Timestamp};
use crate::storage::log::LogEvent;
use crate::storage::web::{NewLogin, NodeCounts, SessionRow, WebStore};

#[async_trait::async_trait]
impl WebStore for SqliteStore {
    async fn change_login(
        &self,
        account_id: i64,
        login: NewLogin,
        keep_session: [u8; 32],
        now: Timestamp,
    ) -> Result<()> {
        self.write(move |c, chain| {
            let address: String = c
                .query_row(
                    "UPDATE accounts SET wrapped_key = ?1, kdf_salt = ?2, kdf_params = ?3,
                         login_hash = ?4
                     WHERE id = ?5 AND state = 'active' RETURNING address",
                    params![
                        login.wrapped_key,
                        login.kdf_salt,
                        login.kdf_params,
                        login.login_hash,
                        account_id
                    ],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or(StorageError::NotFound("account"))?;
            let ended = c.execute(
                "DELETE FROM sessions WHERE account_id = ?1 AND token_hash != ?2",
                params![account_id, &keep_session[..]],
            )?;
            chain.append(
                c,
                now,
                &LogEvent::new("account.password_changed", &address, &address)
                    .with(serde_json::json!({ "sessions_ended": ended })),
            )?;
            Ok(())
        })
        .await
    }

    async fn sessions_of(&self, account_id: i64, now: Timestamp) -> Result<Vec<SessionRow>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT token_hash, created_at, expires_at FROM sessions
                 WHERE account_id = ?1 AND expires_at > ?2 ORDER BY created_at DESC LIMIT 1000",
            )?;
            let rows = stmt.query_map(params![account_id, now], |r| {
                Ok(SessionRow {
                    token_hash: parse_sha(r.get(0)?)?,
                    created_at: r.get(1)?,
                    expires_at: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn end_session_of(
        &self,
        account_id: i64,
        token_hash: [u8; 32],
        now: Timestamp,
    ) -> Result<bool> {
        self.write(move |c, chain| {
            let address: Option<String> = c
                .query_row(
                    "DELETE FROM sessions WHERE token_hash = ?1 AND account_id = ?2
                     RETURNING (SELECT address FROM accounts WHERE id = sessions.account_id)",
                    params![&token_hash[..], account_id],
                    |r| r.get(0),
                )
                .optional()?;
            match address {
                Some(a) => {
                    chain.append(c, now, &LogEvent::new("session.ended", &a, &a))?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
        .await
    }

    async fn invite_expiries(&self) -> Result<Vec<(i64, Timestamp)>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT account_id, MAX(expires_at) FROM invites WHERE used_at IS NULL
                 GROUP BY account_id",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn node_counts(&self, now: Timestamp) -> Result<NodeCounts> {
        self.read(move |c| {
            let one = |sql: &str| -> rusqlite::Result<i64> { c.query_row(sql, [], |r| r.get(0)) };
            Ok(NodeCounts {
                messages: one("SELECT COUNT(*) FROM messages")? as u64,
                stored_bytes: one("SELECT COALESCE(SUM(size), 0) FROM messages")? as u64,
                log_entries: one("SELECT COALESCE(MAX(seq), 0) FROM txlog")? as u64,
                last_checkpoint_at: c
                    .query_row("SELECT MAX(at) FROM checkpoints", [], |r| r.get(0))
                    .optional()?
                    .flatten(),
                live_sessions: c.query_row(
                    "SELECT COUNT(*) FROM sessions WHERE expires_at > ?1",
                    [now],
                    |r| r.get::<_, i64>(0),
                )? as u64,
            })
        })
        .await
    }
}
