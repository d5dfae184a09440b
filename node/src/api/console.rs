//! Account settings and the admin console, as the web app needs them: change password (the
//! client re-wraps its key), list and end one's sessions, and for administrators the users,
//! invites, the node's status and its federated peers.
//!
//! As everywhere in `api/`, nothing here sees a password or a key: a new password arrives as a
//! re-wrapped key and a new login verifier, with the current password's verifier as proof.

use std::sync::LazyLock;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::accounts::verifier_bytes;
use super::{AdminAuthed, ApiError, ApiJson, ApiPath, ApiResult, AppState, Authed, ClientIp};
use crate::now;
use crate::proto::*;
use crate::service::credentials::{self, hash_verifier};
use crate::service::{self, Actor};
use crate::storage::AccountState;
use crate::storage::web::NewLogin;

/// When this process started serving (for the status page).
static STARTED: LazyLock<i64> = LazyLock::new(now);

/// The routes of this module, relative to the API prefix (see `api::routes`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    LazyLock::force(&STARTED);
    OpenApiRouter::new()
        .routes(routes!(change_password))
        .routes(routes!(sessions))
        .routes(routes!(end_session))
        .routes(routes!(users))
        .routes(routes!(set_state))
        .routes(routes!(invite))
        .routes(routes!(status))
        .routes(routes!(peers))
        .routes(routes!(peer_org))
}

/// A session's public identifier: derived from its token hash, so it cannot be used as (or
/// turned back into) a token, and stable for as long as the session lives.
fn session_id(token_hash: &[u8; 32]) -> String {
    let d = Sha256::new()
        .chain_update(b"sealpost/v1/session-id")
        .chain_update(token_hash)
        .finalize();
    hex::encode(&d[..12])
}

#[utoipa::path(
    post,
    path = "/me/password",
    tag = "settings",
    summary = "Change the password",
    description = "The client re-wraps its key and derives a new verifier; the current password's verifier proves it is the user. Ends the account's other sessions. A wrong current password counts as a failed login of this session.",
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed"),
        (status = 400, description = "`invalid_request`: a field is not base64 or has the wrong length", body = ErrorBody),
        (status = 403, description = "`wrong_password`", body = ErrorBody),
        (status = 409, description = "`not_enrolled`: your account has no key", body = ErrorBody),
        (status = 422, description = "`invalid_kdf_params`, `key_not_wrapped`", body = ErrorBody),
        (status = 429, description = "`rate_limited`, `too_many_attempts`", body = ErrorBody, headers(("Retry-After" = u64))),
    )
)]
async fn change_password(
    State(st): State<AppState>,
    ip: ClientIp,
    auth: Authed,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    st.limit_auth(&ip)?;
    let now = now();
    let current = verifier_bytes(&req.current_verifier)?;
    // Guesses of the current password inside a session slow that session only.
    service::login::check_password(
        &st,
        &auth.account,
        &auth.token_hash,
        current,
        now,
        Instant::now,
    )
    .await?;
    let new = credentials::new_login(&req.kdf_params, &req.kdf_salt, &req.login_verifier)?;
    let cert = st.account_cert(&auth.account)?;
    credentials::check_wrapped_key(&req.wrapped_key, &cert)?;
    let login_hash = hash_verifier(&st, new.verifier).await?;
    st.store
        .change_login(
            auth.account.id,
            NewLogin {
                wrapped_key: req.wrapped_key,
                kdf_salt: new.kdf_salt,
                kdf_params: new.kdf_params,
                login_hash,
            },
            auth.token_hash,
            now,
        )
        .await?;
    tracing::info!(address = %auth.account.address, "password changed");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/me/sessions",
    tag = "settings",
    summary = "The caller's live sessions",
    responses((status = 200, description = "The sessions", body = SessionsResponse))
)]
async fn sessions(State(st): State<AppState>, auth: Authed) -> ApiResult<Json<SessionsResponse>> {
    let rows = st.store.sessions_of(auth.account.id, now()).await?;
    Ok(Json(SessionsResponse {
        sessions: rows
            .into_iter()
            .map(|r| SessionView {
                id: session_id(&r.token_hash),
                created_at: r.created_at,
                expires_at: r.expires_at,
                current: r.token_hash == auth.token_hash,
            })
            .collect(),
    }))
}

