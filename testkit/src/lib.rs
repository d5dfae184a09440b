//! The part of the test kit that does not link the node: the `sealpost` binary launched as a
//! process ([`NodeProcess`], [`run`], [`run_ok`], [`init_node`]) and the one wait-with-deadline
//! helper ([`wait_for`], [`wait_for_blocking`]). `sealpost-tests` re-exports all of it beside
//! its in-process `TestNode`; the load tools (`examples/load`) depend on this crate alone, so
//! they link no node library. Crates below the node (`federation/`, `trust/`, `directory/`)
//! may use it too.

pub mod postfix;
pub mod prometheus;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};

/// How often [`wait_for`] and [`wait_for_blocking`] check their condition.
const POLL: Duration = Duration::from_millis(10);

/// Polls `check` until it returns `Some` or `deadline` passes.
pub async fn wait_for<T>(
    deadline: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() > end {
            bail!("condition not met within {deadline:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_for`] for code outside an async runtime.
pub fn wait_for_blocking<T>(
    deadline: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let end = std::time::Instant::now() + deadline;
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if std::time::Instant::now() > end {
            bail!("condition not met within {deadline:?}");
        }
        std::thread::sleep(POLL);
    }
}

/// `BIN ARGS` as the tests run it: node logs at `warn`, no password from the environment.
pub fn command(bin: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .env("RUST_LOG", "warn")
        .env_remove("SEALPOST_PASSWORD");
    c
}

/// Runs `BIN ARGS` (with `env` set) to completion.
pub fn run(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Output> {
    let mut c = command(bin, args);
    c.envs(env.iter().copied());
    c.output()
        .with_context(|| format!("{} does not run", bin.display()))
}

/// Runs `BIN ARGS` and fails unless it succeeds; its stdout.
pub fn run_ok(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<String> {
    let o = run(bin, args, env)?;
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    if !o.status.success() {
        bail!(
            "sealpost {args:?} failed: {}\n{stdout}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(stdout)
}

/// `sealpost init` of a node for `domain` in `data`, serving HTTP on a free loopback port.
pub fn init_node(bin: &Path, data: &Path, domain: &str) -> anyhow::Result<()> {
    let d = data.to_str().context("utf-8 path")?;
    let args = [
        "init",
        "--data",
        d,
        "--domain",
        domain,
        "--http",
        "127.0.0.1:0",
    ];
    run_ok(bin, &args, &[])?;
    Ok(())
}

/// A long-running `sealpost` process whose stdout lines are collected; killed when dropped.
pub struct NodeProcess {
    pub child: Child,
    lines: mpsc::Receiver<String>,
}

impl NodeProcess {
    /// Starts `BIN ARGS` (see [`command`]).
    pub fn spawn(bin: &Path, args: &[&str]) -> anyhow::Result<NodeProcess> {
        Self::spawn_command(command(bin, args))
    }

    /// Starts `c` with its stdout piped and read line by line.
    pub fn spawn_command(mut c: Command) -> anyhow::Result<NodeProcess> {
        let mut child = c
            .stdout(Stdio::piped())
            .spawn()
            .context("sealpost does not start")?;
        let out = child.stdout.take().context("stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                // The receiver may be gone; keep draining so that the process never blocks.
                let _ = tx.send(line);
            }
        });
        Ok(NodeProcess { child, lines: rx })
    }

    /// `sealpost serve --data DATA`, with `configure` applied to the command (environment
    /// overrides): the process and its URL once it listens.
    pub fn serve(
        bin: &Path,
        data: &Path,
        configure: impl FnOnce(&mut Command),
    ) -> anyhow::Result<(NodeProcess, String)> {
        let d = data.to_str().context("utf-8 path")?;
        let mut c = command(bin, &["serve", "--data", d]);
        configure(&mut c);
        let p = Self::spawn_command(c)?;
        let line = p.wait_line("listening on http://", Duration::from_secs(30))?;
        let url = line.rsplit(' ').next().unwrap_or_default().to_owned();
        Ok((p, url))
    }

    /// Waits (with a deadline) for a stdout line containing `needle`.
    pub fn wait_line(&self, needle: &str, deadline: Duration) -> anyhow::Result<String> {
        let end = std::time::Instant::now() + deadline;
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return Ok(l),
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!("no line with {needle:?} within {deadline:?}")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("sealpost exited before printing {needle:?}")
                }
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
