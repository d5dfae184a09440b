//! A node assembled from its data directory: `init` creates one, [`Node::open`] loads it.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::api::AppState;
use crate::config::{Config, Paths};
use crate::keys;
use crate::storage::{CertStore, FsBlobStore, LogEvent, LogStore, MetaStore, SqliteStore};

/// Creates a new organisation's data directory: config, database, CA and node identity.
/// Refuses to touch a directory that already holds a node.
pub async fn init(
    data: &Path,
    domain: &str,
    http: Option<std::net::SocketAddr>,
) -> anyhow::Result<Config> {
    let domain = domain.trim().to_ascii_lowercase();
    let mut config = Config::new(&domain);
    if let Some(addr) = http {
        config.http.listen = addr;
    }
    config.validate()?;
    let paths = Paths::new(data);
    if paths.config().exists() || paths.database().exists() || paths.keys().exists() {
        bail!(
            "{} already holds a Sealpost node; refusing to overwrite it",
            data.display()
        );
    }
    std::fs::create_dir_all(paths.keys())
        .with_context(|| format!("creating {}", paths.keys().display()))?;
    std::fs::set_permissions(
        paths.keys(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )?;
    let node_key = keys::create_node_key(&paths)?;
    let ca = keys::create_ca(&paths, &domain)?;
    crate::notify::TransitKey::load_or_create(&paths, &domain)?;
    keys::write_secret_file(&paths.config(), config.to_toml().as_bytes())?;
    let store = open_store(&paths, &config, node_key)?;
    // The CA's public certificate is served by the directory like any user's.
    let record = crate::certs::record(&ca.clone().strip_secret_key_material())?;
    let event = LogEvent::new("ca.created", "admin", &record.fingerprint);
    store
        .put_cert(record, "ca", Some(event), crate::now())
        .await?;
    Ok(config)
}

/// Opens the node's database with the configured writer settings.
pub fn open_store(
    paths: &Paths,
    config: &Config,
    node_key: ed25519_dalek::SigningKey,
) -> anyhow::Result<SqliteStore> {
    open_store_measured(paths, config, node_key, None)
}

/// [`open_store`] with the writer recording its commits into `metrics`.
fn open_store_measured(
    paths: &Paths,
    config: &Config,
    node_key: ed25519_dalek::SigningKey,
    metrics: Option<crate::metrics::WriterMetrics>,
) -> anyhow::Result<SqliteStore> {
    SqliteStore::open(
        &paths.database(),
        node_key,
        crate::storage::WriterSettings {
            group_commit_max: config.storage.group_commit_max,
            group_commit_window: std::time::Duration::from_micros(
                config.storage.group_commit_window_us,
            ),
            write_queue: config.storage.write_queue,
            checkpoint_every: config.log.checkpoint_every,
            metrics,
        },
    )
    .with_context(|| format!("opening {}", paths.database().display()))
}

/// An opened node: its configuration, storage and keys, ready to serve.
pub struct Node {
    pub paths: Paths,
    pub config: Config,
    pub store: Arc<SqliteStore>,
    pub state: AppState,
    /// Queues notification mail; `serve` starts the driver that sends it.
    pub notifier: crate::notify::Notifier,
    route: Option<crate::notify::Route>,
    transit: crate::notify::TransitKey,
}

/// A node initialised for `domain` in a temporary data directory, for unit tests; the
/// directory lasts as long as the returned guard.
#[cfg(test)]
pub(crate) async fn temp_node(domain: &str) -> (tempfile::TempDir, Node) {
    let dir = tempfile::tempdir().expect("temporary directory");
    init(dir.path(), domain, None)
        .await
        .expect("node initialised");
    let node = Node::open(dir.path()).expect("node opens");
    (dir, node)
}

impl Node {
    pub fn open(data: &Path) -> anyhow::Result<Node> {
        let config = Config::load(data)?;
        Self::open_with(data, config)
    }

    /// Opens with an already loaded (and validated) configuration.
    pub fn open_with(data: &Path, config: Config) -> anyhow::Result<Node> {
        let paths = Paths::new(data);
        let node_key = keys::load_node_key(&paths)?;
        let ca = keys::load_ca(&paths)?;
        // Data directories made before the transit key existed get one now.
        let transit = crate::notify::TransitKey::load_or_create(&paths, &config.domain)?;
        // The one registry of this process: the writer, the service layer and the HTTP side
        // record into it, the metrics listener encodes it.
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let store = Arc::new(open_store_measured(
            &paths,
            &config,
            node_key.clone(),
            Some(metrics.writer()),
        )?);
        let blobs = Arc::new(FsBlobStore::open(&paths.blobs())?);
        let smime = config
            .smime
            .as_ref()
            .map(crate::service::smime::SmimeCa::load)
            .transpose()?;
        let context =
            crate::service::Context::new(config.clone(), store.clone(), blobs, ca, &node_key)
                .with_transit_key(&transit)
                .with_smime_ca(smime)
                .with_metrics(metrics);
        let state = AppState::new(context, &node_key);
        let notifier = state.notifier.clone();
        let route = match crate::notify::DirectLink::load(&config)? {
            Some(direct) => Some(crate::notify::Route::Direct(Box::new(direct))),
            None => crate::notify::RelayLink::load(&config)?.map(crate::notify::Route::Relay),
        };
        Ok(Node {
            paths,
            config,
            store,
            state,
            notifier,
            route,
            transit,
        })
    }

    /// Binds the configured address and serves until `shutdown`. `on_bound` learns the real
    /// address (port 0 picks one).
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
        on_bound: impl FnOnce(std::net::SocketAddr),
    ) -> anyhow::Result<()> {
        // The admin socket first, then a catch-up with the database, then serving: an admin
        // command that found no socket had committed before the bind, so what this node
        // serves includes its change (see `admin_socket`).
        let admin = crate::admin_socket::bind(&self.paths).await?;
        self.store.catch_up().await?;
        // Federation first: the organisation record the HTTP side publishes names its
        // addresses.
        let federation = if self.config.federation.enabled {
            Some(start_federation(&self.paths, &self.state).await?)
        } else {
            None
        };
        let listener = tokio::net::TcpListener::bind(self.config.http.listen)
            .await
            .with_context(|| format!("binding {}", self.config.http.listen))?;
        let _ = self.state.bound.set(listener.local_addr()?);
        // The SMTP door, if enabled, bound before the node says it is up.
        let smtp_in = if self.config.smtp_in.enabled {
            let smtp = crate::smtp_in::bind(self.config.smtp_in.listen, "smtp_in.listen").await?;
            let _ = self.state.context.smtp_bound.set(smtp.local_addr()?);
            tracing::info!(addr = %smtp.local_addr()?, "smtp_in listening");
            Some(crate::smtp_in::start(self.state.context.clone(), smtp)?)
        } else {
            None
        };
        let submission = if self.config.submission.enabled {
            let listen = self.config.submission.listen;
            let door = crate::smtp_in::bind(listen, "submission.listen").await?;
            let _ = self.state.context.submission_bound.set(door.local_addr()?);
            tracing::info!(addr = %door.local_addr()?, "submission listening");
            Some(crate::smtp_in::start_submission(
                self.state.context.clone(),
                door,
            )?)
        } else {
            None
        };
        // The metrics listener (`[metrics]`), its own port: see docs/operations.md.
        let (metrics_stop, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics = match &self.config.metrics {
            Some(m) => {
                let l = tokio::net::TcpListener::bind(m.listen)
                    .await
                    .with_context(|| format!("binding metrics.listen {}", m.listen))?;
                let _ = self.state.context.metrics_bound.set(l.local_addr()?);
                tracing::info!(addr = %l.local_addr()?, "metrics listening");
                Some(tokio::spawn(crate::api::run_metrics(
                    l,
                    self.state.context.clone(),
                    async move {
                        let _ = metrics_stopped.await;
                    },
                )))
            }
            None => None,
        };
        on_bound(listener.local_addr()?);
        let store: Arc<dyn MetaStore> = self.store.clone();
        let every = std::time::Duration::from_secs(self.config.log.checkpoint_interval_secs);
        let tsa = match &self.config.timestamping {
            Some(c) => Some(Tsa::new(c)?),
            None => None,
        };
        let evidence_ctx = self.state.context.clone();
        let checkpoints = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = store.checkpoint(crate::now()).await {
                    tracing::warn!(error = %e, "could not write a log checkpoint");
                }
                if let Some(tsa) = &tsa {
                    // A failure leaves this checkpoint unstamped; the next one is tried at
                    // the next tick, and its stamp covers the earlier entries.
                    if let Err(e) = stamp_checkpoint(store.as_ref(), tsa, crate::now()).await {
                        tracing::warn!(error = %format!("{e:#}"), "could not time-stamp the log checkpoint");
                    }
                    // Evidence records made since the last batch: left unsealed on a failure,
                    // and sealed with the next ones at the next tick.
                    if let Err(e) = seal_evidence(&evidence_ctx, tsa, crate::now()).await {
                        tracing::warn!(error = %format!("{e:#}"), "could not seal evidence records");
                    }
                }
            }
        });
        let gc = tokio::spawn(collect_garbage(
            self.store.clone(),
            self.state.blobs.clone(),
            self.config.limits.message_id_ttl_secs,
        ));
        // Expired pickups are shredded once a minute (docs/pickup.md), and compliance copies past
        // their retention deleted.
        let (sweep_store, sweep_blobs) = (self.store.clone(), self.state.blobs.clone());
        let sweep_ctx = self.state.context.clone();
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                let now = crate::now();
                if let Err(e) = crate::service::pickup::sweep(&sweep_ctx, now).await {
                    tracing::warn!(error = %e, "could not expire pickups");
                }
                // Compliance copies past their retention, not on hold (docs/compliance.md).
                if let Err(e) =
                    crate::service::retention::sweep(&*sweep_store, &*sweep_blobs, now).await
                {
                    tracing::warn!(error = %e, "could not expire compliance copies");
                }
            }
        });
        // The one outbound mail driver, if a relay or direct delivery is configured.
        let notify = self.route.map(|route| {
            crate::notify::Driver::start(
                self.notifier.clone(),
                crate::notify::Setup {
                    route,
                    policy: crate::notify::schedule::RetryPolicy::from_config(&self.config.relay),
                    batch_max: self.config.relay.batch_max,
                    parallel: self.config.relay.parallel_domains,
                    transit: Some(self.transit),
                    bounce_key: self.state.context.bounce_key.clone(),
                    domain: self.config.domain.clone(),
                    metrics: self.state.context.metrics.clone(),
                },
            )
        });
        // The admin socket is served until the HTTP server stops; then it is closed and its
        // file removed, so admin commands change the database directly again.
        let result = tokio::select! {
            result = crate::api::run(listener, self.state, shutdown) => result,
            never = admin.serve(self.store.clone()) => match never {},
        };
        let _ = metrics_stop.send(());
        if let Some(task) = metrics {
            let _ = task.await;
        }
        checkpoints.abort();
        gc.abort();
        sweeper.abort();
        if let Some(driver) = notify {
            driver.stop().await;
        }
        if let Some(driver) = smtp_in {
            driver.stop().await;
        }
        if let Some(driver) = submission {
            driver.stop().await;
        }
        if let Some((handle, background)) = federation {
            background.abort();
            handle.shutdown().await;
        }
        // Sign whatever was logged since the last checkpoint before going away.
        self.store.checkpoint(crate::now()).await?;
        Ok(result?)
    }
}

