//! Trust verdicts for the logged-in user, and personal certifications.
//!
//! Verdicts come from [`service::trust`], in wire form. Certifications, introducer signatures
//! and retractions a user made in their client are accepted here: the node only stores what
//! the user's own key verifiably signed.

use axum::Json;
use axum::extract::State;

use super::{ApiError, ApiJson, ApiPath, ApiResult, AppState, Authed};
use crate::proto::{CertificationRequest, CertificationResponse, TrustResponse};
use crate::service;
use crate::storage::LogEvent;

#[utoipa::path(
    get,
    path = "/trust/{address}",
    tag = "trust",
    summary = "Every key known for an address, with the logged-in user's verdict and each trust path in words",
    params(("address" = String, Path, description = "E-mail address")),
    responses(
        (status = 200, description = "The keys, strongest first", body = TrustResponse),
        (status = 400, description = "`invalid_address`", body = crate::proto::ErrorBody),
        (status = 403, description = "`not_enrolled`: your account has no key; `guest_not_allowed`: a guest looks up the organisation's users only", body = crate::proto::ErrorBody),
        (status = 503, description = "`federation_off`, `peer_unreachable`, `peer_answer_refused`: a peered organisation's user could not be looked up", body = crate::proto::ErrorBody),
    )
)]
pub(super) async fn trust(
    State(st): State<AppState>,
    auth: Authed,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<Json<TrustResponse>> {
    service::guests::may_look_up(&st, &auth.account, &address).await?;
    let viewer = service::trust::viewer(&auth.account)?;
    Ok(Json(TrustResponse {
        keys: service::trust::keys(&st, &viewer, &address).await?,
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
        (status = 403, description = "`guest_not_allowed`", body = crate::proto::ErrorBody),
        (status = 404, description = "`unknown_key`: this node's directory does not hold that key", body = crate::proto::ErrorBody),
        (status = 422, description = "`rejected_update`, `nothing_new`, `not_enrolled`", body = crate::proto::ErrorBody),
    )
)]
pub(super) async fn certify(
    State(st): State<AppState>,
    auth: Authed,
    ApiJson(req): ApiJson<CertificationRequest>,
) -> ApiResult<Json<CertificationResponse>> {
    service::guests::not_for_guests(&auth.account, "certify keys")?;
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
