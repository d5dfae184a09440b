//! A throw-away Postfix (Debian's `postfix`) on a free loopback port, with its own
//! configuration, queue and log in a temporary directory, delivering every domain it is given
//! into Maildirs (`DOMAIN/LOCAL/new/`) and nothing anywhere else: for the tests of mail out
//! (`tests/src/smtp.rs` re-exports it) and the SMTP-in benchmark (`sealpost-smtp-bench`).
//! Postfix's master starts as root: so do these tests (as CI's `.ci/run` does).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};

/// A free TCP port on 127.0.0.1 (free when this returns: bind it soon).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
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
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
";

/// The user Postfix's `virtual` agent writes Maildirs as (`nobody`).
const MAILDIR_UID: u32 = 65534;

impl Postfix {
    /// Starts Postfix with its own configuration directory (`postfix -c DIR start`): SMTP on a
    /// free loopback port, mail for each of `mailboxes` into `DIR/mail/DOMAIN/LOCAL/`
    /// (Maildir), other addresses of their domains refused, any other destination refused too
    /// (its transport is `error:`, which Postfix answers at `RCPT`).
    /// Needs root and Debian's `postfix`.
    pub async fn start(mailboxes: &[&str]) -> anyhow::Result<Postfix> {
        Self::start_with(mailboxes, None, None).await
    }

    /// [`Postfix::start`], offering STARTTLS with `tls` (certificate and key PEM files) when
    /// given (`smtpd_tls_security_level = may`, logged at level 1), on `port` when given (a
    /// port the test reserved with [`free_port`]).
    pub async fn start_with(
        mailboxes: &[&str],
        tls: Option<(PathBuf, PathBuf)>,
        port: Option<u16>,
    ) -> anyhow::Result<Postfix> {
        Self::start_routing(mailboxes, tls, port, &[]).await
    }

    /// [`Postfix::start_with`], also relaying mail for each `(domain, port)` of `routes` to
    /// SMTP on `127.0.0.1:port` (`transport_maps`): e.g. the bounces it makes for a node's
    /// mail, sent back to the node's own SMTP door.
    pub async fn start_routing(
        mailboxes: &[&str],
        tls: Option<(PathBuf, PathBuf)>,
        port: Option<u16>,
        routes: &[(&str, u16)],
    ) -> anyhow::Result<Postfix> {
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
        let port = port.unwrap_or_else(free_port);
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
transport_maps = texthash:{r}/conf/transport
smtp_tls_security_level = none
maillog_file = {r}/maillog
maillog_file_prefixes = {r}
{tls}",
            domains = domains.join(" "),
            tls = match &tls {
                Some((cert, key)) => format!(
                    "smtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}\n\
                     smtpd_tls_security_level = may\nsmtpd_tls_loglevel = 1\n\
                     smtpd_tls_received_header = yes\n",
                    cert.display(),
                    key.display()
                ),
                None => String::new(),
            },
        );
        std::fs::write(root.join("conf/main.cf"), main_cf)?;
        std::fs::write(
            root.join("conf/master.cf"),
            format!("127.0.0.1:{port} inet n - n - - smtpd\n{MASTER_CF}"),
        )?;
        std::fs::write(root.join("conf/vmailbox"), map)?;
        let transport: String = routes
            .iter()
            .map(|(domain, port)| format!("{domain} smtp:[127.0.0.1]:{port}\n"))
            .collect();
        std::fs::write(root.join("conf/transport"), transport)?;
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
        let listening = crate::wait_for(Duration::from_secs(20), async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
        })
        .await;
        if listening.is_err() {
            bail!("postfix did not listen on {port} within 20 s\n{}", pf.log());
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
