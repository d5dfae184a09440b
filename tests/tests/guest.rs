//! Guests end to end (docs/pickup.md, "Guests"), against a real node and a real SMTP server
//! (aiosmtpd, `tests/smtp/sink.py`) on loopback: alice writes to carol@outside.test by pickup;
//! carol unlocks and makes a key of her own (refused for another address, twice, or without a
//! pickup session); alice certifies it as first contact by Message Unlock Code and her trust
//! explanation says so; alice's next message reaches carol without an unlock code, with a
//! notification mail that links to the login; carol logs in, reads and replies to alice, and
//! can write to nobody else (an outside address, a user of another organisation, another
//! guest), look up no one else's key and certify nothing; the administrator lists, disables,
//! enables and removes guests through both doors (console and `sealpost admin`), with the same
//! outcomes.

use std::time::Duration;

use sealpost_client::pickup::PickupClient;
use sealpost_client::{ClientError, Outgoing, Session};
use sealpost_proto::{DeliveryMode, Folder, KdfParams};
use sealpost_tests::smtp::{SinkOptions, SmtpSink, python_at, relay_at, self_signed_cert};
use sealpost_tests::{TestNode, wait_for};

const CAROL: &str = "carol@outside.test";
const CAROL_PASSWORD: &str = "carol's own password";

fn outgoing(to: &[&str], body: &str) -> Outgoing {
    Outgoing {
        to: to.iter().map(|s| s.to_string()).collect(),
        subject: "Your account".into(),
        body: body.into(),
        attachments: vec![],
        pickup_kdf: Some(KdfParams::MIN),
    }
}

/// The API error code a client call ended with.
fn code(e: ClientError) -> String {
    e.code()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{e}"))
}

/// A node of alpha.test sending mail through an aiosmtpd sink, with its submission gateway
/// on (STARTTLS, a self-signed certificate in the returned directory).
async fn node_with_sink() -> (SmtpSink, TestNode, tempfile::TempDir) {
    let sink = SmtpSink::start(&SinkOptions::default()).await.unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(certs.path()).unwrap();
    let relay = relay_at(sink.port);
    let node = TestNode::spawn_with("alpha.test", move |c| {
        relay(c);
        c.submission.enabled = true;
        c.submission.listen = "127.0.0.1:0".parse().unwrap();
        c.submission.tls_cert = cert.display().to_string();
        c.submission.tls_key = key.display().to_string();
    })
    .await
    .unwrap();
    (sink, node, certs)
}

/// `sender` writes to the outside `address` by pickup; its recipient unlocks it. Returns the
/// message's ID and the pickup session.
async fn picked_up(sender: &Session, address: &str, work: &std::path::Path) -> (String, String) {
    let (sent, issued) = sender
        .send_all(&outgoing(&[address], "first contact"), work)
        .await
        .unwrap();
    assert_eq!(issued.len(), 1, "{address} is reached by pickup");
    let pickup = PickupClient::new(issued[0].link.as_deref().unwrap()).unwrap();
    let unlocked = pickup
        .unlock(issued[0].muc.as_deref().unwrap())
        .await
        .unwrap();
    (sent.message_id, unlocked.info.session.clone())
}

