//! Fuzz targets for every decoder of Sealpost that reads bytes from outside.
//!
//! Each target is a plain function of one byte string ([`TARGETS`]): it feeds the bytes to
//! the real decoder the network, a client or an operator reaches, and checks the few
//! properties that must hold of whatever comes out (a decoded frame encodes and decodes to
//! itself, an accepted envelope is within the limits, a merge never changes the key or keeps
//! secret material, …). A panic, an overflow (fuzz builds check arithmetic) or a failed
//! property is a crash.
//!
//! The targets run three ways (`tests/targets.rs`, `scripts/fuzz`):
//! - `cargo test -p sealpost-fuzz`: every seed in `fuzz/corpus/<target>/`, a fixed number of
//!   deterministic mutations of them ([`mutations`]), and bolero's short random pass;
//! - `cargo bolero test --engine libfuzzer`: coverage-guided, seeded from the same corpus;
//! - `scripts/fuzz`: that, for 10^6 executions per target, with the figures appended to
//!   `fuzz/results.jsonl`.
//!
//! The fixed certificates the targets need (an enrolled user, an organisation CA) are in
//! `fuzz/fixtures/`; the seeds that depend on them were made together with them by the ignored
//! test `regenerate_fixtures` (see `tests/targets.rs`).

// The library's own test binary links the fuzzing engine's runtime too: under `cargo bolero`
// every object is instrumented, and the instrumentation's hooks live there.
#[cfg(test)]
use bolero as _;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use sealpost_directory::{MergeLimits, certs, hkp, vks, wkd};
use sealpost_federation::frame::{self, BatchProof, Frame, Limits, Transfer};
use sealpost_federation::net::wire;
use sequoia_openpgp::Cert;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::serialize::MarshalInto;

/// One fuzz target: its name (also its corpus folder) and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, in the order `scripts/fuzz` runs them.
pub const TARGETS: &[Target] = &[
    ("frame", frame),
    ("wire", wire),
    ("batch_proof", batch_proof),
    ("envelope", envelope),
    ("signature", signature),
    ("ciphertext", ciphertext),
    ("keytext", keytext),
    ("cert", cert),
    ("hkp", hkp),
    ("vks", vks),
    ("wkd", wkd),
    ("merge", merge),
    ("config", config),
    ("outside_key", outside_key),
    ("smtp_session", smtp_session),
];

/// The organisation domain of the fixtures.
pub const DOMAIN: &str = "example.org";
/// The enrolled user of the fixtures.
pub const ALICE: &str = "alice@example.org";
/// The envelope bytes that `fixtures/alice-envelope.sig` signs.
pub const SIGNED_ENVELOPE: &str = include_str!("../fixtures/envelope.json");

static ALICE_ASC: &str = include_str!("../fixtures/alice.asc");
static CA_ASC: &str = include_str!("../fixtures/ca.asc");

/// The enrolled user's public certificate (the directory's existing copy in `merge`).
pub fn alice() -> &'static Cert {
    static C: OnceLock<Cert> = OnceLock::new();
    C.get_or_init(|| Cert::from_bytes(ALICE_ASC.as_bytes()).expect("fixtures/alice.asc"))
}

/// The organisation CA's public certificate (the known certifier in `merge`).
pub fn ca() -> &'static Cert {
    static C: OnceLock<Cert> = OnceLock::new();
    C.get_or_init(|| Cert::from_bytes(CA_ASC.as_bytes()).expect("fixtures/ca.asc"))
}

fn policy() -> &'static StandardPolicy<'static> {
    static P: OnceLock<StandardPolicy<'static>> = OnceLock::new();
    P.get_or_init(StandardPolicy::new)
}

/// A fixed time after the fixtures were made, so that a run does not depend on the clock.
fn fixture_time() -> SystemTime {
    alice().primary_key().key().creation_time() + Duration::from_secs(3600)
}

