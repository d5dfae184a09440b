// What a user's side does, in the browser: the same steps as the CLI client
// (client/src/lib.rs), so that both read what the other writes. Nothing secret leaves
// memory: the password is used for the KDF and dropped; the unlocked key lives in the Session.
import * as api from './api';
import type { AccountView, Envelope, Head, MailboxItem, MessageResponse, OrgInfo, VerdictView } from './api';
import { b64, derivePasswordKeys, smimeWrapKey, unb64, validateKdf, DEFAULT_KDF, type KdfParams, type PasswordKeys } from './kdf';
import * as pgp from './pgp';
import { BlobSink, pump, rechunk, sha256, throttled } from './streams';
import { makePickup, relock, threadKey, type MadePickup } from './pickup-crypto';
import type { PickupEnvelope } from './pickup-wire';
import type { Arrival, ExternalCopy, MailEnvelope, MailItem, MailSubmit, Resolved } from './mail-wire';
import { buildInner, readEntity, type ReadEntity } from './mime';
import type { SmimeSigner } from './smime';

export interface Session {
  account: AccountView;
  me: pgp.PrivateKey;
  ca: pgp.PublicKey;
  org: OrgInfo;
  /** Wraps the S/MIME signing key kept on the node (kdf.ts `smimeWrapKey`; not extractable). */
  smimeWrap: CryptoKey;
  /** The S/MIME signing identity once loaded or made (`smimeSigner`): memory only. */
  smime?: { signer: SmimeSigner; notAfter: number };
}

/** Pinned CA fingerprints (public, not secret): a node that later presents another CA is refused. */
function pinned(address: string): string | null {
  try {
    return localStorage.getItem(`sealpost.ca.${address}`);
  } catch {
    return null;
  }
}

function pin(address: string, fpr: string) {
  try {
    localStorage.setItem(`sealpost.ca.${address}`, fpr);
  } catch {
    /* storage disabled: no pinning */
  }
}

export async function org(): Promise<{ org: OrgInfo; ca: pgp.PublicKey }> {
  const info = await api.get('/org');
  const ca = await pgp.readCert(info.ca_cert);
  if (ca.getFingerprint().toUpperCase() !== info.ca_fingerprint.toUpperCase()) {
    throw new Error('The node sent an organisation certificate that does not match its fingerprint. Do not continue; tell your administrator.');
  }
  return { org: info, ca };
}

export type Progress = (step: string, fraction: number) => void;

function randomSalt(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(16));
}

export interface Enrolled {
  session: Session;
  fingerprint: string;
}

/** What enrolment registers (and a guest's upgrade from a pickup, docs/pickup.md "Guests"): a
 *  new key for `address`, its secret wrapped under the password, and the login verifier. */
export async function newLogin(info: OrgInfo, address: string, name: string, password: string, progress: Progress) {
  progress('Generating your key pair (Ed25519 and X25519)', 0.15);
  const key = await pgp.generateUserKey(address, name.trim() || undefined);
  const params: KdfParams = orgKdf(info);
  progress(`Deriving your encryption key from your password (${kdfWords(params)})`, 0.35);
  const salt = randomSalt();
  const keys = await derivePasswordKeys(password, salt, params);
  progress('Locking your secret key with it', 0.7);
  const wrapped = await pgp.wrapKey(key.privateKey, keys.wrap);
  const login = {
    cert: key.publicArmored,
    wrapped_key: wrapped,
    kdf_salt: b64(salt),
    kdf_params: params,
    login_verifier: b64(keys.verifier),
  };
  return { key, keys, login };
}

/** Generates the key, wraps it with the password-derived key and registers it; then logs in. */
export async function enroll(invite: string, address: string, name: string, password: string, progress: Progress): Promise<Enrolled> {
  address = address.trim().toLowerCase();
  progress('Checking your organisation', 0.05);
  const { org: info } = await org();
  const { key, keys, login } = await newLogin(info, address, name, password, progress);
  progress(`Registering your public key with ${info.domain}`, 0.8);
  const resp = await api.post('/enroll', { invite: invite.trim(), address, ...login });
  pin(address, info.ca_fingerprint.toUpperCase());
  progress('Signing you in', 0.9);
  const session = await loginWithKeys(address, keys, undefined, key.privateKey);
  progress('Done', 1);
  return { session, fingerprint: resp.fingerprint };
}

/** Logs in: the password never leaves this function; only the derived verifier is sent. */
export async function login(address: string, password: string, totp?: string): Promise<Session> {
  address = address.trim().toLowerCase();
  const params = await api.post('/login/params', { address });
  const keys = await derivePasswordKeys(password, unb64(params.kdf_salt), params.kdf_params);
  return loginWithKeys(address, keys, totp);
}

export class LoginError extends Error {
  constructor(public code: string, message: string) {
    super(message);
  }
}

async function loginWithKeys(address: string, keys: PasswordKeys, totp?: string, unlocked?: pgp.PrivateKey): Promise<Session> {
  const { org: info, ca } = await org();
  const pin_ = pinned(address);
  if (pin_ && pin_ !== info.ca_fingerprint.toUpperCase()) {
    throw new LoginError('ca_changed', `This node now presents a different organisation key (${pgp.groupFingerprint(info.ca_fingerprint)}) than when you enrolled. Do not log in; tell your administrator.`);
  }
  const body: api.Body<'/login', 'post'> = { address, login_verifier: b64(keys.verifier), totp: totp?.trim() || undefined };
  const resp: api.Answer<'/login', 'post'> = await (await api.request('POST', '/login', body, { 'x-sealpost-session': 'cookie' })).json();
  api.setCsrf(resp.csrf_token ?? null);
  let me = unlocked;
  if (!me) {
    try {
      me = await pgp.unwrapKey(resp.account.wrapped_key, keys.wrap);
    } catch (e) {
      throw new LoginError('unwrap', 'Your password was accepted but does not unlock your key. Your key may have been changed on the node: tell your administrator.');
    }
  }
  if (me.getFingerprint().toUpperCase() !== resp.account.fingerprint.toUpperCase()) {
    throw new LoginError('key_mismatch', 'The node returned a key that is not yours. Tell your administrator.');
  }
  pin(address, info.ca_fingerprint.toUpperCase());
  return { account: resp.account, me, ca, org: info, smimeWrap: await smimeWrapKey(keys.wrap) };
}

