//! Login throttling (OWASP ASVS 2.2, NIST SP 800-63B 5.2.2) and device tokens (OWASP's
//! "device cookies").
//!
//! A password check is an *attempt* by a *source*: a device known to the account (it presents
//! a device token the node gave it at an earlier successful login for that address), or,
//! lumped together, every other source that names the address. Each source may fail
//! [`Rule::free`] times in a row; after that every further attempt must wait a delay that
//! doubles with each failure, up to [`Rule::max`]. An attempt that comes too early is refused
//! at once, without the slow hash: the guesser's own attempts are what slows down. Nothing is
//! ever locked, and failures of one source never slow another, so an attacker who fails from
//! anywhere else cannot keep the owner out of a device they have used before.
//!
//! The state is kept in memory for **any** address string, existing or not, under a keyed
//! hash of it: an unknown address is throttled exactly like a real one, and the node holds no
//! list of the addresses people typed. It is bounded ([`MAX_ENTRIES`]); a restart forgets it.
//!
//! This module does no I/O and reads no clock: time is passed in.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use sha2::Sha256;

/// Most sources remembered at once (about 100 bytes each).
pub const MAX_ENTRIES: usize = 100_000;

/// A source that has not failed for this long starts afresh.
pub const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How failures turn into delays.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rule {
    /// Failures in a row that cost nothing.
    pub free: u32,
    /// The delay after `free` failures; it doubles with each further one…
    pub base: Duration,
    /// …up to this.
    pub max: Duration,
}

impl Rule {
    /// The wait imposed after `failures` failures in a row.
    pub fn delay(&self, failures: u32) -> Duration {
        if failures < self.free {
            return Duration::ZERO;
        }
        let doublings = (failures - self.free).min(31);
        self.base.saturating_mul(1u32 << doublings).min(self.max)
    }
}

/// Who is trying.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    /// Every source without a device token for the address (the address as typed, normalised
    /// when it is one).
    Address(&'a str),
    /// A known device, by the ID in its token.
    Device(&'a DeviceId),
    /// The current password typed again inside a session (password change), by the session's
    /// token hash.
    Session(&'a [u8; 32]),
    /// An app password tried at the submission gateway for an address (as typed, normalised
    /// when it is one) from one client address (an IPv6 address by its /64): a guesser
    /// elsewhere cannot slow the owner's mail program, nor the address's web logins.
    AppPassword(&'a str, std::net::IpAddr),
}

impl Source<'_> {
    /// What the transaction log calls it.
    pub fn label(&self) -> &'static str {
        match self {
            Source::Address(_) => "untrusted",
            Source::Device(_) => "device",
            Source::Session(_) => "session",
            Source::AppPassword(..) => "app_password",
        }
    }
}

#[derive(Debug)]
struct Entry {
    failures: u32,
    /// Attempts admitted and not yet decided: counted as failures until they are, so that
    /// concurrent guesses cannot slip past the delay together.
    pending: u32,
    not_before: Instant,
    last: Instant,
}

/// Failures and delays per source.
pub struct Throttle {
    rule: Rule,
    key: [u8; 32],
    max_entries: usize,
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

/// An admitted attempt. Say how it ended with [`Attempt::failed`] or [`Attempt::succeeded`];
/// dropped without either (a disabled account, a missing second factor, a server error) it
/// counts as neither.
#[must_use]
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    key: [u8; 32],
    decided: bool,
}

/// What a failure did: failures in a row so far, and the wait it imposed on the next attempt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Failure {
    pub failures: u32,
    pub delay: Duration,
}

impl Throttle {
    /// `key` keeps the map's keys unlinkable to the addresses they stand for.
    pub fn new(rule: Rule, key: [u8; 32]) -> Throttle {
        Self::with_capacity(rule, key, MAX_ENTRIES)
    }

    pub fn with_capacity(rule: Rule, key: [u8; 32], max_entries: usize) -> Throttle {
        Throttle {
            rule,
            key,
            max_entries,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn key_of(&self, source: Source<'_>) -> [u8; 32] {
        let client;
        let (label, data): (&[u8], &[u8]) = match source {
            Source::Address(a) => (b"sealpost/v1/throttle/address", a.as_bytes()),
            Source::Device(d) => (b"sealpost/v1/throttle/device", &d.0),
            Source::Session(s) => (b"sealpost/v1/throttle/session", s),
            Source::AppPassword(a, ip) => {
                // The client's network (16 bytes, an IPv6 /64 with the rest zero), then the
                // address: unambiguous, as the first part has a fixed length.
                let mut net = match ip {
                    std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
                    std::net::IpAddr::V6(v6) => v6.octets(),
                };
                if !ip.is_ipv4() {
                    net[8..].fill(0);
                }
                client = [&net[..], a.as_bytes()].concat();
                (b"sealpost/v1/throttle/app-password", &client)
            }
        };
        let mut out = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&self.key), data)
            .expand(label, &mut out)
            .expect("32 bytes is a valid HKDF length");
        out
    }

