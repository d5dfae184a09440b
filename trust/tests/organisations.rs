//! The organisations scenario with freshly generated keys: org CAs as
//! roots, bridges, leavers, personal certifications, introducers,
//! revocation and conflicts.

mod common;

use common::World;
use sealpost_trust::sequoia_openpgp::types::ReasonForRevocation;
use sealpost_trust::{FULL, HopRole, Level, Verdict, WhyNot, certify, retract, revoke_bridge};

/// alpha.test with alice and bob, beta.test with carol, gamma.test with
/// dave; everyone enrolled; no bridges yet.
fn three_orgs() -> World {
    let mut w = World::new();
    for domain in ["alpha.test", "beta.test", "gamma.test"] {
        w.ca(domain);
    }
    for user in [
        "alice@alpha.test",
        "bob@alpha.test",
        "carol@beta.test",
        "dave@gamma.test",
    ] {
        w.user(user);
        w.enrol(user);
    }
    w
}

/// Alice's question about `address` on the key `owner` has.
fn alice_sees(w: &World, owner: &str, address: &str) -> Verdict {
    w.network().authenticate(
        &w.fpr("alice@alpha.test"),
        &w.fpr("ca@alpha.test"),
        &w.fpr(owner),
        address,
    )
}

#[test]
fn colleague_is_full_through_the_organisation_ca() {
    let w = three_orgs();
    let v = alice_sees(&w, "bob@alpha.test", "bob@alpha.test");
    assert_eq!(v.level, Level::Full);
    assert_eq!(v.amount, FULL);
    assert!(v.is_authenticated());
    assert_eq!(
        v.explain(),
        vec!["you → Alpha CA (your organisation) → bob@alpha.test: full (120)"]
    );
    let roles: Vec<HopRole> = v.paths[0].hops.iter().map(|h| h.role).collect();
    assert_eq!(roles, [HopRole::You, HopRole::YourCa, HopRole::Target]);
    // Addresses are compared normalised.
    assert_eq!(
        alice_sees(&w, "bob@alpha.test", "Bob@Alpha.TEST").level,
        Level::Full
    );
}

#[test]
fn other_organisation_is_none_without_a_bridge_and_full_with_one() {
    let mut w = three_orgs();
    let v = alice_sees(&w, "carol@beta.test", "carol@beta.test");
    assert_eq!(v.level, Level::None);
    assert_eq!(v.why_not, Some(WhyNot::NoPath));
    assert!(v.explain()[0].starts_with("carol@beta.test: none — "));

    w.federate("alpha.test", "beta.test");
    w.federate("beta.test", "gamma.test");
    let v = alice_sees(&w, "carol@beta.test", "carol@beta.test");
    assert_eq!(v.level, Level::Full, "{v:#?}");
    assert_eq!(
        v.explain(),
        vec![
            "you → Alpha CA (your organisation) → Beta CA (bridge, beta.test) → \
             carol@beta.test: full (120)"
        ]
    );
    assert_eq!(v.paths[0].hops[2].role, HopRole::Ca);

    // Bridged only by beta → gamma: alpha's depth-1, beta-scoped bridge
    // stops it.
    let v = alice_sees(&w, "dave@gamma.test", "dave@gamma.test");
    assert_eq!(v.level, Level::None);
    assert_eq!(v.why_not, Some(WhyNot::NoPath));

    // The bridge works both ways: carol sees alice.
    let v = w.network().authenticate(
        &w.fpr("carol@beta.test"),
        &w.fpr("ca@beta.test"),
        &w.fpr("alice@alpha.test"),
        "alice@alpha.test",
    );
    assert_eq!(v.level, Level::Full);

    // A CA revokes its bridge: carol is none again for alice.
    let t = w.tick();
    let ca_b = revoke_bridge(
        w.cert("ca@alpha.test"),
        w.cert("ca@beta.test"),
        "beta.test",
        t,
    )
    .expect("revoke bridge");
    w.put(ca_b);
    let v = alice_sees(&w, "carol@beta.test", "carol@beta.test");
    assert_eq!(v.level, Level::None);
    assert_eq!(v.why_not, Some(WhyNot::NoPath));
}

#[test]
fn a_bridge_does_not_let_the_other_ca_speak_for_our_domain() {
    let mut w = three_orgs();
    w.federate("alpha.test", "beta.test");
    // A rogue key for an alpha.test address, certified by beta's CA.
    let rogue = common::user_key("bob@alpha.test", common::at(common::EPOCH));
    let rogue_fpr = w.put(rogue);
    let t = w.tick();
    let signed = certify(
        w.cert("ca@beta.test"),
        &w.certs[&rogue_fpr],
        "bob@alpha.test",
        t,
    )
    .expect("certify");
    w.put(signed);
    let net = w.network();
    let v = net.authenticate(
        &w.fpr("alice@alpha.test"),
        &w.fpr("ca@alpha.test"),
        &rogue_fpr,
        "bob@alpha.test",
    );
    assert_eq!(v.level, Level::None, "{v:#?}");
    // And bob's real key is unaffected (no conflict: the rogue has no path).
    let v = alice_sees(&w, "bob@alpha.test", "bob@alpha.test");
    assert!(v.is_authenticated(), "{v:#?}");
}

