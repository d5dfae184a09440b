// The pickup page (dist/pickup.html) in Debian's Chromium against a real node: messages are
// sent by alice's CLI client (the Rust seal, the link and unlock code it prints once), the page
// is served by the node with its CSP, every answer is the node's. What the page must say for a
// link that opens nothing (locked, withdrawn, expired, unknown, missing) is checked here, each
// against the node's real state; expiry is the node's own sweeper, after the pickup's time is
// moved into the past in its database while it is stopped. The whole flow with the notification
// mail and the browser's own compose is pickup.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, statSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestNode, launchBrowser, shooter, assertFits, bearerLogin, until, MIN_KDF_ENV, WEBUI } from './harness.mjs';
import { load } from '../unit/bundle.mjs';

const pc = await load(join(WEBUI, 'test/unit/pickup-entry.ts'), ['browser']);
const { pgp } = pc;
const PW = { alice: 'correct horse battery staple', bob: 'purple monkey dishwasher 42' };
const work = mkdtempSync(join(tmpdir(), 'sealpost-pickup-page-'));
let alpha, browser, alice;

before(async () => {
  alpha = await TestNode.start('alpha.test', MIN_KDF_ENV);
  for (const [who, name] of [['alice', 'Alice Martin'], ['bob', 'Bob Baker']]) {
    const invite = alpha.addUser(`${who}@alpha.test`, { name });
    alpha.cli(`${who}@alpha.test`, PW[who]).run('enroll', '--invite', invite, '--address', `${who}@alpha.test`, '--name', name);
  }
  alice = alpha.cli('alice@alpha.test', PW.alice);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  alpha?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

/** Opens `link` as a new document (a fragment-only change would not reload the page). */
async function open(page, link) {
  await page.goto('about:blank');
  await page.goto(link);
}

/** The node's link, at the node's current address. */
const at = (link) => alpha.url + link.slice(link.indexOf('/pickup#'));

/** A fresh browser context on a phone, recording the console and every request. */
async function phonePage() {
  const page = await browser.page({ phone: true });
  const consoleText = [];
  const requests = [];
  page.on('console', (m) => consoleText.push(m.text()));
  page.on('request', (r) => requests.push({ method: r.method(), url: r.url(), headers: JSON.stringify(r.headers()), body: r.postDataBuffer()?.toString('latin1') ?? '' }));
  return { page, consoleText, requests };
}

/** What the node holds of `address`'s pickup. */
function pickupRow(address) {
  const out = alpha.sql(`SELECT state, locked_key IS NULL, key_for_sender IS NULL, verifier_hash IS NULL, (SELECT count(*) FROM pickup_sessions s WHERE s.pickup_id = p.id) FROM pickups p WHERE address = '${address}'`).trim();
  const [state, noKey, noSenderCopy, noVerifier, sessions] = out.split('|');
  return { state, shredded: noKey === '1' && noSenderCopy === '1' && noVerifier === '1', sessions: Number(sessions) };
}

/** Every file of the node's data directory, and whether any holds `needle`. */
function dataHolds(needle) {
  const files = [];
  const walk = (d) => { for (const e of readdirSync(d)) { const p = join(d, e); const st = statSync(p); if (st.isDirectory()) walk(p); else if (st.isFile()) files.push(p); } };
  walk(alpha.data);
  return files.filter((f) => readFileSync(f).includes(needle));
}

test('pickup page (real node): carol opens what alice\'s CLI sent, on a phone; malformed codes are refused before any request, a wrong one shows the attempts left, the right one typed loosely opens, the page says what was verified, the attachment downloads byte-identical', async () => {
  const file = join(work, 'loan-offer.pdf');
  const attachment = Buffer.concat([Buffer.from('%PDF-1.4 loan offer\n'), randomBytes(200_000)]);
  writeFileSync(file, attachment);
  const sent = alice.send('--to', 'bob@alpha.test', '--to', 'carol@outside.test', '--subject', 'Your loan offer', '--body', 'Dear Carol,\n\nplease find the offer attached. The reference is ZEPHYR-77.\n\nAlice Martin\nAlpha Bank', '--attach', file);
  const { link, muc } = sent.pickups['carol@outside.test'];
  const token = link.slice(link.indexOf('#') + 1);

  const { page, consoleText, requests } = await phonePage();
  let session = null;
  page.on('response', async (r) => { if (r.url().endsWith('/api/v1/pickup/unlock') && r.ok()) session = (await r.json()).session; });
  const shot = shooter(page, 'pickup-page');
  await page.goto(at(link));
  await page.waitForSelector('[data-testid=pickup-form]');
  assert.ok(!page.url().includes('#') && !page.url().includes(token), 'the token is gone from the address bar');
  assert.equal(await page.evaluate(() => location.hash), '');
  assert.match(await page.textContent('[data-testid=pickup-sender]'), /Alice Martin \(alice@alpha\.test\)/);
  await shot('code-asked');

  // Malformed input is refused before any request.
  const unlocks = () => requests.filter((r) => r.url.endsWith('/api/v1/pickup/unlock')).length;
  await page.fill('#pickup-code', 'ABCD-EFGH');
  await page.click('[data-testid=pickup-unlock]');
  await page.waitForSelector('[data-testid=error]');
  assert.match(await page.textContent('[data-testid=error]'), /too short: 8 of 16/);
  await page.fill('#pickup-code', 'ABCD-EFGH-JKMN-PQRU');
  await page.click('[data-testid=pickup-unlock]');
  await page.waitForSelector('[data-testid=error] >> text=cannot contain “U”');
  assert.equal(unlocks(), 0);

  // A wrong code: the node counts it, the page says how many are left.
  await page.fill('#pickup-code', pc.groupMuc(pc.generateMuc()));
  await page.click('[data-testid=pickup-unlock]');
  await page.waitForSelector('[data-testid=error] >> text=Wrong code');
  assert.match(await page.textContent('[data-testid=error]'), /4 attempts left/);
  await shot('wrong-code');

  // The right one, typed loosely: lower case, spaces, an O for each 0.
  const typed = muc.toLowerCase().replace(/-/g, ' ').replace(/0/g, 'o');
  await page.fill('#pickup-code', typed);
  await page.click('[data-testid=pickup-unlock]');
  await page.waitForSelector('[data-testid=pickup-message], [data-testid=pickup-form] [data-testid=error], [data-testid=pickup-gone]', { timeout: 60_000 });
  if (!(await page.$('[data-testid=pickup-message]'))) assert.fail(`the pickup page says: ${await page.textContent('main')}`);
  assert.match(await page.textContent('[data-testid=pickup-body]'), /ZEPHYR-77/);
  const aliceCert = await pgp.readCert(await (await fetch(`${alpha.url}/vks/v1/by-email/alice%40alpha.test`)).text());
  const org = await (await fetch(`${alpha.url}/api/v1/org`)).json();
  const verified = (await page.textContent('[data-testid=pickup-verified]')).replace(/\s+/g, '');
  assert.match(verified, /Signedbyalice@alpha\.test/);
  assert.ok(verified.includes(aliceCert.getFingerprint().toUpperCase()), 'the sender key\'s fingerprint is shown');
  assert.ok(verified.includes(org.ca_fingerprint.toUpperCase()), 'the CA fingerprint is shown');
  assert.match(await page.textContent('[data-testid=ca-line]'), /^✔ That key is certified by alpha\.test/);
  assert.match(verified, /Notchecked/);
  await shot('message-read');

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('text=Download')]);
  const saved = join(work, 'carol-loan-offer.pdf');
  await download.saveAs(saved);
  assert.ok(readFileSync(saved).equals(attachment), 'the attachment arrives byte-identical');
  await page.waitForSelector('text=Decrypted and verified');
  await shot('attachment-downloaded');
  assert.equal(pickupRow('carol@outside.test').state, 'open', 'read, not locked or shredded');

  // Nothing secret in a URL, the console or web storage; the MUC never leaves the page; the
  // session only in Authorization, and only to the pickup API.
  assert.ok(session, 'the unlock answer was seen');
  const normal = pc.parseMuc(muc);
  for (const q of requests) {
    for (const secret of [token, session, normal, muc]) assert.ok(!q.url.includes(secret), `a secret in ${q.url}`);
    assert.ok(!q.body.includes(normal) && !q.body.includes(muc) && !q.headers.includes(normal) && !q.headers.includes(muc), `the MUC was sent to ${q.url}`);
    assert.ok(!q.body.includes(session), `the session was sent in the body of ${q.url}`);
    if (q.headers.includes(session)) assert.match(q.url, /\/api\/v1\/pickup\//, `the session went to ${q.url}`);
  }
  assert.ok(!consoleText.some((t) => t.includes(normal) || t.includes(muc) || t.includes(token) || t.includes(session)), 'no secret in the console');
  assert.equal(await page.evaluate(() => localStorage.length + sessionStorage.length), 0);
  await page.context().close();
});

test('pickup page (real node): locked after the last wrong code, withdrawn, unknown and missing links say so in plain words', async () => {
  const { page } = await phonePage();
  const shot = shooter(page, 'pickup-page-states');

  // Locked: five wrong codes typed on the page; the fifth locks, for good.
  const { link: daveLink } = alice.send('--to', 'dave@outside.test', '--subject', 'Account statement', '--body', 'Your statement.').pickups['dave@outside.test'];
  await page.goto(at(daveLink));
  await page.waitForSelector('[data-testid=pickup-form]');
  for (let left = 4; left >= 1; left--) {
    await page.fill('#pickup-code', pc.groupMuc(pc.generateMuc()));
    await page.click('[data-testid=pickup-unlock]');
    await page.waitForSelector(`[data-testid=error] >> text=${left} attempt${left === 1 ? '' : 's'} left`);
  }
  await page.fill('#pickup-code', pc.groupMuc(pc.generateMuc()));
  await page.click('[data-testid=pickup-unlock]');
  await page.waitForSelector('[data-testid=pickup-gone]');
  assert.match(await page.textContent('[data-testid=pickup-gone]'), /Locked after too many wrong codes.*Ask the sender for a new unlock code/s);
  assert.equal(pickupRow('dave@outside.test').state, 'locked');
  await shot('locked');
  // Opening a locked pickup again says so before any code is typed.
  await open(page, at(daveLink));
  await page.waitForSelector('[data-testid=pickup-gone] >> text=Locked');

  // Withdrawn by alice before it was read: the page says so, the node holds no key for it.
  const erin = alice.send('--to', 'erin@outside.test', '--subject', 'Draft contract', '--body', 'The draft.');
  const token = await bearerLogin(alpha.url, 'alice@alpha.test', PW.alice);
  const w = await fetch(`${alpha.url}/api/v1/messages/${erin.id}/pickups/withdraw`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ address: 'erin@outside.test' }) });
  assert.ok(w.ok, `withdraw: ${w.status} ${await w.text()}`);
  await open(page, at(erin.pickups['erin@outside.test'].link));
  await page.waitForSelector('[data-testid=pickup-gone]');
  assert.match(await page.textContent('[data-testid=pickup-gone]'), /withdrew this message/);
  assert.deepEqual(pickupRow('erin@outside.test'), { state: 'withdrawn', shredded: true, sessions: 0 });
  await shot('withdrawn');

  // A link that was never issued, and the page without any.
  await open(page, `${alpha.url}/pickup#${randomBytes(32).toString('base64url')}`);
  await page.waitForSelector('[data-testid=pickup-gone] >> text=does not open a message');
  await shot('unknown-link');
  await open(page, `${alpha.url}/pickup`);
  await page.waitForSelector('[data-testid=pickup-gone] >> text=Open the link from your mail');
  await shot('no-token');
  await assertFits(page, 'the pickup page without a token');
  await page.context().close();
});

