// The web app's Shamir sharing (src/shamir.ts) against the Rust client's (client/src/shamir.rs,
// vsss-rs), both ways, through vectors checked in under client/tests/data/custody/:
// rust-made.json was split by the Rust side (client: `shamir::tests::write_rust_vectors`) and is
// combined here; js-made.json was split here (`SEALPOST_WRITE_VECTORS=1`) and is combined by
// the Rust side (`shamir::tests::shares_split_by_the_web_app_combine_in_rust`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { load } from './bundle.mjs';

const { split, combine, lockPassphrase } = await load('src/shamir.ts');
const DATA = resolve(dirname(fileURLToPath(import.meta.url)), '../../../client/tests/data/custody');
const hex = (b) => Buffer.from(b).toString('hex');
const unhex = (s) => new Uint8Array(Buffer.from(s, 'hex'));
const vectors = (name) => JSON.parse(readFileSync(resolve(DATA, name), 'utf8'));

/** Every subset of `items` of size `k`. */
function subsets(items, k) {
  if (k === 0) return [[]];
  if (items.length < k) return [];
  const [first, ...rest] = items;
  return [...subsets(rest, k - 1).map((s) => [first, ...s]), ...subsets(rest, k)];
}

if (process.env.SEALPOST_WRITE_VECTORS === '1') {
  const cases = [];
  for (const [threshold, n] of [[2, 3], [3, 5]]) {
    const secret = crypto.getRandomValues(new Uint8Array(32));
    const shares = await split(secret, threshold, n);
    cases.push({ threshold, secret: hex(secret), shares: shares.map(hex) });
  }
  writeFileSync(resolve(DATA, 'js-made.json'), JSON.stringify(cases, null, 2) + '\n');
}

test('shares split by the Rust client combine here: any M give S, M-1 do not', async () => {
  const cases = vectors('rust-made.json');
  assert.ok(cases.length >= 2);
  for (const c of cases) {
    const shares = c.shares.map(unhex);
    for (const chosen of subsets(shares, c.threshold)) {
      assert.equal(hex(await combine(chosen)), c.secret);
      assert.equal(hex(await combine([...chosen].reverse())), c.secret);
    }
    for (const chosen of subsets(shares, c.threshold - 1).filter((s) => s.length >= 2)) {
      assert.notEqual(hex(await combine(chosen)), c.secret);
    }
  }
});

test('the checked-in shares split here still combine here (the Rust side combines them too)', async () => {
  for (const c of vectors('js-made.json')) {
    const shares = c.shares.map(unhex);
    for (const chosen of subsets(shares, c.threshold)) assert.equal(hex(await combine(chosen)), c.secret);
  }
});

test('a fresh split has x first, distinct and non-zero, and round-trips', async () => {
  const secret = crypto.getRandomValues(new Uint8Array(32));
  const shares = await split(secret, 2, 3);
  assert.equal(shares.length, 3);
  const xs = shares.map((s) => s[0]);
  assert.equal(new Set(xs).size, 3);
  assert.ok(xs.every((x) => x !== 0));
  for (const s of shares) assert.equal(s.length, 33);
  assert.equal(hex(await combine([shares[2], shares[0]])), hex(secret));
});

test('a changed share gives a wrong S; malformed shares and parameters are refused', async () => {
  const [c] = vectors('rust-made.json');
  const shares = c.shares.map(unhex);
  const changed = Uint8Array.from(shares[1]);
  changed[9] ^= 1;
  assert.notEqual(hex(await combine([shares[0], changed])), c.secret);
  await assert.rejects(combine([shares[0]]));
  await assert.rejects(combine([shares[0], shares[0]]));
  await assert.rejects(combine([shares[0], shares[1].subarray(0, 5)]));
  const zero = Uint8Array.from(shares[1]);
  zero[0] = 0;
  await assert.rejects(combine([shares[0], zero]));
  await assert.rejects(split(new Uint8Array(32), 1, 3));
  await assert.rejects(split(new Uint8Array(32), 4, 3));
  await assert.rejects(split(new Uint8Array(0), 2, 3));
});

test('the lock passphrase is the Rust client\'s (HKDF-SHA256, hex)', async () => {
  const s = Uint8Array.from({ length: 32 }, (_, i) => i);
  assert.equal(await lockPassphrase(s), readFileSync(resolve(DATA, 'lock-passphrase.txt'), 'utf8').trim());
});
