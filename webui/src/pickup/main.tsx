// The pickup page (dist/pickup.html, served at /pickup): where someone without an account opens
// a message sent to them with a Message Unlock Code, on a phone as on a desktop. Its own small
// bundle; the same CSP as the app (no inline script or style).
//
// The token arrives in the link's fragment (never sent to a server) and is taken out of the
// address bar at once; it, the session and the MUC live in this module's memory only. Opening
// the page changes nothing on the server: only the unlock form's POST counts.
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import * as pc from '../pickup-client';
import { MucError, parseMuc } from '../pickup-crypto';
import type { PickupInfo } from '../pickup-wire';
import { groupFingerprint } from '../pgp';
import { ErrorBox, Icon, Logo, fullDate, saveBlob } from '../ui';
import { AttachmentList, OutgoingFiles } from '../files';
import { Upgrade } from './upgrade';

// Read once, then gone from the address bar and the history entry.
const token = location.hash.replace(/^#/, '');
if (location.hash) history.replaceState(null, '', location.pathname + location.search);

type Stage =
  | { kind: 'opening' }
  | { kind: 'gone'; title: string; text: string }
  | { kind: 'code'; info: PickupInfo }
  | { kind: 'registered'; info: PickupInfo; c: pc.Checked }
  | { kind: 'read'; info: PickupInfo; u: pc.Unlocked; accepted?: boolean };

function gone(e: unknown): Stage {
  const code = e instanceof pc.PickupError ? e.code : '';
  switch (code) {
    case 'pickup_not_found': return { kind: 'gone', title: 'This link does not open a message', text: 'It may be incomplete: open it again from the notification mail, or copy the whole link into the address bar. If it still does not work, ask the sender.' };
    case 'pickup_expired': return { kind: 'gone', title: 'This message has expired', text: 'It was not opened in time and has been deleted: nobody can open it any more. Ask the sender to send it again.' };
    case 'pickup_withdrawn': return { kind: 'gone', title: 'The sender withdrew this message', text: 'It has been deleted: nobody can open it any more. Contact the sender if you still need it.' };
    case 'pickup_locked': return { kind: 'gone', title: 'Locked after too many wrong codes', text: 'To protect the message, its code no longer opens it. Ask the sender for a new unlock code (by phone), then open the link from your mail again.' };
    case 'too_many_attempts': return { kind: 'gone', title: 'Too many attempts', text: 'Wait a minute, then open the link from your mail again.' };
    default: return { kind: 'gone', title: 'The message cannot be opened', text: e instanceof Error ? e.message : String(e) };
  }
}

function Page() {
  const [stage, setStage] = useState<Stage>({ kind: 'opening' });
  useEffect(() => {
    if (!token) {
      setStage({ kind: 'gone', title: 'Open the link from your mail', text: 'This page needs the whole link from the notification mail. For your security the link is removed from the address bar once opened, so after reloading the page, open the link from your mail again.' });
      return;
    }
    pc.openPickup(token).then((info) => setStage(info.state === 'locked' ? gone(new pc.PickupError(403, 'pickup_locked', '')) : { kind: 'code', info }), (e) => setStage(gone(e)));
  }, []);
  return (
    <div class="pickup">
      <header class="pickup-top"><Logo size={30} /><span class="brand">Sealpost</span><span class="muted small">Secure message</span></header>
      <main class="pickup-main">
        {stage.kind === 'opening' && <div class="card" aria-busy="true"><span class="spinner" /> Opening the secure message…</div>}
        {stage.kind === 'gone' && (
          <div class="card stack" data-testid="pickup-gone">
            <h1>{stage.title}</h1>
            <p>{stage.text}</p>
          </div>
        )}
        {stage.kind === 'code' && <CodeForm info={stage.info} onOpened={(u) => setStage({ kind: 'read', info: stage.info, u })} onRegistered={(c) => setStage({ kind: 'registered', info: stage.info, c })} onGone={(e) => setStage(gone(e))} />}
        {stage.kind === 'registered' && <Registered info={stage.info} c={stage.c} onOpened={(u) => setStage({ kind: 'read', info: stage.info, u, accepted: true })} />}
        {stage.kind === 'read' && <Message info={stage.info} u={stage.u} accepted={stage.accepted} />}
      </main>
      {/* Not under a message that is gone: nothing is decrypted there, and "stores" would contradict "deleted". */}
      {stage.kind !== 'gone' && <footer class="pickup-foot muted small">Decrypted in this browser only: the server stores the message encrypted and cannot read it.</footer>}
    </div>
  );
}

function senderLabel(info: PickupInfo) {
  return info.sender_name ? `${info.sender_name} (${info.sender})` : info.sender;
}

function CodeForm({ info, onOpened, onRegistered, onGone }: { info: PickupInfo; onOpened: (u: pc.Unlocked) => void; onRegistered: (c: pc.Checked) => void; onGone: (e: unknown) => void }) {
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [left, setLeft] = useState(info.attempts_left);
  const input = useRef<HTMLInputElement>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    let muc: string;
    try {
      muc = parseMuc(code);
    } catch (err) {
      setError(err instanceof MucError ? err : new Error(String(err)));
      input.current?.focus();
      return;
    }
    try {
      const c = await pc.unlock(token, info, muc, (s) => setBusy(s));
      setCode('');
      // Registered and not accepted: nothing is fetched before the recipient decides.
      if (c.registered && c.registered.state !== 'accepted') onRegistered(c);
      else onOpened(await pc.read(c, (s) => setBusy(s)));
    } catch (err) {
      if (err instanceof pc.PickupError && err.code === 'wrong_unlock_code' && err.attemptsLeft === 0) {
        onGone(new pc.PickupError(403, 'pickup_locked', err.message));
      } else if (err instanceof pc.PickupError && err.code === 'wrong_unlock_code') {
        const n = err.attemptsLeft ?? Math.max(0, left - 1);
        setLeft(n);
        setError(new Error(`Wrong code. ${n === 1 ? '1 attempt' : `${n} attempts`} left before the message is locked. Check the code with the sender.`));
        input.current?.select();
      } else if (err instanceof pc.PickupError && err.code !== 'network' && err.status !== 0 && err.code !== 'http' && err.code !== 'bad_request') {
        onGone(err);
      } else {
        setError(err);
      }
    } finally {
      setBusy(null);
    }
  };

  return (
    <div class="card stack pickup-card">
      <h1 data-testid="pickup-title">A secure message for you</h1>
      <dl class="dl pickup-facts">
        <dt>From</dt><dd data-testid="pickup-sender">{senderLabel(info)}</dd>
        <dt>Organisation</dt><dd data-testid="pickup-org">{info.organisation}</dd>
        <dt>Available until</dt><dd data-testid="pickup-expiry">{fullDate(info.expires_at)}</dd>
      </dl>
      <p>To open it, enter the <strong>unlock code</strong> {info.sender_name ?? info.sender} gave you (by phone, SMS or letter). It has 16 letters and digits, like <span class="mono">7KQM-2XHD-9TRV-B4NC</span>.</p>
      <form class="stack" onSubmit={submit} data-testid="pickup-form">
        <div class="field">
          <label for="pickup-code">Unlock code</label>
          <input id="pickup-code" class="mono muc-input" value={code} onInput={(e) => setCode(e.currentTarget.value)} ref={input}
            autocomplete="off" autocapitalize="characters" autocorrect="off" spellcheck={false} inputMode="text" maxLength={40}
            placeholder="XXXX-XXXX-XXXX-XXXX" aria-describedby="pickup-code-hint" disabled={!!busy} />
          <div class="hint" id="pickup-code-hint">Upper or lower case, with or without dashes or spaces. {left} {left === 1 ? 'attempt' : 'attempts'} left.</div>
        </div>
        <ErrorBox error={error} />
        <button type="submit" class="btn btn-primary btn-block btn-big" disabled={!!busy} data-testid="pickup-unlock">
          {busy ? <><span class="spinner" aria-hidden="true" /> {busy}…</> : <><Icon name="lock" /> Open the message</>}
        </button>
      </form>
    </div>
  );
}

