//! Evidence records (`crate::evidence`) as storage offers them: [`EvidenceStore`].
//!
//! A record is stored signed and unsealed; the sealing driver (`node::seal_evidence`) takes the
//! unsealed ones in order, seals them into a time-stamped batch and stores the batch with each
//! record's place and inclusion proof in one commit. It must not depend on any other concern's
//! module.

use async_trait::async_trait;

use super::error::{Result, Timestamp};

/// A signed record to keep (`crate::evidence::Record::to_bytes` and its signature).
#[derive(Clone, Debug)]
pub struct NewEvidence {
    pub message_id: String,
    /// The recipient the record concerns (`None`: the message as a whole).
    pub recipient: Option<String>,
    pub event: String,
    pub at: Timestamp,
    pub record: Vec<u8>,
    pub signature: String,
}

/// A registered message's recipient's signed decision (`accept` or `refuse`).
#[derive(Clone, Debug)]
pub struct NewReceipt {
    pub message_id: String,
    pub recipient: String,
    pub decision: String,
    pub statement: String,
    pub signature: String,
    pub at: Timestamp,
}

/// A stored record; `batch`, `leaf` and `proof` once sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvidence {
    pub id: i64,
    pub recipient: Option<String>,
    pub record: Vec<u8>,
    pub signature: String,
    pub batch: Option<u64>,
    pub leaf: Option<u64>,
    pub proof: Option<Vec<u8>>,
}

/// A sealed batch: its head's bytes, signature and time-stamp token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBatch {
    pub batch: u64,
    pub head: Vec<u8>,
    pub signature: String,
    pub token: Vec<u8>,
    pub gen_time: Timestamp,
}

/// A batch to store, with each member record's (id, leaf index, proof).
#[derive(Clone, Debug)]
pub struct NewBatch {
    pub batch: StoredBatch,
    pub members: Vec<(i64, u64, Vec<u8>)>,
    /// The Merkle root (hex), logged in the transaction log with the batch.
    pub root: String,
}

#[async_trait]
pub trait EvidenceStore: Send + Sync + 'static {
    /// Keeps signed records (one commit).
    async fn put_evidence(&self, records: Vec<NewEvidence>) -> Result<()>;
    /// Up to `limit` unsealed records, oldest first: (id, record bytes).
    async fn unsealed_evidence(&self, limit: u32) -> Result<Vec<(i64, Vec<u8>)>>;
    /// The number the next batch gets.
    async fn next_evidence_batch(&self) -> Result<u64>;
    /// Stores a sealed batch and its members' places, and logs `evidence.sealed` (one commit).
    /// A member that is already sealed (a second driver) fails the whole batch.
    async fn put_evidence_batch(&self, batch: NewBatch, now: Timestamp) -> Result<()>;
    /// Keeps a registered message's recipient's decision with the evidence records it makes
    /// (one commit). `false` (and nothing stored) when the recipient decided before.
    async fn put_receipt(&self, receipt: NewReceipt, records: Vec<NewEvidence>) -> Result<bool>;
    /// The recipient's decision on a registered message: (decision, at).
    async fn receipt_of(
        &self,
        message_id: &str,
        recipient: &str,
    ) -> Result<Option<(String, Timestamp)>>;
    /// A message's records, in the order they were made, and the batches that seal them.
    async fn evidence_of(
        &self,
        message_id: &str,
    ) -> Result<(Vec<StoredEvidence>, Vec<StoredBatch>)>;
}
