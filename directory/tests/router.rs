//! Every endpoint, happy path and error path, against a real server on loopback.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::*;
use reqwest::StatusCode;
use sealpost_directory::wkd_hash;
use sequoia_openpgp::Cert;
use sequoia_openpgp::parse::Parse;

struct World {
    base: String,
    http: reqwest::Client,
    store: Arc<MemStore>,
    alice: Cert,
    bob: Cert,
    ca: Cert,
}

/// Alice (certified by the CA), Bob, and the CA, published; Alice has a session "alice-token".
async fn world() -> World {
    let store = MemStore::new();
    let ca = ca_key(DOMAIN);
    let alice = user_key("Alice <alice@example.org>");
    let bob = user_key("Bob <bob@example.org>");
    store.publish(&ca, true);
    store.publish(&certify(&alice, &ca), true);
    store.publish(&bob, true);
    store.session("alice-token", &alice);
    store.session("bob-token", &bob);
    let addr = serve(store.clone(), config()).await;
    World {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        store,
        alice,
        bob,
        ca,
    }
}

impl World {
    async fn get(&self, path: &str) -> (StatusCode, String, Vec<u8>) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let ctype = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, ctype, r.bytes().await.unwrap().to_vec())
    }

    async fn add(&self, token: Option<&str>, body: String) -> (StatusCode, String) {
        let mut req = self
            .http
            .post(format!("{}/pks/add", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        (r.status(), r.text().await.unwrap())
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses the served bytes (armored or binary) into certificates.
fn certs(b: &[u8]) -> Vec<Cert> {
    sequoia_openpgp::cert::CertParser::from_bytes(b)
        .unwrap()
        .map(|c| c.unwrap())
        .collect()
}

#[tokio::test]
async fn vks_by_fingerprint() {
    let w = world().await;
    let fpr = w.alice.fingerprint().to_hex();
    for path in [
        format!("/vks/v1/by-fingerprint/{fpr}"),
        format!("/vks/v1/by-fingerprint/{}", fpr.to_lowercase()),
    ] {
        let (status, ctype, body) = w.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(ctype, "application/pgp-keys");
        assert!(body.starts_with(b"-----BEGIN PGP PUBLIC KEY BLOCK-----"));
        let got = certs(&body);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].fingerprint(), w.alice.fingerprint());
        assert!(!got[0].is_tsk());
        // Served with the CA's certification: the directory serves, the client judges.
        assert_eq!(certifications_by(&got[0], &w.ca), 1);
    }
    // A subkey's fingerprint finds its certificate too (as on keys.openpgp.org).
    let sub = w.alice.keys().subkeys().next().unwrap().key().fingerprint();
    let (status, _, body) = w
        .get(&format!("/vks/v1/by-fingerprint/{}", sub.to_hex()))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(certs(&body)[0].fingerprint(), w.alice.fingerprint());

    let unknown = user_key("x@example.org").fingerprint();
    let (status, ctype, body) = w
        .get(&format!("/vks/v1/by-fingerprint/{}", unknown.to_hex()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(ctype.starts_with("text/plain"));
    assert!(
        text(&body).contains("No key found for fingerprint"),
        "{}",
        text(&body)
    );

    for bad in [format!("0x{fpr}"), fpr[..39].to_owned(), "nonsense".into()] {
        let (status, _, body) = w.get(&format!("/vks/v1/by-fingerprint/{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(text(&body).contains("malformed fingerprint"));
    }
}

#[tokio::test]
async fn vks_by_keyid() {
    let w = world().await;
    let id = w.bob.keyid().to_hex();
    let sub = w
        .bob
        .keys()
        .subkeys()
        .next()
        .unwrap()
        .key()
        .keyid()
        .to_hex();
    for path in [
        format!("/vks/v1/by-keyid/{id}"),
        format!("/vks/v1/by-keyid/{}", id.to_lowercase()),
        format!("/vks/v1/by-keyid/{sub}"),
    ] {
        let (status, ctype, body) = w.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(ctype, "application/pgp-keys");
        assert_eq!(certs(&body)[0].fingerprint(), w.bob.fingerprint());
    }
    let (status, _, body) = w.get("/vks/v1/by-keyid/0123456789ABCDEF").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(text(&body).contains("No key found for key ID"));
    let (status, _, _) = w.get("/vks/v1/by-keyid/F254904A").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn vks_by_email() {
    let w = world().await;
    for path in [
        "/vks/v1/by-email/alice%40example.org",
        "/vks/v1/by-email/alice@example.org",
        "/vks/v1/by-email/Alice%40Example.ORG",
    ] {
        let (status, ctype, body) = w.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(ctype, "application/pgp-keys");
        let got = certs(&body);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].fingerprint(), w.alice.fingerprint());
    }
    let (status, _, body) = w.get("/vks/v1/by-email/carol%40example.org").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(text(&body).contains("No key found for address carol@example.org"));
    let (status, _, body) = w.get("/vks/v1/by-email/not-an-address").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text(&body).contains("malformed e-mail address"));
}

#[tokio::test]
async fn hkp_lookup() {
    let w = world().await;
    let fpr = w.alice.fingerprint().to_hex();

    // op=get, as dirmngr asks for --recv-keys.
    let (status, ctype, body) = w
        .get(&format!("/pks/lookup?op=get&options=mr&search=0x{fpr}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ctype, "application/pgp-keys");
    assert_eq!(certs(&body)[0].fingerprint(), w.alice.fingerprint());

    // By key ID and by address.
    let (status, _, body) = w
        .get(&format!(
            "/pks/lookup?op=get&search=0x{}",
            w.bob.keyid().to_hex()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(certs(&body)[0].fingerprint(), w.bob.fingerprint());
    let (status, _, body) = w
        .get("/pks/lookup?op=get&search=%3Cbob%40example.org%3E")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(certs(&body)[0].fingerprint(), w.bob.fingerprint());

    // Machine-readable index.
    let (status, ctype, body) = w
        .get("/pks/lookup?op=index&options=mr&search=alice%40example.org")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("text/plain"));
    let listing = text(&body);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines[0], "info:1:1");
    assert!(
        lines[1].starts_with(&format!("pub:{fpr}:22:256:")),
        "{listing}"
    );
    assert!(
        lines[2].starts_with("uid:Alice <alice@example.org>:"),
        "{listing}"
    );

    // A text search finds both users; exact=on only whole user IDs.
    let (status, _, body) = w
        .get("/pks/lookup?op=index&options=mr&search=example.org")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(text(&body).starts_with("info:1:3\n"), "{}", text(&body));
    let (status, _, body) = w
        .get("/pks/lookup?op=index&options=mr&exact=on&search=Bob+%3Cbob%40example.org%3E")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(text(&body).starts_with("info:1:1\n"));
    let (status, _, _) = w
        .get("/pks/lookup?op=index&options=mr&exact=on&search=Bob")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Human-readable index and vindex.
    let (status, _, body) = w.get("/pks/lookup?op=index&search=alice").await;
    assert_eq!(status, StatusCode::OK);
    assert!(text(&body).contains(&format!("pub  {fpr}")));
    let (status, _, body) = w.get("/pks/lookup?op=vindex&search=alice").await;
    assert_eq!(status, StatusCode::OK);
    assert!(text(&body).contains(&format!("sig  {}", w.ca.fingerprint().to_hex())));

    // Errors, plain text with the HKP statuses.
    for (query, want, says) in [
        (
            "op=get&search=0x0123456789ABCDEF",
            StatusCode::NOT_FOUND,
            "No keys found",
        ),
        (
            "op=index&search=nobody",
            StatusCode::NOT_FOUND,
            "No keys found",
        ),
        ("op=get", StatusCode::BAD_REQUEST, "missing 'search'"),
        ("search=alice", StatusCode::BAD_REQUEST, "missing 'op'"),
        (
            "op=get&search=0x99242560",
            StatusCode::BAD_REQUEST,
            "short (32-bit) key IDs",
        ),
        (
            "op=get&search=0xnothex",
            StatusCode::BAD_REQUEST,
            "malformed key ID",
        ),
        (
            "op=stats&search=alice",
            StatusCode::NOT_IMPLEMENTED,
            "not implemented",
        ),
        ("", StatusCode::BAD_REQUEST, "missing 'op'"),
    ] {
        let (status, ctype, body) = w.get(&format!("/pks/lookup?{query}")).await;
        assert_eq!(status, want, "{query}");
        assert!(ctype.starts_with("text/plain"), "{query}");
        assert!(text(&body).contains(says), "{query}: {}", text(&body));
    }
}

#[tokio::test]
async fn hkp_add_requires_the_owners_session() {
    let w = world().await;
    let update = keytext_form(&armored(&w.alice));

    let (status, body) = w.add(None, update.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("updates require an authenticated session of the key's owner"));

    let (status, body) = w.add(Some("bob-token"), update.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("updates require an authenticated session of the key's owner"));

    let (status, _) = w.add(Some("made-up"), update.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, body) = w.add(Some("alice-token"), update.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("0 new signature(s)"), "{body}");

    let (status, body) = w.add(Some(ADMIN_TOKEN), update).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn hkp_add_merges_by_policy() {
    let w = world().await;

    // Bob certifies Alice (Bob is enrolled, so known); a stranger does too (dropped).
    let stranger = user_key("Mallory <mallory@evil.example>");
    let update = certify(&certify(&w.alice, &w.bob), &stranger);
    let (status, body) = w
        .add(Some("alice-token"), keytext_form(&armored(&update)))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("1 new signature(s)"), "{body}");
    assert!(
        body.contains("1 third-party signature(s) dropped (issuer not known to this directory)"),
        "{body}"
    );
    let stored = w.store.get(&w.alice.fingerprint()).unwrap();
    assert_eq!(certifications_by(&stored, &w.bob), 1);
    assert_eq!(certifications_by(&stored, &w.ca), 1);
    assert_eq!(certifications_by(&stored, &stranger), 0);

    // Secret key material is stripped and reported, never stored.
    let (status, body) = w
        .add(Some("alice-token"), keytext_form(&armored_tsk(&w.alice)))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("secret key material was removed"), "{body}");
    assert!(!w.store.get(&w.alice.fingerprint()).unwrap().is_tsk());

    // A key the directory does not have: enrolment publishes keys, not /pks/add.
    let carol = user_key("Carol <carol@example.org>");
    w.store.session("carol-token", &carol);
    let (status, body) = w
        .add(Some("carol-token"), keytext_form(&armored(&carol)))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("published by enrolment"), "{body}");
}

#[tokio::test]
async fn hkp_add_refuses_floods_and_garbage() {
    let store = MemStore::new();
    let alice = user_key("Alice <alice@example.org>");
    store.publish(&alice, true);
    store.session("alice-token", &alice);
    let mut cfg = config();
    cfg.max_signatures_per_update = 3;
    let addr = serve(store.clone(), cfg.clone()).await;
    let w = World {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        store,
        bob: user_key("b@example.org"),
        ca: ca_key(DOMAIN),
        alice,
    };

    // Too many signatures in one update (Alice's own 3 plus two certifications).
    let flood = certify(&certify(&w.alice, &w.bob), &w.ca);
    let (status, body) = w
        .add(Some("alice-token"), keytext_form(&armored(&flood)))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("too many signatures in one update"), "{body}");

    // A body over the limit.
    let huge = "A".repeat(cfg.max_add_body_bytes() + 1);
    let (status, body) = w.add(Some("alice-token"), format!("keytext={huge}")).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body.contains("key update too large"), "{body}");

    // A keytext under the body limit but over the certificate cap.
    let big = "A".repeat(cfg.max_keytext_bytes() + 1);
    let (status, body) = w.add(Some("alice-token"), format!("keytext={big}")).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    // Garbage and missing fields.
    for (form, says) in [
        (
            "keytext=hello".to_owned(),
            "not a valid OpenPGP certificate",
        ),
        ("other=1".to_owned(), "missing 'keytext'"),
        (
            format!(
                "{}&{}",
                keytext_form(&armored(&w.alice)),
                keytext_form(&armored(&w.alice))
            ),
            "more than once",
        ),
    ] {
        let (status, body) = w.add(Some("alice-token"), form.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form}: {body}");
        assert!(body.contains(says), "{body}");
    }
    // Two certificates in one keytext.
    let two = format!("{}{}", armored(&w.alice), armored(&w.bob));
    let (status, body) = w.add(Some("alice-token"), keytext_form(&two)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("more than one certificate"), "{body}");
    assert_eq!(w.store.stored.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn wkd() {
    let w = world().await;
    let hash = wkd_hash("alice");
    for path in [
        format!("/.well-known/openpgpkey/hu/{hash}?l=alice"),
        format!("/.well-known/openpgpkey/hu/{hash}?l=Alice"),
        // Without `l`: the store's default scan by hash.
        format!("/.well-known/openpgpkey/hu/{hash}"),
        format!("/.well-known/openpgpkey/{DOMAIN}/hu/{hash}?l=alice"),
        format!("/.well-known/openpgpkey/EXAMPLE.org/hu/{hash}"),
    ] {
        let (status, ctype, body) = w.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(ctype, "application/octet-stream");
        // Binary, not armored.
        assert_ne!(body.first(), Some(&b'-'), "{path}");
        let got = Cert::from_bytes(&body).unwrap();
        assert_eq!(got.fingerprint(), w.alice.fingerprint());
        assert!(!got.is_tsk());
    }

    let carol = wkd_hash("carol");
    for (path, want, says) in [
        (
            format!("/.well-known/openpgpkey/hu/{carol}?l=carol"),
            StatusCode::NOT_FOUND,
            "No key found",
        ),
        (
            format!("/.well-known/openpgpkey/hu/{carol}"),
            StatusCode::NOT_FOUND,
            "No key found",
        ),
        (
            format!("/.well-known/openpgpkey/hu/{hash}?l=bob"),
            StatusCode::BAD_REQUEST,
            "does not match",
        ),
        (
            format!("/.well-known/openpgpkey/hu/{hash}?l=alice&l=bob"),
            StatusCode::BAD_REQUEST,
            "more than once",
        ),
        (
            "/.well-known/openpgpkey/hu/not-a-hash".into(),
            StatusCode::BAD_REQUEST,
            "malformed WKD hash",
        ),
        (
            format!("/.well-known/openpgpkey/other.example/hu/{hash}?l=alice"),
            StatusCode::NOT_FOUND,
            "no such domain",
        ),
        (
            "/.well-known/openpgpkey/other.example/policy".into(),
            StatusCode::NOT_FOUND,
            "no such domain",
        ),
    ] {
        let (status, _, body) = w.get(&path).await;
        assert_eq!(status, want, "{path}");
        assert!(text(&body).contains(says), "{path}: {}", text(&body));
    }

    for path in [
        "/.well-known/openpgpkey/policy".to_owned(),
        format!("/.well-known/openpgpkey/{DOMAIN}/policy"),
    ] {
        let (status, _, body) = w.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(body.is_empty());
    }
}

#[tokio::test]
async fn org_record() {
    let w = world().await;
    let (status, ctype, body) = w.get("/.well-known/sealpost/org").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ctype, "application/json");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["domain"], DOMAIN);
}

#[tokio::test]
async fn storage_failures_are_500_and_503_without_details() {
    let w = world().await;
    let fpr = w.alice.fingerprint().to_hex();
    w.store.mode.store(FAILING, Ordering::SeqCst);
    for path in [
        format!("/vks/v1/by-fingerprint/{fpr}"),
        "/pks/lookup?op=get&search=alice%40example.org".into(),
        format!("/.well-known/openpgpkey/hu/{}?l=alice", wkd_hash("alice")),
        "/.well-known/sealpost/org".into(),
    ] {
        let (status, _, body) = w.get(&path).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert!(!text(&body).contains("fire"), "storage details leaked");
    }
    let (status, _) = w
        .add(Some("alice-token"), keytext_form(&armored(&w.alice)))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);

    w.store.mode.store(OVERLOADED, Ordering::SeqCst);
    let r = w
        .http
        .get(format!("{}/vks/v1/by-fingerprint/{fpr}", w.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
}

/// The node has its own state type; the directory's router must merge into its router.
#[tokio::test]
async fn merges_into_a_router_with_another_state() {
    use axum::extract::State;
    use axum::routing::get;

    #[derive(Clone)]
    struct NodeState {
        name: &'static str,
    }

    let store = MemStore::new();
    let alice = user_key("Alice <alice@example.org>");
    store.publish(&alice, false);
    let node: axum::Router<NodeState> = axum::Router::new()
        .route(
            "/api/v1/hello",
            get(|State(s): State<NodeState>| async move { s.name }),
        )
        .merge(sealpost_directory::router(store, config()));
    let app: axum::Router = node.with_state(NodeState { name: "node" });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let http = reqwest::Client::new();
    let hello = http
        .get(format!("http://{addr}/api/v1/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(hello.text().await.unwrap(), "node");
    let key = http
        .get(format!(
            "http://{addr}/vks/v1/by-fingerprint/{}",
            alice.fingerprint().to_hex()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(key.status(), StatusCode::OK);
}

/// Regression: a certificate cut off in transit was refused as "more than one certificate"
/// (422). It is a malformed keytext (400). And a wrong method gets plain text like every other
/// directory answer, not axum's empty 405.
#[tokio::test]
async fn hkp_add_truncated_certificate_is_400_and_wrong_methods_are_plain_text() {
    let w = world().await;
    let text = armored(&w.alice);
    let cut = &text[..text.len() * 2 / 3];
    let (status, body) = w.add(Some("alice-token"), keytext_form(cut)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("not a valid OpenPGP certificate"), "{body}");
    assert_eq!(w.store.stored.load(Ordering::SeqCst), 0);

    let r = w
        .http
        .delete(format!("{}/pks/add", w.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(!r.text().await.unwrap().is_empty());
}

/// Regression (security review, issue 15 item 1): Bob put "Alice <alice@example.org>" on his
/// own key with his own session, and the directory served his key for Alice's address.
#[tokio::test]
async fn hkp_add_refuses_a_user_id_for_someone_elses_address() {
    let w = world().await;
    let before = w.store.get(&w.bob.fingerprint()).unwrap();
    for (uid, token) in [
        ("Alice <alice@example.org>", "bob-token"),
        ("Alice <ALICE@Example.ORG>", "bob-token"),
        ("alice@example.org", "bob-token"),
        ("Bob <bob@elsewhere.example>", "bob-token"),
        ("Bob Builder", "bob-token"),
        ("Alice <alice@example.org>", ADMIN_TOKEN),
    ] {
        let forged = with_user_id(&w.bob, uid);
        let (status, body) = w.add(Some(token), keytext_form(&armored(&forged))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{uid}: {body}");
        assert!(body.contains("may be added only for an address"), "{body}");
        assert_eq!(
            w.store.get(&w.bob.fingerprint()).unwrap(),
            before,
            "{uid}: nothing stored"
        );
    }
    let (_, _, served) = w.get("/vks/v1/by-email/alice%40example.org").await;
    let served: Vec<_> = certs(&served).iter().map(|c| c.fingerprint()).collect();
    assert_eq!(served, vec![w.alice.fingerprint()]);

    // A new user ID for the key's own address (a new name) is the owner's to add.
    let renamed = with_user_id(&w.bob, "Robert <bob@example.org>");
    let (status, body) = w
        .add(Some("bob-token"), keytext_form(&armored(&renamed)))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        w.store.get(&w.bob.fingerprint()).unwrap().userids().count(),
        2
    );
}
