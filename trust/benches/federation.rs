//! Federation benchmark: 50 organisations × 200 users, scoped bridges,
//! personal certifications.
//!
//! Prints the network build time and per-authentication latencies through
//! `sealpost-trust` (network built once; and through the answer cache)
//! versus sequoia-wot from scratch (certificate store and network built per
//! query, as a one-shot tool would). Run it in release mode:
//!
//! ```text
//! cargo bench -p sealpost-trust --bench federation
//! ```
//!
//! Not a test (`harness = false`, never run by `cargo test`). Sizes can be
//! overridden: `cargo bench -p sealpost-trust --bench federation -- ORGS USERS`;
//! `--no-user-tsigs` leaves out the users' trust signatures on their CA
//! (to measure what they cost cross-organisation queries).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sealpost_trust::sequoia_openpgp as openpgp;
use sealpost_trust::sequoia_wot as wot;
use sealpost_trust::{Level, TrustCache, TrustNetwork, ca_address, domain_regex};

use openpgp::cert::prelude::*;
use openpgp::crypto::KeyPair;
use openpgp::packet::UserID;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::policy::{Policy, StandardPolicy};
use openpgp::types::{Features, KeyFlags, SignatureType};
use openpgp::{Fingerprint, Packet, Profile};

/// Bridges per organisation, each way: org i bridges to i+1, i+2, i+7.
const BRIDGE_OFFSETS: [usize; 3] = [1, 2, 7];
const PERSONAL_PER_USER: usize = 5;
const QUERIES: usize = 2_000;
const SCRATCH_QUERIES: usize = 60;

/// 2026-01-01: keys are created then, signatures a minute later, queries
/// an hour later.
const T0: u64 = 1_767_225_600;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn domain(org: usize) -> String {
    format!("org{org}.test")
}

fn address(org: usize, user: usize) -> String {
    format!("user{user}@{}", domain(org))
}

fn gen_key(userid: UserID, ca: bool) -> Cert {
    let flags = if ca {
        KeyFlags::empty().set_certification()
    } else {
        KeyFlags::empty().set_certification().set_signing()
    };
    let mut b = CertBuilder::new()
        .set_profile(Profile::RFC4880)
        .expect("profile")
        .set_features(Features::empty().set_seipdv1())
        .expect("features")
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_creation_time(at(T0))
        .set_validity_period(None)
        .set_primary_key_flags(flags)
        .add_userid(userid);
    if !ca {
        b = b.add_subkey(
            KeyFlags::empty()
                .set_transport_encryption()
                .set_storage_encryption(),
            None,
            None,
        );
    }
    b.generate().expect("keygen").0
}

fn keypair(cert: &Cert) -> KeyPair {
    cert.primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .expect("secret")
        .into_keypair()
        .expect("keypair")
}

/// One signature to make: signer index, target index, trust signature
/// (regex domain) or plain.
struct Job {
    signer: usize,
    target: usize,
    tsig: Option<String>,
}

fn parallel<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = items.len().div_ceil(threads).max(1);
    // Contiguous chunks, in order, so results line up with the inputs.
    let mut chunks: Vec<Vec<T>> = Vec::new();
    let mut it = items.into_iter();
    loop {
        let c: Vec<T> = it.by_ref().take(chunk).collect();
        if c.is_empty() {
            break;
        }
        chunks.push(c);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|c| {
                let f = &f;
                s.spawn(move || c.into_iter().map(f).collect::<Vec<R>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    })
}

