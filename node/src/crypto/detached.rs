//! Detached signatures over request envelopes.
//!
//! The client signs the exact bytes of the JSON envelope it sends; the
//! server verifies them on every request, so verification avoids the
//! streaming machinery and does only: one armor decode, one policy
//! check, one key lookup by issuer and one signature verification.

use std::time::{Duration, SystemTime};

use sequoia_openpgp as openpgp;

use openpgp::packet::signature::SignatureBuilder;
use openpgp::policy::{HashAlgoSecurity, Policy};
use openpgp::types::{RevocationStatus, SignatureType};
use openpgp::{Cert, KeyHandle};

use super::CryptoError;
use super::keys::{signature_from_armored, signature_to_armored};

/// How far in the future a detached signature's creation time may be,
/// to tolerate clock skew between client and server.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// Makes an ASCII-armored binary (0x00) detached signature over `data`
/// with the first signing-capable key of `signer` that is valid under
/// `policy` now and has unencrypted secret key material.
pub fn sign_detached(
    signer: &Cert,
    policy: &dyn Policy,
    data: &[u8],
) -> Result<String, CryptoError> {
    let vc = signer
        .with_policy(policy, None)
        .map_err(|_| CryptoError::NoUsableKey(signer.fingerprint()))?;
    let ka = vc
        .keys()
        .for_signing()
        .alive()
        .revoked(false)
        .supported()
        .unencrypted_secret()
        .next()
        .ok_or(CryptoError::NoUsableKey(signer.fingerprint()))?;
    let mut keypair = ka
        .key()
        .clone()
        .into_keypair()
        .map_err(|e| CryptoError::other("signing key", e))?;
    // The builder adds the creation time, the issuer and the issuer
    // fingerprint subpackets.
    let sig = SignatureBuilder::new(SignatureType::Binary)
        .sign_message(&mut keypair, data)
        .map_err(|e| CryptoError::other("signing", e))?;
    signature_to_armored(&sig)
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

    let vc = signer
        .with_policy(policy, now)
        .map_err(|e| CryptoError::BadSignature(format!("signer's certificate not valid: {e}")))?;
    vc.alive()
        .map_err(|e| CryptoError::BadSignature(format!("signer's certificate not alive: {e}")))?;
    if let RevocationStatus::Revoked(_) = vc.revocation_status() {
        return Err(CryptoError::BadSignature(
            "signer's certificate is revoked".into(),
        ));
    }

    let mut last_error = None;
    for ka in vc
        .keys()
        .for_signing()
        .alive()
        .revoked(false)
        .filter(|ka| is_issuer(&ka.key().fingerprint()))
    {
        // A signature older than its key is bogus.
        if ka.key().creation_time() > sig_time {
            last_error = Some("signature predates the signing key".to_string());
            continue;
        }
        match sig.verify_message(ka.key(), data) {
            Ok(()) => return Ok(()),
            Err(e) => last_error = Some(e.to_string()),
        }
    }
    Err(CryptoError::BadSignature(last_error.unwrap_or_else(|| {
        "issuing key is not valid for signing".to_string()
    })))
}
