//! Bytes on a federation stream: length-prefixed frames, part bodies, node signatures.
//!
//! A stream carries a sequence of exchanges. Each frame is a `u32` big-endian length followed
//! by that many bytes of [`crate::frame::encode`] output; the length is checked against
//! [`Limits::max_frame_bytes`] before anything is allocated. Part bodies follow a `Want` as raw
//! bytes, exactly `size` per wanted part, in the order wanted.
//!
//! Every read and write here has a deadline, so a silent peer cannot hold a task forever.
//! Public so that tests (and diagnostic tools) can speak the protocol by hand.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use libp2p::identity::{Keypair, PublicKey};
use libp2p::{PeerId, Stream, StreamProtocol};
use tokio::io::ReadBuf;
use tokio::time::{Instant, Sleep, timeout};

use crate::frame::{
    Batch, BatchAnswer, Frame, FrameError, Limits, Receipt, Transfer, decode, encode,
};

/// The one libp2p protocol federation speaks. The version inside frames is separate
/// ([`crate::PROTOCOL_VERSION`]); this name changes only if the stream layout does.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/sealpost/fed/1");

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The stream ended cleanly before a new frame began.
    #[error("stream closed")]
    Closed,
    #[error("timed out waiting for the peer")]
    Timeout,
    #[error("stream error: {0}")]
    Io(#[from] io::Error),
    /// The length prefix announced more than `max_frame_bytes`; nothing was allocated and the
    /// stream is out of step (close it).
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Writes one frame (length prefix, then the encoded frame) and flushes, within `deadline`.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &Frame,
    deadline: Duration,
) -> io::Result<()> {
    let bytes = encode(frame);
    let len = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame longer than 4 GiB"))?;
    let fut = async {
        w.write_all(&len.to_be_bytes()).await?;
        w.write_all(&bytes).await?;
        w.flush().await
    };
    timeout(deadline, fut)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "writing a frame timed out"))?
}

/// Reads one frame. `wait` bounds the time until its first byte (an idle stream between
/// exchanges), `deadline` the time to read the rest once it has begun.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    limits: &Limits,
    wait: Duration,
    deadline: Duration,
) -> Result<Frame, ReadError> {
    let mut prefix = [0u8; 4];
    let first = timeout(wait, r.read(&mut prefix))
        .await
        .map_err(|_| ReadError::Timeout)??;
    if first == 0 {
        return Err(ReadError::Closed);
    }
    let len = timeout(deadline, async {
        r.read_exact(&mut prefix[first..]).await?;
        Ok::<_, io::Error>(u32::from_be_bytes(prefix) as usize)
    })
    .await
    .map_err(|_| ReadError::Timeout)??;
    if len > limits.max_frame_bytes {
        return Err(ReadError::TooLarge {
            len,
            max: limits.max_frame_bytes,
        });
    }
    let mut buf = vec![0u8; len];
    timeout(deadline, r.read_exact(&mut buf))
        .await
        .map_err(|_| ReadError::Timeout)??;
    Ok(decode(&buf, limits)?)
}

/// Reads one frame's bytes and throws them away without allocating them (used to let an
/// unauthorised peer finish its request before we answer it).
pub(crate) async fn discard_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    deadline: Duration,
) -> Result<(), ReadError> {
    timeout(deadline, async {
        let mut prefix = [0u8; 4];
        r.read_exact(&mut prefix).await?;
        let len = u32::from_be_bytes(prefix) as usize;
        if len > max {
            return Err(ReadError::TooLarge { len, max });
        }
        let mut left = len;
        let mut buf = [0u8; 4096];
        while left > 0 {
            let n = r.read(&mut buf[..left.min(4096)]).await?;
            if n == 0 {
                return Err(ReadError::Closed);
            }
            left -= n;
        }
        Ok(())
    })
    .await
    .map_err(|_| ReadError::Timeout)?
}

/// The node key's signature over a transfer's signing digest, stored in `node_sig`.
pub fn sign_transfer(keypair: &Keypair, transfer: &mut Transfer) {
    transfer.node_sig = sign(keypair, &transfer.signing_digest());
}

/// The node key's signature over a receipt's signing digest, stored in `node_sig`.
pub fn sign_receipt(keypair: &Keypair, receipt: &mut Receipt) {
    receipt.node_sig = sign(keypair, &receipt.signing_digest());
}

/// The node key's signature over a batch's signing digest, stored in `node_sig`.
pub fn sign_batch(keypair: &Keypair, batch: &mut Batch) {
    batch.node_sig = sign(keypair, &batch.signing_digest());
}

/// The node key's signature over a batch answer's signing digest, stored in `node_sig`.
pub fn sign_batch_answer(keypair: &Keypair, answer: &mut BatchAnswer) {
    answer.node_sig = sign(keypair, &answer.signing_digest());
}

