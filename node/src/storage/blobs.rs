//! Content-addressed storage of large ciphertexts.
//!
//! A blob is named by the SHA-256 of its bytes, so a ciphertext sent to many mailboxes is kept
//! once and a retried upload is harmless. `put` streams: it never holds a blob in memory, and
//! it returns only after the file and its directory entry are fsynced, so an acknowledged
//! upload survives power loss.

use std::io::Read;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

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
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut back = Vec::new();
        store
            .open(sha)
            .await
            .unwrap()
            .read_to_end(&mut back)
            .await
            .unwrap();
        assert_eq!(back, data);

        // Over the limit: refused, and nothing is left behind.
        let err = store.put(&mut &data[..], 1000).await.unwrap_err();
        assert!(matches!(err, BlobError::TooLarge { limit: 1000 }));
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
        assert!(matches!(
            store.open([0; 32]).await,
            Err(BlobError::NotFound)
        ));
    }
}
