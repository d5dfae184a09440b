//! OpenPGP mail end to end (docs/mail.md): alice@alpha.test writes one message to
//! bob@alpha.test (a user of her node) and dora@pgp.test (outside, with an OpenPGP key the
//! node finds in pgp.test's Web Key Directory). Her client seals the external copy for dora; the node checks it, wraps it in
//! RFC 3156 PGP/MIME and hands it to a real Postfix, which delivers it into dora's Maildir;
//! GnuPG 2.2 decrypts it as a mail program would and verifies alice's signature; the real
//! subject is only inside. Hostile submissions get typed errors and store nothing.

use std::time::SystemTime;

use sealpost_client::crypto;
use sealpost_proto::{DeliveryMode, ExternalCopy, Folder, KeySource};
use sealpost_tests::TestNode;
use sealpost_tests::gpg::Gpg;
use sealpost_tests::mail::{
    FIGURES_SUBJECT, Wkd, assert_figures_entity, assert_told_not_delivered, attempt,
    delivered_outer, gpg_opens, import_by_admin, recipient_states, send_figures, settled_sent_item,
};
use sealpost_tests::smtp::{Postfix, free_port, relay_at};
use sequoia_openpgp::policy::StandardPolicy;

static POLICY: StandardPolicy<'static> = StandardPolicy::new();

