//! Real SMTP servers for the tests of notification mail, each on a free loopback port and in
//! a temporary directory:
//!
//! - [`SmtpSink`]: `smtp/sink.py` on Debian's `python3-aiosmtpd`, a relay that can be made to
//!   misbehave (4xx, 5xx, STARTTLS and AUTH required) and writes what it takes to a directory.
//! - [`Postfix`]: a throw-away Postfix (Debian's `postfix`) with its own configuration,
//!   queue and log, delivering every domain it is given into Maildirs (`DOMAIN/LOCAL/new/`),
//!   and nothing anywhere else. Postfix's master starts as root: these tests run as root (as
//!   CI's `.ci/run` does).
//!
//! A missing tool fails the test with the command that installs it; `.ci/run` installs both.
//! Python is Debian's `/usr/bin/python3`, not whatever `python3` is first on the `PATH` (a
//! pyenv, a virtualenv), which would not see Debian's `aiosmtpd`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
pub use sealpost_testkit::postfix::{Postfix, free_port};
use tokio::io::AsyncBufReadExt;

/// Debian's Python, which has Debian's `python3-aiosmtpd`.
pub const PYTHON: &str = "/usr/bin/python3";
/// The controllable SMTP server.
pub const SINK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/smtp/sink.py");

/// A configuration tweak for [`TestNode::spawn_with`](crate::TestNode::spawn_with): no
/// federation, notification mail through a plain relay on `port` of loopback, retried within
/// seconds.
pub fn relay_at(port: u16) -> impl FnOnce(&mut sealpost::config::Config) {
    move |c| {
        c.federation.enabled = false;
        c.relay.host = "127.0.0.1".into();
        c.relay.port = port;
        c.relay.security = sealpost::config::RelaySecurity::None;
        c.relay.retry_base_secs = 1;
        c.relay.retry_max_secs = 2;
    }
}

/// A configuration tweak for [`TestNode::spawn_with`](crate::TestNode::spawn_with): no
/// federation, the SMTP door on a free port of loopback as `mx.DOMAIN`, no TLS.
pub fn smtp_door(c: &mut sealpost::config::Config) {
    c.federation.enabled = false;
    c.smtp_in.enabled = true;
    c.smtp_in.listen = "127.0.0.1:0".parse().expect("an address");
    c.smtp_in.hostname = format!("mx.{}", c.domain);
}

/// Queues a pickup notification from alice@alpha.test to `recipient` about `message_id`, as
/// the pickup flow does: its queue row's ID.
pub async fn queue_notification(
    node: &crate::TestNode,
    message_id: Option<&str>,
    recipient: &str,
) -> i64 {
    node.notifier
        .enqueue(
            &sealpost::notify::Notification {
                message_id,
                sender: "alice@alpha.test",
                sender_name: "Alice",
                organisation: "Alpha",
                recipient,
                link: "https://alpha.test/pickup/p-1",
            },
            sealpost::now(),
        )
        .await
        .unwrap()
}

/// How an [`SmtpSink`] behaves.
#[derive(Clone, Debug, Default)]
pub struct SinkOptions {
    /// Listen on this port rather than a free one.
    pub port: Option<u16>,
    /// Answer the end of the first N mails' data with `451 4.3.0`.
    pub tempfail_data: u32,
    /// Answer every `RCPT TO` with this (a whole SMTP answer, such as `550 5.1.1 …`).
    pub reject_rcpt: Option<String>,
    /// Offer STARTTLS with this certificate and key (PEM files), and require it.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Require AUTH with this login and password.
    pub auth: Option<(String, String)>,
}

/// A mail the sink took.
#[derive(Clone, Debug)]
pub struct Received {
    /// `mail_from`, `rcpt_tos`, `tls`, `authenticated`, `headers` (decoded), `text`, `html`.
    pub meta: serde_json::Value,
    /// The bytes as received.
    pub raw: Vec<u8>,
}

impl Received {
    /// The first header of that name, decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        header(&self.meta, name)
    }
    pub fn rcpt_tos(&self) -> Vec<String> {
        serde_json::from_value(self.meta["rcpt_tos"].clone()).unwrap_or_default()
    }
    pub fn text(&self) -> String {
        self.meta["text"].as_str().unwrap_or_default().to_owned()
    }
    pub fn html(&self) -> String {
        self.meta["html"].as_str().unwrap_or_default().to_owned()
    }
}

