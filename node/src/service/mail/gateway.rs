//! The submission gateway (docs/mail.md "Submission gateway"): a user's ordinary mail program
//! sends through the node, authenticated by an app password, and the node seals the mail for
//! each recipient in the mode the policy picks. The rules are the ones every door holds, taken
//! from where they live: recipients ([`recipients`](super::recipients), guests'
//! [`check_recipients`](crate::service::guests::check_recipients), the modes of
//! [`resolve_all`](super::resolve_all), revocation), the queued mail of an external copy
//! ([`external_mail`](super::accept::external_mail)), a mail's form
//! ([`well_formed`](super::smtp::well_formed), [`line_fault`](super::smtp::line_fault)), and
//! the one commit ([`MailStore::submit`](crate::storage::MailStore::submit)).
//!
//! What differs from a client's submission, and why:
//! - the node sees the content: the plaintext is held in memory only (zeroised when dropped),
//!   never written; what is stored is part 0 encrypted to the sender and every local
//!   recipient (the sender's Sent copy and their inbox copies: one message, as a client's);
//! - there is no signature of the sender's own (the node holds no user's secret key): the
//!   message carries no envelope, and its `Arrival` says `submitted`, so readers show it came
//!   from the sender's mail program through the gateway, vouched for by this node;
//! - recipients whose mode needs the sender's own key are refused at `RCPT`
//!   ([`ServiceError::GatewayMode`]): a peered organisation's users (the receiving node checks
//!   the sender's signature) and pickup (an unlock code the sender passes on);
//! - external copies are made here: OpenPGP to the recipient's key and the sender's
//!   (unsigned), S/MIME to the recipient's certificate (AES-256-CBC, as the clients make it;
//!   unsigned even when the organisation runs an S/MIME CA: the signing key is the user's
//!   client's, [`crate::proto::SMIME_GATEWAY_UNSIGNED`]), enforced TLS to the node's transit
//!   key.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use mail_parser::{HeaderName, MessageParser};
use sequoia_openpgp::Cert;
use sequoia_openpgp::serialize::stream::{Encryptor, LiteralWriter, Message, Recipient};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::accept::{External, external_mail, guest_notifications};
use super::smtp::{line_fault, stored_part, well_formed};
use super::{Resolved, is_revoked, recipients, resolve_all};
use crate::crypto;
use crate::proto::crypto::smime::{SmimeCipher, encrypt as smime_encrypt};
use crate::proto::{Arrival, DeliveryMode, Envelope, EnvelopePart, ExternalCopy};
use crate::service::{Context, ServiceError};
use crate::storage::{Account, NewMessage};

/// The rule for one `RCPT TO` of an authenticated user: an address the user may write to,
/// reached in a mode the gateway can carry out. Returns the address in its normal form.
pub async fn gateway_recipient(
    ctx: &Context,
    account: &Account,
    address: &str,
    now: SystemTime,
) -> Result<String, ServiceError> {
    let mut resolved = resolved(ctx, account, &[address.to_owned()], now).await?;
    let (_, r, _) = resolved.pop().ok_or(ServiceError::NoRecipients)?;
    Ok(r.address)
}

/// Every recipient resolved now, each in a mode the gateway can carry out, none revoked.
async fn resolved(
    ctx: &Context,
    account: &Account,
    to: &[String],
    now: SystemTime,
) -> Result<Vec<Resolved>, ServiceError> {
    let to = recipients(&ctx.config.limits, to)?;
    crate::service::guests::check_recipients(ctx, account, to.iter().map(String::as_str)).await?;
    let resolved = resolve_all(ctx, None, account, &to, now).await?;
    if let Some((_, r, _)) = resolved
        .iter()
        .find(|(_, r, _)| matches!(r.mode, DeliveryMode::Remote | DeliveryMode::Pickup))
    {
        return Err(ServiceError::GatewayMode {
            address: r.address.clone(),
            mode: r.mode,
        });
    }
    let revoked: Vec<String> = resolved
        .iter()
        .filter(|(_, r, cert)| {
            r.mode != DeliveryMode::Tls && cert.as_ref().is_some_and(|c| is_revoked(ctx, c))
        })
        .map(|(_, r, _)| r.address.clone())
        .collect();
    if !revoked.is_empty() {
        return Err(ServiceError::RecipientRevoked { addresses: revoked });
    }
    Ok(resolved)
}

/// A mail streaming in from a user's mail program: held in memory only (never on disk),
/// bounded by the limit, zeroised when dropped.
pub struct GatewayMail {
    raw: Zeroizing<Vec<u8>>,
    limit: u64,
    malformed: Option<&'static str>,
}

impl GatewayMail {
    pub fn new(limit: u64) -> GatewayMail {
        GatewayMail {
            raw: Zeroizing::new(Vec::new()),
            limit,
            malformed: None,
        }
    }

