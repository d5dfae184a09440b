//! The node's side of the web app against a real node: cookie sessions with CSRF protection,
//! the app's files with their security headers, and the routes of account settings and the
//! admin console (change password, sessions, users, invites, status, federated peers), and the
//! delivery states and notices the mailbox carries, happy and unhappy paths.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, SET_COOKIE};
use sealpost_client::Session;
use sealpost_client::crypto::{self, KdfParams};
use sealpost_proto::*;
use sealpost_tests::{TestNode, alice_and_bob, wait_for};
use sequoia_openpgp::serialize::SerializeInto;
use serde_json::{Value, json};

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

fn api(node: &TestNode, path: &str) -> String {
    format!("{}/api/v1{path}", node.url)
}

async fn verifier(node: &TestNode, address: &str, password: &str) -> String {
    STANDARD.encode(node.login_verifier(address, password).await.unwrap())
}

/// (status, error code or "") of a response.
async fn outcome(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (status, body["code"].as_str().unwrap_or("").to_owned())
}

async fn admin(node: &TestNode, address: &str, password: &str) -> Session {
    node.enrolled(address, password, KdfParams::MIN, true)
        .await
        .unwrap()
}

#[tokio::test]
async fn cookie_sessions_need_the_csrf_token_for_changes_and_keep_the_token_out_of_the_body() {
    let node = TestNode::spawn("a.test").await.unwrap();
    node.user("alice@a.test", "alice password", KdfParams::MIN)
        .await
        .unwrap();
    let v = verifier(&node, "alice@a.test", "alice password").await;
    let r = http()
        .post(api(&node, "/login"))
        .header("x-sealpost-session", "cookie")
        .json(&json!({ "address": "alice@a.test", "login_verifier": v }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let set = r.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set.starts_with("sealpost_session="), "{set}");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
    assert!(!set.contains("Secure"), "plain HTTP on loopback: no Secure");
    // The device cookie too is out of scripts' reach, and goes only to the login routes.
    let device = r
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("sealpost_device="))
        .expect("a device cookie")
        .to_owned();
    assert!(device.contains("HttpOnly") && device.contains("SameSite=Strict"));
    assert!(device.contains("Path=/api/v1/login;"), "{device}");
    let login: LoginResponse = r.json().await.unwrap();
    assert!(
        login.token.is_empty() && login.device_token.is_none(),
        "the tokens travel only in cookies"
    );
    let csrf = login.csrf_token.expect("a CSRF token");
    let cookie = set.split(';').next().unwrap().to_owned();

    let with = |m: reqwest::Method, p: &str| {
        http()
            .request(m, api(&node, p))
            .header("cookie", cookie.clone())
    };
    assert_eq!(
        with(reqwest::Method::GET, "/me")
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "reads need only the cookie"
    );
    // A state-changing request without the token is not authenticated; with a wrong one it is
    // refused.
    let (s, c) = outcome(with(reqwest::Method::POST, "/logout").send().await.unwrap()).await;
    assert_eq!((s.as_u16(), c.as_str()), (401, "unauthenticated"));
    let (s, c) = outcome(
        with(reqwest::Method::POST, "/logout")
            .header("x-csrf-token", "forged")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s.as_u16(), c.as_str()), (403, "csrf_failed"));
    let r = with(reqwest::Method::POST, "/logout")
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(
        r.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        with(reqwest::Method::GET, "/me")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // Bearer logins are unchanged: the token is in the body, no cookie is set.
    let r = http()
        .post(api(&node, "/login"))
        .json(&json!({ "address": "alice@a.test", "login_verifier": verifier(&node, "alice@a.test", "alice password").await }))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get(SET_COOKIE).is_none());
    let login: LoginResponse = r.json().await.unwrap();
    assert!(!login.token.is_empty() && login.csrf_token.is_none());
}

