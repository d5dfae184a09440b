//! The OpenPGP checks both sides make, and what they share to make them.
//!
//! Everything here is built from `sequoia-openpgp` (OpenSSL backend) and
//! `ed25519-dalek`; nothing is home-made. It provides:
//!
//! * the password KDF's parameters and their bounds ([`KdfParams`]; the
//!   derivation itself is the client's),
//! * certificate checks: fit to be an enrolled user's ([`check_user_cert`]),
//!   a wrapped key really wrapped ([`check_wrapped_key`]), vouched for by a
//!   CA ([`ca_certifies`]),
//! * verification of detached signatures over request envelopes
//!   ([`verify_detached`], [`verify_detached_with`], [`SignerFacts`]),
//! * cheap recipient inspection of a ciphertext ([`pkesk_recipients`],
//!   [`missing_recipients`]) without decrypting it,
//! * armor and parsing of public objects ([`cert_from_armored`],
//!   [`cert_to_armored`], [`signature_from_armored`]), and the key profile
//!   both sides generate keys with ([`cert_builder`]).
//!
//! What this module must NOT do:
//!
//! * hold any operation that needs a user's secret key or password: key
//!   generation for users, wrapping and unwrapping, sealing and opening,
//!   signing and the password KDF are `sealpost-client`'s, which the node
//!   does not link;
//! * no I/O of its own: it reads only the readers it is handed (no files,
//!   no network, no environment);
//! * never log, print or put secrets into error messages or `Debug` output;
//! * no policy of its own about *who* may talk to whom: callers pass the
//!   certificates, the [`Policy`](sequoia_openpgp::policy::Policy) and
//!   the reference time explicitly, which also keeps the functions
//!   deterministic under test.
//!
//! Messages and keys are OpenPGP v4 and SEIPDv1 by default so that
//! GnuPG 2.2 can read them (see `FOUNDATIONS.md`, pitfall 4).

mod checks;
mod compliance;
mod detached;
mod inspect;
mod kdf;
mod keys;
pub mod smime;

#[cfg(test)]
mod tests;

use sequoia_openpgp::Fingerprint;

pub use checks::{after_previous_signatures, ca_certifies, check_user_cert, check_wrapped_key};
pub use compliance::{
    COMPLIANCE_ARCHIVE, COMPLIANCE_LOCAL_PART, COMPLIANCE_NOTATION, ComplianceKeyError,
    compliance_address, compliance_key_of,
};
pub use detached::{MAX_CLOCK_SKEW, SignerFacts, verify_detached, verify_detached_with};
pub use inspect::{
    encryption_key_handles, encryption_keys, missing_recipients, missing_recipients_among,
    pkesk_recipients, pkesk_recipients_of_bytes, valid_cert,
};
pub use kdf::KdfParams;
pub use keys::{
    cert_builder, cert_from_armored, cert_to_armored, generate_with_encryption_subkey,
    primary_signer, signature_from_armored, signature_to_armored, user_id,
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
    pub fn other(context: &str, e: impl std::fmt::Display) -> Self {
        CryptoError::Other(format!("{context}: {e}"))
    }

    /// Wraps a lower-level error as [`CryptoError::Malformed`].
    pub fn malformed(context: &str, e: impl std::fmt::Display) -> Self {
        CryptoError::Malformed(format!("{context}: {e}"))
    }
}

/// A fingerprint in the form people compare aloud: upper-case hex in
/// groups of four separated by single spaces (10 groups for a v4
/// fingerprint, 16 for a v6 one).
pub fn fingerprint_display(fpr: &Fingerprint) -> String {
    grouped(&fpr.to_hex())
}

/// [`fingerprint_display`] of a fingerprint given in hex, as the wire carries it.
pub fn grouped(hex: &str) -> String {
    let mut out = String::with_capacity(hex.len() + hex.len() / 4);
    for (i, c) in hex.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}
