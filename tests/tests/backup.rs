//! Backups that restore (issue 20, item 4; docs/operations.md, "Backups"): a backup taken
//! while a sender submits 500 messages through the HTTP door restores into a fresh data
//! directory whose node serves every message acknowledged before the backup began, with its
//! log intact; a damaged backup or a used target is refused by name and changes nothing.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use sealpost::backup::{self, BackupError};
use sealpost::storage::LogStore;
use sealpost_client::{Outgoing, Session};
use sealpost_tests::{TestNode, alice_and_bob, password_of, wait_for};
use sha2::{Digest, Sha256};

const MESSAGES: usize = 500;
/// Submissions in flight at once: the sender is bounded.
const IN_FLIGHT: usize = 4;

/// The bytes of message `i`'s attachment: its own, so each message has a blob file of its own.
fn attachment(i: usize) -> Vec<u8> {
    format!("attachment of message {i}; ")
        .repeat(64)
        .into_bytes()
}

/// Sends message `i` from alice to bob with its attachment; returns the acknowledged ID.
async fn send(alice: &Session, work: &Path, i: usize) -> String {
    let file = work.join(format!("attachment-{i}.bin"));
    std::fs::write(&file, attachment(i)).unwrap();
    let message = Outgoing {
        to: vec!["bob@a.test".into()],
        subject: format!("message {i}"),
        body: format!("body of message {i}"),
        attachments: vec![file.clone()],
        pickup_kdf: None,
    };
    let answer = alice.send(&message, work).await.expect("submitted");
    std::fs::remove_file(&file).unwrap();
    answer.message_id
}

/// `sealpost admin backup OUT` on `node`'s data directory, as an admin runs it.
async fn back_up(node: &TestNode, out: &Path) {
    node.admin(&["backup", out.to_str().unwrap()])
        .await
        .expect("backup");
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_while_500_messages_are_sent_restores_every_acknowledged_one() {
    let (mut node, alice, _bob) = alice_and_bob().await;
    let work = tempfile::tempdir().unwrap();
    let acked: Arc<Mutex<BTreeMap<String, usize>>> = Default::default();
    let sender = {
        let (acked, work) = (acked.clone(), work.path().to_owned());
        tokio::spawn(async move {
            futures::stream::iter(0..MESSAGES)
                .map(|i| {
                    let (alice, work) = (&alice, &work);
                    async move { (send(alice, work, i).await, i) }
                })
                .buffer_unordered(IN_FLIGHT)
                .for_each(|(id, i)| {
                    acked.lock().unwrap().insert(id, i);
                    async {}
                })
                .await;
        })
    };
    wait_for(Duration::from_secs(120), async || {
        (acked.lock().unwrap().len() >= 100).then_some(())
    })
    .await
    .expect("a hundred messages acknowledged");

    let before = acked.lock().unwrap().clone();
    let backups = tempfile::tempdir().unwrap();
    let out = backups.path().join("a.test-backup");
    back_up(&node, &out).await;
    let after = acked.lock().unwrap().len();
    assert!(
        after < MESSAGES,
        "the sender was still sending when the backup ended ({after} acknowledged)"
    );
    sender.await.unwrap();
    assert_eq!(acked.lock().unwrap().len(), MESSAGES);

    // The backup is private and names what it holds.
    assert_eq!(mode(&out), 0o700);
    assert_eq!(mode(&out.join(backup::MANIFEST)), 0o600);
    assert_eq!(mode(&out.join("keys/node.ed25519")), 0o600);
    let manifest = backup::read_manifest(&out).unwrap();
    assert_eq!(manifest.domain, "a.test");
    let blobs = manifest
        .files
        .iter()
        .filter(|f| f.path.starts_with("blobs/"))
        .count();
    assert!(
        blobs >= before.len(),
        "{blobs} blob files for {} messages",
        before.len()
    );

    // The machine is lost: restore on a fresh data directory and serve it.
    node.stop().await.unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let restored = backup::restore(&out, &fresh.path().join("data")).expect("restored");
    assert_eq!(restored, manifest);
    let restored = TestNode::open(fresh)
        .await
        .expect("the restored node starts");
    let bob = restored
        .client()
        .login("bob@a.test", password_of("bob").as_bytes(), None, None)
        .await
        .expect("bob logs in to the restored node");
    for (id, i) in &before {
        let m = bob
            .read(id, None, work.path())
            .await
            .unwrap_or_else(|e| panic!("message {i} ({id}) acknowledged before the backup: {e}"));
        assert_eq!(m.subject, format!("message {i}"));
        assert_eq!(m.body, format!("body of message {i}"));
        let [a] = &m.attachments[..] else {
            panic!("message {i} has one attachment")
        };
        assert_eq!(a.sha256, hex::encode(Sha256::digest(attachment(*i))));
    }
    let report = restored.store.verify_log().await.unwrap();
    assert_eq!(report.first_broken, None);
    assert!(report.entries >= manifest.log_head.seq);
    restored
        .admin(&["log", "verify"])
        .await
        .expect("the restored log verifies");
}

/// The backup a test damages: a node with two messages (two blob files), backed up.
async fn small_backup(dir: &Path) -> (TestNode, PathBuf) {
    let (node, alice, _bob) = alice_and_bob().await;
    let work = tempfile::tempdir().unwrap();
    for i in 0..2 {
        send(&alice, work.path(), i).await;
    }
    let out = dir.join("backup");
    back_up(&node, &out).await;
    (node, out)
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_tampered_blob_is_refused_by_name_and_nothing_is_restored() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, out) = small_backup(dir.path()).await;
    let manifest = backup::read_manifest(&out).unwrap();
    let blob = &manifest
        .files
        .iter()
        .find(|f| f.path.starts_with("blobs/"))
        .expect("a blob in the backup")
        .path;
    let path = out.join(blob);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&path, &bytes).unwrap();

    let target = dir.path().join("restored");
    let e = backup::restore(&out, &target).unwrap_err();
    assert!(
        matches!(&e, BackupError::Tampered { file, .. } if file == blob),
        "{e}"
    );
    assert!(e.to_string().contains(blob.as_str()), "{e}");
    assert!(!target.exists(), "nothing restored");

    // An empty target made beforehand stays, empty.
    std::fs::create_dir(&target).unwrap();
    let e = backup::restore(&out, &target).unwrap_err();
    assert_eq!(e.code(), "tampered", "{e}");
    assert!(entries(&target).is_empty());

    // Repaired, it restores.
    bytes[10] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    backup::restore(&out, &target).expect("restored");
    assert!(target.join("sealpost.db").is_file());
    assert_eq!(mode(&target.join("keys")), 0o700);
}

