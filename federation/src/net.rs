//! The federation driver: libp2p over QUIC around the protocol core and the [`Host`](crate::Host).
//!
//! [`start`] binds the listeners and spawns a handful of tasks:
//!
//! - the **swarm task** owns the libp2p `Swarm` (QUIC transport, `libp2p-stream`, and the
//!   `gate` that knows peers' addresses and bounds connections), and reports connections
//!   coming and going to the per-peer tasks;
//! - the **accept task** takes each inbound stream of [`wire::PROTOCOL`]: unknown peer IDs get
//!   `not_authorised` (the host is never called), authorised ones are served by a task of their
//!   own, at most `inbound_streams_per_peer` at once per peer (`inbound`);
//! - per authorised peer, a **sender task** pages through [`Host::pending`](crate::Host::pending) and sends, with up
//!   to `outbound_streams_per_peer` transfers in flight, backing off on failure, and a
//!   **control task** that reports the connection state, pulls certificate updates and pushes
//!   `Changed` (`peer`);
//! - a **supervisor** that re-reads [`Host::peers`](crate::Host::peers) after [`Handle::peers_changed`].
//!
//! The driver holds no durable state: the host persists the outbox, receipts and cursors, so a
//! crash at any moment loses nothing (a transfer in flight is sent again and de-duplicated by
//! the receiver). It never logs certificate contents or signatures above `trace`.
//!
//! Bounds: frames by [`Limits`] (length checked before allocating); parts by
//! `max_part_bytes`; inbound streams per peer by a semaphore (extra streams are dropped);
//! connections per peer and from unknown peers by the gate; every read and write by
//! `request_timeout` or `idle_timeout`; every channel has a fixed capacity.

mod gate;
mod inbound;
mod peer;
pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt as _;
use libp2p::identity::{Keypair, PublicKey};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Stream, Swarm};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use rand::SeedableRng as _;
use rand::rngs::StdRng;

use crate::delivery::{
    Event, ExchangeAttempts, Failure, IdleStreams, PeerSchedule, Retry, StreamSource,
};
use crate::frame::{Frame, Limits, Lookup, LookupAnswer, OrgLookup};
use crate::host::{HostError, Peer, SharedHost};

pub use wire::PROTOCOL;

/// Settings of the driver. Every bound it enforces is here.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen, e.g. `/ip4/0.0.0.0/udp/4433/quic-v1` (port 0: any free port).
    pub listen: Vec<Multiaddr>,
    /// Frame limits, for what we accept and what we send.
    pub limits: Limits,
    /// A transfer with a part larger than this is refused (`too_large`).
    pub max_part_bytes: u64,
    /// Transfers in flight to one peer (each on its own stream).
    pub outbound_streams_per_peer: usize,
    /// Inbound streams served at once for one peer; further streams are dropped.
    pub inbound_streams_per_peer: usize,
    /// Page size of [`crate::Host::pending`].
    pub batch: usize,
    /// Most transfers sent in one [`crate::Batch`] (and at most the peer's
    /// `limits.max_batch`). Smaller batches spread a backlog over several streams, which the
    /// receiver serves in parallel: one batch's transfers are checked one after another.
    pub max_batch_transfers: usize,
    /// Backoff after the first failure in a row (before jitter).
    pub initial_backoff: Duration,
    /// Upper bound of the backoff, jitter included (at most [`MAX_BACKOFF`]).
    pub max_backoff: Duration,
    /// One frame exchange (a request until its answer), including opening the stream.
    pub request_timeout: Duration,
    /// No bytes moving on a part stream, or an idle reused stream waiting for its next frame.
    pub idle_timeout: Duration,
    /// Safety net: re-scan pending transfers and pull certificate updates this often.
    pub resync_interval: Duration,
}

/// The most any backoff may be configured to.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![
                "/ip4/0.0.0.0/udp/0/quic-v1"
                    .parse()
                    .expect("valid multiaddr"),
            ],
            limits: Limits::default(),
            max_part_bytes: 4 << 30,
            outbound_streams_per_peer: 8,
            inbound_streams_per_peer: 16,
            batch: 64,
            max_batch_transfers: 64,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(180),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            resync_interval: Duration::from_secs(120),
        }
    }
}

