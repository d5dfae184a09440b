//! Delivery state: the sender's per-peer [`Outbox`] and the receiver's [`Inbox`] de-dup window.
//!
//! Both are plain state machines. Time comes in as `now: Instant` on every call that depends on
//! it, randomness (backoff jitter) from an RNG handed to [`Outbox::new`]. They must not do I/O,
//! read a clock, sleep or persist anything: the driver around them owns sockets, timers and the
//! database. The durable outbox and the durable message-ID claim live in the node's database;
//! after a restart the driver re-enqueues its pending rows and these structures rebuild the
//! in-memory view.
//!
//! ## Outbox invariants
//!
//! - At most `capacity` items are held; [`Outbox::enqueue`] beyond that is [`Full`].
//! - Every held item is in exactly one state: *waiting* (due at some instant) or *in flight*
//!   (handed out by [`Outbox::poll_transmit`], awaiting [`Outbox::on_ack`] or
//!   [`Outbox::on_error`]). An item leaves only by `on_ack` or [`Outbox::expire`].
//! - An in-flight item is not handed out again until it errors or `ack_timeout` has passed
//!   since it was handed out (then it is due again without counting as a failure: the transfer
//!   may still be queued behind others on a slow link).
//! - After the `n`-th failure an item waits `d` with `b = min(initial_backoff · 2ⁿ⁻¹,
//!   max_backoff)` and `d` uniform in `[b/2, b]` ("equal jitter"), so never longer than
//!   `max_backoff` and never shorter than `initial_backoff / 2`.
//! - Due items are handed out oldest-due first, ties in enqueue order; at most `batch` per call.
//! - [`Outbox::poll_timeout`] is the earliest instant at which a call to `poll_transmit` or
//!   `expire` would return something it would not return now.

use crate::frame::MessageId;
use rand::Rng;
use rand::rngs::StdRng;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Durations longer than this are refused in configuration, so that `Instant + Duration`
/// cannot overflow.
const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Settings of one [`Outbox`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfig {
    /// Most items held for this peer (queued or in flight).
    pub capacity: usize,
    /// Most items handed out by one [`Outbox::poll_transmit`].
    pub batch: usize,
    /// Backoff after the first failure (before jitter).
    pub initial_backoff: Duration,
    /// Upper bound of any backoff, jitter included.
    pub max_backoff: Duration,
    /// How long an in-flight item waits for its receipt before it is sent again.
    pub ack_timeout: Duration,
    /// Age (since enqueue) after which an undelivered item is given up by [`Outbox::expire`].
    pub max_age: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            capacity: 100_000,
            batch: 64,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            ack_timeout: Duration::from_secs(30),
            max_age: Duration::from_secs(5 * 24 * 3600),
        }
    }
}

/// Invalid [`OutboxConfig`] or [`InboxConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    #[error("initial_backoff must not exceed max_backoff")]
    BackoffOrder,
    #[error("{0} must not exceed one year")]
    TooLong(&'static str),
}

/// The outbox for this peer holds `capacity` items already.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the outbox for this peer is full ({capacity} messages)")]
#[non_exhaustive]
pub struct Full {
    pub capacity: usize,
}

/// Where an item stands, as [`Outbox::status`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ItemState {
    /// Waiting to be sent; due at this instant (possibly already past).
    Waiting { due_at: Instant },
    /// Handed out at `since`; sent again if no receipt or error by `since + ack_timeout`.
    InFlight { since: Instant },
}

/// An item's state, failures so far and age, for `peer list` and for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemStatus {
    pub state: ItemState,
    /// Failures reported by [`Outbox::on_error`].
    pub failures: u32,
    pub enqueued_at: Instant,
}

#[derive(Debug)]
struct Item {
    seq: u64,
    enqueued_at: Instant,
    failures: u32,
    state: ItemState,
}

/// The sender's delivery state for one peer: which messages are due, in flight or backing off.
#[derive(Debug)]
pub struct Outbox<R = StdRng> {
    config: OutboxConfig,
    rng: R,
    next_seq: u64,
    items: HashMap<MessageId, Item>,
    /// Each item once, keyed by the next instant it needs attention (due, or ack timeout).
    timeline: BTreeMap<(Instant, u64), MessageId>,
    /// Each item once, keyed by enqueue time, for expiry.
    by_age: BTreeMap<(Instant, u64), MessageId>,
}

