//! Registered mail (docs/evidence.md, "Registered mail"): the recipient's node withholds the
//! parts of a message registered for them until they sign an acceptance receipt, or keeps
//! their signed refusal; either becomes an evidence record (`AcceptanceByRecipient`,
//! `RejectionByRecipient`) signed by this node.
//!
//! A pickup recipient (no account, no key of their own) decides in the pickup page with a
//! pickup session: the node's record says the unlock code was proven (`method: pickup-muc`)
//! and carries the statement signed by a key made in the page, certified by no one. A pickup
//! that expires or is withdrawn undecided gets `NoAcceptanceByRecipient`.

use std::time::SystemTime;

use crate::evidence::Event;
use crate::proto::{
    Envelope, PickupReceiptRequest, RECEIPT_FORMAT, ReceiptDecision, ReceiptRequest,
    ReceiptStatement, RegisteredView,
};
use crate::service::evidence::{Facts, keep, make};
use crate::service::{Context, ServiceError};
use crate::storage::evidence::NewReceipt;
use crate::storage::pickup::PickupRecord;
use crate::storage::{Account, Folder, StoredMessage};

/// How far a receipt's time may be from the node's clock, either way.
pub const MAX_RECEIPT_SKEW_SECS: i64 = 300;

/// What the reader is told before opening a registered message.
pub const NOTICE: &str = "registered: opening it confirms receipt";

/// `method` of a pickup recipient's decision: the node saw the unlock code proven.
pub const PICKUP_METHOD: &str = "pickup-muc";

/// What a pickup recipient's record says of the key that signed their statement.
pub const PICKUP_KEY_CERTIFIED: &str =
    "none: made in the pickup page after the unlock code was proven; certified by no one";

/// The stored decision (`registered_receipts.decision`) kept when a pickup ended undecided.
const NO_DECISION: &str = "none";

/// The largest armored key a pickup recipient's decision may carry.
const MAX_PAGE_KEY: usize = 8 * 1024;

/// A stored decision as a reader's state.
fn state_of(decision: Option<&str>) -> &'static str {
    match decision {
        None => "pending",
        Some("accept") => "accepted",
        Some(NO_DECISION) => "expired",
        Some(_) => "refused",
    }
}

fn is_registered(env: &Envelope, address: &str) -> bool {
    env.registered
        .iter()
        .any(|a| a.eq_ignore_ascii_case(address))
}

/// Whether `m` (in `account`'s mailbox) is registered for `account`: its envelope, if so.
fn registered_for(account: &Account, m: &StoredMessage) -> Option<Envelope> {
    if m.item.folder == Folder::Sent {
        return None;
    }
    let env: Envelope = serde_json::from_str(&m.envelope).ok()?;
    is_registered(&env, &account.address).then_some(env)
}

/// The registered state of `m` for `account` (`None`: not registered for them).
pub async fn view(
    ctx: &Context,
    account: &Account,
    m: &StoredMessage,
) -> Result<Option<RegisteredView>, ServiceError> {
    if registered_for(account, m).is_none() {
        return Ok(None);
    }
    decided(ctx, &m.item.message_id, &account.address)
        .await
        .map(Some)
}

/// The registered view of a message registered for `address`, from its stored decision.
async fn decided(
    ctx: &Context,
    message_id: &str,
    address: &str,
) -> Result<RegisteredView, ServiceError> {
    let d = ctx.store.receipt_of(message_id, address).await?;
    Ok(RegisteredView {
        state: state_of(d.as_ref().map(|(d, _)| d.as_str())).into(),
        notice: NOTICE.into(),
    })
}

/// A part may go out only for an accepted message (`state` of a registered view).
fn release(view: Option<RegisteredView>) -> Result<(), ServiceError> {
    match view.map(|v| v.state) {
        None => Ok(()),
        Some(s) if s == "accepted" => Ok(()),
        Some(s) if s == "pending" => Err(ServiceError::ReceiptRequired),
        Some(_) => Err(ServiceError::RegisteredRefused),
    }
}

