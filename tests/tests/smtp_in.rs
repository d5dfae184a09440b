//! SMTP in (docs/mail.md "SMTP in"): a running node's SMTP door, spoken to by real mail
//! programs (Python's `smtplib`, Debian's `/usr/bin/python3`) and, for what no well-behaved
//! program sends, by hand over TCP. Every mail that is taken is read back by the recipient's
//! client; every hostile one is answered with its code and leaves nothing stored.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use sealpost::storage::AccountStore;
use sealpost_client::{Outgoing, Session};
use sealpost_proto::Folder;
use sealpost_tests::smtp::{python_at, self_signed_cert};
use sealpost_tests::{TestNode, files_containing};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SUBJECT: &str = "Quarterly figures 7f3a9c";
const BODY: &str = "The secret body text d41d8cd98f00b204";

/// A node of `a.test` with its SMTP door on loopback (small limits, short timeouts, a greet
/// pause, STARTTLS with a self-signed certificate), and bob, carol and dave enrolled.
async fn door() -> (TestNode, Session, tempfile::TempDir) {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(certs.path()).unwrap();
    let node = TestNode::spawn_with("a.test", |c| {
        c.federation.enabled = false;
        c.smtp_in.enabled = true;
        c.smtp_in.listen = "127.0.0.1:0".parse().unwrap();
        c.smtp_in.hostname = "mx.a.test".into();
        c.smtp_in.tls_cert = cert.display().to_string();
        c.smtp_in.tls_key = key.display().to_string();
        c.smtp_in.max_message_bytes = 64 * 1024;
        c.smtp_in.max_recipients = 3;
        c.smtp_in.greet_pause_ms = 300;
        c.smtp_in.command_timeout_secs = 2;
        c.smtp_in.data_timeout_secs = 2;
    })
    .await
    .unwrap();
    let bob = node.person("bob").await;
    node.person("carol").await;
    node.person("dave").await;
    (node, bob, certs)
}

fn addr(node: &TestNode) -> SocketAddr {
    node.smtp.expect("the SMTP door is bound")
}

async fn python(node: &TestNode, script: &str) -> String {
    python_at(addr(node), script).await
}

/// Speaks to the door by hand: waits for the greeting (unless `early`), sends each chunk in
/// turn, then reads every reply until the server closes the connection.
async fn converse(node: &TestNode, chunks: &[&[u8]], early: bool) -> String {
    let mut s = tokio::net::TcpStream::connect(addr(node)).await.unwrap();
    let mut transcript = Vec::new();
    let mut buf = vec![0u8; 65536];
    if !early {
        let n = s.read(&mut buf).await.unwrap();
        transcript.extend_from_slice(&buf[..n]);
    }
    for c in chunks {
        if s.write_all(c).await.is_err() {
            break;
        }
    }
    loop {
        match tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => transcript.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the server did not close the connection"),
        }
    }
    String::from_utf8_lossy(&transcript).into_owned()
}

/// A mail from erin to bob, each command sent after the answer to the one before (no
/// pipelining), then `data` after the 354; reads until the server closes.
async fn lockstep(node: &TestNode, data: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr(node)).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut t = String::new();
    for step in [
        &b"EHLO c.test\r\n"[..],
        b"MAIL FROM:<erin@outside.test>\r\n",
        b"RCPT TO:<bob@a.test>\r\n",
        b"DATA\r\n",
        data,
    ] {
        let n = s.read(&mut buf).await.unwrap();
        t.push_str(&String::from_utf8_lossy(&buf[..n]));
        s.write_all(step).await.unwrap();
    }
    s.read_to_string(&mut t).await.unwrap();
    t
}

/// The reply codes of a transcript, in order.
fn codes(transcript: &str) -> Vec<&str> {
    transcript
        .lines()
        .filter(|l| l.len() >= 4 && &l[3..4] == " ")
        .map(|l| &l[..3])
        .collect()
}

