// Shamir's secret sharing over GF(2^8) for the compliance key's custody (docs/compliance.md,
// "Dual control"), interoperable with client/src/shamir.rs (vsss-rs). The arithmetic is
// `shamir-secret-sharing` (privy-io; audited by Cure53 and Zellic), the same field (AES,
// x^8 + x^4 + x^3 + x + 1).
//
// Share format, the same on both sides: one byte x (non-zero), then one y byte per byte of the
// secret. The library keeps x LAST; `split` and `combine` here move it.
//
// The lock: S (32 random bytes) → passphrase = lower-case hex of
// HKDF-SHA256(S, salt = none, info "sealpost/v1/compliance-lock", 32 bytes), as
// `custody::lock_passphrase` in the Rust client.
//
// Combining checks only shapes: a changed share gives a wrong S without an error; the locked
// key then refuses it.
import { combine as libCombine, split as libSplit } from 'shamir-secret-sharing';

export const SECRET_LEN = 32;
export const LOCK_INFO = 'sealpost/v1/compliance-lock';

/** `secret` split into `shares` shares, any `threshold` of which give it back (format above). */
export async function split(secret: Uint8Array, threshold: number, shares: number): Promise<Uint8Array[]> {
  if (!Number.isInteger(shares) || shares < 2 || shares > 255) throw new Error(`2 to 255 shares, not ${shares}`);
  if (!Number.isInteger(threshold) || threshold < 2 || threshold > shares) {
    throw new Error(`the threshold must be 2 to ${shares}, not ${threshold}`);
  }
  if (secret.length === 0) throw new Error('the secret is empty');
  return (await libSplit(secret, shares, threshold)).map(toOurs);
}

/** The secret from `shares` (at least the threshold of them). */
export async function combine(shares: Uint8Array[]): Promise<Uint8Array> {
  if (shares.length < 2 || shares.length > 255) throw new Error(`2 to 255 shares, not ${shares.length}`);
  const seen = new Set<number>();
  for (const [i, s] of shares.entries()) {
    if (s.length < 2 || s.length !== shares[0].length) throw new Error(`share ${i} is malformed: wrong length`);
    if (s[0] === 0) throw new Error(`share ${i} is malformed: x coordinate 0`);
    if (seen.has(s[0])) throw new Error(`share ${i} is malformed: the same x coordinate as an earlier share`);
    seen.add(s[0]);
  }
  return libCombine(shares.map(toLibrary));
}

/** The library's share (y bytes, x) in our format (x, y bytes). */
function toOurs(share: Uint8Array): Uint8Array {
  const out = new Uint8Array(share.length);
  out[0] = share[share.length - 1];
  out.set(share.subarray(0, share.length - 1), 1);
  return out;
}

/** Our share in the library's format. */
function toLibrary(share: Uint8Array): Uint8Array {
  const out = new Uint8Array(share.length);
  out.set(share.subarray(1), 0);
  out[share.length - 1] = share[0];
  return out;
}

/** A fresh random S. */
export function newSecret(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(SECRET_LEN));
}

/** The passphrase S locks the compliance key's TSK with (64 hex characters). */
export async function lockPassphrase(secret: Uint8Array): Promise<string> {
  const key = await crypto.subtle.importKey('raw', secret as BufferSource, 'HKDF', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits(
    { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: new TextEncoder().encode(LOCK_INFO) },
    key,
    256,
  );
  return [...new Uint8Array(bits)].map((b) => b.toString(16).padStart(2, '0')).join('');
}
