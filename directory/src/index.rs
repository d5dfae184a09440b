//! HKP key listings (`op=index` / `op=vindex`): the machine-readable format of
//! draft-gallagher-openpgp-hkp section "Machine-Readable Output" (`info:`, `pub:`, `uid:` lines,
//! colon-separated, user IDs %-escaped) and a plain human-readable listing.
//!
//! Pure: certificates and "now" in, text out. Validity flags are computed under Sequoia's
//! standard policy at the given time only to fill the `r`/`e` flags; this is no trust verdict
//! (that is the `trust/` crate's job) and clients must not read it as one.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use sequoia_openpgp::Cert;
use sequoia_openpgp::packet::Signature;
use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::types::RevocationStatus;

/// Escapes a user ID for an `uid:` line: every byte outside printable 7-bit ASCII, and `:` (the
/// field separator) and `%` (the escape character), becomes `%XX` with upper-case hex digits.
/// The draft requires escaping for non-7-bit-safe bytes and `:`; escaping `%` keeps the
/// encoding reversible.
pub fn escape_uid(uid: &[u8]) -> String {
    let mut out = String::with_capacity(uid.len());
    for &b in uid {
        if (0x20..0x7f).contains(&b) && b != b':' && b != b'%' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// What a listing says about a primary key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyFacts {
    fingerprint: String,
    algo: u8,
    bits: Option<usize>,
    created: u64,
    expires: Option<u64>,
    revoked: bool,
    expired: bool,
}

/// What a listing says about a user ID (taken from its newest self-signature).
#[derive(Debug, Clone, PartialEq, Eq)]
struct UidFacts<'a> {
    value: &'a [u8],
    created: Option<u64>,
    expires: Option<u64>,
    revoked: bool,
    expired: bool,
    signatures: Vec<&'a Signature>,
}

fn epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn key_facts(cert: &Cert, now: SystemTime) -> KeyFacts {
    let policy = StandardPolicy::new();
    let key = cert.primary_key().key();
    let expires = cert
        .with_policy(&policy, now)
        .ok()
        .and_then(|vc| vc.primary_key().key_expiration_time())
        .map(epoch);
    KeyFacts {
        fingerprint: cert.fingerprint().to_hex(),
        algo: u8::from(key.pk_algo()),
        bits: key.mpis().bits(),
        created: epoch(key.creation_time()),
        expires,
        revoked: matches!(
            cert.revocation_status(&policy, now),
            RevocationStatus::Revoked(_)
        ),
        expired: expires.is_some_and(|e| e <= epoch(now)),
    }
}

/// The user IDs worth listing: those with at least one self-signature or self-revocation (a
/// bare user ID packet proves nothing about the key).
fn uid_facts(cert: &Cert, now: SystemTime) -> Vec<UidFacts<'_>> {
    let policy = StandardPolicy::new();
    cert.userids()
        .filter_map(|ua| {
            let newest = ua.self_signatures().next();
            if newest.is_none() && ua.self_revocations().next().is_none() {
                return None;
            }
            let created = newest.and_then(|s| s.signature_creation_time()).map(epoch);
            let expires = newest
                .and_then(|s| s.signature_expiration_time())
                .map(epoch);
            Some(UidFacts {
                value: ua.userid().value(),
                created,
                expires,
                revoked: matches!(
                    ua.bundle().revocation_status(&policy, now),
                    RevocationStatus::Revoked(_)
                ),
                expired: expires.is_some_and(|e| e <= epoch(now)),
                signatures: ua.signatures().collect(),
            })
        })
        .collect()
}

fn flags(revoked: bool, expired: bool) -> String {
    let mut f = String::new();
    if revoked {
        f.push('r');
    }
    if expired {
        f.push('e');
    }
    f
}

