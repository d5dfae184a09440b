//! Sealpost's key directory: publishes and looks up OpenPGP certificates over the protocols
//! existing tools speak.
//!
//! - **VKS** (keys.openpgp.org's API): `GET /vks/v1/by-fingerprint/FPR`, `…/by-keyid/KEYID`,
//!   `…/by-email/ADDRESS`.
//! - **HKP** (draft-gallagher-openpgp-hkp): `GET /pks/lookup?op=get|index|vindex&search=…`
//!   and authenticated updates through `POST /pks/add`.
//! - **WKD** (draft-koch-openpgp-webkey-service), direct and advanced methods:
//!   `GET /.well-known/openpgpkey/[DOMAIN/]hu/HASH` and `…/policy`.
//! - The organisation record: `GET /.well-known/sealpost/org`.
//!
//! [`router`] gives an axum router that the node merges into its own. The node supplies the
//! data through [`DirectoryStore`]; this crate knows no SQL and does no I/O besides answering
//! HTTP.
//!
//! What this crate must not do: decide trust. It serves certificates with every certification
//! a known party made, and lets the `trust/` crate (and clients) judge them. The one judgement
//! it makes is what an update may add ([`merge`]): self-signatures, and third-party signatures
//! by parties the node says it knows, within flood limits.
//!
//! Wire formats are pure functions in their own modules, table-tested with the specifications'
//! examples: [`hkp`] (look-up queries), [`index`] (HKP listings), [`vks`] (path parameters),
//! [`wkd`] (hashes), [`certs`] (serialization, `keytext`), [`merge`] (update policy).

pub mod certs;
pub mod hkp;
pub mod index;
pub mod merge;
mod routes;
pub mod store;
pub mod vks;
pub mod wkd;

pub use merge::{
    MergeError, MergeLimits, MergeOutcome, NewUserIds, check_update_limits, merge_update,
    merge_update_verified, third_party_issuers,
};
pub use routes::router;
pub use store::{DirectoryError, DirectoryStore, UpdateRight, WKD_SCAN_LIMIT};
pub use wkd::wkd_hash;

/// How the directory is set up. Build it with [`DirectoryConfig::new`] and adjust the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryConfig {
    /// The organisation's mail domain: WKD serves `local@domain` keys only.
    pub domain: String,
    /// Largest certificate accepted or produced by an update (binary, public parts).
    pub max_cert_bytes: usize,
    /// Most signature packets one `POST /pks/add` may carry.
    pub max_signatures_per_update: usize,
    /// Most signatures one user ID may carry after an update.
    pub max_signatures_per_user_id: usize,
    /// Most certificates one look-up answers with (and the `limit` given to
    /// [`DirectoryStore::search`]).
    pub max_results: usize,
}

impl DirectoryConfig {
    /// Defaults: 64 KiB certificates, 64 signatures per update, 256 per user ID, 20 results.
    ///
    /// 64 KiB holds a key with a few hundred certifications (an Ed25519 certification is about
    /// 120 bytes); certificates flooded beyond that are what broke the SKS network.
    pub fn new(domain: impl Into<String>) -> Self {
        DirectoryConfig {
            domain: domain.into().to_ascii_lowercase(),
            max_cert_bytes: 64 * 1024,
            max_signatures_per_update: 64,
            max_signatures_per_user_id: 256,
            max_results: 20,
        }
    }

    /// The limits [`merge_update`] applies.
    pub fn merge_limits(&self) -> MergeLimits {
        MergeLimits {
            max_cert_bytes: self.max_cert_bytes,
            max_signatures_per_update: self.max_signatures_per_update,
            max_signatures_per_user_id: self.max_signatures_per_user_id,
        }
    }

    /// The largest `POST /pks/add` body: a maximal certificate, armored (4/3 and line breaks)
    /// and then percent-encoded (at most 3 bytes per byte), with room for the field name.
    pub fn max_add_body_bytes(&self) -> usize {
        self.max_keytext_bytes()
            .saturating_mul(3)
            .saturating_add(1024)
    }

    /// The largest decoded `keytext` field: a maximal certificate, armored.
    pub fn max_keytext_bytes(&self) -> usize {
        (self.max_cert_bytes / 3 * 4 + 4)
            .saturating_mul(65)
            .div_ceil(64)
            .saturating_add(512)
    }
}
