//! Mail that comes in over SMTP (docs/mail.md "SMTP in"): the rules the SMTP door applies
//! through the service layer, beside [`accept`](super::accept) and sharing its rules for
//! recipients ([`deliverable`](super::deliverable), [`is_revoked`](super::is_revoked)).
//!
//! - [`smtp_recipient`]: a `RCPT TO` is one of this node's users or guests who can receive
//!   (enrolled, active, key not revoked); anyone else is `unknown_recipient`, the same answer
//!   for an address that never existed and a disabled account.
//! - [`SmtpArrival`]: the mail's bytes as they stream in, each recipient's copy encrypted to
//!   that recipient's key at once (sequoia's streaming encryptor; the ciphertext goes into the
//!   row or, past `limits.inline_part_max_bytes`, streams into the blob store), the size limit
//!   enforced while streaming. No plaintext is written anywhere.
//! - [`SmtpArrival::finish`]: a PGP/MIME mail encrypted to a recipient is kept for them as it
//!   came (the armored payload); anything else is the copy encrypted on arrival. Then one
//!   commit for all recipients (`MetaStore::receive_smtp`). Only after it does the door answer
//!   `250`.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use mail_parser::{MessageParser, MimeHeaders};
use sequoia_openpgp::Cert;
use sequoia_openpgp::Packet;
use sequoia_openpgp::crypto::SessionKey;
use sequoia_openpgp::packet::pkesk::PKESK3;
use sequoia_openpgp::serialize::Serialize;
use sequoia_openpgp::serialize::stream::{Encryptor, LiteralWriter, Message};
use sequoia_openpgp::types::SymmetricAlgorithm;
use sha2::{Digest, Sha256};

use super::{deliverable, is_revoked};
use crate::crypto;
use crate::proto::Arrival;
use crate::service::{Context, ServiceError};
use crate::storage::blobs::BlobError;
use crate::storage::{BlobStore, NewPart, SmtpMail};

/// A recipient a mail may be accepted for.
#[derive(Clone)]
pub struct SmtpRecipient {
    pub account: i64,
    pub address: String,
    cert: Arc<Cert>,
    /// The organisation's compliance key, when one is installed (docs/compliance.md): the copy
    /// encrypted on arrival goes to it too.
    compliance: Option<Arc<Cert>>,
}

impl std::fmt::Debug for SmtpRecipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpRecipient")
            .field("address", &self.address)
            .finish()
    }
}

/// The rule for a `RCPT TO`: an address of one of this node's users or guests who can receive
/// now. Every refusal is the same `unknown_recipient`, so the answer tells nothing more about
/// the address (unknown, disabled, not enrolled, revoked).
pub async fn smtp_recipient(
    ctx: &Context,
    address: &str,
    now: SystemTime,
) -> Result<SmtpRecipient, ServiceError> {
    let unknown = || ServiceError::UnknownRecipients {
        addresses: vec![address.to_owned()],
    };
    let normal = crate::normalize_address(address).ok_or_else(unknown)?;
    let account = ctx
        .store
        .account_by_address(&normal)
        .await?
        .filter(deliverable)
        .ok_or_else(unknown)?;
    let cert = ctx.account_cert(&account)?;
    if is_revoked(ctx, &cert) || ctx.cert_facts(&cert, now).encryption.is_empty() {
        return Err(unknown());
    }
    let compliance = crate::service::compliance::current(ctx)
        .await?
        .map(|k| k.cert.clone());
    Ok(SmtpRecipient {
        account: account.id,
        address: account.address,
        cert,
        compliance,
    })
}

/// What the door saw of a mail's transport, stored with it as its `arrival`.
#[derive(Clone, Debug, Default)]
pub struct Transport {
    pub tls: bool,
    /// SPF, DKIM and DMARC results (RFC 8601 words).
    pub spf: String,
    pub dkim: String,
    pub dmarc: String,
    /// `MAIL FROM` (empty for a bounce).
    pub mail_from: String,
}

