//! The service layer's one error type: what went wrong in the caller's terms, with a stable
//! code that every door reports unchanged.

use crate::storage::StorageError;

/// What kind of failure an error is, for a door to choose its answer (an HTTP status, an exit
/// message) without matching every variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed.
    Invalid,
    /// Well-formed, but refused by a rule.
    Refused,
    /// It is larger than this node accepts.
    TooLarge,
    /// It names something that does not exist (or that the actor may not see).
    NotFound,
    /// It contradicts the current state.
    Conflict,
    /// The actor may not do this.
    Forbidden,
    /// The node cannot do it now; try again later.
    Unavailable,
    /// It existed and is gone for good (an expired or withdrawn pickup).
    Gone,
    /// The actor did not prove who it is (wrong credentials, a missing or wrong second factor).
    Unauthenticated,
    /// Too many failed attempts: try again after [`ServiceError::retry_after`] seconds.
    Throttled,
    /// The node failed; the cause is logged, not shown.
    Internal,
}

/// Why a service operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// A field of the request is malformed (not base64, the wrong length).
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0:?} is not an e-mail address")]
    InvalidAddress(String),
    #[error(
        "wrong address or password; after several failures in a row, each further attempt must wait longer"
    )]
    InvalidCredentials,
    #[error("the current password is wrong: type it again")]
    WrongPassword,
    #[error("too many failed attempts: wait {secs} s before trying again")]
    TooManyAttempts { secs: u64 },
    #[error("this account is disabled")]
    AccountDisabled,
    #[error("enter the 6-digit code from your authenticator app")]
    TotpRequired,
    #[error("that code is wrong or has expired")]
    TotpInvalid,
    #[error("that code was already used: wait for the next one")]
    TotpReused,
    #[error("set up a second factor first")]
    TotpNotSetUp,
    #[error("{0}")]
    InvalidKdfParams(String),
    #[error("{0}")]
    KeyNotWrapped(String),
    #[error("not a certificate: {0}")]
    NotACertificate(String),
    #[error("this node's directory does not hold that key")]
    UnknownKey,
    #[error("{0}")]
    RejectedUpdate(String),
    #[error("the update carries no new certification made by your key")]
    NothingNew,
    #[error("this node hosts addresses of {domain} only")]
    WrongDomain { domain: String },
    #[error("the name must be at most {max} printable characters")]
    InvalidName { max: usize },
    #[error("{address} has already enrolled; an invite is only for a new account")]
    AlreadyEnrolled { address: String },
    #[error("no account {address}")]
    UnknownUser { address: String },
    #[error("{address} has not enrolled yet")]
    NotEnrolled { address: String },
    #[error("you cannot disable or enable your own account; ask another administrator")]
    OwnAccount,
    #[error("{0}")]
    InvalidEnvelope(String),
    #[error("name at least one recipient")]
    NoRecipients,
    #[error("at most {max} recipients per message")]
    TooManyRecipients { max: usize },
    #[error("a message has 1 to {max} parts")]
    TooManyParts { max: usize },
    #[error("the message is larger than this node's limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{speaker} may not send for {sender}")]
    SenderMismatch { speaker: String, sender: String },
    #[error("this message ID was already used for another message")]
    MessageIdReused,
    #[error("the transfer does not match its signed envelope")]
    TransferMismatch,
    #[error("the key of {address} is not authenticated by this node ({why})")]
    UntrustedSender { address: String, why: String },
    #[error("the envelope is not signed by the sender's key: {0}")]
    BadSignature(String),
    #[error("no enrolled user (here or at a peered organisation) for: {}", .addresses.join(", "))]
    UnknownRecipients { addresses: Vec<String> },
    #[error("the key of {} is revoked", .addresses.join(", "))]
    RecipientRevoked { addresses: Vec<String> },
    /// A pinned domain's mode is not possible for this recipient (docs/mail.md, "Policy").
    #[error("{address} cannot be reached: {why}")]
    NoDeliveryMode { address: String, why: String },
    /// The envelope's mode for an outside recipient is not the one the policy gives now (or
    /// the policy gives a mode with an external copy and the envelope names none).
    #[error("{address} is to be reached by {policy} now, but the envelope says {}", .envelope.map_or("no external copy".to_owned(), |m| format!("{m}")))]
    ExternalModeMismatch {
        address: String,
        policy: crate::proto::DeliveryMode,
        envelope: Option<crate::proto::DeliveryMode>,
    },
    /// An external copy for a recipient reached without one (local, remote).
    #[error("{address} is reached by {mode}, which takes no external copy")]
    ExternalCopyNotAllowed {
        address: String,
        mode: crate::proto::DeliveryMode,
    },
    /// An external copy missing, or not matching the hash and size of the signed envelope.
    #[error("the external copy for {address} {why}")]
    ExternalCopyMismatch { address: String, why: &'static str },
    /// An external copy not encrypted as its mode requires.
    #[error("the external copy for {address} is not encrypted to {}", .missing.join(" and "))]
    ExternalCopyNotEncrypted {
        address: String,
        missing: Vec<String>,
    },
    /// An external copy that is not what its mode says it is (S/MIME: not DER CMS
    /// enveloped data).
    #[error("the external copy for {address} is not a {mode} message: {why}")]
    ExternalCopyMalformed {
        address: String,
        mode: crate::proto::DeliveryMode,
        why: String,
    },
    /// A delivery mode this node does not carry out yet.
    #[error("this node cannot send {mode} mail yet ({address})")]
    ModeUnavailable {
        address: String,
        mode: crate::proto::DeliveryMode,
    },
    /// A recipient the submission gateway cannot reach: one whose mode needs the sender's own
    /// key (federation: the sender's signature; pickup: an unlock code the sender passes on).
    #[error(
        "{address} is reached by {mode} delivery, which needs your own key (your signature, or an unlock code you pass on): send this message from the web app"
    )]
    GatewayMode {
        address: String,
        mode: crate::proto::DeliveryMode,
    },
    #[error("{0}")]
    InvalidPart(String),
    /// A mail that came in over SMTP is not a well-formed message (RFC 5322: header lines,
    /// CRLF line ends, a From header; MIME multiparts with a boundary).
    #[error("malformed mail: {0}")]
    MalformedMail(&'static str),
    #[error("an inline part is larger than this node's limit of {limit} bytes")]
    InlineTooLarge { limit: u64 },
    #[error("part {index} does not match the hash and size in the signed envelope")]
    PartMismatch { index: usize },
    #[error("part {index} {why}")]
    PartMissing { index: usize, why: &'static str },
    #[error("part {index} is not an OpenPGP message encrypted to its recipients: {error}")]
    NotEncrypted { index: usize, error: String },
    #[error("part {index} is not encrypted to: {}", .addresses.join(", "))]
    MissingRecipientKey {
        index: usize,
        addresses: Vec<String>,
    },
    #[error("{0}")]
    InvalidPeer(String),
    #[error("{domain} is this node's own domain")]
    OwnDomain { domain: String },
    #[error("the CA certificate published for {domain} has fingerprint {published}, not {pinned}")]
    CaMismatch {
        domain: String,
        published: String,
        pinned: String,
    },
    #[error("{domain} is not a peer")]
    UnknownPeer { domain: String },
    #[error("federation is not running on this node")]
    FederationOff,
    #[error("the node of {domain} could not be asked for {address}: {error}")]
    PeerUnreachable {
        domain: String,
        address: String,
        error: String,
    },
    #[error("the node of {domain} answered badly: {error}")]
    PeerAnswerRefused { domain: String, error: String },
    #[error("the pickup seal for {address} is not acceptable: {why}")]
    InvalidPickupSeal { address: String, why: String },
    #[error("this pickup link is unknown: check that the whole link was opened")]
    PickupNotFound,
    #[error("this message has expired: ask its sender to send it again")]
    PickupExpired,
    #[error("the sender has withdrawn this message")]
    PickupWithdrawn,
    #[error("too many wrong unlock codes: ask the sender for a new code")]
    PickupLocked,
    #[error("wrong unlock code; {attempts_left} more attempts before the message is locked")]
    WrongUnlockCode { attempts_left: u32 },
    #[error("the pickup session is unknown or has expired: enter the unlock code again")]
    PickupSessionInvalid,
    #[error("this pickup is {state} already: it can no longer be changed")]
    PickupNotUnread { state: String },
    #[error("{address} is not a pickup recipient of this message of yours")]
    UnknownPickup { address: String },
    #[error("the message has no such part")]
    UnknownPart,
    #[error("a reply from a pickup goes to {allowed} only, who sent the message")]
    ReplyRecipient { allowed: String },
    #[error("this message has had its {max} replies already")]
    TooManyReplies { max: u32 },
    #[error(
        "the unlock code {address} holds is locked after too many wrong attempts: issue a new code for your message {message_id} first"
    )]
    PickupThreadLocked { address: String, message_id: String },
    #[error(
        "the pickup thread with {address} has expired or was withdrawn: request a new envelope, which makes a new key and unlock code"
    )]
    PickupThreadGone { address: String },
    /// A guest may write to the organisation's active users only (docs/pickup.md, "Guests").
    #[error("as a guest you can write to the organisation's users only, not to: {}", .addresses.join(", "))]
    GuestRecipientNotAllowed { addresses: Vec<String> },
    /// An upgrade for an address that already has an account.
    #[error("{address} already has a key here: log in with your address and password")]
    GuestExists { address: String },
    /// What a guest's account does not give (directory, other people's keys, certifying).
    #[error("a guest account cannot {what}")]
    GuestNotAllowed { what: &'static str },
    #[error("{address} is not a guest of this organisation")]
    UnknownGuest { address: String },
    /// A certificate offered at an upgrade is unusable or names another address.
    #[error("the certificate is unusable: {0}")]
    UnusableCert(String),
    /// An imported key larger than `[delivery] max_key_bytes`.
    #[error("the key is larger than this node's limit of {limit} bytes")]
    KeyTooLarge { limit: usize },
    /// An import that holds a secret key: only public certificates are imported.
    #[error("this is a secret key: import the public certificate only")]
    SecretKeyMaterial,
    #[error("you have imported no key {fingerprint}")]
    UnknownImport { fingerprint: String },
    /// App passwords are for the submission gateway, which `[submission] enabled` turns on.
    #[error("sending from mail programs is not enabled on this server")]
    SubmissionDisabled,
    #[error("a device name is 1 to {max} characters, without control characters")]
    InvalidLabel { max: usize },
    #[error("you already have {max} app passwords: revoke one you no longer use first")]
    TooManyAppPasswords { max: u32 },
    /// An app password that is not the caller's, unknown or already revoked (one answer).
    #[error("you have no such app password")]
    UnknownAppPassword,
    /// `POST /smime/certificate` while the organisation has no S/MIME CA (`[smime]`).
    #[error("your organisation has no S/MIME CA: S/MIME copies go unsigned")]
    SmimeCaNotConfigured,
    /// The binding is not a valid signature by the account's key over the SPKI's DER.
    #[error("the binding is not your key's signature over this public key: {0}")]
    SmimeBindingInvalid(String),
    /// A key the CA does not certify: only ECDSA P-256 (or RSA 2048 to 4096 bits).
    #[error("this S/MIME key is not supported: {0} (use ECDSA P-256)")]
    SmimeKeyUnsupported(String),
    /// More issuances in a day than `service::smime::MAX_PER_DAY`.
    #[error("you were issued {max} S/MIME certificates in the last day: try again later")]
    SmimeRateLimited { max: u32, secs: u64 },
    /// `GET /smime/certificate`: no live certificate of the caller's with a wrapped key stored.
    #[error("the node keeps no S/MIME signing key of yours that is still valid")]
    SmimeKeyNotStored,
    /// `GET /messages/{id}/evidence`: no such message in the caller's mailbox.
    #[error("no such message in your mailbox")]
    UnknownMessage,
    /// A part of a message registered for the caller, who has not accepted it yet.
    #[error("registered: sign an acceptance receipt (POST /messages/{{id}}/receipt) to open it")]
    ReceiptRequired,
    /// A part of a registered message the caller refused.
    #[error("you refused this registered message")]
    RegisteredRefused,
    /// A receipt for a message that is not registered for the caller.
    #[error("this message is not registered for you")]
    NotRegistered,
    /// A receipt that does not check out.
    #[error("the receipt is refused: {0}")]
    InvalidReceipt(String),
    /// A second, different decision on a registered message.
    #[error("you decided on this registered message already")]
    ReceiptGiven,
    /// A part is not encrypted to a compliance key the organisations' policy requires
    /// (docs/compliance.md, "Compliance key").
    #[error("part {index} is not encrypted to the compliance key of {domain}")]
    MissingComplianceRecipient { index: usize, domain: String },
    /// A compliance key offered for installation is not fit (public only, an encryption key,
    /// the user ID `Compliance archive <compliance@DOMAIN>`).
    #[error("not a compliance key: {0}")]
    InvalidComplianceKey(String),
    /// The compliance session-key packet a user's client adds to incoming mail
    /// (docs/compliance.md, "Waiting copies").
    #[error("not a compliance session-key packet: {0}")]
    InvalidCompliancePacket(String),
    #[error("the packet is not for the organisation's current compliance key {fingerprint}")]
    WrongComplianceKey { fingerprint: String },
    #[error("this message does not wait for a compliance session-key packet")]
    CompliancePacketNotPending,
    #[error("the organisation has no compliance key installed")]
    NoComplianceKey,
    /// The compliance key's custody (docs/compliance.md, "Dual control").
    #[error("only compliance officers may do this")]
    NotOfficer,
    #[error("the compliance key is not under custody yet: an admin sets it up first")]
    NoCustody,
    #[error("the custody setup is refused: {0}")]
    InvalidCustody(String),
    #[error("the access request is refused: {0}")]
    InvalidCase(String),
    #[error("no such compliance case")]
    UnknownCase,
    #[error("an officer cannot approve or refuse their own request")]
    OwnCase,
    #[error("you have approved this case already")]
    AlreadyApproved,
    #[error("this case is {state}: it can no longer change")]
    CaseClosed { state: String },
    #[error("this case has {have} of the {need} approvals it needs")]
    NotEnoughApprovals { have: u32, need: u32 },
    #[error("only the officer who requested this case may do this")]
    NotRequester,
    #[error("this message is not part of the case")]
    NotInCase,
    /// Legal holds (docs/compliance.md, "Retention and legal holds").
    #[error("the hold is refused: {0}")]
    InvalidHold(String),
    #[error("this case is on hold already")]
    AlreadyHeld,
    #[error("this case is not on hold")]
    NotHeld,
    #[error("{address} holds no share of the compliance key")]
    NoShare { address: String },
    #[error("the node's storage failed: {0}")]
    Storage(#[from] StorageError),
    #[error("the node failed: {0}")]
    Internal(String),
}

impl From<crate::storage::blobs::BlobError> for ServiceError {
    /// A blob store's failure is the node's storage failing (a full one says so).
    fn from(e: crate::storage::blobs::BlobError) -> Self {
        ServiceError::Storage(e.into())
    }
}

impl ServiceError {
    /// A stable, machine-readable code (`snake_case`), the same through every door.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::InvalidRequest(_) => "invalid_request",
            ServiceError::InvalidAddress(_) => "invalid_address",
            ServiceError::InvalidCredentials => "invalid_credentials",
            ServiceError::WrongPassword => "wrong_password",
            ServiceError::TooManyAttempts { .. } => "too_many_attempts",
            ServiceError::AccountDisabled => "account_disabled",
            ServiceError::TotpRequired => "totp_required",
            ServiceError::TotpInvalid => "totp_invalid",
            ServiceError::TotpReused => "totp_reused",
            ServiceError::TotpNotSetUp => "totp_not_set_up",
            ServiceError::InvalidKdfParams(_) => "invalid_kdf_params",
            ServiceError::KeyNotWrapped(_) => "key_not_wrapped",
            ServiceError::NotACertificate(_) => "invalid_cert",
            ServiceError::UnknownKey => "unknown_key",
            ServiceError::RejectedUpdate(_) => "rejected_update",
            ServiceError::NothingNew => "nothing_new",
            ServiceError::WrongDomain { .. } => "wrong_domain",
            ServiceError::InvalidName { .. } => "invalid_name",
            ServiceError::AlreadyEnrolled { .. } => "already_enrolled",
            ServiceError::UnknownUser { .. } => "unknown_user",
            ServiceError::NotEnrolled { .. } => "not_enrolled",
            ServiceError::OwnAccount => "own_account",
            ServiceError::InvalidEnvelope(_) => "invalid_envelope",
            ServiceError::NoRecipients => "no_recipients",
            ServiceError::TooManyRecipients { .. } => "too_many_recipients",
            ServiceError::TooManyParts { .. } => "too_many_parts",
            ServiceError::TooLarge { .. } | ServiceError::InlineTooLarge { .. } => "too_large",
            ServiceError::SenderMismatch { .. } => "sender_mismatch",
            ServiceError::MessageIdReused => "message_id_reused",
            ServiceError::TransferMismatch => "transfer_mismatch",
            ServiceError::UntrustedSender { .. } => "untrusted_sender",
            ServiceError::BadSignature(_) => "bad_envelope_signature",
            ServiceError::UnknownRecipients { .. } => "unknown_recipient",
            ServiceError::RecipientRevoked { .. } => "recipient_revoked",
            ServiceError::NoDeliveryMode { .. } => "no_delivery_mode",
            ServiceError::ExternalModeMismatch { .. } => "external_mode_mismatch",
            ServiceError::ExternalCopyNotAllowed { .. } => "external_copy_not_allowed",
            ServiceError::ExternalCopyMismatch { .. } => "external_copy_mismatch",
            ServiceError::ExternalCopyNotEncrypted { .. } => "external_copy_not_encrypted",
            ServiceError::ExternalCopyMalformed { .. } => "external_copy_malformed",
            ServiceError::ModeUnavailable { .. } => "mode_unavailable",
            ServiceError::GatewayMode { .. } => "gateway_mode_unsupported",
            ServiceError::InvalidPart(_) => "invalid_request",
            ServiceError::MalformedMail(_) => "malformed_mail",
            ServiceError::PartMismatch { .. } => "part_mismatch",
            ServiceError::PartMissing { .. } => "part_missing",
            ServiceError::NotEncrypted { .. } => "not_encrypted",
            ServiceError::MissingRecipientKey { .. } => "missing_recipient_key",
            ServiceError::MissingComplianceRecipient { .. } => "missing_compliance_recipient",
            ServiceError::InvalidComplianceKey(_) => "invalid_compliance_key",
            ServiceError::InvalidCompliancePacket(_) => "invalid_compliance_packet",
            ServiceError::WrongComplianceKey { .. } => "wrong_compliance_key",
            ServiceError::CompliancePacketNotPending => "compliance_not_pending",
            ServiceError::NoComplianceKey => "no_compliance_key",
            ServiceError::InvalidPeer(_) => "invalid_peer",
            ServiceError::OwnDomain { .. } => "own_domain",
            ServiceError::CaMismatch { .. } => "ca_mismatch",
            ServiceError::UnknownPeer { .. } => "unknown_peer",
            ServiceError::FederationOff => "federation_off",
            ServiceError::SubmissionDisabled => "submission_disabled",
            ServiceError::InvalidLabel { .. } => "invalid_label",
            ServiceError::TooManyAppPasswords { .. } => "too_many_app_passwords",
            ServiceError::UnknownAppPassword => "not_found",
            ServiceError::PeerUnreachable { .. } => "peer_unreachable",
            ServiceError::PeerAnswerRefused { .. } => "peer_answer_refused",
            ServiceError::InvalidPickupSeal { .. } => "invalid_pickup_seal",
            ServiceError::PickupNotFound => "pickup_not_found",
            ServiceError::PickupExpired => "pickup_expired",
            ServiceError::PickupWithdrawn => "pickup_withdrawn",
            ServiceError::PickupLocked => "pickup_locked",
            ServiceError::WrongUnlockCode { .. } => "wrong_unlock_code",
            ServiceError::PickupSessionInvalid => "pickup_session_invalid",
            ServiceError::PickupNotUnread { .. } => "pickup_not_unread",
            ServiceError::UnknownPickup { .. } => "unknown_pickup",
            ServiceError::UnknownPart => "unknown_part",
            ServiceError::UnknownMessage => "unknown_message",
            ServiceError::ReceiptRequired => "receipt_required",
            ServiceError::RegisteredRefused => "registered_refused",
            ServiceError::NotRegistered => "not_registered",
            ServiceError::InvalidReceipt(_) => "invalid_receipt",
            ServiceError::ReceiptGiven => "receipt_given",
            ServiceError::ReplyRecipient { .. } => "reply_recipient_not_allowed",
            ServiceError::TooManyReplies { .. } => "too_many_replies",
            ServiceError::PickupThreadLocked { .. } => "pickup_thread_locked",
            ServiceError::PickupThreadGone { .. } => "pickup_thread_gone",
            ServiceError::GuestRecipientNotAllowed { .. } => "guest_recipient_not_allowed",
            ServiceError::GuestExists { .. } => "guest_exists",
            ServiceError::GuestNotAllowed { .. } => "guest_not_allowed",
            ServiceError::UnknownGuest { .. } => "unknown_guest",
            ServiceError::UnusableCert(_) => "invalid_cert",
            ServiceError::KeyTooLarge { .. } => "too_large",
            ServiceError::SecretKeyMaterial => "secret_key",
            ServiceError::UnknownImport { .. } => "unknown_key",
            ServiceError::SmimeCaNotConfigured => "smime_ca_not_configured",
            ServiceError::SmimeBindingInvalid(_) => "smime_binding_invalid",
            ServiceError::SmimeKeyUnsupported(_) => "smime_key_unsupported",
            ServiceError::SmimeRateLimited { .. } => "rate_limited",
            ServiceError::SmimeKeyNotStored => "not_found",
            ServiceError::NotOfficer => "not_officer",
            ServiceError::NoCustody => "no_custody",
            ServiceError::InvalidCustody(_) => "invalid_custody",
            ServiceError::InvalidCase(_) => "invalid_case",
            ServiceError::UnknownCase => "unknown_case",
            ServiceError::OwnCase => "own_case",
            ServiceError::AlreadyApproved => "already_approved",
            ServiceError::CaseClosed { .. } => "case_closed",
            ServiceError::NotEnoughApprovals { .. } => "not_enough_approvals",
            ServiceError::NotRequester => "not_requester",
            ServiceError::NotInCase => "not_in_case",
            ServiceError::InvalidHold(_) => "invalid_hold",
            ServiceError::AlreadyHeld => "already_held",
            ServiceError::NotHeld => "not_held",
            ServiceError::NoShare { .. } => "no_share",
            ServiceError::Storage(StorageError::Overloaded) => "overloaded",
            ServiceError::Storage(StorageError::Conflict(_)) => "conflict",
            ServiceError::Storage(StorageError::NotFound(_)) => "not_found",
            ServiceError::Storage(StorageError::InviteInvalid) => "invite_invalid",
            ServiceError::Storage(StorageError::MessageIdNotIssued) => "message_id_not_issued",
            ServiceError::Storage(StorageError::MessageIdExpired) => "message_id_expired",
            ServiceError::Storage(StorageError::Backlog(..)) => "peer_backlog",
            ServiceError::Storage(StorageError::Full) => "storage_full",
            ServiceError::Storage(_) | ServiceError::Internal(_) => "internal",
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            ServiceError::InvalidRequest(_)
            | ServiceError::NotACertificate(_)
            | ServiceError::InvalidAddress(_)
            | ServiceError::InvalidName { .. }
            | ServiceError::InvalidEnvelope(_)
            | ServiceError::NoRecipients
            | ServiceError::InvalidPart(_)
            | ServiceError::MalformedMail(_)
            | ServiceError::InvalidPeer(_)
            | ServiceError::InvalidCompliancePacket(_) => ErrorKind::Invalid,
            ServiceError::WrongComplianceKey { .. } => ErrorKind::Refused,
            ServiceError::CompliancePacketNotPending | ServiceError::NoComplianceKey => {
                ErrorKind::Conflict
            }
            ServiceError::InvalidPickupSeal { .. } => ErrorKind::Refused,
            ServiceError::PickupNotFound
            | ServiceError::UnknownPickup { .. }
            | ServiceError::UnknownPart
            | ServiceError::UnknownMessage => ErrorKind::NotFound,
            ServiceError::ReceiptRequired | ServiceError::RegisteredRefused => ErrorKind::Forbidden,
            ServiceError::NotRegistered | ServiceError::ReceiptGiven => ErrorKind::Conflict,
            ServiceError::InvalidReceipt(_) => ErrorKind::Refused,
            ServiceError::PickupExpired | ServiceError::PickupWithdrawn => ErrorKind::Gone,
            ServiceError::PickupLocked => ErrorKind::Forbidden,
            ServiceError::WrongUnlockCode { .. } | ServiceError::PickupSessionInvalid => {
                ErrorKind::Unauthenticated
            }
            ServiceError::PickupNotUnread { .. }
            | ServiceError::TooManyReplies { .. }
            | ServiceError::PickupThreadLocked { .. }
            | ServiceError::PickupThreadGone { .. } => ErrorKind::Conflict,
            ServiceError::ReplyRecipient { .. } => ErrorKind::Refused,
            ServiceError::GuestExists { .. } => ErrorKind::Conflict,
            ServiceError::GuestRecipientNotAllowed { .. }
            | ServiceError::GuestNotAllowed { .. } => ErrorKind::Forbidden,
            ServiceError::UnknownGuest { .. } => ErrorKind::NotFound,
            ServiceError::UnusableCert(_) | ServiceError::SecretKeyMaterial => ErrorKind::Refused,
            ServiceError::KeyTooLarge { .. } => ErrorKind::TooLarge,
            ServiceError::UnknownImport { .. } | ServiceError::UnknownAppPassword => {
                ErrorKind::NotFound
            }
            ServiceError::InvalidLabel { .. } => ErrorKind::Invalid,
            ServiceError::SmimeCaNotConfigured => ErrorKind::Conflict,
            ServiceError::SmimeBindingInvalid(_) | ServiceError::SmimeKeyUnsupported(_) => {
                ErrorKind::Refused
            }
            ServiceError::SmimeRateLimited { .. } => ErrorKind::Throttled,
            ServiceError::SmimeKeyNotStored => ErrorKind::NotFound,
            ServiceError::SubmissionDisabled | ServiceError::TooManyAppPasswords { .. } => {
                ErrorKind::Conflict
            }
            ServiceError::InvalidCredentials
            | ServiceError::TotpRequired
            | ServiceError::TotpInvalid
            | ServiceError::TotpReused => ErrorKind::Unauthenticated,
            ServiceError::TooManyAttempts { .. } => ErrorKind::Throttled,
            ServiceError::WrongPassword | ServiceError::AccountDisabled => ErrorKind::Forbidden,
            ServiceError::TotpNotSetUp => ErrorKind::Conflict,
            ServiceError::WrongDomain { .. }
            | ServiceError::TooManyRecipients { .. }
            | ServiceError::TooManyParts { .. }
            | ServiceError::TransferMismatch
            | ServiceError::UntrustedSender { .. }
            | ServiceError::BadSignature(_)
            | ServiceError::UnknownRecipients { .. }
            | ServiceError::RecipientRevoked { .. }
            | ServiceError::NoDeliveryMode { .. }
            | ServiceError::ExternalModeMismatch { .. }
            | ServiceError::ExternalCopyNotAllowed { .. }
            | ServiceError::ExternalCopyMismatch { .. }
            | ServiceError::ExternalCopyNotEncrypted { .. }
            | ServiceError::ExternalCopyMalformed { .. }
            | ServiceError::ModeUnavailable { .. }
            | ServiceError::GatewayMode { .. }
            | ServiceError::PartMismatch { .. }
            | ServiceError::PartMissing { .. }
            | ServiceError::NotEncrypted { .. }
            | ServiceError::MissingRecipientKey { .. }
            | ServiceError::MissingComplianceRecipient { .. }
            | ServiceError::InvalidComplianceKey(_)
            | ServiceError::OwnDomain { .. }
            | ServiceError::CaMismatch { .. }
            | ServiceError::InvalidKdfParams(_)
            | ServiceError::KeyNotWrapped(_)
            | ServiceError::RejectedUpdate(_)
            | ServiceError::NothingNew => ErrorKind::Refused,
            ServiceError::TooLarge { .. } | ServiceError::InlineTooLarge { .. } => {
                ErrorKind::TooLarge
            }
            ServiceError::SenderMismatch { .. }
            | ServiceError::Storage(StorageError::MessageIdNotIssued)
            | ServiceError::Storage(StorageError::MessageIdExpired) => ErrorKind::Forbidden,
            ServiceError::UnknownUser { .. }
            | ServiceError::UnknownPeer { .. }
            | ServiceError::UnknownKey => ErrorKind::NotFound,
            ServiceError::AlreadyEnrolled { .. }
            | ServiceError::NotEnrolled { .. }
            | ServiceError::OwnAccount
            | ServiceError::MessageIdReused => ErrorKind::Conflict,
            ServiceError::FederationOff
            | ServiceError::PeerUnreachable { .. }
            | ServiceError::PeerAnswerRefused { .. }
            | ServiceError::Storage(StorageError::Overloaded)
            | ServiceError::Storage(StorageError::Full)
            | ServiceError::Storage(StorageError::Backlog(..)) => ErrorKind::Unavailable,
            ServiceError::NotOfficer
            | ServiceError::OwnCase
            | ServiceError::NotRequester
            | ServiceError::NoShare { .. } => ErrorKind::Forbidden,
            ServiceError::InvalidCustody(_)
            | ServiceError::InvalidCase(_)
            | ServiceError::InvalidHold(_) => ErrorKind::Invalid,
            ServiceError::UnknownCase | ServiceError::NotInCase => ErrorKind::NotFound,
            ServiceError::NoCustody
            | ServiceError::AlreadyApproved
            | ServiceError::AlreadyHeld
            | ServiceError::NotHeld
            | ServiceError::CaseClosed { .. }
            | ServiceError::NotEnoughApprovals { .. } => ErrorKind::Conflict,
            ServiceError::Storage(StorageError::InviteInvalid) => ErrorKind::Refused,
            ServiceError::Storage(StorageError::Conflict(_)) => ErrorKind::Conflict,
            ServiceError::Storage(StorageError::NotFound(_)) => ErrorKind::NotFound,
            ServiceError::Storage(_) | ServiceError::Internal(_) => ErrorKind::Internal,
        }
    }

    /// For [`ErrorKind::Throttled`]: how many seconds to wait.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ServiceError::TooManyAttempts { secs }
            | ServiceError::SmimeRateLimited { secs, .. } => Some(*secs),
            _ => None,
        }
    }

    /// Wraps any failure of the node's own machinery (not the caller's mistake).
    pub fn internal(e: impl std::fmt::Display) -> Self {
        ServiceError::Internal(e.to_string())
    }
}
