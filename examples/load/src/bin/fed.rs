//! Federation benchmark: two real nodes on loopback, alice@alpha.test → bob@beta.test.
//!
//! Run (the `production` profile: release with fat LTO, as deployed; not part of the tests):
//!
//! ```sh
//! cargo build --profile production -p sealpost-bin -p sealpost-load
//! target/production/sealpost-fed-bench
//! ```
//!
//! It initialises two nodes in a fresh directory (on disk, `synchronous=FULL`), starts each as
//! its own `sealpost serve` process (so that each node's memory can be read from `/proc`),
//! peers them both ways with `sealpost admin peer add --from URL --yes`, enrols alice at alpha
//! and bob at beta, and measures three things:
//!
//! 1. **Throughput**: `--count` pre-sealed 4 KiB messages submitted to alpha with
//!    `--concurrency` requests in flight; sustained federated messages/s = messages durable at
//!    beta per second, from the first submission to the last message stored at beta (and the
//!    steady-state rate between 10 % and 90 % of them).
//! 2. **Latency** at an offered `--rate` messages/s (open loop: message *i* is submitted at
//!    *t0 + i/rate*, whatever happened to the others) for `--latency-secs`: from acceptance at
//!    alpha (the moment alpha's submit response returns) to durable storage at beta.
//! 3. **One large attachment** (`--attachment-mib`, 1 GiB by default): sealed and uploaded by
//!    the client (streamed, not timed), then timed from acceptance at alpha to durable storage
//!    at beta; MB/s over that phase and each node's resident memory before, after and at peak.
//!
//! "Durable at beta" is observed by polling beta's database read-only (WAL readers do not block
//! the writer) about every millisecond for new `federation.received` entries of the transaction
//! log, which beta writes in the same commit as the received message; the poll interval and the
//! read's duration (printed) bound how late an arrival can be seen.
//!
//! At the end it appends the run's record (date, commit, command, host, each phase's figures)
//! as one JSON line to `--results` (`examples/load/results.jsonl`; `--no-results` to skip).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use sealpost_client::{Client, Outgoing, Sealed, Session};
use sealpost_proto::KdfParams;
use sealpost_testkit::{NodeProcess, run_ok};

#[path = "../shared.rs"]
mod shared;
use shared::{
    DiskProbe, MachineCpu, ResultsArgs, Submitter, cpu_time, nproc, percentile, proc_status_kib,
    round1, round2,
};

#[derive(Parser, Debug)]
#[command(about = "Benchmark federation between two Sealpost nodes on loopback")]
struct Args {
    /// Messages for the throughput phase.
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    /// Submissions in flight at once in the throughput phase.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Plaintext body size in bytes.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Offered load of the latency phase, messages per second.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Length of the latency phase in seconds.
    #[arg(long, default_value_t = 10)]
    latency_secs: u32,
    /// Size of the large attachment in MiB (0: skip that phase).
    #[arg(long, default_value_t = 1024)]
    attachment_mib: u64,
    /// Skip the throughput phase.
    #[arg(long)]
    skip_throughput: bool,
    /// Skip the latency phase.
    #[arg(long)]
    skip_latency: bool,
    /// Where the nodes' data directories go (default: a temporary directory under $TMPDIR).
    /// Must be a real disk for the figures to mean anything (not tmpfs).
    #[arg(long)]
    work: Option<PathBuf>,
    /// The `sealpost` binary (default: next to this tool).
    #[arg(long)]
    node_bin: Option<PathBuf>,
    /// Give up waiting for any one phase after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    #[command(flatten)]
    results: ResultsArgs,
}

// Targets of issue 4 on the 2-core machine.
const TARGET_MSGS_PER_SEC: f64 = 3000.0;
const TARGET_P50_MS: f64 = 5.0;
const TARGET_P99_MS: f64 = 25.0;
const TARGET_MB_PER_SEC: f64 = 200.0;
const TARGET_RSS_GROWTH_MB: f64 = 64.0;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn verdict(ok: bool) -> &'static str {
    if ok { "MET" } else { "NOT MET" }
}

