//! Direct delivery's decisions (`[relay] route = "direct"`), with no I/O: which hosts to try
//! for a domain (RFC 5321 §5.1, RFC 7505), and how a recipient domain's mail server must
//! prove itself (opportunistic STARTTLS, or a certificate valid for the MX name under
//! MTA-STS or the admin's pin). `mx.rs` looks things up and connects; it asks this module
//! what each answer means.
//!
//! The rule the admin relies on: a recipient whose TLS is required is never sent in plain,
//! and a domain that cannot be reached securely fails the recipient at once with the reason
//! in words ([`Attempt::Insecure`]).

use super::dane::{self, Tlsa};
use super::mta_sts::{Mode, Policy};
use super::schedule::{Attempt, Step};
use crate::storage::notify::TlsPolicy;

/// The hosts to try for `domain`, best first, from its MX records (preference, exchange):
/// by preference, duplicates dropped; no MX at all means the domain itself (its address
/// record, RFC 5321 §5.1); a null MX (`0 .`, RFC 7505) means it takes no mail.
pub fn mx_hosts(domain: &str, records: &[(u16, String)]) -> Result<Vec<String>, Attempt> {
    let name = |h: &str| h.trim_end_matches('.').to_ascii_lowercase();
    if records.iter().any(|(_, h)| name(h).is_empty()) {
        return Err(Attempt::Undeliverable {
            reason: format!("{domain} accepts no mail (its MX record says so, RFC 7505)"),
        });
    }
    if records.is_empty() {
        return Ok(vec![name(domain)]);
    }
    let mut sorted: Vec<(u16, String)> = records.iter().map(|(p, h)| (*p, name(h))).collect();
    sorted.sort_by_key(|(p, _)| *p);
    let mut out: Vec<String> = Vec::with_capacity(sorted.len());
    for (_, h) in sorted {
        if !out.contains(&h) {
            out.push(h);
        }
    }
    Ok(out)
}

/// What a domain's MTA-STS look-up came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sts {
    /// Not looked up (`[relay] mta_sts = false` and not required).
    NotAsked,
    /// No `_mta-sts` TXT record.
    NotPublished,
    Policy(Policy),
    /// A record, but the policy could not be fetched or read: why.
    Unusable(String),
}

/// How the MX must prove itself for a group of mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// STARTTLS when offered, the certificate unchecked (RFC 7435); plain otherwise.
    Opportunistic,
    /// STARTTLS required, with a certificate valid for the MX host name; if `mx` is given
    /// (MTA-STS `enforce`), only MX hosts it allows.
    Verified { why: TlsPolicy, mx: Option<Policy> },
    /// STARTTLS required, the certificate unchecked: the host's DNSSEC-signed TLSA records
    /// are all unusable (RFC 7672 §2.2).
    Encrypted,
    /// Only DANE-authenticated TLS (the admin's `dane`): each host must have usable,
    /// DNSSEC-signed TLSA records ([`host_need`] turns this into [`Need::Dane`]).
    DaneOnly,
    /// STARTTLS required, and the certificate chain must match these (usable) TLSA records.
    Dane(Vec<Tlsa>),
}

/// What the look-up of a host's TLSA records (`_PORT._tcp.HOST`) came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsaLookup {
    /// Not asked: no validating resolver is configured, or the domain's MX answer is not
    /// DNSSEC-signed (RFC 7672 §2.2.1: then DANE does not apply).
    NotAsked,
    /// An answer the resolver did not validate (insecure: no AD bit).
    Insecure,
    /// A validated answer: these records (none: a signed denial).
    Secure(Vec<Tlsa>),
    /// The look-up failed (bogus answers come as failures from a validating resolver).
    Failed(String),
}

