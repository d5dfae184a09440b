//! The node's cryptography: the checks both sides make, which are `sealpost-proto`'s
//! (re-exported here, so that the node names them in one place), and the organisation CA's own
//! operations ([`generate_ca`], [`ca_certify`]).
//!
//! Nothing here decrypts, unwraps a secret key or derives a key from a password: those are
//! `sealpost-client`'s, which the node library does not link, so the compiler holds "the node
//! never decrypts".

mod ca;
pub mod cms;

pub use ca::{ca_certify, generate_ca};
pub use sealpost_proto::crypto::*;
