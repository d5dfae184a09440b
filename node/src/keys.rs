//! The node's own keys: its Ed25519 identity (signs log checkpoints; later its federation peer
//! ID) and the organisation CA. Both are created once by `init` and kept in `DATA/keys/` with
//! mode 0600. Neither is a user's key: user secret keys never reach the node unwrapped.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, bail};
use ed25519_dalek::SigningKey;
use hkdf::Hkdf;
use sequoia_openpgp::Cert;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::serialize::SerializeInto;
use sha2::Sha256;

use crate::config::Paths;

/// Writes `bytes` to a new file readable only by its owner, fsynced. Refuses to overwrite.
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

pub fn create_node_key(paths: &Paths) -> anyhow::Result<SigningKey> {
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    write_secret_file(&paths.node_key(), key.as_bytes())?;
    Ok(key)
}

pub fn load_node_key(paths: &Paths) -> anyhow::Result<SigningKey> {
    let path = paths.node_key();
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let Ok(raw) = <[u8; 32]>::try_from(bytes.as_slice()) else {
        bail!("{} is not a 32-byte Ed25519 secret key", path.display());
    };
    Ok(SigningKey::from_bytes(&raw))
}

pub fn create_ca(paths: &Paths, domain: &str) -> anyhow::Result<Cert> {
    let ca = crate::crypto::generate_ca(domain, std::time::SystemTime::now())?;
    let armored = ca.as_tsk().armored().to_vec()?;
    write_secret_file(&paths.ca_key(), &armored)?;
    Ok(ca)
}

pub fn load_ca(paths: &Paths) -> anyhow::Result<Cert> {
    let path = paths.ca_key();
    let ca = Cert::from_file(&path).with_context(|| format!("reading {}", path.display()))?;
    if !ca.is_tsk() {
        bail!("{} holds no secret key", path.display());
    }
    Ok(ca)
}

/// A 32-byte key for one purpose, derived from the node key (HKDF-SHA256, `label` as info), so
/// that one secret on disk serves several uses without any two sharing a key.
pub fn derive_subkey(node_key: &SigningKey, label: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(None, node_key.as_bytes())
        .expand(label, &mut out)
        .expect("32 bytes is a valid HKDF length");
    out
}

/// The node key as a libp2p identity: the node's peer ID is its Ed25519 key.
pub fn libp2p_keypair(node_key: &SigningKey) -> libp2p::identity::Keypair {
    libp2p::identity::Keypair::ed25519_from_bytes(node_key.to_bytes())
        .expect("an Ed25519 secret key is 32 bytes")
}

/// The node's libp2p peer ID (base58).
pub fn peer_id(node_key: &SigningKey) -> String {
    libp2p_keypair(node_key).public().to_peer_id().to_base58()
}
