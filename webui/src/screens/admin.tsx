// The administration console: node status, invites, users, and the federated organisations
// with the state of their links.
import { useEffect, useState } from 'preact/hooks';
import * as api from '../api';
import type { AdminUser, NodeStatus } from '../api';
import type { Session } from '../client';
import { ErrorBox, Field, bytes, fullDate, when } from '../ui';

const PEER_STATE: Record<string, string> = {
  new: 'Not yet contacted',
  connected: 'Connected',
  backing_off: 'Retrying',
  disconnected: 'Not connected',
};

/** What a peer link's last error means, and what to do about it. */
function peerProblem(error: string, ownDomain: string): string {
  if (/not_authorised|not authorised|not a peer/i.test(error)) return `Their node does not accept this one yet: their administrator must add ${ownDomain} as a peer too.`;
  if (/reach|dial|refused|unreachable|timed out|did not answer|timeout|handshake|connection/i.test(error)) return 'Their node cannot be reached: it may be down, or a firewall blocks UDP to its QUIC address. Messages wait in the queue and go as soon as it answers.';
  if (/busy|unavailable|overloaded/i.test(error)) return 'Their node is busy; messages wait in the queue and go when it accepts them.';
  if (/signature|protocol/i.test(error)) return 'Their node answered with something this node cannot accept; check that both run a current Sealpost version.';
  return 'Delivery to their node failed; Sealpost retries on its own.';
}

function untilWhen(t: number): string {
  const s = Math.max(0, Math.round(t - Date.now() / 1000));
  return s < 60 ? `in ${s} s` : `in ${Math.round(s / 60)} min`;
}

