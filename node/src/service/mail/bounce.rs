//! Bounces that come back later (docs/mail.md "SMTP in", "Bounces"): a relay that took an
//! outside mail with `250` and could not deliver it sends a delivery status notification
//! (RFC 3464) to the mail's envelope sender, a bounce address naming its queue row
//! (`notify::bounce`). The rules, once, for the SMTP door:
//!
//! - [`bounce_recipient`]: `RCPT TO` a bounce address of ours is taken only when its tag is
//!   the node's, the row exists and is younger than the queue's give-up window plus
//!   [`MARGIN_SECS`], and the mail comes with the null reverse path (`MAIL FROM:<>`); anything
//!   else is the same `unknown_recipient` as an unknown user (no oracle).
//! - [`BounceMail`]: the bounce, in memory only (it may quote the mail, for a `tls` copy in
//!   plaintext), bounded like any mail. [`BounceMail::finish`] parses it with `mail-parser`
//!   and, if it is a DSN whose recipient block for the row's recipient says `Action: failed`,
//!   fails the row with the status and diagnostic in words (`NotifyStore::bounce_notification`,
//!   one commit, the sender told). Nothing else of the bounce is kept. Anything else (not a
//!   DSN, another action, a row failed already, a second bounce) changes nothing: the door
//!   answers `250` either way.

use std::time::SystemTime;

use mail_parser::{MessageParser, MimeHeaders};
use zeroize::Zeroizing;

use crate::notify::bounce::{is_bounce_shaped, parse_bounce_address};
use crate::service::{Context, ServiceError};
use crate::storage::notify::NotificationState;

/// How long after a row was queued, beyond the queue's give-up window, a bounce for it is
/// still taken: a relay keeps a mail it took for days (Postfix: 5) before it bounces it.
pub const MARGIN_SECS: i64 = 7 * 86_400;
/// The longest reason kept from a bounce, in characters.
const REASON_CHARS: usize = 400;

/// The queue row a bounce is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BounceTarget {
    pub row: i64,
    /// The row's recipient: the one a DSN's recipient block must name.
    pub recipient: String,
}

/// The rule for a `RCPT TO` that may be a bounce address: `Ok(None)` if `address` is not
/// shaped like one of ours (the ordinary recipient rules apply), `Ok(Some)` for a bounce that
/// is taken, else `unknown_recipient` whatever the reason (forged, old, not a null sender).
pub async fn bounce_recipient(
    ctx: &Context,
    address: &str,
    mail_from: &str,
    now: SystemTime,
) -> Result<Option<BounceTarget>, ServiceError> {
    let domain = &ctx.config.domain;
    if !is_bounce_shaped(domain, address) {
        return Ok(None);
    }
    let unknown = || ServiceError::UnknownRecipients {
        addresses: vec![address.to_owned()],
    };
    let row = parse_bounce_address(&ctx.bounce_key, domain, address).ok_or_else(unknown)?;
    if !mail_from.is_empty() {
        tracing::debug!(
            row,
            "smtp_in: a bounce address with a non-null sender: refused"
        );
        return Err(unknown());
    }
    let record = ctx.store.notification(row).await?.ok_or_else(unknown)?;
    let window = (ctx.config.relay.give_up_after_secs as i64).saturating_add(MARGIN_SECS);
    if crate::service::unix(now) > record.created_at.saturating_add(window) {
        tracing::debug!(row, "smtp_in: a bounce for a row past its window: refused");
        return Err(unknown());
    }
    Ok(Some(BounceTarget {
        row,
        recipient: record.recipient,
    }))
}

/// A bounce streaming in: held in memory only, at most `limit` bytes.
pub struct BounceMail {
    target: BounceTarget,
    raw: Zeroizing<Vec<u8>>,
    limit: u64,
}

impl BounceMail {
    pub fn new(target: BounceTarget, limit: u64) -> BounceMail {
        BounceMail {
            target,
            raw: Zeroizing::new(Vec::new()),
            limit,
        }
    }

    /// The next bytes (dot-unstuffed); past the limit `too_large`.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), ServiceError> {
        let size = (self.raw.len() as u64).saturating_add(bytes.len() as u64);
        if size > self.limit {
            return Err(ServiceError::TooLarge { limit: self.limit });
        }
        self.raw.extend_from_slice(bytes);
        Ok(())
    }

    /// The bounce ended: a DSN saying the row's recipient `failed` fails the row (committed
    /// before this returns); anything else changes nothing. Whether the row failed now.
    pub async fn finish(self, ctx: &Context, now: SystemTime) -> Result<bool, ServiceError> {
        let BounceMail { target, raw, .. } = self;
        let Some(report) = failure_of(&raw, &target.recipient) else {
            tracing::debug!(
                row = target.row,
                "smtp_in: a bounce that fails nothing: dropped"
            );
            return Ok(false);
        };
        drop(raw);
        let record = ctx.store.notification(target.row).await?;
        if record.is_none_or(|r| r.state != NotificationState::Sent) {
            tracing::debug!(
                row = target.row,
                "smtp_in: a bounce for a row not sent: dropped"
            );
            return Ok(false);
        }
        let reason = reason_words(&target.recipient, &report);
        let failed = ctx
            .store
            .bounce_notification(target.row, &reason, crate::service::unix(now))
            .await?;
        if failed {
            tracing::info!(
                row = target.row,
                "smtp_in: a bounce failed an outside delivery"
            );
        }
        Ok(failed)
    }
}

