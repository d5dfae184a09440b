//! The HTTP API (`/api/v1`): JSON in and out, one error type, a body limit on every route,
//! authentication on every route that touches an account, and an OpenAPI document.
//!
//! Handlers are thin: they check what the request claims and call storage. They never see a
//! password, an unwrapped key or any plaintext: the client does all cryptography.

mod accounts;
mod app_passwords;
mod compliance;
mod compliance_key;
mod console;
pub mod error;
mod guests;
mod mail;
pub mod openapi;
mod ops;
mod outside_keys;
mod pickup;
mod serve;
mod smime;
pub mod trust;
pub mod web;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

pub use error::{ApiError, ApiResult};
pub use ops::{failed_checks, metrics_app, run_metrics};

use crate::service::Context;
use crate::storage::{Account, AccountState};

/// Everything a request handler may use: the service layer's [`Context`] (which it
/// dereferences to, so `st.config`, `st.store`, … read through) and what only HTTP needs.
#[derive(Clone)]
pub struct AppState {
    pub inner: Arc<Inner>,
}

pub struct Inner {
    pub context: Arc<Context>,
    /// Keyed secret for deterministic decoy KDF salts of unknown addresses.
    pub decoy_key: [u8; 32],
    auth_limiter: RateLimiter,
    /// Pickup opens and unlocks per address and minute (`pickup.per_ip_per_minute`).
    pickup_ips: crate::service::throttle::PerMinute,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl std::ops::Deref for Inner {
    type Target = Context;
    fn deref(&self) -> &Context {
        &self.context
    }
}

impl AppState {
    /// The HTTP side over `context`, with its secrets derived from the node key.
    pub fn new(context: Context, node_key: &ed25519_dalek::SigningKey) -> AppState {
        let config = &context.config;
        let decoy_key = crate::keys::derive_subkey(node_key, b"sealpost/v1/decoy-salt");
        let rate = config.http.auth_rate_per_sec;
        let pickup_ips = crate::service::throttle::PerMinute::new(config.pickup.per_ip_per_minute);
        AppState {
            inner: Arc::new(Inner {
                context: Arc::new(context),
                decoy_key,
                auth_limiter: RateLimiter::new(rate as f64, rate as f64 * 10.0),
                pickup_ips,
            }),
        }
    }
}

/// The API's routes, relative to [`crate::proto::API_PREFIX`], each registered together with
/// its OpenAPI description (`routes!` reads the handler's `#[utoipa::path]`): register routes
/// here only that way, never with `.route`, so that the document (`openapi.rs`) lists exactly
/// what is served.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(accounts::org))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(accounts::enroll))
        .routes(routes!(accounts::login_params))
        .routes(routes!(accounts::login))
        .routes(routes!(accounts::logout))
        .routes(routes!(accounts::me))
        .routes(routes!(accounts::totp_setup))
        .routes(routes!(accounts::totp_confirm))
        .routes(routes!(accounts::totp_disable))
        .routes(routes!(accounts::user_cert))
        .routes(routes!(mail::envelope))
        // Uploads stream to disk under their own limit (limits.max_message_bytes).
        .routes(routes!(mail::upload).layer(DefaultBodyLimit::disable()))
        .routes(routes!(mail::submit))
        .routes(routes!(mail::mailbox))
        .routes(routes!(mail::message, mail::delete))
        .routes(routes!(mail::part))
        .routes(routes!(mail::mark_read))
        .routes(routes!(mail::move_message))
        .routes(routes!(mail::dismiss_notice))
        .routes(routes!(mail::evidence))
        .routes(routes!(mail::receipt))
        .routes(routes!(pickup::open))
        .routes(routes!(pickup::unlock))
        .routes(routes!(pickup::part))
        .routes(routes!(pickup::withdraw))
        .routes(routes!(pickup::relock))
        .routes(routes!(pickup::reply_envelope))
        // Reply uploads stream to disk under their own limit, as /blobs.
        .routes(routes!(pickup::upload).layer(DefaultBodyLimit::disable()))
        .routes(routes!(pickup::submit))
        .routes(routes!(pickup::thread))
        .routes(routes!(pickup::thread_part))
        .routes(routes!(pickup::receipt))
        .routes(routes!(trust::trust))
        .routes(routes!(trust::certify))
        .routes(routes!(guests::upgrade))
        .routes(routes!(guests::guests))
        .routes(routes!(guests::set_guest_state))
        .routes(routes!(guests::remove_guest))
        .routes(routes!(outside_keys::lookup))
        .routes(routes!(outside_keys::list, outside_keys::import))
        .routes(routes!(outside_keys::remove))
        .routes(routes!(
            outside_keys::admin_list,
            outside_keys::admin_import
        ))
        .routes(routes!(outside_keys::admin_remove))
        .routes(routes!(
            app_passwords::list_app_passwords,
            app_passwords::create_app_password
        ))
        .routes(routes!(app_passwords::revoke_app_password))
        .routes(routes!(smime::issue_certificate, smime::stored_key))
        .routes(routes!(compliance_key::install))
        .routes(routes!(compliance_key::add_packet))
        .merge(console::routes())
        .merge(compliance::routes())
}

