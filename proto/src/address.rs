//! Addresses, domains and message IDs: what both sides accept as one.

/// Lowercases and checks an e-mail address (`local@domain`); `None` if it is not one.
/// Deliberately stricter than RFC 5322: these addresses name accounts and appear in OpenPGP
/// user IDs and regular expressions, where exotic characters only cause trouble.
pub fn normalize_address(a: &str) -> Option<String> {
    let a = a.trim().to_ascii_lowercase();
    let (local, domain) = a.split_once('@')?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
    (local_ok && is_valid_domain(domain)).then_some(a)
}

/// The domain of an address (after the last `@`).
pub fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

/// A lowercase DNS name with at least two labels (an organisation's domain).
pub fn is_valid_domain(d: &str) -> bool {
    d.contains('.') && is_host_name(d)
}

/// A lowercase host name: labels of letters, digits and hyphens, one label being enough.
pub fn is_host_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// A new message ID, 32 lowercase hex digits: the issuing time in milliseconds (48 bits)
/// followed by 80 random bits. IDs issued close in time sort close together, so the tables
/// and indexes keyed by message ID grow at their end: a batch of new messages dirties a few
/// pages instead of one random page per index and message (fewer bytes through the WAL, fewer
/// page-cache misses). 80 random bits keep IDs unguessable and collisions out of reach; the
/// issuing time is no secret from the node, which records it anyway.
pub fn new_message_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    message_id_at(millis)
}

fn message_id_at(millis: u64) -> String {
    let mut id = [0u8; 16];
    id[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    id[6..].copy_from_slice(&rand::random::<[u8; 10]>());
    hex::encode(id)
}

pub fn is_message_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for (input, want) in [
            ("Alice@Example.ORG", Some("alice@example.org")),
            (" bob.smith+tag@a.test ", Some("bob.smith+tag@a.test")),
            ("no-at-sign.test", None),
            ("@a.test", None),
            ("a@b@c.test", None),
            ("a..b@a.test", None),
            ("a<b>@a.test", None),
            ("alice@localhost", None),
        ] {
            assert_eq!(normalize_address(input).as_deref(), want, "{input}");
        }
    }

    #[test]
    fn domains() {
        for ok in ["a.test", "alpha.example.org", "x-1.io"] {
            assert!(is_valid_domain(ok), "{ok}");
        }
        for bad in [
            "",
            "localhost",
            "A.test",
            "-a.test",
            "a..test",
            "a test.org",
        ] {
            assert!(!is_valid_domain(bad), "{bad}");
        }
    }

    #[test]
    fn message_ids() {
        assert!(is_message_id(&new_message_id()));
        // Time-ordered: a later ID sorts after an earlier one (48-bit millisecond prefix).
        let (a, b) = (
            message_id_at(1_795_000_000_000),
            message_id_at(1_795_000_000_001),
        );
        assert!(is_message_id(&a) && a < b, "{a} then {b}");
        assert_eq!(&a[..12], "01a1ee565e00");
        // The same millisecond: still distinct.
        assert_ne!(message_id_at(7), message_id_at(7));
        assert!(!is_message_id("ABCDEF0123456789abcdef0123456789"));
        assert!(!is_message_id("../../etc/passwd"));
    }
}
