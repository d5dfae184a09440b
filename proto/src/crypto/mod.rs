//! OpenPGP and password cryptography for Sealpost.
//!
//! This module is the only place in the node that touches key material
//! or message cryptography.  Everything here is built from
//! `sequoia-openpgp` (OpenSSL backend) and the `argon2`/`hkdf` crates;
//! nothing is home-made.  It provides:
//!
//! * the password KDF shared with the browser app ([`derive_password_keys`]),
//! * user and organisation-CA key generation and CA certification
//!   ([`generate_user_key`], [`generate_ca`], [`ca_certify`]),
//! * wrapping of secret keys under the derived passphrase
//!   ([`wrap_secret_key`], [`unwrap_secret_key`]) and armor helpers,
//! * streaming sign+encrypt / decrypt+verify of messages ([`seal`], [`open`]),
//! * cheap recipient inspection of a ciphertext ([`pkesk_recipients`],
//!   [`missing_recipients`]),
//! * detached signatures over request envelopes ([`sign_detached`],
//!   [`verify_detached`]).
//!
//! What this module must NOT do:
//!
//! * no I/O of its own: it reads and writes only the readers and
//!   writers it is handed (no files, no network, no environment), so
//!   callers decide where plaintext and key material live;
//! * never log, print or put secrets (passwords, derived keys, session
//!   keys, secret key material, plaintext) into error messages or
//!   `Debug` output;
//! * no policy of its own about *who* may talk to whom: callers pass the
//!   certificates, the [`Policy`](sequoia_openpgp::policy::Policy) and
//!   the reference time explicitly, which also keeps the functions
//!   deterministic under test.
//!
//! Messages and keys are OpenPGP v4 and SEIPDv1 by default so that
//! GnuPG 2.2 can read them (see `FOUNDATIONS.md`, pitfall 4).

mod checks;
mod detached;
mod kdf;
mod keys;
mod message;

#[cfg(test)]
mod tests;

use sequoia_openpgp::Fingerprint;

pub use checks::{ca_certifies, check_user_cert, check_wrapped_key};
pub use detached::{
    MAX_CLOCK_SKEW, SignerFacts, sign_detached, verify_detached, verify_detached_with,
};
pub use kdf::{
    KDF_INFO_KEY_WRAP, KDF_INFO_LOGIN, KDF_MIN_SALT_LEN, KdfParams, PasswordKeys,
    derive_password_keys,
};
pub use keys::{
    ca_certify, cert_from_armored, cert_to_armored, generate_ca, generate_user_key, revoke_cert,
    signature_from_armored, signature_to_armored, unwrap_secret_key, wrap_secret_key,
};
pub use message::{
    OPEN_BUFFER_SIZE, encryption_key_handles, missing_recipients, missing_recipients_among, open,
    pkesk_recipients, pkesk_recipients_of_bytes, seal,
};

/// Errors in the caller's terms.
///
/// Messages never contain secret material; they may contain
/// fingerprints and the text of lower-level errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The passphrase does not decrypt the wrapped secret key.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// None of our keys can decrypt the message.
    #[error("message is not encrypted for us")]
    NotEncryptedForUs,
    /// The ciphertext was tampered with or is malformed (MDC/AEAD
    /// failure, corrupt packets, session key that does not decrypt).
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// A signature is present but does not verify, or was made by a key
    /// that is not valid for signing, or the message is not signed.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// The signature was made by a key that does not belong to any of the
    /// expected signers.
    #[error("signature by an unknown signer")]
    UnknownSigner,
    /// The certificate has no key that is valid (under the policy, at the
    /// given time) for the requested operation: encryption for a
    /// recipient, signing or certification for a signer.
    #[error("certificate {0} has no usable key for this operation")]
    NoUsableKey(Fingerprint),
    /// The input is not the kind of object expected (bad armor, wrong
    /// packet types, secret key material where only a public cert is
    /// allowed, invalid parameters, ...).
    #[error("malformed input: {0}")]
    Malformed(String),
    /// Anything else (I/O errors of the passed readers/writers, library
    /// errors that do not fit the categories above).
    #[error("{0}")]
    Other(String),
}

impl CryptoError {
    /// Wraps a lower-level error as [`CryptoError::Other`].
    fn other(context: &str, e: impl std::fmt::Display) -> Self {
        CryptoError::Other(format!("{context}: {e}"))
    }

    /// Wraps a lower-level error as [`CryptoError::Malformed`].
    fn malformed(context: &str, e: impl std::fmt::Display) -> Self {
        CryptoError::Malformed(format!("{context}: {e}"))
    }
}

/// A fingerprint in the form people compare aloud: upper-case hex in
/// groups of four separated by single spaces (10 groups for a v4
/// fingerprint, 16 for a v6 one).
pub fn fingerprint_display(fpr: &Fingerprint) -> String {
    let hex = fpr.to_hex();
    let mut out = String::with_capacity(hex.len() + hex.len() / 4);
    for (i, c) in hex.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}
