//! Issue 18's headline scenario, in one run (docs/mail.md): ONE message from alice@alpha.test
//! to five recipients, each reached in its own mode:
//!
//! - bob@alpha.test, a user of her node (`local`);
//! - carol@beta.test, a user of a peered organisation (`remote`, over federation);
//! - dora@pgp.test, whose OpenPGP key the node finds in pgp.test's Web Key Directory
//!   (`openpgp`): GnuPG decrypts the delivered mail and verifies alice's signature;
//! - erik@smime.test, with an X.509 certificate under the node's `x509_anchors` (`smime`):
//!   `openssl cms -decrypt` and `gpgsm` open the delivered mail, and `openssl cms -verify`
//!   verifies alice's signature (alpha.test runs an S/MIME CA, `[smime]`);
//! - fay@tls.test, whose domain a `[[delivery.pin]]` pins to enforced TLS (`tls`): delivered
//!   over verified TLS, or, when the MX's certificate is not valid for its name, not in plain
//!   and alice is told why.
//!
//! The node delivers directly (`[relay] route = "direct"`, which a TLS pin needs): a local
//! unbound answers the MX records of pgp.test, smime.test and tls.test, all pointing at one
//! real Postfix on loopback offering STARTTLS with a certificate from a test CA. alice sends
//! through the client library (`Session`, what `sealpost client send` uses); what `sealpost
//! client sent` shows is checked from her Sent item, as the CLI derives it.

use std::path::Path;
use std::time::Duration;

use sealpost::config::{DeliveryPin, TlsPolicy};
use sealpost_client::Session;
use sealpost_proto::{DeliveryMode, EnvelopeResponse, Folder, KeySource, MailboxItem};
use sealpost_tests::dns::{Unbound, direct_delivery};
use sealpost_tests::gpg::Gpg;
use sealpost_tests::https::{self, Issued, Usage};
use sealpost_tests::mail::{
    FIGURES_SUBJECT, Wkd, assert_figures_entity, assert_told_not_delivered, delivered_outer,
    gpg_opens, import_by_admin, recipient_states, send_figures, settled_sent_item, smime_opens,
    smime_verified,
};
use sealpost_tests::smtp::{Postfix, TestCa, parse_mail, parsed_header};
use sealpost_tests::{TestNode, peer_both, wait_for};

/// Each outside domain's MX is a name of its own for 127.0.0.1, where the one Postfix is.
const ZONE: &[&str] = &[
    "pgp.test. 300 IN MX 10 mx.pgp.test.",
    "mx.pgp.test. 300 IN A 127.0.0.1",
    "smime.test. 300 IN MX 10 mx.smime.test.",
    "mx.smime.test. 300 IN A 127.0.0.1",
    "tls.test. 300 IN MX 10 mx.tls.test.",
    "mx.tls.test. 300 IN A 127.0.0.1",
];

/// The five recipients, in the order alice writes them.
const TO: [&str; 5] = [
    "bob@alpha.test",
    "carol@beta.test",
    "dora@pgp.test",
    "erik@smime.test",
    "fay@tls.test",
];

/// The tests here each run two nodes, a Postfix, unbound and GnuPG: one at a time, so that the
/// deadlines measure delivery rather than each other's CPU use on a small machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// alpha.test (alice and bob) peered with beta.test (carol); the outside world of dora, erik
/// and fay behind one Postfix.
struct World {
    alpha: TestNode,
    _beta: TestNode,
    alice: Session,
    bob: Session,
    carol: Session,
    postfix: Postfix,
    /// dora's GnuPG home and key fingerprint.
    dora: (Gpg, String),
    erik: Issued,
    dir: tempfile::TempDir,
    _dns: Unbound,
    _wkd: Wkd,
    _mx_ca: TestCa,
}

