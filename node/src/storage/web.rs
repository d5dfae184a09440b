//! What the web app's account settings and admin console need from storage, beyond
//! [`super::MetaStore`]: changing the login (re-wrapped key, new salt and verifier hash),
//! listing and ending one's own sessions, pending invites, and counts for the node status page.
//!
//! A separate trait (a supertrait of `MetaStore`) so these additions stay in their own files.
//! The same contract holds: a write that returns `Ok` is durable with its log entries.

use async_trait::async_trait;

use super::error::{Result, Timestamp};

/// A new login for an account: everything derived from a new password, made by the client.
#[derive(Clone, Debug)]
pub struct NewLogin {
    pub wrapped_key: String,
    pub kdf_salt: Vec<u8>,
    /// JSON of `crypto::KdfParams`.
    pub kdf_params: String,
    /// PHC string: the node's Argon2id hash of the new login verifier.
    pub login_hash: String,
}

/// One live session of an account.
#[derive(Clone, Debug)]
pub struct SessionRow {
    pub token_hash: [u8; 32],
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Counts for the admin console's node status.
#[derive(Clone, Debug, Default)]
pub struct NodeCounts {
    pub messages: u64,
    pub stored_bytes: u64,
    pub log_entries: u64,
    pub last_checkpoint_at: Option<Timestamp>,
    pub live_sessions: u64,
}

#[async_trait]
pub trait WebStore: Send + Sync + 'static {
    /// Replaces the account's wrapped key, KDF salt, parameters and verifier hash, and ends
    /// every other session of the account (they were opened with the old password).
    async fn change_login(
        &self,
        account_id: i64,
        login: NewLogin,
        keep_session: [u8; 32],
        now: Timestamp,
    ) -> Result<()>;
    /// The account's unexpired sessions, newest first.
    async fn sessions_of(&self, account_id: i64, now: Timestamp) -> Result<Vec<SessionRow>>;
    /// Ends one session of the account; `false` if it has no such session.
    async fn end_session_of(
        &self,
        account_id: i64,
        token_hash: [u8; 32],
        now: Timestamp,
    ) -> Result<bool>;
    /// Expiry of each account's pending invite, by account ID.
    async fn invite_expiries(&self) -> Result<Vec<(i64, Timestamp)>>;
    async fn node_counts(&self, now: Timestamp) -> Result<NodeCounts>;
}
