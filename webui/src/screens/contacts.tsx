// Contacts and trust: every key known for an address, its trust paths, fingerprint comparison,
// certifying, making a trusted introducer, retracting.
import { useEffect, useState } from 'preact/hooks';
import type { VerdictView } from '../api';
import * as client from '../client';
import type { Session } from '../client';
import { Badge, ErrorBox, Field, Fingerprint, TrustPath } from '../ui';

export function Contacts({ session, initial }: { session: Session; initial: string }) {
  const [address, setAddress] = useState(initial);
  const [keys, setKeys] = useState<VerdictView[] | null>(null);
  const [looked, setLooked] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const lookup = async (a = address) => {
    a = a.trim().toLowerCase();
    if (!a) return;
    setError(null);
    try {
      setKeys(await client.trust(a));
      setLooked(a);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => { if (initial) lookup(initial); }, [initial]);

  return (
    <section aria-labelledby="contacts-title">
      <h1 id="contacts-title">Contacts &amp; trust</h1>
      <p class="muted">Look up anyone you write to. Sealpost shows every key known for the address, how far you can trust it, and why. To trust someone
        your organisation does not vouch for, compare fingerprints with them (in person or by phone) and certify their key.</p>
      <form class="row" onSubmit={(e) => { e.preventDefault(); lookup(); }}>
        <label for="contact-address" class="sr-only">Address</label>
        <input id="contact-address" type="email" placeholder="name@organisation.example" value={address} onInput={(e) => setAddress(e.currentTarget.value)} class="grow" />
        <button class="btn btn-primary" type="submit">Look up</button>
      </form>
      <ErrorBox error={error} />
      {keys && keys.length === 0 && <div class="empty">No key is known for {looked}. They cannot receive encrypted messages until they enrol or publish a key.</div>}
      {keys && keys.map((k) => <KeyCard key={k.fingerprint} session={session} verdict={k} busy={busy} setBusy={setBusy} onChanged={() => lookup(looked)} />)}
    </section>
  );
}

function KeyCard({ session, verdict, busy, setBusy, onChanged }: { session: Session; verdict: VerdictView; busy: boolean; setBusy: (b: boolean) => void; onChanged: () => void }) {
  const [compared, setCompared] = useState(false);
  const [introducer, setIntroducer] = useState(false);
  const [scope, setScope] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<string | null>(null);
  const own = verdict.fingerprint.toUpperCase() === session.account.fingerprint.toUpperCase();
  const mine = verdict.explanation.some((l) => l.includes('(you certified this key)') || l.includes('(your trusted introducer)'));
  const revoked = verdict.why_not === 'revoked';

  const act = async (what: 'certify' | 'retract') => {
    setBusy(true);
    setError(null);
    try {
      if (what === 'certify') {
        await client.certify(session, verdict.address, verdict.fingerprint, introducer ? { scope: scope.trim() || undefined } : undefined);
        setDone(introducer ? `You certified this key and made ${verdict.address} a trusted introducer.` : 'You certified this key.');
      } else {
        await client.retract(session, verdict.address, verdict.fingerprint);
        setDone('You retracted your certification.');
      }
      setCompared(false);
      onChanged();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="card key-card" data-testid="key-card">
      <div class="key-head">
        <div><div class="h3">{verdict.address}</div><div class="muted small">Key {verdict.fingerprint.slice(-16)}{own && ' · your own key'}</div></div>
        <Badge verdict={verdict} />
      </div>
      <h2 class="h4">Trust paths</h2>
      <TrustPath verdict={verdict} />
      <h2 class="h4">Compare the fingerprint</h2>
      <p class="muted small">Ask {verdict.address} to read their fingerprint from their Settings page, or scan their screen's QR code. Every word must match, in order.</p>
      <Fingerprint fpr={verdict.fingerprint} qr />
      {done && <div class="alert alert-ok" role="status" data-testid="trust-done">{done}</div>}
      <ErrorBox error={error} />
      {!own && !revoked && (
        <div class="certify stack">
          <label class="check"><input type="checkbox" checked={compared} onChange={(e) => setCompared(e.currentTarget.checked)} data-testid="compared" />
            I compared these words with {verdict.address} themselves, and every word matches.</label>
          <label class="check"><input type="checkbox" checked={introducer} onChange={(e) => setIntroducer(e.currentTarget.checked)} />
            Also trust the keys they certify (make them a trusted introducer)</label>
          {introducer && (
            <Field label="Only for this domain (optional)" id={`scope-${verdict.fingerprint}`} hint="For example their organisation's domain. Empty: any address.">
              <input id={`scope-${verdict.fingerprint}`} value={scope} onInput={(e) => setScope(e.currentTarget.value)} placeholder={verdict.address.split('@')[1]} />
            </Field>
          )}
          <div class="row">
            <button class="btn btn-primary" disabled={!compared || busy} onClick={() => act('certify')} data-testid="certify">✔ Certify this key</button>
            {mine && <button class="btn btn-danger-ghost" disabled={busy} onClick={() => act('retract')} data-testid="retract">Retract my certification</button>}
          </div>
        </div>
      )}
    </div>
  );
}