export async function logout(): Promise<void> {
  try {
    await api.post('/logout');
  } finally {
    api.setCsrf(null);
  }
}

// ---- reading ----

export interface Opened {
  item: MailboxItem;
  envelope: Envelope;
  head: Head;
  sender: pgp.PublicKey;
  signer: string;
  raw: MessageResponse;
  /** Mail that came in over SMTP (`via: "smtp"`): what was decrypted and read from part 0. */
  arrived?: Arrived;
}

/** A mail that came in over SMTP, decrypted and parsed here (docs/mail.md, "SMTP in"). */
export interface Arrived {
  entity: ReadEntity;
  arrival: Arrival | null;
  /** Our message this one answers (`in_reply_to`). */
  inReplyTo: string | null;
  /** Key IDs of OpenPGP signatures in the sender's encrypted mail (not checked: their keys
   * are not known here). */
  signedBy: string[];
}

const heads = new Map<string, Opened>();

export function cached(id: string): Opened | undefined {
  return heads.get(id);
}

export function forget() {
  heads.clear();
}

/** Fetches and verifies the envelope, downloads and decrypts the signed head (not marking it
 * read): the same checks as `Session::open_head` of the CLI. */
export async function openHead(s: Session, id: string): Promise<Opened> {
  const hit = heads.get(id);
  if (hit) return hit;
  const m = await api.get('/messages/{id}', { id });
  if (m.item.via === 'smtp') {
    const opened = await openArrived(s, id, m);
    heads.set(id, opened);
    return opened;
  }
  const envBytes = new TextEncoder().encode(m.envelope);
  const env: Envelope = JSON.parse(m.envelope);
  if (env.message_id !== id) throw new Error('The envelope belongs to another message: it was altered.');
  const sender = await pgp.readCert(m.sender_cert);
  try {
    await pgp.verifyDetached(envBytes, m.signature, sender);
  } catch {
    throw new Error(`The sender's signature on this message's envelope does not verify: it may be forged or altered.`);
  }
  // Registered for us and not accepted (docs/evidence.md, "Registered mail"): no part is
  // asked for until the reader decides; opening it is accepting it. Not cached.
  if (m.registered && m.registered.state !== 'accepted' && isRegisteredFor(env, s.account.address)) {
    throw new RegisteredClosed(m.registered.state === 'refused' ? 'refused' : 'pending', env, m.registered.notice);
  }
  const part0 = env.parts[0];
  const cipher = await api.download(`/messages/${id}/parts/0`, part0.size, () => {});
  if ((await pgp.sha256hex(cipher)) !== part0.sha256) throw new Error('The message does not match what the sender signed: it was altered.');
  const { data, signer } = await pgp.open(cipher, s.me, sender);
  const head: Head = JSON.parse(new TextDecoder().decode(data));
  if (head.message_id !== env.message_id || head.from !== env.from) {
    throw new Error('The signed content belongs to another message or sender.');
  }
  const opened = { item: m.item, envelope: env, head, sender, signer, raw: m };
  heads.set(id, opened);
  return opened;
}

/** Opens a mail that came in over SMTP: part 0 is an OpenPGP message to us (the sender's
 * PGP/MIME payload as it came, or the raw mail the node encrypted on arrival) whose plaintext
 * is a MIME entity, read with postal-mime, protected headers first. Nothing here is signed by
 * a Sealpost key: the reader says how it arrived instead (`arrival`). */
async function openArrived(s: Session, id: string, m: MessageResponse): Promise<Opened> {
  const item: MailItem = m.item;
  const part = m.parts.find((p) => p.index === 0);
  if (!part) throw new Error('The node holds no content for this mail.');
  const cipher = await api.download(`/messages/${id}/parts/0`, part.size, () => {});
  if ((await pgp.sha256hex(cipher)) !== part.sha256.toLowerCase()) throw new Error('The node sent other bytes than it stored for this mail.');
  let data: Uint8Array;
  let signedBy: string[];
  try {
    ({ data, signedBy } = await pgp.decryptArrived(cipher, s.me));
  } catch (e) {
    throw new Error('This mail is not encrypted to your key: it cannot be opened here.', { cause: e });
  }
  // First opening of mail that came encrypted to us only: the compliance archive gets the
  // session key too (docs/compliance.md, "Waiting copies"). Reading does not wait on it
  // failing: the reader still shows the copy as waiting, and the next opening tries again.
  let raw = m;
  if (m.compliance_pending && item.folder !== 'sent') {
    try {
      await addCompliancePacket(s, id, cipher);
      raw = await api.get('/messages/{id}', { id });
    } catch (e) {
      console.warn('compliance packet not added', e);
    }
  }
  const entity = await readEntity(data);
  const from = entity.from || item.from;
  const head: Head = {
    v: 1,
    message_id: id,
    from,
    to: entity.to.length ? entity.to : item.to,
    subject: entity.subject,
    body: entity.text,
    attachments: entity.attachments.map((a) => ({ name: safeName(a.name), media_type: a.mediaType, size: a.data.length, sha256: '', part: 0 })),
    sent_at: entity.date ?? item.received_at,
  };
  const envelope: Envelope = { v: 1, message_id: id, from: item.from, to: item.to, created_at: item.received_at, parts: m.parts.map((p) => ({ sha256: p.sha256, size: p.size })) };
  return {
    item: m.item,
    envelope,
    head,
    sender: null as unknown as pgp.PublicKey,
    signer: '',
    raw,
    arrived: { entity, arrival: item.arrival ?? null, inReplyTo: item.in_reply_to ?? null, signedBy },
  };
}

