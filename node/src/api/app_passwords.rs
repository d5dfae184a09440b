//! App passwords for the submission gateway (docs/mail.md, "Submission gateway"): the
//! logged-in user makes one per mail program, lists and revokes them. Each handler is a call
//! into `service::app_passwords`. A new password is in the one answer that creates it and in
//! nothing else (no log, no URL).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::{ApiJson, ApiPath, ApiResult, AppState, Authed};
use crate::proto::ErrorBody;
use crate::proto::submission::{AppPasswordView, CreateAppPasswordRequest, CreatedAppPassword};
use crate::service;

#[utoipa::path(
    get,
    path = "/app-passwords",
    tag = "accounts",
    summary = "The logged-in user's app passwords for mail programs (never their secrets)",
    responses(
        (status = 200, description = "The live app passwords, oldest first", body = [AppPasswordView]),
    )
)]
pub(super) async fn list_app_passwords(
    State(st): State<AppState>,
    auth: Authed,
) -> ApiResult<Json<Vec<AppPasswordView>>> {
    Ok(Json(
        service::app_passwords::list(&st, &auth.account).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/app-passwords",
    tag = "accounts",
    summary = "Make an app password for a mail program: the answer holds it, shown this once",
    description = "A mail program sends through the submission gateway (`submission` in GET /org) with the user's address and this password. The node keeps only a verifier of it.",
    request_body = CreateAppPasswordRequest,
    responses(
        (status = 201, description = "Made: `password` is shown this once", body = CreatedAppPassword),
        (status = 400, description = "`invalid_label`: 1 to 64 characters, no control characters", body = ErrorBody),
        (status = 403, description = "`guest_not_allowed`", body = ErrorBody),
        (status = 409, description = "`submission_disabled`: the gateway is off; `too_many_app_passwords`: revoke one first", body = ErrorBody),
    )
)]
pub(super) async fn create_app_password(
    State(st): State<AppState>,
    auth: Authed,
    ApiJson(req): ApiJson<CreateAppPasswordRequest>,
) -> ApiResult<(StatusCode, Json<CreatedAppPassword>)> {
    let (view, password) = service::app_passwords::create(
        &st,
        &auth.account,
        &req.label,
        std::time::SystemTime::now(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedAppPassword {
            id: view.id,
            label: view.label,
            created_at: view.created_at,
            password,
        }),
    ))
}

#[utoipa::path(
    delete,
    path = "/app-passwords/{id}",
    tag = "accounts",
    summary = "Revoke one of the logged-in user's app passwords: refused by the gateway at once",
    params(("id" = i64, Path, description = "The app password's ID")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "`not_found`: you have no such (live) app password", body = ErrorBody),
    )
)]
pub(super) async fn revoke_app_password(
    State(st): State<AppState>,
    auth: Authed,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    service::app_passwords::revoke(&st, &auth.account, id, std::time::SystemTime::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
