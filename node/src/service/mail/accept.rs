//! Accepting a message: the one way a message enters this node, whichever door it comes
//! through (in the manner of Stalwart's `email_ingest(IngestSource)`).
//!
//! [`accept`] takes the message's [`Source`] and applies every rule once, in this order:
//!
//! 1. the envelope ([`check_envelope`](super::check_envelope)), and that it is what the
//!    transport declared (`transfer_mismatch`);
//! 2. the source may speak for the sender (`sender_mismatch`): a local sender only for their
//!    own address, a peer's node only for its domain; a peer's replay of a message already
//!    received is answered as the first time (a different envelope under the same ID:
//!    `message_id_reused`);
//! 3. the sender's key: a local account's own, or the certificate a peer presents,
//!    authenticated by this node's trust view (our CA, the bridge, their CA;
//!    `untrusted_sender`); its signature over the exact envelope bytes
//!    (`bad_envelope_signature`);
//! 4. the recipients: a local sender's every recipient is resolved, here or at a peered
//!    organisation (`unknown_recipient`); a peer's message concerns our recipients only; no
//!    new message goes to a revoked key (`recipient_revoked`);
//! 5. the parts: an inline part matches its signed hash and size and fits inline; any other
//!    part is held (uploaded by the local sender, or streamed by the peer; `part_missing`);
//! 6. every part is encrypted to every recipient resolved in 4 and to the sender
//!    (`not_encrypted`, `missing_recipient_key`), and to every compliance key required
//!    (`missing_compliance_recipient`; `service::compliance::required`);
//! 7. one commit: message, parts, mailboxes, an outbox entry per remote domain, log entries.
//!
//! A local submission is all or nothing: the client corrects it and submits again. A peer's
//! transfer is answered per recipient (the receipt): one of ours who cannot receive it is
//! refused alone, with the code that would have refused a local submission.
//!
//! The federation host takes steps 1 to 4 ([`screen`]) before any part travels, to say which
//! parts it wants; its commit then calls [`accept`], which takes them all again: nothing
//! stored rests on an earlier, separate admission.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use sequoia_openpgp::Cert;
use sha2::{Digest, Sha256};

use super::{check_envelope, deliverable, is_revoked, resolve_all};
use crate::crypto;
use crate::proto::{DeliveryMode, Envelope};
use crate::service::{Context, ServiceError};
use crate::storage::pickup::{PickupRecord, PickupReply, PickupState, ReplyOutcome};
use crate::storage::{Account, NewMessage, NewPart, RemoteMessage, RemoteRoute, SubmitOutcome};

/// Where a message comes from: who may be its sender, what vouches for the sender's key,
/// where parts not carried with it must already be, and how it is stored. New doors (a
/// pickup reply, SMTP) are new variants.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Source<'a> {
    /// A local user's submission: the sender is this (logged-in) account.
    Local { account: &'a Account },
    /// A transfer from the node of a peered organisation, which speaks for `domain` only.
    Peer {
        domain: &'a str,
        /// The sender's certificate as the peer presents it (armored).
        sender_cert: &'a str,
        /// Evidence kept with the message: the sending node's signature (hex) and, for a
        /// transfer that came in a batch, the proof that the batch signature covers it.
        node_sig: String,
        proof: Option<serde_json::Value>,
    },
    /// A reply from a pickup session (docs/pickup.md, Replies): the sender is the pickup's
    /// outside address, its key the pickup key (authenticated by possession of the unlock
    /// code); the only recipient is the pickup's sender.
    Pickup { pickup: &'a PickupRecord },
}

/// A message as a door received it.
#[derive(Debug, Default)]
pub struct Incoming<'a> {
    /// The envelope's exact text, as the sender signed it.
    pub envelope: &'a str,
    /// The sender's armored detached signature over it.
    pub signature: &'a str,
    /// Parts that came with the message, by index; every other part must be held.
    pub inline: BTreeMap<u32, Vec<u8>>,
    /// What the transport declared before the envelope was read, if it did.
    pub declared: Option<Declared<'a>>,
    /// A local sender's pickup seals, one per new pickup recipient (docs/pickup.md).
    pub pickups: Vec<crate::proto::PickupSeal>,
    /// A local sender's continuations of live pickup threads, one per other pickup recipient.
    pub continuations: Vec<crate::proto::PickupContinuation>,
    /// A local sender's external copies, by outside recipient (docs/mail.md).
    pub external_copies: BTreeMap<String, Vec<u8>>,
}

/// What a transport said of a message ahead of its envelope (a federation transfer names its
/// message ID and parts, by which parts are then asked for): it must be what the signed
/// envelope says.
#[derive(Debug)]
pub struct Declared<'a> {
    pub message_id: &'a str,
    /// Each part's hash (hex) and size.
    pub parts: Vec<(&'a str, u64)>,
}

/// What became of an accepted message.
#[derive(Debug)]
pub struct Accepted {
    pub message_id: String,
    /// When this node accepted it (for a resubmission: the first time).
    pub accepted_at: i64,
    /// It was accepted before (a client retrying, a peer replaying): nothing changed.
    pub duplicate: bool,
    /// Every recipient this node answers for: all of a local sender's, in the envelope's
    /// order; a peer's message: ours.
    pub recipients: Vec<(String, Delivery)>,
}

#[derive(Debug)]
pub enum Delivery {
    /// In the recipient's mailbox on this node.
    Delivered,
    /// Queued for the node of the recipient's organisation.
    Queued,
    /// An outside recipient reached by mail: its external copy's mail is queued.
    Mail { mode: DeliveryMode },
    /// An outside recipient, reached by pickup: the link (`None` for a resubmission, whose
    /// link was answered the first time).
    Pickup { link: Option<String> },
    /// Not delivered to this recipient, for this reason.
    Refused(ServiceError),
}

