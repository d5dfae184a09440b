//! The driver over real QUIC on 127.0.0.1 (port 0), two or three drivers against each other,
//! each with an in-memory host (`support::TestHost`).

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::AsyncWriteExt as _;
use libp2p::identity::Keypair;
use sealpost_federation::net::{NetError, wire};
use sealpost_federation::{Batch, Frame, Limits, Lookup, MessageId, PeerState};
use support::{Node, TestHost, config, eventually, pair, transfer};

const WAIT: Duration = Duration::from_secs(10);

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn a_20_mib_part_arrives_intact_with_a_verifiable_receipt() {
    let (a, b) = pair(config(), config()).await;
    let head = b"sealed head".to_vec();
    let big = pseudo_random(20 << 20, 1);
    a.host.queue(b.id(), "m-big", &[&head, &big]);
    a.handle.wake(&b.id());

    eventually("receipt at alpha", Duration::from_secs(30), || {
        a.host.delivered_count() == 1
    })
    .await;
    let stored = b.host.stored_parts.lock().unwrap();
    assert!(stored[&support::sha(&big)] == big, "bytes differ");
    assert_eq!(stored[&support::sha(&head)], head);
    drop(stored);
    let (_, receipt, proof) = a.host.delivered.lock().unwrap()[0].clone();
    assert!(proof.is_none(), "a streamed transfer is answered alone");
    let b_key = wire::ed25519_key_of(&b.id()).unwrap();
    assert!(wire::verify_receipt(&b_key, &receipt));
    assert_eq!(receipt.accepted, vec!["bob@beta.test".to_string()]);
    assert_eq!(a.host.outbox_len(), 0);
    assert_eq!(b.host.messages.lock().unwrap()[&"m-big".into()], 1);
}

#[tokio::test]
async fn a_part_sent_inline_is_stored_without_being_asked_for() {
    let (a, b) = pair(config(), config()).await;
    let head = b"sealed head".to_vec();
    let big = pseudo_random(1 << 20, 2);
    let mut t = support::transfer("m-inline", &[&head, &big]);
    t.parts[0].data = Some(head.clone());
    // Alpha holds only the big part: asking for the head would make it reject the transfer.
    a.host.queue_transfer(b.id(), t, &[&big]);
    a.handle.wake(&b.id());

    eventually("receipt at alpha", WAIT, || a.host.delivered_count() == 1).await;
    let stored = b.host.stored_parts.lock().unwrap();
    assert_eq!(stored[&support::sha(&head)], head);
    assert!(stored[&support::sha(&big)] == big, "bytes differ");
    drop(stored);
    assert!(a.host.rejected.lock().unwrap().is_empty());
    assert_eq!(b.host.messages.lock().unwrap()[&"m-inline".into()], 1);
}

#[tokio::test]
async fn an_inline_part_that_does_not_match_its_hash_is_not_stored() {
    let (a, b) = pair(config(), config()).await;
    let head = b"sealed head".to_vec();
    let mut t = support::transfer("m-forged", &[&head]);
    t.parts[0].data = Some(b"sealed heaD".to_vec());
    a.host.queue_transfer(b.id(), t, &[]);
    a.handle.wake(&b.id());

    eventually("alpha told of the refusal", WAIT, || {
        !a.host.rejected.lock().unwrap().is_empty()
    })
    .await;
    assert!(b.host.stored_parts.lock().unwrap().is_empty());
    assert!(b.host.messages.lock().unwrap().is_empty());
    assert_eq!(a.host.delivered_count(), 0);
}

#[tokio::test]
async fn an_unauthorised_peer_gets_not_authorised_and_the_host_is_never_called() {
    let b = Node::start("beta.test", config(), vec![]).await;
    // Mallory has beta as a peer, but beta has no peering with mallory.
    let m = Node::start("mallory.test", config(), vec![b.as_peer()]).await;
    m.host.queue(b.id(), "m-1", &[b"head"]);
    m.handle.wake(&b.id());

    eventually("mallory backs off with not_authorised", WAIT, || {
        m.handle.status().iter().any(|s| {
            s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("not_authorised"))
                && s.retry_at.is_some()
        })
    })
    .await;
    let err = m.handle.lookup(&b.id(), "bob@beta.test").await.unwrap_err();
    assert!(
        matches!(&err, NetError::Remote { code, .. } if code == "not_authorised"),
        "{err:?}"
    );
    assert_eq!(b.host.inbound_calls(), 0);
    assert_eq!(m.host.delivered_count(), 0);
    assert!(
        m.host
            .states
            .lock()
            .unwrap()
            .iter()
            .any(|(_, s)| matches!(s, PeerState::BackingOff { .. }))
    );
}

