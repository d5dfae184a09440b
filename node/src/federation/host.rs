//! The node as the federation driver's [`Host`]: a door of the service layer. A transfer is
//! taken apart here and accepted by [`service::mail::accept`] as a peer's message
//! (`Source::Peer`), under the same rules as a local submission; what a peer may tell us of
//! certificates is `service::peers`'.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use sealpost_federation::{
    Admission, BatchProof, CertUpdates, Host, HostError, LookupAnswer, MessageId, Outgoing,
    PartReader, PartRef, Peer, PeerState, Receipt, Refusal, Transfer,
};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::transfer_of;
use crate::memo::Memo;
use crate::service::mail::{Accepted, Declared, Delivery, Incoming, Screening, Source};
use crate::service::{self, Context, ErrorKind, ServiceError};
use crate::storage::{LogEvent, PartData, PeerRecord};

/// Small parts received from peers wait here between `store_part` and `commit` (they are
/// stored inline in the database, like small parts submitted locally). Bounded: a peer that
/// sends parts and never commits cannot grow it past this.
const MAX_STAGED_BYTES: usize = 64 << 20;

pub struct FedHost {
    ctx: Arc<Context>,
    /// The frame limits the driver runs with: what fits inline in a transfer we send.
    limits: sealpost_federation::Limits,
    staged: Mutex<Staged>,
    /// Our senders' certificates as we publish them ([`crate::certs::published_armored`]),
    /// by the stored text's SHA-256: a pure function of that text (the CA's signature checks
    /// read no clock), so exact; worked out once instead of on every sending pass. Bounded:
    /// emptied when full.
    published: Memo<[u8; 32], String>,
}

/// Most entries of [`FedHost::published`] (one per sender certificate text).
const MAX_PUBLISHED: usize = 4096;

#[derive(Default)]
struct Staged {
    bytes: usize,
    parts: HashMap<[u8; 32], Vec<u8>>,
}

fn unavailable(e: impl std::fmt::Display) -> HostError {
    tracing::warn!(error = %e, "federation host error");
    HostError::Unavailable("the node could not complete this request".into())
}

fn sha_of(part: &PartRef) -> Result<[u8; 32], HostError> {
    hex::decode(&part.sha256)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| HostError::Refused("part hash is not 64 hex digits".into()))
}

/// A refusal as the federation wire tells it: the service's code, then its words.
fn reason(e: &ServiceError) -> String {
    format!("{}: {e}", e.code())
}

/// A transfer from `peer` as the service layer's source.
fn source<'a>(peer: &'a Peer, t: &'a Transfer, proof: Option<&BatchProof>) -> Source<'a> {
    Source::Peer {
        domain: &peer.domain,
        sender_cert: &t.sender_cert,
        node_sig: hex::encode(&t.node_sig),
        proof: proof.map(|p| serde_json::json!(p)),
    }
}

/// A transfer as the service layer's message, with the parts at hand.
fn incoming(t: &Transfer, inline: BTreeMap<u32, Vec<u8>>) -> Incoming<'_> {
    Incoming {
        envelope: &t.envelope,
        signature: &t.signature,
        inline,
        declared: Some(Declared {
            message_id: &t.message_id.0,
            parts: t
                .parts
                .iter()
                .map(|p| (p.sha256.as_str(), p.size))
                .collect(),
        }),
        ..Default::default()
    }
}

/// The (unsigned) receipt for an accepted message.
fn receipt(t: &Transfer, a: Accepted) -> Receipt {
    let mut r = Receipt {
        message_id: t.message_id.clone(),
        accepted: Vec::new(),
        refused: Vec::new(),
        node_sig: Vec::new(),
    };
    for (address, d) in a.recipients {
        match d {
            Delivery::Refused(e) => r.refused.push(Refusal {
                reason: reason(&e),
                address,
            }),
            _ => r.accepted.push(address),
        }
    }
    r
}

impl FedHost {
    pub fn new(ctx: Arc<Context>, limits: sealpost_federation::Limits) -> FedHost {
        FedHost {
            ctx,
            limits,
            staged: Mutex::new(Staged::default()),
            published: Memo::new(MAX_PUBLISHED),
        }
    }

    /// The sender's certificate as we publish it, remembered by its text (see `published`).
    fn published_cert(&self, armored: String) -> String {
        self.published
            .get_or_insert_with(crate::memo::text_key(&armored), || {
                crate::certs::published_armored(&armored, &self.ctx.ca, &self.ctx.config.domain)
                    .unwrap_or_else(|_| armored.clone())
            })
    }

