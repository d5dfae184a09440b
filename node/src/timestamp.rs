//! RFC 3161 time-stamps over the transaction log's checkpoints: the pure core.
//!
//! A checkpoint (`txlog`) is stamped by an outside time-stamping authority (TSA), configured
//! in `[timestamping]`: the node sends a `TimeStampReq` whose message imprint is the SHA-256 of
//! [`txlog::checkpoint_message`] (sequence number, chain hash and time of the checkpoint: the
//! bytes the node's own signature covers, so anyone holding the checkpoint can recompute the
//! imprint without trusting the node's key), with a random nonce, and keeps the token after
//! [`check_response`] has accepted it. A stamp on a checkpoint covers every earlier entry
//! through the hash chain, so one request per checkpoint, never one per message.
//!
//! This module does no I/O and reads no clock: the caller passes `now` and the CA store, and
//! the driver (`node::stamp_checkpoint`) does the HTTP. ASN.1 is RustCrypto's (`x509-tsp`,
//! `cms`, `der`); the token's signature and its chain to the configured CA are checked by
//! OpenSSL's CMS verify with the time-stamping purpose (EKU timeStamping).

use cms::cert::x509::spki::AlgorithmIdentifier;
use der::asn1::{Int, OctetString, Uint};
use der::{Decode, Encode};
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{X509, X509PurposeId};
use sha2::{Digest, Sha256};
use x509_tsp::{MessageImprint, TimeStampReq, TimeStampResp, TspVersion, TstInfo};

use crate::txlog;

/// How far a token's genTime may be from the node's clock, in seconds, either way.
pub const MAX_CLOCK_SKEW_SECS: i64 = 600;

/// The largest TSA answer the node reads (a token with its certificate chain is a few KiB).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// `id-sha256` (RFC 5754).
const ID_SHA_256: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// `id-ct-TSTInfo` (RFC 3161): the content type a time-stamp token signs.
const ID_CT_TST_INFO: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");

/// Why a TSA's answer was not accepted. Nothing is stored for a refused answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimestampError {
    /// `ca_file` is unreadable or holds no PEM certificate.
    #[error("time-stamping CA file: {0}")]
    CaFile(String),
    /// The answer is not a DER `TimeStampResp` (or is larger than [`MAX_RESPONSE_BYTES`]).
    #[error("the TSA's answer is not an RFC 3161 response: {0}")]
    Malformed(String),
    /// The TSA refused (status other than granted / granted with modifications).
    #[error("the TSA refused the request (status {status}{})", text.as_deref().map(|t| format!(": {t}")).unwrap_or_default())]
    Rejected { status: u8, text: Option<String> },
    /// The token's signature does not verify or its signer does not chain to `ca_file` as a
    /// time-stamping certificate.
    #[error("the time-stamp token does not verify against the configured CA: {0}")]
    BadSignature(String),
    /// The token stamps another digest than the one asked for.
    #[error("the time-stamp token covers another digest")]
    WrongImprint,
    /// The token answers another request (replay or mix-up).
    #[error("the time-stamp token carries another nonce")]
    WrongNonce,
    /// genTime is more than [`MAX_CLOCK_SKEW_SECS`] from the node's clock.
    #[error("the time-stamp's time {gen_time} is too far from now ({now})")]
    TimeOutOfWindow { gen_time: i64, now: i64 },
}

/// An accepted stamp: the token (DER `ContentInfo`, the `TimeStampToken`) and its genTime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub token: Vec<u8>,
    pub gen_time: i64,
}

/// The SHA-256 a checkpoint's time-stamp covers.
pub fn checkpoint_imprint(seq: u64, hash: &[u8; 32], at: i64) -> [u8; 32] {
    Sha256::digest(txlog::checkpoint_message(seq, hash, at)).into()
}

/// The DER `TimeStampReq` for `imprint`: version 1, SHA-256, `nonce`, certReq true (so the
/// token carries the TSA's certificate and can be checked against the CA alone).
pub fn request(imprint: &[u8; 32], nonce: u64) -> Vec<u8> {
    let req = TimeStampReq {
        version: TspVersion::V1,
        message_imprint: message_imprint(imprint),
        req_policy: None,
        nonce: Some(nonce_int(nonce)),
        cert_req: true,
        extensions: None,
    };
    req.to_der().expect("a TimeStampReq always encodes")
}

