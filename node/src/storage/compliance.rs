//! The organisation's compliance key (docs/compliance.md, "Compliance key") and
//! [`ComplianceStore`]. The rules (what a compliance key must be, the CA's marking) are
//! `service::compliance`'s; this keeps the certified public certificate, one active at a time,
//! and the ones it replaced (`retired_at`); and the compliance session-key packets users'
//! clients add to incoming mail that came encrypted to them only ("Waiting copies").
//!
//! The same contract as every store: a write that returns `Ok` is durable with its log entry.

use async_trait::async_trait;

use super::certs::CertRecord;
use super::error::{Result, Timestamp};
use super::log::LogEvent;

/// A compliance key as stored: the public certificate with the CA's marking certification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComplianceKeyRow {
    /// Upper-case hex fingerprint.
    pub fingerprint: String,
    /// Armored public certificate, certified by the CA.
    pub cert: String,
    pub installed_at: Timestamp,
    pub retired_at: Option<Timestamp>,
}

#[async_trait]
pub trait ComplianceStore: Send + Sync + 'static {
    /// Makes `record` the active compliance key in one commit: the previous active key is
    /// retired, the certificate is stored for the directory (origin `local`, which bumps the
    /// certificate generation) and `event` is logged.
    async fn install_compliance_key(
        &self,
        record: CertRecord,
        event: LogEvent,
        now: Timestamp,
    ) -> Result<()>;
    /// The active compliance key, if one is installed.
    async fn compliance_key(&self) -> Result<Option<ComplianceKeyRow>>;
    /// Keeps `packet` (one PKESK for compliance key `fingerprint`) beside message
    /// `message_id`, clears its `compliance_pending` and logs `event`, in one commit. `false`
    /// (and nothing changed) when a packet for that key is there already.
    async fn add_compliance_packet(
        &self,
        message_id: &str,
        fingerprint: &str,
        packet: Vec<u8>,
        event: LogEvent,
        now: Timestamp,
    ) -> Result<bool>;
    /// The session-key packets kept beside message `message_id`, oldest first.
    async fn compliance_packets(&self, message_id: &str) -> Result<Vec<Vec<u8>>>;
    /// How many stored messages wait for their compliance packet.
    async fn compliance_pending_count(&self) -> Result<u64>;
}
