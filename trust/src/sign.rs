//! Builders for the signatures users and CAs make.
//!
//! Pure functions: they take the signer's certificate with an *unlocked*
//! secret primary key, the certificate to sign and the signature time, and
//! return the signed certificate with the new signature merged in (the
//! node stores that and calls [`crate::TrustCache::update_cert`]). They do
//! not read the clock: `now` becomes the signature creation time.
//!
//! Every signature is a third-party signature over a user ID, made by the
//! signer's primary key (sequoia-wot only accepts certifications by
//! primary keys):
//!
//! | builder | type | trust depth / amount | regex |
//! |---|---|---|---|
//! | [`certify`] | 0x10 generic certification | none (plain) | — |
//! | [`certify_compliance`] (CA → compliance key) | 0x10 with notation `compliance@sealpost.org` | none | — |
//! | [`make_introducer`] | 0x10 with trust signature | 1 / 120 | optional domain |
//! | [`tsig_on_ca`] (user → own CA) | 0x10 with trust signature | 1 / 120 | CA's domain |
//! | [`bridge`] (CA → other CA) | 0x10 with trust signature | 1 / 120 | other domain |
//! | [`retract`], [`revoke_bridge`] | 0x30 certification revocation | — | — |
//!
//! A revocation supersedes every certification the same signer made
//! earlier on that user ID (sequoia-wot compares creation times, to the
//! second): certify again later to undo it.

use std::time::SystemTime;

use sequoia_openpgp as openpgp;

use openpgp::Packet;
use openpgp::cert::prelude::*;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::types::{ReasonForRevocation, SignatureType};

use crate::{CA_LOCAL_PART, TrustError, normalize_address};

