// The browser's password KDF against the known-answer vectors of client/src/crypto/tests.rs
// (`derive_password_keys_known_answers`, computed independently with OpenSSL).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { load } from './bundle.mjs';

const { derivePasswordKeys, validateKdf } = await load('src/kdf.ts');
const hex = (b) => Buffer.from(b).toString('hex');
const password = 'correct horse battery staple';
const salt = new TextEncoder().encode('sealpost-kat-salt-0001');

for (const [params, wrap, login] of [
  [{ m_cost_kib: 8192, t_cost: 1, p_cost: 1 }, 'QW4armO7B35TAiVrXqr5M1Udf7ILXSmhDu0QIwg5v9A', '1f0f6dfaad7e30199ec99d9f54ff724ce5fdd7982afd94376d28e7f7db340a60'],
  [{ m_cost_kib: 65536, t_cost: 3, p_cost: 1 }, '37TRbnGXZaTNHCMC6Mh4P7T7VCCC/p/5tFZU6gr8CRE', '53736aa2068eabf778e1195ebe4ecfc118417ee5a19c3156d179aab435a6b95c'],
]) {
  test(`KDF known answer m=${params.m_cost_kib} t=${params.t_cost}`, async () => {
    const keys = await derivePasswordKeys(password, salt, params);
    assert.equal(keys.wrap, wrap);
    assert.equal(hex(keys.verifier), login);
  });
}

test('KDF parameters outside the safe range are refused', () => {
  for (const bad of [{ m_cost_kib: 8191, t_cost: 1, p_cost: 1 }, { m_cost_kib: 8192, t_cost: 0, p_cost: 1 }, { m_cost_kib: 8192, t_cost: 11, p_cost: 1 }, { m_cost_kib: 8192, t_cost: 1, p_cost: 9 }]) {
    assert.throws(() => validateKdf(bad));
  }
});
