//! Web Key Directory (draft-koch-openpgp-webkey-service): the hashed local part and the checks
//! on the `hu` path and its `l` parameter.
//!
//! Pure functions, no I/O. This module decides nothing about which certificate is served: the
//! router asks the store and filters by address.

use sha1::{Digest, Sha1};

/// Why a WKD request is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WkdError {
    /// The `hu` segment is not 32 z-base-32 characters.
    #[error("malformed WKD hash: expected 32 z-base-32 characters")]
    MalformedHash,
    /// The `l` parameter is empty, too long, or has characters no local part has.
    #[error("malformed local part in the l parameter")]
    MalformedLocalPart,
    /// The `l` parameter does not hash to the `hu` segment.
    #[error("the l parameter does not match the hashed local part")]
    LocalPartMismatch,
}

/// The z-base-32 alphabet (RFC 6189, section 5.1.6).
const ZBASE32: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";

/// The longest local part we look up (RFC 5321 allows 64 octets).
pub const MAX_LOCAL_PART: usize = 64;

/// The WKD hash of a local part: z-base-32 of the SHA-1 of the local part with ASCII
/// upper-case letters mapped to lower case (the draft maps nothing else), 32 characters.
pub fn wkd_hash(local_part: &str) -> String {
    let digest = Sha1::digest(local_part.to_ascii_lowercase().as_bytes());
    base32::encode(base32::Alphabet::Z, &digest)
}

/// Checks the `hu` path segment: exactly 32 characters of the (lower-case) z-base-32 alphabet,
/// which is what every 160-bit hash encodes to.
pub fn parse_hash(segment: &str) -> Result<&str, WkdError> {
    if segment.len() == 32 && segment.bytes().all(|b| ZBASE32.contains(&b)) {
        Ok(segment)
    } else {
        Err(WkdError::MalformedHash)
    }
}

/// Checks an `l` parameter against the hash and returns it. It must be a plausible local part
/// (1..=64 bytes, no `@`, no whitespace or control characters) that hashes to `hash`.
pub fn check_local_part<'a>(hash: &str, l: &'a str) -> Result<&'a str, WkdError> {
    let plausible = !l.is_empty()
        && l.len() <= MAX_LOCAL_PART
        && !l.contains('@')
        && !l.chars().any(|c| c.is_whitespace() || c.is_control());
    if !plausible {
        return Err(WkdError::MalformedLocalPart);
    }
    if wkd_hash(l) != hash {
        return Err(WkdError::LocalPartMismatch);
    }
    Ok(l)
}

/// Does `cert` have a user ID with an address `local@domain` whose local part hashes to
/// `hash`? (For look-ups by hash alone, when the client sent no `l` parameter.)
pub fn has_hashed_address(cert: &sequoia_openpgp::Cert, hash: &str, domain: &str) -> bool {
    cert.userids().any(|ua| {
        ua.userid()
            .email_normalized()
            .ok()
            .flatten()
            .and_then(|e| {
                let (local, d) = e.rsplit_once('@')?;
                Some(d.eq_ignore_ascii_case(domain) && wkd_hash(local) == hash)
            })
            .unwrap_or(false)
    })
}

/// Does the advanced method's domain segment name our domain? DNS names compare without
/// regard to ASCII case.
pub fn domain_matches(ours: &str, requested: &str) -> bool {
    ours.eq_ignore_ascii_case(requested)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_vectors() {
        // The first row is the draft's own example (section 3.1); the others were produced
        // with GnuPG's `gpg-wks-client --print-wkd-hash`, an independent implementation.
        for (local, want) in [
            ("Joe.Doe", "iy9q119eutrkn8s1mk4r39qejnbu3n5q"),
            ("joe.doe", "iy9q119eutrkn8s1mk4r39qejnbu3n5q"),
            ("alice", "kei1q4tipxxu1yj79k9kfukdhfy631xe"),
            ("Bob.Smith+tag", "jpsdejttsk39wu1fmo6s78xsmqbq1665"),
            ("openpgp-ca", "ermf4k8pujzwtqqxmskb7355sebj5e4t"),
            // Only ASCII is case-folded: `Ä` stays as it is.
            ("ÄLICE", "jr9wa5rffzwidbus7apj4nzq7tya659e"),
        ] {
            assert_eq!(wkd_hash(local), want, "{local}");
        }
    }

    #[test]
    fn zbase32_alphabet_and_bit_order() {
        // Hand-computed: 0x00 -> 00000 000(00) -> "yy"; 0xff -> 11111 111(00) -> "9h";
        // 0xf0 -> 11110 000(00) -> "6y".
        for (bytes, want) in [
            (&[0x00u8][..], "yy"),
            (&[0xff][..], "9h"),
            (&[0xf0][..], "6y"),
        ] {
            assert_eq!(base32::encode(base32::Alphabet::Z, bytes), want);
        }
    }

    #[test]
    fn hash_segments() {
        for (segment, ok) in [
            ("iy9q119eutrkn8s1mk4r39qejnbu3n5q", true),
            ("IY9Q119EUTRKN8S1MK4R39QEJNBU3N5Q", false),
            ("iy9q119eutrkn8s1mk4r39qejnbu3n5", false),
            ("iy9q119eutrkn8s1mk4r39qejnbu3n5qq", false),
            // `l` and `v` are not in the alphabet.
            ("iy9q119eutrkn8s1mk4r39qejnbu3n5l", false),
            ("iy9q119eutrkn8s1mk4r39qejnbu3n5v", false),
            ("../../../../../../../etc/passwd", false),
            ("", false),
        ] {
            assert_eq!(parse_hash(segment).is_ok(), ok, "{segment}");
        }
    }

    #[test]
    fn local_part_parameter() {
        let h = "iy9q119eutrkn8s1mk4r39qejnbu3n5q";
        for (l, want) in [
            ("Joe.Doe", Ok("Joe.Doe")),
            ("joe.doe", Ok("joe.doe")),
            ("jane.doe", Err(WkdError::LocalPartMismatch)),
            ("", Err(WkdError::MalformedLocalPart)),
            ("joe.doe@example.org", Err(WkdError::MalformedLocalPart)),
            ("joe doe", Err(WkdError::MalformedLocalPart)),
            ("joe\ndoe", Err(WkdError::MalformedLocalPart)),
        ] {
            assert_eq!(check_local_part(h, l), want, "{l:?}");
        }
        let long = "a".repeat(MAX_LOCAL_PART + 1);
        assert_eq!(
            check_local_part(h, &long),
            Err(WkdError::MalformedLocalPart)
        );
    }

    #[test]
    fn certificates_by_hash() {
        use sequoia_openpgp::cert::CertBuilder;
        let (cert, _) = CertBuilder::general_purpose(Some("Joe Doe <Joe.Doe@Example.ORG>"))
            .generate()
            .unwrap();
        let h = "iy9q119eutrkn8s1mk4r39qejnbu3n5q";
        assert!(has_hashed_address(&cert, h, "example.org"));
        assert!(!has_hashed_address(&cert, h, "example.com"));
        assert!(!has_hashed_address(
            &cert,
            &wkd_hash("jane.doe"),
            "example.org"
        ));
    }

    #[test]
    fn domains() {
        assert!(domain_matches("example.org", "Example.ORG"));
        assert!(!domain_matches("example.org", "example.org.evil"));
        assert!(!domain_matches("example.org", ""));
    }
}
