//! Armor and parsing of public objects (certificates, signatures), and what key generation
//! and certification share: the key profile and the primary key as a signer.

use std::io::Read;
use std::time::SystemTime;

use sequoia_openpgp as openpgp;

use openpgp::armor;
use openpgp::cert::prelude::*;
use openpgp::packet::prelude::*;
use openpgp::parse::Parse;
use openpgp::serialize::{Serialize, SerializeInto};
use openpgp::types::Features;
use openpgp::{Packet, Profile};

use super::CryptoError;

/// The key profile both sides generate keys with (users' keys in the client, the
/// organisation CA in the node): v4 (RFC 4880 profile),
/// Ed25519/Cv25519, no expiry, and Features advertising only SEIPDv1.
///
/// Advertising SEIPDv2 would make Sequoia (and OpenPGP.js) encrypt to
/// us with v2 packets that GnuPG 2.2 rejects ("unknown version 6"), see
/// FOUNDATIONS pitfall 4.
pub fn cert_builder(now: SystemTime) -> Result<CertBuilder<'static>, CryptoError> {
    CertBuilder::new()
        .set_profile(Profile::RFC4880)
        .and_then(|b| b.set_features(Features::empty().set_seipdv1()))
        .map(|b| {
            b.set_cipher_suite(CipherSuite::Cv25519)
                .set_creation_time(now)
                .set_validity_period(None)
        })
        .map_err(|e| CryptoError::other("key generation", e))
}

/// A certificate of the common profile ([`cert_builder`]) for `address` (named `name`): a
/// primary key with `primary` flags and one encryption subkey (transport and storage), and
/// its revocation certificate. Users' keys (client) and the node's transit key use it.
pub fn generate_with_encryption_subkey(
    address: &str,
    name: Option<&str>,
    primary: openpgp::types::KeyFlags,
    now: SystemTime,
) -> Result<(Cert, Signature), CryptoError> {
    cert_builder(now)?
        .set_primary_key_flags(primary)
        .add_userid(user_id(name, address)?)
        .add_subkey(
            openpgp::types::KeyFlags::empty()
                .set_transport_encryption()
                .set_storage_encryption(),
            None,
            None,
        )
        .generate()
        .map_err(|e| CryptoError::other("key generation", e))
}

/// Builds `Name <address>` or `<address>`, rejecting malformed addresses.
pub fn user_id(name: Option<&str>, address: &str) -> Result<UserID, CryptoError> {
    UserID::from_address(name, None, address).map_err(|e| CryptoError::malformed("user ID", e))
}

/// A signer for `cert`'s primary key, which must hold unencrypted secret material.
pub fn primary_signer(cert: &Cert) -> Result<openpgp::crypto::KeyPair, CryptoError> {
    cert.primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .and_then(|k| k.into_keypair())
        .map_err(|_| CryptoError::NoUsableKey(cert.fingerprint()))
}

/// ASCII-armors the *public* part of `cert` (secret key material and
/// non-exportable signatures are never included).
pub fn cert_to_armored(cert: &Cert) -> Result<String, CryptoError> {
    let bytes = cert
        .armored()
        .export_to_vec()
        .map_err(|e| CryptoError::other("serialising certificate", e))?;
    String::from_utf8(bytes).map_err(|e| CryptoError::other("armor", e))
}

/// Parses one certificate (armored or binary).  Rejects input carrying
/// secret key material with `Malformed("secret key material")`, so a
/// user's TSK can never be stored as their public cert by mistake.
pub fn cert_from_armored(armored: &str) -> Result<Cert, CryptoError> {
    let cert = Cert::from_bytes(armored.as_bytes())
        .map_err(|e| CryptoError::malformed("certificate", e))?;
    if cert.is_tsk() {
        return Err(CryptoError::Malformed("secret key material".into()));
    }
    Ok(cert)
}

/// ASCII-armors a single signature (e.g. a revocation certificate).
pub fn signature_to_armored(sig: &Signature) -> Result<String, CryptoError> {
    let mut w = armor::Writer::new(Vec::new(), armor::Kind::Signature)
        .map_err(|e| CryptoError::other("armor", e))?;
    Packet::from(sig.clone())
        .serialize(&mut w)
        .map_err(|e| CryptoError::other("serialising signature", e))?;
    let bytes = w.finalize().map_err(|e| CryptoError::other("armor", e))?;
    String::from_utf8(bytes).map_err(|e| CryptoError::other("armor", e))
}

/// Parses exactly one armored signature packet.
pub fn signature_from_armored(armored: &str) -> Result<Signature, CryptoError> {
    let bytes = match dearmor_signature_plain(armored) {
        Some(bytes) => bytes,
        None => {
            let mut reader = armor::Reader::from_bytes(
                armored.as_bytes(),
                armor::ReaderMode::Tolerant(Some(armor::Kind::Signature)),
            );
            // Sized up front (the binary is shorter than its armor): the armor reader then
            // fills it in one pass instead of many small reads into a growing buffer.
            let mut bytes = Vec::with_capacity(armored.len());
            reader
                .read_to_end(&mut bytes)
                .map_err(|e| CryptoError::malformed("signature armor", e))?;
            bytes
        }
    };
    // `Signature::from_bytes` expects a bare packet body; parse a whole
    // packet (header included) instead.
    match Packet::from_bytes(&bytes).map_err(|e| CryptoError::malformed("signature", e))? {
        Packet::Signature(sig) => Ok(sig),
        p => Err(CryptoError::Malformed(format!(
            "expected a signature packet, got {}",
            p.tag()
        ))),
    }
}

/// The bytes of a signature armored the way every OpenPGP implementation writes one: the
/// `BEGIN PGP SIGNATURE` line, optional `Key: value` headers, a blank line, base64 lines, an
/// optional `=` checksum line (ignored, as RFC 9580 section 6.1 allows), the `END` line.
/// `None` for anything else, which is left to sequoia's tolerant armor reader: that reader
/// is general (any kind, any framing) and took half of the time of parsing a submission's
/// signature. Accepts nothing the reader would not decode to the same bytes.
pub(crate) fn dearmor_signature_plain(armored: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let mut lines = armored.trim().lines().map(str::trim_end);
    if lines.next()? != "-----BEGIN PGP SIGNATURE-----" {
        return None;
    }
    let mut headers = true;
    let mut body = String::with_capacity(armored.len());
    let mut checksum_seen = false;
    for line in lines.by_ref() {
        if line == "-----END PGP SIGNATURE-----" {
            return (!headers && lines.next().is_none())
                .then(|| base64::engine::general_purpose::STANDARD.decode(&body).ok())
                .flatten();
        }
        if headers {
            match line {
                "" => headers = false,
                h if h.contains(": ") => {}
                _ => return None,
            }
        } else if checksum_seen {
            return None;
        } else if line.starts_with('=') {
            checksum_seen = true;
        } else {
            body.push_str(line);
        }
    }
    None
}
