//! What a ciphertext and a recipient's certificate show without decrypting anything: the
//! recipients a message is encrypted to, and the keys a sender must encrypt to.

use std::io::Read;
use std::time::SystemTime;

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::parse::{PacketParser, PacketParserResult, Parse};
use openpgp::policy::Policy;
use openpgp::types::RevocationStatus;
use openpgp::{Cert, Fingerprint, KeyHandle, Packet};

use super::CryptoError;

/// Checks the whole certificate (not just a key) is usable at `now`:
/// the primary key's binding is valid under `policy`, it is not revoked
/// and not expired.  Sequoia's key iterators check keys only.
pub fn valid_cert<'a>(
    cert: &'a Cert,
    policy: &'a dyn Policy,
    now: SystemTime,
) -> Option<ValidCert<'a>> {
    let vc = cert.with_policy(policy, now).ok()?;
    if vc.alive().is_err() {
        return None;
    }
    if let RevocationStatus::Revoked(_) = vc.revocation_status() {
        return None;
    }
    Some(vc)
}

/// Key handles (fingerprints) of the subkeys of `cert` that are valid
/// for transport or storage encryption under `policy` at `now`.  Empty
/// if the certificate itself is invalid, expired or revoked.
pub fn encryption_key_handles(cert: &Cert, policy: &dyn Policy, now: SystemTime) -> Vec<KeyHandle> {
    encryption_keys(cert, policy, now)
        .into_iter()
        .flatten()
        .map(|ka| KeyHandle::from(ka.key().fingerprint()))
        .collect()
}

/// The subkeys of `cert` a message is encrypted to at `now`: for transport or storage
/// encryption, alive, not revoked, of a supported algorithm; `None` if the certificate itself
/// is not valid then ([`valid_cert`]). The one rule for the sender who encrypts and for the
/// node that checks a message was encrypted to everyone.
pub fn encryption_keys<'a>(
    cert: &'a Cert,
    policy: &'a dyn Policy,
    now: SystemTime,
) -> Option<impl Iterator<Item = ValidErasedKeyAmalgamation<'a, openpgp::packet::key::PublicParts>>>
{
    let vc = valid_cert(cert, policy, now)?;
    Some(
        vc.keys()
            .for_transport_encryption()
            .for_storage_encryption()
            .alive()
            .revoked(false)
            .supported(),
    )
}

/// Fingerprints of the certs in `required` none of whose
/// [`encryption_key_handles`] appears among `recipients`.  Key IDs and
/// fingerprints are compared with [`KeyHandle::aliases`], since v4
/// PKESKs carry only key IDs.  A cert with no usable encryption key is
/// always reported missing.
pub fn missing_recipients<'a>(
    recipients: &[KeyHandle],
    required: impl IntoIterator<Item = &'a Cert>,
    policy: &dyn Policy,
    now: SystemTime,
) -> Vec<Fingerprint> {
    let handles: Vec<(Fingerprint, Vec<KeyHandle>)> = required
        .into_iter()
        .map(|cert| {
            (
                cert.fingerprint(),
                encryption_key_handles(cert, policy, now),
            )
        })
        .collect();
    missing_recipients_among(
        recipients,
        handles.iter().map(|(f, h)| (f.clone(), h.as_slice())),
    )
}

/// [`missing_recipients`] with each required certificate's [`encryption_key_handles`]
/// already worked out.
pub fn missing_recipients_among<'a>(
    recipients: &[KeyHandle],
    required: impl IntoIterator<Item = (Fingerprint, &'a [KeyHandle])>,
) -> Vec<Fingerprint> {
    required
        .into_iter()
        .filter(|(_, handles)| {
            !handles
                .iter()
                .any(|h| recipients.iter().any(|r| r.aliases(h)))
        })
        .map(|(fingerprint, _)| fingerprint)
        .collect()
}

/// Recipient key handles visible in a binary ciphertext without
/// decrypting it.
///
/// Parses packets from the start until the first encryption container
/// (SEIPD v1 or v2) and stops there without reading the encrypted body:
/// only the first packets (plus one read-ahead buffer) are consumed,
/// which keeps this cheap on very large messages.  Marker packets are
/// skipped.  Errors ([`CryptoError::Malformed`]) if the input is not an
/// OpenPGP message, has no PKESK, has an anonymous (wildcard)
/// recipient, has an SKESK (password-encrypted), or no encryption
/// container follows the PKESKs.
pub fn pkesk_recipients(
    ciphertext: &mut (dyn Read + Send + Sync),
) -> Result<Vec<KeyHandle>, CryptoError> {
    recipients_of(PacketParser::from_reader(ciphertext))
}

/// [`pkesk_recipients`] of a ciphertext held in memory (an inline part): parsed in place,
/// without the copy into a read-ahead buffer that a reader needs.
pub fn pkesk_recipients_of_bytes(ciphertext: &[u8]) -> Result<Vec<KeyHandle>, CryptoError> {
    recipients_of(PacketParser::from_bytes(ciphertext))
}

fn recipients_of(
    parser: openpgp::Result<PacketParserResult<'_>>,
) -> Result<Vec<KeyHandle>, CryptoError> {
    let mut ppr = parser.map_err(|e| CryptoError::malformed("not an OpenPGP message", e))?;
    let mut recipients = Vec::new();
    loop {
        let pp = match ppr {
            PacketParserResult::Some(pp) => pp,
            PacketParserResult::EOF(_) => {
                return Err(CryptoError::Malformed(
                    "no encryption container after the PKESK packets".into(),
                ));
            }
        };
        match &pp.packet {
            Packet::PKESK(pkesk) => match pkesk.recipient() {
                Some(handle) => recipients.push(handle),
                None => {
                    return Err(CryptoError::Malformed(
                        "anonymous (wildcard) recipient".into(),
                    ));
                }
            },
            Packet::SKESK(_) => {
                return Err(CryptoError::Malformed(
                    "password-encrypted (SKESK) messages are not accepted".into(),
                ));
            }
            Packet::SEIP(_) => {
                if recipients.is_empty() {
                    return Err(CryptoError::Malformed("no PKESK packet".into()));
                }
                // Stop here: dropping the parser does not read the
                // container's body.
                return Ok(recipients);
            }
            Packet::Marker(_) => {}
            Packet::Unknown(u) => {
                return Err(CryptoError::Malformed(format!(
                    "unparseable {} packet: {}",
                    u.tag(),
                    u.error()
                )));
            }
            p => {
                return Err(CryptoError::Malformed(format!(
                    "not an encrypted message: unexpected {} packet",
                    p.tag()
                )));
            }
        }
        ppr = pp
            .next()
            .map_err(|e| CryptoError::malformed("parsing message", e))?
            .1;
    }
}
