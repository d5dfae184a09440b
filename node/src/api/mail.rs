//! The message pipeline on the node: envelope request, upload, submit, mailboxes, reading.
//!
//! Submission is where the node enforces the promises it can check without reading content:
//! the session, that the message ID was issued to this sender, the sender's signature on the
//! exact envelope bytes, that every part's hash and size match the signed envelope, and that
//! every part is encrypted to every recipient and to the sender (the recipient key IDs are
//! visible in the ciphertext's first packets). Only then is anything stored.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::TryStreamExt;
use sequoia_openpgp::Cert;
use sha2::{Digest, Sha256};
use tokio_util::io::{ReaderStream, StreamReader};

use super::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Authed};
use crate::crypto;
use crate::proto::*;
use crate::service;
use crate::storage::{NewMessage, NewPart, PartData, SubmitOutcome};
use crate::{is_message_id, new_message_id, now};

/// A resolved recipient: the local account (None for a peer organisation's user), what the
/// client is told, and the certificate.
type Resolved = (Option<i64>, ResolvedRecipient, Arc<Cert>);

/// Resolves one recipient, with the viewer's trust verdict on the key for that address: an
/// enrolled, active local account, or a user of a peered organisation (through its directory,
/// asked over QUIC and cached).
async fn resolve(
    st: &AppState,
    viewer: Option<&sequoia_openpgp::Fingerprint>,
    address: &str,
) -> ApiResult<Option<Resolved>> {
    let domain = crate::federation::domain_of(address);
    if domain != st.config.domain {
        return resolve_remote(st, viewer, address, domain).await;
    }
    let Some(account) = st.store.account_by_address(address).await? else {
        return Ok(None);
    };
    if !service::mail::deliverable(&account) {
        return Ok(None);
    }
    let cert = st.account_cert(&account)?;
    let verdict = verdict_for(st, viewer, &cert, address).await?;
    Ok(Some((
        Some(account.id),
        ResolvedRecipient {
            address: account.address.clone(),
            fingerprint: account.fingerprint.clone().unwrap_or_default(),
            cert: account.cert.clone().unwrap_or_default(),
            mode: DeliveryMode::Local,
            verdict,
        },
        cert,
    )))
}

async fn verdict_for(
    st: &AppState,
    viewer: Option<&sequoia_openpgp::Fingerprint>,
    cert: &Cert,
    address: &str,
) -> ApiResult<VerdictView> {
    Ok(match viewer {
        Some(viewer) => super::trust::view(
            &st.trust
                .authenticate(viewer, &cert.fingerprint(), address)
                .await
                .map_err(ApiError::internal)?,
        ),
        // Submission needs no verdict, only whether the key is revoked (checked by the caller).
        None => VerdictView {
            fingerprint: cert.fingerprint().to_hex(),
            address: address.to_owned(),
            level: String::new(),
            amount: 0,
            why_not: None,
            explanation: Vec::new(),
        },
    })
}

/// A user of a peered organisation. Of several keys claiming the address, the one the viewer's
/// web of trust rates highest (at submission, without a viewer: the first not revoked).
async fn resolve_remote(
    st: &AppState,
    viewer: Option<&sequoia_openpgp::Fingerprint>,
    address: &str,
    domain: &str,
) -> ApiResult<Option<Resolved>> {
    let Some(peer) = st.store.peer(domain).await? else {
        return Ok(None);
    };
    let certs = crate::federation::remote_certs(st, &peer, address).await?;
    let mut best: Option<(VerdictView, Arc<Cert>)> = None;
    for cert in certs {
        let verdict = verdict_for(st, viewer, &cert, address).await?;
        let revoked = matches!(
            cert.revocation_status(&st.policy, None),
            sequoia_openpgp::types::RevocationStatus::Revoked(_)
        );
        let better = match &best {
            None => true,
            Some((b, _)) if viewer.is_some() => verdict.amount > b.amount,
            Some(_) => !revoked,
        };
        if better {
            best = Some((verdict, cert));
        }
    }
    let Some((verdict, cert)) = best else {
        return Ok(None);
    };
    Ok(Some((
        None,
        ResolvedRecipient {
            address: address.to_owned(),
            fingerprint: cert.fingerprint().to_hex(),
            // Only the envelope request (with a viewer) hands the certificate to the client;
            // submission needs the parsed certificate alone.
            cert: match viewer {
                Some(_) => crypto::cert_to_armored(&cert).map_err(ApiError::internal)?,
                None => String::new(),
            },
            mode: DeliveryMode::Remote,
            verdict,
        },
        cert,
    )))
}

