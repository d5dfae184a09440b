//! The end-to-end path of notification mail: a node hands a notification to a real Postfix
//! (Debian's, a throw-away instance with its own configuration directory on a loopback port),
//! which delivers it into the recipient's Maildir with the headers intact; a notification to
//! an address Postfix does not know fails with Postfix's own words.

use std::time::Duration;

use sealpost::config::RelaySecurity;
use sealpost::notify::Notification;
use sealpost::storage::NotifyStore;
use sealpost::storage::notify::NotificationState;
use sealpost_tests::smtp::{Postfix, parse_mail, parsed_header};
use sealpost_tests::{TestNode, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_goes_through_postfix_into_the_recipients_maildir() {
    let postfix = Postfix::start(&["carol@outside.test"]).await.unwrap();
    let port = postfix.port;
    let node = TestNode::spawn_with("alpha.test", move |c| {
        c.federation.enabled = false;
        c.relay.host = "127.0.0.1".into();
        c.relay.port = port;
        c.relay.security = RelaySecurity::None;
    })
    .await
    .unwrap();
    let link = "https://alpha.test/pickup/p-4b1d";
    let notify = async |recipient| {
        let id = node
            .notifier
            .enqueue(
                &Notification {
                    message_id: Some("m-postfix"),
                    sender: "alice@alpha.test",
                    sender_name: "Alice Ëxample",
                    organisation: "Alpha Bank",
                    recipient,
                    link,
                },
                sealpost::now(),
            )
            .await
            .unwrap();
        wait_for(Duration::from_secs(20), async || {
            let r = node.store.notification(id).await.unwrap().unwrap();
            (r.state != NotificationState::Queued).then_some(r)
        })
        .await
        .unwrap()
    };
    let r = notify("carol@outside.test").await;
    assert_eq!(r.state, NotificationState::Sent, "{r:?}\n{}", postfix.log());
    // Postfix's answer names its queue ID, which its log ties to the delivery.
    let answer = r.relay_answer.unwrap();
    assert!(answer.starts_with("250 2.0.0 Ok: queued as "), "{answer}");
    let queue_id = answer.rsplit(' ').next().unwrap().to_owned();

    let files = wait_for(Duration::from_secs(20), async || {
        let f = postfix.delivered("carol@outside.test");
        (!f.is_empty()).then_some(f)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", postfix.log()));
    assert_eq!(files.len(), 1);
    let mail = parse_mail(&files[0]).unwrap();
    let h = |n: &str| parsed_header(&mail, n);
    assert_eq!(
        h("Subject").as_deref(),
        Some("Secure message from Alice Ëxample at Alpha Bank")
    );
    assert_eq!(
        h("From").as_deref(),
        Some("Alpha Bank <no-reply@alpha.test>")
    );
    assert_eq!(h("To").as_deref(), Some("carol@outside.test"));
    assert_eq!(h("Message-ID"), Some(r.mail_id));
    assert_eq!(h("Auto-Submitted").as_deref(), Some("auto-generated"));
    assert!(h("Date").is_some());
    // Postfix added its trace: the mail came through it.
    assert!(h("Received").unwrap().contains("relay.test"));
    // The envelope sender is the row's bounce address (VERP); `From` stays the node's.
    let return_path = h("Return-Path").unwrap();
    assert!(
        return_path.contains(&sealpost::notify::bounce::bounce_address(
            &node.context.bounce_key,
            "alpha.test",
            r.id
        )),
        "{return_path}"
    );
    let text = mail["text"].as_str().unwrap();
    let html = mail["html"].as_str().unwrap();
    for part in [text, html] {
        assert!(part.contains(link), "{part}");
        assert!(part.contains("Alice Ëxample"), "{part}");
    }
    let log = postfix.log();
    assert!(
        log.lines()
            .any(|l| l.contains(&queue_id) && l.contains("status=sent (delivered to maildir)")),
        "{log}"
    );

    // An address Postfix has no mailbox for: refused at RCPT, failed with Postfix's words.
    let r = notify("nobody@outside.test").await;
    assert_eq!(r.state, NotificationState::Failed);
    assert_eq!(
        r.last_error.as_deref(),
        Some(
            "The mail relay refused the recipient: 550 5.1.1 <nobody@outside.test>: Recipient \
             address rejected: User unknown in virtual mailbox table"
        )
    );
    assert_eq!(postfix.delivered("carol@outside.test").len(), 1);
}
