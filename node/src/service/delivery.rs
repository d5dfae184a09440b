//! The delivery mode of an outside recipient, decided by the organisation's policy
//! (`[delivery]`, docs/mail.md "Policy").
//!
//! [`decide`] is pure: no I/O, no clock. The envelope request (and `accept`, which must reach
//! the same answer) first finds the address's keys (`service::outside_keys::find`), describes
//! each as an [`Offer`], and asks `decide` which mode the policy gives and with which key.
//! A pinned domain gets its mode or fails with the reason, never another mode; otherwise the
//! first mode of `order` that is possible wins, and `tls` is never chosen by order.

use crate::config::DeliveryConfig;
use crate::proto::{DeliveryMode, KeySource};

/// One key found for an outside address, as the policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    pub source: KeySource,
    /// Why the key cannot be used now (revoked, expired, no encryption subkey, not for this
    /// address), in words; `None` when it can.
    pub unusable: Option<String>,
}

/// The keys found for an outside address, by kind, each list best first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Offers {
    pub openpgp: Vec<Offer>,
    pub x509: Vec<Offer>,
}

/// Which found key a decision uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyChoice {
    /// `Offers::openpgp[i]`.
    Openpgp(usize),
    /// `Offers::x509[i]`.
    X509(usize),
}

/// What the policy gives an outside recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub mode: DeliveryMode,
    /// One plain sentence why.
    pub why: String,
    /// The key the external copy is encrypted to (`openpgp`, `smime`).
    pub key: Option<KeyChoice>,
}

/// No mode of the policy is possible for the address: why, in words, and whether a pin
/// decided it (a pinned domain never falls back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoMode {
    pub why: String,
    pub pinned: bool,
}

/// What the policy says for an outside `address` (normalised), given the keys found for it
/// and whether pickup is on (`[pickup] enabled`).
pub fn decide(
    policy: &DeliveryConfig,
    pickup_enabled: bool,
    address: &str,
    offers: &Offers,
) -> Result<Decision, NoMode> {
    let domain = crate::domain_of(address);
    if let Some(pin) = policy.pin(domain) {
        let pinned = |why: String| NoMode { why, pinned: true };
        return match pin.mode {
            DeliveryMode::Tls => Ok(Decision {
                mode: DeliveryMode::Tls,
                why: format!(
                    "policy pins {domain} to enforced TLS ({}): this node will see the content in \
                     transit",
                    pin.tls.map_or("", |t| t.as_str())
                ),
                key: None,
            }),
            DeliveryMode::Pickup if pickup_enabled => Ok(Decision {
                mode: DeliveryMode::Pickup,
                why: format!(
                    "policy pins {domain} to pickup: {address} is reached by a link and an unlock \
                     code"
                ),
                key: None,
            }),
            DeliveryMode::Pickup => Err(pinned(format!(
                "policy pins {domain} to pickup, but pickup is switched off on this node"
            ))),
            mode => keyed(policy, mode, address, offers).map_err(|why| {
                pinned(format!(
                    "policy pins {domain} to {mode}, and {why}; it is not sent another way"
                ))
            }),
        };
    }
    let mut missing = Vec::new();
    for &mode in &policy.order {
        match mode {
            DeliveryMode::Pickup if pickup_enabled => {
                let mut why = format!(
                    "no usable key from a source this organisation trusts was found for \
                     {address}: it is reached by a link and an unlock code"
                );
                if !missing.is_empty() {
                    why.push_str(&format!(" ({})", missing.join("; ")));
                }
                return Ok(Decision {
                    mode,
                    why,
                    key: None,
                });
            }
            DeliveryMode::Openpgp | DeliveryMode::Smime => {
                match keyed(policy, mode, address, offers) {
                    Ok(d) => return Ok(d),
                    Err(why) => missing.push(why),
                }
            }
            // Not in a valid order (config validation); pickup switched off.
            _ => {}
        }
    }
    Err(NoMode {
        why: format!(
            "no delivery mode of this organisation's policy is possible for {address}: {}",
            if missing.is_empty() {
                "pickup is switched off".to_owned()
            } else {
                missing.join("; ")
            }
        ),
        pinned: false,
    })
}