    /// Admits an attempt by `source`, or says how long it must wait.
    pub fn admit(&self, source: Source<'_>, now: Instant) -> Result<Attempt<'_>, Duration> {
        let key = self.key_of(source);
        let mut entries = self.entries.lock().expect("throttle");
        if entries.len() >= self.max_entries && !entries.contains_key(&key) {
            self.prune(&mut entries, now);
        }
        let e = entries.entry(key).or_insert(Entry {
            failures: 0,
            pending: 0,
            not_before: now,
            last: now,
        });
        if e.pending == 0 && now.saturating_duration_since(e.last) > FORGET_AFTER {
            e.failures = 0;
        }
        if now < e.not_before {
            return Err(e.not_before - now);
        }
        // Reserve the slot as if this attempt failed; an answer in time moves it either way.
        let delay = self.rule.delay(e.failures + e.pending);
        e.not_before = now + delay;
        e.pending += 1;
        e.last = now;
        Ok(Attempt {
            throttle: self,
            key,
            decided: false,
        })
    }

    /// Bounded memory: forget the sources that impose nothing (or nothing any more), then, if
    /// a flood of fresh sources still fills the map, the longest idle ones.
    fn prune(&self, entries: &mut HashMap<[u8; 32], Entry>, now: Instant) {
        entries.retain(|_, e| {
            e.pending > 0
                || (e.failures >= self.rule.free
                    && now.saturating_duration_since(e.last) <= FORGET_AFTER)
        });
        if entries.len() >= self.max_entries {
            let mut idle: Vec<(Instant, [u8; 32])> = entries
                .iter()
                .filter(|(_, e)| e.pending == 0)
                .map(|(k, e)| (e.last, *k))
                .collect();
            idle.sort_unstable();
            let excess = entries.len() + 1 - self.max_entries * 3 / 4;
            for (_, k) in idle.into_iter().take(excess) {
                entries.remove(&k);
            }
        }
    }

    /// How many entries are held (for tests and the status page).
    pub fn len(&self) -> usize {
        self.entries.lock().expect("throttle").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Attempt<'_> {
    /// The check failed: one more failure in a row for this source.
    pub fn failed(mut self, now: Instant) -> Failure {
        self.decided = true;
        let mut entries = self.throttle.entries.lock().expect("throttle");
        let rule = self.throttle.rule;
        let Some(e) = entries.get_mut(&self.key) else {
            // Pruned while pending cannot happen (pending entries are kept); start afresh.
            return Failure {
                failures: 1,
                delay: rule.delay(1),
            };
        };
        e.pending = e.pending.saturating_sub(1);
        e.failures = e.failures.saturating_add(1);
        let delay = rule.delay(e.failures);
        e.not_before = e.not_before.max(now + delay);
        e.last = now;
        Failure {
            failures: e.failures,
            delay,
        }
    }

    /// The check passed: the source starts afresh.
    pub fn succeeded(mut self) {
        self.decided = true;
        let mut entries = self.throttle.entries.lock().expect("throttle");
        if let Some(e) = entries.get_mut(&self.key) {
            if e.pending > 1 {
                // Others of this source are still in flight: they keep their reservation.
                e.pending -= 1;
                e.failures = 0;
            } else {
                entries.remove(&self.key);
            }
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.decided {
            return;
        }
        if let Ok(mut entries) = self.throttle.entries.lock()
            && let Some(e) = entries.get_mut(&self.key)
        {
            e.pending = e.pending.saturating_sub(1);
        }
    }
}

/// A device's random ID, from its device token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeviceId(pub [u8; 16]);

/// Device tokens: `base64url(id ‖ issued_at ‖ MAC(id ‖ issued_at ‖ address))` under a node
/// secret. A token says only "this device logged in to this address before": it grants no
/// access (the password is checked as always), so it needs no server-side record; it changes
/// whose failures count against whom.
pub struct DeviceTokens {
    key: [u8; 32],
    ttl_secs: i64,
}

const TOKEN_LEN: usize = 16 + 8 + 32;

impl DeviceTokens {
    pub fn new(key: [u8; 32], ttl_secs: u64) -> DeviceTokens {
        DeviceTokens {
            key,
            ttl_secs: i64::try_from(ttl_secs).unwrap_or(i64::MAX),
        }
    }

    fn mac(&self, id: &[u8; 16], issued_at: i64, address: &str) -> [u8; 32] {
        let mut ikm = Vec::with_capacity(24 + address.len());
        ikm.extend_from_slice(id);
        ikm.extend_from_slice(&issued_at.to_be_bytes());
        ikm.extend_from_slice(address.as_bytes());
        let mut out = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&self.key), &ikm)
            .expand(b"sealpost/v1/device-token", &mut out)
            .expect("32 bytes is a valid HKDF length");
        out
    }

    /// A token for a new device ID, bound to `address` (normalised).
    pub fn mint(&self, id: DeviceId, address: &str, now: i64) -> String {
        let mut raw = Vec::with_capacity(TOKEN_LEN);
        raw.extend_from_slice(&id.0);
        raw.extend_from_slice(&now.to_be_bytes());
        raw.extend_from_slice(&self.mac(&id.0, now, address));
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The device ID of `token` if it is this node's, for `address`, and unexpired.
    pub fn check(&self, token: &str, address: &str, now: i64) -> Option<DeviceId> {
        if token.len() > 2 * TOKEN_LEN {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
        if raw.len() != TOKEN_LEN {
            return None;
        }
        let id: [u8; 16] = raw[..16].try_into().ok()?;
        let issued_at = i64::from_be_bytes(raw[16..24].try_into().ok()?);
        let expected = self.mac(&id, issued_at, address);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], &raw[24..])) {
            return None;
        }
        let age = now.checked_sub(issued_at)?;
        (0..=self.ttl_secs).contains(&age).then_some(DeviceId(id))
    }
}

