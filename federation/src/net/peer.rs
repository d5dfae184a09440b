//! The two tasks each authorised peer gets: the sender and the control task.
//!
//! The sender pages through [`crate::Host::pending`] and sends with up to
//! `outbound_streams_per_peer` transfers in flight, each worker reusing its stream for one
//! exchange after another. Every decision is the delivery core's ([`crate::delivery`]): what
//! an exchange carries, whether a kept stream is fresh enough, whether a failed exchange is
//! tried again, how an answer is classified, how long the peer backs off after a failed pass
//! and what ends the backoff early. This module moves the bytes, holds the locks and sleeps.
//! Transfers the peer refuses for good are reported with [`crate::Host::rejected`] and do not
//! stop the pass.
//!
//! The control task reports the connection state to the host, pulls certificate updates (on
//! connection, on `Changed`, every `resync_interval`) and pushes `Changed` after
//! [`super::Handle::certs_changed`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::AsyncWriteExt as _;
use libp2p::Stream;
use tokio::time::Instant;

use super::wire::{self, CopyError};
use super::{Inner, NetError, PeerEntry, frame_name, unix_at};
use crate::delivery::{
    ExchangeAttempts, Failure, Next, PassResult, PendingCursor, Plan, Retry, StreamSource,
    check_batch_answer, plan_exchange, transient,
};
use crate::frame::{Batch, Changed, Frame, PullSince, encode};
use crate::host::{HostError, Outgoing, Peer, PeerState};

/// Most `PullSince` rounds in one pull (each brings up to `max_certs` certificates).
const MAX_PULL_ROUNDS: usize = 10_000;

pub(super) async fn sender(inner: Arc<Inner>, entry: Arc<PeerEntry>) {
    loop {
        let result = tokio::select! {
            () = entry.cancel.cancelled() => return,
            r = send_pass(&inner, &entry) => r,
        };
        let (result, error) = match result {
            Ok(()) => (PassResult::Done, String::new()),
            Err(NetError::Shutdown) => return,
            Err(e) => {
                let error = e.to_string();
                (PassResult::Failed(error.clone()), error)
            }
        };
        let peer = entry.peer();
        let now = Instant::now();
        let next = entry.schedule().pass_ended(result, now.into_std());
        match next {
            Next::Idle { resumed: true, .. } => {
                tracing::info!(peer = %entry.peer_id, domain = %peer.domain, "sending resumed");
                // The host still shows "backing off": the control task reports the link.
                entry.report_wanted.store(true, Ordering::Relaxed);
                entry.control.notify_one();
            }
            Next::Idle { resumed: false, .. } => {}
            Next::Retry {
                at,
                delay,
                failures,
            } => {
                let retry_at = unix_at(at, now.into_std());
                tracing::info!(peer = %entry.peer_id, domain = %peer.domain, %error, retry_in = ?delay, failures, "sending failed; backing off");
                inner
                    .host
                    .peer_state(&peer, PeerState::BackingOff { retry_at, error })
                    .await;
            }
        }
        tokio::select! {
            () = entry.cancel.cancelled() => return,
            () = entry.wake.notified() => {}
            () = tokio::time::sleep_until(Instant::from_std(next.at())) => {}
        }
    }
}

/// The host's pending transfers for one pass, fetched a page at a time.
struct Pager {
    cursor: PendingCursor,
    buf: VecDeque<Outgoing>,
}

impl Pager {
    /// Something was queued since the pager ran dry: look again (past what it already gave).
    fn reopen(&mut self) {
        self.cursor.reopen();
    }

    async fn next(&mut self, inner: &Inner, peer: &Peer) -> Result<Option<Outgoing>, NetError> {
        if self.cursor.wants_page(!self.buf.is_empty()) {
            let page = inner
                .host
                .pending(peer, self.cursor.after(), inner.config.batch)
                .await?;
            self.cursor.on_page(page.iter().map(|o| o.seq));
            self.buf.extend(page.into_iter().take(inner.config.batch));
        }
        Ok(self.buf.pop_front())
    }

    /// The next exchange's work, as [`plan_exchange`] decides over the transfers already
    /// fetched (a batch never waits for more).
    async fn next_work(
        &mut self,
        inner: &Inner,
        peer: &Peer,
        batching: bool,
    ) -> Result<Option<Work>, NetError> {
        let Some(first) = self.next(inner, peer).await? else {
            return Ok(None);
        };
        let following = match plan_exchange(
            &first.transfer,
            self.buf.iter().map(|o| &o.transfer),
            batching,
            &inner.config.limits,
            inner.config.max_batch_transfers,
        ) {
            Plan::One => return Ok(Some(Work::One(first))),
            Plan::Batch { following } => following,
        };
        // Signed once, however many attempts it takes, and never copied.
        let mut batch = Batch {
            transfers: std::iter::once(first)
                .chain(self.buf.drain(..following))
                .map(|o| o.transfer)
                .collect(),
            node_sig: Vec::new(),
        };
        wire::sign_batch(&inner.keypair, &mut batch);
        Ok(Some(Work::Batch(Frame::Batch(batch))))
    }
}

