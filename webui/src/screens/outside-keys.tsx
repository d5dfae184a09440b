// Outside keys (docs/mail.md, "Outside keys"): the OpenPGP keys and S/MIME certificates of
// people outside Sealpost that this user imported, importing one (pasted or from a file),
// deleting one, and what the node finds for an address (imports, Web Key Directory,
// keyservers) with where each key came from.
import { useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import type { Session } from '../client';
import { ErrorBox, Field, when } from '../ui';
import { KEY_SOURCE_WORDS } from '../mail';
import type { OutsideKeyView, OutsideKeysResponse } from '../mail-wire';
import { groupFingerprint } from '../pgp';

export function OutsideKeys({ session }: { session: Session }) {
  const [keys, setKeys] = useState<OutsideKeyView[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [text, setText] = useState('');
  const [address, setAddress] = useState('');
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<string | null>(null);
  const [lookFor, setLookFor] = useState('');
  const [found, setFound] = useState<OutsideKeysResponse | null>(null);
  const [lookError, setLookError] = useState<unknown>(null);
  const file = useRef<HTMLInputElement>(null);

  const load = async () => {
    try {
      setKeys((await api.get('/outside-keys')).keys);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => { load(); }, []);

  const importKey = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      const k = await api.post('/outside-keys', { key: text, address: address.trim().toLowerCase() || undefined });
      setDone(`Imported the ${k.kind === 'x509' ? 'S/MIME certificate' : 'OpenPGP key'} of ${k.addresses.join(', ')}.`);
      setText('');
      setAddress('');
      await load();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const remove = async (k: OutsideKeyView) => {
    if (!confirm(`Delete the key of ${k.addresses.join(', ')}? Mail to them then uses another key or another way.`)) return;
    try {
      await api.del('/outside-keys/{fingerprint}', { fingerprint: k.fingerprint });
      await load();
    } catch (e) {
      setError(e);
    }
  };

  const lookup = async (e: Event) => {
    e.preventDefault();
    const a = lookFor.trim().toLowerCase();
    if (!a) return;
    setLookError(null);
    setFound(null);
    try {
      setFound(await api.get('/outside-keys/lookup/{address}', { address: a }));
    } catch (err) {
      setLookError(err);
    }
  };

  return (
    <section aria-labelledby="okeys-title">
      <h1 id="okeys-title">Outside keys</h1>
      <p class="muted">People outside Sealpost can receive your messages as OpenPGP or S/MIME mail when Sealpost knows their key. Import a key they gave
        you; only you use it{session.org.domain ? `, not everyone at ${session.org.domain}` : ''}. Compare its fingerprint with them first.</p>
      <form class="card stack" onSubmit={importKey} data-testid="okey-import" aria-labelledby="okey-import-title">
        <h2 class="h3" id="okey-import-title">Import a key</h2>
        <Field label="OpenPGP key or S/MIME certificate (PEM)" id="okey-text">
          <textarea id="okey-text" rows={6} class="mono tiny" value={text} onInput={(e) => setText(e.currentTarget.value)} placeholder="-----BEGIN PGP PUBLIC KEY BLOCK-----" />
        </Field>
        <div class="row">
          <button type="button" class="btn" onClick={() => file.current?.click()}>Choose a file…</button>
          <input ref={file} type="file" class="sr-only" aria-label="Key file" accept=".asc,.gpg,.pgp,.pem,.crt,.txt"
            onChange={async (e) => { const f = e.currentTarget.files?.[0]; if (f) setText(await f.text()); e.currentTarget.value = ''; }} />
        </div>
        <Field label="For the address (optional: the key must carry it)" id="okey-address">
          <input id="okey-address" type="email" value={address} onInput={(e) => setAddress(e.currentTarget.value)} placeholder="name@example.org" />
        </Field>
        <div><button class="btn btn-primary" type="submit" disabled={busy || !text.trim()} data-testid="okey-submit">{busy ? 'Importing…' : 'Import'}</button></div>
        {done && <div class="alert alert-ok" role="status" data-testid="okey-done">{done}</div>}
        <ErrorBox error={error} title="Not imported." />
      </form>

      <h2 class="h3">Your imported keys</h2>
      {keys === null && !error && <div class="skeleton" aria-busy="true" />}
      {keys && keys.length === 0 && <div class="empty">You have imported no keys.</div>}
      <ul class="okey-list" data-testid="okey-list">
        {keys?.map((k) => (
          <li class="card okey" data-testid="okey" data-fingerprint={k.fingerprint}>
            <div class="okey-main">
              <strong class="okey-addr">{k.addresses.join(', ')}</strong>
              <span class="mode-tag">{k.kind === 'x509' ? 'S/MIME' : 'OpenPGP'}</span>
              <div class="mono tiny okey-fpr">{k.kind === 'x509' ? `SHA-256 ${k.fingerprint.toUpperCase()}` : groupFingerprint(k.fingerprint)}</div>
              <div class="muted small">{KEY_SOURCE_WORDS[k.source] ?? k.source[0].toUpperCase() + k.source.slice(1)} · {when(k.imported_at)}</div>
            </div>
            <button class="btn btn-danger-ghost" onClick={() => remove(k)} aria-label={`Delete the key of ${k.addresses.join(', ')}`}>Delete</button>
          </li>
        ))}
      </ul>

      <h2 class="h3">What Sealpost finds for an address</h2>
      <form class="row" onSubmit={lookup}>
        <label for="okey-look" class="sr-only">Address</label>
        <input id="okey-look" type="email" class="grow" value={lookFor} onInput={(e) => setLookFor(e.currentTarget.value)} placeholder="name@example.org" />
        <button class="btn" type="submit">Look up</button>
      </form>
      <ErrorBox error={lookError} />
      {found && (
        <div class="card stack" data-testid="okey-found">
          {found.openpgp.length === 0 && found.x509.length === 0 && <div class="muted">No key found for {found.address}.</div>}
          {found.openpgp.map((k) => (
            <div data-testid="okey-found-openpgp"><strong>OpenPGP</strong> <span class="mono tiny">{groupFingerprint(k.fingerprint)}</span>
              <div class="muted small">{KEY_SOURCE_WORDS[k.source]}{k.verdict.explanation[0] ? ` · ${k.verdict.explanation[0]}` : ''}</div></div>
          ))}
          {found.x509.map((x) => (
            <div data-testid="okey-found-x509"><strong>S/MIME</strong> <span class="mono tiny">SHA-256 {x.sha256.slice(0, 16).toUpperCase()}…</span>
              <div class="muted small">{KEY_SOURCE_WORDS[x.source]} · {x.anchored ? 'checked against your organisation\'s trusted authorities' : `not trusted: ${x.not_anchored_because ?? 'no trusted authority vouches for it'}`}</div></div>
          ))}
          {found.notes.map((n) => <div class="muted small" data-testid="okey-note">{n}</div>)}
        </div>
      )}
    </section>
  );
}