test('pickup page (real node): expired while the node was stopped; its sweeper shreds the pickup at start, the page says it expired, the node keeps no key, verifier or session for it, and the right code opens nothing', async () => {
  const FRANK = 'frank@outside.test';
  const sent = alice.send('--to', FRANK, '--subject', 'Offer, valid a month', '--body', 'The offer.');
  const { link, muc } = sent.pickups[FRANK];
  // A piece of the locked key as the node stores it, to look for in its files afterwards.
  const lockedKey = alpha.sql(`SELECT locked_key FROM pickups WHERE address = '${FRANK}'`);
  const needle = Buffer.from(lockedKey.split('\n').filter((l) => /^[A-Za-z0-9+/]{60,}$/.test(l))[3]);
  assert.ok(needle.length >= 60 && dataHolds(needle).length > 0, 'the locked key is held before expiry');
  // The right code's verifier, as carol's browser would send it.
  const [salt, kdf] = alpha.sql(`SELECT salt, kdf FROM pickups WHERE address = '${FRANK}'`).trim().split('|');
  const keys = await pc.derivePickupKeys(pc.parseMuc(muc), Buffer.from(salt, 'base64'), JSON.parse(kdf));
  const rightVerifier = Buffer.from(keys.verifier).toString('base64').replace(/=+$/, '');

  // Time passes: the pickup's end moves into the past while the node is down; the node's
  // sweeper runs when it starts (and every minute after).
  await alpha.restart(() => {
    alpha.sql(`UPDATE pickups SET expires_at = strftime('%s','now') - 60 WHERE address = '${FRANK}'`);
  });
  await until('the sweeper expiring the pickup', 30_000, async () => pickupRow(FRANK).state === 'expired');
  assert.deepEqual(pickupRow(FRANK), { state: 'expired', shredded: true, sessions: 0 });

  const { page } = await phonePage();
  const shot = shooter(page, 'pickup-page-expired');
  await page.goto(at(link));
  await page.waitForSelector('[data-testid=pickup-gone]');
  assert.match(await page.textContent('[data-testid=pickup-gone]'), /has expired.*nobody can open it any more/s);
  await shot('expired');
  // The right code opens nothing either.
  const r = await fetch(`${alpha.url}/api/v1/pickup/unlock`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: link.slice(link.indexOf('#') + 1), verifier: rightVerifier }) });
  assert.equal(r.status, 410);
  assert.equal((await r.json()).code, 'pickup_expired');
  await page.context().close();
  expiredNeedle = needle;
});

// Shredded on disk too: the node overwrites what it deletes (SQLite `secure_delete`) and
// empties the WAL after a shred, so no file holds the expired pickup's locked key.
let expiredNeedle;
test('pickup page (real node): no file of the node still holds the expired pickup\'s locked key', () => {
  assert.ok(expiredNeedle, 'the expiry test ran');
  assert.deepEqual(dataHolds(expiredNeedle), [], 'no file of the node holds the expired pickup\'s locked key');
});
