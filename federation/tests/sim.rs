//! The protocol core over a simulated network and clock.
//!
//! A sender [`Outbox`] and a receiver [`Inbox`] talk through two one-way [`Link`]s whose loss,
//! delay and partition the test controls. Frames really go through `encode`/`decode`. The clock
//! is `t0 + offset`, advanced only by the test, jumping to the next event (`poll_timeout` or the
//! next packet arrival). Every RNG is seeded, so each run is the same.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sealpost_federation::{
    Frame, Full, Inbox, InboxConfig, ItemState, Limits, MessageId, Outbox, OutboxConfig, PartRef,
    Receipt, Seen, Transfer, decode, encode,
};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// One direction of a network path.
struct Link {
    rng: StdRng,
    /// Probability that a sent packet silently disappears.
    loss: f64,
    delay: Duration,
    /// While set, sending fails at once (as a refused connection does).
    partitioned: bool,
    in_transit: Vec<(Instant, Vec<u8>)>,
}

struct Unreachable;

impl Link {
    fn new(seed: u64, loss: f64, delay: Duration) -> Self {
        Link {
            rng: StdRng::seed_from_u64(seed),
            loss,
            delay,
            partitioned: false,
            in_transit: Vec::new(),
        }
    }

    fn send(&mut self, now: Instant, bytes: Vec<u8>) -> Result<(), Unreachable> {
        if self.partitioned {
            return Err(Unreachable);
        }
        if !self.rng.gen_bool(self.loss) {
            self.in_transit.push((now + self.delay, bytes));
        }
        Ok(())
    }

    fn recv(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let (ready, later) = std::mem::take(&mut self.in_transit)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.in_transit = later;
        ready.into_iter().map(|(_, b)| b).collect()
    }

    fn next_arrival(&self) -> Option<Instant> {
        self.in_transit.iter().map(|(at, _)| *at).min()
    }
}

/// The receiving node, reduced to its protocol duties: de-duplicate, "store", answer.
struct Receiver {
    inbox: Inbox,
    /// Times each message reached the mailbox.
    mailbox: BTreeMap<MessageId, u32>,
    duplicates_answered: u32,
}

impl Receiver {
    fn handle(&mut self, bytes: &[u8], now: Instant) -> Vec<u8> {
        let Frame::Transfer(t) = decode(bytes, &Limits::default()).expect("valid transfer") else {
            panic!("receiver expects transfers");
        };
        match self.inbox.check(&t.message_id, now) {
            Seen::New => {
                *self.mailbox.entry(t.message_id.clone()).or_default() += 1;
                self.inbox.remember(t.message_id.clone(), now);
            }
            Seen::Duplicate => self.duplicates_answered += 1,
        }
        let mut r = Receipt {
            message_id: t.message_id,
            accepted: vec!["bob@beta.test".into()],
            refused: vec![],
            node_sig: vec![],
        };
        r.node_sig = r.signing_digest().to_vec(); // stands in for the node's signature
        encode(&Frame::Receipt(r))
    }
}

