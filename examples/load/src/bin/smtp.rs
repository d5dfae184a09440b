//! SMTP-in benchmark: how many 4 KiB mails a Sealpost node's SMTP door accepts per second,
//! durably (each encrypted to its recipient and committed before the 250), against a
//! throw-away Postfix (Debian's, its queue fsynced before the 250) on this machine, in the
//! same run, alternating.
//!
//! ```sh
//! cargo build --profile production -p sealpost-bin -p sealpost-load
//! target/production/sealpost-smtp-bench --count 10000 --pairs 2
//! TMPDIR=/dev/shm target/production/sealpost-smtp-bench --count 10000 --pairs 2  # tmpfs
//! ```
//!
//! Each side gets a fresh data directory (or Postfix queue) under `TMPDIR` and the same mail
//! bytes, sent by the same client (lettre's SMTP connection, one per worker, `--concurrency`
//! workers, each mail its own MAIL/RCPT/DATA). Needs root (Postfix's master) and Debian's
//! `postfix`. Appends one JSON line per run to `--results`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use lettre::address::Envelope;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use sealpost_client::Client;
use sealpost_proto::KdfParams;
use sealpost_testkit::postfix::{Postfix, free_port};
use sealpost_testkit::{NodeProcess, run_ok};

// Shared with the other load tools; this one uses only a few of its helpers.
#[allow(dead_code)]
#[path = "../shared.rs"]
mod shared;
use shared::{ResultsArgs, cpu_time, round1};

#[derive(Parser, Debug)]
#[command(about = "Mails accepted per second over SMTP: Sealpost's SMTP door against Postfix")]
struct Args {
    /// Mails per run.
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// SMTP connections sending at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Body size in bytes.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Pairs of runs (Sealpost, Postfix), the order alternating.
    #[arg(long, default_value_t = 2)]
    pairs: usize,
    /// The `sealpost` binary (default: next to this tool).
    #[arg(long)]
    node_bin: Option<PathBuf>,
    #[command(flatten)]
    results: ResultsArgs,
}

/// One run's figures.
struct Run {
    rate: f64,
    secs: f64,
    /// Server CPU per mail (Sealpost: the node process; Postfix: not measured).
    cpu_us: Option<f64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = shared::node_bin(args.node_bin.as_ref())?;
    let body: String = (0..args.size)
        .map(|i| {
            if i % 76 == 75 {
                '\n'
            } else {
                (b'a' + ((i * 7919) % 26) as u8) as char
            }
        })
        .collect();
    let mail = format!(
        "From: Erin <erin@outside.test>\r\nTo: recipient@load.test\r\nSubject: load\r\n\
         Date: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <load@outside.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{}\r\n",
        body.replace('\n', "\r\n")
    );
    let mail = Arc::new(mail.into_bytes());
    println!(
        "{} mails of {} bytes, {} connections, data under {}",
        args.count,
        mail.len(),
        args.concurrency,
        std::env::temp_dir().display()
    );
    let mut figures = Vec::new();
    for pair in 0..args.pairs {
        let order = if pair % 2 == 0 {
            ["sealpost", "postfix"]
        } else {
            ["postfix", "sealpost"]
        };
        for side in order {
            let run = match side {
                "sealpost" => sealpost(&bin, &args, mail.clone()).await?,
                _ => postfix(&args, mail.clone()).await?,
            };
            println!(
                "pair {} {side:>8}: {:.0} mails/s ({:.2} s){}",
                pair + 1,
                run.rate,
                run.secs,
                run.cpu_us
                    .map(|c| format!(", node CPU {c:.0} µs/mail"))
                    .unwrap_or_default()
            );
            figures.push(serde_json::json!({
                "pair": pair + 1, "server": side, "mails_per_sec": round1(run.rate),
                "secs": round1(run.secs), "node_cpu_us_per_mail": run.cpu_us.map(round1),
            }));
        }
    }
    args.results.append(
        "sealpost-smtp-bench",
        serde_json::json!({
            "count": args.count, "concurrency": args.concurrency, "size": args.size,
            "tmpdir": std::env::temp_dir(), "runs": figures,
        }),
    );
    Ok(())
}

