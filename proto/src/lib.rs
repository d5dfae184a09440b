//! The HTTP API's wire types, shared by the node and the client so the two cannot drift, and
//! the rules both sides hold: addresses and message IDs ([`normalize_address`],
//! [`new_message_id`]), and what a verifier checks ([`crypto`]: certificates, detached
//! signatures, a ciphertext's recipients, KDF parameters).
//!
//! Binary values travel as base64 (standard alphabet, padded) except hashes and fingerprints,
//! which are lowercase/uppercase hex as OpenPGP tools print them. Times are Unix seconds.
//!
//! Nothing here stores, serves or decrypts: this crate links no database, HTTP server or
//! network stack, and holds no operation that needs a secret key.

mod address;
pub mod crypto;
pub mod custody;
pub mod outside;
pub mod submission;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use address::{
    domain_of, is_host_name, is_message_id, is_valid_domain, new_message_id, normalize_address,
};
pub use crypto::KdfParams;
pub use outside::KeySource;

/// Version prefix of every API route.
pub const API_PREFIX: &str = "/api/v1";

/// Header by which the CLI client presents its device token at login.
pub const DEVICE_HEADER: &str = "x-sealpost-device";

/// Seconds since the Unix epoch: the wire's time.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// The body of every error answer: a stable machine-readable `code` and a sentence for people.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    /// With `wrong_unlock_code`: how many more wrong unlock codes the pickup takes before it
    /// locks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts_left: Option<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublicLimits {
    pub max_message_bytes: u64,
    pub max_parts: usize,
    pub max_recipients: usize,
    pub inline_part_max_bytes: usize,
}

