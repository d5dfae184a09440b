//! [`TrustCache`]: the current [`TrustNetwork`] plus cached answers, with
//! exact invalidation.
//!
//! The node keeps one `TrustCache` (shared across tasks) and tells it about
//! every change to a certificate: a new or updated certificate, a new
//! certification, a revocation ([`TrustCache::update_cert`]), a deleted
//! certificate ([`TrustCache::remove_cert`]), and the passing of time
//! ([`TrustCache::set_reference_time`]; now and then a full
//! [`TrustCache::rebuild`], which does not block queries).
//!
//! * Changes are queued; the network is brought up to date lazily, on the
//!   next query, and incrementally: only the changed certificates (and,
//!   when a certificate's validity as an issuer changed, the certificates
//!   holding signatures by it) are re-verified; moving the reference time
//!   forward re-verifies only the certificates with a signature or key
//!   created or expiring in between.
//! * Answers are cached per (viewer, viewer's CA, address); an
//!   authentication of one key is answered from that entry (all claimants
//!   of an address are evaluated together so that conflicts are seen).
//!   Each cached answer records exactly which certificates' entries and
//!   which addresses sequoia-wot read while computing it; a change drops
//!   the answers that read something the change alters, and only those.
//! * A cached answer is never served after a change that could alter it:
//!   invalidation happens inside `update_cert`, before it returns.
//! * The answer cache is bounded (first in, first out).
//!
//! No I/O and no clock: the node passes the reference time.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use sequoia_openpgp as openpgp;

use openpgp::policy::Policy;
use openpgp::{Cert, Fingerprint};

use crate::network::{Deps, TrustNetwork};
use crate::verdict::{Verdict, WhyNot};
use crate::{TrustError, normalize_address};

/// Default bound on cached answers.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// Counters, for tests, metrics and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Networks built from scratch (first query, reference time change).
    pub full_builds: u64,
    /// Networks derived incrementally from the previous one.
    pub incremental_builds: u64,
    /// Certificate entries re-verified by incremental builds.
    pub entries_recomputed: u64,
    /// Queries answered from the cache.
    pub hits: u64,
    /// Queries that had to ask sequoia-wot.
    pub misses: u64,
    /// Cached answers dropped because of a change.
    pub invalidated: u64,
    /// Cached answers dropped to respect the capacity.
    pub evicted: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    viewer: Fingerprint,
    viewer_ca: Fingerprint,
    address: String,
}

struct Cached {
    verdicts: Arc<Vec<Verdict>>,
    /// What computing it read, to unlink it from the indexes on removal.
    fprs: Vec<Fingerprint>,
    addresses: Vec<String>,
    global: bool,
}

struct State {
    policy: Arc<dyn Policy>,
    reference_time: SystemTime,
    /// The authoritative certificate set (public parts).
    certs: BTreeMap<Fingerprint, Arc<Cert>>,
    network: Option<Arc<TrustNetwork>>,
    /// Changes not yet applied to `network`.
    pending: BTreeMap<Fingerprint, Option<Arc<Cert>>>,
    /// The next build must start from scratch.
    full_rebuild: bool,
    /// Bumped whenever `network` is replaced or updated.
    generation: u64,
    /// While [`TrustCache::rebuild`] builds outside the lock: the
    /// certificates changed since its snapshot.
    change_log: Option<Vec<Fingerprint>>,

    results: HashMap<Key, Cached>,
    by_fpr: HashMap<Fingerprint, HashSet<Key>>,
    by_address: HashMap<String, HashSet<Key>>,
    global: HashSet<Key>,
    fifo: VecDeque<Key>,
    capacity: usize,

    stats: CacheStats,
}

/// The node's shared trust engine: the current network and a bounded,
/// exactly invalidated answer cache. `Send + Sync`; all methods take
/// `&self`. See the module documentation.
pub struct TrustCache {
    state: Mutex<State>,
    /// Serialises [`TrustCache::rebuild`]s (held while building, without
    /// blocking queries).
    rebuilding: Mutex<()>,
}