/// A message that passed steps 1 to 4, with what they found.
pub struct Screened {
    env: Envelope,
    sender: Arc<Cert>,
    /// Recipients this node delivers to or routes.
    recipients: Vec<Recipient>,
    /// A peer's message: those of our recipients who cannot receive it.
    refused: Vec<(String, ServiceError)>,
    /// A local sender's outside recipients reached by mail, each with its checked copy.
    external: Vec<External>,
}

/// An outside recipient reached by mail (`openpgp`, `smime`), with the external copy as
/// checked.
pub(super) struct External {
    pub(super) address: String,
    pub(super) mode: DeliveryMode,
    pub(super) sha256: [u8; 32],
    pub(super) copy: Vec<u8>,
    /// The copy came as an upload (`PUT /blobs`), not inline: the upload is used up with the
    /// submission.
    pub(super) uploaded: bool,
}

/// What [`screen`] decided.
pub enum Screening {
    /// Nothing to store: this is the answer (a replay, or a peer's message for none of ours
    /// who can receive it).
    Answered(Accepted),
    /// Go on: the parts are wanted.
    Go(Screened),
}

struct Recipient {
    /// The local account, or `None` for a peered organisation's user.
    account: Option<i64>,
    address: String,
    cert: Arc<Cert>,
    /// An outside recipient's pickup, and the link's token.
    pickup: Option<Box<(crate::storage::pickup::NewPickup, [u8; 32])>>,
}

impl Screened {
    fn answered(self, message_id: String, now: i64) -> Accepted {
        Accepted {
            message_id,
            accepted_at: now,
            duplicate: false,
            recipients: self
                .refused
                .into_iter()
                .map(|(a, e)| (a, Delivery::Refused(e)))
                .collect(),
        }
    }
}

/// Accepts a message from `source`: every rule of this module, then one commit. A refusal
/// stores nothing. Counted in the metrics by door and outcome (`sealpost_submissions_total`),
/// with the local deliveries it made.
pub async fn accept(
    ctx: &Context,
    source: &Source<'_>,
    msg: Incoming<'_>,
    now: SystemTime,
) -> Result<Accepted, ServiceError> {
    // The duration of the work, not a rule's time: `now` stays the one the door passed.
    let started = std::time::Instant::now();
    let result = accept_measured(ctx, source, msg, now).await;
    let took = started.elapsed();
    let door = match source {
        Source::Local { .. } => "local",
        Source::Peer { .. } => "peer",
        Source::Pickup { .. } => "pickup",
    };
    match &result {
        Ok(a) => {
            ctx.metrics.submission(door, None, took);
            if !a.duplicate {
                let local = a
                    .recipients
                    .iter()
                    .filter(|(_, d)| matches!(d, Delivery::Delivered))
                    .count();
                ctx.metrics.delivered("local", local as u64, Some(took));
            }
        }
        Err(e) => ctx.metrics.submission(door, Some(e.code()), took),
    }
    result
}

async fn accept_measured(
    ctx: &Context,
    source: &Source<'_>,
    mut msg: Incoming<'_>,
    now: SystemTime,
) -> Result<Accepted, ServiceError> {
    let screened = match screen(ctx, source, &msg, now).await? {
        Screening::Answered(a) => return Ok(a),
        Screening::Go(s) => s,
    };
    let inline = std::mem::take(&mut msg.inline);
    let parts = parts(ctx, source, &screened, inline, now).await?;
    let evidence = evidence_of(ctx, source, &screened, now);
    store(ctx, source, screened, &msg, parts, evidence, now).await
}

/// The evidence records of a message about to be accepted (docs/evidence.md, "Events"),
/// committed with it: a local submission's acceptance, consignment to local mailboxes and
/// notification of pickup recipients; a peer's transfer's relay acceptance and consignment per
/// recipient of ours, or its relay rejection. A replay commits nothing, so none of them.
fn evidence_of(
    ctx: &Context,
    source: &Source<'_>,
    s: &Screened,
    now: SystemTime,
) -> Vec<crate::storage::evidence::NewEvidence> {
    use crate::evidence::Event;
    let facts = crate::service::evidence::Facts {
        message_id: &s.env.message_id,
        sender: &s.env.from,
        parts: s.env.parts.iter().map(|p| p.sha256.clone()).collect(),
    };
    let make = |event, recipient: Option<&str>, detail: &[(&str, &str)]| {
        crate::service::evidence::make(ctx, event, &facts, recipient, detail, now)
    };
    let mut out = Vec::new();
    if let Source::Local { .. } = source {
        out.push(make(Event::SubmissionAcceptance, None, &[]));
    }
    for r in &s.recipients {
        let to = Some(r.address.as_str());
        match (source, r.account, &r.pickup) {
            (Source::Peer { domain, .. }, Some(_), _) => {
                out.push(make(Event::RelayAcceptance, to, &[("from_node", domain)]));
                out.push(make(Event::ContentConsignment, to, &[]));
            }
            (_, Some(_), _) => out.push(make(Event::ContentConsignment, to, &[])),
            (_, None, Some(_)) => out.push(make(
                Event::NotificationForAcceptance,
                to,
                &[("via", "pickup")],
            )),
            // Queued for a peer's node: its receipt is the evidence.
            (_, None, None) => {}
        }
    }
    if let Source::Peer { domain, .. } = source {
        for (address, e) in &s.refused {
            out.push(make(
                Event::RelayRejection,
                Some(address),
                &[("from_node", domain), ("reason", e.code())],
            ));
        }
    }
    crate::service::evidence::made(out)
}