fn transfer(id: &MessageId) -> Vec<u8> {
    let envelope = format!(r#"{{"v":1,"message_id":"{id}","from":"alice@alpha.test"}}"#);
    let mut t = Transfer {
        message_id: id.clone(),
        signature: "sig".into(),
        sender_cert: String::new(),
        parts: vec![PartRef {
            sha256: hex::encode(Sha256::digest(envelope.as_bytes())),
            size: 4096,
            data: None,
        }],
        envelope,
        node_sig: vec![],
    };
    t.node_sig = t.signing_digest().to_vec();
    encode(&Frame::Transfer(t))
}

struct Sim {
    t0: Instant,
    now: Instant,
    outbox: Outbox,
    receiver: Receiver,
    up: Link,
    down: Link,
    /// `(id, when)` of every expiry.
    expired: Vec<(MessageId, Instant)>,
    /// Every wait chosen after an error, per message.
    backoffs: BTreeMap<MessageId, Vec<Duration>>,
    largest_batch: usize,
    transmissions: u64,
}

impl Sim {
    fn new(config: OutboxConfig, loss: f64, delay: Duration, seed: u64) -> Self {
        let t0 = Instant::now();
        Sim {
            t0,
            now: t0,
            outbox: Outbox::new(config, StdRng::seed_from_u64(seed)).unwrap(),
            receiver: Receiver {
                inbox: Inbox::new(InboxConfig::default()).unwrap(),
                mailbox: BTreeMap::new(),
                duplicates_answered: 0,
            },
            up: Link::new(seed + 1, loss, delay),
            down: Link::new(seed + 2, loss, delay),
            expired: Vec::new(),
            backoffs: BTreeMap::new(),
            largest_batch: 0,
            transmissions: 0,
        }
    }

    fn enqueue(&mut self, n: usize, prefix: &str) -> Vec<MessageId> {
        (0..n)
            .map(|i| {
                let id = MessageId(format!("{prefix}-{i:04}"));
                self.outbox.enqueue(id.clone(), self.now).unwrap();
                id
            })
            .collect()
    }

    /// Everything that happens at `self.now`, in the order a driver would do it.
    fn step(&mut self) {
        let now = self.now;
        for id in self.outbox.expire(now) {
            self.expired.push((id, now));
        }
        loop {
            let batch = self.outbox.poll_transmit(now);
            if batch.is_empty() {
                break;
            }
            self.largest_batch = self.largest_batch.max(batch.len());
            for id in batch {
                self.transmissions += 1;
                if self.up.send(now, transfer(&id)).is_err() {
                    let due = self.outbox.on_error(&id, now).unwrap();
                    self.backoffs.entry(id).or_default().push(due - now);
                }
            }
        }
        for bytes in self.up.recv(now) {
            let receipt = self.receiver.handle(&bytes, now);
            // A lost receipt is the sender's problem: it retransmits after the ack timeout.
            let _ = self.down.send(now, receipt);
        }
        for bytes in self.down.recv(now) {
            let Frame::Receipt(r) = decode(&bytes, &Limits::default()).unwrap() else {
                panic!("sender expects receipts");
            };
            self.outbox.on_ack(&r.message_id);
        }
    }

    /// Steps, jumping the clock from event to event, until `done` or `until` is reached.
    fn run(&mut self, until: Instant, done: impl Fn(&Sim) -> bool) {
        loop {
            self.step();
            if done(self) {
                return;
            }
            let next = [
                self.outbox.poll_timeout(),
                self.up.next_arrival(),
                self.down.next_arrival(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) if t <= until => self.now = self.now.max(t),
                _ => {
                    self.now = until;
                    self.step();
                    return;
                }
            }
        }
    }

    fn assert_exactly_once(&self, ids: &[MessageId]) {
        let want: BTreeSet<_> = ids.iter().cloned().collect();
        let got: BTreeSet<_> = self.receiver.mailbox.keys().cloned().collect();
        assert_eq!(got, want, "mailbox differs from what was sent");
        for (id, n) in &self.receiver.mailbox {
            assert_eq!(*n, 1, "{id} stored {n} times");
        }
    }
}

fn config() -> OutboxConfig {
    OutboxConfig {
        capacity: 10_000,
        batch: 32,
        initial_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(60),
        ack_timeout: Duration::from_secs(1),
        max_age: Duration::from_secs(24 * 3600),
    }
}

const MS: Duration = Duration::from_millis(1);

/// (a) 30% loss each way: everything arrives, each exactly once, with retransmissions.
#[test]
fn exactly_once_under_30_percent_loss() {
    for seed in [1, 2, 3] {
        let mut sim = Sim::new(config(), 0.3, 20 * MS, seed);
        let mut ids = Vec::new();
        // 500 messages, arriving in bursts of 25 every 100 ms.
        for burst in 0..20 {
            ids.extend(sim.enqueue(25, &format!("s{seed}-b{burst:02}")));
            let until = sim.now + 100 * MS;
            sim.run(until, |_| false);
        }
        let deadline = sim.t0 + Duration::from_secs(600);
        sim.run(deadline, |s| s.outbox.is_empty());
        assert!(
            sim.outbox.is_empty(),
            "seed {seed}: {} left",
            sim.outbox.len()
        );
        sim.assert_exactly_once(&ids);
        assert!(sim.expired.is_empty());
        // Lost receipts caused retransmissions that de-duplication caught.
        assert!(sim.receiver.duplicates_answered > 0, "seed {seed}");
        assert!(sim.transmissions > 500, "seed {seed}");
        assert!(sim.largest_batch <= 32);
    }
}

/// (b) A partition loses nothing; backoff grows and stays capped; after the heal and
/// `on_peer_up`, everything is delivered within one round trip.
#[test]
fn partition_backs_off_then_peer_up_delivers_in_one_round() {
    let delay = 20 * MS;
    let mut sim = Sim::new(
        OutboxConfig {
            batch: 16,
            ..config()
        },
        0.0,
        delay,
        9,
    );
    sim.up.partitioned = true;
    let ids = sim.enqueue(50, "p");
    let heal = sim.t0 + Duration::from_secs(30 * 60);
    sim.run(heal, |_| false);

    // Nothing lost, nothing delivered, nothing expired.
    assert_eq!(sim.outbox.len(), 50);
    assert!(sim.receiver.mailbox.is_empty());
    assert!(sim.expired.is_empty());
    let (initial, cap) = (config().initial_backoff, config().max_backoff);
    for id in &ids {
        let waits = &sim.backoffs[id];
        // 30 minutes at ≤ 60 s per wait: at least 30 attempts.
        assert!(waits.len() >= 30, "{id}: {} attempts", waits.len());
        for (k, w) in waits.iter().enumerate() {
            let base = initial.saturating_mul(1 << k.min(20)).min(cap);
            assert!(
                *w >= base / 2 && *w <= base,
                "{id} failure {}: {w:?}",
                k + 1
            );
            assert!(*w <= cap);
        }
        // It grew: the last waits are near the cap, far above the first.
        assert!(*waits.last().unwrap() >= cap / 2);
        assert!(waits[0] <= initial);
        assert_eq!(
            sim.outbox.status(id).unwrap().failures as usize,
            waits.len()
        );
    }

    // Heal. The peer connects: everything is due now.
    sim.up.partitioned = false;
    sim.outbox.on_peer_up(sim.now);
    assert_eq!(sim.outbox.poll_timeout(), Some(sim.now));
    let healed = sim.now;
    sim.run(healed + 2 * delay, |s| s.outbox.is_empty());
    assert!(sim.outbox.is_empty());
    assert_eq!(sim.now, healed + 2 * delay, "one round trip");
    sim.assert_exactly_once(&ids);
}

/// (c) After `max_age`, expiry yields exactly the messages that were not delivered, at the
/// expiry instant, which `poll_timeout` wakes the driver for.
#[test]
fn expiry_yields_exactly_the_undelivered() {
    let max_age = Duration::from_secs(3600);
    let mut sim = Sim::new(
        OutboxConfig {
            max_age,
            ..config()
        },
        0.0,
        10 * MS,
        5,
    );
    sim.up.loss = 0.5; // transfers get lost, receipts do not: "delivered" = "acked"
    let ids = sim.enqueue(40, "e");
    let cut = sim.t0 + Duration::from_millis(1500);
    sim.run(cut, |_| false);
    sim.up.partitioned = true;
    sim.run(sim.t0 + 2 * max_age, |s| s.outbox.is_empty());

    assert!(sim.outbox.is_empty());
    let delivered: BTreeSet<_> = sim.receiver.mailbox.keys().cloned().collect();
    let expired: BTreeSet<_> = sim.expired.iter().map(|(id, _)| id.clone()).collect();
    assert!(
        !delivered.is_empty() && !expired.is_empty(),
        "a mixed outcome"
    );
    assert_eq!(sim.expired.len(), expired.len(), "each expires once");
    assert!(delivered.is_disjoint(&expired));
    let all: BTreeSet<_> = ids.iter().cloned().collect();
    assert_eq!(&delivered | &expired, all);
    for (_, at) in &sim.expired {
        assert_eq!(*at, sim.t0 + max_age, "expired exactly at max_age");
    }
}

/// (d) The per-peer capacity bound is a typed error, and frees up as messages are acked.
#[test]
fn capacity_bound_yields_full() {
    let mut sim = Sim::new(
        OutboxConfig {
            capacity: 8,
            ..config()
        },
        0.0,
        10 * MS,
        3,
    );
    let ids = sim.enqueue(8, "c");
    let r = sim.outbox.enqueue(MessageId::from("one-too-many"), sim.now);
    assert!(matches!(r, Err(Full { capacity: 8, .. })), "{r:?}");
    assert_eq!(
        r.unwrap_err().to_string(),
        "the outbox for this peer is full (8 messages)"
    );
    sim.run(sim.t0 + Duration::from_secs(10), |s| s.outbox.is_empty());
    sim.assert_exactly_once(&ids);
    assert!(
        sim.outbox
            .enqueue(MessageId::from("fits-now"), sim.now)
            .is_ok()
    );
}

/// (e) `poll_transmit` hands out at most `batch` items, in enqueue order, without repeats.
#[test]
fn batching_respects_batch() {
    let mut o = Outbox::new(
        OutboxConfig {
            batch: 10,
            ..config()
        },
        StdRng::seed_from_u64(1),
    )
    .unwrap();
    let t0 = Instant::now();
    let ids: Vec<MessageId> = (0..25).map(|i| MessageId(format!("m{i:02}"))).collect();
    for id in &ids {
        o.enqueue(id.clone(), t0).unwrap();
    }
    let batches: Vec<Vec<MessageId>> = (0..4).map(|_| o.poll_transmit(t0)).collect();
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 5, 0]);
    assert_eq!(batches.concat(), ids);
    for id in &ids {
        assert_eq!(
            o.status(id).unwrap().state,
            ItemState::InFlight { since: t0 }
        );
    }
    // After the ack timeout they come back, again at most `batch` at a time.
    let later = t0 + config().ack_timeout;
    assert_eq!(o.poll_transmit(later).len(), 10);
}
