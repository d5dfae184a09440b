//! What the service layer's operations need of a running node: its configuration, storage,
//! organisation identity, trust view and federation link, and the caches of parsed
//! certificates. The HTTP API's state holds one (and dereferences to it); the federation host
//! holds one. Nothing in it knows HTTP, the command line or libp2p.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use sequoia_openpgp::Cert;
use sequoia_openpgp::policy::StandardPolicy;

use super::ServiceError;
use crate::config::Config;
use crate::memo::Memo;
use crate::storage::{Account, BlobStore, MetaStore};

/// What the service layer needs from the running federation driver, as a trait so that no
/// door but the federation module depends on libp2p (`federation/link.rs` implements it).
#[async_trait]
pub trait FedLink: Send + Sync + 'static {
    /// This node's peer ID (base58).
    fn peer_id(&self) -> String;
    /// The QUIC addresses this node listens on (multiaddresses).
    fn listen_addrs(&self) -> Vec<String>;
    /// Something was queued for the peer of this domain: send now.
    fn wake(&self, domain: &str);
    /// The peer table changed.
    fn peers_changed(&self);
    /// Our certificates changed; `cursor` is the new generation.
    fn certs_changed(&self, cursor: u64);
    /// Asks a peer's node for the certificates of one of its addresses.
    async fn lookup(&self, peer_id: &str, address: &str) -> Result<Vec<String>, String>;
    /// Asks a peer's node for its organisation record (JSON).
    async fn org_record(&self, peer_id: &str) -> Result<String, String>;
    /// The peer's evidence bundle (JSON) of a message from our domain (docs/evidence.md).
    async fn evidence(&self, peer_id: &str, message_id: &str) -> Result<String, String>;
}