/// The need for one MX `host` of `domain`, given the domain's `need` and the host's TLSA
/// look-up (RFC 7672 §2.2): usable secure records bind the host to DANE whatever else is
/// required (DANE comes before MTA-STS, RFC 8461 §2); secure records that are all unusable
/// still require TLS; a failed look-up means the host is not tried (the mail waits).
pub fn host_need(
    domain: &str,
    host: &str,
    need: &Need,
    tlsa: &TlsaLookup,
) -> Result<Need, Attempt> {
    let dane_only = *need == Need::DaneOnly;
    match tlsa {
        TlsaLookup::Failed(why) => Err(Attempt::Broken {
            step: Step::Connect,
            error: format!("the DNS look-up of {host}'s TLSA records failed: {why}"),
        }),
        TlsaLookup::Secure(records) if !records.is_empty() => {
            let usable = dane::usable(records);
            if !usable.is_empty() {
                Ok(Need::Dane(usable))
            } else if dane_only {
                Err(Attempt::Insecure {
                    reason: format!(
                        "{domain} publishes only unusable TLSA records for {host}: not delivered"
                    ),
                })
            } else if *need == Need::Opportunistic {
                Ok(Need::Encrypted)
            } else {
                Ok(need.clone())
            }
        }
        _ if dane_only => Err(Attempt::Insecure {
            reason: format!(
                "{domain} publishes no DNSSEC-signed TLSA records for {host}: not delivered"
            ),
        }),
        _ => Ok(need.clone()),
    }
}

/// The need for mail to `domain` whose TLS is `required` (by the row: its recipient's mode,
/// or the admin's `[[relay.tls]]` for the domain), given the domain's MTA-STS look-up. An
/// `enforce` policy binds all mail to the domain (RFC 8461), required or not.
pub fn need(domain: &str, required: Option<TlsPolicy>, sts: &Sts) -> Result<Need, Attempt> {
    let enforced = match sts {
        Sts::Policy(p) if p.mode == Mode::Enforce => Some(p.clone()),
        _ => None,
    };
    match required {
        None => Ok(match enforced {
            Some(p) => Need::Verified {
                why: TlsPolicy::MtaSts,
                mx: Some(p),
            },
            None => Need::Opportunistic,
        }),
        Some(TlsPolicy::Pinned) => Ok(Need::Verified {
            why: TlsPolicy::Pinned,
            mx: enforced,
        }),
        Some(TlsPolicy::MtaSts) => match (enforced, sts) {
            (Some(p), _) => Ok(Need::Verified {
                why: TlsPolicy::MtaSts,
                mx: Some(p),
            }),
            // A policy fetch that failed may work later: retried, never sent in plain.
            (None, Sts::Unusable(why)) => Err(Attempt::Broken {
                step: Step::Connect,
                error: format!("the MTA-STS policy of {domain} could not be read: {why}"),
            }),
            (None, Sts::Policy(p)) => Err(Attempt::Insecure {
                reason: format!(
                    "{domain}'s MTA-STS policy is in mode {}, not enforce, and mail to it goes \
                     only under an enforced policy: not delivered",
                    match p.mode {
                        Mode::Testing => "testing",
                        _ => "none",
                    }
                ),
            }),
            (None, _) => Err(Attempt::Insecure {
                reason: format!(
                    "{domain} publishes no MTA-STS policy, and mail to it goes only under one: \
                     not delivered"
                ),
            }),
        },
        Some(TlsPolicy::Dane) => Ok(Need::DaneOnly),
    }
}

/// The hosts of `hosts` that `need` lets the node send to, or why none.
pub fn allowed_hosts(
    domain: &str,
    hosts: Vec<String>,
    need: &Need,
) -> Result<Vec<String>, Attempt> {
    let Need::Verified {
        mx: Some(policy), ..
    } = need
    else {
        return Ok(hosts);
    };
    let (ok, not): (Vec<String>, Vec<String>) = hosts.into_iter().partition(|h| policy.allows(h));
    if ok.is_empty() {
        return Err(Attempt::Insecure {
            reason: format!(
                "{domain}'s mail server {} is not one its MTA-STS policy lists ({}): not delivered",
                not.join(", "),
                policy.mx.join(", ")
            ),
        });
    }
    Ok(ok)
}

