//! What both load tools need: running the `sealpost` binary, submitting pre-serialised
//! messages, percentiles, reading a process's memory and CPU time from /proc, watching the
//! disk's fsync stalls, and appending each run's record to the results file.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use sealpost_proto::SubmitResponse;

/// The node binary a load tool starts: `--node-bin`, else `sealpost` beside the tool (both
/// built by `cargo build --profile production -p sealpost-bin -p sealpost-load`).
pub fn node_bin(given: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    let bin = match given {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("sealpost"),
    };
    anyhow::ensure!(
        bin.exists(),
        "{} not found: cargo build --profile production -p sealpost-bin -p sealpost-load",
        bin.display()
    );
    Ok(bin)
}

/// The `p` quantile (0..=1) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A `/proc/PID/status` field in KiB (`VmRSS:`, `VmHWM:`).
pub fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: u32) -> Duration {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // The fields after the command name, which is in parentheses and may hold spaces.
            let rest = s.rsplit_once(')')?.1.to_owned();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// The machine's CPU time counters (`/proc/stat`, first line), to tell how much of a run's time
/// the hypervisor gave to other guests.
#[derive(Clone, Copy, Debug, Default)]
pub struct MachineCpu {
    total: u64,
    idle: u64,
    steal: u64,
}

impl MachineCpu {
    pub fn now() -> MachineCpu {
        let line = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned))
            .unwrap_or_default();
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        MachineCpu {
            total: f.iter().take(8).sum(),
            idle: f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0),
            steal: f.get(7).copied().unwrap_or(0),
        }
    }

    /// (idle %, stolen by the hypervisor %) of the machine's CPU time since `before`.
    pub fn percent_since(&self, before: &MachineCpu) -> (f64, f64) {
        let total = self.total.saturating_sub(before.total).max(1) as f64;
        (
            100.0 * self.idle.saturating_sub(before.idle) as f64 / total,
            100.0 * self.steal.saturating_sub(before.steal) as f64 / total,
        )
    }

    /// "idle X %, stolen by the hypervisor Y %" since `before`: a run with much stolen time
    /// measured a busy host rather than Sealpost.
    pub fn since(&self, before: &MachineCpu) -> String {
        let (idle, stolen) = self.percent_since(before);
        format!(
            "machine CPU over the run: idle {idle:.0} %, stolen by the hypervisor {stolen:.0} %"
        )
    }

    /// The same two figures for the results file.
    pub fn json_since(&self, before: &MachineCpu) -> serde_json::Value {
        let (idle, stolen) = self.percent_since(before);
        serde_json::json!({ "idle_pct": round1(idle), "stolen_pct": round1(stolen) })
    }
}

/// Watches the disk the nodes write to while a phase runs: a 4 KiB write and `fdatasync` on a
/// file of its own every 20 ms. The nodes fsync every commit before they answer, and a disk
/// that stalls stalls every fsync on the device at once (seen on this machine: 20-700 ms,
/// every few seconds, with nothing else running), so the messages in flight then wait for it
/// whatever Sealpost does. The probe says whether a phase's slowest messages met such a stall.
pub struct DiskProbe {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<std::io::Result<Vec<Duration>>>,
    path: PathBuf,
}

/// A sync slower than this is counted as a stall.
const STALL: Duration = Duration::from_millis(20);

