//! The client library: everything a user's side does, used by the CLI client ([`cli`]), the
//! demo, the tests and the load tool. It speaks the wire of `sealpost-proto`, and links no
//! database, HTTP server or network stack of the node's.
//!
//! All cryptography happens here, never on the node: the key is generated here, wrapped here
//! with a key derived from the password, and only the wrapped key and a separately derived
//! login verifier are sent. Messages are sealed here (compressed, signed, encrypted to every
//! recipient and to the sender) and opened here. The node is not trusted with keys either:
//! every certificate it hands out must carry the organisation CA's certification, and the CA
//! is pinned by fingerprint when the user enrols.

pub mod cli;
pub mod crypto;
pub mod custody;
mod guest;
mod keys;
pub mod mime;
pub mod pickup;
pub mod shamir;
pub mod smime;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::TryStreamExt;
use sequoia_openpgp::Cert;
use sequoia_openpgp::policy::StandardPolicy;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use sealpost_proto::*;

use crate::crypto::CryptoError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The node refused the request; `code` is the API's stable error code.
    #[error("{message} ({code})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("cannot reach the node: {0}")]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The message or its envelope does not match what was signed: it was altered.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// A certificate is not vouched for by the organisation CA.
    #[error("not verified: {0}")]
    Unverified(String),
    /// The web of trust does not authenticate a recipient's key well enough to write to it.
    #[error("{address}: {}", explain(.verdict))]
    Untrusted {
        address: String,
        verdict: Box<VerdictView>,
    },
    #[error("unexpected answer from the node: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The API error code, if the node refused the request.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

fn explain(v: &VerdictView) -> String {
    let why = match v.why_not.as_deref() {
        Some("revoked") => "the key is revoked".to_owned(),
        Some("no_path") | Some("unknown_key") => "no trust path leads to this key".to_owned(),
        Some(other) => format!("not trusted ({other})"),
        None => format!("trust is only {}", v.level),
    };
    format!("refused: {why}; {}", v.explanation.join("; "))
}

static POLICY: StandardPolicy<'static> = StandardPolicy::new();

/// An unauthenticated connection to a node.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    /// The device token from an earlier login, presented at login so that failures from
    /// elsewhere do not slow this device.
    device_token: Option<String>,
}

async fn check(resp: reqwest::Response) -> Result<reqwest::Response> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    Err(match serde_json::from_str::<ErrorBody>(&text) {
        Ok(e) => ClientError::Api {
            status,
            code: e.code,
            message: e.message,
        },
        Err(_) => ClientError::Api {
            status,
            code: "http".into(),
            message: format!(
                "HTTP {status}: {}",
                text.chars().take(200).collect::<String>()
            ),
        },
    })
}

async fn json<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> Result<T> {
    let resp = check(resp).await?;
    let bytes = resp.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
}

/// What enrolment produced.
#[derive(Clone, Debug)]
pub struct Enrolled {
    pub address: String,
    pub fingerprint: String,
    pub ca_fingerprint: String,
}

impl Client {
    pub fn new(base: &str) -> Client {
        Client {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("HTTP client builds"),
            base: base.trim_end_matches('/').to_owned(),
            device_token: None,
        }
    }

    /// Presents `token` (from [`Session::device_token`] of an earlier login to this node) at
    /// login: the node then counts failures of this device on their own, so that failures
    /// from elsewhere do not slow it.
    pub fn with_device_token(mut self, token: Option<String>) -> Client {
        self.device_token = token.filter(|t| !t.is_empty());
        self
    }

    /// A POST to the login routes, with the device token if there is one.
    fn login_post(&self, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.post(self.url(path));
        match &self.device_token {
            Some(t) => req.header(DEVICE_HEADER, t),
            None => req,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{API_PREFIX}{path}", self.base)
    }

    pub async fn org(&self) -> Result<OrgInfo> {
        json(self.http.get(self.url("/org")).send().await?).await
    }

    /// Generates the user's key, wraps it with the password and registers it with the invite.
    pub async fn enroll(
        &self,
        invite: &str,
        address: &str,
        name: Option<&str>,
        password: &[u8],
        params: KdfParams,
    ) -> Result<Enrolled> {
        let org = self.org().await?;
        let req = new_login(address, name, password, params).await?;
        let req = EnrollRequest {
            invite: invite.to_owned(),
            ..req
        };
        let resp: EnrollResponse = json(
            self.http
                .post(self.url("/enroll"))
                .json(&req)
                .send()
                .await?,
        )
        .await?;
        Ok(Enrolled {
            address: resp.address,
            fingerprint: resp.fingerprint,
            ca_fingerprint: org.ca_fingerprint,
        })
    }

    /// Logs in and unlocks the user's key. `ca_fingerprint` pins the organisation CA (learnt at
    /// enrolment); `None` trusts the CA the node presents now.
    pub async fn login(
        &self,
        address: &str,
        password: &[u8],
        totp: Option<&str>,
        ca_fingerprint: Option<&str>,
    ) -> Result<Session> {
        let org = self.org().await?;
        if let Some(pinned) = ca_fingerprint
            && !pinned.eq_ignore_ascii_case(&org.ca_fingerprint)
        {
            return Err(ClientError::Unverified(format!(
                "the node presents CA {} but you enrolled under CA {pinned}",
                org.ca_fingerprint
            )));
        }
        let ca = crypto::cert_from_armored(&org.ca_cert)?;
        if !ca
            .fingerprint()
            .to_hex()
            .eq_ignore_ascii_case(&org.ca_fingerprint)
        {
            return Err(ClientError::Protocol(
                "the CA certificate does not match its fingerprint".into(),
            ));
        }
        let params: LoginParams = json(
            self.login_post("/login/params")
                .json(&LoginParamsRequest {
                    address: address.to_owned(),
                })
                .send()
                .await?,
        )
        .await?;
        let salt = STANDARD
            .decode(&params.kdf_salt)
            .map_err(|_| ClientError::Protocol("kdf_salt is not base64".into()))?;
        let password = password.to_vec();
        let kdf = params.kdf_params;
        let keys = tokio::task::spawn_blocking(move || {
            crypto::derive_password_keys(&password, &salt, &kdf)
        })
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))??;
        let resp: LoginResponse = json(
            self.login_post("/login")
                .json(&LoginRequest {
                    address: address.to_owned(),
                    login_verifier: STANDARD.encode(keys.login_verifier()),
                    totp: totp.map(str::to_owned),
                })
                .send()
                .await?,
        )
        .await?;
        let wrapped = resp.account.wrapped_key.clone();
        let (me, wrap) = tokio::task::spawn_blocking(move || {
            let wrap = keys.wrap_passphrase();
            crypto::unwrap_secret_key(&wrapped, &wrap).map(|me| (me, wrap))
        })
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))??;
        Ok(Session {
            client: self.clone(),
            token: resp.token,
            device_token: resp.device_token,
            account: resp.account,
            me,
            ca,
            pickup_kdf: org_kdf(&org),
            limits: org.limits,
            accept_partial: org.accept_partial,
            wrap,
            smime_signing: org.smime_signing,
            smime: Default::default(),
        })
    }
}