/// `openpgp` or `smime` with the first usable key from a trusted source, or why not.
fn keyed(
    policy: &DeliveryConfig,
    mode: DeliveryMode,
    address: &str,
    offers: &Offers,
) -> Result<Decision, String> {
    let (list, what) = match mode {
        DeliveryMode::Smime => (&offers.x509, "X.509 certificate"),
        _ => (&offers.openpgp, "OpenPGP key"),
    };
    let trusted = |o: &Offer| policy.trusted_sources.contains(&o.source);
    if let Some(i) = list.iter().position(|o| o.unusable.is_none() && trusted(o)) {
        let source = list[i].source;
        return Ok(Decision {
            mode,
            why: found_why(source, what, address),
            key: Some(match mode {
                DeliveryMode::Smime => KeyChoice::X509(i),
                _ => KeyChoice::Openpgp(i),
            }),
        });
    }
    if let Some(o) = list.iter().find(|o| o.unusable.is_none()) {
        return Err(format!(
            "the {what} found for {address} comes from {}, which this organisation's policy does \
             not trust",
            source_words(o.source)
        ));
    }
    if let Some(why) = list.iter().find_map(|o| o.unusable.as_deref()) {
        return Err(format!(
            "the {what} found for {address} cannot be used: {why}"
        ));
    }
    Err(format!("no {what} was found for {address}"))
}

fn found_why(source: KeySource, what: &str, address: &str) -> String {
    let domain = crate::domain_of(address);
    match source {
        KeySource::Wkd => {
            format!("{address} publishes an {what} in {domain}'s Web Key Directory")
        }
        KeySource::Keyserver => format!("an {what} for {address} was found on a keyserver"),
        KeySource::Imported => format!("you imported an {what} for {address}"),
        KeySource::ImportedByAdmin => {
            format!("an administrator of this organisation imported an {what} for {address}")
        }
        KeySource::X509Anchor => {
            format!("{address} has an {what} issued under a trust anchor of this organisation")
        }
    }
}

