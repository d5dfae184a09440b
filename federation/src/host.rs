//! The boundary between the federation driver and the node that hosts it.
//!
//! The driver (`net`) moves frames and part bytes between nodes over QUIC; everything that
//! touches mailboxes, certificates or the database is the host's, behind [`Host`]. The driver
//! authenticates the peer (QUIC's TLS proves its peer ID), checks frames against [`Limits`],
//! checks node signatures, signs what it sends, and bounds every queue; the host decides who a
//! peer may speak for, whether a transfer is admissible, and stores things durably.
//!
//! [`Limits`]: crate::Limits

use std::pin::Pin;

use async_trait::async_trait;
use tokio::io::AsyncRead;

use crate::frame::{BatchProof, CertUpdates, LookupAnswer, MessageId, PartRef, Receipt, Transfer};

pub use libp2p::{Multiaddr, PeerId};

/// A peer as an admin authorised it: one peer ID, where to reach it, and the one domain it may
/// speak for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub peer_id: PeerId,
    pub addrs: Vec<Multiaddr>,
    pub domain: String,
}

/// The bytes of one ciphertext part, read as a stream (parts can be gigabytes).
pub type PartReader = Pin<Box<dyn AsyncRead + Send>>;

/// The host's first answer to an inbound transfer, before any part bytes travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Send these parts (indices into [`Transfer::parts`], ascending), then the host commits.
    /// An empty list is valid: the host already holds every part.
    Want(Vec<u32>),
    /// Answer at once with this receipt, unsigned (the driver signs it): a duplicate of a
    /// transfer already stored, or one refused for every recipient.
    Answer(Receipt),
}

/// A transfer waiting in the host's durable outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The host's queue position: [`Host::pending`] returns items after a given position.
    pub seq: u64,
    /// Unsigned (`node_sig` empty): the driver signs it.
    pub transfer: Transfer,
}

/// How a peer's connection stands, reported by the driver so the host can show it to admins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerState {
    Connected,
    /// Sending failed; the next attempt is at `retry_at` (Unix seconds).
    BackingOff {
        retry_at: i64,
        error: String,
    },
    Disconnected {
        error: Option<String>,
    },
}

/// Why the host could not do what the driver asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The peer's request is not acceptable; the message is told to the peer.
    #[error("{0}")]
    Refused(String),
    /// Our own fault (storage, I/O): the peer should retry later; details stay in our log.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
}