/// `address` upgrades from its pickup session and logs in.
async fn guest(node: &TestNode, address: &str, session: &str, password: &str) -> Session {
    let enrolled = node
        .client()
        .upgrade_pickup(session, address, password.as_bytes(), KdfParams::MIN)
        .await
        .unwrap();
    node.client()
        .login(
            address,
            password.as_bytes(),
            None,
            Some(&enrolled.ca_fingerprint),
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_recipient_becomes_a_guest_and_replies_without_unlock_codes() {
    let (sink, node, _certs) = node_with_sink().await;
    let alice = node.person("alice").await;
    let _bob = node.person("bob").await;
    let work = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let api = |p: &str| format!("{}/api/v1{p}", node.url);

    // First contact: by pickup, with an unlock code.
    let (first_id, session) = picked_up(&alice, CAROL, work.path()).await;

    // Refused upgrades change nothing: a key for another address, no pickup session.
    let e = node
        .client()
        .upgrade_pickup(&session, "dave@outside.test", b"pw", KdfParams::MIN)
        .await
        .unwrap_err();
    assert_eq!(code(e), "invalid_cert");
    let e = node
        .client()
        .upgrade_pickup("AAAA", CAROL, b"pw", KdfParams::MIN)
        .await
        .unwrap_err();
    assert_eq!(code(e), "pickup_session_invalid");
    assert_eq!(
        node.count("SELECT count(*) FROM accounts WHERE kind = 'guest'"),
        0
    );

    // Carol makes her key; a second upgrade for her address is told to log in.
    let carol = guest(&node, CAROL, &session, CAROL_PASSWORD).await;
    let e = node
        .client()
        .upgrade_pickup(&session, CAROL, b"another", KdfParams::MIN)
        .await
        .unwrap_err();
    assert_eq!(code(e), "guest_exists");
    assert_eq!(
        node.count("SELECT count(*) FROM txlog WHERE kind = 'pickup.guest_created'"),
        1
    );
    let get_json = async |path: &str, token: &str| -> serde_json::Value {
        let r = http.get(api(path)).bearer_auth(token).send().await.unwrap();
        r.json().await.unwrap()
    };
    let status_of_first = get_json(&format!("/messages/{first_id}"), alice.token()).await;
    let carols = status_of_first["item"]["delivery"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["address"] == CAROL)
        .cloned()
        .unwrap();
    assert_eq!(
        carols["state"], "guest",
        "alice's status of her first message shows the upgrade"
    );
    // The CA does not certify an outside address, and the directory does not tell who is a
    // guest.
    let r = http
        .get(format!("{}/vks/v1/by-email/{CAROL}", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // Carol now resolves as local, with her own key, and no unlock code.
    let env = alice.envelope(&[CAROL.to_owned()]).await;
    let Err(e) = env else {
        panic!("not authenticated before alice certifies")
    };
    assert!(
        format!("{e}").contains("first contact by Message Unlock Code"),
        "{e}"
    );
    let (fingerprint, _) = alice.certify_first_contact(CAROL).await.unwrap();
    assert_eq!(fingerprint, carol.fingerprint());
    let trust = alice.trust(CAROL).await.unwrap();
    let lines = trust.keys[0].explanation.join("\n");
    assert_eq!(trust.keys[0].level, "full", "{lines}");
    assert!(
        lines.contains("you → carol@outside.test (first contact by Message Unlock Code)"),
        "{lines}"
    );
    let (resp, _) = alice.envelope(&[CAROL.to_owned()]).await.unwrap();
    assert_eq!(resp.recipients[0].mode, DeliveryMode::Local);

    let body = "PLAINTEXT-GUEST-BODY-2c9e: your new card is on its way";
    let (sent, issued) = alice
        .send_all(&outgoing(&[CAROL], body), work.path())
        .await
        .unwrap();
    assert!(issued.is_empty(), "no unlock code for a guest");
    assert_eq!(sent.recipients[0].state, "delivered");
    // The notification links to the web app's login, and asks for no unlock code.
    let mail = wait_for(Duration::from_secs(30), async || {
        sink.received()
            .into_iter()
            .find(|m| m.text().contains("/#/mail/inbox"))
    })
    .await
    .unwrap();
    assert_eq!(mail.rcpt_tos(), [CAROL]);
    let text = mail.text();
    assert!(text.contains("password you chose"), "{text}");
    assert!(
        !text.contains("unlock code") && !text.contains(body),
        "{text}"
    );

    // Carol reads it and replies to alice.
    let inbox = carol.mailbox(Folder::Inbox).await.unwrap();
    assert!(inbox.iter().any(|m| m.message_id == sent.message_id));
    let read = carol
        .read(&sent.message_id, None, work.path())
        .await
        .unwrap();
    assert_eq!(read.body, body);
    let reply = carol
        .send(&outgoing(&["alice@alpha.test"], "Thank you!"), work.path())
        .await
        .unwrap();
    let got = alice
        .read(&reply.message_id, None, work.path())
        .await
        .unwrap();
    assert_eq!(got.body, "Thank you!");

    // From her mail program, through the submission gateway: carol is told by mail too.
    let r = http
        .post(api("/app-passwords"))
        .bearer_auth(alice.token())
        .json(&serde_json::json!({ "label": "laptop" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let password = r.json::<serde_json::Value>().await.unwrap()["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let script = format!(
        r#"
import smtplib, ssl
tls = ssl.create_default_context()
tls.check_hostname = False
tls.verify_mode = ssl.CERT_NONE
with smtplib.SMTP(HOST, PORT, timeout=30) as s:
    s.starttls(context=tls)
    s.login('alice@alpha.test', '{password}')
    print(s.sendmail('alice@alpha.test', ['{CAROL}'],
        'From: alice@alpha.test\r\nTo: {CAROL}\r\nSubject: From my laptop\r\n\r\nHello Carol\r\n'))
"#
    );
    let out = python_at(node.submission().unwrap(), &script).await;
    assert_eq!(out.trim(), "{}");
    wait_for(Duration::from_secs(30), async || {
        let told = sink
            .received()
            .into_iter()
            .filter(|m| m.text().contains("/#/mail/inbox"))
            .count();
        (told == 2).then_some(())
    })
    .await
    .expect("carol told of the gateway's message too");

    // A second guest, erin.
    let (_, erin_session) = picked_up(&alice, "erin@outside.test", work.path()).await;
    let _erin = guest(&node, "erin@outside.test", &erin_session, "erin's password").await;

    // Carol writes to the organisation's users only.
    for (to, why) in [
        ("bob@beta.test", "a user of another organisation"),
        ("dave@outside.test", "another outside address"),
        ("erin@outside.test", "another guest"),
    ] {
        let e = carol
            .send(&outgoing(&["alice@alpha.test", to], "hi"), work.path())
            .await
            .unwrap_err();
        assert_eq!(code(e), "guest_recipient_not_allowed", "{why}");
    }
    // …looks up the organisation's users' keys only, and certifies no one.
    let status = async |method: reqwest::Method, path: &str, token: &str, body: &str| {
        http.request(method, api(path))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    use reqwest::Method;
    let guest_rows: &[(Method, &str, &str, u16)] = &[
        (Method::GET, "/trust/alice@alpha.test", "", 200),
        (Method::GET, "/users/alice@alpha.test/cert", "", 200),
        (Method::GET, "/trust/erin@outside.test", "", 403),
        (Method::GET, "/users/erin@outside.test/cert", "", 403),
        (Method::GET, "/trust/bob@beta.test", "", 403),
        (Method::POST, "/certifications", r#"{"cert":"x"}"#, 403),
        (Method::GET, "/admin/users", "", 403),
        (Method::GET, "/admin/guests", "", 403),
        (
            Method::POST,
            "/admin/invites",
            r#"{"address":"x@alpha.test"}"#,
            403,
        ),
        (Method::GET, "/me", "", 200),
    ];
    for (method, path, body, want) in guest_rows {
        assert_eq!(
            status(method.clone(), path, carol.token(), body).await,
            *want,
            "guest {method} {path}"
        );
    }
    assert_eq!(get_json("/me", carol.token()).await["guest"], true);

    // Disabled, carol cannot log in and her address is reached by pickup again; enabled, she
    // can, and it resolves to her key again.
    node.admin(&["guest", "disable", CAROL]).await.unwrap();
    let e = node
        .client()
        .login(CAROL, CAROL_PASSWORD.as_bytes(), None, None)
        .await
        .err()
        .unwrap();
    assert_eq!(code(e), "account_disabled");
    let (resp, _) = alice.envelope(&[CAROL.to_owned()]).await.unwrap();
    assert_eq!(resp.recipients[0].mode, DeliveryMode::Pickup);
    node.admin(&["guest", "enable", CAROL]).await.unwrap();
    let carol = node
        .client()
        .login(CAROL, CAROL_PASSWORD.as_bytes(), None, None)
        .await
        .unwrap();
    let (resp, _) = alice.envelope(&[CAROL.to_owned()]).await.unwrap();
    assert_eq!(resp.recipients[0].mode, DeliveryMode::Local);

    // Removed: her mailbox and account are gone; she is reached by pickup again.
    node.admin(&["guest", "remove", CAROL]).await.unwrap();
    assert_eq!(
        status(Method::GET, "/me", carol.token(), "").await,
        401,
        "her sessions ended"
    );
    let (resp, _) = alice.envelope(&[CAROL.to_owned()]).await.unwrap();
    assert_eq!(resp.recipients[0].mode, DeliveryMode::Pickup);
    assert_eq!(
        node.count("SELECT count(*) FROM accounts WHERE address = 'carol@outside.test'"),
        0
    );
    assert_eq!(
        node.count("SELECT count(*) FROM txlog WHERE kind = 'guest.removed'"),
        1
    );
}

#[derive(Clone, Copy, Debug)]
enum Op {
    List,
    Disable(&'static str),
    Enable(&'static str),
    Remove(&'static str),
}

/// `(operation, expected outcome: "ok", the listed guests as "address state" joined by ", ",
/// or the error code)`, run in order on a node where carol and erin are guests and alice a user.
const CASES: &[(Op, &str)] = &[
    (
        Op::List,
        "carol@outside.test active, erin@outside.test active",
    ),
    (Op::Disable("alice@alpha.test"), "unknown_guest"),
    (Op::Disable("nobody@outside.test"), "unknown_guest"),
    (Op::Disable("not an address"), "invalid_address"),
    (Op::Disable("CAROL@outside.test"), "ok"),
    (
        Op::List,
        "carol@outside.test disabled, erin@outside.test active",
    ),
    (Op::Enable("carol@outside.test"), "ok"),
    (Op::Remove("alice@alpha.test"), "unknown_guest"),
    (Op::Remove("erin@outside.test"), "ok"),
    (Op::Remove("erin@outside.test"), "unknown_guest"),
    (Op::List, "carol@outside.test active"),
];

/// A node with alice (a user), root (an admin, logged in), and carol and erin as guests.
async fn world() -> (SmtpSink, TestNode, Session) {
    let (sink, node, _certs) = node_with_sink().await;
    let alice = node.person("alice").await;
    let root = node
        .enrolled("root@alpha.test", "root password", KdfParams::MIN, true)
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    for (address, password) in [(CAROL, CAROL_PASSWORD), ("erin@outside.test", "erin pw")] {
        let (_, session) = picked_up(&alice, address, work.path()).await;
        guest(&node, address, &session, password).await;
    }
    (sink, node, root)
}

async fn through_console(node: &TestNode, root: &Session, op: Op) -> String {
    let http = reqwest::Client::new();
    let api = |p: &str| format!("{}/api/v1{p}", node.url);
    let path = |a: &str| a.replace(' ', "%20");
    let req = match op {
        Op::List => http.get(api("/admin/guests")),
        Op::Disable(a) | Op::Enable(a) => {
            let state = if matches!(op, Op::Enable(_)) {
                "active"
            } else {
                "disabled"
            };
            http.post(api(&format!("/admin/guests/{}/state", path(a))))
                .json(&serde_json::json!({ "state": state }))
        }
        Op::Remove(a) => http.delete(api(&format!("/admin/guests/{}", path(a)))),
    };
    let r = req.bearer_auth(root.token()).send().await.unwrap();
    let ok = r.status().is_success();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    if !ok {
        return body["code"].as_str().unwrap().to_owned();
    }
    match op {
        Op::List => body["guests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                format!(
                    "{} {}",
                    g["address"].as_str().unwrap(),
                    g["state"].as_str().unwrap()
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => "ok".into(),
    }
}

async fn through_cli(node: &TestNode, op: Op) -> String {
    let (verb, address) = match op {
        // The CLI prints the list; what it lists is the service's, read here the same way.
        Op::List => {
            let guests = sealpost::service::guests::list(&*node.store).await.unwrap();
            return guests
                .iter()
                .map(|g| format!("{} {}", g.address, g.state.as_str()))
                .collect::<Vec<_>>()
                .join(", ");
        }
        Op::Disable(a) => ("disable", a),
        Op::Enable(a) => ("enable", a),
        Op::Remove(a) => ("remove", a),
    };
    match node.admin(&["guest", verb, address]).await {
        Ok(()) => "ok".into(),
        Err(e) => e
            .downcast_ref::<sealpost::service::ServiceError>()
            .map(|e| e.code().to_owned())
            .unwrap_or_else(|| format!("{e:#}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_are_administered_alike_through_console_and_cli() {
    let (_sink, console_node, root) = world().await;
    let (_sink2, cli_node, _) = world().await;
    // `admin guest list` runs without failing.
    cli_node.admin(&["guest", "list"]).await.unwrap();
    for &(op, want) in CASES {
        assert_eq!(
            through_console(&console_node, &root, op).await,
            want,
            "console {op:?}"
        );
        assert_eq!(through_cli(&cli_node, op).await, want, "cli {op:?}");
    }
    // The log names the actor: the admin's address, or `cli`.
    assert_eq!(
        console_node.count(
            "SELECT count(*) FROM txlog WHERE kind = 'guest.removed' AND actor = 'root@alpha.test'"
        ),
        1
    );
    assert_eq!(
        cli_node.count("SELECT count(*) FROM txlog WHERE kind = 'guest.removed' AND actor = 'cli'"),
        1
    );
}
