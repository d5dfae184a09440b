//! The organisation's S/MIME CA (docs/mail.md, "The S/MIME copy"; config `[smime]`): the node
//! issues each user an X.509 certificate for their client's S/MIME signing key, so that the
//! S/MIME copies their client makes are signed. Every rule is here, once:
//!
//! - **configured**: without `[smime]` every request is `smime_ca_not_configured` and copies
//!   go unsigned (`GET /org` `smime_signing: false`).
//! - **who**: a user, never a guest (`guest_not_allowed`).
//! - **which key**: ECDSA P-256 (what GnuPG 2.2's gpgsm verifies; it cannot read Ed25519
//!   X.509), or RSA 2048 to 4096 bits; anything else is `smime_key_unsupported`.
//! - **bound to the user's key**: the request carries a detached OpenPGP signature by the
//!   account's registered key over the exact DER of the key's SubjectPublicKeyInfo; a stolen
//!   session without the key gets nothing (`smime_binding_invalid`).
//! - **how often**: at most [`MAX_PER_DAY`] a day per account (`rate_limited`, with when to
//!   try again).
//! - **what it says**: a random 128-bit serial, `CN` the display name (or the address), SAN
//!   rfc822Name the address, keyUsage digitalSignature and nonRepudiation (critical), EKU
//!   emailProtection, CA:FALSE, SKI/AKI, valid from five minutes ago for `cert_days` but never
//!   beyond the CA, signed with SHA-256. Each issuance is recorded (serial, key hash, expiry)
//!   and logged as `smime.certificate_issued`.
//! - **what is kept**: no key material in the clear, ever. The web app may send its key
//!   wrapped in the browser under a password-derived key (`wrapped_key`, opaque here, at most
//!   [`MAX_WRAPPED_KEY`] bytes of printable ASCII); the node keeps it with the certificate and
//!   gives the newest still valid back to its user's session (`GET /smime/certificate`), so
//!   the user signs from any browser, as their OpenPGP key is kept (`wrapped_key` of the
//!   account).
//!
//! What this module must not do: log the CA's key, or read the clock (`now` comes in).

use std::path::Path;
use std::time::SystemTime;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Builder, X509KeyUsage, X509NameBuilder};
use sha2::{Digest, Sha256};

use super::{Context, ServiceError, unix};
use crate::config::{ConfigError, SmimeConfig};
use crate::proto::{SmimeCertificateRequest, SmimeCertificateResponse, SmimeStoredKeyResponse};
use crate::storage::Account;
use crate::storage::smime::{SmimeIssuance, StoredSmimeKey};

/// Certificates one account may be issued in a day.
pub const MAX_PER_DAY: u32 = 5;
/// Largest public key PEM accepted (an RSA-4096 SPKI is about 800 bytes).
const MAX_KEY_PEM: usize = 4096;
/// Largest binding signature accepted.
const MAX_BINDING: usize = 8192;
/// Largest wrapped key accepted (an RSA-4096 PKCS#8, encrypted and base64, is about 3.3 KiB).
pub const MAX_WRAPPED_KEY: usize = 16 * 1024;
/// Longest common name (RFC 5280's ub-common-name), in characters.
const MAX_CN_CHARS: usize = 64;

/// The issuing CA, read and checked at start. Its key never leaves this struct.
pub struct SmimeCa {
    cert: X509,
    /// The CA's certificate and the chain after it, PEM: what clients include in signatures.
    chain_pem: String,
    key: PKey<Private>,
    /// The CA's own expiry (Unix seconds): no certificate outlives it.
    not_after: i64,
    cert_days: u32,
}

