//! What both load tools need: running the `sealpost` binary and percentiles.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::bail;

/// Runs `sealpost ARGS` to completion; its stdout.
pub fn run(bin: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(bin).args(args).output()?;
    if !out.status.success() {
        bail!(
            "sealpost {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The `p` quantile (0..=1) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
