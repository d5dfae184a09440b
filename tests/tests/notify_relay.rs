//! Notification mail through a real SMTP relay (Debian's python3-aiosmtpd, `smtp/sink.py`,
//! on a free loopback port): delivered with its headers and both parts; the relay down for
//! 60 s, then back (each mail delivered once); a 4xx then success; a 5xx failing with the
//! relay's words; STARTTLS required and used, and never skipped; a refused login retried
//! until the password is fixed; one connection per batch; the queue's bound and a node
//! without a relay refusing with typed errors.

use std::time::{Duration, Instant};

use sealpost::config::{Config, RelaySecurity};
use sealpost::notify::{Notification, NotifyError};
use sealpost::storage::notify::{NotificationRecord, NotificationState};
use sealpost::storage::{FederationStore, NotifyStore};
use sealpost_tests::smtp::{SinkOptions, SmtpSink, free_port, self_signed_cert};
use sealpost_tests::{TestNode, wait_for};

const LINK: &str = "https://alpha.test/pickup/p-7f3a9c";

/// A notification from alice@alpha.test to `to`, about message `m`.
fn note<'a>(to: &'a str, m: &'a str) -> Notification<'a> {
    Notification {
        message_id: Some(m),
        sender: "alice@alpha.test",
        sender_name: "Alice Example",
        organisation: "Alpha Bank",
        recipient: to,
        link: LINK,
    }
}

/// A relay on loopback without TLS, retried every 1-2 s.
fn relay(port: u16) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| {
        c.federation.enabled = false;
        c.relay.host = "127.0.0.1".into();
        c.relay.port = port;
        c.relay.security = RelaySecurity::None;
        c.relay.retry_base_secs = 1;
        c.relay.retry_max_secs = 2;
        c.relay.connect_timeout_secs = 5;
        c.relay.command_timeout_secs = 5;
    }
}

/// A sink behaving as `options` says, and a node whose relay it is.
async fn node_with_sink(options: SinkOptions) -> (SmtpSink, TestNode) {
    let sink = SmtpSink::start(&options).await.unwrap();
    let node = TestNode::spawn_with("alpha.test", relay(sink.port))
        .await
        .unwrap();
    (sink, node)
}

async fn record(node: &TestNode, id: i64) -> NotificationRecord {
    node.store.notification(id).await.unwrap().expect("queued")
}

/// Queues a notification from alice@alpha.test to `to` about message `m`; its ID.
async fn enqueue(node: &TestNode, to: &str, m: &str) -> i64 {
    node.notifier
        .enqueue(&note(to, m), sealpost::now())
        .await
        .unwrap()
}

/// Waits until notification `id` has been tried at least `n` times.
async fn attempted(node: &TestNode, id: i64, n: u32) -> NotificationRecord {
    wait_for(Duration::from_secs(20), async || {
        let r = record(node, id).await;
        (r.attempts >= n).then_some(r)
    })
    .await
    .unwrap_or_else(|e| panic!("notification {id}: {e}"))
}

/// Waits until notification `id` is no longer queued.
async fn settled(node: &TestNode, id: i64, within: Duration) -> NotificationRecord {
    wait_for(within, async || {
        let r = record(node, id).await;
        (r.state != NotificationState::Queued).then_some(r)
    })
    .await
    .unwrap_or_else(|e| panic!("notification {id}: {e}"))
}

