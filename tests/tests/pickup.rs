//! Pickup delivery end to end (docs/pickup.md), against a real node and a real Postfix on
//! loopback: alice sends to bob (local) and carol@outside.test (pickup) with a 2 MiB
//! attachment; carol's notification arrives in her Maildir; opening changes nothing; five wrong
//! unlock codes lock the pickup (the sixth is refused even with the right code, alice sees
//! `locked`); alice's new code opens it and carol decrypts byte-identical; withdrawn and expired
//! pickups are gone (their key material shredded); the per-IP limit holds across pickups; a
//! pickup session reaches nothing else; the data directory holds no plaintext and no code.

use std::time::Duration;

use sealpost::config::RelaySecurity;
use sealpost::storage::PickupStore;
use sealpost_client::Outgoing;
use sealpost_client::pickup::{self, PickupClient};
use sealpost_proto::{ErrorBody, KdfParams, MessageResponse};
use sealpost_tests::smtp::{Postfix, parse_mail};
use sealpost_tests::{TestNode, files_containing, wait_for};

fn outgoing(to: &[&str], body: &str, attachments: Vec<std::path::PathBuf>) -> Outgoing {
    Outgoing {
        to: to.iter().map(|s| s.to_string()).collect(),
        subject: "Your statement".into(),
        body: body.into(),
        attachments,
        pickup_kdf: Some(KdfParams::MIN),
    }
}

