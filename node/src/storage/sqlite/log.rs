//! [`LogStore`] on SQLite: free-standing events, checkpoints and verifying the chain.
//!
//! Appending is the chain's (`chain`); this module only offers it as operations and reads the
//! log back. It must not use any other concern's module.

use async_trait::async_trait;

use super::SqliteStore;
use super::chain::verify_chain;
use crate::storage::error::StorageError;
use crate::storage::error::{Result, Timestamp};
use crate::storage::log::{CheckpointRef, LogEvent, LogReport, LogStore};

#[async_trait]
impl LogStore for SqliteStore {
    async fn log(&self, events: Vec<LogEvent>, now: Timestamp) -> Result<()> {
        self.write(move |c, chain| {
            for e in &events {
                chain.append(c, now, e)?;
            }
            Ok(())
        })
        .await
    }

    async fn checkpoint(&self, now: Timestamp) -> Result<()> {
        self.write(move |c, chain| chain.checkpoint(c, now)).await
    }

    async fn verify_log(&self) -> Result<LogReport> {
        let key = self.verifying_key;
        self.read(move |c| verify_chain(c, &key)).await
    }

    async fn unstamped_checkpoint(&self) -> Result<Option<CheckpointRef>> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT c.seq, c.hash, c.at FROM checkpoints c
                 LEFT JOIN checkpoint_timestamps t ON t.seq = c.seq
                 WHERE c.seq = (SELECT MAX(seq) FROM checkpoints) AND t.seq IS NULL",
            )?;
            let mut rows = stmt.query([])?;
            let Some(r) = rows.next()? else {
                return Ok(None);
            };
            let hash: Vec<u8> = r.get(1)?;
            let hash: [u8; 32] = hash
                .try_into()
                .map_err(|_| StorageError::Corrupt("checkpoint hash is not 32 bytes".into()))?;
            Ok(Some(CheckpointRef {
                seq: r.get::<_, i64>(0)? as u64,
                hash,
                at: r.get(2)?,
            }))
        })
        .await
    }

    async fn put_checkpoint_timestamp(
        &self,
        seq: u64,
        token: Vec<u8>,
        gen_time: Timestamp,
    ) -> Result<()> {
        self.write(move |c, _| {
            c.execute(
                "INSERT OR IGNORE INTO checkpoint_timestamps (seq, token, gen_time)
                 VALUES (?1, ?2, ?3)",
                rusqlite::params![seq as i64, token, gen_time],
            )?;
            Ok(())
        })
        .await
    }

    async fn checkpoint_timestamp(&self, seq: u64) -> Result<Option<(Vec<u8>, Timestamp)>> {
        self.read(move |c| {
            let mut stmt =
                c.prepare("SELECT token, gen_time FROM checkpoint_timestamps WHERE seq = ?1")?;
            let mut rows = stmt.query([seq as i64])?;
            match rows.next()? {
                Some(r) => Ok(Some((r.get(0)?, r.get(1)?))),
                None => Ok(None),
            }
        })
        .await
    }
}
