//! The delivery core: every decision the driver makes about sending to one peer, as plain
//! state and functions that `net::peer` calls, in the way quinn's driver pumps `quinn-proto`.
//!
//! - [`PeerSchedule`]: a peer's backoff (equal jitter, capped), when the sender runs next,
//!   which events wake it early, and whether transfers go to it in batches;
//! - [`plan_exchange`]: what the next exchange carries (one transfer, or a batch within the
//!   batch and frame limits), with [`PendingCursor`] paging through the host's pending
//!   transfers;
//! - [`IdleStreams`]: which kept streams are fresh enough for the next pass;
//! - [`ExchangeAttempts`]: whether an exchange that failed on its stream is tried again on
//!   another, and after what pause;
//! - [`transient`] and [`check_batch_answer`]: how the peer's answers are classified.
//!
//! Nothing here does I/O, reads a clock, sleeps or spawns: time comes in as `now: Instant`,
//! randomness (backoff jitter) from the RNG handed to [`PeerSchedule::new`]. `tests/sim.rs`
//! makes the same calls over a simulated lossy, partitioned network with a manual clock.
//!
//! What is not here is durable: the host (the node's database) holds the outbox and its bound,
//! claims each message ID once in the commit that stores it (exact de-duplication), and expires
//! what cannot be delivered. The driver asks [`crate::Host::pending`] afresh on every pass, so
//! a crash or a lost receipt costs a retransmission, never a message.

use crate::frame::{Limits, MessageId, Transfer};
use rand::Rng;
use rand::rngs::StdRng;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Attempts at an exchange on fresh streams that fail before any answer.
pub const FRESH_STREAM_ATTEMPTS: u32 = 3;

/// The wait after the `failures`-th failure in a row: `b = min(initial · 2ⁿ⁻¹, max)`, then
/// uniform in `[b/2, b]` ("equal jitter"): never longer than `max`, never shorter than
/// `initial / 2`.
pub fn backoff_delay<R: Rng + ?Sized>(
    initial: Duration,
    max: Duration,
    failures: u32,
    rng: &mut R,
) -> Duration {
    let exp = failures.saturating_sub(1).min(31);
    let base = initial.saturating_mul(1u32 << exp).min(max);
    let half = base / 2;
    // Saturating: a base beyond u64 nanoseconds (centuries) is clamped rather than overflowing.
    let span = u64::try_from((base - half).as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(rng.gen_range(0..=span))
}

/// Something that happened to a peer, for [`PeerSchedule::on_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The host queued new transfers for the peer.
    Queued,
    /// A connection to the peer opened (it may be a node of a newer version).
    Connected,
    /// The peer's addresses or domain changed.
    Readdressed,
    /// The peer opened a stream to us: it is reachable.
    HeardFrom,
}

/// How a send pass ended, as [`PeerSchedule::pass_ended`] is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassResult {
    /// Everything pending was sent or refused for good.
    Done,
    /// The pass stopped at a failure (connection, stream, timeout, transient refusal).
    Failed(String),
}

/// What the sender does after a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Sleep until `at` (the resync interval) or a wake. `resumed`: the peer was backing off
    /// until this pass, so its link state is reported again.
    Idle { at: Instant, resumed: bool },
    /// Back off: try again at `at` (`delay` after the failure) unless woken earlier.
    Retry {
        at: Instant,
        delay: Duration,
        failures: u32,
    },
}

impl Next {
    /// When the sender runs next if nothing wakes it.
    pub fn at(&self) -> Instant {
        match self {
            Next::Idle { at, .. } | Next::Retry { at, .. } => *at,
        }
    }
}

/// One peer's sending schedule.
///
/// Invariants: the peer is backing off (`retry_at` is set) exactly from a failed pass until the
/// next successful one; the `n`-th failure in a row waits [`backoff_delay`]`(n)`; a success
/// resets the count; batching is on until the peer refuses a batch for good, and on again from
/// its next connection.
#[derive(Debug)]
pub struct PeerSchedule<R = StdRng> {
    initial_backoff: Duration,
    max_backoff: Duration,
    resync_interval: Duration,
    rng: R,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<String>,
    batching: bool,
}

