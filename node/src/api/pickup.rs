//! The pickup door (docs/pickup.md): the outside recipient's routes (open, unlock; with a
//! pickup session as Bearer: parts, the thread, and the reply's envelope, uploads and
//! submission through `accept(Source::Pickup)`) and the sender's (withdraw, re-lock). Each is a call into
//! `service::pickup`; what is here is HTTP: the per-IP limit on open and unlock, the pickup
//! session's extractor, and streaming a part.
//!
//! Tokens, verifiers and sessions travel only in bodies and the `Authorization` header, never
//! in a URL, and are not logged (errors carry codes, not values).

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use super::{ApiError, ApiJson, ApiPath, ApiResult, AppState, Authed, ClientIp};
use crate::proto::*;
use crate::service::{self, ServiceError};
use crate::storage::pickup::PickupRecord;

/// Every open and unlock counts against the caller's address, across pickups.
fn limit(st: &AppState, ip: &ClientIp) -> ApiResult<()> {
    let Some(ip) = ip.0 else {
        return Ok(());
    };
    st.pickup_ips
        .check(ip, crate::now().max(0) as u64)
        .map_err(|retry| {
            ApiError::too_many(
                "too_many_attempts",
                format!("too many attempts from your address: wait {retry} s"),
                retry,
            )
        })
}

#[utoipa::path(
    post,
    path = "/pickup/open",
    tag = "pickup",
    summary = "What a pickup link leads to, before the unlock code (changes nothing)",
    description = "The token is the link's fragment (base64url). Counts against the caller's address (`pickup.per_ip_per_minute`).",
    security(()),
    request_body = PickupOpenRequest,
    responses(
        (status = 200, description = "The pickup: sender, expiry, derivation parameters, attempts left", body = PickupInfo),
        (status = 404, description = "`pickup_not_found`", body = ErrorBody),
        (status = 410, description = "`pickup_expired`, `pickup_withdrawn`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts` (Retry-After)", body = ErrorBody),
    )
)]
pub(super) async fn open(
    State(st): State<AppState>,
    ip: ClientIp,
    ApiJson(req): ApiJson<PickupOpenRequest>,
) -> ApiResult<Json<PickupInfo>> {
    limit(&st, &ip)?;
    Ok(Json(
        service::pickup::open(&st, &req.token, crate::now()).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/pickup/unlock",
    tag = "pickup",
    summary = "Prove the unlock code's verifier: a pickup session and what decrypts the message",
    description = "A wrong code counts against the pickup (`pickup.max_wrong`, then locked even for the right code) and against the caller's address.",
    security(()),
    request_body = PickupUnlockRequest,
    responses(
        (status = 200, description = "Unlocked", body = PickupUnlocked),
        (status = 400, description = "`invalid_request`: the verifier is not 32 bytes of base64", body = ErrorBody),
        (status = 401, description = "`wrong_unlock_code`, with `attempts_left`", body = ErrorBody),
        (status = 403, description = "`pickup_locked`: the sender must issue a new code", body = ErrorBody),
        (status = 404, description = "`pickup_not_found`", body = ErrorBody),
        (status = 410, description = "`pickup_expired`, `pickup_withdrawn`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts` (Retry-After)", body = ErrorBody),
    )
)]
pub(super) async fn unlock(
    State(st): State<AppState>,
    ip: ClientIp,
    ApiJson(req): ApiJson<PickupUnlockRequest>,
) -> ApiResult<Json<PickupUnlocked>> {
    limit(&st, &ip)?;
    Ok(Json(
        service::pickup::unlock(&st, &req.token, &req.verifier, crate::now()).await?,
    ))
}

/// A request with a live pickup session (`Authorization: Bearer`), scoped to its pickup.
pub struct PickupAuthed(pub PickupRecord);

impl FromRequestParts<AppState> for PickupAuthed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ServiceError::PickupSessionInvalid)?;
        Ok(PickupAuthed(
            service::pickup::session(st, bearer, crate::now()).await?,
        ))
    }
}

