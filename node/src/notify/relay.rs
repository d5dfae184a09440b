//! The link to the organisation's mail relay: lettre's SMTP client over tokio, TLS by
//! native-tls (OpenSSL, as reqwest), one step at a time so that every answer is classified
//! where it came ([`Step`]) for the delivery core.
//!
//! The login's password is read once at start (from a file or an environment variable) and
//! is never logged: neither this type nor lettre's `Credentials` can be printed.

use std::time::Duration;

use anyhow::Context;
use lettre::Address;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, Certificate, TlsParameters, TlsVersion,
};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;

use super::schedule::{Attempt, Step, answer_text};
use crate::config::{Config, RelaySecurity, unbracketed};

/// How to reach the relay, with the secrets it takes, loaded at start.
pub struct RelayLink {
    host: String,
    port: u16,
    security: RelaySecurity,
    tls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
    connect_timeout: Duration,
    command_timeout: Duration,
}

impl RelayLink {
    /// The configured relay with its password and extra trusted certificates read; `None` if
    /// no relay is configured. Fails (and so does the node's start) if a file or variable
    /// named in the configuration cannot be read, without ever showing the password.
    pub fn load(config: &Config) -> anyhow::Result<Option<RelayLink>> {
        let r = &config.relay;
        if !r.is_configured() {
            return Ok(None);
        }
        let host = unbracketed(&r.host).to_owned();
        let tls = match r.security {
            RelaySecurity::None => None,
            RelaySecurity::Starttls | RelaySecurity::Tls => {
                let mut b =
                    TlsParameters::builder(host.clone()).set_min_tls_version(TlsVersion::Tlsv12);
                if !r.ca_file.is_empty() {
                    let pem = std::fs::read(&r.ca_file)
                        .with_context(|| format!("relay.ca_file: reading {}", r.ca_file))?;
                    let certs = pem_certificates(&pem);
                    if certs.is_empty() {
                        anyhow::bail!("relay.ca_file: no PEM certificate in {}", r.ca_file);
                    }
                    for cert in certs {
                        b = b.add_root_certificate(
                            Certificate::from_pem(&cert)
                                .with_context(|| format!("relay.ca_file: {}", r.ca_file))?,
                        );
                    }
                }
                Some(b.build_native().context("relay: setting up TLS")?)
            }
        };
        let credentials = if r.username.is_empty() {
            None
        } else {
            let password = zeroize::Zeroizing::new(if !r.password_file.is_empty() {
                std::fs::read_to_string(&r.password_file)
                    .with_context(|| format!("relay.password_file: reading {}", r.password_file))?
            } else {
                std::env::var(&r.password_env).with_context(|| {
                    format!(
                        "relay.password_env: environment variable {}",
                        r.password_env
                    )
                })?
            });
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                anyhow::bail!("relay: the password for {} is empty", r.username);
            }
            Some(Credentials::new(r.username.clone(), password.to_owned()))
        };
        let helo = if r.helo_name.is_empty() {
            &config.domain
        } else {
            &r.helo_name
        };
        Ok(Some(RelayLink {
            host,
            port: r.port,
            security: r.security,
            tls,
            credentials,
            hello: ClientId::Domain(helo.clone()),
            connect_timeout: Duration::from_secs(r.connect_timeout_secs),
            command_timeout: Duration::from_secs(r.command_timeout_secs),
        }))
    }

    /// A connection ready for mail: greeted, encrypted as configured, logged in. On failure,
    /// the attempt that every notification of the batch then counts.
    pub async fn connect(&self) -> Result<Session, Attempt> {
        let timeout = self.connect_timeout;
        let late = |step| Attempt::Broken {
            step,
            error: format!("no answer within {} seconds", timeout.as_secs()),
        };
        let work = async {
            let implicit = match self.security {
                RelaySecurity::Tls => self.tls.clone(),
                _ => None,
            };
            let mut conn = AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(timeout),
                &self.hello,
                implicit,
                None,
            )
            .await
            .map_err(|e| attempt(Step::Connect, e))?;
            if self.security == RelaySecurity::Starttls {
                if !conn.can_starttls() {
                    conn.abort().await;
                    return Err(Attempt::Broken {
                        step: Step::StartTls,
                        error: "the relay does not offer STARTTLS, and the node sends nothing \
                                unencrypted (relay.security = \"starttls\")"
                            .into(),
                    });
                }
                let tls = self.tls.clone().expect("TLS parameters for starttls");
                conn.starttls(tls, &self.hello)
                    .await
                    .map_err(|e| attempt(Step::StartTls, e))?;
            }
            if let Some(credentials) = &self.credentials
                && let Err(e) = conn
                    .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                    .await
            {
                conn.abort().await;
                return Err(attempt(Step::Login, e));
            }
            Ok(conn)
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok(conn)) => Ok(Session {
                conn,
                timeout: self.command_timeout,
                broken: false,
            }),
            Ok(Err(a)) => Err(a),
            Err(_) => Err(late(Step::Connect)),
        }
    }
}

