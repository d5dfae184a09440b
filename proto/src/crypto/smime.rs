//! S/MIME (RFC 8551) for an outside recipient with an X.509 certificate (docs/mail.md, mode
//! `smime`): the inner MIME entity encrypted to the recipient's certificate as DER CMS, by
//! OpenSSL's CMS (the OpenSSL sequoia already links). Encryption to a public certificate
//! needs no secret: the client makes the copy for a message it seals, the node for a message
//! its submission gateway takes (docs/mail.md). The node wraps the result in an
//! `application/pkcs7-mime; smime-type=enveloped-data` part.
//!
//! Content encryption is AES-256-CBC (`EnvelopedData`) unless the caller knows the recipient
//! reads AES-256-GCM (`AuthEnvelopedData`, RFC 5083) from its SMIMECapabilities: .NET,
//! LibreSSL and GnuPG 2.2's gpgsm still read CBC only.

use openssl::cms::{CMSOptions, CmsContentInfo};
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