/// A fixed peer node key (Ed25519) for the signature checks on decoded frames.
fn peer_key() -> &'static libp2p::identity::PublicKey {
    static K: OnceLock<libp2p::identity::PublicKey> = OnceLock::new();
    K.get_or_init(|| {
        libp2p::identity::Keypair::ed25519_from_bytes([7u8; 32])
            .expect("32 bytes")
            .public()
    })
}

fn lossy(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

// ---- federation ----------------------------------------------------------------------------

/// A federation frame as the driver gets it from a peer (`frame::decode`), then what the
/// driver does with a decoded frame before trusting it: signing digests, batch proofs and the
/// node signature check. Property: a decoded frame encodes and decodes to itself, and every
/// proof of a batch places its transfer under the batch's signed head.
pub fn frame(data: &[u8]) {
    let limits = Limits::default();
    let Ok(f) = frame::decode(data, &limits) else {
        return;
    };
    let again = frame::encode(&f);
    if again.len() <= limits.max_frame_bytes {
        assert_eq!(
            frame::decode(&again, &limits).as_ref(),
            Ok(&f),
            "a decoded frame must encode and decode to itself"
        );
    }
    check_frame_signatures(&f);
}

fn check_frame_signatures(f: &Frame) {
    let key = peer_key();
    match f {
        Frame::Transfer(t) => {
            let _ = t.signing_digest();
            let _ = wire::verify_transfer(key, t);
        }
        Frame::Receipt(r) => {
            let _ = r.signing_digest();
            let _ = wire::verify_receipt(key, r);
        }
        Frame::Batch(b) => {
            let head = b.signing_digest();
            for (t, p) in b.transfers.iter().zip(b.proofs()) {
                assert_eq!(p.signed_digest_of_transfer(t), Some(head));
            }
            let _ = wire::verify_batch(key, b);
        }
        Frame::BatchAnswer(a) => {
            let head = a.signing_digest();
            for (r, p) in a.receipts.iter().zip(a.proofs()) {
                assert_eq!(p.signed_digest_of_receipt(r), Some(head));
            }
            let _ = wire::verify_batch_answer(key, a);
        }
        _ => {}
    }
}

/// A federation stream: length-prefixed frames read by `wire::read_frame` until the stream
/// ends or a frame is refused.
pub fn wire(data: &[u8]) {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
    }
    let limits = Limits::default();
    RT.with(|rt| {
        rt.block_on(async {
            let mut r = futures::io::Cursor::new(data);
            // A frame is at least a 4-byte prefix, so this reads every frame the bytes hold.
            for _ in 0..=data.len() / 4 {
                let wait = Duration::from_secs(5);
                match wire::read_frame(&mut r, &limits, wait, wait).await {
                    Ok(f) => check_frame_signatures(&f),
                    Err(_) => break,
                }
            }
        })
    });
}

/// A batch proof as the node stores it beside a batched message and checks it later (JSON),
/// against a transfer given as JSON in the rest of the input (the two separated by a NUL).
pub fn batch_proof(data: &[u8]) {
    let (proof, transfer) = split_at_nul(data);
    let Ok(proof) = serde_json::from_slice::<BatchProof>(proof) else {
        return;
    };
    let transfer: Transfer = serde_json::from_slice(transfer).unwrap_or_else(|_| Transfer {
        message_id: "m".into(),
        envelope: "{}".into(),
        signature: "s".into(),
        sender_cert: String::new(),
        parts: Vec::new(),
        node_sig: Vec::new(),
    });
    let _ = proof.signed_digest_of_transfer(&transfer);
    let _ = proof.signed_digest_of_receipt(&frame::Receipt {
        message_id: transfer.message_id.clone(),
        accepted: Vec::new(),
        refused: Vec::new(),
        node_sig: Vec::new(),
    });
}

