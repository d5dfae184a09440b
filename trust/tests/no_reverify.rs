//! A query on a built network verifies no signature at all.
//!
//! Sequoia counts, process-wide, every look-up of its signature
//! verification cache (each verification consults it first). This file
//! holds a single test so that no other test runs in the process while it
//! reads those counters.

mod common;

use common::World;
use sealpost_trust::TrustCache;
use sealpost_trust::sequoia_openpgp::packet::signature::cache::SignatureVerificationCache;

fn verifications() -> usize {
    SignatureVerificationCache::cache_hits() + SignatureVerificationCache::cache_misses()
}

#[test]
fn queries_do_not_verify_signatures() {
    let mut w = World::new();
    w.ca("alpha.test");
    w.ca("beta.test");
    let users = ["alice@alpha.test", "bob@alpha.test", "carol@beta.test"];
    for u in users {
        w.user(u);
        w.enrol(u);
    }
    w.federate("alpha.test", "beta.test");

    let cache = TrustCache::new(
        w.certs.values().cloned().collect(),
        common::policy(),
        common::at(w.now + 100_000),
    )
    .unwrap();
    let before_build = verifications();
    cache.network().unwrap();
    let after_build = verifications();
    assert!(after_build > before_build, "building verifies");

    let alice = w.fpr("alice@alpha.test");
    let ca = w.fpr("ca@alpha.test");
    // First answers (cache misses: sequoia-wot searches paths) and repeated
    // answers (cache hits) alike touch no signature.
    for _ in 0..3 {
        for u in users {
            let v = cache.authenticate(&alice, &ca, &w.fpr(u), u).unwrap();
            assert!(v.is_authenticated(), "{v:#?}");
        }
    }
    assert_eq!(verifications(), after_build, "queries verified signatures");
    let s = cache.stats();
    assert_eq!((s.misses, s.hits), (3, 6));

    // An update re-verifies only the changed certificate's signatures.
    let t = w.tick();
    let bob = sealpost_trust::certify(
        w.cert("alice@alpha.test"),
        w.cert("bob@alpha.test"),
        "bob@alpha.test",
        t,
    )
    .unwrap();
    cache.update_cert(bob);
    cache.network().unwrap();
    let after_update = verifications();
    let full_build_cost = after_build - before_build;
    assert!(
        after_update - after_build < full_build_cost,
        "update cost {} vs build {}",
        after_update - after_build,
        full_build_cost
    );
}
