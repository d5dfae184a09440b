//! The writer thread: it takes the operations waiting in its queue, runs them in one
//! transaction (group commit), commits with one fsync and then answers each caller, and when
//! idle looks for changes another process committed (publishing them to the read cache).
//!
//! It knows nothing of any table but through `chain` and `read_cache`; what an operation does
//! is the operation's business. It must not answer a caller before the batch is committed.

use std::sync::{Arc, mpsc};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::chain::Chain;
use super::read_cache::{self, ReadCache};
use crate::storage::error::{Result, StorageError};

/// A write operation in the writer's queue.
pub(super) trait WriteJob: Send {
    /// Runs the operation inside the batch's transaction; `false` if it failed, in which case
    /// its changes must be undone. May run more than once: when another operation of the same
    /// batch fails, the batch is rolled back and run again, each operation in a savepoint.
    fn run(&mut self, conn: &Connection, chain: &mut Chain) -> bool;
    /// Answers the caller with the outcome of the batch's commit (or why it never ran).
    fn finish(self: Box<Self>, commit: Result<()>);
}

pub(super) type Job = Box<dyn WriteJob>;

pub(super) struct Op<F, R> {
    pub(super) f: F,
    pub(super) result: Option<Result<R>>,
    pub(super) tx: oneshot::Sender<Result<R>>,
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
    /// Where each commit's batch size and duration are recorded (`None`: nowhere).
    pub metrics: Option<crate::metrics::WriterMetrics>,
}

pub(super) fn writer_loop(
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
        let started = std::time::Instant::now();
        let committed = run_batch(&conn, &mut chain, &mut batch).map_err(Arc::new);
        if let Some(m) = &settings.metrics {
            m.committed(batch.len(), started.elapsed());
        }
        if let Ok(Some(g)) = committed {
            // Before anyone is answered: a caller that logged out, or disabled an account,
            // is not served from the cache afterwards.
            auth.publish(g);
        }
        for job in batch {
            job.finish(match &committed {
                Ok(_) => Ok(()),
                // A full disk is a typed answer of its own: the caller may say so and retry.
                Err(e) if matches!(**e, StorageError::Full) => Err(StorageError::Full),
                // The commit's error, shared by every caller of the batch as its source.
                Err(e) => Err(StorageError::Database(Box::new(e.clone()))),
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
pub(super) fn run_batch(
    conn: &Connection,
    chain: &mut Chain,
    batch: &mut [Job],
) -> Result<Option<u64>> {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::storage::sqlite::chain::ChainHead;
    use crate::storage::sqlite::schema::open_connection;
    use crate::storage::sqlite::tests::settings;
    use crate::storage::{LogEvent, LogStore, SqliteStore};
    use crate::txlog;

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
