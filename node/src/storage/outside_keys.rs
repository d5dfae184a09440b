//! Outside keys imported by a user (for themselves) or by an administrator (for every user):
//! OpenPGP certificates and X.509 certificates of outside addresses (docs/mail.md, "Outside
//! keys"), and [`OutsideKeyStore`]. The rules (what may be imported, how a key is matched to
//! an address, how far it is trusted) are `service::outside_keys`'; this keeps rows.
//!
//! The same contract as every store: a write that returns `Ok` is durable with its log entry.

use async_trait::async_trait;

use super::error::{Result, Timestamp};
use super::log::LogEvent;

/// Whose import a row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOwner {
    /// One user's (by account ID): visible to that user only.
    User(i64),
    /// An administrator's: visible to every user.
    Admin,
}

impl KeyOwner {
    /// The `owner` column: the account ID, or NULL for an administrator's import.
    pub fn column(self) -> Option<i64> {
        match self {
            KeyOwner::User(id) => Some(id),
            KeyOwner::Admin => None,
        }
    }
}

/// A key to import.
#[derive(Clone, Debug)]
pub struct NewOutsideKey {
    pub owner: KeyOwner,
    /// `openpgp` or `x509`.
    pub kind: &'static str,
    /// OpenPGP fingerprint or X.509 SHA-256 (hex, lower case).
    pub fingerprint: String,
    /// Normalised addresses the key carries (at least one).
    pub addresses: Vec<String>,
    /// The armored certificate or the PEM.
    pub material: String,
}

/// An imported key as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutsideKeyRow {
    pub owner: KeyOwner,
    pub kind: String,
    pub fingerprint: String,
    pub addresses: Vec<String>,
    pub material: String,
    pub imported_at: Timestamp,
}

#[async_trait]
pub trait OutsideKeyStore: Send + Sync + 'static {
    /// Stores `key` for its owner, replacing the owner's earlier import of the same key (same
    /// kind and fingerprint), and logs `event`. Refused with `Conflict` if the owner already
    /// holds `max` other imports.
    async fn import_outside_key(
        &self,
        key: NewOutsideKey,
        max: u64,
        event: LogEvent,
        now: Timestamp,
    ) -> Result<()>;
    /// The imports `owner` sees for `address` (normalised): its own and, for a user, the
    /// administrators'. At most `limit`.
    async fn outside_keys_for(
        &self,
        owner: KeyOwner,
        address: &str,
        limit: usize,
    ) -> Result<Vec<OutsideKeyRow>>;
    /// `owner`'s own imports (for a user: not the administrators'), oldest first, at most
    /// `limit`.
    async fn outside_keys_of(&self, owner: KeyOwner, limit: usize) -> Result<Vec<OutsideKeyRow>>;
    /// Deletes `owner`'s import of the key with this fingerprint (either kind) and logs
    /// `event`; `false` if it has none.
    async fn remove_outside_key(
        &self,
        owner: KeyOwner,
        fingerprint: &str,
        event: LogEvent,
        now: Timestamp,
    ) -> Result<bool>;
}
