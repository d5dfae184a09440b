// The node's HTTP API as the app uses it. The session is an HttpOnly cookie the page cannot
// read; state-changing requests carry the session's CSRF token, kept in memory only.

import { BlobSink, pump, sha256 } from './streams';

export const PREFIX = '/api/v1';

let csrf: string | null = null;

export function setCsrf(token: string | null) {
  csrf = token;
}

/** An error answer of the node, or a failure to reach it, with a message for people. */
export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string) {
    super(message);
  }
}

const NETWORK = 'Cannot reach your Sealpost node. Check your connection, then try again.';

function headers(method: string, json: boolean): Record<string, string> {
  const h: Record<string, string> = {};
  if (json) h['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrf) h['x-csrf-token'] = csrf;
  return h;
}

async function failure(resp: Response): Promise<ApiError> {
  let code = 'http';
  let message = `The node answered HTTP ${resp.status}.`;
  try {
    const body = await resp.json();
    if (body && typeof body.code === 'string') {
      code = body.code;
      message = body.message;
    }
  } catch {
    /* not JSON */
  }
  return new ApiError(resp.status, code, message);
}

export async function request(method: string, path: string, body?: unknown, extra: Record<string, string> = {}): Promise<Response> {
  let resp: Response;
  try {
    resp = await fetch(path.startsWith('/api/') || path.startsWith('/pks') || path.startsWith('/vks') ? path : PREFIX + path, {
      method,
      headers: { ...headers(method, body !== undefined && !(body instanceof URLSearchParams)), ...extra },
      body: body === undefined ? undefined : body instanceof URLSearchParams ? body : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'network', NETWORK);
  }
  if (!resp.ok) throw await failure(resp);
  return resp;
}

export async function get<T>(path: string): Promise<T> {
  return (await request('GET', path)).json();
}

export async function post<T>(path: string, body?: unknown, extra?: Record<string, string>): Promise<T> {
  const resp = await request('POST', path, body ?? {}, extra);
  return resp.status === 204 ? (undefined as T) : resp.json();
}

export async function del(path: string): Promise<void> {
  await request('DELETE', path);
}

/** Uploads ciphertext (`PUT /blobs`) reporting progress; fetch cannot report upload progress. */
export function upload(data: Uint8Array | Blob, onProgress: (fraction: number) => void): Promise<{ sha256: string; size: number }> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', PREFIX + '/blobs');
    xhr.setRequestHeader('content-type', 'application/octet-stream');
    if (csrf) xhr.setRequestHeader('x-csrf-token', csrf);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onerror = () => reject(new ApiError(0, 'network', NETWORK));
    xhr.onload = () => {
      let body: any = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      if (xhr.status >= 200 && xhr.status < 300 && body) resolve(body);
      else reject(new ApiError(xhr.status, body?.code ?? 'http', body?.message ?? `Upload failed (HTTP ${xhr.status}).`));
    };
    xhr.send(data as any); // a Blob is streamed from the browser's blob storage
  });
}