/// What the node provides to the federation driver.
///
/// Every `peer` argument is a peer the driver authenticated (its peer ID proven by QUIC's TLS)
/// and found in [`Host::peers`]; streams from unknown peer IDs never reach the host.
#[async_trait]
pub trait Host: Send + Sync + 'static {
    /// The authorised peers. Read at start and again after [`crate::net::Handle::peers_changed`].
    async fn peers(&self) -> Vec<Peer>;

    // ----- inbound -----

    /// An inbound transfer whose frame is within limits and whose node signature is the peer's.
    /// The host checks that the peer speaks for the sender's domain, the sender's signature
    /// through its trust view, and de-duplicates by message ID.
    async fn admit(&self, peer: &Peer, transfer: &Transfer) -> Result<Admission, HostError>;

    /// Stores one wanted part, exactly `part.size` bytes, checking its hash. On error, the
    /// partial bytes are discarded by the host.
    async fn store_part(
        &self,
        peer: &Peer,
        part: &PartRef,
        data: &mut PartReader,
    ) -> Result<(), HostError>;

    /// Every part is held: stores the message durably and returns the (unsigned) receipt.
    /// Must be idempotent: committing the same transfer twice stores it once.
    async fn commit(&self, peer: &Peer, transfer: &Transfer) -> Result<Receipt, HostError>;

    /// A transfer that arrived in a [`crate::Batch`], whose node signature the driver checked:
    /// every part is inline, `transfer.node_sig` holds the batch's signature and `proof` shows
    /// that it covers this transfer (keep both as evidence). Answers as a lone transfer would
    /// be answered: the unsigned receipt, or the error.
    ///
    /// The default takes the steps of a lone transfer ([`receive_in_steps`]); a host may do
    /// them at once.
    async fn receive_batched(
        &self,
        peer: &Peer,
        transfer: &Transfer,
        proof: &BatchProof,
    ) -> Result<Receipt, HostError> {
        let _ = proof;
        receive_in_steps(self, peer, transfer).await
    }

    /// Our organisation record (JSON), as our directory publishes it, for a peer that asks.
    async fn org_record(&self, peer: &Peer) -> Result<String, HostError>;

    /// Our evidence bundle (JSON) of a message from the peer's domain, for its sender's node
    /// (docs/evidence.md). A host that keeps no evidence refuses.
    async fn evidence(&self, peer: &Peer, message_id: &str) -> Result<String, HostError> {
        let _ = (peer, message_id);
        Err(HostError::Refused(
            "this node keeps no evidence records".into(),
        ))
    }

    /// A directory look-up by a peer: certificates for one of our addresses.
    async fn lookup(&self, peer: &Peer, address: &str) -> Result<LookupAnswer, HostError>;

    /// Our certificate changes after `cursor` that this peer may see (at most `max` certs).
    async fn updates_since(
        &self,
        peer: &Peer,
        cursor: u64,
        max: usize,
    ) -> Result<CertUpdates, HostError>;

    /// The cursor we last reached when pulling from this peer (0 if never).
    async fn pull_cursor(&self, peer: &Peer) -> Result<u64, HostError>;

    /// Certificate updates pulled from this peer; the host keeps what the peer may speak for
    /// and records `updates.cursor` as the new pull cursor.
    async fn apply_updates(&self, peer: &Peer, updates: CertUpdates) -> Result<(), HostError>;

    // ----- outbound -----

    /// Up to `limit` transfers queued for this peer with `seq > after`, in queue order.
    async fn pending(
        &self,
        peer: &Peer,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Outgoing>, HostError>;

    /// Opens part `index` of our message `message_id` (described by `part`) for sending.
    async fn open_part(
        &self,
        message_id: &MessageId,
        index: u32,
        part: &PartRef,
    ) -> Result<PartReader, HostError>;

    /// The peer answered a transfer with this receipt (its node signature checked by the
    /// driver). The host records it and removes the transfer from the outbox. For a receipt
    /// of a [`crate::BatchAnswer`], `receipt.node_sig` is the answer's signature and `proof`
    /// shows that it covers this receipt: together, the evidence of delivery.
    async fn delivered(
        &self,
        peer: &Peer,
        receipt: Receipt,
        proof: Option<BatchProof>,
    ) -> Result<(), HostError>;

    /// The peer's connection state changed.
    async fn peer_state(&self, peer: &Peer, state: PeerState);

    /// The peer refused this transfer outright with an error frame that resending the same
    /// bytes cannot cure (`code` such as `refused`, `too_large`, `bad_signature`, `malformed`;
    /// `message` is the peer's, in plain words). Transient answers (`unavailable`,
    /// `not_authorised`, `busy`) are not reported here: the driver backs off and retries.
    ///
    /// The default does nothing, so the transfer stays queued and is offered again on the next
    /// pass (after a wake, a reconnection or the resync interval). A host should mark it failed
    /// and tell the sender, so that it leaves [`Host::pending`].
    async fn rejected(&self, peer: &Peer, message_id: &MessageId, code: &str, message: &str) {
        let _ = (peer, message_id, code, message);
    }
}

/// A transfer whose parts are all inline, taken through the steps of a lone transfer:
/// [`admit_inline`], then [`Host::commit`].
pub async fn receive_in_steps<H: Host + ?Sized>(
    host: &H,
    peer: &Peer,
    transfer: &Transfer,
) -> Result<Receipt, HostError> {
    match admit_inline(host, peer, transfer).await? {
        Some(answer) => Ok(answer),
        None => host.commit(peer, transfer).await,
    }
}

/// [`Host::admit`], then [`Host::store_part`] for each wanted part from its inline bytes.
/// `Some` is the receipt to answer with at once; `None`: every part is held, commit next.
pub async fn admit_inline<H: Host + ?Sized>(
    host: &H,
    peer: &Peer,
    transfer: &Transfer,
) -> Result<Option<Receipt>, HostError> {
    let wanted = match host.admit(peer, transfer).await? {
        Admission::Answer(r) => return Ok(Some(r)),
        Admission::Want(wanted) => wanted,
    };
    for i in wanted {
        let part = transfer.parts.get(i as usize).ok_or_else(|| {
            HostError::Unavailable("the host wanted a part the transfer does not have".into())
        })?;
        let data = part
            .data
            .clone()
            .ok_or_else(|| HostError::Refused("a part is not inline".into()))?;
        let mut reader: PartReader = Box::pin(std::io::Cursor::new(data));
        host.store_part(peer, part, &mut reader).await?;
    }
    Ok(None)
}

/// A host shared between the driver's tasks.
pub type SharedHost = std::sync::Arc<dyn Host>;
