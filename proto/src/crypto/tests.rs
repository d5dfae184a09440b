//! Tests of what the proto crate checks on its own. A check's tests against what the client
//! makes (sealed messages, envelope signatures by the client's signer) are the client's
//! (`sealpost-client`, `crypto/tests.rs`), which sees both sides.

use std::io::Read;
use std::time::SystemTime;

use sequoia_openpgp as openpgp;

use openpgp::packet::Signature;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::SerializeInto;
use openpgp::types::{KeyFlags, SignatureType};
use openpgp::{Cert, Fingerprint};

use super::*;

const P: &StandardPolicy<'static> = &StandardPolicy::new();

/// A key of the shared profile that certifies and signs with its primary key (no subkeys),
/// with secret key material, and its revocation certificate.
pub(super) fn test_key(address: &str, now: SystemTime) -> (Cert, Signature) {
    cert_builder(now)
        .unwrap()
        .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
        .add_userid(user_id(None, address).unwrap())
        .generate()
        .unwrap()
}

/// An armored binary signature over `data` by `cert`'s primary key.
pub(super) fn sign(cert: &Cert, data: &[u8]) -> String {
    let sig = SignatureBuilder::new(SignatureType::Binary)
        .sign_message(&mut primary_signer(cert).unwrap(), data)
        .unwrap();
    signature_to_armored(&sig).unwrap()
}

#[test]
fn kdf_params_validate_bounds() {
    assert!(KdfParams::DEFAULT.validate().is_ok());
    assert!(KdfParams::MIN.validate().is_ok());
    let ok = KdfParams {
        m_cost_kib: 1024 * 1024,
        t_cost: 10,
        p_cost: 8,
    };
    assert!(ok.validate().is_ok());
    for bad in [
        KdfParams {
            m_cost_kib: 8191,
            ..ok
        },
        KdfParams {
            m_cost_kib: 1024 * 1024 + 1,
            ..ok
        },
        KdfParams { t_cost: 0, ..ok },
        KdfParams { t_cost: 11, ..ok },
        KdfParams { p_cost: 0, ..ok },
        KdfParams { p_cost: 9, ..ok },
    ] {
        assert!(
            matches!(bad.validate(), Err(CryptoError::Malformed(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn armor_helpers_roundtrip_and_refuse_secrets() {
    let (cert, rev) = test_key("alice@a.example", SystemTime::now());
    let armored = cert_to_armored(&cert).unwrap();
    assert!(armored.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
    let parsed = cert_from_armored(&armored).unwrap();
    assert_eq!(parsed.fingerprint(), cert.fingerprint());
    assert!(!parsed.is_tsk());

    let tsk = String::from_utf8(cert.as_tsk().armored().to_vec().unwrap()).unwrap();
    match cert_from_armored(&tsk) {
        Err(CryptoError::Malformed(m)) => assert_eq!(m, "secret key material"),
        other => panic!("{other:?}"),
    }

    let rev_armored = signature_to_armored(&rev).unwrap();
    assert!(rev_armored.starts_with("-----BEGIN PGP SIGNATURE-----"));
    assert_eq!(signature_from_armored(&rev_armored).unwrap(), rev);
    // The revocation really revokes the cert.
    let revoked = cert.insert_packets(Some(rev)).unwrap().0;
    assert!(matches!(
        revoked.revocation_status(P, None),
        openpgp::types::RevocationStatus::Revoked(_)
    ));
}

#[test]
fn fingerprint_display_groups_of_four() {
    let fpr: Fingerprint = "0123456789abcdef0123456789ABCDEF01234567".parse().unwrap();
    assert_eq!(
        fingerprint_display(&fpr),
        "0123 4567 89AB CDEF 0123 4567 89AB CDEF 0123 4567"
    );
}

/// The plain armor decoder agrees with sequoia's reader on every form writers use, and
/// leaves every other form to it.
#[test]
fn plain_signature_armor_decodes_as_sequoia_does() {
    let (cert, _) = test_key("a@a.test", SystemTime::now());
    let armored = sign(&cert, b"envelope");
    let sequoia = |text: &str| {
        let mut r = openpgp::armor::Reader::from_bytes(
            text.as_bytes(),
            openpgp::armor::ReaderMode::Tolerant(Some(openpgp::armor::Kind::Signature)),
        );
        let mut bytes = Vec::new();
        r.read_to_end(&mut bytes).map(|_| bytes).ok()
    };
    let lines: Vec<&str> = armored.lines().collect();
    let without_checksum: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.starts_with('='))
        .collect();
    let mut with_header = lines.clone();
    with_header.insert(1, "Comment: made by a test");
    let plain_forms = [
        armored.clone(),
        armored.replace('\n', "\r\n"),
        format!("\n  {armored}  \n"),
        without_checksum.join("\n"),
        with_header.join("\n"),
    ];
    let expected = sequoia(&armored).unwrap();
    for form in &plain_forms {
        assert_eq!(
            keys::dearmor_signature_plain(form).as_ref(),
            Some(&expected),
            "{form}"
        );
        assert_eq!(sequoia(form).as_ref(), Some(&expected), "{form}");
        assert!(signature_from_armored(form).is_ok());
    }
    // Not the plain form: left to sequoia (which may still read it, or refuse it).
    let mut no_blank = lines.clone();
    no_blank.retain(|l| !l.is_empty());
    let other_forms = [
        no_blank.join("\n"),
        format!("{armored}\ntrailing text"),
        armored.replace("SIGNATURE", "MESSAGE"),
        armored.replacen('\n', "\n!!!!\n", 3),
        String::new(),
    ];
    for form in &other_forms {
        assert_eq!(keys::dearmor_signature_plain(form), None, "{form}");
    }
    assert!(signature_from_armored("not armor at all").is_err());
}
