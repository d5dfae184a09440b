//! Certificates on the wire: serving them (ASCII-armored for HKP and VKS, binary for WKD,
//! public and exportable parts only) and reading the `keytext` of an HKP `POST /pks/add`.
//!
//! Pure. Nothing here looks at who signed what; see [`crate::merge`] for that.

use sequoia_openpgp::armor;
use sequoia_openpgp::cert::CertParser;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::serialize::Marshal;
use sequoia_openpgp::{Cert, Fingerprint, KeyHandle};

/// Why a `POST /pks/add` body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeytextError {
    #[error("missing 'keytext' form field")]
    Missing,
    #[error("'keytext' given more than once")]
    Duplicate,
    #[error("keytext too large: {bytes} bytes (at most {limit})")]
    TooLarge { bytes: usize, limit: usize },
    #[error("keytext holds no OpenPGP certificate")]
    NoCertificate,
    #[error("keytext holds more than one certificate; send one per request")]
    SeveralCertificates,
    #[error("keytext is not a valid OpenPGP certificate: {0}")]
    Malformed(String),
}

/// Serializes `certs` into one ASCII-armored public key block. Secret key material is stripped
/// and non-exportable signatures are left out (Sequoia's `export`), whatever the store holds.
pub fn armored(certs: &[Cert]) -> Result<Vec<u8>, sequoia_openpgp::anyhow::Error> {
    let mut w = armor::Writer::new(Vec::new(), armor::Kind::PublicKey)?;
    for cert in certs {
        cert.clone().strip_secret_key_material().export(&mut w)?;
    }
    Ok(w.finalize()?)
}

/// Serializes `certs` as concatenated binary certificates (what WKD serves), with the same
/// stripping as [`armored`].
pub fn binary(certs: &[Cert]) -> Result<Vec<u8>, sequoia_openpgp::anyhow::Error> {
    let mut out = Vec::new();
    for cert in certs {
        cert.clone().strip_secret_key_material().export(&mut out)?;
    }
    Ok(out)
}

/// Reads the one certificate in the `keytext` field of an `application/x-www-form-urlencoded`
/// body. `max_keytext_bytes` bounds the decoded field (armored or binary) before parsing.
pub fn parse_keytext(body: &[u8], max_keytext_bytes: usize) -> Result<Cert, KeytextError> {
    let mut keytext = None;
    for (name, value) in form_urlencoded::parse(body) {
        if name == "keytext" && keytext.replace(value).is_some() {
            return Err(KeytextError::Duplicate);
        }
    }
    let keytext = keytext.ok_or(KeytextError::Missing)?;
    if keytext.len() > max_keytext_bytes {
        return Err(KeytextError::TooLarge {
            bytes: keytext.len(),
            limit: max_keytext_bytes,
        });
    }
    if keytext.trim().is_empty() {
        return Err(KeytextError::NoCertificate);
    }
    let mut certs = CertParser::from_bytes(keytext.as_bytes())
        .map_err(|e| KeytextError::Malformed(e.to_string()))?;
    let first = certs
        .next()
        .ok_or(KeytextError::NoCertificate)?
        .map_err(|e| KeytextError::Malformed(e.to_string()))?;
    // What follows the first certificate decides. The parser yields the certificate it read
    // so far and then the error for what is cut off or malformed: an error anywhere is a
    // broken keytext (400), not a second certificate (422), which only a well-formed rest is.
    let mut several = false;
    for rest in certs {
        match rest {
            Ok(_) => several = true,
            Err(e) => return Err(KeytextError::Malformed(e.to_string())),
        }
    }
    if several {
        return Err(KeytextError::SeveralCertificates);
    }
    Ok(first)
}

/// Does `cert` have a primary key or subkey matching `handle`? The store is asked for exactly
/// this, but the directory checks what it serves.
pub fn has_key(cert: &Cert, handle: &KeyHandle) -> bool {
    cert.keys().any(|k| k.key().key_handle().aliases(handle))
}

/// Does `cert` have a primary key or subkey with exactly this fingerprint?
pub fn has_fingerprint(cert: &Cert, fpr: &Fingerprint) -> bool {
    cert.keys().any(|k| &k.key().fingerprint() == fpr)
}

