//! What the HTTP side of the node needs from the running federation driver, as a trait so that
//! request handlers do not depend on libp2p.

use async_trait::async_trait;

#[async_trait]
pub trait FedLink: Send + Sync + 'static {
    /// This node's peer ID (base58).
    fn peer_id(&self) -> String;
    /// The QUIC addresses this node listens on (multiaddresses).
    fn listen_addrs(&self) -> Vec<String>;
    /// Something was queued for the peer of this domain: send now.
    fn wake(&self, domain: &str);
    /// The peer table changed.
    fn peers_changed(&self);
    /// Our certificates changed; `cursor` is the new generation.
    fn certs_changed(&self, cursor: u64);
    /// Asks a peer's node for the certificates of one of its addresses.
    async fn lookup(&self, peer_id: &str, address: &str) -> Result<Vec<String>, String>;
    /// Asks a peer's node for its organisation record (JSON).
    async fn org_record(&self, peer_id: &str) -> Result<String, String>;
}
#[async_trait]
impl FedLink for sealpost_federation::net::Handle {
    fn peer_id(&self) -> String {
        sealpost_federation::net::Handle::peer_id(self).to_base58()
    }

    fn listen_addrs(&self) -> Vec<String> {
        sealpost_federation::net::Handle::listen_addrs(self)
            .iter()
            .map(|a| a.to_string())
            .collect()
    }

    fn wake(&self, domain: &str) {
        sealpost_federation::net::Handle::wake_domain(self, domain);
    }

    fn peers_changed(&self) {
        sealpost_federation::net::Handle::peers_changed(self);
    }

    fn certs_changed(&self, cursor: u64) {
        sealpost_federation::net::Handle::certs_changed(self, cursor);
    }

    async fn lookup(&self, peer_id: &str, address: &str) -> Result<Vec<String>, String> {
        let peer = peer_id
            .parse()
            .map_err(|e| format!("bad peer ID {peer_id}: {e}"))?;
        sealpost_federation::net::Handle::lookup(self, &peer, address)
            .await
            .map(|a| a.certs)
            .map_err(|e| e.to_string())
    }

    async fn org_record(&self, peer_id: &str) -> Result<String, String> {
        let peer = peer_id
            .parse()
            .map_err(|e| format!("bad peer ID {peer_id}: {e}"))?;
        sealpost_federation::net::Handle::org_record(self, &peer)
            .await
            .map_err(|e| e.to_string())
    }
}