/// What enrolment registers (the invite left empty): a new key for `address`, its secret
/// wrapped under the password, and the login verifier. The same for a user's enrolment and a
/// guest's upgrade from a pickup.
async fn new_login(
    address: &str,
    name: Option<&str>,
    password: &[u8],
    params: KdfParams,
) -> Result<EnrollRequest> {
    let salt: [u8; 16] = rand::random();
    let address = address.trim().to_ascii_lowercase();
    let name = name.map(str::to_owned);
    let password = password.to_vec();
    tokio::task::spawn_blocking(move || -> Result<EnrollRequest> {
        let keys = crypto::derive_password_keys(&password, &salt, &params)?;
        let (cert, _revocation) =
            crypto::generate_user_key(&address, name.as_deref(), SystemTime::now())?;
        Ok(EnrollRequest {
            invite: String::new(),
            address,
            cert: crypto::cert_to_armored(&cert)?,
            wrapped_key: crypto::wrap_secret_key(&cert, &keys.wrap_passphrase())?,
            kdf_salt: STANDARD.encode(salt),
            kdf_params: params,
            login_verifier: STANDARD.encode(keys.login_verifier()),
        })
    })
    .await
    .map_err(|e| ClientError::Protocol(e.to_string()))?
}

/// A logged-in user with their key unlocked (in this process's memory only).
pub struct Session {
    client: Client,
    token: String,
    device_token: Option<String>,
    pub account: AccountView,
    me: Cert,
    ca: Cert,
    pub limits: PublicLimits,
    /// The organisation's policy: may partially trusted recipients be written to?
    pub accept_partial: bool,
    /// What unlock codes are derived with unless `Outgoing.pickup_kdf` says otherwise: the
    /// organisation's login parameters ([`org_kdf`]).
    pub pickup_kdf: KdfParams,
    /// The password-derived wrap key (protected memory): it also locks the S/MIME signing
    /// key (`smime.rs`).
    wrap: sequoia_openpgp::crypto::Password,
    /// Whether the organisation's CA certifies S/MIME signing keys (`GET /org`).
    smime_signing: bool,
    /// The S/MIME signing identity, once made or given (`smime.rs`).
    smime: std::sync::Mutex<Option<smime::SmimeIdentity>>,
}

/// The organisation's login KDF parameters as its node publishes them (`GET /org` `kdf`), or
/// `KdfParams::DEFAULT` when it publishes none or ones `KdfParams::validate` refuses (a node
/// must not make us derive with a trivially weak or huge KDF). Enrolment and pickup seals use
/// them (docs/pickup.md).
pub fn org_kdf(org: &OrgInfo) -> KdfParams {
    org.kdf
        .filter(|k| k.validate().is_ok())
        .unwrap_or(KdfParams::DEFAULT)
}

/// A message to send.
#[derive(Clone, Debug, Default)]
pub struct Outgoing {
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    pub attachments: Vec<PathBuf>,
    /// KDF parameters for outside recipients' unlock codes (default: the organisation's login
    /// parameters, `Session::pickup_kdf`).
    pub pickup_kdf: Option<KdfParams>,
}

/// A message sealed and ready to submit (the load tool pre-seals many).
#[derive(Clone, Debug)]
pub struct Sealed {
    pub message_id: String,
    pub request: SubmitRequest,
}

/// A message's verified envelope and decrypted head.
#[derive(Clone, Debug)]
pub struct OpenedHead {
    pub item: MailboxItem,
    pub envelope: Envelope,
    pub head: Head,
    pub sender: Cert,
    pub signer_fingerprint: String,
}

/// A message as the reader sees it, verified.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReadMessage {
    pub message_id: String,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    pub sent_at: i64,
    /// The key that made the valid signature, and the address it was verified for.
    pub signer_fingerprint: String,
    pub verified_sender: String,
    /// How far the reader's web of trust authenticates the signer's key for the sender.
    pub sender_trust: Option<VerdictView>,
    pub attachments: Vec<ReadAttachment>,
}

/// A mail that came in over SMTP (docs/mail.md "SMTP in"), as its recipient reads it: part 0
/// decrypted and parsed as MIME (protected headers first). Nothing in it is signed by a
/// Sealpost user: `arrival` says what the node saw in transit.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReadMail {
    pub message_id: String,
    /// The `From` address as the mail says (not authenticated; see `arrival`'s DKIM/DMARC).
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    /// The first text body (plain, or HTML converted to text).
    pub body: String,
    /// Names of attached files.
    pub attachments: Vec<String>,
    pub arrival: Arrival,
    /// The message of ours this answers.
    pub in_reply_to: Option<String>,
    /// It waited for the organisation's compliance session-key packet, and this reading added
    /// it (docs/compliance.md, "Waiting copies").
    pub compliance_added: bool,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ReadAttachment {
    pub name: String,
    pub media_type: String,
    pub size: u64,
    pub sha256: String,
    /// Where it was saved, when saving was asked for.
    pub saved_to: Option<PathBuf>,
}

/// Writer that hashes and counts what passes through.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Reader that hashes and counts what passes through.
struct HashingReader<R> {
    inner: R,
    hash: Sha256,
    len: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// Keeps only a safe file name: no directories, no hidden files, no control characters.
pub(crate) fn safe_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim_start_matches('.')
        .trim()
        .to_owned();
    if cleaned.is_empty() {
        "attachment".into()
    } else {
        cleaned
    }
}

/// Moves a verified temporary file to `dir/name`, never overwriting: `name (1)`, `name (2)`…
fn persist_unique(file: tempfile::NamedTempFile, dir: &Path, name: &str) -> Result<PathBuf> {
    let mut file = file;
    for n in 0..1000 {
        let candidate = if n == 0 {
            dir.join(name)
        } else {
            dir.join(format!("{name} ({n})"))
        };
        match file.persist_noclobber(&candidate) {
            Ok(_) => return Ok(candidate),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => file = e.file,
            Err(e) => return Err(e.error.into()),
        }
    }
    Err(ClientError::Io(std::io::Error::other(
        "no free file name for the attachment",
    )))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ClientError::Protocol(format!("worker failed: {e}")))?
}

impl Session {
    pub fn address(&self) -> &str {
        &self.account.address
    }

    pub fn fingerprint(&self) -> String {
        self.me.fingerprint().to_hex()
    }

    /// The user's own certificate with its secret key unlocked (in this process only).
    pub fn unlocked_cert(&self) -> &Cert {
        &self.me
    }

    /// The organisation CA this session trusts.
    pub fn ca(&self) -> &Cert {
        &self.ca
    }