/// One connection to the relay (or, in direct delivery, to a domain's mail server), for a
/// batch of notifications.
pub struct Session {
    conn: AsyncSmtpConnection,
    timeout: Duration,
    broken: bool,
}

impl Session {
    /// A session over a connection made ready elsewhere (`mx.rs`), each answer awaited at
    /// most `timeout`.
    pub(super) fn over(conn: AsyncSmtpConnection, timeout: Duration) -> Session {
        Session {
            conn,
            timeout,
            broken: false,
        }
    }

    /// Whether the connection can take another mail.
    pub fn is_usable(&self) -> bool {
        !self.broken && !self.conn.has_broken()
    }

    /// Hands one mail to the relay: `MAIL FROM`, `RCPT TO`, `DATA`, the data. Accepted only
    /// on the relay's positive answer to the end of the data. After a refusal the
    /// transaction is reset so the connection can take the next mail.
    pub async fn send(&mut self, from: &str, to: &str, mail: &[u8]) -> Attempt {
        match self.transaction(from, to, mail).await {
            Ok(r) => Attempt::Accepted {
                answer: answer_text(r.code(), &r.message().collect::<Vec<_>>().join(" ")),
            },
            Err(a) => {
                let reset = matches!(a, Attempt::Refused { .. })
                    && self.is_usable()
                    && within(self.timeout, Step::MailFrom, self.conn.command(Rset))
                        .await
                        .is_ok();
                if !reset {
                    self.broken = true;
                }
                a
            }
        }
    }

    async fn transaction(
        &mut self,
        from: &str,
        to: &str,
        mail: &[u8],
    ) -> Result<Response, Attempt> {
        let bad = |step, what: &str| Attempt::Broken {
            step,
            error: format!("{what} is not a usable address"),
        };
        let from: Address = from.parse().map_err(|_| bad(Step::MailFrom, from))?;
        let to: Address = to.parse().map_err(|_| bad(Step::Recipient, to))?;
        let t = self.timeout;
        let c = &mut self.conn;
        within(t, Step::MailFrom, c.command(Mail::new(Some(from), vec![]))).await?;
        within(t, Step::Recipient, c.command(Rcpt::new(to, vec![]))).await?;
        within(t, Step::Data, c.command(Data)).await?;
        within(t, Step::EndOfData, c.message(mail)).await
    }

    /// Says goodbye (best effort: everything that mattered was answered before).
    pub async fn quit(mut self) {
        if self.is_usable() {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.conn.quit()).await;
        }
    }
}

/// `answer` within `timeout`, as the delivery core sees it.
pub(super) async fn within<T>(
    timeout: Duration,
    step: Step,
    answer: impl Future<Output = Result<T, SmtpError>>,
) -> Result<T, Attempt> {
    match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(attempt(step, e)),
        Err(_) => Err(Attempt::Broken {
            step,
            error: format!("no answer within {} seconds", timeout.as_secs()),
        }),
    }
}

/// A lettre error at `step` as the delivery core sees it: the relay's answer if it gave one.
pub(super) fn attempt(step: Step, e: SmtpError) -> Attempt {
    if let Some(code) = e.status() {
        let text = std::error::Error::source(&e)
            .map(|s| s.to_string())
            .unwrap_or_default();
        return Attempt::Refused {
            step,
            code: u16::from(code),
            answer: answer_text(code, &text),
        };
    }
    let mut error = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !error.contains(&s_text) {
            error = format!("{error}: {s_text}");
        }
        source = s.source();
    }
    Attempt::Broken { step, error }
}

/// Each PEM certificate block in `pem`.
pub(super) fn pem_certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let text = String::from_utf8_lossy(pem);
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        let end = start + len + END.len();
        out.push(format!("{}\n", &rest[start..end]).into_bytes());
        rest = &rest[end..];
    }
    out
}
