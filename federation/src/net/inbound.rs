//! Serving inbound streams: authorisation, node-signature checks, and the host calls.
//!
//! Must not: call the host for a peer that is not in the peer table, read a frame longer than
//! `max_frame_bytes`, or serve more than `inbound_streams_per_peer` streams of one peer at once.

use std::sync::{Arc, Mutex};

use futures::{AsyncWriteExt as _, StreamExt as _};
use libp2p::{PeerId, Stream};
use tokio::sync::OwnedSemaphorePermit;

use super::wire::{self, PartIn, ReadError};
use super::{Inner, PeerEntry, frame_name};
use crate::frame::{Batch, BatchAnswer, BatchError, ErrorFrame, Frame, OrgRecord, Transfer, Want};
use crate::host::{Admission, HostError, PartReader, Peer};

/// Takes inbound streams as fast as they come (libp2p-stream drops streams when this loop
/// falls behind) and hands each to a bounded task.
pub(super) async fn accept_loop(inner: Arc<Inner>, mut incoming: libp2p_stream::IncomingStreams) {
    loop {
        let next = tokio::select! {
            () = inner.cancel.cancelled() => return,
            n = incoming.next() => n,
        };
        let Some((peer_id, stream)) = next else {
            return;
        };
        match inner.entry(&peer_id) {
            None => match inner.refusals.clone().try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(refuse(inner.clone(), peer_id, stream, permit));
                }
                Err(_) => {
                    tracing::debug!(peer = %peer_id, "unknown peer stream dropped (refusals busy)")
                }
            },
            Some(entry) => {
                entry.poke();
                match entry.inbound.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let inner = inner.clone();
                        tokio::spawn(async move {
                            let cancel = entry.cancel.clone();
                            tokio::select! {
                                () = cancel.cancelled() => {}
                                () = serve(inner, entry, stream, permit) => {}
                            }
                        });
                    }
                    Err(_) => {
                        tracing::debug!(peer = %peer_id, "inbound stream dropped: too many streams from this peer");
                    }
                }
            }
        }
    }
}

/// A stream from a peer ID that no admin authorised: let it finish its first frame, answer
/// `not_authorised`, and drop the connection a little later. The host is never called.
async fn refuse(
    inner: Arc<Inner>,
    peer_id: PeerId,
    mut stream: Stream,
    _permit: OwnedSemaphorePermit,
) {
    tracing::warn!(peer = %peer_id, "refused a stream from a peer that is not authorised");
    let t = inner.config.request_timeout;
    let work = async {
        let _ = wire::discard_frame(&mut stream, inner.config.limits.max_frame_bytes, t).await;
        let _ = wire::write_frame(
            &mut stream,
            &error("not_authorised", "this node has no peering with you"),
            t,
        )
        .await;
        let _ = stream.close().await;
    };
    tokio::select! {
        () = inner.cancel.cancelled() => return,
        () = work => {}
    }
    inner.disconnect_later(peer_id, std::time::Duration::from_secs(2));
}

pub(super) fn error(code: &str, message: &str) -> Frame {
    Frame::Error(ErrorFrame {
        code: code.to_owned(),
        message: message.to_owned(),
    })
}

fn host_error(e: &HostError) -> Frame {
    let (code, message) = host_error_parts(e);
    error(code, message)
}

