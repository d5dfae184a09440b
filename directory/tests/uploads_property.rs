//! Property (issue 15, hardening): no sequence of `POST /pks/add` uploads by one user changes
//! what the directory serves for another user's address.
//!
//! Bob holds a session for his own key and tries, in any order, everything an upload can
//! carry: new user IDs for Alice's address (spelled in several ways), for his own, for a third
//! party's, without an address; his certification of Alice's key (sent with his session, and
//! as an update of his own key); revocations of his user IDs; keys the directory does not hold;
//! garbage. Alice's answers (VKS by e-mail, WKD direct and advanced, HKP get) stay byte for
//! byte what they were.

mod common;

use std::sync::LazyLock;

use common::*;
use proptest::prelude::*;
use sealpost_directory::wkd_hash;
use sequoia_openpgp::Cert;
use sequoia_openpgp::packet::signature::SignatureBuilder;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::types::{ReasonForRevocation, SignatureType};

struct Keys {
    ca: Cert,
    alice: Cert,
    bob: Cert,
    carol: Cert,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys {
    ca: ca_key(DOMAIN),
    alice: user_key("Alice <alice@example.org>"),
    bob: user_key("Bob <bob@example.org>"),
    carol: user_key("Carol <carol@example.org>"),
});

#[derive(Debug, Clone)]
enum Upload {
    /// Bob's key with a new self-signed user ID.
    NewUserId(&'static str),
    /// Bob's key with his (first) user ID revoked.
    RevokeOwnUserId,
    /// Alice's key with Bob's certification, with Bob's session.
    CertifyAlice,
    /// Alice's user ID, self-signed by Bob, on Bob's key (public parts only).
    AlicesUserIdOnBobsKey,
    /// A key the directory does not hold, with Alice's address.
    UnknownKeyForAlice,
    /// Bob's own key unchanged, as a secret key.
    OwnKeyAsSecret,
    /// Bytes that are no certificate.
    Garbage(Vec<u8>),
}

const USER_IDS: &[&str] = &[
    "Alice <alice@example.org>",
    "alice@example.org",
    "Alice <ALICE@Example.ORG>",
    "<alice@example.org>",
    "Alice (alice@example.org)",
    "Alice <alice@example.org",
    "Robert <bob@example.org>",
    "Carol <carol@example.org>",
    "Bob Builder",
];

fn upload() -> impl Strategy<Value = Upload> {
    prop_oneof![
        4 => prop::sample::select(USER_IDS).prop_map(Upload::NewUserId),
        1 => Just(Upload::RevokeOwnUserId),
        1 => Just(Upload::CertifyAlice),
        2 => Just(Upload::AlicesUserIdOnBobsKey),
        1 => Just(Upload::UnknownKeyForAlice),
        1 => Just(Upload::OwnKeyAsSecret),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Upload::Garbage),
    ]
}

fn signer(cert: &Cert) -> sequoia_openpgp::crypto::KeyPair {
    cert.primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .unwrap()
        .into_keypair()
        .unwrap()
}

fn body(u: &Upload) -> String {
    let k = &*KEYS;
    let cert = match u {
        Upload::NewUserId(uid) => with_user_id(&k.bob, uid),
        Upload::RevokeOwnUserId => {
            let uid = k.bob.userids().next().unwrap().userid().clone();
            let rev = uid
                .bind(
                    &mut signer(&k.bob),
                    &k.bob,
                    SignatureBuilder::new(SignatureType::CertificationRevocation)
                        .set_reason_for_revocation(ReasonForRevocation::UIDRetired, b"gone")
                        .unwrap(),
                )
                .unwrap();
            k.bob
                .clone()
                .insert_packets(vec![sequoia_openpgp::Packet::from(uid), rev.into()])
                .unwrap()
                .0
        }
        Upload::CertifyAlice => certify(&k.alice, &k.bob),
        Upload::AlicesUserIdOnBobsKey => {
            with_user_id(&k.bob, "Alice <alice@example.org>").strip_secret_key_material()
        }
        Upload::UnknownKeyForAlice => with_user_id(&k.carol, "Alice <alice@example.org>"),
        Upload::OwnKeyAsSecret => return keytext_form(&armored_tsk(&k.bob)),
        Upload::Garbage(bytes) => return keytext_form(&String::from_utf8_lossy(bytes)),
    };
    keytext_form(&armored(&cert))
}

/// What the directory serves for Alice's address, by every protocol.
async fn alices_answers(http: &reqwest::Client, base: &str) -> Vec<(u16, Vec<u8>)> {
    let hash = wkd_hash("alice");
    let mut out = Vec::new();
    for path in [
        "/vks/v1/by-email/alice%40example.org".to_owned(),
        format!("/.well-known/openpgpkey/hu/{hash}?l=alice"),
        format!("/.well-known/openpgpkey/example.org/hu/{hash}?l=alice"),
        "/pks/lookup?op=get&search=alice%40example.org".to_owned(),
    ] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        out.push((r.status().as_u16(), r.bytes().await.unwrap().to_vec()));
    }
    out
}

/// Status and served fingerprints of each answer, for a readable failure.
fn summary(answers: &[(u16, Vec<u8>)]) -> Vec<(u16, Vec<String>)> {
    answers
        .iter()
        .map(|(s, b)| {
            let fprs = sequoia_openpgp::cert::CertParser::from_bytes(b)
                .map(|p| p.flatten().map(|c| c.fingerprint().to_hex()).collect())
                .unwrap_or_default();
            (*s, fprs)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn no_upload_by_bob_changes_what_is_served_for_alice(
        uploads in prop::collection::vec(upload(), 1..8),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let k = &*KEYS;
            let store = MemStore::new();
            store.publish(&k.ca, true);
            store.publish(&certify(&k.alice, &k.ca), true);
            store.publish(&k.bob, true);
            store.session("bob-token", &k.bob);
            let base = format!("http://{}", serve(store.clone(), config()).await);
            let http = reqwest::Client::new();
            let before = alices_answers(&http, &base).await;
            prop_assert!(before.iter().all(|(s, _)| *s == 200));
            for u in &uploads {
                let r = http
                    .post(format!("{base}/pks/add"))
                    .bearer_auth("bob-token")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body(u))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                prop_assert!(status < 500, "{u:?}: {status}");
                let after = alices_answers(&http, &base).await;
                prop_assert!(
                    after == before,
                    "after {:?} alice's address is answered with {:?}",
                    u,
                    summary(&after)
                );
            }
            Ok(())
        })?;
    }
}
