//! Evidence of a message's life that anyone can check offline: the pure core.
//!
//! One [`Record`] per event (ETSI EN 319 522 event names, [`Event`]), in canonical bytes
//! (compact JSON, fields in sorted order, no floats: [`Record::to_bytes`]), each signed with an
//! OpenPGP detached signature by the node's **evidence key** ([`evidence_cert`]: an Ed25519
//! signing key derived from the node key, certified by the organisation CA for
//! `evidence@DOMAIN`). At each log checkpoint tick the records made since the last batch become
//! the leaves of an RFC 6962 Merkle tree; the tree's head ([`BatchHead`]: root, size, time) is
//! signed by the evidence key and time-stamped by the configured RFC 3161 TSA (the imprint is
//! the SHA-256 of the head's bytes). So one time-stamp covers a batch, and a [`Bundle`] for one
//! message carries that message's records, their inclusion proofs, the signed heads and the
//! tokens, and never another message's records (only hashes of the tree's other nodes).
//!
//! [`verify`] checks a bundle with no node and no network and names the first part that does
//! not check out ([`VerifyError::part`]). This module does no I/O and reads no clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use sequoia_openpgp as openpgp;

use openpgp::Cert;
use openpgp::Packet;
use openpgp::packet::prelude::*;
use openpgp::policy::StandardPolicy;
use openpgp::types::{Features, KeyFlags, SignatureType};

use crate::crypto::{CryptoError, ca_certifies, cert_from_armored, primary_signer, user_id};

/// The `format` of a bundle file.
pub const BUNDLE_FORMAT: &str = "sealpost-evidence-bundle-v1";
/// The `format` of a batch head.
pub const HEAD_FORMAT: &str = "sealpost-evidence-batch-v1";
/// The largest bundle the verifier reads.
pub const MAX_BUNDLE_BYTES: usize = 16 * 1024 * 1024;
/// The largest record (canonical bytes) a node makes or a verifier reads.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;
/// The local part of the evidence key's user ID.
pub const EVIDENCE_LOCAL_PART: &str = "evidence";

/// An event of a message's life, named after ETSI EN 319 522-1/-3 where one applies. Which of
/// our events each stands for is written down in docs/evidence.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Event {
    /// The sender's node accepted the submission (checked signature, recipients, parts).
    SubmissionAcceptance,
    /// The recipient's node accepted the message relayed from the sender's node.
    RelayAcceptance,
    /// The recipient's node refused the relayed message for this recipient.
    RelayRejection,
    /// The message was placed in the recipient's mailbox (content made available).
    ContentConsignment,
    /// A notification was sent to the recipient (a pickup link, a registered-mail notice).
    NotificationForAcceptance,
    /// The recipient signed an acceptance receipt (registered mail).
    AcceptanceByRecipient,
    /// The recipient refused a registered message.
    RejectionByRecipient,
    /// The recipient neither accepted nor refused before the message expired.
    NoAcceptanceByRecipient,
    /// The content was handed over to the recipient (first download of the parts).
    ContentHandover,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::SubmissionAcceptance => "SubmissionAcceptance",
            Event::RelayAcceptance => "RelayAcceptance",
            Event::RelayRejection => "RelayRejection",
            Event::ContentConsignment => "ContentConsignment",
            Event::NotificationForAcceptance => "NotificationForAcceptance",
            Event::AcceptanceByRecipient => "AcceptanceByRecipient",
            Event::RejectionByRecipient => "RejectionByRecipient",
            Event::NoAcceptanceByRecipient => "NoAcceptanceByRecipient",
            Event::ContentHandover => "ContentHandover",
        }
    }
}

/// One evidence record. Fields are declared in sorted order: [`Record::to_bytes`] is serde's
/// compact JSON of this struct, so the bytes are canonical (sorted keys, no whitespace, no
/// floats) and [`Record::from_bytes`] refuses any other spelling of the same record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// When the node saw the event (Unix seconds, the node's clock; the batch's time-stamp
    /// bounds it from above).
    pub at: i64,
    /// Event-specific facts (e.g. the receipt's signature for an acceptance, the reason of a
    /// refusal). Never content.
    pub detail: std::collections::BTreeMap<String, String>,
    pub event: Event,
    /// The record's identifier at the signing node (random, unique).
    pub id: String,
    /// The message ID the sender's node gave.
    pub message_id: String,
    /// The domain of the node that saw the event and signed the record.
    pub node: String,
    /// The SHA-256 (hex) of each ciphertext part, in order.
    pub parts: Vec<String>,
    /// The recipient the event concerns; `None` for the message as a whole (submission).
    pub recipient: Option<String>,
    pub sender: String,
    /// Format version: 1.
    pub v: u32,
}

