//! The node's one typed configuration.
//!
//! Loaded from `DATA/sealpost.toml`, then overridden by environment variables of the form
//! `SEALPOST__SECTION__KEY=value` (double underscores, so they never collide with the client's
//! `SEALPOST_PASSWORD` / `SEALPOST_CLIENT_DIR`), then validated. Every path the node uses is
//! derived from the data directory through [`Paths`]; nothing else names a file.
//!
//! `sealpost.example.toml` at the crate root documents every key; a test keeps it in step with
//! [`Config::default`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use sealpost_proto::is_valid_domain;
use serde::{Deserialize, Serialize};

/// The example configuration shipped with the node, every key documented.
pub const EXAMPLE: &str = include_str!("../sealpost.example.toml");

/// Name of the configuration file inside the data directory.
pub const CONFIG_FILE: &str = "sealpost.toml";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid configuration: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// `[smime]`'s CA files are unreadable, do not match, or are not a CA that may sign
    /// certificates.
    #[error("smime: {path}: {message}")]
    SmimeCa { path: PathBuf, message: String },
    /// `[timestamping]` is malformed (the URL, the CA file's name, the timeout).
    #[error("invalid configuration: timestamping.{0}")]
    Timestamping(String),
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The organisation's mail domain: users are `name@domain`.
    pub domain: String,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub accounts: AccountsConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub trust: TrustConfig,
    #[serde(default)]
    pub federation: FederationConfig,
    #[serde(default)]
    pub web: WebConfig,
    #[serde(default)]
    pub relay: RelayConfig,
    #[serde(default)]
    pub pickup: PickupConfig,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub smtp_in: SmtpInConfig,
    #[serde(default)]
    pub submission: SubmissionConfig,
    /// The compliance copy (docs/compliance.md).
    #[serde(default)]
    pub compliance: ComplianceConfig,
    /// The organisation's S/MIME CA (docs/mail.md, "The S/MIME copy"): absent, S/MIME copies
    /// go unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smime: Option<SmimeConfig>,
    /// An RFC 3161 time-stamping authority that stamps the transaction log's checkpoints
    /// (docs/evidence.md, "Time-stamps"): absent, checkpoints are not time-stamped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamping: Option<TimestampingConfig>,
    /// The Prometheus metrics listener (docs/operations.md): absent, no metrics are served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsConfig>,
}

/// `[metrics]`: where Prometheus scrapes the node (`GET /metrics`). A listener of its own,
/// not a route of the API: see docs/operations.md, "Why a separate listener".
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the metrics listener (port 0 picks a free port). Bind it to loopback or a
    /// management network only: it is unauthenticated.
    pub listen: SocketAddr,
}

/// `[compliance]`: the compliance copy (docs/compliance.md). The compliance key itself is
/// installed by an admin (`sealpost admin compliance install`, `PUT /admin/compliance/key`),
/// not configured: with none installed, nothing here has any effect.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ComplianceConfig {
    /// With a compliance key installed, refuse every message (local submission, a peer's
    /// transfer to our users, a pickup reply) whose parts are not encrypted to it. `false`:
    /// the key is published and offered to clients, but a message without it is taken (a
    /// transition while clients are updated). A peer's required key is asked for whenever the
    /// peer publishes one.
    #[serde(default = "yes")]
    pub required: bool,
    /// Days a compliance copy is kept after it was accepted, once its users deleted it
    /// (docs/compliance.md, "Retention and legal holds"); then the expiry sweep deletes its
    /// ciphertext, unless a legal hold holds it. `0`: kept forever.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

fn yes() -> bool {
    true
}

fn default_retention_days() -> u32 {
    3650
}

impl ComplianceConfig {
    /// The retention in seconds; `None` when copies are kept forever.
    pub fn retention_secs(&self) -> Option<i64> {
        (self.retention_days > 0).then(|| i64::from(self.retention_days) * 86_400)
    }
}

impl Default for ComplianceConfig {
    fn default() -> Self {
        ComplianceConfig {
            required: true,
            retention_days: default_retention_days(),
        }
    }
}

/// `[timestamping]`: the RFC 3161 time-stamping authority (TSA) asked to stamp each new
/// checkpoint of the transaction log (`timestamp`). One request per checkpoint, never one per
/// message: a stamp on a checkpoint covers every earlier entry through the hash chain.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimestampingConfig {
    /// The TSA's URL (`http://` or `https://`); requests are POSTed to it.
    pub url: String,
    /// PEM file: the CA certificate(s) the TSA's tokens must chain to.
    pub ca_file: String,
    /// Seconds to wait for the TSA's answer (1 to 300).
    #[serde(default = "default_tsa_timeout")]
    pub timeout_secs: u64,
}

fn default_tsa_timeout() -> u64 {
    30
}

impl TimestampingConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Timestamping(m.to_owned()));
        let url = match reqwest::Url::parse(&self.url) {
            Ok(u) => u,
            Err(_) => return bad("url is not a URL"),
        };
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return bad("url must be an http:// or https:// URL with a host");
        }
        // Credentials in the URL would end up in logs and errors.
        if !url.username().is_empty() || url.password().is_some() {
            return bad("url must not carry credentials");
        }
        if self.ca_file.is_empty() {
            return bad("ca_file is required");
        }
        if !(1..=300).contains(&self.timeout_secs) {
            return bad("timeout_secs must be 1 to 300");
        }
        Ok(())
    }
}

/// `[smime]`: an X.509 CA from which the node issues each user a certificate for their S/MIME
/// signing key, bound to their Sealpost key (`service::smime`). The files are read and checked
/// at start (`service::smime::SmimeCa::load`); the key is never logged.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmimeConfig {
    /// PEM file: the issuing CA's certificate, optionally followed by its chain.
    pub ca_cert: String,
    /// PEM file: the issuing CA's private key.
    pub ca_key: String,
    /// Days a certificate is valid (1 to 825; never beyond the CA's own expiry).
    #[serde(default = "default_cert_days")]
    pub cert_days: u32,
}

fn default_cert_days() -> u32 {
    365
}

impl SmimeConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(format!("smime.{m}")));
        if self.ca_cert.is_empty() || self.ca_key.is_empty() {
            return bad("ca_cert and ca_key are required");
        }
        if !(1..=825).contains(&self.cert_days) {
            return bad("cert_days must be 1 to 825");
        }
        Ok(())
    }
}

/// How outside recipients are reached (docs/mail.md, "Policy"): the order of the delivery
/// modes, which key sources make `openpgp`/`smime` usable, and domains pinned to one mode.
/// `service::delivery::decide` applies it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// For an outside address, the first mode in this order that is possible wins: `openpgp`,
    /// `smime`, `pickup` (each at most once). Enforced TLS (`tls`) is never chosen by order,
    /// only by a pin.
    pub order: Vec<sealpost_proto::DeliveryMode>,
    /// Where a key must come from to be used without asking: `wkd`, `keyserver`, `imported`
    /// (by the sender), `imported_by_admin`, `x509_anchor`.
    pub trusted_sources: Vec<sealpost_proto::KeySource>,
    /// Domains that always get one mode, or fail with the reason (never another mode).
    #[serde(rename = "pin")]
    pub pins: Vec<DeliveryPin>,
    /// Look for OpenPGP keys in the recipient domain's Web Key Directory (advanced method at
    /// `openpgpkey.DOMAIN`, then the direct method).
    pub wkd: bool,
    /// HKP keyservers asked (after WKD) for a key of an outside address, as `https://host`
    /// or `hkps://host[:port]` (TLS only). Empty: none. Asking a public keyserver tells it
    /// whom the organisation writes to, so none is configured by default.
    pub keyservers: Vec<String>,
    /// A PEM file of X.509 trust anchors: an imported S/MIME certificate is usable without
    /// asking only if it chains to one of them. Empty: none is anchored.
    pub x509_anchors: String,
    /// A PEM file of CA certificates trusted for WKD and keyserver look-ups besides the
    /// system's (an internal keyserver, a test CA). Empty: the system's trust store only.
    pub wkd_ca_file: String,
    /// Host names the WKD and keyserver look-ups reach at a fixed address instead of asking
    /// DNS (`{ "openpgpkey.partner.example" = "10.0.0.7:443" }`): a split-horizon setup, or
    /// tests on loopback. Other names must resolve to public addresses.
    pub resolve: std::collections::BTreeMap<String, SocketAddr>,
    /// Seconds one WKD or keyserver look-up may take in all (connection, TLS, answer).
    pub lookup_timeout_secs: u64,
    /// Largest key (or X.509 certificate file) fetched or imported, in bytes.
    pub max_key_bytes: usize,
    /// Seconds the answer of a WKD or keyserver look-up (found or not) is kept.
    pub lookup_cache_secs: u64,
    /// Most keys and certificates one user may import (an administrator's imports: ten
    /// times as many).
    pub max_imports_per_user: u64,
}