#[utoipa::path(
    get,
    path = "/pickup/parts/{index}",
    // Not `part`: the mailbox's `/messages/{id}/parts/{index}` has that operation ID.
    operation_id = "pickup_part",
    tag = "pickup",
    operation_id = "pickup_part",
    summary = "Stream one encrypted part of the pickup session's message",
    description = "Part 0 (the sealed head), fetched the first time, marks the pickup read. A message registered for the pickup's recipient: only once accepted (`POST /pickup/receipt`).",
    security(("pickup_session" = [])),
    params(("index" = u32, Path, description = "Part index (0 is the sealed head)")),
    responses(
        (status = 200, description = "The part's ciphertext", content_type = "application/octet-stream"),
        (status = 401, description = "`pickup_session_invalid`", body = ErrorBody),
        (status = 403, description = "`receipt_required`, `registered_refused`", body = ErrorBody),
        (status = 404, description = "`unknown_part`", body = ErrorBody),
    )
)]
pub(super) async fn part(
    State(st): State<AppState>,
    PickupAuthed(pickup): PickupAuthed,
    ApiPath(index): ApiPath<u32>,
) -> ApiResult<Response> {
    let data = service::pickup::part(&st, &pickup, index, crate::now()).await?;
    super::mail::part_response(&st, data).await
}

#[utoipa::path(
    post,
    path = "/pickup/receipt",
    tag = "pickup",
    operation_id = "pickup_receipt",
    summary = "Accept or refuse a message registered for the pickup's recipient, with a signed statement",
    description = "The statement (`ReceiptStatement`'s exact bytes, about a message of the session's thread) signed by `public_key`, a key made in the pickup page (not the pickup key). Accepting releases the parts; a refusal keeps them closed for good. The evidence record says the unlock code was proven (`method: pickup-muc`) and that the key is certified by no one (docs/evidence.md).",
    security(("pickup_session" = [])),
    request_body = PickupReceiptRequest,
    responses(
        (status = 200, description = "The decision, kept (or the same one given before)", body = ReceiptDecision),
        (status = 401, description = "`pickup_session_invalid`", body = ErrorBody),
        (status = 404, description = "`unknown_message`: not a message of this session's thread", body = ErrorBody),
        (status = 409, description = "`not_registered`, `receipt_given`", body = ErrorBody),
        (status = 422, description = "`invalid_receipt`", body = ErrorBody),
    )
)]
pub(super) async fn receipt(
    State(st): State<AppState>,
    PickupAuthed(pickup): PickupAuthed,
    ApiJson(req): ApiJson<PickupReceiptRequest>,
) -> ApiResult<Json<ReceiptDecision>> {
    Ok(Json(
        service::registered::pickup_receipt(&st, &pickup, &req, std::time::SystemTime::now())
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/messages/{id}/pickups/withdraw",
    tag = "pickup",
    summary = "Withdraw an unread pickup of your message (its key material is deleted)",
    params(("id" = String, Path, description = "Message ID")),
    request_body = PickupWithdrawRequest,
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 404, description = "`unknown_pickup`", body = ErrorBody),
        (status = 409, description = "`pickup_not_unread`: read, expired or withdrawn already", body = ErrorBody),
    )
)]
pub(super) async fn withdraw(
    State(st): State<AppState>,
    auth: Authed,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<PickupWithdrawRequest>,
) -> ApiResult<StatusCode> {
    service::pickup::withdraw(&st, &auth.account, &id, &req.address, crate::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/messages/{id}/pickups/relock",
    tag = "pickup",
    summary = "A new unlock code for an unread (usually locked) pickup of your message",
    description = "The same pickup key, locked anew by the sender's client; wrong attempts reset, the state returns to `notified`, the link stays.",
    params(("id" = String, Path, description = "Message ID")),
    request_body = PickupRelockRequest,
    responses(
        (status = 204, description = "Re-locked"),
        (status = 404, description = "`unknown_pickup`", body = ErrorBody),
        (status = 409, description = "`pickup_not_unread`", body = ErrorBody),
        (status = 422, description = "`invalid_pickup_seal`", body = ErrorBody),
    )
)]
pub(super) async fn relock(
    State(st): State<AppState>,
    auth: Authed,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<PickupRelockRequest>,
) -> ApiResult<StatusCode> {
    service::pickup::relock(&st, &auth.account, &id, &req, crate::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/pickup/envelope",
    tag = "pickup",
    operation_id = "pickup_envelope",
    summary = "A reply's envelope: a message ID, the pickup's sender as the only recipient",
    description = "The recipient is the original sender with the key their organisation holds; `sender` is the outside address with the pickup key, to sign the reply with.",
    security(("pickup_session" = [])),
    request_body = PickupReplyEnvelopeRequest,
    responses(
        (status = 200, description = "The message ID to sign and the recipient", body = EnvelopeResponse),
        (status = 401, description = "`pickup_session_invalid`", body = ErrorBody),
        (status = 422, description = "`unknown_recipient`: the sender can no longer receive", body = ErrorBody),
    )
)]
pub(super) async fn reply_envelope(
    State(st): State<AppState>,
    PickupAuthed(pickup): PickupAuthed,
    ApiJson(_): ApiJson<PickupReplyEnvelopeRequest>,
) -> ApiResult<Json<EnvelopeResponse>> {
    Ok(Json(
        service::pickup::reply_envelope(&st, &pickup, crate::now()).await?,
    ))
}

