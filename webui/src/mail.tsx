// What the mail screens (mailbox, reader, compose) and the shell share: the folders, what a
// reply or forward starts from, and how delivery to other organisations is shown.
import type * as api from './api';
import type { Opened } from './client';
import type { DeliveryMode, KeySource, MailDelivery } from './mail-wire';
import { when } from './ui';

export const FOLDERS: { id: api.Folder; label: string; icon: string }[] = [
  { id: 'inbox', label: 'Inbox', icon: 'inbox' },
  { id: 'sent', label: 'Sent', icon: 'sent' },
  { id: 'archive', label: 'Archive', icon: 'archive' },
];

/** What a reply or a forward starts from. */
export interface ComposeSeed {
  to: string[];
  subject: string;
  body: string;
  forwardFrom?: Opened;
  /** A reply to mail that came by SMTP: its Message-ID, so the reply's mail joins the thread. */
  inReplyTo?: string;
}

/** Each delivery mode in words (docs/mail.md, "Delivery modes"). */
export const MODE_WORDS: Record<DeliveryMode, string> = {
  local: 'Sealpost',
  remote: 'Sealpost',
  openpgp: 'OpenPGP mail',
  smime: 'S/MIME mail',
  tls: 'Enforced TLS',
  pickup: 'Pickup',
};

/** What each mode means for the sender, in one sentence. */
export function modeSentence(mode: DeliveryMode, address: string, ownDomain: string): string {
  const domain = address.split('@')[1] ?? '';
  switch (mode) {
    case 'local': return `${address} is a user of ${ownDomain}: end-to-end encrypted.`;
    case 'remote': return `${domain}'s Sealpost node receives it end-to-end encrypted.`;
    case 'openpgp': return `Encrypted to ${address}'s own OpenPGP key and signed by you: ${domain}'s mail server receives only ciphertext.`;
    case 'smime': return `Encrypted to ${address}'s S/MIME certificate: ${domain}'s mail server receives only ciphertext.`;
    case 'tls': return `${domain}'s mail server receives the content over authenticated TLS: our node sees it in transit.`;
    case 'pickup': return `${address} gets a notification mail and opens the message with an unlock code you pass on.`;
  }
}

/** A sentence from the node (`why`) with its full stop; capitalised unless it starts with an
 * address (which is written as it is). */
export function sentence(s: string): string {
  const t = s.trim();
  const capital = /^\S+@/.test(t) ? t : t.charAt(0).toUpperCase() + t.slice(1);
  return !t || /[.!?]$/.test(t) ? capital : capital + '.';
}

/** Where an outside recipient's key was found, in words. */
export const KEY_SOURCE_WORDS: Record<KeySource, string> = {
  wkd: "published by the domain's Web Key Directory",
  keyserver: 'only found on a keyserver',
  imported: 'imported by you',
  imported_by_admin: 'imported by your administrator',
  x509_anchor: 'certificate checked against a trusted authority',
};

/** A delivery state's mode: as the node says, else what the envelope tells (states recorded
 * before modes were: pickups named in the envelope, the rest federated). */
export function deliveryMode(d: MailDelivery, pickups: Record<string, string>): DeliveryMode {
  return d.mode ?? (pickups[d.address] ? 'pickup' : 'remote');
}

/** Headings of the sender's delivery lines, one per mode. */
export const MODE_HEADINGS: Record<DeliveryMode, string> = {
  local: 'Sealpost',
  remote: 'Delivery to other organisations',
  openpgp: 'OpenPGP mail',
  smime: 'S/MIME mail',
  tls: 'Enforced TLS mail',
  pickup: 'By unlock code',
};

/** The node's reasons end with the transport's own error text, "(last error: …)": people get
 * the sentence, the technical part goes under a disclosure. */
function splitReason(text: string): [string, string | null] {
  const m = /^([\s\S]*?)\s*\(last error: ([\s\S]*)\)(\.?)$/.exec(text);
  return m ? [m[1] + m[3], m[2]] : [text, null];
}

export function Reason({ text }: { text: string }) {
  const [plain, technical] = splitReason(text);
  return <>{plain}{technical && <details class="technical"><summary>Technical detail</summary><div class="mono tiny">{technical}</div></details>}</>;
}

/** Each recipient at a peered organisation and how far their copy got. */
export function DeliveryChips({ delivery, long }: { delivery: MailDelivery[]; long?: boolean }) {
  const label: Record<string, string> = {
    queued: 'Queued', delivered: 'Delivered', failed: 'Not delivered',
    pickup: 'Waiting for mail', notified: 'Notified', opened: 'Opened', read: 'Read', replied: 'Replied',
    locked: 'Locked', expired: 'Expired', withdrawn: 'Withdrawn',
  };
  const domain = (d: MailDelivery) => d.address.split('@')[1];
  const byMail = (d: MailDelivery) => d.mode === 'openpgp' || d.mode === 'smime' || d.mode === 'tls';
  const detail = (d: MailDelivery) => {
    if (byMail(d) && d.state === 'queued') return `Waiting to be handed to ${domain(d)}'s mail server; Sealpost keeps trying.`;
    if (byMail(d) && d.state === 'delivered') return `Handed to the next mail server (${when(d.updated_at)})${d.reason ? `, which answered: ${d.reason}` : ''}.`;
    switch (d.state) {
      case 'queued': return `Waiting for ${domain(d)}'s node to accept it; Sealpost keeps trying.`;
      case 'delivered': return `${domain(d)}'s node confirmed it has the message (${when(d.updated_at)}).`;
      case 'pickup': return `The notification mail to ${d.address} is on its way.`;
      case 'notified': return `${d.address} was sent a notification mail (${when(d.updated_at)}); they need the unlock code to open it.`;
      case 'opened': return `${d.address} entered the right unlock code (${when(d.updated_at)}).`;
      case 'read': return `${d.address} read the message (${when(d.updated_at)}).`;
      case 'replied': return `${d.address} replied (${when(d.updated_at)}).`;
      case 'locked': return `Too many wrong unlock codes: locked. Give ${d.address} a new code.`;
      case 'expired': return `Not opened in time: the pickup expired and its key was deleted.`;
      case 'withdrawn': return `You withdrew it: nobody can open it any more.`;
      default: return `Could not be delivered${d.reason ? `: ${splitReason(d.reason)[0]}` : ''}`;
    }
  };
  const failed = delivery.filter((d) => d.state === 'failed' && d.reason);
  const accepted = delivery.filter((d) => byMail(d) && d.state === 'delivered' && d.reason);
  return (
    <>
      <span class="delivery-chips">
        {delivery.map((d) => (
          <span class={`dchip dchip-${d.state}`} data-testid="delivery-state" data-state={d.state} data-mode={d.mode ?? undefined} data-address={d.address} title={detail(d)}>
            <span class="dchip-dot" aria-hidden="true" />
            {long && <span class="dchip-addr">{d.address}</span>}
            <span>{long ? label[d.state] ?? d.state : `${d.address} · ${label[d.state] ?? d.state}`}</span>
          </span>
        ))}
      </span>
      {long && failed.map((d) => (
        <div class="delivery-reason" data-testid="delivery-reason">Not delivered to {d.address}: <Reason text={d.reason!} /></div>
      ))}
      {long && accepted.map((d) => (
        <div class="delivery-reason delivery-accepted" data-testid="delivery-accepted">{d.address}: handed to the next mail server, which answered <span class="mono tiny">{d.reason}</span></div>
      ))}
    </>
  );
}
