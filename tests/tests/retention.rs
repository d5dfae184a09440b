//! Retention of compliance copies and legal holds (docs/compliance.md, "Retention and legal
//! holds"), against a real node: alice writes bob with the compliance key (under 2-of-2
//! custody) as a recipient; both delete the messages, which leave their mailboxes but stay
//! stored, found by the officers' archive search and read through a case; the expiry sweep
//! (given a `now` past the retention: no sleeping) deletes them and logs `compliance.expired`,
//! except those a case on legal hold names; a message without a compliance copy goes at once.
//! While a case is on hold, its openings are withheld from the users' view, which is logged
//! once per case.

use std::time::SystemTime;

use sealpost_client::crypto::generate_user_key;
use sealpost_client::{Outgoing, Session, custody, shamir};
use sealpost_proto::KdfParams;
use sealpost_proto::custody::{
    CaseReport, CaseView, ComplianceOpen, CustodySetupRequest, CustodyView, WrappedShare,
};
use sealpost_tests::{TestNode, inbox_ids, password_of};
use sequoia_openpgp::Cert;

/// Calls `path` under `/api/v1` as `who`; the status and the body as JSON (`Null` if none).
async fn call(
    node: &TestNode,
    method: &str,
    path: &str,
    who: &Session,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut r = reqwest::Client::new()
        .request(
            method.parse().unwrap(),
            format!("{}/api/v1{path}", node.url),
        )
        .bearer_auth(who.token());
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_default())
}

/// [`call`], which must succeed, its answer as `T`.
async fn ok<T: serde::de::DeserializeOwned>(
    node: &TestNode,
    method: &str,
    path: &str,
    who: &Session,
    body: Option<serde_json::Value>,
) -> T {
    let (status, v) = call(node, method, path, who, body).await;
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {v}"
    );
    serde_json::from_value(v).unwrap()
}

fn public(cert: &Cert) -> String {
    sealpost_proto::crypto::cert_to_armored(&cert.clone().strip_secret_key_material()).unwrap()
}

/// How many rows of `table` belong to message `id` (`column` names it).
fn rows_of(node: &TestNode, table: &str, column: &str, id: &str) -> i64 {
    node.db()
        .query_row(
            &format!("SELECT count(*) FROM {table} WHERE {column} = ?1"),
            [id],
            |r| r.get(0),
        )
        .unwrap()
}

/// alice writes bob; with `compliance`, her client adds that key as a recipient.
async fn write(alice: &Session, compliance: Option<&Cert>, body: &str) -> String {
    let work = tempfile::tempdir().unwrap();
    let (envelope, mut certs) = alice.envelope(&["bob@a.test".into()]).await.unwrap();
    certs.extend(compliance.cloned());
    alice
        .send_enveloped(
            &Outgoing {
                to: vec!["bob@a.test".into()],
                subject: "s".into(),
                body: body.into(),
                attachments: vec![],
                pickup_kdf: None,
            },
            envelope,
            certs,
            work.path(),
        )
        .await
        .unwrap()
        .0
        .message_id
}

/// What `who` sees of the compliance openings of message `id`.
async fn opens(node: &TestNode, who: &Session, id: &str) -> Vec<ComplianceOpen> {
    let path = format!("/messages/{id}/compliance-opens");
    ok(node, "GET", &path, who, None).await
}

