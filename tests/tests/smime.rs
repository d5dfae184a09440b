//! S/MIME from the client (docs/mail.md, mode `smime`; issue 18 item 4):
//! `sealpost_client::crypto::smime::encrypt` seals an inner MIME entity to an outside
//! recipient's X.509 certificate (from a test CA made with OpenSSL), and the recipient's own
//! tools open it: `openssl cms -decrypt` and GnuPG's `gpgsm` (a throw-away home with the
//! recipient's key imported from PKCS#12), byte for byte. AES-256-CBC by default; AES-256-GCM
//! (`AuthEnvelopedData`) only when asked for.

use std::path::Path;

use sealpost_client::crypto::smime::{SmimeCipher, encrypt};
use sealpost_tests::gpg::Gpg;
use sealpost_tests::https::{Issued, TestCa, Usage, openssl};

/// The inner MIME entity a sender's client makes (CRLF line ends, protected headers).
const ENTITY: &[u8] =
    b"Content-Type: multipart/mixed; boundary=\"b1\"; protected-headers=\"v1\"\r\n\
From: alice@alpha.test\r\n\
To: erik@smime.test\r\n\
Subject: the real subject\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Gr=C3=BC=C3=9Fe, Erik\r\n\
--b1--\r\n";

fn files(dir: &Path, erik: &Issued, sealed: &[u8]) -> (String, String, String) {
    let (cert, key, msg) = (
        dir.join("erik.pem"),
        dir.join("erik.key"),
        dir.join("smime.p7m"),
    );
    std::fs::write(&cert, &erik.cert_pem).unwrap();
    std::fs::write(&key, &erik.key_pem).unwrap();
    std::fs::write(&msg, sealed).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    (s(&cert), s(&key), s(&msg))
}

/// AES-256-CBC EnvelopedData to erik's certificate: `openssl cms` and `gpgsm` both decrypt
/// it to the very entity; another key does not.
#[test]
fn openssl_cms_and_gpgsm_open_what_the_client_encrypts() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("S/MIME test CA").unwrap();
    let erik = ca.issue(Usage::Smime("erik@smime.test")).unwrap();
    let sealed = encrypt(ENTITY, &erik.cert_pem, SmimeCipher::default()).unwrap();
    let (cert, key, msg) = files(dir.path(), &erik, &sealed);

    let printed = openssl(&["cms", "-cmsout", "-print", "-inform", "DER", "-in", &msg]);
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(printed.contains("pkcs7-envelopedData"), "{printed}");
    assert!(printed.contains("aes-256-cbc"), "{printed}");

    let out = openssl(&[
        "cms", "-decrypt", "-binary", "-inform", "DER", "-in", &msg, "-recip", &cert, "-inkey",
        &key,
    ]);
    assert!(out.status.success());
    assert_eq!(out.stdout, ENTITY);

    // gpgsm, as a mail program using GnuPG would: the key imported, then --decrypt.
    let gpg = Gpg::new();
    gpg.gpgsm_import_key(&erik.cert_pem, &erik.key_pem);
    let out = gpg.gpgsm_with_passphrase(&["--decrypt", &msg]);
    assert!(out.status.success());
    assert_eq!(out.stdout, ENTITY);

    // Someone else's key opens nothing.
    let other = ca.issue(Usage::Smime("finn@smime.test")).unwrap();
    let finn = dir.path().join("finn");
    std::fs::create_dir(&finn).unwrap();
    let (ocert, okey, _) = files(&finn, &other, &sealed);
    let out = openssl(&[
        "cms", "-decrypt", "-binary", "-inform", "DER", "-in", &msg, "-recip", &ocert, "-inkey",
        &okey,
    ]);
    assert!(!out.status.success());
    assert_ne!(out.stdout, ENTITY);
}

/// AES-256-GCM, for a recipient that reads it: AuthEnvelopedData, which `openssl cms` opens.
#[test]
fn gcm_makes_auth_enveloped_data() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("S/MIME test CA").unwrap();
    let erik = ca.issue(Usage::Smime("erik@smime.test")).unwrap();
    let sealed = encrypt(ENTITY, &erik.cert_pem, SmimeCipher::Aes256Gcm).unwrap();
    let (cert, key, msg) = files(dir.path(), &erik, &sealed);
    let printed = openssl(&["cms", "-cmsout", "-print", "-inform", "DER", "-in", &msg]);
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(
        printed.contains("id-smime-ct-authEnvelopedData"),
        "{printed}"
    );
    let out = openssl(&[
        "cms", "-decrypt", "-binary", "-inform", "DER", "-in", &msg, "-recip", &cert, "-inkey",
        &key,
    ]);
    assert!(out.status.success());
    assert_eq!(out.stdout, ENTITY);
}

/// A recipient "certificate" that is not one is refused with a typed error.
#[test]
fn a_recipient_that_is_not_a_certificate_is_refused() {
    let e = encrypt(ENTITY, "not a certificate", SmimeCipher::default()).unwrap_err();
    assert!(
        matches!(e, sealpost_client::crypto::CryptoError::Malformed(_)),
        "{e:?}"
    );
}