impl Config {
    /// Checks the settings; [`start`] calls it.
    pub fn validate(&self) -> Result<(), NetError> {
        let bad = |m: &str| Err(NetError::Config(m.to_owned()));
        if self.listen.is_empty() {
            return bad("listen: at least one address");
        }
        for (name, v) in [
            ("outbound_streams_per_peer", self.outbound_streams_per_peer),
            ("inbound_streams_per_peer", self.inbound_streams_per_peer),
            ("batch", self.batch),
            ("max_batch_transfers", self.max_batch_transfers),
            ("limits.max_frame_bytes", self.limits.max_frame_bytes),
        ] {
            if v == 0 {
                return bad(&format!("{name} must be greater than zero"));
            }
        }
        if self.outbound_streams_per_peer > 1024 || self.inbound_streams_per_peer > 1024 {
            return bad("streams per peer: at most 1024");
        }
        for (name, d) in [
            ("initial_backoff", self.initial_backoff),
            ("max_backoff", self.max_backoff),
            ("request_timeout", self.request_timeout),
            ("idle_timeout", self.idle_timeout),
            ("resync_interval", self.resync_interval),
        ] {
            if d.is_zero() {
                return bad(&format!("{name} must be greater than zero"));
            }
            if d > Duration::from_secs(24 * 3600) {
                return bad(&format!("{name} must not exceed a day"));
            }
        }
        if self.initial_backoff > self.max_backoff {
            return bad("initial_backoff must not exceed max_backoff");
        }
        if self.max_backoff > MAX_BACKOFF {
            return bad("max_backoff must not exceed 10 minutes");
        }
        if u32::try_from(self.limits.max_frame_bytes).is_err() {
            return bad("limits.max_frame_bytes must fit the u32 length prefix");
        }
        Ok(())
    }
}

/// What went wrong, in the caller's terms.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    #[error("invalid federation configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    #[error("{0} is not a peer of this node")]
    UnknownPeer(PeerId),
    #[error("peer ID {0} is not an Ed25519 key")]
    NotEd25519(PeerId),
    #[error("cannot reach the peer: {0}")]
    Unreachable(String),
    #[error("the peer did not answer in time")]
    Timeout,
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer answered with an error frame.
    #[error("the peer answered {code}: {message}")]
    Remote { code: String, message: String },
    /// The peer broke the protocol (unexpected or malformed frame).
    #[error("protocol violation by the peer: {0}")]
    Protocol(String),
    #[error("the peer's node signature does not verify")]
    BadSignature,
    /// Our host failed.
    #[error("host: {0}")]
    Host(#[from] HostError),
    #[error("the federation driver is shut down")]
    Shutdown,
}

impl From<wire::ReadError> for NetError {
    fn from(e: wire::ReadError) -> Self {
        match e {
            wire::ReadError::Timeout => NetError::Timeout,
            wire::ReadError::Io(e) => NetError::Io(e),
            wire::ReadError::Closed => NetError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the peer closed the stream",
            )),
            other => NetError::Protocol(other.to_string()),
        }
    }
}

/// One peer as the driver sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub peer_id: PeerId,
    pub domain: String,
    /// At least one connection is open.
    pub connected: bool,
    /// While backing off: when the next attempt is due (Unix seconds).
    pub retry_at: Option<i64>,
    /// The last sending failure, cleared by a successful pass.
    pub last_error: Option<String>,
    /// Transfers being sent right now.
    pub in_flight: usize,
    /// Transfer streams opened to this peer since the driver started (streams are kept open
    /// between send passes, so this grows only when the link is new or broke).
    pub streams_opened: u64,
    /// Transfer streams kept open for the next send pass right now.
    pub idle_streams: usize,
    /// [`crate::Batch`] frames sent to this peer since the driver started.
    pub batches_sent: u64,
    /// Whether transfers go to this peer as batches: off after the peer refused a batch (a
    /// node of an older version), until the next connection.
    pub batching: bool,
}

