// End-to-end tests of the web app in Debian's Chromium against real `sealpost` nodes.
// The tests of this file run in order and build on each other: alice and bob enrol first.
// Screenshots of every step land in test-artefacts/<test>/, at 1280x800 and at 390x844, and
// every step must fit both (harness.mjs: nothing wider than the screen, 40 px touch targets).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestNode, launchBrowser, shooter, sealpost, assertFits, DESKTOP, PHONE } from './harness.mjs';

const PW = { alice: 'correct horse battery staple', bob: 'purple monkey dishwasher 42', dave: 'a long enough password', carol: 'another long password' };
let alpha, browser, alicePage, bobPage, bobFpr, aliceFpr;
const work = mkdtempSync(join(tmpdir(), 'sealpost-web-files-'));

before(async () => {
  alpha = await TestNode.start('alpha.test');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  alpha?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

async function enrollInBrowser(page, link, name, password, shot) {
  await page.goto(link);
  await page.waitForSelector('[data-testid=enroll-form]');
  await shot('invite-link-opened');
  await page.fill('#enroll-name', name);
  await page.fill('#enroll-password', password);
  await page.fill('#enroll-again', password);
  await page.click('text=Create my key and enrol');
  await page.waitForSelector('[data-testid=enroll-progress]');
  await shot('generating-key');
  await page.waitForSelector('[data-testid=welcome]', { timeout: 60_000 });
  await shot('enrolled-fingerprint');
  const fpr = (await page.textContent('[data-testid=fpr-hex]')).replace(/\s+/g, '');
  assert.match(fpr, /^[0-9A-F]{40}$/);
  assert.equal((await page.$$('[data-testid=fpr-words] li')).length, 20, 'one word per fingerprint byte');
  await page.click('text=Open my mailbox');
  await page.waitForSelector('#folder-title');
  return fpr;
}

async function loginInBrowser(page, address, password) {
  await page.goto(alpha.url + '/#/login');
  await page.fill('#login-address', address);
  await page.fill('#login-password', password);
  await page.click('button[type=submit]');
}

/** Records every request the page sends (URL, headers, body). */
function capture(page) {
  const seen = [];
  const on = (req) => seen.push({ url: req.url(), method: req.method(), headers: JSON.stringify(req.headers()), body: req.postDataBuffer() ?? Buffer.alloc(0) });
  page.on('request', on);
  return { seen, stop: () => page.off('request', on) };
}

/** Waits for `selector`, failing at once with the app's error message if one appears instead. */
async function expectOk(page, selector, timeout = 60_000) {
  await page.waitForSelector(`${selector}, [data-testid=error]`, { timeout });
  const err = await page.$('[data-testid=error]');
  if (err && !(await page.$(selector))) assert.fail(`the app says: ${await err.textContent()}`);
}

function assertNoPassword(requests, password) {
  const forms = [
    password,
    encodeURIComponent(password),
    JSON.stringify(password).slice(1, -1),
    Buffer.from(password).toString('base64'),
    Buffer.from(password).toString('base64url'),
    Buffer.from(password).toString('hex'),
  ];
  for (const r of requests) {
    const hay = [r.url, r.headers, r.body.toString('latin1'), r.body.toString('utf8')].join('\n');
    for (const f of forms) assert.ok(!hay.includes(f), `the password (as ${f}) was sent in ${r.method} ${r.url}`);
  }
}

test('alice and bob enrol through invite links; no request carries the password', async () => {
  const aliceInvite = alpha.addUser('alice@alpha.test', { admin: true, name: 'Alice' });
  const bobInvite = alpha.addUser('bob@alpha.test', { name: 'Bob' });
  alicePage = await browser.page();
  const shot = shooter(alicePage, 'enrol-alice');
  const cap = capture(alicePage);
  aliceFpr = await enrollInBrowser(alicePage, alpha.inviteLink('alice@alpha.test', aliceInvite), 'Alice Martin', PW.alice, shot);
  await shot('inbox');
  // Log out and in again: the login requests are captured too.
  await alicePage.click('text=Sign out');
  await alicePage.waitForSelector('[data-testid=login-form]');
  await loginInBrowser(alicePage, 'alice@alpha.test', PW.alice);
  await alicePage.waitForSelector('#folder-title');
  await shot('logged-in-again');
  cap.stop();
  assert.ok(cap.seen.some((r) => r.url.endsWith('/api/v1/enroll')), 'the enrolment request was captured');
  assert.ok(cap.seen.some((r) => r.url.endsWith('/api/v1/login')), 'the login request was captured');
  assertNoPassword(cap.seen, PW.alice);

  bobPage = await browser.page();
  const shotB = shooter(bobPage, 'enrol-bob');
  const capB = capture(bobPage);
  bobFpr = await enrollInBrowser(bobPage, alpha.inviteLink('bob@alpha.test', bobInvite), 'Bob Baker', PW.bob, shotB);
  capB.stop();
  assertNoPassword(capB.seen, PW.bob);

  // The session is an HttpOnly cookie: page scripts cannot read it, and nothing is in storage.
  const cookies = await bobPage.context().cookies();
  const session = cookies.find((c) => c.name === 'sealpost_session');
  assert.ok(session && session.httpOnly && session.sameSite === 'Strict');
  assert.equal(await bobPage.evaluate(() => document.cookie), '');
  const stored = await bobPage.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  assert.ok(!stored.includes('PRIVATE KEY') && !stored.includes(PW.bob), 'no secret in web storage');
});

test('the node serves the app with a strict CSP and refuses cookie requests without the CSRF token', async () => {
  const r = await fetch(alpha.url + '/');
  assert.equal(r.status, 200);
  const csp = r.headers.get('content-security-policy');
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self' 'wasm-unsafe-eval'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.ok(!/unsafe-inline/.test(csp));
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
  const html = await r.text();
  assert.ok(!/<script(?![^>]*\bsrc=)[^>]*>/.test(html), 'no inline script');
  // A forged cross-site request carries the cookie but not the token: it is not authenticated.
  const status = await bobPage.evaluate(async () => (await fetch('/api/v1/logout', { method: 'POST' })).status);
  assert.equal(status, 401);
  const wrong = await bobPage.evaluate(async () => (await fetch('/api/v1/logout', { method: 'POST', headers: { 'x-csrf-token': 'forged' } })).status);
  assert.equal(wrong, 403);
});

test('alice sends bob a message with an attachment; bob reads it, signed by alice and verified through their organisation', async () => {
  const shot = shooter(alicePage, 'send-with-attachment');
  const file = join(work, 'quarterly-report.pdf');
  const content = Buffer.concat([Buffer.from('%PDF-1.4 quarterly figures\n'), Buffer.alloc(300_000, 7)]);
  writeFileSync(file, content);
  await alicePage.click('text=Write');
  await alicePage.fill('#compose-to', 'bob@alpha.test');
  await alicePage.waitForSelector('[data-testid=lookup] [data-kind=verified]');
  await shot('recipient-resolved-as-typed');
  await alicePage.press('#compose-to', 'Enter');
  await alicePage.waitForSelector('[data-testid=recipient][data-state=ok]');
  await alicePage.fill('#compose-subject', 'Quarterly report');
  await alicePage.fill('#compose-body', 'Hi Bob,\n\nthe figures are attached. The merger code name is BLUEFIN.\n\nAlice');
  await alicePage.setInputFiles('#compose-files', file);
  await shot('composed');
  await alicePage.click('[data-testid=send]');
  await expectOk(alicePage, '[data-testid=sent]');
  await shot('sent');

  const shotB = shooter(bobPage, 'read-with-attachment');
  await bobPage.goto(alpha.url + '/#/mail/inbox');
  await bobPage.click('text=Refresh');
  await bobPage.waitForSelector('[data-testid=message-row].unread >> text=Quarterly report');
  await shotB('inbox-unread');
  // Search runs over what this browser decrypted.
  await bobPage.fill('#search', 'bluefin');
  await bobPage.waitForSelector('[data-testid=search-note]');
  assert.equal((await bobPage.$$('[data-testid=message-row]')).length, 1);
  await shotB('search');
  await bobPage.fill('#search', '');
  await bobPage.click('text=Quarterly report');
  await bobPage.waitForSelector('[data-testid=reader]');
  await bobPage.waitForSelector('[data-testid=trust-badge][data-kind=verified]');
  assert.equal(await bobPage.textContent('[data-testid=sender]'), 'alice@alpha.test');
  assert.match(await bobPage.textContent('[data-testid=signature-status]'), /Signed by alice@alpha\.test/);
  assert.match(await bobPage.textContent('[data-testid=trust-badge]'), /Verified by your organisation/);
  await bobPage.click('[data-testid=trust-badge]');
  const paths = await bobPage.textContent('[data-testid=path-panel]');
  assert.match(paths, /\(your organisation\)/);
  assert.match(paths, /alice@alpha\.test/);
  await shotB('read-badge-path');
  const [download] = await Promise.all([bobPage.waitForEvent('download'), bobPage.click('text=Download')]);
  const saved = join(work, 'downloaded.pdf');
  await download.saveAs(saved);
  assert.ok(readFileSync(saved).equals(content), 'the attachment arrives intact');
  await bobPage.waitForSelector('text=Decrypted and verified');
  await shotB('attachment-downloaded');
});

test('a wrong password gives a clear error', async () => {
  const page = await browser.page();
  const shot = shooter(page, 'wrong-password');
  await loginInBrowser(page, 'bob@alpha.test', 'not my password at all');
  await page.waitForSelector('[data-testid=error]');
  assert.match(await page.textContent('[data-testid=error]'), /Wrong address or password/);
  await shot('error');
  await page.context().close();
});

test('a message written in the browser is read by the CLI, and one sent with the CLI is read in the browser', async () => {
  // Bob enrolled in the browser; the CLI works with the same password. The CLI has no login
  // command yet, so its (non-secret) state file is written as enrolment would have.
  const org = await (await fetch(alpha.url + '/api/v1/org')).json();
  const bobCli = alpha.cli('bob@alpha.test', PW.bob);
  writeFileSync(join(bobCli.dir, 'client.json'), JSON.stringify({ node: alpha.url, address: 'bob@alpha.test', fingerprint: bobFpr, ca_fingerprint: org.ca_fingerprint }));
  const inbox = JSON.parse(bobCli.run('inbox', '--json'));
  const id = inbox.find((i) => i.subject === 'Quarterly report').message_id;
  const saveDir = mkdtempSync(join(work, 'cli-'));
  const read = bobCli.run('read', id, '--save-attachments', saveDir);
  assert.match(read, /Quarterly report/);
  assert.match(read, /BLUEFIN/);
  assert.match(read, /alice@alpha\.test/);
  assert.deepEqual(readdirSync(saveDir), ['quarterly-report.pdf']);

  const aliceCli = alpha.cli('alice@alpha.test', PW.alice);
  writeFileSync(join(aliceCli.dir, 'client.json'), JSON.stringify({ node: alpha.url, address: 'alice@alpha.test', fingerprint: aliceFpr, ca_fingerprint: org.ca_fingerprint }));
  const note = join(work, 'minutes.txt');
  writeFileSync(note, 'minutes of the board meeting\n');
  aliceCli.run('send', '--to', 'bob@alpha.test', '--subject', 'Sent from the command line', '--body', 'Typed in a terminal, read in a browser.', '--attach', note);

  const shot = shooter(bobPage, 'cli-to-browser');
  await bobPage.goto(alpha.url + '/#/mail/inbox');
  await bobPage.click('text=Refresh');
  await bobPage.click('text=Sent from the command line');
  await bobPage.waitForSelector('[data-testid=trust-badge][data-kind=verified]');
  assert.match(await bobPage.textContent('[data-testid=body]'), /Typed in a terminal, read in a browser\./);
  const [download] = await Promise.all([bobPage.waitForEvent('download'), bobPage.click('text=Download')]);
  const saved = join(work, 'minutes-downloaded.txt');
  await download.saveAs(saved);
  assert.equal(readFileSync(saved, 'utf8'), 'minutes of the board meeting\n');
  await shot('read-cli-message');
});

/** Samples the page's JavaScript memory through CDP every 50 ms: the V8 heap and the
 * backing stores of ArrayBuffers (where a Uint8Array's bytes live), until `stop()`. */
async function memorySampler(page) {
  const cdp = await page.context().newCDPSession(page);
  const sample = async () => {
    const u = await cdp.send('Runtime.getHeapUsage');
    return { heap: u.usedSize, buffers: u.backingStorageSize ?? 0 };
  };
  await cdp.send('HeapProfiler.collectGarbage');
  const base = await sample();
  const peak = { ...base, sum: base.heap + base.buffers };
  let running = true;
  let stopped = null;
  const loop = (async () => {
    while (running) {
      try {
        const s = await sample();
        peak.heap = Math.max(peak.heap, s.heap);
        peak.buffers = Math.max(peak.buffers, s.buffers);
        peak.sum = Math.max(peak.sum, s.heap + s.buffers);
      } catch { if (page.isClosed()) break; }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    base,
    stop() {
      running = false;
      stopped ??= loop.then(() => cdp.detach().catch(() => {})).then(() => peak);
      return stopped;
    },
  };
}

const MiB = 1 << 20;
const mib = (n) => `${(n / MiB).toFixed(1)} MiB`;

test('a large attachment (64 MiB; BIG_ATTACHMENT_MIB) streams browser → browser and browser → CLI, with progress and bounded memory', async () => {
  const SIZE = Number(process.env.BIG_ATTACHMENT_MIB || 64) * MiB;
  const { randomBytes, createHash } = await import('node:crypto');
  const file = join(work, 'survey-scans.bin');
  // Incompressible, so the ciphertext is as large as the file.
  const content = randomBytes(SIZE);
  writeFileSync(file, content);
  const want = createHash('sha256').update(content).digest('hex');

  const shot = shooter(alicePage, 'large-attachment-send');
  await alicePage.goto(alpha.url + '/#/mail/inbox');
  await alicePage.click('text=Write');
  await alicePage.fill('#compose-to', 'bob@alpha.test');
  await alicePage.press('#compose-to', 'Enter');
  await alicePage.waitForSelector('[data-testid=recipient][data-state=ok]');
  await alicePage.fill('#compose-subject', 'Survey scans');
  await alicePage.fill('#compose-body', 'All the scans, in one file.');
  await alicePage.setInputFiles('#compose-files', file);
  const sendMem = await memorySampler(alicePage);
  const t0 = Date.now();
  await alicePage.click('[data-testid=send]');
  setTimeout(() => sendMem.stop(), 240_000).unref(); // never outlive a failed test
  let sentAt = 0;
  const sent = expectOk(alicePage, '[data-testid=sent]', 180_000).then(() => { sentAt = Date.now(); });
  sent.catch(() => {});
  const bar = (stage) => `[data-testid=compose-file] [role=progressbar][aria-label^="${stage}"]`;
  await alicePage.waitForSelector(bar('Encrypting'));
  await alicePage.waitForFunction((sel) => Number(document.querySelector(sel)?.getAttribute('aria-valuenow')) >= 3, bar('Encrypting'), { polling: 50 }).catch(() => {});
  await shot('encrypting-progress');
  if (await Promise.race([alicePage.waitForSelector(bar('Uploading'), { timeout: 60_000 }).catch(() => null), sent.then(() => null)])) await shot('uploading-progress');
  await sent;
  const sendSecs = (sentAt - t0) / 1000;
  const sendPeak = await sendMem.stop();
  await shot('sent');

  const shotB = shooter(bobPage, 'large-attachment-read');
  await bobPage.goto(alpha.url + '/#/mail/inbox');
  await bobPage.click('text=Refresh');
  await bobPage.click('text=Survey scans');
  await bobPage.waitForSelector('[data-testid=trust-badge][data-kind=verified]');
  const readMem = await memorySampler(bobPage);
  const t1 = Date.now();
  setTimeout(() => readMem.stop(), 240_000).unref();
  let readAt = 0;
  const downloaded = bobPage.waitForEvent('download', { timeout: 180_000 }).then((d) => { readAt = Date.now(); return d; });
  downloaded.catch(() => {});
  await bobPage.click('text=Download');
  const rbar = (stage) => `[data-testid=attachment] [role=progressbar][aria-label^="${stage}"]`;
  if (await bobPage.waitForSelector(rbar('Downloading'), { timeout: 10_000 }).catch(() => null)) await shotB('downloading-progress');
  if (await Promise.race([bobPage.waitForSelector(rbar('Decrypting'), { timeout: 60_000 }).catch(() => null), downloaded.then(() => null)])) {
    await bobPage.waitForFunction((sel) => Number(document.querySelector(sel)?.getAttribute('aria-valuenow')) >= 53, rbar('Decrypting'), { polling: 50, timeout: 60_000 }).catch(() => {});
    await shotB('decrypting-progress');
  }
  const download = await downloaded.catch(async (e) => { await readMem.stop(); throw e; });
  const readSecs = (readAt - t1) / 1000;
  const readPeak = await readMem.stop();
  await bobPage.waitForSelector('text=Decrypted and verified');
  await shotB('downloaded');
  const saved = join(work, 'survey-scans-downloaded.bin');
  await download.saveAs(saved);
  assert.equal(createHash('sha256').update(readFileSync(saved)).digest('hex'), want, 'browser → browser: the same bytes');

  // Browser → CLI: bob's CLI (set up by the test above) saves the same file.
  const bobCli = alpha.cli('bob@alpha.test', PW.bob);
  const id = JSON.parse(bobCli.run('inbox', '--json')).find((i) => i.subject === 'Survey scans').message_id;
  const saveDir = mkdtempSync(join(work, 'cli-big-'));
  const t2 = Date.now();
  bobCli.run('read', id, '--save-attachments', saveDir);
  const cliSecs = (Date.now() - t2) / 1000;
  assert.equal(createHash('sha256').update(readFileSync(join(saveDir, 'survey-scans.bin'))).digest('hex'), want, 'browser → CLI: the same bytes');

  const line = (what, m, p, secs) => `  ${what}: ${secs.toFixed(1)} s; peak JS heap ${mib(p.heap)} (before ${mib(m.base.heap)}), peak ArrayBuffer storage ${mib(p.buffers)} (before ${mib(m.base.buffers)}), peak sum ${mib(p.sum)}`;
  console.log(`large attachment, ${mib(SIZE)}:\n${line('send (encrypt + upload)', sendMem, sendPeak, sendSecs)}\n${line('read (download + decrypt)', readMem, readPeak, readSecs)}\n  CLI read: ${cliSecs.toFixed(1)} s`);
  // The V8 heap (objects) must not grow with the attachment. ArrayBuffer storage is printed but
  // not asserted: it counts chunks already dropped until V8 collects them, so its peak depends
  // on when the collector runs rather than on what the app keeps.
  for (const [what, m, p] of [['send', sendMem, sendPeak], ['read', readMem, readPeak]]) {
    assert.ok(p.heap - m.base.heap < Math.max(SIZE / 2, 48 * MiB), `${what}: the JS heap grew by ${mib(p.heap - m.base.heap)} for a ${mib(SIZE)} attachment`);
  }
});

test('bob compares carol\'s fingerprint and certifies her; the badge changes', async () => {
  // Carol is a contractor: she has an account and a key, but the organisation CA does not vouch
  // for her (the admin revoked its certification), so nobody bob trusts does. She stays at
  // bob's own organisation on purpose: a carol@beta.test would be verified through the bridge
  // already, and making her unverified at alpha would need beta's CA to withdraw its
  // certification and that to spread first; federation.test.mjs covers the bridge path.
  const carolInvite = alpha.addUser('carol@alpha.test');
  const carolCli = alpha.cli('carol@alpha.test', PW.carol);
  carolCli.run('enroll', '--invite', carolInvite, '--address', 'carol@alpha.test');
  sealpost(['admin', '--data', alpha.data, 'user', 'revoke', 'carol@alpha.test']);
  const carolFpr = carolCli.run('fingerprint').replace(/^.*?\s{2}/, '').replace(/\s+/g, '');

  const shot = shooter(bobPage, 'certify-carol');
  await bobPage.click('text=Contacts & trust');
  await bobPage.fill('#contact-address', 'carol@alpha.test');
  await bobPage.click('button:has-text("Look up")');
  await expectOk(bobPage, '[data-testid=key-card]').catch(async (e) => { await shot('lookup-failed'); throw e; });
  assert.equal(await bobPage.getAttribute('[data-testid=key-card] [data-testid=trust-badge]', 'data-kind'), 'unverified');
  // Carol reads her fingerprint aloud: bob compares the words on his screen with hers.
  assert.equal((await bobPage.textContent('[data-testid=key-card] [data-testid=fpr-hex]')).replace(/\s+/g, ''), carolFpr);
  assert.ok(await bobPage.$('[data-testid=key-card] svg.qr'), 'a QR code to scan');
  await shot('not-verified-compare');
  await bobPage.check('[data-testid=compared]');
  await bobPage.click('[data-testid=certify]');
  await bobPage.waitForSelector('[data-testid=trust-done]');
  await bobPage.waitForSelector('[data-testid=key-card] [data-testid=trust-badge][data-kind=verified]');
  assert.match(await bobPage.textContent('[data-testid=key-card] [data-testid=trust-paths]'), /you certified this key/);
  await shot('certified-verified');
  // And the CLI agrees.
  const bobCli = alpha.cli('bob@alpha.test', PW.bob);
  assert.match(bobCli.run('trust', 'show', 'carol@alpha.test'), /full/);

  // Retracting takes it back.
  await bobPage.click('[data-testid=retract]');
  await bobPage.waitForSelector('[data-testid=key-card] [data-testid=trust-badge][data-kind=unverified]');
  await shot('retracted');
});

test('a revoked recipient is refused in compose with the reason', async () => {
  const invite = alpha.addUser('dave@alpha.test');
  const dave = alpha.cli('dave@alpha.test', PW.dave);
  dave.run('enroll', '--invite', invite, '--address', 'dave@alpha.test');
  dave.run('revoke-key', '--reason', 'laptop stolen');
  const shot = shooter(alicePage, 'revoked-recipient');
  await alicePage.goto(alpha.url + '/#/mail/inbox');
  await alicePage.click('text=Write');
  await alicePage.fill('#compose-to', 'dave@alpha.test');
  await alicePage.press('#compose-to', 'Enter');
  await alicePage.waitForSelector('[data-testid=refusal]');
  assert.match(await alicePage.textContent('[data-testid=refusal]'), /revoked/);
  assert.equal(await alicePage.getAttribute('[data-testid=recipient]', 'data-state'), 'refused');
  await alicePage.fill('#compose-subject', 'Hello Dave');
  await alicePage.click('[data-testid=send]');
  await alicePage.waitForSelector('[data-testid=error]');
  assert.match(await alicePage.textContent('[data-testid=error]'), /dave@alpha\.test/);
  await shot('refused');
});

test('settings and admin console: sessions, invite link, node status; a changed password works in the CLI', async () => {
  const shot = shooter(alicePage, 'settings-admin');
  await alicePage.goto(alpha.url + '/#/admin');
  await alicePage.waitForSelector('[data-testid=node-status]');
  await alicePage.fill('#inv-address', 'erin@alpha.test');
  await alicePage.fill('#inv-name', 'Erin');
  await alicePage.click('text=Create invite');
  await alicePage.waitForSelector('[data-testid=invite-link]');
  const link = await alicePage.inputValue('[data-testid=invite-link]');
  assert.match(link, /#\/enroll\?address=erin%40alpha\.test&invite=/);
  // The list is loaded again after the invite, not before the link is shown: wait for it.
  await alicePage.waitForSelector('[data-testid=users] >> text=erin@alpha.test');
  await shot('admin');

  // Erin enrols from the link the console produced.
  const erin = await browser.page();
  await enrollInBrowser(erin, link, 'Erin', 'a long enough passphrase', shooter(erin, 'enrol-erin'));
  await erin.context().close();

  await alicePage.goto(alpha.url + '/#/settings');
  await alicePage.waitForSelector('[data-testid=sessions] tbody tr');
  assert.match(await alicePage.textContent('[data-testid=sessions]'), /this browser/);
  await shot('settings');
  const next = 'an even better passphrase';
  await alicePage.fill('#pw-current', PW.alice);
  await alicePage.fill('#pw-new', next);
  await alicePage.fill('#pw-again', next);
  await alicePage.click('button:text("Change password")');
  await alicePage.waitForSelector('text=Password changed');
  await shot('password-changed');
  PW.alice = next;
  const aliceCli = alpha.cli('alice@alpha.test', next);
  assert.match(aliceCli.run('whoami'), /alice@alpha\.test/);
});

/** The phone's menu: its button says whether it is open, and the navigation shows only then.
 * `settled` first waits for the button to say `settled` (the app re-renders asynchronously). */
async function menuState(page, settled) {
  if (settled) await page.waitForSelector(`[data-testid=menu-button][aria-expanded=${settled}]`);
  return {
    expanded: await page.getAttribute('[data-testid=menu-button]', 'aria-expanded'),
    navShown: await page.isVisible('[data-testid=nav]'),
  };
}

/** Opens the menu with a tap and follows `link` (a name in the navigation) to `ready`. */
async function viaMenu(page, link, ready) {
  await page.click('[data-testid=menu-button]');
  await page.waitForSelector('[data-testid=nav]', { state: 'visible' });
  await page.click(`[data-testid=nav] >> text=${link}`);
  await page.waitForSelector(ready);
  // (Signing out leaves the shell, and the menu with it.)
  if (await page.$('[data-testid=menu-button]')) assert.deepEqual(await menuState(page, 'false'), { expanded: 'false', navShown: false }, `the menu closes after ${link}`);
}

test('on a phone (390x844): the menu reaches every screen and Write; alice writes with an attachment, bob reads it', async () => {
  // Something in alice's inbox first, with a subject too long for a phone's line.
  const note = join(work, 'treasury-liquidity-coverage-ratio-annex-2025.txt');
  writeFileSync(note, 'liquidity coverage ratio: 142 %\n');
  alpha.cli('bob@alpha.test', PW.bob).run('send', '--to', 'alice@alpha.test', '--subject', 'Liquidity coverage ratio for the third quarter, with the treasury annex', '--body', 'Alice, the ratio is in the annex. Bob', '--attach', note);
  const page = await browser.page({ phone: true });
  const shot = shooter(page, 'phone-alice');
  await loginInBrowser(page, 'alice@alpha.test', PW.alice);
  await page.waitForSelector('#folder-title');
  await page.waitForSelector('[data-testid=message-row] >> text=Liquidity coverage ratio');
  // The bar: the menu button and the search field at nearly the screen's width; no sidebar.
  assert.deepEqual(await menuState(page), { expanded: 'false', navShown: false });
  assert.equal(await page.getAttribute('[data-testid=menu-button]', 'aria-label'), 'Menu');
  const search = await page.$eval('#search', (el) => el.getBoundingClientRect().width);
  assert.ok(search >= PHONE.width - 40, `the search field is ${search}px wide`);
  await shot('inbox');

  // By keyboard: Enter opens it and moves into it, Escape closes it and comes back.
  await page.focus('[data-testid=menu-button]');
  await page.keyboard.press('Enter');
  await page.waitForSelector('[data-testid=nav]', { state: 'visible' });
  assert.deepEqual(await menuState(page, 'true'), { expanded: 'true', navShown: true });
  assert.equal(await page.getAttribute('[data-testid=menu-button]', 'aria-controls'), await page.getAttribute('[data-testid=nav]', 'id'));
  await page.waitForFunction(() => document.querySelector('[data-testid=nav]').contains(document.activeElement), null, { timeout: 5_000 }).catch(() => assert.fail('the focus moves into the menu'));
  const names = (await page.$$eval('[data-testid=nav] a, [data-testid=nav] button', (els) => els.filter((e) => e.getBoundingClientRect().height > 0).map((e) => e.textContent.trim())));
  for (const want of ['Write', 'Inbox', 'Sent', 'Archive', 'Contacts & trust', 'Settings', 'Administration', 'Sign out']) {
    assert.ok(names.some((n) => n.startsWith(want)), `the menu offers ${want} (it has ${names.join(', ')})`);
  }
  await shot('menu-open');
  await page.keyboard.press('Escape');
  assert.deepEqual(await menuState(page, 'false'), { expanded: 'false', navShown: false });
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'menu-button', 'the focus is back on the button');
  // Tabbing past its last entry closes it.
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('[data-testid=nav]').contains(document.activeElement));
  for (let i = 0; i < 12 && (await page.getAttribute('[data-testid=menu-button]', 'aria-expanded')) === 'true'; i++) await page.keyboard.press('Tab');
  assert.deepEqual(await menuState(page, 'false'), { expanded: 'false', navShown: false }, 'tabbing out of the menu closes it');
  // A tap beside the open menu closes it too.
  await page.click('[data-testid=menu-button]');
  await page.waitForSelector('[data-testid=nav]', { state: 'visible' });
  await page.mouse.click(PHONE.width - 20, PHONE.height / 2);
  assert.deepEqual(await menuState(page, 'false'), { expanded: 'false', navShown: false });

  // Every destination, through the menu.
  await viaMenu(page, 'Sent', '#folder-title >> text=Sent');
  await page.waitForSelector('[data-testid=message-row]');
  await shot('sent');
  await viaMenu(page, 'Archive', '#folder-title >> text=Archive');
  await shot('archive');
  await viaMenu(page, 'Contacts & trust', '#contacts-title');
  await page.fill('#contact-address', 'carol@alpha.test');
  await page.click('button:has-text("Look up")');
  await expectOk(page, '[data-testid=key-card]');
  await shot('contacts');
  await viaMenu(page, 'Settings', '[data-testid=sessions] tbody tr');
  await page.click('text=Set up an authenticator app');
  await page.waitForSelector('[data-testid=totp-secret]');
  await shot('settings-totp-qr');
  await viaMenu(page, 'Administration', '[data-testid=node-status]');
  await page.fill('#inv-address', 'frank.longname-of-the-treasury-department@alpha.test');
  await page.click('text=Create invite');
  await page.waitForSelector('[data-testid=invite-link]');
  await shot('admin');
  await viaMenu(page, 'Inbox', '#folder-title >> text=Inbox');

  // Write: from the menu, and from the button over the list.
  await viaMenu(page, 'Write', '[data-testid=compose]');
  await page.goBack();
  await page.waitForSelector('#folder-title >> text=Inbox');
  await page.click('[data-testid=fab-write]');
  await page.waitForSelector('[data-testid=compose]');
  const file = join(work, 'board-minutes-2025-q3-liquidity-annex-final-version.pdf');
  const content = Buffer.concat([Buffer.from('%PDF-1.4 minutes\n'), Buffer.alloc(5 * MiB, 3)]);
  writeFileSync(file, content);
  await page.fill('#compose-to', 'bob@alpha.test');
  await page.press('#compose-to', 'Enter');
  await page.waitForSelector('[data-testid=recipient][data-state=ok]');
  await page.fill('#compose-subject', 'Minutes of the board meeting, with the liquidity annex, from my phone');
  await page.fill('#compose-body', 'Hi Bob,\n\nthe minutes, typed on the train. Code word: HERON.\n\nAlice');
  await page.setInputFiles('#compose-files', file);
  await shot('composed');
  await page.click('[data-testid=send]');
  await expectOk(page, '[data-testid=sent]');
  await shot('sent-done');

  // At the desktop's size the same page has its sidebar back and no menu button.
  await page.setViewportSize(DESKTOP);
  assert.ok(await page.isVisible('[data-testid=nav]') && !(await page.isVisible('[data-testid=menu-button]')), 'a sidebar, not a menu, at 1280 px');
  await assertFits(page, 'the sent page at 1280x800');
  await page.setViewportSize(PHONE);

  await viaMenu(page, 'Sign out', '[data-testid=login-form]');
  await shot('signed-out');
  await page.context().close();

  // Bob, on his phone, reads it, asks why the sender is verified, and downloads the file.
  const bob = await browser.page({ phone: true });
  const shotB = shooter(bob, 'phone-bob');
  await loginInBrowser(bob, 'bob@alpha.test', PW.bob);
  await bob.waitForSelector('[data-testid=message-row].unread >> text=Minutes of the board meeting');
  await shotB('inbox');
  await bob.click('text=Minutes of the board meeting');
  await bob.waitForSelector('[data-testid=trust-badge][data-kind=verified]');
  await bob.click('[data-testid=trust-badge]');
  await bob.waitForSelector('[data-testid=path-panel]');
  assert.match(await bob.textContent('[data-testid=body]'), /HERON/);
  const [download] = await Promise.all([bob.waitForEvent('download'), bob.click('text=Download')]);
  const saved = join(work, 'minutes-phone.pdf');
  await download.saveAs(saved);
  assert.ok(readFileSync(saved).equals(content), 'the attachment arrives intact');
  await bob.waitForSelector('text=Decrypted and verified');
  await shotB('read-path-downloaded');
  await bob.context().close();
});

test('on a phone: the sign-in and enrolment screens fit, and so does a wrong password\'s error', async () => {
  const page = await browser.page({ phone: true });
  const shot = shooter(page, 'phone-sign-in');
  const invite = alpha.addUser('grace.hopper-montgomery@alpha.test', { name: 'Grace' });
  await page.goto(alpha.inviteLink('grace.hopper-montgomery@alpha.test', invite));
  await page.waitForSelector('[data-testid=enroll-form]');
  await shot('enrol');
  await page.fill('#enroll-name', 'Grace');
  await page.fill('#enroll-password', 'a long enough passphrase');
  await page.fill('#enroll-again', 'a long enough passphrase');
  await page.click('text=Create my key and enrol');
  await page.waitForSelector('[data-testid=welcome]', { timeout: 60_000 });
  await shot('enrolled-fingerprint');
  await page.click('text=Open my mailbox');
  await page.waitForSelector('#folder-title');
  await shot('empty-inbox');
  await viaMenu(page, 'Sign out', '[data-testid=login-form]');
  await page.fill('#login-address', 'grace.hopper-montgomery@alpha.test');
  await page.fill('#login-password', 'not the passphrase at all');
  await page.click('button[type=submit]');
  await page.waitForSelector('[data-testid=error]');
  await shot('login-error');
  await page.context().close();
});
