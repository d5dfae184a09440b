//! Outside keys (docs/mail.md): an outside recipient's OpenPGP certificates and X.509
//! certificates, where each came from, and how far it is authenticated.
//!
//! [`find`] looks, in this order, and stops at the first place that has an OpenPGP key for the
//! address (every further look-up tells one more outside server whom we write to): the
//! requester's and the administrators' imports; the address's Web Key Directory (advanced,
//! then direct); the configured keyservers. X.509 certificates come from imports only and are
//! checked against `[delivery] x509_anchors` at `now`. A look-up that fails (timeout, TLS,
//! 404, too large) is "not found there", said in [`OutsideKeys::notes`], never an error.
//! Network answers are remembered (bounded, `delivery.lookup_cache_secs` by `now`).
//!
//! The verdict on a key is the trust engine's, over a network of three certificates: the
//! requester's, the organisation CA's and the found key. So a key the requester (or the CA)
//! certified says so ("you certified this key"); its first line says where it came from.
//!
//! What this module must not do: hold an HTTP type (fetching is `crate::keyfetch`'s, behind
//! [`KeyFetch`]), read the clock, or keep a key whose user IDs do not carry the address.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use openssl::hash::MessageDigest;
use openssl::x509::X509;
use sealpost_proto::outside::{KeySource, OutsideKeyKind, OutsideKeyView};
use sequoia_openpgp::Cert;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::policy::StandardPolicy;

use super::{Context, ServiceError};
use crate::config::DeliveryConfig;
use crate::keyfetch::KeyFetch;
use crate::memo::Memo;
use crate::proto::VerdictView;
pub use crate::storage::outside_keys::KeyOwner;
use crate::storage::outside_keys::{NewOutsideKey, OutsideKeyRow};
use crate::storage::{Account, LogEvent, MetaStore};

/// Most imports of one address considered in a look-up.
const MAX_IMPORTS_PER_ADDRESS: usize = 50;
/// Most certificates kept from one WKD or keyserver answer.
const MAX_CERTS_PER_ANSWER: usize = 10;
/// Addresses whose network look-ups are remembered at once.
const CACHE_ENTRIES: usize = 10_000;
/// Addresses looked up on the network at once, across the node.
const MAX_LOOKUPS: usize = 32;
/// Signatures made up to this far past `now` (clock skew) still count, as in the trust view.
const SKEW: Duration = Duration::from_secs(60);

/// What [`find`] found for an address.
#[derive(Clone, Debug, Default)]
pub struct OutsideKeys {
    pub openpgp: Vec<FoundKey>,
    pub x509: Vec<FoundX509>,
    /// Where the look-up asked and found nothing, in words ("pgp.test's Web Key Directory:
    /// no answer within the time allowed").
    pub notes: Vec<String>,
}

/// An OpenPGP certificate found for an outside address.
#[derive(Clone, Debug)]
pub struct FoundKey {
    /// Armored, public parts only.
    pub cert: String,
    /// Hex.
    pub fingerprint: String,
    pub source: KeySource,
    /// The trust engine's verdict for the requester; its first explanation line says where
    /// the key came from.
    pub verdict: VerdictView,
}

/// An X.509 certificate found for an outside address.
#[derive(Clone, Debug)]
pub struct FoundX509 {
    /// The certificate in PEM (intermediates, if imported with it, follow).
    pub pem: String,
    /// SHA-256 of the certificate (DER), hex.
    pub sha256: String,
    /// `Imported` or `ImportedByAdmin`.
    pub source: KeySource,
    /// Whether it chains to a configured trust anchor at `now`, or why not in words.
    pub anchored: Result<(), String>,
}

/// A key as a network look-up found it (before any verdict: the same for every requester).
#[derive(Clone, Debug)]
struct NetKey {
    cert: Arc<Cert>,
    armored: String,
    source: KeySource,
    /// Where: "pgp.test's Web Key Directory", "the keyserver keys.test".
    place: String,
}

#[derive(Clone, Debug, Default)]
struct NetAnswer {
    keys: Vec<NetKey>,
    notes: Vec<String>,
}

/// The network side of outside keys, held by the [`Context`]: the fetcher, the remembered
/// answers, the X.509 anchors (read once).
pub struct Lookups {
    fetch: Arc<dyn KeyFetch>,
    cache: Memo<String, (SystemTime, Arc<NetAnswer>)>,
    anchors: OnceLock<Result<Vec<X509>, String>>,
    running: tokio::sync::Semaphore,
}

