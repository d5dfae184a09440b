//! [`TrustNetwork`]: the verified certification graph, built once, queried
//! many times.
//!
//! Building is the expensive part: every certificate is checked against
//! the policy at the reference time and every third-party certification is
//! verified once, by sequoia-wot's own certificate store
//! ([`sequoia_wot::store::CertStore`], whose `precompute` verifies in
//! parallel). The results — one [`CertSynopsis`] and one list of active
//! [`CertificationSet`]s per certificate — are kept in an owned snapshot
//! that implements sequoia-wot's [`Store`] trait. A query then builds a
//! sequoia-wot [`Network`](sequoia_wot::Network) over that snapshot with the
//! viewer's roots (a cheap struct) and lets sequoia-wot find the paths and
//! the max-flow: no certificate is parsed and no signature is verified
//! while answering.
//!
//! Updates are incremental (`apply_changes`, driven by
//! [`crate::TrustCache`]): only the changed certificates and, when a
//! certificate's validity as an issuer may have changed, the certificates
//! carrying signatures *by* it are recomputed. Moving the reference time
//! forward recomputes only the certificates with a time event (a signature
//! or key created or expiring) in between, found through an index of those
//! events.
//!
//! This module must not do I/O or read the clock: the reference time is
//! an argument.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::packet::UserID;
use openpgp::policy::Policy;
use openpgp::types::RevocationStatus as PgpRevocationStatus;
use openpgp::{Fingerprint, KeyHandle, KeyID};

use sequoia_wot as wot;

use wot::store::{Backend as _, Store, StoreError};
use wot::{CertSynopsis, CertificationSet, Depth, NetworkBuilder, Root, Roots};

use crate::verdict::{FULL, Hop, HopRole, Level, TrustPath, Verdict, WhyNot};
use crate::{CA_LOCAL_PART, TrustError, normalize_address};

/// When at least this many certificates, and at least half of all, are to
/// be (re)computed, sequoia-wot's parallel `precompute` over all
/// certificates is used; otherwise the entries are computed serially from
/// a certificate store holding only the certificates involved (the targets
/// and the alleged issuers of their signatures).
const PARALLEL_THRESHOLD: usize = 64;

/// The raw web-of-trust evidence for one binding, exactly as sequoia-wot
/// computes it, without Sealpost's key-validity policy (see
/// [`TrustNetwork::evidence`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The total trust amount (max-flow) found.
    pub amount: usize,
    /// Each path as the fingerprints from root to target, with the amount
    /// it contributes.
    pub paths: Vec<(Vec<Fingerprint>, usize)>,
}

/// Sealpost's view of a key at the reference time.
#[derive(Debug, Clone)]
enum KeyStatus {
    Valid,
    Revoked(String),
    Expired(SystemTime),
    Invalid(String),
}

/// A user ID on a certificate, with what Sealpost needs to know about it.
#[derive(Debug, Clone)]
struct UidInfo {
    /// Normalised email address of the user ID.
    address: String,
    userid: UserID,
    /// The owner's revocation of this user ID, if in effect.
    revoked: Option<String>,
}

/// Everything a query needs about one certificate, computed at build time.
struct Entry {
    /// sequoia-wot's summary; `None` if the certificate is not valid under
    /// the policy at the reference time (sequoia-wot then ignores it).
    synopsis: Option<CertSynopsis>,
    /// The active, verified third-party certifications on this
    /// certificate, grouped by issuer (sequoia-wot's "redges").
    redges: Arc<Vec<CertificationSet>>,
    status: KeyStatus,
    userids: Vec<UidInfo>,
    /// `Some(domain)` if the certificate has an `openpgp-ca@DOMAIN` user ID.
    ca_domain: Option<String>,
    /// The primary user ID's address (else the first one), for labels.
    primary_address: Option<String>,
}

/// What a query read from the snapshot, so that a cached answer can be
/// dropped exactly when something it read changes.
#[derive(Debug, Default, Clone)]
pub(crate) struct Deps {
    /// Certificates whose entry was read (including look-ups that missed).
    pub(crate) fprs: BTreeSet<Fingerprint>,
    /// Addresses whose claimant list was read.
    pub(crate) addresses: BTreeSet<String>,
    /// The query read something not attributable to a certificate (an
    /// iteration over all certificates, a key-ID look-up that missed): any
    /// change invalidates it.
    pub(crate) global: bool,
}

/// The roots of one query and who the viewer is (for hop roles).
pub(crate) struct QueryRoots<'q> {
    roots: Vec<(Fingerprint, usize)>,
    viewer: Option<&'q Fingerprint>,
    viewer_ca: Option<&'q Fingerprint>,
}

/// The verified web of trust at one reference time. See the module
/// documentation.
///
/// Cheap to share (`Arc<TrustNetwork>`), `Send + Sync`, immutable.
#[derive(Clone)]
pub struct TrustNetwork {
    policy: Arc<dyn Policy>,
    reference_time: SystemTime,
    /// The certificates (public parts only).
    certs: BTreeMap<Fingerprint, Arc<Cert>>,
    entries: BTreeMap<Fingerprint, Arc<Entry>>,
    /// Key ID of every primary key and subkey → certificates.
    keyids: BTreeMap<KeyID, BTreeSet<Fingerprint>>,
    /// Normalised address → certificates with a user ID for it.
    addresses: BTreeMap<String, BTreeSet<Fingerprint>>,
    /// Alleged issuer (key ID, from the signatures' issuer subpackets) →
    /// certificates carrying a certification or certification revocation
    /// from it. Kept whether or not the issuer is known, so that a new
    /// certificate re-validates the signatures it made earlier.
    issued: BTreeMap<KeyID, BTreeSet<Fingerprint>>,
    /// Every time at which a certificate's entry may change (signature
    /// creation and expiry, key creation and expiry), with whether the
    /// event can change the certificate's validity as an issuer. Lets the
    /// reference time move forward by recomputing only what changes.
    events: BTreeMap<SystemTime, BTreeSet<(Fingerprint, bool)>>,
}

