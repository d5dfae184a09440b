//! Messages: the rules every message obeys, whichever door it comes through.
//!
//! [`check_envelope`] is the one reading of a signed envelope and [`accept`] the one way a
//! message enters the node (`mail/accept.rs`): HTTP submission (the sender's own node) and
//! federation receive (a peer's node) both call it, so the same malformed message is refused
//! with the same code through either door. [`recipients`] is the rule for a recipient list,
//! for the envelope request and inside every envelope; [`deliverable`] says which local
//! accounts receive mail; [`envelope`] resolves recipients for a sender about to seal.

mod accept;
mod bounce;
mod gateway;
mod smtp;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use sequoia_openpgp::{Cert, Fingerprint};

pub use accept::{
    Accepted, Declared, Delivery, Incoming, Screened, Screening, Source, accept, screen,
};
pub use bounce::{BounceMail, BounceTarget, bounce_recipient};
pub use gateway::{GatewayMail, Submitted, gateway_recipient, gateway_submit};
pub use smtp::{SmtpArrival, SmtpRecipient, Transport, smtp_recipient};

use super::delivery::{KeyChoice, NoMode, Offer, Offers, decide};
use super::{Context, ServiceError};
use crate::config::Limits;
use crate::proto::{
    DeliveryMode, Envelope, EnvelopeResponse, KeySource, ResolvedRecipient, VerdictView,
};
use crate::storage::Account;

/// A recipient list: at least one, at most `limits.max_recipients`, each an e-mail address;
/// normalised (lowercase), each once, in the order given.
pub fn recipients(limits: &Limits, to: &[String]) -> Result<Vec<String>, ServiceError> {
    if to.is_empty() {
        return Err(ServiceError::NoRecipients);
    }
    if to.len() > limits.max_recipients {
        return Err(ServiceError::TooManyRecipients {
            max: limits.max_recipients,
        });
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(to.len());
    for a in to {
        let n =
            crate::normalize_address(a).ok_or_else(|| ServiceError::InvalidAddress(a.clone()))?;
        if seen.insert(n.clone()) {
            out.push(n);
        }
    }
    Ok(out)
}

/// Reads a signed envelope (the exact JSON text the sender signed) and checks everything it
/// must hold before anyone looks further: version 1, a well-formed message ID and sender, 1 to
/// `max_parts` parts whose sizes add up (without overflow) to at most `max_message_bytes`, each
/// named by 64 lowercase hex digits, and a recipient list that is already normal (lowercase,
/// each once: the signed text is what every node reads, so it must need no rewriting).
pub fn check_envelope(limits: &Limits, text: &str) -> Result<Envelope, ServiceError> {
    let bad = |m: &str| ServiceError::InvalidEnvelope(m.to_owned());
    let env: Envelope = serde_json::from_str(text)
        .map_err(|e| ServiceError::InvalidEnvelope(format!("the envelope is not valid: {e}")))?;
    if env.v != 1 {
        return Err(ServiceError::InvalidEnvelope(format!(
            "envelope version {} is not supported",
            env.v
        )));
    }
    if !crate::is_message_id(&env.message_id) {
        return Err(bad("message_id is malformed"));
    }
    if crate::normalize_address(&env.from).as_deref() != Some(env.from.as_str()) {
        return Err(bad("from must be one lowercase e-mail address"));
    }
    if env.parts.is_empty() || env.parts.len() > limits.max_parts {
        return Err(ServiceError::TooManyParts {
            max: limits.max_parts,
        });
    }
    if env
        .total_size()
        .is_none_or(|total| total > limits.max_message_bytes)
    {
        return Err(ServiceError::TooLarge {
            limit: limits.max_message_bytes,
        });
    }
    for p in &env.parts {
        if p.sha256.len() != 64
            || hex::decode(&p.sha256).is_err()
            || p.sha256 != p.sha256.to_lowercase()
        {
            return Err(bad("part sha256 must be 64 lowercase hex digits"));
        }
    }
    if recipients(limits, &env.to)? != env.to {
        return Err(bad("recipients must be lowercase and listed once each"));
    }
    for (address, copy) in &env.external {
        if !env.to.contains(address) || env.pickup.contains_key(address) {
            return Err(bad(
                "every external copy's recipient must be in to, and not a pickup recipient",
            ));
        }
        if !copy.mode.has_external_copy() {
            return Err(bad("an external copy's mode must be openpgp, smime or tls"));
        }
        if copy.sha256.len() != 64
            || copy.sha256 != copy.sha256.to_lowercase()
            || hex::decode(&copy.sha256).is_err()
        {
            return Err(bad(
                "an external copy's sha256 must be 64 lowercase hex digits",
            ));
        }
        if copy.size == 0 || copy.size > limits.max_message_bytes {
            return Err(ServiceError::TooLarge {
                limit: limits.max_message_bytes,
            });
        }
    }
    for (address, fpr) in &env.pickup {
        if !env.to.contains(address) {
            return Err(bad("every pickup recipient must be in to"));
        }
        if !matches!(fpr.len(), 40 | 64) || !fpr.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("a pickup key fingerprint must be 40 or 64 hex digits"));
        }
    }
    // Registered mail (docs/evidence.md): Sealpost recipients, here or at a peered
    // organisation, and pickup recipients: a node holds their copy and can withhold the parts
    // until they sign a receipt. A mail recipient's copy leaves by SMTP: nothing to withhold.
    for (i, address) in env.registered.iter().enumerate() {
        if !env.to.contains(address) || env.registered[..i].contains(address) {
            return Err(bad("every registered recipient must be in to, once"));
        }
        if env.external.contains_key(address) {
            return Err(bad(
                "only Sealpost and pickup recipients can get registered mail, not mail recipients",
            ));
        }
    }
    Ok(env)
}

