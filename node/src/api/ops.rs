//! What operations reads: `/livez` and `/readyz` on the main listener, the request metrics
//! every route is counted in, and the metrics listener (`[metrics] listen`, `GET /metrics`).
//!
//! The health answers carry a status word and, for `/readyz`, the names of the checks that
//! failed: never a path, an error's text or anything about the data. The request metrics
//! label a request by its route's template (axum's `MatchedPath`), never by the path asked
//! for, which can hold an address or a message ID.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use crate::metrics::Metrics;
use crate::service::Context;

/// How long one readiness check or the queue counts of one scrape may take before they count
/// as failed (a database that does not answer within this is not ready).
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Counts and times every request by its route template (outside every other layer but the
/// panic catcher, so refusals by the layers inside are counted too).
pub(super) async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let method = req.method().clone();
    let started = Instant::now();
    let resp = next.run(req).await;
    st.metrics.http_request(
        route.as_deref().unwrap_or("unmatched"),
        method.as_str(),
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}

/// `GET /livez`: the process is alive and serving HTTP; checks nothing else.
pub(super) async fn livez() -> &'static str {
    "alive"
}

/// `GET /readyz`: `ready`, or `503` and `not ready:` with the failed checks' names
/// (`database`, `blobs`, `disk`).
pub(super) async fn readyz(State(st): State<AppState>) -> Response {
    let failed = failed_checks(&st.context).await;
    if failed.is_empty() {
        return "ready".into_response();
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not ready: {}", failed.join(" ")),
    )
        .into_response()
}

/// The names of the readiness checks that fail now: the database answers a read, the blob
/// store takes a write, the data disk has the configured room. Each through the storage
/// traits, so another back-end answers them its own way (an object store has no disk).
pub async fn failed_checks(ctx: &Context) -> Vec<&'static str> {
    let mut failed = Vec::new();
    let database = tokio::time::timeout(CHECK_TIMEOUT, ctx.store.ping()).await;
    if !matches!(database, Ok(Ok(()))) {
        failed.push("database");
    }
    let blobs = tokio::time::timeout(CHECK_TIMEOUT, ctx.blobs.probe_write()).await;
    if !matches!(blobs, Ok(Ok(()))) {
        failed.push("blobs");
    }
    let storage = &ctx.config.storage;
    match ctx.blobs.disk_space() {
        None => {}
        Some(Ok(space)) => {
            let floor = (space.total / 100)
                .saturating_mul(storage.ready_min_free_percent as u64)
                .max(storage.ready_min_free_bytes);
            if space.available < floor {
                failed.push("disk");
            }
        }
        Some(Err(_)) => failed.push("disk"),
    }
    if !failed.is_empty() {
        // Why, for the operator (the answer names only the checks).
        tracing::warn!(failed = ?failed, "not ready");
    }
    failed
}

/// The metrics listener's router: `GET /metrics` only.
pub fn metrics_app(context: Arc<Context>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(context)
}

/// `GET /metrics`: the queue gauges read from storage now, then the whole registry.
async fn scrape(State(ctx): State<Arc<Context>>) -> Response {
    refresh_queues(&ctx).await;
    let mut resp = ctx.metrics.encode().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

/// Sets the queue-depth gauges from storage; on a failure or timeout they keep their last
/// values (and the failure is logged), so that one slow count does not fail the scrape.
async fn refresh_queues(ctx: &Context) {
    match tokio::time::timeout(CHECK_TIMEOUT, ctx.store.queue_depths()).await {
        Ok(Ok(q)) => Metrics::set_queue_depths(&ctx.metrics, &q.peers, &q.smtp),
        Ok(Err(e)) => tracing::warn!(error = %e, "could not count the queues for metrics"),
        Err(_) => tracing::warn!("counting the queues for metrics timed out"),
    }
}

/// Serves the metrics listener until `shutdown`, with the main listener's time bounds and a
/// small cap on connections (Prometheus holds one).
pub async fn run_metrics(
    listener: tokio::net::TcpListener,
    context: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut limits = super::serve::ConnLimits::from_config(&context.config.http);
    limits.max_connections = 16;
    limits.max_per_ip = 8;
    super::serve::serve(listener, metrics_app(context), limits, shutdown).await
}
