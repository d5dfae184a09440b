//! The embedded default [`MetaStore`]: one SQLite file in WAL mode.
//!
//! All writes go through one writer thread that groups whatever is waiting (up to
//! `group_commit_max` operations) into a single transaction with `synchronous=FULL`, then
//! answers each caller. One fsync then acknowledges many operations, which is what lets a
//! 2-core machine accept thousands of durable messages a second. A failing operation never
//! takes the batch with it: the batch is then run again with each operation in its own
//! savepoint, so the failed one rolls back alone (see `run_batch`).
//! Reads use a small pool of separate connections and never wait for the writer.
//!
//! The transaction log is appended in the same transaction as the change it records, and its
//! head is read from the database at the start of every batch (not cached), so that the admin
//! CLI, which writes from another process while the node runs, keeps the one chain intact.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use async_trait::async_trait;
use ed25519_dalek::{SigningKey, VerifyingKey};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::*;
use crate::txlog;

mod read_cache;
mod web;

pub use read_cache::POLL as READ_CACHE_POLL;
use read_cache::ReadCache;

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL UNIQUE,
    name TEXT,
    is_admin INTEGER NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    fingerprint TEXT UNIQUE,
    wrapped_key TEXT,
    kdf_salt BLOB,
    kdf_params TEXT,
    login_hash TEXT,
    totp_secret BLOB,
    totp_enabled INTEGER NOT NULL DEFAULT 0,
    -- The last TOTP time step accepted: a code is good once.
    totp_last_step INTEGER NOT NULL DEFAULT 0,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER
);
-- Every certificate the node knows, public parts only: its users', its CA's, peers'.
CREATE TABLE certs (
    fingerprint TEXT PRIMARY KEY,
    armored TEXT NOT NULL,
    origin TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    -- The certificate generation at its last change: caches fetch what changed since theirs.
    generation INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX certs_by_generation ON certs(generation);
CREATE TABLE cert_emails (
    email TEXT NOT NULL,
    fingerprint TEXT NOT NULL REFERENCES certs(fingerprint),
    PRIMARY KEY (email, fingerprint)
) WITHOUT ROWID;
-- Key IDs and fingerprints of primary keys and subkeys, for look-ups by key ID.
CREATE TABLE cert_handles (
    handle TEXT NOT NULL,
    fingerprint TEXT NOT NULL REFERENCES certs(fingerprint),
    PRIMARY KEY (handle, fingerprint)
) WITHOUT ROWID;
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
-- Bumped with every certificate change, so caches (in this or another process) know when
-- to rebuild the trust network.
INSERT INTO meta (key, value) VALUES ('cert_generation', 0);
CREATE TABLE invites (
    code_hash BLOB PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    expires_at INTEGER NOT NULL,
    used_at INTEGER
) WITHOUT ROWID;
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE issued_ids (
    message_id TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE blobs (
    sha256 BLOB PRIMARY KEY,
    size INTEGER NOT NULL,
    data BLOB
) WITHOUT ROWID;
CREATE TABLE uploads (
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    sha256 BLOB NOT NULL,
    size INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, sha256)
) WITHOUT ROWID;
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    recipients TEXT NOT NULL,
    envelope TEXT NOT NULL,
    signature TEXT NOT NULL,
    size INTEGER NOT NULL,
    parts INTEGER NOT NULL,
    accepted_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE parts (
    message_id TEXT NOT NULL REFERENCES messages(id),
    idx INTEGER NOT NULL,
    sha256 BLOB NOT NULL REFERENCES blobs(sha256),
    size INTEGER NOT NULL,
    PRIMARY KEY (message_id, idx)
) WITHOUT ROWID;
CREATE INDEX parts_by_blob ON parts(sha256);
CREATE TABLE mailbox (
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    message_id TEXT NOT NULL REFERENCES messages(id),
    folder TEXT NOT NULL,
    unread INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, message_id, folder)
) WITHOUT ROWID;
CREATE INDEX mailbox_list ON mailbox(account_id, folder, received_at DESC);
CREATE TABLE txlog (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE TABLE checkpoints (
    seq INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    at INTEGER NOT NULL,
    signature BLOB NOT NULL
);
"#,
    r#"
-- Federation. Peers an admin authorised: one domain each, bound to a peer ID and a CA.
CREATE TABLE peers (
    domain TEXT PRIMARY KEY,
    peer_id TEXT NOT NULL UNIQUE,
    addrs TEXT NOT NULL,
    ca_fingerprint TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'new',
    last_error TEXT,
    retry_at INTEGER,
    state_at INTEGER,
    pull_cursor INTEGER NOT NULL DEFAULT 0,
    -- Outbox entries for this peer, kept with the outbox (counting them per submission would
    -- cost as much as the backlog is long).
    queued INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('peer_generation', 0);
-- One entry per message and destination organisation, until the peer's receipt or expiry.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL REFERENCES messages(id),
    domain TEXT NOT NULL,
    recipients TEXT NOT NULL,
    queued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    UNIQUE (message_id, domain)
);
CREATE INDEX outbox_by_domain ON outbox(domain, seq);
CREATE INDEX outbox_by_expiry ON outbox(expires_at);
-- Each remote recipient's state, for the sender.
CREATE TABLE deliveries (
    message_id TEXT NOT NULL REFERENCES messages(id),
    address TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (message_id, address)
) WITHOUT ROWID;
-- Messages received from peers: which peer, and the local recipients they reached. Kept after
-- the message is deleted, so that a replayed transfer is recognised and not delivered again.
CREATE TABLE received (
    message_id TEXT PRIMARY KEY,
    domain TEXT NOT NULL,
    envelope_sha256 BLOB NOT NULL,
    recipients TEXT NOT NULL,
    node_sig TEXT NOT NULL,
    received_at INTEGER NOT NULL
) WITHOUT ROWID;
-- Our certificates each peer has looked up: it is sent their changes (revocations).
CREATE TABLE peer_served (
    domain TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    PRIMARY KEY (domain, fingerprint)
) WITHOUT ROWID;
CREATE TABLE notices (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    message_id TEXT,
    text TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    unread INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX notices_by_account ON notices(account_id, id DESC);
"#,
    r#"
-- Whether any mailbox still holds a message (checked after each remote delivery and each
-- deletion) without scanning every mailbox.
CREATE INDEX mailbox_by_message ON mailbox(message_id);
"#,
    r#"
-- Part files a peer streamed for a transfer, until that transfer commits. A transfer that
-- never commits (the peer went away between its parts and the commit) leaves its file here,
-- collected with expired uploads.
CREATE TABLE peer_parts (
    sha256 BLOB PRIMARY KEY,
    domain TEXT NOT NULL,
    size INTEGER NOT NULL,
    received_at INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    r#"
-- A small part (sent inline with its submission or transfer) is stored in its message's part
-- row, in message order, instead of in blobs under its random hash: one part row then costs
-- one append rather than an insert at a random place in blobs and in parts_by_blob, which
-- under load was most of the writer's page splits and WAL bytes. A part row with no data
-- refers to a blob (a file, or an inline blob stored before this migration).
CREATE TABLE parts_v5 (
    message_id TEXT NOT NULL REFERENCES messages(id),
    idx INTEGER NOT NULL,
    sha256 BLOB NOT NULL,
    size INTEGER NOT NULL,
    data BLOB,
    PRIMARY KEY (message_id, idx)
) WITHOUT ROWID;
INSERT INTO parts_v5 (message_id, idx, sha256, size) SELECT message_id, idx, sha256, size FROM parts;
DROP TABLE parts;
ALTER TABLE parts_v5 RENAME TO parts;
CREATE INDEX parts_by_blob ON parts(sha256) WHERE data IS NULL;
"#,
    r#"
-- Bumped in the same transaction as any change to what authenticates a request or resolves
-- a local address (accounts, sessions, local users' certificates), by whichever process
-- makes it: a node's in-memory copy of these is good only while the counter stands still.
INSERT INTO meta (key, value) VALUES ('auth_generation', 0);
CREATE TRIGGER accounts_insert_auth AFTER INSERT ON accounts
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER accounts_update_auth AFTER UPDATE ON accounts
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER accounts_delete_auth AFTER DELETE ON accounts
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER sessions_insert_auth AFTER INSERT ON sessions
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER sessions_update_auth AFTER UPDATE ON sessions
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER sessions_delete_auth AFTER DELETE ON sessions
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER certs_insert_auth AFTER INSERT ON certs
    WHEN NEW.fingerprint IN (SELECT fingerprint FROM accounts)
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER certs_update_auth AFTER UPDATE ON certs
    WHEN NEW.fingerprint IN (SELECT fingerprint FROM accounts)
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER certs_delete_auth AFTER DELETE ON certs
    WHEN OLD.fingerprint IN (SELECT fingerprint FROM accounts)
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
"#,
    r#"
-- The node also keeps peer records and certificates in memory (`read_cache`): every change
-- to a certificate, and every change to a peer but its outbox count, bumps the counter too.
DROP TRIGGER certs_insert_auth;
DROP TRIGGER certs_update_auth;
DROP TRIGGER certs_delete_auth;
CREATE TRIGGER certs_insert_auth AFTER INSERT ON certs
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER certs_update_auth AFTER UPDATE ON certs
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER certs_delete_auth AFTER DELETE ON certs
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER peers_insert_auth AFTER INSERT ON peers
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER peers_update_auth AFTER UPDATE OF domain, peer_id, addrs, ca_fingerprint,
        added_at, state, last_error, retry_at, state_at, pull_cursor ON peers
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER peers_delete_auth AFTER DELETE ON peers
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
"#,
];

/// A write operation in the writer's queue.
trait WriteJob: Send {
    /// Runs the operation inside the batch's transaction; `false` if it failed, in which case
    /// its changes must be undone. May run more than once: when another operation of the same
    /// batch fails, the batch is rolled back and run again, each operation in a savepoint.
    fn run(&mut self, conn: &Connection, chain: &mut Chain) -> bool;
    /// Answers the caller with the outcome of the batch's commit (or why it never ran).
    fn finish(self: Box<Self>, commit: Result<()>);
}

type Job = Box<dyn WriteJob>;

struct Op<F, R> {
    f: F,
    result: Option<Result<R>>,
    tx: oneshot::Sender<Result<R>>,
}

impl<F, R> WriteJob for Op<F, R>
where
    F: FnMut(&Connection, &mut Chain) -> Result<R> + Send,
    R: Send,
{
    fn run(&mut self, conn: &Connection, chain: &mut Chain) -> bool {
        let result = (self.f)(conn, chain);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<()>) {
        let answer = match self.result {
            Some(result) => commit.and(result),
            None => Err(commit.err().unwrap_or_else(|| {
                StorageError::Database("the write transaction could not start".into())
            })),
        };
        let _ = self.tx.send(answer);
    }
}

/// The head of the transaction log during one write batch.
#[derive(Clone)]
struct ChainHead {
    seq: u64,
    hash: [u8; 32],
    signed_seq: u64,
}

pub(super) struct Chain {
    head: ChainHead,
    key: Arc<SigningKey>,
    checkpoint_every: u64,
}

impl Chain {
    fn load(&mut self, conn: &Connection) -> Result<()> {
        let (seq, hash) = conn
            .query_row(
                "SELECT seq, hash FROM txlog ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Vec<u8>>(1)?)),
            )
            .optional()?
            .unwrap_or((0, txlog::GENESIS.to_vec()));
        let signed_seq: i64 =
            conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM checkpoints", [], |r| {
                r.get(0)
            })?;
        self.head = ChainHead {
            seq,
            hash: hash
                .try_into()
                .map_err(|_| StorageError::Corrupt("log head hash".into()))?,
            signed_seq: signed_seq as u64,
        };
        Ok(())
    }

    pub(super) fn append(
        &mut self,
        conn: &Connection,
        now: Timestamp,
        event: &LogEvent,
    ) -> Result<()> {
        let entry = txlog::Entry {
            seq: self.head.seq + 1,
            at: now,
            kind: event.kind.to_owned(),
            actor: event.actor.clone(),
            subject: event.subject.clone(),
            detail: event.detail.to_string(),
        };
        let hash = txlog::entry_hash(&self.head.hash, &entry);
        conn.prepare_cached(
            "INSERT INTO txlog (seq, at, kind, actor, subject, detail, prev, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            entry.seq as i64,
            entry.at,
            entry.kind,
            entry.actor,
            entry.subject,
            entry.detail,
            &self.head.hash[..],
            &hash[..]
        ])?;
        self.head.seq = entry.seq;
        self.head.hash = hash;
        if self.head.seq - self.head.signed_seq >= self.checkpoint_every {
            self.checkpoint(conn, now)?;
        }
        Ok(())
    }

    fn checkpoint(&mut self, conn: &Connection, now: Timestamp) -> Result<()> {
        if self.head.seq == self.head.signed_seq {
            return Ok(());
        }
        let sig = txlog::sign_checkpoint(&self.key, self.head.seq, &self.head.hash, now);
        conn.prepare_cached(
            "INSERT INTO checkpoints (seq, hash, at, signature) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            self.head.seq as i64,
            &self.head.hash[..],
            now,
            &sig[..]
        ])?;
        self.head.signed_seq = self.head.seq;
        Ok(())
    }
}

