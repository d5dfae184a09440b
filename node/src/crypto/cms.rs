//! An S/MIME external copy as the node checks it (docs/mail.md, "The S/MIME copy"): DER CMS
//! that OpenSSL reads, `EnvelopedData` or `AuthEnvelopedData` (RFC 5083), with a
//! `RecipientInfo` for the recipient's certificate (by issuer and serial number, or by
//! subject key identifier). The node cannot decrypt it: it checks whom it is addressed to.
//!
//! OpenSSL parses the whole structure as a mail reader would; the recipient identifiers are
//! read with RustCrypto's `cms` (the openssl crate has no accessor for `RecipientInfos`).

use ::cms::cert::x509::Certificate;
use ::cms::cert::x509::attr::Attributes;
use ::cms::content_info::{CmsVersion, ContentInfo};
use ::cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyAgreeRecipientIdentifier, OriginatorInfo,
    RecipientIdentifier, RecipientInfo, RecipientInfos,
};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode, Sequence};
use openssl::cms::CmsContentInfo;
use openssl::x509::X509;

/// `id-envelopedData` (RFC 5652).
const ENVELOPED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3");
/// `id-ct-authEnvelopedData` (RFC 5083).
const AUTH_ENVELOPED_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.23");

/// RFC 5083's `AuthEnvelopedData` (the `cms` crate 0.2 has no type for it).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct AuthEnvelopedData {
    version: CmsVersion,
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    originator_info: Option<OriginatorInfo>,
    recip_infos: RecipientInfos,
    auth_encrypted_content: EncryptedContentInfo,
    #[asn1(
        context_specific = "1",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    auth_attrs: Option<Attributes>,
    mac: OctetString,
    #[asn1(
        context_specific = "2",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    unauth_attrs: Option<Attributes>,
}

/// Why a copy is not an S/MIME message for the certificate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CmsError {
    /// Not DER CMS, or CMS of another content type than (auth-)enveloped data.
    #[error("{0}")]
    Malformed(String),
    /// Well formed, but no `RecipientInfo` names the certificate.
    #[error("no RecipientInfo names the recipient's certificate")]
    NotForRecipient,
}

