//! `sealpost client …`: the command-line client.
//!
//! Client state (node URL, address, the pinned CA fingerprint) lives in `--dir` or
//! `$SEALPOST_CLIENT_DIR`. Nothing secret is stored there in the clear: every command asks for
//! the password (`--password-file`, `$SEALPOST_PASSWORD`, or a prompt), unlocks the key in
//! memory, does its work and logs out. The one key kept there, the S/MIME signing key (when
//! the organisation runs an S/MIME CA), is encrypted under the same password-derived wrap key
//! as the user's own key, and the file is readable by its owner only. The state also keeps the device token of the last login, which opens
//! nothing but marks this machine as a known device of the account.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use super::{Client, Outgoing, Session};
use sealpost_proto::Folder;
use sealpost_proto::crypto::grouped;

#[derive(Args, Debug)]
pub struct ClientArgs {
    /// The node's base URL, e.g. http://127.0.0.1:8080 (remembered after enrolment).
    #[arg(long, env = "SEALPOST_NODE")]
    pub node: Option<String>,
    /// Directory for this client's state.
    #[arg(long, env = "SEALPOST_CLIENT_DIR")]
    pub dir: Option<PathBuf>,
    /// Read the password from this file (first line) instead of a prompt.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// The current code of your authenticator app, if you set up a second factor.
    #[arg(long)]
    pub totp: Option<String>,
    #[command(subcommand)]
    pub command: ClientCommand,
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Generate your key and enrol with the invite code your administrator gave you.
    Enroll {
        #[arg(long)]
        invite: String,
        #[arg(long)]
        address: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// Use this client for an account enrolled elsewhere (in the browser, or on another
    /// machine): checks the password by logging in, pins the organisation's CA and saves the
    /// client state. Nothing secret is stored.
    Setup {
        #[arg(long)]
        address: String,
        /// The organisation CA's fingerprint as your administrator gave it. Without it, the
        /// one the node publishes is used and printed for you to compare.
        #[arg(long)]
        ca: Option<String>,
    },
    /// Seal and send a message; prints its message ID.
    Send {
        #[arg(long = "to", required = true)]
        to: Vec<String>,
        #[arg(long)]
        subject: String,
        #[arg(
            long,
            conflicts_with = "body_file",
            required_unless_present = "body_file"
        )]
        body: Option<String>,
        #[arg(long)]
        body_file: Option<PathBuf>,
        #[arg(long = "attach")]
        attach: Vec<PathBuf>,
        /// Registered mail for every recipient (Sealpost users and pickup recipients, not mail
        /// recipients): their node releases it once they sign a receipt (docs/evidence.md).
        #[arg(long)]
        registered: bool,
    },
    /// List received messages.
    Inbox {
        #[arg(long)]
        json: bool,
    },
    /// List sent messages.
    Sent {
        #[arg(long)]
        json: bool,
    },
    /// List archived messages.
    Archived {
        #[arg(long)]
        json: bool,
    },
    /// Read a message: verifies the sender's signature and shows who signed it.
    Read {
        id: String,
        #[arg(long)]
        save_attachments: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Refuse a message registered for you (signed): it stays closed, and the refusal is
    /// recorded as evidence.
    Refuse { id: String },
    /// Save a message's evidence bundle (docs/evidence.md) to FILE, for
    /// `sealpost evidence verify`.
    Evidence {
        id: String,
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Move a received message to the archive.
    Archive { id: String },
    /// Delete a message from your mailbox.
    Delete { id: String },
    /// Show who you are on this node.
    Whoami,
    /// The web of trust.
    Trust {
        #[command(subcommand)]
        command: TrustCommand,
    },
    /// Keys of outside addresses (OpenPGP certificates, X.509 certificates for S/MIME) that
    /// you import for yourself, and what the node finds for an outside address.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Certify that a key is ADDRESS's, after comparing its fingerprint with them; or, with
    /// --first-contact, a guest's key made after unlocking a message of yours with its Message
    /// Unlock Code (no fingerprint to compare: the unlock code was the check).
    Certify {
        address: String,
        #[arg(long, required_unless_present = "first_contact")]
        fingerprint: Option<String>,
        #[arg(long, conflicts_with = "fingerprint")]
        first_contact: bool,
    },
    /// Make ADDRESS's key a trusted introducer (optionally only for one domain).
    Introducer {
        address: String,
        #[arg(long)]
        fingerprint: String,
        #[arg(long)]
        scope: Option<String>,
    },
    /// Retract your certification of ADDRESS's key.
    Retract { address: String },
    /// Print a fingerprint to compare aloud: yours, or the keys the directory has for ADDRESS.
    Fingerprint { address: Option<String> },
    /// Revoke your own key (for good: messages to it are refused afterwards).
    RevokeKey {
        #[arg(long)]
        reason: String,
    },
    /// A new unlock code for ADDRESS's pickup of your message MESSAGE_ID (after too many wrong
    /// codes): the same key, locked anew; prints the code, which opens the whole thread.
    Relock { message_id: String, address: String },
    /// Open a pickup link as its outside recipient (no account needed): asks for the unlock
    /// code (without echo on a terminal), prints the message and what was verified.
    Pickup {
        /// The link from the notification mail (`…/pickup#…`).
        link: String,
        /// Read the unlock code from this file (first line) instead of asking.
        #[arg(long)]
        code_file: Option<PathBuf>,
        /// Save the attachments into this directory.
        #[arg(long)]
        save_dir: Option<PathBuf>,
        /// Reply to the sender with the text of this file.
        #[arg(long)]
        reply: Option<PathBuf>,
        /// The reply's subject (default: "Re: " and the message's).
        #[arg(long, requires = "reply")]
        reply_subject: Option<String>,
        /// Attach this file to the reply (repeatable).
        #[arg(long = "reply-attach", requires = "reply")]
        reply_attach: Vec<PathBuf>,
    },
}

/// The unlock code: from `--code-file`, else asked on the terminal without echo, else the
/// first line of standard input.
fn unlock_code(code_file: Option<&Path>) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if let Some(f) = code_file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        return Ok(text.lines().next().unwrap_or("").to_owned());
    }
    if std::io::stdin().is_terminal() {
        return Ok(rpassword::prompt_password("Unlock code: ")?);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

/// `sealpost client pickup`: unlock, print, save, reply.
async fn pickup_command(
    link: &str,
    code_file: Option<&Path>,
    save_dir: Option<&Path>,
    reply: Option<(&Path, Option<&str>, &[PathBuf])>,
) -> anyhow::Result<()> {
    let carol = crate::pickup::PickupClient::new(link)?;
    let info = carol.open().await?;
    eprintln!(
        "A secure message for {} from {}{} ({}).",
        info.address,
        info.sender,
        info.sender_name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default(),
        info.organisation
    );
    let code = unlock_code(code_file)?;
    if crate::pickup::parse_muc(&code).is_none() {
        bail!("that is not an unlock code: 16 letters and digits, as the sender gave them");
    }
    let u = carol.unlock(&code).await?;
    let got = carol.read(&u).await?;
    let by_ca = carol.ca_certifies_sender(&u).await.unwrap_or(false);
    println!("From:    {}", got.head.from);
    println!("To:      {}", got.head.to.join(", "));
    println!("Subject: {}", got.head.subject);
    println!();
    println!("{}", got.head.body);
    println!();
    println!("Verified:");
    println!(
        "  signed by the key {} (the envelope's signature, and every part's hash)",
        grouped(&got.signer_fingerprint)
    );
    println!(
        "  organisation CA {}: {}",
        grouped(&u.info.ca_fingerprint),
        if by_ca {
            format!("certifies this key for {}", got.head.from)
        } else {
            format!("does NOT certify this key for {}", got.head.from)
        }
    );
    println!(
        "Not verified: that this CA is the organisation's. Compare its fingerprint with one \
         you got from them another way (a letter, their website)."
    );
    for (meta, bytes) in &got.attachments {
        match save_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                let path = dir.join(&meta.name);
                std::fs::write(&path, bytes)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("Saved {} ({} bytes)", path.display(), bytes.len());
            }
            None => println!(
                "Attachment {} ({} bytes; --save-dir to save)",
                meta.name,
                bytes.len()
            ),
        }
    }
    if let Some((file, subject, attach)) = reply {
        let body =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let mut files = Vec::with_capacity(attach.len());
        for a in attach {
            let name = a
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((
                name,
                std::fs::read(a).with_context(|| format!("reading {}", a.display()))?,
            ));
        }
        let subject = subject
            .map(str::to_owned)
            .unwrap_or_else(|| format!("Re: {}", got.head.subject));
        let resp = carol.reply(&u, &subject, &body, &files).await?;
        println!("Replied to {} ({}).", got.head.from, resp.message_id);
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Import an outside address's OpenPGP certificate (armored or binary) or X.509
    /// certificate (PEM) from FILE, for yourself.
    Import {
        file: PathBuf,
        /// The address the key must carry.
        #[arg(long)]
        address: Option<String>,
    },
    /// List the keys you imported.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a key you imported (by fingerprint or SHA-256).
    Remove { fingerprint: String },
    /// Show what the node finds for an outside ADDRESS: each key, where it came from and your
    /// verdict, and where it found nothing.
    Find { address: String },
}

