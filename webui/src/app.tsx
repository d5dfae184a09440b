// The Sealpost web app: screens and their state. Cryptography lives in client.ts/pgp.ts.
import { render } from 'preact';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import * as api from './api';
import type { AdminUser, NodeStatus, SessionView, VerdictView } from './api';
import * as client from './client';
import type { Session, Opened } from './client';
import {
  Badge, ErrorBox, Field, Fingerprint, Icon, Logo, Progress, QrCode, TrustPath,
  badgeOf, bytes, fullDate, go, initials, saveBlob, useRoute, when,
} from './ui';

// ---------------------------------------------------------------- root

function App() {
  const route = useRoute();
  const [session, setSession] = useState<Session | null>(null);
  const [justEnrolled, setJustEnrolled] = useState<string | null>(null);

  const signOut = useCallback(async () => {
    try {
      await client.logout();
    } catch {
      /* the session may already be gone */
    }
    client.forget();
    setSession(null);
    go('login');
  }, []);

  if (route.path[0] === 'enroll' && !session) {
    return <Enroll query={route.query} onDone={(s, fpr) => { setSession(s); setJustEnrolled(fpr); go('welcome'); }} />;
  }
  if (!session) return <Login onLogin={(s) => { setSession(s); if (!route.path.length || route.path[0] === 'login') go('mail/inbox'); }} />;
  if (route.path[0] === 'welcome' && justEnrolled) {
    return <Welcome session={session} fingerprint={justEnrolled} onContinue={() => { setJustEnrolled(null); go('mail/inbox'); }} />;
  }
  return <Shell session={session} route={route.path} query={route.query} onSignOut={signOut} onSession={setSession} />;
}

// ---------------------------------------------------------------- sign-in screens

function AuthFrame({ title, subtitle, children }: { title: string; subtitle?: string; children: any }) {
  return (
    <div class="auth">
      <div class="auth-brand">
        <div class="brand-row"><Logo size={40} /><span class="brand">Sealpost</span></div>
        <p class="auth-tagline">Confidential messages between organisations. Encrypted in your browser before they leave it.</p>
        <ul class="auth-points">
          <li><Icon name="lock" size={20} /> Your password and your key never leave this device.</li>
          <li><Icon name="shield" size={20} /> Every sender is verified, and you can see why.</li>
          <li><Icon name="log" size={20} /> Every step is recorded in a tamper-evident log.</li>
        </ul>
      </div>
      <main class="auth-card" aria-labelledby="auth-title">
        <h1 id="auth-title">{title}</h1>
        {subtitle && <p class="muted">{subtitle}</p>}
        {children}
      </main>
    </div>
  );
}

