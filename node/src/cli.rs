//! The `sealpost` command line: `init`, `serve`, `admin`, `client`, `demo`, `config`.
//! `main.rs` only parses and calls [`run`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::config::{Config, Paths};
use crate::node::{Node, init};
use crate::storage::{AccountState, MetaStore};

#[derive(Parser, Debug)]
#[command(
    name = "sealpost",
    version,
    about = "Sealpost: federated, end-to-end encrypted messaging for organisations"
)]
pub struct Cli {
    /// Log as JSON lines (for log collectors) instead of text.
    #[arg(long, global = true, env = "SEALPOST_LOG_JSON")]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new organisation's node: data directory, config, database, CA and node key.
    Init {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        domain: String,
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long)]
        http: Option<SocketAddr>,
    },
    /// Run the node.
    Serve {
        #[arg(long)]
        data: PathBuf,
    },
    /// Administer accounts and check the transaction log (works while the node runs).
    Admin {
        #[arg(long)]
        data: PathBuf,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The command-line client.
    Client(crate::client::cli::ClientArgs),
    /// Start a ready-to-use demo organisation on loopback with two enrolled users.
    Demo {
        /// Where the demo keeps its data (reused if it exists).
        #[arg(long, default_value = "sealpost-demo")]
        data: PathBuf,
        /// Address to listen on; if it is taken, a free port is used.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
    },
    /// Print the example configuration, every key documented.
    Config,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// The tamper-evident transaction log.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Authorise an account; prints a one-time, expiring invite code as the last line.
    Add {
        address: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        admin: bool,
    },
    /// A new invite for an account that has not enrolled yet.
    Invite { address: String },
    /// List accounts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Disable an account: it can no longer log in, and its sessions end.
    Disable { address: String },
    /// Enable a disabled account again.
    Enable { address: String },
    /// Revoke the organisation CA's certification of a user (a leaver): paths through the CA
    /// to their key break. Disable the account separately if they may no longer log in.
    Revoke { address: String },
}

#[derive(Subcommand, Debug)]
pub enum LogCommand {
    /// Check the hash chain and the signed checkpoints; names the first broken entry.
    Verify,
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Init { data, domain, http } => {
                let config = init(&data, &domain, http).await?;
                println!(
                    "Created the {} node in {} (listens on {}).",
                    config.domain,
                    data.display(),
                    config.http.listen
                );
                println!("Next: sealpost serve --data {}", data.display());
                Ok(())
            }
            Command::Serve { data } => serve(&data).await,
            Command::Admin { data, command } => admin(&data, command).await,
            Command::Client(args) => crate::client::cli::run(args).await,
            Command::Demo { data, http } => crate::demo::run(&data, http).await,
            Command::Config => {
                print!("{}", crate::config::EXAMPLE);
                Ok(())
            }
        }
    })
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

async fn serve(data: &Path) -> anyhow::Result<()> {
    let node = Node::open(data)?;
    let domain = node.config.domain.clone();
    node.serve(shutdown_signal(), |addr| {
        tracing::info!(%addr, %domain, "listening");
        println!("Sealpost node for {domain} listening on http://{addr}");
    })
    .await
}

/// A one-time invite code: 20 characters of Crockford's base32 (100 bits), grouped by four.
pub fn new_invite_code() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let bytes: [u8; 20] = rand::random();
    let chars: Vec<u8> = bytes.iter().map(|b| ALPHABET[(*b % 32) as usize]).collect();
    chars
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect::<Vec<_>>()
        .join("-")
}

/// Opens the store of a node's data directory (the node may be running: SQLite's WAL lets
/// the two processes share it).
pub fn open_store(data: &Path) -> anyhow::Result<(Config, crate::storage::SqliteStore)> {
    let config = Config::load(data)?;
    let paths = Paths::new(data);
    let key = crate::keys::load_node_key(&paths)?;
    let store = crate::node::open_store(&paths, &config, key)?;
    Ok((config, store))
}

/// Authorises `address` and returns its invite code.
pub async fn add_user(
    store: &dyn MetaStore,
    config: &Config,
    address: &str,
    name: Option<&str>,
    admin: bool,
) -> anyhow::Result<String> {
    let address = crate::normalize_address(address).context("not an e-mail address")?;
    if !address.ends_with(&format!("@{}", config.domain)) {
        bail!("this node's users are …@{}", config.domain);
    }
    let code = new_invite_code();
    let now = crate::now();
    store
        .create_account(
            &address,
            name,
            admin,
            crate::api::invite_hash(&code),
            now + config.accounts.invite_ttl_secs as i64,
            now,
        )
        .await?;
    Ok(code)
}