    /// The session token (for tests that exercise the API directly).
    /// The device token this login earned: present it at the next login of this address
    /// ([`Client::with_device_token`]).
    pub fn device_token(&self) -> Option<&str> {
        self.device_token.as_deref()
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .http
            .get(self.client.url(path))
            .bearer_auth(&self.token)
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .http
            .post(self.client.url(path))
            .bearer_auth(&self.token)
    }

    /// Asks the node for a message ID and the recipients' certificates, and refuses any
    /// recipient whose key the user's web of trust does not authenticate (revoked, no path,
    /// or only partial when the organisation's policy wants full).
    pub async fn envelope(&self, to: &[String]) -> Result<(EnvelopeResponse, Vec<Cert>)> {
        let resp: EnvelopeResponse = json(
            self.post("/envelopes")
                .json(&EnvelopeRequest { to: to.to_vec() })
                .send()
                .await?,
        )
        .await?;
        if !is_message_id(&resp.message_id) {
            return Err(ClientError::Protocol("malformed message ID".into()));
        }
        let mut certs = Vec::new();
        for r in &resp.recipients {
            match r.mode {
                DeliveryMode::Local | DeliveryMode::Remote => {}
                // An outside recipient has no key: `send` makes a pickup key for them.
                DeliveryMode::Pickup => continue,
                // Reached by mail, with a key the organisation's policy chose by where it was
                // found (`why`, `key_source`): the parts are not encrypted to it; `send`
                // makes the external copy (checked there). Enforced TLS: the copy goes to the
                // node's transit key (the answer says the node sees the content).
                DeliveryMode::Openpgp | DeliveryMode::Smime | DeliveryMode::Tls => continue,
            }
            if !r.verdict.acceptable(self.accept_partial) {
                return Err(ClientError::Untrusted {
                    address: r.address.clone(),
                    verdict: Box::new(r.verdict.clone()),
                });
            }
            certs.push(self.checked_cert(&r.cert, &r.address, &r.verdict)?);
        }
        // Every part also goes to the compliance keys the answer lists (docs/compliance.md),
        // each only with the marking of the CA we trust for its domain.
        for k in &resp.compliance {
            certs.push(checked_compliance_key(k, &self.ca, SystemTime::now())?);
        }
        Ok((resp, certs))
    }

    /// Parses a recipient's certificate and checks locally what can be checked without the
    /// node: that it is the key the verdict speaks of, that it is not revoked, and, for the
    /// paths that start with one signature we hold the key for (our pinned CA, or our own
    /// certification), that the signature is really there.
    fn checked_cert(&self, armored: &str, address: &str, verdict: &VerdictView) -> Result<Cert> {
        let cert = crypto::cert_from_armored(armored)?;
        if !cert
            .fingerprint()
            .to_hex()
            .eq_ignore_ascii_case(&verdict.fingerprint)
        {
            return Err(ClientError::Unverified(format!(
                "the node's verdict for {address} is about another key"
            )));
        }
        let valid = cert
            .with_policy(&POLICY, SystemTime::now())
            .map(|vc| {
                !matches!(
                    vc.revocation_status(),
                    sequoia_openpgp::types::RevocationStatus::Revoked(_)
                )
            })
            .unwrap_or(false);
        if !valid {
            return Err(ClientError::Untrusted {
                address: address.to_owned(),
                verdict: Box::new(VerdictView {
                    why_not: Some("revoked".into()),
                    ..verdict.clone()
                }),
            });
        }
        let by_ca = crypto::ca_certifies(&self.ca, &cert, address, &POLICY, SystemTime::now());
        let by_me = crypto::ca_certifies(&self.me, &cert, address, &POLICY, SystemTime::now());
        let one_hop_claimed = verdict
            .explanation
            .iter()
            .any(|l| l.contains("(your organisation) → ") && l.matches(" → ").count() == 2);
        if one_hop_claimed && !by_ca && !by_me {
            return Err(ClientError::Unverified(format!(
                "the node claims your CA certifies {address}, but the key carries no such certification"
            )));
        }
        Ok(cert)
    }

    /// Every key the node knows for `address`, with this user's verdict and paths.
    pub async fn trust(&self, address: &str) -> Result<TrustResponse> {
        json(self.get(&format!("/trust/{address}")).send().await?).await
    }

    /// The certificates the directory serves for `address`.
    pub async fn directory_certs(&self, address: &str) -> Result<Vec<Cert>> {
        use sequoia_openpgp::cert::CertParser;
        use sequoia_openpgp::parse::Parse;
        let resp = self
            .client
            .http
            .get(format!("{}/vks/v1/by-email/{}", self.client.base, address))
            .send()
            .await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        let bytes = check(resp).await?.bytes().await?;
        CertParser::from_bytes(&bytes)
            .map_err(|e| ClientError::Protocol(format!("directory answer: {e}")))?
            .map(|c| c.map_err(|e| ClientError::Protocol(format!("directory answer: {e}"))))
            .collect()
    }

    /// The one key the directory serves for `address` with fingerprint `fpr` (spaces and case
    /// ignored); refuses when it serves none.
    async fn served_key(&self, address: &str, fpr: &str) -> Result<Cert> {
        let want: String = fpr
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_uppercase();
        self.directory_certs(address)
            .await?
            .into_iter()
            .find(|c| c.fingerprint().to_hex() == want)
            .ok_or_else(|| {
                ClientError::Unverified(format!(
                    "the directory serves no key for {address} with fingerprint {fpr}: compare again"
                ))
            })
    }

    fn signing_time(&self, target: &Cert, address: &str) -> SystemTime {
        crypto::after_previous_signatures(
            &self.me.fingerprint(),
            target,
            address,
            SystemTime::now(),
        )
    }

    async fn upload_certification(&self, cert: &Cert) -> Result<CertificationResponse> {
        json(
            self.post("/certifications")
                .json(&CertificationRequest {
                    cert: crypto::cert_to_armored(cert)?,
                })
                .send()
                .await?,
        )
        .await
    }

    /// Certifies that the key with fingerprint `fpr` is `address`'s (after comparing it with
    /// them), and publishes the certification.
    pub async fn certify(&self, address: &str, fpr: &str) -> Result<CertificationResponse> {
        let target = self.served_key(address, fpr).await?;
        let signed = sealpost_trust::certify(
            &self.me,
            &target,
            address,
            self.signing_time(&target, address),
        )
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.upload_certification(&signed).await
    }

    /// Makes `address`'s key a trusted introducer (optionally only for `scope` domain).
    pub async fn introducer(
        &self,
        address: &str,
        fpr: &str,
        scope: Option<&str>,
    ) -> Result<CertificationResponse> {
        let target = self.served_key(address, fpr).await?;
        let signed = sealpost_trust::make_introducer(
            &self.me,
            &target,
            address,
            scope,
            self.signing_time(&target, address),
        )
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.upload_certification(&signed).await
    }

