//! Operations (docs/operations.md): the metrics listener after real traffic, what its labels
//! never carry, `/livez` and `/readyz` and the checks they name, and a real Prometheus
//! (Debian's `prometheus`) scraping a node and answering a PromQL query.

use std::time::Duration;

use sealpost_client::{Outgoing, Session};
use sealpost_tests::{Prometheus, TestNode, inbox_ids, peer_both, wait_for};

/// A node of `domain` whose metrics listener is on a free loopback port.
async fn measured(domain: &str) -> TestNode {
    TestNode::spawn_with(domain, |c| {
        c.metrics = Some(sealpost::config::MetricsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
        })
    })
    .await
    .expect("node starts")
}

/// `from` sends a short message to `to`; returns its message ID.
async fn send(from: &Session, to: &[&str]) -> String {
    let work = tempfile::tempdir().unwrap();
    let msg = Outgoing {
        to: to.iter().map(|s| s.to_string()).collect(),
        subject: "quarterly figures".into(),
        body: "see attached".into(),
        attachments: vec![],
        pickup_kdf: None,
    };
    from.send(&msg, work.path()).await.unwrap().message_id
}

/// `GET /metrics` of `node`'s metrics listener: status, content type and body.
async fn scrape(node: &TestNode) -> (u16, String, String) {
    let url = format!(
        "http://{}/metrics",
        node.metrics().expect("metrics listener")
    );
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    let ctype = r.headers()["content-type"].to_str().unwrap().to_owned();
    (status, ctype, r.text().await.unwrap())
}

