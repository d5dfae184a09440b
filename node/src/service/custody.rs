//! The compliance key under dual control (docs/compliance.md, "Dual control"). Every rule is
//! here, once, for every door (HTTP, admin CLI, tests):
//!
//! - **officers**: accounts of this organisation (not guests, enrolled) an admin flags;
//!   everything below is refused to anyone else (`not_officer`).
//! - **setup** (an admin): the compliance key's public certificate, its TSK locked under a
//!   secret S the node never sees (every secret key encrypted: checked), the threshold M and one
//!   share of S per officer, each an OpenPGP message to that officer's key (checked on its
//!   PKESKs). A new setup retires the previous one: adding or removing an officer is a new split.
//! - **cases**: an officer who holds a share requests access with a case reference, the message
//!   IDs and a request key made in their browser; M-1 *other* officers approve, each with their
//!   share re-encrypted to the request key; any officer other than the requester may refuse,
//!   which closes the case. Only the requester gets the release (the locked key, their own
//!   wrapped share and the approvals' shares), only with enough approvals, and only after
//!   `compliance.shares_released` is committed; then only the requester reads the case's
//!   messages, each read logged (`compliance.message_opened`) before its ciphertext is served.
//!
//! What this module must not do: hold, log or check anything that could unlock the key (the
//! node cannot combine the shares: each is encrypted to someone else), or read the clock.

use std::time::SystemTime;

use sequoia_openpgp::Cert;

use super::{Actor, Context, ServiceError, unix};
use crate::proto::crypto;
use crate::proto::custody::{
    ArchiveItem, ArchiveSearch, CaseHold, CaseRelease, CaseReport, CaseView, CustodySetupRequest,
    CustodyView, MessageAccess, OfficerView, OpenedBy, ReleasedShare, ReportEntry,
};
use crate::storage::compliance_custody::{ArchiveQuery, CaseRow, CaseStep, CustodyRow, NewCustody};
use crate::storage::{Account, AccountState, MetaStore, PartData};

/// Longest case reference, in characters.
pub const MAX_CASE_REF: usize = 128;
/// Most messages one case may name.
pub const MAX_CASE_MESSAGES: usize = 100;
/// Most officers a key may be split among.
pub const MAX_OFFICERS: usize = 64;
/// Largest wrapped share or request key accepted (bytes of armor).
const MAX_SHARE_BYTES: usize = 16 * 1024;
const MAX_KEY_BYTES: usize = 64 * 1024;
/// Most rows one archive search answers.
pub const ARCHIVE_LIMIT: u32 = 200;

/// Makes `address` a compliance officer (or no longer one).
pub async fn set_officer(
    store: &dyn MetaStore,
    actor: &Actor,
    address: &str,
    officer: bool,
    now: SystemTime,
) -> Result<(), ServiceError> {
    let address = crate::normalize_address(address)
        .ok_or_else(|| ServiceError::InvalidAddress(address.to_owned()))?;
    let account =
        store
            .account_by_address(&address)
            .await?
            .ok_or_else(|| ServiceError::UnknownUser {
                address: address.clone(),
            })?;
    if officer {
        super::guests::not_for_guests(&account, "be a compliance officer")?;
        if account.state != AccountState::Active || account.cert.is_none() {
            return Err(ServiceError::NotEnrolled { address });
        }
    }
    store
        .set_officer(
            account.id,
            &account.address,
            officer,
            actor.log_name(),
            unix(now),
        )
        .await?;
    Ok(())
}

/// The officers, in the order they were made officers.
pub async fn officers(store: &dyn MetaStore) -> Result<Vec<OfficerView>, ServiceError> {
    Ok(store
        .officers()
        .await?
        .into_iter()
        .map(|(_, address, added_at)| OfficerView { address, added_at })
        .collect())
}

/// Refuses anyone who is not a compliance officer.
pub async fn require_officer(store: &dyn MetaStore, account: &Account) -> Result<(), ServiceError> {
    if store.is_officer(account.id).await? {
        Ok(())
    } else {
        Err(ServiceError::NotOfficer)
    }
}

/// The compliance key's public certificate, parsed for the custody's own checks (the locked
/// key and the shares are checked against it); its installation (the rules a compliance key
/// must meet, the CA's marking, publication) is `service::compliance::install`, which `setup`
/// calls once the whole setup checks out.
fn custody_cert(ctx: &Context, cert: &str, now: SystemTime) -> Result<Cert, ServiceError> {
    if cert.len() > MAX_KEY_BYTES {
        return Err(ServiceError::InvalidCustody(
            "the certificate is too large".into(),
        ));
    }
    let cert = crypto::cert_from_armored(cert)
        .map_err(|e| ServiceError::InvalidCustody(format!("the certificate: {e}")))?;
    if crypto::encryption_key_handles(&cert, &ctx.policy, now).is_empty() {
        return Err(ServiceError::InvalidCustody(
            "the certificate has no valid encryption key".into(),
        ));
    }
    Ok(cert)
}

