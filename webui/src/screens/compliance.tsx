// Compliance (docs/compliance.md, "Dual control"): for an admin, the officers and the setup
// that puts the compliance key under M-of-N custody (made, locked, split and wrapped here; the
// secret never leaves this browser); for an officer, the envelope-data search, a request with a
// case reference, the approval or refusal of other officers' cases, and reading a released
// case. The shares meet only in the requesting officer's browser.
import { useEffect, useState } from 'preact/hooks';
import * as api from '../api';
import type { Session } from '../client';
import * as custody from '../custody';
import type { ArchiveItem, CaseView, CustodyView, Opened, OfficerView } from '../custody';
import { ErrorBox, Field, fullDate, when } from '../ui';

export function Compliance({ session }: { session: Session }) {
  return (
    <section aria-labelledby="co-title" class="stack-lg">
      <h1 id="co-title">Compliance</h1>
      <p class="muted">The compliance archive opens only under dual control: one officer asks with a case reference, other officers
        approve, and every step is in the organisation's log before anything is released.</p>
      {session.account.is_admin && <Setup session={session} />}
      <Officer session={session} />
    </section>
  );
}

function Setup({ session }: { session: Session }) {
  const [officers, setOfficers] = useState<OfficerView[] | null>(null);
  const [chosen, setChosen] = useState<string[]>([]);
  const [address, setAddress] = useState('');
  const [threshold, setThreshold] = useState(2);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<CustodyView | null>(null);

  const load = async () => {
    try {
      const list = await api.get('/admin/compliance/officers');
      setOfficers(list);
      setChosen(list.map((o) => o.address));
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => { load(); }, []);

  const add = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      await api.request('PUT', `/admin/compliance/officers/${encodeURIComponent(address.trim())}`);
      setAddress('');
      await load();
    } catch (err) {
      setError(err);
    }
  };

  const split = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      setDone(await custody.setUp(session.org.domain, session.ca, chosen, threshold));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="card stack" data-testid="co-setup">
      <h2 class="h3">Officers and the compliance key (administrator)</h2>
      <form class="row" onSubmit={add}>
        <Field label="Make an officer" id="co-officer">
          <input id="co-officer" type="email" required value={address} onInput={(e) => setAddress(e.currentTarget.value)} />
        </Field>
        <div><button class="btn" type="submit" data-testid="co-add-officer">Add officer</button></div>
      </form>
      <form class="stack" onSubmit={split}>
        <fieldset class="stack">
          <legend class="small">Officers who get a share</legend>
          {officers?.length === 0 && <div class="empty">No officers yet.</div>}
          {officers?.map((o) => (
            <label class="row" data-testid="co-officer-item">
              <input type="checkbox" checked={chosen.includes(o.address)}
                onChange={(e) => setChosen(e.currentTarget.checked ? [...chosen, o.address] : chosen.filter((a) => a !== o.address))} />
              <span>{o.address}</span>
            </label>
          ))}
        </fieldset>
        <Field label="Shares needed to open (M)" id="co-threshold" hint={`Of ${chosen.length} officers; at least 2.`}>
          <input id="co-threshold" type="number" min={2} max={Math.max(2, chosen.length)} value={threshold}
            onInput={(e) => setThreshold(Number(e.currentTarget.value))} aria-describedby="co-threshold-hint" />
        </Field>
        <p class="small muted">This browser makes the compliance key, locks it with a random secret, splits the secret into one share
          per officer (any {threshold} open it), encrypts each share to that officer's key and uploads only that. Setting up again
          replaces the key's custody: do it when officers change.</p>
        <div><button class="btn btn-primary" type="submit" disabled={busy || chosen.length < 2 || threshold < 2 || threshold > chosen.length}
          data-testid="co-split">{busy ? 'Making and splitting…' : `Make the key and split it ${threshold} of ${chosen.length}`}</button></div>
      </form>
      <ErrorBox error={error} />
      {done && (
        <div class="alert alert-ok" role="status" data-testid="co-setup-done">
          The compliance key <span class="mono">{done.fingerprint.slice(-16)}</span> is under {done.threshold}-of-{done.officers.length} control
          ({done.officers.join(', ')}).
        </div>
      )}
    </div>
  );
}

