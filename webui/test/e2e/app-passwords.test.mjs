// App passwords in the browser (docs/mail.md, "Submission gateway"), against a real node with
// the gateway on (a throw-away certificate made by openssl): alice opens Mail programs from
// the navigation, reads the server settings to type into her mail program, makes an app
// password for her laptop (shown once, with a copy button), sees it listed without the
// secret (also when she comes back to the screen), and revokes it; then the same on a phone (390x844), reached
// from Settings. Then a standard mail program (swaks) logs in with an app password made here
// and sends to bob: bob reads it in his inbox marked as sent from a mail program (on a phone),
// alice finds it in Sent; once revoked, the password is refused. Screenshots of every step at
// 1280x800 and 390x844 land in test-artefacts/app-passwords-*/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { TestNode, launchBrowser, shooter, signIn, until, freePort, MIN_KDF_ENV } from './harness.mjs';

const ALICE = 'alice@alpha.test';
const BOB = 'bob@alpha.test';
const PW = 'correct horse battery staple';
const SECRET = /^[a-z2-7]{6}-[a-z2-7]{6}-[a-z2-7]{6}-[a-z2-7]{6}$/;
let alpha, browser, port;

before(async () => {
  port = await freePort();
  // The node needs its TLS files when the gateway is on; the test's own directory holds them.
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const certs = mkdtempSync(join(tmpdir(), 'sealpost-apppw-tls-'));
  const [cert, key] = [join(certs, 'cert.pem'), join(certs, 'key.pem')];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
    '-days', '2', '-subj', '/CN=smtp.alpha.test'], { stdio: 'ignore' });
  alpha = await TestNode.start('alpha.test', {
    ...MIN_KDF_ENV,
    SEALPOST__SUBMISSION__ENABLED: 'true',
    SEALPOST__SUBMISSION__LISTEN: `127.0.0.1:${port}`,
    SEALPOST__SUBMISSION__HOSTNAME: 'smtp.alpha.test',
    SEALPOST__SUBMISSION__TLS_CERT: cert,
    SEALPOST__SUBMISSION__TLS_KEY: key,
  });
  alpha.certs = certs;
  const invite = alpha.addUser(ALICE, { name: 'Alice Martin' });
  alpha.cli(ALICE, PW).run('enroll', '--invite', invite, '--address', ALICE, '--name', 'Alice Martin');
  const bobInvite = alpha.addUser(BOB, { name: 'Bob Weber' });
  alpha.cli(BOB, PW).run('enroll', '--invite', bobInvite, '--address', BOB, '--name', 'Bob Weber');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  if (alpha?.certs) (await import('node:fs')).rmSync(alpha.certs, { recursive: true, force: true });
  alpha?.cleanup();
});

const live = () => Number(alpha.sql("SELECT count(*) FROM app_passwords WHERE revoked_at IS NULL").trim());

/** Makes an app password labelled `label` on the open Mail programs screen; returns it. */
async function make(page, label) {
  await page.fill('#mp-label', label);
  await page.click('[data-testid=mp-submit]');
  const shown = await page.waitForSelector('[data-testid=mp-created]');
  assert.match(await shown.textContent(), /You will not see it again/);
  const password = (await page.textContent('[data-testid=mp-password]')).trim();
  assert.match(password, SECRET);
  await page.waitForSelector(`[data-testid=mp-item]:has-text("${label}")`);
  return password;
}

/** Revokes the listed app password labelled `label`, accepting the confirmation. */
async function revoke(page, label) {
  page.once('dialog', (d) => { assert.match(d.message(), /can no longer send mail/); d.accept(); });
  await page.click(`[data-testid=mp-item]:has-text("${label}") button`);
  await until(`${label} gone from the list`, 10_000, async () => (await page.$(`[data-testid=mp-item]:has-text("${label}")`)) === null);
}

test('a mail program gets an app password, shown once, listed, then revoked (desktop)', async () => {
  const page = await browser.page();
  const shot = shooter(page, 'app-passwords-desktop');
  await signIn(page, alpha.url, ALICE, PW);
  await page.click('[data-testid=nav-mail-programs]');
  await page.waitForSelector('#mp-title');
  assert.equal(await page.textContent('[data-testid=mp-host]'), 'smtp.alpha.test');
  assert.equal(await page.textContent('[data-testid=mp-port]'), String(port));
  assert.equal(await page.textContent('[data-testid=mp-security]'), 'STARTTLS');
  // The user is told the server sees what a mail program sends.
  assert.match(await page.textContent('[data-testid=mp-sees-content]'), /sees the content in passing/);
  assert.match(await page.textContent('[data-testid=mp-settings]'), new RegExp(ALICE.replace('.', '\\.')));
  await page.waitForSelector('[data-testid=mp-none]');
  await shot('empty');

  const password = await make(page, 'Work laptop');
  assert.equal(live(), 1);
  // The copy button puts it on the clipboard.
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: alpha.url });
  await page.click('[data-testid=mp-copy]');
  await page.waitForSelector('[data-testid=mp-copy]:has-text("Copied")');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), password);
  await shot('made');

  // Listed without the secret; back on the screen later, the secret is nowhere on the page.
  const item = await page.textContent('[data-testid=mp-item]');
  assert.match(item, /Work laptop/);
  assert.match(item, /never used/);
  await page.click('[data-testid=nav] a[href="#/settings"]');
  await page.waitForSelector('#settings-title');
  await page.click('[data-testid=nav-mail-programs]');
  await page.waitForSelector('[data-testid=mp-item]');
  assert.equal(await page.$('[data-testid=mp-created]'), null);
  assert.ok(!(await page.content()).includes(password), 'the secret is shown once only');
  await shot('listed');

  await revoke(page, 'Work laptop');
  await page.waitForSelector('[data-testid=mp-none]');
  assert.equal(live(), 0);
  await shot('revoked');
  await page.context().close();
});

