//! Enrolment, login, sessions and the second factor.
//!
//! The node never receives a password. At enrolment the client sends a login verifier derived
//! from the password (separately from the key that wraps the secret key); the node keeps only
//! an Argon2id hash of it. Login sends the verifier again.
//!
//! The rules of login (throttle, verifier, second factor, session, device token) are
//! [`crate::service::login`]'s; verifier hashes are [`crate::service::credentials`]'. This
//! module parses, calls and answers: cookies or bearer token, and the per-client-address rate
//! limit of the routes.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use sha2::Sha256;

use super::{ApiError, ApiJson, ApiPath, ApiResult, AppState, Authed, ClientIp, token_hash};
use crate::crypto::{self, KdfParams};
use crate::proto::*;
use crate::service::credentials::{self, hash_verifier};
use crate::service::login::{self, LoginAttempt, LoginOutcome};
use crate::service::throttle::DeviceId;
use crate::storage::{Account, AccountState, Enrolment};
use crate::{normalize_address, now};

#[utoipa::path(
    get,
    path = "/org",
    tag = "accounts",
    summary = "The organisation: domain, CA certificate, node key, limits",
    responses((status = 200, description = "The organisation's record", body = OrgInfo)),
    security(())
)]
pub(super) async fn org(State(st): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    crate::service::compliance::current(&st).await?;
    Ok(Json(st.org_record()))
}

pub(super) fn verifier_bytes(v: &str) -> ApiResult<[u8; 32]> {
    Ok(credentials::verifier_bytes("login_verifier", v)?)
}

/// The device this request comes from, if it presents a valid device token for `address`.
fn known_device(st: &AppState, headers: &HeaderMap, address: &str) -> Option<DeviceId> {
    login::known_device(st, super::web::device_token(headers), address, now())
}

#[utoipa::path(
    post,
    path = "/enroll",
    tag = "accounts",
    summary = "Enrol with an invite",
    description = "Registers the client-generated certificate, the wrapped secret key and a login verifier; the CA certifies the address. Rate-limited per client address.",
    request_body = EnrollRequest,
    responses(
        (status = 201, description = "Enrolled", body = EnrollResponse),
        (status = 400, description = "`invalid_address`; `invalid_request`: a field is not base64 or has the wrong length", body = ErrorBody),
        (status = 401, description = "`invite_invalid`: unknown, used or expired invite", body = ErrorBody),
        (status = 409, description = "`conflict`", body = ErrorBody),
        (status = 422, description = "`wrong_domain`, `invalid_kdf_params`, `invalid_cert`, `key_not_wrapped`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody, headers(("Retry-After" = u64))),
    ),
    security(())
)]
pub(super) async fn enroll(
    State(st): State<AppState>,
    ip: ClientIp,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> ApiResult<(StatusCode, Json<EnrollResponse>)> {
    st.limit_auth(&ip)?;
    let now = now();
    let address = normalize_address(&req.address)
        .ok_or_else(|| ApiError::bad_request("invalid_address", "not an e-mail address"))?;
    if !address.ends_with(&format!("@{}", st.config.domain)) {
        return Err(ApiError::unprocessable(
            "wrong_domain",
            format!("this node enrols addresses of {} only", st.config.domain),
        ));
    }
    let new = credentials::new_login(&req.kdf_params, &req.kdf_salt, &req.login_verifier)?;
    let cert = crypto::cert_from_armored(&req.cert).map_err(|e| {
        ApiError::unprocessable("invalid_cert", format!("the certificate is unusable: {e}"))
    })?;
    crypto::check_user_cert(&cert, &address, &st.policy, std::time::SystemTime::now())
        .map_err(|e| ApiError::unprocessable("invalid_cert", e.to_string()))?;
    credentials::check_wrapped_key(&req.wrapped_key, &cert)?;
    let certified = crypto::ca_certify(&st.ca, &cert, &address, std::time::SystemTime::now())
        .map_err(ApiError::internal)?;
    let record = crate::certs::record(&certified).map_err(ApiError::internal)?;
    let certified_armored = record.armored.clone();
    let fingerprint = record.fingerprint.clone();
    let login_hash = hash_verifier(&st, new.verifier).await?;
    st.store
        .enroll(
            crate::service::accounts::invite_hash(&req.invite),
            &address,
            Enrolment {
                cert: record,
                wrapped_key: req.wrapped_key,
                kdf_salt: new.kdf_salt,
                kdf_params: new.kdf_params,
                login_hash,
            },
            now,
        )
        .await?;
    tracing::info!(%address, %fingerprint, "enrolled");
    Ok((
        StatusCode::CREATED,
        Json(EnrollResponse {
            address,
            fingerprint,
            cert: certified_armored,
        }),
    ))
}

#[utoipa::path(
    post,
    path = "/login/params",
    tag = "accounts",
    summary = "KDF salt and parameters for an address (decoys for unknown ones)",
    description = "Rate-limited per client address; a known device (X-Sealpost-Device header or sealpost_device cookie with a valid device token for the address) has a bucket of its own.",
    request_body = LoginParamsRequest,
    params(("X-Sealpost-Device" = Option<String>, Header, description = "A device token from an earlier login of this address")),
    responses(
        (status = 200, description = "The salt and parameters to derive the login verifier with", body = LoginParams),
        (status = 400, description = "`invalid_address`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody, headers(("Retry-After" = u64))),
    ),
    security(())
)]
pub(super) async fn login_params(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginParamsRequest>,
) -> ApiResult<Json<LoginParams>> {
    st.limit_login(&ip, known_device(&st, &headers, &req.address))?;
    let address = normalize_address(&req.address)
        .ok_or_else(|| ApiError::bad_request("invalid_address", "not an e-mail address"))?;
    let account = st.store.account_by_address(&address).await?;
    // Enrolled accounts, disabled ones included: a disabled user who knows the password
    // should learn that the account is disabled, not that the password is wrong.
    if let Some(Account {
        kdf_salt: Some(salt),
        kdf_params: Some(params),
        state: AccountState::Active | AccountState::Disabled,
        ..
    }) = account
    {
        let kdf_params = serde_json::from_str(&params).map_err(ApiError::internal)?;
        return Ok(Json(LoginParams {
            kdf_salt: STANDARD.encode(salt),
            kdf_params,
        }));
    }
    // Unknown addresses, invited ones that have not enrolled and accounts disabled before
    // enrolling get a stable decoy salt of the length clients choose (16 bytes) and the
    // parameters both clients enrol with, in the same shape, so this route does not tell who
    // has an account.
    let mut salt = [0u8; 16];
    Hkdf::<Sha256>::new(Some(&st.decoy_key), address.as_bytes())
        .expand(b"decoy salt", &mut salt)
        .expect("16 bytes is a valid HKDF length");
    Ok(Json(LoginParams {
        kdf_salt: STANDARD.encode(salt),
        kdf_params: KdfParams::DEFAULT,
    }))
}

