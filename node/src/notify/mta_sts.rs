//! MTA-STS (RFC 8461), the pure half: the `_mta-sts` TXT record, the policy file served at
//! `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`, and whether an MX host is one the
//! policy lists; and the policy cache's rules (RFC 8461 §5.1). No I/O: `mx.rs` fetches and
//! holds the cache, this decides.
//!
//! Written here because `mail-auth` (0.15) parses only the TXT record, and its releases
//! that build on this Rust (its 0.15 needs mail-parser 1.x, Rust 1.98) parse no policy file
//! either; both formats are a few `key: value` or `key=value` lines.

/// The most bytes of a policy file read (RFC 8461 §3.3 suggests 64 KiB).
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// The longest `max_age` a policy may ask for (RFC 8461 §3.2: about a year).
const MAX_AGE_LIMIT: u64 = 31_557_600;

/// The policy's `mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Mail only over TLS valid for a listed MX.
    Enforce,
    /// Report failures but deliver anyway (as without a policy).
    Testing,
    /// No policy.
    None,
}

/// A parsed MTA-STS policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// MX patterns, lowercase: `mail.example.com` or `*.example.net`.
    pub mx: Vec<String>,
    pub max_age: u64,
}

impl Policy {
    /// Whether `host` (an MX name) is one the policy allows: equal to a pattern, or matched by
    /// a `*.` pattern in its leftmost label only (RFC 8461 §4.1), ASCII case-insensitively.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|p| match p.strip_prefix("*.") {
            Some(suffix) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
            None => *p == host,
        })
    }
}

/// The policy ID of a `_mta-sts` TXT record (`v=STSv1; id=…;`), or `None` if the record is
/// not an MTA-STS record (no `v=STSv1` first, no valid `id`).
pub fn parse_record(txt: &str) -> Option<String> {
    let mut fields = txt
        .split(';')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(|f| f.split_once('=').map(|(k, v)| (k.trim(), v.trim())));
    if fields.next()?? != ("v", "STSv1") {
        return None;
    }
    let mut id = None;
    for field in fields {
        let (k, v) = field?;
        if k == "id" {
            let valid = (1..=32).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric());
            id = Some(valid.then(|| v.to_owned())?);
        }
    }
    id
}

/// Why a policy file was not accepted (then the domain counts as having no usable policy,
/// RFC 8461 §5: the sender proceeds as without one, unless the admin requires one).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the policy is larger than 64 KiB")]
    TooLarge,
    #[error("the policy is not UTF-8 text")]
    NotText,
    #[error("the policy lacks {0}")]
    Missing(&'static str),
    #[error("the policy's {0} is not valid")]
    Invalid(&'static str),
}

/// Parses a policy file (RFC 8461 §3.2): `version: STSv1`, `mode`, `max_age`, and `mx`
/// lines (required unless the mode is `none`); unknown keys are ignored.
pub fn parse_policy(body: &[u8]) -> Result<Policy, PolicyError> {
    if body.len() > MAX_POLICY_BYTES {
        return Err(PolicyError::TooLarge);
    }
    let text = std::str::from_utf8(body).map_err(|_| PolicyError::NotText)?;
    let (mut version, mut mode, mut max_age, mut mx) = (None, None, None, Vec::new());
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "version" => version = Some(value == "STSv1"),
            "mode" => {
                mode = Some(match value {
                    "enforce" => Mode::Enforce,
                    "testing" => Mode::Testing,
                    "none" => Mode::None,
                    _ => return Err(PolicyError::Invalid("mode")),
                })
            }
            "max_age" => {
                let age = value
                    .parse::<u64>()
                    .ok()
                    .filter(|a| *a <= MAX_AGE_LIMIT && value.len() <= 10)
                    .ok_or(PolicyError::Invalid("max_age"))?;
                max_age = Some(age);
            }
            "mx" => {
                let p = value.to_ascii_lowercase();
                let name = p.strip_prefix("*.").unwrap_or(&p);
                let valid = !name.is_empty()
                    && name.len() <= 253
                    && name.split('.').all(|l| {
                        !l.is_empty()
                            && l.len() <= 63
                            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    });
                if !valid {
                    return Err(PolicyError::Invalid("mx"));
                }
                mx.push(p);
            }
            _ => {}
        }
    }
    match version {
        None => return Err(PolicyError::Missing("version")),
        Some(false) => return Err(PolicyError::Invalid("version")),
        Some(true) => {}
    }
    let mode = mode.ok_or(PolicyError::Missing("mode"))?;
    let max_age = max_age.ok_or(PolicyError::Missing("max_age"))?;
    if mx.is_empty() && mode != Mode::None {
        return Err(PolicyError::Missing("mx"));
    }
    Ok(Policy { mode, mx, max_age })
}