impl std::fmt::Debug for SmimeCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmimeCa")
            .field("subject", &self.cert.subject_name())
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn asn1_unix(t: &openssl::asn1::Asn1TimeRef) -> Result<i64, openssl::error::ErrorStack> {
    let d = Asn1Time::from_unix(0)?.diff(t)?;
    Ok(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

/// Whether the certificate's basicConstraints say CA:TRUE (the openssl crate has no accessor).
fn is_ca(cert: &X509) -> Result<bool, String> {
    use cms::cert::x509::Certificate;
    use cms::cert::x509::ext::pkix::BasicConstraints as Bc;
    use der::Decode;
    use der::oid::AssociatedOid;
    let der = cert.to_der().map_err(|e| e.to_string())?;
    let c = Certificate::from_der(&der).map_err(|e| e.to_string())?;
    let Some(ext) = c
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == Bc::OID)
    else {
        return Ok(false);
    };
    Ok(Bc::from_der(ext.extn_value.as_bytes())
        .map_err(|e| e.to_string())?
        .ca)
}

impl SmimeCa {
    /// Reads `[smime]`'s files and checks them: a certificate that is a CA (CA:TRUE, keyUsage
    /// keyCertSign), not expired, whose key is `ca_key` (RSA or ECDSA: GnuPG 2.2 reads no
    /// Ed25519 X.509).
    pub fn load(c: &SmimeConfig) -> Result<SmimeCa, ConfigError> {
        let fail = |path: &str, message: String| ConfigError::SmimeCa {
            path: Path::new(path).to_owned(),
            message,
        };
        let read = |path: &str| {
            std::fs::read(path).map_err(|source| ConfigError::Read {
                path: Path::new(path).to_owned(),
                source,
            })
        };
        let certs = X509::stack_from_pem(&read(&c.ca_cert)?)
            .map_err(|e| fail(&c.ca_cert, format!("not PEM certificates: {e}")))?;
        let Some(cert) = certs.first().cloned() else {
            return Err(fail(&c.ca_cert, "holds no certificate".into()));
        };
        // The key's bytes are not in any message: only whether they parse.
        let key = PKey::private_key_from_pem(&read(&c.ca_key)?)
            .map_err(|_| fail(&c.ca_key, "not a PEM private key".into()))?;
        if !matches!(key.id(), Id::RSA | Id::EC) {
            return Err(fail(
                &c.ca_key,
                "the CA key must be RSA or ECDSA (GnuPG 2.2 reads no Ed25519 X.509)".into(),
            ));
        }
        let matches = cert
            .public_key()
            .map(|p| p.public_eq(&key))
            .unwrap_or(false);
        if !matches {
            return Err(fail(&c.ca_key, "is not the key of ca_cert".into()));
        }
        if !is_ca(&cert).map_err(|e| fail(&c.ca_cert, e))? {
            return Err(fail(
                &c.ca_cert,
                "is not a CA certificate (basicConstraints CA:TRUE)".into(),
            ));
        }
        if !cert
            .key_usage()
            .is_some_and(|k| k.contains(X509KeyUsage::KEY_CERT_SIGN))
        {
            return Err(fail(
                &c.ca_cert,
                "may not sign certificates (keyUsage keyCertSign)".into(),
            ));
        }
        let not_after = asn1_unix(cert.not_after()).map_err(|e| fail(&c.ca_cert, e.to_string()))?;
        if not_after <= crate::now() {
            return Err(fail(&c.ca_cert, "has expired".into()));
        }
        let mut chain_pem = String::new();
        for c2 in &certs {
            let pem = c2.to_pem().map_err(|e| fail(&c.ca_cert, e.to_string()))?;
            chain_pem.push_str(&String::from_utf8_lossy(&pem));
        }
        Ok(SmimeCa {
            cert,
            chain_pem,
            key,
            not_after,
            cert_days: c.cert_days,
        })
    }

    /// A certificate for `public` (already checked) for `address` named `cn`, valid from
    /// `now` - 5 minutes; its serial (hex) and expiry.
    fn issue(
        &self,
        public: &PKey<Public>,
        address: &str,
        cn: &str,
        now: i64,
    ) -> Result<(X509, String, i64), openssl::error::ErrorStack> {
        let not_after = (now + i64::from(self.cert_days) * 86_400).min(self.not_after);
        let mut b = X509Builder::new()?;
        b.set_version(2)?;
        // 128 random bits, the top one set: positive, never zero, always 16 bytes of entropy.
        let mut serial = BigNum::new()?;
        serial.rand(128, MsbOption::ONE, false)?;
        b.set_serial_number(&*serial.to_asn1_integer()?)?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_text("CN", cn)?;
        b.set_subject_name(&name.build())?;
        b.set_issuer_name(self.cert.subject_name())?;
        b.set_pubkey(public)?;
        b.set_not_before(&*Asn1Time::from_unix(now - 300)?)?;
        b.set_not_after(&*Asn1Time::from_unix(not_after)?)?;
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .non_repudiation()
                .build()?,
        )?;
        b.append_extension(ExtendedKeyUsage::new().email_protection().build()?)?;
        let san = SubjectAlternativeName::new()
            .email(address)
            .build(&b.x509v3_context(Some(&self.cert), None))?;
        b.append_extension(san)?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(&self.cert), None))?;
        b.append_extension(ski)?;
        // The CA's key identifier, when it has one (every CA made by current tools does).
        if self.cert.subject_key_id().is_some() {
            let aki = AuthorityKeyIdentifier::new()
                .keyid(true)
                .build(&b.x509v3_context(Some(&self.cert), None))?;
            b.append_extension(aki)?;
        }
        b.sign(&self.key, MessageDigest::sha256())?;
        Ok((
            b.build(),
            serial.to_hex_str()?.to_ascii_lowercase(),
            not_after,
        ))
    }
}

