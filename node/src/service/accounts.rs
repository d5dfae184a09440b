//! Accounts, as administrators manage them: invite, enable and disable, and the CA's
//! certification of an enrolled user (revoked for a leaver).
//!
//! One rule per operation, whichever door asks (the admin console, `sealpost admin`, the demo,
//! the test kit):
//!
//! - **invite**: a valid address of this node's domain and an optional name of at most
//!   [`MAX_NAME`] printable characters. An unknown address gets a new account; an invited one
//!   gets a new invite (the old code stops working; name and role stay); an enrolled one
//!   (active or disabled) is refused: an invite is only for a new account.
//! - **set state**: enrolled accounts only (an invited account has nothing to enable: it
//!   enrols), and never the acting administrator's own account.
//! - **revoke certification**: enrolled accounts only.
//!
//! The transaction log names the actor ([`Actor::log_name`]).

use sequoia_openpgp::Cert;

use super::{Actor, ServiceError};
use crate::config::Config;
use crate::storage::{Account, AccountState, LogEvent, MetaStore, Timestamp};

/// Does this local account receive messages? Enrolled (it has a key) and active.
pub fn deliverable(account: &Account) -> bool {
    account.state == AccountState::Active && account.cert.is_some()
}

/// The longest display name an account may have, in bytes.
pub const MAX_NAME: usize = 200;

/// What an invite produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// The address, normalised.
    pub address: String,
    /// The one-time code to give to the person (only its hash is stored).
    pub code: String,
    pub expires_at: Timestamp,
    /// A new account (true) or a new invite for an account not yet enrolled (false).
    pub created: bool,
}

/// A new invite code: 100 bits in Crockford's base 32 (no I, L, O, U), grouped by four for
/// reading aloud.
pub fn new_invite_code() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let bytes: [u8; 20] = rand::random();
    let chars: Vec<u8> = bytes.iter().map(|b| ALPHABET[(*b % 32) as usize]).collect();
    chars
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect::<Vec<_>>()
        .join("-")
}

/// What the node stores of an invite code. Codes are typed by people: case, spaces and
/// dashes do not count.
pub fn invite_hash(code: &str) -> [u8; 32] {
    let canonical: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    token_hash(&canonical)
}

/// What the node stores of a bearer secret (a session token, an invite code): its SHA-256.
/// The secrets are 100 to 256 random bits, so the hash is as good as the secret for look-up,
/// and a stolen database yields none of them.
pub fn token_hash(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// A valid address of this node's domain, normalised.
pub fn local_address(config: &Config, address: &str) -> Result<String, ServiceError> {
    let normalised = crate::normalize_address(address)
        .ok_or_else(|| ServiceError::InvalidAddress(address.to_owned()))?;
    if !normalised.ends_with(&format!("@{}", config.domain)) {
        return Err(ServiceError::WrongDomain {
            domain: config.domain.clone(),
        });
    }
    Ok(normalised)
}

/// An account by address, or [`ServiceError::UnknownUser`].
async fn existing(store: &dyn MetaStore, address: &str) -> Result<Account, ServiceError> {
    store
        .account_by_address(address)
        .await?
        .ok_or_else(|| ServiceError::UnknownUser {
            address: address.to_owned(),
        })
}

/// Authorises `address` (a new account, with `name` and the admin role if `is_admin`), or
/// renews the invite of an account that has not enrolled yet.
pub async fn invite(
    store: &dyn MetaStore,
    config: &Config,
    actor: &Actor,
    address: &str,
    name: Option<&str>,
    is_admin: bool,
    now: Timestamp,
) -> Result<Invite, ServiceError> {
    let address = local_address(config, address)?;
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    if name.is_some_and(|n| n.len() > MAX_NAME || n.chars().any(char::is_control)) {
        return Err(ServiceError::InvalidName { max: MAX_NAME });
    }
    let code = new_invite_code();
    let hash = invite_hash(&code);
    let expires_at = now + config.accounts.invite_ttl_secs as i64;
    let created = match store.account_by_address(&address).await? {
        None => {
            store
                .create_account(
                    &address,
                    name,
                    is_admin,
                    hash,
                    expires_at,
                    actor.log_name(),
                    now,
                )
                .await?;
            true
        }
        Some(a) if a.state == AccountState::Invited => {
            store
                .reissue_invite(&address, hash, expires_at, actor.log_name(), now)
                .await?;
            false
        }
        Some(_) => return Err(ServiceError::AlreadyEnrolled { address }),
    };
    tracing::info!(%address, by = actor.log_name(), created, "invite issued");
    Ok(Invite {
        address,
        code,
        expires_at,
        created,
    })
}

/// Enables or disables an enrolled account (disabling ends its sessions).
pub async fn set_state(
    store: &dyn MetaStore,
    actor: &Actor,
    address: &str,
    enabled: bool,
    now: Timestamp,
) -> Result<AccountState, ServiceError> {
    let address = crate::normalize_address(address)
        .ok_or_else(|| ServiceError::InvalidAddress(address.to_owned()))?;
    if actor.address() == Some(address.as_str()) {
        return Err(ServiceError::OwnAccount);
    }
    let account = existing(store, &address).await?;
    if account.state == AccountState::Invited {
        return Err(ServiceError::NotEnrolled { address });
    }
    let state = if enabled {
        AccountState::Active
    } else {
        AccountState::Disabled
    };
    store
        .set_account_state(&address, state, actor.log_name(), now)
        .await?;
    Ok(state)
}

/// The CA `ca` (with its secret key) revokes its certification of `address`'s key: a leaver.
/// Returns the normalised address.
pub async fn revoke_certification(
    store: &dyn MetaStore,
    ca: &Cert,
    actor: &Actor,
    address: &str,
    now: std::time::SystemTime,
) -> Result<String, ServiceError> {
    let address = crate::normalize_address(address)
        .ok_or_else(|| ServiceError::InvalidAddress(address.to_owned()))?;
    let account = existing(store, &address).await?;
    let armored = account.cert.ok_or_else(|| ServiceError::NotEnrolled {
        address: address.clone(),
    })?;
    let cert = crate::crypto::cert_from_armored(&armored).map_err(ServiceError::internal)?;
    let when = crate::certs::after_previous_signatures(&ca.fingerprint(), &cert, &address, now);
    let revoked =
        sealpost_trust::retract(ca, &cert, &address, when).map_err(ServiceError::internal)?;
    let record = crate::certs::record(&revoked).map_err(ServiceError::internal)?;
    let event = LogEvent::new("ca.certification_revoked", actor.log_name(), &address)
        .with(serde_json::json!({ "fingerprint": record.fingerprint }));
    let at = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as Timestamp);
    store.put_cert(record, "local", Some(event), at).await?;
    Ok(address)
}
