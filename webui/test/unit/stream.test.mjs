// Streaming seal/open of attachments (src/pgp.ts sealStream/openStream, src/streams.ts): the
// round trip, agreement with the whole-buffer `open`, and refusal of a wrong signer or altered
// bytes, which with streaming only shows once the data has been read to its end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { load } from './bundle.mjs';

const pgp = await load('src/pgp.ts', ['browser']);
const { BlobSink, pump, sha256 } = await load('src/streams.ts');

const alice = (await pgp.generateUserKey('alice@alpha.test')).privateKey;
const bob = (await pgp.generateUserKey('bob@alpha.test')).privateKey;
const mallory = (await pgp.generateUserKey('mallory@evil.test')).privateKey;
const plain = randomBytes(1024 * 1024 + 17);
const hex = (b) => createHash('sha256').update(b).digest('hex');

function chunked(bytes, size = 65536) {
  let at = 0;
  return new ReadableStream({
    pull(ctl) {
      if (at >= bytes.length) return ctl.close();
      ctl.enqueue(new Uint8Array(bytes.subarray(at, at + size)));
      at += size;
    },
  });
}

async function sealToBlob(signer) {
  const sink = new BlobSink(1 << 20);
  const h = await sha256();
  await pump(await pgp.sealStream(chunked(plain), [bob.toPublic()], signer), (c) => { h.update(c); sink.push(c); });
  const blob = sink.blob();
  assert.equal(sink.size, blob.size);
  return { blob, sha: h.hex() };
}

async function openBlob(blob, sender) {
  const sink = new BlobSink(1 << 20);
  const h = await sha256();
  const { data, verified } = await pgp.openStream(blob.stream(), bob, sender);
  await pump(data, (c) => { h.update(c); sink.push(c); });
  await verified;
  return { size: sink.size, sha: h.hex() };
}

test('a streamed seal opens streamed and whole, with the same bytes and hashes', async () => {
  const { blob, sha } = await sealToBlob(alice);
  const bytes = new Uint8Array(await blob.arrayBuffer());
  assert.equal(sha, hex(bytes), 'incremental ciphertext hash');
  const opened = await openBlob(blob, alice.toPublic());
  assert.equal(opened.size, plain.length);
  assert.equal(opened.sha, hex(plain), 'incremental plaintext hash');
  const whole = await pgp.open(bytes, bob, alice.toPublic());
  assert.equal(hex(whole.data), hex(plain));
});

test('a stream signed by someone else is refused, after its end', async () => {
  const { blob } = await sealToBlob(mallory);
  await assert.rejects(openBlob(blob, alice.toPublic()), (e) => e instanceof pgp.BadSignature || /signing key|signature/i.test(String(e)));
});

test('altered ciphertext is refused', async () => {
  const { blob } = await sealToBlob(alice);
  const bytes = new Uint8Array(await blob.arrayBuffer());
  bytes[bytes.length >> 1] ^= 1;
  await assert.rejects(openBlob(new Blob([bytes]), alice.toPublic()));
});
