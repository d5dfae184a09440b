//! Backups of the embedded store that restore: `sealpost admin backup OUT` while the node runs
//! and takes submissions, `sealpost admin restore BACKUP --data-dir DIR` on a fresh machine
//! (docs/operations.md, "Backups").
//!
//! A backup is a directory (mode 0700, every file 0600: it holds the node's secret keys):
//!
//! ```text
//! OUT/manifest.json      format, domain, time, the log head, every file's size and SHA-256
//! OUT/sealpost.db        one consistent snapshot (`VACUUM INTO`, one read transaction)
//! OUT/blobs/ab/abcd…     every blob file that snapshot refers to, each hash-checked
//! OUT/keys/…             node key, CA key, transit key
//! OUT/sealpost.toml      the config; OUT/federation-listen, if the node remembered addresses
//! ```
//!
//! Blobs are deleted by the node while a backup runs (user deletes, expiry sweeps). The backup
//! takes the blob store's [`BackupLease`] *before* its snapshot: the node then moves a blob it
//! removes aside instead of unlinking it, until the lease ends (see `storage::blobs`), so the
//! backup holds every blob its snapshot names. Chosen over copy-then-recheck (copy, then
//! snapshot again until nothing is missing) because it ends in one pass under any delete rate,
//! and over a database row because the kernel drops a `flock` with the process that held it: a
//! killed backup cannot stop deletion for good.
//!
//! The manifest is written last (to a temporary name, synced, renamed): a directory without
//! one is no backup, and restore refuses it. Restore checks everything before it places
//! anything: the format, every path (only the names a backup writes), every size and hash, no
//! file the manifest does not name, the database's integrity, and the log's chain and signed
//! checkpoints against the node key in the backup, up to the head the manifest names. The
//! hashes find damage and tampering by someone who cannot also rewrite the manifest; against
//! one who can, keep the manifest's SHA-256 (printed by the backup) apart from the backup.
//!
//! Not here: PostgreSQL and S3 stores have their own tools (README, "Backups").

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::{Config, Paths};
use crate::storage::StorageError;
use crate::storage::blobs::BackupLease;
use crate::storage::sqlite::snapshot;

/// The backup format this build writes, and the newest it restores.
pub const FORMAT: u32 = 1;

/// The manifest's file name in a backup.
pub const MANIFEST: &str = "manifest.json";

/// The largest manifest restore reads (a few hundred bytes per file: millions of blobs).
pub const MAX_MANIFEST_BYTES: u64 = 512 * 1024 * 1024;

/// Where restore assembles the data directory before moving it into place.
const STAGING: &str = ".restoring";

/// What a backup holds, written last into it as [`MANIFEST`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub domain: String,
    /// When the backup started (Unix seconds).
    pub created_at: i64,
    /// The last log entry in the snapshot: everything acknowledged before the backup began is
    /// at or before it.
    pub log_head: LogHead,
    /// Every file of the backup but the manifest, by path relative to the backup.
    pub files: Vec<FileEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogHead {
    pub seq: u64,
    /// Hex.
    pub hash: String,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    /// Hex.
    pub sha256: String,
}

/// Why a backup or a restore failed. Either leaves nothing behind: a failed backup removes
/// its output directory, a failed restore what it placed in the target.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    #[error("{0} holds no Sealpost node (no sealpost.toml)")]
    NoDataDir(PathBuf),
    #[error("the node's config does not load: {0}")]
    Config(String),
    #[error("{0} already exists; a backup is written to a new directory")]
    OutputExists(PathBuf),
    #[error("the disk is full writing {0}")]
    DiskFull(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the database: {0}")]
    Storage(#[from] StorageError),
    #[error("blob {0} is in the database but not in the blob store: the data directory is damaged")]
    BlobMissing(String),
    #[error("blob {0} in the blob store does not match its name: the data directory is damaged")]
    BlobDamaged(String),
    #[error("{0} is no backup (no {MANIFEST}: unfinished, or not made by `sealpost admin backup`)")]
    NoManifest(PathBuf),
    #[error("the backup's manifest is not valid: {0}")]
    BadManifest(String),
    #[error(
        "the backup has format {found}; this build restores format {supported} and older: \
         restore with a newer sealpost"
    )]
    NewerFormat { found: u32, supported: u32 },
    #[error("{file} in the backup does not match its manifest ({why}): damaged or tampered")]
    Tampered { file: String, why: String },
    #[error("{file} is named in the manifest but missing from the backup")]
    Missing { file: String },
    #[error("{file} is in the backup but not in its manifest")]
    Unexpected { file: String },
    #[error("{0} is not an empty directory; restore only into a new or empty one")]
    TargetNotEmpty(PathBuf),
    #[error("the restored log does not verify at entry {seq}: {why}")]
    LogBroken { seq: u64, why: String },
    #[error("the restored log ends at entry {found}, the manifest names {expected}")]
    HeadMismatch { expected: u64, found: u64 },
}

