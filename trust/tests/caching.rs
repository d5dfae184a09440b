//! `TrustCache`: no rebuild for repeated questions, exact invalidation on
//! change, incremental updates equal to a fresh build, thread safety,
//! bounded size.

mod common;

use std::sync::Arc;

use common::World;
use sealpost_trust::sequoia_openpgp as openpgp;
use sealpost_trust::{Level, TrustCache, TrustNetwork, WhyNot, certify, make_introducer, retract};

use openpgp::Fingerprint;
use openpgp::types::ReasonForRevocation;

/// alpha.test (alice, bob) and beta.test (carol) federated.
fn world() -> World {
    let mut w = World::new();
    w.ca("alpha.test");
    w.ca("beta.test");
    for u in ["alice@alpha.test", "bob@alpha.test", "carol@beta.test"] {
        w.user(u);
        w.enrol(u);
    }
    w.federate("alpha.test", "beta.test");
    w
}

fn cache(w: &World) -> TrustCache {
    TrustCache::new(
        w.certs.values().cloned().collect(),
        common::policy(),
        w.query_time(),
    )
    .expect("cache")
}

#[test]
fn second_identical_query_does_not_rebuild() {
    let w = world();
    let c = cache(&w);
    let (alice, ca, bob) = (
        w.fpr("alice@alpha.test"),
        w.fpr("ca@alpha.test"),
        w.fpr("bob@alpha.test"),
    );
    assert_eq!(c.stats().full_builds, 0, "built lazily");

    let first = c.authenticate(&alice, &ca, &bob, "bob@alpha.test").unwrap();
    let s1 = c.stats();
    assert_eq!((s1.full_builds, s1.incremental_builds), (1, 0));
    assert_eq!((s1.hits, s1.misses), (0, 1));

    let second = c.authenticate(&alice, &ca, &bob, "bob@alpha.test").unwrap();
    let s2 = c.stats();
    assert_eq!(second, first);
    assert_eq!(
        (s2.full_builds, s2.incremental_builds),
        (1, 0),
        "no rebuild"
    );
    assert_eq!((s2.hits, s2.misses), (1, 1), "answered from the cache");
    assert_eq!(s2.entries_recomputed, 0);
}

#[test]
fn update_cert_invalidates_exactly_what_it_changes() {
    let mut w = world();
    // A reference time after every signature this test will make.
    let c = TrustCache::new(
        w.certs.values().cloned().collect(),
        common::policy(),
        common::at(w.now + 100_000),
    )
    .unwrap();
    let alice = w.fpr("alice@alpha.test");
    let ca = w.fpr("ca@alpha.test");
    let bob = w.fpr("bob@alpha.test");
    let carol = w.fpr("carol@beta.test");

    assert!(
        c.authenticate(&alice, &ca, &bob, "bob@alpha.test")
            .unwrap()
            .is_authenticated()
    );
    assert!(
        c.authenticate(&alice, &ca, &carol, "carol@beta.test")
            .unwrap()
            .is_authenticated()
    );
    assert_eq!(c.cached_answers(), 2);
    let s0 = c.stats();

    // The admin revokes the CA's certification of bob (a leaver); the node
    // stores bob's updated certificate and tells the cache.
    let t = w.tick();
    let new_bob = retract(
        w.cert("ca@alpha.test"),
        w.cert("bob@alpha.test"),
        "bob@alpha.test",
        t,
    )
    .unwrap();
    w.put(new_bob.clone());
    c.update_cert(new_bob);
    // Bob's answer is gone at once; carol's never read bob's entry.
    assert_eq!(c.cached_answers(), 1);
    let v = c.authenticate(&alice, &ca, &bob, "bob@alpha.test").unwrap();
    assert_eq!(v.level, Level::None);
    let s1 = c.stats();
    assert_eq!(s1.full_builds, s0.full_builds, "no full rebuild");
    assert_eq!(s1.incremental_builds, s0.incremental_builds + 1);
    // Only bob's entry is re-verified: his validity as an issuer did not
    // change, so the CA certificate carrying his trust signature is kept.
    assert_eq!(s1.entries_recomputed - s0.entries_recomputed, 1);
    // Carol's answer is still cached.
    c.authenticate(&alice, &ca, &carol, "carol@beta.test")
        .unwrap();
    assert_eq!(c.stats().hits, s1.hits + 1);

    // Alice certifies bob herself.
    let t = w.tick();
    let new_bob = certify(
        w.cert("alice@alpha.test"),
        w.cert("bob@alpha.test"),
        "bob@alpha.test",
        t,
    )
    .unwrap();
    w.put(new_bob.clone());
    c.update_cert(new_bob);
    let v = c.authenticate(&alice, &ca, &bob, "bob@alpha.test").unwrap();
    assert!(v.is_authenticated(), "{v:#?}");
    assert_eq!(
        v.explain(),
        vec!["you → bob@alpha.test (you certified this key): full (120)"]
    );
    assert_eq!(c.stats().full_builds, s0.full_builds);

    // Removing carol's certificate invalidates her answer.
    c.remove_cert(&carol);
    let v = c
        .authenticate(&alice, &ca, &carol, "carol@beta.test")
        .unwrap();
    assert_eq!(v.why_not, Some(WhyNot::UnknownKey));
}

