//! Sealpost federation: the node-to-node protocol core, and the thin libp2p/QUIC driver
//! around it.
//!
//! The deterministic heart, in the style of `quinn-proto`:
//!
//! - [`frame`]: the versioned messages two nodes exchange, with pure `encode`/`decode` and
//!   size limits checked on decode;
//! - [`delivery`]: the delivery core, every decision the driver makes about sending to a
//!   peer: its [`PeerSchedule`] (backoff with jitter, wake-ups, batching on or off), what an
//!   exchange carries ([`plan_exchange`]), when a kept stream is fresh enough
//!   ([`IdleStreams`]), when a failed exchange is tried again ([`ExchangeAttempts`]), and
//!   which refusals are [`transient`].
//!
//! The boundary and the driver:
//!
//! - [`host`]: the boundary with the node: the [`Host`] trait through which the driver hands
//!   over what arrives and asks for what to send; the driver never touches mailboxes.
//! - [`net`]: the driver: [`net::start`] binds QUIC listeners and runs, per authorised peer, a
//!   sender (pages through [`Host::pending`], signs, streams parts, verifies receipts, backs
//!   off) and a control task (connection state, certificate pulls, `Changed` pushes), and serves
//!   inbound streams within bounds. [`net::wire`] is the stream layout (length-prefixed frames,
//!   raw part bytes) and the node signatures.
//!
//! `frame` and `delivery` must not do I/O, read a clock or spawn tasks: time comes in as
//! `now: Instant` and randomness from an injected RNG. The driver calls `delivery` for its
//! decisions, and `tests/sim.rs` makes the same calls over a simulated lossy, partitioned
//! network with a manual clock. `net` moves bytes and holds no durable state; the host
//! persists everything (`tests/net.rs` runs drivers against each other on loopback).

pub mod delivery;
pub mod frame;
pub mod host;
pub mod net;

pub use delivery::{
    Event, ExchangeAttempts, FRESH_STREAM_ATTEMPTS, Failure, IdleStreams, Next, PassResult,
    PeerSchedule, PendingCursor, Plan, Retry, StreamSource, backoff_delay, batchable,
    check_batch_answer, plan_exchange, transient, wire_cost,
};
pub use frame::{
    Batch, BatchAnswer, BatchError, BatchProof, CertUpdates, Changed, ErrorFrame, Frame,
    FrameError, Limits, Lookup, LookupAnswer, MessageId, OrgLookup, OrgRecord, PROTOCOL_VERSION,
    PartRef, PullSince, Receipt, Refusal, Transfer, Want, decode, encode,
};
pub use host::{
    Admission, Host, HostError, Outgoing, PartReader, Peer, PeerState, SharedHost, admit_inline,
    receive_in_steps,
};
pub use net::{Config, Handle, NetError, PeerStatus, start};
