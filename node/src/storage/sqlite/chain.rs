//! The head of the transaction log inside one write batch: appending an entry (and a signed
//! checkpoint every `checkpoint_every` entries) in the batch's own transaction.
//!
//! Used by the writer (which loads the head at the start of each batch) and by every write
//! that logs what it does, and `verify_chain` checks a stored chain (the log's `verify_log`, a
//! restored backup). It must not start, commit or roll back a transaction.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use rusqlite::{Connection, OptionalExtension, params};

use crate::storage::error::{Result, StorageError, Timestamp};
use crate::storage::log::{LogEvent, LogReport};
use crate::txlog;

/// The head of the transaction log during one write batch.
#[derive(Clone)]
pub(super) struct ChainHead {
    pub(super) seq: u64,
    pub(super) hash: [u8; 32],
    pub(super) signed_seq: u64,
}

pub(super) struct Chain {
    pub(super) head: ChainHead,
    pub(super) key: Arc<SigningKey>,
    pub(super) checkpoint_every: u64,
}

impl Chain {
    pub(super) fn load(&mut self, conn: &Connection) -> Result<()> {
        let (seq, hash) = conn
            .query_row(
                "SELECT seq, hash FROM txlog ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Vec<u8>>(1)?)),
            )
            .optional()?
            .unwrap_or((0, txlog::GENESIS.to_vec()));
        let signed_seq: i64 =
            conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM checkpoints", [], |r| {
                r.get(0)
            })?;
        self.head = ChainHead {
            seq,
            hash: hash
                .try_into()
                .map_err(|_| StorageError::Corrupt("log head hash".into()))?,
            signed_seq: signed_seq as u64,
        };
        Ok(())
    }

    pub(super) fn append(
        &mut self,
        conn: &Connection,
        now: Timestamp,
        event: &LogEvent,
    ) -> Result<()> {
        let entry = txlog::Entry {
            seq: self.head.seq + 1,
            at: now,
            kind: event.kind.to_owned(),
            actor: event.actor.clone(),
            subject: event.subject.clone(),
            detail: event.detail.to_string(),
        };
        let hash = txlog::entry_hash(&self.head.hash, &entry);
        conn.prepare_cached(
            "INSERT INTO txlog (seq, at, kind, actor, subject, detail, prev, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            entry.seq as i64,
            entry.at,
            entry.kind,
            entry.actor,
            entry.subject,
            entry.detail,
            &self.head.hash[..],
            &hash[..]
        ])?;
        self.head.seq = entry.seq;
        self.head.hash = hash;
        if self.head.seq - self.head.signed_seq >= self.checkpoint_every {
            self.checkpoint(conn, now)?;
        }
        Ok(())
    }

    pub(super) fn checkpoint(&mut self, conn: &Connection, now: Timestamp) -> Result<()> {
        if self.head.seq == self.head.signed_seq {
            return Ok(());
        }
        let sig = txlog::sign_checkpoint(&self.key, self.head.seq, &self.head.hash, now);
        conn.prepare_cached(
            "INSERT INTO checkpoints (seq, hash, at, signature) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            self.head.seq as i64,
            &self.head.hash[..],
            now,
            &sig[..]
        ])?;
        self.head.signed_seq = self.head.seq;
        Ok(())
    }
}

/// Checks the hash chain and every signed checkpoint of the log in `c` against `key`.
pub(super) fn verify_chain(c: &Connection, key: &ed25519_dalek::VerifyingKey) -> Result<LogReport> {
    let mut v = txlog::ChainVerifier::new();
    let mut entries = 0u64;
    let mut stmt = c.prepare(
        "SELECT seq, at, kind, actor, subject, detail, prev, hash FROM txlog ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let e = txlog::Entry {
            seq: r.get::<_, i64>(0)? as u64,
            at: r.get(1)?,
            kind: r.get(2)?,
            actor: r.get(3)?,
            subject: r.get(4)?,
            detail: r.get(5)?,
        };
        let prev: Vec<u8> = r.get(6)?;
        let hash: Vec<u8> = r.get(7)?;
        v.entry(&e, &prev, &hash);
        entries += 1;
    }
    let mut checkpoints = 0u64;
    let mut stmt = c.prepare("SELECT seq, hash, at, signature FROM checkpoints ORDER BY seq")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let hash: Vec<u8> = r.get(1)?;
        let sig: Vec<u8> = r.get(3)?;
        v.checkpoint(key, r.get::<_, i64>(0)? as u64, &hash, r.get(2)?, &sig);
        checkpoints += 1;
    }
    Ok(LogReport {
        entries,
        checkpoints,
        first_broken: v.first_broken,
    })
}