/// A GnuPG home holding dora's key; her public key armored, and its fingerprint.
fn dora() -> (Gpg, String, String) {
    let gpg = Gpg::new();
    let (armored, fpr) = gpg.new_key("dora@pgp.test");
    (gpg, armored, fpr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_reaches_a_local_user_and_an_outside_address_by_openpgp_mail() {
    let postfix = Postfix::start(&["dora@pgp.test"]).await.unwrap();
    // pgp.test's Web Key Directory (advanced method): HTTPS on loopback with a certificate
    // from a CA made for the test, which the node trusts.
    let (gpg, _, dora_fpr) = dora();
    // erin@pgp.test publishes a key too, but Postfix has no mailbox for her.
    let (_, erin_fpr) = gpg.new_key("erin@pgp.test");
    let wkd = Wkd::start(
        "pgp.test",
        &gpg,
        &[("dora", &dora_fpr), ("erin", &erin_fpr)],
    )
    .await;
    let (port, wkd) = (postfix.port, wkd.configure());
    let node = TestNode::spawn_with("alpha.test", move |c| {
        relay_at(port)(c);
        wkd(c);
    })
    .await
    .unwrap();
    let alice = node.person("alice").await;
    let bob = node.person("bob").await;

    // The envelope answer: dora by OpenPGP mail, and why.
    let to = vec![
        "bob@alpha.test".to_owned(),
        "dora@pgp.test".to_owned(),
        "erin@pgp.test".to_owned(),
    ];
    let (answer, _) = alice.envelope(&to).await.unwrap();
    let d = &answer.recipients[1];
    assert_eq!(d.mode, DeliveryMode::Openpgp);
    assert_eq!(d.key_source, Some(KeySource::Wkd));
    assert!(d.fingerprint.eq_ignore_ascii_case(&dora_fpr));
    assert!(
        d.why
            .contains("dora@pgp.test publishes an OpenPGP key in pgp.test's Web Key Directory"),
        "{}",
        d.why
    );
    assert!(!d.sees_content);
    assert_eq!(answer.recipients[0].mode, DeliveryMode::Local);

    let work = tempfile::tempdir().unwrap();
    let resp = send_figures(&alice, &to, work.path()).await;
    let states = recipient_states(&resp);
    assert_eq!(
        states,
        [
            ("bob@alpha.test", None, "delivered"),
            ("dora@pgp.test", Some(DeliveryMode::Openpgp), "queued"),
            ("erin@pgp.test", Some(DeliveryMode::Openpgp), "queued"),
        ]
    );

    // Postfix delivered it into dora's Maildir.
    let (_, raw) = delivered_outer(&postfix, "dora@pgp.test", &resp.message_id).await;
    // GnuPG 2.2 decrypts it with dora's key and verifies alice's signature.
    let decrypted = gpg_opens(&gpg, &alice, &raw);
    // The inner entity: the real subject (protected headers), the body, the attachment.
    assert_figures_entity(&decrypted);

    // bob reads it in Sealpost.
    let inbox = bob.mailbox(Folder::Inbox).await.unwrap();
    assert_eq!(inbox.len(), 1);
    let read = bob.read(&resp.message_id, None, work.path()).await.unwrap();
    assert_eq!(read.subject, FIGURES_SUBJECT);
    assert_eq!(read.attachments.len(), 1);

    // alice's sent item: dora by openpgp, delivered, with Postfix's answer.
    let item = settled_sent_item(&alice).await;
    let d = &item.delivery[0];
    let e = &item.delivery[1];
    // erin's mail was refused by the relay: failed, with its words, and alice is told.
    assert_eq!(
        (e.address.as_str(), e.mode, e.state.as_str()),
        ("erin@pgp.test", Some(DeliveryMode::Openpgp), "failed")
    );
    assert!(
        e.reason
            .as_deref()
            .unwrap_or("")
            .contains("550 5.1.1 <erin@pgp.test>: Recipient address rejected"),
        "{e:?}"
    );
    assert_told_not_delivered(&alice, "erin@pgp.test").await;
    assert_eq!(
        (d.address.as_str(), d.mode, d.state.as_str()),
        ("dora@pgp.test", Some(DeliveryMode::Openpgp), "delivered")
    );
    assert!(
        d.reason.as_deref().unwrap_or("").starts_with("250 "),
        "{d:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_copies_that_are_not_what_the_envelope_and_policy_say_are_refused() {
    // A relay that is never reached: nothing may be queued.
    let node = TestNode::spawn_with("alpha.test", relay_at(free_port()))
        .await
        .unwrap();
    let alice = node.person("alice").await;
    let _bob = node.person("bob").await;
    let (_gpg, dora_key, _) = dora();
    import_by_admin(&node, &dora_key).await;
    let stored = || {
        (
            node.count("SELECT COUNT(*) FROM messages"),
            node.count("SELECT COUNT(*) FROM notifications"),
            node.count("SELECT COUNT(*) FROM external_copies"),
        )
    };
    let dora = "dora@pgp.test".to_owned();

    // A copy encrypted to alice alone, not to dora's key.
    let me = alice.unlocked_cert().clone();
    let code = attempt(&node, &alice, &["dora@pgp.test"], |env, copies| {
        let mut copy = Vec::new();
        crypto::seal(
            std::slice::from_ref(&me),
            &me,
            &POLICY,
            SystemTime::now(),
            &mut &b"Subject: x\r\n\r\nx"[..],
            &mut copy,
        )
        .unwrap();
        env.external
            .insert(dora.clone(), ExternalCopy::of(DeliveryMode::Openpgp, &copy));
        copies.insert(dora.clone(), copy);
    })
    .await;
    assert_eq!(code.as_deref(), Some("external_copy_not_encrypted"));

    // A copy whose bytes are not those the signed envelope names.
    let code = attempt(&node, &alice, &["dora@pgp.test"], |_, copies| {
        copies.get_mut(&dora).unwrap().push(0);
    })
    .await;
    assert_eq!(code.as_deref(), Some("external_copy_mismatch"));

    // A mode the policy would not give dora (she has an OpenPGP key, no certificate).
    let code = attempt(&node, &alice, &["dora@pgp.test"], |env, _| {
        env.external.get_mut(&dora).unwrap().mode = DeliveryMode::Smime;
    })
    .await;
    assert_eq!(code.as_deref(), Some("external_mode_mismatch"));
    // ... nor one with no external copy at all.
    let code = attempt(&node, &alice, &["dora@pgp.test"], |env, copies| {
        env.external.clear();
        copies.clear();
    })
    .await;
    assert_eq!(code.as_deref(), Some("external_mode_mismatch"));

    // A copy the envelope names that neither came inline nor was uploaded by alice.
    let code = attempt(&node, &alice, &["dora@pgp.test"], |_, copies| {
        copies.clear();
    })
    .await;
    assert_eq!(code.as_deref(), Some("external_copy_mismatch"));

    // An external copy for bob, a user of this node.
    let code = attempt(&node, &alice, &["bob@alpha.test"], |env, copies| {
        let copy = b"\xc1not a copy".to_vec();
        env.external.insert(
            "bob@alpha.test".into(),
            ExternalCopy::of(DeliveryMode::Openpgp, &copy),
        );
        copies.insert("bob@alpha.test".into(), copy);
    })
    .await;
    assert_eq!(code.as_deref(), Some("external_copy_not_allowed"));

    assert_eq!(stored(), (0, 0, 0), "nothing is stored");
    // The same message as the client makes it is accepted.
    assert_eq!(
        attempt(&node, &alice, &["dora@pgp.test"], |_, _| {}).await,
        None
    );
    assert_eq!(stored(), (1, 1, 1));
}

/// A copy larger than one inline part's worth is uploaded before the submission (the request
/// body is bounded), checked like an inline one, delivered whole, and used up: the upload no
/// longer counts against alice's quota and its file is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_external_copy_is_uploaded_and_delivered_whole() {
    use sealpost::storage::{AccountStore, MailStore};
    let postfix = Postfix::start(&["dora@pgp.test"]).await.unwrap();
    let (gpg, armored, _) = dora();
    let port = postfix.port;
    let node = TestNode::spawn_with("alpha.test", move |c| {
        relay_at(port)(c);
        c.http.max_json_body = 128 * 1024;
        c.limits.inline_part_max_bytes = 32 * 1024;
    })
    .await
    .unwrap();
    let alice = node.person("alice").await;
    import_by_admin(&node, &armored).await;

    // 3 MiB that do not compress: over twenty times the whole request body the node takes.
    let work = tempfile::tempdir().unwrap();
    let mut data = vec![0u8; 3 * 1024 * 1024];
    openssl::rand::rand_bytes(&mut data).unwrap();
    let attachment = work.path().join("scan.bin");
    std::fs::write(&attachment, &data).unwrap();
    let (resp, _) = alice
        .send_all(
            &sealpost_client::Outgoing {
                to: vec!["dora@pgp.test".into()],
                subject: "The scan".into(),
                body: "Attached.".into(),
                attachments: vec![attachment],
                pickup_kdf: None,
            },
            work.path(),
        )
        .await
        .unwrap();
    assert_eq!(
        recipient_states(&resp),
        [("dora@pgp.test", Some(DeliveryMode::Openpgp), "queued")]
    );

    // The upload is used up: nothing pending for alice, the copy's file removed.
    let account = node
        .store
        .account_by_address("alice@alpha.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        node.store.pending_upload_bytes(account.id).await.unwrap(),
        0
    );

    // dora's mail program opens it: the attachment is the 3 MiB, byte for byte.
    let (_, raw) = delivered_outer(&postfix, "dora@pgp.test", &resp.message_id).await;
    let decrypted = gpg_opens(&gpg, &alice, &raw);
    let inner = mail_parser::MessageParser::default()
        .parse(&decrypted[..])
        .unwrap();
    let got = inner.attachments().next().expect("the attachment");
    assert!(got.contents() == data.as_slice(), "the attachment differs");
}
