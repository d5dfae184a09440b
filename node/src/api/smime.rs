//! S/MIME certificates from the organisation's CA (docs/mail.md, "The S/MIME copy"): the
//! logged-in user's client asks for one for its S/MIME signing key. The handler is a call into
//! `service::smime`, where every rule is.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::{ApiJson, ApiResult, AppState, Authed};
use crate::proto::{ErrorBody, SmimeCertificateRequest, SmimeCertificateResponse};
use crate::service;

#[utoipa::path(
    post,
    path = "/smime/certificate",
    tag = "accounts",
    summary = "Have the organisation's S/MIME CA certify the user's S/MIME signing key",
    description = "The key (SPKI PEM: ECDSA P-256, or RSA 2048 to 4096 bits) must be bound to the user's Sealpost key: `binding` is a detached OpenPGP signature by it over the exact DER of the SubjectPublicKeyInfo. The certificate names the user's address (SAN rfc822Name) and is for signing e-mail only. At most 5 a day per account. `smime_signing` in GET /org says whether the organisation runs a CA.",
    request_body = SmimeCertificateRequest,
    responses(
        (status = 201, description = "Issued: the leaf certificate, the CA chain and the expiry", body = SmimeCertificateResponse),
        (status = 400, description = "`invalid_request`: not a PEM public key, or too long", body = ErrorBody),
        (status = 403, description = "`guest_not_allowed`", body = ErrorBody),
        (status = 409, description = "`smime_ca_not_configured`: S/MIME copies go unsigned", body = ErrorBody),
        (status = 422, description = "`smime_binding_invalid`: not your key's signature over this key; `smime_key_unsupported`: only ECDSA P-256 or RSA 2048 to 4096", body = ErrorBody),
        (status = 429, description = "`rate_limited`: 5 certificates in the last day; see Retry-After", body = ErrorBody),
    )
)]
pub(super) async fn issue_certificate(
    State(st): State<AppState>,
    auth: Authed,
    ApiJson(req): ApiJson<SmimeCertificateRequest>,
) -> ApiResult<(StatusCode, Json<SmimeCertificateResponse>)> {
    let issued =
        service::smime::issue(&st, &auth.account, &req, std::time::SystemTime::now()).await?;
    Ok((StatusCode::CREATED, Json(issued)))
}
