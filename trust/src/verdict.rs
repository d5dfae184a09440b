//! Verdicts: what the engine answers, and how it says it in words.
//!
//! Everything here is plain data computed by [`crate::TrustNetwork`]; it
//! holds no reference to the network, so the node can cache it, send it
//! over the API or log it.

use std::time::SystemTime;

use sequoia_openpgp as openpgp;

use openpgp::Fingerprint;

/// The trust amount at which a binding counts as fully authenticated
/// (sequoia-wot's `FULLY_TRUSTED`).
pub const FULL: usize = sequoia_wot::FULLY_TRUSTED;

/// How strongly a binding (key ↔ address) is authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// Trust amount of at least 120: safe to encrypt to without asking.
    Full,
    /// Trust amount 1..=119: some evidence, not enough on its own.
    Partial,
    /// Trust amount 0: no evidence (or the key must not be used).
    None,
}

impl Level {
    /// The level of a trust amount (`>= 120` full, `1..=119` partial,
    /// `0` none).
    pub fn of(amount: usize) -> Level {
        if amount >= FULL {
            Level::Full
        } else if amount > 0 {
            Level::Partial
        } else {
            Level::None
        }
    }

    /// The level as a word for explanations.
    pub fn word(self) -> &'static str {
        match self {
            Level::Full => "full",
            Level::Partial => "partial",
            Level::None => "none",
        }
    }
}

/// The role a certificate plays on a trust path, from the viewer's side.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HopRole {
    /// The viewer's own key (a root).
    You,
    /// The viewer's organisation CA (a root by Sealpost policy).
    YourCa,
    /// Another organisation's CA, reached over a bridge (or a tsig).
    Ca,
    /// Someone made a trusted introducer by the previous hop.
    Introducer,
    /// The key being authenticated.
    Target,
    /// An explicitly supplied trust root that is neither the viewer nor
    /// their CA (only with [`crate::TrustNetwork::authenticate_from_roots`]).
    Root,
}

/// One certificate on a trust path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The certificate.
    pub fingerprint: Fingerprint,
    /// How to call it: the certified address (`bob@alpha.test`), or for
    /// an organisation CA a name derived from its domain (`Alpha CA`).
    pub label: String,
    /// Its role on the path.
    pub role: HopRole,
    /// The email address of the user ID the path uses for this hop (for a
    /// CA `openpgp-ca@DOMAIN`), if it has one.
    pub address: Option<String>,
}

impl Hop {
    /// The organisation domain of a CA hop (`openpgp-ca@DOMAIN`).
    pub fn ca_domain(&self) -> Option<&str> {
        self.address
            .as_deref()
            .and_then(|a| a.strip_prefix(crate::CA_LOCAL_PART))
            .and_then(|a| a.strip_prefix('@'))
    }
}

/// One path of evidence from a root to the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPath {
    /// The certificates from the viewer to the target. When the path
    /// starts at the viewer's CA, a [`HopRole::You`] hop is put first:
    /// by Sealpost policy the viewer trusts their CA without a signature
    /// being needed on the path.
    pub hops: Vec<Hop>,
    /// The trust amount this path contributes (after max-flow: it may be
    /// less than the weakest certification on it).
    pub amount: usize,
}

/// Why a binding is not (or must not be treated as) authenticated.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhyNot {
    /// The key is revoked (hard, or soft and in effect at the reference
    /// time). The web of trust is not consulted for revoked keys.
    Revoked {
        /// The revocation's reason code and message, in words.
        reason: String,
    },
    /// The key expired before the reference time.
    Expired {
        /// When it expired.
        at: SystemTime,
    },
    /// The key's owner revoked the user ID(s) carrying this address.
    UserIdRevoked {
        /// The revocation's reason, in words.
        reason: String,
    },
    /// The key is not valid under the policy at the reference time (weak
    /// algorithms, no valid self-signature, not yet created, ...).
    Invalid {
        /// Sequoia's reason.
        reason: String,
    },
    /// The key is not in the network.
    UnknownKey,
    /// The key has no user ID with this address.
    AddressNotOnKey,
    /// The address is not an email address.
    InvalidAddress,
    /// No path from the viewer's roots authenticates the binding.
    NoPath,
    /// Paths exist, but together they carry less than [`FULL`].
    NotEnough {
        /// The trust amount found.
        amount: usize,
    },
    /// Other keys also claim this address and have paths too: the
    /// address is ambiguous, whichever key is right. Set even when this
    /// key's own level is full.
    Conflict {
        /// The other keys with a non-zero trust amount for the address.
        others: Vec<Fingerprint>,
    },
}