    /// Retracts this user's certifications of every key the directory serves for `address`.
    pub async fn retract(&self, address: &str) -> Result<usize> {
        let mut done = 0;
        for target in self.directory_certs(address).await? {
            let mine = target.userids().any(|u| {
                u.certifications().any(|s| {
                    s.get_issuers()
                        .iter()
                        .any(|i| i.aliases(sequoia_openpgp::KeyHandle::from(self.me.fingerprint())))
                })
            });
            if !mine {
                continue;
            }
            let signed = sealpost_trust::retract(
                &self.me,
                &target,
                address,
                self.signing_time(&target, address),
            )
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
            self.upload_certification(&signed).await?;
            done += 1;
        }
        if done == 0 {
            return Err(ClientError::Protocol(format!(
                "you have not certified any key of {address}"
            )));
        }
        Ok(done)
    }

    /// Revokes this user's own key and publishes the revocation through the directory.
    pub async fn revoke_key(&self, reason: &str) -> Result<()> {
        let revoked = crypto::revoke_cert(
            &self.me,
            sequoia_openpgp::types::ReasonForRevocation::KeyRetired,
            reason,
        )
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let keytext = crypto::cert_to_armored(&revoked)?;
        check(
            self.client
                .http
                .post(format!("{}/pks/add", self.client.base))
                .bearer_auth(&self.token)
                .form(&[("keytext", keytext)])
                .send()
                .await?,
        )
        .await?;
        Ok(())
    }

    /// Seals a message whose parts are all small enough to travel inline. Used by the load
    /// tool and by `send` for the head.
    fn seal_bytes(&self, recipients: &[Cert], plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut all = recipients.to_vec();
        all.push(self.me.clone());
        let mut out = Vec::with_capacity(plaintext.len() + 1024);
        crypto::seal(
            &all,
            &self.me,
            &POLICY,
            SystemTime::now(),
            &mut &plaintext[..],
            &mut out,
        )?;
        Ok(out)
    }

    fn sign_envelope(
        &self,
        env: &Envelope,
        inline_parts: std::collections::BTreeMap<u32, String>,
    ) -> Result<SubmitRequest> {
        let text = serde_json::to_string(env).expect("envelope serialises");
        let signature = crypto::sign_detached(&self.me, &POLICY, text.as_bytes())?;
        Ok(SubmitRequest {
            envelope: text,
            signature,
            inline_parts,
            pickups: Vec::new(),
            pickup_continuations: Vec::new(),
            external_copies: Default::default(),
        })
    }

