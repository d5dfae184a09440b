//! [`EvidenceStore`] for [`SqliteStore`]: tables `evidence_records` and `evidence_batches`.
//!
//! Uses the store alone (and the chain, for the `evidence.sealed` log entry); it must not use
//! another concern's module.

use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::storage::error::{Result, StorageError, Timestamp};
use crate::storage::evidence::{
    EvidenceStore, NewBatch, NewEvidence, NewReceipt, StoredBatch, StoredEvidence,
};
use crate::storage::log::LogEvent;

#[async_trait::async_trait]
impl EvidenceStore for SqliteStore {
    async fn put_evidence(&self, records: Vec<NewEvidence>) -> Result<()> {
        self.write(move |c, _| insert_records(c, &records)).await
    }

    async fn put_receipt(&self, receipt: NewReceipt, records: Vec<NewEvidence>) -> Result<bool> {
        self.write(move |c, _| {
            let r = &receipt;
            let n = c.execute(
                "INSERT OR IGNORE INTO registered_receipts
                 (message_id, recipient, decision, statement, signature, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    r.message_id,
                    r.recipient,
                    r.decision,
                    r.statement,
                    r.signature,
                    r.at
                ],
            )?;
            if n == 0 {
                return Ok(false);
            }
            insert_records(c, &records)?;
            Ok(true)
        })
        .await
    }

    async fn receipt_of(
        &self,
        message_id: &str,
        recipient: &str,
    ) -> Result<Option<(String, Timestamp)>> {
        let (m, r) = (message_id.to_owned(), recipient.to_owned());
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT decision, at FROM registered_receipts WHERE message_id = ?1 AND recipient = ?2",
                params![m, r],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?)
        })
        .await
    }

    async fn unsealed_evidence(&self, limit: u32) -> Result<Vec<(i64, Vec<u8>)>> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT id, record FROM evidence_records WHERE batch IS NULL ORDER BY id LIMIT ?1",
            )?;
            let rows = stmt
                .query_map([limit], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn next_evidence_batch(&self) -> Result<u64> {
        self.read(|c| {
            let n: i64 = c.query_row(
                "SELECT COALESCE(MAX(batch), 0) FROM evidence_batches",
                [],
                |r| r.get(0),
            )?;
            Ok(n as u64 + 1)
        })
        .await
    }

    async fn put_evidence_batch(&self, batch: NewBatch, now: Timestamp) -> Result<()> {
        self.write(move |c, chain| {
            let b = &batch.batch;
            c.execute(
                "INSERT INTO evidence_batches (batch, head, signature, token, gen_time)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![b.batch as i64, b.head, b.signature, b.token, b.gen_time],
            )?;
            let mut stmt = c.prepare_cached(
                "UPDATE evidence_records SET batch = ?1, leaf = ?2, proof = ?3
                 WHERE id = ?4 AND batch IS NULL",
            )?;
            for (id, leaf, proof) in &batch.members {
                if stmt.execute(params![b.batch as i64, *leaf as i64, proof, id])? != 1 {
                    return Err(StorageError::Conflict(format!(
                        "evidence record {id} is already sealed"
                    )));
                }
            }
            chain.append(
                c,
                now,
                &LogEvent::new("evidence.sealed", "node", &b.batch.to_string())
                    .with(serde_json::json!({ "root": batch.root, "size": batch.members.len() })),
            )?;
            Ok(())
        })
        .await
    }

    async fn evidence_of(
        &self,
        message_id: &str,
    ) -> Result<(Vec<StoredEvidence>, Vec<StoredBatch>)> {
        let message_id = message_id.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT id, recipient, record, signature, batch, leaf, proof
                 FROM evidence_records WHERE message_id = ?1 ORDER BY id",
            )?;
            let records = stmt
                .query_map([&message_id], |r| {
                    Ok(StoredEvidence {
                        id: r.get(0)?,
                        recipient: r.get(1)?,
                        record: r.get(2)?,
                        signature: r.get(3)?,
                        batch: r.get::<_, Option<i64>>(4)?.map(|b| b as u64),
                        leaf: r.get::<_, Option<i64>>(5)?.map(|b| b as u64),
                        proof: r.get(6)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut batches = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            for b in records.iter().filter_map(|r| r.batch) {
                if !seen.insert(b) {
                    continue;
                }
                let row = c
                    .query_row(
                        "SELECT head, signature, token, gen_time FROM evidence_batches
                         WHERE batch = ?1",
                        [b as i64],
                        |r| {
                            Ok(StoredBatch {
                                batch: b,
                                head: r.get(0)?,
                                signature: r.get(1)?,
                                token: r.get(2)?,
                                gen_time: r.get(3)?,
                            })
                        },
                    )
                    .optional()?;
                batches.extend(row);
            }
            Ok((records, batches))
        })
        .await
    }
}

pub(super) fn insert_records(c: &rusqlite::Connection, records: &[NewEvidence]) -> Result<()> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO evidence_records (message_id, recipient, event, at, record, signature)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for r in records {
        stmt.execute(params![
            r.message_id,
            r.recipient,
            r.event,
            r.at,
            r.record,
            r.signature
        ])?;
    }
    Ok(())
}