/// Steps 1 to 4: the envelope, the sender, the signature and the recipients. Looks at no
/// part's bytes.
pub async fn screen(
    ctx: &Context,
    source: &Source<'_>,
    msg: &Incoming<'_>,
    now: SystemTime,
) -> Result<Screening, ServiceError> {
    let env = check_envelope(&ctx.config.limits, msg.envelope)?;
    if let Some(d) = &msg.declared {
        let same = d.message_id == env.message_id
            && d.parts.len() == env.parts.len()
            && env
                .parts
                .iter()
                .zip(&d.parts)
                .all(|(e, (sha, size))| e.sha256 == *sha && e.size == *size);
        if !same {
            return Err(ServiceError::TransferMismatch);
        }
    }
    let unix = crate::service::unix(now);
    let sender = match source {
        Source::Local { account } => {
            if env.from != account.address {
                return Err(ServiceError::SenderMismatch {
                    speaker: format!("the logged-in user {}", account.address),
                    sender: env.from,
                });
            }
            ctx.account_cert(account)?
        }
        Source::Peer {
            domain,
            sender_cert,
            ..
        } => {
            if crate::domain_of(&env.from) != *domain {
                return Err(ServiceError::SenderMismatch {
                    speaker: format!("the node of {domain}"),
                    sender: env.from,
                });
            }
            if let Some((to, envelope_sha)) = ctx.store.received_by(&env.message_id).await? {
                if envelope_sha != <[u8; 32]>::from(Sha256::digest(msg.envelope.as_bytes())) {
                    return Err(ServiceError::MessageIdReused);
                }
                return Ok(Screening::Answered(Accepted {
                    message_id: env.message_id,
                    accepted_at: unix,
                    duplicate: true,
                    recipients: to.into_iter().map(|a| (a, Delivery::Delivered)).collect(),
                }));
            }
            peer_sender_key(ctx, domain, sender_cert, &env.from).await?
        }
        Source::Pickup { pickup } => {
            if env.from != pickup.address {
                return Err(ServiceError::SenderMismatch {
                    speaker: format!("the pickup session of {}", pickup.address),
                    sender: env.from,
                });
            }
            ctx.parse_cert(&pickup.cert)
                .map_err(ServiceError::internal)?
        }
    };
    let facts = ctx.cert_facts(&sender, now);
    crypto::verify_detached_with(
        &sender,
        &facts.signer,
        &ctx.policy,
        now,
        msg.envelope.as_bytes(),
        msg.signature,
    )
    .map_err(|e| ServiceError::BadSignature(e.to_string()))?;

    let mut external = Vec::new();
    let (recipients, refused) = match source {
        Source::Local { account } => {
            super::super::guests::check_recipients(ctx, account, env.to.iter().map(String::as_str))
                .await?;
            let resolved = resolve_all(ctx, None, account, &env.to, now).await?;
            // Outside recipients reached by mail: their copies checked here, apart from the
            // parts (which need not be encrypted to them).
            let (by_mail, resolved): (Vec<_>, Vec<_>) = resolved
                .into_iter()
                .partition(|(_, r, _)| r.mode.has_external_copy());
            external =
                external_copies(ctx, account, &env, msg, &resolved, by_mail, &sender, now).await?;
            let outside: Vec<String> = resolved
                .iter()
                .filter(|(_, r, _)| r.mode == crate::proto::DeliveryMode::Pickup)
                .map(|(_, r, _)| r.address.clone())
                .collect();
            let mut seals = if outside.is_empty()
                && env.pickup.is_empty()
                && msg.pickups.is_empty()
                && msg.continuations.is_empty()
            {
                Vec::new()
            } else {
                crate::service::pickup::check_seals(
                    ctx,
                    &env,
                    &outside,
                    &msg.pickups,
                    &msg.continuations,
                    &sender,
                    now,
                )
                .await?
            };
            let mut recipients = Vec::with_capacity(resolved.len());
            for (account, r, cert) in resolved {
                let recipient = match cert {
                    Some(cert) => Recipient {
                        account,
                        address: r.address,
                        cert,
                        pickup: None,
                    },
                    None => {
                        let i = seals
                            .iter()
                            .position(|s| s.address == r.address)
                            .ok_or_else(|| ServiceError::internal("a pickup without its seal"))?;
                        let seal = seals.swap_remove(i);
                        Recipient {
                            account: None,
                            address: r.address,
                            cert: seal.cert,
                            pickup: Some(Box::new((seal.pickup, seal.token))),
                        }
                    }
                };
                recipients.push(recipient);
            }
            // New messages to a revoked key are refused, whatever the client decided.
            let revoked: Vec<String> = recipients
                .iter()
                .filter(|r| is_revoked(ctx, &r.cert))
                .map(|r| r.address.clone())
                .collect();
            if !revoked.is_empty() {
                return Err(ServiceError::RecipientRevoked { addresses: revoked });
            }
            (recipients, Vec::new())
        }
        Source::Peer { .. } => ours(ctx, &env).await?,
        Source::Pickup { pickup } => (
            vec![reply_recipient(ctx, pickup, &env, msg).await?],
            Vec::new(),
        ),
    };
    let screened = Screened {
        env,
        sender,
        recipients,
        refused,
        external,
    };
    if screened.recipients.is_empty() && screened.external.is_empty() {
        let id = screened.env.message_id.clone();
        return Ok(Screening::Answered(screened.answered(id, unix)));
    }
    Ok(Screening::Go(screened))
}

