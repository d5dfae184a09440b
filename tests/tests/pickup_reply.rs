//! Replies from the pickup page and pickup threads (docs/pickup.md, Replies and Threads),
//! against a real node on loopback: carol replies with a 1 MiB attachment; it lands in
//! alice's inbox from carol@outside.test marked `via: pickup`, opens with alice's key
//! byte-identical, and alice sees `replied`; a reply to anyone else, or from another pickup's
//! address, is refused and changes nothing; alice's next message continues the thread (the same
//! code opens it at its new link, no new code is made); a locked thread refuses continuation
//! until alice re-locks, then the new code opens the whole thread; an expired or withdrawn
//! thread refuses continuation; the data directory holds no plaintext of the reply.

use std::time::SystemTime;

use sealpost::storage::PickupStore;
use sealpost_client::pickup::{PickupClient, Unlocked};
use sealpost_client::{Outgoing, crypto};
use sequoia_openpgp::policy::StandardPolicy;

static POLICY: StandardPolicy<'static> = StandardPolicy::new();
use sealpost_proto::{
    Envelope, EnvelopePart, EnvelopeResponse, Folder, KdfParams, MessageResponse, SubmitRequest,
};
use sealpost_tests::{TestNode, files_containing};
use sha2::{Digest, Sha256};

fn outgoing(to: &[&str], subject: &str, body: &str) -> Outgoing {
    Outgoing {
        to: to.iter().map(|s| s.to_string()).collect(),
        subject: subject.into(),
        body: body.into(),
        attachments: vec![],
        pickup_kdf: Some(KdfParams::MIN),
    }
}

fn code(e: sealpost_client::ClientError) -> String {
    e.code().unwrap_or("none").to_owned()
}