fn message_imprint(imprint: &[u8; 32]) -> MessageImprint {
    MessageImprint {
        hash_algorithm: AlgorithmIdentifier {
            oid: ID_SHA_256,
            parameters: Some(der::Any::from(der::asn1::AnyRef::NULL)),
        },
        hashed_message: OctetString::new(imprint.as_slice()).expect("32 bytes"),
    }
}

/// A nonce as the positive INTEGER RFC 3161 carries (`Uint` adds the leading zero a set top
/// bit needs; `Int` is what the field holds).
fn nonce_int(nonce: u64) -> Int {
    let u = Uint::new(&nonce.to_be_bytes()).expect("8 bytes");
    Int::from_der(&u.to_der().expect("encodes")).expect("a positive INTEGER")
}

/// Reads `ca_file`'s PEM certificates into a store that accepts only time-stamping signers.
pub fn ca_store(pem: &[u8], now: i64) -> Result<X509Store, TimestampError> {
    let certs = X509::stack_from_pem(pem).map_err(|e| TimestampError::CaFile(e.to_string()))?;
    if certs.is_empty() {
        return Err(TimestampError::CaFile("no PEM certificate".into()));
    }
    let err = |e: openssl::error::ErrorStack| TimestampError::CaFile(e.to_string());
    let mut b = X509StoreBuilder::new().map_err(err)?;
    for c in certs {
        b.add_cert(c).map_err(err)?;
    }
    let mut param = X509VerifyParam::new().map_err(err)?;
    // Validity is judged at the node's `now`, not OpenSSL's own clock: the core reads none.
    param.set_time(now as _);
    param
        .set_purpose(X509PurposeId::TIMESTAMP_SIGN)
        .map_err(err)?;
    b.set_param(&param).map_err(err)?;
    Ok(b.build())
}

/// Checks a TSA's answer to [`request`]`(imprint, nonce)`: status granted, a CMS SignedData
/// over a TSTInfo whose signature verifies and whose signer chains to `ca` for time-stamping,
/// our imprint and nonce, and a genTime within [`MAX_CLOCK_SKEW_SECS`] of `now`.
pub fn check_response(
    resp: &[u8],
    imprint: &[u8; 32],
    nonce: u64,
    ca: &X509Store,
    now: i64,
) -> Result<Stamp, TimestampError> {
    let malformed = |m: &dyn std::fmt::Display| TimestampError::Malformed(m.to_string());
    if resp.len() > MAX_RESPONSE_BYTES {
        return Err(malformed(&"too large"));
    }
    let resp = TimeStampResp::from_der(resp).map_err(|e| malformed(&e))?;
    // PKIStatus: granted (0) or grantedWithMods (1); anything else is a refusal.
    let status = resp.status.status as u8;
    if status > 1 {
        let text = resp
            .status
            .status_string
            .as_ref()
            .and_then(|s| s.first())
            .map(|s| s.as_str().chars().take(200).collect());
        return Err(TimestampError::Rejected { status, text });
    }
    let token = resp
        .time_stamp_token
        .ok_or_else(|| malformed(&"granted without a token"))?;
    let token = token.to_der().map_err(|e| malformed(&e))?;
    let tst_der = verify_token(&token, ca)?;
    let tst = TstInfo::from_der(&tst_der).map_err(|e| malformed(&e))?;
    // The algorithm's parameters may be NULL or absent (RFC 5754): compare what matters.
    let ours = message_imprint(imprint);
    if tst.message_imprint.hash_algorithm.oid != ours.hash_algorithm.oid
        || tst.message_imprint.hashed_message != ours.hashed_message
    {
        return Err(TimestampError::WrongImprint);
    }
    if tst.nonce != Some(nonce_int(nonce)) {
        return Err(TimestampError::WrongNonce);
    }
    let gen_time = i64::try_from(tst.gen_time.to_unix_duration().as_secs())
        .map_err(|_| malformed(&"genTime out of range"))?;
    if (gen_time - now).abs() > MAX_CLOCK_SKEW_SECS {
        return Err(TimestampError::TimeOutOfWindow { gen_time, now });
    }
    Ok(Stamp { token, gen_time })
}

