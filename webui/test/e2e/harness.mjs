// Test kit for the browser tests: real `sealpost` nodes on loopback (free ports), the CLI
// client, headless Debian Chromium through playwright-core, and screenshots of every step.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const WEBUI = resolve(here, '../..');
export const ROOT = resolve(WEBUI, '..');
export const BIN = process.env.SEALPOST_BIN || join(ROOT, 'target/debug/sealpost');
export const ARTEFACTS = join(WEBUI, 'test-artefacts');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

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
        env: { ...process.env, RUST_LOG: 'warn', SEALPOST__WEB__DIR: join(WEBUI, 'dist'), ...this.env },
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
    };
  }

  stop() {
    if (this.proc && this.proc.exitCode === null) this.proc.kill('SIGTERM');
  }

  cleanup() {
    this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage',
];

/** Launches Debian's Chromium (Playwright gives it a fresh, temporary profile). Each user gets
 * a context of their own (own cookies), as if on their own computer. */
export async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  return {
    browser,
    async page() {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
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

/** Saves numbered screenshots of a test's steps under test-artefacts/<test>/. */
export function shooter(page, test) {
  const dir = join(ARTEFACTS, test);
  mkdirSync(dir, { recursive: true });
  let n = 0;
  return async (step) => {
    n += 1;
    const file = join(dir, `${String(n).padStart(2, '0')}-${step}.png`);
    await page.screenshot({ path: file, fullPage: true });
    return file;
  };
}
