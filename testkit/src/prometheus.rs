//! A throw-away Prometheus (Debian's `prometheus`) on a free loopback port, with its own
//! configuration and data directory in a temporary directory, scraping the given targets
//! every half second: for the test that checks a node's metrics the way an operator's
//! Prometheus reads them (`tests/tests/ops.rs`). Killed (and its directory removed) when
//! dropped, whatever the test did.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::postfix::free_port;

/// Where Debian installs it (`.ci/run` does).
const BIN: &str = "/usr/bin/prometheus";

/// A running Prometheus, until dropped.
pub struct Prometheus {
    /// Its HTTP API and UI: `http://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `GET /metrics` of each of `targets` every 500 ms, and waits
    /// (at most `ready`) until it says it is ready.
    pub async fn start(targets: &[SocketAddr], ready: Duration) -> anyhow::Result<Prometheus> {
        if !std::path::Path::new(BIN).exists() {
            bail!(
                "Debian's prometheus is missing: apt-get install -y prometheus (.ci/run installs it)"
            );
        }
        let dir = tempfile::tempdir()?;
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: sealpost\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        );
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config)?;
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let child = Command::new(BIN)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting prometheus")?;
        let p = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        crate::wait_for(ready, async || ready_at(addr).await.then_some(()))
            .await
            .with_context(|| format!("prometheus not ready: {}", p.log()))?;
        Ok(p)
    }

    /// What Prometheus logged (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

/// Whether `GET /-/ready` at `addr` answers 200 (plain HTTP/1.0 over a socket: the kit
/// links no HTTP client).
async fn ready_at(addr: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    if s.write_all(b"GET /-/ready HTTP/1.0\r\n\r\n").await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.is_ok() && head.ends_with(b"200")
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
