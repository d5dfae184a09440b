// Writing: each recipient's key resolved and judged as it is typed, attachments encrypted with
// progress, forwarded attachments re-encrypted for the new recipients.
import { useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import type { VerdictView } from '../api';
import * as client from '../client';
import type { Session } from '../client';
import { Badge, ErrorBox, Field, Icon, badgeOf } from '../ui';
import { KEY_SOURCE_WORDS, MODE_WORDS, modeSentence, sentence, type ComposeSeed } from '../mail';
import type { DeliveryMode, KeySource } from '../mail-wire';
import { MucCodes } from '../muc';
import { OutgoingFiles } from '../files';

interface Rcpt {
  address: string;
  /** `pickup`: an outside address without a key, reached by a notification mail and a MUC;
   * `mail`: an outside address reached by OpenPGP mail, S/MIME mail or enforced TLS
   * (docs/mail.md). */
  state: 'checking' | 'ok' | 'pickup' | 'mail' | 'refused' | 'invalid';
  verdict: VerdictView | null;
  reason?: string;
  /** How the node reaches this recipient, why, and where an outside key came from. */
  mode?: DeliveryMode;
  why?: string;
  keySource?: KeySource | null;
  /** Their mail server receives the content and our node sees it in transit: the sender
   * must confirm before sending. */
  seesContent?: boolean;
  /** Organisations whose compliance archive a message to this recipient also goes to (the
   * envelope answer's `compliance`, docs/compliance.md). */
  compliance?: string[];
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
  /** Recipients with `sees_content` whose exposure the sender confirmed. */
  const [confirmed, setConfirmed] = useState<string[]>([]);
  /** Registered mail for every recipient (docs/evidence.md): opening it confirms receipt. */
  const [registered, setRegistered] = useState(false);
  const fileInput = useRef<HTMLInputElement>(null);

  const resolve = async (address: string): Promise<Rcpt> => {
    address = address.trim().toLowerCase();
    if (!ADDRESS.test(address)) return { address, state: 'invalid', verdict: null, reason: `“${address}” is not an e-mail address.` };
    // A guest writes to the organisation's users only (the node refuses anything else too).
    if (session.account.guest && address.split('@')[1] !== session.org.domain) {
      return { address, state: 'refused', verdict: null, reason: `As a guest of ${session.org.domain} you can write to its users only.` };
    }
    const outsider = address.split('@')[1] !== session.org.domain;
    try {
      // An address at another organisation: the node's envelope answer says how it would be
      // reached (federated, OpenPGP mail, enforced TLS, pickup) and why.
      const { resolved: r, refusal, compliance } = outsider ? await client.resolveOne(address) : {};
      if (refusal) return { address, state: 'refused', verdict: null, reason: refusal };
      const about = r ? { mode: r.mode, why: r.why || undefined, keySource: r.key_source ?? null, seesContent: !!r.sees_content, compliance } : {};
      if (r && r.mode === 'smime') {
        // The copy is made here: refused now if it cannot be (not the certificate named, a
        // key that is not RSA), in smime.ts's words.
        const why = await client.smimeRefusal(r);
        if (why) return { address, state: 'refused', verdict: r.verdict, ...about, reason: why };
      }
      if (r && (r.mode === 'openpgp' || r.mode === 'tls' || r.mode === 'smime')) return { address, state: 'mail', verdict: r.verdict, ...about };
      if (r && r.mode === 'pickup') return { address, state: 'pickup', verdict: null, ...about };
      const keys = await client.trust(address);
      const best = keys[0] ?? null;
      const mode: DeliveryMode = outsider ? 'remote' : 'local';
      if (best && api.acceptable(best, session.org.accept_partial)) return { address, state: 'ok', verdict: best, mode, ...about };
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
      Promise.all(o.head.attachments.map(async (a, i) => new File([o.arrived ? o.arrived.entity.attachments[i].data as BlobPart : await client.openAttachment(session, o, i, () => {})], a.name, { type: a.media_type })))
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

  const sendable = (r: Rcpt) => r.state === 'ok' || r.state === 'pickup' || r.state === 'mail';
  const refused = rcpts.filter((r) => !sendable(r) && r.state !== 'checking');
  const pickups = rcpts.filter((r) => r.state === 'pickup');
  const exposed = rcpts.filter((r) => r.seesContent && sendable(r));
  // Said before sending: every compliance archive the message also goes to (ours, when the
  // organisation publishes a key; a peered organisation's, as its envelope answer lists it).
  const archives = rcpts.some(sendable)
    ? [...new Set([...(session.org.compliance_key ? [session.org.domain] : []), ...rcpts.filter(sendable).flatMap((r) => r.compliance ?? [])])]
    : [];
  const unconfirmed = exposed.filter((r) => !confirmed.includes(r.address));
  // Registered: Sealpost and pickup recipients only (the node refuses mail recipients as well).
  const notRegistrable = registered ? rcpts.filter((r) => sendable(r) && r.mode).map((r) => client.registeredRefusal(r.address, r.mode!)).filter((w): w is string => !!w) : [];
  const canSend = rcpts.length > 0 && refused.length === 0 && unconfirmed.length === 0 && notRegistrable.length === 0 && rcpts.every(sendable) && !sending && !forwarding;

  const submit = async (e: Event) => {
    e.preventDefault();
    if (typing.trim()) {
      await add(typing);
      setTyping('');
      return;
    }
    if (!canSend) {
      setError(new Error(rcpts.length === 0 ? 'Add at least one recipient.' : refused.length ? `Remove the recipients that cannot receive this message: ${refused.map((r) => r.address).join(', ')}.` : notRegistrable.length ? notRegistrable.join(' ') : unconfirmed.length ? `Confirm that ${unconfirmed.map((r) => r.address).join(', ')} may be reached this way (our node sees the content in transit), or remove ${unconfirmed.length > 1 ? 'them' : 'that recipient'}.` : 'Wait until every recipient is checked.'));
      return;
    }
    setSending(true);
    setError(null);
    try {
      const done = await client.send(session, { to: rcpts.map((r) => r.address), subject, body, files, seesContentConfirmed: confirmed, inReplyTo: seed?.inReplyTo, registered }, (i, stage, value) => setFileProgress((p) => ({ ...p, [i]: { stage, value } })));
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
        {exposed.length === 0
          ? <p class="muted">Only {rcpts.map((r) => r.address).join(', ')} and you can read it. The node stored it without being able to read it.</p>
          : <p class="muted">End-to-end encrypted for {rcpts.filter((r) => !r.seesContent).map((r) => r.address).join(', ') || 'nobody else'} and you. For {exposed.map((r) => r.address).join(', ')}, as you confirmed, our node sees the content in transit and their mail server receives it.</p>}
        <ModeList rcpts={rcpts} domain={session.org.domain} testid="sent-modes" />
        {registered && <p class="muted" data-testid="sent-registered">Registered: {rcpts.map((r) => r.address).join(', ')} can open it only by signing a receipt, or refuse it with a signed refusal. <a href="#/mail/sent">Sent</a> offers the evidence.</p>}
        {continued.length > 0 && <p class="muted" data-testid="sent-continued">{continued.join(', ')}: the same unlock code as before (this message continues your conversation with them, encrypted to the same key).</p>}
        {pickups.length > 0 && <p class="muted" data-testid="sent-pickup">{pickups.map((r) => r.address).join(', ')} {pickups.length > 1 ? 'get' : 'gets'} a notification mail and can open it with the unlock code you passed on: <a href="#/mail/sent">Sent</a> shows when it was opened.</p>}
        {(() => {
          // Pickup recipients have no node of their own: they are reached by the notification mail.
          const others = [...new Set(rcpts.filter((r) => r.state !== 'pickup' && r.state !== 'mail').map((r) => r.address.split('@')[1]).filter((d) => d !== session.org.domain))];
          return others.length > 0 && <p class="muted" data-testid="sent-remote">Recipients at {others.join(', ')} get it through {others.length > 1 ? 'their organisations\' nodes' : 'their organisation\'s node'}: <a href="#/mail/sent">Sent</a> shows when it has arrived there.</p>;
        })()}
        {rcpts.some((r) => r.state === 'mail') && <p class="muted" data-testid="sent-mail">{rcpts.filter((r) => r.state === 'mail').map((r) => `${r.address} (${MODE_WORDS[r.mode!]})`).join(', ')}: your node sends it as mail; <a href="#/mail/sent">Sent</a> shows when their mail server has accepted it.</p>}
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
              <span class={`chip chip-${r.state}${r.seesContent ? ' chip-exposed' : ''}`} data-testid="recipient" data-state={r.state} title={r.reason ?? badgeOf(r.verdict).detail}>
                {r.state === 'checking' ? <span class="spinner small" aria-hidden="true" /> : sendable(r) && !r.seesContent ? <Icon name="lock" size={14} /> : <span aria-hidden="true">⚠</span>}
                {r.address}
                {r.state === 'ok' && <span class="chip-note">{badgeOf(r.verdict).label}</span>}
                {r.state === 'mail' && r.mode && <span class="chip-note">{MODE_WORDS[r.mode]}</span>}
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
              {preview.state === 'checking' ? <>Looking up {preview.address}…</> : preview.state === 'pickup' ? <>{pickupNote(preview.address)}</> : preview.state === 'ok' ? <><Badge verdict={preview.verdict} compact /> {preview.address} can receive encrypted messages.</> : preview.state === 'mail' && preview.mode ? <><span class={`mode-tag mode-${preview.mode}`}>{MODE_WORDS[preview.mode]}</span> {whySentence(preview, session.org.domain)}</> : <><span class="text-bad">⚠</span> {preview.reason}</>}
            </div>
          )}
          {refused.map((r) => <div class="alert alert-error" role="alert" data-testid="refusal">{r.reason}</div>)}
          {pickups.map((r) => <div class="alert alert-info" data-testid="pickup-note">{pickupNote(r.address)}</div>)}
          <ModeList rcpts={rcpts} domain={session.org.domain} testid="modes" />
          {archives.length > 0 && (
            <div class="alert alert-info" data-testid="compliance-note" data-domains={archives.join(' ')}>
              A copy also goes to the compliance archive of {archives.join(', ')}: encrypted to the archive's key, which only that organisation's authorised compliance staff can open.
            </div>
          )}
          {exposed.map((r) => (
            <div class="alert alert-warn" data-testid="sees-content" data-address={r.address}>
              <label class="check">
                <input type="checkbox" checked={confirmed.includes(r.address)} data-testid="sees-content-confirm"
                  onChange={(e) => { const on = e.currentTarget.checked; setConfirmed((c) => (on ? [...c.filter((a) => a !== r.address), r.address] : c.filter((a) => a !== r.address))); }} />
                <span>{r.address}'s mail server will receive the content; our node ({session.org.domain}) sees it in transit. Send it to them this way.</span>
              </label>
            </div>
          ))}
        </div>
        <div class="field">
          <label class="check registered-option">
            <input type="checkbox" checked={registered} data-testid="registered" onChange={(e) => setRegistered(e.currentTarget.checked)} />
            <span><strong>Registered (opening confirms receipt)</strong><br /><span class="muted small">Each recipient's node keeps it closed until they sign a receipt, or they refuse it; you can download the evidence. Not for recipients reached by mail.</span></span>
          </label>
          {notRegistrable.map((w) => <div class="alert alert-error" role="alert" data-testid="registered-refusal">{w}</div>)}
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
          <button type="submit" class="btn btn-primary" disabled={sending || !!forwarding} data-testid="send">{sending ? <><span class="spinner" aria-hidden="true" /> Encrypting and sending…</> : exposed.length ? <>Send</> : <><Icon name="lock" /> Send encrypted</>}</button>
          <a class="btn btn-ghost" href="#/mail/inbox">Discard</a>
        </div>
      </form>
    </section>
  );
}

/** The node's `why` for a recipient, else what the mode means; for S/MIME mail both: how it is
 * encrypted, then the node's why (which says when it goes unsigned). */
function whySentence(r: Rcpt, domain: string): string {
  if (!r.why) return modeSentence(r.mode!, r.address, domain);
  return r.mode === 'smime' ? `${modeSentence('smime', r.address, domain)} ${sentence(r.why)}` : sentence(r.why);
}

/** How each recipient gets the message: the mode in words, why, and where an outside key came
 * from (the envelope answer's `why` and `key_source`). */
function ModeList({ rcpts, domain, testid }: { rcpts: Rcpt[]; domain: string; testid: string }) {
  const shown = rcpts.filter((r) => r.mode && (r.state === 'ok' || r.state === 'pickup' || r.state === 'mail'));
  if (!shown.length) return null;
  return (
    <div class="mode-box" data-testid={testid}>
      <div class="muted small">How each recipient gets it</div>
      <ul class="mode-list">
        {shown.map((r) => (
          <li data-testid="recipient-mode" data-address={r.address} data-mode={r.mode}>
            <span class="mode-head"><strong class="mode-addr">{r.address}</strong> <span class={`mode-tag mode-${r.mode}`}>{MODE_WORDS[r.mode!]}</span></span>{' '}
            <span class="mode-why small">{whySentence(r, domain)}{r.keySource && <> Key {KEY_SOURCE_WORDS[r.keySource]}.</>}</span>
          </li>
        ))}
      </ul>
    </div>
  );
}

function pickupNote(address: string): string {
  return `${address} has no Sealpost key: they will get a notification mail and need an unlock code. After sending you see the code once, to give them by phone, SMS or letter.`;
}
