//! A throw-away DNS for the tests of direct delivery: Debian's `unbound` on a free loopback
//! port, answering for the `test.` zone from the records it is given (`local-data`) and
//! NXDOMAIN for every other name under `test.`; it asks no one else.
//!
//! For DANE, [`Unbound::start_signed`] adds a DNSSEC-signed zone: keys made and the zone
//! signed at test time with `ldns-keygen`/`ldns-signzone` (Debian's `ldnsutils`), served to
//! unbound's own resolution as an `auth-zone` (`for-upstream`), and validated by its
//! validator against the zone's DS as trust anchor, so the AD bit it sets is earned. The
//! `local-data` names stay unsigned: answers for them carry no AD bit (insecure).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use sealpost::config::{Config, DomainTls, RelayRoute};

use crate::smtp::free_port;

/// A running unbound, until dropped.
pub struct Unbound {
    pub port: u16,
    _dir: tempfile::TempDir,
    _child: tokio::process::Child,
}

impl Unbound {
    /// Starts unbound serving `records` (zone-file lines such as `tls.test. 300 IN MX 10
    /// mx.tls.test.`). Needs Debian's `unbound`.
    pub async fn start(records: &[&str]) -> anyhow::Result<Unbound> {
        Self::start_signed(records, None).await
    }

    /// [`Unbound::start`], validating (`module-config: "validator iterator"`), with `signed`
    /// when given: a zone that is signed now and trusted through its DS. Needs Debian's
    /// `ldnsutils`.
    pub async fn start_signed(
        records: &[&str],
        signed: Option<SignedZone<'_>>,
    ) -> anyhow::Result<Unbound> {
        if !Path::new("/usr/sbin/unbound").exists() {
            bail!("Debian's unbound is missing: apt-get install -y unbound (.ci/run installs it)");
        }
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let mut conf = format!(
            "server:
  interface: 127.0.0.1
  port: {port}
  do-ip6: no
  do-daemonize: no
  use-syslog: no
  logfile: \"{dir}/unbound.log\"
  verbosity: 0
  chroot: \"\"
  username: \"\"
  directory: \"{dir}\"
  pidfile: \"\"
  access-control: 127.0.0.0/8 allow
  module-config: \"{modules}\"
  do-not-query-localhost: no
  local-zone: \"test.\" static
",
            dir = dir.path().display(),
            modules = if signed.is_some() {
                "validator iterator"
            } else {
                "iterator"
            },
        );
        let mut auth = String::new();
        if let Some(SignedZone {
            apex,
            records: zone_records,
            forged,
        }) = signed
        {
            let (ds, zonefile) = sign_zone(dir.path(), apex, zone_records)?;
            if !forged.is_empty() {
                let mut text = std::fs::read_to_string(&zonefile)?;
                for r in forged {
                    text.push_str(r);
                    text.push('\n');
                }
                std::fs::write(&zonefile, text)?;
            }
            conf.push_str(&format!(
                "  trust-anchor-file: \"{ds}\"\n  local-zone: \"{apex}\" transparent\n  \
                 val-log-level: 2\n",
                ds = ds.display()
            ));
            auth = format!(
                "auth-zone:\n  name: \"{apex}\"\n  zonefile: \"{zonefile}\"\n  \
                 for-upstream: yes\n  for-downstream: no\n  fallback-enabled: no\n",
                zonefile = zonefile.display()
            );
        }
        for r in records {
            if r.contains('"') {
                // TXT data is written with single quotes around the record.
                conf.push_str(&format!("  local-data: '{r}'\n"));
            } else {
                conf.push_str(&format!("  local-data: \"{r}\"\n"));
            }
        }
        conf.push_str(&auth);
        conf.push_str("remote-control:\n  control-enable: no\n");
        let path = dir.path().join("unbound.conf");
        std::fs::write(&path, conf)?;
        let check = std::process::Command::new("/usr/sbin/unbound-checkconf")
            .arg(&path)
            .output()?;
        if !check.status.success() {
            bail!(
                "unbound-checkconf: {}{}",
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            );
        }
        let child = tokio::process::Command::new("/usr/sbin/unbound")
            .arg("-d")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting unbound")?;
        // Ready when it takes a TCP connection (it serves TCP and UDP on the same port).
        sealpost_testkit::wait_for(Duration::from_secs(20), async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
        })
        .await
        .with_context(|| format!("unbound did not listen on {port} within 20 s"))?;
        Ok(Unbound {
            port,
            _dir: dir,
            _child: child,
        })
    }

    /// The address to give as `[relay] resolver`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// A DNSSEC-signed zone for [`Unbound::start_signed`].
