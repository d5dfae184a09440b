// Writing: each recipient's key resolved and judged as it is typed, attachments encrypted with
// progress, forwarded attachments re-encrypted for the new recipients.
import { useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import type { VerdictView } from '../api';
import * as client from '../client';
import type { Session } from '../client';
import { Badge, ErrorBox, Field, Icon, badgeOf } from '../ui';
import type { ComposeSeed } from '../mail';
import { MucCodes } from '../muc';
import { OutgoingFiles } from '../files';

interface Rcpt {
  address: string;
  /** `pickup`: an outside address without a key, reached by a notification mail and a MUC. */
  state: 'checking' | 'ok' | 'pickup' | 'refused' | 'invalid';
  verdict: VerdictView | null;
  reason?: string;
}

const ADDRESS = /^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$/;

export function Compose({ session, seed }: { session: Session; seed: ComposeSeed | null }) {
  const [rcpts, setRcpts] = useState<Rcpt[]>([]);
  const [typing, setTyping] = useState('');
  const [preview, setPreview] = useState<Rcpt | null>(null);
  const [subject, setSubject] = useState(seed?.subject ?? '');
  const [body, setBody] = useState(seed?.body ?? '');
  const [files, setFiles] = useState<File[]>([]);
  const [fileProgress, setFileProgress] = useState<Record<number, { stage: string; value: number }>>({});
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [sent, setSent] = useState(false);
  const [codes, setCodes] = useState<client.IssuedPickup[]>([]);
  const [continued, setContinued] = useState<string[]>([]);
  const [forwarding, setForwarding] = useState<string | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);

  const resolve = async (address: string): Promise<Rcpt> => {
    address = address.trim().toLowerCase();
    if (!ADDRESS.test(address)) return { address, state: 'invalid', verdict: null, reason: `“${address}” is not an e-mail address.` };
    // A guest writes to the organisation's users only (the node refuses anything else too).
    if (session.account.guest && address.split('@')[1] !== session.org.domain) {
      return { address, state: 'refused', verdict: null, reason: `As a guest of ${session.org.domain} you can write to its users only.` };
    }
    try {
      const keys = await client.trust(address);
      const best = keys[0] ?? null;
      if (best && api.acceptable(best, session.org.accept_partial)) return { address, state: 'ok', verdict: best };
      // No acceptable key at another organisation: the node may reach the address by pickup
      // (its answer decides; a key it knows there, such as an earlier pickup key, does not).
      if (address.split('@')[1] !== session.org.domain && (await client.reachedByPickup(address))) {
        return { address, state: 'pickup', verdict: null };
      }
      return { address, state: 'refused', verdict: best, reason: api.refusal(best, address) };
    } catch (e) {
      return { address, state: 'refused', verdict: null, reason: e instanceof Error ? e.message : String(e) };
    }
  };

  const add = async (address: string) => {
    address = address.trim().replace(/[,;]$/, '').toLowerCase();
    if (!address || rcpts.some((r) => r.address === address)) return;
    setRcpts((rs) => [...rs, { address, state: 'checking', verdict: null }]);
    const r = await resolve(address);
    setRcpts((rs) => rs.map((x) => (x.address === address ? r : x)));
  };

  useEffect(() => {
    (seed?.to ?? []).forEach(add);
    // Forwarding re-encrypts the original's attachments for the new recipients.
    if (seed?.forwardFrom && seed.forwardFrom.head.attachments.length) {
      const o = seed.forwardFrom;
      setForwarding('Decrypting the original attachments…');
      Promise.all(o.head.attachments.map(async (a, i) => new File([await client.openAttachment(session, o, i, () => {})], a.name, { type: a.media_type })))
        .then((fs) => { setFiles((cur) => [...cur, ...fs]); setForwarding(null); })
        .catch((e) => { setForwarding(null); setError(e); });
    }
  }, []);

  // Resolve as you type: a complete-looking address is looked up after a short pause.
  useEffect(() => {
    const t = typing.trim().toLowerCase();
    if (!ADDRESS.test(t)) { setPreview(null); return; }
    setPreview({ address: t, state: 'checking', verdict: null });
    const timer = setTimeout(async () => {
      const r = await resolve(t);
      setPreview((p) => (p && p.address === t ? r : p));
    }, 250);
    return () => clearTimeout(timer);
  }, [typing]);

  const onKey = (e: KeyboardEvent) => {
    if ((e.key === 'Enter' || e.key === ',' || e.key === ';' || e.key === 'Tab') && typing.trim()) {
      if (e.key !== 'Tab') e.preventDefault();
      add(typing);
      setTyping('');
    } else if (e.key === 'Backspace' && !typing && rcpts.length) {
      setRcpts((rs) => rs.slice(0, -1));
    }
  };

  const refused = rcpts.filter((r) => r.state !== 'ok' && r.state !== 'pickup' && r.state !== 'checking');
  const pickups = rcpts.filter((r) => r.state === 'pickup');
  const canSend = rcpts.length > 0 && refused.length === 0 && rcpts.every((r) => r.state === 'ok' || r.state === 'pickup') && !sending && !forwarding;

  const submit = async (e: Event) => {
    e.preventDefault();
    if (typing.trim()) {
      await add(typing);
      setTyping('');
      return;
    }
    if (!canSend) {
      setError(new Error(rcpts.length === 0 ? 'Add at least one recipient.' : refused.length ? `Remove the recipients that cannot receive this message: ${refused.map((r) => r.address).join(', ')}.` : 'Wait until every recipient is checked.'));
      return;
    }
    setSending(true);
    setError(null);
    try {
      const done = await client.send(session, { to: rcpts.map((r) => r.address), subject, body, files }, (i, stage, value) => setFileProgress((p) => ({ ...p, [i]: { stage, value } })));
      setCodes(done.pickups);
      setContinued(done.continued);
      setSent(true);
    } catch (err) {
      setError(err);
    } finally {
      setSending(false);
    }
  };

  if (sent && codes.length) {
    // Shown once: dismissing drops the codes from memory.
    return <MucCodes codes={codes} onDone={() => setCodes([])} />;
  }

  if (sent) {
    return (
      <section class="sent-done" data-testid="sent">
        <div class="big-check" aria-hidden="true">✔</div>
        <h1>Sent, encrypted</h1>
        <p class="muted">Only {rcpts.map((r) => r.address).join(', ')} and you can read it. The node stored it without being able to read it.</p>
        {continued.length > 0 && <p class="muted" data-testid="sent-continued">{continued.join(', ')}: the same unlock code as before (this message continues your conversation with them, encrypted to the same key).</p>}
        {pickups.length > 0 && <p class="muted" data-testid="sent-pickup">{pickups.map((r) => r.address).join(', ')} {pickups.length > 1 ? 'get' : 'gets'} a notification mail and can open it with the unlock code you passed on: <a href="#/mail/sent">Sent</a> shows when it was opened.</p>}
        {(() => {
          // Pickup recipients have no node of their own: they are reached by the notification mail.
          const others = [...new Set(rcpts.filter((r) => r.state !== 'pickup').map((r) => r.address.split('@')[1]).filter((d) => d !== session.org.domain))];
          return others.length > 0 && <p class="muted" data-testid="sent-remote">Recipients at {others.join(', ')} get it through {others.length > 1 ? 'their organisations\' nodes' : 'their organisation\'s node'}: <a href="#/mail/sent">Sent</a> shows when it has arrived there.</p>;
        })()}
        <div class="row"><a class="btn btn-primary" href="#/mail/inbox">Back to inbox</a><a class="btn" href="#/mail/sent">See it in Sent</a></div>
      </section>
    );
  }

  return (
    <section aria-labelledby="compose-title">
      <h1 id="compose-title">{seed?.forwardFrom ? 'Forward' : seed ? 'Reply' : 'New message'}</h1>
      <form class="compose stack" onSubmit={submit} data-testid="compose">
        <div class="field">
          <label for="compose-to">To</label>
          <div class="chips" onClick={() => document.getElementById('compose-to')?.focus()}>
            {rcpts.map((r) => (
              <span class={`chip chip-${r.state}`} data-testid="recipient" data-state={r.state} title={r.reason ?? badgeOf(r.verdict).detail}>
                {r.state === 'checking' ? <span class="spinner small" aria-hidden="true" /> : r.state === 'ok' || r.state === 'pickup' ? <Icon name="lock" size={14} /> : <span aria-hidden="true">⚠</span>}
                {r.address}
                {r.state === 'ok' && <span class="chip-note">{badgeOf(r.verdict).label}</span>}
                {r.state === 'pickup' && <span class="chip-note">unlock code</span>}
                <button type="button" class="chip-x" aria-label={`Remove ${r.address}`} onClick={() => setRcpts((rs) => rs.filter((x) => x !== r))}>×</button>
              </span>
            ))}
            <input id="compose-to" value={typing} onInput={(e) => setTyping(e.currentTarget.value)} onKeyDown={onKey} onBlur={() => { if (typing.trim()) { add(typing); setTyping(''); } }}
              placeholder={rcpts.length ? '' : 'name@organisation.example'} autocomplete="off" aria-describedby="compose-to-hint" />
          </div>
          <div class="hint" id="compose-to-hint">Press Enter after each address. Each recipient's key is checked as you type.</div>
          {preview && (
            <div class={`lookup lookup-${preview.state}`} role="status" data-testid="lookup">
              {preview.state === 'checking' ? <>Looking up {preview.address}…</> : preview.state === 'pickup' ? <>{pickupNote(preview.address)}</> : preview.state === 'ok' ? <><Badge verdict={preview.verdict} compact /> {preview.address} can receive encrypted messages.</> : <><span class="text-bad">⚠</span> {preview.reason}</>}
            </div>
          )}
          {refused.map((r) => <div class="alert alert-error" role="alert" data-testid="refusal">{r.reason}</div>)}
          {pickups.map((r) => <div class="alert alert-info" data-testid="pickup-note">{pickupNote(r.address)}</div>)}
        </div>
        <Field label="Subject" id="compose-subject">
          <input id="compose-subject" value={subject} onInput={(e) => setSubject(e.currentTarget.value)} />
        </Field>
        <Field label="Message" id="compose-body">
          <textarea id="compose-body" rows={12} value={body} onInput={(e) => setBody(e.currentTarget.value)} />
        </Field>
        <div class="field">
          <div class="row">
            <button type="button" class="btn" onClick={() => fileInput.current?.click()}><Icon name="clip" /> Attach files</button>
            <input ref={fileInput} type="file" multiple class="sr-only" id="compose-files" aria-label="Attach files" onChange={(e) => { const fl = e.currentTarget.files; if (fl) setFiles((f) => [...f, ...Array.from(fl)]); e.currentTarget.value = ''; }} />
            {forwarding && <span class="muted"><span class="spinner small" /> {forwarding}</span>}
          </div>
          <OutgoingFiles files={files} progress={fileProgress} sending={sending} onRemove={(f) => setFiles((fs) => fs.filter((x) => x !== f))} testid="compose-file" />
        </div>
        <ErrorBox error={error} title="Not sent." />
        <div class="row">
          <button type="submit" class="btn btn-primary" disabled={sending || !!forwarding} data-testid="send">{sending ? <><span class="spinner" aria-hidden="true" /> Encrypting and sending…</> : <><Icon name="lock" /> Send encrypted</>}</button>
          <a class="btn btn-ghost" href="#/mail/inbox">Discard</a>
        </div>
      </form>
    </section>
  );
}

function pickupNote(address: string): string {
  return `${address} has no Sealpost key: they will get a notification mail and need an unlock code. After sending you see the code once, to give them by phone, SMS or letter.`;
}
