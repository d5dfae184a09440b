//! The password KDF shared by the server-side client and the browser app.
//!
//! The exact construction is documented on [`derive_password_keys`].

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::CryptoError;

/// HKDF `info` label for the key-wrap passphrase.
pub const KDF_INFO_KEY_WRAP: &[u8] = b"sealpost/v1/key-wrap";
/// HKDF `info` label for the login verifier.
pub const KDF_INFO_LOGIN: &[u8] = b"sealpost/v1/login";
/// Minimum salt length in bytes.
pub const KDF_MIN_SALT_LEN: usize = 16;

/// Argon2id cost parameters.  Stored per account so they can be raised
/// later without breaking existing users.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Number of passes.
    pub t_cost: u32,
    /// Degree of parallelism (lanes).  The result does not depend on how
    /// many threads actually compute it.
    pub p_cost: u32,
}

impl KdfParams {
    /// 64 MiB, 3 passes, 1 lane.
    pub const DEFAULT: KdfParams = KdfParams {
        m_cost_kib: 65536,
        t_cost: 3,
        p_cost: 1,
    };

    /// The smallest parameters [`validate`](Self::validate) accepts: 8 MiB, 1 pass, 1 lane.
    /// For tests and benchmarks that enrol many users; never a default.
    pub const MIN: KdfParams = KdfParams {
        m_cost_kib: 8 * 1024,
        t_cost: 1,
        p_cost: 1,
    };

    /// Checks the parameters are within sane bounds: memory 8 MiB to
    /// 1 GiB, 1 to 10 passes, 1 to 8 lanes.  Parameters come from the
    /// server to the client, so a hostile server must not be able to make
    /// the client use a trivially weak KDF or allocate unbounded memory.
    pub fn validate(&self) -> Result<(), CryptoError> {
        if !(Self::MIN.m_cost_kib..=1024 * 1024).contains(&self.m_cost_kib) {
            return Err(CryptoError::Malformed(format!(
                "KDF memory cost {} KiB outside 8192..=1048576",
                self.m_cost_kib
            )));
        }
        if !(Self::MIN.t_cost..=10).contains(&self.t_cost) {
            return Err(CryptoError::Malformed(format!(
                "KDF time cost {} outside 1..=10",
                self.t_cost
            )));
        }
        if !(Self::MIN.p_cost..=8).contains(&self.p_cost) {
            return Err(CryptoError::Malformed(format!(
                "KDF parallelism {} outside 1..=8",
                self.p_cost
            )));
        }
        Ok(())
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

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
    hk.expand(KDF_INFO_KEY_WRAP, &mut keys.wrap)
        .map_err(|e| CryptoError::other("HKDF", e))?;
    hk.expand(KDF_INFO_LOGIN, &mut keys.login)
        .map_err(|e| CryptoError::other("HKDF", e))?;
    Ok(keys)
}
