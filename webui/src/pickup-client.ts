// The outside recipient's side of a pickup (docs/pickup.md), in the browser: open the link,
// prove the MUC, unlock the pickup key, verify and decrypt, reply. The same integrity rules as
// a mailbox reader (client.ts): the envelope's signature by the sender, every part's size and
// SHA-256 against the signed envelope before decrypting, the signed head bound to it.
// The token and the session are held by the caller in memory and sent only in request bodies
// and the Authorization header: never in a URL, web storage or a log.
import * as api from './api';
import type { Head, ResolvedRecipient } from './api';
import * as client from './client';
import { b64, unb64 } from './kdf';
import * as pgp from './pgp';
import { derivePickupKeys, unlockPickupKey } from './pickup-crypto';
import type { PickupEnvelope, PickupInfo, PickupUnlocked } from './pickup-wire';
import { throttled } from './streams';

/** An answer of the pickup API that is not a success, with what the page needs of it. */
export class PickupError extends Error {
  constructor(public status: number, public code: string, message: string, public attemptsLeft?: number) {
    super(message);
  }
}

const UNREACHABLE = 'The secure message server cannot be reached. Check your connection, then try again.';

async function call<T>(method: string, path: string, body: unknown, session?: string): Promise<T> {
  let resp: Response;
  try {
    resp = await fetch(api.PREFIX + path, {
      method,
      headers: { 'content-type': 'application/json', ...(session ? { authorization: `Bearer ${session}` } : {}) },
      body: JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
      referrerPolicy: 'no-referrer',
    });
  } catch {
    throw new PickupError(0, 'network', UNREACHABLE);
  }
  let json: any = null;
  try {
    json = await resp.json();
  } catch {
    /* not JSON */
  }
  if (!resp.ok) {
    const left = typeof json?.attempts_left === 'number' ? json.attempts_left : undefined;
    throw new PickupError(resp.status, json?.code ?? 'http', json?.message ?? `The server answered HTTP ${resp.status}.`, left);
  }
  return json as T;
}

/** What the link shows before any code: sender, organisation, expiry. Changes nothing. */
export function openPickup(token: string): Promise<PickupInfo> {
  return call<PickupInfo>('POST', '/pickup/open', { token });
}

/** A pickup opened with its MUC: everything read and checked, ready to show. */
export interface Unlocked {
  session: string;
  key: pgp.PrivateKey;
  /** The outside recipient's address (the pickup key's user ID, bound by the signed envelope). */
  address: string;
  envelope: PickupEnvelope;
  head: Head;
  sender: pgp.PublicKey;
  senderFingerprint: string;
  /** The organisation CA's fingerprint as the node gives it. */
  caFingerprint: string;
  /** Whether that CA's certification of the sender's key for their address was checked here. */
  caCertifies: boolean;
  /** The organisations whose compliance archive the message also went to, as the node reads
   * them from the head's PKESKs (the reader's `compliance`, docs/compliance.md). */
  compliance: string[];
}

/** A pickup unlocked and its envelope checked, its content not fetched yet (`read`). */
export interface Checked {
  session: string;
  key: pgp.PrivateKey;
  address: string;
  envelope: PickupEnvelope;
  sender: pgp.PublicKey;
  /** The unlock answer, as the node gave it. */
  u: PickupUnlocked;
  /** Set when the message is registered for this recipient (docs/evidence.md, "Pickup
   * recipients"): no part is released before `decide` accepts it. */
  registered: api.RegisteredView | null;
}

/** Derives the MUC's keys, proves the verifier, unlocks the pickup key and checks the signed
 * envelope; fetches nothing of the message (`read` does). `muc` is in normal form
 * (`parseMuc`). Throws PickupError for the node's refusals (wrong code with attempts left,
 * locked, expired, withdrawn) and Error when a check fails. */
