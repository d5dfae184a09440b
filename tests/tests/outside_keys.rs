//! Outside keys (docs/mail.md, "Outside keys") against real HTTPS servers on loopback: a Web
//! Key Directory and an HKP keyserver (the test kit's `HttpsServer`, with a certificate from a
//! CA made for the test, which the node trusts through `[delivery] wkd_ca_file` and reaches
//! through `[delivery] resolve`); imports by users and administrators through the HTTP API and
//! `sealpost admin key`; X.509 certificates against `[delivery] x509_anchors`.

use std::time::{Duration, SystemTime};

use sealpost_client::{ClientError, Session};
use sealpost_proto::outside::{KeySource, OutsideKeyKind};
use sealpost_tests::TestNode;
use sealpost_tests::https::{Answer, HttpsServer, Issued, TestCa, Usage};
use sequoia_openpgp::Cert;
use sequoia_openpgp::cert::CertBuilder;
use sequoia_openpgp::serialize::{Serialize, SerializeInto};

/// The host names the test servers answer for (one certificate, one loopback address).
const HOSTS: &[&str] = &[
    "openpgpkey.pgp.test",
    "pgp.test",
    "partner.test",
    "keys.test",
    "slow.test",
    "openpgpkey.slow.test",
    "big.test",
    "openpgpkey.big.test",
    "ks.test",
    "openpgpkey.ks.test",
];

/// A name the server's certificate also carries but `[delivery] resolve` does not: the node
/// must not reach it (it resolves to loopback).
const LOCAL: &str = "localhost";

/// An outside person's key, with one user ID per `uids` entry, as written.
fn outside_key(uids: &[&str]) -> Cert {
    let mut b = CertBuilder::general_purpose(None::<&str>);
    for u in uids {
        b = b.add_userid(*u);
    }
    b.set_creation_time(SystemTime::now() - Duration::from_secs(3600))
        .generate()
        .unwrap()
        .0
}

fn armored(cert: &Cert) -> String {
    String::from_utf8(cert.armored().to_vec().unwrap()).unwrap()
}

fn binary(cert: &Cert) -> Vec<u8> {
    let mut v = Vec::new();
    cert.serialize(&mut v).unwrap();
    v
}

fn wkd_hash(local: &str) -> String {
    sealpost_directory::wkd_hash(local)
}

/// The route of `local@domain`'s key on a WKD, advanced or direct.
fn wkd_route(local: &str, domain: &str, advanced: bool) -> String {
    let h = wkd_hash(local);
    if advanced {
        format!("openpgpkey.{domain}/.well-known/openpgpkey/{domain}/hu/{h}?l={local}")
    } else {
        format!("{domain}/.well-known/openpgpkey/hu/{h}?l={local}")
    }
}

fn code(e: ClientError) -> String {
    e.code()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{e}"))
}

struct World {
    /// Kept for its files (the CA and anchor PEMs).
    _dir: tempfile::TempDir,
    server: HttpsServer,
    node: TestNode,
    alice: Session,
    bob: Session,
    /// Issues S/MIME certificates the node's anchors accept.
    smime_ca: TestCa,
}

/// A node for alpha.test whose look-ups reach `HOSTS` at one HTTPS server on loopback (its
/// certificate from a test CA the node trusts), with the keyserver `keys.test` and an X.509
/// trust anchor; alice and bob enrolled, alice an administrator.
async fn world() -> World {
    world_with(|_, _| {}).await
}

/// [`world`], with `tweak` applied to the delivery settings (given the server's address).
async fn world_with(
    tweak: impl FnOnce(&mut sealpost::config::DeliveryConfig, std::net::SocketAddr) + Send + 'static,
) -> World {
    let dir = tempfile::tempdir().unwrap();
    let tls_ca = TestCa::new("Test Web CA").unwrap();
    let ca_file = tls_ca.write_pem(&dir.path().join("web-ca.pem")).unwrap();
    let names: Vec<&str> = HOSTS.iter().copied().chain([LOCAL]).collect();
    let identity: Issued = tls_ca.issue(Usage::Server(&names)).unwrap();
    let server = HttpsServer::start(&identity).await.unwrap();
    let smime_ca = TestCa::new("Test S/MIME CA").unwrap();
    let anchors = smime_ca.write_pem(&dir.path().join("anchors.pem")).unwrap();
    let addr = server.addr;
    let node = TestNode::spawn_with("alpha.test", move |c| {
        c.federation.enabled = false;
        let d = &mut c.delivery;
        d.wkd_ca_file = ca_file.display().to_string();
        d.x509_anchors = anchors.display().to_string();
        for h in HOSTS {
            d.resolve.insert(h.to_string(), addr);
        }
        d.keyservers = vec!["hkps://keys.test".into()];
        d.lookup_timeout_secs = 2;
        d.max_key_bytes = 64 * 1024;
        tweak(d, addr);
    })
    .await
    .unwrap();
    let alice = node
        .enrolled(
            "alice@alpha.test",
            "alice's password",
            sealpost_proto::KdfParams::MIN,
            true,
        )
        .await
        .unwrap();
    let bob = node.person("bob").await;
    World {
        _dir: dir,
        server,
        node,
        alice,
        bob,
        smime_ca,
    }
}

