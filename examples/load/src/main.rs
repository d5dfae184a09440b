//! Load tool: how many sealed messages a node accepts per second, durably.
//!
//! Run (the `production` profile, as deployed; not part of the tests):
//!
//! ```sh
//! cargo build --profile production -p sealpost-bin -p sealpost-load
//! target/production/sealpost-load --count 20000 --concurrency 64
//! ```
//!
//! It starts a real `sealpost serve` process on loopback with a fresh data directory (SQLite
//! with `synchronous=FULL`), enrols a sender and a recipient, pre-seals `--count` messages of
//! `--size` bytes (envelope request, sign, encrypt: not timed), then submits them with
//! `--concurrency` requests in flight and prints accepted messages per second, acceptance
//! latency percentiles, and the node's peak resident memory (VmHWM), and appends the run's
//! record (date, commit, command, host, figures) as one JSON line to `--results`
//! (`examples/load/results.jsonl`; `--no-results` to skip).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use sealpost_client::{Client, Sealed, Session};
use sealpost_proto::KdfParams;
use sealpost_testkit::{NodeProcess, run_ok};

mod shared;
use shared::{
    DiskProbe, MachineCpu, ResultsArgs, Submitter, cpu_time, percentile, proc_status_kib, round1,
    round2,
};

#[derive(Parser, Debug)]
#[command(about = "Submit pre-sealed messages to a Sealpost node and measure acceptance")]
struct Args {
    /// Messages to submit.
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    /// Submissions in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Plaintext body size in bytes.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// The `sealpost` binary (default: next to this tool).
    #[arg(long)]
    node_bin: Option<PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    #[command(flatten)]
    results: ResultsArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = shared::node_bin(args.node_bin.as_ref())?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("node");
    let d = data.to_str().context("utf-8 path")?;
    sealpost_testkit::init_node(&bin, &data, "load.test")?;
    let (node, url) = NodeProcess::serve(&bin, &data, |c| {
        // One address stands for many clients here: 256 envelope requests in parallel while
        // sealing, then `--concurrency` submitters, over the per-address default of 64.
        c.env("SEALPOST__HTTP__MAX_CONNECTIONS_PER_IP", "4096");
    })?;
    let pid = node.pid();

    let mut ca = String::new();
    for (user, pw) in [
        ("sender", "sender password"),
        ("recipient", "recipient password"),
    ] {
        let out = run_ok(
            &bin,
            &[
                "admin",
                "--data",
                d,
                "user",
                "add",
                &format!("{user}@load.test"),
            ],
            &[],
        )?;
        let invite = out.lines().last().context("invite")?.trim().to_owned();
        ca = Client::new(&url)
            .enroll(
                &invite,
                &format!("{user}@load.test"),
                None,
                pw.as_bytes(),
                KdfParams::DEFAULT,
            )
            .await?
            .ca_fingerprint;
    }
    let session: Arc<Session> = Arc::new(
        Client::new(&url)
            .login("sender@load.test", b"sender password", None, Some(&ca))
            .await?,
    );

    println!("node {url} (pid {pid}), data in {}", data.display());
    println!(
        "pre-sealing {} messages of {} bytes...",
        args.count, args.size
    );
    let t0 = Instant::now();
    let body: String = (0..args.size)
        .map(|i| (b'a' + ((i * 7919) % 26) as u8) as char)
        .collect();
    let mut sealed: Vec<Bytes> = Vec::with_capacity(args.count);
    let to = vec!["recipient@load.test".to_owned()];
    for chunk in (0..args.count).collect::<Vec<_>>().chunks(256) {
        // Envelope requests in parallel: each waits for a durable commit at the node.
        let envs =
            futures::future::try_join_all(chunk.iter().map(|_| session.envelope(&to))).await?;
        let mut tasks = Vec::new();
        for (env, certs) in envs {
            let (s, body) = (session.clone(), body.clone());
            tasks.push(tokio::task::spawn_blocking(move || {
                s.seal_text(&env, &certs, "load", &body)
            }));
        }
        for t in tasks {
            let s: Sealed = t.await??;
            // The request body is serialised here, with the sealing: the timed part measures
            // the node, and a client sends each message once anyway.
            sealed.push(serde_json::to_vec(&s.request)?.into());
        }
    }
    let sealed_bytes: usize = sealed.iter().map(Bytes::len).sum();
    println!(
        "pre-sealed in {:.1} s (avg request body {} bytes)",
        t0.elapsed().as_secs_f64(),
        sealed_bytes / args.count.max(1)
    );
    let rss_before = proc_status_kib(pid, "VmHWM:").unwrap_or(0);