impl std::fmt::Debug for TrustNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustNetwork")
            .field("reference_time", &self.reference_time)
            .field("certificates", &self.certs.len())
            .field("certifications", &self.certification_count())
            .finish()
    }
}

/// The certificates by fingerprint, public parts only, with copies of one certificate merged.
pub(crate) fn merge_copies(certs: Vec<Cert>) -> Result<BTreeMap<Fingerprint, Cert>, TrustError> {
    let mut map: BTreeMap<Fingerprint, Cert> = BTreeMap::new();
    for cert in certs {
        let cert = cert.strip_secret_key_material();
        let fpr = cert.fingerprint();
        let merged = match map.remove(&fpr) {
            Some(old) => old
                .merge_public(cert)
                .map_err(|e| TrustError::openpgp("merging copies of a certificate", e))?,
            None => cert,
        };
        map.insert(fpr, merged);
    }
    Ok(map)
}

impl TrustNetwork {
    /// Builds the network from `certs` (secret key material is dropped;
    /// copies of one certificate are merged) under `policy` at
    /// `reference_time`, verifying every certification once.
    ///
    /// Certificates that are not valid under the policy are kept (so that
    /// verdicts can say [`WhyNot::Invalid`]) but take no part in paths.
    /// Signatures created after `reference_time` are ignored, as
    /// sequoia-wot does: build with a reference time at or after the
    /// newest signature you want considered.
    pub fn new(
        certs: Vec<Cert>,
        policy: Arc<dyn Policy>,
        reference_time: SystemTime,
    ) -> Result<TrustNetwork, TrustError> {
        let map = merge_copies(certs)?;
        TrustNetwork::from_arcs(
            map.into_iter().map(|(f, c)| (f, Arc::new(c))).collect(),
            policy,
            reference_time,
        )
    }

    /// Builds from certificates that are already deduplicated and free of
    /// secret key material (the cache keeps them this way).
    pub(crate) fn from_arcs(
        certs: BTreeMap<Fingerprint, Arc<Cert>>,
        policy: Arc<dyn Policy>,
        reference_time: SystemTime,
    ) -> Result<TrustNetwork, TrustError> {
        let mut net = TrustNetwork {
            policy,
            reference_time,
            certs: BTreeMap::new(),
            entries: BTreeMap::new(),
            keyids: BTreeMap::new(),
            addresses: BTreeMap::new(),
            issued: BTreeMap::new(),
            events: BTreeMap::new(),
        };
        for (fpr, cert) in &certs {
            net.index(fpr, cert);
        }
        net.certs = certs;
        let all: BTreeSet<Fingerprint> = net.certs.keys().cloned().collect();
        net.entries = net.compute_entries(&all)?;
        Ok(net)
    }

    /// Applies `changes` (`Some(cert)`: insert or replace; `None`: remove)
    /// in place and moves the reference time forward to `reference_time`,
    /// recomputing only the entries that change: the changed certificates;
    /// the certificates with a time event in (old, new reference time];
    /// and, for each of those whose validity as an issuer may have changed,
    /// the certificates carrying signatures by it. Returns how many
    /// entries were recomputed.
    ///
    /// Panics if `reference_time` is earlier than the current one (that
    /// needs a full build). On error the network is inconsistent and must
    /// be rebuilt from scratch (the cache does so).
    pub(crate) fn apply_changes(
        &mut self,
        changes: &BTreeMap<Fingerprint, Option<Arc<Cert>>>,
        reference_time: SystemTime,
    ) -> Result<usize, TrustError> {
        assert!(reference_time >= self.reference_time, "time moves forward");
        let mut affected: BTreeSet<Fingerprint> = BTreeSet::new();
        for (fpr, new) in changes {
            affected.insert(fpr.clone());
            let old = self.certs.remove(fpr);
            // The certificates holding signatures by this one only change if
            // its validity as an issuer may have (see `issuer_part`).
            let as_issuer_changed = match (&old, new) {
                (Some(old), Some(new)) => issuer_part(old) != issuer_part(new),
                _ => true,
            };
            if let Some(old) = old {
                if as_issuer_changed {
                    affected.extend(self.issued_targets(&old));
                }
                self.unindex(fpr, &old);
                self.entries.remove(fpr);
            }
            if let Some(new) = new {
                self.index(fpr, new);
                self.certs.insert(fpr.clone(), new.clone());
                if as_issuer_changed {
                    affected.extend(self.issued_targets(new));
                }
            }
        }
        affected.extend(self.affected_by_time(self.reference_time, reference_time));
        self.reference_time = reference_time;
        affected.retain(|f| self.certs.contains_key(f));
        let recomputed = self.compute_entries(&affected)?;
        let n = recomputed.len();
        self.entries.extend(recomputed);
        Ok(n)
    }

