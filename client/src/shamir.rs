//! Shamir's secret sharing over GF(2^8) (the AES field, x^8 + x^4 + x^3 + x + 1), for the
//! compliance key's custody (docs/compliance.md, "Dual control"): the admin's side splits the
//! 32-byte secret S that locks the compliance key M-of-N, and the requesting officer's side
//! combines M shares. The arithmetic is `vsss-rs`'s (constant time, no look-up tables); this
//! module fixes the share format both sides speak and checks the parameters.
//!
//! **Share format** (the same in `webui/src/shamir.ts`): one byte `x` (the share's non-zero
//! x coordinate), then one byte `y` per byte of the secret. `shamir-secret-sharing`, the web
//! app's audited library, keeps `x` last; its adapter moves it.
//!
//! What this module must not do: log, keep or return a secret outside a [`Zeroizing`] buffer.
//! Combining checks only the shape of the shares: a changed share gives a wrong secret without
//! an error, and the caller must check the result (the locked key refuses a wrong S).

use std::convert::Infallible;

use rand::RngCore;
use vsss_rs::Gf256;
use zeroize::Zeroizing;

/// At most this many shares (x coordinates are the non-zero bytes).
pub const MAX_SHARES: usize = 255;

/// Why a split or a combination was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShamirError {
    #[error("the threshold must be 2 to {shares} (the number of shares), not {threshold}")]
    BadThreshold { threshold: usize, shares: usize },
    #[error("2 to {MAX_SHARES} shares, not {0}")]
    BadShareCount(usize),
    #[error("the secret is empty")]
    EmptySecret,
    #[error("share {index} is malformed: {why}")]
    MalformedShare { index: usize, why: &'static str },
}

/// Splits `secret` into `shares` shares of which any `threshold` give it back, each in the
/// format above, with x coordinates 1..=`shares` in order (share i belongs to officer i).
pub fn split(
    secret: &[u8],
    threshold: usize,
    shares: usize,
) -> Result<Vec<Zeroizing<Vec<u8>>>, ShamirError> {
    if !(2..=MAX_SHARES).contains(&shares) {
        return Err(ShamirError::BadShareCount(shares));
    }
    if !(2..=shares).contains(&threshold) {
        return Err(ShamirError::BadThreshold { threshold, shares });
    }
    if secret.is_empty() {
        return Err(ShamirError::EmptySecret);
    }
    let ids = (1..=shares).map(|x| vsss_rs::IdentifierGf256(Gf256::from(x as u8)));
    let out = Gf256::split_bytes_with_participant_ids_iter(threshold, shares, secret, OsRng, ids)
        // Every parameter was checked above: a failure here is the library's.
        .map_err(|_| ShamirError::BadShareCount(shares))?;
    Ok(out.into_iter().map(Zeroizing::new).collect())
}

/// The secret from `shares` (at least the threshold of them; fewer give a wrong secret, as
/// any changed share does). Refuses shares of different lengths, an x of 0 or an x twice.
pub fn combine<S: AsRef<[u8]>>(shares: &[S]) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    if !(2..=MAX_SHARES).contains(&shares.len()) {
        return Err(ShamirError::BadShareCount(shares.len()));
    }
    let len = shares[0].as_ref().len();
    let mut seen = [false; 256];
    for (index, share) in shares.iter().enumerate() {
        let share = share.as_ref();
        if share.len() < 2 {
            return Err(ShamirError::MalformedShare {
                index,
                why: "shorter than 2 bytes",
            });
        }
        if share.len() != len {
            return Err(ShamirError::MalformedShare {
                index,
                why: "not as long as the first share",
            });
        }
        let x = share[0] as usize;
        if x == 0 {
            return Err(ShamirError::MalformedShare {
                index,
                why: "x coordinate 0",
            });
        }
        if std::mem::replace(&mut seen[x], true) {
            return Err(ShamirError::MalformedShare {
                index,
                why: "the same x coordinate as an earlier share",
            });
        }
    }
    let owned: Vec<Vec<u8>> = shares.iter().map(|s| s.as_ref().to_vec()).collect();
    let owned = Zeroizing::new(owned);
    Gf256::combine_bytes(&owned[..])
        .map(Zeroizing::new)
        .map_err(|_| ShamirError::MalformedShare {
            index: 0,
            why: "not combinable",
        })
}

/// The operating system's generator, for `vsss-rs`'s `rand_core` 0.10 traits (the workspace's
/// `rand` is 0.8).
struct OsRng;

