//! The message pipeline on the node: envelope request, upload, submit, mailboxes, reading.
//!
//! Submission decodes the request (inline parts from base64) and hands the message to
//! [`service::mail::accept`] as the logged-in user's (`Source::Local`): the rules a message
//! meets there are the ones a peer's transfer meets too.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::TryStreamExt;
use tokio_util::io::{ReaderStream, StreamReader};

use super::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Authed};
use crate::crypto;
use crate::proto::*;
use crate::service;
use crate::storage::PartData;
use crate::{is_message_id, now};

#[utoipa::path(
    post,
    path = "/envelopes",
    tag = "mail",
    summary = "Envelope request: resolves the recipients and issues a message ID to the sender",
    description = "Each recipient comes with their certificate and the sender's trust verdict on it; a peered organisation's user is looked up through its node.",
    request_body = EnvelopeRequest,
    responses(
        (status = 200, description = "The recipients, resolved, and the message ID to sign", body = EnvelopeResponse),
        (status = 400, description = "`no_recipients`, `invalid_address`", body = ErrorBody),
        (status = 409, description = "`not_enrolled`: your account has no key", body = ErrorBody),
        (status = 422, description = "`unknown_recipient`, `too_many_recipients`", body = ErrorBody),
        (status = 503, description = "`federation_off`, `peer_unreachable`, `peer_answer_refused`: a peered organisation's user could not be looked up", body = ErrorBody),
    )
)]
pub(super) async fn envelope(
    State(st): State<AppState>,
    auth: Authed,
    ApiJson(req): ApiJson<EnvelopeRequest>,
) -> ApiResult<Json<EnvelopeResponse>> {
    Ok(Json(
        service::mail::envelope(&st, &auth.account, &req.to, now()).await?,
    ))
}

#[utoipa::path(
    put,
    path = "/blobs",
    tag = "mail",
    summary = "Stream one encrypted part into the blob store",
    description = "Limited to limits.max_message_bytes and to the account's quota of uploads not yet sent.",
    request_body(content_type = "application/octet-stream", description = "The part's ciphertext"),
    responses(
        (status = 201, description = "Stored", body = UploadResponse),
        (status = 400, description = "`upload_interrupted`", body = ErrorBody),
        (status = 413, description = "`too_large`, `upload_quota`", body = ErrorBody),
    )
)]
pub(super) async fn upload(
    State(st): State<AppState>,
    auth: Authed,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<UploadResponse>)> {
    // An upload counts against the account's quota of uploaded-but-unsent bytes until a
    // submitted message uses it (or it expires): nobody fills the disk with abandoned uploads.
    let pending = st.store.pending_upload_bytes(auth.account.id).await?;
    let room = st
        .config
        .limits
        .max_pending_upload_bytes
        .saturating_sub(pending);
    let (sha256, size) = receive_upload(&st, room, &headers, body).await?;
    st.store
        .record_upload(auth.account.id, sha256, size, now())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(UploadResponse {
            sha256: hex::encode(sha256),
            size,
        }),
    ))
}

/// Streams an upload into the blob store, within `room` (what is left of the uploader's quota
/// of unsent bytes) and `limits.max_message_bytes`; the caller records who uploaded it.
pub(super) async fn receive_upload(
    st: &AppState,
    room: u64,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<([u8; 32], u64)> {
    if room == 0 {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload_quota",
            "you have too many uploads not yet sent: submit or wait for them to expire",
        ));
    }
    let limit = st.config.limits.max_message_bytes.min(room);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::too_large(limit));
    }
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let mut reader = StreamReader::new(stream);
    Ok(st.blobs.put(&mut reader, limit).await?)
}