impl OutboxConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.capacity == 0 {
            return Err(ConfigError::Zero("capacity"));
        }
        if self.batch == 0 {
            return Err(ConfigError::Zero("batch"));
        }
        for (name, d) in [
            ("initial_backoff", self.initial_backoff),
            ("max_backoff", self.max_backoff),
            ("ack_timeout", self.ack_timeout),
            ("max_age", self.max_age),
        ] {
            if d.is_zero() {
                return Err(ConfigError::Zero(name));
            }
            if d > MAX_DURATION {
                return Err(ConfigError::TooLong(name));
            }
        }
        if self.initial_backoff > self.max_backoff {
            return Err(ConfigError::BackoffOrder);
        }
        Ok(())
    }
}

impl<R: Rng> Outbox<R> {
    /// An empty outbox. `rng` supplies backoff jitter (seed it in tests).
    pub fn new(config: OutboxConfig, rng: R) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Outbox {
            config,
            rng,
            next_seq: 0,
            items: HashMap::new(),
            timeline: BTreeMap::new(),
            by_age: BTreeMap::new(),
        })
    }

    pub fn config(&self) -> &OutboxConfig {
        &self.config
    }

    /// Items held (waiting or in flight).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn contains(&self, id: &MessageId) -> bool {
        self.items.contains_key(id)
    }

    pub fn status(&self, id: &MessageId) -> Option<ItemStatus> {
        self.items.get(id).map(|i| ItemStatus {
            state: i.state,
            failures: i.failures,
            enqueued_at: i.enqueued_at,
        })
    }

    /// Queues a message for this peer; it is due immediately. Enqueueing an ID already held is a
    /// no-op (`Ok`), so the driver can re-load its durable outbox after a restart without care.
    /// `now` is the message's enqueue time, from which `max_age` counts: pass the durable
    /// acceptance time when re-loading.
    pub fn enqueue(&mut self, id: MessageId, now: Instant) -> Result<(), Full> {
        if self.items.contains_key(&id) {
            return Ok(());
        }
        if self.items.len() >= self.config.capacity {
            return Err(Full {
                capacity: self.config.capacity,
            });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.timeline.insert((now, seq), id.clone());
        self.by_age.insert((now, seq), id.clone());
        self.items.insert(
            id,
            Item {
                seq,
                enqueued_at: now,
                failures: 0,
                state: ItemState::Waiting { due_at: now },
            },
        );
        Ok(())
    }

    /// Up to `batch` items due at `now`, oldest-due first; they are now in flight.
    pub fn poll_transmit(&mut self, now: Instant) -> Vec<MessageId> {
        let mut out = Vec::new();
        while out.len() < self.config.batch {
            let Some(entry) = self.timeline.first_entry() else {
                break;
            };
            if entry.key().0 > now {
                break;
            }
            let ((_, seq), id) = entry.remove_entry();
            self.timeline
                .insert((now + self.config.ack_timeout, seq), id.clone());
            if let Some(item) = self.items.get_mut(&id) {
                item.state = ItemState::InFlight { since: now };
            }
            out.push(id);
        }
        out
    }

    /// The peer answered this transfer with a receipt (whatever it accepted or refused): the item
    /// is done. Returns `false` if the ID was not held (already acked, expired, or unknown).
    pub fn on_ack(&mut self, id: &MessageId) -> bool {
        let Some(item) = self.items.remove(id) else {
            return false;
        };
        self.timeline.remove(&(self.wake_at(&item), item.seq));
        self.by_age.remove(&(item.enqueued_at, item.seq));
        true
    }

    /// Sending this item failed (connection refused, stream reset, peer said "try later"): it
    /// backs off. Returns when it is due again, or `None` if the ID is not held.
    pub fn on_error(&mut self, id: &MessageId, now: Instant) -> Option<Instant> {
        let (old_key, failures) = {
            let item = self.items.get(id)?;
            (
                (self.wake_at(item), item.seq),
                item.failures.saturating_add(1),
            )
        };
        let due_at = now + self.backoff(failures);
        let item = self.items.get_mut(id)?;
        item.failures = failures;
        item.state = ItemState::Waiting { due_at };
        let seq = item.seq;
        self.timeline.remove(&old_key);
        self.timeline.insert((due_at, seq), id.clone());
        Some(due_at)
    }

    /// The peer connected or sent us something: every item backing off is due now. In-flight
    /// items are left alone (their transfers may be answered yet; the ack timeout covers the
    /// ones a dropped connection lost). Failure counts are kept, so an item that keeps failing
    /// on a healthy peer still backs off further each time.
    pub fn on_peer_up(&mut self, now: Instant) {
        let mut moved = Vec::new();
        for (id, item) in self.items.iter_mut() {
            if let ItemState::Waiting { due_at } = item.state
                && due_at > now
            {
                item.state = ItemState::Waiting { due_at: now };
                moved.push(((due_at, item.seq), (now, item.seq), id.clone()));
            }
        }
        for (old, new, id) in moved {
            self.timeline.remove(&old);
            self.timeline.insert(new, id);
        }
    }

    /// Removes and returns every item enqueued at least `max_age` before `now`, oldest first,
    /// whatever its state. The caller records the failure and notifies the sender; a receipt
    /// that still arrives later finds the ID gone (`on_ack` returns `false`), and the database,
    /// which holds the truth, decides what to record then.
    pub fn expire(&mut self, now: Instant) -> Vec<MessageId> {
        let mut out = Vec::new();
        while let Some(entry) = self.by_age.first_entry() {
            if entry.key().0 + self.config.max_age > now {
                break;
            }
            let (_, id) = entry.remove_entry();
            if let Some(item) = self.items.remove(&id) {
                self.timeline.remove(&(self.wake_at(&item), item.seq));
            }
            out.push(id);
        }
        out
    }

    /// The next instant at which something becomes due or expires; `None` when empty. A driver
    /// sleeps until then (or until an event) and calls `expire` and `poll_transmit`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let due = self.timeline.keys().next().map(|k| k.0);
        let expiry = self.by_age.keys().next().map(|k| k.0 + self.config.max_age);
        match (due, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn wake_at(&self, item: &Item) -> Instant {
        match item.state {
            ItemState::Waiting { due_at } => due_at,
            ItemState::InFlight { since } => since + self.config.ack_timeout,
        }
    }

    /// The wait after the `failures`-th failure (see the module invariants).
    fn backoff(&mut self, failures: u32) -> Duration {
        backoff_delay(
            self.config.initial_backoff,
            self.config.max_backoff,
            failures,
            &mut self.rng,
        )
    }
}

/// The wait after the `failures`-th failure in a row: `b = min(initial · 2ⁿ⁻¹, max)`, then
/// uniform in `[b/2, b]` ("equal jitter"). Shared by [`Outbox`] and the driver's per-peer
/// backoff so both follow one rule.
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

/// Settings of an [`Inbox`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxConfig {
    /// Most message IDs remembered; the oldest are forgotten first.
    pub capacity: usize,
    /// How long an ID is remembered.
    pub retention: Duration,
}

