//! The connection gate: where to dial each authorised peer, and how many connections anyone
//! may hold open to us.
//!
//! `libp2p-stream` dials a peer by ID when a stream is opened to it; the swarm then asks every
//! behaviour for that peer's addresses. This behaviour answers from the peer table (kept in
//! step with [`crate::Host::peers`] by the driver) and bounds connections: a few per authorised
//! peer, and a small shared allowance for unknown peer IDs (which only ever get
//! `not_authorised` answers, but must be able to hear them).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use libp2p::core::{Endpoint, transport::PortUse};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

/// Connections one authorised peer may hold at once (simultaneous dials make two; a restart
/// briefly leaves a stale one beside the new one).
pub(crate) const MAX_CONNECTIONS_PER_PEER: usize = 4;
/// Connections from peer IDs we do not know, all together.
pub(crate) const MAX_UNKNOWN_CONNECTIONS: usize = 16;

/// The dialable addresses of each authorised peer; its keys are the authorised peer IDs.
pub(crate) type AddressBook = Arc<Mutex<HashMap<PeerId, Vec<Multiaddr>>>>;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Denied(&'static str);

pub(crate) struct Gate {
    book: AddressBook,
    per_peer: HashMap<PeerId, usize>,
    unknown: HashSet<ConnectionId>,
}

impl Gate {
    pub(crate) fn new(book: AddressBook) -> Self {
        Gate {
            book,
            per_peer: HashMap::new(),
            unknown: HashSet::new(),
        }
    }

    fn check(&self, peer: &PeerId) -> Result<(), ConnectionDenied> {
        let known = self
            .book
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(peer);
        if !known && self.unknown.len() >= MAX_UNKNOWN_CONNECTIONS {
            return Err(ConnectionDenied::new(Denied(
                "too many connections from unknown peers",
            )));
        }
        if self.per_peer.get(peer).copied().unwrap_or(0) >= MAX_CONNECTIONS_PER_PEER {
            return Err(ConnectionDenied::new(Denied(
                "too many connections from this peer",
            )));
        }
        Ok(())
    }
}

impl NetworkBehaviour for Gate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.check(&peer)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        let Some(peer) = peer else {
            return Ok(vec![]);
        };
        Ok(self
            .book
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&peer)
            .cloned()
            .unwrap_or_default())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.check(&peer)?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                *self.per_peer.entry(e.peer_id).or_default() += 1;
                let known = self
                    .book
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains_key(&e.peer_id);
                if !known {
                    self.unknown.insert(e.connection_id);
                }
            }
            FromSwarm::ConnectionClosed(e) => {
                if let Some(n) = self.per_peer.get_mut(&e.peer_id) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.per_peer.remove(&e.peer_id);
                    }
                }
                self.unknown.remove(&e.connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}
