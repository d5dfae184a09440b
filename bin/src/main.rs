//! The `sealpost` binary: parses the command line, installs logging, and hands over to the
//! libraries: the node's commands to `sealpost::cli`, `client …` to `sealpost_client::cli`,
//! `demo` to [`demo`] (which drives both). It is its own package so that the node library does
//! not depend on the client library (a package's dependencies are its binary's too).

mod demo;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// mimalloc rather than the system allocator: a node allocates and frees many short-lived
/// buffers per request on several threads, where glibc's malloc spent about a tenth of the
/// node's CPU time under load (measured with `perf` during `sealpost-load`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "sealpost",
    version,
    about = "Sealpost: federated, end-to-end encrypted messaging for organisations"
)]
struct Cli {
    /// Log as JSON lines (for log collectors) instead of text (`serve` also follows its
    /// configuration's `[log] format`).
    #[arg(long, global = true, env = "SEALPOST_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    #[command(flatten)]
    Node(sealpost::cli::Command),
    /// The command-line client.
    Client(sealpost_client::cli::ClientArgs),
    /// Start a ready-to-use demo organisation on loopback with two enrolled users.
    Demo {
        /// Where the demo keeps its data (reused if it exists).
        #[arg(long, default_value = "sealpost-demo")]
        data: PathBuf,
        /// Address to listen on; if it is taken, a free port is used.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,sealpost=info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = cli.log_json
        || matches!(&cli.command, Command::Node(c) if sealpost::cli::wants_json_log(c));
    if json {
        fmt.json().init();
    } else {
        fmt.init();
    }
    let result = match cli.command {
        Command::Node(command) => sealpost::cli::run(command),
        Command::Client(args) => block_on(sealpost_client::cli::run(args)),
        Command::Demo { data, http } => block_on(demo::run(&data, http)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn block_on(work: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(work)
}