/// Checks a stored token (DER `TimeStampToken`) on its own, as an offline verifier does: its
/// signature and chain to `ca` for time-stamping, and that it stamps `imprint` (SHA-256).
/// Returns its genTime. No nonce or clock window: those belong to the moment of the request.
pub fn check_token(
    token: &[u8],
    imprint: &[u8; 32],
    ca: &X509Store,
) -> Result<i64, TimestampError> {
    let malformed = |m: &dyn std::fmt::Display| TimestampError::Malformed(m.to_string());
    if token.len() > MAX_RESPONSE_BYTES {
        return Err(malformed(&"too large"));
    }
    let tst_der = verify_token(token, ca)?;
    let tst = TstInfo::from_der(&tst_der).map_err(|e| malformed(&e))?;
    let ours = message_imprint(imprint);
    if tst.message_imprint.hash_algorithm.oid != ours.hash_algorithm.oid
        || tst.message_imprint.hashed_message != ours.hashed_message
    {
        return Err(TimestampError::WrongImprint);
    }
    i64::try_from(tst.gen_time.to_unix_duration().as_secs())
        .map_err(|_| malformed(&"genTime out of range"))
}

/// The genTime a token claims, read without checking it: the time at which to judge the TSA's
/// certificate before [`check_token`] checks the token.
pub fn claimed_gen_time(token: &[u8]) -> Result<i64, TimestampError> {
    let malformed = |m: &dyn std::fmt::Display| TimestampError::Malformed(m.to_string());
    let ci = cms::content_info::ContentInfo::from_der(token).map_err(|e| malformed(&e))?;
    let sd = ci
        .content
        .decode_as::<cms::signed_data::SignedData>()
        .map_err(|e| malformed(&e))?;
    let content = sd
        .encap_content_info
        .econtent
        .ok_or_else(|| malformed(&"no TSTInfo"))?;
    let tst_der = content
        .decode_as::<OctetString>()
        .map_err(|e| malformed(&e))?;
    let tst = TstInfo::from_der(tst_der.as_bytes()).map_err(|e| malformed(&e))?;
    i64::try_from(tst.gen_time.to_unix_duration().as_secs())
        .map_err(|_| malformed(&"genTime out of range"))
}

