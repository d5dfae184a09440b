//! Content-addressed storage of large ciphertexts.
//!
//! A blob is named by the SHA-256 of its bytes, so a ciphertext sent to many mailboxes is kept
//! once and a retried upload is harmless. `put` streams: it never holds a blob in memory, and
//! it returns only after the file and its directory entry are fsynced, so an acknowledged
//! upload survives power loss.
//!
//! A large blob is flushed to disk while it is still being written (every
//! [`WRITEBACK_BYTES`], on a blocking thread, one flush at a time), so that the fsync at its
//! end waits only for the last stretch. Otherwise the kernel holds the whole blob in its
//! cache until that fsync (it starts writing back only at 10 % of memory dirty), and a 1 GiB
//! part would wait a second or more after its last byte arrived.
//!
//! A backup (`crate::backup`) copies the blobs one snapshot of the database refers to, while
//! the node keeps deleting blobs whose messages went (user deletes, expiry sweeps). So that a
//! backup never names a blob it could not copy, it holds a [`BackupLease`]: an exclusive
//! `flock` on [`LEASE_FILE`], taken *before* its snapshot. While the lease is held, `remove`
//! moves the file into [`DEFERRED_DIR`] instead of unlinking it, and the backup finds it there.
//! A removal that looked before the lease was taken belongs to a commit before the snapshot,
//! which therefore no longer refers to that blob. The lock is the kernel's: it ends with the
//! backup's process, however it ends, so a crashed backup never stops deletion for good.

use std::io::Read;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// Bytes written to a blob between two flushes started while it is written.
pub const WRITEBACK_BYTES: u64 = 16 * 1024 * 1024;

/// The file under the blob root a backup holds locked while it copies blobs.
pub const LEASE_FILE: &str = "backup.lease";

/// Where blobs removed while a backup runs wait, under the blob root, until it ends.
pub const DEFERRED_DIR: &str = "deferred";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    #[error("the upload is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the upload was interrupted: {0}")]
    Interrupted(std::io::Error),
    #[error("blob not found")]
    NotFound,
    /// The store refused a write for want of space; nothing of the blob was kept.
    #[error("the blob store is full")]
    Full,
    #[error("blob store i/o error: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for BlobError {
    fn from(e: std::io::Error) -> Self {
        if super::error::is_out_of_space(&e) {
            return BlobError::Full;
        }
        BlobError::Io(e)
    }
}

impl From<BlobError> for super::StorageError {
    /// A full blob store is the node's storage being full; any other failure is its i/o.
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::Full => super::StorageError::Full,
            BlobError::Io(e) | BlobError::Interrupted(e) => super::StorageError::Io(e),
            other => super::StorageError::Io(std::io::Error::other(other)),
        }
    }
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Streams `body` into the store, refusing more than `limit` bytes. Returns the SHA-256 and
    /// size. When it returns `Ok` the blob is durable.
    async fn put(
        &self,
        body: &mut (dyn AsyncRead + Send + Unpin),
        limit: u64,
    ) -> Result<([u8; 32], u64), BlobError>;
    /// Opens a blob for streaming reads.
    async fn open(&self, sha256: [u8; 32]) -> Result<Box<dyn AsyncRead + Send + Unpin>, BlobError>;
    /// Opens a blob for a blocking read (parsing the packets at its start on a blocking thread).
    fn open_blocking(&self, sha256: [u8; 32]) -> Result<Box<dyn Read + Send + Sync>, BlobError>;
    async fn remove(&self, sha256: [u8; 32]) -> Result<(), BlobError>;
    /// Proves that the store takes writes now (`/readyz`): writes and removes a small probe,
    /// which is never a blob and never read.
    async fn probe_write(&self) -> Result<(), BlobError>;
    /// Free and total bytes of the local disk the store writes to; `None` where there is no
    /// local disk to watch (an object store), so `/readyz` checks no space.
    fn disk_space(&self) -> Option<std::io::Result<DiskSpace>>;
}

/// Space on a disk: bytes an unprivileged writer may still use, and its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskSpace {
    pub available: u64,
    pub total: u64,
}

/// Blobs as files under `DATA/blobs/ab/abcdef…`.
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    pub fn open(root: &Path) -> std::io::Result<FsBlobStore> {
        std::fs::create_dir_all(root.join("tmp"))?;
        // Leftovers of uploads interrupted by a crash: never acknowledged, safe to drop.
        for entry in std::fs::read_dir(root.join("tmp"))? {
            let _ = std::fs::remove_file(entry?.path());
        }
        fsync_dir(root)?;
        Ok(FsBlobStore {
            root: root.to_owned(),
        })
    }

    fn path_of(&self, sha256: &[u8; 32]) -> PathBuf {
        blob_path(&self.root, sha256)
    }
}

/// A blob's file under `root`: `ab/abcdef…`.
pub fn blob_path(root: &Path, sha256: &[u8; 32]) -> PathBuf {
    let hex = hex::encode(sha256);
    root.join(&hex[..2]).join(hex)
}

