// Enrolment from an invite link: the key is made and locked here; then the welcome with its
// fingerprint.
import { useState } from 'preact/hooks';
import * as api from '../api';
import * as client from '../client';
import type { Session } from '../client';
import { ErrorBox, Field, Fingerprint, Progress } from '../ui';
import { AuthFrame, passwordProblem } from '../auth';

export function Enroll({ query, onDone }: { query: URLSearchParams; onDone: (s: Session, fpr: string) => void }) {
  const [address, setAddress] = useState(query.get('address') ?? '');
  const [invite, setInvite] = useState(query.get('invite') ?? '');
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [again, setAgain] = useState('');
  const [step, setStep] = useState<{ label: string; value: number } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const problem = passwordProblem(password, again, address);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (problem || password !== again) {
      setError(new Error(problem ?? 'The two passwords differ.'));
      return;
    }
    setError(null);
    try {
      const r = await client.enroll(invite, address, name, password, (label, value) => setStep({ label, value }));
      setPassword('');
      setAgain('');
      onDone(r.session, r.fingerprint);
    } catch (err) {
      setStep(null);
      if (err instanceof api.ApiError && (err.status === 401 || err.status === 403 || err.status === 404)) {
        setError(new Error(`${err.message}. Ask your administrator for a new invite link.`));
      } else setError(err);
    }
  };

  return (
    <AuthFrame title="Create your secure account" subtitle="Your key is generated here, in your browser, and locked with your password before anything is sent.">
      <form onSubmit={submit} class="stack" data-testid="enroll-form">
        <Field label="Address" id="enroll-address">
          <input id="enroll-address" type="email" autocomplete="username" required value={address} onInput={(e) => setAddress(e.currentTarget.value)} readOnly={!!query.get('address')} />
        </Field>
        <Field label="Invite code" id="enroll-invite" hint="From your invite link or your administrator.">
          <input id="enroll-invite" required value={invite} onInput={(e) => setInvite(e.currentTarget.value)} autocomplete="off" spellcheck={false} />
        </Field>
        <Field label="Your name (optional)" id="enroll-name" hint="Shown to the people you write to.">
          <input id="enroll-name" autocomplete="name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <Field label="Choose a password" id="enroll-password" hint="At least 12 characters. It unlocks your key: nobody, not even your administrator, can reset it without losing your messages.">
          <input id="enroll-password" type="password" autocomplete="new-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} aria-describedby="enroll-password-hint" />
        </Field>
        <Field label="Type it again" id="enroll-again">
          <input id="enroll-again" type="password" autocomplete="new-password" required value={again} onInput={(e) => setAgain(e.currentTarget.value)} />
        </Field>
        {password && problem && <div class="alert alert-warn" role="status">{problem}</div>}
        <ErrorBox error={error} />
        {step ? (
          <div data-testid="enroll-progress"><Progress value={step.value} label={step.label} /></div>
        ) : (
          <button class="btn btn-primary btn-block" type="submit">Create my key and enrol</button>
        )}
      </form>
    </AuthFrame>
  );
}

export function Welcome({ session, fingerprint, onContinue }: { session: Session; fingerprint: string; onContinue: () => void }) {
  return (
    <AuthFrame title="You are enrolled" subtitle={`Welcome, ${session.account.name || session.account.address}. Your key is ready and certified by ${session.org.domain}.`}>
      <div class="stack" data-testid="welcome">
        <h2 class="h3">Your key's fingerprint</h2>
        <Fingerprint fpr={fingerprint} />
        <div class="alert alert-info">
          <strong>What to do with it:</strong> when someone outside your organisation wants to be sure a message really comes from you,
          read these words to them over the phone or show them in person; they compare them with what their Sealpost shows for you.
          You will always find them under <em>Settings</em>. Never send them in a message you want to verify.
        </div>
        <button class="btn btn-primary btn-block" onClick={onContinue} autofocus>Open my mailbox</button>
      </div>
    </AuthFrame>
  );
}
