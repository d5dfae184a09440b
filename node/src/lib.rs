//! Sealpost node: a self-hosted, federated, end-to-end encrypted messaging server.
//!
//! The `sealpost` binary is a thin shell over this library: [`node::Node`] opens a data
//! directory and [`api::app`] / [`api::run`] serve it; [`client`] is the command-line client's
//! library, which does all the cryptography on the user's side. See `ARCHITECTURE.md`.

pub mod api;
pub mod certs;
pub mod cli;
pub mod client;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod directory_store;
pub mod federation;
pub mod keys;
pub mod node;
pub mod proto;
pub mod storage;
pub mod trustview;
pub mod txlog;

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

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
    (local_ok && config::is_valid_domain(domain)).then_some(a)
}

/// A new message ID: 128 random bits as 32 lowercase hex digits.
pub fn new_message_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
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
    fn message_ids() {
        assert!(is_message_id(&new_message_id()));
        assert!(!is_message_id("ABCDEF0123456789abcdef0123456789"));
        assert!(!is_message_id("../../etc/passwd"));
    }
}
