//! One bolero test per fuzz target (`sealpost_fuzz::TARGETS`).
//!
//! Under `cargo test` each runs the short pass: every seed in `fuzz/corpus/<target>/`,
//! `SEALPOST_FUZZ_MUTATIONS` (default 300) deterministic mutations of them (seed
//! `SEALPOST_FUZZ_SEED`, default fixed), then bolero's random pass (`BOLERO_RANDOM_ITERATIONS`,
//! default 1000). Under `cargo bolero test <target> --engine libfuzzer` (`scripts/fuzz`) the
//! same function is fuzzed coverage-guided, seeded from the corpus.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use sealpost_fuzz as fz;

/// Runs `f` on `input`; on a panic, keeps the input in the test's scratch folder and fails
/// naming it (copy it into `fuzz/corpus/<target>/` once fixed).
#[cfg_attr(fuzzing, allow(dead_code))]
fn run_one(target: &str, what: &str, f: fn(&[u8]), input: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| f(input))).is_err() {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes");
        std::fs::create_dir_all(&dir).expect("crash folder");
        let path = dir.join(format!("{target}-{what}"));
        std::fs::write(&path, input).expect("crash input");
        panic!("{target}: {what} crashed; input kept in {}", path.display());
    }
}

/// The seeds and their mutations (skipped under a fuzzing engine, which reads the corpus
/// itself).
#[cfg_attr(fuzzing, allow(dead_code))]
fn seeds_and_mutations(target: &str, f: fn(&[u8])) {
    let seeds = fz::seeds(target);
    assert!(
        !seeds.is_empty(),
        "no seeds in {}",
        fz::corpus_dir(target).display()
    );
    for (path, bytes) in &seeds {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        run_one(target, &format!("seed-{name}"), f, bytes);
    }
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    let count = var("SEALPOST_FUZZ_MUTATIONS").unwrap_or(300) as usize;
    let seed = var("SEALPOST_FUZZ_SEED").unwrap_or(0x5ea1_9057);
    let bytes: Vec<Vec<u8>> = seeds.into_iter().map(|(_, b)| b).collect();
    for (i, m) in fz::mutations(&bytes, count, seed).iter().enumerate() {
        run_one(target, &format!("mutation-{seed}-{i}"), f, m);
    }
}

macro_rules! targets {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                #[cfg(not(fuzzing))]
                seeds_and_mutations(stringify!($name), fz::$name);
                bolero::check!().for_each(|data: &[u8]| fz::$name(data));
            }
        )*

        #[test]
        fn every_target_has_a_test() {
            let tested = [$(stringify!($name)),*];
            let listed: Vec<&str> = fz::TARGETS.iter().map(|(n, _)| *n).collect();
            assert_eq!(listed, tested);
        }
    };
}

targets!(
    frame,
    wire,
    batch_proof,
    envelope,
    signature,
    ciphertext,
    keytext,
    cert,
    hkp,
    vks,
    wkd,
    merge,
    config,
    outside_key,
    smtp_session,
);

/// Regenerates `fuzz/fixtures/` and the seeds that depend on them (new keys each time):
/// `cargo test -p sealpost-fuzz --test targets -- --ignored regenerate_fixtures`.
#[test]
#[ignore]
fn regenerate_fixtures() {
    fixtures::regenerate();
}

mod fixtures {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::time::SystemTime;