    /// The certificates whose entries differ between reference times
    /// `from` and `to` (`from <= to`): those with a time event in
    /// (`from`, `to`], and the certificates carrying signatures by those
    /// whose event can change their validity as an issuer.
    ///
    /// This covers everything in the certificates that depends on time;
    /// it cannot see time-dependent decisions of the policy itself (e.g. a
    /// hash algorithm's cut-off date), which only a full build picks up.
    pub(crate) fn affected_by_time(
        &self,
        from: SystemTime,
        to: SystemTime,
    ) -> BTreeSet<Fingerprint> {
        use std::ops::Bound::{Excluded, Included};
        let mut affected = BTreeSet::new();
        if to <= from {
            return affected;
        }
        for set in self
            .events
            .range((Excluded(from), Included(to)))
            .map(|(_, s)| s)
        {
            for (fpr, as_issuer) in set {
                affected.insert(fpr.clone());
                if *as_issuer && let Some(cert) = self.certs.get(fpr) {
                    affected.extend(self.issued_targets(cert));
                }
            }
        }
        affected
    }

    /// The certificates whose entries change when `old` is replaced by
    /// `new` (either may be absent), according to this network's indexes:
    /// the certificate itself and, if its validity as an issuer may have
    /// changed, every certificate carrying a signature allegedly made by
    /// one of its keys.
    pub(crate) fn affected_by(
        &self,
        fpr: &Fingerprint,
        old: Option<&Cert>,
        new: Option<&Cert>,
    ) -> BTreeSet<Fingerprint> {
        let mut affected = BTreeSet::from([fpr.clone()]);
        let as_issuer_changed = match (old, new) {
            (Some(old), Some(new)) => issuer_part(old) != issuer_part(new),
            _ => true,
        };
        if as_issuer_changed {
            for cert in old.into_iter().chain(new) {
                affected.extend(self.issued_targets(cert));
            }
        }
        affected
    }

    /// The normalised addresses of a certificate's user IDs.
    pub(crate) fn addresses_of(cert: &Cert) -> BTreeSet<String> {
        cert.userids()
            .filter_map(|ua| userid_address(ua.userid()))
            .collect()
    }

    /// The reference time everything is evaluated at.
    pub fn reference_time(&self) -> SystemTime {
        self.reference_time
    }

    /// The policy the network was built with.
    pub fn policy(&self) -> &Arc<dyn Policy> {
        &self.policy
    }

    /// Number of certificates (valid or not).
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Whether the network has no certificates.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// The certificate with this fingerprint (public parts).
    pub fn cert(&self, fpr: &Fingerprint) -> Option<&Cert> {
        self.certs.get(fpr).map(|c| c.as_ref())
    }

    /// The certificates (public parts), by fingerprint.
    pub fn certs(&self) -> impl Iterator<Item = &Cert> {
        self.certs.values().map(|c| c.as_ref())
    }

    /// Number of active, verified third-party certifications in the
    /// network (the graph's edges).
    pub fn certification_count(&self) -> usize {
        self.entries
            .values()
            .flat_map(|e| e.redges.iter())
            .flat_map(|cs| cs.certifications())
            .map(|(_, c)| c.len())
            .sum()
    }

    /// Is `target` the key of `address` for `viewer`, whose organisation
    /// CA is `viewer_ca`? Both are roots with full trust (Sealpost
    /// policy); see [`Verdict`] for the answer's invariants. Flags
    /// [`WhyNot::Conflict`] when another key claiming the address also
    /// has a path.
    pub fn authenticate(
        &self,
        viewer: &Fingerprint,
        viewer_ca: &Fingerprint,
        target: &Fingerprint,
        address: &str,
    ) -> Verdict {
        let deps = RefCell::new(Deps::default());
        self.authenticate_tracked(viewer, viewer_ca, target, address, &deps)
    }

    /// Every key claiming `address` (via a user ID) with its verdict for
    /// `viewer`, strongest first. If two or more keys have a non-zero
    /// amount, each of them carries [`WhyNot::Conflict`].
    pub fn lookup(
        &self,
        viewer: &Fingerprint,
        viewer_ca: &Fingerprint,
        address: &str,
    ) -> Vec<Verdict> {
        let deps = RefCell::new(Deps::default());
        match normalize_address(address) {
            Ok(addr) => self.lookup_tracked(&Self::viewer_roots(viewer, viewer_ca), &addr, &deps),
            Err(_) => Vec::new(),
        }
    }

    /// Like [`TrustNetwork::authenticate`], with arbitrary roots (each
    /// with its trust amount) instead of a viewer and their CA: for audit
    /// tools and for running sequoia-wot's test vectors through
    /// Sealpost's policy. Root hops get [`HopRole::Root`].
    pub fn authenticate_from_roots(
        &self,
        roots: &[(Fingerprint, usize)],
        target: &Fingerprint,
        address: &str,
    ) -> Verdict {
        let deps = RefCell::new(Deps::default());
        let q = QueryRoots {
            roots: roots.to_vec(),
            viewer: None,
            viewer_ca: None,
        };
        match normalize_address(address) {
            Ok(addr) => self.select(&q, target, &addr, &deps),
            Err(_) => Verdict::none(target.clone(), address.to_string(), WhyNot::InvalidAddress),
        }
    }