impl BackupError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            BackupError::NoDataDir(_) => "no_data_dir",
            BackupError::Config(_) => "config",
            BackupError::OutputExists(_) => "output_exists",
            BackupError::DiskFull(_) => "disk_full",
            BackupError::Io { .. } => "io",
            BackupError::Storage(_) => "storage",
            BackupError::BlobMissing(_) => "blob_missing",
            BackupError::BlobDamaged(_) => "blob_damaged",
            BackupError::NoManifest(_) => "no_manifest",
            BackupError::BadManifest(_) => "bad_manifest",
            BackupError::NewerFormat { .. } => "newer_format",
            BackupError::Tampered { .. } => "tampered",
            BackupError::Missing { .. } => "missing",
            BackupError::Unexpected { .. } => "unexpected",
            BackupError::TargetNotEmpty(_) => "target_not_empty",
            BackupError::LogBroken { .. } => "log_broken",
            BackupError::HeadMismatch { .. } => "head_mismatch",
        }
    }
}

/// An I/O error at `path`, with a full disk (or quota) told apart.
fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |e| {
        if crate::storage::is_out_of_space(&e) {
            BackupError::DiskFull(path.to_owned())
        } else {
            BackupError::Io {
                path: path.to_owned(),
                source: e,
            }
        }
    }
}

/// A storage error from writing the snapshot: a full disk is told apart.
fn storage_at(path: &Path) -> impl FnOnce(StorageError) -> BackupError + '_ {
    move |e| match e {
        StorageError::Full => BackupError::DiskFull(path.to_owned()),
        e => BackupError::Storage(e),
    }
}

fn mkdir_private(dir: &Path) -> Result<(), BackupError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_at(dir))
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

/// Copies `from` into the new file `to` (mode 0600, synced), hashing what it reads; returns
/// the SHA-256 and size of what was copied.
fn copy_hashed(from: &Path, to: &Path) -> Result<([u8; 32], u64), BackupError> {
    let mut src = std::fs::File::open(from).map_err(io_at(from))?;
    if let Some(dir) = to.parent() {
        mkdir_private(dir)?;
    }
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(io_at(to))?;
    let mut hash = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = src.read(&mut buf).map_err(io_at(from))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        dst.write_all(&buf[..n]).map_err(io_at(to))?;
        size += n as u64;
    }
    dst.sync_all().map_err(io_at(to))?;
    Ok((hash.finalize().into(), size))
}

/// The SHA-256 and size of the file at `path`.
fn hash_file(path: &Path) -> Result<([u8; 32], u64), BackupError> {
    let mut f = std::fs::File::open(path).map_err(io_at(path))?;
    let mut hash = Sha256::new();
    let size = std::io::copy(&mut f, &mut hash).map_err(io_at(path))?;
    Ok((hash.finalize().into(), size))
}

