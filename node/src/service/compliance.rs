//! The organisation's compliance key (docs/compliance.md, "Compliance key"): installing it,
//! the active one, and which compliance keys a message must be encrypted to.
//!
//! - [`install`]: an admin hands in a public certificate (made elsewhere: the node never holds
//!   the compliance secret key); it must be fit (public only, v4, an encryption key valid
//!   now, the one user ID `Compliance archive <compliance@DOMAIN>`); the CA marks it
//!   (`sealpost_trust::certify_compliance`, notation `compliance@sealpost.org=archive`); the
//!   certified certificate becomes the active key, stored for the directory, in one commit
//!   with its log entry `compliance.key_installed`.
//! - [`current`]: the active key, kept in memory while the certificate generation stands still.
//! - [`of_peer`]: a peered organisation's compliance key, as we hold it (learned through its
//!   directory over federation) and as its CA marks it.
//! - [`required`]: the compliance keys a message from a source must be encrypted to, which
//!   `accept` checks on every part's PKESKs (`missing_compliance_recipient`).
//!
//! Every key handed out or required passes `sealpost_proto::crypto::compliance_key_of` with
//! the CA of its domain: never a key from unsigned data.

use std::sync::Arc;
use std::time::SystemTime;

use sequoia_openpgp::Cert;
use sequoia_openpgp::parse::Parse;

use super::{Actor, Context, ServiceError};
use crate::config::Config;
use crate::crypto;
use crate::proto::ComplianceKeyRef;
use crate::storage::{LogEvent, MetaStore, PeerRecord};

/// The largest certificate [`install`] takes.
pub const MAX_CERT_BYTES: usize = 64 * 1024;

/// A compliance key as the node uses it: its organisation's domain, the certified public
/// certificate (armored and parsed).
#[derive(Clone, Debug)]
pub struct ComplianceKey {
    pub domain: String,
    /// Upper-case hex fingerprint.
    pub fingerprint: String,
    pub armored: String,
    pub cert: Arc<Cert>,
    pub installed_at: i64,
}

impl ComplianceKey {
    /// As an envelope answer lists it.
    pub fn to_ref(&self, ca_cert: Option<String>) -> ComplianceKeyRef {
        ComplianceKeyRef {
            domain: self.domain.clone(),
            fingerprint: self.fingerprint.clone(),
            cert: self.armored.clone(),
            ca_cert,
        }
    }
}

/// Checks `cert_bytes` (armored or binary public certificate) as the organisation's
/// compliance key, has the CA mark it, and makes it the active key (retiring the one before).
pub async fn install(
    store: &dyn MetaStore,
    config: &Config,
    ca: &Cert,
    actor: &Actor,
    cert_bytes: &[u8],
    now: SystemTime,
) -> Result<ComplianceKey, ServiceError> {
    let policy = sequoia_openpgp::policy::StandardPolicy::new();
    let bad = |m: String| Err(ServiceError::InvalidComplianceKey(m));
    if cert_bytes.len() > MAX_CERT_BYTES {
        return bad(format!("larger than {MAX_CERT_BYTES} bytes"));
    }
    let cert = match Cert::from_bytes(cert_bytes) {
        Ok(c) => c,
        Err(e) => return bad(format!("not an OpenPGP certificate: {e}")),
    };
    if cert.is_tsk() {
        return bad(
            "it holds secret key material: hand in the public certificate only (the node \
             never keeps the compliance secret key)"
                .into(),
        );
    }
    if cert.primary_key().key().version() != 4 {
        return bad("the key must be OpenPGP version 4".into());
    }
    let domain = config.domain.to_ascii_lowercase();
    let address = crypto::compliance_address(&domain);
    let wanted = format!("Compliance archive <{address}>");
    if cert.userids().count() != 1
        || cert
            .userids()
            .any(|u| u.userid().value() != wanted.as_bytes())
    {
        return bad(format!("its one user ID must be {wanted:?}"));
    }
    if store.account_by_address(&address).await?.is_some() {
        return bad(format!(
            "{address} is an account's address: the compliance address must be no one's"
        ));
    }
    // The one rule a sender encrypts by (`crypto::encryption_key_handles`).
    if crypto::valid_cert(&cert, &policy, now).is_none() {
        return bad("it is not valid now (expired, revoked or malformed)".into());
    }
    if crypto::encryption_key_handles(&cert, &policy, now).is_empty() {
        return bad("it has no encryption key valid now".into());
    }
    // Merged with what we hold of it (a re-install keeps earlier signatures), then marked.
    let held = store
        .cert_by_fingerprint(&cert.fingerprint().to_hex())
        .await?
        .and_then(|a| crypto::cert_from_armored(&a).ok());
    let cert = match held {
        Some(h) => h.merge_public(cert).map_err(ServiceError::internal)?,
        None => cert,
    };
    let at = crate::certs::after_previous_signatures(&ca.fingerprint(), &cert, &address, now);
    let marked = sealpost_trust::certify_compliance(ca, &cert, &address, at)
        .map_err(ServiceError::internal)?;
    crypto::compliance_key_of(&marked, ca, &domain, &policy, at)
        .map_err(|e| ServiceError::InvalidComplianceKey(e.to_string()))?;
    let record = crate::certs::record(&marked).map_err(ServiceError::internal)?;
    let fingerprint = record.fingerprint.clone();
    let armored = record.armored.clone();
    let unix = super::unix(now);
    let event = LogEvent::new("compliance.key_installed", actor.log_name(), &address)
        .with(serde_json::json!({ "fingerprint": fingerprint }));
    store.install_compliance_key(record, event, unix).await?;
    tracing::info!(%fingerprint, "compliance key installed");
    Ok(ComplianceKey {
        domain,
        fingerprint,
        armored,
        cert: Arc::new(marked),
        installed_at: unix,
    })
}

