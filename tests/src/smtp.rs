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
use tokio::io::AsyncBufReadExt;

/// Debian's Python, which has Debian's `python3-aiosmtpd`.
pub const PYTHON: &str = "/usr/bin/python3";
/// The controllable SMTP server.
pub const SINK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/smtp/sink.py");

/// A free TCP port on 127.0.0.1 (free when this returns: bind it soon).
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
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
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {PYTHON} {SINK}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(20),
            tokio::io::BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .context("the SMTP sink did not start within 20 s")??;
        let port = line
            .strip_prefix("listening ")
            .and_then(|p| p.trim().parse().ok())
            .with_context(|| format!("the SMTP sink said {line:?}"))?;
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

/// A throw-away Postfix on 127.0.0.1, delivering mail for the given mailboxes into Maildirs,
/// until dropped (then stopped).
pub struct Postfix {
    pub port: u16,
    dir: tempfile::TempDir,
}

/// Every service Postfix needs, none chrooted (the queue is in a temporary directory).
const MASTER_CF: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

/// The user Postfix's `virtual` agent writes Maildirs as (`nobody`).
const MAILDIR_UID: u32 = 65534;

impl Postfix {
    /// Starts Postfix with its own configuration directory (`postfix -c DIR start`): SMTP on a
    /// free loopback port, mail for each of `mailboxes` into `DIR/mail/DOMAIN/LOCAL/`
    /// (Maildir), other addresses of their domains refused, any other destination bounced.
    /// Needs root and Debian's `postfix`.
    pub async fn start(mailboxes: &[&str]) -> anyhow::Result<Postfix> {
        if !Path::new("/usr/sbin/postfix").exists() {
            bail!(
                "Debian's postfix is missing: echo 'postfix postfix/main_mailer_type select No \
                 configuration' | debconf-set-selections && apt-get install -y postfix \
                 (.ci/run installs it)"
            );
        }
        if id_u(None)? != 0 {
            bail!("the Postfix tests start Postfix's master, which needs root (CI runs as root)");
        }
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let root = dir.path().to_owned();
        // Postfix's daemons (user postfix) and its delivery agent (nobody) walk into it.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))?;
        for d in ["conf", "queue", "data", "mail"] {
            std::fs::create_dir(root.join(d))?;
        }
        std::os::unix::fs::chown(root.join("mail"), Some(MAILDIR_UID), Some(MAILDIR_UID))?;
        let postfix_uid = id_u(Some("postfix"))?;
        std::os::unix::fs::chown(root.join("data"), Some(postfix_uid), None)?;
        let port = free_port();
        let r = root.display();
        let mut domains: Vec<&str> = mailboxes
            .iter()
            .map(|a| a.split_once('@').expect("an address").1)
            .collect();
        domains.sort();
        domains.dedup();
        // Postfix allows no regular-expression substitution in a mailbox map: one line each.
        let map: String = mailboxes
            .iter()
            .map(|a| {
                let (local, domain) = a.split_once('@').expect("an address");
                format!("{a} {domain}/{local}/\n")
            })
            .collect();
        let main_cf = format!(
            "compatibility_level = 3.6
queue_directory = {r}/queue
data_directory = {r}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.test
mydomain = relay.test
myorigin = relay.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
virtual_mailbox_domains = {domains}
virtual_mailbox_base = {r}/mail
virtual_mailbox_maps = texthash:{r}/conf/vmailbox
virtual_uid_maps = static:{MAILDIR_UID}
virtual_gid_maps = static:{MAILDIR_UID}
virtual_minimum_uid = 100
default_transport = error:this test relay delivers nothing outside
relay_transport = error:this test relay delivers nothing outside
maillog_file = {r}/maillog
maillog_file_prefixes = {r}
",
            domains = domains.join(" "),
        );
        std::fs::write(root.join("conf/main.cf"), main_cf)?;
        std::fs::write(
            root.join("conf/master.cf"),
            format!("127.0.0.1:{port} inet n - n - - smtpd\n{MASTER_CF}"),
        )?;
        std::fs::write(root.join("conf/vmailbox"), map)?;
        let out = tokio::process::Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(root.join("conf"))
            .arg("start")
            .output()
            .await
            .context("running postfix start")?;
        let pf = Postfix { port, dir };
        if !out.status.success() {
            bail!(
                "postfix -c {}/conf start failed: {}{}\n{}",
                r,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                pf.log()
            );
        }
        let end = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if tokio::time::Instant::now() > end {
                bail!("postfix did not listen on {port} within 20 s\n{}", pf.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(pf)
    }

    /// Mail delivered to `address`: the files of its Maildir's `new/`, oldest name first.
    pub fn delivered(&self, address: &str) -> Vec<PathBuf> {
        let (local, domain) = address.split_once('@').expect("an address");
        let new = self
            .dir
            .path()
            .join("mail")
            .join(domain)
            .join(local)
            .join("new");
        let mut files: Vec<PathBuf> = std::fs::read_dir(new)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Postfix's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = std::process::Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(self.dir.path().join("conf"))
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `id -u [USER]`: the user ID of `user`, or the effective one of this process.
fn id_u(user: Option<&str>) -> anyhow::Result<u32> {
    let out = std::process::Command::new("id")
        .arg("-u")
        .args(user)
        .output()?;
    if !out.status.success() {
        bail!("no user {user:?}: is Debian's postfix installed?");
    }
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}
