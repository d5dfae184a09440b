//! A test kit for real Sealpost nodes: each [`TestNode`] is a real node on a temporary data
//! directory, a real SQLite file and a real socket on `127.0.0.1:0`, driven through the same
//! client library users run. Helpers wait for conditions with deadlines; nothing sleeps blindly.
//! Enrol with `KdfParams::MIN` (the smallest the node accepts) unless the password path itself
//! is under test. The `sealpost` binary as a process and the one wait helper come from
//! `sealpost-testkit` (no node dependency, so the load tools use it too), re-exported here.

pub mod dns;
pub mod gpg;
pub mod https;
pub mod mail;
pub mod smtp;
pub mod tsa;

pub use sealpost_testkit::prometheus::Prometheus;
pub use sealpost_testkit::{NodeProcess, init_node, run, run_ok, wait_for, wait_for_blocking};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use sealpost::config::Config;
use sealpost::node::{Node, init};
use sealpost::storage::SqliteStore;
use sealpost_client::{Client, Session};
use sealpost_proto::KdfParams;

pub struct TestNode {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub config: Config,
    pub store: Arc<SqliteStore>,
    /// Queues notification mail, as the pickup flow does (the node's driver sends it).
    pub notifier: sealpost::notify::Notifier,
    /// The SMTP door's address, when `[smtp_in]` is enabled.
    pub smtp: Option<std::net::SocketAddr>,
    /// The running node's service context: tests call service operations through it as the
    /// node's own doors do (same store, same throttle).
    pub context: Arc<sealpost::service::Context>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestNode {
    /// A fresh node for `domain`, with `tweak` applied to its configuration.
    pub async fn spawn_with(
        domain: &str,
        tweak: impl FnOnce(&mut Config),
    ) -> anyhow::Result<TestNode> {
        Self::spawn_in(tempfile::tempdir()?, domain, tweak).await
    }

    /// A fresh node for `domain` whose data directory is `data` under `dir` (a directory on a
    /// [`Tmpfs`], say), with `tweak` applied to its configuration.
    pub async fn spawn_in(
        dir: tempfile::TempDir,
        domain: &str,
        tweak: impl FnOnce(&mut Config),
    ) -> anyhow::Result<TestNode> {
        // `RUST_LOG=sealpost=debug cargo test -- --nocapture` shows the nodes' logs.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let data = dir.path().join("data");
        let mut config = init(&data, domain, Some("127.0.0.1:0".parse()?)).await?;
        tweak(&mut config);
        config.validate()?;
        Self::serving(dir, config).await
    }

    /// Serves the data directory already at `dir/data` (a restored backup, say), with the
    /// configuration it holds.
    pub async fn open(dir: tempfile::TempDir) -> anyhow::Result<TestNode> {
        let config = Config::load(&dir.path().join("data"))?;
        Self::serving(dir, config).await
    }

    async fn serving(dir: tempfile::TempDir, config: Config) -> anyhow::Result<TestNode> {
        let data = dir.path().join("data");
        let (url, store, notifier, smtp, context, stop, task) = launch(&data, &config).await?;
        Ok(TestNode {
            dir,
            url,
            config,
            store,
            notifier,
            smtp,
            context,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The submission gateway's address, when `[submission]` is enabled.
    pub fn submission(&self) -> Option<std::net::SocketAddr> {
        self.context.submission_bound.get().copied()
    }

    /// The metrics listener's address, when `[metrics]` is set.
    pub fn metrics(&self) -> Option<std::net::SocketAddr> {
        self.context.metrics_bound.get().copied()
    }

    /// Serves the node's data directory again after [`TestNode::stop`]: a new HTTP port, the
    /// same federation address.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        let (url, store, notifier, smtp, context, stop, task) =
            launch(&self.data(), &self.config).await?;
        self.url = url;
        self.smtp = smtp;
        self.context = context;
        self.store = store;
        self.notifier = notifier;
        self.stop = Some(stop);
        self.task = Some(task);
        Ok(())
    }

    /// Runs `sealpost admin --data DIR ARGS…` in-process, as an admin would.
    pub async fn admin(&self, args: &[&str]) -> anyhow::Result<()> {
        use clap::Parser;
        /// `sealpost admin`'s arguments after `--data DIR`.
        #[derive(Parser)]
        struct Admin {
            #[command(subcommand)]
            command: sealpost::cli::AdminCommand,
        }
        let argv = std::iter::once("admin").chain(args.iter().copied());
        sealpost::cli::admin(&self.data(), Admin::try_parse_from(argv)?.command).await
    }

    /// Peers this node with `other` through the admin command (`peer add DOMAIN --from URL`).
    pub async fn peer_with(&self, other: &TestNode) -> anyhow::Result<()> {
        self.admin(&[
            "peer",
            "add",
            &other.config.domain,
            "--from",
            &other.url,
            "--yes",
        ])
        .await
    }

    pub async fn spawn(domain: &str) -> anyhow::Result<TestNode> {
        Self::spawn_with(domain, |_| {}).await
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url)
    }

    /// Authorises `address` as the admin CLI does; returns the invite code.
    pub async fn invite(&self, address: &str) -> anyhow::Result<String> {
        self.invite_with(address, None, false).await
    }

    /// Authorises `address` (with a name, as an admin if `admin`) as the admin CLI does;
    /// returns the invite code.
    pub async fn invite_with(
        &self,
        address: &str,
        name: Option<&str>,
        admin: bool,
    ) -> anyhow::Result<String> {
        Ok(sealpost::service::accounts::invite(
            &*self.store,
            &self.config,
            &sealpost::service::Actor::Cli,
            address,
            name,
            admin,
            sealpost::now(),
        )
        .await?
        .code)
    }

    /// `NAME@DOMAIN` enrolled (with `KdfParams::MIN`) and logged in, with the password
    /// [`password_of`]`(name)`.
    pub async fn person(&self, name: &str) -> Session {
        let address = format!("{name}@{}", self.config.domain);
        self.user(&address, &password_of(name), KdfParams::MIN)
            .await
            .unwrap_or_else(|e| panic!("enrol {address}: {e:#}"))
    }

    /// Authorises, enrols and logs in `address` with `password`.
    pub async fn user(
        &self,
        address: &str,
        password: &str,
        kdf: KdfParams,
    ) -> anyhow::Result<Session> {
        self.enrolled(address, password, kdf, false).await
    }

    /// Authorises (as an admin if `admin`), enrols and logs in `address` with `password`.
    pub async fn enrolled(
        &self,
        address: &str,
        password: &str,
        kdf: KdfParams,
        admin: bool,
    ) -> anyhow::Result<Session> {
        let code = self.invite_with(address, None, admin).await?;
        let enrolled = self
            .client()
            .enroll(&code, address, None, password.as_bytes(), kdf)
            .await?;
        Ok(self
            .client()
            .login(
                address,
                password.as_bytes(),
                None,
                Some(&enrolled.ca_fingerprint),
            )
            .await?)
    }

    /// The login verifier of `password` for `address`, derived as a client derives it from
    /// what `login/params` answers: for tests that speak the login protocol by hand.
    pub async fn login_verifier(&self, address: &str, password: &str) -> anyhow::Result<[u8; 32]> {
        use base64::Engine;
        let p: sealpost_proto::LoginParams = reqwest::Client::new()
            .post(self.client().url("/login/params"))
            .json(&serde_json::json!({ "address": address }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let salt = base64::engine::general_purpose::STANDARD.decode(p.kdf_salt)?;
        let keys = sealpost_client::crypto::derive_password_keys(
            password.as_bytes(),
            &salt,
            &p.kdf_params,
        )?;
        Ok(keys.login_verifier())
    }

    /// Opens the node's database read-only, for assertions about what is stored.
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            self.data().join("sealpost.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("database opens")
    }

    /// The subjects of the transaction log's entries of `kind`, in log order.
    pub fn logged(&self, kind: &str) -> Vec<String> {
        let db = self.db();
        let mut stmt = db
            .prepare("SELECT subject FROM txlog WHERE kind = ?1 ORDER BY seq")
            .expect("log query");
        stmt.query_map([kind], |r| r.get(0))
            .expect("log query")
            .map(|r| r.expect("log row"))
            .collect()
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.db()
            .query_row(sql, [], |r| r.get(0))
            .expect("count query")
    }

    /// Stops serving (gracefully); the data directory stays until the `TestNode` is dropped.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await??;
        }
        Ok(())
    }
}

/// A small file system of its own (a tmpfs of `size_mib` MiB mounted on a fresh temporary
/// directory), to run a node's data directory out of space. Mounting takes root, as CI has;
/// the mount goes when this is dropped (drop the node first: declare this before it).
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size_mib: u64) -> anyhow::Result<Tmpfs> {
        let dir = tempfile::tempdir()?;
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size_mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "mounting a tmpfs needs root (CI runs the tests as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(Tmpfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Takes every free byte with one file (`filler`), written until the file system refuses;
    /// removing it makes room again.
    pub fn fill(&self) -> anyhow::Result<PathBuf> {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path)?;
        for chunk in [1 << 20, 4096, 1] {
            let buf = vec![0u8; chunk];
            while f.write_all(&buf).is_ok() {}
        }
        Ok(path)
    }

