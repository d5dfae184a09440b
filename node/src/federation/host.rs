//! The node as the federation driver's [`Host`]: every decision about what a peer may do.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use sealpost_federation::{
    Admission, BatchProof, CertUpdates, Host, HostError, LookupAnswer, MessageId, Outgoing,
    PartReader, PartRef, Peer, PeerState, Receipt, Refusal, Transfer,
};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::{accept_remote_certs, domain_of, transfer_of};
use crate::api::AppState;
use crate::proto::Envelope;
use crate::storage::{
    LogEvent, NewPart, PartData, PeerRecord, ReceiveOutcome, RemoteMessage, StorageError,
};

/// Small parts received from peers wait here between `store_part` and `commit` (they are
/// stored inline in the database, like small parts submitted locally). Bounded: a peer that
/// sends parts and never commits cannot grow it past this.
const MAX_STAGED_BYTES: usize = 64 << 20;

pub struct FedHost {
    st: AppState,
    staged: Mutex<Staged>,
}

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

/// Who, among an envelope's recipients, this node delivers to, and who it refuses.
struct Routing {
    accepted: Vec<(i64, String)>,
    refused: Vec<Refusal>,
}

impl FedHost {
    pub fn new(st: AppState) -> FedHost {
        FedHost {
            st,
            staged: Mutex::new(Staged::default()),
        }
    }

