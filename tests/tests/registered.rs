//! Evidence of a message's life (docs/evidence.md) between two real nodes on loopback, each
//! with a real RFC 3161 TSA (`openssl ts -reply` behind HTTP): the sender's node records the
//! submission, the recipient's node the relay acceptance and the consignment; each bundle
//! passes the offline verifier (`sealpost evidence verify`'s code), `gpg --verify` on every
//! signature and `openssl ts -verify` on every batch's token, and one changed byte in any part
//! fails with that part named. Registered mail to a pickup recipient: parts withheld until the
//! page's signed decision, the node's record of the unlock code, refusal, and
//! `NoAcceptanceByRecipient` at expiry and withdrawal.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sealpost::config::TimestampingConfig;
use sealpost::evidence::{Anchors, Bundle, Event, Verified, verify};
use sealpost_client::pickup::PickupClient;
use sealpost_client::{Outgoing, Session};
use sealpost_proto::{Folder, KdfParams, ReceiptDecision};
use sealpost_tests::gpg::Gpg;
use sealpost_tests::tsa::Tsa;
use sealpost_tests::{TestNode, peer_both, wait_for};

fn stamped(tsa: &Tsa) -> impl FnOnce(&mut sealpost::config::Config) {
    let cfg = TimestampingConfig {
        url: tsa.url(),
        ca_file: tsa.ca_file().to_str().unwrap().to_owned(),
        timeout_secs: 10,
    };
    move |c| {
        c.timestamping = Some(cfg);
        c.log.checkpoint_interval_secs = 1;
    }
}

fn note(to: &str, subject: &str) -> Outgoing {
    Outgoing {
        to: vec![to.to_owned()],
        subject: subject.into(),
        body: format!("body of {subject}"),
        attachments: vec![],
        pickup_kdf: None,
    }
}

/// The bundle of `id` for `who` once it holds `n` records and none is waiting for a batch.
async fn bundle_of(who: &Session, id: &str, n: usize) -> Bundle {
    let value = wait_for(Duration::from_secs(30), async || {
        let (bundle, pending) = who.evidence(id).await.ok()?;
        let records = bundle["records"].as_array()?.len();
        (pending == 0 && records >= n).then_some(bundle)
    })
    .await
    .expect("the records are sealed into a time-stamped batch");
    serde_json::from_value(value).unwrap()
}

fn check(
    bundle: &Bundle,
    tsa: &Tsa,
    node: &TestNode,
) -> Result<Verified, sealpost::evidence::VerifyError> {
    let pem = std::fs::read(tsa.ca_file()).unwrap();
    verify(
        &serde_json::to_vec(bundle).unwrap(),
        &Anchors {
            tsa_ca: Some(&pem),
            ca: Some(&node.context.ca),
            now: std::time::SystemTime::now(),
        },
    )
}

fn events(v: &Verified) -> Vec<(Event, Option<String>)> {
    v.records
        .iter()
        .map(|r| (r.record.event, r.record.recipient.clone()))
        .collect()
}

/// `gpg --verify` of every record and batch head of `bundle`, with only its evidence key
/// imported; returns gpg's reports.
fn gpg_verifies(bundle: &Bundle, dir: &Path) -> Vec<String> {
    let gpg = Gpg::new();
    let out = gpg.gpg(&["--import"], &bundle.evidence_cert);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut parts: Vec<(Vec<u8>, &str)> = bundle
        .records
        .iter()
        .map(|r| (B64.decode(&r.record).unwrap(), r.signature.as_str()))
        .collect();
    parts.extend(
        bundle
            .batches
            .iter()
            .map(|b| (B64.decode(&b.head).unwrap(), b.signature.as_str())),
    );
    parts
        .iter()
        .enumerate()
        .map(|(i, (data, sig))| {
            let (d, s) = (dir.join(format!("{i}.json")), dir.join(format!("{i}.sig")));
            std::fs::write(&d, data).unwrap();
            std::fs::write(&s, sig).unwrap();
            let out = gpg.gpg(&["--verify", s.to_str().unwrap(), d.to_str().unwrap()], "");
            let report = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "gpg --verify {i}: {report}");
            assert!(report.contains("Good signature"), "{report}");
            // One changed byte of the signed data: gpg says BAD.
            let mut bad = data.clone();
            bad[1] ^= 0x01;
            std::fs::write(&d, &bad).unwrap();
            let out = gpg.gpg(&["--verify", s.to_str().unwrap(), d.to_str().unwrap()], "");
            assert!(!out.status.success(), "gpg accepted a changed record");
            report
        })
        .collect()
}