export async function unlock(token: string, info: PickupInfo, muc: string, step: (what: string) => void): Promise<Checked> {
  step('Deriving the keys from your code');
  const keys = await derivePickupKeys(muc, unb64(info.salt), info.kdf);
  step('Checking the code');
  const u = await call<PickupUnlocked>('POST', '/pickup/unlock', { token, verifier: b64(keys.verifier).replace(/=+$/, '') });
  step('Unlocking the message key');
  let key: pgp.PrivateKey;
  try {
    key = await unlockPickupKey(u.locked_key, keys.wrap);
  } catch {
    throw new Error('The server accepted the code, but it does not unlock the message key: the message may have been tampered with. Ask the sender to send it again.');
  }
  step('Checking the sender’s signature');
  const envelope: PickupEnvelope = JSON.parse(u.envelope);
  const sender = await pgp.readCert(u.sender_cert);
  try {
    await pgp.verifyDetached(new TextEncoder().encode(u.envelope), u.signature, sender);
  } catch {
    throw new Error('The sender’s signature on this message does not verify: it may be forged or altered. Do not trust it.');
  }
  const fpr = key.getFingerprint().toUpperCase();
  const address = Object.entries(envelope.pickup ?? {}).find(([, f]) => f.toUpperCase() === fpr)?.[0];
  if (!address || !envelope.to.includes(address)) {
    throw new Error('The signed message does not name this pickup key: it was not sent to you this way. Do not trust it.');
  }
  const senderIds = sender.getUserIDs().map((id) => (/<([^>]+)>\s*$/.exec(id)?.[1] ?? id).toLowerCase());
  if (!senderIds.includes(envelope.from)) throw new Error(`The key that signed the message is not ${envelope.from}’s.`);
  const registered = u.registered && (envelope.registered ?? []).some((a) => a.toLowerCase() === address.toLowerCase()) ? u.registered : null;
  return { session: u.session, key, address, envelope, sender, u, registered };
}

/** Downloads, checks and decrypts the message's signed head (part 0). For a registered message
 * only after `decide` accepted it: the node refuses the part before (`receipt_required`). */
export async function read(c: Checked, step: (what: string) => void): Promise<Unlocked> {
  const { u, key, envelope, sender, address } = c;
  step('Downloading and decrypting');
  const auth = { authorization: `Bearer ${u.session}` };
  const part0 = envelope.parts[0];
  const cipher = await api.download('/pickup/parts/0', part0.size, () => {}, auth);
  if ((await pgp.sha256hex(cipher)) !== part0.sha256) throw new Error('The message does not match what the sender signed: it was altered.');
  const { data } = await pgp.open(cipher, key, sender);
  const head: Head = JSON.parse(new TextDecoder().decode(data));
  if (head.message_id !== envelope.message_id || head.from !== envelope.from) {
    throw new Error('The signed content belongs to another message or sender.');
  }
  const caCertifies = await checkCa(u, sender, envelope.from);
  return { session: u.session, key, address, envelope, head, sender, senderFingerprint: sender.getFingerprint().toUpperCase(), caFingerprint: u.ca_fingerprint.toUpperCase(), caCertifies, compliance: u.compliance ?? [] };
}

/** Accepts or refuses the registered message (docs/evidence.md, "Pickup recipients"): a key
 * made here for this decision (not the pickup key, which the sender's client made and keeps a
 * copy of) signs the receipt statement the web app and the CLI sign (`client.receiptStatement`);
 * the node keeps it with its record that the unlock code was proven. */
export async function decide(c: Checked, decision: api.ReceiptDecision): Promise<api.ReceiptDecision> {
  const statement = client.receiptStatement(c.envelope, c.address, decision, Math.floor(Date.now() / 1000));
  const made = await pgp.generateUserKey(c.address);
  const signature = await pgp.signDetached(new TextEncoder().encode(statement), made.privateKey);
  return call<api.ReceiptDecision>('POST', '/pickup/receipt', { statement, signature, public_key: made.publicArmored }, c.session);
}

/** The organisation's public record (`GET /org`), fetched once per page: unlock, every reply
 * and the upgrade need it, and it does not change while the page is open. A failed fetch is
 * not kept, so the next use asks again. */
let orgInfo: Promise<api.OrgInfo> | undefined;
function org(): Promise<api.OrgInfo> {
  orgInfo ??= api.get('/org').catch((e: unknown) => {
    orgInfo = undefined;
    throw e;
  });
  return orgInfo;
}

/** Whether the organisation's CA (the node's `/org`, matching the fingerprint the unlock
 * answer gives) certifies the sender's key. */
async function checkCa(u: PickupUnlocked, sender: pgp.PublicKey, address: string): Promise<boolean> {
  try {
    const ca = await pgp.readCert((await org()).ca_cert);
    if (ca.getFingerprint().toUpperCase() !== u.ca_fingerprint.toUpperCase()) return false;
    return await pgp.certifies(ca, sender, address);
  } catch {
    return false;
  }
}

/** Downloads, checks and decrypts attachment `index` (streaming; as `client.openAttachment`). */
export function attachment(u: Unlocked, index: number, progress: client.AttachmentProgress): Promise<Blob> {
  const a = u.head.attachments[index];
  return client.openSignedAttachment(u.key, u, index, `/pickup/parts/${a?.part}`, { authorization: `Bearer ${u.session}` }, progress);
}

/** Replies to the sender: encrypted here to the original sender's key(s) the node resolves
 * (`/pickup/envelope`), signed with the pickup key, submitted through the pickup routes. */
