//! Peered organisations: adding, removing and listing peers (the admin CLI, the demo, the
//! admin console), and what a peer's node may tell us of certificates.
//!
//! - **add**: a valid domain other than ours, a libp2p peer ID, at least one QUIC
//!   multiaddress and the peer CA's fingerprint (40 or 64 hex digits; spaces and case do not
//!   count). If the peer's CA certificate is at hand it must have that fingerprint, and our
//!   CA bridges to it at once; otherwise the bridge is made when the certificate first
//!   arrives ([`accept_remote_certs`]).
//! - **remove**: revokes our bridge to the peer's CA, then forgets the peer.
//! - A peer's node speaks only for its own domain: [`accept_remote_certs`] keeps a
//!   certificate only if its every address is of that domain, and only the user IDs the
//!   peer's CA certified.

use std::sync::Arc;
use std::time::SystemTime;

use sequoia_openpgp::Cert;

use super::{Actor, Context, ServiceError};
use crate::config::Config;
use crate::storage::{LogEvent, MetaStore, PeerRecord};

/// A peering as an admin asks for it.
#[derive(Clone, Debug)]
pub struct NewPeer {
    pub domain: String,
    /// The peer node's libp2p peer ID (base58).
    pub peer_id: String,
    /// QUIC multiaddresses of the peer's node.
    pub addrs: Vec<String>,
    /// The peer organisation's CA fingerprint, as compared out of band.
    pub ca_fingerprint: String,
    /// The peer's CA certificate, if at hand (fetched from its published record).
    pub ca_cert: Option<Cert>,
}

/// A peer as admins see it: its record and how many transfers wait for it.
#[derive(Clone, Debug)]
pub struct PeerStatus {
    pub record: PeerRecord,
    pub queued: u64,
}

/// Authorises another organisation's node for its domain (and bridges our CA to its CA if
/// its certificate is given). Returns the peer as stored.
pub async fn add(
    store: &dyn MetaStore,
    config: &Config,
    our_ca: &Cert,
    actor: &Actor,
    peer: NewPeer,
    now: SystemTime,
) -> Result<PeerRecord, ServiceError> {
    let invalid = |m: String| Err(ServiceError::InvalidPeer(m));
    let domain = peer.domain.trim().to_ascii_lowercase();
    if !sealpost_proto::is_valid_domain(&domain) {
        return invalid(format!("{:?} is not a domain", peer.domain));
    }
    if domain == config.domain {
        return Err(ServiceError::OwnDomain { domain });
    }
    if peer.peer_id.parse::<libp2p::PeerId>().is_err() {
        return invalid(format!("{} is not a libp2p peer ID", peer.peer_id));
    }
    if peer.addrs.is_empty() {
        return invalid("give at least one address of the peer's node".into());
    }
    if let Some(a) = peer
        .addrs
        .iter()
        .find(|a| a.parse::<libp2p::Multiaddr>().is_err())
    {
        return invalid(format!("{a} is not a multiaddress"));
    }
    let ca_fingerprint: String = peer
        .ca_fingerprint
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    if !matches!(ca_fingerprint.len(), 40 | 64)
        || !ca_fingerprint.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return invalid(format!(
            "{:?} is not a CA fingerprint (40 or 64 hex digits)",
            peer.ca_fingerprint
        ));
    }
    let unix = super::unix(now);
    if let Some(ca) = peer.ca_cert {
        if ca.fingerprint().to_hex() != ca_fingerprint {
            return Err(ServiceError::CaMismatch {
                domain,
                published: ca.fingerprint().to_hex(),
                pinned: ca_fingerprint,
            });
        }
        let held = store
            .cert_by_fingerprint(&ca_fingerprint)
            .await?
            .map(|h| crate::crypto::cert_from_armored(&h))
            .transpose()
            .map_err(ServiceError::internal)?;
        let ca = match held {
            Some(h) => h
                .merge_public(ca.strip_secret_key_material())
                .map_err(ServiceError::internal)?,
            None => ca.strip_secret_key_material(),
        };
        let at = crate::certs::after_previous_signatures(
            &our_ca.fingerprint(),
            &ca,
            &format!("openpgp-ca@{domain}"),
            now,
        );
        let bridged =
            sealpost_trust::bridge(our_ca, &ca, &domain, at).map_err(ServiceError::internal)?;
        let record = crate::certs::record(&bridged).map_err(ServiceError::internal)?;
        store.put_remote_certs(&domain, vec![record], unix).await?;
    }
    let record = PeerRecord::new(&domain, peer.peer_id, peer.addrs, ca_fingerprint);
    let event = LogEvent::new("peer.added", actor.log_name(), &domain).with(serde_json::json!({
        "peer_id": record.peer_id, "addrs": record.addrs, "ca": record.ca_fingerprint,
    }));
    store.put_peer(record.clone(), event, unix).await?;
    Ok(record)
}

