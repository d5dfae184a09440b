//! Federation in the node: the [`Host`] the QUIC driver (`sealpost_federation::net`) calls,
//! and the background tasks (revocation spreading, outbox expiry).
//!
//! What a peer may do is decided in the service layer, never in the driver: a peer speaks
//! only for the one domain an admin peered it for (senders, certificates:
//! `service::peers`), and a transfer is accepted by `service::mail::accept` like a local
//! submission: only if the sender's key is authenticated by this node's own trust view (our
//! CA → bridge → their CA → sender) and the sender's signature on the envelope verifies, and
//! exactly once per message ID, whatever a peer replays.

mod host;
pub mod link;

use std::sync::Arc;

pub use host::FedHost;
pub use link::FedLink;

use crate::service::Context;

/// Makes an outbox entry into a transfer (unsigned: the driver signs it), with small parts
/// inline within the frame limits the driver runs with.
pub fn transfer_of(
    e: crate::storage::OutboxEntry,
    sender_cert: String,
    limits: &sealpost_federation::Limits,
) -> sealpost_federation::Transfer {
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
pub async fn background(st: Arc<Context>, link: Arc<dyn FedLink>) {
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
pub async fn sweep(st: &Context) {
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
