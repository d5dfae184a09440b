//! Login against a real node as an attacker sees it: wrong logins cost the same time and get
//! the same answers whether or not the address has an account, guessing slows the guesser
//! down, and a guesser cannot keep the owner out of a device they logged in from before.
//!
//! These tests speak raw HTTP, as an attacker would, rather than through the client library.
//! The timing is measured apart, in `login_timing.rs`, with no other test running beside it.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sealpost_proto::KdfParams;
use sealpost_tests::TestNode;
use serde_json::{Value, json};

/// What an answer shows an attacker: status, code, message (digits masked, as they carry the
/// seconds to wait) and whether it has a `Retry-After`.
#[derive(Clone, Debug, PartialEq)]
struct Answer {
    status: u16,
    code: String,
    message: String,
    retry_after: bool,
}

const WRONG: [u8; 32] = [7; 32];

async fn post_login(
    http: &reqwest::Client,
    node: &TestNode,
    address: &str,
    verifier: &[u8; 32],
    device: Option<&str>,
) -> (Answer, Value) {
    let mut req = http
        .post(format!("{}/api/v1/login", node.url))
        .json(&json!({ "address": address, "login_verifier": STANDARD.encode(verifier) }));
    if let Some(d) = device {
        req = req.header("x-sealpost-device", d);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let retry_after = resp.headers().contains_key("retry-after");
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let masked = body["message"]
        .as_str()
        .unwrap_or("")
        .replace(|c: char| c.is_ascii_digit(), "#");
    (
        Answer {
            status,
            code: body["code"].as_str().unwrap_or("").to_owned(),
            message: masked,
            retry_after,
        },
        body,
    )
}

async fn login_params(
    http: &reqwest::Client,
    node: &TestNode,
    address: &str,
    device: Option<&str>,
) -> reqwest::Response {
    let mut req = http
        .post(format!("{}/api/v1/login/params", node.url))
        .json(&json!({ "address": address }));
    if let Some(d) = device {
        req = req.header("x-sealpost-device", d);
    }
    req.send().await.unwrap()
}

/// Issue 15, item 3: real accounts answered `429 locked_out` after five failures, unknown
/// addresses `401` for ever, which told them apart.
#[tokio::test]
async fn unknown_and_real_addresses_get_identical_answers_when_wrong_and_when_throttled() {
    let node = TestNode::spawn_with("a.test", |c| c.http.auth_rate_per_sec = 10_000)
        .await
        .unwrap();
    let free = node.config.accounts.max_failed_logins as usize;
    node.user("alice@a.test", "alice password", KdfParams::MIN)
        .await
        .unwrap();
    node.user("dave@a.test", "dave password", KdfParams::MIN)
        .await
        .unwrap();
    node.admin(&["user", "disable", "dave@a.test"])
        .await
        .unwrap();
    node.invite("carol@a.test").await.unwrap();
    let right = node
        .login_verifier("alice@a.test", "alice password")
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let mut seen = Vec::new();
    for address in [
        "alice@a.test",  // enrolled
        "dave@a.test",   // enrolled, disabled
        "carol@a.test",  // invited, never enrolled
        "nobody@a.test", // unknown
        "not an address",
    ] {
        let mut answers = Vec::new();
        for _ in 0..free + 3 {
            answers.push(post_login(&http, &node, address, &WRONG, None).await.0);
        }
        if address == "alice@a.test" {
            // While throttled, even the right password is refused, exactly like a wrong one.
            let (with_right, _) = post_login(&http, &node, address, &right, None).await;
            assert_eq!(&with_right, answers.last().unwrap());
        }
        seen.push((address, answers));
    }
    let (_, alice) = &seen[0];
    for (i, a) in alice.iter().enumerate() {
        let expect = if i < free {
            (401, "invalid_credentials", false)
        } else {
            (429, "too_many_attempts", true)
        };
        assert_eq!((a.status, a.code.as_str(), a.retry_after), expect, "{i}");
    }
    for (address, answers) in &seen[1..] {
        assert_eq!(answers, alice, "{address} is answered like alice");
    }
}

/// `login/params` names the same parameters, a salt of the same length and the same fields for
/// an address with no account, one invited but not enrolled, and one enrolled (with the
/// parameters both clients use), and always the same salt for the same address.
#[tokio::test]
async fn login_params_look_alike_for_unknown_invited_and_enrolled_addresses() {
    let node = TestNode::spawn("a.test").await.unwrap();
    node.user("alice@a.test", "alice password", KdfParams::DEFAULT)
        .await
        .unwrap();
    node.invite("carol@a.test").await.unwrap();
    let http = reqwest::Client::new();
    let mut shapes = Vec::new();
    for address in ["alice@a.test", "carol@a.test", "nobody@a.test"] {
        let first: Value = login_params(&http, &node, address, None)
            .await
            .json()
            .await
            .unwrap();
        let again: Value = login_params(&http, &node, address, None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(first, again, "{address}: stable");
        let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
        let salt = STANDARD
            .decode(first["kdf_salt"].as_str().unwrap())
            .unwrap();
        shapes.push((format!("{keys:?}"), salt.len(), first["kdf_params"].clone()));
    }
    assert_eq!(shapes[0], shapes[1]);
    assert_eq!(shapes[0], shapes[2]);
}

/// Issue 15, item 3: five anonymous failures locked any account for 15 minutes. Now an
/// attacker failing 1,000 times from one address is answered `429` at once after a few tries
/// (the attacker is what slows down), and the owner, on a device that logged in before, logs
/// in at once from the very same address.
#[tokio::test]
async fn an_attacker_failing_1000_times_does_not_keep_the_owner_out_of_a_known_device() {
    let node = TestNode::spawn("a.test").await.unwrap();
    node.user("alice@a.test", "alice password", KdfParams::MIN)
        .await
        .unwrap();
    node.user("bob@a.test", "bob password!!", KdfParams::MIN)
        .await
        .unwrap();
    let right = node
        .login_verifier("alice@a.test", "alice password")
        .await
        .unwrap();
    let http = reqwest::Client::new();
    // Alice's device logs in once and keeps its device token (a browser keeps the cookie).
    let (ok, body) = post_login(&http, &node, "alice@a.test", &right, None).await;
    assert_eq!(ok.status, 200);
    let device = body["device_token"].as_str().map(str::to_owned);
    let (_, bob) = post_login(
        &http,
        &node,
        "bob@a.test",
        &node
            .login_verifier("bob@a.test", "bob password!!")
            .await
            .unwrap(),
        None,
    )
    .await;
    let bobs_device = bob["device_token"].as_str().unwrap_or("").to_owned();

    // The attacker, on the same loopback address as alice, fails 1,000 times.
    let t = Instant::now();
    let mut hashed = 0;
    for i in 0..1000 {
        let (a, _) = post_login(&http, &node, "alice@a.test", &WRONG, None).await;
        match (a.status, a.code.as_str()) {
            (401, "invalid_credentials") => hashed += 1,
            (429, "too_many_attempts" | "rate_limited") => assert!(a.retry_after, "{i}"),
            other => panic!("attempt {i}: {other:?}"),
        }
    }
    let took = t.elapsed();
    eprintln!("1,000 failed attempts took {took:?}; {hashed} were checked, the rest refused");
    let free = node.config.accounts.max_failed_logins as usize;
    assert!(
        (free..free + 5).contains(&hashed),
        "{hashed} attempts were checked"
    );
    assert!(took < Duration::from_secs(60), "refusals are quick");
    // Neither a made-up device token nor another account's gets the attacker through.
    for fake in ["AAAA", bobs_device.as_str()] {
        let (a, _) = post_login(&http, &node, "alice@a.test", &right, Some(fake)).await;
        assert_eq!(a.status, 429, "{fake}");
    }

    // Alice, on her device, logs in at once: the parameters, then the login.
    let t = Instant::now();
    let params = login_params(&http, &node, "alice@a.test", device.as_deref()).await;
    assert_eq!(params.status(), 200, "login/params from the known device");
    let (a, body) = post_login(&http, &node, "alice@a.test", &right, device.as_deref()).await;
    assert_eq!(
        (a.status, a.code.as_str()),
        (200, ""),
        "the owner's known device logs in"
    );
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(body["device_token"].is_string(), "a fresh device token");
    // From a device it never used, she has to wait like everyone else while the attack goes
    // on (one more failure first, so that a slow run cannot have outlasted the last delay).
    let _ = post_login(&http, &node, "alice@a.test", &WRONG, None).await;
    let (a, _) = post_login(&http, &node, "alice@a.test", &right, None).await;
    assert_eq!(a.status, 429);
}
