//! The compliance key (docs/compliance.md, "Compliance key"): installed by an admin, marked by
//! the organisation CA, published; every message is also encrypted to the compliance keys
//! required (ours, and a peered organisation's), and a message without one is refused with
//! `missing_compliance_recipient` over HTTP, over federation and from a pickup reply; SMTP in
//! and the submission gateway seal to it themselves. GnuPG with the compliance secret key (held
//! by the test, never by the node) reads what was stored.

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sealpost_client::Outgoing;
use sealpost_proto::{ComplianceKeyRef, EnvelopeResponse, KdfParams};
use sealpost_tests::gpg::Gpg;
use sealpost_tests::{TestNode, federation_refusal, inbox_ids, peered, wait_for};
use sequoia_openpgp::Cert;
use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::serialize::SerializeInto;
use sha2::{Digest, Sha256};

fn note(to: &str, subject: &str) -> Outgoing {
    Outgoing {
        to: vec![to.to_owned()],
        subject: subject.into(),
        body: format!("body of {subject}"),
        attachments: vec![],
        pickup_kdf: None,
    }
}

/// A compliance key for `domain` as an organisation's custodians make it (secret and all):
/// the test holds the secret, the node only ever gets the public certificate.
fn compliance_key(domain: &str) -> Cert {
    sealpost_client::crypto::generate_user_key(
        &format!("compliance@{domain}"),
        Some("Compliance archive"),
        SystemTime::now() - Duration::from_secs(60),
    )
    .unwrap()
    .0
}

fn public_armored(cert: &Cert) -> String {
    sealpost_client::crypto::cert_to_armored(cert).unwrap()
}

/// Installs `key` (public) at `node` through the admin command, from a file.
async fn install(node: &TestNode, key: &Cert) {
    let file = node.dir.path().join("compliance.asc");
    std::fs::write(&file, public_armored(key)).unwrap();
    node.admin(&["compliance", "install", file.to_str().unwrap()])
        .await
        .unwrap();
}

/// The envelope answer's recipient keys without the compliance keys it lists: what a client
/// that leaves the compliance recipient out would encrypt to.
fn without_compliance(env: &EnvelopeResponse, certs: Vec<Cert>) -> Vec<Cert> {
    certs
        .into_iter()
        .filter(|c| {
            !env.compliance
                .iter()
                .any(|k: &ComplianceKeyRef| k.fingerprint == c.fingerprint().to_hex())
        })
        .collect()
}

