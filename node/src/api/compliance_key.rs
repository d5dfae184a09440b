//! The organisation's compliance key through HTTP (docs/compliance.md, "Compliance key"): an
//! administrator installs the public certificate (`PUT /admin/compliance/key`), the same
//! operation as `sealpost admin compliance install` (`service::compliance::install`); and a
//! user's client adds the compliance session-key packet to incoming OpenPGP mail that came
//! encrypted to them only (`POST /messages/{id}/compliance-key-packet`,
//! `service::compliance::add_packet`).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;

use super::{AdminAuthed, ApiJson, ApiPath, ApiResult, AppState, Authed};
use crate::proto::{ComplianceKeyInstall, ComplianceKeyView, ErrorBody};
use crate::service::{self, Actor};

#[utoipa::path(
    put,
    path = "/admin/compliance/key",
    tag = "admin",
    summary = "Install the organisation's compliance key (public certificate): the CA marks it, the directory publishes it, messages must be encrypted to it",
    request_body = ComplianceKeyInstall,
    responses(
        (status = 200, description = "Installed: the certificate with the CA's marking", body = ComplianceKeyView),
        (status = 403, description = "`not_admin`", body = ErrorBody),
        (status = 422, description = "`invalid_compliance_key`: secret key material, not v4, no encryption key, or not the one user ID `Compliance archive <compliance@DOMAIN>`", body = ErrorBody),
    )
)]
pub(super) async fn install(
    State(st): State<AppState>,
    AdminAuthed(auth): AdminAuthed,
    ApiJson(req): ApiJson<ComplianceKeyInstall>,
) -> ApiResult<Json<ComplianceKeyView>> {
    let key = service::compliance::install(
        st.store.as_ref(),
        &st.config,
        &st.ca,
        &Actor::Admin(auth.account.address.clone()),
        req.cert.as_bytes(),
        std::time::SystemTime::now(),
    )
    .await?;
    Ok(Json(ComplianceKeyView {
        domain: key.domain,
        fingerprint: key.fingerprint,
        cert: key.armored,
        installed_at: key.installed_at,
    }))
}

#[utoipa::path(
    post,
    path = "/messages/{id}/compliance-key-packet",
    tag = "mail",
    summary = "Add the compliance key's session-key packet to incoming OpenPGP mail encrypted to you only",
    description = "The body is one binary v3 PKESK packet (at most 4096 bytes) for an encryption key of the organisation's current compliance key, wrapping the message's session key. The node keeps it beside the message as it came and the compliance archive can then open it. The node cannot check the session key inside: a wrong one makes a copy the archive cannot open.",
    params(("id" = String, Path, description = "Message ID")),
    request_body(content_type = "application/octet-stream", description = "One PKESK packet, binary"),
    responses(
        (status = 204, description = "Added: the message no longer waits (`compliance_pending` false)"),
        (status = 400, description = "`invalid_compliance_packet`: not exactly one v3 PKESK with a recipient of the compliance key's algorithm", body = ErrorBody),
        (status = 404, description = "`unknown_message`", body = ErrorBody),
        (status = 409, description = "`compliance_not_pending`: not incoming mail waiting for it (or added already); `no_compliance_key`", body = ErrorBody),
        (status = 413, description = "`too_large`", body = ErrorBody),
        (status = 422, description = "`wrong_compliance_key`: the packet is for another key", body = ErrorBody),
    )
)]
pub(super) async fn add_packet(
    State(st): State<AppState>,
    auth: Authed,
    ApiPath(id): ApiPath<String>,
    body: Body,
) -> ApiResult<StatusCode> {
    let limit = service::compliance::MAX_PACKET_BYTES;
    // One byte more than the limit tells "too large" from "exactly the limit".
    let packet = axum::body::to_bytes(body, limit + 1).await.map_err(|_| {
        service::ServiceError::TooLarge {
            limit: limit as u64,
        }
    })?;
    service::compliance::add_packet(
        &st,
        &auth.account,
        &id,
        &packet,
        std::time::SystemTime::now(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
