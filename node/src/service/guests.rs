//! Guests (docs/pickup.md, "Guests"): an outside recipient who unlocked a pickup and made a key
//! of their own becomes a guest of the organisation. A guest logs in like a user, receives
//! messages from the organisation's users and replies to them; nothing else.
//!
//! The rules, once for every door:
//!
//! - **upgrade**: only under the session of an unlocked, live pickup; the certificate names the
//!   pickup's address and no other (`invalid_cert`), its secret is wrapped (`key_not_wrapped`);
//!   an address that already has an account is refused (`guest_exists`: log in instead). The
//!   CA does not certify a guest's key: it vouches for addresses of its own domain only, and
//!   users authenticate a guest by their own certification ("first contact by Message Unlock
//!   Code").
//! - **writing**: a guest's every recipient is an active user of this organisation
//!   (`guest_recipient_not_allowed`), checked by [`check_recipients`] at the envelope request
//!   and again in `accept`.
//! - **looking up**: a guest sees the keys of the organisation's users only
//!   (`guest_not_allowed`), and certifies no one.
//! - **administration**: list, disable, enable, remove (for good: mailbox and account; the public
//!   key stays known, as every key the node has seen).

use super::{Actor, Context, ServiceError};
use crate::proto::{EnrollResponse, GuestUpgradeRequest};
use crate::storage::pickup::{GuestOutcome, PickupRecord};
use crate::storage::{Account, AccountKind, AccountState, Enrolment, MetaStore, Timestamp};

/// Is this account a guest?
pub fn is_guest(account: &Account) -> bool {
    account.kind == AccountKind::Guest
}

/// The pickup's recipient (holding the pickup session) becomes a guest with their own key.
pub async fn upgrade(
    ctx: &Context,
    pickup: &PickupRecord,
    req: &GuestUpgradeRequest,
    now: std::time::SystemTime,
) -> Result<EnrollResponse, ServiceError> {
    let address = pickup.address.clone();
    if ctx.store.account_by_address(&address).await?.is_some() {
        return Err(ServiceError::GuestExists { address });
    }
    let login = super::credentials::new_login(&req.kdf_params, &req.kdf_salt, &req.login_verifier)?;
    let cert = crate::crypto::cert_from_armored(&req.cert)
        .map_err(|e| ServiceError::NotACertificate(e.to_string()))?;
    crate::crypto::check_user_cert(&cert, &address, &ctx.policy, now)
        .map_err(|e| ServiceError::UnusableCert(e.to_string()))?;
    super::credentials::check_wrapped_key(&req.wrapped_key, &cert)?;
    let record = crate::certs::record(&cert).map_err(ServiceError::internal)?;
    let (fingerprint, armored) = (record.fingerprint.clone(), record.armored.clone());
    let enrolment = Enrolment {
        cert: record,
        wrapped_key: req.wrapped_key.clone(),
        kdf_salt: login.kdf_salt,
        kdf_params: login.kdf_params,
        login_hash: super::credentials::hash_verifier(ctx, login.verifier).await?,
    };
    match ctx
        .store
        .pickup_upgrade(pickup.id, enrolment, super::unix(now))
        .await?
    {
        GuestOutcome::Created { .. } => {}
        GuestOutcome::Exists => return Err(ServiceError::GuestExists { address }),
        GuestOutcome::NotOpen => return Err(ServiceError::PickupSessionInvalid),
    }
    tracing::info!(%address, %fingerprint, "guest created");
    Ok(EnrollResponse {
        address,
        fingerprint,
        cert: armored,
    })
}

/// A guest sender's recipients (address, local account if any): every one must be an active
/// user of this organisation, never an outside address, a peer's user or another guest.
pub async fn check_recipients<'a>(
    ctx: &Context,
    sender: &Account,
    recipients: impl IntoIterator<Item = &'a str>,
) -> Result<(), ServiceError> {
    if !is_guest(sender) {
        return Ok(());
    }
    let mut refused = Vec::new();
    for address in recipients {
        if !is_user_address(ctx, address).await? {
            refused.push(address.to_owned());
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::GuestRecipientNotAllowed { addresses: refused })
    }
}

/// An active, enrolled user (not a guest) of this node.
async fn is_user_address(ctx: &Context, address: &str) -> Result<bool, ServiceError> {
    Ok(ctx
        .store
        .account_by_address(address)
        .await?
        .is_some_and(|a| a.kind == AccountKind::User && super::accounts::deliverable(&a)))
}

/// Whether `viewer` may see the keys and trust paths of `address`: users may see anyone's; a
/// guest the organisation's users' and their own.
pub async fn may_look_up(
    ctx: &Context,
    viewer: &Account,
    address: &str,
) -> Result<(), ServiceError> {
    if !is_guest(viewer) || viewer.address == address || is_user_address(ctx, address).await? {
        return Ok(());
    }
    Err(ServiceError::GuestNotAllowed {
        what: "look up keys other than the organisation's users'",
    })
}

/// Refuses an operation a guest's account does not give (`what` says which, in words).
pub fn not_for_guests(account: &Account, what: &'static str) -> Result<(), ServiceError> {
    if is_guest(account) {
        return Err(ServiceError::GuestNotAllowed { what });
    }
    Ok(())
}

/// Every guest, by address.
pub async fn list(store: &dyn MetaStore) -> Result<Vec<Account>, ServiceError> {
    Ok(store
        .accounts()
        .await?
        .into_iter()
        .filter(is_guest)
        .collect())
}

async fn guest(store: &dyn MetaStore, address: &str) -> Result<Account, ServiceError> {
    let address = crate::normalize_address(address)
        .ok_or_else(|| ServiceError::InvalidAddress(address.to_owned()))?;
    match store.account_by_address(&address).await? {
        Some(a) if is_guest(&a) => Ok(a),
        _ => Err(ServiceError::UnknownGuest { address }),
    }
}

/// Disables (ending its sessions) or re-enables a guest. A disabled guest cannot log in and
/// receives nothing: its address is reached by pickup again, as before the upgrade.
pub async fn set_state(
    store: &dyn MetaStore,
    actor: &Actor,
    address: &str,
    enabled: bool,
    now: Timestamp,
) -> Result<AccountState, ServiceError> {
    let g = guest(store, address).await?;
    super::accounts::set_state(store, actor, &g.address, enabled, now).await
}

/// Removes a guest for good: its sessions, mailbox and account. Returns the address.
pub async fn remove(
    ctx: &Context,
    actor: &Actor,
    address: &str,
    now: Timestamp,
) -> Result<String, ServiceError> {
    remove_in(ctx.store.as_ref(), ctx.blobs.as_ref(), actor, address, now).await
}

/// [`remove`] with the stores alone (the admin CLI has no running node's context).
pub async fn remove_in(
    store: &dyn MetaStore,
    blobs: &dyn crate::storage::BlobStore,
    actor: &Actor,
    address: &str,
    now: Timestamp,
) -> Result<String, ServiceError> {
    let g = guest(store, address).await?;
    let orphans = store
        .remove_guest(&g.address, actor.log_name(), now)
        .await?;
    super::pickup::remove_blobs(blobs, orphans).await;
    tracing::info!(address = %g.address, by = actor.log_name(), "guest removed");
    Ok(g.address)
}