/// GnuPG with `secret` imported (and the sender's public key, so it checks a signature)
/// decrypts `ciphertext`; returns the plaintext.
fn gnupg_decrypts(secret: &Cert, sender: Option<&Cert>, ciphertext: &[u8]) -> String {
    let gpg = Gpg::new();
    let tsk = String::from_utf8(secret.as_tsk().armored().to_vec().unwrap()).unwrap();
    let out = gpg.gpg(&["--import"], &tsk);
    assert!(out.status.success());
    if let Some(sender) = sender {
        let out = gpg.gpg(&["--import"], &public_armored(sender));
        assert!(out.status.success());
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("part.pgp");
    std::fs::write(&file, ciphertext).unwrap();
    let out = gpg.gpg(&["--decrypt", file.to_str().unwrap()], "");
    assert!(
        out.status.success(),
        "gpg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The compliance archives the message head (`GET /messages/{id}`) names, as `who` sees it.
async fn archives_named(
    node: &TestNode,
    who: &sealpost_client::Session,
    id: &str,
) -> serde_json::Value {
    head(node, who, id).await["compliance"].clone()
}

/// The message head (`GET /messages/{id}`) as `who` gets it.
async fn head(node: &TestNode, who: &sealpost_client::Session, id: &str) -> serde_json::Value {
    get_json(node, who, &format!("/messages/{id}")).await
}

/// `GET /api/v1{path}` as `who`, its JSON answer.
async fn get_json(
    node: &TestNode,
    who: &sealpost_client::Session,
    path: &str,
) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("{}/api/v1{path}", node.url))
        .bearer_auth(who.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `alice` sends `subject` to bob@beta.test, who has it in his inbox; its message ID.
async fn delivered(
    alice: &sealpost_client::Session,
    bob: &sealpost_client::Session,
    subject: &str,
) -> String {
    let work = tempfile::tempdir().unwrap();
    let sent = alice
        .send(&note("bob@beta.test", subject), work.path())
        .await
        .unwrap();
    let id = sent.message_id.clone();
    wait_for(Duration::from_secs(30), async || {
        inbox_ids(bob).await.contains(&id).then_some(())
    })
    .await
    .unwrap();
    id
}

/// Part 0 of a stored message, as the node keeps it.
fn stored_head(node: &TestNode, id: &str) -> Vec<u8> {
    node.db()
        .query_row(
            "SELECT data FROM parts WHERE message_id = ?1 AND idx = 0",
            [id],
            |r| r.get(0),
        )
        .unwrap()
}

/// The CA's marking is what makes a compliance key: not a plain certification, not another
/// CA's marking, not the user ID of another domain.
#[test]
fn only_the_cas_marking_makes_a_compliance_key() {
    use sealpost_client::crypto::{ComplianceKeyError, compliance_key_of};
    let policy = StandardPolicy::new();
    let now = SystemTime::now();
    let ca = sealpost::crypto::generate_ca("a.test", now - Duration::from_secs(60)).unwrap();
    let other_ca = sealpost::crypto::generate_ca("a.test", now - Duration::from_secs(60)).unwrap();
    let key = compliance_key("a.test");
    let check = |cert: &Cert, ca: &Cert, domain: &str| {
        compliance_key_of(cert, ca, domain, &policy, now).map(|_| ())
    };
    let not_marked = Err(ComplianceKeyError::NotMarked {
        domain: "a.test".into(),
    });
    assert_eq!(check(&key, &ca, "a.test"), not_marked, "unsigned");
    let plain = sealpost_trust::certify(&ca, &key, "compliance@a.test", now).unwrap();
    assert_eq!(
        check(&plain, &ca, "a.test"),
        not_marked,
        "a plain certification"
    );
    let marked = sealpost_trust::certify_compliance(&ca, &key, "compliance@a.test", now).unwrap();
    assert_eq!(check(&marked, &ca, "a.test"), Ok(()));
    assert_eq!(
        check(&marked, &other_ca, "a.test"),
        not_marked,
        "another CA"
    );
    assert!(matches!(
        check(&marked, &ca, "b.test"),
        Err(ComplianceKeyError::NoUserId { .. })
    ));
    // A retraction by the CA (a later certification revocation) ends the marking.
    let retracted = sealpost_trust::retract(
        &ca,
        &marked,
        "compliance@a.test",
        now + Duration::from_secs(1),
    )
    .unwrap();
    assert_eq!(
        compliance_key_of(
            &retracted,
            &ca,
            "a.test",
            &policy,
            now + Duration::from_secs(2)
        )
        .map(|_| ()),
        not_marked
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_submission_without_the_compliance_recipient_is_refused_and_gnupg_reads_a_good_one() {
    let node = TestNode::spawn("a.test").await.unwrap();
    let alice = node.person("alice").await;
    let bob = node.person("bob").await;
    let root = node
        .enrolled("root@a.test", "root password!", KdfParams::MIN, true)
        .await
        .unwrap();
    let key = compliance_key("a.test");
    let http = reqwest::Client::new();
    let put = |cert: String| {
        http.put(format!("{}/api/v1/admin/compliance/key", node.url))
            .bearer_auth(root.token())
            .json(&serde_json::json!({ "cert": cert }))
            .send()
    };

    // The secret key is refused (the node never keeps it); so is a key for another address.
    let tsk = String::from_utf8(key.as_tsk().armored().to_vec().unwrap()).unwrap();
    let r = put(tsk).await.unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "invalid_compliance_key", "{body}");
    let r = put(public_armored(&compliance_key("b.test")))
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    // Not for users: only an admin installs it.
    let r = http
        .put(format!("{}/api/v1/admin/compliance/key", node.url))
        .bearer_auth(alice.token())
        .json(&serde_json::json!({ "cert": public_armored(&key) }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(node.count("SELECT COUNT(*) FROM compliance_keys"), 0);

    let r = put(public_armored(&key)).await.unwrap();
    assert_eq!(r.status(), 200);
    let view: serde_json::Value = r.json().await.unwrap();
    assert_eq!(view["fingerprint"], key.fingerprint().to_hex());
    assert_eq!(
        node.count("SELECT COUNT(*) FROM txlog WHERE kind = 'compliance.key_installed'"),
        1
    );

    // Published, marked by the CA: the organisation record (both doors) and the directory.
    let policy = StandardPolicy::new();
    for path in ["/api/v1/org", "/.well-known/sealpost/org"] {
        let org: sealpost_proto::OrgInfo = http
            .get(format!("{}{path}", node.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let published = sealpost_client::crypto::cert_from_armored(
            org.compliance_key.as_deref().expect("published"),
        )
        .unwrap();
        assert_eq!(published.fingerprint(), key.fingerprint(), "{path}");
        sealpost_client::crypto::compliance_key_of(
            &published,
            alice.ca(),
            "a.test",
            &policy,
            SystemTime::now(),
        )
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    let served = alice.directory_certs("compliance@a.test").await.unwrap();
    assert_eq!(served.len(), 1);
    assert_eq!(served[0].fingerprint(), key.fingerprint());

    // The envelope answer lists it; a client that leaves it out is refused, and nothing is
    // stored.
    let (env, certs) = alice.envelope(&["bob@a.test".to_owned()]).await.unwrap();
    assert_eq!(env.compliance.len(), 1);
    assert_eq!(env.compliance[0].domain, "a.test");
    assert_eq!(env.compliance[0].fingerprint, key.fingerprint().to_hex());
    let without = without_compliance(&env, certs);
    let sealed = alice.seal_text(&env, &without, "left out", "b").unwrap();
    let e = alice.submit(&sealed.request).await.unwrap_err();
    assert_eq!(e.code(), Some("missing_compliance_recipient"), "{e}");
    assert!(e.to_string().contains("a.test"), "{e}");
    assert_eq!(node.count("SELECT COUNT(*) FROM messages"), 0);
    assert_eq!(node.count("SELECT COUNT(*) FROM mailbox"), 0);

    // The client encrypts to it: accepted, bob reads it, and GnuPG with the compliance secret
    // key decrypts what the node stored.
    let work = tempfile::tempdir().unwrap();
    let sent = alice
        .send(&note("bob@a.test", "For the archive too"), work.path())
        .await
        .unwrap();
    let m = bob.read(&sent.message_id, None, work.path()).await.unwrap();
    assert_eq!(m.subject, "For the archive too");
    // The head says which archive it went to, to the reader and the sender.
    for who in [&bob, &alice] {
        assert_eq!(
            archives_named(&node, who, &sent.message_id).await,
            serde_json::json!(["a.test"])
        );
    }
    let plain = gnupg_decrypts(
        &key,
        Some(alice.unlocked_cert()),
        &stored_head(&node, &sent.message_id),
    );
    assert!(plain.contains("For the archive too"), "{plain}");
}

/// A copy of a message put into `node`'s outbox for `domain` as a node that misbehaves would
/// (its envelope, signature and inline parts as given), picked up after a restart.
async fn queue_raw(node: &mut TestNode, sealed: &sealpost_client::Sealed, to: &str, domain: &str) {
    node.stop().await.unwrap();
    {
        let db = rusqlite::Connection::open(node.data().join("sealpost.db")).unwrap();
        let env: sealpost_proto::Envelope = serde_json::from_str(&sealed.request.envelope).unwrap();
        let parts: Vec<Vec<u8>> = (0..env.parts.len() as u32)
            .map(|i| STANDARD.decode(&sealed.request.inline_parts[&i]).unwrap())
            .collect();
        db.execute(
            "INSERT INTO messages (id, sender, recipients, envelope, signature, size, parts, accepted_at)
             VALUES (?1, ?2, '[]', ?3, ?4, 0, ?5, 0)",
            rusqlite::params![
                sealed.message_id,
                env.from,
                sealed.request.envelope,
                sealed.request.signature,
                parts.len() as i64
            ],
        )
        .unwrap();
        for (i, data) in parts.iter().enumerate() {
            db.execute(
                "INSERT INTO parts (message_id, idx, sha256, size, data) VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![
                    sealed.message_id,
                    i as i64,
                    Sha256::digest(data).to_vec(),
                    data.len() as i64,
                    data
                ],
            )
            .unwrap();
        }
        db.execute(
            "INSERT INTO outbox (message_id, domain, recipients, queued_at, expires_at)
             VALUES (?1, ?2, ?3, 0, 9999999999)",
            rusqlite::params![sealed.message_id, domain, format!("[\"{to}\"]")],
        )
        .unwrap();
    }
    node.start().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peers_compliance_key_is_required_over_federation() {
    let (mut alpha, beta) = peered("alpha.test", "beta.test").await;
    let alice = alpha.person("alice").await;
    let bob = beta.person("bob").await;
    let key = compliance_key("beta.test");
    install(&beta, &key).await;

    // alpha learns beta's compliance key through beta's directory; alice's client checks it
    // through her CA's bridge to beta's CA.
    let to = vec!["bob@beta.test".to_owned()];
    let (env, certs) = alice.envelope(&to).await.unwrap();
    assert_eq!(env.compliance.len(), 1, "{:?}", env.compliance);
    assert_eq!(env.compliance[0].domain, "beta.test");
    assert!(env.compliance[0].ca_cert.is_some());

    // Left out: refused at alpha already (the HTTP door)...
    let without = without_compliance(&env, certs);
    let sealed = alice.seal_text(&env, &without, "left out", "b").unwrap();
    let e = alice.submit(&sealed.request).await.unwrap_err();
    assert_eq!(e.code(), Some("missing_compliance_recipient"), "{e}");
    assert!(e.to_string().contains("beta.test"), "{e}");

    // With it: delivered, and GnuPG with beta's compliance secret key reads beta's copy.
    let id = delivered(&alice, &bob, "Across, archived").await;
    assert_eq!(
        archives_named(&beta, &bob, &id).await,
        serde_json::json!(["beta.test"])
    );
    let plain = gnupg_decrypts(&key, Some(alice.unlocked_cert()), &stored_head(&beta, &id));
    assert!(plain.contains("Across, archived"), "{plain}");

    // A node that sends it anyway (the federation door; alpha restarts to pick it up): beta
    // refuses it and stores nothing.
    queue_raw(&mut alpha, &sealed, "bob@beta.test", "beta.test").await;
    let reason = wait_for(Duration::from_secs(30), async || {
        federation_refusal(&alpha, &sealed.message_id)
    })
    .await
    .unwrap();
    assert!(reason.contains("compliance"), "{reason}");
    let stored: i64 = beta
        .db()
        .query_row(
            "SELECT COUNT(*) FROM messages WHERE id = ?1",
            [&sealed.message_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, 0, "nothing stored at beta");
}

/// Regression: a node that only ever received from a peer held none of that peer's compliance
/// keys, so its readers did not say that the sender's archive had a copy too, and the peer's
/// transfers were not checked for it. A transfer now teaches it the sender organisation's key
/// (asked in the background, the receipt does not wait): the head names both archives, and a
/// later transfer without the sender's archive is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transfer_teaches_the_recipients_node_the_senders_compliance_key() {
    let (mut alpha, beta) = peered("alpha.test", "beta.test").await;
    let alice = alpha.person("alice").await;
    let bob = beta.person("bob").await;
    install(&alpha, &compliance_key("alpha.test")).await;
    install(&beta, &compliance_key("beta.test")).await;

    let id = delivered(&alice, &bob, "Both archives").await;
    // Ours first, then the sender's, once beta has asked alpha's directory.
    wait_for(Duration::from_secs(30), async || {
        (archives_named(&beta, &bob, &id).await == serde_json::json!(["beta.test", "alpha.test"]))
            .then_some(())
    })
    .await
    .unwrap();

    // Sealed to beta's archive but not to alpha's, sent anyway by alpha's node: refused now.
    let to = vec!["bob@beta.test".to_owned()];
    let (env, certs) = alice.envelope(&to).await.unwrap();
    let alphas: Vec<&ComplianceKeyRef> = env
        .compliance
        .iter()
        .filter(|k| k.domain == "alpha.test")
        .collect();
    assert_eq!(alphas.len(), 1, "{:?}", env.compliance);
    let without_ours: Vec<Cert> = certs
        .into_iter()
        .filter(|c| c.fingerprint().to_hex() != alphas[0].fingerprint)
        .collect();
    let sealed = alice
        .seal_text(&env, &without_ours, "no alpha archive", "b")
        .unwrap();
    queue_raw(&mut alpha, &sealed, "bob@beta.test", "beta.test").await;
    let reason = wait_for(Duration::from_secs(30), async || {
        federation_refusal(&alpha, &sealed.message_id)
    })
    .await
    .unwrap();
    assert!(
        reason.contains("missing_compliance_recipient") && reason.contains("alpha.test"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mail_arriving_by_smtp_is_encrypted_to_the_compliance_key_too() {
    let node = smtp_node().await;
    let bob = node.person("bob").await;
    let key = compliance_key("a.test");
    install(&node, &key).await;
    let out = sealpost_tests::smtp::python_at(
        node.smtp.expect("the SMTP door is bound"),
        r#"
import smtplib
from email.message import EmailMessage
m = EmailMessage()
m['From'] = 'erin@outside.test'
m['To'] = 'bob@a.test'
m['Subject'] = 'Invoice 4711'
m.set_content('Please pay by Friday.')
with smtplib.SMTP(HOST, PORT) as s:
    print(s.send_message(m, from_addr='erin@outside.test', to_addrs=['bob@a.test']))
"#,
    )
    .await;
    assert_eq!(out.trim(), "{}", "taken");
    let inbox = bob.mailbox(sealpost_proto::Folder::Inbox).await.unwrap();
    assert_eq!(inbox.len(), 1);
    let id = &inbox[0].message_id;
    // bob reads it, and GnuPG with the compliance secret key decrypts the stored copy.
    let work = tempfile::tempdir().unwrap();
    assert_eq!(
        bob.read_mail(id, work.path()).await.unwrap().subject,
        "Invoice 4711"
    );
    let plain = gnupg_decrypts(&key, None, &stored_head(&node, id));
    assert!(plain.contains("Subject: Invoice 4711"), "{plain}");
    assert_eq!(
        archives_named(&node, &bob, id).await,
        serde_json::json!(["a.test"])
    );
    assert_eq!(head(&node, &bob, id).await["compliance_pending"], false);

    // A PGP/MIME mail encrypted to bob only is kept as it came: it waits for the compliance
    // session-key packet, and its head says so.
    let sealed = pgp_mime_to(&node, &bob, "Sealed 9").await;
    let h = head(&node, &bob, &sealed).await;
    assert_eq!(h["compliance"], serde_json::Value::Null, "{h}");
    assert_eq!(h["compliance_pending"], true, "{h}");
}

/// A node of `a.test` taking mail over SMTP.
async fn smtp_node() -> TestNode {
    TestNode::spawn_with("a.test", sealpost_tests::smtp::smtp_door)
        .await
        .unwrap()
}

/// An outside sender's PGP/MIME mail, encrypted by GnuPG to `to`'s key only, in over SMTP;
/// returns its message ID in `to`'s inbox.
async fn pgp_mime_to(node: &TestNode, to: &sealpost_client::Session, subject: &str) -> String {
    let before = inbox_ids(to).await;
    let gpg = Gpg::new();
    let cert = public_armored(to.unlocked_cert());
    assert!(gpg.gpg(&["--import"], &cert).status.success());
    let enc = gpg.gpg(
        &[
            "--encrypt",
            "--armor",
            "--trust-model",
            "always",
            "--recipient",
            &to.fingerprint(),
        ],
        &format!(
            "Content-Type: text/plain\r\nSubject: {subject}\r\n\r\nfor {} only\r\n",
            to.address()
        ),
    );
    assert!(enc.status.success());
    let armored = String::from_utf8(enc.stdout).unwrap();
    let out = sealpost_tests::smtp::python_at(
        node.smtp.expect("the SMTP door is bound"),
        &sealpost_tests::smtp::pgp_mime_script(to.address(), &armored),
    )
    .await;
    assert_eq!(out.trim(), "{}", "taken");
    inbox_ids(to)
        .await
        .into_iter()
        .find(|i| !before.contains(i))
        .expect("the PGP/MIME mail")
}

/// Posts `packet` as `who` to `POST /messages/{id}/compliance-key-packet`; status and code.
async fn post_packet(
    node: &TestNode,
    who: &sealpost_client::Session,
    id: &str,
    packet: Vec<u8>,
) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/messages/{id}/compliance-key-packet",
            node.url
        ))
        .bearer_auth(who.token())
        .header("content-type", "application/octet-stream")
        .body(packet)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    (status, v["code"].as_str().unwrap_or_default().to_owned())
}

/// A PKESK wrapping a made-up session key for `cert`'s encryption key, as a client makes it.
fn packet_for(cert: &Cert) -> Vec<u8> {
    let sk = sequoia_openpgp::crypto::SessionKey::new(32).unwrap();
    sealpost_client::crypto::compliance_packet(
        cert,
        &StandardPolicy::new(),
        SystemTime::now(),
        Some(sequoia_openpgp::types::SymmetricAlgorithm::AES256),
        &sk,
    )
    .unwrap()
}

/// Packets kept beside `id`, and `compliance.packet_added` log entries about it.
fn packets_kept(node: &TestNode, id: &str) -> (i64, i64) {
    let db = node.db();
    let count = |sql: &str| -> i64 { db.query_row(sql, [id], |r| r.get(0)).unwrap() };
    (
        count("SELECT COUNT(*) FROM compliance_packets WHERE message_id = ?1"),
        count("SELECT COUNT(*) FROM txlog WHERE kind = 'compliance.packet_added' AND subject = ?1"),
    )
}

/// The copy of `id` as the compliance archive serves it: the packets kept beside it in front
/// of part 0 (`service::compliance::archive_copy`, what an officer's read answers).
fn archived_copy(node: &TestNode, id: &str) -> Vec<u8> {
    let db = node.db();
    let mut stmt = db
        .prepare("SELECT packet FROM compliance_packets WHERE message_id = ?1 ORDER BY added_at")
        .unwrap();
    let packets: Vec<Vec<u8>> = stmt
        .query_map([id], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    sealpost::service::compliance::archive_copy(&packets, &stored_head(node, id)).unwrap()
}

/// A packet that must be refused: what it is, who posts it, the bytes, (status, code).
type Refusal<'a> = (
    &'a str,
    &'a sealpost_client::Session,
    Vec<u8>,
    (u16, &'a str),
);

/// What officer `who` sees of the waiting copies: the IDs the archive search lists with
/// `pending=true` (each flagged `pending`, and none of them in the `pending=false` search), and
/// `GET /compliance/archive/pending`'s count.
async fn waiting_in_archive(node: &TestNode, who: &sealpost_client::Session) -> (Vec<String>, u64) {
    let get = async |path: &str| get_json(node, who, path).await;
    let waiting = get("/compliance/archive?pending=true").await;
    let others = get("/compliance/archive?pending=false").await;
    let ids = |v: &serde_json::Value, flag: bool| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .inspect(|row| assert_eq!(row["pending"], flag, "{row}"))
            .map(|row| row["message_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (waiting, others) = (ids(&waiting, true), ids(&others, false));
    assert!(waiting.iter().all(|w| !others.contains(w)));
    let count = get("/compliance/archive/pending").await["pending"]
        .as_u64()
        .unwrap();
    (waiting, count)
}

/// Incoming OpenPGP mail encrypted to bob only waits for the compliance session-key packet;
/// the node refuses every packet that is not one for the current compliance key, from anyone
/// but bob, or a second time, and changes nothing; `client read` adds it on first opening, and
/// GnuPG with the compliance secret key then decrypts the archive's copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bobs_client_adds_the_compliance_packet_to_pgp_mime_mail_on_first_reading() {
    let node = smtp_node().await;
    let bob = node.person("bob").await;
    let alice = node.person("alice").await;
    let key = compliance_key("a.test");
    install(&node, &key).await;
    let id = pgp_mime_to(&node, &bob, "Sealed 12").await;
    assert_eq!(head(&node, &bob, &id).await["compliance_pending"], true);
    let stored = stored_head(&node, &id);

    // Refused, each with its code, and nothing changes.
    let good_shape = packet_for(&key);
    let other = compliance_key("a.test");
    let refusals: Vec<Refusal> = vec![
        (
            "not the owner",
            &alice,
            good_shape.clone(),
            (404, "unknown_message"),
        ),
        (
            "junk",
            &bob,
            b"not a packet at all".to_vec(),
            (400, "invalid_compliance_packet"),
        ),
        (
            "empty",
            &bob,
            Vec::new(),
            (400, "invalid_compliance_packet"),
        ),
        (
            "another packet",
            &bob,
            sequoia_openpgp::Packet::from(sequoia_openpgp::packet::UserID::from("x@a.test"))
                .to_vec()
                .unwrap(),
            (400, "invalid_compliance_packet"),
        ),
        (
            "two packets",
            &bob,
            [good_shape.clone(), good_shape.clone()].concat(),
            (400, "invalid_compliance_packet"),
        ),
        (
            "another key",
            &bob,
            packet_for(&other),
            (422, "wrong_compliance_key"),
        ),
        (
            "bob's own key",
            &bob,
            packet_for(bob.unlocked_cert()),
            (422, "wrong_compliance_key"),
        ),
        ("too large", &bob, vec![0xc1; 5000], (413, "too_large")),
    ];
    for (what, who, packet, want) in refusals {
        let got = post_packet(&node, who, &id, packet).await;
        assert_eq!((got.0, got.1.as_str()), want, "{what}");
        assert_eq!(packets_kept(&node, &id), (0, 0), "{what}: nothing kept");
        assert_eq!(
            head(&node, &bob, &id).await["compliance_pending"],
            true,
            "{what}"
        );
    }
    assert_eq!(
        stored_head(&node, &id),
        stored,
        "the stored ciphertext is as it came"
    );
    // The archive shows it waiting: the row's flag, the filter, the count.
    node.admin(&["compliance", "officer", "add", "alice@a.test"])
        .await
        .unwrap();
    assert_eq!(
        waiting_in_archive(&node, &alice).await,
        (vec![id.clone()], 1)
    );

    // bob reads it with the CLI client: it adds the packet.
    let work = tempfile::tempdir().unwrap();
    let mail = bob.read_mail(&id, work.path()).await.unwrap();
    assert_eq!(mail.subject, "Sealed 12");
    assert!(mail.compliance_added);
    assert_eq!(packets_kept(&node, &id), (1, 1));
    let h = head(&node, &bob, &id).await;
    assert_eq!(h["compliance_pending"], false, "{h}");
    assert_eq!(h["compliance"], serde_json::json!(["a.test"]), "{h}");
    assert_eq!(
        stored_head(&node, &id),
        stored,
        "kept beside, not rewritten"
    );
    assert_eq!(waiting_in_archive(&node, &alice).await, (vec![], 0));
    let plain = gnupg_decrypts(&key, None, &archived_copy(&node, &id));
    assert!(plain.contains("Subject: Sealed 12"), "{plain}");
    // Reading again adds nothing; a second packet is refused.
    assert!(
        !bob.read_mail(&id, work.path())
            .await
            .unwrap()
            .compliance_added
    );
    let got = post_packet(&node, &bob, &id, packet_for(&key)).await;
    assert_eq!((got.0, got.1.as_str()), (409, "compliance_not_pending"));
    assert_eq!(packets_kept(&node, &id), (1, 1));

    // A client that lies (a packet for the compliance key around another session key) is
    // taken, since the node cannot see inside; the archive's copy then does not decrypt.
    let lied = pgp_mime_to(&node, &bob, "Sealed 13").await;
    assert_eq!(
        post_packet(&node, &bob, &lied, packet_for(&key)).await.0,
        204
    );
    let gpg = Gpg::new();
    let tsk = String::from_utf8(key.as_tsk().armored().to_vec().unwrap()).unwrap();
    assert!(gpg.gpg(&["--import"], &tsk).status.success());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lied.pgp");
    std::fs::write(&file, archived_copy(&node, &lied)).unwrap();
    assert!(
        !gpg.gpg(&["--decrypt", file.to_str().unwrap()], "")
            .status
            .success()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gateway_seals_a_mail_programs_mail_to_the_compliance_key_too() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, tls_key) = sealpost_tests::smtp::self_signed_cert(certs.path()).unwrap();
    let node = TestNode::spawn_with("a.test", move |c| {
        c.federation.enabled = false;
        c.submission.enabled = true;
        c.submission.listen = "127.0.0.1:0".parse().unwrap();
        c.submission.tls_cert = cert.display().to_string();
        c.submission.tls_key = tls_key.display().to_string();
    })
    .await
    .unwrap();
    let alice = node.person("alice").await;
    let bob = node.person("bob").await;
    let key = compliance_key("a.test");
    install(&node, &key).await;
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/v1/app-passwords", node.url))
        .bearer_auth(alice.token())
        .json(&serde_json::json!({ "label": "mail program" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let password = created["password"].as_str().unwrap();
    let script = format!(
        r#"
import smtplib, ssl
from email.message import EmailMessage
m = EmailMessage()
m['From'] = 'alice@a.test'
m['To'] = 'bob@a.test'
m['Subject'] = 'Budget 2027'
m.set_content('Sent from a mail program.')
tls = ssl.create_default_context()
tls.check_hostname = False
tls.verify_mode = ssl.CERT_NONE
with smtplib.SMTP(HOST, PORT, timeout=30) as s:
    s.starttls(context=tls)
    s.login('alice@a.test', '{password}')
    print(s.send_message(m, from_addr='alice@a.test', to_addrs=['bob@a.test']))
"#
    );
    let out = sealpost_tests::smtp::python_at(node.submission().unwrap(), &script).await;
    assert_eq!(out.trim(), "{}", "taken");
    let inbox = bob.mailbox(sealpost_proto::Folder::Inbox).await.unwrap();
    assert_eq!(inbox.len(), 1);
    let plain = gnupg_decrypts(&key, None, &stored_head(&node, &inbox[0].message_id));
    assert!(plain.contains("Subject: Budget 2027"), "{plain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pickup_reply_is_encrypted_to_the_compliance_key_and_refused_without_it() {
    let node = TestNode::spawn_with("a.test", |c| {
        c.federation.enabled = false;
        c.pickup.per_ip_per_minute = 10_000;
    })
    .await
    .unwrap();
    let alice = node.person("alice").await;
    let key = compliance_key("a.test");
    install(&node, &key).await;
    let work = tempfile::tempdir().unwrap();
    let (_, issued) = alice
        .send_all(
            &Outgoing {
                pickup_kdf: Some(KdfParams::MIN),
                ..note("carol@outside.test", "Statement")
            },
            work.path(),
        )
        .await
        .unwrap();
    let carol =
        sealpost_client::pickup::PickupClient::new(issued[0].link.as_deref().unwrap()).unwrap();
    let u = carol
        .unlock(issued[0].muc.as_deref().unwrap())
        .await
        .unwrap();

    // Without it (sealed to alice and the pickup key only, as an old page would): refused.
    let http = reqwest::Client::new();
    let session = &u.info.session;
    let env: EnvelopeResponse = http
        .post(format!("{}/api/v1/pickup/envelope", node.url))
        .bearer_auth(session)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        env.compliance.len(),
        1,
        "the reply's envelope answer lists it"
    );
    let policy = StandardPolicy::new();
    let mut sealed = Vec::new();
    sealpost_client::crypto::seal(
        &[
            alice.unlocked_cert().clone().strip_secret_key_material(),
            u.key.clone().strip_secret_key_material(),
        ],
        &u.key,
        &policy,
        SystemTime::now(),
        &mut &b"left out"[..],
        &mut sealed,
    )
    .unwrap();
    let envelope = sealpost_proto::Envelope {
        v: 1,
        message_id: env.message_id,
        from: "carol@outside.test".into(),
        to: vec!["alice@a.test".into()],
        created_at: sealpost_proto::now(),
        parts: vec![sealpost_proto::EnvelopePart {
            sha256: hex::encode(Sha256::digest(&sealed)),
            size: sealed.len() as u64,
        }],
        pickup: Default::default(),
        external: Default::default(),
        registered: Default::default(),
    };
    let text = serde_json::to_string(&envelope).unwrap();
    let r = http
        .post(format!("{}/api/v1/pickup/submit", node.url))
        .bearer_auth(session)
        .json(&sealpost_proto::SubmitRequest {
            signature: sealpost_client::crypto::sign_detached(&u.key, &policy, text.as_bytes())
                .unwrap(),
            envelope: text,
            inline_parts: [(0, STANDARD.encode(&sealed))].into(),
            pickups: vec![],
            pickup_continuations: vec![],
            external_copies: Default::default(),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "missing_compliance_recipient", "{body}");
    let inbox = || node.count("SELECT COUNT(*) FROM mailbox WHERE folder = 'inbox'");
    assert_eq!(inbox(), 0, "nothing stored");

    // The client's reply checks the marking and encrypts to it: accepted, GnuPG reads it.
    let sent = carol
        .reply(&u, "Re: Statement", "Signed and returned.", &[])
        .await
        .unwrap();
    assert_eq!(inbox(), 1);
    let plain = gnupg_decrypts(&key, Some(&u.key), &stored_head(&node, &sent.message_id));
    assert!(plain.contains("Signed and returned."), "{plain}");
}
