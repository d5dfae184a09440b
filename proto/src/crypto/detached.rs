//! Verification of detached signatures over request envelopes.
//!
//! The client signs the exact bytes of the JSON envelope it sends
//! (`sealpost_client::crypto::sign_detached`); the node verifies them on
//! every request, and the client when it reads, so verification avoids the
//! streaming machinery and does only: one armor decode, one policy
//! check, one key lookup by issuer and one signature verification.

use std::time::{Duration, SystemTime};

use sequoia_openpgp as openpgp;

use openpgp::packet::key::UnspecifiedRole;
use openpgp::policy::{HashAlgoSecurity, Policy};
use openpgp::types::{RevocationStatus, SignatureType};
use openpgp::{Cert, KeyHandle};

use super::CryptoError;
use super::keys::signature_from_armored;

/// How far in the future a detached signature's creation time may be,
/// to tolerate clock skew between client and server.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// What `policy` says of a signer's certificate at one time: whether it is valid, alive and
/// not revoked, and its signing keys that are alive and not revoked then. The part of
/// [`verify_detached`] that depends on the certificate and the time but not on the
/// signature, so that a node can work it out once per certificate and second
/// ([`SignerFacts::at`] is exact for the whole second: OpenPGP times are whole seconds).
pub struct SignerFacts {
    state: Result<(), String>,
    signing: Vec<openpgp::packet::Key<openpgp::packet::key::PublicParts, UnspecifiedRole>>,
}

impl SignerFacts {
    /// Whether the certificate can sign at all (valid, alive, not revoked, a signing key).
    pub fn is_usable(&self) -> bool {
        self.state.is_ok() && !self.signing.is_empty()
    }

    pub fn at(signer: &Cert, policy: &dyn Policy, now: SystemTime) -> SignerFacts {
        let vc = match signer.with_policy(policy, now) {
            Ok(vc) => vc,
            Err(e) => {
                return SignerFacts {
                    state: Err(format!("signer's certificate not valid: {e}")),
                    signing: Vec::new(),
                };
            }
        };
        let state = match (vc.alive(), vc.revocation_status()) {
            (Err(e), _) => Err(format!("signer's certificate not alive: {e}")),
            (Ok(()), RevocationStatus::Revoked(_)) => {
                Err("signer's certificate is revoked".to_string())
            }
            (Ok(()), _) => Ok(()),
        };
        let signing = vc
            .keys()
            .for_signing()
            .alive()
            .revoked(false)
            .map(|ka| ka.key().clone().role_into_unspecified())
            .collect();
        SignerFacts { state, signing }
    }
}

/// Checks `armored_sig` is a binary detached signature over `data` made
/// by a key of `signer` that is valid for signing under `policy` at
/// `now` (certificate not revoked or expired, key not revoked or
/// expired), that the signature is acceptable to `policy`, not expired,
/// and not created more than [`MAX_CLOCK_SKEW`] after `now`.
///
/// Errors: [`CryptoError::Malformed`] for unparseable input,
/// [`CryptoError::UnknownSigner`] when the issuer is not a key of
/// `signer`, [`CryptoError::BadSignature`] otherwise.
///
/// Replay protection (rejecting old signatures) is the caller's job:
/// bind a nonce or timestamp into `data`.
pub fn verify_detached(
    signer: &Cert,
    policy: &dyn Policy,
    now: SystemTime,
    data: &[u8],
    armored_sig: &str,
) -> Result<(), CryptoError> {
    let facts = SignerFacts::at(signer, policy, now);
    verify_detached_with(signer, &facts, policy, now, data, armored_sig)
}