/// The CA revokes its certification of `address`'s key (a leaver). Returns the address.
pub async fn revoke_certification(
    store: &dyn MetaStore,
    data: &Path,
    address: &str,
) -> anyhow::Result<String> {
    let address = crate::normalize_address(address).context("not an e-mail address")?;
    let account = store
        .account_by_address(&address)
        .await?
        .with_context(|| format!("no account {address}"))?;
    let armored = account
        .cert
        .with_context(|| format!("{address} has not enrolled"))?;
    let cert = crate::crypto::cert_from_armored(&armored)?;
    let ca = crate::keys::load_ca(&Paths::new(data))?;
    let when = crate::certs::after_previous_signatures(
        &ca.fingerprint(),
        &cert,
        &address,
        std::time::SystemTime::now(),
    );
    let revoked = sealpost_trust::retract(&ca, &cert, &address, when)?;
    let record = crate::certs::record(&revoked)?;
    let event = crate::storage::LogEvent::new("ca.certification_revoked", "admin", &address)
        .with(serde_json::json!({ "fingerprint": record.fingerprint }));
    store
        .put_cert(record, "local", Some(event), crate::now())
        .await?;
    Ok(address)
}

async fn admin(data: &Path, command: AdminCommand) -> anyhow::Result<()> {
    let (config, store) = open_store(data)?;
    match command {
        AdminCommand::User { command } => match command {
            UserCommand::Add {
                address,
                name,
                admin,
            } => {
                let code = add_user(&store, &config, &address, name.as_deref(), admin).await?;
                let hours = config.accounts.invite_ttl_secs / 3600;
                println!(
                    "Authorised {}{}.",
                    address.to_ascii_lowercase(),
                    if admin { " (admin)" } else { "" }
                );
                println!("Give them this one-time invite code; it expires in {hours} hours:");
                println!("{code}");
            }
            UserCommand::Invite { address } => {
                let address =
                    crate::normalize_address(&address).context("not an e-mail address")?;
                let code = new_invite_code();
                let now = crate::now();
                store
                    .reissue_invite(
                        &address,
                        crate::api::invite_hash(&code),
                        now + config.accounts.invite_ttl_secs as i64,
                        now,
                    )
                    .await?;
                println!("New invite for {address} (the old one no longer works):");
                println!("{code}");
            }
            UserCommand::List { json } => {
                let accounts = store.accounts().await?;
                if json {
                    let v: Vec<_> = accounts
                        .iter()
                        .map(|a| {
                            serde_json::json!({
                                "address": a.address, "name": a.name, "admin": a.is_admin,
                                "state": a.state, "fingerprint": a.fingerprint,
                                "totp": a.totp_enabled, "created_at": a.created_at,
                            })
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    for a in accounts {
                        println!(
                            "{:<36} {:<9} {:<6} {}",
                            a.address,
                            a.state.as_str(),
                            if a.is_admin { "admin" } else { "" },
                            a.fingerprint.as_deref().unwrap_or("-")
                        );
                    }
                }
            }
            UserCommand::Revoke { address } => {
                let address = revoke_certification(&store, data, &address).await?;
                println!("The CA no longer certifies {address}'s key.");
            }
            UserCommand::Disable { ref address } | UserCommand::Enable { ref address } => {
                let enable = matches!(command, UserCommand::Enable { .. });
                let address = address.clone();
                let address =
                    crate::normalize_address(&address).context("not an e-mail address")?;
                let account = store
                    .account_by_address(&address)
                    .await?
                    .with_context(|| format!("no account {address}"))?;
                let state = match (enable, account.cert.is_some()) {
                    (false, _) => AccountState::Disabled,
                    (true, true) => AccountState::Active,
                    (true, false) => AccountState::Invited,
                };
                store
                    .set_account_state(&address, state, "admin", crate::now())
                    .await?;
                println!("{address} is now {}", state.as_str());
            }
        },
        AdminCommand::Log {
            command: LogCommand::Verify,
        } => {
            let report = store.verify_log().await?;
            match report.first_broken {
                None => println!(
                    "log ok: {} entries, {} signed checkpoints, chain intact",
                    report.entries, report.checkpoints
                ),
                Some((seq, why)) => {
                    println!("log BROKEN at entry {seq}: {why}");
                    bail!("the transaction log does not verify (first bad entry: {seq})");
                }
            }
        }
    }
    Ok(())
}
