//! Trust views: what the node's one [`TrustView`](crate::trustview::TrustView) says of a key
//! for an address, in the wire form every door shows (`VerdictView`, with a stable `why_not`
//! code), for a user (their own key is the root) or for the node (its CA is the root).

use sealpost_trust::{Verdict, WhyNot};
use sequoia_openpgp::{Cert, Fingerprint};

use super::{Context, ServiceError};
use crate::proto::VerdictView;
use crate::storage::{Account, LogEvent, Timestamp};

/// The stable code of why a key is not (fully) authenticated.
pub fn why_not_code(w: &WhyNot) -> &'static str {
    match w {
        WhyNot::Revoked { .. } => "revoked",
        WhyNot::Expired { .. } => "expired",
        WhyNot::UserIdRevoked { .. } => "user_id_revoked",
        WhyNot::Invalid { .. } => "invalid",
        WhyNot::UnknownKey => "unknown_key",
        WhyNot::AddressNotOnKey => "address_not_on_key",
        WhyNot::InvalidAddress => "invalid_address",
        WhyNot::NoPath => "no_path",
        WhyNot::NotEnough { .. } => "not_enough",
        WhyNot::Conflict { .. } => "conflict",
        _ => "other",
    }
}

/// A verdict in wire form.
pub fn view(v: &Verdict) -> VerdictView {
    view_noting(v, None)
}

/// [`view`], with the viewer's own certification described as `direct` (see
/// [`Verdict::explain_noting`]).
fn view_noting(v: &Verdict, direct: Option<&str>) -> VerdictView {
    VerdictView {
        fingerprint: v.target.to_hex(),
        address: v.address.clone(),
        level: v.level.word().to_owned(),
        amount: v.amount,
        why_not: v.why_not.as_ref().map(|w| why_not_code(w).to_owned()),
        explanation: v.explain_noting(direct),
    }
}

/// A verdict for `viewer` in wire form, telling a path made of the viewer's own certification
/// of a guest's key "first contact by Message Unlock Code" when that certification says so
/// (docs/pickup.md, "Guests").
pub async fn view_for(
    ctx: &Context,
    viewer: &Fingerprint,
    v: &Verdict,
) -> Result<VerdictView, ServiceError> {
    let direct = v
        .paths
        .iter()
        .any(|p| p.hops.len() == 2 && p.hops[0].role == sealpost_trust::HopRole::You);
    if !direct {
        return Ok(view(v));
    }
    let how = match ctx.store.cert_by_fingerprint(&v.target.to_hex()).await? {
        Some(armored) => crate::crypto::cert_from_armored(&armored)
            .ok()
            .and_then(|c| sealpost_trust::first_contact(&c, viewer, &v.address)),
        None => None,
    };
    let note = match how.as_deref() {
        Some(sealpost_trust::FIRST_CONTACT_MUC) => Some("first contact by Message Unlock Code"),
        _ => None,
    };
    Ok(view_noting(v, note))
}

/// The root of an account's trust view: its own key.
pub fn viewer(account: &Account) -> Result<Fingerprint, ServiceError> {
    account
        .fingerprint
        .as_deref()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| ServiceError::NotEnrolled {
            address: account.address.clone(),
        })
}

/// How `viewer` rates `cert` as the key of `address`.
pub async fn verdict(
    ctx: &Context,
    viewer: &Fingerprint,
    cert: &Cert,
    address: &str,
) -> Result<Verdict, ServiceError> {
    let verdict = ctx
        .trust
        .authenticate(viewer, &cert.fingerprint(), address)
        .await
        .map_err(ServiceError::internal);
    ctx.metrics.trust_lookup(match &verdict {
        Ok(v) => v.level.word(),
        Err(_) => "error",
    });
    verdict
}

/// Every key claiming `address`, with its verdict for `viewer`. A peered organisation's user
/// this node holds no key of is asked of their node first.
pub async fn keys(
    ctx: &Context,
    viewer: &Fingerprint,
    address: &str,
) -> Result<Vec<VerdictView>, ServiceError> {
    let address = crate::normalize_address(address)
        .ok_or_else(|| ServiceError::InvalidAddress(address.to_owned()))?;
    let domain = crate::domain_of(&address);
    if domain != ctx.config.domain
        && let Some(peer) = ctx.store.peer(domain).await?
        && ctx
            .store
            .certs_by_email_from(&address, domain)
            .await?
            .is_empty()
    {
        super::peers::remote_certs(ctx, &peer, &address).await?;
    }
    let verdicts = ctx
        .trust
        .lookup(viewer, &address)
        .await
        .map_err(ServiceError::internal)?;
    let mut views = Vec::with_capacity(verdicts.len());
    for v in verdicts.iter() {
        views.push(view_for(ctx, viewer, v).await?);
    }
    Ok(views)
}

/// What a certification added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certified {
    /// The certified key's fingerprint.
    pub fingerprint: String,
    /// How many new signatures by `account`'s key were kept.
    pub added: usize,
}

/// Keeps the certifications, introducer signatures and retractions by `account`'s own key
/// that `armored` (an update of a key the directory holds) carries; nothing else of it. A
/// certification adds signatures, never a user ID: a new user ID here would be an address its
/// uploader claims on someone's key. The log records it with `account` as the actor.
pub async fn certify(
    ctx: &Context,
    account: &Account,
    armored: &str,
    now: Timestamp,
) -> Result<Certified, ServiceError> {
    let me = ctx.account_cert(account)?;
    let update = crate::crypto::cert_from_armored(armored)
        .map_err(|e| ServiceError::NotACertificate(e.to_string()))?;
    let fpr = update.fingerprint();
    let existing = ctx
        .store
        .cert_by_fingerprint(&fpr.to_hex())
        .await?
        .ok_or(ServiceError::UnknownKey)?;
    let existing = crate::crypto::cert_from_armored(&existing).map_err(ServiceError::internal)?;
    // Only signatures the user's own key verifiably made are kept; the directory's merge
    // policy also bounds sizes and counts.
    let limits = sealpost_directory::DirectoryConfig::new(&ctx.config.domain).merge_limits();
    let outcome = sealpost_directory::merge_update_verified(
        Some(&existing),
        update,
        &[(*me).clone()],
        sealpost_directory::NewUserIds::None,
        &limits,
    )
    .map_err(|e| ServiceError::RejectedUpdate(e.to_string()))?;
    if outcome.new_signatures == 0 {
        return Err(ServiceError::NothingNew);
    }
    let record = crate::certs::record(&outcome.cert).map_err(ServiceError::internal)?;
    let target = record.emails.first().cloned().unwrap_or_default();
    let event = LogEvent::new("certification", &account.address, &record.fingerprint)
        .with(serde_json::json!({ "address": target, "signatures": outcome.new_signatures }));
    ctx.store
        .put_cert(record, "local", Some(event), now)
        .await?;
    Ok(Certified {
        fingerprint: fpr.to_hex(),
        added: outcome.new_signatures,
    })
}
