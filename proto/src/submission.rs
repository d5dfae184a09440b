//! The submission gateway on the wire (docs/mail.md, "Submission gateway"): where a mail
//! program sends, and the app passwords a user makes for it in the web app.

use serde::{Deserialize, Serialize};

/// What a user types into a mail program's outgoing server settings (in [`crate::OrgInfo`],
/// present only when the node's submission gateway is enabled). The user name is the user's
/// own address; the password an app password.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SubmissionInfo {
    /// The server's host name.
    pub host: String,
    pub port: u16,
    /// TLS from the first byte ("SSL/TLS", usually port 465); otherwise STARTTLS (587).
    pub implicit_tls: bool,
}

/// A new app password's device name.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAppPasswordRequest {
    /// 1 to 64 characters, no control characters ("Laptop", "Phone").
    pub label: String,
}

/// An app password as listed: never its secret.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AppPasswordView {
    pub id: i64,
    pub label: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last successful use (to the minute), if it was ever used.
    pub last_used_at: Option<i64>,
}

/// A new app password, with its secret: shown this once, never again.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedAppPassword {
    pub id: i64,
    pub label: String,
    pub created_at: i64,
    /// `abcdef-ghijkl-mnopqr-stuvwx` (120 random bits); the dashes and case are optional when
    /// typed.
    pub password: String,
}