/// `[[delivery.pin]]`: a domain that always gets `mode`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeliveryPin {
    /// Lowercase; the domain itself, not its subdomains.
    pub domain: String,
    /// `openpgp`, `smime`, `tls` or `pickup`.
    pub mode: sealpost_proto::DeliveryMode,
    /// With `mode = "tls"` (and only then): how the TLS is authenticated: `mta-sts`, `dane`,
    /// or `pinned` (a valid certificate for the MX name, on the admin's word).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsPolicy>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        use sealpost_proto::{DeliveryMode as M, KeySource as K};
        DeliveryConfig {
            order: vec![M::Openpgp, M::Smime, M::Pickup],
            trusted_sources: vec![K::Wkd, K::Imported, K::ImportedByAdmin, K::X509Anchor],
            pins: Vec::new(),
            wkd: true,
            keyservers: Vec::new(),
            x509_anchors: String::new(),
            wkd_ca_file: String::new(),
            resolve: std::collections::BTreeMap::new(),
            lookup_timeout_secs: 5,
            max_key_bytes: 256 * 1024,
            lookup_cache_secs: 300,
            max_imports_per_user: 1000,
        }
    }
}

/// The node's own SMTP door (node/src/smtp_in/, docs/mail.md "SMTP in"): mail from anywhere
/// for this node's users and guests, as an MX receives it. No AUTH: it relays nothing.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpInConfig {
    /// Whether the node listens for mail at all.
    pub enabled: bool,
    /// Address to listen on (port 25 for an MX). Port 0 picks a free port.
    pub listen: SocketAddr,
    /// The name the node gives in its greeting and EHLO answer. Empty: the domain.
    pub hostname: String,
    /// PEM certificate (chain) and key files offered with STARTTLS. Both empty: no STARTTLS.
    pub tls_cert: String,
    pub tls_key: String,
    /// Largest mail in bytes (as sent, after dot-unstuffing); larger ones are refused with 552.
    pub max_message_bytes: u64,
    /// Most recipients of one mail; further RCPTs are answered 452.
    pub max_recipients: usize,
    /// Connections served at once; more are answered 421 and closed.
    pub max_connections: usize,
    /// Connections served at once from one client address (IPv6: one /64).
    pub max_connections_per_ip: usize,
    /// New connections one client address (IPv6: one /64) may open per minute.
    pub connections_per_ip_per_minute: u32,
    /// Mails one client address (IPv6: one /64) may send per minute; more are answered 451.
    pub messages_per_ip_per_minute: u32,
    /// Milliseconds to wait before the greeting, watching for a client that talks first
    /// (which is then refused with 554). 0: only what already arrived is looked at.
    pub greet_pause_ms: u64,
    /// Seconds to wait for each command; then 421 and the connection is closed.
    pub command_timeout_secs: u64,
    /// Seconds to wait for more of a mail's data while it is sent.
    pub data_timeout_secs: u64,
    /// Bad commands one connection may send before it is closed (421).
    pub max_errors: u32,
    /// DNS resolver (IP:port) for SPF, DKIM and DMARC checks. Empty: mail is not checked and
    /// its results say `none`.
    pub resolver: String,
}

impl Default for SmtpInConfig {
    fn default() -> Self {
        SmtpInConfig {
            enabled: false,
            listen: SocketAddr::from(([0, 0, 0, 0], 25)),
            hostname: String::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            max_message_bytes: 25 * 1024 * 1024,
            max_recipients: 100,
            max_connections: 512,
            max_connections_per_ip: 16,
            connections_per_ip_per_minute: 120,
            messages_per_ip_per_minute: 300,
            greet_pause_ms: 0,
            command_timeout_secs: 300,
            data_timeout_secs: 180,
            max_errors: 10,
            resolver: String::new(),
        }
    }
}

/// The submission gateway (node/src/smtp_in/, docs/mail.md "Submission gateway"): users'
/// ordinary mail programs send through the node, authenticated by app passwords, and the node
/// seals each message per recipient. The node sees the content at submission: off unless the
/// organisation decides so.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SubmissionConfig {
    /// Whether users may create app passwords and the node listens for submission.
    pub enabled: bool,
    /// Address to listen on (587 with STARTTLS, 465 with `implicit_tls`). Port 0: a free port.
    pub listen: SocketAddr,
    /// TLS from the first byte (port 465, RFC 8314) instead of STARTTLS.
    pub implicit_tls: bool,
    /// The name given in the greeting and shown to users for their mail program. Empty: the
    /// domain.
    pub hostname: String,
    /// PEM certificate (chain) and key files. Required when enabled: AUTH is offered only
    /// over TLS.
    pub tls_cert: String,
    pub tls_key: String,
    /// Largest mail in bytes; larger ones are refused with 552 while they stream in.
    pub max_message_bytes: u64,
    /// Most recipients of one mail; further RCPTs are answered 452.
    pub max_recipients: usize,
    /// Connections served at once, and from one client address (IPv6: one /64).
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// New connections one client address may open per minute.
    pub connections_per_ip_per_minute: u32,
    /// Mails one user may send per hour (a stolen app password is not a spam cannon); more
    /// are answered 451.
    pub messages_per_user_per_hour: u32,
    /// Seconds to wait for each command, and for more of a mail's data.
    pub command_timeout_secs: u64,
    pub data_timeout_secs: u64,
    /// Bad commands (a failed AUTH included) one connection may send before it is closed.
    pub max_errors: u32,
    /// App passwords one user may hold at once.
    pub max_app_passwords: u32,
}

impl Default for SubmissionConfig {
    fn default() -> Self {
        SubmissionConfig {
            enabled: false,
            listen: SocketAddr::from(([0, 0, 0, 0], 587)),
            implicit_tls: false,
            hostname: String::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            max_message_bytes: 25 * 1024 * 1024,
            max_recipients: 100,
            max_connections: 256,
            max_connections_per_ip: 8,
            connections_per_ip_per_minute: 60,
            messages_per_user_per_hour: 500,
            command_timeout_secs: 300,
            data_timeout_secs: 180,
            max_errors: 5,
            max_app_passwords: 20,
        }
    }
}

impl SubmissionConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(format!("submission.{m}")));
        if self.tls_cert.is_empty() != self.tls_key.is_empty() {
            return bad("tls_cert and tls_key must be set together");
        }
        if self.enabled && self.tls_cert.is_empty() {
            return bad(
                "tls_cert and tls_key are required when enabled: AUTH is offered only over TLS",
            );
        }
        if !self.hostname.is_empty() && !is_valid_host(&self.hostname) {
            return bad("hostname must be a host name");
        }
        if self.max_message_bytes == 0 || self.max_recipients == 0 {
            return bad("max_message_bytes and max_recipients must be at least 1");
        }
        if self.max_connections == 0
            || self.max_connections_per_ip == 0
            || self.connections_per_ip_per_minute == 0
            || self.messages_per_user_per_hour == 0
            || self.max_errors == 0
        {
            return bad(
                "max_connections, max_connections_per_ip, connections_per_ip_per_minute, messages_per_user_per_hour and max_errors must be at least 1",
            );
        }
        if !(1..=1000).contains(&self.max_app_passwords) {
            return bad("max_app_passwords must be 1 to 1000");
        }
        Ok(())
    }
}