/// What a node publishes about its organisation.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrgInfo {
    pub domain: String,
    pub ca_fingerprint: String,
    pub ca_cert: String,
    /// Hex of the node's Ed25519 public key (its federation identity).
    pub node_key: String,
    /// The same key as a libp2p peer ID: what peers authorise.
    #[serde(default)]
    pub peer_id: String,
    /// The node's transit key (armored OpenPGP certificate): what a sender's client encrypts
    /// an enforced-TLS copy to (docs/mail.md, mode `tls`). The node decrypts such a copy only
    /// in memory, to send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transit_key: Option<String>,
    /// QUIC multiaddresses where peers reach this node (empty when federation is off).
    #[serde(default)]
    pub federation_addrs: Vec<String>,
    pub limits: PublicLimits,
    /// Whether partially authenticated recipients are acceptable (`trust.accept_partial`).
    pub accept_partial: bool,
    pub version: String,
    /// The organisation's login KDF parameters (`[accounts] login_kdf`), when its config sets
    /// them: clients derive pickup unlock codes with them (docs/pickup.md). Absent: the
    /// client's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kdf: Option<KdfParams>,
    /// Where users' mail programs send (`[submission]`), present only when it is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submission: Option<submission::SubmissionInfo>,
    /// Whether the organisation's S/MIME CA (`[smime]`) issues users certificates
    /// (`POST /smime/certificate`), so that clients sign S/MIME copies.
    #[serde(default)]
    pub smime_signing: bool,
    /// The organisation's compliance key (docs/compliance.md): the armored certificate with
    /// the CA's marking certification; absent when none is installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance_key: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub invite: String,
    pub address: String,
    /// Armored public certificate generated in the client.
    pub cert: String,
    /// Armored secret key, encrypted in the client with the password-derived wrap key.
    pub wrapped_key: String,
    pub kdf_salt: String,
    pub kdf_params: KdfParams,
    /// Derived from the password separately from the wrap key; the node keeps a slow hash.
    pub login_verifier: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnrollResponse {
    pub address: String,
    pub fingerprint: String,
    /// The certificate with the organisation CA's certification.
    pub cert: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginParamsRequest {
    pub address: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoginParams {
    pub kdf_salt: String,
    pub kdf_params: KdfParams,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub address: String,
    pub login_verifier: String,
    #[serde(default)]
    pub totp: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountView {
    pub address: String,
    pub name: Option<String>,
    pub is_admin: bool,
    pub fingerprint: String,
    pub cert: String,
    pub wrapped_key: String,
    pub totp_enabled: bool,
    /// A guest of the organisation (docs/pickup.md, "Guests"): writes to its users only.
    #[serde(default)]
    pub guest: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// The bearer token; empty for a cookie session (`X-Sealpost-Session: cookie`), whose
    /// token travels only in an HttpOnly cookie.
    pub token: String,
    pub expires_at: i64,
    pub account: AccountView,
    /// For a cookie session: the token to send as `X-CSRF-Token` on state-changing requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    /// For a bearer login: this device's new device token, to send as `X-Sealpost-Device` at
    /// later logins of this address, so that others' failures do not slow them. (A cookie
    /// session gets it as an HttpOnly cookie instead.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TotpSetup {
    /// Base32 secret, for manual entry in an authenticator app.
    pub secret: String,
    pub otpauth_uri: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    pub code: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeRequest {
    pub to: Vec<String>,
}

/// What an `smime` recipient's `why` adds, and what the CLI tells the sender, when the
/// organisation has no S/MIME CA (`[smime]`): the copy goes unsigned (docs/mail.md, "The S/MIME
/// copy").
pub const SMIME_UNSIGNED: &str =
    "sent unsigned: your organisation has no S/MIME certificate for you";

/// What an `smime` recipient's `why` adds when the organisation's CA issues its users S/MIME
/// certificates: the sender's client signs the copy (docs/mail.md, "The S/MIME copy").
pub const SMIME_SIGNED: &str = "signed with the S/MIME certificate your organisation issues you";

/// What an `smime` recipient of a mail program's message (submission gateway) is told: the
/// node holds no user's signing key, so such copies go unsigned.
pub const SMIME_GATEWAY_UNSIGNED: &str =
    "sent unsigned: the node does not hold your S/MIME signing key";

/// `POST /smime/certificate`: a certificate for the user's S/MIME signing key, bound to their
/// Sealpost key (docs/mail.md, "The S/MIME copy").
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmimeCertificateRequest {
    /// The signing key's SubjectPublicKeyInfo, PEM (`-----BEGIN PUBLIC KEY-----`): ECDSA P-256
    /// (or RSA 2048 to 4096 bits).
    pub public_key: String,
    /// An armored detached OpenPGP signature by the user's Sealpost key over the exact DER
    /// bytes of that SubjectPublicKeyInfo.
    pub binding: String,
    /// The web app's private key, wrapped in the browser under a password-derived key (opaque
    /// to the node, at most 16 KiB): kept with the certificate so that `GET
    /// /smime/certificate` gives both back in any browser. Absent for a client that keeps its
    /// key itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapped_key: Option<String>,
}

/// `GET /smime/certificate`: the newest certificate still valid whose key the node keeps
/// wrapped for the web app, and that key.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SmimeStoredKeyResponse {
    /// The leaf certificate, PEM.
    pub certificate: String,
    /// The issuing CA's certificate and its chain, PEM (as the CA is now).
    pub chain: String,
    /// When the certificate expires (Unix seconds).
    pub not_after: i64,
    /// The key as the web app wrapped it (`POST /smime/certificate` `wrapped_key`).
    pub wrapped_key: String,
}

/// The certificate the organisation's S/MIME CA issued.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SmimeCertificateResponse {
    /// The leaf certificate, PEM.
    pub certificate: String,
    /// The issuing CA's certificate and its chain, PEM.
    pub chain: String,
    /// When the certificate expires (Unix seconds).
    pub not_after: i64,
}

/// How a recipient will be reached (docs/mail.md, "Delivery modes").
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    /// A user of this node.
    Local,
    /// A user of a peered organisation: delivered by this node over federation.
    Remote,
    /// An outside address with a usable OpenPGP key: an external copy signed by the sender and
    /// encrypted to the recipient's key and the sender's, sent as RFC 3156 PGP/MIME mail.
    Openpgp,
    /// An outside address with a usable X.509 certificate: an external copy in CMS, sent as
    /// S/MIME mail.
    Smime,
    /// An outside address whose domain the policy pins to enforced TLS: an external copy
    /// encrypted to the node's transit key only, sent as ordinary MIME over authenticated TLS.
    /// The sender's node sees the content in transit.
    Tls,
    /// Anyone else: no key; reached by a pickup link and a Message Unlock Code
    /// (docs/pickup.md).
    Pickup,
}

impl DeliveryMode {
    /// The wire's word for the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryMode::Local => "local",
            DeliveryMode::Remote => "remote",
            DeliveryMode::Openpgp => "openpgp",
            DeliveryMode::Smime => "smime",
            DeliveryMode::Tls => "tls",
            DeliveryMode::Pickup => "pickup",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            DeliveryMode::Local,
            DeliveryMode::Remote,
            DeliveryMode::Openpgp,
            DeliveryMode::Smime,
            DeliveryMode::Tls,
            DeliveryMode::Pickup,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }

    /// Whether the sender's client makes an external copy for a recipient in this mode.
    pub fn has_external_copy(self) -> bool {
        matches!(
            self,
            DeliveryMode::Openpgp | DeliveryMode::Smime | DeliveryMode::Tls
        )
    }
}

