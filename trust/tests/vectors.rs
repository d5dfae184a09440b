//! sequoia-wot's own test vectors, run through `sealpost-trust`.
//!
//! Each keyring in `tests/data` (see its README) is loaded into a
//! [`TrustNetwork`]; `check` then asks, with the same roots, target and
//! user ID as sequoia-wot's tests, for
//!
//! 1. the raw evidence ([`TrustNetwork::evidence`]) — must equal the amount
//!    sequoia-wot's test expects, and
//! 2. Sealpost's verdict ([`TrustNetwork::authenticate_from_roots`]) —
//!    must give the same amount and the matching level.
//!
//! Where Sealpost's policy deliberately differs (the target key itself is
//! revoked or expired: sequoia-wot 0.15 still authenticates it, Sealpost
//! refuses it), `check_evidence` checks the raw amount and the test asserts
//! the Sealpost verdict explicitly.
//!
//! Expected amounts come from sequoia-wot 0.15.3's `src/lib.rs` tests
//! (`sp(...)` calls, required amount 120) and, for regex-1..3, from its
//! `src/backward_propagation.rs` tests (single best path per root).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sealpost_trust::sequoia_openpgp as openpgp;
use sealpost_trust::{FULL, Level, TrustNetwork, WhyNot};

use openpgp::cert::CertParser;
use openpgp::packet::UserID;
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::{Cert, Fingerprint};