/// Incompressible bytes (xorshift).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A hand-made reply through `session` (bypassing the client's checks): `from` and `to` as
/// given, sealed to `to_cert` and the pickup key, signed with the pickup key.
async fn raw_reply(
    base: &str,
    u: &Unlocked,
    session: &str,
    from: &str,
    to: &str,
    to_cert: &sequoia_openpgp::Cert,
) -> (u16, String) {
    let http = reqwest::Client::new();
    let resp: EnvelopeResponse = http
        .post(format!("{base}/api/v1/pickup/envelope"))
        .bearer_auth(session)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut sealed = Vec::new();
    crypto::seal(
        &[to_cert.clone(), u.key.clone().strip_secret_key_material()],
        &u.key,
        &POLICY,
        SystemTime::now(),
        &mut &b"HIDDEN-REFUSED-REPLY"[..],
        &mut sealed,
    )
    .unwrap();
    let env = Envelope {
        v: 1,
        message_id: resp.message_id,
        from: from.into(),
        to: vec![to.into()],
        created_at: sealpost_proto::now(),
        parts: vec![EnvelopePart {
            sha256: hex::encode(Sha256::digest(&sealed)),
            size: sealed.len() as u64,
        }],
        registered: Default::default(),
        pickup: Default::default(),
        external: Default::default(),
    };
    let text = serde_json::to_string(&env).unwrap();
    let r = http
        .post(format!("{base}/api/v1/pickup/submit"))
        .bearer_auth(session)
        .json(&SubmitRequest {
            signature: crypto::sign_detached(&u.key, &POLICY, text.as_bytes()).unwrap(),
            envelope: text,
            inline_parts: [(
                0,
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &sealed),
            )]
            .into(),
            pickups: vec![],
            pickup_continuations: vec![],
            external_copies: Default::default(),
        })
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_recipients_reply_and_later_messages_stay_in_the_thread() {
    let node = TestNode::spawn_with("alpha.test", |c| {
        c.federation.enabled = false;
        c.pickup.per_ip_per_minute = 10_000;
    })
    .await
    .unwrap();
    let alice = node.person("alice").await;
    let bob = node.person("bob").await;
    let work = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let api = |p: &str| format!("{}/api/v1{p}", node.url);
    let sent = async |id: &str| -> MessageResponse {
        http.get(api(&format!("/messages/{id}")))
            .bearer_auth(alice.token())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let state_of = async |id: &str, address: &str| -> String {
        sent(id)
            .await
            .item
            .delivery
            .iter()
            .find(|d| d.address == address)
            .map(|d| d.state.clone())
            .unwrap_or_default()
    };

    // Alice writes to carol; carol unlocks and reads.
    let (first, issued) = alice
        .send_all(
            &outgoing(&["carol@outside.test"], "Statement", "FIRST-BODY-91c2"),
            work.path(),
        )
        .await
        .unwrap();
    let muc = issued[0].muc.clone().unwrap();
    let link1 = issued[0].link.clone().unwrap();
    let carol = PickupClient::new(&link1).unwrap();
    let u = carol.unlock(&muc).await.unwrap();
    assert_eq!(carol.read(&u).await.unwrap().head.body, "FIRST-BODY-91c2");
    let pickup_fpr = sent(&first.message_id).await.pickups[0].fingerprint.clone();

    // A reply to anyone but alice, or in another address's name, is refused; nothing changes.
    let snapshot = || {
        (
            node.count("SELECT count(*) FROM messages"),
            node.count("SELECT count(*) FROM mailbox"),
            node.count("SELECT count(*) FROM txlog WHERE kind = 'pickup.replied'"),
        )
    };
    let before = snapshot();
    let bob_cert = bob.unlocked_cert().clone().strip_secret_key_material();
    let alice_cert = alice.unlocked_cert().clone().strip_secret_key_material();
    let session = u.info.session.clone();
    let refused = [
        (
            "carol@outside.test",
            "bob@alpha.test",
            &bob_cert,
            (422, "reply_recipient_not_allowed"),
        ),
        // Another pickup's address (a session speaks for its own pickup only).
        (
            "dave@outside.test",
            "alice@alpha.test",
            &alice_cert,
            (403, "sender_mismatch"),
        ),
    ];
    for (from, to, cert, want) in refused {
        let (status, c) = raw_reply(&node.url, &u, &session, from, to, cert).await;
        assert_eq!((status, c.as_str()), want, "{from} → {to}");
    }
    assert_eq!(snapshot(), before);

    // Carol replies with a 1 MiB attachment.
    let attachment = noise(1024 * 1024);
    let reply_body = "REPLY-PLAINTEXT-5e8d: yes, please transfer it";
    let resp = carol
        .reply(
            &u,
            "Re: Statement",
            reply_body,
            &[("signed-form.bin".into(), attachment.clone())],
        )
        .await
        .unwrap();
    assert_eq!(resp.recipients.len(), 1);
    assert_eq!(
        (
            resp.recipients[0].address.as_str(),
            resp.recipients[0].state.as_str()
        ),
        ("alice@alpha.test", "delivered")
    );
    let inbox = alice.mailbox(Folder::Inbox).await.unwrap();
    let item = inbox
        .iter()
        .find(|i| i.message_id == resp.message_id)
        .expect("the reply is in alice's inbox");
    assert_eq!(item.from, "carol@outside.test");
    assert_eq!(item.via.as_deref(), Some("pickup"));
    let read = alice
        .read(&resp.message_id, Some(work.path()), work.path())
        .await
        .unwrap();
    assert_eq!(read.body, reply_body);
    assert_eq!(read.from, "carol@outside.test");
    assert!(read.signer_fingerprint.eq_ignore_ascii_case(&pickup_fpr));
    assert_eq!(read.attachments.len(), 1);
    let saved = std::fs::read(work.path().join("signed-form.bin")).unwrap();
    assert!(saved == attachment, "the reply's attachment differs");
    assert_eq!(
        state_of(&first.message_id, "carol@outside.test").await,
        "replied"
    );
    assert_eq!(snapshot().2, 1, "pickup.replied is logged");

    // Alice writes again: the envelope offers the thread's key, the client checks it against
    // its own copy, and no new code is made; the old code opens the new link.
    let (second, issued) = alice
        .send_all(
            &outgoing(&["carol@outside.test"], "Follow-up", "SECOND-BODY-33af"),
            work.path(),
        )
        .await
        .unwrap();
    assert_eq!(issued.len(), 1);
    assert!(issued[0].muc.is_none(), "a continued thread makes no code");
    let link2 = issued[0].link.clone().unwrap();
    assert_ne!(link1, link2);
    let carol2 = PickupClient::new(&link2).unwrap();
    let u2 = carol2.unlock(&muc).await.unwrap();
    assert_eq!(
        carol2.read(&u2).await.unwrap().head.body,
        "SECOND-BODY-33af"
    );
    assert!(
        sent(&second.message_id).await.pickups[0]
            .fingerprint
            .eq_ignore_ascii_case(&pickup_fpr)
    );

    // The thread, from the new session: both of alice's messages and the reply.
    let thread = carol2.thread(&u2.info.session).await.unwrap();
    let ids: Vec<(&str, bool)> = thread
        .messages
        .iter()
        .map(|m| (m.message_id.as_str(), m.reply))
        .collect();
    assert_eq!(
        ids,
        [
            (first.message_id.as_str(), false),
            (resp.message_id.as_str(), true),
            (second.message_id.as_str(), false),
        ]
    );
    let part = async |session: &str, id: &str| {
        http.get(api(&format!("/pickup/messages/{id}/parts/0")))
            .bearer_auth(session)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(part(&u2.info.session, &first.message_id).await, 200);
    assert_eq!(part(&u2.info.session, &resp.message_id).await, 200);
    // A message outside the thread is not reachable.
    let other = alice
        .send(
            &outgoing(&["bob@alpha.test"], "Internal", "for bob"),
            work.path(),
        )
        .await
        .unwrap();
    assert_eq!(part(&u2.info.session, &other.message_id).await, 404);

    // Five wrong codes at the new link lock the whole thread: continuation is refused with a
    // typed error until alice issues a new code, which then opens every link of the thread.
    for _ in 0..5 {
        let e = carol2
            .unlock(&sealpost_client::pickup::generate_muc())
            .await
            .err()
            .unwrap();
        assert!(["wrong_unlock_code", "pickup_locked"].contains(&code(e).as_str()));
    }
    assert_eq!(
        code(carol.unlock(&muc).await.err().unwrap()),
        "pickup_locked"
    );
    let e = alice
        .send_all(
            &outgoing(&["carol@outside.test"], "Third", "THIRD-BODY"),
            work.path(),
        )
        .await
        .err()
        .unwrap();
    assert_eq!(code(e), "pickup_thread_locked");
    let new_muc = alice
        .relock(&second.message_id, "carol@outside.test", &KdfParams::MIN)
        .await
        .unwrap();
    assert_eq!(
        code(carol.unlock(&muc).await.err().unwrap()),
        "wrong_unlock_code"
    );
    carol.unlock(&new_muc).await.unwrap();
    carol2.unlock(&new_muc).await.unwrap();

    // Withdrawn or expired: the thread is over, a continuation prepared before is refused.
    let (_, issued) = alice
        .send_all(
            &outgoing(&["erin@outside.test"], "Hi", "for erin"),
            work.path(),
        )
        .await
        .unwrap();
    assert!(issued[0].muc.is_some());
    let (w, _) = alice
        .send_all(
            &outgoing(&["erin@outside.test"], "Hi", "again"),
            work.path(),
        )
        .await
        .unwrap();
    let (env, certs) = alice.envelope(&["erin@outside.test".into()]).await.unwrap();
    assert!(env.recipients[0].pickup_thread.is_some());
    for id in [&w.message_id] {
        let r = http
            .post(api(&format!("/messages/{id}/pickups/withdraw")))
            .bearer_auth(alice.token())
            .json(&serde_json::json!({ "address": "erin@outside.test" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 204);
    }
    // The first of erin's pickups is still live: the newest live one is continued.
    let (env2, certs2) = alice.envelope(&["erin@outside.test".into()]).await.unwrap();
    assert!(env2.recipients[0].pickup_thread.is_some());
    let n = node
        .store
        .expire_pickups(sealpost::now() + 31 * 86_400)
        .await
        .unwrap()
        .0
        .len();
    assert!(n >= 2);
    for (env, certs) in [(env, certs), (env2, certs2)] {
        let e = alice
            .send_enveloped(
                &outgoing(&["erin@outside.test"], "Late", "LATE-BODY"),
                env,
                certs,
                work.path(),
            )
            .await
            .err()
            .unwrap();
        assert_eq!(code(e), "pickup_thread_gone");
    }
    // Afterwards a new message makes a new key and code.
    let (_, issued) = alice
        .send_all(&outgoing(&["erin@outside.test"], "New", "new"), work.path())
        .await
        .unwrap();
    assert!(issued[0].muc.is_some());

    // No plaintext of the reply or its attachment, and no code, in the data directory.
    let data = node.data();
    let mut needles: Vec<Vec<u8>> = vec![
        reply_body.as_bytes().to_vec(),
        b"SECOND-BODY-33af".to_vec(),
        b"HIDDEN-REFUSED-REPLY".to_vec(),
        attachment[4096..4160].to_vec(),
        muc.as_bytes().to_vec(),
        new_muc.as_bytes().to_vec(),
    ];
    needles.push(sealpost_client::pickup::display_muc(&muc).into_bytes());
    for needle in needles {
        let found = files_containing(&data, &needle);
        assert!(
            found.is_empty(),
            "{:?} found in {found:?}",
            String::from_utf8_lossy(&needle)
        );
    }
}
