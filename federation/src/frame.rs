//! Framing: the versioned messages two Sealpost nodes exchange.
//!
//! A frame on the wire is one JSON document `{"v": 1, "frame": {"type": "...", ...}}`. JSON
//! because the envelope inside a transfer is itself the sender's exact signed JSON bytes (carried
//! as a string, never re-serialised) and because frames are small: ciphertext parts are streamed
//! separately by the driver and only referenced here by hash and size.
//!
//! [`decode`] is the only way in from the network. It checks, in this order: the total length
//! against [`Limits::max_frame_bytes`] (before parsing anything), the protocol version, the
//! shape, and then every count and field size against [`Limits`]. Each failure is a typed
//! [`FrameError`].
//!
//! This module must not do I/O, verify signatures or decide authorisation: it only says whether
//! bytes are a well-formed, bounded frame. [`Transfer::signing_digest`] and
//! [`Receipt::signing_digest`] give the driver the exact bytes the node signs with its key.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// The protocol version this crate speaks. A frame with any other `v` is refused.
pub const PROTOCOL_VERSION: u16 = 1;

/// A message ID as issued by the sender's node (opaque to federation).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub String);

impl MessageId {
    pub fn new(id: impl Into<String>) -> Self {
        MessageId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for MessageId {
    fn from(s: &str) -> Self {
        MessageId(s.to_owned())
    }
}

/// One frame of the node-to-node protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Frame {
    /// A message handed to the recipient's node (its ciphertext parts follow as streams).
    Transfer(Transfer),
    /// The receiving node's signed answer to a transfer.
    Receipt(Receipt),
    /// A directory look-up: certificates for an address.
    Lookup(Lookup),
    /// The answer to a [`Lookup`].
    LookupAnswer(LookupAnswer),
    /// Certificate updates and revocations, pushed or answering a [`PullSince`].
    CertUpdates(CertUpdates),
    /// "Send me every certificate change after this cursor."
    PullSince(PullSince),
    /// The receiver's answer to an admissible [`Transfer`]: send these parts (by index), then
    /// expect the [`Receipt`]. Parts the receiver already holds are not asked for.
    Want(Want),
    /// "My certificates changed; my cursor is now this": the peer pulls if it is behind.
    Changed(Changed),
    /// "Send me your organisation record."
    OrgLookup(OrgLookup),
    /// The answer to an [`OrgLookup`].
    OrgRecord(OrgRecord),
    /// Several transfers whose parts all travel inline, under one node signature over the
    /// Merkle root of their digests ([`Batch::signing_digest`]).
    Batch(Batch),
    /// The receiver's answer to a [`Batch`]: a receipt or an error for each transfer, the
    /// receipts under one node signature ([`BatchAnswer::signing_digest`]).
    BatchAnswer(BatchAnswer),
    /// A request the answering node could not serve, in plain words.
    Error(ErrorFrame),
    /// "Send me your evidence records of this message" (docs/evidence.md): asked by the
    /// sender's node of a recipient's node; answered only for a message from the asking
    /// peer's domain.
    EvidenceLookup(EvidenceLookup),
    /// The answer to an [`EvidenceLookup`]: an evidence bundle (JSON).
    EvidenceRecords(EvidenceRecords),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceLookup {
    pub message_id: MessageId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRecords {
    /// The answering node's evidence bundle of the message (`sealpost-evidence-bundle-v1`):
    /// its records, signatures, proofs and time-stamps. At most
    /// [`Limits::max_evidence_bytes`].
    pub bundle: String,
}

/// Transfers sent together so that the two nodes sign and verify once per batch rather than
/// once per message. Each transfer has every part inline ([`PartRef::data`]) and an empty
/// `node_sig`: the batch's signature covers it through the Merkle tree of
/// [`Transfer::signing_digest`]s, and [`BatchProof`] shows that for any one of them later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// At least one, at most [`Limits::max_batch`], with distinct message IDs.
    pub transfers: Vec<Transfer>,
    /// The sending node's signature over [`Batch::signing_digest`] (hex on the wire).
    #[serde(with = "hex_bytes", default)]
    pub node_sig: Vec<u8>,
}

/// The answer to a [`Batch`]: every transfer of the batch answered exactly once, by a receipt
/// or by an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAnswer {
    /// Receipts (each `node_sig` empty), in the order of the transfers they answer.
    pub receipts: Vec<Receipt>,
    /// Transfers not answered by a receipt, with the error a lone transfer would have got.
    pub errors: Vec<BatchError>,
    /// The receiving node's signature over [`BatchAnswer::signing_digest`] (hex on the wire).
    #[serde(with = "hex_bytes", default)]
    pub node_sig: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchError {
    pub message_id: MessageId,
    /// As in [`ErrorFrame::code`].
    pub code: String,
    pub message: String,
}

/// Where one transfer's or receipt's digest sits in the Merkle tree (RFC 6962) whose root a
/// batch signature covers: with the batch's `node_sig`, the evidence that the node signed that
/// one item, without revealing the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchProof {
    pub index: u64,
    /// The number of items in the batch.
    pub size: u64,
    /// The tree's root (hex on the wire).
    #[serde(with = "hex_bytes")]
    pub root: Vec<u8>,
    /// The RFC 6962 audit path: sibling hashes from the leaf up (hex on the wire).
    #[serde(with = "hex_bytes")]
    pub path: Vec<u8>,
}

/// Asks the peer for its organisation record (the one its directory publishes over HTTPS at
/// `/.well-known/sealpost/org`), so a node can check what it pinned at peering without leaving
/// the authenticated QUIC link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgLookup {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRecord {
    /// The record as the answering node publishes it: a JSON object (domain, CA fingerprint
    /// and certificate, node key, peer ID, federation addresses, limits, version). At most
    /// [`Limits::max_org_record_bytes`].
    pub record: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Want {
    pub message_id: MessageId,
    /// Indices into [`Transfer::parts`], ascending, each at most once.
    pub parts: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    pub cursor: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// Stable machine-readable code, e.g. `not_authorised`, `unavailable`.
    pub code: String,
    pub message: String,
}

/// A message transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub message_id: MessageId,
    /// The sender's envelope, exactly the JSON bytes the sender signed.
    pub envelope: String,
    /// The sender's detached OpenPGP signature over `envelope` (armored).
    pub signature: String,
    /// The sender's certificate (armored), so the receiver can authenticate the signature
    /// through its own trust view without a look-up round trip. The receiver keeps only what
    /// its peer may speak for, and decides trust itself.
    #[serde(default)]
    pub sender_cert: String,
    /// The ciphertext parts, in order, by SHA-256 (lowercase hex) and size.
    pub parts: Vec<PartRef>,
    /// The sending node's signature over [`Transfer::signing_digest`] (hex on the wire).
    /// Empty while unsigned; the receiving driver refuses unsigned transfers.
    #[serde(with = "hex_bytes", default)]
    pub node_sig: Vec<u8>,
}

