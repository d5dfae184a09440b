//! Enrolment, login, sessions and the second factor.
//!
//! The node never receives a password. At enrolment the client sends a login verifier derived
//! from the password (separately from the key that wraps the secret key); the node keeps only
//! an Argon2id hash of it. Login sends the verifier again.
//!
//! Login must not tell who has an account: an unknown address costs the same hash (a decoy
//! made with the configured parameters) and gets the same answers, throttling included.
//! Failed checks slow down their source with growing delays (`throttle.rs`); a device that
//! logged in before presents its device token and is throttled on its own, so failures from
//! elsewhere never keep the owner out. The routes are also rate-limited per client address.

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use axum::Json;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hkdf::Hkdf;
use sha2::Sha256;

use super::throttle::{Attempt, DeviceId, Source};
use super::{ApiError, ApiJson, ApiPath, ApiResult, AppState, Authed, ClientIp, token_hash};
use crate::crypto::{self, KdfParams};
use crate::proto::*;
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
pub(super) async fn org(State(st): State<AppState>) -> Json<serde_json::Value> {
    Json(st.org_record())
}

pub(super) fn b64(field: &'static str, v: &str) -> ApiResult<Vec<u8>> {
    STANDARD
        .decode(v)
        .map_err(|_| ApiError::bad_request("invalid_request", format!("{field} is not base64")))
}

pub(super) fn verifier_bytes(v: &str) -> ApiResult<[u8; 32]> {
    b64("login_verifier", v)?
        .try_into()
        .map_err(|_| ApiError::bad_request("invalid_request", "login_verifier must be 32 bytes"))
}

fn verifier_hasher(st: &AppState) -> ApiResult<Argon2<'static>> {
    let a = &st.config.accounts;
    let params = Params::new(a.verifier_hash_m_cost_kib, a.verifier_hash_t_cost, 1, None)
        .map_err(ApiError::internal)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Argon2id is deliberately slow: run it off the async workers.
