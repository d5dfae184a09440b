//! The notification mail itself: a plain announcement with a text and an HTML part, built
//! once when it is queued (so every retry sends the same bytes with the same `Message-ID`).
//!
//! It says who sent a secure message (a name and an organisation), where to open it, and that
//! the sender will give the unlock code by another channel; never the message's subject or
//! content, which the node cannot read anyway. Names come from outside (a user chose theirs)
//! and are treated as hostile: cut to one line of printable characters, HTML-escaped in the
//! HTML part; headers are encoded by lettre (RFC 2047), so no CR or LF reaches a header.

use std::time::{Duration, UNIX_EPOCH};

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};

use super::NotifyError;

/// Longest name or organisation shown, in characters.
const MAX_NAME_CHARS: usize = 100;
/// Longest link accepted, in bytes.
const MAX_LINK_BYTES: usize = 2000;

/// The words of a notification, before they become MIME.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wording {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What a notification mail is built from.
#[derive(Clone, Debug)]
pub struct Mail<'a> {
    /// Envelope and `From` address.
    pub from: &'a str,
    pub to: &'a str,
    /// The person who sent the secure message, as they are to be named.
    pub sender_name: &'a str,
    /// Their organisation, as it is to be named (also the `From` display name).
    pub organisation: &'a str,
    /// Where the recipient opens the message.
    pub link: &'a str,
    /// `Message-ID`, with its angle brackets.
    pub mail_id: &'a str,
    /// `Date`, seconds since the Unix epoch.
    pub date: i64,
    /// For a guest (docs/pickup.md, "Guests"): the link is the web app's login, and no unlock
    /// code is needed.
    pub guest: bool,
}

/// `s` as one line of printable characters: control and format characters (CR, LF, tabs,
/// bidirectional overrides) become spaces, runs of spaces one, at most `MAX_NAME_CHARS`.
pub fn one_line(s: &str) -> String {
    let mut out = String::new();
    for ch in s.chars() {
        let hidden = ch.is_control()
            || matches!(ch, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}');
        let ch = if hidden || ch.is_whitespace() {
            ' '
        } else {
            ch
        };
        if ch == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        if out.chars().count() == MAX_NAME_CHARS {
            out.push('…');
            break;
        }
        out.push(ch);
    }
    out.trim_end().to_owned()
}

/// Whether `link` may be put in a notification: an `https://` or `http://` URL of printable
/// ASCII, without spaces, quotes or angle brackets.
pub fn is_valid_link(link: &str) -> bool {
    (link.starts_with("https://") || link.starts_with("http://"))
        && link.len() > "https://".len()
        && link.len() <= MAX_LINK_BYTES
        && link
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"'<>\\`{}|^".contains(&b))
}

pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The subject and both parts for a secure message from `sender_name` at `organisation`,
/// opened at `link` (for a `guest`: after logging in; otherwise with an unlock code). The names
/// are cut to one line here.
pub fn wording(sender_name: &str, organisation: &str, link: &str, guest: bool) -> Wording {
    let (name, org) = (one_line(sender_name), one_line(organisation));
    let (text_how, html_how) = if guest {
        (
            "Log in with your e-mail address and the password you chose when you\r\n\
             created your key. Nobody will ever ask you for your password by e-mail."
                .to_owned(),
            "Log in with your e-mail address and the password you chose when you created \
             your key. Nobody will ever ask you for your password by e-mail."
                .to_owned(),
        )
    } else {
        (
            format!(
                "You need an unlock code to open it. {name} will give it to you by\r\n\
                 another channel, such as a phone call, a text message or a letter.\r\n\
                 The code is not in this e-mail, and nobody will ever ask you for it\r\n\
                 by e-mail."
            ),
            format!(
                "You need an unlock code to open it. <strong>{}</strong> will give it to you \
                 by another channel, such as a phone call, a text message or a letter. The code \
                 is not in this e-mail, and nobody will ever ask you for it by e-mail.",
                html_escape(&name)
            ),
        )
    };
    let subject = format!("Secure message from {name} at {org}");
    let text = format!(
        "{name} at {org} has sent you a secure message.\r\n\
         \r\n\
         To read it, open this link:\r\n\
         \r\n\
         {link}\r\n\
         \r\n\
         {text_how}\r\n\
         \r\n\
         This e-mail does not contain the message itself. It was sent\r\n\
         automatically; replies to it are not read.\r\n"
    );
    let (h_name, h_org, h_link) = (html_escape(&name), html_escape(&org), html_escape(link));
    let html = format!(
        "<!DOCTYPE html>\r\n\
         <html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{}</title></head>\r\n\
         <body style=\"font-family: sans-serif; line-height: 1.5; color: #1a1a1a; \
         max-width: 36em\">\r\n\
         <p><strong>{h_name}</strong> at <strong>{h_org}</strong> has sent you a secure \
         message.</p>\r\n\
         <p><a href=\"{h_link}\" style=\"display: inline-block; padding: 0.6em 1.2em; \
         background: #1d4ed8; color: #ffffff; border-radius: 4px; text-decoration: none\">\
         Open the secure message</a></p>\r\n\
         <p>If the button does not work, copy this address into your browser:<br>\r\n\
         {h_link}</p>\r\n\
         <p>{html_how}</p>\r\n\
         <p style=\"color: #555555; font-size: 90%\">This e-mail does not contain the \
         message itself. It was sent automatically; replies to it are not read.</p>\r\n\
         </body></html>\r\n",
        html_escape(&subject)
    );
    Wording {
        subject,
        text,
        html,
    }
}