impl World {
    /// The world, with Postfix's certificate (from a CA the node trusts) made for `mx_names`.
    async fn start(mx_names: &[&str]) -> World {
        let dir = tempfile::tempdir().unwrap();
        // The MX: one Postfix for the three outside domains, offering STARTTLS.
        let mx_ca = TestCa::new().unwrap();
        let mx_cert = mx_ca.issue("mx", mx_names).unwrap();
        let postfix = Postfix::start_with(
            &["dora@pgp.test", "erik@smime.test", "fay@tls.test"],
            Some(mx_cert),
            None,
        )
        .await
        .unwrap();
        let dns = Unbound::start(ZONE).await.unwrap();
        // dora's key, in pgp.test's Web Key Directory.
        let gpg = Gpg::new();
        let (_, dora_fpr) = gpg.new_key("dora@pgp.test");
        let wkd = Wkd::start("pgp.test", &gpg, &[("dora", &dora_fpr)]).await;
        // erik's certificate, from an S/MIME CA that is the node's `x509_anchors`.
        let smime_ca = https::TestCa::new("S/MIME test CA").unwrap();
        let anchors = smime_ca
            .write_pem(&dir.path().join("x509-anchors.pem"))
            .unwrap();
        let erik = smime_ca.issue(Usage::Smime("erik@smime.test")).unwrap();
        // The same CA certifies alpha.test's users' S/MIME signing keys (`[smime]`).
        let smime = sealpost::config::SmimeConfig {
            ca_cert: anchors.display().to_string(),
            ca_key: (smime_ca
                .write_key(&dir.path().join("smime-ca.key"))
                .unwrap())
            .display()
            .to_string(),
            cert_days: 365,
        };

        let direct = direct_delivery(&dns, postfix.port, &mx_ca.ca_file(), 443, vec![]);
        let wkd_config = wkd.configure();
        let alpha = TestNode::spawn_with("alpha.test", move |c| {
            direct(c);
            c.federation.enabled = true;
            wkd_config(c);
            c.delivery.x509_anchors = anchors.display().to_string();
            c.smime = Some(smime);
            c.delivery.pins.push(DeliveryPin {
                domain: "tls.test".into(),
                mode: DeliveryMode::Tls,
                tls: Some(TlsPolicy::Pinned),
            });
        })
        .await
        .unwrap();
        let beta = TestNode::spawn("beta.test").await.unwrap();
        peer_both(&alpha, &beta).await;
        import_by_admin(&alpha, &erik.cert_pem).await;
        let alice = alpha.person("alice").await;
        let bob = alpha.person("bob").await;
        let carol = beta.person("carol").await;
        World {
            alpha,
            _beta: beta,
            alice,
            bob,
            carol,
            postfix,
            dora: (gpg, dora_fpr),
            erik,
            dir,
            _dns: dns,
            _wkd: wkd,
            _mx_ca: mx_ca,
        }
    }

    /// alice's envelope answer for the five, checked: each recipient's mode and why; then
    /// the message sent as her client sends it, each recipient's mode and state in the
    /// submission's answer checked. Its message ID.
    async fn send(&self, work: &Path) -> String {
        let to: Vec<String> = TO.iter().map(|a| (*a).to_owned()).collect();
        let (answer, _) = self.alice.envelope(&to).await.unwrap();
        self.check_envelope_answer(&answer);
        let resp = send_figures(&self.alice, &to, work).await;
        assert_eq!(
            recipient_states(&resp),
            [
                ("bob@alpha.test", None, "delivered"),
                ("carol@beta.test", Some(DeliveryMode::Remote), "queued"),
                ("dora@pgp.test", Some(DeliveryMode::Openpgp), "queued"),
                ("erik@smime.test", Some(DeliveryMode::Smime), "queued"),
                ("fay@tls.test", Some(DeliveryMode::Tls), "queued"),
            ]
        );
        resp.message_id
    }