/// One node: its data directory, its `serve` process and its HTTP URL.
struct NodeProc {
    name: &'static str,
    data: PathBuf,
    process: NodeProcess,
    url: String,
}

impl NodeProc {
    fn start(bin: &Path, name: &'static str, domain: &str, data: PathBuf) -> anyhow::Result<Self> {
        sealpost_testkit::init_node(bin, &data, domain)?;
        let (process, url) = NodeProcess::serve(bin, &data, |c| {
            // With RUST_BACKTRACE set (developer shells often have it), every error value the
            // node creates and discards captures a backtrace: ~10 % of alpha's CPU in a
            // profile. A production node runs without it.
            c.env_remove("RUST_BACKTRACE")
                .env_remove("RUST_LIB_BACKTRACE")
                // One address stands for many clients (`--concurrency` submitters and more).
                .env("SEALPOST__HTTP__MAX_CONNECTIONS_PER_IP", "4096")
                // A 1 GiB attachment is over the default message limit (256 MiB).
                .env(
                    "SEALPOST__LIMITS__MAX_MESSAGE_BYTES",
                    (4u64 << 30).to_string(),
                )
                .env(
                    "SEALPOST__LIMITS__MAX_PENDING_UPLOAD_BYTES",
                    (4u64 << 30).to_string(),
                );
        })?;
        Ok(NodeProc {
            name,
            data,
            process,
            url,
        })
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }

    fn admin(&self, bin: &Path, args: &[&str]) -> anyhow::Result<String> {
        let d = self.data.to_str().context("utf-8 path")?;
        let mut argv = vec!["admin", "--data", d];
        argv.extend_from_slice(args);
        run_ok(bin, &argv, &[])
    }

    fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:").unwrap_or(0)
    }

    fn hwm_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:").unwrap_or(0)
    }
}

/// Watches beta's database for messages stored from peers: the moment each message ID was
/// first seen there.
struct Arrivals {
    seen: Mutex<HashMap<String, Instant>>,
    count: AtomicU64,
    stop: AtomicBool,
    polls: AtomicU64,
    poll_nanos: AtomicU64,
    max_poll_nanos: AtomicU64,
}