/// [`verify_detached`] with the signer's [`SignerFacts`] at `now` already worked out.
pub fn verify_detached_with(
    signer: &Cert,
    facts: &SignerFacts,
    policy: &dyn Policy,
    now: SystemTime,
    data: &[u8],
    armored_sig: &str,
) -> Result<(), CryptoError> {
    let sig = signature_from_armored(armored_sig)?;
    if sig.typ() != SignatureType::Binary {
        return Err(CryptoError::BadSignature(format!(
            "expected a binary signature, got {}",
            sig.typ()
        )));
    }
    policy
        .signature(&sig, HashAlgoSecurity::CollisionResistance)
        .map_err(|e| CryptoError::BadSignature(format!("rejected by policy: {e}")))?;
    sig.signature_alive(now, MAX_CLOCK_SKEW)
        .map_err(|e| CryptoError::BadSignature(format!("signature not alive: {e}")))?;
    let sig_time = sig
        .signature_creation_time()
        .ok_or_else(|| CryptoError::BadSignature("no creation time".into()))?;

    // Find the issuing key first, without validating anything: this is
    // what tells "someone else signed this" apart from "our signer's key
    // is not good enough".
    let issuers: Vec<KeyHandle> = sig.get_issuers();
    let is_issuer = |fpr: &openpgp::Fingerprint| {
        let h = KeyHandle::from(fpr);
        // Without an issuer subpacket every key is a candidate.
        issuers.is_empty() || issuers.iter().any(|i| i.aliases(&h))
    };
    if !signer.keys().any(|ka| is_issuer(&ka.key().fingerprint())) {
        return Err(CryptoError::UnknownSigner);
    }
    facts.state.clone().map_err(CryptoError::BadSignature)?;

    let mut last_error = None;
    for key in facts.signing.iter().filter(|k| is_issuer(&k.fingerprint())) {
        // A signature older than its key is bogus.
        if key.creation_time() > sig_time {
            last_error = Some("signature predates the signing key".to_string());
            continue;
        }
        let result = match verify_ed25519(&sig, key, data) {
            Some(r) => r,
            None => sig.verify_message(key, data).map_err(|e| e.to_string()),
        };
        match result {
            Ok(()) => return Ok(()),
            Err(e) => last_error = Some(e),
        }
    }
    Err(CryptoError::BadSignature(last_error.unwrap_or_else(|| {
        "issuing key is not valid for signing".to_string()
    })))
}

/// The Ed25519 check of a v4 EdDSA (Ed25519) signature, done with ed25519-dalek.
///
/// Every OpenPGP rule (signature type, hash policy, key validity and capability, times) is
/// checked by the caller through sequoia; this computes the digest exactly as sequoia's
/// `verify_message` does (message, then the signature's hashed trailer) and checks the same
/// equation as sequoia's OpenSSL backend (Ed25519 over the digest, with R and S zero-padded to
/// 32 bytes): cofactorless, S must be canonical, R is compared as encoded, so a non-canonical
/// R never matches. Like OpenSSL (and OpenPGP.js, which recipients' browsers check with) it
/// accepts a small-order R, which only the key's holder can produce; `verify_strict` would
/// refuse it at the cost of decompressing R (a square root: an eighth of the check), so a
/// signature this node accepts is exactly one that its recipients accept. Weak (small-order)
/// keys are refused once, when the key is first decompressed. The OpenSSL backend imports the
/// key into a fresh context on every call, which made this check most of the node's cost per
/// submitted message. `None`: not an Ed25519 v4 signature; use sequoia.
pub(crate) fn verify_ed25519(
    sig: &openpgp::packet::Signature,
    key: &openpgp::packet::Key<
        openpgp::packet::key::PublicParts,
        openpgp::packet::key::UnspecifiedRole,
    >,
    data: &[u8],
) -> Option<Result<(), String>> {
    use openpgp::crypto::hash::Hash as _;
    use openpgp::crypto::mpi;
    use openpgp::types::Curve;

    if sig.version() != 4 || key.version() != 4 {
        return None;
    }
    let (
        mpi::PublicKey::EdDSA {
            curve: Curve::Ed25519,
            q,
        },
        mpi::Signature::EdDSA { r, s },
    ) = (key.mpis(), sig.mpis())
    else {
        return None;
    };
    let bad = |m: &str| Some(Err(m.to_owned()));
    let Ok((public, ..)) = q.decode_point(&Curve::Ed25519) else {
        return bad("malformed Ed25519 public key");
    };
    let Ok(public) = <[u8; 32]>::try_from(public) else {
        return bad("malformed Ed25519 public key");
    };
    let (Ok(r), Ok(s)) = (r.value_padded(32), s.value_padded(32)) else {
        return bad("malformed Ed25519 signature");
    };
    let mut raw = [0u8; 64];
    raw[..32].copy_from_slice(&r);
    raw[32..].copy_from_slice(&s);

    let Ok(mut hash) = sig
        .hash_algo()
        .context()
        .map(|c| c.for_signature(sig.version()))
    else {
        return None;
    };
    hash.update(data);
    if sig.hash(&mut hash).is_err() {
        return None;
    }
    let Ok(digest) = hash.into_digest() else {
        return None;
    };
    if digest.get(..2) != Some(&sig.digest_prefix()[..]) {
        return bad("the signature is not over this data");
    }
    let Some(vk) = verifying_key(&public) else {
        return bad("malformed or weak Ed25519 public key");
    };
    Some(
        ed25519_dalek::Verifier::verify(&vk, &digest, &ed25519_dalek::Signature::from_bytes(&raw))
            .map_err(|_| "bad signature".to_owned()),
    )
}