impl Lookups {
    pub fn new(fetch: Arc<dyn KeyFetch>) -> Lookups {
        Lookups {
            fetch,
            cache: Memo::new(CACHE_ENTRIES),
            anchors: OnceLock::new(),
            running: tokio::sync::Semaphore::new(MAX_LOOKUPS),
        }
    }

    fn anchors(&self, config: &DeliveryConfig) -> Result<&[X509], String> {
        self.anchors
            .get_or_init(|| load_anchors(&config.x509_anchors))
            .as_ref()
            .map(|v| v.as_slice())
            .map_err(Clone::clone)
    }
}

fn load_anchors(path: &str) -> Result<Vec<X509>, String> {
    if path.is_empty() {
        return Err("no X.509 trust anchors are configured (delivery.x509_anchors)".into());
    }
    let pem = std::fs::read(path)
        .map_err(|e| format!("the trust anchors ({path}) cannot be read: {e}"))?;
    let certs = X509::stack_from_pem(&pem)
        .map_err(|e| format!("the trust anchors ({path}) are not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "the trust anchors file {path} holds no certificate"
        ));
    }
    Ok(certs)
}

/// The outside keys of `address` for `requester`, at `now`.
pub async fn find(
    ctx: &Context,
    requester: &Account,
    address: &str,
    now: SystemTime,
) -> Result<OutsideKeys, ServiceError> {
    let address = crate::normalize_address(address)
        .ok_or_else(|| ServiceError::InvalidAddress(address.to_owned()))?;
    let me = ctx.account_cert(requester)?;
    let owner = KeyOwner::User(requester.id);
    let imports = ctx
        .store
        .outside_keys_for(owner, &address, MAX_IMPORTS_PER_ADDRESS)
        .await?;
    let mut found = OutsideKeys::default();
    let mut candidates: Vec<NetKey> = Vec::new();
    for row in &imports {
        let source = match row.owner {
            KeyOwner::Admin => KeySource::ImportedByAdmin,
            KeyOwner::User(_) => KeySource::Imported,
        };
        match row.kind.as_str() {
            "openpgp" => {
                let Ok(cert) = ctx.parse_cert(&row.material) else {
                    continue;
                };
                if candidates
                    .iter()
                    .any(|c| c.cert.fingerprint() == cert.fingerprint())
                {
                    continue;
                }
                candidates.push(NetKey {
                    cert,
                    armored: row.material.clone(),
                    source,
                    place: String::new(),
                });
            }
            "x509" => {
                if found.x509.iter().any(|x| x.sha256 == row.fingerprint) {
                    continue;
                }
                let anchored = ctx
                    .outside
                    .anchors(&ctx.config.delivery)
                    .and_then(|anchors| check_anchored(anchors, &row.material, now));
                found.x509.push(FoundX509 {
                    pem: row.material.clone(),
                    sha256: row.fingerprint.clone(),
                    source,
                    anchored,
                });
            }
            _ => {}
        }
    }
    if candidates.is_empty() && crate::domain_of(&address) == ctx.config.domain {
        // Our own users' keys are in our directory: nothing to ask outside.
        found.notes.push(format!(
            "{address} is an address of this organisation: not looked up outside"
        ));
    } else if candidates.is_empty() {
        let answer = network(ctx, &address, now).await;
        candidates.extend(answer.keys.iter().cloned());
        found.notes.extend(answer.notes.iter().cloned());
    }
    for key in candidates {
        let verdict = verdict(ctx, &me, &key, &address, &found.notes, now).await?;
        found.openpgp.push(FoundKey {
            cert: key.armored,
            fingerprint: key.cert.fingerprint().to_hex(),
            source: key.source,
            verdict,
        });
    }
    Ok(found)
}

