//! The delivery core over a simulated network and clock.
//!
//! [`Sim`] is the driver's sender (`net::peer`) with the sockets taken out: it makes the same
//! calls into `sealpost_federation::delivery` in the same order ([`PeerSchedule::pass_ended`]
//! after every pass, [`PendingCursor`] and [`plan_exchange`] for each exchange,
//! [`IdleStreams`] for kept streams, [`ExchangeAttempts`] after a failed exchange,
//! [`transient`], [`check_batch_answer`] and [`PeerSchedule::batch_refused`] on answers,
//! [`PeerSchedule::on_event`] for wake-ups), over one sending worker. Frames really go through
//! `encode`/`decode`. The network loses requests and answers, resets new streams and can be
//! partitioned; the receiving node de-duplicates by message ID as the node's database does. The
//! clock is `t0 + offset`, advanced only by the simulation; every RNG is seeded.
//!
//! Not here, because the driver does not decide them: the outbox bound (the node refuses a
//! submission with `peer_backlog`) and expiry (the node's sweep), both tested in
//! `tests/tests/federation.rs`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sealpost_federation::{
    Batch, BatchAnswer, BatchError, ErrorFrame, Event, ExchangeAttempts, FRESH_STREAM_ATTEMPTS,
    Failure, Frame, IdleStreams, Limits, MessageId, Next, PartRef, PassResult, PeerSchedule,
    PendingCursor, Plan, Receipt, Retry, StreamSource, Transfer, check_batch_answer, decode,
    encode, plan_exchange, transient, wire_cost,
};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

/// The network between the two nodes.
struct Net {
    rng: StdRng,
    /// Probability that a request, and independently its answer, is lost (the exchange times
    /// out).
    loss: f64,
    /// Probability that a new stream is dropped by the receiver before it reads anything (as
    /// libp2p-stream does when its one-slot channel is taken).
    reset: f64,
    /// One way.
    delay: Duration,
    /// While set, opening a stream fails at once and kept streams time out.
    partitioned: bool,
}

/// The receiving node, reduced to its protocol duties.
#[derive(Default)]
struct Receiver {
    /// Times each message was stored: the node claims a message ID once, in the commit that
    /// stores the message.
    mailbox: BTreeMap<MessageId, u32>,
    /// Transfers answered with a receipt again without being stored again.
    duplicates: u32,
    /// An older node: answers a batch with `unexpected`.
    no_batches: bool,
    /// Transfers refused for good, with the code.
    refuse: BTreeMap<MessageId, String>,
    /// Exchanges still to be answered `busy`.
    busy: u32,
    /// Bumped by a restart: streams opened before it are closed.
    epoch: u64,
}

impl Receiver {
    fn store(&mut self, t: &Transfer) -> Result<Receipt, ErrorFrame> {
        if let Some(code) = self.refuse.get(&t.message_id) {
            return Err(ErrorFrame {
                code: code.clone(),
                message: "refused".into(),
            });
        }
        let n = self.mailbox.entry(t.message_id.clone()).or_default();
        if *n > 0 {
            self.duplicates += 1;
        } else {
            *n = 1;
        }
        Ok(Receipt {
            message_id: t.message_id.clone(),
            accepted: vec!["bob@beta.test".into()],
            refused: vec![],
            node_sig: vec![],
        })
    }

    fn answer(&mut self, request: &[u8]) -> Vec<u8> {
        let limits = Limits::default();
        let answer = if self.busy > 0 {
            self.busy -= 1;
            Frame::Error(ErrorFrame {
                code: "busy".into(),
                message: "try later".into(),
            })
        } else {
            match decode(request, &limits).expect("the sender sends valid frames") {
                Frame::Transfer(t) => match self.store(&t) {
                    Ok(r) => Frame::Receipt(r),
                    Err(e) => Frame::Error(e),
                },
                Frame::Batch(_) if self.no_batches => Frame::Error(ErrorFrame {
                    code: "unexpected".into(),
                    message: "unexpected batch frame".into(),
                }),
                Frame::Batch(b) => {
                    let (mut receipts, mut errors) = (Vec::new(), Vec::new());
                    for t in &b.transfers {
                        match self.store(t) {
                            Ok(r) => receipts.push(r),
                            Err(e) => errors.push(BatchError {
                                message_id: t.message_id.clone(),
                                code: e.code,
                                message: e.message,
                            }),
                        }
                    }
                    Frame::BatchAnswer(BatchAnswer {
                        receipts,
                        errors,
                        node_sig: vec![],
                    })
                }
                other => panic!("the receiver got {other:?}"),
            }
        };
        encode(&answer)
    }
}

