//! The compliance key's custody under dual control (docs/compliance.md, "Dual control"):
//! officers, the locked key with its wrapped shares, and access cases, and [`CustodyStore`].
//! The rules (who may do what, what is well-formed) are `service::custody`'s; this keeps rows
//! and writes each step's log entry in the same commit as the step.
//!
//! Nothing stored here is usable by the node: the compliance key is locked under a secret the
//! node never sees, and every share is encrypted to an officer's key or to a request key.

use async_trait::async_trait;

use super::error::{Result, Timestamp};

/// The key under custody as set up by an admin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustodyRow {
    pub id: i64,
    pub fingerprint: String,
    /// The compliance key's public certificate, armored.
    pub cert: String,
    /// Its TSK with every secret key encrypted under the lock (armored).
    pub locked_key: String,
    /// M: shares needed to unlock.
    pub threshold: u32,
    pub created_at: Timestamp,
    pub created_by: String,
}

/// One officer's share of a custody, encrypted to that officer's key (armored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustodyShareRow {
    pub account_id: i64,
    pub address: String,
    pub wrapped_share: String,
}

/// A new custody: the admin's upload, its officers already resolved to accounts.
#[derive(Clone, Debug)]
pub struct NewCustody {
    pub fingerprint: String,
    pub cert: String,
    pub locked_key: String,
    pub threshold: u32,
    /// `(account ID, address, wrapped share)` per officer.
    pub shares: Vec<(i64, String, String)>,
}

/// An access case and its approvals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseRow {
    pub id: i64,
    pub custody_id: i64,
    pub requester_id: i64,
    pub requester: String,
    pub case_ref: String,
    pub message_ids: Vec<String>,
    /// The public certificate the requester's browser made for this case (armored).
    pub request_key: String,
    /// `pending`, `released`, `refused`, `superseded` (the custody was set up anew).
    pub state: String,
    pub created_at: Timestamp,
    pub approvals: Vec<ApprovalRow>,
    /// Who refused it, if it was refused.
    pub refused_by: Option<String>,
    /// The legal hold on it, if one is placed.
    pub hold: Option<HoldRow>,
}

/// A legal hold on a case (docs/compliance.md, "Retention and legal holds").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldRow {
    pub case_id: i64,
    pub reason: String,
    pub placed_by: String,
    pub placed_at: Timestamp,
}

/// What [`CustodyStore::place_hold`] and [`CustodyStore::lift_hold`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldStep {
    Done,
    /// No such case.
    Unknown,
    /// Placing: the case is held already; lifting: it is not held.
    Unchanged,
}

/// An officer's approval: their share, encrypted to the case's request key (armored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalRow {
    pub officer_id: i64,
    pub officer: String,
    pub share: String,
    pub approved_at: Timestamp,
}

/// The outcome of a step on a case that the store checks inside its commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaseStep {
    Done,
    /// No such case.
    Unknown,
    /// The case is not pending (its state).
    Closed(String),
    /// This officer has approved it already.
    Duplicate,
    /// Too few approvals to release (had, needed).
    TooFew(u32, u32),
}

/// A message as the envelope-data search shows it: no content, no subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveRow {
    pub message_id: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub size: i64,
    pub accepted_at: Timestamp,
    /// Waiting for its compliance session-key packet.
    pub pending: bool,
}

/// What an officer searches the archive by; every field is optional.
#[derive(Clone, Debug, Default)]
pub struct ArchiveQuery {
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// Only waiting copies (`true`) or only the others (`false`).
    pub pending: Option<bool>,
    pub limit: u32,
}

/// A log entry of a case, as the access report shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseLogRow {
    pub seq: i64,
    pub at: Timestamp,
    pub kind: String,
    pub actor: String,
    pub subject: String,
    /// JSON.
    pub detail: String,
    /// The entry's hash in the log's chain.
    pub hash: Vec<u8>,
}

