//! A real RFC 3161 time-stamping authority on loopback for the tests of checkpoint
//! time-stamps: a test CA and a TSA certificate (EKU critical timeStamping) made with the
//! `openssl` command at test time, and a small HTTP server (hyper) that pipes each request
//! body to `openssl ts -reply` and answers `application/timestamp-reply`. It can also answer
//! garbage or a genuine token for another digest ([`TsaMode`]), to show the node refuses both.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::BodyExt;

/// How the TSA answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsaMode {
    /// A genuine token for the request.
    Genuine,
    /// Bytes that are no RFC 3161 response.
    Garbage,
    /// A genuine token, signed by the TSA, for another digest than the one asked for.
    OtherDigest,
}

pub struct Tsa {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    mode: Arc<Mutex<TsaMode>>,
    /// Requests answered so far.
    served: Arc<Mutex<u32>>,
    task: tokio::task::JoinHandle<()>,
}

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running openssl")?;
    if !out.status.success() {
        bail!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

impl Tsa {
    /// Makes the CA and the TSA's certificate, and serves on `127.0.0.1:0`.
    pub async fn start() -> anyhow::Result<Tsa> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        // One command a line (no argument holds a space).
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
        for line in [
            format!(
                "req -x509 {ec} -keyout ca.key -out ca.pem -days 3650 -subj /CN=Test-TSA-CA \
                 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
            ),
            format!("req -new {ec} -keyout tsa.key -out tsa.csr -subj /CN=Test-TSA"),
            "x509 -req -in tsa.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
             -extfile ext -out tsa.pem"
                .to_owned(),
        ] {
            if line.starts_with("x509") {
                std::fs::write(
                    d.join("ext"),
                    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\n",
                )?;
            }
            openssl(d, &line.split_whitespace().collect::<Vec<_>>())?;
        }
        std::fs::write(d.join("serial"), "01\n")?;
        std::fs::write(
            d.join("ts.cnf"),
            format!(
                "[ tsa ]\ndefault_tsa = t\n[ t ]\nserial = {0}/serial\ncrypto_device = builtin\n\
                 signer_cert = {0}/tsa.pem\ncerts = {0}/ca.pem\nsigner_key = {0}/tsa.key\n\
                 signer_digest = sha256\ndefault_policy = 1.3.6.1.4.1.99999.1\ndigests = sha256\n\
                 accuracy = secs:1\nordering = no\ntsa_name = no\ness_cert_id_chain = no\n\
                 ess_cert_id_alg = sha256\n",
                d.display()
            ),
        )?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mode = Arc::new(Mutex::new(TsaMode::Genuine));
        let served = Arc::new(Mutex::new(0u32));
        let (m, s, work) = (mode.clone(), served.clone(), d.to_owned());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (m, s, work) = (m.clone(), s.clone(), work.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (m, s, work) = (m.clone(), s.clone(), work.clone());
                        async move { Ok::<_, Infallible>(answer(&work, &m, &s, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Ok(Tsa {
            addr,
            dir,
            mode,
            served,
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}/tsr", self.addr)
    }

    /// The CA the TSA's certificate chains to (for `[timestamping] ca_file`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn set_mode(&self, mode: TsaMode) {
        *self.mode.lock().expect("mode") = mode;
    }

    pub fn served(&self) -> u32 {
        *self.served.lock().expect("served")
    }

    /// `openssl ts -verify -token_in -in TOKEN -digest HEX -CAfile ca.pem`: a standard tool's
    /// verdict on a stored token. Returns its output.
    pub fn verify_token(&self, token: &[u8], digest_hex: &str) -> anyhow::Result<String> {
        let path = self.dir.path().join(format!("token-{digest_hex}.der"));
        std::fs::write(&path, token)?;
        let out = openssl(
            self.dir.path(),
            &[
                "ts",
                "-verify",
                "-token_in",
                "-in",
                path.to_str().context("path")?,
                "-digest",
                digest_hex,
                "-CAfile",
                "ca.pem",
            ],
        )?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

impl Drop for Tsa {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = http_body_util::Full<Bytes>;

async fn answer(
    work: &Path,
    mode: &Mutex<TsaMode>,
    served: &Mutex<u32>,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Body> {
    let reply = |status: u16, body: Vec<u8>| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", "application/timestamp-reply")
            .body(http_body_util::Full::new(Bytes::from(body)))
            .expect("response")
    };
    let is_query = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .is_some_and(|v| v == "application/timestamp-query");
    let Ok(body) = req.into_body().collect().await else {
        return reply(400, vec![]);
    };
    if !is_query {
        return reply(415, vec![]);
    }
    let mut query = body.to_bytes().to_vec();
    let mode = *mode.lock().expect("mode");
    *served.lock().expect("served") += 1;
    match mode {
        TsaMode::Garbage => return reply(200, b"this is no time-stamp".to_vec()),
        TsaMode::OtherDigest => {
            // The SHA-256 imprint is the 32 bytes after `04 20`, following the algorithm
            // identifier: change one, so the genuine token is for another digest.
            let at = query
                .windows(2)
                .position(|w| w == [0x04, 0x20])
                .map(|p| p + 2);
            if let Some(at) = at {
                query[at] ^= 0xff;
            }
        }
        TsaMode::Genuine => {}
    }
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (q, r) = (work.join(format!("{n}.tsq")), work.join(format!("{n}.tsr")));
    let run = async {
        tokio::fs::write(&q, &query).await?;
        let out = tokio::process::Command::new("openssl")
            .args(["ts", "-reply", "-config", "ts.cnf", "-queryfile"])
            .arg(&q)
            .arg("-out")
            .arg(&r)
            .current_dir(work)
            .output()
            .await?;
        if !out.status.success() {
            anyhow::bail!(
                "openssl ts -reply: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok::<_, anyhow::Error>(tokio::fs::read(&r).await?)
    };
    match run.await {
        Ok(resp) => reply(200, resp),
        Err(e) => reply(500, e.to_string().into_bytes()),
    }
}