/// Every ten minutes, deletes uploads that no message used within `ttl_secs`, and part files
/// peers streamed for transfers that did not commit within it, with their files.
async fn collect_garbage(
    store: Arc<SqliteStore>,
    blobs: Arc<dyn crate::storage::BlobStore>,
    ttl_secs: u64,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tick.tick().await;
        if let Err(e) = expire_uploads(&*store, &*blobs, crate::now() - ttl_secs as i64).await {
            tracing::warn!(error = %e, "could not collect expired uploads");
        }
    }
}

/// Deletes uploads made before `before` that no message used, and part files peers streamed
/// before `before` for transfers that never committed; returns how many files went.
pub async fn expire_uploads(
    store: &dyn MetaStore,
    blobs: &dyn crate::storage::BlobStore,
    before: i64,
) -> anyhow::Result<usize> {
    let orphans = store.expire_uploads(before).await?;
    for sha in &orphans {
        blobs.remove(*sha).await?;
    }
    Ok(orphans.len())
}

/// Starts the QUIC federation driver with the node's identity, and its background task.
///
/// A configured port 0 picks a free port the first time; the addresses actually bound are
/// remembered in the data directory and reused, so peers that know them reach the node again
/// after a restart.
async fn start_federation(
    paths: &Paths,
    state: &AppState,
) -> anyhow::Result<(
    sealpost_federation::net::Handle,
    tokio::task::JoinHandle<()>,
)> {
    let fed = &state.config.federation;
    let parse = |list: &[String]| -> anyhow::Result<Vec<libp2p::Multiaddr>> {
        list.iter()
            .map(|a| a.parse().with_context(|| format!("federation address {a}")))
            .collect()
    };
    let configured = parse(&fed.listen)?;
    let remembered_file = paths.federation_listen();
    let remembered = std::fs::read_to_string(&remembered_file)
        .ok()
        .map(|t| t.lines().map(str::to_owned).collect::<Vec<_>>())
        .and_then(|l| parse(&l).ok())
        .filter(|_| fed.listen.iter().any(|a| a.contains("/udp/0/")));
    let key = keys::load_node_key(paths)?;
    let config = |listen| sealpost_federation::net::Config {
        listen,
        max_part_bytes: state.config.limits.max_message_bytes,
        outbound_streams_per_peer: fed.outbound_streams_per_peer,
        inbound_streams_per_peer: fed.inbound_streams_per_peer,
        ..Default::default()
    };
    let host: sealpost_federation::SharedHost = Arc::new(crate::federation::FedHost::new(
        state.context.clone(),
        config(Vec::new()).limits,
    ));
    let handle = match remembered {
        Some(addrs) => match sealpost_federation::net::start(
            config(addrs),
            keys::libp2p_keypair(&key),
            host.clone(),
        )
        .await
        {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "remembered federation address unusable; picking a new one");
                sealpost_federation::net::start(
                    config(configured),
                    keys::libp2p_keypair(&key),
                    host,
                )
                .await?
            }
        },
        None => {
            sealpost_federation::net::start(config(configured), keys::libp2p_keypair(&key), host)
                .await?
        }
    };
    let bound: Vec<String> = handle
        .listen_addrs()
        .iter()
        .map(|a| a.to_string())
        .collect();
    std::fs::write(&remembered_file, bound.join("\n"))
        .with_context(|| format!("writing {}", remembered_file.display()))?;
    tracing::info!(peer_id = %handle.peer_id(), addrs = ?bound, "federation listening");
    let link: Arc<dyn crate::federation::FedLink> = Arc::new(handle.clone());
    let _ = state.federation.set(link.clone());
    let background = tokio::spawn(crate::federation::background(state.context.clone(), link));
    Ok((handle, background))
}

