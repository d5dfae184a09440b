//! The SMTP door (`[smtp_in]`, docs/mail.md "SMTP in"): mail from anywhere for this node's
//! users and guests, as an MX takes it. A thin tokio driver around [`session::Session`] (the
//! protocol, no I/O, time passed in): it owns the sockets, the connection limits and STARTTLS
//! (OpenSSL through `tokio-native-tls`), checks each `RCPT` and stores each mail through the
//! service layer (`service::mail::smtp_recipient`, `SmtpArrival`), and answers `250` only
//! after the commit. SPF, DKIM and DMARC are looked up here (`auth.rs`) and stored with the
//! mail. No AUTH: this door relays nothing. Bounces of the node's own outside mail (to a
//! `bounce+…` address) go alone in their mail and through `service::mail::bounce_recipient`
//! and `BounceMail`: held in memory, never stored as mail.
//!
//! The submission gateway (`[submission]`, docs/mail.md "Submission gateway") is the same
//! driver and session with AUTH: [`start_submission`]. Its user authenticates with an app
//! password (`service::app_passwords::authenticate`), and each mail is sealed and stored
//! through `service::mail::gateway_submit`; the plaintext is held in memory only.

pub mod auth;
pub mod session;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::conns::{ConnTable, client_key};
use crate::service::mail::{
    BounceMail, BounceTarget, GatewayMail, SmtpArrival, SmtpRecipient, Transport, bounce_recipient,
    gateway_recipient, gateway_submit, smtp_recipient,
};
use crate::service::{Context, ServiceError};
use crate::storage::Account;
use session::{Session, Settings, Step};

/// The running door; [`Driver::stop`] ends it and every connection.
pub struct Driver {
    task: tokio::task::JoinHandle<()>,
}

impl Driver {
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Binds a door's listening address (`[smtp_in] listen`, `[submission] listen`).
pub async fn bind(listen: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {what} {listen}"))
}

/// Starts serving `listener` as the MX door (`[smtp_in]`).
pub fn start(ctx: Arc<Context>, listener: TcpListener) -> anyhow::Result<Driver> {
    let config = ctx.config.smtp_in.clone();
    let tls = match (config.tls_cert.as_str(), config.tls_key.as_str()) {
        ("", _) | (_, "") => None,
        (cert, key) => Some(tls_acceptor(cert, key)?),
    };
    let checker = Arc::new(auth::Checker::new(&config.resolver).context("smtp_in.resolver")?);
    let settings = Settings {
        hostname: hostname(&ctx, &config.hostname),
        max_message_bytes: config.max_message_bytes,
        max_recipients: config.max_recipients,
        max_errors: config.max_errors,
        tls_available: tls.is_some(),
        command_timeout: Duration::from_secs(config.command_timeout_secs),
        data_timeout: Duration::from_secs(config.data_timeout_secs),
        submission: false,
    };
    let door = Door {
        ctx,
        tls,
        implicit_tls: false,
        checker: Some(checker),
        settings,
        greet_pause: Duration::from_millis(config.greet_pause_ms),
        mails: RateTable::new(config.messages_per_ip_per_minute, Duration::from_secs(60)),
    };
    let limits = (
        config.max_connections,
        config.max_connections_per_ip,
        config.connections_per_ip_per_minute,
    );
    Ok(serve(door, listener, limits))
}

/// Starts serving `listener` as the submission gateway (`[submission]`): STARTTLS (or TLS
/// from the first byte), AUTH PLAIN with an app password, then mail from the user's own
/// address only.
pub fn start_submission(ctx: Arc<Context>, listener: TcpListener) -> anyhow::Result<Driver> {
    let config = ctx.config.submission.clone();
    let tls = tls_acceptor(&config.tls_cert, &config.tls_key).context("submission TLS")?;
    let settings = Settings {
        hostname: hostname(&ctx, &config.hostname),
        max_message_bytes: config.max_message_bytes,
        max_recipients: config.max_recipients,
        max_errors: config.max_errors,
        tls_available: !config.implicit_tls,
        command_timeout: Duration::from_secs(config.command_timeout_secs),
        data_timeout: Duration::from_secs(config.data_timeout_secs),
        submission: true,
    };
    let door = Door {
        ctx,
        tls: Some(tls),
        implicit_tls: config.implicit_tls,
        checker: None,
        settings,
        greet_pause: Duration::ZERO,
        mails: RateTable::new(config.messages_per_user_per_hour, Duration::from_secs(3600)),
    };
    let limits = (
        config.max_connections,
        config.max_connections_per_ip,
        config.connections_per_ip_per_minute,
    );
    Ok(serve(door, listener, limits))
}

fn hostname(ctx: &Context, configured: &str) -> String {
    match configured {
        "" => ctx.config.domain.clone(),
        h => h.to_owned(),
    }
}

/// Accepts connections within `(max, max_per_ip, per_ip_per_minute)`.
fn serve(door: Door, listener: TcpListener, limits: (usize, usize, u32)) -> Driver {
    let door = Arc::new(door);
    let table = Arc::new(ConnTable::new(limits.0, limits.1));
    let rate = Arc::new(RateTable::new(limits.2, Duration::from_secs(60)));
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "smtp_in: accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            while connections.try_join_next().is_some() {}
            let _ = stream.set_nodelay(true);
            let slot = if rate.admit(client_key(peer.ip()), Instant::now()) {
                table.admit(peer.ip())
            } else {
                None
            };
            let door = door.clone();
            connections.spawn(async move {
                match slot {
                    Some(_slot) => door.serve(stream, peer).await,
                    None => refuse(stream, &door.settings.hostname).await,
                }
            });
        }
    });
    Driver { task }
}

