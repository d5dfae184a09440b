//! Bounces that come later (docs/mail.md "SMTP in", "Bounces"): the node sends outside mail
//! with a bounce address naming its queue row as the envelope sender; a relay (a real Postfix)
//! that took the mail with `250` and cannot deliver it sends its delivery status notification
//! there, to the node's SMTP door, and the recipient's delivery becomes `failed` with the
//! relay's words, the sender told, and nothing of the bounce kept. Forged, misdirected and
//! non-DSN bounces change nothing.

use std::net::SocketAddr;
use std::time::Duration;

use sealpost::notify::bounce::bounce_address;
use sealpost::storage::NotifyStore;
use sealpost::storage::notify::NotificationState;
use sealpost_proto::{DeliveryMode, Folder};
use sealpost_tests::gpg::Gpg;
use sealpost_tests::mail::{Wkd, assert_told_not_delivered, send_figures};
use sealpost_tests::smtp::{Postfix, free_port, queue_notification, relay_at};
use sealpost_tests::{TestNode, files_containing, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The SMTP door on loopback, port 0.
fn smtp_in(c: &mut sealpost::config::Config) {
    c.smtp_in.enabled = true;
    c.smtp_in.listen = "127.0.0.1:0".parse().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounce_from_the_relay_after_250_fails_the_recipient_and_nothing_of_it_is_kept() {
    // dora@pgp.test publishes an OpenPGP key. The relay takes mail for pgp.test with 250 and
    // hands it on to pgp.test's server, which refuses dora (550 5.1.1; here the node's own
    // SMTP door, where she has no mailbox); the relay's bounce goes to the envelope sender,
    // alpha.test: the node's SMTP door again.
    let gpg = Gpg::new();
    let (_, dora_fpr) = gpg.new_key("dora@pgp.test");
    let wkd = Wkd::start("pgp.test", &gpg, &[("dora", &dora_fpr)]).await;
    let relay_port = free_port();
    let wkd = wkd.configure();
    let node = TestNode::spawn_with("alpha.test", move |c| {
        relay_at(relay_port)(c);
        wkd(c);
        smtp_in(c);
    })
    .await
    .unwrap();
    let door = node.smtp.unwrap().port();
    let postfix = Postfix::start_routing(
        &[],
        None,
        Some(relay_port),
        &[("alpha.test", door), ("pgp.test", door)],
    )
    .await
    .unwrap();
    let alice = node.person("alice").await;

    let work = tempfile::tempdir().unwrap();
    let to = vec!["dora@pgp.test".to_owned()];
    let resp = send_figures(&alice, &to, work.path()).await;
    assert_eq!(resp.recipients[0].mode, Some(DeliveryMode::Openpgp));

    // Postfix took it (250), then bounced it: alice's Sent shows dora failed, in its words.
    let item = wait_for(Duration::from_secs(40), async || {
        let sent = alice.mailbox(Folder::Sent).await.unwrap();
        let item = sent.into_iter().next()?;
        (item.delivery[0].state == "failed").then_some(item)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", postfix.log()));
    let d = &item.delivery[0];
    let reason = d.reason.as_deref().unwrap_or("");
    assert!(
        reason.starts_with("The mail server of pgp.test refused it after accepting: ")
            && reason.contains("550 5.1.1 <dora@pgp.test>: no such mailbox here"),
        "{d:?}"
    );
    assert!(!reason.chars().any(char::is_control), "{reason:?}");
    assert_told_not_delivered(&alice, "dora@pgp.test").await;
    // The mail went out from a bounce address of alpha.test, and Postfix's bounce went back
    // there, to the node's door, which took it.
    let log = postfix.log();
    assert!(log.contains("from=<bounce+"), "{log}");
    assert!(
        log.lines().any(|l| l.contains("to=<bounce+")
            && l.contains(&format!("relay=127.0.0.1[127.0.0.1]:{door}"))
            && l.contains("status=sent")),
        "{log}"
    );
    let rows = node.store.notifications_of(&resp.message_id).await.unwrap();
    assert_eq!(rows[0].state, NotificationState::Failed);
    assert_eq!(
        node.count("SELECT COUNT(*) FROM txlog WHERE kind = 'notify.bounced'"),
        1
    );
    assert_eq!(
        node.count("SELECT COUNT(*) FROM txlog WHERE kind = 'external.failed'"),
        1
    );

    // The bounce itself is nowhere: not in alice's inbox, not in the data directory.
    assert!(alice.mailbox(Folder::Inbox).await.unwrap().is_empty());
    assert_eq!(
        node.count("SELECT COUNT(*) FROM messages WHERE arrival IS NOT NULL"),
        0
    );
    let data = node.dir.path().join("data");
    for needle in [
        "Undelivered Mail Returned to Sender",
        "MAILER-DAEMON",
        "message/delivery-status",
        "Reporting-MTA",
    ] {
        assert_eq!(
            files_containing(&data, needle.as_bytes()),
            Vec::<std::path::PathBuf>::new(),
            "{needle}"
        );
    }
}

/// One SMTP conversation in lockstep: each command after the answer to the one before; the
/// answers, in order.
async fn talk(at: SocketAddr, commands: &[&str]) -> Vec<String> {
    let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
    let mut answers = Vec::new();
    let mut pending = Vec::new();
    answers.push(reply(&mut s, &mut pending).await);
    for c in commands {
        s.write_all(c.as_bytes()).await.unwrap();
        answers.push(reply(&mut s, &mut pending).await);
    }
    answers
}

/// The next whole reply (its last line `NNN text`).
async fn reply(s: &mut tokio::net::TcpStream, pending: &mut Vec<u8>) -> String {
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(pending).into_owned();
        if let Some(end) = text.match_indices("\r\n").map(|(i, _)| i).find(|&i| {
            let start = text[..i].rfind("\r\n").map_or(0, |j| j + 2);
            text.get(start + 3..start + 4) == Some(" ")
        }) {
            let line = text[..end].to_owned();
            pending.drain(..end + 2);
            return line;
        }
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed after {text:?}");
        pending.extend_from_slice(&buf[..n]);
    }
}

/// A bounce (`MAIL FROM:<>`) to `to` with `data` (ending in `.`): the answer to its end.
async fn bounce(at: SocketAddr, to: &str, data: &str) -> String {
    let rcpt = format!("RCPT TO:<{to}>\r\n");
    let steps = [
        "EHLO relay.test\r\n",
        "MAIL FROM:<>\r\n",
        &rcpt,
        "DATA\r\n",
        data,
    ];
    talk(at, &steps).await.pop().unwrap()
}

fn code(answer: &str) -> &str {
    let last = answer.rsplit("\r\n").next().unwrap_or("");
    &last[..3.min(last.len())]
}

/// A delivery status notification to `to` saying `recipient` `action`, as Postfix writes
/// one, quoting a mail.
fn dsn(to: &str, recipient: &str, action: &str) -> String {
    format!(
        "From: MAILER-DAEMON@relay.test (Mail Delivery System)\r\n\
To: {to}\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B1\"\r\n\
\r\n\
--B1\r\n\
Content-Type: text/plain\r\n\
\r\n\
Your message could not be delivered.\r\n\
--B1\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; relay.test\r\n\
\r\n\
Final-Recipient: rfc822; {recipient}\r\n\
Action: {action}\r\n\
Status: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected\r\n\
\r\n\
--B1\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: alice@alpha.test\r\n\
Subject: quoted secret 5e1f\r\n\
\r\n\
quoted\r\n\
--B1--\r\n\
.\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_misdirected_and_non_dsn_bounces_change_nothing() {
    let postfix = Postfix::start(&["carol@outside.test", "erin@outside.test"])
        .await
        .unwrap();
    let port = postfix.port;
    let node = TestNode::spawn_with("alpha.test", move |c| {
        relay_at(port)(c);
        smtp_in(c);
    })
    .await
    .unwrap();
    let _bob = node.person("bob").await;
    let at = node.smtp.unwrap();
    let mut rows = Vec::new();
    for recipient in ["carol@outside.test", "erin@outside.test"] {
        rows.push(queue_notification(&node, None, recipient).await);
    }
    let state = async |id| node.store.notification(id).await.unwrap().unwrap().state;
    wait_for(Duration::from_secs(20), async || {
        for id in &rows {
            if state(*id).await != NotificationState::Sent {
                return None;
            }
        }
        Some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", postfix.log()));
    let (carol_row, erin_row) = (rows[0], rows[1]);
    let key = &node.context.bounce_key;
    let carol = bounce_address(key, "alpha.test", carol_row);
    let erin = bounce_address(key, "alpha.test", erin_row);
    let tag = |a: &str| {
        a.split_once('-')
            .unwrap()
            .1
            .split_once('@')
            .unwrap()
            .0
            .to_owned()
    };
    let rcpt = |a: &str| format!("RCPT TO:<{a}>\r\n");
    let unknown_user = talk(
        at,
        &[
            "EHLO relay.test\r\n",
            "MAIL FROM:<>\r\n",
            &rcpt("nobody@alpha.test"),
        ],
    )
    .await
    .pop()
    .unwrap();
    assert!(unknown_user.starts_with("550 5.1.1"), "{unknown_user}");

    // A forged tag, another row's tag, a row that does not exist, a bounce address with a
    // sender: the same 550 as an unknown user.
    for (from, to) in [
        (
            "<>",
            format!("bounce+{carol_row}-{}@alpha.test", "0".repeat(24)),
        ),
        (
            "<>",
            format!("bounce+{carol_row}-{}@alpha.test", tag(&erin)),
        ),
        ("<>", bounce_address(key, "alpha.test", 9999)),
        ("<mallory@evil.test>", carol.clone()),
    ] {
        let answers = talk(
            at,
            &[
                "EHLO relay.test\r\n",
                &format!("MAIL FROM:{from}\r\n"),
                &rcpt(&to),
            ],
        )
        .await;
        assert_eq!(
            answers.last().unwrap().replace(&to, "ADDR"),
            unknown_user.replace("nobody@alpha.test", "ADDR"),
            "{from} {to}"
        );
    }

    // A bounce goes alone: not with a user in the same mail.
    let answers = talk(
        at,
        &[
            "EHLO relay.test\r\n",
            "MAIL FROM:<>\r\n",
            &rcpt(&carol),
            &rcpt("bob@alpha.test"),
        ],
    )
    .await;
    assert_eq!(code(&answers[3]), "250");
    assert_eq!(code(&answers[4]), "452");

    // Taken (250) but changing nothing: a report on erin sent to carol's row, one that is
    // only delayed, a mail that is no DSN.
    let plain = "From: someone@outside.test\r\nSubject: out of office\r\n\r\nAway.\r\n.\r\n";
    for data in [
        dsn(&carol, "erin@outside.test", "failed"),
        dsn(&carol, "carol@outside.test", "delayed"),
        plain.to_owned(),
    ] {
        let answer = bounce(at, &carol, &data).await;
        assert_eq!(code(&answer), "250", "{answer}");
        assert_eq!(state(carol_row).await, NotificationState::Sent);
        assert_eq!(state(erin_row).await, NotificationState::Sent);
    }

    // The real one fails carol's row; a second changes nothing more.
    for _ in 0..2 {
        let answer = bounce(at, &carol, &dsn(&carol, "carol@outside.test", "failed")).await;
        assert_eq!(code(&answer), "250", "{answer}");
    }
    let r = node.store.notification(carol_row).await.unwrap().unwrap();
    assert_eq!(r.state, NotificationState::Failed);
    assert_eq!(
        r.last_error.as_deref(),
        Some(
            "The mail server of outside.test refused it after accepting: 550 5.1.1 \
             <carol@outside.test>: Recipient address rejected"
        )
    );
    assert_eq!(state(erin_row).await, NotificationState::Sent);
    assert_eq!(
        node.count("SELECT COUNT(*) FROM txlog WHERE kind = 'notify.bounced'"),
        1
    );
    // A bounce for a failed row is still taken by RCPT while its window lasts, and changes
    // nothing; nothing of any bounce was stored.
    assert_eq!(
        node.count("SELECT COUNT(*) FROM messages WHERE arrival IS NOT NULL"),
        0
    );
    let data = node.dir.path().join("data");
    assert!(files_containing(&data, b"quoted secret 5e1f").is_empty());
}
