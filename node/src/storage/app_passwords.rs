//! App passwords for the submission gateway (docs/mail.md, "Submission gateway"): one per
//! device, kept as a verifier only, and [`AppPasswordStore`]. The rules (who may hold how many,
//! what a label is, how a secret becomes its verifier, throttling) are
//! `service::app_passwords`'; this keeps rows.
//!
//! The same contract as every store: a write that returns `Ok` is durable with its log entry.
//! No method takes or returns a secret: only its verifier.

use async_trait::async_trait;

use super::error::{Result, Timestamp};

/// A live (not revoked) app password as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppPasswordRow {
    pub id: i64,
    pub account_id: i64,
    pub label: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

#[async_trait]
pub trait AppPasswordStore: Send + Sync + 'static {
    /// Stores a new app password of `account_id` with its `verifier` and logs
    /// `app_password.created` (actor `actor`; its ID and label, never a secret), unless the
    /// account already holds `max` live ones: then `None` and nothing changes.
    async fn create_app_password(
        &self,
        account_id: i64,
        actor: &str,
        label: &str,
        verifier: [u8; 32],
        max: u32,
        now: Timestamp,
    ) -> Result<Option<i64>>;
    /// The live app passwords of `account_id`, oldest first.
    async fn app_passwords_of(&self, account_id: i64) -> Result<Vec<AppPasswordRow>>;
    /// Revokes the live app password `id` of `account_id` and logs `app_password.revoked`;
    /// `false` (nothing changed) if that account holds no such live one.
    async fn revoke_app_password(
        &self,
        account_id: i64,
        id: i64,
        actor: &str,
        now: Timestamp,
    ) -> Result<bool>;
    /// The live app password with this verifier, if any.
    async fn app_password_by_verifier(&self, verifier: [u8; 32]) -> Result<Option<AppPasswordRow>>;
    /// Records a successful use (not logged: it would log every mail sent).
    async fn touch_app_password(&self, id: i64, now: Timestamp) -> Result<()>;
}