/// Most read connections open at once. Reads beyond this wait for a connection rather than
/// opening (and then closing) more: opening one costs far more than a typical query.
const MAX_READERS: usize = 8;

pub struct SqliteStore {
    path: PathBuf,
    writer: mpsc::SyncSender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    reader_permits: Arc<tokio::sync::Semaphore>,
    verifying_key: VerifyingKey,
    pub(super) auth: Arc<ReadCache>,
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // WAL: readers never block the writer. FULL: a commit is on disk before it returns, so
    // nothing acknowledged is lost to a power cut.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // 8 MiB of page cache (the default is 2 MiB), and a WAL checkpoint every 16,384 pages
    // (64 MiB) rather than every 1,000: hot pages (indexes, the log's last leaf) are copied
    // back into the database once per checkpoint, so rarer checkpoints write less. Durability
    // is unchanged: every commit is still fsynced to the WAL. Not more cache: a B-tree page
    // split renumbers pages through a temporary page number past 1 GiB, after which SQLite's
    // commit walks every cached page (pcache1TruncateUnsafe, seen with perf probes); with
    // the former 64 MiB the walk grew with the cache (about 0.4 ms per commit with 14 MiB
    // cached, 3 % of the node's CPU under load, and more as it filled). New rows go
    // to the end of their tables (message IDs start with the time), so the writer's working
    // set is small.
    conn.pragma_update(None, "cache_size", -8192)?;
    conn.pragma_update(None, "wal_autocheckpoint", 16384)?;
    // When a write batch is run again after one of its operations failed, each operation
    // runs in its own savepoint, so each page it touches is first copied to the statement
    // journal. Held in memory, that journal costs a memcpy; left to its default it spills to
    // a temporary file past 64 KiB (pwrite calls).
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version as usize > MIGRATIONS.len() {
        return Err(StorageError::Corrupt(format!(
            "database schema {version} is newer than this sealpost ({})",
            MIGRATIONS.len()
        )));
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Re-read inside the write lock: another process may have migrated meanwhile.
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database and starts the writer thread.
    pub fn open(
        path: &Path,
        node_key: SigningKey,
        settings: WriterSettings,
    ) -> Result<SqliteStore> {
        let mut conn = open_connection(path)?;
        migrate(&mut conn)?;
        let verifying_key = node_key.verifying_key();
        let (tx, rx) = mpsc::sync_channel::<Job>(settings.write_queue);
        let chain = Chain {
            head: ChainHead {
                seq: 0,
                hash: txlog::GENESIS,
                signed_seq: 0,
            },
            key: Arc::new(node_key),
            checkpoint_every: settings.checkpoint_every,
        };
        let auth = Arc::new(ReadCache::new(read_cache::read_generation(&conn)?));
        let writer_auth = auth.clone();
        std::thread::Builder::new()
            .name("sealpost-sqlite-writer".into())
            .spawn(move || writer_loop(conn, chain, rx, settings, &writer_auth))
            .map_err(StorageError::Io)?;
        Ok(SqliteStore {
            path: path.to_owned(),
            writer: tx,
            readers: Arc::new(Mutex::new(Vec::new())),
            reader_permits: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
            verifying_key,
            auth,
        })
    }

    /// Runs `f` in the writer's next batch; resolves once the batch is durably committed.
    /// `f` may be called more than once (see [`WriteJob::run`]): it must only touch the
    /// database through `conn` and `chain`, and give the same answer for the same state.
    pub(super) async fn write<R: Send + 'static>(
        &self,
        f: impl FnMut(&Connection, &mut Chain) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(Op {
            f,
            result: None,
            tx,
        });
        match self.writer.try_send(job) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(_)) => return Err(StorageError::Overloaded),
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(StorageError::Closed),
        }
        rx.await.map_err(|_| StorageError::Closed)?
    }

    /// A point look-up (one row by key: microseconds): run it on the calling task rather than
    /// paying for a hop to the blocking pool, when a connection is free; otherwise queue like
    /// any read.
    pub(super) async fn read_point<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let Ok(_permit) = self.reader_permits.clone().try_acquire_owned() else {
            return self.read(f).await;
        };
        with_reader(&self.readers, &self.path, f)
    }

    pub(super) async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let readers = self.readers.clone();
        let path = self.path.clone();
        let permit = self
            .reader_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StorageError::Closed)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            with_reader(&readers, &path, f)
        })
        .await
        .map_err(|e| StorageError::Database(format!("reader task failed: {e}")))?
    }
}