impl DeliveryConfig {
    fn validate(&self, own_domain: &str) -> Result<(), ConfigError> {
        use sealpost_proto::DeliveryMode as M;
        let bad = |m: String| Err(ConfigError::Invalid(format!("delivery.{m}")));
        if self.order.is_empty() {
            return bad("order must name at least one mode".into());
        }
        for (i, m) in self.order.iter().enumerate() {
            if !matches!(m, M::Openpgp | M::Smime | M::Pickup) {
                return bad(format!(
                    "order may name openpgp, smime and pickup, not {m} (enforced TLS only through a pin)"
                ));
            }
            if self.order[..i].contains(m) {
                return bad(format!("order names {m} twice"));
            }
        }
        for (i, k) in self.trusted_sources.iter().enumerate() {
            if self.trusted_sources[..i].contains(k) {
                return bad(format!("trusted_sources names {k} twice"));
            }
        }
        for (i, p) in self.pins.iter().enumerate() {
            if !is_valid_domain(&p.domain) {
                return bad(format!(
                    "pin domain {:?} must be a lowercase DNS name",
                    p.domain
                ));
            }
            if p.domain == own_domain {
                return bad(format!(
                    "pin domain {} is this organisation's own domain",
                    p.domain
                ));
            }
            if self.pins[..i].iter().any(|q| q.domain == p.domain) {
                return bad(format!("pin domain {} is pinned twice", p.domain));
            }
            if !matches!(p.mode, M::Openpgp | M::Smime | M::Tls | M::Pickup) {
                return bad(format!(
                    "pin for {}: mode must be openpgp, smime, tls or pickup",
                    p.domain
                ));
            }
            if (p.mode == M::Tls) != p.tls.is_some() {
                return bad(format!(
                    "pin for {}: tls (mta-sts, dane or pinned) is required with mode = \"tls\" and allowed only with it",
                    p.domain
                ));
            }
        }
        self.validate_lookups()
    }

    /// The pin for `domain`, if any.
    pub fn pin(&self, domain: &str) -> Option<&DeliveryPin> {
        self.pins.iter().find(|p| p.domain == domain)
    }

    fn validate_lookups(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(format!("delivery.{m}")));
        for k in &self.keyservers {
            if keyserver_base(k).is_none() {
                return bad(
                    "keyservers: each must be https://HOST or hkps://HOST[:PORT] (TLS only), without a path",
                );
            }
        }
        if self.keyservers.len() > 8 {
            return bad("keyservers: at most 8");
        }
        for host in self.resolve.keys() {
            if !is_valid_host(host) {
                return bad("resolve: keys must be lowercase host names");
            }
        }
        if !(1..=60).contains(&self.lookup_timeout_secs) {
            return bad("lookup_timeout_secs must be 1 to 60");
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_key_bytes) {
            return bad("max_key_bytes must be 1024 to 16777216");
        }
        if self.lookup_cache_secs > 24 * 3600 {
            return bad("lookup_cache_secs must be at most 86400");
        }
        if self.max_imports_per_user == 0 {
            return bad("max_imports_per_user must be at least 1");
        }
        Ok(())
    }
}

/// The `https://` base URL of a configured keyserver (`https://host` or `hkps://host[:port]`),
/// or `None` if it is not one.
pub fn keyserver_base(k: &str) -> Option<String> {
    let rest = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("hkps://"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse::<u16>().ok().filter(|p| *p != 0)?)),
        None => (rest, None),
    };
    if !is_valid_host(host) || host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    Some(match port {
        Some(p) => format!("https://{host}:{p}"),
        None => format!("https://{host}"),
    })
}

impl SmtpInConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(format!("smtp_in.{m}")));
        if self.tls_cert.is_empty() != self.tls_key.is_empty() {
            return bad("tls_cert and tls_key must be set together");
        }
        if !self.hostname.is_empty() && !is_valid_host(&self.hostname) {
            return bad("hostname must be a host name");
        }
        if self.max_message_bytes == 0 || self.max_recipients == 0 {
            return bad("max_message_bytes and max_recipients must be at least 1");
        }
        if self.max_connections == 0
            || self.max_connections_per_ip == 0
            || self.connections_per_ip_per_minute == 0
            || self.messages_per_ip_per_minute == 0
        {
            return bad(
                "max_connections, max_connections_per_ip, connections_per_ip_per_minute and messages_per_ip_per_minute must be at least 1",
            );
        }
        if self.command_timeout_secs == 0 || self.data_timeout_secs == 0 || self.max_errors == 0 {
            return bad(
                "command_timeout_secs, data_timeout_secs and max_errors must be at least 1",
            );
        }
        if self.greet_pause_ms > 60_000 {
            return bad("greet_pause_ms must be at most 60000");
        }
        if !self.resolver.is_empty() && self.resolver.parse::<SocketAddr>().is_err() {
            return bad("resolver must be IP:port");
        }
        Ok(())
    }
}

/// Pickup delivery to outside recipients (docs/pickup.md): limits and expiry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PickupConfig {
    /// Whether outside addresses are reached by pickup; if not, they are unknown recipients.
    pub enabled: bool,
    /// Days a pickup stays open unless the sender asks for fewer.
    pub default_expiry_days: u32,
    /// The most days a sender may ask for.
    pub max_expiry_days: u32,
    /// Wrong unlock codes a pickup takes; then it is locked until the sender issues a new code.
    pub max_wrong: u32,
    /// Opens and unlocks one IP address may make per minute, across all pickups.
    pub per_ip_per_minute: u32,
    /// Seconds a pickup session (after the right unlock code) lasts.
    pub session_ttl_secs: u64,
    /// Replies an outside recipient may send through one pickup (each within
    /// `limits.max_message_bytes`).
    pub max_replies: u32,
}

impl Default for PickupConfig {
    fn default() -> Self {
        PickupConfig {
            enabled: true,
            default_expiry_days: 30,
            max_expiry_days: 90,
            max_wrong: 5,
            per_ip_per_minute: 30,
            session_ttl_secs: 3600,
            max_replies: 20,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FederationConfig {
    /// Whether this node exchanges messages with peered organisations' nodes over QUIC.
    pub enabled: bool,
    /// QUIC listen addresses (multiaddresses). Port 0 picks a free port the first time and
    /// keeps it afterwards, so peers find the node again after a restart.
    pub listen: Vec<String>,
    /// Addresses published in the organisation record for peers to dial; empty means the
    /// addresses actually listened on.
    pub announce: Vec<String>,
    /// Seconds a message waits for a peer's node before its delivery fails and the sender is
    /// told.
    pub delivery_expiry_secs: u64,
    /// Most messages waiting for one peer's node; further submissions to that organisation
    /// are refused until it catches up (the sender is told).
    pub max_backlog_per_peer: u64,
    /// Seconds between sweeps for expired deliveries.
    pub sweep_interval_secs: u64,
    /// Seconds to wait for a peer's directory answer in an envelope request.
    pub lookup_timeout_secs: u64,
    /// Transfers in flight to one peer's node, each on its own stream. Each waits for the
    /// receiver's durable commit: more in flight lets both nodes group more into one commit.
    pub outbound_streams_per_peer: usize,
    /// Streams from one peer's node served at once; further streams are dropped.
    pub inbound_streams_per_peer: usize,
}

impl Default for FederationConfig {
    fn default() -> Self {
        FederationConfig {
            enabled: true,
            listen: vec!["/ip4/127.0.0.1/udp/0/quic-v1".into()],
            announce: Vec::new(),
            delivery_expiry_secs: 3 * 24 * 3600,
            max_backlog_per_peer: 100_000,
            sweep_interval_secs: 30,
            lookup_timeout_secs: 5,
            outbound_streams_per_peer: 32,
            inbound_streams_per_peer: 64,
        }
    }
}

/// The browser app the node serves at `/` (see `api::web`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Whether to serve the web app at all (the API and the session cookie work either way).
    pub enabled: bool,
    /// Directory of the built app (`npm run build` in `webui/` writes `webui/dist`). A
    /// relative path is taken from the directory the node is started in: the default suits a
    /// node started at the top of the source tree (`scripts/demo`); give an absolute path
    /// when deploying. Empty means the default.
    pub dir: String,
    /// The `Secure` attribute of the session cookie: `auto` (set unless the browser reached
    /// the node by a loopback name such as localhost or 127.0.0.1), `always` or `never`. Put
    /// TLS in front of any node that is not on loopback.
    pub secure_cookies: String,
    /// The URL at which browsers reach this node (`https://mail.example.org`), used in pickup
    /// links. Empty: `http://` and the HTTP listen address (for tests and demos).
    pub public_url: String,
}

/// Where the built app is unless `web.dir` says otherwise.
const DEFAULT_WEB_DIR: &str = "webui/dist";

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: true,
            dir: DEFAULT_WEB_DIR.into(),
            secure_cookies: "auto".into(),
            public_url: String::new(),
        }
    }
}