/// The DER inside a `-----BEGIN PUBLIC KEY-----` PEM, exactly as sent (the bytes the binding
/// signs, not a re-encoding).
fn spki_der(pem: &str) -> Result<Vec<u8>, ServiceError> {
    let bad = || ServiceError::InvalidRequest("public_key is not a PEM public key".into());
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN PUBLIC KEY-----")
        .and_then(|r| r.strip_suffix("-----END PUBLIC KEY-----"))
        .ok_or_else(bad)?;
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| bad())
}

/// Only keys gpgsm and every S/MIME reader verify: ECDSA P-256, or RSA 2048 to 4096 bits.
fn check_key(key: &PKey<Public>) -> Result<(), ServiceError> {
    let unsupported = |m: String| Err(ServiceError::SmimeKeyUnsupported(m));
    match key.id() {
        Id::EC => {
            let curve = key.ec_key().ok().and_then(|k| k.group().curve_name());
            if curve == Some(Nid::X9_62_PRIME256V1) {
                Ok(())
            } else {
                unsupported("an elliptic curve other than P-256".into())
            }
        }
        Id::RSA if (2048..=4096).contains(&key.bits()) => Ok(()),
        Id::RSA => unsupported(format!("RSA with {} bits", key.bits())),
        Id::ED25519 => unsupported("Ed25519".into()),
        _ => unsupported("an unknown algorithm".into()),
    }
}

/// Issues `account` a certificate for the key in `req`, bound to its Sealpost key by
/// `req.binding` (see the module's rules).
pub async fn issue(
    ctx: &Context,
    account: &Account,
    req: &SmimeCertificateRequest,
    now: SystemTime,
) -> Result<SmimeCertificateResponse, ServiceError> {
    let Some(ca) = ctx.smime.as_deref() else {
        return Err(ServiceError::SmimeCaNotConfigured);
    };
    super::guests::not_for_guests(account, "have an S/MIME certificate")?;
    if req.public_key.len() > MAX_KEY_PEM || req.binding.len() > MAX_BINDING {
        return Err(ServiceError::InvalidRequest(
            "public_key or binding is too long".into(),
        ));
    }
    if let Some(w) = &req.wrapped_key {
        if w.is_empty() || w.len() > MAX_WRAPPED_KEY {
            return Err(ServiceError::InvalidRequest(format!(
                "wrapped_key must be 1 to {MAX_WRAPPED_KEY} bytes"
            )));
        }
        if !w.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ServiceError::InvalidRequest(
                "wrapped_key must be printable ASCII without spaces".into(),
            ));
        }
    }
    let der = spki_der(&req.public_key)?;
    let public = PKey::public_key_from_der(&der).map_err(|_| {
        ServiceError::InvalidRequest("public_key is not a SubjectPublicKeyInfo".into())
    })?;
    check_key(&public)?;
    let armored = account.cert.as_deref().ok_or(ServiceError::NotEnrolled {
        address: account.address.clone(),
    })?;
    let cert = ctx.parse_cert(armored).map_err(ServiceError::internal)?;
    crate::crypto::verify_detached(&cert, &ctx.policy, now, &der, &req.binding)
        .map_err(|e| ServiceError::SmimeBindingInvalid(e.to_string()))?;

    let at = unix(now);
    let cn: String = account
        .name
        .as_deref()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or(&account.address)
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_CN_CHARS)
        .collect();
    let (leaf, serial, not_after) = ca
        .issue(&public, &account.address, &cn, at)
        .map_err(ServiceError::internal)?;
    let certificate = String::from_utf8(leaf.to_pem().map_err(ServiceError::internal)?)
        .map_err(ServiceError::internal)?;
    let issuance = SmimeIssuance {
        account_id: account.id,
        serial,
        spki_sha256: hex::encode(Sha256::digest(&der)),
        not_after,
        issued_at: at,
        stored: req.wrapped_key.as_ref().map(|w| StoredSmimeKey {
            certificate: certificate.clone(),
            wrapped_key: w.clone(),
        }),
    };
    if let Some(oldest) = ctx
        .store
        .record_smime_issuance(&issuance, &account.address, MAX_PER_DAY, at - 86_400)
        .await?
    {
        return Err(ServiceError::SmimeRateLimited {
            max: MAX_PER_DAY,
            secs: u64::try_from(oldest + 86_400 - at).unwrap_or(1).max(1),
        });
    }
    Ok(SmimeCertificateResponse {
        certificate,
        chain: ca.chain_pem.clone(),
        not_after,
    })
}

