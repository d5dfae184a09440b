//! Accounts, invites, sessions and second factors: their types and [`AccountStore`].
//!
//! Holds the trait and what it speaks in, not how any backend keeps it; it must not depend on
//! mail, the log or federation.

use async_trait::async_trait;
use serde::Serialize;

use super::certs::CertRecord;
use super::error::{Result, StorageError, Timestamp};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountState {
    /// Authorised by an administrator; waiting for the user to enrol with the invite.
    Invited,
    Active,
    Disabled,
}

impl AccountState {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountState::Invited => "invited",
            AccountState::Active => "active",
            AccountState::Disabled => "disabled",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "invited" => AccountState::Invited,
            "active" => AccountState::Active,
            "disabled" => AccountState::Disabled,
            other => return Err(StorageError::Corrupt(format!("account state {other:?}"))),
        })
    }
}

/// What an account is: a user of the organisation, or a guest (docs/pickup.md, "Guests").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountKind {
    /// An address of this node's domain, enrolled with an administrator's invite.
    User,
    /// An outside address that created its key from an unlocked pickup: it receives messages
    /// from the organisation's users and replies to them, nothing else.
    Guest,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::User => "user",
            AccountKind::Guest => "guest",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "user" => AccountKind::User,
            "guest" => AccountKind::Guest,
            other => return Err(StorageError::Corrupt(format!("account kind {other:?}"))),
        })
    }
}

#[derive(Clone, Debug)]
pub struct Account {
    pub id: i64,
    pub address: String,
    pub kind: AccountKind,
    pub name: Option<String>,
    pub is_admin: bool,
    pub state: AccountState,
    pub created_at: Timestamp,
    /// Armored public certificate, with the organisation CA's certification.
    pub cert: Option<String>,
    pub fingerprint: Option<String>,
    /// Armored secret key, encrypted in the client with the password-derived key.
    pub wrapped_key: Option<String>,
    pub kdf_salt: Option<Vec<u8>>,
    /// JSON of `crypto::KdfParams`, chosen by the client at enrolment.
    pub kdf_params: Option<String>,
    /// PHC string: the node's Argon2id hash of the login verifier.
    pub login_hash: Option<String>,
    pub totp_secret: Option<Vec<u8>>,
    pub totp_enabled: bool,
}

/// What a user's client registers at enrolment.
#[derive(Clone, Debug)]
pub struct Enrolment {
    pub cert: CertRecord,
    pub wrapped_key: String,
    pub kdf_salt: Vec<u8>,
    pub kdf_params: String,
    pub login_hash: String,
}

#[derive(Clone, Debug)]
pub struct Session {
    pub account_id: i64,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Accounts: invites and enrolment, state, logins and sessions, TOTP.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Authorises an account and stores its (hashed) invite, logged as done by `actor`.
    /// Conflict if the address exists.
    #[allow(clippy::too_many_arguments)]
    async fn create_account(
        &self,
        address: &str,
        name: Option<&str>,
        is_admin: bool,
        invite_hash: [u8; 32],
        invite_expires: Timestamp,
        actor: &str,
        now: Timestamp,
    ) -> Result<i64>;
    /// A fresh invite for an account that has not enrolled yet (the old one stops working),
    /// logged as done by `actor`.
    async fn reissue_invite(
        &self,
        address: &str,
        invite_hash: [u8; 32],
        invite_expires: Timestamp,
        actor: &str,
        now: Timestamp,
    ) -> Result<()>;
    async fn account_by_address(&self, address: &str) -> Result<Option<Account>>;
    async fn account_by_id(&self, id: i64) -> Result<Option<Account>>;
    async fn accounts(&self) -> Result<Vec<Account>>;
    async fn set_account_state(
        &self,
        address: &str,
        state: AccountState,
        actor: &str,
        now: Timestamp,
    ) -> Result<()>;
    /// Consumes the invite (unused, unexpired, for `address`) and activates the account with
    /// the enrolment, in one commit. `InviteInvalid` changes nothing.
    async fn enroll(
        &self,
        invite_hash: [u8; 32],
        address: &str,
        enrolment: Enrolment,
        now: Timestamp,
    ) -> Result<()>;
    /// Writes a failed password check of the account to the transaction log, with `detail`
    /// (failures in a row of its source, which source, the delay imposed). Throttling itself
    /// is kept in memory by the API, for any address (`service/throttle.rs`).
    async fn login_failed(
        &self,
        account_id: i64,
        detail: serde_json::Value,
        now: Timestamp,
    ) -> Result<()>;
    /// Opens a session.
    async fn login_succeeded(
        &self,
        account_id: i64,
        token_hash: [u8; 32],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()>;
    async fn session(&self, token_hash: [u8; 32], now: Timestamp) -> Result<Option<Session>>;
    /// The account of a live session, in one look-up (every authenticated request needs it).
    async fn session_account(
        &self,
        token_hash: [u8; 32],
        now: Timestamp,
    ) -> Result<Option<Account>>;
    async fn end_session(&self, token_hash: [u8; 32], now: Timestamp) -> Result<()>;
    /// Records that the TOTP code of time step `step` was used; false if that step (or a later
    /// one) was already used, so that a code is good only once.
    async fn use_totp_step(&self, account_id: i64, step: i64) -> Result<bool>;
    async fn set_totp(&self, account_id: i64, secret: Option<Vec<u8>>, enabled: bool)
    -> Result<()>;
    /// Removes the guest `address` for good, in one commit: its sessions, uploads, notices,
    /// mailbox (messages nobody else holds are dropped) and account, logged as `guest.removed` by
    /// `actor`. Its public certificate stays known (the trust view only grows), but no address
    /// resolves to it any more. Returns the blob files no message refers to any more.
    /// `NotFound` if there is no guest of that address.
    async fn remove_guest(
        &self,
        address: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<Vec<[u8; 32]>>;
}