/// dora@pgp.test publishes her key in pgp.test's WKD (advanced method): alice finds it, and
/// the verdict says where it came from and that nobody she trusts certified it.
#[tokio::test]
async fn a_key_in_the_advanced_wkd_is_found_and_said_to_be_published_by_the_domain() {
    let w = world().await;
    let dora = outside_key(&["Dora <dora@pgp.test>"]);
    w.server.route(
        &wkd_route("dora", "pgp.test", true),
        Answer::Body(binary(&dora)),
    );

    let found = w.alice.outside_keys("dora@pgp.test").await.unwrap();
    assert_eq!(found.openpgp.len(), 1, "{found:?}");
    let k = &found.openpgp[0];
    assert_eq!(k.fingerprint, dora.fingerprint().to_hex());
    assert_eq!(k.source, KeySource::Wkd);
    assert_eq!(
        k.verdict.explanation[0],
        "published by pgp.test's Web Key Directory"
    );
    assert_eq!(k.verdict.level, "none");
    assert_eq!(k.verdict.why_not.as_deref(), Some("no_path"));
    // The node asked the advanced method only: it had the key.
    assert_eq!(w.server.seen(), vec![wkd_route("dora", "pgp.test", true)]);
}

/// partner.test has no `openpgpkey.` host: the direct method answers. The key's user ID is
/// `John.Smith@Partner.COM` and matches `john.smith@partner.test` as mail matches addresses,
/// asked in any case.
#[tokio::test]
async fn the_direct_wkd_answers_and_addresses_match_in_any_case() {
    let w = world().await;
    let john = outside_key(&["John Smith <John.Smith@Partner.TEST>"]);
    // The direct method's route of the hashed local part (the `l` parameter is sent as the
    // address was asked, normalised to lower case).
    w.server.route(
        &wkd_route("john.smith", "partner.test", false),
        Answer::Body(binary(&john)),
    );
    let found = w
        .alice
        .outside_keys("John.Smith@PARTNER.test")
        .await
        .unwrap();
    assert_eq!(found.openpgp.len(), 1, "{found:?}");
    assert_eq!(found.openpgp[0].fingerprint, john.fingerprint().to_hex());
    assert_eq!(
        found.openpgp[0].verdict.explanation[0],
        "published by partner.test's Web Key Directory"
    );
    // The advanced method was tried first and found nothing there, which the answer says.
    assert!(
        found
            .notes
            .iter()
            .any(|n| n.contains("openpgpkey.partner.test")),
        "{:?}",
        found.notes
    );
}

/// A WKD answer whose key carries other addresses only is ignored; so is garbage.
#[tokio::test]
async fn a_published_key_without_a_user_id_for_the_address_is_ignored() {
    let w = world().await;
    let other = outside_key(&["Eve <eve@elsewhere.test>"]);
    w.server.route(
        &wkd_route("dora", "pgp.test", true),
        Answer::Body(binary(&other)),
    );
    w.server.route(
        &wkd_route("dora", "pgp.test", false),
        Answer::Body(b"this is not a key".to_vec()),
    );
    let found = w.alice.outside_keys("dora@pgp.test").await.unwrap();
    assert!(found.openpgp.is_empty(), "{found:?}");
    assert!(
        found
            .notes
            .iter()
            .filter(|n| n.contains("no key with a user ID for dora@pgp.test"))
            .count()
            == 2,
        "{:?}",
        found.notes
    );
}