/** Wraps the session key of `cipher` for our organisation's compliance key (from the
 * organisation record, accepted only with the pinned CA's marking) and posts the packet. */
async function addCompliancePacket(s: Session, id: string, cipher: Uint8Array): Promise<void> {
  // Asked now: the key may have been installed since login.
  const armored = (await api.get('/org')).compliance_key;
  if (!armored) throw new Error('The organisation publishes no compliance key.');
  const cert = await pgp.readCert(armored);
  const domain = s.account.address.slice(s.account.address.lastIndexOf('@') + 1);
  await complianceCert(s.ca, { domain, fingerprint: cert.getFingerprint(), cert: armored });
  const packet = await pgp.compliancePacket(cipher, s.me, cert);
  await api.postBytes(`/messages/${id}/compliance-key-packet`, packet);
}

// ---- registered mail (docs/evidence.md, "Registered mail") ----

/** A message registered for the reader that is not open to them: `pending` (they have not
 * decided; opening it signs an acceptance receipt) or `refused` (they signed a refusal). */
export class RegisteredClosed extends Error {
  constructor(public state: 'pending' | 'refused', public envelope: Envelope, public notice: string) {
    super(state === 'refused' ? 'You refused this registered message.' : 'Registered: opening it confirms receipt.');
  }
}

function isRegisteredFor(env: Envelope, address: string): boolean {
  return (env.registered ?? []).some((a) => a.toLowerCase() === address.toLowerCase());
}

export type ReceiptDecision = api.ReceiptDecision;

/** The exact bytes the CLI signs (`proto::ReceiptStatement::to_bytes`): compact JSON, keys in
 * sorted order (at, decision, format, message_id, parts, recipient); the node re-serialises
 * it and refuses any other spelling. */
export function receiptStatement(env: Envelope, recipient: string, decision: ReceiptDecision, at: number): string {
  if (!Number.isSafeInteger(at)) throw new Error('The receipt time must be whole seconds.');
  return JSON.stringify({
    at,
    decision,
    format: 'sealpost-receipt-v1',
    message_id: env.message_id,
    parts: env.parts.map((p) => p.sha256),
    recipient,
  });
}

/** Signs `decision` about a message registered for us (a detached signature by our key over
 * the statement, as the CLI's `Session::decide`) and posts it; the envelope is the one
 * `openHead` verified. Accepting releases the parts; a refusal keeps them closed for good. */
export async function decideRegistered(s: Session, closed: RegisteredClosed, decision: ReceiptDecision): Promise<ReceiptDecision> {
  const env = closed.envelope;
  if (!isRegisteredFor(env, s.account.address)) throw new Error('This message is not registered for you.');
  const statement = receiptStatement(env, s.account.address, decision, Math.floor(Date.now() / 1000));
  const signature = await pgp.signDetached(new TextEncoder().encode(statement), s.me);
  heads.delete(env.message_id);
  return api.post('/messages/{id}/receipt', { id: env.message_id }, { statement, signature });
}

/** `GET /messages/{id}/evidence`: the bundle as the node gives it, and how many of our
 * records are not sealed (time-stamped) yet. */
export async function evidence(id: string): Promise<{ bundle: unknown; pending: number }> {
  const r = await api.get('/messages/{id}/evidence', { id });
  return { bundle: r.bundle, pending: r.pending };
}

export async function markRead(id: string) {
  await api.post('/messages/{id}/read', { id });
  const o = heads.get(id);
  if (o) o.item = { ...o.item, unread: false };
}

/** Progress of one attachment: the stage in words and the fraction done of the whole. */
export type AttachmentProgress = (fraction: number, stage: string) => void;

/** Downloads, checks and decrypts one attachment, streaming: never whole in memory.
 *  1. the ciphertext streams into a Blob, hashed as it arrives; it must be exactly the part the
 *     sender's signed envelope names (size and SHA-256), so nothing the node altered is ever
 *     decrypted;
 *  2. the Blob streams through OpenPGP.js into a plaintext Blob, hashed as it goes;
 *  3. only when the stream has ended are the sender's signature, the MDC, the size and the
 *     plaintext SHA-256 of the signed head all known to be right: then the Blob is returned.
 *     On any failure nothing is returned, so nothing is offered for download. */
export async function openAttachment(s: Session, o: Opened, index: number, progress: AttachmentProgress): Promise<Blob> {
  return openSignedAttachment(s.me, o, index, `/messages/${o.item.message_id}/parts/${o.head.attachments[index]?.part}`, {}, progress);
}

/** What reading an attachment needs of an opened message (a mailbox's or a pickup's). */
export interface SignedMessage {
  envelope: Envelope;
  head: Head;
  sender: pgp.PublicKey;
}

/** `openAttachment` for any reader's key and route: `path` (with `extra` headers, such as a
 * pickup session's bearer token) serves the attachment's part. */