#[test]
fn moving_the_reference_time_forward_is_incremental() {
    let mut w = world();
    let c = cache(&w);
    let alice = w.fpr("alice@alpha.test");
    let ca = w.fpr("ca@alpha.test");
    let bob = w.fpr("bob@alpha.test");
    let carol = w.fpr("carol@beta.test");
    c.authenticate(&alice, &ca, &bob, "bob@alpha.test").unwrap();
    c.authenticate(&alice, &ca, &carol, "carol@beta.test")
        .unwrap();

    // A retraction made after the reference time is ignored until the
    // reference time passes it (sequoia-wot's rule).
    let t = w.tick();
    let new_bob = retract(
        w.cert("ca@alpha.test"),
        w.cert("bob@alpha.test"),
        "bob@alpha.test",
        t,
    )
    .unwrap();
    c.update_cert(new_bob);
    assert!(
        c.authenticate(&alice, &ca, &bob, "bob@alpha.test")
            .unwrap()
            .is_authenticated()
    );
    assert_eq!(c.cached_answers(), 2);

    c.set_reference_time(w.query_time());
    // Only bob has a time event in between: carol's answer stays.
    assert_eq!(c.cached_answers(), 1);
    let v = c.authenticate(&alice, &ca, &bob, "bob@alpha.test").unwrap();
    assert_eq!(v.level, Level::None);
    let s = c.stats();
    assert_eq!(s.full_builds, 1, "no full rebuild: {s:?}");

    // Moving backwards rebuilds from scratch.
    c.set_reference_time(common::at(common::EPOCH + 1));
    c.authenticate(&alice, &ca, &bob, "bob@alpha.test").unwrap();
    assert_eq!(c.stats().full_builds, 2);
}

#[test]
fn time_advances_match_fresh_builds() {
    use std::time::Duration;

    let mut w = world();
    w.expiring_user("frank@alpha.test", Duration::from_secs(3_600));
    w.enrol("frank@alpha.test");
    let start = w.now;
    // Signatures in the "future" of the first reference time: alice
    // certifies carol, the CA retracts bob, carol revokes her key.
    let t = w.tick();
    let x = certify(
        w.cert("alice@alpha.test"),
        w.cert("carol@beta.test"),
        "carol@beta.test",
        t,
    )
    .unwrap();
    w.put(x);
    w.now += 1_000;
    let t = w.tick();
    let x = retract(
        w.cert("ca@alpha.test"),
        w.cert("bob@alpha.test"),
        "bob@alpha.test",
        t,
    )
    .unwrap();
    w.put(x);
    w.now += 1_000;
    let t = w.tick();
    let x = common::revoke_key(
        w.cert("carol@beta.test"),
        ReasonForRevocation::KeyRetired,
        "bye",
        t,
    );
    w.put(x);

    let c = TrustCache::new(
        w.certs.values().cloned().collect(),
        common::policy(),
        common::at(start + 1),
    )
    .unwrap();
    let viewers: Vec<(Fingerprint, Fingerprint)> = [
        ("alice@alpha.test", "ca@alpha.test"),
        ("carol@beta.test", "ca@beta.test"),
    ]
    .iter()
    .map(|(u, ca)| (w.fpr(u), w.fpr(ca)))
    .collect();
    let addresses = [
        "alice@alpha.test",
        "bob@alpha.test",
        "carol@beta.test",
        "frank@alpha.test",
    ];
    for step in [0, 15, 1_015, 2_000, 2_030, 3_700, 10_000] {
        c.set_reference_time(common::at(start + 1 + step));
        assert_same_as_fresh(&w, &c, &viewers, &addresses, &format!("t+{step}"));
    }
    let s = c.stats();
    assert_eq!(s.full_builds, 1, "{s:?}");
    // Steps without events in between are answered from the cache
    // without touching the network at all.
    assert!(s.incremental_builds >= 3 && s.hits > 0, "{s:?}");
}

