//! The organisation's compliance key (docs/compliance.md, "Compliance key"): installing it,
//! the active one, and which compliance keys a message must be encrypted to.
//!
//! - [`install`]: an admin hands in a public certificate (made elsewhere: the node never holds
//!   the compliance secret key); it must be fit (public only, v4, an encryption key valid
//!   now, the one user ID `Compliance archive <compliance@DOMAIN>`); the CA marks it
//!   (`sealpost_trust::certify_compliance`, notation `compliance@sealpost.org=archive`); the
//!   certified certificate becomes the active key, stored for the directory, in one commit
//!   with its log entry `compliance.key_installed`.
//! - [`current`]: the active key, kept in memory while the certificate generation stands still.
//! - [`of_peer`]: a peered organisation's compliance key, as we hold it (learned through its
//!   directory over federation) and as its CA marks it.
//! - [`required`]: the compliance keys a message from a source must be encrypted to, which
//!   `accept` checks on every part's PKESKs (`missing_compliance_recipient`).
//!
//! - [`add_packet`], [`archived_part`]: incoming OpenPGP mail that came encrypted to its user
//!   only gets the compliance key's session-key packet from the user's client, kept beside
//!   the message; the archive's read puts it in front of the ciphertext.
//!
//! Every key handed out or required passes `sealpost_proto::crypto::compliance_key_of` with
//! the CA of its domain: never a key from unsigned data.

use std::sync::Arc;
use std::time::SystemTime;

use sequoia_openpgp::Cert;
use sequoia_openpgp::parse::Parse;

use super::{Actor, Context, ServiceError};
use crate::config::Config;
use crate::crypto;
use crate::proto::ComplianceKeyRef;
use crate::storage::{LogEvent, MetaStore, PeerRecord};

/// The largest certificate [`install`] takes.
pub const MAX_CERT_BYTES: usize = 64 * 1024;

/// A compliance key as the node uses it: its organisation's domain, the certified public
/// certificate (armored and parsed).
#[derive(Clone, Debug)]
pub struct ComplianceKey {
    pub domain: String,
    /// Upper-case hex fingerprint.
    pub fingerprint: String,
    pub armored: String,
    pub cert: Arc<Cert>,
    pub installed_at: i64,
}

impl ComplianceKey {
    /// As an envelope answer lists it.
    pub fn to_ref(&self, ca_cert: Option<String>) -> ComplianceKeyRef {
        ComplianceKeyRef {
            domain: self.domain.clone(),
            fingerprint: self.fingerprint.clone(),
            cert: self.armored.clone(),
            ca_cert,
        }
    }
}

