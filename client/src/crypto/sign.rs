//! Detached signatures over request envelopes, made with the user's key; verified by
//! `sealpost_proto::crypto::verify_detached` on both sides.

use sequoia_openpgp as openpgp;

use openpgp::Cert;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::policy::Policy;
use openpgp::types::SignatureType;

use sealpost_proto::crypto::{CryptoError, signature_to_armored};

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
