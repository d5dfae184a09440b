//! Trust verdicts for the logged-in user, and personal certifications.
//!
//! Verdicts come from [`crate::trustview::TrustView`]; this module turns them into wire form and
//! accepts certifications, introducer signatures and retractions that a user made in their
//! client. The node only stores what the user's own key verifiably signed.

use axum::Json;
use axum::extract::State;
use sealpost_trust::{Verdict, WhyNot};
use sequoia_openpgp::Fingerprint;

use super::{ApiError, ApiJson, ApiPath, ApiResult, AppState, Authed};
use crate::proto::{CertificationRequest, CertificationResponse, TrustResponse, VerdictView};
use crate::storage::{Account, LogEvent};

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

pub fn view(v: &Verdict) -> VerdictView {
    VerdictView {
        fingerprint: v.target.to_hex(),
        address: v.address.clone(),
        level: v.level.word().to_owned(),
        amount: v.amount,
        why_not: v.why_not.as_ref().map(|w| why_not_code(w).to_owned()),
        explanation: v.explain(),
    }
}

pub(super) fn viewer(account: &Account) -> ApiResult<Fingerprint> {
    account
        .fingerprint
        .as_deref()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| ApiError::forbidden("not_enrolled", "your account has no key"))
}

#[utoipa::path(
    get,
    path = "/trust/{address}",
    tag = "trust",
    summary = "Every key known for an address, with the logged-in user's verdict and each trust path in words",
    params(("address" = String, Path, description = "E-mail address")),
    responses(
        (status = 200, description = "The keys, strongest first", body = TrustResponse),
        (status = 400, description = "`invalid_address`", body = crate::proto::ErrorBody),
        (status = 403, description = "`not_enrolled`: your account has no key", body = crate::proto::ErrorBody),
        (status = 503, description = "`federation_off`, `peer_unreachable`, `peer_answer_refused`: a peered organisation's user could not be looked up", body = crate::proto::ErrorBody),
    )
)]
pub(super) async fn trust(
    State(st): State<AppState>,
    auth: Authed,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<Json<TrustResponse>> {
    let address = crate::normalize_address(&address)
        .ok_or_else(|| ApiError::bad_request("invalid_address", "not an e-mail address"))?;
    // A peered organisation's user may not be known here yet: ask its directory first.
    let domain = crate::federation::domain_of(&address);
    if domain != st.config.domain
        && let Some(peer) = st.store.peer(domain).await?
        && st
            .store
            .certs_by_email_from(&address, domain)
            .await?
            .is_empty()
    {
        crate::federation::remote_certs(&st, &peer, &address).await?;
    }
    let verdicts = st
        .trust
        .lookup(&viewer(&auth.account)?, &address)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(TrustResponse {
        keys: verdicts.iter().map(view).collect(),
    }))
}

#[utoipa::path(
    post,
    path = "/certifications",
    tag = "trust",
    summary = "Publish certifications, introducer signatures or retractions made by the logged-in user's key (only those are kept)",
    request_body = CertificationRequest,
    responses(
        (status = 200, description = "Kept", body = CertificationResponse),
        (status = 400, description = "`invalid_cert`", body = crate::proto::ErrorBody),
        (status = 404, description = "`unknown_key`: this node's directory does not hold that key", body = crate::proto::ErrorBody),
        (status = 422, description = "`rejected_update`, `nothing_new`, `not_enrolled`", body = crate::proto::ErrorBody),
    )
)]
pub(super) async fn certify(
    State(st): State<AppState>,
    auth: Authed,
    ApiJson(req): ApiJson<CertificationRequest>,
) -> ApiResult<Json<CertificationResponse>> {
    let me = st.account_cert(&auth.account)?;
    let update = crate::crypto::cert_from_armored(&req.cert)
        .map_err(|e| ApiError::bad_request("invalid_cert", format!("not a certificate: {e}")))?;
    let fpr = update.fingerprint();
    let existing = st
        .store
        .cert_by_fingerprint(&fpr.to_hex())
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "unknown_key",
                "this node's directory does not hold that key",
            )
        })?;
    let existing = crate::crypto::cert_from_armored(&existing).map_err(ApiError::internal)?;
    // Only signatures the user's own key verifiably made are kept; the directory's merge
    // policy also bounds sizes and counts.
    let limits = sealpost_directory::DirectoryConfig::new(&st.config.domain).merge_limits();
    let outcome = sealpost_directory::merge_update_verified(
        Some(&existing),
        update,
        &[(*me).clone()],
        // A certification adds signatures, never a user ID: a new user ID here would be an
        // address its uploader claims on someone's key.
        sealpost_directory::NewUserIds::None,
        &limits,
    )
    .map_err(|e| ApiError::unprocessable("rejected_update", e.to_string()))?;
    if outcome.new_signatures == 0 {
        return Err(ApiError::unprocessable(
            "nothing_new",
            "the update carries no new certification made by your key",
        ));
    }
    let record = crate::certs::record(&outcome.cert).map_err(ApiError::internal)?;
    let target = record.emails.first().cloned().unwrap_or_default();
    let event = LogEvent::new("certification", &auth.account.address, &record.fingerprint)
        .with(serde_json::json!({ "address": target, "signatures": outcome.new_signatures }));
    st.store
        .put_cert(record, "local", Some(event), crate::now())
        .await?;
    Ok(Json(CertificationResponse {
        fingerprint: fpr.to_hex(),
        added: outcome.new_signatures,
    }))
}
