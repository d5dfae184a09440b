//! Verifiers: 32-byte secrets a client derives from something only its user knows (the login
//! verifier from the password; the pickup page's unlock verifier from an unlock code), of
//! which the node keeps only an Argon2id hash.
//!
//! One rule for every door that checks one: hash it on creation ([`hash_verifier`]), check it
//! in constant time ([`check_verifier`]), and when there is nothing to check it against (no
//! such account), check the decoy hash instead ([`decoy_hash`], made once at start), so that
//! the work done and the answer do not tell whether it exists.
//!
//! What this module must not do: keep, log or return a verifier.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{Context, ServiceError};
use crate::config::Config;

/// Base64 `text` of the request field `field`, decoded.
pub fn base64_field(field: &str, text: &str) -> Result<Vec<u8>, ServiceError> {
    STANDARD
        .decode(text)
        .map_err(|_| ServiceError::InvalidRequest(format!("{field} is not base64")))
}

/// A verifier sent as base64 in the field `field`: exactly 32 bytes.
pub fn verifier_bytes(field: &str, text: &str) -> Result<[u8; 32], ServiceError> {
    base64_field(field, text)?
        .try_into()
        .map_err(|_| ServiceError::InvalidRequest(format!("{field} must be 32 bytes")))
}

/// What a client sends to set a password, checked: at enrolment and at a change of password.
#[derive(Debug)]
pub struct NewLogin {
    /// 16 to 64 bytes.
    pub kdf_salt: Vec<u8>,
    /// The KDF parameters as stored (JSON).
    pub kdf_params: String,
    pub verifier: [u8; 32],
}

/// Checks, in this order, the KDF parameters, the salt (base64 of 16 to 64 bytes) and the login
/// verifier a client derived from a new password.
pub fn new_login(
    kdf_params: &crate::crypto::KdfParams,
    kdf_salt: &str,
    login_verifier: &str,
) -> Result<NewLogin, ServiceError> {
    kdf_params
        .validate()
        .map_err(|e| ServiceError::InvalidKdfParams(e.to_string()))?;
    let kdf_salt = base64_field("kdf_salt", kdf_salt)?;
    if !(16..=64).contains(&kdf_salt.len()) {
        return Err(ServiceError::InvalidRequest(
            "kdf_salt must be 16 to 64 bytes".into(),
        ));
    }
    Ok(NewLogin {
        kdf_salt,
        kdf_params: serde_json::to_string(kdf_params).map_err(ServiceError::internal)?,
        verifier: verifier_bytes("login_verifier", login_verifier)?,
    })
}

/// The wrapped secret key a client sends is `cert`'s, wrapped (the node cannot unwrap it).
pub fn check_wrapped_key(
    wrapped_key: &str,
    cert: &sequoia_openpgp::Cert,
) -> Result<(), ServiceError> {
    crate::crypto::check_wrapped_key(wrapped_key, cert)
        .map_err(|e| ServiceError::KeyNotWrapped(e.to_string()))
}

/// Argon2id with the configured `accounts.verifier_hash_*` parameters: what new verifier
/// hashes (and the decoy) are made with.
pub fn verifier_hasher(config: &Config) -> Result<Argon2<'static>, ServiceError> {
    let a = &config.accounts;
    let params = Params::new(a.verifier_hash_m_cost_kib, a.verifier_hash_t_cost, 1, None)
        .map_err(ServiceError::internal)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The PHC string to store for `verifier`. Argon2id is deliberately slow: it runs off the
/// async workers.
pub async fn hash_verifier(ctx: &Context, verifier: [u8; 32]) -> Result<String, ServiceError> {
    let hasher = verifier_hasher(&ctx.config)?;
    tokio::task::spawn_blocking(move || hasher.hash_password(&verifier).map(|h| h.to_string()))
        .await
        .map_err(ServiceError::internal)?
        .map_err(ServiceError::internal)
}

/// The hash checked when there is no stored one: made once at start with the parameters real
/// hashes are made with now, so that checking it is the same work.
pub fn decoy_hash(config: &Config) -> String {
    verifier_hasher(config)
        .expect("validated Argon2id parameters")
        .hash_password(&rand::random::<[u8; 32]>())
        .expect("hashing works")
        .to_string()
}

/// Constant-time check of a verifier against its stored hash. `None` (no such account, no such
/// pickup) checks the context's decoy hash instead and answers `false`: the same work either
/// way, with no shortcut. (A hash made under earlier `verifier_hash_*` parameters keeps those
/// until it is replaced.)
pub async fn check_verifier(
    ctx: &Context,
    stored: Option<String>,
    verifier: [u8; 32],
) -> Result<bool, ServiceError> {
    let real = stored.is_some();
    let phc = stored.unwrap_or_else(|| ctx.decoy_login_hash.clone());
    let matches = tokio::task::spawn_blocking(move || {
        Argon2::default()
            .verify_password(&verifier, phc.as_str())
            .is_ok()
    })
    .await
    .map_err(ServiceError::internal)?;
    Ok(real & matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hash made here checks its verifier and no other; no stored hash is never a match,
    /// though the decoy is checked.
    #[tokio::test]
    async fn a_hashed_verifier_checks_only_itself_and_none_never_matches() {
        let (_dir, node) = crate::node::temp_node("credentials.test").await;
        let ctx: &Context = &node.state;
        let v = [7u8; 32];
        let phc = hash_verifier(ctx, v).await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(check_verifier(ctx, Some(phc.clone()), v).await.unwrap());
        assert!(!check_verifier(ctx, Some(phc), [8; 32]).await.unwrap());
        assert!(!check_verifier(ctx, None, v).await.unwrap());
    }

    #[test]
    fn verifiers_are_32_bytes_of_base64() {
        let ok = STANDARD.encode([1u8; 32]);
        assert_eq!(verifier_bytes("login_verifier", &ok).unwrap(), [1; 32]);
        for (text, message) in [
            ("not base64!", "login_verifier is not base64"),
            (
                &STANDARD.encode([1u8; 31]),
                "login_verifier must be 32 bytes",
            ),
        ] {
            let e = verifier_bytes("login_verifier", text).unwrap_err();
            assert_eq!(
                (e.code(), e.to_string().as_str()),
                ("invalid_request", message)
            );
        }
    }
}