impl Record {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a record always serialises")
    }

    /// Parses canonical bytes; anything else (other key order, spaces, unknown fields) is an
    /// error, so one record has one byte string and one signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<Record, String> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err("too large".into());
        }
        let r: Record = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if r.v != 1 {
            return Err(format!("unknown version {}", r.v));
        }
        if r.to_bytes() != bytes {
            return Err("not in canonical form".into());
        }
        Ok(r)
    }
}

/// The signed and time-stamped head of one batch's Merkle tree. Canonical as [`Record`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchHead {
    /// When the batch was sealed (Unix seconds, the node's clock).
    pub at: i64,
    /// The batch's number at the node (1, 2, ...).
    pub batch: u64,
    /// [`HEAD_FORMAT`].
    pub format: String,
    pub node: String,
    /// RFC 6962 Merkle tree hash (SHA-256, hex) over the batch's records' bytes, in order.
    pub root: String,
    /// Number of records (leaves).
    pub size: u64,
}

impl BatchHead {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a head always serialises")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<BatchHead, String> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err("too large".into());
        }
        let h: BatchHead = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if h.format != HEAD_FORMAT {
            return Err(format!("unknown format {:?}", h.format));
        }
        if h.to_bytes() != bytes {
            return Err("not in canonical form".into());
        }
        Ok(h)
    }

    /// What the batch's RFC 3161 time-stamp covers: the SHA-256 of the head's bytes (so
    /// `openssl ts -verify -data head.json` recomputes it).
    pub fn imprint(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }
}

type Tree = ct_merkle::mem_backed_tree::MemoryBackedTree<Sha256, Vec<u8>>;

/// A sealed batch: its head and, for each record (in the order given), the RFC 6962 inclusion
/// proof (the audit path's hashes, concatenated).
pub struct Sealed {
    pub head: BatchHead,
    pub proofs: Vec<Vec<u8>>,
}

/// Builds the Merkle tree over `records` (their canonical bytes) and the batch's head.
pub fn seal(node: &str, batch: u64, records: &[Vec<u8>], at: i64) -> Sealed {
    let mut t = Tree::new();
    for r in records {
        t.push(r.clone());
    }
    let head = BatchHead {
        at,
        batch,
        format: HEAD_FORMAT.into(),
        node: node.into(),
        root: hex::encode(t.root().as_bytes()),
        size: t.len(),
    };
    let proofs = (0..records.len())
        .map(|i| t.prove_inclusion(i).as_bytes().to_vec())
        .collect();
    Sealed { head, proofs }
}

/// Whether `proof` places `record` (its bytes) at `index` of the tree `head` names.
pub fn proves_inclusion(head: &BatchHead, record: &[u8], index: u64, proof: &[u8]) -> bool {
    let Ok(root) = hex::decode(&head.root) else {
        return false;
    };
    let Ok(root): Result<[u8; 32], _> = root.try_into() else {
        return false;
    };
    let Ok(proof) = ct_merkle::InclusionProof::<Sha256>::try_from_bytes(proof.to_vec()) else {
        return false;
    };
    ct_merkle::RootHash::<Sha256>::new(root.into(), head.size)
        .verify_inclusion(&record.to_vec(), index, &proof)
        .is_ok()
}