#[utoipa::path(
    post,
    path = "/messages",
    tag = "mail",
    summary = "Submit a sealed message",
    description = "Checks the session, the issued ID, the envelope signature, part hashes, and that every part is encrypted to every recipient and the sender. A resubmission of an accepted envelope answers 200 with duplicate set.",
    request_body = SubmitRequest,
    responses(
        (status = 201, description = "Accepted", body = SubmitResponse),
        (status = 200, description = "Already accepted (a retried submission)", body = SubmitResponse),
        (status = 400, description = "`invalid_envelope`, `no_recipients`, `invalid_address`, `invalid_request`", body = ErrorBody),
        (status = 403, description = "`sender_mismatch`, `message_id_not_issued`, `message_id_expired`", body = ErrorBody),
        (status = 413, description = "`too_large`", body = ErrorBody),
        (status = 422, description = "`bad_envelope_signature`, `unknown_recipient`, `recipient_revoked`, `part_mismatch`, `part_missing`, `not_encrypted`, `missing_recipient_key`, `too_many_recipients`, `too_many_parts`; external copies (docs/mail.md): `no_delivery_mode`, `external_mode_mismatch`, `external_copy_not_allowed`, `external_copy_mismatch`, `external_copy_not_encrypted`, `external_copy_malformed`, `mode_unavailable`", body = ErrorBody),
        (status = 409, description = "`not_enrolled`: your account has no key", body = ErrorBody),
        (status = 503, description = "`peer_backlog`: too many messages wait for that peer (Retry-After); `federation_off`, `peer_unreachable`, `peer_answer_refused`", body = ErrorBody),
    )
)]
pub(super) async fn submit(
    State(st): State<AppState>,
    auth: Authed,
    ApiJson(req): ApiJson<SubmitRequest>,
) -> ApiResult<(StatusCode, Json<SubmitResponse>)> {
    let inline = inline_parts(&req.inline_parts)?;
    let mut external_copies = std::collections::BTreeMap::new();
    for (address, b64) in &req.external_copies {
        let data = STANDARD.decode(b64).map_err(|_| {
            ApiError::bad_request(
                "invalid_request",
                format!("the external copy for {address} is not base64"),
            )
        })?;
        external_copies.insert(address.clone(), data);
    }
    let source = service::mail::Source::Local {
        account: &auth.account,
    };
    let message = service::mail::Incoming {
        envelope: &req.envelope,
        signature: &req.signature,
        inline,
        declared: None,
        pickups: req.pickups,
        continuations: req.pickup_continuations,
        external_copies,
    };
    let accepted =
        service::mail::accept(&st, &source, message, std::time::SystemTime::now()).await?;
    Ok(submit_response(accepted))
}

/// Inline parts of a submission, decoded.
pub(super) fn inline_parts(
    parts: &std::collections::BTreeMap<u32, String>,
) -> ApiResult<std::collections::BTreeMap<u32, Vec<u8>>> {
    let mut inline = std::collections::BTreeMap::new();
    for (i, b64) in parts {
        let data = STANDARD.decode(b64).map_err(|_| {
            ApiError::bad_request("invalid_request", format!("inline part {i} is not base64"))
        })?;
        inline.insert(*i, data);
    }
    Ok(inline)
}

/// An accepted submission as the wire tells it (201, or 200 for a resubmission).
pub(super) fn submit_response(
    accepted: service::mail::Accepted,
) -> (StatusCode, Json<SubmitResponse>) {
    let status = if accepted.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    (
        status,
        Json(SubmitResponse {
            message_id: accepted.message_id,
            accepted_at: accepted.accepted_at,
            duplicate: accepted.duplicate,
            recipients: accepted
                .recipients
                .into_iter()
                .map(|(address, d)| {
                    use crate::proto::DeliveryMode as M;
                    let (state, link, mode) = match d {
                        service::mail::Delivery::Delivered => ("delivered", None, None),
                        service::mail::Delivery::Pickup { link } => {
                            ("pickup", link, Some(M::Pickup))
                        }
                        service::mail::Delivery::Mail { mode } => ("queued", None, Some(mode)),
                        service::mail::Delivery::Queued => ("queued", None, Some(M::Remote)),
                        service::mail::Delivery::Refused(_) => ("queued", None, None),
                    };
                    RecipientState {
                        address,
                        mode,
                        state: state.into(),
                        link,
                    }
                })
                .collect(),
        }),
    )
}

