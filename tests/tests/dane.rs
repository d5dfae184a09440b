//! DANE for direct delivery (RFC 7672), with real parts: a Postfix MX with a certificate from
//! a test CA (tests/src/smtp.rs), and an unbound (tests/src/dns.rs) that validates a zone
//! signed at test time (`ldns-signzone`), so the AD bit the node trusts is real. `tls.test`
//! is in the signed zone with TLSA records for its MX; `plain.test` is unsigned (insecure).
//! The MX's port is Postfix's (`direct_port`), and the TLSA records are published for it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sealpost::config::{DeliveryPin, DomainTls, TlsPolicy};
use sealpost::storage::notify::NotificationState;
use sealpost_tests::dns::{SignedZone, Unbound, direct_delivery, notify, settled};
use sealpost_tests::smtp::{Postfix, TestCa};
use sealpost_tests::{TestNode, wait_for};

const PLAIN_ZONE: &[&str] = &[
    "plain.test. 300 IN MX 10 mx.plain.test.",
    "mx.plain.test. 300 IN A 127.0.0.1",
];

/// The TLSA record `usage selector matching` (hex data) for the first certificate in the
/// PEM file `cert`.
fn tlsa(usage: u8, selector: u8, matching: u8, cert: &Path) -> String {
    let x = openssl::x509::X509::from_pem(&std::fs::read(cert).unwrap()).unwrap();
    let selected = if selector == 0 {
        x.to_der().unwrap()
    } else {
        x.public_key().unwrap().public_key_to_der().unwrap()
    };
    let data = match matching {
        1 => openssl::sha::sha256(&selected).to_vec(),
        2 => openssl::sha::sha512(&selected).to_vec(),
        _ => selected,
    };
    let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
    format!("{usage} {selector} {matching} {hex}")
}

/// Postfix as the MX of tls.test and plain.test, serving `cert` (its chain file) with `key`;
/// unbound with tls.test signed, its MX publishing `record` for Postfix's port.
async fn setup(cert: (PathBuf, PathBuf), record: &str) -> (Postfix, Unbound) {
    setup_zone(cert, Some(record), None).await
}

/// [`setup`], the TLSA record signed (`signed`) or slipped in unsigned (`forged`).
async fn setup_zone(
    cert: (PathBuf, PathBuf),
    signed: Option<&str>,
    forged: Option<&str>,
) -> (Postfix, Unbound) {
    let postfix = Postfix::start_with(&["fay@tls.test", "gus@plain.test"], Some(cert), None)
        .await
        .unwrap();
    let tlsa = |r: &str| format!("_{}._tcp.mx.tls.test. 300 IN TLSA {r}", postfix.port);
    let mut records = vec![
        "tls.test. 300 IN MX 10 mx.tls.test.".to_owned(),
        "mx.tls.test. 300 IN A 127.0.0.1".to_owned(),
    ];
    records.extend(signed.map(tlsa));
    let records: Vec<&str> = records.iter().map(String::as_str).collect();
    let forged: Vec<String> = forged.map(tlsa).into_iter().collect();
    let forged: Vec<&str> = forged.iter().map(String::as_str).collect();
    let zone = SignedZone {
        apex: "tls.test.",
        records: &records,
        forged: &forged,
    };
    let dns = Unbound::start_signed(PLAIN_ZONE, Some(zone)).await.unwrap();
    (postfix, dns)
}

