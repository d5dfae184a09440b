// Guests in the browser (docs/pickup.md, "Guests"), against a real node and tests/smtp/sink.py:
// alice writes from the CLI to carol@outside.test (an unlock code); carol unlocks on a phone and
// creates her own key on the pickup page; alice certifies it as first contact by Message Unlock
// Code; alice's next message needs no unlock code and carol's mail links to the sign-in; carol
// signs in on the phone, reads it in her inbox, and the Write screen refuses anyone but the
// organisation's users.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestNode, launchBrowser, shooter, signIn, startSink, until, BIN } from './harness.mjs';

const ALICE_PW = 'correct horse battery staple';
const CAROL = 'carol@outside.test';
const CAROL_PW = 'blue lantern quiet harbour 7';
const mailDir = mkdtempSync(join(tmpdir(), 'sealpost-guest-mail-'));
let alpha, browser, sink, alice;

/** Waits for a mail to `to` whose text matches `pattern`; returns the match. */
async function mailMatching(to, pattern, timeout = 60_000) {
  return until(`a mail to ${to} matching ${pattern}`, timeout, async () => {
    for (const f of readdirSync(mailDir).filter((n) => n.endsWith('.json'))) {
      const m = JSON.parse(readFileSync(join(mailDir, f), 'utf8'));
      const hit = m.rcpt_tos.includes(to) && pattern.exec(m.text ?? '');
      if (hit) return hit;
    }
    return null;
  });
}

/** `sealpost client … send` as alice; returns its standard error (where codes are printed). */
function send(to, body) {
  const r = spawnSync(BIN, ['client', '--node', alpha.url, '--dir', alice.dir, '--password-file', join(alice.dir, '.password'), 'send', '--to', to, '--subject', 'Your account', '--body', body], { encoding: 'utf8', env: { ...process.env, RUST_LOG: 'warn' }, timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stderr + r.stdout;
}

before(async () => {
  let port;
  ({ port, process: sink } = await startSink(mailDir));
  alpha = await TestNode.start('alpha.test', {
    SEALPOST__RELAY__HOST: '127.0.0.1',
    SEALPOST__RELAY__PORT: String(port),
    SEALPOST__RELAY__SECURITY: 'none',
  });
  const invite = alpha.addUser('alice@alpha.test', { name: 'Alice Martin' });
  alice = alpha.cli('alice@alpha.test', ALICE_PW);
  alice.run('enroll', '--invite', invite, '--address', 'alice@alpha.test');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  alpha?.cleanup();
  if (sink && sink.exitCode === null) sink.kill('SIGTERM');
  rmSync(mailDir, { recursive: true, force: true });
});

test('guest: carol creates her own key on the pickup page, then reads alice\'s next message in her inbox without an unlock code', async () => {
  const out = send(CAROL, 'First contact. OTTER-31.');
  const muc = /unlock code: ([0-9A-Z-]{19})/.exec(out);
  assert.ok(muc, `the CLI printed an unlock code:\n${out}`);
  const [link] = await mailMatching(CAROL, /https?:\/\/\S+?\/pickup#[A-Za-z0-9_-]+/);

  const carol = await browser.page({ phone: true });
  const shot = shooter(carol, 'guest-e2e');
  await carol.goto(alpha.url + link.slice(link.indexOf('/pickup#')));
  await carol.fill('#pickup-code', muc[1]);
  await carol.click('[data-testid=pickup-unlock]');
  await carol.waitForSelector('[data-testid=pickup-message]', { timeout: 90_000 });
  await carol.click('[data-testid=upgrade-open]');
  await carol.fill('#upgrade-password', 'short');
  await carol.waitForSelector('[data-testid=upgrade-strength]');
  await carol.fill('#upgrade-password', CAROL_PW);
  await carol.fill('#upgrade-again', CAROL_PW);
  await shot('upgrade-form');
  await carol.click('[data-testid=upgrade-create]');
  await carol.waitForSelector('[data-testid=upgrade-done], [data-testid=upgrade-form] [data-testid=error]', { timeout: 90_000 });
  if (!(await carol.$('[data-testid=upgrade-done]'))) assert.fail(`the upgrade was refused: ${await carol.textContent('[data-testid=upgrade-form]')}`);
  await shot('upgrade-done');

  // Alice certifies carol's key (first contact by MUC); her next message needs no code.
  const certified = alice.run('certify', CAROL, '--first-contact');
  assert.match(certified, /first contact by Message Unlock Code/);
  const second = send(CAROL, 'Your new card is on its way. OTTER-32.');
  assert.doesNotMatch(second, /unlock code:/);
  const [login] = await mailMatching(CAROL, /https?:\/\/\S+?\/#\/mail\/inbox/);
  assert.ok(login.startsWith(alpha.url), login);

  await signIn(carol, alpha.url, CAROL, CAROL_PW);
  await carol.waitForSelector('[data-testid=message-row]');
  await shot('guest-inbox');
  await carol.click('[data-testid=message-row]');
  await carol.waitForSelector('text=OTTER-32', { timeout: 60_000 });
  await shot('guest-reads');

  // The Write screen: the organisation's users only.
  await carol.goto(alpha.url + '/#/compose');
  await carol.fill('#compose-to', 'dave@outside.test');
  await carol.keyboard.press('Enter');
  await carol.waitForSelector('text=you can write to its users only');
  await shot('guest-write-refused');
  await carol.context().close();
});
