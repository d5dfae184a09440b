//! A full data disk (issue 20, docs/operations.md "Disk full"): the node's data directory on a
//! small tmpfs of its own, filled to the last byte. New work is refused with the typed answer
//! of each door (HTTP 507 `storage_full`, SMTP 452 4.3.1), nothing acknowledged before is lost,
//! and once there is room again the same running node takes work again: no restart.

use std::path::Path;

use sealpost_client::{Outgoing, Session};
use sealpost_tests::smtp::{python_at, smtp_door};
use sealpost_tests::{TestNode, Tmpfs, inbox_ids};

fn note(subject: &str, attachments: Vec<std::path::PathBuf>) -> Outgoing {
    Outgoing {
        to: vec!["bob@a.test".into()],
        subject: subject.into(),
        body: format!("body of {subject}"),
        attachments,
        pickup_kdf: None,
    }
}

/// A plain mail from erin@outside.test to bob by `smtplib`; prints the SMTP code of the answer
/// to the whole mail (250 when it was taken).
const SMTP_MAIL: &str = r#"
import smtplib
from email.message import EmailMessage
m = EmailMessage()
m['From'] = 'erin@outside.test'
m['To'] = 'bob@a.test'
m['Subject'] = 'Hello'
m.set_content('Hello bob, from outside.\n' * 400)
with smtplib.SMTP(HOST, PORT) as s:
    try:
        s.send_message(m)
        print(250)
    except smtplib.SMTPDataError as e:
        print(e.smtp_code, e.smtp_error.decode())
    except smtplib.SMTPRecipientsRefused as e:
        print(list(e.recipients.values())[0][0])
"#;

async fn send(
    alice: &Session,
    subject: &str,
    attachments: &[&Path],
    work: &Path,
) -> Result<String, sealpost_client::ClientError> {
    let msg = note(
        subject,
        attachments.iter().map(|p| p.to_path_buf()).collect(),
    );
    alice.send(&msg, work).await.map(|r| r.message_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_data_disk_refuses_new_work_loses_nothing_and_recovers_without_restart() {
    let fs = Tmpfs::mount(48).unwrap();
    let node = TestNode::spawn_in(
        tempfile::tempdir_in(fs.path()).unwrap(),
        "a.test",
        smtp_door,
    )
    .await
    .unwrap();
    let smtp = node.smtp.expect("the SMTP door is bound");
    let alice = node.person("alice").await;
    let bob = node.person("bob").await;
    // The clients' own files live elsewhere: only the node's disk is full.
    let work = tempfile::tempdir().unwrap();
    let attachment = work.path().join("figures.bin");
    let figures: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&attachment, figures).unwrap();

    let mut acknowledged = Vec::new();
    for i in 0..3 {
        acknowledged.push(
            send(&alice, &format!("before {i}"), &[], work.path())
                .await
                .unwrap(),
        );
    }
    acknowledged.push(
        send(&alice, "before, with figures", &[&attachment], work.path())
            .await
            .unwrap(),
    );
    assert!(python_at(smtp, SMTP_MAIL).await.starts_with("250"));

    let filler = fs.fill().unwrap();
    assert!(
        fs.free() < 64 * 1024,
        "the file system is full: {} bytes free",
        fs.free()
    );

    // A part too large to live in the database needs the blob store: refused at once.
    let e = send(&alice, "full, with figures", &[&attachment], work.path())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("storage_full"), "{e}");
    // Small messages fit in the database's pages until its write-ahead log must grow; then
    // they are refused too. Each one answered is committed.
    let mut refusal = None;
    for i in 0..500 {
        match send(&alice, &format!("full {i}"), &[], work.path()).await {
            Ok(id) => acknowledged.push(id),
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    let e = refusal.expect("a full disk refuses small messages too");
    assert_eq!(e.code(), Some("storage_full"), "{e}");
    let answer = python_at(smtp, SMTP_MAIL).await;
    assert!(
        answer.starts_with("452"),
        "SMTP answers a full disk with 452: {answer}"
    );
    assert!(answer.contains("4.3.1"), "{answer}");

    // Room again: the same node takes work at once.
    std::fs::remove_file(filler).unwrap();
    acknowledged.push(
        send(&alice, "after, with figures", &[&attachment], work.path())
            .await
            .unwrap(),
    );
    acknowledged.push(send(&alice, "after", &[], work.path()).await.unwrap());
    assert!(python_at(smtp, SMTP_MAIL).await.starts_with("250"));

    // Nothing acknowledged is lost: bob reads every message, and the log verifies.
    let inbox = inbox_ids(&bob).await;
    for id in &acknowledged {
        assert!(inbox.contains(id), "{id} is in bob's inbox");
        bob.read(id, None, work.path()).await.unwrap();
    }
    assert_eq!(
        node.count(
            "SELECT COUNT(*) FROM mailbox m JOIN accounts a ON a.id = m.account_id
                    WHERE a.address = 'bob@a.test' AND m.folder = 'inbox'"
        ),
        acknowledged.len() as i64 + 2,
        "bob holds the acknowledged messages and the two mails taken by SMTP, nothing else"
    );
    node.admin(&["log", "verify"]).await.unwrap();
}
