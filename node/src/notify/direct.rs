//! Direct delivery's decisions (`[relay] route = "direct"`), with no I/O: which hosts to try
//! for a domain (RFC 5321 §5.1, RFC 7505), and how a recipient domain's mail server must
//! prove itself (opportunistic STARTTLS, or a certificate valid for the MX name under
//! MTA-STS or the admin's pin). `mx.rs` looks things up and connects; it asks this module
//! what each answer means.
//!
//! The rule the admin relies on: a recipient whose TLS is required is never sent in plain,
//! and a domain that cannot be reached securely fails the recipient at once with the reason
//! in words ([`Attempt::Insecure`]).

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
        Some(TlsPolicy::Dane) => Err(Attempt::Insecure {
            reason: format!(
                "mail to {domain} needs DANE, which this node does not check yet: not delivered"
            ),
        }),
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
        (Need::Opportunistic, TlsSeen::HandshakeFailed) => Some(Attempt::Broken {
            step: Step::StartTls,
            error: error.to_owned(),
        }),
        (Need::Verified { .. }, TlsSeen::NotOffered) => Some(Attempt::Insecure {
            reason: format!(
                "{domain}'s mail server {host} offered no encryption (STARTTLS): not delivered"
            ),
        }),
        (Need::Verified { .. }, TlsSeen::HandshakeFailed) => Some(Attempt::Insecure {
            reason: format!(
                "{domain}'s mail server offered no valid certificate for {host}: not delivered"
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
            (
                Some(TlsPolicy::Dane),
                Sts::NotAsked,
                insecure(
                    "mail to tls.test needs DANE, which this node does not check yet: not delivered",
                ),
            ),
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
}
