//! The compliance key's custody under dual control on the wire (docs/compliance.md, "Dual
//! control"): the admin's setup, officers, access cases and their release, the envelope-data
//! search. Every key and share here is armored OpenPGP; no field carries a usable secret.

use serde::{Deserialize, Serialize};

/// One officer's share of the lock's secret, encrypted (OpenPGP) to that officer's key.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WrappedShare {
    /// The officer's address.
    pub address: String,
    /// An armored OpenPGP message to the officer's key holding the share (an x byte, then one
    /// byte per byte of the secret).
    pub share: String,
}

/// `POST /admin/compliance/custody`: what the admin's browser made.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustodySetupRequest {
    /// The compliance key's public certificate, armored.
    pub cert: String,
    /// The same key with every secret key encrypted under the lock (armored TSK).
    pub locked_key: String,
    /// M: how many shares unlock it (2 to the number of shares).
    pub threshold: u32,
    /// One per officer (N).
    pub shares: Vec<WrappedShare>,
}

/// The key under custody, as officers and admins see it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CustodyView {
    pub fingerprint: String,
    /// The public certificate, armored.
    pub cert: String,
    pub threshold: u32,
    /// The officers holding a share.
    pub officers: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub created_by: String,
    /// The caller's own wrapped share, if they hold one (to approve a case with).
    pub my_share: Option<String>,
}

/// A compliance officer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct OfficerView {
    pub address: String,
    /// Unix seconds.
    pub added_at: i64,
}

/// `POST /compliance/cases`: a request to open messages.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCaseRequest {
    /// The case reference (court order, supervisory request): 1 to 128 printable characters.
    pub case_ref: String,
    /// The messages to open (1 to 100).
    pub message_ids: Vec<String>,
    /// A public OpenPGP certificate made in the requester's browser for this case only:
    /// approvers encrypt their shares to it.
    pub request_key: String,
}

/// An access case.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CaseView {
    pub id: i64,
    pub case_ref: String,
    pub requester: String,
    pub message_ids: Vec<String>,
    /// The request key (armored public certificate) approvers encrypt their shares to.
    pub request_key: String,
    /// `pending`, `released`, `refused` or `superseded`.
    pub state: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Officers who approved it.
    pub approved_by: Vec<String>,
    /// Approvals needed before release (M - 1).
    pub approvals_needed: u32,
    pub refused_by: Option<String>,
    /// The legal hold on the case, if one is placed: its messages do not expire, and their
    /// users' "opened for compliance" view leaves out openings under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<CaseHold>,
}

/// A legal hold on a case (docs/compliance.md, "Retention and legal holds").
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CaseHold {
    pub reason: String,
    pub placed_by: String,
    /// Unix seconds.
    pub placed_at: i64,
}

/// `POST /compliance/cases/{id}/hold`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    /// Why (a court order, a supervisor's request): 1 to 512 characters.
    pub reason: String,
}

/// `POST /compliance/cases/{id}/approve`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveCaseRequest {
    /// The approver's share, encrypted to the case's request key (armored OpenPGP message).
    pub share: String,
}

/// A share released to the requester: encrypted to the request key.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ReleasedShare {
    pub officer: String,
    pub share: String,
}

/// `GET /compliance/cases/{id}/release`: what the requester's browser needs to unlock the key.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CaseRelease {
    pub case_id: i64,
    pub fingerprint: String,
    /// The locked TSK.
    pub locked_key: String,
    pub threshold: u32,
    /// The requester's own share, encrypted to their account key.
    pub own_share: String,
    /// The approvers' shares, each encrypted to the request key.
    pub shares: Vec<ReleasedShare>,
}

/// `GET /compliance/archive` query: envelope data only.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ArchiveSearch {
    /// The sender's address.
    pub sender: Option<String>,
    /// One recipient's address.
    pub recipient: Option<String>,
    /// Accepted at or after (Unix seconds).
    pub from: Option<i64>,
    /// Accepted before (Unix seconds).
    pub to: Option<i64>,
    /// `true`: only copies still waiting for their compliance session-key packet (incoming
    /// OpenPGP mail encrypted to its user only, docs/compliance.md "Waiting copies");
    /// `false`: only the others.
    pub pending: Option<bool>,
}

/// A message as the envelope-data search shows it: no subject, no content.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ArchiveItem {
    pub message_id: String,
    pub sender: String,
    pub recipients: Vec<String>,
    /// Bytes of ciphertext.
    pub size: i64,
    /// Unix seconds.
    pub accepted_at: i64,
    /// Still waiting for the compliance session-key packet its recipient's client adds on
    /// first opening: the archive cannot open it yet.
    #[serde(default)]
    pub pending: bool,
}

/// `GET /compliance/archive/pending`: how many stored copies are still waiting for their
/// compliance session-key packet.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ArchivePending {
    pub pending: u64,
}

/// `GET /compliance/cases/{id}/messages/{mid}` query.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CasePartQuery {
    /// The part index (0, the default, is the sealed head).
    pub part: Option<u32>,
}

/// One log entry of a case in its access report: the entry as the transaction log holds it,
/// with its hash, so the report can be checked against the log and its signed checkpoints.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ReportEntry {
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// `compliance.case_requested`, `.case_approved`, `.case_refused`, `.shares_released`,
    /// `.message_opened`.
    pub kind: String,
    pub actor: String,
    pub subject: String,
    /// The entry's detail exactly as the log holds it (JSON text).
    pub detail: String,
    /// The entry's hash in the log's chain (hex).
    pub hash: String,
}

/// Who read one message of a case, when.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct MessageAccess {
    pub message_id: String,
    /// `(officer, Unix seconds)` of each read, in order.
    pub opened: Vec<OpenedBy>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct OpenedBy {
    pub officer: String,
    pub at: i64,
    pub part: u32,
}

/// `GET /compliance/cases/{id}/report`: the case's access report, exportable as it is.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CaseReport {
    pub case: CaseView,
    /// Every log entry of the case, in log order.
    pub entries: Vec<ReportEntry>,
    /// Per message of the case, its reads.
    pub messages: Vec<MessageAccess>,
    /// Unix seconds the report was made.
    pub made_at: i64,
}

/// `GET /messages/{id}/compliance-opens`: when a message of the caller's was opened for
/// compliance (not by whom, nor under which case).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ComplianceOpen {
    /// Unix seconds.
    pub at: i64,
}