    async fn record(&self, peer: &Peer) -> Result<PeerRecord, HostError> {
        self.st
            .store
            .peer(&peer.domain)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| HostError::Refused(format!("{} is no longer a peer", peer.domain)))
    }

    /// Reads the envelope by the rule every door applies ([`service::mail::check_envelope`]; a
    /// refusal names its code) and checks it matches the transfer.
    fn envelope(&self, t: &Transfer) -> Result<Envelope, HostError> {
        let env = crate::service::mail::check_envelope(&self.st.config.limits, &t.envelope)
            .map_err(|e| HostError::Refused(format!("{}: {e}", e.code())))?;
        let same_parts = env.parts.len() == t.parts.len()
            && env
                .parts
                .iter()
                .zip(&t.parts)
                .all(|(e, p)| e.sha256 == p.sha256 && e.size == p.size);
        if env.message_id != t.message_id.0 || !same_parts {
            return Err(HostError::Refused(
                "the transfer does not match its signed envelope".into(),
            ));
        }
        Ok(env)
    }

    /// Each part's hash, and those of them this node already holds.
    async fn held_parts(&self, t: &Transfer) -> Result<(Vec<[u8; 32]>, Vec<[u8; 32]>), HostError> {
        let hashes = t.parts.iter().map(sha_of).collect::<Result<Vec<_>, _>>()?;
        let held = self
            .st
            .store
            .blobs_held(hashes.clone())
            .await
            .map_err(unavailable)?;
        Ok((hashes, held))
    }

    async fn routing(&self, env: &Envelope) -> Result<Routing, HostError> {
        let mut r = Routing {
            accepted: Vec::new(),
            refused: Vec::new(),
        };
        for a in env
            .to
            .iter()
            .filter(|a| domain_of(a) == self.st.config.domain)
        {
            match self
                .st
                .store
                .account_by_address(a)
                .await
                .map_err(unavailable)?
            {
                Some(acc) if crate::service::mail::deliverable(&acc) => {
                    r.accepted.push((acc.id, acc.address))
                }
                _ => r.refused.push(Refusal {
                    address: a.clone(),
                    reason: format!("there is no active user {a}"),
                }),
            }
        }
        Ok(r)
    }

    fn refuse_all(t: &Transfer, env: &Envelope, reason: &str) -> Receipt {
        Receipt {
            message_id: t.message_id.clone(),
            accepted: Vec::new(),
            refused: env
                .to
                .iter()
                .map(|a| Refusal {
                    address: a.clone(),
                    reason: reason.to_owned(),
                })
                .collect(),
            node_sig: Vec::new(),
        }
    }

    /// Logs a refused transfer (evidence of what a peer attempted) and builds the refusal.
    async fn refused(
        &self,
        peer: &Peer,
        t: &Transfer,
        env: &Envelope,
        reason: String,
    ) -> Result<Receipt, HostError> {
        tracing::warn!(peer = %peer.domain, message = %t.message_id, %reason, "transfer refused");
        let event = LogEvent::new("federation.refused", &peer.domain, &t.message_id.0)
            .with(serde_json::json!({ "from": env.from, "reason": reason }));
        self.st
            .store
            .log(vec![event], crate::now())
            .await
            .map_err(unavailable)?;
        let mut receipt = Self::refuse_all(t, env, &reason);
        receipt
            .refused
            .retain(|r| domain_of(&r.address) == self.st.config.domain);
        Ok(receipt)
    }

    /// Authenticates the sender's key through this node's own trust view (our CA is the root)
    /// and checks the sender's signature over the exact envelope bytes.
    async fn check_sender(&self, peer: &Peer, t: &Transfer, env: &Envelope) -> Result<(), String> {
        let record = self.record(peer).await.map_err(|e| e.to_string())?;
        let certs = accept_remote_certs(&self.st, &record, std::slice::from_ref(&t.sender_cert))
            .await
            .map_err(|e| format!("the sender's certificate is not acceptable: {e}"))?;
        let cert = certs
            .into_iter()
            .next()
            .ok_or("the transfer carries no sender certificate")?;
        let verdict = self
            .st
            .trust
            .authenticate(&self.st.ca.fingerprint(), &cert.fingerprint(), &env.from)
            .await
            .map_err(|e| format!("trust check failed: {e}"))?;
        if verdict.level != sealpost_trust::Level::Full {
            let why = crate::api::trust::view(&verdict);
            return Err(format!(
                "the key of {} is not authenticated by this node ({})",
                env.from,
                why.why_not.unwrap_or_else(|| why.level.clone())
            ));
        }
        let now = SystemTime::now();
        crate::crypto::verify_detached_with(
            &cert,
            &self.st.cert_facts(&cert, now).signer,
            &self.st.policy,
            now,
            t.envelope.as_bytes(),
            &t.signature,
        )
        .map_err(|e| format!("the sender's signature on the envelope does not verify: {e}"))
    }

    /// The checks every transfer passes before anything is stored: the peer speaks for the
    /// sender's domain, the message ID is new (a replay is answered as the first time, storing
    /// nothing), the sender's signature verifies through our trust view, and some recipient is
    /// ours. `Answer` is the receipt to give at once.
    async fn screen(&self, peer: &Peer, t: &Transfer) -> Result<Screened, HostError> {
        let env = self.envelope(t)?;
        if domain_of(&env.from) != peer.domain {
            let reason = format!("the node of {} may not send for {}", peer.domain, env.from);
            return self
                .refused(peer, t, &env, reason)
                .await
                .map(Screened::Answer);
        }
        if let Some((to, envelope_sha)) = self
            .st
            .store
            .received_by(&t.message_id.0)
            .await
            .map_err(unavailable)?
        {
            if envelope_sha != <[u8; 32]>::from(Sha256::digest(t.envelope.as_bytes())) {
                let reason = "this message ID was already used for another message".to_owned();
                return self
                    .refused(peer, t, &env, reason)
                    .await
                    .map(Screened::Answer);
            }
            // A retry or a replay: answer as the first time, store nothing.
            return Ok(Screened::Answer(Receipt {
                message_id: t.message_id.clone(),
                accepted: to,
                refused: Vec::new(),
                node_sig: Vec::new(),
            }));
        }
        if let Err(reason) = self.check_sender(peer, t, &env).await {
            return self
                .refused(peer, t, &env, reason)
                .await
                .map(Screened::Answer);
        }
        let routing = self.routing(&env).await?;
        if routing.accepted.is_empty() {
            return Ok(Screened::Answer(Receipt {
                message_id: t.message_id.clone(),
                accepted: Vec::new(),
                refused: routing.refused,
                node_sig: Vec::new(),
            }));
        }
        Ok(Screened::Go { env, routing })
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

    /// Every part is staged, held or in a file: stores the message.
    async fn commit_with(
        &self,
        peer: &Peer,
        t: &Transfer,
        proof: Option<&BatchProof>,
    ) -> Result<Receipt, HostError> {
        let env = self.envelope(t)?;
        let routing = self.routing(&env).await?;
        let (hashes, held) = self.held_parts(t).await?;
        let mut parts = Vec::with_capacity(t.parts.len());
        {
            let mut staged = self.staged.lock().expect("staged parts");
            for (p, sha) in t.parts.iter().zip(&hashes) {
                let inline = match staged.parts.remove(sha) {
                    Some(data) => {
                        staged.bytes -= data.len();
                        Some(data)
                    }
                    None => None,
                };
                // Not staged and not held: it is a file `store_part` wrote (or it is missing,
                // which the blob store will say when it is read; the receipt would lie, so
                // check files too).
                parts.push((
                    NewPart {
                        sha256: *sha,
                        size: p.size,
                        inline,
                    },
                    held.contains(sha),
                ));
            }
        }
        for (p, held) in &parts {
            if p.inline.is_none() && !held && self.st.blobs.open(p.sha256).await.is_err() {
                return Err(HostError::Refused(format!(
                    "part {} was never sent",
                    hex::encode(p.sha256)
                )));
            }
        }
        let parts = parts.into_iter().map(|(p, _)| p).collect();
        self.store(peer, t, env, routing, parts, proof).await
    }

    /// Stores a received message durably and builds its (unsigned) receipt.
    async fn store(
        &self,
        peer: &Peer,
        t: &Transfer,
        env: Envelope,
        routing: Routing,
        parts: Vec<NewPart>,
        proof: Option<&BatchProof>,
    ) -> Result<Receipt, HostError> {
        // The envelope's parts are the transfer's, and their total was checked against the
        // limit (so without overflow) when it was admitted.
        let size = env.total_size().unwrap_or(u64::MAX);
        let message = RemoteMessage {
            id: t.message_id.0.clone(),
            peer_domain: peer.domain.clone(),
            sender: env.from,
            envelope: t.envelope.clone(),
            signature: t.signature.clone(),
            size,
            parts,
            all_recipients: env.to,
            recipients: routing.accepted.clone(),
            node_sig: hex::encode(&t.node_sig),
            node_proof: proof.map(|p| serde_json::json!(p)),
        };
        match self.st.store.receive_remote(message, crate::now()).await {
            Ok(ReceiveOutcome::Stored) | Ok(ReceiveOutcome::Duplicate) => {}
            Err(StorageError::Conflict(m)) => return Err(HostError::Refused(m)),
            Err(e) => return Err(unavailable(e)),
        }
        Ok(Receipt {
            message_id: t.message_id.clone(),
            accepted: routing.accepted.into_iter().map(|(_, a)| a).collect(),
            refused: routing.refused,
            node_sig: Vec::new(),
        })
    }
}

