// The mail wire of docs/mail.md (delivery modes, external copies, SMTP arrivals, outside keys)
// as the web app speaks it: names for the generated types (proto/src/lib.rs → openapi.json →
// api-types.ts), never written by hand.
import type * as api from './api';
import type { components } from './api-types';

type Schemas = components['schemas'];

/** `proto::DeliveryMode`: how one recipient is reached. */
export type DeliveryMode = Schemas['DeliveryMode'];

/** `proto::KeySource`: where an outside recipient's key was found. */
export type KeySource = Schemas['KeySource'];

/** One recipient of the envelope answer, with its mode, why (one plain sentence), the key's
 * source, and `sees_content` (the sender's node sees the content in transit: tell them first). */
export type Resolved = api.ResolvedRecipient;

/** The external copy made for one outside recipient: the hash and size of its exact bytes. */
export type ExternalCopy = Schemas['ExternalCopy'];

/** The signed envelope with its `external` map (address → copy), absent when empty. */
export type MailEnvelope = api.Envelope;

/** `POST /messages` with each external copy (base64). */
export type MailSubmit = api.Body<'/messages', 'post'>;

/** How a mail that came in over SMTP arrived (`MailboxItem.arrival`). */
export type Arrival = Schemas['Arrival'];

/** A mailbox item; for mail that came in over SMTP with `arrival` and `in_reply_to` (our
 * message it answers). */
export type MailItem = api.MailboxItem;

/** A recipient's delivery state with its mode (absent on states recorded before modes). */
export type MailDelivery = api.DeliveryState;

/** An outside key the user imported (`GET /outside-keys`). */
export type OutsideKeyView = Schemas['OutsideKeyView'];

/** What the node finds for an outside address (`GET /outside-keys/lookup/{address}`). */
export type OutsideKeysResponse = Schemas['OutsideKeysResponse'];
