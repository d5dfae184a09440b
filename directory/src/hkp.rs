//! HKP look-up requests (draft-gallagher-openpgp-hkp, née draft-shaw-openpgp-hkp):
//! parsing `GET /pks/lookup?op=…&search=…&options=…&exact=…` into a [`Lookup`].
//!
//! Pure and total: every query string, however hostile, gives a `Lookup` or an [`HkpError`]
//! that carries its HTTP status. This module does not look anything up and does not format
//! answers (see [`crate::index`]).

use axum::http::StatusCode;
use sequoia_openpgp::{Fingerprint, KeyID};

/// The longest query string we parse; a look-up needs a few dozen bytes.
pub const MAX_QUERY_BYTES: usize = 2048;
/// The longest `search` value (after decoding).
pub const MAX_SEARCH_CHARS: usize = 256;
/// The shortest free-text search: shorter ones would list much of the directory.
pub const MIN_TEXT_SEARCH_CHARS: usize = 3;

/// The operation requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `op=get`: the matching keys, ASCII-armored.
    Get,
    /// `op=index`: a listing of the matching keys.
    Index,
    /// `op=vindex`: a verbose listing (with signatures in the human-readable form).
    VIndex,
}

/// What to look for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search {
    /// `0x` + 40 (v4) or 64 (v6) hex digits.
    Fingerprint(Fingerprint),
    /// `0x` + 16 hex digits: a primary key's or subkey's key ID.
    KeyId(KeyID),
    /// An e-mail address, optionally in angle brackets; lower-cased.
    Email(String),
    /// Any other text: a substring of user IDs (or the whole user ID with `exact=on`).
    Text(String),
}

/// A parsed look-up request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub op: Op,
    pub search: Search,
    /// `options=mr`: machine-readable output.
    pub machine_readable: bool,
    /// `exact=on`: text searches match whole user IDs only.
    pub exact: bool,
}

/// Why a look-up request is refused; [`HkpError::status`] gives the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HkpError {
    #[error("query string too long (at most {MAX_QUERY_BYTES} bytes)")]
    QueryTooLong,
    #[error("parameter '{0}' given more than once")]
    DuplicateParameter(&'static str),
    #[error("missing 'op' parameter (get, index or vindex)")]
    MissingOp,
    #[error("malformed 'op' parameter")]
    MalformedOp,
    #[error("operation '{0}' is not implemented (get, index and vindex are)")]
    UnsupportedOp(String),
    #[error("missing 'search' parameter")]
    MissingSearch,
    #[error("empty 'search' parameter")]
    EmptySearch,
    #[error("'search' too long (at most {MAX_SEARCH_CHARS} characters)")]
    SearchTooLong,
    #[error("search text too short (at least {MIN_TEXT_SEARCH_CHARS} characters)")]
    SearchTooShort,
    #[error("short (32-bit) key IDs are ambiguous and not accepted; use the fingerprint")]
    ShortKeyId,
    #[error("malformed key ID or fingerprint: {0}")]
    MalformedKeyHandle(&'static str),
    #[error("'search' contains control characters")]
    ControlCharacters,
    #[error("'exact' must be 'on' or 'off'")]
    BadExact,
}

impl HkpError {
    /// The HTTP status for this error: 501 for operations we do not implement, 400 otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            HkpError::UnsupportedOp(_) => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Parses the raw (still percent-encoded) query string of a `/pks/lookup` request.
///
/// Unknown parameters are ignored, as the draft asks; so are unknown `options` and the
/// `fingerprint=on` switch (our listings always carry fingerprints). A parameter we act on
/// that is given twice is refused rather than guessed at.
pub fn parse_lookup(query: &str) -> Result<Lookup, HkpError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(HkpError::QueryTooLong);
    }
    let mut op = None;
    let mut search = None;
    let mut options = None;
    let mut exact = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let (slot, label) = match name.as_ref() {
            "op" => (&mut op, "op"),
            "search" => (&mut search, "search"),
            "options" => (&mut options, "options"),
            "exact" => (&mut exact, "exact"),
            _ => continue,
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(HkpError::DuplicateParameter(label));
        }
    }

    let op = parse_op(op.as_deref().ok_or(HkpError::MissingOp)?)?;
    let search = parse_search(search.as_deref().ok_or(HkpError::MissingSearch)?)?;
    let machine_readable = options
        .as_deref()
        .is_some_and(|o| o.split(',').any(|o| o.trim() == "mr"));
    let exact = match exact.as_deref() {
        None | Some("off") => false,
        Some("on") => true,
        Some(_) => return Err(HkpError::BadExact),
    };
    Ok(Lookup {
        op,
        search,
        machine_readable,
        exact,
    })
}

