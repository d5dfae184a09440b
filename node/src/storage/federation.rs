//! Storage for federation: peers an admin authorised, the durable outbox (one entry per message
//! and destination organisation), each remote recipient's delivery state, messages received
//! from peers, and which of our certificates each peer has looked up (it is sent their updates).
//!
//! Same contract as [`MetaStore`](super::MetaStore): a write that returns `Ok` is durable with
//! its transaction-log entries; one that returns `Err` changed nothing.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::certs::CertRecord;
use super::error::{Result, Timestamp};
use super::log::LogEvent;
use super::mail::{DeliveryState, NewPart};

/// A notice for a user from their node is the wire's (`sealpost-proto`): storage speaks it.
pub use sealpost_proto::Notice;

/// A peer organisation's node, as an admin authorised it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    pub domain: String,
    /// The libp2p peer ID (base58), i.e. the peer node's Ed25519 identity.
    pub peer_id: String,
    /// Multiaddresses to dial.
    pub addrs: Vec<String>,
    /// The peer organisation's CA fingerprint (hex): only this key may be bridged.
    pub ca_fingerprint: String,
    pub added_at: Timestamp,
    /// `new`, `connected`, `backing_off` or `disconnected`.
    pub state: String,
    pub last_error: Option<String>,
    pub retry_at: Option<Timestamp>,
    pub state_at: Option<Timestamp>,
    /// How far we have pulled the peer's certificate changes.
    pub pull_cursor: u64,
}

impl PeerRecord {
    /// A peer as an admin authorises it, before the node has reached it (`put_peer` sets the
    /// time it was added).
    pub fn new(domain: &str, peer_id: String, addrs: Vec<String>, ca_fingerprint: String) -> Self {
        PeerRecord {
            domain: domain.to_owned(),
            peer_id,
            addrs,
            ca_fingerprint,
            added_at: 0,
            state: "new".into(),
            last_error: None,
            retry_at: None,
            state_at: None,
            pull_cursor: 0,
        }
    }
}

/// One outbox entry, ready to be turned into a transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    pub seq: u64,
    pub message_id: String,
    pub sender: String,
    pub envelope: String,
    pub signature: String,
    /// Each part in order: SHA-256, size, and its bytes when it is stored in the database
    /// (a small part).
    pub parts: Vec<OutboxPart>,
}

/// One part of an [`OutboxEntry`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxPart {
    pub sha256: [u8; 32],
    pub size: u64,
    pub inline: Option<Vec<u8>>,
}

/// A message from a peer, checked by the federation host, for local recipients.
#[derive(Clone, Debug)]
pub struct RemoteMessage {
    pub id: String,
    pub peer_domain: String,
    pub sender: String,
    pub envelope: String,
    pub signature: String,
    pub size: u64,
    pub parts: Vec<NewPart>,
    /// Every recipient in the envelope (shown to readers as `to`).
    pub all_recipients: Vec<String>,
    /// The local recipients it is delivered to: (account id, address).
    pub recipients: Vec<(i64, String)>,
    /// The sending node's signature over the transfer (hex), kept as evidence.
    pub node_sig: String,
    /// For a transfer that came in a batch: where it sits under the signed root (the batch
    /// proof as JSON), without which `node_sig` cannot be checked against it.
    pub node_proof: Option<serde_json::Value>,
    /// Its evidence records (docs/evidence.md), kept in the same commit; none for a replay.
    pub evidence: Vec<super::evidence::NewEvidence>,
}

/// What happened to a received message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceiveOutcome {
    Stored,
    /// Already stored (a retry or a replay): nothing changed.
    Duplicate,
}

/// A delivery that expired: the sender is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expired {
    pub message_id: String,
    pub sender: String,
    pub domain: String,
    pub addresses: Vec<String>,
}