impl std::fmt::Display for DeliveryMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResolvedRecipient {
    pub address: String,
    pub fingerprint: String,
    pub cert: String,
    pub mode: DeliveryMode,
    /// How far the requesting user's web of trust authenticates this key for this address.
    pub verdict: VerdictView,
    /// One plain sentence: why this mode ("dora@pgp.test publishes an OpenPGP key in
    /// pgp.test's Web Key Directory").
    #[serde(default)]
    pub why: String,
    /// For an outside recipient's key (`openpgp`, `smime`): where it was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_source: Option<KeySource>,
    /// The sender's node sees the content in transit (`tls`): clients must tell the sender
    /// before sending.
    #[serde(default)]
    pub sees_content: bool,
    /// A pickup recipient in a live pickup thread with the requesting sender: `cert` is the
    /// thread's pickup key, and this is the sender's own signed copy of it, by which their
    /// client checks that it made that key (docs/pickup.md, Threads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_thread: Option<PickupThreadRef>,
}

/// The live pickup thread an outside recipient is in, as its sender's envelope answer names it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PickupThreadRef {
    /// The thread's newest message with a live pickup, and when it was sent.
    pub message_id: String,
    pub created_at: i64,
    /// `open`, or `locked`: the sender must issue a new code (re-lock that message) first.
    pub state: String,
    /// The secret pickup key encrypted to (and signed by) the sender, as `PickupView`'s.
    pub key_for_sender: String,
}

/// A trust verdict as clients see it: level, amount, and every path in words.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct VerdictView {
    pub fingerprint: String,
    pub address: String,
    /// `full`, `partial` or `none`.
    pub level: String,
    /// 0..=120 (sums of paths may exceed 120).
    pub amount: usize,
    /// A stable code when the key is not fully authenticated: `revoked`, `expired`,
    /// `user_id_revoked`, `invalid`, `unknown_key`, `address_not_on_key`, `invalid_address`,
    /// `no_path`, `not_enough`, `conflict`.
    pub why_not: Option<String>,
    /// One line per path ("you → Alpha CA (your organisation) → bob@alpha.test: full (120)"),
    /// then why not, in words.
    pub explanation: Vec<String>,
}

impl VerdictView {
    pub fn is_revoked(&self) -> bool {
        self.why_not.as_deref() == Some("revoked")
    }
    /// Whether a message may be written to this key under the organisation's policy.
    pub fn acceptable(&self, accept_partial: bool) -> bool {
        !self.is_revoked()
            && !matches!(
                self.why_not.as_deref(),
                Some("expired" | "user_id_revoked" | "invalid")
            )
            && (self.level == "full" || (accept_partial && self.level == "partial"))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrustResponse {
    /// Every key claiming the address, strongest first.
    pub keys: Vec<VerdictView>,
}

/// A certificate carrying new certifications (or retractions) made by the requesting user.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificationRequest {
    pub cert: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CertificationResponse {
    pub fingerprint: String,
    pub added: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnvelopeResponse {
    pub message_id: String,
    pub expires_at: i64,
    pub sender: ResolvedRecipient,
    pub recipients: Vec<ResolvedRecipient>,
    /// The compliance keys every part must also be encrypted to (docs/compliance.md): the
    /// sender's organisation's and each peered recipient organisation's that publishes one.
    /// The client accepts each only with its CA's marking ([`crypto::compliance_key_of`]).
    #[serde(default)]
    pub compliance: Vec<ComplianceKeyRef>,
}

/// `PUT /admin/compliance/key`: the compliance key's public certificate (armored).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplianceKeyInstall {
    pub cert: String,
}

/// The installed compliance key.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ComplianceKeyView {
    pub domain: String,
    /// Upper-case hex fingerprint.
    pub fingerprint: String,
    /// Armored certificate, with the CA's marking certification.
    pub cert: String,
    pub installed_at: i64,
}

/// An organisation's compliance key as an envelope answer lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ComplianceKeyRef {
    /// The organisation's domain.
    pub domain: String,
    /// Upper-case hex fingerprint.
    pub fingerprint: String,
    /// Armored certificate, with its CA's marking certification.
    pub cert: String,
    /// A peered organisation's CA certificate (armored, with our CA's bridge on it), by which
    /// the client checks the marking; absent for the sender's own organisation (the client's
    /// pinned CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
}