#[derive(Subcommand, Debug)]
pub enum TrustCommand {
    /// Show the verdict for every key of ADDRESS, and each trust path in words.
    Show { address: String },
}

/// What the client remembers between commands. Nothing secret in the clear.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientState {
    pub node: String,
    pub address: String,
    pub fingerprint: String,
    pub ca_fingerprint: String,
    /// The device token of the last login: it grants nothing by itself, but lets the node
    /// tell this device from a guesser elsewhere (see `service/throttle.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    /// The S/MIME signing key, encrypted under the password-derived wrap key as the user's
    /// own key is, and its certificate from the organisation's CA (`smime.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smime: Option<crate::smime::SmimeIdentity>,
}

impl ClientState {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("client.json")
    }
    pub fn load(dir: &Path) -> anyhow::Result<ClientState> {
        let p = Self::path(dir);
        let text = std::fs::read_to_string(&p)
            .with_context(|| format!("no client state in {} (enrol first)", dir.display()))?;
        serde_json::from_str(&text).with_context(|| format!("reading {}", p.display()))
    }
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join("client.json.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new();
        file.write(true).create_new(true);
        // Owner only: it may hold the (encrypted) S/MIME signing key.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
        std::io::Write::write_all(&mut file.open(&tmp)?, &serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, Self::path(dir))?;
        Ok(())
    }
}