#[async_trait]
pub trait FederationStore: Send + Sync + 'static {
    /// Adds or replaces a peer (by domain). Conflict if its peer ID serves another domain.
    async fn put_peer(&self, peer: PeerRecord, event: LogEvent, now: Timestamp) -> Result<()>;
    /// Removes a peer. NotFound if there is none for this domain.
    async fn remove_peer(&self, domain: &str, event: LogEvent, now: Timestamp) -> Result<()>;
    async fn peers(&self) -> Result<Vec<PeerRecord>>;
    async fn peer(&self, domain: &str) -> Result<Option<PeerRecord>>;
    /// Changes whenever a peer is added, changed or removed (by any process).
    async fn peer_generation(&self) -> Result<u64>;
    async fn set_peer_state(
        &self,
        domain: &str,
        state: &str,
        error: Option<String>,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<()>;
    async fn set_pull_cursor(&self, domain: &str, cursor: u64) -> Result<()>;

    /// Queued entries for `domain` after `after`, in order.
    async fn outbox_pending(
        &self,
        domain: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>>;
    /// Records a peer's receipt: the entry leaves the outbox and each recipient's state is set.
    /// `refused` holds (address, reason). Returns blob files no longer needed by anything.
    async fn outbox_delivered(
        &self,
        domain: &str,
        message_id: &str,
        accepted: Vec<String>,
        refused: Vec<(String, String)>,
        receipt: serde_json::Value,
        now: Timestamp,
    ) -> Result<Vec<[u8; 32]>>;
    /// The peer's node refused the transfer for good: its recipients fail with `reason` and
    /// the sender gets a notice. Returns blob files no longer needed.
    async fn outbox_rejected(
        &self,
        domain: &str,
        message_id: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<Vec<[u8; 32]>>;
    /// Gives up on entries whose time ran out: their recipients fail with `reason`, the sender
    /// gets a notice. Returns what expired and blob files no longer needed.
    async fn outbox_expire(&self, now: Timestamp) -> Result<(Vec<Expired>, Vec<[u8; 32]>)>;
    async fn deliveries(&self, message_id: &str) -> Result<Vec<DeliveryState>>;

    /// Stores a message from a peer for its local recipients (idempotent by message ID).
    /// Conflict if the ID is taken by a different message.
    async fn receive_remote(&self, m: RemoteMessage, now: Timestamp) -> Result<ReceiveOutcome>;
    /// For a message received from a peer: the local recipients it was delivered to and the
    /// SHA-256 of its envelope.
    async fn received_by(&self, message_id: &str) -> Result<Option<(Vec<String>, [u8; 32])>>;
    /// Which of these blobs the node already holds.
    async fn blobs_held(&self, hashes: Vec<[u8; 32]>) -> Result<Vec<[u8; 32]>>;
    /// A part file `domain` streamed for a transfer not yet committed: held from now on (a
    /// retried transfer need not send it again), and collected with expired uploads if no
    /// committed message comes to refer to it.
    async fn record_peer_part(
        &self,
        domain: &str,
        sha256: [u8; 32],
        size: u64,
        now: Timestamp,
    ) -> Result<()>;

    /// Remembers that `domain`'s node looked up these certificates (it gets their updates).
    async fn record_served(&self, domain: &str, fingerprints: Vec<String>) -> Result<()>;
    /// Our certificates changed after `cursor` that `domain` may see (ones it looked up, and
    /// our CA), at most `max`, in generation order, with the generation of the last one.
    async fn served_updates(
        &self,
        domain: &str,
        ca_fingerprint: &str,
        cursor: u64,
        max: usize,
    ) -> Result<(u64, Vec<String>)>;
    /// Certificates for `email` that `origin` published (a peer's users, cached here).
    async fn certs_by_email_from(&self, email: &str, origin: &str) -> Result<Vec<String>>;
    /// Stores certificates learned from a peer, each already merged with what we hold.
    async fn put_remote_certs(
        &self,
        origin: &str,
        certs: Vec<CertRecord>,
        now: Timestamp,
    ) -> Result<()>;

    /// How many messages wait in the outbox for `domain`.
    async fn outbox_count(&self, domain: &str) -> Result<u64>;

    async fn notices(&self, account_id: i64, limit: u32) -> Result<Vec<Notice>>;
    /// Marks one of the account's notices as read. False if it has no such notice.
    async fn dismiss_notice(&self, account_id: i64, id: i64) -> Result<bool>;
}