/// The router with every route, limit and fallback.
pub fn app(state: AppState) -> Router {
    let (api, _) = routes().split_for_parts();
    let api = api
        // After every route: it applies to the routes registered so far.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(no_route);
    let directory = sealpost_directory::router(
        Arc::new(crate::directory_store::NodeDirectory {
            store: state.store.clone(),
            context: state.context.clone(),
            ca: Arc::new(state.ca.clone().strip_secret_key_material()),
            domain: state.config.domain.to_ascii_lowercase(),
        }),
        sealpost_directory::DirectoryConfig::new(&state.config.domain),
    );
    let routes = Router::new()
        .nest(crate::proto::API_PREFIX, api)
        // The directory keeps its protocols' own answers (plain text), wrong methods included.
        .merge(directory)
        .route("/healthz", get(|| async { "ok" }))
        // Health for orchestrators and load balancers (docs/operations.md, "Health"):
        // unauthenticated, a status word and at most the names of failed checks.
        .route("/livez", get(ops::livez))
        .route("/readyz", get(ops::readyz))
        // The web app (api/web.rs): static files, then cookie sessions and CSP for everything.
        .route("/", get(web::index))
        // The pickup page (its token stays in the fragment, which browsers never send).
        .route("/pickup", get(web::pickup_page))
        .route("/assets/{name}", get(web::asset))
        .fallback(no_route);
    layered(routes, state.clone()).with_state(state)
}

/// The layers every route is served under: the JSON body limit, security headers, the web
/// app's cookie session, the conversion of a panic anywhere inside into a logged `500
/// internal` (the connection and the other requests carry on either way) and, outermost, the
/// request metrics (which so count every answer, a panic's too).
fn layered(routes: Router<AppState>, state: AppState) -> Router<AppState> {
    let json_limit = state.config.http.max_json_body;
    routes
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::map_response(web::headers))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            web::cookie_session,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            error::panic_response,
        ))
        .layer(axum::middleware::from_fn_with_state(state, ops::track))
}

async fn no_route() -> ApiError {
    ApiError::not_found("no_route", "no such route")
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route does not take {method}: see /api/v1/openapi.json"),
    )
}

async fn security_headers(mut resp: axum::response::Response) -> axum::response::Response {
    set_security_headers(resp.headers_mut());
    resp
}

fn set_security_headers(h: &mut HeaderMap) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// Serves `app` on `listener` until `shutdown` resolves, under the timeouts and connection
/// limits of `http` in the configuration (see [`serve`]).
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    web::warn_if_missing(&state.config.web);
    let limits = serve::ConnLimits::from_config(&state.config.http);
    serve::serve(listener, app(state), limits, shutdown).await
}

/// `axum::Json` whose rejections are [`ApiError`]s with stable codes.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        use axum::extract::rejection::JsonRejection as R;
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(R::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send JSON with Content-Type: application/json",
            )),
            Err(R::JsonSyntaxError(e)) => Err(ApiError::bad_request(
                "malformed_json",
                format!("the request body is not valid JSON: {}", e.body_text()),
            )),
            Err(R::JsonDataError(e)) => Err(ApiError::bad_request(
                "invalid_request",
                format!(
                    "the request does not have the expected fields: {}",
                    e.body_text()
                ),
            )),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the request body is too large",
            )),
            Err(e) => Err(ApiError::bad_request("bad_request", e.body_text())),
        }
    }
}

/// `axum::extract::Path` whose rejections are [`ApiError`]s: a path parameter that does not
/// parse (a part index that is not a number, a percent-encoded address that is not UTF-8) is
/// `400 invalid_path`.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(e) => Err(rejection("invalid_path", e.status(), e.body_text())),
        }
    }
}

/// `axum::extract::Query` whose rejections are [`ApiError`]s: `400 invalid_query`.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(rejection("invalid_query", e.status(), e.body_text())),
        }
    }
}

