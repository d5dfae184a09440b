//! The submission gateway (docs/mail.md "Submission gateway"): a standard mail program
//! (Python's `smtplib`, Debian's `/usr/bin/python3`) logs in with an app password and sends
//! one mail to dora@pgp.test (outside, OpenPGP key imported by the administrator) and to
//! bob@alpha.test (a user of the node). The node seals it per recipient: dora's copy reaches a
//! real Postfix as PGP/MIME that GnuPG opens, bob's lands in his inbox, alice's sent copy is
//! encrypted to her, and no plaintext is on disk. A revoked app password is refused; hostile
//! sessions get their codes and store nothing.

use std::net::SocketAddr;
use std::time::Duration;

use sealpost_client::Session;
use sealpost_proto::{DeliveryMode, Folder};
use sealpost_tests::gpg::Gpg;
use sealpost_tests::mail::{delivered_outer, import_by_admin, pgp_mime_message};
use sealpost_tests::smtp::{Postfix, free_port, python_at, relay_at, self_signed_cert};
use sealpost_tests::{TestNode, files_containing, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SUBJECT: &str = "Board minutes 5e1b77";
const BODY: &str = "The confidential body 0c9a4f27e1";

/// A GnuPG home with dora's key; her key armored.
fn dora() -> (Gpg, String) {
    let gpg = Gpg::new();
    let (armored, _) = gpg.new_key("dora@pgp.test");
    (gpg, armored)
}

/// A node of alpha.test with the gateway on loopback (STARTTLS, a self-signed certificate)
/// and mail out through `relay_port`, each user allowed `per_hour` mails an hour; alice and
/// bob enrolled.
async fn gateway(
    relay_port: u16,
    per_hour: u32,
) -> (TestNode, Session, Session, tempfile::TempDir) {
    gateway_with(relay_port, move |c| {
        c.submission.messages_per_user_per_hour = per_hour
    })
    .await
}

/// [`gateway`] with `tweak` applied to the configuration last.
async fn gateway_with(
    relay_port: u16,
    tweak: impl FnOnce(&mut sealpost::config::Config) + Send + 'static,
) -> (TestNode, Session, Session, tempfile::TempDir) {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(certs.path()).unwrap();
    let node = TestNode::spawn_with("alpha.test", move |c| {
        relay_at(relay_port)(c);
        c.federation.enabled = false;
        c.submission.enabled = true;
        c.submission.listen = "127.0.0.1:0".parse().unwrap();
        c.submission.tls_cert = cert.display().to_string();
        c.submission.tls_key = key.display().to_string();
        c.submission.max_message_bytes = 256 * 1024;
        c.submission.command_timeout_secs = 5;
        c.submission.data_timeout_secs = 5;
        tweak(c);
    })
    .await
    .unwrap();
    let alice = node.person("alice").await;
    let bob = node.person("bob").await;
    (node, alice, bob, certs)
}

fn addr(node: &TestNode) -> SocketAddr {
    node.submission().expect("the submission gateway is bound")
}

/// A new app password of `who`'s (`POST /app-passwords`): its id and the password.
async fn app_password(node: &TestNode, who: &Session, label: &str) -> (i64, String) {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/app-passwords", node.url))
        .bearer_auth(who.token())
        .json(&serde_json::json!({ "label": label }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let v: serde_json::Value = resp.json().await.unwrap();
    (
        v["id"].as_i64().unwrap(),
        v["password"].as_str().unwrap().to_owned(),
    )
}

async fn revoke(node: &TestNode, who: &Session, id: i64) {
    let resp = reqwest::Client::new()
        .delete(format!("{}/api/v1/app-passwords/{id}", node.url))
        .bearer_auth(who.token())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
}

/// `smtplib` as a mail program uses it: STARTTLS (certificate not checked: self-signed), login,
/// one mail from `from` (header and envelope) to `to`. Prints the refused recipients, or the
/// SMTP error's code.
fn send_script(user: &str, password: &str, from: &str, to: &[&str]) -> String {
    format!(
        r#"
import smtplib, ssl
from email.message import EmailMessage
m = EmailMessage()
m['From'] = 'Alice <{from}>'
m['To'] = ', '.join({to:?})
m['Subject'] = '{SUBJECT}'
m.set_content('{BODY}')
tls = ssl.create_default_context()
tls.check_hostname = False
tls.verify_mode = ssl.CERT_NONE
try:
    with smtplib.SMTP(HOST, PORT, timeout=30) as s:
        s.starttls(context=tls)
        s.login('{user}', '{password}')
        print(s.send_message(m, from_addr='{from}', to_addrs={to:?}))
except smtplib.SMTPResponseException as e:
    print('code', e.smtp_code, e.smtp_error.decode())
except smtplib.SMTPRecipientsRefused as e:
    print('refused', {{a: c for a, (c, _) in e.recipients.items()}})
"#
    )
}

async fn python(node: &TestNode, script: &str) -> String {
    python_at(addr(node), script).await
}

fn stored(node: &TestNode) -> i64 {
    node.count("SELECT COUNT(*) FROM messages")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_program_sends_through_the_gateway_sealed_per_recipient() {
    let postfix = Postfix::start(&["dora@pgp.test"]).await.unwrap();
    let (node, alice, bob, _certs) = gateway(postfix.port, 100).await;
    let (gpg, dora_key) = dora();
    import_by_admin(&node, &dora_key).await;
    let (id, password) = app_password(&node, &alice, "Thunderbird on the office PC").await;

    let out = python(
        &node,
        &send_script(
            "alice@alpha.test",
            &password,
            "alice@alpha.test",
            &["dora@pgp.test", "bob@alpha.test"],
        ),
    )
    .await;
    assert_eq!(out.trim(), "{}", "every recipient taken");

    // alice's sent copy: one message, dora by OpenPGP mail, delivered by Postfix.
    let sent = wait_for(Duration::from_secs(30), || async {
        let items = alice.mailbox(Folder::Sent).await.unwrap();
        items
            .first()
            .filter(|i| i.delivery.iter().any(|d| d.state == "delivered"))
            .cloned()
    })
    .await
    .expect("dora's copy delivered");
    assert_eq!(sent.via.as_deref(), Some("smtp"));
    assert!(sent.arrival.as_ref().unwrap().submitted);
    let d = &sent.delivery[0];
    assert_eq!(
        (d.address.as_str(), d.mode),
        ("dora@pgp.test", Some(DeliveryMode::Openpgp))
    );
    let work = tempfile::tempdir().unwrap();
    let mine = alice
        .read_mail(&sent.message_id, work.path())
        .await
        .unwrap();
    assert_eq!((mine.subject.as_str(), mine.body.trim()), (SUBJECT, BODY));

    // dora's copy: PGP/MIME, the real subject only inside; GnuPG opens it.
    let (_, raw) = delivered_outer(&postfix, "dora@pgp.test", &sent.message_id).await;
    assert!(!String::from_utf8_lossy(&raw).contains(SUBJECT));
    let armored = pgp_mime_message(&raw);
    let out = gpg.gpg(
        &[
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--decrypt",
        ],
        &armored,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inner = String::from_utf8_lossy(&out.stdout);
    assert!(inner.contains(SUBJECT) && inner.contains(BODY), "{inner}");

    // bob's copy: in his inbox, from alice, marked as sent through the gateway.
    let inbox = bob.mailbox(Folder::Inbox).await.unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].from, "alice@alpha.test");
    assert!(inbox[0].arrival.as_ref().unwrap().submitted);
    let his = bob
        .read_mail(&inbox[0].message_id, work.path())
        .await
        .unwrap();
    assert_eq!((his.subject.as_str(), his.body.trim()), (SUBJECT, BODY));

    // No plaintext anywhere in the data directory.
    for needle in [SUBJECT, BODY] {
        assert_eq!(
            files_containing(&node.data(), needle.as_bytes()),
            Vec::<std::path::PathBuf>::new()
        );
    }

    // Revoked: the same password is refused, and nothing more is stored.
    revoke(&node, &alice, id).await;
    let before = stored(&node);
    let out = python(
        &node,
        &send_script(
            "alice@alpha.test",
            &password,
            "alice@alpha.test",
            &["bob@alpha.test"],
        ),
    )
    .await;
    assert!(out.starts_with("code 535"), "{out}");
    assert_eq!(stored(&node), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_refuses_what_it_must_and_stores_nothing() {
    let (node, alice, bob, _certs) = gateway(free_port(), 100).await;
    let (_, password) = app_password(&node, &alice, "phone").await;
    let (_, bobs) = app_password(&node, &bob, "bob's laptop").await;
    let send = |user: &str, pass: &str, from: &str, to: &[&str]| send_script(user, pass, from, to);

    // Wrong password, another user's password, an unknown user: the same 535.
    for (user, pass) in [
        ("alice@alpha.test", "wrong-wrong-wrong-wrong"),
        ("alice@alpha.test", bobs.as_str()),
        ("nobody@alpha.test", password.as_str()),
    ] {
        let out = python(
            &node,
            &send(user, pass, "alice@alpha.test", &["bob@alpha.test"]),
        )
        .await;
        assert!(out.starts_with("code 535"), "{user}: {out}");
    }
    // Sending as someone else: the envelope sender (553), then the From header (550).
    let out = python(
        &node,
        &send(
            "alice@alpha.test",
            &password,
            "bob@alpha.test",
            &["bob@alpha.test"],
        ),
    )
    .await;
    assert!(out.starts_with("code 553"), "{out}");
    let forged = send_script(
        "alice@alpha.test",
        &password,
        "alice@alpha.test",
        &["bob@alpha.test"],
    )
    .replace(
        "m['From'] = 'Alice <alice@alpha.test>'",
        "m['From'] = 'bob@alpha.test'",
    );
    let out = python(&node, &forged).await;
    assert!(out.starts_with("code 550"), "{out}");
    // An outside address with no key and no pickup: refused at RCPT.
    let out = python(
        &node,
        &send(
            "alice@alpha.test",
            &password,
            "alice@alpha.test",
            &["zed@nokey.test"],
        ),
    )
    .await;
    assert!(out.starts_with("refused") && out.contains("550"), "{out}");
    assert_eq!(stored(&node), 0);

    // By hand: no AUTH before TLS (538), no MAIL before AUTH (530), no AUTH offered in plain.
    let mut s = tokio::net::TcpStream::connect(addr(&node)).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut t = String::new();
    for line in [
        &b"EHLO c.test\r\n"[..],
        b"AUTH PLAIN AGFsaWNlQGFscGhhLnRlc3QAeA==\r\n",
        b"MAIL FROM:<alice@alpha.test>\r\n",
        b"QUIT\r\n",
    ] {
        let n = s.read(&mut buf).await.unwrap();
        t.push_str(&String::from_utf8_lossy(&buf[..n]));
        s.write_all(line).await.unwrap();
    }
    s.read_to_string(&mut t).await.unwrap();
    assert!(!t.contains("AUTH PLAIN\r\n"), "{t}");
    let codes: Vec<&str> = t
        .lines()
        .filter(|l| l.len() >= 4 && &l[3..4] == " ")
        .map(|l| &l[..3])
        .collect();
    assert_eq!(codes, ["220", "250", "538", "530", "221"], "{t}");
    assert_eq!(stored(&node), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_past_their_mails_per_hour_gets_451_and_others_go_on() {
    let (node, alice, bob, _certs) = gateway(free_port(), 2).await;
    let (_, password) = app_password(&node, &alice, "laptop").await;
    let (_, bobs) = app_password(&node, &bob, "phone").await;
    let to_bob = send_script(
        "alice@alpha.test",
        &password,
        "alice@alpha.test",
        &["bob@alpha.test"],
    );
    for _ in 0..2 {
        assert_eq!(python(&node, &to_bob).await.trim(), "{}");
    }
    let out = python(&node, &to_bob).await;
    assert!(out.starts_with("code 451"), "{out}");
    assert_eq!(stored(&node), 2);
    // bob's own count is his.
    let to_alice = send_script(
        "bob@alpha.test",
        &bobs,
        "bob@alpha.test",
        &["alice@alpha.test"],
    );
    assert_eq!(python(&node, &to_alice).await.trim(), "{}");
    assert_eq!(stored(&node), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_465_speaks_tls_from_the_first_byte() {
    let (node, alice, bob, _certs) =
        gateway_with(free_port(), |c| c.submission.implicit_tls = true).await;
    let (_, password) = app_password(&node, &alice, "laptop").await;
    let script = format!(
        r#"
import smtplib, ssl
tls = ssl.create_default_context()
tls.check_hostname = False
tls.verify_mode = ssl.CERT_NONE
with smtplib.SMTP_SSL(HOST, PORT, context=tls, timeout=30) as s:
    s.ehlo('laptop.test')
    assert not s.has_extn('starttls')
    s.login('alice@alpha.test', '{password}')
    print(s.sendmail('alice@alpha.test', ['bob@alpha.test'],
        'From: alice@alpha.test\r\nTo: bob@alpha.test\r\nSubject: {SUBJECT}\r\n\r\n{BODY}\r\n'))
"#
    );
    assert_eq!(python(&node, &script).await.trim(), "{}");
    let inbox = bob.mailbox(Folder::Inbox).await.unwrap();
    assert_eq!(inbox.len(), 1);
    let work = tempfile::tempdir().unwrap();
    let m = bob
        .read_mail(&inbox[0].message_id, work.path())
        .await
        .unwrap();
    assert_eq!((m.subject.as_str(), m.body.trim()), (SUBJECT, BODY));
    // A client speaking plain SMTP to it gets no greeting it can use.
    let mut plain = tokio::net::TcpStream::connect(addr(&node)).await.unwrap();
    plain.write_all(b"EHLO c.test\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("220 "), "{buf:?}");
}
