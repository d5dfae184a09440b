//! Pickup delivery to outside recipients (docs/pickup.md): the checks on a sender's pickup
//! seals (called by [`accept`](super::mail::accept)), and everything after: opening a link
//! (changes nothing), unlocking with the Message Unlock Code's verifier (per-pickup limit, then
//! locked), the pickup session's reads, the sender's withdrawal and re-lock, and expiry.
//!
//! The node never holds anything that opens a pickup: the link's token and the session are
//! stored as SHA-256, the verifier as its slow login-style hash, the pickup key locked under the
//! unlock code. No token, verifier or session reaches a log or an error. Per-IP limits are the
//! door's (it knows the address); the per-pickup limit is here.

use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sequoia_openpgp::Cert;
use sha2::{Digest, Sha256};

use super::{Context, ServiceError};
use crate::proto::{
    DeliveryMode, Envelope, EnvelopeResponse, KdfParams, PickupContinuation, PickupInfo,
    PickupSeal, PickupUnlocked, ResolvedRecipient,
};
use crate::storage::pickup::{
    Attempt, AttemptOutcome, NewPickup, PickupRecord, PickupState, SenderChange, SenderOutcome,
};
use crate::storage::{Account, BlobStore, PartData};

/// Largest armored key or key message a seal may carry.
const MAX_KEY_TEXT: usize = 64 * 1024;

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The link of a pickup token: the token in the fragment, which browsers never send.
pub fn link(ctx: &Context, token: &[u8; 32]) -> String {
    format!(
        "{}/pickup#{}",
        ctx.public_url(),
        URL_SAFE_NO_PAD.encode(token)
    )
}

/// The verdict shown for an outside address in an envelope answer.
pub fn verdict(address: &str) -> crate::proto::VerdictView {
    crate::proto::VerdictView {
        fingerprint: String::new(),
        address: address.to_owned(),
        level: "none".into(),
        amount: 0,
        why_not: Some("pickup".into()),
        explanation: vec!["no key: reached by pickup with a Message Unlock Code".into()],
    }
}

/// A checked seal: the pickup key, what is stored, and the link's token.
pub struct CheckedSeal {
    pub address: String,
    pub cert: Arc<Cert>,
    pub pickup: NewPickup,
    pub token: [u8; 32],
}

fn b64_len(field: &str, v: &str, len: std::ops::RangeInclusive<usize>) -> Result<Vec<u8>, String> {
    let bytes = STANDARD
        .decode(v)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(v))
        .map_err(|_| format!("{field} is not base64"))?;
    if !len.contains(&bytes.len()) {
        return Err(format!(
            "{field} must be {} to {} bytes",
            len.start(),
            len.end()
        ));
    }
    Ok(bytes)
}

fn verifier_of(v: &str) -> Result<[u8; 32], String> {
    Ok(b64_len("verifier", v, 32..=32)?
        .try_into()
        .expect("length checked"))
}

/// The parts of a seal that a re-lock sends again: the locked key (of `cert`), salt, KDF and
/// verifier. Returns the KDF as stored (JSON) and the verifier.
fn check_lock(
    cert: &Cert,
    locked_key: &str,
    salt: &str,
    kdf: &KdfParams,
    verifier: &str,
) -> Result<(String, [u8; 32]), String> {
    crate::crypto::check_wrapped_key(locked_key, cert).map_err(|e| format!("locked_key: {e}"))?;
    b64_len("salt", salt, 16..=64)?;
    kdf.validate().map_err(|e| format!("kdf: {e}"))?;
    let verifier = verifier_of(verifier)?;
    Ok((
        serde_json::to_string(kdf).expect("KDF parameters serialise"),
        verifier,
    ))
}

