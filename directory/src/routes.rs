//! The HTTP face of the directory: axum handlers for VKS, HKP, WKD and the organisation
//! record, over a [`DirectoryStore`].
//!
//! Handlers are thin: parse with the pure modules, ask the store, filter what it returned (the
//! store is trusted to be correct, but what we serve must match what was asked), serialize.
//! Errors are plain text with the HTTP status the protocols expect. Nothing here decides trust.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sequoia_openpgp::{Cert, Fingerprint, KeyHandle, KeyID};

use crate::DirectoryConfig;
use crate::certs::{self, KeytextError};
use crate::hkp::{self, Op, Search};
use crate::index;
use crate::merge::{self, MergeOutcome, NewUserIds};
use crate::store::{DirectoryError, DirectoryStore, UpdateRight};
use crate::vks;
use crate::wkd;

#[derive(Clone)]
struct AppState {
    store: Arc<dyn DirectoryStore>,
    config: Arc<DirectoryConfig>,
}

/// The directory's routes, with their state already applied, so the result merges into a
/// router of any state type: `node_router.merge(sealpost_directory::router(store, config))`.
///
/// Only `POST /pks/add` reads a body; it is limited to
/// [`DirectoryConfig::max_add_body_bytes`]. Rate limiting and TLS are the node's (its layers
/// wrap these routes like its own).
pub fn router<S: Clone + Send + Sync + 'static>(
    store: Arc<dyn DirectoryStore>,
    config: DirectoryConfig,
) -> Router<S> {
    let add_limit = config.max_add_body_bytes();
    let state = AppState {
        store,
        config: Arc::new(config),
    };
    Router::new()
        .route("/vks/v1/by-fingerprint/{fpr}", get(vks_by_fingerprint))
        .route("/vks/v1/by-keyid/{keyid}", get(vks_by_keyid))
        .route("/vks/v1/by-email/{email}", get(vks_by_email))
        .route("/pks/lookup", get(hkp_lookup))
        .route(
            "/pks/add",
            post(hkp_add).layer(DefaultBodyLimit::max(add_limit)),
        )
        .route("/.well-known/openpgpkey/hu/{hash}", get(wkd_direct))
        .route("/.well-known/openpgpkey/policy", get(wkd_policy))
        .route(
            "/.well-known/openpgpkey/{domain}/hu/{hash}",
            get(wkd_advanced),
        )
        .route(
            "/.well-known/openpgpkey/{domain}/policy",
            get(wkd_advanced_policy),
        )
        .route("/.well-known/sealpost/org", get(org_record))
        // Plain text like every other answer here (axum's own 405 has an empty body).
        .method_not_allowed_fallback(|| async {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        })
        .with_state(state)
}

// ---- responses -------------------------------------------------------------------------