/// The sending node's side of the host: its durable outbox and what it recorded.
#[derive(Default)]
struct SenderHost {
    next_seq: u64,
    pending: BTreeMap<u64, Transfer>,
    seq_of: HashMap<MessageId, u64>,
    /// Receipts recorded per message.
    delivered: BTreeMap<MessageId, u32>,
    rejected: Vec<(MessageId, String)>,
}

impl SenderHost {
    fn pending(&self, after: u64, page: usize) -> Vec<(u64, Transfer)> {
        self.pending
            .range(after + 1..)
            .take(page)
            .map(|(s, t)| (*s, t.clone()))
            .collect()
    }

    fn delivered(&mut self, id: &MessageId) {
        *self.delivered.entry(id.clone()).or_default() += 1;
        self.remove(id);
    }

    fn rejected(&mut self, id: &MessageId, code: &str) {
        self.rejected.push((id.clone(), code.to_owned()));
        self.remove(id);
    }

    fn remove(&mut self, id: &MessageId) {
        if let Some(seq) = self.seq_of.remove(id) {
            self.pending.remove(&seq);
        }
    }
}

struct SimStream {
    epoch: u64,
    last_used: Instant,
    exchanges: u32,
}

enum Work {
    One(Transfer),
    Batch(Vec<Transfer>),
}

/// Whether the stream is still in step after an exchange (as in `net::peer`).
enum After {
    Keep,
    Drop,
}

#[derive(Default)]
struct Stats {
    passes: u32,
    failed_passes: u32,
    exchanges: u32,
    /// Transfers per batch sent.
    batches: Vec<usize>,
    /// The sum of [`wire_cost`] over each batch sent.
    batch_costs: Vec<usize>,
    lone_transfers: u32,
    /// Message IDs in the order of their first transmission.
    first_sends: Vec<MessageId>,
    streams_opened: u32,
    /// Exchanges tried again on another stream, with the pause.
    retries: Vec<Retry>,
    /// `(failures, delay)` of every backoff.
    backoffs: Vec<(u32, Duration)>,
}

struct Config {
    limits: Limits,
    max_batch_transfers: usize,
    page: usize,
    request_timeout: Duration,
    idle_timeout: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
    resync_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: Limits::default(),
            max_batch_transfers: 64,
            page: 64,
            request_timeout: 30 * S,
            idle_timeout: 30 * S,
            initial_backoff: 500 * MS,
            max_backoff: 60 * S,
            resync_interval: 120 * S,
        }
    }
}

struct Sim {
    t0: Instant,
    now: Instant,
    cfg: Config,
    schedule: PeerSchedule,
    idle: IdleStreams<SimStream>,
    /// A wake is pending (as a `Notify` permit is).
    woken: bool,
    /// When the sender runs next if not woken.
    wake_at: Instant,
    host: SenderHost,
    net: Net,
    peer: Receiver,
    stats: Stats,
    sent_ever: BTreeSet<MessageId>,
}

impl Sim {
    fn new(cfg: Config, seed: u64) -> Self {
        let t0 = Instant::now();
        Sim {
            t0,
            now: t0,
            schedule: PeerSchedule::new(
                cfg.initial_backoff,
                cfg.max_backoff,
                cfg.resync_interval,
                StdRng::seed_from_u64(seed),
            ),
            idle: IdleStreams::new(cfg.idle_timeout, 1),
            cfg,
            woken: false,
            wake_at: t0,
            host: SenderHost::default(),
            net: Net {
                rng: StdRng::seed_from_u64(seed + 1000),
                loss: 0.0,
                reset: 0.0,
                delay: 20 * MS,
                partitioned: false,
            },
            peer: Receiver::default(),
            stats: Stats::default(),
            sent_ever: BTreeSet::new(),
        }
    }