/// A reference to one ciphertext part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRef {
    /// SHA-256 of the part, 64 lowercase hex digits.
    pub sha256: String,
    pub size: u64,
    /// The part's bytes, when the sender sends a small part with its transfer (base64 on the
    /// wire): the receiver stores it without a `Want` round trip. Like streamed part bytes it
    /// is not under the node signature; the receiver checks it against `sha256` and `size`.
    /// Bounded by [`Limits::max_inline_part_bytes`] and, per transfer,
    /// [`Limits::max_inline_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_base64")]
    pub data: Option<Vec<u8>>,
}

/// The receiving node's answer to a transfer: which recipients it accepted and which it refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub message_id: MessageId,
    /// Recipient addresses stored durably at the receiving node.
    pub accepted: Vec<String>,
    /// Recipient addresses refused, each with the reason in plain words.
    pub refused: Vec<Refusal>,
    /// The receiving node's signature over [`Receipt::signing_digest`] (hex on the wire).
    #[serde(with = "hex_bytes", default)]
    pub node_sig: Vec<u8>,
}

/// One refused recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub address: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lookup {
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupAnswer {
    /// Armored OpenPGP certificates (possibly none).
    pub certs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertUpdates {
    /// The sender's change cursor after these updates; the peer pulls from it next time.
    pub cursor: u64,
    /// Armored OpenPGP certificates, including revocations.
    pub certs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullSince {
    pub cursor: u64,
}

/// Size limits applied by [`decode`] and [`Frame::validate`]. Every collection and string in a
/// frame is bounded so that a peer cannot make us allocate without limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Total encoded frame size; checked before parsing.
    pub max_frame_bytes: usize,
    pub max_message_id_bytes: usize,
    pub max_envelope_bytes: usize,
    pub max_signature_bytes: usize,
    pub max_parts: usize,
    /// Node signatures (Ed25519 is 64 bytes).
    pub max_node_sig_bytes: usize,
    pub max_address_bytes: usize,
    /// Accepted plus refused recipients in one receipt.
    pub max_addresses: usize,
    pub max_reason_bytes: usize,
    pub max_certs: usize,
    pub max_cert_bytes: usize,
    /// One part sent inline in a transfer ([`PartRef::data`]).
    pub max_inline_part_bytes: usize,
    /// All inline parts of one transfer together.
    pub max_inline_bytes: usize,
    /// An organisation record ([`OrgRecord::record`]).
    pub max_org_record_bytes: usize,
    /// Transfers in one [`Batch`] (and answers in one [`BatchAnswer`]).
    pub max_batch: usize,
    /// An evidence bundle ([`EvidenceRecords::bundle`]).
    pub max_evidence_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 4 << 20,
            max_message_id_bytes: 128,
            max_envelope_bytes: 256 << 10,
            max_signature_bytes: 8 << 10,
            max_parts: 1024,
            max_node_sig_bytes: 128,
            max_address_bytes: 320,
            max_addresses: 1000,
            max_reason_bytes: 1024,
            max_certs: 256,
            max_cert_bytes: 256 << 10,
            max_inline_part_bytes: 64 << 10,
            max_inline_bytes: 1 << 20,
            max_org_record_bytes: 64 << 10,
            max_batch: 64,
            max_evidence_bytes: 1 << 20,
        }
    }
}

/// Why bytes are not an acceptable frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("unsupported protocol version {got} (this node speaks version {supported})")]
    UnsupportedVersion { got: u64, supported: u16 },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("{field}: {got} exceeds the limit of {max}")]
    LimitExceeded {
        field: &'static str,
        got: usize,
        max: usize,
    },
    #[error("{field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
}

#[derive(Serialize)]
struct WireOut<'a> {
    v: u16,
    frame: &'a Frame,
}

#[derive(Deserialize)]
struct WireHeader {
    v: u64,
}

#[derive(Deserialize)]
struct WireIn {
    #[allow(dead_code)] // checked through `WireHeader` first
    v: u64,
    frame: Frame,
}

/// Encodes a frame for the wire. Does not check [`Limits`]; call [`Frame::validate`] first when
/// the content comes from outside (the peer would refuse an oversize frame).
pub fn encode(frame: &Frame) -> Vec<u8> {
    serde_json::to_vec(&WireOut {
        v: PROTOCOL_VERSION,
        frame,
    })
    // Only strings, integers and sequences: serialisation cannot fail.
    .expect("frames always serialise")
}