fn parse_op(op: &str) -> Result<Op, HkpError> {
    match op {
        "get" => Ok(Op::Get),
        "index" => Ok(Op::Index),
        "vindex" => Ok(Op::VIndex),
        // A well-formed name we do not implement ("stats", "hget", "x-…") is a 501 per the
        // draft; anything else is not an operation at all.
        other
            if !other.is_empty()
                && other.len() <= 32
                && other
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Err(HkpError::UnsupportedOp(other.to_owned()))
        }
        _ => Err(HkpError::MalformedOp),
    }
}

/// Classifies a decoded `search` value.
pub fn parse_search(raw: &str) -> Result<Search, HkpError> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(HkpError::EmptySearch);
    }
    if s.chars().count() > MAX_SEARCH_CHARS {
        return Err(HkpError::SearchTooLong);
    }
    if s.chars().any(char::is_control) {
        return Err(HkpError::ControlCharacters);
    }

    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return parse_key_handle(hex);
    }
    // Clients other than GnuPG often leave the `0x` off; a run of 16, 40 or 64 hex digits is
    // no plausible text search.
    if matches!(s.len(), 16 | 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return parse_key_handle(s);
    }

    let bare = s
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(s);
    if is_plain_address(bare) {
        return Ok(Search::Email(bare.to_lowercase()));
    }
    if s.chars().count() < MIN_TEXT_SEARCH_CHARS {
        return Err(HkpError::SearchTooShort);
    }
    Ok(Search::Text(s.to_owned()))
}

fn parse_key_handle(hex: &str) -> Result<Search, HkpError> {
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(HkpError::MalformedKeyHandle("not hexadecimal"));
    }
    match hex.len() {
        8 => Err(HkpError::ShortKeyId),
        16 => KeyID::from_hex(hex)
            .map(Search::KeyId)
            .map_err(|_| HkpError::MalformedKeyHandle("bad key ID")),
        40 | 64 => Fingerprint::from_hex(hex)
            .map(Search::Fingerprint)
            .map_err(|_| HkpError::MalformedKeyHandle("bad fingerprint")),
        32 => Err(HkpError::MalformedKeyHandle(
            "v3 fingerprints are not supported",
        )),
        _ => Err(HkpError::MalformedKeyHandle(
            "expected 16 (key ID), 40 or 64 (fingerprint) hex digits",
        )),
    }
}