/// Refuses a part of a message registered for `account` until they accepted it.
pub async fn check_release(
    ctx: &Context,
    account: &Account,
    m: &StoredMessage,
) -> Result<(), ServiceError> {
    release(view(ctx, account, m).await?)
}

/// `POST /messages/{id}/receipt`: checks and keeps `account`'s signed decision on a message
/// registered for them, and records it as evidence. A second decision is refused
/// (`receipt_given`) unless it is the same (answered as the first time).
pub async fn receipt(
    ctx: &Context,
    account: &Account,
    message_id: &str,
    req: &ReceiptRequest,
    now: SystemTime,
) -> Result<ReceiptDecision, ServiceError> {
    let m = ctx
        .store
        .message(account.id, message_id)
        .await?
        .ok_or(ServiceError::UnknownMessage)?;
    let env = registered_for(account, &m).ok_or(ServiceError::NotRegistered)?;
    let st = check_statement(&env, &account.address, &req.statement, &req.signature, now)?;
    let cert = account
        .cert
        .as_deref()
        .ok_or_else(|| invalid("you have no key"))?;
    let cert = crate::crypto::cert_from_armored(cert).map_err(|e| invalid(&e.to_string()))?;
    check_signature(ctx, &cert, req, now)?;
    let fingerprint = cert.fingerprint().to_hex();
    decide(
        ctx,
        &env,
        &account.address,
        &st,
        req,
        &[("recipient_key", &fingerprint)],
        now,
    )
    .await
}

fn invalid(why: &str) -> ServiceError {
    ServiceError::InvalidReceipt(why.to_owned())
}

/// The statement of a decision on `env` by `recipient`: canonical bytes, about this message,
/// its parts and this recipient, dated near the node's clock.
fn check_statement(
    env: &Envelope,
    recipient: &str,
    statement: &str,
    signature: &str,
    now: SystemTime,
) -> Result<ReceiptStatement, ServiceError> {
    if statement.len() > 16 * 1024 || signature.len() > 16 * 1024 {
        return Err(invalid("too large"));
    }
    let st: ReceiptStatement =
        serde_json::from_str(statement).map_err(|e| invalid(&e.to_string()))?;
    if st.to_bytes() != statement.as_bytes() {
        return Err(invalid(
            "the statement is not in canonical form (sorted keys, compact)",
        ));
    }
    let hashes: Vec<String> = env.parts.iter().map(|p| p.sha256.clone()).collect();
    if st.format != RECEIPT_FORMAT
        || st.message_id != env.message_id
        || !st.recipient.eq_ignore_ascii_case(recipient)
        || st.parts != hashes
    {
        return Err(invalid(
            "the statement is not about this message, its parts and you",
        ));
    }
    if (st.at - crate::service::unix(now)).abs() > MAX_RECEIPT_SKEW_SECS {
        return Err(invalid("the statement's time is too far from the node's"));
    }
    Ok(st)
}

fn check_signature(
    ctx: &Context,
    cert: &sequoia_openpgp::Cert,
    req: &ReceiptRequest,
    now: SystemTime,
) -> Result<(), ServiceError> {
    crate::crypto::verify_detached(
        cert,
        &ctx.policy,
        now,
        req.statement.as_bytes(),
        &req.signature,
    )
    .map_err(|e| invalid(&format!("the signature does not verify: {e}")))
}