/// Decodes and validates one frame received from a peer.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Frame, FrameError> {
    if bytes.len() > limits.max_frame_bytes {
        return Err(FrameError::TooLarge {
            len: bytes.len(),
            max: limits.max_frame_bytes,
        });
    }
    // The version is read on its own first: a frame of another version may have a shape we do
    // not know, and the peer deserves "unsupported version" rather than "malformed".
    let header: WireHeader =
        serde_json::from_slice(bytes).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if header.v != u64::from(PROTOCOL_VERSION) {
        return Err(FrameError::UnsupportedVersion {
            got: header.v,
            supported: PROTOCOL_VERSION,
        });
    }
    let wire: WireIn =
        serde_json::from_slice(bytes).map_err(|e| FrameError::Malformed(e.to_string()))?;
    wire.frame.validate(limits)?;
    Ok(wire.frame)
}

fn check_len(field: &'static str, got: usize, max: usize) -> Result<(), FrameError> {
    if got > max {
        Err(FrameError::LimitExceeded { field, got, max })
    } else {
        Ok(())
    }
}

fn check_nonempty(field: &'static str, s: &str) -> Result<(), FrameError> {
    if s.is_empty() {
        Err(FrameError::Invalid {
            field,
            reason: "must not be empty",
        })
    } else {
        Ok(())
    }
}

impl Frame {
    /// Checks every count and size against `limits` and the few shape rules JSON cannot express.
    pub fn validate(&self, limits: &Limits) -> Result<(), FrameError> {
        match self {
            Frame::Transfer(t) => check_transfer(t, limits),
            Frame::Receipt(r) => check_receipt(r, limits),
            Frame::Batch(b) => {
                check_count("transfers", b.transfers.len(), limits.max_batch)?;
                let mut ids = std::collections::HashSet::with_capacity(b.transfers.len());
                for t in &b.transfers {
                    check_transfer(t, limits)?;
                    if !t.node_sig.is_empty() {
                        return Err(FrameError::Invalid {
                            field: "transfers.node_sig",
                            reason: "must be empty: the batch signature covers it",
                        });
                    }
                    if t.parts.iter().any(|p| p.data.is_none()) {
                        return Err(FrameError::Invalid {
                            field: "transfers.parts",
                            reason: "every part of a batched transfer is inline",
                        });
                    }
                    if !ids.insert(&t.message_id) {
                        return Err(FrameError::Invalid {
                            field: "transfers.message_id",
                            reason: "must be distinct within a batch",
                        });
                    }
                }
                check_len("node_sig", b.node_sig.len(), limits.max_node_sig_bytes)
            }
            Frame::BatchAnswer(a) => {
                check_len(
                    "answers",
                    a.receipts.len().saturating_add(a.errors.len()),
                    limits.max_batch,
                )?;
                for r in &a.receipts {
                    check_receipt(r, limits)?;
                    if !r.node_sig.is_empty() {
                        return Err(FrameError::Invalid {
                            field: "receipts.node_sig",
                            reason: "must be empty: the batch signature covers it",
                        });
                    }
                }
                for e in &a.errors {
                    check_id(&e.message_id, limits)?;
                    check_error(&e.code, &e.message, limits)?;
                }
                check_len("node_sig", a.node_sig.len(), limits.max_node_sig_bytes)
            }
            Frame::Lookup(l) => check_address(&l.address, limits),
            Frame::LookupAnswer(a) => check_certs(&a.certs, limits),
            Frame::CertUpdates(u) => check_certs(&u.certs, limits),
            Frame::PullSince(_) | Frame::OrgLookup(_) => Ok(()),
            Frame::OrgRecord(r) => {
                check_nonempty("record", &r.record)?;
                check_len("record", r.record.len(), limits.max_org_record_bytes)
            }
            Frame::EvidenceLookup(l) => check_id(&l.message_id, limits),
            Frame::EvidenceRecords(r) => {
                check_nonempty("bundle", &r.bundle)?;
                check_len("bundle", r.bundle.len(), limits.max_evidence_bytes)
            }
            Frame::Want(w) => {
                check_id(&w.message_id, limits)?;
                check_len("parts", w.parts.len(), limits.max_parts)?;
                if !w.parts.windows(2).all(|p| p[0] < p[1]) {
                    return Err(FrameError::Invalid {
                        field: "parts",
                        reason: "must be ascending without repeats",
                    });
                }
                Ok(())
            }
            Frame::Changed(_) => Ok(()),
            Frame::Error(e) => check_error(&e.code, &e.message, limits),
        }
    }
}

fn check_error(code: &str, message: &str, limits: &Limits) -> Result<(), FrameError> {
    check_nonempty("code", code)?;
    check_len("code", code.len(), 64)?;
    check_len("message", message.len(), limits.max_reason_bytes)
}

fn check_count(field: &'static str, got: usize, max: usize) -> Result<(), FrameError> {
    if got == 0 {
        return Err(FrameError::Invalid {
            field,
            reason: "must not be empty",
        });
    }
    check_len(field, got, max)
}

fn check_transfer(t: &Transfer, limits: &Limits) -> Result<(), FrameError> {
    check_id(&t.message_id, limits)?;
    check_nonempty("envelope", &t.envelope)?;
    check_len("envelope", t.envelope.len(), limits.max_envelope_bytes)?;
    check_nonempty("signature", &t.signature)?;
    check_len("signature", t.signature.len(), limits.max_signature_bytes)?;
    check_len("sender_cert", t.sender_cert.len(), limits.max_cert_bytes)?;
    if t.parts.is_empty() {
        // Part 0 is the sealed head: a message always has one.
        return Err(FrameError::Invalid {
            field: "parts",
            reason: "a message has at least its head part",
        });
    }
    check_len("parts", t.parts.len(), limits.max_parts)?;
    for p in &t.parts {
        if p.sha256.len() != 64
            || !p
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(FrameError::Invalid {
                field: "parts.sha256",
                reason: "must be 64 lowercase hex digits",
            });
        }
        if let Some(d) = &p.data {
            check_len("parts.data", d.len(), limits.max_inline_part_bytes)?;
            if d.len() as u64 != p.size {
                return Err(FrameError::Invalid {
                    field: "parts.data",
                    reason: "must be exactly the part's size",
                });
            }
        }
    }
    // Saturating: a total past `usize` is over any limit (each part was bounded above, so it
    // cannot happen with sane limits, but these are a peer's bytes).
    let inline = t
        .parts
        .iter()
        .filter_map(|p| p.data.as_ref())
        .fold(0usize, |total, d| total.saturating_add(d.len()));
    check_len("parts.data", inline, limits.max_inline_bytes)?;
    check_len("node_sig", t.node_sig.len(), limits.max_node_sig_bytes)
}