    /// Queues `n` transfers (inline parts of `inline` bytes each, or streamed when `None`)
    /// and tells the schedule, as `Handle::wake` does.
    fn enqueue(&mut self, n: usize, prefix: &str, inline: Option<usize>) -> Vec<MessageId> {
        let ids: Vec<MessageId> = (0..n)
            .map(|i| {
                let id = MessageId(format!("{prefix}-{i:04}"));
                self.enqueue_one(transfer(&id, inline));
                id
            })
            .collect();
        self.event(Event::Queued);
        ids
    }

    fn enqueue_one(&mut self, t: Transfer) {
        self.host.next_seq += 1;
        self.host
            .seq_of
            .insert(t.message_id.clone(), self.host.next_seq);
        self.host.pending.insert(self.host.next_seq, t);
    }

    fn event(&mut self, e: Event) {
        if self.schedule.on_event(e) {
            self.woken = true;
        }
    }

    /// Runs the sender until `done` or until the clock passes `until`, jumping from wake-up to
    /// wake-up.
    fn run(&mut self, until: Instant, done: impl Fn(&Sim) -> bool) {
        loop {
            if done(self) {
                return;
            }
            if self.woken || self.now >= self.wake_at {
                self.woken = false;
                let result = match self.pass() {
                    Ok(()) => PassResult::Done,
                    Err(e) => PassResult::Failed(e),
                };
                let next = self.schedule.pass_ended(result, self.now);
                if let Next::Retry {
                    delay, failures, ..
                } = next
                {
                    self.stats.failed_passes += 1;
                    self.stats.backoffs.push((failures, delay));
                }
                self.wake_at = next.at();
                continue;
            }
            if self.wake_at > until {
                self.now = self.now.max(until);
                return;
            }
            self.now = self.wake_at;
        }
    }

    /// One send pass, as `net::peer::send_pass` with one worker.
    fn pass(&mut self) -> Result<(), String> {
        self.stats.passes += 1;
        let mut cursor = PendingCursor::default();
        let mut buf: VecDeque<Transfer> = VecDeque::new();
        let mut stream: Option<SimStream> = None;
        loop {
            if cursor.wants_page(!buf.is_empty()) {
                let page = self.host.pending(cursor.after(), self.cfg.page);
                cursor.on_page(page.iter().map(|(s, _)| *s));
                buf.extend(page.into_iter().map(|(_, t)| t));
            }
            let Some(first) = buf.pop_front() else {
                break;
            };
            let work = match plan_exchange(
                &first,
                &buf,
                self.schedule.batching(),
                &self.cfg.limits,
                self.cfg.max_batch_transfers,
            ) {
                Plan::One => Work::One(first),
                Plan::Batch { following } => Work::Batch(
                    std::iter::once(first)
                        .chain(buf.drain(..following))
                        .collect(),
                ),
            };
            let mut attempts = ExchangeAttempts::default();
            let after = loop {
                let mut source = StreamSource::Fresh;
                let s = match stream.as_mut() {
                    Some(s) => s,
                    None => match self.idle.take(self.now) {
                        Some(s) => {
                            source = StreamSource::Kept;
                            stream.insert(s)
                        }
                        None => {
                            if self.net.partitioned {
                                return Err("cannot reach the peer".into());
                            }
                            self.stats.streams_opened += 1;
                            stream.insert(SimStream {
                                epoch: self.peer.epoch,
                                last_used: self.now,
                                exchanges: 0,
                            })
                        }
                    },
                };
                attempts.on_stream(source);
                match self.exchange(s, &work) {
                    Ok(after) => break after,
                    Err((failure, e)) => {
                        let retry = attempts.on_failure(source, failure);
                        stream = None;
                        match retry {
                            Retry::Now => {}
                            Retry::After(pause) => self.now += pause,
                            Retry::GiveUp => return Err(e),
                        }
                        self.stats.retries.push(retry);
                    }
                }
            };
            if let After::Drop = after {
                stream = None;
            }
        }
        if let Some(s) = stream {
            let _ = self.idle.keep(s, self.now);
        }
        Ok(())
    }