/// `openssl ts -verify -data HEAD -in TOKEN -token_in -CAfile TSA-CA` for every batch.
fn openssl_verifies(bundle: &Bundle, tsa: &Tsa, dir: &Path) {
    for (i, b) in bundle.batches.iter().enumerate() {
        let (head, token) = (
            dir.join(format!("head{i}.json")),
            dir.join(format!("tok{i}.der")),
        );
        std::fs::write(&head, B64.decode(&b.head).unwrap()).unwrap();
        std::fs::write(&token, B64.decode(&b.timestamp).unwrap()).unwrap();
        let run = |data: &Path| {
            std::process::Command::new("openssl")
                .args(["ts", "-verify", "-token_in", "-in"])
                .arg(&token)
                .arg("-data")
                .arg(data)
                .arg("-CAfile")
                .arg(tsa.ca_file())
                .output()
                .unwrap()
        };
        let out = run(&head);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Verification: OK"),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut bad = B64.decode(&b.head).unwrap();
        bad[2] ^= 0x01;
        let other = dir.join(format!("bad{i}.json"));
        std::fs::write(&other, bad).unwrap();
        assert!(!String::from_utf8_lossy(&run(&other).stdout).contains("Verification: OK"));
    }
}

fn flip_b64(s: &str, at: usize) -> String {
    let mut v = B64.decode(s).unwrap();
    let i = at.min(v.len() - 1);
    v[i] ^= 0x01;
    B64.encode(v)
}

