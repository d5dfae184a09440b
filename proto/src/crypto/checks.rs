//! Checks the node and the client make on certificates they are handed: that a certificate
//! is fit to be an enrolled user's, that a "wrapped" key really is wrapped (the node must never
//! store a usable secret key), and that the organisation CA vouches for an address; and the
//! time both sides give a new certification ([`after_previous_signatures`]).

use std::time::SystemTime;

use sequoia_openpgp::Cert;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::policy::Policy;
use sequoia_openpgp::types::RevocationStatus;

use super::CryptoError;

/// The lowercased e-mail address of a user ID, if it has one.
fn email_of(uid: &sequoia_openpgp::packet::UserID) -> Option<String> {
    uid.email_normalized().ok().flatten()
}

/// A user certificate is acceptable for enrolment: OpenPGP v4 (GnuPG 2.2 reads it), valid
/// under `policy` at `now`, not revoked, a self-signed user ID for `address`, a signing key and
/// an encryption key. Bounded, so one enrolment cannot store an arbitrarily large blob.
pub fn check_user_cert(
    cert: &Cert,
    address: &str,
    policy: &dyn Policy,
    now: SystemTime,
) -> Result<(), CryptoError> {
    let bad = |m: &str| Err(CryptoError::Malformed(m.to_owned()));
    if cert.primary_key().key().version() != 4 {
        return bad("the key must be OpenPGP version 4");
    }
    if cert.userids().count() > 8 || cert.keys().count() > 8 {
        return bad("too many user IDs or subkeys");
    }
    // Every user ID names the enrolled address: the organisation's directory serves this key
    // for each address on it, and a second one would be a claim nobody checked.
    if let Some(other) = cert
        .userids()
        .find(|u| email_of(u.userid()).as_deref() != Some(address))
    {
        return Err(CryptoError::Malformed(format!(
            "the user ID {:?} is not for {address}: a key is enrolled with user IDs for its \
             own address only",
            String::from_utf8_lossy(other.userid().value())
        )));
    }
    let vc = cert
        .with_policy(policy, now)
        .map_err(|e| CryptoError::Malformed(format!("not valid now: {e}")))?;
    if let RevocationStatus::Revoked(_) = vc.revocation_status() {
        return bad("the key is revoked");
    }
    if vc.alive().is_err() {
        return bad("the key has expired");
    }
    if !vc
        .userids()
        .any(|u| email_of(u.userid()).as_deref() == Some(address))
    {
        return Err(CryptoError::Malformed(format!(
            "no valid user ID for {address}"
        )));
    }
    if vc
        .keys()
        .for_signing()
        .alive()
        .revoked(false)
        .next()
        .is_none()
    {
        return bad("no valid signing key");
    }
    if vc
        .keys()
        .for_transport_encryption()
        .for_storage_encryption()
        .alive()
        .revoked(false)
        .next()
        .is_none()
    {
        return bad("no valid encryption key");
    }
    Ok(())
}

/// `armored` is the secret-key counterpart of `cert`, and every piece of secret key material in
/// it is encrypted (so the node, which stores it, cannot use it).
pub fn check_wrapped_key(armored: &str, cert: &Cert) -> Result<(), CryptoError> {
    if armored.len() > 64 * 1024 {
        return Err(CryptoError::Malformed(
            "the wrapped key is too large".into(),
        ));
    }
    let tsk = Cert::from_bytes(armored.as_bytes())
        .map_err(|e| CryptoError::Malformed(format!("not an OpenPGP key: {e}")))?;
    if tsk.fingerprint() != cert.fingerprint() {
        return Err(CryptoError::Malformed(
            "the wrapped key belongs to another certificate".into(),
        ));
    }
    if !tsk.primary_key().key().has_secret() {
        return Err(CryptoError::Malformed(
            "the wrapped key holds no secret key".into(),
        ));
    }
    for k in tsk.keys() {
        if k.key().has_unencrypted_secret() {
            return Err(CryptoError::Malformed(
                "secret key material is not encrypted: wrap it with the password-derived key first"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// Whether the CA `ca` has an active, valid certification (at `now`, under `policy`) on a user
/// ID of `cert` for `address`. This is the trust anchor of the single-organisation case: the
/// client pins its CA and accepts a colleague's key only with the CA's certification.
pub fn ca_certifies(
    ca: &Cert,
    cert: &Cert,
    address: &str,
    policy: &dyn Policy,
    now: SystemTime,
) -> bool {
    let Ok(vc) = cert.with_policy(policy, now) else {
        return false;
    };
    if vc.alive().is_err() || matches!(vc.revocation_status(), RevocationStatus::Revoked(_)) {
        return false;
    }
    // The CA itself must be valid, alive and not revoked at `now`.
    match ca.with_policy(policy, now) {
        Ok(vca)
            if vca.alive().is_ok()
                && !matches!(vca.revocation_status(), RevocationStatus::Revoked(_)) => {}
        _ => return false,
    }
    let ca_key = ca.primary_key().key().role_as_unspecified();
    vc.userids()
        .filter(|u| email_of(u.userid()).as_deref() == Some(address))
        .any(|u| {
            u.amalgamation()
                .active_certifications_by_key(policy, now, ca_key)
                .next()
                .is_some()
        })
}

/// A creation time for a new signature by `signer` over `target`'s user IDs for `address`
/// that is strictly later than every signature `signer` already made there.
///
/// OpenPGP times have one-second resolution, and a retraction only supersedes certifications
/// older than itself (and a renewed certification only a retraction older than itself). A
/// retraction made in the same second as the certification it retracts would not take.
pub fn after_previous_signatures(
    signer: &sequoia_openpgp::Fingerprint,
    target: &Cert,
    address: &str,
    now: std::time::SystemTime,
) -> std::time::SystemTime {
    let signer = sequoia_openpgp::KeyHandle::from(signer.clone());
    let newest = target
        .userids()
        .filter(|u| u.userid().email_normalized().ok().flatten().as_deref() == Some(address))
        .flat_map(|u| {
            u.certifications()
                .chain(u.other_revocations())
                .filter(|s| s.get_issuers().iter().any(|i| i.aliases(&signer)))
                .filter_map(|s| s.signature_creation_time())
                .collect::<Vec<_>>()
        })
        .max();
    // Signatures store whole seconds: compare at that resolution.
    let secs = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    match newest {
        Some(t) if secs(t) >= secs(now) => t + std::time::Duration::from_secs(1),
        _ => now,
    }
}