impl rand_core::TryRng for OsRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(rand::rngs::OsRng.next_u32())
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(rand::rngs::OsRng.next_u64())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        rand::rngs::OsRng.fill_bytes(dst);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for OsRng {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_threshold_of_shares_gives_the_secret_and_fewer_do_not() {
        let secret: Vec<u8> = (0..32).map(|i| i * 7 + 3).collect();
        let shares = split(&secret, 2, 3).unwrap();
        assert_eq!(shares.len(), 3);
        for (i, s) in shares.iter().enumerate() {
            assert_eq!(s.len(), 33);
            assert_eq!(s[0] as usize, i + 1, "x coordinates 1..=N in order");
        }
        for pair in [[0, 1], [0, 2], [1, 2], [2, 0]] {
            let chosen = [&shares[pair[0]][..], &shares[pair[1]][..]];
            assert_eq!(&combine(&chosen).unwrap()[..], &secret[..], "{pair:?}");
        }
        // 3-of-5: two shares give something else (the library cannot tell).
        let shares = split(&secret, 3, 5).unwrap();
        let two = combine(&[&shares[0][..], &shares[3][..]]).unwrap();
        assert_ne!(&two[..], &secret[..]);
        let three = combine(&[&shares[4][..], &shares[0][..], &shares[2][..]]).unwrap();
        assert_eq!(&three[..], &secret[..]);
    }

    #[test]
    fn a_changed_share_gives_a_wrong_secret() {
        let secret = [0x42u8; 32];
        let shares = split(&secret, 2, 3).unwrap();
        let mut changed = shares[1].to_vec();
        changed[5] ^= 1;
        let got = combine(&[&shares[0][..], &changed[..]]).unwrap();
        assert_ne!(&got[..], &secret[..]);
    }

    #[test]
    fn bad_parameters_and_shares_are_refused() {
        let s = [1u8; 32];
        assert_eq!(
            split(&s, 1, 3).unwrap_err(),
            ShamirError::BadThreshold {
                threshold: 1,
                shares: 3
            }
        );
        assert_eq!(
            split(&s, 4, 3).unwrap_err(),
            ShamirError::BadThreshold {
                threshold: 4,
                shares: 3
            }
        );
        assert_eq!(split(&s, 2, 1).unwrap_err(), ShamirError::BadShareCount(1));
        assert_eq!(
            split(&s, 2, 256).unwrap_err(),
            ShamirError::BadShareCount(256)
        );
        assert_eq!(split(&[], 2, 3).unwrap_err(), ShamirError::EmptySecret);

        let shares = split(&s, 2, 3).unwrap();
        let one: [&[u8]; 1] = [&shares[0]];
        assert_eq!(combine(&one).unwrap_err(), ShamirError::BadShareCount(1));
        let twice = combine(&[&shares[0][..], &shares[0][..]]).unwrap_err();
        assert!(matches!(
            twice,
            ShamirError::MalformedShare { index: 1, .. }
        ));
        let short = combine(&[&shares[0][..], &shares[1][..5]]).unwrap_err();
        assert!(matches!(
            short,
            ShamirError::MalformedShare { index: 1, .. }
        ));
        let mut zero = shares[1].to_vec();
        zero[0] = 0;
        let zero = combine(&[&shares[0][..], &zero[..]]).unwrap_err();
        assert!(matches!(zero, ShamirError::MalformedShare { index: 1, .. }));
    }

    /// One case of the vectors in `client/tests/data/custody/` (see webui/test/unit/shamir.test.mjs).
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Case {
        threshold: usize,
        secret: String,
        shares: Vec<String>,
    }

    fn vectors(name: &str) -> Vec<Case> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/custody/");
        serde_json::from_slice(&std::fs::read(format!("{path}{name}")).unwrap()).unwrap()
    }

    /// Every subset of `0..n` of size `k`.
    fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
        if k == 0 {
            return vec![vec![]];
        }
        if n < k {
            return vec![];
        }
        let mut with: Vec<Vec<usize>> = subsets(n - 1, k - 1)
            .into_iter()
            .map(|mut s| {
                s.push(n - 1);
                s
            })
            .collect();
        with.extend(subsets(n - 1, k));
        with
    }

    fn check_case(c: &Case) {
        let shares: Vec<Vec<u8>> = c.shares.iter().map(|s| hex::decode(s).unwrap()).collect();
        for chosen in subsets(shares.len(), c.threshold) {
            let picked: Vec<&[u8]> = chosen.iter().map(|&i| &shares[i][..]).collect();
            assert_eq!(
                hex::encode(&combine(&picked).unwrap()[..]),
                c.secret,
                "{chosen:?}"
            );
        }
        for chosen in subsets(shares.len(), c.threshold - 1) {
            if chosen.len() < 2 {
                continue;
            }
            let picked: Vec<&[u8]> = chosen.iter().map(|&i| &shares[i][..]).collect();
            assert_ne!(
                hex::encode(&combine(&picked).unwrap()[..]),
                c.secret,
                "{chosen:?}"
            );
        }
    }

    #[test]
    fn shares_split_by_the_web_app_combine_in_rust() {
        let cases = vectors("js-made.json");
        assert!(cases.len() >= 2);
        cases.iter().for_each(check_case);
    }

    #[test]
    fn the_checked_in_rust_shares_still_combine_in_rust() {
        let cases = vectors("rust-made.json");
        assert!(cases.len() >= 2);
        cases.iter().for_each(check_case);
    }

    /// Writes `rust-made.json` anew: `cargo test -p sealpost-client --lib write_rust_vectors
    /// -- --ignored`, then `node --test test/unit/shamir.test.mjs` in webui/ checks them.
    #[test]
    #[ignore]
    fn write_rust_vectors() {
        let cases: Vec<Case> = [(2, 3), (3, 5)]
            .into_iter()
            .map(|(threshold, n)| {
                let mut secret = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut secret);
                let shares = split(&secret, threshold, n).unwrap();
                Case {
                    threshold,
                    secret: hex::encode(secret),
                    shares: shares.iter().map(|s| hex::encode(&s[..])).collect(),
                }
            })
            .collect();
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/custody/rust-made.json"
        );
        let json = serde_json::to_string_pretty(&cases).unwrap() + "\n";
        std::fs::write(path, json).unwrap();
    }
}