fn check_receipt(r: &Receipt, limits: &Limits) -> Result<(), FrameError> {
    check_id(&r.message_id, limits)?;
    check_len(
        "addresses",
        r.accepted.len().saturating_add(r.refused.len()),
        limits.max_addresses,
    )?;
    for a in r
        .accepted
        .iter()
        .chain(r.refused.iter().map(|x| &x.address))
    {
        check_address(a, limits)?;
    }
    for x in &r.refused {
        check_len("reason", x.reason.len(), limits.max_reason_bytes)?;
    }
    check_len("node_sig", r.node_sig.len(), limits.max_node_sig_bytes)
}

fn check_id(id: &MessageId, limits: &Limits) -> Result<(), FrameError> {
    check_nonempty("message_id", id.as_str())?;
    check_len("message_id", id.0.len(), limits.max_message_id_bytes)
}

fn check_address(a: &str, limits: &Limits) -> Result<(), FrameError> {
    check_nonempty("address", a)?;
    check_len("address", a.len(), limits.max_address_bytes)
}

fn check_certs(certs: &[String], limits: &Limits) -> Result<(), FrameError> {
    check_len("certs", certs.len(), limits.max_certs)?;
    for c in certs {
        check_len("cert", c.len(), limits.max_cert_bytes)?;
    }
    Ok(())
}

/// Length-prefixed hashing, so that no two different field sequences hash alike.
struct Signed(Sha256);

impl Signed {
    fn new(domain: &str) -> Self {
        let mut s = Signed(Sha256::new());
        s.field(domain.as_bytes());
        s
    }
    fn field(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
    }
    fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

impl Transfer {
    /// Checks the transfer as [`Frame::validate`] checks a transfer frame.
    pub fn validate(&self, limits: &Limits) -> Result<(), FrameError> {
        check_transfer(self, limits)
    }

    /// The digest the sending node signs into `node_sig`: everything but `node_sig` itself,
    /// domain-separated from receipts.
    pub fn signing_digest(&self) -> [u8; 32] {
        let mut s = Signed::new("sealpost-federation-v1/transfer");
        s.field(self.message_id.as_str().as_bytes());
        s.field(self.envelope.as_bytes());
        s.field(self.signature.as_bytes());
        s.field(self.sender_cert.as_bytes());
        s.field(&(self.parts.len() as u64).to_be_bytes());
        for p in &self.parts {
            s.field(p.sha256.as_bytes());
            s.field(&p.size.to_be_bytes());
        }
        s.finish()
    }
}

impl Receipt {
    /// The digest the receiving node signs into `node_sig`: everything but `node_sig` itself,
    /// domain-separated from transfers.
    pub fn signing_digest(&self) -> [u8; 32] {
        let mut s = Signed::new("sealpost-federation-v1/receipt");
        s.field(self.message_id.as_str().as_bytes());
        s.field(&(self.accepted.len() as u64).to_be_bytes());
        for a in &self.accepted {
            s.field(a.as_bytes());
        }
        s.field(&(self.refused.len() as u64).to_be_bytes());
        for r in &self.refused {
            s.field(r.address.as_bytes());
            s.field(r.reason.as_bytes());
        }
        s.finish()
    }
}

/// The RFC 6962 Merkle tree (SHA-256) over a batch's item digests.
type Tree = ct_merkle::mem_backed_tree::MemoryBackedTree<Sha256, [u8; 32]>;

fn tree(digests: impl Iterator<Item = [u8; 32]>) -> Tree {
    let mut t = Tree::new();
    for d in digests {
        t.push(d);
    }
    t
}

const TRANSFER_BATCH: &str = "sealpost-federation-v1/transfer-batch";
const RECEIPT_BATCH: &str = "sealpost-federation-v1/receipt-batch";

/// What a batch signature signs: the tree's root and size, domain-separated.
fn tree_head(domain: &str, root: &[u8], size: u64) -> [u8; 32] {
    let mut s = Signed::new(domain);
    s.field(root);
    s.field(&size.to_be_bytes());
    s.finish()
}

fn head_of(domain: &str, t: &Tree) -> [u8; 32] {
    tree_head(domain, t.root().as_bytes(), t.len())
}

fn proofs_of(t: &Tree) -> Vec<BatchProof> {
    let root = t.root().as_bytes().to_vec();
    (0..t.len() as usize)
        .map(|i| BatchProof {
            index: i as u64,
            size: t.len(),
            root: root.clone(),
            path: t.prove_inclusion(i).as_bytes().to_vec(),
        })
        .collect()
}

impl Batch {
    /// The digest the sending node signs into `node_sig`: the head of the Merkle tree whose
    /// leaves are the transfers' [`Transfer::signing_digest`]s, in order.
    pub fn signing_digest(&self) -> [u8; 32] {
        head_of(TRANSFER_BATCH, &self.tree())
    }

