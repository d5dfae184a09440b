//! The browser app's side of the node: serving the built app (`webui/dist`) at `/` with a
//! strict Content-Security-Policy, and cookie sessions with CSRF protection.
//!
//! **Sessions.** A browser that logs in with `X-Sealpost-Session: cookie` gets its session
//! token only as an `HttpOnly; SameSite=Strict` cookie (`Secure` under TLS, see
//! `web.secure_cookies`), never in the response body, so script injected into the page cannot
//! read it. The body carries a CSRF token instead, which the app keeps in memory and sends back
//! as `X-CSRF-Token`. [`cookie_session`] turns a cookie into the bearer token the rest of the
//! API understands, and for state-changing methods only when that header holds the CSRF token
//! of *this* session (an HKDF of the session's token hash under a node secret, compared in
//! constant time): a cross-site request cannot know it. Bearer tokens (the CLI) are untouched.
//! A login also sets the device cookie (`Path=/api/v1/login`, kept across logouts), which
//! marks the browser as a known device of the account (`service/throttle.rs`).
//!
//! **Static files.** Served from a directory (not embedded) so the node builds without Node.js
//! and an operator can rebuild or patch the app without rebuilding the node; `web.dir` names
//! the directory (relative: from where the node was started). File names are checked against a strict
//! alphabet; nothing outside the directory is reachable.
//!
//! This module never sees a password or key: the app derives and encrypts everything itself.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use sha2::Sha256;

use super::{AppState, token_hash};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "sealpost_session";
/// Name of the device cookie (see `service/throttle.rs`).
pub const DEVICE_COOKIE: &str = "sealpost_device";
/// Header by which the CLI client presents its device token at login (the wire's).
pub use sealpost_proto::DEVICE_HEADER;
/// Header carrying the CSRF token on state-changing cookie-authenticated requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Header by which the web app asks `/login` for a cookie session.
pub const SESSION_MODE_HEADER: &str = "x-sealpost-session";

/// The policy of every response. `'wasm-unsafe-eval'` lets the app compile its Argon2id
/// WebAssembly (hash-wasm); it does not allow `eval` of JavaScript. No inline script or style,
/// no third-party origin; the page cannot be framed.
pub const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
    style-src 'self'; img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; \
    manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Security headers added to every response (the API's JSON included).
pub async fn headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    resp
}

/// The CSRF token of the session whose token hashes to `token_hash`.
pub fn csrf_token(st: &AppState, token_hash: &[u8; 32]) -> String {
    let mut out = [0u8; 32];
    // Keyed by the node's decoy-salt secret with its own label (the HKDF info), so the two
    // uses are independent.
    Hkdf::<Sha256>::new(Some(&st.decoy_key), token_hash)
        .expand(b"sealpost/v1/csrf", &mut out)
        .expect("32 bytes is a valid HKDF length");
    URL_SAFE_NO_PAD.encode(out)
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Turns the session cookie into `Authorization: Bearer` for the handlers. Safe methods need
/// nothing more (SameSite=Strict already keeps other sites' requests cookieless, and they
/// change nothing); others need the session's CSRF token. A request without one proceeds
/// without the session (so `/login` still works with a stale cookie); a wrong one is refused.
pub async fn cookie_session(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    if req.headers().contains_key(header::AUTHORIZATION) {
        return next.run(req).await;
    }
    let Some(token) = cookie_value(req.headers(), SESSION_COOKIE).map(str::to_owned) else {
        return next.run(req).await;
    };
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let Some(sent) = req
            .headers()
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes().to_vec())
        else {
            return next.run(req).await;
        };
        let expected = csrf_token(&st, &token_hash(&token));
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            sent.as_slice(),
        )) {
            return super::ApiError::forbidden(
                "csrf_failed",
                "this request did not come from the web app's current session: reload the page and log in again",
            )
            .into_response();
        }
    }
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
        req.headers_mut().insert(header::AUTHORIZATION, v);
    }
    next.run(req).await
}

/// Whether the login asked for a cookie session (the web app) rather than a bearer token.
pub fn wants_cookie(headers: &HeaderMap) -> bool {
    headers
        .get(SESSION_MODE_HEADER)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cookie"))
}

