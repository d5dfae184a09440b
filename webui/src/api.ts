// The node's HTTP API as the app uses it. The session is an HttpOnly cookie the page cannot
// read; state-changing requests carry the session's CSRF token, kept in memory only.

import type { components, paths } from './api-types';
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
      headers: { ...headers(method, body !== undefined && !(body instanceof URLSearchParams) && !(body instanceof Blob)), ...extra },
      body: body === undefined ? undefined : body instanceof URLSearchParams || body instanceof Blob ? body : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'network', NETWORK);
  }
  if (!resp.ok) throw await failure(resp);
  return resp;
}

// ---- typed routes: paths, parameters, bodies and answers as the node's OpenAPI document says ----

type Method = 'get' | 'post' | 'put' | 'delete';
type Op<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>;
/** The API's routes that take `M`, as the document writes them (`/messages/{id}`). */
export type Route<M extends Method> = { [P in keyof paths]: [Op<P, M>] extends [never] ? never : P }[keyof paths];
type JsonOf<R> = R extends { content: { 'application/json': infer B } } ? B : never;
/** What a route answers on success: its 200 or 201 JSON, or nothing (204). */
export type Answer<P extends keyof paths, M extends Method> = Op<P, M>['responses'] extends infer R
  ? R extends { 200: infer A } ? JsonOf<A> : R extends { 201: infer A } ? JsonOf<A> : void
  : never;
/** The JSON body a route takes (`never`: none). */
export type Body<P extends keyof paths, M extends Method> = Op<P, M> extends { requestBody: { content: { 'application/json': infer B } } } ? B : never;
type ParamNames<P extends string> = P extends `${string}{${infer N}}${infer R}` ? N | ParamNames<R> : never;
type ParamArgs<P extends string> = [ParamNames<P>] extends [never] ? [] : [params: Record<ParamNames<P>, string | number>];
type BodyArgs<P extends keyof paths, M extends Method> = [Body<P, M>] extends [never] ? [] : [body: Body<P, M>];

/** `route` with its `{name}` parameters filled in, each URL-encoded; then the body, if any. */
function fill(route: string, args: unknown[]): [string, unknown] {
  if (!route.includes('{')) return [route, args[0]];
  const params = args[0] as Record<string, string | number>;
  return [route.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(String(params[name]))), args[1]];
}

/** POSTs raw bytes (`application/octet-stream`) to `path`; throws the node's error answer. */
export async function postBytes(path: string, data: Uint8Array): Promise<void> {
  await request('POST', path, new Blob([data as BlobPart]), { 'content-type': 'application/octet-stream' });
}

export async function get<P extends Route<'get'>>(route: P, ...params: ParamArgs<P>): Promise<Answer<P, 'get'>> {
  return (await request('GET', fill(route, params)[0])).json();
}

export async function post<P extends Route<'post'>>(route: P, ...args: [...ParamArgs<P>, ...BodyArgs<P, 'post'>]): Promise<Answer<P, 'post'>> {
  const [path, body] = fill(route, args);
  const resp = await request('POST', path, body ?? {});
  return resp.status === 204 ? (undefined as Answer<P, 'post'>) : resp.json();
}

export async function del<P extends Route<'delete'>>(route: P, ...params: ParamArgs<P>): Promise<void> {
  await request('DELETE', fill(route, params)[0]);
}

/** Uploads ciphertext (`PUT /blobs`) reporting progress; fetch cannot report upload progress. */
export function upload(data: Uint8Array | Blob, onProgress: (fraction: number) => void): Promise<UploadResponse> {
  return uploadTo(PREFIX + '/blobs', csrf ? { 'x-csrf-token': csrf } : {}, data, onProgress);
}

/** `upload` to another route with other headers (a pickup session's `/pickup/uploads/{sha256}`). */
export function uploadTo(path: string, extra: Record<string, string>, data: Uint8Array | Blob, onProgress: (fraction: number) => void): Promise<UploadResponse> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', path);
    xhr.setRequestHeader('content-type', 'application/octet-stream');
    for (const [k, v] of Object.entries(extra)) xhr.setRequestHeader(k, v);
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
export async function download(path: string, expectSize: number, onProgress: (fraction: number) => void, extra: Record<string, string> = {}): Promise<Uint8Array> {
  const sink: Uint8Array[] = [];
  const got = await receive(path, expectSize, (c) => sink.push(c), onProgress, extra);
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
export async function downloadBlob(path: string, expectSize: number, onProgress: (fraction: number) => void, extra: Record<string, string> = {}): Promise<{ blob: Blob; sha256: string }> {
  const hash = await sha256();
  const sink = new BlobSink();
  await receive(path, expectSize, (c) => { hash.update(c); sink.push(c); }, onProgress, extra);
  return { blob: sink.blob(), sha256: hash.hex() };
}

async function receive(path: string, expectSize: number, onChunk: (c: Uint8Array) => void, onProgress: (fraction: number) => void, extra: Record<string, string>): Promise<number> {
  const resp = await request('GET', path, undefined, extra);
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

// ---- wire types: generated from the node's code (proto/src/lib.rs → webui/openapi.json →
// src/api-types.ts, `npm run api-types`); never written by hand here ----

type Schemas = components['schemas'];
export type ErrorBody = Schemas['ErrorBody'];
export type KdfParams = Schemas['KdfParams'];
export type OrgInfo = Schemas['OrgInfo'];
export type AccountView = Schemas['AccountView'];
export type LoginResponse = Schemas['LoginResponse'];
export type VerdictView = Schemas['VerdictView'];
export type ResolvedRecipient = Schemas['ResolvedRecipient'];
export type ComplianceKeyRef = Schemas['ComplianceKeyRef'];
export type EnvelopeResponse = Schemas['EnvelopeResponse'];
export type Folder = Schemas['Folder'];
export type MailboxItem = Schemas['MailboxItem'];
export type DeliveryState = Schemas['DeliveryState'];
export type Notice = Schemas['Notice'];
export type MailboxResponse = Schemas['MailboxResponse'];
export type MessageResponse = Schemas['MessageResponse'];
export type UploadResponse = Schemas['UploadResponse'];
export type SubmitRecipient = Schemas['RecipientState'];
export type PartView = Schemas['PartView'];
export type PickupSeal = Schemas['PickupSeal'];
export type PickupInfo = Schemas['PickupInfo'];
export type PickupUnlocked = Schemas['PickupUnlocked'];
export type PickupView = Schemas['PickupView'];
export type EnvelopePart = Schemas['EnvelopePart'];
export type Envelope = Schemas['Envelope'];
export type ReceiptDecision = Schemas['ReceiptDecision'];
export type RegisteredView = Schemas['RegisteredView'];
export type AttachmentMeta = Schemas['AttachmentMeta'];
export type Head = Schemas['Head'];
export type SessionView = Schemas['SessionView'];
export type AdminUser = Schemas['AdminUser'];
export type NodeStatus = Schemas['NodeStatus'];
export type PeerView = Schemas['PeerView'];
export type AppPasswordView = Schemas['AppPasswordView'];
export type CreatedAppPassword = Schemas['CreatedAppPassword'];

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
