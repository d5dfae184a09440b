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