fn client_dir(args: &ClientArgs) -> anyhow::Result<PathBuf> {
    if let Some(d) = &args.dir {
        return Ok(d.clone());
    }
    let home = std::env::var_os("HOME").context("set --dir or SEALPOST_CLIENT_DIR")?;
    Ok(PathBuf::from(home).join(".sealpost"))
}

fn password(args: &ClientArgs, confirm: bool) -> anyhow::Result<Vec<u8>> {
    if let Some(f) = &args.password_file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        return Ok(text.lines().next().unwrap_or("").as_bytes().to_vec());
    }
    if let Ok(p) = std::env::var("SEALPOST_PASSWORD") {
        return Ok(p.into_bytes());
    }
    let p = rpassword::prompt_password("Password: ")?;
    if confirm && rpassword::prompt_password("Password again: ")? != p {
        bail!("the two passwords differ");
    }
    Ok(p.into_bytes())
}

async fn login(args: &ClientArgs, dir: &Path) -> anyhow::Result<Session> {
    let state = ClientState::load(dir)?;
    let node = args.node.clone().unwrap_or(state.node.clone());
    let pw = password(args, false)?;
    let session = Client::new(&node)
        .with_device_token(state.device_token.clone())
        .login(
            &state.address,
            &pw,
            args.totp.as_deref(),
            Some(&state.ca_fingerprint),
        )
        .await?;
    let session = session.with_smime_identity(state.smime.clone());
    if let Some(t) = session.device_token() {
        // Each login brings a fresh token; keeping it is a convenience, not a requirement.
        let state = ClientState {
            device_token: Some(t.to_owned()),
            ..state
        };
        if let Err(e) = state.save(dir) {
            tracing::warn!(error = %e, "could not keep the device token");
        }
    }
    Ok(session)
}

