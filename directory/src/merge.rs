//! The update policy of `POST /pks/add`: which parts of an uploaded certificate the directory
//! merges into the copy it has.
//!
//! Pure: certificates in, certificate out; the router asks the store who is known and who may
//! update, then calls [`merge_update_verified`]. The rules:
//!
//! - an update must be the same key as a certificate the directory already has (enrolment
//!   publishes new keys, not `/pks/add`);
//! - secret key material is stripped, never stored;
//! - self-signatures and self-revocations are kept if they verify (Sequoia checks them);
//! - a user ID the directory does not hold yet is accepted only for an address the caller
//!   allows ([`NewUserIds`]): the node allows the addresses its CA vouched for on that key, so
//!   nobody can put a colleague's address on their own key and have the organisation's WKD
//!   serve it;
//! - third-party certifications and certification revocations are kept only from known
//!   issuers (and, in [`merge_update_verified`], only if they verify against the issuer's key);
//!   the others are dropped and counted;
//! - floods are refused: too many signatures in the update or on one user ID, or a certificate
//!   larger than the cap.
//!
//! This module does not decide trust: a kept certification only means "a known party signed
//! this"; what it is worth is the `trust/` crate's business.

use axum::http::StatusCode;
use sequoia_openpgp::packet::{Key, Signature, UserAttribute, UserID, key};
use sequoia_openpgp::serialize::MarshalInto;
use sequoia_openpgp::types::SignatureType;
use sequoia_openpgp::{Cert, Fingerprint, KeyHandle, Packet};

/// Bounds on what an update may add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeLimits {
    /// Largest certificate (binary, public parts), for the update and for the merged result.
    pub max_cert_bytes: usize,
    /// Most signature packets one update may carry.
    pub max_signatures_per_update: usize,
    /// Most signatures one user ID may carry after the merge.
    pub max_signatures_per_user_id: usize,
}

/// Which user IDs an update may add to the certificate the directory holds.
///
/// A user ID binds an address to a key, and the organisation's directory answers for its
/// domain's addresses: an update may add a user ID only for an address the organisation
/// already vouches for on this key. A new user ID without an address, or with an address that
/// does not parse, is refused too (another parser might find an address in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewUserIds<'a> {
    /// No new user ID (certifications, revocations and subkeys only).
    None,
    /// New user IDs whose address (normalised) is one of these, lowercased.
    ForAddresses(&'a [String]),
}

impl NewUserIds<'_> {
    fn allows(&self, uid: &UserID) -> bool {
        match self {
            NewUserIds::None => false,
            NewUserIds::ForAddresses(allowed) => uid
                .email_normalized()
                .ok()
                .flatten()
                .is_some_and(|a| allowed.iter().any(|x| x.eq_ignore_ascii_case(&a))),
        }
    }
}

/// What a merge did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MergeOutcome {
    /// The merged certificate, public parts only.
    pub cert: Cert,
    /// Signatures in `cert` that the existing certificate did not have.
    pub new_signatures: usize,
    /// Third-party signatures dropped because their issuer is not known to the directory.
    pub dropped_unknown_issuer: usize,
    /// Signatures dropped as invalid: self-signatures that do not verify, forged or corrupt
    /// third-party signatures, signatures on components without a valid self-signature,
    /// third-party signatures on subkeys, non-exportable signatures.
    pub dropped_invalid: usize,
    /// The update carried secret key material, which was removed.
    pub secret_material_stripped: bool,
}

/// Why an update is refused; [`MergeError::status`] gives the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    #[error(
        "key {0} is not in this directory; new keys are published by enrolment, not by /pks/add"
    )]
    NotInDirectory(Fingerprint),
    #[error("the update is key {got}, not key {expected}")]
    DifferentKey {
        expected: Fingerprint,
        got: Fingerprint,
    },
    #[error("certificate too large: {bytes} bytes (at most {limit})")]
    TooLarge { bytes: usize, limit: usize },
    #[error("too many signatures in one update: {count} (at most {limit})")]
    TooManySignatures { count: usize, limit: usize },
    #[error("too many signatures on one user ID: {count} (at most {limit})")]
    TooManySignaturesOnUserId { count: usize, limit: usize },
    #[error(
        "the update adds the user ID {0:?}, but a user ID may be added only for an address \
         the organisation enrolled this key with"
    )]
    UserIdNotAllowed(String),
    #[error("malformed certificate: {0}")]
    Malformed(String),
}

