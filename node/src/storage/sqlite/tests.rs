//! Tests of the SQLite store as a whole: migrations against old data, parts in their rows,
//! and the read cache following every change.

use ed25519_dalek::SigningKey;
use rusqlite::{Connection, params};

use super::read_cache::{self, POLL as READ_CACHE_POLL};
use super::rows::{drop_message_if_unreferenced, insert_part};
use super::schema::{MIGRATIONS, open_connection};
use super::{SqliteStore, WriterSettings};
use crate::storage::{Account, AccountState, AccountStore, CertStore, MailStore, PartData};

fn rows(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

pub(super) fn settings() -> WriterSettings {
    WriterSettings {
        group_commit_max: 16,
        group_commit_window: std::time::Duration::ZERO,
        write_queue: 16,
        checkpoint_every: 1000,
        metrics: None,
    }
}

/// A database written at schema 4 (small parts in blobs) reads the same after migration 5
/// moves new small parts into their part rows, and deleting its message still frees the
/// old blobs.
#[tokio::test]
async fn parts_stored_before_migration_5_stay_readable_and_collectable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealpost.db");
    let (inline_sha, file_sha) = ([1u8; 32], [2u8; 32]);
    {
        let conn = open_connection(&path).unwrap();
        for (i, sql) in MIGRATIONS[..4].iter().enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", (i + 1) as i64)
                .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO messages (id, sender, recipients, envelope, signature, size, parts, accepted_at)
             VALUES ('m1', 'a@x.test', '[]', '{}', 'sig', 7, 2, 0);",
        )
        .unwrap();
        for (sha, data) in [(inline_sha, Some(&b"ciphert"[..])), (file_sha, None)] {
            conn.execute(
                "INSERT INTO blobs (sha256, size, data) VALUES (?1, 7, ?2)",
                params![&sha[..], data],
            )
            .unwrap();
        }
        for (idx, sha) in [inline_sha, file_sha].iter().enumerate() {
            conn.execute(
                "INSERT INTO parts (message_id, idx, sha256, size) VALUES ('m1', ?1, ?2, 7)",
                params![idx as i64, &sha[..]],
            )
            .unwrap();
        }
    }

    let key = SigningKey::from_bytes(&[7; 32]);
    let store = SqliteStore::open(&path, key, settings()).unwrap();
    assert!(matches!(
        store.part("m1", 0).await.unwrap(),
        Some(PartData::Inline(d)) if d == b"ciphert"
    ));
    assert!(matches!(
        store.part("m1", 1).await.unwrap(),
        Some(PartData::Blob { sha256, size: 7 }) if sha256 == file_sha
    ));
    drop(store);

    let conn = open_connection(&path).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version as usize, MIGRATIONS.len());
    // Unreferenced now: both old blob rows go, and only the file is returned for removal.
    assert_eq!(
        drop_message_if_unreferenced(&conn, "m1").unwrap(),
        vec![file_sha]
    );
    assert_eq!(rows(&conn, "blobs"), 0);
}

/// A part stored in its row is read back whole and leaves no blob row behind; deleting its
/// message returns no file to remove.
#[tokio::test]
async fn small_parts_live_in_their_part_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealpost.db");
    let key = SigningKey::from_bytes(&[7; 32]);
    let store = SqliteStore::open(&path, key, settings()).unwrap();
    drop(store);
    let conn = open_connection(&path).unwrap();
    conn.execute_batch(
        "INSERT INTO messages (id, sender, recipients, envelope, signature, size, parts, accepted_at)
         VALUES ('m2', 'a@x.test', '[]', '{}', 'sig', 5, 1, 0);",
    )
    .unwrap();
    insert_part(&conn, "m2", 0, [3; 32], 5, Some(b"hello")).unwrap();
    assert_eq!(rows(&conn, "blobs"), 0);
    drop(conn);
    let store = SqliteStore::open(&path, SigningKey::from_bytes(&[7; 32]), settings()).unwrap();
    assert!(matches!(
        store.part("m2", 0).await.unwrap(),
        Some(PartData::Inline(d)) if d == b"hello"
    ));
    drop(store);
    let conn = open_connection(&path).unwrap();
    assert!(
        drop_message_if_unreferenced(&conn, "m2")
            .unwrap()
            .is_empty()
    );
    assert_eq!(rows(&conn, "parts"), 0);
}