#[utoipa::path(
    delete,
    path = "/me/sessions/{id}",
    tag = "settings",
    summary = "End one of the caller's sessions",
    params(("id" = String, Path, description = "The session's ID (from /me/sessions)")),
    responses(
        (status = 204, description = "Ended"),
        (status = 404, description = "`unknown_session`", body = ErrorBody),
    )
)]
async fn end_session(
    State(st): State<AppState>,
    auth: Authed,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let now = now();
    let unknown = || ApiError::not_found("unknown_session", "you have no such session");
    let row = st
        .store
        .sessions_of(auth.account.id, now)
        .await?
        .into_iter()
        .find(|r| session_id(&r.token_hash) == id)
        .ok_or_else(unknown)?;
    if !st
        .store
        .end_session_of(auth.account.id, row.token_hash, now)
        .await?
    {
        return Err(unknown());
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/admin/users",
    tag = "admin",
    summary = "Every account of the organisation with its state and pending invite",
    responses(
        (status = 200, description = "The accounts", body = AdminUsersResponse),
        (status = 403, description = "`not_admin`", body = ErrorBody),
    )
)]
async fn users(State(st): State<AppState>, _: AdminAuthed) -> ApiResult<Json<AdminUsersResponse>> {
    let invites: std::collections::HashMap<i64, i64> =
        st.store.invite_expiries().await?.into_iter().collect();
    let users = st
        .store
        .accounts()
        .await?
        .into_iter()
        // Guests have their own list (`/admin/guests`).
        .filter(|a| !service::guests::is_guest(a))
        .map(|a| AdminUser {
            invite_expires_at: (a.state == AccountState::Invited)
                .then(|| invites.get(&a.id).copied())
                .flatten(),
            address: a.address,
            name: a.name,
            is_admin: a.is_admin,
            state: a.state.as_str().to_owned(),
            fingerprint: a.fingerprint,
            created_at: a.created_at,
            totp_enabled: a.totp_enabled,
        })
        .collect();
    Ok(Json(AdminUsersResponse { users }))
}

#[utoipa::path(
    post,
    path = "/admin/invites",
    tag = "admin",
    summary = "Authorise a new account and return its one-time invite code",
    description = "For an account that has not enrolled yet, a fresh code (200; the old code stops working).",
    request_body = InviteRequest,
    responses(
        (status = 201, description = "A new account, invited", body = InviteResponse),
        (status = 200, description = "A fresh code for an invited account", body = InviteResponse),
        (status = 400, description = "`invalid_address`, `invalid_name`", body = ErrorBody),
        (status = 403, description = "`not_admin`", body = ErrorBody),
        (status = 409, description = "`already_enrolled`", body = ErrorBody),
        (status = 422, description = "`wrong_domain`", body = ErrorBody),
    )
)]
async fn invite(
    State(st): State<AppState>,
    AdminAuthed(auth): AdminAuthed,
    ApiJson(req): ApiJson<InviteRequest>,
) -> ApiResult<(StatusCode, Json<InviteResponse>)> {
    let invite = service::accounts::invite(
        st.store.as_ref(),
        &st.config,
        &Actor::Admin(auth.account.address.clone()),
        &req.address,
        req.name.as_deref(),
        req.is_admin,
        now(),
    )
    .await?;
    let status = if invite.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(InviteResponse {
            address: invite.address,
            invite: invite.code,
            expires_at: invite.expires_at,
        }),
    ))
}

#[utoipa::path(
    post,
    path = "/admin/users/{address}/state",
    tag = "admin",
    summary = "Disable or re-enable an enrolled account (not one's own); disabling ends its sessions",
    params(("address" = String, Path, description = "E-mail address")),
    request_body = AccountStateRequest,
    responses(
        (status = 204, description = "Done"),
        (status = 400, description = "`invalid_request`: state is not active or disabled; `invalid_address`", body = ErrorBody),
        (status = 403, description = "`not_admin`", body = ErrorBody),
        (status = 404, description = "`unknown_user`", body = ErrorBody),
        (status = 409, description = "`own_account`, `not_enrolled`", body = ErrorBody),
    )
)]
async fn set_state(
    State(st): State<AppState>,
    AdminAuthed(auth): AdminAuthed,
    ApiPath(address): ApiPath<String>,
    ApiJson(req): ApiJson<AccountStateRequest>,
) -> ApiResult<StatusCode> {
    let enabled = enabling(&req)?;
    service::accounts::set_state(
        st.store.as_ref(),
        &Actor::Admin(auth.account.address.clone()),
        &address,
        enabled,
        now(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What an `AccountStateRequest` asks for: enable (`active`) or disable (`disabled`).
pub(super) fn enabling(req: &AccountStateRequest) -> ApiResult<bool> {
    match req.state.as_str() {
        "active" => Ok(true),
        "disabled" => Ok(false),
        _ => Err(ApiError::bad_request(
            "invalid_request",
            "state must be active or disabled",
        )),
    }
}

#[utoipa::path(
    get,
    path = "/admin/status",
    tag = "admin",
    summary = "The node's status: accounts, messages, log, sessions, federated peers",
    responses(
        (status = 200, description = "The status", body = NodeStatus),
        (status = 403, description = "`not_admin`", body = ErrorBody),
    )
)]
async fn status(State(st): State<AppState>, _: AdminAuthed) -> ApiResult<Json<NodeStatus>> {
    let now = now();
    let mut accounts = AccountCounts::default();
    for a in st.store.accounts().await? {
        if service::guests::is_guest(&a) {
            continue;
        }
        match a.state {
            AccountState::Active => accounts.active += 1,
            AccountState::Invited => accounts.invited += 1,
            AccountState::Disabled => accounts.disabled += 1,
        }
        accounts.admins += a.is_admin as u64;
    }
    let c = st.store.node_counts(now).await?;
    Ok(Json(NodeStatus {
        domain: st.config.domain.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at: *STARTED,
        ca_fingerprint: st.ca.fingerprint().to_hex(),
        node_key: st.node_key_hex.clone(),
        accounts,
        messages: c.messages,
        stored_bytes: c.stored_bytes,
        log_entries: c.log_entries,
        last_checkpoint_at: c.last_checkpoint_at,
        live_sessions: c.live_sessions,
        peers: peer_views(&st).await?,
    }))
}

/// Every peer with its link state and backlog.
async fn peer_views(st: &AppState) -> ApiResult<Vec<PeerView>> {
    Ok(service::peers::list(&*st.store)
        .await?
        .into_iter()
        .map(|p| PeerView {
            domain: p.record.domain,
            peer_id: p.record.peer_id,
            addrs: p.record.addrs,
            ca_fingerprint: p.record.ca_fingerprint,
            added_at: p.record.added_at,
            state: p.record.state,
            state_at: p.record.state_at,
            last_error: p.record.last_error,
            retry_at: p.record.retry_at,
            queued: p.queued,
        })
        .collect())
}

#[utoipa::path(
    get,
    path = "/admin/peers",
    tag = "admin",
    summary = "The federated peers an administrator authorised",
    description = "Domain, peer ID, addresses, CA fingerprint, link state (new, connected, backing_off, disconnected), last error, next retry and how many messages are queued for each. Peering itself is an admin CLI action (`sealpost admin peer add`).",
    responses(
        (status = 200, description = "The peers", body = AdminPeersResponse),
        (status = 403, description = "`not_admin`", body = ErrorBody),
    )
)]
async fn peers(State(st): State<AppState>, _: AdminAuthed) -> ApiResult<Json<AdminPeersResponse>> {
    Ok(Json(AdminPeersResponse {
        peers: peer_views(&st).await?,
    }))
}