/// Resolves on Ctrl-C or SIGTERM: what ends `sealpost serve` and `sealpost demo`.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

/// The configured RFC 3161 time-stamping authority (`[timestamping]`) and the HTTP client for
/// it: no redirects, one deadline.
pub struct Tsa {
    url: reqwest::Url,
    ca_file: std::path::PathBuf,
    client: reqwest::Client,
}

impl Tsa {
    pub fn new(c: &crate::config::TimestampingConfig) -> anyhow::Result<Tsa> {
        let timeout = std::time::Duration::from_secs(c.timeout_secs);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .context("time-stamping HTTP client")?;
        Ok(Tsa {
            url: reqwest::Url::parse(&c.url).context("timestamping.url")?,
            ca_file: c.ca_file.clone().into(),
            client,
        })
    }
}

/// Time-stamps the newest checkpoint if it has no stamp yet: posts an RFC 3161 request for it
/// to the TSA, checks the answer (`timestamp::check_response`) and stores the token. Returns
/// the stamped checkpoint's sequence number, `None` when there was nothing to stamp. Nothing
/// is stored unless the token checks out.
pub async fn stamp_checkpoint(
    store: &dyn LogStore,
    tsa: &Tsa,
    now: i64,
) -> anyhow::Result<Option<u64>> {
    use crate::timestamp;
    let Some(cp) = store.unstamped_checkpoint().await? else {
        return Ok(None);
    };
    let imprint = timestamp::checkpoint_imprint(cp.seq, &cp.hash, cp.at);
    let stamp = ask_tsa(tsa, &imprint, now).await?;
    store
        .put_checkpoint_timestamp(cp.seq, stamp.token, stamp.gen_time)
        .await?;
    tracing::info!(
        seq = cp.seq,
        gen_time = stamp.gen_time,
        "log checkpoint time-stamped"
    );
    Ok(Some(cp.seq))
}