fn header(meta: &serde_json::Value, name: &str) -> Option<String> {
    meta["headers"].as_array()?.iter().find_map(|h| {
        (h[0].as_str()?.eq_ignore_ascii_case(name)).then(|| h[1].as_str().unwrap_or("").to_owned())
    })
}

/// The controllable SMTP server (`smtp/sink.py`), until dropped.
pub struct SmtpSink {
    pub port: u16,
    dir: tempfile::TempDir,
    _child: tokio::process::Child,
}

impl SmtpSink {
    pub async fn start(options: &SinkOptions) -> anyhow::Result<SmtpSink> {
        require_aiosmtpd()?;
        let dir = tempfile::tempdir()?;
        let mut cmd = tokio::process::Command::new(PYTHON);
        cmd.arg(SINK)
            .arg("--out")
            .arg(dir.path())
            .arg("--port")
            .arg(options.port.unwrap_or(0).to_string())
            .arg("--tempfail-data")
            .arg(options.tempfail_data.to_string());
        if let Some(answer) = &options.reject_rcpt {
            cmd.arg("--reject-rcpt").arg(answer);
        }
        if let Some((cert, key)) = &options.tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        if let Some((user, password)) = &options.auth {
            cmd.arg("--auth").arg(format!("{user}:{password}"));
        }
        let (child, port) = spawn_listening(cmd, "the SMTP sink").await?;
        Ok(SmtpSink {
            port,
            dir,
            _child: child,
        })
    }

    /// The mails taken so far, in order.
    pub fn received(&self) -> Vec<Received> {
        let mut out = Vec::new();
        for n in 1.. {
            let base = self.dir.path().join(format!("mail-{n}"));
            let Ok(meta) = std::fs::read(base.with_extension("json")) else {
                break;
            };
            out.push(Received {
                meta: serde_json::from_slice(&meta).expect("sink JSON"),
                raw: std::fs::read(base.with_extension("eml")).expect("sink mail"),
            });
        }
        out
    }

