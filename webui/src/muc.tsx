// Showing Message Unlock Codes to the sender, once: large, grouped, with Copy and Print and the
// instruction to pass each on by another channel than e-mail. Shared by Compose (after sending)
// and the reader of a sent message (a new code after a lock-out). The codes live in this
// component's props only: never in a URL, web storage or a log.
import { useState } from 'preact/hooks';
import { groupMuc } from './pickup-crypto';

export interface ShownCode {
  address: string;
  muc: string;
  link?: string;
}

export function MucCodes({ codes, onDone, title }: { codes: ShownCode[]; onDone: () => void; title?: string }) {
  const [copied, setCopied] = useState<string | null>(null);
  const copy = async (c: ShownCode) => {
    try {
      await navigator.clipboard.writeText(groupMuc(c.muc));
      setCopied(c.address);
    } catch {
      setCopied(null);
    }
  };
  return (
    <section class="muc-dialog muc-print" role="dialog" aria-modal="true" aria-labelledby="muc-title" data-testid="muc-dialog">
      <h1 id="muc-title">{title ?? (codes.length > 1 ? 'Unlock codes: pass them on now' : 'Unlock code: pass it on now')}</h1>
      <div class="alert alert-warn">
        <strong>Shown only this once.</strong> {codes.length > 1 ? 'These recipients have' : 'This recipient has'} no Sealpost key. They get a notification mail with a link, and need the code to open the message.
        Give the code <strong>by phone, SMS or letter, not by e-mail</strong>: whoever has the mail and the code can read the message.
      </div>
      <ul class="muc-list">
        {codes.map((c) => (
          <li class="card muc-card" data-testid="muc" data-address={c.address}>
            <div class="muc-for">For <strong>{c.address}</strong></div>
            <div class="muc-code mono" data-testid="muc-code" aria-label={`Unlock code for ${c.address}: ${[...c.muc].join(' ')}`}>
              {groupMuc(c.muc).split('-').map((g) => <span class="muc-group">{g}</span>)}
            </div>
            <div class="row muc-actions no-print">
              <button type="button" class="btn" onClick={() => copy(c)} data-testid="muc-copy">{copied === c.address ? 'Copied' : 'Copy code'}</button>
            </div>
            {c.link && (
              // Not on paper: a printed code travels apart from the mailed link.
              <div class="muc-link small no-print">
                <span class="muted">Pickup link (already mailed to them; for you to pass on only if the mail does not arrive):</span>
                <div class="mono tiny break" data-testid="muc-link">{c.link}</div>
              </div>
            )}
          </li>
        ))}
      </ul>
      <div class="row no-print">
        <button type="button" class="btn" onClick={() => window.print()} data-testid="muc-print">Print</button>
        <button type="button" class="btn btn-primary" onClick={onDone} data-testid="muc-done">I have noted {codes.length > 1 ? 'the codes' : 'the code'}</button>
      </div>
    </section>
  );
}
