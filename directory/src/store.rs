//! What the directory needs from the node: look-ups, the update permission, the set of known
//! certifiers, storing merged certificates and the organisation record.
//!
//! The node implements [`DirectoryStore`] over its database. The directory never sees SQL, and
//! the store never decides what an update may contain: that is [`crate::merge`].

use async_trait::async_trait;
use sequoia_openpgp::{Cert, Fingerprint, KeyHandle, KeyID};

/// How many certificates the default [`DirectoryStore::by_wkd_hash`] scans at most.
pub const WKD_SCAN_LIMIT: usize = 500;

/// A failure of the node's storage, as the directory sees it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The storage failed; the message is for the log, not for the client.
    #[error("directory storage failed: {0}")]
    Storage(String),
    /// The storage refuses work for now (a full write queue); clients should retry.
    #[error("directory storage is overloaded; retry later")]
    Overloaded,
}

impl DirectoryError {
    /// Wraps any error as [`DirectoryError::Storage`].
    pub fn storage(e: impl std::fmt::Display) -> Self {
        DirectoryError::Storage(e.to_string())
    }
}

/// What the bearer of a session token may do to one certificate through `POST /pks/add`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdateRight {
    /// Nothing: no session, or not the key's owner nor an admin.
    Denied,
    /// Update it. A user ID the directory does not hold yet may be added only for one of
    /// these addresses (lowercased): the ones the organisation vouches for on this key.
    Allowed {
        /// Addresses a new user ID may carry.
        new_user_id_addresses: Vec<String>,
    },
}

/// What the directory needs from the node. The node implements it over its database.
///
/// Every look-up returns public certificates; the directory strips secret key material again
/// before serving anything, but a store should never hold any in the first place.
#[async_trait]
pub trait DirectoryStore: Send + Sync + 'static {
    /// The certificate whose primary key has this fingerprint.
    async fn by_fingerprint(&self, fpr: &Fingerprint) -> Result<Option<Cert>, DirectoryError>;

    /// Certificates with a primary key or subkey with this key ID.
    async fn by_keyid(&self, keyid: &KeyID) -> Result<Vec<Cert>, DirectoryError>;

    /// Certificates with a user ID for this address (given lowercased).
    async fn by_email(&self, email: &str) -> Result<Vec<Cert>, DirectoryError>;

    /// Certificates with a user ID containing `text`, at most `limit` of them.
    async fn search(&self, text: &str, limit: usize) -> Result<Vec<Cert>, DirectoryError>;

    /// May the bearer of this Authorization token update the cert with this fingerprint, and
    /// which addresses may new user IDs carry? (the node answers: only the key's owner's
    /// session, or an admin's; new user IDs only for the addresses its CA certified on the key)
    async fn may_update(
        &self,
        bearer: Option<&str>,
        fpr: &Fingerprint,
    ) -> Result<UpdateRight, DirectoryError>;

    /// Is this key a party the directory knows (an enrolled user, the org CA, a peered org's
    /// CA)? Third-party certifications are accepted only from known parties.
    async fn is_known_certifier(&self, issuer: &KeyHandle) -> Result<bool, DirectoryError>;

    /// Store the merged certificate (public parts only).
    async fn store(&self, cert: Cert) -> Result<(), DirectoryError>;

    /// The organisation record (CA fingerprint, node identity, policy) as JSON for other nodes
    /// and clients.
    async fn org_record(&self) -> Result<serde_json::Value, DirectoryError>;

    /// Certificates with an address `local@domain` whose WKD hash
    /// ([`crate::wkd::wkd_hash`] of the local part) is `hash`.
    ///
    /// WKD clients that send `?l=LOCALPART` (GnuPG does) are answered through
    /// [`by_email`](Self::by_email); this is only for clients that send the hash alone. The
    /// default scans at most [`WKD_SCAN_LIMIT`] certificates of the domain through
    /// [`search`](Self::search); a node with more users should answer from an index.
    async fn by_wkd_hash(&self, hash: &str, domain: &str) -> Result<Vec<Cert>, DirectoryError> {
        let candidates = self.search(&format!("@{domain}"), WKD_SCAN_LIMIT).await?;
        Ok(candidates
            .into_iter()
            .filter(|cert| crate::wkd::has_hashed_address(cert, hash, domain))
            .collect())
    }
}