impl<R: Rng> PeerSchedule<R> {
    /// `rng` supplies the backoff jitter (seed it in tests). The caller checks that
    /// `initial_backoff <= max_backoff` ([`crate::Config::validate`]).
    pub fn new(
        initial_backoff: Duration,
        max_backoff: Duration,
        resync_interval: Duration,
        rng: R,
    ) -> Self {
        PeerSchedule {
            initial_backoff,
            max_backoff,
            resync_interval,
            rng,
            failures: 0,
            retry_at: None,
            last_error: None,
            batching: true,
        }
    }

    /// A send pass ended at `now`: when to run the next.
    pub fn pass_ended(&mut self, result: PassResult, now: Instant) -> Next {
        match result {
            PassResult::Done => {
                let resumed = self.failures > 0;
                self.failures = 0;
                self.retry_at = None;
                self.last_error = None;
                Next::Idle {
                    at: now + self.resync_interval,
                    resumed,
                }
            }
            PassResult::Failed(error) => {
                self.failures = self.failures.saturating_add(1);
                let delay = backoff_delay(
                    self.initial_backoff,
                    self.max_backoff,
                    self.failures,
                    &mut self.rng,
                );
                let at = now + delay;
                self.retry_at = Some(at);
                self.last_error = Some(error);
                Next::Retry {
                    at,
                    delay,
                    failures: self.failures,
                }
            }
        }
    }

    /// Whether `event` wakes the sender now. New work, a new connection and new addresses
    /// always do (even while backing off: "retry immediately when the peer connects"); the peer
    /// speaking to us does while we back off from it. A connection also turns batching back
    /// on: the peer may have been upgraded.
    pub fn on_event(&mut self, event: Event) -> bool {
        match event {
            Event::Queued | Event::Readdressed => true,
            Event::Connected => {
                self.batching = true;
                true
            }
            Event::HeardFrom => self.backing_off(),
        }
    }

    /// The peer answered a batch with an error frame `code`. A refusal for good means a node
    /// that does not take batches (an older version answers `malformed` or `unexpected`):
    /// transfers go one by one until it reconnects. Returns whether batching was turned off.
    pub fn batch_refused(&mut self, code: &str) -> bool {
        if transient(code) {
            return false;
        }
        let was = self.batching;
        self.batching = false;
        was
    }

    pub fn batching(&self) -> bool {
        self.batching
    }

    pub fn backing_off(&self) -> bool {
        self.retry_at.is_some()
    }

    /// While backing off: when the next attempt is due.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// The last pass's failure, cleared by a successful pass.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Failed passes in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// Whether an error code from the peer is worth retrying as it is (the pass ends and the peer
/// backs off); any other code refuses the transfer for good ([`crate::Host::rejected`]), and
/// the pass goes on.
pub fn transient(code: &str) -> bool {
    matches!(code, "unavailable" | "not_authorised" | "busy")
}

/// Where the sender stands in the host's pending transfers during one pass: it asks for a page
/// after the highest sequence number it has seen, and the pass ends when a page brings nothing
/// newer (also against a host that repeats itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingCursor {
    after: u64,
    done: bool,
}

impl PendingCursor {
    /// Whether to ask the host for a page now; `buffered`: transfers of the last page are
    /// still waiting.
    pub fn wants_page(&self, buffered: bool) -> bool {
        !buffered && !self.done
    }

    /// The sequence number to page after.
    pub fn after(&self) -> u64 {
        self.after
    }

    /// A page came with these sequence numbers.
    pub fn on_page(&mut self, seqs: impl IntoIterator<Item = u64>) {
        match seqs.into_iter().max() {
            Some(max) if max > self.after => self.after = max,
            _ => self.done = true,
        }
    }

    /// Something was queued since the cursor ran dry: look again (past what it already gave).
    pub fn reopen(&mut self) {
        self.done = false;
    }
}

/// What the next exchange carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The first transfer alone, its parts streamed when the peer wants them.
    One,
    /// A batch of the first transfer and the `following` transfers right behind it.
    Batch { following: usize },
}

