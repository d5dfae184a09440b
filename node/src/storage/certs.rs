//! Certificates the node knows (its users', its CA's, peers' users') and [`CertStore`].
//!
//! Holds the trait and the record it stores; it must not depend on accounts, mail or
//! federation (they depend on it).

use async_trait::async_trait;

use super::error::{Result, Timestamp};
use super::log::LogEvent;

/// A certificate ready to store: its armored public form and what it is looked up by.
#[derive(Clone, Debug)]
pub struct CertRecord {
    /// Upper-case hex fingerprint of the primary key.
    pub fingerprint: String,
    pub armored: String,
    /// Lowercased e-mail addresses of its user IDs.
    pub emails: Vec<String>,
    /// Upper-case hex key IDs and fingerprints of the primary key and every subkey.
    pub handles: Vec<String>,
}

/// Certificates: stored with their look-up handles and a generation that moves with each
/// change.
#[async_trait]
pub trait CertStore: Send + Sync + 'static {
    /// Stores (inserts or replaces) a certificate, optionally logging why, and bumps the
    /// certificate generation.
    async fn put_cert(
        &self,
        record: CertRecord,
        origin: &str,
        event: Option<LogEvent>,
        now: Timestamp,
    ) -> Result<()>;
    async fn cert_by_fingerprint(&self, fingerprint: &str) -> Result<Option<String>>;
    /// By key ID or fingerprint of the primary key or a subkey (upper-case hex).
    async fn certs_by_handle(&self, handle: &str) -> Result<Vec<String>>;
    async fn certs_by_email(&self, email: &str) -> Result<Vec<String>>;
    /// Certificates with an address containing `text` (case-insensitive), at most `limit`.
    async fn certs_search(&self, text: &str, limit: usize) -> Result<Vec<String>>;
    async fn all_certs(&self) -> Result<Vec<String>>;
    /// Certificates changed after certificate generation `generation`.
    async fn certs_since(&self, generation: u64) -> Result<Vec<String>>;
    /// Changes whenever any certificate changes (in any process sharing the store).
    async fn cert_generation(&self) -> Result<u64>;
}
