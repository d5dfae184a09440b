//! Signed S/MIME from the organisation's X.509 CA (docs/mail.md, "The S/MIME copy"; issue 18
//! item 4). alpha.test runs an S/MIME CA (`[smime]`, made here with OpenSSL); alice's client
//! makes a P-256 signing key, has the node certify it (bound to her Sealpost key), and signs
//! the inner entity before encrypting it to erik@smime.test's certificate (sign-then-encrypt).
//! A real Postfix delivers it into erik's Maildir, where `openssl cms -decrypt` + `-verify` and
//! `gpgsm --decrypt` + `--verify` (the CA in gpgsm's trustlist) open and verify it, the signer
//! alice@alpha.test. Unhappy paths: a binding not by the account's key, unsupported keys, the
//! daily limit, and no CA configured; each a typed error that stores nothing.

use std::path::Path;

use mail_parser::MimeHeaders;
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::X509;
use sealpost_client::{ClientError, Session};
use sealpost_proto::{API_PREFIX, DeliveryMode, SMIME_SIGNED, SMIME_UNSIGNED};
use sealpost_tests::TestNode;
use sealpost_tests::gpg::Gpg;
use sealpost_tests::https::{Issued, TestCa, Usage};
use sealpost_tests::mail::{
    assert_figures_entity, cms_printed, delivered_outer, import_by_admin, recipient_states,
    send_figures, smime_opens, smime_verified,
};
use sealpost_tests::smtp::{Postfix, free_port, relay_at};
use sequoia_openpgp::policy::StandardPolicy;

/// alpha.test relaying through `relay_port`, erik's certificate (under a CA that is the
/// node's `x509_anchors`) imported by an administrator, and with `org_ca` as its `[smime]` CA
/// (issuing for 365 days) when given; and alice, logged in.
async fn world(
    dir: &Path,
    relay_port: u16,
    org_ca: Option<&TestCa>,
) -> (TestNode, Issued, Session) {
    world_days(dir, relay_port, org_ca, 365).await
}