export async function openSignedAttachment(me: pgp.PrivateKey, o: SignedMessage, index: number, path: string, extra: Record<string, string>, progress: AttachmentProgress): Promise<Blob> {
  const a = o.head.attachments[index];
  const part = a.part > 0 ? o.envelope.parts[a.part] : undefined;
  if (!part) throw new Error(`Attachment ${a.name} names no part of the message.`);
  // Downloading weighs about as much as decrypting on a fast network; show both halves.
  const DL = 0.5;
  const dlProgress = throttled((f) => progress(f * DL, 'Downloading'));
  const cipher = await api.downloadBlob(path, part.size, dlProgress, extra);
  if (cipher.sha256 !== part.sha256) {
    throw new Error(`Attachment ${a.name} is not what the sender signed (its encrypted bytes differ): it was altered on the way. It was not saved.`);
  }
  const refused = `Attachment ${a.name} failed verification: it is not exactly the file ${o.envelope.from} signed. It was not saved; ask the sender to send it again.`;
  const plainHash = await sha256();
  const sink = new BlobSink();
  const decProgress = throttled((f) => progress(DL + (1 - DL) * f, 'Decrypting and verifying'));
  try {
    const { data, verified } = await pgp.openStream(cipher.blob.stream().pipeThrough(rechunk()), me, o.sender);
    await pump(data, (chunk) => {
      if (sink.size + chunk.length > a.size) throw new Error('longer than signed');
      plainHash.update(chunk);
      sink.push(chunk);
      decProgress(a.size ? sink.size / a.size : 1);
    });
    // With streaming, OpenPGP.js settles the signature only after the data was read to its end.
    await verified;
  } catch (e) {
    if (e instanceof pgp.BadSignature || /signing key|signature/i.test(String(e))) {
      throw new Error(`Attachment ${a.name} does not carry a valid signature of ${o.envelope.from}: it may be forged. It was not saved.`);
    }
    throw new Error(refused, { cause: e });
  }
  if (sink.size !== a.size || plainHash.hex() !== a.sha256) throw new Error(refused);
  const blob = sink.blob(a.media_type || 'application/octet-stream');
  progress(1, 'Decrypted and verified');
  return blob;
}

/** How the node would reach `address` now: its envelope answer for that address alone (the
 * message ID it issues simply expires). `refusal`: the policy pins the address's domain to a
 * mode that is not possible for it, in the node's words; neither: the node knows no way. */
export async function resolveOne(address: string): Promise<{ resolved?: Resolved; refusal?: string; compliance?: string[] }> {
  try {
    const r = await api.post('/envelopes', { to: [address] });
    return r.recipients.length === 1 ? { resolved: r.recipients[0], compliance: (r.compliance ?? []).map((k) => k.domain) } : {};
  } catch (e) {
    if (e instanceof api.ApiError && e.code === 'no_delivery_mode') return { refusal: e.message };
    return {};
  }
}

/** Whether the node would reach `address` by pickup: asked with an envelope request for that
 * address alone (the node's answer decides; the message ID it issues simply expires). */
export async function reachedByPickup(address: string): Promise<boolean> {
  try {
    const r = await api.post('/envelopes', { to: [address] });
    return r.recipients.length === 1 && isPickup(r.recipients[0]);
  } catch {
    return false;
  }
}

/** Withdraws an unread pickup: the node deletes its key, so no code opens it any more. */
export async function withdrawPickup(id: string, address: string): Promise<void> {
  await api.post('/messages/{id}/pickups/withdraw', { id }, { address });
}

/** A new MUC for a pickup (after a lock-out): the sender's copy of the pickup key
 * (`key_for_sender`, from the message as the node shows it to its sender) is decrypted here,
 * checked against the key the signed envelope names, locked under a new MUC and sent back.
 * Returns the MUC (normal form) to show once. */
export async function relockPickup(s: Session, o: Opened, address: string): Promise<string> {
  const m = await api.get('/messages/{id}', { id: o.item.message_id });
  const kfs = m.pickups?.find((p) => p.address === address)?.key_for_sender;
  if (!kfs) throw new Error(`The node did not send your copy of ${address}'s pickup key: a new code cannot be made here.`);
  const expect = (o.envelope as PickupEnvelope).pickup?.[address];
  const locked = await relock(kfs, s.me, expect, orgKdf(s.org));
  const { muc, ...body } = locked;
  await api.post('/messages/{id}/pickups/relock', { id: o.item.message_id }, { address, ...body });
  return muc;
}

export async function trust(address: string): Promise<VerdictView[]> {
  const r = await api.get('/trust/{address}', { address: address.trim().toLowerCase() });
  return r.keys;
}

// ---- writing ----

export interface Outgoing {
  to: string[];
  subject: string;
  body: string;
  files: File[];
  /** Recipients whose mail server receives the content and whose mail our node sees in
   * transit (`sees_content`, enforced TLS): the sender confirmed each. */
  seesContentConfirmed?: string[];
  /** A reply to mail that came by SMTP: its Message-ID (`<…>`), for the external copies. */
  inReplyTo?: string;
  /** Registered mail for every recipient (`send --registered`; Sealpost users and pickup
   * recipients): their node releases it once they sign a receipt (docs/evidence.md). */
  registered?: boolean;
}

/** Why `mode` cannot get registered mail (the node refuses it too: `invalid_envelope`), or
 * null when it can: only a Sealpost node holds a copy it can withhold until a receipt (a
 * Sealpost user's, or a pickup recipient's, who decides in the pickup page). */
export function registeredRefusal(address: string, mode: string): string | null {
  if (mode === 'local' || mode === 'remote' || mode === 'pickup') return null;
  return `${address} is reached by mail: registered mail goes to Sealpost users and unlock-code recipients only, whose copy a node can keep closed until they sign a receipt. Remove ${address} or send it unregistered.`;
}

/** Checks locally what can be checked without the node (as `checked_cert` in the CLI). */
async function checkedCert(s: Session, r: api.ResolvedRecipient): Promise<pgp.PublicKey> {
  const cert = await pgp.readCert(r.cert);
  if (cert.getFingerprint().toUpperCase() !== r.verdict.fingerprint.toUpperCase()) {
    throw new Error(`The node's verdict for ${r.address} is about another key. Do not send; tell your administrator.`);
  }
  if (await pgp.isRevoked(cert)) throw new Error(api.refusal({ ...r.verdict, why_not: 'revoked' }, r.address));
  const oneHop = r.verdict.explanation.some((l) => l.includes('(your organisation) → ') && l.split(' → ').length === 3);
  if (oneHop && !(await pgp.certifies(s.ca, cert, r.address)) && !(await pgp.certifies(s.me, cert, r.address))) {
    throw new Error(`The node claims your organisation certifies ${r.address}, but the key carries no such certification. Do not send; tell your administrator.`);
  }
  return cert;
}

