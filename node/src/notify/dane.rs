//! DANE for SMTP (RFC 7672, RFC 6698, RFC 7671): which TLSA records a mail server's
//! certificate chain must match, and whether it does. No I/O: `mx.rs` looks the records up
//! (through a validating resolver, trusting its AD bit), does the TLS handshake, and hands
//! the chain the server sent here; the reference time is passed in.
//!
//! Usable records (RFC 7672 §3.1): DANE-EE(3) and DANE-TA(2), selector Cert(0) or SPKI(1),
//! matching Full(0), SHA2-256(1) or SHA2-512(2). PKIX-TA(0) and PKIX-EE(1) are unusable for
//! SMTP, as are unknown values and records whose data cannot be what they say (a digest of
//! the wrong length, nothing at all).
//!
//! - DANE-EE: the server's own certificate (or its public key) matches; its names and dates
//!   are not checked (RFC 7672 §3.1.1).
//! - DANE-TA: a certificate the server sent after its own matches (RFC 7672 §3.1.2 has the
//!   server include the trust anchor); the chain from the server's certificate up to it is
//!   verified by OpenSSL with that certificate as the only trust anchor, at the reference
//!   time, and the server's certificate must be valid for the MX host name (RFC 7672 §3.2.2).

use openssl::hash::MessageDigest;
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509, X509PurposeId, X509StoreContext};

/// One TLSA record, as published (`usage selector matching data`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

/// DANE-TA: the record names a trust anchor (RFC 6698 §2.1.1).
pub const DANE_TA: u8 = 2;
/// DANE-EE: the record names the server's own certificate or key.
pub const DANE_EE: u8 = 3;

impl Tlsa {
    /// Whether an SMTP client may use the record (RFC 7672 §3.1; RFC 7671 §4: malformed
    /// records are unusable).
    pub fn is_usable(&self) -> bool {
        let usage = matches!(self.usage, DANE_TA | DANE_EE);
        let selector = matches!(self.selector, 0 | 1);
        let data = match self.matching {
            0 => !self.data.is_empty(),
            1 => self.data.len() == 32,
            2 => self.data.len() == 64,
            _ => false,
        };
        usage && selector && data
    }

    /// Whether `cert` matches the record's selector and matching type.
    fn matches(&self, cert: &X509) -> bool {
        let selected = match self.selector {
            0 => cert.to_der(),
            _ => cert.public_key().and_then(|k| k.public_key_to_der()),
        };
        let Ok(selected) = selected else {
            return false;
        };
        let digest = match self.matching {
            0 => return selected == self.data,
            1 => MessageDigest::sha256(),
            _ => MessageDigest::sha512(),
        };
        openssl::hash::hash(digest, &selected).is_ok_and(|d| *d == *self.data)
    }
}

/// The usable records of a TLSA RRset.
pub fn usable(records: &[Tlsa]) -> Vec<Tlsa> {
    records.iter().filter(|r| r.is_usable()).cloned().collect()
}

/// How the server's chain was authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Matched {
    /// Its own certificate or key matched a DANE-EE record.
    EndEntity,
    /// Its chain leads to a certificate that matched a DANE-TA record, and names the host.
    TrustAnchor,
}

/// Why the server's chain does not authenticate it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Mismatch {
    #[error("the TLSA records hold no usable record")]
    NoUsableRecord,
    #[error("the server sent no certificate")]
    NoCertificate,
    #[error("the server sent a certificate that cannot be read")]
    Unreadable,
    #[error("the server's certificate matches none of the TLSA records")]
    NoMatch,
}

/// Whether `chain` (DER, the server's own certificate first, as the server sent it)
/// authenticates `host` under `records`, at `now` (Unix seconds).
pub fn verify(
    records: &[Tlsa],
    chain: &[Vec<u8>],
    host: &str,
    now: i64,
) -> Result<Matched, Mismatch> {
    let records = usable(records);
    if records.is_empty() {
        return Err(Mismatch::NoUsableRecord);
    }
    if chain.is_empty() {
        return Err(Mismatch::NoCertificate);
    }
    let certs = chain
        .iter()
        .map(|der| X509::from_der(der))
        .collect::<Result<Vec<X509>, _>>()
        .map_err(|_| Mismatch::Unreadable)?;
    let leaf = &certs[0];
    if records
        .iter()
        .any(|r| r.usage == DANE_EE && r.matches(leaf))
    {
        return Ok(Matched::EndEntity);
    }
    for r in records.iter().filter(|r| r.usage == DANE_TA) {
        for (i, anchor) in certs.iter().enumerate().skip(1) {
            if r.matches(anchor) && chain_verifies(&certs[..i], anchor, host, now) {
                return Ok(Matched::TrustAnchor);
            }
        }
    }
    Err(Mismatch::NoMatch)
}

