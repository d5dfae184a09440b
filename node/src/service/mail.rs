//! Messages: the rules every message obeys, whichever door it comes through.
//!
//! [`check_envelope`] is the one reading of a signed envelope: HTTP submission (the sender's
//! own node) and federation receive (a peer's node) both call it, so the same malformed
//! envelope is refused with the same code through either door. [`recipients`] is the rule for
//! a recipient list, for the envelope request and inside every envelope; [`deliverable`] says
//! which local accounts receive mail.

use std::collections::BTreeSet;

use super::ServiceError;
use crate::config::Limits;
use crate::proto::Envelope;
use crate::storage::{Account, AccountState};

/// A recipient list: at least one, at most `limits.max_recipients`, each an e-mail address;
/// normalised (lowercase), each once, in the order given.
pub fn recipients(limits: &Limits, to: &[String]) -> Result<Vec<String>, ServiceError> {
    if to.is_empty() {
        return Err(ServiceError::NoRecipients);
    }
    if to.len() > limits.max_recipients {
        return Err(ServiceError::TooManyRecipients {
            max: limits.max_recipients,
        });
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(to.len());
    for a in to {
        let n =
            crate::normalize_address(a).ok_or_else(|| ServiceError::InvalidAddress(a.clone()))?;
        if seen.insert(n.clone()) {
            out.push(n);
        }
    }
    Ok(out)
}

/// Reads a signed envelope (the exact JSON text the sender signed) and checks everything it
/// must hold before anyone looks further: version 1, a well-formed message ID and sender, 1 to
/// `max_parts` parts whose sizes add up (without overflow) to at most `max_message_bytes`, each
/// named by 64 lowercase hex digits, and a recipient list that is already normal (lowercase,
/// each once: the signed text is what every node reads, so it must need no rewriting).
pub fn check_envelope(limits: &Limits, text: &str) -> Result<Envelope, ServiceError> {
    let bad = |m: &str| ServiceError::InvalidEnvelope(m.to_owned());
    let env: Envelope = serde_json::from_str(text)
        .map_err(|e| ServiceError::InvalidEnvelope(format!("the envelope is not valid: {e}")))?;
    if env.v != 1 {
        return Err(ServiceError::InvalidEnvelope(format!(
            "envelope version {} is not supported",
            env.v
        )));
    }
    if !crate::is_message_id(&env.message_id) {
        return Err(bad("message_id is malformed"));
    }
    if crate::normalize_address(&env.from).as_deref() != Some(env.from.as_str()) {
        return Err(bad("from must be one lowercase e-mail address"));
    }
    if env.parts.is_empty() || env.parts.len() > limits.max_parts {
        return Err(ServiceError::TooManyParts {
            max: limits.max_parts,
        });
    }
    if env
        .total_size()
        .is_none_or(|total| total > limits.max_message_bytes)
    {
        return Err(ServiceError::TooLarge {
            limit: limits.max_message_bytes,
        });
    }
    for p in &env.parts {
        if p.sha256.len() != 64
            || hex::decode(&p.sha256).is_err()
            || p.sha256 != p.sha256.to_lowercase()
        {
            return Err(bad("part sha256 must be 64 lowercase hex digits"));
        }
    }
    if recipients(limits, &env.to)? != env.to {
        return Err(bad("recipients must be lowercase and listed once each"));
    }
    Ok(env)
}

/// Does this local account receive messages? Enrolled (it has a key) and active.
pub fn deliverable(account: &Account) -> bool {
    account.state == AccountState::Active && account.cert.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v = serde_json::json!({
            "v": 1,
            "message_id": crate::new_message_id(),
            "from": "alice@a.test",
            "to": ["bob@b.test"],
            "created_at": 0,
            "parts": [{ "sha256": "ab".repeat(32), "size": 10 }],
        });
        edit(&mut v);
        v.to_string()
    }

    /// Every rule of [`check_envelope`], by the code a door reports.
    #[test]
    fn envelopes_are_checked_by_one_rule() {
        let limits = Limits::default();
        let cases: Vec<(&str, String, Option<&str>)> = vec![
            ("well-formed", envelope(|_| {}), None),
            ("not JSON", "{".into(), Some("invalid_envelope")),
            (
                "version 2",
                envelope(|v| v["v"] = 2.into()),
                Some("invalid_envelope"),
            ),
            (
                "bad message ID",
                envelope(|v| v["message_id"] = "x".into()),
                Some("invalid_envelope"),
            ),
            (
                "sender in capitals",
                envelope(|v| v["from"] = "Alice@a.test".into()),
                Some("invalid_envelope"),
            ),
            (
                "no parts",
                envelope(|v| v["parts"] = serde_json::json!([])),
                Some("too_many_parts"),
            ),
            (
                "sizes overflow",
                envelope(|v| {
                    v["parts"] = serde_json::json!([
                        { "sha256": "ab".repeat(32), "size": u64::MAX },
                        { "sha256": "cd".repeat(32), "size": u64::MAX },
                    ])
                }),
                Some("too_large"),
            ),
            (
                // Found while writing the `envelope` fuzz target (its input is
                // fuzz/corpus/envelope/overflow-part-sizes.json): a plain sum wrapped to 1.
                "sizes overflow to a small total",
                envelope(|v| {
                    v["parts"] = serde_json::json!([
                        { "sha256": "ab".repeat(32), "size": u64::MAX },
                        { "sha256": "cd".repeat(32), "size": 2 },
                    ])
                }),
                Some("too_large"),
            ),
            (
                "hash in capitals",
                envelope(|v| v["parts"][0]["sha256"] = "AB".repeat(32).into()),
                Some("invalid_envelope"),
            ),
            (
                "no recipients",
                envelope(|v| v["to"] = serde_json::json!([])),
                Some("no_recipients"),
            ),
            (
                "a recipient twice",
                envelope(|v| v["to"] = serde_json::json!(["bob@b.test", "bob@b.test"])),
                Some("invalid_envelope"),
            ),
            (
                "a recipient in capitals",
                envelope(|v| v["to"] = serde_json::json!(["Bob@b.test"])),
                Some("invalid_envelope"),
            ),
            (
                "not an address",
                envelope(|v| v["to"] = serde_json::json!(["bob"])),
                Some("invalid_address"),
            ),
        ];
        for (name, text, want) in cases {
            let got = check_envelope(&limits, &text).err().map(|e| e.code());
            assert_eq!(got, want, "{name}");
        }
    }
}