/// Does this local account receive messages? (An account rule: `accounts::deliverable`, below
/// `mail`, `pickup` and `guests` alike.)
pub use super::accounts::deliverable;

/// A resolved recipient: the local account (None for a peer organisation's user), what the
/// client is told, and the certificate (None for a pickup recipient: the sender makes the key).
pub(super) type Resolved = (Option<i64>, ResolvedRecipient, Option<Arc<Cert>>);

/// An envelope request: every recipient resolved, with the sender's trust verdict on each
/// key (and on the sender's own), and a new message ID issued to the sender.
pub async fn envelope(
    ctx: &Context,
    account: &Account,
    to: &[String],
    now: i64,
) -> Result<EnvelopeResponse, ServiceError> {
    let to = recipients(&ctx.config.limits, to)?;
    super::guests::check_recipients(ctx, account, to.iter().map(String::as_str)).await?;
    let me = super::trust::viewer(account)?;
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(now.max(0) as u64);
    let recipients = resolve_all(ctx, Some(&me), account, &to, at).await?;
    let (_, sender, _) = resolve(ctx, Some(&me), account, &account.address, at)
        .await?
        .ok_or_else(|| ServiceError::NotEnrolled {
            address: account.address.clone(),
        })?;
    let message_id = crate::new_message_id();
    let expires_at = now + ctx.config.limits.message_id_ttl_secs as i64;
    ctx.store
        .issue_message_id(account.id, &message_id, expires_at, now)
        .await?;
    let mut recipients: Vec<ResolvedRecipient> =
        recipients.into_iter().map(|(_, r, _)| r).collect();
    // An outside address already in a live pickup thread with this sender stays in it.
    for r in recipients.iter_mut() {
        super::pickup::thread_recipient(ctx, &account.address, r, now).await?;
    }
    let peer_domains: Vec<&str> = recipients
        .iter()
        .filter(|r| r.mode == DeliveryMode::Remote)
        .map(|r| crate::domain_of(&r.address))
        .collect();
    let compliance = super::compliance::for_envelope(ctx, &peer_domains, at).await?;
    Ok(EnvelopeResponse {
        message_id,
        expires_at,
        sender,
        recipients,
        compliance,
    })
}