/// The node's evidence key: an Ed25519 signing-only primary key made from `secret` (derived
/// from the node key, so nothing new is stored), created at the CA's creation time so that its
/// fingerprint never changes, with the user ID `Sealpost evidence <evidence@DOMAIN>` certified
/// by the organisation CA `ca` (which must hold its secret key). Returns the certificate with
/// its secret key.
pub fn evidence_cert(ca: &Cert, secret: &[u8; 32], domain: &str) -> Result<Cert, CryptoError> {
    let err = |what: &'static str| move |e: anyhow::Error| CryptoError::other(what, e);
    let created = ca.primary_key().key().creation_time();
    let key: Key<key::SecretParts, key::PrimaryRole> = Key4::import_secret_ed25519(secret, created)
        .map_err(err("evidence key"))?
        .into();
    let mut signer = key.clone().into_keypair().map_err(err("evidence key"))?;
    let cert = Cert::try_from(vec![Packet::from(key)]).map_err(err("evidence key"))?;
    let address = format!("{EVIDENCE_LOCAL_PART}@{}", domain.to_ascii_lowercase());
    let uid = user_id(Some("Sealpost evidence"), &address)?;
    let binding = SignatureBuilder::new(SignatureType::PositiveCertification)
        .set_signature_creation_time(created)
        .and_then(|b| b.set_key_flags(KeyFlags::empty().set_signing()))
        .and_then(|b| b.set_features(Features::empty().set_seipdv1()))
        .and_then(|b| b.set_primary_userid(true))
        .and_then(|b| uid.bind(&mut signer, &cert, b))
        .map_err(err("evidence key binding"))?;
    let cert = cert
        .insert_packets(vec![Packet::from(uid), binding.into()])
        .map_err(err("evidence key binding"))?
        .0;
    crate::crypto::ca_certify(ca, &cert, &address, created)
}

/// An armored binary detached signature by the evidence key over `bytes`, made at `now`.
pub fn sign(evidence_key: &Cert, bytes: &[u8], now: SystemTime) -> Result<String, CryptoError> {
    let mut signer = primary_signer(evidence_key)?;
    let sig = SignatureBuilder::new(SignatureType::Binary)
        .set_signature_creation_time(now)
        .and_then(|b| b.sign_message(&mut signer, bytes))
        .map_err(|e| CryptoError::other("signing evidence", e))?;
    crate::crypto::signature_to_armored(&sig)
}

/// One message's evidence, as one JSON file: binary parts in standard base64, signatures and
/// certificates armored, so each part can be cut out and checked with gpg or openssl.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// [`BUNDLE_FORMAT`].
    pub format: String,
    pub message_id: String,
    /// The organisation CA's certificate (armored): the trust anchor, which the verifier
    /// reports by fingerprint and may be told to pin.
    pub ca_cert: String,
    /// The node's evidence key (armored, public), certified by `ca_cert`.
    pub evidence_cert: String,
    /// The TSA's CA as the node is configured with (PEM), for convenience: the verifier trusts
    /// it only when not given its own.
    pub tsa_ca: Option<String>,
    pub records: Vec<BundleRecord>,
    pub batches: Vec<BundleBatch>,
    /// The recipients' nodes' bundles of the same message (in the sender's bundle), each under
    /// its own organisation's CA; one level only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(no_recursion)]
    pub peers: Vec<Bundle>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleRecord {
    /// The record's canonical bytes (base64).
    pub record: String,
    /// The evidence key's armored detached signature over them.
    pub signature: String,
    /// The batch that covers it (a `batches[].head`'s `batch`).
    pub batch: u64,
    /// Its leaf index in that batch's tree.
    pub index: u64,
    /// The RFC 6962 inclusion proof (base64 of the concatenated 32-byte hashes).
    pub proof: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleBatch {
    /// The head's canonical bytes (base64).
    pub head: String,
    /// The evidence key's armored detached signature over them.
    pub signature: String,
    /// The TSA's token (DER `TimeStampToken`, base64) over SHA-256(head).
    pub timestamp: String,
}

/// Which part of a bundle failed and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{part}: {reason}")]
pub struct VerifyError {
    /// The bundle's field, e.g. `records[2].signature`, `batches[0].timestamp`.
    pub part: String,
    pub reason: String,
}

fn fail(part: impl Into<String>, reason: impl std::fmt::Display) -> VerifyError {
    VerifyError {
        part: part.into(),
        reason: reason.to_string(),
    }
}

/// What the verifier trusts: the TSA's CA (PEM; else the bundle's own `tsa_ca`) and,
/// optionally, the organisation CA to pin (else the bundle's, reported by fingerprint).
pub struct Anchors<'a> {
    pub tsa_ca: Option<&'a [u8]>,
    pub ca: Option<&'a Cert>,
    /// The verifier's time, for certificate validity.
    pub now: SystemTime,
}