/// Resolves all recipients, or names every one that cannot be reached.
async fn resolve_all(
    st: &AppState,
    viewer: Option<&sequoia_openpgp::Fingerprint>,
    to: &[String],
) -> ApiResult<Vec<Resolved>> {
    let mut found = Vec::with_capacity(to.len());
    let mut unknown = Vec::new();
    for a in to {
        match resolve(st, viewer, a).await? {
            Some(r) => found.push(r),
            None => unknown.push(a.clone()),
        }
    }
    if !unknown.is_empty() {
        return Err(ApiError::unprocessable(
            "unknown_recipient",
            format!(
                "no enrolled user (here or at a peered organisation) for: {}",
                unknown.join(", ")
            ),
        ));
    }
    Ok(found)
}

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
        (status = 403, description = "`not_enrolled`: your account has no key", body = ErrorBody),
        (status = 422, description = "`unknown_recipient`, `too_many_recipients`", body = ErrorBody),
        (status = 503, description = "`federation_off`, `peer_unreachable`, `peer_answer_refused`: a peered organisation's user could not be looked up", body = ErrorBody),
    )
)]
pub(super) async fn envelope(
    State(st): State<AppState>,
    auth: Authed,
    ApiJson(req): ApiJson<EnvelopeRequest>,
) -> ApiResult<Json<EnvelopeResponse>> {
    let to = service::mail::recipients(&st.config.limits, &req.to)?;
    let me = super::trust::viewer(&auth.account)?;
    let recipients = resolve_all(&st, Some(&me), &to).await?;
    let (_, sender, _) = resolve(&st, Some(&me), &auth.account.address)
        .await?
        .ok_or_else(|| ApiError::forbidden("not_enrolled", "your account has no key"))?;
    let now = now();
    let message_id = new_message_id();
    let expires_at = now + st.config.limits.message_id_ttl_secs as i64;
    st.store
        .issue_message_id(auth.account.id, &message_id, expires_at, now)
        .await?;
    Ok(Json(EnvelopeResponse {
        message_id,
        expires_at,
        sender,
        recipients: recipients.into_iter().map(|(_, r, _)| r).collect(),
    }))
}