fn split_at_nul(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

// ---- the node's submit path ----------------------------------------------------------------

/// The body of `POST /api/v1/messages` as the submit handler reads it: the request JSON, the
/// signed envelope inside it (`service::mail::check_envelope` with the default limits), the recipient
/// addresses, the detached signature's armor, and each inline part (base64, then the
/// ciphertext's first packets). Property: an accepted envelope is within the limits.
pub fn envelope(data: &[u8]) {
    use base64::Engine as _;
    let Ok(req) = serde_json::from_slice::<sealpost_proto::SubmitRequest>(data) else {
        return;
    };
    let _ = sealpost_proto::crypto::signature_from_armored(&req.signature);
    let limits = sealpost::config::Limits::default();
    if let Ok(env) = sealpost::service::mail::check_envelope(&limits, &req.envelope) {
        assert!(!env.parts.is_empty() && env.parts.len() <= limits.max_parts);
        let total = env
            .parts
            .iter()
            .try_fold(0u64, |sum, p| sum.checked_add(p.size));
        assert!(
            total.is_some_and(|t| t <= limits.max_message_bytes),
            "an accepted envelope's parts must fit in max_message_bytes"
        );
        assert!(sealpost_proto::is_message_id(&env.message_id));
        for a in env.to.iter().chain([&env.from]) {
            if let Some(n) = sealpost_proto::normalize_address(a) {
                assert_eq!(
                    sealpost_proto::normalize_address(&n).as_deref(),
                    Some(n.as_str())
                );
            }
        }
    }
    for b64 in req.inline_parts.values() {
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64) {
            let _ = sealpost_proto::crypto::pkesk_recipients_of_bytes(&bytes);
        }
    }
}

/// The detached signature of a submission (`SubmitRequest::signature`), checked as the submit
/// handler checks it: against the sender's certificate over the envelope bytes.
pub fn signature(data: &[u8]) {
    let _ = sealpost_proto::crypto::verify_detached(
        alice(),
        policy(),
        fixture_time(),
        SIGNED_ENVELOPE.as_bytes(),
        &lossy(data),
    );
}

/// A ciphertext part (inline in a submission or a transfer, or uploaded): the recipients of
/// its first packets, in memory and through a reader.
pub fn ciphertext(data: &[u8]) {
    let a = sealpost_proto::crypto::pkesk_recipients_of_bytes(data);
    let mut reader = data;
    let b = sealpost_proto::crypto::pkesk_recipients(&mut reader);
    assert_eq!(
        a.ok(),
        b.ok(),
        "in memory and through a reader must agree on the recipients"
    );
}

// ---- certificates --------------------------------------------------------------------------

/// The body of `POST /pks/add` (`certs::parse_keytext`), then what the directory serves of the
/// certificate. Property: what it serves parses back to the same key.
pub fn keytext(data: &[u8]) {
    let config = sealpost_directory::DirectoryConfig::new(DOMAIN);
    let Ok(cert) = certs::parse_keytext(data, config.max_keytext_bytes()) else {
        return;
    };
    let _ = certs::has_address(&cert, ALICE);
    // Sequoia exports nothing of a certificate without a valid self-signature (the merge
    // refuses those); only a valid one must come back whole.
    let valid = cert.with_policy(policy(), fixture_time()).is_ok();
    if let Ok(bin) = certs::binary(std::slice::from_ref(&cert))
        && valid
    {
        let back = Cert::from_bytes(&bin).expect("the directory's export parses");
        assert_eq!(back.fingerprint(), cert.fingerprint());
    }
    let _ = certs::armored(std::slice::from_ref(&cert));
}

/// A certificate as the node reads one from a client or a peer (`crypto::cert_from_armored`),
/// then the enrolment check (`crypto::check_user_cert`). Property: an accepted certificate
/// holds no secret key material, and a valid one armors back to the same key.
pub fn cert(data: &[u8]) {
    let Ok(cert) = sealpost_proto::crypto::cert_from_armored(&lossy(data)) else {
        return;
    };
    assert!(!cert.is_tsk(), "cert_from_armored must refuse secret keys");
    let _ = sealpost_proto::crypto::check_user_cert(&cert, ALICE, policy(), fixture_time());
    let valid = cert.with_policy(policy(), fixture_time()).is_ok();
    if let Ok(text) = sealpost_proto::crypto::cert_to_armored(&cert)
        && valid
    {
        let back = sealpost_proto::crypto::cert_from_armored(&text).expect("our own armor parses");
        assert_eq!(back.fingerprint(), cert.fingerprint());
    }
}