/// A local sender's external copies (docs/mail.md): every recipient the policy reaches by
/// mail (`by_mail`, as resolved now) has one, in the mode the policy gives, matching the hash
/// and size the sender signed, encrypted to the recipient's key and the sender's; no other
/// recipient has one. A copy comes inline or, when it is not in the request, as the sender's
/// upload of the hash and size the envelope names.
#[allow(clippy::too_many_arguments)]
async fn external_copies(
    ctx: &Context,
    account: &Account,
    env: &Envelope,
    msg: &Incoming<'_>,
    others: &[super::Resolved],
    by_mail: Vec<super::Resolved>,
    sender: &Arc<Cert>,
    now: SystemTime,
) -> Result<Vec<External>, ServiceError> {
    // A copy for a recipient reached some other way: refused, by what reaches them.
    for (address, copy) in &env.external {
        if let Some((_, r, _)) = others.iter().find(|(_, r, _)| &r.address == address) {
            return Err(match r.mode {
                DeliveryMode::Local | DeliveryMode::Remote => {
                    ServiceError::ExternalCopyNotAllowed {
                        address: address.clone(),
                        mode: r.mode,
                    }
                }
                policy => ServiceError::ExternalModeMismatch {
                    address: address.clone(),
                    policy,
                    envelope: Some(copy.mode),
                },
            });
        }
    }
    if let Some(address) = msg
        .external_copies
        .keys()
        .find(|a| !env.external.contains_key(*a))
    {
        return Err(ServiceError::ExternalCopyMismatch {
            address: address.clone(),
            why: "is not named in the signed envelope",
        });
    }
    let mut out = Vec::with_capacity(by_mail.len());
    for (_, r, cert) in by_mail {
        let address = r.address;
        let named = env.external.get(&address);
        if named.map(|x| x.mode) != Some(r.mode) {
            return Err(ServiceError::ExternalModeMismatch {
                address,
                policy: r.mode,
                envelope: named.map(|x| x.mode),
            });
        }
        let named = named.expect("checked above");
        let mismatch = |why| ServiceError::ExternalCopyMismatch {
            address: address.clone(),
            why,
        };
        let (copy, uploaded) = match msg.external_copies.get(&address) {
            Some(inline) => (std::borrow::Cow::Borrowed(inline), false),
            None => {
                let uploaded = uploaded_copy(ctx, account, named)
                    .await?
                    .ok_or_else(|| mismatch("did not come with the message"))?;
                (std::borrow::Cow::Owned(uploaded), true)
            }
        };
        let copy: &Vec<u8> = &copy;
        let sha256: [u8; 32] = Sha256::digest(copy).into();
        if crate::proto::ExternalCopy::of(r.mode, copy) != *named {
            return Err(mismatch(
                "does not match the hash and size in the signed envelope",
            ));
        }
        match (r.mode, cert) {
            (DeliveryMode::Openpgp, Some(cert)) => {
                let keys = crypto::pkesk_recipients_of_bytes(copy).map_err(|_| {
                    ServiceError::ExternalCopyNotEncrypted {
                        address: address.clone(),
                        missing: vec![address.clone(), env.from.clone()],
                    }
                })?;
                let required = [(&address, &cert), (&env.from, sender)]
                    .map(|(a, c)| (a, c.fingerprint(), ctx.cert_facts(c, now)));
                let missing = crypto::missing_recipients_among(
                    &keys,
                    required
                        .iter()
                        .map(|(_, f, facts)| (f.clone(), facts.encryption.as_slice())),
                );
                if !missing.is_empty() {
                    return Err(ServiceError::ExternalCopyNotEncrypted {
                        address: address.clone(),
                        missing: required
                            .iter()
                            .filter(|(_, f, _)| missing.contains(f))
                            .map(|(a, _, _)| (*a).clone())
                            .collect(),
                    });
                }
            }
            // Enforced TLS: to the node's transit key and nothing else (the node sends its
            // plaintext; a copy another key could open would be a second way in).
            (DeliveryMode::Tls, Some(transit)) => {
                let not_encrypted = || ServiceError::ExternalCopyNotEncrypted {
                    address: address.clone(),
                    missing: vec![format!(
                        "this node's transit key ({})",
                        transit.fingerprint()
                    )],
                };
                let keys = crypto::pkesk_recipients_of_bytes(copy).map_err(|_| not_encrypted())?;
                let facts = ctx.cert_facts(&transit, now);
                let missing = crypto::missing_recipients_among(
                    &keys,
                    [(transit.fingerprint(), facts.encryption.as_slice())],
                );
                if !missing.is_empty() {
                    return Err(not_encrypted());
                }
                if keys
                    .iter()
                    .any(|k| !facts.encryption.iter().any(|e| e.aliases(k)))
                {
                    return Err(mismatch(
                        "is encrypted to other keys than this node's transit key",
                    ));
                }
            }
            // S/MIME: whom the CMS names, by the certificate the envelope answer gave.
            (DeliveryMode::Smime, _) => {
                use crate::crypto::cms::{CmsError, check_enveloped_for};
                match check_enveloped_for(copy, &r.cert) {
                    Ok(()) => {}
                    Err(CmsError::NotForRecipient) => {
                        return Err(ServiceError::ExternalCopyNotEncrypted {
                            missing: vec![address.clone()],
                            address,
                        });
                    }
                    Err(CmsError::Malformed(why)) => {
                        return Err(ServiceError::ExternalCopyMalformed {
                            address,
                            mode: DeliveryMode::Smime,
                            why,
                        });
                    }
                }
            }
            (mode, _) => return Err(ServiceError::ModeUnavailable { address, mode }),
        }
        out.push(External {
            address,
            mode: r.mode,
            sha256,
            copy: copy.clone(),
            uploaded,
        });
    }
    Ok(out)
}