    /// The session events so far: `connect` (one per TCP connection), `auth MECH ok|refused`,
    /// `rcpt refused ADDR`, `data refused N`, `stored N`.
    pub fn events(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("events.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Starts `cmd` (a server of ours that prints `listening PORT` once it listens) and reads
/// that line: the child, killed when dropped, and its port.
async fn spawn_listening(
    mut cmd: tokio::process::Command,
    what: &str,
) -> anyhow::Result<(tokio::process::Child, u16)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(20),
        tokio::io::BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .with_context(|| format!("{what} did not start within 20 s"))??;
    let port = line
        .strip_prefix("listening ")
        .and_then(|p| p.trim().parse().ok())
        .with_context(|| format!("{what} said {line:?}"))?;
    Ok((child, port))
}

fn require_aiosmtpd() -> anyhow::Result<()> {
    let ok = std::process::Command::new(PYTHON)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail!(
            "Debian's python3-aiosmtpd is missing ({PYTHON} cannot import aiosmtpd): \
             apt-get install -y python3-aiosmtpd (.ci/run installs it)"
        );
    }
    Ok(())
}

/// A self-signed certificate for `localhost` and 127.0.0.1 (EC P-256, made by `openssl`):
/// (certificate, key) PEM files in `dir`.
pub fn self_signed_cert(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("relay-cert.pem"), dir.join("relay-key.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .context("running openssl (apt-get install -y openssl)")?;
    if !out.status.success() {
        bail!("openssl req: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok((cert, key))
}

/// Parses a mail file as the sink does (headers decoded, text and HTML parts).
pub fn parse_mail(path: &Path) -> anyhow::Result<serde_json::Value> {
    require_aiosmtpd()?;
    let out = std::process::Command::new(PYTHON)
        .arg(SINK)
        .arg("--parse")
        .arg(path)
        .output()?;
    if !out.status.success() {
        bail!(
            "parsing {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The decoded header `name` of a mail parsed by [`parse_mail`].
pub fn parsed_header(parsed: &serde_json::Value, name: &str) -> Option<String> {
    header(parsed, name)
}

/// A test certificate authority ([`crate::https::TestCa`]) with its files in a directory of
/// its own, as Postfix and the MTA-STS server read them: `ca.pem` is what a node trusts
/// (`[relay] ca_file`), [`TestCa::issue`] writes server certificates and keys.
pub struct TestCa {
    pub dir: tempfile::TempDir,
    ca: crate::https::TestCa,
}

impl TestCa {
    pub fn new() -> anyhow::Result<TestCa> {
        let dir = tempfile::tempdir()?;
        use std::os::unix::fs::PermissionsExt;
        // Postfix's smtpd reads the key files it is given.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let ca = crate::https::TestCa::new("Sealpost Test CA")?;
        ca.write_pem(&dir.path().join("ca.pem"))?;
        Ok(TestCa { dir, ca })
    }

    /// The CA certificate (PEM file).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A server certificate for `names` (DNS names), signed by this CA: (certificate, key)
    /// PEM files named after `stem`.
    pub fn issue(&self, stem: &str, names: &[&str]) -> anyhow::Result<(PathBuf, PathBuf)> {
        use std::os::unix::fs::PermissionsExt;
        let issued = self.ca.issue(crate::https::Usage::Server(names))?;
        let d = self.dir.path();
        let (cert, key) = (
            d.join(format!("{stem}.pem")),
            d.join(format!("{stem}-key.pem")),
        );
        std::fs::write(&cert, issued.cert_pem)?;
        std::fs::write(&key, issued.key_pem)?;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644))?;
        Ok((cert, key))
    }
}

/// An HTTPS server for MTA-STS policies (`smtp/mta_sts.py`, Python's `http.server` over
/// TLS): `GET /.well-known/mta-sts.txt` on host `mta-sts.DOMAIN` answers `policies[DOMAIN]`
/// as `text/plain`, anything else 404. Until dropped.
pub struct MtaStsServer {
    pub port: u16,
    _dir: tempfile::TempDir,
    _child: tokio::process::Child,
}

impl MtaStsServer {
    pub async fn start(
        cert: &Path,
        key: &Path,
        policies: &[(&str, &str)],
    ) -> anyhow::Result<MtaStsServer> {
        let dir = tempfile::tempdir()?;
        for (domain, policy) in policies {
            std::fs::write(dir.path().join(format!("mta-sts.{domain}")), policy)?;
        }
        let mut cmd = tokio::process::Command::new(PYTHON);
        cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/smtp/mta_sts.py"))
            .arg(dir.path())
            .arg(cert)
            .arg(key);
        let (child, port) = spawn_listening(cmd, "the MTA-STS server").await?;
        Ok(MtaStsServer {
            port,
            _dir: dir,
            _child: child,
        })
    }

    /// Stops serving `domain`'s policy: its requests are answered 404 from now on.
    pub fn withdraw(&self, domain: &str) -> anyhow::Result<()> {
        Ok(std::fs::remove_file(
            self._dir.path().join(format!("mta-sts.{domain}")),
        )?)
    }
}

/// Runs a Python script (Debian's python3, `smtplib` and `email`: a standard mail program)
/// with `HOST` and `PORT` set to `at`; returns its standard output, failing the test if it
/// fails.
pub async fn python_at(at: std::net::SocketAddr, script: &str) -> String {
    let script = format!("HOST = '{}'\nPORT = {}\n{script}", at.ip(), at.port());
    let out = tokio::process::Command::new(PYTHON)
        .arg("-c")
        .arg(script)
        .output()
        .await
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("python prints UTF-8")
}

/// A Python `smtplib` script (for [`python_at`]) that sends erin@outside.test's PGP/MIME mail
/// (RFC 3156: `multipart/encrypted`, the `armored` OpenPGP message as its second part) to
/// `to`, and prints the refused recipients.
pub fn pgp_mime_script(to: &str, armored: &str) -> String {
    format!(
        r#"
import smtplib
from email.mime.multipart import MIMEMultipart
from email.mime.base import MIMEBase
m = MIMEMultipart('encrypted', protocol='application/pgp-encrypted')
m['From'] = 'erin@outside.test'
m['To'] = '{to}'
m['Subject'] = '...'
v = MIMEBase('application', 'pgp-encrypted')
v.set_payload('Version: 1\n')
m.attach(v)
p = MIMEBase('application', 'octet-stream', name='encrypted.asc')
p.set_payload('''{armored}''')
m.attach(p)
with smtplib.SMTP(HOST, PORT) as s:
    print(s.send_message(m))
"#
    )
}
