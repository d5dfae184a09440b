//! The envelope sender of outside mail (VERP): every queued mail goes out with `MAIL
//! FROM:<bounce+ID-TAG@DOMAIN>`, ID its queue row and TAG a truncated HMAC-SHA256 of it under
//! the node's bounce key. A relay that accepts a mail and cannot deliver it later sends its
//! delivery status notification (RFC 3464) to that address; the SMTP door takes it back
//! (`service::mail::bounce`) and knows which row it is about. Pure: no I/O, no clock.
//!
//! The tag is what makes the address unforgeable: without the node key nobody can name a row
//! (and so fail someone's delivery) by writing to a made-up address. 96 bits, lowercase hex,
//! compared in constant time.

use hkdf::hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The local part's prefix of every bounce address.
pub const PREFIX: &str = "bounce+";
/// Bytes of the HMAC kept in the address (96 bits).
const TAG_BYTES: usize = 12;

/// The node's key for bounce addresses, derived from the node key for this purpose alone.
#[derive(Clone)]
pub struct BounceKey([u8; 32]);

impl BounceKey {
    /// The bounce key of `node_key` (HKDF, its own info string).
    pub fn derive(node_key: &ed25519_dalek::SigningKey) -> BounceKey {
        BounceKey(crate::keys::derive_subkey(
            node_key,
            b"sealpost/v1/bounce-address",
        ))
    }

    #[cfg(test)]
    fn from_bytes(b: [u8; 32]) -> BounceKey {
        BounceKey(b)
    }

    fn tag(&self, row_id: i64) -> [u8; TAG_BYTES] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        mac.update(b"sealpost bounce row ");
        mac.update(row_id.to_string().as_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }
}

impl std::fmt::Debug for BounceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BounceKey(..)")
    }
}

/// The envelope sender of queue row `row_id`: `bounce+ID-TAG@DOMAIN`.
pub fn bounce_address(key: &BounceKey, domain: &str, row_id: i64) -> String {
    format!(
        "{PREFIX}{row_id}-{}@{}",
        hex::encode(key.tag(row_id)),
        domain.to_ascii_lowercase()
    )
}

/// Whether `addr` has the shape of a bounce address of `domain` (whatever its tag): such an
/// address is never a user's, and is answered by the bounce rules alone.
pub fn is_bounce_shaped(domain: &str, addr: &str) -> bool {
    match addr.rsplit_once('@') {
        Some((local, d)) => {
            d.eq_ignore_ascii_case(domain)
                && local.len() >= PREFIX.len()
                && local[..PREFIX.len()].eq_ignore_ascii_case(PREFIX)
        }
        None => false,
    }
}

/// The queue row a bounce address of `domain` names, if its tag is the node's; `None` for
/// anything else (another domain, a malformed or forged address).
pub fn parse_bounce_address(key: &BounceKey, domain: &str, addr: &str) -> Option<i64> {
    if !is_bounce_shaped(domain, addr) || addr.len() > 128 {
        return None;
    }
    let (local, _) = addr.rsplit_once('@')?;
    let (id, tag) = local[PREFIX.len()..].split_once('-')?;
    // Only the canonical form: digits without a sign or leading zero, 24 hex digits.
    if id.is_empty()
        || id.len() > 18
        || !id.bytes().all(|b| b.is_ascii_digit())
        || (id.len() > 1 && id.starts_with('0'))
        || tag.len() != TAG_BYTES * 2
    {
        return None;
    }
    let row_id: i64 = id.parse().ok()?;
    let given = hex::decode(tag.to_ascii_lowercase()).ok()?;
    bool::from(given.as_slice().ct_eq(&key.tag(row_id))).then_some(row_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> BounceKey {
        BounceKey::from_bytes([b; 32])
    }

    #[test]
    fn an_address_names_its_row_and_only_under_its_key_and_domain() {
        let k = key(1);
        let a = bounce_address(&k, "Alpha.Test", 42);
        assert!(
            a.starts_with("bounce+42-") && a.ends_with("@alpha.test"),
            "{a}"
        );
        let local = a.split_once('@').unwrap().0;
        let tag = local.rsplit_once('-').unwrap().1;
        assert_eq!(tag.len(), 24);
        assert!(
            tag.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(parse_bounce_address(&k, "alpha.test", &a), Some(42));
        // Relays may change the case of an address.
        assert_eq!(
            parse_bounce_address(&k, "alpha.test", &a.to_ascii_uppercase()),
            Some(42)
        );
        // Another key, another domain: not ours.
        assert_eq!(parse_bounce_address(&key(2), "alpha.test", &a), None);
        assert_eq!(parse_bounce_address(&k, "beta.test", &a), None);
        // Different rows have different tags.
        assert_ne!(
            bounce_address(&k, "alpha.test", 1)
                .split_once('-')
                .unwrap()
                .1,
            bounce_address(&k, "alpha.test", 2)
                .split_once('-')
                .unwrap()
                .1
        );
    }

    #[test]
    fn forged_and_malformed_addresses_name_no_row() {
        let k = key(1);
        let good = bounce_address(&k, "alpha.test", 7);
        let tag = good.split_once('-').unwrap().1.split_once('@').unwrap().0;
        let other = bounce_address(&k, "alpha.test", 8);
        let other_tag = other.split_once('-').unwrap().1.split_once('@').unwrap().0;
        let mut flipped = tag.to_owned();
        flipped.replace_range(0..1, if tag.starts_with('0') { "1" } else { "0" });
        for bad in [
            // Another row's tag on this row.
            format!("bounce+7-{other_tag}@alpha.test"),
            format!("bounce+7-{flipped}@alpha.test"),
            format!("bounce+07-{tag}@alpha.test"),
            format!("bounce++7-{tag}@alpha.test"),
            format!("bounce+-7-{tag}@alpha.test"),
            format!("bounce+7-{}@alpha.test", &tag[..20]),
            format!("bounce+7-{tag}0@alpha.test"),
            "bounce+7@alpha.test".to_owned(),
            format!("bounce+7-{}@alpha.test", "z".repeat(24)),
            format!("bounce+99999999999999999999-{tag}@alpha.test"),
            format!("bounces+7-{tag}@alpha.test"),
            format!("bounce+7-{tag}"),
            "bounce+@alpha.test".to_owned(),
            String::new(),
        ] {
            assert_eq!(parse_bounce_address(&k, "alpha.test", &bad), None, "{bad}");
        }
        assert!(is_bounce_shaped("alpha.test", "Bounce+anything@ALPHA.test"));
        assert!(!is_bounce_shaped("alpha.test", "bounce@alpha.test"));
        assert!(!is_bounce_shaped("alpha.test", "bounce+1-00@beta.test"));
    }
}