/// `wrapped` is an OpenPGP message (armored) encrypted to `to`'s encryption key.
fn check_wrapped_for(
    ctx: &Context,
    wrapped: &str,
    to: &Cert,
    now: SystemTime,
) -> Result<(), String> {
    if wrapped.len() > MAX_SHARE_BYTES {
        return Err("it is too large".into());
    }
    let recipients = crypto::pkesk_recipients_of_bytes(wrapped.as_bytes())
        .map_err(|e| format!("not an encrypted OpenPGP message: {e}"))?;
    if !crypto::missing_recipients(&recipients, [to], &ctx.policy, now).is_empty() {
        return Err(format!("it is not encrypted to {}", to.fingerprint()));
    }
    Ok(())
}

/// Sets up (or sets up anew) the custody of the compliance key: see the module's doc.
pub async fn setup(
    ctx: &Context,
    actor: &Actor,
    req: &CustodySetupRequest,
    now: SystemTime,
) -> Result<CustodyView, ServiceError> {
    let bad = |s: String| ServiceError::InvalidCustody(s);
    let cert = custody_cert(ctx, &req.cert, now)?;
    crypto::check_wrapped_key(&req.locked_key, &cert)
        .map_err(|e| bad(format!("the locked key: {e}")))?;
    let n = req.shares.len();
    if !(2..=MAX_OFFICERS).contains(&n) {
        return Err(bad(format!("2 to {MAX_OFFICERS} shares, not {n}")));
    }
    if req.threshold < 2 || req.threshold as usize > n {
        return Err(bad(format!(
            "the threshold must be 2 to {n} (the number of shares), not {}",
            req.threshold
        )));
    }
    let officers = ctx.store.officers().await?;
    let mut shares = Vec::with_capacity(n);
    for s in &req.shares {
        let address = crate::normalize_address(&s.address)
            .ok_or_else(|| ServiceError::InvalidAddress(s.address.clone()))?;
        let Some((id, _, _)) = officers.iter().find(|o| o.1 == address) else {
            return Err(bad(format!("{address} is not a compliance officer")));
        };
        if shares.iter().any(|(i, _, _)| i == id) {
            return Err(bad(format!("{address} has two shares")));
        }
        let account = ctx
            .store
            .account_by_address(&address)
            .await?
            .ok_or_else(|| ServiceError::UnknownUser {
                address: address.clone(),
            })?;
        let officer_cert = account
            .cert
            .as_deref()
            .map(crypto::cert_from_armored)
            .transpose()
            .map_err(ServiceError::internal)?
            .ok_or_else(|| ServiceError::NotEnrolled {
                address: address.clone(),
            })?;
        check_wrapped_for(ctx, &s.share, &officer_cert, now)
            .map_err(|why| bad(format!("the share for {address}: {why}")))?;
        shares.push((*id, address, s.share.clone()));
    }
    // Everything checks out: the key becomes the organisation's compliance key (marked by the
    // CA, published, required of every message), then its custody is stored.
    let installed = super::compliance::install(
        ctx.store.as_ref(),
        &ctx.config,
        &ctx.ca,
        actor,
        req.cert.as_bytes(),
        now,
    )
    .await?;
    let custody = NewCustody {
        fingerprint: installed.fingerprint.clone(),
        cert: installed.armored.clone(),
        locked_key: req.locked_key.clone(),
        threshold: req.threshold,
        shares,
    };
    ctx.store
        .put_custody(custody, actor.log_name(), unix(now))
        .await?;
    custody_view(ctx, None).await
}

/// The key under custody; with `for_officer`, that officer's own wrapped share.
pub async fn custody_view(
    ctx: &Context,
    for_officer: Option<&Account>,
) -> Result<CustodyView, ServiceError> {
    let custody = ctx
        .store
        .current_custody()
        .await?
        .ok_or(ServiceError::NoCustody)?;
    let shares = ctx.store.custody_shares(custody.id).await?;
    let my_share = for_officer.and_then(|a| {
        shares
            .iter()
            .find(|s| s.account_id == a.id)
            .map(|s| s.wrapped_share.clone())
    });
    Ok(CustodyView {
        fingerprint: custody.fingerprint,
        cert: custody.cert,
        threshold: custody.threshold,
        officers: shares.into_iter().map(|s| s.address).collect(),
        created_at: custody.created_at,
        created_by: custody.created_by,
        my_share,
    })
}