/// How long a peer that published no compliance key is not asked again.
pub const ASK_AGAIN_SECS: i64 = 300;

/// When `domain` was last asked for its compliance key and had none, if within
/// [`ASK_AGAIN_SECS`] of `now`.
fn asked_recently(ctx: &Context, domain: &str, now: i64) -> Option<i64> {
    let asked = ctx.compliance_asked.lock().expect("not poisoned");
    asked
        .get(domain)
        .copied()
        .filter(|t| now.saturating_sub(*t) < ASK_AGAIN_SECS)
}

/// The organisation's active compliance key, if one is installed. Read again only when the
/// certificate generation moved (an install writes the certificate too, from any process).
pub async fn current(ctx: &Context) -> Result<Option<Arc<ComplianceKey>>, ServiceError> {
    let generation = ctx.store.cert_generation().await?;
    if let Some((g, key)) = ctx.compliance_cache.lock().expect("not poisoned").as_ref()
        && *g == generation
    {
        return Ok(key.clone());
    }
    let key = match ctx.store.compliance_key().await? {
        None => None,
        Some(row) => {
            let cert = crypto::cert_from_armored(&row.cert).map_err(ServiceError::internal)?;
            Some(Arc::new(ComplianceKey {
                domain: ctx.config.domain.to_ascii_lowercase(),
                fingerprint: row.fingerprint,
                armored: row.cert,
                cert: Arc::new(cert),
                installed_at: row.installed_at,
            }))
        }
    };
    *ctx.compliance_cache.lock().expect("not poisoned") = Some((generation, key.clone()));
    Ok(key)
}

/// The last active key [`current`] read (for the organisation record, which is built without
/// waiting: its doors call [`current`] first).
pub fn last_known(ctx: &Context) -> Option<Arc<ComplianceKey>> {
    ctx.compliance_cache
        .lock()
        .expect("not poisoned")
        .as_ref()
        .and_then(|(_, k)| k.clone())
}

/// The compliance key of the peered organisation `peer`, if it publishes one that its CA (as
/// we hold it) marks. `fetch`: ask the peer's directory over federation when we hold none
/// (the envelope request); otherwise only what we hold (accepting a message: no network).
pub async fn of_peer(
    ctx: &Context,
    peer: &PeerRecord,
    fetch: bool,
    now: SystemTime,
) -> Result<Option<(ComplianceKey, Arc<Cert>)>, ServiceError> {
    let address = crypto::compliance_address(&peer.domain);
    let mut certs: Vec<Arc<Cert>> = ctx
        .store
        .certs_by_email_from(&address, &peer.domain)
        .await?
        .iter()
        .map(|a| ctx.parse_cert(a).map_err(ServiceError::internal))
        .collect::<Result<_, _>>()?;
    let unix = super::unix(now);
    if certs.is_empty() && fetch && asked_recently(ctx, &peer.domain, unix).is_none() {
        // Asked at most once per `ASK_AGAIN_SECS` while it has none (an empty answer is not
        // kept as certificates are); a peer that does not answer publishes none for now: its
        // node refuses what lacks a key it requires, and the sender is told.
        match super::peers::remote_certs(ctx, peer, &address).await {
            Ok(found) => certs = found,
            Err(e) => {
                tracing::debug!(domain = %peer.domain, error = %e, "no compliance key learned")
            }
        }
        if certs.is_empty() {
            ctx.compliance_asked
                .lock()
                .expect("not poisoned")
                .insert(peer.domain.clone(), unix);
        }
    }
    if certs.is_empty() {
        return Ok(None);
    }
    let Some(ca) = ctx
        .store
        .cert_by_fingerprint(&peer.ca_fingerprint)
        .await?
        .and_then(|a| crypto::cert_from_armored(&a).ok())
    else {
        return Ok(None);
    };
    for cert in certs {
        if crypto::compliance_key_of(&cert, &ca, &peer.domain, &ctx.policy, now).is_ok() {
            let armored = crypto::cert_to_armored(&cert).map_err(ServiceError::internal)?;
            return Ok(Some((
                ComplianceKey {
                    domain: peer.domain.clone(),
                    fingerprint: cert.fingerprint().to_hex(),
                    armored,
                    cert,
                    installed_at: 0,
                },
                Arc::new(ca),
            )));
        }
    }
    Ok(None)
}

