//! Row helpers that more than one concern runs inside its own write or read: parts and the
//! blobs they refer to (and dropping a message nobody holds), certificate rows, JSON columns.
//!
//! The shared layer under the concern modules: it may use only the schema's tables and the
//! storage types, never a concern module or the store itself.

use rusqlite::{Connection, OptionalExtension, params};

use crate::storage::certs::CertRecord;
use crate::storage::error::{Result, StorageError, Timestamp};

pub(super) fn parse_sha(v: Vec<u8>) -> rusqlite::Result<[u8; 32]> {
    v.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            32,
            rusqlite::types::Type::Blob,
            "sha256 is not 32 bytes".into(),
        )
    })
}

/// Inserts or replaces a certificate with its indexes, and bumps the generation.
pub(super) fn put_cert(c: &Connection, r: &CertRecord, origin: &str, now: Timestamp) -> Result<()> {
    let generation: i64 = c
        .prepare_cached(
            "UPDATE meta SET value = value + 1 WHERE key = 'cert_generation' RETURNING value",
        )?
        .query_row([], |row| row.get(0))?;
    c.prepare_cached(
        "INSERT INTO certs (fingerprint, armored, origin, updated_at, generation) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (fingerprint) DO UPDATE SET armored = excluded.armored,
             updated_at = excluded.updated_at, generation = excluded.generation",
    )?
    .execute(params![r.fingerprint, r.armored, origin, now, generation])?;
    c.prepare_cached("DELETE FROM cert_emails WHERE fingerprint = ?1")?
        .execute([&r.fingerprint])?;
    c.prepare_cached("DELETE FROM cert_handles WHERE fingerprint = ?1")?
        .execute([&r.fingerprint])?;
    for e in &r.emails {
        c.prepare_cached("INSERT OR IGNORE INTO cert_emails (email, fingerprint) VALUES (?1, ?2)")?
            .execute(params![e, r.fingerprint])?;
    }
    for h in &r.handles {
        c.prepare_cached(
            "INSERT OR IGNORE INTO cert_handles (handle, fingerprint) VALUES (?1, ?2)",
        )?
        .execute(params![h, r.fingerprint])?;
    }
    Ok(())
}

pub(super) fn query_certs(
    c: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
) -> Result<Vec<String>> {
    Ok(c.prepare_cached(sql)?
        .query_map(p, |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?)
}

/// Drops a message nobody holds any more (no mailbox entry, nothing queued for a peer, not a
/// retained compliance copy), and every blob only it used; returns the blob files to remove.
pub(super) fn drop_message_if_unreferenced(c: &Connection, id: &str) -> Result<Vec<[u8; 32]>> {
    let still_referenced: bool = c
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM mailbox WHERE message_id = ?1)
                OR EXISTS(SELECT 1 FROM outbox WHERE message_id = ?1)
                OR EXISTS(SELECT 1 FROM pickups WHERE message_id = ?1
                          AND state IN ('open', 'locked'))
                OR EXISTS(SELECT 1 FROM messages WHERE id = ?1 AND retain_until IS NOT NULL)",
        )?
        .query_row([id], |r| r.get(0))?;
    if still_referenced {
        return Ok(Vec::new());
    }
    drop_message(c, id)
}

/// Drops message `id` with its parts, pickups and deliveries, and every blob only it used;
/// returns the blob files to remove. The caller checked that nobody holds it.
pub(super) fn drop_message(c: &Connection, id: &str) -> Result<Vec<[u8; 32]>> {
    // Parts stored in their row take their data with them; the others may free a blob.
    let hashes: Vec<Vec<u8>> = c
        .prepare_cached(
            "DELETE FROM parts WHERE message_id = ?1 RETURNING sha256, data IS NULL AS in_blob",
        )?
        .query_map([id], |r| Ok((r.get(0)?, r.get::<_, bool>(1)?)))?
        .filter_map(|r| r.map(|(h, in_blob)| in_blob.then_some(h)).transpose())
        .collect::<rusqlite::Result<_>>()?;
    for table in [
        "DELETE FROM pickup_sessions WHERE pickup_id IN
             (SELECT id FROM pickups WHERE message_id = ?1)",
        "DELETE FROM pickup_issued_ids WHERE pickup_id IN
             (SELECT id FROM pickups WHERE message_id = ?1)",
        "DELETE FROM pickups WHERE message_id = ?1",
        "DELETE FROM deliveries WHERE message_id = ?1",
        "DELETE FROM external_copies WHERE message_id = ?1",
        "DELETE FROM compliance_packets WHERE message_id = ?1",
        "DELETE FROM messages WHERE id = ?1",
    ] {
        c.prepare_cached(table)?.execute([id])?;
    }
    drop_unreferenced(c, hashes)
}

/// Stores part `idx` of message `id`: with its data when it is small (`inline`), else as a
/// reference to the blob `sha256`, which the caller holds.
pub(super) fn insert_part(
    c: &Connection,
    id: &str,
    idx: usize,
    sha256: [u8; 32],
    size: u64,
    inline: Option<&[u8]>,
) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO parts (message_id, idx, sha256, size, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id, idx as i64, &sha256[..], size as i64, inline])?;
    Ok(())
}

/// Records that the blob `sha256` is a file of `size` bytes (its row has no inline data).
/// When the message `id` with this sender and envelope was accepted, if it was (a retried
/// submission); another message under the same ID is a `Conflict`.
pub(super) fn accepted_before(
    c: &Connection,
    id: &str,
    sender: &str,
    envelope: &str,
) -> Result<Option<Timestamp>> {
    let existing: Option<(String, String, Timestamp)> = c
        .prepare_cached("SELECT sender, envelope, accepted_at FROM messages WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    match existing {
        Some((s, e, at)) if s == sender && e == envelope => Ok(Some(at)),
        Some(_) => Err(StorageError::Conflict("message ID already used".into())),
        None => Ok(None),
    }
}

pub(super) fn hold_file_blob(c: &Connection, sha256: [u8; 32], size: u64) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO blobs (sha256, size, data) VALUES (?1, ?2, NULL) ON CONFLICT DO NOTHING",
    )?
    .execute(params![&sha256[..], size as i64])?;
    Ok(())
}

/// Deletes the blobs among `hashes` that no part and no pending upload refers to any more;
/// returns those that were files (for the caller to remove from the BlobStore).
pub(super) fn drop_unreferenced(c: &Connection, hashes: Vec<Vec<u8>>) -> Result<Vec<[u8; 32]>> {
    let mut files = Vec::new();
    for h in hashes {
        let used: bool = c
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM parts WHERE sha256 = ?1 AND data IS NULL)
                    OR EXISTS(SELECT 1 FROM uploads WHERE sha256 = ?1)
                    OR EXISTS(SELECT 1 FROM pickup_uploads WHERE sha256 = ?1)
                    OR EXISTS(SELECT 1 FROM peer_parts WHERE sha256 = ?1)",
            )?
            .query_row([&h], |r| r.get(0))?;
        if used {
            continue;
        }
        let inline: Option<Option<Vec<u8>>> = c
            .prepare_cached("DELETE FROM blobs WHERE sha256 = ?1 RETURNING data")?
            .query_row([&h], |r| r.get(0))
            .optional()?;
        if let Some(None) = inline {
            files.push(parse_sha(h)?);
        }
    }
    Ok(files)
}

pub(super) fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serialises")
}