/// The API error a client call ended with.
fn code(e: sealpost_client::ClientError) -> String {
    e.code().unwrap_or("none").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_recipients_pick_up_by_link_and_unlock_code() {
    let postfix = Postfix::start(&["carol@outside.test"]).await.unwrap();
    let port = postfix.port;
    let node = TestNode::spawn_with("alpha.test", move |c| {
        c.federation.enabled = false;
        c.relay.host = "127.0.0.1".into();
        c.relay.port = port;
        c.relay.security = RelaySecurity::None;
        c.pickup.per_ip_per_minute = 60;
    })
    .await
    .unwrap();
    let alice = node.person("alice").await;
    let bob = node.person("bob").await;
    let work = tempfile::tempdir().unwrap();
    // Incompressible bytes (xorshift), so no run of them could hide in a compressed file.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let attachment: Vec<u8> = (0..2 * 1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let file = work.path().join("statement.bin");
    std::fs::write(&file, &attachment).unwrap();
    let body = "PLAINTEXT-PICKUP-BODY-7f3a: your balance is 1,234.56";

    let (resp, issued) = alice
        .send_all(
            &outgoing(&["bob@alpha.test", "carol@outside.test"], body, vec![file]),
            work.path(),
        )
        .await
        .unwrap();
    let id = resp.message_id.clone();
    let states: Vec<(&str, &str)> = resp
        .recipients
        .iter()
        .map(|r| (r.address.as_str(), r.state.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("bob@alpha.test", "delivered"),
            ("carol@outside.test", "pickup")
        ]
    );
    assert_eq!(issued.len(), 1);
    let first_muc = issued[0].muc.clone().unwrap();
    let link = issued[0].link.clone().unwrap();
    assert!(link.starts_with(&format!("{}/pickup#", node.url)), "{link}");
    // Bob reads it as always.
    let read = bob.read(&id, None, work.path()).await.unwrap();
    assert_eq!(read.body, body);

    // The notification goes through Postfix into carol's Maildir, with the same link.
    let files = wait_for(Duration::from_secs(30), async || {
        let f = postfix.delivered("carol@outside.test");
        (!f.is_empty()).then_some(f)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", postfix.log()));
    let mail = parse_mail(&files[0]).unwrap();
    let text = mail["text"].as_str().unwrap();
    let mailed = text
        .split_whitespace()
        .find(|w| w.contains("/pickup#"))
        .unwrap()
        .trim_end_matches(['.', ',', ')', '>'])
        .to_owned();
    assert_eq!(mailed, link);
    assert!(!text.contains(body) && !text.contains("Your statement"));

    let http = reqwest::Client::new();
    let api = |p: &str| format!("{}/api/v1{p}", node.url);
    // Alice's view of one of her sent messages.
    let sent = async |id: &str| -> MessageResponse {
        http.get(api(&format!("/messages/{id}")))
            .bearer_auth(alice.token())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let sender_state = async |address: &str| -> String {
        sent(&id)
            .await
            .item
            .delivery
            .iter()
            .find(|d| d.address == address)
            .map(|d| d.state.clone())
            .unwrap_or_default()
    };
    wait_for(Duration::from_secs(20), async || {
        (sender_state("carol@outside.test").await == "notified").then_some(())
    })
    .await
    .unwrap();

    // Opening changes nothing: GET /pickup (what a mail scanner fetches) and `open`.
    let snapshot = || {
        (
            node.count("SELECT count(*) FROM txlog"),
            node.count("SELECT count(*) FROM pickup_sessions"),
            node.count("SELECT failures + coalesce(opened_at, 0) FROM pickups"),
        )
    };
    let before = snapshot();
    let page = http
        .get(format!("{}/pickup", node.url))
        .send()
        .await
        .unwrap();
    assert!(page.headers().contains_key("content-security-policy"));
    let carol = PickupClient::new(&link).unwrap();
    let info = carol.open().await.unwrap();
    assert_eq!(
        (
            info.state.as_str(),
            info.sender.as_str(),
            info.attempts_left
        ),
        ("open", "alice@alpha.test", 5)
    );
    assert_eq!(snapshot(), before);
    assert_eq!(sender_state("carol@outside.test").await, "notified");

    // Five wrong codes lock it; the sixth attempt is refused even with the right code.
    let token = link.split('#').nth(1).unwrap().to_owned();
    for left in (0..5).rev() {
        // The first wrong code through the client (it derives and sends the verifier), the
        // others as raw requests, whose answer carries attempts_left.
        if left == 4 {
            let e = carol.unlock(&pickup::generate_muc()).await.err().unwrap();
            assert_eq!(code(e), "wrong_unlock_code");
            continue;
        }
        let r = http
            .post(api("/pickup/unlock"))
            .json(&serde_json::json!({
                "token": token,
                "verifier": base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    [left as u8 + 1; 32],
                ),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
        let e: ErrorBody = r.json().await.unwrap();
        assert_eq!(
            (e.code.as_str(), e.attempts_left),
            ("wrong_unlock_code", Some(left))
        );
    }
    let e = carol.unlock(&first_muc).await.err().unwrap();
    assert_eq!(code(e), "pickup_locked");
    assert_eq!(sender_state("carol@outside.test").await, "locked");

    // Alice issues a new code for the same pickup key; the link stays.
    let m = sent(&id).await;
    assert_eq!(m.pickups.len(), 1);
    let (relock, new_muc) =
        pickup::relock_request(alice.unlocked_cert(), &m.pickups[0], &KdfParams::MIN).unwrap();
    let r = http
        .post(api(&format!("/messages/{id}/pickups/relock")))
        .bearer_auth(alice.token())
        .json(&relock)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204, "{}", r.text().await.unwrap());
    assert_eq!(sender_state("carol@outside.test").await, "notified");
    assert_eq!(
        code(carol.unlock(&first_muc).await.err().unwrap()),
        "wrong_unlock_code"
    );
    // Read leniently: lower case, spaces.
    let typed = pickup::display_muc(&new_muc)
        .to_lowercase()
        .replace('-', " ");
    let unlocked = carol.unlock(&typed).await.unwrap();
    assert_eq!(sender_state("carol@outside.test").await, "opened");
    let got = carol.read(&unlocked).await.unwrap();
    assert_eq!(got.head.body, body);
    assert_eq!(got.attachments.len(), 1);
    assert!(got.attachments[0].1 == attachment, "attachment differs");
    assert_eq!(sender_state("carol@outside.test").await, "read");

    // The pickup session reaches its own message only, and no user route.
    let session = &unlocked.info.session;
    let status = async |method: reqwest::Method, path: &str, token: &str| {
        http.request(method, api(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(
        status(reqwest::Method::GET, "/pickup/parts/9", session).await,
        404
    );
    for path in [
        "/me".to_owned(),
        "/mailbox/inbox".to_owned(),
        format!("/messages/{id}"),
        format!("/messages/{id}/parts/0"),
    ] {
        assert_eq!(
            status(reqwest::Method::GET, &path, session).await,
            401,
            "{path}"
        );
    }
    // A user session is no pickup session.
    assert_eq!(
        status(reqwest::Method::GET, "/pickup/parts/0", bob.token()).await,
        401
    );
    // A read pickup cannot be withdrawn.
    let withdraw = async |address: &str, msg: &str| {
        http.post(api(&format!("/messages/{msg}/pickups/withdraw")))
            .bearer_auth(alice.token())
            .json(&serde_json::json!({ "address": address }))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(withdraw("carol@outside.test", &id).await, 409);
    // Bob cannot withdraw alice's pickup.
    let r = http
        .post(api(&format!("/messages/{id}/pickups/withdraw")))
        .bearer_auth(bob.token())
        .json(&serde_json::json!({ "address": "carol@outside.test" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // Withdrawn: the page says so and the locked key is gone.
    let (w, wi) = alice
        .send_all(
            &outgoing(&["dave@outside.test"], "for dave", vec![]),
            work.path(),
        )
        .await
        .unwrap();
    let dave = PickupClient::new(wi[0].link.as_deref().unwrap()).unwrap();
    dave.open().await.unwrap();
    // A piece of the locked key's text, to look for in every file once it is shredded.
    let key_piece = |records: Vec<sealpost::storage::pickup::PickupRecord>| {
        let key = records[0]
            .locked_key
            .clone()
            .expect("a live pickup's locked key");
        // A line of the secret part: the public key and its signatures are also in the
        // (public, kept) certificate.
        let line = key
            .lines()
            .find(|l| l.len() > 60 && !records[0].cert.contains(l))
            .expect("a line of secret key material");
        line.as_bytes().to_vec()
    };
    let dave_key = key_piece(node.store.pickups_of(&w.message_id).await.unwrap());
    assert!(
        !files_containing(&node.data(), &dave_key).is_empty(),
        "the piece is findable"
    );
    assert_eq!(withdraw("dave@outside.test", &w.message_id).await, 204);
    assert_eq!(code(dave.open().await.err().unwrap()), "pickup_withdrawn");
    assert_eq!(
        code(
            dave.unlock(wi[0].muc.as_deref().unwrap())
                .await
                .err()
                .unwrap()
        ),
        "pickup_withdrawn"
    );
    let shredded = |address: &str| {
        node.count(&format!(
            "SELECT count(*) FROM pickups WHERE address = '{address}' AND locked_key IS NULL
             AND verifier_hash IS NULL AND key_for_sender IS NULL"
        ))
    };
    assert_eq!(shredded("dave@outside.test"), 1);
    // Shredded on disk too: not in the database's free space, not in an older WAL frame.
    assert_eq!(
        files_containing(&node.data(), &dave_key),
        Vec::<std::path::PathBuf>::new()
    );

    // Expired (time moved through the store's sweep): the same.
    let (x, xi) = alice
        .send_all(
            &outgoing(&["erin@outside.test"], "for erin", vec![]),
            work.path(),
        )
        .await
        .unwrap();
    let erin = PickupClient::new(xi[0].link.as_deref().unwrap()).unwrap();
    erin.open().await.unwrap();
    let erin_key = key_piece(node.store.pickups_of(&x.message_id).await.unwrap());
    let n = node
        .store
        .expire_pickups(sealpost::now() + 31 * 86_400)
        .await
        .unwrap()
        .0
        .len();
    assert_eq!(n, 2, "erin's pickup and carol's (read, still open) expire");
    assert_eq!(code(erin.open().await.err().unwrap()), "pickup_expired");
    assert_eq!(shredded("erin@outside.test"), 1);
    assert_eq!(
        files_containing(&node.data(), &erin_key),
        Vec::<std::path::PathBuf>::new()
    );
    let m = sent(&x.message_id).await;
    assert_eq!(m.item.delivery[0].state, "expired");

    // Evidence in the log, with no secret in it.
    let kinds: Vec<String> = {
        let db = node.db();
        let mut stmt = db
            .prepare("SELECT kind FROM txlog WHERE kind LIKE 'pickup.%' ORDER BY seq")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    for k in [
        "pickup.created",
        "pickup.notified",
        "pickup.wrong_muc",
        "pickup.locked",
        "pickup.relocked",
        "pickup.opened",
        "pickup.unlocked",
        "pickup.read",
        "pickup.withdrawn",
        "pickup.expired",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} not logged: {kinds:?}");
    }

    // The per-IP limit holds across pickups: once carol's link is refused, dave's is too.
    let mut refused = false;
    for _ in 0..100 {
        match carol.open().await {
            Err(e) if e.code() == Some("too_many_attempts") => {
                refused = true;
                break;
            }
            _ => {}
        }
    }
    assert!(refused, "the per-IP limit never answered");
    assert_eq!(code(dave.open().await.err().unwrap()), "too_many_attempts");

    // No plaintext, attachment bytes or unlock code anywhere under the data directory.
    let data = node.data();
    let mut needles: Vec<Vec<u8>> = vec![
        body.as_bytes().to_vec(),
        b"for dave".to_vec(),
        attachment[1000..1064].to_vec(),
    ];
    for muc in [
        &first_muc,
        &new_muc,
        wi[0].muc.as_ref().unwrap(),
        xi[0].muc.as_ref().unwrap(),
    ] {
        needles.push(muc.as_bytes().to_vec());
        needles.push(pickup::display_muc(muc).into_bytes());
    }
    for needle in needles {
        let found = files_containing(&data, &needle);
        assert!(
            found.is_empty(),
            "{:?} found in {found:?}",
            String::from_utf8_lossy(&needle)
        );
    }
}