/// The mail Postfix put into `address`'s Maildir (it delivers a moment after its 250).
async fn arrived(postfix: &Postfix, address: &str) -> String {
    let files = wait_for(Duration::from_secs(20), async || {
        let f = postfix.delivered(address);
        (!f.is_empty()).then_some(f)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", postfix.log()));
    assert_eq!(files.len(), 1);
    std::fs::read_to_string(&files[0]).unwrap()
}

fn dane_for(domain: &str) -> Vec<DomainTls> {
    vec![DomainTls {
        domain: domain.into(),
        policy: TlsPolicy::Dane,
    }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dane_ee_record_matching_the_mx_key_delivers_over_tls_whatever_the_certificate_names() {
    let ca = TestCa::new().unwrap();
    // A certificate for another name: DANE-EE binds the key, not names (RFC 7672 §3.1.1).
    let cert = ca.issue("mx", &["mx.elsewhere.test"]).unwrap();
    let record = tlsa(3, 1, 1, &cert.0);
    delivered_under_dane(&ca, cert, &record).await;
}

/// Mail to fay@tls.test, whose domain is held to DANE (`[[relay.tls]]`), with the MX serving
/// `cert` and publishing `record`: sent, in fay's Maildir, and Postfix's Received header
/// says it came over TLS.
async fn delivered_under_dane(ca: &TestCa, cert: (PathBuf, PathBuf), record: &str) {
    let (postfix, dns) = setup(cert, record).await;
    let node = TestNode::spawn_with(
        "alpha.test",
        direct_delivery(&dns, postfix.port, &ca.ca_file(), 443, dane_for("tls.test")),
    )
    .await
    .unwrap();
    let r = settled(&node, notify(&node, "fay@tls.test").await).await;
    assert_eq!(r.state, NotificationState::Sent, "{r:?}\n{}", postfix.log());
    let mail = arrived(&postfix, "fay@tls.test").await;
    let received = mail.lines().take(8).collect::<Vec<_>>().join("\n");
    assert!(
        received.contains("(using TLSv1."),
        "the Received header shows no TLS:\n{received}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tlsa_record_that_does_not_match_fails_the_recipient_even_unpinned_and_nothing_is_sent() {
    let ca = TestCa::new().unwrap();
    let cert = ca.issue("mx", &["mx.tls.test"]).unwrap();
    // The record of another key: a valid CA-issued certificate for the right name does not
    // make up for it, and no policy is pinned: DANE applies because the records are signed.
    let other = ca.issue("other", &["mx.tls.test"]).unwrap();
    let record = tlsa(3, 1, 1, &other.0);
    let (postfix, dns) = setup(cert, &record).await;
    let node = TestNode::spawn_with(
        "alpha.test",
        direct_delivery(&dns, postfix.port, &ca.ca_file(), 443, vec![]),
    )
    .await
    .unwrap();

    let r = settled(&node, notify(&node, "fay@tls.test").await).await;
    assert_eq!(r.state, NotificationState::Failed, "{r:?}");
    assert_eq!(
        r.last_error.as_deref(),
        Some(
            "tls.test's mail server mx.tls.test presented a certificate that does not match \
             the domain's TLSA records: not delivered"
        )
    );
    // plain.test (unsigned) on the same server still gets mail: the server was up.
    let r = settled(&node, notify(&node, "gus@plain.test").await).await;
    assert_eq!(r.state, NotificationState::Sent, "{r:?}\n{}", postfix.log());
    arrived(&postfix, "gus@plain.test").await;
    assert!(postfix.delivered("fay@tls.test").is_empty());
    let log = postfix.log();
    assert!(
        !log.contains("<fay@tls.test>"),
        "fay's mail reached Postfix:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_a_domain_pinned_to_dane_whose_dns_is_unsigned_fails_and_alice_sees_why() {
    use sealpost_client::Outgoing;
    use sealpost_proto::{DeliveryMode, Folder};
    let ca = TestCa::new().unwrap();
    let cert = ca.issue("mx", &["mx.plain.test"]).unwrap();
    let record = tlsa(3, 1, 1, &cert.0);
    let (postfix, dns) = setup(cert, &record).await;
    let tweak = direct_delivery(&dns, postfix.port, &ca.ca_file(), 443, vec![]);
    let node = TestNode::spawn_with("alpha.test", move |c| {
        tweak(c);
        c.delivery.pins.push(DeliveryPin {
            domain: "plain.test".into(),
            mode: DeliveryMode::Tls,
            tls: Some(TlsPolicy::Dane),
        });
    })
    .await
    .unwrap();
    let alice = node.person("alice").await;
    let work = tempfile::tempdir().unwrap();
    let (resp, _) = alice
        .send_all(
            &Outgoing {
                to: vec!["gus@plain.test".into()],
                subject: "Wire instructions".into(),
                body: "Dear Gus,\n7d0f-plain-body.\nAlice".into(),
                attachments: vec![],
                pickup_kdf: None,
            },
            work.path(),
        )
        .await
        .unwrap();
    assert_eq!(resp.recipients[0].mode, Some(DeliveryMode::Tls));
    let state = wait_for(Duration::from_secs(20), async || {
        let sent = alice.mailbox(Folder::Sent).await.unwrap();
        let item = sent.into_iter().next()?;
        item.delivery.into_iter().find(|d| d.state != "queued")
    })
    .await
    .unwrap();
    assert_eq!(state.state, "failed", "{state:?}");
    assert_eq!(
        state.reason.as_deref(),
        Some("plain.test publishes no DNSSEC-signed TLSA records for mx.plain.test: not delivered")
    );
    assert!(postfix.delivered("gus@plain.test").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dane_ta_record_of_the_issuing_ca_delivers_when_the_mx_sends_its_chain() {
    let ca = TestCa::new().unwrap();
    let (cert, key) = ca.issue("mx", &["mx.tls.test"]).unwrap();
    // Postfix sends its certificate and then the CA's (RFC 7672 §3.1.2: the anchor goes
    // with the chain).
    let chain = ca.dir.path().join("mx-chain.pem");
    let mut pem = std::fs::read(&cert).unwrap();
    pem.extend(std::fs::read(ca.ca_file()).unwrap());
    std::fs::write(&chain, pem).unwrap();
    let record = tlsa(2, 0, 1, &ca.ca_file());
    delivered_under_dane(&ca, (chain, key), &record).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_unsigned_tlsa_record_in_a_signed_zone_is_bogus_and_the_mail_waits_unsent() {
    let ca = TestCa::new().unwrap();
    let cert = ca.issue("mx", &["mx.tls.test"]).unwrap();
    // Even a record that matches: its answer is bogus, so the host is not tried at all
    // (RFC 7672 §2.2), neither under DANE nor in plain.
    let record = tlsa(3, 1, 1, &cert.0);
    let (postfix, dns) = setup_zone(cert, None, Some(&record)).await;
    let node = TestNode::spawn_with(
        "alpha.test",
        direct_delivery(&dns, postfix.port, &ca.ca_file(), 443, vec![]),
    )
    .await
    .unwrap();
    let id = notify(&node, "fay@tls.test").await;
    let r = wait_for(Duration::from_secs(20), async || {
        use sealpost::storage::NotifyStore;
        let r = node.store.notification(id).await.unwrap().unwrap();
        (r.attempts > 0).then_some(r)
    })
    .await
    .unwrap();
    assert_eq!(r.state, NotificationState::Queued, "{r:?}");
    let error = r.last_error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with(
            "The mail server of tls.test (mx.tls.test) could not be reached: the DNS look-up \
             of mx.tls.test's TLSA records failed: "
        ),
        "{error}"
    );
    assert!(postfix.delivered("fay@tls.test").is_empty());
    // The only connection Postfix saw is the test kit's readiness probe: no EHLO (its
    // disconnect line would count `ehlo=1`).
    assert!(
        !postfix.log().contains("ehlo="),
        "the node spoke to the MX:\n{}",
        postfix.log()
    );
}
