// Test kit for the browser tests: real `sealpost` nodes on loopback (free ports), the CLI
// client, headless Debian Chromium through playwright-core, and screenshots of every step.
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, mkdirSync, writeFileSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const WEBUI = resolve(here, '../..');
export const ROOT = resolve(WEBUI, '..');
export const BIN = process.env.SEALPOST_BIN || join(ROOT, 'target/debug/sealpost');
export const ARTEFACTS = join(WEBUI, 'test-artefacts');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
/** The app the nodes serve: this checkout's build, whichever binary runs (a prebuilt one in
 * SEALPOST_BIN would otherwise serve the dist/ of the tree it was built from). */
export const WEB_DIR = process.env.SEALPOST_WEB_DIR || join(WEBUI, 'dist');

/** Runs the sealpost binary to completion; returns stdout (throws with stderr on failure). */
export function sealpost(args, env = {}) {
  try {
    return execFileSync(BIN, args, {
      env: { ...process.env, RUST_LOG: 'warn', ...env },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 120_000,
    });
  } catch (e) {
    throw new Error(`sealpost ${args.join(' ')} failed:\n${e.stdout}\n${e.stderr}`);
  }
}

/** A node of its own organisation in a temporary directory, serving on a free port. */
export class TestNode {
  /** `env` is added to the node's environment (e.g. `SEALPOST__SECTION__KEY` overrides). */
  static async start(domain, env = {}) {
    const dir = mkdtempSync(join(tmpdir(), `sealpost-web-${domain}-`));
    const data = join(dir, 'data');
    sealpost(['init', '--data', data, '--domain', domain, '--http', '127.0.0.1:0']);
    const node = new TestNode(domain, dir, data, env);
    await node.serve();
    return node;
  }

  constructor(domain, dir, data, env = {}) {
    Object.assign(this, { domain, dir, data, env });
  }

