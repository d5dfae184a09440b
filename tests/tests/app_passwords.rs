//! App passwords for the submission gateway (docs/mail.md, "Submission gateway"), against a
//! real node on loopback: made, listed and revoked over HTTP as the web app does; checked by
//! `service::app_passwords::authenticate` through the running node's own context, as the SMTP
//! door calls it. Every refusal of a check is the same error; the secret is on no disk.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use sealpost::service::ServiceError;
use sealpost::service::app_passwords::authenticate;
use sealpost_proto::OrgInfo;
use sealpost_proto::submission::{AppPasswordView, CreatedAppPassword, SubmissionInfo};
use sealpost_tests::smtp::self_signed_cert;
use sealpost_tests::{TestNode, files_containing, wait_for};
use serde_json::{Value, json};

const HOME: &str = "192.0.2.10";
const ELSEWHERE: &str = "198.51.100.7";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A node of `a.test` with the gateway on (a throw-away certificate, at most 3 app passwords,
/// two free failures before a 30 s wait), and alice and bob enrolled.
async fn gateway(
    enabled: bool,
) -> (
    TestNode,
    sealpost_client::Session,
    sealpost_client::Session,
    tempfile::TempDir,
) {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(certs.path()).unwrap();
    let node = TestNode::spawn_with("a.test", |c| {
        c.federation.enabled = false;
        c.submission.enabled = enabled;
        c.submission.listen = "127.0.0.1:0".parse().unwrap();
        c.submission.hostname = "smtp.a.test".into();
        c.submission.tls_cert = cert.display().to_string();
        c.submission.tls_key = key.display().to_string();
        c.submission.max_app_passwords = 3;
        c.accounts.max_failed_logins = 2;
        c.accounts.login_delay_secs = 30;
    })
    .await
    .unwrap();
    let alice = node.person("alice").await;
    let bob = node.person("bob").await;
    (node, alice, bob, certs)
}

/// `(status, body)` of an API call with `token`.
async fn call(
    node: &TestNode,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(
            method.parse().unwrap(),
            format!("{}/api/v1{path}", node.url),
        )
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn create(node: &TestNode, token: &str, label: &str) -> (u16, Value) {
    call(
        node,
        token,
        "POST",
        "/app-passwords",
        Some(json!({ "label": label })),
    )
    .await
}

async fn made(node: &TestNode, token: &str, label: &str) -> CreatedAppPassword {
    let (status, body) = create(node, token, label).await;
    assert_eq!(status, 201, "{body}");
    serde_json::from_value(body).unwrap()
}

async fn listed(node: &TestNode, token: &str) -> Vec<AppPasswordView> {
    let (status, body) = call(node, token, "GET", "/app-passwords", None).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

/// The outcome of the door's check, as `Ok(address)` or the error's code.
async fn check(node: &TestNode, address: &str, secret: &str, from: &str) -> Result<String, String> {
    authenticate(&node.context, address, secret, ip(from), SystemTime::now())
        .await
        .map(|a| a.address)
        .map_err(|e| e.code().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_passwords_are_made_once_listed_revoked_and_checked_by_the_door() {
    let (node, alice, bob, _certs) = gateway(true).await;
    let (a, b) = (alice.token(), bob.token());

    // The organisation tells the web app what to type into a mail program.
    let org: OrgInfo = reqwest::get(format!("{}/api/v1/org", node.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        org.submission,
        Some(SubmissionInfo {
            host: "smtp.a.test".into(),
            port: node.submission().expect("the gateway is bound").port(),
            implicit_tls: false,
        })
    );

    // Made: the secret is in the answer, four groups of six base32 characters.
    let laptop = made(&node, a, "  Laptop ").await;
    assert_eq!(laptop.label, "Laptop");
    let groups: Vec<&str> = laptop.password.split('-').collect();
    assert_eq!(groups.len(), 4, "{}", laptop.password);
    assert!(groups.iter().all(|g| {
        g.len() == 6
            && g.bytes()
                .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c))
    }));
    let phone = made(&node, a, "Phone ☎").await;
    assert_ne!(laptop.password, phone.password);

    // Listed without secrets, oldest first; bob sees none of alice's.
    let list = listed(&node, a).await;
    assert_eq!(
        list.iter().map(|p| p.label.as_str()).collect::<Vec<_>>(),
        ["Laptop", "Phone ☎"]
    );
    assert!(list.iter().all(|p| p.last_used_at.is_none()));
    let (_, raw) = call(&node, a, "GET", "/app-passwords", None).await;
    assert!(!raw.to_string().contains(&laptop.password));
    assert!(listed(&node, b).await.is_empty());

    // The door: right (as shown, or typed without dashes in capitals), then every refusal the
    // same error.
    let alice_addr = "alice@a.test";
    assert_eq!(
        check(&node, alice_addr, &laptop.password, HOME).await,
        Ok(alice_addr.into())
    );
    assert_eq!(
        check(
            &node,
            " Alice@A.test",
            &laptop.password.replace('-', "").to_uppercase(),
            HOME
        )
        .await,
        Ok(alice_addr.into())
    );
    let refused = Err("invalid_credentials".to_owned());
    // Each refusal from its own client network, so none is throttled.
    let wrong = "aaaaaa-bbbbbb-cccccc-dddddd";
    assert_eq!(check(&node, alice_addr, wrong, "10.0.0.1").await, refused);
    assert_eq!(check(&node, alice_addr, "short", "10.0.0.2").await, refused);
    assert_eq!(
        check(&node, "bob@a.test", &laptop.password, "10.0.0.3").await,
        refused,
        "another user's name with alice's password"
    );
    assert_eq!(
        check(&node, "nobody@a.test", &laptop.password, "10.0.0.4").await,
        refused,
        "unknown address"
    );
    assert_eq!(
        check(&node, "not an address", &laptop.password, "10.0.0.5").await,
        refused
    );
    // A use is recorded (to the minute, not awaited by the check).
    wait_for(Duration::from_secs(10), async || {
        listed(&node, a)
            .await
            .iter()
            .any(|p| p.id == laptop.id && p.last_used_at.is_some())
            .then_some(())
    })
    .await
    .unwrap();

    // Revoked: gone from the list and refused at once; bob cannot revoke alice's, and an
    // unknown or revoked ID is the same answer.
    let (status, body) = call(
        &node,
        b,
        "DELETE",
        &format!("/app-passwords/{}", laptop.id),
        None,
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    assert_eq!(
        check(&node, alice_addr, &laptop.password, HOME).await,
        Ok(alice_addr.into()),
        "bob's attempt changed nothing"
    );
    let path = format!("/app-passwords/{}", laptop.id);
    assert_eq!(call(&node, a, "DELETE", &path, None).await.0, 204);
    assert_eq!(
        check(&node, alice_addr, &laptop.password, "10.0.0.6").await,
        refused
    );
    let (status, body) = call(&node, a, "DELETE", &path, None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, body) = call(&node, a, "DELETE", "/app-passwords/999999", None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, body) = call(&node, a, "DELETE", "/app-passwords/abc", None).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_path")));
    assert_eq!(
        listed(&node, a)
            .await
            .iter()
            .map(|p| p.id)
            .collect::<Vec<_>>(),
        [phone.id]
    );

    // Labels: 1 to 64 characters, no control characters.
    for bad in [
        json!(""),
        json!("   "),
        json!("a\nb"),
        json!("x".repeat(65)),
    ] {
        let (status, body) = call(
            &node,
            a,
            "POST",
            "/app-passwords",
            Some(json!({ "label": bad })),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_label")),
            "{bad}"
        );
    }
    let (status, _) = call(&node, a, "POST", "/app-passwords", Some(json!({}))).await;
    assert_eq!(status, 400, "no label");

    // At most 3 live ones: a revoked one does not count.
    made(&node, a, "Tablet").await;
    let desk = made(&node, a, "Desk").await;
    let (status, body) = create(&node, a, "One too many").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("too_many_app_passwords"))
    );
    assert_eq!(
        call(
            &node,
            a,
            "DELETE",
            &format!("/app-passwords/{}", desk.id),
            None
        )
        .await
        .0,
        204
    );
    made(&node, a, "New desk").await;
    // Bob's own limit is his own.
    made(&node, b, "Bob's laptop").await;

    // The log names who made and revoked which, never a secret; no file holds a secret.
    let db = node.db();
    let created: i64 = db
        .query_row(
            "SELECT count(*) FROM txlog WHERE kind = 'app_password.created' AND actor = 'alice@a.test'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(created, 5);
    let revoked: String = db
        .query_row(
            "SELECT detail FROM txlog WHERE kind = 'app_password.revoked' ORDER BY seq LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let revoked: Value = serde_json::from_str(&revoked).unwrap();
    assert_eq!(revoked, json!({ "id": laptop.id, "label": "Laptop" }));
    for secret in [&laptop.password, &phone.password] {
        for form in [secret.clone(), secret.replace('-', "")] {
            assert!(
                files_containing(&node.data(), form.as_bytes()).is_empty(),
                "{form} is on disk"
            );
        }
    }

    // A disabled account's passwords are refused (the same error), and work again once it is
    // enabled.
    node.admin(&["user", "disable", alice_addr]).await.unwrap();
    assert_eq!(
        check(&node, alice_addr, &phone.password, "10.0.1.1").await,
        refused
    );
    node.admin(&["user", "enable", alice_addr]).await.unwrap();
    assert_eq!(
        check(&node, alice_addr, &phone.password, "10.0.1.2").await,
        Ok(alice_addr.into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_slows_the_guessers_network_only() {
    let (node, alice, _bob, _certs) = gateway(true).await;
    let pw = made(&node, alice.token(), "Laptop").await.password;
    let addr = "alice@a.test";
    let wrong = "aaaaaa-bbbbbb-cccccc-dddddd";
    let refused = Err("invalid_credentials".to_owned());
    // Two free failures, then the guesser's network must wait, even with the right password.
    assert_eq!(check(&node, addr, wrong, ELSEWHERE).await, refused);
    assert_eq!(check(&node, addr, wrong, ELSEWHERE).await, refused);
    let e = authenticate(&node.context, addr, &pw, ip(ELSEWHERE), SystemTime::now())
        .await
        .unwrap_err();
    assert!(
        matches!(e, ServiceError::TooManyAttempts { secs } if (1..=30).contains(&secs)),
        "{e:?}"
    );
    // An unknown address is throttled alike.
    for _ in 0..2 {
        assert_eq!(
            check(&node, "nobody@a.test", wrong, ELSEWHERE).await,
            refused
        );
    }
    assert_eq!(
        check(&node, "nobody@a.test", wrong, ELSEWHERE).await,
        Err("too_many_attempts".into())
    );
    // The owner's mail program elsewhere, and the owner's web login, are not slowed.
    assert_eq!(check(&node, addr, &pw, HOME).await, Ok(addr.into()));
    node.client()
        .login(
            addr,
            sealpost_tests::password_of("alice").as_bytes(),
            None,
            None,
        )
        .await
        .unwrap();
    // One IPv6 /64 is one network.
    for n in 1..=2 {
        let from = format!("2001:db8:1:2::{n}");
        assert_eq!(check(&node, addr, wrong, &from).await, refused);
    }
    assert_eq!(
        check(&node, addr, &pw, "2001:db8:1:2::99").await,
        Err("too_many_attempts".into())
    );
    assert_eq!(
        check(&node, addr, &pw, "2001:db8:1:3::1").await,
        Ok(addr.into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_gateway_off_nothing_is_made_or_accepted() {
    let (node, alice, _bob, _certs) = gateway(false).await;
    let org: Value = reqwest::get(format!("{}/api/v1/org", node.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(org.get("submission").is_none(), "{org}");
    let (status, body) = create(&node, alice.token(), "Laptop").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("submission_disabled"))
    );
    assert!(listed(&node, alice.token()).await.is_empty());
    assert_eq!(
        check(&node, "alice@a.test", "aaaaaa-bbbbbb-cccccc-dddddd", HOME).await,
        Err("invalid_credentials".into())
    );
    assert_eq!(node.count("SELECT count(*) FROM app_passwords"), 0);
}

/// A guest (docs/pickup.md) makes none, and an account that became a guest is refused with the
/// same error as any other failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_have_no_app_passwords() {
    let (node, alice, _bob, _certs) = gateway(true).await;
    let pw = made(&node, alice.token(), "Laptop").await.password;
    // Made a guest directly in the database (the triggers tell the node's caches).
    let db = rusqlite::Connection::open(node.data().join("sealpost.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute(
        "UPDATE accounts SET kind = 'guest' WHERE address = 'alice@a.test'",
        [],
    )
    .unwrap();
    let (status, body) = create(&node, alice.token(), "Phone").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("guest_not_allowed"))
    );
    assert_eq!(
        check(&node, "alice@a.test", &pw, HOME).await,
        Err("invalid_credentials".into())
    );
}
