//! The test kit's process launcher (`sealpost-testkit`) bound to this package's `sealpost`.
// Each test binary uses part of it.
#![allow(dead_code, unused_imports)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Output;
use std::sync::Mutex;

use sealpost_client::{Client, Session};
use sealpost_proto::{KdfParams, SubmitRequest};

pub use sealpost_testkit::{NodeProcess, wait_for, wait_for_blocking};

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sealpost"))
}

/// Runs `sealpost ARGS` to completion.
pub fn sealpost(args: &[&str], env: &[(&str, &str)]) -> Output {
    sealpost_testkit::run(bin(), args, env).unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs and asserts success; returns stdout.
pub fn ok(args: &[&str], env: &[(&str, &str)]) -> String {
    sealpost_testkit::run_ok(bin(), args, env).unwrap_or_else(|e| panic!("{e:#}"))
}

/// `sealpost serve --data DATA`: the process and its URL.
pub fn serve(data: &Path) -> (NodeProcess, String) {
    NodeProcess::serve(bin(), data, |_| {}).unwrap()
}

/// `sealpost init` for `domain` on a free loopback port.
pub fn init(data: &Path, domain: &str) {
    sealpost_testkit::init_node(bin(), data, domain).unwrap()
}

/// The invite code printed on the last line of `admin user add`.
pub fn add_user(data: &Path, address: &str) -> String {
    let d = data.to_str().unwrap();
    let out = ok(&["admin", "--data", d, "user", "add", address], &[]);
    out.lines().last().unwrap().trim().to_owned()
}

/// `sealpost init` for `a.test`, then `sealpost serve`: the node and its URL.
pub fn init_and_serve(data: &Path) -> (NodeProcess, String) {
    init(data, "a.test");
    serve(data)
}

/// Adds `address` with `admin user add`, enrols it at `url` (with `KdfParams::MIN`): the CA
/// fingerprint.
pub async fn enrol(data: &Path, url: &str, address: &str, password: &str) -> String {
    let invite = add_user(data, address);
    Client::new(url)
        .enroll(&invite, address, None, password.as_bytes(), KdfParams::MIN)
        .await
        .unwrap()
        .ca_fingerprint
}

/// Messages sealed but not yet acknowledged, by number: a retry resubmits the same request.
pub type Pending = Mutex<HashMap<usize, SubmitRequest>>;

/// Requests an envelope for `to`, seals (once) and submits message `n`. `Ok(id)` only when the
/// node acknowledged it; until then the sealed request stays in `pending` for a retry.
pub async fn send_one(s: &Session, to: &str, pending: &Pending, n: usize) -> Result<String, ()> {
    let retry = pending.lock().unwrap().get(&n).cloned();
    let request = match retry {
        Some(r) => r,
        None => {
            let (env, certs) = s.envelope(&[to.to_owned()]).await.map_err(|_| ())?;
            let sealed = s
                .seal_text(&env, &certs, &format!("message {n}"), "body")
                .map_err(|_| ())?;
            pending.lock().unwrap().insert(n, sealed.request.clone());
            sealed.request
        }
    };
    let resp = s.submit(&request).await.map_err(|_| ())?;
    pending.lock().unwrap().remove(&n);
    Ok(resp.message_id)
}
