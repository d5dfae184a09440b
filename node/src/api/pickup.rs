//! The pickup door (docs/pickup.md): the outside recipient's routes (open, unlock, parts,
//! with a pickup session as Bearer) and the sender's (withdraw, re-lock). Each is a call into
//! `service::pickup`; what is here is HTTP: the per-IP limit on open and unlock, the pickup
//! session's extractor, and streaming a part.
//!
//! Tokens, verifiers and sessions travel only in bodies and the `Authorization` header, never
//! in a URL, and are not logged (errors carry codes, not values).

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::Response;

use super::{ApiError, ApiJson, ApiPath, ApiResult, AppState, Authed, ClientIp};
use crate::proto::*;
use crate::service::{self, ServiceError};
use crate::storage::pickup::PickupRecord;

/// Every open and unlock counts against the caller's address, across pickups.
fn limit(st: &AppState, ip: &ClientIp) -> ApiResult<()> {
    let Some(ip) = ip.0 else {
        return Ok(());
    };
    st.pickup_ips
        .check(ip, crate::now().max(0) as u64)
        .map_err(|retry| {
            ApiError::too_many(
                "too_many_attempts",
                format!("too many attempts from your address: wait {retry} s"),
                retry,
            )
        })
}

#[utoipa::path(
    post,
    path = "/pickup/open",
    tag = "pickup",
    summary = "What a pickup link leads to, before the unlock code (changes nothing)",
    description = "The token is the link's fragment (base64url). Counts against the caller's address (`pickup.per_ip_per_minute`).",
    security(()),
    request_body = PickupOpenRequest,
    responses(
        (status = 200, description = "The pickup: sender, expiry, derivation parameters, attempts left", body = PickupInfo),
        (status = 404, description = "`pickup_not_found`", body = ErrorBody),
        (status = 410, description = "`pickup_expired`, `pickup_withdrawn`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts` (Retry-After)", body = ErrorBody),
    )
)]
pub(super) async fn open(
    State(st): State<AppState>,
    ip: ClientIp,
    ApiJson(req): ApiJson<PickupOpenRequest>,
) -> ApiResult<Json<PickupInfo>> {
    limit(&st, &ip)?;
    Ok(Json(
        service::pickup::open(&st, &req.token, crate::now()).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/pickup/unlock",
    tag = "pickup",
    summary = "Prove the unlock code's verifier: a pickup session and what decrypts the message",
    description = "A wrong code counts against the pickup (`pickup.max_wrong`, then locked even for the right code) and against the caller's address.",
    security(()),
    request_body = PickupUnlockRequest,
    responses(
        (status = 200, description = "Unlocked", body = PickupUnlocked),
        (status = 400, description = "`invalid_request`: the verifier is not 32 bytes of base64", body = ErrorBody),
        (status = 401, description = "`wrong_unlock_code`, with `attempts_left`", body = ErrorBody),
        (status = 403, description = "`pickup_locked`: the sender must issue a new code", body = ErrorBody),
        (status = 404, description = "`pickup_not_found`", body = ErrorBody),
        (status = 410, description = "`pickup_expired`, `pickup_withdrawn`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts` (Retry-After)", body = ErrorBody),
    )
)]
pub(super) async fn unlock(
    State(st): State<AppState>,
    ip: ClientIp,
    ApiJson(req): ApiJson<PickupUnlockRequest>,
) -> ApiResult<Json<PickupUnlocked>> {
    limit(&st, &ip)?;
    Ok(Json(
        service::pickup::unlock(&st, &req.token, &req.verifier, crate::now()).await?,
    ))
}

/// A request with a live pickup session (`Authorization: Bearer`), scoped to its pickup.
pub struct PickupAuthed(pub PickupRecord);

impl FromRequestParts<AppState> for PickupAuthed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ServiceError::PickupSessionInvalid)?;
        Ok(PickupAuthed(
            service::pickup::session(st, bearer, crate::now()).await?,
        ))
    }
}

#[utoipa::path(
    get,
    path = "/pickup/parts/{index}",
    // Not `part`: the mailbox's `/messages/{id}/parts/{index}` has that operation ID.
    operation_id = "pickup_part",
    tag = "pickup",
    summary = "Stream one encrypted part of the pickup session's message",
    description = "Part 0 (the sealed head), fetched the first time, marks the pickup read.",
    security(("pickup_session" = [])),
    params(("index" = u32, Path, description = "Part index (0 is the sealed head)")),
    responses(
        (status = 200, description = "The part's ciphertext", content_type = "application/octet-stream"),
        (status = 401, description = "`pickup_session_invalid`", body = ErrorBody),
        (status = 404, description = "`unknown_part`", body = ErrorBody),
    )
)]
pub(super) async fn part(
    State(st): State<AppState>,
    PickupAuthed(pickup): PickupAuthed,
    ApiPath(index): ApiPath<u32>,
) -> ApiResult<Response> {
    let data = service::pickup::part(&st, &pickup, index, crate::now()).await?;
    super::mail::part_response(&st, data).await
}

#[utoipa::path(
    post,
    path = "/messages/{id}/pickups/withdraw",
    tag = "pickup",
    summary = "Withdraw an unread pickup of your message (its key material is deleted)",
    params(("id" = String, Path, description = "Message ID")),
    request_body = PickupWithdrawRequest,
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 404, description = "`unknown_pickup`", body = ErrorBody),
        (status = 409, description = "`pickup_not_unread`: read, expired or withdrawn already", body = ErrorBody),
    )
)]
pub(super) async fn withdraw(
    State(st): State<AppState>,
    auth: Authed,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<PickupWithdrawRequest>,
) -> ApiResult<StatusCode> {
    service::pickup::withdraw(&st, &auth.account, &id, &req.address, crate::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/messages/{id}/pickups/relock",
    tag = "pickup",
    summary = "A new unlock code for an unread (usually locked) pickup of your message",
    description = "The same pickup key, locked anew by the sender's client; wrong attempts reset, the state returns to `notified`, the link stays.",
    params(("id" = String, Path, description = "Message ID")),
    request_body = PickupRelockRequest,
    responses(
        (status = 204, description = "Re-locked"),
        (status = 404, description = "`unknown_pickup`", body = ErrorBody),
        (status = 409, description = "`pickup_not_unread`", body = ErrorBody),
        (status = 422, description = "`invalid_pickup_seal`", body = ErrorBody),
    )
)]
pub(super) async fn relock(
    State(st): State<AppState>,
    auth: Authed,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<PickupRelockRequest>,
) -> ApiResult<StatusCode> {
    service::pickup::relock(&st, &auth.account, &id, &req, crate::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
