//! The compliance key check both sides make (docs/compliance.md, "Compliance key"): a
//! certificate is an organisation's compliance key only with a valid certification by that
//! organisation's CA, carrying the marking notation, on the user ID
//! `compliance@DOMAIN`. Never from unsigned data: an unmarked key in an envelope answer or an
//! organisation record is refused (the old PGP "additional decryption key" flaw was a key
//! named by an unsigned subpacket).
//!
//! Pure: the certificates, the policy and the reference time are passed in.

use std::time::SystemTime;

use sequoia_openpgp::policy::Policy;
use sequoia_openpgp::types::RevocationStatus;
use sequoia_openpgp::{Cert, KeyHandle};

/// The local part of a compliance key's address: `compliance@DOMAIN`.
pub const COMPLIANCE_LOCAL_PART: &str = "compliance";
/// The notation the CA's marking certification carries.
pub const COMPLIANCE_NOTATION: &str = "compliance@sealpost.org";
/// [`COMPLIANCE_NOTATION`]'s one value.
pub const COMPLIANCE_ARCHIVE: &str = "archive";

/// The user ID a compliance key carries: `Compliance archive <compliance@DOMAIN>`.
pub fn compliance_address(domain: &str) -> String {
    format!("{COMPLIANCE_LOCAL_PART}@{}", domain.to_ascii_lowercase())
}

/// Why a certificate is not `domain`'s compliance key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ComplianceKeyError {
    #[error("the key has no user ID for {address}")]
    NoUserId { address: String },
    #[error("the organisation CA of {domain} is not valid now")]
    CaInvalid { domain: String },
    #[error("the key is not valid now, revoked or expired: {why}")]
    KeyInvalid { why: String },
    #[error("the key has no encryption key valid now")]
    NoEncryptionKey,
    #[error(
        "no valid certification by the CA of {domain} marks the key as its compliance key \
         (notation {COMPLIANCE_NOTATION}={COMPLIANCE_ARCHIVE})"
    )]
    NotMarked { domain: String },
}

/// Checks that `cert` is `domain`'s compliance key as vouched for by `ca` (that domain's CA,
/// which the caller already trusts for it) at `now`; returns its encryption keys valid now.
pub fn compliance_key_of(
    cert: &Cert,
    ca: &Cert,
    domain: &str,
    policy: &dyn Policy,
    now: SystemTime,
) -> Result<Vec<KeyHandle>, ComplianceKeyError> {
    let address = compliance_address(domain);
    match ca.with_policy(policy, now) {
        Ok(vca)
            if vca.alive().is_ok()
                && !matches!(vca.revocation_status(), RevocationStatus::Revoked(_)) => {}
        _ => {
            return Err(ComplianceKeyError::CaInvalid {
                domain: domain.to_owned(),
            });
        }
    }
    let vc = cert
        .with_policy(policy, now)
        .map_err(|e| ComplianceKeyError::KeyInvalid { why: e.to_string() })?;
    if let RevocationStatus::Revoked(_) = vc.revocation_status() {
        return Err(ComplianceKeyError::KeyInvalid {
            why: "revoked".into(),
        });
    }
    if vc.alive().is_err() {
        return Err(ComplianceKeyError::KeyInvalid {
            why: "expired".into(),
        });
    }
    let uids: Vec<_> = vc
        .userids()
        .filter(|u| u.userid().email_normalized().ok().flatten().as_deref() == Some(&address))
        .collect();
    if uids.is_empty() {
        return Err(ComplianceKeyError::NoUserId { address });
    }
    let ca_key = ca.primary_key().key().role_as_unspecified();
    let ca_handle = KeyHandle::from(ca.fingerprint());
    let marked = uids.iter().any(|u| {
        let Some(marking) = u
            .amalgamation()
            .active_certifications_by_key(policy, now, ca_key)
            .filter(|sig| {
                sig.notation(COMPLIANCE_NOTATION)
                    .any(|v| v == COMPLIANCE_ARCHIVE.as_bytes())
            })
            .filter_map(|sig| sig.signature_creation_time())
            .max()
        else {
            return false;
        };
        // A later certification revocation by the CA (its retraction) ends the marking.
        let retracted = u
            .amalgamation()
            .other_revocations()
            .filter(|sig| sig.get_issuers().iter().any(|i| i.aliases(&ca_handle)))
            .filter(|sig| {
                sig.signature_creation_time()
                    .is_some_and(|t| t >= marking && t <= now)
            })
            .any(|sig| {
                sig.clone()
                    .verify_userid_revocation(ca_key, cert.primary_key().key(), u.userid())
                    .is_ok()
            });
        !retracted
    });
    if !marked {
        return Err(ComplianceKeyError::NotMarked {
            domain: domain.to_owned(),
        });
    }
    let keys = super::encryption_key_handles(cert, policy, now);
    if keys.is_empty() {
        return Err(ComplianceKeyError::NoEncryptionKey);
    }
    Ok(keys)
}