/** The CA a CA certificate is for (its `openpgp-ca@DOMAIN` user ID). */
function caDomain(ca: pgp.PublicKey): string | undefined {
  for (const id of ca.getUserIDs()) {
    const m = /<openpgp-ca@([^>]+)>\s*$/i.exec(id) ?? /^openpgp-ca@(.+)$/i.exec(id.trim());
    if (m) return m[1].toLowerCase();
  }
  return undefined;
}

/** A compliance key of an envelope answer, accepted only with the marking of the CA trusted
 * for its domain: `ourCa` (pinned) for our organisation's; for a peered organisation's, its CA
 * as the answer carries it, which `ourCa` must certify (the bridge). The CLI's
 * `checked_compliance_key`. */
export async function complianceCert(ourCa: pgp.PublicKey, k: api.ComplianceKeyRef): Promise<pgp.PublicKey> {
  const refused = (why: string) => new Error(`The compliance key offered for ${k.domain} is refused: ${why}. Do not send; tell your administrator.`);
  const cert = await pgp.readCert(k.cert);
  if (cert.getFingerprint().toUpperCase() !== k.fingerprint.toUpperCase()) throw refused('it is not the key the node names');
  const domain = k.domain.toLowerCase();
  let ca = ourCa;
  if (caDomain(ourCa) !== domain) {
    if (!k.ca_cert) throw refused('it comes without its organisation\'s CA');
    ca = await pgp.readCert(k.ca_cert);
    if (!(await pgp.certifies(ourCa, ca, `openpgp-ca@${domain}`))) throw refused(`your organisation does not bridge to the CA of ${domain}`);
  }
  try {
    await pgp.complianceKeyOf(cert, ca, domain);
  } catch (e) {
    throw refused(String((e as Error).message ?? e));
  }
  return cert;
}

export type SendProgress = (file: number, stage: string, fraction: number) => void;

/** A pickup recipient's code and link, to show the sender once (docs/pickup.md). */
export interface IssuedPickup {
  address: string;
  /** The MUC in normal form: in memory only, shown once. */
  muc: string;
  /** The pickup link from the submit answer (the sender may pass it on when no relay mails it). */
  link?: string;
}

export interface Sent {
  messageId: string;
  pickups: IssuedPickup[];
  /** Outside recipients reached in an existing pickup thread: the same unlock code as before. */
  continued: string[];
}

/** The organisation's login Argon2id parameters as its node publishes them (`GET /org` `kdf`,
 * from `[accounts] login_kdf`), else `DEFAULT_KDF`, as the CLI's `org_kdf`. Parameters outside
 * `validateKdf`'s bounds are not used: a node must not make us derive with a trivially weak or
 * huge KDF. Enrolment, password changes and pickup seals use them, so an outsider's phone
 * unlocks in about the time a login takes (docs/pickup.md). */
export function orgKdf(info: OrgInfo): KdfParams {
  const published = info.kdf;
  if (!published) return DEFAULT_KDF;
  try {
    validateKdf(published);
  } catch {
    return DEFAULT_KDF;
  }
  return { m_cost_kib: published.m_cost_kib, t_cost: published.t_cost, p_cost: published.p_cost };
}

function kdfWords(p: KdfParams): string {
  return `Argon2id, ${Math.round(p.m_cost_kib / 1024)} MiB`;
}

/** Whether the node reaches `r` by pickup (an outside address: no key, a MUC). */
export function isPickup(r: { mode: string }): boolean {
  return r.mode === 'pickup';
}

