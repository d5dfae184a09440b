//! Shared test helpers: Sealpost-shaped keys and a small world of
//! organisations whose certificates evolve over explicit times.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sealpost_trust::sequoia_openpgp as openpgp;
use sealpost_trust::{TrustNetwork, ca_address};

use openpgp::cert::prelude::*;
use openpgp::packet::UserID;
use openpgp::policy::{Policy, StandardPolicy};
use openpgp::types::{Features, KeyFlags, ReasonForRevocation};
use openpgp::{Fingerprint, Profile};

/// 2026-01-01T00:00:00Z: when the world's keys are created.
pub const EPOCH: u64 = 1_767_225_600;

pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

pub fn policy() -> Arc<dyn Policy> {
    Arc::new(StandardPolicy::new())
}

/// A key like the node generates: v4, Ed25519 certify+sign primary,
/// Cv25519 encryption subkey, SEIPDv1 only, no expiry.
pub fn user_key(address: &str, created: SystemTime) -> Cert {
    key(UserID::from(format!("<{address}>")), created, true, None)
}

/// Like [`user_key`], expiring `validity` after creation.
pub fn expiring_user_key(address: &str, created: SystemTime, validity: Duration) -> Cert {
    key(
        UserID::from(format!("<{address}>")),
        created,
        true,
        Some(validity),
    )
}

/// An organisation CA in the OpenPGP CA convention.
pub fn ca_key(domain: &str, created: SystemTime) -> Cert {
    key(
        UserID::from(format!("OpenPGP CA <{}>", ca_address(domain))),
        created,
        false,
        None,
    )
}

fn key(userid: UserID, created: SystemTime, user: bool, validity: Option<Duration>) -> Cert {
    let flags = if user {
        KeyFlags::empty().set_certification().set_signing()
    } else {
        KeyFlags::empty().set_certification()
    };
    let mut b = CertBuilder::new()
        .set_profile(Profile::RFC4880)
        .expect("profile")
        .set_features(Features::empty().set_seipdv1())
        .expect("features")
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_creation_time(created)
        .set_validity_period(validity)
        .set_primary_key_flags(flags)
        .add_userid(userid);
    if user {
        b = b.add_subkey(
            KeyFlags::empty()
                .set_transport_encryption()
                .set_storage_encryption(),
            None,
            None,
        );
    }
    b.generate().expect("key generation").0
}

/// The owner revokes their own key.
pub fn revoke_key(cert: &Cert, code: ReasonForRevocation, msg: &str, t: SystemTime) -> Cert {
    let mut signer = cert
        .primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .expect("secret")
        .into_keypair()
        .expect("keypair");
    let sig = CertRevocationBuilder::new()
        .set_reason_for_revocation(code, msg.as_bytes())
        .expect("reason")
        .set_signature_creation_time(t)
        .expect("time")
        .build(&mut signer, cert, None)
        .expect("revocation");
    cert.clone().insert_packets(sig).expect("merge").0
}

/// Certificates (with their secret keys) that evolve over explicit time.
pub struct World {
    pub certs: BTreeMap<Fingerprint, Cert>,
    /// Seconds since the Unix epoch of the last signature made.
    pub now: u64,
    names: BTreeMap<String, Fingerprint>,
}

impl World {
    pub fn new() -> World {
        World {
            certs: BTreeMap::new(),
            now: EPOCH,
            names: BTreeMap::new(),
        }
    }

    /// Generates a user key named by its address.
    pub fn user(&mut self, address: &str) -> Fingerprint {
        let cert = user_key(address, at(EPOCH));
        self.names.insert(address.to_string(), cert.fingerprint());
        self.put(cert)
    }

    /// Generates a user key that expires `validity` after creation.
    pub fn expiring_user(&mut self, address: &str, validity: Duration) -> Fingerprint {
        let cert = expiring_user_key(address, at(EPOCH), validity);
        self.names.insert(address.to_string(), cert.fingerprint());
        self.put(cert)
    }

    /// Generates a CA key, named `ca@DOMAIN` in the world.
    pub fn ca(&mut self, domain: &str) -> Fingerprint {
        let cert = ca_key(domain, at(EPOCH));
        self.names
            .insert(format!("ca@{domain}"), cert.fingerprint());
        self.put(cert)
    }

    /// The fingerprint of a named key.
    pub fn fpr(&self, name: &str) -> Fingerprint {
        self.names
            .get(name)
            .unwrap_or_else(|| panic!("no key {name}"))
            .clone()
    }

    pub fn cert(&self, name: &str) -> &Cert {
        &self.certs[&self.fpr(name)]
    }

    /// Stores (replaces) a certificate; returns its fingerprint.
    pub fn put(&mut self, cert: Cert) -> Fingerprint {
        let fpr = cert.fingerprint();
        self.certs.insert(fpr.clone(), cert);
        fpr
    }

    /// The time for the next signature: strictly later than the previous
    /// one (sequoia-wot orders signatures to the second).
    pub fn tick(&mut self) -> SystemTime {
        self.now += 10;
        at(self.now)
    }

    /// A reference time after every signature made so far.
    pub fn query_time(&self) -> SystemTime {
        at(self.now + 1)
    }

    /// Enrols `address` with the CA of its domain: the CA certifies the
    /// user ID and the user trust-signs the CA.
    pub fn enrol(&mut self, address: &str) {
        let domain = address.split_once('@').expect("address").1.to_string();
        let ca = format!("ca@{domain}");
        let t = self.tick();
        let user = sealpost_trust::certify(self.cert(&ca), self.cert(address), address, t)
            .expect("CA certifies");
        self.put(user);
        let t = self.tick();
        let ca_cert = sealpost_trust::tsig_on_ca(self.cert(address), self.cert(&ca), &domain, t)
            .expect("user tsigns CA");
        self.put(ca_cert);
    }

    /// CA of `from` bridges to CA of `to`, one direction.
    pub fn bridge(&mut self, from: &str, to: &str) {
        let t = self.tick();
        let other = sealpost_trust::bridge(
            self.cert(&format!("ca@{from}")),
            self.cert(&format!("ca@{to}")),
            to,
            t,
        )
        .expect("bridge");
        self.put(other);
    }

    /// `signer` makes the key named `target` a trusted introducer for `target`'s address,
    /// scoped to `scope` if given.
    pub fn introducer(&mut self, signer: &str, target: &str, scope: Option<&str>) {
        let t = self.tick();
        let cert =
            sealpost_trust::make_introducer(self.cert(signer), self.cert(target), target, scope, t)
                .expect("introducer");
        self.put(cert);
    }

    /// Bridges both ways.
    pub fn federate(&mut self, a: &str, b: &str) {
        self.bridge(a, b);
        self.bridge(b, a);
    }

    /// A network over all certificates, queried just after the last
    /// signature.
    pub fn network(&self) -> TrustNetwork {
        TrustNetwork::new(
            self.certs.values().cloned().collect(),
            policy(),
            self.query_time(),
        )
        .expect("network builds")
    }
}