/// A running driver. Cheap to clone; every clone controls the same driver.
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) keypair: Keypair,
    pub(crate) local: PeerId,
    pub(crate) host: SharedHost,
    control: libp2p_stream::Control,
    pub(crate) peers: Mutex<HashMap<PeerId, Arc<PeerEntry>>>,
    book: gate::AddressBook,
    /// Open connections per peer, maintained by the swarm task.
    connections: Mutex<HashMap<PeerId, usize>>,
    listen_addrs: Mutex<Vec<Multiaddr>>,
    commands: mpsc::Sender<Command>,
    pub(crate) cancel: CancellationToken,
    reload: Notify,
    /// Answers to unauthorised streams being written right now.
    refusals: Arc<Semaphore>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    swarm_task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

/// A connection this much older than a new one from the same peer is taken for stale (the
/// peer restarted or lost it): simultaneous dials land within milliseconds of each other.
const STALE_AFTER: Duration = Duration::from_secs(2);
/// Most `not_authorised` answers being written at once; further unknown streams are dropped.
const MAX_CONCURRENT_REFUSALS: usize = 16;
/// Capacity of the command channel into the swarm task.
const COMMAND_CAPACITY: usize = 256;

enum Command {
    Disconnect(PeerId),
}

/// An authorised peer's live state, shared by its tasks, the accept task and the handle.
pub(crate) struct PeerEntry {
    pub(crate) peer_id: PeerId,
    pub(crate) key: PublicKey,
    peer: Mutex<Peer>,
    pub(crate) cancel: CancellationToken,
    /// Wakes the sender: new outgoing, a connection, a retry.
    pub(crate) wake: Notify,
    /// Wakes the control task: connection change, pull wanted, push wanted.
    pub(crate) control: Notify,
    pub(crate) conn_dirty: AtomicBool,
    /// The state the host shows may be stale (the sender reported backing off, then
    /// recovered): the control task reports the connection state again. Only the control task
    /// reports connected or disconnected, from the connection table, so that a report made
    /// between two connections' events is corrected by the next one.
    pub(crate) report_wanted: AtomicBool,
    pub(crate) pull_wanted: AtomicBool,
    /// Highest cursor the peer announced with `Changed`.
    pub(crate) remote_cursor: AtomicU64,
    /// Our cursor to announce with `Changed` (0: nothing to announce).
    pub(crate) push_cursor: AtomicU64,
    pub(crate) inbound: Arc<Semaphore>,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) streams_opened: AtomicU64,
    pub(crate) batches_sent: AtomicU64,
    /// Transfer streams left open by the last send pass, with when each was last used: the
    /// next pass takes them instead of opening new ones. Opening a stream costs a protocol
    /// negotiation, and new streams open one after another (see `Pass::opening`): when every
    /// pass opened and closed its own, messages offered at a few hundred per second waited
    /// tens of milliseconds for a stream.
    pub(crate) idle_streams: Mutex<IdleStreams<Stream>>,
    /// Backoff, wake-ups and batching: the delivery core's decisions for this peer.
    schedule: Mutex<PeerSchedule>,
}

