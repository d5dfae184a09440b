//! The crate's error type.

use sequoia_openpgp as openpgp;

use openpgp::Fingerprint;

/// Errors of the trust engine and of the signature builders.
///
/// Verdicts are not errors: "not authenticated" is a [`crate::Verdict`]
/// with a [`crate::WhyNot`]. Errors are for inputs the engine cannot work
/// with at all.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The string is not an email address (`local@domain`).
    #[error("not an email address: {0:?}")]
    InvalidAddress(String),

    /// The string is not a usable domain name.
    #[error("not a domain name: {0:?}")]
    InvalidDomain(String),

    /// The certificate has no user ID with this address.
    #[error("{fingerprint} has no user ID for {address}")]
    NoSuchUserId {
        /// The certificate that was searched.
        fingerprint: Fingerprint,
        /// The address that was looked for (normalised).
        address: String,
    },

    /// The signer's primary key has no unencrypted secret key material
    /// (it is missing, or still locked with the user's passphrase).
    #[error("{0} has no unlocked secret primary key to sign with")]
    NoSigningKey(Fingerprint),

    /// Sequoia rejected an operation (signing, merging, building the
    /// certificate store).
    #[error("{context}: {source}")]
    OpenPgp {
        /// What the engine was doing.
        context: &'static str,
        /// Sequoia's error.
        #[source]
        source: openpgp::anyhow::Error,
    },
}

impl TrustError {
    /// Wraps a Sequoia error with what we were doing.
    pub(crate) fn openpgp(context: &'static str, source: openpgp::anyhow::Error) -> Self {
        TrustError::OpenPgp { context, source }
    }
}