/// Checks `cert_bytes` (armored or binary public certificate) as the organisation's
/// compliance key, has the CA mark it, and makes it the active key (retiring the one before).
pub async fn install(
    store: &dyn MetaStore,
    config: &Config,
    ca: &Cert,
    actor: &Actor,
    cert_bytes: &[u8],
    now: SystemTime,
) -> Result<ComplianceKey, ServiceError> {
    let policy = sequoia_openpgp::policy::StandardPolicy::new();
    let bad = |m: String| Err(ServiceError::InvalidComplianceKey(m));
    if cert_bytes.len() > MAX_CERT_BYTES {
        return bad(format!("larger than {MAX_CERT_BYTES} bytes"));
    }
    let cert = match Cert::from_bytes(cert_bytes) {
        Ok(c) => c,
        Err(e) => return bad(format!("not an OpenPGP certificate: {e}")),
    };
    if cert.is_tsk() {
        return bad(
            "it holds secret key material: hand in the public certificate only (the node \
             never keeps the compliance secret key)"
                .into(),
        );
    }
    if cert.primary_key().key().version() != 4 {
        return bad("the key must be OpenPGP version 4".into());
    }
    let domain = config.domain.to_ascii_lowercase();
    let address = crypto::compliance_address(&domain);
    let wanted = format!("Compliance archive <{address}>");
    if cert.userids().count() != 1
        || cert
            .userids()
            .any(|u| u.userid().value() != wanted.as_bytes())
    {
        return bad(format!("its one user ID must be {wanted:?}"));
    }
    if store.account_by_address(&address).await?.is_some() {
        return bad(format!(
            "{address} is an account's address: the compliance address must be no one's"
        ));
    }
    // The one rule a sender encrypts by (`crypto::encryption_key_handles`).
    if crypto::valid_cert(&cert, &policy, now).is_none() {
        return bad("it is not valid now (expired, revoked or malformed)".into());
    }
    if crypto::encryption_key_handles(&cert, &policy, now).is_empty() {
        return bad("it has no encryption key valid now".into());
    }
    // Merged with what we hold of it (a re-install keeps earlier signatures), then marked.
    let held = store
        .cert_by_fingerprint(&cert.fingerprint().to_hex())
        .await?
        .and_then(|a| crypto::cert_from_armored(&a).ok());
    let cert = match held {
        Some(h) => h.merge_public(cert).map_err(ServiceError::internal)?,
        None => cert,
    };
    let at = crate::certs::after_previous_signatures(&ca.fingerprint(), &cert, &address, now);
    let marked = sealpost_trust::certify_compliance(ca, &cert, &address, at)
        .map_err(ServiceError::internal)?;
    crypto::compliance_key_of(&marked, ca, &domain, &policy, at)
        .map_err(|e| ServiceError::InvalidComplianceKey(e.to_string()))?;
    let record = crate::certs::record(&marked).map_err(ServiceError::internal)?;
    let fingerprint = record.fingerprint.clone();
    let armored = record.armored.clone();
    let unix = super::unix(now);
    let event = LogEvent::new("compliance.key_installed", actor.log_name(), &address)
        .with(serde_json::json!({ "fingerprint": fingerprint }));
    store.install_compliance_key(record, event, unix).await?;
    tracing::info!(%fingerprint, "compliance key installed");
    Ok(ComplianceKey {
        domain,
        fingerprint,
        armored,
        cert: Arc::new(marked),
        installed_at: unix,
    })
}

/// How long a peer that published no compliance key is not asked again.
pub const ASK_AGAIN_SECS: i64 = 300;

/// When `domain` was last asked for its compliance key and had none, if within
/// [`ASK_AGAIN_SECS`] of `now`.
fn asked_recently(ctx: &Context, domain: &str, now: i64) -> Option<i64> {
    let asked = ctx.compliance_asked.lock().expect("not poisoned");
    asked
        .get(domain)
        .copied()
        .filter(|t| now.saturating_sub(*t) < ASK_AGAIN_SECS)
}

/// The organisation's active compliance key, if one is installed. Read again only when the
/// certificate generation moved (an install writes the certificate too, from any process).
pub async fn current(ctx: &Context) -> Result<Option<Arc<ComplianceKey>>, ServiceError> {
    let generation = ctx.store.cert_generation().await?;
    if let Some((g, key)) = ctx.compliance_cache.lock().expect("not poisoned").as_ref()
        && *g == generation
    {
        return Ok(key.clone());
    }
    let key = match ctx.store.compliance_key().await? {
        None => None,
        Some(row) => {
            let cert = crypto::cert_from_armored(&row.cert).map_err(ServiceError::internal)?;
            Some(Arc::new(ComplianceKey {
                domain: ctx.config.domain.to_ascii_lowercase(),
                fingerprint: row.fingerprint,
                armored: row.cert,
                cert: Arc::new(cert),
                installed_at: row.installed_at,
            }))
        }
    };
    *ctx.compliance_cache.lock().expect("not poisoned") = Some((generation, key.clone()));
    Ok(key)
}

