//! The delivery core of notification mail: what an attempt's result means for the
//! notification, and when it is tried next. No I/O and no clock: the driver passes the
//! attempt's result and `now`, and stores the [`NotifyOutcome`] this returns.
//!
//! The rules, as MTAs apply them to a relay:
//! - `250` to the end of the data: sent.
//! - A `5xx` answer to the recipient, to `DATA` or to the data: failed at once; that answer
//!   is about this mail.
//! - Anything else (the relay unreachable, TLS failing, a refused login or sender address, a
//!   `4xx` answer, the connection breaking or timing out) is about the link to the relay, which
//!   an administrator can repair: retried after `base · 2^(n−1)` seconds (n failed attempts),
//!   at most `max`, until `give_up_after` seconds from queueing; the last attempt is made at
//!   that moment, and if it fails too the notification fails with its reason.

use crate::config::RelayConfig;
use crate::storage::Timestamp;
use crate::storage::notify::NotifyOutcome;

/// How long to wait between attempts, and when to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base_secs: u64,
    pub max_secs: u64,
    pub give_up_after_secs: u64,
}

impl RetryPolicy {
    pub fn from_config(c: &RelayConfig) -> RetryPolicy {
        RetryPolicy {
            base_secs: c.retry_base_secs,
            max_secs: c.retry_max_secs,
            give_up_after_secs: c.give_up_after_secs,
        }
    }

    /// The wait after the `failed`-th failed attempt (counting from 1).
    pub fn delay(&self, failed: u32) -> u64 {
        let doublings = failed.saturating_sub(1).min(40);
        self.base_secs
            .saturating_mul(1u64 << doublings)
            .min(self.max_secs)
    }
}

/// Where in the exchange with the relay an answer (or the lack of one) came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Reaching the relay: the connection, its greeting and `EHLO` (with implicit TLS, the
    /// TLS handshake too).
    Connect,
    StartTls,
    Login,
    MailFrom,
    Recipient,
    Data,
    /// The end of the data (`.`): the relay's answer that it took the mail or not.
    EndOfData,
}

/// Who the node spoke to: the relay, or a recipient domain's mail server (direct delivery).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hop {
    Relay,
    /// `domain`'s mail server, `host` when one was chosen (its MX or address-record name).
    Domain {
        domain: String,
        host: Option<String>,
    },
}

impl Hop {
    /// How the hop is named in a reason: "The mail relay", "The mail server of tls.test
    /// (mx.tls.test)".
    fn name(&self) -> String {
        match self {
            Hop::Relay => "The mail relay".into(),
            Hop::Domain {
                domain,
                host: Some(host),
            } => format!("The mail server of {domain} ({host})"),
            Hop::Domain { domain, host: None } => format!("The mail server of {domain}"),
        }
    }

    fn object(&self) -> String {
        match self {
            Hop::Relay => "the mail relay".into(),
            Hop::Domain {
                domain,
                host: Some(host),
            } => format!("the mail server of {domain} ({host})"),
            Hop::Domain { domain, host: None } => format!("the mail server of {domain}"),
        }
    }
}

/// What one attempt to hand a notification to the relay came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The relay answered `250` (its answer) to the end of the data.
    Accepted { answer: String },
    /// The relay answered `code` (and `answer`, the code with its text) at `step`.
    Refused {
        step: Step,
        code: u16,
        answer: String,
    },
    /// No answer at `step`: unreachable, TLS failed, the connection broke or timed out.
    Broken { step: Step, error: String },
    /// The recipient's domain cannot be reached as its TLS policy demands (no STARTTLS, no
    /// valid certificate, an MX its MTA-STS policy does not list): `reason` is the whole
    /// sentence for the sender. Never retried in plain; failed at once.
    Insecure { reason: String },
    /// The recipient's domain accepts no mail at all (a null MX, RFC 7505) or does not
    /// exist: `reason` is the whole sentence.
    Undeliverable { reason: String },
}

