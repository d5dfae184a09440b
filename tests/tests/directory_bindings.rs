//! The organisation's directory vouches for its domain's addresses (issue 15, item 1): a user
//! cannot put a colleague's address on his own key and have the organisation's WKD, VKS, HKP or
//! federation look-ups serve it. Through a real node on loopback, and with GnuPG fetching the
//! WKD answer as a mail program would.

use sealpost::storage::CertStore;
use sealpost_directory::wkd_hash;
use sealpost_proto::KdfParams;
use sealpost_tests::gpg::{Gpg, gpg_path};
use sealpost_tests::{TestNode, alice_and_bob, peered};
use sequoia_openpgp::Cert;
use sequoia_openpgp::packet::UserID;
use sequoia_openpgp::packet::signature::SignatureBuilder;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::serialize::SerializeInto;
use sequoia_openpgp::types::SignatureType;

/// `cert` (with its secret key) with a new self-signed user ID `uid`, public parts, armored.
fn with_self_signed_uid(cert: &Cert, uid: &str) -> Cert {
    let mut signer = cert
        .primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .unwrap()
        .into_keypair()
        .unwrap();
    let uid = UserID::from(uid);
    let sig = uid
        .bind(
            &mut signer,
            cert,
            SignatureBuilder::new(SignatureType::PositiveCertification),
        )
        .unwrap();
    cert.clone()
        .insert_packets(vec![sequoia_openpgp::Packet::from(uid), sig.into()])
        .unwrap()
        .0
        .strip_secret_key_material()
}

fn armored(cert: &Cert) -> String {
    String::from_utf8(cert.armored().to_vec().unwrap()).unwrap()
}

/// Every certificate in a directory answer (armored or binary), as (fingerprint, addresses).
fn served(bytes: &[u8]) -> Vec<(String, Vec<String>)> {
    sequoia_openpgp::cert::CertParser::from_bytes(bytes)
        .map(|p| {
            p.map(|c| {
                let c = c.unwrap();
                let addresses = c
                    .userids()
                    .filter_map(|u| u.userid().email_normalized().ok().flatten())
                    .collect();
                (c.fingerprint().to_hex(), addresses)
            })
            .collect()
        })
        .unwrap_or_default()
}