impl EnvelopeResponse {
    /// The mode the answer gives `address`, if it is one of its recipients.
    pub fn mode_of(&self, address: &str) -> Option<DeliveryMode> {
        self.recipients
            .iter()
            .find(|r| r.address == address)
            .map(|r| r.mode)
    }
}

/// The routing envelope the sender signs. Its exact JSON bytes travel in
/// [`SubmitRequest::envelope`] and the signature is over those bytes, so nobody has to agree
/// on a canonical form.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub v: u32,
    pub message_id: String,
    pub from: String,
    pub to: Vec<String>,
    pub created_at: i64,
    pub parts: Vec<EnvelopePart>,
    /// Pickup recipients (each also in `to`) and the fingerprint of the pickup key made for
    /// each: the signature binds every outside recipient to their pickup key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pickup: BTreeMap<String, String>,
    /// Outside recipients reached by mail (`openpgp`, `smime`, `tls`; each also in `to`) and
    /// the external copy made for each: the signature binds the bytes sent to each of them.
    /// Absent when empty, so envelopes without it keep their exact bytes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub external: BTreeMap<String, ExternalCopy>,
    /// Recipients (each also in `to`, Sealpost users here or at a peered organisation) for
    /// whom the message is registered (docs/evidence.md, "Registered mail"): their node
    /// withholds the parts until they sign an acceptance receipt ([`ReceiptStatement`]) or
    /// refuse. Absent when empty, so envelopes without it keep their exact bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registered: Vec<String>,
}

/// What a recipient decides about a registered message.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptDecision {
    Accept,
    Refuse,
}

/// The `format` of a [`ReceiptStatement`].
pub const RECEIPT_FORMAT: &str = "sealpost-receipt-v1";

/// The statement a recipient of a registered message signs (binary detached OpenPGP signature
/// by their key over [`ReceiptStatement::to_bytes`]): compact JSON, keys in sorted order.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptStatement {
    /// When the recipient decided (Unix seconds, the recipient's clock).
    pub at: i64,
    pub decision: ReceiptDecision,
    /// [`RECEIPT_FORMAT`].
    pub format: String,
    pub message_id: String,
    /// The SHA-256 (hex) of each ciphertext part, as the envelope names them.
    pub parts: Vec<String>,
    pub recipient: String,
}

impl ReceiptStatement {
    /// The statement of `recipient`'s `decision` on the message of `env`, at `at`.
    pub fn about(env: &Envelope, recipient: &str, decision: ReceiptDecision, at: i64) -> Self {
        ReceiptStatement {
            at,
            decision,
            format: RECEIPT_FORMAT.into(),
            message_id: env.message_id.clone(),
            parts: env.parts.iter().map(|p| p.sha256.clone()).collect(),
            recipient: recipient.to_owned(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a statement serialises")
    }
}

/// `POST /messages/{id}/receipt`: the statement's exact bytes and the signature over them.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptRequest {
    pub statement: String,
    pub signature: String,
}

/// A registered message as its recipient sees it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RegisteredView {
    /// `pending`, `accepted` or `refused`.
    pub state: String,
    /// What to tell the reader before opening it.
    pub notice: String,
}

/// The external copy of a message for one outside recipient (docs/mail.md, "The envelope and
/// the submission"): its mode, and the hash and size of the copy's exact bytes (the binary
/// OpenPGP message or DER CMS, not base64 or armor).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExternalCopy {
    pub mode: DeliveryMode,
    /// Lowercase hex SHA-256 of the copy.
    pub sha256: String,
    pub size: u64,
}

impl ExternalCopy {
    /// What the envelope says of `copy` (its exact bytes) in `mode`.
    pub fn of(mode: DeliveryMode, copy: &[u8]) -> ExternalCopy {
        use sha2::Digest;
        ExternalCopy {
            mode,
            sha256: hex::encode(sha2::Sha256::digest(copy)),
            size: copy.len() as u64,
        }
    }
}

