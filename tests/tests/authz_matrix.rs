//! The authorisation and error-shape matrix, generated from the OpenAPI document (issue 15,
//! hardening): every documented route is called as anonymous, as a user who is not the owner of
//! what the route names, and as a non-admin, against a real node; each answer has the expected
//! status, every error answer is the documented `{code, message}` JSON, and nothing refused
//! changes what the owners hold. A route documented but missing from [`TABLE`] (or the other
//! way round) fails the test, so a new route needs a decision here.

use sealpost_client::Outgoing;
use sealpost_proto::SessionsResponse;
use sealpost_tests::alice_and_bob;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    /// Anyone, without a session.
    Public,
    /// Any logged-in user.
    User,
    /// A logged-in admin.
    Admin,
    /// A pickup session (docs/pickup.md): no user session reaches these routes either.
    PickupSession,
    /// A compliance officer (docs/compliance.md, "Dual control"): any other user gets 403.
    Officer,
}

/// `(method, documented path, who may call it, status for a user who does not own what the
/// path names (None: the route names nothing of anyone's))`.
const TABLE: &[(&str, &str, Who, Option<u16>)] = &[
    ("GET", "/org", Who::Public, None),
    ("GET", "/openapi.json", Who::Public, None),
    ("POST", "/enroll", Who::Public, None),
    ("POST", "/login/params", Who::Public, None),
    ("POST", "/login", Who::Public, None),
    ("POST", "/logout", Who::User, None),
    ("GET", "/me", Who::User, None),
    ("POST", "/me/totp", Who::User, None),
    ("POST", "/me/totp/confirm", Who::User, None),
    ("POST", "/me/totp/disable", Who::User, None),
    ("POST", "/me/password", Who::User, None),
    ("GET", "/me/sessions", Who::User, None),
    ("DELETE", "/me/sessions/{id}", Who::User, Some(404)),
    ("GET", "/users/{address}/cert", Who::User, None),
    ("POST", "/envelopes", Who::User, None),
    ("PUT", "/blobs", Who::User, None),
    ("POST", "/messages", Who::User, None),
    ("GET", "/mailbox/{folder}", Who::User, None),
    ("GET", "/messages/{id}", Who::User, Some(404)),
    ("DELETE", "/messages/{id}", Who::User, Some(404)),
    ("GET", "/messages/{id}/parts/{index}", Who::User, Some(404)),
    ("POST", "/messages/{id}/read", Who::User, Some(404)),
    ("GET", "/messages/{id}/evidence", Who::User, Some(404)),
    ("POST", "/messages/{id}/receipt", Who::User, Some(404)),
    // The compliance session-key packet a user's client adds (docs/compliance.md).
    (
        "POST",
        "/messages/{id}/compliance-key-packet",
        Who::User,
        Some(404),
    ),
    ("POST", "/messages/{id}/move", Who::User, Some(404)),
    ("POST", "/notices/{id}/read", Who::User, Some(404)),
    ("GET", "/trust/{address}", Who::User, None),
    ("POST", "/certifications", Who::User, None),
    ("GET", "/admin/users", Who::Admin, None),
    ("POST", "/admin/users/{address}/state", Who::Admin, None),
    ("POST", "/admin/invites", Who::Admin, None),
    ("GET", "/admin/status", Who::Admin, None),
    ("GET", "/admin/peers", Who::Admin, None),
    ("GET", "/admin/peers/{domain}/org", Who::Admin, None),
    // Guests (docs/pickup.md, "Guests"); what a guest's own session reaches: tests/guest.rs.
    // Outside keys (docs/mail.md, "Outside keys"): a user's own imports, an admin's for all.
    ("GET", "/outside-keys", Who::User, None),
    ("POST", "/outside-keys", Who::User, None),
    (
        "DELETE",
        "/outside-keys/{fingerprint}",
        Who::User,
        Some(404),
    ),
    ("GET", "/outside-keys/lookup/{address}", Who::User, None),
    ("GET", "/admin/outside-keys", Who::Admin, None),
    ("POST", "/admin/outside-keys", Who::Admin, None),
    (
        "DELETE",
        "/admin/outside-keys/{fingerprint}",
        Who::Admin,
        None,
    ),
    // The compliance key (docs/compliance.md): installed by an admin.
    ("PUT", "/admin/compliance/key", Who::Admin, None),
    // App passwords for the submission gateway (docs/mail.md): a user's own only.
    ("GET", "/app-passwords", Who::User, None),
    ("POST", "/app-passwords", Who::User, None),
    ("DELETE", "/app-passwords/{id}", Who::User, Some(404)),
    // S/MIME certificates from the organisation's CA (docs/mail.md): for the caller's own key.
    ("POST", "/smime/certificate", Who::User, None),
    ("GET", "/smime/certificate", Who::User, None),
    ("GET", "/admin/guests", Who::Admin, None),
    ("POST", "/admin/guests/{address}/state", Who::Admin, None),
    ("DELETE", "/admin/guests/{address}", Who::Admin, None),
    ("POST", "/pickup/upgrade", Who::PickupSession, None),
    ("POST", "/pickup/open", Who::Public, None),
    ("POST", "/pickup/unlock", Who::Public, None),
    ("GET", "/pickup/parts/{index}", Who::PickupSession, None),
    ("POST", "/pickup/envelope", Who::PickupSession, None),
    ("PUT", "/pickup/uploads/{sha256}", Who::PickupSession, None),
    ("POST", "/pickup/submit", Who::PickupSession, None),
    ("GET", "/pickup/thread", Who::PickupSession, None),
    ("POST", "/pickup/receipt", Who::PickupSession, None),
    (
        "GET",
        "/pickup/messages/{id}/parts/{index}",
        Who::PickupSession,
        None,
    ),
    (
        "POST",
        "/messages/{id}/pickups/withdraw",
        Who::User,
        Some(404),
    ),
    (
        "POST",
        "/messages/{id}/pickups/relock",
        Who::User,
        Some(404),
    ),
    // Compliance custody (docs/compliance.md, "Dual control"): admins set up, officers act.
    ("GET", "/admin/compliance/officers", Who::Admin, None),
    (
        "PUT",
        "/admin/compliance/officers/{address}",
        Who::Admin,
        None,
    ),
    (
        "DELETE",
        "/admin/compliance/officers/{address}",
        Who::Admin,
        None,
    ),
    ("POST", "/admin/compliance/custody", Who::Admin, None),
    ("GET", "/compliance/custody", Who::Officer, None),
    ("GET", "/compliance/cases", Who::Officer, None),
    ("POST", "/compliance/cases", Who::Officer, None),
    ("POST", "/compliance/cases/{id}/approve", Who::Officer, None),
    ("POST", "/compliance/cases/{id}/refuse", Who::Officer, None),
    // Legal holds (docs/compliance.md, "Retention and legal holds").
    ("POST", "/compliance/cases/{id}/hold", Who::Officer, None),
    ("DELETE", "/compliance/cases/{id}/hold", Who::Officer, None),
    ("GET", "/compliance/cases/{id}/release", Who::Officer, None),
    (
        "GET",
        "/compliance/cases/{id}/messages/{mid}",
        Who::Officer,
        None,
    ),
    ("GET", "/compliance/archive", Who::Officer, None),
    ("GET", "/compliance/archive/pending", Who::Officer, None),
    ("GET", "/compliance/cases/{id}/report", Who::Officer, None),
    (
        "GET",
        "/messages/{id}/compliance-opens",
        Who::User,
        Some(404),
    ),
];