/// Everything the anonymous directory says about alice@a.test and about bob's key.
async fn directory_answers(node: &TestNode, bob_fpr: &str) -> Vec<(String, Vec<u8>)> {
    let http = reqwest::Client::new();
    let hash = wkd_hash("alice");
    let mut out = Vec::new();
    for path in [
        format!("/.well-known/openpgpkey/hu/{hash}?l=alice"),
        format!("/.well-known/openpgpkey/hu/{hash}"),
        "/vks/v1/by-email/alice%40a.test".to_owned(),
        "/pks/lookup?op=get&search=alice%40a.test".to_owned(),
        "/pks/lookup?op=index&options=mr&search=alice%40a.test".to_owned(),
        format!("/vks/v1/by-fingerprint/{bob_fpr}"),
        format!("/pks/lookup?op=get&search=0x{bob_fpr}"),
    ] {
        let r = http
            .get(format!("{}{path}", node.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        out.push((path, r.bytes().await.unwrap().to_vec()));
    }
    out
}

/// Asserts that alice's address is answered with alice's key alone, and bob's key carries no
/// address of hers.
fn assert_only_alices(answers: &[(String, Vec<u8>)], alice_fpr: &str, bob_fpr: &str) {
    for (path, body) in answers {
        let text = String::from_utf8_lossy(body);
        if path.contains("op=index") {
            assert!(text.contains(alice_fpr), "{path}: {text}");
            assert!(!text.contains(bob_fpr), "{path} lists bob's key: {text}");
            continue;
        }
        let certs = served(body);
        if path.contains(bob_fpr) {
            assert_eq!(certs.len(), 1, "{path}");
            assert_eq!(certs[0].1, vec!["bob@a.test".to_owned()], "{path}");
        } else {
            let fprs: Vec<&str> = certs.iter().map(|(f, _)| f.as_str()).collect();
            assert_eq!(fprs, vec![alice_fpr], "{path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_cannot_publish_his_key_for_a_colleagues_address() {
    let (node, alice, bob) = alice_and_bob().await;
    let admin = node
        .enrolled("admin@a.test", "admin password", KdfParams::MIN, true)
        .await
        .unwrap();
    let (alice_fpr, bob_fpr) = (alice.fingerprint(), bob.fingerprint());
    let before = directory_answers(&node, &bob_fpr).await;
    assert_only_alices(&before, &alice_fpr, &bob_fpr);
    let bob_cert_before = node.store.cert_by_fingerprint(&bob_fpr).await.unwrap();

    let http = reqwest::Client::new();
    for uid in [
        "Alice <alice@a.test>",
        "Admin <admin@a.test>",
        "Alice <ALICE@A.TEST>",
        "alice@a.test",
        "Bob <bob@elsewhere.test>",
    ] {
        let forged = armored(&with_self_signed_uid(bob.unlocked_cert(), uid));
        // HKP add with bob's own session, and with an admin's.
        for token in [bob.token(), admin.token()] {
            let r = http
                .post(format!("{}/pks/add", node.url))
                .bearer_auth(token)
                .form(&[("keytext", &forged)])
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            assert_eq!(status, 422, "{uid}: {body}");
            assert!(body.contains("may be added only for an address"), "{body}");
        }
        // The certification route adds signatures, never user IDs.
        let r = http
            .post(format!("{}/api/v1/certifications", node.url))
            .bearer_auth(bob.token())
            .json(&serde_json::json!({ "cert": forged }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 422, "{uid}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(e["code"], "rejected_update", "{e}");
    }
    // Nothing refused changed anything.
    assert_eq!(
        node.store.cert_by_fingerprint(&bob_fpr).await.unwrap(),
        bob_cert_before
    );
    assert_eq!(directory_answers(&node, &bob_fpr).await, before);

    // What an older version let in (written straight into the store, as a database from
    // before this fix holds it) is not served either, nor answered to peers.
    let forged = with_self_signed_uid(bob.unlocked_cert(), "Alice <alice@a.test>");
    let held = Cert::from_bytes(bob_cert_before.unwrap().as_bytes()).unwrap();
    let legacy = held.merge_public(forged).unwrap();
    node.store
        .put_cert(
            sealpost::certs::record(&legacy).unwrap(),
            "local",
            None,
            sealpost::now(),
        )
        .await
        .unwrap();
    assert_eq!(
        node.store
            .certs_by_email("alice@a.test")
            .await
            .unwrap()
            .len(),
        2,
        "the legacy row is indexed under alice's address"
    );
    let after = directory_answers(&node, &bob_fpr).await;
    assert_only_alices(&after, &alice_fpr, &bob_fpr);

    // GnuPG fetching the WKD answer for alice imports one key: hers.
    if gpg_path().is_none() {
        println!("SKIPPED (gpg part): gpg is not installed");
        return;
    }
    let url = format!(
        "{}/.well-known/openpgpkey/hu/{}?l=alice",
        node.url,
        wkd_hash("alice")
    );
    tokio::task::spawn_blocking(move || {
        let gpg = Gpg::new();
        let o = gpg.gpg(&["--fetch-keys", &url], "");
        assert!(o.status.success(), "gpg --fetch-keys failed");
        let keys = String::from_utf8_lossy(&gpg.gpg(&["--with-colons", "--list-keys"], "").stdout)
            .into_owned();
        let fprs: Vec<&str> = keys
            .lines()
            .filter(|l| l.starts_with("fpr:"))
            .filter_map(|l| l.split(':').nth(9))
            .collect();
        // The primary key's fingerprint line follows its pub line; subkeys have theirs too.
        let primaries = keys.lines().filter(|l| l.starts_with("pub:")).count();
        assert_eq!(primaries, 1, "{keys}");
        assert_eq!(fprs.first(), Some(&alice_fpr.as_str()), "{keys}");
        assert!(!keys.contains(&bob_fpr), "{keys}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_refuses_a_key_with_a_user_id_for_another_address() {
    let node = TestNode::spawn("a.test").await.unwrap();
    node.user("alice@a.test", "alice password", KdfParams::MIN)
        .await
        .unwrap();
    let code = node.invite("mallory@a.test").await.unwrap();
    let now = std::time::SystemTime::now();
    let (key, _) =
        sealpost_client::crypto::generate_user_key("mallory@a.test", Some("Mallory"), now).unwrap();
    let key = with_self_signed_uid(&key, "Alice <alice@a.test>");
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/enroll", node.url))
        .json(&serde_json::json!({
            "invite": code,
            "address": "mallory@a.test",
            "kdf_salt": "AAAAAAAAAAAAAAAAAAAAAA==",
            "kdf_params": KdfParams::MIN,
            "login_verifier": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "cert": armored(&key),
            "wrapped_key": "",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["code"], "invalid_cert", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("is not for mallory@a.test"),
        "{e}"
    );
    // The invite is still open and nothing is indexed under alice's address but her key.
    assert_eq!(
        node.store
            .certs_by_email("alice@a.test")
            .await
            .unwrap()
            .len(),
        1
    );
}

/// A key that an older version let carry a colleague's address (a legacy row) travels to a
/// peer only as the organisation publishes it: with a message, in a certificate update and in
/// a look-up, the peer gets the sender's key without the colleague's address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_get_a_key_only_with_the_addresses_its_organisation_vouches_for() {
    let (alpha, beta) = peered("alpha.test", "beta.test").await;
    let alice = alpha.person("alice").await;
    let mallory = alpha
        .user("mallory@alpha.test", "mallory password", KdfParams::MIN)
        .await
        .unwrap();
    let bob = beta.person("bob").await;

    let held = alpha
        .store
        .cert_by_fingerprint(&mallory.fingerprint())
        .await
        .unwrap()
        .unwrap();
    let legacy = Cert::from_bytes(held.as_bytes())
        .unwrap()
        .merge_public(with_self_signed_uid(
            mallory.unlocked_cert(),
            "Alice <alice@alpha.test>",
        ))
        .unwrap();
    alpha
        .store
        .put_cert(
            sealpost::certs::record(&legacy).unwrap(),
            "local",
            None,
            sealpost::now(),
        )
        .await
        .unwrap();

    // Mallory writes to bob: the transfer carries her certificate.
    let work = tempfile::tempdir().unwrap();
    mallory
        .send(
            &sealpost_client::Outgoing {
                to: vec!["bob@beta.test".into()],
                subject: "hello".into(),
                body: "b".into(),
                attachments: vec![],
                pickup_kdf: None,
            },
            work.path(),
        )
        .await
        .unwrap();
    sealpost_tests::wait_for(std::time::Duration::from_secs(20), async || {
        let inbox = bob.mailbox(sealpost_proto::Folder::Inbox).await.unwrap();
        (!inbox.is_empty()).then_some(())
    })
    .await
    .expect("bob receives mallory's message");

    // Bob looks alice up: beta asks alpha.
    let t = bob.trust("alice@alpha.test").await.unwrap();
    let fprs: Vec<&str> = t.keys.iter().map(|k| k.fingerprint.as_str()).collect();
    assert_eq!(fprs, vec![alice.fingerprint().as_str()], "{t:?}");
    for armored in beta.store.certs_by_email("alice@alpha.test").await.unwrap() {
        let c = Cert::from_bytes(armored.as_bytes()).unwrap();
        assert_eq!(c.fingerprint().to_hex(), alice.fingerprint());
    }
    let at_beta = beta
        .store
        .cert_by_fingerprint(&mallory.fingerprint())
        .await
        .unwrap()
        .expect("beta holds mallory's key, as the sender of a message");
    let at_beta = Cert::from_bytes(at_beta.as_bytes()).unwrap();
    let addresses: Vec<String> = at_beta
        .userids()
        .filter_map(|u| u.userid().email_normalized().ok().flatten())
        .collect();
    assert_eq!(addresses, vec!["mallory@alpha.test".to_owned()]);
}