#[test]
fn leaver_then_personal_certification_then_retraction() {
    let mut w = three_orgs();
    // The admin revokes the CA's certification of bob (a leaver).
    let t = w.tick();
    let bob = retract(
        w.cert("ca@alpha.test"),
        w.cert("bob@alpha.test"),
        "bob@alpha.test",
        t,
    )
    .expect("retract");
    w.put(bob);
    let v = alice_sees(&w, "bob@alpha.test", "bob@alpha.test");
    assert_eq!(v.level, Level::None);
    assert_eq!(v.why_not, Some(WhyNot::NoPath));

    // Alice verified bob's fingerprint and certifies him herself.
    let t = w.tick();
    let bob = certify(
        w.cert("alice@alpha.test"),
        w.cert("bob@alpha.test"),
        "bob@alpha.test",
        t,
    )
    .expect("certify");
    w.put(bob);
    let v = alice_sees(&w, "bob@alpha.test", "bob@alpha.test");
    assert_eq!(v.level, Level::Full);
    assert_eq!(
        v.explain(),
        vec!["you → bob@alpha.test (you certified this key): full (120)"]
    );

    // Alice retracts: the personal path is gone.
    let t = w.tick();
    let bob = retract(
        w.cert("alice@alpha.test"),
        w.cert("bob@alpha.test"),
        "bob@alpha.test",
        t,
    )
    .expect("retract");
    w.put(bob);
    let v = alice_sees(&w, "bob@alpha.test", "bob@alpha.test");
    assert_eq!(v.level, Level::None);
    assert!(v.paths.is_empty());
}

#[test]
fn revoked_key_is_refused_with_the_reason() {
    let mut w = three_orgs();
    let t = w.tick();
    let bob = common::revoke_key(
        w.cert("bob@alpha.test"),
        ReasonForRevocation::KeyCompromised,
        "laptop stolen",
        t,
    );
    w.put(bob);
    let v = alice_sees(&w, "bob@alpha.test", "bob@alpha.test");
    assert_eq!(v.level, Level::None);
    assert_eq!(v.amount, 0);
    match &v.why_not {
        Some(WhyNot::Revoked { reason }) => {
            assert!(reason.contains("laptop stolen"), "{reason}");
        }
        other => panic!("expected Revoked, got {other:?}"),
    }
    assert!(v.explain()[0].contains("revoked"), "{:?}", v.explain());

    // A soft revocation ("superseded") counts too once it is in effect.
    let mut w = three_orgs();
    let t = w.tick();
    let bob = common::revoke_key(
        w.cert("bob@alpha.test"),
        ReasonForRevocation::KeySuperseded,
        "new key",
        t,
    );
    w.put(bob);
    let v = alice_sees(&w, "bob@alpha.test", "bob@alpha.test");
    assert!(matches!(v.why_not, Some(WhyNot::Revoked { .. })), "{v:?}");
}

#[test]
fn two_keys_claiming_an_address_conflict() {
    let mut w = three_orgs();
    // A second key for bob@alpha.test (say, a forgotten old key) that
    // alice certified personally while the CA certifies the current one.
    let second = common::user_key("bob@alpha.test", common::at(common::EPOCH + 1));
    let second_fpr = w.put(second);
    let t = w.tick();
    let signed = certify(
        w.cert("alice@alpha.test"),
        &w.certs[&second_fpr],
        "bob@alpha.test",
        t,
    )
    .expect("certify");
    w.put(signed);

    let net = w.network();
    let alice = w.fpr("alice@alpha.test");
    let ca = w.fpr("ca@alpha.test");
    let bob = w.fpr("bob@alpha.test");
    let all = net.lookup(&alice, &ca, "bob@alpha.test");
    assert_eq!(all.len(), 2);
    for v in &all {
        assert_eq!(v.level, Level::Full);
        let other = if v.target == bob { &second_fpr } else { &bob };
        assert_eq!(
            v.why_not,
            Some(WhyNot::Conflict {
                others: vec![other.clone()]
            })
        );
        assert!(!v.is_authenticated());
        assert!(v.explain().last().unwrap().contains("conflict"));
    }
    let v = net.authenticate(&alice, &ca, &bob, "bob@alpha.test");
    assert!(matches!(v.why_not, Some(WhyNot::Conflict { .. })));

    // Once alice retracts the old one, the conflict is gone.
    let t = w.tick();
    let signed = retract(
        w.cert("alice@alpha.test"),
        &w.certs[&second_fpr],
        "bob@alpha.test",
        t,
    )
    .expect("retract");
    w.put(signed);
    let v = w
        .network()
        .authenticate(&alice, &ca, &bob, "bob@alpha.test");
    assert!(v.is_authenticated(), "{v:#?}");
}