/// The OpenPGP regular expression that scopes a trust signature to a
/// domain and its subdomains: `<[^>]+[@.]alpha\.test>$` for `alpha.test`.
///
/// The domain is lower-cased and every character other than ASCII letters,
/// digits and `-` is escaped. It matches user IDs of the form `<x@DOMAIN>`
/// and `Name <x@sub.DOMAIN>`. OpenPGP regexes are case-sensitive: Sealpost's
/// engine matches them against the user ID with its ASCII letters lowercased
/// too, so `<X@Sub.DOMAIN>` is in scope (tools that match as written, like
/// sequoia-wot alone, need lower-case user IDs, as Sealpost enrols them).
pub fn domain_regex(domain: &str) -> String {
    let mut escaped = String::with_capacity(domain.len() + 4);
    for c in domain.to_lowercase().chars() {
        if !(c.is_ascii_alphanumeric() || c == '-') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    format!("<[^>]+[@.]{escaped}>$")
}

/// The user's trust signature on their organisation CA: depth 1, amount
/// 120, scoped to `domain`, over the CA's `openpgp-ca@DOMAIN` user ID.
/// Returns the CA certificate with the signature merged in.
///
/// Sealpost itself makes the CA a root for its users; this signature is
/// what makes the same trust visible to sq/gpg, where the user's own key
/// is the only root.
pub fn tsig_on_ca(
    user: &Cert,
    ca: &Cert,
    domain: &str,
    now: SystemTime,
) -> Result<Cert, TrustError> {
    tsig_ca(user, ca, domain, now)
}

/// A bridge: CA `ca_signer` trust-signs `other_ca` (depth 1, amount 120),
/// scoped to `other_domain`, over its `openpgp-ca@OTHER_DOMAIN` user ID.
/// Returns `other_ca` with the signature merged in.
///
/// Depth 1 lets the other CA introduce its own users but not bridge on:
/// A → B → C gives A's users nothing about C.
pub fn bridge(
    ca_signer: &Cert,
    other_ca: &Cert,
    other_domain: &str,
    now: SystemTime,
) -> Result<Cert, TrustError> {
    tsig_ca(ca_signer, other_ca, other_domain, now)
}

/// Revokes a bridge: a certification revocation by `ca_signer` on
/// `other_ca`'s `openpgp-ca@OTHER_DOMAIN` user ID. Returns `other_ca` with
/// the revocation merged in.
pub fn revoke_bridge(
    ca_signer: &Cert,
    other_ca: &Cert,
    other_domain: &str,
    now: SystemTime,
) -> Result<Cert, TrustError> {
    let domain = check_domain(other_domain)?;
    retract(
        ca_signer,
        other_ca,
        &format!("{CA_LOCAL_PART}@{domain}"),
        now,
    )
}

/// A plain certification (0x10, full amount, not an introducer) by
/// `signer` of every user ID of `target` with `address`. Returns `target`
/// with the certification merged in.
///
/// Used by the CA at enrolment and by users who verified a contact
/// (fingerprint, QR code, Message Unlock Code).
pub fn certify(
    signer: &Cert,
    target: &Cert,
    address: &str,
    now: SystemTime,
) -> Result<Cert, TrustError> {
    let template = SignatureBuilder::new(SignatureType::GenericCertification);
    sign_userids(signer, target, address, template, now)
}

/// The notation a user's certification of a guest's key carries (docs/pickup.md, "Guests"):
/// how the user came to know the key. Its one value today is [`FIRST_CONTACT_MUC`].
pub const FIRST_CONTACT_NOTATION: &str = "first-contact@sealpost.org";
/// [`FIRST_CONTACT_NOTATION`]'s value: the key was made by whoever unlocked the user's message
/// with the Message Unlock Code the user passed on out of band.
pub const FIRST_CONTACT_MUC: &str = "message-unlock-code";

/// [`certify`] with the [`FIRST_CONTACT_NOTATION`] `how` (e.g. [`FIRST_CONTACT_MUC`]): a
/// plain certification that also says how the signer came to know the key, so that trust
/// explanations can show it.
pub fn certify_first_contact(
    signer: &Cert,
    target: &Cert,
    address: &str,
    how: &str,
    now: SystemTime,
) -> Result<Cert, TrustError> {
    use openpgp::packet::signature::subpacket::NotationDataFlags;
    let flags = NotationDataFlags::empty().set_human_readable();
    let template = SignatureBuilder::new(SignatureType::GenericCertification)
        .add_notation(FIRST_CONTACT_NOTATION, how, flags, false)
        .map_err(|e| TrustError::openpgp("notation", e))?;
    sign_userids(signer, target, address, template, now)
}

/// The CA's marking of its organisation's compliance key: a plain certification by `ca` of
/// `target`'s user ID(s) with `address` (`compliance@DOMAIN`) carrying the human-readable,
/// non-critical notation `compliance@sealpost.org` = `archive` (what
/// `sealpost_proto::crypto::compliance_key_of` looks for). Clients accept a compliance key
/// only with this certification by the CA they trust for that domain.
pub fn certify_compliance(
    ca: &Cert,
    target: &Cert,
    address: &str,
    now: SystemTime,
) -> Result<Cert, TrustError> {
    use openpgp::packet::signature::subpacket::NotationDataFlags;
    let flags = NotationDataFlags::empty().set_human_readable();
    let template = SignatureBuilder::new(SignatureType::GenericCertification)
        .add_notation("compliance@sealpost.org", "archive", flags, false)
        .map_err(|e| TrustError::openpgp("notation", e))?;
    sign_userids(ca, target, address, template, now)
}

/// How `signer` came to know `target` as `address`: the [`FIRST_CONTACT_NOTATION`] of the
/// newest certification `signer` made on a user ID of `target` with `address`, if it has one.
/// Reads what is there; checking the signature is the trust engine's work.
pub fn first_contact(
    target: &Cert,
    signer: &openpgp::Fingerprint,
    address: &str,
) -> Option<String> {
    let address = normalize_address(address).ok()?;
    let handle = openpgp::KeyHandle::from(signer.clone());
    target
        .userids()
        .filter(|u| u.userid().email_normalized().ok().flatten().as_deref() == Some(&address))
        .flat_map(|u| u.certifications())
        .filter(|s| s.get_issuers().iter().any(|i| i.aliases(&handle)))
        .max_by_key(|s| s.signature_creation_time())
        .and_then(|s| {
            s.notation(FIRST_CONTACT_NOTATION)
                .next()
                .map(<[u8]>::to_vec)
        })
        .and_then(|v| String::from_utf8(v).ok())
}

/// Makes `target` a trusted introducer for `signer`: a trust signature
/// (depth 1, amount 120) over `target`'s user ID(s) with `address`,
/// optionally scoped to `scope_domain`. Returns `target` with the
/// signature merged in.
///
/// The certification also authenticates `address` itself; the scope only
/// limits whom the introducer can introduce.
pub fn make_introducer(
    signer: &Cert,
    target: &Cert,
    address: &str,
    scope_domain: Option<&str>,
    now: SystemTime,
) -> Result<Cert, TrustError> {
    let mut template = SignatureBuilder::new(SignatureType::GenericCertification)
        .set_trust_signature(1, 120)
        .map_err(|e| TrustError::openpgp("trust signature", e))?;
    if let Some(domain) = scope_domain {
        let domain = check_domain(domain)?;
        template = template
            .set_regular_expression(domain_regex(&domain))
            .map_err(|e| TrustError::openpgp("regular expression", e))?;
    }
    sign_userids(signer, target, address, template, now)
}

/// Retracts `signer`'s certifications (plain or trust signatures) of
/// `target`'s user ID(s) with `address`: a certification revocation (0x30)
/// made at `now`, which supersedes the signer's earlier certifications of
/// that user ID. Returns `target` with the revocation merged in.
///
/// Used by users (withdrawing a personal certification or an introducer),
/// by admins (the CA revoking its certification of a leaver) and, through
/// [`revoke_bridge`], for bridges.
pub fn retract(
    signer: &Cert,
    target: &Cert,
    address: &str,
    now: SystemTime,
) -> Result<Cert, TrustError> {
    let template = SignatureBuilder::new(SignatureType::CertificationRevocation)
        .set_reason_for_revocation(ReasonForRevocation::Unspecified, b"certification retracted")
        .map_err(|e| TrustError::openpgp("reason for revocation", e))?;
    sign_userids(signer, target, address, template, now)
}

/// A depth-1, amount-120 trust signature on a CA's `openpgp-ca@DOMAIN`
/// user ID, scoped to the domain.
fn tsig_ca(signer: &Cert, ca: &Cert, domain: &str, now: SystemTime) -> Result<Cert, TrustError> {
    let domain = check_domain(domain)?;
    let template = SignatureBuilder::new(SignatureType::GenericCertification)
        .set_trust_signature(1, 120)
        .and_then(|b| b.set_regular_expression(domain_regex(&domain)))
        .map_err(|e| TrustError::openpgp("trust signature", e))?;
    sign_userids(
        signer,
        ca,
        &format!("{CA_LOCAL_PART}@{domain}"),
        template,
        now,
    )
}

/// Signs every user ID of `target` whose address is `address` with
/// `template` at `now`, using `signer`'s primary key, and merges the
/// signatures into `target`.
fn sign_userids(
    signer: &Cert,
    target: &Cert,
    address: &str,
    template: SignatureBuilder,
    now: SystemTime,
) -> Result<Cert, TrustError> {
    let address = normalize_address(address)?;
    let key = signer.primary_key().key().clone();
    if !key.has_unencrypted_secret() {
        return Err(TrustError::NoSigningKey(signer.fingerprint()));
    }
    let mut keypair = key
        .parts_into_secret()
        .and_then(|k| k.into_keypair())
        .map_err(|_| TrustError::NoSigningKey(signer.fingerprint()))?;
    // Always an explicit time: sequoia would otherwise read the clock.
    let template = template
        .set_signature_creation_time(now)
        .map_err(|e| TrustError::openpgp("signature time", e))?;

    let mut packets: Vec<Packet> = Vec::new();
    for ua in target.userids() {
        if ua.userid().email_normalized().ok().flatten().as_deref() != Some(address.as_str()) {
            continue;
        }
        let sig = template
            .clone()
            .sign_userid_binding(&mut keypair, target.primary_key().key(), ua.userid())
            .map_err(|e| TrustError::openpgp("signing", e))?;
        // The user ID goes in with its signature so the merge attaches the
        // third-party signature to that component.
        packets.push(ua.userid().clone().into());
        packets.push(sig.into());
    }
    if packets.is_empty() {
        return Err(TrustError::NoSuchUserId {
            fingerprint: target.fingerprint(),
            address,
        });
    }
    target
        .clone()
        .insert_packets(packets)
        .map(|(cert, _)| cert)
        .map_err(|e| TrustError::openpgp("merging the signature", e))
}

/// Lower-cases a domain and checks it is a plausible DNS name (ASCII
/// letters, digits, `-`, dots between non-empty labels).
fn check_domain(domain: &str) -> Result<String, TrustError> {
    let d = domain.to_ascii_lowercase();
    let ok = !d.is_empty()
        && d.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(d)
    } else {
        Err(TrustError::InvalidDomain(domain.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_regex_escapes_dots_and_lowercases() {
        assert_eq!(domain_regex("alpha.test"), r"<[^>]+[@.]alpha\.test>$");
        assert_eq!(domain_regex("B.Example"), r"<[^>]+[@.]b\.example>$");
    }

    #[test]
    fn domains_are_checked() {
        assert_eq!(check_domain("Alpha.Test").unwrap(), "alpha.test");
        assert!(check_domain("").is_err());
        assert!(check_domain("a..b").is_err());
        assert!(check_domain("a b.test").is_err());
    }
}
