//! The tamper-evident transaction log: the evidence that a message was sent, delivered and
//! read (registered mail), and that an account was enrolled or logged in.
//!
//! Each entry's hash covers the previous entry's hash, so changing, inserting or removing any
//! stored entry breaks every hash after it. Periodic checkpoints sign (sequence, hash) with the
//! node's Ed25519 identity, so an attacker who rewrites the whole chain still cannot produce a
//! checkpoint that matches. The hashing here is pure; the SQLite tables live in
//! `storage::sqlite`, which appends inside the same commit as the change being logged.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// The hash before the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// One entry as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub at: i64,
    pub kind: String,
    pub actor: String,
    pub subject: String,
    pub detail: String,
}

/// The chained hash of `entry` after `prev`. Every field is length-prefixed, so no two
/// different entries serialise to the same bytes.
pub fn entry_hash(prev: &[u8; 32], e: &Entry) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"sealpost-log-v1\0");
    h.update(prev);
    h.update(e.seq.to_be_bytes());
    h.update(e.at.to_be_bytes());
    for field in [&e.kind, &e.actor, &e.subject, &e.detail] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().into()
}

/// The bytes a checkpoint signs, and whose SHA-256 an RFC 3161 time-stamp covers (`timestamp`).
pub fn checkpoint_message(seq: u64, hash: &[u8; 32], at: i64) -> Vec<u8> {
    let mut m = b"sealpost-checkpoint-v1\0".to_vec();
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m.extend_from_slice(&at.to_be_bytes());
    m
}

pub fn sign_checkpoint(key: &SigningKey, seq: u64, hash: &[u8; 32], at: i64) -> [u8; 64] {
    key.sign(&checkpoint_message(seq, hash, at)).to_bytes()
}

pub fn verify_checkpoint(
    key: &VerifyingKey,
    seq: u64,
    hash: &[u8; 32],
    at: i64,
    sig: &[u8],
) -> bool {
    let Ok(sig) = Signature::from_slice(sig) else {
        return false;
    };
    key.verify(&checkpoint_message(seq, hash, at), &sig).is_ok()
}

/// Streaming verifier: feed entries in sequence order, then checkpoints.
pub struct ChainVerifier {
    prev: [u8; 32],
    next_seq: u64,
    hashes: std::collections::HashMap<u64, [u8; 32]>,
    pub first_broken: Option<(u64, String)>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    pub fn new() -> Self {
        ChainVerifier {
            prev: GENESIS,
            next_seq: 1,
            hashes: Default::default(),
            first_broken: None,
        }
    }

    fn broken(&mut self, seq: u64, why: String) {
        match &self.first_broken {
            Some((s, _)) if *s <= seq => {}
            _ => self.first_broken = Some((seq, why)),
        }
    }

    /// Checks one stored entry against the chain so far.
    pub fn entry(&mut self, e: &Entry, stored_prev: &[u8], stored_hash: &[u8]) {
        if e.seq != self.next_seq {
            self.broken(
                self.next_seq,
                format!(
                    "entry {} is missing (next stored is {})",
                    self.next_seq, e.seq
                ),
            );
        }
        if stored_prev != self.prev {
            self.broken(
                e.seq,
                "its link to the previous entry does not match".into(),
            );
        }
        let h = entry_hash(&self.prev, e);
        if stored_hash != h {
            self.broken(e.seq, "its content does not match its hash".into());
        }
        // Go on from the stored hash, so that one changed entry is named once, not followed
        // by a cascade of complaints about every later one.
        self.prev = stored_hash.try_into().unwrap_or(h);
        self.hashes.insert(e.seq, h);
        self.next_seq = e.seq + 1;
    }

    /// Checks one checkpoint (after all entries were fed).
    pub fn checkpoint(&mut self, key: &VerifyingKey, seq: u64, hash: &[u8], at: i64, sig: &[u8]) {
        let Ok(hash): Result<[u8; 32], _> = hash.try_into() else {
            self.broken(seq, "its checkpoint is malformed".into());
            return;
        };
        match self.hashes.get(&seq) {
            None => self.broken(seq, "a signed checkpoint names it but it is missing".into()),
            Some(h) if *h != hash => self.broken(
                seq,
                "it differs from what the signed checkpoint recorded".into(),
            ),
            Some(_) => {}
        }
        if !verify_checkpoint(key, seq, &hash, at, sig) {
            self.broken(seq, "its checkpoint signature is not the node's".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, detail: &str) -> Entry {
        Entry {
            seq,
            at: 1_700_000_000 + seq as i64,
            kind: "submit".into(),
            actor: "alice@a.test".into(),
            subject: format!("m{seq}"),
            detail: detail.into(),
        }
    }

    fn chain(n: u64) -> Vec<(Entry, [u8; 32], [u8; 32])> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|s| {
                let e = entry(s, "{}");
                let h = entry_hash(&prev, &e);
                let row = (e, prev, h);
                prev = h;
                row
            })
            .collect()
    }

    fn check(rows: &[(Entry, [u8; 32], [u8; 32])]) -> Option<(u64, String)> {
        let mut v = ChainVerifier::new();
        for (e, p, h) in rows {
            v.entry(e, p, h);
        }
        v.first_broken
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(check(&chain(50)), None);
    }

    #[test]
    fn changed_content_names_that_entry_only() {
        let mut rows = chain(50);
        rows[20].0.detail = "{\"x\":1}".into();
        assert_eq!(check(&rows).unwrap().0, 21);
    }

    #[test]
    fn removed_entry_is_named() {
        let mut rows = chain(10);
        rows.remove(4);
        assert_eq!(check(&rows).unwrap().0, 5);
    }

    #[test]
    fn length_prefixes_separate_fields() {
        let mut a = entry(1, "");
        a.actor = "ab".into();
        a.subject = "c".into();
        let mut b = entry(1, "");
        b.actor = "a".into();
        b.subject = "bc".into();
        assert_ne!(entry_hash(&GENESIS, &a), entry_hash(&GENESIS, &b));
    }

    #[test]
    fn checkpoint_signatures_bind_sequence_and_hash() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let rows = chain(3);
        let h = rows[2].2;
        let sig = sign_checkpoint(&key, 3, &h, 99);
        assert!(verify_checkpoint(&key.verifying_key(), 3, &h, 99, &sig));
        assert!(!verify_checkpoint(&key.verifying_key(), 2, &h, 99, &sig));
        let other = SigningKey::from_bytes(&[8; 32]);
        assert!(!verify_checkpoint(&other.verifying_key(), 3, &h, 99, &sig));

        // A chain rewritten consistently from entry 2 on is caught by the checkpoint.
        let mut forged = rows.clone();
        forged[1].0.detail = "{\"forged\":true}".into();
        let mut prev = forged[0].2;
        for r in forged.iter_mut().skip(1) {
            r.1 = prev;
            r.2 = entry_hash(&prev, &r.0);
            prev = r.2;
        }
        let mut v = ChainVerifier::new();
        for (e, p, hh) in &forged {
            v.entry(e, p, hh);
        }
        assert_eq!(v.first_broken, None);
        v.checkpoint(&key.verifying_key(), 3, &h, 99, &sig);
        assert_eq!(v.first_broken.unwrap().0, 3);
    }
}
