//! What operations asks of the metadata store ([`OpsStore`]): whether it answers (`/readyz`)
//! and how much work waits in its durable queues (the queue-depth gauges). Another back-end
//! (PostgreSQL) answers the same questions its own way. It depends only on `error`.
//!
//! Only domains leave here, never an address: the depths are counted per peer domain and per
//! destination domain.

use async_trait::async_trait;

use super::error::Result;

/// How much waits in the durable queues now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueDepths {
    /// Outbox entries (one per message and peer) waiting for a peer's receipt, per peer domain.
    pub peers: Vec<(String, u64)>,
    /// Outbound mails queued (not yet sent or failed), per destination domain (lowercased).
    pub smtp: Vec<(String, u64)>,
}

#[async_trait]
pub trait OpsStore: Send + Sync + 'static {
    /// A cheap read through the same path every read takes: `Ok` when the database answers.
    async fn ping(&self) -> Result<()>;
    /// The queue depths now (a few grouped counts over indexed columns).
    async fn queue_depths(&self) -> Result<QueueDepths>;
}