/// The organisation's mail relay, through which the node sends notification mail to outside
/// recipients (`notify`). Passwords are never part of the configuration: only where to read
/// one.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Host name or IP address of the relay. Empty: no relay, and outside recipients cannot
    /// be notified (asking to notify one is refused with `relay_not_configured`).
    pub host: String,
    pub port: u16,
    /// `starttls` (upgrade on `port`, usually 587; refused if the relay does not offer it),
    /// `tls` (implicit TLS, usually 465) or `none` (plain SMTP, only to a relay on this
    /// machine: `localhost` or a loopback address, and never with a login).
    pub security: RelaySecurity,
    /// A PEM file of certificates to trust for the relay besides the system's (a relay with a
    /// certificate from the organisation's own CA). Empty: the system's trust store only.
    pub ca_file: String,
    /// Login name for SMTP AUTH (PLAIN or LOGIN, over TLS only). Empty: no login.
    pub username: String,
    /// File holding the login's password (trailing newline ignored), read at start.
    pub password_file: String,
    /// ... or the name of an environment variable holding it (not `SEALPOST__…`).
    pub password_env: String,
    /// The name the node gives in EHLO. Empty: the organisation's domain.
    pub helo_name: String,
    /// Sender address of notification mail. Empty: `no-reply@DOMAIN`.
    pub from: String,
    /// Seconds to reach the relay and finish greeting, TLS and login.
    pub connect_timeout_secs: u64,
    /// Seconds to wait for each answer of the relay after that.
    pub command_timeout_secs: u64,
    /// Seconds before the first retry of a notification the relay did not take; each further
    /// retry waits twice as long, up to `retry_max_secs`.
    pub retry_base_secs: u64,
    pub retry_max_secs: u64,
    /// Seconds after which a notification the relay still has not taken fails, and its
    /// sender is told (4 days, as mail servers do).
    pub give_up_after_secs: u64,
    /// Most notifications waiting for the relay; further ones are refused until it catches up.
    pub max_queued: u64,
    /// Most notifications sent over one connection to the relay.
    pub batch_max: usize,
    /// `relay`: every mail through the relay above. `direct`: the node delivers to each
    /// recipient domain's mail servers itself (MX look-up, STARTTLS), one queue per domain.
    pub route: RelayRoute,
    /// With `route = "direct"`: the DNS resolver to ask, `IP` or `IP:PORT`. Set, it is taken
    /// for a validating resolver (a local unbound): MX and TLSA records are asked with DNSSEC
    /// OK and its AD bit is trusted, as Postfix does with `smtp_dns_support_level = dnssec`,
    /// so it must be on loopback or a link no one else can write to. Then DANE (RFC 7672)
    /// applies to every domain delivered to directly: a host with DNSSEC-signed TLSA records
    /// gets mail only over TLS that matches them. Empty: the system's (`/etc/resolv.conf`),
    /// and no DANE (`dane` policies are refused).
    pub resolver: String,
    /// With `route = "direct"`: the port of every recipient's mail server. 25 is what MX
    /// records mean; anything else is a test or lab setting (an MX record names no port).
    pub direct_port: u16,
    /// With `route = "direct"`: the HTTPS port of `mta-sts.DOMAIN`. 443 is what RFC 8461
    /// says; anything else is a test or lab setting.
    pub mta_sts_port: u16,
    /// With `route = "direct"`: look up every recipient domain's MTA-STS policy and obey an
    /// `enforce` one (RFC 8461), not only for the domains in `tls`.
    pub mta_sts: bool,
    /// Most recipient domains delivered to at the same time: a slow or unreachable domain
    /// holds one of these, never the others' mail.
    pub parallel_domains: usize,
    /// Per-domain TLS policy for direct delivery: each entry's domain is sent to only over TLS
    /// authenticated as its `policy` says, or not at all (the recipient fails with the reason).
    /// `dane` needs `resolver` (DNSSEC-signed TLSA records for every MX host, RFC 7672).
    pub tls: Vec<DomainTls>,
}

/// How the node sends outside mail.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RelayRoute {
    Relay,
    Direct,
}

pub use crate::storage::notify::TlsPolicy;

/// A domain whose mail goes only over authenticated TLS (`[[relay.tls]]`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DomainTls {
    pub domain: String,
    pub policy: TlsPolicy,
}

/// How the node's connection to the mail relay is protected.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RelaySecurity {
    Starttls,
    Tls,
    None,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            host: String::new(),
            port: 587,
            security: RelaySecurity::Starttls,
            ca_file: String::new(),
            username: String::new(),
            password_file: String::new(),
            password_env: String::new(),
            helo_name: String::new(),
            from: String::new(),
            connect_timeout_secs: 30,
            command_timeout_secs: 60,
            retry_base_secs: 60,
            retry_max_secs: 3600,
            give_up_after_secs: 4 * 24 * 3600,
            max_queued: 10_000,
            batch_max: 100,
            route: RelayRoute::Relay,
            resolver: String::new(),
            direct_port: 25,
            mta_sts_port: 443,
            mta_sts: true,
            parallel_domains: 16,
            tls: Vec::new(),
        }
    }
}

impl RelayConfig {
    /// Whether outside mail can be sent at all: through a relay, or directly.
    pub fn is_configured(&self) -> bool {
        !self.host.is_empty() || self.route == RelayRoute::Direct
    }

    /// The TLS policy the admin set for `domain` (ASCII case-insensitive), if any.
    pub fn tls_policy(&self, domain: &str) -> Option<TlsPolicy> {
        self.tls
            .iter()
            .find(|t| t.domain.eq_ignore_ascii_case(domain))
            .map(|t| t.policy)
    }

    /// `resolver` as a socket address (port 53 when it names none); `None` when empty.
    pub fn resolver_addr(&self) -> Option<std::net::SocketAddr> {
        let r = self.resolver.trim();
        if r.is_empty() {
            return None;
        }
        r.parse::<std::net::SocketAddr>().ok().or_else(|| {
            unbracketed(r)
                .parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| std::net::SocketAddr::new(ip, 53))
        })
    }

    /// Whether `host` names this machine: `localhost` or a loopback address.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || unbracketed(&self.host)
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(format!("relay.{m}")));
        if !self.resolver.is_empty() && self.resolver_addr().is_none() {
            return bad("resolver must be an IP address, optionally with a port (127.0.0.1:53)");
        }
        if self.direct_port == 0 || self.mta_sts_port == 0 {
            return bad("direct_port and mta_sts_port must be 1 to 65535");
        }
        if !(1..=256).contains(&self.parallel_domains) {
            return bad("parallel_domains must be 1 to 256");
        }
        for t in &self.tls {
            if !is_valid_host(&t.domain) || t.domain.parse::<std::net::IpAddr>().is_ok() {
                return bad("tls: each domain must be a lowercase domain name");
            }
            if t.policy == TlsPolicy::Dane && self.resolver.is_empty() {
                return bad(&format!(
                    "tls: policy \"dane\" for {} needs relay.resolver (a validating resolver on loopback or a trusted link: its AD bit is trusted)",
                    t.domain
                ));
            }
        }
        if !self.host.is_empty() && !is_valid_host(&self.host) {
            return bad("host must be a lowercase host name or an IP address");
        }
        if self.port == 0 {
            return bad("port must be 1 to 65535");
        }
        if self.security == RelaySecurity::None && self.is_configured() && !self.is_loopback() {
            return bad(
                "security = \"none\" is only allowed for a relay on this machine (localhost or a loopback address)",
            );
        }
        let passwords = [&self.password_file, &self.password_env]
            .iter()
            .filter(|p| !p.is_empty())
            .count();
        if self.username.is_empty() != (passwords == 0) || passwords > 1 {
            return bad(
                "username needs exactly one of password_file and password_env, and they need a username",
            );
        }
        if !self.username.is_empty() && self.security == RelaySecurity::None {
            return bad("username: a login is only sent over TLS (security starttls or tls)");
        }
        if self.username.contains(['\r', '\n', '\0']) {
            return bad("username must be one line");
        }
        if self.password_env.starts_with("SEALPOST__") {
            return bad(
                "password_env must not start with SEALPOST__ (that prefix overrides configuration keys)",
            );
        }
        if !self.helo_name.is_empty() && !is_valid_host(&self.helo_name) {
            return bad("helo_name must be a lowercase host name");
        }
        if !self.from.is_empty()
            && crate::normalize_address(&self.from).as_deref() != Some(&self.from)
        {
            return bad("from must be a lowercase address such as no-reply@example.org");
        }
        if !(1..=3600).contains(&self.connect_timeout_secs)
            || !(1..=3600).contains(&self.command_timeout_secs)
        {
            return bad("connect_timeout_secs and command_timeout_secs must be 1 to 3600");
        }
        if self.retry_base_secs == 0
            || self.retry_max_secs < self.retry_base_secs
            || self.give_up_after_secs < self.retry_base_secs
            || self.give_up_after_secs > 30 * 24 * 3600
        {
            return bad(
                "retry_base_secs must be at least 1 and at most retry_max_secs and give_up_after_secs, which must be at most 2592000 (30 days)",
            );
        }
        if self.max_queued == 0 || !(1..=1000).contains(&self.batch_max) {
            return bad("max_queued must be at least 1, and batch_max 1 to 1000");
        }
        Ok(())
    }
}

