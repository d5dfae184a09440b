// Signing in: address and password, then the authenticator code when the account asks for one.
import { useState } from 'preact/hooks';
import * as api from '../api';
import * as client from '../client';
import type { Session } from '../client';
import { ErrorBox, Field } from '../ui';
import { AuthFrame } from '../auth';

export function Login({ onLogin }: { onLogin: (s: Session) => void }) {
  const [address, setAddress] = useState('');
  const [password, setPassword] = useState('');
  const [totp, setTotp] = useState('');
  const [needTotp, setNeedTotp] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const s = await client.login(address, password, needTotp ? totp : undefined);
      setPassword('');
      onLogin(s);
    } catch (err) {
      if (err instanceof api.ApiError && err.code === 'totp_required') {
        setNeedTotp(true);
        setError(null);
      } else if (err instanceof api.ApiError && err.code === 'invalid_credentials') {
        setError(new Error('Wrong address or password. Check both and try again; after a few failures in a row, each further try has to wait a little longer.'));
      } else if (err instanceof api.ApiError && err.code === 'too_many_attempts') {
        setError(new Error(`Too many failed tries: ${err.message.replace(/^too many failed attempts: /, '')}. On a device you have signed in from before, you are not held up by failures elsewhere.`));
      } else if (err instanceof api.ApiError && err.code === 'totp_invalid') {
        setError(new Error('That code is wrong or has expired. Type the code your authenticator app shows now.'));
      } else {
        setError(err);
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <AuthFrame title="Sign in" subtitle="Use the address and password you chose when you enrolled.">
      <form onSubmit={submit} class="stack" aria-busy={busy} data-testid="login-form">
        <Field label="Address" id="login-address">
          <input id="login-address" name="address" type="email" autocomplete="username" required value={address} onInput={(e) => setAddress(e.currentTarget.value)} autofocus />
        </Field>
        <Field label="Password" id="login-password">
          <input id="login-password" name="password" type="password" autocomplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        </Field>
        {needTotp && (
          <Field label="Authentication code" id="login-totp" hint="The 6-digit code your authenticator app shows for Sealpost.">
            <input id="login-totp" name="totp" inputMode="numeric" autocomplete="one-time-code" pattern="[0-9 ]{6,7}" required value={totp} onInput={(e) => setTotp(e.currentTarget.value)} autofocus />
          </Field>
        )}
        <ErrorBox error={error} />
        <button class="btn btn-primary btn-block" type="submit" disabled={busy}>
          {busy ? <><span class="spinner" aria-hidden="true" /> Unlocking your key…</> : 'Sign in'}
        </button>
        <p class="muted small">New here? Your administrator sends you an invite link to enrol.</p>
      </form>
    </AuthFrame>
  );
}