/// Keeps a checked decision of `recipient` with its evidence record (the statement, the
/// signature and `detail`), once: the same decision again is answered as the first time, a
/// different one is `receipt_given`.
async fn decide(
    ctx: &Context,
    env: &Envelope,
    recipient: &str,
    st: &ReceiptStatement,
    req: &ReceiptRequest,
    detail: &[(&str, &str)],
    now: SystemTime,
) -> Result<ReceiptDecision, ServiceError> {
    let message_id = env.message_id.as_str();
    let decision = match st.decision {
        ReceiptDecision::Accept => "accept",
        ReceiptDecision::Refuse => "refuse",
    };
    let same = |before: Option<(String, i64)>| match before {
        Some((d, _)) if d == decision => Ok(st.decision),
        _ => Err(ServiceError::ReceiptGiven),
    };
    if let Some(before) = ctx.store.receipt_of(message_id, recipient).await? {
        return same(Some(before));
    }
    let event = match st.decision {
        ReceiptDecision::Accept => Event::AcceptanceByRecipient,
        ReceiptDecision::Refuse => Event::RejectionByRecipient,
    };
    let facts = Facts {
        message_id,
        sender: &env.from,
        parts: env.parts.iter().map(|p| p.sha256.clone()).collect(),
    };
    let mut fields = vec![
        ("receipt_statement", req.statement.as_str()),
        ("receipt_signature", req.signature.as_str()),
    ];
    fields.extend_from_slice(detail);
    let record = make(ctx, event, &facts, Some(recipient), &fields, now)?;
    let stored = ctx
        .store
        .put_receipt(
            NewReceipt {
                message_id: message_id.to_owned(),
                recipient: recipient.to_owned(),
                decision: decision.into(),
                statement: req.statement.clone(),
                signature: req.signature.clone(),
                at: crate::service::unix(now),
            },
            vec![record],
        )
        .await?;
    if !stored {
        // Another request decided at the same time: answer as it was decided.
        return same(ctx.store.receipt_of(message_id, recipient).await?);
    }
    Ok(st.decision)
}

// ---- pickup recipients ----