/// Imports: bob's own import is his alone (alice does not see it); an administrator's import
/// is every user's; each verdict says who imported it. A key alice certified herself says so,
/// and is fully authenticated for her.
#[tokio::test]
async fn imports_are_the_importers_and_an_administrators_are_everyones() {
    let w = world().await;
    let erik = outside_key(&["Erik <erik@import.test>"]);
    let view = w
        .bob
        .import_key(&armored(&erik), Some("erik@import.test"))
        .await
        .unwrap();
    assert_eq!(view.kind, OutsideKeyKind::Openpgp);
    assert_eq!(view.addresses, vec!["erik@import.test".to_string()]);

    let bobs = w.bob.outside_keys("erik@import.test").await.unwrap();
    assert_eq!(bobs.openpgp.len(), 1);
    assert_eq!(bobs.openpgp[0].source, KeySource::Imported);
    assert_eq!(bobs.openpgp[0].verdict.explanation[0], "imported by you");
    // Imports come first: no outside server was asked.
    assert!(w.server.seen().is_empty(), "{:?}", w.server.seen());

    let alices = w.alice.outside_keys("erik@import.test").await.unwrap();
    assert!(
        alices.openpgp.is_empty(),
        "bob's import is not alice's: {alices:?}"
    );
    assert!(w.alice.imported_keys().await.unwrap().is_empty());

    // The administrator imports fay's key for everyone, through the HTTP API.
    let fay = outside_key(&["<fay@import.test>"]);
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/api/v1/admin/outside-keys", w.node.url))
        .bearer_auth(w.alice.token())
        .json(&serde_json::json!({ "key": armored(&fay) }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    // ... which bob, no administrator, may not do.
    let resp = http
        .post(format!("{}/api/v1/admin/outside-keys", w.node.url))
        .bearer_auth(w.bob.token())
        .json(&serde_json::json!({ "key": armored(&fay) }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    for s in [&w.alice, &w.bob] {
        let found = s.outside_keys("fay@import.test").await.unwrap();
        assert_eq!(found.openpgp.len(), 1);
        assert_eq!(found.openpgp[0].source, KeySource::ImportedByAdmin);
        assert_eq!(
            found.openpgp[0].verdict.explanation[0],
            "imported by your organisation's administrator"
        );
    }

    // alice certifies gus's key herself (after comparing fingerprints) and imports it.
    let gus = outside_key(&["Gus <gus@import.test>"]);
    let signed = sealpost_trust::certify(
        w.alice.unlocked_cert(),
        &gus,
        "gus@import.test",
        SystemTime::now(),
    )
    .unwrap();
    w.alice.import_key(&armored(&signed), None).await.unwrap();
    let found = w.alice.outside_keys("gus@import.test").await.unwrap();
    let v = &found.openpgp[0].verdict;
    assert_eq!(v.level, "full", "{v:?}");
    assert!(
        v.explanation
            .iter()
            .any(|l| l.contains("you certified this key")),
        "{v:?}"
    );

    // Removing: bob's import goes; removing it again is `unknown_key`.
    w.bob.remove_key(&view.fingerprint).await.unwrap();
    assert!(w.bob.imported_keys().await.unwrap().is_empty());
    assert_eq!(
        code(w.bob.remove_key(&view.fingerprint).await.unwrap_err()),
        "unknown_key"
    );
}

/// Imports refuse a secret key, garbage, oversized input, and a key without the address asked
/// for, each with its own code, and store nothing.
#[tokio::test]
async fn imports_refuse_secret_keys_garbage_oversize_and_foreign_addresses() {
    let w = world().await;
    let tsk = outside_key(&["<hal@import.test>"]);
    let secret = String::from_utf8(tsk.as_tsk().armored().to_vec().unwrap()).unwrap();
    assert_eq!(
        code(w.bob.import_key(&secret, None).await.unwrap_err()),
        "secret_key"
    );
    assert_eq!(
        code(w.bob.import_key("garbage", None).await.unwrap_err()),
        "invalid_cert"
    );
    let big = format!("{}{}", armored(&tsk), " ".repeat(70 * 1024));
    assert_eq!(
        code(w.bob.import_key(&big, None).await.unwrap_err()),
        "too_large"
    );
    assert_eq!(
        code(
            w.bob
                .import_key(&armored(&tsk), Some("ivy@import.test"))
                .await
                .unwrap_err()
        ),
        "invalid_cert"
    );
    assert!(w.bob.imported_keys().await.unwrap().is_empty());
    let pem_key = w
        .smime_ca
        .issue(Usage::Smime("erik@smime.test"))
        .unwrap()
        .key_pem;
    assert_eq!(
        code(w.bob.import_key(&pem_key, None).await.unwrap_err()),
        "secret_key"
    );
    assert_eq!(w.node.count("SELECT COUNT(*) FROM outside_keys"), 0);
}

/// kim@ks.test is in no WKD (both methods answer 404): the keyserver has her key, which is
/// "only found on a keyserver: nobody vouches for it", with where else the node looked. The
/// answer is remembered: asking again asks no server.
#[tokio::test]
async fn a_key_only_on_a_keyserver_is_said_to_be_vouched_for_by_nobody() {
    let w = world().await;
    let kim = outside_key(&["Kim <Kim@KS.test>"]);
    w.server.route(
        "keys.test/pks/lookup?op=get&options=mr&search=kim%40ks.test",
        Answer::Body(armored(&kim).into_bytes()),
    );
    let found = w.alice.outside_keys("kim@ks.test").await.unwrap();
    assert_eq!(found.openpgp.len(), 1, "{found:?}");
    let k = &found.openpgp[0];
    assert_eq!(k.source, KeySource::Keyserver);
    assert_eq!(k.fingerprint, kim.fingerprint().to_hex());
    assert_eq!(
        k.verdict.explanation[0],
        "only found on the keyserver keys.test: nobody vouches for it"
    );
    assert_eq!(k.verdict.level, "none");
    // Both WKD methods were asked first and said 404, which the answer and explanation tell.
    let wkd_404: Vec<&String> = found
        .notes
        .iter()
        .filter(|n| n.starts_with("ks.test's Web Key Directory") && n.ends_with("not found (404)"))
        .collect();
    assert_eq!(wkd_404.len(), 2, "{:?}", found.notes);
    assert!(
        k.verdict.explanation.contains(wkd_404[0]),
        "{:?}",
        k.verdict
    );
    let asked = w.server.seen().len();
    assert_eq!(asked, 3, "{:?}", w.server.seen());

    let again = w.bob.outside_keys("KIM@ks.test").await.unwrap();
    assert_eq!(again.openpgp[0].fingerprint, kim.fingerprint().to_hex());
    assert_eq!(w.server.seen().len(), asked, "the answer was remembered");
}

/// A server that trickles its answer is cut off at `lookup_timeout_secs`; one that sends
/// more than `max_key_bytes` (with or without a length) is cut off there. Each is "not found
/// there", said in words, and the look-up carries on.
#[tokio::test]
async fn slow_and_oversized_answers_are_bounded() {
    let w = world().await;
    let key = binary(&outside_key(&["<sam@slow.test>"]));
    w.server.route(
        &wkd_route("sam", "slow.test", true),
        Answer::Stream {
            body: key.clone(),
            chunk: 1,
            every: Duration::from_millis(200),
        },
    );
    w.server.route(
        &wkd_route("sam", "slow.test", false),
        Answer::Stream {
            body: vec![b'x'; 200 * 1024],
            chunk: 8 * 1024,
            every: Duration::ZERO,
        },
    );
    let found = w.alice.outside_keys("sam@slow.test").await.unwrap();
    assert!(found.openpgp.is_empty(), "{found:?}");
    assert!(
        found.notes[0].ends_with("no answer within the time allowed"),
        "{:?}",
        found.notes
    );
    assert!(
        found.notes[1].ends_with("the answer is larger than 65536 bytes"),
        "{:?}",
        found.notes
    );

    w.server.route(
        &wkd_route("bea", "big.test", true),
        Answer::Body(vec![b'x'; 100 * 1024]),
    );
    let found = w.alice.outside_keys("bea@big.test").await.unwrap();
    assert!(found.openpgp.is_empty());
    assert!(
        found.notes[0].ends_with("the answer is larger than 65536 bytes"),
        "{:?}",
        found.notes
    );
}

/// X.509 certificates: one issued by the configured anchor is anchored; one from another CA,
/// and an expired one, are not, with the reason in words.
#[tokio::test]
async fn x509_certificates_are_checked_against_the_anchors() {
    let w = world().await;
    let good = w.smime_ca.issue(Usage::Smime("Erik@SMIME.test")).unwrap();
    let view = w
        .bob
        .import_key(&good.cert_pem, Some("erik@smime.test"))
        .await
        .unwrap();
    assert_eq!(view.kind, OutsideKeyKind::X509);
    assert_eq!(view.addresses, vec!["erik@smime.test".to_string()]);
    let found = w.bob.outside_keys("erik@smime.test").await.unwrap();
    assert_eq!(found.x509.len(), 1, "{found:?}");
    let x = &found.x509[0];
    assert_eq!(x.source, KeySource::Imported);
    assert!(x.anchored, "{x:?}");
    assert_eq!(
        x.sha256,
        hex::encode(
            good.cert
                .digest(openssl::hash::MessageDigest::sha256())
                .unwrap()
        )
    );

    let stranger = TestCa::new("Someone else's CA").unwrap();
    let foreign = stranger.issue(Usage::Smime("finn@smime.test")).unwrap();
    w.bob.import_key(&foreign.cert_pem, None).await.unwrap();
    let x = &w.bob.outside_keys("finn@smime.test").await.unwrap().x509[0];
    assert!(!x.anchored);
    assert!(
        x.not_anchored_because
            .as_deref()
            .unwrap()
            .contains("does not chain to a configured trust anchor"),
        "{x:?}"
    );

    let now = sealpost::now();
    let expired = w
        .smime_ca
        .issue_between(
            Usage::Smime("old@smime.test"),
            now - 2 * 365 * 86_400,
            now - 365 * 86_400,
        )
        .unwrap();
    w.bob.import_key(&expired.cert_pem, None).await.unwrap();
    let x = &w.bob.outside_keys("old@smime.test").await.unwrap().x509[0];
    assert!(!x.anchored);
    assert!(
        x.not_anchored_because
            .as_deref()
            .unwrap()
            .contains("expired"),
        "{x:?}"
    );
}

/// `sealpost admin key import FILE`, `list` and `remove`: the same imports for every user as
/// the console's, through the service layer.
#[tokio::test]
async fn the_admin_cli_imports_for_every_user() {
    let w = world().await;
    let uma = outside_key(&["Uma <uma@cli.test>"]);
    let file = w.node.dir.path().join("uma.pgp");
    // Binary, as `gpg --export` writes it.
    std::fs::write(&file, binary(&uma)).unwrap();
    w.node
        .admin(&[
            "key",
            "import",
            file.to_str().unwrap(),
            "--address",
            "uma@cli.test",
        ])
        .await
        .unwrap();
    let found = w.bob.outside_keys("uma@cli.test").await.unwrap();
    assert_eq!(found.openpgp.len(), 1);
    assert_eq!(found.openpgp[0].source, KeySource::ImportedByAdmin);
    // The administrator's list is not bob's own.
    assert!(w.bob.imported_keys().await.unwrap().is_empty());
    w.node.admin(&["key", "list"]).await.unwrap();
    w.node
        .admin(&["key", "remove", &uma.fingerprint().to_hex()])
        .await
        .unwrap();
    assert!(
        w.bob
            .outside_keys("uma@cli.test")
            .await
            .unwrap()
            .openpgp
            .is_empty()
    );
    // A secret key is refused there too.
    let tsk = w.node.dir.path().join("tsk.pgp");
    let mut v = Vec::new();
    uma.as_tsk().serialize(&mut v).unwrap();
    std::fs::write(&tsk, v).unwrap();
    let e = w
        .node
        .admin(&["key", "import", tsk.to_str().unwrap()])
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("secret key"), "{e:#}");
    assert_eq!(w.node.count("SELECT COUNT(*) FROM outside_keys"), 0);
}

/// A keyserver whose name resolves to a loopback address (as a hostile domain's DNS could
/// point `openpgpkey.DOMAIN` into the organisation's network) is not contacted: names resolve
/// to public addresses only, unless `[delivery] resolve` names the address.
#[tokio::test]
async fn names_resolving_to_private_addresses_are_not_contacted() {
    let w = world_with(|d, addr| {
        d.keyservers = vec![format!("hkps://{LOCAL}:{}", addr.port())];
    })
    .await;
    let lee = outside_key(&["<lee@ks.test>"]);
    w.server.route(
        &format!("{LOCAL}/pks/lookup?op=get&options=mr&search=lee%40ks.test"),
        Answer::Body(armored(&lee).into_bytes()),
    );
    let found = w.alice.outside_keys("lee@ks.test").await.unwrap();
    assert!(found.openpgp.is_empty(), "{found:?}");
    let last = found.notes.last().unwrap();
    assert!(
        last.starts_with("the keyserver localhost") && last.contains("has no public address"),
        "{:?}",
        found.notes
    );
    assert!(
        !w.server.seen().iter().any(|r| r.starts_with(LOCAL)),
        "{:?}",
        w.server.seen()
    );
}
