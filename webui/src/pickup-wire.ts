// The pickup wire of docs/pickup.md as the web app speaks it: names for the generated types
// (proto/src/lib.rs → openapi.json → api-types.ts), never written by hand.
import type * as api from './api';
import type { Envelope } from './api';

/** The signed envelope; its `pickup` map (outside address → pickup key fingerprint) is generated. */
export type PickupEnvelope = Envelope;

/** One pickup recipient's sealed key material in `SubmitRequest.pickups` (generated). */
export type PickupSeal = api.PickupSeal;

/** `POST /pickup/open` {token}: what the recipient sees before the code. Changes nothing. */
export type PickupInfo = api.PickupInfo;

/** `POST /pickup/unlock` {token, verifier} when the code is right. */
export type PickupUnlocked = api.PickupUnlocked;

/** A pickup recipient's state as the sender sees it (`deliveries`). */
export type PickupState = 'notified' | 'opened' | 'read' | 'replied' | 'locked' | 'expired' | 'withdrawn' | 'failed';

export const PICKUP_STATES: readonly string[] = ['pickup', 'notified', 'opened', 'read', 'replied', 'locked', 'expired', 'withdrawn', 'failed'];