fn sign(keypair: &Keypair, digest: &[u8; 32]) -> Vec<u8> {
    // Ed25519 signing cannot fail; other key types are refused at start.
    keypair.sign(digest).unwrap_or_default()
}

/// The Ed25519 public key inside a peer ID (identity multihash of the protobuf-encoded key).
/// `None` for peer IDs that are hashes of larger keys or of other key types: federation
/// refuses those peers.
pub fn ed25519_key_of(peer: &PeerId) -> Option<PublicKey> {
    let mh = peer.as_ref();
    if mh.code() != 0 {
        return None;
    }
    let key = PublicKey::try_decode_protobuf(mh.digest()).ok()?;
    key.clone().try_into_ed25519().ok()?;
    Some(key)
}

/// Whether `node_sig` on the transfer is `key`'s signature over its digest.
pub fn verify_transfer(key: &PublicKey, transfer: &Transfer) -> bool {
    !transfer.node_sig.is_empty() && key.verify(&transfer.signing_digest(), &transfer.node_sig)
}

/// Whether `node_sig` on the receipt is `key`'s signature over its digest.
pub fn verify_receipt(key: &PublicKey, receipt: &Receipt) -> bool {
    !receipt.node_sig.is_empty() && key.verify(&receipt.signing_digest(), &receipt.node_sig)
}

/// Whether `node_sig` on the batch is `key`'s signature over its digest.
pub fn verify_batch(key: &PublicKey, batch: &Batch) -> bool {
    !batch.node_sig.is_empty() && key.verify(&batch.signing_digest(), &batch.node_sig)
}

/// Whether `node_sig` on the batch answer is `key`'s signature over its digest.
pub fn verify_batch_answer(key: &PublicKey, answer: &BatchAnswer) -> bool {
    !answer.node_sig.is_empty() && key.verify(&answer.signing_digest(), &answer.node_sig)
}

/// A stream parked while the host reads one part from it: [`PartIn`] borrows it through this
/// slot, because a [`crate::PartReader`] must own what it reads from.
pub(crate) type StreamSlot = Arc<Mutex<Option<Stream>>>;

/// Exactly `remaining` bytes of a part, read from the stream in the slot, each read bounded by
/// `idle` (a peer that stops sending mid-part makes the read fail, not hang).
pub(crate) struct PartIn {
    slot: StreamSlot,
    remaining: u64,
    left: Arc<AtomicU64>,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
}

impl PartIn {
    pub(crate) fn new(slot: StreamSlot, size: u64, idle: Duration) -> Self {
        PartIn {
            slot,
            remaining: size,
            left: Arc::new(AtomicU64::new(size)),
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl tokio::io::AsyncRead for PartIn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.remaining == 0 || buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let max = (buf.remaining() as u64).min(this.remaining) as usize;
        let mut guard = this.slot.lock().unwrap_or_else(|e| e.into_inner());
        let Some(stream) = guard.as_mut() else {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "stream already released",
            )));
        };
        let dst = buf.initialize_unfilled_to(max);
        match Pin::new(stream).poll_read(cx, dst) {
            Poll::Ready(Ok(0)) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer ended the stream inside a part",
            ))),
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                this.remaining -= n as u64;
                this.left.store(this.remaining, Ordering::Relaxed);
                this.timer.as_mut().reset(Instant::now() + this.idle);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                drop(guard);
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no part bytes within the idle timeout",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl PartIn {
    /// Bytes of the part not read yet, readable after the reader is gone.
    pub(crate) fn left(&self) -> Arc<AtomicU64> {
        self.left.clone()
    }
}

/// Where copying a part to the peer failed: reading our own copy, or writing to the peer.
pub(crate) enum CopyError {
    Local(io::Error),
    Remote(io::Error),
}

/// Copies exactly `size` bytes from `src` to the stream, each read and write bounded by `idle`.
pub(crate) async fn copy_part<W: AsyncWrite + Unpin>(
    src: &mut crate::PartReader,
    dst: &mut W,
    size: u64,
    idle: Duration,
) -> Result<(), CopyError> {
    use tokio::io::AsyncReadExt as _;
    let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "idle timeout");
    let mut buf = vec![0u8; (256 * 1024).min(size.max(1) as usize)];
    let mut left = size;
    while left > 0 {
        let want = (buf.len() as u64).min(left) as usize;
        let n = timeout(idle, src.read(&mut buf[..want]))
            .await
            .map_err(|_| CopyError::Local(timed_out()))?
            .map_err(CopyError::Local)?;
        if n == 0 {
            return Err(CopyError::Local(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "our stored part is shorter than its recorded size",
            )));
        }
        timeout(idle, dst.write_all(&buf[..n]))
            .await
            .map_err(|_| CopyError::Remote(timed_out()))?
            .map_err(CopyError::Remote)?;
        left -= n as u64;
    }
    timeout(idle, dst.flush())
        .await
        .map_err(|_| CopyError::Remote(timed_out()))?
        .map_err(CopyError::Remote)
}