impl PeerEntry {
    pub(crate) fn peer(&self) -> Peer {
        self.peer.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn schedule(&self) -> std::sync::MutexGuard<'_, PeerSchedule> {
        self.schedule.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn idle_streams(&self) -> std::sync::MutexGuard<'_, IdleStreams<Stream>> {
        self.idle_streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the schedule what happened, and wakes the sender if it decides so.
    pub(crate) fn on_event(&self, event: Event) {
        if self.schedule().on_event(event) {
            self.wake.notify_one();
        }
    }

    /// The peer sent us something: if the sender is backing off, it retries now.
    pub(crate) fn poke(&self) {
        self.on_event(Event::HeardFrom);
    }

    /// The peer announced `Changed{cursor}`.
    pub(crate) fn remote_changed(&self, cursor: u64) {
        self.remote_cursor.fetch_max(cursor, Ordering::Relaxed);
        self.control.notify_one();
    }
}

/// The wall-clock time (Unix seconds) of `at`, an instant on the monotonic clock.
pub(crate) fn unix_at(at: Instant, now: Instant) -> i64 {
    let wall = SystemTime::now();
    let t = match at.checked_duration_since(now) {
        Some(ahead) => wall + ahead,
        None => wall - now.duration_since(at),
    };
    t.duration_since(UNIX_EPOCH)
        .map(|t| t.as_secs() as i64)
        .unwrap_or(0)
}

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Behaviour {
    gate: gate::Gate,
    stream: libp2p_stream::Behaviour,
}

/// Starts the driver: binds every `listen` address, loads the peers from the host, and spawns
/// the tasks. Returns once every listener has an address.
///
/// `keypair` is the node's identity (`Keypair::ed25519_from_bytes`); it must be Ed25519.
pub async fn start(config: Config, keypair: Keypair, host: SharedHost) -> Result<Handle, NetError> {
    config.validate()?;
    let local = keypair.public().to_peer_id();
    if keypair.clone().try_into_ed25519().is_err() {
        return Err(NetError::NotEd25519(local));
    }
    let book: gate::AddressBook = Arc::default();
    let quic_streams = u32::try_from(
        (config.inbound_streams_per_peer + config.outbound_streams_per_peer + 8).min(4096),
    )
    .unwrap_or(4096);
    // Connections stay up while we resync at least this often; the QUIC keep-alive detects a
    // dead peer within the QUIC idle timeout.
    let idle_connection = config
        .resync_interval
        .saturating_mul(2)
        .max(Duration::from_secs(60));
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair.clone())
        .with_tokio()
        .with_quic_config(|mut c| {
            c.max_concurrent_stream_limit = quic_streams;
            c.keep_alive_interval = Duration::from_secs(5);
            c.max_idle_timeout = 15_000;
            c
        })
        .with_behaviour(|_| Behaviour {
            gate: gate::Gate::new(book.clone()),
            stream: libp2p_stream::Behaviour::new(),
        })
        .map_err(|e| NetError::Config(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle_connection))
        .build();

    let mut control = swarm.behaviour().stream.new_control();
    let incoming = control
        .accept(PROTOCOL)
        .map_err(|e| NetError::Config(e.to_string()))?;

    let listen_addrs = bind(&mut swarm, &config.listen).await?;
    let (commands, command_rx) = mpsc::channel(COMMAND_CAPACITY);
    let inner = Arc::new(Inner {
        config,
        keypair,
        local,
        host,
        control,
        peers: Mutex::default(),
        book,
        connections: Mutex::default(),
        listen_addrs: Mutex::new(listen_addrs),
        commands,
        cancel: CancellationToken::new(),
        reload: Notify::new(),
        refusals: Arc::new(Semaphore::new(MAX_CONCURRENT_REFUSALS)),
        tasks: Mutex::default(),
        swarm_task: tokio::sync::Mutex::new(None),
    });
    reload_peers(&inner).await;

    let swarm_task = tokio::spawn(run_swarm(inner.clone(), swarm, command_rx));
    *inner.swarm_task.lock().await = Some(swarm_task);
    let accept = tokio::spawn(inbound::accept_loop(inner.clone(), incoming));
    let supervisor = tokio::spawn(supervise(inner.clone()));
    inner
        .tasks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend([accept, supervisor]);
    tracing::info!(peer_id = %local, "federation driver started");
    Ok(Handle { inner })
}