/// A policy as the cache keeps it: its ID (from the TXT record it was fetched under) and when
/// it stops applying (fetched at + `max_age`, Unix seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cached {
    pub id: String,
    pub policy: Policy,
    pub expires_at: u64,
}

impl Cached {
    /// `policy`, fetched under `id` at `now`.
    pub fn new(id: String, policy: Policy, now: u64) -> Cached {
        Cached {
            id,
            expires_at: now.saturating_add(policy.max_age),
            policy,
        }
    }
}

/// What the `_mta-sts` TXT look-up found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// One MTA-STS record, with this policy ID.
    Id(String),
    /// No MTA-STS record (none, or more than one: RFC 8461 §3.1).
    None,
    /// The look-up failed: why.
    Failed(String),
}

/// What to do for a domain, given its cached policy and its TXT record now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Apply this (cached) policy; nothing to fetch.
    Use(Policy),
    /// Fetch the policy file (a new ID, or nothing live cached), then [`after_fetch`].
    Fetch,
    /// The domain has no policy.
    NoPolicy,
    /// No policy can be known now (the look-up failed, nothing cached): why.
    Unusable(String),
}

/// RFC 8461 §5.1: a live cached policy whose ID the record still names is used without a
/// fetch; a new ID means a fetch. A live cached policy still applies when the record is gone or
/// its look-up fails: an attacker who blocks DNS or HTTPS cannot strip a policy the sender
/// already holds (a domain that drops MTA-STS publishes `mode: none` under a new ID first).
pub fn next(cached: Option<&Cached>, record: &Record, now: u64) -> Next {
    let live = cached.filter(|c| c.expires_at > now);
    match (record, live) {
        (Record::Id(id), Some(c)) if *id == c.id => Next::Use(c.policy.clone()),
        (Record::Id(_), _) => Next::Fetch,
        (Record::None | Record::Failed(_), Some(c)) => Next::Use(c.policy.clone()),
        (Record::None, None) => Next::NoPolicy,
        (Record::Failed(why), None) => Next::Unusable(why.clone()),
    }
}

