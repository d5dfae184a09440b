//! The compliance key's custody under dual control (docs/compliance.md, "Dual control"): the
//! admin's doors (officers, setup) and the officers' (custody, cases, release, reading, the
//! envelope-data search). Each handler is a call into `service::custody`; [`OfficerAuthed`]
//! refuses everyone else before a body is read.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;

use super::{AdminAuthed, ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Authed};
use crate::proto::ErrorBody;
use crate::proto::custody::{
    ApproveCaseRequest, ArchiveItem, ArchivePending, ArchiveSearch, CasePartQuery, CaseRelease,
    CaseReport, CaseView, ComplianceOpen, CustodySetupRequest, CustodyView, HoldRequest,
    NewCaseRequest, OfficerView,
};
use crate::service::{self, Actor};

/// The routes of this module, relative to the API prefix (see `api::routes`).
pub(super) fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(compliance_officers))
        .routes(routes!(add_compliance_officer, remove_compliance_officer))
        .routes(routes!(setup_custody))
        .routes(routes!(compliance_custody))
        .routes(routes!(compliance_cases, request_case))
        .routes(routes!(approve_case))
        .routes(routes!(refuse_case))
        .routes(routes!(place_hold, lift_hold))
        .routes(routes!(release_case))
        .routes(routes!(case_message))
        .routes(routes!(compliance_archive))
        .routes(routes!(compliance_archive_pending))
        .routes(routes!(case_report))
        .routes(routes!(message_compliance_opens))
}

/// A request of a compliance officer: a session of an active account flagged as officer.
pub struct OfficerAuthed(pub Authed);

impl FromRequestParts<AppState> for OfficerAuthed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let auth = Authed::from_request_parts(parts, state).await?;
        service::custody::require_officer(&*state.store, &auth.account).await?;
        Ok(OfficerAuthed(auth))
    }
}

#[utoipa::path(
    get,
    path = "/admin/compliance/officers",
    tag = "admin",
    summary = "The compliance officers",
    responses((status = 200, description = "Officers, in the order they were made officers", body = [OfficerView]))
)]
pub(super) async fn compliance_officers(
    State(st): State<AppState>,
    _admin: AdminAuthed,
) -> ApiResult<Json<Vec<OfficerView>>> {
    Ok(Json(service::custody::officers(&*st.store).await?))
}