/// Listens on every address and waits until each listener reports an address.
async fn bind(
    swarm: &mut Swarm<Behaviour>,
    listen: &[Multiaddr],
) -> Result<Vec<Multiaddr>, NetError> {
    let mut waiting = HashMap::new();
    for addr in listen {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| NetError::Listen {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        waiting.insert(id, addr.clone());
    }
    let mut bound = Vec::new();
    let deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(deadline);
    while !waiting.is_empty() {
        let event = tokio::select! {
            e = swarm.select_next_some() => e,
            () = &mut deadline => {
                let addr = waiting.into_values().next().expect("not empty");
                return Err(NetError::Listen { addr, reason: "no address after 10 s".into() });
            }
        };
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                waiting.remove(&listener_id);
                bound.push(address);
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                if let Some(addr) = waiting.remove(&listener_id) {
                    let reason = match reason {
                        Ok(()) => "listener closed".to_owned(),
                        Err(e) => e.to_string(),
                    };
                    return Err(NetError::Listen { addr, reason });
                }
            }
            SwarmEvent::ListenerError { listener_id, error } => {
                if let Some(addr) = waiting.remove(&listener_id) {
                    return Err(NetError::Listen {
                        addr,
                        reason: error.to_string(),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(bound)
}

/// Owns the swarm until shutdown; tells peer tasks about connections.
async fn run_swarm(
    inner: Arc<Inner>,
    mut swarm: Swarm<Behaviour>,
    mut commands: mpsc::Receiver<Command>,
) {
    // Open connections per peer with when each was established, to drop stale ones.
    let mut open: HashMap<PeerId, Vec<(libp2p::swarm::ConnectionId, Instant)>> = HashMap::new();
    loop {
        let event = tokio::select! {
            () = inner.cancel.cancelled() => break,
            Some(cmd) = commands.recv() => {
                match cmd {
                    Command::Disconnect(peer) => { let _ = swarm.disconnect_peer_id(peer); }
                }
                continue;
            }
            e = swarm.select_next_some() => e,
        };
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                let conns = open.entry(peer_id).or_default();
                // A new connection from a peer that already has one older than a simultaneous
                // dial could explain: the peer restarted or lost the old one. The old one would
                // swallow streams until its QUIC idle timeout; close it now.
                let now = Instant::now();
                let mut closing_stale = false;
                for (old, at) in conns.iter() {
                    if now.duration_since(*at) > STALE_AFTER {
                        closing_stale |= swarm.close_connection(*old);
                    }
                }
                conns.push((connection_id, now));
                tracing::debug!(peer = %peer_id, n = num_established.get(), closing_stale, "connection established");
                // While a stale connection is closing, a stream opened now could land on it and
                // fail; the sender is woken when it has closed instead.
                set_connections(
                    &inner,
                    peer_id,
                    num_established.get() as usize,
                    !closing_stale,
                );
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                if let Some(conns) = open.get_mut(&peer_id) {
                    conns.retain(|(c, _)| *c != connection_id);
                    if conns.is_empty() {
                        open.remove(&peer_id);
                    }
                }
                tracing::debug!(peer = %peer_id, n = num_established, cause = ?cause.map(|c| c.to_string()), "connection closed");
                set_connections(&inner, peer_id, num_established as usize, true);
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                let mut addrs = inner.listen_addrs.lock().unwrap_or_else(|e| e.into_inner());
                if !addrs.contains(&address) {
                    addrs.push(address);
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                inner
                    .listen_addrs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain(|a| *a != address);
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(peer = ?peer_id, %error, "dial failed");
            }
            _ => {}
        }
    }
    // Close connections politely so peers notice at once rather than at their idle timeout,
    // and the UDP socket is released for a restart on the same port.
    let peers: Vec<PeerId> = open.keys().copied().collect();
    for p in peers {
        let _ = swarm.disconnect_peer_id(p);
    }
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while !open.is_empty() {
            if let SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                ..
            } = swarm.select_next_some().await
                && let Some(conns) = open.get_mut(&peer_id)
            {
                conns.retain(|(c, _)| *c != connection_id);
                if conns.is_empty() {
                    open.remove(&peer_id);
                }
            }
        }
    })
    .await;
    drop(swarm);
}

fn set_connections(inner: &Inner, peer: PeerId, n: usize, wake: bool) {
    {
        let mut c = inner.connections.lock().unwrap_or_else(|e| e.into_inner());
        if n == 0 {
            c.remove(&peer);
        } else {
            c.insert(peer, n);
        }
    }
    if let Some(entry) = inner.entry(&peer) {
        entry.conn_dirty.store(true, Ordering::Relaxed);
        entry.control.notify_one();
        if n > 0 && wake {
            // "Retry immediately when the peer connects", with batches offered again (it may
            // be an upgraded node).
            entry.on_event(Event::Connected);
        }
    }
}

/// Re-reads the peers after `peers_changed`.
async fn supervise(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            () = inner.cancel.cancelled() => return,
            () = inner.reload.notified() => reload_peers(&inner).await,
        }
    }
}