// ---- directory requests --------------------------------------------------------------------

/// The query string of `GET /pks/lookup` (`hkp::parse_lookup`). Property: a parsed search is
/// within the documented bounds.
pub fn hkp(data: &[u8]) {
    let query = lossy(data);
    if let Ok(l) = hkp::parse_lookup(&query) {
        match &l.search {
            hkp::Search::Email(e) => assert!(e.contains('@')),
            hkp::Search::Text(t) => {
                assert!(t.chars().count() >= hkp::MIN_TEXT_SEARCH_CHARS);
                assert!(t.chars().count() <= hkp::MAX_SEARCH_CHARS);
            }
            hkp::Search::Fingerprint(_) | hkp::Search::KeyId(_) => {}
        }
    }
    let _ = hkp::parse_search(&query);
}

/// The path parameters of `/vks/v1/by-fingerprint/…`, `by-keyid/…` and `by-email/…`.
pub fn vks(data: &[u8]) {
    let s = lossy(data);
    let _ = vks::parse_fingerprint(&s);
    let _ = vks::parse_keyid(&s);
    if let Ok(e) = vks::parse_email(&s) {
        assert!(e.len() <= vks::MAX_ADDRESS * 2);
    }
}

/// A WKD request, `HASH?QUERY` (direct method; the advanced method's domain segment is the
/// part before a `/`): the hash segment, the `l` parameter as the router extracts it, and the
/// check of a stored certificate's addresses against the hash.
pub fn wkd(data: &[u8]) {
    let text = lossy(data);
    let (path, query) = text.split_once('?').unwrap_or((&text, ""));
    let (domain, hash) = path.rsplit_once('/').unwrap_or((DOMAIN, path));
    let _ = wkd::domain_matches(DOMAIN, domain);
    let Ok(hash) = wkd::parse_hash(hash) else {
        return;
    };
    let _ = wkd::has_hashed_address(alice(), hash, DOMAIN);
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name == "l"
            && let Ok(l) = wkd::check_local_part(hash, &value)
        {
            assert_eq!(wkd::wkd_hash(l), hash);
        }
    }
    let h = wkd::wkd_hash(&text);
    assert!(
        wkd::parse_hash(&h).is_ok(),
        "wkd_hash must give a valid hash"
    );
}

/// The directory's update policy: fuzzed update bytes merged into the enrolled user's existing
/// certificate, with the organisation CA as the one known certifier (`merge_update_verified`,
/// as `POST /pks/add` does, and `merge_update`). Property: the merge keeps the key, stores no
/// secret material and stays within the size limit.
pub fn merge(data: &[u8]) {
    let Ok(update) = Cert::from_bytes(data) else {
        return;
    };
    let limits = MergeLimits {
        max_cert_bytes: 64 * 1024,
        max_signatures_per_update: 64,
        max_signatures_per_user_id: 256,
    };
    if sealpost_directory::check_update_limits(&update, &limits).is_err() {
        return;
    }
    let _ = sealpost_directory::third_party_issuers(&update, limits.max_signatures_per_update);
    let existing = alice();
    // As the node allows: new user IDs only for the addresses the CA vouches for on the key.
    let allowed: Vec<String> = existing
        .userids()
        .filter_map(|u| u.userid().email_normalized().ok().flatten())
        .collect();
    let new_user_ids = sealpost_directory::NewUserIds::ForAddresses(&allowed);
    let check = |o: &sealpost_directory::MergeOutcome| {
        assert_eq!(o.cert.fingerprint(), existing.fingerprint());
        for u in o.cert.userids() {
            let held = existing.userids().any(|e| e.userid() == u.userid());
            let address = u.userid().email_normalized().ok().flatten();
            assert!(
                held || address.is_some_and(|a| allowed.contains(&a)),
                "a merge added a user ID for an address nobody vouched for"
            );
        }
        assert!(
            !o.cert.is_tsk(),
            "a merged certificate holds no secret material"
        );
        let bytes = o.cert.to_vec().expect("serialises").len();
        assert!(
            bytes <= limits.max_cert_bytes,
            "merged certificate over the limit"
        );
    };
    if let Ok(o) = sealpost_directory::merge_update_verified(
        Some(existing),
        update.clone(),
        std::slice::from_ref(ca()),
        new_user_ids,
        &limits,
    ) {
        check(&o);
    }
    let ca_handle = sequoia_openpgp::KeyHandle::from(ca().fingerprint());
    if let Ok(o) = sealpost_directory::merge_update(
        Some(existing),
        update,
        |h| h.aliases(&ca_handle),
        new_user_ids,
        &limits,
    ) {
        check(&o);
    }
}