/// Removes a peering and revokes our bridge to its CA: its users are no longer authenticated
/// through us.
pub async fn remove(
    store: &dyn MetaStore,
    our_ca: &Cert,
    actor: &Actor,
    domain: &str,
    now: SystemTime,
) -> Result<(), ServiceError> {
    let domain = domain.trim().to_ascii_lowercase();
    let peer = store
        .peer(&domain)
        .await?
        .ok_or_else(|| ServiceError::UnknownPeer {
            domain: domain.clone(),
        })?;
    let unix = super::unix(now);
    if let Some(held) = store.cert_by_fingerprint(&peer.ca_fingerprint).await? {
        let ca = crate::crypto::cert_from_armored(&held).map_err(ServiceError::internal)?;
        if bridged(&ca, our_ca, &domain) {
            let at = crate::certs::after_previous_signatures(
                &our_ca.fingerprint(),
                &ca,
                &format!("openpgp-ca@{domain}"),
                now,
            );
            let revoked = sealpost_trust::revoke_bridge(our_ca, &ca, &domain, at)
                .map_err(ServiceError::internal)?;
            let record = crate::certs::record(&revoked).map_err(ServiceError::internal)?;
            store.put_remote_certs(&domain, vec![record], unix).await?;
        }
    }
    let event = LogEvent::new("peer.removed", actor.log_name(), &domain);
    store.remove_peer(&domain, event, unix).await?;
    Ok(())
}