  serve() {
    return new Promise((resolveUrl, reject) => {
      const p = spawn(BIN, ['serve', '--data', this.data], {
        env: { ...process.env, RUST_LOG: 'warn', SEALPOST__WEB__DIR: WEB_DIR, ...this.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      this.proc = p;
      let out = '';
      const timer = setTimeout(() => reject(new Error(`node did not start:\n${out}`)), 30_000);
      p.stdout.on('data', (chunk) => {
        out += chunk;
        const m = /listening on (http:\/\/[0-9.:]+)/.exec(out);
        if (m && !this.url) {
          clearTimeout(timer);
          this.url = m[1];
          resolveUrl(this.url);
        }
      });
      p.stderr.on('data', (chunk) => { out += chunk; });
      p.on('exit', (code) => { if (!this.url) reject(new Error(`node exited ${code}:\n${out}`)); });
    });
  }

  /** Authorises an account; returns its invite code. */
  addUser(address, { admin = false, name } = {}) {
    const args = ['admin', '--data', this.data, 'user', 'add', address];
    if (name) args.push('--name', name);
    if (admin) args.push('--admin');
    const out = sealpost(args).trim().split('\n');
    return out[out.length - 1].trim();
  }

  inviteLink(address, code) {
    return `${this.url}/#/enroll?address=${encodeURIComponent(address)}&invite=${encodeURIComponent(code)}`;
  }

  /** The CLI client of `address`, with its own state directory and password. */
  cli(address, password) {
    const dir = join(this.dir, 'clients', address);
    mkdirSync(dir, { recursive: true });
    const pwFile = join(dir, '.password');
    writeFileSync(pwFile, password + '\n', { mode: 0o600 });
    const node = this;
    return {
      dir,
      run(...args) {
        return sealpost(['client', '--node', node.url, '--dir', dir, '--password-file', pwFile, ...args]);
      },
      /** `client send`; returns the message ID and, per outside recipient, the link and unlock
       * code the CLI printed (once) on stderr. */
      send(...args) {
        const r = spawnSync(BIN, ['client', '--node', node.url, '--dir', dir, '--password-file', pwFile, 'send', ...args], {
          env: { ...process.env, RUST_LOG: 'warn' }, encoding: 'utf8', timeout: 120_000,
        });
        if (r.status !== 0) throw new Error(`client send failed:\n${r.stdout}\n${r.stderr}`);
        const pickups = {};
        for (const m of r.stderr.matchAll(/\n(\S+@\S+) has no key[^\n]*\n\s+link: (\S+)\n\s+unlock code: ([0-9A-Z-]{19})/g)) {
          pickups[m[1]] = { link: m[2], muc: m[3] };
        }
        return { id: r.stdout.trim(), pickups, stderr: r.stderr };
      },
    };
  }

  stop() {
    if (this.proc && this.proc.exitCode === null) this.proc.kill('SIGTERM');
  }

  /** Stops the node, waits for it to exit, runs `between` (e.g. an edit of its database), and
   * starts it again on the same address, so browsers keep their cookies and links. */
  async restart(between = () => {}) {
    const p = this.proc;
    if (p && p.exitCode === null) {
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await exited;
    }
    await between();
    const listen = this.url.replace(/^http:\/\//, '');
    this.url = undefined;
    this.env = { ...this.env, SEALPOST__HTTP__LISTEN: listen };
    return this.serve();
  }

  /** Runs SQL on the node's database with Debian's sqlite3 CLI (for a test's look at what the
   * node holds, or a change no API makes: time passing); returns its output. With `secure_delete`
   * on, as the node's own connections: a row the test rewrites leaves no old copy behind. */
  sql(query) {
    return execFileSync('/usr/bin/sqlite3', ['-cmd', '.timeout 5000', '-cmd', '.output /dev/null', '-cmd', 'PRAGMA secure_delete = ON', '-cmd', '.output stdout', join(this.data, 'sealpost.db'), query], { encoding: 'utf8' });
  }

  cleanup() {
    this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The organisation's login KDF at its smallest (`[accounts] login_kdf`, `KdfParams::MIN`): what
 * `GET /org` publishes, so that enrolment and pickup codes derive quickly in tests. */
export const MIN_KDF = { m_cost_kib: 8192, t_cost: 1, p_cost: 1 };
export const MIN_KDF_ENV = {
  SEALPOST__ACCOUNTS__LOGIN_KDF__M_COST_KIB: String(MIN_KDF.m_cost_kib),
  SEALPOST__ACCOUNTS__LOGIN_KDF__T_COST: String(MIN_KDF.t_cost),
  SEALPOST__ACCOUNTS__LOGIN_KDF__P_COST: String(MIN_KDF.p_cost),
};

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage',
];

/** Launches Debian's Chromium (Playwright gives it a fresh, temporary profile). Each user gets
 * a context of their own (own cookies), as if on their own computer; `page({ phone: true })`
 * is one on a phone: 390x844, touch, the mobile viewport. */
export async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  return {
    browser,
    async page({ phone = false } = {}) {
      const context = await browser.newContext(phone
        ? { viewport: PHONE, isMobile: true, hasTouch: true, acceptDownloads: true }
        : { viewport: DESKTOP, acceptDownloads: true });
      context.setDefaultTimeout(30_000);
      const page = await context.newPage();
      page.on('pageerror', (e) => console.error('page error:', e.message));
      return page;
    },
    async close() {
      await browser.close();
    },
  };
}

/** Logs in over the API as the CLI would (bearer token), for set-up steps of tests. */
export async function bearerLogin(url, address, password) {
  const { load } = await import('../unit/bundle.mjs');
  const { derivePasswordKeys, b64, unb64 } = await load(join(WEBUI, 'src/kdf.ts'));
  const post = async (p, body) => {
    const r = await fetch(`${url}/api/v1${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (!r.ok) throw new Error(`${p}: ${r.status} ${await r.text()}`);
    return r.json();
  };
  const params = await post('/login/params', { address });
  const keys = await derivePasswordKeys(password, unb64(params.kdf_salt), params.kdf_params);
  const login = await post('/login', { address, login_verifier: b64(keys.verifier) });
  return login.token;
}

/** The two screen sizes every screen is looked at in: a laptop and a phone (an iPhone 12–15's
 * 390x844 CSS pixels). */
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };
const SIZES = [['1280x800', DESKTOP], ['390x844', PHONE]];

/** Waits until a resize has been laid out and painted. */
async function settled(page) {
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
}

/** What keeps the page at its current size from fitting: the page's scroll width, and the
 * visible elements that reach past the right edge of the viewport without a box of the page
 * clipping them (a `body { overflow-x: hidden }` would hide the scroll bar, not the problem).
 * At phone size also the controls smaller than a 40 px touch target. */
export async function layoutProblems(page, width) {
  return page.evaluate(({ width, phone }) => {
    const problems = [];
    const doc = document.documentElement;
    const vw = Math.min(width, window.innerWidth);
    if (doc.scrollWidth > vw) problems.push(`the page scrolls sideways: ${doc.scrollWidth}px wide in a ${vw}px viewport`);
    const name = (el) => {
      const cls = typeof el.className === 'string' && el.className.trim() ? '.' + el.className.trim().split(/\s+/).join('.') : '';
      const tid = el.getAttribute('data-testid') ? `[data-testid=${el.getAttribute('data-testid')}]` : '';
      const text = (el.textContent ?? '').trim().replace(/\s+/g, ' ').slice(0, 40);
      return `<${el.tagName.toLowerCase()}${cls}${tid}> "${text}"`;
    };
    const shown = (el) => {
      const r = el.getBoundingClientRect();
      if (r.width <= 1 || r.height <= 1) return null;
      const st = getComputedStyle(el);
      return st.visibility === 'hidden' ? null : r;
    };
    const clipped = (el) => {
      for (let p = el.parentElement; p && p !== document.body && p !== doc; p = p.parentElement) {
        if (getComputedStyle(p).overflowX !== 'visible') return true;
      }
      return false;
    };
    const over = [];
    for (const el of document.body.querySelectorAll('*')) {
      const r = shown(el);
      if (r && r.right > vw + 0.5 && !clipped(el)) over.push(el);
    }
    // Name only the outermost offenders: their children go with them.
    for (const el of over) if (!over.some((o) => o !== el && o.contains(el))) problems.push(`reaches past the right edge (${Math.round(el.getBoundingClientRect().right)}px): ${name(el)}`);
    if (phone) {
      const targets = 'button, .btn, input:not([type=checkbox]):not([type=radio]), textarea, select, summary, label.check, nav a, a.back, .message-row';
      for (const el of document.querySelectorAll(targets)) {
        const r = shown(el);
        if (r && (r.height < 40 || r.width < 40)) problems.push(`a touch target smaller than 40x40 (${Math.round(r.width)}x${Math.round(r.height)}): ${name(el)}`);
      }
    }
    return problems;
  }, { width, phone: width <= PHONE.width });
}

/** Fails with every problem `layoutProblems` finds at the page's current size. */
export async function assertFits(page, what) {
  const { width } = page.viewportSize();
  const problems = await layoutProblems(page, width);
  if (problems.length) throw new Error(`${what}, at ${width}px wide:\n  ${problems.join('\n  ')}`);
}

/** Saves numbered screenshots of a test's steps under test-artefacts/<test>/, each at both
 * sizes (NN-step.1280x800.png, NN-step.390x844.png), and fails if the step does not fit in
 * either: the page is resized for the pictures and given back its own size afterwards. */
export function shooter(page, test) {
  const dir = join(ARTEFACTS, test);
  mkdirSync(dir, { recursive: true });
  let n = 0;
  return async (step) => {
    n += 1;
    const base = join(dir, `${String(n).padStart(2, '0')}-${step}`);
    const own = page.viewportSize();
    // The page's own size first, so the picture of a passing moment (a progress bar) is taken
    // as the test saw it.
    const sizes = [...SIZES].sort(([, a], [, b]) => (a.width === own.width ? -1 : b.width === own.width ? 1 : 0));
    const problems = [];
    for (const [label, size] of sizes) {
      if (page.viewportSize().width !== size.width || page.viewportSize().height !== size.height) {
        await page.setViewportSize(size);
        await settled(page);
      }
      // From the top: a full-page picture draws the sticky top bar where the page is scrolled to.
      const y = await page.evaluate(() => { const y = window.scrollY; window.scrollTo(0, 0); return y; });
      await page.screenshot({ path: `${base}.${label}.png`, fullPage: true });
      await page.evaluate((y) => window.scrollTo(0, y), y);
      const p = await layoutProblems(page, size.width);
      if (p.length) problems.push(`at ${label}:\n  ${p.join('\n  ')}`);
    }
    if (page.viewportSize().width !== own.width || page.viewportSize().height !== own.height) {
      await page.setViewportSize(own);
      await settled(page);
    }
    if (problems.length) throw new Error(`${test}/${String(n).padStart(2, '0')}-${step} does not fit ${problems.join('\n')}`);
    return base;
  };
}

// ---- mail relays for notification mail (docs/pickup.md), as tests/src/smtp.rs starts them ----

/** Every service Postfix needs, none chrooted (the queue is in a temporary directory). */
const POSTFIX_MASTER_CF = `pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;

export async function freePort() {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/** Parses a mail file with tests/smtp/sink.py (Python's email package): headers, text, html. */
export function parseMail(file) {
  return JSON.parse(execFileSync('/usr/bin/python3', [join(ROOT, 'tests/smtp/sink.py'), '--parse', file], { encoding: 'utf8' }));
}

/** A throw-away Postfix on 127.0.0.1 (Debian's `postfix`, its own configuration directory),
 * delivering mail for `mailboxes` into Maildirs and refusing everything else; as
 * `Postfix::start` of tests/src/smtp.rs. Needs root (Postfix's master); returns null where it
 * cannot run, so a test can fall back to the aiosmtpd sink. */
export async function startPostfix(mailboxes) {
  const { existsSync, chownSync, chmodSync } = await import('node:fs');
  if (!existsSync('/usr/sbin/postfix') || process.getuid?.() !== 0) return null;
  const dir = mkdtempSync(join(tmpdir(), 'sealpost-postfix-'));
  chmodSync(dir, 0o755);
  for (const d of ['conf', 'queue', 'data', 'mail']) mkdirSync(join(dir, d));
  const NOBODY = 65534;
  chownSync(join(dir, 'mail'), NOBODY, NOBODY);
  chownSync(join(dir, 'data'), Number(execFileSync('id', ['-u', 'postfix'], { encoding: 'utf8' }).trim()), -1);
  const port = await freePort();
  const domains = [...new Set(mailboxes.map((a) => a.split('@')[1]))].sort();
  writeFileSync(join(dir, 'conf/main.cf'), `compatibility_level = 3.6
queue_directory = ${dir}/queue
data_directory = ${dir}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.test
mydomain = relay.test
myorigin = relay.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
virtual_mailbox_domains = ${domains.join(' ')}
virtual_mailbox_base = ${dir}/mail
virtual_mailbox_maps = texthash:${dir}/conf/vmailbox
virtual_uid_maps = static:${NOBODY}
virtual_gid_maps = static:${NOBODY}
virtual_minimum_uid = 100
default_transport = error:this test relay delivers nothing outside
relay_transport = error:this test relay delivers nothing outside
maillog_file = ${dir}/maillog
maillog_file_prefixes = ${dir}
`);
  writeFileSync(join(dir, 'conf/master.cf'), `127.0.0.1:${port} inet n - n - - smtpd\n${POSTFIX_MASTER_CF}`);
  writeFileSync(join(dir, 'conf/vmailbox'), mailboxes.map((a) => { const [local, domain] = a.split('@'); return `${a} ${domain}/${local}/\n`; }).join(''));
  execFileSync('/usr/sbin/postfix', ['-c', join(dir, 'conf'), 'start'], { stdio: 'pipe' });
  const { connect } = await import('node:net');
  const end = Date.now() + 20_000;
  for (;;) {
    const up = await new Promise((r) => { const s = connect(port, '127.0.0.1', () => { s.end(); r(true); }); s.on('error', () => r(false)); });
    if (up) break;
    if (Date.now() > end) throw new Error(`postfix did not listen on ${port} within 20 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    /** The files of `address`'s Maildir `new/`, oldest name first. */
    delivered(address) {
      const [local, domain] = address.split('@');
      try {
        return readdirSync(join(dir, 'mail', domain, local, 'new')).sort().map((f) => join(dir, 'mail', domain, local, 'new', f));
      } catch {
        return [];
      }
    },
    stop() {
      try { execFileSync('/usr/sbin/postfix', ['-c', join(dir, 'conf'), 'stop'], { stdio: 'ignore' }); } catch { /* already stopped */ }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `check` (which returns a truthy value when done) until `deadline` ms have passed:
 * every wait of the browser tests has a deadline, none is a sleep. */
export async function until(what, deadline, check) {
  const end = Date.now() + deadline;
  for (;;) {
    const v = await check().catch(() => null);
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${deadline / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Signs `address` in on the web app at `url` in `page` and waits for the mailbox. */
export async function signIn(page, url, address, password) {
  await page.goto(url + '/#/login');
  await page.fill('#login-address', address);
  await page.fill('#login-password', password);
  await page.click('button[type=submit]');
  await page.waitForSelector('#folder-title', { timeout: 60_000 });
}

/** Starts tests/smtp/sink.py (python3-aiosmtpd) writing what it takes into `outDir`; resolves
 * to `{ port, process }`. */
export function startSink(outDir) {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/python3', [join(ROOT, 'tests/smtp/sink.py'), '--out', outDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => { out += c; const m = /listening (\d+)/.exec(out); if (m) resolve({ port: Number(m[1]), process: child }); });
    child.stderr.on('data', (c) => { out += c; });
    child.on('exit', (code) => reject(new Error(`the SMTP sink exited ${code}:\n${out}`)));
  });
}

// ---- set-up steps the tests share ----

/** Authorises and enrols accounts of `node` with the CLI client: `users` is a list of
 * `[address, { admin, name }]`, `password` a string or a function of the address. */
export function enrolAll(node, users, password) {
  for (const [address, { admin = false, name } = {}] of users) {
    const invite = node.addUser(address, { admin, name });
    const args = ['enroll', '--invite', invite, '--address', address, ...(name ? ['--name', name] : [])];
    node.cli(address, typeof password === 'function' ? password(address) : password).run(...args);
  }
}

/** Peers two nodes both ways, as the admin of each does with the other's published record. */
export function peerBoth(a, b) {
  sealpost(['admin', '--data', a.data, 'peer', 'add', b.domain, '--from', b.url, '--yes']);
  sealpost(['admin', '--data', b.data, 'peer', 'add', a.domain, '--from', a.url, '--yes']);
}

/** A compliance key made by GnuPG outside the node (ed25519/cv25519, gpg 2.2), as an admin with
 * any OpenPGP tool makes one (docs/compliance.md, "Compliance key"): its GnuPG home holds the
 * secret key, `install(node)` hands the node the public certificate only. */
export function gpgComplianceKey(domain) {
  const home = mkdtempSync(join(tmpdir(), `sealpost-compliance-gpg-${domain}-`));
  chmodSync(home, 0o700);
  const gpg = (args, input) => execFileSync('gpg', ['--homedir', home, '--batch', '--yes', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], { input, stdio: ['pipe', 'pipe', 'pipe'] });
  gpg(['--quick-gen-key', `Compliance archive <compliance@${domain}>`, 'future-default', 'default', 'never']);
  const fpr = /fpr:+([0-9A-F]{40}):/.exec(gpg(['--with-colons', '--fingerprint', `compliance@${domain}`]).toString())[1];
  return {
    home, gpg, fpr,
    /** `sealpost admin compliance install` of the public certificate; returns its output. */
    install(node) {
      const file = join(home, 'compliance.asc');
      writeFileSync(file, gpg(['--armor', '--export', fpr]));
      return sealpost(['admin', '--data', node.data, 'compliance', 'install', file]);
    },
    /** Decrypts `bytes` (an OpenPGP message) with the compliance secret key; the plaintext. */
    decrypt(bytes) {
      const file = join(home, `part-${Date.now()}.pgp`);
      writeFileSync(file, bytes);
      return gpg(['--decrypt', file]).toString();
    },
    cleanup() {
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** Opens the Compliance screen in `page` (signed in) and waits for `ready`. */
async function complianceScreen(page, ready) {
  await page.click('[data-testid=nav-compliance]');
  await page.waitForSelector(ready);
}

/** The admin's browser sets the compliance key up under dual control (docs/compliance.md,
 * "Setup"): the officers named, `threshold` of them needed; returns the "done" text. */
export async function setUpCustody(page, officers, threshold, shot) {
  await complianceScreen(page, '[data-testid=co-setup]');
  for (const o of officers) {
    await page.fill('#co-officer', o);
    await page.click('[data-testid=co-add-officer]');
    await page.waitForSelector(`[data-testid=co-officer-item]:has-text("${o}")`);
  }
  await page.fill('#co-threshold', String(threshold));
  await shot?.('admin-officers');
  await page.click('[data-testid=co-split]');
  const done = await page.waitForSelector('[data-testid=co-setup-done]', { timeout: 60_000 });
  await shot?.('admin-split');
  return done.textContent();
}

/** Officer `page` finds `messageId` by its sender in the archive; the row's text, or null. */
export async function archiveSearch(page, sender, messageId) {
  await complianceScreen(page, '[data-testid=co-officer]');
  await page.fill('#co-sender', sender);
  await page.click('[data-testid=co-search-submit]');
  await page.waitForSelector('[data-testid=co-found], [data-testid=co-search] .empty', { timeout: 30_000 });
  const row = await page.$(`[data-testid=co-found][data-id="${messageId}"]`);
  return row ? row.textContent() : null;
}

/** Officer `page` requests access to `messageId` (found by its sender) under `caseRef`; the
 * pending case's ID. */
export async function requestAccess(page, sender, messageId, caseRef, shot) {
  await archiveSearch(page, sender, messageId);
  await page.click(`[data-testid=co-found][data-id="${messageId}"] input[type=checkbox]`);
  await page.fill('#co-case-ref', caseRef);
  await shot?.('officer1-request');
  await page.click('[data-testid=co-request-submit]');
  const item = await page.waitForSelector('[data-testid=co-case][data-state=pending]');
  if (!(await item.textContent()).includes(caseRef)) throw new Error(`the pending case does not name ${caseRef}`);
  return item.getAttribute('data-id');
}

/** Another officer (`address`, signed in in `page`) approves the pending case. */
export async function approveCase(page, address, shot) {
  await complianceScreen(page, '[data-testid=co-case]');
  await shot?.('officer2-case');
  await page.click('[data-testid=co-approve]');
  await page.waitForSelector(`[data-testid=co-case]:has-text("approved by ${address}")`);
  await shot?.('officer2-approved');
}

/** The requesting officer opens the approved case in the browser that requested it; the
 * decrypted body of its (first) message. */
export async function openCase(page) {
  await page.click('[data-testid=nav] a[href="#/mail/inbox"]');
  await page.waitForSelector('#folder-title');
  await complianceScreen(page, '[data-testid=co-open]');
  await page.click('[data-testid=co-open]');
  const body = await page.waitForSelector('[data-testid=co-message-body]', { timeout: 60_000 });
  return (await body.textContent()).trim();
}

/** The kinds of the compliance entries in `node`'s transaction log, in log order. */
export function complianceLog(node) {
  return node.sql("SELECT kind FROM txlog WHERE kind LIKE 'compliance.%' ORDER BY seq").trim().split('\n');
}

/** What an officer's read leaves behind (docs/compliance.md, "Access"): the case's access
 * report (as downloaded) lists request, approval, release and read in that order, and so does
 * `node`'s transaction log, after the setup; the log's chain verifies. */
export async function assertAccessTrail(node, report) {
  const steps = ['compliance.case_requested', 'compliance.case_approved', 'compliance.shares_released', 'compliance.message_opened'];
  const got = report.entries.map((e) => e.kind);
  if (got.join() !== steps.join()) throw new Error(`the access report lists ${got.join(', ')}`);
  await until('the read is logged', 10_000, async () => complianceLog(node).includes('compliance.message_opened'));
  const log = complianceLog(node);
  const at = ['compliance.custody_set', ...steps].map((kind) => log.indexOf(kind));
  if (at.some((i, n) => i < 0 || (n > 0 && i < at[n - 1]))) throw new Error(`the log holds the steps out of order: ${log.join(', ')}`);
  sealpost(['admin', '--data', node.data, 'log', 'verify']);
}
