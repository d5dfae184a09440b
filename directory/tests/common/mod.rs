//! Test kit: an in-memory `DirectoryStore`, Sealpost-style keys, and a real server on loopback.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use async_trait::async_trait;
use sealpost_directory::{DirectoryConfig, DirectoryError, DirectoryStore, UpdateRight};
use sequoia_openpgp::cert::prelude::*;
use sequoia_openpgp::packet::UserID;
use sequoia_openpgp::types::{Features, KeyFlags, SignatureType};
use sequoia_openpgp::{Cert, Fingerprint, KeyHandle, KeyID, Packet, Profile};

pub const DOMAIN: &str = "example.org";
pub const ADMIN_TOKEN: &str = "admin-token";

/// What the store does when asked: answer, fail, or say it is overloaded.
pub const HEALTHY: u8 = 0;
pub const FAILING: u8 = 1;
pub const OVERLOADED: u8 = 2;

/// The node's part, in memory: certificates by fingerprint, owner sessions, known certifiers.
#[derive(Default)]
pub struct MemStore {
    pub certs: Mutex<HashMap<Fingerprint, Cert>>,
    /// Session token -> fingerprint of the key its user owns.
    pub sessions: Mutex<HashMap<String, Fingerprint>>,
    /// Fingerprints of known certifiers (enrolled users, the CA, peered CAs).
    pub known: Mutex<Vec<Fingerprint>>,
    pub mode: AtomicU8,
    pub stored: AtomicU8,
}

impl MemStore {
    pub fn new() -> Arc<Self> {
        Arc::new(MemStore::default())
    }

    /// Publishes `cert` (public parts) as enrolment would, optionally as a known certifier.
    pub fn publish(&self, cert: &Cert, known: bool) {
        let public = cert.clone().strip_secret_key_material();
        if known {
            self.known.lock().unwrap().push(public.fingerprint());
        }
        self.certs
            .lock()
            .unwrap()
            .insert(public.fingerprint(), public);
    }

    pub fn session(&self, token: &str, owner: &Cert) {
        self.sessions
            .lock()
            .unwrap()
            .insert(token.into(), owner.fingerprint());
    }

    pub fn get(&self, fpr: &Fingerprint) -> Option<Cert> {
        self.certs.lock().unwrap().get(fpr).cloned()
    }

    fn check(&self) -> Result<(), DirectoryError> {
        match self.mode.load(Ordering::SeqCst) {
            FAILING => Err(DirectoryError::Storage("disk on fire".into())),
            OVERLOADED => Err(DirectoryError::Overloaded),
            _ => Ok(()),
        }
    }

    fn all(&self) -> Vec<Cert> {
        let mut v: Vec<Cert> = self.certs.lock().unwrap().values().cloned().collect();
        v.sort_by_key(|c| c.fingerprint());
        v
    }
}

#[async_trait]
impl DirectoryStore for MemStore {
    async fn by_fingerprint(&self, fpr: &Fingerprint) -> Result<Option<Cert>, DirectoryError> {
        self.check()?;
        Ok(self.get(fpr))
    }

    async fn by_keyid(&self, keyid: &KeyID) -> Result<Vec<Cert>, DirectoryError> {
        self.check()?;
        Ok(self
            .all()
            .into_iter()
            .filter(|c| c.keys().any(|k| &k.key().keyid() == keyid))
            .collect())
    }

    async fn by_email(&self, email: &str) -> Result<Vec<Cert>, DirectoryError> {
        self.check()?;
        Ok(self
            .all()
            .into_iter()
            .filter(|c| {
                c.userids()
                    .any(|u| u.userid().email_normalized().ok().flatten().as_deref() == Some(email))
            })
            .collect())
    }

    async fn search(&self, text: &str, limit: usize) -> Result<Vec<Cert>, DirectoryError> {
        self.check()?;
        let text = text.to_lowercase();
        Ok(self
            .all()
            .into_iter()
            .filter(|c| {
                c.userids().any(|u| {
                    String::from_utf8_lossy(u.userid().value())
                        .to_lowercase()
                        .contains(&text)
                })
            })
            .take(limit)
            .collect())
    }

    async fn may_update(
        &self,
        bearer: Option<&str>,
        fpr: &Fingerprint,
    ) -> Result<UpdateRight, DirectoryError> {
        self.check()?;
        let allowed = match bearer {
            Some(ADMIN_TOKEN) => true,
            Some(t) => self.sessions.lock().unwrap().get(t) == Some(fpr),
            None => false,
        };
        if !allowed {
            return Ok(UpdateRight::Denied);
        }
        // This store vouches for the addresses the held certificate already has.
        let new_user_id_addresses = self
            .get(fpr)
            .map(|c| {
                c.userids()
                    .filter_map(|u| u.userid().email_normalized().ok().flatten())
                    .collect()
            })
            .unwrap_or_default();
        Ok(UpdateRight::Allowed {
            new_user_id_addresses,
        })
    }

