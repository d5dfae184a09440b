//! The outer mail of an external copy (docs/mail.md, "The outer mail"): what the node wraps
//! around the copy the sender's client sealed, before it joins the outbound queue.
//!
//! The node writes every outer header itself, from the signed envelope: `From` (the sender),
//! `To` (the envelope's recipients), `Date` (`created_at`), `Message-ID: <MESSAGE_ID@DOMAIN>`
//! (the same for every recipient, so replies find the thread) and `Subject: ...` (RFC 9788: the
//! real subject travels encrypted in the copy). Built with lettre, as the notification mail is:
//! it encodes headers (no CR or LF from outside reaches one) and knows RFC 1847's
//! `multipart/encrypted`; an S/MIME copy is one base64 `application/pkcs7-mime` part.

use std::time::{Duration, UNIX_EPOCH};

use lettre::message::header::{ContentDisposition, ContentTransferEncoding, ContentType};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use sequoia_openpgp::armor;

use super::NotifyError;

/// The envelope facts the outer mail is built from.
#[derive(Clone, Debug)]
pub struct Outer<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    /// Seconds since the Unix epoch.
    pub date: i64,
    /// `<MESSAGE_ID@DOMAIN>`.
    pub mail_id: &'a str,
    /// The external copy: a binary OpenPGP message, or DER CMS for S/MIME.
    pub copy: &'a [u8],
}

/// RFC 3156 PGP/MIME: `multipart/encrypted; protocol="application/pgp-encrypted"`, the
/// `Version: 1` part, then the copy armored as `application/octet-stream`.
pub fn openpgp_mail(m: &Outer<'_>) -> Result<Vec<u8>, NotifyError> {
    let bad = |e: &dyn std::fmt::Display| NotifyError::Build(e.to_string());
    let mut armored = Vec::with_capacity(m.copy.len() * 4 / 3 + 128);
    {
        let mut w = armor::Writer::new(&mut armored, armor::Kind::Message).map_err(|e| bad(&e))?;
        std::io::Write::write_all(&mut w, m.copy).map_err(|e| bad(&e))?;
        w.finalize().map_err(|e| bad(&e))?;
    }
    let armored = String::from_utf8(armored).map_err(|e| bad(&e))?;
    let builder = headers(m)?;
    let content_type = |s: &str| ContentType::parse(s).map_err(|e| bad(&e));
    let message = builder
        .multipart(
            MultiPart::encrypted("application/pgp-encrypted".into())
                .singlepart(
                    SinglePart::builder()
                        .header(content_type("application/pgp-encrypted")?)
                        .header(ContentDisposition::attachment("version.asc"))
                        .header(ContentTransferEncoding::SevenBit)
                        .body(String::from("Version: 1\r\n")),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(content_type(
                            "application/octet-stream; name=\"encrypted.asc\"",
                        )?)
                        .header(ContentDisposition::inline_with_name("encrypted.asc"))
                        .header(ContentTransferEncoding::SevenBit)
                        .body(armored),
                ),
        )
        .map_err(|e| bad(&e))?;
    Ok(message.formatted())
}

/// RFC 8551 S/MIME: one `application/pkcs7-mime; smime-type=enveloped-data` part holding the
/// DER CMS copy in base64, named `smime.p7m`.
pub fn smime_mail(m: &Outer<'_>) -> Result<Vec<u8>, NotifyError> {
    let bad = |e: &dyn std::fmt::Display| NotifyError::Build(e.to_string());
    let message = headers(m)?
        .singlepart(
            SinglePart::builder()
                .header(
                    ContentType::parse(
                        "application/pkcs7-mime; smime-type=enveloped-data; name=\"smime.p7m\"",
                    )
                    .map_err(|e| bad(&e))?,
                )
                .header(ContentDisposition::attachment("smime.p7m"))
                .header(ContentTransferEncoding::Base64)
                .body(m.copy.to_vec()),
        )
        .map_err(|e| bad(&e))?;
    Ok(message.formatted())
}

/// The outer headers every external copy's mail has: `From`, `To`, `Date`, `Message-ID` and
/// `Subject: ...`.
fn headers(m: &Outer<'_>) -> Result<lettre::message::MessageBuilder, NotifyError> {
    let bad = |e: &dyn std::fmt::Display| NotifyError::Build(e.to_string());
    let mut builder = lettre::Message::builder()
        .from(Mailbox::new(None, m.from.parse().map_err(|e| bad(&e))?))
        .subject("...")
        .date(UNIX_EPOCH + Duration::from_secs(m.date.max(0) as u64))
        .message_id(Some(m.mail_id.to_owned()));
    for to in m.to {
        builder = builder.to(Mailbox::new(None, to.parse().map_err(|e| bad(&e))?));
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outer_mail_hides_the_subject_and_carries_the_armored_copy() {
        let to = vec!["bob@alpha.test".to_owned(), "dora@pgp.test".to_owned()];
        let mail = openpgp_mail(&Outer {
            from: "alice@alpha.test",
            to: &to,
            date: 1_800_000_000,
            mail_id: "<m-1@alpha.test>",
            copy: b"\xc1\x0cnot really a message",
        })
        .unwrap();
        let text = String::from_utf8(mail).unwrap();
        for want in [
            "Subject: ...\r\n",
            "From: alice@alpha.test\r\n",
            "To: bob@alpha.test, dora@pgp.test\r\n",
            "Message-ID: <m-1@alpha.test>\r\n",
            "protocol=\"application/pgp-encrypted\"",
            "Content-Type: application/pgp-encrypted\r\n",
            "Version: 1\r\n",
            "-----BEGIN PGP MESSAGE-----",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
    }

    #[test]
    fn the_smime_mail_is_one_pkcs7_part_in_base64() {
        let to = vec!["erik@smime.test".to_owned()];
        let copy = b"\x30\x80not really CMS".repeat(10);
        let mail = smime_mail(&Outer {
            from: "alice@alpha.test",
            to: &to,
            date: 1_800_000_000,
            mail_id: "<m-2@alpha.test>",
            copy: &copy,
        })
        .unwrap();
        let text = String::from_utf8(mail).unwrap();
        for want in [
            "Subject: ...\r\n",
            "From: alice@alpha.test\r\n",
            "To: erik@smime.test\r\n",
            "Message-ID: <m-2@alpha.test>\r\n",
            // (lettre folds the header before `name`)
            "Content-Type: application/pkcs7-mime; smime-type=enveloped-data;",
            "name=\"smime.p7m\"",
            "Content-Disposition: attachment; filename=\"smime.p7m\"\r\n",
            "Content-Transfer-Encoding: base64\r\n",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
        let body = text.split("\r\n\r\n").nth(1).unwrap().replace("\r\n", "");
        use base64::Engine;
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap(),
            copy
        );
    }
}