pub struct Context {
    pub config: Config,
    pub store: Arc<dyn MetaStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub ca: Cert,
    pub ca_armored: String,
    /// The node's evidence key (`evidence::evidence_cert`, with its secret key), which signs
    /// evidence records and batch heads.
    pub evidence: Option<Arc<Cert>>,
    pub node_key_hex: String,
    /// The node's transit key (public) for enforced-TLS copies, published in the
    /// organisation record; `None` only in contexts made without one (unit tests).
    pub transit: Option<TransitPublic>,
    /// The node's libp2p peer ID (from the same Ed25519 key).
    pub peer_id: String,
    pub policy: StandardPolicy<'static>,
    pub trust: crate::trustview::TrustView,
    /// The running federation driver, once started (absent in tests of one node, and while
    /// the node starts).
    pub federation: OnceLock<Arc<dyn FedLink>>,
    /// Queues notification mail to outside recipients (the node's driver sends it).
    pub notifier: crate::notify::Notifier,
    /// The HTTP address the node is bound to (for pickup links when `web.public_url` is
    /// empty).
    pub bound: OnceLock<std::net::SocketAddr>,
    /// The address the SMTP door (`[smtp_in]`) is bound to, when it is enabled.
    pub smtp_bound: OnceLock<std::net::SocketAddr>,
    /// The submission gateway's address, once bound (`[submission]`).
    pub submission_bound: OnceLock<std::net::SocketAddr>,
    /// The metrics listener's address, once bound (`[metrics]`).
    pub metrics_bound: OnceLock<std::net::SocketAddr>,
    /// Parsed certificates by fingerprint, with the armored text they were parsed from: a
    /// certificate that changed (new certification, revocation) under the same fingerprint must
    /// not be served from the cache.
    certs: Memo<String, (String, Arc<Cert>)>,
    /// Parsed certificates by the SHA-256 of their armored text (public parts only): every
    /// transfer from a peer carries its sender's certificate, nearly always the same text.
    parsed: Memo<[u8; 32], Arc<Cert>>,
    /// What the policy says of the certificates checked on every message accepted, by the
    /// address of their (cached, shared) parsed certificate: see [`Context::cert_facts`].
    facts: Memo<usize, (Arc<Cert>, u64, Arc<CertFacts>)>,
    /// A verifier hash made with the configured parameters, checked when there is no real one
    /// so that the answer costs the same work (see [`super::credentials::check_verifier`]).
    pub(super) decoy_login_hash: String,
    /// Growing delays per source of failed verifier checks (`throttle.rs`).
    pub throttle: super::throttle::Throttle,
    /// Issues and checks the device tokens that tell a known device from the rest.
    pub devices: super::throttle::DeviceTokens,
    /// Outside keys' look-ups: the HTTPS fetcher, remembered answers, X.509 anchors.
    pub outside: super::outside_keys::Lookups,
    /// The key app passwords' verifiers are made under (`app_passwords.rs`).
    pub(super) app_password_key: [u8; 32],
    /// The key of outside mail's envelope senders (`notify::bounce`): the driver makes them,
    /// the SMTP door checks the bounces that come back to them.
    pub bounce_key: crate::notify::BounceKey,
    /// The organisation's S/MIME CA (`[smime]`), read at start; `None`: copies go unsigned.
    pub smime: Option<Arc<super::smime::SmimeCa>>,
    /// The active compliance key and the certificate generation it was read at
    /// (`compliance::current`).
    pub(super) compliance_cache:
        std::sync::Mutex<Option<(u64, Option<Arc<super::compliance::ComplianceKey>>)>>,
    /// Peers asked for their compliance key that had none, and when (one entry per peer).
    pub(super) compliance_asked: std::sync::Mutex<std::collections::HashMap<String, i64>>,
    /// The node's metrics (one registry, made at start): what every door and operation counts.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// The node's transit key as senders see it (docs/mail.md, mode `tls`).
pub struct TransitPublic {
    pub armored: String,
    pub fingerprint: String,
    pub cert: Arc<Cert>,
}

/// What [`StandardPolicy`] says of a certificate at one second: a sender's signing keys and
/// a recipient's encryption keys. Working it out (finding each component's binding
/// signature valid then) was a tenth of the node's work per submission.
pub struct CertFacts {
    pub signer: crate::crypto::SignerFacts,
    pub encryption: Vec<sequoia_openpgp::KeyHandle>,
}

impl Context {
    /// The key handles a part's PKESKs name: of its `inline` bytes, or else of the blob stored
    /// under `sha256` (read off the runtime's threads). The outer error is the node's failure.
    pub(crate) async fn part_recipients(
        &self,
        inline: Option<&[u8]>,
        sha256: [u8; 32],
    ) -> Result<Result<Vec<sequoia_openpgp::KeyHandle>, crate::crypto::CryptoError>, ServiceError>
    {
        use crate::crypto;
        match inline {
            Some(data) => Ok(crypto::pkesk_recipients_of_bytes(data)),
            None => {
                let blobs = self.blobs.clone();
                tokio::task::spawn_blocking(move || {
                    let mut r = blobs
                        .open_blocking(sha256)
                        .map_err(|e| crypto::CryptoError::Other(e.to_string()))?;
                    crypto::pkesk_recipients(&mut r)
                })
                .await
                .map_err(ServiceError::internal)
            }
        }
    }

