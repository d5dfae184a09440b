// All OpenPGP in the browser, through OpenPGP.js (lightweight build: the rarely used
// algorithms load on demand). The formats are those of the CLI client (the crate in client/,
// client/src/crypto), so a user can use both and messages travel between them:
//   - keys: OpenPGP v4, Ed25519 primary (certify + sign), Cv25519 subkey, SEIPDv1 only;
//   - the secret key is wrapped with the password-derived passphrase (standard S2K);
//   - each message part is one OpenPGP message, signed and encrypted to every recipient and
//     the sender; the envelope is signed with a detached binary signature over its exact bytes.
import * as openpgp from 'openpgp/lightweight';
import type { PrivateKey, PublicKey, Key } from 'openpgp/lightweight';

export type { PrivateKey, PublicKey };

/** Iteration count byte of the S2K that wraps the secret key. The passphrase is already a
 * 256-bit Argon2id+HKDF output, so iterating adds nothing but time at every login; 96 means
 * 65,536 bytes hashed (OpenPGP.js's default would be 16 MiB, sequoia's 62 MiB). */
export const S2K_COUNT_BYTE = 96;

const config = {
  v6Keys: false,
  aeadProtect: false,
  s2kIterationCountByte: S2K_COUNT_BYTE,
  preferredCompressionAlgorithm: openpgp.enums.compression.zlib,
};

export interface GeneratedKey {
  privateKey: PrivateKey;
  publicArmored: string;
  fingerprint: string;
}

export async function generateUserKey(address: string, name?: string): Promise<GeneratedKey> {
  const { privateKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [name ? { name, email: address } : { email: address }],
    format: 'object',
    config,
  });
  return {
    privateKey,
    publicArmored: privateKey.toPublic().armor(),
    fingerprint: privateKey.getFingerprint().toUpperCase(),
  };
}

/** Encrypts every secret key of `key` with `passphrase`; returns the armored TSK. The
 * decrypted `key` is left as it is (OpenPGP.js works on a copy). */
export async function wrapKey(key: PrivateKey, passphrase: string): Promise<string> {
  const wrapped = await openpgp.encryptKey({ privateKey: key, passphrase, config });
  return wrapped.armor();
}

export class WrongPassphrase extends Error {}

export async function unwrapKey(armored: string, passphrase: string): Promise<PrivateKey> {
  const privateKey = await openpgp.readPrivateKey({ armoredKey: armored });
  try {
    return await openpgp.decryptKey({ privateKey, passphrase });
  } catch (e) {
    if (/passphrase/i.test(String(e))) throw new WrongPassphrase('the password does not unlock the key');
    throw e;
  }
}

export async function readCert(armored: string): Promise<PublicKey> {
  return openpgp.readKey({ armoredKey: armored }) as Promise<PublicKey>;
}

export async function readCerts(binaryOrArmored: Uint8Array | string): Promise<PublicKey[]> {
  const keys = typeof binaryOrArmored === 'string'
    ? await openpgp.readKeys({ armoredKeys: binaryOrArmored })
    : await openpgp.readKeys({ binaryKeys: binaryOrArmored });
  return keys.map((k) => (k.isPrivate() ? k.toPublic() : k)) as PublicKey[];
}

/** Signs, compresses and encrypts `plain` for `recipients` and the sender. */
export async function seal(plain: Uint8Array, recipients: PublicKey[], me: PrivateKey): Promise<Uint8Array> {
  const message = await openpgp.createMessage({ binary: plain, format: 'binary' });
  return (await openpgp.encrypt({
    message,
    encryptionKeys: [...recipients, me.toPublic()],
    signingKeys: me,
    format: 'binary',
    config,
  })) as Uint8Array;
}

/** An external copy (docs/mail.md): `plain` encrypted to exactly `keys`, signed by `signer`
 * when given (OpenPGP mail: the recipient's key and the sender's, signed by the sender;
 * enforced TLS: the node's transit key alone). Binary, SEIPDv1 as every message here. */
