//! Evidence records of a message's life (`crate::evidence`, docs/evidence.md): made and signed
//! when the event happens, sealed into time-stamped batches by the node's checkpoint timer
//! (`node::seal_evidence`), and handed out as a bundle to the message's sender (every record)
//! and to a recipient (the records about them and about the message as a whole).

use std::time::SystemTime;

use crate::evidence::{self, Bundle, BundleBatch, BundleRecord, Event, Record};
use crate::service::{Context, ServiceError};
use crate::storage::evidence::{NewEvidence, StoredEvidence};
use crate::storage::{Account, Folder};

/// What a record says of the message, beyond the event.
pub struct Facts<'a> {
    pub message_id: &'a str,
    pub sender: &'a str,
    /// The ciphertext parts' SHA-256 (hex), in order.
    pub parts: Vec<String>,
}

/// A signed record of `event` about `facts` (and `recipient`), at `now`.
pub fn make(
    ctx: &Context,
    event: Event,
    facts: &Facts<'_>,
    recipient: Option<&str>,
    detail: &[(&str, &str)],
    now: SystemTime,
) -> Result<NewEvidence, ServiceError> {
    let key = ctx
        .evidence
        .as_ref()
        .ok_or_else(|| ServiceError::Internal("the node has no evidence key".into()))?;
    let at = crate::service::unix(now);
    let record = Record {
        at,
        detail: detail
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        event,
        id: hex::encode(rand::random::<[u8; 16]>()),
        message_id: facts.message_id.to_owned(),
        node: ctx.config.domain.to_ascii_lowercase(),
        parts: facts.parts.clone(),
        recipient: recipient.map(str::to_owned),
        sender: facts.sender.to_owned(),
        v: 1,
    };
    let bytes = record.to_bytes();
    let signature = evidence::sign(key, &bytes, now)
        .map_err(|e| ServiceError::Internal(format!("signing evidence: {e}")))?;
    Ok(NewEvidence {
        message_id: record.message_id,
        recipient: record.recipient,
        event: event.as_str().to_owned(),
        at,
        record: bytes,
        signature,
    })
}

/// The records that could be made; a failure is logged and does not refuse the event they
/// record: the transaction log still holds the event.
pub fn made(records: Vec<Result<NewEvidence, ServiceError>>) -> Vec<NewEvidence> {
    records
        .into_iter()
        .filter_map(|r| {
            r.map_err(|e| tracing::warn!(error = %e, "could not make an evidence record"))
                .ok()
        })
        .collect()
}

/// Keeps records of an event already committed (see [`made`]); a failure is logged and does
/// not undo the event. Records of an event that commits rows go in that commit instead.
pub async fn keep(ctx: &Context, records: Vec<Result<NewEvidence, ServiceError>>) {
    let records = made(records);
    if records.is_empty() {
        return;
    }
    if let Err(e) = ctx.store.put_evidence(records).await {
        tracing::warn!(error = %e, "could not keep evidence records");
    }
}

/// The evidence bundle of `message_id` for `account`: every record for its sender, the
/// records about the message as a whole and about the account for a recipient. Only sealed
/// records (covered by a time-stamp) are in it; `pending` counts the others. The sender's
/// bundle also carries the bundles of the recipients' nodes at peered organisations, asked
/// over federation (a node that does not answer is left out and logged).
pub async fn bundle(
    ctx: &Context,
    account: &Account,
    message_id: &str,
) -> Result<(Bundle, usize), ServiceError> {
    let m = ctx
        .store
        .message(account.id, message_id)
        .await?
        .ok_or(ServiceError::UnknownMessage)?;
    let is_sender = m.item.folder == Folder::Sent;
    let mine = |r: &StoredEvidence| {
        is_sender
            || r.recipient
                .as_deref()
                .is_none_or(|a| a.eq_ignore_ascii_case(&account.address))
    };
    let (mut bundle, pending) = build(ctx, message_id, mine).await?;
    if is_sender && let Ok(env) = serde_json::from_str::<crate::proto::Envelope>(&m.envelope) {
        bundle.peers = peer_bundles(ctx, &env).await;
    }
    Ok((bundle, pending))
}