/// Checks the seals of a local submission: exactly one per pickup recipient (`pickup`: those
/// the envelope resolved to pickup), each for the key the signed envelope names, its secret
/// locked, its sender's copy encrypted to the sender, well-formed derivation values and an
/// expiry within the organisation's maximum; hashes each verifier.
pub async fn check_seals(
    ctx: &Context,
    env: &Envelope,
    pickup: &[String],
    seals: &[PickupSeal],
    continuations: &[PickupContinuation],
    sender: &Arc<Cert>,
    now: SystemTime,
) -> Result<Vec<CheckedSeal>, ServiceError> {
    let env_keys: Vec<&String> = env.pickup.keys().collect();
    let mut wanted: Vec<&String> = pickup.iter().collect();
    wanted.sort();
    if env_keys != wanted {
        return Err(ServiceError::InvalidEnvelope(
            "the envelope's pickup map must name every pickup recipient and no one else".into(),
        ));
    }
    let mut given: Vec<&str> = seals
        .iter()
        .map(|s| s.address.as_str())
        .chain(continuations.iter().map(|c| c.address.as_str()))
        .collect();
    let count = given.len();
    given.sort();
    given.dedup();
    if given.len() != count || given != wanted.iter().map(|a| a.as_str()).collect::<Vec<_>>() {
        let address = given
            .iter()
            .find(|a| !pickup.iter().any(|p| p == *a))
            .map(|a| (*a).to_owned())
            .or_else(|| {
                pickup
                    .iter()
                    .find(|a| !given.contains(&a.as_str()))
                    .cloned()
            })
            .unwrap_or_default();
        return Err(ServiceError::InvalidPickupSeal {
            address,
            why: "there must be exactly one seal or continuation for each pickup recipient".into(),
        });
    }
    let p = &ctx.config.pickup;
    let unix = super::unix(now);
    let expiry = |address: &str, days: Option<u32>| {
        let days = days.unwrap_or(p.default_expiry_days);
        let bad = |why: String| ServiceError::InvalidPickupSeal {
            address: address.to_owned(),
            why,
        };
        if days == 0 || days > p.max_expiry_days {
            return Err(bad(format!(
                "expires_in_days must be 1 to {}",
                p.max_expiry_days
            )));
        }
        unix.checked_add(i64::from(days) * 86_400)
            .ok_or_else(|| bad("expiry out of range".into()))
    };
    let mut out = Vec::with_capacity(count);
    for c in continuations {
        out.push(
            check_continuation(ctx, env, c, expiry(&c.address, c.expires_in_days)?, now).await?,
        );
    }
    let sender_keys = ctx.cert_facts(sender, now).encryption.clone();
    for seal in seals {
        let bad = |why: String| ServiceError::InvalidPickupSeal {
            address: seal.address.clone(),
            why,
        };
        if [&seal.cert, &seal.locked_key, &seal.key_for_sender]
            .iter()
            .any(|t| t.len() > MAX_KEY_TEXT)
        {
            return Err(bad("a key text is larger than 64 KiB".into()));
        }
        let cert = ctx
            .parse_cert(&seal.cert)
            .map_err(|e| bad(format!("cert: {e}")))?;
        let fingerprint = cert.fingerprint().to_hex();
        if !env.pickup[&seal.address].eq_ignore_ascii_case(&fingerprint) {
            return Err(bad(
                "cert is not the pickup key the signed envelope names".into()
            ));
        }
        let names_recipient = cert.userids().any(|u| {
            u.userid()
                .email_normalized()
                .ok()
                .flatten()
                .is_some_and(|e| e == seal.address)
        });
        if !names_recipient || ctx.cert_facts(&cert, now).encryption.is_empty() {
            return Err(bad(
                "cert must be a valid key with an encryption subkey and the recipient's address"
                    .into(),
            ));
        }
        let (kdf, verifier) = check_lock(
            &cert,
            &seal.locked_key,
            &seal.salt,
            &seal.kdf,
            &seal.verifier,
        )
        .map_err(bad)?;
        let for_sender = crate::crypto::pkesk_recipients_of_bytes(seal.key_for_sender.as_bytes())
            .map_err(|e| bad(format!("key_for_sender: {e}")))?;
        if !for_sender
            .iter()
            .any(|h| sender_keys.iter().any(|k| k.aliases(h)))
        {
            return Err(bad(
                "key_for_sender must be encrypted to the sender's key".into()
            ));
        }
        let expires_at = expiry(&seal.address, seal.expires_in_days)?;
        let token: [u8; 32] = rand::random();
        out.push(CheckedSeal {
            address: seal.address.clone(),
            cert,
            token,
            pickup: NewPickup {
                address: seal.address.clone(),
                token_hash: sha256(&token),
                fingerprint,
                cert: seal.cert.clone(),
                locked_key: seal.locked_key.clone(),
                key_for_sender: seal.key_for_sender.clone(),
                salt: seal.salt.clone(),
                kdf,
                verifier_hash: super::credentials::hash_verifier(ctx, verifier).await?,
                expires_at,
                notification: None,
                continues: None,
            },
        });
    }
    Ok(out)
}

