//! The embedded default [`MetaStore`](crate::storage::MetaStore): one SQLite file in WAL mode.
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
//!
//! One module per concern, each adding methods to [`SqliteStore`]: `accounts`, `mail`, `certs`,
//! `log`, `federation` (peers, received messages, served certificates), `web`, `notify`
//! (notification mail) and `pickup` implement the row traits; `outbox` holds the outbox's and delivery states' rows that submission and
//! federation both write; `rows` holds the row helpers several concerns share (parts and
//! blobs, certificates, JSON columns). Under them: `schema` (tables and migrations, in one
//! place), `writer` (the writer thread and group commit), `chain` (the log's head inside a
//! batch) and `read_cache`. This file holds the store itself and how operations reach the
//! writer and the readers; it uses only the modules under it. Imports only go down:
//! concern modules use `rows`, `outbox`, `chain` and this file, never each other otherwise.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use ed25519_dalek::{SigningKey, VerifyingKey};
use rusqlite::Connection;
use tokio::sync::oneshot;

use self::chain::{Chain, ChainHead};
use self::read_cache::ReadCache;
use self::schema::{migrate, open_connection};
use self::writer::{Job, Op, writer_loop};
use crate::storage::error::{Result, StorageError};
use crate::txlog;

mod accounts;
mod app_passwords;
mod certs;
mod chain;
mod compliance;
mod compliance_custody;
mod evidence;
mod federation;
mod log;
mod mail;
mod notify;
mod ops;
mod outbox;
mod outside_keys;
mod pickup;
mod read_cache;
mod rows;
mod schema;
mod smime;
pub mod snapshot;
#[cfg(test)]
mod tests;
mod web;
mod writer;

pub use self::writer::WriterSettings;

/// Most read connections open at once. Reads beyond this wait for a connection rather than
/// opening (and then closing) more: opening one costs far more than a typical query.
const MAX_READERS: usize = 8;

pub struct SqliteStore {
    path: PathBuf,
    writer: mpsc::SyncSender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    reader_permits: Arc<tokio::sync::Semaphore>,
    verifying_key: VerifyingKey,
    auth: Arc<ReadCache>,
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

    /// Publishes the generation committed by now, by any process, to the read cache: nothing
    /// it kept from before another process's commit is used after this returns (the admin
    /// socket answers with it; see `read_cache`). Returns that generation.
    pub async fn catch_up(&self) -> Result<u64> {
        let generation = self.read_point(read_cache::read_generation).await?;
        self.auth.publish(generation);
        Ok(generation)
    }

    /// Runs `f` in the writer's next batch; resolves once the batch is durably committed.
    /// `f` may be called more than once (see [`WriteJob::run`](writer::WriteJob::run)): it must
    /// only touch the database through `conn` and `chain`, and give the same answer for the same
    /// state.
    async fn write<R: Send + 'static>(
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

    /// Copies every committed page into the database file and empties the WAL file, so that
    /// no older version of a page a shred overwrote stays on disk there. Best effort: a reader
    /// holding an older snapshot makes it partial (logged); the next shred or sweep tries again.
    async fn truncate_wal(&self) {
        let path = self.path.clone();
        let done = tokio::task::spawn_blocking(move || -> Result<(i64, i64, i64)> {
            let c = schema::open_connection(&path)?;
            Ok(c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?)
        })
        .await;
        match done {
            Ok(Ok((0, _, _))) => {}
            Ok(Ok((busy, log, copied))) => {
                tracing::info!(
                    busy,
                    log,
                    copied,
                    "WAL truncation after a shred was partial"
                )
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "WAL truncation after a shred failed"),
            Err(e) => tracing::warn!(error = %e, "WAL truncation after a shred failed"),
        }
    }

    /// A point look-up (one row by key: microseconds): run it on the calling task rather than
    /// paying for a hop to the blocking pool, when a connection is free; otherwise queue like
    /// any read.
    async fn read_point<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let Ok(_permit) = self.reader_permits.clone().try_acquire_owned() else {
            return self.read(f).await;
        };
        with_reader(&self.readers, &self.path, f)
    }

    async fn read<R: Send + 'static>(
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
        .map_err(|e| StorageError::Database(format!("reader task failed: {e}").into()))?
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
