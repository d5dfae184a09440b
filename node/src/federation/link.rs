//! The running federation driver as the service layer's [`FedLink`] (defined there, so that
//! nothing but this module depends on libp2p).

use async_trait::async_trait;

pub use crate::service::FedLink;

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

    async fn evidence(&self, peer_id: &str, message_id: &str) -> Result<String, String> {
        let peer = peer_id
            .parse()
            .map_err(|e| format!("bad peer ID {peer_id}: {e}"))?;
        sealpost_federation::net::Handle::evidence(self, &peer, message_id)
            .await
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
