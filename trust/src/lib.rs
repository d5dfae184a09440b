//! Sealpost's web-of-trust engine.
//!
//! Answers one question for the node: *is key K the key of address A for
//! viewer V?* — with a level (full, partial, none), the evidence (paths),
//! an explanation in words, and a reason when the answer is no.
//!
//! Path finding and max-flow are [sequoia-wot]'s (OpenPGP trust amounts
//! 0..=120, trust depth, regular expressions, certification revocation);
//! this crate adds Sealpost's roots and policy, the builders for the
//! signatures users and CAs make, a network that is verified once and
//! queried many times, a cache with exact invalidation, and explanations.
//!
//! [sequoia-wot]: https://crates.io/crates/sequoia-wot
//!
//! # What this crate must not do
//!
//! No I/O of any kind: no files, no network, no environment, no clock. The
//! reference time is always an argument, and the builders take the
//! signature time as an argument. It knows nothing of HTTP, SQL or the
//! node's storage: the node hands it certificates and tells it about
//! changes ([`TrustCache::update_cert`], [`TrustCache::remove_cert`],
//! [`TrustCache::set_reference_time`]).
//!
//! # Features
//!
//! `engine` (default): everything that answers, over sequoia-wot. Without it the crate is the
//! signature builders and [`TrustError`] alone, what a client needs: sequoia-wot's certificate
//! store links SQLite.
//!
//! # Sealpost policy
//!
//! * **Roots.** For a viewer V (a user) the trust roots are V's own
//!   certificate and V's organisation CA, both fully trusted (amount
//!   120). The CA is an OpenPGP certificate with user ID
//!   `OpenPGP CA <openpgp-ca@DOMAIN>` (the OpenPGP CA convention).
//! * **Enrolment.** The org CA certifies each enrolled user's user ID
//!   with a plain certification (depth 0): [`certify`].
//! * **User → CA.** Each user's key makes a trust signature on their CA
//!   (depth 1, amount 120) scoped by regex to the organisation's domain
//!   ([`tsig_on_ca`]). Sealpost does not need it (the CA is a root), but
//!   it gives sq/gpg, where the user's key is the only root, the same
//!   answers.
//! * **Bridges.** When organisations A and B federate, CA_A trust-signs
//!   CA_B (depth 1, amount 120) scoped by [`domain_regex`] to B's domain
//!   (`<[^>]+[@.]b\.example>$`, lower-cased, dots escaped), and vice versa
//!   ([`bridge`]). For a viewer at A: CA_A (root) → CA_B → carol@b.example
//!   is full; dave@c.example, bridged only by B → C, is none — CA_A's
//!   depth 1 does not let CA_B introduce another CA, and the regex does
//!   not match c.example anyway.
//! * **Personal web of trust.** V certifies a contact's user ID (plain,
//!   full amount: [`certify`]), may make a contact a trusted introducer
//!   (depth 1, amount 120, optionally scoped to a domain:
//!   [`make_introducer`]), and may retract either with a certification
//!   revocation (0x30) by V over that user ID, which supersedes V's
//!   earlier certifications of it ([`retract`]).
//! * **Revocation.**
//!   - A key revoked by its owner (hard, or soft and in effect at the
//!     reference time) is never authenticated: [`WhyNot::Revoked`]. The
//!     same for an expired key ([`WhyNot::Expired`]) and a key that is
//!     not valid under the policy ([`WhyNot::Invalid`]). sequoia-wot 0.15
//!     deliberately no longer checks the *target's* own revocation or
//!     expiry (it still refuses certifications *by* revoked keys), so this
//!     check is Sealpost's.
//!   - A leaver: the CA revokes its certification of the user
//!     ([`retract`] by the CA). Colleagues then see the user as none,
//!     unless they certified the key personally.
//!   - A CA revokes a bridge ([`revoke_bridge`]).
//!   - A user ID its owner revoked is not authenticated
//!     ([`WhyNot::UserIdRevoked`]).
//! * **Conflicts.** When two or more keys claiming the same address both
//!   have a non-zero trust amount, every one of them carries
//!   [`WhyNot::Conflict`], even a fully trusted one: the node must not
//!   pick silently.
//! * **Levels.** Full: amount ≥ 120; partial: 1..=119; none: 0. A verdict
//!   is usable without asking the user iff [`Verdict::is_authenticated`]
//!   (full and no `why_not`).
//! * **Addresses.** Compared as mail compares them: normalised (lower
//!   case, punycode domain), local part included; a key's user IDs with
//!   the address are all tried and the best one answers, in whatever case
//!   they are written (`<John.Smith@Partner.COM>`). A trust signature's
//!   scope matches a user ID as written or with its ASCII letters
//!   lowercased, never by Unicode case folding, which would let
//!   `x@\u{212A}ilo.test` (Kelvin sign) into the scope of `kilo.test`.
//!   sequoia-wot's own rule (as written) stays that of
//!   [`TrustNetwork::evidence`].
//! * **Time.** sequoia-wot ignores signatures created after the
//!   reference time, and certification revocations that are not strictly
//!   newer (to the second) than the certification they revoke. Build the
//!   network at or after the newest signature (tests create at T and
//!   query at T + 1 s). The node moves the reference time forward with
//!   [`TrustCache::set_reference_time`] (incremental: only certificates
//!   with a signature or key created or expiring in between are
//!   re-verified) and rebuilds from scratch now and then with
//!   [`TrustCache::rebuild`] (for the policy's own cut-off dates).
//!
//! # Cost
//!
//! Building verifies every signature once (sequoia-wot's store, in
//! parallel); answering verifies none: it runs sequoia-wot's path search
//! over the verified snapshot, and [`TrustCache`] keeps answers until a
//! change they read. See `benches/federation.rs` for figures.
//!
//! # Using it
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use sealpost_trust::*;
//! # use sequoia_openpgp::policy::StandardPolicy;
//! # fn demo(certs: Vec<sequoia_openpgp::Cert>, now: std::time::SystemTime,
//! #         alice: &sequoia_openpgp::Fingerprint, ca: &sequoia_openpgp::Fingerprint,
//! #         bob: &sequoia_openpgp::Fingerprint) -> Result<(), TrustError> {
//! let cache = TrustCache::new(certs, Arc::new(StandardPolicy::new()), now)?;
//! let verdict = cache.authenticate(alice, ca, bob, "bob@alpha.test")?;
//! if !verdict.is_authenticated() {
//!     for line in verdict.explain() {
//!         println!("{line}");
//!     }
//! }
//! # Ok(()) }
//! ```