fn source_words(source: KeySource) -> &'static str {
    match source {
        KeySource::Wkd => "the domain's Web Key Directory",
        KeySource::Keyserver => "a keyserver only",
        KeySource::Imported => "your own import",
        KeySource::ImportedByAdmin => "an administrator's import",
        KeySource::X509Anchor => "a configured trust anchor",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DeliveryPin, TlsPolicy};
    use DeliveryMode as M;
    use KeySource as K;

    fn ok(source: KeySource) -> Offer {
        Offer {
            source,
            unusable: None,
        }
    }

    fn revoked(source: KeySource) -> Offer {
        Offer {
            source,
            unusable: Some("it is revoked".into()),
        }
    }

    fn pins(p: &[(&str, DeliveryMode, Option<TlsPolicy>)]) -> DeliveryConfig {
        DeliveryConfig {
            pins: p
                .iter()
                .map(|(d, m, t)| DeliveryPin {
                    domain: (*d).into(),
                    mode: *m,
                    tls: *t,
                })
                .collect(),
            ..DeliveryConfig::default()
        }
    }

    /// Every rule of [`decide`]: (case, policy, pickup on, address, keys, the mode and key it
    /// gives or `None` for no mode, a word the sentence must hold).
    #[test]
    fn the_policy_decides_each_outside_recipients_mode() {
        let default = DeliveryConfig::default();
        let pickup_first = DeliveryConfig {
            order: vec![M::Pickup, M::Openpgp],
            ..DeliveryConfig::default()
        };
        let keyserver_ok = DeliveryConfig {
            trusted_sources: vec![K::Keyserver],
            ..DeliveryConfig::default()
        };
        let pinned = pins(&[
            ("bank.test", M::Tls, Some(TlsPolicy::MtaSts)),
            ("regulator.test", M::Smime, None),
            ("pgp-only.test", M::Openpgp, None),
            ("paper.test", M::Pickup, None),
        ]);
        let offers = |openpgp: Vec<Offer>, x509: Vec<Offer>| Offers { openpgp, x509 };
        type Case<'a> = (
            &'a str,
            &'a DeliveryConfig,
            bool,
            &'a str,
            Offers,
            Option<(DeliveryMode, Option<KeyChoice>)>,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (
                "a WKD key: openpgp",
                &default,
                true,
                "dora@pgp.test",
                offers(vec![ok(K::Wkd)], vec![]),
                Some((M::Openpgp, Some(KeyChoice::Openpgp(0)))),
                "pgp.test's Web Key Directory",
            ),
            (
                "an admin's import: openpgp",
                &default,
                true,
                "dora@pgp.test",
                offers(vec![ok(K::ImportedByAdmin)], vec![]),
                Some((M::Openpgp, Some(KeyChoice::Openpgp(0)))),
                "administrator",
            ),
            (
                "no key: pickup",
                &default,
                true,
                "carol@out.test",
                Offers::default(),
                Some((M::Pickup, None)),
                "unlock code",
            ),
            (
                "a keyserver key is not trusted by default: pickup, and the sentence says so",
                &default,
                true,
                "carol@out.test",
                offers(vec![ok(K::Keyserver)], vec![]),
                Some((M::Pickup, None)),
                "a keyserver only",
            ),
            (
                "... unless the policy trusts keyservers",
                &keyserver_ok,
                true,
                "carol@out.test",
                offers(vec![ok(K::Keyserver)], vec![]),
                Some((M::Openpgp, Some(KeyChoice::Openpgp(0)))),
                "keyserver",
            ),
            (
                "a revoked key is passed over for the next usable one",
                &default,
                true,
                "dora@pgp.test",
                offers(vec![revoked(K::Wkd), ok(K::Imported)], vec![]),
                Some((M::Openpgp, Some(KeyChoice::Openpgp(1)))),
                "you imported",
            ),
            (
                "only a revoked key: pickup",
                &default,
                true,
                "dora@pgp.test",
                offers(vec![revoked(K::Wkd)], vec![]),
                Some((M::Pickup, None)),
                "it is revoked",
            ),
            (
                "no OpenPGP key but a certificate: smime",
                &default,
                true,
                "erik@smime.test",
                offers(vec![], vec![ok(K::X509Anchor)]),
                Some((M::Smime, Some(KeyChoice::X509(0)))),
                "trust anchor",
            ),
            (
                "both: the order's first (openpgp)",
                &default,
                true,
                "erik@both.test",
                offers(vec![ok(K::Wkd)], vec![ok(K::X509Anchor)]),
                Some((M::Openpgp, Some(KeyChoice::Openpgp(0)))),
                "Web Key Directory",
            ),
            (
                "pickup first in the order wins over a key",
                &pickup_first,
                true,
                "dora@pgp.test",
                offers(vec![ok(K::Wkd)], vec![]),
                Some((M::Pickup, None)),
                "unlock code",
            ),
            (
                "no key and pickup off: no mode",
                &default,
                false,
                "carol@out.test",
                Offers::default(),
                None,
                "no OpenPGP key was found",
            ),
            (
                "a tls pin, whatever keys there are",
                &pinned,
                true,
                "fay@bank.test",
                offers(vec![ok(K::Wkd)], vec![]),
                Some((M::Tls, None)),
                "see the content in transit",
            ),
            (
                "an smime pin with a certificate",
                &pinned,
                true,
                "reg@regulator.test",
                offers(vec![ok(K::Wkd)], vec![ok(K::X509Anchor)]),
                Some((M::Smime, Some(KeyChoice::X509(0)))),
                "trust anchor",
            ),
            (
                "an smime pin without one fails, never falls back to openpgp or pickup",
                &pinned,
                true,
                "reg@regulator.test",
                offers(vec![ok(K::Wkd)], vec![]),
                None,
                "policy pins regulator.test to smime",
            ),
            (
                "an openpgp pin with only an untrusted key fails",
                &pinned,
                true,
                "x@pgp-only.test",
                offers(vec![ok(K::Keyserver)], vec![]),
                None,
                "does not trust",
            ),
            (
                "a pickup pin over a usable key",
                &pinned,
                true,
                "x@paper.test",
                offers(vec![ok(K::Wkd)], vec![]),
                Some((M::Pickup, None)),
                "policy pins paper.test to pickup",
            ),
            (
                "a pin is for its domain only, not a subdomain",
                &pinned,
                true,
                "x@mail.bank.test",
                Offers::default(),
                Some((M::Pickup, None)),
                "unlock code",
            ),
        ];
        for (name, policy, pickup, address, offers, want, words) in cases {
            let got = decide(policy, pickup, address, &offers);
            match (&got, want) {
                (Ok(d), Some((mode, key))) => {
                    assert_eq!((d.mode, d.key), (mode, key), "{name}");
                    assert!(d.why.contains(words), "{name}: {}", d.why);
                }
                (Err(no), None) => {
                    assert!(no.why.contains(words), "{name}: {}", no.why);
                    assert_eq!(no.pinned, policy.pin(crate::domain_of(address)).is_some());
                }
                _ => panic!("{name}: got {got:?}, wanted {want:?}"),
            }
        }
    }
}
