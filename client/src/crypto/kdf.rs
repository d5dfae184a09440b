//! The password KDF shared by the CLI client and the browser app.
//!
//! The exact construction is documented on [`derive_password_keys`]; its parameters
//! ([`KdfParams`]) and their bounds are `sealpost-proto`'s, since the node stores them.

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use sealpost_proto::crypto::{CryptoError, KdfParams};

/// HKDF `info` label for the key-wrap passphrase.
pub const KDF_INFO_KEY_WRAP: &[u8] = b"sealpost/v1/key-wrap";
/// HKDF `info` label for the login verifier.
pub const KDF_INFO_LOGIN: &[u8] = b"sealpost/v1/login";
/// HKDF `info` label for the passphrase locking a pickup key (docs/pickup.md).
pub const KDF_INFO_PICKUP_WRAP: &[u8] = b"sealpost/v1/pickup-wrap";
/// HKDF `info` label for a pickup's unlock verifier.
pub const KDF_INFO_PICKUP_UNLOCK: &[u8] = b"sealpost/v1/pickup-unlock";
/// The login labels: (wrap, verifier).
pub const LOGIN_LABELS: (&[u8], &[u8]) = (KDF_INFO_KEY_WRAP, KDF_INFO_LOGIN);
/// The pickup labels: (wrap, verifier).
pub const PICKUP_LABELS: (&[u8], &[u8]) = (KDF_INFO_PICKUP_WRAP, KDF_INFO_PICKUP_UNLOCK);

/// Minimum salt length in bytes.
pub const KDF_MIN_SALT_LEN: usize = 16;

/// Output of the password KDF.  Zeroized on drop; `Debug` does not
/// print the secrets.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct PasswordKeys {
    wrap: [u8; 32],
    login: [u8; 32],
}

impl PasswordKeys {
    /// The OpenPGP passphrase used to encrypt (wrap) the user's secret key
    /// material: `base64(wrap)`, standard alphabet, no padding.
    pub fn wrap_passphrase(&self) -> sequoia_openpgp::crypto::Password {
        // Encode into a buffer we own so it can be handed to `Password`,
        // which copies into protected memory and zeroes the original.
        let mut s = String::with_capacity(43);
        base64::engine::general_purpose::STANDARD_NO_PAD.encode_string(self.wrap, &mut s);
        s.into()
    }

    /// The 32-byte value sent to the server at login instead of the
    /// password.
    pub fn login_verifier(&self) -> [u8; 32] {
        self.login
    }
}

impl std::fmt::Debug for PasswordKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordKeys { .. }")
    }
}

/// Derives the key-wrap passphrase and the login verifier from a
/// password.  Fails if the salt is shorter than 16 bytes or the
/// parameters do not pass [`KdfParams::validate`].
///
/// # Exact derivation (v1)
///
/// The browser app reimplements this with a JS Argon2 and WebCrypto HKDF,
/// so it is kept deliberately simple.  All byte strings are raw bytes.
///
/// 1. `master = Argon2id(password, salt)` with version `0x13` (19),
///    memory `m_cost_kib` KiB, `t_cost` passes, `p_cost` lanes, output
///    length 32 bytes, no secret key, no associated data.  The salt is at
///    least 16 bytes.
/// 2. `wrap = HKDF-SHA256(ikm = master, salt = none, info =
///    "sealpost/v1/key-wrap", L = 32)`.  "No salt" is RFC 5869's default
///    of 32 zero bytes; in WebCrypto pass `salt: new Uint8Array(0)`,
///    which HMAC pads to the same all-zero key.
/// 3. The OpenPGP passphrase that protects the secret key is
///    `base64(wrap)` with the *standard* alphabet and *no* `=` padding
///    (43 ASCII characters), used as its UTF-8 bytes.
/// 4. `login = HKDF-SHA256(ikm = master, salt = none, info =
///    "sealpost/v1/login", L = 32)`: the 32-byte value sent to the
///    server at login instead of the password.
///
/// Because both outputs come from independent HKDF labels, the server
/// learning `login` tells it nothing about `wrap`.
pub fn derive_password_keys(
    password: &[u8],
    salt: &[u8],
    params: &KdfParams,
) -> Result<PasswordKeys, CryptoError> {
    derive_keys_with(password, salt, params, LOGIN_LABELS)
}

/// [`derive_password_keys`] with other HKDF labels `(wrap, verifier)`: a pickup's Message
/// Unlock Code uses [`PICKUP_LABELS`] (docs/pickup.md).
pub fn derive_keys_with(
    password: &[u8],
    salt: &[u8],
    params: &KdfParams,
    (wrap_info, verifier_info): (&[u8], &[u8]),
) -> Result<PasswordKeys, CryptoError> {
    params.validate()?;
    if salt.len() < KDF_MIN_SALT_LEN {
        return Err(CryptoError::Malformed(format!(
            "KDF salt must be at least {KDF_MIN_SALT_LEN} bytes"
        )));
    }

    let argon_params = Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
        .map_err(|e| CryptoError::malformed("KDF parameters", e))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);

    let mut master = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(password, salt, master.as_mut_slice())
        .map_err(|e| CryptoError::other("Argon2id", e))?;

    // Note: `Hkdf` keeps the PRK without zeroizing it on drop (hkdf 0.12
    // has no zeroize support); it lives only for the rest of this call.
    let hk = Hkdf::<Sha256>::new(None, master.as_slice());
    let mut keys = PasswordKeys {
        wrap: [0; 32],
        login: [0; 32],
    };
    hk.expand(wrap_info, &mut keys.wrap)
        .map_err(|e| CryptoError::other("HKDF", e))?;
    hk.expand(verifier_info, &mut keys.login)
        .map_err(|e| CryptoError::other("HKDF", e))?;
    Ok(keys)
}
