//! S/MIME mail end to end (docs/mail.md, mode `smime`; issue 18 item 4): erik@smime.test has
//! an X.509 certificate from a CA made for the test, which is the node's `[delivery]
//! x509_anchors`; an administrator imports it. alice@alpha.test writes to erik: her client
//! encrypts the inner MIME entity to erik's certificate (CMS, AES-256-CBC, unsigned), the node
//! checks whom the CMS names, wraps it in `application/pkcs7-mime` and hands it to a real
//! Postfix, which delivers it into erik's Maildir; `openssl cms -decrypt` and `gpgsm --decrypt`
//! open the delivered mail as erik's mail program would. Hostile copies get typed errors and
//! store nothing.

use std::collections::BTreeMap;
use std::path::Path;

use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::stack::Stack;
use openssl::symm::Cipher;
use sealpost_client::Session;
use sealpost_client::crypto::smime::{SmimeCipher, encrypt};
use sealpost_proto::{DeliveryMode, Envelope, ExternalCopy, KeySource, SMIME_UNSIGNED};
use sealpost_tests::TestNode;
use sealpost_tests::https::{Issued, TestCa, Usage, openssl};
use sealpost_tests::mail::{
    assert_figures_entity, attempt, delivered_outer, import_by_admin, recipient_states,
    send_figures, settled_sent_item, smime_opens,
};
use sealpost_tests::smtp::{Postfix, free_port, relay_at};