    /// The external copy for each recipient the envelope answer reaches by mail
    /// (docs/mail.md): the inner MIME entity made from `head` and the attachments' plaintext,
    /// for `openpgp` signed by the user and encrypted to the recipient's key and the user's own
    /// (SEIPD v1 unless every key asks for v2); for `tls` to the node's transit key only; for
    /// `smime` encrypted to the recipient's X.509 certificate as DER CMS (AES-256-CBC), signed
    /// first (`multipart/signed`, the user's S/MIME key certified by the organisation's CA,
    /// `smime.rs`) when the organisation runs one, else unsigned
    /// ([`sealpost_proto::SMIME_UNSIGNED`]).
    /// The key must be the one the answer names (its fingerprint; for a certificate the
    /// SHA-256 of its DER) and an OpenPGP key not revoked.
    pub async fn external_copies(
        &self,
        envelope: &EnvelopeResponse,
        head: &Head,
        attachments: &[PathBuf],
    ) -> Result<Vec<(String, DeliveryMode, Vec<u8>)>> {
        enum To {
            Openpgp(Box<Cert>),
            Transit(Box<Cert>),
            Smime(String),
        }
        let mut keys = Vec::new();
        for r in &envelope.recipients {
            let key = match r.mode {
                DeliveryMode::Openpgp => {
                    let cert = crypto::cert_from_armored(&r.cert)?;
                    (cert.fingerprint().to_hex(), To::Openpgp(Box::new(cert)))
                }
                DeliveryMode::Tls => {
                    let cert = crypto::cert_from_armored(&r.cert)?;
                    (cert.fingerprint().to_hex(), To::Transit(Box::new(cert)))
                }
                DeliveryMode::Smime => (
                    crypto::smime::cert_sha256(&r.cert)?,
                    To::Smime(r.cert.clone()),
                ),
                _ => continue,
            };
            if !key.0.eq_ignore_ascii_case(&r.fingerprint) {
                return Err(ClientError::Unverified(format!(
                    "the node's key for {} is not the one it names",
                    r.address
                )));
            }
            keys.push((r.address.clone(), key.1));
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // Signed when the organisation's CA certifies the user's S/MIME key (sign-then-encrypt).
        let signer = if keys.iter().any(|(_, k)| matches!(k, To::Smime(_))) {
            self.smime_signer().await?
        } else {
            None
        };
        let (head, paths, me) = (head.clone(), attachments.to_vec(), self.me.clone());
        blocking(move || {
            let data = paths
                .iter()
                .map(std::fs::read)
                .collect::<std::io::Result<Vec<_>>>()?;
            let files: Vec<mime::Attachment<'_>> = head
                .attachments
                .iter()
                .zip(&data)
                .map(|(a, d)| mime::Attachment {
                    name: &a.name,
                    data: d,
                })
                .collect();
            let entity = mime::inner_entity(&head, &files)?;
            let signed = match &signer {
                Some(s) => Some(crypto::smime::sign(
                    &entity,
                    &s.certificate,
                    &s.chain,
                    &s.key,
                )?),
                None => None,
            };
            let mut out = Vec::with_capacity(keys.len());
            for (address, key) in keys {
                let seal = |to: &[Cert]| -> Result<Vec<u8>> {
                    let mut copy = Vec::with_capacity(entity.len() + 1024);
                    crypto::seal(
                        to,
                        &me,
                        &POLICY,
                        SystemTime::now(),
                        &mut entity.as_slice(),
                        &mut copy,
                    )?;
                    Ok(copy)
                };
                let (mode, copy) = match key {
                    To::Openpgp(cert) => (DeliveryMode::Openpgp, seal(&[*cert, me.clone()])?),
                    // Only the node's transit key: the node is the one reader of this copy.
                    To::Transit(cert) => (DeliveryMode::Tls, seal(&[*cert])?),
                    // CBC, what every S/MIME reader opens (docs/mail.md, "The S/MIME copy").
                    To::Smime(pem) => (
                        DeliveryMode::Smime,
                        crypto::smime::encrypt(
                            signed.as_deref().unwrap_or(&entity),
                            &pem,
                            crypto::smime::SmimeCipher::Aes256Cbc,
                        )?,
                    ),
                };
                out.push((address, mode, copy));
            }
            Ok(out)
        })
        .await
    }

    /// Seals a text-only message for the recipients of `envelope`, without submitting it.
    pub fn seal_text(
        &self,
        envelope: &EnvelopeResponse,
        recipient_certs: &[Cert],
        subject: &str,
        body: &str,
    ) -> Result<Sealed> {
        let to: Vec<String> = envelope
            .recipients
            .iter()
            .map(|r| r.address.clone())
            .collect();
        let head = Head {
            v: 1,
            message_id: envelope.message_id.clone(),
            from: self.account.address.clone(),
            to: to.clone(),
            subject: subject.to_owned(),
            body: body.to_owned(),
            attachments: vec![],
            sent_at: now(),
        };
        let sealed = self.seal_bytes(
            recipient_certs,
            &serde_json::to_vec(&head).expect("head serialises"),
        )?;
        let env = Envelope {
            v: 1,
            message_id: envelope.message_id.clone(),
            from: self.account.address.clone(),
            to,
            registered: Default::default(),
            pickup: Default::default(),
            external: Default::default(),
            created_at: now(),
            parts: vec![EnvelopePart {
                sha256: hex::encode(Sha256::digest(&sealed)),
                size: sealed.len() as u64,
            }],
        };
        let request = self.sign_envelope(&env, [(0, STANDARD.encode(&sealed))].into())?;
        Ok(Sealed {
            message_id: envelope.message_id.clone(),
            request,
        })
    }

    /// Submits a sealed message.
    pub async fn submit(&self, request: &SubmitRequest) -> Result<SubmitResponse> {
        json(self.post("/messages").json(request).send().await?).await
    }

    /// Streams a file to the node's blob store; returns its SHA-256 (checked against ours).
    async fn upload(&self, path: &Path, sha256: &str) -> Result<()> {
        let file = tokio::fs::File::open(path).await?;
        let len = file.metadata().await?.len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
            file,
            256 * 1024,
        ));
        let resp: UploadResponse = json(
            self.client
                .http
                .put(self.client.url("/blobs"))
                .bearer_auth(&self.token)
                .header(reqwest::header::CONTENT_LENGTH, len)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(body)
                .send()
                .await?,
        )
        .await?;
        if resp.sha256 != sha256 || resp.size != len {
            return Err(ClientError::Integrity(
                "the node stored different bytes than were uploaded".into(),
            ));
        }
        Ok(())
    }

    /// Seals and sends a message; attachments are streamed from disk through the encryption
    /// into temporary files in `work_dir` and uploaded from there, never held in memory.
    pub async fn send(&self, msg: &Outgoing, work_dir: &Path) -> Result<SubmitResponse> {
        Ok(self.send_all(msg, work_dir).await?.0)
    }

    /// [`Session::send`], with each outside recipient's Message Unlock Code and link: a fresh
    /// pickup key per outside recipient, locked under a new code, or, for one in a live pickup
    /// thread with this sender, that thread's key and code (docs/pickup.md). The codes exist
    /// only in the answer: show each to the sender once.
    pub async fn send_all(
        &self,
        msg: &Outgoing,
        work_dir: &Path,
    ) -> Result<(SubmitResponse, Vec<pickup::Issued>)> {
        self.send_all_with(msg, &[], work_dir).await
    }

    /// [`Session::send_all`], registered for `registered` (see [`Session::send_registered`]).
    pub async fn send_all_with(
        &self,
        msg: &Outgoing,
        registered: &[String],
        work_dir: &Path,
    ) -> Result<(SubmitResponse, Vec<pickup::Issued>)> {
        let (envelope, certs) = self.envelope(&msg.to).await?;
        self.send_enveloped_registered(msg, envelope, certs, registered, work_dir)
            .await
    }

    /// [`Session::send`] as registered mail for `registered` (each also in `msg.to`; docs/evidence.md,
    /// "Registered mail"): their node withholds the parts until they sign a receipt or refuse.
    pub async fn send_registered(
        &self,
        msg: &Outgoing,
        registered: &[String],
        work_dir: &Path,
    ) -> Result<SubmitResponse> {
        Ok(self.send_all_with(msg, registered, work_dir).await?.0)
    }

    /// [`Session::send_all`] for an envelope answer already at hand (from [`Session::envelope`]).
    pub async fn send_enveloped(
        &self,
        msg: &Outgoing,
        envelope: EnvelopeResponse,
        certs: Vec<Cert>,
        work_dir: &Path,
    ) -> Result<(SubmitResponse, Vec<pickup::Issued>)> {
        self.send_enveloped_registered(msg, envelope, certs, &[], work_dir)
            .await
    }

    async fn send_enveloped_registered(
        &self,
        msg: &Outgoing,
        envelope: EnvelopeResponse,
        mut certs: Vec<Cert>,
        registered: &[String],
        work_dir: &Path,
    ) -> Result<(SubmitResponse, Vec<pickup::Issued>)> {
        let kdf = msg.pickup_kdf.unwrap_or(self.pickup_kdf);
        let mut seals = Vec::new();
        let mut continuations = Vec::new();
        let mut codes = Vec::new();
        let mut pickup_map = std::collections::BTreeMap::new();
        for r in envelope
            .recipients
            .iter()
            .filter(|r| r.mode == DeliveryMode::Pickup)
        {
            // A live thread with them: its key (checked against our own signed copy), the
            // same unlock code; never a new code, never plain.
            if r.pickup_thread.is_some() {
                let cert = pickup::check_thread_key(&self.me, r)?;
                pickup_map.insert(r.address.clone(), cert.fingerprint().to_hex());
                certs.push(cert);
                codes.push((r.address.clone(), None));
                continuations.push(PickupContinuation {
                    address: r.address.clone(),
                    expires_in_days: None,
                });
                continue;
            }
            let (address, me) = (r.address.clone(), self.me.clone());
            let made = blocking(move || pickup::make_seal(&address, &me, &kdf)).await?;
            pickup_map.insert(r.address.clone(), made.cert.fingerprint().to_hex());
            certs.push(made.cert);
            codes.push((r.address.clone(), Some(made.muc)));
            seals.push(made.seal);
        }
        let mut recipients = certs.clone();
        recipients.push(self.me.clone());
        let mut parts = vec![EnvelopePart {
            sha256: String::new(),
            size: 0,
        }];
        let mut metas = Vec::new();
        let mut temps = Vec::new();
        for (i, path) in msg.attachments.iter().enumerate() {
            let (path, dir, recips, me) = (
                path.clone(),
                work_dir.to_owned(),
                recipients.clone(),
                self.me.clone(),
            );
            let (temp, meta, part) = blocking(move || {
                let input = std::fs::File::open(&path)?;
                let mut reader = HashingReader {
                    inner: std::io::BufReader::new(input),
                    hash: Sha256::new(),
                    len: 0,
                };
                let temp = tempfile::NamedTempFile::new_in(&dir)?;
                let mut out = Hashing {
                    inner: std::io::BufWriter::new(temp.reopen()?),
                    hash: Sha256::new(),
                    len: 0,
                };
                crypto::seal(
                    &recips,
                    &me,
                    &POLICY,
                    SystemTime::now(),
                    &mut reader,
                    &mut out,
                )?;
                out.flush()?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let meta = AttachmentMeta {
                    name: safe_file_name(&name),
                    media_type: "application/octet-stream".into(),
                    size: reader.len,
                    sha256: hex::encode(reader.hash.finalize()),
                    part: (i + 1) as u32,
                };
                let part = EnvelopePart {
                    sha256: hex::encode(out.hash.finalize()),
                    size: out.len,
                };
                Ok((temp, meta, part))
            })
            .await?;
            self.upload(temp.path(), &part.sha256).await?;
            temps.push(temp);
            metas.push(meta);
            parts.push(part);
        }
        let to: Vec<String> = envelope
            .recipients
            .iter()
            .map(|r| r.address.clone())
            .collect();
        let head = Head {
            v: 1,
            message_id: envelope.message_id.clone(),
            from: self.account.address.clone(),
            to: to.clone(),
            subject: msg.subject.clone(),
            body: msg.body.clone(),
            attachments: metas,
            sent_at: now(),
        };
        let external = self
            .external_copies(&envelope, &head, &msg.attachments)
            .await?;
        let sealed =
            self.seal_bytes(&certs, &serde_json::to_vec(&head).expect("head serialises"))?;
        parts[0] = EnvelopePart {
            sha256: hex::encode(Sha256::digest(&sealed)),
            size: sealed.len() as u64,
        };
        let mut inline = std::collections::BTreeMap::new();
        if sealed.len() <= self.limits.inline_part_max_bytes {
            inline.insert(0, STANDARD.encode(&sealed));
        } else {
            let temp = tempfile::NamedTempFile::new_in(work_dir)?;
            std::fs::write(temp.path(), &sealed)?;
            self.upload(temp.path(), &parts[0].sha256).await?;
        }
        let env = Envelope {
            v: 1,
            message_id: envelope.message_id.clone(),
            from: self.account.address.clone(),
            to,
            registered: registered.to_vec(),
            pickup: pickup_map,
            external: external
                .iter()
                .map(|(a, mode, copy)| (a.clone(), ExternalCopy::of(*mode, copy)))
                .collect(),
            created_at: now(),
            parts,
        };
        let mut request = self.sign_envelope(&env, inline)?;
        // Small copies travel inline, up to one inline part's worth in all (the request body
        // is bounded); the others are uploaded first, as large parts are (docs/mail.md).
        let mut inline_room = self.limits.inline_part_max_bytes;
        for (address, _, copy) in external {
            if copy.len() <= inline_room {
                inline_room -= copy.len();
                request
                    .external_copies
                    .insert(address, STANDARD.encode(copy));
            } else {
                let temp = tempfile::NamedTempFile::new_in(work_dir)?;
                std::fs::write(temp.path(), &copy)?;
                self.upload(temp.path(), &hex::encode(Sha256::digest(&copy)))
                    .await?;
            }
        }
        request.pickups = seals;
        request.pickup_continuations = continuations;
        drop(temps);
        let resp = self.submit(&request).await?;
        let issued = codes
            .into_iter()
            .map(|(address, muc)| pickup::Issued {
                link: resp
                    .recipients
                    .iter()
                    .find(|r| r.address == address)
                    .and_then(|r| r.link.clone()),
                address,
                muc,
            })
            .collect();
        Ok((resp, issued))
    }

    /// A new unlock code for the pickup of `address` in this user's message `message_id` (after
    /// a lock-out): the same pickup key, re-locked from the sender's copy; returns the code
    /// (normal form), which opens the whole thread from now on.
    pub async fn relock(&self, message_id: &str, address: &str, kdf: &KdfParams) -> Result<String> {
        let m: MessageResponse =
            json(self.get(&format!("/messages/{message_id}")).send().await?).await?;
        let view = m
            .pickups
            .iter()
            .find(|p| p.address == address)
            .ok_or_else(|| {
                ClientError::Protocol(format!("{address} is no pickup recipient of {message_id}"))
            })?
            .clone();
        let (me, kdf) = (self.me.clone(), *kdf);
        let (req, muc) = blocking(move || pickup::relock_request(&me, &view, &kdf)).await?;
        check(
            self.post(&format!("/messages/{message_id}/pickups/relock"))
                .json(&req)
                .send()
                .await?,
        )
        .await?;
        Ok(muc)
    }

    pub async fn mailbox(&self, folder: Folder) -> Result<Vec<MailboxItem>> {
        Ok(self.mailbox_with_notices(folder).await?.items)
    }

    /// A folder with the node's notices (in the inbox: deliveries that failed).
    pub async fn mailbox_with_notices(&self, folder: Folder) -> Result<MailboxResponse> {
        json(
            self.get(&format!("/mailbox/{}", folder.as_str()))
                .send()
                .await?,
        )
        .await
    }

    /// Downloads part `index` into `out`, checking its hash against the signed envelope.
    async fn download(
        &self,
        id: &str,
        index: u32,
        expect: &EnvelopePart,
        out: &mut tokio::fs::File,
    ) -> Result<()> {
        let resp = check(
            self.get(&format!("/messages/{id}/parts/{index}"))
                .send()
                .await?,
        )
        .await?;
        let mut stream = resp.bytes_stream();
        let mut hash = Sha256::new();
        let mut len = 0u64;
        while let Some(chunk) = stream.try_next().await? {
            len += chunk.len() as u64;
            if len > expect.size {
                return Err(ClientError::Integrity(format!(
                    "part {index} is longer than the signed envelope says"
                )));
            }
            hash.update(&chunk);
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        if len != expect.size || hex::encode(hash.finalize()) != expect.sha256 {
            return Err(ClientError::Integrity(format!(
                "part {index} does not match the hash in the sender's signed envelope"
            )));
        }
        Ok(())
    }

    /// Reads a mail that came in over SMTP (`via: "smtp"`): part 0 downloaded (checked against
    /// the size and hash the node lists), decrypted with our key, parsed as MIME with
    /// `mail-parser`, protected headers first (RFC 9788: those of the decrypted entity); marks
    /// it read.
    pub async fn read_mail(&self, id: &str, work_dir: &Path) -> Result<ReadMail> {
        let (mail, folder) = self.open_mail(id, work_dir).await?;
        if folder != Folder::Sent {
            check(self.post(&format!("/messages/{id}/read")).send().await?).await?;
        }
        Ok(mail)
    }

    /// [`Session::read_mail`] without marking it read; also its folder.
    pub async fn open_mail(&self, id: &str, work_dir: &Path) -> Result<(ReadMail, Folder)> {
        let m: MessageResponse = json(self.get(&format!("/messages/{id}")).send().await?).await?;
        let (Some("smtp"), Some(arrival)) = (m.item.via.as_deref(), m.item.arrival.clone()) else {
            return Err(ClientError::Integrity(
                "this message did not come in over SMTP".into(),
            ));
        };
        let part = m
            .parts
            .first()
            .filter(|_| m.parts.len() == 1)
            .ok_or_else(|| ClientError::Integrity("a mail has exactly one part".into()))?;
        let expect = EnvelopePart {
            sha256: part.sha256.clone(),
            size: part.size,
        };
        let file = tempfile::NamedTempFile::new_in(work_dir)?;
        self.download(
            id,
            0,
            &expect,
            &mut tokio::fs::File::from_std(file.reopen()?),
        )
        .await?;
        let (me, path) = (self.me.clone(), file.path().to_owned());
        let (plain, session_key) = blocking(move || {
            let mut plain = Vec::new();
            let mut input = std::io::BufReader::new(std::fs::File::open(&path)?);
            let sk = crypto::open_unsigned_keeping_session_key(
                &me,
                &POLICY,
                SystemTime::now(),
                &mut input,
                &mut plain,
            )?;
            Ok((plain, sk))
        })
        .await?;
        // First opening of mail that came encrypted to us only: the compliance archive gets
        // the session key too (docs/compliance.md, "Waiting copies").
        let compliance_added = m.compliance_pending && m.item.folder != Folder::Sent;
        if compliance_added {
            self.add_compliance_packet(id, session_key).await?;
        }
        let parsed = mail_parser::MessageParser::default()
            .parse(&plain[..])
            .ok_or_else(|| ClientError::Integrity("the mail is not a MIME message".into()))?;
        let addresses = |a: Option<&mail_parser::Address<'_>>| -> Vec<String> {
            a.map(|a| {
                a.iter()
                    .filter_map(|x| x.address().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
        };
        let from = addresses(parsed.from())
            .into_iter()
            .next()
            .unwrap_or_else(|| m.item.from.clone());
        let attachments = parsed
            .attachments()
            .map(|a| {
                use mail_parser::MimeHeaders;
                a.attachment_name().unwrap_or("(unnamed)").to_owned()
            })
            .collect();
        let mail = ReadMail {
            message_id: m.item.message_id.clone(),
            from,
            to: addresses(parsed.to()),
            subject: parsed.subject().unwrap_or("").to_owned(),
            body: parsed
                .body_text(0)
                .map(|b| b.into_owned())
                .unwrap_or_default(),
            attachments,
            arrival,
            in_reply_to: m.item.in_reply_to.clone(),
            compliance_added,
        };
        Ok((mail, m.item.folder))
    }

    /// Wraps `session_key` for the organisation's compliance key (from the organisation record,
    /// accepted only with our pinned CA's marking: [`checked_compliance_key`]) and posts the
    /// packet (`POST /messages/{id}/compliance-key-packet`).
    async fn add_compliance_packet(
        &self,
        id: &str,
        session_key: (
            Option<sequoia_openpgp::types::SymmetricAlgorithm>,
            sequoia_openpgp::crypto::SessionKey,
        ),
    ) -> Result<()> {
        let org = self.client.org().await?;
        let Some(armored) = org.compliance_key else {
            return Err(ClientError::Unverified(
                "the message waits for a compliance key the organisation does not publish".into(),
            ));
        };
        let cert = crypto::cert_from_armored(&armored)?;
        let offered = ComplianceKeyRef {
            domain: sealpost_proto::domain_of(&self.account.address).to_owned(),
            fingerprint: cert.fingerprint().to_hex(),
            cert: armored,
            ca_cert: None,
        };
        let now = SystemTime::now();
        let cert = checked_compliance_key(&offered, &self.ca, now)?;
        let (algo, sk) = session_key;
        let packet = crypto::compliance_packet(&cert, &POLICY, now, algo, &sk)?;
        check(
            self.post(&format!("/messages/{id}/compliance-key-packet"))
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(packet)
                .send()
                .await?,
        )
        .await?;
        Ok(())
    }

    fn is_registered(&self, env: &Envelope) -> bool {
        env.registered
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&self.account.address))
    }

    /// Signs and posts the receipt statement (`accept` or `refuse`) for a message registered
    /// for us.
    async fn decide(&self, env: &Envelope, decision: ReceiptDecision) -> Result<ReceiptDecision> {
        let statement = ReceiptStatement::about(env, &self.account.address, decision, now());
        let bytes = statement.to_bytes();
        let signature = crypto::sign_detached(&self.me, &POLICY, &bytes)?;
        let req = ReceiptRequest {
            statement: String::from_utf8(bytes).expect("JSON is UTF-8"),
            signature,
        };
        json(
            self.post(&format!("/messages/{}/receipt", env.message_id))
                .json(&req)
                .send()
                .await?,
        )
        .await
    }

    /// Refuses a message registered for us, with a signed statement: its parts stay closed
    /// and the node records the refusal (`RejectionByRecipient`).
    pub async fn refuse(&self, id: &str) -> Result<ReceiptDecision> {
        let m: MessageResponse = json(self.get(&format!("/messages/{id}")).send().await?).await?;
        let env: Envelope = serde_json::from_str(&m.envelope)
            .map_err(|e| ClientError::Integrity(format!("envelope: {e}")))?;
        if env.message_id != id || !self.is_registered(&env) {
            return Err(ClientError::Integrity(
                "this message is not registered for you".into(),
            ));
        }
        self.decide(&env, ReceiptDecision::Refuse).await
    }

    /// Fetches and verifies a message's envelope and decrypts its signed head, without
    /// marking it read.
    pub async fn open_head(&self, id: &str, work_dir: &Path) -> Result<OpenedHead> {
        let m: MessageResponse = json(self.get(&format!("/messages/{id}")).send().await?).await?;
        let env: Envelope = serde_json::from_str(&m.envelope)
            .map_err(|e| ClientError::Integrity(format!("envelope: {e}")))?;
        if env.message_id != id {
            return Err(ClientError::Integrity(
                "the envelope is for another message".into(),
            ));
        }
        let sender = crypto::cert_from_armored(&m.sender_cert)?;
        crypto::verify_detached(
            &sender,
            &POLICY,
            SystemTime::now(),
            m.envelope.as_bytes(),
            &m.signature,
        )
        .map_err(|e| {
            ClientError::Integrity(format!("the envelope signature does not verify: {e}"))
        })?;
        // Registered for us: the node releases the parts once we signed the receipt
        // (docs/evidence.md, "Registered mail"); opening it is accepting it.
        if m.registered.as_ref().is_some_and(|r| r.state == "pending") && self.is_registered(&env) {
            self.decide(&env, ReceiptDecision::Accept).await?;
        }
        let head_file = tempfile::NamedTempFile::new_in(work_dir)?;
        self.download(
            id,
            0,
            &env.parts[0],
            &mut tokio::fs::File::from_std(head_file.reopen()?),
        )
        .await?;
        let (me, s) = (self.me.clone(), sender.clone());
        let head_path = head_file.path().to_owned();
        let (head_bytes, signer) = blocking(move || {
            let mut plain = Vec::new();
            let mut input = std::io::BufReader::new(std::fs::File::open(&head_path)?);
            let fpr = crypto::open(
                &me,
                &[s],
                &POLICY,
                SystemTime::now(),
                &mut input,
                &mut plain,
            )?;
            Ok((plain, fpr))
        })
        .await?;
        let head: Head = serde_json::from_slice(&head_bytes)
            .map_err(|e| ClientError::Integrity(format!("head: {e}")))?;
        if head.message_id != env.message_id || head.from != env.from {
            return Err(ClientError::Integrity(
                "the signed content belongs to another message or sender".into(),
            ));
        }
        Ok(OpenedHead {
            item: m.item,
            envelope: env,
            head,
            sender,
            signer_fingerprint: signer.to_hex(),
        })
    }

    /// Fetches, verifies and decrypts a message, marks it read, and saves its attachments
    /// into `save_to` if given (else they are decrypted and verified, then discarded).
    pub async fn read(
        &self,
        id: &str,
        save_to: Option<&Path>,
        work_dir: &Path,
    ) -> Result<ReadMessage> {
        let OpenedHead {
            item,
            envelope: env,
            head,
            sender,
            signer_fingerprint,
        } = self.open_head(id, work_dir).await?;
        let mut attachments = Vec::new();
        for a in &head.attachments {
            let part = env
                .parts
                .get(a.part as usize)
                .filter(|_| a.part > 0)
                .ok_or_else(|| {
                    ClientError::Integrity(format!("attachment {} names no part", a.name))
                })?;
            let cipher = tempfile::NamedTempFile::new_in(work_dir)?;
            self.download(
                id,
                a.part,
                part,
                &mut tokio::fs::File::from_std(cipher.reopen()?),
            )
            .await?;
            let plain = tempfile::NamedTempFile::new_in(save_to.unwrap_or(work_dir))?;
            let (me, s, cpath, pfile) = (
                self.me.clone(),
                sender.clone(),
                cipher.path().to_owned(),
                plain.reopen()?,
            );
            let (sha, len) = blocking(move || {
                let mut input = std::io::BufReader::new(std::fs::File::open(&cpath)?);
                let mut out = Hashing {
                    inner: std::io::BufWriter::new(pfile),
                    hash: Sha256::new(),
                    len: 0,
                };
                crypto::open(&me, &[s], &POLICY, SystemTime::now(), &mut input, &mut out)?;
                let file = out.inner.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()?;
                Ok((hex::encode(out.hash.finalize()), out.len))
            })
            .await?;
            drop(cipher);
            if sha != a.sha256 || len != a.size {
                return Err(ClientError::Integrity(format!(
                    "attachment {} does not match the sender's signed hash",
                    a.name
                )));
            }
            let saved_to = match save_to {
                Some(dir) => Some(persist_unique(plain, dir, &safe_file_name(&a.name))?),
                None => None,
            };
            attachments.push(ReadAttachment {
                name: a.name.clone(),
                media_type: a.media_type.clone(),
                size: a.size,
                sha256: a.sha256.clone(),
                saved_to,
            });
        }
        if item.folder != Folder::Sent {
            check(self.post(&format!("/messages/{id}/read")).send().await?).await?;
        }
        let sender_fpr = sender.fingerprint().to_hex();
        let sender_trust = self
            .trust(&env.from)
            .await?
            .keys
            .into_iter()
            .find(|k| k.fingerprint == sender_fpr);
        Ok(ReadMessage {
            message_id: env.message_id,
            from: env.from.clone(),
            to: head.to,
            subject: head.subject,
            body: head.body,
            sent_at: head.sent_at,
            signer_fingerprint,
            verified_sender: env.from,
            sender_trust,
            attachments,
        })
    }

    pub async fn move_message(&self, id: &str, from: Folder, to: Folder) -> Result<()> {
        check(
            self.post(&format!("/messages/{id}/move"))
                .json(&MoveRequest { from, to })
                .send()
                .await?,
        )
        .await?;
        Ok(())
    }

    /// `GET /messages/{id}/evidence`: the message's evidence bundle (docs/evidence.md) as the
    /// node gives it, and how many of the caller's records wait for the next sealed batch.
    pub async fn evidence(&self, id: &str) -> Result<(serde_json::Value, u64)> {
        let mut v: serde_json::Value =
            check(self.get(&format!("/messages/{id}/evidence")).send().await?)
                .await?
                .json()
                .await?;
        let pending = v["pending"].as_u64().unwrap_or(0);
        Ok((v["bundle"].take(), pending))
    }

    pub async fn delete(&self, id: &str) -> Result<()> {
        check(
            self.client
                .http
                .delete(self.client.url(&format!("/messages/{id}")))
                .bearer_auth(&self.token)
                .send()
                .await?,
        )
        .await?;
        Ok(())
    }

    pub async fn logout(self) -> Result<()> {
        check(self.post("/logout").send().await?).await?;
        Ok(())
    }
}