fn stored(node: &TestNode) -> i64 {
    node.count("SELECT COUNT(*) FROM messages WHERE arrival IS NOT NULL")
}

/// Every file of the data directory (database, WAL, blobs) that holds `needle`.
fn on_disk(data: &Path, needle: &str) -> Vec<std::path::PathBuf> {
    files_containing(data, needle.as_bytes())
}

fn plain_mail_script(to: &[&str], extra: &str) -> String {
    format!(
        r#"
import smtplib
from email.message import EmailMessage
m = EmailMessage()
m['From'] = 'Erin <erin@outside.test>'
m['To'] = ', '.join({to:?})
m['Subject'] = '{SUBJECT}'
m['Message-ID'] = '<m1@outside.test>'
{extra}
m.set_content('{BODY}')
with smtplib.SMTP(HOST, PORT) as s:
    s.ehlo('client.outside.test')
    refused = s.send_message(m, from_addr='erin@outside.test', to_addrs={to:?})
    print(refused)
"#
    )
}

#[tokio::test]
async fn a_plain_mail_is_stored_encrypted_and_read_by_its_recipient() {
    let (node, bob, _certs) = door().await;
    let out = python(
        &node,
        &plain_mail_script(&["bob@a.test", "carol@a.test"], ""),
    )
    .await;
    assert_eq!(out.trim(), "{}", "every recipient taken");
    // One copy per recipient, each encrypted to that recipient.
    assert_eq!(stored(&node), 2);
    for needle in [SUBJECT, BODY] {
        assert_eq!(
            on_disk(&node.data(), needle),
            Vec::<std::path::PathBuf>::new()
        );
    }

    let inbox = bob.mailbox(Folder::Inbox).await.unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].via.as_deref(), Some("smtp"));
    assert_eq!(inbox[0].from, "erin@outside.test");
    let work = tempfile::tempdir().unwrap();
    let m = bob
        .read_mail(&inbox[0].message_id, work.path())
        .await
        .unwrap();
    assert_eq!(m.subject, SUBJECT);
    assert_eq!(m.body.trim(), BODY);
    assert_eq!(m.from, "erin@outside.test");
    assert!(!m.arrival.encrypted, "marked as arrived unencrypted");
    assert!(!m.arrival.tls);
    assert_eq!(m.arrival.mail_from, "erin@outside.test");
    assert_eq!(
        (
            m.arrival.spf.as_str(),
            m.arrival.dkim.as_str(),
            m.arrival.dmarc.as_str()
        ),
        ("none", "none", "none"),
        "no resolver configured: not checked"
    );
    assert!(!bob.mailbox(Folder::Inbox).await.unwrap()[0].unread);
}

#[tokio::test]
async fn a_mail_over_starttls_is_marked_tls() {
    let (node, bob, _certs) = door().await;
    let out = python(
        &node,
        &format!(
            r#"
import smtplib, ssl
from email.message import EmailMessage
m = EmailMessage()
m['From'] = 'erin@outside.test'
m['To'] = 'bob@a.test'
m['Subject'] = 'over tls'
m.set_content('{BODY}')
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP(HOST, PORT) as s:
    s.ehlo('client.outside.test')
    s.starttls(context=ctx)
    s.ehlo('client.outside.test')
    print(s.send_message(m))
"#
        ),
    )
    .await;
    assert_eq!(out.trim(), "{}");
    let inbox = bob.mailbox(Folder::Inbox).await.unwrap();
    assert_eq!(inbox.len(), 1);
    assert!(inbox[0].arrival.as_ref().unwrap().tls);
}

