//! What a backup (`crate::backup`) needs of the database: one consistent copy of it, what that
//! copy refers to (the log's head, the blob files), and the log check of a restored copy.
//!
//! The copy is `VACUUM INTO`: it reads the whole database inside one read transaction, so it
//! is the state after one commit and before the next, while the node's writer goes on (WAL:
//! the reader blocks nobody). Everything else here reads that copy, never the live file, so
//! the blobs and the head it reports are the copy's own. It must not write the live database.

use std::path::Path;

use ed25519_dalek::VerifyingKey;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::chain::verify_chain;
use super::schema::open_connection;
use crate::storage::error::{Result, StorageError};
use crate::storage::log::LogReport;

/// What one snapshot holds that lives outside it or that a restore must find again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotContents {
    /// The last log entry's sequence number and hash (`0` and the genesis hash when empty).
    pub log_head: (u64, [u8; 32]),
    /// Every blob kept as a file (not inline in its row): SHA-256 and size.
    pub file_blobs: Vec<([u8; 32], u64)>,
}

/// Writes a consistent copy of the database at `db` to `out` (a new file), synced to disk.
pub fn snapshot_into(db: &Path, out: &Path) -> Result<()> {
    let conn = open_connection(db)?;
    let target = out
        .to_str()
        .ok_or_else(|| StorageError::Corrupt(format!("{} is not UTF-8", out.display())))?;
    conn.execute("VACUUM INTO ?1", [target])?;
    // SQLite does not sync what `VACUUM INTO` wrote.
    std::fs::File::open(out)?.sync_all()?;
    Ok(())
}

fn open_read_only(copy: &Path) -> Result<Connection> {
    Ok(Connection::open_with_flags(
        copy,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?)
}

/// The log head and the blob files of the database copy at `copy`.
pub fn snapshot_contents(copy: &Path) -> Result<SnapshotContents> {
    let c = open_read_only(copy)?;
    let head: Option<(i64, Vec<u8>)> = c
        .query_row(
            "SELECT seq, hash FROM txlog ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let log_head = match head {
        None => (0, crate::txlog::GENESIS),
        Some((seq, hash)) => (seq as u64, sha(hash)?),
    };
    let mut stmt =
        c.prepare("SELECT sha256, size FROM blobs WHERE data IS NULL ORDER BY sha256")?;
    let file_blobs = stmt
        .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?
        .map(|row| {
            let (h, size) = row?;
            Ok((sha(h)?, size as u64))
        })
        .collect::<Result<_>>()?;
    Ok(SnapshotContents {
        log_head,
        file_blobs,
    })
}

fn sha(h: Vec<u8>) -> Result<[u8; 32]> {
    h.try_into()
        .map_err(|_| StorageError::Corrupt("a stored SHA-256 is not 32 bytes".into()))
}

/// Checks the database copy at `copy`: SQLite's own integrity check, then the log's chain and
/// signed checkpoints against `key`.
pub fn verify_copy(copy: &Path, key: &VerifyingKey) -> Result<LogReport> {
    let c = open_read_only(copy)?;
    let integrity: String = c.query_row("PRAGMA integrity_check(1)", [], |r| r.get(0))?;
    if integrity != "ok" {
        return Err(StorageError::Corrupt(format!(
            "the database's integrity check failed: {integrity}"
        )));
    }
    verify_chain(&c, key)
}