/// Every peer with its link state and the transfers waiting for it.
pub async fn list(store: &dyn MetaStore) -> Result<Vec<PeerStatus>, ServiceError> {
    let mut out = Vec::new();
    for record in store.peers().await? {
        let queued = store.outbox_count(&record.domain).await?;
        out.push(PeerStatus { record, queued });
    }
    Ok(out)
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
    ctx: &Context,
    peer: &PeerRecord,
    armored: &[String],
) -> Result<Vec<Arc<Cert>>, CertRefusal> {
    let mut records = Vec::new();
    let mut kept = Vec::new();
    // The peer's CA certificate, read at the first certificate that needs it.
    let mut peer_ca: Option<Option<Cert>> = None;
    for a in armored {
        let cert = ctx
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
        if let Some(address) = emails.iter().find(|e| crate::domain_of(e) != peer.domain) {
            return Err(CertRefusal::OutsideDomain {
                fingerprint,
                address: address.clone(),
                domain: peer.domain.clone(),
            });
        }
        let held_text = ctx
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
                ctx.store
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
        if fingerprint == peer.ca_fingerprint && !bridged(&merged, &ctx.ca, &peer.domain) {
            let at = crate::certs::after_previous_signatures(
                &ctx.ca.fingerprint(),
                &merged,
                &format!("openpgp-ca@{}", peer.domain),
                SystemTime::now(),
            );
            merged = sealpost_trust::bridge(&ctx.ca, &merged, &peer.domain, at)
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
    if let Err(e) = ctx
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
pub fn bridged(other_ca: &Cert, our_ca: &Cert, domain: &str) -> bool {
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
    ctx: &Context,
    peer: &PeerRecord,
    address: &str,
) -> Result<Vec<Arc<Cert>>, ServiceError> {
    let held = ctx.store.certs_by_email_from(address, &peer.domain).await?;
    if held.is_empty() {
        let Some(link) = ctx.federation.get() else {
            return Err(ServiceError::FederationOff);
        };
        let wait = std::time::Duration::from_secs(ctx.config.federation.lookup_timeout_secs);
        let answer = match tokio::time::timeout(wait, link.lookup(&peer.peer_id, address)).await {
            Ok(a) => a,
            Err(_) => Err(format!("no answer within {}s", wait.as_secs())),
        }
        .map_err(|error| ServiceError::PeerUnreachable {
            domain: peer.domain.clone(),
            address: address.to_owned(),
            error,
        })?;
        let kept = accept_remote_certs(ctx, peer, &answer).await.map_err(|e| {
            ServiceError::PeerAnswerRefused {
                domain: peer.domain.clone(),
                error: e.to_string(),
            }
        })?;
        return Ok(kept);
    }
    // Parsed through the node's cache: every submission to a peer's user comes here.
    held.iter()
        .map(|a| ctx.parse_cert(a).map_err(ServiceError::internal))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule of [`add`], by the code a door reports; a good peering is stored and logged
    /// with its actor, and removing it is refused the second time.
    #[tokio::test]
    async fn peerings_are_checked_by_one_rule() {
        let (_dir, node) = crate::node::temp_node("here.test").await;
        let (_other_dir, other) = crate::node::temp_node("there.test").await;
        let st = &node.state;
        let their_ca = other.state.ca.clone().strip_secret_key_material();
        let good = NewPeer {
            domain: "There.Test".into(),
            peer_id: other.state.peer_id.clone(),
            addrs: vec!["/ip4/127.0.0.1/udp/4433/quic-v1".into()],
            ca_fingerprint: their_ca.fingerprint().to_spaced_hex(),
            ca_cert: Some(their_ca.clone()),
        };
        let with = |edit: &dyn Fn(&mut NewPeer)| {
            let mut p = good.clone();
            edit(&mut p);
            p
        };
        let cases = [
            (with(&|p| p.domain = "here.test".into()), Some("own_domain")),
            (
                with(&|p| p.domain = "not a domain".into()),
                Some("invalid_peer"),
            ),
            (with(&|p| p.peer_id = "nobody".into()), Some("invalid_peer")),
            (with(&|p| p.addrs.clear()), Some("invalid_peer")),
            (
                with(&|p| p.addrs = vec!["udp/1".into()]),
                Some("invalid_peer"),
            ),
            (
                with(&|p| p.ca_fingerprint = "ABCD".into()),
                Some("invalid_peer"),
            ),
            (
                with(&|p| p.ca_fingerprint = st.ca.fingerprint().to_hex()),
                Some("ca_mismatch"),
            ),
            (good.clone(), None),
        ];
        let now = SystemTime::now();
        for (peer, want) in cases {
            let what = format!("{peer:?}");
            let got = add(&*st.store, &st.config, &st.ca, &Actor::Cli, peer, now).await;
            assert_eq!(got.as_ref().err().map(|e| e.code()), want, "{what}");
        }
        let listed = list(&*st.store).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].record.domain, "there.test");
        assert_eq!(
            listed[0].record.ca_fingerprint,
            their_ca.fingerprint().to_hex()
        );
        let held = st
            .store
            .cert_by_fingerprint(&their_ca.fingerprint().to_hex())
            .await
            .unwrap()
            .unwrap();
        let held = crate::crypto::cert_from_armored(&held).unwrap();
        assert!(bridged(&held, &st.ca, "there.test"));

        remove(&*st.store, &st.ca, &Actor::Cli, "THERE.test", now)
            .await
            .unwrap();
        let e = remove(&*st.store, &st.ca, &Actor::Cli, "there.test", now)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "unknown_peer");
        assert!(list(&*st.store).await.unwrap().is_empty());
    }
}