// The times used by sequoia-wot's generator scripts (`date -d 2020MMDD`
// in their test comments).
const T0: u64 = 1_577_919_600;
const T1: u64 = 1_580_598_000;
const T2: u64 = 1_583_103_600;
const T3: u64 = 1_585_778_400;
/// sequoia-wot's tests use "now" for keyrings without times; we pin it.
/// Not to the real now: the `sq`-made certifications in those keyrings
/// carry sq's default 5-year signature expiry and the oldest (made
/// 2021-10-05) expire on 2026-10-05, after which sequoia-wot's own tests
/// fail too.
const NOW: u64 = 1_780_272_000; // 2026-06-01

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn certs(name: &str) -> Vec<Cert> {
    let path = format!("{}/tests/data/{name}.pgp", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    CertParser::from_bytes(&bytes)
        .expect("keyring parses")
        .map(|c| c.expect("valid certificate"))
        .collect()
}

fn keyring_at(name: &str, t: SystemTime) -> TrustNetwork {
    TrustNetwork::new(certs(name), Arc::new(StandardPolicy::new()), t).expect("network builds")
}

fn keyring(name: &str, secs: u64) -> TrustNetwork {
    keyring_at(name, at(secs))
}

fn fpr(hex: &str) -> Fingerprint {
    hex.parse().expect("fingerprint")
}

fn roots(roots: &[(&str, usize)]) -> Vec<(Fingerprint, usize)> {
    roots.iter().map(|(h, a)| (fpr(h), *a)).collect()
}

/// sequoia-wot's raw amount for (target, user ID) from `roots`.
fn check_evidence(
    net: &TrustNetwork,
    roots_: &[(&str, usize)],
    target: &str,
    userid: &str,
    expected: usize,
) {
    let got = net.evidence(&roots(roots_), &fpr(target), &UserID::from(userid), FULL);
    assert_eq!(
        got.amount, expected,
        "evidence for {userid} ({target}) from {roots_:?}: {got:?}"
    );
}

/// The data-driven check: raw evidence and Sealpost's verdict both give
/// `expected` for the binding (`target`, `userid`) from `roots`.
fn check(
    net: &TrustNetwork,
    roots_: &[(&str, usize)],
    target: &str,
    userid: &str,
    expected: usize,
) {
    check_evidence(net, roots_, target, userid, expected);
    let address = userid.trim_start_matches('<').trim_end_matches('>');
    let v = net.authenticate_from_roots(&roots(roots_), &fpr(target), address);
    assert_eq!(
        v.amount, expected,
        "verdict for {address} from {roots_:?}: {v:#?}"
    );
    assert_eq!(v.level, Level::of(expected));
    assert_eq!(v.paths.iter().map(|p| p.amount).sum::<usize>(), expected);
    if expected == 0 {
        assert!(v.why_not.is_some());
    }
}

// ---- fingerprints (from sequoia-wot's tests) ----

mod simple {
    pub const ALICE: &str = "85DAB65713B2D0ABFC5A4F28BC10C9CE4A699D8D";
    pub const BOB: &str = "39A479816C934B9E0464F1F4BC1DCFDEADA4EE90";
    pub const CAROL: &str = "43530F91B450EDB269AA58821A1CF4DC7F500F04";
    pub const DAVE: &str = "329D5AAF73DC70B4E3DD2D11677CB70FFBFE1281";
    pub const ELLEN: &str = "A7319A9B166AB530A5FBAC8AB43CA77F7C176AF4";
    pub const FRANK: &str = "2693237D2CED0BB68F118D78DC86A97CD2C819D9";
}

#[test]
fn simple_chain_of_introducers() {
    use simple::*;
    let n = keyring("simple", NOW);
    let a = &[(ALICE, 120)];
    check(&n, a, ALICE, "<alice@example.org>", 120);
    check(&n, a, BOB, "<bob@example.org>", 100);
    check(&n, a, CAROL, "<carol@example.org>", 100);
    check(&n, a, DAVE, "<dave@example.org>", 100);
    check(&n, a, ELLEN, "<ellen@example.org>", 0);
    check(&n, a, FRANK, "<frank@example.org>", 0);
    // No one authenticated Bob's user ID on Carol's key.
    check_evidence(&n, a, CAROL, "<bob@example.org>", 0);
    let b = &[(BOB, 120)];
    check(&n, b, ALICE, "<alice@example.org>", 0);
    check(&n, b, BOB, "<bob@example.org>", 120);
    check(&n, b, CAROL, "<carol@example.org>", 100);
    check(&n, b, DAVE, "<dave@example.org>", 100);
    check(&n, b, ELLEN, "<ellen@example.org>", 0);
}

#[test]
fn partially_trusted_roots() {
    use simple::*;
    let n = keyring("simple", NOW);
    let a = &[(ALICE, 90)];
    check(&n, a, ALICE, "<alice@example.org>", 90);
    check(&n, a, BOB, "<bob@example.org>", 90);
    check(&n, a, CAROL, "<carol@example.org>", 90);
    check(&n, a, DAVE, "<dave@example.org>", 90);
    check(&n, a, ELLEN, "<ellen@example.org>", 0);
    check(&n, a, FRANK, "<frank@example.org>", 0);
    // Two partially trusted roots together fully authenticate Bob.
    let ab = &[(ALICE, 90), (BOB, 90)];
    check(&n, ab, ALICE, "<alice@example.org>", 90);
    check(&n, ab, BOB, "<bob@example.org>", 180);
}

#[test]
fn cycle() {
    const ALICE: &str = "BFC5CA10FB55A4B790E2A1DBA5CFAB9A9E34E183";
    const BOB: &str = "A637747DCF876A7F6C9149F74D47846E24A20C0B";
    const CAROL: &str = "394B04774FDAB0CDBF4D6FFD7930EA0FB549E303";
    const DAVE: &str = "4458062DC7388909CF760E6823150D8E4408638A";
    const ED: &str = "78C3814EFD16E68F4F1AB4B874E30AE11FFCFB1B";
    const FRANK: &str = "A6219FF753AEAE2DE8A74E8487977DD568A08237";
    let n = keyring("cycle", NOW);
    let a = &[(ALICE, 120)];
    check(&n, a, ALICE, "<alice@example.org>", 120);
    check(&n, a, BOB, "<bob@example.org>", 120);
    check(&n, a, CAROL, "<carol@example.org>", 90);
    check(&n, a, DAVE, "<dave@example.org>", 60);
    check(&n, a, ED, "<ed@example.org>", 30);
    check(&n, a, FRANK, "<frank@example.org>", 0);
    let ad = &[(ALICE, 120), (DAVE, 120)];
    check(&n, ad, ALICE, "<alice@example.org>", 120);
    check(&n, ad, CAROL, "<carol@example.org>", 90);
    check(&n, ad, ED, "<ed@example.org>", 30);
    check(&n, ad, FRANK, "<frank@example.org>", 30);
}

mod cliques_ {
    pub const ROOT: &str = "D2B0C3835C01B0C120BC540DA4AA8F880BA512B5";
    pub const A1: &str = "7974C04E8D5B540D23CD4E62DDFA779D91C69894";
    pub const TARGET: &str = "CE22ECD282F219AA99598BA3B58A7DA61CA97F55";
}

/// sequoia-wot's cliques tests take the reference time from the root's
/// creation time plus a year.
fn cliques_time() -> SystemTime {
    let root = fpr(cliques_::ROOT);
    let cert = certs("cliques")
        .into_iter()
        .find(|c| c.fingerprint() == root)
        .expect("root");
    cert.primary_key().key().creation_time() + Duration::from_secs(60 * 60 * 24 * 365)
}

#[test]
fn cliques() {
    use cliques_::*;
    let t = cliques_time();
    let n = keyring_at("cliques", t);
    check(&n, &[(ROOT, 120)], TARGET, "<target@example.org>", 120);
    check(&n, &[(A1, 120)], TARGET, "<target@example.org>", 120);
}

#[test]
fn cliques_local_optima() {
    use cliques_::*;
    let t = cliques_time();
    // Three paths (30 + 30 + 60) add up to full trust.
    let n = keyring_at("cliques-local-optima", t);
    check(&n, &[(ROOT, 120)], TARGET, "<target@example.org>", 120);
    check(&n, &[(A1, 120)], TARGET, "<target@example.org>", 120);
    let n = keyring_at("cliques-local-optima-2", t);
    check(&n, &[(ROOT, 120)], TARGET, "<target@example.org>", 120);
    // 30 + 90.
    check(&n, &[(A1, 120)], TARGET, "<target@example.org>", 120);
}

#[test]
fn roundabout() {
    const ALICE: &str = "41E9B069C96EB6D47525294B10BBBD00912BEA02";
    const BOB: &str = "2E90AEE966DF28CB916439B20397E086E705AC1A";
    const CAROL: &str = "92DDE8747C8E6ED09D41A4E1330D1190E858754C";
    const DAVE: &str = "D4515E6619084ED8142DF8589059E3846A025611";
    const ELMAR: &str = "E553C11DCFA777F3205E5090F5EE59C2795CDBA2";
    const FRANK: &str = "3267D46247D26101B3E5014CDF4F9BA5831D91DA";
    const GEORGE: &str = "CCD5DB27BD7C4F8E2010083605EF17E8A93EB652";
    const HENRY: &str = "7F62EF97091AE1FCB4E1C67EC8D9E94C4731529B";
    const ISAAC: &str = "32FD4D68B3227334CD0583E9FA0721F49D2F395D";
    const JENNY: &str = "AE40578962411356F9609CAA9C2447E61FFDBB15";
    let n = keyring("roundabout", NOW);
    let a = &[(ALICE, 120)];
    check(&n, a, BOB, "<bob@example.org>", 60 + 120);
    check(&n, a, CAROL, "<carol@example.org>", 120);
    check(&n, a, DAVE, "<dave@example.org>", 120);
    check(&n, a, ELMAR, "<elmar@example.org>", 120);
    check(&n, a, FRANK, "<frank@example.org>", 120);
    check(&n, a, GEORGE, "<george@example.org>", 60 + 60);
    check(&n, a, HENRY, "<henry@example.org>", 60 + 60);
    check(&n, a, ISAAC, "<isaac@example.org>", 60);
    check(&n, a, JENNY, "<jenny@example.org>", 0);
    let j = &[(JENNY, 120)];
    check(&n, j, ALICE, "<alice@example.org>", 0);
    check(&n, j, BOB, "<bob@example.org>", 100);
    check(&n, j, CAROL, "<carol@example.org>", 0);
    check(&n, j, ELMAR, "<elmar@example.org>", 100);
    check(&n, j, GEORGE, "<george@example.org>", 100 + 100);
    check(&n, j, HENRY, "<henry@example.org>", 100 + 20);
    check(&n, j, ISAAC, "<isaac@example.org>", 0);
    check(&n, j, JENNY, "<jenny@example.org>", 120);
}

#[test]
fn local_optima() {
    const ALICE: &str = "EAAE12F98D39F38BF0D1B4C5C46A428ADEFBB2F8";
    const BOB: &str = "89C7A9FB7236A77ABBE4F29CB8180FBF6382F90F";
    const CAROL: &str = "E9DF94E389F529F8EF6AA223F6CC1F8544C0874D";
    const DAVE: &str = "C2F822F17B68E946853A2DCFF55541D89F27F88B";
    const ELLEN: &str = "70507A9058A57FEAE18CC3CE6A398AC9051D9CA8";
    const FRANCIS: &str = "D8DDA78A2297CA3C35B9377577E8B54B9350C082";
    const GEORGINA: &str = "C5D1B22FEC75911A04E1A5DC75B66B994E70ADE2";
    const HENRY: &str = "F260739E3F755389EFC2FEE67F58AACB661D5120";
    let n = keyring("local-optima", NOW);
    let a = &[(ALICE, 120)];
    check(&n, a, BOB, "<bob@example.org>", 120);
    check(&n, a, CAROL, "<carol@example.org>", 100);
    check(&n, a, DAVE, "<dave@example.org>", 50);
    check(&n, a, ELLEN, "<ellen@example.org>", 100 + 20);
    check(&n, a, FRANCIS, "<francis@example.org>", 75 + 45);
    check(&n, a, GEORGINA, "<georgina@example.org>", 30);
    check(&n, a, HENRY, "<henry@example.org>", 100 + 20);
    let b = &[(BOB, 120)];
    check(&n, b, ALICE, "<alice@example.org>", 0);
    check(&n, b, CAROL, "<carol@example.org>", 100);
    check(&n, b, DAVE, "<dave@example.org>", 50);
    check(&n, b, ELLEN, "<ellen@example.org>", 100 + 50);
}

#[test]
fn multiple_userids_share_a_multi_edge() {
    const ALICE: &str = "DA3CFC60BD4B8835702A66782C7A431946C12DF7";
    const FRANK: &str = "A72AA1B7D9D8CB04D988F1520A404E37A7766608";
    let n = keyring("multiple-userids-3", NOW);
    check(&n, &[(ALICE, 120)], FRANK, "<frank@example.org>", 20 + 10);
}

#[test]
fn certification_liveness() {
    const ALICE: &str = "77C077250C26357E5E64A58A41426350B1D7F738";
    const CAROL: &str = "E8BB154D000C17AC87291D7271553C836973FE01";
    for (t, expected) in [(T1, 60), (T2, 120), (T3, 60)] {
        let n = keyring("certification-liveness", t);
        check(&n, &[(ALICE, 120)], CAROL, "<carol@example.org>", expected);
    }
}

#[test]
fn soft_key_revocation() {
    const ALICE: &str = "66037F98B444BBAFDFE98E871738DFAB86878262";
    const BOB: &str = "4CD8737F76C2B897C4F058DBF28C47540FA2C3B3";
    const DAVE: &str = "DF6A440ED9DE723B0EBC7F50E24FBB1B9FADC999";
    // Bob is soft-revoked ("retired") at t2.
    for t in [T1, T2, T3] {
        let n = keyring("cert-revoked-soft", t);
        // Certifications Bob made before the revocation stay valid.
        check(&n, &[(BOB, 120)], DAVE, "<dave@example.org>", 60);
        check(&n, &[(ALICE, 120)], DAVE, "<dave@example.org>", 60 + 30);
        let bob_amount = if t == T3 { 120 } else { 90 };
        check_evidence(&n, &[(ALICE, 120)], BOB, "<bob@example.org>", bob_amount);
        let v = n.authenticate_from_roots(&roots(&[(ALICE, 120)]), &fpr(BOB), "bob@example.org");
        if t == T1 {
            // The soft revocation is still in the future.
            assert_eq!(v.amount, 90);
            assert_eq!(v.why_not, Some(WhyNot::NotEnough { amount: 90 }));
        } else {
            // Sealpost refuses a revoked target; sequoia-wot 0.15 does not.
            assert_eq!(v.amount, 0);
            assert!(
                matches!(&v.why_not, Some(WhyNot::Revoked { reason }) if reason.contains("retired")),
                "{v:?}"
            );
        }
    }
}

#[test]
fn hard_key_revocation() {
    const ALICE: &str = "219AAB661C8AAF4526DBC31AA751A7A0532863BA";
    const BOB: &str = "90E02BFB03FAA04714D1D3D87543157EF3B12BE9";
    const DAVE: &str = "46945292F8F643F0573AF71183F9C1A4759A16D6";
    for t in [T1, T2, T3] {
        let n = keyring("cert-revoked-hard", t);
        // A hard revocation invalidates everything Bob ever certified.
        check(&n, &[(BOB, 120)], DAVE, "<dave@example.org>", 0);
        check(&n, &[(ALICE, 120)], DAVE, "<dave@example.org>", 30);
        let bob_amount = if t == T3 { 120 } else { 90 };
        check_evidence(&n, &[(ALICE, 120)], BOB, "<bob@example.org>", bob_amount);
        let v = n.authenticate_from_roots(&roots(&[(ALICE, 120)]), &fpr(BOB), "bob@example.org");
        assert_eq!(v.amount, 0);
        assert!(matches!(v.why_not, Some(WhyNot::Revoked { .. })), "{v:?}");
    }
}

#[test]
fn key_expiry() {
    const ALICE: &str = "1FA62523FB7C06E71EEFB82BB5159F3FC3EB3AC9";
    const BOB: &str = "B166B31AE5F95600B3F7184FE74C6CE62821686F";
    const CAROL: &str = "81CD118AC5BD9156DC113772626222D76ACDFFCF";
    // Bob's key expires 45 days after t0, between t1 and t2.
    for t in [T1, T2, T3] {
        let n = keyring("cert-expired", t);
        // Certifications Bob made while alive stay valid.
        check(&n, &[(ALICE, 120)], CAROL, "<carol@example.org>", 60);
        check(&n, &[(BOB, 120)], CAROL, "<carol@example.org>", 60);
        let bob_amount = if t == T3 { 120 } else { 60 };
        check_evidence(&n, &[(ALICE, 120)], BOB, "<bob@example.org>", bob_amount);
        check_evidence(&n, &[(BOB, 120)], BOB, "<bob@example.org>", 120);
        let v = n.authenticate_from_roots(&roots(&[(ALICE, 120)]), &fpr(BOB), "bob@example.org");
        if t == T1 {
            assert_eq!(v.amount, 60);
        } else {
            assert_eq!(v.amount, 0);
            assert!(matches!(v.why_not, Some(WhyNot::Expired { .. })), "{v:?}");
        }
    }
}

#[test]
fn userid_revocation() {
    const ALICE: &str = "01672BB67E4B4047E5A4EC0A731CEA092C465FC8";
    const BOB: &str = "EA479A77CD074458EAFE56B4861BF42FF490C581";
    const CAROL: &str = "212873BB9C4CC49F8E5A6FEA78BC5397470BA7F0";
    // Bob revokes <bob@example.org> at t2.
    for t in [T1, T2, T3] {
        let n = keyring("userid-revoked", t);
        let expect_bob_self = if t == T1 { 120 } else { 0 };
        check(&n, &[(BOB, 120)], BOB, "<bob@example.org>", expect_bob_self);
        let expect_bob = if t == T1 { 60 } else { 0 };
        check(&n, &[(ALICE, 120)], BOB, "<bob@example.org>", expect_bob);
        // A delegation survives the revocation of the user ID it is on.
        let expect_carol = if t == T3 { 90 } else { 60 };
        check(
            &n,
            &[(ALICE, 120)],
            CAROL,
            "<carol@example.org>",
            expect_carol,
        );
        if t != T1 {
            let v =
                n.authenticate_from_roots(&roots(&[(ALICE, 120)]), &fpr(BOB), "bob@example.org");
            assert!(
                matches!(v.why_not, Some(WhyNot::UserIdRevoked { .. })),
                "{v:?}"
            );
        }
    }
}

#[test]
fn userid_revoked_without_self_signature() {
    const ALICE: &str = "D74DE22EDAE82EB8AD87A2D9816B56FDF9022248";
    const BOB: &str = "3CC2F380C997730543AFCA3830887147FDECD335";
    let n = keyring("userid-revoked-2", T1);
    let got = n.evidence(
        &roots(&[(ALICE, 120)]),
        &fpr(BOB),
        &UserID::from("<bob@other.org>"),
        FULL,
    );
    assert_eq!(got.paths.len(), 1, "{got:?}");
    let n = keyring("userid-revoked-2", T2);
    check(&n, &[(ALICE, 120)], BOB, "<bob@other.org>", 0);
}

#[test]
fn certification_revocation() {
    const ALICE: &str = "817C2BE18D9FF48FFE58FF39B699FC21AD92EFDC";
    const BOB: &str = "4258ACF6C3C8FCE130D6EBAB0CC5158AEA25F24A";
    const CAROL: &str = "36766215FFD2FA000B0804BFF54577580DDC1741";
    // Alice certifies Bob (t1), revokes it (t2), certifies again (t3).
    for (t, bob, carol) in [(T1, 60, 60), (T2, 0, 0), (T3, 120, 120)] {
        let n = keyring("certification-revoked", t);
        let a = &[(ALICE, 120)];
        check(&n, a, ALICE, "<alice@example.org>", 120);
        check(&n, a, BOB, "<bob@example.org>", bob);
        check(&n, a, CAROL, "<carol@example.org>", carol);
        // Alice, not Bob, revoked: Bob's self-signature is untouched.
        check(&n, &[(BOB, 120)], BOB, "<bob@example.org>", 120);
    }
}

#[test]
fn infinite_depth() {
    const U1: &str = "B557862780A97676CC32F4BB1491A9C2BDE6F1DC";
    const U254: &str = "AF097DA4DB5C0E2116EF583B25A6B381B621C082";
    const U260: &str = "B69A678AA242FA4F0BBF12205C0608799B0E3C51";
    let n = keyring("infinity-and-beyond", NOW);
    check(&n, &[(U1, 120)], U254, "<u254@example.org>", 120);
    // Depth 255 means unconstrained.
    check(&n, &[(U1, 120)], U260, "<u260@example.org>", 120);
}

#[test]
fn zero_trust() {
    const ALICE: &str = "931E51F99B89649783A1DFF265266E28246040C2";
    const BOB: &str = "A1042B157AFA71F005208D645915549D8D21A97B";
    const CAROL: &str = "E06DB0539D99759681D7EC8508A267AE8FA838F4";
    // At t2 Bob is recertified with a trust amount of 0.
    for (t, expected) in [(T1, 60), (T2, 0)] {
        let n = keyring("zero-trust", t);
        check(&n, &[(ALICE, 120)], CAROL, "<carol@example.org>", expected);
        check(&n, &[(BOB, 120)], CAROL, "<carol@example.org>", expected);
    }
}

#[test]
fn self_signed_userids_via_introducer() {
    const ALICE: &str = "838454E0D61D046300B408A908A4FDB4F368ECB9";
    const BOB: &str = "7A7B5DE6C8F464CAB78BEFB9CE14BEE51D4DEC01";
    const CAROL: &str = "830230061426EE99A0455E6ADA869CF879A5630D";
    const DAVE: &str = "51A5E15F87AC6ECAFBEA930FA5F30AF6EB6EF14A";
    let n = keyring("self-signed", NOW);
    let a = &[(ALICE, 120)];
    check(&n, a, BOB, "<bob@example.org>", 100);
    check(&n, a, CAROL, "<carol@example.org>", 90);
    check(&n, a, CAROL, "<carol@other.org>", 0);
    check(&n, a, DAVE, "<dave@example.org>", 0);
    let b = &[(BOB, 120)];
    check(&n, b, BOB, "<bob@example.org>", 120);
    check(&n, b, CAROL, "<carol@example.org>", 90);
    // Carol, a trusted introducer, vouches for her own other user ID.
    check(&n, b, CAROL, "<carol@other.org>", 90);
    check(&n, b, DAVE, "<dave@example.org>", 90);
}

#[test]
fn isolated_root_with_expired_userid() {
    const ALICE: &str = "DCF3020AAB76ECC7F0E5AC0D375DCE1BEE264B87";
    for (t, expected) in [(T0, 120), (T1, 0)] {
        let n = keyring("isolated-root", t);
        check(&n, &[(ALICE, 120)], ALICE, "<alice@example.org>", expected);
        check(&n, &[(ALICE, 120)], ALICE, "<alice@other.org>", 120);
    }
}

#[test]
fn regex_scoping_1() {
    const ALICE: &str = "3AD1F297E4B150F75DBFC43476FB81BFE0665C3A";
    const BOB: &str = "20C812117FB2A3940EAE9160FEE6B4E47A096FD1";
    const CAROL: &str = "BC30978345D789CADECDE492F54B42E1625E1A1D";
    const DAVE: &str = "319810FAD46CBE96DAD7F1F5B014902592999B21";
    const ED: &str = "23D7418EA0C6A42A54C32DBE8D4FE4911ED08467";
    const FRANK: &str = "7FAE20D68EE87F74368AF275A0C40E741FC1C50F";
    let n = keyring("regex-1", NOW);
    let a = &[(ALICE, 120)];
    check(&n, a, BOB, "<bob@example.org>", 100);
    check(&n, a, CAROL, "<carol@example.org>", 100);
    // Alice scoped Bob to example.org.
    check(&n, a, DAVE, "<dave@other.org>", 0);
    check(&n, a, ED, "<ed@example.org>", 0);
    check(&n, a, FRANK, "<frank@other.org>", 0);
    let b = &[(BOB, 120)];
    check(&n, b, CAROL, "<carol@example.org>", 100);
    check(&n, b, DAVE, "<dave@other.org>", 100);
    // Bob scoped Dave to other.org.
    check(&n, b, ED, "<ed@example.org>", 0);
    check(&n, b, FRANK, "<frank@other.org>", 100);
    let d = &[(DAVE, 120)];
    check(&n, d, ED, "<ed@example.org>", 100);
    check(&n, d, FRANK, "<frank@other.org>", 100);
}

#[test]
fn regex_scoping_2() {
    const ALICE: &str = "5C396C920399898461F17CB747FDBF3EB3453919";
    const BOB: &str = "584D195AD89CE0354D2CCBAEBCDD9EBC09692780";
    const CAROL: &str = "FC7A96D4810D0CF477031956AED58C644370C183";
    const DAVE: &str = "58077E659732526C1B8BF9837EFC0EDE07B506A8";
    const ED: &str = "36089C49F18BF6FC6BCA35E3BB85877766C009E4";
    let n = keyring("regex-2", NOW);
    let a = &[(ALICE, 120)];
    check(&n, a, BOB, "<bob@some.org>", 100);
    // The scope applies to what Carol introduces, not to Carol herself.
    check(&n, a, CAROL, "<carol@other.org>", 100);
    check(&n, a, DAVE, "<dave@their.org>", 0);
    check(&n, a, ED, "<ed@example.org>", 100);
    let b = &[(BOB, 120)];
    check(&n, b, CAROL, "<carol@other.org>", 100);
    check(&n, b, DAVE, "<dave@their.org>", 0);
    check(&n, b, ED, "<ed@example.org>", 100);
    let c = &[(CAROL, 120)];
    check(&n, c, DAVE, "<dave@their.org>", 100);
    check(&n, c, ED, "<ed@example.org>", 100);
}

#[test]
fn regex_scoping_3() {
    const ALICE: &str = "D8CFEBBA006E2ED57CF45CC413F0BAE09D94FE4E";
    const BOB: &str = "A75DC1A1EDA5282F3A7381B51824E46BBCC801F0";
    const CAROL: &str = "4BCD4325BDACA452F0301227A30CB4BCC329E769";
    const DAVE: &str = "2E1AAA8D9A22C94ACCA362A22B34031CD5CB9380";
    const ED: &str = "F645D081F480BE26C7D2C84D941B3E2CE53FAF16";
    const FRANK: &str = "AFAB11F1A37FD20C85CF8093F4941D1A0EC5749F";
    const GEORGE: &str = "D01C8752D9BA9F3F5F06B21F394E911938D6DB0A";
    const HENRY: &str = "B99A8696FD820192CEEE285D3A253E49F1D97109";
    let n = keyring("regex-3", NOW);
    let a = &[(ALICE, 120)];
    check(&n, a, BOB, "<bob@example.org>", 100);
    check(&n, a, CAROL, "<carol@example.org>", 100);
    check(&n, a, DAVE, "<dave@other.org>", 100);
    check(&n, a, ED, "<ed@example.org>", 0);
    check(&n, a, FRANK, "<frank@other.org>", 100);
    check(&n, a, GEORGE, "<george@their.org>", 0);
    check(&n, a, HENRY, "<henry@their.org>", 0);
    let b = &[(BOB, 120)];
    check(&n, b, CAROL, "<carol@example.org>", 100);
    check(&n, b, DAVE, "<dave@other.org>", 100);
    check(&n, b, ED, "<ed@example.org>", 0);
    check(&n, b, FRANK, "<frank@other.org>", 100);
    check(&n, b, GEORGE, "<george@their.org>", 100);
    check(&n, b, HENRY, "<henry@their.org>", 100);
    let d = &[(DAVE, 120)];
    check(&n, d, ED, "<ed@example.org>", 100);
    check(&n, d, FRANK, "<frank@other.org>", 100);
    check(&n, d, GEORGE, "<george@their.org>", 100);
}

#[test]
fn regex_scoping_4_introducer_for_own_userid() {
    const ALICE: &str = "43ED15FAF18395C08AEDEDC0FC9EB4BFABE67F70";
    const BOB: &str = "3A9E44015431B8655CD3FECFBFB6DEC7D711138F";
    const CAROL: &str = "03357E46D9E0C47A9D92CA58F71DE1B5B9CD2D10";
    const DAVE: &str = "B7FE472208AE5188971466F1FF7C4B36B578B709";
    let n = keyring("regex-4", NOW);
    let a = &[(ALICE, 120)];
    check(&n, a, ALICE, "<alice@example.org>", 120);
    check(&n, a, BOB, "<bob@example.org>", 120);
    // Bob, an introducer for some.org, vouches for his own some.org ID...
    check(&n, a, BOB, "<bob@some.org>", 120);
    // ...but not for other.org.
    check(&n, a, BOB, "<bob@other.org>", 0);
    check(&n, a, CAROL, "<carol@some.org>", 120);
    check(&n, a, DAVE, "<dave@other.org>", 0);
}