#[tokio::test]
async fn a_bad_or_missing_node_signature_is_refused() {
    let (a, b) = pair(config(), config()).await;
    let lim = Limits::default();
    let t5 = Duration::from_secs(5);
    let mut s = a.handle.open_stream(&b.id()).await.unwrap();

    let mut forged = transfer("m-forged", &[b"head"]);
    wire::sign_transfer(&Keypair::generate_ed25519(), &mut forged);
    let unsigned = transfer("m-unsigned", &[b"head"]);
    let mut tampered = transfer("m-tampered", &[b"head"]);
    wire::sign_transfer(&a.keypair, &mut tampered);
    tampered.envelope.push(' ');

    for t in [forged, unsigned, tampered] {
        wire::write_frame(&mut s, &Frame::Transfer(t), t5)
            .await
            .unwrap();
        match wire::read_frame(&mut s, &lim, t5, t5).await.unwrap() {
            Frame::Error(e) => assert_eq!(e.code, "bad_signature"),
            other => panic!("expected an error, got {other:?}"),
        }
    }
    // The same stream still serves a correctly signed transfer.
    let mut good = transfer("m-good", &[b"head"]);
    wire::sign_transfer(&a.keypair, &mut good);
    wire::write_frame(&mut s, &Frame::Transfer(good), t5)
        .await
        .unwrap();
    assert!(matches!(
        wire::read_frame(&mut s, &lim, t5, t5).await.unwrap(),
        Frame::Want(_)
    ));
    assert_eq!(b.host.admits.load(Ordering::SeqCst), 1);
}

/// A transfer with every part inline, queued at `host` for `to`.
fn queue_inline(host: &TestHost, to: libp2p::PeerId, id: &str, head: &[u8]) {
    let mut t = transfer(id, &[head]);
    t.parts[0].data = Some(head.to_vec());
    host.queue_transfer(to, t, &[]);
}

#[tokio::test]
async fn inline_transfers_travel_as_one_batch_and_each_receipt_proves_itself() {
    let mut a_cfg = config();
    a_cfg.max_batch_transfers = 32;
    let (a, b) = pair(a_cfg, config()).await;
    for i in 0..20 {
        queue_inline(
            &a.host,
            b.id(),
            &format!("m-{i:02}"),
            format!("head {i}").as_bytes(),
        );
    }
    a.handle.wake(&b.id());
    eventually("all 20 delivered", WAIT, || a.host.delivered_count() == 20).await;

    let status = a.handle.status();
    let sent = status.iter().find(|s| s.peer_id == b.id()).unwrap();
    assert_eq!(sent.batches_sent, 1, "one batch for a backlog of 20");
    assert!(sent.batching);
    let messages = b.host.messages.lock().unwrap();
    assert_eq!(messages.len(), 20);
    assert!(messages.values().all(|n| *n == 1));
    drop(messages);

    // Each receipt, with its proof and the one batch signature, is evidence on its own.
    let b_key = wire::ed25519_key_of(&b.id()).unwrap();
    let delivered = a.host.delivered.lock().unwrap().clone();
    let mut indices = std::collections::BTreeSet::new();
    for (_, receipt, proof) in &delivered {
        let proof = proof
            .as_ref()
            .expect("a batched receipt comes with its proof");
        assert_eq!(proof.size, 20);
        indices.insert(proof.index);
        let digest = proof.signed_digest_of_receipt(receipt).expect("proof fits");
        assert!(b_key.verify(&digest, &receipt.node_sig));
        // Not a single-receipt signature: the receipt alone does not verify.
        assert!(!wire::verify_receipt(&b_key, receipt));
        let mut forged = receipt.clone();
        forged.accepted = vec!["eve@beta.test".into()];
        assert_eq!(proof.signed_digest_of_receipt(&forged), None);
        let mut moved = proof.clone();
        moved.index = (moved.index + 1) % 20;
        assert_eq!(moved.signed_digest_of_receipt(receipt), None);
    }
    assert_eq!(
        indices.len(),
        20,
        "every receipt has its own place in the tree"
    );
}

