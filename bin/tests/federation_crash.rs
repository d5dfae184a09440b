//! Federated delivery survives crashes: alice at alpha.test sends 1,000 messages to bob at
//! beta.test while both node processes are killed with SIGKILL and restarted at random moments
//! (at least six kills in all). Afterwards every message alpha acknowledged is in bob's
//! mailbox at beta exactly once, and alpha's outbox is empty.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rand::Rng;
use sealpost_client::{Client, Session};
use sealpost_proto::KdfParams;
use sealpost_proto::SubmitRequest;
use tokio::sync::RwLock;

const TOTAL: usize = 1000;
const IN_FLIGHT: usize = 8;
const KILLS: usize = 6;
const FAST_KDF: KdfParams = KdfParams::MIN;

fn init(data: &Path, domain: &str) {
    ok(
        &[
            "init",
            "--data",
            data.to_str().unwrap(),
            "--domain",
            domain,
            "--http",
            "127.0.0.1:0",
        ],
        &[],
    );
}

fn peer(data: &Path, domain: &str, url: &str) {
    ok(
        &[
            "admin",
            "--data",
            data.to_str().unwrap(),
            "peer",
            "add",
            domain,
            "--from",
            url,
            "--yes",
        ],
        &[],
    );
}

async fn enrol(data: &Path, url: &str, address: &str, password: &str) -> String {
    let invite = add_user(data, address);
    Client::new(url)
        .enroll(&invite, address, None, password.as_bytes(), FAST_KDF)
        .await
        .unwrap()
        .ca_fingerprint
}

/// Alice's session at alpha, replaced whenever alpha restarts (None while it is down).
type Current = Arc<RwLock<Option<Arc<Session>>>>;

async fn login(url: &str, ca: &str) -> Arc<Session> {
    Arc::new(
        Client::new(url)
            .login("alice@alpha.test", b"alice password", None, Some(ca))
            .await
            .unwrap(),
    )
}

/// Seals (once) and submits message `n`. `Ok(id)` only when alpha acknowledged it.
async fn send_one(
    s: &Session,
    sealed: &Mutex<HashMap<usize, SubmitRequest>>,
    n: usize,
) -> Result<String, ()> {
    let retry = sealed.lock().unwrap().get(&n).cloned();
    let request = match retry {
        Some(r) => r,
        None => {
            let (env, certs) = s
                .envelope(&["bob@beta.test".into()])
                .await
                .map_err(|_| ())?;
            let r = s
                .seal_text(&env, &certs, &format!("message {n}"), "body")
                .map_err(|_| ())?
                .request;
            sealed.lock().unwrap().insert(n, r.clone());
            r
        }
    };
    let resp = s.submit(&request).await.map_err(|_| ())?;
    sealed.lock().unwrap().remove(&n);
    Ok(resp.message_id)
}

fn inbox_counts(beta: &Path) -> HashMap<String, i64> {
    let db = rusqlite::Connection::open_with_flags(
        beta.join("sealpost.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = db
        .prepare(
            "SELECT message_id, COUNT(*) FROM mailbox
             WHERE account_id = (SELECT id FROM accounts WHERE address = 'bob@beta.test')
                 AND folder = 'inbox'
             GROUP BY message_id",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federated_delivery_survives_sigkills_of_both_nodes_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let alpha: PathBuf = dir.path().join("alpha");
    let beta: PathBuf = dir.path().join("beta");
    init(&alpha, "alpha.test");
    init(&beta, "beta.test");
    let (a_proc, a_url) = Proc::serve(&alpha);
    let (b_proc, b_url) = Proc::serve(&beta);
    peer(&alpha, "beta.test", &b_url);
    peer(&beta, "alpha.test", &a_url);
    let ca = enrol(&alpha, &a_url, "alice@alpha.test", "alice password").await;
    enrol(&beta, &b_url, "bob@beta.test", "bob password").await;

    let current: Current = Arc::new(RwLock::new(Some(login(&a_url, &ca).await)));
    // One message first, so alpha holds bob's key before the first crash.
    let sealed: Arc<Mutex<HashMap<usize, SubmitRequest>>> = Arc::default();
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let first = {
        let s = current.read().await.clone().unwrap();
        send_one(&s, &sealed, 0).await.unwrap()
    };
    acked.lock().unwrap().push(first);

    let queue: Arc<Mutex<Vec<usize>>> = Arc::new(Mutex::new((1..TOTAL).rev().collect()));
    let mut workers = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (current, sealed, acked, queue) = (
            current.clone(),
            sealed.clone(),
            acked.clone(),
            queue.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let Some(n) = queue.lock().unwrap().pop() else {
                    return;
                };
                let session = current.read().await.clone();
                let result = match session {
                    Some(s) => send_one(&s, &sealed, n).await,
                    None => Err(()),
                };
                match result {
                    Ok(id) => acked.lock().unwrap().push(id),
                    Err(()) => {
                        // Alpha is down (or just died): retry this one later.
                        queue.lock().unwrap().insert(0, n);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }));
    }

    // Kill a random node at random moments while messages flow, and restart it.
    let mut procs = [Some(a_proc), Some(b_proc)];
    let datas = [alpha.clone(), beta.clone()];
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let mut kills = 0;
    while kills < KILLS || !queue.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "too slow");
        let pause = rand::thread_rng().gen_range(200..1200);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if kills >= KILLS {
            continue;
        }
        let which = rand::thread_rng().gen_range(0..2);
        if which == 0 {
            *current.write().await = None;
        }
        procs[which].take().unwrap().kill9();
        kills += 1;
        println!(
            "killed {} after {} acknowledgements",
            ["alpha", "beta"][which],
            acked.lock().unwrap().len()
        );
        let (p, url) = Proc::serve(&datas[which]);
        procs[which] = Some(p);
        if which == 0 {
            *current.write().await = Some(login(&url, &ca).await);
        }
    }
    for w in workers {
        w.await.unwrap();
    }
    assert!(sealed.lock().unwrap().is_empty());
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), TOTAL);
    let unique: HashSet<&String> = acked.iter().collect();
    assert_eq!(
        unique.len(),
        TOTAL,
        "each message acknowledged under one ID"
    );

    // Everything acknowledged arrives at beta, exactly once.
    let end = std::time::Instant::now() + Duration::from_secs(120);
    let inbox = loop {
        let inbox = inbox_counts(&beta);
        if acked.iter().all(|id| inbox.contains_key(id)) {
            break inbox;
        }
        assert!(
            std::time::Instant::now() < end,
            "{} of {TOTAL} delivered",
            acked.iter().filter(|id| inbox.contains_key(*id)).count()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for id in &acked {
        assert_eq!(
            inbox.get(id),
            Some(&1),
            "{id} is in bob's inbox exactly once"
        );
    }
    assert_eq!(inbox.len(), TOTAL, "nothing else in bob's inbox");
    // Alpha has every receipt: nothing left to send.
    let end = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left: i64 = rusqlite::Connection::open_with_flags(
            alpha.join("sealpost.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap()
        .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))
        .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "{left} still queued at alpha"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for d in [&alpha, &beta] {
        let out = ok(
            &["admin", "--data", d.to_str().unwrap(), "log", "verify"],
            &[],
        );
        assert!(out.contains("log ok"), "{out}");
    }
}