/// Too many connections: one answer, then closed.
async fn refuse(mut stream: TcpStream, hostname: &str) {
    let line =
        format!("421 4.7.0 {hostname} too many connections from your address; try later\r\n");
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(line.as_bytes())).await;
    let _ = stream.shutdown().await;
}

fn tls_acceptor(cert: &str, key: &str) -> anyhow::Result<tokio_native_tls::TlsAcceptor> {
    let cert = std::fs::read(cert).with_context(|| format!("reading smtp_in.tls_cert {cert}"))?;
    let key = std::fs::read(key).with_context(|| format!("reading smtp_in.tls_key {key}"))?;
    let identity = native_tls::Identity::from_pkcs8(&cert, &key)
        .context("smtp_in.tls_cert and tls_key: a PEM certificate and its PKCS#8 key")?;
    let acceptor = native_tls::TlsAcceptor::builder(identity)
        .min_protocol_version(Some(native_tls::Protocol::Tlsv12))
        .build()?;
    Ok(tokio_native_tls::TlsAcceptor::from(acceptor))
}

/// Events per key (a client address, a user) and window: new connections, mails. Counted in
/// fixed windows from a key's first event; bounded (past 100,000 keys, stale ones go).
struct RateTable<K> {
    limit: u32,
    window: Duration,
    seen: Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K: std::hash::Hash + Eq> RateTable<K> {
    fn new(limit: u32, window: Duration) -> RateTable<K> {
        RateTable {
            limit,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an event of `key` at `now`: whether it is within the limit.
    fn admit(&self, key: K, now: Instant) -> bool {
        let mut seen = self.seen.lock().expect("rate table");
        if seen.len() >= 100_000 {
            seen.retain(|_, (since, _)| now.duration_since(*since) < self.window);
        }
        let entry = seen.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= self.limit
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Door {
    ctx: Arc<Context>,
    tls: Option<tokio_native_tls::TlsAcceptor>,
    /// TLS from the first byte (submission on port 465).
    implicit_tls: bool,
    /// SPF, DKIM and DMARC of arriving mail (the MX door only).
    checker: Option<Arc<auth::Checker>>,
    settings: Settings,
    greet_pause: Duration,
    /// Mails begun per client address and minute (MX), or per user and hour (gateway).
    mails: RateTable<MailSender>,
}

/// Whom a door counts mails by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum MailSender {
    /// A client address (IPv6: its /64), for the MX.
    Client(IpAddr),
    /// An authenticated user, for the gateway.
    User(i64),
}

/// One connection's mail under way: the MX's recipients and arrival, or the gateway's user,
/// recipients and mail.
enum Work {
    Inbound {
        recipients: Vec<(String, SmtpRecipient)>,
        arrival: Option<SmtpArrival>,
        /// A bounce address taken (`service::mail::bounce`): alone in its mail.
        bounce: Option<(String, BounceTarget)>,
        bounce_mail: Option<BounceMail>,
    },
    Submission {
        account: Option<Box<Account>>,
        to: Vec<String>,
        mail: Option<GatewayMail>,
    },
}

/// The SMTP answer to a refusal by the service layer. The text is the error's own words, kept
/// on one line.
fn reply_for(e: &ServiceError, address: &str) -> String {
    let text = e.to_string().replace(|c: char| c.is_control(), " ");
    match e.code() {
        "unknown_recipient" => format!("550 5.1.1 <{address}>: no such mailbox here\r\n"),
        "too_large" => "552 5.3.4 Message too big for this server\r\n".into(),
        "malformed_mail" => format!("550 5.6.0 {text}\r\n"),
        "too_many_recipients" => "452 4.5.3 Too many recipients\r\n".into(),
        // RFC 3463: the mail system is out of room; the sending server keeps it and retries.
        "storage_full" => "452 4.3.1 Insufficient system storage\r\n".into(),
        "invalid_address" => "501 5.1.3 Bad recipient address\r\n".into(),
        "gateway_mode_unsupported"
        | "recipient_revoked"
        | "no_delivery_mode"
        | "guest_recipient_not_allowed"
        | "sender_mismatch"
        | "mode_unavailable" => format!("550 5.7.1 {text}\r\n"),
        _ => {
            tracing::warn!(error = %e, "smtp: temporary failure");
            "451 4.3.0 Temporary failure; try again later\r\n".into()
        }
    }
}

impl Door {
    async fn serve(&self, stream: TcpStream, peer: SocketAddr) {
        let mut session = Session::new(self.settings.clone(), Instant::now().into_std());
        let mut io: Box<dyn Io> = match (self.implicit_tls, &self.tls) {
            (true, Some(acceptor)) => {
                let handshake =
                    tokio::time::timeout(self.settings.command_timeout, acceptor.accept(stream));
                match handshake.await {
                    Ok(Ok(tls)) => {
                        session.tls_started();
                        Box::new(tls)
                    }
                    _ => return,
                }
            }
            _ => {
                if self.talks_first(&stream).await {
                    session.talked_first();
                }
                Box::new(stream)
            }
        };
        if let Err(e) = self.run(&mut session, &mut io, peer).await {
            tracing::debug!(error = %e, %peer, "smtp_in: connection ended");
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), io.shutdown()).await;
    }

    /// Whether the client sent anything before the greeting (within the greet pause).
    async fn talks_first(&self, stream: &TcpStream) -> bool {
        let mut b = [0u8; 1];
        if self.greet_pause.is_zero() {
            return futures::FutureExt::now_or_never(stream.peek(&mut b))
                .is_some_and(|r| r.is_ok_and(|n| n > 0));
        }
        matches!(
            tokio::time::timeout(self.greet_pause, stream.peek(&mut b)).await,
            Ok(Ok(n)) if n > 0
        )
    }

    async fn run(
        &self,
        session: &mut Session,
        io: &mut Box<dyn Io>,
        peer: SocketAddr,
    ) -> anyhow::Result<()> {
        let mut out: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut work = match self.settings.submission {
            false => Work::Inbound {
                recipients: Vec::new(),
                arrival: None,
                bounce: None,
                bounce_mail: None,
            },
            true => Work::Submission {
                account: None,
                to: Vec::new(),
                mail: None,
            },
        };
        loop {
            match session.step() {
                Step::Reply(r) => out.extend_from_slice(r.as_bytes()),
                Step::Authenticate { user, secret } => {
                    let result = self.authenticate(&mut work, &user, &secret.0, peer).await;
                    session.authenticated(result);
                }
                Step::CheckRecipient(address) => {
                    let (mail_from, named) = session.envelope();
                    let (mail_from, named) = (mail_from.to_owned(), named.to_vec());
                    let result = self
                        .check_recipient(&mut work, &mail_from, &named, &address)
                        .await;
                    session.recipient_checked(result);
                }
                Step::BeginData => {
                    let (_, named) = session.envelope();
                    let result = self.begin_data(&mut work, named, peer);
                    session.data_began(result);
                }
                Step::Data(bytes) => {
                    if let Err(reply) = self.data(&mut work, &bytes) {
                        session.data_refused(reply);
                    }
                }
                Step::EndData => {
                    let result = self.end_data(&mut work, session, peer).await;
                    session.data_committed(result);
                }
                Step::StartTls => {
                    io.write_all(&out).await?;
                    io.flush().await?;
                    out.clear();
                    let acceptor = self.tls.as_ref().context("STARTTLS without TLS")?;
                    let plain = std::mem::replace(io, Box::new(empty::EmptyDuplex));
                    let handshake =
                        tokio::time::timeout(self.settings.command_timeout, acceptor.accept(plain))
                            .await
                            .context("TLS handshake timed out")??;
                    *io = Box::new(handshake);
                    session.tls_started();
                }
                Step::NeedInput => {
                    if !out.is_empty() {
                        io.write_all(&out).await?;
                        io.flush().await?;
                        out.clear();
                    }
                    let deadline = Instant::from_std(session.deadline());
                    match tokio::time::timeout_at(deadline, io.read(&mut buf)).await {
                        Ok(Ok(0)) => session.eof(),
                        Ok(Ok(n)) => session.feed(&buf[..n], Instant::now().into_std()),
                        Ok(Err(e)) => return Err(e.into()),
                        Err(_) => session.tick(Instant::now().into_std()),
                    }
                }
                Step::Close => {
                    if !out.is_empty() {
                        let _ = io.write_all(&out).await;
                        let _ = io.flush().await;
                    }
                    return Ok(());
                }
            }
        }
    }
}

impl Door {
    /// AUTH PLAIN on the submission gateway: the user's address and an app password of theirs.
    /// Every refusal is the same 535 (454 while failures are throttled).
    async fn authenticate(
        &self,
        work: &mut Work,
        user: &str,
        secret: &str,
        peer: SocketAddr,
    ) -> Result<String, String> {
        let Work::Submission { account, .. } = work else {
            return Err("502 5.7.0 No AUTH here\r\n".into());
        };
        let now = SystemTime::now();
        match crate::service::app_passwords::authenticate(&self.ctx, user, secret, peer.ip(), now)
            .await
        {
            Ok(a) => {
                let address = a.address.clone();
                *account = Some(Box::new(a));
                Ok(address)
            }
            Err(e) if e.code() == "too_many_attempts" => {
                Err("454 4.7.0 Too many failed logins: try again later\r\n".into())
            }
            Err(_) => Err("535 5.7.8 Authentication credentials invalid\r\n".into()),
        }
    }

    /// A `RCPT TO`; `named` are the recipients the session still holds (what a `RSET` or a new
    /// mail dropped is dropped here too, so a client cannot grow the list without bound).
    async fn check_recipient(
        &self,
        work: &mut Work,
        mail_from: &str,
        named: &[String],
        address: &str,
    ) -> Result<(), String> {
        let ctx = &*self.ctx;
        let now = SystemTime::now();
        let held = |a: &String| named.iter().any(|n| n.eq_ignore_ascii_case(a));
        match work {
            Work::Inbound {
                recipients, bounce, ..
            } => {
                recipients.retain(|(a, _)| held(a));
                if bounce.as_ref().is_some_and(|(a, _)| !held(a)) {
                    *bounce = None;
                }
            }
            Work::Submission { to, .. } => to.retain(held),
        }
        // A bounce goes alone: one row's report per mail (the client sends the rest after).
        const ALONE: &str = "452 4.5.3 One bounce per mail, alone: send the rest separately\r\n";
        match work {
            Work::Inbound {
                recipients, bounce, ..
            } => match bounce_recipient(ctx, address, mail_from, now).await {
                Ok(Some(target)) if recipients.is_empty() && bounce.is_none() => {
                    *bounce = Some((address.to_owned(), target));
                    Ok(())
                }
                Ok(Some(_)) => Err(ALONE.into()),
                Err(e) => Err(reply_for(&e, address)),
                Ok(None) if bounce.is_some() => Err(ALONE.into()),
                Ok(None) => match smtp_recipient(ctx, address, now).await {
                    Ok(r) => {
                        recipients.push((address.to_owned(), r));
                        Ok(())
                    }
                    Err(e) => Err(reply_for(&e, address)),
                },
            },
            Work::Submission { account, to, .. } => {
                let account = account
                    .as_ref()
                    .ok_or("530 5.7.0 Authentication required\r\n")?;
                let normal = gateway_recipient(ctx, account, address, now)
                    .await
                    .map_err(|e| reply_for(&e, address))?;
                to.push(normal);
                Ok(())
            }
        }
    }

    /// `DATA`: the mail is begun, unless its sender (client address or user) is past its rate.
    fn begin_data(
        &self,
        work: &mut Work,
        named: &[String],
        peer: SocketAddr,
    ) -> Result<(), String> {
        let limit = self.settings.max_message_bytes;
        let sender = match work {
            Work::Inbound { .. } => MailSender::Client(client_key(peer.ip())),
            Work::Submission { account, .. } => {
                MailSender::User(account.as_ref().map_or(0, |a| a.id))
            }
        };
        if !self.mails.admit(sender, Instant::now()) {
            if let Work::Inbound {
                recipients, bounce, ..
            } = work
            {
                recipients.clear();
                *bounce = None;
            }
            return Err(match sender {
                MailSender::Client(_) => {
                    "451 4.7.0 Too many mails from your address: try again later\r\n"
                }
                MailSender::User(_) => {
                    "451 4.7.0 You have sent too many mails this hour: try again later\r\n"
                }
            }
            .into());
        }
        match work {
            Work::Inbound {
                recipients,
                arrival,
                bounce,
                bounce_mail,
            } => {
                *bounce_mail = None;
                if let Some((address, target)) = bounce.take() {
                    recipients.clear();
                    if named.contains(&address) {
                        // Held in memory only: nothing of a bounce is stored.
                        *bounce_mail = Some(BounceMail::new(target, limit));
                        return Ok(());
                    }
                }
                let chosen: Vec<SmtpRecipient> = recipients
                    .iter()
                    .filter(|(a, _)| named.contains(a))
                    .map(|(_, r)| r.clone())
                    .collect();
                recipients.clear();
                let a = SmtpArrival::begin(&self.ctx, chosen, limit, SystemTime::now())
                    .map_err(|e| reply_for(&e, ""))?;
                *arrival = Some(a);
                Ok(())
            }
            Work::Submission { mail, .. } => {
                *mail = Some(GatewayMail::new(limit));
                Ok(())
            }
        }
    }

    fn data(&self, work: &mut Work, bytes: &[u8]) -> Result<(), String> {
        let result = match work {
            Work::Inbound {
                bounce_mail: bounce @ Some(_),
                ..
            } => match bounce.as_mut().map(|b| b.write(bytes)) {
                Some(Err(e)) => {
                    *bounce = None;
                    Err(e)
                }
                _ => Ok(()),
            },
            Work::Inbound { arrival, .. } => match arrival.as_mut().map(|a| a.write(bytes)) {
                Some(Err(e)) => {
                    *arrival = None;
                    Err(e)
                }
                _ => Ok(()),
            },
            Work::Submission { mail, .. } => match mail.as_mut().map(|m| m.write(bytes)) {
                Some(Err(e)) => {
                    *mail = None;
                    Err(e)
                }
                _ => Ok(()),
            },
        };
        result.map_err(|e| reply_for(&e, ""))
    }

    async fn end_data(
        &self,
        work: &mut Work,
        session: &Session,
        peer: SocketAddr,
    ) -> Result<(), String> {
        let ctx = &*self.ctx;
        let temporary = || "451 4.3.0 Temporary failure; try again later\r\n".to_owned();
        let (mail_from, named) = session.envelope();
        match work {
            Work::Inbound {
                arrival,
                bounce_mail,
                ..
            } => {
                if let Some(b) = bounce_mail.take() {
                    // `250` once its state change (if any) is committed; nothing else kept.
                    return b
                        .finish(ctx, SystemTime::now())
                        .await
                        .map(|_| ())
                        .map_err(|e| reply_for(&e, ""));
                }
                let a = arrival.take().ok_or_else(temporary)?;
                let checker = self.checker.as_ref().ok_or_else(temporary)?;
                let results = checker
                    .check(
                        a.raw(),
                        peer.ip(),
                        session.helo(),
                        &self.settings.hostname,
                        mail_from,
                    )
                    .await;
                let transport = Transport {
                    tls: session.is_tls(),
                    spf: results.spf,
                    dkim: results.dkim,
                    dmarc: results.dmarc,
                    mail_from: mail_from.to_owned(),
                };
                a.finish(ctx, transport, SystemTime::now())
                    .await
                    .map(|_| ())
                    .map_err(|e| reply_for(&e, ""))
            }
            Work::Submission { account, to, mail } => {
                let m = mail.take().ok_or_else(temporary)?;
                let account = account.as_ref().ok_or_else(temporary)?;
                let chosen: Vec<String> = std::mem::take(to)
                    .into_iter()
                    .filter(|a| named.iter().any(|n| n.eq_ignore_ascii_case(a)))
                    .collect();
                let submitted = gateway_submit(ctx, account, &chosen, m, SystemTime::now())
                    .await
                    .map_err(|e| reply_for(&e, ""))?;
                tracing::info!(
                    message_id = %submitted.message_id,
                    recipients = submitted.recipients.len(),
                    "submission: sealed and stored"
                );
                Ok(())
            }
        }
    }
}

/// A stand-in while the plain stream is handed to the TLS handshake.
mod empty {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct EmptyDuplex;

    impl tokio::io::AsyncRead for EmptyDuplex {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl tokio::io::AsyncWrite for EmptyDuplex {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            b: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Poll::Ready(Ok(b.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_count_per_key_and_window() {
        let t = Instant::now();
        let table = RateTable::new(2, Duration::from_secs(60));
        assert!(table.admit(MailSender::User(1), t));
        assert!(table.admit(MailSender::User(1), t + Duration::from_secs(1)));
        assert!(!table.admit(MailSender::User(1), t + Duration::from_secs(2)));
        // Another key has its own count; a new window starts afresh.
        assert!(table.admit(MailSender::User(2), t + Duration::from_secs(2)));
        assert!(table.admit(MailSender::User(1), t + Duration::from_secs(60)));
    }
}
