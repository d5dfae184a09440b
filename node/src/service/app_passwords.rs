//! App passwords (docs/mail.md, "Submission gateway"): a user makes one per mail program in
//! the web app, and the submission door checks it at `AUTH`. Every rule is here, once:
//!
//! - **create**: only while `[submission] enabled` (`submission_disabled`), not for guests
//!   (`guest_not_allowed`), a label of 1 to 64 characters without control characters
//!   (`invalid_label`), at most `max_app_passwords` live ones (`too_many_app_passwords`). The
//!   node makes the secret; it is returned once and only its verifier is stored.
//! - **list** and **revoke**: the caller's own live ones; any other ID, unknown, someone else's
//!   or already revoked, is `not_found` alike. A revoked password is refused at its next use.
//! - **authenticate**: one answer, [`ServiceError::InvalidCredentials`], for every refusal
//!   (unknown address, wrong or revoked password, disabled account, guest, gateway off), so the
//!   door cannot tell who has an account; guessing is throttled per address and client network
//!   (`throttle.rs`, [`Source::AppPassword`]), so a guesser elsewhere cannot slow the owner's
//!   mail program.
//!
//! Why no slow hash: a login password is chosen by a person and must survive an offline guess
//! against a stolen database, hence Argon2. An app password is 120 random bits made here;
//! nobody can search that space, so a keyed MAC (HKDF-SHA256 under a node key, so the
//! database alone does not even allow checking a guess) is as strong, and lets the door find
//! the row by its verifier in one indexed look-up.
//!
//! What this module must not do: log or store a secret, or read the clock (`now` comes in).

use std::sync::OnceLock;
use std::time::{Instant, SystemTime};

use hkdf::Hkdf;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::throttle::Source;
use super::{Context, ServiceError, unix};
use crate::proto::submission::{AppPasswordView, SubmissionInfo};
use crate::storage::app_passwords::AppPasswordRow;
use crate::storage::{Account, AccountState};

/// Longest label, in characters.
pub const MAX_LABEL_CHARS: usize = 64;
/// The secret's alphabet (RFC 4648 base32, lower case: no 0, 1, 8 or 9 to mistake for o, l, B
/// or g), 5 bits a character.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Characters of a secret: 24 × 5 = 120 bits, shown in groups of 6.
const SECRET_CHARS: usize = 24;
const GROUP: usize = 6;
/// `last_used_at` is written at most this often per password (seconds).
const TOUCH_EVERY: i64 = 60;

/// Where mail programs send, as the web app shows it: `None` unless the gateway is enabled.
/// The port is the one bound (`listen` may name port 0), else the configured one.
pub fn submission_info(ctx: &Context) -> Option<SubmissionInfo> {
    let config = &ctx.config;
    let s = &config.submission;
    let port = ctx
        .submission_bound
        .get()
        .map_or(s.listen.port(), |a| a.port());
    s.enabled.then(|| SubmissionInfo {
        host: if s.hostname.is_empty() {
            config.domain.clone()
        } else {
            s.hostname.clone()
        },
        port,
        implicit_tls: s.implicit_tls,
    })
}

/// A new app password for `account` labelled `label`: its view and its secret, which is shown
/// once and kept nowhere.
pub async fn create(
    ctx: &Context,
    account: &Account,
    label: &str,
    now: SystemTime,
) -> Result<(AppPasswordView, String), ServiceError> {
    if !ctx.config.submission.enabled {
        return Err(ServiceError::SubmissionDisabled);
    }
    super::guests::not_for_guests(account, "send from mail programs")?;
    let label = check_label(label)?;
    let secret = new_secret();
    let max = ctx.config.submission.max_app_passwords;
    let at = unix(now);
    let id = ctx
        .store
        .create_app_password(
            account.id,
            &account.address,
            &label,
            verifier(ctx, &secret),
            max,
            at,
        )
        .await?
        .ok_or(ServiceError::TooManyAppPasswords { max })?;
    let view = AppPasswordView {
        id,
        label,
        created_at: at,
        last_used_at: None,
    };
    Ok((view, shown(&secret)))
}

