//! Table tests of the update policy.

use super::*;
use sequoia_openpgp::cert::prelude::*;
use sequoia_openpgp::packet::signature::SignatureBuilder;
use sequoia_openpgp::types::{Features, KeyFlags, ReasonForRevocation};

/// A v4 Ed25519 (certify + sign) / Cv25519 key with SEIPDv1 features, as Sealpost makes them.
fn user(uid: &str) -> Cert {
    CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_features(Features::empty().set_seipdv1())
        .unwrap()
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

fn signer(cert: &Cert) -> sequoia_openpgp::crypto::KeyPair {
    cert.primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .unwrap()
        .into_keypair()
        .unwrap()
}

fn first_uid(cert: &Cert) -> UserID {
    cert.userids().next().unwrap().userid().clone()
}

/// `certifier` certifies `cert`'s first user ID; returns `cert` (public) with it.
fn certified(cert: &Cert, certifier: &Cert) -> Cert {
    let uid = first_uid(cert);
    let sig = uid
        .certify(
            &mut signer(certifier),
            cert,
            SignatureType::GenericCertification,
            None,
            None,
        )
        .unwrap();
    public(cert)
        .insert_packets(vec![Packet::from(uid), sig.into()])
        .unwrap()
        .0
}

/// A certification of `cert`'s first user ID made by `actual` but naming `claimed` as issuer.
fn forged(cert: &Cert, actual: &Cert, claimed: &Cert) -> Cert {
    let uid = first_uid(cert);
    let sig = SignatureBuilder::new(SignatureType::GenericCertification)
        .set_issuer(claimed.keyid())
        .unwrap()
        .set_issuer_fingerprint(claimed.fingerprint())
        .unwrap()
        .sign_userid_binding(&mut signer(actual), cert.primary_key().key(), &uid)
        .unwrap();
    public(cert)
        .insert_packets(vec![Packet::from(uid), sig.into()])
        .unwrap()
        .0
}

/// `cert` with a new self-signed user ID.
fn with_new_uid(cert: &Cert, uid: &str) -> Cert {
    let uid = UserID::from(uid);
    let sig = uid
        .bind(
            &mut signer(cert),
            cert,
            SignatureBuilder::new(SignatureType::PositiveCertification),
        )
        .unwrap();
    public(cert)
        .insert_packets(vec![Packet::from(uid), sig.into()])
        .unwrap()
        .0
}

/// `cert` with a bare user ID that carries only a certification by `certifier`.
fn with_unbound_certified_uid(cert: &Cert, uid: &str, certifier: &Cert) -> Cert {
    let uid = UserID::from(uid);
    let sig = uid
        .certify(
            &mut signer(certifier),
            cert,
            SignatureType::GenericCertification,
            None,
            None,
        )
        .unwrap();
    public(cert)
        .insert_packets(vec![Packet::from(uid), sig.into()])
        .unwrap()
        .0
}

/// `cert` with its first user ID revoked by itself.
fn with_uid_revoked(cert: &Cert) -> Cert {
    let uid = first_uid(cert);
    let rev = UserIDRevocationBuilder::new()
        .set_reason_for_revocation(ReasonForRevocation::UIDRetired, b"left")
        .unwrap()
        .build(&mut signer(cert), cert, &uid, None)
        .unwrap();
    public(cert)
        .insert_packets(vec![Packet::from(uid), rev.into()])
        .unwrap()
        .0
}

/// `certifier` revokes its certification of `cert`'s first user ID.
fn with_certification_revoked(cert: &Cert, certifier: &Cert) -> Cert {
    let uid = first_uid(cert);
    let rev = SignatureBuilder::new(SignatureType::CertificationRevocation)
        .set_reason_for_revocation(ReasonForRevocation::UIDRetired, b"left the org")
        .unwrap()
        .sign_userid_binding(&mut signer(certifier), cert.primary_key().key(), &uid)
        .unwrap();
    public(cert)
        .insert_packets(vec![Packet::from(uid), rev.into()])
        .unwrap()
        .0
}

fn public(cert: &Cert) -> Cert {
    cert.clone().strip_secret_key_material()
}

/// Third-party signatures on `cert`'s user IDs, by issuer.
fn certifications_by(cert: &Cert, issuer: &Cert) -> usize {
    cert.userids()
        .flat_map(|u| u.certifications().chain(u.other_revocations()))
        .filter(|s| {
            s.get_issuers()
                .iter()
                .any(|h| h.aliases(issuer.key_handle()))
        })
        .count()
}

/// The addresses the organisation vouches for on Alice's key (her enrolled address and, in
/// these tables, a second one she may add).
static ALICE_ADDRESSES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    vec![
        "alice@example.org".into(),
        "alice@work.example".into(),
        "a@example.org".into(),
    ]
});

