//! One SMTP session as a state machine: bytes in, [`Step`]s out. It does no I/O and reads no
//! clock: the driver feeds it what the client sent with the time it came, does what each step
//! asks (send a reply, check a recipient through the service layer, stream data, commit,
//! start TLS) and tells it the outcome. Requests are parsed by `smtp-proto`
//! (`RequestReceiver`, `DataReceiver` with dot-unstuffing); the rules of the protocol are
//! here.
//!
//! Hostile input: commands before the greeting, pipelined bytes after `DATA` or `STARTTLS`
//! (RFC 2920 puts them last in a group; bytes after `STARTTLS` would be injected into the TLS
//! session, CVE-2011-0411), lines over 4,096 bytes, and too many bad commands are answered and
//! the connection closed; after `STARTTLS` everything said before is forgotten (RFC 3207).
//!
//! The same machine serves the submission gateway (`Settings::submission`, RFC 6409): `AUTH
//! PLAIN` (RFC 4954) offered only under TLS, `MAIL` only once authenticated and only from the
//! user's own address. Failed logins count as bad commands.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use base64::Engine;
use smtp_proto::request::receiver::{DataReceiver, LineReceiver, RequestReceiver};
use smtp_proto::{Error as ParseError, Request};
use zeroize::Zeroizing;

/// What the session is configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub hostname: String,
    pub max_message_bytes: u64,
    pub max_recipients: usize,
    pub max_errors: u32,
    /// STARTTLS can be offered.
    pub tls_available: bool,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    /// The submission gateway: AUTH required before MAIL, offered under TLS only.
    pub submission: bool,
}

/// An AUTH secret: never shown by `Debug`, zeroised when dropped.
#[derive(PartialEq, Eq)]
pub struct Secret(pub Zeroizing<String>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// What the driver does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this reply (one or more CRLF-terminated lines).
    Reply(String),
    /// Check this recipient through the service layer; answer with [`Session::recipient_checked`].
    CheckRecipient(String),
    /// Start the mail for the recipients checked so far; answer with [`Session::data_began`].
    BeginData,
    /// The next bytes of the mail (dot-unstuffed); a refusal is [`Session::data_refused`].
    Data(Vec<u8>),
    /// The mail ended: commit it and answer with [`Session::data_committed`].
    EndData,
    /// Send what is pending, then switch the connection to TLS and call
    /// [`Session::tls_started`].
    StartTls,
    /// Check these credentials (AUTH PLAIN); answer with [`Session::authenticated`].
    Authenticate { user: String, secret: Secret },
    /// Read more, until [`Session::deadline`].
    NeedInput,
    /// Send what is pending and close the connection.
    Close,
}

enum Phase {
    Command,
    /// After `334`: the client's AUTH response line.
    AuthResponse(LineReceiver<()>),
    /// Waiting for the driver's answer to a step.
    Waiting,
    Data {
        receiver: DataReceiver,
        /// The mail was refused while streaming: the rest is read and dropped, then this
        /// reply.
        refused: Option<String>,
        /// Its end was read.
        ended: bool,
    },
    Closed,
}

pub struct Session {
    settings: Settings,
    phase: Phase,
    requests: RequestReceiver,
    input: Vec<u8>,
    out: VecDeque<Step>,
    helo: Option<String>,
    mail_from: Option<String>,
    recipients: Vec<String>,
    /// The recipient being checked.
    checking: Option<String>,
    tls: bool,
    /// The authenticated user's address (submission).
    user: Option<String>,
    errors: u32,
    last_input: Instant,
}

impl Session {
    /// A session whose connection opened at `now`; the greeting is its first step.
    pub fn new(settings: Settings, now: Instant) -> Session {
        let greeting = format!("220 {} ESMTP Sealpost\r\n", settings.hostname);
        Session {
            settings,
            phase: Phase::Command,
            requests: RequestReceiver::default(),
            input: Vec::new(),
            out: VecDeque::from([Step::Reply(greeting)]),
            helo: None,
            mail_from: None,
            recipients: Vec::new(),
            checking: None,
            tls: false,
            user: None,
            errors: 0,
            last_input: now,
        }
    }

