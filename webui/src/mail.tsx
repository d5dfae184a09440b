// What the mail screens (mailbox, reader, compose) and the shell share: the folders, what a
// reply or forward starts from, and how delivery to other organisations is shown.
import type * as api from './api';
import type { Opened } from './client';
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
}

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
export function DeliveryChips({ delivery, long }: { delivery: api.DeliveryState[]; long?: boolean }) {
  const label: Record<string, string> = {
    queued: 'Queued', delivered: 'Delivered', failed: 'Not delivered',
    pickup: 'Waiting for mail', notified: 'Notified', opened: 'Opened', read: 'Read', replied: 'Replied',
    locked: 'Locked', expired: 'Expired', withdrawn: 'Withdrawn',
  };
  const domain = (d: api.DeliveryState) => d.address.split('@')[1];
  const detail = (d: api.DeliveryState) => {
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
  return (
    <>
      <span class="delivery-chips">
        {delivery.map((d) => (
          <span class={`dchip dchip-${d.state}`} data-testid="delivery-state" data-state={d.state} title={detail(d)}>
            <span class="dchip-dot" aria-hidden="true" />
            {long && <span class="dchip-addr">{d.address}</span>}
            <span>{long ? label[d.state] ?? d.state : `${d.address} · ${label[d.state] ?? d.state}`}</span>
          </span>
        ))}
      </span>
      {long && failed.map((d) => (
        <div class="delivery-reason" data-testid="delivery-reason">Not delivered to {d.address}: <Reason text={d.reason!} /></div>
      ))}
    </>
  );
}