#[derive(serde::Deserialize)]
pub(super) struct ListQuery {
    limit: Option<u32>,
    before: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/mailbox/{folder}",
    tag = "mail",
    summary = "List a folder, newest first",
    params(
        ("folder" = Folder, Path, description = "`inbox`, `sent` or `archive`"),
        ("limit" = Option<u32>, Query, description = "At most this many (1 to 1000, default 100)"),
        ("before" = Option<i64>, Query, description = "Only messages received before this time (Unix seconds): the next page"),
    ),
    responses(
        (status = 200, description = "The folder's messages (and, in the inbox, the node's notices)", body = MailboxResponse),
        (status = 404, description = "`unknown_folder`", body = ErrorBody),
    )
)]
pub(super) async fn mailbox(
    State(st): State<AppState>,
    auth: Authed,
    ApiPath(folder): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<MailboxResponse>> {
    let folder = Folder::parse(&folder).ok_or_else(|| {
        ApiError::not_found("unknown_folder", "folders are inbox, sent and archive")
    })?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let items = st
        .store
        .mailbox(auth.account.id, folder, limit, q.before)
        .await?;
    let notices = if folder == Folder::Inbox && q.before.is_none() {
        st.store.notices(auth.account.id, 50).await?
    } else {
        Vec::new()
    };
    Ok(Json(MailboxResponse { items, notices }))
}

fn message_id_param(id: &str) -> ApiResult<()> {
    if is_message_id(id) {
        Ok(())
    } else {
        Err(ApiError::not_found("unknown_message", "no such message"))
    }
}

#[utoipa::path(
    get,
    path = "/messages/{id}",
    tag = "mail",
    summary = "A message's envelope, signature and parts",
    params(("id" = String, Path, description = "Message ID")),
    responses(
        (status = 200, description = "The message", body = MessageResponse),
        (status = 404, description = "`unknown_message`", body = ErrorBody),
    )
)]
pub(super) async fn message(
    State(st): State<AppState>,
    auth: Authed,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<MessageResponse>> {
    message_id_param(&id)?;
    let m = st
        .store
        .message(auth.account.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("unknown_message", "no such message in your mailbox"))?;
    let sender_cert = match st.store.account_by_address(&m.item.from).await? {
        // A pickup reply: the pickup key it was signed with (its `via` says so).
        _ if m.sender_cert.is_some() => m.sender_cert.clone().unwrap_or_default(),
        Some(a) => a.cert.unwrap_or_default(),
        // A peer organisation's user: the key (of those held for the address) whose signature
        // on this envelope verifies. The reader checks it again, and its trust.
        None => {
            let domain = crate::domain_of(&m.item.from);
            st.store
                .certs_by_email_from(&m.item.from, domain)
                .await?
                .into_iter()
                .find(|armored| {
                    crypto::cert_from_armored(armored).is_ok_and(|c| {
                        crypto::verify_detached(
                            &c,
                            &st.policy,
                            std::time::SystemTime::now(),
                            m.envelope.as_bytes(),
                            &m.signature,
                        )
                        .is_ok()
                    })
                })
                .unwrap_or_default()
        }
    };
    let pickups = if m.item.folder == Folder::Sent {
        st.store
            .pickups_of(&id)
            .await?
            .into_iter()
            .filter(|p| p.sender == auth.account.address)
            .map(|p| PickupView {
                address: p.address,
                fingerprint: p.fingerprint,
                expires_at: p.expires_at,
                key_for_sender: p.key_for_sender,
            })
            .collect()
    } else {
        Vec::new()
    };
    let registered = service::registered::view(&st, &auth.account, &m).await?;
    let compliance =
        crate::service::compliance::copies_of(&st, &id, std::time::SystemTime::now()).await?;
    let compliance_pending = crate::service::compliance::current(&st).await?.is_some()
        && !compliance.contains(&st.config.domain);
    Ok(Json(MessageResponse {
        registered,
        pickups,
        compliance,
        compliance_pending,
        item: m.item,
        envelope: m.envelope,
        signature: m.signature,
        accepted_at: m.accepted_at,
        parts: m
            .parts
            .into_iter()
            .map(|p| PartView {
                index: p.index,
                size: p.size,
                sha256: hex::encode(p.sha256),
            })
            .collect(),
        sender_cert,
    }))
}

#[utoipa::path(
    get,
    path = "/messages/{id}/parts/{index}",
    tag = "mail",
    summary = "Stream one encrypted part",
    params(
        ("id" = String, Path, description = "Message ID"),
        ("index" = u32, Path, description = "Part index (0 is the sealed head)"),
    ),
    responses(
        (status = 200, description = "The part's ciphertext", content_type = "application/octet-stream"),
        (status = 404, description = "`unknown_message`, `unknown_part`", body = ErrorBody),
    )
)]
pub(super) async fn part(
    State(st): State<AppState>,
    auth: Authed,
    ApiPath((id, index)): ApiPath<(String, u32)>,
) -> ApiResult<Response> {
    message_id_param(&id)?;
    let Some(m) = st.store.message(auth.account.id, &id).await? else {
        return Err(ApiError::not_found(
            "unknown_message",
            "no such message in your mailbox",
        ));
    };
    // Registered mail: nothing of it until the recipient accepted (docs/evidence.md).
    service::registered::check_release(&st, &auth.account, &m).await?;
    let data = st
        .store
        .part(&id, index)
        .await?
        .ok_or_else(|| ApiError::not_found("unknown_part", "the message has no such part"))?;
    part_response(&st, data).await
}

/// A part's ciphertext as the answer: inline bytes, or the blob streamed.
pub(super) async fn part_response(st: &AppState, data: PartData) -> ApiResult<Response> {
    let octets = [(header::CONTENT_TYPE, "application/octet-stream")];
    Ok(match data {
        PartData::Inline(bytes) => (octets, bytes).into_response(),
        PartData::Blob { sha256, size } => {
            let file = st.blobs.open(sha256).await?;
            (
                octets,
                [(header::CONTENT_LENGTH, size.to_string())],
                Body::from_stream(ReaderStream::with_capacity(file, 256 * 1024)),
            )
                .into_response()
        }
    })
}