/// Session and account look-ups are served from memory; every change to what they return
/// is seen at once when this node makes it, within the idle poll when another process
/// (the admin CLI) does, and only changes to local users' certificates count.
#[tokio::test]
async fn cached_sessions_and_accounts_follow_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealpost.db");
    let store = SqliteStore::open(&path, SigningKey::from_bytes(&[7; 32]), settings()).unwrap();
    let id = store
        .create_account("a@x.test", Some("A"), false, [1; 32], 100, "cli", 0)
        .await
        .unwrap();
    store.login_succeeded(id, [2; 32], 1_000, 0).await.unwrap();
    let name = |a: Option<Account>| a.map(|a| a.name.unwrap_or_default());
    assert_eq!(
        name(store.session_account([2; 32], 10).await.unwrap()).as_deref(),
        Some("A")
    );
    assert_eq!(
        name(store.account_by_address("a@x.test").await.unwrap()).as_deref(),
        Some("A")
    );

    // Served from memory: a change that goes around the trigger is not seen.
    let other = open_connection(&path).unwrap();
    let trigger = "CREATE TRIGGER accounts_update_auth AFTER UPDATE ON accounts \
        BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;";
    other
        .execute_batch("DROP TRIGGER accounts_update_auth; UPDATE accounts SET name = 'around'")
        .unwrap();
    other.execute_batch(trigger).unwrap();
    assert_eq!(
        name(store.session_account([2; 32], 10).await.unwrap()).as_deref(),
        Some("A")
    );
    assert_eq!(
        name(store.account_by_address("a@x.test").await.unwrap()).as_deref(),
        Some("A")
    );

    // Another process's change, through the trigger: seen once the idle writer polls.
    other.execute("UPDATE accounts SET name = 'B'", []).unwrap();
    let started = std::time::Instant::now();
    while name(store.session_account([2; 32], 10).await.unwrap()).as_deref() != Some("B") {
        assert!(
            started.elapsed() < READ_CACHE_POLL * 20,
            "the change was never seen"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert_eq!(
        name(store.account_by_address("a@x.test").await.unwrap()).as_deref(),
        Some("B")
    );

    // The session's expiry holds for a cached session too.
    assert!(
        store
            .session_account([2; 32], 1_000)
            .await
            .unwrap()
            .is_none()
    );

    // This node's own changes: seen by the very next look-up.
    store.end_session([2; 32], 20).await.unwrap();
    assert!(store.session_account([2; 32], 30).await.unwrap().is_none());
    store.login_succeeded(id, [3; 32], 1_000, 40).await.unwrap();
    assert!(store.session_account([3; 32], 50).await.unwrap().is_some());
    store
        .set_account_state("a@x.test", AccountState::Disabled, "admin", 60)
        .await
        .unwrap();
    assert!(store.session_account([3; 32], 70).await.unwrap().is_none());
    let a = store.account_by_address("a@x.test").await.unwrap().unwrap();
    assert_eq!(a.state, AccountState::Disabled);

    // Certificates: every change counts (local users' and peers' users' alike).
    let generation = || read_cache::read_generation(&other).unwrap();
    let before = generation();
    let cert = "INSERT INTO certs (fingerprint, armored, origin, updated_at, generation) \
        VALUES (?1, 'x', 'test', 0, 0)";
    other.execute(cert, ["F1"]).unwrap();
    assert_eq!(generation(), before + 1);
    other
        .execute(
            "UPDATE certs SET armored = 'y' WHERE fingerprint = 'F1'",
            [],
        )
        .unwrap();
    other
        .execute("DELETE FROM certs WHERE fingerprint = 'F1'", [])
        .unwrap();
    assert_eq!(generation(), before + 3);
}

/// What the admin socket relies on: once `catch_up` returns, a change another process
/// committed is seen by the very next look-up, without waiting for the writer's poll.
#[tokio::test]
async fn catch_up_makes_another_process_s_change_seen_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealpost.db");
    let store = SqliteStore::open(&path, SigningKey::from_bytes(&[7; 32]), settings()).unwrap();
    let id = store
        .create_account("a@x.test", None, false, [1; 32], 100, "cli", 0)
        .await
        .unwrap();
    store.login_succeeded(id, [2; 32], 1_000, 0).await.unwrap();
    let other = open_connection(&path).unwrap();
    other
        .execute("UPDATE accounts SET state = 'active'", [])
        .unwrap();
    store.catch_up().await.unwrap();
    let state = async || {
        let by_session = store.session_account([2; 32], 10).await.unwrap().unwrap();
        let by_address = store.account_by_address("a@x.test").await.unwrap().unwrap();
        assert_eq!(by_session.state, by_address.state);
        by_session.state
    };
    for (round, (from, to)) in [
        (AccountState::Active, AccountState::Disabled),
        (AccountState::Disabled, AccountState::Active),
    ]
    .into_iter()
    .cycle()
    .take(20)
    .enumerate()
    {
        // Served from memory, then changed by another process.
        assert_eq!(state().await, from, "round {round}");
        assert_eq!(state().await, from, "round {round}");
        other
            .execute("UPDATE accounts SET state = ?1", [to.as_str()])
            .unwrap();
        let generation = store.catch_up().await.unwrap();
        assert_eq!(generation, read_cache::read_generation(&other).unwrap());
        assert_eq!(state().await, to, "round {round}");
    }
}