#[tokio::test]
async fn the_app_is_served_with_strict_headers_and_nothing_outside_its_directory() {
    let app = tempfile::tempdir().unwrap();
    std::fs::create_dir(app.path().join("assets")).unwrap();
    std::fs::write(
        app.path().join("index.html"),
        "<!doctype html><title>x</title>",
    )
    .unwrap();
    std::fs::write(app.path().join("assets/app-1.js"), "export {}").unwrap();
    std::fs::write(app.path().join("secret.txt"), "no").unwrap();
    let dir = app.path().to_str().unwrap().to_owned();
    let node = TestNode::spawn_with("a.test", |c| c.web.dir = dir)
        .await
        .unwrap();
    let r = http().get(format!("{}/", node.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h: HeaderMap = r.headers().clone();
    let csp = h["content-security-policy"].to_str().unwrap();
    for want in [
        "default-src 'none'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(want), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let js = http()
        .get(format!("{}/assets/app-1.js", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    for bad in [
        "/assets/..%2Fsecret.txt",
        "/assets/.hidden",
        "/assets/../secret.txt",
        "/secret.txt",
    ] {
        let r = http()
            .get(format!("{}{bad}", node.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{bad}");
    }
    // The API's answers carry the same policy.
    let r = http().get(api(&node, "/org")).send().await.unwrap();
    assert!(r.headers().contains_key("content-security-policy"));
}

#[tokio::test]
async fn change_password_rewraps_the_key_and_ends_other_sessions() {
    let node = TestNode::spawn("a.test").await.unwrap();
    let alice = node
        .user("alice@a.test", "old password!", KdfParams::MIN)
        .await
        .unwrap();
    let other = node
        .client()
        .login("alice@a.test", b"old password!", None, None)
        .await
        .unwrap();
    let salt = [9u8; 16];
    let new_keys = crypto::derive_password_keys(b"new password!", &salt, &KdfParams::MIN).unwrap();
    let wrapped =
        crypto::wrap_secret_key(alice.unlocked_cert(), &new_keys.wrap_passphrase()).unwrap();
    let body = |current: &str, wrapped: &str, params: KdfParams| {
        json!({
            "current_verifier": current,
            "wrapped_key": wrapped,
            "kdf_salt": STANDARD.encode(salt),
            "kdf_params": params,
            "login_verifier": STANDARD.encode(new_keys.login_verifier()),
        })
    };
    let post = |b: Value| {
        http()
            .post(api(&node, "/me/password"))
            .bearer_auth(alice.token())
            .json(&b)
            .send()
    };
    let good_current = verifier(&node, "alice@a.test", "old password!").await;
    let wrong_current = STANDARD.encode([0u8; 32]);
    let (s, c) = outcome(
        post(body(&wrong_current, &wrapped, KdfParams::MIN))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s.as_u16(), c.as_str()), (403, "wrong_password"));
    // A key that is not wrapped, or another key, is refused.
    let plain =
        String::from_utf8(alice.unlocked_cert().as_tsk().armored().to_vec().unwrap()).unwrap();
    let (s, c) = outcome(
        post(body(&good_current, &plain, KdfParams::MIN))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s.as_u16(), c.as_str()), (422, "key_not_wrapped"));
    let (stranger, _) =
        crypto::generate_user_key("x@a.test", None, std::time::SystemTime::now()).unwrap();
    let stranger = crypto::wrap_secret_key(&stranger, &new_keys.wrap_passphrase()).unwrap();
    let (s, c) = outcome(
        post(body(&good_current, &stranger, KdfParams::MIN))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s.as_u16(), c.as_str()), (422, "key_not_wrapped"));
    let weak = KdfParams {
        m_cost_kib: 1024,
        ..KdfParams::MIN
    };
    let (s, c) = outcome(post(body(&good_current, &wrapped, weak)).await.unwrap()).await;
    assert_eq!((s.as_u16(), c.as_str()), (422, "invalid_kdf_params"));
    // Unauthenticated: refused.
    let r = http()
        .post(api(&node, "/me/password"))
        .json(&body(&good_current, &wrapped, KdfParams::MIN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let r = post(body(&good_current, &wrapped, KdfParams::MIN))
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // The old password no longer logs in; the new one does and unlocks the same key.
    let err = node
        .client()
        .login("alice@a.test", b"old password!", None, None)
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Some("invalid_credentials"));
    let again = node
        .client()
        .login("alice@a.test", b"new password!", None, None)
        .await
        .unwrap();
    assert_eq!(again.fingerprint(), alice.fingerprint());
    // The session that changed it lives on; the other one ended.
    let me = |t: &str| {
        http()
            .get(api(&node, "/me"))
            .bearer_auth(t.to_owned())
            .send()
    };
    assert_eq!(me(alice.token()).await.unwrap().status(), 200);
    assert_eq!(me(other.token()).await.unwrap().status(), 401);
}

#[tokio::test]
async fn sessions_are_listed_and_ended_one_by_one_only_by_their_owner() {
    let node = TestNode::spawn("a.test").await.unwrap();
    let a1 = node.person("alice").await;
    let a2 = node
        .client()
        .login("alice@a.test", b"alice password", None, None)
        .await
        .unwrap();
    let bob = node.person("bob").await;
    let list = |t: &str| {
        let t = t.to_owned();
        let url = api(&node, "/me/sessions");
        async move {
            http()
                .get(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .json::<SessionsResponse>()
                .await
                .unwrap()
                .sessions
        }
    };
    let sessions = list(a1.token()).await;
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s.current).count(), 1);
    let other = sessions.iter().find(|s| !s.current).unwrap().id.clone();
    assert!(!other.contains(a2.token()));
    // Bob cannot end alice's session.
    let (s, c) = outcome(
        http()
            .delete(api(&node, &format!("/me/sessions/{other}")))
            .bearer_auth(bob.token())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s.as_u16(), c.as_str()), (404, "unknown_session"));
    let r = http()
        .delete(api(&node, &format!("/me/sessions/{other}")))
        .bearer_auth(a1.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(list(a1.token()).await.len(), 1);
    let r = http()
        .get(api(&node, "/me"))
        .bearer_auth(a2.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the ended session no longer works");
    let r = http().get(api(&node, "/me/sessions")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn admins_list_users_issue_invites_disable_accounts_and_see_the_status() {
    let node = TestNode::spawn("a.test").await.unwrap();
    let root = admin(&node, "root@a.test", "root password").await;
    let bob = node.person("bob").await;
    let req = |m: reqwest::Method, p: &str, t: &str| {
        http().request(m, api(&node, p)).bearer_auth(t.to_owned())
    };
    use reqwest::Method as M;
    // Not an admin: every admin route refuses.
    for (m, p) in [
        (M::GET, "/admin/users"),
        (M::GET, "/admin/status"),
        (M::GET, "/admin/peers"),
        (M::GET, "/admin/peers/b.test/org"),
        (M::POST, "/admin/invites"),
        (M::POST, "/admin/users/root@a.test/state"),
    ] {
        let body = if p.ends_with("state") {
            json!({ "state": "disabled" })
        } else {
            json!({ "address": "x@a.test" })
        };
        let (s, c) = outcome(req(m, p, bob.token()).json(&body).send().await.unwrap()).await;
        assert_eq!((s.as_u16(), c.as_str()), (403, "not_admin"), "{p}");
    }

    let invite = |address: &str| {
        req(M::POST, "/admin/invites", root.token())
            .json(&json!({ "address": address, "name": "Carol" }))
            .send()
    };
    let r = invite("carol@a.test").await.unwrap();
    assert_eq!(r.status(), 201);
    let first: InviteResponse = r.json().await.unwrap();
    let r = invite("Carol@A.test").await.unwrap();
    assert_eq!(r.status(), 200, "a new code for an account still invited");
    let second: InviteResponse = r.json().await.unwrap();
    assert_ne!(first.invite, second.invite);
    // The old code stopped working; the new one enrols.
    assert!(
        node.client()
            .enroll(
                &first.invite,
                "carol@a.test",
                None,
                b"carol password",
                KdfParams::MIN
            )
            .await
            .is_err()
    );
    node.client()
        .enroll(
            &second.invite,
            "carol@a.test",
            None,
            b"carol password",
            KdfParams::MIN,
        )
        .await
        .unwrap();
    let (s, c) = outcome(invite("carol@a.test").await.unwrap()).await;
    assert_eq!((s.as_u16(), c.as_str()), (409, "already_enrolled"));
    let (s, c) = outcome(invite("eve@b.test").await.unwrap()).await;
    assert_eq!((s.as_u16(), c.as_str()), (422, "wrong_domain"));
    let (s, c) = outcome(invite("not an address").await.unwrap()).await;
    assert_eq!((s.as_u16(), c.as_str()), (400, "invalid_address"));
    invite("dave@a.test").await.unwrap();

    let users: AdminUsersResponse = req(M::GET, "/admin/users", root.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let state = |a: &str| {
        users
            .users
            .iter()
            .find(|u| u.address == a)
            .map(|u| (u.state.clone(), u.invite_expires_at.is_some()))
    };
    assert_eq!(state("carol@a.test"), Some(("active".into(), false)));
    assert_eq!(state("dave@a.test"), Some(("invited".into(), true)));
    assert!(
        users
            .users
            .iter()
            .any(|u| u.address == "root@a.test" && u.is_admin)
    );

    // Disabling ends the user's sessions and logins; an admin cannot disable themself.
    let set = |a: &str, s: &str| {
        req(M::POST, &format!("/admin/users/{a}/state"), root.token())
            .json(&json!({ "state": s }))
            .send()
    };
    assert_eq!(set("bob@a.test", "disabled").await.unwrap().status(), 204);
    let r = http()
        .get(api(&node, "/me"))
        .bearer_auth(bob.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let err = node
        .client()
        .login("bob@a.test", b"bob password!!", None, None)
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Some("account_disabled"));
    assert_eq!(set("bob@a.test", "active").await.unwrap().status(), 204);
    let (s, c) = outcome(set("root@a.test", "disabled").await.unwrap()).await;
    assert_eq!((s.as_u16(), c.as_str()), (409, "own_account"));
    let (s, c) = outcome(set("dave@a.test", "disabled").await.unwrap()).await;
    assert_eq!((s.as_u16(), c.as_str()), (409, "not_enrolled"));
    let (s, c) = outcome(set("nobody@a.test", "disabled").await.unwrap()).await;
    assert_eq!((s.as_u16(), c.as_str()), (404, "unknown_user"));
    let (s, c) = outcome(set("bob@a.test", "deleted").await.unwrap()).await;
    assert_eq!((s.as_u16(), c.as_str()), (400, "invalid_request"));

    let status: NodeStatus = req(M::GET, "/admin/status", root.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status.domain, "a.test");
    assert_eq!(status.accounts.active, 3);
    assert_eq!(status.accounts.invited, 1);
    assert_eq!(status.accounts.admins, 1);
    assert!(status.log_entries > 0);
    assert!(status.peers.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admins_see_peers_with_their_state_and_backlog_and_senders_see_delivery_states() {
    use sealpost_client::Outgoing;
    use sealpost_proto::Folder;
    use std::time::Duration;

    let alpha = TestNode::spawn("alpha.test").await.unwrap();
    let mut beta = TestNode::spawn("beta.test").await.unwrap();
    alpha.peer_with(&beta).await.unwrap();
    beta.peer_with(&alpha).await.unwrap();
    let root = admin(&alpha, "root@alpha.test", "root password").await;
    let carol = alpha.person("carol").await;
    beta.user("bob@beta.test", "bob password!!", KdfParams::MIN)
        .await
        .unwrap();
    let peers = async |token: &str| -> AdminPeersResponse {
        let r = http()
            .get(api(&alpha, "/admin/peers"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    };

    // Unauthenticated: refused; not an admin: forbidden.
    let (s, c) = outcome(
        http()
            .get(api(&alpha, "/admin/peers"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s.as_u16(), 401, "{c}");
    let r = http()
        .get(api(&alpha, "/admin/peers"))
        .bearer_auth(carol.token())
        .send()
        .await
        .unwrap();
    let (s, c) = outcome(r).await;
    assert_eq!((s.as_u16(), c.as_str()), (403, "not_admin"));

    // The admin sees beta as peered: its identity as `peer add` recorded it, nothing queued.
    let list = peers(root.token()).await;
    assert_eq!(list.peers.len(), 1);
    let p = &list.peers[0];
    assert_eq!(p.domain, "beta.test");
    let beta_org: OrgInfo = http()
        .get(api(&beta, "/org"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(p.ca_fingerprint, beta_org.ca_fingerprint);
    assert!(!p.peer_id.is_empty() && !p.addrs.is_empty());

    // Beta's organisation record, asked of beta's node over QUIC, matches what was pinned.
    let get_as = async |path: &str, token: &str| {
        http()
            .get(api(&alpha, path))
            .bearer_auth(token.to_owned())
            .send()
            .await
            .unwrap()
    };
    let live: PeerOrgResponse = get_as("/admin/peers/beta.test/org", root.token())
        .await
        .json()
        .await
        .unwrap();
    assert!(live.matches_pinned, "{:?}", live.mismatches);
    assert_eq!(live.record.domain, "beta.test");
    assert_eq!(live.record.ca_fingerprint, beta_org.ca_fingerprint);
    assert_eq!(live.record.ca_cert, beta_org.ca_cert);
    assert_eq!(live.record.peer_id, p.peer_id);
    let (s, c) = outcome(get_as("/admin/peers/gamma.test/org", root.token()).await).await;
    assert_eq!((s.as_u16(), c.as_str()), (404, "unknown_peer"));
    let (s, c) = outcome(get_as("/admin/peers/beta.test/org", carol.token()).await).await;
    assert_eq!((s.as_u16(), c.as_str()), (403, "not_admin"));
    assert_eq!(p.queued, 0);
    assert!(
        ["new", "connected", "backing_off", "disconnected"].contains(&p.state.as_str()),
        "{}",
        p.state
    );

    // carol writes to bob: delivered to his node, which her Sent folder shows.
    let note = |subject: &str| Outgoing {
        to: vec!["bob@beta.test".into()],
        subject: subject.into(),
        body: "hello".into(),
        attachments: vec![],
        pickup_kdf: None,
    };
    let work = tempfile::tempdir().unwrap();
    let first = carol.send(&note("first"), work.path()).await.unwrap();
    let sent_state = async |id: &str| {
        carol
            .mailbox(Folder::Sent)
            .await
            .unwrap()
            .into_iter()
            .find(|i| i.message_id == id)
            .unwrap()
            .delivery
    };
    wait_for(Duration::from_secs(20), async || {
        let d = sent_state(&first.message_id).await;
        (d.len() == 1 && d[0].state == "delivered").then_some(())
    })
    .await
    .unwrap();
    let d = sent_state(&first.message_id).await;
    assert_eq!(d[0].address, "bob@beta.test");
    assert_eq!(peers(root.token()).await.peers[0].state, "connected");

    // beta goes away: two messages wait for it, the console says so and the link is down.
    beta.stop().await.unwrap();
    for s in ["second", "third"] {
        let r = carol.send(&note(s), work.path()).await.unwrap();
        assert_eq!(r.recipients[0].state, "queued");
        assert_eq!(sent_state(&r.message_id).await[0].state, "queued");
    }
    let down = wait_for(Duration::from_secs(30), async || {
        let l = peers(root.token()).await;
        (l.peers[0].queued == 2 && l.peers[0].state != "connected").then(|| l.peers[0].clone())
    })
    .await
    .unwrap();
    assert!(
        ["backing_off", "disconnected"].contains(&down.state.as_str()),
        "{}",
        down.state
    );
    // The status page carries the same list.
    let status: NodeStatus = http()
        .get(api(&alpha, "/admin/status"))
        .bearer_auth(root.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status.peers.len(), 1);
    assert_eq!(status.peers[0].domain, "beta.test");
}

#[tokio::test]
async fn notices_are_listed_in_the_inbox_and_dismissed_only_by_their_owner() {
    let (node, alice, bob) = alice_and_bob().await;
    {
        let db = rusqlite::Connection::open(node.data().join("sealpost.db")).unwrap();
        db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        db.execute(
            "INSERT INTO notices (account_id, message_id, text, created_at)
             SELECT id, NULL, 'Your message to x@b.test could not be delivered.', 1 FROM accounts
             WHERE address = 'alice@a.test'",
            [],
        )
        .unwrap();
    }
    let inbox = async |s: &Session| -> MailboxResponse {
        http()
            .get(api(&node, "/mailbox/inbox"))
            .bearer_auth(s.token())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let n = inbox(&alice).await.notices;
    assert_eq!(n.len(), 1);
    assert!(n[0].unread);
    assert!(inbox(&bob).await.notices.is_empty());
    let dismiss = |s: &Session, id: i64| {
        http()
            .post(api(&node, &format!("/notices/{id}/read")))
            .bearer_auth(s.token().to_owned())
            .send()
    };
    let (s, c) = outcome(dismiss(&bob, n[0].id).await.unwrap()).await;
    assert_eq!((s.as_u16(), c.as_str()), (404, "unknown_notice"));
    assert!(inbox(&alice).await.notices[0].unread);
    assert_eq!(dismiss(&alice, n[0].id).await.unwrap().status(), 204);
    assert!(!inbox(&alice).await.notices[0].unread);
}