#[cfg(feature = "engine")]
mod cache;
mod error;
#[cfg(feature = "engine")]
mod network;
mod sign;
#[cfg(feature = "engine")]
mod verdict;

#[cfg(feature = "engine")]
pub use cache::{CacheStats, DEFAULT_CAPACITY, TrustCache};
pub use error::TrustError;
#[cfg(feature = "engine")]
pub use network::{Evidence, TrustNetwork};
pub use sign::{
    FIRST_CONTACT_MUC, FIRST_CONTACT_NOTATION, bridge, certify, certify_compliance,
    certify_first_contact, domain_regex, first_contact, make_introducer, retract, revoke_bridge,
    tsig_on_ca,
};
#[cfg(feature = "engine")]
pub use verdict::{FULL, Hop, HopRole, Level, TrustPath, Verdict, WhyNot};

/// The versions of Sequoia this crate speaks (so callers use the same).
pub use sequoia_openpgp;
#[cfg(feature = "engine")]
pub use sequoia_wot;

/// The local part of an organisation CA's address (`openpgp-ca@DOMAIN`).
pub const CA_LOCAL_PART: &str = "openpgp-ca";

/// Normalises an email address the way user IDs are compared: lower case,
/// punycode domain. Errors if `address` is not `local@domain`.
pub fn normalize_address(address: &str) -> Result<String, TrustError> {
    let uid = sequoia_openpgp::packet::UserID::from(format!("<{address}>"));
    match uid.email_normalized() {
        Ok(Some(normalized)) if !address.contains(['<', '>']) => Ok(normalized),
        _ => Err(TrustError::InvalidAddress(address.to_string())),
    }
}

/// The address of an organisation CA for `domain`
/// (`openpgp-ca@DOMAIN`, lower-cased).
pub fn ca_address(domain: &str) -> String {
    format!("{CA_LOCAL_PART}@{}", domain.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalised_and_checked() {
        assert_eq!(
            normalize_address("Bob@Alpha.TEST").unwrap(),
            "bob@alpha.test"
        );
        assert!(normalize_address("bob").is_err());
        assert!(normalize_address("<bob@alpha.test>").is_err());
        assert!(normalize_address("").is_err());
        assert_eq!(ca_address("Beta.Test"), "openpgp-ca@beta.test");
    }
}
