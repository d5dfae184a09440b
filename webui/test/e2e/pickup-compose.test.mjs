// The sender's side of a pickup in the web app on a phone (390x844), against a real node in
// pickup mode: compose says carol@outside.test is reached by an unlock code and does not block
// on trust, the node accepts the seal, the code is shown once with Copy and Print, and the
// printed page carries the code only. The test then checks what went to the node as the node
// and carol would: the unlock code's verifier, the locked key it opens, the head and the
// attachment encrypted to that key, the envelope binding carol to it, the organisation's KDF
// (`GET /org` `kdf`) used for the code; and carol opens it on the node's pickup page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestNode, launchBrowser, shooter, signIn, bearerLogin, MIN_KDF, MIN_KDF_ENV, WEBUI, ARTEFACTS } from './harness.mjs';
import { load } from '../unit/bundle.mjs';

const pc = await load(join(WEBUI, 'test/unit/pickup-entry.ts'), ['browser']);
const { pgp } = pc;
const PW = { alice: 'correct horse battery staple', bob: 'purple monkey dishwasher 42' };
const CAROL = 'carol@outside.test';
const work = mkdtempSync(join(tmpdir(), 'sealpost-pickup-compose-'));
let alpha, browser;

before(async () => {
  alpha = await TestNode.start('alpha.test', MIN_KDF_ENV);
  for (const who of ['alice', 'bob']) {
    const invite = alpha.addUser(`${who}@alpha.test`);
    alpha.cli(`${who}@alpha.test`, PW[who]).run('enroll', '--invite', invite, '--address', `${who}@alpha.test`);
  }
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  alpha?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

test('compose on a phone (real node): alice writes to bob and carol@outside.test, is told carol needs an unlock code, sends, sees the code once with Copy and Print; the print carries the code only', async () => {
  const org = await (await fetch(`${alpha.url}/api/v1/org`)).json();
  assert.deepEqual(org.kdf, MIN_KDF, 'the node publishes the organisation\'s login KDF');
  const page = await browser.page({ phone: true });
  const shot = shooter(page, 'pickup-compose');
  const submitted = [];
  const uploads = [];
  let answer = null;
  page.on('request', (r) => {
    if (r.method() === 'POST' && r.url().endsWith('/api/v1/messages')) submitted.push(JSON.parse(r.postData()));
    if (r.method() === 'PUT' && r.url().includes('/api/v1/blobs')) uploads.push(r.postDataBuffer());
  });
  page.on('response', async (r) => { if (r.request().method() === 'POST' && r.url().endsWith('/api/v1/messages')) answer = { status: r.status(), body: await r.json() }; });
  await signIn(page, alpha.url, 'alice@alpha.test', PW.alice);
  await shot('mailbox');
  // On a phone the navigation is in a menu; Write is in it.
  if (!(await page.isVisible('text=Write'))) await page.click('[data-testid=menu-button]');
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
  const content = Buffer.concat([Buffer.from('%PDF-1.4 offer\n'), randomBytes(80_000)]);
  writeFileSync(file, content);
  await page.setInputFiles('#compose-files', file);
  await shot('composed-with-outside-recipient');
  await page.click('[data-testid=send]');
  await page.waitForSelector('[data-testid=muc-dialog], [data-testid=error]', { timeout: 60_000 });
  const err = await page.$('[data-testid=error]');
  if (err) assert.fail(`the app says: ${await err.textContent()}`);
  const shown = (await page.textContent(`[data-testid=muc][data-address="${CAROL}"] [data-testid=muc-code]`)).replace(/\s+/g, '');
  assert.match(shown, /^[0-9A-HJKMNP-TV-Z]{16}$/);
  assert.match(await page.textContent('[data-testid=muc-dialog]'), /by phone, SMS or letter, not by e-mail/);
  assert.ok(await page.isVisible('[data-testid=muc-copy]'), 'a Copy button');
  assert.ok(await page.isVisible('[data-testid=muc-print]'), 'a Print button');
  // The node accepted it as a pickup and gave the link to the sender, once.
  assert.equal(answer?.status, 201, JSON.stringify(answer));
  const carolAnswer = answer.body.recipients.find((r) => r.address === CAROL);
  assert.equal(carolAnswer.state, 'pickup');
  assert.equal(await page.textContent('[data-testid=muc-link]'), carolAnswer.link);
  assert.ok(carolAnswer.link.startsWith(`${alpha.url}/pickup#`));
  await shot('unlock-code-shown-once');
  // Copy puts the code (and only it) on the clipboard.
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: alpha.url });
  await page.click('[data-testid=muc-copy]');
  await page.waitForSelector('[data-testid=muc-copy] >> text=Copied');
  const clip = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(clip.replace(/[\s-]/g, ''), shown);
  // Printed: the code and the instruction only, no navigation, buttons or link.
  await page.emulateMedia({ media: 'print' });
  assert.equal(await page.isVisible('[data-testid=muc-print]'), false, 'no buttons on paper');
  assert.equal(await page.isVisible('[data-testid=muc-copy]'), false, 'no buttons on paper');
  assert.equal(await page.isVisible('nav, .sidebar, [data-testid=menu-button]'), false, 'no navigation on paper');
  assert.ok(await page.isVisible('[data-testid=muc-code]'));
  assert.equal(await page.isVisible('[data-testid=muc-link]'), false, 'the link is not printed with the code');
  const printed = await page.evaluate(() => {
    const out = [];
    const walk = (el) => { for (const c of el.children) { const st = getComputedStyle(c); if (st.display === 'none' || st.visibility === 'hidden') continue; if (!c.children.length && c.textContent.trim()) out.push(c.textContent.trim()); walk(c); } };
    walk(document.body);
    return out.join('\n');
  });
  assert.ok(!printed.includes('/pickup#'), 'no link on paper');
  assert.ok(!printed.includes('PELICAN-12') && !printed.includes('Your loan offer'), 'nothing of the message on paper');
  await page.screenshot({ path: join(ARTEFACTS, 'pickup-compose', 'unlock-code-printed.390x844.png'), fullPage: true });
  await page.pdf?.({ path: join(ARTEFACTS, 'pickup-compose', 'unlock-code-printed.pdf') }).catch(() => {});
  await page.emulateMedia({ media: 'screen' });

  // The seal, as the node and carol see it.
  assert.equal(submitted.length, 1);
  const sub = submitted[0];
  const env = JSON.parse(sub.envelope);
  assert.deepEqual(env.to, ['bob@alpha.test', CAROL]);
  assert.equal(sub.pickups.length, 1);
  const seal = sub.pickups[0];
  assert.equal(seal.address, CAROL);
  assert.deepEqual(seal.kdf, org.kdf, 'the code is derived with the organisation\'s login KDF');
  const pickupCert = await pgp.readCert(seal.cert);
  assert.equal(env.pickup[CAROL], pickupCert.getFingerprint().toUpperCase(), 'the signed envelope binds carol to her pickup key');
  assert.ok(await pgp.fullyLocked(seal.locked_key));
  const keys = await pc.derivePickupKeys(pc.parseMuc(shown), Buffer.from(seal.salt, 'base64'), seal.kdf);
  assert.equal(Buffer.from(keys.verifier).toString('base64').replace(/=+$/, ''), seal.verifier, 'the verifier is the code\'s');
  const carolKey = await pc.unlockPickupKey(seal.locked_key, keys.wrap);
  const aliceCert = await pgp.readCert(await (await fetch(`${alpha.url}/vks/v1/by-email/alice%40alpha.test`)).text());
  await pgp.verifyDetached(new TextEncoder().encode(sub.envelope), sub.signature, aliceCert);
  const head = JSON.parse(new TextDecoder().decode((await pgp.open(Buffer.from(sub.inline_parts['0'], 'base64'), carolKey, aliceCert)).data));
  assert.match(head.body, /PELICAN-12/);
  // The attachment as the node stores it (streamed up by XHR, whose body the browser does not
  // show): fetched back as alice.
  const bearer = await bearerLogin(alpha.url, 'alice@alpha.test', PW.alice);
  const part = await fetch(`${alpha.url}/api/v1/messages/${env.message_id}/parts/1`, { headers: { authorization: `Bearer ${bearer}` } });
  assert.equal(part.status, 200);
  const attCipher = Buffer.from(await part.arrayBuffer());
  assert.equal(uploads.length, 1, 'the attachment was uploaded, not inlined');
  assert.ok(Buffer.from((await pgp.open(attCipher, carolKey, aliceCert)).data).equals(content), 'the attachment is encrypted to carol\'s pickup key too');
  // Nothing of the code left the browser, nor sits in its storage or address bar.
  for (const body of [JSON.stringify(sub), attCipher.toString('latin1')]) assert.ok(!body.includes(shown) && !body.includes(pc.groupMuc(shown)));
  assert.ok(!(await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + location.href)).includes(shown));

  // Shown once: dismissed, it is gone.
  await page.click('[data-testid=muc-done]');
  await page.waitForSelector('[data-testid=sent]');
  assert.match(await page.textContent('[data-testid=sent-pickup]'), /carol@outside\.test gets a notification mail/);
  assert.ok(!(await page.content()).includes(shown));
  await shot('sent');
  await page.context().close();

  // And the node's pickup page opens it with that code.
  const carol = await browser.page({ phone: true });
  await carol.goto(carolAnswer.link);
  await carol.waitForSelector('[data-testid=pickup-form]');
  await carol.fill('#pickup-code', pc.groupMuc(shown));
  await carol.click('[data-testid=pickup-unlock]');
  await carol.waitForSelector('[data-testid=pickup-message]', { timeout: 60_000 });
  assert.match(await carol.textContent('[data-testid=pickup-body]'), /PELICAN-12/);
  await carol.context().close();
});