    /// The raw web-of-trust evidence for the binding (`target`,
    /// `userid`) from `roots`, exactly as sequoia-wot computes it over
    /// this network (stopping once `required` is reached), *without*
    /// Sealpost's policy: sequoia-wot 0.15 does not look at the target
    /// key's own revocation or expiry, Sealpost does (see the crate
    /// documentation).
    pub fn evidence(
        &self,
        roots: &[(Fingerprint, usize)],
        target: &Fingerprint,
        userid: &UserID,
        required: usize,
    ) -> Evidence {
        let deps = RefCell::new(Deps::default());
        // Raw: the regular expressions apply to `userid` as written, as in sequoia-wot.
        let view = View {
            net: self,
            deps: &deps,
            scope: None,
        };
        let network = NetworkBuilder::rooted(&view, to_roots(roots)).build();
        let paths = network.authenticate(userid, target, required);
        Evidence {
            amount: paths.amount(),
            paths: paths
                .iter()
                .map(|(p, a)| (p.certificates().map(|c| c.fingerprint()).collect(), *a))
                .collect(),
        }
    }

    // ---- tracked queries (used by the cache) ----

    pub(crate) fn viewer_roots<'q>(
        viewer: &'q Fingerprint,
        viewer_ca: &'q Fingerprint,
    ) -> QueryRoots<'q> {
        QueryRoots {
            roots: vec![(viewer.clone(), FULL), (viewer_ca.clone(), FULL)],
            viewer: Some(viewer),
            viewer_ca: Some(viewer_ca),
        }
    }

    pub(crate) fn authenticate_tracked(
        &self,
        viewer: &Fingerprint,
        viewer_ca: &Fingerprint,
        target: &Fingerprint,
        address: &str,
        deps: &RefCell<Deps>,
    ) -> Verdict {
        match normalize_address(address) {
            Ok(addr) => self.select(&Self::viewer_roots(viewer, viewer_ca), target, &addr, deps),
            Err(_) => Verdict::none(target.clone(), address.to_string(), WhyNot::InvalidAddress),
        }
    }

    /// The verdict for `target` among all claimants of `addr` (so that a
    /// conflict is seen), or on its own if it does not claim `addr`.
    fn select(
        &self,
        q: &QueryRoots<'_>,
        target: &Fingerprint,
        addr: &str,
        deps: &RefCell<Deps>,
    ) -> Verdict {
        let claims = self
            .addresses
            .get(addr)
            .is_some_and(|set| set.contains(target));
        if claims {
            self.lookup_tracked(q, addr, deps)
                .into_iter()
                .find(|v| &v.target == target)
                .expect("a claimant gets a verdict")
        } else {
            self.base_verdict(q, target, addr, deps)
        }
    }

    pub(crate) fn lookup_tracked(
        &self,
        q: &QueryRoots<'_>,
        addr: &str,
        deps: &RefCell<Deps>,
    ) -> Vec<Verdict> {
        deps.borrow_mut().addresses.insert(addr.to_string());
        let Some(claimants) = self.addresses.get(addr) else {
            return Vec::new();
        };
        let mut verdicts: Vec<Verdict> = claimants
            .iter()
            .map(|fpr| self.base_verdict(q, fpr, addr, deps))
            .collect();

        // Two keys with evidence for one address: neither may be used
        // silently, whichever is "stronger" (the other could be the
        // attacker's, or a forgotten old key).
        let with_paths: Vec<Fingerprint> = verdicts
            .iter()
            .filter(|v| v.amount > 0)
            .map(|v| v.target.clone())
            .collect();
        if with_paths.len() > 1 {
            for v in verdicts.iter_mut().filter(|v| v.amount > 0) {
                let others = with_paths
                    .iter()
                    .filter(|f| **f != v.target)
                    .cloned()
                    .collect();
                v.why_not = Some(WhyNot::Conflict { others });
            }
        }
        verdicts.sort_by(|a, b| b.amount.cmp(&a.amount).then(a.target.cmp(&b.target)));
        verdicts
    }

    /// The verdict for one key and address, ignoring other claimants.
    fn base_verdict(
        &self,
        q: &QueryRoots<'_>,
        target: &Fingerprint,
        addr: &str,
        deps: &RefCell<Deps>,
    ) -> Verdict {
        let none = |why| Verdict::none(target.clone(), addr.to_string(), why);
        deps.borrow_mut().fprs.insert(target.clone());
        let Some(entry) = self.entries.get(target) else {
            return none(WhyNot::UnknownKey);
        };
        // Sealpost policy: a revoked, expired or invalid key is never
        // authenticated, whatever the web of trust says (sequoia-wot 0.15
        // no longer checks the target's own validity).
        match &entry.status {
            KeyStatus::Valid => {}
            KeyStatus::Revoked(reason) => {
                return none(WhyNot::Revoked {
                    reason: reason.clone(),
                });
            }
            KeyStatus::Expired(at) => return none(WhyNot::Expired { at: *at }),
            KeyStatus::Invalid(reason) => {
                return none(WhyNot::Invalid {
                    reason: reason.clone(),
                });
            }
        }
        let uids: Vec<&UidInfo> = entry.userids.iter().filter(|u| u.address == addr).collect();
        if uids.is_empty() {
            return none(WhyNot::AddressNotOnKey);
        }
        let live: Vec<&UidInfo> = uids
            .iter()
            .copied()
            .filter(|u| u.revoked.is_none())
            .collect();
        if live.is_empty() {
            return none(WhyNot::UserIdRevoked {
                reason: uids[0].revoked.clone().unwrap_or_default(),
            });
        }

        // Several user IDs may carry the same address ("Bob <bob@x>" and
        // "<bob@x>"): the best-authenticated one answers.
        let mut best: Option<wot::Paths> = None;
        for uid in live {
            // Scopes are matched as mail matches addresses (see `ScopeFold`):
            // one view per user ID, since that is what the scopes are matched
            // against.
            let view = View {
                net: self,
                deps,
                scope: ScopeFold::of(&uid.userid),
            };
            let network = NetworkBuilder::rooted(&view, to_roots(&q.roots)).build();
            let paths = network.authenticate(&uid.userid, target, FULL);
            if best.as_ref().is_none_or(|b| paths.amount() > b.amount()) {
                best = Some(paths);
            }
        }
        let paths = best.expect("at least one live user ID");
        let amount = paths.amount();
        let trust_paths = paths
            .iter()
            .map(|(p, a)| self.trust_path(q, p, *a, addr, deps))
            .collect();
        let why_not = if amount == 0 {
            Some(WhyNot::NoPath)
        } else if amount < FULL {
            Some(WhyNot::NotEnough { amount })
        } else {
            None
        };
        Verdict {
            target: target.clone(),
            address: addr.to_string(),
            amount,
            level: Level::of(amount),
            paths: trust_paths,
            why_not,
        }
    }

    /// Converts a sequoia-wot path into hops with Sealpost roles and labels.
    fn trust_path(
        &self,
        q: &QueryRoots<'_>,
        path: &wot::Path,
        amount: usize,
        target_addr: &str,
        deps: &RefCell<Deps>,
    ) -> TrustPath {
        let certs: Vec<&CertSynopsis> = path.certificates().collect();
        let edges: Vec<&wot::Certification> = path.certifications().collect();
        let last = certs.len() - 1;
        let mut hops = Vec::with_capacity(certs.len() + 1);
        for (i, c) in certs.iter().enumerate() {
            let fpr = c.fingerprint();
            // Labels come from the entry: record the read so a relabelled
            // certificate invalidates cached explanations too.
            deps.borrow_mut().fprs.insert(fpr.clone());
            let entry = self.entries.get(&fpr);
            let ca_domain = entry.and_then(|e| e.ca_domain.clone());
            let is_viewer = q.viewer == Some(&fpr);
            let is_ca = q.viewer_ca == Some(&fpr);
            let role = if i == 0 {
                if is_viewer {
                    HopRole::You
                } else if is_ca {
                    HopRole::YourCa
                } else {
                    HopRole::Root
                }
            } else if i == last {
                HopRole::Target
            } else if is_ca {
                HopRole::YourCa
            } else if is_viewer {
                HopRole::You
            } else if ca_domain.is_some() {
                HopRole::Ca
            } else {
                HopRole::Introducer
            };
            let (label, address) = if role == HopRole::Target {
                (target_addr.to_string(), Some(target_addr.to_string()))
            } else if let Some(domain) = ca_domain {
                (ca_label(&domain), Some(format!("{CA_LOCAL_PART}@{domain}")))
            } else {
                // The user ID the previous hop certified, else the first one.
                let certified = i
                    .checked_sub(1)
                    .and_then(|j| edges[j].userid())
                    .and_then(userid_address);
                let address = certified.or_else(|| entry.and_then(|e| e.primary_address.clone()));
                (address.clone().unwrap_or_else(|| fpr.to_hex()), address)
            };
            hops.push(Hop {
                fingerprint: fpr,
                label,
                role,
                address,
            });
        }
        // The viewer trusts their CA by policy; show that as the first step.
        if let (Some(viewer), Some(first)) = (q.viewer, hops.first())
            && first.role == HopRole::YourCa
            && &first.fingerprint != viewer
        {
            deps.borrow_mut().fprs.insert(viewer.clone());
            let address = self
                .entries
                .get(viewer)
                .and_then(|e| e.primary_address.clone());
            hops.insert(
                0,
                Hop {
                    fingerprint: viewer.clone(),
                    label: address.clone().unwrap_or_else(|| viewer.to_hex()),
                    role: HopRole::You,
                    address,
                },
            );
        }
        TrustPath { hops, amount }
    }

    // ---- building ----

    fn index(&mut self, fpr: &Fingerprint, cert: &Cert) {
        for ka in cert.keys() {
            self.keyids
                .entry(ka.key().keyid())
                .or_default()
                .insert(fpr.clone());
        }
        for addr in Self::addresses_of(cert) {
            self.addresses.entry(addr).or_default().insert(fpr.clone());
        }
        for issuer in alleged_issuers(cert) {
            self.issued.entry(issuer).or_default().insert(fpr.clone());
        }
        for (t, as_issuer) in time_events(cert) {
            self.events
                .entry(t)
                .or_default()
                .insert((fpr.clone(), as_issuer));
        }
    }

    fn unindex(&mut self, fpr: &Fingerprint, cert: &Cert) {
        fn remove<K: Ord>(map: &mut BTreeMap<K, BTreeSet<Fingerprint>>, k: K, fpr: &Fingerprint) {
            if let Some(set) = map.get_mut(&k) {
                set.remove(fpr);
                if set.is_empty() {
                    map.remove(&k);
                }
            }
        }
        for ka in cert.keys() {
            remove(&mut self.keyids, ka.key().keyid(), fpr);
        }
        for addr in Self::addresses_of(cert) {
            remove(&mut self.addresses, addr, fpr);
        }
        for issuer in alleged_issuers(cert) {
            remove(&mut self.issued, issuer, fpr);
        }
        for (t, as_issuer) in time_events(cert) {
            if let Some(set) = self.events.get_mut(&t) {
                set.remove(&(fpr.clone(), as_issuer));
                if set.is_empty() {
                    self.events.remove(&t);
                }
            }
        }
    }

    /// Certificates carrying signatures allegedly by a key of `cert`.
    fn issued_targets(&self, cert: &Cert) -> BTreeSet<Fingerprint> {
        cert.keys()
            .filter_map(|ka| self.issued.get(&ka.key().keyid()))
            .flatten()
            .cloned()
            .collect()
    }

    /// Computes the entries of `targets` with sequoia-wot's certificate
    /// store, which verifies the certifications.
    fn compute_entries(
        &self,
        targets: &BTreeSet<Fingerprint>,
    ) -> Result<BTreeMap<Fingerprint, Arc<Entry>>, TrustError> {
        if targets.is_empty() {
            return Ok(BTreeMap::new());
        }
        let parallel = targets.len() >= PARALLEL_THRESHOLD && targets.len() * 2 >= self.certs.len();
        // The store must hold the targets and every alleged issuer of a
        // signature on them; for a big batch, simply everything.
        let members: BTreeSet<&Fingerprint> = if parallel {
            self.certs.keys().collect()
        } else {
            let mut m: BTreeSet<&Fingerprint> = targets.iter().collect();
            for t in targets {
                for issuer in alleged_issuers(&self.certs[t]) {
                    if let Some(fprs) = self.keyids.get(&issuer) {
                        m.extend(fprs.iter());
                    }
                }
            }
            m
        };
        let policy: &dyn Policy = self.policy.as_ref();
        let store = wot::store::CertStore::from_cert_refs(
            members.iter().map(|f| self.certs[*f].as_ref()),
            policy,
            self.reference_time,
        )
        .map_err(|e| TrustError::openpgp("building the certificate store", e))?;
        if parallel {
            // Verifies all certifications, in parallel, into the store's cache.
            store.precompute();
        }

        let mut out = BTreeMap::new();
        for fpr in targets {
            let cert = &self.certs[fpr];
            let entry = self.entry(cert, &store);
            out.insert(fpr.clone(), Arc::new(entry));
        }
        Ok(out)
    }

    /// One certificate's entry: sequoia-wot's synopsis and verified
    /// certifications (from `store`), and Sealpost's view. The certificate
    /// is validated against the policy once; the synopsis is made from
    /// that, exactly as sequoia-wot's store makes it.
    fn entry<'a, S>(&self, cert: &Cert, store: &wot::store::CertStore<'a, '_, S>) -> Entry
    where
        S: sequoia_wot::sequoia_cert_store::store::Store<'a> + Send + Sync,
    {
        let policy: &dyn Policy = self.policy.as_ref();
        let t = self.reference_time;
        let vc = cert.with_policy(policy, t);
        let (synopsis, redges) = match &vc {
            Ok(vc) => (
                Some(CertSynopsis::from(vc)),
                store
                    .certifications_of(&cert.fingerprint(), Depth::from(0))
                    .unwrap_or_else(|_| Arc::new(Vec::new())),
            ),
            Err(_) => (None, Arc::new(Vec::new())),
        };
        let status = match &vc {
            Err(e) => KeyStatus::Invalid(format!("{e:#}")),
            Ok(vc) => {
                if let PgpRevocationStatus::Revoked(sigs) = vc.revocation_status() {
                    KeyStatus::Revoked(revocation_reason(&sigs))
                } else if let Err(e) = vc.alive() {
                    match vc.primary_key().key_expiration_time() {
                        Some(exp) if exp <= t => KeyStatus::Expired(exp),
                        _ => KeyStatus::Invalid(format!("{e:#}")),
                    }
                } else {
                    KeyStatus::Valid
                }
            }
        };
        let mut userids = Vec::new();
        let mut ca_domain = None;
        let mut first_address = None;
        for ua in cert.userids() {
            let Some(address) = userid_address(ua.userid()) else {
                continue;
            };
            first_address.get_or_insert_with(|| address.clone());
            if let Some((CA_LOCAL_PART, domain)) = address.split_once('@') {
                ca_domain.get_or_insert_with(|| domain.to_string());
            }
            let revoked = match ua.revocation_status(policy, t) {
                PgpRevocationStatus::Revoked(sigs) => Some(revocation_reason(&sigs)),
                _ => None,
            };
            userids.push(UidInfo {
                address,
                userid: ua.userid().clone(),
                revoked,
            });
        }
        // Labels prefer the primary user ID's address.
        let primary_address = vc
            .as_ref()
            .ok()
            .and_then(|vc| vc.primary_userid().ok())
            .and_then(|ua| userid_address(ua.userid()))
            .or(first_address);
        Entry {
            synopsis,
            redges,
            status,
            userids,
            ca_domain,
            primary_address,
        }
    }
}