/// Whether a backup holds the lease of the blob store at `root` (see the module's docs).
fn backup_running(root: &Path) -> std::io::Result<bool> {
    let file = match std::fs::File::open(root.join(LEASE_FILE)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(false),
        Err(std::fs::TryLockError::WouldBlock) => Ok(true),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Removes the blob file at `path`: moved into [`DEFERRED_DIR`] while a backup holds the
/// lease, else unlinked. A file already gone is no error.
fn remove_file(root: &Path, path: &Path) -> std::io::Result<()> {
    let done = if backup_running(root)? {
        let deferred = root.join(DEFERRED_DIR);
        std::fs::create_dir_all(&deferred)?;
        std::fs::rename(
            path,
            deferred.join(path.file_name().expect("blob files have a name")),
        )
    } else {
        std::fs::remove_file(path)
    };
    match done {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A backup's hold on a blob store: while it lives, the store's `remove` defers (see the
/// module's docs). Dropping it (or the process ending) releases it.
pub struct BackupLease {
    root: PathBuf,
    _lock: std::fs::File,
}

impl BackupLease {
    /// Takes the lease of the blob store at `root`, waiting for another backup's to end.
    pub fn take(root: &Path) -> std::io::Result<BackupLease> {
        // A node initialised but never served has no blob store yet.
        std::fs::create_dir_all(root)?;
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(root.join(LEASE_FILE))?;
        lock.lock()?;
        Ok(BackupLease {
            root: root.to_owned(),
            _lock: lock,
        })
    }

    /// Where blob `sha256` is now: its own place, or deferred; `None` if neither.
    pub fn find(&self, sha256: &[u8; 32]) -> Option<PathBuf> {
        let own = blob_path(&self.root, sha256);
        let deferred = self.root.join(DEFERRED_DIR).join(hex::encode(sha256));
        [own, deferred].into_iter().find(|p| p.is_file())
    }

    /// Deletes the deferred files: blobs the database no longer referred to when they were
    /// removed, which no snapshot taken since can name. Called with the lease held (at a
    /// backup's start and end).
    pub fn purge_deferred(&self) -> std::io::Result<usize> {
        let dir = self.root.join(DEFERRED_DIR);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut n = 0;
        for entry in entries {
            std::fs::remove_file(entry?.path())?;
            n += 1;
        }
        Ok(n)
    }
}

/// The result of a flush run on a blocking thread.
fn joined(r: Result<std::io::Result<()>, tokio::task::JoinError>) -> std::io::Result<()> {
    r.map_err(std::io::Error::other)?
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(
        &self,
        body: &mut (dyn AsyncRead + Send + Unpin),
        limit: u64,
    ) -> Result<([u8; 32], u64), BlobError> {
        let tmp_path = self
            .root
            .join("tmp")
            .join(format!("{}.part", hex::encode(rand::random::<[u8; 16]>())));
        let result = async {
            let mut file = tokio::fs::File::create(&tmp_path).await?;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            let mut unflushed = 0u64;
            let mut flushing: Option<JoinHandle<std::io::Result<()>>> = None;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = body.read(&mut buf).await.map_err(BlobError::Interrupted)?;
                if n == 0 {
                    break;
                }
                size += n as u64;
                if size > limit {
                    return Err(BlobError::TooLarge { limit });
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n]).await?;
                unflushed += n as u64;
                if unflushed >= WRITEBACK_BYTES && flushing.as_ref().is_none_or(|f| f.is_finished())
                {
                    if let Some(f) = flushing.take() {
                        joined(f.await)?;
                    }
                    // Hands what the file buffers to the kernel, then flushes it meanwhile.
                    file.flush().await?;
                    let f = file.try_clone().await?.into_std().await;
                    flushing = Some(tokio::task::spawn_blocking(move || f.sync_data()));
                    unflushed = 0;
                }
            }
            if let Some(f) = flushing.take() {
                joined(f.await)?;
            }
            file.sync_all().await?;
            Ok::<_, BlobError>((hasher.finalize().into(), size))
        }
        .await;
        let (sha, size) = match result {
            Ok(v) => v,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp_path).await;
                return Err(e);
            }
        };
        let dest = self.path_of(&sha);
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let dir = dest.parent().expect("blob paths have a parent");
            if !dir.exists() {
                std::fs::create_dir_all(dir)?;
                fsync_dir(&root)?;
            }
            if dest.exists() {
                // Same name, same bytes: already durable.
                std::fs::remove_file(&tmp_path)?;
            } else {
                std::fs::rename(&tmp_path, &dest)?;
                fsync_dir(dir)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| BlobError::Io(std::io::Error::other(e)))??;
        Ok((sha, size))
    }

    async fn open(&self, sha256: [u8; 32]) -> Result<Box<dyn AsyncRead + Send + Unpin>, BlobError> {
        match tokio::fs::File::open(self.path_of(&sha256)).await {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BlobError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    fn open_blocking(&self, sha256: [u8; 32]) -> Result<Box<dyn Read + Send + Sync>, BlobError> {
        match std::fs::File::open(self.path_of(&sha256)) {
            Ok(f) => Ok(Box::new(std::io::BufReader::new(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BlobError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    async fn remove(&self, sha256: [u8; 32]) -> Result<(), BlobError> {
        let (root, path) = (self.root.clone(), self.path_of(&sha256));
        tokio::task::spawn_blocking(move || remove_file(&root, &path))
            .await
            .map_err(|e| BlobError::Io(std::io::Error::other(e)))??;
        Ok(())
    }

    async fn probe_write(&self) -> Result<(), BlobError> {
        // In `tmp/`, which `open` empties: a probe a crash left behind is gone at the next start.
        let path = self
            .root
            .join("tmp")
            .join(format!("ready-{}", hex::encode(rand::random::<[u8; 8]>())));
        let written = tokio::fs::write(&path, b"ready").await;
        let removed = tokio::fs::remove_file(&path).await;
        written?;
        Ok(removed?)
    }

    fn disk_space(&self) -> Option<std::io::Result<DiskSpace>> {
        Some(
            rustix::fs::statvfs(&self.root)
                .map(|s| DiskSpace {
                    available: s.f_bavail.saturating_mul(s.f_frsize),
                    total: s.f_blocks.saturating_mul(s.f_frsize),
                })
                .map_err(std::io::Error::from),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_back(store: &FsBlobStore, sha: [u8; 32]) -> Vec<u8> {
        let mut back = Vec::new();
        store
            .open(sha)
            .await
            .unwrap()
            .read_to_end(&mut back)
            .await
            .unwrap();
        back
    }

    /// Files of unfinished uploads.
    fn leftovers(root: &Path) -> usize {
        std::fs::read_dir(root.join("tmp")).unwrap().count()
    }

    #[tokio::test]
    async fn the_write_probe_leaves_nothing_and_the_disk_has_a_size() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        store.probe_write().await.unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
        let space = store.disk_space().unwrap().unwrap();
        assert!(
            space.total > 0 && space.available <= space.total,
            "{space:?}"
        );
    }

    #[tokio::test]
    async fn put_is_content_addressed_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let data = vec![42u8; 300_000];
        let (sha, size) = store.put(&mut &data[..], 1 << 20).await.unwrap();
        assert_eq!(size, 300_000);
        assert_eq!(sha, <[u8; 32]>::from(Sha256::digest(&data)));
        // The same bytes again: same name, one file.
        let (sha2, _) = store.put(&mut &data[..], 1 << 20).await.unwrap();
        assert_eq!(sha, sha2);
        let back = read_back(&store, sha).await;
        assert_eq!(back, data);

        // Over the limit: refused, and nothing is left behind.
        let err = store.put(&mut &data[..], 1000).await.unwrap_err();
        assert!(matches!(err, BlobError::TooLarge { limit: 1000 }));
        assert_eq!(leftovers(dir.path()), 0);
        assert!(matches!(
            store.open([0; 32]).await,
            Err(BlobError::NotFound)
        ));
    }

    #[tokio::test]
    async fn a_removal_while_a_backup_holds_the_lease_waits_in_deferred() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let (a, _) = store.put(&mut &b"first blob"[..], 1 << 20).await.unwrap();
        let (b, _) = store.put(&mut &b"second blob"[..], 1 << 20).await.unwrap();

        let lease = BackupLease::take(dir.path()).unwrap();
        store.remove(a).await.unwrap();
        assert!(matches!(store.open(a).await, Err(BlobError::NotFound)));
        let kept = lease.find(&a).expect("the backup still finds it");
        assert_eq!(std::fs::read(&kept).unwrap(), b"first blob");
        assert_eq!(lease.find(&b), Some(blob_path(dir.path(), &b)));
        // Removing it again, or one never stored, is no error.
        store.remove(a).await.unwrap();
        store.remove([9; 32]).await.unwrap();
        assert_eq!(lease.purge_deferred().unwrap(), 1);
        assert_eq!(lease.find(&a), None);
        drop(lease);

        // No backup: removed at once.
        store.remove(b).await.unwrap();
        assert!(!blob_path(dir.path(), &b).exists());
        assert!(!dir.path().join(DEFERRED_DIR).join(hex::encode(b)).exists());
    }

    #[tokio::test]
    async fn a_blob_flushed_while_written_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        // Past two flush points, and not a multiple of the read buffer.
        let len = 2 * WRITEBACK_BYTES as usize + 12_345;
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let (sha, size) = store.put(&mut &data[..], len as u64).await.unwrap();
        assert_eq!(size, len as u64);
        assert_eq!(sha, <[u8; 32]>::from(Sha256::digest(&data)));
        let back = read_back(&store, sha).await;
        assert!(back == data, "the blob read back differs");
        assert_eq!(leftovers(dir.path()), 0);

        // Over the limit after a flush has started: refused, and nothing is left behind.
        let err = store
            .put(&mut &data[..], WRITEBACK_BYTES + 1)
            .await
            .unwrap_err();
        assert!(matches!(err, BlobError::TooLarge { .. }));
        assert_eq!(leftovers(dir.path()), 0);
    }
}