/// One recipient block of a delivery status notification (RFC 3464 §2.3), as words.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DsnRecipient {
    /// `Final-Recipient`'s address (after `rfc822;`), lowercase.
    pub final_recipient: String,
    /// `Original-Recipient`'s address, lowercase, if given.
    pub original_recipient: Option<String>,
    /// `Action`, lowercase: `failed`, `delayed`, `delivered`, `relayed`, `expanded`.
    pub action: String,
    pub status: String,
    /// `Diagnostic-Code` without its type (`smtp;`), on one line.
    pub diagnostic: Option<String>,
}

/// The recipient blocks of `raw` if it is a DSN: `multipart/report;
/// report-type=delivery-status` with a `message/delivery-status` part (RFC 3462, 3464).
/// Every block is read as a header section by `mail-parser`.
pub fn parse_dsn(raw: &[u8]) -> Option<Vec<DsnRecipient>> {
    let m = MessageParser::default().parse(raw)?;
    let ct = m.root_part().content_type()?;
    if !ct.ctype().eq_ignore_ascii_case("multipart")
        || !ct.subtype()?.eq_ignore_ascii_case("report")
        || !ct
            .attribute("report-type")?
            .eq_ignore_ascii_case("delivery-status")
    {
        return None;
    }
    let status = m.parts.iter().find(|p| {
        p.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("message")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("delivery-status"))
        })
    })?;
    let body = status.contents();
    let mut out = Vec::new();
    // The per-message block comes first, then one block per recipient; blocks are separated
    // by empty lines.
    for block in blocks(body) {
        let mut section = block.to_vec();
        section.extend_from_slice(b"\r\n\r\n");
        let Some(h) = MessageParser::default().parse_headers(&section[..]) else {
            continue;
        };
        let field = |name: &'static str| h.header_raw(name).map(one_line);
        let Some(final_recipient) = field("Final-Recipient").and_then(|v| address_of(&v)) else {
            continue;
        };
        out.push(DsnRecipient {
            final_recipient,
            original_recipient: field("Original-Recipient").and_then(|v| address_of(&v)),
            action: field("Action").unwrap_or_default().to_ascii_lowercase(),
            status: field("Status").unwrap_or_default(),
            diagnostic: field("Diagnostic-Code").map(|d| match d.split_once(';') {
                Some((_, text)) => text.trim().to_owned(),
                None => d,
            }),
        });
    }
    Some(out)
}

/// The block of `raw` that says `recipient` failed, if it is a DSN with one.
pub fn failure_of(raw: &[u8], recipient: &str) -> Option<DsnRecipient> {
    parse_dsn(raw)?.into_iter().find(|r| {
        r.action == "failed"
            && (r.final_recipient.eq_ignore_ascii_case(recipient)
                || r.original_recipient
                    .as_deref()
                    .is_some_and(|o| o.eq_ignore_ascii_case(recipient)))
    })
}

/// The reason a bounced recipient failed, for the sender: "The mail server of pgp.test
/// refused it after accepting: 5.1.1 …", at most [`REASON_CHARS`] characters, one line.
pub fn reason_words(recipient: &str, r: &DsnRecipient) -> String {
    let domain = recipient.rsplit_once('@').map_or(recipient, |(_, d)| d);
    let said = match &r.diagnostic {
        Some(d) if !r.status.is_empty() && !d.contains(&r.status) => {
            format!("{} {d}", r.status)
        }
        Some(d) => d.clone(),
        None => r.status.clone(),
    };
    let mut said = one_line(&said);
    if said.chars().count() > REASON_CHARS {
        said = said.chars().take(REASON_CHARS).collect::<String>() + "…";
    }
    format!("The mail server of {domain} refused it after accepting: {said}")
}

/// The empty-line separated blocks of a DSN body.
fn blocks(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = body;
    std::iter::from_fn(move || {
        loop {
            if rest.is_empty() {
                return None;
            }
            let end = find_blank(rest);
            let (block, next) = match end {
                Some((at, len)) => (&rest[..at], &rest[at + len..]),
                None => (rest, &rest[rest.len()..]),
            };
            rest = next;
            let trimmed = trim_line_ends(block);
            if !trimmed.is_empty() {
                return Some(trimmed);
            }
        }
    })
}