export async function send(s: Session, msg: Outgoing, progress: SendProgress): Promise<Sent> {
  const resp = await api.post('/envelopes', { to: msg.to });
  if (!/^[0-9a-f]{32}$/.test(resp.message_id)) {
    throw new Error('The node issued a malformed message ID.');
  }
  const certs: pgp.PublicKey[] = [];
  const pickups: MadePickup[] = [];
  const continued: { address: string; fingerprint: string }[] = [];
  /** Outside recipients reached by mail; `cert` for OpenPGP mail and enforced TLS (S/MIME's
   * certificate is the answer's PEM). */
  const outside: { r: Resolved; cert?: pgp.PublicKey }[] = [];
  for (const r of resp.recipients) {
    const notRegistrable = msg.registered ? registeredRefusal(r.address, r.mode) : null;
    if (notRegistrable) throw new Error(notRegistrable);
    if (r.sees_content && !msg.seesContentConfirmed?.includes(r.address)) {
      // The mode may have changed since the sender looked: never send past an unconfirmed one.
      throw new Error(`${r.address}'s mail server will receive the content, and our node sees it in transit${r.why ? ` (${r.why})` : ''}. Confirm this for ${r.address} before sending.`);
    }
    if (r.mode === 'smime') {
      // Checked before anything is sealed or uploaded: the certificate named, an RSA key.
      await (await smimeModule()).checkRecipient(r);
      outside.push({ r });
      continue;
    }
    if (r.mode === 'openpgp' || r.mode === 'tls') {
      outside.push({ r, cert: await outsideCert(r) });
      continue;
    }
    if (isPickup(r) && r.pickup_thread) {
      // A live thread of ours with this outsider: encrypt to its key, no new code (the
      // conversation never falls back to plain, nor to a second code).
      if (r.pickup_thread.state === 'locked') {
        throw new Error(`${r.address} is locked out after too many wrong codes: open your message of ${new Date(r.pickup_thread.created_at * 1000).toLocaleDateString()} in Sent and give them a new unlock code first.`);
      }
      const t = await threadKey(r.pickup_thread.key_for_sender, s.me, r.cert);
      continued.push({ address: r.address, fingerprint: t.fingerprint });
      certs.push(t.cert);
      continue;
    }
    if (isPickup(r)) {
      // No key to judge: a fresh pickup key, locked under a new MUC, is this recipient's.
      const made = await makePickup(r.address, s.me, orgKdf(s.org));
      pickups.push(made);
      certs.push(made.cert);
      continue;
    }
    if (r.mode !== 'local' && r.mode !== 'remote') {
      // Outside mail (docs/mail.md): the external copy is not made in the browser yet.
      throw new Error(`${r.address} is to be reached by ${r.mode} mail (${r.why}), which the web app cannot send yet: use the command-line client.`);
    }
    if (!api.acceptable(r.verdict, s.org.accept_partial)) throw new Error(api.refusal(r.verdict, r.address));
    certs.push(await checkedCert(s, r));
  }
  // Every part also goes to the compliance keys the answer lists (docs/compliance.md), each
  // only with the marking of the CA trusted for its domain.
  for (const k of resp.compliance ?? []) certs.push(await complianceCert(s.ca, k));
  const to = resp.recipients.map((r) => r.address);
  const parts: api.EnvelopePart[] = [{ sha256: '', size: 0 }];
  const metas: api.AttachmentMeta[] = [];
  for (let i = 0; i < msg.files.length; i++) {
    const f = msg.files[i];
    const sealed = await sealFile(f, certs, s.me, (stage, x) => progress(i, stage, x));
    progress(i, 'Uploading', 0.5);
    const report = throttled((x) => progress(i, 'Uploading', 0.5 + 0.5 * x));
    const up = await api.upload(sealed.blob, report);
    if (up.sha256 !== sealed.sha256 || up.size !== sealed.blob.size) throw new Error('The node stored different bytes than were uploaded. Try again.');
    progress(i, 'Uploaded', 1);
    metas.push({
      name: safeName(f.name),
      media_type: f.type || 'application/octet-stream',
      size: sealed.plainSize,
      sha256: sealed.plainSha256,
      part: i + 1,
    });
    parts.push({ sha256: sealed.sha256, size: sealed.blob.size });
  }
  const now = Math.floor(Date.now() / 1000);
  // Field order and names exactly as `Head` in proto/src/lib.rs (it denies unknown fields).
  const head: Head = { v: 1, message_id: resp.message_id, from: s.account.address, to, subject: msg.subject, body: msg.body, attachments: metas, sent_at: now };
  const sealedHead = await pgp.seal(new TextEncoder().encode(JSON.stringify(head)), certs, s.me);
  parts[0] = { sha256: await pgp.sha256hex(sealedHead), size: sealedHead.length };
  const inline: Record<string, string> = {};
  if (sealedHead.length <= s.org.limits.inline_part_max_bytes) inline['0'] = b64(sealedHead);
  else await api.upload(sealedHead, () => {});
  const env: PickupEnvelope & MailEnvelope = { v: 1, message_id: resp.message_id, from: s.account.address, to, created_at: now, parts };
  // The sender's signature binds each outside recipient to their pickup key; omitted when empty.
  if (pickups.length || continued.length) {
    env.pickup = Object.fromEntries([...pickups.map((p) => [p.seal.address, p.fingerprint]), ...continued.map((c) => [c.address, c.fingerprint])]);
  }
  // Outside recipients reached by mail: one inner MIME entity, sealed per recipient; the
  // signed envelope names each copy's hash and size, so the node can check the bytes it sends.
  const copies: Record<string, string> = {};
  if (outside.length) {
    const signer = outside.some((o) => o.r.mode === 'smime') ? await smimeSigner(s) : undefined;
    const made = await externalCopies(s, msg, outside, { messageId: resp.message_id, to, now, metas }, signer);
    // Small copies travel inline, up to one inline part's worth in all (the request body is
    // bounded); the others are uploaded first, as large parts are (docs/mail.md).
    let inlineRoom = s.org.limits.inline_part_max_bytes;
    for (const [address, c] of Object.entries(made)) {
      (env.external ??= {})[address] = c.copy;
      if (c.bytes.length <= inlineRoom) {
        inlineRoom -= c.bytes.length;
        copies[address] = b64(c.bytes);
      } else {
        const up = await api.upload(c.bytes, () => {});
        if (up.sha256 !== c.copy.sha256 || up.size !== c.bytes.length) throw new Error('The node stored different bytes than were uploaded. Try again.');
      }
    }
  }
  // Registered for every recipient, in `to`'s order; omitted when not registered.
  if (msg.registered) env.registered = [...to];
  const text = JSON.stringify(env);
  const signature = await pgp.signDetached(new TextEncoder().encode(text), s.me);
  const body: MailSubmit = { envelope: text, signature, inline_parts: inline };
  if (Object.keys(copies).length) body.external_copies = copies;
  if (pickups.length) body.pickups = pickups.map((p) => p.seal);
  if (continued.length) body.pickup_continuations = continued.map((c) => ({ address: c.address }));
  const answer = await api.post('/messages', body);
  const links = new Map(answer.recipients.map((r) => [r.address, r.link ?? undefined]));
  return {
    messageId: resp.message_id,
    pickups: pickups.map((p) => ({ address: p.seal.address, muc: p.muc, link: links.get(p.seal.address) })),
    continued: continued.map((c) => c.address),
  };
}

/** smime.ts with node-forge, loaded when a message has an S/MIME recipient (not part of the
 * app's first download). */
function smimeModule(): Promise<typeof import('./smime')> {
  return import('./smime');
}

/** A certificate with fewer days left than this is renewed before signing (as the CLI). */
const SMIME_RENEW_SECS = 30 * 86_400;
const SMIME_WRAPPED_PREFIX = 'sealpost-smime-v1.';

/** Binds the wrapped S/MIME key to its account: a key moved to another row does not unwrap. */
function smimeAad(s: Session): Uint8Array {
  return new TextEncoder().encode(`sealpost/v1/smime-key:${s.account.address}`);
}

