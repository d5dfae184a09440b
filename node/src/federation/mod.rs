//! Federation in the node: the [`Host`] the QUIC driver (`sealpost_federation::net`) calls,
//! remote resolution for envelope requests, bridges between CAs, and the background tasks
//! (revocation spreading, outbox expiry).
//!
//! What a peer may do is decided here, never in the driver: a peer speaks only for the one
//! domain an admin peered it for (senders, certificates), a transfer is accepted only if the
//! sender's key is authenticated by this node's own trust view (our CA → bridge → their CA →
//! sender) and the sender's signature on the envelope verifies, and a message is stored
//! exactly once per message ID, whatever a peer replays.

mod host;
pub mod link;

use std::sync::Arc;
use std::time::SystemTime;

use sequoia_openpgp::Cert;
use sequoia_openpgp::policy::StandardPolicy;

pub use host::FedHost;
pub use link::FedLink;

use crate::api::{ApiError, ApiResult, AppState};
use crate::storage::{LogEvent, PeerRecord};

/// The domain of an address (after the last `@`).
pub fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

/// Why a peer's certificate was not kept.
#[derive(Debug, thiserror::Error)]
pub enum CertRefusal {
    #[error("not an OpenPGP certificate: {0}")]
    Malformed(String),
    #[error("certificate {fingerprint} has no user ID with an address")]
    NoAddress { fingerprint: String },
    #[error(
        "certificate {fingerprint} names {address}, which the node of {domain} may not speak for"
    )]
    OutsideDomain {
        fingerprint: String,
        address: String,
        domain: String,
    },
}

/// Checks that a certificate from `peer` names only addresses of the peer's domain, and merges
/// it with what we hold (so our own users' certifications and our bridge stay on it).
/// When it is the peer's CA (the fingerprint the admin peered), our bridge is added if missing.
pub async fn accept_remote_certs(
    st: &AppState,
    peer: &PeerRecord,
    armored: &[String],
) -> Result<Vec<Arc<Cert>>, CertRefusal> {
    let policy = StandardPolicy::new();
    let mut records = Vec::new();
    let mut kept = Vec::new();
    // The peer's CA certificate, read at the first certificate that needs it.
    let mut peer_ca: Option<Option<Cert>> = None;
    for a in armored {
        let cert = st
            .parse_cert(a)
            .map_err(|e| CertRefusal::Malformed(e.to_string()))?;
        let fingerprint = cert.fingerprint().to_hex();
        let emails: Vec<String> = cert
            .userids()
            .filter_map(|u| u.userid().email_normalized().ok().flatten())
            .collect();
        if emails.is_empty() {
            return Err(CertRefusal::NoAddress { fingerprint });
        }
        if let Some(address) = emails.iter().find(|e| domain_of(e) != peer.domain) {
            return Err(CertRefusal::OutsideDomain {
                fingerprint,
                address: address.clone(),
                domain: peer.domain.clone(),
            });
        }
        let held_text = st
            .store
            .cert_by_fingerprint(&fingerprint)
            .await
            .ok()
            .flatten();
        // The common case (every transfer carries its sender's certificate): nothing new.
        if held_text.as_deref() == Some(a.as_str()) && fingerprint != peer.ca_fingerprint {
            kept.push(cert);
            continue;
        }
        let held = held_text
            .as_deref()
            .and_then(|h| crate::crypto::cert_from_armored(h).ok());
        let mut merged = match &held {
            Some(h) => h
                .clone()
                .merge_public((*cert).clone())
                .map_err(|e| CertRefusal::Malformed(e.to_string()))?,
            None => (*cert).clone(),
        };
        // A peer speaks for its domain's addresses through its CA, as we do for ours: a user ID
        // its CA did not certify is not kept (once we hold the CA's certificate).
        if peer_ca.is_none() {
            peer_ca = Some(
                st.store
                    .cert_by_fingerprint(&peer.ca_fingerprint)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|a| crate::crypto::cert_from_armored(&a).ok())
                    // Only the CA of that domain vouches for it (a mistyped pin is another
                    // organisation's CA, whose users then stay unauthenticated here).
                    .filter(|ca| {
                        let ca_address = format!("openpgp-ca@{}", peer.domain);
                        crate::certs::names_address(ca, &ca_address)
                    }),
            );
        }
        if let Some(Some(ca)) = &peer_ca {
            merged = crate::certs::published(merged, ca, &peer.domain);
            if !merged
                .userids()
                .any(|u| u.userid().email_normalized().ok().flatten().is_some())
            {
                return Err(CertRefusal::NoAddress { fingerprint });
            }
        }
        if fingerprint == peer.ca_fingerprint && !bridged(&merged, &st.ca, &peer.domain, &policy) {
            let at = crate::certs::after_previous_signatures(
                &st.ca.fingerprint(),
                &merged,
                &format!("openpgp-ca@{}", peer.domain),
                SystemTime::now(),
            );
            merged = sealpost_trust::bridge(&st.ca, &merged, &peer.domain, at)
                .map_err(|e| CertRefusal::Malformed(e.to_string()))?;
            tracing::info!(domain = %peer.domain, "bridged to the peer's CA");
        }
        // Unchanged by the merge (we already held everything it carries): no write. A write
        // would bump the certificate generation, making the trust view re-read it and drop
        // its cached verdicts, and make us announce a change to every peer.
        if held.as_ref() != Some(&merged) {
            records.push(
                crate::certs::record(&merged).map_err(|e| CertRefusal::Malformed(e.to_string()))?,
            );
        }
        kept.push(Arc::new(merged));
    }
    if records.is_empty() {
        return Ok(kept);
    }
    if let Err(e) = st
        .store
        .put_remote_certs(&peer.domain, records, crate::now())
        .await
    {
        tracing::warn!(error = %e, domain = %peer.domain, "could not store a peer's certificates");
    }
    Ok(kept)
}