/// sequoia-wot roots from (fingerprint, amount) pairs.
fn to_roots(roots: &[(Fingerprint, usize)]) -> Roots {
    Roots::new(roots.iter().map(|(f, a)| Root::new(f.clone(), *a)))
}

/// The normalised email address of a user ID, if it has one.
fn userid_address(userid: &UserID) -> Option<String> {
    userid.email_normalized().ok().flatten()
}

/// "Alpha CA" for `alpha.test`: the first label, capitalised.
fn ca_label(domain: &str) -> String {
    let first = domain.split('.').next().unwrap_or(domain);
    let mut chars = first.chars();
    match chars.next() {
        Some(c) => format!("{}{} CA", c.to_uppercase(), chars.as_str()),
        None => "CA".to_string(),
    }
}

/// The key IDs named as issuers of the third-party signatures (and
/// certification revocations) on a certificate's user IDs and primary key.
fn alleged_issuers(cert: &Cert) -> BTreeSet<KeyID> {
    let mut out = BTreeSet::new();
    let mut add = |sig: &openpgp::packet::Signature| {
        for kh in sig.get_issuers() {
            out.insert(KeyID::from(&kh));
        }
    };
    for ua in cert.userids() {
        ua.certifications().for_each(&mut add);
        ua.other_revocations().for_each(&mut add);
    }
    let pk = cert.primary_key();
    pk.certifications().for_each(&mut add);
    pk.other_revocations().for_each(&mut add);
    out
}