/** `pkcs8` wrapped for the node: AES-256-GCM under `s.smimeWrap`, a fresh 96-bit IV. */
async function wrapSmimeKey(s: Session, pkcs8: Uint8Array): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: smimeAad(s) as BufferSource }, s.smimeWrap, pkcs8 as BufferSource));
  const out = new Uint8Array(iv.length + ct.length);
  out.set(iv);
  out.set(ct, iv.length);
  return SMIME_WRAPPED_PREFIX + b64(out);
}

/** The PKCS#8 in `wrapped`, or null when it does not unwrap (another password, or damaged). */
async function unwrapSmimeKey(s: Session, wrapped: string): Promise<Uint8Array | null> {
  if (!wrapped.startsWith(SMIME_WRAPPED_PREFIX)) return null;
  try {
    const raw = unb64(wrapped.slice(SMIME_WRAPPED_PREFIX.length));
    const pt = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: raw.subarray(0, 12) as BufferSource, additionalData: smimeAad(s) as BufferSource }, s.smimeWrap, raw.subarray(12) as BufferSource);
    return new Uint8Array(pt);
  } catch {
    return null;
  }
}

/** The signing identity for this session's S/MIME copies, or undefined when the organisation
 * has no S/MIME CA (`GET /org` `smime_signing`: the copies go unsigned, `why` says so). Kept in
 * memory once loaded; otherwise the key the node keeps wrapped (`GET /smime/certificate`).
 * The first time, or when that key no longer unwraps (the password changed), an RSA-3072 key
 * is made with WebCrypto and certified (`POST /smime/certificate`, bound by a signature of the
 * user's key over its SPKI, sent wrapped); a certificate with fewer than 30 days left is
 * renewed for the same key. */
export async function smimeSigner(s: Session): Promise<SmimeSigner | undefined> {
  if (!s.org.smime_signing) return undefined;
  const now = Date.now() / 1000;
  if (s.smime && s.smime.notAfter - now >= SMIME_RENEW_SECS) return s.smime.signer;
  const smime = await smimeModule();
  let pkcs8: Uint8Array | null = null;
  let wrapped = '';
  /** The kept identity, while its certificate holds: what signs if a renewal is refused. */
  let holding: { signer: SmimeSigner; notAfter: number } | undefined;
  try {
    const kept = await api.get('/smime/certificate');
    pkcs8 = await unwrapSmimeKey(s, kept.wrapped_key);
    wrapped = kept.wrapped_key;
    if (pkcs8) {
      holding = { signer: { key: smime.forgeKey(pkcs8), certificate: kept.certificate, chain: kept.chain }, notAfter: kept.not_after };
      if (kept.not_after - now >= SMIME_RENEW_SECS) {
        s.smime = holding;
        return holding.signer;
      }
    }
  } catch (e) {
    if (!(e instanceof api.ApiError && e.code === 'not_found')) throw e;
  }
  let spki: Uint8Array;
  if (pkcs8) {
    // Renewal: the same key, a new certificate.
    spki = smime.spkiOf(smime.forgeKey(pkcs8));
  } else {
    const pair = await crypto.subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: 3072, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      true,
      ['sign', 'verify'],
    );
    pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', pair.privateKey));
    spki = new Uint8Array(await crypto.subtle.exportKey('spki', pair.publicKey));
    wrapped = await wrapSmimeKey(s, pkcs8);
  }
  const publicKey = `-----BEGIN PUBLIC KEY-----\n${b64(spki).replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PUBLIC KEY-----\n`;
  const binding = await pgp.signDetached(spki, s.me);
  let issued: api.Answer<'/smime/certificate', 'post'>;
  try {
    issued = await api.post('/smime/certificate', { public_key: publicKey, binding, wrapped_key: wrapped });
  } catch (e) {
    // A refused renewal (the daily limit, say) signs with the certificate that still holds.
    if (holding && e instanceof api.ApiError && holding.notAfter > now) {
      s.smime = holding;
      return holding.signer;
    }
    throw e;
  }
  const signer = { key: smime.forgeKey(pkcs8), certificate: issued.certificate, chain: issued.chain };
  pkcs8.fill(0);
  s.smime = { signer, notAfter: issued.not_after };
  return signer;
}

/** Why the web app cannot make the S/MIME copy for `r` (not the certificate named, a key that
 * is not RSA), in words; null when it can. For Write, as each recipient is typed. */
export async function smimeRefusal(r: Resolved): Promise<string | null> {
  const smime = await smimeModule();
  try {
    await smime.checkRecipient(r);
    return null;
  } catch (e) {
    if (e instanceof smime.SmimeError) return e.message;
    throw e;
  }
}

/** An outside recipient's key as the envelope answer gives it (OpenPGP mail: theirs; enforced
 * TLS: the node's transit key): it must be the key named, not revoked, and able to encrypt. */
async function outsideCert(r: Resolved): Promise<pgp.PublicKey> {
  let cert: pgp.PublicKey;
  try {
    cert = await pgp.readCert(r.cert);
  } catch {
    throw new Error(`The node gave no usable key for ${r.address}. Do not send; tell your administrator.`);
  }
  if (cert.getFingerprint().toUpperCase() !== r.fingerprint.replace(/\s+/g, '').toUpperCase()) {
    throw new Error(`The node's answer for ${r.address} names another key than it sent. Do not send; tell your administrator.`);
  }
  if (await pgp.isRevoked(cert)) throw new Error(`${r.address}'s key has been revoked: ask them for their new key.`);
  return cert;
}

/** The external copies (docs/mail.md): the inner MIME entity (protected headers v1: the real
 * subject travels encrypted) built once, then per recipient an OpenPGP message: for `openpgp`
 * signed by the sender and encrypted to the recipient's key and the sender's; for `tls`
 * encrypted to the node's transit key only; for `smime` DER CMS to the recipient's certificate
 * (smime.ts: AES-256-CBC, PKCS1-v1_5 key transport), signed first by `signer` when the
 * organisation runs an S/MIME CA. Sorted by address, as the envelope's map. */