/// `local@domain` with one `@`, both sides non-empty, no spaces or brackets. Deliberately
/// loose: the store answers exact matches only, so a false positive just finds nothing.
fn is_plain_address(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, '<' | '>' | '"' | ','))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fpr(hex: &str) -> Search {
        Search::Fingerprint(Fingerprint::from_hex(hex).unwrap())
    }
    fn keyid(hex: &str) -> Search {
        Search::KeyId(KeyID::from_hex(hex).unwrap())
    }
    fn lookup(op: Op, search: Search, mr: bool, exact: bool) -> Result<Lookup, HkpError> {
        Ok(Lookup {
            op,
            search,
            machine_readable: mr,
            exact,
        })
    }

    const FPR: &str = "0123456789ABCDEF0123456789ABCDEF01234567";

    #[test]
    fn lookups() {
        let fpr_lower = FPR.to_lowercase();
        let long_text = "a".repeat(MAX_SEARCH_CHARS + 1);
        let long_query = format!("op=get&search=x&pad={}", "a".repeat(MAX_QUERY_BYTES));
        let cases: Vec<(String, Result<Lookup, HkpError>)> = vec![
            // What GnuPG's dirmngr sends for --recv-keys FPR.
            (
                format!("op=get&options=mr&search=0x{FPR}"),
                lookup(Op::Get, fpr(FPR), true, false),
            ),
            (
                format!("search=0x{fpr_lower}&op=get"),
                lookup(Op::Get, fpr(FPR), false, false),
            ),
            (
                format!("op=get&search={FPR}"),
                lookup(Op::Get, fpr(FPR), false, false),
            ),
            // The draft's examples: a key ID (here the long form) and a text search.
            (
                "op=get&search=0x6F3F9E2B2C1DAF40".into(),
                lookup(Op::Get, keyid("6F3F9E2B2C1DAF40"), false, false),
            ),
            (
                "op=index&search=dshaw".into(),
                lookup(Op::Index, Search::Text("dshaw".into()), false, false),
            ),
            (
                "op=vindex&search=0x6F3F9E2B2C1DAF40&fingerprint=on".into(),
                lookup(Op::VIndex, keyid("6F3F9E2B2C1DAF40"), false, false),
            ),
            // What dirmngr sends for --search-keys.
            (
                "op=index&options=mr&search=alice%40example.org".into(),
                lookup(
                    Op::Index,
                    Search::Email("alice@example.org".into()),
                    true,
                    false,
                ),
            ),
            (
                "op=index&options=mr&search=%3CAlice%40Example.ORG%3E&exact=on".into(),
                lookup(
                    Op::Index,
                    Search::Email("alice@example.org".into()),
                    true,
                    true,
                ),
            ),
            (
                "op=index&search=Alice+Smith&options=nm,mr".into(),
                lookup(Op::Index, Search::Text("Alice Smith".into()), true, false),
            ),
            (
                "op=index&search=Alice%20Smith%20%3Calice%40example.org%3E&exact=off".into(),
                lookup(
                    Op::Index,
                    Search::Text("Alice Smith <alice@example.org>".into()),
                    false,
                    false,
                ),
            ),
            // 64 hex digits: a v6 fingerprint.
            (
                format!("op=get&search=0x{}", "AB".repeat(32)),
                lookup(Op::Get, fpr(&"AB".repeat(32)), false, false),
            ),
            // Errors.
            ("".into(), Err(HkpError::MissingOp)),
            ("search=alice".into(), Err(HkpError::MissingOp)),
            ("op=get".into(), Err(HkpError::MissingSearch)),
            ("op=get&search=".into(), Err(HkpError::EmptySearch)),
            ("op=get&search=+++".into(), Err(HkpError::EmptySearch)),
            (
                "op=stats&search=x".into(),
                Err(HkpError::UnsupportedOp("stats".into())),
            ),
            (
                "op=x-hget&search=x".into(),
                Err(HkpError::UnsupportedOp("x-hget".into())),
            ),
            ("op=GET%00&search=x".into(), Err(HkpError::MalformedOp)),
            ("op=&search=abc".into(), Err(HkpError::MalformedOp)),
            (
                "op=get&op=index&search=abc".into(),
                Err(HkpError::DuplicateParameter("op")),
            ),
            (
                "op=get&search=abc&search=def".into(),
                Err(HkpError::DuplicateParameter("search")),
            ),
            ("op=get&search=0x99242560".into(), Err(HkpError::ShortKeyId)),
            (
                "op=get&search=0x6F3F9E2B2C1DAF4".into(),
                Err(HkpError::MalformedKeyHandle(
                    "expected 16 (key ID), 40 or 64 (fingerprint) hex digits",
                )),
            ),
            (
                "op=get&search=0xZZ3F9E2B2C1DAF40".into(),
                Err(HkpError::MalformedKeyHandle("not hexadecimal")),
            ),
            (
                format!("op=get&search=0x{}", "A".repeat(32)),
                Err(HkpError::MalformedKeyHandle(
                    "v3 fingerprints are not supported",
                )),
            ),
            ("op=index&search=al".into(), Err(HkpError::SearchTooShort)),
            (
                format!("op=index&search={long_text}"),
                Err(HkpError::SearchTooLong),
            ),
            (
                "op=index&search=ali%0Ace".into(),
                Err(HkpError::ControlCharacters),
            ),
            (
                "op=index&search=alice&exact=yes".into(),
                Err(HkpError::BadExact),
            ),
            (long_query, Err(HkpError::QueryTooLong)),
        ];
        for (query, want) in cases {
            assert_eq!(parse_lookup(&query), want, "{query}");
        }
    }

    #[test]
    fn statuses() {
        assert_eq!(
            HkpError::UnsupportedOp("stats".into()).status(),
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(HkpError::MissingOp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(HkpError::ShortKeyId.status(), StatusCode::BAD_REQUEST);
    }
}
