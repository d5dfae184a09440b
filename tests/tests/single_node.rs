//! One organisation, one real node: enrolment, a message with attachments end to end, and
//! the node's blindness to everything it stores.

use std::io::Write;

use sealpost_client::Outgoing;
use sealpost_proto::Folder;
use sealpost_proto::KdfParams;
use sealpost_tests::{TestNode, files_containing, files_under};
use sequoia_openpgp::crypto::mpi;
use sequoia_openpgp::packet::key::SecretKeyMaterial;
use sha2::{Digest, Sha256};

const SUBJECT: &str = "SUBJECT-MARKER Quarterly figures 7f3a";
const BODY: &str = "BODY-MARKER Dear Bob, the numbers are attached. 91c2";
const ATTACHMENT_MARKER: &[u8] = b"ATTACHMENT-MARKER-e41d";

/// Writes `len` bytes of deterministic, incompressible-looking data with the marker at the
/// start and every MiB, without holding the whole file in memory.
fn write_attachment(path: &std::path::Path, len: usize) -> [u8; 32] {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hash = Sha256::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut written = 0;
    let mut chunk = Vec::with_capacity(1 << 20);
    while written < len {
        chunk.clear();
        chunk.extend_from_slice(ATTACHMENT_MARKER);
        while chunk.len() < (1 << 20).min(len - written) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.extend_from_slice(&x.to_le_bytes());
        }
        chunk.truncate((1 << 20).min(len - written));
        hash.update(&chunk);
        f.write_all(&chunk).unwrap();
        written += chunk.len();
    }
    f.flush().unwrap();
    hash.finalize().into()
}

fn sha256_file(path: &std::path::Path) -> [u8; 32] {
    let mut h = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path).unwrap(), &mut h).unwrap();
    h.finalize().into()
}

