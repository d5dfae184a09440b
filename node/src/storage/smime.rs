//! S/MIME certificates the organisation's CA issued (docs/mail.md, "The S/MIME copy"), and
//! [`SmimeStore`]. The rules (who may have one, how often, what it says) are
//! `service::smime`'s; this keeps a record of each issuance and, for the web app's keys, the
//! certificate and the key wrapped in the browser (opaque: never a key in the clear).
//!
//! The same contract as every store: a write that returns `Ok` is durable with its log entry.

use async_trait::async_trait;

use super::error::{Result, Timestamp};

/// One issuance, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmimeIssuance {
    pub account_id: i64,
    /// The certificate's serial number, lowercase hex.
    pub serial: String,
    /// SHA-256 (lowercase hex) of the certified key's SubjectPublicKeyInfo DER.
    pub spki_sha256: String,
    pub not_after: Timestamp,
    pub issued_at: Timestamp,
    /// The web app's wrapped key and the certificate issued for it (PEM); `None` for a client
    /// that keeps its key itself (the CLI).
    pub stored: Option<StoredSmimeKey>,
}

/// A wrapped S/MIME signing key kept for its user, with its certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSmimeKey {
    pub certificate: String,
    /// Opaque to the node: encrypted in the browser under a password-derived key.
    pub wrapped_key: String,
}

#[async_trait]
pub trait SmimeStore: Send + Sync + 'static {
    /// Records `issuance` and logs `smime.certificate_issued` (actor `actor`; serial, key hash
    /// and expiry), unless its account already had `max` issuances at or after `since`: then
    /// nothing changes and the answer is the earliest of those (when the next is allowed
    /// again, counting from it).
    async fn record_smime_issuance(
        &self,
        issuance: &SmimeIssuance,
        actor: &str,
        max: u32,
        since: Timestamp,
    ) -> Result<Option<Timestamp>>;
    /// The issuances to `account_id`, oldest first.
    async fn smime_issuances_of(&self, account_id: i64) -> Result<Vec<SmimeIssuance>>;
    /// The newest issuance to `account_id` with a stored key that expires after `now`.
    async fn newest_stored_smime_key(
        &self,
        account_id: i64,
        now: Timestamp,
    ) -> Result<Option<SmimeIssuance>>;
}