#[tokio::test]
async fn a_pgp_mime_mail_made_with_gpg_is_kept_as_it_came_and_opened() {
    let (node, bob, _certs) = door().await;
    let account = node
        .store
        .account_by_address("bob@a.test")
        .await
        .unwrap()
        .unwrap();
    let gpg = sealpost_tests::gpg::Gpg::new();
    let import = gpg.gpg(&["--import"], account.cert.as_deref().unwrap());
    assert!(import.status.success(), "{import:?}");
    let inner = format!(
        "Content-Type: text/plain; charset=utf-8; protected-headers=\"v1\"\r\n\
         Subject: {SUBJECT}\r\nFrom: erin@outside.test\r\nTo: bob@a.test\r\n\r\n{BODY}\r\n"
    );
    let fpr = account.fingerprint.clone().unwrap();
    let enc = gpg.gpg(
        &[
            "--encrypt",
            "--armor",
            "--trust-model",
            "always",
            "--recipient",
            &fpr,
        ],
        &inner,
    );
    assert!(enc.status.success(), "{enc:?}");
    let armored = String::from_utf8(enc.stdout).unwrap();
    let out = python(
        &node,
        &sealpost_tests::smtp::pgp_mime_script("bob@a.test", &armored),
    )
    .await;
    assert_eq!(out.trim(), "{}");
    let inbox = bob.mailbox(Folder::Inbox).await.unwrap();
    assert_eq!(inbox.len(), 1);
    // Stored as it came: part 0 is the sender's armored OpenPGP message.
    let id = &inbox[0].message_id;
    let part: Vec<u8> = node
        .db()
        .query_row(
            "SELECT data FROM parts WHERE message_id = ?1 AND idx = 0",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        String::from_utf8(part).unwrap().trim_end(),
        armored.trim_end().replace('\n', "\r\n").trim_end()
    );
    let work = tempfile::tempdir().unwrap();
    let m = bob.read_mail(id, work.path()).await.unwrap();
    assert!(m.arrival.encrypted);
    assert_eq!(
        m.subject, SUBJECT,
        "the protected subject, not the outer one"
    );
    assert_eq!(m.body.trim(), BODY);
}

#[tokio::test]
async fn a_reply_to_our_message_lands_with_in_reply_to_only_from_its_recipient() {
    let (node, bob, _certs) = door().await;
    let alice = node.person("alice").await;
    let work = tempfile::tempdir().unwrap();
    let sent = alice
        .send(
            &Outgoing {
                to: vec!["bob@a.test".into()],
                subject: "question".into(),
                body: "?".into(),
                attachments: vec![],
                pickup_kdf: None,
            },
            work.path(),
        )
        .await
        .unwrap();
    let ours = format!("<{}@a.test>", sent.message_id);
    for from in ["bob@a.test", "mallory@outside.test"] {
        let out = python(
            &node,
            &format!(
                r#"
import smtplib
from email.message import EmailMessage
m = EmailMessage()
m['From'] = '{from}'
m['To'] = 'alice@a.test'
m['Subject'] = 'Re: question'
m['In-Reply-To'] = '{ours}'
m['References'] = '<other@elsewhere.test> {ours}'
m.set_content('answer')
with smtplib.SMTP(HOST, PORT) as s:
    print(s.send_message(m))
"#
            ),
        )
        .await;
        assert_eq!(out.trim(), "{}");
    }
    let inbox = alice.mailbox(Folder::Inbox).await.unwrap();
    assert_eq!(inbox.len(), 2);
    let by = |from: &str| inbox.iter().find(|i| i.from == from).unwrap();
    assert_eq!(
        by("bob@a.test").in_reply_to.as_deref(),
        Some(sent.message_id.as_str())
    );
    assert_eq!(by("mallory@outside.test").in_reply_to, None);
    drop(bob);
}

#[tokio::test]
async fn unknown_and_disabled_recipients_get_the_same_550() {
    let (node, _bob, _certs) = door().await;
    node.admin(&["user", "disable", "dave@a.test"])
        .await
        .unwrap();
    let t = converse(
        &node,
        &[
            b"EHLO c.test\r\nMAIL FROM:<erin@outside.test>\r\nRCPT TO:<nobody@a.test>\r\n\
            RCPT TO:<dave@a.test>\r\nRCPT TO:<x@elsewhere.test>\r\nDATA\r\nQUIT\r\n",
        ],
        false,
    )
    .await;
    assert_eq!(
        codes(&t),
        ["220", "250", "250", "550", "550", "550", "503", "221"]
    );
    let answers: Vec<&str> = t
        .lines()
        .filter(|l| l.starts_with("550"))
        .map(|l| l.split('>').nth(1).unwrap())
        .collect();
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert!(t.contains("550 5.1.1"));
    assert_eq!(stored(&node), 0);
}