pub(super) async fn hash_verifier(st: &AppState, verifier: [u8; 32]) -> ApiResult<String> {
    let hasher = verifier_hasher(st)?;
    tokio::task::spawn_blocking(move || hasher.hash_password(&verifier).map(|h| h.to_string()))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// The hash checked when an address has no account: made once at start with the parameters
/// real hashes are made with now, so that checking it is the same work.
pub(super) fn decoy_hash(config: &crate::config::Config) -> String {
    let a = &config.accounts;
    let params = Params::new(a.verifier_hash_m_cost_kib, a.verifier_hash_t_cost, 1, None)
        .expect("validated Argon2id parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(&rand::random::<[u8; 32]>())
        .expect("hashing works")
        .to_string()
}

/// Constant-time check of a verifier against its stored hash. `None` (no such account) checks
/// the decoy hash instead and answers `false`: the same work either way, with no shortcut.
/// (A hash made under earlier `verifier_hash_*` parameters keeps those until its owner changes
/// the password.)
pub(super) async fn check_verifier(
    st: &AppState,
    stored: Option<String>,
    verifier: [u8; 32],
) -> ApiResult<bool> {
    let real = stored.is_some();
    let phc = stored.unwrap_or_else(|| st.decoy_login_hash.clone());
    let matches = tokio::task::spawn_blocking(move || {
        Argon2::default()
            .verify_password(&verifier, phc.as_str())
            .is_ok()
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(real & matches)
}

fn invalid_credentials() -> ApiError {
    ApiError::unauthorized(
        "invalid_credentials",
        "wrong address or password; after several failures in a row, each further attempt must wait longer",
    )
}

/// The answer to an attempt that comes before its source's delay has passed: the same for
/// every address, existing or not.
pub(super) fn too_many_attempts(wait: Duration) -> ApiError {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    ApiError::too_many(
        "too_many_attempts",
        format!("too many failed attempts: wait {secs} s before trying again"),
        secs,
    )
}

/// The device this request comes from, if it presents a valid device token for `address`.
fn known_device(st: &AppState, headers: &HeaderMap, address: Option<&str>) -> Option<DeviceId> {
    st.devices
        .check(super::web::device_token(headers)?, address?, now())
}

/// Counts a failed check against its source and, for a real account, writes `login.failed`
/// to the transaction log. The write is not awaited: the answer must not wait for a commit
/// that only real accounts make (nor fail when the writer is overloaded), or its timing and
/// status would tell them apart.
pub(super) fn failed(
    st: &AppState,
    attempt: Attempt<'_>,
    source: Source<'_>,
    account: Option<&Account>,
) {
    let f = attempt.failed(Instant::now());
    let Some(account) = account else { return };
    let (store, id) = (st.store.clone(), account.id);
    let detail = serde_json::json!({
        "failures": f.failures,
        "source": source.label(),
        "delay_secs": f.delay.as_secs(),
    });
    tokio::spawn(async move {
        if let Err(e) = store.login_failed(id, detail, now()).await {
            tracing::warn!(account = id, error = %e, "failed login not logged");
        }
    });
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
    req.kdf_params
        .validate()
        .map_err(|e| ApiError::unprocessable("invalid_kdf_params", e.to_string()))?;
    let salt = b64("kdf_salt", &req.kdf_salt)?;
    if !(16..=64).contains(&salt.len()) {
        return Err(ApiError::bad_request(
            "invalid_request",
            "kdf_salt must be 16 to 64 bytes",
        ));
    }
    let verifier = verifier_bytes(&req.login_verifier)?;
    let cert = crypto::cert_from_armored(&req.cert).map_err(|e| {
        ApiError::unprocessable("invalid_cert", format!("the certificate is unusable: {e}"))
    })?;
    crypto::check_user_cert(&cert, &address, &st.policy, std::time::SystemTime::now())
        .map_err(|e| ApiError::unprocessable("invalid_cert", e.to_string()))?;
    crypto::check_wrapped_key(&req.wrapped_key, &cert)
        .map_err(|e| ApiError::unprocessable("key_not_wrapped", e.to_string()))?;
    let certified = crypto::ca_certify(&st.ca, &cert, &address, std::time::SystemTime::now())
        .map_err(ApiError::internal)?;
    let record = crate::certs::record(&certified).map_err(ApiError::internal)?;
    let certified_armored = record.armored.clone();
    let fingerprint = record.fingerprint.clone();
    let login_hash = hash_verifier(&st, verifier).await?;
    st.store
        .enroll(
            crate::service::accounts::invite_hash(&req.invite),
            &address,
            Enrolment {
                cert: record,
                wrapped_key: req.wrapped_key,
                kdf_salt: salt,
                kdf_params: serde_json::to_string(&req.kdf_params).map_err(ApiError::internal)?,
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
    let address = normalize_address(&req.address);
    st.limit_login(&ip, known_device(&st, &headers, address.as_deref()))?;
    let address =
        address.ok_or_else(|| ApiError::bad_request("invalid_address", "not an e-mail address"))?;
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

fn totp(secret: &[u8]) -> ApiResult<totp_rs::TOTP> {
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, secret.to_vec())
        .map_err(ApiError::internal)
}

const TOTP_STEP: i64 = 30;

/// The time step whose code `code` is (the current one or one either side, for clock skew),
/// compared in constant time.
fn totp_step(secret: &[u8], code: &str, now: i64) -> ApiResult<Option<i64>> {
    use subtle::ConstantTimeEq;
    let t = totp(secret)?;
    let code = code.trim().as_bytes();
    let here = now / TOTP_STEP;
    let mut found = None;
    for step in [here - 1, here, here + 1] {
        let expected = t.generate((step * TOTP_STEP) as u64);
        if bool::from(expected.as_bytes().ct_eq(code)) {
            found = Some(step);
        }
    }
    Ok(found)
}

/// Checks a TOTP code and consumes its time step: each code is accepted once.
async fn consume_totp(st: &AppState, account: &Account, code: &str, now: i64) -> ApiResult<()> {
    let secret = account
        .totp_secret
        .as_deref()
        .ok_or_else(|| ApiError::conflict("totp_not_set_up", "set up a second factor first"))?;
    let Some(step) = totp_step(secret, code, now)? else {
        return Err(ApiError::unauthorized(
            "totp_invalid",
            "that code is wrong or has expired",
        ));
    };
    if !st.store.use_totp_step(account.id, step).await? {
        return Err(ApiError::unauthorized(
            "totp_reused",
            "that code was already used: wait for the next one",
        ));
    }
    Ok(())
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
    let now = now();
    let address = normalize_address(&req.address);
    let device = known_device(&st, &headers, address.as_deref());
    st.limit_login(&ip, device)?;
    let verifier = verifier_bytes(&req.login_verifier)?;
    // Any address string is a source of its own, existing or not (see `throttle.rs`).
    let source = match (&device, &address) {
        (Some(d), _) => Source::Device(d),
        (None, Some(a)) => Source::Address(a),
        (None, None) => Source::Address(req.address.trim()),
    };
    let attempt = st
        .throttle
        .admit(source, Instant::now())
        .map_err(too_many_attempts)?;
    let account = match &address {
        Some(a) => st.store.account_by_address(a).await?,
        None => None,
    }
    .filter(|a| a.login_hash.is_some());
    let stored = account.as_ref().and_then(|a| a.login_hash.clone());
    let matches = check_verifier(&st, stored, verifier).await?;
    let account = match account {
        Some(a) if matches => a,
        other => {
            failed(&st, attempt, source, other.as_ref());
            return Err(invalid_credentials());
        }
    };
    if account.state != AccountState::Active {
        return Err(ApiError::forbidden(
            "account_disabled",
            "this account is disabled",
        ));
    }
    if account.totp_enabled {
        let Some(code) = req.totp.as_deref() else {
            return Err(ApiError::unauthorized(
                "totp_required",
                "enter the 6-digit code from your authenticator app",
            ));
        };
        if let Err(e) = consume_totp(&st, &account, code, now).await {
            failed(&st, attempt, source, Some(&account));
            return Err(e);
        }
    }
    attempt.succeeded();
    let cfg = &st.config.accounts;
    let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let expires_at = now + cfg.session_ttl_secs as i64;
    st.store
        .login_succeeded(account.id, token_hash(&token), expires_at, now)
        .await?;
    // A new device ID at every login (OWASP: issue a fresh device cookie on success).
    let device_token = st
        .devices
        .mint(DeviceId(rand::random()), &account.address, now);
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
    consume_totp(&st, &auth.account, &req.code, now()).await?;
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
    consume_totp(&st, &auth.account, &req.code, now()).await?;
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