/// The external copy `named` in the envelope, if the sender uploaded it with that size: read
/// whole (at most `limits.max_message_bytes`, as every upload), since the node checks whom
/// it is encrypted to and renders it into the mail it queues.
async fn uploaded_copy(
    ctx: &Context,
    account: &Account,
    named: &crate::proto::ExternalCopy,
) -> Result<Option<Vec<u8>>, ServiceError> {
    let Some(sha256) = hex::decode(&named.sha256)
        .ok()
        .and_then(|h| <[u8; 32]>::try_from(h).ok())
    else {
        return Ok(None);
    };
    if ctx.store.uploaded_by(account.id, sha256).await? != Some(named.size) {
        return Ok(None);
    }
    let Ok(file) = ctx.blobs.open(sha256).await else {
        return Ok(None);
    };
    let mut copy = Vec::with_capacity(usize::try_from(named.size).unwrap_or(0));
    use tokio::io::AsyncReadExt;
    file.take(named.size)
        .read_to_end(&mut copy)
        .await
        .map_err(ServiceError::internal)?;
    Ok(Some(copy))
}

/// The certificate a peer presents for the sender, kept if the peer may speak for it, and
/// fully authenticated for the sender's address by this node's trust view (our CA is the root).
async fn peer_sender_key(
    ctx: &Context,
    domain: &str,
    armored: &str,
    from: &str,
) -> Result<Arc<Cert>, ServiceError> {
    let untrusted = |why: String| ServiceError::UntrustedSender {
        address: from.to_owned(),
        why,
    };
    let record = ctx
        .store
        .peer(domain)
        .await?
        .ok_or_else(|| ServiceError::UnknownPeer {
            domain: domain.to_owned(),
        })?;
    let cert = crate::service::peers::accept_remote_certs(ctx, &record, &[armored.to_owned()])
        .await
        .map_err(|e| untrusted(format!("its certificate is not acceptable: {e}")))?
        .into_iter()
        .next()
        .ok_or_else(|| untrusted("no certificate came with it".into()))?;
    let verdict = crate::service::trust::verdict(ctx, &ctx.ca.fingerprint(), &cert, from).await?;
    if verdict.level != sealpost_trust::Level::Full {
        let why = crate::service::trust::view(&verdict);
        return Err(untrusted(why.why_not.unwrap_or(why.level)));
    }
    Ok(cert)
}

/// A pickup reply's one recipient: the pickup's sender, who must be all of `to`, still able to
/// receive, with a key not revoked. A reply makes no pickups.
async fn reply_recipient(
    ctx: &Context,
    pickup: &PickupRecord,
    env: &Envelope,
    msg: &Incoming<'_>,
) -> Result<Recipient, ServiceError> {
    if env.to != [pickup.sender.as_str()] {
        return Err(ServiceError::ReplyRecipient {
            allowed: pickup.sender.clone(),
        });
    }
    if !env.pickup.is_empty() || !msg.pickups.is_empty() || !msg.continuations.is_empty() {
        return Err(ServiceError::InvalidEnvelope(
            "a reply from a pickup names no pickup recipients".into(),
        ));
    }
    if !env.external.is_empty() {
        return Err(ServiceError::InvalidEnvelope(
            "a reply from a pickup names no external copies".into(),
        ));
    }
    let account = ctx
        .store
        .account_by_address(&pickup.sender)
        .await?
        .filter(deliverable)
        .ok_or_else(|| ServiceError::UnknownRecipients {
            addresses: vec![pickup.sender.clone()],
        })?;
    let cert = ctx.account_cert(&account)?;
    if is_revoked(ctx, &cert) {
        return Err(ServiceError::RecipientRevoked {
            addresses: vec![account.address],
        });
    }
    Ok(Recipient {
        account: Some(account.id),
        address: account.address,
        cert,
        pickup: None,
    })
}

/// A peer's message: our recipients who receive it, and those who cannot (each with the
/// reason a local submission to them would have been refused).
async fn ours(
    ctx: &Context,
    env: &Envelope,
) -> Result<(Vec<Recipient>, Vec<(String, ServiceError)>), ServiceError> {
    let mut recipients = Vec::new();
    let mut refused = Vec::new();
    for a in env
        .to
        .iter()
        .filter(|a| crate::domain_of(a) == ctx.config.domain)
    {
        let account = match ctx.store.account_by_address(a).await? {
            Some(account) if deliverable(&account) => account,
            _ => {
                let e = ServiceError::UnknownRecipients {
                    addresses: vec![a.clone()],
                };
                refused.push((a.clone(), e));
                continue;
            }
        };
        let cert = ctx.account_cert(&account)?;
        if is_revoked(ctx, &cert) {
            let e = ServiceError::RecipientRevoked {
                addresses: vec![a.clone()],
            };
            refused.push((a.clone(), e));
            continue;
        }
        recipients.push(Recipient {
            account: Some(account.id),
            address: account.address,
            cert,
            pickup: None,
        });
    }
    Ok((recipients, refused))
}