/// The Ed25519 key for these 32 bytes (`None` if it is not a point or has small order),
/// decompressed once: decompressing a point (a square root in the field) is about a fifth of
/// a verification, and the same few keys sign nearly every request. Bounded: the map is
/// emptied when full.
fn verifying_key(public: &[u8; 32]) -> Option<ed25519_dalek::VerifyingKey> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    const MAX_KEYS: usize = 4096;
    static KEYS: OnceLock<Mutex<HashMap<[u8; 32], ed25519_dalek::VerifyingKey>>> = OnceLock::new();
    let keys = KEYS.get_or_init(Default::default);
    if let Some(vk) = keys.lock().unwrap_or_else(|e| e.into_inner()).get(public) {
        return Some(*vk);
    }
    let vk = ed25519_dalek::VerifyingKey::from_bytes(public)
        .ok()
        .filter(|vk| !vk.is_weak())?;
    let mut map = keys.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= MAX_KEYS {
        map.clear();
    }
    map.insert(*public, vk);
    Some(vk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openpgp::policy::StandardPolicy;

    #[test]
    fn dalek_check_agrees_with_sequoia_and_is_the_one_used() {
        let p = StandardPolicy::new();
        let (cert, _) = crate::crypto::tests::test_key("a@a.test", SystemTime::now());
        let key = cert
            .with_policy(&p, None)
            .unwrap()
            .keys()
            .for_signing()
            .next()
            .unwrap()
            .key()
            .clone()
            .role_into_unspecified();
        let public = key.clone().take_secret().0;
        for i in 0..20u8 {
            let data = vec![i; 100 + i as usize];
            let armored = crate::crypto::tests::sign(&cert, &data);
            let sig = signature_from_armored(&armored).unwrap();
            let fast = verify_ed25519(&sig, &public, &data).expect("the Ed25519 path is taken");
            assert_eq!(fast.is_ok(), sig.verify_message(&public, &data).is_ok());
            assert!(fast.is_ok());
            // Other data: both refuse.
            let mut other = data.clone();
            other[0] ^= 1;
            assert!(verify_ed25519(&sig, &public, &other).unwrap().is_err());
            assert!(sig.verify_message(&public, &other).is_err());
        }
        // A signature whose S was altered (prefix still right): refused.
        let data = b"envelope";
        let sig = signature_from_armored(&crate::crypto::tests::sign(&cert, data)).unwrap();
        let mut packet = openpgp::serialize::MarshalInto::to_vec(&sig).unwrap();
        let last = packet.len() - 1;
        packet[last] ^= 0x01;
        let altered = <openpgp::packet::Signature as openpgp::parse::Parse<
            openpgp::packet::Signature,
        >>::from_bytes(&packet)
        .unwrap();
        assert!(verify_ed25519(&altered, &public, data).unwrap().is_err());
        assert!(altered.verify_message(&public, data).is_err());
    }

    #[test]
    fn small_order_keys_are_refused() {
        // The identity point, and a point of order 2 (y = -1): both decompress, both weak.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut order_two = [0xffu8; 32];
        order_two[0] = 0xec;
        order_two[31] = 0x7f;
        for weak in [identity, order_two] {
            assert!(ed25519_dalek::VerifyingKey::from_bytes(&weak).is_ok());
            assert!(verifying_key(&weak).is_none());
        }
        let good = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
        assert_eq!(verifying_key(good.as_bytes()), Some(good));
    }
}