/// The envelope of a message of `pickup`'s thread sent to its outside address: its own
/// message or another of the sender's under the same key (`None`: not one of them).
async fn pickup_envelope(
    ctx: &Context,
    pickup: &PickupRecord,
    message_id: &str,
) -> Result<Option<Envelope>, ServiceError> {
    let text = if message_id == pickup.message_id {
        ctx.store
            .pickup_message(message_id)
            .await?
            .map(|(envelope, _, _)| envelope)
    } else {
        ctx.store
            .thread_messages(&pickup.sender, &pickup.address, pickup.thread)
            .await?
            .into_iter()
            .find(|m| m.message_id == message_id && !m.reply)
            .map(|m| m.envelope)
    };
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

/// The registered state of a message (the envelope's text) for a pickup's outside address
/// (`None`: not registered for them).
pub async fn pickup_view(
    ctx: &Context,
    address: &str,
    envelope: &str,
) -> Result<Option<RegisteredView>, ServiceError> {
    let Ok(env) = serde_json::from_str::<Envelope>(envelope) else {
        return Ok(None);
    };
    if !is_registered(&env, address) {
        return Ok(None);
    }
    decided(ctx, &env.message_id, address).await.map(Some)
}

/// Refuses a part of `message_id` (of `pickup`'s thread) until its outside recipient accepted
/// it, if it is registered for them: `receipt_required`, `registered_refused`.
pub async fn check_pickup_release(
    ctx: &Context,
    pickup: &PickupRecord,
    message_id: &str,
) -> Result<(), ServiceError> {
    let Some(env) = pickup_envelope(ctx, pickup, message_id).await? else {
        return Ok(());
    };
    if !is_registered(&env, &pickup.address) {
        return Ok(());
    }
    release(Some(decided(ctx, message_id, &pickup.address).await?))
}

/// `POST /pickup/receipt`: a pickup recipient's signed decision on a message of their thread
/// registered for them. The signer is a key made in the pickup page (`public_key`), never the
/// pickup key, whose secret the sender's client made and keeps a copy of. The record says how
/// the recipient was authenticated (the unlock code, proven at `muc_proven_at`) and that their
/// key is certified by no one.
pub async fn pickup_receipt(
    ctx: &Context,
    pickup: &PickupRecord,
    req: &PickupReceiptRequest,
    now: SystemTime,
) -> Result<ReceiptDecision, ServiceError> {
    if req.public_key.len() > MAX_PAGE_KEY {
        return Err(invalid("public_key is larger than 8 KiB"));
    }
    // The statement names the message: the session's own or another of its thread.
    let named: ReceiptStatement =
        serde_json::from_str(&req.statement).map_err(|e| invalid(&e.to_string()))?;
    let env = pickup_envelope(ctx, pickup, &named.message_id)
        .await?
        .ok_or(ServiceError::UnknownMessage)?;
    if !is_registered(&env, &pickup.address) {
        return Err(ServiceError::NotRegistered);
    }
    let st = check_statement(&env, &pickup.address, &req.statement, &req.signature, now)?;
    let cert = crate::crypto::cert_from_armored(&req.public_key)
        .map_err(|e| invalid(&format!("public_key: {e}")))?;
    if cert.is_tsk() {
        return Err(invalid("public_key must hold no secret key material"));
    }
    let pickup_key = pickup.fingerprint.to_ascii_lowercase();
    if cert.keys().any(|k| {
        k.key()
            .fingerprint()
            .to_hex()
            .eq_ignore_ascii_case(&pickup_key)
    }) {
        return Err(invalid(
            "the pickup key cannot sign a receipt (the sender's client made it): sign with a key made in the page",
        ));
    }
    let plain = ReceiptRequest {
        statement: req.statement.clone(),
        signature: req.signature.clone(),
    };
    check_signature(ctx, &cert, &plain, now)?;
    let fingerprint = cert.fingerprint().to_hex();
    let armored = crate::crypto::cert_to_armored(&cert).map_err(ServiceError::internal)?;
    let proven = pickup.opened_at.unwrap_or(pickup.created_at).to_string();
    decide(
        ctx,
        &env,
        &pickup.address,
        &st,
        &plain,
        &[
            ("method", PICKUP_METHOD),
            ("muc_proven_at", &proven),
            ("pickup_key", &pickup.fingerprint),
            ("recipient_cert", &armored),
            ("recipient_key", &fingerprint),
            ("recipient_key_certified", PICKUP_KEY_CERTIFIED),
        ],
        now,
    )
    .await
}

/// A pickup that ended (`why`: `expired`, `withdrawn`) while the message (`envelope`'s text)
/// was registered for its outside recipient and undecided: `NoAcceptanceByRecipient`, kept
/// with the decision `none` so it is made once. A failure is logged: the pickup has ended.
pub async fn no_acceptance(
    ctx: &Context,
    address: &str,
    envelope: &str,
    why: &str,
    now: SystemTime,
) {
    let Ok(env) = serde_json::from_str::<Envelope>(envelope) else {
        return;
    };
    if !is_registered(&env, address) {
        return;
    }
    let facts = Facts {
        message_id: &env.message_id,
        sender: &env.from,
        parts: env.parts.iter().map(|p| p.sha256.clone()).collect(),
    };
    let record = make(
        ctx,
        Event::NoAcceptanceByRecipient,
        &facts,
        Some(address),
        &[("method", PICKUP_METHOD), ("reason", why)],
        now,
    );
    let record = match record {
        Ok(r) => r,
        Err(e) => return keep(ctx, vec![Err(e)]).await,
    };
    let kept = ctx
        .store
        .put_receipt(
            NewReceipt {
                message_id: env.message_id.clone(),
                recipient: address.to_owned(),
                decision: NO_DECISION.into(),
                statement: String::new(),
                signature: String::new(),
                at: crate::service::unix(now),
            },
            vec![record],
        )
        .await;
    if let Err(e) = kept {
        tracing::warn!(error = %e, "could not keep a NoAcceptanceByRecipient record");
    }
}
