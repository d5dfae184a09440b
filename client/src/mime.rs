//! The inner MIME entity of OpenPGP mail (docs/mail.md, "The inner MIME entity"): what an
//! outside recipient's mail program reads once it has decrypted the external copy.
//!
//! Built with `mail-builder` from the message's head (never by pasting user input into
//! headers): `multipart/mixed; protected-headers="v1"` (RFC 9788) carrying the real `From`,
//! `To`, `Subject`, `Date` and `Message-ID`, a `text/plain` body, then each attachment as
//! `application/octet-stream`. The node writes the outer headers (with `Subject: ...`).

use std::borrow::Cow;

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::mime::MimePart;
use sealpost_proto::Head;

/// One attachment's name and bytes, in the order of the head's attachments.
pub struct Attachment<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
}

/// The entity's bytes (CRLF line ends). The Message-ID is `<MESSAGE_ID@DOMAIN>` with the
/// sender's domain, the one the node gives the outer mail.
pub fn inner_entity(head: &Head, attachments: &[Attachment<'_>]) -> std::io::Result<Vec<u8>> {
    let domain = sealpost_proto::domain_of(&head.from);
    let mut parts = vec![
        MimePart::new(
            ContentType::new("text/plain").attribute("charset", "utf-8"),
            head.body.as_str(),
        )
        .transfer_encoding("quoted-printable"),
    ];
    for a in attachments {
        parts.push(
            MimePart::new(
                ContentType::new("application/octet-stream").attribute("name", a.name),
                a.data,
            )
            .attachment(a.name),
        );
    }
    let to: Vec<Address<'_>> = head.to.iter().map(|a| Address::from(a.as_str())).collect();
    MessageBuilder::new()
        .from(head.from.as_str())
        .to(to)
        .subject(head.subject.as_str())
        .date(Date::new(head.sent_at))
        .message_id(MessageId::new(Cow::Owned(format!(
            "{}@{domain}",
            head.message_id
        ))))
        .body(MimePart::new(
            ContentType::new("multipart/mixed").attribute("protected-headers", "v1"),
            parts,
        ))
        .write_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inner_entity_carries_the_protected_headers_body_and_attachments() {
        let head = Head {
            v: 1,
            message_id: "m-1".into(),
            from: "alice@alpha.test".into(),
            to: vec!["bob@alpha.test".into(), "dora@pgp.test".into()],
            subject: "Quarterly figures\r\nBcc: eve@evil.test".into(),
            body: "Hello Dora,\nsee attached.".into(),
            attachments: vec![],
            sent_at: 1_800_000_000,
        };
        let bytes = inner_entity(
            &head,
            &[Attachment {
                name: "a.pdf",
                data: b"%PDF-1.4 \x00\x01",
            }],
        )
        .unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for want in [
            "protected-headers=\"v1\"",
            "From: <alice@alpha.test>",
            "Message-ID: <m-1@alpha.test>",
            "Content-Type: text/plain; charset=\"utf-8\"",
            "Content-Disposition: attachment; filename=\"a.pdf\"",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
        // A line break in the subject never becomes a header of its own.
        assert!(!text.contains("\r\nBcc:"), "{text}");
    }
}