/// Resolves one recipient, with the viewer's trust verdict on the key for that address: an
/// enrolled, active local account, or a user of a peered organisation (through its directory,
/// asked over QUIC and cached).
async fn resolve(
    ctx: &Context,
    viewer: Option<&Fingerprint>,
    requester: &Account,
    address: &str,
    now: SystemTime,
) -> Result<Option<Resolved>, ServiceError> {
    let domain = crate::domain_of(address);
    if domain != ctx.config.domain {
        if ctx.store.peer(domain).await?.is_some() {
            return resolve_remote(ctx, viewer, address, domain).await;
        }
        // An outside address with an active guest account is local: encrypted to the guest's
        // key, no unlock code (docs/pickup.md, "Guests").
        if let Some(guest) = ctx.store.account_by_address(address).await?
            && super::guests::is_guest(&guest)
            && deliverable(&guest)
        {
            return local(ctx, viewer, guest).await.map(Some);
        }
        // Neither ours nor a peered organisation's: the policy decides how (docs/mail.md).
        return outside(ctx, requester, address, now).await;
    }
    let Some(account) = ctx.store.account_by_address(address).await? else {
        return Ok(None);
    };
    if !deliverable(&account) {
        return Ok(None);
    }
    local(ctx, viewer, account).await.map(Some)
}

/// An outside address: its keys found, and the mode the policy gives it. `None` when no mode
/// is possible (no trusted key and pickup off): an unknown recipient, as before modes. A
/// pinned domain whose mode is not possible fails with the reason.
async fn outside(
    ctx: &Context,
    requester: &Account,
    address: &str,
    now: SystemTime,
) -> Result<Option<Resolved>, ServiceError> {
    let keys = super::outside_keys::find(ctx, requester, address, now).await?;
    // Each OpenPGP key parsed once: whether it can be encrypted to now.
    let mut certs = Vec::with_capacity(keys.openpgp.len());
    let mut offers = Offers::default();
    for k in &keys.openpgp {
        let cert = ctx.parse_cert(&k.cert).ok();
        let unusable = match &cert {
            None => Some("it cannot be read".to_owned()),
            Some(_) if k.verdict.is_revoked() => Some("it is revoked".to_owned()),
            Some(_) if matches!(k.verdict.why_not.as_deref(), Some("expired")) => {
                Some("it has expired".to_owned())
            }
            Some(c) if ctx.cert_facts(c, now).encryption.is_empty() => {
                Some("it has no key valid for encryption".to_owned())
            }
            Some(_) => None,
        };
        offers.openpgp.push(Offer {
            source: k.source,
            unusable,
        });
        certs.push(cert);
    }
    // An X.509 certificate counts by its anchoring (docs/mail.md, "Outside keys").
    for x in &keys.x509 {
        offers.x509.push(Offer {
            source: match x.anchored {
                Ok(()) => KeySource::X509Anchor,
                Err(_) => x.source,
            },
            unusable: x.anchored.clone().err(),
        });
    }
    let decision = match decide(
        &ctx.config.delivery,
        ctx.config.pickup.enabled,
        address,
        &offers,
    ) {
        Ok(d) => d,
        Err(NoMode { why, pinned: true }) => {
            return Err(ServiceError::NoDeliveryMode {
                address: address.to_owned(),
                why,
            });
        }
        Err(NoMode { pinned: false, .. }) => return Ok(None),
    };
    let base = ResolvedRecipient {
        address: address.to_owned(),
        fingerprint: String::new(),
        cert: String::new(),
        mode: decision.mode,
        why: match decision.mode {
            // Said before sending: whether the sender's client signs the copy (the organisation
            // runs an S/MIME CA, `[smime]`) or it goes unsigned.
            DeliveryMode::Smime => format!(
                "{}; {}",
                decision.why,
                if ctx.smime.is_some() {
                    crate::proto::SMIME_SIGNED
                } else {
                    crate::proto::SMIME_UNSIGNED
                }
            ),
            _ => decision.why,
        },
        key_source: None,
        sees_content: decision.mode == DeliveryMode::Tls,
        verdict: super::pickup::verdict(address),
        pickup_thread: None,
    };
    Ok(Some(match decision.key {
        Some(KeyChoice::Openpgp(i)) => {
            let (k, cert) = (&keys.openpgp[i], certs[i].clone());
            (
                None,
                ResolvedRecipient {
                    fingerprint: k.fingerprint.clone(),
                    cert: k.cert.clone(),
                    key_source: Some(k.source),
                    verdict: k.verdict.clone(),
                    ..base
                },
                cert,
            )
        }
        Some(KeyChoice::X509(i)) => {
            let x = &keys.x509[i];
            (
                None,
                ResolvedRecipient {
                    fingerprint: x.sha256.clone(),
                    cert: x.pem.clone(),
                    key_source: Some(offers.x509[i].source),
                    ..base
                },
                None,
            )
        }
        // Enforced TLS: the copy goes to the node's transit key only.
        None if decision.mode == DeliveryMode::Tls => {
            let t = ctx
                .transit
                .as_ref()
                .ok_or_else(|| ServiceError::NoDeliveryMode {
                    address: address.to_owned(),
                    why: "this node has no transit key for enforced-TLS mail".into(),
                })?;
            (
                None,
                ResolvedRecipient {
                    fingerprint: t.fingerprint.clone(),
                    cert: t.armored.clone(),
                    ..base
                },
                Some(t.cert.clone()),
            )
        }
        None => (None, base, None),
    }))
}

