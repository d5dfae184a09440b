//! Registered mail (docs/evidence.md, "Registered mail"): the recipient's node withholds the
//! parts of a message registered for them until they sign an acceptance receipt, or keeps
//! their signed refusal; either becomes an evidence record (`AcceptanceByRecipient`,
//! `RejectionByRecipient`) signed by this node.

use std::time::SystemTime;

use crate::evidence::Event;
use crate::proto::{
    Envelope, RECEIPT_FORMAT, ReceiptDecision, ReceiptRequest, ReceiptStatement, RegisteredView,
};
use crate::service::evidence::{Facts, make};
use crate::service::{Context, ServiceError};
use crate::storage::evidence::NewReceipt;
use crate::storage::{Account, Folder, StoredMessage};

/// How far a receipt's time may be from the node's clock, either way.
pub const MAX_RECEIPT_SKEW_SECS: i64 = 300;

/// What the reader is told before opening a registered message.
pub const NOTICE: &str = "registered: opening it confirms receipt";

/// Whether `m` (in `account`'s mailbox) is registered for `account`: its envelope, if so.
fn registered_for(account: &Account, m: &StoredMessage) -> Option<Envelope> {
    if m.item.folder == Folder::Sent {
        return None;
    }
    let env: Envelope = serde_json::from_str(&m.envelope).ok()?;
    env.registered
        .iter()
        .any(|a| a.eq_ignore_ascii_case(&account.address))
        .then_some(env)
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
    let state = match ctx
        .store
        .receipt_of(&m.item.message_id, &account.address)
        .await?
    {
        None => "pending",
        Some((d, _)) if d == "accept" => "accepted",
        Some(_) => "refused",
    };
    Ok(Some(RegisteredView {
        state: state.into(),
        notice: NOTICE.into(),
    }))
}

/// Refuses a part of a message registered for `account` until they accepted it.
pub async fn check_release(
    ctx: &Context,
    account: &Account,
    m: &StoredMessage,
) -> Result<(), ServiceError> {
    match view(ctx, account, m).await?.map(|v| v.state) {
        None => Ok(()),
        Some(s) if s == "accepted" => Ok(()),
        Some(s) if s == "refused" => Err(ServiceError::RegisteredRefused),
        Some(_) => Err(ServiceError::ReceiptRequired),
    }
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
    let bad = |m: &str| ServiceError::InvalidReceipt(m.to_owned());
    if req.statement.len() > 16 * 1024 || req.signature.len() > 16 * 1024 {
        return Err(bad("too large"));
    }
    let m = ctx
        .store
        .message(account.id, message_id)
        .await?
        .ok_or(ServiceError::UnknownMessage)?;
    let env = registered_for(account, &m).ok_or(ServiceError::NotRegistered)?;
    let st: ReceiptStatement =
        serde_json::from_str(&req.statement).map_err(|e| bad(&e.to_string()))?;
    if st.to_bytes() != req.statement.as_bytes() {
        return Err(bad(
            "the statement is not in canonical form (sorted keys, compact)",
        ));
    }
    let hashes: Vec<String> = env.parts.iter().map(|p| p.sha256.clone()).collect();
    if st.format != RECEIPT_FORMAT
        || st.message_id != message_id
        || !st.recipient.eq_ignore_ascii_case(&account.address)
        || st.parts != hashes
    {
        return Err(bad(
            "the statement is not about this message, its parts and you",
        ));
    }
    let unix = crate::service::unix(now);
    if (st.at - unix).abs() > MAX_RECEIPT_SKEW_SECS {
        return Err(bad("the statement's time is too far from the node's"));
    }
    let cert = account
        .cert
        .as_deref()
        .ok_or_else(|| bad("you have no key"))?;
    let cert = crate::crypto::cert_from_armored(cert).map_err(|e| bad(&e.to_string()))?;
    crate::crypto::verify_detached(
        &cert,
        &ctx.policy,
        now,
        req.statement.as_bytes(),
        &req.signature,
    )
    .map_err(|e| bad(&format!("the signature does not verify: {e}")))?;
    let decision = match st.decision {
        ReceiptDecision::Accept => "accept",
        ReceiptDecision::Refuse => "refuse",
    };
    if let Some((before, _)) = ctx.store.receipt_of(message_id, &account.address).await? {
        return if before == decision {
            Ok(st.decision)
        } else {
            Err(ServiceError::ReceiptGiven)
        };
    }
    let event = match st.decision {
        ReceiptDecision::Accept => Event::AcceptanceByRecipient,
        ReceiptDecision::Refuse => Event::RejectionByRecipient,
    };
    let facts = Facts {
        message_id,
        sender: &env.from,
        parts: hashes,
    };
    let fingerprint = cert.fingerprint().to_hex();
    let record = make(
        ctx,
        event,
        &facts,
        Some(&account.address),
        &[
            ("receipt_statement", &req.statement),
            ("receipt_signature", &req.signature),
            ("recipient_key", &fingerprint),
        ],
        now,
    )?;
    let stored = ctx
        .store
        .put_receipt(
            NewReceipt {
                message_id: message_id.to_owned(),
                recipient: account.address.clone(),
                decision: decision.into(),
                statement: req.statement.clone(),
                signature: req.signature.clone(),
                at: unix,
            },
            vec![record],
        )
        .await?;
    if !stored {
        // Another request decided at the same time: answer as it was decided.
        return match ctx.store.receipt_of(message_id, &account.address).await? {
            Some((d, _)) if d == decision => Ok(st.decision),
            _ => Err(ServiceError::ReceiptGiven),
        };
    }
    Ok(st.decision)
}