/// Removes what a failed operation made, on drop, unless disarmed.
struct Cleanup(Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// Makes a consistent backup of the node's data directory `data` into the new directory
/// `out`, while a node may be serving `data`. Blocking: run it off the async runtime.
pub fn backup(data: &Path, out: &Path) -> Result<Manifest, BackupError> {
    let paths = Paths::new(data);
    if !paths.config().is_file() {
        return Err(BackupError::NoDataDir(data.to_owned()));
    }
    let config = Config::load(data).map_err(|e| BackupError::Config(e.to_string()))?;
    if std::fs::symlink_metadata(out).is_ok() {
        return Err(BackupError::OutputExists(out.to_owned()));
    }
    let created_at = crate::now();
    mkdir_private(out)?;
    std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o700)).map_err(io_at(out))?;
    let mut cleanup = Cleanup(Some(out.to_owned()));
    let mut files = Vec::new();
    let mut record = |path: String, (sha, size): ([u8; 32], u64)| {
        files.push(FileEntry {
            path,
            size,
            sha256: hex::encode(sha),
        })
    };

    // The lease before the snapshot: every blob the snapshot names stays findable.
    let blob_root = paths.blobs();
    let lease = BackupLease::take(&blob_root).map_err(io_at(&blob_root))?;
    lease.purge_deferred().map_err(io_at(&blob_root))?;
    let db = out.join("sealpost.db");
    snapshot::snapshot_into(&paths.database(), &db).map_err(storage_at(&db))?;
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).map_err(io_at(&db))?;
    let contents = snapshot::snapshot_contents(&db)?;
    record("sealpost.db".into(), hash_file(&db)?);

    for (sha, size) in &contents.file_blobs {
        let name = hex::encode(sha);
        let from = lease
            .find(sha)
            .ok_or_else(|| BackupError::BlobMissing(name.clone()))?;
        let rel = format!("blobs/{}/{name}", &name[..2]);
        let copied = copy_hashed(&from, &out.join(&rel))?;
        if copied != (*sha, *size) {
            return Err(BackupError::BlobDamaged(name));
        }
        record(rel, copied);
    }
    lease.purge_deferred().map_err(io_at(&blob_root))?;
    drop(lease);

    // Keys and config: they do not change while the node runs.
    let keys = paths.keys();
    let mut key_files: Vec<PathBuf> = std::fs::read_dir(&keys)
        .map_err(io_at(&keys))?
        .map(|e| e.map(|e| e.path()).map_err(io_at(&keys)))
        .collect::<Result<_, _>>()?;
    key_files.sort();
    for from in key_files.into_iter().filter(|p| p.is_file()) {
        let name = from
            .file_name()
            .expect("a directory entry")
            .to_string_lossy();
        let rel = format!("keys/{name}");
        if !allowed_path(&rel) {
            continue;
        }
        record(rel.clone(), copy_hashed(&from, &out.join(&rel))?);
    }
    for (from, rel) in [
        (paths.config(), crate::config::CONFIG_FILE),
        (paths.federation_listen(), "federation-listen"),
    ] {
        if from.is_file() {
            record(rel.into(), copy_hashed(&from, &out.join(rel))?);
        }
    }
    for dir in [out.join("keys"), out.join("blobs"), out.to_owned()] {
        if dir.is_dir() {
            sync_dir(&dir)?;
        }
    }

    let manifest = Manifest {
        format: FORMAT,
        domain: config.domain.clone(),
        created_at,
        log_head: LogHead {
            seq: contents.log_head.0,
            hash: hex::encode(contents.log_head.1),
        },
        files,
    };
    let tmp = out.join(".manifest.json.tmp");
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_at(&tmp))?;
    f.write_all(&json)
        .and_then(|()| f.sync_all())
        .map_err(io_at(&tmp))?;
    let dest = out.join(MANIFEST);
    std::fs::rename(&tmp, &dest).map_err(io_at(&dest))?;
    sync_dir(out)?;
    cleanup.0 = None;
    Ok(manifest)
}

/// The SHA-256 of a backup's manifest, in hex: what to keep apart from the backup.
pub fn manifest_sha256(backup: &Path) -> Result<String, BackupError> {
    Ok(hex::encode(hash_file(&backup.join(MANIFEST))?.0))
}

