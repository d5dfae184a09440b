// Settings: one's own fingerprint, changing the password, two-step sign-in, sessions, and
// revoking one's key.
import { useEffect, useState } from 'preact/hooks';
import * as api from '../api';
import type { SessionView } from '../api';
import * as client from '../client';
import type { Session } from '../client';
import { ErrorBox, Field, Fingerprint, Progress, QrCode, fullDate } from '../ui';
import { passwordProblem } from '../auth';

export function Settings({ session, onSignOut }: { session: Session; onSession: (s: Session) => void; onSignOut: () => void }) {
  return (
    <section aria-labelledby="settings-title" class="stack-lg">
      <h1 id="settings-title">Settings</h1>
      <div class="card">
        <h2 class="h3">Your key</h2>
        <p class="muted small">Read these words to people who want to verify you. They compare them with what Sealpost shows them for {session.account.address}.</p>
        <Fingerprint fpr={session.account.fingerprint} qr />
      </div>
      {session.org.submission && !session.account.guest && (
        <div class="card stack">
          <h2 class="h3">Mail programs</h2>
          <p class="muted small">Send mail from Outlook, Thunderbird or your phone's mail app with an app password for each device.</p>
          <div><a class="btn" href="#/mail-programs" data-testid="settings-mail-programs">Set up a mail program</a></div>
        </div>
      )}
      <ChangePassword session={session} />
      <Totp session={session} />
      <Sessions />
      <RevokeKey session={session} onSignOut={onSignOut} />
    </section>
  );
}

function ChangePassword({ session }: { session: Session }) {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [again, setAgain] = useState('');
  const [step, setStep] = useState<{ label: string; value: number } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [ok, setOk] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const p = passwordProblem(next, again, session.account.address);
    if (p || next !== again) { setError(new Error(p ?? 'The two new passwords differ.')); return; }
    setError(null);
    setOk(false);
    try {
      await client.changePassword(session, current, next, (label, value) => setStep({ label, value }));
      setOk(true);
      setCurrent(''); setNext(''); setAgain('');
    } catch (err) {
      setError(err instanceof api.ApiError && err.code === 'wrong_password' ? new Error('Your current password is wrong. Type it again.') : err);
    } finally {
      setStep(null);
    }
  };
  return (
    <form class="card stack" onSubmit={submit} aria-labelledby="pw-title">
      <h2 class="h3" id="pw-title">Change password</h2>
      <p class="muted small">Your key is re-locked here with the new password; the node never sees either. Your other sessions are signed out.</p>
      <Field label="Current password" id="pw-current"><input id="pw-current" type="password" autocomplete="current-password" required value={current} onInput={(e) => setCurrent(e.currentTarget.value)} /></Field>
      <Field label="New password" id="pw-new" hint="At least 12 characters."><input id="pw-new" type="password" autocomplete="new-password" required value={next} onInput={(e) => setNext(e.currentTarget.value)} /></Field>
      <Field label="New password again" id="pw-again"><input id="pw-again" type="password" autocomplete="new-password" required value={again} onInput={(e) => setAgain(e.currentTarget.value)} /></Field>
      {step && <Progress value={step.value} label={step.label} />}
      <ErrorBox error={error} />
      {ok && <div class="alert alert-ok" role="status">Password changed. Use the new one next time you sign in, here and in the command-line client.</div>}
      <div><button class="btn btn-primary" type="submit" disabled={!!step}>Change password</button></div>
    </form>
  );
}