/// A continuation of the sender's live thread with `c.address`: the thread's key must be the
/// one the signed envelope names, and its unlock code not locked. The new pickup gets its own
/// token; its key material is copied from the thread's pickup in the commit.
async fn check_continuation(
    ctx: &Context,
    env: &Envelope,
    c: &PickupContinuation,
    expires_at: i64,
    now: SystemTime,
) -> Result<CheckedSeal, ServiceError> {
    let thread = ctx
        .store
        .live_thread(&env.from, &c.address, super::unix(now))
        .await?
        .ok_or_else(|| ServiceError::PickupThreadGone {
            address: c.address.clone(),
        })?;
    if thread.state == PickupState::Locked {
        return Err(ServiceError::PickupThreadLocked {
            address: c.address.clone(),
            message_id: thread.message_id,
        });
    }
    if !env.pickup[&c.address].eq_ignore_ascii_case(&thread.fingerprint) {
        return Err(ServiceError::InvalidPickupSeal {
            address: c.address.clone(),
            why: "the envelope names another key than the pickup thread's".into(),
        });
    }
    let cert = ctx
        .parse_cert(&thread.cert)
        .map_err(ServiceError::internal)?;
    let token: [u8; 32] = rand::random();
    Ok(CheckedSeal {
        address: c.address.clone(),
        cert,
        token,
        pickup: NewPickup {
            address: c.address.clone(),
            token_hash: sha256(&token),
            fingerprint: thread.fingerprint,
            cert: thread.cert,
            locked_key: String::new(),
            key_for_sender: String::new(),
            salt: String::new(),
            kdf: String::new(),
            verifier_hash: String::new(),
            expires_at,
            notification: None,
            continues: Some(thread.id),
        },
    })
}