/// Runs `f` on a pooled read-only connection (opening one if the pool is empty) and returns
/// the connection to the pool. Callers hold a reader permit, which bounds the pool.
fn with_reader<R>(
    readers: &Mutex<Vec<Connection>>,
    path: &Path,
    f: impl FnOnce(&Connection) -> Result<R>,
) -> Result<R> {
    let pooled = readers.lock().expect("reader pool").pop();
    let conn = match pooled {
        Some(c) => c,
        None => {
            let c = open_connection(path)?;
            c.pragma_update(None, "query_only", true)?;
            // A reader's page cache is dropped whole at the start of every read transaction
            // that follows a commit (SQLite cannot tell which pages the writer changed), so
            // under write load it holds only what one read touched. Dropping it walks its
            // whole hash table, which grows with the cache and never shrinks: with the 64 MiB
            // readers had before, that walk was 4 % of the node's CPU. The default 2 MiB keeps
            // it small; pages come back from the OS page cache.
            c.pragma_update(None, "cache_size", -2048)?;
            c
        }
    };
    let result = f(&conn);
    readers.lock().expect("reader pool").push(conn);
    result
}

fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute([])
}

/// How the writer thread groups operations into commits.
#[derive(Clone, Debug)]
pub struct WriterSettings {
    /// Most operations in one commit.
    pub group_commit_max: usize,
    /// Under load (the last commit held more than one operation), how long the writer waits
    /// for more operations before committing. A commit's fixed costs (the fsync, and the last
    /// page of every table and index written again) are then shared by more operations; an
    /// idle node commits a lone operation at once.
    pub group_commit_window: std::time::Duration,
    /// Operations that may wait for the writer before callers get `Overloaded`.
    pub write_queue: usize,
    /// A signed log checkpoint after this many log entries.
    pub checkpoint_every: u64,
}

fn writer_loop(
    conn: Connection,
    mut chain: Chain,
    rx: mpsc::Receiver<Job>,
    settings: WriterSettings,
    auth: &ReadCache,
) {
    let max = settings.group_commit_max.max(1);
    let mut under_load = false;
    loop {
        let first = match rx.recv_timeout(read_cache::POLL) {
            Ok(job) => job,
            // Idle: look for changes another process committed.
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(g) = read_cache::read_generation(&conn) {
                    auth.publish(g);
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut batch = vec![first];
        let window_ends = std::time::Instant::now() + settings.group_commit_window;
        while batch.len() < max {
            let next = match rx.try_recv() {
                Err(mpsc::TryRecvError::Empty) if under_load => rx
                    .recv_timeout(window_ends.saturating_duration_since(std::time::Instant::now()))
                    .ok(),
                r => r.ok(),
            };
            let Some(job) = next else { break };
            batch.push(job);
        }
        under_load = batch.len() > 1;
        let committed = run_batch(&conn, &mut chain, &mut batch);
        if let Ok(Some(g)) = committed {
            // Before anyone is answered: a caller that logged out, or disabled an account,
            // is not served from the cache afterwards.
            auth.publish(g);
        }
        for job in batch {
            job.finish(match &committed {
                Ok(_) => Ok(()),
                Err(e) => Err(StorageError::Database(e.to_string())),
            });
        }
    }
}

/// Runs a batch in one transaction and commits it. Operations nearly always succeed, so they
/// run one after another with nothing to undo them one by one. If one fails, the transaction
/// is rolled back: a lone operation is then done (its caller gets its error); a larger batch
/// runs again with each operation in a savepoint, so that the failed ones leave nothing
/// behind. (A savepoint copies every page an operation first touches into the statement
/// journal: a fifth of the writer's work when taken for every operation.) Returns the
/// committed `auth_generation` (see [`read_cache`]), `None` if nothing was committed.
fn run_batch(conn: &Connection, chain: &mut Chain, batch: &mut [Job]) -> Result<Option<u64>> {
    let begin = |chain: &mut Chain| {
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(StorageError::from)
            .and_then(|()| chain.load(conn))
            .inspect_err(|e| {
                let _ = conn.execute_batch("ROLLBACK");
                tracing::error!(error = %e, "cannot start a write transaction");
            })
    };
    begin(chain)?;
    if !batch.iter_mut().all(|job| job.run(conn, chain)) {
        let _ = conn.execute_batch("ROLLBACK");
        if batch.len() == 1 {
            return Ok(None);
        }
        begin(chain)?;
        for job in batch.iter_mut() {
            let saved = chain.head.clone();
            let step = exec_cached(conn, "SAVEPOINT op");
            if step.is_err() || !job.run(conn, chain) {
                let _ = exec_cached(conn, "ROLLBACK TO op");
                chain.head = saved;
            }
            let _ = exec_cached(conn, "RELEASE op");
        }
    }
    read_cache::read_generation(conn)
        .and_then(|g| {
            conn.execute_batch("COMMIT")?;
            Ok(Some(g))
        })
        .inspect_err(|e| {
            tracing::error!(error = %e, "write batch failed to commit");
            let _ = conn.execute_batch("ROLLBACK");
        })
}

const ACCOUNT_COLUMNS: &str = "id, address, name, is_admin, state, created_at, \
    (SELECT armored FROM certs c WHERE c.fingerprint = accounts.fingerprint), fingerprint, \
    wrapped_key, kdf_salt, kdf_params, login_hash, totp_secret, totp_enabled";

fn account_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Account, String)> {
    Ok((
        Account {
            id: r.get(0)?,
            address: r.get(1)?,
            name: r.get(2)?,
            is_admin: r.get(3)?,
            state: AccountState::Invited,
            created_at: r.get(5)?,
            cert: r.get(6)?,
            fingerprint: r.get(7)?,
            wrapped_key: r.get(8)?,
            kdf_salt: r.get(9)?,
            kdf_params: r.get(10)?,
            login_hash: r.get(11)?,
            totp_secret: r.get(12)?,
            totp_enabled: r.get(13)?,
        },
        r.get(4)?,
    ))
}

fn query_accounts(
    conn: &Connection,
    filter: &str,
    p: impl rusqlite::Params,
) -> Result<Vec<Account>> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts {filter}");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(p, account_row)?;
    rows.map(|r| {
        let (mut a, state) = r?;
        a.state = AccountState::parse(&state)?;
        Ok(a)
    })
    .collect()
}