fn host_error_parts(e: &HostError) -> (&'static str, &str) {
    match e {
        HostError::Refused(m) => ("refused", truncate(m, 1000)),
        // Our own fault: details stay in our log, the peer retries later.
        HostError::Unavailable(_) => ("unavailable", "temporarily unavailable, retry later"),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// What to do with the stream after an exchange.
enum Next {
    Continue,
    Close,
}

/// Serves one stream: a sequence of exchanges until the peer closes it or goes quiet.
async fn serve(
    inner: Arc<Inner>,
    entry: Arc<PeerEntry>,
    stream: Stream,
    _permit: OwnedSemaphorePermit,
) {
    let cfg = &inner.config;
    // The stream lives in a slot so that a part reader handed to the host can own it for a
    // while (a `PartReader` is `'static`).
    let slot: wire::StreamSlot = Arc::new(Mutex::new(Some(stream)));
    loop {
        let Some(mut stream) = take(&slot) else {
            return;
        };
        let frame = match wire::read_frame(
            &mut stream,
            &cfg.limits,
            cfg.idle_timeout,
            cfg.request_timeout,
        )
        .await
        {
            Ok(f) => f,
            Err(ReadError::Closed) | Err(ReadError::Timeout) => {
                let _ = stream.close().await;
                return;
            }
            Err(ReadError::TooLarge { len, max }) => {
                tracing::debug!(peer = %entry.peer_id, len, max, "frame over the limit refused");
                let _ = wire::write_frame(
                    &mut stream,
                    &error("too_large", &format!("frame of {len} bytes exceeds {max}")),
                    cfg.request_timeout,
                )
                .await;
                let _ = stream.close().await;
                return;
            }
            Err(ReadError::Frame(e)) => {
                tracing::debug!(peer = %entry.peer_id, error = %e, "malformed frame");
                let _ = wire::write_frame(
                    &mut stream,
                    &error("malformed", truncate(&e.to_string(), 1000)),
                    cfg.request_timeout,
                )
                .await;
                let _ = stream.close().await;
                return;
            }
            Err(ReadError::Io(e)) => {
                tracing::debug!(peer = %entry.peer_id, error = %e, "inbound stream failed");
                return;
            }
        };
        entry.poke();
        let peer = entry.peer();
        put(&slot, stream);
        let next = match frame {
            Frame::Transfer(t) => on_transfer(&inner, &entry, &peer, &slot, t).await,
            Frame::Batch(b) => on_batch(&inner, &entry, &peer, &slot, b).await,
            Frame::Lookup(l) => {
                let answer = match inner.host.lookup(&peer, &l.address).await {
                    Ok(a) => checked(Frame::LookupAnswer(a), &inner),
                    Err(e) => host_error(&e),
                };
                answer_with(&inner, &slot, answer).await
            }
            Frame::EvidenceLookup(l) => {
                let answer = match inner.host.evidence(&peer, l.message_id.as_str()).await {
                    Ok(bundle) => checked(
                        Frame::EvidenceRecords(crate::frame::EvidenceRecords { bundle }),
                        &inner,
                    ),
                    Err(e) => host_error(&e),
                };
                answer_with(&inner, &slot, answer).await
            }
            Frame::OrgLookup(_) => {
                let answer = match inner.host.org_record(&peer).await {
                    Ok(record) => checked(Frame::OrgRecord(OrgRecord { record }), &inner),
                    Err(e) => host_error(&e),
                };
                answer_with(&inner, &slot, answer).await
            }
            Frame::PullSince(p) => {
                let answer = match inner
                    .host
                    .updates_since(&peer, p.cursor, cfg.limits.max_certs)
                    .await
                {
                    Ok(u) => checked(Frame::CertUpdates(u), &inner),
                    Err(e) => host_error(&e),
                };
                answer_with(&inner, &slot, answer).await
            }
            Frame::Changed(c) => {
                tracing::debug!(peer = %entry.peer_id, cursor = c.cursor, "peer announced certificate changes");
                entry.remote_changed(c.cursor);
                // Echoed as the acknowledgement, so the announcer knows it was heard.
                answer_with(&inner, &slot, Frame::Changed(c)).await
            }
            other => {
                let msg = format!("a {} frame is not a request", frame_name(&other));
                answer_with(&inner, &slot, error("unexpected", &msg)).await;
                Next::Close
            }
        };
        if let Next::Close = next {
            if let Some(mut s) = take(&slot) {
                let _ = s.close().await;
            }
            return;
        }
    }
}

fn take(slot: &wire::StreamSlot) -> Option<Stream> {
    slot.lock().unwrap_or_else(|e| e.into_inner()).take()
}

fn put(slot: &wire::StreamSlot, s: Stream) {
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
}

/// An answer the host built, checked against our own limits (the peer would refuse it).
fn checked(frame: Frame, inner: &Inner) -> Frame {
    match frame.validate(&inner.config.limits) {
        Ok(()) => frame,
        Err(e) => {
            tracing::warn!(error = %e, "host answer exceeds the frame limits; answered unavailable");
            error("unavailable", "answer too large, retry later")
        }
    }
}

async fn answer_with(inner: &Inner, slot: &wire::StreamSlot, frame: Frame) -> Next {
    let Some(mut s) = take(slot) else {
        return Next::Close;
    };
    match wire::write_frame(&mut s, &frame, inner.config.request_timeout).await {
        Ok(()) => {
            put(slot, s);
            Next::Continue
        }
        Err(_) => Next::Close,
    }
}

/// The error for a transfer with a part over our size limit, if it has one.
fn oversize(inner: &Inner, entry: &PeerEntry, t: &Transfer) -> Option<(&'static str, String)> {
    let max = inner.config.max_part_bytes;
    let p = t.parts.iter().find(|p| p.size > max)?;
    tracing::info!(peer = %entry.peer_id, message_id = %t.message_id, size = p.size, "transfer with an oversize part refused");
    let msg = format!(
        "a part of {} bytes exceeds the limit of {max} bytes",
        p.size
    );
    Some(("too_large", msg))
}

/// An inbound batch: one signature check, every transfer handed to the host at once (so that
/// the host's writes share commits), one signed answer.
async fn on_batch(
    inner: &Arc<Inner>,
    entry: &PeerEntry,
    peer: &Peer,
    slot: &wire::StreamSlot,
    b: Batch,
) -> Next {
    if !wire::verify_batch(&entry.key, &b) {
        tracing::warn!(peer = %entry.peer_id, transfers = b.transfers.len(), "batch with a bad node signature refused");
        return answer_with(
            inner,
            slot,
            error("bad_signature", "the node signature does not verify"),
        )
        .await;
    }
    let proofs = b.proofs();
    let sig = b.node_sig;
    let answers = b.transfers.into_iter().zip(proofs).map(|(mut t, proof)| {
        let sig = sig.clone();
        async move {
            if let Some((code, message)) = oversize(inner, entry, &t) {
                return Err((t.message_id, code, message));
            }
            t.node_sig = sig;
            match inner.host.receive_batched(peer, &t, &proof).await {
                Ok(r) if r.message_id == t.message_id => Ok(r),
                Ok(_) => {
                    tracing::error!(message_id = %t.message_id, "host receipt names another message");
                    Err((t.message_id, "unavailable", "internal error, retry later".into()))
                }
                Err(e) => {
                    tracing::debug!(peer = %entry.peer_id, message_id = %t.message_id, error = %e, "batched transfer not received");
                    let (code, message) = host_error_parts(&e);
                    Err((t.message_id, code, message.to_owned()))
                }
            }
        }
    });
    let mut answer = BatchAnswer {
        receipts: Vec::new(),
        errors: Vec::new(),
        node_sig: Vec::new(),
    };
    for a in futures::future::join_all(answers).await {
        match a {
            Ok(r) => answer.receipts.push(r),
            Err((message_id, code, message)) => answer.errors.push(BatchError {
                message_id,
                code: code.to_owned(),
                message,
            }),
        }
    }
    wire::sign_batch_answer(&inner.keypair, &mut answer);
    let frame = checked(Frame::BatchAnswer(answer), inner);
    answer_with(inner, slot, frame).await
}

/// One inbound transfer: checks, admission, wanted parts, commit, signed receipt.
async fn on_transfer(
    inner: &Arc<Inner>,
    entry: &PeerEntry,
    peer: &Peer,
    slot: &wire::StreamSlot,
    t: Transfer,
) -> Next {
    let cfg = &inner.config;
    if !wire::verify_transfer(&entry.key, &t) {
        tracing::warn!(peer = %entry.peer_id, message_id = %t.message_id, "transfer with a bad node signature refused");
        return answer_with(
            inner,
            slot,
            error("bad_signature", "the node signature does not verify"),
        )
        .await;
    }
    if let Some((code, msg)) = oversize(inner, entry, &t) {
        return answer_with(inner, slot, error(code, &msg)).await;
    }
    let receipt = match inner.host.admit(peer, &t).await {
        Err(e) => {
            tracing::debug!(peer = %entry.peer_id, message_id = %t.message_id, error = %e, "transfer not admitted");
            return answer_with(inner, slot, host_error(&e)).await;
        }
        Ok(Admission::Answer(r)) => r,
        Ok(Admission::Want(wanted)) => {
            let valid = wanted.windows(2).all(|w| w[0] < w[1])
                && wanted.iter().all(|&i| (i as usize) < t.parts.len());
            if !valid {
                tracing::error!(message_id = %t.message_id, "host wanted invalid part indices");
                return answer_with(
                    inner,
                    slot,
                    error("unavailable", "internal error, retry later"),
                )
                .await;
            }
            // Wanted parts the sender sent inline are stored now; only the others are asked
            // for, and with none left the receipt follows without a `Want` round trip.
            let (inline, streamed): (Vec<u32>, Vec<u32>) = wanted
                .iter()
                .partition(|&&i| t.parts[i as usize].data.is_some());
            for &i in &inline {
                let part = &t.parts[i as usize];
                let data = part.data.clone().unwrap_or_default();
                let mut boxed: PartReader = Box::pin(std::io::Cursor::new(data));
                if let Err(e) = inner.host.store_part(peer, part, &mut boxed).await {
                    tracing::debug!(peer = %entry.peer_id, message_id = %t.message_id, error = %e, "inline part not stored");
                    return answer_with(inner, slot, host_error(&e)).await;
                }
            }
            if !streamed.is_empty() {
                let want = Frame::Want(Want {
                    message_id: t.message_id.clone(),
                    parts: streamed.clone(),
                });
                if let Next::Close = answer_with(inner, slot, want).await {
                    return Next::Close;
                }
            }
            for &i in &streamed {
                let part = &t.parts[i as usize];
                let reader = PartIn::new(slot.clone(), part.size, cfg.idle_timeout);
                let left = reader.left();
                let mut boxed: PartReader = Box::pin(reader);
                let stored = inner.host.store_part(peer, part, &mut boxed).await;
                drop(boxed);
                if stored.is_ok() && left.load(std::sync::atomic::Ordering::Relaxed) != 0 {
                    tracing::error!(message_id = %t.message_id, "host stored a part without reading all of it");
                    answer_with(
                        inner,
                        slot,
                        error("unavailable", "internal error, retry later"),
                    )
                    .await;
                    return Next::Close;
                }
                if let Err(e) = stored {
                    // The rest of the part may still be on its way: the stream is out of step.
                    tracing::debug!(peer = %entry.peer_id, message_id = %t.message_id, error = %e, "part not stored");
                    answer_with(inner, slot, host_error(&e)).await;
                    return Next::Close;
                }
            }
            match inner.host.commit(peer, &t).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(peer = %entry.peer_id, message_id = %t.message_id, error = %e, "commit failed");
                    return answer_with(inner, slot, host_error(&e)).await;
                }
            }
        }
    };
    let mut receipt = receipt;
    if receipt.message_id != t.message_id {
        tracing::error!(message_id = %t.message_id, "host receipt names another message");
        return answer_with(
            inner,
            slot,
            error("unavailable", "internal error, retry later"),
        )
        .await;
    }
    wire::sign_receipt(&inner.keypair, &mut receipt);
    let frame = checked(Frame::Receipt(receipt), inner);
    answer_with(inner, slot, frame).await
}