// ---- configuration -------------------------------------------------------------------------

/// `sealpost.toml` as the node loads it (`Config::from_toml_with_env`, which validates), with
/// `SEALPOST__…=value` overrides taken from the lines after the first NUL. Property: a loaded
/// configuration writes out (`to_toml`) to text that loads to the same configuration.
pub fn config(data: &[u8]) {
    let (text, env) = split_at_nul(data);
    let text = lossy(text);
    let env: Vec<(String, String)> = lossy(env)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let path = Path::new("sealpost.toml");
    let Ok(config) = sealpost::config::Config::from_toml_with_env(&text, path, env) else {
        return;
    };
    let again = config.to_toml();
    let back = sealpost::config::Config::from_toml_with_env(&again, path, Vec::new())
        .expect("a loaded configuration writes out to one that loads");
    assert_eq!(back, config);
}

/// An outside key as a user or an administrator imports it, and as a WKD or keyserver answers
/// (`service::outside_keys::parse_import`, `certs_for_address`). Properties: an accepted import
/// carries at least one normalised address and no secret key; every certificate kept from an
/// answer carries the address asked for and no secret key material.
pub fn outside_key(data: &[u8]) {
    use sealpost::service::outside_keys;
    let config = sealpost::config::DeliveryConfig::default();
    if let Ok(k) = outside_keys::parse_import(&config, data, None, fixture_time()) {
        assert!(!k.addresses.is_empty(), "an import carries an address");
        for a in &k.addresses {
            assert_eq!(sealpost::normalize_address(a).as_deref(), Some(a.as_str()));
        }
        assert!(
            !k.material.contains("PRIVATE KEY"),
            "no secret key is stored"
        );
    }
    for cert in outside_keys::certs_for_address(data, ALICE) {
        assert!(!cert.is_tsk(), "no secret key material is kept");
        assert!(outside_keys::carries(&cert, ALICE));
    }
}

