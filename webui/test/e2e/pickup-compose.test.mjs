// The sender's side of a pickup in the web app, against a real node whose answers for the
// outside recipient are stood in for (the node's pickup mode is branch `pickup`'s): compose
// says carol@outside.test is reached by an unlock code and does not block on trust, the seal
// goes to POST /messages, the MUC is shown once (both screen sizes). The test then checks the
// seal as the node and carol would: the MUC's verifier, the locked key it unlocks, the head
// encrypted to that key, the envelope binding carol to it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestNode, launchBrowser, shooter, signIn, WEBUI, ARTEFACTS } from './harness.mjs';
import { load } from '../unit/bundle.mjs';

const { pgp, pc } = await load(join(WEBUI, 'test/e2e/pickup-fixture.ts'), ['browser']);
const PW = { alice: 'correct horse battery staple', bob: 'purple monkey dishwasher 42' };
const CAROL = 'carol@outside.test';
const work = mkdtempSync(join(tmpdir(), 'sealpost-pickup-compose-'));
let alpha, browser;

before(async () => {
  alpha = await TestNode.start('alpha.test');
  for (const who of ['alice', 'bob']) {
    const invite = alpha.addUser(`${who}@alpha.test`);
    alpha.cli(`${who}@alpha.test`, PW[who]).run('enroll', '--invite', invite, '--address', `${who}@alpha.test`);
  }
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  alpha?.cleanup();
});

/** What the node answers for an outside address in pickup mode (docs/pickup.md). */
const pickupRecipient = { address: CAROL, fingerprint: '', cert: '', mode: 'pickup', verdict: { fingerprint: '', address: CAROL, level: 'none', amount: 0, why_not: 'pickup', explanation: ['no key: reached by pickup with a Message Unlock Code'] } };

/** Stands in for the node's pickup mode: envelope requests naming carol get her as a pickup
 * recipient (the rest resolved by the node), submissions are captured and answered with a link. */
async function standIn(page) {
  const submitted = [];
  const token = randomBytes(32).toString('base64url');
  await page.route('**/api/v1/trust/*', async (route) => {
    if (!route.request().url().includes(encodeURIComponent(CAROL))) return route.fallback();
    return route.fulfill({ json: { keys: [] } });
  });
  await page.route('**/api/v1/envelopes', async (route) => {
    const body = JSON.parse(route.request().postData());
    if (!body.to.includes(CAROL)) return route.fallback();
    const others = body.to.filter((a) => a !== CAROL);
    const real = others.length ? await (await route.fetch({ postData: JSON.stringify({ to: others }) })).json() : { message_id: randomBytes(16).toString('hex'), expires_at: 0, recipients: [] };
    const recipients = body.to.map((a) => (a === CAROL ? pickupRecipient : real.recipients.find((r) => r.address === a)));
    return route.fulfill({ json: { ...real, recipients } });
  });
  await page.route('**/api/v1/messages', async (route) => {
    if (route.request().method() !== 'POST') return route.fallback();
    const body = JSON.parse(route.request().postData());
    submitted.push(body);
    const env = JSON.parse(body.envelope);
    return route.fulfill({ json: { message_id: env.message_id, accepted_at: 0, duplicate: false, recipients: env.to.map((a) => (a === CAROL ? { address: a, state: 'pickup', link: `${alpha.url}/pickup#${token}` } : { address: a, state: 'delivered' })) } });
  });
  return { submitted, token };
}

