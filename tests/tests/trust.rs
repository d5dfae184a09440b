//! The web of trust through a real node: verdicts at send time, the admin revoking a leaver's
//! certification, personal certification and retraction, and key revocation.

use sealpost_client::{ClientError, Outgoing};
use sealpost_tests::alice_and_bob;

fn level(t: &sealpost_proto::TrustResponse) -> &str {
    &t.keys[0].level
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_paths_leaver_revocation_personal_certification_and_key_revocation() {
    let (node, alice, bob) = alice_and_bob().await;
    let work = tempfile::tempdir().unwrap();
    let note = |to: &str| Outgoing {
        to: vec![to.to_owned()],
        subject: "hello".into(),
        body: "b".into(),
        attachments: vec![],
        pickup_kdf: None,
    };

    // Through the organisation CA: full, and the path says so.
    let t = alice.trust("bob@a.test").await.unwrap();
    assert_eq!(t.keys.len(), 1);
    assert_eq!(level(&t), "full");
    assert_eq!(t.keys[0].fingerprint, bob.fingerprint());
    let path = t.keys[0].explanation.join("\n");
    assert!(
        path.contains("you → ")
            && path.contains("(your organisation)")
            && path.contains("bob@a.test: full (120)"),
        "{path}"
    );
    alice.send(&note("bob@a.test"), work.path()).await.unwrap();

    // The admin revokes the CA's certification of bob (a leaver): no path any more, and
    // alice's client refuses to write to him, saying why.
    node.admin(&["user", "revoke", "bob@a.test"]).await.unwrap();
    let t = alice.trust("bob@a.test").await.unwrap();
    assert_eq!(level(&t), "none", "{:?}", t.keys[0]);
    assert_eq!(t.keys[0].why_not.as_deref(), Some("no_path"));
    let e = alice
        .send(&note("bob@a.test"), work.path())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&e, ClientError::Untrusted { address, .. } if address == "bob@a.test"),
        "{e}"
    );
    assert_eq!(node.count("SELECT COUNT(*) FROM messages"), 1);

    // Alice compares bob's fingerprint with him and certifies his key herself.
    let wrong = "0000 1111 2222 3333 4444 5555 6666 7777 8888 9999";
    let e = alice.certify("bob@a.test", wrong).await.err().unwrap();
    assert!(matches!(e, ClientError::Unverified(_)), "{e}");
    let spoken = sealpost_proto::crypto::grouped(&bob.fingerprint());
    let r = alice.certify("bob@a.test", &spoken).await.unwrap();
    assert_eq!(r.added, 1);
    let t = alice.trust("bob@a.test").await.unwrap();
    assert_eq!(level(&t), "full");
    let path = t.keys[0].explanation.join("\n");
    assert!(
        path.contains("you certified"),
        "personal path shown: {path}"
    );
    alice.send(&note("bob@a.test"), work.path()).await.unwrap();
    // Bob's view of alice is unchanged by alice's certification of him.
    assert_eq!(level(&bob.trust("alice@a.test").await.unwrap()), "full");

    // Retracting the certification removes the personal path.
    assert_eq!(alice.retract("bob@a.test").await.unwrap(), 1);
    assert_eq!(level(&alice.trust("bob@a.test").await.unwrap()), "none");
    alice.certify("bob@a.test", &spoken).await.unwrap();

    // Bob revokes his own key: alice's envelope request says "revoked", her client refuses,
    // and the node refuses a submission that ignores the verdict.
    bob.revoke_key("left the organisation").await.unwrap();
    let t = alice.trust("bob@a.test").await.unwrap();
    assert_eq!(t.keys[0].why_not.as_deref(), Some("revoked"));
    let e = alice
        .send(&note("bob@a.test"), work.path())
        .await
        .err()
        .unwrap();
    match &e {
        ClientError::Untrusted { verdict, .. } => assert!(verdict.is_revoked()),
        other => panic!("expected a refusal, got {other}"),
    }
    assert!(e.to_string().contains("revoked"), "{e}");
    // A client that ignores the verdict is refused by the node itself.
    let env: sealpost_proto::EnvelopeResponse = reqwest::Client::new()
        .post(format!("{}/api/v1/envelopes", node.url))
        .bearer_auth(alice.token())
        .json(&serde_json::json!({ "to": ["bob@a.test"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(env.recipients[0].verdict.is_revoked());
    let bob_public = bob.unlocked_cert().clone().strip_secret_key_material();
    let sealed = alice.seal_text(&env, &[bob_public], "s", "b").unwrap();
    let e = alice.submit(&sealed.request).await.err().unwrap();
    assert_eq!(e.code(), Some("recipient_revoked"), "{e}");
    assert!(node.count("SELECT COUNT(*) FROM txlog WHERE kind = 'key.revoked'") >= 1);
    assert_eq!(
        node.count("SELECT COUNT(*) FROM txlog WHERE kind = 'ca.certification_revoked'"),
        1
    );
    assert!(node.count("SELECT COUNT(*) FROM txlog WHERE kind = 'certification'") >= 2);
}