/// The raw secret scalars of every unlocked key in `cert`.
fn secret_scalars(cert: &sequoia_openpgp::Cert) -> Vec<Vec<u8>> {
    cert.keys()
        .secret()
        .filter_map(|ka| match ka.key().optional_secret() {
            Some(SecretKeyMaterial::Unencrypted(u)) => Some(u.map(|m| match m {
                mpi::SecretKeyMaterial::EdDSA { scalar }
                | mpi::SecretKeyMaterial::ECDH { scalar } => scalar.value().to_vec(),
                other => panic!("unexpected key type {other:?}"),
            })),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_sends_bob_subject_body_and_two_attachments_and_the_node_sees_none_of_it() {
    let mut node = TestNode::spawn("a.test").await.unwrap();
    // The real password path: default Argon2id parameters.
    let alice = node
        .user("alice@a.test", "alice password 1", KdfParams::DEFAULT)
        .await
        .unwrap();
    let bob = node
        .user("bob@a.test", "bob password 22", KdfParams::DEFAULT)
        .await
        .unwrap();

    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("figures.bin");
    let big_sha = write_attachment(&big, 20 * 1024 * 1024);
    let small = work.path().join("notes.txt");
    std::fs::write(&small, [ATTACHMENT_MARKER, b" small notes"].concat()).unwrap();
    let small_sha = sha256_file(&small);

    let sent = alice
        .send(
            &Outgoing {
                to: vec!["bob@a.test".into()],
                subject: SUBJECT.into(),
                body: BODY.into(),
                attachments: vec![big.clone(), small.clone()],
                pickup_kdf: None,
            },
            work.path(),
        )
        .await
        .unwrap();
    assert!(!sent.duplicate);
    assert_eq!(sent.recipients[0].address, "bob@a.test");
    assert_eq!(sent.recipients[0].state, "delivered");

    // Bob: the message is in his inbox, unread; he reads it and saves the attachments.
    let inbox = bob.mailbox(Folder::Inbox).await.unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].message_id, sent.message_id);
    assert!(inbox[0].unread);
    assert_eq!(inbox[0].parts, 3);
    let saved = tempfile::tempdir().unwrap();
    let m = bob
        .read(&sent.message_id, Some(saved.path()), work.path())
        .await
        .unwrap();
    assert_eq!(m.subject, SUBJECT);
    assert_eq!(m.body, BODY);
    assert_eq!(m.from, "alice@a.test");
    assert_eq!(m.verified_sender, "alice@a.test");
    assert_eq!(
        m.signer_fingerprint,
        alice.fingerprint(),
        "signed by alice's key"
    );
    assert_eq!(m.attachments.len(), 2);
    let got_big = m.attachments[0].saved_to.as_ref().unwrap();
    let got_small = m.attachments[1].saved_to.as_ref().unwrap();
    assert_eq!(m.attachments[0].name, "figures.bin");
    assert_eq!(std::fs::metadata(got_big).unwrap().len(), 20 * 1024 * 1024);
    assert_eq!(sha256_file(got_big), big_sha, "20 MiB attachment identical");
    assert_eq!(
        sha256_file(got_small),
        small_sha,
        "small attachment identical"
    );
    assert!(
        !bob.mailbox(Folder::Inbox).await.unwrap()[0].unread,
        "marked read"
    );

    // Alice reads her own copy in Sent.
    let sent_box = alice.mailbox(Folder::Sent).await.unwrap();
    assert_eq!(sent_box.len(), 1);
    let own = alice
        .read(&sent.message_id, None, work.path())
        .await
        .unwrap();
    assert_eq!(own.subject, SUBJECT);
    assert_eq!(own.signer_fingerprint, alice.fingerprint());

    // Alice deletes her Sent copy; bob's stays.
    alice.delete(&sent.message_id).await.unwrap();
    assert!(alice.mailbox(Folder::Sent).await.unwrap().is_empty());
    assert_eq!(bob.mailbox(Folder::Inbox).await.unwrap().len(), 1);

    // Every step is in the transaction log.
    for kind in [
        "account.authorised",
        "enrolment",
        "login",
        "submission",
        "delivery",
        "read",
        "deletion",
    ] {
        let n = node.count(&format!("SELECT COUNT(*) FROM txlog WHERE kind = '{kind}'"));
        assert!(n >= 1, "no {kind} entry in the log");
    }

    // The ciphertext is stored once: one file per large part, however many mailboxes.
    assert_eq!(node.count("SELECT COUNT(*) FROM messages"), 1);
    assert_eq!(node.count("SELECT COUNT(*) FROM mailbox"), 1);
    assert_eq!(
        node.count("SELECT COUNT(*) FROM blobs WHERE data IS NULL"),
        2,
        "two attachment files"
    );

    // Blindness: nothing in the data directory (database, WAL, blobs, keys, config) holds
    // the subject, the body, the attachments' content, or any unwrapped secret key.
    let data = node.data();
    let secrets: Vec<Vec<u8>> = [alice.unlocked_cert(), bob.unlocked_cert()]
        .into_iter()
        .flat_map(secret_scalars)
        .collect();
    assert_eq!(
        secrets.len(),
        4,
        "two keys each, all unlocked in the clients"
    );
    node.stop().await.unwrap(); // flush everything to disk first
    let report = sealpost::storage::LogStore::verify_log(&*node.store)
        .await
        .unwrap();
    assert_eq!(report.first_broken, None);
    assert!(
        report.checkpoints >= 1,
        "the node signs a checkpoint when it stops"
    );
    assert!(files_under(&data).len() >= 5);
    for needle in [
        SUBJECT.as_bytes(),
        BODY.as_bytes(),
        ATTACHMENT_MARKER,
        b"SUBJECT-MARKER",
        b"BODY-MARKER",
    ] {
        let hits = files_containing(&data, needle);
        assert!(
            hits.is_empty(),
            "{:?} found in {hits:?}",
            String::from_utf8_lossy(needle)
        );
    }
    for s in &secrets {
        let reversed: Vec<u8> = s.iter().rev().copied().collect();
        assert!(
            files_containing(&data, s).is_empty(),
            "a secret key is stored in the clear"
        );
        assert!(
            files_containing(&data, &reversed).is_empty(),
            "a secret key is stored in the clear"
        );
    }
}