/// The trust engine's verdict on `key` for `me`, its first line saying where it came from.
async fn verdict(
    ctx: &Context,
    me: &Arc<Cert>,
    key: &NetKey,
    address: &str,
    notes: &[String],
    now: SystemTime,
) -> Result<VerdictView, ServiceError> {
    let certs = vec![(**me).clone(), ctx.ca.clone(), (*key.cert).clone()];
    let (viewer, ca, target) = (
        me.fingerprint(),
        ctx.ca.fingerprint(),
        key.cert.fingerprint(),
    );
    let addr = address.to_owned();
    let v = tokio::task::spawn_blocking(move || {
        sealpost_trust::TrustNetwork::new(certs, Arc::new(StandardPolicy::new()), now + SKEW)
            .map(|net| net.authenticate(&viewer, &ca, &target, &addr))
    })
    .await
    .map_err(ServiceError::internal)?
    .map_err(ServiceError::internal)?;
    let mut view = super::trust::view(&v);
    let vouched = !v.paths.is_empty();
    let first = match key.source {
        KeySource::Imported => "imported by you".to_owned(),
        KeySource::ImportedByAdmin => "imported by your organisation's administrator".to_owned(),
        KeySource::Wkd => format!("published by {}", key.place),
        KeySource::Keyserver if vouched => format!("found on {}", key.place),
        KeySource::Keyserver => {
            format!("only found on {}: nobody vouches for it", key.place)
        }
        KeySource::X509Anchor => String::new(),
    };
    view.explanation.insert(0, first);
    if key.source == KeySource::Keyserver {
        view.explanation.extend(notes.iter().cloned());
    }
    Ok(view)
}

/// WKD, then the keyservers, for `address`: remembered for `delivery.lookup_cache_secs`.
async fn network(ctx: &Context, address: &str, now: SystemTime) -> Arc<NetAnswer> {
    let ttl = Duration::from_secs(ctx.config.delivery.lookup_cache_secs);
    let remembered = ctx
        .outside
        .cache
        .get_if(&address.to_owned(), |(at, _)| fresh(*at, now, ttl));
    if let Some((_, answer)) = remembered {
        return answer;
    }
    // Bounded: at most MAX_LOOKUPS addresses are looked up at once across the node; past that
    // the look-up is "not done", said in words, rather than queued.
    let Ok(_permit) = ctx.outside.running.try_acquire() else {
        return Arc::new(NetAnswer {
            keys: Vec::new(),
            notes: vec![format!(
                "not looked up on the network: this node is already looking up {MAX_LOOKUPS} \
                 addresses; try again in a moment"
            )],
        });
    };
    let answer = Arc::new(look_up(ctx, address).await);
    if !ttl.is_zero() {
        ctx.outside
            .cache
            .insert(address.to_owned(), (now, answer.clone()));
    }
    answer
}

/// Whether an answer fetched at `at` may still serve at `now`: younger than `ttl`, and not
/// from the future (a clock set back forgets rather than keeps an answer longer).
fn fresh(at: SystemTime, now: SystemTime, ttl: Duration) -> bool {
    now.duration_since(at).is_ok_and(|age| age < ttl)
}

async fn look_up(ctx: &Context, address: &str) -> NetAnswer {
    let d = &ctx.config.delivery;
    let mut answer = NetAnswer::default();
    let (local, domain) = address.rsplit_once('@').unwrap_or(("", address));
    let mut places: Vec<(String, String, KeySource)> = Vec::new();
    if d.wkd {
        for url in wkd_urls(local, domain) {
            let place = format!("{domain}'s Web Key Directory");
            places.push((url, place, KeySource::Wkd));
        }
    }
    for base in d
        .keyservers
        .iter()
        .filter_map(|k| crate::config::keyserver_base(k))
    {
        let place = format!("the keyserver {}", base.trim_start_matches("https://"));
        places.push((hkp_url(&base, address), place, KeySource::Keyserver));
    }
    // In order, up to the first place with a key for the address.
    for (url, place, source) in places {
        let body = match ctx.outside.fetch.get(&url).await {
            Ok(body) => body,
            Err(e) => {
                answer.notes.push(format!("{place} ({url}): {e}"));
                continue;
            }
        };
        let keys = matching_certs(ctx, &body, address);
        if keys.is_empty() {
            answer.notes.push(format!(
                "{place} ({url}): no key with a user ID for {address}"
            ));
            continue;
        }
        answer
            .keys
            .extend(keys.into_iter().map(|(cert, armored)| NetKey {
                cert,
                armored,
                source,
                place: place.clone(),
            }));
        break;
    }
    answer
}

/// The WKD URLs of an address, advanced method first (draft-koch-openpgp-webkey-service,
/// section 3.1). `local` is hashed as the draft says (ASCII lower-cased) and sent as it is.
pub fn wkd_urls(local: &str, domain: &str) -> [String; 2] {
    let hash = sealpost_directory::wkd_hash(local);
    let l = percent(local);
    [
        format!("https://openpgpkey.{domain}/.well-known/openpgpkey/{domain}/hu/{hash}?l={l}"),
        format!("https://{domain}/.well-known/openpgpkey/hu/{hash}?l={l}"),
    ]
}

