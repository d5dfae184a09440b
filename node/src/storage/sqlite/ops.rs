//! [`OpsStore`] for SQLite: the read probe and the queue counts, on the reader pool.

use async_trait::async_trait;

use super::SqliteStore;
use crate::storage::error::Result;
use crate::storage::ops::{OpsStore, QueueDepths};

/// Grouped counts as `(key, count)` rows.
fn counts(conn: &rusqlite::Connection, sql: &str) -> Result<Vec<(String, u64)>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (key, n) = row?;
        out.push((key, n.max(0) as u64));
    }
    Ok(out)
}

#[async_trait]
impl OpsStore for SqliteStore {
    async fn ping(&self) -> Result<()> {
        self.read(|c| {
            c.query_row(
                "SELECT value FROM meta WHERE key = 'auth_generation'",
                [],
                |r| r.get::<_, i64>(0),
            )?;
            Ok(())
        })
        .await
    }

    async fn queue_depths(&self) -> Result<QueueDepths> {
        self.read(|c| {
            Ok(QueueDepths {
                peers: counts(c, "SELECT domain, COUNT(*) FROM outbox GROUP BY domain")?,
                // Only the recipient's domain is taken out of the row (the partial index
                // `notifications_due` holds exactly the queued rows).
                smtp: counts(
                    c,
                    "SELECT lower(substr(recipient, instr(recipient, '@') + 1)), COUNT(*)
                     FROM notifications WHERE state = 'queued' GROUP BY 1",
                )?,
            })
        })
        .await
    }
}
