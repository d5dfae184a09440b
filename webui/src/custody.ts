// The compliance key's custody on the browser's side (docs/compliance.md, "Dual control"), the
// same steps as the Rust client's client/src/custody.rs:
//   setup    (admin):     make the key, lock its TSK under a random S, split S M-of-N, encrypt
//                         each share to one officer's key; S and the shares are then forgotten;
//   approve  (officer):   decrypt one's own share, encrypt it to the case's request key;
//   open     (requester): decrypt one's own share and the approvers', combine S, unlock the key
//                         (in memory only), decrypt the case's messages.
// The request key's secret stays in the requester's browser: encrypted to their own key and
// kept in localStorage per case until the case is opened.
import * as api from './api';
import type { components } from './api-types';
import { readEntity } from './mime';
import * as pgp from './pgp';
import * as shamir from './shamir';

export type CustodyView = components['schemas']['CustodyView'];
export type CaseView = components['schemas']['CaseView'];
export type CaseRelease = components['schemas']['CaseRelease'];
export type OfficerView = components['schemas']['OfficerView'];
export type ArchiveItem = components['schemas']['ArchiveItem'];
export type Head = components['schemas']['Head'];

const enc = new TextEncoder();

/** A colleague's certificate, only with our CA's certification of their address. */
async function officerCert(address: string, ca: pgp.PublicKey): Promise<pgp.PublicKey> {
  const armored = await (await api.request('GET', `/users/${encodeURIComponent(address)}/cert`)).text();
  const cert = await pgp.readCert(armored);
  if (!(await pgp.certifies(ca, cert, address))) throw new Error(`${address}'s key is not certified by your organisation`);
  return cert;
}

/** The admin's setup: returns what the node stored. */
export async function setUp(domain: string, ca: pgp.PublicKey, officers: string[], threshold: number): Promise<CustodyView> {
  const certs = await Promise.all(officers.map((o) => officerCert(o, ca)));
  const key = await pgp.generateUserKey(`compliance@${domain}`, 'Compliance archive');
  const s = shamir.newSecret();
  try {
    const locked = await pgp.wrapKey(key.privateKey, await shamir.lockPassphrase(s));
    const shares = await shamir.split(s, threshold, officers.length);
    const wrapped = await Promise.all(shares.map(async (share, i) => {
      const w = await pgp.encryptShare(share, certs[i]);
      share.fill(0);
      return { address: officers[i], share: w };
    }));
    return await api.post('/admin/compliance/custody', { cert: key.publicArmored, locked_key: locked, threshold, shares: wrapped });
  } finally {
    s.fill(0);
  }
}

async function decryptShare(armored: string, key: pgp.PrivateKey): Promise<Uint8Array> {
  return (await pgp.decryptArrived(enc.encode(armored), key)).data;
}

const storeKey = (id: number) => `sealpost.compliance.request.${id}`;

/** Officer: requests access; the request key's secret is kept encrypted to `me`. */
export async function request(me: pgp.PrivateKey, domain: string, caseRef: string, messageIds: string[]): Promise<CaseView> {
  const rk = await pgp.generateUserKey(`request@${domain}`);
  const view = await api.post('/compliance/cases', { case_ref: caseRef, message_ids: messageIds, request_key: rk.publicArmored });
  localStorage.setItem(storeKey(view.id), await pgp.encryptToSelf(rk.privateKey.armor(), me));
  return view;
}

/** Officer: approves another officer's case with their own share re-encrypted to its request key. */
export async function approve(me: pgp.PrivateKey, c: CaseView): Promise<CaseView> {
  const custody = await api.get('/compliance/custody');
  if (!custody.my_share) throw new Error('you hold no share of the compliance key');
  const share = await decryptShare(custody.my_share, me);
  try {
    const rewrapped = await pgp.encryptShare(share, await pgp.readCert(c.request_key));
    return await api.post('/compliance/cases/{id}/approve', { id: c.id }, { share: rewrapped });
  } finally {
    share.fill(0);
  }
}

