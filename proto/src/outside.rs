//! Outside keys on the wire (docs/mail.md, "Outside keys"): where an outside recipient's key
//! came from, and the keys users and administrators import.

use serde::{Deserialize, Serialize};

/// Where an outside recipient's key or certificate came from.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// Imported by the user who asks.
    Imported,
    /// Imported by an administrator, for every user of the organisation.
    ImportedByAdmin,
    /// Published by the address's domain in its Web Key Directory.
    Wkd,
    /// Found on a configured keyserver (which vouches for nothing).
    Keyserver,
    /// An X.509 certificate that chains to a configured trust anchor.
    X509Anchor,
}

impl KeySource {
    /// The wire name (`imported`, `imported_by_admin`, `wkd`, `keyserver`, `x509_anchor`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeySource::Imported => "imported",
            KeySource::ImportedByAdmin => "imported_by_admin",
            KeySource::Wkd => "wkd",
            KeySource::Keyserver => "keyserver",
            KeySource::X509Anchor => "x509_anchor",
        }
    }
}

/// What kind of key an import holds.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutsideKeyKind {
    /// An OpenPGP certificate (armored).
    Openpgp,
    /// An X.509 certificate (PEM), for S/MIME.
    X509,
}

impl OutsideKeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutsideKeyKind::Openpgp => "openpgp",
            OutsideKeyKind::X509 => "x509",
        }
    }
}

/// An OpenPGP certificate (armored or binary as text) or an X.509 certificate in PEM (a chain
/// of intermediates may follow it) to import.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportKeyRequest {
    pub key: String,
    /// If given, the key must carry this address (a user ID, or for X.509 an e-mail address
    /// in the subject or its alternative names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// An imported key, as its list shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct OutsideKeyView {
    pub kind: OutsideKeyKind,
    /// OpenPGP: the fingerprint (hex); X.509: the SHA-256 of the certificate (DER, hex).
    pub fingerprint: String,
    /// The addresses the key carries (normalised: lower case).
    pub addresses: Vec<String>,
    /// `imported` (by the user) or `imported_by_admin`.
    pub source: KeySource,
    pub imported_at: i64,
    /// The armored certificate or the PEM.
    pub key: String,
}

impl OutsideKeyView {
    /// One line for a list: kind, fingerprint, addresses.
    pub fn line(&self) -> String {
        format!(
            "{:<8} {} {}",
            self.kind.as_str(),
            self.fingerprint,
            self.addresses.join(", ")
        )
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutsideKeyList {
    pub keys: Vec<OutsideKeyView>,
}

/// An OpenPGP key found for an outside address, with the asking user's verdict.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FoundKeyView {
    pub cert: String,
    pub fingerprint: String,
    pub source: KeySource,
    /// Its first explanation line says where the key came from ("published by pgp.test's Web
    /// Key Directory", "only found on the keyserver keys.test: nobody vouches for it").
    pub verdict: crate::VerdictView,
}

/// An X.509 certificate found for an outside address.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FoundX509View {
    pub pem: String,
    /// SHA-256 of the certificate (DER), hex.
    pub sha256: String,
    /// `imported` or `imported_by_admin`.
    pub source: KeySource,
    /// Whether it chains to one of the organisation's X.509 trust anchors now.
    pub anchored: bool,
    /// Why not, in words, when it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_anchored_because: Option<String>,
}

/// Every key found for an outside address (`GET /outside-keys/lookup/{address}`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct OutsideKeysResponse {
    pub address: String,
    pub openpgp: Vec<FoundKeyView>,
    pub x509: Vec<FoundX509View>,
    /// Where the node looked and found nothing, in words.
    pub notes: Vec<String>,
}
