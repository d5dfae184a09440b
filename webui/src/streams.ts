// Streaming helpers for attachments: incremental SHA-256 (hash-wasm), a sink that collects a
// stream into a Blob of modest pieces (Chromium keeps large Blobs outside the JS heap, on disk
// when they grow), and a pump that reads a stream chunk by chunk. Nothing here holds a whole
// attachment in one buffer.
import { createSHA256 } from 'hash-wasm';

export interface Hasher {
  update(chunk: Uint8Array): void;
  hex(): string;
}

export async function sha256(): Promise<Hasher> {
  const h = await createSHA256();
  h.init();
  return {
    update: (chunk) => void h.update(chunk),
    hex: () => h.digest('hex'),
  };
}

/** Collects chunks into a Blob: small chunks are gathered into pieces of about `piece` bytes,
 * each handed to the browser's blob storage as it fills, so at most one piece is in memory. */
export class BlobSink {
  private pieces: Blob[] = [];
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  size = 0;

  constructor(private piece = 4 << 20) {}

  push(chunk: Uint8Array) {
    if (!chunk.length) return;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.size += chunk.length;
    if (this.pendingBytes >= this.piece) this.flush();
  }

  private flush() {
    if (this.pending.length) this.pieces.push(new Blob(this.pending as BlobPart[]));
    this.pending = [];
    this.pendingBytes = 0;
  }

  blob(type = 'application/octet-stream'): Blob {
    this.flush();
    const b = new Blob(this.pieces, { type });
    this.pieces = [];
    return b;
  }
}

/** Reads `stream` to its end, handing each chunk to `onChunk` (which may throw to stop:
 * the stream is then cancelled). */
export async function pump(stream: ReadableStream<Uint8Array>, onChunk: (chunk: Uint8Array) => void): Promise<void> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      onChunk(value);
    }
  } catch (e) {
    reader.cancel().catch(() => {});
    throw e;
  } finally {
    try { reader.releaseLock(); } catch { /* still locked by a pending read */ }
  }
}

/** Calls `report` at most every `ms` milliseconds, and always for the final value. */
export function throttled(report: (fraction: number) => void, ms = 100): (fraction: number) => void {
  let last = 0;
  return (f) => {
    const now = performance.now();
    if (f >= 1 || now - last >= ms) {
      last = now;
      report(f);
    }
  };
}

/** Regroups a byte stream into chunks of about `size` bytes. Blob and file streams come in
 * 64 KiB pieces; OpenPGP.js's per-chunk overhead (hashing, cipher, compression set-up) makes
 * larger chunks several times faster. */
export function rechunk(size = 1 << 20): TransformStream<Uint8Array, Uint8Array> {
  let buf = new Uint8Array(size);
  let at = 0;
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, ctl) {
      let from = 0;
      while (from < chunk.length) {
        const n = Math.min(size - at, chunk.length - from);
        buf.set(chunk.subarray(from, from + n), at);
        at += n;
        from += n;
        if (at === size) {
          ctl.enqueue(buf);
          buf = new Uint8Array(size);
          at = 0;
        }
      }
    },
    flush(ctl) {
      if (at) ctl.enqueue(buf.subarray(0, at));
    },
  });
}