/// Brings the peer table in step with [`Host::peers`]: new peers get tasks, removed ones lose
/// them (and their connections), changed addresses and domains take effect at once.
async fn reload_peers(inner: &Arc<Inner>) {
    let wanted = inner.host.peers().await;
    let mut seen = HashMap::new();
    for p in wanted {
        if p.peer_id == inner.local {
            tracing::warn!(peer = %p.peer_id, "a peer entry names this node itself; ignored");
            continue;
        }
        let Some(key) = wire::ed25519_key_of(&p.peer_id) else {
            tracing::warn!(peer = %p.peer_id, domain = %p.domain, "peer ID is not an Ed25519 key; peer ignored");
            continue;
        };
        seen.insert(p.peer_id, (p, key));
    }
    let mut spawned = Vec::new();
    let mut removed = Vec::new();
    {
        let mut peers = inner.peers.lock().unwrap_or_else(|e| e.into_inner());
        let mut book = inner.book.lock().unwrap_or_else(|e| e.into_inner());
        peers.retain(|id, entry| {
            if seen.contains_key(id) {
                true
            } else {
                entry.cancel.cancel();
                book.remove(id);
                removed.push(*id);
                false
            }
        });
        for (id, (p, key)) in seen {
            book.insert(id, p.addrs.clone());
            if let Some(entry) = peers.get(&id) {
                let mut cur = entry.peer.lock().unwrap_or_else(|e| e.into_inner());
                if *cur != p {
                    *cur = p;
                    drop(cur);
                    // New addresses: try them now.
                    entry.on_event(Event::Readdressed);
                }
                continue;
            }
            let entry = Arc::new(PeerEntry {
                peer_id: id,
                key,
                peer: Mutex::new(p),
                cancel: inner.cancel.child_token(),
                wake: Notify::new(),
                control: Notify::new(),
                conn_dirty: AtomicBool::new(true),
                report_wanted: AtomicBool::new(false),
                pull_wanted: AtomicBool::new(true),
                remote_cursor: AtomicU64::new(0),
                push_cursor: AtomicU64::new(0),
                inbound: Arc::new(Semaphore::new(inner.config.inbound_streams_per_peer)),
                in_flight: AtomicUsize::new(0),
                streams_opened: AtomicU64::new(0),
                batches_sent: AtomicU64::new(0),
                idle_streams: Mutex::new(IdleStreams::new(
                    inner.config.idle_timeout,
                    inner.config.outbound_streams_per_peer,
                )),
                schedule: Mutex::new(PeerSchedule::new(
                    inner.config.initial_backoff,
                    inner.config.max_backoff,
                    inner.config.resync_interval,
                    StdRng::from_entropy(),
                )),
            });
            peers.insert(id, entry.clone());
            spawned.push(entry);
        }
    }
    for id in removed {
        tracing::info!(peer = %id, "peer removed");
        let _ = inner.commands.try_send(Command::Disconnect(id));
    }
    let mut tasks = inner.tasks.lock().unwrap_or_else(|e| e.into_inner());
    tasks.retain(|t| !t.is_finished());
    for entry in spawned {
        tracing::debug!(peer = %entry.peer_id, "peer tasks started");
        tasks.push(tokio::spawn(peer::sender(inner.clone(), entry.clone())));
        tasks.push(tokio::spawn(peer::control(inner.clone(), entry)));
    }
}

impl Inner {
    pub(crate) fn entry(&self, peer: &PeerId) -> Option<Arc<PeerEntry>> {
        self.peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(peer)
            .cloned()
    }

    pub(crate) fn is_connected(&self, peer: &PeerId) -> bool {
        self.connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(peer)
    }

    /// Opens a protocol stream to the peer, dialing it if needed, within `request_timeout`.
    pub(crate) async fn open_stream(&self, peer: PeerId) -> Result<Stream, NetError> {
        if self.cancel.is_cancelled() {
            return Err(NetError::Shutdown);
        }
        let mut control = self.control.clone();
        match tokio::time::timeout(
            self.config.request_timeout,
            control.open_stream(peer, PROTOCOL),
        )
        .await
        {
            Err(_) => Err(NetError::Timeout),
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(NetError::Unreachable(e.to_string())),
        }
    }

