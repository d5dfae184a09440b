//! The organisation CA's own operations: generating it, and certifying an enrolled user's
//! address. The only signing the node does with an OpenPGP key; it never holds a user's.

use std::time::SystemTime;

use sequoia_openpgp as openpgp;

use openpgp::Packet;
use openpgp::cert::prelude::*;
use openpgp::types::{KeyFlags, SignatureType};

use sealpost_proto::crypto::{CryptoError, cert_builder, primary_signer, user_id};

/// Generates an organisation CA key in the OpenPGP CA convention: user
/// ID `OpenPGP CA <openpgp-ca@DOMAIN>`, a certification-only Ed25519
/// primary key and nothing else, v4, SEIPDv1-only Features, no expiry.
/// The revocation certificate is discarded; a CA is retired by the
/// operator with its own tooling.
pub fn generate_ca(domain: &str, now: SystemTime) -> Result<Cert, CryptoError> {
    let address = format!("openpgp-ca@{}", domain.to_ascii_lowercase());
    let userid = user_id(Some("OpenPGP CA"), &address)?;
    let (cert, _rev) = cert_builder(now)?
        .set_primary_key_flags(KeyFlags::empty().set_certification())
        .add_userid(userid)
        .generate()
        .map_err(|e| CryptoError::other("CA key generation", e))?;
    Ok(cert)
}

/// Has the CA certify every user ID of `user` whose email address equals
/// `address` (compared lower-cased) with a generic certification
/// (0x10) made at `now` by the CA's primary key, which must have
/// unencrypted secret key material.  Returns `user` with the
/// certifications merged in; an error if no user ID matches.
pub fn ca_certify(
    ca: &Cert,
    user: &Cert,
    address: &str,
    now: SystemTime,
) -> Result<Cert, CryptoError> {
    let mut signer = primary_signer(ca)?;

    let wanted = address.to_lowercase();
    let mut packets: Vec<Packet> = Vec::new();
    for uid in user.userids() {
        let matches = uid
            .userid()
            .email()
            .ok()
            .flatten()
            .is_some_and(|e| e.to_lowercase() == wanted);
        if !matches {
            continue;
        }
        let sig = uid
            .userid()
            .certify(
                &mut signer,
                user,
                SignatureType::GenericCertification,
                None,
                now,
            )
            .map_err(|e| CryptoError::other("certification", e))?;
        // Insert the user ID together with its new certification so the
        // merge attaches the signature to that component; a bare
        // third-party signature could not be placed by the canonicaliser.
        packets.push(uid.userid().clone().into());
        packets.push(sig.into());
    }
    if packets.is_empty() {
        return Err(CryptoError::Malformed(format!(
            "no user ID with address {address}"
        )));
    }
    user.clone()
        .insert_packets(packets)
        .map(|(cert, _)| cert)
        .map_err(|e| CryptoError::other("merging certification", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openpgp::policy::StandardPolicy;

    const P: &StandardPolicy<'static> = &StandardPolicy::new();

    #[test]
    fn ca_certify_produces_a_verifying_certification() {
        let now = SystemTime::now();
        let ca = generate_ca("B.Example", now).unwrap();
        let ca_uid: Vec<_> = ca.userids().map(|u| u.userid().to_string()).collect();
        assert_eq!(
            ca_uid,
            vec!["OpenPGP CA <openpgp-ca@b.example>".to_string()]
        );
        // Certification-only primary, no subkeys.
        assert_eq!(ca.keys().count(), 1);
        let vc = ca.with_policy(P, now).unwrap();
        let flags = vc.primary_key().key_flags().unwrap();
        assert!(flags.for_certification());
        assert!(!flags.for_signing());

        let (bob, _) =
            sealpost_client::crypto::generate_user_key("Bob@B.example", Some("Bob"), now).unwrap();
        let certified = ca_certify(&ca, &bob, "bob@b.example", now).unwrap();

        let ca_primary = ca.primary_key().key();
        let user_primary = certified.primary_key().key();
        let mut verified = 0;
        for uid in certified.userids() {
            for sig in uid.certifications() {
                sig.verify_userid_binding(ca_primary, user_primary, uid.userid())
                    .expect("CA certification verifies");
                verified += 1;
            }
        }
        assert_eq!(verified, 1);
        // The result has no secret key material added and the same keys.
        assert_eq!(certified.fingerprint(), bob.fingerprint());

        // No matching user ID.
        assert!(matches!(
            ca_certify(&ca, &bob, "carol@b.example", now),
            Err(CryptoError::Malformed(_))
        ));
    }
}