/// A mail streaming in for its recipients.
pub struct SmtpArrival {
    copies: Vec<(SmtpRecipient, Message<'static>, Sink)>,
    /// The mail as it came, in memory only (parsed at the end; bounded by `limit`).
    raw: Vec<u8>,
    limit: u64,
    /// Why the mail is malformed, seen while it streamed (NUL, bare CR or LF).
    malformed: Option<&'static str>,
}

impl SmtpArrival {
    /// Starts a copy per recipient, each encrypted to that recipient's key. `limit`: the
    /// largest mail, in bytes.
    pub fn begin(
        ctx: &Context,
        recipients: Vec<SmtpRecipient>,
        limit: u64,
        now: SystemTime,
    ) -> Result<SmtpArrival, ServiceError> {
        let mut copies = Vec::with_capacity(recipients.len());
        for r in recipients {
            let sink = Sink::new(
                ctx.blobs.clone(),
                ctx.config.limits.inline_part_max_bytes,
                limit.saturating_mul(2).saturating_add(64 * 1024),
            );
            // The session key is wrapped for each of the recipient's keys here, while their
            // certificate is borrowed; the encryptor then owns nothing borrowed (SEIPDv1, which
            // every OpenPGP implementation reads).
            let algo = SymmetricAlgorithm::AES256;
            let session_key = SessionKey::new(algo.key_size().map_err(ServiceError::internal)?)
                .map_err(ServiceError::internal)?;
            let mut message = Message::new(sink.clone());
            // The recipient's keys, then the organisation's compliance key's (docs/compliance.md;
            // a recipient without a usable key of their own gets nothing).
            let keys = |c: &Cert| {
                crypto::encryption_keys(c, &ctx.policy, now)
                    .into_iter()
                    .flatten()
                    .map(|ka| ka.key().clone())
                    .collect::<Vec<_>>()
            };
            let own = keys(&r.cert);
            if own.is_empty() {
                return Err(ServiceError::UnknownRecipients {
                    addresses: vec![r.address],
                });
            }
            let compliance = r.compliance.as_deref().map(keys).unwrap_or_default();
            for key in own.iter().chain(&compliance) {
                let mut pkesk = PKESK3::for_recipient(algo, &session_key, key)
                    .map_err(ServiceError::internal)?;
                pkesk.set_recipient(Some(key.keyid()));
                Packet::PKESK(pkesk.into())
                    .serialize(&mut message)
                    .map_err(ServiceError::internal)?;
            }
            let message = Encryptor::with_session_key(message, algo, session_key)
                .map_err(ServiceError::internal)?
                .build()
                .map_err(ServiceError::internal)?;
            let message = LiteralWriter::new(message)
                .build()
                .map_err(ServiceError::internal)?;
            copies.push((r, message, sink));
        }
        Ok(SmtpArrival {
            copies,
            raw: Vec::new(),
            limit,
            malformed: None,
        })
    }

    /// Bytes the mail has so far.
    pub fn size(&self) -> u64 {
        self.raw.len() as u64
    }

    /// The next bytes of the mail (after dot-unstuffing): encrypted into every copy at once.
    /// More than the limit is `too_large`, and the mail is then abandoned.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), ServiceError> {
        let size = (self.raw.len() as u64).saturating_add(bytes.len() as u64);
        if size > self.limit {
            return Err(ServiceError::TooLarge { limit: self.limit });
        }
        let start = self.raw.len();
        self.raw.extend_from_slice(bytes);
        if self.malformed.is_none() {
            self.malformed = line_fault(&self.raw, start);
        }
        for (_, message, _) in self.copies.iter_mut() {
            message.write_all(bytes).map_err(ServiceError::internal)?;
        }
        Ok(())
    }

    /// The whole mail as it came (for the door's SPF, DKIM and DMARC checks).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Ends the mail: each recipient's part 0 settled (their own OpenPGP message as it came,
    /// or the copy encrypted on arrival), then one commit. Returns the new message IDs.
    pub async fn finish(
        self,
        ctx: &Context,
        transport: Transport,
        now: SystemTime,
    ) -> Result<Vec<String>, ServiceError> {
        let SmtpArrival {
            copies,
            raw,
            malformed,
            ..
        } = self;
        if let Some(why) = malformed {
            return Err(ServiceError::MalformedMail(why));
        }
        let parsed = MessageParser::default().parse(&raw[..]);
        if let Err(why) = well_formed(parsed.as_ref()) {
            return Err(ServiceError::MalformedMail(why));
        }
        let from = parsed
            .as_ref()
            .and_then(|m| m.from())
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .and_then(crate::normalize_address);
        let sender = from
            .clone()
            .or_else(|| crate::normalize_address(&transport.mail_from))
            .unwrap_or_default();
        let payload = parsed.as_ref().and_then(pgp_mime_payload);
        let in_reply_to = match &parsed {
            Some(m) if !sender.is_empty() => answered(ctx, m, &sender).await?,
            _ => None,
        };
        let mut mails = Vec::with_capacity(copies.len());
        for (r, message, sink) in copies {
            message.finalize().map_err(ServiceError::internal)?;
            // Their own OpenPGP message, if it is one to them: as it came.
            let own = payload
                .as_deref()
                .filter(|p| encrypted_to(ctx, p, &r.cert, now));
            let part = match own {
                Some(p) => {
                    sink.abandon().await;
                    stored_part(ctx, p.to_vec()).await?
                }
                None => sink.finish().await?,
            };
            let arrival = Arrival {
                encrypted: own.is_some(),
                tls: transport.tls,
                spf: transport.spf.clone(),
                dkim: transport.dkim.clone(),
                dmarc: transport.dmarc.clone(),
                mail_from: transport.mail_from.clone(),
                submitted: false,
            };
            // Kept as it came without our compliance key: it waits for the user's client to
            // add the compliance session-key packet (docs/compliance.md, "Waiting copies").
            let compliance_pending = match (own, &r.compliance) {
                (Some(p), Some(key)) => !encrypted_to(ctx, p, key, now),
                _ => false,
            };
            mails.push(SmtpMail {
                compliance_pending,
                id: crate::new_message_id(),
                sender: sender.clone(),
                recipient: (r.account, r.address),
                part,
                arrival: serde_json::to_string(&arrival).map_err(ServiceError::internal)?,
                in_reply_to: in_reply_to.clone(),
            });
        }
        let ids = mails.iter().map(|m| m.id.clone()).collect();
        ctx.store
            .receive_smtp(mails, crate::service::unix(now))
            .await?;
        Ok(ids)
    }
}