fn account_id(conn: &Connection, address: &str) -> Result<i64> {
    conn.query_row(
        "SELECT id FROM accounts WHERE address = ?1",
        [address],
        |r| r.get(0),
    )
    .optional()?
    .ok_or(StorageError::NotFound("account"))
}

pub(super) fn parse_sha(v: Vec<u8>) -> rusqlite::Result<[u8; 32]> {
    v.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            32,
            rusqlite::types::Type::Blob,
            "sha256 is not 32 bytes".into(),
        )
    })
}

/// Inserts or replaces a certificate with its indexes, and bumps the generation.
pub(super) fn put_cert(c: &Connection, r: &CertRecord, origin: &str, now: Timestamp) -> Result<()> {
    let generation: i64 = c
        .prepare_cached(
            "UPDATE meta SET value = value + 1 WHERE key = 'cert_generation' RETURNING value",
        )?
        .query_row([], |row| row.get(0))?;
    c.prepare_cached(
        "INSERT INTO certs (fingerprint, armored, origin, updated_at, generation) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (fingerprint) DO UPDATE SET armored = excluded.armored,
             updated_at = excluded.updated_at, generation = excluded.generation",
    )?
    .execute(params![r.fingerprint, r.armored, origin, now, generation])?;
    c.prepare_cached("DELETE FROM cert_emails WHERE fingerprint = ?1")?
        .execute([&r.fingerprint])?;
    c.prepare_cached("DELETE FROM cert_handles WHERE fingerprint = ?1")?
        .execute([&r.fingerprint])?;
    for e in &r.emails {
        c.prepare_cached("INSERT OR IGNORE INTO cert_emails (email, fingerprint) VALUES (?1, ?2)")?
            .execute(params![e, r.fingerprint])?;
    }
    for h in &r.handles {
        c.prepare_cached(
            "INSERT OR IGNORE INTO cert_handles (handle, fingerprint) VALUES (?1, ?2)",
        )?
        .execute(params![h, r.fingerprint])?;
    }
    Ok(())
}

pub(super) fn query_certs(
    c: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
) -> Result<Vec<String>> {
    Ok(c.prepare_cached(sql)?
        .query_map(p, |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?)
}

/// Drops a message nobody holds any more (no mailbox entry, nothing queued for a peer), and
/// every blob only it used; returns the blob files to remove.
pub(super) fn drop_message_if_unreferenced(c: &Connection, id: &str) -> Result<Vec<[u8; 32]>> {
    let still_referenced: bool = c
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM mailbox WHERE message_id = ?1)
                OR EXISTS(SELECT 1 FROM outbox WHERE message_id = ?1)",
        )?
        .query_row([id], |r| r.get(0))?;
    if still_referenced {
        return Ok(Vec::new());
    }
    // Parts stored in their row take their data with them; the others may free a blob.
    let hashes: Vec<Vec<u8>> = c
        .prepare_cached(
            "DELETE FROM parts WHERE message_id = ?1 RETURNING sha256, data IS NULL AS in_blob",
        )?
        .query_map([id], |r| Ok((r.get(0)?, r.get::<_, bool>(1)?)))?
        .filter_map(|r| r.map(|(h, in_blob)| in_blob.then_some(h)).transpose())
        .collect::<rusqlite::Result<_>>()?;
    for table in [
        "DELETE FROM deliveries WHERE message_id = ?1",
        "DELETE FROM messages WHERE id = ?1",
    ] {
        c.prepare_cached(table)?.execute([id])?;
    }
    drop_unreferenced(c, hashes)
}

/// Stores part `idx` of message `id`: with its data when it is small (`inline`), else as a
/// reference to the blob `sha256`, which the caller holds.
pub(super) fn insert_part(
    c: &Connection,
    id: &str,
    idx: usize,
    sha256: [u8; 32],
    size: u64,
    inline: Option<&[u8]>,
) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO parts (message_id, idx, sha256, size, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id, idx as i64, &sha256[..], size as i64, inline])?;
    Ok(())
}

/// Records that the blob `sha256` is a file of `size` bytes (its row has no inline data).
pub(super) fn hold_file_blob(c: &Connection, sha256: [u8; 32], size: u64) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO blobs (sha256, size, data) VALUES (?1, ?2, NULL) ON CONFLICT DO NOTHING",
    )?
    .execute(params![&sha256[..], size as i64])?;
    Ok(())
}

/// Deletes the blobs among `hashes` that no part and no pending upload refers to any more;
/// returns those that were files (for the caller to remove from the BlobStore).
pub(super) fn drop_unreferenced(c: &Connection, hashes: Vec<Vec<u8>>) -> Result<Vec<[u8; 32]>> {
    let mut files = Vec::new();
    for h in hashes {
        let used: bool = c
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM parts WHERE sha256 = ?1 AND data IS NULL)
                    OR EXISTS(SELECT 1 FROM uploads WHERE sha256 = ?1)
                    OR EXISTS(SELECT 1 FROM peer_parts WHERE sha256 = ?1)",
            )?
            .query_row([&h], |r| r.get(0))?;
        if used {
            continue;
        }
        let inline: Option<Option<Vec<u8>>> = c
            .prepare_cached("DELETE FROM blobs WHERE sha256 = ?1 RETURNING data")?
            .query_row([&h], |r| r.get(0))
            .optional()?;
        if let Some(None) = inline {
            files.push(parse_sha(h)?);
        }
    }
    Ok(files)
}

const ITEM_SELECT: &str = "SELECT m.message_id, m.folder, m.unread, g.sender, g.recipients, \
    m.received_at, g.size, g.parts FROM mailbox m JOIN messages g ON g.id = m.message_id";