impl Attempt {
    /// Whether this ends the notification for good, whenever it happens.
    fn is_permanent(&self) -> bool {
        match self {
            Attempt::Refused {
                step: Step::Recipient | Step::Data | Step::EndOfData,
                code,
                ..
            } => (500..600).contains(code),
            Attempt::Insecure { .. } | Attempt::Undeliverable { .. } => true,
            _ => false,
        }
    }

    /// Why the notification was not delivered, in words for the sender and the admin, with
    /// the relay's own answer.
    pub fn reason(&self) -> String {
        self.reason_via(&Hop::Relay)
    }

    /// [`Attempt::reason`] naming `hop`, with its own answer.
    pub fn reason_via(&self, hop: &Hop) -> String {
        let (name, object) = (hop.name(), hop.object());
        match self {
            Attempt::Accepted { answer } => format!("{name} took it: {answer}"),
            Attempt::Refused { step, code, answer } => {
                let for_now = (400..500).contains(code);
                let what = match step {
                    Step::Connect => "did not accept the node's connection",
                    Step::StartTls => "refused to encrypt the connection",
                    Step::Login => "refused the node's login",
                    Step::MailFrom => "refused the node's sender address",
                    Step::Recipient if for_now => "did not take the recipient for now",
                    Step::Recipient => "refused the recipient",
                    Step::Data | Step::EndOfData if for_now => "did not take the mail for now",
                    Step::Data | Step::EndOfData => "refused the mail",
                };
                format!("{name} {what}: {answer}")
            }
            Attempt::Broken { step, error } => match step {
                Step::Connect => format!("{name} could not be reached: {error}"),
                Step::StartTls => {
                    format!("No encrypted connection to {object} could be made: {error}")
                }
                Step::Login => format!("The node could not log in to {object}: {error}"),
                _ => format!("The connection to {object} broke off: {error}"),
            },
            Attempt::Insecure { reason } | Attempt::Undeliverable { reason } => reason.clone(),
        }
    }
}

/// What becomes of a notification after `attempt`, its attempt number `failed_before + 1`,
/// made at `now` for a notification queued at `created_at`.
pub fn decide(
    policy: &RetryPolicy,
    attempt: &Attempt,
    hop: &Hop,
    failed_before: u32,
    created_at: Timestamp,
    now: Timestamp,
) -> NotifyOutcome {
    if let Attempt::Accepted { answer } = attempt {
        return NotifyOutcome::Sent {
            answer: answer.clone(),
        };
    }
    let reason = attempt.reason_via(hop);
    if attempt.is_permanent() {
        return NotifyOutcome::Failed { reason };
    }
    let attempts = failed_before.saturating_add(1);
    let deadline = created_at.saturating_add(policy.give_up_after_secs as i64);
    if now >= deadline {
        return NotifyOutcome::Failed {
            reason: format!(
                "Gave up after {attempts} attempt{} over {}. {reason}",
                if attempts == 1 { "" } else { "s" },
                duration_words(now.saturating_sub(created_at)),
            ),
        };
    }
    let at = now
        .saturating_add(policy.delay(attempts) as i64)
        .min(deadline);
    NotifyOutcome::Retry { at, reason }
}

