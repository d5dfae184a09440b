//! Retention of compliance copies and legal holds (docs/compliance.md, "Retention and legal
//! holds"). Every rule is here, once:
//!
//! - **retention**: when a user deletes a message whose head is encrypted to our compliance
//!   key ([`super::compliance::copies_of`], read from the stored PKESKs), the message leaves
//!   their mailbox as any other, but its row, parts and blobs stay until `accepted_at` plus
//!   `[compliance] retention_days` (forever with 0): the officers' archive and cases still
//!   find it. A message without a compliance copy of ours goes at once, as before.
//! - **legal holds**: an officer places a hold on a case, with a reason, and lifts it; while
//!   held, no message the case names expires, and the users' "opened for compliance" view
//!   leaves out the openings under that case (the delay itself logged once per case and hold:
//!   [`opens_of_message`], the users' door to that view).
//! - **expiry**: [`sweep`] deletes the ciphertext of copies past their time with no hold and no
//!   mailbox entry, logging `compliance.expired` per message (its ID, nothing else).
//!
//! What this module must not do: read the clock (`now` is passed in) or decide who is an
//! officer by other means than `service::custody::require_officer`.

use std::time::SystemTime;

use super::{Context, ServiceError, unix};
use crate::proto::custody::{CaseView, ComplianceOpen};
use crate::storage::compliance_custody::HoldStep;
use crate::storage::{Account, BlobStore, MetaStore, StorageError};

/// Longest hold reason, in characters.
pub const MAX_HOLD_REASON: usize = 512;
/// Most compliance copies one sweep expires (the next sweep takes the rest).
pub const SWEEP_BATCH: u32 = 500;

/// Until when a user's deletion of `message_id` keeps it: `Some` when its head is a
/// compliance copy of ours (accepted_at + the retention; `i64::MAX`: forever), `None` when
/// it may go at once.
async fn retain_until(
    ctx: &Context,
    message_id: &str,
    accepted_at: i64,
    now: SystemTime,
) -> Result<Option<i64>, ServiceError> {
    let ours = ctx.config.domain.to_ascii_lowercase();
    if !super::compliance::copies_of(ctx, message_id, now)
        .await?
        .contains(&ours)
    {
        return Ok(None);
    }
    Ok(Some(match ctx.config.compliance.retention_secs() {
        Some(secs) => accepted_at.saturating_add(secs),
        None => i64::MAX,
    }))
}

/// `account` deletes `message_id` from their folders (logged `deletion`). A compliance copy
/// of ours stays stored for the archive until its retention ends; anything else that nobody
/// holds any more goes with its blobs.
pub async fn delete(
    ctx: &Context,
    account: &Account,
    message_id: &str,
    now: SystemTime,
) -> Result<(), ServiceError> {
    let Some(stored) = ctx.store.message(account.id, message_id).await? else {
        return Err(ServiceError::Storage(StorageError::NotFound("message")));
    };
    let until = retain_until(ctx, message_id, stored.accepted_at, now).await?;
    let orphans = ctx
        .store
        .delete(account.id, &account.address, message_id, until, unix(now))
        .await?;
    super::pickup::remove_blobs(&*ctx.blobs, orphans).await;
    Ok(())
}

/// `officer` places a legal hold on case `id` for `reason` (logged `compliance.hold_placed`).
pub async fn place_hold(
    ctx: &Context,
    officer: &Account,
    id: i64,
    reason: &str,
    now: SystemTime,
) -> Result<CaseView, ServiceError> {
    super::custody::require_officer(&*ctx.store, officer).await?;
    let reason = reason.trim();
    if reason.is_empty()
        || reason.chars().count() > MAX_HOLD_REASON
        || reason.chars().any(char::is_control)
    {
        return Err(ServiceError::InvalidHold(format!(
            "a reason is 1 to {MAX_HOLD_REASON} characters, without control characters"
        )));
    }
    match ctx
        .store
        .place_hold(id, &officer.address, reason, unix(now))
        .await?
    {
        HoldStep::Done => {}
        HoldStep::Unknown => return Err(ServiceError::UnknownCase),
        HoldStep::Unchanged => return Err(ServiceError::AlreadyHeld),
    }
    super::custody::case(ctx, id).await
}

/// `officer` lifts the legal hold on case `id` (logged `compliance.hold_lifted`).
pub async fn lift_hold(
    ctx: &Context,
    officer: &Account,
    id: i64,
    now: SystemTime,
) -> Result<CaseView, ServiceError> {
    super::custody::require_officer(&*ctx.store, officer).await?;
    match ctx.store.lift_hold(id, &officer.address, unix(now)).await? {
        HoldStep::Done => {}
        HoldStep::Unknown => return Err(ServiceError::UnknownCase),
        HoldStep::Unchanged => return Err(ServiceError::NotHeld),
    }
    super::custody::case(ctx, id).await
}

/// When `account`'s message `message_id` (in any of their folders) was opened for compliance.
/// Who opened it and why is the officers' report; the user learns that and when, except for
/// openings under a case on legal hold ([`visible_opens`]).
pub async fn opens_of_message(
    ctx: &Context,
    account: &Account,
    message_id: &str,
    now: SystemTime,
) -> Result<Vec<ComplianceOpen>, ServiceError> {
    if ctx.store.message(account.id, message_id).await?.is_none() {
        return Err(ServiceError::Storage(StorageError::NotFound("message")));
    }
    let opens = ctx.store.message_opens(message_id).await?;
    Ok(visible_opens(ctx, message_id, opens, now)
        .await?
        .into_iter()
        .map(|(at, _)| ComplianceOpen { at })
        .collect())
}

/// Of `opens` (when, under which case) of `message_id`, those a user may see now: openings
/// under a case on hold are withheld, and the first withholding per case and hold is logged
/// `compliance.notice_delayed`.
async fn visible_opens(
    ctx: &Context,
    message_id: &str,
    opens: Vec<(i64, i64)>,
    now: SystemTime,
) -> Result<Vec<(i64, i64)>, ServiceError> {
    if opens.is_empty() {
        return Ok(opens);
    }
    let held = ctx.store.held_cases().await?;
    let mut visible = Vec::with_capacity(opens.len());
    let mut delayed: Vec<i64> = Vec::new();
    for (at, case) in opens {
        if held.contains(&case) {
            if !delayed.contains(&case) {
                delayed.push(case);
            }
        } else {
            visible.push((at, case));
        }
    }
    for case in delayed {
        ctx.store
            .log_notice_delayed(case, message_id, unix(now))
            .await?;
    }
    Ok(visible)
}

/// Expires the compliance copies whose retention ended at `now` (see the module's doc);
/// returns how many went.
pub async fn sweep(
    store: &dyn MetaStore,
    blobs: &dyn BlobStore,
    now: i64,
) -> Result<usize, ServiceError> {
    let mut total = 0;
    loop {
        let (ids, orphans) = store.expire_compliance_copies(now, SWEEP_BATCH).await?;
        super::pickup::remove_blobs(blobs, orphans).await;
        total += ids.len();
        if ids.len() < SWEEP_BATCH as usize {
            return Ok(total);
        }
    }
}
