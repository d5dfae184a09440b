//! RFC 3161 time-stamps over the transaction log's checkpoints (docs/evidence.md,
//! "Time-stamps"), against a real TSA (`openssl ts -reply` behind HTTP on loopback): the node
//! stamps its newest checkpoint, stores a token that `openssl ts -verify` accepts for the
//! checkpoint's digest, and stores nothing when the TSA answers garbage or a token for another
//! digest, going on and stamping the next checkpoint instead.

use std::time::Duration;

use sealpost::config::TimestampingConfig;
use sealpost::storage::{LogEvent, LogStore};
use sealpost::timestamp::checkpoint_imprint;
use sealpost_tests::tsa::{Tsa, TsaMode};
use sealpost_tests::{TestNode, wait_for};

fn config(tsa: &Tsa) -> TimestampingConfig {
    TimestampingConfig {
        url: tsa.url(),
        ca_file: tsa.ca_file().to_str().unwrap().to_owned(),
        timeout_secs: 10,
    }
}

/// The stored stamps as (seq, token, hex SHA-256 of the checkpoint's message).
fn stamps(node: &TestNode) -> Vec<(u64, Vec<u8>, String)> {
    let db = node.db();
    let mut stmt = db
        .prepare(
            "SELECT c.seq, c.hash, c.at, t.token FROM checkpoint_timestamps t
             JOIN checkpoints c ON c.seq = t.seq ORDER BY c.seq",
        )
        .unwrap();
    stmt.query_map([], |r| {
        let seq = r.get::<_, i64>(0)? as u64;
        let hash: Vec<u8> = r.get(1)?;
        let digest = checkpoint_imprint(seq, &hash.try_into().unwrap(), r.get(2)?);
        Ok((seq, r.get(3)?, hex::encode(digest)))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpoint_timer_stamps_and_openssl_verifies_the_token() {
    let tsa = Tsa::start().await.unwrap();
    let cfg = config(&tsa);
    let node = TestNode::spawn_with("a.test", |c| {
        c.timestamping = Some(cfg);
        c.log.checkpoint_interval_secs = 1;
    })
    .await
    .unwrap();
    node.store
        .log(vec![LogEvent::new("test", "t", "s")], sealpost::now())
        .await
        .unwrap();
    let (seq, token, digest) = wait_for(Duration::from_secs(20), async || {
        stamps(&node).into_iter().next()
    })
    .await
    .unwrap();
    let newest: i64 = node.count("SELECT MAX(seq) FROM checkpoints");
    assert!(seq as i64 <= newest && seq >= 1);
    // A standard tool accepts the stored token for the checkpoint's digest...
    let out = tsa.verify_token(&token, &digest).unwrap();
    assert!(out.contains("Verification: OK"), "{out}");
    // ...and not for another one.
    let other = hex::encode([0u8; 32]);
    assert!(tsa.verify_token(&token, &other).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_or_a_token_for_another_digest_stores_nothing_and_the_next_checkpoint_is_stamped() {
    let tsa = Tsa::start().await.unwrap();
    let cfg = config(&tsa);
    let c2 = cfg.clone();
    // The timer stays out of the way: the test drives the stamping step itself.
    let node = TestNode::spawn_with("a.test", |c| {
        c.timestamping = Some(c2);
        c.log.checkpoint_interval_secs = 3600;
    })
    .await
    .unwrap();
    let driver = sealpost::node::Tsa::new(&cfg).unwrap();
    let checkpoint = async |n: &str| {
        let now = sealpost::now();
        node.store
            .log(vec![LogEvent::new("test", "t", n)], now)
            .await
            .unwrap();
        node.store.checkpoint(now).await.unwrap();
    };

    checkpoint("one").await;
    tsa.set_mode(TsaMode::Garbage);
    let e = sealpost::node::stamp_checkpoint(&*node.store, &driver, sealpost::now())
        .await
        .unwrap_err();
    assert!(
        format!("{e:#}").contains("not an RFC 3161 response"),
        "{e:#}"
    );
    assert_eq!(node.count("SELECT COUNT(*) FROM checkpoint_timestamps"), 0);

    tsa.set_mode(TsaMode::OtherDigest);
    let e = sealpost::node::stamp_checkpoint(&*node.store, &driver, sealpost::now())
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("another digest"), "{e:#}");
    assert_eq!(node.count("SELECT COUNT(*) FROM checkpoint_timestamps"), 0);
    assert_eq!(tsa.served(), 2);

    // The node goes on: the next checkpoint is stamped, and the stamp covers the earlier
    // entries through the hash chain.
    checkpoint("two").await;
    tsa.set_mode(TsaMode::Genuine);
    let seq = sealpost::node::stamp_checkpoint(&*node.store, &driver, sealpost::now())
        .await
        .unwrap()
        .expect("a checkpoint to stamp");
    let newest: i64 = node.count("SELECT MAX(seq) FROM checkpoints");
    assert_eq!(seq as i64, newest);
    let s = stamps(&node);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].0, seq);
    let out = tsa.verify_token(&s[0].1, &s[0].2).unwrap();
    assert!(out.contains("Verification: OK"), "{out}");
    // Nothing new to stamp: no request.
    let none = sealpost::node::stamp_checkpoint(&*node.store, &driver, sealpost::now())
        .await
        .unwrap();
    assert_eq!(none, None);
    assert_eq!(tsa.served(), 3);
}