    /// For each transfer, in order, the proof that the batch signature covers it.
    pub fn proofs(&self) -> Vec<BatchProof> {
        proofs_of(&self.tree())
    }

    fn tree(&self) -> Tree {
        tree(self.transfers.iter().map(Transfer::signing_digest))
    }
}

impl BatchAnswer {
    /// The digest the receiving node signs into `node_sig`: the head of the Merkle tree whose
    /// leaves are the receipts' [`Receipt::signing_digest`]s, in order. Errors are not signed.
    pub fn signing_digest(&self) -> [u8; 32] {
        head_of(RECEIPT_BATCH, &self.tree())
    }

    /// For each receipt, in order, the proof that the batch signature covers it.
    pub fn proofs(&self) -> Vec<BatchProof> {
        proofs_of(&self.tree())
    }

    fn tree(&self) -> Tree {
        tree(self.receipts.iter().map(Receipt::signing_digest))
    }
}

impl BatchProof {
    /// The digest a batch signature must cover for this proof to show that the sending node
    /// signed `transfer`; `None` when the proof does not place the transfer under its root.
    pub fn signed_digest_of_transfer(&self, transfer: &Transfer) -> Option<[u8; 32]> {
        self.head(TRANSFER_BATCH, transfer.signing_digest())
    }

    /// As [`BatchProof::signed_digest_of_transfer`], for a receipt of a [`BatchAnswer`].
    pub fn signed_digest_of_receipt(&self, receipt: &Receipt) -> Option<[u8; 32]> {
        self.head(RECEIPT_BATCH, receipt.signing_digest())
    }

    fn head(&self, domain: &str, leaf: [u8; 32]) -> Option<[u8; 32]> {
        let root: [u8; 32] = self.root.as_slice().try_into().ok()?;
        let proof = ct_merkle::InclusionProof::<Sha256>::try_from_bytes(self.path.clone()).ok()?;
        ct_merkle::RootHash::<Sha256>::new(root.into(), self.size)
            .verify_inclusion(&leaf, self.index, &proof)
            .ok()?;
        Some(tree_head(domain, &root, self.size))
    }
}

/// Optional bytes as standard base64 on the wire.
mod opt_base64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => s.serialize_some(&STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| STANDARD.decode(s).map_err(D::Error::custom))
            .transpose()
    }
}