    /// The next bytes of the mail (dot-unstuffed); past the limit, `too_large`.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), ServiceError> {
        let size = (self.raw.len() as u64).saturating_add(bytes.len() as u64);
        if size > self.limit {
            return Err(ServiceError::TooLarge { limit: self.limit });
        }
        let start = self.raw.len();
        if self.raw.capacity() < self.raw.len() + bytes.len() {
            // Grown by hand, so no copy of the plaintext is left behind unzeroised.
            let mut grown = Zeroizing::new(Vec::with_capacity(
                (self.raw.len() + bytes.len()).max(self.raw.capacity() * 2),
            ));
            grown.extend_from_slice(&self.raw);
            self.raw = grown;
        }
        self.raw.extend_from_slice(bytes);
        if self.malformed.is_none() {
            self.malformed = line_fault(&self.raw, start);
        }
        Ok(())
    }
}

/// What the gateway did with a mail: its message ID and each recipient's mode.
#[derive(Debug)]
pub struct Submitted {
    pub message_id: String,
    pub recipients: Vec<(String, DeliveryMode)>,
}

/// Seals and stores a mail `account` submitted for `to` (the accepted `RCPT`s): every rule
/// again (recipients are resolved anew: what was true at `RCPT` is checked at the commit), the
/// mail's form, its `From` (the user's own address), then one commit. A refusal stores
/// nothing.
pub async fn gateway_submit(
    ctx: &Context,
    account: &Account,
    to: &[String],
    mail: GatewayMail,
    now: SystemTime,
) -> Result<Submitted, ServiceError> {
    if let Some(why) = mail.malformed {
        return Err(ServiceError::MalformedMail(why));
    }
    let entity = {
        let parsed = MessageParser::default().parse(&mail.raw[..]);
        well_formed(parsed.as_ref()).map_err(ServiceError::MalformedMail)?;
        let parsed = parsed.expect("checked by well_formed");
        let from = parsed
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .and_then(crate::normalize_address);
        if from.as_deref() != Some(account.address.as_str()) {
            return Err(ServiceError::SenderMismatch {
                speaker: format!("the mail program logged in as {}", account.address),
                sender: from.unwrap_or_default(),
            });
        }
        without_bcc(&mail.raw, &parsed)
    };
    let resolved = resolved(ctx, account, to, now).await?;
    let sender = ctx.account_cert(account)?;
    let unix = crate::service::unix(now);
    let message_id = crate::new_message_id();
    let expires_at = unix + ctx.config.limits.message_id_ttl_secs as i64;
    ctx.store
        .issue_message_id(account.id, &message_id, expires_at, unix)
        .await?;

    // Part 0: the mail for the sender, every local recipient and the compliance key.
    let mut local: Vec<(i64, String)> = Vec::new();
    let mut readers: Vec<Arc<Cert>> = vec![sender.clone()];
    let mut by_mail = Vec::new();
    for (id, r, cert) in resolved {
        match (r.mode, id, cert) {
            (DeliveryMode::Local, Some(id), Some(cert)) => {
                local.push((id, r.address));
                readers.push(cert);
            }
            (DeliveryMode::Openpgp | DeliveryMode::Smime | DeliveryMode::Tls, _, cert) => {
                by_mail.push((r, cert));
            }
            (mode, _, _) => {
                return Err(ServiceError::GatewayMode {
                    address: r.address,
                    mode,
                });
            }
        }
    }
    // And the organisation's compliance key, when one is installed (docs/compliance.md).
    if let Some(key) = crate::service::compliance::current(ctx).await? {
        readers.push(key.cert.clone());
    }
    let part0 = encrypt_to(ctx, &readers, &entity, now)?;
    let part = stored_part(ctx, part0).await?;

    let mut externals = Vec::with_capacity(by_mail.len());
    for (r, cert) in by_mail {
        let copy = match (r.mode, cert) {
            (DeliveryMode::Openpgp, Some(cert)) => {
                encrypt_to(ctx, &[cert, sender.clone()], &entity, now)?
            }
            (DeliveryMode::Tls, Some(transit)) => encrypt_to(ctx, &[transit], &entity, now)?,
            (DeliveryMode::Smime, _) => smime_encrypt(&entity, &r.cert, SmimeCipher::Aes256Cbc)
                .map_err(|e| ServiceError::ExternalCopyMalformed {
                    address: r.address.clone(),
                    mode: DeliveryMode::Smime,
                    why: e.to_string(),
                })?,
            (mode, _) => {
                return Err(ServiceError::ModeUnavailable {
                    address: r.address,
                    mode,
                });
            }
        };
        externals.push(External {
            sha256: Sha256::digest(&copy).into(),
            address: r.address,
            mode: r.mode,
            copy,
            uploaded: false,
        });
    }
    drop(entity);

    // The envelope the external mails are written from (never signed, never stored).
    let all: Vec<String> = local
        .iter()
        .map(|(_, a)| a.clone())
        .chain(externals.iter().map(|x| x.address.clone()))
        .collect();
    let env = Envelope {
        v: 1,
        message_id: message_id.clone(),
        from: account.address.clone(),
        to: all,
        created_at: unix,
        parts: vec![EnvelopePart {
            sha256: hex::encode(part.sha256),
            size: part.size,
        }],
        registered: Default::default(),
        pickup: BTreeMap::new(),
        external: externals
            .iter()
            .map(|x| (x.address.clone(), ExternalCopy::of(x.mode, &x.copy)))
            .collect(),
    };
    let modes: Vec<(String, DeliveryMode)> = local
        .iter()
        .map(|(_, a)| (a.clone(), DeliveryMode::Local))
        .chain(externals.iter().map(|x| (x.address.clone(), x.mode)))
        .collect();
    let external = externals
        .into_iter()
        .map(|x| external_mail(ctx, &env, x))
        .collect::<Result<Vec<_>, _>>()?;
    // Guests among the local recipients are told by mail, as for a client's message.
    let guests = local
        .iter()
        .map(|(_, a)| a.as_str())
        .filter(|a| crate::domain_of(a) != ctx.config.domain);
    let notifications = guest_notifications(ctx, account, &message_id, guests, unix)?;
    let notifying = !external.is_empty() || !notifications.is_empty();
    let arrival = Arrival {
        encrypted: false,
        tls: true,
        spf: "none".into(),
        dkim: "none".into(),
        dmarc: "none".into(),
        mail_from: account.address.clone(),
        submitted: true,
    };
    let size = part.size;
    ctx.store
        .submit(
            NewMessage {
                id: message_id.clone(),
                sender_account: account.id,
                sender_address: account.address.clone(),
                envelope: String::new(),
                signature: String::new(),
                size,
                parts: vec![part],
                recipients: local,
                remote: Vec::new(),
                remote_expires_at: unix,
                remote_backlog_max: ctx.config.federation.max_backlog_per_peer,
                pickups: Vec::new(),
                notifications,
                notify_max_queued: ctx.notifier.max_queued(),
                external,
                arrival: Some(serde_json::to_string(&arrival).map_err(ServiceError::internal)?),
                evidence: Vec::new(),
            },
            unix,
        )
        .await?;
    if notifying {
        ctx.notifier.wake();
    }
    Ok(Submitted {
        message_id,
        recipients: modes,
    })
}

