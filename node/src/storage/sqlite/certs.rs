//! [`CertStore`] on SQLite: storing certificates and looking them up (by fingerprint, key ID,
//! address, substring, generation), the hot ones through the read cache.
//!
//! Uses the store and `rows`; it must not use another concern's module.

use async_trait::async_trait;
use rusqlite::params;

use super::SqliteStore;
use super::rows::{put_cert, query_certs};
use crate::storage::certs::{CertRecord, CertStore};
use crate::storage::error::{Result, Timestamp};
use crate::storage::log::LogEvent;

#[async_trait]
impl CertStore for SqliteStore {
    async fn put_cert(
        &self,
        record: CertRecord,
        origin: &str,
        event: Option<LogEvent>,
        now: Timestamp,
    ) -> Result<()> {
        let origin = origin.to_owned();
        self.write(move |c, chain| {
            put_cert(c, &record, &origin, now)?;
            if let Some(e) = &event {
                chain.append(c, now, e)?;
            }
            Ok(())
        })
        .await
    }

    async fn cert_by_fingerprint(&self, fingerprint: &str) -> Result<Option<String>> {
        if let Some(a) = self.auth.cert(fingerprint) {
            return Ok(Some(a));
        }
        let generation = self.auth.generation();
        let f = fingerprint.to_owned();
        let armored = self
            .read_point(move |c| {
                Ok(query_certs(c, "SELECT armored FROM certs WHERE fingerprint = ?1", [f])?.pop())
            })
            .await?;
        if let Some(a) = &armored {
            self.auth.keep_cert(generation, fingerprint, a);
        }
        Ok(armored)
    }

    async fn certs_by_handle(&self, handle: &str) -> Result<Vec<String>> {
        let h = handle.to_owned();
        self.read(move |c| {
            query_certs(
                c,
                "SELECT c.armored FROM cert_handles h JOIN certs c ON c.fingerprint = h.fingerprint WHERE h.handle = ?1",
                [h],
            )
        })
        .await
    }

    async fn certs_by_email(&self, email: &str) -> Result<Vec<String>> {
        let e = email.to_owned();
        self.read(move |c| {
            query_certs(
                c,
                "SELECT c.armored FROM cert_emails e JOIN certs c ON c.fingerprint = e.fingerprint WHERE e.email = ?1",
                [e],
            )
        })
        .await
    }

    async fn certs_search(&self, text: &str, limit: usize) -> Result<Vec<String>> {
        // A substring of an address: escape LIKE's wildcards so they match literally.
        let pattern = format!(
            "%{}%",
            text.to_ascii_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        self.read(move |c| {
            query_certs(
                c,
                "SELECT c.armored FROM certs c WHERE c.fingerprint IN
                   (SELECT fingerprint FROM cert_emails WHERE email LIKE ?1 ESCAPE '\\') LIMIT ?2",
                params![pattern, limit as i64],
            )
        })
        .await
    }

    async fn all_certs(&self) -> Result<Vec<String>> {
        self.read(|c| query_certs(c, "SELECT armored FROM certs", []))
            .await
    }

    async fn certs_since(&self, generation: u64) -> Result<Vec<String>> {
        self.read(move |c| {
            query_certs(
                c,
                "SELECT armored FROM certs WHERE generation > ?1",
                [generation as i64],
            )
        })
        .await
    }

    async fn cert_generation(&self) -> Result<u64> {
        // Only `put_cert` moves it, in the transaction that writes `certs` (which bumps the
        // cache's generation).
        if let Some(g) = self.auth.cert_generation() {
            return Ok(g);
        }
        let generation = self.auth.generation();
        let g = self
            .read_point(|c| {
                Ok(
                    c.prepare_cached("SELECT value FROM meta WHERE key = 'cert_generation'")?
                        .query_row([], |r| r.get::<_, i64>(0))? as u64,
                )
            })
            .await?;
        self.auth.keep_cert_generation(generation, g);
        Ok(g)
    }
}