/// Bytes as lowercase hex strings on the wire.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(&s).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn transfer() -> Frame {
        Frame::Transfer(Transfer {
            message_id: "m-1".into(),
            envelope: r#"{"v":1,"message_id":"m-1"}"#.into(),
            signature: "-----BEGIN PGP SIGNATURE-----".into(),
            sender_cert: String::new(),
            parts: vec![PartRef {
                sha256: H.into(),
                size: 42,
                data: None,
            }],
            node_sig: vec![0xab; 64],
        })
    }

    fn receipt() -> Frame {
        Frame::Receipt(Receipt {
            message_id: "m-1".into(),
            accepted: vec!["bob@beta.test".into()],
            refused: vec![Refusal {
                address: "eve@beta.test".into(),
                reason: "no such account".into(),
            }],
            node_sig: vec![1, 2, 3],
        })
    }

    fn all_frames() -> Vec<Frame> {
        let Frame::Transfer(mut with_inline) = transfer() else {
            unreachable!()
        };
        with_inline.parts.push(PartRef {
            sha256: H.into(),
            size: 3,
            data: Some(b"abc".to_vec()),
        });
        vec![
            transfer(),
            Frame::Transfer(with_inline),
            Frame::OrgLookup(OrgLookup {}),
            Frame::OrgRecord(OrgRecord {
                record: r#"{"domain":"beta.test"}"#.into(),
            }),
            Frame::EvidenceLookup(EvidenceLookup {
                message_id: "m-1".into(),
            }),
            Frame::EvidenceRecords(EvidenceRecords {
                bundle: r#"{"format":"sealpost-evidence-bundle-v1"}"#.into(),
            }),
            receipt(),
            Frame::Lookup(Lookup {
                address: "bob@beta.test".into(),
            }),
            Frame::LookupAnswer(LookupAnswer { certs: vec![] }),
            Frame::LookupAnswer(LookupAnswer {
                certs: vec!["-----BEGIN PGP PUBLIC KEY BLOCK-----".into()],
            }),
            Frame::CertUpdates(CertUpdates {
                cursor: u64::MAX,
                certs: vec!["c".into()],
            }),
            Frame::PullSince(PullSince { cursor: 0 }),
        ]
    }

    #[test]
    fn every_frame_round_trips() {
        for f in all_frames() {
            let bytes = encode(&f);
            assert_eq!(decode(&bytes, &Limits::default()), Ok(f.clone()), "{f:?}");
        }
    }

    #[test]
    fn wire_shape_is_stable() {
        let f = Frame::PullSince(PullSince { cursor: 7 });
        assert_eq!(
            String::from_utf8(encode(&f)).unwrap(),
            r#"{"v":1,"frame":{"type":"pull_since","cursor":7}}"#
        );
        let Frame::Receipt(r) = receipt() else {
            unreachable!()
        };
        let json = String::from_utf8(encode(&Frame::Receipt(r))).unwrap();
        assert!(json.contains(r#""node_sig":"010203""#), "{json}");
    }

    /// Table of wire inputs and the expected outcome (`Ok` frame type, or the error).
    #[test]
    fn decode_table() {
        #[derive(Debug)]
        enum Expect {
            Type(&'static str),
            Err(FrameError),
            Malformed,
        }
        use Expect::*;
        let lim = Limits::default();
        let cases: Vec<(&str, String, Expect)> = vec![
            (
                "pull since",
                r#"{"v":1,"frame":{"type":"pull_since","cursor":3}}"#.into(),
                Type("pull_since"),
            ),
            (
                "lookup",
                r#"{"frame":{"address":"a@b.test","type":"lookup"},"v":1}"#.into(),
                Type("lookup"),
            ),
            (
                "transfer without node_sig defaults to unsigned",
                format!(
                    r#"{{"v":1,"frame":{{"type":"transfer","message_id":"m","envelope":"{{}}","signature":"s","parts":[{{"sha256":"{H}","size":1}}]}}}}"#
                ),
                Type("transfer"),
            ),
            (
                "transfer with a part inline (base64)",
                format!(
                    r#"{{"v":1,"frame":{{"type":"transfer","message_id":"m","envelope":"{{}}","signature":"s","parts":[{{"sha256":"{H}","size":3,"data":"YWJj"}}]}}}}"#
                ),
                Type("transfer"),
            ),
            (
                "inline part shorter than its size",
                format!(
                    r#"{{"v":1,"frame":{{"type":"transfer","message_id":"m","envelope":"{{}}","signature":"s","parts":[{{"sha256":"{H}","size":4,"data":"YWJj"}}]}}}}"#
                ),
                Err(FrameError::Invalid {
                    field: "parts.data",
                    reason: "must be exactly the part's size",
                }),
            ),
            (
                "inline part not base64",
                format!(
                    r#"{{"v":1,"frame":{{"type":"transfer","message_id":"m","envelope":"{{}}","signature":"s","parts":[{{"sha256":"{H}","size":3,"data":"!!!"}}]}}}}"#
                ),
                Malformed,
            ),
            (
                "org lookup",
                r#"{"v":1,"frame":{"type":"org_lookup"}}"#.into(),
                Type("org_lookup"),
            ),
            (
                "empty org record",
                r#"{"v":1,"frame":{"type":"org_record","record":""}}"#.into(),
                Err(FrameError::Invalid {
                    field: "record",
                    reason: "must not be empty",
                }),
            ),
            ("empty input", "".into(), Malformed),
            ("not json", "hello".into(), Malformed),
            ("truncated", r#"{"v":1,"frame":{"type":"pull_"#.into(), Malformed),
            ("json array", "[1,2]".into(), Malformed),
            (
                "missing version",
                r#"{"frame":{"type":"pull_since","cursor":3}}"#.into(),
                Malformed,
            ),
            (
                "version 2",
                r#"{"v":2,"frame":{"type":"something_new"}}"#.into(),
                Err(FrameError::UnsupportedVersion {
                    got: 2,
                    supported: 1,
                }),
            ),
            (
                "version 0",
                r#"{"v":0,"frame":{"type":"pull_since","cursor":3}}"#.into(),
                Err(FrameError::UnsupportedVersion {
                    got: 0,
                    supported: 1,
                }),
            ),
            ("negative version", r#"{"v":-1,"frame":{}}"#.into(), Malformed),
            (
                "unknown frame type",
                r#"{"v":1,"frame":{"type":"gossip"}}"#.into(),
                Malformed,
            ),
            (
                "missing field",
                r#"{"v":1,"frame":{"type":"pull_since"}}"#.into(),
                Malformed,
            ),
            (
                "negative cursor",
                r#"{"v":1,"frame":{"type":"pull_since","cursor":-1}}"#.into(),
                Malformed,
            ),
            (
                "node_sig not hex",
                r#"{"v":1,"frame":{"type":"receipt","message_id":"m","accepted":[],"refused":[],"node_sig":"zz"}}"#.into(),
                Malformed,
            ),
            (
                "empty message id",
                r#"{"v":1,"frame":{"type":"receipt","message_id":"","accepted":[],"refused":[],"node_sig":""}}"#.into(),
                Err(FrameError::Invalid {
                    field: "message_id",
                    reason: "must not be empty",
                }),
            ),
            (
                "empty address",
                r#"{"v":1,"frame":{"type":"lookup","address":""}}"#.into(),
                Err(FrameError::Invalid {
                    field: "address",
                    reason: "must not be empty",
                }),
            ),
            (
                "transfer with no parts",
                r#"{"v":1,"frame":{"type":"transfer","message_id":"m","envelope":"{}","signature":"s","parts":[],"node_sig":""}}"#.into(),
                Err(FrameError::Invalid {
                    field: "parts",
                    reason: "a message has at least its head part",
                }),
            ),
            (
                "uppercase part hash",
                format!(
                    r#"{{"v":1,"frame":{{"type":"transfer","message_id":"m","envelope":"{{}}","signature":"s","parts":[{{"sha256":"{}","size":1}}]}}}}"#,
                    H.to_uppercase()
                ),
                Err(FrameError::Invalid {
                    field: "parts.sha256",
                    reason: "must be 64 lowercase hex digits",
                }),
            ),
            (
                "short part hash",
                r#"{"v":1,"frame":{"type":"transfer","message_id":"m","envelope":"{}","signature":"s","parts":[{"sha256":"abc","size":1}]}}"#.into(),
                Err(FrameError::Invalid {
                    field: "parts.sha256",
                    reason: "must be 64 lowercase hex digits",
                }),
            ),
            (
                "oversize message id",
                format!(
                    r#"{{"v":1,"frame":{{"type":"receipt","message_id":"{}","accepted":[],"refused":[],"node_sig":""}}}}"#,
                    "x".repeat(129)
                ),
                Err(FrameError::LimitExceeded {
                    field: "message_id",
                    got: 129,
                    max: 128,
                }),
            ),
            (
                "oversize frame",
                format!(
                    r#"{{"v":1,"frame":{{"type":"lookup","address":"{}"}}}}"#,
                    "a".repeat(lim.max_frame_bytes)
                ),
                Err(FrameError::TooLarge {
                    len: lim.max_frame_bytes + 46,
                    max: lim.max_frame_bytes,
                }),
            ),
        ];
        for (name, input, expect) in cases {
            let got = decode(input.as_bytes(), &lim);
            match (&expect, &got) {
                (Type(t), Ok(f)) => {
                    let v: serde_json::Value = serde_json::from_slice(&encode(f)).unwrap();
                    assert_eq!(v["frame"]["type"], *t, "{name}");
                }
                (Err(e), Result::Err(g)) => assert_eq!(e, g, "{name}"),
                (Malformed, Result::Err(FrameError::Malformed(_))) => {}
                _ => panic!("{name}: expected {expect:?}, got {got:?}"),
            }
        }
    }

    /// Each limit, exceeded by one, on an otherwise valid frame.
    #[test]
    fn limits_table() {
        let small = Limits {
            max_frame_bytes: 1 << 20,
            max_message_id_bytes: 8,
            max_envelope_bytes: 16,
            max_signature_bytes: 16,
            max_parts: 2,
            max_node_sig_bytes: 4,
            max_address_bytes: 8,
            max_addresses: 2,
            max_reason_bytes: 4,
            max_certs: 2,
            max_cert_bytes: 4,
            max_inline_part_bytes: 3,
            max_inline_bytes: 5,
            max_org_record_bytes: 4,
            max_batch: 2,
            max_evidence_bytes: 4,
        };
        let part = || PartRef {
            sha256: H.into(),
            size: 1,
            data: None,
        };
        let inline = |n: usize| PartRef {
            sha256: H.into(),
            size: n as u64,
            data: Some(vec![7; n]),
        };
        let t = |f: &dyn Fn(&mut Transfer)| {
            let mut t = Transfer {
                message_id: "m".into(),
                envelope: "{}".into(),
                signature: "s".into(),
                sender_cert: String::new(),
                parts: vec![part()],
                node_sig: vec![],
            };
            f(&mut t);
            Frame::Transfer(t)
        };
        let r = |f: &dyn Fn(&mut Receipt)| {
            let mut r = Receipt {
                message_id: "m".into(),
                accepted: vec![],
                refused: vec![],
                node_sig: vec![],
            };
            f(&mut r);
            Frame::Receipt(r)
        };
        let cases: Vec<(Frame, &str, usize, usize)> = vec![
            (
                t(&|t| t.message_id = "123456789".into()),
                "message_id",
                9,
                8,
            ),
            (t(&|t| t.envelope = "e".repeat(17)), "envelope", 17, 16),
            (t(&|t| t.signature = "s".repeat(17)), "signature", 17, 16),
            (
                t(&|t| t.parts = vec![part(), part(), part()]),
                "parts",
                3,
                2,
            ),
            (t(&|t| t.node_sig = vec![0; 5]), "node_sig", 5, 4),
            (t(&|t| t.parts = vec![inline(4)]), "parts.data", 4, 3),
            (
                Frame::OrgRecord(OrgRecord {
                    record: "{\"a\"}".into(),
                }),
                "record",
                5,
                4,
            ),
            (
                Frame::EvidenceRecords(EvidenceRecords {
                    bundle: "{\"a\"}".into(),
                }),
                "bundle",
                5,
                4,
            ),
            (
                t(&|t| t.parts = vec![inline(3), inline(3)]),
                "parts.data",
                6,
                5,
            ),
            (
                r(&|r| r.accepted = vec!["a@b".into(); 2]),
                "addresses",
                2,
                2,
            ),
            (
                r(&|r| {
                    r.accepted = vec!["a@b".into(); 2];
                    r.refused = vec![Refusal {
                        address: "c@d".into(),
                        reason: "x".into(),
                    }]
                }),
                "addresses",
                3,
                2,
            ),
            (
                r(&|r| r.accepted = vec!["a@bcdefgh".into()]),
                "address",
                9,
                8,
            ),
            (
                r(&|r| {
                    r.refused = vec![Refusal {
                        address: "a@b".into(),
                        reason: "12345".into(),
                    }]
                }),
                "reason",
                5,
                4,
            ),
            (r(&|r| r.node_sig = vec![0; 5]), "node_sig", 5, 4),
            (
                Frame::Lookup(Lookup {
                    address: "a@bcdefgh".into(),
                }),
                "address",
                9,
                8,
            ),
            (
                Frame::LookupAnswer(LookupAnswer {
                    certs: vec!["c".into(); 3],
                }),
                "certs",
                3,
                2,
            ),
            (
                Frame::CertUpdates(CertUpdates {
                    cursor: 1,
                    certs: vec!["12345".into()],
                }),
                "cert",
                5,
                4,
            ),
        ];
        for (frame, field, got, max) in cases {
            let expected = FrameError::LimitExceeded { field, got, max };
            // Exactly at the limit passes (the 2-address case is the boundary check).
            if got == max {
                assert_eq!(decode(&encode(&frame), &small), Ok(frame.clone()));
                continue;
            }
            assert_eq!(frame.validate(&small), Err(expected.clone()), "{frame:?}");
            assert_eq!(decode(&encode(&frame), &small), Err(expected), "{frame:?}");
        }
    }

    #[test]
    fn frame_limit_is_checked_before_parsing() {
        let lim = Limits {
            max_frame_bytes: 10,
            ..Limits::default()
        };
        // Garbage that would be malformed is refused for its size first.
        assert_eq!(
            decode(&[b'{'; 11], &lim),
            Err(FrameError::TooLarge { len: 11, max: 10 })
        );
        assert!(matches!(
            decode(&[b'{'; 10], &lim),
            Err(FrameError::Malformed(_))
        ));
    }

    fn inline_transfer(id: &str) -> Transfer {
        let Frame::Transfer(mut t) = transfer() else {
            unreachable!()
        };
        t.message_id = id.into();
        t.node_sig = Vec::new();
        t.parts[0].size = 3;
        t.parts[0].data = Some(b"abc".to_vec());
        t
    }

    #[test]
    fn batches_are_checked_as_a_whole_and_transfer_by_transfer() {
        let lim = Limits {
            max_batch: 3,
            ..Limits::default()
        };
        let batch = |transfers: Vec<Transfer>| {
            Frame::Batch(Batch {
                transfers,
                node_sig: vec![1; 64],
            })
        };
        let ok = batch(vec![inline_transfer("m-1"), inline_transfer("m-2")]);
        assert_eq!(decode(&encode(&ok), &lim), Ok(ok));

        let invalid = |f: &Frame, field: &str| match decode(&encode(f), &lim) {
            Err(FrameError::Invalid { field: got, .. }) => assert_eq!(got, field),
            other => panic!("{field}: expected invalid, got {other:?}"),
        };
        invalid(&batch(vec![]), "transfers");
        invalid(
            &batch(vec![inline_transfer("m-1"), inline_transfer("m-1")]),
            "transfers.message_id",
        );
        let mut signed = inline_transfer("m-1");
        signed.node_sig = vec![2; 64];
        invalid(&batch(vec![signed]), "transfers.node_sig");
        let mut streamed = inline_transfer("m-1");
        streamed.parts[0].data = None;
        invalid(&batch(vec![streamed]), "transfers.parts");
        let mut no_head = inline_transfer("m-1");
        no_head.parts.clear();
        invalid(&batch(vec![no_head]), "parts");
        let four = (0..4).map(|i| inline_transfer(&format!("m-{i}"))).collect();
        assert!(matches!(
            decode(&encode(&batch(four)), &lim),
            Err(FrameError::LimitExceeded {
                field: "transfers",
                ..
            })
        ));

        let Frame::Receipt(r) = receipt() else {
            unreachable!()
        };
        let answer = |receipts: Vec<Receipt>, errors: usize| {
            Frame::BatchAnswer(BatchAnswer {
                receipts,
                errors: (0..errors)
                    .map(|i| BatchError {
                        message_id: MessageId(format!("m-{i}")),
                        code: "refused".into(),
                        message: "no".into(),
                    })
                    .collect(),
                node_sig: vec![1; 64],
            })
        };
        let unsigned = Receipt {
            node_sig: Vec::new(),
            ..r.clone()
        };
        let ok = answer(vec![unsigned.clone()], 2);
        assert_eq!(decode(&encode(&ok), &lim), Ok(ok));
        invalid(&answer(vec![r], 0), "receipts.node_sig");
        assert!(matches!(
            decode(&encode(&answer(vec![unsigned], 3)), &lim),
            Err(FrameError::LimitExceeded {
                field: "answers",
                ..
            })
        ));
    }

    #[test]
    fn a_batch_proof_places_exactly_its_own_item_under_the_signed_root() {
        for n in 1..=9 {
            let b = Batch {
                transfers: (0..n).map(|i| inline_transfer(&format!("m-{i}"))).collect(),
                node_sig: Vec::new(),
            };
            let head = b.signing_digest();
            let proofs = b.proofs();
            assert_eq!(proofs.len(), n);
            for (i, (t, p)) in b.transfers.iter().zip(&proofs).enumerate() {
                assert_eq!(p.signed_digest_of_transfer(t), Some(head), "n={n} i={i}");
                // Another transfer of the batch, a changed transfer, or a receipt's domain:
                // no digest, or a different one.
                let other = &b.transfers[(i + 1) % n];
                if n > 1 {
                    assert_eq!(p.signed_digest_of_transfer(other), None, "n={n} i={i}");
                }
                let mut changed = t.clone();
                changed.envelope.push(' ');
                assert_eq!(p.signed_digest_of_transfer(&changed), None);
                let mut short = p.clone();
                short.path.truncate(short.path.len().saturating_sub(1));
                if !p.path.is_empty() {
                    assert_eq!(short.signed_digest_of_transfer(t), None);
                }
            }
        }
        // Transfer and receipt heads are domain-separated.
        let one = Batch {
            transfers: vec![inline_transfer("m-1")],
            node_sig: Vec::new(),
        };
        let Frame::Receipt(r) = receipt() else {
            unreachable!()
        };
        let answer = BatchAnswer {
            receipts: vec![r],
            errors: Vec::new(),
            node_sig: Vec::new(),
        };
        assert_ne!(one.signing_digest(), answer.signing_digest());
        assert_eq!(
            answer.proofs()[0].signed_digest_of_receipt(&answer.receipts[0]),
            Some(answer.signing_digest())
        );
    }

    #[test]
    fn signing_digests_cover_every_field_but_the_signature() {
        let Frame::Transfer(base) = transfer() else {
            unreachable!()
        };
        let d = base.signing_digest();
        let mut unsigned = base.clone();
        unsigned.node_sig.clear();
        assert_eq!(unsigned.signing_digest(), d);
        let variants: [fn(&mut Transfer); 5] = [
            |t| t.message_id = "m-2".into(),
            |t| t.envelope.push(' '),
            |t| t.signature.push('x'),
            |t| t.parts[0].size += 1,
            |t| t.parts.push(t.parts[0].clone()),
        ];
        for v in variants {
            let mut t = base.clone();
            v(&mut t);
            assert_ne!(t.signing_digest(), d);
        }
        let Frame::Receipt(r) = receipt() else {
            unreachable!()
        };
        let rd = r.signing_digest();
        let mut moved = r.clone();
        // Moving an address from refused to accepted must change what is signed.
        moved.accepted.push(moved.refused.remove(0).address);
        assert_ne!(moved.signing_digest(), rd);
        let mut reason = r.clone();
        reason.refused[0].reason = "other".into();
        assert_ne!(reason.signing_digest(), rd);
    }
}