/// The last active key [`current`] read (for the organisation record, which is built without
/// waiting: its doors call [`current`] first).
pub fn last_known(ctx: &Context) -> Option<Arc<ComplianceKey>> {
    ctx.compliance_cache
        .lock()
        .expect("not poisoned")
        .as_ref()
        .and_then(|(_, k)| k.clone())
}

/// The compliance key of the peered organisation `peer`, if it publishes one that its CA (as
/// we hold it) marks. `fetch`: ask the peer's directory over federation when we hold none
/// (the envelope request); otherwise only what we hold (accepting a message: no network).
pub async fn of_peer(
    ctx: &Context,
    peer: &PeerRecord,
    fetch: bool,
    now: SystemTime,
) -> Result<Option<(ComplianceKey, Arc<Cert>)>, ServiceError> {
    let address = crypto::compliance_address(&peer.domain);
    let mut certs: Vec<Arc<Cert>> = ctx
        .store
        .certs_by_email_from(&address, &peer.domain)
        .await?
        .iter()
        .map(|a| ctx.parse_cert(a).map_err(ServiceError::internal))
        .collect::<Result<_, _>>()?;
    let unix = super::unix(now);
    if certs.is_empty() && fetch && asked_recently(ctx, &peer.domain, unix).is_none() {
        // Asked at most once per `ASK_AGAIN_SECS` while it has none (an empty answer is not
        // kept as certificates are); a peer that does not answer publishes none for now: its
        // node refuses what lacks a key it requires, and the sender is told.
        match super::peers::remote_certs(ctx, peer, &address).await {
            Ok(found) => certs = found,
            Err(e) => {
                tracing::debug!(domain = %peer.domain, error = %e, "no compliance key learned")
            }
        }
        if certs.is_empty() {
            ctx.compliance_asked
                .lock()
                .expect("not poisoned")
                .insert(peer.domain.clone(), unix);
        }
    }
    if certs.is_empty() {
        return Ok(None);
    }
    let Some(ca) = ctx
        .store
        .cert_by_fingerprint(&peer.ca_fingerprint)
        .await?
        .and_then(|a| crypto::cert_from_armored(&a).ok())
    else {
        return Ok(None);
    };
    for cert in certs {
        if crypto::compliance_key_of(&cert, &ca, &peer.domain, &ctx.policy, now).is_ok() {
            let armored = crypto::cert_to_armored(&cert).map_err(ServiceError::internal)?;
            return Ok(Some((
                ComplianceKey {
                    domain: peer.domain.clone(),
                    fingerprint: cert.fingerprint().to_hex(),
                    armored,
                    cert,
                    installed_at: 0,
                },
                Arc::new(ca),
            )));
        }
    }
    Ok(None)
}

/// After a transfer from `domain`'s node was accepted: learn that organisation's compliance key
/// when we hold none (asked as for an envelope; looked at most once per [`ASK_AGAIN_SECS`] per
/// peer, whatever the outcome), in the background, so that the receipt does not wait on a look-up. From then on
/// our users' readers name its archive ([`copies_of`]) and its transfers must carry it
/// ([`required`]). Without this a node that only receives from a peer never held the key: its
/// recipients were not told the sender's archive had a copy.
pub fn learn_from_sender(ctx: Arc<Context>, domain: String, now: SystemTime) {
    if asked_recently(&ctx, &domain, super::unix(now)).is_some() {
        return;
    }
    tokio::spawn(async move {
        let learned = async {
            if let Some(peer) = ctx.store.peer(&domain).await? {
                of_peer(&ctx, &peer, true, now).await?;
            }
            Ok::<(), ServiceError>(())
        };
        if let Err(e) = learned.await {
            tracing::debug!(%domain, error = %e, "the sender organisation's compliance key was not learned");
        }
        // Learned or not, not again for `ASK_AGAIN_SECS`: not one look-up per transfer.
        ctx.compliance_asked
            .lock()
            .expect("not poisoned")
            .insert(domain, super::unix(now));
    });
}

