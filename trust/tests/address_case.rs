//! Addresses in any case, as outside keys carry them (`<John.Smith@Partner.COM>`): matched as
//! mail matches them, in look-ups and in bridge scoping alike, without letting a bridge's scope
//! reach a domain that merely contains its text or folds to it from outside ASCII.

mod common;

use common::World;
use sealpost_trust::sequoia_openpgp::Fingerprint;
use sealpost_trust::{FULL, Level, TrustCache, Verdict, WhyNot, certify};

/// alpha.test (alice enrolled) bridged both ways with partner.com and kilo.test, whose CAs
/// have certified nobody yet.
fn bridged() -> World {
    let mut w = World::new();
    for domain in ["alpha.test", "partner.com", "kilo.test"] {
        w.ca(domain);
    }
    w.user("alice@alpha.test");
    w.enrol("alice@alpha.test");
    w.federate("alpha.test", "partner.com");
    w.federate("alpha.test", "kilo.test");
    w
}

/// A key whose only user ID is `<uid>` (as written), certified by the CA of `ca_domain`.
fn outside_key(w: &mut World, uid: &str, ca_domain: &str) -> Fingerprint {
    certified_key(w, uid, &format!("ca@{ca_domain}"))
}

/// A key whose only user ID is `<uid>` (as written), certified by the key named `signer`.
fn certified_key(w: &mut World, uid: &str, signer: &str) -> Fingerprint {
    let key = common::user_key(uid, common::at(common::EPOCH));
    let fpr = w.put(key);
    let t = w.tick();
    let signed = certify(w.cert(signer), &w.certs[&fpr], uid, t)
        .expect("the user ID is certified as written");
    w.put(signed);
    fpr
}

/// Alice's verdict on `target` for `address`, asked both ways (one key, and every key for the
/// address), through the network and through the cache; all four must agree.
fn alice_sees(w: &World, target: &Fingerprint, address: &str) -> Verdict {
    let (alice, ca) = (w.fpr("alice@alpha.test"), w.fpr("ca@alpha.test"));
    let net = w.network();
    let one = net.authenticate(&alice, &ca, target, address);
    let all = net.lookup(&alice, &ca, address);
    let cache = TrustCache::new(
        w.certs.values().cloned().collect(),
        common::policy(),
        w.query_time(),
    )
    .expect("cache");
    let cached_one = cache.authenticate(&alice, &ca, target, address).unwrap();
    let cached_all = cache.lookup(&alice, &ca, address).unwrap();
    assert_eq!(cached_one, one, "the cache agrees for {address}");
    assert_eq!(*cached_all, all, "the cache's look-up agrees for {address}");
    if one.why_not != Some(WhyNot::AddressNotOnKey) {
        let found = all.iter().find(|v| &v.target == target);
        assert_eq!(found, Some(&one), "the look-up finds the key for {address}");
    }
    one
}

/// `check(user ID as written, certifying CA's domain, address asked, expected explanation)`.
fn check(uid: &str, ca_domain: &str, asked: &str, want: &[&str]) {
    let mut w = bridged();
    let fpr = outside_key(&mut w, uid, ca_domain);
    let v = alice_sees(&w, &fpr, asked);
    assert_eq!(v.explain(), want, "<{uid}> asked as {asked}: {v:#?}");
    let full = want.iter().any(|l| l.ends_with(": full (120)"));
    assert_eq!(v.is_authenticated(), full, "<{uid}> asked as {asked}");
    if !full {
        assert_eq!(v.level, Level::None, "<{uid}> asked as {asked}");
    }
}

const PARTNER_PATH: &str = "you → Alpha CA (your organisation) → Partner CA (bridge, partner.com) → \
     john.smith@partner.com: full (120)";

#[test]
fn mixed_case_address_over_a_bridge_is_full_for_either_spelling() {
    for uid in ["John.Smith@Partner.COM", "john.smith@partner.com"] {
        for asked in [
            "John.Smith@Partner.COM",
            "john.smith@partner.com",
            "JOHN.SMITH@PARTNER.COM",
        ] {
            check(uid, "partner.com", asked, &[PARTNER_PATH]);
        }
    }
}

