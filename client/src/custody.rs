//! The compliance key's custody on the user's side (docs/compliance.md, "Dual control"), the
//! same steps as the web app's `screens/compliance*.tsx`:
//!
//! 1. the admin's side makes the compliance key, locks its TSK with a random 32-byte secret S
//!    ([`lock_key`]: S → passphrase by HKDF-SHA256, info [`LOCK_INFO`], lower-case hex), splits
//!    S M-of-N ([`crate::shamir::split`]) and wraps each share for one officer's key
//!    ([`wrap_share`]);
//! 2. an approving officer unwraps their share ([`unwrap_share`]) and wraps it again for the
//!    request key the requester made;
//! 3. the requester unwraps the shares, combines S and unlocks the key ([`unlock_key`]), which
//!    refuses a wrong S ([`CryptoError::WrongPassphrase`]).
//!
//! The node only ever sees the locked TSK and wrapped shares. What this module must not do: log
//! or return S, a share or a passphrase outside a zeroizing buffer.

use std::time::SystemTime;

use hkdf::Hkdf;
use rand::RngCore;
use sequoia_openpgp as openpgp;
use sha2::Sha256;
use zeroize::Zeroizing;

use openpgp::Cert;
use openpgp::crypto::Password;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{Armorer, Encryptor, LiteralWriter, Message};

use crate::crypto::{CryptoError, open_unsigned, unwrap_secret_key, wrap_secret_key};

/// HKDF-SHA256 `info` turning S into the lock's passphrase.
pub const LOCK_INFO: &[u8] = b"sealpost/v1/compliance-lock";
/// Length of S in bytes.
pub const SECRET_LEN: usize = 32;
/// Longest share accepted when unwrapping (an x byte and S).
const MAX_SHARE: usize = 1 + SECRET_LEN;

/// A fresh random S.
pub fn new_secret() -> Zeroizing<[u8; SECRET_LEN]> {
    let mut s = Zeroizing::new([0u8; SECRET_LEN]);
    rand::rngs::OsRng.fill_bytes(&mut s[..]);
    s
}

/// The passphrase that S locks the compliance key with: HKDF-SHA256 (no salt: S is uniformly
/// random), info [`LOCK_INFO`], 32 bytes, lower-case hex (64 characters).
pub fn lock_passphrase(secret: &[u8]) -> Password {
    let hk = Hkdf::<Sha256>::new(None, secret);
    let mut okm = Zeroizing::new([0u8; 32]);
    hk.expand(LOCK_INFO, &mut okm[..])
        .expect("32 bytes is a valid HKDF-SHA256 length");
    let hex = Zeroizing::new(hex::encode(&okm[..]));
    Password::from(hex.as_str())
}

/// The compliance key's TSK locked under S (armored), as the node stores it.
pub fn lock_key(key: &Cert, secret: &[u8]) -> Result<String, CryptoError> {
    wrap_secret_key(key, &lock_passphrase(secret))
}

/// The compliance key unlocked with S; a wrong S is [`CryptoError::WrongPassphrase`].
pub fn unlock_key(locked: &str, secret: &[u8]) -> Result<Cert, CryptoError> {
    unwrap_secret_key(locked, &lock_passphrase(secret))
}

/// `share` encrypted to `recipient`'s encryption keys (an officer's account key, or a request
/// key), armored. Unsigned: who made it is what the node's log says (the admin at setup, the
/// approving officer at approval), and a wrong share is caught when the key is unlocked.
pub fn wrap_share(share: &[u8], recipient: &Cert, now: SystemTime) -> Result<String, CryptoError> {
    let policy = StandardPolicy::new();
    let keys: Vec<_> = recipient
        .keys()
        .with_policy(&policy, now)
        .supported()
        .alive()
        .revoked(false)
        .for_transport_encryption()
        .for_storage_encryption()
        .collect();
    if keys.is_empty() {
        return Err(CryptoError::Malformed(
            "the recipient's certificate has no usable encryption key".into(),
        ));
    }
    let mut out = Vec::new();
    let message = Message::new(&mut out);
    let message = Armorer::new(message)
        .build()
        .map_err(|e| CryptoError::other("armoring a share", e))?;
    let message = Encryptor::for_recipients(message, keys)
        .build()
        .map_err(|e| CryptoError::other("encrypting a share", e))?;
    let mut message = LiteralWriter::new(message)
        .build()
        .map_err(|e| CryptoError::other("encrypting a share", e))?;
    std::io::Write::write_all(&mut message, share)
        .map_err(|e| CryptoError::other("encrypting a share", e))?;
    message
        .finalize()
        .map_err(|e| CryptoError::other("encrypting a share", e))?;
    String::from_utf8(out).map_err(|e| CryptoError::other("armor", e))
}