/// For a peer's node asking as the sender's node (`EvidenceLookup`): every record of ours about
/// a message whose sender is of `domain`. Nothing for any other message.
pub async fn for_peer(
    ctx: &Context,
    domain: &str,
    message_id: &str,
) -> Result<Bundle, ServiceError> {
    let from_domain = |r: &StoredEvidence| {
        Record::from_bytes(&r.record)
            .is_ok_and(|rec| crate::domain_of(&rec.sender).eq_ignore_ascii_case(domain))
    };
    let (bundle, _) = build(ctx, message_id, from_domain).await?;
    if bundle.records.is_empty() {
        return Err(ServiceError::UnknownMessage);
    }
    Ok(bundle)
}

/// The bundles of the recipients' nodes at peered organisations.
async fn peer_bundles(ctx: &Context, env: &crate::proto::Envelope) -> Vec<Bundle> {
    let ours = ctx.config.domain.to_ascii_lowercase();
    let mut domains: Vec<String> = env
        .to
        .iter()
        .map(|a| crate::domain_of(a).to_ascii_lowercase())
        .filter(|d| *d != ours)
        .collect();
    domains.sort();
    domains.dedup();
    let Some(link) = ctx.federation.get() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for d in domains {
        let Ok(Some(peer)) = ctx.store.peer(&d).await else {
            continue;
        };
        match link.evidence(&peer.peer_id, &env.message_id).await {
            Ok(text) => match serde_json::from_str::<Bundle>(&text) {
                Ok(b) if b.message_id == env.message_id && b.peers.is_empty() => out.push(b),
                _ => tracing::warn!(domain = %d, "a peer's evidence bundle is malformed"),
            },
            Err(e) => tracing::info!(domain = %d, error = %e, "no evidence from the peer"),
        }
    }
    out
}

/// The bundle of the sealed records of `message_id` that `keep` keeps, and how many kept
/// ones are not sealed yet.
async fn build(
    ctx: &Context,
    message_id: &str,
    keep: impl Fn(&StoredEvidence) -> bool,
) -> Result<(Bundle, usize), ServiceError> {
    let (stored, batches) = ctx.store.evidence_of(message_id).await?;
    let mut records = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    let mut pending = 0;
    for r in stored.into_iter().filter(|r| keep(r)) {
        match (r.batch, r.leaf, r.proof) {
            (Some(batch), Some(index), Some(proof)) => {
                used.insert(batch);
                records.push(BundleRecord {
                    record: evidence::encode(&r.record),
                    signature: r.signature,
                    batch,
                    index,
                    proof: evidence::encode(&proof),
                });
            }
            _ => pending += 1,
        }
    }
    let key = ctx
        .evidence
        .as_ref()
        .ok_or_else(|| ServiceError::Internal("the node has no evidence key".into()))?;
    let tsa_ca = match &ctx.config.timestamping {
        Some(t) => tokio::fs::read_to_string(&t.ca_file).await.ok(),
        None => None,
    };
    let crypto_err = |e: crate::crypto::CryptoError| ServiceError::Internal(e.to_string());
    Ok((
        Bundle {
            format: evidence::BUNDLE_FORMAT.into(),
            message_id: message_id.to_owned(),
            ca_cert: ctx.ca_armored.clone(),
            evidence_cert: crate::crypto::cert_to_armored(key).map_err(crypto_err)?,
            tsa_ca,
            records,
            batches: batches
                .into_iter()
                .filter(|b| used.contains(&b.batch))
                .map(|b| BundleBatch {
                    head: evidence::encode(&b.head),
                    signature: b.signature,
                    timestamp: evidence::encode(&b.token),
                })
                .collect(),
            peers: Vec::new(),
        },
        pending,
    ))
}