impl MergeError {
    /// 404 for an unknown key, 413 for an oversized certificate, 422 for the other refusals
    /// of a well-formed update, 400 for a malformed one.
    pub fn status(&self) -> StatusCode {
        match self {
            MergeError::NotInDirectory(_) => StatusCode::NOT_FOUND,
            MergeError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            MergeError::DifferentKey { .. }
            | MergeError::TooManySignatures { .. }
            | MergeError::TooManySignaturesOnUserId { .. }
            | MergeError::UserIdNotAllowed(_) => StatusCode::UNPROCESSABLE_ENTITY,
            MergeError::Malformed(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// What a third-party signature is made over, to verify it.
#[derive(Clone, Copy)]
enum Target<'a> {
    PrimaryKey,
    UserId(&'a UserID),
    UserAttribute(&'a UserAttribute),
}

/// The decision on one third-party signature.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Keep,
    UnknownIssuer,
    Invalid,
}

/// Serialized size and number of signature packets of `cert`, without verifying anything
/// (so that a flood is refused before it costs a verification per signature).
fn packet_stats(cert: &Cert) -> (usize, usize) {
    cert.clone()
        .into_packets()
        .fold((0, 0), |(bytes, sigs), p| {
            let is_sig = matches!(p, Packet::Signature(_));
            (bytes + p.serialized_len(), sigs + usize::from(is_sig))
        })
}

/// Checks an update's size and signature count against the limits, cheaply (no signature is
/// verified). [`merge_update`] does this too; the router calls it before asking the store
/// about the update's issuers.
pub fn check_update_limits(update: &Cert, limits: &MergeLimits) -> Result<(), MergeError> {
    let (bytes, sigs) = packet_stats(update);
    if bytes > limits.max_cert_bytes {
        return Err(MergeError::TooLarge {
            bytes,
            limit: limits.max_cert_bytes,
        });
    }
    if sigs > limits.max_signatures_per_update {
        return Err(MergeError::TooManySignatures {
            count: sigs,
            limit: limits.max_signatures_per_update,
        });
    }
    Ok(())
}

/// The distinct issuers of the update's third-party signatures on its primary key, user IDs
/// and user attributes (a fingerprint where the signature names one, else a key ID), at most
/// `limit` of them. These are the parties to ask [`crate::DirectoryStore::is_known_certifier`]
/// about.
pub fn third_party_issuers(update: &Cert, limit: usize) -> Vec<KeyHandle> {
    let pk = update.primary_key();
    let sigs = pk
        .certifications()
        .chain(pk.other_revocations())
        .chain(
            update
                .userids()
                .flat_map(|u| u.certifications().chain(u.other_revocations())),
        )
        .chain(
            update
                .user_attributes()
                .flat_map(|u| u.certifications().chain(u.other_revocations())),
        );
    let mut out: Vec<KeyHandle> = Vec::new();
    for sig in sigs {
        let issuers = sig.get_issuers();
        let best = issuers
            .iter()
            .find(|h| matches!(h, KeyHandle::Fingerprint(_)))
            .or_else(|| issuers.first());
        let Some(best) = best else { continue };
        if update.keys().any(|k| k.key().key_handle().aliases(best)) {
            continue;
        }
        if !out.iter().any(|h| h.aliases(best)) {
            if out.len() >= limit {
                break;
            }
            out.push(best.clone());
        }
    }
    out
}

/// Merges `update` into `existing` under the directory's policy, with `is_known` saying which
/// issuers' third-party signatures are welcome. Third-party signatures are not verified here
/// (their issuers' keys are not at hand); use [`merge_update_verified`] when they are.
pub fn merge_update(
    existing: Option<&Cert>,
    update: Cert,
    is_known: impl Fn(&KeyHandle) -> bool,
    new_user_ids: NewUserIds<'_>,
    limits: &MergeLimits,
) -> Result<MergeOutcome, MergeError> {
    merge_with(
        existing,
        update,
        new_user_ids,
        |sig, _, _| {
            if sig.get_issuers().iter().any(&is_known) {
                Verdict::Keep
            } else {
                Verdict::UnknownIssuer
            }
        },
        limits,
    )
}

/// Like [`merge_update`], with the known issuers given as certificates: a third-party
/// signature is kept only if one of `certifiers`' keys is named as its issuer and verifies it
/// (a signature that names a known issuer but does not verify is forged or corrupt).
pub fn merge_update_verified(
    existing: Option<&Cert>,
    update: Cert,
    certifiers: &[Cert],
    new_user_ids: NewUserIds<'_>,
    limits: &MergeLimits,
) -> Result<MergeOutcome, MergeError> {
    merge_with(
        existing,
        update,
        new_user_ids,
        |sig, pk, target| {
            let issuers = sig.get_issuers();
            let mut named = false;
            for ka in certifiers.iter().flat_map(|c| c.keys()) {
                if !issuers.iter().any(|h| h.aliases(ka.key().key_handle())) {
                    continue;
                }
                named = true;
                if verify_third_party(sig, ka.key(), pk, target) {
                    return Verdict::Keep;
                }
            }
            if named {
                Verdict::Invalid
            } else {
                Verdict::UnknownIssuer
            }
        },
        limits,
    )
}

/// Verifies a third-party signature made by `signer` over `target` of the key `pk`.
fn verify_third_party<R: key::KeyRole>(
    sig: &Signature,
    signer: &Key<key::PublicParts, R>,
    pk: &Key<key::PublicParts, key::PrimaryRole>,
    target: Target<'_>,
) -> bool {
    use SignatureType::*;
    let result = match (target, sig.typ()) {
        (
            Target::UserId(uid),
            GenericCertification
            | PersonaCertification
            | CasualCertification
            | PositiveCertification,
        ) => sig.verify_userid_binding(signer, pk, uid),
        (Target::UserId(uid), CertificationRevocation) => {
            sig.verify_userid_revocation(signer, pk, uid)
        }
        (
            Target::UserAttribute(ua),
            GenericCertification
            | PersonaCertification
            | CasualCertification
            | PositiveCertification,
        ) => sig.verify_user_attribute_binding(signer, pk, ua),
        (Target::UserAttribute(ua), CertificationRevocation) => {
            sig.verify_user_attribute_revocation(signer, pk, ua)
        }
        (Target::PrimaryKey, DirectKey) => sig.verify_direct_key(signer, pk),
        (Target::PrimaryKey, KeyRevocation) => sig.verify_primary_key_revocation(signer, pk),
        _ => return false,
    };
    result.is_ok()
}

/// Sorts a component's signatures into kept (pushed as packets) and dropped (counted).
struct Filter<'f, F> {
    decide: &'f F,
    pk: Key<key::PublicParts, key::PrimaryRole>,
    dropped_unknown_issuer: usize,
    dropped_invalid: usize,
}

impl<F> Filter<'_, F>
where
    F: Fn(&Signature, &Key<key::PublicParts, key::PrimaryRole>, Target<'_>) -> Verdict,
{
    /// Self-signatures as Sequoia hands them out have been verified; bad ones are in
    /// `bad_signatures` and never reach here.
    fn own<'s>(&mut self, sigs: impl Iterator<Item = &'s Signature>, out: &mut Vec<Packet>) {
        for sig in sigs {
            if sig.exportable().is_ok() {
                out.push(sig.clone().into());
            } else {
                self.dropped_invalid += 1;
            }
        }
    }

    fn third_party<'s>(
        &mut self,
        sigs: impl Iterator<Item = &'s Signature>,
        target: Target<'_>,
        out: &mut Vec<Packet>,
    ) {
        for sig in sigs {
            let verdict = if sig.exportable().is_err() {
                Verdict::Invalid
            } else {
                (self.decide)(sig, &self.pk, target)
            };
            match verdict {
                Verdict::Keep => out.push(sig.clone().into()),
                Verdict::UnknownIssuer => self.dropped_unknown_issuer += 1,
                Verdict::Invalid => self.dropped_invalid += 1,
            }
        }
    }
}

fn merge_with<F>(
    existing: Option<&Cert>,
    update: Cert,
    new_user_ids: NewUserIds<'_>,
    decide: F,
    limits: &MergeLimits,
) -> Result<MergeOutcome, MergeError>
where
    F: Fn(&Signature, &Key<key::PublicParts, key::PrimaryRole>, Target<'_>) -> Verdict,
{
    let existing = existing.ok_or_else(|| MergeError::NotInDirectory(update.fingerprint()))?;
    if existing.fingerprint() != update.fingerprint() {
        return Err(MergeError::DifferentKey {
            expected: existing.fingerprint(),
            got: update.fingerprint(),
        });
    }
    let secret_material_stripped = update.is_tsk();
    let update = update.strip_secret_key_material();
    check_update_limits(&update, limits)?;

    // Rebuild the update from the parts the policy keeps. Components that are new to the
    // directory need a valid self-signature: anybody can append a user ID packet.
    let pk = update.primary_key().key().clone().take_secret().0;
    let mut filter = Filter {
        decide: &decide,
        pk: pk.clone(),
        dropped_unknown_issuer: 0,
        dropped_invalid: update.bad_signatures().count(),
    };
    let mut packets: Vec<Packet> = vec![pk.into()];
    let primary = update.primary_key();
    filter.own(
        primary.self_revocations().chain(primary.self_signatures()),
        &mut packets,
    );
    filter.third_party(
        primary.certifications().chain(primary.other_revocations()),
        Target::PrimaryKey,
        &mut packets,
    );

    for ua in update.userids() {
        let bound = ua.self_signatures().next().is_some() || ua.self_revocations().next().is_some();
        let held = existing.userids().any(|e| e.userid() == ua.userid());
        if !bound && !held {
            filter.dropped_invalid += ua.signatures().count();
            continue;
        }
        if !held && !new_user_ids.allows(ua.userid()) {
            return Err(MergeError::UserIdNotAllowed(
                String::from_utf8_lossy(ua.userid().value()).into_owned(),
            ));
        }
        packets.push(ua.userid().clone().into());
        filter.own(
            ua.self_revocations()
                .chain(ua.self_signatures())
                .chain(ua.approvals()),
            &mut packets,
        );
        filter.third_party(
            ua.certifications().chain(ua.other_revocations()),
            Target::UserId(ua.userid()),
            &mut packets,
        );
    }

    for ua in update.user_attributes() {
        let bound = ua.self_signatures().next().is_some() || ua.self_revocations().next().is_some();
        if !bound
            && !existing
                .user_attributes()
                .any(|e| e.user_attribute() == ua.user_attribute())
        {
            filter.dropped_invalid += ua.signatures().count();
            continue;
        }
        packets.push(ua.user_attribute().clone().into());
        filter.own(
            ua.self_revocations()
                .chain(ua.self_signatures())
                .chain(ua.approvals()),
            &mut packets,
        );
        filter.third_party(
            ua.certifications().chain(ua.other_revocations()),
            Target::UserAttribute(ua.user_attribute()),
            &mut packets,
        );
    }

    for ka in update.keys().subkeys() {
        let bound = ka.self_signatures().next().is_some() || ka.self_revocations().next().is_some();
        // Third-party signatures on subkeys mean nothing in OpenPGP.
        let foreign = ka.certifications().count() + ka.other_revocations().count();
        filter.dropped_invalid += foreign;
        if !bound && !existing.keys().subkeys().any(|e| e.key() == ka.key()) {
            filter.dropped_invalid += ka.signatures().count() - foreign;
            continue;
        }
        packets.push(ka.key().clone().take_secret().0.into());
        filter.own(
            ka.self_revocations().chain(ka.self_signatures()),
            &mut packets,
        );
    }

    // Unknown components (unparsed packet types) carry nothing a client can use.
    filter.dropped_invalid += update
        .unknowns()
        .map(|u| u.signatures().count())
        .sum::<usize>();

    let rebuilt = Cert::from_packets(packets.into_iter())
        .map_err(|e| MergeError::Malformed(e.to_string()))?;
    let existing = existing.clone().strip_secret_key_material();
    let merged = existing
        .clone()
        .merge_public(rebuilt)
        .map_err(|e| MergeError::Malformed(e.to_string()))?;

    let (bytes, sigs_after) = packet_stats(&merged);
    if bytes > limits.max_cert_bytes {
        return Err(MergeError::TooLarge {
            bytes,
            limit: limits.max_cert_bytes,
        });
    }
    if let Some(count) = merged
        .userids()
        .map(|u| u.signatures().count())
        .find(|&n| n > limits.max_signatures_per_user_id)
    {
        return Err(MergeError::TooManySignaturesOnUserId {
            count,
            limit: limits.max_signatures_per_user_id,
        });
    }
    let (_, sigs_before) = packet_stats(&existing);

    Ok(MergeOutcome {
        cert: merged,
        new_signatures: sigs_after.saturating_sub(sigs_before),
        dropped_unknown_issuer: filter.dropped_unknown_issuer,
        dropped_invalid: filter.dropped_invalid,
        secret_material_stripped,
    })
}

#[cfg(test)]
mod tests;
