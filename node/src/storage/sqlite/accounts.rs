//! [`AccountStore`] on SQLite: accounts, invites, enrolment, logins, sessions, TOTP.
//!
//! Uses the store, `rows` and the log's chain; it must not reach into mail or federation.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::rows::{drop_message_if_unreferenced, drop_unreferenced, put_cert};
use crate::storage::accounts::{
    Account, AccountKind, AccountState, AccountStore, Enrolment, Session,
};
use crate::storage::error::{Result, StorageError, Timestamp};
use crate::storage::log::LogEvent;

const ACCOUNT_COLUMNS: &str = "id, address, name, is_admin, state, created_at, \
    (SELECT armored FROM certs c WHERE c.fingerprint = accounts.fingerprint), fingerprint, \
    wrapped_key, kdf_salt, kdf_params, login_hash, totp_secret, totp_enabled, kind";

fn account_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Account, String, String)> {
    Ok((
        Account {
            id: r.get(0)?,
            address: r.get(1)?,
            kind: AccountKind::User,
            name: r.get(2)?,
            is_admin: r.get(3)?,
            state: AccountState::Invited,
            created_at: r.get(5)?,
            cert: r.get(6)?,
            fingerprint: r.get(7)?,
            wrapped_key: r.get(8)?,
            kdf_salt: r.get(9)?,
            kdf_params: r.get(10)?,
            login_hash: r.get(11)?,
            totp_secret: r.get(12)?,
            totp_enabled: r.get(13)?,
        },
        r.get(4)?,
        r.get(14)?,
    ))
}

fn query_accounts(
    conn: &Connection,
    filter: &str,
    p: impl rusqlite::Params,
) -> Result<Vec<Account>> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts {filter}");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(p, account_row)?;
    rows.map(|r| {
        let (mut a, state, kind) = r?;
        a.state = AccountState::parse(&state)?;
        a.kind = AccountKind::parse(&kind)?;
        Ok(a)
    })
    .collect()
}