/// A mail that came in over SMTP: what it says, and how it arrived.
fn print_mail(m: &crate::ReadMail, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(m)?);
        return Ok(());
    }
    let a = &m.arrival;
    if a.submitted {
        println!(
            "From:    {} (sent from a mail program through your organisation's gateway: its node saw the content; not signed by the sender)",
            m.from
        );
    } else {
        println!(
            "From:    {} (by mail; not signed by a Sealpost user)",
            m.from
        );
    }
    println!("To:      {}", m.to.join(", "));
    println!("Subject: {}", m.subject);
    if a.submitted {
        println!("Sealed:  by the node, for each recipient");
    } else if a.encrypted {
        println!("Arrived: encrypted by the sender (OpenPGP)");
    } else {
        println!("Arrived: unencrypted (encrypted to you by your node on arrival)");
    }
    if m.compliance_added {
        println!(
            "Archive: it came encrypted to you only; your organisation's compliance archive can open it now (the session key was wrapped for its compliance key)"
        );
    }
    println!(
        "Checks:  TLS {}, SPF {}, DKIM {}, DMARC {}; envelope sender <{}>",
        if a.tls { "yes" } else { "no" },
        a.spf,
        a.dkim,
        a.dmarc,
        a.mail_from
    );
    if let Some(id) = &m.in_reply_to {
        println!("Answers: {id}");
    }
    println!();
    println!("{}", m.body);
    for name in &m.attachments {
        println!("[attachment] {name}");
    }
    Ok(())
}

