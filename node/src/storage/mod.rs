//! Storage behind traits: [`MetaStore`] for everything that is rows (accounts, sessions,
//! messages, mailboxes, the transaction log) and [`BlobStore`] for ciphertext too large to keep
//! in a row. The embedded default is SQLite ([`sqlite::SqliteStore`]) and the file system
//! ([`blobs::FsBlobStore`]); an organisation that outgrows one machine implements these two
//! traits for PostgreSQL and an S3-compatible store and changes nothing else.
//!
//! Contract for every write method: when it returns `Ok`, the change is durable (it survives
//! `kill -9` and power loss), and every transaction-log entry it implies was appended in the
//! same commit. A method that returns `Err` changed nothing.
//!
//! The row traits are split by concern ([`AccountStore`], [`MailStore`], [`CertStore`],
//! [`LogStore`], [`FederationStore`], [`WebStore`], [`NotifyStore`]), each in its own module with the types it
//! speaks in; [`MetaStore`] is all of them at once, and is what callers hold. The modules form
//! a chain with no way back: `error` ← `log` ← `certs` ← `accounts`; `error` ← `mail`;
//! `federation` uses `certs`, `log` and `mail`; this file only gathers them.

mod accounts;
pub mod app_passwords;
pub mod blobs;
mod certs;
pub mod compliance;
pub mod compliance_custody;
mod error;
pub mod evidence;
pub mod federation;
mod log;
mod mail;
pub mod notify;
pub mod ops;
pub mod outside_keys;
pub mod pickup;
pub mod smime;
pub mod sqlite;
pub mod web;

pub use self::accounts::*;
pub use self::app_passwords::AppPasswordStore;
pub use self::blobs::{BlobStore, DiskSpace, FsBlobStore};
pub use self::certs::*;
pub use self::compliance::ComplianceStore;
pub use self::compliance_custody::CustodyStore;
pub use self::error::*;
pub use self::evidence::EvidenceStore;
pub use self::federation::*;
pub use self::log::*;
pub use self::mail::*;
pub use self::notify::NotifyStore;
pub use self::ops::{OpsStore, QueueDepths};
pub use self::outside_keys::OutsideKeyStore;
pub use self::pickup::PickupStore;
pub use self::smime::SmimeStore;
pub use self::sqlite::{SqliteStore, WriterSettings};
pub use self::web::WebStore;

/// Rows: every row trait at once (accounts, messages and mailboxes, certificates, the
/// transaction log, federation, the web app's settings, notification mail, pickups). Implemented for any type that
/// implements them all; callers hold an `Arc<dyn MetaStore>`. (Each of them is `Send + Sync +
/// 'static`.)
pub trait MetaStore:
    AccountStore
    + MailStore
    + CertStore
    + LogStore
    + FederationStore
    + WebStore
    + NotifyStore
    + PickupStore
    + OutsideKeyStore
    + AppPasswordStore
    + SmimeStore
    + EvidenceStore
    + ComplianceStore
    + CustodyStore
    + OpsStore
{
}

impl<T> MetaStore for T where
    T: AccountStore
        + MailStore
        + CertStore
        + LogStore
        + FederationStore
        + WebStore
        + NotifyStore
        + PickupStore
        + OutsideKeyStore
        + AppPasswordStore
        + SmimeStore
        + EvidenceStore
        + ComplianceStore
        + CustodyStore
        + OpsStore
{
}