    fn check_envelope_answer(&self, answer: &EnvelopeResponse) {
        let modes: Vec<(&str, DeliveryMode)> = answer
            .recipients
            .iter()
            .map(|r| (r.address.as_str(), r.mode))
            .collect();
        assert_eq!(
            modes,
            [
                ("bob@alpha.test", DeliveryMode::Local),
                ("carol@beta.test", DeliveryMode::Remote),
                ("dora@pgp.test", DeliveryMode::Openpgp),
                ("erik@smime.test", DeliveryMode::Smime),
                ("fay@tls.test", DeliveryMode::Tls),
            ]
        );
        let [_, _, dora, erik, fay] = &answer.recipients[..] else {
            unreachable!("five recipients")
        };
        assert_eq!(dora.key_source, Some(KeySource::Wkd));
        assert!(dora.fingerprint.eq_ignore_ascii_case(&self.dora.1));
        assert!(
            dora.why
                .contains("dora@pgp.test publishes an OpenPGP key in pgp.test's Web Key Directory"),
            "{}",
            dora.why
        );
        assert_eq!(erik.key_source, Some(KeySource::X509Anchor));
        assert_eq!(erik.cert, self.erik.cert_pem);
        // Only fay's copy is readable by the node in transit, and alice is told so.
        assert_eq!(
            answer
                .recipients
                .iter()
                .filter(|r| r.sees_content)
                .map(|r| r.address.as_str())
                .collect::<Vec<_>>(),
            ["fay@tls.test"]
        );
        assert!(fay.why.contains("enforced TLS"), "{}", fay.why);
    }

    /// alice's Sent item for message `id` once every delivery is settled (federation
    /// included), checked to show in `client sent` bob, carol, dora and erik delivered each
    /// in their mode, and fay by TLS in `fay_state`.
    async fn settled(&self, id: &str, fay_state: &str) -> MailboxItem {
        // `settled_sent_item` waits for no `queued`; give a slow federation hop its time first.
        wait_for(Duration::from_secs(60), async || {
            let sent = self.alice.mailbox(Folder::Sent).await.unwrap();
            let item = sent.into_iter().next()?;
            item.delivery
                .iter()
                .all(|d| d.state != "queued")
                .then_some(())
        })
        .await
        .unwrap();
        let item = settled_sent_item(&self.alice).await;
        assert_eq!(item.message_id, id);
        let expected: Vec<(String, String, String)> = [
            ("bob@alpha.test", "local", "delivered"),
            ("carol@beta.test", "remote", "delivered"),
            ("dora@pgp.test", "openpgp", "delivered"),
            ("erik@smime.test", "smime", "delivered"),
            ("fay@tls.test", "tls", fay_state),
        ]
        .iter()
        .map(|(a, m, s)| ((*a).to_owned(), (*m).to_owned(), (*s).to_owned()))
        .collect();
        assert_eq!(
            sent_view(&item),
            expected,
            "{:?}\n{}",
            item.delivery,
            self.postfix.log()
        );
        item
    }
}

/// What `sealpost client sent` lists under a Sent item (client/src/cli.rs): each recipient
/// with no delivery state is a user of the node, `delivered [local]`; then each delivery
/// state as `ADDRESS: STATE [MODE]`. Here as (address, mode, state), sorted by address.
fn sent_view(item: &MailboxItem) -> Vec<(String, String, String)> {
    let local = item
        .to
        .iter()
        .filter(|a| !item.delivery.iter().any(|d| &d.address == *a))
        .map(|a| (a.clone(), "local".to_owned(), "delivered".to_owned()));
    let others = item.delivery.iter().map(|d| {
        let mode = d.mode.map_or(String::new(), |m| m.to_string());
        (d.address.clone(), mode, d.state.clone())
    });
    let mut rows: Vec<_> = local.chain(others).collect();
    rows.sort();
    rows
}

