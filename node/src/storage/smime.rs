//! S/MIME certificates the organisation's CA issued (docs/mail.md, "The S/MIME copy"), and
//! [`SmimeStore`]. The rules (who may have one, how often, what it says) are
//! `service::smime`'s; this keeps a record of each issuance: no key material, no certificate.
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
}
