//! [`CustodyStore`] for [`SqliteStore`]: compliance officers, the custody of the compliance
//! key and access cases (tables `compliance_officers`, `compliance_custody`,
//! `compliance_custody_shares`, `compliance_cases`, `compliance_approvals`), and the
//! envelope-data search over `messages`.
//!
//! Uses the store alone; it must not use another concern's module.

use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::rows::{drop_message, json};
use crate::storage::compliance_custody::{
    ApprovalRow, ArchiveQuery, ArchiveRow, CaseLogRow, CaseRow, CaseStep, CustodyRow,
    CustodyShareRow, CustodyStore, HoldRow, HoldStep, NewCustody,
};
use crate::storage::error::{Result, Timestamp};
use crate::storage::log::LogEvent;

const CASE_COLUMNS: &str = "c.id, c.custody_id, c.requester_id, a.address, c.case_ref, \
     c.message_ids, c.request_key, c.state, c.created_at, c.refused_by";

fn case_row(c: &Connection, id: i64) -> Result<Option<CaseRow>> {
    let row = c
        .prepare_cached(&format!(
            "SELECT {CASE_COLUMNS} FROM compliance_cases c JOIN accounts a ON a.id = c.requester_id
             WHERE c.id = ?1"
        ))?
        .query_row([id], |r| {
            let ids: String = r.get(5)?;
            Ok(CaseRow {
                id: r.get(0)?,
                custody_id: r.get(1)?,
                requester_id: r.get(2)?,
                requester: r.get(3)?,
                case_ref: r.get(4)?,
                message_ids: serde_json::from_str(&ids).unwrap_or_default(),
                request_key: r.get(6)?,
                state: r.get(7)?,
                created_at: r.get(8)?,
                approvals: Vec::new(),
                refused_by: r.get(9)?,
                hold: None,
            })
        })
        .optional()?;
    let Some(mut row) = row else {
        return Ok(None);
    };
    let mut stmt = c.prepare_cached(
        "SELECT p.officer_id, a.address, p.share, p.approved_at
         FROM compliance_approvals p JOIN accounts a ON a.id = p.officer_id
         WHERE p.case_id = ?1 ORDER BY p.approved_at, p.officer_id",
    )?;
    row.approvals = stmt
        .query_map([id], |r| {
            Ok(ApprovalRow {
                officer_id: r.get(0)?,
                officer: r.get(1)?,
                share: r.get(2)?,
                approved_at: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    row.hold = c
        .prepare_cached(
            "SELECT reason, placed_by, placed_at FROM compliance_holds WHERE case_id = ?1",
        )?
        .query_row([id], |r| {
            Ok(HoldRow {
                case_id: id,
                reason: r.get(0)?,
                placed_by: r.get(1)?,
                placed_at: r.get(2)?,
            })
        })
        .optional()?;
    Ok(Some(row))
}

/// Messages a case under a legal hold names (`compliance_cases.message_ids`: a JSON array).
const HELD: &str = "EXISTS (SELECT 1 FROM compliance_holds h
     JOIN compliance_cases k ON k.id = h.case_id, json_each(k.message_ids) j
     WHERE j.value = messages.id)";

/// The state of case `id`, if it exists.
fn case_state(c: &Connection, id: i64) -> Result<Option<String>> {
    Ok(c.query_row(
        "SELECT state FROM compliance_cases WHERE id = ?1",
        [id],
        |r| r.get(0),
    )
    .optional()?)
}

#[async_trait::async_trait]
impl CustodyStore for SqliteStore {
    async fn set_officer(
        &self,
        account_id: i64,
        address: &str,
        officer: bool,
        actor: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let (address, actor) = (address.to_owned(), actor.to_owned());
        self.write(move |c, chain| {
            let changed = if officer {
                c.execute(
                    "INSERT OR IGNORE INTO compliance_officers (account_id, added_at, added_by)
                     VALUES (?1, ?2, ?3)",
                    params![account_id, now, actor],
                )?
            } else {
                c.execute(
                    "DELETE FROM compliance_officers WHERE account_id = ?1",
                    [account_id],
                )?
            };
            if changed == 0 {
                return Ok(false);
            }
            let kind = if officer {
                "compliance.officer_added"
            } else {
                "compliance.officer_removed"
            };
            chain.append(c, now, &LogEvent::new(kind, &actor, &address))?;
            Ok(true)
        })
        .await
    }

    async fn officers(&self) -> Result<Vec<(i64, String, Timestamp)>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT o.account_id, a.address, o.added_at
                 FROM compliance_officers o JOIN accounts a ON a.id = o.account_id
                 ORDER BY o.added_at, o.account_id",
            )?;
            Ok(stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn is_officer(&self, account_id: i64) -> Result<bool> {
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT EXISTS (SELECT 1 FROM compliance_officers WHERE account_id = ?1)",
                [account_id],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn put_custody(&self, custody: NewCustody, actor: &str, now: Timestamp) -> Result<i64> {
        let actor = actor.to_owned();
        self.write(move |c, chain| {
            c.execute(
                "UPDATE compliance_custody SET retired_at = ?1 WHERE retired_at IS NULL",
                [now],
            )?;
            let superseded = c.execute(
                "UPDATE compliance_cases SET state = 'superseded', decided_at = ?1
                 WHERE state = 'pending'",
                [now],
            )?;
            let id: i64 = c.query_row(
                "INSERT INTO compliance_custody
                     (fingerprint, cert, locked_key, threshold, created_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
                params![
                    custody.fingerprint,
                    custody.cert,
                    custody.locked_key,
                    custody.threshold,
                    now,
                    actor
                ],
                |r| r.get(0),
            )?;
            for (account_id, _, share) in &custody.shares {
                c.execute(
                    "INSERT INTO compliance_custody_shares (custody_id, account_id, wrapped_share)
                     VALUES (?1, ?2, ?3)",
                    params![id, account_id, share],
                )?;
            }
            let officers: Vec<&str> = custody.shares.iter().map(|s| s.1.as_str()).collect();
            chain.append(
                c,
                now,
                &LogEvent::new("compliance.custody_set", &actor, &custody.fingerprint).with(
                    serde_json::json!({
                        "custody": id,
                        "threshold": custody.threshold,
                        "officers": officers,
                        "superseded_cases": superseded,
                    }),
                ),
            )?;
            Ok(id)
        })
        .await
    }

    async fn current_custody(&self) -> Result<Option<CustodyRow>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT id, fingerprint, cert, locked_key, threshold, created_at, created_by
                 FROM compliance_custody WHERE retired_at IS NULL ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok(CustodyRow {
                        id: r.get(0)?,
                        fingerprint: r.get(1)?,
                        cert: r.get(2)?,
                        locked_key: r.get(3)?,
                        threshold: r.get(4)?,
                        created_at: r.get(5)?,
                        created_by: r.get(6)?,
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    async fn custody_shares(&self, custody_id: i64) -> Result<Vec<CustodyShareRow>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT s.account_id, a.address, s.wrapped_share
                 FROM compliance_custody_shares s JOIN accounts a ON a.id = s.account_id
                 WHERE s.custody_id = ?1 ORDER BY a.address",
            )?;
            Ok(stmt
                .query_map([custody_id], |r| {
                    Ok(CustodyShareRow {
                        account_id: r.get(0)?,
                        address: r.get(1)?,
                        wrapped_share: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn create_case(
        &self,
        custody_id: i64,
        requester_id: i64,
        requester: &str,
        case_ref: &str,
        message_ids: &[String],
        request_key: &str,
        request_key_fingerprint: &str,
        now: Timestamp,
    ) -> Result<i64> {
        let (requester, case_ref, request_key, fpr) = (
            requester.to_owned(),
            case_ref.to_owned(),
            request_key.to_owned(),
            request_key_fingerprint.to_owned(),
        );
        let message_ids = message_ids.to_vec();
        self.write(move |c, chain| {
            let id: i64 = c.query_row(
                "INSERT INTO compliance_cases
                     (custody_id, requester_id, case_ref, message_ids, request_key, state, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6) RETURNING id",
                params![
                    custody_id,
                    requester_id,
                    case_ref,
                    json(&message_ids),
                    request_key,
                    now
                ],
                |r| r.get(0),
            )?;
            chain.append(
                c,
                now,
                &LogEvent::new("compliance.case_requested", &requester, &format!("case:{id}"))
                    .with(serde_json::json!({
                        "case_ref": case_ref,
                        "message_ids": message_ids,
                        "request_key": fpr,
                    })),
            )?;
            Ok(id)
        })
        .await
    }

    async fn cases(&self, state: Option<&str>) -> Result<Vec<CaseRow>> {
        let state = state.map(str::to_owned);
        self.read(move |c| {
            let ids: Vec<i64> = c
                .prepare_cached(
                    "SELECT id FROM compliance_cases WHERE ?1 IS NULL OR state = ?1
                     ORDER BY id DESC LIMIT 500",
                )?
                .query_map([&state], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(case_row(c, id)?);
            }
            Ok(out)
        })
        .await
    }

    async fn case(&self, id: i64) -> Result<Option<CaseRow>> {
        self.read(move |c| case_row(c, id)).await
    }

    async fn approve_case(
        &self,
        id: i64,
        officer_id: i64,
        officer: &str,
        share: &str,
        now: Timestamp,
    ) -> Result<CaseStep> {
        let (officer, share) = (officer.to_owned(), share.to_owned());
        self.write(move |c, chain| {
            match case_state(c, id)? {
                None => return Ok(CaseStep::Unknown),
                Some(s) if s != "pending" => return Ok(CaseStep::Closed(s)),
                Some(_) => {}
            }
            let added = c.execute(
                "INSERT OR IGNORE INTO compliance_approvals (case_id, officer_id, share, approved_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![id, officer_id, share, now],
            )?;
            if added == 0 {
                return Ok(CaseStep::Duplicate);
            }
            chain.append(
                c,
                now,
                &LogEvent::new("compliance.case_approved", &officer, &format!("case:{id}")),
            )?;
            Ok(CaseStep::Done)
        })
        .await
    }

    async fn refuse_case(
        &self,
        id: i64,
        _officer_id: i64,
        officer: &str,
        now: Timestamp,
    ) -> Result<CaseStep> {
        let officer = officer.to_owned();
        self.write(move |c, chain| {
            match case_state(c, id)? {
                None => return Ok(CaseStep::Unknown),
                Some(s) if s != "pending" => return Ok(CaseStep::Closed(s)),
                Some(_) => {}
            }
            c.execute(
                "UPDATE compliance_cases SET state = 'refused', decided_at = ?2, refused_by = ?3
                 WHERE id = ?1",
                params![id, now, officer],
            )?;
            chain.append(
                c,
                now,
                &LogEvent::new("compliance.case_refused", &officer, &format!("case:{id}")),
            )?;
            Ok(CaseStep::Done)
        })
        .await
    }

    async fn release_case(
        &self,
        id: i64,
        requester: &str,
        needed: u32,
        now: Timestamp,
    ) -> Result<CaseStep> {
        let requester = requester.to_owned();
        self.write(move |c, chain| {
            match case_state(c, id)? {
                None => return Ok(CaseStep::Unknown),
                // Released already: the requester may fetch again (each time logged).
                Some(s) if s != "pending" && s != "released" => return Ok(CaseStep::Closed(s)),
                Some(_) => {}
            }
            let approvers: Vec<String> = c
                .prepare_cached(
                    "SELECT a.address FROM compliance_approvals p
                     JOIN accounts a ON a.id = p.officer_id
                     WHERE p.case_id = ?1 ORDER BY p.approved_at, p.officer_id",
                )?
                .query_map([id], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            if (approvers.len() as u32) < needed {
                return Ok(CaseStep::TooFew(approvers.len() as u32, needed));
            }
            c.execute(
                "UPDATE compliance_cases SET state = 'released', decided_at = COALESCE(decided_at, ?2)
                 WHERE id = ?1",
                params![id, now],
            )?;
            chain.append(
                c,
                now,
                &LogEvent::new("compliance.shares_released", &requester, &format!("case:{id}"))
                    .with(serde_json::json!({ "approved_by": approvers })),
            )?;
            Ok(CaseStep::Done)
        })
        .await
    }

    async fn log_message_opened(
        &self,
        case_id: i64,
        officer: &str,
        message_id: &str,
        part: u32,
        now: Timestamp,
    ) -> Result<()> {
        let (officer, message_id) = (officer.to_owned(), message_id.to_owned());
        self.write(move |c, chain| {
            chain.append(
                c,
                now,
                &LogEvent::new("compliance.message_opened", &officer, &message_id)
                    .with(serde_json::json!({ "case": case_id, "part": part })),
            )?;
            Ok(())
        })
        .await
    }

    async fn archive(&self, query: ArchiveQuery) -> Result<Vec<ArchiveRow>> {
        self.read(move |c| {
            // `recipients` is a JSON array of addresses.
            let mut stmt = c.prepare_cached(
                "SELECT id, sender, recipients, size, accepted_at, compliance_pending FROM messages
                 WHERE (?1 IS NULL OR sender = ?1)
                   AND (?2 IS NULL OR EXISTS (SELECT 1 FROM json_each(messages.recipients)
                                              WHERE json_each.value = ?2))
                   AND (?3 IS NULL OR accepted_at >= ?3)
                   AND (?4 IS NULL OR accepted_at < ?4)
                   AND (?6 IS NULL OR compliance_pending = ?6)
                 ORDER BY accepted_at DESC, id DESC LIMIT ?5",
            )?;
            Ok(stmt
                .query_map(
                    params![
                        query.sender,
                        query.recipient,
                        query.from,
                        query.to,
                        query.limit,
                        query.pending
                    ],
                    |r| {
                        let recipients: String = r.get(2)?;
                        Ok(ArchiveRow {
                            message_id: r.get(0)?,
                            sender: r.get(1)?,
                            recipients: serde_json::from_str(&recipients).unwrap_or_default(),
                            size: r.get(3)?,
                            accepted_at: r.get(4)?,
                            pending: r.get(5)?,
                        })
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn messages_exist(&self, ids: Vec<String>) -> Result<Vec<String>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached("SELECT id FROM messages WHERE id = ?1")?;
            let mut out = Vec::new();
            for id in ids {
                if let Some(found) = stmt.query_row([&id], |r| r.get(0)).optional()? {
                    out.push(found);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn case_log(&self, id: i64) -> Result<Vec<CaseLogRow>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, at, kind, actor, subject, detail, hash FROM txlog
                 WHERE (subject = ?1 AND kind LIKE 'compliance.%')
                    OR (kind = 'compliance.message_opened' AND json_extract(detail, '$.case') = ?2)
                 ORDER BY seq",
            )?;
            Ok(stmt
                .query_map(params![format!("case:{id}"), id], |r| {
                    Ok(CaseLogRow {
                        seq: r.get(0)?,
                        at: r.get(1)?,
                        kind: r.get(2)?,
                        actor: r.get(3)?,
                        subject: r.get(4)?,
                        detail: r.get(5)?,
                        hash: r.get(6)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn message_opens(&self, message_id: &str) -> Result<Vec<(Timestamp, i64)>> {
        let message_id = message_id.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT at, json_extract(detail, '$.case') FROM txlog
                 WHERE kind = 'compliance.message_opened' AND subject = ?1 ORDER BY seq",
            )?;
            Ok(stmt
                .query_map([&message_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn place_hold(
        &self,
        id: i64,
        officer: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<HoldStep> {
        let (officer, reason) = (officer.to_owned(), reason.to_owned());
        self.write(move |c, chain| {
            if case_state(c, id)?.is_none() {
                return Ok(HoldStep::Unknown);
            }
            let added = c.execute(
                "INSERT OR IGNORE INTO compliance_holds (case_id, reason, placed_by, placed_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![id, reason, officer, now],
            )?;
            if added == 0 {
                return Ok(HoldStep::Unchanged);
            }
            chain.append(
                c,
                now,
                &LogEvent::new("compliance.hold_placed", &officer, &format!("case:{id}"))
                    .with(serde_json::json!({ "reason": reason })),
            )?;
            Ok(HoldStep::Done)
        })
        .await
    }

    async fn lift_hold(&self, id: i64, officer: &str, now: Timestamp) -> Result<HoldStep> {
        let officer = officer.to_owned();
        self.write(move |c, chain| {
            if case_state(c, id)?.is_none() {
                return Ok(HoldStep::Unknown);
            }
            let gone = c.execute("DELETE FROM compliance_holds WHERE case_id = ?1", [id])?;
            if gone == 0 {
                return Ok(HoldStep::Unchanged);
            }
            chain.append(
                c,
                now,
                &LogEvent::new("compliance.hold_lifted", &officer, &format!("case:{id}")),
            )?;
            Ok(HoldStep::Done)
        })
        .await
    }

    async fn held_cases(&self) -> Result<Vec<i64>> {
        self.read(|c| {
            Ok(
                c.prepare_cached("SELECT case_id FROM compliance_holds ORDER BY case_id")?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            )
        })
        .await
    }

    async fn log_notice_delayed(&self, id: i64, message_id: &str, now: Timestamp) -> Result<bool> {
        let message_id = message_id.to_owned();
        self.write(move |c, chain| {
            let first = c.execute(
                "UPDATE compliance_holds SET notice_delayed = 1
                 WHERE case_id = ?1 AND notice_delayed = 0",
                [id],
            )?;
            if first == 0 {
                return Ok(false);
            }
            chain.append(
                c,
                now,
                &LogEvent::new("compliance.notice_delayed", "node", &format!("case:{id}"))
                    .with(serde_json::json!({ "message": message_id })),
            )?;
            Ok(true)
        })
        .await
    }

    async fn expire_compliance_copies(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<(Vec<String>, Vec<[u8; 32]>)> {
        self.write(move |c, chain| {
            let ids: Vec<String> = c
                .prepare_cached(&format!(
                    "SELECT id FROM messages
                     WHERE retain_until IS NOT NULL AND retain_until <= ?1
                       AND NOT EXISTS (SELECT 1 FROM mailbox WHERE message_id = messages.id)
                       AND NOT EXISTS (SELECT 1 FROM outbox WHERE message_id = messages.id)
                       AND NOT EXISTS (SELECT 1 FROM pickups WHERE message_id = messages.id
                                       AND state IN ('open', 'locked'))
                       AND NOT {HELD}
                     ORDER BY retain_until, id LIMIT ?2"
                ))?
                .query_map(params![now, limit], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut files = Vec::new();
            for id in &ids {
                files.extend(drop_message(c, id)?);
                chain.append(c, now, &LogEvent::new("compliance.expired", "node", id))?;
            }
            Ok((ids, files))
        })
        .await
    }
}