    async fn record(&self, peer: &Peer) -> Result<PeerRecord, HostError> {
        self.ctx
            .store
            .peer(&peer.domain)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| HostError::Refused(format!("{} is no longer a peer", peer.domain)))
    }

    /// Each part's hash, and those of them this node already holds.
    async fn held_parts(&self, t: &Transfer) -> Result<(Vec<[u8; 32]>, Vec<[u8; 32]>), HostError> {
        let hashes = t.parts.iter().map(sha_of).collect::<Result<Vec<_>, _>>()?;
        let held = self
            .ctx
            .store
            .blobs_held(hashes.clone())
            .await
            .map_err(unavailable)?;
        Ok((hashes, held))
    }

    /// The answer to a transfer the service layer refused. Our own failure: the peer retries
    /// later. An envelope we cannot read names no recipient to refuse: an error frame with
    /// the code. Any other refusal is logged (evidence of what a peer attempted) and answered
    /// with a receipt that refuses each of our recipients with the code.
    async fn refusal(
        &self,
        peer: &Peer,
        t: &Transfer,
        e: ServiceError,
    ) -> Result<Receipt, HostError> {
        if matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Internal) {
            return Err(unavailable(e));
        }
        let reason = reason(&e);
        let Ok(env) = service::mail::check_envelope(&self.ctx.config.limits, &t.envelope) else {
            return Err(HostError::Refused(reason));
        };
        tracing::warn!(peer = %peer.domain, message = %t.message_id, %reason, "transfer refused");
        let event = LogEvent::new("federation.refused", &peer.domain, &t.message_id.0)
            .with(serde_json::json!({ "from": env.from, "reason": reason }));
        self.ctx
            .store
            .log(vec![event], crate::now())
            .await
            .map_err(unavailable)?;
        Ok(Receipt {
            message_id: t.message_id.clone(),
            accepted: Vec::new(),
            refused: env
                .to
                .into_iter()
                .filter(|a| crate::domain_of(a) == self.ctx.config.domain)
                .map(|address| Refusal {
                    address,
                    reason: reason.clone(),
                })
                .collect(),
            node_sig: Vec::new(),
        })
    }

    /// Accepts a transfer whose parts are `inline` or held.
    async fn accept(
        &self,
        peer: &Peer,
        t: &Transfer,
        proof: Option<&BatchProof>,
        inline: BTreeMap<u32, Vec<u8>>,
    ) -> Result<Receipt, HostError> {
        let source = source(peer, t, proof);
        let message = incoming(t, inline);
        let now = SystemTime::now();
        match service::mail::accept(&self.ctx, &source, message, now).await {
            Ok(a) => {
                service::compliance::learn_from_sender(self.ctx.clone(), peer.domain.clone(), now);
                Ok(receipt(t, a))
            }
            Err(e) => self.refusal(peer, t, e).await,
        }
    }

    /// A batched transfer through admit, store and commit, keeping the batch proof.
    async fn receive_in_steps(
        &self,
        peer: &Peer,
        t: &Transfer,
        proof: &BatchProof,
    ) -> Result<Receipt, HostError> {
        match sealpost_federation::admit_inline(self, peer, t).await? {
            Some(answer) => Ok(answer),
            None => self.commit_with(peer, t, Some(proof)).await,
        }
    }

    /// Every part is staged, held or in a file: accepts the message with the staged parts.
    async fn commit_with(
        &self,
        peer: &Peer,
        t: &Transfer,
        proof: Option<&BatchProof>,
    ) -> Result<Receipt, HostError> {
        let mut inline = BTreeMap::new();
        {
            let mut staged = self.staged.lock().expect("staged parts");
            for (i, p) in t.parts.iter().enumerate() {
                if let Ok(sha) = sha_of(p)
                    && let Some(data) = staged.parts.remove(&sha)
                {
                    staged.bytes -= data.len();
                    inline.insert(i as u32, data);
                }
            }
        }
        self.accept(peer, t, proof, inline).await
    }
}

