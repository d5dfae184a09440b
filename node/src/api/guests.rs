//! The guest door (docs/pickup.md, "Guests"): the pickup's recipient upgrades to a key of
//! their own under the pickup session, and administrators list, disable and remove guests.
//! Each handler is a call into `service::guests`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::pickup::PickupAuthed;
use super::{AdminAuthed, ApiJson, ApiPath, ApiResult, AppState, ClientIp};
use crate::proto::*;
use crate::service::{self, Actor};

#[utoipa::path(
    post,
    path = "/pickup/upgrade",
    tag = "pickup",
    summary = "The pickup's recipient becomes a guest with a key of their own (made in the browser as at enrolment)",
    description = "Under the pickup session of an unlocked pickup. The certificate has one user ID, the pickup's address; the node keeps the wrapped key and a slow hash of the login verifier, and does not certify the key. Afterwards the guest logs in with the normal login. Rate-limited per client address.",
    security(("pickup_session" = [])),
    request_body = GuestUpgradeRequest,
    responses(
        (status = 201, description = "The guest, with their key", body = EnrollResponse),
        (status = 400, description = "`invalid_request`: a field is not base64 or has the wrong length", body = ErrorBody),
        (status = 401, description = "`pickup_session_invalid`", body = ErrorBody),
        (status = 409, description = "`guest_exists`: the address has a key here already; log in", body = ErrorBody),
        (status = 422, description = "`invalid_cert` (also: a user ID for another address), `key_not_wrapped`, `invalid_kdf_params`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody, headers(("Retry-After" = u64))),
    )
)]
pub(super) async fn upgrade(
    State(st): State<AppState>,
    ip: ClientIp,
    PickupAuthed(pickup): PickupAuthed,
    ApiJson(req): ApiJson<GuestUpgradeRequest>,
) -> ApiResult<(StatusCode, Json<EnrollResponse>)> {
    st.limit_auth(&ip)?;
    let guest = service::guests::upgrade(&st, &pickup, &req, std::time::SystemTime::now()).await?;
    Ok((StatusCode::CREATED, Json(guest)))
}

#[utoipa::path(
    get,
    path = "/admin/guests",
    tag = "admin",
    summary = "Every guest (outside addresses that upgraded from a pickup)",
    responses(
        (status = 200, description = "The guests", body = AdminGuestsResponse),
        (status = 403, description = "`not_admin`", body = ErrorBody),
    )
)]
pub(super) async fn guests(
    State(st): State<AppState>,
    _: AdminAuthed,
) -> ApiResult<Json<AdminGuestsResponse>> {
    let guests = service::guests::list(st.store.as_ref())
        .await?
        .into_iter()
        .map(|a| AdminGuest {
            address: a.address,
            state: a.state.as_str().to_owned(),
            fingerprint: a.fingerprint,
            created_at: a.created_at,
        })
        .collect();
    Ok(Json(AdminGuestsResponse { guests }))
}

#[utoipa::path(
    post,
    path = "/admin/guests/{address}/state",
    tag = "admin",
    summary = "Disable or re-enable a guest; disabling ends its sessions, and its address is reached by pickup again",
    params(("address" = String, Path, description = "The guest's e-mail address")),
    request_body = AccountStateRequest,
    responses(
        (status = 204, description = "Done"),
        (status = 400, description = "`invalid_request`: state is not active or disabled; `invalid_address`", body = ErrorBody),
        (status = 403, description = "`not_admin`", body = ErrorBody),
        (status = 404, description = "`unknown_guest`", body = ErrorBody),
    )
)]
pub(super) async fn set_guest_state(
    State(st): State<AppState>,
    AdminAuthed(auth): AdminAuthed,
    ApiPath(address): ApiPath<String>,
    ApiJson(req): ApiJson<AccountStateRequest>,
) -> ApiResult<StatusCode> {
    let enabled = super::console::enabling(&req)?;
    service::guests::set_state(
        st.store.as_ref(),
        &Actor::Admin(auth.account.address.clone()),
        &address,
        enabled,
        crate::now(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    delete,
    path = "/admin/guests/{address}",
    tag = "admin",
    summary = "Remove a guest for good: sessions, mailbox and account (its address is reached by pickup again)",
    params(("address" = String, Path, description = "The guest's e-mail address")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "`invalid_address`", body = ErrorBody),
        (status = 403, description = "`not_admin`", body = ErrorBody),
        (status = 404, description = "`unknown_guest`", body = ErrorBody),
    )
)]
pub(super) async fn remove_guest(
    State(st): State<AppState>,
    AdminAuthed(auth): AdminAuthed,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<StatusCode> {
    service::guests::remove(
        &st,
        &Actor::Admin(auth.account.address.clone()),
        &address,
        crate::now(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