#[tokio::test]
async fn a_used_target_a_newer_format_and_a_stray_file_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (node, out) = small_backup(dir.path()).await;

    // Not an empty directory: refused, its file untouched.
    let used = dir.path().join("used");
    std::fs::create_dir(&used).unwrap();
    std::fs::write(used.join("keep.txt"), b"mine").unwrap();
    let e = backup::restore(&out, &used).unwrap_err();
    assert!(matches!(e, BackupError::TargetNotEmpty(_)), "{e}");
    assert_eq!(entries(&used), [used.join("keep.txt")]);
    assert_eq!(std::fs::read(used.join("keep.txt")).unwrap(), b"mine");
    // Nor the running node's own directory.
    let e = backup::restore(&out, &node.data()).unwrap_err();
    assert_eq!(e.code(), "target_not_empty", "{e}");

    let target = dir.path().join("restored");
    let manifest_path = out.join(backup::MANIFEST);
    let original = std::fs::read(&manifest_path).unwrap();

    // A backup of a newer format.
    let mut newer: serde_json::Value = serde_json::from_slice(&original).unwrap();
    newer["format"] = (backup::FORMAT + 1).into();
    newer["something_new"] = "x".into();
    std::fs::write(&manifest_path, serde_json::to_vec(&newer).unwrap()).unwrap();
    let e = backup::restore(&out, &target).unwrap_err();
    assert!(matches!(e, BackupError::NewerFormat { found, .. } if found == backup::FORMAT + 1));
    std::fs::write(&manifest_path, &original).unwrap();

    // A file the manifest does not name.
    std::fs::write(out.join("keys/extra.key"), b"planted").unwrap();
    let e = backup::restore(&out, &target).unwrap_err();
    assert!(
        matches!(&e, BackupError::Unexpected { file } if file == "keys/extra.key"),
        "{e}"
    );
    std::fs::remove_file(out.join("keys/extra.key")).unwrap();

    // A file removed from it.
    let config = out.join("sealpost.toml");
    let kept = std::fs::read(&config).unwrap();
    std::fs::remove_file(&config).unwrap();
    let e = backup::restore(&out, &target).unwrap_err();
    assert!(
        matches!(&e, BackupError::Missing { file } if file == "sealpost.toml"),
        "{e}"
    );
    std::fs::write(&config, kept).unwrap();

    // No manifest: an unfinished backup.
    std::fs::remove_file(&manifest_path).unwrap();
    let e = backup::restore(&out, &target).unwrap_err();
    assert_eq!(e.code(), "no_manifest", "{e}");
    assert!(!target.exists());

    // A backup is never written over one, nor made of a directory that holds no node.
    let e = backup::backup(&node.data(), &out).unwrap_err();
    assert_eq!(e.code(), "output_exists", "{e}");
    let e = backup::backup(&dir.path().join("no-node"), &dir.path().join("b2")).unwrap_err();
    assert!(matches!(e, BackupError::NoDataDir(_)), "{e}");
    assert!(!dir.path().join("b2").exists());
}