/** A message registered for this recipient (docs/evidence.md, "Pickup recipients"): the notice
 * and the decision, before any part is fetched. Accept signs the receipt with a key made here,
 * then opens the message; a refusal keeps it closed for good. */
function Registered({ info, c, onOpened }: { info: PickupInfo; c: pc.Checked; onOpened: (u: pc.Unlocked) => void }) {
  const [state, setState] = useState(c.registered?.state ?? 'pending');
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const act = async (decision: 'accept' | 'refuse') => {
    if (decision === 'refuse' && !confirm('Refuse this registered message? You will not be able to open it afterwards, and the sender is told that you refused it.')) return;
    setError(null);
    try {
      setBusy(decision === 'accept' ? 'Signing the receipt' : 'Signing the refusal');
      const d = await pc.decide(c, decision);
      if (d === 'refuse') { setState('refused'); return; }
      onOpened(await pc.read(c, (s) => setBusy(s)));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  };
  if (state === 'refused') {
    return (
      <div class="card stack pickup-card" data-testid="registered-refused">
        <h1>You refused this registered message</h1>
        <p>It stays closed: it cannot be opened any more. {info.sender_name ?? info.sender} can see that you refused it.</p>
      </div>
    );
  }
  return (
    <div class="card stack pickup-card" data-testid="registered-notice">
      <h1>Registered: opening it will confirm receipt</h1>
      <dl class="dl pickup-facts">
        <dt>From</dt><dd>{senderLabel(info)}</dd>
        <dt>To</dt><dd>{c.address}</dd>
      </dl>
      <p>{info.sender_name ?? info.sender} sent this message as <strong>registered mail</strong>. If you open it, this page signs a receipt that you accepted it, and {info.organisation} keeps that receipt as evidence. You can also refuse it: then it stays closed.</p>
      <p class="muted small">The receipt is signed with a key made in this browser just for it (nobody certifies it), and it is recorded that the unlock code was entered. Nothing of the message has been downloaded yet.</p>
      <ErrorBox error={error} />
      <div class="row">
        <button class="btn btn-primary btn-big" disabled={!!busy} onClick={() => act('accept')} data-testid="registered-accept">
          {busy ? <><span class="spinner" aria-hidden="true" /> {busy}…</> : <><Icon name="lock" /> Accept and open</>}
        </button>
        <button class="btn btn-big" disabled={!!busy} onClick={() => act('refuse')} data-testid="registered-refuse">Refuse</button>
      </div>
    </div>
  );
}

function Message({ info, u, accepted }: { info: PickupInfo; u: pc.Unlocked; accepted?: boolean }) {
  const [progress, setProgress] = useState<Record<number, { value: number; stage: string }>>({});
  const [attError, setAttError] = useState<unknown>(null);
  const download = async (i: number) => {
    setAttError(null);
    try {
      const blob = await pc.attachment(u, i, (value, stage) => setProgress((p) => ({ ...p, [i]: { value, stage } })));
      saveBlob(blob, u.head.attachments[i].name);
    } catch (e) {
      setAttError(e);
      setProgress((p) => { const c = { ...p }; delete c[i]; return c; });
    }
  };
  const domain = u.envelope.from.split('@')[1];
  return (
    <div class="stack-lg">
      <article class="card stack" data-testid="pickup-message">
        <h1 id="msg-subject">{u.head.subject || '(no subject)'}</h1>
        <div class="muted small">From <strong data-testid="pickup-from">{u.envelope.from}</strong> · to {u.head.to.join(', ')} · {fullDate(u.head.sent_at)}</div>
        {accepted && <p class="muted small" data-testid="registered-accepted">✔ Registered: you accepted it, and your signed receipt is kept by {info.organisation}.</p>}
        <div class="body" data-testid="pickup-body">{u.head.body}</div>
        <AttachmentList attachments={u.head.attachments} progress={progress} error={attError} onDownload={download} />
        {u.compliance.length > 0 && (
          <div class="alert alert-info small" data-testid="compliance-copy" data-domains={u.compliance.join(' ')}>
            A copy of this message went to the compliance archive of {u.compliance.join(', ')}: encrypted to the archive's key, which only that organisation's authorised compliance staff can open.
          </div>
        )}
      </article>
      <section class="card stack verification" data-testid="pickup-verified" aria-labelledby="verified-title">
        <h2 class="h3" id="verified-title">What was checked in this browser</h2>
        <ul class="checks">
          <li><span class="ok">✔</span> Signed by <strong>{u.envelope.from}</strong>, key fingerprint <span class="mono nowrap-groups" data-testid="sender-fpr">{groupFingerprint(u.senderFingerprint)}</span>.</li>
          {u.caCertifies
            ? <li data-testid="ca-line"><span class="ok">✔</span> That key is certified by {info.organisation}’s certificate authority{info.organisation !== domain && ` (${domain})`}, fingerprint <span class="mono nowrap-groups" data-testid="ca-fpr">{groupFingerprint(u.caFingerprint)}</span>.</li>
            : <li data-testid="ca-line"><span class="text-bad">⚠</span> The key is not certified by {info.organisation}’s certificate authority (fingerprint <span class="mono nowrap-groups">{groupFingerprint(u.caFingerprint)}</span>). Be careful with this message.</li>}
          <li><span class="ok">✔</span> The message and its attachments are exactly what the sender signed: nothing was changed on the way. Each attachment is checked again when you download it.</li>
          <li><span class="ok">✔</span> It was encrypted for you: only this code could unlock it.</li>
        </ul>
        <h3 class="h4">Not checked</h3>
        <ul class="checks muted">
          <li>That this certificate authority really is {info.organisation}’s: this page got it from the same server. If it matters, compare the fingerprint above with the one {info.organisation} publishes (on its website or letters).</li>
          <li>Who you are: anyone with the link and the code could have opened this message.</li>
        </ul>
      </section>
      <Reply u={u} />
      <Upgrade u={u} organisation={info.organisation} />
    </div>
  );
}

function Reply({ u }: { u: pc.Unlocked }) {
  const [open, setOpen] = useState(false);
  const [subject, setSubject] = useState(/^re:/i.test(u.head.subject) ? u.head.subject : `Re: ${u.head.subject}`);
  const [body, setBody] = useState('');
  const [files, setFiles] = useState<File[]>([]);
  const [progress, setProgress] = useState<Record<number, { stage: string; value: number }>>({});
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [sent, setSent] = useState(false);
  const fileInput = useRef<HTMLInputElement>(null);

  if (sent) return <section class="card stack" data-testid="reply-sent"><h2 class="h3">✔ Reply sent, encrypted</h2><p class="muted">Only {u.envelope.from} can read it.</p></section>;
  if (!open) return <div class="row"><button class="btn btn-big" onClick={() => setOpen(true)} data-testid="pickup-reply">↩ Reply securely</button></div>;

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!body.trim() && !files.length) { setError(new Error('Write a reply or attach a file.')); return; }
    setSending(true);
    setError(null);
    try {
      await pc.reply(u, subject, body, files, (i, stage, value) => setProgress((p) => ({ ...p, [i]: { stage, value } })));
      setSent(true);
    } catch (err) {
      setError(err);
    } finally {
      setSending(false);
    }
  };
  return (
    <section class="card" aria-labelledby="reply-title">
      <h2 class="h3" id="reply-title">Reply to {u.envelope.from}</h2>
      <form class="stack" onSubmit={submit} data-testid="reply-form">
        <div class="field"><label for="reply-subject">Subject</label><input id="reply-subject" value={subject} onInput={(e) => setSubject(e.currentTarget.value)} /></div>
        <div class="field"><label for="reply-body">Message</label><textarea id="reply-body" rows={8} value={body} onInput={(e) => setBody(e.currentTarget.value)} /></div>
        <div class="field">
          <button type="button" class="btn" onClick={() => fileInput.current?.click()}><Icon name="clip" /> Attach files</button>
          <input ref={fileInput} type="file" multiple class="sr-only" id="reply-files" aria-label="Attach files" onChange={(e) => { const fl = e.currentTarget.files; if (fl) setFiles((f) => [...f, ...Array.from(fl)]); e.currentTarget.value = ''; }} />
          <OutgoingFiles files={files} progress={progress} sending={sending} onRemove={(f) => setFiles((fs) => fs.filter((x) => x !== f))} testid="reply-file" />
        </div>
        <ErrorBox error={error} title="Not sent." />
        <button type="submit" class="btn btn-primary btn-block btn-big" disabled={sending} data-testid="reply-send">{sending ? <><span class="spinner" aria-hidden="true" /> Encrypting and sending…</> : <><Icon name="lock" /> Send encrypted reply</>}</button>
      </form>
    </section>
  );
}

render(<Page />, document.getElementById('app')!);