/// The compliance keys of the peered organisations among `domains` (each once; ours and
/// domains that are not peers skipped), with the CA that marks each, by [`of_peer`].
async fn of_peers(
    ctx: &Context,
    domains: &[&str],
    fetch: bool,
    now: SystemTime,
) -> Result<Vec<(ComplianceKey, Arc<Cert>)>, ServiceError> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for domain in domains {
        if *domain == ctx.config.domain || !seen.insert(*domain) {
            continue;
        }
        let Some(peer) = ctx.store.peer(domain).await? else {
            continue;
        };
        out.extend(of_peer(ctx, &peer, fetch, now).await?);
    }
    Ok(out)
}

/// The compliance keys a message must be encrypted to: ours when one is installed and
/// `[compliance] required`, and each of `peer_domains`' (the peered organisations of its
/// sender or recipients) that they publish and we hold.
pub async fn required(
    ctx: &Context,
    peer_domains: &[&str],
    now: SystemTime,
) -> Result<Vec<ComplianceKey>, ServiceError> {
    let mut keys = Vec::new();
    if ctx.config.compliance.required
        && let Some(ours) = current(ctx).await?
    {
        keys.push((*ours).clone());
    }
    for (key, _) in of_peers(ctx, peer_domains, false, now).await? {
        keys.push(key);
    }
    Ok(keys)
}

/// The compliance keys an envelope answer lists for a sender writing to `peer_domains`: ours
/// (when installed, even if not required: clients encrypt to it) and each peer's that it
/// publishes (asked over federation when not held), each with the CA that marks it for a
/// peer (carrying our bridge, by which the client checks it).
pub async fn for_envelope(
    ctx: &Context,
    peer_domains: &[&str],
    now: SystemTime,
) -> Result<Vec<ComplianceKeyRef>, ServiceError> {
    let mut out = Vec::new();
    if let Some(ours) = current(ctx).await? {
        out.push(ours.to_ref(None));
    }
    for (key, ca) in of_peers(ctx, peer_domains, true, now).await? {
        let ca = crypto::cert_to_armored(&ca).map_err(ServiceError::internal)?;
        out.push(key.to_ref(Some(ca)));
    }
    Ok(out)
}