/// A calendar date (UTC, `YYYY-MM-DD`) of a Unix time (Howard Hinnant's `civil_from_days`).
fn date(unix: i64) -> String {
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// An envelope answer's outside recipient, for `sender`: if a live pickup thread with them
/// exists, its key (the client encrypts to it and continues the thread: the same unlock code,
/// never plain mail); else unchanged (a new key and code).
pub async fn thread_recipient(
    ctx: &Context,
    sender: &str,
    r: &mut ResolvedRecipient,
    now: i64,
) -> Result<(), ServiceError> {
    if r.mode != DeliveryMode::Pickup {
        return Ok(());
    }
    let Some(thread) = ctx.store.live_thread(sender, &r.address, now).await? else {
        return Ok(());
    };
    r.fingerprint = thread.fingerprint.clone();
    r.cert = thread.cert.clone();
    r.verdict.fingerprint = thread.fingerprint.clone();
    r.verdict.why_not = Some("pickup_thread".into());
    r.verdict.explanation = vec![format!(
        "the key your client made for {} in your message of {}; they hold its unlock code",
        r.address,
        date(thread.created_at)
    )];
    r.pickup_thread = Some(crate::proto::PickupThreadRef {
        message_id: thread.message_id.clone(),
        created_at: thread.created_at,
        state: thread.state.as_str().into(),
        key_for_sender: thread.key_for_sender.clone().unwrap_or_default(),
    });
    if thread.state == PickupState::Locked {
        r.verdict.explanation.push(format!(
            "its unlock code is locked after too many wrong attempts: issue a new code for message {} before writing again",
            thread.message_id
        ));
    }
    Ok(())
}

/// `POST /pickup/envelope`: a reply's envelope answer. The only recipient is the pickup's
/// sender (with their key as this node holds it); the reply's sender is the outside address
/// with the pickup key; a message ID issued to this pickup.
pub async fn reply_envelope(
    ctx: &Context,
    pickup: &PickupRecord,
    now: i64,
) -> Result<EnvelopeResponse, ServiceError> {
    let account = ctx
        .store
        .account_by_address(&pickup.sender)
        .await?
        .filter(super::accounts::deliverable)
        .ok_or_else(|| ServiceError::UnknownRecipients {
            addresses: vec![pickup.sender.clone()],
        })?;
    let fingerprint = account.fingerprint.clone().unwrap_or_default();
    let message_id = crate::new_message_id();
    let expires_at = now.saturating_add(ctx.config.limits.message_id_ttl_secs as i64);
    ctx.store
        .issue_pickup_message_id(pickup.id, &message_id, expires_at, now)
        .await?;
    let view = |address: &str, fingerprint: &str, explanation: String| crate::proto::VerdictView {
        fingerprint: fingerprint.to_owned(),
        address: address.to_owned(),
        level: String::new(),
        amount: 0,
        why_not: None,
        explanation: vec![explanation],
    };
    let compliance =
        super::compliance::for_envelope(ctx, &[], crate::service::time_of(now)).await?;
    Ok(EnvelopeResponse {
        message_id,
        expires_at,
        sender: ResolvedRecipient {
            address: pickup.address.clone(),
            fingerprint: pickup.fingerprint.clone(),
            cert: pickup.cert.clone(),
            mode: DeliveryMode::Pickup,
            why: "your pickup key".into(),
            key_source: None,
            sees_content: false,
            pickup_thread: None,
            verdict: view(
                &pickup.address,
                &pickup.fingerprint,
                "your pickup key: the unlock code you were given opens it".into(),
            ),
        },
        recipients: vec![ResolvedRecipient {
            address: account.address.clone(),
            verdict: view(
                &account.address,
                &fingerprint,
                format!("the key of {} held by their organisation", account.address),
            ),
            fingerprint,
            cert: account.cert.clone().unwrap_or_default(),
            mode: DeliveryMode::Local,
            why: format!("{} is a user of this organisation", account.address),
            key_source: None,
            sees_content: false,
            pickup_thread: None,
        }],
        compliance,
    })
}

/// Room left for a pickup session's next upload: `limits.max_pending_upload_bytes` less what
/// this pickup uploaded and no reply used yet.
pub async fn upload_room(ctx: &Context, pickup: &PickupRecord) -> Result<u64, ServiceError> {
    let pending = ctx.store.pickup_pending_upload_bytes(pickup.id).await?;
    Ok(ctx
        .config
        .limits
        .max_pending_upload_bytes
        .saturating_sub(pending))
}

/// `GET /pickup/thread`: every message of the session's thread still held (the sender's to
/// the outside address under this key, and the replies), oldest first.
pub async fn thread(
    ctx: &Context,
    pickup: &PickupRecord,
) -> Result<crate::proto::PickupThread, ServiceError> {
    let sender_cert = ctx
        .store
        .account_by_address(&pickup.sender)
        .await?
        .and_then(|a| a.cert)
        .unwrap_or_default();
    let messages = ctx
        .store
        .thread_messages(&pickup.sender, &pickup.address, pickup.thread)
        .await?
        .into_iter()
        .map(|m| crate::proto::PickupThreadMessage {
            message_id: m.message_id,
            from: m.sender,
            reply: m.reply,
            accepted_at: m.accepted_at,
            envelope: m.envelope,
            signature: m.signature,
            parts: m
                .parts
                .into_iter()
                .map(|(index, size, sha256)| crate::proto::PartView {
                    index,
                    size,
                    sha256: hex::encode(sha256),
                })
                .collect(),
        })
        .collect();
    Ok(crate::proto::PickupThread {
        address: pickup.address.clone(),
        sender: pickup.sender.clone(),
        sender_cert,
        cert: pickup.cert.clone(),
        messages,
    })
}

/// A part of a message of the session's thread (`GET /pickup/messages/{id}/parts/{index}`).
/// Part 0 of the session's own message the first time marks it read, as [`part`] does.
pub async fn thread_part(
    ctx: &Context,
    pickup: &PickupRecord,
    message_id: &str,
    index: u32,
    now: i64,
) -> Result<PartData, ServiceError> {
    if message_id == pickup.message_id {
        return part(ctx, pickup, index, now).await;
    }
    let in_thread = ctx
        .store
        .thread_messages(&pickup.sender, &pickup.address, pickup.thread)
        .await?
        .iter()
        .any(|m| m.message_id == message_id);
    if !in_thread {
        return Err(ServiceError::UnknownPart);
    }
    super::registered::check_pickup_release(ctx, pickup, message_id).await?;
    ctx.store
        .part(message_id, index)
        .await?
        .ok_or(ServiceError::UnknownPart)
}

/// The pickup a link's token is for, if it can still be opened.
async fn live_pickup(ctx: &Context, token: &str, now: i64) -> Result<PickupRecord, ServiceError> {
    // A malformed token is as unknown as a wrong one.
    let token = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .ok()
        .filter(|t| t.len() == 32)
        .ok_or(ServiceError::PickupNotFound)?;
    let p = ctx
        .store
        .pickup_by_token(sha256(&token))
        .await?
        .ok_or(ServiceError::PickupNotFound)?;
    match p.state {
        PickupState::Expired => Err(ServiceError::PickupExpired),
        PickupState::Withdrawn => Err(ServiceError::PickupWithdrawn),
        // Due but not yet swept: expired all the same.
        _ if p.expires_at <= now => Err(ServiceError::PickupExpired),
        _ => Ok(p),
    }
}

/// `POST /pickup/open`: what the page shows before the code is entered. Changes nothing.
/// Counted (`sealpost_pickups_total{event="opened"}`, or `failed`).
pub async fn open(ctx: &Context, token: &str, now: i64) -> Result<PickupInfo, ServiceError> {
    let result = open_page(ctx, token, now).await;
    ctx.metrics
        .pickup(if result.is_ok() { "opened" } else { "failed" });
    result
}

async fn open_page(ctx: &Context, token: &str, now: i64) -> Result<PickupInfo, ServiceError> {
    let p = live_pickup(ctx, token, now).await?;
    let sender_name = ctx
        .store
        .account_by_address(&p.sender)
        .await?
        .and_then(|a| a.name);
    let max = ctx.config.pickup.max_wrong;
    Ok(PickupInfo {
        state: p.state.as_str().into(),
        address: p.address,
        sender: p.sender,
        sender_name,
        organisation: ctx.config.domain.clone(),
        expires_at: p.expires_at,
        salt: p.salt.unwrap_or_default(),
        kdf: p
            .kdf
            .and_then(|k| serde_json::from_str(&k).ok())
            .unwrap_or(KdfParams::MIN),
        attempts_left: match p.state {
            PickupState::Open => max.saturating_sub(p.failures),
            _ => 0,
        },
    })
}

/// `POST /pickup/unlock`: the verifier against its hash. Right: a session and what the
/// browser needs to decrypt. Wrong: counted (and locked at `max_wrong`). Locked: refused even
/// with the right code. Counted: `unlocked` (and a `pickup` delivery), or `failed`.
pub async fn unlock(
    ctx: &Context,
    token: &str,
    verifier: &str,
    now: i64,
) -> Result<PickupUnlocked, ServiceError> {
    let result = unlock_with(ctx, token, verifier, now).await;
    match &result {
        Ok(u) => {
            ctx.metrics.pickup("unlocked");
            let age =
                crate::metrics::age_of_message_id(&u.message_id, crate::service::time_of(now));
            ctx.metrics.delivered("pickup", 1, age);
        }
        Err(_) => ctx.metrics.pickup("failed"),
    }
    result
}

async fn unlock_with(
    ctx: &Context,
    token: &str,
    verifier: &str,
    now: i64,
) -> Result<PickupUnlocked, ServiceError> {
    let p = live_pickup(ctx, token, now).await?;
    if p.state == PickupState::Locked {
        return Err(ServiceError::PickupLocked);
    }
    let verifier = verifier_of(verifier).map_err(ServiceError::InvalidRequest)?;
    let hash = p
        .verifier_hash
        .clone()
        .ok_or(ServiceError::PickupWithdrawn)?;
    // The login verifier's check (Argon2id, constant-time comparison).
    let right = super::credentials::check_verifier(ctx, Some(hash), verifier).await?;
    let session: [u8; 32] = rand::random();
    let session_expires_at = now.saturating_add(ctx.config.pickup.session_ttl_secs as i64);
    let attempt = if right {
        Attempt::Right {
            session_hash: sha256(&session),
            session_expires_at,
        }
    } else {
        Attempt::Wrong {
            max_wrong: ctx.config.pickup.max_wrong,
        }
    };
    match ctx.store.pickup_attempt(p.id, attempt, now).await? {
        AttemptOutcome::Wrong { attempts_left } => {
            Err(ServiceError::WrongUnlockCode { attempts_left })
        }
        AttemptOutcome::NotOpen(PickupState::Locked) => Err(ServiceError::PickupLocked),
        AttemptOutcome::NotOpen(PickupState::Expired) => Err(ServiceError::PickupExpired),
        AttemptOutcome::NotOpen(_) => Err(ServiceError::PickupWithdrawn),
        AttemptOutcome::Unlocked => {
            let (envelope, signature, parts) = ctx
                .store
                .pickup_message(&p.message_id)
                .await?
                .ok_or(ServiceError::PickupWithdrawn)?;
            let sender_cert = ctx
                .store
                .account_by_address(&p.sender)
                .await?
                .and_then(|a| a.cert)
                .unwrap_or_default();
            // Told to the outside recipient as to a member reading it (docs/compliance.md,
            // "Saying so"): derived from the stored ciphertext, so it claims no copy that is
            // not there.
            let compliance =
                super::compliance::copies_of(ctx, &p.message_id, super::time_of(now)).await?;
            let registered = super::registered::pickup_view(ctx, &p.address, &envelope).await?;
            Ok(PickupUnlocked {
                registered,
                session: URL_SAFE_NO_PAD.encode(session),
                session_expires_at,
                address: p.address,
                locked_key: p.locked_key.ok_or(ServiceError::PickupWithdrawn)?,
                cert: p.cert,
                message_id: p.message_id,
                envelope,
                signature,
                sender_cert,
                ca_fingerprint: ctx.ca.fingerprint().to_hex(),
                parts: parts
                    .into_iter()
                    .map(|(index, size, sha256)| crate::proto::PartView {
                        index,
                        size,
                        sha256: hex::encode(sha256),
                    })
                    .collect(),
                compliance,
            })
        }
    }
}

/// The pickup a bearer session is for (live, of an open pickup), or `pickup_session_invalid`.
pub async fn session(ctx: &Context, bearer: &str, now: i64) -> Result<PickupRecord, ServiceError> {
    let token = URL_SAFE_NO_PAD
        .decode(bearer.trim())
        .ok()
        .filter(|t| t.len() == 32)
        .ok_or(ServiceError::PickupSessionInvalid)?;
    ctx.store
        .pickup_session(sha256(&token), now)
        .await?
        .ok_or(ServiceError::PickupSessionInvalid)
}

/// A part of the session's message; part 0 (the sealed head) the first time marks it read.
/// Registered for the outside recipient: only once they accepted it (docs/evidence.md).
pub async fn part(
    ctx: &Context,
    pickup: &PickupRecord,
    index: u32,
    now: i64,
) -> Result<PartData, ServiceError> {
    super::registered::check_pickup_release(ctx, pickup, &pickup.message_id).await?;
    let data = ctx
        .store
        .part(&pickup.message_id, index)
        .await?
        .ok_or(ServiceError::UnknownPart)?;
    if index == 0 && pickup.read_at.is_none() {
        ctx.store.pickup_read(pickup.id, now).await?;
    }
    Ok(data)
}

/// The sender withdraws an unread pickup: shredded at once.
pub async fn withdraw(
    ctx: &Context,
    account: &Account,
    message_id: &str,
    address: &str,
    now: i64,
) -> Result<(), ServiceError> {
    sender_change(
        ctx,
        account,
        message_id,
        address,
        SenderChange::Withdraw,
        now,
    )
    .await?;
    // Registered for them and undecided: the evidence says they never decided.
    if let Some(m) = ctx.store.message(account.id, message_id).await? {
        super::registered::no_acceptance(
            ctx,
            address,
            &m.envelope,
            "withdrawn",
            super::time_of(now),
        )
        .await;
    }
    Ok(())
}

/// The sender issues a new unlock code for an unread (usually locked) pickup: the same pickup
/// key, locked anew.
pub async fn relock(
    ctx: &Context,
    account: &Account,
    message_id: &str,
    req: &crate::proto::PickupRelockRequest,
    now: i64,
) -> Result<(), ServiceError> {
    let p = ctx
        .store
        .pickups_of(message_id)
        .await?
        .into_iter()
        .find(|p| p.address == req.address && p.sender == account.address)
        .ok_or_else(|| ServiceError::UnknownPickup {
            address: req.address.clone(),
        })?;
    let cert = ctx.parse_cert(&p.cert).map_err(ServiceError::internal)?;
    let (kdf, verifier) = check_lock(&cert, &req.locked_key, &req.salt, &req.kdf, &req.verifier)
        .map_err(|why| ServiceError::InvalidPickupSeal {
            address: req.address.clone(),
            why,
        })?;
    let change = SenderChange::Relock {
        locked_key: req.locked_key.clone(),
        salt: req.salt.clone(),
        kdf,
        verifier_hash: super::credentials::hash_verifier(ctx, verifier).await?,
    };
    sender_change(ctx, account, message_id, &req.address, change, now).await
}

async fn sender_change(
    ctx: &Context,
    account: &Account,
    message_id: &str,
    address: &str,
    change: SenderChange,
    now: i64,
) -> Result<(), ServiceError> {
    match ctx
        .store
        .pickup_sender_change(message_id, &account.address, address, change, now)
        .await?
    {
        SenderOutcome::Done(orphans) => {
            remove_blobs(&*ctx.blobs, orphans).await;
            Ok(())
        }
        SenderOutcome::NotFound => Err(ServiceError::UnknownPickup {
            address: address.to_owned(),
        }),
        SenderOutcome::NotUnread(state) => Err(ServiceError::PickupNotUnread { state }),
    }
}

pub(super) async fn remove_blobs(blobs: &dyn BlobStore, orphans: Vec<[u8; 32]>) {
    for sha in orphans {
        // The rows are gone and committed; a file left behind is only wasted space.
        if let Err(e) = blobs.remove(sha).await {
            tracing::warn!(error = %e, "could not remove an unreferenced blob");
        }
    }
}

/// Expires every pickup whose time is up at `now` (crypto-shredding); returns how many. A
/// message registered for an expired pickup's recipient who never decided gets its
/// `NoAcceptanceByRecipient` record.
pub async fn sweep(ctx: &Context, now: i64) -> Result<usize, ServiceError> {
    let (expired, orphans) = ctx.store.expire_pickups(now).await?;
    remove_blobs(&*ctx.blobs, orphans).await;
    for e in &expired {
        if let Some(envelope) = &e.envelope {
            super::registered::no_acceptance(
                ctx,
                &e.pickup.address,
                envelope,
                "expired",
                super::time_of(now),
            )
            .await;
        }
    }
    Ok(expired.len())
}