#[test]
fn mixed_case_and_lowercase_keys_get_the_same_verdict() {
    let mut w = bridged();
    let mixed = outside_key(&mut w, "John.Smith@Partner.COM", "partner.com");
    let mut v = bridged();
    let lower = outside_key(&mut v, "john.smith@partner.com", "partner.com");
    let a = alice_sees(&w, &mixed, "john.smith@partner.com");
    let b = alice_sees(&v, &lower, "john.smith@partner.com");
    assert_eq!(
        (a.level, a.amount, a.why_not.clone(), a.address.clone()),
        (b.level, b.amount, b.why_not.clone(), b.address.clone())
    );
    assert_eq!(a.explain(), b.explain());
    assert_eq!(a.amount, FULL);
}

#[test]
fn mixed_case_subdomain_is_in_the_bridge_scope() {
    check(
        "Eve@Mail.Partner.COM",
        "partner.com",
        "eve@mail.partner.com",
        &[
            "you → Alpha CA (your organisation) → Partner CA (bridge, partner.com) → \
           eve@mail.partner.com: full (120)",
        ],
    );
}

/// The CA of partner.com certifies keys for other domains: its bridge must not carry them,
/// in whatever case they are written.
#[test]
fn domains_that_only_contain_the_scope_stay_out_of_it() {
    for (uid, asked) in [
        ("John@Partner.COM.evil.test", "john@partner.com.evil.test"),
        ("john@partner.com.evil.test", "john@partner.com.evil.test"),
        ("John@XPartner.COM", "john@xpartner.com"),
        ("john@xpartner.com", "john@xpartner.com"),
        ("John@Partner-COM.test", "john@partner-com.test"),
    ] {
        let mut w = bridged();
        let fpr = outside_key(&mut w, uid, "partner.com");
        let v = alice_sees(&w, &fpr, asked);
        assert_eq!(v.level, Level::None, "<{uid}>: {v:#?}");
        assert!(v.paths.is_empty(), "<{uid}>: {v:#?}");
        if v.why_not != Some(WhyNot::InvalidAddress) {
            assert_eq!(v.why_not, Some(WhyNot::NoPath), "<{uid}>: {v:#?}");
        }
    }
}

/// Case folding beyond ASCII (the Kelvin sign U+212A lowercases to `k`, the long s U+017F
/// folds to `s`) must not bring a non-ASCII address into an ASCII scope.
#[test]
fn non_ascii_lookalikes_do_not_fold_into_an_ascii_scope() {
    for uid in [
        "x@\u{212A}ilo.test",
        "x@\u{212A}ILO.TEST",
        "x@kilo.te\u{17F}t",
        "x@\u{212A}ilo.Test",
    ] {
        let mut w = bridged();
        let fpr = outside_key(&mut w, uid, "kilo.test");
        for asked in ["x@kilo.test", uid] {
            let v = alice_sees(&w, &fpr, asked);
            assert_eq!(v.level, Level::None, "<{uid}> asked as {asked}: {v:#?}");
            assert!(!v.is_authenticated());
        }
    }
    // The same CA's ASCII key in any case is in scope.
    check(
        "X@KILO.Test",
        "kilo.test",
        "x@kilo.test",
        &[
            "you → Alpha CA (your organisation) → Kilo CA (bridge, kilo.test) → \
           x@kilo.test: full (120)",
        ],
    );
}

/// A personal introducer scoped to a domain (the same regular expression as a bridge).
#[test]
fn a_scoped_introducer_introduces_mixed_case_addresses_of_its_domain_only() {
    let mut w = bridged();
    w.user("ivan@partner.com");
    w.introducer("alice@alpha.test", "ivan@partner.com", Some("partner.com"));
    let john = certified_key(&mut w, "John.Smith@Partner.COM", "ivan@partner.com");
    let evil = certified_key(
        &mut w,
        "John.Smith@Partner.COM.evil.test",
        "ivan@partner.com",
    );
    let v = alice_sees(&w, &john, "John.Smith@Partner.COM");
    assert!(v.is_authenticated(), "{v:#?}");
    assert_eq!(
        v.explain(),
        ["you → ivan@partner.com (your trusted introducer) → john.smith@partner.com: full (120)"]
    );
    let v = alice_sees(&w, &evil, "john.smith@partner.com.evil.test");
    assert_eq!(v.why_not, Some(WhyNot::NoPath), "{v:#?}");
}
