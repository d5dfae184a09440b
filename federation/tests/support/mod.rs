//! An in-memory [`Host`] and helpers to run drivers against each other on loopback.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use sealpost_federation::net::{self, Config, Handle};
use sealpost_federation::{
    Admission, BatchProof, CertUpdates, Host, HostError, LookupAnswer, MessageId, Outgoing,
    PartReader, PartRef, Peer, PeerState, Receipt, Transfer,
};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt as _;

/// Everything a test may want to count or inspect.
#[derive(Default)]
pub struct TestHost {
    pub peers: Mutex<Vec<Peer>>,
    // outbound
    pub outbox: Mutex<BTreeMap<u64, (PeerId, Transfer)>>,
    next_seq: AtomicU64,
    pub local_parts: Mutex<HashMap<String, Vec<u8>>>,
    pub delivered: Mutex<Vec<(PeerId, Receipt, Option<BatchProof>)>>,
    pub rejected: Mutex<Vec<(MessageId, String)>>,
    pub states: Mutex<Vec<(PeerId, PeerState)>>,
    /// While set, `delivered` waits for a permit of this semaphore before recording.
    pub delivery_gate: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    // inbound
    pub admits: AtomicUsize,
    pub stores: AtomicUsize,
    pub commits: AtomicUsize,
    pub lookups: AtomicUsize,
    pub updates_calls: AtomicUsize,
    pub stored_parts: Mutex<HashMap<String, Vec<u8>>>,
    /// Message ID → how many times it was stored (must stay 1).
    pub messages: Mutex<HashMap<MessageId, usize>>,
    // directory and certificates
    pub directory: Mutex<HashMap<String, Vec<String>>>,
    /// Our certificate change log; the cursor is its length.
    pub my_certs: Mutex<Vec<String>>,
    pub pull_cursors: Mutex<HashMap<PeerId, u64>>,
    pub applied: Mutex<Vec<String>>,
}

pub fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn receipt_for(t: &Transfer) -> Receipt {
    Receipt {
        message_id: t.message_id.clone(),
        accepted: vec!["bob@beta.test".into()],
        refused: vec![],
        node_sig: vec![],
    }
}