/// At most `limit` attempts per address (an IPv6 address counted by its /64) in each minute,
/// across everything it tries (the pickup routes: guessing cannot be spread over many links).
/// Fixed one-minute windows, in memory, bounded ([`MAX_ENTRIES`]: when full, windows of past
/// minutes are forgotten, and if that is not enough the newcomer is refused).
pub struct PerMinute {
    limit: u32,
    windows: Mutex<HashMap<std::net::IpAddr, (u64, u32)>>,
}

impl PerMinute {
    pub fn new(limit: u32) -> PerMinute {
        PerMinute {
            limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt from `ip` at `now` (Unix seconds); `Err(seconds)` until the next
    /// window when the limit is reached.
    pub fn check(&self, ip: std::net::IpAddr, now: u64) -> Result<(), u64> {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => {
                let mut o = v6.octets();
                o[8..].fill(0);
                std::net::IpAddr::V6(o.into())
            }
            v4 => v4,
        };
        let minute = now / 60;
        let retry = 60 - now % 60;
        let mut windows = self.windows.lock().expect("per-minute windows");
        if windows.len() >= MAX_ENTRIES && !windows.contains_key(&ip) {
            windows.retain(|_, (m, _)| *m == minute);
            if windows.len() >= MAX_ENTRIES {
                return Err(retry);
            }
        }
        let (m, n) = windows.entry(ip).or_insert((minute, 0));
        if *m != minute {
            (*m, *n) = (minute, 0);
        }
        if *n >= self.limit {
            return Err(retry);
        }
        *n += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: Rule = Rule {
        free: 3,
        base: Duration::from_secs(1),
        max: Duration::from_secs(10),
    };

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn delays_start_after_the_free_failures_double_and_are_capped() {
        let d: Vec<u64> = (0..10).map(|n| RULE.delay(n).as_secs()).collect();
        assert_eq!(d, [0, 0, 0, 1, 2, 4, 8, 10, 10, 10]);
        assert_eq!(RULE.delay(u32::MAX), secs(10), "no overflow");
    }

    /// The table of one guesser: (seconds since start, admitted?, failures after it).
    #[test]
    fn a_guesser_waits_longer_after_each_failure_and_early_attempts_are_refused() {
        let t = Throttle::new(RULE, [7; 32]);
        let t0 = Instant::now();
        let a = Source::Address("alice@a.test");
        let table: &[(u64, Result<u32, u64>)] = &[
            (0, Ok(1)),
            (0, Ok(2)),
            (0, Ok(3)), // now 1 s
            (0, Err(1)),
            (1, Ok(4)), // now 2 s
            (2, Err(1)),
            (3, Ok(5)), // now 4 s
            (6, Err(1)),
            (7, Ok(6)),
        ];
        for &(at, expect) in table {
            let got = t
                .admit(a, t0 + secs(at))
                .map(|att| att.failed(t0 + secs(at)).failures)
                .map_err(|wait| wait.as_secs_f64().ceil() as u64);
            assert_eq!(got, expect, "at {at} s");
        }
        // A success starts afresh.
        t.admit(a, t0 + secs(100)).unwrap().succeeded();
        assert!(t.is_empty());
    }

    #[test]
    fn sources_are_independent_and_unknown_addresses_are_treated_alike() {
        let t = Throttle::new(RULE, [7; 32]);
        let t0 = Instant::now();
        for addr in ["alice@a.test", "nobody@a.test"] {
            for _ in 0..3 {
                t.admit(Source::Address(addr), t0).unwrap().failed(t0);
            }
            assert_eq!(
                t.admit(Source::Address(addr), t0).err(),
                Some(secs(1)),
                "{addr}"
            );
        }
        // The owner's device is not slowed by the failures of others.
        let dev = DeviceId([1; 16]);
        t.admit(Source::Device(&dev), t0).unwrap().succeeded();
        t.admit(Source::Session(&[2; 32]), t0).unwrap().succeeded();
    }

    #[test]
    fn concurrent_attempts_cannot_slip_past_the_delay() {
        let t = Throttle::new(RULE, [7; 32]);
        let t0 = Instant::now();
        let a = Source::Address("alice@a.test");
        // Three free attempts in flight together, the fourth reserves the first delay, the
        // fifth must wait even though none has failed yet.
        let held: Vec<_> = (0..4).map(|_| t.admit(a, t0).unwrap()).collect();
        assert!(t.admit(a, t0).is_err());
        drop(held); // undecided: counted as nothing
        assert!(t.admit(a, t0).is_err(), "the reservation stands");
        assert!(t.admit(a, t0 + secs(1)).is_ok());
    }

    #[test]
    fn idle_sources_are_forgotten_and_memory_is_bounded() {
        let t = Throttle::with_capacity(RULE, [7; 32], 100);
        let t0 = Instant::now();
        let a = Source::Address("alice@a.test");
        for _ in 0..5 {
            let now = t0 + secs(60);
            if let Ok(att) = t.admit(a, now) {
                att.failed(now);
            }
        }
        let later = t0 + FORGET_AFTER + secs(120);
        t.admit(a, later).unwrap().failed(later);
        assert!(
            t.admit(a, later).is_ok(),
            "one failure after a day costs nothing"
        );
        for i in 0..1000 {
            let name = format!("x{i}@a.test");
            let _ = t
                .admit(Source::Address(&name), later)
                .map(|a| a.failed(later));
        }
        assert!(t.len() <= 100);
    }

    #[test]
    fn device_tokens_bind_the_address_and_expire() {
        let d = DeviceTokens::new([9; 32], 100);
        let id = DeviceId([3; 16]);
        let tok = d.mint(id, "alice@a.test", 1000);
        assert_eq!(d.check(&tok, "alice@a.test", 1000), Some(id));
        assert_eq!(d.check(&tok, "alice@a.test", 1100), Some(id));
        assert_eq!(d.check(&tok, "alice@a.test", 1101), None, "expired");
        assert_eq!(d.check(&tok, "bob@a.test", 1000), None, "another address");
        assert_eq!(
            DeviceTokens::new([8; 32], 100).check(&tok, "alice@a.test", 1000),
            None,
            "another node"
        );
        let mut raw = URL_SAFE_NO_PAD.decode(&tok).unwrap();
        raw[20] ^= 1; // a later issue date
        assert_eq!(
            d.check(&URL_SAFE_NO_PAD.encode(raw), "alice@a.test", 1000),
            None
        );
        assert_eq!(d.check("", "alice@a.test", 1000), None);
        assert_eq!(d.check("!!", "alice@a.test", 1000), None);
    }

    #[test]
    fn per_minute_limits_each_address_across_attempts_and_starts_afresh_each_minute() {
        let l = PerMinute::new(3);
        let a: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        let b: std::net::IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(l.check(a, 120), Ok(()));
        }
        assert_eq!(l.check(a, 150), Err(30));
        assert_eq!(l.check(b, 150), Ok(()));
        assert_eq!(l.check(a, 180), Ok(()));
        // One IPv6 /64 is one source.
        let v6 = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let l = PerMinute::new(1);
        assert_eq!(l.check(v6("2001:db8::1"), 0), Ok(()));
        assert_eq!(l.check(v6("2001:db8::2"), 0), Err(60));
        assert_eq!(l.check(v6("2001:db8:0:1::1"), 0), Ok(()));
    }
}
