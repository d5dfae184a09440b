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

use std::io::Read;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// Bytes written to a blob between two flushes started while it is written.
pub const WRITEBACK_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    #[error("the upload is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the upload was interrupted: {0}")]
    Interrupted(std::io::Error),
    #[error("blob not found")]
    NotFound,
    #[error("blob store i/o error: {0}")]
    Io(#[from] std::io::Error),
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
        let hex = hex::encode(sha256);
        self.root.join(&hex[..2]).join(hex)
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
        match tokio::fs::remove_file(self.path_of(&sha256)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
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