/// Whether `rel` is a path a backup writes: `sealpost.db`, `sealpost.toml`,
/// `federation-listen`, `keys/NAME`, `blobs/ab/ab…` (64 lowercase hex digits).
fn allowed_path(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    let plain = |s: &str| {
        !s.is_empty()
            && s.len() <= 128
            && !s.starts_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    let hex64 =
        |s: &str| s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    match parts.as_slice() {
        ["sealpost.db" | "federation-listen"] => true,
        [c] => *c == crate::config::CONFIG_FILE,
        ["keys", name] => plain(name),
        ["blobs", dir, name] => hex64(name) && name.starts_with(dir) && dir.len() == 2,
        _ => false,
    }
}

/// Every file under `dir` (not following links), as paths relative to `root` joined by `/`;
/// anything that is neither a file nor a directory is named too, to be refused.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), BackupError> {
    for entry in std::fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io_at(&path))?;
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).expect("under the root");
            let names: Vec<String> = rel
                .components()
                .map(|c| match c {
                    Component::Normal(n) => n.to_string_lossy().into_owned(),
                    other => other.as_os_str().to_string_lossy().into_owned(),
                })
                .collect();
            let rel = names.join("/");
            if !kind.is_file() {
                return Err(BackupError::Unexpected { file: rel });
            }
            out.push(rel);
        }
    }
    Ok(())
}

/// Reads and checks a backup's manifest (format first, then its shape and every path).
pub fn read_manifest(backup: &Path) -> Result<Manifest, BackupError> {
    let path = backup.join(MANIFEST);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(BackupError::NoManifest(backup.to_owned()));
        }
        Err(e) => return Err(io_at(&path)(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_at(&path))?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(BackupError::BadManifest(format!(
            "larger than {MAX_MANIFEST_BYTES} bytes"
        )));
    }
    // The format before the rest: a newer format may have other fields.
    #[derive(serde::Deserialize)]
    struct Format {
        format: u32,
    }
    let Format { format } = serde_json::from_slice(&bytes)
        .map_err(|e| BackupError::BadManifest(format!("no format: {e}")))?;
    if format > FORMAT {
        return Err(BackupError::NewerFormat {
            found: format,
            supported: FORMAT,
        });
    }
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| BackupError::BadManifest(e.to_string()))?;
    let mut seen = std::collections::HashSet::new();
    for f in &manifest.files {
        if !allowed_path(&f.path) {
            return Err(BackupError::BadManifest(format!(
                "{:?} is not a path a backup holds",
                f.path.chars().take(200).collect::<String>()
            )));
        }
        if !seen.insert(f.path.as_str()) {
            return Err(BackupError::BadManifest(format!(
                "{} is named twice",
                f.path
            )));
        }
        if f.sha256.len() != 64 || hex::decode(&f.sha256).is_err() {
            return Err(BackupError::BadManifest(format!(
                "{}: not a SHA-256",
                f.path
            )));
        }
    }
    for needed in [
        "sealpost.db",
        crate::config::CONFIG_FILE,
        "keys/node.ed25519",
    ] {
        if !seen.contains(needed) {
            return Err(BackupError::BadManifest(format!(
                "{needed} is missing from it"
            )));
        }
    }
    Ok(manifest)
}