/// The newest certificate of `account`'s still valid at `now` whose key the node keeps
/// wrapped (the web app's), with that key; `SmimeKeyNotStored` when there is none.
pub async fn stored_key(
    ctx: &Context,
    account: &Account,
    now: SystemTime,
) -> Result<SmimeStoredKeyResponse, ServiceError> {
    let Some(ca) = ctx.smime.as_deref() else {
        return Err(ServiceError::SmimeCaNotConfigured);
    };
    super::guests::not_for_guests(account, "have an S/MIME certificate")?;
    let found = ctx
        .store
        .newest_stored_smime_key(account.id, unix(now))
        .await?;
    let Some((i, k)) = found.and_then(|i| i.stored.clone().map(|k| (i, k))) else {
        return Err(ServiceError::SmimeKeyNotStored);
    };
    Ok(SmimeStoredKeyResponse {
        certificate: k.certificate,
        chain: ca.chain_pem.clone(),
        not_after: i.not_after,
        wrapped_key: k.wrapped_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::rsa::Rsa;

    /// A CA certificate for `key`; `ca` and `sign` choose its basicConstraints and keyUsage.
    fn ca_cert(key: &PKey<Private>, ca: bool, cert_sign: bool) -> X509 {
        let mut n = X509NameBuilder::new().unwrap();
        n.append_entry_by_text("CN", "Test S/MIME CA").unwrap();
        let n = n.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&n).unwrap();
        b.set_issuer_name(&n).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(3650).unwrap())
            .unwrap();
        let mut bc = BasicConstraints::new();
        bc.critical();
        if ca {
            bc.ca();
        }
        b.append_extension(bc.build().unwrap()).unwrap();
        let mut ku = KeyUsage::new();
        ku.critical().digital_signature();
        if cert_sign {
            ku.key_cert_sign();
        }
        b.append_extension(ku.build().unwrap()).unwrap();
        let ski = SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(ski).unwrap();
        // Ed25519 signs with no separate digest.
        let md = if key.id() == Id::ED25519 {
            MessageDigest::null()
        } else {
            MessageDigest::sha256()
        };
        b.sign(key, md).unwrap();
        b.build()
    }

    fn p256() -> PKey<Private> {
        let g = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        PKey::from_ec_key(EcKey::generate(&g).unwrap()).unwrap()
    }

    /// `[smime]` with these files, loaded.
    fn load(cert: &X509, key: &PKey<Private>) -> Result<SmimeCa, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
        std::fs::write(&c, cert.to_pem().unwrap()).unwrap();
        std::fs::write(&k, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        SmimeCa::load(&SmimeConfig {
            ca_cert: c.display().to_string(),
            ca_key: k.display().to_string(),
            cert_days: 365,
        })
    }

    #[test]
    fn a_ca_is_loaded_only_when_it_is_a_ca_that_signs_certificates_with_its_own_key() {
        let key = p256();
        let ca = load(&ca_cert(&key, true, true), &key).unwrap();
        assert!(format!("{ca:?}").contains("Test S/MIME CA"));
        assert!(
            !format!("{ca:?}").contains("PRIVATE"),
            "the key is never shown"
        );

        let refused = |r: Result<SmimeCa, ConfigError>| match r {
            Err(ConfigError::SmimeCa { message, .. }) => message,
            other => panic!("{other:?}"),
        };
        let m = refused(load(&ca_cert(&key, true, true), &p256()));
        assert!(m.contains("not the key"), "{m}");
        let m = refused(load(&ca_cert(&key, false, true), &key));
        assert!(m.contains("CA:TRUE"), "{m}");
        let m = refused(load(&ca_cert(&key, true, false), &key));
        assert!(m.contains("keyCertSign"), "{m}");
        let ed = PKey::generate_ed25519().unwrap();
        let m = refused(load(&ca_cert(&ed, true, true), &ed));
        assert!(m.contains("RSA or ECDSA"), "{m}");
        assert!(matches!(
            SmimeCa::load(&SmimeConfig {
                ca_cert: "/nonexistent/ca.pem".into(),
                ca_key: "/nonexistent/ca.key".into(),
                cert_days: 365,
            }),
            Err(ConfigError::Read { .. })
        ));
    }

    #[test]
    fn issued_certificates_say_what_s_mime_readers_need_and_never_outlive_the_ca() {
        let key = p256();
        let mut ca = load(&ca_cert(&key, true, true), &key).unwrap();
        let user = p256();
        let public = PKey::public_key_from_der(&user.public_key_to_der().unwrap()).unwrap();
        let now = crate::now();
        let (leaf, serial, not_after) =
            ca.issue(&public, "alice@alpha.test", "Alice", now).unwrap();
        assert_eq!(serial.len(), 32, "128 bits: {serial}");
        assert_eq!(not_after, now + 365 * 86_400);
        assert!(leaf.verify(&key).unwrap());
        let text = String::from_utf8(leaf.to_text().unwrap()).unwrap();
        for want in [
            "CN=Alice",
            "email:alice@alpha.test",
            "Digital Signature, Non Repudiation",
            "E-mail Protection",
            "CA:FALSE",
            "X509v3 Subject Key Identifier",
            "X509v3 Authority Key Identifier",
            "ecdsa-with-SHA256",
        ] {
            assert!(text.contains(want), "{want} in {text}");
        }
        ca.not_after = now + 10 * 86_400;
        let (_, _, not_after) = ca.issue(&public, "a@alpha.test", "a", now).unwrap();
        assert_eq!(not_after, now + 10 * 86_400);
    }

    /// A node of its own with a `[smime]` CA refuses a guest before looking at the request.
    #[tokio::test]
    async fn a_guest_gets_no_certificate() {
        let dir = tempfile::tempdir().unwrap();
        crate::node::init(dir.path(), "g.test", None).await.unwrap();
        let key = p256();
        let (c, k) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
        std::fs::write(&c, ca_cert(&key, true, true).to_pem().unwrap()).unwrap();
        std::fs::write(&k, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let config = crate::config::Paths::new(dir.path()).config();
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(&format!("\n[smime]\nca_cert = {c:?}\nca_key = {k:?}\n"));
        std::fs::write(&config, text).unwrap();
        let node = crate::node::Node::open(dir.path()).unwrap();
        assert!(node.state.context.smime.is_some());
        let guest = Account {
            id: 1,
            address: "gina@outside.test".into(),
            kind: crate::storage::AccountKind::Guest,
            name: None,
            is_admin: false,
            state: crate::storage::AccountState::Active,
            created_at: 0,
            cert: None,
            fingerprint: None,
            wrapped_key: None,
            kdf_salt: None,
            kdf_params: None,
            login_hash: None,
            totp_secret: None,
            totp_enabled: false,
        };
        let public_key = String::from_utf8(p256().public_key_to_pem().unwrap()).unwrap();
        let req = SmimeCertificateRequest {
            public_key,
            binding: String::new(),
            wrapped_key: None,
        };
        let r = issue(&node.state.context, &guest, &req, SystemTime::now()).await;
        assert!(
            matches!(r, Err(ServiceError::GuestNotAllowed { .. })),
            "{r:?}"
        );
    }

    #[test]
    fn only_p256_and_rsa_2048_to_4096_are_certified() {
        let public =
            |k: PKey<Private>| PKey::public_key_from_der(&k.public_key_to_der().unwrap()).unwrap();
        assert!(check_key(&public(p256())).is_ok());
        assert!(
            check_key(&public(
                PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
            ))
            .is_ok()
        );
        for k in [
            PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap(),
            PKey::generate_ed25519().unwrap(),
            PKey::from_ec_key(
                EcKey::generate(&EcGroup::from_curve_name(Nid::SECP384R1).unwrap()).unwrap(),
            )
            .unwrap(),
        ] {
            assert!(matches!(
                check_key(&public(k)),
                Err(ServiceError::SmimeKeyUnsupported(_))
            ));
        }
    }
}