/// A plain-text answer (HKP and VKS errors are plain text).
fn text(status: StatusCode, message: impl Into<String>) -> Response {
    let mut body = message.into();
    body.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Storage failures: the detail goes to the log, the client learns only that it failed.
fn store_failed(e: DirectoryError) -> Response {
    match e {
        DirectoryError::Overloaded => {
            let mut r = text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the directory is overloaded; retry later",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
        e => {
            tracing::error!(error = %e, "directory store failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error in the key directory",
            )
        }
    }
}

/// Public keys with a content type; readable from any origin (they are public, and web
/// clients such as OpenPGP.js fetch WKD and VKS across origins).
fn keys_response(content_type: &'static str, body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        body,
    )
        .into_response()
}

fn armored_response(certs: &[Cert]) -> Response {
    match certs::armored(certs) {
        Ok(body) => keys_response("application/pgp-keys", body),
        Err(e) => store_failed(DirectoryError::storage(format!("serializing: {e}"))),
    }
}

// ---- look-ups shared by the protocols ----------------------------------------------------

/// The certificate with this primary or subkey fingerprint.
async fn find_by_fingerprint(
    state: &AppState,
    fpr: &Fingerprint,
) -> Result<Vec<Cert>, DirectoryError> {
    if let Some(cert) = state.store.by_fingerprint(fpr).await?
        && cert.fingerprint() == *fpr
    {
        return Ok(vec![cert]);
    }
    // Not a primary key: maybe a subkey (VKS allows both). The store indexes key IDs of
    // subkeys; keep only certificates with a key of exactly this fingerprint.
    let mut certs = state.store.by_keyid(&KeyID::from(fpr)).await?;
    certs.retain(|c| certs::has_fingerprint(c, fpr));
    certs.truncate(state.config.max_results);
    Ok(certs)
}

async fn find_by_keyid(state: &AppState, keyid: &KeyID) -> Result<Vec<Cert>, DirectoryError> {
    let mut certs = state.store.by_keyid(keyid).await?;
    certs.retain(|c| certs::has_key(c, &KeyHandle::from(keyid.clone())));
    certs.truncate(state.config.max_results);
    Ok(certs)
}

async fn find_by_email(state: &AppState, address: &str) -> Result<Vec<Cert>, DirectoryError> {
    let mut certs = state.store.by_email(address).await?;
    certs.retain(|c| certs::has_address(c, address));
    certs.truncate(state.config.max_results);
    Ok(certs)
}

async fn find_by_text(
    state: &AppState,
    text: &str,
    exact: bool,
) -> Result<Vec<Cert>, DirectoryError> {
    let mut certs = state.store.search(text, state.config.max_results).await?;
    if exact {
        certs.retain(|c| c.userids().any(|u| u.userid().value() == text.as_bytes()));
    }
    certs.truncate(state.config.max_results);
    Ok(certs)
}

// ---- VKS -----------------------------------------------------------------------------------

fn vks_answer(
    result: Result<Vec<Cert>, DirectoryError>,
    what: impl FnOnce() -> String,
) -> Response {
    match result {
        Ok(certs) if certs.is_empty() => text(
            StatusCode::NOT_FOUND,
            format!("No key found for {}", what()),
        ),
        Ok(certs) => armored_response(&certs),
        Err(e) => store_failed(e),
    }
}

async fn vks_by_fingerprint(State(state): State<AppState>, Path(fpr): Path<String>) -> Response {
    match vks::parse_fingerprint(&fpr) {
        Ok(fpr) => vks_answer(find_by_fingerprint(&state, &fpr).await, || {
            format!("fingerprint {}", fpr.to_hex())
        }),
        Err(e) => text(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn vks_by_keyid(State(state): State<AppState>, Path(keyid): Path<String>) -> Response {
    match vks::parse_keyid(&keyid) {
        Ok(id) => vks_answer(find_by_keyid(&state, &id).await, || {
            format!("key ID {}", id.to_hex())
        }),
        Err(e) => text(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn vks_by_email(State(state): State<AppState>, Path(email): Path<String>) -> Response {
    match vks::parse_email(&email) {
        Ok(address) => {
            let found = find_by_email(&state, &address).await;
            vks_answer(found, || format!("address {address}"))
        }
        Err(e) => text(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

// ---- HKP -----------------------------------------------------------------------------------

async fn hkp_lookup(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let lookup = match hkp::parse_lookup(query.as_deref().unwrap_or("")) {
        Ok(l) => l,
        Err(e) => return text(e.status(), e.to_string()),
    };
    let found = match &lookup.search {
        Search::Fingerprint(f) => find_by_fingerprint(&state, f).await,
        Search::KeyId(id) => find_by_keyid(&state, id).await,
        Search::Email(a) => find_by_email(&state, a).await,
        Search::Text(t) => find_by_text(&state, t, lookup.exact).await,
    };
    let certs = match found {
        Ok(c) if c.is_empty() => return text(StatusCode::NOT_FOUND, "No keys found"),
        Ok(c) => c,
        Err(e) => return store_failed(e),
    };
    match lookup.op {
        Op::Get => armored_response(&certs),
        Op::Index | Op::VIndex if lookup.machine_readable => keys_response(
            "text/plain; charset=utf-8",
            index::mr_index(&certs, SystemTime::now()).into_bytes(),
        ),
        Op::Index | Op::VIndex => {
            let search = match &lookup.search {
                Search::Fingerprint(f) => f.to_hex(),
                Search::KeyId(id) => id.to_hex(),
                Search::Email(a) => a.clone(),
                Search::Text(t) => t.clone(),
            };
            let listing =
                index::human_index(&certs, &search, lookup.op == Op::VIndex, SystemTime::now());
            keys_response("text/plain; charset=utf-8", listing.into_bytes())
        }
    }
}

/// The token of an `Authorization: Bearer TOKEN` header; `None` if absent or another scheme.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

const UPDATE_NEEDS_OWNER: &str = "updates require an authenticated session of the key's owner";

async fn hkp_add(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "key update too large (at most {} bytes)",
                    state.config.max_add_body_bytes()
                ),
            );
        }
        Err(e) => return text(e.status(), e.body_text()),
    };
    let update = match certs::parse_keytext(&body, state.config.max_keytext_bytes()) {
        Ok(c) => c,
        Err(e @ KeytextError::TooLarge { .. }) => {
            return text(StatusCode::PAYLOAD_TOO_LARGE, e.to_string());
        }
        Err(e @ KeytextError::SeveralCertificates) => {
            return text(StatusCode::UNPROCESSABLE_ENTITY, e.to_string());
        }
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let fpr = update.fingerprint();

    // Authorisation before anything costly: verifying signatures and asking the store about
    // issuers are for the key's owner only.
    let bearer = bearer_token(&headers);
    let new_user_id_addresses = match state.store.may_update(bearer, &fpr).await {
        Ok(UpdateRight::Allowed {
            new_user_id_addresses,
        }) => new_user_id_addresses,
        Ok(_) if bearer.is_none() => {
            let mut r = text(StatusCode::UNAUTHORIZED, UPDATE_NEEDS_OWNER);
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
        Ok(_) => return text(StatusCode::FORBIDDEN, UPDATE_NEEDS_OWNER),
        Err(e) => return store_failed(e),
    };

    let limits = state.config.merge_limits();
    if let Err(e) = merge::check_update_limits(&update, &limits) {
        return text(e.status(), e.to_string());
    }
    let existing = match state.store.by_fingerprint(&fpr).await {
        Ok(c) => c.filter(|c| c.fingerprint() == fpr),
        Err(e) => return store_failed(e),
    };
    let certifiers = match known_certifiers(&state, &update, limits.max_signatures_per_update).await
    {
        Ok(c) => c,
        Err(e) => return store_failed(e),
    };
    let outcome = match merge::merge_update_verified(
        existing.as_ref(),
        update,
        &certifiers,
        NewUserIds::ForAddresses(&new_user_id_addresses),
        &limits,
    ) {
        Ok(o) => o,
        Err(e) => return text(e.status(), e.to_string()),
    };
    let summary = describe(&fpr, &outcome);
    let MergeOutcome {
        cert,
        new_signatures,
        dropped_unknown_issuer,
        dropped_invalid,
        secret_material_stripped,
        ..
    } = outcome;
    if let Err(e) = state.store.store(cert).await {
        return store_failed(e);
    }
    tracing::info!(
        fingerprint = %fpr,
        new_signatures,
        dropped_unknown_issuer,
        dropped_invalid,
        secret_material_stripped,
        "directory: certificate updated"
    );
    text(StatusCode::OK, summary)
}

/// The certificates of the update's third-party issuers that the store says it knows. An issuer
/// that is known but whose certificate the store cannot produce cannot be verified, so its
/// signatures are dropped like an unknown issuer's.
async fn known_certifiers(
    state: &AppState,
    update: &Cert,
    limit: usize,
) -> Result<Vec<Cert>, DirectoryError> {
    let mut out: Vec<Cert> = Vec::new();
    for issuer in merge::third_party_issuers(update, limit) {
        if !state.store.is_known_certifier(&issuer).await? {
            continue;
        }
        let found = match &issuer {
            KeyHandle::Fingerprint(f) => find_by_fingerprint(state, f).await?,
            KeyHandle::KeyID(id) => find_by_keyid(state, id).await?,
        };
        for cert in found {
            if !out.iter().any(|c| c.fingerprint() == cert.fingerprint()) {
                out.push(cert);
            }
        }
    }
    Ok(out)
}

/// The HKP-style answer to a successful update, saying what was kept and dropped.
fn describe(fpr: &Fingerprint, o: &MergeOutcome) -> String {
    let mut s = format!(
        "Key {} updated: {} new signature(s)",
        fpr.to_hex(),
        o.new_signatures
    );
    if o.dropped_unknown_issuer > 0 {
        s.push_str(&format!(
            "; {} third-party signature(s) dropped (issuer not known to this directory)",
            o.dropped_unknown_issuer
        ));
    }
    if o.dropped_invalid > 0 {
        s.push_str(&format!(
            "; {} invalid signature(s) dropped",
            o.dropped_invalid
        ));
    }
    if o.secret_material_stripped {
        s.push_str("; secret key material was removed and not stored");
    }
    s
}

// ---- WKD -----------------------------------------------------------------------------------

/// The `l` parameter of a WKD query, if any; `Err` if it is given more than once.
fn local_part_param(query: Option<&str>) -> Result<Option<String>, ()> {
    let mut l = None;
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if name == "l" && l.replace(value.into_owned()).is_some() {
            return Err(());
        }
    }
    Ok(l)
}

async fn wkd_lookup(state: &AppState, hash: &str, query: Option<&str>) -> Response {
    let hash = match wkd::parse_hash(hash) {
        Ok(h) => h,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let l = match local_part_param(query) {
        Ok(l) => l,
        Err(()) => {
            return text(
                StatusCode::BAD_REQUEST,
                "parameter 'l' given more than once",
            );
        }
    };
    let domain = &state.config.domain;
    let found = match l {
        Some(l) => match wkd::check_local_part(hash, &l) {
            Ok(l) => find_by_email(state, &format!("{l}@{domain}").to_lowercase()).await,
            Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
        },
        None => state
            .store
            .by_wkd_hash(hash, domain)
            .await
            .map(|mut certs| {
                certs.retain(|c| wkd::has_hashed_address(c, hash, domain));
                certs.truncate(state.config.max_results);
                certs
            }),
    };
    match found {
        Ok(certs) if certs.is_empty() => text(StatusCode::NOT_FOUND, "No key found"),
        // WKD serves binary keys, never armored ones (draft section 3.1).
        Ok(certs) => match certs::binary(&certs) {
            Ok(body) => keys_response("application/octet-stream", body),
            Err(e) => store_failed(DirectoryError::storage(format!("serializing: {e}"))),
        },
        Err(e) => store_failed(e),
    }
}

async fn wkd_direct(
    State(state): State<AppState>,
    Path(hash): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    wkd_lookup(&state, &hash, query.as_deref()).await
}

async fn wkd_advanced(
    State(state): State<AppState>,
    Path((domain, hash)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    if !wkd::domain_matches(&state.config.domain, &domain) {
        return text(
            StatusCode::NOT_FOUND,
            "This directory serves no such domain",
        );
    }
    wkd_lookup(&state, &hash, query.as_deref()).await
}

/// The policy file: its presence says the domain runs a WKD; empty means default policy.
fn policy_response() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        "",
    )
        .into_response()
}

async fn wkd_policy() -> Response {
    policy_response()
}

async fn wkd_advanced_policy(
    State(state): State<AppState>,
    Path(domain): Path<String>,
) -> Response {
    if wkd::domain_matches(&state.config.domain, &domain) {
        policy_response()
    } else {
        text(
            StatusCode::NOT_FOUND,
            "This directory serves no such domain",
        )
    }
}

// ---- organisation record -----------------------------------------------------------------

async fn org_record(State(state): State<AppState>) -> Response {
    match state.store.org_record().await {
        Ok(record) => (
            [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
            axum::Json(record),
        )
            .into_response(),
        Err(e) => store_failed(e),
    }
}