/// Restores the backup at `backup` into `target`, a new or empty directory, which then holds
/// a data directory a node serves. Checks everything first (see the module's docs); on any
/// failure nothing is left in `target`.
pub fn restore(backup: &Path, target: &Path) -> Result<Manifest, BackupError> {
    let manifest = read_manifest(backup)?;
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::TargetNotEmpty(target.to_owned()));
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) if e.kind() == ErrorKind::NotADirectory => {
            return Err(BackupError::TargetNotEmpty(target.to_owned()));
        }
        Err(e) => return Err(io_at(target)(e)),
    }
    // Nothing the manifest does not name.
    let mut present = Vec::new();
    walk(backup, backup, &mut present)?;
    let named: std::collections::HashSet<&str> =
        manifest.files.iter().map(|f| f.path.as_str()).collect();
    if let Some(extra) = present
        .iter()
        .find(|p| p.as_str() != MANIFEST && !named.contains(p.as_str()))
    {
        return Err(BackupError::Unexpected {
            file: extra.clone(),
        });
    }

    let created_target = !target.exists();
    mkdir_private(target)?;
    let staging = target.join(STAGING);
    let mut cleanup = Cleanup(Some(if created_target {
        target.to_owned()
    } else {
        staging.clone()
    }));
    mkdir_private(&staging)?;
    for f in &manifest.files {
        let from = backup.join(&f.path);
        if !from.is_file() {
            return Err(BackupError::Missing {
                file: f.path.clone(),
            });
        }
        let (sha, size) = copy_hashed(&from, &staging.join(&f.path))?;
        let why = if size != f.size {
            Some(format!("{size} bytes, the manifest says {}", f.size))
        } else if hex::encode(sha) != f.sha256 {
            Some("its SHA-256 differs".to_owned())
        } else {
            None
        };
        if let Some(why) = why {
            return Err(BackupError::Tampered {
                file: f.path.clone(),
                why,
            });
        }
    }

    // The restored node's own checks, before it is put in place.
    let config = Config::load(&staging).map_err(|e| BackupError::Config(e.to_string()))?;
    if config.domain != manifest.domain {
        return Err(BackupError::BadManifest(format!(
            "it names {}, the config {}",
            manifest.domain, config.domain
        )));
    }
    let key = crate::keys::load_node_key(&Paths::new(&staging))
        .map_err(|e| BackupError::Config(format!("{e:#}")))?;
    let report = snapshot::verify_copy(&staging.join("sealpost.db"), &key.verifying_key())?;
    if let Some((seq, why)) = report.first_broken {
        return Err(BackupError::LogBroken { seq, why });
    }
    let head = snapshot::snapshot_contents(&staging.join("sealpost.db"))?.log_head;
    if head.0 != manifest.log_head.seq || hex::encode(head.1) != manifest.log_head.hash {
        return Err(BackupError::HeadMismatch {
            expected: manifest.log_head.seq,
            found: head.0,
        });
    }

    for entry in std::fs::read_dir(&staging).map_err(io_at(&staging))? {
        let entry = entry.map_err(io_at(&staging))?;
        let dest = target.join(entry.file_name());
        std::fs::rename(entry.path(), &dest).map_err(io_at(&dest))?;
    }
    std::fs::remove_dir(&staging).map_err(io_at(&staging))?;
    for dir in [target.join("keys"), target.join("blobs"), target.to_owned()] {
        if dir.is_dir() {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io_at(&dir))?;
            sync_dir(&dir)?;
        }
    }
    cleanup.0 = None;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_or_quota_is_told_apart_from_other_io_errors() {
        let at = Path::new("/b/sealpost.db");
        for errno in [28, 122] {
            let e = io_at(at)(std::io::Error::from_raw_os_error(errno));
            assert!(matches!(&e, BackupError::DiskFull(p) if p == at), "{e}");
        }
        let e = io_at(at)(std::io::Error::from_raw_os_error(13));
        assert_eq!(e.code(), "io");
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        let e = storage_at(at)(StorageError::from(full));
        assert_eq!(e.code(), "disk_full", "{e}");
    }

    #[test]
    fn only_the_paths_a_backup_writes_are_allowed() {
        let blob = "ab".to_owned() + &"c".repeat(62);
        for (path, ok) in [
            ("sealpost.db", true),
            ("sealpost.toml", true),
            ("federation-listen", true),
            ("keys/node.ed25519", true),
            ("keys/ca.tsk.asc", true),
            (&*format!("blobs/ab/{blob}"), true),
            (&*format!("blobs/cd/{blob}"), false),
            (&*format!("blobs/ab/{}", blob.to_uppercase()), false),
            ("blobs/ab/abc", false),
            ("keys/../sealpost.db", false),
            ("keys/.hidden", false),
            ("../etc/passwd", false),
            ("/etc/passwd", false),
            ("keys/a/b", false),
            ("keys/", false),
            ("sealpost.db-wal", false),
            ("run/admin.sock", false),
            ("", false),
        ] {
            assert_eq!(allowed_path(path), ok, "{path}");
        }
    }
}
