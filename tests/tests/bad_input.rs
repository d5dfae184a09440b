//! Bad input against a real node: each case gets a clear, typed error, and nothing is stored.

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sealpost_client::crypto;
use sealpost_client::{ClientError, Outgoing, Session};
use sealpost_proto::KdfParams;
use sealpost_proto::*;
use sealpost_tests::{TestNode, wait_for};
use sequoia_openpgp::policy::StandardPolicy;
use sha2::{Digest, Sha256};

fn code(e: &ClientError) -> &str {
    e.code()
        .unwrap_or_else(|| panic!("expected an API error, got {e}"))
}

/// What a bad request must leave untouched.
fn stored(node: &TestNode) -> (i64, i64, i64) {
    (
        node.count("SELECT COUNT(*) FROM messages"),
        node.count("SELECT COUNT(*) FROM mailbox"),
        node.count("SELECT COUNT(*) FROM blobs"),
    )
}

async fn pair(node: &TestNode) -> (Session, Session) {
    (
        node.user("alice@a.test", "alice password", KdfParams::MIN)
            .await
            .unwrap(),
        node.user("bob@a.test", "bob password!!", KdfParams::MIN)
            .await
            .unwrap(),
    )
}

/// POSTs raw JSON with `token`; returns (status, error code).
async fn raw_post(node: &TestNode, token: &str, path: &str, body: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1{path}", node.url))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: ErrorBody = resp.json().await.unwrap_or(ErrorBody {
        code: String::new(),
        message: String::new(),
        attempts_left: None,
    });
    assert!(
        status < 300 || !body.message.is_empty(),
        "errors explain themselves"
    );
    (status, body.code)
}

/// Repeated failures used to lock the account for everyone (`429 locked_out`); now they slow
/// the sources that fail, and the owner's known device (the client keeps its device token)
/// is not slowed by them.
#[tokio::test]
async fn repeated_failures_slow_the_guesser_but_not_the_owners_known_device() {
    let node = TestNode::spawn("a.test").await.unwrap();
    let alice = node
        .user("alice@a.test", "the right password", KdfParams::MIN)
        .await
        .unwrap();
    let device = alice.device_token().map(str::to_owned);
    assert!(device.is_some(), "a bearer login returns a device token");
    let sessions_before = node.count("SELECT COUNT(*) FROM sessions");
    for _ in 0..node.config.accounts.max_failed_logins {
        let e = node
            .client()
            .login("alice@a.test", b"wrong password", None, None)
            .await
            .err()
            .unwrap();
        assert_eq!(code(&e), "invalid_credentials");
    }
    // From a new device even the right password now waits, and the answer says for how long.
    let e = node
        .client()
        .login("alice@a.test", b"the right password", None, None)
        .await
        .err()
        .unwrap();
    assert_eq!(code(&e), "too_many_attempts");
    assert!(matches!(e, ClientError::Api { status: 429, .. }));
    assert_eq!(
        node.count("SELECT COUNT(*) FROM sessions"),
        sessions_before,
        "no session opened"
    );
    // The owner's device logs in at once.
    let again = node
        .client()
        .with_device_token(device)
        .login("alice@a.test", b"the right password", None, None)
        .await
        .unwrap();
    assert_ne!(again.device_token(), alice.device_token(), "a fresh token");
    // Each failure is in the transaction log, with its source.
    let logged = wait_for(Duration::from_secs(10), async || {
        let n = node.count(
            "SELECT COUNT(*) FROM txlog WHERE kind = 'login.failed' AND detail LIKE '%untrusted%'",
        );
        (n == 5).then_some(n)
    })
    .await;
    assert!(logged.is_ok(), "five failures logged");
    // An unknown address gets the same answer as a wrong password.
    let e = node
        .client()
        .login("nobody@a.test", b"whatever", None, None)
        .await
        .err()
        .unwrap();
    assert_eq!(code(&e), "invalid_credentials");
}