/// Steps 5 and 6: every part present and as signed, and encrypted to everyone it must be.
async fn parts(
    ctx: &Context,
    source: &Source<'_>,
    s: &Screened,
    mut inline: BTreeMap<u32, Vec<u8>>,
    now: SystemTime,
) -> Result<Vec<NewPart>, ServiceError> {
    let env = &s.env;
    if let Some(i) = inline.keys().find(|i| **i as usize >= env.parts.len()) {
        return Err(ServiceError::InvalidPart(format!(
            "inline part {i} is not in the envelope"
        )));
    }
    let max_inline = ctx.config.limits.inline_part_max_bytes;
    let hashes: Vec<[u8; 32]> = env
        .parts
        .iter()
        .map(|p| {
            hex::decode(&p.sha256)
                .expect("checked by check_envelope")
                .try_into()
                .expect("checked by check_envelope")
        })
        .collect();
    // Files a peer's earlier transfers left (looked up only if some part is not inline).
    let held = match source {
        Source::Peer { .. } if inline.len() < env.parts.len() => {
            ctx.store.blobs_held(hashes.clone()).await?
        }
        _ => Vec::new(),
    };
    let mut parts = Vec::with_capacity(env.parts.len());
    for (i, (p, sha256)) in env.parts.iter().zip(hashes).enumerate() {
        let data = match inline.remove(&(i as u32)) {
            Some(data) => {
                if data.len() > max_inline {
                    return Err(ServiceError::InlineTooLarge {
                        limit: max_inline as u64,
                    });
                }
                if data.len() as u64 != p.size || <[u8; 32]>::from(Sha256::digest(&data)) != sha256
                {
                    return Err(ServiceError::PartMismatch { index: i });
                }
                Some(data)
            }
            None => {
                let present = match source {
                    Source::Local { account } => {
                        ctx.store.uploaded_by(account.id, sha256).await? == Some(p.size)
                    }
                    // Held, or a file the peer streamed for this transfer.
                    Source::Peer { .. } => {
                        held.contains(&sha256) || ctx.blobs.open(sha256).await.is_ok()
                    }
                    Source::Pickup { pickup } => {
                        ctx.store.pickup_uploaded(pickup.id, sha256).await? == Some(p.size)
                    }
                };
                if !present {
                    let why = match source {
                        Source::Local { .. } => {
                            "was not uploaded by you with the size in the envelope"
                        }
                        Source::Peer { .. } => "was never sent",
                        Source::Pickup { .. } => {
                            "was not uploaded in this pickup session with the size in the envelope"
                        }
                    };
                    return Err(ServiceError::PartMissing { index: i, why });
                }
                None
            }
        };
        parts.push(NewPart {
            sha256,
            size: p.size,
            inline: data,
        });
    }

    // Every part must be encrypted to every recipient and to the sender (for Sent).
    let required: Vec<(&str, &Arc<Cert>, Arc<crate::service::CertFacts>)> = s
        .recipients
        .iter()
        .map(|r| (r.address.as_str(), &r.cert))
        .chain(std::iter::once((env.from.as_str(), &s.sender)))
        .map(|(a, c)| (a, c, ctx.cert_facts(c, now)))
        .collect();
    let compliance = required_compliance(ctx, source, s, now).await?;
    for (i, part) in parts.iter().enumerate() {
        let keys = ctx
            .part_recipients(part.inline.as_deref(), part.sha256)
            .await?
            .map_err(|e| ServiceError::NotEncrypted {
                index: i,
                error: e.to_string(),
            })?;
        let missing = crypto::missing_recipients_among(
            &keys,
            required
                .iter()
                .map(|(_, c, f)| (c.fingerprint(), f.encryption.as_slice())),
        );
        if !missing.is_empty() {
            let addresses = required
                .iter()
                .filter(|(_, c, _)| missing.contains(&c.fingerprint()))
                .map(|(a, _, _)| (*a).to_owned())
                .collect();
            return Err(ServiceError::MissingRecipientKey {
                index: i,
                addresses,
            });
        }
        // And to every compliance key the organisations' policy requires
        // (docs/compliance.md): ours, and the peered organisations' of the sender or
        // recipients.
        if let Some(key) = compliance.iter().find(|(_, c, f)| {
            !crypto::missing_recipients_among(&keys, [(c.fingerprint(), f.encryption.as_slice())])
                .is_empty()
        }) {
            return Err(ServiceError::MissingComplianceRecipient {
                index: i,
                domain: key.0.clone(),
            });
        }
    }
    Ok(parts)
}

/// The compliance keys a message from `source` must be encrypted to, with what the policy
/// says of each now: ours (`compliance::required`), and the peers' of a local sender's
/// remote recipients or of a peer's sender.
async fn required_compliance(
    ctx: &Context,
    source: &Source<'_>,
    s: &Screened,
    now: SystemTime,
) -> Result<Vec<(String, Arc<Cert>, Arc<crate::service::CertFacts>)>, ServiceError> {
    let peers: Vec<&str> = match source {
        Source::Local { .. } => s
            .recipients
            .iter()
            .filter(|r| r.account.is_none() && r.pickup.is_none())
            .map(|r| crate::domain_of(&r.address))
            .collect(),
        Source::Peer { domain, .. } => vec![*domain],
        Source::Pickup { .. } => Vec::new(),
    };
    Ok(crate::service::compliance::required(ctx, &peers, now)
        .await?
        .into_iter()
        .map(|k| {
            let facts = ctx.cert_facts(&k.cert, now);
            (k.domain, k.cert, facts)
        })
        .collect())
}