/// Whether `sig` is a certification (or certification revocation) made by
/// someone else than the certificate's owner (`own`: the owner's keys).
fn third_party_certification(sig: &openpgp::packet::Signature, own: &[KeyHandle]) -> bool {
    use openpgp::types::SignatureType;
    let certification = matches!(
        sig.typ(),
        SignatureType::GenericCertification
            | SignatureType::PersonaCertification
            | SignatureType::CasualCertification
            | SignatureType::PositiveCertification
            | SignatureType::CertificationRevocation
    );
    certification
        && !sig
            .get_issuers()
            .iter()
            .any(|i| own.iter().any(|k| k.aliases(i)))
}

/// The part of a certificate that decides whether the certifications it
/// *issued* are valid: everything except the third-party certifications
/// and certification revocations it carries (those only change its own
/// entry). Serialized, for comparison.
fn issuer_part(cert: &Cert) -> Vec<u8> {
    use openpgp::Packet;
    use openpgp::serialize::Serialize;

    let own: Vec<KeyHandle> = cert.keys().map(|ka| ka.key().key_handle()).collect();
    let mut out = Vec::new();
    for packet in cert.clone().into_packets() {
        if let Packet::Signature(sig) = &packet
            && third_party_certification(sig, &own)
        {
            continue;
        }
        if packet.serialize(&mut out).is_err() {
            // Unserializable means "unknown": treat as changed.
            return Vec::new();
        }
    }
    out
}