export async function encryptTo(plain: Uint8Array, keys: PublicKey[], signer?: PrivateKey): Promise<Uint8Array> {
  const message = await openpgp.createMessage({ binary: plain, format: 'binary' });
  return (await openpgp.encrypt({
    message,
    encryptionKeys: keys,
    signingKeys: signer,
    format: 'binary',
    config,
  })) as Uint8Array;
}

/** An OpenPGP message that came by SMTP, armored (a PGP/MIME payload as it came) or binary. */
async function readArrived(cipher: Uint8Array) {
  const head = new TextDecoder().decode(cipher.subarray(0, 64));
  return head.includes('-----BEGIN PGP MESSAGE-----')
    ? openpgp.readMessage({ armoredMessage: new TextDecoder().decode(cipher) })
    : openpgp.readMessage({ binaryMessage: cipher });
}

/** The compliance key's session-key packet for mail that came encrypted to us only
 * (docs/compliance.md, "Waiting copies"): the session key of `cipher` (decrypted with `me`)
 * wrapped for `compliance`'s encryption key, one binary PKESK made by OpenPGP.js. The CLI's
 * `crypto::compliance_packet`; the caller checked `compliance` with `complianceKeyOf`. */
export async function compliancePacket(cipher: Uint8Array, me: PrivateKey, compliance: PublicKey): Promise<Uint8Array> {
  const message = await readArrived(cipher);
  const keys = await openpgp.decryptSessionKeys({ message, decryptionKeys: me });
  const sk = keys[0];
  if (!sk || !sk.algorithm) throw new Error('The session key of this mail could not be recovered.');
  return (await openpgp.encryptSessionKey({
    data: sk.data,
    algorithm: sk.algorithm,
    encryptionKeys: compliance,
    format: 'binary',
    config,
  })) as Uint8Array;
}

/** Decrypts `cipher` (armored or binary) with `me`, without requiring a signature: mail that
 * came by SMTP is signed, if at all, by keys this app does not know. Returns the plaintext and
 * the key IDs of any signatures it carries. */
export async function decryptArrived(cipher: Uint8Array, me: PrivateKey): Promise<{ data: Uint8Array; signedBy: string[] }> {
  const message = await readArrived(cipher);
  const result = await openpgp.decrypt({ message, decryptionKeys: me, format: 'binary' });
  return { data: result.data as Uint8Array, signedBy: Array.from(result.signatures, (s) => s.keyID.toHex().toUpperCase()) };
}

export class BadSignature extends Error {}

/** `seal` for a stream: the plaintext is read as the ciphertext is consumed (OpenPGP.js
 * streaming; a one-pass signature, partial-length packets), so neither is ever whole in memory.
 * The same packets as `seal` (and the CLI): signed, compressed as configured, SEIPDv1. */
export async function sealStream(plain: ReadableStream<Uint8Array>, recipients: PublicKey[], me: PrivateKey): Promise<ReadableStream<Uint8Array>> {
  const message = await openpgp.createMessage({ binary: plain, format: 'binary' });
  return (await openpgp.encrypt({
    message,
    encryptionKeys: [...recipients, me.toPublic()],
    signingKeys: me,
    format: 'binary',
    config,
  })) as unknown as ReadableStream<Uint8Array>;
}

/** `open` for a stream. Only for ciphertext already authenticated by other means (the caller
 * checks it against the hash in the sender's signed envelope before decrypting): SEIPDv1 then
 * streams its plaintext before its MDC is checked (`allowUnauthenticatedStream`), which is safe
 * because the node cannot have altered a single byte. Returns the plaintext stream and a
 * promise that settles once it has been read to its end: resolved when the sender's signature
 * verifies, rejected (BadSignature) otherwise. A bad MDC or signature also errors the stream. */