fn account_id(conn: &Connection, address: &str) -> Result<i64> {
    conn.query_row(
        "SELECT id FROM accounts WHERE address = ?1",
        [address],
        |r| r.get(0),
    )
    .optional()?
    .ok_or(StorageError::NotFound("account"))
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn create_account(
        &self,
        address: &str,
        name: Option<&str>,
        is_admin: bool,
        invite_hash: [u8; 32],
        invite_expires: Timestamp,
        actor: &str,
        now: Timestamp,
    ) -> Result<i64> {
        let (address, name, actor) = (
            address.to_owned(),
            name.map(str::to_owned),
            actor.to_owned(),
        );
        self.write(move |c, chain| {
            let exists: bool = c.query_row(
                "SELECT EXISTS(SELECT 1 FROM accounts WHERE address = ?1)",
                [&address],
                |r| r.get(0),
            )?;
            if exists {
                return Err(StorageError::Conflict(format!("{address} already has an account")));
            }
            c.execute(
                "INSERT INTO accounts (address, name, is_admin, state, created_at) VALUES (?1, ?2, ?3, 'invited', ?4)",
                params![address, name, is_admin, now],
            )?;
            let id = c.last_insert_rowid();
            c.execute(
                "INSERT INTO invites (code_hash, account_id, expires_at) VALUES (?1, ?2, ?3)",
                params![&invite_hash[..], id, invite_expires],
            )?;
            chain.append(
                c,
                now,
                &LogEvent::new("account.authorised", &actor, &address)
                    .with(serde_json::json!({ "admin": is_admin, "invite_expires": invite_expires })),
            )?;
            Ok(id)
        })
        .await
    }

    async fn reissue_invite(
        &self,
        address: &str,
        invite_hash: [u8; 32],
        invite_expires: Timestamp,
        actor: &str,
        now: Timestamp,
    ) -> Result<()> {
        let (address, actor) = (address.to_owned(), actor.to_owned());
        self.write(move |c, chain| {
            let id = account_id(c, &address)?;
            let state: String =
                c.query_row("SELECT state FROM accounts WHERE id = ?1", [id], |r| {
                    r.get(0)
                })?;
            if state != "invited" {
                return Err(StorageError::Conflict(format!(
                    "{address} has already enrolled"
                )));
            }
            c.execute("DELETE FROM invites WHERE account_id = ?1", [id])?;
            c.execute(
                "INSERT INTO invites (code_hash, account_id, expires_at) VALUES (?1, ?2, ?3)",
                params![&invite_hash[..], id, invite_expires],
            )?;
            chain.append(
                c,
                now,
                &LogEvent::new("account.invite_reissued", &actor, &address),
            )?;
            Ok(())
        })
        .await
    }

    async fn account_by_address(&self, address: &str) -> Result<Option<Account>> {
        if let Some(a) = self.auth.account(address) {
            return Ok(Some(a));
        }
        let generation = self.auth.generation();
        let address = address.to_owned();
        let account = self
            .read_point(move |c| Ok(query_accounts(c, "WHERE address = ?1", [address])?.pop()))
            .await?;
        if let Some(a) = &account {
            self.auth.keep_account(generation, a);
        }
        Ok(account)
    }

    async fn account_by_id(&self, id: i64) -> Result<Option<Account>> {
        self.read_point(move |c| Ok(query_accounts(c, "WHERE id = ?1", [id])?.pop()))
            .await
    }

    async fn accounts(&self) -> Result<Vec<Account>> {
        self.read(|c| query_accounts(c, "ORDER BY address", []))
            .await
    }

    async fn set_account_state(
        &self,
        address: &str,
        state: AccountState,
        actor: &str,
        now: Timestamp,
    ) -> Result<()> {
        let (address, actor) = (address.to_owned(), actor.to_owned());
        self.write(move |c, chain| {
            let id = account_id(c, &address)?;
            c.execute(
                "UPDATE accounts SET state = ?1 WHERE id = ?2",
                params![state.as_str(), id],
            )?;
            if state == AccountState::Disabled {
                // A disabled account keeps no open session.
                c.execute("DELETE FROM sessions WHERE account_id = ?1", [id])?;
                c.execute("DELETE FROM invites WHERE account_id = ?1", [id])?;
            }
            chain.append(
                c,
                now,
                &LogEvent::new("account.state", &actor, &address)
                    .with(serde_json::json!({ "state": state.as_str() })),
            )?;
            Ok(())
        })
        .await
    }

    async fn enroll(
        &self,
        invite_hash: [u8; 32],
        address: &str,
        e: Enrolment,
        now: Timestamp,
    ) -> Result<()> {
        let address = address.to_owned();
        self.write(move |c, chain| {
            let invite: Option<(i64, i64, Option<i64>, String, String)> = c
                .query_row(
                    "SELECT i.account_id, i.expires_at, i.used_at, a.address, a.state
                     FROM invites i JOIN accounts a ON a.id = i.account_id WHERE i.code_hash = ?1",
                    [&invite_hash[..]],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()?;
            let Some((id, expires, used, invited_address, state)) = invite else {
                return Err(StorageError::InviteInvalid);
            };
            if used.is_some() || expires < now || invited_address != address || state != "invited" {
                return Err(StorageError::InviteInvalid);
            }
            c.execute(
                "UPDATE invites SET used_at = ?1 WHERE code_hash = ?2",
                params![now, &invite_hash[..]],
            )?;
            c.execute(
                "UPDATE accounts SET state = 'active', fingerprint = ?1, wrapped_key = ?2,
                 kdf_salt = ?3, kdf_params = ?4, login_hash = ?5 WHERE id = ?6",
                params![
                    e.cert.fingerprint,
                    e.wrapped_key,
                    e.kdf_salt,
                    e.kdf_params,
                    e.login_hash,
                    id
                ],
            )?;
            put_cert(c, &e.cert, "local", now)?;
            chain.append(
                c,
                now,
                &LogEvent::new("enrolment", &address, &address)
                    .with(serde_json::json!({ "fingerprint": e.cert.fingerprint })),
            )?;
            Ok(())
        })
        .await
    }

    async fn login_failed(
        &self,
        account_id: i64,
        detail: serde_json::Value,
        now: Timestamp,
    ) -> Result<()> {
        self.write(move |c, chain| {
            let address: String = c.query_row(
                "SELECT address FROM accounts WHERE id = ?1",
                [account_id],
                |r| r.get(0),
            )?;
            chain.append(
                c,
                now,
                &LogEvent::new("login.failed", &address, &address).with(detail.clone()),
            )?;
            Ok(())
        })
        .await
    }

    async fn login_succeeded(
        &self,
        account_id: i64,
        token_hash: [u8; 32],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        self.write(move |c, chain| {
            let address: String = c.query_row(
                "SELECT address FROM accounts WHERE id = ?1",
                [account_id],
                |r| r.get(0),
            )?;
            c.execute("DELETE FROM sessions WHERE account_id = ?1 AND expires_at < ?2", params![account_id, now])?;
            c.execute(
                "INSERT INTO sessions (token_hash, account_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![&token_hash[..], account_id, now, expires_at],
            )?;
            chain.append(c, now, &LogEvent::new("login", &address, &address))?;
            Ok(())
        })
        .await
    }

    async fn session_account(
        &self,
        token_hash: [u8; 32],
        now: Timestamp,
    ) -> Result<Option<Account>> {
        if let Some(a) = self.auth.session(&token_hash, now) {
            return Ok(Some(a));
        }
        let generation = self.auth.generation();
        let found = self
            .read_point(move |c| {
                let session: Option<(i64, Timestamp)> = c
                    .prepare_cached(
                        "SELECT account_id, expires_at FROM sessions WHERE token_hash = ?1 AND expires_at > ?2",
                    )?
                    .query_row(params![&token_hash[..], now], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let Some((id, expires_at)) = session else {
                    return Ok(None);
                };
                Ok(query_accounts(c, "WHERE id = ?1", [id])?
                    .pop()
                    .map(|a| (expires_at, a)))
            })
            .await?;
        Ok(found.map(|(expires_at, account)| {
            self.auth
                .keep_session(generation, token_hash, expires_at, &account);
            account
        }))
    }

    async fn session(&self, token_hash: [u8; 32], now: Timestamp) -> Result<Option<Session>> {
        self.read_point(move |c| {
            Ok(c.prepare_cached(
                "SELECT account_id, created_at, expires_at FROM sessions WHERE token_hash = ?1 AND expires_at > ?2",
            )?
            .query_row(params![&token_hash[..], now], |r| {
                Ok(Session {
                    account_id: r.get(0)?,
                    created_at: r.get(1)?,
                    expires_at: r.get(2)?,
                })
            })
            .optional()?)
        })
        .await
    }

    async fn end_session(&self, token_hash: [u8; 32], now: Timestamp) -> Result<()> {
        self.write(move |c, chain| {
            let address: Option<String> = c
                .query_row(
                    "DELETE FROM sessions WHERE token_hash = ?1
                     RETURNING (SELECT address FROM accounts WHERE id = sessions.account_id)",
                    [&token_hash[..]],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(a) = address {
                chain.append(c, now, &LogEvent::new("logout", &a, &a))?;
            }
            Ok(())
        })
        .await
    }

    async fn use_totp_step(&self, account_id: i64, step: i64) -> Result<bool> {
        self.write(move |c, _| {
            Ok(c.execute(
                "UPDATE accounts SET totp_last_step = ?2 WHERE id = ?1 AND totp_last_step < ?2",
                params![account_id, step],
            )? == 1)
        })
        .await
    }

    async fn set_totp(
        &self,
        account_id: i64,
        secret: Option<Vec<u8>>,
        enabled: bool,
    ) -> Result<()> {
        self.write(move |c, _| {
            c.execute(
                "UPDATE accounts SET totp_secret = ?1, totp_enabled = ?2 WHERE id = ?3",
                params![secret, enabled, account_id],
            )?;
            Ok(())
        })
        .await
    }

    async fn remove_guest(
        &self,
        address: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<Vec<[u8; 32]>> {
        let (address, actor) = (address.to_owned(), actor.to_owned());
        self.write(move |c, chain| {
            let found: Option<(i64, Option<String>)> = c
                .query_row(
                    "SELECT id, fingerprint FROM accounts WHERE address = ?1 AND kind = 'guest'",
                    [&address],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((id, fingerprint)) = found else {
                return Err(StorageError::NotFound("guest"));
            };
            for sql in [
                "DELETE FROM sessions WHERE account_id = ?1",
                "DELETE FROM invites WHERE account_id = ?1",
                "DELETE FROM issued_ids WHERE account_id = ?1",
                "DELETE FROM notices WHERE account_id = ?1",
            ] {
                c.execute(sql, [id])?;
            }
            let uploads: Vec<Vec<u8>> = c
                .prepare("DELETE FROM uploads WHERE account_id = ?1 RETURNING sha256")?
                .query_map([id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let held: Vec<String> = c
                .prepare("DELETE FROM mailbox WHERE account_id = ?1 RETURNING message_id")?
                .query_map([id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut files = drop_unreferenced(c, uploads)?;
            for message_id in held {
                files.extend(drop_message_if_unreferenced(c, &message_id)?);
            }
            c.execute("DELETE FROM accounts WHERE id = ?1", [id])?;
            chain.append(
                c,
                now,
                &LogEvent::new("guest.removed", &actor, &address)
                    .with(serde_json::json!({ "fingerprint": fingerprint })),
            )?;
            Ok(files)
        })
        .await
    }
}
