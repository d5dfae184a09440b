//! Sealpost node: a self-hosted, federated, end-to-end encrypted messaging server.
//!
//! [`node::Node`] opens a data directory and [`api::app`] / [`api::run`] serve it; [`cli`]
//! holds the node's commands (`init`, `serve`, `admin`, `config`), which the `sealpost` binary
//! (package `sealpost-bin`) offers beside the client's. The wire types and the checks both
//! sides make are `sealpost-proto`'s ([`proto`], [`crypto`]); this library does not link the
//! client (`sealpost-client`), which holds every operation that needs a user's secret key. See
//! `ARCHITECTURE.md`.

pub mod admin_socket;
pub mod api;
pub mod backup;
pub mod certs;
pub mod cli;
pub mod config;
pub mod conns;
pub mod crypto;
pub mod directory_store;
pub mod evidence;
pub mod federation;
pub mod keyfetch;
pub mod keys;
pub mod memo;
pub mod metrics;
pub mod node;
pub mod notify;
pub mod service;
pub mod smtp_in;
pub mod storage;
pub mod timestamp;
pub mod trustview;
pub mod txlog;

pub use sealpost_proto as proto;
pub use sealpost_proto::{domain_of, is_message_id, new_message_id, normalize_address, now};
