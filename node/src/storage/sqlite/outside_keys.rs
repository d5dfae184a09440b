//! [`OutsideKeyStore`] for [`SqliteStore`]: imported outside keys (tables `outside_keys` and
//! `outside_key_addresses`).
//!
//! Uses the store alone; it must not use another concern's module.

use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use crate::storage::error::{Result, StorageError, Timestamp};
use crate::storage::log::LogEvent;
use crate::storage::outside_keys::{KeyOwner, NewOutsideKey, OutsideKeyRow, OutsideKeyStore};

const COLUMNS: &str = "k.id, k.owner, k.kind, k.fingerprint, k.material, k.imported_at";

/// Rows of `sql` (selecting [`COLUMNS`]) with their addresses.
fn rows(c: &Connection, sql: &str, args: impl rusqlite::Params) -> Result<Vec<OutsideKeyRow>> {
    let mut stmt = c.prepare_cached(sql)?;
    let found = stmt
        .query_map(args, |r| {
            Ok((
                r.get::<_, i64>(0)?,
                OutsideKeyRow {
                    owner: match r.get::<_, Option<i64>>(1)? {
                        Some(id) => KeyOwner::User(id),
                        None => KeyOwner::Admin,
                    },
                    kind: r.get(2)?,
                    fingerprint: r.get(3)?,
                    material: r.get(4)?,
                    imported_at: r.get(5)?,
                    addresses: Vec::new(),
                },
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut addresses = c.prepare_cached(
        "SELECT address FROM outside_key_addresses WHERE key_id = ?1 ORDER BY address",
    )?;
    let mut out = Vec::with_capacity(found.len());
    for (id, mut row) in found {
        row.addresses = addresses
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        out.push(row);
    }
    Ok(out)
}

#[async_trait::async_trait]
impl OutsideKeyStore for SqliteStore {
    async fn import_outside_key(
        &self,
        key: NewOutsideKey,
        max: u64,
        event: LogEvent,
        now: Timestamp,
    ) -> Result<()> {
        self.write(move |c, chain| {
            let owner = key.owner.column();
            c.execute(
                "DELETE FROM outside_keys WHERE IFNULL(owner, 0) = IFNULL(?1, 0)
                     AND fingerprint = ?2",
                params![owner, key.fingerprint],
            )?;
            let held: i64 = c.query_row(
                "SELECT COUNT(*) FROM outside_keys WHERE IFNULL(owner, 0) = IFNULL(?1, 0)",
                [owner],
                |r| r.get(0),
            )?;
            if held as u64 >= max {
                return Err(StorageError::Conflict(format!(
                    "at most {max} imported keys: remove one first"
                )));
            }
            let id: i64 = c.query_row(
                "INSERT INTO outside_keys (owner, kind, fingerprint, material, imported_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                params![owner, key.kind, key.fingerprint, key.material, now],
                |r| r.get(0),
            )?;
            let mut add = c.prepare_cached(
                "INSERT OR IGNORE INTO outside_key_addresses (key_id, address) VALUES (?1, ?2)",
            )?;
            for a in &key.addresses {
                add.execute(params![id, a])?;
            }
            chain.append(c, now, &event)?;
            Ok(())
        })
        .await
    }

    async fn outside_keys_for(
        &self,
        owner: KeyOwner,
        address: &str,
        limit: usize,
    ) -> Result<Vec<OutsideKeyRow>> {
        let address = address.to_owned();
        self.read(move |c| {
            rows(
                c,
                &format!(
                    "SELECT {COLUMNS} FROM outside_key_addresses a
                     JOIN outside_keys k ON k.id = a.key_id
                     WHERE a.address = ?1 AND (k.owner IS NULL OR k.owner = ?2)
                     ORDER BY k.owner IS NULL, k.id LIMIT ?3"
                ),
                params![address, owner.column(), limit as i64],
            )
        })
        .await
    }

    async fn outside_keys_of(&self, owner: KeyOwner, limit: usize) -> Result<Vec<OutsideKeyRow>> {
        self.read(move |c| {
            rows(
                c,
                &format!(
                    "SELECT {COLUMNS} FROM outside_keys k
                     WHERE IFNULL(k.owner, 0) = IFNULL(?1, 0) ORDER BY k.id LIMIT ?2"
                ),
                params![owner.column(), limit as i64],
            )
        })
        .await
    }

    async fn remove_outside_key(
        &self,
        owner: KeyOwner,
        fingerprint: &str,
        event: LogEvent,
        now: Timestamp,
    ) -> Result<bool> {
        let fingerprint = fingerprint.to_owned();
        self.write(move |c, chain| {
            let gone = c
                .query_row(
                    "DELETE FROM outside_keys WHERE IFNULL(owner, 0) = IFNULL(?1, 0)
                         AND fingerprint = ?2 RETURNING id",
                    params![owner.column(), fingerprint],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?;
            if gone.is_some() {
                chain.append(c, now, &event)?;
            }
            Ok(gone.is_some())
        })
        .await
    }
}
