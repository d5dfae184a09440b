//! The compliance key under dual control (docs/compliance.md, "Dual control"), against a real
//! node: an admin puts a key (made, locked, split and wrapped by the client crate) under 2-of-3
//! custody; officer 1 requests access to a message encrypted to it, officer 2 approves, officer
//! 1 combines the shares in memory, unlocks the key and reads the message. Officer 1 alone gets
//! no share; approvals by a non-officer or by the requester are refused and change nothing; the
//! log holds the request and the approval before the release, and the release before the read.

use std::time::SystemTime;

use sealpost_client::crypto::{self, generate_user_key};
use sealpost_client::{Outgoing, Session, custody, shamir};
use sealpost_proto::custody::{
    CaseRelease, CaseReport, CaseView, ComplianceOpen, CustodySetupRequest, CustodyView,
    WrappedShare,
};
use sealpost_proto::{Head, KdfParams};
use sealpost_tests::{TestNode, files_containing, password_of};
use sequoia_openpgp::Cert;
use sequoia_openpgp::policy::StandardPolicy;

struct Http<'a> {
    node: &'a TestNode,
    http: reqwest::Client,
}

impl Http<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.node.url)
    }
    async fn send(
        &self,
        method: &str,
        path: &str,
        who: &Session,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut r = self
            .http
            .request(method.parse().unwrap(), self.url(path))
            .bearer_auth(who.token());
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }
    /// Asserts the request is refused with `want` (status, code).
    async fn expect(
        &self,
        method: &str,
        path: &str,
        who: &Session,
        body: Option<serde_json::Value>,
        want: (u16, &str),
    ) {
        let got = self.refused(method, path, who, body).await;
        assert_eq!((got.0, got.1.as_str()), want, "{method} {path}");
    }
    /// Status and error code of a refused request.
    async fn refused(
        &self,
        method: &str,
        path: &str,
        who: &Session,
        body: Option<serde_json::Value>,
    ) -> (u16, String) {
        let r = self.send(method, path, who, body).await;
        let status = r.status().as_u16();
        let v: serde_json::Value = r.json().await.unwrap();
        (status, v["code"].as_str().unwrap_or_default().to_owned())
    }
    async fn ok<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        who: &Session,
        body: Option<serde_json::Value>,
    ) -> T {
        let r = self.send(method, path, who, body).await;
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"))
    }
}

fn public(cert: &Cert) -> String {
    sealpost_proto::crypto::cert_to_armored(&cert.clone().strip_secret_key_material()).unwrap()
}