async function externalCopies(
  s: Session,
  msg: Outgoing,
  outside: { r: Resolved; cert?: pgp.PublicKey }[],
  at: { messageId: string; to: string[]; now: number; metas: api.AttachmentMeta[] },
  signer?: SmimeSigner,
): Promise<Record<string, { copy: ExternalCopy; bytes: Uint8Array }>> {
  const attachments = [];
  for (let i = 0; i < msg.files.length; i++) {
    const data = new Uint8Array(await msg.files[i].arrayBuffer());
    // The same bytes as the Sealpost parts carry (their hash is in the signed head).
    if ((await pgp.sha256hex(data)) !== at.metas[i].sha256) throw new Error(`${msg.files[i].name} changed while it was being sent. Attach it again.`);
    attachments.push({ name: at.metas[i].name, mediaType: at.metas[i].media_type, data });
  }
  const inner = buildInner({
    from: s.account.address, to: at.to, subject: msg.subject, date: at.now, messageId: at.messageId,
    domain: s.org.domain, body: msg.body, attachments, inReplyTo: msg.inReplyTo,
  });
  const out: Record<string, { copy: ExternalCopy; bytes: Uint8Array }> = {};
  for (const { r, cert } of [...outside].sort((a, b) => (a.r.address < b.r.address ? -1 : 1))) {
    const bytes = r.mode === 'smime'
      ? await (await smimeModule()).smimeCopy(inner, r, signer)
      : r.mode === 'tls'
        ? await pgp.encryptTo(inner, [cert!])
        : await pgp.encryptTo(inner, [cert!, s.me.toPublic()], s.me);
    out[r.address] = { copy: { mode: r.mode, sha256: await pgp.sha256hex(bytes), size: bytes.length }, bytes };
  }
  return out;
}

/** Encrypts and signs a file as it is read (`file.stream()` → OpenPGP.js → a Blob of
 * ciphertext), hashing plaintext and ciphertext incrementally: never whole in memory. Progress
 * runs from 0 to 0.5 (encrypting is the first half of sending). */
export async function sealFile(f: File, certs: pgp.PublicKey[], me: pgp.PrivateKey, progress: (stage: string, fraction: number) => void) {
  const plainHash = await sha256();
  const cipherHash = await sha256();
  let read = 0;
  const report = throttled((x) => progress('Encrypting', 0.5 * x));
  report(0);
  const counted = f.stream().pipeThrough(rechunk()).pipeThrough(new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, ctl) {
      plainHash.update(chunk);
      read += chunk.length;
      report(f.size ? Math.min(1, read / f.size) : 1);
      ctl.enqueue(chunk);
    },
  }));
  const sink = new BlobSink();
  try {
    await pump(await pgp.sealStream(counted, certs, me), (chunk) => {
      cipherHash.update(chunk);
      sink.push(chunk);
    });
  } catch (e) {
    if (e instanceof DOMException && (e.name === 'NotReadableError' || e.name === 'NotFoundError')) {
      throw new Error(`${f.name} could not be read any more (was it moved or changed?). Attach it again.`);
    }
    throw e;
  }
  if (read !== f.size) throw new Error(`${f.name} changed while it was being encrypted. Attach it again.`);
  return { blob: sink.blob(), sha256: cipherHash.hex(), plainSize: read, plainSha256: plainHash.hex() };
}

export function safeName(name: string): string {
  const base = name.split(/[/\\]/).pop() ?? '';
  const cleaned = base.replace(/[\u0000-\u001f\u007f]/g, '').replace(/^\.+/, '').trim();
  return cleaned || 'attachment';
}

// ---- trust ----

async function servedKey(address: string, fpr: string): Promise<pgp.PublicKey> {
  const want = fpr.replace(/\s+/g, '').toUpperCase();
  const resp = await api.request('GET', `/vks/v1/by-fingerprint/${want}`);
  const keys = await pgp.readCerts(await resp.text());
  const k = keys.find((c) => c.getFingerprint().toUpperCase() === want);
  if (!k) throw new Error(`The directory serves no key for ${address} with this fingerprint.`);
  return k;
}

export async function certify(s: Session, address: string, fpr: string, introducer?: { scope?: string }): Promise<void> {
  const target = await servedKey(address, fpr);
  const armored = await pgp.certification(s.me, target, address, introducer ? { kind: 'introducer', scope: introducer.scope } : { kind: 'certify' });
  await api.post('/certifications', { cert: armored });
}

export async function retract(s: Session, address: string, fpr: string): Promise<void> {
  const target = await servedKey(address, fpr);
  const armored = await pgp.certification(s.me, target, address, { kind: 'retract' });
  await api.post('/certifications', { cert: armored });
}

export async function revokeKey(s: Session, reason: string): Promise<void> {
  const keytext = await pgp.revokeOwnKey(s.me, reason);
  await api.request('POST', '/pks/add', new URLSearchParams({ keytext }));
}

// ---- settings ----

export async function changePassword(s: Session, current: string, next: string, progress: Progress): Promise<void> {
  progress('Checking your current password', 0.1);
  const params = await api.post('/login/params', { address: s.account.address });
  const old = await derivePasswordKeys(current, unb64(params.kdf_salt), params.kdf_params);
  progress('Deriving the key of your new password (Argon2id)', 0.45);
  const salt = randomSalt();
  const nextParams = orgKdf(s.org);
  const keys = await derivePasswordKeys(next, salt, nextParams);
  progress('Locking your secret key with it', 0.8);
  const wrapped = await pgp.wrapKey(s.me, keys.wrap);
  await api.post('/me/password', {
    current_verifier: b64(old.verifier),
    wrapped_key: wrapped,
    kdf_salt: b64(salt),
    kdf_params: nextParams,
    login_verifier: b64(keys.verifier),
  });
  // The S/MIME key kept on the node stays under the old password: the next send after a new
  // login finds it does not unwrap and makes a new one (`smimeSigner`).
  s.smimeWrap = await smimeWrapKey(keys.wrap);
  progress('Done', 1);
}