/// Adds each remote recipient's delivery state to items in Sent.
fn with_deliveries(c: &Connection, mut items: Vec<MailboxItem>) -> Result<Vec<MailboxItem>> {
    for item in items.iter_mut().filter(|i| i.folder == Folder::Sent) {
        item.delivery = super::sqlite_federation::deliveries_of(c, &item.message_id)?;
    }
    Ok(items)
}

fn item_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MailboxItem> {
    let folder: String = r.get(1)?;
    let to: String = r.get(4)?;
    Ok(MailboxItem {
        message_id: r.get(0)?,
        folder: Folder::parse(&folder).unwrap_or(Folder::Inbox),
        unread: r.get(2)?,
        from: r.get(3)?,
        to: serde_json::from_str(&to).unwrap_or_default(),
        received_at: r.get(5)?,
        size: r.get::<_, i64>(6)? as u64,
        parts: r.get(7)?,
        delivery: Vec::new(),
    })
}

#[async_trait]
impl MetaStore for SqliteStore {
    async fn create_account(
        &self,
        address: &str,
        name: Option<&str>,
        is_admin: bool,
        invite_hash: [u8; 32],
        invite_expires: Timestamp,
        actor: &str,
        now: Timestamp,
    ) -> Result<i64> {
        let (address, name, actor) = (
            address.to_owned(),
            name.map(str::to_owned),
            actor.to_owned(),
        );
        self.write(move |c, chain| {
            let exists: bool = c.query_row(
                "SELECT EXISTS(SELECT 1 FROM accounts WHERE address = ?1)",
                [&address],
                |r| r.get(0),
            )?;
            if exists {
                return Err(StorageError::Conflict(format!("{address} already has an account")));
            }
            c.execute(
                "INSERT INTO accounts (address, name, is_admin, state, created_at) VALUES (?1, ?2, ?3, 'invited', ?4)",
                params![address, name, is_admin, now],
            )?;
            let id = c.last_insert_rowid();
            c.execute(
                "INSERT INTO invites (code_hash, account_id, expires_at) VALUES (?1, ?2, ?3)",
                params![&invite_hash[..], id, invite_expires],
            )?;
            chain.append(
                c,
                now,
                &LogEvent::new("account.authorised", &actor, &address)
                    .with(serde_json::json!({ "admin": is_admin, "invite_expires": invite_expires })),
            )?;
            Ok(id)
        })
        .await
    }

    async fn reissue_invite(
        &self,
        address: &str,
        invite_hash: [u8; 32],
        invite_expires: Timestamp,
        actor: &str,
        now: Timestamp,
    ) -> Result<()> {
        let (address, actor) = (address.to_owned(), actor.to_owned());
        self.write(move |c, chain| {
            let id = account_id(c, &address)?;
            let state: String =
                c.query_row("SELECT state FROM accounts WHERE id = ?1", [id], |r| {
                    r.get(0)
                })?;
            if state != "invited" {
                return Err(StorageError::Conflict(format!(
                    "{address} has already enrolled"
                )));
            }
            c.execute("DELETE FROM invites WHERE account_id = ?1", [id])?;
            c.execute(
                "INSERT INTO invites (code_hash, account_id, expires_at) VALUES (?1, ?2, ?3)",
                params![&invite_hash[..], id, invite_expires],
            )?;
            chain.append(
                c,
                now,
                &LogEvent::new("account.invite_reissued", &actor, &address),
            )?;
            Ok(())
        })
        .await
    }

    async fn account_by_address(&self, address: &str) -> Result<Option<Account>> {
        if let Some(a) = self.auth.account(address) {
            return Ok(Some(a));
        }
        let generation = self.auth.generation();
        let address = address.to_owned();
        let account = self
            .read_point(move |c| Ok(query_accounts(c, "WHERE address = ?1", [address])?.pop()))
            .await?;
        if let Some(a) = &account {
            self.auth.keep_account(generation, a);
        }
        Ok(account)
    }

    async fn account_by_id(&self, id: i64) -> Result<Option<Account>> {
        self.read_point(move |c| Ok(query_accounts(c, "WHERE id = ?1", [id])?.pop()))
            .await
    }

    async fn accounts(&self) -> Result<Vec<Account>> {
        self.read(|c| query_accounts(c, "ORDER BY address", []))
            .await
    }

    async fn set_account_state(
        &self,
        address: &str,
        state: AccountState,
        actor: &str,
        now: Timestamp,
    ) -> Result<()> {
        let (address, actor) = (address.to_owned(), actor.to_owned());
        self.write(move |c, chain| {
            let id = account_id(c, &address)?;
            c.execute(
                "UPDATE accounts SET state = ?1 WHERE id = ?2",
                params![state.as_str(), id],
            )?;
            if state == AccountState::Disabled {
                // A disabled account keeps no open session.
                c.execute("DELETE FROM sessions WHERE account_id = ?1", [id])?;
                c.execute("DELETE FROM invites WHERE account_id = ?1", [id])?;
            }
            chain.append(
                c,
                now,
                &LogEvent::new("account.state", &actor, &address)
                    .with(serde_json::json!({ "state": state.as_str() })),
            )?;
            Ok(())
        })
        .await
    }