impl WebConfig {
    /// The directory of the built app: `dir`, or the default where it is empty (as in the
    /// configurations `init` wrote when an empty `dir` meant the build machine's source tree).
    pub fn app_dir(&self) -> PathBuf {
        PathBuf::from(match self.dir.as_str() {
            "" => DEFAULT_WEB_DIR,
            dir => dir,
        })
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// Whether a recipient whose key is only partially authenticated (some trust, less than
    /// full) may be written to. Clients learn this from the organisation record.
    pub accept_partial: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address the HTTP API and web app listen on. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Largest JSON request body in bytes (uploads of ciphertext have their own limit).
    pub max_json_body: usize,
    /// Requests per second allowed from one client address to the login, enrolment and
    /// login-parameter routes (the guessable ones), with a burst of ten times that.
    pub auth_rate_per_sec: u32,
    /// Seconds a client has to send a request's complete head (request line and headers),
    /// counted from when the connection is ready for it: from its opening, and on a kept-alive
    /// connection from the end of the previous answer. So it is also how long an idle
    /// kept-alive connection stays open.
    pub header_read_timeout_secs: u64,
    /// Seconds without a byte moving either way after which a connection in the middle of a
    /// request (a stalled upload, a client that stopped reading its answer) is closed.
    pub idle_timeout_secs: u64,
    /// Connections served at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Connections served at once from one client address (IPv6: one /64); more are closed as
    /// soon as they are accepted. Behind a reverse proxy or a NAT every client has the same
    /// address: raise it there, as the proxy limits its clients.
    pub max_connections_per_ip: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_json_body: 1024 * 1024,
            auth_rate_per_sec: 5,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections: 4096,
            max_connections_per_ip: 64,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest message (all encrypted parts together) in bytes.
    pub max_message_bytes: u64,
    /// Largest number of parts (the sealed head plus one per attachment).
    pub max_parts: usize,
    /// Largest number of recipients of one message.
    pub max_recipients: usize,
    /// Parts up to this size may travel inside the submit request and are kept in the
    /// database; larger parts are uploaded as streams and kept as files.
    pub inline_part_max_bytes: usize,
    /// Seconds a message ID issued by an envelope request stays valid for submission; uploads
    /// not used by a submitted message within this time are deleted.
    pub message_id_ttl_secs: u64,
    /// Most bytes one account may have uploaded but not yet submitted.
    pub max_pending_upload_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 256 * 1024 * 1024,
            max_parts: 64,
            max_recipients: 100,
            inline_part_max_bytes: 256 * 1024,
            message_id_ttl_secs: 24 * 3600,
            max_pending_upload_bytes: 512 * 1024 * 1024,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AccountsConfig {
    /// Seconds an invite code stays valid.
    pub invite_ttl_secs: u64,
    /// Seconds a login session stays valid.
    pub session_ttl_secs: u64,
    /// Failed logins in a row that one source may make before each further attempt must wait.
    /// A source is a device that logged in to the account before (it holds a device token),
    /// or all other sources of the address together. Nothing is ever locked.
    pub max_failed_logins: u32,
    /// Seconds the first wait lasts; it doubles with each further failure.
    pub login_delay_secs: u64,
    /// Longest wait in seconds between attempts of one source. (Read from the former
    /// `lockout_secs` too.)
    #[serde(alias = "lockout_secs")]
    pub login_max_delay_secs: u64,
    /// Seconds a device token (set at a successful login: a cookie in the browser, a file of
    /// the CLI client) marks its device as known to the account.
    pub device_ttl_secs: u64,
    /// Argon2id memory (KiB) for the node's slow hash of login verifiers.
    pub verifier_hash_m_cost_kib: u32,
    /// Argon2id passes for the node's slow hash of login verifiers.
    pub verifier_hash_t_cost: u32,
    /// The organisation's login KDF (Argon2id of the clients, `KdfParams`), published in
    /// `GET /api/v1/org` as `kdf`. Clients derive pickup unlock codes with it (docs/pickup.md),
    /// so an outsider's phone unlocks in about the time a login takes. Unset: clients use
    /// their default (64 MiB, 3 passes, 1 lane).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_kdf: Option<sealpost_proto::KdfParams>,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        AccountsConfig {
            invite_ttl_secs: 7 * 24 * 3600,
            session_ttl_secs: 12 * 3600,
            max_failed_logins: 5,
            login_delay_secs: 1,
            login_max_delay_secs: 15 * 60,
            device_ttl_secs: 90 * 24 * 3600,
            verifier_hash_m_cost_kib: 19 * 1024,
            verifier_hash_t_cost: 2,
            login_kdf: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Most write operations grouped into one SQLite commit.
    pub group_commit_max: usize,
    /// Under load, how long (microseconds) the writer waits for more operations to share a
    /// commit; 0 commits whatever is queued at once.
    pub group_commit_window_us: u64,
    /// Write operations that may wait for the writer before callers get `overloaded`.
    pub write_queue: usize,
    /// `/readyz` says `not ready` (check `disk`) when the data disk has fewer free bytes
    /// than this...
    pub ready_min_free_bytes: u64,
    /// ...or less than this percentage of its size free (0 to 50).
    pub ready_min_free_percent: u8,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            group_commit_max: 512,
            group_commit_window_us: 1000,
            write_queue: 4096,
            ready_min_free_bytes: 256 * 1024 * 1024,
            ready_min_free_percent: 1,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A signed checkpoint is written after this many transaction-log entries.
    pub checkpoint_every: u64,
    /// ... and at least this often (seconds) while there are unsigned entries.
    pub checkpoint_interval_secs: u64,
    /// How `sealpost serve` writes its diagnostics to stderr: `text`, or `json` (one object
    /// a line, for log collectors; `--log-json` asks for it too).
    pub format: LogFormat,
}

/// The format of the node's diagnostics (`[log] format`).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            checkpoint_every: 1000,
            checkpoint_interval_secs: 60,
            format: LogFormat::Text,
        }
    }
}

impl Config {
    /// The configuration `init` writes for a new organisation.
    pub fn new(domain: &str) -> Config {
        Config {
            domain: domain.to_ascii_lowercase(),
            http: HttpConfig::default(),
            limits: Limits::default(),
            accounts: AccountsConfig::default(),
            storage: StorageConfig::default(),
            log: LogConfig::default(),
            trust: TrustConfig::default(),
            federation: FederationConfig::default(),
            web: WebConfig::default(),
            relay: RelayConfig::default(),
            pickup: PickupConfig::default(),
            delivery: DeliveryConfig::default(),
            smtp_in: SmtpInConfig::default(),
            submission: SubmissionConfig::default(),
            compliance: ComplianceConfig::default(),
            smime: None,
            timestamping: None,
            metrics: None,
        }
    }

    /// Loads `DATA/sealpost.toml`, applies `SEALPOST__*` environment overrides, validates.
    pub fn load(data_dir: &Path) -> Result<Config, ConfigError> {
        let path = Paths::new(data_dir).config();
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::from_toml_with_env(&text, &path, std::env::vars())
    }