export async function openStream(
  cipher: ReadableStream<Uint8Array>,
  me: PrivateKey,
  sender: PublicKey,
): Promise<{ data: ReadableStream<Uint8Array>; verified: Promise<void> }> {
  const streamConfig = { allowUnauthenticatedStream: true };
  const message = await openpgp.readMessage({ binaryMessage: cipher, config: streamConfig });
  let result;
  try {
    result = await openpgp.decrypt({
      message,
      decryptionKeys: me,
      verificationKeys: [sender],
      expectSigned: true,
      format: 'binary',
      config: streamConfig,
    });
  } catch (e) {
    const text = String(e);
    if (/signature|not signed/i.test(text)) throw new BadSignature(text);
    throw e;
  }
  const checks = result.signatures.map((sig) => sig.verified);
  checks.forEach((c) => c.catch(() => {})); // judged below, once the data has been read
  const verified = (async () => {
    if (!checks.length) throw new BadSignature('the attachment is not signed');
    try {
      await Promise.any(checks);
    } catch (e) {
      throw new BadSignature(String(e));
    }
  })();
  verified.catch(() => {});
  return { data: result.data as unknown as ReadableStream<Uint8Array>, verified };
}

/** Decrypts `cipher` and checks it is signed by `sender`; returns the plaintext and the
 * signer's primary fingerprint. */
export async function open(
  cipher: Uint8Array,
  me: PrivateKey,
  sender: PublicKey,
): Promise<{ data: Uint8Array; signer: string }> {
  const message = await openpgp.readMessage({ binaryMessage: cipher });
  let result;
  try {
    result = await openpgp.decrypt({
      message,
      decryptionKeys: me,
      verificationKeys: [sender],
      expectSigned: true,
      format: 'binary',
    });
  } catch (e) {
    const text = String(e);
    if (/signature/i.test(text)) throw new BadSignature(text);
    throw e;
  }
  return { data: result.data as Uint8Array, signer: sender.getFingerprint().toUpperCase() };
}

/** A detached binary signature over `data` (the envelope's exact bytes). */
export async function signDetached(data: Uint8Array, me: PrivateKey): Promise<string> {
  const message = await openpgp.createMessage({ binary: data, format: 'binary' });
  return (await openpgp.sign({ message, signingKeys: me, detached: true, format: 'armored', config })) as string;
}

export async function verifyDetached(data: Uint8Array, armoredSignature: string, signer: PublicKey): Promise<void> {
  const message = await openpgp.createMessage({ binary: data, format: 'binary' });
  const signature = await openpgp.readSignature({ armoredSignature });
  try {
    await openpgp.verify({ message, signature, verificationKeys: signer, expectSigned: true });
  } catch (e) {
    throw new BadSignature(String(e));
  }
}

function emailOf(userID: string): string {
  const m = /<([^>]+)>\s*$/.exec(userID);
  return (m ? m[1] : userID).trim().toLowerCase();
}

/** Whether `certifier`'s primary key made a valid, unexpired, unretracted certification of
 * `cert`'s user ID for `address` (the CLI's `crypto::ca_certifies`). Checked by hand: OpenPGP.js's
 * own certificate checks want a signing-capable key, and an organisation CA certifies only. */
export async function certifies(certifier: Key, cert: PublicKey, address: string, marking?: (sig: any) => boolean): Promise<boolean> {
  if (await certifier.isRevoked()) return false;
  const issuer = certifier.getKeyID().toHex();
  const now = new Date();
  for (const user of cert.users as any[]) {
    if (!user.userID || emailOf(user.userID.userID) !== address.toLowerCase()) continue;
    const data = { userID: user.userID, key: cert.keyPacket };
    const valid = async (sig: any, types: number[]) => {
      if (!sig.issuerKeyID || sig.issuerKeyID.toHex() !== issuer || !types.includes(sig.signatureType)) return false;
      try {
        await sig.verify(certifier.keyPacket, sig.signatureType, data, now, false, openpgp.config);
        return true;
      } catch {
        return false;
      }
    };
    const S = openpgp.enums.signature;
    let newestCert = 0;
    for (const sig of user.otherCertifications) {
      if (marking && !marking(sig)) continue;
      if (await valid(sig, [S.certGeneric, S.certPersona, S.certCasual, S.certPositive])) newestCert = Math.max(newestCert, sig.created.getTime());
    }
    if (!newestCert) continue;
    let newestRevocation = 0;
    for (const sig of user.revocationSignatures) {
      if (await valid(sig, [S.certRevocation])) newestRevocation = Math.max(newestRevocation, sig.created.getTime());
    }
    if (newestCert > newestRevocation) return true;
  }
  return false;
}