#[async_trait]
impl Host for FedHost {
    async fn peers(&self) -> Vec<Peer> {
        let records = match self.ctx.store.peers().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "could not read peers");
                return Vec::new();
            }
        };
        records
            .into_iter()
            .filter_map(|p| {
                let peer_id = p.peer_id.parse().ok()?;
                let addrs = p.addrs.iter().filter_map(|a| a.parse().ok()).collect();
                Some(Peer {
                    peer_id,
                    addrs,
                    domain: p.domain,
                })
            })
            .collect()
    }

    async fn admit(&self, peer: &Peer, t: &Transfer) -> Result<Admission, HostError> {
        let source = source(peer, t, None);
        let message = incoming(t, BTreeMap::new());
        match service::mail::screen(&self.ctx, &source, &message, SystemTime::now()).await {
            Ok(Screening::Answered(a)) => return Ok(Admission::Answer(receipt(t, a))),
            Ok(Screening::Go(_)) => {}
            Err(e) => return self.refusal(peer, t, e).await.map(Admission::Answer),
        }
        let (hashes, held) = self.held_parts(t).await?;
        let staged = self.staged.lock().expect("staged parts");
        let want = hashes
            .iter()
            .enumerate()
            .filter(|(_, h)| !held.contains(h) && !staged.parts.contains_key(*h))
            .map(|(i, _)| i as u32)
            .collect();
        Ok(Admission::Want(want))
    }

    /// One step instead of admit, store and commit: the parts are in the transfer. Parts too
    /// large for this node to keep in its database (over `limits.inline_part_max_bytes`, when
    /// an admin set it below the protocol's inline size) take the steps of a lone transfer.
    async fn receive_batched(
        &self,
        peer: &Peer,
        t: &Transfer,
        proof: &BatchProof,
    ) -> Result<Receipt, HostError> {
        let max = self.ctx.config.limits.inline_part_max_bytes as u64;
        if t.parts.iter().any(|p| p.size > max) {
            return self.receive_in_steps(peer, t, proof).await;
        }
        let inline = t
            .parts
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((i as u32, p.data.clone()?)))
            .collect();
        self.accept(peer, t, Some(proof), inline).await
    }

    async fn store_part(
        &self,
        peer: &Peer,
        part: &PartRef,
        data: &mut PartReader,
    ) -> Result<(), HostError> {
        let sha = sha_of(part)?;
        if part.size as usize <= self.ctx.config.limits.inline_part_max_bytes {
            let mut buf = Vec::with_capacity(part.size as usize);
            data.as_mut()
                .take(part.size)
                .read_to_end(&mut buf)
                .await
                .map_err(|e| HostError::Refused(format!("part interrupted: {e}")))?;
            if buf.len() as u64 != part.size || <[u8; 32]>::from(Sha256::digest(&buf)) != sha {
                return Err(HostError::Refused(
                    "a part does not match its hash and size".into(),
                ));
            }
            let mut staged = self.staged.lock().expect("staged parts");
            if staged.bytes + buf.len() > MAX_STAGED_BYTES {
                return Err(HostError::Unavailable("too many parts in flight".into()));
            }
            staged.bytes += buf.len();
            staged.parts.insert(sha, buf);
            return Ok(());
        }
        let mut limited = data.as_mut().take(part.size);
        let (got, size) =
            self.ctx
                .blobs
                .put(&mut limited, part.size)
                .await
                .map_err(|e| match e {
                    // Our own want of room: the peer keeps the message and tries again.
                    crate::storage::blobs::BlobError::Full => unavailable(e),
                    e => HostError::Refused(format!("part not stored: {e}")),
                })?;
        if got != sha || size != part.size {
            // Content-addressed: the file is named by what arrived, which nothing references.
            let _ = self.ctx.blobs.remove(got).await;
            return Err(HostError::Refused(
                "a part does not match its hash and size".into(),
            ));
        }
        self.ctx
            .store
            .record_peer_part(&peer.domain, sha, size, crate::now())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn commit(&self, peer: &Peer, t: &Transfer) -> Result<Receipt, HostError> {
        self.commit_with(peer, t, None).await
    }

    async fn evidence(&self, peer: &Peer, message_id: &str) -> Result<String, HostError> {
        match crate::service::evidence::for_peer(&self.ctx, &peer.domain, message_id).await {
            Ok(b) => serde_json::to_string(&b).map_err(|e| HostError::Unavailable(e.to_string())),
            Err(crate::service::ServiceError::UnknownMessage) => Err(HostError::Refused(
                "no evidence of that message for your domain".into(),
            )),
            Err(e) => Err(HostError::Unavailable(e.to_string())),
        }
    }

    async fn org_record(&self, _peer: &Peer) -> Result<String, HostError> {
        crate::service::compliance::current(&self.ctx)
            .await
            .map_err(|e| HostError::Unavailable(e.to_string()))?;
        serde_json::to_string(&self.ctx.org_record())
            .map_err(|e| HostError::Unavailable(e.to_string()))
    }

    async fn lookup(&self, peer: &Peer, address: &str) -> Result<LookupAnswer, HostError> {
        let address = crate::normalize_address(address)
            .ok_or_else(|| HostError::Refused("not an e-mail address".into()))?;
        if crate::domain_of(&address) != self.ctx.config.domain {
            return Err(HostError::Refused(format!(
                "{address} is not an address of {}",
                self.ctx.config.domain
            )));
        }
        let published = crate::directory_store::published_for_address(
            self.ctx.store.as_ref(),
            &self.ctx.ca,
            &self.ctx.config.domain,
            &address,
        )
        .await
        .map_err(unavailable)?;
        let fingerprints = published.iter().map(|c| c.fingerprint().to_hex()).collect();
        let certs = published
            .iter()
            .map(crate::crypto::cert_to_armored)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| HostError::Unavailable(e.to_string()))?;
        self.ctx
            .store
            .record_served(&peer.domain, fingerprints)
            .await
            .map_err(unavailable)?;
        Ok(LookupAnswer { certs })
    }

    async fn updates_since(
        &self,
        peer: &Peer,
        cursor: u64,
        max: usize,
    ) -> Result<CertUpdates, HostError> {
        let (cursor, certs) = self
            .ctx
            .store
            .served_updates(
                &peer.domain,
                &self.ctx.ca.fingerprint().to_hex(),
                cursor,
                max,
            )
            .await
            .map_err(unavailable)?;
        // What we announce is what we publish: our domain's user IDs only where our CA vouches.
        let certs = certs
            .iter()
            .map(|a| crate::certs::published_armored(a, &self.ctx.ca, &self.ctx.config.domain))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| HostError::Unavailable(e.to_string()))?;
        Ok(CertUpdates { cursor, certs })
    }

    async fn pull_cursor(&self, peer: &Peer) -> Result<u64, HostError> {
        Ok(self.record(peer).await?.pull_cursor)
    }

    async fn apply_updates(&self, peer: &Peer, updates: CertUpdates) -> Result<(), HostError> {
        let record = self.record(peer).await?;
        // One bad certificate must not hold back the others (a revocation among them).
        for c in &updates.certs {
            if let Err(e) =
                service::peers::accept_remote_certs(&self.ctx, &record, std::slice::from_ref(c))
                    .await
            {
                tracing::warn!(peer = %peer.domain, error = %e, "certificate update refused");
            }
        }
        self.ctx
            .store
            .set_pull_cursor(&peer.domain, updates.cursor)
            .await
            .map_err(unavailable)
    }

    async fn pending(
        &self,
        peer: &Peer,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Outgoing>, HostError> {
        let entries = self
            .ctx
            .store
            .outbox_pending(&peer.domain, after, limit)
            .await
            .map_err(unavailable)?;
        let mut out = Vec::with_capacity(entries.len());
        let mut certs: HashMap<String, String> = HashMap::new();
        for e in entries {
            let cert = match certs.get(&e.sender) {
                Some(c) => c.clone(),
                None => {
                    let c = self
                        .ctx
                        .store
                        .account_by_address(&e.sender)
                        .await
                        .map_err(unavailable)?
                        .and_then(|a| a.cert)
                        .unwrap_or_default();
                    // The sender's certificate as we publish it (see `certs::published`).
                    let c = self.published_cert(c);
                    certs.insert(e.sender.clone(), c.clone());
                    c
                }
            };
            out.push(Outgoing {
                seq: e.seq,
                transfer: transfer_of(e, cert, &self.limits),
            });
        }
        Ok(out)
    }

    async fn open_part(
        &self,
        message_id: &MessageId,
        index: u32,
        part: &PartRef,
    ) -> Result<PartReader, HostError> {
        let sha = sha_of(part)?;
        let not_held = || HostError::Unavailable(format!("part {} is not held", part.sha256));
        match self
            .ctx
            .store
            .part(&message_id.0, index)
            .await
            .map_err(unavailable)?
        {
            Some(PartData::Inline(data)) if <[u8; 32]>::from(Sha256::digest(&data)) == sha => {
                Ok(Box::pin(std::io::Cursor::new(data)))
            }
            Some(PartData::Blob { sha256, .. }) if sha256 == sha => {
                let r = self.ctx.blobs.open(sha256).await.map_err(unavailable)?;
                Ok(Box::pin(r))
            }
            _ => Err(not_held()),
        }
    }

    async fn delivered(
        &self,
        peer: &Peer,
        receipt: Receipt,
        proof: Option<BatchProof>,
    ) -> Result<(), HostError> {
        let mut evidence = serde_json::json!({
            "accepted": receipt.accepted,
            "refused": receipt.refused.iter().map(|r| (&r.address, &r.reason)).collect::<Vec<_>>(),
            "node": peer.peer_id.to_base58(),
            "node_sig": hex::encode(&receipt.node_sig),
        });
        if let Some(p) = proof {
            evidence["batch"] = serde_json::json!(p);
        }
        let files = self
            .ctx
            .store
            .outbox_delivered(
                &peer.domain,
                &receipt.message_id.0,
                receipt.accepted.clone(),
                receipt
                    .refused
                    .iter()
                    .map(|r| (r.address.clone(), r.reason.clone()))
                    .collect(),
                evidence,
                crate::now(),
            )
            .await
            .map_err(unavailable)?;
        for f in files {
            let _ = self.ctx.blobs.remove(f).await;
        }
        let took =
            crate::metrics::age_of_message_id(&receipt.message_id.0, std::time::SystemTime::now());
        let m = &self.ctx.metrics;
        m.delivered("federated", receipt.accepted.len() as u64, took);
        for _ in &receipt.refused {
            m.delivery_failed("federated");
        }
        Ok(())
    }

    async fn rejected(&self, peer: &Peer, message_id: &MessageId, code: &str, message: &str) {
        let reason = format!("the node of {} refused it ({code}): {message}", peer.domain);
        match self
            .ctx
            .store
            .outbox_rejected(&peer.domain, &message_id.0, &reason, crate::now())
            .await
        {
            Ok(files) => {
                for f in files {
                    let _ = self.ctx.blobs.remove(f).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not record a refused transfer"),
        }
    }

    async fn peer_state(&self, peer: &Peer, state: PeerState) {
        let (name, error, retry_at) = match state {
            PeerState::Connected => ("connected", None, None),
            PeerState::BackingOff { retry_at, error } => {
                ("backing_off", Some(error), Some(retry_at))
            }
            PeerState::Disconnected { error } => ("disconnected", error, None),
        };
        if let Err(e) = self
            .ctx
            .store
            .set_peer_state(&peer.domain, name, error, retry_at, crate::now())
            .await
        {
            tracing::warn!(error = %e, "could not record a peer's state");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Envelope, EnvelopePart};

    /// Regression: part sizes adding up past `u64` panicked ("attempt to add with overflow")
    /// in a debug build and wrapped under the size limit in a release build. A peer's transfer
    /// is refused like any other over the limit.
    #[tokio::test]
    async fn a_transfer_whose_part_sizes_overflow_is_refused() {
        let (_dir, node) = crate::node::temp_node("host.test").await;
        let host = FedHost::new(
            node.state.context.clone(),
            sealpost_federation::Limits::default(),
        );
        let peer = Peer {
            peer_id: libp2p::PeerId::random(),
            addrs: Vec::new(),
            domain: "peer.test".into(),
        };
        let id = crate::new_message_id();
        let sizes = [u64::MAX, 2];
        let env = Envelope {
            v: 1,
            message_id: id.clone(),
            from: "a@peer.test".into(),
            to: vec!["b@host.test".into()],
            registered: Default::default(),
            pickup: Default::default(),
            external: Default::default(),
            created_at: crate::now(),
            parts: sizes
                .iter()
                .map(|&size| EnvelopePart {
                    sha256: "ab".repeat(32),
                    size,
                })
                .collect(),
        };
        let t = Transfer {
            message_id: MessageId::new(id),
            envelope: serde_json::to_string(&env).unwrap(),
            signature: "sig".into(),
            sender_cert: String::new(),
            parts: env
                .parts
                .iter()
                .map(|p| PartRef {
                    sha256: p.sha256.clone(),
                    size: p.size,
                    data: None,
                })
                .collect(),
            node_sig: Vec::new(),
        };
        match host.admit(&peer, &t).await {
            Err(HostError::Refused(m)) => assert!(m.starts_with("too_large: "), "{m}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
