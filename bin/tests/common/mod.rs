//! Helpers for tests that run the real `sealpost` binary as separate processes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_sealpost");

/// Runs `sealpost ARGS` to completion.
pub fn sealpost(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("RUST_LOG", "warn")
        .env_remove("SEALPOST_PASSWORD");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("sealpost runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs and asserts success; returns stdout.
pub fn ok(args: &[&str], env: &[(&str, &str)]) -> String {
    let o = sealpost(args, env);
    assert!(
        o.status.success(),
        "sealpost {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        stdout(&o)
    );
    stdout(&o)
}

/// A long-running `sealpost` process whose stdout lines are collected.
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    pub fn spawn(args: &[&str]) -> Proc {
        let mut child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sealpost starts");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines: rx }
    }

    /// Waits (with a deadline) for a stdout line containing `needle`.
    pub fn wait_line(&self, needle: &str, deadline: Duration) -> String {
        let end = std::time::Instant::now() + deadline;
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => continue,
                Err(_) => panic!("no line with {needle:?} within {deadline:?}"),
            }
        }
    }

    /// Starts `sealpost serve --data DIR` and returns it with its URL.
    pub fn serve(data: &Path) -> (Proc, String) {
        let p = Proc::spawn(&["serve", "--data", data.to_str().unwrap()]);
        let line = p.wait_line("listening on", Duration::from_secs(30));
        let url = line.rsplit(' ').next().unwrap().to_owned();
        (p, url)
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The invite code printed on the last line of `admin user add`.
pub fn add_user(data: &Path, address: &str) -> String {
    let out = ok(
        &[
            "admin",
            "--data",
            data.to_str().unwrap(),
            "user",
            "add",
            address,
        ],
        &[],
    );
    out.lines().last().unwrap().trim().to_owned()
}

/// `sealpost init` for `a.test` on port 0, then `sealpost serve`: the node and its URL.
pub fn init_and_serve(data: &Path) -> (Proc, String) {
    let d = data.to_str().unwrap();
    ok(
        &[
            "init",
            "--data",
            d,
            "--domain",
            "a.test",
            "--http",
            "127.0.0.1:0",
        ],
        &[],
    );
    Proc::serve(data)
}