/// The organisations whose compliance archive a stored message's head (part 0) is encrypted
/// to: ours, and the peers' whose compliance keys we hold, each named once by domain. Read
/// from the part's PKESKs (no decryption), against the keys known now: the reader's client
/// says so ("a copy went to the compliance archive of …").
pub async fn copies_of(
    ctx: &Context,
    message_id: &str,
    now: SystemTime,
) -> Result<Vec<String>, ServiceError> {
    let mut keys: Vec<ComplianceKey> = current(ctx)
        .await?
        .map(|k| (*k).clone())
        .into_iter()
        .collect();
    for peer in ctx.store.peers().await? {
        if let Some((key, _)) = of_peer(ctx, &peer, false, now).await? {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let recipients = match ctx.store.part(message_id, 0).await? {
        None => return Ok(Vec::new()),
        Some(crate::storage::PartData::Inline(bytes)) => {
            ctx.part_recipients(Some(&bytes), [0; 32]).await?
        }
        Some(crate::storage::PartData::Blob { sha256, .. }) => {
            ctx.part_recipients(None, sha256).await?
        }
    };
    // A part that is not an OpenPGP message names no archive.
    let Ok(mut recipients) = recipients else {
        return Ok(Vec::new());
    };
    // With the session-key packets users' clients added beside it ("Waiting copies").
    recipients.extend(side_recipients(ctx, message_id).await?);
    let mut domains = Vec::new();
    for k in keys {
        let facts = ctx.cert_facts(&k.cert, now);
        let missing = crypto::missing_recipients_among(
            &recipients,
            [(k.cert.fingerprint(), facts.encryption.as_slice())],
        );
        if missing.is_empty() && !domains.contains(&k.domain) {
            domains.push(k.domain);
        }
    }
    Ok(domains)
}

/// The largest compliance session-key packet [`add_packet`] takes (one PKESK: about 100 bytes
/// for Cv25519, about 530 for RSA-4096).
pub const MAX_PACKET_BYTES: usize = 4096;

/// The recipients named by the session-key packets kept beside message `message_id`.
async fn side_recipients(
    ctx: &Context,
    message_id: &str,
) -> Result<Vec<sequoia_openpgp::KeyHandle>, ServiceError> {
    Ok(ctx
        .store
        .compliance_packets(message_id)
        .await?
        .iter()
        .filter_map(|p| match sequoia_openpgp::Packet::from_bytes(p) {
            Ok(sequoia_openpgp::Packet::PKESK(k)) => k.recipient(),
            _ => None,
        })
        .collect())
}

/// Adds the compliance key's session-key packet to incoming OpenPGP mail of `account`'s that
/// came encrypted to them only (docs/compliance.md, "Waiting copies"): `packet` must be one
/// v3 PKESK for an encryption key of the current compliance key, and the message must be an
/// SMTP arrival of the caller's whose head's PKESKs (with the packets kept beside it) do not
/// name that key yet. The packet is kept beside the message as it came (its logged hash stays
/// true), `compliance_pending` cleared and `compliance.packet_added` logged, in one commit.
///
/// The node cannot check the session key inside the packet (it cannot decrypt it): a client
/// that lies makes a copy the archive cannot open, which the officer's read reports.
pub async fn add_packet(
    ctx: &Context,
    account: &crate::storage::Account,
    message_id: &str,
    packet: &[u8],
    now: SystemTime,
) -> Result<(), ServiceError> {
    use sequoia_openpgp::Packet;
    use sequoia_openpgp::packet::PKESK;
    use sequoia_openpgp::serialize::MarshalInto;
    let m = ctx
        .store
        .message(account.id, message_id)
        .await?
        .ok_or(ServiceError::UnknownMessage)?;
    let key = current(ctx).await?.ok_or(ServiceError::NoComplianceKey)?;
    if packet.len() > MAX_PACKET_BYTES {
        return Err(ServiceError::TooLarge {
            limit: MAX_PACKET_BYTES as u64,
        });
    }
    let bad = |why: &str| ServiceError::InvalidCompliancePacket(why.to_owned());
    // Exactly one packet, and it is a v3 PKESK with a recipient.
    let pile = sequoia_openpgp::PacketPile::from_bytes(packet)
        .map_err(|_| bad("not an OpenPGP packet"))?;
    let mut packets = pile.into_children();
    let (Some(Packet::PKESK(PKESK::V3(pkesk))), None) = (packets.next(), packets.next()) else {
        return Err(bad(
            "it must be exactly one v3 public-key encrypted session key packet",
        ));
    };
    let Some(recipient) = pkesk.recipient() else {
        return Err(bad("it names no recipient (wildcard)"));
    };
    let recipient = sequoia_openpgp::KeyHandle::from(recipient);
    // For an encryption key of the current compliance key, of that key's algorithm.
    let target = crypto::encryption_keys(&key.cert, &ctx.policy, now)
        .into_iter()
        .flatten()
        .find(|ka| recipient.aliases(sequoia_openpgp::KeyHandle::from(ka.key().fingerprint())));
    let Some(target) = target else {
        return Err(ServiceError::WrongComplianceKey {
            fingerprint: key.fingerprint.clone(),
        });
    };
    if target.key().pk_algo() != pkesk.pk_algo() {
        return Err(bad("its algorithm is not the compliance key's"));
    }
    // Only incoming mail of the caller's that waits: its head does not name the key yet.
    let waiting = m.item.via.as_deref() == Some("smtp")
        && m.item.folder != crate::proto::Folder::Sent
        && m.parts.len() == 1;
    if !waiting {
        return Err(ServiceError::CompliancePacketNotPending);
    }
    let recipients = match ctx.store.part(message_id, 0).await? {
        None => return Err(ServiceError::UnknownPart),
        Some(crate::storage::PartData::Inline(bytes)) => {
            ctx.part_recipients(Some(&bytes), [0; 32]).await?
        }
        Some(crate::storage::PartData::Blob { sha256, .. }) => {
            ctx.part_recipients(None, sha256).await?
        }
    };
    let Ok(mut recipients) = recipients else {
        return Err(ServiceError::CompliancePacketNotPending);
    };
    recipients.extend(side_recipients(ctx, message_id).await?);
    let facts = ctx.cert_facts(&key.cert, now);
    if crypto::missing_recipients_among(
        &recipients,
        [(key.cert.fingerprint(), facts.encryption.as_slice())],
    )
    .is_empty()
    {
        return Err(ServiceError::CompliancePacketNotPending);
    }
    // Stored as sequoia writes it again: one well-formed packet, nothing trailing.
    let canonical = Packet::PKESK(PKESK::V3(pkesk))
        .to_vec()
        .map_err(ServiceError::internal)?;
    let event = LogEvent::new("compliance.packet_added", &account.address, message_id).with(
        serde_json::json!({
            "fingerprint": key.fingerprint,
            "key": target.key().fingerprint().to_hex(),
        }),
    );
    let added = ctx
        .store
        .add_compliance_packet(
            message_id,
            &key.fingerprint,
            canonical,
            event,
            super::unix(now),
        )
        .await?;
    if !added {
        return Err(ServiceError::CompliancePacketNotPending);
    }
    tracing::info!(message = %message_id, "compliance session-key packet added");
    Ok(())
}

/// Part `index` of message `message_id` as the compliance archive reads it: part 0 with the
/// session-key packets kept beside it in front (binary: an armored payload as it came is
/// dearmored first), so the compliance key opens it; any other part as stored.
pub async fn archived_part(
    ctx: &Context,
    message_id: &str,
    index: u32,
    data: crate::storage::PartData,
) -> Result<crate::storage::PartData, ServiceError> {
    use crate::storage::PartData;
    if index != 0 {
        return Ok(data);
    }
    let packets = ctx.store.compliance_packets(message_id).await?;
    if packets.is_empty() {
        return Ok(data);
    }
    let stored = match data {
        PartData::Inline(bytes) => bytes,
        PartData::Blob { sha256, .. } => {
            let blobs = ctx.blobs.clone();
            tokio::task::spawn_blocking(move || {
                let mut bytes = Vec::new();
                let mut file = blobs.open_blocking(sha256).map_err(|e| e.to_string())?;
                std::io::Read::read_to_end(&mut file, &mut bytes).map_err(|e| e.to_string())?;
                Ok::<_, String>(bytes)
            })
            .await
            .map_err(ServiceError::internal)?
            .map_err(ServiceError::internal)?
        }
    };
    archive_copy(&packets, &stored).map(PartData::Inline)
}

/// A stored part 0 (binary, or armored as an incoming PGP/MIME payload is kept) with the
/// session-key packets kept beside it in front: one binary OpenPGP message, what the
/// compliance archive's read serves ([`archived_part`]) and GnuPG decrypts.
pub fn archive_copy(packets: &[Vec<u8>], stored: &[u8]) -> Result<Vec<u8>, ServiceError> {
    let mut out: Vec<u8> = packets.concat();
    let armored = stored
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .is_some_and(|at| stored[at..].starts_with(b"-----BEGIN PGP MESSAGE-----"));
    if armored {
        let mut reader = sequoia_openpgp::armor::Reader::from_bytes(
            stored,
            sequoia_openpgp::armor::ReaderMode::Tolerant(Some(
                sequoia_openpgp::armor::Kind::Message,
            )),
        );
        std::io::copy(&mut reader, &mut out).map_err(ServiceError::internal)?;
    } else {
        out.extend_from_slice(stored);
    }
    Ok(out)
}