/// The `(method, path)` pairs the OpenAPI document lists.
fn documented() -> Vec<(String, String)> {
    let doc: serde_json::Value = serde_json::from_str(sealpost::api::openapi::json()).unwrap();
    let mut out = Vec::new();
    for (path, entry) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete", "patch"] {
            if entry.get(method).is_some() {
                out.push((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out.sort();
    out
}

/// Checks that an error answer is the documented JSON and returns its code.
async fn error_shape(what: &str, r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = r.text().await.unwrap();
    assert!(
        ctype.starts_with("application/json"),
        "{what}: {status} with content-type {ctype:?}: {body}"
    );
    let v: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{what}: {status} is not JSON ({e}): {body}"));
    let (Some(code), Some(_)) = (v["code"].as_str(), v["message"].as_str()) else {
        panic!("{what}: {status} is not {{code, message}}: {body}");
    };
    (status, code.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_is_authorised_and_answers_errors_as_json() {
    // Every documented route has a row, and every row is documented.
    let mut rows: Vec<(String, String)> = TABLE
        .iter()
        .map(|(m, p, _, _)| (m.to_string(), p.to_string()))
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        documented(),
        "the matrix and the OpenAPI document list different routes: add the new route to TABLE"
    );

    let (node, alice, bob) = alice_and_bob().await;
    let carol = node.person("carol").await;
    let work = tempfile::tempdir().unwrap();
    let sent = alice
        .send(
            &Outgoing {
                to: vec!["bob@a.test".into()],
                subject: "s".into(),
                body: "b".into(),
                attachments: vec![],
                pickup_kdf: None,
            },
            work.path(),
        )
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let api = |p: &str| format!("{}/api/v1{p}", node.url);
    let alices_session = http
        .get(api("/me/sessions"))
        .bearer_auth(alice.token())
        .send()
        .await
        .unwrap()
        .json::<SessionsResponse>()
        .await
        .unwrap()
        .sessions[0]
        .id
        .clone();
    let db_before = node.count("SELECT count(*) FROM mailbox")
        + node.count("SELECT count(*) FROM sessions")
        + node.count("SELECT count(*) FROM accounts");

    let concrete = |path: &str| {
        let id = if path.starts_with("/me/sessions/") {
            alices_session.clone()
        } else if path.starts_with("/notices/") || path.starts_with("/app-passwords/") {
            "1".to_owned()
        } else {
            sent.message_id.clone()
        };
        path.replace("{id}", &id)
            .replace("{mid}", &sent.message_id)
            .replace("{index}", "0")
            .replace("{address}", "bob@a.test")
            .replace("{folder}", "inbox")
            .replace("{domain}", "b.test")
            .replace("{sha256}", &"ab".repeat(32))
            .replace("{fingerprint}", &"AB".repeat(20))
    };
    let call = |method: &str, path: &str, token: Option<&str>| {
        // A well-formed body where the route needs one, so that what is checked is the right
        // to call it, not the body.
        let body = if path.ends_with("/move") {
            r#"{"from":"inbox","to":"archive"}"#
        } else if path.ends_with("/receipt") {
            r#"{"statement":"{}","signature":""}"#
        } else if path.ends_with("/pickups/withdraw") {
            r#"{"address":"dave@outside.test"}"#
        } else if path.ends_with("/pickups/relock") {
            r#"{"address":"dave@outside.test","locked_key":"","salt":"","verifier":"",
                "kdf":{"m_cost_kib":8192,"t_cost":1,"p_cost":1}}"#
        } else {
            "{}"
        };
        let mut req = http
            .request(method.parse().unwrap(), api(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };

    let mut checked = 0;
    for &(method, template, who, not_owner) in TABLE {
        let path = concrete(template);
        if who != Who::Public {
            // Anonymous: 401 before anything else, whatever the body.
            let r = call(method, &path, None).await.unwrap();
            let what = format!("anonymous {method} {path}");
            assert_eq!(error_shape(&what, r).await.0, 401, "{what}");
            // A made-up token is no session either.
            let r = call(method, &path, Some("not-a-session")).await.unwrap();
            let what = format!("bad token {method} {path}");
            assert_eq!(error_shape(&what, r).await.0, 401, "{what}");
            checked += 2;
        }
        if who == Who::PickupSession {
            // A user's session is no pickup session.
            let r = call(method, &path, Some(carol.token())).await.unwrap();
            let what = format!("user session {method} {path}");
            assert_eq!(error_shape(&what, r).await.0, 401, "{what}");
            checked += 1;
        }
        if who == Who::Admin {
            let r = call(method, &path, Some(carol.token())).await.unwrap();
            let what = format!("non-admin {method} {path}");
            assert_eq!(error_shape(&what, r).await.0, 403, "{what}");
            checked += 1;
        }
        if who == Who::Officer {
            let r = call(method, &path, Some(carol.token())).await.unwrap();
            let what = format!("non-officer {method} {path}");
            assert_eq!(
                error_shape(&what, r).await,
                (403, "not_officer".into()),
                "{what}"
            );
            checked += 1;
        }
        if let Some(expected) = not_owner {
            // Carol names alice's and bob's things: as if they did not exist.
            if method == "POST" && template == "/logout" {
                continue;
            }
            let r = call(method, &path, Some(carol.token())).await.unwrap();
            let what = format!("not the owner {method} {path}");
            assert_eq!(error_shape(&what, r).await.0, expected, "{what}");
            checked += 1;
        }
        if matches!(who, Who::Public | Who::User)
            && not_owner.is_none()
            && method != "POST"
            && method != "PUT"
        {
            // Readable by who may call it: a success, or an error in the documented shape.
            let token = (who == Who::User).then(|| carol.token());
            let r = call(method, &path, token).await.unwrap();
            if !r.status().is_success() {
                error_shape(&format!("{method} {path}"), r).await;
            }
        }
    }
    assert!(checked >= 60, "only {checked} checks ran");

    // Nothing refused changed anything: alice's session works, bob still has the message.
    assert_eq!(
        node.count("SELECT count(*) FROM mailbox")
            + node.count("SELECT count(*) FROM sessions")
            + node.count("SELECT count(*) FROM accounts"),
        db_before
    );
    let r = http
        .get(api(&format!("/messages/{}", sent.message_id)))
        .bearer_auth(bob.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = http
        .get(api("/me"))
        .bearer_auth(alice.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// The routes outside the API (not in the OpenAPI document) that anyone may call: the health
/// answers (docs/operations.md, "Health"). `(path, the answer's body)`.
const OUTSIDE_API: &[(&str, &str)] = &[
    ("/healthz", "ok"),
    ("/livez", "alive"),
    ("/readyz", "ready"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_routes_are_public_and_answer_everyone_alike() {
    let node = sealpost_tests::TestNode::spawn("a.test").await.unwrap();
    let carol = node.person("carol").await;
    let http = reqwest::Client::new();
    for &(path, body) in OUTSIDE_API {
        // Anonymous, a made-up token, a user's session: one answer, a word and no more.
        for token in [None, Some("not-a-session"), Some(carol.token())] {
            let mut req = http.get(format!("{}{path}", node.url));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200, "{path} as {token:?}");
            assert_eq!(r.text().await.unwrap(), body, "{path} as {token:?}");
        }
        // Nothing but GET (and HEAD) is served there.
        let r = http
            .post(format!("{}{path}", node.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 405, "POST {path}");
    }
}