    /// Parses TOML text and applies overrides from `env` (separate from `load` so tests can
    /// pass their own environment).
    pub fn from_toml_with_env(
        text: &str,
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let parse_err = |e: toml::de::Error| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let mut value: toml::Table = toml::from_str(text).map_err(parse_err)?;
        for (name, raw) in env {
            let Some(rest) = name.strip_prefix("SEALPOST__") else {
                continue;
            };
            let keys: Vec<String> = rest.split("__").map(|k| k.to_ascii_lowercase()).collect();
            if keys.iter().any(|k| k.is_empty()) {
                return Err(ConfigError::Env {
                    name,
                    message: "empty key segment".into(),
                });
            }
            set_path(&mut value, &keys, parse_env_value(&raw));
        }
        let config: Config = toml::Table::try_into(value).map_err(parse_err)?;
        config.validate()?;
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config always serialises")
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if !is_valid_domain(&self.domain) {
            return bad("domain must be a lowercase DNS name such as example.org");
        }
        if self.limits.max_message_bytes < 1024 * 1024 {
            return bad("limits.max_message_bytes must be at least 1 MiB");
        }
        if self.limits.max_pending_upload_bytes < self.limits.max_message_bytes {
            return bad(
                "limits.max_pending_upload_bytes must be at least limits.max_message_bytes",
            );
        }
        if self.limits.max_parts == 0 || self.limits.max_parts > 1024 {
            return bad("limits.max_parts must be between 1 and 1024");
        }
        if self.limits.max_recipients == 0 || self.limits.max_recipients > 10_000 {
            return bad("limits.max_recipients must be between 1 and 10000");
        }
        if self.limits.inline_part_max_bytes > 16 * 1024 * 1024 {
            return bad("limits.inline_part_max_bytes must be at most 16 MiB");
        }
        if self.http.max_json_body < 64 * 1024 {
            return bad("http.max_json_body must be at least 64 KiB");
        }
        if (self.limits.inline_part_max_bytes as u64 * 4 / 3) + 64 * 1024
            > (self.http.max_json_body as u64).saturating_mul(self.limits.max_parts as u64)
        {
            return bad("http.max_json_body is too small for limits.inline_part_max_bytes");
        }
        if self.http.auth_rate_per_sec == 0 {
            return bad("http.auth_rate_per_sec must be at least 1");
        }
        if !(1..=3600).contains(&self.http.header_read_timeout_secs)
            || !(1..=3600).contains(&self.http.idle_timeout_secs)
        {
            return bad("http.header_read_timeout_secs and idle_timeout_secs must be 1 to 3600");
        }
        if self.http.max_connections == 0
            || !(1..=self.http.max_connections).contains(&self.http.max_connections_per_ip)
        {
            return bad(
                "http.max_connections must be at least 1, and max_connections_per_ip 1 to max_connections",
            );
        }
        if self.accounts.max_failed_logins == 0 {
            return bad("accounts.max_failed_logins must be at least 1");
        }
        let a = &self.accounts;
        if a.login_delay_secs == 0
            || a.login_max_delay_secs < a.login_delay_secs
            || a.login_max_delay_secs > 24 * 3600
        {
            return bad(
                "accounts.login_delay_secs must be at least 1 and at most login_max_delay_secs, which must be at most 86400",
            );
        }
        if a.device_ttl_secs < 3600 {
            return bad("accounts.device_ttl_secs must be at least 3600");
        }
        if self.accounts.session_ttl_secs < 60 || self.accounts.invite_ttl_secs < 60 {
            return bad("accounts.session_ttl_secs and invite_ttl_secs must be at least 60");
        }
        if self.accounts.verifier_hash_m_cost_kib < 8 * 1024
            || self.accounts.verifier_hash_t_cost == 0
        {
            return bad("accounts.verifier_hash_* are below Argon2id's safe minimum");
        }
        if let Some(kdf) = &self.accounts.login_kdf
            && let Err(e) = kdf.validate()
        {
            return Err(ConfigError::Invalid(format!("accounts.login_kdf: {e}")));
        }
        if self.storage.group_commit_max == 0 || self.storage.write_queue == 0 {
            return bad("storage.group_commit_max and storage.write_queue must be at least 1");
        }
        if self.storage.ready_min_free_percent > 50 {
            return bad("storage.ready_min_free_percent must be 0 to 50");
        }
        if let Some(m) = &self.metrics
            && m.listen == self.http.listen
            && m.listen.port() != 0
        {
            return bad("metrics.listen must differ from http.listen");
        }
        if self.storage.group_commit_window_us > 100_000 {
            return bad("storage.group_commit_window_us must be at most 100000 (0.1 s)");
        }
        if self.log.checkpoint_every == 0 || self.log.checkpoint_interval_secs == 0 {
            return bad("log.checkpoint_every and log.checkpoint_interval_secs must be at least 1");
        }
        let f = &self.federation;
        if f.enabled && f.listen.is_empty() {
            return bad("federation.listen needs at least one address when federation is enabled");
        }
        for a in f.listen.iter().chain(&f.announce) {
            if !a.starts_with('/') || !a.contains("/udp/") || !a.contains("/quic-v1") {
                return Err(ConfigError::Invalid(format!(
                    "federation address {a:?} is not a QUIC multiaddress such as /ip4/0.0.0.0/udp/8443/quic-v1"
                )));
            }
        }
        if f.delivery_expiry_secs == 0
            || f.sweep_interval_secs == 0
            || f.lookup_timeout_secs == 0
            || f.max_backlog_per_peer == 0
        {
            return bad(
                "federation.delivery_expiry_secs, max_backlog_per_peer, sweep_interval_secs and lookup_timeout_secs must be at least 1",
            );
        }
        if !(1..=1024).contains(&f.outbound_streams_per_peer)
            || !(1..=1024).contains(&f.inbound_streams_per_peer)
        {
            return bad(
                "federation.outbound_streams_per_peer and inbound_streams_per_peer must be 1 to 1024",
            );
        }
        if !matches!(
            self.web.secure_cookies.as_str(),
            "auto" | "always" | "never"
        ) {
            return bad("web.secure_cookies must be auto, always or never");
        }
        let u = &self.web.public_url;
        if !u.is_empty()
            && (!(u.starts_with("https://") || u.starts_with("http://"))
                || u.ends_with('/')
                || u.len() > 200
                || !u.bytes().all(|b| b.is_ascii_graphic())
                || u.bytes().any(|b| b"\"'<>\\`{}|^#?".contains(&b)))
        {
            return bad(
                "web.public_url must be an http(s) URL without a trailing slash, query or fragment, such as https://mail.example.org",
            );
        }
        self.delivery.validate(&self.domain)?;
        let p = &self.pickup;
        if p.default_expiry_days == 0
            || p.max_expiry_days < p.default_expiry_days
            || p.max_expiry_days > 3650
        {
            return bad(
                "pickup.default_expiry_days must be at least 1 and at most max_expiry_days, which must be at most 3650",
            );
        }
        if !(1..=100).contains(&p.max_wrong) || p.per_ip_per_minute == 0 {
            return bad("pickup.max_wrong must be 1 to 100, and per_ip_per_minute at least 1");
        }
        if !(60..=24 * 3600).contains(&p.session_ttl_secs) {
            return bad("pickup.session_ttl_secs must be 60 to 86400");
        }
        self.relay.validate()?;
        self.smtp_in.validate()?;
        self.submission.validate()?;
        if let Some(smime) = &self.smime {
            smime.validate()?;
        }
        if let Some(t) = &self.timestamping {
            t.validate()?;
        }
        // Enforced TLS is checked end to end with the recipient's server: only when the node
        // delivers itself, never through a relay.
        if let Some(p) = self.delivery.pins.iter().find(|p| p.tls.is_some())
            && self.relay.route != RelayRoute::Direct
        {
            return bad(&format!(
                "delivery.pin for {}: mode = \"tls\" needs relay.route = \"direct\" (a relay cannot show the recipient's server's certificate)",
                p.domain
            ));
        }
        if let Some(p) = self
            .delivery
            .pins
            .iter()
            .find(|p| p.tls == Some(TlsPolicy::Dane))
            && self.relay.resolver.is_empty()
        {
            return bad(&format!(
                "delivery.pin for {}: tls = \"dane\" needs relay.resolver (a validating resolver on loopback or a trusted link: its AD bit is trusted)",
                p.domain
            ));
        }
        Ok(())
    }
}

/// Every file and directory the node uses, derived from the data directory.
#[derive(Clone, Debug)]
pub struct Paths {
    root: PathBuf,
}

impl Paths {
    pub fn new(root: &Path) -> Paths {
        Paths {
            root: root.to_owned(),
        }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn config(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }
    pub fn database(&self) -> PathBuf {
        self.root.join("sealpost.db")
    }
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }
    pub fn keys(&self) -> PathBuf {
        self.root.join("keys")
    }
    /// The local admin socket (`admin_socket`), in a directory only the node's user enters.
    pub fn admin_socket(&self) -> PathBuf {
        self.root.join("run").join("admin.sock")
    }
    /// The node's transit key for enforced-TLS copies (an OpenPGP secret key, mode 0600).
    pub fn transit_key(&self) -> PathBuf {
        self.keys().join("transit.tsk.asc")
    }
    /// The organisation CA's secret key (armored TSK, mode 0600).
    pub fn ca_key(&self) -> PathBuf {
        self.keys().join("ca.tsk.asc")
    }
    /// The node's Ed25519 identity (32 raw secret bytes, mode 0600).
    pub fn node_key(&self) -> PathBuf {
        self.keys().join("node.ed25519")
    }
    /// The federation addresses the node last listened on (one multiaddress a line), reused
    /// when the configured port is 0.
    pub fn federation_listen(&self) -> PathBuf {
        self.root.join("federation-listen")
    }
}