/// A deliverable account of this node (a user, or a guest), with the viewer's verdict.
async fn local(
    ctx: &Context,
    viewer: Option<&Fingerprint>,
    account: Account,
) -> Result<Resolved, ServiceError> {
    let cert = ctx.account_cert(&account)?;
    let mut verdict = verdict_for(ctx, viewer, &cert, &account.address).await?;
    if super::guests::is_guest(&account) && viewer.is_some() && verdict.why_not.is_some() {
        verdict.explanation.push(format!(
            "{} is a guest of this organisation: their key is authenticated once you certify \
             it (first contact by Message Unlock Code)",
            account.address
        ));
    }
    Ok((
        Some(account.id),
        ResolvedRecipient {
            address: account.address.clone(),
            fingerprint: account.fingerprint.clone().unwrap_or_default(),
            cert: account.cert.clone().unwrap_or_default(),
            mode: DeliveryMode::Local,
            why: if super::guests::is_guest(&account) {
                format!("{} is a guest of this organisation", account.address)
            } else {
                format!("{} is a user of this organisation", account.address)
            },
            key_source: None,
            sees_content: false,
            verdict,
            pickup_thread: None,
        },
        Some(cert),
    ))
}

async fn verdict_for(
    ctx: &Context,
    viewer: Option<&Fingerprint>,
    cert: &Cert,
    address: &str,
) -> Result<VerdictView, ServiceError> {
    Ok(match viewer {
        Some(viewer) => {
            let verdict = super::trust::verdict(ctx, viewer, cert, address).await?;
            super::trust::view_for(ctx, viewer, &verdict).await?
        }
        // Submission needs no verdict, only whether the key is revoked (checked by the caller).
        None => VerdictView {
            fingerprint: cert.fingerprint().to_hex(),
            address: address.to_owned(),
            level: String::new(),
            amount: 0,
            why_not: None,
            explanation: Vec::new(),
        },
    })
}

/// A user of a peered organisation. Of several keys claiming the address, the one the viewer's
/// web of trust rates highest (at submission, without a viewer: the first not revoked).
async fn resolve_remote(
    ctx: &Context,
    viewer: Option<&Fingerprint>,
    address: &str,
    domain: &str,
) -> Result<Option<Resolved>, ServiceError> {
    let Some(peer) = ctx.store.peer(domain).await? else {
        return Ok(None);
    };
    let certs = super::peers::remote_certs(ctx, &peer, address).await?;
    let mut best: Option<(VerdictView, Arc<Cert>)> = None;
    for cert in certs {
        let verdict = verdict_for(ctx, viewer, &cert, address).await?;
        let revoked = is_revoked(ctx, &cert);
        let better = match &best {
            None => true,
            Some((b, _)) if viewer.is_some() => verdict.amount > b.amount,
            Some(_) => !revoked,
        };
        if better {
            best = Some((verdict, cert));
        }
    }
    let Some((verdict, cert)) = best else {
        return Ok(None);
    };
    Ok(Some((
        None,
        ResolvedRecipient {
            address: address.to_owned(),
            fingerprint: cert.fingerprint().to_hex(),
            // Only the envelope request (with a viewer) hands the certificate to the client;
            // submission needs the parsed certificate alone.
            cert: match viewer {
                Some(_) => crate::crypto::cert_to_armored(&cert).map_err(ServiceError::internal)?,
                None => String::new(),
            },
            mode: DeliveryMode::Remote,
            why: format!("{address} is a user of {domain}, a peered organisation"),
            key_source: None,
            sees_content: false,
            verdict,
            pickup_thread: None,
        },
        Some(cert),
    )))
}