/// After a fetch under `id`: the policy to apply and what the cache should then hold. A fetch
/// that failed leaves a live cached policy in force (RFC 8461 §5.1).
pub fn after_fetch(
    cached: Option<&Cached>,
    id: &str,
    fetched: Result<Policy, String>,
    now: u64,
) -> (Result<Policy, String>, Option<Cached>) {
    match fetched {
        Ok(p) => {
            let c = Cached::new(id.to_owned(), p.clone(), now);
            (Ok(p), Some(c))
        }
        Err(why) => match cached.filter(|c| c.expires_at > now) {
            Some(c) => (Ok(c.policy.clone()), None),
            None => (Err(why), None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enforce(max_age: u64) -> Policy {
        Policy {
            mode: Mode::Enforce,
            mx: vec!["mx.tls.test".into()],
            max_age,
        }
    }

    #[test]
    fn the_cache_holds_a_policy_against_a_blocked_look_up_until_it_expires() {
        let c = Cached::new("a1".into(), enforce(100), 1000);
        assert_eq!(c.expires_at, 1100);
        let id = |s: &str| Record::Id(s.into());
        // Same ID: used, not fetched; a new ID: fetched.
        assert_eq!(next(Some(&c), &id("a1"), 1050), Next::Use(enforce(100)));
        assert_eq!(next(Some(&c), &id("b2"), 1050), Next::Fetch);
        // Record gone or look-up blocked: the live policy still applies.
        assert_eq!(next(Some(&c), &Record::None, 1050), Next::Use(enforce(100)));
        let failed = Record::Failed("timeout".into());
        assert_eq!(next(Some(&c), &failed, 1099), Next::Use(enforce(100)));
        // Expired: as if nothing were cached.
        assert_eq!(
            next(Some(&c), &failed, 1100),
            Next::Unusable("timeout".into())
        );
        assert_eq!(next(Some(&c), &Record::None, 1100), Next::NoPolicy);
        assert_eq!(next(Some(&c), &id("a1"), 1100), Next::Fetch);
        assert_eq!(next(None, &id("a1"), 0), Next::Fetch);

        // A failed fetch keeps the live policy; a good one replaces it.
        let (p, keep) = after_fetch(Some(&c), "b2", Err("HTTP 500".into()), 1050);
        assert_eq!((p, keep), (Ok(enforce(100)), None));
        let (p, keep) = after_fetch(Some(&c), "b2", Err("HTTP 500".into()), 1200);
        assert_eq!((p, keep), (Err("HTTP 500".into()), None));
        let (p, keep) = after_fetch(Some(&c), "b2", Ok(enforce(5)), 1050);
        assert_eq!(p, Ok(enforce(5)));
        assert_eq!(keep, Some(Cached::new("b2".into(), enforce(5), 1050)));
    }

    #[test]
    fn txt_records() {
        let table = [
            ("v=STSv1; id=20160831085700Z;", Some("20160831085700Z")),
            ("v=STSv1;id=1", Some("1")),
            ("  v = STSv1 ;  id = abc ; ext=x", Some("abc")),
            ("id=1; v=STSv1", None),
            ("v=STSv2; id=1", None),
            ("v=STSv1", None),
            ("v=STSv1; id=", None),
            ("v=STSv1; id=has-dash", None),
            ("v=STSv1; id=123456789012345678901234567890123", None),
            ("v=spf1 -all", None),
            ("", None),
        ];
        for (txt, want) in table {
            assert_eq!(parse_record(txt).as_deref(), want, "{txt:?}");
        }
    }

    #[test]
    fn policy_files() {
        // RFC 8461 §3.2's example.
        let rfc = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\n\
                   mx: backupmx.example.com\nmax_age: 604800\n";
        let p = parse_policy(rfc.as_bytes()).unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 604_800);
        assert_eq!(
            p.mx,
            ["mail.example.com", "*.example.net", "backupmx.example.com"]
        );
        let crlf =
            "version: STSv1\r\nmode: testing\r\nmx: MX.Tls.Test\r\nmax_age: 86400\r\nfoo: bar\r\n";
        let p = parse_policy(crlf.as_bytes()).unwrap();
        assert_eq!(
            (p.mode, p.mx.clone()),
            (Mode::Testing, vec!["mx.tls.test".into()])
        );
        let none = parse_policy(b"version: STSv1\nmode: none\nmax_age: 1\n").unwrap();
        assert_eq!(none.mode, Mode::None);

        let bad: [(&[u8], PolicyError); 8] = [
            (
                b"mode: enforce\nmx: a.test\nmax_age: 1\n",
                PolicyError::Missing("version"),
            ),
            (
                b"version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n",
                PolicyError::Invalid("version"),
            ),
            (
                b"version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n",
                PolicyError::Invalid("mode"),
            ),
            (
                b"version: STSv1\nmode: enforce\nmax_age: 1\n",
                PolicyError::Missing("mx"),
            ),
            (
                b"version: STSv1\nmode: enforce\nmx: a.test\n",
                PolicyError::Missing("max_age"),
            ),
            (
                b"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 99999999999\n",
                PolicyError::Invalid("max_age"),
            ),
            (
                b"version: STSv1\nmode: enforce\nmx: a..test\nmax_age: 1\n",
                PolicyError::Invalid("mx"),
            ),
            (b"version: STSv1\n\xff\n", PolicyError::NotText),
        ];
        for (body, want) in bad {
            assert_eq!(
                parse_policy(body),
                Err(want.clone()),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let huge = vec![b'x'; MAX_POLICY_BYTES + 1];
        assert_eq!(parse_policy(&huge), Err(PolicyError::TooLarge));
    }

    #[test]
    fn mx_patterns() {
        let p = Policy {
            mode: Mode::Enforce,
            mx: vec!["mail.example.com".into(), "*.example.net".into()],
            max_age: 1,
        };
        let table = [
            ("mail.example.com", true),
            ("MAIL.Example.COM.", true),
            ("mx1.example.net", true),
            ("example.net", false),
            ("a.b.example.net", false),
            ("other.example.com", false),
            ("mail.example.com.evil.test", false),
        ];
        for (host, want) in table {
            assert_eq!(p.allows(host), want, "{host}");
        }
    }
}
