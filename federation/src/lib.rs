//! The node-to-node protocol core of Sealpost federation, without I/O.
//!
//! This crate is the deterministic heart of federation, in the style of `quinn-proto`:
//!
//! - [`frame`]: the versioned messages two nodes exchange, with pure `encode`/`decode` and
//!   size limits checked on decode;
//! - [`delivery`]: the per-peer [`Outbox`] (batching, exponential backoff with jitter, ack
//!   timeouts, expiry) and the receiver's [`Inbox`] de-duplication window.
//!
//! It must not do I/O, read a clock, spawn tasks or touch mailboxes: time comes in as
//! `now: Instant`, randomness from an injected RNG, and a thin async driver (the libp2p layer,
//! not in this crate) moves bytes and persists state. Everything here is therefore testable
//! with a simulated network and clock (`tests/sim.rs`).

pub mod delivery;
pub mod frame;

pub use delivery::{
    ConfigError, Full, Inbox, InboxConfig, ItemState, ItemStatus, Outbox, OutboxConfig, Seen,
};
pub use frame::{
    CertUpdates, Frame, FrameError, Limits, Lookup, LookupAnswer, MessageId, PROTOCOL_VERSION,
    PartRef, PullSince, Receipt, Refusal, Transfer, decode, encode,
};
