// The pickup wire of docs/pickup.md as the web app speaks it: aliases of the generated types
// where the node's OpenAPI document has them; the pickup page's answers (`PickupInfo`,
// `PickupUnlocked`) follow proto/src/lib.rs by hand until its routes reference them.
import type * as api from './api';
import type { Envelope, KdfParams } from './api';

/** The signed envelope; its `pickup` map (outside address → pickup key fingerprint) is generated. */
export type PickupEnvelope = Envelope;

/** One pickup recipient's sealed key material in `SubmitRequest.pickups` (generated). */
export type PickupSeal = api.PickupSeal;

/** `POST /pickup/open` {token}: what the recipient sees before the code. Changes nothing. */
export interface PickupInfo {
  /** `open`, or `locked` (too many wrong codes: the sender must issue a new one). */
  state: string;
  /** The outside recipient the pickup is for. */
  address?: string;
  sender: string;
  sender_name?: string | null;
  organisation: string;
  expires_at: number;
  salt: string;
  kdf: KdfParams;
  attempts_left: number;
}

/** `POST /pickup/unlock` {token, verifier} when the code is right. */
export interface PickupUnlocked {
  session: string;
  session_expires_at?: number;
  address?: string;
  message_id?: string;
  locked_key: string;
  /** The pickup key's public certificate. */
  cert: string;
  envelope: string;
  signature: string;
  sender_cert: string;
  ca_fingerprint: string;
  /** The organisation's CA certificate, when the node sends it (to check its certification). */
  ca_cert?: string;
  parts?: api.PartView[];
}

/** A pickup recipient's state as the sender sees it (`deliveries`). */
export type PickupState = 'notified' | 'opened' | 'read' | 'replied' | 'locked' | 'expired' | 'withdrawn' | 'failed';

export const PICKUP_STATES: readonly string[] = ['pickup', 'notified', 'opened', 'read', 'replied', 'locked', 'expired', 'withdrawn', 'failed'];