#[tokio::test]
async fn an_oversized_mail_gets_552_and_nothing_is_stored() {
    let (node, _bob, _certs) = door().await;
    // Declared with SIZE (smtplib does when the server offers it): refused at MAIL FROM.
    let big = "x".repeat(100 * 1024);
    let out = python(
        &node,
        &format!(
            r#"
import smtplib
try:
    with smtplib.SMTP(HOST, PORT) as s:
        s.sendmail('erin@outside.test', ['bob@a.test'], 'From: erin@outside.test\r\nSubject: big\r\n\r\n' + '{big}')
    print('taken')
except smtplib.SMTPSenderRefused as e:
    print(e.smtp_code)
"#
        ),
    )
    .await;
    assert_eq!(out.trim(), "552");
    // Not declared: refused while it streams, answered at its end.
    let body = format!("From: erin@outside.test\r\nSubject: big\r\n\r\n{big}\r\n.\r\nQUIT\r\n");
    let t = lockstep(&node, body.as_bytes()).await;
    assert_eq!(
        codes(&t),
        ["220", "250", "250", "250", "354", "552", "221"],
        "{t}"
    );
    assert_eq!(stored(&node), 0);
    assert!(on_disk(&node.data(), &big[..64]).is_empty());
}

#[tokio::test]
async fn a_thousand_recipients_get_452_past_the_limit() {
    let (node, _bob, _certs) = door().await;
    let mut burst = String::from("EHLO c.test\r\nMAIL FROM:<erin@outside.test>\r\n");
    for who in ["bob", "carol", "alice-not-here", "dave"] {
        burst.push_str(&format!("RCPT TO:<{who}@a.test>\r\n"));
    }
    for i in 0..996 {
        burst.push_str(&format!("RCPT TO:<user{i}@a.test>\r\n"));
    }
    burst.push_str("RSET\r\nQUIT\r\n");
    let t = converse(&node, &[burst.as_bytes()], false).await;
    let c = codes(&t);
    assert_eq!(&c[..7], ["220", "250", "250", "250", "250", "550", "250"]);
    assert_eq!(c.iter().filter(|c| **c == "452").count(), 996);
    assert_eq!(&c[c.len() - 2..], ["250", "221"]);
    assert_eq!(stored(&node), 0);
}

#[tokio::test]
async fn malformed_mail_and_header_injection_are_refused() {
    let (node, _bob, _certs) = door().await;
    let head = "EHLO c.test\r\nMAIL FROM:<erin@outside.test>\r\nRCPT TO:<bob@a.test>\r\n";
    let cases: [(&str, &[u8], &str); 4] = [
        ("no From header", b"Subject: x\r\n\r\nhello\r\n", "550"),
        (
            "a NUL byte",
            b"From: erin@outside.test\r\nSubject: x\0y\r\n\r\nhi\r\n",
            "550",
        ),
        (
            "a header injected with a bare LF",
            b"From: erin@outside.test\r\nSubject: x\nBcc: victim@a.test\r\n\r\nhi\r\n",
            "550",
        ),
        (
            "MIME parts with no end and a broken boundary",
            b"From: erin@outside.test\r\nContent-Type: multipart/mixed; boundary=\"\r\n\r\n--\r\n",
            "550",
        ),
    ];
    for (name, mail, want) in cases {
        let mut s = tokio::net::TcpStream::connect(addr(&node)).await.unwrap();
        let mut t = String::new();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        t.push_str(&String::from_utf8_lossy(&buf[..n]));
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(b"DATA\r\n").await.unwrap();
        let mut got = 0;
        while got < 4 {
            let n = s.read(&mut buf).await.unwrap();
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            got += codes(&text).len();
            t.push_str(&text);
        }
        s.write_all(mail).await.unwrap();
        s.write_all(b".\r\nQUIT\r\n").await.unwrap();
        s.read_to_string(&mut t).await.unwrap();
        let c = codes(&t);
        assert_eq!(c[c.len() - 2], want, "{name}: {t}");
        assert!(t.contains("5.6.0"), "{name}: {t}");
    }
    // An envelope with a bare CR is no command at all.
    let t = converse(
        &node,
        &[b"EHLO c.test\r\nMAIL FROM:<erin@outside.test>\rRCPT TO:<bob@a.test>\r\nQUIT\r\n"],
        false,
    )
    .await;
    assert!(codes(&t)[2].starts_with('5'), "{t}");
    assert_eq!(stored(&node), 0);
}