/// A NUL byte, or a CR or LF that is not part of a CRLF, in `raw` from `start` on (the CR
/// ending a chunk is judged with the next one): what smuggles a second mail or header past
/// a parser that reads line ends differently (bare LF, CVE-2023-51764).
pub(super) fn line_fault(raw: &[u8], start: usize) -> Option<&'static str> {
    // Look back one byte, so a CRLF split across chunks is seen whole.
    let from = start.saturating_sub(1);
    for i in from..raw.len() {
        match raw[i] {
            0 => return Some("it contains a NUL byte"),
            b'\n' if i == 0 || raw[i - 1] != b'\r' => {
                return Some("it has a line ending in a bare LF");
            }
            b'\r' if i + 1 < raw.len() && raw[i + 1] != b'\n' => {
                return Some("it has a bare CR");
            }
            _ => {}
        }
    }
    None
}

/// The rules a parsed mail must meet: a header section with a From header, and every
/// multipart with a boundary.
pub(super) fn well_formed(parsed: Option<&mail_parser::Message<'_>>) -> Result<(), &'static str> {
    let m = parsed.ok_or("it is not a message")?;
    if m.from().and_then(|a| a.first()).is_none() {
        return Err("it has no From header");
    }
    for part in m.parts.iter() {
        if let Some(ct) = part.content_type()
            && ct.ctype().eq_ignore_ascii_case("multipart")
            && ct.attribute("boundary").is_none_or(|b| b.trim().is_empty())
        {
            return Err("a multipart has no boundary");
        }
    }
    Ok(())
}

/// The armored OpenPGP message of a PGP/MIME mail (RFC 3156: `multipart/encrypted;
/// protocol="application/pgp-encrypted"`, its second part), if this is one.
fn pgp_mime_payload(m: &mail_parser::Message<'_>) -> Option<Vec<u8>> {
    let root = m.root_part();
    let ct = root.content_type()?;
    let protocol = ct.attribute("protocol")?;
    if !ct.ctype().eq_ignore_ascii_case("multipart")
        || !ct.subtype()?.eq_ignore_ascii_case("encrypted")
        || !protocol.eq_ignore_ascii_case("application/pgp-encrypted")
    {
        return None;
    }
    let second = *root.sub_parts()?.get(1)?;
    let part = m.part(second)?;
    let contents = part.contents();
    contents
        .starts_with(b"-----BEGIN PGP MESSAGE-----")
        .then(|| contents.to_vec())
}

/// Whether an (armored) OpenPGP message is encrypted to one of `cert`'s encryption keys.
fn encrypted_to(ctx: &Context, armored: &[u8], cert: &Arc<Cert>, now: SystemTime) -> bool {
    let mut reader = sequoia_openpgp::armor::Reader::from_bytes(
        armored,
        sequoia_openpgp::armor::ReaderMode::Tolerant(Some(sequoia_openpgp::armor::Kind::Message)),
    );
    let mut binary = Vec::new();
    if std::io::copy(&mut reader, &mut binary).is_err() {
        return false;
    }
    let Ok(keys) = crypto::pkesk_recipients_of_bytes(&binary) else {
        return false;
    };
    let facts = ctx.cert_facts(cert, now);
    crypto::missing_recipients_among(
        &keys,
        std::iter::once((cert.fingerprint(), facts.encryption.as_slice())),
    )
    .is_empty()
}

/// Our message this mail answers: the first `<ID@OUR_DOMAIN>` in `In-Reply-To`, then
/// `References` (newest first), that is a message of ours which went to `sender`.
async fn answered(
    ctx: &Context,
    m: &mail_parser::Message<'_>,
    sender: &str,
) -> Result<Option<String>, ServiceError> {
    let suffix = format!("@{}", ctx.config.domain);
    let mut named: Vec<String> = Vec::new();
    for value in [m.in_reply_to(), m.references()] {
        for id in value.as_text_list().unwrap_or_default().iter().rev() {
            let id = id.trim().trim_start_matches('<').trim_end_matches('>');
            let Some(local) = id
                .len()
                .checked_sub(suffix.len())
                .filter(|&at| id[at..].eq_ignore_ascii_case(&suffix))
                .and_then(|at| id.get(..at))
            else {
                continue;
            };
            if crate::is_message_id(local) && !named.iter().any(|n| n == local) {
                named.push(local.to_owned());
            }
        }
    }
    for id in named.into_iter().take(16) {
        if ctx.store.sent_to(&id, sender).await? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// A ciphertext as part 0: in the row if small, else a file in the blob store.
pub(super) async fn stored_part(ctx: &Context, data: Vec<u8>) -> Result<NewPart, ServiceError> {
    let sha256: [u8; 32] = Sha256::digest(&data).into();
    let size = data.len() as u64;
    if data.len() <= ctx.config.limits.inline_part_max_bytes {
        return Ok(NewPart {
            sha256,
            size,
            inline: Some(data),
        });
    }
    let (sha256, size) = ctx.blobs.put(&mut &data[..], size).await?;
    Ok(NewPart {
        sha256,
        size,
        inline: None,
    })
}

/// Where one copy's ciphertext goes as the encryptor writes it: memory while it fits a row,
/// then a stream into the blob store (`BlobStore::put`, fsynced before it returns).
#[derive(Clone)]
struct Sink(Arc<Mutex<SinkState>>);

type PutTask = tokio::task::JoinHandle<Result<([u8; 32], u64), BlobError>>;

struct SinkState {
    blobs: Arc<dyn BlobStore>,
    inline_max: usize,
    limit: u64,
    buf: Vec<u8>,
    spill: Option<(
        tokio::sync::mpsc::UnboundedSender<std::io::Result<bytes::Bytes>>,
        PutTask,
    )>,
}

impl Sink {
    fn new(blobs: Arc<dyn BlobStore>, inline_max: usize, limit: u64) -> Sink {
        Sink(Arc::new(Mutex::new(SinkState {
            blobs,
            inline_max,
            limit,
            buf: Vec::new(),
            spill: None,
        })))
    }

    fn take(&self) -> (Vec<u8>, Option<PutTask>) {
        let mut s = self.0.lock().expect("sink lock");
        let buf = std::mem::take(&mut s.buf);
        // Dropping the sender ends the stream.
        (buf, s.spill.take().map(|(_, task)| task))
    }

    /// The copy as a part: inline, or the blob it streamed into.
    async fn finish(self) -> Result<NewPart, ServiceError> {
        let (buf, task) = self.take();
        match task {
            None => Ok(NewPart {
                sha256: Sha256::digest(&buf).into(),
                size: buf.len() as u64,
                inline: Some(buf),
            }),
            Some(task) => {
                let (sha256, size) = task.await.map_err(ServiceError::internal)??;
                Ok(NewPart {
                    sha256,
                    size,
                    inline: None,
                })
            }
        }
    }

    /// The copy is not needed: a blob it streamed into is removed.
    async fn abandon(self) {
        let (_, task) = self.take();
        let blobs = self.0.lock().expect("sink lock").blobs.clone();
        if let Some(Ok(Ok((sha, _)))) = match task {
            Some(t) => Some(t.await),
            None => None,
        } {
            let _ = blobs.remove(sha).await;
        }
    }
}

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut s = self.0.lock().expect("sink lock");
        match &s.spill {
            Some((tx, _)) => tx
                .send(Ok(bytes::Bytes::copy_from_slice(bytes)))
                .map_err(|_| std::io::Error::other("the blob store stopped taking the mail"))?,
            None => {
                s.buf.extend_from_slice(bytes);
                if s.buf.len() > s.inline_max {
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    let first = bytes::Bytes::from(std::mem::take(&mut s.buf));
                    tx.send(Ok(first)).expect("the receiver is here");
                    let (blobs, limit) = (s.blobs.clone(), s.limit);
                    let task = tokio::spawn(async move {
                        let stream = tokio_stream_of(rx);
                        let mut reader = tokio_util::io::StreamReader::new(stream);
                        blobs.put(&mut reader, limit).await
                    });
                    s.spill = Some((tx, task));
                }
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An unbounded receiver as a stream (what `StreamReader` reads).
fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<std::io::Result<bytes::Bytes>>,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Unpin + Send {
    Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}