    /// Opens a stream, sends `request` and reads the first answer. A stream that fails before
    /// any answer (libp2p-stream drops inbound streams the receiver has no room for at that
    /// instant) is retried on a new stream, a few times; timeouts are not retried.
    pub(crate) async fn ask(
        &self,
        peer: PeerId,
        request: &Frame,
    ) -> Result<(Stream, Frame), NetError> {
        let t = self.config.request_timeout;
        let mut attempts = ExchangeAttempts::default();
        loop {
            attempts.on_stream(StreamSource::Fresh);
            let r = async {
                let mut s = self.open_stream(peer).await?;
                wire::write_frame(&mut s, request, t).await?;
                let answer = wire::read_frame(&mut s, &self.config.limits, t, t).await?;
                Ok::<_, NetError>((s, answer))
            }
            .await;
            let failure = match &r {
                Ok(_) => return r,
                Err(NetError::Io(_)) => Failure::Stream { answered: false },
                Err(_) => Failure::Other,
            };
            match attempts.on_failure(StreamSource::Fresh, failure) {
                Retry::After(pause) => {
                    if let Err(e) = &r {
                        tracing::debug!(%peer, error = %e, "stream failed before an answer; retrying");
                    }
                    tokio::time::sleep(pause).await;
                }
                Retry::Now => {}
                Retry::GiveUp => return r,
            }
        }
    }

    pub(crate) fn disconnect_later(self: &Arc<Self>, peer: PeerId, after: Duration) {
        let inner = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = inner.cancel.cancelled() => {}
                () = tokio::time::sleep(after) => {
                    // An admin may have authorised the peer meanwhile (the two sides of a
                    // peering are set up one after the other): keep its connection then.
                    if inner.entry(&peer).is_none() {
                        let _ = inner.commands.try_send(Command::Disconnect(peer));
                    }
                }
            }
        });
    }
}

impl Handle {
    /// This node's peer ID (its identity).
    pub fn peer_id(&self) -> PeerId {
        self.inner.local
    }

    /// The addresses actually bound (port 0 resolved).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.inner
            .listen_addrs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// New outgoing transfers are queued for this peer: send now (even while backing off).
    pub fn wake(&self, peer: &PeerId) {
        if let Some(e) = self.inner.entry(peer) {
            e.on_event(Event::Queued);
        }
    }

    /// Something was queued for the peer that speaks for `domain`: send now. Costs no look-up
    /// in the host (the driver's peer table knows each peer's domain).
    pub fn wake_domain(&self, domain: &str) {
        let peers = self.inner.peers.lock().unwrap_or_else(|e| e.into_inner());
        for e in peers.values() {
            if e.peer.lock().unwrap_or_else(|e| e.into_inner()).domain == domain {
                e.on_event(Event::Queued);
            }
        }
    }

    /// The peer table changed: re-read [`crate::Host::peers`] (add, remove, readdress).
    pub fn peers_changed(&self) {
        self.inner.reload.notify_one();
    }

    /// Our certificates changed up to `cursor`: tell every connected peer (`Changed`), so that
    /// it pulls. Peers not connected pull when they next connect.
    pub fn certs_changed(&self, cursor: u64) {
        let peers: Vec<_> = self
            .inner
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for e in peers {
            e.push_cursor.fetch_max(cursor, Ordering::Relaxed);
            e.control.notify_one();
        }
    }

    /// Asks the peer's directory for an address's certificates, within `request_timeout`.
    pub async fn lookup(&self, peer: &PeerId, address: &str) -> Result<LookupAnswer, NetError> {
        let req = Frame::Lookup(Lookup {
            address: address.to_owned(),
        });
        self.request(peer, req, "a lookup answer", |f| match f {
            Frame::LookupAnswer(a) => Some(a),
            _ => None,
        })
        .await
    }

    /// Asks the peer for its evidence bundle (JSON) of `message_id`, within
    /// `request_timeout` (docs/evidence.md).
    pub async fn evidence(&self, peer: &PeerId, message_id: &str) -> Result<String, NetError> {
        self.request(
            peer,
            Frame::EvidenceLookup(crate::frame::EvidenceLookup {
                message_id: message_id.into(),
            }),
            "evidence records",
            |f| match f {
                Frame::EvidenceRecords(r) => Some(r.bundle),
                _ => None,
            },
        )
        .await
    }

