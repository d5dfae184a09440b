//! Turning a parsed certificate into what storage indexes it by.

use sequoia_openpgp::Cert;

use crate::crypto::{self, CryptoError};
use crate::storage::CertRecord;

/// The client dates its certifications by the same rule: `sealpost-proto`'s.
pub use crate::crypto::after_previous_signatures;

/// The storable form of `cert`: public parts only, armored, with its addresses and key handles.
pub fn record(cert: &Cert) -> Result<CertRecord, CryptoError> {
    let mut emails: Vec<String> = cert
        .userids()
        .filter_map(|u| u.userid().email_normalized().ok().flatten())
        .collect();
    emails.sort();
    emails.dedup();
    let mut handles = Vec::new();
    for k in cert.keys() {
        handles.push(k.key().fingerprint().to_hex());
        handles.push(k.key().keyid().to_hex());
    }
    Ok(CertRecord {
        fingerprint: cert.fingerprint().to_hex(),
        armored: crypto::cert_to_armored(cert)?,
        emails,
        handles,
    })
}

/// Did the organisation CA `ca` sign about this user ID of `cert` (a certification, or the
/// revocation of one), with a signature that verifies?
///
/// A revoked certification still counts: the binding was the organisation's, and whoever looks
/// the address up must see the revocation (a leaver's key).
fn ca_signed_user_id(
    cert: &Cert,
    ca: &Cert,
    ua: &sequoia_openpgp::cert::amalgamation::UserIDAmalgamation<'_>,
) -> bool {
    let (pk, uid) = (cert.primary_key().key(), ua.userid());
    ca.keys().any(|ka| {
        let signer = ka.key();
        let issued = |s: &&sequoia_openpgp::packet::Signature| {
            s.get_issuers()
                .iter()
                .any(|h| h.aliases(signer.key_handle()))
        };
        ua.certifications()
            .filter(issued)
            .any(|s| s.verify_userid_binding(signer, pk, uid).is_ok())
            || ua
                .other_revocations()
                .filter(issued)
                .any(|s| s.verify_userid_revocation(signer, pk, uid).is_ok())
    })
}

/// The addresses the organisation vouches for on `cert`: those of its user IDs that the CA
/// `ca` certified (every address of the CA's own certificate), lowercased.
///
/// This is what a key's owner (or an admin) may add a user ID for, and what the directory
/// serves the key for.
pub fn vouched_addresses(cert: &Cert, ca: &Cert) -> Vec<String> {
    let own = cert.fingerprint() == ca.fingerprint();
    let mut out: Vec<String> = cert
        .userids()
        .filter(|u| own || ca_signed_user_id(cert, ca, u))
        .filter_map(|u| u.userid().email_normalized().ok().flatten())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `cert` as the organisation publishes it: without the user IDs that name an address of
/// `domain` (or that name no parseable address but mention the domain) unless the CA `ca`
/// vouches for them.
///
/// The organisation's directory (WKD, VKS, HKP) and its federation answers speak for the
/// domain: a key is served for one of its addresses only when the organisation certified that
/// binding. Uploads cannot add such user IDs any more (the merge policy and enrolment refuse
/// them); this keeps whatever an older version stored, or any future hole, from being served.
pub fn published(cert: Cert, ca: &Cert, domain: &str) -> Cert {
    if cert.fingerprint() == ca.fingerprint() {
        return cert;
    }
    let suffix = format!("@{}", domain.to_ascii_lowercase());
    let claims_domain = |uid: &sequoia_openpgp::packet::UserID| match uid.email_normalized() {
        Ok(Some(a)) => a.ends_with(&suffix),
        // An address only another parser finds: judge it by its text.
        _ => String::from_utf8_lossy(uid.value())
            .to_ascii_lowercase()
            .contains(&suffix),
    };
    let unvouched: Vec<sequoia_openpgp::packet::UserID> = cert
        .userids()
        .filter(|u| claims_domain(u.userid()) && !ca_signed_user_id(&cert, ca, u))
        .map(|u| u.userid().clone())
        .collect();
    if unvouched.is_empty() {
        return cert;
    }
    cert.retain_userids(|u| !unvouched.contains(u.userid()))
}

/// [`published`] for an armored certificate: the same text when nothing is left out (so a
/// peer that compares texts sees no change), else the published certificate armored anew.
pub fn published_armored(armored: &str, ca: &Cert, domain: &str) -> Result<String, CryptoError> {
    let cert = crypto::cert_from_armored(armored)?;
    let published = published(cert.clone(), ca, domain);
    if published == cert {
        Ok(armored.to_owned())
    } else {
        crypto::cert_to_armored(&published)
    }
}

/// Does `cert` carry a user ID for `address` (normalised, compared without case)?
pub fn names_address(cert: &Cert, address: &str) -> bool {
    cert.userids().any(|u| {
        u.userid()
            .email_normalized()
            .ok()
            .flatten()
            .is_some_and(|a| a.eq_ignore_ascii_case(address))
    })
}
