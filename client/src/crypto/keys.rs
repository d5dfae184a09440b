//! User key generation, secret-key wrapping and unwrapping, and revocation by the key's own
//! holder: every operation here needs the user's secret key or their password.

use std::time::SystemTime;

use sequoia_openpgp as openpgp;

use openpgp::Packet;
use openpgp::cert::prelude::*;
use openpgp::crypto::Password;
use openpgp::packet::prelude::*;
use openpgp::parse::Parse;
use openpgp::serialize::SerializeInto;
use openpgp::types::KeyFlags;

use sealpost_proto::crypto::{CryptoError, primary_signer};

/// Generates a new user key: OpenPGP v4, Ed25519 primary key for
/// certification and signing, one Cv25519 subkey for transport and
/// storage encryption, SEIPDv1-only Features, user ID `Name <address>`
/// (or `<address>` when `name` is `None`), created at `now`, no expiry.
///
/// Returns the certificate *with unencrypted secret key material* (wrap
/// it with [`wrap_secret_key`] before it leaves memory) and the key's
/// revocation certificate (reason "unspecified").
pub fn generate_user_key(
    address: &str,
    name: Option<&str>,
    now: SystemTime,
) -> Result<(Cert, Signature), CryptoError> {
    sealpost_proto::crypto::generate_with_encryption_subkey(
        address,
        name,
        KeyFlags::empty().set_certification().set_signing(),
        now,
    )
}

/// Encrypts all secret key material of `cert` with `passphrase`, each key
/// separately, and returns the armored TSK.
///
/// Sequoia 2.4 protects v4 keys with S2K usage 254 (SHA-1 checksum),
/// AES-256 in CFB mode and an iterated+salted SHA-256 S2K with the
/// maximum count (65,011,712 bytes hashed); GnuPG, OpenPGP.js and
/// Sequoia all read this.  The iteration count adds no security here
/// (the passphrase is already a 256-bit Argon2id/HKDF output) but costs
/// some 0.1-0.4 s per key to unwrap.
pub fn wrap_secret_key(cert: &Cert, passphrase: &Password) -> Result<String, CryptoError> {
    let mut packets: Vec<Packet> = Vec::new();
    for ka in cert.keys().secret() {
        let key = ka.key().clone();
        if !key.has_unencrypted_secret() {
            return Err(CryptoError::Other(
                "secret key material is already encrypted".into(),
            ));
        }
        let key = key
            .encrypt_secret(passphrase)
            .map_err(|e| CryptoError::other("encrypting secret key", e))?;
        packets.push(if ka.primary() {
            key.role_into_primary().into()
        } else {
            key.role_into_subordinate().into()
        });
    }
    if packets.is_empty() {
        return Err(CryptoError::Malformed("no secret key material".into()));
    }
    // `insert_packets` prefers the inserted version of a key, so the
    // encrypted copies replace the plaintext ones.
    let wrapped = cert
        .clone()
        .insert_packets(packets)
        .map_err(|e| CryptoError::other("wrapping secret key", e))?
        .0;
    let armored = wrapped
        .as_tsk()
        .armored()
        .to_vec()
        .map_err(|e| CryptoError::other("serialising secret key", e))?;
    String::from_utf8(armored).map_err(|e| CryptoError::other("armor", e))
}

/// Parses an armored TSK and decrypts all its secret key material (in
/// memory only).  Every secret key in the blob must be encrypted; a
/// passphrase that does not decrypt them gives
/// [`CryptoError::WrongPassphrase`].
pub fn unwrap_secret_key(armored: &str, passphrase: &Password) -> Result<Cert, CryptoError> {
    let cert = Cert::from_bytes(armored.as_bytes())
        .map_err(|e| CryptoError::malformed("secret key", e))?;
    let mut packets: Vec<Packet> = Vec::new();
    for ka in cert.keys().secret() {
        let key = ka.key().clone();
        if key.has_unencrypted_secret() {
            // A wrapped blob holding plaintext keys is not something we
            // produced; refuse it rather than silently accept it.
            return Err(CryptoError::Malformed(
                "wrapped secret key contains unencrypted key material".into(),
            ));
        }
        let key = key
            .decrypt_secret(passphrase)
            .map_err(classify_unwrap_error)?;
        packets.push(if ka.primary() {
            key.role_into_primary().into()
        } else {
            key.role_into_subordinate().into()
        });
    }
    if packets.is_empty() {
        return Err(CryptoError::Malformed("no secret key material".into()));
    }
    cert.insert_packets(packets)
        .map(|(cert, _)| cert)
        .map_err(|e| CryptoError::other("unwrapping secret key", e))
}

/// A failed secret key decryption is a wrong passphrase unless the
/// library says it cannot handle the protection scheme at all.
fn classify_unwrap_error(e: anyhow::Error) -> CryptoError {
    match e.downcast_ref::<openpgp::Error>() {
        Some(
            openpgp::Error::UnsupportedHashAlgorithm(_)
            | openpgp::Error::UnsupportedSymmetricAlgorithm(_)
            | openpgp::Error::UnsupportedAEADAlgorithm(_)
            | openpgp::Error::InvalidOperation(_)
            | openpgp::Error::InvalidArgument(_),
        ) => CryptoError::other("cannot decrypt secret key", e),
        _ => CryptoError::WrongPassphrase,
    }
}

/// `cert` revoked by its own primary key (which must hold unencrypted secret material), with
/// `reason` and its text; the result holds public material only.
pub fn revoke_cert(
    cert: &Cert,
    reason: openpgp::types::ReasonForRevocation,
    text: &str,
) -> Result<Cert, CryptoError> {
    let mut signer = primary_signer(cert)?;
    let sig = CertRevocationBuilder::new()
        .set_reason_for_revocation(reason, text.as_bytes())
        .and_then(|b| b.build(&mut signer, cert, None))
        .map_err(|e| CryptoError::other("making the revocation", e))?;
    Ok(cert
        .clone()
        .strip_secret_key_material()
        .insert_packets(sig)
        .map_err(|e| CryptoError::other("adding the revocation", e))?
        .0)
}
