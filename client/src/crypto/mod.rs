//! The user's side of Sealpost's cryptography: every operation that needs a password or a
//! user's secret key, and which the node therefore must not be able to perform.
//!
//! * the password KDF shared with the browser app ([`derive_password_keys`]),
//! * user key generation ([`generate_user_key`]) and revocation by the key's holder
//!   ([`revoke_cert`]),
//! * wrapping of secret keys under the derived passphrase ([`wrap_secret_key`],
//!   [`unwrap_secret_key`]),
//! * streaming sign+encrypt / decrypt+verify of messages ([`seal`], [`open`]),
//! * detached signatures over request envelopes ([`sign_detached`]),
//! * S/MIME encryption to an outside recipient's X.509 certificate (`smime::encrypt`, proto's:
//!   it needs no secret, and the node's submission gateway makes S/MIME copies too).
//!
//! What both sides check (certificates, detached signatures, a ciphertext's recipients, KDF
//! parameters) is `sealpost-proto`'s, re-exported here so that the client names all its
//! cryptography in one place. The rules of `sealpost_proto::crypto` hold here too: no I/O
//! beyond the readers and writers handed in, no secret in an error or a log, no policy of its
//! own (certificates, policy and time are passed in).

mod kdf;
mod keys;
mod message;
mod sign;

#[cfg(test)]
mod tests;

pub use kdf::{
    KDF_INFO_KEY_WRAP, KDF_INFO_LOGIN, KDF_INFO_PICKUP_UNLOCK, KDF_INFO_PICKUP_WRAP,
    KDF_MIN_SALT_LEN, LOGIN_LABELS, PICKUP_LABELS, PasswordKeys, derive_keys_with,
    derive_password_keys,
};
pub use keys::{generate_user_key, revoke_cert, unwrap_secret_key, wrap_secret_key};
pub use message::{
    OPEN_BUFFER_SIZE, compliance_packet, open, open_unsigned, open_unsigned_keeping_session_key,
    seal,
};
pub use sealpost_proto::crypto::*;
pub use sign::sign_detached;