/// Asks the TSA to stamp `imprint` and checks its answer (`timestamp::check_response`).
async fn ask_tsa(
    tsa: &Tsa,
    imprint: &[u8; 32],
    now: i64,
) -> anyhow::Result<crate::timestamp::Stamp> {
    use crate::timestamp;
    // Read at each stamp, so a renewed CA file needs no restart.
    let pem = tokio::fs::read(&tsa.ca_file)
        .await
        .with_context(|| format!("reading {}", tsa.ca_file.display()))?;
    let ca = timestamp::ca_store(&pem, now)?;
    let nonce: u64 = rand::random();
    let mut resp = tsa
        .client
        .post(tsa.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/timestamp-query")
        .body(timestamp::request(imprint, nonce))
        .send()
        .await
        .context("asking the time-stamping authority")?;
    if !resp.status().is_success() {
        bail!(
            "the time-stamping authority answered HTTP {}",
            resp.status()
        );
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.context("reading the TSA's answer")? {
        if body.len() + chunk.len() > timestamp::MAX_RESPONSE_BYTES {
            bail!(
                "the TSA's answer is larger than {} bytes",
                timestamp::MAX_RESPONSE_BYTES
            );
        }
        body.extend_from_slice(&chunk);
    }
    let stamp = timestamp::check_response(&body, imprint, nonce, &ca, now)?;
    Ok(stamp)
}

/// The most evidence records one batch seals; more wait for the next tick.
pub const EVIDENCE_BATCH_MAX: u32 = 10_000;

/// Seals the evidence records made since the last batch (`evidence::seal`): the Merkle tree's
/// head is signed by the evidence key and time-stamped by the TSA, then stored with each
/// record's inclusion proof and logged (`evidence.sealed`). Returns the batch's number, `None`
/// when there was nothing to seal. Nothing is stored unless the token checks out.
pub async fn seal_evidence(
    ctx: &crate::service::Context,
    tsa: &Tsa,
    now: i64,
) -> anyhow::Result<Option<u64>> {
    use crate::storage::evidence::{NewBatch, StoredBatch};
    let Some(key) = ctx.evidence.as_ref() else {
        bail!("the node has no evidence key");
    };
    let records = ctx.store.unsealed_evidence(EVIDENCE_BATCH_MAX).await?;
    if records.is_empty() {
        return Ok(None);
    }
    let number = ctx.store.next_evidence_batch().await?;
    let bytes: Vec<Vec<u8>> = records.iter().map(|(_, b)| b.clone()).collect();
    let sealed =
        crate::evidence::seal(&ctx.config.domain.to_ascii_lowercase(), number, &bytes, now);
    let head = sealed.head.to_bytes();
    let signature = crate::evidence::sign(key, &head, crate::evidence::system_time(now))?;
    let stamp = ask_tsa(tsa, &crate::evidence::BatchHead::imprint(&head), now).await?;
    let size = records.len();
    ctx.store
        .put_evidence_batch(
            NewBatch {
                batch: StoredBatch {
                    batch: number,
                    head,
                    signature,
                    token: stamp.token,
                    gen_time: stamp.gen_time,
                },
                members: records
                    .iter()
                    .zip(sealed.proofs)
                    .enumerate()
                    .map(|(i, ((id, _), proof))| (*id, i as u64, proof))
                    .collect(),
                root: sealed.head.root.clone(),
            },
            now,
        )
        .await?;
    tracing::info!(
        batch = number,
        size,
        "evidence batch sealed and time-stamped"
    );
    Ok(Some(number))
}
