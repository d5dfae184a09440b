//! Logging in, and the other checks of what only an account's user knows: the login verifier
//! (throttled per source, see `throttle.rs`), the TOTP second factor (each code once), device
//! tokens, and the session a successful login opens.
//!
//! Login must not tell who has an account: an unknown address costs the same hash (the decoy,
//! [`credentials::check_verifier`]) and gets the same answers, throttling included, until the
//! verifier is right. Failed checks slow down their source with growing delays; a device that
//! logged in before presents its device token and is throttled on its own, so failures from
//! elsewhere never keep the owner out.
//!
//! Time comes in twice: `now` (Unix seconds, what storage and tokens record) and `clock`, the
//! door's monotonic clock, which the throttle's pure core is given each time it decides.

use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::accounts::token_hash;
use super::credentials::check_verifier;
use super::throttle::{Attempt, DeviceId, Source};
use super::{Context, ServiceError};
use crate::storage::{Account, AccountState, Timestamp};

/// What a login attempt presents.
#[derive(Clone, Copy, Debug)]
pub struct LoginAttempt<'a> {
    /// The address as typed.
    pub address: &'a str,
    /// The login verifier (32 bytes).
    pub verifier: [u8; 32],
    /// The TOTP code, if one was given.
    pub totp: Option<&'a str>,
    /// The known device it comes from ([`known_device`]), if any.
    pub device: Option<DeviceId>,
}

/// What a successful login produced.
#[derive(Debug)]
pub struct LoginOutcome {
    pub account: Account,
    /// The new session's bearer token (only its hash is stored).
    pub token: String,
    pub expires_at: Timestamp,
    /// A device token for a new device ID: this device is known from now on.
    pub device_token: String,
}

/// The device a request comes from, if it presents a valid device token for `address` (as
/// typed).
pub fn known_device(
    ctx: &Context,
    token: Option<&str>,
    address: &str,
    now: Timestamp,
) -> Option<DeviceId> {
    let address = crate::normalize_address(address)?;
    ctx.devices.check(token?, &address, now)
}

/// Checks a login and opens a session: the source's throttle, the verifier (the decoy's for an
/// unknown address), the account's state, the second factor; then the session and a device
/// token. A failed verifier or code counts against the source.
pub async fn login(
    ctx: &Context,
    attempt: LoginAttempt<'_>,
    now: Timestamp,
    clock: fn() -> Instant,
) -> Result<LoginOutcome, ServiceError> {
    let address = crate::normalize_address(attempt.address);
    // Any address string is a source of its own, existing or not (see `throttle.rs`).
    let source = match (&attempt.device, &address) {
        (Some(d), _) => Source::Device(d),
        (None, Some(a)) => Source::Address(a),
        (None, None) => Source::Address(attempt.address.trim()),
    };
    let admitted = admit(ctx, source, clock)?;
    let account = match &address {
        Some(a) => ctx.store.account_by_address(a).await?,
        None => None,
    }
    .filter(|a| a.login_hash.is_some());
    let stored = account.as_ref().and_then(|a| a.login_hash.clone());
    let matches = check_verifier(ctx, stored, attempt.verifier).await?;
    let account = match account {
        Some(a) if matches => a,
        other => {
            failed(ctx, admitted, source, other.as_ref(), now, clock);
            return Err(ServiceError::InvalidCredentials);
        }
    };
    if account.state != AccountState::Active {
        return Err(ServiceError::AccountDisabled);
    }
    if account.totp_enabled {
        let code = attempt.totp.ok_or(ServiceError::TotpRequired)?;
        if let Err(e) = consume_totp(ctx, &account, code, now).await {
            failed(ctx, admitted, source, Some(&account), now, clock);
            return Err(e);
        }
    }
    admitted.succeeded();
    let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let expires_at = now + ctx.config.accounts.session_ttl_secs as i64;
    ctx.store
        .login_succeeded(account.id, token_hash(&token), expires_at, now)
        .await?;
    // A new device ID at every login (OWASP: issue a fresh device cookie on success).
    let device_token = ctx
        .devices
        .mint(DeviceId(rand::random()), &account.address, now);
    Ok(LoginOutcome {
        account,
        token,
        expires_at,
        device_token,
    })
}

/// Checks the current password of a logged-in account (before a change of password): guesses
/// inside a session slow that session only, so a stolen session cannot lock or slow the
/// owner's logins.
pub async fn check_password(
    ctx: &Context,
    account: &Account,
    session: &[u8; 32],
    verifier: [u8; 32],
    now: Timestamp,
    clock: fn() -> Instant,
) -> Result<(), ServiceError> {
    let source = Source::Session(session);
    let admitted = admit(ctx, source, clock)?;
    if !check_verifier(ctx, account.login_hash.clone(), verifier).await? {
        failed(ctx, admitted, source, Some(account), now, clock);
        return Err(ServiceError::WrongPassword);
    }
    admitted.succeeded();
    Ok(())
}

/// The throttle's decision for `source`: an attempt, or the wait before one.
fn admit<'a>(
    ctx: &'a Context,
    source: Source<'_>,
    clock: fn() -> Instant,
) -> Result<Attempt<'a>, ServiceError> {
    ctx.throttle
        .admit(source, clock())
        .map_err(|wait| ServiceError::TooManyAttempts {
            secs: wait.as_secs_f64().ceil().max(1.0) as u64,
        })
}

/// Counts a failed check against its source and, for a real account, writes `login.failed`
/// to the transaction log. The write is not awaited: the answer must not wait for a commit
/// that only real accounts make (nor fail when the writer is overloaded), or its timing and
/// status would tell them apart.
fn failed(
    ctx: &Context,
    attempt: Attempt<'_>,
    source: Source<'_>,
    account: Option<&Account>,
    now: Timestamp,
    clock: fn() -> Instant,
) {
    let f = attempt.failed(clock());
    let Some(account) = account else { return };
    let (store, id) = (ctx.store.clone(), account.id);
    let detail = serde_json::json!({
        "failures": f.failures,
        "source": source.label(),
        "delay_secs": f.delay.as_secs(),
    });
    tokio::spawn(async move {
        if let Err(e) = store.login_failed(id, detail, now).await {
            tracing::warn!(account = id, error = %e, "failed login not logged");
        }
    });
}

fn totp(secret: &[u8]) -> Result<totp_rs::TOTP, ServiceError> {
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, secret.to_vec())
        .map_err(ServiceError::internal)
}

const TOTP_STEP: i64 = 30;

/// The time step whose code `code` is (the current one or one either side, for clock skew),
/// compared in constant time.
fn totp_step(secret: &[u8], code: &str, now: Timestamp) -> Result<Option<i64>, ServiceError> {
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

/// Checks a TOTP code of `account` and consumes its time step: each code is accepted once.
pub async fn consume_totp(
    ctx: &Context,
    account: &Account,
    code: &str,
    now: Timestamp,
) -> Result<(), ServiceError> {
    let secret = account
        .totp_secret
        .as_deref()
        .ok_or(ServiceError::TotpNotSetUp)?;
    let step = totp_step(secret, code, now)?.ok_or(ServiceError::TotpInvalid)?;
    if !ctx.store.use_totp_step(account.id, step).await? {
        return Err(ServiceError::TotpReused);
    }
    Ok(())
}