pub struct SignedZone<'a> {
    /// Its apex, such as `tls.test.`; it gets its SOA and NS records here.
    pub apex: &'a str,
    /// Its records: zone-file lines, as for [`Unbound::start`].
    pub records: &'a [&'a str],
    /// Lines added after signing, as an attacker on the path would add them: without
    /// signatures, so a validating resolver finds them bogus.
    pub forged: &'a [&'a str],
}

/// Writes the zone `apex` with `records` (plus SOA and NS) into `dir`, makes an ECDSA P-256
/// key for it and signs it (NSEC, valid from now for four weeks): the DS file (the trust
/// anchor) and the signed zone file.
fn sign_zone(dir: &Path, apex: &str, records: &[&str]) -> anyhow::Result<(PathBuf, PathBuf)> {
    if !Path::new("/usr/bin/ldns-signzone").exists() {
        bail!("Debian's ldnsutils is missing: apt-get install -y ldnsutils (.ci/run installs it)");
    }
    let apex = format!("{}.", apex.trim_end_matches('.'));
    let mut zone = format!(
        "{apex} 300 IN SOA ns.{apex} hostmaster.{apex} 1 3600 600 86400 300\n\
         {apex} 300 IN NS ns.{apex}\nns.{apex} 300 IN A 127.0.0.1\n"
    );
    for r in records {
        zone.push_str(r);
        zone.push('\n');
    }
    let zonefile = dir.join("zone.db");
    std::fs::write(&zonefile, zone)?;
    let run = |cmd: &str, args: &[&str]| -> anyhow::Result<String> {
        let out = std::process::Command::new(cmd)
            .args(args)
            .current_dir(dir)
            .output()
            .with_context(|| format!("running {cmd}"))?;
        if !out.status.success() {
            bail!(
                "{cmd} {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    // A key signing key used for the whole zone: one key is all a test zone needs.
    let base = run(
        "/usr/bin/ldns-keygen",
        &["-a", "ECDSAP256SHA256", "-k", &apex],
    )?;
    run("/usr/bin/ldns-signzone", &["zone.db", &base])?;
    Ok((dir.join(format!("{base}.ds")), dir.join("zone.db.signed")))
}

/// A configuration tweak: direct delivery (`[relay] route = "direct"`) through `dns` to mail
/// servers on `port` (an MX record names no port) and MTA-STS servers on `sts_port`,
/// trusting the CA in `ca`, with the per-domain TLS policies `tls`, retried within seconds;
/// no federation.
pub fn direct_delivery(
    dns: &Unbound,
    port: u16,
    ca: &Path,
    sts_port: u16,
    tls: Vec<DomainTls>,
) -> impl FnOnce(&mut Config) + use<> {
    let (resolver, ca) = (dns.address(), ca.display().to_string());
    move |c| {
        c.federation.enabled = false;
        c.relay.route = RelayRoute::Direct;
        c.relay.resolver = resolver;
        c.relay.direct_port = port;
        c.relay.mta_sts_port = sts_port;
        c.relay.ca_file = ca;
        c.relay.tls = tls;
        c.relay.retry_base_secs = 1;
        c.relay.retry_max_secs = 2;
    }
}

/// Queues a pickup notification from alice@alpha.test to `recipient` on `node` (the
/// simplest mail the direct-delivery tests send): its row ID.
pub async fn notify(node: &crate::TestNode, recipient: &str) -> i64 {
    crate::smtp::queue_notification(node, Some("m-direct"), recipient).await
}

/// The notification `id` once it is no longer queued (within 30 seconds).
pub async fn settled(
    node: &crate::TestNode,
    id: i64,
) -> sealpost::storage::notify::NotificationRecord {
    use sealpost::storage::NotifyStore;
    use sealpost::storage::notify::NotificationState;
    crate::wait_for(Duration::from_secs(30), async || {
        let r = node.store.notification(id).await.unwrap().unwrap();
        (r.state != NotificationState::Queued).then_some(r)
    })
    .await
    .unwrap()
}