/// A duration in the largest whole unit that fits: "4 days", "1 hour", "59 seconds".
pub fn duration_words(secs: i64) -> String {
    let secs = secs.max(0);
    let (n, unit) = match secs {
        s if s >= 86_400 => (s / 86_400, "day"),
        s if s >= 3600 => (s / 3600, "hour"),
        s if s >= 60 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The relay's answer as one line of printable text, at most 500 characters: it is shown to
/// people and written to the log.
pub fn answer_text(code: impl std::fmt::Display, text: &str) -> String {
    let mut out = format!("{code} ");
    let mut last_space = true;
    for ch in text.chars() {
        let ch = if ch.is_control() { ' ' } else { ch };
        if ch == ' ' && last_space {
            continue;
        }
        last_space = ch == ' ';
        out.push(ch);
        if out.chars().count() >= 500 {
            out.push('…');
            break;
        }
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: RetryPolicy = RetryPolicy {
        base_secs: 60,
        max_secs: 3600,
        give_up_after_secs: 4 * 86_400,
    };

    #[test]
    fn the_wait_doubles_from_the_base_up_to_the_maximum() {
        let waits: Vec<u64> = (1..=9).map(|n| P.delay(n)).collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        assert_eq!(P.delay(0), 60);
        assert_eq!(P.delay(u32::MAX), 3600);
        let huge = RetryPolicy {
            base_secs: u64::MAX / 2,
            max_secs: u64::MAX,
            give_up_after_secs: 10,
        };
        assert_eq!(huge.delay(5), u64::MAX);
    }

    #[test]
    fn each_result_decides_sent_retry_or_failed() {
        let refused = |step, code: u16, text: &str| Attempt::Refused {
            step,
            code,
            answer: format!("{code} {text}"),
        };
        let broken = |step| Attempt::Broken {
            step,
            error: "Connection refused (os error 111)".into(),
        };
        let day = 86_400;
        let sent = |a: &str| NotifyOutcome::Sent { answer: a.into() };
        let retry = |at: i64, r: &str| NotifyOutcome::Retry {
            at,
            reason: r.into(),
        };
        let failed = |r: &str| NotifyOutcome::Failed { reason: r.into() };
        // (attempt, failed before, queued at, now) → outcome
        let table = [
            (
                Attempt::Accepted {
                    answer: "250 2.0.0 Ok: queued as 5A3F".into(),
                },
                7,
                0,
                3 * day,
                sent("250 2.0.0 Ok: queued as 5A3F"),
            ),
            (
                broken(Step::Connect),
                0,
                1000,
                1000,
                retry(
                    1060,
                    "The mail relay could not be reached: Connection refused (os error 111)",
                ),
            ),
            (
                broken(Step::Connect),
                3,
                1000,
                5000,
                retry(
                    5480,
                    "The mail relay could not be reached: Connection refused (os error 111)",
                ),
            ),
            (
                refused(Step::EndOfData, 451, "4.3.0 Try again later"),
                1,
                0,
                100,
                retry(
                    220,
                    "The mail relay did not take the mail for now: 451 4.3.0 Try again later",
                ),
            ),
            (
                refused(Step::Recipient, 450, "4.2.0 Mailbox busy"),
                0,
                0,
                0,
                retry(
                    60,
                    "The mail relay did not take the recipient for now: 450 4.2.0 Mailbox busy",
                ),
            ),
            (
                refused(Step::Recipient, 550, "5.1.1 <c@out.test>: User unknown"),
                0,
                0,
                0,
                failed(
                    "The mail relay refused the recipient: 550 5.1.1 <c@out.test>: User unknown",
                ),
            ),
            (
                refused(Step::Data, 554, "5.5.1 No valid recipients"),
                2,
                0,
                10,
                failed("The mail relay refused the mail: 554 5.5.1 No valid recipients"),
            ),
            (
                refused(Step::EndOfData, 552, "5.3.4 Message too big"),
                0,
                0,
                0,
                failed("The mail relay refused the mail: 552 5.3.4 Message too big"),
            ),
            // A refused login or sender address is the node's configuration, which an admin
            // can repair: retried, not failed.
            (
                refused(Step::Login, 535, "5.7.8 Authentication credentials invalid"),
                0,
                0,
                0,
                retry(
                    60,
                    "The mail relay refused the node's login: 535 5.7.8 Authentication credentials invalid",
                ),
            ),
            (
                refused(Step::MailFrom, 553, "5.7.1 Sender address rejected"),
                0,
                0,
                0,
                retry(
                    60,
                    "The mail relay refused the node's sender address: 553 5.7.1 Sender address rejected",
                ),
            ),
            (
                Attempt::Broken {
                    step: Step::StartTls,
                    error: "the relay does not offer STARTTLS".into(),
                },
                0,
                0,
                0,
                retry(
                    60,
                    "No encrypted connection to the mail relay could be made: the relay does not offer STARTTLS",
                ),
            ),
            (
                broken(Step::EndOfData),
                0,
                0,
                0,
                retry(
                    60,
                    "The connection to the mail relay broke off: Connection refused (os error 111)",
                ),
            ),
            // The last retry is made at the deadline, not after it.
            (
                broken(Step::Connect),
                12,
                0,
                4 * day - 100,
                retry(
                    4 * day,
                    "The mail relay could not be reached: Connection refused (os error 111)",
                ),
            ),
            (
                broken(Step::Connect),
                13,
                0,
                4 * day,
                failed(
                    "Gave up after 14 attempts over 4 days. The mail relay could not be reached: Connection refused (os error 111)",
                ),
            ),
            (
                refused(Step::EndOfData, 421, "4.4.2 Timeout"),
                0,
                0,
                5 * day,
                failed(
                    "Gave up after 1 attempt over 5 days. The mail relay did not take the mail for now: 421 4.4.2 Timeout",
                ),
            ),
        ];
        for (i, (attempt, failed_before, created, now, want)) in table.into_iter().enumerate() {
            assert_eq!(
                decide(&P, &attempt, &Hop::Relay, failed_before, created, now),
                want,
                "row {i}: {attempt:?}"
            );
        }
    }

    #[test]
    fn direct_delivery_names_the_domains_server_and_fails_insecure_domains_at_once() {
        let mx = Hop::Domain {
            domain: "out.test".into(),
            host: Some("mx.out.test".into()),
        };
        let nohost = Hop::Domain {
            domain: "down.test".into(),
            host: None,
        };
        let table = [
            (
                Attempt::Refused {
                    step: Step::Recipient,
                    code: 550,
                    answer: "550 5.1.1 <x@out.test>: User unknown".into(),
                },
                &mx,
                NotifyOutcome::Failed {
                    reason: "The mail server of out.test (mx.out.test) refused the recipient: \
                             550 5.1.1 <x@out.test>: User unknown"
                        .into(),
                },
            ),
            (
                Attempt::Broken {
                    step: Step::Connect,
                    error: "Connection refused".into(),
                },
                &nohost,
                NotifyOutcome::Retry {
                    at: 60,
                    reason: "The mail server of down.test could not be reached: Connection refused"
                        .into(),
                },
            ),
            (
                Attempt::Broken {
                    step: Step::StartTls,
                    error: "handshake failed".into(),
                },
                &mx,
                NotifyOutcome::Retry {
                    at: 60,
                    reason: "No encrypted connection to the mail server of out.test \
                             (mx.out.test) could be made: handshake failed"
                        .into(),
                },
            ),
            (
                Attempt::Insecure {
                    reason: "tls.test's mail server offered no valid certificate for \
                             mx.tls.test: not delivered"
                        .into(),
                },
                &mx,
                NotifyOutcome::Failed {
                    reason: "tls.test's mail server offered no valid certificate for \
                             mx.tls.test: not delivered"
                        .into(),
                },
            ),
            (
                Attempt::Undeliverable {
                    reason: "null.test accepts no mail (its MX record says so)".into(),
                },
                &nohost,
                NotifyOutcome::Failed {
                    reason: "null.test accepts no mail (its MX record says so)".into(),
                },
            ),
        ];
        for (i, (attempt, hop, want)) in table.into_iter().enumerate() {
            assert_eq!(decide(&P, &attempt, hop, 0, 0, 0), want, "row {i}");
        }
    }

    #[test]
    fn answers_become_one_printable_line() {
        assert_eq!(
            answer_text(550, "5.1.1 <c@out.test>:\r\n  User\tunknown\u{7}"),
            "550 5.1.1 <c@out.test>: User unknown"
        );
        let long = answer_text(451, &"x".repeat(2000));
        assert_eq!(long.chars().count(), 501);
        assert!(long.ends_with('…'));
        assert_eq!(duration_words(59), "59 seconds");
        assert_eq!(duration_words(60), "1 minute");
        assert_eq!(duration_words(7300), "2 hours");
        assert_eq!(duration_words(86_400), "1 day");
    }
}