/// CPU time consumed by this thread (excludes time preempted by other
/// processes, which dominates wall-clock tails on a busy 2-core machine).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Wall-clock and CPU time of `f`.
fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration, Duration) {
    let (w, c) = (Instant::now(), thread_cpu());
    let r = f();
    (r, w.elapsed(), thread_cpu() - c)
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn report(name: &str, wall: Vec<Duration>, cpu: Vec<Duration>) {
    for (kind, mut times) in [("wall", wall), ("cpu", cpu)] {
        if times.is_empty() {
            continue;
        }
        times.sort();
        println!(
            "{name:<52} {kind:<4} n={:<5} p50 {:>10}  p90 {:>10}  p99 {:>10}  max {:>10}",
            times.len(),
            ms(percentile(&times, 50)),
            ms(percentile(&times, 90)),
            ms(percentile(&times, 99)),
            ms(*times.last().expect("some")),
        );
    }
}

/// A query's category, for reporting.
fn category(vo: usize, to: usize, bridged: bool) -> &'static str {
    if vo == to {
        "colleague"
    } else if bridged {
        "bridged org"
    } else {
        "other org"
    }
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let orgs = args.first().copied().unwrap_or(50);
    let users = args.get(1).copied().unwrap_or(200);
    // Experiment knob: leave out the users' trust signatures on their CA
    // (they are for sq/gpg interop; Sealpost's roots do not need them).
    let user_tsigs = !std::env::args().any(|a| a == "--no-user-tsigs");
    println!(
        "federation: {orgs} organisations × {users} users{}",
        if user_tsigs {
            ""
        } else {
            " (no user → CA tsigs)"
        }
    );

    // ---- keys ----
    let started = Instant::now();
    // Index: org * (users + 1) + 0 is the CA, + 1 + u the users.
    let per_org = users + 1;
    let specs: Vec<(usize, usize)> = (0..orgs)
        .flat_map(|o| (0..per_org).map(move |i| (o, i)))
        .collect();
    let keys: Vec<Cert> = parallel(specs, |(o, i)| {
        if i == 0 {
            gen_key(
                UserID::from(format!("OpenPGP CA <{}>", ca_address(&domain(o)))),
                true,
            )
        } else {
            gen_key(UserID::from(format!("<{}>", address(o, i - 1))), false)
        }
    });
    println!(
        "generated {} keys in {:.1} s",
        keys.len(),
        started.elapsed().as_secs_f64()
    );
    let ca = |o: usize| o * per_org;
    let user = |o: usize, u: usize| o * per_org + 1 + u;

    // ---- signatures ----
    let started = Instant::now();
    let mut rng = Rng(0x5EA1_9057);
    let mut jobs = Vec::new();
    for o in 0..orgs {
        for u in 0..users {
            // Enrolment: CA certifies the user; the user tsigns the CA.
            jobs.push(Job {
                signer: ca(o),
                target: user(o, u),
                tsig: None,
            });
            if user_tsigs {
                jobs.push(Job {
                    signer: user(o, u),
                    target: ca(o),
                    tsig: Some(domain(o)),
                });
            }
            // Personal certifications: mostly colleagues.
            for _ in 0..PERSONAL_PER_USER {
                let to = if rng.below(10) < 8 {
                    o
                } else {
                    rng.below(orgs)
                };
                let mut tu = rng.below(users);
                if to == o && tu == u {
                    tu = (tu + 1) % users;
                }
                jobs.push(Job {
                    signer: user(o, u),
                    target: user(to, tu),
                    tsig: None,
                });
            }
        }
        for off in BRIDGE_OFFSETS {
            let other = (o + off) % orgs;
            if other == o {
                continue;
            }
            jobs.push(Job {
                signer: ca(o),
                target: ca(other),
                tsig: Some(domain(other)),
            });
            jobs.push(Job {
                signer: ca(other),
                target: ca(o),
                tsig: Some(domain(o)),
            });
        }
    }
    let njobs = jobs.len();
    let t_sig = at(T0 + 60);
    let signed: Vec<(usize, Packet, Packet)> = parallel(jobs, |job| {
        let mut signer = keypair(&keys[job.signer]);
        let target = &keys[job.target];
        let uid = target.userids().next().expect("user ID").userid().clone();
        let mut b = SignatureBuilder::new(SignatureType::GenericCertification)
            .set_signature_creation_time(t_sig)
            .expect("time");
        if let Some(d) = &job.tsig {
            b = b
                .set_trust_signature(1, 120)
                .expect("tsig")
                .set_regular_expression(domain_regex(d))
                .expect("regex");
        }
        let sig = b
            .sign_userid_binding(&mut signer, target.primary_key().key(), &uid)
            .expect("sign");
        (job.target, uid.into(), sig.into())
    });
    let mut per_target: BTreeMap<usize, Vec<Packet>> = BTreeMap::new();
    for (t, uid, sig) in signed {
        let v = per_target.entry(t).or_default();
        v.push(uid);
        v.push(sig);
    }
    let certs: Vec<Cert> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let c = k.clone().strip_secret_key_material();
            match per_target.remove(&i) {
                Some(p) => c.insert_packets(p).expect("merge").0,
                None => c,
            }
        })
        .collect();
    println!(
        "made {njobs} certifications in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let fprs: Vec<Fingerprint> = certs.iter().map(|c| c.fingerprint()).collect();

    // ---- build ----
    let policy: Arc<dyn Policy> = Arc::new(StandardPolicy::new());
    let t_query = at(T0 + 3600);
    let started = Instant::now();
    let net = TrustNetwork::new(certs.clone(), Arc::clone(&policy), t_query).expect("build");
    let cold = started.elapsed();
    println!(
        "TrustNetwork build (cold: every signature verified): {:.2} s — {} certificates, {} active certifications",
        cold.as_secs_f64(),
        net.len(),
        net.certification_count()
    );
    let started = Instant::now();
    let net2 = TrustNetwork::new(certs.clone(), Arc::clone(&policy), at(T0 + 3601)).expect("build");
    println!(
        "TrustNetwork rebuild at a new reference time (warm signature cache): {:.2} s",
        started.elapsed().as_secs_f64()
    );
    drop(net2);

    // ---- queries ----
    let mut rng = Rng(0xBEEF);
    let bridged = |a: usize, b: usize| {
        BRIDGE_OFFSETS
            .iter()
            .any(|off| (a + off) % orgs == b || (b + off) % orgs == a)
    };
    // 60% colleagues, 30% bridged organisations, 10% anyone.
    let queries: Vec<(usize, usize, usize, usize)> = (0..QUERIES)
        .map(|_| {
            let vo = rng.below(orgs);
            let vu = rng.below(users);
            let r = rng.below(10);
            let to = if r < 6 {
                vo
            } else if r < 9 {
                let off = BRIDGE_OFFSETS[rng.below(BRIDGE_OFFSETS.len())];
                (vo + off) % orgs
            } else {
                rng.below(orgs)
            };
            (vo, vu, to, rng.below(users))
        })
        .collect();

    let mut wall = Vec::with_capacity(QUERIES);
    let mut cpu = Vec::with_capacity(QUERIES);
    let mut by_cat: BTreeMap<&'static str, (Vec<Duration>, BTreeMap<&'static str, usize>)> =
        BTreeMap::new();
    let mut wrong = 0;
    for &(vo, vu, to, tu) in &queries {
        let addr = address(to, tu);
        let (v, w, c) = timed(|| {
            net.authenticate(
                &fprs[user(vo, vu)],
                &fprs[ca(vo)],
                &fprs[user(to, tu)],
                &addr,
            )
        });
        wall.push(w);
        cpu.push(c);
        let cat = by_cat.entry(category(vo, to, bridged(vo, to))).or_default();
        cat.0.push(c);
        *cat.1.entry(v.level.word()).or_default() += 1;
        // Colleagues and bridged organisations must be full; others need
        // a personal path.
        if (to == vo || bridged(vo, to)) && v.level != Level::Full {
            wrong += 1;
        }
    }
    report("sealpost-trust TrustNetwork::authenticate", wall, cpu);
    for (cat, (mut times, levels)) in by_cat {
        times.sort();
        println!(
            "  {cat:<12} n={:<5} cpu p50 {:>10}  p99 {:>10}  levels {levels:?}",
            times.len(),
            ms(percentile(&times, 50)),
            ms(percentile(&times, 99)),
        );
    }
    println!("  colleagues/bridged that were not full: {wrong}");

    let cache = TrustCache::new(certs.clone(), Arc::clone(&policy), t_query).expect("cache");
    let started = Instant::now();
    cache.network().expect("build");
    println!(
        "TrustCache first build: {:.2} s",
        started.elapsed().as_secs_f64()
    );
    for pass in ["miss", "hit"] {
        let mut wall = Vec::with_capacity(QUERIES);
        let mut cpu = Vec::with_capacity(QUERIES);
        for &(vo, vu, to, tu) in &queries {
            let addr = address(to, tu);
            let (_, w, c) = timed(|| {
                cache
                    .authenticate(
                        &fprs[user(vo, vu)],
                        &fprs[ca(vo)],
                        &fprs[user(to, tu)],
                        &addr,
                    )
                    .expect("query")
            });
            wall.push(w);
            cpu.push(c);
        }
        report(
            &format!("sealpost-trust TrustCache::authenticate ({pass})"),
            wall,
            cpu,
        );
    }

    // An update (the CA retracts a user) and the next query.
    let (o, u) = (3 % orgs, 7 % users);
    let retracted = sealpost_trust::retract(
        &keys[ca(o)],
        &certs[user(o, u)],
        &address(o, u),
        at(T0 + 120),
    )
    .expect("retract");
    let s0 = cache.stats();
    let (_, invalidate, _) = timed(|| cache.update_cert(retracted));
    let (_, apply, _) = timed(|| cache.network().expect("update"));
    let (v, query, _) = timed(|| {
        cache
            .authenticate(
                &fprs[user(o, (u + 1) % users)],
                &fprs[ca(o)],
                &fprs[user(o, u)],
                &address(o, u),
            )
            .expect("query")
    });
    let s1 = cache.stats();
    println!(
        "leaver: update_cert {} (drops {} cached answers), incremental update {} \
         ({} entry re-verified), next query {} → {}",
        ms(invalidate),
        s1.invalidated - s0.invalidated,
        ms(apply),
        s1.entries_recomputed - s0.entries_recomputed,
        ms(query),
        v.level.word()
    );

    // Moving the reference time forward a minute (no events in between).
    let s0 = cache.stats();
    let (_, w1, _) = timed(|| cache.set_reference_time(at(T0 + 3660)));
    let (_, w2, _) = timed(|| cache.network().expect("advance"));
    let s1 = cache.stats();
    println!(
        "reference time +60 s: set_reference_time {} (drops {} answers), network update {} \
         ({} entries re-verified)",
        ms(w1),
        s1.invalidated - s0.invalidated,
        ms(w2),
        s1.entries_recomputed - s0.entries_recomputed
    );
    let (_, w, _) = timed(|| cache.rebuild().expect("rebuild"));
    println!(
        "TrustCache::rebuild (full, queries keep being answered meanwhile): {:.2} s",
        w.as_secs_f64()
    );

    // ---- sequoia-wot with its store kept across queries ----
    let p = StandardPolicy::new();
    let (store, w, _) = timed(|| {
        let store =
            wot::store::CertStore::from_cert_refs(certs.iter(), &p, t_query).expect("store");
        wot::store::Backend::precompute(&store);
        store
    });
    println!(
        "sequoia-wot CertStore build + precompute (warm signature cache): {:.2} s",
        w.as_secs_f64()
    );
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    for &(vo, vu, to, tu) in queries.iter().take(QUERIES / 4) {
        let roots = [fprs[user(vo, vu)].clone(), fprs[ca(vo)].clone()];
        let userid = UserID::from(format!("<{}>", address(to, tu)));
        let (_, w, c) = timed(|| {
            let n = wot::NetworkBuilder::rooted(&store, &roots[..]).build();
            n.authenticate(&userid, &fprs[user(to, tu)], wot::FULLY_TRUSTED)
                .amount()
        });
        wall.push(w);
        cpu.push(c);
    }
    report(
        "sequoia-wot, precomputed store kept across queries",
        wall,
        cpu,
    );
    drop(store);

    // ---- sequoia-wot from scratch ----
    let mut wall = Vec::with_capacity(SCRATCH_QUERIES);
    let mut cpu = Vec::with_capacity(SCRATCH_QUERIES);
    let mut agree = 0;
    for &(vo, vu, to, tu) in queries.iter().take(SCRATCH_QUERIES) {
        let roots = [fprs[user(vo, vu)].clone(), fprs[ca(vo)].clone()];
        let userid = UserID::from(format!("<{}>", address(to, tu)));
        let (amount, w, c) = timed(|| {
            let n = wot::Network::from_cert_refs(certs.iter(), &p, t_query, &roots[..])
                .expect("network");
            n.authenticate(&userid, &fprs[user(to, tu)], wot::FULLY_TRUSTED)
                .amount()
        });
        wall.push(w);
        cpu.push(c);
        let ours = net.authenticate(
            &fprs[user(vo, vu)],
            &fprs[ca(vo)],
            &fprs[user(to, tu)],
            &address(to, tu),
        );
        if ours.amount == amount {
            agree += 1;
        }
    }
    report(
        "sequoia-wot from scratch (store+network per query)",
        wall,
        cpu,
    );
    println!("  same amount as sealpost-trust: {agree}/{SCRATCH_QUERIES}");
    println!(
        "  note: sequoia's process-wide signature-verification cache is warm here (filled by \
         the builds above), which favours sequoia-wot's figures"
    );
}
