//! `sealpost demo`: one command to a working organisation on loopback, with two enrolled users
//! and their client directories, so that the commands it prints work as they are.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;

use crate::client::Client;
use crate::client::cli::ClientState;
use crate::config::{Config, Paths};
use crate::crypto::KdfParams;
use crate::node::{Node, init};

pub const DEMO_DOMAIN: &str = "alpha.test";
const USERS: [(&str, &str, bool); 2] = [
    ("alice", "Alice Liddell", true),
    ("bob", "Bob Martin", false),
];

pub async fn run(data: &Path, http: SocketAddr) -> anyhow::Result<()> {
    let fresh = !Paths::new(data).config().exists();
    if fresh {
        init(data, DEMO_DOMAIN, Some(http)).await?;
    }
    let mut config = Config::load(data)?;
    // A busy port should not stop a demo: take a free one instead.
    config.http.listen = match std::net::TcpListener::bind(http) {
        Ok(_) => http,
        Err(_) => SocketAddr::new(http.ip(), 0),
    };
    let node = Node::open_with(data, config)?;
    let (store, cfg) = (node.store.clone(), node.config.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(node.serve(crate::cli::shutdown_signal(), move |a| {
        let _ = tx.send(a);
    }));
    let addr = rx.await.context("the node did not start")?;
    let url = format!("http://{addr}");
    let clients = data.join("clients");
    for (user, name, admin) in USERS {
        let dir = clients.join(user);
        let address = format!("{user}@{DEMO_DOMAIN}");
        let password = format!("{user}-demo-password");
        if fresh {
            let code = crate::cli::add_user(&*store, &cfg, &address, Some(name), admin).await?;
            let enrolled = Client::new(&url)
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
            crate::keys::write_secret_file(&dir.join("password"), password.as_bytes())?;
            ClientState {
                node: url.clone(),
                address,
                fingerprint: enrolled.fingerprint,
                ca_fingerprint: enrolled.ca_fingerprint,
            }
            .save(&dir)?;
        } else {
            // The port may differ from the last run.
            let mut state = ClientState::load(&dir)?;
            state.node = url.clone();
            state.save(&dir)?;
        }
    }
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "sealpost".into());
    let alice = clients.join("alice");
    let bob = clients.join("bob");
    println!("Sealpost demo: organisation {DEMO_DOMAIN} is running at {url}");
    println!();
    println!("Users (passwords are in each client directory's 'password' file):");
    for (user, name, admin) in USERS {
        println!(
            "  {user}@{DEMO_DOMAIN:<12} {name:<14} password {user}-demo-password{}",
            if admin { "  (admin)" } else { "" }
        );
    }
    println!();
    println!("In a browser: {url}/  (sign in as alice@{DEMO_DOMAIN} / alice-demo-password)");
    println!(
        "  a new user enrols from an invite link: {exe} admin --data {} user add carol@{DEMO_DOMAIN}",
        data.display()
    );
    println!(
        "  then open {url}/#/enroll?address=carol@{DEMO_DOMAIN}&invite=CODE (or use Administration in the app)"
    );
    println!();
    println!("Try it from another terminal:");
    println!(
        "  {exe} client --dir {} --password-file {}/password send --to bob@{DEMO_DOMAIN} --subject Hello --body 'Hi Bob, this is end-to-end encrypted.'",
        alice.display(),
        alice.display()
    );
    println!(
        "  {exe} client --dir {} --password-file {}/password inbox",
        bob.display(),
        bob.display()
    );
    println!(
        "  {exe} client --dir {} --password-file {}/password read MESSAGE_ID",
        bob.display(),
        bob.display()
    );
    println!("  {exe} admin --data {} log verify", data.display());
    println!("  curl {url}/api/v1/openapi.json");
    println!();
    println!("Press Ctrl-C to stop.");
    server.await.context("the node task failed")??;
    Ok(())
}