#[utoipa::path(
    post,
    path = "/messages/{id}/read",
    tag = "mail",
    summary = "Mark read (logged: evidence of reading)",
    params(("id" = String, Path, description = "Message ID")),
    responses(
        (status = 204, description = "Marked read"),
        (status = 404, description = "`unknown_message`, `not_found`", body = ErrorBody),
    )
)]
pub(super) async fn mark_read(
    State(st): State<AppState>,
    auth: Authed,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    message_id_param(&id)?;
    st.store
        .mark_read(auth.account.id, &auth.account.address, &id, now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Marks one of the user's notices (a failed delivery) as read: the app stops showing it.
#[utoipa::path(
    post,
    path = "/notices/{id}/read",
    tag = "mail",
    summary = "Mark one of your notices (a delivery that failed) as read",
    params(("id" = i64, Path, description = "Notice ID")),
    responses(
        (status = 204, description = "Marked read"),
        (status = 404, description = "`unknown_notice`", body = ErrorBody),
    )
)]
pub(super) async fn dismiss_notice(
    State(st): State<AppState>,
    auth: Authed,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    if st.store.dismiss_notice(auth.account.id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "unknown_notice",
            "you have no such notice",
        ))
    }
}

#[utoipa::path(
    post,
    path = "/messages/{id}/move",
    tag = "mail",
    summary = "Move between inbox and archive",
    params(("id" = String, Path, description = "Message ID")),
    request_body = MoveRequest,
    responses(
        (status = 204, description = "Moved"),
        (status = 404, description = "`unknown_message`, `not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_move`", body = ErrorBody),
    )
)]
pub(super) async fn move_message(
    State(st): State<AppState>,
    auth: Authed,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<MoveRequest>,
) -> ApiResult<StatusCode> {
    message_id_param(&id)?;
    let allowed = matches!(
        (req.from, req.to),
        (Folder::Inbox, Folder::Archive) | (Folder::Archive, Folder::Inbox)
    );
    if !allowed {
        return Err(ApiError::unprocessable(
            "invalid_move",
            "received messages move between inbox and archive; Sent holds what you sent",
        ));
    }
    st.store
        .move_to(auth.account.id, &id, req.from, req.to)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    delete,
    path = "/messages/{id}",
    tag = "mail",
    summary = "Delete from your mailbox (logged)",
    params(("id" = String, Path, description = "Message ID")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`unknown_message`, `not_found`", body = ErrorBody),
    )
)]
pub(super) async fn delete(
    State(st): State<AppState>,
    auth: Authed,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    message_id_param(&id)?;
    // A compliance copy stays stored for the archive until its retention ends.
    service::retention::delete(&st, &auth.account, &id, std::time::SystemTime::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A message's evidence bundle (docs/evidence.md) and how many of the caller's records wait for
/// the next sealed batch (not in the bundle yet).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct EvidenceResponse {
    pub bundle: crate::evidence::Bundle,
    pub pending: u64,
}

#[utoipa::path(
    get,
    path = "/messages/{id}/evidence",
    tag = "mail",
    summary = "The evidence bundle of a message: every record for its sender, a recipient's own",
    params(("id" = String, Path, description = "Message ID")),
    responses(
        (status = 200, description = "The bundle", body = EvidenceResponse),
        (status = 404, description = "`unknown_message`", body = ErrorBody),
    )
)]
pub(super) async fn evidence(
    State(st): State<AppState>,
    auth: Authed,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<EvidenceResponse>> {
    message_id_param(&id)?;
    let (bundle, pending) = service::evidence::bundle(&st, &auth.account, &id).await?;
    Ok(Json(EvidenceResponse {
        bundle,
        pending: pending as u64,
    }))
}

#[utoipa::path(
    post,
    path = "/messages/{id}/receipt",
    tag = "mail",
    summary = "Accept or refuse a message registered for you, with a signed statement",
    params(("id" = String, Path, description = "Message ID")),
    request_body = ReceiptRequest,
    responses(
        (status = 200, description = "Kept: the decision", body = ReceiptDecision),
        (status = 404, description = "`unknown_message`", body = ErrorBody),
        (status = 409, description = "`not_registered`, `receipt_given`", body = ErrorBody),
        (status = 422, description = "`invalid_receipt`", body = ErrorBody),
    )
)]
pub(super) async fn receipt(
    State(st): State<AppState>,
    auth: Authed,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ReceiptRequest>,
) -> ApiResult<Json<ReceiptDecision>> {
    message_id_param(&id)?;
    let d =
        service::registered::receipt(&st, &auth.account, &id, &req, std::time::SystemTime::now())
            .await?;
    Ok(Json(d))
}