impl Envelope {
    /// The parts' sizes added up, or `None` if they add up past `u64`. The sizes are the
    /// sender's claim: an unchecked sum panics in a debug build and wraps in a release build,
    /// where a wrapped total would pass the size limit.
    pub fn total_size(&self) -> Option<u64> {
        self.parts
            .iter()
            .try_fold(0u64, |total, p| total.checked_add(p.size))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvelopePart {
    /// Lowercase hex SHA-256 of the part's ciphertext.
    pub sha256: String,
    pub size: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    pub envelope: String,
    pub signature: String,
    /// Ciphertext of small parts, by part index (base64); larger parts are uploaded first.
    #[serde(default)]
    pub inline_parts: BTreeMap<u32, String>,
    /// One seal per pickup recipient (docs/pickup.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pickups: Vec<PickupSeal>,
    /// Pickup recipients whose envelope answer named a live pickup thread (`mode: pickup`
    /// with a `cert`): the message continues it, under the same key and unlock code, instead
    /// of a seal (docs/pickup.md, Threads).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pickup_continuations: Vec<PickupContinuation>,
    /// Each external copy named in `envelope.external`, by recipient address (base64 of the
    /// copy's bytes); a copy left out must have been uploaded (`PUT /blobs`) like a part.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub external_copies: BTreeMap<String, String>,
}

/// A pickup recipient reached with the key of their live pickup thread: the node copies the
/// locked key and verifier of the thread's pickup to this message's (same unlock code).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickupContinuation {
    /// The outside recipient (`envelope.pickup[address]` is the thread's key fingerprint).
    pub address: String,
    /// Days until this message's pickup expires (default and maximum: the node's `[pickup]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

/// What the sender's client hands the node for one pickup recipient: the pickup key locked
/// with the Message Unlock Code, and a verifier derived from it under a separate label.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickupSeal {
    /// The outside recipient.
    pub address: String,
    /// Armored public pickup key (its fingerprint is `envelope.pickup[address]`).
    pub cert: String,
    /// Armored secret pickup key, every secret locked with the wrap passphrase.
    pub locked_key: String,
    /// Armored OpenPGP message: the secret pickup key, encrypted to the sender.
    pub key_for_sender: String,
    /// Base64, 16 to 64 bytes.
    pub salt: String,
    pub kdf: KdfParams,
    /// Base64 of the 32-byte verifier.
    pub verifier: String,
    /// Days until the pickup expires (default and maximum: the node's `[pickup]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecipientState {
    pub address: String,
    /// How the recipient is reached (as the envelope answer said).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<DeliveryMode>,
    /// `delivered`, `queued` or `pickup`.
    pub state: String,
    /// A pickup recipient's link (`{public_url}/pickup#{token}`), given to the submitter
    /// only, once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubmitResponse {
    pub message_id: String,
    pub accepted_at: i64,
    /// True when this exact envelope had already been accepted (a retried submission).
    pub duplicate: bool,
    pub recipients: Vec<RecipientState>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UploadResponse {
    pub sha256: String,
    pub size: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Folder {
    Inbox,
    Sent,
    Archive,
}

impl Folder {
    pub fn as_str(self) -> &'static str {
        match self {
            Folder::Inbox => "inbox",
            Folder::Sent => "sent",
            Folder::Archive => "archive",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "inbox" => Folder::Inbox,
            "sent" => Folder::Sent,
            "archive" => Folder::Archive,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MailboxItem {
    pub message_id: String,
    pub folder: Folder,
    pub unread: bool,
    pub from: String,
    pub to: Vec<String>,
    pub received_at: i64,
    pub size: u64,
    pub parts: u32,
    /// For messages in Sent: each remote recipient's delivery state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivery: Vec<DeliveryState>,
    /// What authenticated a sender who is no user: `pickup` for a reply from a pickup page
    /// (`from` is the outside address; it proved possession of the unlock code the recipient
    /// gave them). Absent for messages of users, here or at a peered organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// Mail that came in over SMTP (`via: "smtp"`, docs/mail.md "SMTP in"): how it arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival: Option<Arrival>,
    /// Mail that came in over SMTP answering a message of ours that went to its sender (named
    /// in its `In-Reply-To` or `References`): that message's ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<String>,
}

/// How a mail that came in over SMTP arrived: what the node saw in transit (its content is
/// part 0, an OpenPGP message to the recipient).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Arrival {
    /// The sender encrypted it (PGP/MIME to the recipient): part 0 is their OpenPGP message as
    /// it came. `false`: it arrived unencrypted and the node encrypted it on arrival.
    pub encrypted: bool,
    /// It came over TLS (STARTTLS).
    pub tls: bool,
    /// SPF, DKIM and DMARC results (RFC 8601 words: `pass`, `fail`, `softfail`, `neutral`,
    /// `none`, `temperror`, `permerror`); `none` also when the node does not check.
    pub spf: String,
    pub dkim: String,
    pub dmarc: String,
    /// The envelope sender (`MAIL FROM`), empty for a bounce.
    pub mail_from: String,
    /// It came through this node's submission gateway (docs/mail.md): the sender, a user of
    /// this node, sent it from a mail program authenticated by an app password, and the node
    /// sealed it (it saw the content; no signature of the sender's own).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub submitted: bool,
}

/// A recipient's delivery state, as the sender sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryState {
    pub address: String,
    /// How the recipient is reached (`remote`, `openpgp`, `smime`, `tls`, `pickup`); absent
    /// for states recorded before modes were (remote or pickup, as `state` tells).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<DeliveryMode>,
    /// `queued`, `delivered` or `failed`; for a pickup recipient `pickup` (not yet notified),
    /// `notified`, `opened`, `read`, `replied`, `locked`, `expired`, `withdrawn` or `failed`.
    pub state: String,
    /// Why it failed, in plain words; for a delivered mail (`openpgp`, `smime`, `tls`), the
    /// answer of the next hop (relay or MX) that accepted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub updated_at: i64,
}

/// A notice for a user from their node (for example, a delivery that failed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Notice {
    pub id: i64,
    pub message_id: Option<String>,
    pub text: String,
    pub created_at: i64,
    pub unread: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MailboxResponse {
    pub items: Vec<MailboxItem>,
    /// In the inbox: the node's notices to the user (deliveries that failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<Notice>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartView {
    pub index: u32,
    pub size: u64,
    pub sha256: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageResponse {
    pub item: MailboxItem,
    pub envelope: String,
    pub signature: String,
    pub accepted_at: i64,
    pub parts: Vec<PartView>,
    /// The sender's certificate as this node knows it (empty if the sender is unknown here).
    pub sender_cert: String,
    /// In the sender's Sent: each pickup recipient's pickup key (docs/pickup.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pickups: Vec<PickupView>,
    /// For a recipient of a registered message (docs/evidence.md): whether they accepted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered: Option<RegisteredView>,
    /// The organisations (domains) whose compliance archive the message is also encrypted to
    /// (docs/compliance.md), as the node reads its head's recipients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compliance: Vec<String>,
    /// This organisation has a compliance key and the message is not encrypted to it (an
    /// OpenPGP mail that arrived encrypted to its recipient only, kept as it came, or a message
    /// from before the key): it waits for the compliance session-key packet.
    #[serde(default)]
    pub compliance_pending: bool,
}

/// A pickup as its sender sees it: enough to issue a new unlock code for the same key.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PickupView {
    pub address: String,
    pub fingerprint: String,
    pub expires_at: i64,
    /// The secret pickup key encrypted to the sender (gone once withdrawn or expired).
    pub key_for_sender: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    pub from: Folder,
    pub to: Folder,
}

/// The sealed head of a message (part 0): everything a reader sees besides attachment bytes.
/// It lives only inside the ciphertext; the node never sees it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Head {
    pub v: u32,
    /// Binds the signed content to its envelope: a reader refuses a head whose ID differs.
    pub message_id: String,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    pub attachments: Vec<AttachmentMeta>,
    pub sent_at: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentMeta {
    pub name: String,
    pub media_type: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the attachment's plaintext.
    pub sha256: String,
    /// Index of the part that carries it.
    pub part: u32,
}

// ---- Web app: account settings and the admin console (api/console.rs) ----

/// A new password: the key re-wrapped and a new verifier, all made by the client; the current
/// password's verifier proves the request comes from the user, not just from their session.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_verifier: String,
    pub wrapped_key: String,
    pub kdf_salt: String,
    pub kdf_params: KdfParams,
    pub login_verifier: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionView {
    /// An opaque identifier (not usable as a token).
    pub id: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// Whether this is the session making the request.
    pub current: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionsResponse {
    pub sessions: Vec<SessionView>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdminUser {
    pub address: String,
    pub name: Option<String>,
    pub is_admin: bool,
    /// `invited`, `active` or `disabled`.
    pub state: String,
    pub fingerprint: Option<String>,
    pub created_at: i64,
    pub totp_enabled: bool,
    /// When the pending invite expires (invited accounts only).
    pub invite_expires_at: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdminUsersResponse {
    pub users: Vec<AdminUser>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    pub address: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub is_admin: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InviteResponse {
    pub address: String,
    /// The one-time invite code (shown once; the node keeps only its hash).
    pub invite: String,
    pub expires_at: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountStateRequest {
    /// `active` or `disabled`.
    pub state: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct AccountCounts {
    pub active: u64,
    pub invited: u64,
    pub disabled: u64,
    pub admins: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeStatus {
    pub domain: String,
    pub version: String,
    pub started_at: i64,
    pub ca_fingerprint: String,
    pub node_key: String,
    pub accounts: AccountCounts,
    pub messages: u64,
    pub stored_bytes: u64,
    pub log_entries: u64,
    pub last_checkpoint_at: Option<i64>,
    pub live_sessions: u64,
    /// Federated peers (as `GET /admin/peers` lists them).
    pub peers: Vec<PeerView>,
}

/// A federated peer as the admin console shows it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PeerView {
    pub domain: String,
    /// The peer node's libp2p peer ID.
    pub peer_id: String,
    pub addrs: Vec<String>,
    /// The peer organisation's CA fingerprint (hex), the key our bridge trust-signs.
    pub ca_fingerprint: String,
    pub added_at: i64,
    /// `new`, `connected`, `backing_off` or `disconnected`.
    pub state: String,
    pub state_at: Option<i64>,
    /// The last error talking to this peer, in plain words.
    pub last_error: Option<String>,
    /// When the next attempt is due (while backing off).
    pub retry_at: Option<i64>,
    /// Messages waiting in the outbox for this peer.
    pub queued: u64,
}

/// A peer's organisation record fetched live over the federation link, checked against what
/// was pinned when the peer was added.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PeerOrgResponse {
    pub domain: String,
    pub record: OrgInfo,
    /// The record's domain, peer ID and CA fingerprint are those pinned at peering. When not,
    /// `mismatches` says which differ: the peer re-keyed or moved, and an admin must re-peer.
    pub matches_pinned: bool,
    pub mismatches: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdminPeersResponse {
    pub peers: Vec<PeerView>,
}

// ---- Pickup: reaching someone with no account and no key (docs/pickup.md) ----

/// A pickup link's token (the link's fragment), as the pickup page sends it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickupOpenRequest {
    /// base64url of the 32-byte pickup token.
    pub token: String,
}

/// What the pickup page shows before the unlock code is entered. Opening changes nothing.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PickupInfo {
    /// `open` (the unlock code is wanted) or `locked` (too many wrong codes: the sender must
    /// issue a new one).
    pub state: String,
    /// The outside recipient the pickup is for.
    pub address: String,
    pub sender: String,
    pub sender_name: Option<String>,
    /// The sending organisation (its domain).
    pub organisation: String,
    pub expires_at: i64,
    /// Base64 salt and parameters of the unlock code's derivation.
    pub salt: String,
    pub kdf: KdfParams,
    pub attempts_left: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickupUnlockRequest {
    pub token: String,
    /// Base64 of the 32-byte verifier derived from the unlock code.
    pub verifier: String,
}

/// The right unlock code: a pickup session and everything needed to decrypt in the browser.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PickupUnlocked {
    /// Bearer token of the pickup session (for `/pickup/parts/{index}` and the reply).
    pub session: String,
    pub session_expires_at: i64,
    pub address: String,
    /// Armored secret pickup key, locked with the wrap passphrase.
    pub locked_key: String,
    /// Armored public pickup key.
    pub cert: String,
    pub message_id: String,
    /// The envelope's exact signed text, and the sender's signature over it.
    pub envelope: String,
    pub signature: String,
    pub sender_cert: String,
    /// Fingerprint of the sending organisation's CA, which certifies the sender's key.
    pub ca_fingerprint: String,
    pub parts: Vec<PartView>,
    /// The organisations whose compliance archive the message's head is also encrypted to
    /// (read from its PKESKs, as a message head's `compliance`): the pickup page says so.
    #[serde(default)]
    pub compliance: Vec<String>,
    /// Present when the message is registered for this pickup recipient (docs/evidence.md,
    /// "Pickup recipients"): its parts are withheld until `POST /pickup/receipt` accepts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered: Option<RegisteredView>,
}

/// `POST /pickup/receipt`: a pickup recipient's decision on a message registered for them.
/// The statement is [`ReceiptStatement`]'s exact bytes, signed (binary detached OpenPGP
/// signature) by `public_key`: a key made in the pickup page, certified by no one, which is
/// not the pickup key (the sender's client made that one and holds a copy of it).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickupReceiptRequest {
    pub statement: String,
    pub signature: String,
    /// Armored public key that made `signature`.
    pub public_key: String,
}

/// `POST /pickup/envelope`: a reply's envelope request (the recipient is fixed: `{}`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickupReplyEnvelopeRequest {}

/// A sender's request about one pickup recipient of their message.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickupWithdrawRequest {
    pub address: String,
}

/// A new unlock code for a pickup: the same pickup key, locked anew.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickupRelockRequest {
    pub address: String,
    pub locked_key: String,
    pub salt: String,
    pub kdf: KdfParams,
    pub verifier: String,
}

/// The messages of a pickup session's thread (docs/pickup.md, Threads): the sender's messages
/// to the outside address under the same pickup key, and the replies, oldest first.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PickupThread {
    /// The outside address and the sender.
    pub address: String,
    pub sender: String,
    /// The sender's certificate, as in [`PickupUnlocked`].
    pub sender_cert: String,
    /// Armored public pickup key (the thread's).
    pub cert: String,
    pub messages: Vec<PickupThreadMessage>,
}

/// One message of a pickup thread.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PickupThreadMessage {
    pub message_id: String,
    pub from: String,
    /// A reply from the outside address (else a message of the sender).
    pub reply: bool,
    pub accepted_at: i64,
    /// The envelope's exact signed text and its signature (by the sender's key, or for a
    /// reply by the pickup key).
    pub envelope: String,
    pub signature: String,
    pub parts: Vec<PartView>,
}

/// `POST /pickup/upgrade`: the pickup's recipient becomes a guest with a key of their own,
/// made in the browser as at enrolment (docs/pickup.md, "Guests"). The address is the pickup's.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GuestUpgradeRequest {
    /// Armored public certificate, one user ID for the pickup's address.
    pub cert: String,
    /// Armored secret key, encrypted in the client with the password-derived wrap key.
    pub wrapped_key: String,
    pub kdf_salt: String,
    pub kdf_params: KdfParams,
    /// Derived from the password separately from the wrap key; the node keeps a slow hash.
    pub login_verifier: String,
}

/// A guest, as administrators see it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdminGuest {
    pub address: String,
    /// `active` or `disabled`.
    pub state: String,
    pub fingerprint: Option<String>,
    pub created_at: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdminGuestsResponse {
    pub guests: Vec<AdminGuest>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An envelope without outside mail recipients has the exact bytes it had before
    /// `external` existed (the signature is over them), and one with a copy round-trips.
    #[test]
    fn envelopes_without_external_copies_keep_their_bytes() {
        let old = r#"{"v":1,"message_id":"m","from":"a@a.test","to":["b@a.test"],"created_at":1,"parts":[{"sha256":"00","size":1}]}"#;
        let env: Envelope = serde_json::from_str(old).unwrap();
        assert!(env.external.is_empty());
        assert_eq!(serde_json::to_string(&env).unwrap(), old);
        let mut with = env.clone();
        with.external.insert(
            "d@pgp.test".into(),
            ExternalCopy::of(DeliveryMode::Openpgp, b"copy"),
        );
        let text = serde_json::to_string(&with).unwrap();
        let sha = &with.external["d@pgp.test"].sha256;
        assert!(text.ends_with(&format!(
            r#","external":{{"d@pgp.test":{{"mode":"openpgp","sha256":"{sha}","size":4}}}}}}"#
        )));
        assert_eq!(serde_json::from_str::<Envelope>(&text).unwrap(), with);
    }
}