/// A checked record with the time its batch was stamped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedRecord {
    pub record: Record,
    pub stamped_at: i64,
}

/// A bundle that checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub message_id: String,
    pub ca_fingerprint: String,
    pub evidence_fingerprint: String,
    /// Whether the TSA CA was the verifier's own (`false`: the bundle's).
    pub tsa_ca_given: bool,
    pub records: Vec<CheckedRecord>,
    /// The recipients' nodes' bundles, checked the same way (their CAs reported, not pinned).
    pub peers: Vec<Verified>,
}

fn b64(part: &str, s: &str) -> Result<Vec<u8>, VerifyError> {
    B64.decode(s.trim())
        .map_err(|e| fail(part, format!("not base64: {e}")))
}

/// Checks every part of a bundle: the CA and the evidence key's certification, each batch
/// head's signature and time-stamp, each record's signature and inclusion proof. The first
/// failing part is named. Where two parts disagree, the one whose own signature fails is
/// named (a changed record breaks both its signature and its proof: the record is named).
pub fn verify(bytes: &[u8], anchors: &Anchors) -> Result<Verified, VerifyError> {
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(fail("bundle", "too large"));
    }
    let b: Bundle = serde_json::from_slice(bytes).map_err(|e| fail("bundle", e))?;
    let mut v = verify_one(&b, anchors)?;
    let theirs = Anchors {
        tsa_ca: anchors.tsa_ca,
        ca: None,
        now: anchors.now,
    };
    for (i, p) in b.peers.iter().enumerate() {
        let nested = |e: VerifyError| fail(format!("peers[{i}].{}", e.part), e.reason);
        if !p.peers.is_empty() {
            return Err(fail(format!("peers[{i}].peers"), "nested too deep"));
        }
        if p.message_id != b.message_id {
            return Err(fail(
                format!("peers[{i}].message_id"),
                "is about another message",
            ));
        }
        v.peers.push(verify_one(p, &theirs).map_err(nested)?);
    }
    Ok(v)
}