/** Downloads a part, checking it against the size and hash the sender signed, with progress. */
export async function download(path: string, expectSize: number, onProgress: (fraction: number) => void): Promise<Uint8Array> {
  const sink: Uint8Array[] = [];
  const got = await receive(path, expectSize, (c) => sink.push(c), onProgress);
  const out = new Uint8Array(got);
  let at = 0;
  for (const c of sink) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Downloads a part as a stream into a Blob (never whole in memory), hashing it as it arrives;
 * refuses more or fewer bytes than the sender signed for. The caller compares the hash. */
export async function downloadBlob(path: string, expectSize: number, onProgress: (fraction: number) => void): Promise<{ blob: Blob; sha256: string }> {
  const hash = await sha256();
  const sink = new BlobSink();
  await receive(path, expectSize, (c) => { hash.update(c); sink.push(c); }, onProgress);
  return { blob: sink.blob(), sha256: hash.hex() };
}

async function receive(path: string, expectSize: number, onChunk: (c: Uint8Array) => void, onProgress: (fraction: number) => void): Promise<number> {
  const resp = await request('GET', path);
  let got = 0;
  try {
    await pump(resp.body!, (value) => {
      if (got + value.length > expectSize) {
        throw new ApiError(0, 'integrity', 'The node sent more data than the sender signed for: the message was altered.');
      }
      onChunk(value);
      got += value.length;
      onProgress(expectSize ? got / expectSize : 1);
    });
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw new ApiError(0, 'network', 'The download broke off. Check your connection, then try again.');
  }
  if (got !== expectSize) throw new ApiError(0, 'integrity', 'The node sent less data than the sender signed for: the message was altered.');
  return got;
}

// ---- wire types (node/src/proto.rs) ----

export interface KdfParams { m_cost_kib: number; t_cost: number; p_cost: number }
export interface OrgInfo {
  domain: string; ca_fingerprint: string; ca_cert: string; node_key: string; version: string;
  accept_partial: boolean;
  limits: { max_message_bytes: number; max_parts: number; max_recipients: number; inline_part_max_bytes: number };
}
export interface AccountView {
  address: string; name: string | null; is_admin: boolean; fingerprint: string; cert: string;
  wrapped_key: string; totp_enabled: boolean;
}
export interface LoginResponse { token: string; expires_at: number; account: AccountView; csrf_token?: string }
export interface VerdictView {
  fingerprint: string; address: string; level: 'full' | 'partial' | 'none'; amount: number;
  why_not: string | null; explanation: string[];
}
export interface ResolvedRecipient { address: string; fingerprint: string; cert: string; mode: string; verdict: VerdictView }
export interface EnvelopeResponse { message_id: string; expires_at: number; sender: ResolvedRecipient; recipients: ResolvedRecipient[] }
export interface MailboxItem {
  message_id: string; folder: 'inbox' | 'sent' | 'archive'; unread: boolean; from: string; to: string[];
  received_at: number; size: number; parts: number;
  /** In Sent: each recipient at a peered organisation and how far their copy got. */
  delivery?: DeliveryState[];
}
export interface DeliveryState { address: string; state: 'queued' | 'delivered' | 'failed'; reason?: string; updated_at: number }
export interface Notice { id: number; message_id: string | null; text: string; created_at: number; unread: boolean }
export interface MailboxResponse { items: MailboxItem[]; notices?: Notice[] }
export interface MessageResponse {
  item: MailboxItem; envelope: string; signature: string; accepted_at: number;
  parts: { index: number; size: number; sha256: string }[]; sender_cert: string;
}
export interface EnvelopePart { sha256: string; size: number }
export interface Envelope { v: number; message_id: string; from: string; to: string[]; created_at: number; parts: EnvelopePart[] }
export interface AttachmentMeta { name: string; media_type: string; size: number; sha256: string; part: number }
export interface Head {
  v: number; message_id: string; from: string; to: string[]; subject: string; body: string;
  attachments: AttachmentMeta[]; sent_at: number;
}
export interface SessionView { id: string; created_at: number; expires_at: number; current: boolean }
export interface AdminUser {
  address: string; name: string | null; is_admin: boolean; state: 'invited' | 'active' | 'disabled';
  fingerprint: string | null; created_at: number; totp_enabled: boolean; invite_expires_at: number | null;
}
export interface NodeStatus {
  domain: string; version: string; started_at: number; ca_fingerprint: string; node_key: string;
  accounts: { active: number; invited: number; disabled: number; admins: number };
  messages: number; stored_bytes: number; log_entries: number; last_checkpoint_at: number | null;
  live_sessions: number; peers: PeerView[];
}
export interface PeerView {
  domain: string; peer_id: string; addrs: string[]; ca_fingerprint: string; added_at: number;
  state: 'new' | 'connected' | 'backing_off' | 'disconnected'; state_at: number | null;
  last_error: string | null; retry_at: number | null; queued: number;
}

/** Same rule as `VerdictView::acceptable` in the node and the CLI. */
export function acceptable(v: VerdictView, acceptPartial: boolean): boolean {
  if (v.why_not === 'revoked' || v.why_not === 'expired' || v.why_not === 'user_id_revoked' || v.why_not === 'invalid') return false;
  return v.level === 'full' || (acceptPartial && v.level === 'partial');
}

/** Why a recipient is refused, in words that say what to do. */
export function refusal(v: VerdictView | null, address: string): string {
  if (!v) return `No key is known for ${address}: they cannot receive encrypted messages yet. Check the address, or ask them to enrol.`;
  switch (v.why_not) {
    case 'revoked': return `${address}'s key has been revoked: messages to it are refused. Ask them for their new key.`;
    case 'expired': return `${address}'s key has expired. Ask them to renew it.`;
    case 'user_id_revoked': return `${address} withdrew this address from their key.`;
    case 'invalid': return `${address}'s key is not valid.`;
    case 'unknown_key': return `No key is known for ${address}. Check the address, or ask them to enrol.`;
    case 'no_path': return `Nobody you trust vouches for ${address}'s key. Compare fingerprints with them and certify it under Contacts.`;
    case 'not_enough': return `${address}'s key is only partly verified. Compare fingerprints with them and certify it under Contacts.`;
    case 'conflict': return `Several keys claim ${address}: compare fingerprints with them before writing.`;
    default: return `${address}'s key is not verified (${v.why_not ?? v.level}).`;
  }
}