#[async_trait]
pub trait CustodyStore: Send + Sync + 'static {
    /// Makes `account_id` an officer (or not) and logs `compliance.officer_added` /
    /// `compliance.officer_removed`; `false` if nothing changed.
    async fn set_officer(
        &self,
        account_id: i64,
        address: &str,
        officer: bool,
        actor: &str,
        now: Timestamp,
    ) -> Result<bool>;
    /// The officers' account IDs and addresses, in the order they were added.
    async fn officers(&self) -> Result<Vec<(i64, String, Timestamp)>>;
    async fn is_officer(&self, account_id: i64) -> Result<bool>;
    /// Stores a new custody, retires the previous one (its pending cases become `superseded`)
    /// and logs `compliance.custody_set`; returns its ID.
    async fn put_custody(&self, custody: NewCustody, actor: &str, now: Timestamp) -> Result<i64>;
    async fn current_custody(&self) -> Result<Option<CustodyRow>>;
    async fn custody_shares(&self, custody_id: i64) -> Result<Vec<CustodyShareRow>>;
    /// Opens a case and logs `compliance.case_requested`; returns its ID.
    #[allow(clippy::too_many_arguments)]
    async fn create_case(
        &self,
        custody_id: i64,
        requester_id: i64,
        requester: &str,
        case_ref: &str,
        message_ids: &[String],
        request_key: &str,
        request_key_fingerprint: &str,
        now: Timestamp,
    ) -> Result<i64>;
    /// Cases, newest first: all of them, or those in `state`.
    async fn cases(&self, state: Option<&str>) -> Result<Vec<CaseRow>>;
    async fn case(&self, id: i64) -> Result<Option<CaseRow>>;
    /// Records `officer`'s approval of pending case `id` with their re-wrapped share and logs
    /// `compliance.case_approved`.
    async fn approve_case(
        &self,
        id: i64,
        officer_id: i64,
        officer: &str,
        share: &str,
        now: Timestamp,
    ) -> Result<CaseStep>;
    /// Closes pending case `id` as refused by `officer` and logs `compliance.case_refused`.
    async fn refuse_case(
        &self,
        id: i64,
        officer_id: i64,
        officer: &str,
        now: Timestamp,
    ) -> Result<CaseStep>;
    /// If pending case `id` has at least `needed` approvals: marks it released and logs
    /// `compliance.shares_released`, in one commit, before any share is answered.
    async fn release_case(
        &self,
        id: i64,
        requester: &str,
        needed: u32,
        now: Timestamp,
    ) -> Result<CaseStep>;
    /// Logs `compliance.message_opened` (before the ciphertext is served).
    async fn log_message_opened(
        &self,
        case_id: i64,
        officer: &str,
        message_id: &str,
        part: u32,
        now: Timestamp,
    ) -> Result<()>;
    /// Messages by envelope data, newest first, at most `query.limit`.
    async fn archive(&self, query: ArchiveQuery) -> Result<Vec<ArchiveRow>>;
    /// Which of `ids` are stored messages.
    async fn messages_exist(&self, ids: Vec<String>) -> Result<Vec<String>>;
    /// The log entries of case `id` (its steps and every read under it), in log order.
    async fn case_log(&self, id: i64) -> Result<Vec<CaseLogRow>>;
    /// When message `message_id` was opened for compliance, and under which case.
    async fn message_opens(&self, message_id: &str) -> Result<Vec<(Timestamp, i64)>>;
    /// Places a legal hold on case `id` and logs `compliance.hold_placed` (with the reason).
    async fn place_hold(
        &self,
        id: i64,
        officer: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<HoldStep>;
    /// Lifts the legal hold on case `id` and logs `compliance.hold_lifted`.
    async fn lift_hold(&self, id: i64, officer: &str, now: Timestamp) -> Result<HoldStep>;
    /// The IDs of the cases under a legal hold.
    async fn held_cases(&self) -> Result<Vec<i64>>;
    /// A user's view of an opening of `message_id` under held case `id` was withheld: logs
    /// `compliance.notice_delayed` if it is the first time under this hold; `true` if logged.
    async fn log_notice_delayed(&self, id: i64, message_id: &str, now: Timestamp) -> Result<bool>;
    /// Deletes (rows and blobs) up to `limit` retained compliance copies whose `retain_until`
    /// is at or before `now`, with no mailbox entry, nothing queued and no case under a hold
    /// naming them, each logged `compliance.expired` (message ID only). Returns the message IDs
    /// and the blob files to remove.
    async fn expire_compliance_copies(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<(Vec<String>, Vec<[u8; 32]>)>;
}