/// [`world`] with certificates issued for `cert_days`.
async fn world_days(
    dir: &Path,
    relay_port: u16,
    org_ca: Option<&TestCa>,
    cert_days: u32,
) -> (TestNode, Issued, Session) {
    let anchors_ca = TestCa::new("S/MIME test CA").unwrap();
    let anchors = anchors_ca.write_pem(&dir.join("x509-anchors.pem")).unwrap();
    let erik = anchors_ca.issue(Usage::Smime("erik@smime.test")).unwrap();
    let smime = org_ca.map(|ca| sealpost::config::SmimeConfig {
        ca_cert: ca
            .write_pem(&dir.join("org-ca.pem"))
            .unwrap()
            .display()
            .to_string(),
        ca_key: ca
            .write_key(&dir.join("org-ca.key"))
            .unwrap()
            .display()
            .to_string(),
        cert_days,
    });
    let node = TestNode::spawn_with("alpha.test", move |c| {
        relay_at(relay_port)(c);
        c.delivery.x509_anchors = anchors.display().to_string();
        c.smime = smime;
    })
    .await
    .unwrap();
    import_by_admin(&node, &erik.cert_pem).await;
    let alice = node.person("alice").await;
    (node, erik, alice)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_smime_mail_from_the_organisations_ca_verifies_in_openssl_and_gpgsm() {
    let postfix = Postfix::start(&["erik@smime.test"]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let org_ca = TestCa::new("Alpha S/MIME CA").unwrap();
    let (node, erik, alice) = world(dir.path(), postfix.port, Some(&org_ca)).await;
    assert!(
        alice.smime_signing(),
        "GET /org says the organisation signs"
    );

    // Before sending, alice is told the copy is signed (not "sent unsigned").
    let to = vec!["erik@smime.test".to_owned()];
    let (answer, _) = alice.envelope(&to).await.unwrap();
    let e = &answer.recipients[0];
    assert_eq!(e.mode, DeliveryMode::Smime);
    assert!(e.why.contains(SMIME_SIGNED), "{}", e.why);
    assert!(!e.why.contains("sent unsigned"), "{}", e.why);

    let work = tempfile::tempdir().unwrap();
    let resp = send_figures(&alice, &to, work.path()).await;
    assert_eq!(
        recipient_states(&resp),
        [("erik@smime.test", Some(DeliveryMode::Smime), "queued")]
    );
    // One certificate was issued and logged, with no key material; kept in the session.
    assert_eq!(node.count("SELECT COUNT(*) FROM smime_certificates"), 1);
    assert_eq!(
        node.count(
            "SELECT COUNT(*) FROM txlog WHERE kind = 'smime.certificate_issued' AND actor = 'alice@alpha.test'"
        ),
        1
    );
    let identity = alice
        .smime_identity()
        .expect("the signing identity is kept");
    assert!(
        identity.key.contains("ENCRYPTED PRIVATE KEY"),
        "never in the clear"
    );

    let (file, raw) = delivered_outer(&postfix, "erik@smime.test", &resp.message_id).await;
    let d = dir.path();
    let path = |n: &str| d.join(n).to_str().unwrap().to_owned();
    std::fs::write(path("ca.pem"), org_ca.pem()).unwrap();

    // erik's mail program decrypts it (`openssl cms -decrypt`, `gpgsm --decrypt`, the same
    // bytes), then verifies the signed entity against the CA.
    let signed = smime_opens(d, &erik, &file, &raw);
    let parsed = mail_parser::MessageParser::default()
        .parse(&signed)
        .unwrap();
    let ct = parsed.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("signed")));
    assert_eq!(
        ct.attribute("protocol"),
        Some("application/pkcs7-signature")
    );
    assert_eq!(ct.attribute("micalg"), Some("sha-256"));
    let (entity, signer) = smime_verified(d, &signed, Path::new(&path("ca.pem")));
    assert_figures_entity(&entity);
    let names: Vec<String> = signer
        .subject_alt_names()
        .unwrap()
        .iter()
        .filter_map(|n| n.email().map(str::to_owned))
        .collect();
    assert_eq!(names, ["alice@alpha.test"]);
    // The signature: SHA-256 ECDSA, with the signer's certificate and the CA, and
    // SMIMECapabilities naming AES-256-CBC.
    let p7s = parsed
        .parts
        .iter()
        .find(|p| {
            p.content_type()
                .is_some_and(|c| c.subtype() == Some("pkcs7-signature"))
        })
        .expect("the signature part");
    std::fs::write(path("smime.p7s"), p7s.contents()).unwrap();
    let printed = cms_printed(&path("smime.p7s"));
    for want in [
        "pkcs7-signedData",
        "ecdsa-with-SHA256",
        "sha256",
        "aes-256-cbc",
        // The CA's own certificate is included (a reader needs only to trust it).
        "subject: CN=Alpha S\\/MIME CA",
    ] {
        assert!(printed.contains(want), "{want} in {printed}");
    }

    // gpgsm verifies it, the CA trusted as erik's administrator would trust it.
    let gpg = Gpg::new();
    gpg.gpgsm_trust_root(&org_ca.pem());
    // The signed content: exactly the bytes between the first delimiter and the next.
    let boundary = format!("--{}", ct.attribute("boundary").unwrap());
    let text = String::from_utf8(signed.clone()).unwrap();
    let start = text.find(&format!("{boundary}\r\n")).unwrap() + boundary.len() + 2;
    let end = start + text[start..].find(&format!("\r\n{boundary}")).unwrap();
    std::fs::write(path("content.eml"), &signed[start..end]).unwrap();
    let out = gpg.gpgsm(
        &[
            "--status-fd",
            "1",
            "--verify",
            &path("smime.p7s"),
            &path("content.eml"),
        ],
        "",
    );
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(status.contains("[GNUPG:] GOODSIG"), "{status}");
    assert!(status.contains("[GNUPG:] VALIDSIG"), "{status}");
    assert!(out.status.success());

    // A second message is signed with the same certificate: none is issued again.
    send_figures(&alice, &to, work.path()).await;
    assert_eq!(node.count("SELECT COUNT(*) FROM smime_certificates"), 1);
    assert_eq!(alice.smime_identity(), Some(identity));
}

fn p256_spki() -> Vec<u8> {
    let g = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&g).unwrap())
        .unwrap()
        .public_key_to_der()
        .unwrap()
}

/// A SubjectPublicKeyInfo DER as PEM.
fn spki_pem(spki: &[u8]) -> String {
    let key = PKey::public_key_from_der(spki).unwrap();
    String::from_utf8(key.public_key_to_pem().unwrap()).unwrap()
}

