//! The node's side of the key directory: [`sealpost_directory::DirectoryStore`] over the
//! node's certificate tables. The directory crate serves HKP/VKS/WKD and merges updates; this
//! says where certificates live, who may update which, and which certifiers are known.
//!
//! Every certificate it hands out is the organisation's published view
//! ([`crate::certs::published`]): a key is served for an address of our domain only when our CA
//! vouches for that binding, so a user who put a colleague's address on his own key cannot have
//! the organisation's WKD answer for it.

use std::sync::Arc;

use async_trait::async_trait;
use sealpost_directory::{DirectoryError, DirectoryStore, UpdateRight};
use sequoia_openpgp::{Cert, Fingerprint, KeyHandle, KeyID};

use crate::storage::{LogEvent, MetaStore};

pub struct NodeDirectory {
    pub store: Arc<dyn MetaStore>,
    /// The node's context, for the organisation record (`Context::org_record`).
    pub context: Arc<crate::service::Context>,
    /// The organisation CA (public parts), which vouches for our domain's addresses.
    pub ca: Arc<Cert>,
    /// Our mail domain, lowercased.
    pub domain: String,
}

impl NodeDirectory {
    fn publish(&self, certs: Vec<Cert>) -> Vec<Cert> {
        certs
            .into_iter()
            .map(|c| crate::certs::published(c, &self.ca, &self.domain))
            .collect()
    }
}

/// The certificates the organisation publishes for `address` (lowercased): what its
/// directory and its federation look-ups answer with. None for an address that is neither of
/// our domain nor of a peered one: such keys are our guests' (docs/pickup.md, "Guests"), and
/// who is a guest of the organisation is nobody else's business.
pub async fn published_for_address(
    store: &dyn MetaStore,
    ca: &Cert,
    domain: &str,
    address: &str,
) -> Result<Vec<Cert>, crate::storage::StorageError> {
    let other = crate::domain_of(address);
    if other != domain && store.peer(other).await?.is_none() {
        return Ok(Vec::new());
    }
    Ok(store
        .certs_by_email(address)
        .await?
        .iter()
        .filter_map(|a| crate::crypto::cert_from_armored(a).ok())
        .map(|c| crate::certs::published(c, ca, domain))
        .filter(|c| crate::certs::names_address(c, address))
        .collect())
}

fn parse_all(armored: Vec<String>) -> Result<Vec<Cert>, DirectoryError> {
    armored
        .iter()
        .map(|a| crate::crypto::cert_from_armored(a).map_err(DirectoryError::storage))
        .collect()
}

fn storage_err(e: crate::storage::StorageError) -> DirectoryError {
    match e {
        crate::storage::StorageError::Overloaded => DirectoryError::Overloaded,
        other => DirectoryError::storage(other),
    }
}

#[async_trait]
impl DirectoryStore for NodeDirectory {
    async fn by_fingerprint(&self, fpr: &Fingerprint) -> Result<Option<Cert>, DirectoryError> {
        let found = self
            .store
            .cert_by_fingerprint(&fpr.to_hex())
            .await
            .map_err(storage_err)?;
        Ok(self.publish(parse_all(found.into_iter().collect())?).pop())
    }

    async fn by_keyid(&self, keyid: &KeyID) -> Result<Vec<Cert>, DirectoryError> {
        Ok(self.publish(parse_all(
            self.store
                .certs_by_handle(&keyid.to_hex())
                .await
                .map_err(storage_err)?,
        )?))
    }

    async fn by_email(&self, email: &str) -> Result<Vec<Cert>, DirectoryError> {
        published_for_address(
            self.store.as_ref(),
            &self.ca,
            &self.domain,
            &email.to_ascii_lowercase(),
        )
        .await
        .map_err(storage_err)
    }

    /// Exact addresses only: a substring search (`search=example.org`) would hand anyone the
    /// organisation's staff list. Someone who knows an address finds its key; nobody can list.
    async fn search(&self, text: &str, limit: usize) -> Result<Vec<Cert>, DirectoryError> {
        let text = text.trim().trim_start_matches('<').trim_end_matches('>');
        let Some(address) = crate::normalize_address(text) else {
            return Ok(Vec::new());
        };
        let mut certs = self.by_email(&address).await?;
        certs.truncate(limit);
        Ok(certs)
    }

    async fn by_wkd_hash(&self, hash: &str, domain: &str) -> Result<Vec<Cert>, DirectoryError> {
        // A hash-only WKD request names no address: match the hash against the domain's
        // addresses (internally; nothing is listed to the requester).
        let candidates = parse_all(
            self.store
                .certs_search(&format!("@{domain}"), usize::MAX >> 1)
                .await
                .map_err(storage_err)?,
        )?;
        Ok(self
            .publish(
                candidates
                    .into_iter()
                    .filter(|c| sealpost_directory::wkd::has_hashed_address(c, hash, domain))
                    .collect(),
            )
            .into_iter()
            .filter(|c| sealpost_directory::wkd::has_hashed_address(c, hash, domain))
            .collect())
    }

    async fn may_update(
        &self,
        bearer: Option<&str>,
        fpr: &Fingerprint,
    ) -> Result<UpdateRight, DirectoryError> {
        let Some(token) = bearer else {
            return Ok(UpdateRight::Denied);
        };
        let account = self
            .store
            .session_account(
                crate::service::accounts::token_hash(token.trim()),
                crate::now(),
            )
            .await
            .map_err(storage_err)?;
        let allowed = account.is_some_and(|a| {
            a.state == crate::storage::AccountState::Active
                && (a.is_admin || a.fingerprint.as_deref() == Some(&fpr.to_hex()))
        });
        if !allowed {
            return Ok(UpdateRight::Denied);
        }
        // New user IDs only for what our CA already vouches for on this key: an owner (or an
        // admin) may rename a user ID, never claim another address with it.
        let held = self
            .store
            .cert_by_fingerprint(&fpr.to_hex())
            .await
            .map_err(storage_err)?;
        let new_user_id_addresses = parse_all(held.into_iter().collect())?
            .first()
            .map(|c| crate::certs::vouched_addresses(c, &self.ca))
            .unwrap_or_default();
        Ok(UpdateRight::Allowed {
            new_user_id_addresses,
        })
    }

    async fn is_known_certifier(&self, issuer: &KeyHandle) -> Result<bool, DirectoryError> {
        let hex = match issuer {
            KeyHandle::Fingerprint(f) => f.to_hex(),
            KeyHandle::KeyID(k) => k.to_hex(),
        };
        Ok(!self
            .store
            .certs_by_handle(&hex)
            .await
            .map_err(storage_err)?
            .is_empty())
    }

    async fn store(&self, cert: Cert) -> Result<(), DirectoryError> {
        let revoked = matches!(
            cert.revocation_status(&sequoia_openpgp::policy::StandardPolicy::new(), None),
            sequoia_openpgp::types::RevocationStatus::Revoked(_)
        );
        let record = crate::certs::record(&cert).map_err(DirectoryError::storage)?;
        let kind = if revoked {
            "key.revoked"
        } else {
            "cert.updated"
        };
        let address = record.emails.first().cloned().unwrap_or_default();
        let event = LogEvent::new(kind, &address, &record.fingerprint);
        self.store
            .put_cert(record, "local", Some(event), crate::now())
            .await
            .map_err(storage_err)
    }

    async fn org_record(&self) -> Result<serde_json::Value, DirectoryError> {
        crate::service::compliance::current(&self.context)
            .await
            .map_err(DirectoryError::storage)?;
        Ok(self.context.org_record())
    }
}