/// Remote recipients grouped by destination organisation.
fn remote_routes(recipients: &[Resolved]) -> Vec<crate::storage::RemoteRoute> {
    let mut routes: Vec<crate::storage::RemoteRoute> = Vec::new();
    for (_, r, _) in recipients.iter().filter(|(id, _, _)| id.is_none()) {
        let domain = crate::federation::domain_of(&r.address);
        match routes.iter_mut().find(|x| x.domain == domain) {
            Some(x) => x.addresses.push(r.address.clone()),
            None => routes.push(crate::storage::RemoteRoute {
                domain: domain.to_owned(),
                addresses: vec![r.address.clone()],
            }),
        }
    }
    routes
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
    let (sha256, size) = st.blobs.put(&mut reader, limit).await?;
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
        (status = 422, description = "`bad_envelope_signature`, `unknown_recipient`, `recipient_revoked`, `part_mismatch`, `part_missing`, `not_encrypted`, `missing_recipient_key`, `too_many_recipients`, `too_many_parts`, `not_enrolled`", body = ErrorBody),
        (status = 503, description = "`peer_backlog`: too many messages wait for that peer (Retry-After); `federation_off`, `peer_unreachable`, `peer_answer_refused`", body = ErrorBody),
    )
)]
pub(super) async fn submit(
    State(st): State<AppState>,
    auth: Authed,
    ApiJson(req): ApiJson<SubmitRequest>,
) -> ApiResult<(StatusCode, Json<SubmitResponse>)> {
    let now = now();
    let env = service::mail::check_envelope(&st.config.limits, &req.envelope)?;
    if env.from != auth.account.address {
        return Err(ApiError::forbidden(
            "sender_mismatch",
            "the envelope's sender is not the logged-in user",
        ));
    }
    let to = env.to.clone();
    // That the message ID was issued to this sender and is unexpired is checked where it is
    // claimed, in the commit that stores the message (`MessageIdNotIssued`, `MessageIdExpired`):
    // a separate read before it was 5 % of the node's CPU in a profile under load.
    let sender_cert = st.account_cert(&auth.account)?;
    let checked_at = std::time::SystemTime::now();
    let sender_facts = st.cert_facts(&sender_cert, checked_at);
    crypto::verify_detached_with(
        &sender_cert,
        &sender_facts.signer,
        &st.policy,
        checked_at,
        req.envelope.as_bytes(),
        &req.signature,
    )
    .map_err(|e| {
        ApiError::unprocessable(
            "bad_envelope_signature",
            format!("the envelope is not signed by the sender's key: {e}"),
        )
    })?;
    let recipients = resolve_all(&st, None, &to).await?;
    // New messages to a revoked key are refused, whatever the client decided.
    let revoked: Vec<&str> = recipients
        .iter()
        .filter(|(_, _, c)| {
            matches!(
                c.revocation_status(&st.policy, None),
                sequoia_openpgp::types::RevocationStatus::Revoked(_)
            )
        })
        .map(|(_, r, _)| r.address.as_str())
        .collect();
    if !revoked.is_empty() {
        return Err(ApiError::unprocessable(
            "recipient_revoked",
            format!("the key of {} is revoked", revoked.join(", ")),
        ));
    }

    if let Some(i) = req
        .inline_parts
        .keys()
        .find(|i| **i as usize >= env.parts.len())
    {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("inline part {i} is not in the envelope"),
        ));
    }
    let mut parts = Vec::with_capacity(env.parts.len());
    for (i, p) in env.parts.iter().enumerate() {
        let sha256: [u8; 32] = hex::decode(&p.sha256)
            .expect("checked")
            .try_into()
            .expect("checked");
        let inline = match req.inline_parts.get(&(i as u32)) {
            Some(b64) => {
                let data = STANDARD.decode(b64).map_err(|_| {
                    ApiError::bad_request(
                        "invalid_request",
                        format!("inline part {i} is not base64"),
                    )
                })?;
                if data.len() > st.config.limits.inline_part_max_bytes {
                    return Err(ApiError::too_large(
                        st.config.limits.inline_part_max_bytes as u64,
                    ));
                }
                if data.len() as u64 != p.size || <[u8; 32]>::from(Sha256::digest(&data)) != sha256
                {
                    return Err(ApiError::unprocessable(
                        "part_mismatch",
                        format!("part {i} does not match the hash and size in the signed envelope"),
                    ));
                }
                Some(data)
            }
            None => {
                if st.store.uploaded_by(auth.account.id, sha256).await? != Some(p.size) {
                    return Err(ApiError::unprocessable(
                        "part_missing",
                        format!("part {i} was not uploaded by you with the size in the envelope"),
                    ));
                }
                None
            }
        };
        parts.push(NewPart {
            sha256,
            size: p.size,
            inline,
        });
    }

    // Every part must be encrypted to every recipient and to the sender (for Sent).
    let mut required: Vec<(&str, &Cert, Arc<crate::api::CertFacts>)> = recipients
        .iter()
        .map(|(_, r, c)| (r.address.as_str(), &**c, st.cert_facts(c, checked_at)))
        .collect();
    required.push((auth.account.address.as_str(), &*sender_cert, sender_facts));
    for (i, part) in parts.iter().enumerate() {
        let keys = match &part.inline {
            Some(data) => crypto::pkesk_recipients_of_bytes(data),
            None => {
                let blobs = st.blobs.clone();
                let sha = part.sha256;
                tokio::task::spawn_blocking(move || {
                    let mut r = blobs
                        .open_blocking(sha)
                        .map_err(|e| crypto::CryptoError::Other(e.to_string()))?;
                    crypto::pkesk_recipients(&mut r)
                })
                .await
                .map_err(ApiError::internal)?
            }
        }
        .map_err(|e| {
            ApiError::unprocessable(
                "not_encrypted",
                format!("part {i} is not an OpenPGP message encrypted to its recipients: {e}"),
            )
        })?;
        let missing = crypto::missing_recipients_among(
            &keys,
            required
                .iter()
                .map(|(_, c, f)| (c.fingerprint(), f.encryption.as_slice())),
        );
        if !missing.is_empty() {
            let names: Vec<&str> = required
                .iter()
                .filter(|(_, c, _)| missing.contains(&c.fingerprint()))
                .map(|(a, _, _)| *a)
                .collect();
            return Err(ApiError::unprocessable(
                "missing_recipient_key",
                format!("part {i} is not encrypted to: {}", names.join(", ")),
            ));
        }
    }

    // Checked against the limit (so without overflow) by check_envelope.
    let size = env.total_size().unwrap_or(u64::MAX);
    let outcome = st
        .store
        .submit(
            NewMessage {
                id: env.message_id.clone(),
                sender_account: auth.account.id,
                sender_address: auth.account.address.clone(),
                envelope: req.envelope,
                signature: req.signature,
                size,
                parts,
                recipients: recipients
                    .iter()
                    .filter_map(|(id, r, _)| id.map(|id| (id, r.address.clone())))
                    .collect(),
                remote: remote_routes(&recipients),
                remote_expires_at: now + st.config.federation.delivery_expiry_secs as i64,
                remote_backlog_max: st.config.federation.max_backlog_per_peer,
            },
            now,
        )
        .await?;
    if let (SubmitOutcome::Accepted { .. }, Some(link)) = (&outcome, st.federation.get()) {
        for route in remote_routes(&recipients) {
            link.wake(&route.domain);
        }
    }
    let (status, accepted_at, duplicate) = match outcome {
        SubmitOutcome::Accepted { accepted_at } => (StatusCode::CREATED, accepted_at, false),
        SubmitOutcome::AlreadyAccepted { accepted_at } => (StatusCode::OK, accepted_at, true),
    };
    Ok((
        status,
        Json(SubmitResponse {
            message_id: env.message_id,
            accepted_at,
            duplicate,
            recipients: recipients
                .into_iter()
                .map(|(id, r, _)| RecipientState {
                    address: r.address,
                    // Local recipients have it now; others once their node's receipt is back.
                    state: if id.is_some() { "delivered" } else { "queued" }.into(),
                })
                .collect(),
        }),
    ))
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
        Some(a) => a.cert.unwrap_or_default(),
        // A peer organisation's user: the key (of those held for the address) whose signature
        // on this envelope verifies. The reader checks it again, and its trust.
        None => {
            let domain = crate::federation::domain_of(&m.item.from);
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
    Ok(Json(MessageResponse {
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
    if st.store.message(auth.account.id, &id).await?.is_none() {
        return Err(ApiError::not_found(
            "unknown_message",
            "no such message in your mailbox",
        ));
    }
    let data = st
        .store
        .part(&id, index)
        .await?
        .ok_or_else(|| ApiError::not_found("unknown_part", "the message has no such part"))?;
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
    let orphans = st
        .store
        .delete(auth.account.id, &auth.account.address, &id, now())
        .await?;
    for sha in orphans {
        // The rows are gone and committed; a file left behind is only wasted space.
        if let Err(e) = st.blobs.remove(sha).await {
            tracing::warn!(error = %e, "could not remove an unreferenced blob");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