/// The times at which the certificate's entry may change: key creation
/// and expiry, signature creation and expiry. The flag says whether the
/// event can change the certificate's validity as an issuer (everything
/// but third-party certifications on it).
fn time_events(cert: &Cert) -> BTreeSet<(SystemTime, bool)> {
    use openpgp::Packet;
    use openpgp::packet::key::{PublicParts, UnspecifiedRole};

    let own: Vec<KeyHandle> = cert.keys().map(|ka| ka.key().key_handle()).collect();
    let primary: openpgp::packet::Key<PublicParts, UnspecifiedRole> =
        cert.primary_key().key().clone().role_into_unspecified();
    let mut current = primary.clone();
    let mut out = BTreeSet::new();
    for packet in cert.clone().into_packets() {
        match packet {
            Packet::PublicKey(k) => {
                out.insert((k.creation_time(), true));
                current = k.role_into_unspecified();
            }
            Packet::PublicSubkey(k) => {
                out.insert((k.creation_time(), true));
                current = k.role_into_unspecified();
            }
            Packet::SecretKey(k) => {
                current = k.parts_into_public().role_into_unspecified();
            }
            Packet::SecretSubkey(k) => {
                current = k.parts_into_public().role_into_unspecified();
            }
            Packet::Signature(sig) => {
                let as_issuer = !third_party_certification(&sig, &own);
                if let Some(t) = sig.signature_creation_time() {
                    out.insert((t, as_issuer));
                }
                if let Some(t) = sig.signature_expiration_time() {
                    out.insert((t, as_issuer));
                }
                if as_issuer && let Some(t) = sig.key_expiration_time(&current) {
                    out.insert((t, true));
                }
            }
            // User IDs, attributes, unknown components: their signatures
            // speak about the primary key.
            _ => current = primary.clone(),
        }
    }
    out
}

/// A revocation's reason in words: "Key is superseded: moved to new key".
fn revocation_reason(sigs: &[&openpgp::packet::Signature]) -> String {
    match sigs.first().and_then(|s| s.reason_for_revocation()) {
        Some((code, [])) => code.to_string(),
        Some((code, msg)) => format!("{code}: {}", String::from_utf8_lossy(msg)),
        None => "no reason given".to_string(),
    }
}

/// The snapshot as sequoia-wot sees it during one query. Records what it
/// hands out.
struct View<'n> {
    net: &'n TrustNetwork,
    deps: &'n RefCell<Deps>,
    /// How trust signatures' scopes are matched in this query: `None`, as
    /// written (sequoia-wot's own rule, case-sensitive).
    scope: Option<ScopeFold>,
}

impl View<'_> {
    fn entry(&self, fpr: &Fingerprint) -> Option<&Arc<Entry>> {
        self.deps.borrow_mut().fprs.insert(fpr.clone());
        self.net.entries.get(fpr)
    }
}