/// One changed byte in the armored signature's base64 body.
fn flip_armor(s: &str) -> String {
    let mut lines: Vec<String> = s.lines().map(str::to_owned).collect();
    let blank = lines.iter().position(|l| l.is_empty()).unwrap();
    let line = &mut lines[blank + 1];
    let pos = line.len() / 2;
    let c = if &line[pos..pos + 1] == "A" { "B" } else { "A" };
    line.replace_range(pos..pos + 1, c);
    lines.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn evidence_of_a_message_to_a_peer_verifies_offline_with_gpg_and_openssl() {
    let tsa = Tsa::start().await.unwrap();
    let alpha = TestNode::spawn_with("alpha.test", stamped(&tsa))
        .await
        .unwrap();
    let beta = TestNode::spawn_with("beta.test", stamped(&tsa))
        .await
        .unwrap();
    peer_both(&alpha, &beta).await;
    let alice = alpha.person("alice").await;
    let bob = beta.person("bob").await;
    let carol = alpha.person("carol").await;
    let work = tempfile::tempdir().unwrap();

    let sent = alice
        .send(&note("bob@beta.test", "For the record"), work.path())
        .await
        .unwrap();
    let id = sent.message_id.clone();
    wait_for(Duration::from_secs(60), async || {
        let inbox = bob.mailbox(Folder::Inbox).await.ok()?;
        inbox.iter().any(|i| i.message_id == id).then_some(())
    })
    .await
    .unwrap();

    // At alpha, the sender's bundle: the submission, signed by alpha's evidence key.
    let at_alpha = bundle_of(&alice, &id, 1).await;
    let v = check(&at_alpha, &tsa, &alpha).unwrap();
    assert_eq!(events(&v), [(Event::SubmissionAcceptance, None)]);
    assert_eq!(v.records[0].record.sender, "alice@alpha.test");
    assert_eq!(v.records[0].record.node, "alpha.test");
    // At beta, the recipient's bundle: beta accepted the relay and put it in bob's mailbox.
    let at_beta = bundle_of(&bob, &id, 2).await;
    let v = check(&at_beta, &tsa, &beta).unwrap();
    let bob_addr = Some("bob@beta.test".to_owned());
    assert_eq!(
        events(&v),
        [
            (Event::RelayAcceptance, bob_addr.clone()),
            (Event::ContentConsignment, bob_addr)
        ]
    );
    // Each record lists the ciphertext parts' hashes the sender signed.
    let m = bob.read(&id, None, work.path()).await.unwrap();
    assert_eq!(m.verified_sender, "alice@alpha.test");
    assert!(!v.records[0].record.parts.is_empty());
    // The bundle is checked against the CA pinned: alpha's bundle is not beta's.
    assert_eq!(check(&at_alpha, &tsa, &beta).unwrap_err().part, "ca_cert");
    // Somebody else at alpha has no evidence of alice's message.
    assert!(carol.evidence(&id).await.is_err());

    // `sealpost evidence verify` on the file `sealpost client evidence -o` writes.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bundle.json");
    let (value, _) = bob.evidence(&id).await.unwrap();
    std::fs::write(&file, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    let pinned = dir.path().join("beta-ca.asc");
    std::fs::write(&pinned, &beta.context.ca_armored).unwrap();
    let tsa_ca = tsa.ca_file();
    let report =
        sealpost::cli::evidence_report(&file, Some(tsa_ca.as_path()), Some(pinned.as_path()))
            .unwrap();
    assert!(report.contains("every part verifies"), "{report}");
    assert!(
        report.contains("RelayAcceptance  bob@beta.test  beta.test"),
        "{report}"
    );
    assert!(report.contains("(as pinned)"), "{report}");
    let mut tampered = at_beta.clone();
    tampered.batches[0].timestamp = flip_b64(&tampered.batches[0].timestamp, 40);
    std::fs::write(&file, serde_json::to_vec(&tampered).unwrap()).unwrap();
    let err = sealpost::cli::evidence_report(&file, Some(tsa_ca.as_path()), None).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("evidence does not verify: batches[0].timestamp:"),
        "{err}"
    );

    // The same parts with the standard tools.
    for b in [&at_alpha, &at_beta] {
        let reports = gpg_verifies(b, dir.path());
        assert!(
            reports.iter().all(|r| r.contains("evidence@")),
            "{reports:?}"
        );
        openssl_verifies(b, &tsa, dir.path());
    }

    // One changed byte in any part fails, naming that part.
    type Tamper = fn(&mut Bundle);
    let cases: [(&str, Tamper); 7] = [
        ("records[0].record", |b| {
            b.records[0].record = flip_b64(&b.records[0].record, 30)
        }),
        ("records[0].signature", |b| {
            b.records[0].signature = flip_armor(&b.records[0].signature)
        }),
        ("records[1].proof", |b| {
            b.records[1].proof = flip_b64(&b.records[1].proof, 5)
        }),
        ("batches[0].head", |b| {
            b.batches[0].head = flip_b64(&b.batches[0].head, 12)
        }),
        ("batches[0].signature", |b| {
            b.batches[0].signature = flip_armor(&b.batches[0].signature)
        }),
        ("batches[0].timestamp", |b| {
            b.batches[0].timestamp = flip_b64(&b.batches[0].timestamp, 9999)
        }),
        ("evidence_cert", |b| {
            b.evidence_cert = flip_armor(&b.evidence_cert)
        }),
    ];
    for (part, tamper) in cases {
        let mut b = at_beta.clone();
        if b.records[1].proof.is_empty() && part == "records[1].proof" {
            // Both records in a one-leaf batch each: no path to change.
            continue;
        }
        tamper(&mut b);
        let err = check(&b, &tsa, &beta).unwrap_err();
        assert_eq!(err.part, part, "{err}");
    }
}

/// `GET PATH` at `node` as `who`: status and body.
async fn get(node: &TestNode, who: &Session, path: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1{path}", node.url))
        .bearer_auth(who.token())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registered_message_is_withheld_until_the_signed_receipt_and_a_refusal_is_recorded() {
    let tsa = Tsa::start().await.unwrap();
    let alpha = TestNode::spawn_with("alpha.test", stamped(&tsa))
        .await
        .unwrap();
    let beta = TestNode::spawn_with("beta.test", stamped(&tsa))
        .await
        .unwrap();
    peer_both(&alpha, &beta).await;
    let alice = alpha.person("alice").await;
    let bob = beta.person("bob").await;
    let work = tempfile::tempdir().unwrap();
    let to_bob = ["bob@beta.test".to_owned()];

    let arrived = async |subject: &str| {
        let id = alice
            .send_registered(&note("bob@beta.test", subject), &to_bob, work.path())
            .await
            .unwrap()
            .message_id;
        wait_for(Duration::from_secs(60), async || {
            let inbox = bob.mailbox(Folder::Inbox).await.ok()?;
            inbox.iter().any(|i| i.message_id == id).then_some(())
        })
        .await
        .unwrap();
        id
    };
    let id = arrived("Registered").await;

    // Before the receipt: the message says so, and its parts are withheld.
    let (status, m) = get(&beta, &bob, &format!("/messages/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(m["registered"]["state"], "pending");
    assert_eq!(
        m["registered"]["notice"],
        "registered: opening it confirms receipt"
    );
    let (status, err) = get(&beta, &bob, &format!("/messages/{id}/parts/0")).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (403, Some("receipt_required"))
    );

    // The CLI client's read signs the receipt, then opens it.
    let read = bob.read(&id, None, work.path()).await.unwrap();
    assert_eq!(read.verified_sender, "alice@alpha.test");
    let (status, m) = get(&beta, &bob, &format!("/messages/{id}")).await;
    assert_eq!(
        (status, m["registered"]["state"].as_str()),
        (200, Some("accepted"))
    );
    assert_eq!(
        get(&beta, &bob, &format!("/messages/{id}/parts/0")).await.0,
        200
    );

    // The acceptance is evidence at bob's node, with bob's signed statement in it.
    let b = bundle_of(&bob, &id, 3).await;
    let v = check(&b, &tsa, &beta).unwrap();
    let bob_addr = Some("bob@beta.test".to_owned());
    assert_eq!(
        events(&v),
        [
            (Event::RelayAcceptance, bob_addr.clone()),
            (Event::ContentConsignment, bob_addr.clone()),
            (Event::AcceptanceByRecipient, bob_addr.clone()),
        ]
    );
    let accepted = &v.records[2].record;
    let statement = &accepted.detail["receipt_statement"];
    let st: sealpost_proto::ReceiptStatement = serde_json::from_str(statement).unwrap();
    assert_eq!(st.message_id, id);
    assert_eq!(st.decision, sealpost_proto::ReceiptDecision::Accept);
    assert_eq!(st.parts, accepted.parts);
    // Anyone holding bob's key can check his signature on the statement.
    let bob_cert = sealpost::crypto::cert_from_armored(&bob.account.cert).unwrap();
    sealpost::crypto::verify_detached(
        &bob_cert,
        &sequoia_openpgp::policy::StandardPolicy::new(),
        std::time::SystemTime::now(),
        statement.as_bytes(),
        &accepted.detail["receipt_signature"],
    )
    .unwrap();

    // The acceptance reaches alpha: alice's bundle carries beta's records of her message
    // (asked over federation), checked under beta's CA.
    let value = wait_for(Duration::from_secs(30), async || {
        let (bundle, _) = alice.evidence(&id).await.ok()?;
        let theirs = bundle["peers"][0]["records"].as_array()?.len();
        (theirs >= 3).then_some(bundle)
    })
    .await
    .expect("beta's records reach alice's bundle");
    let at_alpha: Bundle = serde_json::from_value(value).unwrap();
    let v = check(&at_alpha, &tsa, &alpha).unwrap();
    assert_eq!(events(&v), [(Event::SubmissionAcceptance, None)]);
    assert_eq!(v.peers.len(), 1);
    assert_eq!(
        v.peers[0].ca_fingerprint,
        beta.context.ca.fingerprint().to_hex()
    );
    assert_eq!(
        events(&v.peers[0]).last().unwrap(),
        &(Event::AcceptanceByRecipient, bob_addr.clone())
    );
    // One changed byte in beta's part is named within it.
    let mut bad = at_alpha.clone();
    bad.peers[0].records[2].signature = flip_armor(&bad.peers[0].records[2].signature);
    assert_eq!(
        check(&bad, &tsa, &alpha).unwrap_err().part,
        "peers[0].records[2].signature"
    );

    // A refusal: signed, kept as RejectionByRecipient, and the parts stay closed.
    let id2 = arrived("Refuse me").await;
    assert_eq!(
        bob.refuse(&id2).await.unwrap(),
        sealpost_proto::ReceiptDecision::Refuse
    );
    let (status, err) = get(&beta, &bob, &format!("/messages/{id2}/parts/0")).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (403, Some("registered_refused"))
    );
    assert!(bob.read(&id2, None, work.path()).await.is_err());
    let b = bundle_of(&bob, &id2, 3).await;
    let v = check(&b, &tsa, &beta).unwrap();
    assert_eq!(
        events(&v).last().unwrap(),
        &(Event::RejectionByRecipient, bob_addr)
    );
    // The refusal stands.
    let (status, m) = get(&beta, &bob, &format!("/messages/{id2}")).await;
    assert_eq!(
        (status, m["registered"]["state"].as_str()),
        (200, Some("refused"))
    );
}

/// A registered message from `who` to the pickup recipient `to`, and that recipient's side,
/// unlocked with the code.
async fn registered_pickup(
    who: &Session,
    to: &str,
    subject: &str,
    work: &Path,
) -> (String, PickupClient, sealpost_client::pickup::Unlocked) {
    let msg = Outgoing {
        pickup_kdf: Some(KdfParams::MIN),
        ..note(to, subject)
    };
    let (resp, issued) = who
        .send_all_with(&msg, &[to.to_owned()], work)
        .await
        .unwrap();
    let page = PickupClient::new(issued[0].link.as_deref().unwrap()).unwrap();
    let u = page
        .unlock(issued[0].muc.as_deref().unwrap())
        .await
        .unwrap();
    (resp.message_id, page, u)
}

fn code_of<T>(r: sealpost_client::Result<T>) -> String {
    r.err()
        .and_then(|e| e.code().map(str::to_owned))
        .unwrap_or_default()
}

/// The verified records of `event` in `v`.
fn of_event(v: &Verified, event: Event) -> Vec<&sealpost::evidence::Record> {
    v.records
        .iter()
        .map(|r| &r.record)
        .filter(|r| r.event == event)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registered_mail_to_a_pickup_recipient_is_withheld_until_the_page_signs_and_expiry_is_recorded()
 {
    let tsa = Tsa::start().await.unwrap();
    let alpha = TestNode::spawn_with("alpha.test", stamped(&tsa))
        .await
        .unwrap();
    let alice = alpha.person("alice").await;
    let work = tempfile::tempdir().unwrap();
    let env_of = |u: &sealpost_client::pickup::Unlocked| -> sealpost_proto::Envelope {
        serde_json::from_str(&u.info.envelope).unwrap()
    };

    // carol: the unlock answer says it is registered, and no part goes out before a decision.
    let (id, carol, u) =
        registered_pickup(&alice, "carol@outside.test", "Contract", work.path()).await;
    let reg = u.info.registered.clone().expect("registered for carol");
    assert_eq!(
        (reg.state.as_str(), reg.notice.as_str()),
        ("pending", "registered: opening it confirms receipt")
    );
    let env = env_of(&u);
    assert_eq!(
        code_of(carol.part(&u.info.session, &env, 0).await),
        "receipt_required"
    );
    let thread_part = reqwest::Client::new()
        .get(format!("{}/api/v1/pickup/messages/{id}/parts/0", alpha.url))
        .bearer_auth(&u.info.session)
        .send()
        .await
        .unwrap();
    assert_eq!(thread_part.status().as_u16(), 403);
    assert!(carol.read(&u).await.is_err());
    // Not read: the sender sees no `read` for carol.
    assert!(alpha.logged("pickup.read").is_empty());

    // Signed with the pickup key (whose secret the sender's client made): refused, nothing kept.
    let statement = sealpost_proto::ReceiptStatement::about(
        &env,
        "carol@outside.test",
        ReceiptDecision::Accept,
        sealpost::now(),
    );
    let bytes = statement.to_bytes();
    let forged = sealpost_proto::PickupReceiptRequest {
        statement: String::from_utf8(bytes.clone()).unwrap(),
        signature: sealpost_client::crypto::sign_detached(
            &u.key,
            &sequoia_openpgp::policy::StandardPolicy::new(),
            &bytes,
        )
        .unwrap(),
        public_key: sealpost_client::crypto::cert_to_armored(
            &u.key.clone().strip_secret_key_material(),
        )
        .unwrap(),
    };
    assert_eq!(
        code_of(carol.post_receipt(&u.info.session, &forged).await),
        "invalid_receipt"
    );
    // A statement about someone else: refused too.
    let mut other = statement.clone();
    other.recipient = "mallory@outside.test".into();
    let (page_key, _) = sealpost_client::crypto::generate_user_key(
        "carol@outside.test",
        None,
        std::time::SystemTime::now(),
    )
    .unwrap();
    let other_bytes = other.to_bytes();
    let wrong = sealpost_proto::PickupReceiptRequest {
        statement: String::from_utf8(other_bytes.clone()).unwrap(),
        signature: sealpost_client::crypto::sign_detached(
            &page_key,
            &sequoia_openpgp::policy::StandardPolicy::new(),
            &other_bytes,
        )
        .unwrap(),
        public_key: sealpost_client::crypto::cert_to_armored(&page_key.strip_secret_key_material())
            .unwrap(),
    };
    assert_eq!(
        code_of(carol.post_receipt(&u.info.session, &wrong).await),
        "invalid_receipt"
    );
    assert_eq!(
        code_of(carol.part(&u.info.session, &env, 0).await),
        "receipt_required"
    );

    // Accepted with a key made on the spot: the parts are released and the message reads.
    assert_eq!(
        carol.decide(&u, ReceiptDecision::Accept).await.unwrap(),
        ReceiptDecision::Accept
    );
    let read = carol.read(&u).await.unwrap();
    assert_eq!(read.head.body, "body of Contract");
    // The same decision again is answered as before; the other one is refused.
    assert_eq!(
        carol.decide(&u, ReceiptDecision::Accept).await.unwrap(),
        ReceiptDecision::Accept
    );
    assert_eq!(
        code_of(carol.decide(&u, ReceiptDecision::Refuse).await),
        "receipt_given"
    );

    // dave refuses: closed for good.
    let (id2, dave, u2) =
        registered_pickup(&alice, "dave@outside.test", "Refused", work.path()).await;
    assert_eq!(
        dave.decide(&u2, ReceiptDecision::Refuse).await.unwrap(),
        ReceiptDecision::Refuse
    );
    assert_eq!(
        code_of(dave.part(&u2.info.session, &env_of(&u2), 0).await),
        "registered_refused"
    );
    assert_eq!(
        code_of(dave.decide(&u2, ReceiptDecision::Accept).await),
        "receipt_given"
    );

    // erin never decides and her pickup expires; frank's is withdrawn undecided.
    let (id3, _, _) = registered_pickup(&alice, "erin@outside.test", "Expires", work.path()).await;
    let (id4, _, _) =
        registered_pickup(&alice, "frank@outside.test", "Withdrawn", work.path()).await;
    {
        let db = rusqlite::Connection::open(alpha.data().join("sealpost.db")).unwrap();
        db.busy_timeout(Duration::from_secs(10)).unwrap();
        db.execute(
            "UPDATE pickups SET expires_at = ?1 WHERE address = 'erin@outside.test'",
            [sealpost::now() - 1],
        )
        .unwrap();
    }
    let swept = sealpost::service::pickup::sweep(&alpha.context, sealpost::now())
        .await
        .unwrap();
    assert_eq!(swept, 1);
    let withdrawn = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/messages/{id4}/pickups/withdraw",
            alpha.url
        ))
        .bearer_auth(alice.token())
        .json(&serde_json::json!({"address": "frank@outside.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(withdrawn.status().as_u16(), 204);

    // alice's bundle of each: verifies offline, and says what happened.
    let b = bundle_of(&alice, &id, 2).await;
    let v = check(&b, &tsa, &alpha).unwrap();
    let acc = of_event(&v, Event::AcceptanceByRecipient);
    assert_eq!(acc.len(), 1);
    let acc = acc[0];
    assert_eq!(acc.recipient.as_deref(), Some("carol@outside.test"));
    assert_eq!(acc.detail["method"], "pickup-muc");
    assert!(acc.detail["muc_proven_at"].parse::<i64>().unwrap() <= acc.at);
    assert!(acc.detail["recipient_key_certified"].starts_with("none: made in the pickup page"));
    assert_eq!(acc.detail["pickup_key"], env.pickup["carol@outside.test"]);
    assert_ne!(acc.detail["recipient_key"], acc.detail["pickup_key"]);
    // The page's key, in the record, checks carol's signature on the statement.
    let page_cert = sealpost::crypto::cert_from_armored(&acc.detail["recipient_cert"]).unwrap();
    assert_eq!(
        page_cert.fingerprint().to_hex(),
        acc.detail["recipient_key"]
    );
    let st: sealpost_proto::ReceiptStatement =
        serde_json::from_str(&acc.detail["receipt_statement"]).unwrap();
    assert_eq!(
        (st.message_id.as_str(), st.decision),
        (id.as_str(), ReceiptDecision::Accept)
    );
    sealpost::crypto::verify_detached(
        &page_cert,
        &sequoia_openpgp::policy::StandardPolicy::new(),
        std::time::SystemTime::now(),
        acc.detail["receipt_statement"].as_bytes(),
        &acc.detail["receipt_signature"],
    )
    .unwrap();
    // `sealpost evidence verify` on the file, and one changed byte in the acceptance named.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bundle.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&b).unwrap()).unwrap();
    let tsa_ca = tsa.ca_file();
    let report = sealpost::cli::evidence_report(&file, Some(tsa_ca.as_path()), None).unwrap();
    assert!(report.contains("every part verifies"), "{report}");
    assert!(
        report.contains("AcceptanceByRecipient  carol@outside.test"),
        "{report}"
    );
    let i = v
        .records
        .iter()
        .position(|r| r.record.event == Event::AcceptanceByRecipient)
        .unwrap();
    let mut bad = b.clone();
    bad.records[i].record = flip_b64(&bad.records[i].record, 200);
    assert_eq!(
        check(&bad, &tsa, &alpha).unwrap_err().part,
        format!("records[{i}].record")
    );
    let mut bad = b.clone();
    bad.records[i].signature = flip_armor(&bad.records[i].signature);
    assert_eq!(
        check(&bad, &tsa, &alpha).unwrap_err().part,
        format!("records[{i}].signature")
    );

    let v2 = check(&bundle_of(&alice, &id2, 2).await, &tsa, &alpha).unwrap();
    let rej = of_event(&v2, Event::RejectionByRecipient);
    assert_eq!(rej.len(), 1);
    assert_eq!(rej[0].detail["method"], "pickup-muc");
    assert!(of_event(&v2, Event::NoAcceptanceByRecipient).is_empty());
    for (id, address, reason) in [
        (&id3, "erin@outside.test", "expired"),
        (&id4, "frank@outside.test", "withdrawn"),
    ] {
        let v = check(&bundle_of(&alice, id, 2).await, &tsa, &alpha).unwrap();
        let none = of_event(&v, Event::NoAcceptanceByRecipient);
        assert_eq!(none.len(), 1, "{address}");
        assert_eq!(none[0].recipient.as_deref(), Some(address));
        assert_eq!(none[0].detail["reason"], reason);
    }
    // The decided pickups, swept later, get no second record.
    sealpost::service::pickup::sweep(&alpha.context, sealpost::now() + 100 * 86_400)
        .await
        .unwrap();
    let v = check(&bundle_of(&alice, &id, 2).await, &tsa, &alpha).unwrap();
    assert!(of_event(&v, Event::NoAcceptanceByRecipient).is_empty());
}