/// The domain a CA certificate is the organisation CA of (its `openpgp-ca@DOMAIN` user ID).
fn ca_domain(ca: &Cert) -> Option<String> {
    ca.userids().find_map(|u| {
        u.userid()
            .email_normalized()
            .ok()
            .flatten()
            .and_then(|e| e.strip_prefix("openpgp-ca@").map(str::to_owned))
    })
}

/// A compliance key an envelope answer lists, accepted only with the marking certification
/// (`crypto::compliance_key_of`) of the CA trusted for its domain: `our_ca` (pinned) for our
/// organisation's; for a peered organisation's, its CA as the answer carries it, which
/// `our_ca` must certify (the bridge). Never a key from unsigned data.
pub(crate) fn checked_compliance_key(
    k: &ComplianceKeyRef,
    our_ca: &Cert,
    now: SystemTime,
) -> Result<Cert> {
    let unverified = |why: String| {
        ClientError::Unverified(format!(
            "the compliance key offered for {}: {why}",
            k.domain
        ))
    };
    let cert = crypto::cert_from_armored(&k.cert)?;
    if !cert
        .fingerprint()
        .to_hex()
        .eq_ignore_ascii_case(&k.fingerprint)
    {
        return Err(unverified("it is not the key the answer names".into()));
    }
    let domain = k.domain.to_ascii_lowercase();
    let theirs;
    let ca = if ca_domain(our_ca).as_deref() == Some(domain.as_str()) {
        our_ca
    } else {
        let Some(armored) = &k.ca_cert else {
            return Err(unverified("it comes without its organisation's CA".into()));
        };
        theirs = crypto::cert_from_armored(armored)?;
        let ca_address = format!("openpgp-ca@{domain}");
        if !crypto::ca_certifies(our_ca, &theirs, &ca_address, &POLICY, now) {
            return Err(unverified(format!(
                "your organisation's CA does not bridge to the CA of {domain}"
            )));
        }
        &theirs
    };
    crypto::compliance_key_of(&cert, ca, &domain, &POLICY, now)
        .map_err(|e| unverified(e.to_string()))?;
    Ok(cert)
}