fn secure(st: &AppState, headers: &HeaderMap) -> bool {
    match st.config.web.secure_cookies.as_str() {
        "always" => true,
        "never" => false,
        _ => {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let name = match host.strip_prefix('[') {
                Some(v6) => v6.split(']').next().unwrap_or(""),
                None => host.split(':').next().unwrap_or(""),
            };
            let loopback = name == "localhost"
                || name.ends_with(".localhost")
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            !loopback
        }
    }
}

/// An `HttpOnly; SameSite=Strict` cookie (`Secure` unless served on loopback by HTTP).
fn cookie(
    st: &AppState,
    req_headers: &HeaderMap,
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
) -> HeaderValue {
    let secure = if secure(st, req_headers) {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("token is URL-safe base64")
}

/// The `Set-Cookie` for a new cookie session.
pub fn session_cookie(st: &AppState, req_headers: &HeaderMap, token: &str) -> HeaderValue {
    let ttl = st.config.accounts.session_ttl_secs;
    cookie(st, req_headers, SESSION_COOKIE, token, "/", ttl)
}

/// The `Set-Cookie` for a device token: sent back only to the login routes, and kept across
/// logouts (it marks the device, not a session).
pub fn device_cookie(st: &AppState, req_headers: &HeaderMap, token: &str) -> HeaderValue {
    let ttl = st.config.accounts.device_ttl_secs;
    let path = format!("{}/login", crate::proto::API_PREFIX);
    cookie(st, req_headers, DEVICE_COOKIE, token, &path, ttl)
}

/// The device token a request presents: the CLI's `X-Sealpost-Device` header, else the
/// browser's device cookie.
pub fn device_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(DEVICE_HEADER)
        .and_then(|v| v.to_str().ok())
        .or_else(|| cookie_value(headers, DEVICE_COOKIE))
}

/// The `Set-Cookie` that removes the session cookie.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    ))
    .expect("static cookie")
}

/// Says in the log, at start, where the web app is expected when it is not there.
pub(super) fn warn_if_missing(web: &crate::config::WebConfig) {
    let dir = web.app_dir();
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    if web.enabled && !dir.join("index.html").is_file() {
        tracing::warn!(dir = %dir.display(), "no web app in web.dir: / answers how to build it");
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "map" => "application/json",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

async fn file(st: &AppState, rel: &str) -> Response {
    if !st.config.web.enabled {
        return super::ApiError::not_found("no_route", "the web app is disabled on this node")
            .into_response();
    }
    let path = st.config.web.app_dir().join(rel);
    match tokio::fs::read(&path).await {
        Ok(bytes) => (
            [(header::CONTENT_TYPE, content_type(rel))],
            Body::from(bytes),
        )
            .into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if rel == "index.html" || rel == "pickup.html" {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    "The web app is not built, or not where web.dir says. Run `npm ci && npm run \
                     build` in webui/ and set web.dir in sealpost.toml to webui/dist (a relative \
                     path is taken from where the node was started).\n",
                )
                    .into_response()
            } else {
                super::ApiError::not_found("no_route", "no such file").into_response()
            }
        }
        Err(e) => {
            super::ApiError::internal(format!("reading {}: {e}", path.display())).into_response()
        }
    }
}

pub(super) async fn index(State(st): State<AppState>) -> Response {
    file(&st, "index.html").await
}

/// The pickup page: `pickup.html` of the built app (same CSP and headers as the app).
pub(super) async fn pickup_page(State(st): State<AppState>) -> Response {
    file(&st, "pickup.html").await
}

pub(super) async fn asset(State(st): State<AppState>, Path(name): Path<String>) -> Response {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !ok {
        return super::ApiError::not_found("no_route", "no such file").into_response();
    }
    file(&st, &format!("assets/{name}")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_values_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; sealpost_session=xyz ; b=2"),
        );
        assert_eq!(cookie_value(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie_value(&h, "b"), Some("2"));
        assert_eq!(cookie_value(&h, "sealpost"), None);
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(
            content_type("assets/app-1.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("x.wasm"), "application/wasm");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }
}