/// A host name (lowercase labels of letters, digits and hyphens; one label is enough) or an IP
/// address (IPv6 in brackets or bare).
pub fn is_valid_host(h: &str) -> bool {
    unbracketed(h).parse::<std::net::IpAddr>().is_ok() || sealpost_proto::is_host_name(h)
}

/// An IPv6 literal without its brackets; anything else as it is.
pub fn unbracketed(h: &str) -> &str {
    h.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(h)
}

fn parse_env_value(raw: &str) -> toml::Value {
    // `KEY=5` should be an integer and `KEY=true` a boolean, but `KEY=127.0.0.1:80` a string:
    // parse as a TOML value and fall back to the raw string.
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn set_path(table: &mut toml::Table, keys: &[String], value: toml::Value) {
    let (last, parents) = keys.split_last().expect("at least one key");
    let mut cur = table;
    for k in parents {
        let entry = cur
            .entry(k.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        cur = entry.as_table_mut().expect("just made a table");
    }
    cur.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_toml_with_env(
            text,
            Path::new("t.toml"),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn compliance_retention_is_ten_years_by_default_and_zero_keeps_copies_forever() {
        let default = Config::new("example.org");
        assert_eq!(default.compliance.retention_days, 3650);
        assert_eq!(default.compliance.retention_secs(), Some(3650 * 86_400));
        let forever = ComplianceConfig {
            retention_days: 0,
            ..ComplianceConfig::default()
        };
        assert_eq!(forever.retention_secs(), None);
        let parsed: ComplianceConfig = toml::from_str("retention_days = 30").unwrap();
        assert_eq!(parsed.retention_secs(), Some(30 * 86_400));
        assert!(parsed.required, "required keeps its default");
    }

    #[test]
    fn example_config_parses_to_the_defaults_and_documents_every_key() {
        let example = load(EXAMPLE, &[]).unwrap();
        assert_eq!(example, Config::new("example.org"));
        // Every key of the serialised defaults appears, commented, in the example.
        let defaults: toml::Table = toml::from_str(&Config::new("example.org").to_toml()).unwrap();
        for (section, v) in &defaults {
            match v {
                toml::Value::Table(t) => {
                    assert!(EXAMPLE.contains(&format!("[{section}]")), "[{section}]");
                    for key in t.keys() {
                        let line = EXAMPLE
                            .lines()
                            .position(|l| l.starts_with(&format!("{key} =")))
                            .unwrap_or_else(|| panic!("{section}.{key} missing from example"));
                        let above = EXAMPLE.lines().nth(line - 1).unwrap();
                        assert!(above.starts_with('#'), "{section}.{key} is not documented");
                    }
                }
                _ => assert!(EXAMPLE.contains(&format!("{section} =")), "{section}"),
            }
        }
    }

    #[test]
    fn login_kdf_is_optional_validated_and_set_from_the_environment() {
        assert_eq!(
            load("domain = \"a.test\"", &[]).unwrap().accounts.login_kdf,
            None
        );
        let c = load(
            "domain = \"a.test\"",
            &[
                ("SEALPOST__ACCOUNTS__LOGIN_KDF__M_COST_KIB", "8192"),
                ("SEALPOST__ACCOUNTS__LOGIN_KDF__T_COST", "1"),
                ("SEALPOST__ACCOUNTS__LOGIN_KDF__P_COST", "1"),
            ],
        )
        .unwrap();
        assert_eq!(c.accounts.login_kdf, Some(sealpost_proto::KdfParams::MIN));
        let weak = "domain = \"a.test\"\n[accounts]\nlogin_kdf = { m_cost_kib = 1024, t_cost = 1, p_cost = 1 }";
        assert!(
            load(weak, &[]).is_err(),
            "below KdfParams::validate is refused at start"
        );
    }

    #[test]
    fn smime_is_off_unless_configured_and_its_fields_are_checked() {
        assert_eq!(load("domain = \"a.test\"", &[]).unwrap().smime, None);
        let c = load(
            "domain = \"a.test\"\n[smime]\nca_cert = \"/etc/ca.pem\"\nca_key = \"/etc/ca.key\"",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.smime,
            Some(SmimeConfig {
                ca_cert: "/etc/ca.pem".into(),
                ca_key: "/etc/ca.key".into(),
                cert_days: 365,
            })
        );
        for bad in [
            "[smime]\nca_cert = \"/etc/ca.pem\"\nca_key = \"\"",
            "[smime]\nca_cert = \"/etc/ca.pem\"\nca_key = \"/k\"\ncert_days = 0",
            "[smime]\nca_cert = \"/etc/ca.pem\"\nca_key = \"/k\"\ncert_days = 826",
            "[smime]\nca_cert = \"/etc/ca.pem\"\nca_key = \"/k\"\nsurprise = 1",
        ] {
            assert!(
                load(&format!("domain = \"a.test\"\n{bad}"), &[]).is_err(),
                "{bad}"
            );
        }
        // The example documents the section (commented: off by default).
        for key in ["[smime]", "ca_cert =", "ca_key =", "cert_days ="] {
            assert!(EXAMPLE.contains(&format!("# {key}")), "{key}");
        }
    }

    #[test]
    fn timestamping_is_off_unless_configured_and_its_fields_are_checked() {
        assert_eq!(load("domain = \"a.test\"", &[]).unwrap().timestamping, None);
        let c = load(
            "domain = \"a.test\"\n[timestamping]\nurl = \"https://tsa.test/tsr\"\nca_file = \"/etc/tsa-ca.pem\"",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.timestamping,
            Some(TimestampingConfig {
                url: "https://tsa.test/tsr".into(),
                ca_file: "/etc/tsa-ca.pem".into(),
                timeout_secs: 30,
            })
        );
        for bad in [
            "url = \"ftp://tsa.test/\"\nca_file = \"/c\"",
            "url = \"not a url\"\nca_file = \"/c\"",
            "url = \"https://u:p@tsa.test/\"\nca_file = \"/c\"",
            "url = \"https://tsa.test/\"\nca_file = \"\"",
            "url = \"https://tsa.test/\"\nca_file = \"/c\"\ntimeout_secs = 0",
            "url = \"https://tsa.test/\"\nca_file = \"/c\"\ntimeout_secs = 301",
        ] {
            let text = format!("domain = \"a.test\"\n[timestamping]\n{bad}");
            assert!(
                matches!(load(&text, &[]), Err(ConfigError::Timestamping(_))),
                "{bad}"
            );
        }
        assert!(
            load(
                "domain = \"a.test\"\n[timestamping]\nurl = \"https://tsa.test/\"\nca_file = \"/c\"\nsurprise = 1",
                &[]
            )
            .is_err()
        );
        // The example documents the section (commented: off by default).
        for key in ["[timestamping]", "url =", "ca_file =", "timeout_secs ="] {
            assert!(EXAMPLE.contains(&format!("# {key}")), "{key}");
        }
    }

    #[test]
    fn environment_overrides_typed_values() {
        let c = load(
            "domain = \"a.test\"",
            &[
                ("SEALPOST__HTTP__LISTEN", "127.0.0.1:0"),
                ("SEALPOST__LIMITS__MAX_PARTS", "7"),
                ("SEALPOST_PASSWORD", "not config"),
            ],
        )
        .unwrap();
        assert_eq!(c.http.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(c.limits.max_parts, 7);
    }

    #[test]
    fn invalid_values_are_refused_with_the_key_named() {
        for (text, env, needle) in [
            ("domain = \"Not A Domain\"", vec![], "domain"),
            ("domain = \"a.test\"\nbogus = 1", vec![], "bogus"),
            (
                "domain = \"a.test\"",
                vec![("SEALPOST__LIMITS__MAX_PARTS", "0")],
                "max_parts",
            ),
            (
                "domain = \"a.test\"",
                vec![("SEALPOST__HTTP__LISTEN", "nope")],
                "listen",
            ),
            (
                "domain = \"a.test\"",
                vec![("SEALPOST__HTTP__HEADER_READ_TIMEOUT_SECS", "0")],
                "header_read_timeout_secs",
            ),
            (
                "domain = \"a.test\"",
                vec![("SEALPOST__HTTP__MAX_CONNECTIONS_PER_IP", "5000")],
                "max_connections_per_ip",
            ),
        ] {
            let err = load(text, &env).unwrap_err().to_string();
            assert!(err.contains(needle), "{err} should name {needle}");
        }
    }

    /// `[delivery]` policy: what `validate` refuses, naming the key, and a pin file that works.
    #[test]
    fn the_delivery_policy_is_validated() {
        let bad = [
            ("order = []", "order must name"),
            ("order = [\"tls\", \"pickup\"]", "not tls"),
            ("order = [\"local\"]", "not local"),
            ("order = [\"openpgp\", \"openpgp\"]", "twice"),
            (
                "trusted_sources = [\"wkd\", \"wkd\"]",
                "trusted_sources names wkd twice",
            ),
            ("trusted_sources = [\"dns\"]", "unknown variant"),
            (
                "[[delivery.pin]]\ndomain = \"Bank.test\"\nmode = \"smime\"",
                "lowercase",
            ),
            (
                "[[delivery.pin]]\ndomain = \"a.test\"\nmode = \"smime\"",
                "own domain",
            ),
            (
                "[[delivery.pin]]\ndomain = \"b.test\"\nmode = \"tls\"",
                "tls (mta-sts",
            ),
            (
                "[[delivery.pin]]\ndomain = \"b.test\"\nmode = \"smime\"\ntls = \"dane\"",
                "allowed only with it",
            ),
            (
                "[[delivery.pin]]\ndomain = \"b.test\"\nmode = \"remote\"",
                "mode must be",
            ),
            (
                "[[delivery.pin]]\ndomain = \"b.test\"\nmode = \"smime\"\n\
                 [[delivery.pin]]\ndomain = \"b.test\"\nmode = \"openpgp\"",
                "pinned twice",
            ),
        ];
        for (section, needle) in bad {
            let section = if section.starts_with("[[") {
                section.to_owned()
            } else {
                format!("[delivery]\n{section}")
            };
            let err = load(&format!("domain = \"a.test\"\n{section}\n"), &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{section}: {err} should say {needle}");
        }
        let tls_pin =
            "[[delivery.pin]]\ndomain = \"bank.test\"\nmode = \"tls\"\ntls = \"mta-sts\"\n";
        // Enforced TLS is checked end to end: only with direct delivery, never via a relay.
        let err = load(&format!("domain = \"a.test\"\n{tls_pin}"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs relay.route = \"direct\""), "{err}");
        let c = load(
            &format!("domain = \"a.test\"\n[relay]\nroute = \"direct\"\n{tls_pin}"),
            &[],
        )
        .unwrap();
        let pin = c.delivery.pin("bank.test").unwrap();
        assert_eq!(
            (pin.mode, pin.tls),
            (sealpost_proto::DeliveryMode::Tls, Some(TlsPolicy::MtaSts))
        );
        assert!(c.delivery.pin("mail.bank.test").is_none());
        // DANE needs a validating resolver, named.
        let dane_pin = "[[delivery.pin]]\ndomain = \"bank.test\"\nmode = \"tls\"\ntls = \"dane\"\n";
        let direct = "[relay]\nroute = \"direct\"\n";
        let err = load(&format!("domain = \"a.test\"\n{direct}{dane_pin}"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("tls = \"dane\" needs relay.resolver"), "{err}");
        let err = load(
            &format!(
                "domain = \"a.test\"\n{direct}[[relay.tls]]\ndomain = \"bank.test\"\npolicy = \"dane\"\n"
            ),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("policy \"dane\" for bank.test needs relay.resolver"),
            "{err}"
        );
        let c = load(
            &format!(
                "domain = \"a.test\"\n{direct}resolver = \"127.0.0.1:53\"\n\
                 [[relay.tls]]\ndomain = \"bank.test\"\npolicy = \"dane\"\n{dane_pin}"
            ),
            &[],
        )
        .unwrap();
        assert_eq!(c.relay.tls_policy("bank.test"), Some(TlsPolicy::Dane));
        assert_eq!(
            c.delivery.pin("bank.test").unwrap().tls,
            Some(TlsPolicy::Dane)
        );
    }

    /// Found while writing the `config` fuzz target (its input is
    /// `fuzz/corpus/config/overflow-max-json-body.toml`): `http.max_json_body` × `limits.max_parts`
    /// was a plain multiplication, which panicked on overflow in a debug build (and wrapped in a
    /// release build) for a large `max_json_body`, from the file or from
    /// `SEALPOST__HTTP__MAX_JSON_BODY`.
    #[test]
    fn a_huge_max_json_body_does_not_overflow_validation() {
        let huge = i64::MAX.to_string();
        let text = format!("domain = \"a.test\"\n[http]\nmax_json_body = {huge}\n");
        assert!(load(&text, &[]).is_ok());
        let from_env = load(
            "domain = \"a.test\"\n",
            &[("SEALPOST__HTTP__MAX_JSON_BODY", huge.as_str())],
        );
        assert!(from_env.is_ok());
    }

    #[test]
    fn relay_settings_are_checked() {
        let base = "domain = \"a.test\"\n[relay]\n";
        for (extra, ok) in [
            ("", true),
            ("host = \"mail.a.test\"", true),
            ("host = \"relay\"\nport = 465\nsecurity = \"tls\"", true),
            ("host = \"Mail.A.test\"", false),
            ("host = \"mail.a.test\"\nport = 0", false),
            ("host = \"mail.a.test\"\nsecurity = \"plain\"", false),
            // Plain SMTP only to this machine.
            ("host = \"mail.a.test\"\nsecurity = \"none\"", false),
            ("host = \"10.0.0.1\"\nsecurity = \"none\"", false),
            ("host = \"localhost\"\nsecurity = \"none\"", true),
            ("host = \"127.0.0.1\"\nsecurity = \"none\"", true),
            ("host = \"::1\"\nsecurity = \"none\"", true),
            // A login needs exactly one password source, and TLS.
            ("host = \"m.a.test\"\nusername = \"n\"", false),
            (
                "host = \"m.a.test\"\nusername = \"n\"\npassword_file = \"/p\"",
                true,
            ),
            (
                "host = \"m.a.test\"\nusername = \"n\"\npassword_env = \"RELAY_PW\"",
                true,
            ),
            (
                "host = \"m.a.test\"\nusername = \"n\"\npassword_env = \"P\"\npassword_file = \"/p\"",
                false,
            ),
            ("host = \"m.a.test\"\npassword_file = \"/p\"", false),
            (
                "host = \"localhost\"\nsecurity = \"none\"\nusername = \"n\"\npassword_file = \"/p\"",
                false,
            ),
            (
                "host = \"m.a.test\"\nusername = \"n\"\npassword_env = \"SEALPOST__RELAY__PW\"",
                false,
            ),
            ("from = \"Notify <n@a.test>\"", false),
            ("from = \"notify@a.test\"", true),
            ("helo_name = \"a b\"", false),
            ("retry_base_secs = 0", false),
            ("retry_max_secs = 1", false),
            ("give_up_after_secs = 99999999", false),
            ("max_queued = 0", false),
            ("batch_max = 0", false),
            ("command_timeout_secs = 0", false),
        ] {
            let result = load(&format!("{base}{extra}\n"), &[]);
            assert_eq!(result.is_ok(), ok, "{extra}: {result:?}");
            if let Err(e) = result {
                assert!(
                    e.to_string().contains("relay"),
                    "{e} should name the section"
                );
            }
        }
    }

    /// The web app's directory is never where this binary was built: the default is relative
    /// (to where the node starts), and so is an empty `dir`, which older `init`s wrote.
    #[test]
    fn the_web_directory_is_relative_by_default() {
        let written_by_an_older_init = "domain = \"a.test\"\n[web]\ndir = \"\"\n";
        for config in [
            Config::new("a.test"),
            load(written_by_an_older_init, &[]).unwrap(),
        ] {
            assert_eq!(config.web.app_dir(), PathBuf::from("webui/dist"));
        }
        let set = load(
            "domain = \"a.test\"\n",
            &[("SEALPOST__WEB__DIR", "/srv/web")],
        )
        .unwrap();
        assert_eq!(set.web.app_dir(), PathBuf::from("/srv/web"));
    }
}