/// Step 7: one commit, as the source's kind of message.
async fn store(
    ctx: &Context,
    source: &Source<'_>,
    mut s: Screened,
    msg: &Incoming<'_>,
    parts: Vec<NewPart>,
    evidence: Vec<crate::storage::evidence::NewEvidence>,
    now: SystemTime,
) -> Result<Accepted, ServiceError> {
    let unix = crate::service::unix(now);
    // Checked against the limit (so without overflow) by check_envelope.
    let size = s.env.total_size().unwrap_or(u64::MAX);
    let local: Vec<(i64, String)> = s
        .recipients
        .iter()
        .filter_map(|r| r.account.map(|id| (id, r.address.clone())))
        .collect();
    match source {
        Source::Local { account } => {
            let routes = remote_routes(&s.recipients);
            let mut pickups = Vec::new();
            let mut links = std::collections::HashMap::new();
            for r in s.recipients.iter_mut() {
                let Some(pickup) = r.pickup.take() else {
                    continue;
                };
                let (mut pickup, token) = *pickup;
                let link = crate::service::pickup::link(ctx, &token);
                if ctx.notifier.is_configured() {
                    let mail = notification(ctx, account, &s.env.message_id, &r.address, &link);
                    pickup.notification = Some(mail(false, unix)?);
                }
                links.insert(r.address.clone(), link);
                pickups.push(pickup);
            }
            // A guest recipient is told by mail that a message waits in their mailbox.
            let guests = s
                .recipients
                .iter()
                .filter(|r| is_guest_recipient(ctx, r))
                .map(|r| r.address.as_str());
            let notifications = guest_notifications(ctx, account, &s.env.message_id, guests, unix)?;
            let by_mail: Vec<(String, DeliveryMode)> = s
                .external
                .iter()
                .map(|x| (x.address.clone(), x.mode))
                .collect();
            let external = std::mem::take(&mut s.external)
                .into_iter()
                .map(|x| external_mail(ctx, &s.env, x))
                .collect::<Result<Vec<_>, _>>()?;
            let notifying = !notifications.is_empty()
                || !external.is_empty()
                || pickups.iter().any(|p| p.notification.is_some());
            let federation = &ctx.config.federation;
            let outcome = ctx
                .store
                .submit(
                    NewMessage {
                        id: s.env.message_id.clone(),
                        sender_account: account.id,
                        sender_address: account.address.clone(),
                        envelope: msg.envelope.to_owned(),
                        signature: msg.signature.to_owned(),
                        size,
                        parts,
                        recipients: local,
                        remote: routes.clone(),
                        remote_expires_at: unix + federation.delivery_expiry_secs as i64,
                        remote_backlog_max: federation.max_backlog_per_peer,
                        pickups,
                        notifications,
                        notify_max_queued: ctx.notifier.max_queued(),
                        external,
                        arrival: None,
                        evidence,
                    },
                    unix,
                )
                .await?;
            if let (SubmitOutcome::Accepted { .. }, Some(link)) = (&outcome, ctx.federation.get()) {
                for route in &routes {
                    link.wake(&route.domain);
                }
            }
            if notifying && matches!(outcome, SubmitOutcome::Accepted { .. }) {
                ctx.notifier.wake();
            }
            let (accepted_at, duplicate) = match outcome {
                SubmitOutcome::Accepted {
                    accepted_at,
                    unlinked,
                } => {
                    // Uploaded external copies now live in the queued mail.
                    for sha in unlinked {
                        if let Err(e) = ctx.blobs.remove(sha).await {
                            tracing::warn!(error = %e, "could not remove a used-up upload");
                        }
                    }
                    (accepted_at, false)
                }
                SubmitOutcome::AlreadyAccepted { accepted_at } => (accepted_at, true),
            };
            let order = |a: &String| s.env.to.iter().position(|t| t == a);
            let mut recipients: Vec<(String, Delivery)> = by_mail
                .into_iter()
                .map(|(a, mode)| (a, Delivery::Mail { mode }))
                .collect();
            recipients.extend(s.recipients.into_iter().map(|r| {
                // Local recipients have it now; others once their node's receipt is back.
                let d = match (r.account, links.remove(&r.address)) {
                    (Some(_), _) => Delivery::Delivered,
                    (None, Some(link)) => Delivery::Pickup {
                        link: (!duplicate).then_some(link),
                    },
                    (None, None) => Delivery::Queued,
                };
                (r.address, d)
            }));
            recipients.sort_by_key(|(a, _)| order(a));
            Ok(Accepted {
                message_id: s.env.message_id,
                accepted_at,
                duplicate,
                recipients,
            })
        }
        Source::Peer {
            domain,
            node_sig,
            proof,
            ..
        } => {
            let outcome = ctx
                .store
                .receive_remote(
                    RemoteMessage {
                        id: s.env.message_id.clone(),
                        peer_domain: (*domain).to_owned(),
                        sender: s.env.from.clone(),
                        envelope: msg.envelope.to_owned(),
                        signature: msg.signature.to_owned(),
                        size,
                        parts,
                        all_recipients: s.env.to.clone(),
                        recipients: local,
                        node_sig: node_sig.clone(),
                        node_proof: proof.clone(),
                        evidence,
                    },
                    unix,
                )
                .await?;
            let duplicate = outcome == crate::storage::ReceiveOutcome::Duplicate;
            let delivered: Vec<(String, Delivery)> = s
                .recipients
                .iter()
                .map(|r| (r.address.clone(), Delivery::Delivered))
                .collect();
            let id = s.env.message_id.clone();
            let mut accepted = s.answered(id, unix);
            accepted.duplicate = duplicate;
            accepted.recipients.splice(0..0, delivered);
            Ok(accepted)
        }
        Source::Pickup { pickup } => {
            let r = s
                .recipients
                .first()
                .ok_or_else(|| ServiceError::internal("a reply without its recipient"))?;
            let account = r
                .account
                .ok_or_else(|| ServiceError::internal("a reply to no account"))?;
            let max = ctx.config.pickup.max_replies;
            let outcome = ctx
                .store
                .pickup_reply(
                    PickupReply {
                        pickup_id: pickup.id,
                        message_id: s.env.message_id.clone(),
                        sender_address: s.env.from.clone(),
                        envelope: msg.envelope.to_owned(),
                        signature: msg.signature.to_owned(),
                        size,
                        parts,
                        recipient: (account, r.address.clone()),
                        max_replies: max,
                        evidence,
                    },
                    unix,
                )
                .await?;
            let (accepted_at, duplicate) = match outcome {
                ReplyOutcome::Accepted { accepted_at } => (accepted_at, false),
                ReplyOutcome::AlreadyAccepted { accepted_at } => (accepted_at, true),
                ReplyOutcome::TooManyReplies => return Err(ServiceError::TooManyReplies { max }),
                ReplyOutcome::NotOpen(PickupState::Locked) => {
                    return Err(ServiceError::PickupLocked);
                }
                ReplyOutcome::NotOpen(PickupState::Expired) => {
                    return Err(ServiceError::PickupExpired);
                }
                ReplyOutcome::NotOpen(_) => return Err(ServiceError::PickupWithdrawn),
            };
            Ok(Accepted {
                message_id: s.env.message_id,
                accepted_at,
                duplicate,
                recipients: vec![(r.address.clone(), Delivery::Delivered)],
            })
        }
    }
}