/// The value of the sample `line_start` (a metric name with its labels) in `text`.
fn sample(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_real_traffic_have_every_family_and_no_account_in_any_label() {
    let a = measured("a.test").await;
    let b = TestNode::spawn("b.test").await.unwrap();
    peer_both(&a, &b).await;
    // Distinctive local parts: any of them in the scrape would be a label carrying a user.
    let aurelia = a.person("aurelia").await;
    let benedikt = a.person("benedikt").await;
    let cordula = b.person("cordula").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(send(&aurelia, &["benedikt@a.test", "cordula@b.test"]).await);
    }
    // Delivered at b: a's outbox empties when b's receipts come back.
    wait_for(Duration::from_secs(60), async || {
        (inbox_ids(&cordula).await.len() == 3).then_some(())
    })
    .await
    .unwrap();
    wait_for(Duration::from_secs(30), async || {
        (a.count("SELECT count(*) FROM outbox") == 0).then_some(())
    })
    .await
    .unwrap();
    // A read by ID, a trust look-up by address, and a path that names an address and
    // matches no route.
    let http = reqwest::Client::new();
    let api = |p: &str| format!("{}/api/v1{p}", a.url);
    let r = http
        .get(api(&format!("/messages/{}", ids[0])))
        .bearer_auth(benedikt.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(api("/trust/cordula@b.test"))
        .bearer_auth(aurelia.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(api("/nothing/aurelia@a.test"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let (status, ctype, text) = scrape(&a).await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    // Every family, with the counts this traffic made.
    let at_least = |line: &str, n: f64| {
        let v = sample(&text, line).unwrap_or_else(|| panic!("no {line} in:\n{text}"));
        assert!(v >= n, "{line} = {v}, expected at least {n}");
    };
    at_least(
        "sealpost_submissions_total{source=\"local\",outcome=\"accepted\",code=\"ok\"}",
        3.0,
    );
    at_least(
        "sealpost_accept_duration_seconds_count{source=\"local\"}",
        3.0,
    );
    at_least(
        "sealpost_deliveries_total{kind=\"local\",outcome=\"delivered\"}",
        3.0,
    );
    at_least(
        "sealpost_deliveries_total{kind=\"federated\",outcome=\"delivered\"}",
        3.0,
    );
    at_least(
        "sealpost_delivery_duration_seconds_count{kind=\"federated\"}",
        3.0,
    );
    at_least(
        "sealpost_http_requests_total{route=\"/api/v1/messages/{id}\",method=\"GET\",status=\"200\",class=\"2xx\"}",
        1.0,
    );
    at_least(
        "sealpost_http_requests_total{route=\"/api/v1/messages\",method=\"POST\",status=\"201\",class=\"2xx\"}",
        3.0,
    );
    at_least(
        "sealpost_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\",class=\"4xx\"}",
        1.0,
    );
    at_least(
        "sealpost_http_request_duration_seconds_count{route=\"/api/v1/trust/{address}\",method=\"GET\"}",
        1.0,
    );
    at_least("sealpost_writer_batch_operations_count", 3.0);
    at_least("sealpost_writer_commit_duration_seconds_count", 3.0);
    assert!(
        text.contains("sealpost_trust_lookups_total{level="),
        "{text}"
    );
    // No label carries an account, an address or a message ID.
    for secret in ["aurelia", "benedikt", "cordula", "@"]
        .into_iter()
        .chain(ids.iter().map(String::as_str))
    {
        assert!(
            !text.contains(secret),
            "the scrape names {secret:?}:\n{text}"
        );
    }
    // The queue gauges are read at scrape time: with a message waiting for b, stopped, a's
    // outbox for b.test shows in the next scrape.
    let mut b = b;
    b.stop().await.unwrap();
    send(&aurelia, &["cordula@b.test"]).await;
    let (_, _, text) = scrape(&a).await;
    assert_eq!(
        sample(
            &text,
            "sealpost_federation_queue_messages{domain=\"b.test\"}"
        ),
        Some(1.0),
        "{text}"
    );
    // Metrics are not served on the main listener.
    let r = http.get(format!("{}/metrics", a.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livez_and_readyz_answer_a_word_and_readyz_names_the_failed_check() {
    let node = TestNode::spawn("a.test").await.unwrap();
    let get = async |path: &str| {
        let r = reqwest::get(format!("{}{path}", node.url)).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(get("/livez").await, (200, "alive".into()));
    assert_eq!(get("/readyz").await, (200, "ready".into()));
    // The blob store refuses writes (its working directory is gone): not ready, by name only.
    let tmp = node.data().join("blobs").join("tmp");
    std::fs::remove_dir(&tmp).unwrap();
    assert_eq!(get("/readyz").await, (503, "not ready: blobs".into()));
    assert_eq!(
        get("/livez").await,
        (200, "alive".into()),
        "alive all the same"
    );
    std::fs::create_dir(&tmp).unwrap();
    assert_eq!(get("/readyz").await, (200, "ready".into()));

    // A disk with less room than required (here: more than any disk has).
    let full = TestNode::spawn_with("b.test", |c| c.storage.ready_min_free_bytes = u64::MAX)
        .await
        .unwrap();
    let r = reqwest::get(format!("{}/readyz", full.url)).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.text().await.unwrap(), "not ready: disk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_node_and_answers_a_query_over_its_families() {
    let node = measured("a.test").await;
    let prometheus = Prometheus::start(&[node.metrics().unwrap()], Duration::from_secs(30))
        .await
        .unwrap();
    let alice = node.person("alice").await;
    node.person("bob").await;
    for _ in 0..4 {
        send(&alice, &["bob@a.test"]).await;
    }
    let http = reqwest::Client::new();
    let query = async |q: &str| -> Option<f64> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", prometheus.url),
            &[("query", q)],
        )
        .unwrap();
        let v: serde_json::Value = http.get(url).send().await.ok()?.json().await.ok()?;
        assert_eq!(v["status"], "success", "{q}: {v}");
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    };
    // Bounded: a few scrapes at 500 ms.
    let accepted = wait_for(Duration::from_secs(30), async || {
        query("sum(sealpost_submissions_total{outcome=\"accepted\"})")
            .await
            .filter(|n| *n >= 4.0)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; prometheus said: {}", prometheus.log()));
    assert_eq!(accepted, 4.0);
    // A histogram read as operators read it, and the scrape target is up.
    let commits = query("sum(sealpost_writer_commit_duration_seconds_count)")
        .await
        .unwrap();
    assert!(commits >= 4.0, "{commits}");
    assert_eq!(query("up{job=\"sealpost\"}").await, Some(1.0));
    let p99 =
        query("histogram_quantile(0.99, sum by (le) (sealpost_accept_duration_seconds_bucket))")
            .await
            .unwrap();
    assert!(p99 > 0.0 && p99 < 60.0, "{p99}");
}
