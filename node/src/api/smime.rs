//! S/MIME certificates from the organisation's CA (docs/mail.md, "The S/MIME copy"): the
//! logged-in user's client asks for one for its S/MIME signing key. The handler is a call into
//! `service::smime`, where every rule is.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::{ApiJson, ApiResult, AppState, Authed};
use crate::proto::{
    ErrorBody, SmimeCertificateRequest, SmimeCertificateResponse, SmimeStoredKeyResponse,
};
use crate::service;

#[utoipa::path(
    post,
    path = "/smime/certificate",
    tag = "accounts",
    summary = "Have the organisation's S/MIME CA certify the user's S/MIME signing key",
    description = "The key (SPKI PEM: ECDSA P-256, or RSA 2048 to 4096 bits) must be bound to the user's Sealpost key: `binding` is a detached OpenPGP signature by it over the exact DER of the SubjectPublicKeyInfo. The certificate names the user's address (SAN rfc822Name) and is for signing e-mail only. At most 5 a day per account. The web app also sends `wrapped_key`: its private key wrapped in the browser under a password-derived key (opaque to the node, at most 16 KiB of printable ASCII), kept with the certificate for GET /smime/certificate. `smime_signing` in GET /org says whether the organisation runs a CA.",
    request_body = SmimeCertificateRequest,
    responses(
        (status = 201, description = "Issued: the leaf certificate, the CA chain and the expiry", body = SmimeCertificateResponse),
        (status = 400, description = "`invalid_request`: not a PEM public key, too long, or a `wrapped_key` that is empty, over 16 KiB or not printable ASCII", body = ErrorBody),
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

#[utoipa::path(
    get,
    path = "/smime/certificate",
    tag = "accounts",
    summary = "The user's S/MIME signing key as the web app stored it, with its certificate",
    description = "The newest certificate of the caller's that is still valid and whose key was sent wrapped (`wrapped_key` of POST /smime/certificate), with that wrapped key and the CA chain: how the web app signs from any browser. The key is unwrapped in the browser only.",
    responses(
        (status = 200, description = "The certificate, the CA chain, the expiry and the wrapped key", body = SmimeStoredKeyResponse),
        (status = 403, description = "`guest_not_allowed`", body = ErrorBody),
        (status = 404, description = "`not_found`: no certificate still valid with a stored key", body = ErrorBody),
        (status = 409, description = "`smime_ca_not_configured`: S/MIME copies go unsigned", body = ErrorBody),
    )
)]
pub(super) async fn stored_key(
    State(st): State<AppState>,
    auth: Authed,
) -> ApiResult<Json<SmimeStoredKeyResponse>> {
    let found =
        service::smime::stored_key(&st, &auth.account, std::time::SystemTime::now()).await?;
    Ok(Json(found))
}