function Totp({ session }: { session: Session }) {
  const [enabled, setEnabled] = useState(session.account.totp_enabled);
  const [setup, setSetup] = useState<{ secret: string; otpauth_uri: string } | null>(null);
  const [code, setCode] = useState('');
  const [error, setError] = useState<unknown>(null);
  const start = async () => {
    setError(null);
    try { setSetup(await api.post('/me/totp')); } catch (e) { setError(e); }
  };
  const confirm_ = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      await api.post(enabled ? '/me/totp/disable' : '/me/totp/confirm', { code: code.replace(/\s/g, '') });
      setEnabled(!enabled);
      setSetup(null);
      setCode('');
    } catch (err) { setError(err); }
  };
  return (
    <div class="card stack">
      <h2 class="h3">Two-step sign-in</h2>
      <p class="muted small">{enabled ? 'On: signing in asks for a code from your authenticator app.' : 'Off. Turn it on so that a stolen password alone cannot open your account.'}</p>
      {!enabled && !setup && <div><button class="btn" onClick={start}>Set up an authenticator app</button></div>}
      {setup && (
        <div class="totp-setup">
          <QrCode text={setup.otpauth_uri} label="QR code for your authenticator app" />
          <div class="stack">
            <p>Scan this code with your authenticator app, or type this key into it:</p>
            <code class="secret" data-testid="totp-secret">{setup.secret.replace(/(.{4})/g, '$1 ').trim()}</code>
          </div>
        </div>
      )}
      {(setup || enabled) && (
        <form class="row" onSubmit={confirm_}>
          <label for="totp-code" class="sr-only">Code</label>
          <input id="totp-code" inputMode="numeric" autocomplete="one-time-code" placeholder="6-digit code" value={code} onInput={(e) => setCode(e.currentTarget.value)} required />
          <button class={`btn ${enabled ? 'btn-danger-ghost' : 'btn-primary'}`} type="submit">{enabled ? 'Turn off' : 'Confirm and turn on'}</button>
        </form>
      )}
      <ErrorBox error={error} />
    </div>
  );
}

function Sessions() {
  const [list, setList] = useState<SessionView[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = async () => {
    try { setList((await api.get('/me/sessions')).sessions); } catch (e) { setError(e); }
  };
  useEffect(() => { load(); }, []);
  const end = async (id: string) => {
    try { await api.del('/me/sessions/{id}', { id }); load(); } catch (e) { setError(e); }
  };
  return (
    <div class="card stack">
      <h2 class="h3">Active sessions</h2>
      <p class="muted small">Everywhere you are signed in: browsers and the command-line client. Sign out any you do not recognise, then change your password.</p>
      <ErrorBox error={error} />
      <table class="table" data-testid="sessions">
        <thead><tr><th scope="col">Session</th><th scope="col">Started</th><th scope="col">Expires</th><th scope="col"><span class="sr-only">Action</span></th></tr></thead>
        <tbody>
          {(list ?? []).map((s) => (
            <tr>
              <td data-label="Session"><code>{s.id.slice(0, 8)}</code>{s.current && <span class="pill pill-ok">this browser</span>}</td>
              <td data-label="Started">{fullDate(s.created_at)}</td>
              <td data-label="Expires">{fullDate(s.expires_at)}</td>
              <td class="actions">{!s.current && <button class="btn btn-ghost" onClick={() => end(s.id)}>Sign out</button>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function RevokeKey({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const [open, setOpen] = useState(false);
  const [reason, setReason] = useState('');
  const [typed, setTyped] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const go_ = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      await client.revokeKey(session, reason.trim() || 'key retired');
      alert('Your key is revoked. Nobody can send you new messages with it. Ask your administrator to enrol you again with a new key.');
      onSignOut();
    } catch (err) { setError(err); } finally { setBusy(false); }
  };
  return (
    <div class="card stack danger-zone">
      <h2 class="h3">Revoke your key</h2>
      <p class="muted small">Do this if your password or device may be compromised. It is final: new messages to this key are refused everywhere, and you need a new enrolment.</p>
      {!open ? <div><button class="btn btn-danger-ghost" onClick={() => setOpen(true)}>Revoke my key…</button></div> : (
        <form class="stack" onSubmit={go_}>
          <Field label="Reason (shown to others)" id="revoke-reason"><input id="revoke-reason" value={reason} onInput={(e) => setReason(e.currentTarget.value)} placeholder="e.g. laptop stolen" /></Field>
          <Field label={`Type REVOKE to confirm`} id="revoke-confirm"><input id="revoke-confirm" value={typed} onInput={(e) => setTyped(e.currentTarget.value)} autocomplete="off" /></Field>
          <ErrorBox error={error} />
          <div class="row"><button class="btn btn-danger" type="submit" disabled={typed !== 'REVOKE' || busy}>Revoke for good</button><button type="button" class="btn btn-ghost" onClick={() => setOpen(false)}>Cancel</button></div>
        </form>
      )}
    </div>
  );
}