/// Does `cert` have a user ID whose address is `address` (compared in Sequoia's normalized,
/// lower-cased form)?
pub fn has_address(cert: &Cert, address: &str) -> bool {
    let wanted = address.to_lowercase();
    cert.userids().any(|ua| {
        ua.userid()
            .email_normalized()
            .ok()
            .flatten()
            .is_some_and(|e| e == wanted)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sequoia_openpgp::cert::prelude::*;
    use sequoia_openpgp::serialize::SerializeInto;

    fn form(keytext: &str) -> Vec<u8> {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("keytext", keytext)
            .finish()
            .into_bytes()
    }

    #[test]
    fn keytext_forms() {
        let (tsk, _) = CertBuilder::general_purpose(Some("alice@example.org"))
            .generate()
            .unwrap();
        let cert = tsk.clone().strip_secret_key_material();
        let armored_cert = String::from_utf8(cert.armored().to_vec().unwrap()).unwrap();
        let (other, _) = CertBuilder::general_purpose(Some("bob@example.org"))
            .generate()
            .unwrap();
        let two = String::from_utf8(armored(&[cert.clone(), other]).unwrap()).unwrap();

        let parsed = parse_keytext(&form(&armored_cert), 1 << 20).unwrap();
        assert_eq!(parsed.fingerprint(), cert.fingerprint());

        // Secret keys parse (the merge strips them).
        let tsk_text = String::from_utf8(tsk.as_tsk().armored().to_vec().unwrap()).unwrap();
        assert!(parse_keytext(&form(&tsk_text), 1 << 20).unwrap().is_tsk());

        let both = format!(
            "{}&{}",
            String::from_utf8(form(&armored_cert)).unwrap(),
            String::from_utf8(form(&armored_cert)).unwrap()
        );
        let big = 1 << 20;
        for (body, limit, want) in [
            (b"".to_vec(), big, KeytextError::Missing),
            (b"key=abc".to_vec(), big, KeytextError::Missing),
            (both.into_bytes(), big, KeytextError::Duplicate),
            (form("   "), big, KeytextError::NoCertificate),
            (form(&two), big, KeytextError::SeveralCertificates),
            (
                form(&armored_cert),
                100,
                KeytextError::TooLarge {
                    bytes: armored_cert.len(),
                    limit: 100,
                },
            ),
        ] {
            assert_eq!(parse_keytext(&body, limit), Err(want));
        }
        assert!(matches!(
            parse_keytext(
                &form("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnonsense\n"),
                1 << 20
            ),
            Err(KeytextError::Malformed(_) | KeytextError::NoCertificate)
        ));
    }

    /// Regression: a certificate cut off in transit was refused as "more than one
    /// certificate" (422), because the parser's error after the part it could read was
    /// counted as a second certificate. A parse error is a malformed keytext (400).
    #[test]
    fn truncated_keytext_is_malformed_not_several_certificates() {
        let (alice, _) = CertBuilder::general_purpose(Some("alice@example.org"))
            .generate()
            .unwrap();
        let (bob, _) = CertBuilder::general_purpose(Some("bob@example.org"))
            .generate()
            .unwrap();
        let alice = alice.strip_secret_key_material();
        let armored_alice =
            String::from_utf8(armored(std::slice::from_ref(&alice)).unwrap()).unwrap();
        // Cut in the middle of the base64, so a packet is incomplete.
        let cut_armor = armored_alice[..armored_alice.len() * 2 / 3].to_owned();
        // Binary keytext, cut in the middle of the last packet (form values are text: bytes
        // that are not UTF-8 become U+FFFD, which makes a binary key malformed either way).
        let bin = binary(std::slice::from_ref(&alice)).unwrap();
        let cut_bin = String::from_utf8_lossy(&bin[..bin.len() - 10]).into_owned();
        let two = String::from_utf8(armored(&[alice.clone(), bob]).unwrap()).unwrap();
        // The second certificate cut off: still a broken keytext, not two certificates.
        let second_cut = format!("{armored_alice}{cut_armor}");

        let malformed = "malformed";
        for (name, keytext, want) in [
            ("truncated armor", cut_armor.as_str(), malformed),
            ("truncated binary", cut_bin.as_str(), malformed),
            (
                "second certificate truncated",
                second_cut.as_str(),
                malformed,
            ),
            ("two certificates", two.as_str(), "several"),
            ("garbage", "hello, this is not a key", malformed),
            (
                "armored garbage",
                "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm9uc2Vuc2U=\n-----END PGP PUBLIC KEY BLOCK-----\n",
                malformed,
            ),
            ("one certificate", armored_alice.as_str(), "ok"),
        ] {
            let got = match parse_keytext(&form(keytext), 1 << 20) {
                Ok(c) => {
                    assert_eq!(c.fingerprint(), alice.fingerprint(), "{name}");
                    "ok"
                }
                Err(KeytextError::Malformed(_)) => malformed,
                Err(KeytextError::SeveralCertificates) => "several",
                Err(e) => panic!("{name}: unexpected {e:?}"),
            };
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn served_certs_are_public_and_parse_back() {
        let (tsk, _) = CertBuilder::general_purpose(Some("Alice <alice@example.org>"))
            .generate()
            .unwrap();
        let text = armored(std::slice::from_ref(&tsk)).unwrap();
        assert!(text.starts_with(b"-----BEGIN PGP PUBLIC KEY BLOCK-----"));
        let back = Cert::from_bytes(&text).unwrap();
        assert_eq!(back.fingerprint(), tsk.fingerprint());
        assert!(!back.is_tsk());

        let bin = binary(std::slice::from_ref(&tsk)).unwrap();
        assert_ne!(bin.first(), Some(&b'-'));
        let back = Cert::from_bytes(&bin).unwrap();
        assert!(!back.is_tsk());
        assert!(has_address(&back, "ALICE@example.org"));
        assert!(!has_address(&back, "bob@example.org"));
        assert!(has_key(&back, &tsk.key_handle()));
        assert!(has_fingerprint(&back, &tsk.fingerprint()));
    }
}
