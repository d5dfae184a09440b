//! The organisation's compliance key through HTTP (docs/compliance.md, "Compliance key"): an
//! administrator installs the public certificate (`PUT /admin/compliance/key`), the same
//! operation as `sealpost admin compliance install` (`service::compliance::install`).

use axum::Json;
use axum::extract::State;

use super::{AdminAuthed, ApiJson, ApiResult, AppState};
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