/// The live app passwords of `account`, oldest first.
pub async fn list(ctx: &Context, account: &Account) -> Result<Vec<AppPasswordView>, ServiceError> {
    Ok(ctx
        .store
        .app_passwords_of(account.id)
        .await?
        .into_iter()
        .map(view_of)
        .collect())
}

/// Revokes one of `account`'s live app passwords; refused at once from then on.
pub async fn revoke(
    ctx: &Context,
    account: &Account,
    id: i64,
    now: SystemTime,
) -> Result<(), ServiceError> {
    if ctx
        .store
        .revoke_app_password(account.id, id, &account.address, unix(now))
        .await?
    {
        Ok(())
    } else {
        Err(ServiceError::UnknownAppPassword)
    }
}

/// The submission door's check of `AUTH PLAIN` (user name `address`, password `secret`) from
/// the client at `ip`: the account, or [`ServiceError::InvalidCredentials`] for every refusal
/// alike, or [`ServiceError::TooManyAttempts`] while this address and client network must wait
/// (refused without checking; the same for any address string, existing or not).
pub async fn authenticate(
    ctx: &Context,
    address: &str,
    secret: &str,
    ip: std::net::IpAddr,
    now: SystemTime,
) -> Result<Account, ServiceError> {
    if !ctx.config.submission.enabled {
        return Err(ServiceError::InvalidCredentials);
    }
    let normalised = crate::normalize_address(address);
    let typed = normalised.as_deref().unwrap_or_else(|| address.trim());
    let source = Source::AppPassword(typed, ip);
    let clock = monotonic(now);
    let attempt =
        ctx.throttle
            .admit(source, clock)
            .map_err(|wait| ServiceError::TooManyAttempts {
                secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            })?;
    let account = match &normalised {
        Some(a) => ctx.store.account_by_address(a).await?,
        None => None,
    };
    // A secret of the wrong shape is looked up all the same (as an impossible verifier), so
    // every refusal does the same work.
    let verifier = match normalise_secret(secret) {
        Some(s) => verifier(ctx, &s),
        None => [0; 32],
    };
    let row = ctx.store.app_password_by_verifier(verifier).await?;
    let owner_matches = match (&row, &account) {
        (Some(r), Some(a)) => bool::from(r.account_id.to_be_bytes().ct_eq(&a.id.to_be_bytes())),
        _ => false,
    };
    let account = match account {
        Some(a)
            if owner_matches && a.state == AccountState::Active && !super::guests::is_guest(&a) =>
        {
            a
        }
        _ => {
            attempt.failed(clock);
            return Err(ServiceError::InvalidCredentials);
        }
    };
    attempt.succeeded();
    let row = row.expect("the owner matched a row");
    let at = unix(now);
    if row.last_used_at.is_none_or(|t| at - t >= TOUCH_EVERY) {
        // Not awaited: the answer does not wait for a commit that records a convenience.
        let store = ctx.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.touch_app_password(row.id, at).await {
                tracing::warn!(id = row.id, error = %e, "app password use not recorded");
            }
        });
    }
    Ok(account)
}

/// The throttle's monotonic time for `now`: the first call's pair of clocks as the anchor, so
/// the throttle's time is the caller's `now` and not a clock read here.
fn monotonic(now: SystemTime) -> Instant {
    static ANCHOR: OnceLock<(Instant, SystemTime)> = OnceLock::new();
    let (i, s) = *ANCHOR.get_or_init(|| (Instant::now(), now));
    match now.duration_since(s) {
        Ok(d) => i + d,
        Err(_) => i,
    }
}

/// A label trimmed, or why it is refused.
fn check_label(label: &str) -> Result<String, ServiceError> {
    let label = label.trim();
    let n = label.chars().count();
    if n == 0 || n > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
        return Err(ServiceError::InvalidLabel {
            max: MAX_LABEL_CHARS,
        });
    }
    Ok(label.to_owned())
}

/// 24 random characters of [`ALPHABET`] (each byte's low 5 bits: 256 is a multiple of 32, so
/// every character is equally likely).
fn new_secret() -> String {
    let bytes: [u8; SECRET_CHARS] = rand::random();
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(b & 31)] as char)
        .collect()
}