#[tokio::test]
async fn a_backlog_is_split_into_batches_of_at_most_max_batch_transfers() {
    let mut a_cfg = config();
    a_cfg.max_batch_transfers = 4;
    let (a, b) = pair(a_cfg, config()).await;
    for i in 0..10 {
        queue_inline(
            &a.host,
            b.id(),
            &format!("m-{i:02}"),
            format!("head {i}").as_bytes(),
        );
    }
    a.handle.wake(&b.id());
    eventually("all 10 delivered", WAIT, || a.host.delivered_count() == 10).await;
    let delivered = a.host.delivered.lock().unwrap().clone();
    let sizes: Vec<u64> = delivered
        .iter()
        .map(|(_, _, p)| p.as_ref().unwrap().size)
        .collect();
    assert!(sizes.iter().all(|n| *n <= 4), "{sizes:?}");
    let sent = a.handle.status()[0].batches_sent;
    assert!((3..=10).contains(&sent), "{sent} batches");
    assert_eq!(b.host.messages.lock().unwrap().len(), 10);
}

#[tokio::test]
async fn a_batch_with_a_bad_signature_or_shape_is_refused_and_nothing_is_stored() {
    let (a, b) = pair(config(), config()).await;
    let lim = Limits::default();
    let t5 = Duration::from_secs(5);
    let inline = |id: &str| {
        let mut t = transfer(id, &[b"head"]);
        t.parts[0].data = Some(b"head".to_vec());
        t
    };
    let mut forged = Batch {
        transfers: vec![inline("m-1"), inline("m-2")],
        node_sig: Vec::new(),
    };
    wire::sign_batch(&Keypair::generate_ed25519(), &mut forged);
    let mut tampered = Batch {
        transfers: vec![inline("m-1"), inline("m-2")],
        node_sig: Vec::new(),
    };
    wire::sign_batch(&a.keypair, &mut tampered);
    tampered.transfers[1].envelope.push(' ');
    let unsigned = Batch {
        transfers: vec![inline("m-1")],
        node_sig: Vec::new(),
    };
    let mut s = a.handle.open_stream(&b.id()).await.unwrap();
    for batch in [forged, tampered, unsigned] {
        wire::write_frame(&mut s, &Frame::Batch(batch), t5)
            .await
            .unwrap();
        match wire::read_frame(&mut s, &lim, t5, t5).await.unwrap() {
            Frame::Error(e) => assert_eq!(e.code, "bad_signature"),
            other => panic!("expected an error, got {other:?}"),
        }
    }
    // A batched transfer must carry its parts inline: refused as malformed, stream closed.
    let mut streamed = Batch {
        transfers: vec![transfer("m-3", &[b"head"])],
        node_sig: Vec::new(),
    };
    wire::sign_batch(&a.keypair, &mut streamed);
    wire::write_frame(&mut s, &Frame::Batch(streamed), t5)
        .await
        .unwrap();
    match wire::read_frame(&mut s, &lim, t5, t5).await.unwrap() {
        Frame::Error(e) => assert_eq!(e.code, "malformed"),
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(b.host.admits.load(Ordering::SeqCst), 0);
    assert_eq!(b.host.commits.load(Ordering::SeqCst), 0);
    assert!(b.host.messages.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_replayed_transfer_is_answered_without_storing_again() {
    let (a, b) = pair(config(), config()).await;
    let t = a.host.queue(b.id(), "m-replay", &[b"head", b"attachment"]);
    a.handle.wake(&b.id());
    eventually("first delivery", WAIT, || a.host.delivered_count() == 1).await;
    assert_eq!(b.host.stores.load(Ordering::SeqCst), 2);

    // The same transfer again (a lost receipt, or a replay).
    a.host.queue_transfer(b.id(), t, &[b"head", b"attachment"]);
    a.handle.wake(&b.id());
    eventually("second receipt", WAIT, || a.host.delivered_count() == 2).await;
    assert_eq!(
        b.host.stores.load(Ordering::SeqCst),
        2,
        "parts stored again"
    );
    assert_eq!(b.host.commits.load(Ordering::SeqCst), 1);
    assert_eq!(b.host.admits.load(Ordering::SeqCst), 2);
    assert_eq!(b.host.messages.lock().unwrap()[&"m-replay".into()], 1);
}

#[tokio::test]
async fn a_part_larger_than_max_part_bytes_is_refused() {
    let mut b_cfg = config();
    b_cfg.max_part_bytes = 1024;
    let (a, b) = pair(config(), b_cfg).await;
    a.host.queue(b.id(), "m-huge", &[b"head", &[7u8; 2048]]);
    a.host.queue(b.id(), "m-fine", &[b"head", &[8u8; 1024]]);
    a.handle.wake(&b.id());

    eventually("refusal reported", WAIT, || {
        a.host
            .rejected
            .lock()
            .unwrap()
            .iter()
            .any(|(id, code)| id.as_str() == "m-huge" && code == "too_large")
    })
    .await;
    // A refused transfer does not hold up the next one.
    eventually("the other one delivered", WAIT, || {
        a.host.delivered_count() == 1
    })
    .await;
    assert_eq!(b.host.admits.load(Ordering::SeqCst), 1);
    assert!(
        !b.host
            .messages
            .lock()
            .unwrap()
            .contains_key(&"m-huge".into())
    );
}

#[tokio::test]
async fn lookup_round_trip_and_typed_errors() {
    let (a, b) = pair(config(), config()).await;
    b.host
        .directory
        .lock()
        .unwrap()
        .insert("bob@beta.test".into(), vec!["CERT-BOB".into()]);
    let answer = a.handle.lookup(&b.id(), "bob@beta.test").await.unwrap();
    assert_eq!(answer.certs, vec!["CERT-BOB".to_string()]);
    let none = a.handle.lookup(&b.id(), "nobody@beta.test").await.unwrap();
    assert!(none.certs.is_empty());

    // Not a peer: refused at once.
    let stranger = Keypair::generate_ed25519().public().to_peer_id();
    assert!(matches!(
        a.handle.lookup(&stranger, "x@y.test").await,
        Err(NetError::UnknownPeer(_))
    ));

    // A peer whose address swallows packets: a timeout, as a typed error.
    let hole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = hole.local_addr().unwrap().port();
    let mut cfg = config();
    cfg.request_timeout = Duration::from_millis(800);
    let dead_id = Keypair::generate_ed25519().public().to_peer_id();
    let c = Node::start(
        "gamma.test",
        cfg,
        vec![sealpost_federation::Peer {
            peer_id: dead_id,
            addrs: vec![
                format!("/ip4/127.0.0.1/udp/{port}/quic-v1")
                    .parse()
                    .unwrap(),
            ],
            domain: "dead.test".into(),
        }],
    )
    .await;
    let started = std::time::Instant::now();
    let err = c.handle.lookup(&dead_id, "x@dead.test").await.unwrap_err();
    assert!(
        matches!(err, NetError::Timeout | NetError::Unreachable(_)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn org_record_round_trip_and_unknown_peer() {
    let (a, b) = pair(config(), config()).await;
    let record = a.handle.org_record(&b.id()).await.unwrap();
    assert_eq!(record, r#"{"domain":"test"}"#);
    assert_eq!(b.host.lookups.load(std::sync::atomic::Ordering::SeqCst), 1);
    let stranger = Keypair::generate_ed25519().public().to_peer_id();
    assert!(matches!(
        a.handle.org_record(&stranger).await,
        Err(NetError::UnknownPeer(p)) if p == stranger
    ));
}

#[tokio::test]
async fn changed_makes_the_peer_pull_and_apply() {
    let (a, b) = pair(config(), config()).await;
    b.host.my_certs.lock().unwrap().push("CERT-1".into());
    // Alpha pulls on connection, which may have happened before CERT-1 existed: announce it
    // too, so that alpha has it either way.
    a.handle.lookup(&b.id(), "x@beta.test").await.unwrap();
    b.handle.certs_changed(1);
    eventually("initial pull", WAIT, || {
        a.host
            .applied
            .lock()
            .unwrap()
            .contains(&"CERT-1".to_string())
    })
    .await;

    b.host.my_certs.lock().unwrap().push("REVOCATION-2".into());
    b.handle.certs_changed(2);
    eventually(
        "alpha applied the revocation",
        Duration::from_secs(2),
        || {
            a.host
                .applied
                .lock()
                .unwrap()
                .contains(&"REVOCATION-2".to_string())
        },
    )
    .await;
    assert_eq!(a.host.pull_cursors.lock().unwrap()[&b.id()], 2);
    assert_eq!(
        a.host
            .applied
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == "CERT-1")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_peer_that_comes_back_gets_its_backlog_promptly() {
    // Alpha's backoff is long: prompt delivery after beta's restart proves the immediate
    // retry on connection, not the backoff timer.
    let mut a_cfg = config();
    a_cfg.initial_backoff = Duration::from_secs(30);
    a_cfg.max_backoff = Duration::from_secs(60);
    a_cfg.request_timeout = Duration::from_secs(2);
    let (a, b) = pair(a_cfg, config()).await;
    a.host.queue(b.id(), "m-0", &[b"head 0"]);
    a.handle.wake(&b.id());
    eventually("warm-up delivery", WAIT, || a.host.delivered_count() == 1).await;

    let b_addr = b.addrs()[0].clone();
    let (b_key, b_host) = (b.keypair.clone(), b.host.clone());
    b.handle.shutdown().await;
    drop(b);

    for i in 1..=5 {
        a.host.queue(
            b_key.public().to_peer_id(),
            &format!("m-{i}"),
            &[format!("head {i}").as_bytes()],
        );
    }
    a.handle.wake(&b_key.public().to_peer_id());
    eventually("alpha backs off", WAIT, || {
        a.handle
            .status()
            .iter()
            .any(|s| s.retry_at.is_some() && s.last_error.is_some())
    })
    .await;
    assert_eq!(a.host.delivered_count(), 1);

    // Beta restarts on the same address with the same identity and storage.
    let mut b_cfg = config();
    b_cfg.listen = vec![b_addr];
    let peers = b_host.peers.lock().unwrap().clone();
    let restart = tokio::time::Instant::now();
    let b = loop {
        b_host.set_peers(peers.clone());
        match sealpost_federation::net::start(b_cfg.clone(), b_key.clone(), b_host.clone()).await {
            Ok(handle) => break handle,
            Err(e) if restart.elapsed() < WAIT => {
                eprintln!("restart: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("beta cannot restart: {e}"),
        }
    };
    eventually("backlog delivered", Duration::from_secs(5), || {
        a.host.delivered_count() == 6
    })
    .await;
    assert_eq!(b_host.messages.lock().unwrap().len(), 6);
    assert!(b_host.messages.lock().unwrap().values().all(|n| *n == 1));
    eventually("alpha's status clears", WAIT, || {
        a.handle
            .status()
            .iter()
            .all(|s| s.retry_at.is_none() && s.last_error.is_none() && s.connected)
    })
    .await;
    b.shutdown().await;
}

/// Transfers sent one after another, each in a send pass of its own, go over the stream the
/// first pass opened: a pass leaves its streams open for the next one.
#[tokio::test]
async fn later_send_passes_reuse_the_open_stream() {
    let (a, b) = pair(config(), config()).await;
    for i in 1..=3 {
        a.host
            .queue(b.id(), &format!("m-{i}"), &[format!("head {i}").as_bytes()]);
        a.handle.wake(&b.id());
        eventually("delivery", WAIT, || a.host.delivered_count() == i).await;
        // The pass has ended once its stream is back among the kept ones (a wake before
        // that would start a pass that finds none and opens another).
        eventually("the pass ends", WAIT, || {
            a.handle
                .status()
                .iter()
                .all(|s| s.in_flight == 0 && s.idle_streams == 1)
        })
        .await;
    }
    let status = a.handle.status();
    assert_eq!(status.len(), 1);
    // Three passes, at least one of the later two on a kept stream. Not exactly one: a kept
    // stream that fails before any answer (the peer's end went away meanwhile) is replaced by
    // a fresh one, as it must be, and on a loaded 2-core CI machine that happened about once
    // in twelve runs of this file.
    assert!(status[0].streams_opened <= 2, "{status:?}");
    assert_eq!(b.host.messages.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_transfer_queued_during_an_exchange_does_not_wait_for_it_to_end() {
    let (a, b) = pair(config(), config()).await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    *a.host.delivery_gate.lock().unwrap() = Some(gate.clone());
    let stored = |id: &str| {
        b.host
            .messages
            .lock()
            .unwrap()
            .contains_key(&MessageId::new(id))
    };
    a.host.queue(b.id(), "m-1", &[b"first"]);
    a.handle.wake(&b.id());
    eventually("the first stored at the peer", WAIT, || stored("m-1")).await;
    // The first exchange now waits for its delivery record; the second goes meanwhile.
    a.host.queue(b.id(), "m-2", &[b"second"]);
    a.handle.wake(&b.id());
    eventually("the second stored at the peer", WAIT, || stored("m-2")).await;
    assert_eq!(a.host.delivered_count(), 0, "no delivery was recorded yet");
    gate.add_permits(2);
    eventually("both delivered", WAIT, || a.host.delivered_count() == 2).await;
    assert_eq!(a.host.outbox_len(), 0);
    assert!(b.host.messages.lock().unwrap().values().all(|n| *n == 1));
}

#[tokio::test]
async fn two_hundred_queued_transfers_are_delivered_exactly_once() {
    let (a, b) = pair(config(), config()).await;
    for i in 0..200 {
        let head = format!("head of message {i}");
        a.host
            .queue(b.id(), &format!("m-{i:03}"), &[head.as_bytes()]);
    }
    a.handle.wake(&b.id());
    eventually("all 200 delivered", Duration::from_secs(30), || {
        a.host.delivered_count() == 200
    })
    .await;
    let delivered = a.host.delivered.lock().unwrap();
    let ids: std::collections::HashSet<_> = delivered
        .iter()
        .map(|(_, r, _)| r.message_id.clone())
        .collect();
    assert_eq!(ids.len(), 200);
    drop(delivered);
    let messages = b.host.messages.lock().unwrap();
    assert_eq!(messages.len(), 200);
    assert!(messages.values().all(|n| *n == 1));
    assert_eq!(b.host.commits.load(Ordering::SeqCst), 200);
    assert_eq!(a.host.outbox_len(), 0);
}

#[tokio::test]
async fn a_frame_over_the_limit_is_refused_without_reading_it() {
    let mut b_cfg = config();
    b_cfg.limits.max_frame_bytes = 64 << 10;
    let (a, b) = pair(config(), b_cfg).await;
    let t5 = Duration::from_secs(5);
    let mut s = a.handle.open_stream(&b.id()).await.unwrap();
    // Announce a frame just over the limit, and send none of it: the answer comes at once, so
    // beta neither waited for the body nor allocated it.
    s.write_all(&((64u32 << 10) + 1).to_be_bytes())
        .await
        .unwrap();
    s.flush().await.unwrap();
    match wire::read_frame(&mut s, &Limits::default(), t5, t5)
        .await
        .unwrap()
    {
        Frame::Error(e) => assert_eq!(e.code, "too_large"),
        other => panic!("expected too_large, got {other:?}"),
    }
    // And the peer closed the stream (out of step).
    assert!(matches!(
        wire::read_frame(&mut s, &Limits::default(), t5, t5).await,
        Err(wire::ReadError::Closed | wire::ReadError::Io(_))
    ));

    // A frame within the limit on a new stream is served.
    let mut s = a.handle.open_stream(&b.id()).await.unwrap();
    let req = Frame::Lookup(Lookup {
        address: "bob@beta.test".into(),
    });
    wire::write_frame(&mut s, &req, t5).await.unwrap();
    assert!(matches!(
        wire::read_frame(&mut s, &Limits::default(), t5, t5)
            .await
            .unwrap(),
        Frame::LookupAnswer(_)
    ));
    assert_eq!(b.host.lookups.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn status_reports_peers_and_connection_state() {
    let (a, b) = pair(config(), config()).await;
    a.handle.lookup(&b.id(), "x@beta.test").await.unwrap();
    let st = a.handle.status();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].peer_id, b.id());
    assert_eq!(st[0].domain, "beta.test");
    eventually("connected reported to the host", WAIT, || {
        a.host
            .states
            .lock()
            .unwrap()
            .iter()
            .any(|(p, s)| *p == b.id() && *s == PeerState::Connected)
    })
    .await;
    assert!(a.handle.status()[0].connected);
    assert_eq!(a.handle.listen_addrs().len(), 1);
    assert!(!a.handle.listen_addrs()[0].to_string().contains("/udp/0/"));

    // Removing the peer drops it from the table and refuses its streams afterwards.
    b.host.set_peers(vec![]);
    b.handle.peers_changed();
    eventually("beta forgot alpha", WAIT, || b.handle.status().is_empty()).await;
    let before = b.host.inbound_calls();
    let err = a.handle.lookup(&b.id(), "x@beta.test").await.unwrap_err();
    assert!(
        matches!(&err, NetError::Remote { code, .. } if code == "not_authorised"),
        "{err:?}"
    );
    assert_eq!(b.host.inbound_calls(), before);
    let _ = TestHost::new();
}

#[tokio::test]
async fn a_peer_killed_without_goodbye_gets_its_backlog_promptly_after_restart() {
    // Beta runs on a runtime of its own, which is then dropped on the spot: no connection is
    // closed politely, so alpha holds a stale connection until its QUIC idle timeout (15 s).
    let mut a_cfg = config();
    a_cfg.initial_backoff = Duration::from_secs(30);
    a_cfg.max_backoff = Duration::from_secs(60);
    a_cfg.request_timeout = Duration::from_secs(2);
    let b_key = Keypair::generate_ed25519();
    let b_host = TestHost::new();
    let (rt, b_handle) = {
        let (key, host) = (b_key.clone(), b_host.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let node = rt.block_on(Node::start_with("beta.test", config(), vec![], key, host));
            (rt, node.handle)
        })
        .join()
        .unwrap()
    };
    let b_id = b_handle.peer_id();
    let b_addr = b_handle.listen_addrs()[0].clone();
    let a = Node::start(
        "alpha.test",
        a_cfg,
        vec![sealpost_federation::Peer {
            peer_id: b_id,
            addrs: vec![b_addr.clone()],
            domain: "beta.test".into(),
        }],
    )
    .await;
    b_host.set_peers(vec![a.as_peer()]);
    b_handle.peers_changed();
    eventually("beta knows alpha", WAIT, || b_handle.status().len() == 1).await;
    a.host.queue(b_id, "m-0", &[b"head 0"]);
    a.handle.wake(&b_id);
    eventually("warm-up delivery", WAIT, || a.host.delivered_count() == 1).await;

    rt.shutdown_background();
    drop(b_handle);
    for i in 1..=5 {
        a.host
            .queue(b_id, &format!("m-{i}"), &[format!("head {i}").as_bytes()]);
    }
    a.handle.wake(&b_id);
    eventually("alpha backs off", WAIT, || {
        a.handle.status().iter().any(|s| s.retry_at.is_some())
    })
    .await;

    let mut b_cfg = config();
    b_cfg.listen = vec![b_addr];
    let restart = tokio::time::Instant::now();
    let b = loop {
        match sealpost_federation::net::start(b_cfg.clone(), b_key.clone(), b_host.clone()).await {
            Ok(handle) => break handle,
            Err(e) if restart.elapsed() < WAIT => {
                eprintln!("restart: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("beta cannot restart: {e}"),
        }
    };
    eventually("backlog delivered", Duration::from_secs(5), || {
        a.host.delivered_count() == 6
    })
    .await;
    assert!(b_host.messages.lock().unwrap().values().all(|n| *n == 1));
    b.shutdown().await;
}
