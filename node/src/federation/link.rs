//! What the HTTP side of the node needs from the running federation driver, as a trait so that
//! request handlers do not depend on libp2p.

use async_trait::async_trait;

#[async_trait]
pub trait FedLink: Send + Sync + 'static {
    /// This node's peer ID (base58).
    fn peer_id(&self) -> String;
    /// The QUIC addresses this node listens on (multiaddresses).
    fn listen_addrs(&self) -> Vec<String>;
    /// Something was queued for this peer: send now.
    fn wake(&self, peer_id: &str);
    /// The peer table changed.
    fn peers_changed(&self);
    /// Our certificates changed; `cursor` is the new generation.
    fn certs_changed(&self, cursor: u64);
    /// Asks a peer's node for the certificates of one of its addresses.
    async fn lookup(&self, peer_id: &str, address: &str) -> Result<Vec<String>, String>;
}