/// Checks that `copy` is DER CMS `EnvelopedData` or `AuthEnvelopedData` with a
/// `RecipientInfo` for the first certificate of `recipient_pem`.
pub fn check_enveloped_for(copy: &[u8], recipient_pem: &str) -> Result<(), CmsError> {
    let malformed =
        |what: &str, e: &dyn std::fmt::Display| CmsError::Malformed(format!("{what}: {e}"));
    CmsContentInfo::from_der(copy).map_err(|e| malformed("not CMS that OpenSSL reads", &e))?;
    let info = ContentInfo::from_der(copy).map_err(|e| malformed("not DER CMS", &e))?;
    let content = info
        .content
        .to_der()
        .map_err(|e| malformed("not DER CMS", &e))?;
    let infos = match info.content_type {
        t if t == ENVELOPED_DATA => {
            EnvelopedData::from_der(&content)
                .map_err(|e| malformed("not CMS EnvelopedData", &e))?
                .recip_infos
        }
        t if t == AUTH_ENVELOPED_DATA => {
            AuthEnvelopedData::from_der(&content)
                .map_err(|e| malformed("not CMS AuthEnvelopedData", &e))?
                .recip_infos
        }
        t => {
            return Err(CmsError::Malformed(format!(
                "CMS content type {t}, not enveloped-data"
            )));
        }
    };
    let ossl = X509::stack_from_pem(recipient_pem.as_bytes())
        .ok()
        .and_then(|s| s.into_iter().next())
        .ok_or_else(|| CmsError::Malformed("the recipient's certificate cannot be read".into()))?;
    let der = ossl
        .to_der()
        .map_err(|e| malformed("the recipient's certificate", &e))?;
    let cert =
        Certificate::from_der(&der).map_err(|e| malformed("the recipient's certificate", &e))?;
    let ski = ossl.subject_key_id().map(|k| k.as_slice().to_vec());
    let tbs = &cert.tbs_certificate;
    let names_it = |issuer_serial: Option<&::cms::cert::IssuerAndSerialNumber>,
                    key_id: Option<&[u8]>| {
        issuer_serial
            .is_some_and(|i| i.issuer == tbs.issuer && i.serial_number == tbs.serial_number)
            || key_id.is_some_and(|k| ski.as_deref() == Some(k))
    };
    let found = infos.0.iter().any(|ri| match ri {
        RecipientInfo::Ktri(k) => match &k.rid {
            RecipientIdentifier::IssuerAndSerialNumber(i) => names_it(Some(i), None),
            RecipientIdentifier::SubjectKeyIdentifier(s) => names_it(None, Some(s.0.as_bytes())),
        },
        RecipientInfo::Kari(k) => k.recipient_enc_keys.iter().any(|r| match &r.rid {
            KeyAgreeRecipientIdentifier::IssuerAndSerialNumber(i) => names_it(Some(i), None),
            KeyAgreeRecipientIdentifier::RKeyId(r) => {
                names_it(None, Some(r.subject_key_identifier.0.as_bytes()))
            }
        }),
        _ => false,
    });
    if found {
        Ok(())
    } else {
        Err(CmsError::NotForRecipient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::cms::CMSOptions;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::{PKey, Private};
    use openssl::rsa::Rsa;
    use openssl::stack::Stack;
    use openssl::symm::Cipher;
    use openssl::x509::extension::SubjectKeyIdentifier;
    use openssl::x509::{X509Builder, X509NameBuilder};

    /// A self-signed certificate for `key` with serial `serial` and a subject key identifier.
    fn cert(key: &PKey<Private>, serial: u32) -> X509 {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "erik").unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        let serial = BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap();
        b.set_serial_number(&serial).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        let ski = SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(ski).unwrap();
        b.sign(key, MessageDigest::sha256()).unwrap();
        b.build()
    }

    fn to(cert: &X509, cipher: Cipher, flags: CMSOptions) -> Vec<u8> {
        let mut certs = Stack::new().unwrap();
        certs.push(cert.clone()).unwrap();
        CmsContentInfo::encrypt(&certs, b"Subject: x\r\n\r\nx", cipher, flags)
            .unwrap()
            .to_der()
            .unwrap()
    }

    fn pem(cert: &X509) -> String {
        String::from_utf8(cert.to_pem().unwrap()).unwrap()
    }

    #[test]
    fn copies_are_checked_for_whom_they_name() {
        let rsa = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let erik = cert(&rsa, 7);
        let ec = EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap());
        let ec = PKey::from_ec_key(ec.unwrap()).unwrap();
        let erik_ec = cert(&ec, 8);
        let other = cert(&PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap(), 9);
        let (cbc, gcm, bin) = (
            Cipher::aes_256_cbc(),
            Cipher::aes_256_gcm(),
            CMSOptions::BINARY,
        );
        // Key transport by issuer and serial, by key identifier; AuthEnvelopedData; key
        // agreement (an EC certificate).
        for copy in [
            to(&erik, cbc, bin),
            to(&erik, cbc, bin | CMSOptions::USE_KEYID),
            to(&erik, gcm, bin),
        ] {
            assert_eq!(check_enveloped_for(&copy, &pem(&erik)), Ok(()));
        }
        assert_eq!(
            check_enveloped_for(&to(&erik_ec, cbc, bin), &pem(&erik_ec)),
            Ok(())
        );
        // Someone else's copy (the same names, another serial and key identifier).
        assert_eq!(
            check_enveloped_for(&to(&other, cbc, bin), &pem(&erik)),
            Err(CmsError::NotForRecipient)
        );
        assert_eq!(
            check_enveloped_for(&to(&erik, cbc, bin), &pem(&erik_ec)),
            Err(CmsError::NotForRecipient)
        );
        // Not enveloped data: garbage, truncated, a signed message.
        let copy = to(&erik, cbc, bin);
        for bad in [
            b"garbage".to_vec(),
            copy[..copy.len() / 2].to_vec(),
            CmsContentInfo::sign(Some(&erik), Some(&rsa), None, Some(b"x"), bin)
                .unwrap()
                .to_der()
                .unwrap(),
        ] {
            assert!(
                matches!(
                    check_enveloped_for(&bad, &pem(&erik)),
                    Err(CmsError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        // A recipient PEM that is no certificate.
        assert!(matches!(
            check_enveloped_for(&copy, "not a certificate"),
            Err(CmsError::Malformed(_))
        ));
    }
}