/// The node's log entries of `kind`: (subject, detail).
fn log_of(node: &TestNode, kind: &str) -> Vec<(String, serde_json::Value)> {
    let db = node.db();
    let mut stmt = db
        .prepare("SELECT subject, detail FROM txlog WHERE kind = ?1 ORDER BY seq")
        .unwrap();
    stmt.query_map([kind], |r| {
        Ok((
            r.get(0)?,
            serde_json::from_str(&r.get::<_, String>(1)?).unwrap(),
        ))
    })
    .unwrap()
    .collect::<rusqlite::Result<Vec<_>>>()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_once_with_its_headers_both_parts_and_nothing_of_the_message() {
    let (sink, node) = node_with_sink(SinkOptions::default()).await;
    let message_id = sealpost::new_message_id();
    let id = enqueue(&node, "Carol@Outside.test", &message_id).await;
    let r = settled(&node, id, Duration::from_secs(20)).await;
    assert_eq!(r.state, NotificationState::Sent, "{r:?}");
    assert_eq!(r.attempts, 1);
    assert_eq!(r.recipient, "carol@outside.test");
    assert_eq!(
        r.relay_answer.as_deref(),
        Some("250 2.0.0 Ok: queued as SINK1")
    );

    let got = sink.received();
    assert_eq!(got.len(), 1);
    let mail = &got[0];
    // The envelope sender is the row's bounce address (docs/mail.md, "SMTP out").
    let mail_from = mail.meta["mail_from"].as_str().unwrap();
    assert!(
        mail_from.starts_with(&format!("bounce+{id}-")) && mail_from.ends_with("@alpha.test"),
        "{mail_from}"
    );
    assert_eq!(mail.rcpt_tos(), ["carol@outside.test"]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Secure message from Alice Example at Alpha Bank")
    );
    assert_eq!(
        mail.header("From").as_deref(),
        Some("Alpha Bank <no-reply@alpha.test>")
    );
    assert_eq!(mail.header("To").as_deref(), Some("carol@outside.test"));
    assert_eq!(
        mail.header("Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert_eq!(mail.header("Message-ID"), Some(r.mail_id.clone()));
    assert!(r.mail_id.ends_with("@alpha.test>"), "{}", r.mail_id);
    assert!(mail.header("Date").is_some());
    assert!(
        mail.header("Content-Type")
            .unwrap()
            .starts_with("multipart/alternative")
    );
    for part in [mail.text(), mail.html()] {
        assert!(part.contains(LINK), "{part}");
        assert!(part.contains("Alice Example"), "{part}");
        assert!(part.contains("will give it to you"), "{part}");
        assert!(part.contains("another channel"), "{part}");
    }
    assert!(mail.html().contains(&format!("href=\"{LINK}\"")));
    // Nothing about the message but who sent it: not its ID, not the sender's address.
    for absent in [message_id.as_str(), "alice@alpha.test"] {
        assert!(
            !mail
                .raw
                .windows(absent.len())
                .any(|w| w == absent.as_bytes()),
            "{absent} is in the mail"
        );
    }
    // Sent: the rendered mail is no longer stored, the log has both steps with the address.
    assert_eq!(
        node.count("SELECT COUNT(*) FROM notifications WHERE mail IS NOT NULL"),
        0
    );
    let queued = log_of(&node, "notify.queued");
    let sent = log_of(&node, "notify.sent");
    assert_eq!((queued.len(), sent.len()), (1, 1));
    assert_eq!(queued[0].0, message_id);
    assert_eq!(sent[0].1["to"], "carol@outside.test");
    assert_eq!(sent[0].1["relay_answer"], "250 2.0.0 Ok: queued as SINK1");
    // Still exactly one copy a while later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sink.received().len(), 1);
    assert!(node.notifier.is_configured());
}

/// The case: the relay is down for 60 s; every notification is delivered once it is
/// back, none twice. The relay's port is known but nothing listens on it until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_down_for_60_s_then_every_notification_is_delivered_exactly_once() {
    const DOWN: Duration = Duration::from_secs(60);
    let port = free_port();
    let node = TestNode::spawn_with("alpha.test", relay(port))
        .await
        .unwrap();
    let down_since = Instant::now();
    let recipients = [
        "carol@outside.test",
        "dave@outside.test",
        "erin@outside.test",
    ];
    let mut ids = Vec::new();
    for to in recipients {
        ids.push(enqueue(&node, to, "m-down").await);
    }
    // Each is tried and found the relay unreachable.
    wait_for(Duration::from_secs(20), async || {
        for &id in &ids {
            let r = record(&node, id).await;
            if r.attempts == 0 {
                return None;
            }
            assert_eq!(r.state, NotificationState::Queued);
            let e = r.last_error.unwrap();
            assert!(
                e.starts_with("The mail relay could not be reached: "),
                "{e}"
            );
        }
        Some(())
    })
    .await
    .unwrap();
    tokio::time::sleep(DOWN.saturating_sub(down_since.elapsed())).await;
    let attempts_while_down: Vec<u32> = {
        let mut a = Vec::new();
        for &id in &ids {
            a.push(record(&node, id).await.attempts);
        }
        a
    };
    let sink = SmtpSink::start(&SinkOptions {
        port: Some(port),
        ..Default::default()
    })
    .await
    .unwrap();
    let back = Instant::now();
    for &id in &ids {
        let r = settled(&node, id, Duration::from_secs(30)).await;
        assert_eq!(r.state, NotificationState::Sent, "{r:?}");
    }
    let delivered_after = back.elapsed();
    // Longer than the longest wait between retries: nothing more arrives.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let got = sink.received();
    let mut to: Vec<String> = got.iter().flat_map(|m| m.rcpt_tos()).collect();
    to.sort();
    assert_eq!(to, recipients, "each delivered exactly once");
    let mut mail_ids: Vec<String> = got
        .iter()
        .map(|m| m.header("Message-ID").unwrap())
        .collect();
    mail_ids.sort();
    mail_ids.dedup();
    assert_eq!(mail_ids.len(), 3);
    assert_eq!(log_of(&node, "notify.sent").len(), 3);
    let retries = log_of(&node, "notify.retry").len();
    assert!(retries >= 3 * 10, "{retries} retries logged over 60 s");
    println!(
        "relay down {:?}: attempts per notification while down {attempts_while_down:?}, \
         {retries} retries logged; all delivered {delivered_after:?} after the relay came \
         back, over {} connection(s)",
        back - down_since,
        sink.events().iter().filter(|e| *e == "connect").count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_is_retried_and_then_delivered() {
    let (sink, node) = node_with_sink(SinkOptions {
        tempfail_data: 1,
        ..Default::default()
    })
    .await;
    let id = enqueue(&node, "carol@outside.test", "m-4xx").await;
    let r = settled(&node, id, Duration::from_secs(20)).await;
    assert_eq!((r.state, r.attempts), (NotificationState::Sent, 2), "{r:?}");
    assert_eq!(sink.received().len(), 1);
    assert!(sink.events().contains(&"data refused 1".to_owned()));
    let retry = &log_of(&node, "notify.retry")[0].1;
    assert_eq!(
        retry["reason"],
        "The mail relay did not take the mail for now: 451 4.3.0 Try again later: the relay is busy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_fails_at_once_and_the_sender_is_told_the_relays_words() {
    let answer = "550 5.1.1 <carol@outside.test>: Recipient address rejected: User unknown";
    let (sink, node) = node_with_sink(SinkOptions {
        reject_rcpt: Some(answer.into()),
        ..Default::default()
    })
    .await;
    node.invite("alice@alpha.test").await.unwrap();
    let id = enqueue(&node, "carol@outside.test", "m-5xx").await;
    let r = settled(&node, id, Duration::from_secs(20)).await;
    let reason = format!("The mail relay refused the recipient: {answer}");
    assert_eq!(
        (r.state, r.attempts, r.last_error.as_deref()),
        (NotificationState::Failed, 1, Some(reason.as_str()))
    );
    assert!(sink.received().is_empty());
    assert_eq!(log_of(&node, "notify.failed")[0].1["reason"], reason);
    let alice: i64 = node
        .db()
        .query_row(
            "SELECT id FROM accounts WHERE address = 'alice@alpha.test'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let notices = node.store.notices(alice, 10).await.unwrap();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].message_id.as_deref(), Some("m-5xx"));
    assert!(notices[0].text.contains(&reason), "{}", notices[0].text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_is_used_when_required_and_never_skipped() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(certs.path()).unwrap();
    let tls_sink = SmtpSink::start(&SinkOptions {
        tls: Some((cert.clone(), key)),
        ..Default::default()
    })
    .await
    .unwrap();
    let plain_sink = SmtpSink::start(&SinkOptions::default()).await.unwrap();
    let starttls = |port: u16, ca: std::path::PathBuf| {
        move |c: &mut Config| {
            relay(port)(c);
            c.relay.host = "localhost".into();
            c.relay.security = RelaySecurity::Starttls;
            c.relay.ca_file = ca.display().to_string();
        }
    };
    // The relay requires STARTTLS: the node upgrades, trusting the relay's certificate
    // through relay.ca_file.
    let node = TestNode::spawn_with("alpha.test", starttls(tls_sink.port, cert.clone()))
        .await
        .unwrap();
    let id = enqueue(&node, "carol@outside.test", "m-tls").await;
    let r = settled(&node, id, Duration::from_secs(20)).await;
    assert_eq!(r.state, NotificationState::Sent, "{r:?}");
    assert_eq!(tls_sink.received()[0].meta["tls"], true);

    // A relay that does not offer STARTTLS gets nothing in the clear: retried, with why.
    let node = TestNode::spawn_with("alpha.test", starttls(plain_sink.port, cert))
        .await
        .unwrap();
    let id = enqueue(&node, "carol@outside.test", "m-notls").await;
    let r = attempted(&node, id, 2).await;
    assert_eq!(r.state, NotificationState::Queued);
    let e = r.last_error.unwrap();
    assert!(
        e.starts_with("No encrypted connection to the mail relay could be made: the relay does not offer STARTTLS"),
        "{e}"
    );
    assert!(plain_sink.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_is_retried_in_plain_words_until_the_password_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path()).unwrap();
    let sink = SmtpSink::start(&SinkOptions {
        tls: Some((cert.clone(), key)),
        auth: Some(("sealpost".into(), "right horse".into())),
        ..Default::default()
    })
    .await
    .unwrap();
    let password = dir.path().join("relay-password");
    std::fs::write(&password, "wrong horse\n").unwrap();
    let (port, ca, pw) = (sink.port, cert.clone(), password.clone());
    let mut node = TestNode::spawn_with("alpha.test", move |c| {
        relay(port)(c);
        c.relay.host = "localhost".into();
        c.relay.security = RelaySecurity::Starttls;
        c.relay.ca_file = ca.display().to_string();
        c.relay.username = "sealpost".into();
        c.relay.password_file = pw.display().to_string();
    })
    .await
    .unwrap();
    let id = enqueue(&node, "carol@outside.test", "m-auth").await;
    let r = attempted(&node, id, 1).await;
    assert_eq!(r.state, NotificationState::Queued);
    assert_eq!(
        r.last_error.as_deref(),
        Some(
            "The mail relay refused the node's login: 535 5.7.8 Authentication credentials invalid"
        )
    );
    assert!(sink.received().is_empty());
    // The password is never in the log.
    assert_eq!(
        node.count("SELECT COUNT(*) FROM txlog WHERE detail LIKE '%horse%'"),
        0
    );

    // The admin fixes the password file and restarts the node: it goes out.
    node.stop().await.unwrap();
    std::fs::write(&password, "right horse\n").unwrap();
    node.start().await.unwrap();
    let r = settled(&node, id, Duration::from_secs(20)).await;
    assert_eq!(r.state, NotificationState::Sent, "{r:?}");
    let got = sink.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (&got[0].meta["tls"], &got[0].meta["authenticated"]),
        (&true.into(), &true.into())
    );
    assert!(
        sink.events()
            .iter()
            .any(|e| e.starts_with("auth ") && e.ends_with(" ok"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_due_together_go_over_one_connection() {
    let (sink, mut node) = node_with_sink(SinkOptions::default()).await;
    // Queued while the node is stopped (the queue is in its database): due together at start.
    node.stop().await.unwrap();
    let mut ids = Vec::new();
    for n in 0..5 {
        let to = format!("r{n}@outside.test");
        ids.push(enqueue(&node, &to, "m-batch").await);
    }
    node.start().await.unwrap();
    for id in ids {
        assert_eq!(
            settled(&node, id, Duration::from_secs(20)).await.state,
            NotificationState::Sent
        );
    }
    assert_eq!(sink.received().len(), 5);
    let connects = sink.events().iter().filter(|e| *e == "connect").count();
    assert_eq!(connects, 1, "{:?}", sink.events());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_is_bounded_and_without_a_relay_nothing_is_queued() {
    // The relay is down: notifications stay queued, up to relay.max_queued.
    let port = free_port();
    let node = TestNode::spawn_with("alpha.test", move |c| {
        relay(port)(c);
        c.relay.max_queued = 2;
    })
    .await
    .unwrap();
    let now = sealpost::now();
    for to in ["a@outside.test", "b@outside.test"] {
        node.notifier
            .enqueue(&note(to, "m-full"), now)
            .await
            .unwrap();
    }
    let full = node
        .notifier
        .enqueue(&note("c@outside.test", "m-full"), now)
        .await
        .unwrap_err();
    assert!(matches!(full, NotifyError::QueueFull(2)), "{full}");
    assert_eq!(full.code(), "notification_queue_full");
    for (bad, code) in [("not an address", "bad_recipient")] {
        let e = node
            .notifier
            .enqueue(&note(bad, "m"), now)
            .await
            .unwrap_err();
        assert_eq!(e.code(), code);
    }
    let mut bad_link = note("c@outside.test", "m");
    bad_link.link = "javascript:alert(1)";
    assert_eq!(
        node.notifier
            .enqueue(&bad_link, now)
            .await
            .unwrap_err()
            .code(),
        "bad_link"
    );
    assert_eq!(node.count("SELECT COUNT(*) FROM notifications"), 2);

    // No relay configured (the default): refused with a typed error, nothing queued.
    let bare = TestNode::spawn_with("beta.test", |c| c.federation.enabled = false)
        .await
        .unwrap();
    assert!(!bare.notifier.is_configured());
    let e = bare
        .notifier
        .enqueue(&note("c@outside.test", "m"), now)
        .await
        .unwrap_err();
    assert!(matches!(e, NotifyError::NoRelay), "{e}");
    assert_eq!(e.code(), "relay_not_configured");
    assert_eq!(bare.count("SELECT COUNT(*) FROM notifications"), 0);
}
