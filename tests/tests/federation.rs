//! Federation between real nodes on loopback: peering through the admin command, a message
//! with a 20 MiB attachment across organisations, the bridge in the trust path, delivery after
//! an outage, impersonation and replay refused, and revocation spreading.

use std::time::Duration;

use sealpost_client::Outgoing;
use sealpost_federation::net::wire;
use sealpost_federation::{BatchProof, MessageId, Receipt, Refusal};
use sealpost_proto::Folder;
use sealpost_proto::KdfParams;
use sealpost_tests::{TestNode, federation_refusal, inbox_ids, peered, wait_for};
use sha2::{Digest, Sha256};

/// The tests here measure deadlines (10 s after a restart, 2 s for a revocation); run them one
/// at a time so that they measure federation, not each other's CPU use on a 2-core machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn note(to: &str, subject: &str) -> Outgoing {
    Outgoing {
        to: vec![to.to_owned()],
        subject: subject.into(),
        body: format!("body of {subject}"),
        attachments: vec![],
        pickup_kdf: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cross_organisation_message_with_20_mib_attachment_and_bridge_in_the_path() {
    let _serial = SERIAL.lock().await;
    let (alpha, beta) = peered("alpha.test", "beta.test").await;
    let alice = alpha.person("alice").await;
    let bob = beta.person("bob").await;
    let work = tempfile::tempdir().unwrap();
    let attachment = work.path().join("scan.bin");
    let bytes: Vec<u8> = (0..20u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&attachment, &bytes).unwrap();

    // Alice's view of bob: through her CA, the bridge, and beta's CA.
    let t = alice.trust("bob@beta.test").await.unwrap();
    assert_eq!(t.keys[0].level, "full", "{:?}", t.keys[0]);

    let sent = alice
        .send(
            &Outgoing {
                attachments: vec![attachment.clone()],
                ..note("bob@beta.test", "Across the bridge")
            },
            work.path(),
        )
        .await
        .unwrap();
    assert_eq!(sent.recipients[0].state, "queued");

    let id = sent.message_id.clone();
    wait_for(Duration::from_secs(60), async || {
        inbox_ids(&bob).await.contains(&id).then_some(())
    })
    .await
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let m = bob.read(&id, Some(out.path()), work.path()).await.unwrap();
    assert_eq!(m.verified_sender, "alice@alpha.test");
    assert_eq!(m.subject, "Across the bridge");
    let trust = m.sender_trust.expect("a verdict on the sender");
    assert_eq!(trust.level, "full");
    let saved = std::fs::read(out.path().join("scan.bin")).unwrap();
    assert_eq!(Sha256::digest(&saved), Sha256::digest(&bytes));
    // The part file alpha streamed is a committed message's now: collecting expired uploads
    // and abandoned peer parts at beta leaves it.
    assert_eq!(beta.count("SELECT COUNT(*) FROM peer_parts"), 0);
    let beta_blobs = sealpost::storage::FsBlobStore::open(&beta.data().join("blobs")).unwrap();
    let removed = sealpost::node::expire_uploads(&*beta.store, &beta_blobs, sealpost::now() + 1)
        .await
        .unwrap();
    assert_eq!(removed, 0);

    // Bob's path to alice names the bridge from his CA to alpha's CA.
    let t = bob.trust("alice@alpha.test").await.unwrap();
    let path = t.keys[0].explanation.join("\n");
    assert!(path.contains("bridge"), "{path}");
    assert!(path.contains("alpha.test"), "{path}");

    // Alice sees the delivery confirmed by beta's node.
    wait_for(Duration::from_secs(10), async || {
        let sent = alice.mailbox(Folder::Sent).await.unwrap();
        let item = sent.into_iter().find(|i| i.message_id == id)?;
        (item.delivery.first()?.state == "delivered").then_some(())
    })
    .await
    .unwrap();
    // The delivery receipt, signed by beta's node, is in alpha's log.
    assert_eq!(
        alpha.count("SELECT COUNT(*) FROM txlog WHERE kind = 'federation.delivered'"),
        1
    );
    // Its attachment was streamed, so the receipt was signed alone.
    assert_eq!(delivery_evidence(&alpha, &id), 1);
    // The ciphertext at beta is the ciphertext alice's client made: no plaintext anywhere.
    assert!(sealpost_tests::files_containing(&beta.data(), b"Across the bridge").is_empty());
    // Admins see the peer connected: the link that carried the message (also after the
    // simultaneous dials of a fresh peering, where one of two connections is closed).
    use sealpost::storage::FederationStore;
    let peers = alpha.store.peers().await.unwrap();
    assert_eq!(peers[0].domain, "beta.test");
    wait_for(Duration::from_secs(5), async || {
        let peers = alpha.store.peers().await.unwrap();
        (peers[0].state == "connected").then_some(())
    })
    .await
    .expect("alpha shows beta connected");

    // Removing the peer revokes the bridge: bob is no longer authenticated at alpha.
    alpha.admin(&["peer", "remove", "beta.test"]).await.unwrap();
    let t = alice.trust("bob@beta.test").await.unwrap();
    assert_ne!(t.keys[0].level, "full", "{:?}", t.keys[0]);
    // beta.test is an outside domain now: bob is reached by pickup (a key made for him and an
    // unlock code), never again through beta's node.
    let sent = alice
        .send(&note("bob@beta.test", "after removal"), work.path())
        .await
        .unwrap();
    assert_eq!(sent.recipients.len(), 1);
    assert_eq!(sent.recipients[0].address, "bob@beta.test");
    assert_eq!(sent.recipients[0].state, "pickup", "{sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_200_messages_arrive_exactly_once_after_restart() {
    let _serial = SERIAL.lock().await;
    let (alpha, mut beta) = peered("alpha.test", "beta.test").await;
    let alice = alpha.person("alice").await;
    beta.user("bob@beta.test", "bob password!!", KdfParams::MIN)
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    // One message first: alpha learns bob's key while beta is up.
    alice
        .send(&note("bob@beta.test", "before"), work.path())
        .await
        .unwrap();
    // Generous: only the delivery after the restart below is what this test times.
    wait_for(Duration::from_secs(60), async || {
        (beta.count("SELECT COUNT(*) FROM mailbox WHERE folder = 'inbox'") == 1).then_some(())
    })
    .await
    .unwrap();
    // And alpha has beta's receipt: its outbox row is gone before beta stops.
    wait_for(Duration::from_secs(20), async || {
        (alpha.count("SELECT COUNT(*) FROM outbox") == 0).then_some(())
    })
    .await
    .unwrap();

    beta.stop().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..200 {
        let r = alice
            .send(&note("bob@beta.test", &format!("during {i}")), work.path())
            .await
            .unwrap();
        assert_eq!(r.recipients[0].state, "queued");
        ids.push(r.message_id);
    }
    assert_eq!(alpha.count("SELECT COUNT(*) FROM outbox"), 200);

    beta.start().await.unwrap();
    let restarted = tokio::time::Instant::now();
    wait_for(Duration::from_secs(10), async || {
        (beta.count("SELECT COUNT(*) FROM mailbox WHERE folder = 'inbox'") == 201).then_some(())
    })
    .await
    .unwrap();
    eprintln!(
        "200 messages delivered {:?} after the restart",
        restarted.elapsed()
    );
    let db = beta.db();
    for id in &ids {
        let n: i64 = db
            .query_row(
                "SELECT COUNT(*) FROM mailbox m JOIN accounts a ON a.id = m.account_id
                 WHERE a.address = 'bob@beta.test' AND m.message_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "{id}");
    }
    wait_for(Duration::from_secs(10), async || {
        (alpha.count("SELECT COUNT(*) FROM outbox") == 0).then_some(())
    })
    .await
    .unwrap();
    // The backlog went in batches, and each message's evidence stands on its own.
    let batch_sizes: Vec<u64> = ids.iter().map(|id| delivery_evidence(&alpha, id)).collect();
    assert!(batch_sizes.iter().any(|n| *n > 1), "{batch_sizes:?}");
}

/// Checks the delivery evidence the sending node logged for `id` (the receipt, its peer's node
/// signature and, for a batched receipt, the proof that the signature covers it) against the
/// peer's node key, and returns the size of the batch it was signed in (1 for a lone receipt).
fn delivery_evidence(node: &TestNode, id: &str) -> u64 {
    let db = node.db();
    let detail: String = db
        .query_row(
            "SELECT detail FROM txlog WHERE kind = 'federation.delivered' AND subject = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&detail).unwrap();
    let peer_id: String = db
        .query_row(
            "SELECT peer_id FROM peers WHERE peer_id = ?1",
            [v["node"].as_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    let key = wire::ed25519_key_of(&peer_id.parse().unwrap()).unwrap();
    let strings = |x: &serde_json::Value| -> Vec<String> {
        x.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    let receipt = Receipt {
        message_id: MessageId::new(id),
        accepted: strings(&v["accepted"]),
        refused: v["refused"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| Refusal {
                address: r[0].as_str().unwrap().to_owned(),
                reason: r[1].as_str().unwrap().to_owned(),
            })
            .collect(),
        node_sig: hex::decode(v["node_sig"].as_str().unwrap()).unwrap(),
    };
    let (digest, size) = match v.get("batch") {
        Some(b) => {
            let proof: BatchProof = serde_json::from_value(b.clone()).unwrap();
            let digest = proof
                .signed_digest_of_receipt(&receipt)
                .expect("proof fits");
            (digest, proof.size)
        }
        None => (receipt.signing_digest(), 1),
    };
    assert!(key.verify(&digest, &receipt.node_sig), "evidence of {id}");
    let mut forged = receipt;
    forged.accepted.push("eve@beta.test".into());
    assert!(
        v.get("batch").is_none_or(|b| {
            let proof: BatchProof = serde_json::from_value(b.clone()).unwrap();
            proof.signed_digest_of_receipt(&forged).is_none()
        }) && !key.verify(&forged.signing_digest(), &forged.node_sig),
        "a changed receipt must not verify"
    );
    size
}

/// A message as stored: sender, envelope, signature, and its parts (hash, size, inline data).
type Stored = (String, String, String, Vec<(Vec<u8>, i64, Option<Vec<u8>>)>);

fn stored(from: &TestNode, id: &str) -> Stored {
    let src = from.db();
    let (sender, envelope, signature): (String, String, String) = src
        .query_row(
            "SELECT sender, envelope, signature FROM messages WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let parts: Vec<(Vec<u8>, i64, Option<Vec<u8>>)> = src
        .prepare(
            "SELECT p.sha256, p.size, coalesce(p.data, b.data) FROM parts p
             LEFT JOIN blobs b ON b.sha256 = p.sha256 WHERE p.message_id = ?1 ORDER BY p.idx",
        )
        .unwrap()
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    (sender, envelope, signature, parts)
}

/// Puts a copy of a stored message (under `new_id`) into `node`'s outbox for `domain`, as a
/// node that misbehaves or replays would, and restarts it so its driver picks the entry up.
async fn requeue(node: &mut TestNode, message: &Stored, id: &str, new_id: &str, domain: &str) {
    let (sender, envelope, signature, parts) = message.clone();
    let copy = (sender, envelope.replace(id, new_id), signature, parts);
    requeue_all(node, &[(new_id.to_owned(), copy)], domain).await;
}

/// Puts messages (each under its ID, its envelope as given) into `node`'s outbox for
/// `domain`, and restarts it once so its driver picks them up.
async fn requeue_all(node: &mut TestNode, messages: &[(String, Stored)], domain: &str) {
    node.stop().await.unwrap();
    {
        let db = rusqlite::Connection::open(node.data().join("sealpost.db")).unwrap();
        for (new_id, (sender, envelope, signature, parts)) in messages {
            db.execute(
                "INSERT OR IGNORE INTO messages (id, sender, recipients, envelope, signature, size, parts, accepted_at)
                 VALUES (?1, ?2, '[]', ?3, ?4, 0, ?5, 0)",
                rusqlite::params![new_id, sender, envelope, signature, parts.len() as i64],
            )
            .unwrap();
            for (i, (sha, size, data)) in parts.iter().enumerate() {
                // Small parts live in their part row; the test's messages have no files.
                assert!(data.is_some(), "a part stored as a file");
                db.execute(
                    "INSERT OR IGNORE INTO parts (message_id, idx, sha256, size, data)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![new_id, i as i64, sha, size, data],
                )
                .unwrap();
            }
            db.execute(
                "INSERT INTO outbox (message_id, domain, recipients, queued_at, expires_at)
                 VALUES (?1, ?2, '[\"bob@beta.test\"]', 0, 9999999999)",
                rusqlite::params![new_id, domain],
            )
            .unwrap();
        }
    }
    node.start().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn impersonation_bad_signature_and_replay_are_refused() {
    let _serial = SERIAL.lock().await;
    let (mut alpha, beta) = peered("alpha.test", "beta.test").await;
    let mut gamma = TestNode::spawn("gamma.test").await.unwrap();
    beta.peer_with(&gamma).await.unwrap();
    gamma.peer_with(&beta).await.unwrap();
    let alice = alpha.person("alice").await;
    let bob = beta.person("bob").await;
    let work = tempfile::tempdir().unwrap();
    let sent = alice
        .send(&note("bob@beta.test", "genuine"), work.path())
        .await
        .unwrap();
    let id = sent.message_id;
    wait_for(Duration::from_secs(20), async || {
        inbox_ids(&bob).await.contains(&id).then_some(())
    })
    .await
    .unwrap();
    let in_inbox = || beta.count("SELECT COUNT(*) FROM mailbox WHERE folder = 'inbox'");
    assert_eq!(in_inbox(), 1);

    // gamma's node, peered for gamma.test only, forwards alice's message as if it were hers.
    let forged = sealpost_proto::new_message_id();
    requeue(&mut gamma, &stored(&alpha, &id), &id, &forged, "beta.test").await;
    let reason = wait_for(Duration::from_secs(20), async || {
        federation_refusal(&gamma, &forged)
    })
    .await
    .unwrap();
    assert!(
        reason.contains("may not send for alice@alpha.test"),
        "{reason}"
    );
    assert_eq!(
        beta.count("SELECT COUNT(*) FROM txlog WHERE kind = 'federation.refused'"),
        1,
        "the refusal is in beta's log"
    );

    // alpha sends an envelope whose signature is not over it (the ID was changed).
    let tampered = sealpost_proto::new_message_id();
    let genuine = stored(&alpha, &id);
    requeue(&mut alpha, &genuine, &id, &tampered, "beta.test").await;
    let reason = wait_for(Duration::from_secs(20), async || {
        federation_refusal(&alpha, &tampered)
    })
    .await
    .unwrap();
    assert!(reason.contains("signature"), "{reason}");

    // alpha replays the genuine transfer: answered as delivered, stored once.
    requeue(&mut alpha, &genuine, &id, &id, "beta.test").await;
    wait_for(Duration::from_secs(20), async || {
        (alpha.count("SELECT COUNT(*) FROM outbox") == 0).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(in_inbox(), 1, "no duplicate, no forgery in bob's inbox");
    assert_eq!(inbox_ids(&bob).await, vec![id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocation_at_beta_reaches_alpha_within_two_seconds() {
    let _serial = SERIAL.lock().await;
    let (alpha, beta) = peered("alpha.test", "beta.test").await;
    let alice = alpha.person("alice").await;
    let bob = beta.person("bob").await;
    let to = vec!["bob@beta.test".to_owned()];
    // Alpha resolves bob through beta's directory (and is told of later changes).
    let (env, _) = alice.envelope(&to).await.unwrap();
    assert_eq!(env.recipients[0].verdict.level, "full");

    bob.revoke_key("key compromised").await.unwrap();
    let revoked_at = tokio::time::Instant::now();
    let why = wait_for(Duration::from_secs(2), async || {
        match alice.envelope(&to).await {
            Err(sealpost_client::ClientError::Untrusted { verdict, .. }) => verdict.why_not,
            _ => None,
        }
    })
    .await
    .unwrap();
    assert_eq!(why, "revoked");
    eprintln!("revocation seen at alpha after {:?}", revoked_at.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_that_is_down_cannot_make_the_outbox_grow_without_bound() {
    let _serial = SERIAL.lock().await;
    let alpha = TestNode::spawn_with("alpha.test", |c| c.federation.max_backlog_per_peer = 3)
        .await
        .unwrap();
    let mut beta = TestNode::spawn("beta.test").await.unwrap();
    alpha.peer_with(&beta).await.unwrap();
    beta.peer_with(&alpha).await.unwrap();
    let alice = alpha.person("alice").await;
    beta.user("bob@beta.test", "bob password!!", KdfParams::MIN)
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    // Alpha learns bob's key while beta is up.
    alice.trust("bob@beta.test").await.unwrap();
    beta.stop().await.unwrap();
    for i in 0..3 {
        alice
            .send(&note("bob@beta.test", &format!("m{i}")), work.path())
            .await
            .unwrap();
    }
    let e = alice
        .send(&note("bob@beta.test", "one too many"), work.path())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("peer_backlog"), "{e}");
    assert!(e.to_string().contains("beta.test"), "{e}");
    assert_eq!(alpha.count("SELECT COUNT(*) FROM outbox"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_undeliverable_message_expires_and_the_sender_is_told() {
    let _serial = SERIAL.lock().await;
    let alpha = TestNode::spawn_with("alpha.test", |c| {
        c.federation.delivery_expiry_secs = 1;
        c.federation.sweep_interval_secs = 1;
    })
    .await
    .unwrap();
    let mut beta = TestNode::spawn("beta.test").await.unwrap();
    alpha.peer_with(&beta).await.unwrap();
    beta.peer_with(&alpha).await.unwrap();
    let alice = alpha.person("alice").await;
    beta.user("bob@beta.test", "bob password!!", KdfParams::MIN)
        .await
        .unwrap();
    alice.trust("bob@beta.test").await.unwrap();
    beta.stop().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let id = alice
        .send(&note("bob@beta.test", "into the void"), work.path())
        .await
        .unwrap()
        .message_id;

    let notice = wait_for(Duration::from_secs(15), async || {
        let inbox = alice.mailbox_with_notices(Folder::Inbox).await.unwrap();
        inbox
            .notices
            .into_iter()
            .find(|n| n.message_id.as_deref() == Some(id.as_str()))
    })
    .await
    .unwrap();
    assert!(
        notice.text.contains("bob@beta.test")
            && notice.text.contains("beta.test could not be reached"),
        "{}",
        notice.text
    );
    let sent = alice.mailbox(Folder::Sent).await.unwrap();
    let item = sent.iter().find(|i| i.message_id == id).unwrap();
    assert_eq!(item.delivery[0].state, "failed");
    assert!(
        item.delivery[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("beta.test")
    );
    assert_eq!(alpha.count("SELECT COUNT(*) FROM outbox"), 0);
    assert_eq!(
        alpha.count("SELECT COUNT(*) FROM txlog WHERE kind = 'federation.expired'"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peering_by_peer_id_and_ca_fingerprint_bridges_when_the_ca_arrives() {
    let _serial = SERIAL.lock().await;
    let alpha = TestNode::spawn("alpha.test").await.unwrap();
    let beta = TestNode::spawn("beta.test").await.unwrap();
    let org = beta.client().org().await.unwrap();
    // The admin typed what beta's admin read out: peer ID, address, CA fingerprint (grouped).
    let grouped: Vec<String> = org
        .ca_fingerprint
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    alpha
        .admin(&[
            "peer",
            "add",
            "beta.test",
            "--peer-id",
            &org.peer_id,
            "--addr",
            &org.federation_addrs[0],
            "--ca",
            &grouped.join(" "),
        ])
        .await
        .unwrap();
    beta.peer_with(&alpha).await.unwrap();
    let alice = alpha.person("alice").await;
    beta.user("bob@beta.test", "bob password!!", KdfParams::MIN)
        .await
        .unwrap();
    let verdict = wait_for(Duration::from_secs(10), async || {
        let t = alice.trust("bob@beta.test").await.ok()?;
        (t.keys.first()?.level == "full").then(|| t.keys[0].explanation.join("\n"))
    })
    .await
    .unwrap();
    assert!(verdict.contains("bridge"), "{verdict}");

    // A wrong CA fingerprint is never bridged: the peer's users stay unauthenticated.
    let gamma = TestNode::spawn("gamma.test").await.unwrap();
    let g = gamma.client().org().await.unwrap();
    alpha
        .admin(&[
            "peer",
            "add",
            "gamma.test",
            "--peer-id",
            &g.peer_id,
            "--addr",
            &g.federation_addrs[0],
            "--ca",
            &org.ca_fingerprint,
        ])
        .await
        .unwrap();
    gamma.peer_with(&alpha).await.unwrap();
    gamma
        .user("carol@gamma.test", "carol password", KdfParams::MIN)
        .await
        .unwrap();
    let t = alice.trust("carol@gamma.test").await.unwrap();
    assert_eq!(t.keys[0].level, "none", "{:?}", t.keys[0]);
}

/// What a node holds of messages: rows of messages, parts, mailboxes and outbox.
fn holdings(node: &TestNode) -> [i64; 4] {
    ["messages", "parts", "mailbox", "outbox"]
        .map(|t| node.count(&format!("SELECT COUNT(*) FROM {t}")))
}

/// How the peer's node answered a transfer of `id`, as the sending node logged it: the
/// refusals in its signed receipt, or its error frame.
fn answer(node: &TestNode, id: &str) -> Option<String> {
    node.db()
        .query_row(
            "SELECT detail FROM txlog WHERE kind IN ('federation.delivered', 'federation.rejected')
             AND subject = ?1",
            [id],
            |r| r.get(0),
        )
        .ok()
}

/// HTTP submission and federation receive both go through `service::mail::accept`: the same
/// malformed message is refused with the same code through both doors, and a refused message
/// leaves nothing stored (only a peer's refused transfer is logged, as evidence).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_malformed_message_is_refused_with_the_same_code_through_both_doors() {
    use base64::Engine;
    use sealpost_client::crypto;
    use sequoia_openpgp::policy::StandardPolicy;

    let _serial = SERIAL.lock().await;
    let (mut alpha, beta) = peered("alpha.test", "beta.test").await;
    let alice = alpha.person("alice").await;
    let bob = beta.person("bob").await;
    let work = tempfile::tempdir().unwrap();
    let id = alice
        .send(&note("bob@beta.test", "genuine"), work.path())
        .await
        .unwrap()
        .message_id;
    wait_for(Duration::from_secs(20), async || {
        inbox_ids(&bob).await.contains(&id).then_some(())
    })
    .await
    .unwrap();
    // Bob can read it before alpha has the receipt: wait until alpha's outbox is empty too,
    // so that the counts compared below move only by what the refusals would store.
    wait_for(Duration::from_secs(20), async || {
        (alpha.count("SELECT COUNT(*) FROM outbox") == 0).then_some(())
    })
    .await
    .unwrap();
    let (sender, envelope, signature, parts) = stored(&alpha, &id);
    let policy = StandardPolicy::new();
    let sign = |text: &str| {
        crypto::sign_detached(alice.unlocked_cert(), &policy, text.as_bytes()).unwrap()
    };
    // The genuine envelope under a new message ID, edited.
    let edited = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_str(&envelope).unwrap();
        v["message_id"] = sealpost_proto::new_message_id().into();
        edit(&mut v);
        v.to_string()
    };
    // A head sealed to alice alone: bob's key is missing.
    let mut to_alice_only = Vec::new();
    crypto::seal(
        &[alice.unlocked_cert().clone()],
        alice.unlocked_cert(),
        &policy,
        std::time::SystemTime::now(),
        &mut &b"a head bob cannot read"[..],
        &mut to_alice_only,
    )
    .unwrap();
    let sealed_part = (
        Sha256::digest(&to_alice_only).to_vec(),
        to_alice_only.len() as i64,
        Some(to_alice_only.clone()),
    );
    let unsealed = edited(&|v| {
        v["parts"] = serde_json::json!([{
            "sha256": hex::encode(Sha256::digest(&to_alice_only)),
            "size": to_alice_only.len(),
        }])
    });
    let too_many: Vec<String> = (0..101).map(|i| format!("r{i}@beta.test")).collect();
    let unknown = edited(&|v| v["to"] = serde_json::json!(["nobody@beta.test"]));

    // (code, envelope, signature, parts)
    type Case = (
        &'static str,
        String,
        String,
        Vec<(Vec<u8>, i64, Option<Vec<u8>>)>,
    );
    let cases: Vec<Case> = vec![
        ("invalid_envelope", edited(&|v| v["v"] = 2.into())),
        (
            "invalid_envelope",
            edited(&|v| v["to"] = serde_json::json!(["Bob@beta.test"])),
        ),
        (
            "no_recipients",
            edited(&|v| v["to"] = serde_json::json!([])),
        ),
        (
            "invalid_address",
            edited(&|v| v["to"] = serde_json::json!(["bob"])),
        ),
        (
            "too_many_recipients",
            edited(&|v| v["to"] = serde_json::json!(too_many)),
        ),
        (
            "too_large",
            edited(&|v| v["parts"][0]["size"] = (u64::MAX / 2 + 1).into()),
        ),
        // Signed by alice, but not this text.
        (
            "bad_envelope_signature",
            edited(&|v| v["created_at"] = 1.into()),
        ),
    ]
    .into_iter()
    .map(|(code, text)| (code, text, signature.clone(), parts.clone()))
    .chain([
        (
            "unknown_recipient",
            unknown.clone(),
            sign(&unknown),
            parts.clone(),
        ),
        (
            "missing_recipient_key",
            unsealed.clone(),
            sign(&unsealed),
            vec![sealed_part],
        ),
    ])
    .collect();

    // Through HTTP, by the sender at her own node: refused, nothing stored.
    let before = holdings(&alpha);
    for (code, text, signature, parts) in &cases {
        let inline: std::collections::BTreeMap<u32, String> = parts
            .iter()
            .enumerate()
            .map(|(i, (_, _, data))| {
                let data = data.as_deref().unwrap();
                (
                    i as u32,
                    base64::engine::general_purpose::STANDARD.encode(data),
                )
            })
            .collect();
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/messages", alpha.url))
            .bearer_auth(alice.token())
            .json(&serde_json::json!({
                "envelope": text, "signature": signature, "inline_parts": inline,
            }))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], *code, "HTTP: {body}");
    }
    assert_eq!(holdings(&alpha), before, "HTTP refusals stored nothing");

    // Through federation: alpha's node hands the same messages to beta's, in one pass.
    let before = holdings(&beta);
    let queued: Vec<(String, Stored)> = cases
        .iter()
        .map(|(_, text, signature, parts)| {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            let id = v["message_id"].as_str().unwrap().to_owned();
            let message = (
                sender.clone(),
                text.clone(),
                signature.clone(),
                parts.clone(),
            );
            (id, message)
        })
        .collect();
    requeue_all(&mut alpha, &queued, "beta.test").await;
    for ((code, ..), (id, _)) in cases.iter().zip(&queued) {
        let answer = wait_for(Duration::from_secs(20), async || answer(&alpha, id))
            .await
            .unwrap();
        assert!(
            answer.contains(&format!("{code}: ")),
            "federation, {code}: {answer}"
        );
    }
    assert_eq!(
        holdings(&beta),
        before,
        "federation refusals stored nothing"
    );
    assert_eq!(inbox_ids(&bob).await, vec![id]);
}