async fn sweep(node: &TestNode, now: i64) -> usize {
    sealpost::service::retention::sweep(&*node.store, &*node.context.blobs, now)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compliance_copy_outlives_its_users_deletion_until_retention_ends_unless_held() {
    let node = TestNode::spawn("a.test").await.unwrap();
    let admin = node
        .enrolled("admin@a.test", &password_of("admin"), KdfParams::MIN, true)
        .await
        .unwrap();
    let officers = [node.person("officer1").await, node.person("officer2").await];
    let alice = node.person("alice").await;
    let bob = node.person("bob").await;
    let now = SystemTime::now();

    // Before any compliance key: a message both delete goes at once, as it always did.
    let plain = write(&alice, None, "no copy").await;
    alice.delete(&plain).await.unwrap();
    assert_eq!(rows_of(&node, "messages", "id", &plain), 1, "bob holds it");
    bob.delete(&plain).await.unwrap();
    assert_eq!(rows_of(&node, "messages", "id", &plain), 0);
    assert_eq!(rows_of(&node, "parts", "message_id", &plain), 0);

    // The compliance key under 2-of-2 custody.
    for o in &officers {
        node.admin(&["compliance", "officer", "add", o.address()])
            .await
            .unwrap();
    }
    let (key, _) = generate_user_key("compliance@a.test", Some("Compliance archive"), now).unwrap();
    let s = custody::new_secret();
    let shares = shamir::split(&s[..], 2, 2).unwrap();
    let setup = CustodySetupRequest {
        cert: public(&key),
        locked_key: custody::lock_key(&key, &s[..]).unwrap(),
        threshold: 2,
        shares: officers
            .iter()
            .zip(&shares)
            .map(|(o, share)| WrappedShare {
                address: o.address().to_owned(),
                share: custody::wrap_share(share, o.unlocked_cert(), now).unwrap(),
            })
            .collect(),
    };
    let view: CustodyView = ok(
        &node,
        "POST",
        "/admin/compliance/custody",
        &admin,
        Some(serde_json::to_value(&setup).unwrap()),
    )
    .await;
    let compliance = sealpost_proto::crypto::cert_from_armored(&view.cert).unwrap();

    // Three compliance copies: `held` and `kept` both delete; bob keeps `open`.
    let held = write(&alice, Some(&compliance), "held").await;
    let gone = write(&alice, Some(&compliance), "gone").await;
    let open = write(&alice, Some(&compliance), "open").await;
    for id in [&held, &gone] {
        alice.delete(id).await.unwrap();
        bob.delete(id).await.unwrap();
        // Gone for its users: no mailbox entry, their GET is 404 and so is a second delete.
        assert!(!inbox_ids(&bob).await.contains(id));
        assert_eq!(rows_of(&node, "mailbox", "message_id", id), 0);
        for who in [&alice, &bob] {
            let (status, _) = call(&node, "GET", &format!("/messages/{id}"), who, None).await;
            assert_eq!(status, 404);
        }
        assert!(bob.delete(id).await.is_err());
        // Still stored, until accepted_at + 3650 days.
        let (accepted, until): (i64, Option<i64>) = node
            .db()
            .query_row(
                "SELECT accepted_at, retain_until FROM messages WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(until, Some(accepted + 3650 * 86_400));
        assert_eq!(rows_of(&node, "parts", "message_id", id), 1);
    }
    let retain_until: i64 = node
        .db()
        .query_row("SELECT max(retain_until) FROM messages", [], |r| r.get(0))
        .unwrap();

    // The officers' archive still finds them.
    let found: Vec<serde_json::Value> = ok(
        &node,
        "GET",
        "/compliance/archive?sender=alice@a.test",
        &officers[1],
        None,
    )
    .await;
    for id in [&held, &gone, &open] {
        assert!(found.iter().any(|m| m["message_id"] == id.as_str()), "{id}");
    }

    // A case names `held` and `open`; officer 2 approves, officer 1 reads both.
    let (request_key, _) = generate_user_key("request@a.test", None, now).unwrap();
    let case: CaseView = ok(
        &node,
        "POST",
        "/compliance/cases",
        &officers[0],
        Some(serde_json::json!({
            "case_ref": "Court order 2026-41",
            "message_ids": [held, open],
            "request_key": public(&request_key),
        })),
    )
    .await;
    let id = case.id;
    let o2: CustodyView = ok(&node, "GET", "/compliance/custody", &officers[1], None).await;
    let o2_share = custody::unwrap_share(
        o2.my_share.as_deref().unwrap(),
        officers[1].unlocked_cert(),
        now,
    )
    .unwrap();
    let _: CaseView = ok(
        &node,
        "POST",
        &format!("/compliance/cases/{id}/approve"),
        &officers[1],
        Some(serde_json::json!({
            "share": custody::wrap_share(&o2_share, &request_key, now).unwrap()
        })),
    )
    .await;
    let _: serde_json::Value = ok(
        &node,
        "GET",
        &format!("/compliance/cases/{id}/release"),
        &officers[0],
        None,
    )
    .await;
    // Small parts are stored in their row (a larger one's blob would be a file).
    let stored: Option<Vec<u8>> = node
        .db()
        .query_row(
            "SELECT data FROM parts WHERE message_id = ?1 AND idx = 0",
            [&held],
            |r| r.get(0),
        )
        .unwrap();
    for mid in [&held, &open] {
        let r = reqwest::Client::new()
            .get(format!(
                "{}/api/v1/compliance/cases/{id}/messages/{mid}",
                node.url
            ))
            .bearer_auth(officers[0].token())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{mid}");
        let bytes = r.bytes().await.unwrap();
        if mid == &held {
            let stored = stored.as_ref().expect("a small head is stored in its row");
            assert_eq!(&bytes.to_vec(), stored, "the deleted message's ciphertext");
        }
    }

    // Holds: officers only, a reason required, once.
    let hold = |reason: &str| Some(serde_json::json!({ "reason": reason }));
    let path = format!("/compliance/cases/{id}/hold");
    for (who, method, body, want) in [
        (&bob, "POST", hold("mine"), (403, "not_officer")),
        (&bob, "DELETE", None, (403, "not_officer")),
        (&officers[1], "POST", hold(" "), (400, "invalid_hold")),
        (&officers[1], "POST", hold("a\u{7}b"), (400, "invalid_hold")),
        (&officers[1], "DELETE", None, (409, "not_held")),
    ] {
        let (status, v) = call(&node, method, &path, who, body).await;
        assert_eq!((status, v["code"].as_str().unwrap()), want, "{method}");
    }
    let (status, v) = call(
        &node,
        "POST",
        "/compliance/cases/99999/hold",
        &officers[1],
        hold("x"),
    )
    .await;
    assert_eq!((status, v["code"].as_str().unwrap()), (404, "unknown_case"));
    assert_eq!(node.count("SELECT count(*) FROM compliance_holds"), 0);
    assert!(node.logged("compliance.hold_placed").is_empty());
    let placed: CaseView = ok(
        &node,
        "POST",
        &path,
        &officers[1],
        hold("Litigation 2026-3"),
    )
    .await;
    let h = placed.hold.unwrap();
    assert_eq!(
        (h.reason.as_str(), h.placed_by.as_str()),
        ("Litigation 2026-3", "officer2@a.test")
    );
    let (status, v) = call(&node, "POST", &path, &officers[0], hold("again")).await;
    assert_eq!((status, v["code"].as_str().unwrap()), (409, "already_held"));
    assert_eq!(
        node.logged("compliance.hold_placed"),
        [format!("case:{id}")]
    );

    // Under the hold, bob's view of `open` leaves the opening out; the delay is logged once.
    for _ in 0..2 {
        assert!(opens(&node, &bob, &open).await.is_empty());
    }
    assert_eq!(
        node.logged("compliance.notice_delayed"),
        [format!("case:{id}")]
    );

    // Before the retention ends, the sweep expires nothing.
    assert_eq!(sweep(&node, retain_until - 1).await, 0);
    assert!(node.logged("compliance.expired").is_empty());
    // After it, `gone` expires (rows and parts); `held` is on hold; `open` is in a mailbox.
    let future = retain_until + 86_400;
    assert_eq!(sweep(&node, future).await, 1);
    assert_eq!(
        node.logged("compliance.expired"),
        std::slice::from_ref(&gone)
    );
    assert_eq!(rows_of(&node, "messages", "id", &gone), 0);
    assert_eq!(rows_of(&node, "parts", "message_id", &gone), 0);
    let detail: String = node
        .db()
        .query_row(
            "SELECT detail FROM txlog WHERE kind = 'compliance.expired'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!detail.contains("gone"), "no content in the log: {detail}");
    for id in [&held, &open] {
        assert_eq!(rows_of(&node, "messages", "id", id), 1, "{id}");
    }

    // The hold lifted: bob sees the opening, and the held copy expires at the next sweep.
    let lifted: CaseView = ok(&node, "DELETE", &path, &officers[0], None).await;
    assert!(lifted.hold.is_none());
    assert_eq!(
        node.logged("compliance.hold_lifted"),
        [format!("case:{id}")]
    );
    assert_eq!(opens(&node, &bob, &open).await.len(), 1);
    assert_eq!(sweep(&node, future).await, 1);
    assert_eq!(node.logged("compliance.expired"), [gone, held.clone()]);
    assert_eq!(rows_of(&node, "messages", "id", &held), 0);
    assert_eq!(rows_of(&node, "messages", "id", &open), 1);

    // The case's report holds the hold's steps; the log still verifies.
    let report: CaseReport = ok(
        &node,
        "GET",
        &format!("/compliance/cases/{id}/report"),
        &officers[1],
        None,
    )
    .await;
    let kinds: Vec<&str> = report.entries.iter().map(|e| e.kind.as_str()).collect();
    for kind in [
        "compliance.hold_placed",
        "compliance.notice_delayed",
        "compliance.hold_lifted",
    ] {
        assert!(kinds.contains(&kind), "{kind}: {kinds:?}");
    }
    node.admin(&["log", "verify"]).await.unwrap();
}