/// The engine's answer for one (viewer, key, address) question.
///
/// Invariant: `why_not` is `None` if and only if `level` is
/// [`Level::Full`] and no other key claiming the address has a path;
/// that is exactly when the node may use the key without asking
/// ([`Verdict::is_authenticated`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The key the question was about.
    pub target: Fingerprint,
    /// The address (normalised: lower-cased, punycode domain).
    pub address: String,
    /// The total trust amount (sum of the paths' amounts; 0 when the key
    /// is revoked, expired or invalid).
    pub amount: usize,
    /// The level of `amount`.
    pub level: Level,
    /// The evidence, strongest first as sequoia-wot found it.
    pub paths: Vec<TrustPath>,
    /// Why the binding is not authenticated, if it is not.
    pub why_not: Option<WhyNot>,
}

impl Verdict {
    /// A verdict without evidence.
    pub(crate) fn none(target: Fingerprint, address: String, why_not: WhyNot) -> Verdict {
        Verdict {
            target,
            address,
            amount: 0,
            level: Level::None,
            paths: Vec::new(),
            why_not: Some(why_not),
        }
    }

    /// Whether the key may be used for the address without asking: full
    /// trust and no conflict.
    pub fn is_authenticated(&self) -> bool {
        self.level == Level::Full && self.why_not.is_none()
    }

    /// The verdict in words: one line per path (e.g. `you → Alpha CA
    /// (your organisation) → bob@alpha.test: full (120)`), a total line
    /// when several paths add up, and a "why not" line when the binding
    /// is not authenticated.
    pub fn explain(&self) -> Vec<String> {
        self.explain_noting(None)
    }

    /// [`Verdict::explain`], with the viewer's own certification of the key (a path `you →
    /// key`) described as `direct` (e.g. `first contact by Message Unlock Code`) instead of
    /// `you certified this key`.
    pub fn explain_noting(&self, direct: Option<&str>) -> Vec<String> {
        let mut lines: Vec<String> = self.paths.iter().map(|p| explain_path(p, direct)).collect();
        if self.paths.len() > 1 {
            lines.push(format!("together: {} ({})", self.level.word(), self.amount));
        }
        if let Some(why) = &self.why_not {
            lines.push(self.explain_why_not(why));
        }
        lines
    }