/// A share wrapped by [`wrap_share`] (or the web app) for `me` (unlocked), checked to be no
/// longer than an x byte and S.
pub fn unwrap_share(
    wrapped: &str,
    me: &Cert,
    now: SystemTime,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let policy = StandardPolicy::new();
    let mut out = Zeroizing::new(Vec::new());
    let mut input = std::io::Cursor::new(wrapped.as_bytes().to_vec());
    open_unsigned(me, &policy, now, &mut input, &mut *out)?;
    if out.len() < 2 || out.len() > MAX_SHARE {
        return Err(CryptoError::Malformed(format!(
            "a share is 2 to {MAX_SHARE} bytes, not {}",
            out.len()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::generate_user_key;
    use crate::shamir;

    #[test]
    fn the_lock_passphrase_is_hkdf_sha256_of_s_in_hex() {
        // Fixed vector, the same in webui/test/unit/shamir.test.mjs.
        let s: Vec<u8> = (0u8..32).collect();
        let p = lock_passphrase(&s);
        let text = p.map(|b| String::from_utf8(b.to_vec()).unwrap());
        assert_eq!(text.len(), 64);
        assert_eq!(
            text,
            include_str!("../tests/data/custody/lock-passphrase.txt").trim()
        );
    }

    #[test]
    fn two_of_three_unlock_the_key_one_share_or_a_changed_share_do_not() {
        let now = SystemTime::now();
        let (key, _) =
            generate_user_key("compliance@alpha.test", Some("Compliance archive"), now).unwrap();
        let officers: Vec<Cert> = (1..=3)
            .map(|i| {
                generate_user_key(&format!("officer{i}@alpha.test"), None, now)
                    .unwrap()
                    .0
            })
            .collect();
        let s = new_secret();
        let locked = lock_key(&key, &s[..]).unwrap();
        let shares = shamir::split(&s[..], 2, 3).unwrap();
        let wrapped: Vec<String> = shares
            .iter()
            .zip(&officers)
            .map(|(share, o)| wrap_share(share, o, now).unwrap())
            .collect();
        assert!(wrapped[0].starts_with("-----BEGIN PGP MESSAGE-----"));

        // Officer 1 requests with a fresh request key; officer 3 re-wraps their share for it.
        let (request_key, _) = generate_user_key("request@alpha.test", None, now).unwrap();
        let own = unwrap_share(&wrapped[0], &officers[0], now).unwrap();
        let third = unwrap_share(&wrapped[2], &officers[2], now).unwrap();
        let rewrapped = wrap_share(&third, &request_key, now).unwrap();
        let third = unwrap_share(&rewrapped, &request_key, now).unwrap();
        let s2 = shamir::combine(&[&own[..], &third[..]]).unwrap();
        let unlocked = unlock_key(&locked, &s2).unwrap();
        assert_eq!(unlocked.fingerprint(), key.fingerprint());
        assert!(
            unlocked
                .keys()
                .secret()
                .all(|k| k.key().has_unencrypted_secret())
        );

        // Officer 1 cannot read officer 2's share.
        assert!(unwrap_share(&wrapped[1], &officers[0], now).is_err());
        // A changed share gives a wrong S that the lock refuses.
        let mut changed = third.to_vec();
        changed[7] ^= 0x80;
        let wrong = shamir::combine(&[&own[..], &changed[..]]).unwrap();
        assert_ne!(&wrong[..], &s[..]);
        assert!(matches!(
            unlock_key(&locked, &wrong),
            Err(CryptoError::WrongPassphrase)
        ));
        // The locked TSK holds no usable secret.
        let parsed = <Cert as openpgp::parse::Parse<Cert>>::from_bytes(locked.as_bytes()).unwrap();
        assert!(
            parsed
                .keys()
                .secret()
                .all(|k| !k.key().has_unencrypted_secret())
        );
    }
}
