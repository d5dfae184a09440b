// Mail programs (docs/mail.md, "Submission gateway"): what to type into Outlook, Thunderbird
// or a phone's mail app to send through this organisation's server, making an app password
// for each device (shown once), and the list of them with Revoke. Shown only when the node
// publishes `submission` in GET /org.
import { useEffect, useState } from 'preact/hooks';
import * as api from '../api';
import type { AppPasswordView as AppPassword, CreatedAppPassword as Created } from '../api';
import type { Session } from '../client';
import { ErrorBox, Field, fullDate, when } from '../ui';

export function MailPrograms({ session }: { session: Session }) {
  const server = session.org.submission;
  const [list, setList] = useState<AppPassword[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [label, setLabel] = useState('');
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<Created | null>(null);
  const [copied, setCopied] = useState(false);

  const load = async () => {
    try {
      setList(await api.get('/app-passwords'));
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => { load(); }, []);

  const create = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setCreated(null);
    setCopied(false);
    try {
      setCreated(await api.post('/app-passwords', { label: label.trim() }));
      setLabel('');
      await load();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const revoke = async (p: AppPassword) => {
    if (!confirm(`Revoke the app password for "${p.label}"? That device can no longer send mail until you give it a new one.`)) return;
    setError(null);
    try {
      await api.del('/app-passwords/{id}', { id: p.id });
      if (created?.id === p.id) setCreated(null);
      await load();
    } catch (err) {
      setError(err);
    }
  };

  const copy = async () => {
    if (!created) return;
    try {
      await navigator.clipboard.writeText(created.password);
      setCopied(true);
    } catch {
      setCopied(false);
    }
  };

  if (!server) {
    return (
      <section aria-labelledby="mp-title">
        <h1 id="mp-title">Mail programs</h1>
        <div class="empty">Your organisation does not let mail programs send through this server.</div>
      </section>
    );
  }

  return (
    <section aria-labelledby="mp-title" class="stack-lg">
      <h1 id="mp-title">Mail programs</h1>
      <p class="muted">You can send mail from a program such as Outlook, Thunderbird or your phone's mail app. Give each device its own
        app password below; your Sealpost password stays here and is never typed into another program.</p>
      <p class="alert alert-info small" data-testid="mp-sees-content">Mail you send this way is not end-to-end encrypted from your device: your
        organisation's server receives it over an encrypted connection, seals it for each recipient and keeps only sealed copies (your
        copy in Sent too), but it sees the content in passing. For the most confidential messages, write them here in Sealpost.</p>

      <div class="card stack" data-testid="mp-settings">
        <h2 class="h3">Outgoing mail server (SMTP)</h2>
        <p class="muted small">Type these into your mail program's settings for sending mail.</p>
        <dl class="dl">
          <dt>Server</dt><dd class="mono" data-testid="mp-host">{server.host}</dd>
          <dt>Port</dt><dd class="mono" data-testid="mp-port">{server.port}</dd>
          <dt>Security</dt><dd data-testid="mp-security">{server.implicit_tls ? 'SSL/TLS' : 'STARTTLS'}</dd>
          <dt>User name</dt><dd class="mono">{session.account.address}</dd>
          <dt>Password</dt><dd>An app password you make below (not your Sealpost password)</dd>
        </dl>
      </div>

      <form class="card stack" onSubmit={create} aria-labelledby="mp-new-title" data-testid="mp-create">
        <h2 class="h3" id="mp-new-title">Make an app password</h2>
        <Field label="Device name" id="mp-label" hint="So you recognise it later, for example “Work laptop” or “Phone”.">
          <input id="mp-label" maxLength={64} required value={label} onInput={(e) => setLabel(e.currentTarget.value)} aria-describedby="mp-label-hint" />
        </Field>
        <div><button class="btn btn-primary" type="submit" disabled={busy || !label.trim()} data-testid="mp-submit">{busy ? 'Making…' : 'Make app password'}</button></div>
        <ErrorBox error={error} />
        {created && (
          <div class="alert alert-ok stack" role="status" data-testid="mp-created">
            <div>The app password for <strong>{created.label}</strong>. Type it into that device's mail program now.</div>
            <div class="row">
              <code class="grow mp-secret" aria-label="New app password" data-testid="mp-password">{created.password}</code>
              <button type="button" class="btn" onClick={copy} data-testid="mp-copy">{copied ? 'Copied' : 'Copy'}</button>
            </div>
            <div class="small"><strong>You will not see it again.</strong> Do not write it down or send it to anyone. If you lose it, revoke it and make a new one.</div>
            <div><button type="button" class="btn btn-ghost" onClick={() => setCreated(null)} data-testid="mp-done">Done</button></div>
          </div>
        )}
      </form>

      <div>
        <h2 class="h3">Your app passwords</h2>
        {list === null && !error && <div class="skeleton" aria-busy="true" />}
        {list && list.length === 0 && <div class="empty" data-testid="mp-none">You have no app passwords. No mail program can send as you.</div>}
        <ul class="okey-list" data-testid="mp-list">
          {list?.map((p) => (
            <li class="card okey" data-testid="mp-item" data-id={p.id}>
              <div class="okey-main">
                <strong>{p.label}</strong>
                <div class="muted small">
                  <span title={fullDate(p.created_at)}>Made {when(p.created_at)}</span>
                  {' · '}
                  {p.last_used_at ? <span title={fullDate(p.last_used_at)}>last used {when(p.last_used_at)}</span> : 'never used'}
                </div>
              </div>
              <button class="btn btn-danger-ghost" onClick={() => revoke(p)} aria-label={`Revoke the app password for ${p.label}`}>Revoke</button>
            </li>
          ))}
        </ul>
      </div>
    </section>
  );
}
