use super::*;

use std::path::Path;
use std::process::Command;

/// A throw-away TSA made with the `openssl` command (the same tool the docs verify with).
struct TestTsa {
    dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &str) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl TestTsa {
    fn new() -> TestTsa {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
        openssl(
            d,
            &format!(
                "req -x509 {ec} -keyout ca.key -out ca.pem -days 3650 -subj /CN=Test-TSA-CA \
                 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
            ),
        );
        openssl(
            d,
            &format!("req -new {ec} -keyout tsa.key -out tsa.csr -subj /CN=Test-TSA"),
        );
        std::fs::write(
            d.join("ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\n",
        )
        .unwrap();
        openssl(
            d,
            "x509 -req -in tsa.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 -extfile ext -out tsa.pem",
        );
        std::fs::write(d.join("serial"), "01\n").unwrap();
        std::fs::write(
            d.join("ts.cnf"),
            format!(
                "[ tsa ]\ndefault_tsa = t\n[ t ]\nserial = {0}/serial\ncrypto_device = builtin\n\
                 signer_cert = {0}/tsa.pem\ncerts = {0}/ca.pem\nsigner_key = {0}/tsa.key\n\
                 signer_digest = sha256\ndefault_policy = 1.3.6.1.4.1.99999.1\ndigests = sha256\n\
                 accuracy = secs:1\nordering = no\ntsa_name = no\ness_cert_id_chain = no\n\
                 ess_cert_id_alg = sha256\n",
                d.display()
            ),
        )
        .unwrap();
        TestTsa { dir }
    }

    fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("ca.pem")).unwrap()
    }

    /// A token over SHA-256(`data`).
    fn stamp(&self, data: &[u8]) -> Vec<u8> {
        let d = self.dir.path();
        std::fs::write(d.join("data"), data).unwrap();
        openssl(d, "ts -query -data data -sha256 -cert -out q.tsq");
        openssl(
            d,
            "ts -reply -config ts.cnf -queryfile q.tsq -token_out -out tok.der",
        );
        std::fs::read(d.join("tok.der")).unwrap()
    }
}

fn record(seq: u64, message_id: &str, event: Event, at: i64) -> Record {
    Record {
        at,
        detail: [("note".to_owned(), "x".to_owned())].into(),
        event,
        id: format!("r{seq}"),
        message_id: message_id.into(),
        node: "alpha.test".into(),
        parts: vec![hex::encode(Sha256::digest(b"part"))],
        recipient: Some("bob@beta.test".into()),
        sender: "alice@alpha.test".into(),
        v: 1,
    }
}