/// What the next exchange carries, given the first transfer due and those already fetched
/// behind it (a batch never waits for more). With `batching`, a transfer whose parts are all
/// inline goes in a batch with the inline transfers behind it, up to the first that is not
/// inline or does not fit: at most `min(limits.max_batch, max_batch_transfers)` transfers, and
/// at most half the frame limit by [`wire_cost`].
pub fn plan_exchange<'a>(
    first: &Transfer,
    following: impl IntoIterator<Item = &'a Transfer>,
    batching: bool,
    limits: &Limits,
    max_batch_transfers: usize,
) -> Plan {
    if !batching || !batchable(first, limits) {
        return Plan::One;
    }
    let mut budget = (limits.max_frame_bytes / 2).saturating_sub(wire_cost(first));
    let most = limits.max_batch.min(max_batch_transfers);
    let mut n = 1;
    for t in following {
        if n >= most || !batchable(t, limits) || wire_cost(t) > budget {
            break;
        }
        budget -= wire_cost(t);
        n += 1;
    }
    Plan::Batch { following: n - 1 }
}

/// Whether a transfer can travel in a batch: every part inline, within the frame limits.
pub fn batchable(t: &Transfer, limits: &Limits) -> bool {
    t.node_sig.is_empty() && t.parts.iter().all(|p| p.data.is_some()) && t.validate(limits).is_ok()
}

/// An upper bound on a transfer's encoded size: JSON escaping at most doubles a string (the
/// envelope is JSON in a JSON string), base64 makes 4 bytes of 3.
pub fn wire_cost(t: &Transfer) -> usize {
    let strings = t.message_id.0.len() + t.envelope.len() + t.signature.len() + t.sender_cert.len();
    let data: usize = t
        .parts
        .iter()
        .filter_map(|p| p.data.as_ref())
        .map(Vec::len)
        .sum();
    2 * strings + data.div_ceil(3) * 4 + 160 * t.parts.len() + 256
}

/// Checks that a batch answer answers every transfer sent exactly once (by a receipt or an
/// error) and nothing else; the error says how it does not.
pub fn check_batch_answer<'a>(
    sent: impl IntoIterator<Item = &'a MessageId>,
    answered: impl IntoIterator<Item = &'a MessageId>,
) -> Result<(), String> {
    let mut unanswered: HashSet<&MessageId> = sent.into_iter().collect();
    for id in answered {
        if !unanswered.remove(id) {
            return Err(format!(
                "the batch answer names {id} twice, or a transfer not in the batch"
            ));
        }
    }
    if !unanswered.is_empty() {
        return Err("the batch answer leaves transfers unanswered".into());
    }
    Ok(())
}

/// Transfer streams a send pass left open, for the next pass: opening a stream costs a
/// protocol negotiation, and new streams open one after another. A stream is reused only while
/// fresher than half the peer's idle timeout (after which the peer closes its end); at most
/// `max` are kept.
#[derive(Debug)]
pub struct IdleStreams<S> {
    fresh_for: Duration,
    max: usize,
    streams: Vec<(S, Instant)>,
}

impl<S> IdleStreams<S> {
    pub fn new(idle_timeout: Duration, max: usize) -> Self {
        IdleStreams {
            fresh_for: idle_timeout / 2,
            max,
            streams: Vec::new(),
        }
    }

    /// The most recently kept stream still fresh at `now`; staler ones are dropped.
    pub fn take(&mut self, now: Instant) -> Option<S> {
        while let Some((s, at)) = self.streams.pop() {
            if now.saturating_duration_since(at) < self.fresh_for {
                return Some(s);
            }
        }
        None
    }

    /// Keeps a stream that is in step after its last exchange at `now`; hands it back when
    /// `max` are kept already (the caller closes it).
    pub fn keep(&mut self, stream: S, now: Instant) -> Result<(), S> {
        if self.streams.len() >= self.max {
            return Err(stream);
        }
        self.streams.push((stream, now));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

/// Where the stream an exchange runs on came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamSource {
    /// Kept from an earlier pass ([`IdleStreams`]).
    Kept,
    /// Opened for this exchange.
    Fresh,
}

/// How an exchange failed on its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The stream broke (reset, closed, I/O error).
    Stream {
        /// The peer had answered at least once: it saw the transfer.
        answered: bool,
    },
    /// Anything else: a timeout, an error frame, a protocol violation, our host.
    Other,
}

/// What to do after an exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try again on another stream at once.
    Now,
    /// Try again on a new stream after this pause.
    After(Duration),
    /// The exchange (and with it the pass) fails.
    GiveUp,
}