#[test]
fn rebuild_replaces_the_network_without_changing_answers() {
    let mut w = world();
    let c = TrustCache::new(
        w.certs.values().cloned().collect(),
        common::policy(),
        common::at(w.now + 100_000),
    )
    .unwrap();
    let alice = w.fpr("alice@alpha.test");
    let ca = w.fpr("ca@alpha.test");
    let bob = w.fpr("bob@alpha.test");
    let before = c.authenticate(&alice, &ca, &bob, "bob@alpha.test").unwrap();
    c.rebuild().unwrap();
    assert_eq!(c.stats().full_builds, 2);
    assert_eq!(c.cached_answers(), 0);
    assert_eq!(
        c.authenticate(&alice, &ca, &bob, "bob@alpha.test").unwrap(),
        before
    );

    // Changes queued before a rebuild are in the rebuilt network.
    let t = w.tick();
    let new_bob = retract(
        w.cert("ca@alpha.test"),
        w.cert("bob@alpha.test"),
        "bob@alpha.test",
        t,
    )
    .unwrap();
    c.update_cert(new_bob);
    c.rebuild().unwrap();
    let v = c.authenticate(&alice, &ca, &bob, "bob@alpha.test").unwrap();
    assert_eq!(v.level, Level::None);
}

/// Every (viewer, address) question, answered by `cache` and by a network
/// built from scratch, must agree.
fn assert_same_as_fresh(
    w: &World,
    c: &TrustCache,
    viewers: &[(Fingerprint, Fingerprint)],
    addresses: &[&str],
    step: &str,
) {
    let fresh = TrustNetwork::new(
        w.certs.values().cloned().collect(),
        common::policy(),
        c.reference_time(),
    )
    .unwrap();
    for (viewer, ca) in viewers {
        for address in addresses {
            let cached = c.lookup(viewer, ca, address).unwrap();
            let expected = fresh.lookup(viewer, ca, address);
            assert_eq!(*cached, expected, "{step}: {viewer} asking about {address}");
        }
    }
}

#[test]
fn incremental_updates_match_a_fresh_build() {
    let mut w = world();
    w.ca("gamma.test");
    for u in ["dave@gamma.test", "erin@beta.test"] {
        w.user(u);
        w.enrol(u);
    }
    w.federate("beta.test", "gamma.test");
    // All changes below are signed before this reference time.
    let reference = common::at(w.now + 100_000);
    let c = TrustCache::new(
        w.certs.values().cloned().collect(),
        common::policy(),
        reference,
    )
    .unwrap();
    let viewers: Vec<(Fingerprint, Fingerprint)> = [
        ("alice@alpha.test", "ca@alpha.test"),
        ("bob@alpha.test", "ca@alpha.test"),
        ("carol@beta.test", "ca@beta.test"),
        ("dave@gamma.test", "ca@gamma.test"),
    ]
    .iter()
    .map(|(u, ca)| (w.fpr(u), w.fpr(ca)))
    .collect();
    let addresses = [
        "alice@alpha.test",
        "bob@alpha.test",
        "carol@beta.test",
        "dave@gamma.test",
        "erin@beta.test",
        "frank@alpha.test",
        "openpgp-ca@beta.test",
    ];
    assert_same_as_fresh(&w, &c, &viewers, &addresses, "start");

    let update = |w: &mut World, c: &TrustCache, cert| {
        let fpr = w.put(cert);
        c.update_cert(w.certs[&fpr].clone());
    };

    // 1. Alice makes carol an introducer for beta.test.
    let t = w.tick();
    let x = make_introducer(
        w.cert("alice@alpha.test"),
        w.cert("carol@beta.test"),
        "carol@beta.test",
        Some("beta.test"),
        t,
    )
    .unwrap();
    update(&mut w, &c, x);
    assert_same_as_fresh(&w, &c, &viewers, &addresses, "introducer");

    // 2. A new user joins alpha (new certificate, CA certification, tsig).
    let frank = common::user_key("frank@alpha.test", common::at(common::EPOCH));
    let frank_fpr = frank.fingerprint();
    update(&mut w, &c, frank);
    let t = w.tick();
    let x = certify(
        w.cert("ca@alpha.test"),
        &w.certs[&frank_fpr],
        "frank@alpha.test",
        t,
    )
    .unwrap();
    update(&mut w, &c, x);
    assert_same_as_fresh(&w, &c, &viewers, &addresses, "new user");

    // 3. Carol certifies dave (outside her scope) and erin.
    for who in ["dave@gamma.test", "erin@beta.test"] {
        let t = w.tick();
        let x = certify(w.cert("carol@beta.test"), w.cert(who), who, t).unwrap();
        update(&mut w, &c, x);
    }
    assert_same_as_fresh(&w, &c, &viewers, &addresses, "carol certifies");

    // 4. Carol revokes her key: her certifications die with it.
    let t = w.tick();
    let x = common::revoke_key(
        w.cert("carol@beta.test"),
        ReasonForRevocation::KeyCompromised,
        "oops",
        t,
    );
    update(&mut w, &c, x);
    assert_same_as_fresh(&w, &c, &viewers, &addresses, "carol revoked");

    // 5. Alpha revokes its bridge to beta.
    let t = w.tick();
    let x = sealpost_trust::revoke_bridge(
        w.cert("ca@alpha.test"),
        w.cert("ca@beta.test"),
        "beta.test",
        t,
    )
    .unwrap();
    update(&mut w, &c, x);
    assert_same_as_fresh(&w, &c, &viewers, &addresses, "bridge revoked");

    // 6. A second key for bob appears, certified by alice: a conflict.
    let second = common::user_key("bob@alpha.test", common::at(common::EPOCH + 5));
    let second_fpr = second.fingerprint();
    update(&mut w, &c, second);
    let t = w.tick();
    let x = certify(
        w.cert("alice@alpha.test"),
        &w.certs[&second_fpr],
        "bob@alpha.test",
        t,
    )
    .unwrap();
    update(&mut w, &c, x);
    assert_same_as_fresh(&w, &c, &viewers, &addresses, "second bob key");

    // 7. The alpha CA is removed altogether, then comes back.
    let ca_alpha = w.fpr("ca@alpha.test");
    let ca_cert = w.certs.remove(&ca_alpha).unwrap();
    c.remove_cert(&ca_alpha);
    assert_same_as_fresh(&w, &c, &viewers, &addresses, "CA removed");
    update(&mut w, &c, ca_cert);
    assert_same_as_fresh(&w, &c, &viewers, &addresses, "CA back");

    let s = c.stats();
    assert_eq!(s.full_builds, 1, "all updates were incremental: {s:?}");
    assert!(s.incremental_builds >= 7, "{s:?}");
}