/// Resolves all recipients, or names every one that cannot be reached.
async fn resolve_all(
    ctx: &Context,
    viewer: Option<&Fingerprint>,
    requester: &Account,
    to: &[String],
    now: SystemTime,
) -> Result<Vec<Resolved>, ServiceError> {
    let mut found = Vec::with_capacity(to.len());
    let mut unknown = Vec::new();
    for a in to {
        match resolve(ctx, viewer, requester, a, now).await? {
            Some(r) => found.push(r),
            None => unknown.push(a.clone()),
        }
    }
    if !unknown.is_empty() {
        return Err(ServiceError::UnknownRecipients { addresses: unknown });
    }
    Ok(found)
}

/// Is this key revoked (now, by the node's policy)?
fn is_revoked(ctx: &Context, cert: &Cert) -> bool {
    matches!(
        cert.revocation_status(&ctx.policy, None),
        sequoia_openpgp::types::RevocationStatus::Revoked(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v = serde_json::json!({
            "v": 1,
            "message_id": crate::new_message_id(),
            "from": "alice@a.test",
            "to": ["bob@b.test"],
            "created_at": 0,
            "parts": [{ "sha256": "ab".repeat(32), "size": 10 }],
        });
        edit(&mut v);
        v.to_string()
    }

    /// Every rule of [`check_envelope`], by the code a door reports.
    #[test]
    fn envelopes_are_checked_by_one_rule() {
        let limits = Limits::default();
        let cases: Vec<(&str, String, Option<&str>)> = vec![
            ("well-formed", envelope(|_| {}), None),
            ("not JSON", "{".into(), Some("invalid_envelope")),
            (
                "version 2",
                envelope(|v| v["v"] = 2.into()),
                Some("invalid_envelope"),
            ),
            (
                "bad message ID",
                envelope(|v| v["message_id"] = "x".into()),
                Some("invalid_envelope"),
            ),
            (
                "sender in capitals",
                envelope(|v| v["from"] = "Alice@a.test".into()),
                Some("invalid_envelope"),
            ),
            (
                "no parts",
                envelope(|v| v["parts"] = serde_json::json!([])),
                Some("too_many_parts"),
            ),
            (
                "sizes overflow",
                envelope(|v| {
                    v["parts"] = serde_json::json!([
                        { "sha256": "ab".repeat(32), "size": u64::MAX },
                        { "sha256": "cd".repeat(32), "size": u64::MAX },
                    ])
                }),
                Some("too_large"),
            ),
            (
                // Found while writing the `envelope` fuzz target (its input is
                // fuzz/corpus/envelope/overflow-part-sizes.json): a plain sum wrapped to 1.
                "sizes overflow to a small total",
                envelope(|v| {
                    v["parts"] = serde_json::json!([
                        { "sha256": "ab".repeat(32), "size": u64::MAX },
                        { "sha256": "cd".repeat(32), "size": 2 },
                    ])
                }),
                Some("too_large"),
            ),
            (
                "hash in capitals",
                envelope(|v| v["parts"][0]["sha256"] = "AB".repeat(32).into()),
                Some("invalid_envelope"),
            ),
            (
                "no recipients",
                envelope(|v| v["to"] = serde_json::json!([])),
                Some("no_recipients"),
            ),
            (
                "a recipient twice",
                envelope(|v| v["to"] = serde_json::json!(["bob@b.test", "bob@b.test"])),
                Some("invalid_envelope"),
            ),
            (
                "a recipient in capitals",
                envelope(|v| v["to"] = serde_json::json!(["Bob@b.test"])),
                Some("invalid_envelope"),
            ),
            (
                "not an address",
                envelope(|v| v["to"] = serde_json::json!(["bob"])),
                Some("invalid_address"),
            ),
        ];
        for (name, text, want) in cases {
            let got = check_envelope(&limits, &text).err().map(|e| e.code());
            assert_eq!(got, want, "{name}");
        }
    }
}