/// Whether `our_ca`'s newest signature on `other_ca`'s CA user ID for `domain` is a
/// certification (a bridge) rather than a revocation, or absent.
pub fn bridged(other_ca: &Cert, our_ca: &Cert, domain: &str, _policy: &StandardPolicy) -> bool {
    let ours = our_ca.fingerprint();
    let ca_userid = format!("openpgp-ca@{domain}");
    let mut newest: Option<(SystemTime, bool)> = None;
    for u in other_ca.userids() {
        if u.userid().email_normalized().ok().flatten().as_deref() != Some(ca_userid.as_str()) {
            continue;
        }
        let sigs = u
            .certifications()
            .map(|s| (s, true))
            .chain(u.other_revocations().map(|s| (s, false)));
        for (sig, is_cert) in sigs {
            let by_us = sig.issuer_fingerprints().any(|f| *f == ours);
            if !by_us {
                continue;
            }
            if let Some(t) = sig.signature_creation_time()
                && newest.is_none_or(|(n, _)| t >= n)
            {
                newest = Some((t, is_cert));
            }
        }
    }
    matches!(newest, Some((_, true)))
}

/// Certificates of `address` at the peered organisation `peer`: from what we hold, or asked of
/// the peer's node over QUIC (and kept; revocations then reach us as certificate updates).
pub async fn remote_certs(
    st: &AppState,
    peer: &PeerRecord,
    address: &str,
) -> ApiResult<Vec<Arc<Cert>>> {
    let held = st.store.certs_by_email_from(address, &peer.domain).await?;
    if held.is_empty() {
        let Some(link) = st.federation.get() else {
            return Err(ApiError::unavailable(
                "federation_off",
                "federation is not running on this node",
            ));
        };
        let wait = std::time::Duration::from_secs(st.config.federation.lookup_timeout_secs);
        let answer = match tokio::time::timeout(wait, link.lookup(&peer.peer_id, address)).await {
            Ok(a) => a,
            Err(_) => Err(format!("no answer within {}s", wait.as_secs())),
        }
        .map_err(|e| {
            ApiError::unavailable(
                "peer_unreachable",
                format!(
                    "the node of {} could not be asked for {address}: {e}",
                    peer.domain
                ),
            )
        })?;
        let kept = accept_remote_certs(st, peer, &answer).await.map_err(|e| {
            ApiError::unavailable(
                "peer_answer_refused",
                format!("the node of {} answered badly: {e}", peer.domain),
            )
        })?;
        return Ok(kept);
    }
    // Parsed through the node's cache: every submission to a peer's user comes here.
    held.iter()
        .map(|a| st.parse_cert(a).map_err(ApiError::internal))
        .collect()
}