/// The attempts at one exchange. libp2p-stream drops inbound streams the receiver has no room
/// for at that instant, so a stream that fails before any answer is retried on a new one, up
/// to [`FRESH_STREAM_ATTEMPTS`] fresh streams with a growing pause; a kept stream the peer
/// closed meanwhile (it restarted, or the stream idled out) is no attempt. Timeouts and
/// failures after an answer are not retried.
#[derive(Debug, Clone, Default)]
pub struct ExchangeAttempts {
    fresh: u32,
}

impl ExchangeAttempts {
    /// The exchange is about to run on a stream from `source`.
    pub fn on_stream(&mut self, source: StreamSource) {
        if source == StreamSource::Fresh {
            self.fresh += 1;
        }
    }

    /// The exchange failed on a stream from `source`.
    pub fn on_failure(&self, source: StreamSource, failure: Failure) -> Retry {
        match failure {
            Failure::Stream { answered: false } if source == StreamSource::Kept => Retry::Now,
            Failure::Stream { answered: false } if self.fresh < FRESH_STREAM_ATTEMPTS => {
                Retry::After(Duration::from_millis(20 * u64::from(self.fresh)))
            }
            _ => Retry::GiveUp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::PartRef;
    use rand::SeedableRng;

    const S: Duration = Duration::from_secs(1);

    fn schedule(seed: u64) -> PeerSchedule {
        PeerSchedule::new(S, 60 * S, 120 * S, StdRng::seed_from_u64(seed))
    }

    fn transfer(id: &str, inline: Option<usize>) -> Transfer {
        Transfer {
            message_id: MessageId::from(id),
            envelope: "{}".into(),
            signature: "sig".into(),
            sender_cert: String::new(),
            parts: vec![PartRef {
                sha256: "0".repeat(64),
                size: inline.unwrap_or(1 << 20) as u64,
                data: inline.map(|n| vec![7; n]),
            }],
            node_sig: vec![],
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_is_capped_and_reset_by_a_success() {
        let t0 = Instant::now();
        let mut s = schedule(7);
        let mut now = t0;
        for n in 1..=12u32 {
            let Next::Retry {
                at,
                delay,
                failures,
            } = s.pass_ended(PassResult::Failed("down".into()), now)
            else {
                panic!("a failure backs off");
            };
            let base = (S * (1 << (n - 1))).min(60 * S);
            assert!(delay >= base / 2 && delay <= base, "failure {n}: {delay:?}");
            assert_eq!((at, failures), (now + delay, n));
            assert_eq!(s.retry_at(), Some(at));
            assert_eq!(s.last_error(), Some("down"));
            now = at;
        }
        assert_eq!(
            s.pass_ended(PassResult::Done, now),
            Next::Idle {
                at: now + 120 * S,
                resumed: true
            }
        );
        assert!(!s.backing_off() && s.last_error().is_none() && s.failures() == 0);
        assert_eq!(
            s.pass_ended(PassResult::Done, now),
            Next::Idle {
                at: now + 120 * S,
                resumed: false
            }
        );
        let Next::Retry { delay, .. } = s.pass_ended(PassResult::Failed("x".into()), now) else {
            panic!()
        };
        assert!(delay <= S, "the count starts again");
    }

    #[test]
    fn jitter_is_deterministic_for_a_seed() {
        let run = |seed| {
            let t0 = Instant::now();
            let mut s = schedule(seed);
            (0..6)
                .map(|_| s.pass_ended(PassResult::Failed(String::new()), t0).at() - t0)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn events_wake_the_sender_and_a_connection_restores_batching() {
        let mut s = schedule(1);
        assert!(!s.on_event(Event::HeardFrom), "not backing off: no wake");
        assert!(s.on_event(Event::Queued) && s.on_event(Event::Readdressed));
        s.pass_ended(PassResult::Failed("x".into()), Instant::now());
        assert!(s.on_event(Event::HeardFrom));
        assert!(!s.batch_refused("busy"), "a transient code keeps batching");
        assert!(s.batching());
        assert!(s.batch_refused("unexpected"));
        assert!(!s.batch_refused("malformed"), "already off");
        assert!(!s.batching());
        assert!(s.on_event(Event::Connected));
        assert!(s.batching());
    }

    #[test]
    fn codes_are_classified() {
        for c in ["unavailable", "not_authorised", "busy"] {
            assert!(transient(c), "{c}");
        }
        for c in [
            "refused",
            "too_large",
            "bad_signature",
            "malformed",
            "invalid",
        ] {
            assert!(!transient(c), "{c}");
        }
    }

    #[test]
    fn cursor_pages_until_nothing_newer() {
        let mut c = PendingCursor::default();
        assert!(c.wants_page(false) && !c.wants_page(true));
        c.on_page([3, 1, 2]);
        assert_eq!(c.after(), 3);
        c.on_page([3]);
        assert!(!c.wants_page(false), "a repeated page ends the pass");
        c.reopen();
        assert!(c.wants_page(false));
        c.on_page([]);
        assert!(!c.wants_page(false));
        assert_eq!(c.after(), 3);
    }

    #[test]
    fn plan_batches_inline_transfers_within_every_limit() {
        let limits = Limits::default();
        let small: Vec<Transfer> = (0..100)
            .map(|i| transfer(&format!("m{i}"), Some(100)))
            .collect();
        assert_eq!(
            plan_exchange(&small[0], &small[1..], true, &limits, 64),
            Plan::Batch { following: 63 }
        );
        assert_eq!(
            plan_exchange(&small[0], &small[1..], true, &limits, 10),
            Plan::Batch { following: 9 }
        );
        assert_eq!(
            plan_exchange(&small[0], &small[1..], false, &limits, 64),
            Plan::One
        );
        // A streamed part goes alone, and stops a batch behind it.
        let big = transfer("big", None);
        assert_eq!(plan_exchange(&big, &small, true, &limits, 64), Plan::One);
        let mixed = [small[1].clone(), big, small[2].clone()];
        assert_eq!(
            plan_exchange(&small[0], &mixed, true, &limits, 64),
            Plan::Batch { following: 1 }
        );
        // Half the frame limit.
        let tight = Limits {
            max_frame_bytes: 2 * (wire_cost(&small[0]) * 3 + 1),
            ..Limits::default()
        };
        assert_eq!(
            plan_exchange(&small[0], &small[1..], true, &tight, 64),
            Plan::Batch { following: 2 }
        );
    }

    #[test]
    fn batch_answers_must_answer_each_transfer_once() {
        let ids: Vec<MessageId> = ["a", "b"].into_iter().map(MessageId::from).collect();
        assert!(check_batch_answer(&ids, &ids).is_ok());
        assert!(check_batch_answer(&ids, &ids[..1]).is_err());
        let twice = [ids[0].clone(), ids[0].clone(), ids[1].clone()];
        assert!(check_batch_answer(&ids, &twice).is_err());
        let other = [MessageId::from("c")];
        assert!(check_batch_answer(&ids[..0], &other).is_err());
    }

    #[test]
    fn idle_streams_are_bounded_and_reused_only_while_fresh() {
        let t0 = Instant::now();
        let mut p = IdleStreams::new(10 * S, 2);
        assert_eq!(p.keep(1, t0), Ok(()));
        assert_eq!(p.keep(2, t0 + S), Ok(()));
        assert_eq!(p.keep(3, t0 + S), Err(3));
        assert_eq!(p.take(t0 + 5 * S), Some(2), "most recent first");
        assert_eq!(p.take(t0 + 5 * S), None, "stream 1 is 5 s old: stale");
        assert!(p.is_empty());
    }

    #[test]
    fn exchange_retries_on_new_streams_a_few_times() {
        let before = Failure::Stream { answered: false };
        let mut a = ExchangeAttempts::default();
        a.on_stream(StreamSource::Kept);
        assert_eq!(a.on_failure(StreamSource::Kept, before), Retry::Now);
        for n in 1..FRESH_STREAM_ATTEMPTS {
            a.on_stream(StreamSource::Fresh);
            assert_eq!(
                a.on_failure(StreamSource::Fresh, before),
                Retry::After(Duration::from_millis(20 * u64::from(n)))
            );
        }
        a.on_stream(StreamSource::Fresh);
        assert_eq!(a.on_failure(StreamSource::Fresh, before), Retry::GiveUp);
        assert_eq!(a.on_failure(StreamSource::Kept, before), Retry::Now);
        let fresh = ExchangeAttempts::default();
        for f in [Failure::Stream { answered: true }, Failure::Other] {
            assert_eq!(fresh.on_failure(StreamSource::Kept, f), Retry::GiveUp);
        }
    }
}