test('the same on a phone, from Settings (390x844)', async () => {
  const page = await browser.page({ phone: true });
  const shot = shooter(page, 'app-passwords-phone');
  await signIn(page, alpha.url, ALICE, PW);
  await page.click('[data-testid=menu-button]');
  await page.click('[data-testid=nav] a[href="#/settings"]');
  await page.click('[data-testid=settings-mail-programs]');
  await page.waitForSelector('#mp-title');
  await shot('screen');
  await make(page, 'Phone');
  await shot('made');
  await page.click('[data-testid=mp-done]');
  assert.equal(await page.$('[data-testid=mp-created]'), null);
  await shot('listed');
  await revoke(page, 'Phone');
  assert.equal(live(), 0);
  await shot('revoked');
  await page.context().close();
});

/** swaks as a mail program: STARTTLS, AUTH PLAIN as alice with `password`, one mail to bob.
 * Returns its exit status and transcript. */
function swaks(password, subject) {
  try {
    const out = execFileSync('swaks', ['--server', `127.0.0.1:${port}`, '--tls', '--auth', 'PLAIN',
      '--auth-user', ALICE, '--auth-password', password, '--from', ALICE, '--to', BOB,
      '--header', `Subject: ${subject}`, '--body', 'Minutes attached in the next mail. 7d1f'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { status: 0, out };
  } catch (e) {
    return { status: e.status, out: `${e.stdout}${e.stderr}` };
  }
}

test('a mail program sends with its app password: bob reads it on his phone, alice sees it in Sent; revoked, it is refused', async () => {
  const page = await browser.page();
  const shot = shooter(page, 'app-passwords-gateway');
  await signIn(page, alpha.url, ALICE, PW);
  await page.click('[data-testid=nav-mail-programs]');
  await page.waitForSelector('#mp-title');
  const password = await make(page, 'Thunderbird');
  const subject = 'Board minutes from Thunderbird 3b2e';
  const sent = swaks(password, subject);
  assert.equal(sent.status, 0, sent.out);
  assert.match(sent.out, /235 2\.7\.0/);
  // Stored sealed: the subject is in no file of the data directory.
  assert.equal(alpha.sql(`SELECT count(*) FROM messages WHERE arrival LIKE '%"submitted":true%'`).trim(), '1');
  const found = spawnSync('grep', ['-rlF', subject, alpha.data], { encoding: 'utf8' });
  assert.equal(found.status, 1, `the subject is on disk in: ${found.stdout}`);

  // alice's Sent: the message, marked as from her mail program.
  await page.click('[data-testid=nav] a[href="#/mail/sent"]');
  const row = await page.waitForSelector(`[data-testid=message-row]:has-text("${subject}")`);
  assert.ok(await row.$('[data-testid=row-via-gateway]'));
  await shot('alice-sent');
  await row.click();
  await page.waitForSelector('[data-testid=via-gateway]');
  assert.match(await page.textContent('[data-testid=arrival]'), /sent it from their mail program through your organisation's submission gateway/);
  await shot('alice-reads');
  await page.context().close();

  // bob, on his phone: in his inbox, from alice, marked as sent from a mail program.
  const phone = await browser.page({ phone: true });
  const bobShot = shooter(phone, 'app-passwords-gateway-phone');
  await signIn(phone, alpha.url, BOB, PW);
  const bobRow = await phone.waitForSelector(`[data-testid=message-row]:has-text("${subject}")`);
  assert.match(await bobRow.textContent(), /alice@alpha\.test/);
  await bobShot('bob-inbox');
  await bobRow.click();
  await phone.waitForSelector('[data-testid=via-gateway]');
  assert.equal(await phone.textContent('#msg-subject'), subject);
  assert.match(await phone.textContent('[data-testid=body]'), /Minutes attached in the next mail\. 7d1f/);
  await bobShot('bob-reads');
  await phone.context().close();

  // Revoked in the web app: the mail program's next login is refused.
  const again = await browser.page();
  await signIn(again, alpha.url, ALICE, PW);
  await again.click('[data-testid=nav-mail-programs]');
  await again.waitForSelector('[data-testid=mp-item]');
  await revoke(again, 'Thunderbird');
  const refused = swaks(password, 'after revocation');
  assert.notEqual(refused.status, 0);
  assert.match(refused.out, /535 5\.7\.8/);
  assert.equal(alpha.sql(`SELECT count(*) FROM messages WHERE arrival LIKE '%"submitted":true%'`).trim(), '1');
  await again.context().close();
});