fn verify_one(b: &Bundle, anchors: &Anchors) -> Result<Verified, VerifyError> {
    if b.format != BUNDLE_FORMAT {
        return Err(fail("format", format!("unknown format {:?}", b.format)));
    }
    let policy = StandardPolicy::new();
    let ca = cert_from_armored(&b.ca_cert).map_err(|e| fail("ca_cert", e))?;
    if let Some(pinned) = anchors.ca
        && pinned.fingerprint() != ca.fingerprint()
    {
        return Err(fail(
            "ca_cert",
            format!(
                "is {}, not the CA given ({})",
                ca.fingerprint(),
                pinned.fingerprint()
            ),
        ));
    }
    let ev = cert_from_armored(&b.evidence_cert).map_err(|e| fail("evidence_cert", e))?;
    let mut certified_domain = None;
    for uid in ev.userids() {
        if let Ok(Some(addr)) = uid.userid().email()
            && ca_certifies(&ca, &ev, &addr.to_lowercase(), &policy, anchors.now)
            && addr
                .to_lowercase()
                .starts_with(&format!("{EVIDENCE_LOCAL_PART}@"))
        {
            certified_domain = addr
                .to_lowercase()
                .split_once('@')
                .map(|(_, d)| d.to_owned());
        }
    }
    let Some(domain) = certified_domain else {
        // Certified, but by another key than ca_cert's: it is the CA that does not match.
        let ca_handle = openpgp::KeyHandle::from(ca.fingerprint());
        let by_other = ev.userids().any(|u| {
            u.certifications()
                .any(|s| !s.get_issuers().iter().any(|i| i.aliases(&ca_handle)))
        });
        if by_other {
            return Err(fail(
                "ca_cert",
                "is not the CA that certified evidence_cert",
            ));
        }
        return Err(fail(
            "evidence_cert",
            "carries no evidence@DOMAIN user ID certified by ca_cert",
        ));
    };
    let tsa_pem: Vec<u8> = match (anchors.tsa_ca, &b.tsa_ca) {
        (Some(p), _) => p.to_vec(),
        (None, Some(p)) => p.as_bytes().to_vec(),
        (None, None) => return Err(fail("tsa_ca", "no TSA CA given and none in the bundle")),
    };
    let check_sig = |data: &[u8], sig: &str| {
        crate::crypto::verify_detached(&ev, &policy, anchors.now, data, sig)
    };

    let mut heads = std::collections::HashMap::new();
    for (j, bb) in b.batches.iter().enumerate() {
        let part = |f: &str| format!("batches[{j}].{f}");
        let head_bytes = b64(&part("head"), &bb.head)?;
        let token = b64(&part("timestamp"), &bb.timestamp)?;
        let head = BatchHead::from_bytes(&head_bytes).map_err(|e| fail(part("head"), e))?;
        if head.node != domain {
            return Err(fail(
                part("head"),
                format!("names node {}, the evidence key is for {domain}", head.node),
            ));
        }
        let sig_ok = check_sig(&head_bytes, &bb.signature);
        // The TSA's certificate is judged at the time the token claims (checked just below).
        let claimed = crate::timestamp::claimed_gen_time(&token).unwrap_or(head.at);
        let store = crate::timestamp::ca_store(&tsa_pem, claimed).map_err(|e| {
            fail(
                if anchors.tsa_ca.is_some() {
                    "--tsa-ca"
                } else {
                    "tsa_ca"
                },
                e,
            )
        })?;
        let imprint = BatchHead::imprint(&head_bytes);
        let stamp = crate::timestamp::check_token(&token, &imprint, &store);
        let gen_time = match (sig_ok, stamp) {
            (Ok(()), Ok(t)) => t,
            (Err(_), Err(crate::timestamp::TimestampError::WrongImprint)) => {
                return Err(fail(
                    part("head"),
                    "matches neither its signature nor its time-stamp",
                ));
            }
            (Err(e), _) => return Err(fail(part("signature"), e)),
            (Ok(()), Err(e)) => return Err(fail(part("timestamp"), e)),
        };
        if heads.insert(head.batch, (head, gen_time)).is_some() {
            return Err(fail(part("head"), "a second head for the same batch"));
        }
    }

    let mut records = Vec::new();
    for (i, br) in b.records.iter().enumerate() {
        let part = |f: &str| format!("records[{i}].{f}");
        let bytes = b64(&part("record"), &br.record)?;
        let proof = b64(&part("proof"), &br.proof)?;
        let record = Record::from_bytes(&bytes).map_err(|e| fail(part("record"), e))?;
        let Some((head, gen_time)) = heads.get(&br.batch) else {
            return Err(fail(
                part("batch"),
                format!("no batch {} in the bundle", br.batch),
            ));
        };
        let sig_ok = check_sig(&bytes, &br.signature);
        let included = proves_inclusion(head, &bytes, br.index, &proof);
        match (sig_ok, included) {
            (Ok(()), true) => {}
            (Err(_), false) => {
                return Err(fail(
                    part("record"),
                    "matches neither its signature nor its proof",
                ));
            }
            (Err(e), true) => return Err(fail(part("signature"), e)),
            (Ok(()), false) => {
                return Err(fail(
                    part("proof"),
                    format!("does not place the record in batch {}", br.batch),
                ));
            }
        }
        if record.message_id != b.message_id {
            return Err(fail(part("record"), "is about another message"));
        }
        if record.node != domain {
            return Err(fail(part("record"), format!("names node {}", record.node)));
        }
        if record.at > *gen_time {
            return Err(fail(
                part("record"),
                "is dated after its batch's time-stamp",
            ));
        }
        records.push(CheckedRecord {
            record,
            stamped_at: *gen_time,
        });
    }
    if records.is_empty() {
        return Err(fail("records", "none"));
    }
    Ok(Verified {
        peers: Vec::new(),
        message_id: b.message_id.clone(),
        ca_fingerprint: ca.fingerprint().to_hex(),
        evidence_fingerprint: ev.fingerprint().to_hex(),
        tsa_ca_given: anchors.tsa_ca.is_some(),
        records,
    })
}

/// Unix seconds as a `SystemTime`.
pub fn system_time(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64)
}

/// Base64 as bundles carry it.
pub fn encode(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

#[cfg(test)]
mod tests;