#[utoipa::path(
    put,
    path = "/pickup/uploads/{sha256}",
    tag = "pickup",
    operation_id = "pickup_upload",
    summary = "Stream one encrypted part of a reply into the blob store",
    description = "As `PUT /blobs`: limited to limits.max_message_bytes and, per pickup, to limits.max_pending_upload_bytes of uploads no reply used yet. The answer names the bytes' SHA-256, which must be the path's.",
    security(("pickup_session" = [])),
    params(("sha256" = String, Path, description = "Lowercase hex SHA-256 of the ciphertext")),
    request_body(content_type = "application/octet-stream", description = "The part's ciphertext"),
    responses(
        (status = 201, description = "Stored", body = UploadResponse),
        (status = 400, description = "`upload_interrupted`", body = ErrorBody),
        (status = 401, description = "`pickup_session_invalid`", body = ErrorBody),
        (status = 413, description = "`too_large`, `upload_quota`", body = ErrorBody),
        (status = 422, description = "`part_mismatch`: the bytes' SHA-256 is not the path's", body = ErrorBody),
    )
)]
pub(super) async fn upload(
    State(st): State<AppState>,
    PickupAuthed(pickup): PickupAuthed,
    ApiPath(expected): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<UploadResponse>)> {
    let room = service::pickup::upload_room(&st, &pickup).await?;
    let (sha256, size) = super::mail::receive_upload(&st, room, &headers, body).await?;
    // Recorded under the bytes' own hash either way: an unused upload expires like others.
    st.store
        .record_pickup_upload(pickup.id, sha256, size, crate::now())
        .await
        .map_err(ServiceError::from)?;
    if !hex::encode(sha256).eq_ignore_ascii_case(&expected) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "part_mismatch",
            "the uploaded bytes do not have the SHA-256 in the path",
        ));
    }
    Ok((
        StatusCode::CREATED,
        Json(UploadResponse {
            sha256: hex::encode(sha256),
            size,
        }),
    ))
}