    /// Free bytes left.
    pub fn free(&self) -> u64 {
        let out = std::process::Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(self.path())
            .output()
            .expect("df runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df prints the free bytes")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// The password [`TestNode::person`] gives `name`: `"NAME password"`, padded with `!` to 14
/// characters (`"alice password"`, `"bob password!!"`).
pub fn password_of(name: &str) -> String {
    format!("{:!<14}", format!("{name} password"))
}

/// The world most tests start from: one organisation, `a.test`, with alice and bob enrolled
/// ([`TestNode::person`]).
pub async fn alice_and_bob() -> (TestNode, Session, Session) {
    let node = TestNode::spawn("a.test").await.expect("node starts");
    let alice = node.person("alice").await;
    let bob = node.person("bob").await;
    (node, alice, bob)
}

/// Two organisations peered both ways through `peer add DOMAIN --from URL --yes`.
pub async fn peered(a: &str, b: &str) -> (TestNode, TestNode) {
    let a = TestNode::spawn(a).await.expect("node starts");
    let b = TestNode::spawn(b).await.expect("node starts");
    peer_both(&a, &b).await;
    (a, b)
}

/// Peers `a` and `b` both ways, as [`peered`] does.
pub async fn peer_both(a: &TestNode, b: &TestNode) {
    a.peer_with(b).await.expect("peer add");
    b.peer_with(a).await.expect("peer add");
}

type Launched = (
    String,
    Arc<SqliteStore>,
    sealpost::notify::Notifier,
    Option<std::net::SocketAddr>,
    Arc<sealpost::service::Context>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
);

/// Opens and serves a data directory until the returned sender fires: its URL, store,
/// notifier, SMTP address, service context, stop sender and task.
async fn launch(data: &Path, config: &Config) -> anyhow::Result<Launched> {
    let node = Node::open_with(data, config.clone())?;
    let store = node.store.clone();
    let notifier = node.notifier.clone();
    let context = node.state.context.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(node.serve(
        async move {
            let _ = stop_rx.await;
        },
        move |a| {
            let _ = addr_tx.send(a);
        },
    ));
    let addr = addr_rx.await.context("node did not start")?;
    let smtp = context.smtp_bound.get().copied();
    Ok((
        format!("http://{addr}"),
        store,
        notifier,
        smtp,
        context,
        stop_tx,
        task,
    ))
}

/// The message IDs in `s`'s inbox.
pub async fn inbox_ids(s: &Session) -> Vec<String> {
    s.mailbox(sealpost_proto::Folder::Inbox)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.message_id)
        .collect()
}

/// The reason in the receipt the peer's node signed for `id`, as the sending node logged it
/// (`federation.delivered`), for a transfer it refused whole; `None` until one is logged.
pub fn federation_refusal(node: &TestNode, id: &str) -> Option<String> {
    let detail: String = node
        .db()
        .query_row(
            "SELECT detail FROM txlog WHERE kind = 'federation.delivered' AND subject = ?1",
            [id],
            |r| r.get(0),
        )
        .ok()?;
    let v: serde_json::Value = serde_json::from_str(&detail).ok()?;
    assert!(v["accepted"].as_array()?.is_empty(), "{v}");
    Some(v["refused"][0][1].as_str()?.to_owned())
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readable dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Files under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap_or_default();
            bytes.windows(needle.len()).any(|w| w == needle)
        })
        .collect()
}