/// The log's entries of `kind` (their sequence numbers).
fn log_seqs(node: &TestNode, kind: &str) -> Vec<i64> {
    let db = node.db();
    let mut stmt = db
        .prepare("SELECT seq FROM txlog WHERE kind = ?1 ORDER BY seq")
        .unwrap();
    stmt.query_map([kind], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// What the admin's side makes: the key, S, the shares and the upload.
struct Split {
    key: Cert,
    s: zeroize::Zeroizing<[u8; 32]>,
    shares: Vec<zeroize::Zeroizing<Vec<u8>>>,
    setup: CustodySetupRequest,
}

/// A new compliance key, locked under a new S split 2-of-3 among `officers`, as the admin's
/// client makes it.
fn split_2_of_3(officers: &[Session], now: SystemTime) -> Split {
    let (key, _) = generate_user_key("compliance@a.test", Some("Compliance archive"), now).unwrap();
    let s = custody::new_secret();
    let locked = custody::lock_key(&key, &s[..]).unwrap();
    let shares = shamir::split(&s[..], 2, officers.len()).unwrap();
    let setup = CustodySetupRequest {
        cert: public(&key),
        locked_key: locked,
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
    Split {
        key,
        s,
        shares,
        setup,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_closes_a_case_a_new_split_supersedes_pending_ones_and_a_removed_officer_cannot_act()
 {
    let node = TestNode::spawn("a.test").await.unwrap();
    let admin = node
        .enrolled("admin@a.test", &password_of("admin"), KdfParams::MIN, true)
        .await
        .unwrap();
    let officers = [
        node.person("officer1").await,
        node.person("officer2").await,
        node.person("officer3").await,
    ];
    let alice = node.person("alice").await;
    let h = Http {
        node: &node,
        http: reqwest::Client::new(),
    };
    for o in &officers {
        node.admin(&["compliance", "officer", "add", o.address()])
            .await
            .unwrap();
    }
    let now = SystemTime::now();
    let setup = |split: &Split| Some(serde_json::to_value(&split.setup).unwrap());
    let first = split_2_of_3(&officers, now);
    let _: CustodyView = h
        .ok("POST", "/admin/compliance/custody", &admin, setup(&first))
        .await;
    let work = tempfile::tempdir().unwrap();
    let sent = alice
        .send(
            &Outgoing {
                to: vec!["alice@a.test".into()],
                subject: "s".into(),
                body: "b".into(),
                attachments: vec![],
                pickup_kdf: None,
            },
            work.path(),
        )
        .await
        .unwrap();
    let (request_key, _) = generate_user_key("request@a.test", None, now).unwrap();
    let new_case = |case_ref: &str| {
        Some(serde_json::json!({
            "case_ref": case_ref,
            "message_ids": [sent.message_id],
            "request_key": public(&request_key),
        }))
    };
    // Malformed requests are refused and open nothing.
    for (body, code) in [
        (
            serde_json::json!({"case_ref": "", "message_ids": [sent.message_id], "request_key": public(&request_key)}),
            "invalid_case",
        ),
        (
            serde_json::json!({"case_ref": "x", "message_ids": ["0".repeat(32)], "request_key": public(&request_key)}),
            "invalid_case",
        ),
        (
            serde_json::json!({"case_ref": "x", "message_ids": [sent.message_id], "request_key": "not a key"}),
            "invalid_case",
        ),
    ] {
        h.expect(
            "POST",
            "/compliance/cases",
            &officers[0],
            Some(body),
            (400, code),
        )
        .await;
    }
    assert_eq!(node.count("SELECT count(*) FROM compliance_cases"), 0);

    // Officer 3 refuses officer 1's case: it is closed for everyone.
    let case: CaseView = h
        .ok(
            "POST",
            "/compliance/cases",
            &officers[0],
            new_case("Case A"),
        )
        .await;
    let id = case.id;
    h.expect(
        "POST",
        &format!("/compliance/cases/{id}/refuse"),
        &officers[0],
        None,
        (403, "own_case"),
    )
    .await;
    let refused: CaseView = h
        .ok(
            "POST",
            &format!("/compliance/cases/{id}/refuse"),
            &officers[2],
            None,
        )
        .await;
    assert_eq!(refused.state, "refused");
    assert_eq!(refused.refused_by.as_deref(), Some("officer3@a.test"));
    let approval = Some(serde_json::json!({ "share": "x" }));
    h.expect(
        "POST",
        &format!("/compliance/cases/{id}/approve"),
        &officers[1],
        approval.clone(),
        (409, "case_closed"),
    )
    .await;
    h.expect(
        "GET",
        &format!("/compliance/cases/{id}/release"),
        &officers[0],
        None,
        (409, "case_closed"),
    )
    .await;

    // A pending case does not survive a new split: its shares would be of the old key.
    let case: CaseView = h
        .ok(
            "POST",
            "/compliance/cases",
            &officers[0],
            new_case("Case B"),
        )
        .await;
    let second = split_2_of_3(&officers, now);
    let _: CustodyView = h
        .ok("POST", "/admin/compliance/custody", &admin, setup(&second))
        .await;
    h.expect(
        "POST",
        &format!("/compliance/cases/{}/approve", case.id),
        &officers[1],
        approval.clone(),
        (409, "case_closed"),
    )
    .await;
    let state: String = node
        .db()
        .query_row(
            "SELECT state FROM compliance_cases WHERE id = ?1",
            [case.id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(state, "superseded");

    // An officer removed by the admin can no longer act.
    let case: CaseView = h
        .ok(
            "POST",
            "/compliance/cases",
            &officers[0],
            new_case("Case C"),
        )
        .await;
    node.admin(&["compliance", "officer", "remove", "officer2@a.test"])
        .await
        .unwrap();
    h.expect(
        "POST",
        &format!("/compliance/cases/{}/approve", case.id),
        &officers[1],
        approval,
        (403, "not_officer"),
    )
    .await;
    assert_eq!(node.count("SELECT count(*) FROM compliance_approvals"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_three_officers_open_a_message_and_one_alone_cannot() {
    let node = TestNode::spawn("a.test").await.unwrap();
    let admin = node
        .enrolled("admin@a.test", &password_of("admin"), KdfParams::MIN, true)
        .await
        .unwrap();
    let officers = [
        node.person("officer1").await,
        node.person("officer2").await,
        node.person("officer3").await,
    ];
    let alice = node.person("alice").await;
    let carol = node.person("carol").await;
    let h = Http {
        node: &node,
        http: reqwest::Client::new(),
    };

    // Officers: two through the admin command, one through the console API.
    node.admin(&["compliance", "officer", "add", "officer1@a.test"])
        .await
        .unwrap();
    node.admin(&["compliance", "officer", "add", "officer2@a.test"])
        .await
        .unwrap();
    let r = h
        .send(
            "PUT",
            "/admin/compliance/officers/officer3@a.test",
            &admin,
            None,
        )
        .await;
    assert_eq!(r.status().as_u16(), 204);
    // Only an admin makes officers.
    h.expect(
        "PUT",
        "/admin/compliance/officers/carol@a.test",
        &carol,
        None,
        (403, "not_admin"),
    )
    .await;

    // The admin's side: make the key, lock it under S, split S 2-of-3, wrap a share each.
    let now = SystemTime::now();
    let Split {
        key,
        s,
        shares,
        setup,
    } = split_2_of_3(&officers, now);
    // A share wrapped for someone else than its officer is refused, and nothing is stored.
    let mut swapped = setup.clone();
    swapped.shares.swap(0, 1);
    swapped.shares[0].address = "officer1@a.test".into();
    swapped.shares[1].address = "officer2@a.test".into();
    let (status, code) = h
        .refused(
            "POST",
            "/admin/compliance/custody",
            &admin,
            Some(serde_json::to_value(&swapped).unwrap()),
        )
        .await;
    assert_eq!((status, code.as_str()), (400, "invalid_custody"));
    // An unlocked key is refused.
    let mut unlocked = setup.clone();
    unlocked.locked_key = String::from_utf8(
        sequoia_openpgp::serialize::SerializeInto::to_vec(&key.as_tsk().armored()).unwrap(),
    )
    .unwrap();
    h.expect(
        "POST",
        "/admin/compliance/custody",
        &admin,
        Some(serde_json::to_value(&unlocked).unwrap()),
        (400, "invalid_custody"),
    )
    .await;
    assert_eq!(node.count("SELECT count(*) FROM compliance_custody"), 0);
    let view: CustodyView = h
        .ok(
            "POST",
            "/admin/compliance/custody",
            &admin,
            Some(serde_json::to_value(&setup).unwrap()),
        )
        .await;
    assert_eq!(view.threshold, 2);
    assert_eq!(view.officers.len(), 3);
    assert_eq!(view.fingerprint, key.fingerprint().to_hex());
    // The node's disk holds neither S nor any share in usable form.
    assert!(files_containing(&node.data(), &s[..]).is_empty());
    for share in &shares {
        assert!(files_containing(&node.data(), &share[..]).is_empty());
    }

    // alice writes bob; her client adds the compliance key as a recipient.
    let work = tempfile::tempdir().unwrap();
    let bob = node.person("bob").await;
    let (envelope, mut certs) = alice.envelope(&["bob@a.test".into()]).await.unwrap();
    certs.push(sealpost_proto::crypto::cert_from_armored(&view.cert).unwrap());
    let sent = alice
        .send_enveloped(
            &Outgoing {
                to: vec!["bob@a.test".into()],
                subject: "Quarterly numbers".into(),
                body: "the numbers are in".into(),
                attachments: vec![],
                pickup_kdf: None,
            },
            envelope,
            certs,
            work.path(),
        )
        .await
        .unwrap()
        .0;
    let mid = sent.message_id;

    // Officer 1 requests access with a request key made for this case.
    let (request_key, _) = generate_user_key("request@a.test", None, now).unwrap();
    let case: CaseView = h
        .ok(
            "POST",
            "/compliance/cases",
            &officers[0],
            Some(serde_json::json!({
                "case_ref": "Court order 2026-17",
                "message_ids": [mid],
                "request_key": public(&request_key),
            })),
        )
        .await;
    assert_eq!(case.state, "pending");
    assert_eq!(case.approvals_needed, 1);
    let id = case.id;

    // Officer 1 alone: no release, no message.
    h.expect(
        "GET",
        &format!("/compliance/cases/{id}/release"),
        &officers[0],
        None,
        (409, "not_enough_approvals"),
    )
    .await;
    h.expect(
        "GET",
        &format!("/compliance/cases/{id}/messages/{mid}"),
        &officers[0],
        None,
        (409, "case_closed"),
    )
    .await;
    assert!(log_seqs(&node, "compliance.shares_released").is_empty());

    // Officer 2's share for the request key.
    let o2: CustodyView = h.ok("GET", "/compliance/custody", &officers[1], None).await;
    let o2_share = custody::unwrap_share(
        o2.my_share.as_deref().unwrap(),
        officers[1].unlocked_cert(),
        now,
    )
    .unwrap();
    let rewrapped = custody::wrap_share(&o2_share, &request_key, now).unwrap();
    let approval = serde_json::json!({ "share": rewrapped });

    // A non-officer and the requester cannot approve; nothing changes.
    let log_before = node.count("SELECT count(*) FROM txlog");
    h.expect(
        "POST",
        &format!("/compliance/cases/{id}/approve"),
        &carol,
        Some(approval.clone()),
        (403, "not_officer"),
    )
    .await;
    let own =
        custody::unwrap_share(&setup.shares[0].share, officers[0].unlocked_cert(), now).unwrap();
    h.expect(
        "POST",
        &format!("/compliance/cases/{id}/approve"),
        &officers[0],
        Some(serde_json::json!({ "share": custody::wrap_share(&own, &request_key, now).unwrap() })),
        (403, "own_case"),
    )
    .await;
    // A share not encrypted to the request key is refused.
    h.expect(
        "POST",
        &format!("/compliance/cases/{id}/approve"),
        &officers[1],
        Some(serde_json::json!({ "share": o2.my_share.clone().unwrap() })),
        (400, "invalid_case"),
    )
    .await;
    assert_eq!(node.count("SELECT count(*) FROM compliance_approvals"), 0);
    assert_eq!(node.count("SELECT count(*) FROM txlog"), log_before);
    // Nor can a non-officer see anything.
    for path in [
        "/compliance/cases".to_owned(),
        "/compliance/custody".to_owned(),
        format!("/compliance/cases/{id}/release"),
        "/compliance/archive?sender=alice@a.test".to_owned(),
    ] {
        h.expect("GET", &path, &carol, None, (403, "not_officer"))
            .await;
    }

    // Officer 2 approves, once.
    let approved: CaseView = h
        .ok(
            "POST",
            &format!("/compliance/cases/{id}/approve"),
            &officers[1],
            Some(approval.clone()),
        )
        .await;
    assert_eq!(approved.approved_by, vec!["officer2@a.test".to_owned()]);
    h.expect(
        "POST",
        &format!("/compliance/cases/{id}/approve"),
        &officers[1],
        Some(approval),
        (409, "already_approved"),
    )
    .await;
    // Only the requester gets the release.
    h.expect(
        "GET",
        &format!("/compliance/cases/{id}/release"),
        &officers[2],
        None,
        (403, "not_requester"),
    )
    .await;

    // Officer 1's release: their own share and officer 2's meet only here.
    let release: CaseRelease = h
        .ok(
            "GET",
            &format!("/compliance/cases/{id}/release"),
            &officers[0],
            None,
        )
        .await;
    assert_eq!(release.shares.len(), 1);
    let own = custody::unwrap_share(&release.own_share, officers[0].unlocked_cert(), now).unwrap();
    let theirs = custody::unwrap_share(&release.shares[0].share, &request_key, now).unwrap();
    let s2 = shamir::combine(&[&own[..], &theirs[..]]).unwrap();
    let unlocked = custody::unlock_key(&release.locked_key, &s2).unwrap();
    assert_eq!(unlocked.fingerprint(), key.fingerprint());
    // A changed share gives a wrong S, which the locked key refuses.
    let mut changed = theirs.to_vec();
    changed[3] ^= 0x01;
    let wrong = shamir::combine(&[&own[..], &changed[..]]).unwrap();
    assert!(custody::unlock_key(&release.locked_key, &wrong).is_err());

    // The log: request and approval before the release.
    let requested = log_seqs(&node, "compliance.case_requested");
    let approvals = log_seqs(&node, "compliance.case_approved");
    let released = log_seqs(&node, "compliance.shares_released");
    assert_eq!(
        (requested.len(), approvals.len(), released.len()),
        (1, 1, 1)
    );
    assert!(requested[0] < approvals[0] && approvals[0] < released[0]);

    // Officer 1 reads alice's message with the unlocked key; the read is logged.
    let r = h
        .send(
            "GET",
            &format!("/compliance/cases/{id}/messages/{mid}"),
            &officers[0],
            None,
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let ciphertext = r.bytes().await.unwrap();
    let mut plain = Vec::new();
    crypto::open(
        &unlocked,
        std::slice::from_ref(alice.unlocked_cert()),
        &StandardPolicy::new(),
        SystemTime::now(),
        &mut std::io::Cursor::new(ciphertext.to_vec()),
        &mut plain,
    )
    .unwrap();
    let head: Head = serde_json::from_slice(&plain).unwrap();
    assert_eq!(head.body, "the numbers are in");
    let opened = log_seqs(&node, "compliance.message_opened");
    assert_eq!(opened.len(), 1);
    assert!(released[0] < opened[0]);
    // A message outside the case is not served.
    h.expect(
        "GET",
        &format!("/compliance/cases/{id}/messages/{}", "0".repeat(32)),
        &officers[0],
        None,
        (404, "not_in_case"),
    )
    .await;

    // The envelope-data search finds alice's message, without its subject.
    let found: Vec<serde_json::Value> = h
        .ok(
            "GET",
            "/compliance/archive?sender=alice@a.test",
            &officers[1],
            None,
        )
        .await;
    assert!(found.iter().any(|m| m["message_id"] == mid.as_str()));
    assert!(!serde_json::to_string(&found).unwrap().contains("Quarterly"));

    // The access report: every step in log order, each read per message, with log hashes.
    let report: CaseReport = h
        .ok(
            "GET",
            &format!("/compliance/cases/{id}/report"),
            &officers[2],
            None,
        )
        .await;
    let kinds: Vec<&str> = report.entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "compliance.case_requested",
            "compliance.case_approved",
            "compliance.shares_released",
            "compliance.message_opened",
        ]
    );
    assert!(report.entries.windows(2).all(|w| w[0].seq < w[1].seq));
    let db_hash: Vec<u8> = node
        .db()
        .query_row(
            "SELECT hash FROM txlog WHERE seq = ?1",
            [report.entries[0].seq],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(report.entries[0].hash, hex::encode(db_hash));
    assert_eq!(report.messages.len(), 1);
    assert_eq!(report.messages[0].opened.len(), 1);
    assert_eq!(report.messages[0].opened[0].officer, "officer1@a.test");
    assert_eq!(report.case.case_ref, "Court order 2026-17");
    h.expect(
        "GET",
        &format!("/compliance/cases/{id}/report"),
        &carol,
        None,
        (403, "not_officer"),
    )
    .await;

    // alice and bob see that their message was opened for compliance; carol sees nothing.
    for who in [&alice, &bob] {
        let opens: Vec<ComplianceOpen> = h
            .ok(
                "GET",
                &format!("/messages/{mid}/compliance-opens"),
                who,
                None,
            )
            .await;
        assert_eq!(opens.len(), 1, "{}", who.address());
    }
    assert_eq!(
        h.refused(
            "GET",
            &format!("/messages/{mid}/compliance-opens"),
            &carol,
            None
        )
        .await
        .0,
        404
    );

    // The transaction log still verifies.
    node.admin(&["log", "verify"]).await.unwrap();
}
