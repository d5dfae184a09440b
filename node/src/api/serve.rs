//! Serving the router on a TCP listener: HTTP/1.1 with keep-alive, bounded in time and in
//! connections, with graceful shutdown.
//!
//! `axum::serve` sets no timer, so a client that never finished its request head held a
//! connection (a file descriptor and a task) for ever; it offers no connection limits either.
//! This loop is what it does (accept, serve each connection on its task, on shutdown stop
//! accepting, let requests in flight finish, wait for every connection) plus:
//!
//! - hyper's header-read timeout (`http.header_read_timeout_secs`). hyper starts it when the
//!   connection is ready for a request head, so it also closes an idle kept-alive connection;
//! - an idle timeout on the socket (`http.idle_timeout_secs`): no byte either way for that long
//!   in the middle of a request (a stalled upload, a client that stopped reading) closes it;
//! - a cap on connections, in all and per client address (`http.max_connections`,
//!   `http.max_connections_per_ip`): a connection over either is closed as soon as it is
//!   accepted, before anything is read from it.
//!
//! It must not look into requests: everything about them is the router's.

use std::future::Future;
use std::io;

use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::config::HttpConfig;
use crate::conns::ConnTable;

/// The time and connection bounds of the HTTP server.
#[derive(Clone, Debug)]
pub(crate) struct ConnLimits {
    pub header_read: Duration,
    pub idle: Duration,
    pub max_connections: usize,
    pub max_per_ip: usize,
}

impl ConnLimits {
    pub fn from_config(http: &HttpConfig) -> Self {
        ConnLimits {
            header_read: Duration::from_secs(http.header_read_timeout_secs),
            idle: Duration::from_secs(http.idle_timeout_secs),
            max_connections: http.max_connections,
            max_per_ip: http.max_connections_per_ip,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets the requests in flight
/// finish and returns once every connection is closed.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // Shutdown is signalled by dropping the receiver; every connection waits for `closed()`.
    let (signal_tx, signal_rx) = watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        drop(signal_rx);
    });
    // Each connection task holds a receiver; all dropped means all connections are done.
    let (done_tx, done_rx) = watch::channel(());
    let table = Arc::new(ConnTable::new(limits.max_connections, limits.max_per_ip));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);

    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = signal_tx.closed() => break,
        };
        let Some(slot) = table.admit(remote.ip()) else {
            // Dropping the socket closes it: nothing is read, nothing is answered.
            tracing::debug!(client = %remote.ip(), "connection refused: over the connection limit");
            continue;
        };
        let svc = app
            .clone()
            .map_request(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(remote));
                req
            });
        let conn = http.serve_connection(
            TokioIo::new(IdleTimeout::new(tcp, limits.idle)),
            TowerToHyperService::new(svc),
        );
        let signal_tx = signal_tx.clone();
        let done_rx = done_rx.clone();
        tokio::spawn(async move {
            let mut conn = pin!(conn);
            let mut signal = pin!(signal_tx.closed());
            let mut stopping = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            // Timeouts, resets, malformed requests: the client's business.
                            tracing::debug!(client = %remote, error = %e, "connection ended");
                        }
                        break;
                    }
                    _ = &mut signal, if !stopping => {
                        // Finishes the request in flight, then closes; closes an idle one now.
                        conn.as_mut().graceful_shutdown();
                        stopping = true;
                    }
                }
            }
            drop(slot);
            drop(done_rx);
        });
    }
    drop(done_rx);
    drop(listener);
    done_tx.closed().await;
    Ok(())
}

/// What `accept` failing means: a connection that went away before we took it is nothing; a
/// full file table or memory is worth a log line and a pause instead of a busy loop.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// A socket that fails with `TimedOut` once no byte has moved either way for `idle` while
/// it is being waited on. The timer is moved lazily: progress only notes the time, and the
/// timer is reset when it fires early, so the busy path costs a clock read per operation.
struct IdleTimeout<T> {
    io: T,
    idle: Duration,
    last: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<T> IdleTimeout<T> {
    fn new(io: T, idle: Duration) -> Self {
        let now = Instant::now();
        IdleTimeout {
            io,
            idle,
            last: now,
            timer: Box::pin(tokio::time::sleep_until(now + idle)),
        }
    }

    /// Called when the socket is not ready: `Err` once the connection has been idle too long,
    /// else registers to be woken when it would be.
    fn check_idle(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
            let deadline = self.last + self.idle;
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle for too long",
                ));
            }
            self.timer.as_mut().reset(deadline);
        }
    }

    /// Passes a poll's result through: `moved` says whether it moved bytes (only that counts
    /// as activity: hyper flushes on every wake-up, and a flush of nothing is no sign of life),
    /// and a socket that is not ready is checked for idleness.
    fn track<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<R>>,
        moved: impl FnOnce(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        match poll {
            Poll::Pending => match self.check_idle(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
            Poll::Ready(Ok(r)) => {
                if moved(&r) {
                    self.last = Instant::now();
                }
                Poll::Ready(Ok(r))
            }
            ready => ready,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.io).poll_read(cx, buf);
        let after = buf.filled().len();
        this.track(cx, poll, |()| after > before)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.track(cx, poll, |&n| n > 0)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.track(cx, poll, |&n| n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.track(cx, poll, |()| false)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_socket_idle_too_long_fails_and_traffic_keeps_it_open() {
        let idle = Duration::from_millis(300);
        let (near, mut far) = tokio::io::duplex(64);
        let mut sock = IdleTimeout::new(near, idle);
        let mut buf = [0u8; 8];
        // Traffic every 150 ms keeps it open past 300 ms.
        let started = Instant::now();
        for _ in 0..4 {
            tokio::time::sleep(idle / 2).await;
            far.write_all(b"x").await.unwrap();
            assert_eq!(sock.read(&mut buf).await.unwrap(), 1);
        }
        assert!(started.elapsed() > idle * 2);
        let quiet = Instant::now();
        let e = sock.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let waited = quiet.elapsed();
        assert!(waited >= idle && waited < idle * 5, "{waited:?}");
        // hyper flushes on every wake-up: a flush of nothing is no sign of life.
        let (near, _far) = tokio::io::duplex(64);
        let mut sock = IdleTimeout::new(near, idle);
        let flushing_reader = std::future::poll_fn(|cx| {
            let _ = Pin::new(&mut sock).poll_flush(cx);
            let mut b = [0u8; 8];
            Pin::new(&mut sock).poll_read(cx, &mut ReadBuf::new(&mut b))
        });
        let e = tokio::time::timeout(idle * 5, flushing_reader)
            .await
            .expect("closed despite the flushes")
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        // Writes are watched too: a peer that stops reading.
        let (near, _far) = tokio::io::duplex(4);
        let mut sock = IdleTimeout::new(near, idle);
        let e = sock.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