/// Whether `certs` (server's certificate first, then the intermediates the server sent
/// before the anchor) chain to `anchor`, valid at `now` for `host` as a TLS server.
fn chain_verifies(certs: &[X509], anchor: &X509, host: &str, now: i64) -> bool {
    let run = || -> Result<bool, openssl::error::ErrorStack> {
        let mut store = X509StoreBuilder::new()?;
        store.add_cert(anchor.clone())?;
        let mut param = openssl::x509::verify::X509VerifyParam::new()?;
        // The anchor need not be self-signed (RFC 7671 §5.2.2).
        param.set_flags(X509VerifyFlags::PARTIAL_CHAIN)?;
        param.set_purpose(X509PurposeId::SSL_SERVER)?;
        param.set_host(host)?;
        param.set_time(now as _);
        store.set_param(&param)?;
        let store = store.build();
        let mut untrusted = Stack::new()?;
        for c in &certs[1..] {
            untrusted.push(c.clone())?;
        }
        let mut ctx = X509StoreContext::new()?;
        ctx.init(&store, &certs[0], &untrusted, |c| c.verify_cert())
    };
    run().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use openssl::pkey::{PKey, Private};
    use openssl::x509::X509NameBuilder;
    use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};

    /// 2026-12-07, inside every test certificate's validity.
    const NOW: i64 = 1_796_601_600;

    fn key() -> PKey<Private> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
    }

    /// A certificate for `cn` (and DNS name `san`, when given) with `key`, signed by
    /// `issuer` (else itself), valid from `from` for `days`.
    fn cert(
        cn: &str,
        san: Option<&str>,
        key: &PKey<Private>,
        issuer: Option<(&X509, &PKey<Private>)>,
        ca: bool,
        from: i64,
        days: i64,
    ) -> X509 {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let serial = BigNum::from_u32(cn.len() as u32 + days as u32).unwrap();
        b.set_serial_number(&serial.to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(issuer.map_or(&*name, |(c, _)| c.subject_name()))
            .unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(from).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(from + days * 86_400).unwrap())
            .unwrap();
        if ca {
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                .unwrap();
        }
        if let Some(san) = san {
            let ext = SubjectAlternativeName::new()
                .dns(san)
                .build(&b.x509v3_context(issuer.map(|(c, _)| &**c), None))
                .unwrap();
            b.append_extension(ext).unwrap();
        }
        b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sha256())
            .unwrap();
        b.build()
    }

    struct Pki {
        ca: X509,
        /// mx.tls.test, issued by `ca`, valid now.
        leaf: X509,
        /// mx.tls.test, self-signed, expired a year ago.
        expired_self: X509,
        /// mx.elsewhere.test, issued by `ca`.
        other_name: X509,
    }

    fn pki() -> Pki {
        let (ca_key, leaf_key, self_key, other_key) = (key(), key(), key(), key());
        let ca = cert("Test CA", None, &ca_key, None, true, NOW - 86_400, 3650);
        let leaf = cert(
            "mx.tls.test",
            Some("mx.tls.test"),
            &leaf_key,
            Some((&ca, &ca_key)),
            false,
            NOW - 86_400,
            90,
        );
        let expired_self = cert(
            "mx.tls.test",
            Some("mx.tls.test"),
            &self_key,
            None,
            false,
            NOW - 800 * 86_400,
            365,
        );
        let other_name = cert(
            "mx.elsewhere.test",
            Some("mx.elsewhere.test"),
            &other_key,
            Some((&ca, &ca_key)),
            false,
            NOW - 86_400,
            90,
        );
        Pki {
            ca,
            leaf,
            expired_self,
            other_name,
        }
    }

    /// The record `usage selector matching` for `cert`, computed the way `ldns`/`openssl`
    /// tooling computes it.
    fn record(usage: u8, selector: u8, matching: u8, cert: &X509) -> Tlsa {
        let selected = if selector == 0 {
            cert.to_der().unwrap()
        } else {
            cert.public_key().unwrap().public_key_to_der().unwrap()
        };
        let data = match matching {
            0 => selected,
            1 => openssl::sha::sha256(&selected).to_vec(),
            _ => openssl::sha::sha512(&selected).to_vec(),
        };
        Tlsa {
            usage,
            selector,
            matching,
            data,
        }
    }

    fn der(certs: &[&X509]) -> Vec<Vec<u8>> {
        certs.iter().map(|c| c.to_der().unwrap()).collect()
    }

    #[test]
    fn dane_ee_matches_by_every_selector_and_matching_type_without_names_or_dates() {
        let p = pki();
        for selector in 0..=1 {
            for matching in 0..=2 {
                // The expired self-signed certificate: DANE-EE does not look at its dates.
                let r = record(DANE_EE, selector, matching, &p.expired_self);
                let chain = der(&[&p.expired_self]);
                assert_eq!(
                    verify(std::slice::from_ref(&r), &chain, "mx.tls.test", NOW),
                    Ok(Matched::EndEntity),
                    "3 {selector} {matching}"
                );
                // Nor at its names.
                assert_eq!(
                    verify(&[r], &chain, "mail.other.test", NOW),
                    Ok(Matched::EndEntity),
                    "3 {selector} {matching}"
                );
            }
        }
    }

    #[test]
    fn dane_ta_matches_by_every_selector_and_matching_type_and_checks_the_name_and_dates() {
        let p = pki();
        let chain = der(&[&p.leaf, &p.ca]);
        for selector in 0..=1 {
            for matching in 0..=2 {
                let r = record(DANE_TA, selector, matching, &p.ca);
                let what = format!("2 {selector} {matching}");
                assert_eq!(
                    verify(std::slice::from_ref(&r), &chain, "mx.tls.test", NOW),
                    Ok(Matched::TrustAnchor),
                    "{what}"
                );
                // The server's certificate does not name the host.
                assert_eq!(
                    verify(
                        std::slice::from_ref(&r),
                        &der(&[&p.other_name, &p.ca]),
                        "mx.tls.test",
                        NOW
                    ),
                    Err(Mismatch::NoMatch),
                    "{what}"
                );
                // Long after the server's certificate expired.
                assert_eq!(
                    verify(
                        std::slice::from_ref(&r),
                        &chain,
                        "mx.tls.test",
                        NOW + 400 * 86_400
                    ),
                    Err(Mismatch::NoMatch),
                    "{what}"
                );
                // The anchor must be in the chain the server sent.
                assert_eq!(
                    verify(&[r], &der(&[&p.leaf]), "mx.tls.test", NOW),
                    Err(Mismatch::NoMatch),
                    "{what}"
                );
            }
        }
    }

    #[test]
    fn a_record_for_another_certificate_or_key_does_not_match() {
        let p = pki();
        let table = [
            // DANE-EE for another server's certificate.
            (record(DANE_EE, 1, 1, &p.other_name), der(&[&p.leaf, &p.ca])),
            (record(DANE_EE, 0, 2, &p.other_name), der(&[&p.leaf, &p.ca])),
            // DANE-EE for the CA: the end entity is what must match.
            (record(DANE_EE, 0, 1, &p.ca), der(&[&p.leaf, &p.ca])),
            // DANE-TA for the server's own certificate: an anchor comes after it.
            (record(DANE_TA, 0, 1, &p.leaf), der(&[&p.leaf, &p.ca])),
            // DANE-TA for a CA that did not sign the chain.
            (record(DANE_TA, 0, 1, &p.ca), der(&[&p.expired_self, &p.ca])),
        ];
        for (i, (r, chain)) in table.into_iter().enumerate() {
            assert_eq!(
                verify(&[r], &chain, "mx.tls.test", NOW),
                Err(Mismatch::NoMatch),
                "row {i}"
            );
        }
        // One matching record among others is enough.
        let records = [
            record(DANE_EE, 1, 1, &p.other_name),
            record(DANE_EE, 1, 1, &p.leaf),
        ];
        assert_eq!(
            verify(&records, &der(&[&p.leaf]), "mx.tls.test", NOW),
            Ok(Matched::EndEntity)
        );
    }

    #[test]
    fn pkix_usages_unknown_values_and_malformed_data_are_unusable() {
        let p = pki();
        let good = record(DANE_EE, 1, 1, &p.leaf);
        let with = |f: &dyn Fn(&mut Tlsa)| {
            let mut r = good.clone();
            f(&mut r);
            r
        };
        let unusable = [
            with(&|r| r.usage = 0),
            with(&|r| r.usage = 1),
            with(&|r| r.usage = 4),
            with(&|r| r.selector = 2),
            with(&|r| r.matching = 3),
            with(&|r| r.data.truncate(31)),
            with(&|r| r.data.push(0)),
            with(&|r| {
                r.matching = 2;
            }),
            with(&|r| {
                r.matching = 0;
                r.data.clear();
            }),
        ];
        assert!(good.is_usable());
        for (i, r) in unusable.iter().enumerate() {
            assert!(!r.is_usable(), "row {i}: {r:?}");
        }
        // Only unusable records: nothing authenticates, even a PKIX-EE record of the very
        // certificate.
        let chain = der(&[&p.leaf, &p.ca]);
        let mut only = unusable.to_vec();
        only.push(record(1, 0, 1, &p.leaf));
        only.push(record(0, 0, 1, &p.ca));
        assert_eq!(
            verify(&only, &chain, "mx.tls.test", NOW),
            Err(Mismatch::NoUsableRecord)
        );
        assert!(usable(&only).is_empty());
        // Unusable records beside a usable one are ignored.
        only.push(good);
        assert_eq!(
            verify(&only, &chain, "mx.tls.test", NOW),
            Ok(Matched::EndEntity)
        );
    }

    #[test]
    fn no_chain_or_an_unreadable_one_matches_nothing() {
        let p = pki();
        let r = [record(DANE_EE, 0, 0, &p.leaf)];
        assert_eq!(
            verify(&r, &[], "mx.tls.test", NOW),
            Err(Mismatch::NoCertificate)
        );
        let mut garbled = p.leaf.to_der().unwrap();
        garbled.truncate(garbled.len() / 2);
        assert_eq!(
            verify(&r, &[garbled], "mx.tls.test", NOW),
            Err(Mismatch::Unreadable)
        );
    }
}