/// The peer's organisation record, asked of its node over QUIC (not over HTTPS: the answer
/// comes from the very node key that was pinned), and how it compares with the pins.
#[utoipa::path(
    get,
    path = "/admin/peers/{domain}/org",
    tag = "admin",
    summary = "A peer's organisation record, asked of its node over the federation link",
    description = "Over QUIC, authenticated by the pinned node key; says whether its domain, peer ID and CA fingerprint still match what was pinned at peering.",
    params(("domain" = String, Path, description = "The peer's domain")),
    responses(
        (status = 200, description = "The record and how it compares with the pins", body = PeerOrgResponse),
        (status = 403, description = "`not_admin`", body = ErrorBody),
        (status = 404, description = "`unknown_peer`", body = ErrorBody),
        (status = 502, description = "`peer_unreachable`, `bad_peer_answer`", body = ErrorBody),
        (status = 503, description = "`federation_off`", body = ErrorBody),
    )
)]
async fn peer_org(
    State(st): State<AppState>,
    _: AdminAuthed,
    ApiPath(domain): ApiPath<String>,
) -> ApiResult<Json<PeerOrgResponse>> {
    let domain = domain.to_ascii_lowercase();
    let peer =
        st.store.peer(&domain).await?.ok_or_else(|| {
            ApiError::not_found("unknown_peer", format!("{domain} is not a peer"))
        })?;
    let link = st.federation.get().ok_or_else(|| {
        ApiError::unavailable("federation_off", "federation is not running on this node")
    })?;
    let text = link.org_record(&peer.peer_id).await.map_err(|e| {
        ApiError::bad_gateway(
            "peer_unreachable",
            format!("{domain}'s node did not answer: {e}"),
        )
    })?;
    let record: OrgInfo = serde_json::from_str(&text).map_err(|e| {
        ApiError::bad_gateway(
            "bad_peer_answer",
            format!("{domain}'s node sent an organisation record we cannot read: {e}"),
        )
    })?;
    let mut mismatches = Vec::new();
    if record.domain != peer.domain {
        mismatches.push(format!("domain is {}", record.domain));
    }
    if record.peer_id != peer.peer_id {
        mismatches.push(format!("peer ID is {}", record.peer_id));
    }
    if !record
        .ca_fingerprint
        .eq_ignore_ascii_case(&peer.ca_fingerprint)
    {
        mismatches.push(format!("CA fingerprint is {}", record.ca_fingerprint));
    }
    Ok(Json(PeerOrgResponse {
        domain: peer.domain,
        record,
        matches_pinned: mismatches.is_empty(),
        mismatches,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn session_ids_are_stable_and_not_the_hash() {
        let h = [7u8; 32];
        assert_eq!(super::session_id(&h), super::session_id(&h));
        assert_eq!(super::session_id(&h).len(), 24);
        assert!(!hex::encode(h).contains(&super::session_id(&h)));
    }
}