/// After a transfer from `domain`'s node was accepted: learn that organisation's compliance key
/// when we hold none (asked as for an envelope; looked at most once per [`ASK_AGAIN_SECS`] per
/// peer, whatever the outcome), in the background, so that the receipt does not wait on a look-up. From then on
/// our users' readers name its archive ([`copies_of`]) and its transfers must carry it
/// ([`required`]). Without this a node that only receives from a peer never held the key: its
/// recipients were not told the sender's archive had a copy.
pub fn learn_from_sender(ctx: Arc<Context>, domain: String, now: SystemTime) {
    if asked_recently(&ctx, &domain, super::unix(now)).is_some() {
        return;
    }
    tokio::spawn(async move {
        let learned = async {
            if let Some(peer) = ctx.store.peer(&domain).await? {
                of_peer(&ctx, &peer, true, now).await?;
            }
            Ok::<(), ServiceError>(())
        };
        if let Err(e) = learned.await {
            tracing::debug!(%domain, error = %e, "the sender organisation's compliance key was not learned");
        }
        // Learned or not, not again for `ASK_AGAIN_SECS`: not one look-up per transfer.
        ctx.compliance_asked
            .lock()
            .expect("not poisoned")
            .insert(domain, super::unix(now));
    });
}

/// The compliance keys of the peered organisations among `domains` (each once; ours and
/// domains that are not peers skipped), with the CA that marks each, by [`of_peer`].
async fn of_peers(
    ctx: &Context,
    domains: &[&str],
    fetch: bool,
    now: SystemTime,
) -> Result<Vec<(ComplianceKey, Arc<Cert>)>, ServiceError> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for domain in domains {
        if *domain == ctx.config.domain || !seen.insert(*domain) {
            continue;
        }
        let Some(peer) = ctx.store.peer(domain).await? else {
            continue;
        };
        out.extend(of_peer(ctx, &peer, fetch, now).await?);
    }
    Ok(out)
}

/// The compliance keys a message must be encrypted to: ours when one is installed and
/// `[compliance] required`, and each of `peer_domains`' (the peered organisations of its
/// sender or recipients) that they publish and we hold.
pub async fn required(
    ctx: &Context,
    peer_domains: &[&str],
    now: SystemTime,
) -> Result<Vec<ComplianceKey>, ServiceError> {
    let mut keys = Vec::new();
    if ctx.config.compliance.required
        && let Some(ours) = current(ctx).await?
    {
        keys.push((*ours).clone());
    }
    for (key, _) in of_peers(ctx, peer_domains, false, now).await? {
        keys.push(key);
    }
    Ok(keys)
}

/// The compliance keys an envelope answer lists for a sender writing to `peer_domains`: ours
/// (when installed, even if not required: clients encrypt to it) and each peer's that it
/// publishes (asked over federation when not held), each with the CA that marks it for a
/// peer (carrying our bridge, by which the client checks it).
pub async fn for_envelope(
    ctx: &Context,
    peer_domains: &[&str],
    now: SystemTime,
) -> Result<Vec<ComplianceKeyRef>, ServiceError> {
    let mut out = Vec::new();
    if let Some(ours) = current(ctx).await? {
        out.push(ours.to_ref(None));
    }
    for (key, ca) in of_peers(ctx, peer_domains, true, now).await? {
        let ca = crypto::cert_to_armored(&ca).map_err(ServiceError::internal)?;
        out.push(key.to_ref(Some(ca)));
    }
    Ok(out)
}

/// The organisations whose compliance archive a stored message's head (part 0) is encrypted
/// to: ours, and the peers' whose compliance keys we hold, each named once by domain. Read
/// from the part's PKESKs (no decryption), against the keys known now: the reader's client
/// says so ("a copy went to the compliance archive of …").
pub async fn copies_of(
    ctx: &Context,
    message_id: &str,
    now: SystemTime,
) -> Result<Vec<String>, ServiceError> {
    let mut keys: Vec<ComplianceKey> = current(ctx)
        .await?
        .map(|k| (*k).clone())
        .into_iter()
        .collect();
    for peer in ctx.store.peers().await? {
        if let Some((key, _)) = of_peer(ctx, &peer, false, now).await? {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let recipients = match ctx.store.part(message_id, 0).await? {
        None => return Ok(Vec::new()),
        Some(crate::storage::PartData::Inline(bytes)) => {
            ctx.part_recipients(Some(&bytes), [0; 32]).await?
        }
        Some(crate::storage::PartData::Blob { sha256, .. }) => {
            ctx.part_recipients(None, sha256).await?
        }
    };
    // A part that is not an OpenPGP message names no archive.
    let Ok(recipients) = recipients else {
        return Ok(Vec::new());
    };
    let mut domains = Vec::new();
    for k in keys {
        let facts = ctx.cert_facts(&k.cert, now);
        let missing = crypto::missing_recipients_among(
            &recipients,
            [(k.cert.fingerprint(), facts.encryption.as_slice())],
        );
        if missing.is_empty() && !domains.contains(&k.domain) {
            domains.push(k.domain);
        }
    }
    Ok(domains)
}
