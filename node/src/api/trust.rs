//! Trust verdicts for the logged-in user, and personal certifications.
//!
//! Verdicts come from [`service::trust`], in wire form; certifications, introducer signatures
//! and retractions a user made in their client go to [`service::trust::certify`], which keeps
//! only what the user's own key verifiably signed.

use axum::Json;
use axum::extract::State;

use super::{ApiJson, ApiPath, ApiResult, AppState, Authed};
use crate::proto::{CertificationRequest, CertificationResponse, TrustResponse};
use crate::service;

#[utoipa::path(
    get,
    path = "/trust/{address}",
    tag = "trust",
    summary = "Every key known for an address, with the logged-in user's verdict and each trust path in words",
    params(("address" = String, Path, description = "E-mail address")),
    responses(
        (status = 200, description = "The keys, strongest first", body = TrustResponse),
        (status = 400, description = "`invalid_address`", body = crate::proto::ErrorBody),
        (status = 409, description = "`not_enrolled`: your account has no key", body = crate::proto::ErrorBody),
        (status = 403, description = "`guest_not_allowed`: a guest looks up the organisation's users only", body = crate::proto::ErrorBody),
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
        (status = 409, description = "`not_enrolled`: your account has no key", body = crate::proto::ErrorBody),
        (status = 422, description = "`rejected_update`, `nothing_new`", body = crate::proto::ErrorBody),
    )
)]
pub(super) async fn certify(
    State(st): State<AppState>,
    auth: Authed,
    ApiJson(req): ApiJson<CertificationRequest>,
) -> ApiResult<Json<CertificationResponse>> {
    service::guests::not_for_guests(&auth.account, "certify keys")?;
    let certified = service::trust::certify(&st, &auth.account, &req.cert, crate::now()).await?;
    Ok(Json(CertificationResponse {
        fingerprint: certified.fingerprint,
        added: certified.added,
    }))
}
