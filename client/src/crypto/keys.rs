//! Key generation, CA certification, secret-key wrapping and armor.

use std::io::Read;
use std::time::SystemTime;

use sequoia_openpgp as openpgp;

use openpgp::armor;
use openpgp::cert::prelude::*;
use openpgp::crypto::Password;
use openpgp::packet::prelude::*;
use openpgp::parse::Parse;
use openpgp::serialize::{Serialize, SerializeInto};
use openpgp::types::{Features, KeyFlags, SignatureType};
use openpgp::{Packet, Profile};

use super::CryptoError;

/// Base builder shared by user and CA keys: v4 (RFC 4880 profile),
/// Ed25519/Cv25519, no expiry, and Features advertising only SEIPDv1.
///
/// Advertising SEIPDv2 would make Sequoia (and OpenPGP.js) encrypt to
/// us with v2 packets that GnuPG 2.2 rejects ("unknown version 6"), see
/// FOUNDATIONS pitfall 4.
fn base_builder(now: SystemTime) -> Result<CertBuilder<'static>, CryptoError> {
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

/// Builds `Name <address>` or `<address>`, rejecting malformed addresses.
fn make_userid(name: Option<&str>, address: &str) -> Result<UserID, CryptoError> {
    UserID::from_address(name, None, address).map_err(|e| CryptoError::malformed("user ID", e))
}

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
    let userid = make_userid(name, address)?;
    base_builder(now)?
        .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
        .add_userid(userid)
        .add_subkey(
            KeyFlags::empty()
                .set_transport_encryption()
                .set_storage_encryption(),
            None,
            None,
        )
        .generate()
        .map_err(|e| CryptoError::other("key generation", e))
}

/// Generates an organisation CA key in the OpenPGP CA convention: user
/// ID `OpenPGP CA <openpgp-ca@DOMAIN>`, a certification-only Ed25519
/// primary key and nothing else, v4, SEIPDv1-only Features, no expiry.
/// The revocation certificate is discarded; a CA is retired by the
/// operator with its own tooling.
pub fn generate_ca(domain: &str, now: SystemTime) -> Result<Cert, CryptoError> {
    let address = format!("openpgp-ca@{}", domain.to_ascii_lowercase());
    let userid = make_userid(Some("OpenPGP CA"), &address)?;
    let (cert, _rev) = base_builder(now)?
        .set_primary_key_flags(KeyFlags::empty().set_certification())
        .add_userid(userid)
        .generate()
        .map_err(|e| CryptoError::other("CA key generation", e))?;
    Ok(cert)
}

/// Has the CA certify every user ID of `user` whose email address equals
/// `address` (compared lower-cased) with a generic certification
/// (0x10) made at `now` by the CA's primary key, which must have
/// unencrypted secret key material.  Returns `user` with the
/// certifications merged in; an error if no user ID matches.
pub fn ca_certify(
    ca: &Cert,
    user: &Cert,
    address: &str,
    now: SystemTime,
) -> Result<Cert, CryptoError> {
    let mut signer = primary_signer(ca)?;

    let wanted = address.to_lowercase();
    let mut packets: Vec<Packet> = Vec::new();
    for uid in user.userids() {
        let matches = uid
            .userid()
            .email()
            .ok()
            .flatten()
            .is_some_and(|e| e.to_lowercase() == wanted);
        if !matches {
            continue;
        }
        let sig = uid
            .userid()
            .certify(
                &mut signer,
                user,
                SignatureType::GenericCertification,
                None,
                now,
            )
            .map_err(|e| CryptoError::other("certification", e))?;
        // Insert the user ID together with its new certification so the
        // merge attaches the signature to that component; a bare
        // third-party signature could not be placed by the canonicaliser.
        packets.push(uid.userid().clone().into());
        packets.push(sig.into());
    }
    if packets.is_empty() {
        return Err(CryptoError::Malformed(format!(
            "no user ID with address {address}"
        )));
    }
    user.clone()
        .insert_packets(packets)
        .map(|(cert, _)| cert)
        .map_err(|e| CryptoError::other("merging certification", e))
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

/// A signer for `cert`'s primary key, which must hold unencrypted secret material.
fn primary_signer(cert: &Cert) -> Result<openpgp::crypto::KeyPair, CryptoError> {
    cert.primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .and_then(|k| k.into_keypair())
        .map_err(|_| CryptoError::NoUsableKey(cert.fingerprint()))
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
pub(super) fn dearmor_signature_plain(armored: &str) -> Option<Vec<u8>> {
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
