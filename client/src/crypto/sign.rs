//! Detached signatures over request envelopes, made with the user's key; verified by
//! `sealpost_proto::crypto::verify_detached` on both sides.

use sequoia_openpgp as openpgp;

use openpgp::Cert;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::policy::Policy;
use openpgp::types::SignatureType;

use std::time::SystemTime;

use openpgp::crypto::KeyPair;

use sealpost_proto::crypto::{CryptoError, signature_to_armored, valid_cert};

/// Makes an ASCII-armored binary (0x00) detached signature over `data`
/// with the signing key [`signing_keypair`] picks now.
pub fn sign_detached(
    signer: &Cert,
    policy: &dyn Policy,
    data: &[u8],
) -> Result<String, CryptoError> {
    let mut keypair = signing_keypair(signer, policy, SystemTime::now())?;
    // The builder adds the creation time, the issuer and the issuer
    // fingerprint subpackets.
    let sig = SignatureBuilder::new(SignatureType::Binary)
        .sign_message(&mut keypair, data)
        .map_err(|e| CryptoError::other("signing", e))?;
    signature_to_armored(&sig)
}

/// The key a user signs with, for envelopes and messages alike: the first signing-capable
/// key of `signer` that is alive, not revoked and of a supported algorithm at `now`, in a
/// certificate valid then (not expired, not revoked), with unencrypted secret key material.
pub(crate) fn signing_keypair(
    signer: &Cert,
    policy: &dyn Policy,
    now: SystemTime,
) -> Result<KeyPair, CryptoError> {
    let vc =
        valid_cert(signer, policy, now).ok_or(CryptoError::NoUsableKey(signer.fingerprint()))?;
    let ka = vc
        .keys()
        .for_signing()
        .alive()
        .revoked(false)
        .supported()
        .unencrypted_secret()
        .next()
        .ok_or(CryptoError::NoUsableKey(signer.fingerprint()))?;
    ka.key()
        .clone()
        .into_keypair()
        .map_err(|e| CryptoError::other("signing key", e))
}