    async fn is_known_certifier(&self, issuer: &KeyHandle) -> Result<bool, DirectoryError> {
        self.check()?;
        let known = self.known.lock().unwrap().clone();
        Ok(self.all().iter().any(|c| {
            known.contains(&c.fingerprint())
                && c.keys().any(|k| k.key().key_handle().aliases(issuer))
        }))
    }

    async fn store(&self, cert: Cert) -> Result<(), DirectoryError> {
        self.check()?;
        assert!(!cert.is_tsk(), "the directory must store public parts only");
        self.stored.fetch_add(1, Ordering::SeqCst);
        self.certs.lock().unwrap().insert(cert.fingerprint(), cert);
        Ok(())
    }

    async fn org_record(&self) -> Result<serde_json::Value, DirectoryError> {
        self.check()?;
        Ok(serde_json::json!({
            "domain": DOMAIN,
            "ca_fingerprint": "0123456789ABCDEF0123456789ABCDEF01234567",
            "policy": { "compliance_key": null },
        }))
    }
}

/// A Sealpost user key: v4, Ed25519 primary (certify + sign), Cv25519 subkey, features SEIPDv1
/// only (GnuPG 2.2 reads it; FOUNDATIONS pitfall 4). With secret key material.
pub fn user_key(uid: &str) -> Cert {
    CertBuilder::new()
        .set_profile(Profile::RFC4880)
        .unwrap()
        .set_features(Features::empty().set_seipdv1())
        .unwrap()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
        .add_userid(uid)
        .add_subkey(
            KeyFlags::empty()
                .set_transport_encryption()
                .set_storage_encryption(),
            None,
            None,
        )
        .generate()
        .unwrap()
        .0
}

/// An organisation CA in the OpenPGP CA convention (certification-only primary key).
pub fn ca_key(domain: &str) -> Cert {
    CertBuilder::new()
        .set_profile(Profile::RFC4880)
        .unwrap()
        .set_features(Features::empty().set_seipdv1())
        .unwrap()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_primary_key_flags(KeyFlags::empty().set_certification())
        .add_userid(format!("OpenPGP CA <openpgp-ca@{domain}>"))
        .generate()
        .unwrap()
        .0
}

/// `certifier` certifies `cert`'s first user ID; returns `cert`'s public parts with it.
pub fn certify(cert: &Cert, certifier: &Cert) -> Cert {
    let mut signer = certifier
        .primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .unwrap()
        .into_keypair()
        .unwrap();
    let uid: UserID = cert.userids().next().unwrap().userid().clone();
    let sig = uid
        .certify(
            &mut signer,
            cert,
            SignatureType::GenericCertification,
            None,
            None,
        )
        .unwrap();
    cert.clone()
        .strip_secret_key_material()
        .insert_packets(vec![Packet::from(uid), sig.into()])
        .unwrap()
        .0
}

/// `cert` (with its secret key, which it keeps) with a new user ID `uid`, self-signed.
pub fn with_user_id(cert: &Cert, uid: &str) -> Cert {
    let mut signer = cert
        .primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .unwrap()
        .into_keypair()
        .unwrap();
    let uid = UserID::from(uid);
    let sig = uid
        .bind(
            &mut signer,
            cert,
            sequoia_openpgp::packet::signature::SignatureBuilder::new(
                SignatureType::PositiveCertification,
            ),
        )
        .unwrap();
    cert.clone()
        .insert_packets(vec![Packet::from(uid), sig.into()])
        .unwrap()
        .0
}

/// The number of third-party signatures on `cert`'s user IDs issued by `issuer`.
pub fn certifications_by(cert: &Cert, issuer: &Cert) -> usize {
    cert.userids()
        .flat_map(|u| u.certifications())
        .filter(|s| {
            s.get_issuers()
                .iter()
                .any(|h| h.aliases(issuer.key_handle()))
        })
        .count()
}

pub fn config() -> DirectoryConfig {
    DirectoryConfig::new(DOMAIN)
}

/// Serves the directory alone on 127.0.0.1:0 inside the current tokio runtime.
pub async fn serve(store: Arc<MemStore>, config: DirectoryConfig) -> SocketAddr {
    let app: axum::Router = sealpost_directory::router(store, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Serves the directory on 127.0.0.1:0 from a thread with its own runtime, for tests that
/// block (running `gpg`). The server lives until the process ends.
pub fn serve_in_thread(store: Arc<MemStore>, config: DirectoryConfig) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let addr = serve(store, config).await;
            tx.send(addr).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

/// An `application/x-www-form-urlencoded` body with one `keytext` field.
pub fn keytext_form(armored: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("keytext", armored)
        .finish()
}

pub fn armored(cert: &Cert) -> String {
    use sequoia_openpgp::serialize::SerializeInto;
    String::from_utf8(cert.armored().to_vec().unwrap()).unwrap()
}

pub fn armored_tsk(cert: &Cert) -> String {
    use sequoia_openpgp::serialize::SerializeInto;
    String::from_utf8(cert.as_tsk().armored().to_vec().unwrap()).unwrap()
}