#[tokio::test]
async fn pipelining_abuse_is_answered_and_closed() {
    let (node, _bob, _certs) = door().await;
    // Talking before the greeting.
    let t = converse(&node, &[b"EHLO early.test\r\nQUIT\r\n"], true).await;
    assert_eq!(codes(&t), ["554"], "{t}");
    // DATA without RCPT.
    let t = converse(
        &node,
        &[b"EHLO c.test\r\nMAIL FROM:<erin@outside.test>\r\nDATA\r\nQUIT\r\n"],
        false,
    )
    .await;
    assert_eq!(codes(&t), ["220", "250", "250", "503", "221"]);
    // The mail's data pipelined behind DATA, before the 354.
    let t = converse(
        &node,
        &[
            b"EHLO c.test\r\nMAIL FROM:<erin@outside.test>\r\nRCPT TO:<bob@a.test>\r\nDATA\r\n\
            From: erin@outside.test\r\n\r\nsmuggled\r\n.\r\nQUIT\r\n",
        ],
        false,
    )
    .await;
    assert_eq!(codes(&t), ["220", "250", "250", "250", "554"], "{t}");
    // A burst of bad commands ends the session.
    let t = converse(&node, &["NOSUCH\r\n".repeat(50).as_bytes()], false).await;
    let c = codes(&t);
    assert_eq!(c.last(), Some(&"421"), "{t}");
    assert!(c.len() < 20);
    assert_eq!(stored(&node), 0);
}

#[tokio::test]
async fn a_slow_client_is_timed_out() {
    let (node, _bob, _certs) = door().await;
    // Silent after the greeting.
    let t = converse(&node, &[], false).await;
    assert_eq!(codes(&t), ["220", "421"], "{t}");
    // Stops in the middle of its mail.
    let t = lockstep(
        &node,
        b"From: erin@outside.test\r\nSubject: half\r\n\r\nhalf a",
    )
    .await;
    assert_eq!(codes(&t), ["220", "250", "250", "250", "354", "421"], "{t}");
    assert_eq!(stored(&node), 0);
}

#[tokio::test]
async fn starttls_stripping_and_injection_attempts_fail() {
    let (node, bob, _certs) = door().await;
    // Commands pipelined behind STARTTLS (would be read inside the TLS session): refused.
    let t = converse(
        &node,
        &[b"EHLO c.test\r\nSTARTTLS\r\nMAIL FROM:<erin@outside.test>\r\nRCPT TO:<bob@a.test>\r\n"],
        false,
    )
    .await;
    assert_eq!(codes(&t), ["220", "250", "554"], "{t}");
    // What was said before STARTTLS is forgotten: no greeting, no MAIL FROM carried over;
    // STARTTLS is no longer offered and cannot be started twice.
    let out = python(
        &node,
        r#"
import smtplib, ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP(HOST, PORT) as s:
    s.ehlo('c.test')
    offered = s.has_extn('starttls')
    s.mail('erin@outside.test')
    s.starttls(context=ctx)
    a = s.docmd('RCPT TO:<bob@a.test>')[0]
    b = s.docmd('MAIL FROM:<erin@outside.test>')[0]
    s.ehlo('c.test')
    again = s.has_extn('starttls')
    c = s.docmd('STARTTLS')[0]
    print(offered, a, b, again, c)
"#,
    )
    .await;
    assert_eq!(out.trim(), "True 503 503 False 503");
    // A plain session is recorded as such: the reader sees `tls: false`.
    python(&node, &plain_mail_script(&["bob@a.test"], "")).await;
    let inbox = bob.mailbox(Folder::Inbox).await.unwrap();
    assert_eq!(inbox.len(), 1);
    assert!(!inbox[0].arrival.as_ref().unwrap().tls);
}

