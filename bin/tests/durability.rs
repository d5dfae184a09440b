//! Nothing acknowledged is lost: a client submits 2,000 messages while the node process is
//! killed with SIGKILL at a random moment and restarted; afterwards every message the node
//! acknowledged is in the recipient's mailbox exactly once.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use common::*;
use rand::Rng;
use sealpost_client::{Client, Session};
use sealpost_proto::KdfParams;
use sealpost_proto::SubmitRequest;

const TOTAL: usize = 2000;
const IN_FLIGHT: usize = 16;
const FAST_KDF: KdfParams = KdfParams::MIN;

async fn login(url: &str, ca: &str) -> Session {
    Client::new(url)
        .login("alice@a.test", b"alice password", None, Some(ca))
        .await
        .unwrap()
}

/// Requests an envelope, seals and submits one message. `Ok(id)` only when the node
/// acknowledged it; the sealed request is kept so that it can be retried.
async fn send_one(
    s: &Session,
    pending: &Mutex<HashMap<usize, SubmitRequest>>,
    n: usize,
) -> Result<String, ()> {
    let retry = pending.lock().unwrap().get(&n).cloned();
    let request = match retry {
        Some(r) => r,
        None => {
            let (env, certs) = s.envelope(&["bob@a.test".into()]).await.map_err(|_| ())?;
            let sealed = s
                .seal_text(&env, &certs, &format!("message {n}"), "body")
                .map_err(|_| ())?;
            pending.lock().unwrap().insert(n, sealed.request.clone());
            sealed.request
        }
    };
    let resp = s.submit(&request).await.map_err(|_| ())?;
    pending.lock().unwrap().remove(&n);
    Ok(resp.message_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_a_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let (node, url) = init_and_serve(&data);
    let ca = {
        let mut ca = String::new();
        for (user, pw) in [("alice", "alice password"), ("bob", "bob password")] {
            let invite = add_user(&data, &format!("{user}@a.test"));
            ca = Client::new(&url)
                .enroll(
                    &invite,
                    &format!("{user}@a.test"),
                    None,
                    pw.as_bytes(),
                    FAST_KDF,
                )
                .await
                .unwrap()
                .ca_fingerprint;
        }
        ca
    };

    let kill_after = rand::thread_rng().gen_range(200..1500);
    println!("killing the node after {kill_after} acknowledgements");
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let pending: Arc<Mutex<HashMap<usize, SubmitRequest>>> = Arc::default();
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
                match send_one(&s, &pending, n).await {
                    Ok(id) => acked.lock().unwrap().push(id),
                    Err(()) => failed.lock().unwrap().push(n),
                }
            }
        }));
    }
    // Generous: a busy CI machine runs debug builds slowly; the test still stops by itself.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while acked.lock().unwrap().len() < kill_after {
        assert!(std::time::Instant::now() < deadline, "submissions too slow");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
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
    let (node, url) = Proc::serve(&data);
    let s = login(&url, &ca).await;
    for n in unacked {
        let id = send_one(&s, &pending, n)
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
