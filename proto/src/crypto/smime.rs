//! S/MIME (RFC 8551) for an outside recipient with an X.509 certificate (docs/mail.md, mode
//! `smime`): the inner MIME entity encrypted to the recipient's certificate as DER CMS, by
//! OpenSSL's CMS (the OpenSSL sequoia already links). Encryption to a public certificate
//! needs no secret: the client makes the copy for a message it seals, the node for a message
//! its submission gateway takes (docs/mail.md). The node wraps the result in an
//! `application/pkcs7-mime; smime-type=enveloped-data` part.
//!
//! Signing (`sign`): when the organisation runs an S/MIME CA (`[smime]`), the sender's client
//! signs the inner entity with its P-256 S/MIME key before encrypting it (sign-then-encrypt,
//! RFC 8551 §3.5): `multipart/signed` with a detached CMS SignedData (SHA-256, ECDSA), the
//! signer's certificate and the CA chain included, so that `openssl cms -verify` and gpgsm
//! verify it with the CA alone.
//!
//! Content encryption is AES-256-CBC (`EnvelopedData`) unless the caller knows the recipient
//! reads AES-256-GCM (`AuthEnvelopedData`, RFC 5083) from its SMIMECapabilities: .NET,
//! LibreSSL and GnuPG 2.2's gpgsm still read CBC only.

use base64::Engine as _;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::X509;

use super::CryptoError;

/// The content encryption of an S/MIME message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SmimeCipher {
    /// AES-256-CBC in `EnvelopedData`: what every S/MIME reader opens.
    #[default]
    Aes256Cbc,
    /// AES-256-GCM in `AuthEnvelopedData`: only for a recipient that says it reads it.
    Aes256Gcm,
}

/// The first certificate of a PEM (the leaf; intermediates may follow).
fn first_cert(pem: &str) -> Result<X509, CryptoError> {
    X509::stack_from_pem(pem.as_bytes())
        .map_err(|e| CryptoError::malformed("recipient certificate", e))?
        .into_iter()
        .next()
        .ok_or_else(|| CryptoError::Malformed("no certificate in the recipient's PEM".into()))
}

/// The SHA-256 (lowercase hex) of the DER of the first certificate in `pem`: how the envelope
/// answer names an X.509 certificate (`ResolvedRecipient::fingerprint`).
pub fn cert_sha256(pem: &str) -> Result<String, CryptoError> {
    let cert = first_cert(pem)?;
    let digest = cert
        .digest(openssl::hash::MessageDigest::sha256())
        .map_err(|e| CryptoError::other("S/MIME", e))?;
    Ok(hex::encode(digest))
}

/// `entity` (a complete MIME entity, CRLF line ends) encrypted to the first certificate of
/// `recipient_pem`, as DER CMS. The entity is taken as binary (no line-end translation), so
/// the recipient decrypts exactly these bytes.
pub fn encrypt(
    entity: &[u8],
    recipient_pem: &str,
    cipher: SmimeCipher,
) -> Result<Vec<u8>, CryptoError> {
    let cert = first_cert(recipient_pem)?;
    let mut certs = Stack::new().map_err(|e| CryptoError::other("S/MIME", e))?;
    certs
        .push(cert)
        .map_err(|e| CryptoError::other("S/MIME", e))?;
    let cipher = match cipher {
        SmimeCipher::Aes256Cbc => Cipher::aes_256_cbc(),
        SmimeCipher::Aes256Gcm => Cipher::aes_256_gcm(),
    };
    CmsContentInfo::encrypt(&certs, entity, cipher, CMSOptions::BINARY)
        .and_then(|cms| cms.to_der())
        .map_err(|e| CryptoError::other("S/MIME encryption", e))
}

/// `data` with every bare LF (and bare CR) made CRLF.
fn canonical_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32);
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'\r' if data.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// `entity` (a complete MIME entity, in canonical form: line ends made CRLF) signed by `key` with the certificate
/// `cert_pem`, as a `multipart/signed; protocol="application/pkcs7-signature";
/// micalg=sha-256` entity whose first part is exactly `entity` and whose second is a detached
/// CMS SignedData (SHA-256; the signer's certificate and every certificate of `chain_pem`
/// included; OpenSSL's default SMIMECapabilities, AES-256-CBC first). Encrypt the result with
/// [`encrypt`] for sign-then-encrypt.
pub fn sign(
    entity: &[u8],
    cert_pem: &str,
    chain_pem: &str,
    key: &PKey<Private>,
) -> Result<Vec<u8>, CryptoError> {
    let err = |e| CryptoError::other("S/MIME signing", e);
    // What is signed is the canonical form (every line ending CRLF, RFC 8551 §3.1.1): the
    // form a verifier rebuilds from the delivered part, whatever line ends it was given.
    let canonical = canonical_crlf(entity);
    let entity = canonical.as_slice();
    let cert = X509::from_pem(cert_pem.as_bytes())
        .map_err(|e| CryptoError::malformed("signer certificate", e))?;
    if !cert.public_key().map_err(err)?.public_eq(key) {
        return Err(CryptoError::Malformed(
            "the S/MIME certificate is not for this key".into(),
        ));
    }
    let mut chain = Stack::new().map_err(err)?;
    if !chain_pem.trim().is_empty() {
        for c in X509::stack_from_pem(chain_pem.as_bytes())
            .map_err(|e| CryptoError::malformed("CA chain", e))?
        {
            chain.push(c).map_err(err)?;
        }
    }
    // The digest for a P-256 key is SHA-256 (OpenSSL's default for it; micalg says so).
    let der = CmsContentInfo::sign(
        Some(&cert),
        Some(key),
        Some(&chain),
        Some(entity),
        CMSOptions::DETACHED | CMSOptions::BINARY,
    )
    .and_then(|cms| cms.to_der())
    .map_err(err)?;
    let boundary = format!(
        "sealpost-signed-{}",
        hex::encode(rand::random::<[u8; 12]>())
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let mut out = Vec::with_capacity(entity.len() + b64.len() + 512);
    out.extend_from_slice(
        format!(
            "MIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"{boundary}\"\r\n\r\nThis is a cryptographically signed message in MIME format.\r\n\r\n--{boundary}\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(entity);
    out.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n"
        )
        .as_bytes(),
    );
    for line in b64.as_bytes().chunks(76) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Ok(out)
}
