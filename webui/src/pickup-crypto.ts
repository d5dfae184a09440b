// The Message Unlock Code and the pickup key (docs/pickup.md), in the browser: the same steps as
// the CLI client's, so either can seal for the other's recipients and the node can tell
// neither a MUC nor a key that opens anything.
//   - MUC: 16 symbols of Crockford's base32, uniform from crypto.getRandomValues (80 bits),
//     shown as XXXX-XXXX-XXXX-XXXX; read leniently to a normal form (the KDF input);
//   - derivation: the password KDF (kdf.ts) with the labels `sealpost/v1/pickup-wrap` (the
//     pickup key's passphrase) and `sealpost/v1/pickup-unlock` (the verifier the node hashes);
//   - pickup key: a user-profile OpenPGP key for `<address>`, locked with the wrap passphrase;
//     a copy of its secret encrypted to the sender (`key_for_sender`) allows a new MUC later.
// The MUC lives in memory only: never in a URL, web storage or a log.
import { b64, derivePasswordKeys, type KdfLabels, type KdfParams, type PasswordKeys } from './kdf';
import * as pgp from './pgp';
import type { PickupSeal } from './pickup-wire';

export const MUC_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
export const MUC_LENGTH = 16;
export const PICKUP_LABELS: KdfLabels = { wrap: 'sealpost/v1/pickup-wrap', verifier: 'sealpost/v1/pickup-unlock' };

/** A fresh MUC in its normal form (16 symbols). 32 symbols divide 256, so `byte & 31` is
 * uniform: no modulo bias. */
export function generateMuc(random: (a: Uint8Array<ArrayBuffer>) => Uint8Array = (a) => crypto.getRandomValues(a)): string {
  const bytes = random(new Uint8Array(MUC_LENGTH));
  let out = '';
  for (const b of bytes) out += MUC_ALPHABET[b & 31];
  bytes.fill(0);
  return out;
}

/** The MUC as people read it out: four groups of four joined by `-`. */
export function groupMuc(normal: string): string {
  return normal.match(/.{1,4}/g)!.join('-');
}

export class MucError extends Error {}

/** Reads a typed MUC leniently: case-insensitive, spaces and dashes ignored, O→0, I and L→1.
 * Anything else, or a length other than 16, is refused before any network request. */
export function parseMuc(input: string): string {
  const s = input.toUpperCase().replace(/[\s\-\u2010-\u2015\u2212]/g, '').replace(/O/g, '0').replace(/[IL]/g, '1');
  const bad = [...s].filter((c) => !MUC_ALPHABET.includes(c));
  if (bad.length) throw new MucError(`The code cannot contain “${[...new Set(bad)].join('')}”. It has only digits and letters (no U).`);
  if (s.length !== MUC_LENGTH) {
    throw new MucError(s.length < MUC_LENGTH
      ? `The code is too short: ${s.length} of ${MUC_LENGTH} characters.`
      : `The code is too long: ${s.length} characters instead of ${MUC_LENGTH}.`);
  }
  return s;
}

/** Wrap passphrase and verifier of a MUC (normal form) under a pickup's salt and parameters. */
export async function derivePickupKeys(muc: string, salt: Uint8Array, params: KdfParams): Promise<PasswordKeys> {
  if (!/^[0-9A-HJKMNP-TV-Z]{16}$/.test(muc)) throw new MucError('not a MUC in normal form');
  return derivePasswordKeys(muc, salt, params, PICKUP_LABELS);
}

/** The MUC-dependent half of a seal: lock `key` under a fresh MUC. Also what a re-lock sends. */
export interface Locked {
  muc: string;
  locked_key: string;
  salt: string;
  kdf: KdfParams;
  verifier: string;
}

export async function lockUnderNewMuc(key: pgp.PrivateKey, params: KdfParams): Promise<Locked> {
  const muc = generateMuc();
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const keys = await derivePickupKeys(muc, salt, params);
  const locked_key = await pgp.wrapKey(key, keys.wrap);
  return { muc, locked_key, salt: b64(salt), kdf: params, verifier: b64(keys.verifier).replace(/=+$/, '') };
}

export interface MadePickup {
  /** What goes into `SubmitRequest.pickups`. */
  seal: PickupSeal;
  /** The MUC in normal form, to show the sender once. */
  muc: string;
  /** The public pickup key, to encrypt every part to. */
  cert: pgp.PublicKey;
  fingerprint: string;
}

/** Makes the pickup key of one outside recipient and its seal. */
export async function makePickup(address: string, me: pgp.PrivateKey, params: KdfParams, expiresInDays?: number): Promise<MadePickup> {
  const key = await pgp.generateUserKey(address);
  const locked = await lockUnderNewMuc(key.privateKey, params);
  const key_for_sender = await pgp.encryptToSelf(key.privateKey.armor(), me);
  const { muc, ...rest } = locked;
  const seal: PickupSeal = { address, cert: key.publicArmored, ...rest, key_for_sender };
  if (expiresInDays !== undefined) seal.expires_in_days = expiresInDays;
  return { seal, muc, cert: key.privateKey.toPublic(), fingerprint: key.fingerprint };
}

/** A new MUC for an existing pickup: the sender's copy of the key decrypted with the sender's
 * key, checked to be the pickup key the envelope names, and locked anew. */
export async function relock(keyForSender: string, me: pgp.PrivateKey, expectFingerprint: string | undefined, params: KdfParams): Promise<Locked> {
  const key = await pgp.readUnlockedKey(await pgp.decryptFromSelf(keyForSender, me));
  if (expectFingerprint && key.getFingerprint().toUpperCase() !== expectFingerprint.toUpperCase()) {
    throw new Error('The node returned another key than the one this message was encrypted to. Tell your administrator.');
  }
  return lockUnderNewMuc(key, params);
}

/** A pickup thread's key as the node offers it (`pickup_thread`, docs/pickup.md "Threads"):
 * our own copy (`key_for_sender`) must decrypt with our key, carry our signature (the node could
 * encrypt a key of its own to us, never sign one) and be the certificate offered. Returns the
 * public key from our copy, to encrypt the next message to; no new code. */
export async function threadKey(keyForSender: string, me: pgp.PrivateKey, offeredCert: string): Promise<{ cert: pgp.PublicKey; fingerprint: string }> {
  let key: pgp.PrivateKey;
  try {
    key = await pgp.readUnlockedKey(await pgp.decryptSignedBySelf(keyForSender, me));
  } catch {
    throw new Error('The node offered a pickup key that your own earlier message did not make. Tell your administrator.');
  }
  const offered = await pgp.readCert(offeredCert);
  if (key.getFingerprint() !== offered.getFingerprint()) {
    throw new Error('The node offered another key than the one your earlier message made. Tell your administrator.');
  }
  return { cert: key.toPublic(), fingerprint: key.getFingerprint().toUpperCase() };
}

/** The recipient's side: the pickup key unlocked with the MUC's wrap passphrase. */
export async function unlockPickupKey(lockedKey: string, wrap: string): Promise<pgp.PrivateKey> {
  return pgp.unwrapKey(lockedKey, wrap);
}
