//! What authenticating a request and resolving a local address read, kept in memory until a
//! write changes it.
//!
//! Every request looks up the account behind its session token, and every submission the
//! accounts of its recipients. A reader's SQLite page cache is dropped at the start of every
//! read that follows a commit, so under write load each of those look-ups read cold pages:
//! 12 % of the node's CPU when accepting submissions.
//!
//! Invalidation does not depend on which code path (or which process) makes a change:
//! triggers on `accounts`, `sessions` and `certs` bump `meta.auth_generation` in the
//! transaction that makes the change. The writer reads the counter inside each batch and
//! publishes it after the batch commits and before any of its callers is answered, so a
//! logout, a disabled account or a revoked key is seen by the very next request. Changes made
//! by another process (the admin CLI writes to the same database) are picked up by the
//! writer's next batch, or by its idle poll every [`POLL`]; the CLI waits twice that long after
//! such a change before it returns. An entry is used only while the published generation is
//! the one that was current before the entry was read from the database.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::Connection;

use crate::storage::{Account, Result, Timestamp};

/// How often an idle writer looks for changes made by another process.
pub const POLL: Duration = Duration::from_millis(25);

/// Entries kept per kind; the map is emptied when full (a miss is only a database read).
const MAX_ENTRIES: usize = 10_000;

/// The generation counter's current value, read by `conn` (inside the writer's transaction,
/// or alone when idle).
pub(super) fn read_generation(conn: &Connection) -> Result<u64> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'auth_generation'")?
        .query_row([], |r| r.get::<_, i64>(0))? as u64)
}

pub(super) struct AuthCache {
    /// The last generation the writer saw committed.
    published: AtomicU64,
    entries: Mutex<Entries>,
}

struct Entries {
    generation: u64,
    /// Session token hash to the session's expiry and its account.
    sessions: HashMap<[u8; 32], (Timestamp, Account)>,
    /// Local accounts by address.
    accounts: HashMap<String, Account>,
}

impl AuthCache {
    pub(super) fn new(generation: u64) -> AuthCache {
        AuthCache {
            published: AtomicU64::new(generation),
            entries: Mutex::new(Entries {
                generation,
                sessions: HashMap::new(),
                accounts: HashMap::new(),
            }),
        }
    }

    /// Called by the writer once the generation `g` is committed.
    pub(super) fn publish(&self, g: u64) {
        self.published.fetch_max(g, Ordering::AcqRel);
    }

    /// The current generation: take it before reading what is to be kept.
    pub(super) fn generation(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// The entries of the current generation (emptied if the generation moved on).
    fn current(&self) -> std::sync::MutexGuard<'_, Entries> {
        let mut e = self.entries.lock().expect("auth cache");
        // Loaded under the lock, so the entries' generation never goes backwards.
        let g = self.published.load(Ordering::Acquire);
        if e.generation != g {
            e.sessions.clear();
            e.accounts.clear();
            e.generation = g;
        }
        e
    }

    pub(super) fn session(&self, token_hash: &[u8; 32], now: Timestamp) -> Option<Account> {
        match self.current().sessions.get(token_hash) {
            Some((expires_at, account)) if *expires_at > now => Some(account.clone()),
            _ => None,
        }
    }

    pub(super) fn account(&self, address: &str) -> Option<Account> {
        self.current().accounts.get(address).cloned()
    }

    /// Keeps a session read from the database when the generation was `generation`.
    pub(super) fn keep_session(
        &self,
        generation: u64,
        token_hash: [u8; 32],
        expires_at: Timestamp,
        account: &Account,
    ) {
        let mut e = self.current();
        if e.generation == generation {
            keep(&mut e.sessions, token_hash, (expires_at, account.clone()));
        }
    }

    /// Keeps an account read from the database when the generation was `generation`.
    pub(super) fn keep_account(&self, generation: u64, account: &Account) {
        let mut e = self.current();
        if e.generation == generation {
            keep(&mut e.accounts, account.address.clone(), account.clone());
        }
    }
}

/// Inserts into a map bounded by [`MAX_ENTRIES`] (emptied when full: a miss is only a read).
fn keep<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, value: V) {
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map.insert(key, value);
}