export interface Opened {
  id: string;
  head: Head;
  /** Why this copy did not open (its head is then empty). */
  error?: string;
}

/** Requester: the release (logged by the node first), the key unlocked in memory, the case's
 * messages decrypted. */
export async function open(me: pgp.PrivateKey, c: CaseView): Promise<Opened[]> {
  const kept = localStorage.getItem(storeKey(c.id));
  if (!kept) throw new Error('this browser does not hold the request key of this case: request access again here');
  const requestKey = await pgp.readUnlockedKey(await pgp.decryptSignedBySelf(kept, me));
  const release: CaseRelease = await api.get('/compliance/cases/{id}/release', { id: c.id });
  const shares = [await decryptShare(release.own_share, me)];
  for (const s of release.shares) shares.push(await decryptShare(s.share, requestKey));
  const s = await shamir.combine(shares);
  shares.forEach((x) => x.fill(0));
  let key: pgp.PrivateKey;
  try {
    key = await pgp.unwrapKey(release.locked_key, await shamir.lockPassphrase(s));
  } catch (e) {
    if (e instanceof pgp.WrongPassphrase) throw new Error('the shares do not unlock the compliance key: one of them was changed');
    throw e;
  } finally {
    s.fill(0);
  }
  const out: Opened[] = [];
  for (const id of c.message_ids) {
    const resp = await api.request('GET', `/compliance/cases/${c.id}/messages/${id}`);
    const cipher = new Uint8Array(await resp.arrayBuffer());
    let data: Uint8Array;
    try {
      ({ data } = await pgp.decryptArrived(cipher, key));
    } catch {
      // A copy still waiting for its session-key packet, or one whose recipient's client added
      // a packet around another key than the message's (the node cannot check it): said so,
      // and the case's other messages still open (docs/compliance.md, "Waiting copies").
      const empty: Head = { v: 1, message_id: id, from: '', to: [], subject: '', body: '', attachments: [], sent_at: 0 };
      out.push({ id, head: empty, error: 'This copy does not open with the compliance key: it is still waiting for its session-key packet, or the packet its recipient\'s client added does not hold the message\'s key.' });
      continue;
    }
    out.push({ id, head: await readHead(id, data) });
  }
  return out;
}

/** A decrypted copy's content: a Sealpost message's signed head (JSON), or the MIME entity of
 * mail that came by SMTP. */
async function readHead(id: string, data: Uint8Array): Promise<Head> {
  try {
    return JSON.parse(new TextDecoder().decode(data));
  } catch {
    const e = await readEntity(data);
    return { v: 1, message_id: id, from: e.from, to: e.to, subject: e.subject, body: e.text, attachments: [], sent_at: e.date ?? 0 };
  }
}

/** Which copies a search lists: all, only those waiting for their compliance session-key
 * packet, or only the others. */
export type PendingFilter = 'all' | 'waiting' | 'complete';

/** Officer: the envelope-data search (logged by the node). */
export async function search(sender: string, recipient: string, pending: PendingFilter = 'all'): Promise<ArchiveItem[]> {
  const q = new URLSearchParams();
  if (sender.trim()) q.set('sender', sender.trim());
  if (recipient.trim()) q.set('recipient', recipient.trim());
  if (pending !== 'all') q.set('pending', String(pending === 'waiting'));
  return (await api.request('GET', `/compliance/archive?${q}`)).json();
}

/** Officer: how many stored copies still wait for their compliance session-key packet. */
export async function waitingCount(): Promise<number> {
  return (await api.request('GET', '/compliance/archive/pending')).json().then((v: { pending: number }) => v.pending);
}

/** Officer: a case's access report, saved as a JSON file. */
export async function downloadReport(c: CaseView): Promise<void> {
  const report = await api.get('/compliance/cases/{id}/report', { id: c.id });
  const blob = new Blob([JSON.stringify(report, null, 2)], { type: 'application/json' });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = `compliance-case-${c.id}-report.json`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}