    /// One request and its answers on `s`, as `send_one` and `send_batch`.
    fn exchange(&mut self, s: &mut SimStream, work: &Work) -> Result<After, (Failure, String)> {
        let stale = self.now.saturating_duration_since(s.last_used) >= self.cfg.idle_timeout;
        if s.epoch != self.peer.epoch || stale {
            self.now += self.net.delay;
            return Err((
                Failure::Stream { answered: false },
                "the peer closed the stream".into(),
            ));
        }
        if s.exchanges == 0 && self.net.rng.gen_bool(self.net.reset) {
            self.now += self.net.delay;
            return Err((Failure::Stream { answered: false }, "stream reset".into()));
        }
        self.stats.exchanges += 1;
        let request = match work {
            Work::One(t) => {
                self.stats.lone_transfers += 1;
                self.first_send(t);
                Frame::Transfer(t.clone())
            }
            Work::Batch(ts) => {
                self.stats.batches.push(ts.len());
                self.stats.batch_costs.push(ts.iter().map(wire_cost).sum());
                ts.iter().for_each(|t| self.first_send(t));
                Frame::Batch(Batch {
                    transfers: ts.clone(),
                    node_sig: vec![],
                })
            }
        };
        let bytes = encode(&request);
        assert!(bytes.len() <= self.cfg.limits.max_frame_bytes);
        let timeout = (Failure::Other, "the peer did not answer in time".to_owned());
        if self.net.partitioned || self.net.rng.gen_bool(self.net.loss) {
            self.now += self.cfg.request_timeout;
            return Err(timeout);
        }
        let answer = self.peer.answer(&bytes);
        if self.net.rng.gen_bool(self.net.loss) {
            self.now += self.cfg.request_timeout;
            return Err(timeout);
        }
        self.now += 2 * self.net.delay;
        s.last_used = self.now;
        s.exchanges += 1;
        let answer = decode(&answer, &self.cfg.limits).expect("the receiver answers valid frames");
        match (work, answer) {
            (Work::One(t), Frame::Receipt(r)) => {
                assert_eq!(r.message_id, t.message_id);
                self.host.delivered(&r.message_id);
                Ok(After::Keep)
            }
            (_, Frame::Error(e)) if transient(&e.code) => Err((Failure::Other, e.code)),
            (Work::One(t), Frame::Error(e)) => {
                self.host.rejected(&t.message_id, &e.code);
                Ok(After::Drop)
            }
            (Work::Batch(_), Frame::Error(e)) => {
                self.schedule.batch_refused(&e.code);
                Err((Failure::Other, e.code))
            }
            (Work::Batch(ts), Frame::BatchAnswer(a)) => {
                check_batch_answer(
                    ts.iter().map(|t| &t.message_id),
                    a.receipts
                        .iter()
                        .map(|r| &r.message_id)
                        .chain(a.errors.iter().map(|e| &e.message_id)),
                )
                .map_err(|e| (Failure::Other, e))?;
                for r in &a.receipts {
                    self.host.delivered(&r.message_id);
                }
                for e in a.errors.iter().filter(|e| !transient(&e.code)) {
                    self.host.rejected(&e.message_id, &e.code);
                }
                match a.errors.iter().find(|e| transient(&e.code)) {
                    Some(e) => Err((Failure::Other, e.code.clone())),
                    None => Ok(After::Keep),
                }
            }
            (_, other) => panic!("unexpected answer {other:?}"),
        }
    }

    fn first_send(&mut self, t: &Transfer) {
        if self.sent_ever.insert(t.message_id.clone()) {
            self.stats.first_sends.push(t.message_id.clone());
        }
    }