#[utoipa::path(
    post,
    path = "/pickup/submit",
    tag = "pickup",
    operation_id = "pickup_submit",
    summary = "Submit a reply, signed with the pickup key, to the pickup's sender",
    description = "The rules of `POST /messages`, with the outside address as the sender and the pickup key as its key: the only recipient is the pickup's sender, every part encrypted to them and to the pickup key. At most `pickup.max_replies` per pickup. It lands in the sender's inbox marked `via: pickup`; the sender's state for this pickup becomes `replied`.",
    security(("pickup_session" = [])),
    request_body = SubmitRequest,
    responses(
        (status = 201, description = "Accepted", body = SubmitResponse),
        (status = 200, description = "Already accepted (a retried submission)", body = SubmitResponse),
        (status = 400, description = "`invalid_envelope`, `invalid_request`", body = ErrorBody),
        (status = 401, description = "`pickup_session_invalid`", body = ErrorBody),
        (status = 403, description = "`sender_mismatch`, `message_id_not_issued`, `message_id_expired`, `pickup_locked`", body = ErrorBody),
        (status = 409, description = "`too_many_replies`", body = ErrorBody),
        (status = 410, description = "`pickup_expired`, `pickup_withdrawn`", body = ErrorBody),
        (status = 413, description = "`too_large`", body = ErrorBody),
        (status = 422, description = "`reply_recipient_not_allowed`, `bad_envelope_signature`, `unknown_recipient`, `recipient_revoked`, `part_mismatch`, `part_missing`, `not_encrypted`, `missing_recipient_key`, `too_many_parts`", body = ErrorBody),
    )
)]
pub(super) async fn submit(
    State(st): State<AppState>,
    PickupAuthed(pickup): PickupAuthed,
    ApiJson(req): ApiJson<SubmitRequest>,
) -> ApiResult<(StatusCode, Json<SubmitResponse>)> {
    if !req.external_copies.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "a reply from a pickup carries no external copies",
        ));
    }
    let message = service::mail::Incoming {
        envelope: &req.envelope,
        signature: &req.signature,
        inline: super::mail::inline_parts(&req.inline_parts)?,
        declared: None,
        pickups: req.pickups,
        continuations: req.pickup_continuations,
        external_copies: Default::default(),
    };
    let source = service::mail::Source::Pickup { pickup: &pickup };
    let accepted =
        service::mail::accept(&st, &source, message, std::time::SystemTime::now()).await?;
    Ok(super::mail::submit_response(accepted))
}

#[utoipa::path(
    get,
    path = "/pickup/thread",
    tag = "pickup",
    operation_id = "pickup_thread",
    summary = "The messages of the pickup session's thread",
    description = "The sender's messages to this outside address under the same pickup key (still open) and the replies, oldest first, each with its signed envelope and parts.",
    security(("pickup_session" = [])),
    responses(
        (status = 200, description = "The thread", body = PickupThread),
        (status = 401, description = "`pickup_session_invalid`", body = ErrorBody),
    )
)]
pub(super) async fn thread(
    State(st): State<AppState>,
    PickupAuthed(pickup): PickupAuthed,
) -> ApiResult<Json<PickupThread>> {
    Ok(Json(service::pickup::thread(&st, &pickup).await?))
}

#[utoipa::path(
    get,
    path = "/pickup/messages/{id}/parts/{index}",
    tag = "pickup",
    operation_id = "pickup_thread_part",
    summary = "Stream one encrypted part of a message of the session's thread",
    security(("pickup_session" = [])),
    params(
        ("id" = String, Path, description = "Message ID (one of `/pickup/thread`)"),
        ("index" = u32, Path, description = "Part index (0 is the sealed head)"),
    ),
    responses(
        (status = 200, description = "The part's ciphertext", content_type = "application/octet-stream"),
        (status = 401, description = "`pickup_session_invalid`", body = ErrorBody),
        (status = 403, description = "`receipt_required`, `registered_refused`", body = ErrorBody),
        (status = 404, description = "`unknown_part`: no such part of a message of this thread", body = ErrorBody),
    )
)]
pub(super) async fn thread_part(
    State(st): State<AppState>,
    PickupAuthed(pickup): PickupAuthed,
    ApiPath((id, index)): ApiPath<(String, u32)>,
) -> ApiResult<Response> {
    let data = service::pickup::thread_part(&st, &pickup, &id, index, crate::now()).await?;
    super::mail::part_response(&st, data).await
}
