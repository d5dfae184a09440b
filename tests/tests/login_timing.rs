//! A wrong login takes as long for an address without an account as for a real one (issue 15,
//! item 2). Alone in its test binary, so that no other test of the same run competes for the
//! CPU while it measures.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sealpost_proto::KdfParams;
use sealpost_tests::TestNode;
use serde_json::{Value, json};

/// Posts a wrong login for `address`; its (status, code).
async fn wrong_login(http: &reqwest::Client, node: &TestNode, address: &str) -> (u16, String) {
    let resp = http
        .post(format!("{}/api/v1/login", node.url))
        .json(&json!({ "address": address, "login_verifier": STANDARD.encode([7u8; 32]) }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body["code"].as_str().unwrap_or("").to_owned())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Issue 15, item 2: an unknown address skipped the slow hash (1.9 ms against 39 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_login_takes_as_long_for_an_unknown_address_as_for_a_real_one() {
    // No throttling in the way: this measures the check itself.
    let node = TestNode::spawn_with("a.test", |c| {
        c.http.auth_rate_per_sec = 10_000;
        c.accounts.max_failed_logins = 10_000;
    })
    .await
    .unwrap();
    node.user("alice@a.test", "alice password", KdfParams::MIN)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let (mut real, mut unknown) = (Vec::new(), Vec::new());
    // One round to warm up, then 20 of each, alternating which goes first.
    for round in 0..21 {
        let mut pair = [("alice@a.test", &mut real), ("nobody@a.test", &mut unknown)];
        if round % 2 == 1 {
            pair.reverse();
        }
        for (address, times) in pair {
            let t = Instant::now();
            let (status, code) = wrong_login(&http, &node, address).await;
            let took = t.elapsed();
            assert_eq!((status, code.as_str()), (401, "invalid_credentials"));
            if round > 0 {
                times.push(took);
            }
        }
    }
    let (real, unknown) = (median(real), median(unknown));
    let ratio = real.as_secs_f64() / unknown.as_secs_f64();
    eprintln!(
        "wrong login, median of 20: real account {:.2} ms, unknown address {:.2} ms (ratio {ratio:.3})",
        real.as_secs_f64() * 1000.0,
        unknown.as_secs_f64() * 1000.0
    );
    // Generous, as test machines are noisy; the figure in the closing note is the measure.
    assert!(
        (0.5..2.0).contains(&ratio),
        "real {real:?} against unknown {unknown:?}"
    );
}
