// The pickup wire of docs/pickup.md as the web app speaks it. These types follow the contract
// by hand only until the node's OpenAPI document carries them (branch `pickup`); then each
// becomes an alias of the generated type, as in api.ts.
import type * as api from './api';
import type { Envelope, KdfParams } from './api';

/** The signed envelope with the pickup map: outside address → pickup key fingerprint. */
export type PickupEnvelope = Envelope & { pickup?: Record<string, string> };

/** One pickup recipient's sealed key material in `SubmitRequest.pickups`. */
export interface PickupSeal {
  address: string;
  /** Armored public pickup key; its fingerprint is `envelope.pickup[address]`. */
  cert: string;
  /** Armored secret pickup key, every secret locked with the wrap passphrase. */
  locked_key: string;
  /** Armored OpenPGP message: the (unlocked) armored secret pickup key, encrypted to the sender. */
  key_for_sender: string;
  /** Base64, 16 to 64 bytes. */
  salt: string;
  kdf: KdfParams;
  /** Base64 of the 32-byte verifier. */
  verifier: string;
  expires_in_days?: number;
}

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