impl DiskProbe {
    pub fn start(dir: &Path) -> DiskProbe {
        let stop = Arc::new(AtomicBool::new(false));
        let path = dir.join("disk-probe");
        let (s, p) = (stop.clone(), path.clone());
        let thread = std::thread::spawn(move || {
            use std::os::unix::fs::FileExt as _;
            let f = std::fs::File::create(&p)?;
            let block = [0x5au8; 4096];
            let mut syncs = Vec::new();
            while !s.load(Ordering::Relaxed) {
                // Over the same 1 MiB again and again, as a WAL is written after a restart.
                f.write_all_at(&block, (syncs.len() % 256) as u64 * 4096)?;
                let t = Instant::now();
                f.sync_data()?;
                syncs.push(t.elapsed());
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(syncs)
        });
        DiskProbe { stop, thread, path }
    }

    /// The syncs seen since `start`: a line to print and the figures for the results file.
    pub fn finish(self) -> DiskReport {
        self.stop.store(true, Ordering::Relaxed);
        let result = self
            .thread
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the probe thread panicked")));
        let _ = std::fs::remove_file(&self.path);
        let mut syncs = match result {
            Ok(s) if !s.is_empty() => s,
            Ok(_) => {
                return DiskReport::none("disk probe: no sync finished during the phase".into());
            }
            Err(e) => return DiskReport::none(format!("disk probe failed: {e}")),
        };
        let stalls: Vec<Duration> = syncs.iter().copied().filter(|d| *d > STALL).collect();
        let listed = if stalls.is_empty() {
            String::new()
        } else {
            let ms: Vec<String> = stalls.iter().map(|d| d.as_millis().to_string()).collect();
            format!(
                "; in order, ms: {}: while the disk stalls, every commit waits, so the messages \
                 in flight then are late by about as much",
                ms.join(", ")
            )
        };
        syncs.sort();
        let p50_ms = percentile(&syncs, 0.5).as_secs_f64() * 1e3;
        let max_ms = syncs.last().copied().unwrap_or_default().as_secs_f64() * 1e3;
        let line = format!(
            "data disk (one 4 KiB write + fdatasync every 20 ms beside the node processes): {} syncs, \
             p50 {p50_ms:.2} ms, max {max_ms:.1} ms; {} over {} ms ({:.0} ms in all){listed}",
            syncs.len(),
            stalls.len(),
            STALL.as_millis(),
            stalls.iter().sum::<Duration>().as_secs_f64() * 1e3,
        );
        DiskReport {
            line,
            figures: serde_json::json!({
                "syncs": syncs.len(),
                "p50_ms": round2(p50_ms),
                "max_ms": round1(max_ms),
                "stalls_ms": stalls.iter().map(|d| d.as_millis() as u64).collect::<Vec<_>>(),
            }),
        }
    }
}

/// What the disk probe saw in one phase.
pub struct DiskReport {
    line: String,
    /// `{syncs, p50_ms, max_ms, stalls_ms: [..]}`, or null when the probe saw nothing.
    pub figures: serde_json::Value,
}

impl DiskReport {
    fn none(line: String) -> DiskReport {
        DiskReport {
            line,
            figures: serde_json::Value::Null,
        }
    }
}

impl std::fmt::Display for DiskReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line)
    }
}

/// Rounded to one decimal, for the results file.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Rounded to two decimals, for the results file.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Where a run's record goes: one JSON line per run, appended, so that runs stay comparable
/// across commits and hosts without a document holding their history.
#[derive(clap::Args, Debug)]
pub struct ResultsArgs {
    /// Append this run's record (date, commit, command, host, figures) as one JSON line to FILE.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "examples/load/results.jsonl"
    )]
    results: PathBuf,
    /// Do not append this run's record anywhere.
    #[arg(long)]
    no_results: bool,
}

impl ResultsArgs {
    /// Appends `{date, commit, tool, command, host, figures}` as one line. A failure to write
    /// is reported, not fatal: the figures have been printed already.
    pub fn append(&self, tool: &str, figures: serde_json::Value) {
        if self.no_results {
            return;
        }
        let record = serde_json::json!({
            "date": rfc3339_utc(SystemTime::now()),
            "commit": git_commit(),
            "tool": tool,
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "host": { "hostname": hostname(), "nproc": nproc() },
            "figures": figures,
        });
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.results)
            .and_then(|mut f| f.write_all(format!("{record}\n").as_bytes()));
        match appended {
            Ok(()) => println!("\nrecord appended to {}", self.results.display()),
            Err(e) => eprintln!(
                "\ncould not append the record to {}: {e} (run from the repository's root, or pass \
                 --results FILE or --no-results)",
                self.results.display()
            ),
        }
    }
}

/// The checked-out commit (`git rev-parse HEAD` in the working directory), or "unknown".
fn git_commit() -> String {
    Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// The CPUs this process may use.
pub fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `t` as an RFC 3339 UTC timestamp to the second (`2026-11-23T14:05:09Z`).
fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Days since 1970-01-01 to a civil date (H. Hinnant, "chrono-compatible low-level date
    // algorithms", days_from_civil inverted).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// One HTTP/1.1 connection that posts pre-serialised submissions. The node is measured, so
/// the tool keeps its own work per request small: no URL parsing, connection pool or JSON
/// serialisation on the timed path (reqwest's did cost 15-20 % of the machine's CPU).
pub struct Submitter {
    send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    auth: HeaderValue,
    host: HeaderValue,
    uri: hyper::Uri,
}

impl Submitter {
    /// Connects to the node at `url` (`http://HOST:PORT`) for the session with `token`.
    pub async fn connect(url: &str, token: &str) -> anyhow::Result<Submitter> {
        let addr = url
            .strip_prefix("http://")
            .context("an http:// URL")?
            .trim_end_matches('/');
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        Ok(Submitter {
            send,
            auth: HeaderValue::try_from(format!("Bearer {token}"))?,
            host: HeaderValue::try_from(addr)?,
            uri: format!("http://{addr}/api/v1/messages").parse()?,
        })
    }

    /// Posts one serialised `SubmitRequest`; the node's answer.
    pub async fn submit(&mut self, body: Bytes) -> anyhow::Result<SubmitResponse> {
        let req = hyper::Request::post(self.uri.clone())
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        self.send.ready().await?;
        let resp = self.send.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("HTTP {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(serde_json::from_slice(&body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        for (secs, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (4_107_542_399, "2100-02-28T23:59:59Z"),
        ] {
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(rfc3339_utc(t), want);
        }
    }
}