    let queue = Arc::new(std::sync::Mutex::new(sealed));
    let cpu_before = (cpu_time(pid), cpu_time(std::process::id()));
    let machine_before = MachineCpu::now();
    let disk = DiskProbe::start(dir.path());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout_secs);
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let q = queue.clone();
        let mut conn = Submitter::connect(&url, session.token()).await?;
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            loop {
                if Instant::now() > deadline {
                    break;
                }
                let Some(m) = q.lock().expect("queue").pop() else {
                    break;
                };
                let t = Instant::now();
                match conn.submit(m).await {
                    Ok(r) if !r.duplicate => lat.push(t.elapsed()),
                    Ok(_) => errors += 1,
                    Err(e) => {
                        errors += 1;
                        if errors < 3 {
                            eprintln!("submit failed: {e}");
                        }
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut latencies = Vec::with_capacity(args.count);
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    let cpu = (
        cpu_time(pid) - cpu_before.0,
        cpu_time(std::process::id()) - cpu_before.1,
    );
    latencies.sort();
    let rss_peak = proc_status_kib(pid, "VmHWM:").unwrap_or(0);
    node.kill9();

    let disk = disk.finish();
    let machine = MachineCpu::now();
    let accepted = latencies.len();
    let rate = accepted as f64 / elapsed.as_secs_f64();
    let (p50, p99, max) = (
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    let per_message = |d: Duration| d.as_secs_f64() * 1e6 / accepted.max(1) as f64;
    let (cpu_node, cpu_tool) = (per_message(cpu.0), per_message(cpu.1));

    println!();
    println!(
        "accepted:    {} of {} ({} errors) in {:.2} s",
        accepted,
        args.count,
        errors,
        elapsed.as_secs_f64()
    );
    println!(
        "throughput:  {rate:.0} messages/s (synchronous=FULL, concurrency {})",
        args.concurrency
    );
    println!("latency:     p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");
    println!(
        "node RSS:    peak {:.1} MiB (before the run {:.1} MiB)",
        rss_peak as f64 / 1024.0,
        rss_before as f64 / 1024.0
    );
    println!("CPU:         node {cpu_node:.0} µs/message, this load tool {cpu_tool:.0} µs/message");
    println!("             {}", machine.since(&machine_before));
    println!("             {disk}");
    args.results.append(
        "sealpost-load",
        serde_json::json!({
            "messages": args.count,
            "accepted": accepted,
            "errors": errors,
            "concurrency": args.concurrency,
            "body_bytes": args.size,
            "seconds": round2(elapsed.as_secs_f64()),
            "messages_per_s": rate.round(),
            "latency_ms": { "p50": round2(p50), "p99": round2(p99), "max": round2(max) },
            "cpu_us_per_message": { "node": cpu_node.round(), "tool": cpu_tool.round() },
            "node_rss_mib": {
                "before": round1(rss_before as f64 / 1024.0),
                "peak": round1(rss_peak as f64 / 1024.0),
            },
            "machine": machine.json_since(&machine_before),
            "disk": disk.figures,
        }),
    );
    if errors > 0 {
        bail!("{errors} submissions failed");
    }
    Ok(())
}
