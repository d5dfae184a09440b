//! The node's window on the web of trust: a [`sealpost_trust::TrustCache`] over every
//! certificate the node stores, kept current by the certificate generation counter.
//!
//! Building the network (parsing certificates, verifying every certification) is the expensive
//! part, so it happens once per change: a query first reads the generation (one cheap row; it
//! also moves when the admin CLI changes a certificate from another process) and rebuilds only
//! if it moved. Unchanged networks answer from the cache.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sealpost_trust::{TrustCache, Verdict};
use sequoia_openpgp::Fingerprint;
use sequoia_openpgp::policy::StandardPolicy;

use crate::storage::MetaStore;

/// Move the reference time at least this often, so that expiry is judged against a recent
/// clock. Moving it forward is incremental in the cache (usually free).
const CLOCK_STEP: Duration = Duration::from_secs(60);
/// Signatures made up to this far in the future (clock skew between a client and the node)
/// still count.
const SKEW: Duration = Duration::from_secs(60);

struct Current {
    generation: u64,
    /// When the reference time last moved.
    built: Instant,
    cache: Arc<TrustCache>,
}

pub struct TrustView {
    store: Arc<dyn MetaStore>,
    pub ca: Fingerprint,
    current: tokio::sync::Mutex<Option<Current>>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustViewError {
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error(transparent)]
    Trust(#[from] sealpost_trust::TrustError),
    #[error("a stored certificate does not parse: {0}")]
    Corrupt(String),
    #[error("trust computation failed: {0}")]
    Task(String),
}

impl TrustView {
    pub fn new(store: Arc<dyn MetaStore>, ca: Fingerprint) -> TrustView {
        TrustView {
            store,
            ca,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// The cache for the current set of certificates. It is built once (verifying every
    /// signature); afterwards only certificates changed since the last look are fetched and handed
    /// to the cache, which drops just the answers that depended on them, and the reference time
    /// moves forward incrementally.
    pub async fn cache(&self) -> Result<Arc<TrustCache>, TrustViewError> {
        let generation = self.store.cert_generation().await?;
        let mut current = self.current.lock().await;
        if let Some(c) = current.as_mut() {
            let changed = c.generation != generation;
            if changed {
                for armored in &self.store.certs_since(c.generation).await? {
                    let cert = crate::crypto::cert_from_armored(armored)
                        .map_err(|e| TrustViewError::Corrupt(e.to_string()))?;
                    c.cache.update_cert(cert);
                }
                c.generation = generation;
            }
            if changed || c.built.elapsed() >= CLOCK_STEP {
                // New signatures may be dated up to now: keep the reference time ahead of them.
                c.cache.set_reference_time(SystemTime::now() + SKEW);
                c.built = Instant::now();
            }
            return Ok(c.cache.clone());
        }
        let armored = self.store.all_certs().await?;
        let cache = tokio::task::spawn_blocking(move || -> Result<TrustCache, TrustViewError> {
            let certs = armored
                .iter()
                .map(|a| {
                    crate::crypto::cert_from_armored(a)
                        .map_err(|e| TrustViewError::Corrupt(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(TrustCache::new(
                certs,
                Arc::new(StandardPolicy::new()),
                SystemTime::now() + SKEW,
            )?)
        })
        .await
        .map_err(|e| TrustViewError::Task(e.to_string()))??;
        let cache = Arc::new(cache);
        *current = Some(Current {
            generation,
            built: Instant::now(),
            cache: cache.clone(),
        });
        Ok(cache)
    }

    /// Every key claiming `address`, with its verdict for `viewer`.
    pub async fn lookup(
        &self,
        viewer: &Fingerprint,
        address: &str,
    ) -> Result<Arc<Vec<Verdict>>, TrustViewError> {
        let cache = self.cache().await?;
        let (viewer, ca, address) = (viewer.clone(), self.ca.clone(), address.to_owned());
        tokio::task::spawn_blocking(move || cache.lookup(&viewer, &ca, &address))
            .await
            .map_err(|e| TrustViewError::Task(e.to_string()))?
            .map_err(Into::into)
    }

    /// Is `target` the key of `address` for `viewer`?
    pub async fn authenticate(
        &self,
        viewer: &Fingerprint,
        target: &Fingerprint,
        address: &str,
    ) -> Result<Verdict, TrustViewError> {
        let cache = self.cache().await?;
        let (viewer, ca, target, address) = (
            viewer.clone(),
            self.ca.clone(),
            target.clone(),
            address.to_owned(),
        );
        tokio::task::spawn_blocking(move || cache.authenticate(&viewer, &ca, &target, &address))
            .await
            .map_err(|e| TrustViewError::Task(e.to_string()))?
            .map_err(Into::into)
    }
}