#[tokio::test]
async fn cached_peers_and_certificates_follow_every_change() {
    use crate::storage::{FederationStore, LogEvent, PeerRecord};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealpost.db");
    let store = SqliteStore::open(&path, SigningKey::from_bytes(&[7; 32]), settings()).unwrap();
    let event = LogEvent::new("federation.peer_added", "admin", "p.test");
    let peer = PeerRecord::new("p.test", "peer-1".into(), vec![], "CA1".into());
    store.put_peer(peer, event, 0).await.unwrap();
    let other = open_connection(&path).unwrap();
    other
        .execute_batch(
            "INSERT INTO certs (fingerprint, armored, origin, updated_at, generation) \
             VALUES ('F1', 'x', 'p.test', 0, 0); \
             INSERT INTO cert_emails (email, fingerprint) VALUES ('u@p.test', 'F1');",
        )
        .unwrap();
    let seen = async |armored: &str| {
        let started = std::time::Instant::now();
        loop {
            let from = store
                .certs_by_email_from("u@p.test", "p.test")
                .await
                .unwrap();
            let by_fpr = store.cert_by_fingerprint("F1").await.unwrap();
            if from == [armored] && by_fpr.as_deref() == Some(armored) {
                return;
            }
            assert!(
                started.elapsed() < READ_CACHE_POLL * 20,
                "{armored} never seen: {from:?} {by_fpr:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    };
    // Once the writer has published the insert, what is read is kept.
    let started = std::time::Instant::now();
    while store.auth.generation() != read_cache::read_generation(&other).unwrap() {
        assert!(started.elapsed() < READ_CACHE_POLL * 20, "never published");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    seen("x").await;
    assert_eq!(
        store.peer("p.test").await.unwrap().unwrap().peer_id,
        "peer-1"
    );

    // Served from memory: changes that go around the triggers are not seen.
    other
        .execute_batch(
            "DROP TRIGGER certs_update_auth; DROP TRIGGER peers_update_auth; \
             UPDATE certs SET armored = 'around'; UPDATE peers SET peer_id = 'around';",
        )
        .unwrap();
    // Long enough for the idle writer to have polled several times: nothing to see.
    tokio::time::sleep(READ_CACHE_POLL * 3).await;
    seen("x").await;
    assert_eq!(
        store.peer("p.test").await.unwrap().unwrap().peer_id,
        "peer-1"
    );
    drop(other);
    // Reopening runs no migration again: put the triggers back as migration 7 made them.
    let other = open_connection(&path).unwrap();
    other
        .execute_batch(
            "CREATE TRIGGER certs_update_auth AFTER UPDATE ON certs \
             BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END; \
             CREATE TRIGGER peers_update_auth AFTER UPDATE OF domain, peer_id, addrs, \
             ca_fingerprint, added_at, state, last_error, retry_at, state_at, pull_cursor \
             ON peers BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;",
        )
        .unwrap();

    // A peer's outbox count moves with every message: it does not empty the cache.
    let before = read_cache::read_generation(&other).unwrap();
    other
        .execute("UPDATE peers SET queued = queued + 1", [])
        .unwrap();
    assert_eq!(read_cache::read_generation(&other).unwrap(), before);

    // This node's own change: seen by the very next look-up.
    store
        .set_peer_state("p.test", "connected", None, None, 5)
        .await
        .unwrap();
    let p = store.peer("p.test").await.unwrap().unwrap();
    assert_eq!(
        (p.state.as_str(), p.peer_id.as_str()),
        ("connected", "around")
    );

    // Another process's change to a certificate: seen once the idle writer polls.
    other.execute("UPDATE certs SET armored = 'z'", []).unwrap();
    seen("z").await;
}