/// What the TLS step with one MX came to, as `mx.rs` saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsSeen {
    /// The server did not offer STARTTLS.
    NotOffered,
    /// The handshake (with the certificate checked when the need is verified) failed.
    HandshakeFailed,
    /// The handshake succeeded, but the chain matches none of the host's TLSA records.
    DaneMismatch,
}

/// The attempt that a failed TLS step with `host` means for mail that `need`s it, or `None`
/// when the node goes on (in plain: only for opportunistic mail whose server offers no
/// STARTTLS).
pub fn tls_failure(
    domain: &str,
    host: &str,
    need: &Need,
    seen: TlsSeen,
    error: &str,
) -> Option<Attempt> {
    match (need, seen) {
        (Need::Opportunistic, TlsSeen::NotOffered) => None,
        (_, TlsSeen::NotOffered) => Some(Attempt::Insecure {
            reason: format!(
                "{domain}'s mail server {host} offered no encryption (STARTTLS): not delivered"
            ),
        }),
        (Need::Verified { .. } | Need::DaneOnly, TlsSeen::HandshakeFailed) => {
            Some(Attempt::Insecure {
                reason: format!(
                    "{domain}'s mail server offered no valid certificate for {host}: not delivered"
                ),
            })
        }
        // The certificate played no part (it is checked after the handshake, or not at
        // all): retried later, never sent in plain.
        (_, TlsSeen::HandshakeFailed) => Some(Attempt::Broken {
            step: Step::StartTls,
            error: error.to_owned(),
        }),
        (_, TlsSeen::DaneMismatch) => Some(Attempt::Insecure {
            reason: format!(
                "{domain}'s mail server {host} presented a certificate that does not match \
                 the domain's TLSA records: not delivered"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn undeliverable(r: &str) -> Attempt {
        Attempt::Undeliverable { reason: r.into() }
    }

    #[test]
    fn hosts_come_from_mx_records_by_preference_else_the_domain() {
        type Row<'a> = (&'a [(u16, &'a str)], Result<Vec<&'a str>, Attempt>);
        let table: [Row; 5] = [
            (&[], Ok(vec!["out.test"])),
            (
                &[
                    (20, "b.out.test."),
                    (10, "A.out.test."),
                    (20, "c.out.test"),
                    (30, "a.out.test"),
                ],
                Ok(vec!["a.out.test", "b.out.test", "c.out.test"]),
            ),
            (&[(0, "mx.out.test")], Ok(vec!["mx.out.test"])),
            (
                &[(0, ".")],
                Err(undeliverable(
                    "out.test accepts no mail (its MX record says so, RFC 7505)",
                )),
            ),
            (
                &[(0, ""), (10, "mx.out.test")],
                Err(undeliverable(
                    "out.test accepts no mail (its MX record says so, RFC 7505)",
                )),
            ),
        ];
        for (records, want) in table {
            let records: Vec<(u16, String)> =
                records.iter().map(|(p, h)| (*p, (*h).to_owned())).collect();
            let got = mx_hosts("out.test", &records);
            let want = want.map(|v| v.into_iter().map(str::to_owned).collect::<Vec<_>>());
            assert_eq!(got, want, "{records:?}");
        }
    }

    fn policy(mode: Mode, mx: &[&str]) -> Policy {
        Policy {
            mode,
            mx: mx.iter().map(|s| (*s).to_owned()).collect(),
            max_age: 86_400,
        }
    }

    #[test]
    fn the_need_follows_the_required_policy_and_an_enforced_mta_sts() {
        let enforce = Sts::Policy(policy(Mode::Enforce, &["mx.tls.test"]));
        let testing = Sts::Policy(policy(Mode::Testing, &["mx.tls.test"]));
        let verified = |why, mx: Option<&Sts>| {
            Ok(Need::Verified {
                why,
                mx: mx.map(|s| match s {
                    Sts::Policy(p) => p.clone(),
                    _ => unreachable!(),
                }),
            })
        };
        let insecure = |r: &str| Err(Attempt::Insecure { reason: r.into() });
        let table = [
            (None, Sts::NotAsked, Ok(Need::Opportunistic)),
            (None, Sts::NotPublished, Ok(Need::Opportunistic)),
            (None, testing.clone(), Ok(Need::Opportunistic)),
            (
                None,
                Sts::Unusable("timed out".into()),
                Ok(Need::Opportunistic),
            ),
            (
                None,
                enforce.clone(),
                verified(TlsPolicy::MtaSts, Some(&enforce)),
            ),
            (
                Some(TlsPolicy::Pinned),
                Sts::NotAsked,
                verified(TlsPolicy::Pinned, None),
            ),
            (
                Some(TlsPolicy::Pinned),
                enforce.clone(),
                verified(TlsPolicy::Pinned, Some(&enforce)),
            ),
            (
                Some(TlsPolicy::MtaSts),
                enforce.clone(),
                verified(TlsPolicy::MtaSts, Some(&enforce)),
            ),
            (
                Some(TlsPolicy::MtaSts),
                Sts::NotPublished,
                insecure(
                    "tls.test publishes no MTA-STS policy, and mail to it goes only under one: not delivered",
                ),
            ),
            (
                Some(TlsPolicy::MtaSts),
                testing,
                insecure(
                    "tls.test's MTA-STS policy is in mode testing, not enforce, and mail to it goes only under an enforced policy: not delivered",
                ),
            ),
            (
                Some(TlsPolicy::MtaSts),
                Sts::Unusable("HTTP 404".into()),
                Err(Attempt::Broken {
                    step: Step::Connect,
                    error: "the MTA-STS policy of tls.test could not be read: HTTP 404".into(),
                }),
            ),
            (Some(TlsPolicy::Dane), Sts::NotAsked, Ok(Need::DaneOnly)),
            (Some(TlsPolicy::Dane), enforce.clone(), Ok(Need::DaneOnly)),
        ];
        for (i, (required, sts, want)) in table.into_iter().enumerate() {
            assert_eq!(need("tls.test", required, &sts), want, "row {i}");
        }
    }

    #[test]
    fn an_enforced_policy_keeps_only_the_mx_hosts_it_lists() {
        let hosts = || vec!["mx.tls.test".to_owned(), "backup.other.test".to_owned()];
        let need = Need::Verified {
            why: TlsPolicy::MtaSts,
            mx: Some(policy(Mode::Enforce, &["mx.tls.test"])),
        };
        assert_eq!(
            allowed_hosts("tls.test", hosts(), &need),
            Ok(vec!["mx.tls.test".to_owned()])
        );
        let other = Need::Verified {
            why: TlsPolicy::MtaSts,
            mx: Some(policy(Mode::Enforce, &["*.elsewhere.test"])),
        };
        assert_eq!(
            allowed_hosts("tls.test", hosts(), &other),
            Err(Attempt::Insecure {
                reason: "tls.test's mail server mx.tls.test, backup.other.test is not one its \
                         MTA-STS policy lists (*.elsewhere.test): not delivered"
                    .into()
            })
        );
        assert_eq!(
            allowed_hosts("tls.test", hosts(), &Need::Opportunistic),
            Ok(hosts())
        );
    }

    #[test]
    fn a_failed_tls_step_is_never_a_fall_back_to_plain_for_verified_mail() {
        let verified = Need::Verified {
            why: TlsPolicy::Pinned,
            mx: None,
        };
        let o = Need::Opportunistic;
        let table = [
            (&o, TlsSeen::NotOffered, None),
            (
                &o,
                TlsSeen::HandshakeFailed,
                Some(Attempt::Broken {
                    step: Step::StartTls,
                    error: "bad record mac".into(),
                }),
            ),
            (
                &verified,
                TlsSeen::NotOffered,
                Some(Attempt::Insecure {
                    reason: "tls.test's mail server mx.tls.test offered no encryption \
                             (STARTTLS): not delivered"
                        .into(),
                }),
            ),
            (
                &verified,
                TlsSeen::HandshakeFailed,
                Some(Attempt::Insecure {
                    reason: "tls.test's mail server offered no valid certificate for \
                             mx.tls.test: not delivered"
                        .into(),
                }),
            ),
        ];
        for (need, seen, want) in table {
            assert_eq!(
                tls_failure("tls.test", "mx.tls.test", need, seen, "bad record mac"),
                want,
                "{need:?} {seen:?}"
            );
        }
    }

    #[test]
    fn a_host_with_usable_signed_tlsa_records_gets_dane_and_dane_only_mail_needs_them() {
        let ee = Tlsa {
            usage: 3,
            selector: 1,
            matching: 1,
            data: vec![7; 32],
        };
        let pkix = Tlsa {
            usage: 1,
            ..ee.clone()
        };
        let pinned = Need::Verified {
            why: TlsPolicy::Pinned,
            mx: None,
        };
        let o = Need::Opportunistic;
        let only = Need::DaneOnly;
        let secure = |r: &[Tlsa]| TlsaLookup::Secure(r.to_vec());
        let no_signed = Err(Attempt::Insecure {
            reason: "tls.test publishes no DNSSEC-signed TLSA records for mx.tls.test: not \
                     delivered"
                .into(),
        });
        let failed = Err(Attempt::Broken {
            step: Step::Connect,
            error: "the DNS look-up of mx.tls.test's TLSA records failed: SERVFAIL".into(),
        });
        let table = [
            (&o, TlsaLookup::NotAsked, Ok(o.clone())),
            (&o, TlsaLookup::Insecure, Ok(o.clone())),
            (&o, secure(&[]), Ok(o.clone())),
            (
                &o,
                secure(&[ee.clone(), pkix.clone()]),
                Ok(Need::Dane(vec![ee.clone()])),
            ),
            (&o, secure(std::slice::from_ref(&pkix)), Ok(Need::Encrypted)),
            (&o, TlsaLookup::Failed("SERVFAIL".into()), failed.clone()),
            (
                &pinned,
                secure(std::slice::from_ref(&ee)),
                Ok(Need::Dane(vec![ee.clone()])),
            ),
            (
                &pinned,
                secure(std::slice::from_ref(&pkix)),
                Ok(pinned.clone()),
            ),
            (&pinned, TlsaLookup::Insecure, Ok(pinned.clone())),
            (
                &only,
                secure(std::slice::from_ref(&ee)),
                Ok(Need::Dane(vec![ee.clone()])),
            ),
            (&only, TlsaLookup::NotAsked, no_signed.clone()),
            (&only, TlsaLookup::Insecure, no_signed.clone()),
            (&only, secure(&[]), no_signed),
            (
                &only,
                secure(std::slice::from_ref(&pkix)),
                Err(Attempt::Insecure {
                    reason: "tls.test publishes only unusable TLSA records for mx.tls.test: \
                             not delivered"
                        .into(),
                }),
            ),
            (&only, TlsaLookup::Failed("SERVFAIL".into()), failed),
        ];
        for (i, (need, tlsa, want)) in table.into_iter().enumerate() {
            assert_eq!(
                host_need("tls.test", "mx.tls.test", need, &tlsa),
                want,
                "row {i}"
            );
        }
    }

    #[test]
    fn a_dane_host_is_never_sent_to_in_plain_or_past_a_mismatch() {
        let dane = Need::Dane(vec![]);
        let cases = [
            (&dane, TlsSeen::NotOffered, "offered no encryption"),
            (
                &Need::Encrypted,
                TlsSeen::NotOffered,
                "offered no encryption",
            ),
            (
                &dane,
                TlsSeen::DaneMismatch,
                "presented a certificate that does not match the domain's TLSA records: not delivered",
            ),
        ];
        for (need, seen, want) in cases {
            match tls_failure("tls.test", "mx.tls.test", need, seen, "x") {
                Some(Attempt::Insecure { reason }) => assert!(reason.contains(want), "{reason}"),
                other => panic!("{need:?} {seen:?}: {other:?}"),
            }
        }
        assert_eq!(
            tls_failure(
                "tls.test",
                "mx.tls.test",
                &dane,
                TlsSeen::HandshakeFailed,
                "eof"
            ),
            Some(Attempt::Broken {
                step: Step::StartTls,
                error: "eof".into()
            })
        );
    }
}