/** The notation of the CA's certification that marks its organisation's compliance key
 * (docs/compliance.md), and its one value. */
export const COMPLIANCE_NOTATION = 'compliance@sealpost.org';
export const COMPLIANCE_ARCHIVE = 'archive';

function hasComplianceMarking(sig: any): boolean {
  const archive = new TextEncoder().encode(COMPLIANCE_ARCHIVE);
  return (sig.rawNotations ?? []).some(
    (n: { name: string; value: Uint8Array }) =>
      n.name === COMPLIANCE_NOTATION && n.value.length === archive.length && n.value.every((b, i) => b === archive[i]),
  );
}

/** Throws unless `cert` is `domain`'s compliance key as marked by `ca` (the CA already
 * trusted for that domain): a valid, unretracted certification by `ca` of
 * `compliance@DOMAIN` with the marking notation, and an encryption key valid now. The CLI's
 * `crypto::compliance_key_of`. */
export async function complianceKeyOf(cert: PublicKey, ca: Key, domain: string): Promise<void> {
  const address = `compliance@${domain.toLowerCase()}`;
  if (await cert.isRevoked()) throw new Error(`the compliance key of ${domain} is revoked`);
  if (!(await certifies(ca, cert, address, hasComplianceMarking))) {
    throw new Error(`no certification by the CA of ${domain} marks this key as its compliance key`);
  }
  try {
    await cert.getEncryptionKey();
  } catch {
    throw new Error(`the compliance key of ${domain} has no encryption key valid now`);
  }
}

export async function isRevoked(cert: PublicKey): Promise<boolean> {
  return cert.isRevoked();
}

type CertKind =
  | { kind: 'certify' }
  | { kind: 'introducer'; scope?: string }
  | { kind: 'retract' };

/** The regular expression scoping an introducer to a domain, as sealpost_trust writes it. */
export function domainRegex(domain: string): string {
  return `<[^>]+[@.]${domain.toLowerCase().replace(/\./g, '\\.')}>$`;
}

/** Makes `me`'s certification (plain, trust signature depth 1 amount 120 optionally scoped,
 * or a certification revocation) of every user ID of `target` with `address`, dated strictly
 * after any earlier signature of ours there (OpenPGP keeps whole seconds, and a retraction
 * supersedes only older certifications). Returns `target` with the signatures, armored. */
export async function certification(me: PrivateKey, target: PublicKey, address: string, what: CertKind): Promise<string> {
  const signingKey = me.keyPacket as any;
  const myID = me.getKeyID().toHex();
  let touched = 0;
  for (const user of target.users as any[]) {
    if (!user.userID || emailOf(user.userID.userID) !== address.toLowerCase()) continue;
    const mine = [...user.otherCertifications, ...user.revocationSignatures].filter(
      (s: any) => s.issuerKeyID && s.issuerKeyID.toHex() === myID,
    );
    let when = Math.floor(Date.now() / 1000);
    for (const s of mine) when = Math.max(when, Math.floor(s.created.getTime() / 1000) + 1);
    const sig = new (openpgp as any).SignaturePacket();
    sig.signatureType = what.kind === 'retract'
      ? openpgp.enums.signature.certRevocation
      : openpgp.enums.signature.certGeneric;
    sig.publicKeyAlgorithm = signingKey.algorithm;
    sig.hashAlgorithm = openpgp.enums.hash.sha256;
    if (what.kind === 'introducer') {
      sig.trustLevel = 1;
      sig.trustAmount = 120;
      if (what.scope) sig.regularExpression = new TextEncoder().encode(domainRegex(what.scope) + '\0');
    }
    if (what.kind === 'retract') {
      sig.reasonForRevocationFlag = openpgp.enums.reasonForRevocation.noReason;
      sig.reasonForRevocationString = 'certification retracted';
    }
    await sig.sign(signingKey, { userID: user.userID, key: target.keyPacket }, new Date(when * 1000), false, openpgp.config);
    (what.kind === 'retract' ? user.revocationSignatures : user.otherCertifications).push(sig);
    touched++;
  }
  if (!touched) throw new Error(`the key has no user ID for ${address}`);
  return target.armor();
}

