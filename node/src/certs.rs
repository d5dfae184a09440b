//! Turning a parsed certificate into what storage indexes it by.

use sequoia_openpgp::Cert;

use crate::crypto::{self, CryptoError};
use crate::storage::CertRecord;

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