/// Verifies the token's CMS signature and chain; returns the signed TSTInfo's DER.
fn verify_token(token: &[u8], ca: &X509Store) -> Result<Vec<u8>, TimestampError> {
    let ci = cms::content_info::ContentInfo::from_der(token)
        .map_err(|e| TimestampError::Malformed(e.to_string()))?;
    let sd = ci
        .content
        .decode_as::<cms::signed_data::SignedData>()
        .map_err(|e| TimestampError::Malformed(format!("not SignedData: {e}")))?;
    if sd.encap_content_info.econtent_type != ID_CT_TST_INFO {
        return Err(TimestampError::Malformed(
            "the token does not sign a TSTInfo".into(),
        ));
    }
    let bad = |e: openssl::error::ErrorStack| TimestampError::BadSignature(e.to_string());
    let mut cms = CmsContentInfo::from_der(token).map_err(bad)?;
    let mut out = Vec::new();
    cms.verify(None, Some(ca), None, Some(&mut out), CMSOptions::BINARY)
        .map_err(bad)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// genTime of the fixtures in `tests/data/tsa` (made by its `make.sh`).
    const FIXTURE_TIME: i64 = 1_796_667_986;
    const NONCE: u64 = 0x0102_0304_0506_0708;

    fn data(name: &str) -> Vec<u8> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tsa");
        std::fs::read(dir.join(name)).unwrap()
    }

    fn imprint() -> [u8; 32] {
        Sha256::digest(b"sealpost test checkpoint").into()
    }

    /// Checks with the certificates judged at the fixtures' time, the token's time at `now`.
    fn check(resp: &str, ca: &str, now: i64) -> Result<Stamp, TimestampError> {
        let store = ca_store(&data(ca), FIXTURE_TIME).unwrap();
        check_response(&data(resp), &imprint(), NONCE, &store, now)
    }

    #[test]
    fn request_is_the_rfc_3161_der() {
        // The bytes make.sh hands to `openssl ts -reply`, built by hand from RFC 3161.
        let expect = format!(
            "30430201013031300d060960864801650304020105000420{}0208{:016x}0101ff",
            hex::encode(imprint()),
            NONCE
        );
        assert_eq!(hex::encode(request(&imprint(), NONCE)), expect);
        let text = String::from_utf8(data("imprint.hex")).unwrap();
        assert_eq!(text.trim(), hex::encode(imprint()));
        // A nonce with its top bit set stays a positive INTEGER (a leading zero byte).
        let der = request(&imprint(), u64::MAX);
        assert!(hex::encode(&der).contains("020900ffffffffffffffff"));
        assert_eq!(
            TimeStampReq::from_der(&der).unwrap().nonce,
            Some(nonce_int(u64::MAX))
        );
    }

    #[test]
    fn checkpoint_imprint_is_the_sha256_of_the_signed_message() {
        let hash = [7u8; 32];
        let want: [u8; 32] = Sha256::digest(txlog::checkpoint_message(3, &hash, 1000)).into();
        assert_eq!(checkpoint_imprint(3, &hash, 1000), want);
        assert_ne!(checkpoint_imprint(4, &hash, 1000), want);
    }

    #[test]
    fn a_token_from_the_configured_tsa_is_accepted() {
        let stamp = check("resp-ok.der", "ca.pem", FIXTURE_TIME + 5).unwrap();
        assert_eq!(stamp.gen_time, FIXTURE_TIME);
        // The stored token is the ContentInfo inside the response.
        let raw = data("resp-ok.der");
        let resp = TimeStampResp::from_der(&raw).unwrap();
        assert_eq!(
            stamp.token,
            resp.time_stamp_token.unwrap().to_der().unwrap()
        );
    }

    #[test]
    fn unhappy_answers_are_refused_with_their_reason() {
        let now = FIXTURE_TIME;
        assert_eq!(
            check("resp-other.der", "ca.pem", now),
            Err(TimestampError::WrongImprint)
        );
        assert_eq!(
            check("resp-nonce.der", "ca.pem", now),
            Err(TimestampError::WrongNonce)
        );
        assert!(matches!(
            check("resp-sha1.der", "ca.pem", now),
            Err(TimestampError::Rejected { status: 2, .. })
        ));
        // A genuine token from a TSA under another CA.
        assert!(matches!(
            check("resp-foreign.der", "ca.pem", now),
            Err(TimestampError::BadSignature(_))
        ));
        // The right TSTInfo signed under the right CA by a certificate that may not stamp
        // (no EKU timeStamping).
        assert!(matches!(
            check("resp-noeku.der", "ca.pem", now),
            Err(TimestampError::BadSignature(_))
        ));
        // The right token checked against another CA.
        assert!(matches!(
            check("resp-ok.der", "other-ca.pem", now),
            Err(TimestampError::BadSignature(_))
        ));
        // Too far from the node's clock, either way.
        for off in [MAX_CLOCK_SKEW_SECS + 1, -MAX_CLOCK_SKEW_SECS - 1] {
            assert_eq!(
                check("resp-ok.der", "ca.pem", FIXTURE_TIME + off),
                Err(TimestampError::TimeOutOfWindow {
                    gen_time: FIXTURE_TIME,
                    now: FIXTURE_TIME + off
                })
            );
        }
        // Garbage and an oversized answer.
        let store = ca_store(&data("ca.pem"), now).unwrap();
        for junk in [b"not der".to_vec(), vec![0x30; MAX_RESPONSE_BYTES + 1]] {
            assert!(matches!(
                check_response(&junk, &imprint(), NONCE, &store, now),
                Err(TimestampError::Malformed(_))
            ));
        }
        assert!(matches!(
            ca_store(b"no pem here", now),
            Err(TimestampError::CaFile(_))
        ));
    }

    #[test]
    fn a_tampered_token_is_refused() {
        let store = ca_store(&data("ca.pem"), FIXTURE_TIME).unwrap();
        let good = data("resp-ok.der");
        // Flip one byte of the signed TSTInfo's serial number (after the imprint).
        let at = good
            .windows(32)
            .position(|w| w == imprint())
            .expect("the imprint is in the token")
            + 32
            + 2;
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        assert!(matches!(
            check_response(&bad, &imprint(), NONCE, &store, FIXTURE_TIME),
            Err(TimestampError::BadSignature(_))
        ));
        // Flip the last byte: the signature value itself.
        let mut bad = good;
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        assert!(matches!(
            check_response(&bad, &imprint(), NONCE, &store, FIXTURE_TIME),
            Err(TimestampError::BadSignature(_) | TimestampError::Malformed(_))
        ));
    }
}