    /// The client spoke before the greeting: refused, closed.
    pub fn talked_first(&mut self) {
        self.out.clear();
        self.close(format!(
            "554 5.5.1 {} protocol error: you talked before my greeting\r\n",
            self.settings.hostname
        ));
    }

    /// The envelope so far: `MAIL FROM` (empty for `<>`) and the accepted recipients.
    pub fn envelope(&self) -> (&str, &[String]) {
        (self.mail_from.as_deref().unwrap_or(""), &self.recipients)
    }

    pub fn helo(&self) -> &str {
        self.helo.as_deref().unwrap_or("")
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The authenticated user's address, once AUTH succeeded.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The credentials were checked: `Ok(address)` of the user they belong to, or the reply.
    pub fn authenticated(&mut self, result: Result<String, String>) {
        match result {
            Ok(address) => {
                self.user = Some(address);
                self.reply("235 2.7.0 Authentication successful");
            }
            Err(reply) => {
                self.errors += 1;
                self.out.push_back(Step::Reply(reply));
            }
        }
        self.phase = Phase::Command;
        self.check_errors();
    }

    /// When the driver should give up waiting for input.
    pub fn deadline(&self) -> Instant {
        let wait = match self.phase {
            Phase::Data { .. } => self.settings.data_timeout,
            _ => self.settings.command_timeout,
        };
        self.last_input + wait
    }

    /// No input came by `now`: past the deadline the session ends (421).
    pub fn tick(&mut self, now: Instant) {
        if now >= self.deadline() && !matches!(self.phase, Phase::Closed) {
            self.close(format!(
                "421 4.4.2 {} timeout: closing the connection\r\n",
                self.settings.hostname
            ));
        }
    }

    /// What the client sent, at `now`.
    pub fn feed(&mut self, bytes: &[u8], now: Instant) {
        self.input.extend_from_slice(bytes);
        self.last_input = now;
    }

    /// The client closed its side.
    pub fn eof(&mut self) {
        self.phase = Phase::Closed;
        self.out.push_back(Step::Close);
    }

    pub fn recipient_checked(&mut self, result: Result<(), String>) {
        let address = self.checking.take().unwrap_or_default();
        match result {
            Ok(()) => {
                self.recipients.push(address);
                self.reply("250 2.1.5 OK");
            }
            Err(reply) => {
                self.errors += 1;
                self.out.push_back(Step::Reply(reply));
            }
        }
        self.phase = Phase::Command;
        self.check_errors();
    }

    pub fn data_began(&mut self, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.reply("354 Start mail input; end with <CRLF>.<CRLF>");
                self.phase = Phase::Data {
                    receiver: DataReceiver::new(),
                    refused: None,
                    ended: false,
                };
            }
            Err(reply) => {
                self.out.push_back(Step::Reply(reply));
                self.reset();
                self.phase = Phase::Command;
            }
        }
    }

    /// The mail is refused while it streams (too large): the rest is read and dropped, then
    /// `reply`.
    pub fn data_refused(&mut self, reply: String) {
        if let Phase::Data { refused, .. } = &mut self.phase
            && refused.is_none()
        {
            *refused = Some(reply);
        }
    }

    pub fn data_committed(&mut self, result: Result<(), String>) {
        match result {
            Ok(()) => self.reply("250 2.0.0 OK: stored"),
            Err(reply) => self.out.push_back(Step::Reply(reply)),
        }
        self.reset();
        self.phase = Phase::Command;
    }

    /// TLS is up: everything said before is forgotten (RFC 3207).
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.helo = None;
        self.user = None;
        self.reset();
        self.requests = RequestReceiver::default();
        self.input.clear();
        self.phase = Phase::Command;
    }

    /// The next thing to do.
    pub fn step(&mut self) -> Step {
        loop {
            if let Some(step) = self.out.pop_front() {
                return step;
            }
            match &mut self.phase {
                Phase::Closed => return Step::Close,
                Phase::AuthResponse(line) => {
                    if self.input.is_empty() {
                        return Step::NeedInput;
                    }
                    let input = std::mem::take(&mut self.input);
                    let mut iter = input.iter();
                    let done = line.ingest(&mut iter);
                    self.input = iter.as_slice().to_vec();
                    if !done {
                        return Step::NeedInput;
                    }
                    let response = Zeroizing::new(std::mem::take(&mut line.buf));
                    self.phase = Phase::Command;
                    if response.as_slice() == b"*" {
                        self.errors += 1;
                        self.reply("501 5.7.0 Authentication cancelled");
                        self.check_errors();
                    } else {
                        self.auth_plain(&response);
                    }
                }
                Phase::Waiting => return Step::NeedInput,
                Phase::Data {
                    receiver,
                    refused,
                    ended,
                } => {
                    // Decided only once the driver has taken the last chunk (which it may
                    // have refused).
                    if *ended {
                        match refused.take() {
                            Some(reply) => {
                                self.out.push_back(Step::Reply(reply));
                                self.reset();
                                self.phase = Phase::Command;
                            }
                            None => {
                                self.out.push_back(Step::EndData);
                                self.phase = Phase::Waiting;
                            }
                        }
                        continue;
                    }
                    if self.input.is_empty() {
                        return Step::NeedInput;
                    }
                    let input = std::mem::take(&mut self.input);
                    let mut iter = input.iter();
                    let mut chunk = Vec::with_capacity(input.len());
                    *ended = receiver.ingest(&mut iter, &mut chunk);
                    let is_refused = refused.is_some();
                    self.input = iter.as_slice().to_vec();
                    if !is_refused && !chunk.is_empty() {
                        self.out.push_back(Step::Data(chunk));
                    }
                }
                Phase::Command => {
                    if self.input.is_empty() {
                        return Step::NeedInput;
                    }
                    let input = std::mem::take(&mut self.input);
                    let mut iter = input.iter();
                    let parsed = self.requests.ingest(&mut iter).map(|r| r.into_owned());
                    let rest = iter.as_slice().to_vec();
                    self.input = rest;
                    match parsed {
                        Err(ParseError::NeedsMoreData { .. }) => return Step::NeedInput,
                        Ok(request) => self.command(request),
                        Err(e) => self.bad(e),
                    }
                }
            }
        }
    }

    fn reply(&mut self, line: &str) {
        self.out.push_back(Step::Reply(format!("{line}\r\n")));
    }

    fn close(&mut self, reply: String) {
        self.out.push_back(Step::Reply(reply));
        self.out.push_back(Step::Close);
        self.phase = Phase::Closed;
    }

    /// The mail transaction is forgotten (not the greeting).
    fn reset(&mut self) {
        self.mail_from = None;
        self.recipients.clear();
        self.checking = None;
    }

    fn check_errors(&mut self) {
        if self.errors >= self.settings.max_errors {
            self.close(format!(
                "421 4.7.0 {} too many errors: closing the connection\r\n",
                self.settings.hostname
            ));
        }
    }

    /// An AUTH PLAIN response (RFC 4616): base64 of `authzid NUL authcid NUL password`; the
    /// authorization identity, if given, must be the authentication identity.
    fn auth_plain(&mut self, response: &[u8]) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(response.trim_ascii())
            .map(Zeroizing::new);
        let fields = decoded.as_ref().ok().and_then(|d| {
            let mut it = d.split(|b| *b == 0);
            let (authz, user, pass) = (it.next()?, it.next()?, it.next()?);
            if it.next().is_some() || (!authz.is_empty() && authz != user) {
                return None;
            }
            let user = std::str::from_utf8(user).ok()?.to_owned();
            let pass = Zeroizing::new(std::str::from_utf8(pass).ok()?.to_owned());
            Some((user, pass))
        });
        match fields {
            Some((user, secret)) if !user.is_empty() && !secret.is_empty() => {
                self.phase = Phase::Waiting;
                self.out.push_back(Step::Authenticate {
                    user,
                    secret: Secret(secret),
                });
            }
            _ => {
                self.errors += 1;
                self.reply("501 5.5.2 Cannot decode the AUTH PLAIN response");
                self.check_errors();
            }
        }
    }

    fn auth(&mut self, mechanism: u64, initial: String) {
        if !self.settings.submission {
            return self.reply("502 5.7.0 No AUTH here: this server takes mail for its users only");
        }
        if !self.tls {
            return self.reply("538 5.7.11 Encryption required: use STARTTLS first");
        }
        if self.user.is_some() {
            return self.reply("503 5.5.1 Already authenticated");
        }
        if self.mail_from.is_some() {
            return self.reply("503 5.5.1 A mail is already under way");
        }
        if mechanism != smtp_proto::AUTH_PLAIN {
            self.errors += 1;
            self.reply("504 5.5.4 Only AUTH PLAIN is offered");
            return self.check_errors();
        }
        let initial = Zeroizing::new(initial);
        match initial.as_str() {
            "" => {
                self.reply("334 ");
                self.phase = Phase::AuthResponse(LineReceiver::new(()));
            }
            // RFC 4954: "=" is an empty initial response.
            "=" => self.auth_plain(b""),
            r => self.auth_plain(r.as_bytes()),
        }
    }

    fn bad(&mut self, e: ParseError) {
        self.errors += 1;
        let line = match e {
            ParseError::UnknownCommand => "500 5.5.2 Unknown command".to_owned(),
            ParseError::ResponseTooLong => "500 5.5.6 Line too long".to_owned(),
            ParseError::InvalidSenderAddress => "501 5.1.7 Bad sender address".to_owned(),
            ParseError::InvalidRecipientAddress => "501 5.1.3 Bad recipient address".to_owned(),
            ParseError::SyntaxError { syntax } => format!("501 5.5.4 Syntax: {syntax}"),
            ParseError::InvalidParameter { param } => format!("501 5.5.4 Bad parameter {param}"),
            ParseError::UnsupportedParameter { .. } => "555 5.5.4 Unsupported parameter".into(),
            _ => "500 5.5.2 Syntax error".to_owned(),
        };
        self.reply(&line);
        self.check_errors();
    }

    /// Whether the client sent more after a command that must end a pipelined group.
    fn pipelined_after(&mut self, command: &str) -> bool {
        if self.input.is_empty() {
            return false;
        }
        self.input.clear();
        self.close(format!(
            "554 5.5.1 {} protocol error: commands pipelined after {command}\r\n",
            self.settings.hostname
        ));
        true
    }

    fn command(&mut self, request: Request<String>) {
        match request {
            Request::Ehlo { host } => {
                self.reset();
                self.helo = Some(host);
                let s = &self.settings;
                let mut lines = vec![
                    format!("{} greets you", s.hostname),
                    "PIPELINING".into(),
                    format!("SIZE {}", s.max_message_bytes),
                    "8BITMIME".into(),
                    "ENHANCEDSTATUSCODES".into(),
                ];
                if s.tls_available && !self.tls {
                    lines.push("STARTTLS".into());
                }
                if s.submission && self.tls && self.user.is_none() {
                    lines.push("AUTH PLAIN".into());
                }
                let last = lines.len() - 1;
                let text: String = lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("250{}{l}\r\n", if i == last { ' ' } else { '-' }))
                    .collect();
                self.out.push_back(Step::Reply(text));
            }
            Request::Helo { host } => {
                self.reset();
                self.helo = Some(host);
                let line = format!("250 {}", self.settings.hostname);
                self.reply(&line);
            }
            Request::Mail { from } => {
                if self.helo.is_none() {
                    return self.reply("503 5.5.1 Say EHLO first");
                }
                if self.mail_from.is_some() {
                    return self.reply("503 5.5.1 A mail is already under way");
                }
                if self.settings.submission && self.user.is_none() {
                    self.errors += 1;
                    self.reply("530 5.7.0 Authentication required");
                    return self.check_errors();
                }
                if from.size as u64 > self.settings.max_message_bytes {
                    return self.reply("552 5.3.4 Message too big for this server");
                }
                let address = from.address.trim().to_owned();
                let address = if address.is_empty() {
                    address
                } else {
                    match crate::normalize_address(&address) {
                        Some(a) => a,
                        None => {
                            self.errors += 1;
                            self.reply("553 5.1.7 Bad sender address");
                            return self.check_errors();
                        }
                    }
                };
                if let Some(user) = self.user.as_deref()
                    && address != user
                {
                    self.errors += 1;
                    let line = format!("553 5.7.1 You may send as <{user}> only");
                    self.reply(&line);
                    return self.check_errors();
                }
                self.mail_from = Some(address);
                self.reply("250 2.1.0 OK");
            }
            Request::Rcpt { to } => {
                if self.mail_from.is_none() {
                    return self.reply("503 5.5.1 MAIL FROM first");
                }
                if self.recipients.len() >= self.settings.max_recipients {
                    return self.reply("452 4.5.3 Too many recipients");
                }
                let address = to.address.trim().to_owned();
                if self
                    .recipients
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(&address))
                {
                    return self.reply("250 2.1.5 OK");
                }
                self.checking = Some(address.clone());
                self.phase = Phase::Waiting;
                self.out.push_back(Step::CheckRecipient(address));
            }
            Request::Data => {
                if self.mail_from.is_none() || self.recipients.is_empty() {
                    self.errors += 1;
                    self.reply("503 5.5.1 No valid recipients");
                    return self.check_errors();
                }
                if self.pipelined_after("DATA") {
                    return;
                }
                self.phase = Phase::Waiting;
                self.out.push_back(Step::BeginData);
            }
            Request::StartTls => {
                if self.tls {
                    return self.reply("503 5.5.1 TLS is already active");
                }
                if !self.settings.tls_available {
                    return self.reply("502 5.5.1 STARTTLS is not offered");
                }
                if self.pipelined_after("STARTTLS") {
                    return;
                }
                self.reply("220 2.0.0 Ready to start TLS");
                self.phase = Phase::Waiting;
                self.out.push_back(Step::StartTls);
            }
            Request::Rset => {
                self.reset();
                self.reply("250 2.0.0 OK");
            }
            Request::Noop { .. } => self.reply("250 2.0.0 OK"),
            Request::Quit => {
                let line = format!("221 2.0.0 {} closing", self.settings.hostname);
                self.reply(&line);
                self.out.push_back(Step::Close);
                self.phase = Phase::Closed;
            }
            Request::Vrfy { .. } => self.reply("252 2.5.0 Cannot verify; send the mail"),
            Request::Help { .. } => self.reply("214 2.0.0 See RFC 5321"),
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response),
            _ => {
                self.errors += 1;
                self.reply("502 5.5.1 Command not implemented");
                self.check_errors();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            hostname: "mx.a.test".into(),
            max_message_bytes: 1000,
            max_recipients: 2,
            max_errors: 3,
            tls_available: true,
            command_timeout: Duration::from_secs(10),
            data_timeout: Duration::from_secs(20),
            submission: false,
        }
    }

    /// Runs the session on `input`, answering every recipient check with `ok` for addresses
    /// starting with "ok", and every data step; returns the replies and the mail's bytes.
    fn run(input: &[&[u8]]) -> (Vec<String>, Vec<u8>, bool) {
        run_with(settings(), input)
    }

    fn run_with(settings: Settings, input: &[&[u8]]) -> (Vec<String>, Vec<u8>, bool) {
        let t = Instant::now();
        let mut s = Session::new(settings, t);
        let mut replies = Vec::new();
        let mut data = Vec::new();
        let mut committed = false;
        let mut chunks = input.iter();
        loop {
            match s.step() {
                Step::Reply(r) => replies.push(r),
                Step::CheckRecipient(a) => s.recipient_checked(if a.starts_with("ok") {
                    Ok(())
                } else {
                    Err("550 5.1.1 no\r\n".into())
                }),
                Step::BeginData => s.data_began(Ok(())),
                Step::Data(d) => {
                    data.extend_from_slice(&d);
                    if data.len() > 1000 {
                        s.data_refused("552 5.3.4 too big\r\n".into());
                    }
                }
                Step::EndData => {
                    committed = true;
                    s.data_committed(Ok(()))
                }
                Step::StartTls => s.tls_started(),
                Step::Authenticate { user, secret } => {
                    s.authenticated(if user == "u@a.test" && secret.0.as_str() == "right" {
                        Ok(user)
                    } else {
                        Err("535 5.7.8 Authentication credentials invalid\r\n".into())
                    })
                }
                Step::NeedInput => match chunks.next() {
                    Some(c) => s.feed(c, t),
                    None => break,
                },
                Step::Close => break,
            }
        }
        (replies, data, committed)
    }

    fn codes(replies: &[String]) -> Vec<&str> {
        replies.iter().map(|r| &r[..3]).collect()
    }

    #[test]
    fn a_mail_goes_through_in_one_pipelined_burst() {
        let (r, data, committed) = run(&[
            b"EHLO c\r\n",
            b"MAIL FROM:<x@b.test>\r\nRCPT TO:<ok1@a.test>\r\nRCPT TO:<no@a.test>\r\nDATA\r\n",
            b"Subject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n",
        ]);
        assert_eq!(
            codes(&r),
            ["220", "250", "250", "250", "550", "354", "250", "221"]
        );
        assert_eq!(data, b"Subject: hi\r\n\r\n.dot\r\n");
        assert!(committed);
    }

    #[test]
    fn data_without_recipients_and_before_ehlo_is_refused() {
        let (r, _, committed) = run(&[b"MAIL FROM:<x@b.test>\r\n", b"EHLO c\r\n", b"DATA\r\n"]);
        assert_eq!(codes(&r), ["220", "503", "250", "503"]);
        assert!(!committed);
    }

    #[test]
    fn recipients_past_the_limit_get_452() {
        let (r, _, _) = run(&[
            b"HELO c\r\nMAIL FROM:<>\r\n",
            b"RCPT TO:<ok1@a.test>\r\nRCPT TO:<ok2@a.test>\r\nRCPT TO:<ok3@a.test>\r\n",
        ]);
        assert_eq!(codes(&r), ["220", "250", "250", "250", "250", "452"]);
    }

    #[test]
    fn bytes_pipelined_after_data_or_starttls_close_the_session() {
        let (r, _, committed) =
            run(&[b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<ok@a.test>\r\nDATA\r\nSubject: x\r\n"]);
        assert_eq!(codes(&r), ["220", "250", "250", "250", "554"]);
        assert!(!committed);
        let (r, _, _) = run(&[b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<>\r\n"]);
        assert_eq!(codes(&r), ["220", "250", "554"]);
    }

    #[test]
    fn starttls_forgets_the_greeting_and_the_mail() {
        let (r, _, _) = run(&[
            b"EHLO c\r\nMAIL FROM:<x@b.test>\r\n",
            b"STARTTLS\r\n",
            b"RCPT TO:<ok@a.test>\r\n",
            b"STARTTLS\r\n",
        ]);
        assert_eq!(codes(&r), ["220", "250", "250", "220", "503", "503"]);
    }

    #[test]
    fn too_large_mail_is_read_to_its_end_then_refused() {
        let big = vec![b'a'; 3000];
        let whole = [&big[..], b"\r\n.\r\nNOOP\r\n"].concat();
        // The end in a later read, and in the same read as the chunk refused.
        for data in [vec![&big[..], b"\r\n.\r\nNOOP\r\n"], vec![&whole[..]]] {
            let mut input: Vec<&[u8]> = vec![
                b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<ok@a.test>\r\n",
                b"DATA\r\n",
            ];
            input.extend(data);
            let (r, _, committed) = run(&input);
            assert_eq!(codes(&r), ["220", "250", "250", "250", "354", "552", "250"]);
            assert!(!committed);
        }
    }

    fn submission() -> Settings {
        Settings {
            submission: true,
            max_errors: 4,
            ..settings()
        }
    }

    fn plain(user: &str, pass: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"))
    }

    #[test]
    fn submission_wants_tls_then_auth_then_the_users_own_address() {
        let good = format!("AUTH PLAIN {}\r\n", plain("u@a.test", "right"));
        let (r, data, committed) = run_with(
            submission(),
            &[
                b"EHLO c\r\n",
                format!("AUTH PLAIN {}\r\n", plain("u@a.test", "right")).as_bytes(),
                b"MAIL FROM:<u@a.test>\r\n",
                b"STARTTLS\r\n",
                b"EHLO c\r\n",
                b"MAIL FROM:<u@a.test>\r\n",
                good.as_bytes(),
                b"MAIL FROM:<other@a.test>\r\n",
                b"MAIL FROM:<U@A.test>\r\nRCPT TO:<ok@b.test>\r\nDATA\r\n",
                b"Subject: x\r\n\r\nhi\r\n.\r\n",
            ],
        );
        // Before TLS: no AUTH (538), no MAIL (530); after: AUTH PLAIN offered.
        assert_eq!(
            codes(&r),
            [
                "220", "250", "538", "530", "220", "250", "530", "235", "553", "250", "250", "354",
                "250"
            ]
        );
        assert!(!r[1].contains("AUTH"), "{}", r[1]);
        assert!(
            r[5].contains("250 AUTH PLAIN") || r[5].contains("250-AUTH PLAIN"),
            "{}",
            r[5]
        );
        assert_eq!(data, b"Subject: x\r\n\r\nhi\r\n");
        assert!(committed);
    }

    #[test]
    fn auth_continuation_cancel_bad_base64_and_wrong_passwords_count_as_errors() {
        let wrong = format!("{}\r\n", plain("u@a.test", "wrong"));
        let (r, _, _) = run_with(
            Settings {
                max_errors: 10,
                ..submission()
            },
            &[
                b"EHLO c\r\nSTARTTLS\r\n",
                b"EHLO c\r\n",
                b"AUTH PLAIN\r\n",
                b"*\r\n",
                b"AUTH PLAIN !!!\r\n",
                b"AUTH LOGIN\r\n",
                b"AUTH PLAIN\r\n",
                wrong.as_bytes(),
                format!("AUTH PLAIN {}\r\n", plain("u@a.test", "right")).as_bytes(),
                format!("AUTH PLAIN {}\r\n", plain("u@a.test", "right")).as_bytes(),
            ],
        );
        assert_eq!(
            codes(&r),
            [
                "220", "250", "220", "250", "334", "501", "501", "504", "334", "535", "235", "503"
            ]
        );
        // Four failed logins close the connection.
        let bad = format!("AUTH PLAIN {}\r\n", plain("u@a.test", "nope"));
        let (r, _, _) = run_with(
            submission(),
            &[
                b"EHLO c\r\nSTARTTLS\r\n",
                b"EHLO c\r\n",
                bad.as_bytes(),
                bad.as_bytes(),
                bad.as_bytes(),
                bad.as_bytes(),
                bad.as_bytes(),
            ],
        );
        assert_eq!(
            codes(&r),
            [
                "220", "250", "220", "250", "535", "535", "535", "535", "421"
            ]
        );
    }

    #[test]
    fn the_mx_offers_no_auth() {
        let (r, _, _) = run(&[
            b"EHLO c\r\nSTARTTLS\r\n",
            b"EHLO c\r\n",
            b"AUTH PLAIN AHVAYS50ZXN0AHJpZ2h0\r\n",
        ]);
        assert!(!r[3].contains("AUTH"));
        assert_eq!(codes(&r), ["220", "250", "220", "250", "502"]);
    }

    #[test]
    fn bad_commands_and_silence_end_the_session() {
        let (r, _, _) = run(&[b"FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n"]);
        assert_eq!(codes(&r), ["220", "500", "500", "500", "421"]);
        let t = Instant::now();
        let mut s = Session::new(settings(), t);
        assert!(matches!(s.step(), Step::Reply(_)));
        s.tick(t + Duration::from_secs(9));
        assert_eq!(s.step(), Step::NeedInput);
        s.tick(t + Duration::from_secs(10));
        assert!(matches!(s.step(), Step::Reply(r) if r.starts_with("421")));
        assert_eq!(s.step(), Step::Close);
    }
}
