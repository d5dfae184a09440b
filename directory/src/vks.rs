//! VKS (the keys.openpgp.org API, `/vks/v1/…`): parsing the path parameters of
//! `by-fingerprint`, `by-keyid` and `by-email`.
//!
//! Pure: this module turns an (already percent-decoded) path segment into a fingerprint, key
//! ID or address, or says why it cannot. It looks nothing up.

use sequoia_openpgp::{Fingerprint, KeyID};

/// The longest address we look up (RFC 5321's path limit).
pub const MAX_ADDRESS: usize = 254;

/// Why a VKS path parameter is malformed (always a 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VksError {
    #[error("malformed fingerprint: expected 40 (v4) or 64 (v6) hex digits without 0x")]
    Fingerprint,
    #[error("malformed key ID: expected 16 hex digits without 0x")]
    KeyId,
    #[error("malformed e-mail address")]
    Address,
}

/// A v4 (40 hex digits) or v6 (64) fingerprint. The API says upper-case; we also accept lower
/// case, but neither a `0x` prefix nor spaces.
pub fn parse_fingerprint(s: &str) -> Result<Fingerprint, VksError> {
    if matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Fingerprint::from_hex(s).map_err(|_| VksError::Fingerprint)
    } else {
        Err(VksError::Fingerprint)
    }
}

/// A 16-hex-digit key ID (upper or lower case, no `0x`).
pub fn parse_keyid(s: &str) -> Result<KeyID, VksError> {
    if s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        KeyID::from_hex(s).map_err(|_| VksError::KeyId)
    } else {
        Err(VksError::KeyId)
    }
}

/// An address `local@domain`, lower-cased: one `@`, both sides non-empty, no whitespace,
/// control characters or angle brackets, at most [`MAX_ADDRESS`] bytes.
pub fn parse_email(s: &str) -> Result<String, VksError> {
    let ok = s.len() <= MAX_ADDRESS
        && s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>'));
    if ok {
        Ok(s.to_lowercase())
    } else {
        Err(VksError::Address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints() {
        // The API documentation's example fingerprint, and its lower-case form.
        let example = "CBCD8F030588653EEDD7E2659B7DD433F254904A";
        let want = Fingerprint::from_hex(example).unwrap();
        for (input, ok) in [
            (example.to_owned(), true),
            (example.to_lowercase(), true),
            ("AB".repeat(32), true),
            (format!("0x{example}"), false),
            (example[..39].to_owned(), false),
            (format!("{example}0"), false),
            (
                "CBCD 8F03 0588 653E EDD7  E265 9B7D D433 F254 904A".into(),
                false,
            ),
            ("ZBCD8F030588653EEDD7E2659B7DD433F254904A".into(), false),
            (String::new(), false),
        ] {
            assert_eq!(parse_fingerprint(&input).is_ok(), ok, "{input}");
        }
        assert_eq!(parse_fingerprint(example).unwrap(), want);
        assert_eq!(parse_fingerprint(&example.to_lowercase()).unwrap(), want);
    }

    #[test]
    fn keyids() {
        let example = "9B7DD433F254904A";
        for (input, ok) in [
            (example.to_owned(), true),
            (example.to_lowercase(), true),
            (format!("0x{example}"), false),
            ("F254904A".into(), false),
            ("9B7DD433F254904G".into(), false),
        ] {
            assert_eq!(parse_keyid(&input).is_ok(), ok, "{input}");
        }
        assert_eq!(
            parse_keyid(example).unwrap(),
            KeyID::from_hex(example).unwrap()
        );
    }

    #[test]
    fn emails() {
        for (input, want) in [
            ("alice@example.org", Ok("alice@example.org".to_owned())),
            ("Alice@Example.ORG", Ok("alice@example.org".to_owned())),
            ("bob+tag@example.org", Ok("bob+tag@example.org".to_owned())),
            ("alice", Err(VksError::Address)),
            ("@example.org", Err(VksError::Address)),
            ("alice@", Err(VksError::Address)),
            ("a@b@example.org", Err(VksError::Address)),
            ("<alice@example.org>", Err(VksError::Address)),
            ("alice smith@example.org", Err(VksError::Address)),
            ("alice\0@example.org", Err(VksError::Address)),
        ] {
            assert_eq!(parse_email(input), want, "{input:?}");
        }
        let long = format!("{}@example.org", "a".repeat(MAX_ADDRESS));
        assert_eq!(parse_email(&long), Err(VksError::Address));
    }
}