    pub fn new(
        config: Config,
        store: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        ca: Cert,
        node_key: &ed25519_dalek::SigningKey,
    ) -> Context {
        let ca_armored = crate::crypto::cert_to_armored(&ca).expect("CA certificate serialises");
        let trust = crate::trustview::TrustView::new(store.clone(), ca.fingerprint());
        let notifier = crate::notify::Notifier::new(store.clone(), &config);
        let decoy_login_hash = super::credentials::decoy_hash(&config);
        let config_delivery = config.delivery.clone();
        let a = &config.accounts;
        let throttle = super::throttle::Throttle::new(
            super::throttle::Rule {
                free: a.max_failed_logins,
                base: Duration::from_secs(a.login_delay_secs),
                max: Duration::from_secs(a.login_max_delay_secs),
            },
            crate::keys::derive_subkey(node_key, b"sealpost/v1/login-throttle"),
        );
        let devices = super::throttle::DeviceTokens::new(
            crate::keys::derive_subkey(node_key, b"sealpost/v1/device-token"),
            a.device_ttl_secs,
        );
        // The evidence key (evidence.rs): derived from the node key and certified by the CA,
        // so nothing new is stored. `None` only when the CA given holds no secret key.
        let evidence = crate::evidence::evidence_cert(
            &ca,
            &crate::keys::derive_subkey(node_key, b"sealpost/v1/evidence-key"),
            &config.domain,
        )
        .ok()
        .map(Arc::new);
        Context {
            evidence,
            notifier,
            bound: OnceLock::new(),
            smtp_bound: OnceLock::new(),
            submission_bound: OnceLock::new(),
            metrics_bound: OnceLock::new(),
            config,
            store,
            blobs,
            ca,
            ca_armored,
            node_key_hex: hex::encode(node_key.verifying_key().as_bytes()),
            transit: None,
            peer_id: crate::keys::peer_id(node_key),
            policy: StandardPolicy::new(),
            trust,
            federation: OnceLock::new(),
            certs: Memo::new(10_000),
            parsed: Memo::new(10_000),
            facts: Memo::new(10_000),
            decoy_login_hash,
            throttle,
            devices,
            app_password_key: crate::keys::derive_subkey(node_key, b"sealpost/v1/app-password"),
            bounce_key: crate::notify::BounceKey::derive(node_key),
            smime: None,
            compliance_cache: std::sync::Mutex::new(None),
            compliance_asked: Default::default(),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            outside: super::outside_keys::Lookups::new(Arc::new(
                crate::keyfetch::HttpKeyFetch::new(&config_delivery),
            )),
        }
    }

    /// This context with the node's transit key published (`Node::open`).
    pub fn with_transit_key(mut self, key: &crate::notify::TransitKey) -> Context {
        self.transit = Some(TransitPublic {
            armored: key.public_armored().to_owned(),
            fingerprint: key.fingerprint(),
            cert: Arc::new(key.public_cert()),
        });
        self
    }

    /// This context recording into `metrics` (`Node::open`: the registry the writer records
    /// into too).
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Context {
        self.metrics = metrics;
        self
    }

    /// This context with the organisation's S/MIME CA (`Node::open`, from `[smime]`).
    pub fn with_smime_ca(mut self, ca: Option<super::smime::SmimeCa>) -> Context {
        self.smime = ca.map(Arc::new);
        self
    }

    /// What this node publishes about its organisation (`/api/v1/org`,
    /// `/.well-known/sealpost/org`, and to peers that ask). Its compliance key is the one
    /// `compliance::current` read last: those doors call it first.
    pub fn org_record(&self) -> serde_json::Value {
        let l = &self.config.limits;
        serde_json::to_value(crate::proto::OrgInfo {
            domain: self.config.domain.clone(),
            ca_fingerprint: self.ca.fingerprint().to_hex(),
            ca_cert: self.ca_armored.clone(),
            node_key: self.node_key_hex.clone(),
            transit_key: self.transit.as_ref().map(|t| t.armored.clone()),
            peer_id: self.peer_id.clone(),
            federation_addrs: if self.config.federation.announce.is_empty() {
                self.federation
                    .get()
                    .map(|f| f.listen_addrs())
                    .unwrap_or_default()
            } else {
                self.config.federation.announce.clone()
            },
            limits: crate::proto::PublicLimits {
                max_message_bytes: l.max_message_bytes,
                max_parts: l.max_parts,
                max_recipients: l.max_recipients,
                inline_part_max_bytes: l.inline_part_max_bytes,
            },
            accept_partial: self.config.trust.accept_partial,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            kdf: self.config.accounts.login_kdf,
            submission: super::app_passwords::submission_info(self),
            smime_signing: self.smime.is_some(),
            compliance_key: super::compliance::last_known(self).map(|k| k.armored.clone()),
        })
        .expect("org info serialises")
    }

    /// Where browsers reach this node: `web.public_url`, else `http://` and the bound address.
    pub fn public_url(&self) -> String {
        match self.config.web.public_url.as_str() {
            "" => format!(
                "http://{}",
                self.bound.get().copied().unwrap_or(self.config.http.listen)
            ),
            url => url.to_owned(),
        }
    }