    fn assert_exactly_once(&self, ids: &[MessageId]) {
        let want: BTreeSet<_> = ids.iter().cloned().collect();
        let stored: BTreeSet<_> = self.peer.mailbox.keys().cloned().collect();
        assert_eq!(stored, want, "the mailbox differs from what was sent");
        for (id, n) in &self.peer.mailbox {
            assert_eq!(*n, 1, "{id} stored {n} times");
        }
        for id in ids {
            assert_eq!(
                self.host.delivered.get(id),
                Some(&1),
                "{id}: one receipt recorded"
            );
        }
    }

    /// Every backoff within `[b/2, b]`, `b = min(initial · 2ⁿ⁻¹, max)`.
    fn assert_backoffs_bounded(&self) {
        let (initial, cap) = (self.cfg.initial_backoff, self.cfg.max_backoff);
        for &(n, d) in &self.stats.backoffs {
            let base = initial.saturating_mul(1 << (n - 1).min(20)).min(cap);
            assert!(d >= base / 2 && d <= base, "failure {n}: {d:?}");
        }
    }
}

fn transfer(id: &MessageId, inline: Option<usize>) -> Transfer {
    let data = inline.map(|n| vec![0x5a; n]);
    let envelope = format!(r#"{{"v":1,"message_id":"{id}","from":"alice@alpha.test"}}"#);
    Transfer {
        message_id: id.clone(),
        signature: "sig".into(),
        sender_cert: String::new(),
        parts: vec![PartRef {
            sha256: hex::encode(Sha256::digest(data.as_deref().unwrap_or(b"streamed"))),
            size: data.as_ref().map_or(1 << 20, |d| d.len() as u64),
            data,
        }],
        envelope,
        node_sig: vec![],
    }
}

/// 30% of requests and of answers lost, 10% of new streams reset: everything is stored
/// exactly once and recorded once, lost answers are caught by de-duplication, batches keep
/// their limits and every backoff its bounds.
#[test]
fn every_message_arrives_exactly_once_under_30_percent_loss() {
    for seed in [1, 2, 3] {
        let mut sim = Sim::new(Config::default(), seed);
        sim.net.loss = 0.3;
        sim.net.reset = 0.1;
        let mut ids = Vec::new();
        // 500 messages in bursts of 25 every 100 ms.
        for burst in 0..20 {
            ids.extend(sim.enqueue(25, &format!("s{seed}-b{burst:02}"), Some(4096)));
            let until = sim.now + 100 * MS;
            sim.run(until, |_| false);
        }
        sim.run(sim.t0 + 24 * 3600 * S, |s| s.host.pending.is_empty());
        assert!(
            sim.host.pending.is_empty(),
            "seed {seed}: {} left",
            sim.host.pending.len()
        );
        sim.assert_exactly_once(&ids);
        assert!(sim.host.rejected.is_empty());
        assert!(sim.peer.duplicates > 0, "seed {seed}: lost answers resent");
        assert!(sim.stats.failed_passes > 0 && !sim.schedule.backing_off());
        assert!(
            sim.stats.retries.contains(&Retry::After(20 * MS)),
            "resets retried"
        );
        assert!(sim.stats.batches.iter().all(|&n| (1..=64).contains(&n)));
        sim.assert_backoffs_bounded();
    }
}

/// A partition loses nothing; the backoff grows within its bounds and stays capped; when the
/// peer connects again the sender runs at once and everything goes in one round trip.
#[test]
fn a_partition_backs_off_within_bounds_and_a_connection_delivers_at_once() {
    let mut sim = Sim::new(Config::default(), 9);
    sim.net.partitioned = true;
    let ids = sim.enqueue(50, "p", Some(1024));
    let heal = sim.t0 + 30 * 60 * S;
    sim.run(heal, |_| false);

    assert_eq!(sim.host.pending.len(), 50);
    assert!(sim.peer.mailbox.is_empty());
    let cap = sim.cfg.max_backoff;
    let waits: Vec<Duration> = sim.stats.backoffs.iter().map(|b| b.1).collect();
    // 30 minutes at ≤ 60 s a wait: at least 30 attempts, one failure more each.
    assert!(waits.len() >= 30, "{} attempts", waits.len());
    for (k, (n, _)) in sim.stats.backoffs.iter().enumerate() {
        assert_eq!(*n as usize, k + 1);
    }
    sim.assert_backoffs_bounded();
    assert!(waits[0] <= sim.cfg.initial_backoff);
    assert!(*waits.last().unwrap() >= cap / 2 && waits.iter().all(|w| *w <= cap));
    assert!(sim.schedule.backing_off());
    assert_eq!(sim.schedule.last_error(), Some("cannot reach the peer"));

    // Heal. The peer connects: the sender runs now, not at its retry time.
    sim.net.partitioned = false;
    let healed = sim.now;
    assert!(sim.wake_at > healed);
    sim.event(Event::Connected);
    sim.run(healed + 3600 * S, |s| s.host.pending.is_empty());
    assert_eq!(sim.now, healed + 2 * sim.net.delay, "one round trip");
    sim.assert_exactly_once(&ids);
    assert_eq!(sim.stats.batches.last(), Some(&50));
    assert!(!sim.schedule.backing_off() && sim.schedule.failures() == 0);
}

/// A transfer refused for good is recorded once, never retried, and does not stop the queue;
/// `busy` ends the pass and backs off; the peer speaking to us ends the backoff.
#[test]
fn refusals_for_good_do_not_stop_the_queue_and_transient_ones_back_off() {
    let mut sim = Sim::new(Config::default(), 4);
    let big = MessageId::from("big-0000");
    sim.peer.refuse.insert(big.clone(), "too_large".into());
    let refused = MessageId::from("m-0003");
    sim.peer.refuse.insert(refused.clone(), "refused".into());
    sim.peer.busy = 1;
    let mut ids = sim.enqueue(5, "m", Some(512));
    sim.enqueue_one(transfer(&big, None));
    ids.extend(sim.enqueue(5, "n", Some(512)));

    // The first exchange is answered `busy`: the pass fails and the peer backs off.
    sim.run(sim.now + MS, |s| s.stats.failed_passes > 0);
    assert!(sim.schedule.backing_off());
    assert_eq!(sim.schedule.last_error(), Some("busy"));
    assert!(sim.peer.mailbox.is_empty());
    // The peer opens a stream to us: the sender retries at once.
    let before = sim.now;
    sim.event(Event::HeardFrom);
    sim.run(before + 3600 * S, |s| s.host.pending.is_empty());
    assert!(sim.now < before + sim.cfg.initial_backoff / 2);

    ids.retain(|id| *id != refused);
    sim.assert_exactly_once(&ids);
    let mut rejected = sim.host.rejected.clone();
    rejected.sort();
    assert_eq!(
        rejected,
        [(big, "too_large".into()), (refused, "refused".into())]
    );
    // Batch, the streamed transfer alone, batch.
    assert_eq!(sim.stats.batches, [5, 5, 5]);
    assert_eq!(sim.stats.lone_transfers, 1);
    assert!(!sim.schedule.backing_off());
}

/// An older peer refuses batches: after one failed pass the transfers go one by one, until it
/// connects again (perhaps upgraded) and batches are offered again.
#[test]
fn a_peer_that_refuses_batches_gets_transfers_one_by_one_until_it_reconnects() {
    let mut sim = Sim::new(Config::default(), 5);
    sim.peer.no_batches = true;
    let mut ids = sim.enqueue(10, "old", Some(256));
    sim.run(sim.t0 + 3600 * S, |s| s.host.pending.is_empty());
    assert_eq!(sim.stats.failed_passes, 1);
    assert!(!sim.schedule.batching());
    assert_eq!(sim.stats.lone_transfers, 10);
    assert!(sim.stats.batches.len() == 1, "only the refused one");

    sim.peer.no_batches = false;
    sim.event(Event::Connected);
    assert!(sim.schedule.batching());
    ids.extend(sim.enqueue(10, "new", Some(256)));
    sim.run(sim.now + 3600 * S, |s| s.host.pending.is_empty());
    assert_eq!(sim.stats.batches[1..], [10]);
    sim.assert_exactly_once(&ids);
}

/// A stream kept from the last pass is reused while fresh and dropped once stale; one the peer
/// closed (it restarted) is no failed attempt; new streams that keep failing before any answer
/// fail the pass after `FRESH_STREAM_ATTEMPTS`, with growing pauses.
#[test]
fn kept_streams_are_reused_only_while_fresh_and_new_ones_retried_a_few_times() {
    let mut sim = Sim::new(Config::default(), 6);
    let fresh_for = sim.cfg.idle_timeout / 2;
    let mut ids = sim.enqueue(1, "a", Some(64));
    sim.run(sim.now + S, |s| s.host.pending.is_empty());
    assert_eq!((sim.stats.streams_opened, sim.idle.len()), (1, 1));

    // Within the freshness window: the kept stream carries the next message.
    sim.now += fresh_for - 2 * sim.net.delay - MS;
    ids.extend(sim.enqueue(1, "b", Some(64)));
    sim.run(sim.now + S, |s| s.host.pending.is_empty());
    assert_eq!(sim.stats.streams_opened, 1);

    // Past it: a new stream, although the peer would still take the old one.
    sim.now += fresh_for;
    ids.extend(sim.enqueue(1, "c", Some(64)));
    sim.run(sim.now + S, |s| s.host.pending.is_empty());
    assert_eq!(sim.stats.streams_opened, 2);

    // The peer restarted: the fresh-looking kept stream fails, and the transfer goes on a new
    // one in the same pass without a failed pass.
    sim.peer.epoch += 1;
    ids.extend(sim.enqueue(1, "d", Some(64)));
    sim.run(sim.now + S, |s| s.host.pending.is_empty());
    assert_eq!(sim.stats.streams_opened, 3);
    assert_eq!(sim.stats.retries, [Retry::Now]);
    assert_eq!(sim.stats.failed_passes, 0);
    sim.assert_exactly_once(&ids);

    // Every new stream is dropped before it is read: a few attempts, then the pass fails.
    sim.net.reset = 1.0;
    sim.idle = IdleStreams::new(sim.cfg.idle_timeout, 1);
    sim.enqueue(1, "e", Some(64));
    sim.run(sim.now + S, |s| s.stats.failed_passes > 0);
    let pauses: Vec<Retry> = (1..FRESH_STREAM_ATTEMPTS)
        .map(|n| Retry::After(20 * MS * n))
        .collect();
    assert_eq!(sim.stats.retries[1..], pauses[..]);
    assert_eq!(sim.stats.streams_opened, 3 + FRESH_STREAM_ATTEMPTS);
    assert_eq!(sim.schedule.last_error(), Some("stream reset"));
}

/// Transfers of mixed sizes: batches respect the transfer count and half the frame limit,
/// streamed transfers go alone, and transfers are first sent in the order they were queued.
#[test]
fn batches_keep_every_limit_and_the_queue_order() {
    let mut sim = Sim::new(
        Config {
            max_batch_transfers: 16,
            limits: Limits {
                max_frame_bytes: 1 << 20,
                ..Limits::default()
            },
            ..Config::default()
        },
        7,
    );
    let mut rng = StdRng::seed_from_u64(7);
    let mut ids = Vec::new();
    for i in 0..300 {
        let id = MessageId(format!("x-{i:04}"));
        let inline = (!rng.gen_bool(0.1)).then(|| rng.gen_range(1..=64 << 10));
        sim.enqueue_one(transfer(&id, inline));
        ids.push(id);
    }
    sim.event(Event::Queued);
    sim.run(sim.t0 + 3600 * S, |s| s.host.pending.is_empty());
    sim.assert_exactly_once(&ids);
    assert_eq!(sim.stats.first_sends, ids, "queue order");
    assert!(sim.stats.lone_transfers > 0);
    assert!(sim.stats.batches.iter().all(|&n| n <= 16));
    assert!(sim.stats.batches.iter().any(|&n| n > 1));
    let budget = sim.cfg.limits.max_frame_bytes / 2;
    assert!(sim.stats.batch_costs.iter().all(|&c| c <= budget));
    assert!(
        sim.stats.batch_costs.iter().any(|&c| c > budget / 2),
        "the frame budget, not the count, cut some batches"
    );
}