fn alices() -> NewUserIds<'static> {
    NewUserIds::ForAddresses(&ALICE_ADDRESSES)
}

const LIMITS: MergeLimits = MergeLimits {
    max_cert_bytes: 64 * 1024,
    max_signatures_per_update: 64,
    max_signatures_per_user_id: 256,
};

/// The expected effect of a merge.
#[derive(Debug, PartialEq, Eq)]
struct Effect {
    new_signatures: usize,
    dropped_unknown_issuer: usize,
    dropped_invalid: usize,
    secret_material_stripped: bool,
    userids: usize,
    by_ca: usize,
    by_stranger: usize,
}

fn effect(o: &MergeOutcome, ca: &Cert, stranger: &Cert) -> Effect {
    Effect {
        new_signatures: o.new_signatures,
        dropped_unknown_issuer: o.dropped_unknown_issuer,
        dropped_invalid: o.dropped_invalid,
        secret_material_stripped: o.secret_material_stripped,
        userids: o.cert.userids().count(),
        by_ca: certifications_by(&o.cert, ca),
        by_stranger: certifications_by(&o.cert, stranger),
    }
}

#[test]
fn merge_policy_table() {
    let alice_tsk = user("Alice <alice@example.org>");
    let alice = public(&alice_tsk);
    let bob = public(&user("Bob <bob@example.org>"));
    let ca = user("OpenPGP CA <openpgp-ca@example.org>");
    let stranger = user("Mallory <mallory@evil.example>");
    let is_ca = |h: &KeyHandle| h.aliases(ca.key_handle());

    let e = |new, unknown, invalid, stripped, userids, by_ca, by_stranger| {
        Ok(Effect {
            new_signatures: new,
            dropped_unknown_issuer: unknown,
            dropped_invalid: invalid,
            secret_material_stripped: stripped,
            userids,
            by_ca,
            by_stranger,
        })
    };

    let alice_ca = certified(&alice, &ca);
    let tiny = MergeLimits {
        max_cert_bytes: 100,
        ..LIMITS
    };
    let one_sig = MergeLimits {
        max_signatures_per_update: 1,
        ..LIMITS
    };
    let one_per_uid = MergeLimits {
        max_signatures_per_user_id: 1,
        ..LIMITS
    };
    // An update that is small by itself but makes the merged certificate too large.
    let alice_new_uid = with_new_uid(&alice_tsk, "Alice <a@example.org>");
    let merged_bytes = packet_stats(
        &alice_ca
            .clone()
            .merge_public(alice_new_uid.clone())
            .unwrap(),
    )
    .0;
    let merged_too_big = MergeLimits {
        max_cert_bytes: merged_bytes - 1,
        ..LIMITS
    };
    assert!(packet_stats(&alice_new_uid).0 < merged_bytes - 1);

    #[allow(clippy::type_complexity)]
    let cases: Vec<(
        &str,
        Option<&Cert>,
        Cert,
        MergeLimits,
        Result<Effect, MergeError>,
    )> = vec![
        (
            "the same certificate again changes nothing",
            Some(&alice),
            alice.clone(),
            LIMITS,
            e(0, 0, 0, false, 1, 0, 0),
        ),
        (
            "a new self-signed user ID is accepted",
            Some(&alice),
            with_new_uid(&alice_tsk, "Alice Work <alice@work.example>"),
            LIMITS,
            e(1, 0, 0, false, 2, 0, 0),
        ),
        (
            "a new user ID for an address not vouched for is refused",
            Some(&alice),
            with_new_uid(&alice_tsk, "Bob <bob@example.org>"),
            LIMITS,
            Err(MergeError::UserIdNotAllowed("Bob <bob@example.org>".into())),
        ),
        (
            "a new user ID for a vouched address in other case is accepted",
            Some(&alice),
            with_new_uid(&alice_tsk, "Alice <ALICE@Example.ORG>"),
            LIMITS,
            e(1, 0, 0, false, 2, 0, 0),
        ),
        (
            "a new user ID without an address is refused",
            Some(&alice),
            with_new_uid(&alice_tsk, "Alice Example"),
            LIMITS,
            Err(MergeError::UserIdNotAllowed("Alice Example".into())),
        ),
        (
            "a self-revocation of a user ID is accepted",
            Some(&alice),
            with_uid_revoked(&alice_tsk),
            LIMITS,
            e(1, 0, 0, false, 1, 0, 0),
        ),
        (
            "a certification by an unknown party is dropped and counted",
            Some(&alice),
            certified(&alice, &stranger),
            LIMITS,
            e(0, 1, 0, false, 1, 0, 0),
        ),
        (
            "a certification by a known party (the CA) is accepted",
            Some(&alice),
            alice_ca.clone(),
            LIMITS,
            e(1, 0, 0, false, 1, 1, 0),
        ),
        (
            "a known party's certification revocation is accepted",
            Some(&alice_ca),
            with_certification_revoked(&alice, &ca),
            LIMITS,
            e(1, 0, 0, false, 1, 2, 0),
        ),
        (
            "an unknown party's certification revocation is dropped",
            Some(&alice),
            with_certification_revoked(&alice, &stranger),
            LIMITS,
            e(0, 1, 0, false, 1, 0, 0),
        ),
        (
            "a user ID without self-signature is dropped with its certifications",
            Some(&alice),
            with_unbound_certified_uid(&alice, "Alice <alice@evil.example>", &ca),
            LIMITS,
            e(0, 0, 1, false, 1, 0, 0),
        ),
        (
            "a 'self-signature' made by another key is dropped",
            Some(&alice),
            forged(&alice, &stranger, &alice),
            LIMITS,
            e(0, 0, 1, false, 1, 0, 0),
        ),
        (
            "secret key material is stripped, the rest merged",
            Some(&alice),
            alice_tsk.clone(),
            LIMITS,
            e(0, 0, 0, true, 1, 0, 0),
        ),
        (
            "a different key is refused",
            Some(&alice),
            bob.clone(),
            LIMITS,
            Err(MergeError::DifferentKey {
                expected: alice.fingerprint(),
                got: bob.fingerprint(),
            }),
        ),
        (
            "a key the directory does not have is refused",
            None,
            alice.clone(),
            LIMITS,
            Err(MergeError::NotInDirectory(alice.fingerprint())),
        ),
        (
            "an oversized update is refused",
            Some(&alice),
            alice_ca.clone(),
            tiny,
            Err(MergeError::TooLarge {
                bytes: packet_stats(&alice_ca).0,
                limit: 100,
            }),
        ),
        (
            "an update whose merge would exceed the size cap is refused",
            Some(&alice_ca),
            alice_new_uid.clone(),
            merged_too_big,
            Err(MergeError::TooLarge {
                bytes: merged_bytes,
                limit: merged_bytes - 1,
            }),
        ),
        (
            "too many signatures in one update are refused",
            Some(&alice),
            alice_ca.clone(),
            one_sig,
            Err(MergeError::TooManySignatures {
                count: packet_stats(&alice_ca).1,
                limit: 1,
            }),
        ),
        (
            "too many signatures on one user ID are refused",
            Some(&alice),
            alice_ca.clone(),
            one_per_uid,
            Err(MergeError::TooManySignaturesOnUserId { count: 2, limit: 1 }),
        ),
    ];

    for (name, existing, update, limits, want) in cases {
        let got = merge_update(existing, update, is_ca, alices(), &limits).map(|o| {
            assert!(
                !o.cert.is_tsk(),
                "{name}: secret key material in the result"
            );
            effect(&o, &ca, &stranger)
        });
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn verified_merge_checks_known_issuers_signatures() {
    let alice = public(&user("Alice <alice@example.org>"));
    let ca = user("OpenPGP CA <openpgp-ca@example.org>");
    let ca_public = public(&ca);
    let stranger = user("Mallory <mallory@evil.example>");
    let certifiers = [ca_public.clone()];

    // Genuine: kept.
    let o = merge_update_verified(
        Some(&alice),
        certified(&alice, &ca),
        &certifiers,
        alices(),
        &LIMITS,
    )
    .unwrap();
    assert_eq!(
        (
            certifications_by(&o.cert, &ca),
            o.dropped_invalid,
            o.dropped_unknown_issuer
        ),
        (1, 0, 0)
    );

    // Naming the CA but made by someone else: forged, dropped as invalid.
    let o = merge_update_verified(
        Some(&alice),
        forged(&alice, &stranger, &ca),
        &certifiers,
        alices(),
        &LIMITS,
    )
    .unwrap();
    assert_eq!(
        (
            certifications_by(&o.cert, &ca),
            o.dropped_invalid,
            o.dropped_unknown_issuer
        ),
        (0, 1, 0)
    );

    // Not a certifier at all: dropped as unknown.
    let o = merge_update_verified(
        Some(&alice),
        certified(&alice, &stranger),
        &certifiers,
        alices(),
        &LIMITS,
    )
    .unwrap();
    assert_eq!(
        (
            certifications_by(&o.cert, &stranger),
            o.dropped_invalid,
            o.dropped_unknown_issuer
        ),
        (0, 0, 1)
    );

    // A genuine certification revocation by the CA is kept too.
    let alice_ca = certified(&alice, &ca);
    let o = merge_update_verified(
        Some(&alice_ca),
        with_certification_revoked(&alice, &ca),
        &certifiers,
        alices(),
        &LIMITS,
    )
    .unwrap();
    assert_eq!((certifications_by(&o.cert, &ca), o.new_signatures), (2, 1));
}

#[test]
fn issuers_of_third_party_signatures() {
    let alice = public(&user("Alice <alice@example.org>"));
    let ca = user("OpenPGP CA <openpgp-ca@example.org>");
    let stranger = user("Mallory <mallory@evil.example>");
    let both = certified(&certified(&alice, &ca), &stranger);
    let issuers = third_party_issuers(&both, 10);
    assert_eq!(issuers.len(), 2, "{issuers:?}");
    assert!(issuers.iter().any(|h| h.aliases(ca.key_handle())));
    assert!(issuers.iter().any(|h| h.aliases(stranger.key_handle())));
    // Fingerprints are preferred over key IDs.
    assert!(
        issuers
            .iter()
            .all(|h| matches!(h, KeyHandle::Fingerprint(_)))
    );
    // Bounded.
    assert_eq!(third_party_issuers(&both, 1).len(), 1);
    // Self-signatures are not third-party.
    assert!(third_party_issuers(&alice, 10).is_empty());
}

#[test]
fn limits_are_checked_without_verifying() {
    let alice = public(&user("Alice <alice@example.org>"));
    let (bytes, sigs) = packet_stats(&alice);
    assert!(bytes > 100 && sigs >= 2, "{bytes} {sigs}");
    assert!(check_update_limits(&alice, &LIMITS).is_ok());
    assert_eq!(
        check_update_limits(
            &alice,
            &MergeLimits {
                max_cert_bytes: bytes - 1,
                ..LIMITS
            }
        ),
        Err(MergeError::TooLarge {
            bytes,
            limit: bytes - 1
        })
    );
}

#[test]
fn error_statuses() {
    let f = user("x").fingerprint();
    for (e, s) in [
        (MergeError::NotInDirectory(f.clone()), 404),
        (
            MergeError::DifferentKey {
                expected: f.clone(),
                got: f,
            },
            422,
        ),
        (MergeError::TooLarge { bytes: 2, limit: 1 }, 413),
        (MergeError::TooManySignatures { count: 2, limit: 1 }, 422),
        (
            MergeError::TooManySignaturesOnUserId { count: 2, limit: 1 },
            422,
        ),
        (MergeError::Malformed("x".into()), 400),
    ] {
        assert_eq!(e.status().as_u16(), s, "{e}");
    }
}
