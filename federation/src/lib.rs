//! The node-to-node protocol core of Sealpost federation, without I/O.
//!
//! This crate is the deterministic heart of federation, in the style of `quinn-proto`:
//!
//! - [`frame`]: the versioned messages two nodes exchange, with pure `encode`/`decode` and
//!   size limits checked on decode;
//! - [`delivery`]: the per-peer [`Outbox`] (batching, exponential backoff with jitter, ack
//!   timeouts, expiry) and the receiver's [`Inbox`] de-duplication window.
//!
//! - [`host`]: the boundary with the node: the [`Host`] trait through which the driver hands
//!   over what arrives and asks for what to send; the driver never touches mailboxes.
//!
//! `frame` and `delivery` must not do I/O, read a clock or spawn tasks: time comes in as
//! `now: Instant` and randomness from an injected RNG, so they are testable with a simulated
//! network and clock (`tests/sim.rs`). The thin async driver around them (libp2p over QUIC)
//! moves bytes; the host persists state.

pub mod delivery;
pub mod frame;
pub mod host;
pub mod net;

pub use delivery::{
    ConfigError, Full, Inbox, InboxConfig, ItemState, ItemStatus, Outbox, OutboxConfig, Seen,
    backoff_delay,
};
pub use frame::{
    CertUpdates, Changed, ErrorFrame, Frame, FrameError, Limits, Lookup, LookupAnswer, MessageId,
    PROTOCOL_VERSION, PartRef, PullSince, Receipt, Refusal, Transfer, Want, decode, encode,
};
pub use host::{Admission, Host, HostError, Outgoing, PartReader, Peer, PeerState, SharedHost};
pub use net::{Config, Handle, NetError, PeerStatus, start};