impl Default for InboxConfig {
    fn default() -> Self {
        InboxConfig {
            capacity: 100_000,
            retention: Duration::from_secs(3600),
        }
    }
}

/// Whether a transfer's message ID was seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not remembered: check, store, then [`Inbox::remember`].
    New,
    /// Already accepted: do not store again, but answer with a receipt again (the sender's
    /// receipt was probably lost).
    Duplicate,
}

/// The receiver's protocol-level de-duplication window.
///
/// Decision: durable, exact de-duplication is the node's database (the message ID is claimed
/// in the same commit that stores the message). This window is bounded by `capacity` and
/// `retention` and only spares the database the common case, a retransmission shortly after the
/// first copy: an ID it has forgotten is answered `New`, and the database then says
/// "duplicate". It never answers `Duplicate` for an ID that was not remembered.
#[derive(Debug)]
pub struct Inbox {
    config: InboxConfig,
    seen: HashMap<MessageId, Instant>,
    /// IDs in the order they were remembered, with when; the front is forgotten first.
    order: VecDeque<(Instant, MessageId)>,
}

impl InboxConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.capacity == 0 {
            return Err(ConfigError::Zero("capacity"));
        }
        if self.retention.is_zero() {
            return Err(ConfigError::Zero("retention"));
        }
        if self.retention > MAX_DURATION {
            return Err(ConfigError::TooLong("retention"));
        }
        Ok(())
    }
}