/// Trust signatures' regular expressions matched as mail matches addresses:
/// against the target user ID as written *or* with its ASCII letters
/// lowercased, so `<John.Smith@Partner.COM>` is in the scope
/// `<[^>]+[@.]partner\.com>$` that [`crate::domain_regex`] makes.
///
/// ASCII only, on purpose: Unicode case folding (what a case-insensitive
/// `regex` compile does) maps the Kelvin sign U+212A to `k` and the long s
/// U+017F to `s`, which would bring a non-ASCII domain into an ASCII scope.
/// ASCII lowercasing only adds the case variants of the same ASCII
/// address (domains are case-insensitive, RFC 5321 and RFC 4343), so no
/// scope reaches another domain; and keeping the match as written means a
/// scope written with capitals matches what it matched before.
///
/// sequoia-wot matches a query's scopes against its target user ID only,
/// so the rule is applied by handing it, for this one user ID, each scoped
/// certification whose scope matches only the lowercased form with no
/// scope at all (`certifications_of`).
struct ScopeFold {
    raw: UserID,
    folded: UserID,
    /// The certification sets already adjusted in this query.
    adjusted: RefCell<BTreeMap<Fingerprint, Arc<Vec<CertificationSet>>>>,
}

impl ScopeFold {
    /// `None` when lowercasing changes nothing: the scopes are then
    /// matched as written, at no cost.
    fn of(userid: &UserID) -> Option<ScopeFold> {
        let folded = userid.value().to_ascii_lowercase();
        (folded != userid.value()).then(|| ScopeFold {
            raw: userid.clone(),
            folded: UserID::from(folded),
            adjusted: RefCell::default(),
        })
    }

    /// Whether `c`'s scope takes the target only once lowercased.
    fn widens(&self, c: &wot::Certification) -> bool {
        c.regular_expressions().is_some_and(|re| {
            !re.matches_everything()
                && !re.matches_userid(&self.raw)
                && re.matches_userid(&self.folded)
        })
    }

    /// `sets` with every certification whose scope takes the target only
    /// once lowercased made unscoped (for this query's target user ID,
    /// the same answer); `sets` itself when there is none.
    fn adjust(
        &self,
        fpr: &Fingerprint,
        sets: &Arc<Vec<CertificationSet>>,
        reference_time: SystemTime,
    ) -> Arc<Vec<CertificationSet>> {
        if let Some(done) = self.adjusted.borrow().get(fpr) {
            return Arc::clone(done);
        }
        let any = sets
            .iter()
            .flat_map(|cs| cs.certifications())
            .flat_map(|(_, cs)| cs.iter())
            .any(|c| self.widens(c));
        let out = if any {
            let certifications: Vec<wot::Certification> = sets
                .iter()
                .flat_map(|cs| cs.certifications())
                .flat_map(|(_, cs)| cs.iter())
                .map(|c| {
                    if self.widens(c) {
                        c.clone().set_regular_expressions(std::iter::empty())
                    } else {
                        c.clone()
                    }
                })
                .collect();
            Arc::new(CertificationSet::from_certifications(
                certifications,
                reference_time,
            ))
        } else {
            Arc::clone(sets)
        };
        self.adjusted
            .borrow_mut()
            .insert(fpr.clone(), Arc::clone(&out));
        out
    }
}

impl Store for View<'_> {
    fn reference_time(&self) -> SystemTime {
        self.net.reference_time
    }

    fn iter_fingerprints<'a>(&'a self) -> Box<dyn Iterator<Item = Fingerprint> + 'a> {
        self.deps.borrow_mut().global = true;
        Box::new(
            self.net
                .entries
                .iter()
                .filter(|(_, e)| e.synopsis.is_some())
                .map(|(f, _)| f.clone()),
        )
    }

    fn lookup_synopses(&self, kh: &KeyHandle) -> openpgp::Result<Vec<CertSynopsis>> {
        let fprs: Vec<Fingerprint> = match kh {
            KeyHandle::Fingerprint(f) => vec![f.clone()],
            KeyHandle::KeyID(id) => match self.net.keyids.get(id) {
                Some(set) => set.iter().cloned().collect(),
                None => {
                    // A key-ID miss cannot be pinned to a certificate.
                    self.deps.borrow_mut().global = true;
                    Vec::new()
                }
            },
        };
        let found: Vec<CertSynopsis> = fprs
            .iter()
            .filter_map(|f| self.entry(f).and_then(|e| e.synopsis.clone()))
            // A key-ID hit must be the primary key for lookup_synopses.
            .filter(|s| s.key_handle().aliases(kh))
            .collect();
        if found.is_empty() {
            Err(StoreError::NotFound(kh.clone()).into())
        } else {
            Ok(found)
        }
    }

    fn lookup_synopsis_by_fpr(&self, fpr: &Fingerprint) -> openpgp::Result<CertSynopsis> {
        self.entry(fpr)
            .and_then(|e| e.synopsis.clone())
            .ok_or_else(|| StoreError::NotFound(KeyHandle::from(fpr.clone())).into())
    }

    fn certifications_of(
        &self,
        target: &Fingerprint,
        _min_depth: Depth,
    ) -> openpgp::Result<Arc<Vec<CertificationSet>>> {
        match self.entry(target) {
            Some(e) if e.synopsis.is_some() => Ok(match &self.scope {
                Some(fold) => fold.adjust(target, &e.redges, self.net.reference_time),
                None => Arc::clone(&e.redges),
            }),
            _ => Err(StoreError::NotFound(KeyHandle::from(target.clone())).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_labels_come_from_the_first_domain_label() {
        assert_eq!(ca_label("alpha.test"), "Alpha CA");
        assert_eq!(ca_label("b.example"), "B CA");
    }

    #[test]
    fn network_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<TrustNetwork>();
    }
}
