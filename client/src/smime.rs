//! The user's S/MIME signing identity (docs/mail.md, "The S/MIME copy"): when the organisation
//! runs an S/MIME CA (`GET /org` `smime_signing`), the client signs the S/MIME copies it makes.
//! GnuPG 2.2's gpgsm reads no Ed25519 X.509, so the signing key is a separate ECDSA P-256 key,
//! made once by the client and certified by the node's CA, bound to the user's Sealpost key by
//! a detached OpenPGP signature over the key's SubjectPublicKeyInfo.
//!
//! The key is kept (in [`SmimeIdentity`], which the CLI keeps in its state) as encrypted
//! PKCS#8 under the same password-derived wrap key that protects the user's own key: nothing
//! in the clear. A certificate with fewer than [`RENEW_BEFORE_SECS`] left is renewed for the
//! same key.

use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::symm::Cipher;
use serde::{Deserialize, Serialize};

use sealpost_proto::{SmimeCertificateRequest, SmimeCertificateResponse, now};

use crate::{ClientError, POLICY, Result, Session, crypto, json};

/// Renew a certificate with fewer than this many seconds left (30 days).
pub const RENEW_BEFORE_SECS: i64 = 30 * 86_400;

/// The user's S/MIME signing key (encrypted) and its certificate from the organisation's CA.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SmimeIdentity {
    /// The ECDSA P-256 key: encrypted PKCS#8 PEM (AES-256-CBC, PBKDF2) under the user's
    /// password-derived wrap key.
    pub key: String,
    /// The leaf certificate, PEM.
    pub certificate: String,
    /// The CA's certificate and its chain, PEM.
    pub chain: String,
    /// When the certificate expires (Unix seconds).
    pub not_after: i64,
}

/// What signs an S/MIME copy: the key (unlocked, in memory) and its certificates.
pub(crate) struct SmimeSigner {
    pub key: PKey<Private>,
    pub certificate: String,
    pub chain: String,
}

fn ssl(e: openssl::error::ErrorStack) -> ClientError {
    ClientError::Crypto(crypto::CryptoError::other("S/MIME key", e))
}

impl Session {
    /// Whether the organisation's CA issues S/MIME certificates (`GET /org` at login): then
    /// S/MIME copies are signed, else they go unsigned ([`sealpost_proto::SMIME_UNSIGNED`]).
    pub fn smime_signing(&self) -> bool {
        self.smime_signing
    }

    /// This session with a signing identity kept from an earlier one (the CLI's state).
    pub fn with_smime_identity(self, identity: Option<SmimeIdentity>) -> Session {
        *self.smime.lock().expect("not poisoned") = identity;
        self
    }

    /// The signing identity now (made or renewed by a send): keep it for the next session.
    pub fn smime_identity(&self) -> Option<SmimeIdentity> {
        self.smime.lock().expect("not poisoned").clone()
    }

    /// Asks the node's CA for a certificate for `key` (`POST /smime/certificate`), bound to
    /// this user's key by a detached signature over the SPKI DER.
    pub async fn request_smime_certificate(
        &self,
        spki_der: &[u8],
    ) -> Result<SmimeCertificateResponse> {
        let binding = crypto::sign_detached(&self.me, &POLICY, spki_der)?;
        let pem = openssl::pkey::PKey::public_key_from_der(spki_der)
            .and_then(|k| k.public_key_to_pem())
            .map_err(ssl)?;
        json(
            self.post("/smime/certificate")
                .json(&SmimeCertificateRequest {
                    public_key: String::from_utf8_lossy(&pem).into_owned(),
                    binding,
                    wrapped_key: None,
                })
                .send()
                .await?,
        )
        .await
    }

    /// The signer for this session's S/MIME copies: `None` when the organisation has no CA.
    /// Makes the P-256 key the first time, and (re)requests the certificate when there is
    /// none or it has fewer than 30 days left.
    pub(crate) async fn smime_signer(&self) -> Result<Option<SmimeSigner>> {
        if !self.smime_signing {
            return Ok(None);
        }
        let kept = self.smime_identity();
        // A key locked under another wrap key (the password changed since) is replaced: a new
        // key, and a certificate for it.
        let unlocked = kept.as_ref().and_then(|id| {
            self.wrap
                .map(|p| PKey::private_key_from_pem_passphrase(id.key.as_bytes(), p))
                .map(|key| (key, id.key.clone()))
                .inspect_err(|_| tracing::warn!("the kept S/MIME key does not unlock: a new one"))
                .ok()
        });
        let kept = kept.filter(|_| unlocked.is_some());
        if let (Some(id), Some((key, _))) = (&kept, &unlocked)
            && id.not_after - now() >= RENEW_BEFORE_SECS
        {
            return Ok(Some(SmimeSigner {
                key: key.clone(),
                certificate: id.certificate.clone(),
                chain: id.chain.clone(),
            }));
        }
        let (key, locked) = match unlocked {
            Some(k) => k,
            None => {
                let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(ssl)?;
                let key = PKey::from_ec_key(EcKey::generate(&group).map_err(ssl)?).map_err(ssl)?;
                let locked = self
                    .wrap
                    .map(|p| key.private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), p))
                    .map_err(ssl)?;
                (key, String::from_utf8_lossy(&locked).into_owned())
            }
        };
        let spki = key.public_key_to_der().map_err(ssl)?;
        let issued = match self.request_smime_certificate(&spki).await {
            Ok(issued) => issued,
            // The organisation stopped signing since login: unsigned, as without a CA.
            Err(ClientError::Api { code, .. }) if code == "smime_ca_not_configured" => {
                return Ok(None);
            }
            // A renewal refused while the certificate still holds: sign with it.
            Err(e) => match kept {
                Some(id) if id.not_after > now() + 3600 => {
                    tracing::warn!(error = %e, "could not renew the S/MIME certificate");
                    return Ok(Some(SmimeSigner {
                        key,
                        certificate: id.certificate,
                        chain: id.chain,
                    }));
                }
                _ => return Err(e),
            },
        };
        let identity = SmimeIdentity {
            key: locked,
            certificate: issued.certificate.clone(),
            chain: issued.chain.clone(),
            not_after: issued.not_after,
        };
        *self.smime.lock().expect("not poisoned") = Some(identity);
        Ok(Some(SmimeSigner {
            key,
            certificate: issued.certificate,
            chain: issued.chain,
        }))
    }
}