/// alpha.test sending through the relay at `relay_port`, with an S/MIME CA (made here, written
/// to `dir`) as its `[delivery] x509_anchors`; erik's certificate under that CA, imported by an
/// administrator; and alice, logged in.
async fn smime_world(dir: &Path, relay_port: u16) -> (TestNode, TestCa, Issued, Session) {
    let ca = TestCa::new("S/MIME test CA").unwrap();
    let anchors = ca.write_pem(&dir.join("x509-anchors.pem")).unwrap();
    let erik = ca.issue(Usage::Smime("erik@smime.test")).unwrap();
    let node = TestNode::spawn_with("alpha.test", move |c| {
        relay_at(relay_port)(c);
        c.delivery.x509_anchors = anchors.display().to_string();
    })
    .await
    .unwrap();
    import_by_admin(&node, &erik.cert_pem).await;
    let alice = node.person("alice").await;
    (node, ca, erik, alice)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_reaches_an_outside_address_by_smime_mail_and_opens_in_openssl_and_gpgsm() {
    let postfix = Postfix::start(&["erik@smime.test"]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (node, _ca, erik, alice) = smime_world(dir.path(), postfix.port).await;

    // The envelope answer: erik by S/MIME, to his certificate, and the sender is told it goes
    // unsigned.
    let to = vec!["erik@smime.test".to_owned()];
    let (answer, _) = alice.envelope(&to).await.unwrap();
    let e = &answer.recipients[0];
    assert_eq!(e.mode, DeliveryMode::Smime);
    assert_eq!(e.key_source, Some(KeySource::X509Anchor));
    assert_eq!(e.cert, erik.cert_pem);
    assert_eq!(
        e.fingerprint,
        hex::encode(
            erik.cert
                .digest(openssl::hash::MessageDigest::sha256())
                .unwrap()
        )
    );
    assert!(e.why.contains(SMIME_UNSIGNED), "{}", e.why);
    assert!(!e.sees_content);

    let work = tempfile::tempdir().unwrap();
    let resp = send_figures(&alice, &to, work.path()).await;
    let states = recipient_states(&resp);
    assert_eq!(
        states,
        [("erik@smime.test", Some(DeliveryMode::Smime), "queued")]
    );

    // Postfix delivered it into erik's Maildir.
    let (file, raw) = delivered_outer(&postfix, "erik@smime.test", &resp.message_id).await;
    // erik's mail program opens it: `openssl cms -decrypt` and `gpgsm --decrypt`.
    assert_figures_entity(&smime_opens(dir.path(), &erik, &file, &raw));

    // alice's sent item: erik by smime, delivered, with Postfix's answer.
    let item = settled_sent_item(&alice).await;
    let d = &item.delivery[0];
    assert_eq!(
        (d.address.as_str(), d.mode, d.state.as_str()),
        ("erik@smime.test", Some(DeliveryMode::Smime), "delivered")
    );
    assert!(
        d.reason.as_deref().unwrap_or("").starts_with("250 "),
        "{d:?}"
    );
    assert_eq!(
        node.count("SELECT COUNT(*) FROM notifications WHERE kind = 'smime'"),
        1
    );
}

/// A copy replaced by `copy`, named in the signed envelope with its own hash and size.
fn replace(
    erik: &str,
    copy: Vec<u8>,
) -> impl FnOnce(&mut Envelope, &mut BTreeMap<String, Vec<u8>>) {
    let erik = erik.to_owned();
    move |env, copies| {
        env.external
            .insert(erik.clone(), ExternalCopy::of(DeliveryMode::Smime, &copy));
        copies.insert(erik, copy);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smime_copies_not_for_the_recipients_certificate_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    // A relay that is never reached: nothing hostile may be queued.
    let (node, ca, erik, alice) = smime_world(dir.path(), free_port()).await;
    let stored = || {
        (
            node.count("SELECT COUNT(*) FROM messages"),
            node.count("SELECT COUNT(*) FROM notifications"),
            node.count("SELECT COUNT(*) FROM external_copies"),
        )
    };
    let to = ["erik@smime.test"];
    let addr = "erik@smime.test";
    const ENTITY: &[u8] = b"Subject: x\r\n\r\nx";

    // Encrypted to finn's certificate (the same CA), not erik's.
    let finn = ca.issue(Usage::Smime("finn@smime.test")).unwrap();
    let for_finn = encrypt(ENTITY, &finn.cert_pem, SmimeCipher::Aes256Cbc).unwrap();
    let code = attempt(&node, &alice, &to, replace(addr, for_finn)).await;
    assert_eq!(code.as_deref(), Some("external_copy_not_encrypted"));

    // Not CMS at all; and CMS that is not enveloped data (a signed message).
    let code = attempt(
        &node,
        &alice,
        &to,
        replace(addr, b"not CMS at all".to_vec()),
    )
    .await;
    assert_eq!(code.as_deref(), Some("external_copy_malformed"));
    let key = openssl::pkey::PKey::private_key_from_pem(erik.key_pem.as_bytes()).unwrap();
    let signed = CmsContentInfo::sign(
        Some(&erik.cert),
        Some(&key),
        None,
        Some(ENTITY),
        CMSOptions::BINARY,
    )
    .unwrap()
    .to_der()
    .unwrap();
    let code = attempt(&node, &alice, &to, replace(addr, signed)).await;
    assert_eq!(code.as_deref(), Some("external_copy_malformed"));

    // The right copy, but not the bytes the signed envelope names.
    let code = attempt(&node, &alice, &to, |_, copies| {
        copies.get_mut(addr).unwrap().push(0);
    })
    .await;
    assert_eq!(code.as_deref(), Some("external_copy_mismatch"));

    // The envelope names the copy as OpenPGP: not the mode the policy gives erik.
    let code = attempt(&node, &alice, &to, |env, copies| {
        let copy = &copies[addr];
        env.external.insert(
            addr.to_owned(),
            ExternalCopy::of(DeliveryMode::Openpgp, copy),
        );
    })
    .await;
    assert_eq!(code.as_deref(), Some("external_mode_mismatch"));
    assert_eq!(stored(), (0, 0, 0), "nothing hostile is stored");

    // Accepted: AES-256-GCM AuthEnvelopedData, and erik named by subject key identifier.
    let gcm = encrypt(ENTITY, &erik.cert_pem, SmimeCipher::Aes256Gcm).unwrap();
    assert_eq!(attempt(&node, &alice, &to, replace(addr, gcm)).await, None);
    let mut certs = Stack::new().unwrap();
    certs.push(erik.cert.clone()).unwrap();
    let by_key_id = CmsContentInfo::encrypt(
        &certs,
        ENTITY,
        Cipher::aes_256_cbc(),
        CMSOptions::BINARY | CMSOptions::USE_KEYID,
    )
    .unwrap()
    .to_der()
    .unwrap();
    let file = dir.path().join("by-key-id.p7m");
    std::fs::write(&file, &by_key_id).unwrap();
    let printed = openssl(&[
        "cms",
        "-cmsout",
        "-print",
        "-inform",
        "DER",
        "-in",
        file.to_str().unwrap(),
    ]);
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(printed.contains("subjectKeyIdentifier"), "{printed}");
    assert_eq!(
        attempt(&node, &alice, &to, replace(addr, by_key_id)).await,
        None
    );
    assert_eq!(stored(), (2, 2, 2));
}