/// An HKP look-up by address (machine-readable answer).
pub fn hkp_url(base: &str, address: &str) -> String {
    format!(
        "{base}/pks/lookup?op=get&options=mr&search={}",
        percent(address)
    )
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether `cert` has a user ID whose address is `address` (normalised), as mail compares
/// addresses.
pub fn carries(cert: &Cert, address: &str) -> bool {
    addresses_of(cert).iter().any(|a| a == address)
}

/// The normalised addresses of a certificate's user IDs.
fn addresses_of(cert: &Cert) -> Vec<String> {
    let mut out: Vec<String> = cert
        .userids()
        .filter_map(|ua| ua.userid().email().ok().flatten().map(str::to_owned))
        .filter_map(|e| crate::normalize_address(&e))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The public certificates in a WKD or keyserver answer (binary or armored, one or more, at
/// most [`MAX_CERTS_PER_ANSWER`] read) that carry `address` (normalised); others are ignored,
/// as is an answer that does not parse. Secret key material is dropped.
pub fn certs_for_address(body: &[u8], address: &str) -> Vec<Cert> {
    use sequoia_openpgp::cert::CertParser;
    let Ok(parser) = CertParser::from_bytes(body) else {
        return Vec::new();
    };
    parser
        .take(MAX_CERTS_PER_ANSWER)
        .flatten()
        .map(Cert::strip_secret_key_material)
        .filter(|cert| carries(cert, address))
        .collect()
}

/// [`certs_for_address`], each armored and parsed through the context's cache.
fn matching_certs(ctx: &Context, body: &[u8], address: &str) -> Vec<(Arc<Cert>, String)> {
    let mut out = Vec::new();
    for cert in certs_for_address(body, address) {
        let Ok(armored) = crate::crypto::cert_to_armored(&cert) else {
            continue;
        };
        // Through the context's parse cache: the same text is parsed once.
        if let Ok(parsed) = ctx.parse_cert(&armored) {
            out.push((parsed, armored));
        }
    }
    out
}

/// Whether the PEM's first certificate chains (through the ones after it) to `anchors` at
/// `now`, for S/MIME encryption; why not, in words.
pub fn check_anchored(anchors: &[X509], pem: &str, now: SystemTime) -> Result<(), String> {
    use openssl::stack::Stack;
    use openssl::x509::store::X509StoreBuilder;
    use openssl::x509::verify::X509VerifyParam;
    use openssl::x509::{X509PurposeId, X509StoreContext};
    let err = |e: openssl::error::ErrorStack| format!("the certificate cannot be checked: {e}");
    let chain = X509::stack_from_pem(pem.as_bytes()).map_err(err)?;
    let (leaf, rest) = chain
        .split_first()
        .ok_or_else(|| "no certificate in the PEM".to_owned())?;
    let mut store = X509StoreBuilder::new().map_err(err)?;
    for a in anchors {
        store.add_cert(a.clone()).map_err(err)?;
    }
    let mut param = X509VerifyParam::new().map_err(err)?;
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    param.set_time(secs.try_into().unwrap_or(0));
    param
        .set_purpose(X509PurposeId::SMIME_ENCRYPT)
        .map_err(err)?;
    store.set_param(&param).map_err(err)?;
    let store = store.build();
    let mut untrusted = Stack::new().map_err(err)?;
    for c in rest {
        untrusted.push(c.clone()).map_err(err)?;
    }
    let mut sc = X509StoreContext::new().map_err(err)?;
    sc.init(&store, leaf, &untrusted, |c| {
        let ok = c.verify_cert()?;
        Ok(if ok {
            Ok(())
        } else {
            Err(format!(
                "it does not chain to a configured trust anchor: {}",
                c.error().error_string()
            ))
        })
    })
    .map_err(err)?
}

// ---- imports ----

/// What an import holds, parsed and checked.
#[derive(Clone, Debug)]
pub struct ParsedImport {
    pub kind: OutsideKeyKind,
    /// OpenPGP fingerprint (hex, upper case) or X.509 SHA-256 (hex, lower case).
    pub fingerprint: String,
    /// The normalised addresses the key carries (at least one).
    pub addresses: Vec<String>,
    /// The armored public certificate, or the PEM certificates.
    pub material: String,
}

/// Why a text is not a key this node imports.
fn refuse(why: impl Into<String>) -> ServiceError {
    ServiceError::NotACertificate(why.into())
}

/// Checks an import (what [`import`] stores, without storing it): one OpenPGP certificate
/// (armored or binary) or PEM X.509 certificates, no secret key, within
/// `max_key_bytes`, carrying an address (and `address`, if given).
pub fn parse_import(
    config: &DeliveryConfig,
    key: &[u8],
    address: Option<&str>,
    now: SystemTime,
) -> Result<ParsedImport, ServiceError> {
    if key.len() > config.max_key_bytes {
        return Err(ServiceError::KeyTooLarge {
            limit: config.max_key_bytes,
        });
    }
    let has = |needle: &[u8]| key.windows(needle.len()).any(|w| w == needle);
    if has(b"PRIVATE KEY-----") || has(b"-----BEGIN PGP PRIVATE KEY BLOCK") {
        return Err(ServiceError::SecretKeyMaterial);
    }
    let parsed = if has(b"-----BEGIN CERTIFICATE-----") {
        parse_x509(key)?
    } else {
        parse_openpgp(key, now)?
    };
    if parsed.addresses.is_empty() {
        return Err(ServiceError::UnusableCert(
            "it carries no e-mail address".into(),
        ));
    }
    if let Some(a) = address {
        let a = crate::normalize_address(a)
            .ok_or_else(|| ServiceError::InvalidAddress(a.to_owned()))?;
        if !parsed.addresses.contains(&a) {
            return Err(ServiceError::UnusableCert(format!(
                "it carries no user ID for {a} (it has: {})",
                parsed.addresses.join(", ")
            )));
        }
    }
    Ok(parsed)
}

fn parse_openpgp(key: &[u8], now: SystemTime) -> Result<ParsedImport, ServiceError> {
    use sequoia_openpgp::cert::CertParser;
    let mut certs = CertParser::from_bytes(key)
        .map_err(|e| refuse(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| refuse(e.to_string()))?;
    if certs.len() != 1 {
        return Err(refuse(format!(
            "expected one OpenPGP certificate, found {}",
            certs.len()
        )));
    }
    let cert = certs.remove(0);
    if cert.is_tsk() {
        return Err(ServiceError::SecretKeyMaterial);
    }
    let policy = StandardPolicy::new();
    if crate::crypto::encryption_key_handles(&cert, &policy, now).is_empty() {
        return Err(ServiceError::UnusableCert(
            "it has no key valid for encryption now".into(),
        ));
    }
    Ok(ParsedImport {
        kind: OutsideKeyKind::Openpgp,
        fingerprint: cert.fingerprint().to_hex(),
        addresses: addresses_of(&cert),
        material: crate::crypto::cert_to_armored(&cert).map_err(ServiceError::internal)?,
    })
}

fn parse_x509(key: &[u8]) -> Result<ParsedImport, ServiceError> {
    let chain = X509::stack_from_pem(key).map_err(|e| refuse(e.to_string()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| refuse("no certificate in the PEM"))?;
    let digest = leaf
        .digest(MessageDigest::sha256())
        .map_err(ServiceError::internal)?;
    let mut addresses: Vec<String> = leaf
        .subject_alt_names()
        .into_iter()
        .flatten()
        .filter_map(|n| n.email().map(str::to_owned))
        .chain(
            leaf.subject_name()
                .entries_by_nid(openssl::nid::Nid::PKCS9_EMAILADDRESS)
                .filter_map(|e| e.data().to_string().ok()),
        )
        .filter_map(|e| crate::normalize_address(&e))
        .collect();
    addresses.sort();
    addresses.dedup();
    let mut material = String::new();
    for c in &chain {
        let pem = c.to_pem().map_err(ServiceError::internal)?;
        material.push_str(&String::from_utf8_lossy(&pem));
    }
    Ok(ParsedImport {
        kind: OutsideKeyKind::X509,
        fingerprint: hex::encode(digest),
        addresses,
        material,
    })
}

/// Imports a key (an OpenPGP certificate, armored or binary, or an X.509 certificate in PEM)
/// for `owner`: a user's for themselves, or an administrator's for everyone. It must carry an
/// address (and `address`, if given); secret keys, oversized input and garbage are refused.
/// Importing the same key again replaces it.
pub async fn import(
    store: &dyn MetaStore,
    config: &DeliveryConfig,
    owner: KeyOwner,
    actor: &str,
    key: &[u8],
    address: Option<&str>,
    now: SystemTime,
) -> Result<OutsideKeyView, ServiceError> {
    let p = parse_import(config, key, address, now)?;
    let max = match owner {
        KeyOwner::User(_) => config.max_imports_per_user,
        KeyOwner::Admin => config.max_imports_per_user.saturating_mul(10),
    };
    let event = LogEvent::new("outside_key.imported", actor, &p.fingerprint).with(
        serde_json::json!({ "kind": p.kind.as_str(), "addresses": p.addresses,
                            "for": if owner == KeyOwner::Admin { "everyone" } else { actor } }),
    );
    let at = super::unix(now);
    store
        .import_outside_key(
            NewOutsideKey {
                owner,
                kind: p.kind.as_str(),
                fingerprint: p.fingerprint.clone(),
                addresses: p.addresses.clone(),
                material: p.material.clone(),
            },
            max,
            event,
            at,
        )
        .await?;
    Ok(OutsideKeyView {
        kind: p.kind,
        fingerprint: p.fingerprint,
        addresses: p.addresses,
        source: source_of(owner),
        imported_at: at,
        key: p.material,
    })
}

fn source_of(owner: KeyOwner) -> KeySource {
    match owner {
        KeyOwner::User(_) => KeySource::Imported,
        KeyOwner::Admin => KeySource::ImportedByAdmin,
    }
}

fn view_of(row: OutsideKeyRow) -> OutsideKeyView {
    OutsideKeyView {
        kind: if row.kind == "x509" {
            OutsideKeyKind::X509
        } else {
            OutsideKeyKind::Openpgp
        },
        fingerprint: row.fingerprint,
        addresses: row.addresses,
        source: source_of(row.owner),
        imported_at: row.imported_at,
        key: row.material,
    }
}

/// `owner`'s own imports (a user's list does not show the administrators').
pub async fn list(
    store: &dyn MetaStore,
    config: &DeliveryConfig,
    owner: KeyOwner,
) -> Result<Vec<OutsideKeyView>, ServiceError> {
    let limit = usize::try_from(config.max_imports_per_user.saturating_mul(10)).unwrap_or(10_000);
    Ok(store
        .outside_keys_of(owner, limit)
        .await?
        .into_iter()
        .map(view_of)
        .collect())
}

/// Removes `owner`'s import of the key with this fingerprint (OpenPGP fingerprint or X.509
/// SHA-256, hex in any case, spaces allowed).
pub async fn remove(
    store: &dyn MetaStore,
    owner: KeyOwner,
    actor: &str,
    fingerprint: &str,
    now: SystemTime,
) -> Result<(), ServiceError> {
    let fpr: String = fingerprint
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if fpr.is_empty() || fpr.len() > 64 || !fpr.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ServiceError::InvalidRequest(
            "a fingerprint is hexadecimal".into(),
        ));
    }
    // OpenPGP fingerprints are stored in upper case (sequoia's hex), SHA-256 in lower case.
    let event = LogEvent::new("outside_key.removed", actor, &fpr);
    let at = super::unix(now);
    for candidate in [fpr.to_ascii_uppercase(), fpr.clone()] {
        if store
            .remove_outside_key(owner, &candidate, event.clone(), at)
            .await?
        {
            return Ok(());
        }
    }
    Err(ServiceError::UnknownImport { fingerprint: fpr })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::{fresh, hkp_url, wkd_urls};

    #[test]
    fn remembered_answers_serve_for_the_ttl_by_now() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ttl = Duration::from_secs(300);
        for (now, want) in [
            (t, true),
            (t + Duration::from_secs(299), true),
            (t + Duration::from_secs(300), false),
            (t + Duration::from_secs(3600), false),
            // A clock set back: forget rather than keep longer.
            (t - Duration::from_secs(1), false),
        ] {
            assert_eq!(fresh(t, now, ttl), want, "{now:?}");
        }
        assert!(!fresh(t, t, Duration::ZERO));
    }

    /// The URLs of draft-koch-openpgp-webkey-service section 3.1 (its example hash; the second
    /// from GnuPG's `gpg-wks-client --print-wkd-hash`), and HKP.
    #[test]
    fn wkd_and_hkp_urls() {
        assert_eq!(
            wkd_urls("Joe.Doe", "example.org"),
            [
                "https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe",
                "https://example.org/.well-known/openpgpkey/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe",
            ]
        );
        assert_eq!(
            wkd_urls("a+b", "x.test")[1],
            "https://x.test/.well-known/openpgpkey/hu/i6wwpbayndmjsnjzbzdj15jgc77g8a4f?l=a%2Bb"
        );
        assert_eq!(
            hkp_url("https://keys.test", "kim+x@ks.test"),
            "https://keys.test/pks/lookup?op=get&options=mr&search=kim%2Bx%40ks.test"
        );
    }
}