impl std::fmt::Debug for TrustCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustCache")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl TrustCache {
    /// A cache over `certs` (secret key material is dropped; copies of a
    /// certificate are merged) at `reference_time`. Nothing is verified
    /// yet: the network is built on the first query (or by
    /// [`TrustCache::network`]).
    pub fn new(
        certs: Vec<Cert>,
        policy: Arc<dyn Policy>,
        reference_time: SystemTime,
    ) -> Result<TrustCache, TrustError> {
        Self::with_capacity(certs, policy, reference_time, DEFAULT_CAPACITY)
    }

    /// Like [`TrustCache::new`], keeping at most `capacity` cached answers.
    pub fn with_capacity(
        certs: Vec<Cert>,
        policy: Arc<dyn Policy>,
        reference_time: SystemTime,
        capacity: usize,
    ) -> Result<TrustCache, TrustError> {
        let map = crate::network::merge_copies(certs)?;
        Ok(TrustCache {
            state: Mutex::new(State {
                policy,
                reference_time,
                certs: map.into_iter().map(|(f, c)| (f, Arc::new(c))).collect(),
                network: None,
                pending: BTreeMap::new(),
                full_rebuild: true,
                generation: 0,
                change_log: None,
                results: HashMap::new(),
                by_fpr: HashMap::new(),
                by_address: HashMap::new(),
                global: HashSet::new(),
                fifo: VecDeque::new(),
                capacity: capacity.max(1),
                stats: CacheStats::default(),
            }),
            rebuilding: Mutex::new(()),
        })
    }

    /// Inserts or replaces a certificate (the whole, current certificate
    /// as the node stores it, with all the certifications and revocations
    /// it carries). Cached answers that depended on it are dropped now;
    /// the network is updated on the next query.
    pub fn update_cert(&self, cert: Cert) {
        let cert = Arc::new(cert.strip_secret_key_material());
        let fpr = cert.fingerprint();
        let mut s = self.lock();
        let old = s.certs.insert(fpr.clone(), Arc::clone(&cert));
        s.invalidate_change(&fpr, old.as_deref(), Some(&cert));
        if let Some(log) = &mut s.change_log {
            log.push(fpr.clone());
        }
        s.pending.insert(fpr, Some(cert));
    }

    /// Removes a certificate. Cached answers that depended on it are
    /// dropped now; the network is updated on the next query.
    pub fn remove_cert(&self, fpr: &Fingerprint) {
        let mut s = self.lock();
        let Some(old) = s.certs.remove(fpr) else {
            return;
        };
        s.invalidate_change(fpr, Some(&old), None);
        if let Some(log) = &mut s.change_log {
            log.push(fpr.clone());
        }
        s.pending.insert(fpr.clone(), None);
    }

    /// Moves the reference time. The node calls this often (say every
    /// minute, and after storing a signature it wants considered at once):
    /// signatures dated after the reference time are ignored, and keys,
    /// signatures and soft revocations expire or take effect with it.
    ///
    /// Moving forward is incremental: the answers and entries dropped are
    /// exactly those of certificates with a time event (a signature or key
    /// created or expiring) in between, and the certificates depending on
    /// them as issuers. Moving backward drops everything and rebuilds from
    /// scratch on the next query.
    ///
    /// Time-dependent decisions of the policy itself (an algorithm's
    /// cut-off date) are only picked up by a full build: call
    /// [`TrustCache::rebuild`] now and then (say daily).
    pub fn set_reference_time(&self, reference_time: SystemTime) {
        let mut s = self.lock();
        if s.reference_time == reference_time {
            return;
        }
        match s.network.clone() {
            // Cached answers hold from the network's own time up to its
            // next event.
            Some(net) if reference_time >= net.reference_time() => {
                let affected = net.affected_by_time(net.reference_time(), reference_time);
                s.invalidate_fprs(&affected);
            }
            _ => s.clear_results(),
        }
        s.reference_time = reference_time;
    }

    /// Rebuilds the network from scratch at the current reference time,
    /// *without* blocking queries: they keep being answered from the
    /// current network while this call builds (in the caller's thread; run
    /// it on a blocking-task pool). Changes that arrive meanwhile are
    /// applied to the new network before it replaces the old one. Drops all
    /// cached answers.
    pub fn rebuild(&self) -> Result<(), TrustError> {
        let _one_at_a_time = self.rebuilding.lock().unwrap_or_else(|e| e.into_inner());
        let (certs, policy, t) = {
            let mut s = self.lock();
            s.change_log = Some(Vec::new());
            (s.certs.clone(), Arc::clone(&s.policy), s.reference_time)
        };
        let built = TrustNetwork::from_arcs(certs, policy, t);

        let mut s = self.lock();
        let log = s.change_log.take().unwrap_or_default();
        let mut net = built?;
        if s.reference_time < t {
            // Time went backwards meanwhile: the lazy path rebuilds.
            s.full_rebuild = true;
            return Ok(());
        }
        let changes: BTreeMap<Fingerprint, Option<Arc<Cert>>> = log
            .into_iter()
            .map(|f| {
                let c = s.certs.get(&f).cloned();
                (f, c)
            })
            .collect();
        let now = s.reference_time;
        net.apply_changes(&changes, now)?;
        s.network = Some(Arc::new(net));
        s.pending.clear();
        s.full_rebuild = false;
        s.generation += 1;
        s.stats.full_builds += 1;
        s.clear_results();
        Ok(())
    }

    /// The current reference time.
    pub fn reference_time(&self) -> SystemTime {
        self.lock().reference_time
    }

    /// The up-to-date network (building or updating it if needed).
    pub fn network(&self) -> Result<Arc<TrustNetwork>, TrustError> {
        let mut s = self.lock();
        s.ensure_network().map(|(net, _)| net)
    }

    /// The counters.
    pub fn stats(&self) -> CacheStats {
        self.lock().stats
    }

    /// Number of cached answers.
    pub fn cached_answers(&self) -> usize {
        self.lock().results.len()
    }

    /// [`TrustNetwork::lookup`] through the cache.
    pub fn lookup(
        &self,
        viewer: &Fingerprint,
        viewer_ca: &Fingerprint,
        address: &str,
    ) -> Result<Arc<Vec<Verdict>>, TrustError> {
        let Ok(address) = normalize_address(address) else {
            return Ok(Arc::new(Vec::new()));
        };
        let key = Key {
            viewer: viewer.clone(),
            viewer_ca: viewer_ca.clone(),
            address,
        };
        let (net, generation) = {
            let mut s = self.lock();
            if let Some(hit) = s.results.get(&key) {
                let verdicts = Arc::clone(&hit.verdicts);
                s.stats.hits += 1;
                return Ok(verdicts);
            }
            s.stats.misses += 1;
            s.ensure_network()?
        };

        // Computed without the lock: queries run in parallel.
        let deps = RefCell::new(Deps::default());
        let roots = TrustNetwork::viewer_roots(viewer, viewer_ca);
        let verdicts = Arc::new(net.lookup_tracked(&roots, &key.address, &deps));

        let mut s = self.lock();
        // Only cache what is still current: no change since we started.
        if s.generation == generation
            && s.pending.is_empty()
            && !s.full_rebuild
            && s.time_is_current()
        {
            s.insert(key, Arc::clone(&verdicts), deps.into_inner());
        }
        Ok(verdicts)
    }

    /// [`TrustNetwork::authenticate`] through the cache.
    pub fn authenticate(
        &self,
        viewer: &Fingerprint,
        viewer_ca: &Fingerprint,
        target: &Fingerprint,
        address: &str,
    ) -> Result<Verdict, TrustError> {
        let Ok(normalized) = normalize_address(address) else {
            return Ok(Verdict::none(
                target.clone(),
                address.to_string(),
                WhyNot::InvalidAddress,
            ));
        };
        let all = self.lookup(viewer, viewer_ca, &normalized)?;
        if let Some(v) = all.iter().find(|v| &v.target == target) {
            return Ok(v.clone());
        }
        // The key does not claim the address (or is unknown): nothing to
        // search, the network says why in O(1).
        let net = self.network()?;
        Ok(net.authenticate(viewer, viewer_ca, target, &normalized))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every
        // mutation is completed before anything can panic), so recover.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// Brings the network up to date; returns it and its generation.
    fn ensure_network(&mut self) -> Result<(Arc<TrustNetwork>, u64), TrustError> {
        let net_time = self.network.as_ref().map(|n| n.reference_time());
        let full = self.full_rebuild || net_time.is_none_or(|t| t > self.reference_time);
        if full {
            let net = TrustNetwork::from_arcs(
                self.certs.clone(),
                Arc::clone(&self.policy),
                self.reference_time,
            )?;
            self.network = Some(Arc::new(net));
            self.pending.clear();
            self.full_rebuild = false;
            self.generation += 1;
            self.stats.full_builds += 1;
            // Answers computed on another network must not survive.
            self.clear_results();
        } else if !self.pending.is_empty() || !self.time_is_current() {
            let pending = std::mem::take(&mut self.pending);
            let t = self.reference_time;
            let slot = self.network.as_mut().expect("checked above");
            // In place when no query holds the network (the usual case);
            // otherwise on a copy, leaving running queries their snapshot.
            match Arc::make_mut(slot).apply_changes(&pending, t) {
                Ok(recomputed) => {
                    self.generation += 1;
                    self.stats.incremental_builds += 1;
                    self.stats.entries_recomputed += recomputed as u64;
                }
                Err(e) => {
                    // Half-applied: start from scratch next time.
                    self.network = None;
                    self.full_rebuild = true;
                    self.generation += 1;
                    return Err(e);
                }
            }
        }
        let net = Arc::clone(self.network.as_ref().expect("built above"));
        Ok((net, self.generation))
    }

    /// Whether the network answers as it would at the desired reference
    /// time: nothing in the certificates happens between its own time and
    /// that one. Moving the clock without events in between then costs
    /// nothing (no copy of a network that queries are reading).
    fn time_is_current(&self) -> bool {
        match &self.network {
            Some(net) => {
                let t = net.reference_time();
                t <= self.reference_time && net.affected_by_time(t, self.reference_time).is_empty()
            }
            None => false,
        }
    }

    /// Drops the cached answers a change of certificate `fpr` (from `old`
    /// to `new`) can alter: those that read the entry of a certificate
    /// whose entry the change recomputes, and those about an address the
    /// certificate claims before or after.
    fn invalidate_change(&mut self, fpr: &Fingerprint, old: Option<&Cert>, new: Option<&Cert>) {
        if self.results.is_empty() {
            return;
        }
        let Some(net) = self.network.clone() else {
            return;
        };
        let mut doomed: HashSet<Key> = HashSet::new();
        for f in net.affected_by(fpr, old, new) {
            if let Some(keys) = self.by_fpr.get(&f) {
                doomed.extend(keys.iter().cloned());
            }
        }
        let mut addresses: BTreeSet<String> = BTreeSet::new();
        for c in old.into_iter().chain(new) {
            addresses.extend(TrustNetwork::addresses_of(c));
        }
        for a in &addresses {
            if let Some(keys) = self.by_address.get(a) {
                doomed.extend(keys.iter().cloned());
            }
        }
        doomed.extend(self.global.iter().cloned());
        self.drop_answers(doomed);
    }

    /// Drops the cached answers that read any of these certificates'
    /// entries (or read something global).
    fn invalidate_fprs(&mut self, fprs: &BTreeSet<Fingerprint>) {
        let mut doomed: HashSet<Key> = self.global.iter().cloned().collect();
        for f in fprs {
            if let Some(keys) = self.by_fpr.get(f) {
                doomed.extend(keys.iter().cloned());
            }
        }
        self.drop_answers(doomed);
    }

    fn drop_answers(&mut self, doomed: HashSet<Key>) {
        for key in doomed {
            if self.remove(&key) {
                self.stats.invalidated += 1;
            }
        }
    }

    fn insert(&mut self, key: Key, verdicts: Arc<Vec<Verdict>>, deps: Deps) {
        self.remove(&key);
        for f in &deps.fprs {
            self.by_fpr
                .entry(f.clone())
                .or_default()
                .insert(key.clone());
        }
        // The key's own address is always a dependency (the claimant list).
        let mut addresses = deps.addresses;
        addresses.insert(key.address.clone());
        for a in &addresses {
            self.by_address
                .entry(a.clone())
                .or_default()
                .insert(key.clone());
        }
        if deps.global {
            self.global.insert(key.clone());
        }
        self.results.insert(
            key.clone(),
            Cached {
                verdicts,
                fprs: deps.fprs.into_iter().collect(),
                addresses: addresses.into_iter().collect(),
                global: deps.global,
            },
        );
        self.fifo.push_back(key);

        while self.results.len() > self.capacity {
            let Some(oldest) = self.fifo.pop_front() else {
                break;
            };
            if self.remove(&oldest) {
                self.stats.evicted += 1;
            }
        }
        // Keys invalidated earlier linger in the queue; compact it so it
        // stays bounded too.
        if self.fifo.len() > 2 * self.capacity {
            let results = &self.results;
            self.fifo.retain(|k| results.contains_key(k));
        }
    }

    /// Removes one cached answer and its index entries.
    fn remove(&mut self, key: &Key) -> bool {
        let Some(cached) = self.results.remove(key) else {
            return false;
        };
        for f in &cached.fprs {
            if let Some(set) = self.by_fpr.get_mut(f) {
                set.remove(key);
                if set.is_empty() {
                    self.by_fpr.remove(f);
                }
            }
        }
        for a in &cached.addresses {
            if let Some(set) = self.by_address.get_mut(a) {
                set.remove(key);
                if set.is_empty() {
                    self.by_address.remove(a);
                }
            }
        }
        if cached.global {
            self.global.remove(key);
        }
        true
    }

    fn clear_results(&mut self) {
        self.stats.invalidated += self.results.len() as u64;
        self.results.clear();
        self.by_fpr.clear();
        self.by_address.clear();
        self.global.clear();
        self.fifo.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<TrustCache>();
    }
}
