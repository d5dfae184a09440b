//! The one error type of the HTTP API.
//!
//! Every failure answers `{code, message}` with a stable `code`. Client mistakes are not
//! logged above debug (they are the client's business, and logging them invites log floods);
//! server faults are logged with their cause, and the client gets no internals.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::proto::ErrorBody;
use crate::storage::{StorageError, blobs::BlobError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
    /// With `wrong_unlock_code`: wrong codes left before the pickup locks.
    pub attempts_left: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            attempts_left: None,
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }
    /// Another node (a peer) did not answer, or answered nonsense.
    pub fn bad_gateway(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, code, message)
    }
    pub fn too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the request is larger than this node's limit of {limit} bytes"),
        )
    }
    pub fn too_many(code: &'static str, message: impl Into<String>, retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, code, message)
        }
    }
    /// A server fault: logged here with its cause, reported to the client without it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the node failed to handle this request; it has been logged",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if !self.status.is_server_error() {
            tracing::debug!(code = self.code, status = %self.status, "request refused");
        }
        let body = ErrorBody {
            code: self.code.to_owned(),
            message: self.message,
            attempts_left: self.attempts_left,
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// The answer to a request whose handler (or middleware) panicked, for `tower-http`'s
/// `CatchPanicLayer` on the whole router: the panic's message goes to the log, the client gets
/// the same `500 internal` as any server fault and nothing of the message.
pub(crate) fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    let mut resp =
        ApiError::internal(format_args!("a request handler panicked: {message}")).into_response();
    // Outside the layers that add these to every other answer.
    super::set_security_headers(resp.headers_mut());
    resp
}

impl From<crate::service::ServiceError> for ApiError {
    /// The service's code unchanged; the status from the kind of failure.
    fn from(e: crate::service::ServiceError) -> Self {
        use crate::service::{ErrorKind, ServiceError};
        // Storage's own answers (their codes and `Retry-After`), as every door reports them.
        if let ServiceError::Storage(s) = e {
            return s.into();
        }
        let status = match e.kind() {
            ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ErrorKind::Refused => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Gone => StatusCode::GONE,
            ErrorKind::Throttled => {
                let secs = e.retry_after().unwrap_or(1);
                return ApiError::too_many(e.code(), e.to_string(), secs);
            }
            ErrorKind::Internal => return ApiError::internal(e),
        };
        let attempts_left = match &e {
            ServiceError::WrongUnlockCode { attempts_left } => Some(*attempts_left),
            _ => None,
        };
        ApiError {
            attempts_left,
            ..ApiError::new(status, e.code(), e.to_string())
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound(what) => {
                ApiError::not_found("not_found", format!("{what} not found"))
            }
            StorageError::Conflict(m) => ApiError::conflict("conflict", m),
            StorageError::InviteInvalid => ApiError::unauthorized(
                "invite_invalid",
                "this invite code is unknown, already used or expired: ask your administrator for a new one",
            ),
            StorageError::MessageIdNotIssued => ApiError::forbidden(
                "message_id_not_issued",
                "this message ID was not issued to you: request an envelope first",
            ),
            StorageError::MessageIdExpired => ApiError::forbidden(
                "message_id_expired",
                "this message ID has expired: request a new envelope",
            ),
            StorageError::Overloaded => ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    "the node is overloaded; retry shortly",
                )
            },
            StorageError::Backlog(n, domain) => ApiError {
                retry_after: Some(60),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "peer_backlog",
                    format!(
                        "{n} messages are already waiting for the node of {domain}, which is not \
                         taking them; try again later or ask your administrator to check the peer"
                    ),
                )
            },
            StorageError::Full => ApiError::storage_full(),
            other => ApiError::internal(other),
        }
    }
}

impl ApiError {
    /// 507: the node's storage refused a write for want of space. Nothing of the request was
    /// kept; it may be sent again once the administrator has made room.
    fn storage_full() -> ApiError {
        ApiError {
            retry_after: Some(60),
            ..ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                "the node's storage is full: nothing was kept; try again later",
            )
        }
    }
}

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::TooLarge { limit } => ApiError::too_large(limit),
            BlobError::Interrupted(e) => {
                ApiError::bad_request("upload_interrupted", format!("the upload broke off: {e}"))
            }
            BlobError::NotFound => ApiError::not_found("not_found", "blob not found"),
            BlobError::Full => ApiError::storage_full(),
            other => ApiError::internal(other),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    /// A handler that panics gets the documented `500 internal` JSON through the layers every
    /// route is served under (`api::layered`), with nothing of the panic's message.
    #[tokio::test]
    async fn a_panicking_handler_answers_500_internal_json_without_the_message() {
        let (_dir, node) = crate::node::temp_node("panic.test").await;
        let state = node.state;
        let routes = Router::new().route(
            "/api/v1/boom",
            get(|| async {
                if true {
                    panic!("secret detail: /var/lib/sealpost/ca.key");
                }
                "unreachable"
            }),
        );
        let app = super::super::layered(routes, state.clone()).with_state(state);
        for _ in 0..2 {
            // The second request shows the service still serves after a panic.
            let resp = app
                .clone()
                .oneshot(Request::get("/api/v1/boom").body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(resp.headers()["content-type"], "application/json");
            assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
            let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
                .await
                .unwrap();
            let err: crate::proto::ErrorBody = serde_json::from_slice(&body).unwrap();
            assert_eq!(err.code, "internal");
            assert!(!err.message.is_empty());
            let text = String::from_utf8_lossy(&body);
            assert!(
                !text.contains("secret") && !text.contains("ca.key"),
                "{text}"
            );
        }
    }
}