function Login({ onLogin }: { onLogin: (s: Session) => void }) {
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

function passwordProblem(pw: string, again: string, address: string): string | null {
  if (pw.length < 12) return 'Use at least 12 characters: a few unrelated words work well.';
  if (address && pw.toLowerCase().includes(address.split('@')[0].toLowerCase())) return 'Do not use your name or address in your password.';
  if (again && pw !== again) return 'The two passwords differ.';
  return null;
}

function Enroll({ query, onDone }: { query: URLSearchParams; onDone: (s: Session, fpr: string) => void }) {
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

function Welcome({ session, fingerprint, onContinue }: { session: Session; fingerprint: string; onContinue: () => void }) {
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

// ---------------------------------------------------------------- the app shell

interface ShellProps {
  session: Session;
  route: string[];
  query: URLSearchParams;
  onSignOut: () => void;
  onSession: (s: Session) => void;
}

const FOLDERS: { id: 'inbox' | 'sent' | 'archive'; label: string; icon: string }[] = [
  { id: 'inbox', label: 'Inbox', icon: 'inbox' },
  { id: 'sent', label: 'Sent', icon: 'sent' },
  { id: 'archive', label: 'Archive', icon: 'archive' },
];

function Shell({ session, route, query, onSignOut, onSession }: ShellProps) {
  const [unread, setUnread] = useState(0);
  const [search, setSearch] = useState('');
  const [composeSeed, setComposeSeed] = useState<ComposeSeed | null>(null);
  const section = route[0] ?? 'mail';
  const folder = (route[0] === 'mail' && (route[1] as any)) || 'inbox';

  const compose = (seed: ComposeSeed | null) => {
    setComposeSeed(seed);
    go('compose');
  };

  let main;
  if (section === 'mail' && route[2]) main = <MessageView session={session} folder={folder} id={route[2]} onCompose={compose} />;
  else if (section === 'mail') main = <Mailbox session={session} folder={folder} search={search} onUnread={setUnread} />;
  else if (section === 'compose') main = <Compose session={session} seed={composeSeed} />;
  else if (section === 'contacts') main = <Contacts session={session} initial={query.get('address') ?? ''} />;
  else if (section === 'settings') main = <Settings session={session} onSession={onSession} onSignOut={onSignOut} />;
  else if (section === 'admin' && session.account.is_admin) main = <Admin session={session} />;
  else main = <div class="empty">Nothing here. <a href="#/mail/inbox">Go to your inbox</a>.</div>;

  return (
    <div class="shell">
      <a class="skip" href="#main">Skip to content</a>
      <header class="topbar">
        <div class="brand-row"><Logo /><span class="brand">Sealpost</span><span class="org-pill">{session.org.domain}</span></div>
        <form class="search" role="search" onSubmit={(e) => { e.preventDefault(); go(`mail/${folder}`); }}>
          <label for="search" class="sr-only">Search your messages</label>
          <input id="search" type="search" placeholder="Search decrypted messages…" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
        </form>
        <div class="me">
          <span class="avatar" aria-hidden="true">{initials(session.account.address)}</span>
          <span class="me-address">{session.account.address}</span>
          <button class="btn btn-ghost" onClick={onSignOut}>Sign out</button>
        </div>
      </header>
      <nav class="sidebar" aria-label="Main">
        <button class="btn btn-primary btn-block compose-btn" onClick={() => compose(null)}><Icon name="pen" /> Write</button>
        <ul>
          {FOLDERS.map((f) => (
            <li><a href={`#/mail/${f.id}`} class={section === 'mail' && folder === f.id ? 'active' : ''} aria-current={section === 'mail' && folder === f.id ? 'page' : undefined}>
              <Icon name={f.icon} /> {f.label}
              {f.id === 'inbox' && unread > 0 && <span class="count" aria-label={`${unread} unread`}>{unread}</span>}
            </a></li>
          ))}
        </ul>
        <ul class="nav-secondary">
          <li><a href="#/contacts" class={section === 'contacts' ? 'active' : ''}><Icon name="shield" /> Contacts &amp; trust</a></li>
          <li><a href="#/settings" class={section === 'settings' ? 'active' : ''}><Icon name="settings" /> Settings</a></li>
          {session.account.is_admin && <li><a href="#/admin" class={section === 'admin' ? 'active' : ''}><Icon name="building" /> Administration</a></li>}
        </ul>
        <div class="sidebar-foot muted small">End-to-end encrypted · key {session.account.fingerprint.slice(-8)}</div>
      </nav>
      <main id="main" class="content" tabIndex={-1}>{main}</main>
    </div>
  );
}

// ---------------------------------------------------------------- mailbox

function Mailbox({ session, folder, search, onUnread }: { session: Session; folder: string; search: string; onUnread: (n: number) => void }) {
  const [items, setItems] = useState<api.MailboxItem[] | null>(null);
  const [notices, setNotices] = useState<api.Notice[]>([]);
  const [heads, setHeads] = useState<Record<string, Opened | Error>>({});
  const [error, setError] = useState<unknown>(null);

  const load = useCallback(async () => {
    setError(null);
    try {
      const r = await api.get<api.MailboxResponse>(`/mailbox/${folder}`);
      setItems(r.items);
      setNotices((r.notices ?? []).filter((n) => n.unread));
      if (folder === 'inbox') onUnread(r.items.filter((i) => i.unread).length);
      // Decrypt the heads (subject, body) here, for display and search; never stored.
      for (const it of r.items.slice(0, 200)) {
        client.openHead(session, it.message_id)
          .then((o) => setHeads((hs) => ({ ...hs, [it.message_id]: o })))
          .catch((e) => setHeads((hs) => ({ ...hs, [it.message_id]: e instanceof Error ? e : new Error(String(e)) })));
      }
    } catch (e) {
      setError(e);
    }
  }, [folder, session]);

  // Deliveries to other organisations are asynchronous: while one is still queued, look
  // again every few seconds rather than every 20.
  const pending = !!items?.some((it) => it.delivery?.some((d) => d.state === 'queued'));
  useEffect(() => {
    setItems(null);
    load();
  }, [load]);
  useEffect(() => {
    const t = setInterval(load, pending ? 3_000 : 20_000);
    return () => clearInterval(t);
  }, [load, pending]);

  // A notice names the message by its ID; show its subject instead (decrypted here, as ever).
  const [noticeSubjects, setNoticeSubjects] = useState<Record<string, string>>({});
  useEffect(() => {
    for (const n of notices) {
      const id = n.message_id;
      if (!id || noticeSubjects[id] !== undefined) continue;
      setNoticeSubjects((m) => ({ ...m, [id]: '' }));
      client.openHead(session, id).then((o) => setNoticeSubjects((m) => ({ ...m, [id]: o.head.subject || '(no subject)' }))).catch(() => {});
    }
  }, [notices]);

  const dismiss = async (n: api.Notice) => {
    setNotices((ns) => ns.filter((x) => x.id !== n.id));
    try { await api.post(`/notices/${n.id}/read`); } catch (e) { setError(e); }
  };

  const q = search.trim().toLowerCase();
  const shown = useMemo(() => {
    if (!items) return [];
    if (!q) return items;
    return items.filter((it) => {
      const o = heads[it.message_id];
      const hay = [it.from, ...it.to, o && !(o instanceof Error) ? [o.head.subject, o.head.body, ...o.head.attachments.map((a) => a.name)].join(' ') : ''].join(' ').toLowerCase();
      return hay.includes(q);
    });
  }, [items, heads, q]);

  const title = FOLDERS.find((f) => f.id === folder)?.label ?? folder;
  return (
    <section aria-labelledby="folder-title">
      <div class="section-head">
        <h1 id="folder-title">{title}</h1>
        <button class="btn btn-ghost" onClick={load} aria-label="Refresh">↻ Refresh</button>
      </div>
      {folder === 'inbox' && notices.length > 0 && (
        <div class="notices" role="region" aria-label="Notices from your node" data-testid="notices">
          {notices.map((n) => (
            <div class="alert alert-warn notice" role="alert" data-testid="notice">
              <span class="notice-icon" aria-hidden="true">⚠</span>
              <div class="grow">
                <div><Reason text={noticeText(n, n.message_id ? noticeSubjects[n.message_id] : undefined)} /></div>
                <div class="small notice-meta">{when(n.created_at)}{n.message_id && <> · <a href={`#/mail/sent/${n.message_id}`}>Open the message in Sent</a></>}</div>
              </div>
              <button class="btn btn-ghost btn-sm" onClick={() => dismiss(n)} aria-label="Dismiss this notice">Dismiss</button>
            </div>
          ))}
        </div>
      )}
      {q && <p class="muted" data-testid="search-note">Searching {items?.length ?? 0} messages decrypted on this device for “{search}”: {shown.length} found.</p>}
      <ErrorBox error={error} />
      {items === null && !error && <div class="skeleton-list" aria-busy="true">{[0, 1, 2].map(() => <div class="skeleton" />)}</div>}
      {items && shown.length === 0 && (
        <div class="empty">{q ? 'No message matches your search.' : folder === 'inbox' ? 'Your inbox is empty. Messages sent to you appear here.' : 'Nothing here yet.'}</div>
      )}
      <ul class="message-list" data-testid="message-list">
        {shown.map((it) => {
          const o = heads[it.message_id];
          const other = folder === 'sent' ? `To ${it.to.join(', ')}` : it.from;
          return (
            <li>
              <a href={`#/mail/${folder}/${it.message_id}`} class={`message-row ${it.unread ? 'unread' : ''}`} data-testid="message-row">
                <span class="avatar" aria-hidden="true">{initials(folder === 'sent' ? it.to[0] ?? '?' : it.from)}</span>
                <span class="row-main">
                  <span class="row-top">
                    <span class="row-from">{it.unread && <span class="dot" aria-label="unread" />}{other}</span>
                    <span class="row-date">{when(it.received_at)}</span>
                  </span>
                  <span class="row-subject">
                    {o === undefined ? <span class="muted">Decrypting…</span> : o instanceof Error ? <span class="text-bad">Cannot open: {o.message}</span> : o.head.subject || '(no subject)'}
                  </span>
                  <span class="row-snippet muted">
                    {o && !(o instanceof Error) && <>{o.head.attachments.length > 0 && <span class="clip" aria-label="has attachments"><Icon name="clip" size={14} /></span>}{o.head.body.slice(0, 140)}</>}
                  </span>
                  {folder === 'sent' && it.delivery && it.delivery.length > 0 && <DeliveryChips delivery={it.delivery} />}
                </span>
              </a>
            </li>
          );
        })}
      </ul>
    </section>
  );
}

/** The node's reasons end with the transport's own error text, "(last error: …)": people get
 * the sentence, the technical part goes under a disclosure. */
function splitReason(text: string): [string, string | null] {
  const m = /^([\s\S]*?)\s*\(last error: ([\s\S]*)\)(\.?)$/.exec(text);
  return m ? [m[1] + m[3], m[2]] : [text, null];
}

/** A notice's text with the message's subject in place of its ID, once known. */
function noticeText(n: api.Notice, subject: string | undefined): string {
  if (!n.message_id) return n.text;
  return n.text.replace(`message ${n.message_id}`, subject ? `message “${subject}”` : 'message');
}

function Reason({ text }: { text: string }) {
  const [plain, technical] = splitReason(text);
  return <>{plain}{technical && <details class="technical"><summary>Technical detail</summary><div class="mono tiny">{technical}</div></details>}</>;
}

/** Each recipient at a peered organisation and how far their copy got. */
function DeliveryChips({ delivery, long }: { delivery: api.DeliveryState[]; long?: boolean }) {
  const label = { queued: 'Queued', delivered: 'Delivered', failed: 'Not delivered' } as const;
  const detail = (d: api.DeliveryState) =>
    d.state === 'queued' ? `Waiting for ${d.address.split('@')[1]}'s node to accept it; Sealpost keeps trying.`
      : d.state === 'delivered' ? `${d.address.split('@')[1]}'s node confirmed it has the message (${when(d.updated_at)}).`
        : `Could not be delivered${d.reason ? `: ${splitReason(d.reason)[0]}` : ''}`;
  const failed = delivery.filter((d) => d.state === 'failed' && d.reason);
  return (
    <>
      <span class="delivery-chips">
        {delivery.map((d) => (
          <span class={`dchip dchip-${d.state}`} data-testid="delivery-state" data-state={d.state} title={detail(d)}>
            <span class="dchip-dot" aria-hidden="true" />
            {long && <span class="dchip-addr">{d.address}</span>}
            <span>{long ? label[d.state] ?? d.state : `${d.address} · ${label[d.state] ?? d.state}`}</span>
          </span>
        ))}
      </span>
      {long && failed.map((d) => (
        <div class="delivery-reason" data-testid="delivery-reason">Not delivered to {d.address}: <Reason text={d.reason!} /></div>
      ))}
    </>
  );
}

// ---------------------------------------------------------------- reading

function MessageView({ session, folder, id, onCompose }: { session: Session; folder: string; id: string; onCompose: (seed: ComposeSeed) => void }) {
  const [o, setO] = useState<Opened | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [verdict, setVerdict] = useState<VerdictView | null | undefined>(undefined);
  const [showPath, setShowPath] = useState(false);
  const [progress, setProgress] = useState<Record<number, { value: number; stage: string }>>({});
  const [attError, setAttError] = useState<unknown>(null);
  const [delivery, setDelivery] = useState<api.DeliveryState[]>([]);

  // While a copy for another organisation is queued, follow it until its node has it.
  const queued = delivery.some((d) => d.state === 'queued');
  useEffect(() => {
    if (!queued) return;
    const t = setInterval(async () => {
      try { setDelivery((await api.get<api.MessageResponse>(`/messages/${id}`)).item.delivery ?? []); } catch { /* keep the last state */ }
    }, 3_000);
    return () => clearInterval(t);
  }, [id, queued]);

  useEffect(() => {
    let live = true;
    (async () => {
      try {
        const opened = await client.openHead(session, id);
        if (!live) return;
        setO(opened);
        setDelivery(opened.item.delivery ?? []);
        if (opened.item.unread && opened.item.folder !== 'sent') client.markRead(id).catch(() => {});
        const keys = await client.trust(opened.envelope.from);
        if (live) setVerdict(keys.find((k) => k.fingerprint.toUpperCase() === opened.signer) ?? null);
      } catch (e) {
        if (live) setError(e);
      }
    })();
    return () => { live = false; };
  }, [id]);

  const download = async (i: number) => {
    if (!o) return;
    setAttError(null);
    try {
      const blob = await client.openAttachment(session, o, i, (value, stage) => setProgress((p) => ({ ...p, [i]: { value, stage } })));
      saveBlob(blob, o.head.attachments[i].name);
    } catch (e) {
      setAttError(e);
      setProgress((p) => { const c = { ...p }; delete c[i]; return c; });
    }
  };

  const move = async (to: string) => {
    try {
      await api.post(`/messages/${id}/move`, { from: folder, to });
      go(`mail/${folder}`);
    } catch (e) {
      setError(e);
    }
  };

  const remove = async () => {
    if (!confirm('Delete this message from your mailbox? This cannot be undone.')) return;
    try {
      await api.del(`/messages/${id}`);
      go(`mail/${folder}`);
    } catch (e) {
      setError(e);
    }
  };

  const reply = () => o && onCompose({
    to: [o.envelope.from === session.account.address ? o.head.to[0] : o.envelope.from],
    subject: /^re:/i.test(o.head.subject) ? o.head.subject : `Re: ${o.head.subject}`,
    body: `\n\nOn ${fullDate(o.head.sent_at)}, ${o.envelope.from} wrote:\n${o.head.body.split('\n').map((l) => `> ${l}`).join('\n')}`,
  });
  const forward = () => o && onCompose({
    to: [],
    subject: /^fwd:/i.test(o.head.subject) ? o.head.subject : `Fwd: ${o.head.subject}`,
    body: `\n\n---------- Forwarded message ----------\nFrom: ${o.envelope.from}\nDate: ${fullDate(o.head.sent_at)}\nSubject: ${o.head.subject}\nTo: ${o.head.to.join(', ')}\n\n${o.head.body}`,
    forwardFrom: o,
  });

  if (error) return <section><a href={`#/mail/${folder}`} class="back">← Back</a><ErrorBox error={error} title="This message cannot be opened." /></section>;
  if (!o) return <section aria-busy="true"><a href={`#/mail/${folder}`} class="back">← Back</a><div class="skeleton tall" /><p class="muted">Decrypting and verifying…</p></section>;

  const b = badgeOf(verdict);
  return (
    <article class="reader" aria-labelledby="msg-subject" data-testid="reader">
      <div class="reader-actions">
        <a href={`#/mail/${folder}`} class="back">← {FOLDERS.find((f) => f.id === folder)?.label}</a>
        <span class="spacer" />
        <button class="btn" onClick={reply}>↩ Reply</button>
        <button class="btn" onClick={forward}>↪ Forward</button>
        {folder === 'inbox' && <button class="btn" onClick={() => move('archive')}>Archive</button>}
        {folder === 'archive' && <button class="btn" onClick={() => move('inbox')}>Move to inbox</button>}
        <button class="btn btn-danger-ghost" onClick={remove}>Delete</button>
      </div>
      <h1 id="msg-subject">{o.head.subject || '(no subject)'}</h1>
      <div class="sender-card">
        <span class="avatar avatar-lg" aria-hidden="true">{initials(o.envelope.from)}</span>
        <div class="sender-info">
          <div class="sender-line"><strong data-testid="sender">{o.envelope.from}</strong>
            {verdict === undefined ? <span class="badge badge-unverified">Checking trust…</span> : <Badge verdict={verdict} onOpen={() => setShowPath(!showPath)} />}
          </div>
          <div class="muted small">to {o.head.to.join(', ')} · {fullDate(o.head.sent_at)}</div>
          {delivery.length > 0 && <div class="delivery-line small" data-testid="delivery"><span class="muted">Delivery to other organisations:</span> <DeliveryChips delivery={delivery} long /></div>}
          <div class="sig-line small" data-testid="signature-status">
            <span class="ok">✔ Signed by {o.envelope.from}</span> with key {o.signer.replace(/(.{4})(?=.)/g, '$1 ').slice(-24)} · signature and content checked
          </div>
        </div>
      </div>
      {showPath && verdict && (
        <div class={`path-panel path-${b.kind}`} data-testid="path-panel">
          <h2 class="h4">Why Sealpost says “{b.detail}”</h2>
          <TrustPath verdict={verdict} />
          <p class="muted small">Each arrow is a certification: the one on the left vouches that the key on the right belongs to that address.
            {b.kind !== 'verified' && <> To verify this sender yourself, <a href={`#/contacts?address=${encodeURIComponent(o.envelope.from)}`}>compare fingerprints with them</a>.</>}</p>
        </div>
      )}
      <div class="body" data-testid="body">{o.head.body}</div>
      {o.head.attachments.length > 0 && (
        <div class="attachments">
          <h2 class="h4">{o.head.attachments.length} attachment{o.head.attachments.length > 1 ? 's' : ''} · encrypted</h2>
          <ul>
            {o.head.attachments.map((a, i) => (
              <li class="attachment" data-testid="attachment">
                <span class="file-icon"><Icon name="file" size={22} /></span>
                <span class="att-main"><span class="att-name">{a.name}</span><span class="muted small">{bytes(a.size)}</span>
                  {progress[i] !== undefined && <Progress value={progress[i].value} label={progress[i].stage} />}
                </span>
                <button class="btn" onClick={() => download(i)} disabled={progress[i] !== undefined && progress[i].value < 1} aria-label={`Download ${a.name}`}>Download</button>
              </li>
            ))}
          </ul>
          <ErrorBox error={attError} />
        </div>
      )}
    </article>
  );
}

// ---------------------------------------------------------------- writing

interface ComposeSeed {
  to: string[];
  subject: string;
  body: string;
  forwardFrom?: Opened;
}

interface Rcpt {
  address: string;
  state: 'checking' | 'ok' | 'refused' | 'invalid';
  verdict: VerdictView | null;
  reason?: string;
}

const ADDRESS = /^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$/;

function Compose({ session, seed }: { session: Session; seed: ComposeSeed | null }) {
  const [rcpts, setRcpts] = useState<Rcpt[]>([]);
  const [typing, setTyping] = useState('');
  const [preview, setPreview] = useState<Rcpt | null>(null);
  const [subject, setSubject] = useState(seed?.subject ?? '');
  const [body, setBody] = useState(seed?.body ?? '');
  const [files, setFiles] = useState<File[]>([]);
  const [fileProgress, setFileProgress] = useState<Record<number, { stage: string; value: number }>>({});
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [sent, setSent] = useState(false);
  const [forwarding, setForwarding] = useState<string | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);

  const resolve = async (address: string): Promise<Rcpt> => {
    address = address.trim().toLowerCase();
    if (!ADDRESS.test(address)) return { address, state: 'invalid', verdict: null, reason: `“${address}” is not an e-mail address.` };
    try {
      const keys = await client.trust(address);
      const best = keys[0] ?? null;
      if (best && api.acceptable(best, session.org.accept_partial)) return { address, state: 'ok', verdict: best };
      return { address, state: 'refused', verdict: best, reason: api.refusal(best, address) };
    } catch (e) {
      return { address, state: 'refused', verdict: null, reason: e instanceof Error ? e.message : String(e) };
    }
  };

  const add = async (address: string) => {
    address = address.trim().replace(/[,;]$/, '').toLowerCase();
    if (!address || rcpts.some((r) => r.address === address)) return;
    setRcpts((rs) => [...rs, { address, state: 'checking', verdict: null }]);
    const r = await resolve(address);
    setRcpts((rs) => rs.map((x) => (x.address === address ? r : x)));
  };

  useEffect(() => {
    (seed?.to ?? []).forEach(add);
    // Forwarding re-encrypts the original's attachments for the new recipients.
    if (seed?.forwardFrom && seed.forwardFrom.head.attachments.length) {
      const o = seed.forwardFrom;
      setForwarding('Decrypting the original attachments…');
      Promise.all(o.head.attachments.map(async (a, i) => new File([await client.openAttachment(session, o, i, () => {})], a.name, { type: a.media_type })))
        .then((fs) => { setFiles((cur) => [...cur, ...fs]); setForwarding(null); })
        .catch((e) => { setForwarding(null); setError(e); });
    }
  }, []);

  // Resolve as you type: a complete-looking address is looked up after a short pause.
  useEffect(() => {
    const t = typing.trim().toLowerCase();
    if (!ADDRESS.test(t)) { setPreview(null); return; }
    setPreview({ address: t, state: 'checking', verdict: null });
    const timer = setTimeout(async () => {
      const r = await resolve(t);
      setPreview((p) => (p && p.address === t ? r : p));
    }, 250);
    return () => clearTimeout(timer);
  }, [typing]);

  const onKey = (e: KeyboardEvent) => {
    if ((e.key === 'Enter' || e.key === ',' || e.key === ';' || e.key === 'Tab') && typing.trim()) {
      if (e.key !== 'Tab') e.preventDefault();
      add(typing);
      setTyping('');
    } else if (e.key === 'Backspace' && !typing && rcpts.length) {
      setRcpts((rs) => rs.slice(0, -1));
    }
  };

  const refused = rcpts.filter((r) => r.state !== 'ok' && r.state !== 'checking');
  const canSend = rcpts.length > 0 && refused.length === 0 && rcpts.every((r) => r.state === 'ok') && !sending && !forwarding;

  const submit = async (e: Event) => {
    e.preventDefault();
    if (typing.trim()) {
      await add(typing);
      setTyping('');
      return;
    }
    if (!canSend) {
      setError(new Error(rcpts.length === 0 ? 'Add at least one recipient.' : refused.length ? `Remove the recipients that cannot receive this message: ${refused.map((r) => r.address).join(', ')}.` : 'Wait until every recipient is checked.'));
      return;
    }
    setSending(true);
    setError(null);
    try {
      await client.send(session, { to: rcpts.map((r) => r.address), subject, body, files }, (i, stage, value) => setFileProgress((p) => ({ ...p, [i]: { stage, value } })));
      setSent(true);
    } catch (err) {
      setError(err);
    } finally {
      setSending(false);
    }
  };

  if (sent) {
    return (
      <section class="sent-done" data-testid="sent">
        <div class="big-check" aria-hidden="true">✔</div>
        <h1>Sent, encrypted</h1>
        <p class="muted">Only {rcpts.map((r) => r.address).join(', ')} and you can read it. The node stored it without being able to read it.</p>
        {(() => {
          const others = [...new Set(rcpts.map((r) => r.address.split('@')[1]).filter((d) => d !== session.org.domain))];
          return others.length > 0 && <p class="muted" data-testid="sent-remote">Recipients at {others.join(', ')} get it through {others.length > 1 ? 'their organisations\' nodes' : 'their organisation\'s node'}: <a href="#/mail/sent">Sent</a> shows when it has arrived there.</p>;
        })()}
        <div class="row"><a class="btn btn-primary" href="#/mail/inbox">Back to inbox</a><a class="btn" href="#/mail/sent">See it in Sent</a></div>
      </section>
    );
  }

  return (
    <section aria-labelledby="compose-title">
      <h1 id="compose-title">{seed?.forwardFrom ? 'Forward' : seed ? 'Reply' : 'New message'}</h1>
      <form class="compose stack" onSubmit={submit} data-testid="compose">
        <div class="field">
          <label for="compose-to">To</label>
          <div class="chips" onClick={() => document.getElementById('compose-to')?.focus()}>
            {rcpts.map((r) => (
              <span class={`chip chip-${r.state}`} data-testid="recipient" data-state={r.state} title={r.reason ?? badgeOf(r.verdict).detail}>
                {r.state === 'checking' ? <span class="spinner small" aria-hidden="true" /> : r.state === 'ok' ? <Icon name="lock" size={14} /> : <span aria-hidden="true">⚠</span>}
                {r.address}
                {r.state === 'ok' && <span class="chip-note">{badgeOf(r.verdict).label}</span>}
                <button type="button" class="chip-x" aria-label={`Remove ${r.address}`} onClick={() => setRcpts((rs) => rs.filter((x) => x !== r))}>×</button>
              </span>
            ))}
            <input id="compose-to" value={typing} onInput={(e) => setTyping(e.currentTarget.value)} onKeyDown={onKey} onBlur={() => { if (typing.trim()) { add(typing); setTyping(''); } }}
              placeholder={rcpts.length ? '' : 'name@organisation.example'} autocomplete="off" aria-describedby="compose-to-hint" />
          </div>
          <div class="hint" id="compose-to-hint">Press Enter after each address. Each recipient's key is checked as you type.</div>
          {preview && (
            <div class={`lookup lookup-${preview.state}`} role="status" data-testid="lookup">
              {preview.state === 'checking' ? <>Looking up {preview.address}…</> : preview.state === 'ok' ? <><Badge verdict={preview.verdict} compact /> {preview.address} can receive encrypted messages.</> : <><span class="text-bad">⚠</span> {preview.reason}</>}
            </div>
          )}
          {refused.map((r) => <div class="alert alert-error" role="alert" data-testid="refusal">{r.reason}</div>)}
        </div>
        <Field label="Subject" id="compose-subject">
          <input id="compose-subject" value={subject} onInput={(e) => setSubject(e.currentTarget.value)} />
        </Field>
        <Field label="Message" id="compose-body">
          <textarea id="compose-body" rows={12} value={body} onInput={(e) => setBody(e.currentTarget.value)} />
        </Field>
        <div class="field">
          <div class="row">
            <button type="button" class="btn" onClick={() => fileInput.current?.click()}><Icon name="clip" /> Attach files</button>
            <input ref={fileInput} type="file" multiple class="sr-only" id="compose-files" aria-label="Attach files" onChange={(e) => { const fl = e.currentTarget.files; if (fl) setFiles((f) => [...f, ...Array.from(fl)]); e.currentTarget.value = ''; }} />
            {forwarding && <span class="muted"><span class="spinner small" /> {forwarding}</span>}
          </div>
          {files.length > 0 && (
            <ul class="file-list">
              {files.map((f, i) => (
                <li class="attachment" data-testid="compose-file">
                  <span class="file-icon"><Icon name="file" size={22} /></span>
                  <span class="att-main"><span class="att-name">{f.name}</span><span class="muted small">{bytes(f.size)}</span>
                    {fileProgress[i] && <Progress value={fileProgress[i].value} label={`${fileProgress[i].stage} ${f.name}`} />}
                  </span>
                  {!sending && <button type="button" class="btn btn-ghost" aria-label={`Remove ${f.name}`} onClick={() => setFiles((fs) => fs.filter((x) => x !== f))}>Remove</button>}
                </li>
              ))}
            </ul>
          )}
        </div>
        <ErrorBox error={error} title="Not sent." />
        <div class="row">
          <button type="submit" class="btn btn-primary" disabled={sending || !!forwarding} data-testid="send">{sending ? <><span class="spinner" aria-hidden="true" /> Encrypting and sending…</> : <><Icon name="lock" /> Send encrypted</>}</button>
          <a class="btn btn-ghost" href="#/mail/inbox">Discard</a>
        </div>
      </form>
    </section>
  );
}

// ---------------------------------------------------------------- contacts and trust

function Contacts({ session, initial }: { session: Session; initial: string }) {
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

// ---------------------------------------------------------------- settings

function Settings({ session, onSignOut }: { session: Session; onSession: (s: Session) => void; onSignOut: () => void }) {
  return (
    <section aria-labelledby="settings-title" class="stack-lg">
      <h1 id="settings-title">Settings</h1>
      <div class="card">
        <h2 class="h3">Your key</h2>
        <p class="muted small">Read these words to people who want to verify you. They compare them with what Sealpost shows them for {session.account.address}.</p>
        <Fingerprint fpr={session.account.fingerprint} qr />
      </div>
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
    try { setList((await api.get<{ sessions: SessionView[] }>('/me/sessions')).sessions); } catch (e) { setError(e); }
  };
  useEffect(() => { load(); }, []);
  const end = async (id: string) => {
    try { await api.del(`/me/sessions/${id}`); load(); } catch (e) { setError(e); }
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
              <td><code>{s.id.slice(0, 8)}</code>{s.current && <span class="pill pill-ok">this browser</span>}</td>
              <td>{fullDate(s.created_at)}</td>
              <td>{fullDate(s.expires_at)}</td>
              <td>{!s.current && <button class="btn btn-ghost" onClick={() => end(s.id)}>Sign out</button>}</td>
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

// ---------------------------------------------------------------- administration

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

function Admin({ session }: { session: Session }) {
  const [users, setUsers] = useState<AdminUser[] | null>(null);
  const [status, setStatus] = useState<NodeStatus | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [inv, setInv] = useState({ address: '', name: '', is_admin: false });
  const [issued, setIssued] = useState<{ address: string; link: string; expires_at: number } | null>(null);
  const [copied, setCopied] = useState(false);

  const [peers, setPeers] = useState<api.PeerView[] | null>(null);

  const load = async () => {
    try {
      setUsers((await api.get<{ users: AdminUser[] }>('/admin/users')).users);
      setStatus(await api.get<NodeStatus>('/admin/status'));
      setPeers((await api.get<{ peers: api.PeerView[] }>('/admin/peers')).peers);
    } catch (e) { setError(e); }
  };
  useEffect(() => { load(); }, []);
  // Links to peers come and go: keep their state current while the console is open.
  useEffect(() => {
    const t = setInterval(async () => {
      try { setPeers((await api.get<{ peers: api.PeerView[] }>('/admin/peers')).peers); } catch { /* shown on next load */ }
    }, 5_000);
    return () => clearInterval(t);
  }, []);

  const invite = async (address: string, name?: string, is_admin = false) => {
    setError(null);
    setCopied(false);
    try {
      const r = await api.post<{ address: string; invite: string; expires_at: number }>('/admin/invites', { address, name: name || undefined, is_admin });
      setIssued({ address: r.address, link: `${location.origin}/#/enroll?address=${encodeURIComponent(r.address)}&invite=${encodeURIComponent(r.invite)}`, expires_at: r.expires_at });
      setInv({ address: '', name: '', is_admin: false });
      load();
    } catch (e) { setError(e); }
  };
  const setState = async (u: AdminUser, state: string) => {
    try { await api.post(`/admin/users/${encodeURIComponent(u.address)}/state`, { state }); load(); } catch (e) { setError(e); }
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
                <td><span class={`pill pill-${u.state}`}>{u.state}</span>{u.state === 'invited' && u.invite_expires_at && <div class="muted small">until {when(u.invite_expires_at)}</div>}</td>
                <td class="mono small">{u.fingerprint ? u.fingerprint.slice(-16) : '—'}</td>
                <td>{u.totp_enabled ? 'on' : 'off'}</td>
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
                  <td>
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
                  <td data-testid="peer-queued">{p.queued === 0 ? <span class="muted">none</span> : <strong>{p.queued} message{p.queued > 1 ? 's' : ''}</strong>}</td>
                  <td class="small">
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

render(<App />, document.getElementById('app')!);