#[tokio::test]
async fn spf_dkim_and_dmarc_are_checked_through_the_resolver() {
    use base64::Engine;
    use mail_auth::common::crypto::Ed25519Key;
    use mail_auth::common::headers::HeaderWriter;
    use mail_auth::dkim::DkimSigner;
    let seed = [7u8; 32];
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    let p = base64::engine::general_purpose::STANDARD.encode(public);
    let dkim = format!("sel._domainkey.outside.test. TXT \"v=DKIM1; k=ed25519; p={p}\"");
    let dns = sealpost_tests::dns::Unbound::start(&[
        "outside.test. TXT \"v=spf1 ip4:127.0.0.1 -all\"",
        &dkim,
        "_dmarc.outside.test. TXT \"v=DMARC1; p=reject\"",
    ])
    .await
    .unwrap();
    let node = TestNode::spawn_with("a.test", |c| {
        c.federation.enabled = false;
        c.smtp_in.enabled = true;
        c.smtp_in.listen = "127.0.0.1:0".parse().unwrap();
        c.smtp_in.resolver = format!("127.0.0.1:{}", dns.port);
    })
    .await
    .unwrap();
    let bob = node.person("bob").await;
    let mail = format!(
        "From: erin@outside.test\r\nTo: bob@a.test\r\nSubject: {SUBJECT}\r\n\r\n{BODY}\r\n"
    );
    let key = Ed25519Key::from_seed_and_public_key(&seed, &public).unwrap();
    let signature = DkimSigner::from_key(key)
        .domain("outside.test")
        .selector("sel")
        .headers(["From", "To", "Subject"])
        .sign(mail.as_bytes())
        .unwrap();
    let signed = format!("{}{mail}", signature.to_header());
    // The same mail, its body changed after signing.
    let tampered = signed.replace(BODY, "a changed body");
    for m in [&signed, &tampered] {
        let out = python(
            &node,
            &format!(
                "import smtplib\nwith smtplib.SMTP(HOST, PORT) as s:\n    s.ehlo('mx.outside.test')\n    \
                 print(s.sendmail('erin@outside.test', ['bob@a.test'], {m:?}.encode()))\n"
            ),
        )
        .await;
        assert_eq!(out.trim(), "{}");
    }
    let inbox = bob.mailbox(Folder::Inbox).await.unwrap();
    assert_eq!(inbox.len(), 2);
    let work = tempfile::tempdir().unwrap();
    let mut signed_result = None;
    let mut tampered_result = None;
    for item in &inbox {
        let m = bob.read_mail(&item.message_id, work.path()).await.unwrap();
        let a = m.arrival;
        let r = (a.spf, a.dkim, a.dmarc);
        if m.body.trim() == BODY {
            signed_result = Some(r);
        } else {
            tampered_result = Some(r);
        }
    }
    let (spf, dkim, dmarc) = signed_result.expect("the signed mail");
    assert_eq!(
        (spf.as_str(), dkim.as_str(), dmarc.as_str()),
        ("pass", "pass", "pass"),
        "the signed mail"
    );
    // The tampered mail: SPF still passes; its DKIM signature does not (mail-auth calls a
    // body hash mismatch `neutral`).
    let (spf, dkim, _) = tampered_result.expect("the tampered mail");
    assert_eq!(spf, "pass");
    assert!(dkim != "pass", "{dkim}");
}