/// The mail without its `Bcc` header fields (RFC 5322 §3.6.3: blind recipients are not shown
/// to the others, and every copy here is the same entity).
fn without_bcc(raw: &[u8], parsed: &mail_parser::Message<'_>) -> Zeroizing<Vec<u8>> {
    let mut cut: Vec<(usize, usize)> = parsed
        .root_part()
        .headers()
        .iter()
        .filter(|h| h.name == HeaderName::Bcc)
        .map(|h| (h.offset_field as usize, h.offset_end as usize))
        .filter(|(a, b)| a < b && *b <= raw.len())
        .collect();
    cut.sort_unstable();
    let mut out = Zeroizing::new(Vec::with_capacity(raw.len()));
    let mut at = 0;
    for (start, end) in cut {
        if start < at {
            continue;
        }
        out.extend_from_slice(&raw[at..start]);
        at = end;
    }
    out.extend_from_slice(&raw[at..]);
    out
}

/// `plaintext` as an OpenPGP message (unsigned, SEIPD as every recipient key reads) to every
/// valid encryption key of `certs`.
fn encrypt_to(
    ctx: &Context,
    certs: &[Arc<Cert>],
    plaintext: &[u8],
    now: SystemTime,
) -> Result<Vec<u8>, ServiceError> {
    let mut keys: Vec<Recipient> = Vec::new();
    for cert in certs {
        let before = keys.len();
        keys.extend(
            crypto::encryption_keys(cert, &ctx.policy, now)
                .into_iter()
                .flatten()
                .map(Recipient::from),
        );
        if keys.len() == before {
            return Err(ServiceError::internal(format!(
                "no usable encryption key in {}",
                cert.fingerprint()
            )));
        }
    }
    let mut out = Vec::with_capacity(plaintext.len() + 1024);
    let message = Message::new(&mut out);
    let message = Encryptor::for_recipients(message, keys)
        .build()
        .map_err(ServiceError::internal)?;
    let mut literal = LiteralWriter::new(message)
        .build()
        .map_err(ServiceError::internal)?;
    std::io::Write::write_all(&mut literal, plaintext).map_err(ServiceError::internal)?;
    literal.finalize().map_err(ServiceError::internal)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcc_fields_are_cut_and_nothing_else() {
        let raw = b"From: a@x.test\r\nBcc: secret@y.test,\r\n  other@y.test\r\nTo: b@x.test\r\nBCC: s2@y.test\r\nSubject: hi\r\n\r\nBcc: in the body stays\r\n";
        let parsed = MessageParser::default().parse(&raw[..]).unwrap();
        let out = without_bcc(raw, &parsed);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "From: a@x.test\r\nTo: b@x.test\r\nSubject: hi\r\n\r\nBcc: in the body stays\r\n"
        );
    }

    #[test]
    fn the_mail_is_bounded_and_bare_line_ends_are_seen() {
        let mut m = GatewayMail::new(10);
        m.write(b"12345").unwrap();
        assert!(matches!(
            m.write(b"678901"),
            Err(ServiceError::TooLarge { limit: 10 })
        ));
        let mut m = GatewayMail::new(100);
        m.write(b"a\r\nb\nc").unwrap();
        assert!(m.malformed.is_some());
    }
}