/// An answer's status and JSON body.
async fn status_body(r: reqwest::Response) -> (u16, serde_json::Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn code(r: Result<impl std::fmt::Debug, ClientError>) -> (u16, String) {
    match r {
        Err(ClientError::Api { status, code, .. }) => (status, code),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_issued_only_for_supported_keys_bound_to_the_users_key_five_a_day() {
    let dir = tempfile::tempdir().unwrap();
    let org_ca = TestCa::new("Alpha S/MIME CA").unwrap();
    let (node, _erik, alice) = world(dir.path(), free_port(), Some(&org_ca)).await;
    let bob = node.person("bob").await;
    let stored = || node.count("SELECT COUNT(*) FROM smime_certificates");
    let spki = p256_spki();
    let pem = spki_pem(&spki);
    let http = reqwest::Client::new();
    let post = |binding: String| {
        http.post(format!("{}{API_PREFIX}/smime/certificate", node.url))
            .bearer_auth(alice.token())
            .json(&serde_json::json!({ "public_key": pem, "binding": binding }))
            .send()
    };
    let policy = StandardPolicy::new();
    let answer = |r: reqwest::Response| async move {
        let (status, body) = status_body(r).await;
        (status, body["code"].as_str().unwrap_or_default().to_owned())
    };

    // alice's session, but bob's key signed the binding: refused, nothing stored.
    let by_bob =
        sealpost_client::crypto::sign_detached(bob.unlocked_cert(), &policy, &spki).unwrap();
    let got = answer(post(by_bob).await.unwrap()).await;
    assert_eq!(got, (422, "smime_binding_invalid".to_owned()));
    // alice's key, but over another key's SPKI.
    let other =
        sealpost_client::crypto::sign_detached(alice.unlocked_cert(), &policy, &p256_spki())
            .unwrap();
    let got = answer(post(other).await.unwrap()).await;
    assert_eq!(got, (422, "smime_binding_invalid".to_owned()));
    let got = answer(post("not a signature".into()).await.unwrap()).await;
    assert_eq!(got, (422, "smime_binding_invalid".to_owned()));
    // Not a PEM public key; one too long to be a key.
    for public_key in ["hello".to_owned(), "A".repeat(5000)] {
        let r = http
            .post(format!("{}{API_PREFIX}/smime/certificate", node.url))
            .bearer_auth(alice.token())
            .json(&serde_json::json!({ "public_key": public_key, "binding": "x" }))
            .send()
            .await
            .unwrap();
        assert_eq!(answer(r).await, (400, "invalid_request".to_owned()));
    }
    assert_eq!(stored(), 0);

    // Keys gpgsm cannot verify or that are too weak: refused, properly bound or not.
    for key in [
        PKey::generate_ed25519()
            .unwrap()
            .public_key_to_der()
            .unwrap(),
        PKey::from_rsa(Rsa::generate(1024).unwrap())
            .unwrap()
            .public_key_to_der()
            .unwrap(),
    ] {
        assert_eq!(
            code(alice.request_smime_certificate(&key).await),
            (422, "smime_key_unsupported".to_owned())
        );
    }
    assert_eq!(stored(), 0);

    // Five a day; the sixth is refused with when to try again.
    for _ in 0..5 {
        let issued = alice.request_smime_certificate(&spki).await.unwrap();
        let leaf = X509::from_pem(issued.certificate.as_bytes()).unwrap();
        assert!(leaf.verify(&org_ca.cert.public_key().unwrap()).unwrap());
        assert!(issued.not_after > sealpost::now() + 364 * 86_400);
        assert_eq!(issued.chain, org_ca.pem());
    }
    assert_eq!(
        code(alice.request_smime_certificate(&spki).await),
        (429, "rate_limited".to_owned())
    );
    assert_eq!(stored(), 5);
    // bob has his own five.
    bob.request_smime_certificate(&p256_spki()).await.unwrap();
    assert_eq!(stored(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_smime_ca_no_certificate_is_issued_and_copies_go_unsigned() {
    let dir = tempfile::tempdir().unwrap();
    let (node, erik, alice) = world(dir.path(), free_port(), None).await;
    assert!(!alice.smime_signing());
    assert_eq!(
        code(alice.request_smime_certificate(&p256_spki()).await),
        (409, "smime_ca_not_configured".to_owned())
    );
    assert_eq!(node.count("SELECT COUNT(*) FROM smime_certificates"), 0);
    let r = reqwest::Client::new()
        .get(format!("{}{API_PREFIX}/smime/certificate", node.url))
        .bearer_auth(alice.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "smime_ca_not_configured");

    // The sender is told before sending, and the copy is the entity itself, unsigned.
    let to = vec!["erik@smime.test".to_owned()];
    let (answer, _) = alice.envelope(&to).await.unwrap();
    assert!(answer.recipients[0].why.contains(SMIME_UNSIGNED));
    let entity = copy_for_erik(&alice, &erik).await;
    let parsed = mail_parser::MessageParser::default()
        .parse(&entity)
        .unwrap();
    assert_ne!(parsed.content_type().unwrap().subtype(), Some("signed"));
    assert!(alice.smime_identity().is_none());
}

/// The web app's signing key (RSA-3072, wrapped in the browser) is kept with its certificate
/// and given back to its own user's session only: the newest still valid that has one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_apps_wrapped_key_is_kept_with_its_certificate_for_its_user_only() {
    let dir = tempfile::tempdir().unwrap();
    let org_ca = TestCa::new("Alpha S/MIME CA").unwrap();
    let (node, _erik, alice) = world(dir.path(), free_port(), Some(&org_ca)).await;
    let bob = node.person("bob").await;
    let http = reqwest::Client::new();
    let url = format!("{}{API_PREFIX}/smime/certificate", node.url);
    let policy = StandardPolicy::new();
    let get = |s: &Session| http.get(&url).bearer_auth(s.token()).send();
    let answer = status_body;
    // alice's binding over an RSA-3072 key, with `wrapped_key` as given.
    let post = |spki: Vec<u8>, wrapped: Option<String>| {
        let pem = spki_pem(&spki);
        let binding =
            sealpost_client::crypto::sign_detached(alice.unlocked_cert(), &policy, &spki).unwrap();
        let mut body = serde_json::json!({ "public_key": pem, "binding": binding });
        if let Some(w) = wrapped {
            body["wrapped_key"] = w.into();
        }
        http.post(&url)
            .bearer_auth(alice.token())
            .json(&body)
            .send()
    };
    let rsa3072 = || {
        PKey::from_rsa(Rsa::generate(3072).unwrap())
            .unwrap()
            .public_key_to_der()
            .unwrap()
    };
    let stored = || node.count("SELECT COUNT(*) FROM smime_certificates");

    let (status, body) = answer(get(&alice).await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));

    // Hostile wrapped keys: empty, over 16 KiB, not printable ASCII. Nothing is stored.
    for bad in [
        String::new(),
        "A".repeat(16 * 1024 + 1),
        "with space".into(),
        "line\nend".into(),
    ] {
        let (status, body) = answer(post(rsa3072(), Some(bad)).await.unwrap()).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_request"))
        );
    }
    assert_eq!(stored(), 0);

    let first = "sealpost-smime-v1.Zmlyc3Q".to_owned();
    let (status, issued) = answer(post(rsa3072(), Some(first.clone())).await.unwrap()).await;
    assert_eq!(status, 201, "{issued}");
    let (status, kept) = answer(get(&alice).await.unwrap()).await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["wrapped_key"], first.as_str());
    assert_eq!(kept["certificate"], issued["certificate"]);
    assert_eq!(kept["not_after"], issued["not_after"]);
    assert_eq!(kept["chain"], org_ca.pem().as_str());
    let leaf = X509::from_pem(kept["certificate"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(leaf.public_key().unwrap().bits(), 3072);
    // The log says a key was stored, never what it is.
    assert_eq!(
        node.count(
            "SELECT COUNT(*) FROM txlog WHERE kind = 'smime.certificate_issued' AND detail LIKE '%Zmlyc3Q%'"
        ),
        0
    );

    // bob has none; a certificate without a stored key (the CLI's) does not hide alice's.
    let (status, _) = answer(get(&bob).await.unwrap()).await;
    assert_eq!(status, 404);
    alice.request_smime_certificate(&p256_spki()).await.unwrap();
    let (_, kept) = answer(get(&alice).await.unwrap()).await;
    assert_eq!(kept["wrapped_key"], first.as_str());

    // A newer one replaces it; once expired, it is no longer given.
    let (status, _) = answer(post(rsa3072(), Some("second".into())).await.unwrap()).await;
    assert_eq!(status, 201);
    let (_, kept) = answer(get(&alice).await.unwrap()).await;
    assert_eq!(kept["wrapped_key"], "second");
    // Expiry is made by hand: the node's clock is real.
    let expire = |which: &str| {
        rusqlite::Connection::open(node.data().join("sealpost.db"))
            .unwrap()
            .execute(
                &format!("UPDATE smime_certificates SET not_after = 1 {which}"),
                [],
            )
            .unwrap();
    };
    expire("WHERE wrapped_key = 'second'");
    let (_, kept) = answer(get(&alice).await.unwrap()).await;
    assert_eq!(kept["wrapped_key"], first.as_str());
    expire("");
    let (status, _) = answer(get(&alice).await.unwrap()).await;
    assert_eq!(status, 404);
}

/// A copy to erik made with the session's signing identity (made or renewed as needed): what
/// erik decrypts.
async fn copy_for_erik(alice: &Session, erik: &Issued) -> Vec<u8> {
    let to = vec!["erik@smime.test".to_owned()];
    let (answer, _) = alice.envelope(&to).await.unwrap();
    let head = sealpost_proto::Head {
        v: 1,
        message_id: answer.message_id.clone(),
        from: alice.address().to_owned(),
        to,
        subject: "renewal".into(),
        body: "renewal".into(),
        attachments: vec![],
        sent_at: sealpost::now(),
    };
    let copies = alice.external_copies(&answer, &head, &[]).await.unwrap();
    let cms = openssl::cms::CmsContentInfo::from_der(&copies[0].2).unwrap();
    let key = PKey::private_key_from_pem(erik.key_pem.as_bytes()).unwrap();
    cms.decrypt(&key, &erik.cert).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_with_fewer_than_30_days_left_is_renewed_for_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let org_ca = TestCa::new("Alpha S/MIME CA").unwrap();
    // Certificates for 10 days: always within the renewal margin.
    let (node, erik, alice) = world_days(dir.path(), free_port(), Some(&org_ca), 10).await;
    let signed = copy_for_erik(&alice, &erik).await;
    let first = alice.smime_identity().unwrap();
    assert!(first.not_after <= sealpost::now() + 10 * 86_400);
    let parsed = mail_parser::MessageParser::default()
        .parse(&signed)
        .unwrap();
    assert_eq!(parsed.content_type().unwrap().subtype(), Some("signed"));

    copy_for_erik(&alice, &erik).await;
    let second = alice.smime_identity().unwrap();
    assert_eq!(second.key, first.key, "the same key");
    assert_ne!(second.certificate, first.certificate, "a new certificate");
    let keys = node.count("SELECT COUNT(DISTINCT spki_sha256) FROM smime_certificates");
    assert_eq!(
        (node.count("SELECT COUNT(*) FROM smime_certificates"), keys),
        (2, 1)
    );

    // Past the daily limit the renewal is refused, and the certificate that still holds signs.
    for _ in 0..3 {
        copy_for_erik(&alice, &erik).await;
    }
    assert_eq!(node.count("SELECT COUNT(*) FROM smime_certificates"), 5);
    let signed = copy_for_erik(&alice, &erik).await;
    let parsed = mail_parser::MessageParser::default()
        .parse(&signed)
        .unwrap();
    assert_eq!(parsed.content_type().unwrap().subtype(), Some("signed"));
    assert_eq!(node.count("SELECT COUNT(*) FROM smime_certificates"), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_key_that_no_longer_unlocks_after_a_password_change_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let org_ca = TestCa::new("Alpha S/MIME CA").unwrap();
    let (node, erik, alice) = world(dir.path(), free_port(), Some(&org_ca)).await;
    copy_for_erik(&alice, &erik).await;
    // The identity as kept under an older password's wrap key.
    let g = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let foreign = PKey::from_ec_key(EcKey::generate(&g).unwrap())
        .unwrap()
        .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"old")
        .unwrap();
    let stale = sealpost_client::smime::SmimeIdentity {
        key: String::from_utf8(foreign).unwrap(),
        ..alice.smime_identity().unwrap()
    };
    let alice = alice.with_smime_identity(Some(stale.clone()));
    let signed = copy_for_erik(&alice, &erik).await;
    let parsed = mail_parser::MessageParser::default()
        .parse(&signed)
        .unwrap();
    assert_eq!(parsed.content_type().unwrap().subtype(), Some("signed"));
    let now = alice.smime_identity().unwrap();
    assert_ne!(now.key, stale.key, "a new key");
    assert_eq!(
        node.count("SELECT COUNT(DISTINCT spki_sha256) FROM smime_certificates"),
        2
    );
}