    /// Asks the peer for its organisation record (JSON), within `request_timeout`.
    pub async fn org_record(&self, peer: &PeerId) -> Result<String, NetError> {
        self.request(
            peer,
            Frame::OrgLookup(OrgLookup {}),
            "an organisation record",
            |f| match f {
                Frame::OrgRecord(r) => Some(r.record),
                _ => None,
            },
        )
        .await
    }

    /// One request and its answer on a stream of its own, within `request_timeout`. `pick`
    /// takes the expected answer (`what`); an error frame becomes [`NetError::Remote`].
    async fn request<T>(
        &self,
        peer: &PeerId,
        req: Frame,
        what: &str,
        pick: impl FnOnce(Frame) -> Option<T>,
    ) -> Result<T, NetError> {
        let inner = &self.inner;
        if inner.entry(peer).is_none() {
            return Err(NetError::UnknownPeer(*peer));
        }
        let t = inner.config.request_timeout;
        let exchange = async {
            let (mut stream, answer) = inner.ask(*peer, &req).await?;
            let _ = futures::AsyncWriteExt::close(&mut stream).await;
            let got = frame_name(&answer);
            if let Frame::Error(e) = answer {
                return Err(NetError::Remote {
                    code: e.code,
                    message: e.message,
                });
            }
            pick(answer).ok_or_else(|| NetError::Protocol(format!("expected {what}, got {got}")))
        };
        tokio::select! {
            () = inner.cancel.cancelled() => Err(NetError::Shutdown),
            r = tokio::time::timeout(t, exchange) => r.unwrap_or(Err(NetError::Timeout)),
        }
    }

    /// Every authorised peer's state.
    pub fn status(&self) -> Vec<PeerStatus> {
        let peers: Vec<_> = self
            .inner
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let now = Instant::now();
        let mut out: Vec<PeerStatus> = peers
            .into_iter()
            .map(|e| {
                let (retry_at, last_error, batching) = {
                    let s = e.schedule();
                    let retry_at = s.retry_at().map(|at| unix_at(at, now));
                    (retry_at, s.last_error().map(str::to_owned), s.batching())
                };
                PeerStatus {
                    peer_id: e.peer_id,
                    domain: e.peer().domain,
                    connected: self.inner.is_connected(&e.peer_id),
                    retry_at,
                    last_error,
                    in_flight: e.in_flight.load(Ordering::Relaxed),
                    streams_opened: e.streams_opened.load(Ordering::Relaxed),
                    idle_streams: e.idle_streams().len(),
                    batches_sent: e.batches_sent.load(Ordering::Relaxed),
                    batching,
                }
            })
            .collect();
        out.sort_by(|a, b| a.domain.cmp(&b.domain));
        out
    }

    /// A raw protocol stream to an authorised peer, for tests and diagnostics (speak it with
    /// [`wire`]). The driver's own exchanges never need this.
    pub async fn open_stream(&self, peer: &PeerId) -> Result<Stream, NetError> {
        self.inner.open_stream(*peer).await
    }

    /// Stops every task, closes connections and releases the listening sockets. Idempotent.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        let swarm = self.inner.swarm_task.lock().await.take();
        if let Some(t) = swarm {
            let _ = t.await;
        }
        let tasks =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
    }
}

pub(crate) fn frame_name(f: &Frame) -> &'static str {
    match f {
        Frame::Transfer(_) => "transfer",
        Frame::Receipt(_) => "receipt",
        Frame::Lookup(_) => "lookup",
        Frame::LookupAnswer(_) => "lookup_answer",
        Frame::CertUpdates(_) => "cert_updates",
        Frame::PullSince(_) => "pull_since",
        Frame::Want(_) => "want",
        Frame::Changed(_) => "changed",
        Frame::OrgLookup(_) => "org_lookup",
        Frame::OrgRecord(_) => "org_record",
        Frame::Batch(_) => "batch",
        Frame::BatchAnswer(_) => "batch_answer",
        Frame::Error(_) => "error",
        Frame::EvidenceLookup(_) => "evidence_lookup",
        Frame::EvidenceRecords(_) => "evidence_records",
    }
}
