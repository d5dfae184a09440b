//! Outside mail recipients (docs/mail.md): an administrator's import of an outside key, and
//! hostile submissions made as a client would, with one thing changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_parser::MimeHeaders;
use sealpost_client::{Outgoing, Session, crypto};
use sealpost_proto::{
    Envelope, EnvelopePart, ExternalCopy, Folder, Head, MailboxItem, SubmitRequest, SubmitResponse,
};
use sequoia_openpgp::policy::StandardPolicy;
use sha2::{Digest, Sha256};

use crate::gpg::Gpg;
use crate::https::{Answer, HttpsServer, Issued, TestCa, Usage, openssl};
use crate::smtp::Postfix;
use crate::{TestNode, wait_for};
use sealpost::config::Config;

static POLICY: StandardPolicy<'static> = StandardPolicy::new();

/// An administrator of the node (enrolled here) imports an outside key for everyone (`POST
/// /admin/outside-keys`): an armored OpenPGP certificate or a PEM X.509 certificate.
pub async fn import_by_admin(node: &TestNode, key: &str) {
    let admin = node
        .enrolled(
            "admin@alpha.test",
            "the administrator's password",
            sealpost_proto::KdfParams::MIN,
            true,
        )
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/admin/outside-keys", node.url))
        .bearer_auth(admin.token())
        .json(&serde_json::json!({ "key": key }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

/// Submits a message from `alice` to `to` as her client would (the external copies her client
/// makes, each named in the envelope in the mode the envelope answer gives), after `edit`
/// changes the envelope or the copies: the error code, or `None` if it was accepted.
pub async fn attempt(
    node: &TestNode,
    alice: &Session,
    to: &[&str],
    edit: impl FnOnce(&mut Envelope, &mut BTreeMap<String, Vec<u8>>),
) -> Option<String> {
    let to: Vec<String> = to.iter().map(|a| (*a).to_owned()).collect();
    let (answer, mut certs) = alice.envelope(&to).await.unwrap();
    let head = Head {
        v: 1,
        message_id: answer.message_id.clone(),
        from: alice.address().to_owned(),
        to: to.clone(),
        subject: "hostile".into(),
        body: "hostile".into(),
        attachments: vec![],
        sent_at: sealpost_proto::now(),
    };
    let me = alice.unlocked_cert();
    certs.push(me.clone());
    let mut sealed = Vec::new();
    crypto::seal(
        &certs,
        me,
        &POLICY,
        SystemTime::now(),
        &mut serde_json::to_vec(&head).unwrap().as_slice(),
        &mut sealed,
    )
    .unwrap();
    let mut copies: BTreeMap<String, Vec<u8>> = alice
        .external_copies(&answer, &head, &[])
        .await
        .unwrap()
        .into_iter()
        .map(|(address, _, copy)| (address, copy))
        .collect();
    let mut env = Envelope {
        v: 1,
        message_id: answer.message_id.clone(),
        from: alice.address().to_owned(),
        to,
        created_at: sealpost_proto::now(),
        parts: vec![EnvelopePart {
            sha256: hex::encode(Sha256::digest(&sealed)),
            size: sealed.len() as u64,
        }],
        registered: Default::default(),
        pickup: Default::default(),
        external: copies
            .iter()
            .map(|(a, c)| {
                let mode = answer.mode_of(a).expect("a copy for a recipient");
                (a.clone(), ExternalCopy::of(mode, c))
            })
            .collect(),
    };
    edit(&mut env, &mut copies);
    let text = serde_json::to_string(&env).unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/messages", node.url))
        .bearer_auth(alice.token())
        .json(&SubmitRequest {
            signature: crypto::sign_detached(me, &POLICY, text.as_bytes()).unwrap(),
            envelope: text,
            inline_parts: [(0, STANDARD.encode(&sealed))].into(),
            pickups: vec![],
            pickup_continuations: vec![],
            external_copies: copies
                .into_iter()
                .map(|(a, c)| (a, STANDARD.encode(c)))
                .collect(),
        })
        .send()
        .await
        .unwrap();
    if r.status().is_success() {
        return None;
    }
    let body: serde_json::Value = r.json().await.unwrap();
    Some(body["code"].as_str().unwrap_or_default().to_owned())
}

/// The subject of [`send_figures`]' message: only ever inside the encrypted copy.
pub const FIGURES_SUBJECT: &str = "Quarterly figures (confidential)";

/// Each recipient's (address, mode, state) in a submission's answer, in its order.
pub fn recipient_states(
    resp: &SubmitResponse,
) -> Vec<(&str, Option<sealpost_proto::DeliveryMode>, &str)> {
    resp.recipients
        .iter()
        .map(|r| (r.address.as_str(), r.mode, r.state.as_str()))
        .collect()
}

/// alice sends `to` the quarterly figures (a text and `figures.csv`) as her client does
/// ([`Session::send_all`]), with attachments from `work`.
pub async fn send_figures(alice: &Session, to: &[String], work: &Path) -> SubmitResponse {
    let attachment = work.join("figures.csv");
    std::fs::write(&attachment, "quarter,revenue\nQ3,1200\n").unwrap();
    let (resp, _) = alice
        .send_all(
            &Outgoing {
                to: to.to_vec(),
                subject: FIGURES_SUBJECT.into(),
                body: "Dear reader,\nthe figures are attached.\nAlice".into(),
                attachments: vec![attachment],
                pickup_kdf: None,
            },
            work,
        )
        .await
        .unwrap();
    resp
}

/// What the recipient's mail program shows of the decrypted inner entity of
/// [`send_figures`]' message: the real subject (protected headers), the body, the attachment.
pub fn assert_figures_entity(decrypted: &[u8]) {
    let inner = mail_parser::MessageParser::default()
        .parse(decrypted)
        .unwrap();
    assert_eq!(inner.subject(), Some(FIGURES_SUBJECT));
    assert_eq!(
        inner
            .content_type()
            .and_then(|c| c.attribute("protected-headers")),
        Some("v1")
    );
    assert!(
        inner
            .body_text(0)
            .unwrap()
            .contains("the figures are attached")
    );
    let att = inner.attachment(0).expect("the attachment");
    assert_eq!(att.attachment_name(), Some("figures.csv"));
    assert_eq!(att.contents(), b"quarter,revenue\nQ3,1200\n");
}

/// The one mail Postfix delivered into `address`'s Maildir (waited for): its file and bytes,
/// checked to carry the outer headers of message `message_id` from alpha.test (`Subject:
/// ...`, the real subject nowhere in it).
pub async fn delivered_outer(
    postfix: &Postfix,
    address: &str,
    message_id: &str,
) -> (PathBuf, Vec<u8>) {
    let files = wait_for(Duration::from_secs(30), async || {
        let f = postfix.delivered(address);
        (!f.is_empty()).then_some(f)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", postfix.log()));
    assert_eq!(files.len(), 1);
    let raw = std::fs::read(&files[0]).unwrap();
    let outer = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert_eq!(outer.subject(), Some("..."));
    assert_eq!(
        outer.message_id(),
        Some(format!("{message_id}@alpha.test").as_str())
    );
    assert!(
        !String::from_utf8_lossy(&raw).contains("Quarterly"),
        "the subject travels only encrypted"
    );
    (files[0].clone(), raw)
}

/// alice's newest sent item once no recipient is `queued` any more.
pub async fn settled_sent_item(alice: &Session) -> MailboxItem {
    wait_for(Duration::from_secs(20), async || {
        let sent = alice.mailbox(Folder::Sent).await.unwrap();
        let item = sent.into_iter().next()?;
        item.delivery
            .iter()
            .all(|d| d.state != "queued")
            .then_some(item)
    })
    .await
    .unwrap()
}

/// A domain's Web Key Directory (advanced method, at `openpgpkey.DOMAIN`): HTTPS on loopback
/// with a certificate from a CA made for the test, serving keys from a GnuPG home. Until
/// dropped.
pub struct Wkd {
    pub server: HttpsServer,
    ca_file: PathBuf,
    hosts: [String; 2],
    _dir: tempfile::TempDir,
}

impl Wkd {
    /// `domain`'s WKD, publishing for each (local part, fingerprint) of `keys` that key of
    /// `gpg`.
    pub async fn start(domain: &str, gpg: &Gpg, keys: &[(&str, &str)]) -> Wkd {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("Test Web CA").unwrap();
        let ca_file = ca.write_pem(&dir.path().join("web-ca.pem")).unwrap();
        let hosts = [format!("openpgpkey.{domain}"), domain.to_owned()];
        let names = [hosts[0].as_str(), hosts[1].as_str()];
        let server = HttpsServer::start(&ca.issue(Usage::Server(&names)).unwrap())
            .await
            .unwrap();
        for (local, fpr) in keys {
            server.route(
                &format!(
                    "openpgpkey.{domain}/.well-known/openpgpkey/{domain}/hu/{}?l={local}",
                    sealpost_directory::wkd_hash(local)
                ),
                Answer::Body(gpg.gpg(&["--export", fpr], "").stdout),
            );
        }
        Wkd {
            server,
            ca_file,
            hosts,
            _dir: dir,
        }
    }

    /// A configuration tweak: the node trusts the test CA for WKD look-ups and reaches the
    /// domain's WKD hosts at this server.
    pub fn configure(&self) -> impl FnOnce(&mut Config) + use<> {
        let (ca_file, hosts, addr) = (
            self.ca_file.display().to_string(),
            self.hosts.clone(),
            self.server.addr,
        );
        move |c| {
            c.delivery.wkd_ca_file = ca_file;
            for h in hosts {
                c.delivery.resolve.insert(h, addr);
            }
        }
    }
}

/// The OpenPGP message of a delivered PGP/MIME mail (`raw`), as a mail program finds it: the
/// `application/octet-stream` part of RFC 3156's `multipart/encrypted`, armored.
pub fn pgp_mime_message(raw: &[u8]) -> String {
    let outer = mail_parser::MessageParser::default().parse(raw).unwrap();
    let ct = outer.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("encrypted")));
    assert_eq!(ct.attribute("protocol"), Some("application/pgp-encrypted"));
    let armored = outer
        .parts
        .iter()
        .find(|p| {
            p.content_type()
                .is_some_and(|c| c.ctype() == "application" && c.subtype() == Some("octet-stream"))
        })
        .map(|p| String::from_utf8_lossy(p.contents()).into_owned())
        .expect("an application/octet-stream part");
    assert!(armored.starts_with("-----BEGIN PGP MESSAGE-----"));
    armored
}

/// Opens a delivered PGP/MIME mail (`raw`) as a mail program using GnuPG does: checks the
/// RFC 3156 structure, decrypts the `application/octet-stream` part with `gpg`'s key after
/// importing `sender`'s public key, and checks GnuPG's `VALIDSIG` for the sender and
/// `DECRYPTION_OKAY`. The decrypted inner entity.
pub fn gpg_opens(gpg: &Gpg, sender: &Session, raw: &[u8]) -> Vec<u8> {
    let armored = pgp_mime_message(raw);
    let sender_cert = sender.unlocked_cert().clone().strip_secret_key_material();
    let out = gpg.gpg(
        &["--import"],
        &crypto::cert_to_armored(&sender_cert).unwrap(),
    );
    assert!(out.status.success());
    let out = gpg.gpg(
        &[
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--status-fd",
            "2",
            "--decrypt",
        ],
        &armored,
    );
    let status = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{status}");
    let sender_fpr = sender_cert.fingerprint().to_hex();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("[GNUPG:] VALIDSIG") && l.contains(&sender_fpr)),
        "{status}"
    );
    assert!(status.contains("[GNUPG:] DECRYPTION_OKAY"), "{status}");
    out.stdout
}

/// Opens a delivered S/MIME mail (`file`, its bytes `raw`) as the recipient's mail program
/// would, with `recipient`'s certificate and key (written to `dir`): checks it is
/// `application/pkcs7-mime` enveloped data (CMS, AES-256-CBC), then `openssl cms -decrypt`
/// on the mail itself and `gpgsm --decrypt` on its `smime.p7m` both open it, to the same
/// bytes. The decrypted inner entity.
pub fn smime_opens(dir: &Path, recipient: &Issued, file: &Path, raw: &[u8]) -> Vec<u8> {
    let outer = mail_parser::MessageParser::default().parse(raw).unwrap();
    let ct = outer.content_type().unwrap();
    assert_eq!(
        (ct.ctype(), ct.subtype()),
        ("application", Some("pkcs7-mime"))
    );
    assert_eq!(ct.attribute("smime-type"), Some("enveloped-data"));
    assert_eq!(ct.attribute("name"), Some("smime.p7m"));
    // The body, base64-decoded, is the DER CMS the sender's client made: AES-256-CBC
    // EnvelopedData (a signature, when there is one, is inside).
    let p7m = dir.join("smime.p7m");
    std::fs::write(&p7m, outer.parts[0].contents()).unwrap();
    let p7m = p7m.to_str().unwrap();
    let printed = cms_printed(p7m);
    assert!(printed.contains("pkcs7-envelopedData"), "{printed}");
    assert!(printed.contains("aes-256-cbc"), "{printed}");

    // `openssl cms -decrypt` reads the delivered mail itself (S/MIME).
    let (cert, key) = (dir.join("recipient.pem"), dir.join("recipient.key"));
    std::fs::write(&cert, &recipient.cert_pem).unwrap();
    std::fs::write(&key, &recipient.key_pem).unwrap();
    let out = openssl(&[
        "cms",
        "-decrypt",
        "-binary",
        "-in",
        file.to_str().unwrap(),
        "-recip",
        cert.to_str().unwrap(),
        "-inkey",
        key.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let opened_by_openssl = out.stdout;

    // gpgsm, with the key imported into a throw-away home, decrypts the smime.p7m part.
    let gpg = Gpg::new();
    gpg.gpgsm_import_key(&recipient.cert_pem, &recipient.key_pem);
    let out = gpg.gpgsm_with_passphrase(&["--decrypt", p7m]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, opened_by_openssl);
    opened_by_openssl
}

/// `openssl cms -verify` of a decrypted `multipart/signed` entity against the CA in `ca_file`
/// (as erik's mail program verifies a signed S/MIME mail): the signed entity, and the signer's
/// certificate.
pub fn smime_verified(dir: &Path, signed: &[u8], ca_file: &Path) -> (Vec<u8>, openssl::x509::X509) {
    let (input, signer) = (dir.join("signed.eml"), dir.join("signer.pem"));
    std::fs::write(&input, signed).unwrap();
    let out = openssl(&[
        "cms",
        "-verify",
        "-in",
        input.to_str().unwrap(),
        "-CAfile",
        ca_file.to_str().unwrap(),
        "-signer",
        signer.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signer = openssl::x509::X509::from_pem(&std::fs::read(signer).unwrap()).unwrap();
    (out.stdout, signer)
}

/// `openssl cms -cmsout -print` of the DER CMS in `file`: what it holds, in words.
pub fn cms_printed(file: &str) -> String {
    let printed = openssl(&["cms", "-cmsout", "-print", "-inform", "DER", "-in", file]);
    String::from_utf8_lossy(&printed.stdout).into_owned()
}

/// `sender` is told in her inbox's notices that her message was not delivered to `address`.
pub async fn assert_told_not_delivered(sender: &Session, address: &str) {
    let notices = sender
        .mailbox_with_notices(Folder::Inbox)
        .await
        .unwrap()
        .notices;
    let told = format!("was not delivered to {address}");
    assert!(
        notices.iter().any(|n| n.text.contains(&told)),
        "{notices:?}"
    );
}