#[test]
fn concurrent_queries_and_updates() {
    let mut w = world();
    let reference = common::at(w.now + 100_000);
    let c = Arc::new(
        TrustCache::new(
            w.certs.values().cloned().collect(),
            common::policy(),
            reference,
        )
        .unwrap(),
    );
    let alice = w.fpr("alice@alpha.test");
    let ca = w.fpr("ca@alpha.test");
    let bob = w.fpr("bob@alpha.test");
    let carol = w.fpr("carol@beta.test");
    // Prepare a flip-flop of bob's certificate: CA certification retracted
    // and present.
    let with = w.cert("bob@alpha.test").clone();
    let t = w.tick();
    let without = retract(w.cert("ca@alpha.test"), &with, "bob@alpha.test", t).unwrap();

    std::thread::scope(|s| {
        for _ in 0..4 {
            let c = Arc::clone(&c);
            let (alice, ca, bob, carol) = (&alice, &ca, &bob, &carol);
            s.spawn(move || {
                for _ in 0..50 {
                    let v = c.authenticate(alice, ca, bob, "bob@alpha.test").unwrap();
                    assert!(matches!(v.level, Level::Full | Level::None));
                    let v = c.authenticate(alice, ca, carol, "carol@beta.test").unwrap();
                    assert!(v.is_authenticated());
                }
            });
        }
        let c = Arc::clone(&c);
        s.spawn(move || {
            for i in 0..20 {
                c.update_cert(if i % 2 == 0 {
                    without.clone()
                } else {
                    with.clone()
                });
            }
        });
    });
    // The last update put the CA certification back.
    assert!(
        c.authenticate(&alice, &ca, &bob, "bob@alpha.test")
            .unwrap()
            .is_authenticated()
    );
}

#[test]
fn answer_cache_is_bounded() {
    let w = world();
    let c = TrustCache::with_capacity(
        w.certs.values().cloned().collect(),
        common::policy(),
        w.query_time(),
        2,
    )
    .unwrap();
    let alice = w.fpr("alice@alpha.test");
    let ca = w.fpr("ca@alpha.test");
    for a in [
        "alice@alpha.test",
        "bob@alpha.test",
        "carol@beta.test",
        "openpgp-ca@beta.test",
    ] {
        c.lookup(&alice, &ca, a).unwrap();
    }
    assert_eq!(c.cached_answers(), 2);
    assert_eq!(c.stats().evicted, 2);
}