/// The SMTP door's session (`sealpost::smtp_in::session`) on a client's bytes, fed in pieces
/// (each piece's length from the byte before it), every check and commit answered: it must
/// end, answer only well-formed replies, and never hand on more mail bytes than it was sent.
/// An odd first byte makes it the submission gateway's session (AUTH PLAIN, answered yes for
/// an even-length user name): no mail is taken before a login, and none from another sender.
pub fn smtp_session(data: &[u8]) {
    use sealpost::smtp_in::session::{Session, Settings, Step};
    let t = std::time::Instant::now();
    let settings = Settings {
        hostname: "mx.example.org".into(),
        max_message_bytes: 512,
        max_recipients: 3,
        max_errors: 5,
        tls_available: true,
        command_timeout: Duration::from_secs(10),
        data_timeout: Duration::from_secs(10),
        submission: data.first().is_some_and(|b| b % 2 == 1),
    };
    let submission = settings.submission;
    let mut s = Session::new(settings, t);
    let mut rest = data;
    let mut mail = 0usize;
    let mut steps = 0usize;
    loop {
        steps += 1;
        assert!(steps <= 16 * (data.len() + 16), "the session does not end");
        match s.step() {
            Step::Reply(r) => {
                assert!(r.ends_with("\r\n") && r.len() >= 5, "{r:?}");
                assert!(r.as_bytes()[..3].iter().all(u8::is_ascii_digit), "{r:?}");
                assert!(!r[..r.len() - 2].contains(['\r', '\n']) || r.starts_with("250-"));
            }
            Step::CheckRecipient(a) => s.recipient_checked(if a.len() % 2 == 0 {
                Ok(())
            } else {
                Err("550 5.1.1 no\r\n".into())
            }),
            Step::Authenticate { user, .. } => s.authenticated(if user.len() % 2 == 0 {
                Ok(user.to_lowercase())
            } else {
                Err("535 5.7.8 no\r\n".into())
            }),
            Step::BeginData => {
                if submission {
                    let (from, _) = s.envelope();
                    assert!(s.is_tls(), "no mail before TLS");
                    assert_eq!(Some(from), s.user(), "mail only from the logged-in user");
                }
                s.data_began(Ok(()))
            }
            Step::Data(d) => {
                mail += d.len();
                if mail > 512 {
                    s.data_refused("552 5.3.4 too big\r\n".into());
                }
            }
            Step::EndData => {
                mail = 0;
                s.data_committed(Ok(()));
            }
            Step::StartTls => s.tls_started(),
            Step::NeedInput => {
                let Some((&n, tail)) = rest.split_first() else {
                    break;
                };
                let take = (n as usize % 64 + 1).min(tail.len());
                let (piece, after) = tail.split_at(take);
                assert!(mail <= data.len());
                s.feed(piece, t);
                rest = after;
                if piece.is_empty() {
                    s.eof();
                }
            }
            Step::Close => break,
        }
    }
}

// ---- corpus and mutations ------------------------------------------------------------------

/// `fuzz/corpus/<target>/`: the seeds kept in the repository.
pub fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

/// The seed files of a target, sorted by name.
pub fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(corpus_dir(target))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// `count` deterministic mutations of `seeds` (bit flips, byte and ASCII-digit substitutions,
/// insertions, deletions, duplicated runs, splices of two seeds), from `seed`: the cheap
/// stand-in for a fuzzer's mutations that the short pass under `cargo test` runs.
pub fn mutations(seeds: &[Vec<u8>], count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = seed | 1;
    let mut next = move || {
        // xorshift64*
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    if seeds.is_empty() {
        return Vec::new();
    }
    const INTERESTING: &[&[u8]] = &[
        b"0",
        b"-1",
        b"18446744073709551615",
        b"9223372036854775807",
        b"4294967296",
        b"\"\"",
        b"[]",
        b"{}",
        b"null",
        b"%",
        b"%00",
        b"\x00",
        b"\xff\xff\xff\xff",
        b"=",
        b"&",
        b"\n",
    ];
    (0..count)
        .map(|_| {
            let mut m = seeds[next() as usize % seeds.len()].clone();
            for _ in 0..1 + next() % 4 {
                let len = m.len();
                let at = if len == 0 { 0 } else { next() as usize % len };
                match next() % 8 {
                    0 if len > 0 => m[at] ^= 1 << (next() % 8),
                    1 if len > 0 => m[at] = next() as u8,
                    2 => m.insert(at, next() as u8),
                    3 if len > 0 => {
                        let n = (1 + next() as usize % 16).min(len - at);
                        m.drain(at..at + n);
                    }
                    4 => {
                        let word = INTERESTING[next() as usize % INTERESTING.len()];
                        let n = (next() as usize % 4).min(len - at);
                        m.splice(at..at + n, word.iter().copied());
                    }
                    5 if len > 0 => {
                        let n = (1 + next() as usize % 64).min(len - at);
                        let run = m[at..at + n].to_vec();
                        m.splice(at..at, run);
                    }
                    6 => {
                        let other = &seeds[next() as usize % seeds.len()];
                        let from = if other.is_empty() {
                            0
                        } else {
                            next() as usize % other.len()
                        };
                        m.truncate(at);
                        m.extend_from_slice(&other[from..]);
                    }
                    _ if len > 0 && m[at].is_ascii_digit() => m[at] = b'0' + (next() % 10) as u8,
                    _ => {}
                }
            }
            m
        })
        .collect()
}