#[test]
fn scoped_introducer_introduces_only_its_domain() {
    let mut w = three_orgs();
    w.user("erin@beta.test");
    w.enrol("erin@beta.test");
    // Alice makes carol an introducer for beta.test; carol certifies erin
    // (beta.test) and dave (gamma.test).
    w.introducer("alice@alpha.test", "carol@beta.test", Some("beta.test"));
    for who in ["erin@beta.test", "dave@gamma.test"] {
        let t = w.tick();
        let c = certify(w.cert("carol@beta.test"), w.cert(who), who, t).expect("certify");
        w.put(c);
    }

    let v = alice_sees(&w, "carol@beta.test", "carol@beta.test");
    assert_eq!(v.level, Level::Full);
    let v = alice_sees(&w, "erin@beta.test", "erin@beta.test");
    assert_eq!(v.level, Level::Full, "{v:#?}");
    assert_eq!(
        v.explain(),
        vec!["you → carol@beta.test (your trusted introducer) → erin@beta.test: full (120)"]
    );
    let v = alice_sees(&w, "dave@gamma.test", "dave@gamma.test");
    assert_eq!(v.level, Level::None, "{v:#?}");

    // Unscoped, carol would introduce dave as well.
    w.introducer("alice@alpha.test", "carol@beta.test", None);
    let v = alice_sees(&w, "dave@gamma.test", "dave@gamma.test");
    assert_eq!(v.level, Level::Full, "{v:#?}");
}

#[test]
fn user_tsig_on_ca_gives_sq_style_roots_the_same_answer() {
    let mut w = three_orgs();
    w.federate("alpha.test", "beta.test");
    let net = w.network();
    // Only alice's own key as root, as in sq/gpg: her tsig on the CA
    // (scoped to alpha.test) authenticates colleagues...
    let roots = [(w.fpr("alice@alpha.test"), FULL)];
    let v = net.authenticate_from_roots(&roots, &w.fpr("bob@alpha.test"), "bob@alpha.test");
    assert_eq!(v.level, Level::Full, "{v:#?}");
    let labels: Vec<&str> = v.paths[0].hops.iter().map(|h| h.label.as_str()).collect();
    assert_eq!(labels, ["alice@alpha.test", "Alpha CA", "bob@alpha.test"]);
    // ...but not other organisations' users (scope and depth).
    let v = net.authenticate_from_roots(&roots, &w.fpr("carol@beta.test"), "carol@beta.test");
    assert_eq!(v.level, Level::None);
}

#[test]
fn unknown_keys_and_foreign_addresses_say_why() {
    let w = three_orgs();
    let net = w.network();
    let alice = w.fpr("alice@alpha.test");
    let ca = w.fpr("ca@alpha.test");
    let stranger = common::user_key("x@nowhere.test", common::at(common::EPOCH)).fingerprint();
    let v = net.authenticate(&alice, &ca, &stranger, "x@nowhere.test");
    assert_eq!(v.why_not, Some(WhyNot::UnknownKey));
    let v = net.authenticate(&alice, &ca, &w.fpr("bob@alpha.test"), "carol@beta.test");
    assert_eq!(v.why_not, Some(WhyNot::AddressNotOnKey));
    let v = net.authenticate(&alice, &ca, &w.fpr("bob@alpha.test"), "not an address");
    assert_eq!(v.why_not, Some(WhyNot::InvalidAddress));
    // Alice's own key.
    let v = net.authenticate(&alice, &ca, &alice, "alice@alpha.test");
    assert_eq!(v.level, Level::Full);
    assert_eq!(v.explain(), vec!["you (your own key): full (120)"]);
}

#[test]
fn expired_key_is_refused() {
    use std::time::Duration;

    let mut w = three_orgs();
    w.expiring_user("frank@alpha.test", Duration::from_secs(86_400));
    w.enrol("frank@alpha.test");
    let v = alice_sees(&w, "frank@alpha.test", "frank@alpha.test");
    assert!(v.is_authenticated(), "{v:#?}");
    // Two days later the key has expired.
    w.now += 2 * 86_400;
    let v = alice_sees(&w, "frank@alpha.test", "frank@alpha.test");
    assert!(matches!(v.why_not, Some(WhyNot::Expired { .. })), "{v:#?}");
    assert_eq!(v.amount, 0);
    assert!(v.explain()[0].contains("expired"));
}