/// The whole mail as it goes to the relay (CRLF line ends, 7-bit: encoded where needed).
pub fn build(m: &Mail<'_>) -> Result<Vec<u8>, NotifyError> {
    let bad = |e: &dyn std::fmt::Display| NotifyError::Build(e.to_string());
    let words = wording(m.sender_name, m.organisation, m.link, m.guest);
    let from = Mailbox::new(
        Some(one_line(m.organisation)),
        m.from.parse().map_err(|e| bad(&e))?,
    );
    let to = Mailbox::new(None, m.to.parse().map_err(|e| bad(&e))?);
    let header = |name: &'static str, value: &str| {
        HeaderValue::new(HeaderName::new_from_ascii_str(name), value.to_owned())
    };
    let message = lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(words.subject)
        .date(UNIX_EPOCH + Duration::from_secs(m.date.max(0) as u64))
        .message_id(Some(m.mail_id.to_owned()))
        // RFC 3834: no vacation or out-of-office replies to this; Exchange's equivalent.
        .raw_header(header("Auto-Submitted", "auto-generated"))
        .raw_header(header("X-Auto-Response-Suppress", "All"))
        .multipart(MultiPart::alternative_plain_html(words.text, words.html))
        .map_err(|e| bad(&e))?;
    Ok(message.formatted())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail<'a>(sender_name: &'a str, organisation: &'a str) -> Mail<'a> {
        Mail {
            from: "no-reply@alpha.test",
            to: "carol@outside.test",
            sender_name,
            organisation,
            link: "https://alpha.test/pickup#t=abc",
            mail_id: "<0190.notify@alpha.test>",
            date: 1_800_000_000,
            guest: false,
        }
    }

    /// The header section of `mail`, unfolded: (name, value) in order.
    fn headers(mail: &[u8]) -> Vec<(String, String)> {
        let text = std::str::from_utf8(mail).expect("7-bit mail");
        let head = text.split("\r\n\r\n").next().unwrap();
        let mut out: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                out.last_mut().unwrap().1.push_str(line);
            } else {
                let (name, value) = line.split_once(':').expect("a header line");
                out.push((name.to_owned(), value.trim().to_owned()));
            }
        }
        out
    }

    #[test]
    fn the_mail_has_its_headers_both_parts_and_nothing_else() {
        let bytes = build(&mail("Alice Example", "Alpha Bank")).unwrap();
        assert!(bytes.is_ascii());
        assert!(!bytes.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
        let h = headers(&bytes);
        let get = |n: &str| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("From"), Some("\"Alpha Bank\" <no-reply@alpha.test>"));
        assert_eq!(get("To"), Some("carol@outside.test"));
        assert_eq!(
            get("Subject"),
            Some("Secure message from Alice Example at Alpha Bank")
        );
        assert_eq!(get("Date"), Some("Fri, 15 Jan 2027 08:00:00 +0000"));
        assert_eq!(get("Message-ID"), Some("<0190.notify@alpha.test>"));
        assert_eq!(get("Auto-Submitted"), Some("auto-generated"));
        assert_eq!(get("X-Auto-Response-Suppress"), Some("All"));
        assert!(
            get("Content-Type")
                .unwrap()
                .starts_with("multipart/alternative")
        );
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("Content-Type: text/plain; charset=utf-8"));
        assert!(text.contains("Content-Type: text/html; charset=utf-8"));
        assert!(text.contains("https://alpha.test/pickup#t=abc"));
        assert!(text.contains("Alice Example will give it to you by"));
    }

    #[test]
    fn no_cr_or_lf_from_a_name_reaches_a_header() {
        let hostile = [
            "Eve\r\nBcc: victim@evil.test",
            "Eve\nX-Injected: 1",
            "Eve\rSubject: other",
            "=?utf-8?q?Eve=0D=0ABcc=3A_x?=",
            "Ëve \u{202e}gnp.exe\r\n\r\n<script>",
        ];
        let allowed = [
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "Auto-Submitted",
            "X-Auto-Response-Suppress",
            "MIME-Version",
            "Content-Type",
        ];
        for name in hostile {
            for m in [mail(name, "Alpha Bank"), mail("Alice", name)] {
                let bytes = build(&m).unwrap();
                let names: Vec<String> = headers(&bytes).into_iter().map(|(k, _)| k).collect();
                assert!(
                    names.iter().all(|n| allowed.contains(&n.as_str())),
                    "{name:?} gave headers {names:?}"
                );
                assert_eq!(names.len(), allowed.len(), "{name:?}: {names:?}");
                let head = String::from_utf8(bytes.clone()).unwrap();
                let head = head.split("\r\n\r\n").next().unwrap();
                for injected in ["\r\nBcc:", "\r\nX-Injected:", "\r\nSubject: other"] {
                    assert!(!head.contains(injected), "{head}");
                }
            }
        }
        // Without `one_line` too: lettre itself encodes a CR or LF in a header (RFC 2047), so
        // it stays inside its header.
        let raw = lettre::Message::builder()
            .from("a@alpha.test".parse().unwrap())
            .to("c@outside.test".parse().unwrap())
            .subject("Hi\r\nBcc: victim@evil.test")
            .body(String::from("x"))
            .unwrap()
            .formatted();
        let names: Vec<String> = headers(&raw).into_iter().map(|(k, _)| k).collect();
        assert!(!names.iter().any(|n| n == "Bcc"), "{names:?}");
        let subject = headers(&raw)
            .into_iter()
            .find(|(k, _)| k == "Subject")
            .unwrap()
            .1;
        assert!(subject.starts_with("=?utf-8?"), "{subject}");
    }

    #[test]
    fn names_are_one_line_and_escaped_in_html() {
        assert_eq!(one_line("  Alice\r\n\tExample  "), "Alice Example");
        assert_eq!(one_line("a\u{202e}b\u{200b}c"), "a b c");
        assert_eq!(one_line(&"x".repeat(300)).chars().count(), 101);
        let w = wording(
            "<script>alert(\"x\")</script> & 'Co'",
            "Bank <b>",
            "https://a.test/p?x=1&y=2",
            false,
        );
        assert!(
            w.html
                .contains("<strong>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;Co&#39;</strong>"),
            "{}",
            w.html
        );
        assert!(w.html.contains("<strong>Bank &lt;b&gt;</strong>"));
        assert!(w.html.contains("href=\"https://a.test/p?x=1&amp;y=2\""));
        assert!(!w.html.contains("<script>") && !w.html.contains("<b>"));
        // The text part is plain text: nothing to escape, nothing interpreted.
        assert!(
            w.text
                .starts_with("<script>alert(\"x\")</script> & 'Co' at Bank <b> has")
        );
        assert_eq!(
            w.subject,
            "Secure message from <script>alert(\"x\")</script> & 'Co' at Bank <b>"
        );
    }

    #[test]
    fn only_plain_http_links_are_accepted() {
        for ok in [
            "https://alpha.test/p/abc#k=1",
            "http://127.0.0.1:8080/p?t=a%20b",
        ] {
            assert!(is_valid_link(ok), "{ok}");
        }
        for bad in [
            "",
            "https://",
            "javascript:alert(1)",
            "https://a.test/\r\nBcc: x",
            "https://a.test/ x",
            "https://a.test/\"onmouseover=x",
            "https://a.test/<x>",
            "https://a.test/ü",
        ] {
            assert!(!is_valid_link(bad), "{bad}");
        }
        assert!(!is_valid_link(&format!(
            "https://a.test/{}",
            "x".repeat(2000)
        )));
    }
}