function Officer({ session }: { session: Session }) {
  const [state, setState] = useState<CustodyView | 'not_officer' | 'no_custody' | null>(null);
  const [cases, setCases] = useState<CaseView[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [sender, setSender] = useState('');
  const [recipient, setRecipient] = useState('');
  const [found, setFound] = useState<ArchiveItem[] | null>(null);
  const [pending, setPending] = useState<custody.PendingFilter>('all');
  const [waiting, setWaiting] = useState<number | null>(null);
  const [picked, setPicked] = useState<string[]>([]);
  const [caseRef, setCaseRef] = useState('');
  const [opened, setOpened] = useState<Record<number, Opened[]>>({});
  const [busy, setBusy] = useState<string | null>(null);
  const me = session.account.address;

  const load = async () => {
    try {
      setState(await api.get('/compliance/custody'));
      setCases(await api.get('/compliance/cases'));
      setWaiting(await custody.waitingCount());
    } catch (e) {
      if (e instanceof api.ApiError && (e.code === 'not_officer' || e.code === 'no_custody')) setState(e.code);
      else setError(e);
    }
  };
  useEffect(() => { load(); }, []);

  const act = async (what: string, f: () => Promise<unknown>) => {
    setBusy(what);
    setError(null);
    try {
      await f();
      await load();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  };

  if (state === null) return error ? <ErrorBox error={error} /> : <div class="skeleton" aria-busy="true" />;
  if (state === 'not_officer') return session.account.is_admin ? null : <div class="empty" data-testid="co-not-officer">You are not a compliance officer.</div>;
  if (state === 'no_custody') return <div class="empty" data-testid="co-no-custody">The compliance key is not under custody yet: an administrator sets it up.</div>;

  return (
    <div class="stack-lg" data-testid="co-officer">
      <p class="small muted">Compliance key <span class="mono">{state.fingerprint.slice(-16)}</span>: {state.threshold} of
        {' '}{state.officers.length} officers open it{state.my_share ? ', you hold a share' : ', you hold no share'}.</p>

      <form class="card stack" data-testid="co-search" onSubmit={(e) => { e.preventDefault(); act('search', async () => setFound(await custody.search(sender, recipient, pending))); }}>
        <h2 class="h3">Find messages (envelope data only)</h2>
        {waiting !== null && (
          <p class="small muted" data-testid="co-waiting" data-count={waiting}>
            {waiting === 0 ? 'Every stored copy can be opened with the compliance key.'
              : `${waiting} cop${waiting === 1 ? 'y is' : 'ies are'} still waiting: mail that came encrypted to its recipient only gets the compliance key's session-key packet when the recipient first opens it.`}
          </p>
        )}
        <div class="row wrap">
          <Field label="Sender" id="co-sender"><input id="co-sender" value={sender} onInput={(e) => setSender(e.currentTarget.value)} /></Field>
          <Field label="Recipient" id="co-recipient"><input id="co-recipient" value={recipient} onInput={(e) => setRecipient(e.currentTarget.value)} /></Field>
          <Field label="Copies" id="co-pending">
            <select id="co-pending" value={pending} data-testid="co-pending" onChange={(e) => setPending(e.currentTarget.value as custody.PendingFilter)}>
              <option value="all">All</option>
              <option value="waiting">Still waiting for their packet</option>
              <option value="complete">In the archive</option>
            </select>
          </Field>
        </div>
        <div><button class="btn" type="submit" disabled={busy !== null} data-testid="co-search-submit">Search</button></div>
        {found && found.length === 0 && <div class="empty">No messages.</div>}
        <ul class="okey-list">
          {found?.map((m) => (
            <li class="card okey" data-testid="co-found" data-id={m.message_id} data-pending={m.pending ? 'true' : 'false'}>
              <label class="row grow">
                <input type="checkbox" checked={picked.includes(m.message_id)}
                  onChange={(e) => setPicked(e.currentTarget.checked ? [...picked, m.message_id] : picked.filter((x) => x !== m.message_id))} />
                <span class="okey-main">
                  <strong>{m.sender}</strong> → {m.recipients.join(', ')}
                  <span class="muted small"><span title={fullDate(m.accepted_at)}>{when(m.accepted_at)}</span> · {m.size} bytes</span>
                  {m.pending && <span class="badge badge-unverified small" data-testid="co-found-waiting"
                    title="Encrypted to its recipient only: the archive can open it once the recipient's client adds the compliance key's session-key packet">waiting</span>}
                </span>
              </label>
            </li>
          ))}
        </ul>
      </form>

      <form class="card stack" data-testid="co-request" onSubmit={(e) => {
        e.preventDefault();
        act('request', async () => { await custody.request(session.me, session.org.domain, caseRef, picked); setCaseRef(''); setPicked([]); });
      }}>
        <h2 class="h3">Request access</h2>
        <Field label="Case reference" id="co-case-ref" hint="The court order, supervisory request or internal case this access is for.">
          <input id="co-case-ref" maxLength={128} required value={caseRef} onInput={(e) => setCaseRef(e.currentTarget.value)} aria-describedby="co-case-ref-hint" />
        </Field>
        <div class="small muted">{picked.length} message(s) chosen above. {state.threshold - 1} other officer(s) must approve.</div>
        <div><button class="btn btn-primary" type="submit" disabled={busy !== null || !picked.length || !caseRef.trim() || !state.my_share}
          data-testid="co-request-submit">Request access</button></div>
      </form>

      <ErrorBox error={error} />

      <div class="stack">
        <h2 class="h3">Cases</h2>
        {cases.length === 0 && <div class="empty">No cases.</div>}
        <ul class="okey-list">
          {cases.map((c) => (
            <li class="card stack" data-testid="co-case" data-id={c.id} data-state={c.state}>
              <div>
                <strong>{c.case_ref}</strong> <span class="muted small">· {c.state} · by {c.requester} · {when(c.created_at)}</span>
              </div>
              <div class="small">{c.message_ids.length} message(s) · approved by {c.approved_by.length ? c.approved_by.join(', ') : 'nobody yet'}
                {' '}({c.approved_by.length} of {c.approvals_needed} needed){c.refused_by ? ` · refused by ${c.refused_by}` : ''}</div>
              <div class="row wrap">
                <button class="btn btn-ghost" disabled={busy !== null} data-testid="co-report"
                  onClick={() => act(`report-${c.id}`, () => custody.downloadReport(c))}>Access report</button>
                {c.state === 'pending' && c.requester !== me && !c.approved_by.includes(me) && state.my_share && (
                  <>
                    <button class="btn btn-primary" disabled={busy !== null} data-testid="co-approve"
                      onClick={() => act(`approve-${c.id}`, () => custody.approve(session.me, c))}>Approve</button>
                    <button class="btn btn-danger-ghost" disabled={busy !== null} data-testid="co-refuse"
                      onClick={() => { if (confirm(`Refuse case "${c.case_ref}"? It closes the case.`)) act(`refuse-${c.id}`, () => api.post('/compliance/cases/{id}/refuse', { id: c.id })); }}>Refuse</button>
                  </>
                )}
                {c.requester === me && (c.state === 'released' || (c.state === 'pending' && c.approved_by.length >= c.approvals_needed)) && !opened[c.id] && (
                  <button class="btn btn-primary" disabled={busy !== null} data-testid="co-open"
                    onClick={() => act(`open-${c.id}`, async () => setOpened({ ...opened, [c.id]: await custody.open(session.me, c) }))}>
                    {busy === `open-${c.id}` ? 'Opening…' : 'Open the messages'}</button>
                )}
              </div>
              {opened[c.id]?.map((m) => (
                <article class="card stack" data-testid="co-message" data-id={m.id}>
                  <div class="small muted">From {m.head.from} to {m.head.to.join(', ')} · {fullDate(m.head.sent_at)}</div>
                  {m.error && <div class="alert alert-warn small" data-testid="co-message-error">{m.error}</div>}
                  <h3 class="h3">{m.head.subject}</h3>
                  <pre class="body" data-testid="co-message-body">{m.head.body}</pre>
                </article>
              ))}
            </li>
          ))}
        </ul>
      </div>
    </div>
  );
}