export function Admin({ session }: { session: Session }) {
  const [users, setUsers] = useState<AdminUser[] | null>(null);
  const [status, setStatus] = useState<NodeStatus | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [inv, setInv] = useState({ address: '', name: '', is_admin: false });
  const [issued, setIssued] = useState<{ address: string; link: string; expires_at: number } | null>(null);
  const [copied, setCopied] = useState(false);

  const [peers, setPeers] = useState<api.PeerView[] | null>(null);

  const load = async () => {
    try {
      setUsers((await api.get('/admin/users')).users);
      setStatus(await api.get('/admin/status'));
      setPeers((await api.get('/admin/peers')).peers);
    } catch (e) { setError(e); }
  };
  useEffect(() => { load(); }, []);
  // Links to peers come and go: keep their state current while the console is open.
  useEffect(() => {
    const t = setInterval(async () => {
      try { setPeers((await api.get('/admin/peers')).peers); } catch { /* shown on next load */ }
    }, 5_000);
    return () => clearInterval(t);
  }, []);

  const invite = async (address: string, name?: string, is_admin = false) => {
    setError(null);
    setCopied(false);
    try {
      const r = await api.post('/admin/invites', { address, name: name || undefined, is_admin });
      setIssued({ address: r.address, link: `${location.origin}/#/enroll?address=${encodeURIComponent(r.address)}&invite=${encodeURIComponent(r.invite)}`, expires_at: r.expires_at });
      setInv({ address: '', name: '', is_admin: false });
      load();
    } catch (e) { setError(e); }
  };
  const setState = async (u: AdminUser, state: string) => {
    try { await api.post('/admin/users/{address}/state', { address: u.address }, { state }); load(); } catch (e) { setError(e); }
  };

  return (
    <section aria-labelledby="admin-title" class="stack-lg">
      <h1 id="admin-title">Administration · {session.org.domain}</h1>
      <ErrorBox error={error} />
      {status && (
        <div class="stats" data-testid="node-status">
          <div class="stat"><div class="stat-n">{status.accounts.active}</div><div class="muted small">active users</div></div>
          <div class="stat"><div class="stat-n">{status.accounts.invited}</div><div class="muted small">pending invites</div></div>
          <div class="stat"><div class="stat-n">{status.messages}</div><div class="muted small">messages · {bytes(status.stored_bytes)}</div></div>
          <div class="stat"><div class="stat-n">{status.log_entries}</div><div class="muted small">log entries{status.last_checkpoint_at ? ` · signed ${when(status.last_checkpoint_at)}` : ''}</div></div>
          <div class="stat"><div class="stat-n">{status.live_sessions}</div><div class="muted small">live sessions</div></div>
        </div>
      )}
      <form class="card stack" onSubmit={(e) => { e.preventDefault(); invite(inv.address, inv.name, inv.is_admin); }} aria-labelledby="invite-title">
        <h2 class="h3" id="invite-title">Invite someone</h2>
        <div class="grid2">
          <Field label="Address" id="inv-address"><input id="inv-address" type="email" required placeholder={`name@${session.org.domain}`} value={inv.address} onInput={(e) => setInv({ ...inv, address: e.currentTarget.value })} /></Field>
          <Field label="Name (optional)" id="inv-name"><input id="inv-name" value={inv.name} onInput={(e) => setInv({ ...inv, name: e.currentTarget.value })} /></Field>
        </div>
        <label class="check"><input type="checkbox" checked={inv.is_admin} onChange={(e) => setInv({ ...inv, is_admin: e.currentTarget.checked })} /> Administrator</label>
        <div><button class="btn btn-primary" type="submit">Create invite</button></div>
        {issued && (
          <div class="alert alert-ok stack" role="status" data-testid="invite-issued">
            <div>Hand this link to <strong>{issued.address}</strong> over a channel you trust (in person, phone, your intranet). It works once, until {fullDate(issued.expires_at)}.</div>
            <div class="row"><input class="grow mono" readOnly value={issued.link} aria-label="Invite link" data-testid="invite-link" onFocus={(e) => e.currentTarget.select()} />
              <button type="button" class="btn" onClick={async () => { try { await navigator.clipboard.writeText(issued.link); setCopied(true); } catch { setCopied(false); } }}>{copied ? 'Copied' : 'Copy'}</button></div>
          </div>
        )}
      </form>
      <div class="card">
        <h2 class="h3">Users</h2>
        <table class="table" data-testid="users">
          <thead><tr><th scope="col">Address</th><th scope="col">State</th><th scope="col">Key</th><th scope="col">Two-step</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>
            {(users ?? []).map((u) => (
              <tr>
                <td><div>{u.address}{u.is_admin && <span class="pill">admin</span>}</div><div class="muted small">{u.name}</div></td>
                <td data-label="State"><span class={`pill pill-${u.state}`}>{u.state}</span>{u.state === 'invited' && u.invite_expires_at && <div class="muted small">until {when(u.invite_expires_at)}</div>}</td>
                <td data-label="Key" class="mono small">{u.fingerprint ? u.fingerprint.slice(-16) : '—'}</td>
                <td data-label="Two-step">{u.totp_enabled ? 'on' : 'off'}</td>
                <td class="actions">
                  {u.state === 'invited' && <button class="btn btn-ghost" onClick={() => invite(u.address)}>New invite link</button>}
                  {u.state === 'active' && u.address !== session.account.address && <button class="btn btn-ghost" onClick={() => setState(u, 'disabled')}>Disable</button>}
                  {u.state === 'disabled' && <button class="btn btn-ghost" onClick={() => setState(u, 'active')}>Enable</button>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div class="card stack" data-testid="peers">
        <h2 class="h3">Federated organisations</h2>
        <p class="muted small">Users here can write to users of these organisations, and the other way round. Each one's CA is bridged: this node's CA vouches for keys its CA certified, for addresses of its domain only.</p>
        {peers && peers.length === 0 && <p class="muted" data-testid="no-peers">No peers yet.</p>}
        {peers && peers.length > 0 && (
          <table class="table" data-testid="peer-table">
            <thead><tr><th scope="col">Organisation</th><th scope="col">Link</th><th scope="col">Queued</th><th scope="col">Identity</th></tr></thead>
            <tbody>
              {peers.map((p) => (
                <tr data-testid="peer" data-domain={p.domain} data-state={p.state}>
                  <td><div class="strong">{p.domain}</div><div class="muted small">peered {when(p.added_at)}</div></td>
                  <td data-label="Link">
                    <span class={`pill pill-peer-${p.state}`} data-testid="peer-state">{PEER_STATE[p.state] ?? p.state}</span>
                    {p.state_at && <div class="muted small">since {when(p.state_at)}</div>}
                    {p.state !== 'connected' && p.last_error && (
                      <div class="peer-error small" data-testid="peer-error">
                        {peerProblem(p.last_error, session.org.domain)}
                        {p.retry_at && p.retry_at * 1000 > Date.now() && <> Next try {untilWhen(p.retry_at)}.</>}
                        <details class="muted"><summary class="tiny">Technical detail</summary><div class="mono tiny">{p.last_error}</div></details>
                      </div>
                    )}
                  </td>
                  <td data-label="Queued" data-testid="peer-queued">{p.queued === 0 ? <span class="muted">none</span> : <strong>{p.queued} message{p.queued > 1 ? 's' : ''}</strong>}</td>
                  <td data-label="Identity" class="small">
                    <div><span class="muted">CA </span><span class="mono">{p.ca_fingerprint.replace(/(.{4})(?=.)/g, '$1 ')}</span></div>
                    <div><span class="muted">Node </span><span class="mono">{p.peer_id.length > 20 ? `${p.peer_id.slice(0, 8)}…${p.peer_id.slice(-8)}` : p.peer_id}</span></div>
                    {p.addrs.map((a) => <div class="mono tiny muted">{a}</div>)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <div class="alert alert-info stack-sm" data-testid="peer-howto">
          <div><strong>To federate with another organisation</strong>, its administrator and you each run this on your own node's server, naming the other:</div>
          <pre class="cmd">sealpost admin --data DIR peer add THEIR-DOMAIN --from https://THEIR-NODE --yes</pre>
          <div class="small">Without <code>--yes</code> it shows their node's peer ID, addresses and CA fingerprint and asks you to confirm: compare the CA fingerprint with their administrator by phone or in person first. <code>peer list</code> and <code>peer remove</code> do the rest. This node's CA fingerprint, for them to compare, is under <em>This node</em> below.</div>
        </div>
      </div>
      {status && (
        <div class="card small">
          <h2 class="h3">This node</h2>
          <dl class="dl">
            <dt>Version</dt><dd>{status.version}</dd>
            <dt>Running since</dt><dd>{fullDate(status.started_at)}</dd>
            <dt>Organisation CA</dt><dd class="mono">{status.ca_fingerprint.replace(/(.{4})(?=.)/g, '$1 ')}</dd>
            <dt>Node identity</dt><dd class="mono">{status.node_key}</dd>
          </dl>
        </div>
      )}
    </section>
  );
}