    /// Parses an armored certificate (secret parts stripped), remembering the result by the
    /// text's hash: parsing is most of the cost of taking a certificate from the network.
    pub fn parse_cert(&self, armored: &str) -> Result<Arc<Cert>, crate::crypto::CryptoError> {
        self.parsed
            .get_or_try_insert_with(crate::memo::text_key(armored), || {
                Ok(Arc::new(
                    crate::crypto::cert_from_armored(armored)?.strip_secret_key_material(),
                ))
            })
    }

    /// The [`CertFacts`] of `cert` at `now`, worked out once per certificate and second: exact,
    /// because every time in OpenPGP is a whole second, so the policy's answer cannot change
    /// within one. Keyed by the certificate's address, which cannot be reused while the entry
    /// holds it; a changed certificate is parsed into a new one. Bounded: emptied when full.
    pub fn cert_facts(&self, cert: &Arc<Cert>, now: std::time::SystemTime) -> Arc<CertFacts> {
        let second = now
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let key = Arc::as_ptr(cert) as usize;
        if let Some((_, _, facts)) = self.facts.get_if(&key, |(_, at, _)| *at == second) {
            return facts;
        }
        let facts = Arc::new(CertFacts {
            signer: crate::crypto::SignerFacts::at(cert, &self.policy, now),
            encryption: crate::crypto::encryption_key_handles(cert, &self.policy, now),
        });
        // The entry holds the certificate, so its address is not reused while it is there.
        self.facts
            .insert(key, (cert.clone(), second, facts.clone()));
        facts
    }

    /// The parsed certificate of an enrolled account. Parsing is the expensive part of
    /// checking a signature, so parsed certificates are kept (bounded; keyed by fingerprint, so
    /// a changed certificate is a different key).
    pub fn account_cert(&self, account: &Account) -> Result<Arc<Cert>, ServiceError> {
        let (Some(fpr), Some(armored)) = (&account.fingerprint, &account.cert) else {
            return Err(ServiceError::NotEnrolled {
                address: account.address.clone(),
            });
        };
        if let Some((_, c)) = self.certs.get_if(fpr, |(text, _)| text == armored) {
            return Ok(c);
        }
        let cert =
            Arc::new(crate::crypto::cert_from_armored(armored).map_err(ServiceError::internal)?);
        self.certs
            .insert(fpr.clone(), (armored.clone(), cert.clone()));
        Ok(cert)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    /// Facts are worked out once per certificate and second, again in the next second, and
    /// afresh for a changed (re-parsed) certificate, which is how a revocation takes effect.
    #[tokio::test]
    async fn cert_facts_are_kept_for_one_certificate_and_one_second() {
        use std::time::{Duration, SystemTime};
        let (_dir, node) = crate::node::temp_node("facts.test").await;
        let st = node.state;
        let (cert, _) =
            sealpost_client::crypto::generate_user_key("a@facts.test", None, SystemTime::now())
                .unwrap();
        let cert = Arc::new(cert);
        let t = SystemTime::UNIX_EPOCH
            + Duration::from_secs(
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_secs(),
            );
        let first = st.cert_facts(&cert, t);
        assert!(first.signer.is_usable());
        assert_eq!(first.encryption.len(), 1);
        let same_second = st.cert_facts(&cert, t + Duration::from_millis(999));
        assert!(Arc::ptr_eq(&first, &same_second));
        let next_second = st.cert_facts(&cert, t + Duration::from_secs(1));
        assert!(!Arc::ptr_eq(&first, &next_second));

        // The revoked certificate is another parsed certificate: its own facts, at once.
        let revoked = Arc::new(
            sealpost_client::crypto::revoke_cert(
                &cert,
                sequoia_openpgp::types::ReasonForRevocation::KeyCompromised,
                "lost",
            )
            .unwrap(),
        );
        let after = st.cert_facts(&revoked, t + Duration::from_millis(500));
        assert!(!after.signer.is_usable());
        assert!(after.encryption.is_empty());
        assert!(
            st.cert_facts(&cert, t + Duration::from_millis(500))
                .signer
                .is_usable()
        );
    }
}