/// An unsigned transfer with these parts (part 0 is the head).
pub fn transfer(id: &str, parts: &[&[u8]]) -> Transfer {
    Transfer {
        message_id: MessageId::new(id),
        envelope: format!(r#"{{"v":1,"message_id":"{id}"}}"#),
        signature: "-----BEGIN PGP SIGNATURE-----".into(),
        sender_cert: String::new(),
        parts: parts
            .iter()
            .map(|p| PartRef {
                sha256: sha(p),
                size: p.len() as u64,
                data: None,
            })
            .collect(),
        node_sig: vec![],
    }
}

impl TestHost {
    pub fn new() -> Arc<Self> {
        Arc::new(TestHost::default())
    }

    pub fn set_peers(&self, peers: Vec<Peer>) {
        *self.peers.lock().unwrap() = peers;
    }

    /// Queues a transfer for `to`, keeping its parts to send.
    pub fn queue(&self, to: PeerId, id: &str, parts: &[&[u8]]) -> Transfer {
        let t = transfer(id, parts);
        self.queue_transfer(to, t.clone(), parts);
        t
    }

    pub fn queue_transfer(&self, to: PeerId, t: Transfer, parts: &[&[u8]]) {
        let mut lp = self.local_parts.lock().unwrap();
        for p in parts {
            lp.insert(sha(p), p.to_vec());
        }
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst) + 1;
        self.outbox.lock().unwrap().insert(seq, (to, t));
    }

    pub fn delivered_count(&self) -> usize {
        self.delivered.lock().unwrap().len()
    }

    pub fn outbox_len(&self) -> usize {
        self.outbox.lock().unwrap().len()
    }

    /// Calls that would mean the host served the peer.
    pub fn inbound_calls(&self) -> usize {
        self.admits.load(Ordering::SeqCst)
            + self.stores.load(Ordering::SeqCst)
            + self.commits.load(Ordering::SeqCst)
            + self.lookups.load(Ordering::SeqCst)
            + self.updates_calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Host for TestHost {
    async fn peers(&self) -> Vec<Peer> {
        self.peers.lock().unwrap().clone()
    }

    async fn admit(&self, _peer: &Peer, t: &Transfer) -> Result<Admission, HostError> {
        self.admits.fetch_add(1, Ordering::SeqCst);
        if self.messages.lock().unwrap().contains_key(&t.message_id) {
            return Ok(Admission::Answer(receipt_for(t)));
        }
        let held = self.stored_parts.lock().unwrap();
        let want = t
            .parts
            .iter()
            .enumerate()
            .filter(|(_, p)| !held.contains_key(&p.sha256))
            .map(|(i, _)| i as u32)
            .collect();
        Ok(Admission::Want(want))
    }

    async fn store_part(
        &self,
        _peer: &Peer,
        part: &PartRef,
        data: &mut PartReader,
    ) -> Result<(), HostError> {
        self.stores.fetch_add(1, Ordering::SeqCst);
        let mut buf = Vec::new();
        data.read_to_end(&mut buf)
            .await
            .map_err(|e| HostError::Unavailable(e.to_string()))?;
        if buf.len() as u64 != part.size || sha(&buf) != part.sha256 {
            return Err(HostError::Refused("part does not match its hash".into()));
        }
        self.stored_parts
            .lock()
            .unwrap()
            .insert(part.sha256.clone(), buf);
        Ok(())
    }

    async fn commit(&self, _peer: &Peer, t: &Transfer) -> Result<Receipt, HostError> {
        self.commits.fetch_add(1, Ordering::SeqCst);
        let held = self.stored_parts.lock().unwrap();
        if t.parts.iter().any(|p| !held.contains_key(&p.sha256)) {
            return Err(HostError::Refused("parts missing".into()));
        }
        *self
            .messages
            .lock()
            .unwrap()
            .entry(t.message_id.clone())
            .or_default() += 1;
        Ok(receipt_for(t))
    }

    async fn org_record(&self, _peer: &Peer) -> Result<String, HostError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        Ok(r#"{"domain":"test"}"#.into())
    }

    async fn lookup(&self, _peer: &Peer, address: &str) -> Result<LookupAnswer, HostError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        Ok(LookupAnswer {
            certs: self
                .directory
                .lock()
                .unwrap()
                .get(address)
                .cloned()
                .unwrap_or_default(),
        })
    }

    async fn updates_since(
        &self,
        _peer: &Peer,
        cursor: u64,
        max: usize,
    ) -> Result<CertUpdates, HostError> {
        self.updates_calls.fetch_add(1, Ordering::SeqCst);
        let certs = self.my_certs.lock().unwrap();
        let from = (cursor as usize).min(certs.len());
        let page: Vec<String> = certs[from..].iter().take(max).cloned().collect();
        Ok(CertUpdates {
            cursor: (from + page.len()) as u64,
            certs: page,
        })
    }

    async fn pull_cursor(&self, peer: &Peer) -> Result<u64, HostError> {
        Ok(self
            .pull_cursors
            .lock()
            .unwrap()
            .get(&peer.peer_id)
            .copied()
            .unwrap_or(0))
    }

    async fn apply_updates(&self, peer: &Peer, updates: CertUpdates) -> Result<(), HostError> {
        self.applied.lock().unwrap().extend(updates.certs);
        self.pull_cursors
            .lock()
            .unwrap()
            .insert(peer.peer_id, updates.cursor);
        Ok(())
    }

    async fn pending(
        &self,
        peer: &Peer,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Outgoing>, HostError> {
        Ok(self
            .outbox
            .lock()
            .unwrap()
            .range(after + 1..)
            .filter(|(_, (to, _))| *to == peer.peer_id)
            .take(limit)
            .map(|(seq, (_, t))| Outgoing {
                seq: *seq,
                transfer: t.clone(),
            })
            .collect())
    }

    async fn open_part(
        &self,
        _message_id: &MessageId,
        _index: u32,
        part: &PartRef,
    ) -> Result<PartReader, HostError> {
        let bytes = self
            .local_parts
            .lock()
            .unwrap()
            .get(&part.sha256)
            .cloned()
            .ok_or_else(|| HostError::Refused("no such part".into()))?;
        Ok(Box::pin(std::io::Cursor::new(bytes)))
    }

    async fn delivered(
        &self,
        peer: &Peer,
        receipt: Receipt,
        proof: Option<BatchProof>,
    ) -> Result<(), HostError> {
        let gate = self.delivery_gate.lock().unwrap().clone();
        if let Some(gate) = gate {
            let _permit = gate.acquire().await;
        }
        self.outbox
            .lock()
            .unwrap()
            .retain(|_, (to, t)| !(*to == peer.peer_id && t.message_id == receipt.message_id));
        self.delivered
            .lock()
            .unwrap()
            .push((peer.peer_id, receipt, proof));
        Ok(())
    }

    async fn peer_state(&self, peer: &Peer, state: PeerState) {
        self.states.lock().unwrap().push((peer.peer_id, state));
    }

    async fn rejected(&self, _peer: &Peer, message_id: &MessageId, code: &str, _message: &str) {
        self.rejected
            .lock()
            .unwrap()
            .push((message_id.clone(), code.to_owned()));
    }
}

/// Settings for tests: loopback, port 0, short timeouts, no resync during a test.
pub fn config() -> Config {
    Config {
        listen: vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()],
        request_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(2),
        resync_interval: Duration::from_secs(600),
        ..Config::default()
    }
}

/// One driver with its host and identity.
pub struct Node {
    pub host: Arc<TestHost>,
    pub keypair: Keypair,
    pub handle: Handle,
    pub domain: String,
}

impl Node {
    pub async fn start(domain: &str, config: Config, peers: Vec<Peer>) -> Node {
        Node::start_with(
            domain,
            config,
            peers,
            Keypair::generate_ed25519(),
            TestHost::new(),
        )
        .await
    }

    pub async fn start_with(
        domain: &str,
        config: Config,
        peers: Vec<Peer>,
        keypair: Keypair,
        host: Arc<TestHost>,
    ) -> Node {
        init_tracing();
        host.set_peers(peers);
        let handle = net::start(config, keypair.clone(), host.clone())
            .await
            .expect("driver starts");
        Node {
            host,
            keypair,
            handle,
            domain: domain.into(),
        }
    }

    pub fn id(&self) -> PeerId {
        self.handle.peer_id()
    }

    pub fn addrs(&self) -> Vec<Multiaddr> {
        self.handle.listen_addrs()
    }

    /// This node as a peer entry for others.
    pub fn as_peer(&self) -> Peer {
        Peer {
            peer_id: self.id(),
            addrs: self.addrs(),
            domain: self.domain.clone(),
        }
    }

    /// Adds `other` to this node's peers and tells the driver.
    pub fn peer_with(&self, other: &Node) {
        self.host.peers.lock().unwrap().push(other.as_peer());
        self.handle.peers_changed();
    }
}

/// Two nodes peered both ways.
pub async fn pair(a_config: Config, b_config: Config) -> (Node, Node) {
    let b = Node::start("beta.test", b_config, vec![]).await;
    let a = Node::start("alpha.test", a_config, vec![b.as_peer()]).await;
    b.peer_with(&a);
    let a_id = a.id();
    eventually("beta knows alpha", Duration::from_secs(5), || {
        b.handle.status().iter().any(|s| s.peer_id == a_id)
    })
    .await;
    (a, b)
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Waits (the test kit's `wait_for`) until `cond` holds, failing the test with `what` after
/// `deadline`.
pub async fn eventually(what: &str, deadline: Duration, cond: impl Fn() -> bool) {
    sealpost_testkit::wait_for(deadline, async || cond().then_some(()))
        .await
        .unwrap_or_else(|e| panic!("{e}: {what}"));
}