impl Inbox {
    pub fn new(config: InboxConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Inbox {
            config,
            seen: HashMap::new(),
            order: VecDeque::new(),
        })
    }

    /// IDs currently remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Whether `id` was accepted within the retention window. Does not remember it: the caller
    /// calls [`Inbox::remember`] only once the message is stored, so a failed store is retried
    /// rather than answered as a duplicate.
    pub fn check(&self, id: &MessageId, now: Instant) -> Seen {
        match self.seen.get(id) {
            Some(at) if *at + self.config.retention > now => Seen::Duplicate,
            _ => Seen::New,
        }
    }

    /// Remembers `id` as accepted at `now`, forgetting the oldest IDs beyond the bounds.
    pub fn remember(&mut self, id: MessageId, now: Instant) {
        self.prune(now);
        if self.check(&id, now) == Seen::Duplicate {
            return;
        }
        // A stale entry for the same ID may still sit in `order`; `prune` skips it by time.
        self.seen.insert(id.clone(), now);
        self.order.push_back((now, id));
        while self.seen.len() > self.config.capacity {
            self.pop_oldest();
        }
    }

    /// Forgets IDs older than the retention window.
    pub fn prune(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if *at + self.config.retention > now {
                break;
            }
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((at, id)) = self.order.pop_front() {
            // Only forget the ID if this entry is its current one (not a stale earlier one).
            if self.seen.get(&id) == Some(&at) {
                self.seen.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn cfg() -> OutboxConfig {
        OutboxConfig {
            capacity: 4,
            batch: 2,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            ack_timeout: Duration::from_secs(10),
            max_age: Duration::from_secs(3600),
        }
    }

    fn outbox(c: OutboxConfig) -> Outbox {
        Outbox::new(c, StdRng::seed_from_u64(7)).unwrap()
    }

    fn ids(v: &[&str]) -> Vec<MessageId> {
        v.iter().map(|s| MessageId::from(*s)).collect()
    }

    #[test]
    fn config_is_validated() {
        let bad = [
            (
                OutboxConfig {
                    capacity: 0,
                    ..cfg()
                },
                ConfigError::Zero("capacity"),
            ),
            (
                OutboxConfig { batch: 0, ..cfg() },
                ConfigError::Zero("batch"),
            ),
            (
                OutboxConfig {
                    ack_timeout: Duration::ZERO,
                    ..cfg()
                },
                ConfigError::Zero("ack_timeout"),
            ),
            (
                OutboxConfig {
                    initial_backoff: Duration::from_secs(61),
                    ..cfg()
                },
                ConfigError::BackoffOrder,
            ),
            (
                OutboxConfig {
                    max_age: Duration::from_secs(400 * 24 * 3600),
                    ..cfg()
                },
                ConfigError::TooLong("max_age"),
            ),
        ];
        for (c, e) in bad {
            assert_eq!(Outbox::new(c, StdRng::seed_from_u64(0)).unwrap_err(), e);
        }
        assert!(OutboxConfig::default().validate().is_ok());
        assert_eq!(
            InboxConfig {
                capacity: 0,
                ..InboxConfig::default()
            }
            .validate(),
            Err(ConfigError::Zero("capacity"))
        );
    }

    #[test]
    fn new_items_are_due_at_once_in_batches_and_in_order() {
        let t0 = Instant::now();
        let mut o = outbox(cfg());
        for id in ["a", "b", "c"] {
            o.enqueue(id.into(), t0).unwrap();
        }
        assert_eq!(o.poll_timeout(), Some(t0));
        assert_eq!(o.poll_transmit(t0), ids(&["a", "b"]));
        assert_eq!(o.poll_transmit(t0), ids(&["c"]));
        assert_eq!(o.poll_transmit(t0), ids(&[]));
        // Next: the ack timeout of the in-flight items.
        assert_eq!(o.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn capacity_bound_and_idempotent_enqueue() {
        let t0 = Instant::now();
        let mut o = outbox(cfg());
        for id in ["a", "b", "c", "d"] {
            o.enqueue(id.into(), t0).unwrap();
        }
        assert_eq!(o.enqueue("a".into(), t0), Ok(()));
        assert_eq!(o.enqueue("e".into(), t0), Err(Full { capacity: 4 }));
        assert!(o.on_ack(&"a".into()));
        assert!(!o.on_ack(&"a".into()));
        assert_eq!(o.enqueue("e".into(), t0), Ok(()));
        assert_eq!(o.len(), 4);
    }

    #[test]
    fn in_flight_items_wait_for_ack_timeout() {
        let t0 = Instant::now();
        let mut o = outbox(cfg());
        o.enqueue("a".into(), t0).unwrap();
        assert_eq!(o.poll_transmit(t0), ids(&["a"]));
        assert!(o.poll_transmit(t0 + Duration::from_secs(9)).is_empty());
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(o.poll_transmit(t1), ids(&["a"]));
        // A timeout is not a failure.
        assert_eq!(o.status(&"a".into()).unwrap().failures, 0);
        assert_eq!(
            o.status(&"a".into()).unwrap().state,
            ItemState::InFlight { since: t1 }
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let t0 = Instant::now();
        let mut o = outbox(cfg());
        let a = MessageId::from("a");
        o.enqueue(a.clone(), t0).unwrap();
        let mut now = t0;
        for n in 1..=12u32 {
            assert_eq!(o.poll_transmit(now), vec![a.clone()]);
            let due = o.on_error(&a, now).unwrap();
            let wait = due - now;
            let base = Duration::from_secs(1u64 << (n - 1)).min(Duration::from_secs(60));
            assert!(wait >= base / 2 && wait <= base, "failure {n}: {wait:?}");
            assert!(o.poll_transmit(due - Duration::from_nanos(1)).is_empty());
            assert_eq!(o.poll_timeout(), Some(due));
            now = due;
        }
        assert_eq!(o.status(&a).unwrap().failures, 12);
    }

    #[test]
    fn jitter_is_deterministic_for_a_seed() {
        let run = || {
            let t0 = Instant::now();
            let mut o = outbox(cfg());
            o.enqueue("a".into(), t0).unwrap();
            (1..6)
                .map(|_| o.on_error(&"a".into(), t0).unwrap() - t0)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn peer_up_makes_waiting_items_due_but_not_in_flight_ones() {
        let t0 = Instant::now();
        let mut o = outbox(cfg());
        for id in ["a", "b"] {
            o.enqueue(id.into(), t0).unwrap();
        }
        assert_eq!(o.poll_transmit(t0).len(), 2);
        o.on_error(&"a".into(), t0);
        let t1 = t0 + Duration::from_millis(100);
        assert!(o.poll_transmit(t1).is_empty());
        o.on_peer_up(t1);
        assert_eq!(o.poll_timeout(), Some(t1));
        assert_eq!(o.poll_transmit(t1), ids(&["a"]));
        assert_eq!(o.status(&"a".into()).unwrap().failures, 1);
    }

    #[test]
    fn expiry_takes_old_items_whatever_their_state() {
        let t0 = Instant::now();
        let mut o = outbox(cfg());
        o.enqueue("a".into(), t0).unwrap();
        o.enqueue("b".into(), t0 + Duration::from_secs(1)).unwrap();
        o.enqueue("c".into(), t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(o.poll_transmit(t0 + Duration::from_secs(2)).len(), 2);
        o.on_error(&"b".into(), t0 + Duration::from_secs(2));
        let age = Duration::from_secs(3600);
        assert!(o.expire(t0 + age - Duration::from_nanos(1)).is_empty());
        assert_eq!(
            o.expire(t0 + age + Duration::from_secs(1)),
            ids(&["a", "b"])
        );
        assert_eq!(o.len(), 1);
        assert!(!o.on_ack(&"a".into()));
        // Only "c" is left; its expiry bounds the timeout.
        assert!(o.poll_timeout().unwrap() <= t0 + Duration::from_secs(2) + age);
        assert_eq!(o.expire(t0 + age * 2), ids(&["c"]));
        assert_eq!(o.poll_timeout(), None);
    }

    #[test]
    fn inbox_remembers_within_bounds() {
        let t0 = Instant::now();
        let mut i = Inbox::new(InboxConfig {
            capacity: 2,
            retention: Duration::from_secs(60),
        })
        .unwrap();
        let (a, b, c) = (
            MessageId::from("a"),
            MessageId::from("b"),
            MessageId::from("c"),
        );
        assert_eq!(i.check(&a, t0), Seen::New);
        // Checking does not remember.
        assert_eq!(i.check(&a, t0), Seen::New);
        i.remember(a.clone(), t0);
        assert_eq!(i.check(&a, t0), Seen::Duplicate);
        i.remember(a.clone(), t0 + Duration::from_secs(1));
        i.remember(b.clone(), t0 + Duration::from_secs(1));
        assert_eq!(i.len(), 2);
        // Capacity: remembering a third forgets the oldest.
        i.remember(c.clone(), t0 + Duration::from_secs(2));
        assert_eq!(i.len(), 2);
        assert_eq!(i.check(&a, t0 + Duration::from_secs(2)), Seen::New);
        assert_eq!(i.check(&b, t0 + Duration::from_secs(2)), Seen::Duplicate);
        // Retention: forgotten after 60 s, even before pruning.
        assert_eq!(i.check(&b, t0 + Duration::from_secs(61)), Seen::New);
        i.prune(t0 + Duration::from_secs(62));
        assert!(i.is_empty());
        // Re-remembering after expiry works and is not undone by a stale entry.
        i.remember(b.clone(), t0 + Duration::from_secs(70));
        assert_eq!(i.check(&b, t0 + Duration::from_secs(70)), Seen::Duplicate);
    }
}