impl Arrivals {
    fn watch(db: PathBuf) -> anyhow::Result<Arc<Arrivals>> {
        let conn = rusqlite::Connection::open_with_flags(
            &db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let a = Arc::new(Arrivals {
            seen: Mutex::default(),
            count: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            polls: AtomicU64::new(0),
            poll_nanos: AtomicU64::new(0),
            max_poll_nanos: AtomicU64::new(0),
        });
        let me = a.clone();
        std::thread::spawn(move || {
            let mut last: i64 = 0;
            let mut stmt = conn
                .prepare(
                    "SELECT seq, subject FROM txlog WHERE seq > ?1 AND kind = 'federation.received' ORDER BY seq",
                )
                .expect("poll statement");
            while !me.stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let rows: Vec<(i64, String)> = match stmt
                    .query_map([last], |r| Ok((r.get(0)?, r.get(1)?)))
                    .and_then(|rows| rows.collect())
                {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("polling beta's database: {e}");
                        Vec::new()
                    }
                };
                let now = Instant::now();
                if !rows.is_empty() {
                    let mut seen = me.seen.lock().expect("seen");
                    for (seq, id) in rows {
                        last = last.max(seq);
                        seen.entry(id).or_insert(now);
                    }
                    me.count.store(seen.len() as u64, Ordering::Release);
                }
                let took = now.duration_since(t).as_nanos() as u64;
                me.polls.fetch_add(1, Ordering::Relaxed);
                me.poll_nanos.fetch_add(took, Ordering::Relaxed);
                me.max_poll_nanos.fetch_max(took, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        Ok(a)
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    fn at(&self, id: &str) -> Option<Instant> {
        self.seen.lock().expect("seen").get(id).copied()
    }

    fn reset_poll_stats(&self) {
        self.polls.store(0, Ordering::Relaxed);
        self.poll_nanos.store(0, Ordering::Relaxed);
        self.max_poll_nanos.store(0, Ordering::Relaxed);
    }

    /// (mean time between polls, mean read time, max read time)
    fn poll_stats(&self, over: Duration) -> (Duration, Duration, Duration) {
        let n = self.polls.load(Ordering::Relaxed).max(1);
        (
            over / n as u32,
            Duration::from_nanos(self.poll_nanos.load(Ordering::Relaxed) / n),
            Duration::from_nanos(self.max_poll_nanos.load(Ordering::Relaxed)),
        )
    }

    async fn wait_for_count(&self, n: u64, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while self.count() < n {
            if Instant::now() > deadline {
                bail!(
                    "only {} of {n} messages reached beta within {timeout:?}",
                    self.count()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }
}

/// Samples each node's VmRSS every few milliseconds and keeps the maximum.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peaks: Arc<Vec<AtomicU64>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pids: Vec<u32>) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peaks: Arc<Vec<AtomicU64>> = Arc::new(pids.iter().map(|_| AtomicU64::new(0)).collect());
        let (s, p) = (stop.clone(), peaks.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for (i, pid) in pids.iter().enumerate() {
                    if let Some(k) = proc_status_kib(*pid, "VmRSS:") {
                        p[i].fetch_max(k, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        RssSampler {
            stop,
            peaks,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peaks
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .collect()
    }
}

fn body_text(size: usize) -> String {
    (0..size)
        .map(|i| (b'a' + ((i * 7919) % 26) as u8) as char)
        .collect()
}

/// Pre-seals `n` messages from alice to bob (envelope request, sign, encrypt): not timed.
async fn pre_seal(session: &Arc<Session>, n: usize, size: usize) -> anyhow::Result<Vec<Sealed>> {
    let body = body_text(size);
    let to = vec!["bob@beta.test".to_owned()];
    let mut sealed = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(256) {
        let mut envs = Vec::with_capacity(chunk.len());
        for _ in chunk {
            envs.push(session.envelope(&to).await?);
        }
        let mut tasks = Vec::new();
        for (env, certs) in envs {
            let (s, body) = (session.clone(), body.clone());
            tasks.push(tokio::task::spawn_blocking(move || {
                s.seal_text(&env, &certs, "fed-bench", &body)
            }));
        }
        for t in tasks {
            sealed.push(t.await??);
        }
    }
    Ok(sealed)
}

/// Writes `mib` MiB of incompressible pseudo-random bytes (like a scanned document or an
/// archive: compression gains nothing).
fn write_random_file(path: &Path, mib: u64) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for chunk in buf.chunks_exact_mut(8) {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            chunk.copy_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        f.write_all(&buf)?;
    }
    f.flush()?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    let bin = shared::node_bin(args.node_bin.as_ref())?;
    let dir = match &args.work {
        Some(w) => tempfile::tempdir_in(w)?,
        None => tempfile::tempdir()?,
    };
    let timeout = Duration::from_secs(args.timeout_secs);
    let load_at_start = loadavg();

    let alpha = NodeProc::start(&bin, "alpha", "alpha.test", dir.path().join("alpha"))?;
    let beta = NodeProc::start(&bin, "beta", "beta.test", dir.path().join("beta"))?;
    alpha.admin(
        &bin,
        &["peer", "add", "beta.test", "--from", &beta.url, "--yes"],
    )?;
    beta.admin(
        &bin,
        &["peer", "add", "alpha.test", "--from", &alpha.url, "--yes"],
    )?;

    let mut sessions = Vec::new();
    for (node, addr, pw) in [
        (&alpha, "alice@alpha.test", "alice password"),
        (&beta, "bob@beta.test", "bob password!!"),
    ] {
        let out = node.admin(&bin, &["user", "add", addr])?;
        let invite = out.lines().last().context("invite")?.trim().to_owned();
        let ca = Client::new(&node.url)
            .enroll(&invite, addr, None, pw.as_bytes(), KdfParams::MIN)
            .await?
            .ca_fingerprint;
        sessions.push(
            Client::new(&node.url)
                .login(addr, pw.as_bytes(), None, Some(&ca))
                .await?,
        );
    }
    let alice = Arc::new(sessions.remove(0));

    println!("sealpost federation benchmark");
    println!("command:     {command_line}");
    println!(
        "alpha        {} (pid {}), beta {} (pid {}), data in {}",
        alpha.url,
        alpha.pid(),
        beta.url,
        beta.pid(),
        dir.path().display()
    );
    // The peering reaches the running nodes within their peer-table poll; the first envelope
    // request for bob asks beta's directory over QUIC.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match alice.envelope(&["bob@beta.test".to_owned()]).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => bail!("alpha cannot resolve bob@beta.test over federation: {e}"),
        }
    }
    // One message through, so that connections, caches and certificates are warm.
    let warm = pre_seal(&alice, 1, args.size).await?;
    let arrivals = Arrivals::watch(beta.data.join("sealpost.db"))?;
    alice.submit(&warm[0].request).await?;
    arrivals.wait_for_count(1, Duration::from_secs(30)).await?;
    let mut expected = 1u64;
    let mut report = Vec::<String>::new();
    // The same figures for the results file, by phase.
    let mut figures = serde_json::Map::new();

    // 1. Throughput.
    if !args.skip_throughput {
        println!(
            "\n[throughput] pre-sealing {} messages of {} bytes...",
            args.count, args.size
        );
        let t = Instant::now();
        let sealed = pre_seal(&alice, args.count, args.size).await?;
        println!("pre-sealed in {:.1} s", t.elapsed().as_secs_f64());
        let ids: Vec<String> = sealed.iter().map(|s| s.message_id.clone()).collect();
        let sealed = sealed
            .iter()
            .map(|s| Ok(serde_json::to_vec(&s.request)?.into()))
            .collect::<anyhow::Result<Vec<bytes::Bytes>>>()?;
        let rss = RssSampler::start(vec![alpha.pid(), beta.pid()]);
        let cpu0 = (cpu_time(alpha.pid()), cpu_time(beta.pid()));
        let (machine0, disk) = (MachineCpu::now(), DiskProbe::start(dir.path()));
        let queue = Arc::new(Mutex::new(sealed));
        let started = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..args.concurrency {
            let q = queue.clone();
            let mut conn = Submitter::connect(&alpha.url, alice.token()).await?;
            workers.push(tokio::spawn(async move {
                let mut errors = 0usize;
                loop {
                    let Some(m) = q.lock().expect("queue").pop() else {
                        break;
                    };
                    match conn.submit(m).await {
                        Ok(r) if !r.duplicate => {}
                        Ok(_) => errors += 1,
                        Err(e) => {
                            errors += 1;
                            if errors < 3 {
                                eprintln!("submit failed: {e}");
                            }
                        }
                    }
                }
                errors
            }));
        }
        let mut errors = 0;
        for w in workers {
            errors += w.await?;
        }
        let accepted_in = started.elapsed();
        if errors > 0 {
            bail!("{errors} submissions failed");
        }
        expected += args.count as u64;
        arrivals.wait_for_count(expected, timeout).await?;
        let mut at: Vec<Instant> = ids
            .iter()
            .map(|id| arrivals.at(id).context("arrival"))
            .collect::<anyhow::Result<_>>()?;
        at.sort();
        let peaks = rss.finish();
        let cpu = (
            cpu_time(alpha.pid()) - cpu0.0,
            cpu_time(beta.pid()) - cpu0.1,
        );
        let total = at[at.len() - 1].duration_since(started);
        let rate = args.count as f64 / total.as_secs_f64();
        let (i10, i90) = (at.len() / 10, at.len() * 9 / 10);
        let steady = (i90 - i10) as f64 / at[i90].duration_since(at[i10]).as_secs_f64();
        let accept_rate = args.count as f64 / accepted_in.as_secs_f64();
        println!(
            "accepted at alpha: {} in {:.2} s ({accept_rate:.0}/s); all durable at beta after {:.2} s",
            args.count,
            accepted_in.as_secs_f64(),
            total.as_secs_f64()
        );
        report.push(format!(
            "sustained federated throughput ({} B bodies, {} messages, {} submissions in flight):\n  \
             {rate:.0} messages/s end to end (first submission at alpha → last durable at beta), \
             {steady:.0} messages/s steady state (10 %→90 % of arrivals at beta); \
             alpha accepted {accept_rate:.0}/s\n  \
             target ≥ {TARGET_MSGS_PER_SEC:.0}/s: {}\n  \
             CPU used by the node processes: alpha {:.2} ms per message ({:.0} % of one core over the phase), \
             beta {:.2} ms per message ({:.0} %)\n  \
             peak RSS during the phase: alpha {:.1} MiB, beta {:.1} MiB",
            args.size,
            args.count,
            args.concurrency,
            verdict(rate >= TARGET_MSGS_PER_SEC),
            ms(cpu.0) / args.count as f64,
            cpu.0.as_secs_f64() * 100.0 / total.as_secs_f64(),
            ms(cpu.1) / args.count as f64,
            cpu.1.as_secs_f64() * 100.0 / total.as_secs_f64(),
            mib(peaks[0]),
            mib(peaks[1]),
        ));
        let (machine, disk) = with_load(&mut report, &machine0, disk);
        figures.insert(
            "throughput".into(),
            serde_json::json!({
                "messages": args.count,
                "concurrency": args.concurrency,
                "body_bytes": args.size,
                "messages_per_s": rate.round(),
                "steady_messages_per_s": steady.round(),
                "accepted_per_s": accept_rate.round(),
                "cpu_ms_per_message": {
                    "alpha": round2(ms(cpu.0) / args.count as f64),
                    "beta": round2(ms(cpu.1) / args.count as f64),
                },
                "peak_rss_mib": { "alpha": round1(mib(peaks[0])), "beta": round1(mib(peaks[1])) },
                "machine": machine,
                "disk": disk,
            }),
        );
    }

    // 2. Latency at an offered rate.
    if !args.skip_latency {
        let n = (args.rate as usize) * (args.latency_secs as usize);
        println!(
            "\n[latency] pre-sealing {n} messages ({} /s for {} s)...",
            args.rate, args.latency_secs
        );
        let sealed = pre_seal(&alice, n, args.size).await?;
        let ids: Vec<String> = sealed.iter().map(|s| s.message_id.clone()).collect();
        let accepted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        // Open loop: submissions are not held back by slow answers, up to this many in flight.
        let in_flight = Arc::new(tokio::sync::Semaphore::new(1024));
        let mut behind = Duration::ZERO;
        arrivals.reset_poll_stats();
        let (machine0, disk) = (MachineCpu::now(), DiskProbe::start(dir.path()));
        let started = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
        let mut tasks = Vec::with_capacity(n);
        for (i, m) in sealed.into_iter().enumerate() {
            let due = started + interval * i as u32;
            tokio::time::sleep_until(due.into()).await;
            let permit = in_flight.clone().acquire_owned().await?;
            behind = behind.max(Instant::now().saturating_duration_since(due));
            let (s, acc) = (alice.clone(), accepted.clone());
            tasks.push(tokio::spawn(async move {
                let r = s.submit(&m.request).await;
                let t = Instant::now();
                drop(permit);
                let r = r?;
                anyhow::ensure!(!r.duplicate, "duplicate submission");
                acc.lock().expect("accepted").insert(m.message_id, t);
                Ok::<_, anyhow::Error>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let offered_over = started.elapsed();
        expected += n as u64;
        arrivals.wait_for_count(expected, timeout).await?;
        let phase = started.elapsed();
        let accepted = accepted.lock().expect("accepted").clone();
        let mut lat = Vec::with_capacity(n);
        let mut early = 0usize;
        for id in &ids {
            let a = accepted[id];
            let d = arrivals.at(id).context("arrival")?;
            if d < a {
                early += 1;
            }
            lat.push(d.saturating_duration_since(a));
        }
        lat.sort();
        let (p50, p99) = (percentile(&lat, 0.50), percentile(&lat, 0.99));
        let (period, read, read_max) = arrivals.poll_stats(phase);
        report.push(format!(
            "latency, acceptance at alpha → durable at beta, offered {} messages/s open loop for {} s ({n} messages, \
             submitted over {:.2} s, generator at most {:.1} ms behind schedule):\n  \
             p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms{}\n  \
             target p50 ≤ {TARGET_P50_MS} ms: {}; p99 ≤ {TARGET_P99_MS} ms: {}\n  \
             method: acceptance = alpha's submit response returns to the client; durable = beta's \
             `federation.received` log entry (same commit as the message) seen by a read-only poller \
             (one poll every {:.2} ms on average, a read takes {:.3} ms on average, {:.2} ms at most): \
             arrivals are seen up to ~{:.1} ms late, so these figures are high by about half that on average",
            args.rate,
            args.latency_secs,
            offered_over.as_secs_f64(),
            ms(behind),
            ms(p50),
            ms(percentile(&lat, 0.90)),
            ms(p99),
            ms(lat.last().copied().unwrap_or_default()),
            if early > 0 {
                format!(" ({early} seen at beta before alpha's answer reached the client: counted as 0)")
            } else {
                String::new()
            },
            verdict(ms(p50) <= TARGET_P50_MS),
            verdict(ms(p99) <= TARGET_P99_MS),
            ms(period),
            ms(read),
            ms(read_max),
            ms(period + read),
        ));
        let (machine, disk) = with_load(&mut report, &machine0, disk);
        figures.insert(
            "latency".into(),
            serde_json::json!({
                "rate_per_s": args.rate,
                "seconds": args.latency_secs,
                "messages": n,
                "p50_ms": round2(ms(p50)),
                "p90_ms": round2(ms(percentile(&lat, 0.90))),
                "p99_ms": round2(ms(p99)),
                "max_ms": round2(ms(lat.last().copied().unwrap_or_default())),
                "seen_late_up_to_ms": round1(ms(period + read)),
                "machine": machine,
                "disk": disk,
            }),
        );
    }

    // 3. One large attachment.
    if args.attachment_mib > 0 {
        let work = dir.path().join("client");
        std::fs::create_dir_all(&work)?;
        let file = work.join("large.bin");
        println!(
            "\n[attachment] writing {} MiB of random bytes...",
            args.attachment_mib
        );
        write_random_file(&file, args.attachment_mib)?;
        let before_send = (alpha.rss_kib(), beta.rss_kib());
        println!("sealing and uploading to alpha (streamed; not timed)...");
        let rss_upload = RssSampler::start(vec![alpha.pid(), beta.pid()]);
        let (machine0, disk) = (MachineCpu::now(), DiskProbe::start(dir.path()));
        let t = Instant::now();
        let msg = Outgoing {
            to: vec!["bob@beta.test".to_owned()],
            subject: "large attachment".into(),
            body: "see the attachment".into(),
            attachments: vec![file.clone()],
            pickup_kdf: None,
        };
        // `send` returns when alpha has accepted the message: federation starts then.
        let sent = alice.send(&msg, &work).await?;
        let accepted = Instant::now();
        let upload_peaks = rss_upload.finish();
        let rss_fed = RssSampler::start(vec![alpha.pid(), beta.pid()]);
        let at_accept = (alpha.rss_kib(), beta.rss_kib());
        println!(
            "sealed and uploaded in {:.1} s; waiting for beta...",
            accepted.duration_since(t).as_secs_f64()
        );
        std::fs::remove_file(&file)?;
        expected += 1;
        arrivals.wait_for_count(expected, timeout).await?;
        let durable = arrivals.at(&sent.message_id).context("arrival")?;
        let fed_peaks = rss_fed.finish();
        let after = (alpha.rss_kib(), beta.rss_kib());
        let hwm = (alpha.hwm_kib(), beta.hwm_kib());
        let bytes: u64 = {
            let db = rusqlite::Connection::open_with_flags(
                beta.data.join("sealpost.db"),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )?;
            db.query_row(
                "SELECT size FROM messages WHERE id = ?1",
                [&sent.message_id],
                |r| r.get::<_, i64>(0),
            )? as u64
        };
        let took = durable.saturating_duration_since(accepted);
        let mbps = bytes as f64 / 1e6 / took.as_secs_f64();
        let growth = |peak: u64, base: u64| peak.saturating_sub(base) as f64 * 1024.0 / 1e6;
        let g_alpha = growth(fed_peaks[0], at_accept.0);
        let g_beta = growth(fed_peaks[1], at_accept.1);
        report.push(format!(
            "one {} MiB attachment ({bytes} bytes of ciphertext in all), acceptance at alpha → durable at beta:\n  \
             {:.2} s, {mbps:.0} MB/s ({:.0} MiB/s); target ≥ {TARGET_MB_PER_SEC:.0} MB/s: {}\n  \
             RSS (MiB)     before upload  at acceptance  peak in transfer  after  growth in transfer  peak while uploading  VmHWM (process life)\n  \
             alpha         {:>13.1}  {:>13.1}  {:>16.1}  {:>5.1}  {:>15.1} MB  {:>20.1}  {:>20.1}\n  \
             beta          {:>13.1}  {:>13.1}  {:>16.1}  {:>5.1}  {:>15.1} MB  {:>20.1}  {:>20.1}\n  \
             target RSS growth ≤ {TARGET_RSS_GROWTH_MB:.0} MB on each node: {}",
            args.attachment_mib,
            took.as_secs_f64(),
            bytes as f64 / 1048576.0 / took.as_secs_f64(),
            verdict(mbps >= TARGET_MB_PER_SEC),
            mib(before_send.0),
            mib(at_accept.0),
            mib(fed_peaks[0]),
            mib(after.0),
            g_alpha,
            mib(upload_peaks[0]),
            mib(hwm.0),
            mib(before_send.1),
            mib(at_accept.1),
            mib(fed_peaks[1]),
            mib(after.1),
            g_beta,
            mib(upload_peaks[1]),
            mib(hwm.1),
            verdict(g_alpha <= TARGET_RSS_GROWTH_MB && g_beta <= TARGET_RSS_GROWTH_MB),
        ));
        let (machine, disk) = with_load(&mut report, &machine0, disk);
        figures.insert(
            "attachment".into(),
            serde_json::json!({
                "mib": args.attachment_mib,
                "ciphertext_bytes": bytes,
                "seconds": round2(took.as_secs_f64()),
                "mb_per_s": mbps.round(),
                "rss_growth_mb": { "alpha": round1(g_alpha), "beta": round1(g_beta) },
                "machine": machine,
                "disk": disk,
            }),
        );
    }
    arrivals.stop.store(true, Ordering::Relaxed);

    println!("\n===== results ({} CPUs) =====", nproc());
    println!("command: {command_line}");
    println!(
        "nodes: `sealpost serve` processes {} and {} on loopback (HTTP + QUIC; RUST_LOG=warn, no RUST_BACKTRACE), SQLite synchronous=FULL on {}",
        alpha.name,
        beta.name,
        dir.path().display()
    );
    println!(
        "note: this tool (the clients: submissions and the poller) shares the CPUs with both nodes"
    );
    let load_at_end = loadavg();
    println!(
        "load average at the start: {load_at_start}; at the end: {load_at_end} (other work on the machine skews the figures)",
    );
    for r in &report {
        println!("\n{r}");
    }
    figures.insert(
        "load_average".into(),
        serde_json::json!({ "start": load_at_start, "end": load_at_end }),
    );
    args.results
        .append("sealpost-fed-bench", serde_json::Value::Object(figures));
    Ok(())
}

/// Adds the machine's load and the disk's stalls over the phase to its report; the same as
/// (machine, disk) figures for the results file.
fn with_load(
    report: &mut [String],
    machine0: &MachineCpu,
    disk: DiskProbe,
) -> (serde_json::Value, serde_json::Value) {
    let disk = disk.finish();
    let machine = MachineCpu::now();
    if let Some(r) = report.last_mut() {
        r.push_str(&format!(
            "\n  load average (1, 5, 15 min) after the phase: {}; {}\n  {disk}",
            loadavg(),
            machine.since(machine0)
        ));
    }
    (machine.json_since(machine0), disk.figures)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
