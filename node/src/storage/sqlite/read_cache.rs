//! What authenticating a request, resolving an address and checking a peer read, kept in
//! memory until a write changes it.
//!
//! Every request looks up the account behind its session token, and every submission the
//! accounts of its recipients; a submission to a peer's user reads the peer and the user's
//! certificates, and a transfer from a peer reads the peer and the sender's certificate. A
//! reader's SQLite page cache is dropped at the start of every read that follows a commit, so
//! under write load each of those look-ups read cold pages: 12 % of the node's CPU when
//! accepting submissions, 5–7 % of each node's when federating.
//!
//! Invalidation does not depend on which code path (or which process) makes a change:
//! triggers on `accounts`, `sessions`, `certs` and `peers` (all but its outbox count) bump
//! `meta.auth_generation` in the
//! transaction that makes the change. The writer reads the counter inside each batch and
//! publishes it after the batch commits and before any of its callers is answered, so a
//! logout, a disabled account or a revoked key is seen by the very next request. Changes made
//! by another process (the admin CLI writes to the same database) are picked up by the
//! writer's next batch, by its idle poll every [`POLL`], or at once by `SqliteStore::catch_up`,
//! which the admin CLI asks for over the node's admin socket (`admin_socket`) before it
//! returns. An entry is used only while the published generation is
//! the one that was current before the entry was read from the database.
//!
//! It keeps answers, never a connection: apart from reading the counter through a connection it
//! is handed, it must not touch the database (the writer publishes generations; the concern
//! modules fill it after their own reads).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::Connection;

use crate::storage::accounts::Account;
use crate::storage::error::{Result, Timestamp};
use crate::storage::federation::PeerRecord;

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

pub(in crate::storage) struct ReadCache {
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
    /// Peer records by domain.
    peers: HashMap<String, PeerRecord>,
    /// Certificates (armored) by fingerprint.
    certs: HashMap<String, String>,
    /// A peer's users' certificates by (address, peer domain); empty answers are not kept.
    certs_from: HashMap<(String, String), Vec<String>>,
    /// `meta.cert_generation` (only moved by a write to `certs`).
    cert_generation: Option<u64>,
}

impl ReadCache {
    pub(super) fn new(generation: u64) -> ReadCache {
        ReadCache {
            published: AtomicU64::new(generation),
            entries: Mutex::new(Entries {
                generation,
                sessions: HashMap::new(),
                accounts: HashMap::new(),
                peers: HashMap::new(),
                certs: HashMap::new(),
                certs_from: HashMap::new(),
                cert_generation: None,
            }),
        }
    }

    /// Called by the writer once the generation `g` is committed.
    pub(super) fn publish(&self, g: u64) {
        self.published.fetch_max(g, Ordering::AcqRel);
    }

    /// The current generation: take it before reading what is to be kept.
    pub(in crate::storage) fn generation(&self) -> u64 {
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
            e.peers.clear();
            e.certs.clear();
            e.certs_from.clear();
            e.cert_generation = None;
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

impl ReadCache {
    pub(in crate::storage) fn peer(&self, domain: &str) -> Option<PeerRecord> {
        self.current().peers.get(domain).cloned()
    }

    /// Keeps a peer record read from the database when the generation was `generation`.
    pub(in crate::storage) fn keep_peer(&self, generation: u64, peer: &PeerRecord) {
        let mut e = self.current();
        if e.generation == generation {
            keep(&mut e.peers, peer.domain.clone(), peer.clone());
        }
    }

    pub(super) fn cert(&self, fingerprint: &str) -> Option<String> {
        self.current().certs.get(fingerprint).cloned()
    }

    pub(super) fn keep_cert(&self, generation: u64, fingerprint: &str, armored: &str) {
        let mut e = self.current();
        if e.generation == generation {
            keep(&mut e.certs, fingerprint.to_owned(), armored.to_owned());
        }
    }

    pub(in crate::storage) fn certs_from(&self, key: &(String, String)) -> Option<Vec<String>> {
        self.current().certs_from.get(key).cloned()
    }

    pub(in crate::storage) fn keep_certs_from(
        &self,
        generation: u64,
        key: (String, String),
        certs: &[String],
    ) {
        let mut e = self.current();
        if e.generation == generation {
            keep(&mut e.certs_from, key, certs.to_vec());
        }
    }

    pub(super) fn cert_generation(&self) -> Option<u64> {
        self.current().cert_generation
    }

    pub(super) fn keep_cert_generation(&self, generation: u64, value: u64) {
        let mut e = self.current();
        if e.generation == generation {
            e.cert_generation = Some(value);
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