pub(super) fn account_view(a: &Account) -> AccountView {
    AccountView {
        address: a.address.clone(),
        name: a.name.clone(),
        is_admin: a.is_admin,
        fingerprint: a.fingerprint.clone().unwrap_or_default(),
        cert: a.cert.clone().unwrap_or_default(),
        wrapped_key: a.wrapped_key.clone().unwrap_or_default(),
        totp_enabled: a.totp_enabled,
        guest: crate::service::guests::is_guest(a),
    }
}

#[utoipa::path(
    post,
    path = "/login",
    tag = "accounts",
    summary = "Log in with the login verifier (and a TOTP code if enabled)",
    description = "Rate-limited per client address (429 rate_limited). After repeated failures of one source each further attempt must wait a growing delay (429 too_many_attempts with Retry-After), alike for every address, existing or not; a source is a known device (X-Sealpost-Device header or sealpost_device cookie with a valid device token for the address) or all other sources of the address together. With the header X-Sealpost-Session: cookie the token is set as an HttpOnly, SameSite=Strict cookie instead of being returned, and csrf_token is returned; the device token is likewise a cookie (Path=/api/v1/login) or, for bearer logins, device_token.",
    request_body = LoginRequest,
    params(
        ("X-Sealpost-Session" = Option<String>, Header, description = "`cookie`: ask for a cookie session (the web app)"),
        ("X-Sealpost-Device" = Option<String>, Header, description = "A device token from an earlier login of this address"),
    ),
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 400, description = "`invalid_request`: the verifier is not 32 bytes of base64", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`, `totp_required`, `totp_invalid`, `totp_reused`", body = ErrorBody),
        (status = 403, description = "`account_disabled`", body = ErrorBody),
        (status = 429, description = "`rate_limited`, `too_many_attempts`", body = ErrorBody, headers(("Retry-After" = u64))),
    ),
    security(())
)]
pub(super) async fn login(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<(HeaderMap, Json<LoginResponse>)> {
    let device = known_device(&st, &headers, &req.address);
    st.limit_login(&ip, device)?;
    let attempt = LoginAttempt {
        address: &req.address,
        verifier: verifier_bytes(&req.login_verifier)?,
        totp: req.totp.as_deref(),
        device,
    };
    let LoginOutcome {
        account,
        token,
        expires_at,
        device_token,
    } = login::login(&st, attempt, now(), Instant::now).await?;
    // The web app's session and device token live in HttpOnly cookies, out of reach of page
    // scripts.
    let mut set = HeaderMap::new();
    let (token, csrf_token, device_token) = if super::web::wants_cookie(&headers) {
        set.append(
            SET_COOKIE,
            super::web::session_cookie(&st, &headers, &token),
        );
        set.append(
            SET_COOKIE,
            super::web::device_cookie(&st, &headers, &device_token),
        );
        (
            String::new(),
            Some(super::web::csrf_token(&st, &token_hash(&token))),
            None,
        )
    } else {
        (token, None, Some(device_token))
    };
    Ok((
        set,
        Json(LoginResponse {
            token,
            expires_at,
            account: account_view(&account),
            csrf_token,
            device_token,
        }),
    ))
}

#[utoipa::path(
    post,
    path = "/logout",
    tag = "accounts",
    summary = "End this session",
    responses((status = 204, description = "Ended; the session cookie is cleared"))
)]
pub(super) async fn logout(
    State(st): State<AppState>,
    auth: Authed,
) -> ApiResult<([(HeaderName, HeaderValue); 1], StatusCode)> {
    st.store.end_session(auth.token_hash, now()).await?;
    Ok((
        [(SET_COOKIE, super::web::clear_cookie())],
        StatusCode::NO_CONTENT,
    ))
}

#[utoipa::path(
    get,
    path = "/me",
    tag = "accounts",
    summary = "The logged-in account, with its wrapped secret key",
    responses((status = 200, description = "The account", body = AccountView))
)]
pub(super) async fn me(auth: Authed) -> Json<AccountView> {
    Json(account_view(&auth.account))
}

#[utoipa::path(
    post,
    path = "/me/totp",
    tag = "accounts",
    summary = "Start setting up a TOTP second factor",
    responses(
        (status = 200, description = "The new secret, to confirm with a code", body = TotpSetup),
        (status = 409, description = "`totp_enabled`: disable the current one first", body = ErrorBody),
    )
)]
pub(super) async fn totp_setup(
    State(st): State<AppState>,
    auth: Authed,
) -> ApiResult<Json<TotpSetup>> {
    if auth.account.totp_enabled {
        return Err(ApiError::conflict(
            "totp_enabled",
            "a second factor is already set up; disable it first",
        ));
    }
    let secret = rand::random::<[u8; 20]>().to_vec();
    let encoded = totp_rs::Secret::Raw(secret.clone())
        .to_encoded()
        .to_string();
    st.store
        .set_totp(auth.account.id, Some(secret), false)
        .await?;
    let label = format!("Sealpost:{}", auth.account.address).replace('@', "%40");
    Ok(Json(TotpSetup {
        otpauth_uri: format!(
            "otpauth://totp/{label}?secret={encoded}&issuer=Sealpost&algorithm=SHA1&digits=6&period=30"
        ),
        secret: encoded,
    }))
}

#[utoipa::path(
    post,
    path = "/me/totp/confirm",
    tag = "accounts",
    summary = "Confirm the TOTP set-up with a current code",
    request_body = TotpCode,
    responses(
        (status = 204, description = "The second factor is on"),
        (status = 401, description = "`totp_invalid`, `totp_reused`", body = ErrorBody),
        (status = 409, description = "`totp_not_set_up`", body = ErrorBody),
    )
)]
pub(super) async fn totp_confirm(
    State(st): State<AppState>,
    auth: Authed,
    ApiJson(req): ApiJson<TotpCode>,
) -> ApiResult<StatusCode> {
    login::consume_totp(&st, &auth.account, &req.code, now()).await?;
    st.store
        .set_totp(auth.account.id, auth.account.totp_secret.clone(), true)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/me/totp/disable",
    tag = "accounts",
    summary = "Turn the second factor off (needs a current code)",
    request_body = TotpCode,
    responses(
        (status = 204, description = "The second factor is off"),
        (status = 401, description = "`totp_invalid`, `totp_reused`", body = ErrorBody),
        (status = 409, description = "`totp_not_set_up`", body = ErrorBody),
    )
)]
pub(super) async fn totp_disable(
    State(st): State<AppState>,
    auth: Authed,
    ApiJson(req): ApiJson<TotpCode>,
) -> ApiResult<StatusCode> {
    login::consume_totp(&st, &auth.account, &req.code, now()).await?;
    st.store.set_totp(auth.account.id, None, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/users/{address}/cert",
    tag = "accounts",
    summary = "An enrolled user's (or guest's) certificate (armored; a user's with the CA certification)",
    params(("address" = String, Path, description = "E-mail address")),
    responses(
        (status = 200, description = "Armored OpenPGP certificate", body = String, content_type = "text/plain"),
        (status = 400, description = "`invalid_address`", body = ErrorBody),
        (status = 403, description = "`guest_not_allowed`: a guest looks up the organisation's users only", body = ErrorBody),
        (status = 404, description = "`unknown_user`: no enrolled, active user of that address", body = ErrorBody),
    )
)]
pub(super) async fn user_cert(
    State(st): State<AppState>,
    auth: Authed,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<String> {
    let address = normalize_address(&address)
        .ok_or_else(|| ApiError::bad_request("invalid_address", "not an e-mail address"))?;
    crate::service::guests::may_look_up(&st, &auth.account, &address).await?;
    match st.store.account_by_address(&address).await? {
        Some(Account {
            cert: Some(cert),
            state: AccountState::Active,
            ..
        }) => Ok(cert),
        _ => Err(ApiError::not_found(
            "unknown_user",
            format!("no enrolled user {address} here"),
        )),
    }
}