/// The recipient reads the message in Sealpost: from alice, verified, with the real subject
/// and the attachment.
async fn reads_it(reader: &Session, id: &str, work: &Path) {
    wait_for(Duration::from_secs(30), async || {
        let inbox = reader.mailbox(Folder::Inbox).await.unwrap();
        inbox.iter().any(|i| i.message_id == id).then_some(())
    })
    .await
    .unwrap();
    let read = reader.read(id, None, work).await.unwrap();
    assert_eq!(read.verified_sender, "alice@alpha.test");
    assert_eq!(read.subject, FIGURES_SUBJECT);
    assert_eq!(read.attachments.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_reaches_five_recipients_in_five_modes_and_each_opens_it() {
    let _serial = SERIAL.lock().await;
    let w = World::start(&["mx.pgp.test", "mx.smime.test", "mx.tls.test"]).await;
    let work = tempfile::tempdir().unwrap();
    let id = w.send(work.path()).await;

    // What `client sent` shows alice: each recipient's mode and state.
    let item = w.settled(&id, "delivered").await;
    // The mail deliveries carry the MX's answer.
    for d in item
        .delivery
        .iter()
        .filter(|d| d.address != "carol@beta.test")
    {
        assert!(
            d.reason
                .as_deref()
                .unwrap_or("")
                .starts_with("250 2.0.0 Ok"),
            "{d:?}"
        );
    }

    // dora: GnuPG decrypts the delivered mail and verifies alice's signature; the real
    // subject is only inside.
    let (_, raw) = delivered_outer(&w.postfix, "dora@pgp.test", &id).await;
    assert_figures_entity(&gpg_opens(&w.dora.0, &w.alice, &raw));

    // erik: `openssl cms -decrypt` and `gpgsm --decrypt` open the delivered mail; `openssl cms
    // -verify` verifies alice's signature against the CA.
    let (file, raw) = delivered_outer(&w.postfix, "erik@smime.test", &id).await;
    let signed = smime_opens(w.dir.path(), &w.erik, &file, &raw);
    let anchors = w.dir.path().join("x509-anchors.pem");
    let (entity, signer) = smime_verified(w.dir.path(), &signed, &anchors);
    assert_figures_entity(&entity);
    assert_eq!(
        signer
            .subject_alt_names()
            .unwrap()
            .iter()
            .filter_map(|n| n.email())
            .collect::<Vec<_>>(),
        ["alice@alpha.test"]
    );

    // fay: ordinary mail with its real subject, taken by Postfix over TLS.
    let files = wait_for(Duration::from_secs(20), async || {
        let f = w.postfix.delivered("fay@tls.test");
        (!f.is_empty()).then_some(f)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", w.postfix.log()));
    assert_eq!(files.len(), 1);
    let mail = parse_mail(&files[0]).unwrap();
    assert_eq!(
        parsed_header(&mail, "Subject").as_deref(),
        Some(FIGURES_SUBJECT)
    );
    assert_eq!(
        parsed_header(&mail, "From").as_deref(),
        Some("alice@alpha.test")
    );
    assert!(
        mail["text"]
            .as_str()
            .unwrap()
            .contains("the figures are attached")
    );
    // Postfix's own Received line: the node spoke ESMTP over TLS (ESMTPS) to it.
    let received = parsed_header(&mail, "Received").unwrap();
    assert!(
        received.contains("by relay.test (Postfix) with ESMTPS"),
        "{received}"
    );

    // bob and carol read it in Sealpost.
    reads_it(&w.bob, &id, work.path()).await;
    reads_it(&w.carol, &id, work.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_tls_mx_certificate_invalid_fay_gets_nothing_in_plain_and_alice_sees_why() {
    let _serial = SERIAL.lock().await;
    // Postfix's certificate names another host: valid for no MX name the node looks for.
    let w = World::start(&["mx.elsewhere.test"]).await;
    let work = tempfile::tempdir().unwrap();
    let id = w.send(work.path()).await;

    // The other four are delivered (dora's and erik's mail over opportunistic STARTTLS, which
    // takes any certificate: the server was up); fay's failed.
    let item = w.settled(&id, "failed").await;
    // `client sent` shows why.
    let fay = item
        .delivery
        .iter()
        .find(|d| d.address == "fay@tls.test")
        .unwrap();
    assert_eq!(
        fay.reason.as_deref(),
        Some("tls.test's mail server offered no valid certificate for mx.tls.test: not delivered")
    );
    // alice is told in her inbox too.
    assert_told_not_delivered(&w.alice, "fay@tls.test").await;
    // dora's mail reached Postfix; nothing of fay's did, in plain or otherwise.
    delivered_outer(&w.postfix, "dora@pgp.test", &id).await;
    assert!(w.postfix.delivered("fay@tls.test").is_empty());
    let log = w.postfix.log();
    assert!(
        !log.contains("<fay@tls.test>"),
        "fay's mail reached Postfix:\n{log}"
    );
    assert_eq!(
        w.alpha
            .count("SELECT COUNT(*) FROM notifications WHERE kind = 'tls' AND state = 'failed'"),
        1
    );
}