    async fn enroll(
        &self,
        invite_hash: [u8; 32],
        address: &str,
        e: Enrolment,
        now: Timestamp,
    ) -> Result<()> {
        let address = address.to_owned();
        self.write(move |c, chain| {
            let invite: Option<(i64, i64, Option<i64>, String, String)> = c
                .query_row(
                    "SELECT i.account_id, i.expires_at, i.used_at, a.address, a.state
                     FROM invites i JOIN accounts a ON a.id = i.account_id WHERE i.code_hash = ?1",
                    [&invite_hash[..]],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()?;
            let Some((id, expires, used, invited_address, state)) = invite else {
                return Err(StorageError::InviteInvalid);
            };
            if used.is_some() || expires < now || invited_address != address || state != "invited" {
                return Err(StorageError::InviteInvalid);
            }
            c.execute(
                "UPDATE invites SET used_at = ?1 WHERE code_hash = ?2",
                params![now, &invite_hash[..]],
            )?;
            c.execute(
                "UPDATE accounts SET state = 'active', fingerprint = ?1, wrapped_key = ?2,
                 kdf_salt = ?3, kdf_params = ?4, login_hash = ?5 WHERE id = ?6",
                params![
                    e.cert.fingerprint,
                    e.wrapped_key,
                    e.kdf_salt,
                    e.kdf_params,
                    e.login_hash,
                    id
                ],
            )?;
            put_cert(c, &e.cert, "local", now)?;
            chain.append(
                c,
                now,
                &LogEvent::new("enrolment", &address, &address)
                    .with(serde_json::json!({ "fingerprint": e.cert.fingerprint })),
            )?;
            Ok(())
        })
        .await
    }

    async fn login_failed(
        &self,
        account_id: i64,
        detail: serde_json::Value,
        now: Timestamp,
    ) -> Result<()> {
        self.write(move |c, chain| {
            let address: String = c.query_row(
                "SELECT address FROM accounts WHERE id = ?1",
                [account_id],
                |r| r.get(0),
            )?;
            chain.append(
                c,
                now,
                &LogEvent::new("login.failed", &address, &address).with(detail.clone()),
            )?;
            Ok(())
        })
        .await
    }

    async fn login_succeeded(
        &self,
        account_id: i64,
        token_hash: [u8; 32],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        self.write(move |c, chain| {
            let address: String = c.query_row(
                "SELECT address FROM accounts WHERE id = ?1",
                [account_id],
                |r| r.get(0),
            )?;
            c.execute("DELETE FROM sessions WHERE account_id = ?1 AND expires_at < ?2", params![account_id, now])?;
            c.execute(
                "INSERT INTO sessions (token_hash, account_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![&token_hash[..], account_id, now, expires_at],
            )?;
            chain.append(c, now, &LogEvent::new("login", &address, &address))?;
            Ok(())
        })
        .await
    }

    async fn session_account(
        &self,
        token_hash: [u8; 32],
        now: Timestamp,
    ) -> Result<Option<Account>> {
        if let Some(a) = self.auth.session(&token_hash, now) {
            return Ok(Some(a));
        }
        let generation = self.auth.generation();
        let found = self
            .read_point(move |c| {
                let session: Option<(i64, Timestamp)> = c
                    .prepare_cached(
                        "SELECT account_id, expires_at FROM sessions WHERE token_hash = ?1 AND expires_at > ?2",
                    )?
                    .query_row(params![&token_hash[..], now], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let Some((id, expires_at)) = session else {
                    return Ok(None);
                };
                Ok(query_accounts(c, "WHERE id = ?1", [id])?
                    .pop()
                    .map(|a| (expires_at, a)))
            })
            .await?;
        Ok(found.map(|(expires_at, account)| {
            self.auth
                .keep_session(generation, token_hash, expires_at, &account);
            account
        }))
    }

    async fn session(&self, token_hash: [u8; 32], now: Timestamp) -> Result<Option<Session>> {
        self.read_point(move |c| {
            Ok(c.prepare_cached(
                "SELECT account_id, created_at, expires_at FROM sessions WHERE token_hash = ?1 AND expires_at > ?2",
            )?
            .query_row(params![&token_hash[..], now], |r| {
                Ok(Session {
                    account_id: r.get(0)?,
                    created_at: r.get(1)?,
                    expires_at: r.get(2)?,
                })
            })
            .optional()?)
        })
        .await
    }

    async fn end_session(&self, token_hash: [u8; 32], now: Timestamp) -> Result<()> {
        self.write(move |c, chain| {
            let address: Option<String> = c
                .query_row(
                    "DELETE FROM sessions WHERE token_hash = ?1
                     RETURNING (SELECT address FROM accounts WHERE id = sessions.account_id)",
                    [&token_hash[..]],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(a) = address {
                chain.append(c, now, &LogEvent::new("logout", &a, &a))?;
            }
            Ok(())
        })
        .await
    }

    async fn use_totp_step(&self, account_id: i64, step: i64) -> Result<bool> {
        self.write(move |c, _| {
            Ok(c.execute(
                "UPDATE accounts SET totp_last_step = ?2 WHERE id = ?1 AND totp_last_step < ?2",
                params![account_id, step],
            )? == 1)
        })
        .await
    }

    async fn set_totp(
        &self,
        account_id: i64,
        secret: Option<Vec<u8>>,
        enabled: bool,
    ) -> Result<()> {
        self.write(move |c, _| {
            c.execute(
                "UPDATE accounts SET totp_secret = ?1, totp_enabled = ?2 WHERE id = ?3",
                params![secret, enabled, account_id],
            )?;
            Ok(())
        })
        .await
    }

    async fn issue_message_id(
        &self,
        account_id: i64,
        message_id: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        let id = message_id.to_owned();
        self.write(move |c, _| {
            // Old, never-used IDs are of no use to anyone: drop them as we go.
            c.prepare_cached("DELETE FROM issued_ids WHERE expires_at < ?1 AND used = 0")?
                .execute([now - 3600])?;
            c.prepare_cached(
                "INSERT INTO issued_ids (message_id, account_id, issued_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![id, account_id, now, expires_at])?;
            Ok(())
        })
        .await
    }

    async fn record_upload(
        &self,
        account_id: i64,
        sha256: [u8; 32],
        size: u64,
        now: Timestamp,
    ) -> Result<()> {
        self.write(move |c, _| {
            hold_file_blob(c, sha256, size)?;
            c.execute(
                "INSERT INTO uploads (account_id, sha256, size, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO UPDATE SET created_at = excluded.created_at",
                params![account_id, &sha256[..], size as i64, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn pending_upload_bytes(&self, account_id: i64) -> Result<u64> {
        self.read_point(move |c| {
            Ok(
                c.prepare_cached(
                    "SELECT COALESCE(SUM(size), 0) FROM uploads WHERE account_id = ?1",
                )?
                .query_row([account_id], |r| r.get::<_, i64>(0))? as u64,
            )
        })
        .await
    }

    async fn expire_uploads(&self, before: Timestamp) -> Result<Vec<[u8; 32]>> {
        self.write(move |c, _| {
            let mut expired: Vec<Vec<u8>> = Vec::new();
            // Uploads no message used, and part files of peers' transfers that never committed.
            for sql in [
                "DELETE FROM uploads WHERE created_at < ?1 RETURNING sha256",
                "DELETE FROM peer_parts WHERE received_at < ?1 RETURNING sha256",
            ] {
                let rows = c
                    .prepare(sql)?
                    .query_map([before], |r| r.get::<_, Vec<u8>>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                expired.extend(rows);
            }
            expired.sort();
            expired.dedup();
            drop_unreferenced(c, expired)
        })
        .await
    }

    async fn uploaded_by(&self, account_id: i64, sha256: [u8; 32]) -> Result<Option<u64>> {
        self.read_point(move |c| {
            Ok(c.query_row(
                "SELECT size FROM uploads WHERE account_id = ?1 AND sha256 = ?2",
                params![account_id, &sha256[..]],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(|s| s as u64))
        })
        .await
    }

    async fn submit(&self, m: NewMessage, now: Timestamp) -> Result<SubmitOutcome> {
        self.write(move |c, chain| {
            let existing: Option<(String, String, i64)> = c
                .prepare_cached("SELECT sender, envelope, accepted_at FROM messages WHERE id = ?1")?
                .query_row([&m.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            if let Some((sender, envelope, accepted_at)) = existing {
                if sender == m.sender_address && envelope == m.envelope {
                    return Ok(SubmitOutcome::AlreadyAccepted { accepted_at });
                }
                return Err(StorageError::Conflict("message ID already used".into()));
            }
            let claimed = c
                .prepare_cached(
                    "UPDATE issued_ids SET used = 1
                     WHERE message_id = ?1 AND account_id = ?2 AND used = 0 AND expires_at >= ?3",
                )?
                .execute(params![m.id, m.sender_account, now])?;
            if claimed != 1 {
                let issued: Option<(i64, Timestamp, bool)> = c
                    .prepare_cached(
                        "SELECT account_id, expires_at, used FROM issued_ids WHERE message_id = ?1",
                    )?
                    .query_row([&m.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()?;
                return Err(match issued {
                    Some((account, _, false)) if account == m.sender_account => {
                        StorageError::MessageIdExpired
                    }
                    // Used, but its message is gone (deleted by everyone who had it).
                    Some((account, _, true)) if account == m.sender_account => {
                        StorageError::Conflict("message ID already used".into())
                    }
                    _ => StorageError::MessageIdNotIssued,
                });
            }
            let recipients: Vec<&str> = m
                .recipients
                .iter()
                .map(|(_, a)| a.as_str())
                .chain(m.remote.iter().flat_map(|r| r.addresses.iter().map(String::as_str)))
                .collect();
            c.prepare_cached(
                "INSERT INTO messages (id, sender, recipients, envelope, signature, size, parts, accepted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                m.id,
                m.sender_address,
                serde_json::to_string(&recipients).expect("strings serialise"),
                m.envelope,
                m.signature,
                m.size as i64,
                m.parts.len() as i64,
                now
            ])?;
            for (i, p) in m.parts.iter().enumerate() {
                if p.inline.is_none() {
                    c.prepare_cached("DELETE FROM uploads WHERE account_id = ?1 AND sha256 = ?2")?
                        .execute(params![m.sender_account, &p.sha256[..]])?;
                }
                insert_part(c, &m.id, i, p.sha256, p.size, p.inline.as_deref())?;
            }
            let mut insert = c.prepare_cached(
                "INSERT INTO mailbox (account_id, message_id, folder, unread, received_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT DO NOTHING",
            )?;
            insert.execute(params![m.sender_account, m.id, "sent", false, now])?;
            let part_hashes: Vec<String> = m.parts.iter().map(|p| hex::encode(p.sha256)).collect();
            chain.append(
                c,
                now,
                &LogEvent::new("submission", &m.sender_address, &m.id).with(serde_json::json!({
                    "to": recipients, "size": m.size, "parts": part_hashes,
                })),
            )?;
            for (account, address) in &m.recipients {
                insert.execute(params![account, m.id, "inbox", true, now])?;
                chain.append(c, now, &LogEvent::new("delivery", address, &m.id))?;
            }
            super::sqlite_federation::enqueue_remote(c, chain, &m, now)?;
            Ok(SubmitOutcome::Accepted { accepted_at: now })
        })
        .await
    }

    async fn mailbox(
        &self,
        account_id: i64,
        folder: Folder,
        limit: u32,
        before: Option<Timestamp>,
    ) -> Result<Vec<MailboxItem>> {
        self.read(move |c| {
            let sql = format!(
                "{ITEM_SELECT} WHERE m.account_id = ?1 AND m.folder = ?2 AND m.received_at < ?3
                 ORDER BY m.received_at DESC, m.message_id LIMIT ?4"
            );
            let rows = c
                .prepare_cached(&sql)?
                .query_map(
                    params![
                        account_id,
                        folder.as_str(),
                        before.unwrap_or(i64::MAX),
                        limit
                    ],
                    item_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            with_deliveries(c, rows)
        })
        .await
    }

    async fn message(&self, account_id: i64, message_id: &str) -> Result<Option<StoredMessage>> {
        let id = message_id.to_owned();
        self.read(move |c| {
            // A message sent to oneself is in Sent and Inbox: show the received copy.
            let sql = format!(
                "{ITEM_SELECT} WHERE m.account_id = ?1 AND m.message_id = ?2
                 ORDER BY CASE m.folder WHEN 'sent' THEN 1 ELSE 0 END LIMIT 1"
            );
            let Some(item) = c
                .prepare_cached(&sql)?
                .query_row(params![account_id, id], item_row)
                .optional()?
            else {
                return Ok(None);
            };
            let item = with_deliveries(c, vec![item])?.remove(0);
            let (envelope, signature, accepted_at) = c.query_row(
                "SELECT envelope, signature, accepted_at FROM messages WHERE id = ?1",
                [&id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let parts = c
                .prepare_cached(
                    "SELECT idx, size, sha256 FROM parts WHERE message_id = ?1 ORDER BY idx",
                )?
                .query_map([&id], |r| {
                    Ok(PartInfo {
                        index: r.get(0)?,
                        size: r.get::<_, i64>(1)? as u64,
                        sha256: parse_sha(r.get(2)?)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some(StoredMessage {
                item,
                envelope,
                signature,
                accepted_at,
                parts,
            }))
        })
        .await
    }

    async fn part(&self, message_id: &str, index: u32) -> Result<Option<PartData>> {
        let id = message_id.to_owned();
        self.read(move |c| {
            let row: Option<(Vec<u8>, i64, Option<Vec<u8>>)> = c
                .prepare_cached(
                    "SELECT p.sha256, p.size, coalesce(p.data, b.data) FROM parts p
                     LEFT JOIN blobs b ON p.data IS NULL AND b.sha256 = p.sha256
                     WHERE p.message_id = ?1 AND p.idx = ?2",
                )?
                .query_row(params![id, index], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            Ok(match row {
                None => None,
                Some((_, _, Some(data))) => Some(PartData::Inline(data)),
                Some((sha, size, None)) => Some(PartData::Blob {
                    sha256: parse_sha(sha)?,
                    size: size as u64,
                }),
            })
        })
        .await
    }

    async fn mark_read(
        &self,
        account_id: i64,
        actor: &str,
        message_id: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let (id, actor) = (message_id.to_owned(), actor.to_owned());
        self.write(move |c, chain| {
            let in_box: bool = c.query_row(
                "SELECT EXISTS(SELECT 1 FROM mailbox WHERE account_id = ?1 AND message_id = ?2 AND folder != 'sent')",
                params![account_id, id],
                |r| r.get(0),
            )?;
            if !in_box {
                return Err(StorageError::NotFound("message"));
            }
            let changed = c.execute(
                "UPDATE mailbox SET unread = 0 WHERE account_id = ?1 AND message_id = ?2 AND unread = 1",
                params![account_id, id],
            )?;
            if changed > 0 {
                chain.append(c, now, &LogEvent::new("read", &actor, &id))?;
            }
            Ok(changed > 0)
        })
        .await
    }

    async fn move_to(
        &self,
        account_id: i64,
        message_id: &str,
        from: Folder,
        to: Folder,
    ) -> Result<()> {
        let id = message_id.to_owned();
        self.write(move |c, _| {
            let n = c.execute(
                "UPDATE mailbox SET folder = ?1 WHERE account_id = ?2 AND message_id = ?3 AND folder = ?4",
                params![to.as_str(), account_id, id, from.as_str()],
            )?;
            if n == 0 {
                return Err(StorageError::NotFound("message in that folder"));
            }
            Ok(())
        })
        .await
    }

    async fn delete(
        &self,
        account_id: i64,
        actor: &str,
        message_id: &str,
        now: Timestamp,
    ) -> Result<Vec<[u8; 32]>> {
        let (id, actor) = (message_id.to_owned(), actor.to_owned());
        self.write(move |c, chain| {
            let n = c.execute(
                "DELETE FROM mailbox WHERE account_id = ?1 AND message_id = ?2",
                params![account_id, id],
            )?;
            if n == 0 {
                return Err(StorageError::NotFound("message"));
            }
            chain.append(c, now, &LogEvent::new("deletion", &actor, &id))?;
            drop_message_if_unreferenced(c, &id)
        })
        .await
    }

    async fn log(&self, events: Vec<LogEvent>, now: Timestamp) -> Result<()> {
        self.write(move |c, chain| {
            for e in &events {
                chain.append(c, now, e)?;
            }
            Ok(())
        })
        .await
    }

    async fn checkpoint(&self, now: Timestamp) -> Result<()> {
        self.write(move |c, chain| chain.checkpoint(c, now)).await
    }

    async fn put_cert(
        &self,
        record: CertRecord,
        origin: &str,
        event: Option<LogEvent>,
        now: Timestamp,
    ) -> Result<()> {
        let origin = origin.to_owned();
        self.write(move |c, chain| {
            put_cert(c, &record, &origin, now)?;
            if let Some(e) = &event {
                chain.append(c, now, e)?;
            }
            Ok(())
        })
        .await
    }

    async fn cert_by_fingerprint(&self, fingerprint: &str) -> Result<Option<String>> {
        if let Some(a) = self.auth.cert(fingerprint) {
            return Ok(Some(a));
        }
        let generation = self.auth.generation();
        let f = fingerprint.to_owned();
        let armored = self
            .read_point(move |c| {
                Ok(query_certs(c, "SELECT armored FROM certs WHERE fingerprint = ?1", [f])?.pop())
            })
            .await?;
        if let Some(a) = &armored {
            self.auth.keep_cert(generation, fingerprint, a);
        }
        Ok(armored)
    }

    async fn certs_by_handle(&self, handle: &str) -> Result<Vec<String>> {
        let h = handle.to_owned();
        self.read(move |c| {
            query_certs(
                c,
                "SELECT c.armored FROM cert_handles h JOIN certs c ON c.fingerprint = h.fingerprint WHERE h.handle = ?1",
                [h],
            )
        })
        .await
    }

    async fn certs_by_email(&self, email: &str) -> Result<Vec<String>> {
        let e = email.to_owned();
        self.read(move |c| {
            query_certs(
                c,
                "SELECT c.armored FROM cert_emails e JOIN certs c ON c.fingerprint = e.fingerprint WHERE e.email = ?1",
                [e],
            )
        })
        .await
    }

    async fn certs_search(&self, text: &str, limit: usize) -> Result<Vec<String>> {
        // A substring of an address: escape LIKE's wildcards so they match literally.
        let pattern = format!(
            "%{}%",
            text.to_ascii_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        self.read(move |c| {
            query_certs(
                c,
                "SELECT c.armored FROM certs c WHERE c.fingerprint IN
                   (SELECT fingerprint FROM cert_emails WHERE email LIKE ?1 ESCAPE '\\') LIMIT ?2",
                params![pattern, limit as i64],
            )
        })
        .await
    }

    async fn all_certs(&self) -> Result<Vec<String>> {
        self.read(|c| query_certs(c, "SELECT armored FROM certs", []))
            .await
    }

    async fn certs_since(&self, generation: u64) -> Result<Vec<String>> {
        self.read(move |c| {
            query_certs(
                c,
                "SELECT armored FROM certs WHERE generation > ?1",
                [generation as i64],
            )
        })
        .await
    }

    async fn cert_generation(&self) -> Result<u64> {
        // Only `put_cert` moves it, in the transaction that writes `certs` (which bumps the
        // cache's generation).
        if let Some(g) = self.auth.cert_generation() {
            return Ok(g);
        }
        let generation = self.auth.generation();
        let g = self
            .read_point(|c| {
                Ok(
                    c.prepare_cached("SELECT value FROM meta WHERE key = 'cert_generation'")?
                        .query_row([], |r| r.get::<_, i64>(0))? as u64,
                )
            })
            .await?;
        self.auth.keep_cert_generation(generation, g);
        Ok(g)
    }

    async fn verify_log(&self) -> Result<LogReport> {
        let key = self.verifying_key;
        self.read(move |c| {
            let mut v = txlog::ChainVerifier::new();
            let mut entries = 0u64;
            let mut stmt = c.prepare(
                "SELECT seq, at, kind, actor, subject, detail, prev, hash FROM txlog ORDER BY seq",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let e = txlog::Entry {
                    seq: r.get::<_, i64>(0)? as u64,
                    at: r.get(1)?,
                    kind: r.get(2)?,
                    actor: r.get(3)?,
                    subject: r.get(4)?,
                    detail: r.get(5)?,
                };
                let prev: Vec<u8> = r.get(6)?;
                let hash: Vec<u8> = r.get(7)?;
                v.entry(&e, &prev, &hash);
                entries += 1;
            }
            let mut checkpoints = 0u64;
            let mut stmt =
                c.prepare("SELECT seq, hash, at, signature FROM checkpoints ORDER BY seq")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let hash: Vec<u8> = r.get(1)?;
                let sig: Vec<u8> = r.get(3)?;
                v.checkpoint(&key, r.get::<_, i64>(0)? as u64, &hash, r.get(2)?, &sig);
                checkpoints += 1;
            }
            Ok(LogReport {
                entries,
                checkpoints,
                first_broken: v.first_broken,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(conn: &Connection, table: &str) -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    fn settings() -> WriterSettings {
        WriterSettings {
            group_commit_max: 16,
            group_commit_window: std::time::Duration::ZERO,
            write_queue: 16,
            checkpoint_every: 1000,
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

    /// A batch whose middle operation fails after writing: the others are committed (each
    /// once, with a valid log chain), the failed one leaves no row and no log entry, and its
    /// caller gets its own error.
    #[tokio::test]
    async fn a_failed_operation_leaves_nothing_and_spares_its_batch() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sealpost.db");
        let key = SigningKey::from_bytes(&[7; 32]);
        drop(SqliteStore::open(&path, key.clone(), settings()).unwrap());
        let conn = open_connection(&path).unwrap();
        let mut chain = Chain {
            head: ChainHead {
                seq: 0,
                hash: txlog::GENESIS,
                signed_seq: 0,
            },
            key: Arc::new(key.clone()),
            checkpoint_every: 1000,
        };
        let runs = Arc::new(AtomicUsize::new(0));
        let mut answers = Vec::new();
        let mut batch: Vec<Job> = Vec::new();
        for (name, fails) in [("one", false), ("two", true), ("three", false)] {
            let (tx, rx) = oneshot::channel();
            let runs = runs.clone();
            let f = move |c: &Connection, chain: &mut Chain| -> Result<()> {
                runs.fetch_add(1, Ordering::Relaxed);
                c.execute("INSERT INTO meta (key, value) VALUES (?1, 1)", [name])?;
                chain.append(c, 1, &LogEvent::new("test.op", name, name))?;
                if fails {
                    return Err(StorageError::Conflict(format!("{name} fails")));
                }
                Ok(())
            };
            batch.push(Box::new(Op {
                f,
                result: None,
                tx,
            }));
            answers.push(rx);
        }
        run_batch(&conn, &mut chain, &mut batch).unwrap();
        for job in batch {
            job.finish(Ok(()));
        }
        let answers: Vec<_> = futures::future::join_all(answers).await;
        assert!(matches!(answers[0], Ok(Ok(()))));
        assert!(matches!(&answers[1], Ok(Err(StorageError::Conflict(m))) if m == "two fails"));
        assert!(matches!(answers[2], Ok(Ok(()))));
        // Fast path (stopped at the failure: 2 runs), then all three again in savepoints.
        assert_eq!(runs.load(Ordering::Relaxed), 5);
        let texts = |sql: &str| -> Vec<String> {
            conn.prepare(sql)
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        assert_eq!(
            texts("SELECT key FROM meta WHERE key IN ('one', 'two', 'three') ORDER BY key"),
            ["one", "three"]
        );
        assert_eq!(
            texts("SELECT actor FROM txlog WHERE kind = 'test.op' ORDER BY seq"),
            ["one", "three"]
        );
        drop(conn);
        let store = SqliteStore::open(&path, key, settings()).unwrap();
        let report = store.verify_log().await.unwrap();
        assert_eq!(report.first_broken, None);
    }
}