    fn explain_why_not(&self, why: &WhyNot) -> String {
        let a = &self.address;
        match why {
            WhyNot::Revoked { reason } => {
                format!("{a}: none — the key was revoked ({reason})")
            }
            WhyNot::Expired { .. } => format!("{a}: none — the key has expired"),
            WhyNot::UserIdRevoked { reason } => {
                format!("{a}: none — the key's owner withdrew this address ({reason})")
            }
            WhyNot::Invalid { reason } => {
                format!("{a}: none — the key is not valid under the policy ({reason})")
            }
            WhyNot::UnknownKey => format!("{a}: none — this key is not known here"),
            WhyNot::AddressNotOnKey => {
                format!("{a}: none — the key has no user ID for this address")
            }
            WhyNot::InvalidAddress => format!("{a}: none — not an email address"),
            WhyNot::NoPath => format!(
                "{a}: none — no one you or your organisation trust has certified this key \
                 for this address"
            ),
            WhyNot::NotEnough { amount } => format!(
                "{a}: partial ({amount}) — {FULL} is needed; certify the key yourself after \
                 checking its fingerprint"
            ),
            WhyNot::Conflict { others } => format!(
                "{a}: conflict — {} other key(s) also have a path for this address: {}",
                others.len(),
                others
                    .iter()
                    .map(|f| f.to_hex())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// One path in words.
fn explain_path(path: &TrustPath, direct: Option<&str>) -> String {
    let mut parts = Vec::with_capacity(path.hops.len());
    let mut prev: Option<HopRole> = None;
    for hop in &path.hops {
        let single = path.hops.len() == 1;
        let text = match hop.role {
            HopRole::You if single => "you (your own key)".to_string(),
            HopRole::You => "you".to_string(),
            HopRole::YourCa => format!("{} (your organisation)", hop.label),
            HopRole::Ca => {
                let domain = hop.ca_domain().unwrap_or("?");
                if matches!(prev, Some(HopRole::YourCa) | Some(HopRole::Ca)) {
                    format!("{} (bridge, {domain})", hop.label)
                } else {
                    format!("{} (organisation CA, {domain})", hop.label)
                }
            }
            HopRole::Introducer => {
                if prev == Some(HopRole::You) {
                    format!("{} (your trusted introducer)", hop.label)
                } else {
                    format!("{} (trusted introducer)", hop.label)
                }
            }
            HopRole::Target => {
                if prev == Some(HopRole::You) {
                    let how = direct.unwrap_or("you certified this key");
                    format!("{} ({how})", hop.label)
                } else {
                    hop.label.clone()
                }
            }
            HopRole::Root => format!("{} (trust root)", hop.label),
        };
        parts.push(text);
        prev = Some(hop.role);
    }
    format!(
        "{}: {} ({})",
        parts.join(" → "),
        Level::of(path.amount).word(),
        path.amount
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fpr(b: u8) -> Fingerprint {
        Fingerprint::from_bytes(4, &[b; 20]).expect("v4 fingerprint")
    }

    fn hop(b: u8, label: &str, role: HopRole, address: Option<&str>) -> Hop {
        Hop {
            fingerprint: fpr(b),
            label: label.into(),
            role,
            address: address.map(Into::into),
        }
    }

    #[test]
    fn levels_follow_amounts() {
        assert_eq!(Level::of(0), Level::None);
        assert_eq!(Level::of(1), Level::Partial);
        assert_eq!(Level::of(119), Level::Partial);
        assert_eq!(Level::of(120), Level::Full);
        assert_eq!(Level::of(240), Level::Full);
    }

    #[test]
    fn explains_bridge_and_personal_paths_in_words() {
        let v = Verdict {
            target: fpr(3),
            address: "carol@beta.test".into(),
            amount: 120,
            level: Level::Full,
            paths: vec![TrustPath {
                hops: vec![
                    hop(
                        1,
                        "alice@alpha.test",
                        HopRole::You,
                        Some("alice@alpha.test"),
                    ),
                    hop(
                        2,
                        "Alpha CA",
                        HopRole::YourCa,
                        Some("openpgp-ca@alpha.test"),
                    ),
                    hop(4, "Beta CA", HopRole::Ca, Some("openpgp-ca@beta.test")),
                    hop(
                        3,
                        "carol@beta.test",
                        HopRole::Target,
                        Some("carol@beta.test"),
                    ),
                ],
                amount: 120,
            }],
            why_not: None,
        };
        assert_eq!(
            v.explain(),
            vec![
                "you → Alpha CA (your organisation) → Beta CA (bridge, beta.test) → \
                 carol@beta.test: full (120)"
            ]
        );

        let personal = TrustPath {
            hops: vec![
                hop(1, "alice@alpha.test", HopRole::You, None),
                hop(5, "bob@alpha.test", HopRole::Target, Some("bob@alpha.test")),
            ],
            amount: 120,
        };
        assert_eq!(
            explain_path(&personal, None),
            "you → bob@alpha.test (you certified this key): full (120)"
        );
    }

    #[test]
    fn explains_why_not() {
        let v = Verdict::none(fpr(9), "dave@c.test".into(), WhyNot::NoPath);
        let lines = v.explain();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with("dave@c.test: none — "), "{lines:?}");
        assert!(!v.is_authenticated());
    }
}