fn opt(v: Option<impl ToString>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The machine-readable index (`options=mr`) of `certs`:
///
/// ```text
/// info:1:<count>
/// pub:<fingerprint>:<algo>:<keylen>:<creationdate>:<expirationdate>:<flags>
/// uid:<escaped uid string>:<creationdate>:<expirationdate>:<flags>
/// ```
///
/// Times are seconds since the epoch, empty when unknown or never; flags are `r` (revoked)
/// and `e` (expired) at `now`. `vindex` has the same machine-readable form.
pub fn mr_index(certs: &[Cert], now: SystemTime) -> String {
    let mut out = format!("info:1:{}\n", certs.len());
    for cert in certs {
        let k = key_facts(cert, now);
        let _ = writeln!(
            out,
            "pub:{}:{}:{}:{}:{}:{}",
            k.fingerprint,
            k.algo,
            opt(k.bits),
            k.created,
            opt(k.expires),
            flags(k.revoked, k.expired)
        );
        for u in uid_facts(cert, now) {
            let _ = writeln!(
                out,
                "uid:{}:{}:{}:{}",
                escape_uid(u.value),
                opt(u.created),
                opt(u.expires),
                flags(u.revoked, u.expired)
            );
        }
    }
    out
}

/// A plain-text listing for people (`op=index` / `op=vindex` without `options=mr`); `verbose`
/// adds each user ID's signatures with their issuers.
pub fn human_index(certs: &[Cert], search: &str, verbose: bool, now: SystemTime) -> String {
    let mut out = format!(
        "Sealpost key directory: {} key(s) found for \"{}\"\n",
        certs.len(),
        printable(search.as_bytes())
    );
    for cert in certs {
        let k = key_facts(cert, now);
        let _ = write!(
            out,
            "\npub  {}  algorithm {}, {} bits, created {}",
            k.fingerprint,
            k.algo,
            opt(k.bits),
            date(k.created)
        );
        if let Some(e) = k.expires {
            let _ = write!(out, ", expires {}", date(e));
        }
        if k.revoked {
            out.push_str(", REVOKED");
        }
        if k.expired {
            out.push_str(", EXPIRED");
        }
        out.push('\n');
        for u in uid_facts(cert, now) {
            let _ = write!(out, "uid  {}", printable(u.value));
            if u.revoked {
                out.push_str("  [revoked]");
            }
            out.push('\n');
            if verbose {
                for sig in &u.signatures {
                    let issuer = sig
                        .get_issuers()
                        .first()
                        .map(|h| h.to_hex())
                        .unwrap_or_else(|| "(no issuer)".into());
                    let made = sig
                        .signature_creation_time()
                        .map(|t| date(epoch(t)))
                        .unwrap_or_default();
                    let _ = writeln!(out, "sig  {issuer}  {made}  {}", sig.typ());
                }
            }
        }
    }
    out
}

/// User-supplied bytes for a text listing: lossy UTF-8 with control characters replaced, so a
/// user ID cannot rewrite the reader's terminal.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// `YYYY-MM-DD` (UTC) for seconds since the epoch (Howard Hinnant's `civil_from_days`).
fn date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use sequoia_openpgp::cert::prelude::*;
    use sequoia_openpgp::packet::UserID;
    use sequoia_openpgp::types::{Features, KeyFlags};

    #[test]
    fn uid_escaping() {
        for (uid, want) in [
            (
                &b"Alice <alice@example.org>"[..],
                "Alice <alice@example.org>",
            ),
            // The field separator and the escape character itself.
            (b"a:b", "a%3Ab"),
            (b"100% sure", "100%25 sure"),
            // Not 7-bit safe: UTF-8 (ü = C3 BC), controls, DEL.
            (
                "Jürgen <j@example.org>".as_bytes(),
                "J%C3%BCrgen <j@example.org>",
            ),
            (b"line\nbreak", "line%0Abreak"),
            (b"nul\0", "nul%00"),
            (b"del\x7f", "del%7F"),
            (b"", ""),
        ] {
            assert_eq!(escape_uid(uid), want);
        }
    }

    #[test]
    fn dates() {
        for (secs, want) in [
            (0, "1970-01-01"),
            (951_782_400, "2000-02-29"),
            (1_700_000_000, "2023-11-14"),
            (4_102_444_800, "2100-01-01"),
        ] {
            assert_eq!(date(secs), want);
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// A v4 Ed25519/Cv25519 key as Sealpost makes them, created at a fixed time.
    fn key(uids: &[&[u8]], created: u64, validity: Option<u64>) -> Cert {
        let mut b = CertBuilder::new()
            .set_cipher_suite(CipherSuite::Cv25519)
            .set_features(Features::empty().set_seipdv1())
            .unwrap()
            .set_creation_time(at(created))
            .set_validity_period(validity.map(Duration::from_secs))
            .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
            .add_subkey(
                KeyFlags::empty()
                    .set_transport_encryption()
                    .set_storage_encryption(),
                None,
                None,
            );
        for u in uids {
            b = b.add_userid(UserID::from(*u));
        }
        b.generate().unwrap().0
    }

    #[test]
    fn machine_readable_index_of_generated_certs() {
        let created = 1_700_000_000;
        let alice = key(
            &[b"Alice <alice@example.org>", b"Alice: the 100% one"],
            created,
            None,
        );
        let bob = key(
            &["Bj\u{f6}rn <bob@example.org>".as_bytes()],
            created,
            Some(86_400),
        );
        let now = at(created + 3_600);
        let a = alice.fingerprint().to_hex();
        let b = bob.fingerprint().to_hex();

        // User IDs are listed in Sequoia's canonical order (sorted), so compare as sets of
        // lines after the fixed header and `pub` lines.
        let got = mr_index(&[alice.clone(), bob.clone()], now);
        let want = format!(
            "info:1:2\n\
             pub:{a}:22:256:{created}::\n\
             uid:Alice <alice@example.org>:{created}::\n\
             uid:Alice%3A the 100%25 one:{created}::\n\
             pub:{b}:22:256:{created}:{exp}:\n\
             uid:Bj%C3%B6rn <bob@example.org>:{created}::\n",
            exp = created + 86_400,
        );
        let sorted = |s: &str| {
            let mut v: Vec<String> = s.lines().map(str::to_owned).collect();
            v.sort();
            v
        };
        assert_eq!(sorted(&got), sorted(&want), "{got}");
        assert!(got.starts_with(&format!("info:1:2\npub:{a}:")));

        // After Bob's key expired it is flagged `e`.
        let later = mr_index(std::slice::from_ref(&bob), at(created + 2 * 86_400));
        assert!(
            later.contains(&format!(
                "pub:{b}:22:256:{created}:{}:e\n",
                created + 86_400
            )),
            "{later}"
        );

        // Revoked keys are flagged `r`.
        let mut signer = alice
            .primary_key()
            .key()
            .clone()
            .parts_into_secret()
            .unwrap()
            .into_keypair()
            .unwrap();
        let revocation = CertRevocationBuilder::new()
            .set_reason_for_revocation(
                sequoia_openpgp::types::ReasonForRevocation::KeyCompromised,
                b"test",
            )
            .unwrap()
            .build(&mut signer, &alice, None)
            .unwrap();
        let revoked = alice.clone().insert_packets(revocation).unwrap().0;
        let listing = mr_index(&[revoked], SystemTime::now());
        assert!(
            listing.contains(&format!("pub:{a}:22:256:{created}::r\n")),
            "{listing}"
        );

        assert_eq!(mr_index(&[], now), "info:1:0\n");
    }

    #[test]
    fn human_index_lists_keys_and_signatures() {
        let alice = key(&[b"Alice <alice@example.org>"], 1_700_000_000, None);
        let text = human_index(
            std::slice::from_ref(&alice),
            "alice\u{7}",
            true,
            SystemTime::now(),
        );
        assert!(
            text.contains("1 key(s) found for \"alice\u{FFFD}\""),
            "{text}"
        );
        assert!(text.contains(&alice.fingerprint().to_hex()));
        assert!(text.contains("uid  Alice <alice@example.org>"));
        assert!(text.contains("created 2023-11-14"));
        assert!(
            text.contains(&format!("sig  {}", alice.fingerprint().to_hex())),
            "{text}"
        );
        let brief = human_index(&[alice], "alice", false, SystemTime::now());
        assert!(!brief.contains("sig  "));
    }
}
