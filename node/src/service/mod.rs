//! The service layer: every domain rule once, for every door.
//!
//! The HTTP API, the admin CLI, the demo, the federation host and the test kit are doors: they
//! parse what arrives in their own format, call an operation here, and render its outcome or
//! its [`ServiceError`] in their own format. An operation takes plain values (no HTTP, CLI or
//! libp2p types), the time as a parameter where it matters, and the [`Actor`] on whose behalf
//! it runs, which the transaction log records.
//!
//! What this module must not do: know a status code, a command-line flag or a socket; read
//! the clock in a rule (doors pass `now`); log a secret.

pub mod accounts;
pub mod app_passwords;
pub mod compliance;
mod context;
pub mod credentials;
pub mod custody;
pub mod delivery;
mod error;
pub mod evidence;
pub mod guests;
pub mod login;
pub mod mail;
pub mod outside_keys;
pub mod peers;
pub mod pickup;
pub mod registered;
pub mod retention;
pub mod smime;
pub mod throttle;
pub mod trust;

pub use context::{CertFacts, Context, FedLink};
pub use error::{ErrorKind, ServiceError};

/// Seconds since the Unix epoch of `t` (what storage records).
pub(crate) fn unix(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The time `unix` seconds after the epoch (negative: the epoch).
pub(crate) fn time_of(unix: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64)
}

/// On whose behalf an operation runs: what the transaction log names as its actor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// A logged-in administrator, by address.
    Admin(String),
    /// Whoever runs the admin command on the node's machine (with access to its data).
    Cli,
    /// The node itself (start-up, the demo).
    Node,
}

impl Actor {
    /// The actor as the log records it: the admin's address, `cli` or `node`.
    pub fn log_name(&self) -> &str {
        match self {
            Actor::Admin(address) => address,
            Actor::Cli => "cli",
            Actor::Node => "node",
        }
    }

    /// The address of the account acting, if an account acts.
    pub fn address(&self) -> Option<&str> {
        match self {
            Actor::Admin(address) => Some(address),
            Actor::Cli | Actor::Node => None,
        }
    }
}