/// What [`FedHost::screen`] decided.
enum Screened {
    Answer(Receipt),
    Go { env: Envelope, routing: Routing },
}

#[async_trait]
impl Host for FedHost {
    async fn peers(&self) -> Vec<Peer> {
        let records = match self.st.store.peers().await {
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
        if let Screened::Answer(r) = self.screen(peer, t).await? {
            return Ok(Admission::Answer(r));
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
        let max = self.st.config.limits.inline_part_max_bytes as u64;
        if t.parts.iter().any(|p| p.size > max) {
            return self.receive_in_steps(peer, t, proof).await;
        }
        let (env, routing) = match self.screen(peer, t).await? {
            Screened::Answer(r) => return Ok(r),
            Screened::Go { env, routing } => (env, routing),
        };
        let mut parts = Vec::with_capacity(t.parts.len());
        for p in &t.parts {
            let sha256 = sha_of(p)?;
            let data = p.data.clone().unwrap_or_default();
            if data.len() as u64 != p.size || <[u8; 32]>::from(Sha256::digest(&data)) != sha256 {
                return Err(HostError::Refused(
                    "a part does not match its hash and size".into(),
                ));
            }
            parts.push(NewPart {
                sha256,
                size: p.size,
                inline: Some(data),
            });
        }
        self.store(peer, t, env, routing, parts, Some(proof)).await
    }

    async fn store_part(
        &self,
        peer: &Peer,
        part: &PartRef,
        data: &mut PartReader,
    ) -> Result<(), HostError> {
        let sha = sha_of(part)?;
        if part.size as usize <= self.st.config.limits.inline_part_max_bytes {
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
        let (got, size) = self
            .st
            .blobs
            .put(&mut limited, part.size)
            .await
            .map_err(|e| HostError::Refused(format!("part not stored: {e}")))?;
        if got != sha || size != part.size {
            // Content-addressed: the file is named by what arrived, which nothing references.
            let _ = self.st.blobs.remove(got).await;
            return Err(HostError::Refused(
                "a part does not match its hash and size".into(),
            ));
        }
        self.st
            .store
            .record_peer_part(&peer.domain, sha, size, crate::now())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn commit(&self, peer: &Peer, t: &Transfer) -> Result<Receipt, HostError> {
        self.commit_with(peer, t, None).await
    }

    async fn org_record(&self, _peer: &Peer) -> Result<String, HostError> {
        serde_json::to_string(&self.st.org_record())
            .map_err(|e| HostError::Unavailable(e.to_string()))
    }

    async fn lookup(&self, peer: &Peer, address: &str) -> Result<LookupAnswer, HostError> {
        let address = crate::normalize_address(address)
            .ok_or_else(|| HostError::Refused("not an e-mail address".into()))?;
        if domain_of(&address) != self.st.config.domain {
            return Err(HostError::Refused(format!(
                "{address} is not an address of {}",
                self.st.config.domain
            )));
        }
        let published = crate::directory_store::published_for_address(
            self.st.store.as_ref(),
            &self.st.ca,
            &self.st.config.domain,
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
        self.st
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
            .st
            .store
            .served_updates(
                &peer.domain,
                &self.st.ca.fingerprint().to_hex(),
                cursor,
                max,
            )
            .await
            .map_err(unavailable)?;
        // What we announce is what we publish: our domain's user IDs only where our CA vouches.
        let certs = certs
            .iter()
            .map(|a| crate::certs::published_armored(a, &self.st.ca, &self.st.config.domain))
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
            if let Err(e) = accept_remote_certs(&self.st, &record, std::slice::from_ref(c)).await {
                tracing::warn!(peer = %peer.domain, error = %e, "certificate update refused");
            }
        }
        self.st
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
            .st
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
                        .st
                        .store
                        .account_by_address(&e.sender)
                        .await
                        .map_err(unavailable)?
                        .and_then(|a| a.cert)
                        .unwrap_or_default();
                    // The sender's certificate as we publish it (see `certs::published`).
                    let c =
                        crate::certs::published_armored(&c, &self.st.ca, &self.st.config.domain)
                            .unwrap_or(c);
                    certs.insert(e.sender.clone(), c.clone());
                    c
                }
            };
            out.push(Outgoing {
                seq: e.seq,
                transfer: transfer_of(e, cert),
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
            .st
            .store
            .part(&message_id.0, index)
            .await
            .map_err(unavailable)?
        {
            Some(PartData::Inline(data)) if <[u8; 32]>::from(Sha256::digest(&data)) == sha => {
                Ok(Box::pin(std::io::Cursor::new(data)))
            }
            Some(PartData::Blob { sha256, .. }) if sha256 == sha => {
                let r = self.st.blobs.open(sha256).await.map_err(unavailable)?;
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
            .st
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
            let _ = self.st.blobs.remove(f).await;
        }
        Ok(())
    }

    async fn rejected(&self, peer: &Peer, message_id: &MessageId, code: &str, message: &str) {
        let reason = format!("the node of {} refused it ({code}): {message}", peer.domain);
        match self
            .st
            .store
            .outbox_rejected(&peer.domain, &message_id.0, &reason, crate::now())
            .await
        {
            Ok(files) => {
                for f in files {
                    let _ = self.st.blobs.remove(f).await;
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
            .st
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
    use crate::proto::EnvelopePart;

    /// Regression: part sizes adding up past `u64` panicked ("attempt to add with overflow")
    /// in a debug build and wrapped under the size limit in a release build. A peer's transfer
    /// is refused like any other over the limit.
    #[tokio::test]
    async fn a_transfer_whose_part_sizes_overflow_is_refused() {
        let (_dir, node) = crate::node::temp_node("host.test").await;
        let host = FedHost::new(node.state);
        let id = crate::new_message_id();
        let sizes = [u64::MAX, 2];
        let env = Envelope {
            v: 1,
            message_id: id.clone(),
            from: "a@peer.test".into(),
            to: vec!["b@host.test".into()],
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
        match host.envelope(&t) {
            Err(HostError::Refused(m)) => assert!(m.starts_with("too_large: "), "{m}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