struct World {
    ca: Cert,
    ev: Cert,
    tsa: TestTsa,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn world() -> World {
    let ca = crate::crypto::generate_ca("alpha.test", system_time(now() - 3600)).unwrap();
    let ev = evidence_cert(&ca, &[9; 32], "alpha.test").unwrap();
    World {
        ca,
        ev,
        tsa: TestTsa::new(),
    }
}

/// A batch of five records, three about `m-1` (the others about `m-2`), and `m-1`'s bundle.
fn bundle(w: &World) -> Bundle {
    let t = now() - 60;
    let recs: Vec<Record> = vec![
        record(1, "m-1", Event::SubmissionAcceptance, t),
        record(2, "m-2", Event::SubmissionAcceptance, t),
        record(3, "m-1", Event::RelayAcceptance, t + 1),
        record(4, "m-2", Event::ContentConsignment, t + 1),
        record(5, "m-1", Event::AcceptanceByRecipient, t + 2),
    ];
    let bytes: Vec<Vec<u8>> = recs.iter().map(Record::to_bytes).collect();
    let sealed = seal("alpha.test", 1, &bytes, t + 3);
    let head = sealed.head.to_bytes();
    let at = system_time(t + 3);
    Bundle {
        format: BUNDLE_FORMAT.into(),
        message_id: "m-1".into(),
        ca_cert: crate::crypto::cert_to_armored(&w.ca).unwrap(),
        evidence_cert: crate::crypto::cert_to_armored(&w.ev).unwrap(),
        tsa_ca: Some(String::from_utf8(w.tsa.ca_pem()).unwrap()),
        records: [0usize, 2, 4]
            .iter()
            .map(|&i| BundleRecord {
                record: encode(&bytes[i]),
                signature: sign(&w.ev, &bytes[i], system_time(recs[i].at)).unwrap(),
                batch: 1,
                index: i as u64,
                proof: encode(&sealed.proofs[i]),
            })
            .collect(),
        batches: vec![BundleBatch {
            head: encode(&head),
            signature: sign(&w.ev, &head, at).unwrap(),
            timestamp: encode(&w.tsa.stamp(&head)),
        }],
        peers: Vec::new(),
    }
}

fn check(b: &Bundle) -> Result<Verified, VerifyError> {
    let bytes = serde_json::to_vec(b).unwrap();
    verify(
        &bytes,
        &Anchors {
            tsa_ca: None,
            ca: None,
            now: SystemTime::now(),
        },
    )
}

/// Flips one bit of the decoded base64 value at byte `at` (from the end when negative).
fn flip_b64(s: &str, at: isize) -> String {
    let mut v = B64.decode(s).unwrap();
    let i = if at < 0 {
        v.len() - (-at) as usize
    } else {
        at as usize
    };
    v[i] ^= 0x01;
    B64.encode(v)
}

/// Flips one bit of an armored signature's packet (inside the signature value).
fn flip_armored_sig(s: &str) -> String {
    let sig = crate::crypto::signature_from_armored(s).unwrap();
    let mut bytes = openpgp::serialize::MarshalInto::to_vec(&openpgp::Packet::from(sig)).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x01;
    let sig = openpgp::Packet::from_bytes(&bytes).unwrap();
    let openpgp::Packet::Signature(sig) = sig else {
        panic!("not a signature")
    };
    crate::crypto::signature_to_armored(&sig).unwrap()
}

use openpgp::parse::Parse;

/// Changes one character of an armored block's base64 body (its second line after the
/// headers).
fn flip_armor_char(s: &str) -> String {
    let mut lines: Vec<String> = s.lines().map(str::to_owned).collect();
    let blank = lines.iter().position(|l| l.is_empty()).unwrap();
    let line = &mut lines[blank + 2];
    let c = if line.starts_with('A') { "B" } else { "A" };
    line.replace_range(0..1, c);
    lines.join("\n")
}

#[test]
fn records_are_canonical_and_refuse_other_spellings() {
    let r = record(7, "m-1", Event::RejectionByRecipient, 1_800_000_000);
    let bytes = r.to_bytes();
    let text = String::from_utf8(bytes.clone()).unwrap();
    // Sorted keys, compact, the ETSI name as the event.
    assert!(text.starts_with(r#"{"at":1800000000,"detail":{"note":"x"},"event":"RejectionByRecipient","id":"r7","message_id":"m-1""#), "{text}");
    assert_eq!(Record::from_bytes(&bytes).unwrap(), r);
    let spaced = text.replace(",", ", ");
    assert!(Record::from_bytes(spaced.as_bytes()).is_err());
    let extra = text.replacen('{', r#"{"zz":1,"#, 1);
    assert!(Record::from_bytes(extra.as_bytes()).is_err());
}

#[test]
fn inclusion_proofs_place_each_record_and_only_there() {
    let recs: Vec<Vec<u8>> = (1..=7)
        .map(|i| record(i, "m", Event::ContentConsignment, 1).to_bytes())
        .collect();
    let s = seal("alpha.test", 1, &recs, 2);
    for (i, r) in recs.iter().enumerate() {
        assert!(proves_inclusion(&s.head, r, i as u64, &s.proofs[i]));
        assert!(!proves_inclusion(
            &s.head,
            r,
            (i as u64 + 1) % 7,
            &s.proofs[i]
        ));
    }
    assert!(!proves_inclusion(&s.head, &recs[1], 0, &s.proofs[0]));
}

#[test]
fn the_evidence_key_is_stable_and_certified_by_the_ca() {
    let w = world();
    let again = evidence_cert(&w.ca, &[9; 32], "alpha.test").unwrap();
    assert_eq!(again.fingerprint(), w.ev.fingerprint());
    let p = StandardPolicy::new();
    assert!(ca_certifies(
        &w.ca,
        &w.ev,
        "evidence@alpha.test",
        &p,
        SystemTime::now()
    ));
    let other = evidence_cert(&w.ca, &[8; 32], "alpha.test").unwrap();
    assert_ne!(other.fingerprint(), w.ev.fingerprint());
}

#[test]
fn a_bundle_verifies_and_carries_only_its_message() {
    let w = world();
    let b = bundle(&w);
    let v = check(&b).unwrap();
    assert_eq!(v.message_id, "m-1");
    assert_eq!(v.ca_fingerprint, w.ca.fingerprint().to_hex());
    let events: Vec<Event> = v.records.iter().map(|r| r.record.event).collect();
    assert_eq!(
        events,
        [
            Event::SubmissionAcceptance,
            Event::RelayAcceptance,
            Event::AcceptanceByRecipient
        ]
    );
    let text = serde_json::to_string(&b).unwrap();
    assert!(!text.contains("m-2"));
    // Pinning another CA fails on the CA.
    let other = crate::crypto::generate_ca("alpha.test", SystemTime::now()).unwrap();
    let err = verify(
        text.as_bytes(),
        &Anchors {
            tsa_ca: None,
            ca: Some(&other),
            now: SystemTime::now(),
        },
    )
    .unwrap_err();
    assert_eq!(err.part, "ca_cert");
    // A TSA CA given by the verifier that is not the token's: the time-stamp is named.
    let foreign = TestTsa::new();
    let err = verify(
        text.as_bytes(),
        &Anchors {
            tsa_ca: Some(&foreign.ca_pem()),
            ca: None,
            now: SystemTime::now(),
        },
    )
    .unwrap_err();
    assert_eq!(err.part, "batches[0].timestamp");
}

#[test]
fn one_changed_byte_in_any_part_names_that_part() {
    let w = world();
    let good = bundle(&w);
    check(&good).unwrap();
    type Tamper = fn(&mut Bundle);
    let cases: Vec<(&str, Tamper)> = vec![
        ("records[1].record", |b| {
            b.records[1].record = flip_b64(&b.records[1].record, 20)
        }),
        ("records[1].signature", |b| {
            b.records[1].signature = flip_armored_sig(&b.records[1].signature)
        }),
        ("records[1].proof", |b| {
            b.records[1].proof = flip_b64(&b.records[1].proof, 3)
        }),
        ("records[0].proof", |b| b.records[0].index = 1),
        ("batches[0].head", |b| {
            b.batches[0].head = flip_b64(&b.batches[0].head, 10)
        }),
        ("batches[0].signature", |b| {
            b.batches[0].signature = flip_armored_sig(&b.batches[0].signature)
        }),
        ("batches[0].timestamp", |b| {
            b.batches[0].timestamp = flip_b64(&b.batches[0].timestamp, -1)
        }),
        ("batches[0].timestamp", |b| {
            b.batches[0].timestamp = flip_b64(&b.batches[0].timestamp, 70)
        }),
        ("evidence_cert", |b| {
            let c = cert_from_armored(&b.evidence_cert).unwrap();
            let stripped = c.retain_userids(|_| false);
            b.evidence_cert = crate::crypto::cert_to_armored(&stripped).unwrap();
        }),
        ("ca_cert", |b| {
            let other = crate::crypto::generate_ca("alpha.test", SystemTime::now()).unwrap();
            b.ca_cert = crate::crypto::cert_to_armored(&other).unwrap();
        }),
        ("ca_cert", |b| b.ca_cert = flip_armor_char(&b.ca_cert)),
        ("evidence_cert", |b| {
            b.evidence_cert = flip_armor_char(&b.evidence_cert)
        }),
        ("records[2].batch", |b| b.records[2].batch = 9),
        ("bundle", |b| b.format = "x".into()),
    ];
    for (part, tamper) in cases {
        let mut b = good.clone();
        tamper(&mut b);
        let err = check(&b).unwrap_err();
        let want = if part == "bundle" { "format" } else { part };
        assert_eq!(err.part, want, "{part}: {err}");
    }
    // A record moved into another message's bundle is refused.
    let mut b = good.clone();
    b.message_id = "m-2".into();
    assert_eq!(check(&b).unwrap_err().part, "records[0].record");
}
