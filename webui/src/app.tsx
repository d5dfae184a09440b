// The Sealpost web app: the root (which screen for which route and session) and the shell
// around the signed-in screens. The screens are in screens/, one module each; what several
// share is in ui.tsx, auth.tsx and mail.tsx; cryptography lives in client.ts/pgp.ts.
import { render } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import * as api from './api';
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
import { OutsideKeys } from './screens/outside-keys';
import { MailPrograms } from './screens/mail-programs';
import { Settings } from './screens/settings';
import { Admin } from './screens/admin';
import { Compliance } from './screens/compliance';

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
  // Narrow screens (phones) fold the navigation into a menu behind a button in the top bar;
  // wide ones show it as a sidebar and never look at this.
  const [menuOpen, setMenuOpen] = useState(false);
  const menuButton = useRef<HTMLButtonElement>(null);
  const nav = useRef<HTMLElement>(null);
  const mainRef = useRef<HTMLElement>(null);
  const section = route[0] ?? 'mail';
  const folder = (route[0] === 'mail' && (route[1] as any)) || 'inbox';
  const onList = section === 'mail' && !route[2];

  /** Closes the menu; `focus` says where the keyboard goes: back to the menu button, or to
   * the screen just chosen (the link that had it disappears with the menu). */
  const closeMenu = (focus: 'button' | 'main' | null) => {
    setMenuOpen(false);
    if (focus === 'button') menuButton.current?.focus();
    else if (focus === 'main') mainRef.current?.focus();
  };

  // Opening moves the keyboard into the menu; Escape closes it; so does going anywhere.
  useEffect(() => {
    if (!menuOpen) return;
    nav.current?.querySelector<HTMLElement>('button, a[href]')?.focus();
    const onKey = (e: KeyboardEvent) => { if (e.key === 'Escape') closeMenu('button'); };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [menuOpen]);
  useEffect(() => { setMenuOpen(false); }, [route.join('/')]);
  // Compliance is shown to admins and to officers (whom the node alone knows: ask it once).
  const [officer, setOfficer] = useState(false);
  useEffect(() => {
    if (session.account.guest) return;
    api.get('/compliance/custody').then(() => setOfficer(true), (e) => setOfficer(e instanceof api.ApiError && e.code === 'no_custody'));
  }, []);
  const compliance = session.account.is_admin || officer;

  const compose = (seed: ComposeSeed | null) => {
    setComposeSeed(seed);
    go('compose');
  };

  let main;
  if (section === 'mail' && route[2]) main = <MessageView session={session} folder={folder} id={route[2]} onCompose={compose} />;
  else if (section === 'mail') main = <Mailbox session={session} folder={folder} search={search} onUnread={setUnread} />;
  else if (section === 'compose') main = <Compose session={session} seed={composeSeed} />;
  else if (section === 'contacts') main = <Contacts session={session} initial={query.get('address') ?? ''} />;
  else if (section === 'keys' && !session.account.guest) main = <OutsideKeys session={session} />;
  else if (section === 'mail-programs' && session.org.submission && !session.account.guest) main = <MailPrograms session={session} />;
  else if (section === 'settings') main = <Settings session={session} onSession={onSession} onSignOut={onSignOut} />;
  else if (section === 'admin' && session.account.is_admin) main = <Admin session={session} />;
  else if (section === 'compliance' && compliance) main = <Compliance session={session} />;
  else main = <div class="empty">Nothing here. <a href="#/mail/inbox">Go to your inbox</a>.</div>;

  const here = (active: boolean) => ({ class: active ? 'active' : '', 'aria-current': active ? ('page' as const) : undefined });
  return (
    <div class={`shell${menuOpen ? ' menu-open' : ''}${onList ? ' on-list' : ''}`}>
      <a class="skip" href="#main">Skip to content</a>
      <header class="topbar">
        <button ref={menuButton} type="button" class="menu-btn" aria-expanded={menuOpen} aria-controls="main-nav" aria-label="Menu" data-testid="menu-button"
          onClick={() => (menuOpen ? closeMenu(null) : setMenuOpen(true))}>
          <Icon name={menuOpen ? 'close' : 'menu'} size={22} />
        </button>
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
      {menuOpen && <div class="menu-backdrop" aria-hidden="true" onClick={() => closeMenu(null)} />}
      <nav ref={nav} id="main-nav" class="sidebar" aria-label="Main" data-testid="nav"
        onClick={(e) => { if (menuOpen && (e.target as Element).closest('a[href]')) closeMenu('main'); }}
        onFocusOut={(e) => {
          // Tabbing out of the open menu closes it (a tap elsewhere is the backdrop's).
          const to = e.relatedTarget as Node | null;
          if (menuOpen && to && !nav.current?.contains(to) && to !== menuButton.current) setMenuOpen(false);
        }}>
        <div class="nav-me">
          <span class="avatar" aria-hidden="true">{initials(session.account.address)}</span>
          <span class="nav-me-text">
            {session.account.name && <span class="nav-me-name">{session.account.name}</span>}
            <span class={session.account.name ? 'muted small nav-me-address' : 'nav-me-name nav-me-address'}>{session.account.address}</span>
          </span>
        </div>
        <button class="btn btn-primary btn-block compose-btn" onClick={() => { compose(null); if (menuOpen) closeMenu('main'); }}><Icon name="pen" /> Write</button>
        <ul>
          {FOLDERS.map((f) => (
            <li><a href={`#/mail/${f.id}`} {...here(section === 'mail' && folder === f.id)}>
              <Icon name={f.icon} /> {f.label}
              {f.id === 'inbox' && unread > 0 && <span class="count" aria-label={`${unread} unread`}>{unread}</span>}
            </a></li>
          ))}
        </ul>
        <ul class="nav-secondary">
          <li><a href="#/contacts" {...here(section === 'contacts')}><Icon name="shield" /> Contacts &amp; trust</a></li>
          {!session.account.guest && <li><a href="#/keys" {...here(section === 'keys')}><Icon name="key" /> Outside keys</a></li>}
          {session.org.submission && !session.account.guest && <li><a href="#/mail-programs" {...here(section === 'mail-programs')} data-testid="nav-mail-programs"><Icon name="sent" /> Mail programs</a></li>}
          <li><a href="#/settings" {...here(section === 'settings')}><Icon name="settings" /> Settings</a></li>
          {session.account.is_admin && <li><a href="#/admin" {...here(section === 'admin')}><Icon name="building" /> Administration</a></li>}
          {compliance && <li><a href="#/compliance" {...here(section === 'compliance')} data-testid="nav-compliance"><Icon name="shield" /> Compliance</a></li>}
        </ul>
        <button class="btn btn-ghost nav-signout" onClick={onSignOut}><Icon name="signout" /> Sign out</button>
        <div class="sidebar-foot muted small">End-to-end encrypted · key {session.account.fingerprint.slice(-8)}</div>
      </nav>
      <main ref={mainRef} id="main" class="content" tabIndex={-1}>{main}</main>
      {onList && <button class="btn btn-primary fab" onClick={() => compose(null)} data-testid="fab-write"><Icon name="pen" /> Write</button>}
    </div>
  );
}

render(<App />, document.getElementById('app')!);
