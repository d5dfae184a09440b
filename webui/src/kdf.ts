// The password KDF, byte-for-byte the one in client/src/crypto/kdf.rs (`derive_password_keys`):
//   master   = Argon2id(password, salt, m, t, p, 32 bytes, v0x13)
//   wrap     = base64-no-pad(HKDF-SHA256(master, salt = none, "sealpost/v1/key-wrap", 32))
//   verifier = HKDF-SHA256(master, salt = none, "sealpost/v1/login", 32)
// `wrap` is the OpenPGP passphrase of the secret key; only `verifier` is ever sent to the node.
// The web app's S/MIME signing key is wrapped with AES-256-GCM under
//   smime    = HKDF-SHA256(wrap's 43 characters, salt = none, "sealpost/v1/smime-key-wrap", 32)
// (`smimeWrapKey`): WebCrypto cannot use an OpenPGP passphrase, and a distinct label keeps the
// two uses of the login secret apart.
import { argon2id } from 'hash-wasm';
import type { components } from './api-types';

/** Argon2id's cost parameters, as the node's wire type `KdfParams` (generated). */
export type KdfParams = components['schemas']['KdfParams'];

export const DEFAULT_KDF: KdfParams = { m_cost_kib: 65536, t_cost: 3, p_cost: 1 };

export interface PasswordKeys {
  /** The OpenPGP passphrase protecting the secret key (43 base64 characters). */
  wrap: string;
  /** The 32 bytes sent at login instead of the password. */
  verifier: Uint8Array;
}

/** The same bounds as `KdfParams::validate`: a hostile node must not weaken or exhaust us. */
export function validateKdf(p: KdfParams): void {
  const ok =
    Number.isInteger(p.m_cost_kib) && p.m_cost_kib >= 8192 && p.m_cost_kib <= 1048576 &&
    Number.isInteger(p.t_cost) && p.t_cost >= 1 && p.t_cost <= 10 &&
    Number.isInteger(p.p_cost) && p.p_cost >= 1 && p.p_cost <= 8;
  if (!ok) throw new Error('the node asked for password hashing parameters outside the safe range');
}

async function hkdf(master: Uint8Array, info: string): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey('raw', master as BufferSource, 'HKDF', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits(
    { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: new TextEncoder().encode(info) },
    key,
    256,
  );
  return new Uint8Array(bits);
}

export function b64(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

export function unb64(text: string): Uint8Array {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** The HKDF labels of one use of the KDF: the account's (`key-wrap`, `login`), or a pickup's
 * (`pickup-wrap`, `pickup-unlock`, docs/pickup.md). */
export interface KdfLabels {
  wrap: string;
  verifier: string;
}

export const LOGIN_LABELS: KdfLabels = { wrap: 'sealpost/v1/key-wrap', verifier: 'sealpost/v1/login' };

export async function derivePasswordKeys(
  password: string,
  salt: Uint8Array,
  params: KdfParams,
  labels: KdfLabels = LOGIN_LABELS,
): Promise<PasswordKeys> {
  validateKdf(params);
  if (salt.length < 16) throw new Error('the password salt is too short');
  const master = (await argon2id({
    password: new TextEncoder().encode(password),
    salt,
    parallelism: params.p_cost,
    iterations: params.t_cost,
    memorySize: params.m_cost_kib,
    hashLength: 32,
    outputType: 'binary',
  })) as Uint8Array;
  try {
    const wrap = b64(await hkdf(master, labels.wrap)).replace(/=+$/, '');
    const verifier = await hkdf(master, labels.verifier);
    return { wrap, verifier };
  } finally {
    master.fill(0);
  }
}

/** The AES-256-GCM key that wraps the web app's S/MIME signing key, from the account's
 * `wrap` (see the top of this file). Not extractable: it stays in this tab's memory. */
export async function smimeWrapKey(wrap: string): Promise<CryptoKey> {
  const ikm = await crypto.subtle.importKey('raw', new TextEncoder().encode(wrap) as BufferSource, 'HKDF', false, ['deriveKey']);
  return crypto.subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: new TextEncoder().encode('sealpost/v1/smime-key-wrap') },
    ikm,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
}
