// The Sealpost web app: the root (which screen for which route and session) and the shell
// around the signed-in screens. The screens are in screens/, one module each; what several
// share is in ui.tsx, auth.tsx and mail.tsx; cryptography lives in client.ts/pgp.ts.
import { render } from 'preact';
import { useCallback, useState } from 'preact/hooks';
import * as client from './client';
import type { Session } from './client';
import { Icon, Logo, go, initials, useRoute } from './ui';
import { FOLDERS, type ComposeSeed } from './mail';
import { Login } from './screens/login';
import { Enroll, Welcome } from './screens/enroll';
import { Mailbox } from './screens/mailbox';
import { MessageView } from './screens/reader';
import { Compose } from './screens/compose';
import { Contacts } from './screens/contacts';
import { Settings } from './screens/settings';
import { Admin } from './screens/admin';

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

// ---------------------------------------------------------------- the app shell

interface ShellProps {
  session: Session;
  route: string[];
  query: URLSearchParams;
  onSignOut: () => void;
  onSession: (s: Session) => void;
}

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

render(<App />, document.getElementById('app')!);