fn print_items(
    items: &[(sealpost_proto::MailboxItem, String)],
    json: bool,
    sent: bool,
) -> anyhow::Result<()> {
    if json {
        let v: Vec<serde_json::Value> = items
            .iter()
            .map(|(i, subject)| {
                let mut v = serde_json::to_value(i).expect("items serialise");
                v["subject"] = subject.clone().into();
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if items.is_empty() {
        println!("(no messages)");
    }
    for (i, subject) in items {
        let who = if sent {
            i.to.join(", ")
        } else {
            i.from.clone()
        };
        let mark = if i.unread { "*" } else { " " };
        println!(
            "{mark} {}  {:<28}  {}  ({} bytes)",
            i.message_id, who, subject, i.size
        );
        if sent {
            // Recipients with no delivery state are users of this node: they have it.
            for a in
                i.to.iter()
                    .filter(|a| !i.delivery.iter().any(|d| &d.address == *a))
            {
                println!("      {a}: delivered [local]");
            }
        }
        for d in &i.delivery {
            let mode = d.mode.map_or(String::new(), |m| format!(" [{m}]"));
            match &d.reason {
                Some(why) => println!("      {}: {}{mode} ({why})", d.address, d.state),
                None => println!("      {}: {}{mode}", d.address, d.state),
            }
        }
    }
    Ok(())
}

pub async fn run(args: ClientArgs) -> anyhow::Result<()> {
    // The outside recipient's command needs no account and no client state.
    if let ClientCommand::Pickup {
        link,
        code_file,
        save_dir,
        reply,
        reply_subject,
        reply_attach,
    } = &args.command
    {
        let reply = reply
            .as_deref()
            .map(|f| (f, reply_subject.as_deref(), reply_attach.as_slice()));
        return pickup_command(link, code_file.as_deref(), save_dir.as_deref(), reply).await;
    }
    let dir = client_dir(&args)?;
    let work = std::env::temp_dir();
    match &args.command {
        ClientCommand::Enroll {
            invite,
            address,
            name,
        } => {
            let node = args.node.clone().context("--node URL is needed to enrol")?;
            if ClientState::path(&dir).exists() {
                bail!(
                    "{} already holds an enrolled client; use another --dir",
                    dir.display()
                );
            }
            let pw = password(&args, true)?;
            if pw.len() < 10 {
                bail!("choose a password of at least 10 characters");
            }
            let client = Client::new(&node);
            // The organisation's login parameters, when its node publishes them.
            let kdf = crate::org_kdf(&client.org().await?);
            let enrolled = client
                .enroll(invite, address, name.as_deref(), &pw, kdf)
                .await?;
            ClientState {
                node,
                address: enrolled.address.clone(),
                fingerprint: enrolled.fingerprint.clone(),
                ca_fingerprint: enrolled.ca_fingerprint.clone(),
                smime: None,
                device_token: None,
            }
            .save(&dir)?;
            println!("Enrolled {}.", enrolled.address);
            println!("Your key's fingerprint (compare it aloud with people who certify you):");
            println!("  {}", grouped(&enrolled.fingerprint));
        }
        ClientCommand::Setup { address, ca } => {
            let node = args
                .node
                .clone()
                .context("--node URL is needed to set up")?;
            if ClientState::path(&dir).exists() {
                bail!(
                    "{} already holds a client; use another --dir",
                    dir.display()
                );
            }
            // Given: login refuses a node presenting another CA. Not given: trust on first
            // use, as at enrolment, and show it for comparison.
            let ca_fingerprint = match ca {
                Some(given) => given
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect::<String>()
                    .to_uppercase(),
                None => Client::new(&node).org().await?.ca_fingerprint,
            };
            let pw = password(&args, false)?;
            let session = Client::new(&node)
                .login(address, &pw, args.totp.as_deref(), Some(&ca_fingerprint))
                .await?;
            ClientState {
                node,
                address: session.address().to_owned(),
                fingerprint: session.fingerprint(),
                ca_fingerprint: ca_fingerprint.clone(),
                smime: None,
                device_token: session.device_token().map(str::to_owned),
            }
            .save(&dir)?;
            println!("Set up {} in {}.", session.address(), dir.display());
            println!("Your key's fingerprint:");
            println!("  {}", grouped(&session.fingerprint()));
            if ca.is_none() {
                println!(
                    "Your organisation's CA (compare it with what your administrator gave you):"
                );
                println!("  {}", grouped(&ca_fingerprint));
            }
        }
        ClientCommand::Send {
            to,
            subject,
            body,
            body_file,
            attach,
            registered,
        } => {
            let body = match (body, body_file) {
                (Some(b), _) => b.clone(),
                (None, Some(f)) => std::fs::read_to_string(f)
                    .with_context(|| format!("reading {}", f.display()))?,
                (None, None) => unreachable!("clap requires one"),
            };
            for a in attach {
                if !a.is_file() {
                    bail!("{} is not a file", a.display());
                }
            }
            let s = login(&args, &dir).await?;
            let resp = s
                .send_all_with(
                    &Outgoing {
                        to: to.clone(),
                        subject: subject.clone(),
                        body,
                        attachments: attach.clone(),
                        pickup_kdf: None,
                    },
                    if *registered { to } else { &[] },
                    &work,
                )
                .await;
            // A signing identity made or renewed by this send is kept for the next.
            let (identity, signing) = (s.smime_identity(), s.smime_signing());
            s.logout().await?;
            let state = ClientState::load(&dir)?;
            if identity != state.smime {
                ClientState {
                    smime: identity,
                    ..state
                }
                .save(&dir)?;
            }
            let (resp, issued) = resp?;
            for r in &resp.recipients {
                // No mode: a user of this node (or a guest), who has it now.
                let mode = r.mode.map_or("local", |m| m.as_str());
                eprintln!("{}: {} [{mode}]", r.address, r.state);
                if r.mode == Some(sealpost_proto::DeliveryMode::Smime) {
                    eprintln!(
                        "  {}",
                        if signing {
                            sealpost_proto::SMIME_SIGNED
                        } else {
                            sealpost_proto::SMIME_UNSIGNED
                        }
                    );
                }
            }
            for p in &issued {
                let link = p
                    .link
                    .as_deref()
                    .unwrap_or("(sent to them by notification mail)");
                match &p.muc {
                    Some(muc) => eprintln!(
                        "\n{} has no key: they open the message with this link and unlock code.\n  \
                         link: {}\n  unlock code: {}\nPass the unlock code on by another channel \
                         (phone, SMS, letter), never in the same mail as the link. It is shown only \
                         this once.",
                        p.address,
                        link,
                        crate::pickup::display_muc(muc),
                    ),
                    None => eprintln!(
                        "\n{}: same unlock code as before (this message continues your pickup \
                         thread with them).\n  link: {}",
                        p.address, link
                    ),
                }
            }
            println!("{}", resp.message_id);
        }
        ClientCommand::Inbox { json }
        | ClientCommand::Sent { json }
        | ClientCommand::Archived { json } => {
            let folder = match &args.command {
                ClientCommand::Inbox { .. } => Folder::Inbox,
                ClientCommand::Sent { .. } => Folder::Sent,
                _ => Folder::Archive,
            };
            let s = login(&args, &dir).await?;
            let resp = s.mailbox_with_notices(folder).await?;
            let items = resp.items;
            if !*json {
                for n in resp.notices.iter().filter(|n| n.unread) {
                    println!("! {}", n.text);
                }
            }
            let mut rows = Vec::with_capacity(items.len());
            for i in items {
                let subject = if i.via.as_deref() == Some("smtp") {
                    match s.open_mail(&i.message_id, &work).await {
                        Ok((m, _)) if m.arrival.submitted => {
                            format!("{} [sent from a mail program]", m.subject)
                        }
                        Ok((m, _)) if !m.arrival.encrypted => {
                            format!("{} [arrived unencrypted]", m.subject)
                        }
                        Ok((m, _)) => m.subject,
                        Err(e) => format!("[cannot open: {e}]"),
                    }
                } else {
                    match s.open_head(&i.message_id, &work).await {
                        Ok(h) => h.head.subject,
                        Err(e) => format!("[cannot open: {e}]"),
                    }
                };
                rows.push((i, subject));
            }
            s.logout().await?;
            print_items(&rows, *json, folder == Folder::Sent)?;
        }
        ClientCommand::Read {
            id,
            save_attachments,
            json,
        } => {
            if let Some(d) = save_attachments {
                std::fs::create_dir_all(d)?;
            }
            let s = login(&args, &dir).await?;
            let mut by_mail = false;
            for folder in [Folder::Inbox, Folder::Sent] {
                by_mail |= s
                    .mailbox(folder)
                    .await?
                    .iter()
                    .any(|i| &i.message_id == id && i.via.as_deref() == Some("smtp"));
            }
            if by_mail {
                let m = s.read_mail(id, &work).await;
                s.logout().await?;
                return print_mail(&m?, *json);
            }
            let m = s.read(id, save_attachments.as_deref(), &work).await;
            s.logout().await?;
            let m = m?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                println!("From:    {}", m.from);
                println!(
                    "Signed:  verified, by {} (key {})",
                    m.verified_sender,
                    grouped(&m.signer_fingerprint)
                );
                println!("To:      {}", m.to.join(", "));
                println!("Subject: {}", m.subject);
                println!();
                println!("{}", m.body);
                match &m.sender_trust {
                    Some(t) => {
                        println!("Trust:   {} ({})", t.level, t.amount);
                        for line in &t.explanation {
                            println!("         {line}");
                        }
                    }
                    None => {
                        println!("Trust:   none (the sender's key is not in your web of trust)")
                    }
                }
                for a in &m.attachments {
                    match &a.saved_to {
                        Some(p) => println!(
                            "[attachment] {} ({} bytes) saved to {}",
                            a.name,
                            a.size,
                            p.display()
                        ),
                        None => println!("[attachment] {} ({} bytes)", a.name, a.size),
                    }
                }
            }
        }
        ClientCommand::Refuse { id } => {
            let s = login(&args, &dir).await?;
            let r = s.refuse(id).await;
            s.logout().await?;
            r?;
            println!("refused {id} (signed refusal kept as evidence)");
        }
        ClientCommand::Evidence { id, output } => {
            let s = login(&args, &dir).await?;
            let r = s.evidence(id).await;
            s.logout().await?;
            let (bundle, pending) = r?;
            let records = bundle["records"].as_array().map_or(0, Vec::len);
            std::fs::write(output, serde_json::to_vec_pretty(&bundle)?)?;
            println!(
                "saved {records} evidence records of {id} to {}",
                output.display()
            );
            if pending > 0 {
                println!("{pending} more wait for the next time-stamped batch: fetch again later");
            }
        }
        ClientCommand::Archive { id } => {
            let s = login(&args, &dir).await?;
            let r = s.move_message(id, Folder::Inbox, Folder::Archive).await;
            s.logout().await?;
            r?;
            println!("archived {id}");
        }
        ClientCommand::Delete { id } => {
            let s = login(&args, &dir).await?;
            let r = s.delete(id).await;
            s.logout().await?;
            r?;
            println!("deleted {id}");
        }
        ClientCommand::Key { command } => {
            let s = login(&args, &dir).await?;
            let r = key_command(&s, command).await;
            s.logout().await?;
            r?;
        }
        ClientCommand::Trust {
            command: TrustCommand::Show { address },
        } => {
            let s = login(&args, &dir).await?;
            let t = s.trust(address).await;
            s.logout().await?;
            let t = t?;
            if t.keys.is_empty() {
                println!("{address}: no key known");
            }
            for k in &t.keys {
                println!(
                    "{address}: key {} — {} ({})",
                    grouped(&k.fingerprint),
                    k.level,
                    k.amount
                );
                for line in &k.explanation {
                    println!("  {line}");
                }
            }
        }
        ClientCommand::Certify {
            address,
            first_contact: true,
            ..
        } => {
            let s = login(&args, &dir).await?;
            let r = s.certify_first_contact(address).await;
            let t = match &r {
                Ok(_) => s.trust(address).await.ok(),
                Err(_) => None,
            };
            s.logout().await?;
            let (fingerprint, _) = r?;
            println!(
                "You certified {address}'s key {} (first contact by Message Unlock Code).",
                grouped(&fingerprint)
            );
            for k in t.map(|t| t.keys).unwrap_or_default() {
                for line in &k.explanation {
                    println!("  {line}");
                }
            }
        }
        ClientCommand::Certify {
            fingerprint: None, ..
        } => anyhow::bail!("give --fingerprint (after comparing it) or --first-contact"),
        ClientCommand::Certify {
            address,
            fingerprint: Some(fingerprint),
            ..
        }
        | ClientCommand::Introducer {
            address,
            fingerprint,
            ..
        } => {
            let scope = match &args.command {
                ClientCommand::Introducer { scope, .. } => Some(scope.as_deref()),
                _ => None,
            };
            let s = login(&args, &dir).await?;
            let r = match scope {
                None => s.certify(address, fingerprint).await,
                Some(scope) => s.introducer(address, fingerprint, scope).await,
            };
            let t = match &r {
                Ok(_) => s.trust(address).await.ok(),
                Err(_) => None,
            };
            s.logout().await?;
            r?;
            match scope {
                None => println!("You certified {address}'s key {}.", grouped(fingerprint)),
                Some(Some(d)) => println!("{address} is now your trusted introducer for {d}."),
                Some(None) => println!("{address} is now your trusted introducer."),
            }
            for k in t.map(|t| t.keys).unwrap_or_default() {
                for line in &k.explanation {
                    println!("  {line}");
                }
            }
        }
        ClientCommand::Retract { address } => {
            let s = login(&args, &dir).await?;
            let r = s.retract(address).await;
            s.logout().await?;
            let n = r?;
            println!("Retracted your certification of {n} key(s) of {address}.");
        }
        ClientCommand::Fingerprint { address } => {
            let s = login(&args, &dir).await?;
            match address {
                None => println!("{}  {}", s.address(), grouped(&s.fingerprint())),
                Some(a) => {
                    let certs = s.directory_certs(a).await;
                    let certs = match certs {
                        Ok(c) => c,
                        Err(e) => {
                            s.logout().await?;
                            return Err(e.into());
                        }
                    };
                    if certs.is_empty() {
                        println!("{a}: the directory has no key");
                    }
                    for c in certs {
                        println!("{a}  {}", grouped(&c.fingerprint().to_hex()));
                    }
                }
            }
            s.logout().await?;
        }
        ClientCommand::Relock {
            message_id,
            address,
        } => {
            let s = login(&args, &dir).await?;
            let r = s
                .relock(message_id, &address.to_ascii_lowercase(), &s.pickup_kdf)
                .await;
            s.logout().await?;
            let muc = r?;
            eprintln!(
                "A new unlock code for {address}; it opens every message of your pickup thread \
                 with them, the old code none. Pass it on by another channel (phone, SMS, letter):"
            );
            println!("{}", crate::pickup::display_muc(&muc));
        }
        ClientCommand::Pickup { .. } => unreachable!("handled before the client state is read"),
        ClientCommand::RevokeKey { reason } => {
            let s = login(&args, &dir).await?;
            let r = s.revoke_key(reason).await;
            s.logout().await?;
            r?;
            println!("Your key is revoked. New messages to it will be refused.");
        }
        ClientCommand::Whoami => {
            let state = ClientState::load(&dir)?;
            let s = login(&args, &dir).await?;
            println!("{}", s.address());
            if let Some(n) = &s.account.name {
                println!("name:        {n}");
            }
            println!(
                "node:        {}",
                args.node.as_deref().unwrap_or(&state.node)
            );
            println!("fingerprint: {}", grouped(&s.fingerprint()));
            println!(
                "admin:       {}",
                if s.account.is_admin { "yes" } else { "no" }
            );
            println!(
                "second factor: {}",
                if s.account.totp_enabled { "on" } else { "off" }
            );
            s.logout().await?;
        }
    }
    Ok(())
}

/// `sealpost client key …`, under a logged-in session.
async fn key_command(s: &Session, command: &KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Import { file, address } => {
            let text =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            // A binary OpenPGP certificate travels armored (the API takes text).
            let text = match String::from_utf8(text) {
                Ok(t) => t,
                Err(e) => {
                    use sequoia_openpgp::parse::Parse;
                    let cert = sequoia_openpgp::Cert::from_bytes(e.as_bytes())
                        .with_context(|| format!("{}: not a certificate", file.display()))?;
                    if cert.is_tsk() {
                        bail!(
                            "{}: this is a secret key: import the public certificate only",
                            file.display()
                        );
                    }
                    crate::crypto::cert_to_armored(&cert)?
                }
            };
            let k = s.import_key(&text, address.as_deref()).await?;
            println!(
                "imported {} {} for {}",
                k.kind.as_str(),
                grouped(&k.fingerprint),
                k.addresses.join(", ")
            );
        }
        KeyCommand::List { json } => {
            let keys = s.imported_keys().await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                for k in keys {
                    println!("{}", k.line());
                }
            }
        }
        KeyCommand::Remove { fingerprint } => {
            s.remove_key(fingerprint).await?;
            println!("removed {fingerprint}");
        }
        KeyCommand::Find { address } => {
            let found = s.outside_keys(address).await?;
            if found.openpgp.is_empty() && found.x509.is_empty() {
                println!("{address}: no key found");
            }
            for k in &found.openpgp {
                println!(
                    "{address}: OpenPGP key {} ({}) — {} ({})",
                    grouped(&k.fingerprint),
                    k.source.as_str(),
                    k.verdict.level,
                    k.verdict.amount
                );
                for line in &k.verdict.explanation {
                    println!("  {line}");
                }
            }
            for x in &found.x509 {
                println!(
                    "{address}: X.509 certificate {} ({}) — {}",
                    x.sha256,
                    x.source.as_str(),
                    match &x.not_anchored_because {
                        None => "anchored".to_owned(),
                        Some(why) => format!("not anchored: {why}"),
                    }
                );
            }
            for note in &found.notes {
                println!("  {note}");
            }
        }
    }
    Ok(())
}