/// Creates a peering: stores the peer and, if the peer's CA certificate is at hand, bridges to
/// it. Used by the admin CLI (`peer add`).
pub async fn add_peer(
    store: &dyn crate::storage::MetaStore,
    our_ca: &Cert,
    peer: PeerRecord,
    peer_ca: Option<Cert>,
) -> anyhow::Result<()> {
    let now = crate::now();
    if let Some(ca) = peer_ca {
        anyhow::ensure!(
            ca.fingerprint().to_hex() == peer.ca_fingerprint,
            "the CA certificate published for {} has fingerprint {}, not {}",
            peer.domain,
            ca.fingerprint(),
            peer.ca_fingerprint
        );
        let held = store
            .cert_by_fingerprint(&peer.ca_fingerprint)
            .await?
            .map(|h| crate::crypto::cert_from_armored(&h))
            .transpose()?;
        let ca = match held {
            Some(h) => h.merge_public(ca.strip_secret_key_material())?,
            None => ca.strip_secret_key_material(),
        };
        let at = crate::certs::after_previous_signatures(
            &our_ca.fingerprint(),
            &ca,
            &format!("openpgp-ca@{}", peer.domain),
            SystemTime::now(),
        );
        let bridged = sealpost_trust::bridge(our_ca, &ca, &peer.domain, at)?;
        let record = crate::certs::record(&bridged)?;
        store
            .put_remote_certs(&peer.domain, vec![record], now)
            .await?;
    }
    let event = LogEvent::new("peer.added", "admin", &peer.domain).with(serde_json::json!({
        "peer_id": peer.peer_id, "addrs": peer.addrs, "ca": peer.ca_fingerprint,
    }));
    store.put_peer(peer, event, now).await?;
    Ok(())
}

/// Removes a peering and revokes our bridge to its CA: its users are no longer authenticated
/// through us.
pub async fn remove_peer(
    store: &dyn crate::storage::MetaStore,
    our_ca: &Cert,
    domain: &str,
) -> anyhow::Result<()> {
    let peer = store
        .peer(domain)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{domain} is not a peer"))?;
    if let Some(held) = store.cert_by_fingerprint(&peer.ca_fingerprint).await? {
        let ca = crate::crypto::cert_from_armored(&held)?;
        if bridged(&ca, our_ca, domain, &StandardPolicy::new()) {
            let revoked = sealpost_trust::revoke_bridge(
                our_ca,
                &ca,
                domain,
                crate::certs::after_previous_signatures(
                    &our_ca.fingerprint(),
                    &ca,
                    &format!("openpgp-ca@{domain}"),
                    SystemTime::now(),
                ),
            )?;
            store
                .put_remote_certs(domain, vec![crate::certs::record(&revoked)?], crate::now())
                .await?;
        }
    }
    store
        .remove_peer(
            domain,
            LogEvent::new("peer.removed", "admin", domain),
            crate::now(),
        )
        .await?;
    Ok(())
}

/// Makes an outbox entry into a transfer (unsigned: the driver signs it).
pub fn transfer_of(
    e: crate::storage::OutboxEntry,
    sender_cert: String,
) -> sealpost_federation::Transfer {
    let limits = sealpost_federation::Limits::default();
    let mut inline_total = 0;
    sealpost_federation::Transfer {
        message_id: sealpost_federation::MessageId(e.message_id),
        envelope: e.envelope,
        signature: e.signature,
        sender_cert,
        parts: e
            .parts
            .into_iter()
            .map(|p| {
                // Small parts go with the transfer, within the protocol's inline limits.
                let data = p.inline.filter(|d| {
                    d.len() <= limits.max_inline_part_bytes
                        && inline_total + d.len() <= limits.max_inline_bytes
                });
                inline_total += data.as_ref().map_or(0, Vec::len);
                sealpost_federation::PartRef {
                    sha256: hex::encode(p.sha256),
                    size: p.size,
                    data,
                }
            })
            .collect(),
        node_sig: Vec::new(),
    }
}

/// Background work while federation runs: tells the driver when our certificates change (so
/// revocations reach peers within a fraction of a second) and when the peer table changes
/// (the admin CLI writes it from another process), and expires deliveries that ran out of
/// time. Runs until aborted.
pub async fn background(st: AppState, link: Arc<dyn FedLink>) {
    let poll = std::time::Duration::from_millis(100);
    let sweep_every = std::time::Duration::from_secs(st.config.federation.sweep_interval_secs);
    let mut last_sweep = std::time::Instant::now();
    let mut certs = st.store.cert_generation().await.unwrap_or(0);
    let mut peers = st.store.peer_generation().await.unwrap_or(0);
    loop {
        tokio::time::sleep(poll).await;
        match st.store.cert_generation().await {
            Ok(g) if g != certs => {
                certs = g;
                link.certs_changed(g);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not read the certificate generation"),
        }
        match st.store.peer_generation().await {
            Ok(g) if g != peers => {
                peers = g;
                link.peers_changed();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not read the peer generation"),
        }
        if last_sweep.elapsed() >= sweep_every {
            last_sweep = std::time::Instant::now();
            sweep(&st).await;
        }
    }
}

/// Fails deliveries whose time ran out and tells their senders.
pub async fn sweep(st: &AppState) {
    match st.store.outbox_expire(crate::now()).await {
        Ok((expired, files)) => {
            for e in &expired {
                tracing::info!(message = %e.message_id, domain = %e.domain, "delivery expired");
            }
            for f in files {
                let _ = st.blobs.remove(f).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not expire deliveries"),
    }
}