/// An extractor's rejection as an [`ApiError`]: the client's mistake with `code`, or (a route
/// declared without the parameter its handler reads) a server fault.
fn rejection(code: &'static str, status: StatusCode, text: String) -> ApiError {
    if status.is_server_error() {
        ApiError::internal(text)
    } else {
        ApiError::bad_request(code, text)
    }
}

/// An authenticated request: a live session of an active account.
pub struct Authed {
    pub account: Account,
    pub token_hash: [u8; 32],
}

pub use crate::service::accounts::token_hash;

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauth = || {
            ApiError::unauthorized(
                "unauthenticated",
                "log in first: this route needs a valid session token (Authorization: Bearer …)",
            )
        };
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(unauth)?;
        // Looked up by its SHA-256: the token is 256 random bits, so the hash is as good as
        // the token for lookup and a stolen database yields no usable session.
        let token_hash = token_hash(token.trim());
        let now = crate::now();
        let account = state
            .store
            .session_account(token_hash, now)
            .await?
            .ok_or_else(unauth)?;
        if account.state != AccountState::Active {
            return Err(ApiError::forbidden(
                "account_disabled",
                "this account is disabled",
            ));
        }
        Ok(Authed {
            account,
            token_hash,
        })
    }
}

/// An authenticated request of an administrator. An extractor rather than a check in the
/// handler, so that it runs before the body is read: a non-admin learns nothing about what an
/// admin route would accept.
pub struct AdminAuthed(pub Authed);

impl FromRequestParts<AppState> for AdminAuthed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let auth = Authed::from_request_parts(parts, state).await?;
        if !auth.account.is_admin {
            return Err(ApiError::forbidden(
                "not_admin",
                "only administrators of this organisation may do this",
            ));
        }
        Ok(AdminAuthed(auth))
    }
}

/// The client's address, for rate limiting (absent when the router is driven without a socket).
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// Whose token bucket a request draws on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Bucket {
    Ip(IpAddr),
    /// A known device (a valid device token for the address it names) has a bucket of its
    /// own, so that others behind its address (one NAT, one proxy) cannot use up its share.
    Device(crate::service::throttle::DeviceId),
}

/// Token buckets per client address (or known device) for the guessable routes.
struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<Bucket, (f64, Instant)>>,
}

impl RateLimiter {
    fn new(rate: f64, burst: f64) -> Self {
        RateLimiter {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token, or says how many seconds until one is available.
    fn check(&self, bucket: Option<Bucket>, now: Instant) -> Result<(), u64> {
        let Some(bucket) = bucket else {
            return Ok(());
        };
        let mut buckets = self.buckets.lock().expect("rate limiter");
        if buckets.len() > 100_000 {
            // Bounded memory: forget addresses whose bucket has refilled.
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, (t, at)| *t + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = buckets.entry(bucket).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil() as u64)
        }
    }
}

impl AppState {
    pub(crate) fn limit_auth(&self, ip: &ClientIp) -> ApiResult<()> {
        self.limit_login(ip, None)
    }

    /// [`AppState::limit_auth`] for the login routes, where a known device draws on its own
    /// bucket instead of its address's.
    pub(crate) fn limit_login(
        &self,
        ip: &ClientIp,
        device: Option<crate::service::throttle::DeviceId>,
    ) -> ApiResult<()> {
        let bucket = device.map(Bucket::Device).or(ip.0.map(Bucket::Ip));
        self.auth_limiter
            .check(bucket, Instant::now())
            .map_err(|retry| {
                ApiError::too_many(
                    "rate_limited",
                    format!("too many attempts from your address; retry in {retry} s"),
                    retry,
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_allows_a_burst_then_refuses_then_refills() {
        let l = RateLimiter::new(1.0, 3.0);
        let ip = Some(Bucket::Ip(IpAddr::from([127, 0, 0, 1])));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check(ip, t0).is_ok());
        }
        assert_eq!(l.check(ip, t0), Err(1));
        // Another address, or a known device behind the same one, has its own bucket.
        assert!(
            l.check(Some(Bucket::Ip(IpAddr::from([127, 0, 0, 2]))), t0)
                .is_ok()
        );
        let device = Bucket::Device(crate::service::throttle::DeviceId([1; 16]));
        assert!(l.check(Some(device), t0).is_ok());
        assert!(
            l.check(ip, t0 + std::time::Duration::from_millis(1100))
                .is_ok()
        );
    }
}
