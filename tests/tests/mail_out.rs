//! Direct delivery (`[relay] route = "direct"`) to real mail servers found through a real
//! DNS: a throw-away Postfix (tests/src/smtp.rs) is the MX of the test domains that a local
//! unbound (tests/src/dns.rs) answers for; certificates come from a test CA (`openssl`), an
//! MTA-STS policy from a Python HTTPS server. An MX record names no port, so the node is told
//! Postfix's with `direct_port`, and the MTA-STS server's with `mta_sts_port` (test/lab
//! settings).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sealpost::config::{DomainTls, TlsPolicy};
use sealpost::storage::NotifyStore;
use sealpost::storage::notify::{NotificationRecord, NotificationState};
use sealpost_tests::dns::{Unbound, direct_delivery};
use sealpost_tests::smtp::{
    MtaStsServer, Postfix, TestCa, parse_mail, parsed_header, queue_notification,
};
use sealpost_tests::{TestNode, wait_for};

/// The test zone: tls.test's MX is Postfix on 127.0.0.1; plain.test has no MX (its address
/// record is its mail server, RFC 5321 §5.1); sts.test and good.test publish MTA-STS.
const ZONE: &[&str] = &[
    "tls.test. 300 IN MX 10 mx.tls.test.",
    "mx.tls.test. 300 IN A 127.0.0.1",
    "plain.test. 300 IN A 127.0.0.1",
    "sts.test. 300 IN MX 10 mx.tls.test.",
    "_mta-sts.sts.test. 300 IN TXT \"v=STSv1; id=20261207\"",
    "mta-sts.sts.test. 300 IN A 127.0.0.1",
    "good.test. 300 IN MX 10 mx.tls.test.",
    "_mta-sts.good.test. 300 IN TXT \"v=STSv1; id=1\"",
    "mta-sts.good.test. 300 IN A 127.0.0.1",
    // Nothing listens on 127.0.0.2: refused at once.
    "down.test. 300 IN MX 10 mx.down.test.",
    "mx.down.test. 300 IN A 127.0.0.2",
    // 127.0.0.3 takes the connection and never says a word (see the test).
    "slow.test. 300 IN MX 10 mx.slow.test.",
    "mx.slow.test. 300 IN A 127.0.0.3",
];

async fn notify(node: &TestNode, recipient: &str) -> i64 {
    queue_notification(node, Some("m-direct"), recipient).await
}

/// The notification once it is no longer queued.
async fn settled(node: &TestNode, id: i64) -> NotificationRecord {
    wait_for(Duration::from_secs(30), async || {
        let r = node.store.notification(id).await.unwrap().unwrap();
        (r.state != NotificationState::Queued).then_some(r)
    })
    .await
    .unwrap()
}

