// "Create your own key" on the pickup page (docs/pickup.md, "Guests"): after unlocking, the
// recipient may choose a password; the key is made and locked in this browser exactly as at
// enrolment (client.newLogin), and the node makes them a guest of the sender's organisation.
// From then on they log in to the web app: later messages need no unlock code.
import { useState } from 'preact/hooks';
import { passwordProblem } from '../auth';
import { groupFingerprint } from '../pgp';
import * as pc from '../pickup-client';
import { ErrorBox, Field, Icon, Progress } from '../ui';

export function Upgrade({ u, organisation }: { u: pc.Unlocked; organisation: string }) {
  const [open, setOpen] = useState(false);
  const [password, setPassword] = useState('');
  const [again, setAgain] = useState('');
  const [step, setStep] = useState<{ label: string; value: number } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<{ fingerprint: string } | null>(null);
  const [exists, setExists] = useState(false);
  const problem = passwordProblem(password, again, u.address);
  const login = `${location.origin}/#/mail/inbox`;

  if (done || exists) {
    return (
      <section class="card stack" data-testid={done ? 'upgrade-done' : 'upgrade-exists'}>
        <h2 class="h3">{done ? '✔ Your own key is ready' : 'You already have a key here'}</h2>
        {done && <p>Your key fingerprint is <span class="mono nowrap-groups" data-testid="upgrade-fpr">{groupFingerprint(done.fingerprint)}</span>. {u.envelope.from} can confirm it with you.</p>}
        <p>From now on, messages from {organisation} need no unlock code: you get a mail, then sign in with <strong>{u.address}</strong> and your password to read and reply.</p>
        <p><a class="btn btn-primary btn-big" href={login} data-testid="upgrade-login"><Icon name="lock" /> Sign in to your secure mailbox</a></p>
      </section>
    );
  }
  if (!open) {
    return (
      <div class="row">
        <button class="btn btn-big" onClick={() => setOpen(true)} data-testid="upgrade-open"><Icon name="lock" /> Create your own key</button>
      </div>
    );
  }

  const submit = async (e: Event) => {
    e.preventDefault();
    const refusal = problem ?? (password === again ? null : 'The two passwords differ.');
    setError(refusal ? new Error(refusal) : null);
    if (refusal) return;
    try {
      setDone(await pc.upgrade(u, password, (label, value) => setStep({ label, value })));
      setPassword('');
      setAgain('');
    } catch (err) {
      if (err instanceof pc.PickupError && err.code === 'guest_exists') setExists(true);
      else setError(err);
    } finally {
      setStep(null);
    }
  };
  return (
    <section class="card" aria-labelledby="upgrade-title">
      <h2 class="h3" id="upgrade-title">Create your own key</h2>
      <p class="muted">Choose a password, and {organisation} can send you secure messages without an unlock code: you become a guest of {organisation}, with a mailbox for messages from its staff and your replies to them. Your key is made and locked here, in your browser; the password never leaves it.</p>
      <form class="stack" onSubmit={submit} data-testid="upgrade-form">
        <Field label="Choose a password" id="upgrade-password" hint="At least 12 characters; a few unrelated words work well. Nobody can reset it: if you forget it, your messages stay locked.">
          <input id="upgrade-password" type="password" autocomplete="new-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} aria-describedby="upgrade-password-hint" disabled={!!step} />
        </Field>
        <Field label="Repeat the password" id="upgrade-again">
          <input id="upgrade-again" type="password" autocomplete="new-password" required value={again} onInput={(e) => setAgain(e.currentTarget.value)} disabled={!!step} />
        </Field>
        {password && problem && <div class="alert alert-warn" role="status" data-testid="upgrade-strength">{problem}</div>}
        {step && <Progress value={step.value} label={step.label} />}
        <ErrorBox error={error} title="No key was created." />
        <button type="submit" class="btn btn-primary btn-block btn-big" disabled={!!step} data-testid="upgrade-create"><Icon name="lock" /> Create my key</button>
      </form>
    </section>
  );
}