/// A fresh node with its SMTP door and one recipient, then the mails.
async fn sealpost(bin: &std::path::Path, args: &Args, mail: Arc<Vec<u8>>) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("node");
    let d = data.to_str().context("utf-8 path")?;
    sealpost_testkit::init_node(bin, &data, "load.test")?;
    let port = free_port();
    let (node, url) = NodeProcess::serve(bin, &data, |c| {
        c.env("SEALPOST__SMTP_IN__ENABLED", "true")
            .env("SEALPOST__SMTP_IN__LISTEN", format!("127.0.0.1:{port}"))
            .env("SEALPOST__SMTP_IN__MAX_CONNECTIONS_PER_IP", "4096")
            .env("SEALPOST__SMTP_IN__CONNECTIONS_PER_IP_PER_MINUTE", "100000")
            .env("SEALPOST__SMTP_IN__MESSAGES_PER_IP_PER_MINUTE", "10000000")
            .env("SEALPOST__FEDERATION__ENABLED", "false");
    })?;
    let out = run_ok(
        bin,
        &["admin", "--data", d, "user", "add", "recipient@load.test"],
        &[],
    )?;
    let invite = out.lines().last().context("invite")?.trim().to_owned();
    Client::new(&url)
        .enroll(
            &invite,
            "recipient@load.test",
            None,
            b"recipient password",
            KdfParams::MIN,
        )
        .await?;
    let cpu0 = cpu_time(node.pid());
    let (secs, sent) = send_all(port, args, mail).await?;
    let cpu = cpu_time(node.pid()) - cpu0;
    let stored = count_stored(&data)?;
    anyhow::ensure!(
        stored == sent,
        "the node stored {stored} mails of {sent} answered 250"
    );
    drop(node);
    Ok(Run {
        rate: sent as f64 / secs,
        secs,
        cpu_us: Some(cpu.as_secs_f64() * 1e6 / sent as f64),
    })
}

/// A fresh Postfix delivering to one Maildir, then the mails.
async fn postfix(args: &Args, mail: Arc<Vec<u8>>) -> anyhow::Result<Run> {
    let pf = Postfix::start(&["recipient@load.test"]).await?;
    let (secs, sent) = send_all(pf.port, args, mail).await?;
    drop(pf);
    Ok(Run {
        rate: sent as f64 / secs,
        secs,
        cpu_us: None,
    })
}

/// Mails in the node's database that came in over SMTP.
fn count_stored(data: &std::path::Path) -> anyhow::Result<usize> {
    let db = rusqlite::Connection::open_with_flags(
        data.join("sealpost.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let n: i64 = db.query_row(
        "SELECT COUNT(*) FROM messages WHERE arrival IS NOT NULL",
        [],
        |r| r.get(0),
    )?;
    Ok(n as usize)
}

/// Sends `count` mails over `concurrency` connections; every one must be answered 250.
/// Returns the seconds from the first connection to the last answer, and the mails sent.
async fn send_all(port: u16, args: &Args, mail: Arc<Vec<u8>>) -> anyhow::Result<(f64, usize)> {
    let next = Arc::new(AtomicUsize::new(0));
    let envelope = Envelope::new(
        Some("erin@outside.test".parse()?),
        vec!["recipient@load.test".parse()?],
    )?;
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (next, mail, envelope, count) =
            (next.clone(), mail.clone(), envelope.clone(), args.count);
        workers.push(tokio::spawn(async move {
            let hello = ClientId::Domain("client.outside.test".into());
            let mut conn = AsyncSmtpConnection::connect_tokio1(
                ("127.0.0.1", port),
                Some(Duration::from_secs(30)),
                &hello,
                None,
                None,
            )
            .await?;
            let mut sent = 0usize;
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let r = conn.send(&envelope, &mail).await?;
                anyhow::ensure!(r.is_positive(), "not taken: {r:?}");
                sent += 1;
            }
            let _ = conn.quit().await;
            Ok::<_, anyhow::Error>(sent)
        }));
    }
    let mut sent = 0;
    for w in workers {
        sent += w.await??;
    }
    Ok((start.elapsed().as_secs_f64(), sent))
}
