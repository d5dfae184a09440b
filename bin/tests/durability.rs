//! Nothing acknowledged is lost: a client submits 2,000 messages while the node process is
//! killed with SIGKILL at a random moment and restarted; afterwards every message the node
//! acknowledged is in the recipient's mailbox exactly once.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use common::*;
use rand::Rng;
use sealpost_client::{Client, Session};

const TOTAL: usize = 2000;
const IN_FLIGHT: usize = 16;

async fn login(url: &str, ca: &str) -> Session {
    Client::new(url)
        .login("alice@a.test", b"alice password", None, Some(ca))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_a_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let (node, url) = init_and_serve(&data);
    let ca = enrol(&data, &url, "alice@a.test", "alice password").await;
    enrol(&data, &url, "bob@a.test", "bob password").await;

    let kill_after = rand::thread_rng().gen_range(200..1500);
    println!("killing the node after {kill_after} acknowledgements");
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let pending: Arc<Pending> = Arc::default();
    let failed: Arc<Mutex<Vec<usize>>> = Arc::default();

    // Phase 1: submit with IN_FLIGHT workers until the node dies under them.
    let session = Arc::new(login(&url, &ca).await);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (s, next, acked, pending, failed) = (
            session.clone(),
            next.clone(),
            acked.clone(),
            pending.clone(),
            failed.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n >= TOTAL {
                    return;
                }
                match send_one(&s, "bob@a.test", &pending, n).await {
                    Ok(id) => acked.lock().unwrap().push(id),
                    Err(()) => failed.lock().unwrap().push(n),
                }
            }
        }));
    }
    // Generous: a busy CI machine runs debug builds slowly; the test still stops by itself.
    wait_for(std::time::Duration::from_secs(600), async || {
        (acked.lock().unwrap().len() >= kill_after).then_some(())
    })
    .await
    .expect("submissions too slow");
    node.kill9();
    for w in workers {
        w.await.unwrap();
    }
    let acked_before_kill = acked.lock().unwrap().len();
    let unacked = failed.lock().unwrap().clone();
    assert!(!unacked.is_empty(), "the kill interrupted submissions");
    println!(
        "{acked_before_kill} acknowledged before the kill, {} to retry",
        unacked.len()
    );

    // Phase 2: restart on the same data directory; the client retries what was not
    // acknowledged (some of it may have been stored just before the kill: the node must
    // recognise the retry, not store it twice).
    let (node, url) = serve(&data);
    let s = login(&url, &ca).await;
    for n in unacked {
        let id = send_one(&s, "bob@a.test", &pending, n)
            .await
            .expect("retry after restart");
        acked.lock().unwrap().push(id);
    }
    assert!(pending.lock().unwrap().is_empty());
    drop(node);

    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), TOTAL);
    let unique: HashSet<&String> = acked.iter().collect();
    assert_eq!(
        unique.len(),
        TOTAL,
        "each message acknowledged under one ID"
    );
    let db = rusqlite::Connection::open(data.join("sealpost.db")).unwrap();
    let mut stmt = db
        .prepare(
            "SELECT message_id, COUNT(*) FROM mailbox
             WHERE account_id = (SELECT id FROM accounts WHERE address = 'bob@a.test') AND folder = 'inbox'
             GROUP BY message_id",
        )
        .unwrap();
    let inbox: HashMap<String, i64> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for id in &acked {
        assert_eq!(
            inbox.get(id),
            Some(&1),
            "acknowledged message {id} is in bob's inbox exactly once"
        );
    }
    assert_eq!(
        inbox.len(),
        TOTAL,
        "nothing unacknowledged or duplicated besides"
    );
    let out = ok(
        &["admin", "--data", data.to_str().unwrap(), "log", "verify"],
        &[],
    );
    assert!(out.contains("log ok"), "{out}");
}