#[tokio::test]
async fn guessing_from_one_address_is_rate_limited() {
    let node = TestNode::spawn_with("a.test", |c| c.http.auth_rate_per_sec = 1)
        .await
        .unwrap();
    // Burst of 10, refilling at 1/s: well within 40 quick requests the limit must bite.
    let mut limited = false;
    for _ in 0..40 {
        let (status, code) =
            raw_post(&node, "", "/login/params", r#"{"address":"x@a.test"}"#).await;
        if status == 429 {
            assert_eq!(code, "rate_limited");
            limited = true;
            break;
        }
    }
    assert!(limited, "a burst of 10 then refusal");
}

#[tokio::test]
async fn reused_and_expired_invites_are_refused() {
    let node = TestNode::spawn("a.test").await.unwrap();
    let invite = node.invite("alice@a.test").await.unwrap();
    node.client()
        .enroll(
            &invite,
            "alice@a.test",
            None,
            b"alice password",
            KdfParams::MIN,
        )
        .await
        .unwrap();
    let e = node
        .client()
        .enroll(
            &invite,
            "alice@a.test",
            None,
            b"another password",
            KdfParams::MIN,
        )
        .await
        .err()
        .unwrap();
    assert_eq!(code(&e), "invite_invalid");

    // An invite that has expired.
    let expired = sealpost::service::accounts::new_invite_code();
    let now = sealpost::now();
    use sealpost::storage::AccountStore;
    node.store
        .create_account(
            "carol@a.test",
            None,
            false,
            sealpost::service::accounts::invite_hash(&expired),
            now - 1,
            "cli",
            now - 100,
        )
        .await
        .unwrap();
    let e = node
        .client()
        .enroll(
            &expired,
            "carol@a.test",
            None,
            b"carol password",
            KdfParams::MIN,
        )
        .await
        .err()
        .unwrap();
    assert_eq!(code(&e), "invite_invalid");
    // An invite used for another address.
    let dave = node.invite("dave@a.test").await.unwrap();
    let e = node
        .client()
        .enroll(&dave, "erin@a.test", None, b"erin password", KdfParams::MIN)
        .await
        .err()
        .unwrap();
    assert_eq!(code(&e), "invite_invalid");
    assert_eq!(
        node.count("SELECT COUNT(*) FROM accounts WHERE state = 'active'"),
        1
    );
    assert_eq!(
        node.count("SELECT COUNT(*) FROM accounts WHERE fingerprint IS NOT NULL"),
        1
    );
}

#[tokio::test]
async fn unknown_recipient_is_named_and_nothing_is_issued() {
    let node = TestNode::spawn("a.test").await.unwrap();
    let (alice, _bob) = pair(&node).await;
    let before = stored(&node);
    let issued = node.count("SELECT COUNT(*) FROM issued_ids");
    let e = alice
        .send(
            &Outgoing {
                to: vec![
                    "bob@a.test".into(),
                    "nobody@a.test".into(),
                    "x@elsewhere.test".into(),
                ],
                subject: "s".into(),
                body: "b".into(),
                attachments: vec![],
                pickup_kdf: None,
            },
            std::env::temp_dir().as_path(),
        )
        .await
        .err()
        .unwrap();
    assert_eq!(code(&e), "unknown_recipient");
    // An outside address is reached by pickup (docs/pickup.md); only the unknown local one is
    // named.
    assert!(e.to_string().contains("nobody@a.test") && !e.to_string().contains("x@elsewhere.test"));
    assert_eq!(stored(&node), before);
    assert_eq!(node.count("SELECT COUNT(*) FROM issued_ids"), issued);
}

#[tokio::test]
async fn envelope_signed_by_someone_else_is_refused() {
    let node = TestNode::spawn("a.test").await.unwrap();
    let (alice, bob) = pair(&node).await;
    let (env, certs) = alice.envelope(&["bob@a.test".into()]).await.unwrap();
    let mut sealed = alice.seal_text(&env, &certs, "s", "b").unwrap();
    // Bob signs alice's envelope.
    let p = StandardPolicy::new();
    sealed.request.signature =
        crypto::sign_detached(bob.unlocked_cert(), &p, sealed.request.envelope.as_bytes()).unwrap();
    let before = stored(&node);
    let e = alice.submit(&sealed.request).await.err().unwrap();
    assert_eq!(code(&e), "bad_envelope_signature");
    // A signature over other bytes (the envelope altered after signing) fails the same way.
    let mut altered = alice.seal_text(&env, &certs, "s", "b").unwrap();
    altered.request.envelope = altered.request.envelope.replace("\"v\":1", "\"v\":1 ");
    let e = alice.submit(&altered.request).await.err().unwrap();
    assert_eq!(code(&e), "bad_envelope_signature");
    assert_eq!(stored(&node), before);
}

/// A message ID is good for a limited time: once expired unused, a submission with it is
/// refused with its own code, stores nothing, and leaves the ID unused.
#[tokio::test]
async fn an_expired_message_id_is_refused_and_nothing_is_stored() {
    let node = TestNode::spawn("a.test").await.unwrap();
    let (alice, _bob) = pair(&node).await;
    let (env, certs) = alice.envelope(&["bob@a.test".into()]).await.unwrap();
    let sealed = alice.seal_text(&env, &certs, "s", "b").unwrap();
    let db = rusqlite::Connection::open(node.data().join("sealpost.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    let aged = db
        .execute(
            "UPDATE issued_ids SET expires_at = 0 WHERE message_id = ?1",
            [&env.message_id],
        )
        .unwrap();
    assert_eq!(aged, 1);
    let before = stored(&node);
    let e = alice.submit(&sealed.request).await.err().unwrap();
    assert_eq!(code(&e), "message_id_expired");
    assert_eq!(stored(&node), before);
    let sql = format!(
        "SELECT used FROM issued_ids WHERE message_id = '{}'",
        env.message_id
    );
    assert_eq!(node.count(&sql), 0);
}

#[tokio::test]
async fn ciphertext_missing_a_required_recipient_is_refused() {
    let node = TestNode::spawn("a.test").await.unwrap();
    let (alice, bob) = pair(&node).await;
    let (env, _) = alice.envelope(&["bob@a.test".into()]).await.unwrap();
    let p = StandardPolicy::new();
    let head = serde_json::to_vec(&Head {
        v: 1,
        message_id: env.message_id.clone(),
        from: "alice@a.test".into(),
        to: vec!["bob@a.test".into()],
        subject: "s".into(),
        body: "b".into(),
        attachments: vec![],
        sent_at: sealpost::now(),
    })
    .unwrap();
    let submit_sealed_to = |certs: Vec<sequoia_openpgp::Cert>| {
        let mut ct = Vec::new();
        crypto::seal(
            &certs,
            alice.unlocked_cert(),
            &p,
            SystemTime::now(),
            &mut &head[..],
            &mut ct,
        )
        .unwrap();
        let envelope = serde_json::to_string(&Envelope {
            v: 1,
            message_id: env.message_id.clone(),
            from: "alice@a.test".into(),
            to: vec!["bob@a.test".into()],
            registered: Default::default(),
            pickup: Default::default(),
            external: Default::default(),
            created_at: sealpost::now(),
            parts: vec![EnvelopePart {
                sha256: hex::encode(Sha256::digest(&ct)),
                size: ct.len() as u64,
            }],
        })
        .unwrap();
        SubmitRequest {
            signature: crypto::sign_detached(alice.unlocked_cert(), &p, envelope.as_bytes())
                .unwrap(),
            envelope,
            inline_parts: [(0, STANDARD.encode(&ct))].into(),
            pickups: Vec::new(),
            pickup_continuations: Vec::new(),
            external_copies: Default::default(),
        }
    };
    let before = stored(&node);
    // Encrypted to alice only: bob is missing.
    let e = alice
        .submit(&submit_sealed_to(vec![alice.unlocked_cert().clone()]))
        .await
        .err()
        .unwrap();
    assert_eq!(code(&e), "missing_recipient_key");
    assert!(e.to_string().contains("bob@a.test"), "{e}");
    // Encrypted to bob only: the sender's own copy is missing.
    let e = alice
        .submit(&submit_sealed_to(vec![bob.unlocked_cert().clone()]))
        .await
        .err()
        .unwrap();
    assert_eq!(code(&e), "missing_recipient_key");
    assert!(e.to_string().contains("alice@a.test"), "{e}");
    assert_eq!(stored(&node), before);
    // Both: accepted.
    alice
        .submit(&submit_sealed_to(vec![
            alice.unlocked_cert().clone(),
            bob.unlocked_cert().clone(),
        ]))
        .await
        .unwrap();
}

#[tokio::test]
async fn tampered_ciphertext_gives_the_reader_an_integrity_error() {
    let node = TestNode::spawn("a.test").await.unwrap();
    let (alice, bob) = pair(&node).await;
    let work = tempfile::tempdir().unwrap();
    let att = work.path().join("a.bin");
    std::fs::write(&att, vec![7u8; 600_000]).unwrap();
    let sent = alice
        .send(
            &Outgoing {
                to: vec!["bob@a.test".into()],
                subject: "s".into(),
                body: "b".into(),
                attachments: vec![att],
                pickup_kdf: None,
            },
            work.path(),
        )
        .await
        .unwrap();
    // Flip one byte of the stored attachment ciphertext (a blob file) ...
    let blob = sealpost_tests::files_under(&node.data().join("blobs"))
        .into_iter()
        .find(|p| !p.starts_with(node.data().join("blobs/tmp")))
        .unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&blob, &bytes).unwrap();
    let e = bob
        .read(&sent.message_id, Some(work.path()), work.path())
        .await
        .err()
        .unwrap();
    assert!(matches!(e, ClientError::Integrity(_)), "{e}");
    assert!(
        !work.path().join("a.bin (1)").exists(),
        "nothing saved from a tampered part"
    );

    // ... and of the stored head (inline, in the database).
    let sent2 = alice
        .send(
            &Outgoing {
                to: vec!["bob@a.test".into()],
                subject: "s".into(),
                body: "b".into(),
                attachments: vec![],
                pickup_kdf: None,
            },
            work.path(),
        )
        .await
        .unwrap();
    let db = rusqlite::Connection::open(node.data().join("sealpost.db")).unwrap();
    let mut data: Vec<u8> = db
        .query_row(
            "SELECT data FROM parts WHERE message_id = ?1 AND idx = 0",
            [&sent2.message_id],
            |r| r.get(0),
        )
        .unwrap();
    data[40] ^= 0x01;
    db.execute(
        "UPDATE parts SET data = ?1 WHERE message_id = ?2 AND idx = 0",
        rusqlite::params![data, sent2.message_id],
    )
    .unwrap();
    let e = bob
        .read(&sent2.message_id, None, work.path())
        .await
        .err()
        .unwrap();
    assert!(matches!(e, ClientError::Integrity(_)), "{e}");
}

#[tokio::test]
async fn oversize_upload_is_refused_with_413_and_leaves_nothing() {
    let node = TestNode::spawn_with("a.test", |c| c.limits.max_message_bytes = 1024 * 1024)
        .await
        .unwrap();
    let (alice, _bob) = pair(&node).await;
    let before = stored(&node);
    // Declared too large: refused before reading.
    let resp = reqwest::Client::new()
        .put(format!("{}/api/v1/blobs", node.url))
        .bearer_auth(alice.token())
        .body(vec![0u8; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    assert_eq!(resp.json::<ErrorBody>().await.unwrap().code, "too_large");
    // Streamed without a length: refused when the limit is crossed.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..40).map(|_| Ok(vec![1u8; 64 * 1024])).collect();
    let resp = reqwest::Client::new()
        .put(format!("{}/api/v1/blobs", node.url))
        .bearer_auth(alice.token())
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    assert_eq!(stored(&node), before);
    assert_eq!(
        sealpost_tests::files_under(&node.data().join("blobs")).len(),
        0
    );
    // An oversize JSON body is refused too.
    let big = format!("{{\"to\":[\"{}\"]}}", "a".repeat(2 * 1024 * 1024));
    let (status, code) = raw_post(&node, alice.token(), "/envelopes", &big).await;
    assert_eq!((status, code.as_str()), (413, "too_large"));
}

#[tokio::test]
async fn malformed_json_is_a_400_with_a_code() {
    let node = TestNode::spawn("a.test").await.unwrap();
    let (alice, _bob) = pair(&node).await;
    for (body, want) in [
        ("{\"to\": [", "malformed_json"),
        ("not json", "malformed_json"),
        ("{\"to\": \"bob@a.test\"}", "invalid_request"),
        (
            "{\"to\": [\"bob@a.test\"], \"extra\": 1}",
            "invalid_request",
        ),
        ("{\"to\": []}", "no_recipients"),
    ] {
        let (status, code) = raw_post(&node, alice.token(), "/envelopes", body).await;
        assert_eq!((status, code.as_str()), (400, want), "{body}");
    }
    let (status, code) = raw_post(&node, alice.token(), "/messages", "{\"envelope\": 5}").await;
    assert_eq!((status, code.as_str()), (400, "invalid_request"));
    let (status, code) = raw_post(
        &node,
        alice.token(),
        "/messages",
        r#"{"envelope":"{}","signature":"x"}"#,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "invalid_envelope"));
    assert_eq!(node.count("SELECT COUNT(*) FROM issued_ids"), 0);
}

#[tokio::test]
async fn a_session_token_only_reaches_its_own_user() {
    let node = TestNode::spawn("a.test").await.unwrap();
    let (alice, bob) = pair(&node).await;
    let carol = node.person("carol").await;
    let work = tempfile::tempdir().unwrap();
    let sent = alice
        .send(
            &Outgoing {
                to: vec!["bob@a.test".into()],
                subject: "for bob".into(),
                body: "b".into(),
                attachments: vec![],
                pickup_kdf: None,
            },
            work.path(),
        )
        .await
        .unwrap();
    // Carol's token cannot read, mark, move or delete a message that is not hers.
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}/api/v1{p}", node.url);
    for req in [
        http.get(url(&format!("/messages/{}", sent.message_id))),
        http.get(url(&format!("/messages/{}/parts/0", sent.message_id))),
        http.post(url(&format!("/messages/{}/read", sent.message_id))),
        http.delete(url(&format!("/messages/{}", sent.message_id))),
    ] {
        let resp = req.bearer_auth(carol.token()).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 404);
    }
    assert!(carol.mailbox(Folder::Inbox).await.unwrap().is_empty());
    // Bob's token cannot submit as alice: the envelope names alice but bob is logged in.
    let (env, certs) = alice.envelope(&["carol@a.test".into()]).await.unwrap();
    let sealed = alice.seal_text(&env, &certs, "s", "b").unwrap();
    let e = bob.submit(&sealed.request).await.err().unwrap();
    assert_eq!(code(&e), "sender_mismatch");
    // Nor use a message ID issued to alice for his own envelope.
    let (benv, bcerts) = bob.envelope(&["carol@a.test".into()]).await.unwrap();
    let mut stolen = benv.clone();
    stolen.message_id = env.message_id.clone();
    let sealed = bob.seal_text(&stolen, &bcerts, "s", "b").unwrap();
    let e = bob.submit(&sealed.request).await.err().unwrap();
    assert_eq!(code(&e), "message_id_not_issued");
    // No token, or a made-up one: 401.
    let resp = http.get(url("/mailbox/inbox")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = http
        .get(url("/mailbox/inbox"))
        .bearer_auth("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // After logout the token is dead.
    let token = bob.token().to_owned();
    bob.logout().await.unwrap();
    let resp = http
        .get(url("/mailbox/inbox"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(node.count("SELECT COUNT(*) FROM messages"), 1);
}

/// The node keeps sessions in memory; an account disabled with the admin CLI (another
/// process, in production) loses its sessions at the running node by the time the command
/// returns, though the node had just served that session from memory.
#[tokio::test]
async fn an_account_disabled_by_the_admin_cli_is_refused_at_once() {
    let node = TestNode::spawn("a.test").await.unwrap();
    let (alice, _bob) = pair(&node).await;
    alice.mailbox(Folder::Inbox).await.unwrap();
    alice.mailbox(Folder::Inbox).await.unwrap();
    node.admin(&["user", "disable", "alice@a.test"])
        .await
        .unwrap();
    let e = alice.mailbox(Folder::Inbox).await.err().unwrap();
    assert_eq!(code(&e), "unauthenticated");
}

#[tokio::test]
async fn totp_second_factor_is_required_once_enabled() {
    let node = TestNode::spawn("a.test").await.unwrap();
    let invite = node.invite("alice@a.test").await.unwrap();
    let enrolled = node
        .client()
        .enroll(
            &invite,
            "alice@a.test",
            None,
            b"alice password",
            KdfParams::MIN,
        )
        .await
        .unwrap();
    let ca = Some(enrolled.ca_fingerprint.as_str());
    let alice = node
        .client()
        .login("alice@a.test", b"alice password", None, ca)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let setup: TotpSetup = http
        .post(format!("{}/api/v1/me/totp", node.url))
        .bearer_auth(alice.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        setup
            .otpauth_uri
            .starts_with("otpauth://totp/Sealpost:alice%40a.test?secret=")
    );
    let secret = totp_rs::Secret::Encoded(setup.secret).to_bytes().unwrap();
    let totp = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, secret).unwrap();
    let (status, code_) = raw_post(
        &node,
        alice.token(),
        "/me/totp/confirm",
        r#"{"code":"000000"}"#,
    )
    .await;
    assert_eq!((status, code_.as_str()), (401, "totp_invalid"));
    let now = sealpost::now() as u64;
    let (status, _) = raw_post(
        &node,
        alice.token(),
        "/me/totp/confirm",
        &format!("{{\"code\":\"{}\"}}", totp.generate(now)),
    )
    .await;
    assert_eq!(status, 204);
    let e = node
        .client()
        .login("alice@a.test", b"alice password", None, ca)
        .await
        .err()
        .unwrap();
    assert_eq!(code(&e), "totp_required");
    let e = node
        .client()
        .login("alice@a.test", b"alice password", Some("123456"), ca)
        .await
        .err()
        .unwrap();
    assert!(["totp_invalid"].contains(&code(&e)));
    // The code used to confirm is spent; the next time step's code (clock skew allows one
    // step either side) logs in once, and replaying it is refused.
    let used = totp.generate(now);
    let e = node
        .client()
        .login("alice@a.test", b"alice password", Some(&used), ca)
        .await
        .err()
        .unwrap();
    assert_eq!(code(&e), "totp_reused");
    let next = totp.generate(now + 30);
    node.client()
        .login("alice@a.test", b"alice password", Some(&next), ca)
        .await
        .unwrap();
    let e = node
        .client()
        .login("alice@a.test", b"alice password", Some(&next), ca)
        .await
        .err()
        .unwrap();
    assert_eq!(code(&e), "totp_reused");
}

#[tokio::test]
async fn abandoned_uploads_are_bounded_by_a_quota_and_expire() {
    let node = TestNode::spawn_with("a.test", |c| {
        c.limits.max_message_bytes = 1024 * 1024;
        c.limits.max_pending_upload_bytes = 2 * 1024 * 1024;
    })
    .await
    .unwrap();
    let (alice, _bob) = pair(&node).await;
    let put = |n: u8| {
        reqwest::Client::new()
            .put(format!("{}/api/v1/blobs", node.url))
            .bearer_auth(alice.token())
            .body(vec![n; 900_000])
            .send()
    };
    assert_eq!(put(1).await.unwrap().status().as_u16(), 201);
    assert_eq!(put(2).await.unwrap().status().as_u16(), 201);
    // 1.8 MB pending of a 2 MiB quota: a third is refused, and leaves nothing behind.
    let resp = put(3).await.unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let blob_files = || {
        sealpost_tests::files_under(&node.data().join("blobs"))
            .into_iter()
            .filter(|p| !p.starts_with(node.data().join("blobs/tmp")))
            .count()
    };
    assert_eq!(blob_files(), 2);

    // Uploads no message used expire with their files.
    let blobs = sealpost::storage::FsBlobStore::open(&node.data().join("blobs")).unwrap();
    let removed = sealpost::node::expire_uploads(&*node.store, &blobs, sealpost::now() + 1)
        .await
        .unwrap();
    assert_eq!(removed, 2);
    assert_eq!(blob_files(), 0);
    assert_eq!(node.count("SELECT COUNT(*) FROM uploads"), 0);
    assert_eq!(
        put(4).await.unwrap().status().as_u16(),
        201,
        "the quota is free again"
    );
}

#[tokio::test]
async fn part_files_a_peer_sent_for_a_transfer_that_never_committed_expire() {
    use sealpost::storage::{BlobStore, FederationStore};
    let node = TestNode::spawn("a.test").await.unwrap();
    let blobs = sealpost::storage::FsBlobStore::open(&node.data().join("blobs")).unwrap();
    // A peer streamed a part, then went away before committing its transfer.
    let data = vec![7u8; 300_000];
    let (sha, size) = blobs.put(&mut &data[..], 1 << 20).await.unwrap();
    let now = sealpost::now();
    node.store
        .record_peer_part("b.test", sha, size, now)
        .await
        .unwrap();
    assert_eq!(
        node.store.blobs_held(vec![sha]).await.unwrap(),
        vec![sha],
        "held: a retried transfer need not send it again"
    );
    let file = node
        .data()
        .join("blobs")
        .join(&hex::encode(sha)[..2])
        .join(hex::encode(sha));
    assert!(file.exists());
    // Younger than the cut-off: kept.
    let kept = sealpost::node::expire_uploads(&*node.store, &blobs, now - 60)
        .await
        .unwrap();
    assert_eq!(kept, 0);
    assert!(file.exists());
    // Older: the file and its records go.
    let removed = sealpost::node::expire_uploads(&*node.store, &blobs, now + 1)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert!(!file.exists());
    assert_eq!(node.count("SELECT COUNT(*) FROM peer_parts"), 0);
    assert!(node.store.blobs_held(vec![sha]).await.unwrap().is_empty());
}

/// Sends `method path` under `/api/v1` (or at the root when `path` starts with `//`) with
/// `token`; returns (status, content type, body).
async fn call(node: &TestNode, token: &str, method: &str, path: &str) -> (u16, String, String) {
    let url = match path.strip_prefix("//") {
        Some(root) => format!("{}/{root}", node.url),
        None => format!("{}/api/v1{path}", node.url),
    };
    let mut req = reqwest::Client::new()
        .request(method.parse().unwrap(), url)
        .bearer_auth(token);
    if method == "POST" {
        req = req.header("content-type", "application/json").body("{}");
    }
    let resp = req.send().await.unwrap();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (resp.status().as_u16(), ctype, resp.text().await.unwrap())
}

/// Regression: part sizes adding up past u64 panicked the submit handler ("attempt to add
/// with overflow"; a dropped connection for the client) in a debug build and wrapped under the
/// size limit in a release build.
#[tokio::test]
async fn an_envelope_whose_part_sizes_overflow_is_413_too_large() {
    let node = TestNode::spawn("a.test").await.unwrap();
    let (alice, _bob) = pair(&node).await;
    let part = |size: u64| EnvelopePart {
        sha256: "ab".repeat(32),
        size,
    };
    let envelope = serde_json::to_string(&Envelope {
        v: 1,
        message_id: sealpost_proto::new_message_id(),
        from: "alice@a.test".into(),
        to: vec!["bob@a.test".into()],
        registered: Default::default(),
        pickup: Default::default(),
        external: Default::default(),
        created_at: sealpost::now(),
        parts: vec![part(u64::MAX), part(2)],
    })
    .unwrap();
    let body = serde_json::json!({ "envelope": envelope, "signature": "x" }).to_string();
    let before = stored(&node);
    let (status, code) = raw_post(&node, alice.token(), "/messages", &body).await;
    assert_eq!((status, code.as_str()), (413, "too_large"));
    assert_eq!(stored(&node), before);
}

/// Regression: axum's own rejections of path and query parameters were `text/plain` 400s and
/// a wrong method an empty 405; under /api/v1 every error is the documented `{code, message}`.
/// The directory keeps its protocols' plain text.
#[tokio::test]
async fn every_rejection_under_api_v1_is_the_documented_json() {
    let node = TestNode::spawn("a.test").await.unwrap();
    let (alice, _bob) = pair(&node).await;
    let id = sealpost_proto::new_message_id();
    let t = alice.token();
    let cases: Vec<(&str, String, u16, &str)> = vec![
        // Query values that do not parse.
        (
            "GET",
            "/mailbox/inbox?limit=abc".into(),
            400,
            "invalid_query",
        ),
        (
            "GET",
            "/mailbox/inbox?limit=-1".into(),
            400,
            "invalid_query",
        ),
        (
            "GET",
            "/mailbox/inbox?limit=99999999999".into(),
            400,
            "invalid_query",
        ),
        (
            "GET",
            "/mailbox/inbox?before=yesterday".into(),
            400,
            "invalid_query",
        ),
        (
            "GET",
            "/mailbox/sent?before=1.5".into(),
            400,
            "invalid_query",
        ),
        // Path parameters that do not parse: numbers, then invalid UTF-8 in each string one.
        (
            "GET",
            format!("/messages/{id}/parts/abc"),
            400,
            "invalid_path",
        ),
        (
            "GET",
            format!("/messages/{id}/parts/-1"),
            400,
            "invalid_path",
        ),
        (
            "GET",
            format!("/messages/{id}/parts/4294967296"),
            400,
            "invalid_path",
        ),
        ("POST", "/notices/abc/read".into(), 400, "invalid_path"),
        (
            "POST",
            "/notices/99999999999999999999/read".into(),
            400,
            "invalid_path",
        ),
        ("GET", "/users/%FF@a.test/cert".into(), 400, "invalid_path"),
        ("GET", "/trust/%FF%FE".into(), 400, "invalid_path"),
        ("GET", "/mailbox/%FF".into(), 400, "invalid_path"),
        ("GET", "/messages/%FF".into(), 400, "invalid_path"),
        ("DELETE", "/messages/%FF".into(), 400, "invalid_path"),
        ("GET", "/messages/%FF/parts/0".into(), 400, "invalid_path"),
        ("POST", "/messages/%FF/read".into(), 400, "invalid_path"),
        ("POST", "/messages/%FF/move".into(), 400, "invalid_path"),
        ("DELETE", "/me/sessions/%FF".into(), 400, "invalid_path"),
        ("DELETE", "/app-passwords/abc".into(), 400, "invalid_path"),
        (
            "DELETE",
            "/app-passwords/99999999999999999999".into(),
            400,
            "invalid_path",
        ),
        ("DELETE", "/app-passwords/7".into(), 404, "not_found"),
        ("PUT", "/app-passwords".into(), 405, "method_not_allowed"),
        // A body without the label (this node's gateway is off, but the body is read first).
        ("POST", "/app-passwords".into(), 400, "invalid_request"),
        // A body without the key and its binding (read before whether a CA is configured).
        ("POST", "/smime/certificate".into(), 400, "invalid_request"),
        // A stored key asked of a node without a CA.
        (
            "GET",
            "/smime/certificate".into(),
            409,
            "smime_ca_not_configured",
        ),
        (
            "PUT",
            "/smime/certificate".into(),
            405,
            "method_not_allowed",
        ),
        // Admin routes check the caller's role first (this caller is no admin).
        ("POST", "/admin/users/%FF/state".into(), 403, "not_admin"),
        ("GET", "/admin/peers/%FF/org".into(), 403, "not_admin"),
        // Wrong methods on routes that exist.
        ("DELETE", "/org".into(), 405, "method_not_allowed"),
        ("PUT", "/login".into(), 405, "method_not_allowed"),
        ("GET", "/messages".into(), 405, "method_not_allowed"),
        (
            "POST",
            format!("/messages/{id}/parts/0"),
            405,
            "method_not_allowed",
        ),
        ("PUT", "/admin/users".into(), 405, "method_not_allowed"),
        ("GET", "/blobs".into(), 405, "method_not_allowed"),
        // Routes that do not exist.
        ("GET", "/nothing/here".into(), 404, "no_route"),
        ("POST", "/messages/a/b/c".into(), 404, "no_route"),
    ];
    for (method, path, status, code) in &cases {
        let (got, ctype, body) = call(&node, t, method, path).await;
        assert_eq!(got, *status, "{method} {path}: {body}");
        assert_eq!(ctype, "application/json", "{method} {path}: {body}");
        let err: ErrorBody =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"));
        assert_eq!(err.code, *code, "{method} {path}: {body}");
        assert!(!err.message.is_empty(), "{method} {path}");
    }
    // A 405 still says which methods the route takes.
    let resp = reqwest::Client::new()
        .delete(format!("{}/api/v1/org", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "GET,HEAD");

    // The directory answers in plain text, as HKP, VKS and WKD clients expect.
    for (method, path, status) in [
        ("GET", "//pks/add", 405),
        ("POST", "//pks/lookup", 405),
        ("POST", "//.well-known/openpgpkey/policy", 405),
        ("GET", "//vks/v1/by-email/%FF", 400),
    ] {
        let (got, ctype, body) = call(&node, "", method, path).await;
        assert_eq!(got, status, "{method} {path}: {body}");
        assert!(ctype.starts_with("text/plain"), "{method} {path}: {ctype}");
        assert!(!body.is_empty(), "{method} {path}");
    }
}

/// The address of a node's HTTP listener, for raw sockets.
fn addr(node: &TestNode) -> String {
    node.url.trim_start_matches("http://").to_owned()
}

/// Reads until the peer closes the connection (or resets it), for at most `limit`; returns
/// what was read and how long it took, or `None` if it stayed open.
async fn read_until_closed(
    s: &mut tokio::net::TcpStream,
    limit: std::time::Duration,
) -> Option<(Vec<u8>, std::time::Duration)> {
    use tokio::io::AsyncReadExt;
    let started = std::time::Instant::now();
    let mut got = Vec::new();
    let closed = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    closed.ok().map(|()| (got, started.elapsed()))
}

/// One keep-alive `GET /healthz` on `s`: whether the node answered 200.
async fn healthz(s: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: node\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while !got.ends_with(b"\r\n\r\nok") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.is_ok() && got.starts_with(b"HTTP/1.1 200")
}

/// Regression: a connection whose request head never finished stayed open for ever (no timer
/// on the server); an idle kept-alive connection did too.
#[tokio::test]
async fn a_request_head_that_never_ends_is_closed_after_the_header_timeout() {
    use tokio::io::AsyncWriteExt;
    let node = TestNode::spawn_with("a.test", |c| c.http.header_read_timeout_secs = 1)
        .await
        .unwrap();
    let mut slow = tokio::net::TcpStream::connect(addr(&node)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: node\r\nX-Slow: ")
        .await
        .unwrap();
    let (_, took) = read_until_closed(&mut slow, std::time::Duration::from_secs(8))
        .await
        .expect("the node closes a connection whose head never ends");
    assert!(took >= std::time::Duration::from_millis(900), "{took:?}");

    // A kept-alive connection is served, then closed once idle for as long.
    let mut idle = tokio::net::TcpStream::connect(addr(&node)).await.unwrap();
    assert!(healthz(&mut idle).await);
    let (rest, _) = read_until_closed(&mut idle, std::time::Duration::from_secs(8))
        .await
        .expect("the node closes an idle kept-alive connection");
    assert!(rest.is_empty());
}

/// A request whose body stops arriving is closed after the idle timeout, not held for ever.
#[tokio::test]
async fn a_request_body_that_stalls_is_closed_after_the_idle_timeout() {
    use tokio::io::AsyncWriteExt;
    let node = TestNode::spawn_with("a.test", |c| c.http.idle_timeout_secs = 1)
        .await
        .unwrap();
    let mut s = tokio::net::TcpStream::connect(addr(&node)).await.unwrap();
    s.write_all(
        b"POST /api/v1/login/params HTTP/1.1\r\nHost: node\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"addr",
    )
    .await
    .unwrap();
    let (_, took) = read_until_closed(&mut s, std::time::Duration::from_secs(8))
        .await
        .expect("the node closes a connection whose body stalls");
    assert!(took >= std::time::Duration::from_millis(900), "{took:?}");
}

/// One client address holds at most `http.max_connections_per_ip` connections: the next is
/// closed without an answer, and a place that frees up is given again.
#[tokio::test]
async fn connections_over_the_per_address_cap_are_closed() {
    let node = TestNode::spawn_with("a.test", |c| c.http.max_connections_per_ip = 3)
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(addr(&node)).await.unwrap();
        assert!(healthz(&mut s).await, "within the cap");
        held.push(s);
    }
    let mut extra = tokio::net::TcpStream::connect(addr(&node)).await.unwrap();
    assert!(!healthz(&mut extra).await, "the fourth is refused");
    let (answer, _) = read_until_closed(&mut extra, std::time::Duration::from_secs(5))
        .await
        .expect("and closed");
    assert!(answer.is_empty(), "without an answer");

    drop(held.pop());
    sealpost_tests::wait_for(std::time::Duration::from_secs(5), async || {
        let mut s = tokio::net::TcpStream::connect(addr(&node)).await.ok()?;
        healthz(&mut s).await.then_some(())
    })
    .await
    .expect("a freed place is given again");
    for s in &mut held {
        assert!(healthz(s).await, "the others are still served");
    }
}