    use base64::Engine as _;
    use libp2p::identity::Keypair;
    use sealpost_client::crypto;
    use sealpost_federation::frame::*;
    use sealpost_federation::net::wire;
    use sequoia_openpgp::Cert;
    use sequoia_openpgp::packet::UserID;
    use sequoia_openpgp::policy::StandardPolicy;
    use sequoia_openpgp::serialize::MarshalInto;
    use sequoia_openpgp::types::SignatureType;
    use sha2::{Digest, Sha256};

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
    }

    fn seed(target: &str, name: &str, bytes: impl AsRef<[u8]>) {
        let dir = root().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }

    fn armored(cert: &Cert) -> String {
        crypto::cert_to_armored(cert).unwrap()
    }

    fn public(cert: &Cert) -> Cert {
        cert.clone().strip_secret_key_material()
    }

    fn keytext(text: &str) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("keytext", text)
            .finish()
    }

    fn framed(frames: &[&Frame]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frames {
            let bytes = encode(f);
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(&bytes);
        }
        out
    }

    pub fn regenerate() {
        let p = StandardPolicy::new();
        let now = SystemTime::now();
        let (alice, alice_rev) =
            crypto::generate_user_key(super::fz::ALICE, Some("Alice"), now).unwrap();
        let (bob, _) = crypto::generate_user_key("bob@example.org", None, now).unwrap();
        let (mallory, _) = crypto::generate_user_key("mallory@evil.example", None, now).unwrap();
        let ca = sealpost::crypto::generate_ca(super::fz::DOMAIN, now).unwrap();
        let alice_pub = public(&alice);
        let certified =
            public(&sealpost::crypto::ca_certify(&ca, &alice, super::fz::ALICE, now).unwrap());
        let by_mallory =
            public(&sealpost::crypto::ca_certify(&mallory, &alice, super::fz::ALICE, now).unwrap());

        let fixtures = root().join("fixtures");
        std::fs::write(fixtures.join("alice.asc"), armored(&alice_pub)).unwrap();
        std::fs::write(fixtures.join("ca.asc"), armored(&public(&ca))).unwrap();

        // A sealed one-part message from alice to bob, its envelope and alice's signature.
        let mut ciphertext = Vec::new();
        crypto::seal(
            &[public(&bob)],
            &alice,
            &p,
            now,
            &mut &b"Subject: hello\r\n\r\nHello Bob.\r\n"[..],
            &mut ciphertext,
        )
        .unwrap();
        let sha = hex::encode(Sha256::digest(&ciphertext));
        let message_id = "0190a1b2c3d4e5f60718293a4b5c6d7e";
        let envelope = serde_json::json!({
            "v": 1,
            "message_id": message_id,
            "from": super::fz::ALICE,
            "to": ["bob@example.org"],
            "created_at": 1_700_000_000,
            "parts": [{"sha256": sha, "size": ciphertext.len()}],
        })
        .to_string();
        std::fs::write(fixtures.join("envelope.json"), &envelope).unwrap();
        let signature = crypto::sign_detached(&alice, &p, envelope.as_bytes()).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&ciphertext);

        // envelope, signature, ciphertext
        let mut inline = BTreeMap::new();
        inline.insert(0u32, b64.clone());
        let submit = |inline: &BTreeMap<u32, String>| {
            serde_json::json!({"envelope": envelope, "signature": signature, "inline_parts": inline})
                .to_string()
        };
        seed("envelope", "submit-inline.json", submit(&inline));
        seed("envelope", "submit-uploaded.json", submit(&BTreeMap::new()));
        let two_parts = envelope.replace(
            "\"parts\":[",
            &format!("\"parts\":[{{\"sha256\":\"{sha}\",\"size\":1}},"),
        );
        seed(
            "envelope",
            "submit-two-parts.json",
            serde_json::json!({"envelope": two_parts, "signature": signature}).to_string(),
        );
        seed("signature", "envelope.sig.asc", &signature);
        seed("ciphertext", "sealed-to-bob.pgp", &ciphertext);

        // keytext and cert
        seed("keytext", "alice.form", keytext(&armored(&alice_pub)));
        seed(
            "keytext",
            "alice-certified.form",
            keytext(&armored(&certified)),
        );
        let binary: String =
            form_urlencoded::byte_serialize(&alice_pub.to_vec().unwrap()).collect();
        seed("keytext", "alice-binary.form", format!("keytext={binary}"));
        seed("cert", "alice.asc", armored(&alice_pub));
        // outside_key's other seed, x509.pem, depends on no fixture (made with openssl req).
        seed("outside_key", "alice.asc", armored(&alice_pub));
        seed("cert", "ca.asc", armored(&public(&ca)));
        seed("cert", "alice-certified.asc", armored(&certified));
        seed(
            "cert",
            "alice-secret.asc",
            alice.as_tsk().armored().to_vec().unwrap(),
        );

        // merge: updates of alice's certificate
        seed("merge", "same.pgp", alice_pub.to_vec().unwrap());
        seed("merge", "ca-certification.pgp", certified.to_vec().unwrap());
        seed(
            "merge",
            "unknown-certifier.pgp",
            by_mallory.to_vec().unwrap(),
        );
        seed(
            "merge",
            "revoked.pgp",
            alice_pub
                .clone()
                .insert_packets(alice_rev)
                .unwrap()
                .0
                .to_vec()
                .unwrap(),
        );
        seed(
            "merge",
            "with-secrets.pgp",
            alice.as_tsk().to_vec().unwrap(),
        );
        let mut signer = alice
            .primary_key()
            .key()
            .clone()
            .parts_into_secret()
            .unwrap()
            .into_keypair()
            .unwrap();
        let uid = UserID::from("Alice <alice@other.example>");
        let binding = uid
            .bind(
                &mut signer,
                &alice,
                sequoia_openpgp::packet::signature::SignatureBuilder::new(
                    SignatureType::PositiveCertification,
                ),
            )
            .unwrap();
        let new_uid = alice_pub
            .clone()
            .insert_packets(vec![sequoia_openpgp::Packet::from(uid), binding.into()])
            .unwrap()
            .0;
        seed("merge", "new-user-id.pgp", new_uid.to_vec().unwrap());
        seed("merge", "other-key.pgp", public(&bob).to_vec().unwrap());

        // federation frames, signed by the fuzz targets' fixed peer key
        let node = Keypair::ed25519_from_bytes([7u8; 32]).unwrap();
        let mut transfer = Transfer {
            message_id: MessageId::new(message_id),
            envelope: envelope.clone(),
            signature: signature.clone(),
            sender_cert: armored(&alice_pub),
            parts: vec![PartRef {
                sha256: sha.clone(),
                size: ciphertext.len() as u64,
                data: Some(ciphertext.clone()),
            }],
            node_sig: Vec::new(),
        };
        let unsigned = transfer.clone();
        wire::sign_transfer(&node, &mut transfer);
        let mut streamed = unsigned.clone();
        streamed.parts[0].data = None;
        wire::sign_transfer(&node, &mut streamed);
        let mut receipt = Receipt {
            message_id: MessageId::new(message_id),
            accepted: vec!["bob@example.org".into()],
            refused: vec![Refusal {
                address: "carol@example.org".into(),
                reason: "there is no active user carol@example.org".into(),
            }],
            node_sig: Vec::new(),
        };
        let unsigned_receipt = receipt.clone();
        wire::sign_receipt(&node, &mut receipt);
        let mut second = unsigned.clone();
        second.message_id = MessageId::new("0190a1b2c3d4e5f60718293a4b5c6d7f");
        let mut batch = Batch {
            transfers: vec![unsigned.clone(), second.clone()],
            node_sig: Vec::new(),
        };
        wire::sign_batch(&node, &mut batch);
        let mut answer = BatchAnswer {
            receipts: vec![unsigned_receipt],
            errors: vec![BatchError {
                message_id: second.message_id.clone(),
                code: "unavailable".into(),
                message: "try again later".into(),
            }],
            node_sig: Vec::new(),
        };
        wire::sign_batch_answer(&node, &mut answer);
        let frames: Vec<(&str, Frame)> = vec![
            ("transfer-inline", Frame::Transfer(transfer.clone())),
            ("transfer-streamed", Frame::Transfer(streamed.clone())),
            ("receipt", Frame::Receipt(receipt.clone())),
            ("batch", Frame::Batch(batch.clone())),
            ("batch-answer", Frame::BatchAnswer(answer.clone())),
            (
                "want",
                Frame::Want(Want {
                    message_id: MessageId::new(message_id),
                    parts: vec![0, 2, 5],
                }),
            ),
            (
                "lookup",
                Frame::Lookup(Lookup {
                    address: "bob@example.org".into(),
                }),
            ),
            (
                "lookup-answer",
                Frame::LookupAnswer(LookupAnswer {
                    certs: vec![armored(&certified)],
                }),
            ),
            (
                "cert-updates",
                Frame::CertUpdates(CertUpdates {
                    cursor: 42,
                    certs: vec![armored(&public(&ca))],
                }),
            ),
            ("pull-since", Frame::PullSince(PullSince { cursor: 41 })),
            ("changed", Frame::Changed(Changed { cursor: 43 })),
            ("org-lookup", Frame::OrgLookup(OrgLookup {})),
            (
                "org-record",
                Frame::OrgRecord(OrgRecord {
                    record: serde_json::json!({"domain": "example.org", "version": 1}).to_string(),
                }),
            ),
            (
                "error",
                Frame::Error(ErrorFrame {
                    code: "not_authorised".into(),
                    message: "this node does not peer with yours".into(),
                }),
            ),
        ];
        for (name, f) in &frames {
            seed("frame", &format!("{name}.json"), encode(f));
        }
        seed(
            "wire",
            "transfer-want-receipt.bin",
            framed(&[
                &Frame::Transfer(streamed.clone()),
                &Frame::Want(Want {
                    message_id: MessageId::new(message_id),
                    parts: vec![0],
                }),
                &Frame::Receipt(receipt.clone()),
            ]),
        );
        seed(
            "wire",
            "batch-answer.bin",
            framed(&[&Frame::Batch(batch.clone()), &Frame::BatchAnswer(answer)]),
        );
        seed(
            "wire",
            "lookup.bin",
            framed(&[
                &Frame::OrgLookup(OrgLookup {}),
                &Frame::Lookup(Lookup {
                    address: "bob@example.org".into(),
                }),
                &Frame::PullSince(PullSince { cursor: 0 }),
            ]),
        );
        for (i, (t, proof)) in batch.transfers.iter().zip(batch.proofs()).enumerate() {
            let mut bytes = serde_json::to_vec(&proof).unwrap();
            bytes.push(0);
            bytes.extend(serde_json::to_vec(t).unwrap());
            seed("batch_proof", &format!("proof-{i}.json"), bytes);
        }

        // directory requests
        let fpr = alice_pub.fingerprint().to_hex();
        let keyid = alice_pub.keyid().to_hex();
        let hash = sealpost_directory::wkd_hash("alice");
        for (name, q) in [
            ("get-fingerprint", format!("op=get&search=0x{fpr}")),
            (
                "get-keyid-mr",
                format!("op=get&options=mr&search=0x{keyid}"),
            ),
            ("get-bare-fingerprint", format!("op=get&search={fpr}")),
            (
                "index-email",
                "op=index&search=alice%40example.org&options=mr".into(),
            ),
            (
                "vindex-text-exact",
                "op=vindex&search=Alice+%3Calice%40example.org%3E&exact=on&fingerprint=on".into(),
            ),
            (
                "index-angle",
                "search=%3Calice@example.org%3E&op=index".into(),
            ),
            ("short-keyid", "op=get&search=0xDEADBEEF".into()),
            ("stats", "op=stats".into()),
            ("x-op", "op=x-custom&search=alice".into()),
        ] {
            seed("hkp", name, q);
        }
        seed("vks", "fingerprint", &fpr);
        seed("vks", "keyid", &keyid);
        seed("vks", "email", super::fz::ALICE);
        seed("wkd", "direct-with-l", format!("{hash}?l=alice"));
        seed("wkd", "direct", &hash);
        seed("wkd", "advanced", format!("example.org/{hash}?l=Alice"));
        seed("wkd", "two-l", format!("{hash}?l=alice&l=bob"));

        // configuration
        seed("config", "example.toml", sealpost::config::EXAMPLE);
        seed("config", "minimal.toml", "domain = \"example.org\"\n");
        seed(
            "config",
            "env-overrides.toml",
            "domain = \"example.org\"\n[limits]\nmax_parts = 16\n\0SEALPOST__HTTP__MAX_JSON_BODY=1048576\nSEALPOST__FEDERATION__ENABLED=false\n",
        );
        seed(
            "config",
            "federation.toml",
            "domain = \"example.org\"\n[federation]\nenabled = true\nlisten = [\"/ip4/0.0.0.0/udp/8443/quic-v1\"]\nannounce = [\"/dns4/mx.example.org/udp/8443/quic-v1\"]\n",
        );
    }
}