/// What one exchange carries.
enum Work {
    /// One transfer, its parts streamed when the peer wants them.
    One(Outgoing),
    /// A signed [`Frame::Batch`]: transfers with inline parts, under one signature each way.
    Batch(Frame),
}

/// One pass over everything pending: `Ok` when all was sent (or refused for good).
async fn send_pass(inner: &Inner, entry: &PeerEntry) -> Result<(), NetError> {
    let peer = entry.peer();
    let pass = Pass {
        pager: tokio::sync::Mutex::new(Pager {
            cursor: PendingCursor::default(),
            buf: VecDeque::new(),
        }),
        opening: tokio::sync::Mutex::new(()),
        busy: AtomicUsize::new(0),
        changed: tokio::sync::Notify::new(),
    };
    let workers =
        (0..inner.config.outbound_streams_per_peer).map(|_| worker(inner, entry, &peer, &pass));
    futures::future::try_join_all(workers).await?;
    Ok(())
}

/// What the workers of one pass share.
struct Pass {
    pager: tokio::sync::Mutex<Pager>,
    /// Held from opening a stream until its first answer: streams open one after another.
    /// libp2p-stream hands inbound streams to the receiver through a channel with a single
    /// slot and drops streams that arrive while it is taken, so a burst of new streams from
    /// one sender would mostly be dropped.
    opening: tokio::sync::Mutex<()>,
    /// Workers in an exchange. The pass lasts while one is: a worker with nothing to do
    /// waits for a wake instead of leaving, so that what is queued meanwhile goes at once
    /// rather than after that exchange (and its delivery record) ends.
    busy: AtomicUsize,
    /// An exchange ended, or the pager holds work for idle workers.
    changed: tokio::sync::Notify,
}

/// A worker's share of [`Pass::busy`], for the length of one exchange.
struct Busy<'a>(&'a Pass);

impl<'a> Busy<'a> {
    fn new(pass: &'a Pass) -> Self {
        pass.busy.fetch_add(1, Ordering::AcqRel);
        Busy(pass)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

/// How one exchange went so far, for the decision to retry it on a new stream.
#[derive(Default)]
struct Progress<'a> {
    /// The peer answered at least once: it saw the transfer.
    answered: bool,
    ramp: Option<tokio::sync::MutexGuard<'a, ()>>,
}

impl Progress<'_> {
    fn on_answer(&mut self) {
        self.answered = true;
        self.ramp = None;
    }
}

struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        InFlight(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether a stream is still in step after an exchange.
enum After {
    Keep,
    Drop,
}

async fn worker(
    inner: &Inner,
    entry: &PeerEntry,
    peer: &Peer,
    pass: &Pass,
) -> Result<(), NetError> {
    let mut stream: Option<Stream> = None;
    loop {
        let batching = entry.schedule().batching();
        // Registered before the pager is asked, so that no change after it is missed.
        let changed = pass.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let (work, more) = {
            let mut pager = pass.pager.lock().await;
            let work = pager.next_work(inner, peer, batching).await?;
            let busy = work.is_some().then(|| Busy::new(pass));
            (work.zip(busy), !pager.buf.is_empty())
        };
        let Some((work, _busy)) = work else {
            if pass.busy.load(Ordering::Acquire) == 0 {
                break;
            }
            tokio::select! {
                () = entry.wake.notified() => pass.pager.lock().await.reopen(),
                () = changed => {}
            }
            continue;
        };
        if more {
            pass.changed.notify_waiters();
        }
        let _guard = InFlight::new(&entry.in_flight);
        let mut attempts = ExchangeAttempts::default();
        let after = loop {
            let mut progress = Progress::default();
            // A stream kept from an earlier pass may have been closed by the peer meanwhile
            // (it restarted, or the stream idled out): see `ExchangeAttempts`.
            let mut source = StreamSource::Fresh;
            let s = match stream.as_mut() {
                Some(s) => s,
                None => {
                    let idle = entry.idle_streams().take(std::time::Instant::now());
                    match idle {
                        Some(s) => {
                            source = StreamSource::Kept;
                            stream.insert(s)
                        }
                        None => {
                            progress.ramp = Some(pass.opening.lock().await);
                            let s = inner.open_stream(entry.peer_id).await?;
                            entry.streams_opened.fetch_add(1, Ordering::Relaxed);
                            stream.insert(s)
                        }
                    }
                }
            };
            attempts.on_stream(source);
            let sent = match &work {
                Work::One(item) => {
                    send_one(inner, entry, peer, s, item.clone(), &mut progress).await
                }
                Work::Batch(frame) => send_batch(inner, entry, peer, s, frame, &mut progress).await,
            };
            let e = match sent {
                Ok(after) => break after,
                Err(e) => e,
            };
            let failure = match e {
                NetError::Io(_) => Failure::Stream {
                    answered: progress.answered,
                },
                _ => Failure::Other,
            };
            match attempts.on_failure(source, failure) {
                Retry::Now => {
                    tracing::debug!(peer = %entry.peer_id, error = %e, "kept stream failed before an answer; trying another");
                    stream = None;
                }
                Retry::After(pause) => {
                    tracing::debug!(peer = %entry.peer_id, error = %e, "stream failed before an answer; retrying on a new one");
                    stream = None;
                    tokio::time::sleep(pause).await;
                }
                Retry::GiveUp => return Err(e),
            }
        };
        if let After::Drop = after
            && let Some(mut s) = stream.take()
        {
            let _ = tokio::time::timeout(Duration::from_secs(1), s.close()).await;
        }
    }
    // In step after its last exchange: kept for the next pass.
    if let Some(s) = stream {
        let refused = entry.idle_streams().keep(s, std::time::Instant::now());
        if let Err(mut s) = refused {
            let _ = tokio::time::timeout(Duration::from_secs(1), s.close()).await;
        }
    }
    Ok(())
}

/// Sends a signed batch on the stream and sees each transfer through to its receipt or error.
async fn send_batch(
    inner: &Inner,
    entry: &PeerEntry,
    peer: &Peer,
    stream: &mut Stream,
    frame: &Frame,
    progress: &mut Progress<'_>,
) -> Result<After, NetError> {
    let t_req = inner.config.request_timeout;
    let Frame::Batch(batch) = frame else {
        return Err(NetError::Protocol("not a batch".into()));
    };
    wire::write_frame(stream, frame, t_req).await?;
    entry.batches_sent.fetch_add(1, Ordering::Relaxed);
    let answer = match wire::read_frame(stream, &inner.config.limits, t_req, t_req).await? {
        Frame::BatchAnswer(a) => a,
        Frame::Error(e) => {
            progress.on_answer();
            if !transient(&e.code) {
                // A node that does not take batches (an older version) answers `malformed`
                // or `unexpected`: send one by one from the next pass on.
                tracing::warn!(peer = %entry.peer_id, code = %e.code, reason = %e.message, "peer refused a batch; sending transfers one by one");
                entry.schedule().batch_refused(&e.code);
            }
            return Err(NetError::Remote {
                code: e.code,
                message: e.message,
            });
        }
        other => {
            return Err(NetError::Protocol(format!(
                "unexpected {} frame answering a batch",
                frame_name(&other)
            )));
        }
    };
    progress.on_answer();
    if !wire::verify_batch_answer(&entry.key, &answer) {
        tracing::warn!(peer = %entry.peer_id, "batch answer with a bad node signature");
        return Err(NetError::BadSignature);
    }
    let answered = answer.receipts.iter().map(|r| &r.message_id);
    check_batch_answer(
        batch.transfers.iter().map(|t| &t.message_id),
        answered.chain(answer.errors.iter().map(|e| &e.message_id)),
    )
    .map_err(NetError::Protocol)?;
    tracing::debug!(peer = %entry.peer_id, transfers = batch.transfers.len(), receipts = answer.receipts.len(), errors = answer.errors.len(), "batch answered");
    // Recorded together, so that the host's writes share commits.
    let proofs = answer.proofs();
    let sig = &answer.node_sig;
    let delivered = answer
        .receipts
        .into_iter()
        .zip(proofs)
        .map(|(mut r, proof)| {
            r.node_sig = sig.clone();
            inner.host.delivered(peer, r, Some(proof))
        });
    let results = futures::future::join_all(delivered).await;
    let (retry, refused): (Vec<_>, Vec<_>) = answer.errors.iter().partition(|e| transient(&e.code));
    let rejected = refused.iter().map(|e| {
        tracing::warn!(peer = %entry.peer_id, message_id = %e.message_id, code = %e.code, reason = %e.message, "peer refused the transfer");
        inner.host.rejected(peer, &e.message_id, &e.code, &e.message)
    });
    futures::future::join_all(rejected).await;
    results
        .into_iter()
        .collect::<Result<Vec<()>, HostError>>()?;
    if let Some(e) = retry.first() {
        return Err(NetError::Remote {
            code: e.code.clone(),
            message: e.message.clone(),
        });
    }
    Ok(After::Keep)
}

/// Sends one transfer on the stream and sees it through to its receipt.
async fn send_one(
    inner: &Inner,
    entry: &PeerEntry,
    peer: &Peer,
    stream: &mut Stream,
    item: Outgoing,
    progress: &mut Progress<'_>,
) -> Result<After, NetError> {
    let cfg = &inner.config;
    let t_req = cfg.request_timeout;
    let mut t = item.transfer;
    wire::sign_transfer(&inner.keypair, &mut t);
    let id = t.message_id.clone();
    let frame = Frame::Transfer(t);
    let too_big = encode(&frame).len() > cfg.limits.max_frame_bytes;
    if let Err(e) = frame.validate(&cfg.limits) {
        tracing::warn!(peer = %entry.peer_id, message_id = %id, error = %e, "queued transfer exceeds the frame limits; not sent");
        inner
            .host
            .rejected(peer, &id, "invalid", &e.to_string())
            .await;
        return Ok(After::Keep);
    }
    if too_big {
        tracing::warn!(peer = %entry.peer_id, message_id = %id, "queued transfer exceeds max_frame_bytes; not sent");
        inner
            .host
            .rejected(
                peer,
                &id,
                "too_large",
                "the transfer frame exceeds the frame limit",
            )
            .await;
        return Ok(After::Keep);
    }
    wire::write_frame(stream, &frame, t_req).await?;
    let Frame::Transfer(t) = frame else {
        unreachable!("built above")
    };
    let mut parts_sent = false;
    loop {
        let answer = wire::read_frame(stream, &cfg.limits, t_req, t_req).await?;
        progress.on_answer();
        match answer {
            Frame::Receipt(r) => {
                if r.message_id != id {
                    return Err(NetError::Protocol(format!(
                        "receipt for {} answers transfer {id}",
                        r.message_id
                    )));
                }
                if !wire::verify_receipt(&entry.key, &r) {
                    tracing::warn!(peer = %entry.peer_id, message_id = %id, "receipt with a bad node signature");
                    return Err(NetError::BadSignature);
                }
                tracing::debug!(peer = %entry.peer_id, message_id = %id, accepted = r.accepted.len(), refused = r.refused.len(), "delivered");
                inner.host.delivered(peer, r, None).await?;
                return Ok(After::Keep);
            }
            Frame::Want(w) if !parts_sent => {
                if w.message_id != id || w.parts.iter().any(|&i| i as usize >= t.parts.len()) {
                    return Err(NetError::Protocol(
                        "want names parts we did not offer".into(),
                    ));
                }
                for &i in &w.parts {
                    let part = &t.parts[i as usize];
                    let mut reader = match inner.host.open_part(&id, i, part).await {
                        Ok(r) => r,
                        Err(HostError::Refused(m)) => {
                            tracing::warn!(message_id = %id, sha256 = %part.sha256, "cannot open our part; transfer skipped");
                            inner.host.rejected(peer, &id, "part_missing", &m).await;
                            return Ok(After::Drop);
                        }
                        Err(e) => return Err(e.into()),
                    };
                    match wire::copy_part(&mut reader, stream, part.size, cfg.idle_timeout).await {
                        Ok(()) => {}
                        Err(CopyError::Remote(e)) => return Err(NetError::Io(e)),
                        Err(CopyError::Local(e)) => {
                            tracing::error!(message_id = %id, sha256 = %part.sha256, error = %e, "reading our part failed");
                            return Err(NetError::Host(HostError::Unavailable(format!(
                                "reading part {}: {e}",
                                part.sha256
                            ))));
                        }
                    }
                }
                parts_sent = true;
            }
            Frame::Error(e) if transient(&e.code) => {
                return Err(NetError::Remote {
                    code: e.code,
                    message: e.message,
                });
            }
            Frame::Error(e) => {
                tracing::warn!(peer = %entry.peer_id, message_id = %id, code = %e.code, reason = %e.message, "peer refused the transfer");
                inner.host.rejected(peer, &id, &e.code, &e.message).await;
                return Ok(After::Drop);
            }
            other => {
                return Err(NetError::Protocol(format!(
                    "unexpected {} frame answering a transfer",
                    frame_name(&other)
                )));
            }
        }
    }
}

pub(super) async fn control(inner: Arc<Inner>, entry: Arc<PeerEntry>) {
    let cfg = &inner.config;
    let mut reported: Option<bool> = None;
    let mut next_resync = Instant::now() + cfg.resync_interval;
    loop {
        let peer = entry.peer();
        let forced = entry.report_wanted.swap(false, Ordering::Relaxed);
        if entry.conn_dirty.swap(false, Ordering::Relaxed) || forced {
            let up = inner.is_connected(&entry.peer_id);
            if forced || reported != Some(up) {
                reported = Some(up);
                tracing::info!(peer = %entry.peer_id, domain = %peer.domain, connected = up, "peer connection");
                let state = if up {
                    PeerState::Connected
                } else {
                    PeerState::Disconnected { error: None }
                };
                inner.host.peer_state(&peer, state).await;
                if up {
                    entry.pull_wanted.store(true, Ordering::Relaxed);
                }
            }
        }
        let push = entry.push_cursor.swap(0, Ordering::Relaxed);
        if push > 0 && inner.is_connected(&entry.peer_id) {
            let r = tokio::select! {
                () = entry.cancel.cancelled() => return,
                r = announce(&inner, &entry, push) => r,
            };
            if let Err(e) = r {
                tracing::debug!(peer = %entry.peer_id, error = %e, "announcing changes failed");
            }
        }
        let mut pull = entry.pull_wanted.swap(false, Ordering::Relaxed);
        let remote = entry.remote_cursor.load(Ordering::Relaxed);
        if !pull && remote > 0 {
            pull = matches!(inner.host.pull_cursor(&peer).await, Ok(c) if remote > c);
        }
        if pull {
            let r = tokio::select! {
                () = entry.cancel.cancelled() => return,
                r = pull_from(&inner, &entry, &peer) => r,
            };
            if let Err(e) = r {
                tracing::debug!(peer = %entry.peer_id, error = %e, "pulling certificate updates failed");
            }
        }
        tokio::select! {
            () = entry.cancel.cancelled() => return,
            () = entry.control.notified() => {}
            () = tokio::time::sleep_until(next_resync) => {
                next_resync = Instant::now() + cfg.resync_interval;
                entry.pull_wanted.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// Tells the peer our certificates changed up to `cursor`; the peer echoes the frame back as
/// its acknowledgement.
async fn announce(inner: &Inner, entry: &PeerEntry, cursor: u64) -> Result<(), NetError> {
    let t = inner.config.request_timeout;
    let (mut s, answer) = inner
        .ask(entry.peer_id, &Frame::Changed(Changed { cursor }))
        .await?;
    let _ = tokio::time::timeout(t, s.close()).await;
    match answer {
        Frame::Changed(_) => Ok(()),
        Frame::Error(e) => Err(NetError::Remote {
            code: e.code,
            message: e.message,
        }),
        other => Err(NetError::Protocol(format!(
            "unexpected {} frame answering changed",
            frame_name(&other)
        ))),
    }
}

/// Pulls certificate updates until the peer has no more.
async fn pull_from(inner: &Inner, entry: &PeerEntry, peer: &Peer) -> Result<(), NetError> {
    let t = inner.config.request_timeout;
    let mut stream: Option<Stream> = None;
    for _ in 0..MAX_PULL_ROUNDS {
        let cursor = inner.host.pull_cursor(peer).await?;
        let request = Frame::PullSince(PullSince { cursor });
        let answer = match stream.as_mut() {
            None => {
                let (s, answer) = inner.ask(entry.peer_id, &request).await?;
                stream = Some(s);
                answer
            }
            Some(s) => {
                wire::write_frame(s, &request, t).await?;
                wire::read_frame(s, &inner.config.limits, t, t).await?
            }
        };
        match answer {
            Frame::CertUpdates(u) => {
                let more = !u.certs.is_empty() && u.cursor > cursor;
                tracing::debug!(peer = %entry.peer_id, from = cursor, to = u.cursor, certs = u.certs.len(), "pulled certificate updates");
                inner.host.apply_updates(peer, u).await?;
                if !more {
                    break;
                }
            }
            Frame::Error(e) => {
                return Err(NetError::Remote {
                    code: e.code,
                    message: e.message,
                });
            }
            other => {
                return Err(NetError::Protocol(format!(
                    "unexpected {} frame answering pull_since",
                    frame_name(&other)
                )));
            }
        }
    }
    if let Some(mut s) = stream {
        let _ = tokio::time::timeout(t, s.close()).await;
    }
    Ok(())
}