async fn delivered(postfix: &Postfix, address: &str) -> Vec<PathBuf> {
    wait_for(Duration::from_secs(20), async || {
        let f = postfix.delivered(address);
        (!f.is_empty()).then_some(f)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", postfix.log()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_delivery_finds_the_mx_through_dns_uses_starttls_and_turns_a_5xx_into_failed() {
    let ca = TestCa::new().unwrap();
    let mx_cert = ca.issue("mx", &["mx.tls.test"]).unwrap();
    let postfix = Postfix::start_with(&["fay@tls.test", "gus@plain.test"], Some(mx_cert), None)
        .await
        .unwrap();
    let dns = Unbound::start(ZONE).await.unwrap();
    let node = TestNode::spawn_with(
        "alpha.test",
        direct_delivery(&dns, postfix.port, &ca.ca_file(), 443, vec![]),
    )
    .await
    .unwrap();

    // fay@tls.test: found through tls.test's MX, sent over STARTTLS.
    let r = settled(&node, notify(&node, "fay@tls.test").await).await;
    assert_eq!(r.state, NotificationState::Sent, "{r:?}\n{}", postfix.log());
    assert!(
        r.relay_answer
            .as_deref()
            .unwrap()
            .starts_with("250 2.0.0 Ok: queued as "),
        "{r:?}"
    );
    let files = delivered(&postfix, "fay@tls.test").await;
    let mail = parse_mail(&files[0]).unwrap();
    assert_eq!(parsed_header(&mail, "To").as_deref(), Some("fay@tls.test"));
    let log = postfix.log();
    assert!(
        log.contains("TLS connection established from"),
        "Postfix saw no TLS:\n{log}"
    );

    // gus@plain.test: no MX, so the domain's own address record (RFC 5321 §5.1).
    let r = settled(&node, notify(&node, "gus@plain.test").await).await;
    assert_eq!(r.state, NotificationState::Sent, "{r:?}\n{}", postfix.log());
    assert_eq!(delivered(&postfix, "gus@plain.test").await.len(), 1);

    // A 5xx from the MX: failed at once, with the server's answer in words.
    let r = settled(&node, notify(&node, "nobody@tls.test").await).await;
    assert_eq!(r.state, NotificationState::Failed);
    assert_eq!(r.attempts, 1);
    assert_eq!(
        r.last_error.as_deref(),
        Some(
            "The mail server of tls.test (mx.tls.test) refused the recipient: 550 5.1.1 \
             <nobody@tls.test>: Recipient address rejected: User unknown in virtual mailbox \
             table"
        )
    );

    // A domain that does not exist: failed, said so.
    let r = settled(&node, notify(&node, "x@nowhere.test").await).await;
    assert_eq!(r.state, NotificationState::Failed);
    assert_eq!(
        r.last_error.as_deref(),
        Some("nowhere.test does not exist (the DNS knows no such domain)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_recipient_whose_mx_has_no_valid_certificate_is_not_sent_in_plain_and_fails_with_the_reason()
 {
    let ca = TestCa::new().unwrap();
    // Postfix offers STARTTLS, but with a certificate for another name.
    let wrong = ca.issue("wrong", &["mx.other.test"]).unwrap();
    let postfix = Postfix::start_with(&["fay@tls.test", "gus@plain.test"], Some(wrong), None)
        .await
        .unwrap();
    let dns = Unbound::start(ZONE).await.unwrap();
    let node = TestNode::spawn_with(
        "alpha.test",
        direct_delivery(
            &dns,
            postfix.port,
            &ca.ca_file(),
            443,
            vec![DomainTls {
                domain: "tls.test".into(),
                policy: TlsPolicy::Pinned,
            }],
        ),
    )
    .await
    .unwrap();

    let r = settled(&node, notify(&node, "fay@tls.test").await).await;
    assert_eq!(r.state, NotificationState::Failed, "{r:?}");
    assert_eq!(
        r.last_error.as_deref(),
        Some("tls.test's mail server offered no valid certificate for mx.tls.test: not delivered")
    );

    // An ordinary domain on the same server still gets its mail (opportunistic STARTTLS
    // takes any certificate), which shows the server was up and the refusal was the policy's.
    let r = settled(&node, notify(&node, "gus@plain.test").await).await;
    assert_eq!(r.state, NotificationState::Sent, "{r:?}\n{}", postfix.log());
    assert_eq!(delivered(&postfix, "gus@plain.test").await.len(), 1);
    assert!(postfix.delivered("fay@tls.test").is_empty());
    let log = postfix.log();
    assert!(
        !log.contains("to=<fay@tls.test>") && !log.contains("<fay@tls.test>"),
        "fay's mail reached Postfix:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enforced_mta_sts_policy_that_does_not_list_the_mx_fails_and_one_that_does_delivers() {
    let ca = TestCa::new().unwrap();
    let mx_cert = ca.issue("mx", &["mx.tls.test"]).unwrap();
    let (sts_cert, sts_key) = ca
        .issue("sts", &["mta-sts.sts.test", "mta-sts.good.test"])
        .unwrap();
    let sts = MtaStsServer::start(
        &sts_cert,
        &sts_key,
        &[
            (
                "sts.test",
                "version: STSv1\nmode: enforce\nmx: mx.elsewhere.test\nmax_age: 86400\n",
            ),
            (
                "good.test",
                "version: STSv1\r\nmode: enforce\r\nmx: *.tls.test\r\nmax_age: 86400\r\n",
            ),
        ],
    )
    .await
    .unwrap();
    let postfix = Postfix::start_with(&["hal@sts.test", "ida@good.test"], Some(mx_cert), None)
        .await
        .unwrap();
    let dns = Unbound::start(ZONE).await.unwrap();
    let node = TestNode::spawn_with(
        "alpha.test",
        direct_delivery(&dns, postfix.port, &ca.ca_file(), sts.port, vec![]),
    )
    .await
    .unwrap();

    let r = settled(&node, notify(&node, "hal@sts.test").await).await;
    assert_eq!(r.state, NotificationState::Failed, "{r:?}");
    assert_eq!(
        r.last_error.as_deref(),
        Some(
            "sts.test's mail server mx.tls.test is not one its MTA-STS policy lists \
             (mx.elsewhere.test): not delivered"
        )
    );
    let r = settled(&node, notify(&node, "ida@good.test").await).await;
    assert_eq!(r.state, NotificationState::Sent, "{r:?}\n{}", postfix.log());
    assert_eq!(delivered(&postfix, "ida@good.test").await.len(), 1);
    assert!(postfix.delivered("hal@sts.test").is_empty());

    // The policy is cached (RFC 8461 §5.1): with its file gone (an attacker blocking the
    // HTTPS fetch), the TXT record's ID unchanged, the next mail still goes under it, sent at
    // once (without the cache a policy that cannot be fetched holds the mail for a retry).
    sts.withdraw("good.test").unwrap();
    let r = settled(&node, notify(&node, "ida@good.test").await).await;
    assert_eq!(r.state, NotificationState::Sent, "{r:?}");
    assert_eq!(r.attempts, 1, "{r:?}");
    wait_for(Duration::from_secs(20), async || {
        (postfix.delivered("ida@good.test").len() == 2).then_some(())
    })
    .await
    .expect("the second mail delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_domain_and_a_down_one_do_not_stall_another() {
    let ca = TestCa::new().unwrap();
    let mx_cert = ca.issue("mx", &["mx.tls.test"]).unwrap();
    let postfix = Postfix::start_with(&["fay@tls.test"], Some(mx_cert), None)
        .await
        .unwrap();
    // slow.test's MX: takes connections on Postfix's port of 127.0.0.3 and never greets.
    let silent = tokio::net::TcpListener::bind(("127.0.0.3", postfix.port))
        .await
        .unwrap();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            let _ = seen_tx.send(());
            held.push(stream);
        }
    });
    let dns = Unbound::start(ZONE).await.unwrap();
    let tweak = direct_delivery(&dns, postfix.port, &ca.ca_file(), 443, vec![]);
    let node = TestNode::spawn_with("alpha.test", move |c| {
        tweak(c);
        // Long enough that slow.test is still being waited for when the others are done.
        c.relay.connect_timeout_secs = 600;
    })
    .await
    .unwrap();

    let slow = notify(&node, "sam@slow.test").await;
    // The slow domain's server has the node's connection before the others are queued.
    tokio::time::timeout(Duration::from_secs(30), seen.recv())
        .await
        .expect("the node connects to slow.test's MX")
        .unwrap();
    let down = notify(&node, "dan@down.test").await;
    let ok = notify(&node, "fay@tls.test").await;

    let r = settled(&node, ok).await;
    assert_eq!(r.state, NotificationState::Sent, "{r:?}\n{}", postfix.log());
    assert_eq!(delivered(&postfix, "fay@tls.test").await.len(), 1);
    // down.test was tried and will be again; slow.test is still in its first attempt.
    let d = wait_for(Duration::from_secs(30), async || {
        let r = node.store.notification(down).await.unwrap().unwrap();
        (r.attempts > 0).then_some(r)
    })
    .await
    .unwrap();
    assert_eq!(d.state, NotificationState::Queued);
    let reason = d.last_error.unwrap();
    assert!(
        reason.starts_with("The mail server of down.test (mx.down.test) could not be reached: "),
        "{reason}"
    );
    let s = node.store.notification(slow).await.unwrap().unwrap();
    assert_eq!((s.state, s.attempts), (NotificationState::Queued, 0));
    hold.abort();
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                hits.push(path);
            }
        }
    }
    hits
}

/// What became of a message to fay@tls.test in enforced-TLS mode.
struct TlsOutcome {
    state: sealpost_proto::DeliveryState,
    /// The delivered mails, parsed.
    delivered: Vec<serde_json::Value>,
}

/// alice@alpha.test writes to fay@tls.test, a domain the policy pins to enforced TLS
/// (`pinned`), delivered directly to tls.test's MX: a Postfix with a certificate for
/// `mx_names`, which is down for the first attempt (so the queued copy can be looked at) and
/// up for the second. Checks what holds either way: the sender is told the node sees the
/// content, the copy goes to the published transit key, it is on disk only encrypted while
/// queued, and afterwards it is in no file of the data directory.
async fn enforced_tls_send(mx_names: &[&str]) -> TlsOutcome {
    use sealpost_client::Outgoing;
    use sealpost_proto::{DeliveryMode, Folder};
    let ca = TestCa::new().unwrap();
    let mx_cert = ca.issue("mx", mx_names).unwrap();
    let port = sealpost_tests::smtp::free_port();
    let dns = Unbound::start(ZONE).await.unwrap();
    let tweak = direct_delivery(&dns, port, &ca.ca_file(), 443, vec![]);
    let node = TestNode::spawn_with("alpha.test", move |c| {
        tweak(c);
        c.delivery.pins.push(sealpost::config::DeliveryPin {
            domain: "tls.test".into(),
            mode: DeliveryMode::Tls,
            tls: Some(TlsPolicy::Pinned),
        });
    })
    .await
    .unwrap();
    let alice = node.person("alice").await;
    let to = vec!["fay@tls.test".to_owned()];
    let (answer, _) = alice.envelope(&to).await.unwrap();
    let f = &answer.recipients[0];
    assert_eq!(f.mode, DeliveryMode::Tls);
    assert!(
        f.sees_content,
        "the sender is told the node sees the content"
    );
    assert!(f.why.contains("enforced TLS"), "{}", f.why);
    // The key the copy goes to is the node's transit key, as the organisation record says.
    let org = sealpost_client::Client::new(&node.url).org().await.unwrap();
    assert_eq!(Some(&f.cert), org.transit_key.as_ref());

    let work = tempfile::tempdir().unwrap();
    let (resp, _) = alice
        .send_all(
            &Outgoing {
                to: to.clone(),
                subject: "Term sheet 4711 for Fay".into(),
                body: "Dear Fay,\nthe term sheet: 9c1e-plain-body.\nAlice".into(),
                attachments: vec![],
                pickup_kdf: None,
            },
            work.path(),
        )
        .await
        .unwrap();
    assert_eq!(resp.recipients[0].mode, Some(DeliveryMode::Tls));

    // The MX is down: the first attempt fails and the copy waits, encrypted.
    let db = node.data().join("sealpost.db");
    let copy = wait_for(Duration::from_secs(30), async || {
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row(
                "SELECT mail FROM notifications WHERE kind = 'tls' AND attempts > 0",
                [],
                |r| r.get::<_, Vec<u8>>(0),
            )
            .ok()
    })
    .await
    .unwrap();
    let needle = copy[copy.len() / 2..copy.len() / 2 + 48].to_vec();
    assert!(!files_containing(&node.data(), &needle).is_empty());
    assert!(files_containing(&node.data(), b"9c1e-plain-body").is_empty());

    // Up: the next attempt goes to it.
    let postfix = Postfix::start_with(&["fay@tls.test"], Some(mx_cert), Some(port))
        .await
        .unwrap();
    let state = wait_for(Duration::from_secs(30), async || {
        let sent = alice.mailbox(Folder::Sent).await.unwrap();
        let item = sent.into_iter().next()?;
        item.delivery.into_iter().find(|d| d.state != "queued")
    })
    .await
    .unwrap();
    // Whatever came of it, the copy is gone from every file (queue row, WAL, anything) and
    // was never kept with the message; no plaintext is anywhere in the data directory.
    // (The WAL is truncated right after the commit that ends the row.)
    wait_for(Duration::from_secs(10), async || {
        files_containing(&node.data(), &needle)
            .is_empty()
            .then_some(())
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the transit copy is still in {:?}",
            files_containing(&node.data(), &needle)
        )
    });
    assert!(files_containing(&node.data(), b"9c1e-plain-body").is_empty());
    let kept: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT SUM(length(copy)) FROM external_copies", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(kept, 0);
    // Postfix answers 250 when it has queued the mail; its local delivery into the Maildir
    // follows a moment later.
    if state.state == "delivered" {
        wait_for(Duration::from_secs(20), async || {
            (!postfix.delivered("fay@tls.test").is_empty()).then_some(())
        })
        .await
        .expect("Postfix delivers what it took into fay's Maildir");
    }
    let delivered = postfix
        .delivered("fay@tls.test")
        .iter()
        .map(|f| parse_mail(f).unwrap())
        .collect();
    TlsOutcome { state, delivered }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_an_enforced_tls_domain_arrives_over_verified_tls_with_its_real_subject() {
    let TlsOutcome { state, delivered } = enforced_tls_send(&["mx.tls.test"]).await;
    assert_eq!(state.state, "delivered", "{state:?}");
    assert_eq!(state.mode, Some(sealpost_proto::DeliveryMode::Tls));
    assert!(
        state.reason.as_deref().unwrap().starts_with("250 2.0.0 Ok"),
        "{state:?}"
    );
    assert_eq!(delivered.len(), 1);
    let mail = &delivered[0];
    assert_eq!(
        parsed_header(mail, "Subject").as_deref(),
        Some("Term sheet 4711 for Fay")
    );
    assert_eq!(
        parsed_header(mail, "From").as_deref(),
        Some("alice@alpha.test")
    );
    assert!(mail["text"].as_str().unwrap().contains("9c1e-plain-body"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_an_enforced_tls_domain_whose_mx_certificate_is_invalid_fails_and_alice_sees_why()
 {
    let TlsOutcome { state, delivered } = enforced_tls_send(&["mx.elsewhere.test"]).await;
    assert!(
        delivered.is_empty(),
        "delivered in spite of the certificate"
    );
    assert_eq!(state.state, "failed", "{state:?}");
    assert_eq!(
        state.reason.as_deref(),
        Some("tls.test's mail server offered no valid certificate for mx.tls.test: not delivered")
    );
}
