// The Message Unlock Code and the pickup key (src/pickup-crypto.ts) against docs/pickup.md:
// format, alphabet and entropy, lenient reading, refusals, the derivation's labels, the seal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { load } from './bundle.mjs';

// One bundle, so the keys of pgp.ts and of pickup-crypto.ts come from one OpenPGP.js.
const pc = await load('test/unit/pickup-entry.ts', ['browser']);
const { pgp, kdf } = pc;
const MIN = { m_cost_kib: 8192, t_cost: 1, p_cost: 1 };

test('a MUC is 16 symbols of Crockford base32, shown as four groups of four', () => {
  assert.equal(pc.MUC_ALPHABET, '0123456789ABCDEFGHJKMNPQRSTVWXYZ');
  for (let i = 0; i < 200; i++) {
    const m = pc.generateMuc();
    assert.match(m, /^[0-9A-HJKMNP-TV-Z]{16}$/);
    assert.match(pc.groupMuc(m), /^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$/);
    assert.equal(pc.parseMuc(pc.groupMuc(m)), m);
  }
});

test('MUC symbols are uniform: every byte value maps to one symbol, each symbol to 8 of 256', () => {
  // Exhaustively: feed every byte value through the generator.
  const counts = new Map();
  for (let start = 0; start < 256; start += 16) {
    const m = pc.generateMuc((a) => { for (let i = 0; i < a.length; i++) a[i] = start + i; return a; });
    for (const c of m) counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  assert.equal(counts.size, 32);
  for (const [, n] of counts) assert.equal(n, 8);
  // And the real generator: 80 bits, so 2,000 codes never repeat, and every symbol shows up.
  const seen = new Set();
  const symbols = new Map();
  for (let i = 0; i < 2000; i++) {
    const m = pc.generateMuc();
    assert.ok(!seen.has(m));
    seen.add(m);
    for (const c of m) symbols.set(c, (symbols.get(c) ?? 0) + 1);
  }
  assert.equal(symbols.size, 32);
  // 32,000 symbols, 1,000 expected each: a generous band (about 6 sigma).
  for (const [c, n] of symbols) assert.ok(n > 800 && n < 1200, `${c} appeared ${n} times`);
  assert.equal(16 * Math.log2(32), 80);
});

test('MUCs are read leniently to their normal form', () => {
  for (const [typed, normal] of [
    ['7KQM-2XHD-9TRV-B4NC', '7KQM2XHD9TRVB4NC'],
    ['7kqm 2xhd 9trv b4nc', '7KQM2XHD9TRVB4NC'],
    ['  7KQM2XHD9TRVB4NC  ', '7KQM2XHD9TRVB4NC'],
    ['7KQM–2XHD—9TRV-B4NC', '7KQM2XHD9TRVB4NC'],
    ['OOOO-IIII-LLLL-llii', '0000111111111111'],
    ['o1l0-ABCD-EFGH-JKMN', '0110ABCDEFGHJKMN'],
  ]) assert.equal(pc.parseMuc(typed), normal, typed);
});

test('bad MUCs are refused, saying why', async () => {
  for (const [typed, why] of [
    ['', /too short: 0/],
    ['7KQM-2XHD-9TRV-B4N', /too short: 15/],
    ['7KQM-2XHD-9TRV-B4NCX', /too long: 17/],
    ['7KQM-2XHD-9TRV-B4NU', /cannot contain “U”/],
    ['7KQM-2XHD-9TRV-B4N!', /cannot contain “!”/],
    ['7KQM_2XHD_9TRV_B4NC', /cannot contain “_”/],
    ['7KQM-2XHD-9TRV-B4NÇ', /cannot contain/],
  ]) assert.throws(() => pc.parseMuc(typed), (e) => e instanceof pc.MucError && why.test(e.message), typed);
  await assert.rejects(() => pc.derivePickupKeys('7kqm2xhd9trvb4nc', new Uint8Array(16), MIN), pc.MucError);
});

test('the pickup derivation is the password KDF under the pickup labels', async () => {
  const salt = new TextEncoder().encode('sealpost-kat-salt-0001');
  const muc = '7KQM2XHD9TRVB4NC';
  const keys = await pc.derivePickupKeys(muc, salt, MIN);
  assert.equal(keys.wrap.length, 43);
  assert.equal(keys.verifier.length, 32);
  // Recompute HKDF independently (Node's HMAC) over the same Argon2id output.
  const { argon2id } = await import('hash-wasm');
  const master = await argon2id({ password: muc, salt, parallelism: 1, iterations: 1, memorySize: 8192, hashLength: 32, outputType: 'binary' });
  const hkdf = (info) => {
    const prk = createHmac('sha256', Buffer.alloc(32)).update(master).digest();
    return createHmac('sha256', prk).update(Buffer.concat([Buffer.from(info), Buffer.from([1])])).digest();
  };
  assert.equal(keys.wrap, hkdf('sealpost/v1/pickup-wrap').toString('base64').replace(/=+$/, ''));
  assert.equal(Buffer.from(keys.verifier).toString('hex'), hkdf('sealpost/v1/pickup-unlock').toString('hex'));
  // Not the login labels: a MUC typed as a password would open nothing.
  const login = await kdf.derivePasswordKeys(muc, salt, MIN);
  assert.notEqual(login.wrap, keys.wrap);
  assert.notEqual(Buffer.from(login.verifier).toString('hex'), Buffer.from(keys.verifier).toString('hex'));
});

// Known answers computed with the Rust crates the CLI client derives with (argon2 0.6, hkdf
// 0.12: Argon2id then HKDF-SHA256 without salt under the pickup labels, as
// `derive_keys_with(.., PICKUP_LABELS)` in client/src/crypto/kdf.rs).
for (const [params, muc, wrap, verifier] of [
  [{ m_cost_kib: 8192, t_cost: 1, p_cost: 1 }, '7KQM2XHD9TRVB4NC', 'lwVS6uqHsIRbG9bZUR7sdQ/gdOSM2OWDl0JTrnZ3RCs', '5493d87f012edcd9c306beb2743e1520e1ac2e1cec9e021f74771fa964ec9918'],
  [{ m_cost_kib: 65536, t_cost: 3, p_cost: 1 }, '0123456789ABCDEF', 'v9vCYDUUBVidyt7I+4SEDOYs/pfaR/eNh8vKj1wzzK8', 'bbfefa982aec678e667d768cde79b0b927f76750e82333d3d13712118375e606'],
]) {
  test(`pickup KDF known answer (Rust) m=${params.m_cost_kib} t=${params.t_cost}`, async () => {
    const keys = await pc.derivePickupKeys(muc, new TextEncoder().encode('sealpost-kat-salt-0001'), params);
    assert.equal(keys.wrap, wrap);
    assert.equal(Buffer.from(keys.verifier).toString('hex'), verifier);
  });
}

test('a pickup seal: locked key, verifier, key_for_sender; the MUC unlocks, a re-lock makes a new MUC for the same key', async () => {
  const sender = await pgp.generateUserKey('alice@alpha.test', 'Alice');
  const made = await pc.makePickup('carol@outside.test', sender.privateKey, MIN, 14);
  const s = made.seal;
  assert.equal(s.address, 'carol@outside.test');
  assert.equal(s.expires_in_days, 14);
  assert.deepEqual(s.kdf, MIN);
  assert.equal(Buffer.from(s.salt, 'base64').length, 16);
  assert.equal(Buffer.from(s.verifier, 'base64').length, 32);
  assert.ok(!s.verifier.endsWith('='), 'verifier without padding');
  const cert = await pgp.readCert(s.cert);
  assert.equal(cert.getFingerprint().toUpperCase(), made.fingerprint);
  assert.deepEqual(cert.getUserIDs(), ['<carol@outside.test>']);
  assert.ok(await pgp.fullyLocked(s.locked_key), 'every secret key packet is locked');
  assert.ok(!s.locked_key.includes(made.muc) && !JSON.stringify(s).includes(made.muc), 'the seal does not hold the MUC');
  // The recipient's side: derive, unlock, decrypt what was sealed to the pickup key.
  const keys = await pc.derivePickupKeys(pc.parseMuc(pc.groupMuc(made.muc).toLowerCase()), Buffer.from(s.salt, 'base64'), s.kdf);
  assert.equal(Buffer.from(keys.verifier).toString('base64').replace(/=+$/, ''), s.verifier);
  const key = await pc.unlockPickupKey(s.locked_key, keys.wrap);
  const sealed = await pgp.seal(new TextEncoder().encode('hello carol'), [made.cert], sender.privateKey);
  const opened = await pgp.open(sealed, key, sender.privateKey.toPublic());
  assert.equal(new TextDecoder().decode(opened.data), 'hello carol');
  // A wrong MUC does not unlock.
  const wrong = await pc.derivePickupKeys(pc.generateMuc(), Buffer.from(s.salt, 'base64'), s.kdf);
  await assert.rejects(() => pc.unlockPickupKey(s.locked_key, wrong.wrap), pgp.WrongPassphrase);
  // Re-lock from the sender's copy: same key, new MUC, new salt.
  const re = await pc.relock(s.key_for_sender, sender.privateKey, made.fingerprint, MIN);
  assert.notEqual(re.muc, made.muc);
  assert.notEqual(re.salt, s.salt);
  const keys2 = await pc.derivePickupKeys(re.muc, Buffer.from(re.salt, 'base64'), re.kdf);
  const key2 = await pc.unlockPickupKey(re.locked_key, keys2.wrap);
  assert.equal(key2.getFingerprint(), key.getFingerprint());
  await assert.rejects(() => pc.relock(s.key_for_sender, sender.privateKey, 'AAAA', MIN), /another key/);
  // Only the sender can read key_for_sender.
  const other = await pgp.generateUserKey('mallory@alpha.test');
  await assert.rejects(() => pgp.decryptFromSelf(s.key_for_sender, other.privateKey));
});