#[utoipa::path(
    put,
    path = "/admin/compliance/officers/{address}",
    tag = "admin",
    summary = "Make a user a compliance officer",
    description = "An officer holds a share of the compliance key only after the key is split anew (POST /admin/compliance/custody).",
    params(("address" = String, Path, description = "The user's address")),
    responses(
        (status = 204, description = "An officer now"),
        (status = 404, description = "`unknown_user`", body = ErrorBody),
        (status = 403, description = "`guest_not_allowed`", body = ErrorBody),
        (status = 409, description = "`not_enrolled`", body = ErrorBody),
    )
)]
pub(super) async fn add_compliance_officer(
    State(st): State<AppState>,
    AdminAuthed(admin): AdminAuthed,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let actor = Actor::Admin(admin.account.address.clone());
    service::custody::set_officer(
        &*st.store,
        &actor,
        &address,
        true,
        std::time::SystemTime::now(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    delete,
    path = "/admin/compliance/officers/{address}",
    tag = "admin",
    summary = "Remove a compliance officer",
    description = "Their share stays in the current split until the key is split anew without them: do that next.",
    params(("address" = String, Path, description = "The officer's address")),
    responses(
        (status = 204, description = "No longer an officer"),
        (status = 404, description = "`unknown_user`", body = ErrorBody),
    )
)]
pub(super) async fn remove_compliance_officer(
    State(st): State<AppState>,
    AdminAuthed(admin): AdminAuthed,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let actor = Actor::Admin(admin.account.address.clone());
    service::custody::set_officer(
        &*st.store,
        &actor,
        &address,
        false,
        std::time::SystemTime::now(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/admin/compliance/custody",
    tag = "admin",
    summary = "Put the compliance key under dual control (or split it anew)",
    description = "The admin's browser made the key, locked its TSK under a random secret S, split S M-of-N and encrypted each share to one officer's key. The node checks the key is locked, each share is encrypted to its officer, and stores them; it never sees S.",
    request_body = CustodySetupRequest,
    responses(
        (status = 201, description = "Under custody", body = CustodyView),
        (status = 400, description = "`invalid_custody`, `invalid_address`", body = ErrorBody),
    )
)]
pub(super) async fn setup_custody(
    State(st): State<AppState>,
    AdminAuthed(admin): AdminAuthed,
    ApiJson(req): ApiJson<CustodySetupRequest>,
) -> ApiResult<(StatusCode, Json<CustodyView>)> {
    let actor = Actor::Admin(admin.account.address.clone());
    let view = service::custody::setup(&st, &actor, &req, std::time::SystemTime::now()).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(
    get,
    path = "/compliance/custody",
    tag = "compliance",
    summary = "The key under custody, with the caller's own wrapped share",
    responses(
        (status = 200, description = "The custody", body = CustodyView),
        (status = 403, description = "`not_officer`", body = ErrorBody),
        (status = 409, description = "`no_custody`", body = ErrorBody),
    )
)]
pub(super) async fn compliance_custody(
    State(st): State<AppState>,
    OfficerAuthed(auth): OfficerAuthed,
) -> ApiResult<Json<CustodyView>> {
    Ok(Json(
        service::custody::custody_view(&st, Some(&auth.account)).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/compliance/cases",
    tag = "compliance",
    summary = "Access cases, newest first (at most 500)",
    responses(
        (status = 200, description = "The cases", body = [CaseView]),
        (status = 403, description = "`not_officer`", body = ErrorBody),
    )
)]
pub(super) async fn compliance_cases(
    State(st): State<AppState>,
    OfficerAuthed(auth): OfficerAuthed,
) -> ApiResult<Json<Vec<CaseView>>> {
    Ok(Json(service::custody::cases(&st, &auth.account).await?))
}

#[utoipa::path(
    post,
    path = "/compliance/cases",
    tag = "compliance",
    summary = "Request access to messages under a case reference",
    request_body = NewCaseRequest,
    responses(
        (status = 201, description = "Requested (logged `compliance.case_requested`)", body = CaseView),
        (status = 400, description = "`invalid_case`", body = ErrorBody),
        (status = 403, description = "`not_officer`, `no_share`", body = ErrorBody),
        (status = 409, description = "`no_custody`", body = ErrorBody),
    )
)]
pub(super) async fn request_case(
    State(st): State<AppState>,
    OfficerAuthed(auth): OfficerAuthed,
    ApiJson(req): ApiJson<NewCaseRequest>,
) -> ApiResult<(StatusCode, Json<CaseView>)> {
    let view = service::custody::request(
        &st,
        &auth.account,
        &req.case_ref,
        &req.message_ids,
        &req.request_key,
        std::time::SystemTime::now(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(
    post,
    path = "/compliance/cases/{id}/approve",
    tag = "compliance",
    summary = "Approve another officer's case with one's share encrypted to its request key",
    params(("id" = i64, Path, description = "The case")),
    request_body = ApproveCaseRequest,
    responses(
        (status = 200, description = "Approved (logged `compliance.case_approved`)", body = CaseView),
        (status = 400, description = "`invalid_case`: the share is not encrypted to the request key", body = ErrorBody),
        (status = 403, description = "`not_officer`, `own_case`, `no_share`", body = ErrorBody),
        (status = 404, description = "`unknown_case`", body = ErrorBody),
        (status = 409, description = "`already_approved`, `case_closed`", body = ErrorBody),
    )
)]
pub(super) async fn approve_case(
    State(st): State<AppState>,
    OfficerAuthed(auth): OfficerAuthed,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<ApproveCaseRequest>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(
        service::custody::approve(
            &st,
            &auth.account,
            id,
            &req.share,
            std::time::SystemTime::now(),
        )
        .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/compliance/cases/{id}/hold",
    tag = "compliance",
    summary = "Place a legal hold on a case: its messages never expire while it stands",
    params(("id" = i64, Path, description = "The case")),
    request_body = HoldRequest,
    responses(
        (status = 200, description = "Held (logged `compliance.hold_placed`)", body = CaseView),
        (status = 400, description = "`invalid_hold`: the reason is empty, too long or has control characters", body = ErrorBody),
        (status = 403, description = "`not_officer`", body = ErrorBody),
        (status = 404, description = "`unknown_case`", body = ErrorBody),
        (status = 409, description = "`already_held`", body = ErrorBody),
    )
)]
pub(super) async fn place_hold(
    State(st): State<AppState>,
    OfficerAuthed(auth): OfficerAuthed,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<HoldRequest>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(
        service::retention::place_hold(
            &st,
            &auth.account,
            id,
            &req.reason,
            std::time::SystemTime::now(),
        )
        .await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/compliance/cases/{id}/hold",
    tag = "compliance",
    summary = "Lift the legal hold on a case",
    params(("id" = i64, Path, description = "The case")),
    responses(
        (status = 200, description = "Lifted (logged `compliance.hold_lifted`)", body = CaseView),
        (status = 403, description = "`not_officer`", body = ErrorBody),
        (status = 404, description = "`unknown_case`", body = ErrorBody),
        (status = 409, description = "`not_held`", body = ErrorBody),
    )
)]
pub(super) async fn lift_hold(
    State(st): State<AppState>,
    OfficerAuthed(auth): OfficerAuthed,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(
        service::retention::lift_hold(&st, &auth.account, id, std::time::SystemTime::now()).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/compliance/cases/{id}/refuse",
    tag = "compliance",
    summary = "Refuse another officer's case, which closes it",
    params(("id" = i64, Path, description = "The case")),
    responses(
        (status = 200, description = "Refused (logged `compliance.case_refused`)", body = CaseView),
        (status = 403, description = "`not_officer`, `own_case`", body = ErrorBody),
        (status = 404, description = "`unknown_case`", body = ErrorBody),
        (status = 409, description = "`case_closed`", body = ErrorBody),
    )
)]
pub(super) async fn refuse_case(
    State(st): State<AppState>,
    OfficerAuthed(auth): OfficerAuthed,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(
        service::custody::refuse(&st, &auth.account, id, std::time::SystemTime::now()).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/compliance/cases/{id}/release",
    tag = "compliance",
    summary = "The requester's release: the locked key, their own share, the approvers' shares",
    description = "Only the requester, only with M-1 approvals. `compliance.shares_released` is committed to the log before this answers; the shares meet only in the requester's browser.",
    params(("id" = i64, Path, description = "The case")),
    responses(
        (status = 200, description = "Released", body = CaseRelease),
        (status = 403, description = "`not_officer`, `not_requester`", body = ErrorBody),
        (status = 404, description = "`unknown_case`", body = ErrorBody),
        (status = 409, description = "`not_enough_approvals`, `case_closed`", body = ErrorBody),
    )
)]
pub(super) async fn release_case(
    State(st): State<AppState>,
    OfficerAuthed(auth): OfficerAuthed,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<CaseRelease>> {
    Ok(Json(
        service::custody::release(&st, &auth.account, id, std::time::SystemTime::now()).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/compliance/cases/{id}/messages/{mid}",
    tag = "compliance",
    summary = "One encrypted part of a message of a released case, for its requester",
    description = "Logged `compliance.message_opened` before the ciphertext is served.",
    params(
        ("id" = i64, Path, description = "The case"),
        ("mid" = String, Path, description = "A message ID of the case"),
        CasePartQuery,
    ),
    responses(
        (status = 200, description = "The part's ciphertext", content_type = "application/octet-stream"),
        (status = 403, description = "`not_officer`, `not_requester`", body = ErrorBody),
        (status = 404, description = "`unknown_case`, `not_in_case`, `unknown_part`", body = ErrorBody),
        (status = 409, description = "`case_closed`: not released", body = ErrorBody),
    )
)]
pub(super) async fn case_message(
    State(st): State<AppState>,
    OfficerAuthed(auth): OfficerAuthed,
    ApiPath((id, mid)): ApiPath<(i64, String)>,
    ApiQuery(q): ApiQuery<CasePartQuery>,
) -> ApiResult<Response> {
    let data = service::custody::open_message(
        &st,
        &auth.account,
        id,
        &mid,
        q.part.unwrap_or(0),
        std::time::SystemTime::now(),
    )
    .await?;
    super::mail::part_response(&st, data).await
}

#[utoipa::path(
    get,
    path = "/compliance/archive",
    tag = "compliance",
    summary = "Search messages by envelope data (sender, recipient, date); logged",
    params(ArchiveSearch),
    responses(
        (status = 200, description = "At most 200 messages, newest first", body = [ArchiveItem]),
        (status = 400, description = "`invalid_address`", body = ErrorBody),
        (status = 403, description = "`not_officer`", body = ErrorBody),
    )
)]
pub(super) async fn compliance_archive(
    State(st): State<AppState>,
    OfficerAuthed(auth): OfficerAuthed,
    ApiQuery(q): ApiQuery<ArchiveSearch>,
) -> ApiResult<Json<Vec<ArchiveItem>>> {
    Ok(Json(
        service::custody::archive(&st, &auth.account, &q, std::time::SystemTime::now()).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/compliance/archive/pending",
    tag = "compliance",
    summary = "How many stored copies still wait for their compliance session-key packet",
    description = "Incoming OpenPGP mail that came encrypted to its user only waits until the user's client adds the packet on first opening (docs/compliance.md, \"Waiting copies\"); until then the archive cannot open it.",
    responses(
        (status = 200, description = "The count", body = ArchivePending),
        (status = 403, description = "`not_officer`", body = ErrorBody),
    )
)]
pub(super) async fn compliance_archive_pending(
    State(st): State<AppState>,
    OfficerAuthed(auth): OfficerAuthed,
) -> ApiResult<Json<ArchivePending>> {
    Ok(Json(ArchivePending {
        pending: service::custody::archive_pending(&st, &auth.account).await?,
    }))
}

#[utoipa::path(
    get,
    path = "/compliance/cases/{id}/report",
    tag = "compliance",
    summary = "A case's access report (exportable JSON): the case, its log entries with their hashes, each message's reads",
    params(("id" = i64, Path, description = "The case")),
    responses(
        (status = 200, description = "The report", body = CaseReport),
        (status = 403, description = "`not_officer`", body = ErrorBody),
        (status = 404, description = "`unknown_case`", body = ErrorBody),
    )
)]
pub(super) async fn case_report(
    State(st): State<AppState>,
    OfficerAuthed(auth): OfficerAuthed,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<CaseReport>> {
    Ok(Json(
        service::custody::report(&st, &auth.account, id, std::time::SystemTime::now()).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/messages/{id}/compliance-opens",
    tag = "mail",
    summary = "When a message of yours was opened for compliance",
    params(("id" = String, Path, description = "Message ID")),
    responses(
        (status = 200, description = "Each opening, oldest first (empty: never)", body = [ComplianceOpen]),
        (status = 404, description = "`not_found`: no such message in your mailbox", body = ErrorBody),
    )
)]
pub(super) async fn message_compliance_opens(
    State(st): State<AppState>,
    auth: Authed,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Vec<ComplianceOpen>>> {
    Ok(Json(
        service::retention::opens_of_message(&st, &auth.account, &id, std::time::SystemTime::now())
            .await?,
    ))
}