/// The notification mail of `account`'s message to `recipient`, opened at `link`: for a guest
/// (`true`: the link is the login) or a pickup recipient (`false`), built at a given time.
fn notification<'a>(
    ctx: &'a Context,
    account: &'a Account,
    message_id: &'a str,
    recipient: &'a str,
    link: &'a str,
) -> impl FnOnce(bool, i64) -> Result<crate::storage::notify::NewNotification, ServiceError> + 'a {
    move |guest, now| {
        let n = crate::notify::Notification {
            message_id: Some(message_id),
            sender: &account.address,
            sender_name: account.name.as_deref().unwrap_or(""),
            organisation: "",
            recipient,
            link,
        };
        let mail = if guest {
            ctx.notifier.render_for_guest(&n, now)
        } else {
            ctx.notifier.render(&n, now)
        };
        mail.map_err(ServiceError::internal)
    }
}

/// The mail that carries an external copy, rendered by the node (docs/mail.md, "The outer
/// mail"), ready to queue with the message.
/// The queued mail that carries an outside recipient's external copy (the submission
/// gateway's copies too).
pub(super) fn external_mail(
    ctx: &Context,
    env: &Envelope,
    x: External,
) -> Result<crate::storage::NewExternal, ServiceError> {
    let mail_id = format!("<{}@{}>", env.message_id, ctx.config.domain);
    let outer = crate::notify::external::Outer {
        from: &env.from,
        to: &env.to,
        date: env.created_at,
        mail_id: &mail_id,
        copy: &x.copy,
    };
    let (kind, mail) = match x.mode {
        DeliveryMode::Openpgp => (
            crate::storage::notify::NotificationKind::Openpgp,
            crate::notify::external::openpgp_mail(&outer).map_err(ServiceError::internal)?,
        ),
        DeliveryMode::Smime => (
            crate::storage::notify::NotificationKind::Smime,
            crate::notify::external::smime_mail(&outer).map_err(ServiceError::internal)?,
        ),
        DeliveryMode::Tls => {
            let tls = ctx
                .config
                .delivery
                .pin(crate::domain_of(&x.address))
                .and_then(|p| p.tls)
                .ok_or_else(|| ServiceError::ModeUnavailable {
                    address: x.address.clone(),
                    mode: x.mode,
                })?;
            let mail = ctx
                .notifier
                .render_transit(
                    &env.message_id,
                    &env.from,
                    &x.address,
                    &env.to,
                    env.created_at,
                    x.copy,
                    tls,
                )
                .map_err(|_| ServiceError::ModeUnavailable {
                    address: x.address.clone(),
                    mode: x.mode,
                })?;
            // The copy is kept only in the queue (shredded once sent or failed); the message
            // keeps its hash, as the signed envelope names it.
            return Ok(crate::storage::NewExternal {
                mail,
                address: x.address,
                mode: x.mode,
                sha256: x.sha256,
                copy: Vec::new(),
                uploaded: x.uploaded,
            });
        }
        mode => {
            return Err(ServiceError::ModeUnavailable {
                address: x.address,
                mode,
            });
        }
    };
    if !ctx.notifier.is_configured() {
        // No way out for mail (no relay): the recipient cannot be reached this way.
        return Err(ServiceError::ModeUnavailable {
            address: x.address,
            mode: x.mode,
        });
    }
    Ok(crate::storage::NewExternal {
        mail: crate::storage::notify::NewNotification {
            kind,
            message_id: Some(env.message_id.clone()),
            sender: env.from.clone(),
            recipient: x.address.clone(),
            from: env.from.clone(),
            mail_id,
            mail,
            tls: None,
            transit: None,
        },
        address: x.address,
        mode: x.mode,
        sha256: x.sha256,
        copy: x.copy,
        uploaded: x.uploaded,
    })
}

/// A local recipient of another domain than ours: a guest (docs/pickup.md, "Guests").
fn is_guest_recipient(ctx: &Context, r: &Recipient) -> bool {
    r.account.is_some() && crate::domain_of(&r.address) != ctx.config.domain
}

/// The notification mail telling each guest among a message's local recipients that it waits
/// for them (with the login link), when mail can go out at all.
pub(super) fn guest_notifications<'a>(
    ctx: &Context,
    account: &Account,
    message_id: &str,
    guests: impl Iterator<Item = &'a str>,
    now: i64,
) -> Result<Vec<crate::storage::notify::NewNotification>, ServiceError> {
    if !ctx.notifier.is_configured() {
        return Ok(Vec::new());
    }
    let login = format!("{}/#/mail/inbox", ctx.public_url());
    guests
        .map(|g| notification(ctx, account, message_id, g, &login)(true, now))
        .collect()
}

/// Remote recipients grouped by destination organisation.
fn remote_routes(recipients: &[Recipient]) -> Vec<RemoteRoute> {
    let mut routes: Vec<RemoteRoute> = Vec::new();
    for r in recipients
        .iter()
        .filter(|r| r.account.is_none() && r.pickup.is_none())
    {
        let domain = crate::domain_of(&r.address);
        match routes.iter_mut().find(|x| x.domain == domain) {
            Some(x) => x.addresses.push(r.address.clone()),
            None => routes.push(RemoteRoute {
                domain: domain.to_owned(),
                addresses: vec![r.address.clone()],
            }),
        }
    }
    routes
}