fn case_view(row: CaseRow, threshold: u32) -> CaseView {
    CaseView {
        id: row.id,
        case_ref: row.case_ref,
        requester: row.requester,
        message_ids: row.message_ids,
        request_key: row.request_key,
        state: row.state,
        created_at: row.created_at,
        approved_by: row.approvals.into_iter().map(|a| a.officer).collect(),
        approvals_needed: threshold.saturating_sub(1),
        refused_by: row.refused_by,
        hold: row.hold.map(|h| CaseHold {
            reason: h.reason,
            placed_by: h.placed_by,
            placed_at: h.placed_at,
        }),
    }
}

/// Case `id` as officers see it (the caller checked the officer).
pub(super) async fn case(ctx: &Context, id: i64) -> Result<CaseView, ServiceError> {
    let row = ctx.store.case(id).await?.ok_or(ServiceError::UnknownCase)?;
    let threshold = ctx
        .store
        .current_custody()
        .await?
        .filter(|c| c.id == row.custody_id)
        .map_or(0, |c| c.threshold);
    Ok(case_view(row, threshold))
}

/// A new access case by `officer`: see the module's doc.
pub async fn request(
    ctx: &Context,
    officer: &Account,
    case_ref: &str,
    message_ids: &[String],
    request_key: &str,
    now: SystemTime,
) -> Result<CaseView, ServiceError> {
    require_officer(&*ctx.store, officer).await?;
    let custody = ctx
        .store
        .current_custody()
        .await?
        .ok_or(ServiceError::NoCustody)?;
    let shares = ctx.store.custody_shares(custody.id).await?;
    if !shares.iter().any(|s| s.account_id == officer.id) {
        return Err(ServiceError::NoShare {
            address: officer.address.clone(),
        });
    }
    let bad = |s: String| ServiceError::InvalidCase(s);
    let case_ref = case_ref.trim();
    if case_ref.is_empty()
        || case_ref.chars().count() > MAX_CASE_REF
        || case_ref.chars().any(char::is_control)
    {
        return Err(bad(format!(
            "a case reference is 1 to {MAX_CASE_REF} characters, without control characters"
        )));
    }
    if message_ids.is_empty() || message_ids.len() > MAX_CASE_MESSAGES {
        return Err(bad(format!("1 to {MAX_CASE_MESSAGES} message IDs")));
    }
    let mut ids: Vec<String> = Vec::with_capacity(message_ids.len());
    for id in message_ids {
        if !crate::is_message_id(id) {
            return Err(bad(format!("{id:?} is not a message ID")));
        }
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    let found = ctx.store.messages_exist(ids.clone()).await?;
    if let Some(missing) = ids.iter().find(|id| !found.contains(id)) {
        return Err(bad(format!("no message {missing} is stored")));
    }
    if request_key.len() > MAX_KEY_BYTES {
        return Err(bad("the request key is too large".into()));
    }
    let key =
        crypto::cert_from_armored(request_key).map_err(|e| bad(format!("the request key: {e}")))?;
    if crypto::encryption_key_handles(&key, &ctx.policy, now).is_empty() {
        return Err(bad("the request key has no valid encryption key".into()));
    }
    let id = ctx
        .store
        .create_case(
            custody.id,
            officer.id,
            &officer.address,
            case_ref,
            &ids,
            request_key,
            &key.fingerprint().to_hex(),
            unix(now),
        )
        .await?;
    let row = ctx
        .store
        .case(id)
        .await?
        .ok_or_else(|| ServiceError::internal("the new case is gone"))?;
    Ok(case_view(row, custody.threshold))
}

/// Every case (newest first, at most 500), for `officer`.
pub async fn cases(ctx: &Context, officer: &Account) -> Result<Vec<CaseView>, ServiceError> {
    require_officer(&*ctx.store, officer).await?;
    let threshold = ctx
        .store
        .current_custody()
        .await?
        .map_or(0, |c| c.threshold);
    Ok(ctx
        .store
        .cases(None)
        .await?
        .into_iter()
        .map(|c| case_view(c, threshold))
        .collect())
}

/// The case `id` with its custody, for an officer other than its requester to decide on.
async fn case_to_decide(
    ctx: &Context,
    officer: &Account,
    id: i64,
) -> Result<(CaseRow, u32), ServiceError> {
    require_officer(&*ctx.store, officer).await?;
    let case = ctx.store.case(id).await?.ok_or(ServiceError::UnknownCase)?;
    if case.requester_id == officer.id {
        return Err(ServiceError::OwnCase);
    }
    if case.state != "pending" {
        return Err(ServiceError::CaseClosed { state: case.state });
    }
    let custody = custody_of(ctx, &case).await?;
    Ok((case, custody.threshold))
}

/// The live custody `case` was opened under; a case of a retired one is closed.
async fn custody_of(ctx: &Context, case: &CaseRow) -> Result<CustodyRow, ServiceError> {
    ctx.store
        .current_custody()
        .await?
        .filter(|c| c.id == case.custody_id)
        .ok_or_else(|| ServiceError::CaseClosed {
            state: "superseded".into(),
        })
}

fn step(outcome: CaseStep) -> Result<(), ServiceError> {
    match outcome {
        CaseStep::Done => Ok(()),
        CaseStep::Unknown => Err(ServiceError::UnknownCase),
        CaseStep::Closed(state) => Err(ServiceError::CaseClosed { state }),
        CaseStep::Duplicate => Err(ServiceError::AlreadyApproved),
        CaseStep::TooFew(have, need) => Err(ServiceError::NotEnoughApprovals { have, need }),
    }
}

/// `officer` approves case `id` with `share`, their share encrypted to the case's request key.
pub async fn approve(
    ctx: &Context,
    officer: &Account,
    id: i64,
    share: &str,
    now: SystemTime,
) -> Result<CaseView, ServiceError> {
    let (case, threshold) = case_to_decide(ctx, officer, id).await?;
    let holds = ctx
        .store
        .custody_shares(case.custody_id)
        .await?
        .iter()
        .any(|s| s.account_id == officer.id);
    if !holds {
        return Err(ServiceError::NoShare {
            address: officer.address.clone(),
        });
    }
    if case.approvals.iter().any(|a| a.officer_id == officer.id) {
        return Err(ServiceError::AlreadyApproved);
    }
    let request_key =
        crypto::cert_from_armored(&case.request_key).map_err(ServiceError::internal)?;
    check_wrapped_for(ctx, share, &request_key, now)
        .map_err(|why| ServiceError::InvalidCase(format!("the share: {why}")))?;
    step(
        ctx.store
            .approve_case(id, officer.id, &officer.address, share, unix(now))
            .await?,
    )?;
    let row = ctx.store.case(id).await?.ok_or(ServiceError::UnknownCase)?;
    Ok(case_view(row, threshold))
}

/// `officer` refuses case `id`, which closes it.
pub async fn refuse(
    ctx: &Context,
    officer: &Account,
    id: i64,
    now: SystemTime,
) -> Result<CaseView, ServiceError> {
    let (_, threshold) = case_to_decide(ctx, officer, id).await?;
    step(
        ctx.store
            .refuse_case(id, officer.id, &officer.address, unix(now))
            .await?,
    )?;
    let row = ctx.store.case(id).await?.ok_or(ServiceError::UnknownCase)?;
    Ok(case_view(row, threshold))
}

/// The case `id` of `officer`'s own, released: see [`release`] and [`open_message`].
async fn own_case(ctx: &Context, officer: &Account, id: i64) -> Result<CaseRow, ServiceError> {
    require_officer(&*ctx.store, officer).await?;
    let case = ctx.store.case(id).await?.ok_or(ServiceError::UnknownCase)?;
    if case.requester_id != officer.id {
        return Err(ServiceError::NotRequester);
    }
    Ok(case)
}

/// The release of case `id` to its requester, logged before it is returned.
pub async fn release(
    ctx: &Context,
    officer: &Account,
    id: i64,
    now: SystemTime,
) -> Result<CaseRelease, ServiceError> {
    let case = own_case(ctx, officer, id).await?;
    let custody = custody_of(ctx, &case).await?;
    let own_share = ctx
        .store
        .custody_shares(custody.id)
        .await?
        .into_iter()
        .find(|s| s.account_id == officer.id)
        .ok_or_else(|| ServiceError::NoShare {
            address: officer.address.clone(),
        })?
        .wrapped_share;
    // The log entry is committed here, before anything is answered.
    step(
        ctx.store
            .release_case(
                id,
                &officer.address,
                custody.threshold.saturating_sub(1),
                unix(now),
            )
            .await?,
    )?;
    let case = ctx.store.case(id).await?.ok_or(ServiceError::UnknownCase)?;
    Ok(CaseRelease {
        case_id: id,
        fingerprint: custody.fingerprint,
        locked_key: custody.locked_key,
        threshold: custody.threshold,
        own_share,
        shares: case
            .approvals
            .into_iter()
            .map(|a| ReleasedShare {
                officer: a.officer,
                share: a.share,
            })
            .collect(),
    })
}

/// Part `part` of message `message_id` of released case `id`, for its requester; the read is
/// logged before the ciphertext is returned.
pub async fn open_message(
    ctx: &Context,
    officer: &Account,
    id: i64,
    message_id: &str,
    part: u32,
    now: SystemTime,
) -> Result<PartData, ServiceError> {
    let case = own_case(ctx, officer, id).await?;
    if case.state != "released" {
        return Err(ServiceError::CaseClosed { state: case.state });
    }
    if !case.message_ids.iter().any(|m| m == message_id) {
        return Err(ServiceError::NotInCase);
    }
    let data = ctx
        .store
        .part(message_id, part)
        .await?
        .ok_or(ServiceError::UnknownPart)?;
    // Part 0 with the session-key packets a user's client added ("Waiting copies").
    let data = super::compliance::archived_part(ctx, message_id, part, data).await?;
    ctx.store
        .log_message_opened(id, &officer.address, message_id, part, unix(now))
        .await?;
    Ok(data)
}

/// Messages by envelope data, for an officer (the search is logged).
pub async fn archive(
    ctx: &Context,
    officer: &Account,
    search: &ArchiveSearch,
    now: SystemTime,
) -> Result<Vec<ArchiveItem>, ServiceError> {
    require_officer(&*ctx.store, officer).await?;
    let address = |a: &Option<String>| -> Result<Option<String>, ServiceError> {
        a.as_deref()
            .filter(|a| !a.is_empty())
            .map(|a| {
                crate::normalize_address(a).ok_or_else(|| ServiceError::InvalidAddress(a.into()))
            })
            .transpose()
    };
    let query = ArchiveQuery {
        sender: address(&search.sender)?,
        recipient: address(&search.recipient)?,
        from: search.from,
        to: search.to,
        pending: search.pending,
        limit: ARCHIVE_LIMIT,
    };
    ctx.store
        .log(
            vec![
                crate::storage::LogEvent::new(
                    "compliance.archive_searched",
                    &officer.address,
                    "archive",
                )
                .with(serde_json::json!({
                    "sender": query.sender, "recipient": query.recipient,
                    "from": query.from, "to": query.to, "pending": query.pending,
                })),
            ],
            unix(now),
        )
        .await?;
    Ok(ctx
        .store
        .archive(query)
        .await?
        .into_iter()
        .map(|r| ArchiveItem {
            message_id: r.message_id,
            sender: r.sender,
            recipients: r.recipients,
            size: r.size,
            accepted_at: r.accepted_at,
            pending: r.pending,
        })
        .collect())
}

/// How many stored copies wait for their compliance session-key packet, for an officer.
pub async fn archive_pending(ctx: &Context, officer: &Account) -> Result<u64, ServiceError> {
    require_officer(&*ctx.store, officer).await?;
    Ok(ctx.store.compliance_pending_count().await?)
}

/// The access report of case `id`, for any officer: the case, every log entry of it with its
/// hash, and per message who read it when.
pub async fn report(
    ctx: &Context,
    officer: &Account,
    id: i64,
    now: SystemTime,
) -> Result<CaseReport, ServiceError> {
    require_officer(&*ctx.store, officer).await?;
    let case = ctx.store.case(id).await?.ok_or(ServiceError::UnknownCase)?;
    let threshold = ctx
        .store
        .current_custody()
        .await?
        .filter(|c| c.id == case.custody_id)
        .map_or(0, |c| c.threshold);
    let entries: Vec<ReportEntry> = ctx
        .store
        .case_log(id)
        .await?
        .into_iter()
        .map(|e| ReportEntry {
            seq: e.seq,
            at: e.at,
            kind: e.kind,
            actor: e.actor,
            subject: e.subject,
            detail: e.detail,
            hash: hex::encode(e.hash),
        })
        .collect();
    let messages = case
        .message_ids
        .iter()
        .map(|m| MessageAccess {
            message_id: m.clone(),
            opened: entries
                .iter()
                .filter(|e| e.kind == "compliance.message_opened" && &e.subject == m)
                .map(|e| OpenedBy {
                    officer: e.actor.clone(),
                    at: e.at,
                    part: serde_json::from_str::<serde_json::Value>(&e.detail)
                        .ok()
                        .and_then(|d| d["part"].as_u64())
                        .unwrap_or(0) as u32,
                })
                .collect(),
        })
        .collect();
    Ok(CaseReport {
        case: case_view(case, threshold),
        entries,
        messages,
        made_at: unix(now),
    })
}