/// The secret as shown: groups of 6 joined by dashes.
fn shown(secret: &str) -> String {
    secret
        .as_bytes()
        .chunks(GROUP)
        .map(|c| std::str::from_utf8(c).expect("ASCII"))
        .collect::<Vec<_>>()
        .join("-")
}

/// The secret as typed, without dashes, spaces and case; `None` unless it has the shape of one.
fn normalise_secret(typed: &str) -> Option<String> {
    if typed.len() > 4 * SECRET_CHARS {
        return None;
    }
    let s: String = typed
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (s.len() == SECRET_CHARS && s.bytes().all(|b| ALPHABET.contains(&b))).then_some(s)
}

/// What is stored for a secret (normalised): a MAC under the node's app-password key.
fn verifier(ctx: &Context, secret: &str) -> [u8; 32] {
    mac(&ctx.app_password_key, secret)
}

fn mac(key: &[u8; 32], secret: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(Some(key), secret.as_bytes())
        .expand(b"sealpost/v1/app-password-verifier", &mut out)
        .expect("32 bytes is a valid HKDF length");
    out
}

fn view_of(r: AppPasswordRow) -> AppPasswordView {
    AppPasswordView {
        id: r.id,
        label: r.label,
        created_at: r.created_at,
        last_used_at: r.last_used_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_24_base32_characters_shown_in_four_groups() {
        let s = new_secret();
        assert_eq!(s.len(), SECRET_CHARS);
        let shown = shown(&s);
        assert_eq!(shown.len(), 27);
        assert_eq!(shown.split('-').count(), 4);
        assert!(shown.split('-').all(|g| g.len() == GROUP));
        assert_eq!(normalise_secret(&shown).as_deref(), Some(s.as_str()));
        assert_ne!(new_secret(), s, "random");
    }

    /// What a user may type for `abcdef-ghijkl-mnopqr-stuvwx`, and what is not a secret.
    #[test]
    fn typed_secrets_are_normalised_or_refused() {
        let want = Some("abcdefghijklmnopqrstuvwx".to_owned());
        for (typed, expect) in [
            ("abcdef-ghijkl-mnopqr-stuvwx", want.clone()),
            ("ABCDEF-GHIJKL-MNOPQR-STUVWX", want.clone()),
            (" abcdef ghijkl mnopqr stuvwx ", want.clone()),
            ("abcdefghijklmnopqrstuvwx", want.clone()),
            ("abcdef-ghijkl-mnopqr-stuvw", None),
            ("abcdef-ghijkl-mnopqr-stuvwxy", None),
            ("abcdef-ghijkl-mnopqr-stuvw1", None),
            ("abcdef-ghijkl-mnopqr-stuvwé", None),
            ("", None),
        ] {
            assert_eq!(normalise_secret(typed), expect, "{typed:?}");
        }
        assert_eq!(normalise_secret(&"-".repeat(10_000)), None);
    }

    #[test]
    fn labels_are_1_to_64_characters_without_control_characters() {
        assert_eq!(check_label("  Laptop ").unwrap(), "Laptop");
        assert_eq!(check_label(&"é".repeat(64)).unwrap().chars().count(), 64);
        for bad in ["", "   ", "a\nb", "tab\there", "\u{7f}", &"x".repeat(65)] {
            assert!(
                matches!(
                    check_label(bad),
                    Err(ServiceError::InvalidLabel { max: 64 })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn verifiers_depend_on_the_key_and_the_secret() {
        let a = mac(&[1; 32], "abcdefghijklmnopqrstuvwx");
        assert_eq!(a, mac(&[1; 32], "abcdefghijklmnopqrstuvwx"));
        assert_ne!(a, mac(&[2; 32], "abcdefghijklmnopqrstuvwx"));
        assert_ne!(a, mac(&[1; 32], "abcdefghijklmnopqrstuvwy"));
    }

    #[test]
    fn the_throttle_clock_follows_now() {
        let t = SystemTime::now();
        let a = monotonic(t);
        let b = monotonic(t + std::time::Duration::from_secs(5));
        assert!(b.duration_since(a) >= std::time::Duration::from_secs(5));
        assert!(monotonic(SystemTime::UNIX_EPOCH) <= a, "a clock set back");
    }
}
