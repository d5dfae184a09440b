//! The SMTP door (`[smtp_in]`, docs/mail.md "SMTP in"): mail from anywhere for this node's
//! users and guests, as an MX takes it. A thin tokio driver around [`session::Session`] (the
//! protocol, no I/O, time passed in): it owns the sockets, the connection limits and STARTTLS
//! (OpenSSL through `tokio-native-tls`), checks each `RCPT` and stores each mail through the
//! service layer (`service::mail::smtp_recipient`, `SmtpArrival`), and answers `250` only
//! after the commit. SPF, DKIM and DMARC are looked up here (`auth.rs`) and stored with the
//! mail. No AUTH: this door relays nothing.

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

use crate::config::SmtpInConfig;
use crate::conns::{ConnTable, client_key};
use crate::service::mail::{SmtpArrival, SmtpRecipient, Transport, smtp_recipient};
use crate::service::{Context, ServiceError};
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

/// Binds `[smtp_in] listen`.
pub async fn bind(config: &SmtpInConfig) -> anyhow::Result<TcpListener> {
    TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding smtp_in.listen {}", config.listen))
}

/// Starts serving `listener`.
pub fn start(ctx: Arc<Context>, listener: TcpListener) -> anyhow::Result<Driver> {
    let config = ctx.config.smtp_in.clone();
    let tls = match (config.tls_cert.as_str(), config.tls_key.as_str()) {
        ("", _) | (_, "") => None,
        (cert, key) => Some(tls_acceptor(cert, key)?),
    };
    let checker = Arc::new(auth::Checker::new(&config.resolver).context("smtp_in.resolver")?);
    let hostname = match config.hostname.as_str() {
        "" => ctx.config.domain.clone(),
        h => h.to_owned(),
    };
    let settings = Settings {
        hostname,
        max_message_bytes: config.max_message_bytes,
        max_recipients: config.max_recipients,
        max_errors: config.max_errors,
        tls_available: tls.is_some(),
        command_timeout: Duration::from_secs(config.command_timeout_secs),
        data_timeout: Duration::from_secs(config.data_timeout_secs),
    };
    let door = Arc::new(Door {
        ctx,
        tls,
        checker,
        settings,
        greet_pause: Duration::from_millis(config.greet_pause_ms),
    });
    let table = Arc::new(ConnTable::new(
        config.max_connections,
        config.max_connections_per_ip,
    ));
    let rate = Arc::new(RateTable::new(config.connections_per_ip_per_minute));
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
            let slot = if rate.admit(peer.ip(), Instant::now()) {
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
    Ok(Driver { task })
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

/// New connections per client address and minute.
struct RateTable {
    per_minute: u32,
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl RateTable {
    fn new(per_minute: u32) -> RateTable {
        RateTable {
            per_minute,
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn admit(&self, ip: IpAddr, now: Instant) -> bool {
        let minute = Duration::from_secs(60);
        let mut seen = self.seen.lock().expect("rate table");
        if seen.len() >= 100_000 {
            seen.retain(|_, (since, _)| now.duration_since(*since) < minute);
        }
        let entry = seen.entry(client_key(ip)).or_insert((now, 0));
        if now.duration_since(entry.0) >= minute {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= self.per_minute
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Door {
    ctx: Arc<Context>,
    tls: Option<tokio_native_tls::TlsAcceptor>,
    checker: Arc<auth::Checker>,
    settings: Settings,
    greet_pause: Duration,
}

/// The SMTP answer to a refusal by the service layer.
fn reply_for(e: &ServiceError, address: &str) -> String {
    match e.code() {
        "unknown_recipient" => format!("550 5.1.1 <{address}>: no such mailbox here\r\n"),
        "too_large" => "552 5.3.4 Message too big for this server\r\n".into(),
        "malformed_mail" => format!("550 5.6.0 {e}\r\n"),
        _ => {
            tracing::warn!(error = %e, "smtp_in: temporary failure");
            "451 4.3.0 Temporary failure; try again later\r\n".into()
        }
    }
}

impl Door {
    async fn serve(&self, stream: TcpStream, peer: SocketAddr) {
        let mut session = Session::new(self.settings.clone(), Instant::now().into_std());
        if self.talks_first(&stream).await {
            session.talked_first();
        }
        let mut io: Box<dyn Io> = Box::new(stream);
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
        let ctx = &*self.ctx;
        let mut out: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut recipients: Vec<(String, SmtpRecipient)> = Vec::new();
        let mut arrival: Option<SmtpArrival> = None;
        loop {
            match session.step() {
                Step::Reply(r) => out.extend_from_slice(r.as_bytes()),
                Step::CheckRecipient(address) => {
                    match smtp_recipient(ctx, &address, SystemTime::now()).await {
                        Ok(r) => {
                            recipients.push((address, r));
                            session.recipient_checked(Ok(()));
                        }
                        Err(e) => session.recipient_checked(Err(reply_for(&e, &address))),
                    }
                }
                Step::BeginData => {
                    let (_, named) = session.envelope();
                    let chosen: Vec<SmtpRecipient> = recipients
                        .iter()
                        .filter(|(a, _)| named.contains(a))
                        .map(|(_, r)| r.clone())
                        .collect();
                    recipients.clear();
                    let limit = self.settings.max_message_bytes;
                    match SmtpArrival::begin(ctx, chosen, limit, SystemTime::now()) {
                        Ok(a) => {
                            arrival = Some(a);
                            session.data_began(Ok(()));
                        }
                        Err(e) => session.data_began(Err(reply_for(&e, ""))),
                    }
                }
                Step::Data(bytes) => {
                    if let Some(a) = arrival.as_mut()
                        && let Err(e) = a.write(&bytes)
                    {
                        arrival = None;
                        session.data_refused(reply_for(&e, ""));
                    }
                }
                Step::EndData => {
                    let Some(a) = arrival.take() else {
                        session.data_committed(Err(
                            "451 4.3.0 Temporary failure; try again later\r\n".into(),
                        ));
                        continue;
                    };
                    let (mail_from, _) = session.envelope();
                    let results = self
                        .checker
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
                    let result = a.finish(ctx, transport, SystemTime::now()).await;
                    session.data_committed(result.map(|_| ()).map_err(|e| reply_for(&e, "")));
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