/// Where the first empty line (`\r\n\r\n` or `\n\n`) is, and its length.
fn find_blank(b: &[u8]) -> Option<(usize, usize)> {
    let crlf = b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    let lf = b.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn trim_line_ends(mut b: &[u8]) -> &[u8] {
    while let [b'\r' | b'\n', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b'\r' | b'\n'] = b {
        b = rest;
    }
    b
}

/// A header value on one line: folds and control characters become single spaces.
fn one_line(v: &str) -> String {
    v.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The address of `rfc822; dora@pgp.test`, lowercase.
fn address_of(v: &str) -> Option<String> {
    let (kind, addr) = v.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("rfc822") {
        return None;
    }
    let addr = addr.trim().trim_start_matches('<').trim_end_matches('>');
    (!addr.is_empty() && addr.contains('@')).then(|| addr.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DSN as Postfix writes it (bounce(8)), its recipient block folded.
    const POSTFIX_DSN: &str = "Return-Path: <>\r\n\
From: MAILER-DAEMON@relay.test (Mail Delivery System)\r\n\
To: bounce+3-0123456789abcdef01234567@alpha.test\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
Auto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status;\r\n\
\tboundary=\"B1\"\r\n\
\r\n\
--B1\r\n\
Content-Description: Notification\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
I'm sorry to have to inform you that your message could not be delivered.\r\n\
\r\n\
--B1\r\n\
Content-Description: Delivery report\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; relay.test\r\n\
X-Postfix-Queue-ID: 4ABC\r\n\
Arrival-Date: Mon,  7 Dec 2026 17:00:00 +0000 (UTC)\r\n\
\r\n\
Final-Recipient: rfc822; Dora@pgp.test\r\n\
Original-Recipient: rfc822;dora@pgp.test\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Remote-MTA: dns; mx.pgp.test\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <dora@pgp.test>: Recipient address rejected:\r\n\
\tUser unknown in virtual mailbox table\r\n\
\r\n\
Final-Recipient: rfc822; erin@pgp.test\r\n\
Action: delayed\r\n\
Status: 4.4.1\r\n\
\r\n\
--B1\r\n\
Content-Description: Undelivered Message\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: alice@alpha.test\r\n\
Subject: the secret figures\r\n\
\r\n\
quoted body\r\n\
\r\n\
--B1--\r\n";

    #[test]
    fn a_postfix_dsn_gives_each_recipients_action_status_and_diagnostic() {
        let got = parse_dsn(POSTFIX_DSN.as_bytes()).unwrap();
        assert_eq!(
            got,
            [
                DsnRecipient {
                    final_recipient: "dora@pgp.test".into(),
                    original_recipient: Some("dora@pgp.test".into()),
                    action: "failed".into(),
                    status: "5.1.1".into(),
                    diagnostic: Some(
                        "550 5.1.1 <dora@pgp.test>: Recipient address rejected: User unknown \
                         in virtual mailbox table"
                            .into()
                    ),
                },
                DsnRecipient {
                    final_recipient: "erin@pgp.test".into(),
                    original_recipient: None,
                    action: "delayed".into(),
                    status: "4.4.1".into(),
                    diagnostic: None,
                },
            ]
        );
    }

    #[test]
    fn only_a_failed_action_for_the_rows_recipient_is_a_failure() {
        let raw = POSTFIX_DSN.as_bytes();
        let dora = failure_of(raw, "dora@pgp.test").unwrap();
        assert_eq!(
            reason_words("dora@pgp.test", &dora),
            "The mail server of pgp.test refused it after accepting: 550 5.1.1 \
             <dora@pgp.test>: Recipient address rejected: User unknown in virtual mailbox table"
        );
        // erin's mail is only delayed; frank is not in the report.
        assert_eq!(failure_of(raw, "erin@pgp.test"), None);
        assert_eq!(failure_of(raw, "frank@pgp.test"), None);
    }

    #[test]
    fn what_is_not_a_dsn_fails_nothing() {
        let plain = "From: someone@out.test\r\nSubject: Undelivered Mail\r\n\r\n\
                     Final-Recipient: rfc822; dora@pgp.test\r\nAction: failed\r\n";
        let other_report = POSTFIX_DSN.replace("report-type=delivery-status", "report-type=x");
        let no_status_part = POSTFIX_DSN.replace(
            "Content-Type: message/delivery-status",
            "Content-Type: text/plain",
        );
        for raw in [plain, &other_report, &no_status_part, "", "\r\n\r\n"] {
            assert_eq!(failure_of(raw.as_bytes(), "dora@pgp.test"), None, "{raw}");
        }
    }

    #[test]
    fn a_long_or_hostile_diagnostic_is_one_short_line() {
        let r = DsnRecipient {
            final_recipient: "dora@pgp.test".into(),
            action: "failed".into(),
            status: "5.0.0".into(),
            diagnostic: Some(format!("bad\u{7}\r\nnews {}", "x".repeat(1000))),
            ..Default::default()
        };
        let words = reason_words("dora@pgp.test", &r);
        assert!(
            words.starts_with(
                "The mail server of pgp.test refused it after accepting: 5.0.0 bad news x"
            ),
            "{words}"
        );
        assert!(!words.chars().any(char::is_control));
        assert!(words.chars().count() < 500, "{}", words.len());
        // Without a diagnostic, the status alone.
        let r = DsnRecipient {
            diagnostic: None,
            ..r
        };
        assert_eq!(
            reason_words("dora@pgp.test", &r),
            "The mail server of pgp.test refused it after accepting: 5.0.0"
        );
    }
}