/** Revokes `me` ("key retired") and returns the armored public certificate with the revocation. */
export async function revokeOwnKey(me: PrivateKey, reason: string): Promise<string> {
  const { publicKey } = await openpgp.revokeKey({
    key: me,
    reasonForRevocation: { flag: openpgp.enums.reasonForRevocation.keyRetired, string: reason },
    format: 'armored',
  });
  return publicKey as string;
}

/** A fingerprint as people compare it: upper-case hex in groups of four. */
export function groupFingerprint(fpr: string): string {
  return fpr.toUpperCase().replace(/(.{4})(?=.)/g, '$1 ');
}

export async function sha256hex(data: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', data as BufferSource));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Encrypts `text` to `me` alone (no signature): how a sender keeps a pickup key's secret for
 * later re-locking (`key_for_sender`). Armored. */
export async function encryptToSelf(text: string, me: PrivateKey): Promise<string> {
  const message = await openpgp.createMessage({ text, format: 'utf8' });
  // Signed too: anyone can encrypt to our public key, only we can sign (a pickup thread's key
  // is trusted because our own signature is on its copy).
  return (await openpgp.encrypt({ message, encryptionKeys: me.toPublic(), signingKeys: me, format: 'armored', config })) as string;
}

/** Decrypts what `encryptToSelf` made and requires our own signature on it. */
export async function decryptSignedBySelf(armored: string, me: PrivateKey): Promise<string> {
  const message = await openpgp.readMessage({ armoredMessage: armored });
  const { data, signatures } = await openpgp.decrypt({ message, decryptionKeys: me, verificationKeys: me.toPublic(), expectSigned: true, format: 'utf8' });
  await Promise.all(signatures.map((sig) => sig.verified));
  return data as string;
}

/** Decrypts what `encryptToSelf` made. */
export async function decryptFromSelf(armored: string, me: PrivateKey): Promise<string> {
  const message = await openpgp.readMessage({ armoredMessage: armored });
  const { data } = await openpgp.decrypt({ message, decryptionKeys: me, format: 'utf8' });
  return data as string;
}

/** Reads an armored secret key that must be unlocked (every secret present and decrypted). */
export async function readUnlockedKey(armored: string): Promise<PrivateKey> {
  const k = await openpgp.readPrivateKey({ armoredKey: armored });
  if (!k.isDecrypted()) throw new Error('the key is locked');
  return k;
}

/** Whether every secret key packet of the armored key is encrypted (what the node requires of
 * a pickup's `locked_key`). */
export async function fullyLocked(armored: string): Promise<boolean> {
  const k = await openpgp.readPrivateKey({ armoredKey: armored });
  const packets = [k.keyPacket, ...k.subkeys.map((s) => s.keyPacket)] as any[];
  return packets.every((p) => typeof p.isDecrypted === 'function' && p.isDecrypted() === false);
}

/** `data` encrypted to `key` alone, unsigned, armored: a share of the compliance key's lock
 * (docs/compliance.md, "Dual control"), as the Rust client's `custody::wrap_share`. */
export async function encryptShare(data: Uint8Array, key: PublicKey): Promise<string> {
  const message = await openpgp.createMessage({ binary: data, format: 'binary' });
  return (await openpgp.encrypt({ message, encryptionKeys: key, format: 'armored', config })) as string;
}
