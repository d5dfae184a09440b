//! `sealpost demo`: one command to two working, federated organisations on loopback
//! (`alpha.test` and `beta.test`, peered over QUIC with a bridge between their CAs), each with
//! enrolled users and their client directories, so that the commands it prints work as they are.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use sealpost::api::AppState;
use sealpost::config::{Config, Paths};
use sealpost::node::{Node, init};
use sealpost_client::Client;
use sealpost_client::cli::ClientState;
use sealpost_proto::KdfParams;

/// A demo user: local part, name, whether an admin.
type DemoUser = (&'static str, &'static str, bool);

/// The organisations of the demo: domain, and users.
const ORGS: [(&str, [DemoUser; 2]); 2] = [
    (
        "alpha.test",
        [
            ("alice", "Alice Liddell", true),
            ("carol", "Carol Danvers", false),
        ],
    ),
    (
        "beta.test",
        [("bob", "Bob Martin", true), ("dave", "Dave Bowman", false)],
    ),
];

struct Running {
    domain: &'static str,
    data: PathBuf,
    url: String,
    state: AppState,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(
    data: &Path,
    domain: &'static str,
    http: SocketAddr,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(Running, bool)> {
    let fresh = !Paths::new(data).config().exists();
    if fresh {
        init(data, domain, Some(http)).await?;
    }
    let mut config = Config::load(data)?;
    // A busy port should not stop a demo: take a free one instead.
    config.http.listen = match std::net::TcpListener::bind(http) {
        Ok(_) => http,
        Err(_) => SocketAddr::new(http.ip(), 0),
    };
    let node = Node::open_with(data, config)?;
    let state = node.state.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut stop = shutdown;
    let server = tokio::spawn(node.serve(
        async move {
            let _ = stop.wait_for(|s| *s).await;
        },
        move |a| {
            let _ = tx.send(a);
        },
    ));
    let addr = rx
        .await
        .with_context(|| format!("the {domain} node did not start"))?;
    Ok((
        Running {
            domain,
            data: data.to_owned(),
            url: format!("http://{addr}"),
            state,
            server,
        },
        fresh,
    ))
}

/// Peers `a` with `b` as `sealpost admin peer add` would, with `b`'s published details.
async fn peer(a: &Running, b: &Running) -> anyhow::Result<()> {
    let link = b
        .state
        .federation
        .get()
        .context("federation is not running")?;
    let ca = b.state.ca.clone().strip_secret_key_material();
    sealpost::service::peers::add(
        &*a.state.store,
        &a.state.config,
        &a.state.ca,
        &sealpost::service::Actor::Node,
        sealpost::service::peers::NewPeer {
            domain: b.domain.to_owned(),
            peer_id: link.peer_id(),
            addrs: link.listen_addrs(),
            ca_fingerprint: ca.fingerprint().to_hex(),
            ca_cert: Some(ca),
        },
        std::time::SystemTime::now(),
    )
    .await?;
    Ok(())
}

pub async fn run(data: &Path, http: SocketAddr) -> anyhow::Result<()> {
    if Paths::new(data).config().exists() {
        bail!(
            "{} holds a demo from an older Sealpost (one organisation); remove it first",
            data.display()
        );
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut orgs = Vec::new();
    let mut fresh = false;
    for (i, (domain, _)) in ORGS.iter().enumerate() {
        let port = if http.port() == 0 {
            0
        } else {
            http.port() + i as u16
        };
        let (running, new) = start(
            &data.join(domain.split('.').next().expect("a domain")),
            domain,
            SocketAddr::new(http.ip(), port),
            stop_rx.clone(),
        )
        .await?;
        fresh |= new;
        orgs.push(running);
    }
    if fresh {
        peer(&orgs[0], &orgs[1]).await?;
        peer(&orgs[1], &orgs[0]).await?;
    }
    let clients = data.join("clients");
    for (org, (_, users)) in orgs.iter().zip(ORGS) {
        for (user, name, admin) in users {
            enrol_or_update(org, &clients, user, name, admin).await?;
        }
    }

    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "sealpost".into());
    let client = |user: &str| {
        let dir = clients.join(user);
        format!(
            "{exe} client --dir {} --password-file {}/password",
            dir.display(),
            dir.display()
        )
    };
    println!("Sealpost demo: two federated organisations on loopback");
    for (org, (_, users)) in orgs.iter().zip(ORGS) {
        println!();
        println!(
            "  {}  {}/   (data in {})",
            org.domain,
            org.url,
            org.data.display()
        );
        for (user, name, admin) in users {
            println!(
                "    {:<20} {name:<14} password {user}-demo-password{}",
                format!("{user}@{}", org.domain),
                if admin { "  (admin)" } else { "" }
            );
        }
    }
    println!();
    println!(
        "In a browser: {}/ (alice) and {}/ (bob); sign in with the addresses and passwords above.",
        orgs[0].url, orgs[1].url
    );
    println!(
        "  a new user enrols from an invite link: {exe} admin --data {} user add erin@{}",
        orgs[0].data.display(),
        orgs[0].domain
    );
    println!(
        "  then open {}/#/enroll?address=erin@{}&invite=CODE (or use Administration in the app)",
        orgs[0].url, orgs[0].domain
    );
    println!();
    println!("Try it from another terminal (alice at alpha.test writes to bob at beta.test):");
    println!(
        "  {} send --to bob@beta.test --subject Hello --body 'Hi Bob, across organisations, end-to-end encrypted.'",
        client("alice")
    );
    println!("  {} inbox", client("bob"));
    println!("  {} read MESSAGE_ID", client("bob"));
    println!(
        "  {} trust show alice@alpha.test     # the path names the bridge",
        client("bob")
    );
    println!(
        "  {} sent                           # delivery state",
        client("alice")
    );
    println!("  {exe} admin --data {} peer list", orgs[0].data.display());
    println!("  {exe} admin --data {} log verify", orgs[1].data.display());
    println!();
    println!("Press Ctrl-C to stop.");
    sealpost::node::shutdown_signal().await;
    let _ = stop_tx.send(true);
    for org in orgs {
        org.server.await.context("a node task failed")??;
    }
    Ok(())
}

/// Enrols a demo user on the first run; afterwards points their client at the node's URL
/// (the port may differ from the last run).
async fn enrol_or_update(
    org: &Running,
    clients: &Path,
    user: &str,
    name: &str,
    admin: bool,
) -> anyhow::Result<()> {
    let dir = clients.join(user);
    if ClientState::path(&dir).exists() {
        let mut state = ClientState::load(&dir)?;
        state.node = org.url.clone();
        return state.save(&dir);
    }
    let address = format!("{user}@{}", org.domain);
    let password = format!("{user}-demo-password");
    let code = sealpost::service::accounts::invite(
        org.state.store.as_ref(),
        &org.state.config,
        &sealpost::service::Actor::Node,
        &address,
        Some(name),
        admin,
        sealpost_proto::now(),
    )
    .await?
    .code;
    let enrolled = Client::new(&org.url)
        .enroll(
            &code,
            &address,
            Some(name),
            password.as_bytes(),
            KdfParams::DEFAULT,
        )
        .await
        .with_context(|| format!("enrolling {address}"))?;
    std::fs::create_dir_all(&dir)?;
    sealpost::keys::write_secret_file(&dir.join("password"), password.as_bytes())?;
    ClientState {
        node: org.url.clone(),
        address,
        fingerprint: enrolled.fingerprint,
        ca_fingerprint: enrolled.ca_fingerprint,
        smime: None,
        device_token: None,
    }
    .save(&dir)
}