export async function reply(u: Unlocked, subject: string, body: string, files: File[], progress: client.SendProgress): Promise<string> {
  const auth = { authorization: `Bearer ${u.session}` };
  const resp = await call<api.EnvelopeResponse>('POST', '/pickup/envelope', {}, u.session);
  if (!/^[0-9a-f]{32}$/.test(resp.message_id)) throw new Error('The server issued a malformed message ID.');
  const certs: pgp.PublicKey[] = [];
  for (const r of resp.recipients) certs.push(await replyCert(u, r));
  if (!resp.recipients.some((r) => r.address === u.envelope.from)) throw new Error(`The server did not offer ${u.envelope.from} as the recipient of your reply.`);
  // The organisation's compliance key (docs/compliance.md), only with the marking of its CA,
  // the one the unlock answer named.
  if (resp.compliance?.length) {
    const ca = await pgp.readCert((await org()).ca_cert);
    if (ca.getFingerprint().toUpperCase() !== u.caFingerprint) throw new Error('The organisation key is not the one your message named. Your reply was not sent.');
    for (const k of resp.compliance) certs.push(await client.complianceCert(ca, k));
  }
  const to = resp.recipients.map((r) => r.address);
  const parts: api.EnvelopePart[] = [{ sha256: '', size: 0 }];
  const metas: api.AttachmentMeta[] = [];
  for (let i = 0; i < files.length; i++) {
    const f = files[i];
    const sealed = await client.sealFile(f, certs, u.key, (stage, x) => progress(i, stage, x));
    const report = throttled((x) => progress(i, 'Uploading', 0.5 + 0.5 * x));
    const up = await api.uploadTo(`${api.PREFIX}/pickup/uploads/${sealed.sha256}`, auth, sealed.blob, report);
    if (up.sha256 !== sealed.sha256 || up.size !== sealed.blob.size) throw new Error('The server stored different bytes than were uploaded. Try again.');
    progress(i, 'Uploaded', 1);
    metas.push({ name: client.safeName(f.name), media_type: f.type || 'application/octet-stream', size: sealed.plainSize, sha256: sealed.plainSha256, part: i + 1 });
    parts.push({ sha256: sealed.sha256, size: sealed.blob.size });
  }
  const now = Math.floor(Date.now() / 1000);
  const head: Head = { v: 1, message_id: resp.message_id, from: u.address, to, subject, body, attachments: metas, sent_at: now };
  const sealedHead = await pgp.seal(new TextEncoder().encode(JSON.stringify(head)), certs, u.key);
  const headSha = await pgp.sha256hex(sealedHead);
  parts[0] = { sha256: headSha, size: sealedHead.length };
  const inline: Record<string, string> = {};
  const { limits } = await org();
  if (sealedHead.length <= limits.inline_part_max_bytes) inline['0'] = b64(sealedHead);
  else await api.uploadTo(`${api.PREFIX}/pickup/uploads/${headSha}`, auth, sealedHead, () => {});
  const env: api.Envelope = { v: 1, message_id: resp.message_id, from: u.address, to, created_at: now, parts };
  const text = JSON.stringify(env);
  const signature = await pgp.signDetached(new TextEncoder().encode(text), u.key);
  await call('POST', '/pickup/submit', { envelope: text, signature, inline_parts: inline }, u.session);
  return resp.message_id;
}

/** A reply recipient's key: the key that signed the original message, or one the sender's
 * organisation CA certifies for that address (a node cannot slip in a key of its own). */
async function replyCert(u: Unlocked, r: ResolvedRecipient): Promise<pgp.PublicKey> {
  const cert = await pgp.readCert(r.cert);
  if (cert.getFingerprint().toUpperCase() === u.senderFingerprint) return cert;
  if (await pgp.isRevoked(cert)) throw new Error(`${r.address}'s key has been revoked.`);
  try {
    const ca = await pgp.readCert((await org()).ca_cert);
    if (ca.getFingerprint().toUpperCase() === u.caFingerprint && (await pgp.certifies(ca, cert, r.address))) return cert;
  } catch {
    /* refused below */
  }
  throw new Error(`The server offered a key for ${r.address} that neither signed the message nor is certified by their organisation. Your reply was not sent.`);
}

/** The recipient of the unlocked pickup becomes a guest of the sender's organisation with a key
 *  of their own, made here as at enrolment (docs/pickup.md, "Guests"); they log in to the web
 *  app from then on. Refused with `guest_exists` when the address has a key there already. */
export async function upgrade(u: Unlocked, password: string, progress: client.Progress): Promise<{ fingerprint: string }> {
  const info = await org();
  const { login } = await client.newLogin(info, u.address, '', password, progress);
  progress('Registering your public key', 0.85);
  const resp = await call<{ fingerprint: string }>('POST', '/pickup/upgrade', login, u.session);
  progress('Done', 1);
  return { fingerprint: resp.fingerprint };
}