test('compose (stand-in pickup mode): alice writes to bob and carol@outside.test, is told carol needs an unlock code, sends, and sees the code once', async () => {
  const page = await browser.page();
  const shot = shooter(page, 'pickup-compose');
  const { submitted, token } = await standIn(page);
  const uploads = [];
  page.on('request', (r) => { if (r.method() === 'PUT' && r.url().endsWith('/api/v1/blobs')) uploads.push(r.postDataBuffer()); });
  await signIn(page, alpha.url, 'alice@alpha.test', PW.alice);
  await page.click('text=Write');
  await page.fill('#compose-to', 'bob@alpha.test');
  await page.press('#compose-to', 'Enter');
  await page.waitForSelector('[data-testid=recipient][data-state=ok]');
  await page.fill('#compose-to', CAROL);
  await page.waitForSelector('[data-testid=lookup] >> text=no Sealpost key');
  await page.press('#compose-to', 'Enter');
  await page.waitForSelector('[data-testid=recipient][data-state=pickup]');
  assert.match(await page.textContent('[data-testid=pickup-note]'), /carol@outside\.test has no Sealpost key: they will get a notification mail and need an unlock code/);
  assert.equal(await page.$('[data-testid=refusal]'), null, 'carol is not refused for want of a trusted key');
  await page.fill('#compose-subject', 'Your loan offer');
  await page.fill('#compose-body', 'Dear Carol,\n\nthe offer is attached. Reference PELICAN-12.\n\nAlice');
  const file = join(work, 'loan-offer.pdf');
  writeFileSync(file, Buffer.concat([Buffer.from('%PDF-1.4 offer\n'), randomBytes(80_000)]));
  await page.setInputFiles('#compose-files', file);
  await shot('composed-with-outside-recipient');
  await page.click('[data-testid=send]');
  await page.waitForSelector('[data-testid=muc-dialog], [data-testid=error]', { timeout: 60_000 });
  const err = await page.$('[data-testid=error]');
  if (err) assert.fail(`the app says: ${await err.textContent()}`);
  const shown = (await page.textContent(`[data-testid=muc][data-address="${CAROL}"] [data-testid=muc-code]`)).replace(/\s+/g, '');
  assert.match(shown, /^[0-9A-HJKMNP-TV-Z]{16}$/);
  assert.match(await page.textContent('[data-testid=muc-dialog]'), /by phone, SMS or letter, not by e-mail/);
  assert.equal(await page.textContent('[data-testid=muc-link]'), `${alpha.url}/pickup#${token}`);
  await shot('unlock-code-shown-once');
  // Printed: the codes and the instruction only, no navigation or buttons.
  await page.emulateMedia({ media: 'print' });
  assert.equal(await page.isVisible('[data-testid=muc-print]'), false, 'no buttons on paper');
  assert.equal(await page.isVisible('nav, .sidebar'), false, 'no navigation on paper');
  assert.ok(await page.isVisible('[data-testid=muc-code]'));
  assert.equal(await page.isVisible('[data-testid=muc-link]'), false, 'the link is not printed with the code');
  await page.screenshot({ path: join(ARTEFACTS, 'pickup-compose', 'unlock-code-printed.png'), fullPage: true });
  await page.emulateMedia({ media: 'screen' });

  // The seal, as the node and carol see it.
  assert.equal(submitted.length, 1);
  const sub = submitted[0];
  const env = JSON.parse(sub.envelope);
  assert.deepEqual(env.to, ['bob@alpha.test', CAROL]);
  assert.equal(sub.pickups.length, 1);
  const seal = sub.pickups[0];
  assert.equal(seal.address, CAROL);
  const pickupCert = await pgp.readCert(seal.cert);
  assert.equal(env.pickup[CAROL], pickupCert.getFingerprint().toUpperCase(), 'the signed envelope binds carol to her pickup key');
  assert.ok(await pgp.fullyLocked(seal.locked_key));
  const keys = await pc.derivePickupKeys(pc.parseMuc(shown), Buffer.from(seal.salt, 'base64'), seal.kdf);
  assert.equal(Buffer.from(keys.verifier).toString('base64').replace(/=+$/, ''), seal.verifier, 'the verifier is the MUC\'s');
  const carolKey = await pc.unlockPickupKey(seal.locked_key, keys.wrap);
  const aliceCert = await pgp.readCert((await (await fetch(`${alpha.url}/vks/v1/by-email/alice%40alpha.test`)).text()));
  await pgp.verifyDetached(new TextEncoder().encode(sub.envelope), sub.signature, aliceCert);
  const head = JSON.parse(new TextDecoder().decode((await pgp.open(Buffer.from(sub.inline_parts['0'], 'base64'), carolKey, aliceCert)).data));
  assert.match(head.body, /PELICAN-12/);
  assert.equal(uploads.length, 1);
  assert.equal((await pgp.open(uploads[0], carolKey, aliceCert)).data.length, head.attachments[0].size, 'the attachment is encrypted to carol\'s pickup key too');
  // Nothing of the MUC left the browser, nor sits in its storage.
  for (const body of [JSON.stringify(sub), ...uploads.map((u) => u.toString('latin1'))]) assert.ok(!body.includes(shown) && !body.includes(pc.groupMuc(shown)));
  assert.ok(!(await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + location.href)).includes(shown));

  // Shown once: dismissed, it is gone.
  await page.click('[data-testid=muc-done]');
  await page.waitForSelector('[data-testid=sent]');
  assert.match(await page.textContent('[data-testid=sent-pickup]'), /carol@outside\.test gets a notification mail/);
  assert.ok(!(await page.content()).includes(shown));
  await shot('sent');
  await page.context().close();
});
