//! `sealpost admin backup` and `restore` as an admin runs them, the binary as a process: the
//! round trip through the command line, and a backup onto a full disk (a small tmpfs in a
//! mount namespace of its own), which fails with the typed error and leaves nothing behind.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

#[test]
fn backup_and_restore_round_trip_through_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    init(&data, "a.test");
    let out = dir.path().join("backup");
    let said = ok(
        &[
            "admin",
            "--data",
            data.to_str().unwrap(),
            "backup",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(said.contains("Backed up a.test"), "{said}");
    assert!(said.contains("Manifest SHA-256"), "{said}");

    // `--data-dir` after the verb, as the README shows it.
    let restored = dir.path().join("restored");
    let said = ok(
        &[
            "admin",
            "restore",
            out.to_str().unwrap(),
            "--data-dir",
            restored.to_str().unwrap(),
        ],
        &[],
    );
    assert!(said.contains("log verified"), "{said}");
    let said = ok(
        &[
            "admin",
            "--data",
            restored.to_str().unwrap(),
            "log",
            "verify",
        ],
        &[],
    );
    assert!(said.starts_with("log ok"), "{said}");

    // Again into the same, now used, directory: refused, by the binary too.
    let again = sealpost(
        &[
            "admin",
            "restore",
            out.to_str().unwrap(),
            "--data-dir",
            restored.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("not an empty directory"), "{err}");
}

/// Runs `script` as `sh -c` in a mount namespace of its own (root, or a system that lets
/// `unshare -m` make one); `None` if it cannot have one.
fn in_own_mounts(script: &str, args: &[&Path]) -> Option<std::process::Output> {
    let probe = Command::new("unshare").args(["-m", "true"]).output().ok()?;
    if !probe.status.success() {
        return None;
    }
    let mut c = Command::new("unshare");
    c.args(["-m", "sh", "-c", script, "sh"]).args(args);
    Some(c.output().unwrap())
}

#[test]
fn a_backup_onto_a_full_disk_fails_with_disk_full_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    init(&data, "a.test");
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    // 64 KiB: less than the database snapshot and the keys.
    let script = r#"mount -t tmpfs -o size=64k tmpfs "$3" || exit 99
"$1" admin --data "$2" backup "$3/out"; rc=$?
echo "left: $(ls -A "$3")"
exit $rc"#;
    let Some(out) = in_own_mounts(script, &[bin(), &data, &small]) else {
        eprintln!("SKIPPED: no mount namespace here (needs root or unprivileged user namespaces)");
        return;
    };
    assert_ne!(out.status.code(), Some(99), "tmpfs mounted");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the disk is full writing"), "{err}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("left: \n") || said.trim_end().ends_with("left:"),
        "{said}"
    );
}
