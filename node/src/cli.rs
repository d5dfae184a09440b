//! The node's commands: `init`, `serve`, `admin`, `config`, `openapi`. The `sealpost` binary
//! (package `sealpost-bin`) parses them beside the client's (`client`) and the demo's, and
//! calls [`run`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::config::{Config, Paths};
use crate::node::{Node, init};
use crate::service::{self, Actor};
use crate::storage::{AccountStore, ComplianceStore, LogStore, MetaStore};

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
    /// Administer accounts and check the transaction log (works while the node runs: a
    /// change is in force at the running node when the command returns); back up and restore.
    Admin {
        /// The node's data directory (also `--data-dir`; for `restore`, the new one).
        #[arg(long, global = true, alias = "data-dir")]
        data: Option<PathBuf>,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Check evidence offline, with no node (docs/evidence.md).
    Evidence {
        #[command(subcommand)]
        command: EvidenceCommand,
    },
    /// Print the example configuration, every key documented.
    #[command(display_order = 100)]
    Config,
    /// Print the HTTP API's OpenAPI document (what `/api/v1/openapi.json` serves).
    #[command(display_order = 101)]
    Openapi,
}

#[derive(Subcommand, Debug)]
pub enum EvidenceCommand {
    /// Check an evidence bundle (`sealpost client evidence`): every signature, the inclusion
    /// proofs, the batch heads and their RFC 3161 time-stamps. Names the first failing part.
    Verify {
        /// The bundle file.
        file: PathBuf,
        /// PEM: the TSA's CA to trust (else the one the bundle carries, which is reported).
        #[arg(long)]
        tsa_ca: Option<PathBuf>,
        /// OpenPGP certificate of the organisation CA to pin (else the bundle's, reported by
        /// fingerprint).
        #[arg(long)]
        ca: Option<PathBuf>,
    },
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
    /// Peered organisations (federation).
    Peer {
        #[command(subcommand)]
        command: PeerCommand,
    },
    /// Guests: outside addresses that made a key of their own from a pickup.
    Guest {
        #[command(subcommand)]
        command: GuestCommand,
    },
    /// Keys of outside addresses imported for every user (OpenPGP certificates, X.509
    /// certificates for S/MIME), as the console's `/admin/outside-keys`.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// The organisation's compliance key and its custody (docs/compliance.md).
    Compliance {
        #[command(subcommand)]
        command: ComplianceCommand,
    },
    /// Back up the node into the new directory OUT while it runs: one consistent snapshot of
    /// the database, the blobs it refers to, the keys and the config, with a manifest of
    /// hashes (docs/operations.md, "Backups"). OUT holds the node's secret keys.
    Backup { out: PathBuf },
    /// Restore the backup in BACKUP into `--data-dir DIR` (new or empty), after checking its
    /// manifest, every file's hash and the log; then `sealpost serve --data DIR`.
    Restore { backup: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum ComplianceCommand {
    /// Install the public certificate in FILE (armored or binary; user ID
    /// `Compliance archive <compliance@DOMAIN>`) as the organisation's compliance key: the CA
    /// marks it, the directory publishes it, and messages must be encrypted to it.
    Install { file: PathBuf },
    /// Show the active compliance key.
    Show,
    /// Compliance officers, who hold the shares of the compliance key ("Dual control").
    Officer {
        #[command(subcommand)]
        command: OfficerCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum OfficerCommand {
    /// Make a user a compliance officer (they get a share when the key is split anew).
    Add { address: String },
    /// Remove a compliance officer (split the key anew without them next).
    Remove { address: String },
    /// List the compliance officers.
    List,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Import an OpenPGP certificate (armored or binary) or an X.509 certificate (PEM, with
    /// any intermediates after it) from FILE for every user.
    Import {
        file: PathBuf,
        /// The address the key must carry.
        #[arg(long)]
        address: Option<String>,
    },
    /// List the keys imported for every user.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove an imported key (OpenPGP fingerprint or X.509 SHA-256).
    Remove { fingerprint: String },
}

#[derive(Subcommand, Debug)]
pub enum GuestCommand {
    /// List guests.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Disable a guest: it can no longer log in, its sessions end, and its address is reached
    /// by pickup again.
    Disable { address: String },
    /// Enable a disabled guest again.
    Enable { address: String },
    /// Remove a guest for good: its sessions, mailbox and account.
    Remove { address: String },
}

impl AdminCommand {
    /// Whether the command may change what a running node keeps in memory (accounts,
    /// sessions, certificates, peers): then the node must see it before the command returns.
    fn changes(&self) -> bool {
        match self {
            AdminCommand::User {
                command: UserCommand::List { .. },
            }
            | AdminCommand::Peer {
                command: PeerCommand::List { .. },
            }
            | AdminCommand::Guest {
                command: GuestCommand::List { .. },
            }
            | AdminCommand::Log { .. }
            | AdminCommand::Backup { .. }
            | AdminCommand::Restore { .. } => false,
            // The node reads imports from the database at every look-up and keeps none in
            // memory: there is nothing for it to catch up with.
            AdminCommand::Key { .. } => false,
            AdminCommand::Compliance {
                command: ComplianceCommand::Install { .. },
            } => true,
            // Show reads the database; officers are read at every request.
            AdminCommand::Compliance { .. } => false,
            AdminCommand::User { .. } | AdminCommand::Peer { .. } | AdminCommand::Guest { .. } => {
                true
            }
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum PeerCommand {
    /// Authorise another organisation's node for its domain, and bridge our CA to its CA.
    /// Either give its peer ID, address and CA fingerprint, or `--from` its node's URL (its
    /// published record is shown for confirmation).
    Add {
        domain: String,
        /// QUIC multiaddress of the peer's node (repeatable).
        #[arg(long = "addr")]
        addrs: Vec<String>,
        #[arg(long)]
        peer_id: Option<String>,
        /// The peer organisation's CA fingerprint (compare it with them out of band).
        #[arg(long)]
        ca: Option<String>,
        /// The peer node's URL: fetch its published record (peer ID, addresses, CA).
        #[arg(long, conflicts_with_all = ["addrs", "peer_id", "ca"])]
        from: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// List peers with their connection state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a peer and revoke our bridge to its CA.
    Remove { domain: String },
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

/// Runs one of the node's commands on a new Tokio runtime.
/// `sealpost evidence verify`: prints what the bundle proves, or fails naming the part.
fn verify_evidence(
    file: &std::path::Path,
    tsa_ca: Option<&std::path::Path>,
    ca: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    print!("{}", evidence_report(file, tsa_ca, ca)?);
    Ok(())
}

/// What `sealpost evidence verify FILE [--tsa-ca PEM] [--ca CERT]` prints, or its error
/// (which names the failing part: `evidence does not verify: records[0].signature: ...`).
pub fn evidence_report(
    file: &std::path::Path,
    tsa_ca: Option<&std::path::Path>,
    ca: Option<&std::path::Path>,
) -> anyhow::Result<String> {
    use anyhow::Context as _;
    use std::fmt::Write as _;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let tsa_pem = tsa_ca
        .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
        .transpose()?;
    let ca = ca
        .map(|p| -> anyhow::Result<sequoia_openpgp::Cert> {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Ok(crate::crypto::cert_from_armored(&text)?)
        })
        .transpose()?;
    let v = crate::evidence::verify(
        &bytes,
        &crate::evidence::Anchors {
            tsa_ca: tsa_pem.as_deref(),
            ca: ca.as_ref(),
            now: std::time::SystemTime::now(),
        },
    )
    .map_err(|e| anyhow::anyhow!("evidence does not verify: {e}"))?;
    let mut out = String::new();
    writeln!(
        out,
        "Evidence for message {}: every part verifies.",
        v.message_id
    )?;
    writeln!(
        out,
        "Organisation CA {}{}; evidence key {}.",
        v.ca_fingerprint,
        if ca.is_some() {
            " (as pinned)"
        } else {
            " (from the bundle: compare it with the organisation's)"
        },
        v.evidence_fingerprint
    )?;
    if !v.tsa_ca_given {
        writeln!(
            out,
            "TSA CA taken from the bundle: pass --tsa-ca to check against your own."
        )?;
    }
    for r in &v.records {
        writeln!(
            out,
            "{}  {}  {}  (recorded at {}, time-stamped at {})",
            r.record.event.as_str(),
            r.record.recipient.as_deref().unwrap_or("-"),
            r.record.node,
            r.record.at,
            r.stamped_at
        )?;
    }
    for p in &v.peers {
        writeln!(
            out,
            "At a recipient's node, under organisation CA {} (from the bundle):",
            p.ca_fingerprint
        )?;
        for r in &p.records {
            writeln!(
                out,
                "{}  {}  {}  (recorded at {}, time-stamped at {})",
                r.record.event.as_str(),
                r.record.recipient.as_deref().unwrap_or("-"),
                r.record.node,
                r.record.at,
                r.stamped_at
            )?;
        }
    }
    writeln!(
        out,
        "Sealpost is no qualified trust service: see docs/evidence.md."
    )?;
    Ok(out)
}

pub fn run(command: Command) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match command {
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
            Command::Admin { data, command } => {
                let data = data.context("--data DIR: the node's data directory is needed")?;
                admin(&data, command).await
            }
            Command::Evidence {
                command: EvidenceCommand::Verify { file, tsa_ca, ca },
            } => verify_evidence(&file, tsa_ca.as_deref(), ca.as_deref()),
            Command::Config => {
                print!("{}", crate::config::EXAMPLE);
                Ok(())
            }
            Command::Openapi => {
                print!("{}", crate::api::openapi::json());
                Ok(())
            }
        }
    })
}

/// Whether `command` asks for JSON logs through its configuration (`[log] format = "json"` of
/// the data directory `serve` runs): read before the binary installs its subscriber. A
/// configuration that does not load is reported by the command itself, in text.
pub fn wants_json_log(command: &Command) -> bool {
    match command {
        Command::Serve { data } => {
            Config::load(data).is_ok_and(|c| c.log.format == crate::config::LogFormat::Json)
        }
        _ => false,
    }
}

async fn serve(data: &Path) -> anyhow::Result<()> {
    let node = Node::open(data)?;
    let domain = node.config.domain.clone();
    node.serve(crate::node::shutdown_signal(), |addr| {
        tracing::info!(%addr, %domain, "listening");
        println!("Sealpost node for {domain} listening on http://{addr}");
    })
    .await
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

/// Returns once a node serving `data` sees what an admin command committed: it keeps accounts,
/// sessions, certificates and peers in memory, so it is asked over its admin socket to catch
/// up with the database and answers when it has (see [`admin_socket`](crate::admin_socket)).
/// No node running: nothing to tell.
async fn tell_a_running_node(data: &Path) -> anyhow::Result<()> {
    let socket = Paths::new(data).admin_socket();
    crate::admin_socket::sync(&Paths::new(data))
        .await
        .with_context(|| {
            format!(
                "the change is made, but the node serving {} did not confirm that it sees it \
                 (admin socket {})",
                data.display(),
                socket.display()
            )
        })?;
    Ok(())
}

/// Runs one `sealpost admin` command (also called in-process by tests). A change is in force
/// at a node running on `data` when this returns.
pub async fn admin(data: &Path, command: AdminCommand) -> anyhow::Result<()> {
    let changes = command.changes();
    let outcome = admin_command(data, command).await;
    if changes {
        // After a failure too: a command may have committed a part of its work.
        let told = tell_a_running_node(data).await;
        outcome?;
        return told;
    }
    outcome
}

async fn admin_command(data: &Path, command: AdminCommand) -> anyhow::Result<()> {
    // Neither opens the node's store: a backup reads a snapshot, a restore makes the directory.
    match command {
        AdminCommand::Backup { out } => return backup(data, out).await,
        AdminCommand::Restore { backup } => return restore(backup, data).await,
        _ => {}
    }
    let (config, store) = open_store(data)?;
    match command {
        AdminCommand::User { command } => match command {
            UserCommand::Add {
                address,
                name,
                admin,
            } => {
                let invite = service::accounts::invite(
                    &store,
                    &config,
                    &Actor::Cli,
                    &address,
                    name.as_deref(),
                    admin,
                    crate::now(),
                )
                .await?;
                let hours = config.accounts.invite_ttl_secs / 3600;
                if invite.created {
                    println!(
                        "Authorised {}{}.",
                        invite.address,
                        if admin { " (admin)" } else { "" }
                    );
                } else {
                    println!(
                        "{} had not enrolled yet: a new invite (the old one no longer works).",
                        invite.address
                    );
                }
                println!("Give them this one-time invite code; it expires in {hours} hours:");
                println!("{}", invite.code);
            }
            UserCommand::Invite { address } => {
                let invite = service::accounts::invite(
                    &store,
                    &config,
                    &Actor::Cli,
                    &address,
                    None,
                    false,
                    crate::now(),
                )
                .await?;
                println!(
                    "New invite for {} (an earlier one no longer works):",
                    invite.address
                );
                println!("{}", invite.code);
            }
            UserCommand::List { json } => {
                let mut accounts = store.accounts().await?;
                // Guests have their own list (`admin guest list`).
                accounts.retain(|a| !service::guests::is_guest(a));
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
                let ca = crate::keys::load_ca(&Paths::new(data))?;
                let address = service::accounts::revoke_certification(
                    &store,
                    &ca,
                    &Actor::Cli,
                    &address,
                    std::time::SystemTime::now(),
                )
                .await?;
                println!("The CA no longer certifies {address}'s key.");
            }
            UserCommand::Disable { ref address } | UserCommand::Enable { ref address } => {
                let enabled = matches!(command, UserCommand::Enable { .. });
                let state = service::accounts::set_state(
                    &store,
                    &Actor::Cli,
                    address,
                    enabled,
                    crate::now(),
                )
                .await?;
                println!("{} is now {}", address.to_ascii_lowercase(), state.as_str());
            }
        },
        AdminCommand::Peer { command } => {
            peer_command(&store, &config, data, command).await?;
        }
        AdminCommand::Guest { command } => guest_command(&store, data, command).await?,
        AdminCommand::Key { command } => key_command(&store, &config, command).await?,
        AdminCommand::Compliance { command } => match command {
            ComplianceCommand::Install { file } => {
                let bytes =
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                let ca = crate::keys::load_ca(&Paths::new(data))?;
                let key = service::compliance::install(
                    &store,
                    &config,
                    &ca,
                    &Actor::Cli,
                    &bytes,
                    std::time::SystemTime::now(),
                )
                .await?;
                println!(
                    "Installed {} as the compliance key of {}: the CA marked it, the directory \
                     publishes it.",
                    crate::crypto::grouped(&key.fingerprint),
                    key.domain
                );
            }
            ComplianceCommand::Show => match store.compliance_key().await? {
                Some(k) => {
                    println!("{}", crate::crypto::grouped(&k.fingerprint));
                    print!("{}", k.cert);
                }
                None => println!("no compliance key installed"),
            },
            ComplianceCommand::Officer { command } => match command {
                OfficerCommand::Add { ref address } | OfficerCommand::Remove { ref address } => {
                    let add = matches!(command, OfficerCommand::Add { .. });
                    service::custody::set_officer(
                        &store,
                        &Actor::Cli,
                        address,
                        add,
                        std::time::SystemTime::now(),
                    )
                    .await?;
                    let address = address.to_ascii_lowercase();
                    if add {
                        println!("{address} is now a compliance officer");
                    } else {
                        println!(
                            "{address} is no longer a compliance officer: split the compliance key anew without them"
                        );
                    }
                }
                OfficerCommand::List => {
                    for o in service::custody::officers(&store).await? {
                        println!("{}", o.address);
                    }
                }
            },
        },
        AdminCommand::Backup { .. } | AdminCommand::Restore { .. } => {
            unreachable!("run above, without the store")
        }
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

/// `sealpost admin backup OUT`: prints what the backup holds and its manifest's SHA-256.
async fn backup(data: &Path, out: PathBuf) -> anyhow::Result<()> {
    let data = data.to_owned();
    let (manifest, digest) = tokio::task::spawn_blocking(move || {
        let m = crate::backup::backup(&data, &out)?;
        let digest = crate::backup::manifest_sha256(&out)?;
        Ok::<_, crate::backup::BackupError>((m, digest))
    })
    .await??;
    println!(
        "Backed up {} ({} files, log up to entry {}).",
        manifest.domain,
        manifest.files.len(),
        manifest.log_head.seq
    );
    println!("It holds the node's secret keys: keep it as you keep them.");
    println!("Manifest SHA-256 (keep it apart from the backup): {digest}");
    Ok(())
}

/// `sealpost admin restore BACKUP --data-dir DIR`.
async fn restore(backup: PathBuf, data: &Path) -> anyhow::Result<()> {
    let target = data.to_owned();
    let manifest =
        tokio::task::spawn_blocking(move || crate::backup::restore(&backup, &target)).await??;
    println!(
        "Restored {} into {}: every file checked, log verified up to entry {}.",
        manifest.domain,
        data.display(),
        manifest.log_head.seq
    );
    println!("Next: sealpost serve --data {}", data.display());
    Ok(())
}

/// `sealpost admin key …`: the same service operations as the console's
/// `/admin/outside-keys`.
async fn key_command(
    store: &crate::storage::SqliteStore,
    config: &Config,
    command: KeyCommand,
) -> anyhow::Result<()> {
    use service::outside_keys::KeyOwner;
    match command {
        KeyCommand::Import { file, address } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let k = service::outside_keys::import(
                store,
                &config.delivery,
                KeyOwner::Admin,
                Actor::Cli.log_name(),
                &bytes,
                address.as_deref(),
                std::time::SystemTime::now(),
            )
            .await?;
            println!(
                "imported {} {} for {} (for every user)",
                k.kind.as_str(),
                k.fingerprint,
                k.addresses.join(", ")
            );
        }
        KeyCommand::List { json } => {
            let keys =
                service::outside_keys::list(store, &config.delivery, KeyOwner::Admin).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                for k in keys {
                    println!("{}", k.line());
                }
            }
        }
        KeyCommand::Remove { fingerprint } => {
            service::outside_keys::remove(
                store,
                KeyOwner::Admin,
                Actor::Cli.log_name(),
                &fingerprint,
                std::time::SystemTime::now(),
            )
            .await?;
            println!("removed {fingerprint}");
        }
    }
    Ok(())
}

/// `sealpost admin guest …`: the same service operations as the console's `/admin/guests`.
async fn guest_command(
    store: &crate::storage::SqliteStore,
    data: &Path,
    command: GuestCommand,
) -> anyhow::Result<()> {
    match command {
        GuestCommand::List { json } => {
            let guests = service::guests::list(store).await?;
            if json {
                let v: Vec<_> = guests
                    .iter()
                    .map(|a| {
                        serde_json::json!({
                            "address": a.address, "state": a.state,
                            "fingerprint": a.fingerprint, "created_at": a.created_at,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for a in guests {
                    println!(
                        "{:<36} {:<9} {}",
                        a.address,
                        a.state.as_str(),
                        a.fingerprint.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        GuestCommand::Disable { ref address } | GuestCommand::Enable { ref address } => {
            let enabled = matches!(command, GuestCommand::Enable { .. });
            let state =
                service::guests::set_state(store, &Actor::Cli, address, enabled, crate::now())
                    .await?;
            println!(
                "guest {} is now {}",
                address.to_ascii_lowercase(),
                state.as_str()
            );
        }
        GuestCommand::Remove { address } => {
            let blobs = crate::storage::FsBlobStore::open(&Paths::new(data).blobs())?;
            let address =
                service::guests::remove_in(store, &blobs, &Actor::Cli, &address, crate::now())
                    .await?;
            println!("guest {address} removed");
        }
    }
    Ok(())
}

/// A peer's published record, as `peer add --from` reads it.
#[derive(serde::Deserialize)]
struct PublishedPeer {
    domain: String,
    ca_fingerprint: String,
    ca_cert: String,
    peer_id: String,
    federation_addrs: Vec<String>,
}

async fn fetch_peer_record(url: &str) -> anyhow::Result<PublishedPeer> {
    let url = format!("{}/.well-known/sealpost/org", url.trim_end_matches('/'));
    let resp = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .build()?
        .get(&url)
        .send()
        .await
        .with_context(|| format!("fetching {url}"))?
        .error_for_status()
        .with_context(|| format!("fetching {url}"))?;
    resp.json()
        .await
        .with_context(|| format!("{url} is not a Sealpost organisation record"))
}

async fn peer_command(
    store: &dyn MetaStore,
    config: &Config,
    data: &Path,
    command: PeerCommand,
) -> anyhow::Result<()> {
    let paths = Paths::new(data);
    match command {
        PeerCommand::Add {
            domain,
            addrs,
            peer_id,
            ca,
            from,
            yes,
        } => {
            let peer = match from {
                Some(url) => {
                    let published = fetch_peer_record(&url).await?;
                    if published.domain != domain.trim().to_ascii_lowercase() {
                        bail!("{url} is the node of {}, not of {domain}", published.domain);
                    }
                    let ca = crate::crypto::cert_from_armored(&published.ca_cert)
                        .context("the published CA certificate does not parse")?;
                    println!("Peer {domain} at {url}:");
                    println!("  peer ID:        {}", published.peer_id);
                    println!("  addresses:      {}", published.federation_addrs.join(" "));
                    println!(
                        "  CA fingerprint: {}",
                        crate::crypto::grouped(&published.ca_fingerprint)
                    );
                    println!("Compare the CA fingerprint with {domain} by a separate channel.");
                    if !yes && !confirm(&format!("Peer with {domain} and bridge to its CA?"))? {
                        bail!("not peered");
                    }
                    service::peers::NewPeer {
                        domain,
                        peer_id: published.peer_id,
                        addrs: published.federation_addrs,
                        ca_fingerprint: published.ca_fingerprint,
                        ca_cert: Some(ca),
                    }
                }
                None => {
                    let (Some(peer_id), Some(ca)) = (peer_id, ca) else {
                        bail!("give --peer-id, --addr and --ca, or --from URL");
                    };
                    service::peers::NewPeer {
                        domain,
                        peer_id,
                        addrs,
                        ca_fingerprint: ca,
                        ca_cert: None,
                    }
                }
            };
            let bridged_now = peer.ca_cert.is_some();
            let our_ca = crate::keys::load_ca(&paths)?;
            let record = service::peers::add(
                store,
                config,
                &our_ca,
                &Actor::Cli,
                peer,
                std::time::SystemTime::now(),
            )
            .await?;
            let domain = record.domain;
            println!("Peered with {domain} (node {}).", record.peer_id);
            if bridged_now {
                println!("Our CA now vouches for {domain}'s CA, for {domain} addresses only.");
            } else {
                println!("The bridge to {domain}'s CA is made when the node first reaches it.");
            }
        }
        PeerCommand::List { json } => {
            let peers: Vec<_> = service::peers::list(store)
                .await?
                .into_iter()
                .map(|p| p.record)
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&peers)?);
            } else if peers.is_empty() {
                println!("no peers");
            } else {
                for p in peers {
                    let detail = match (&p.last_error, p.retry_at) {
                        (Some(e), Some(t)) if p.state == "backing_off" => {
                            format!("retry in {}s: {e}", (t - crate::now()).max(0))
                        }
                        (Some(e), _) if p.state != "connected" => format!("last error: {e}"),
                        _ => String::new(),
                    };
                    println!("{:<24} {:<12} {} {}", p.domain, p.state, p.peer_id, detail);
                }
            }
        }
        PeerCommand::Remove { domain } => {
            let our_ca = crate::keys::load_ca(&paths)?;
            service::peers::remove(
                store,
                &our_ca,
                &Actor::Cli,
                &domain,
                std::time::SystemTime::now(),
            )
            .await?;
            println!("Removed {domain}; our CA no longer vouches for its CA.");
        }
    }
    Ok(())
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::Write;
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_logs_json_when_its_configuration_says_so_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let serve = Command::Serve {
            data: dir.path().to_owned(),
        };
        let write = |log: &str| {
            std::fs::write(
                dir.path().join(crate::config::CONFIG_FILE),
                format!("domain = \"a.test\"\n{log}"),
            )
            .unwrap()
        };
        write("[log]\nformat = \"json\"");
        assert!(wants_json_log(&serve));
        write("[log]\nformat = \"text\"");
        assert!(!wants_json_log(&serve));
        write("");
        assert!(!wants_json_log(&serve), "text by default");
        write("[log]\nformat = \"xml\"");
        assert!(
            !wants_json_log(&serve),
            "refused at start, reported in text"
        );
        assert!(!wants_json_log(&Command::Config));
    }
}
