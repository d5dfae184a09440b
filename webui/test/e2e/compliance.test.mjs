// Issue 19, the compliance key in the browser (docs/compliance.md, "Compliance key"): alpha's
// admin installs a compliance key made by GnuPG (the node gets the public certificate only);
// alice writes to bob in the web app, which checks the CA's marking on the key the envelope
// answer lists and encrypts to it too (the node refuses a message without it); GnuPG with the
// compliance secret key decrypts what alpha stored, and bob reads the message in his browser.
// Write says before sending that a copy goes to alpha.test's compliance archive; the reader says
// so to bob.
// Screenshots at 1280x800 and 390x844 land in test-artefacts/compliance-*/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { TestNode, launchBrowser, shooter, signIn, enrolAll, gpgComplianceKey, MIN_KDF_ENV } from './harness.mjs';

const PW = { alice: 'correct horse battery staple', bob: 'purple monkey dishwasher 42' };
const BOB = 'bob@alpha.test';
const SUBJECT = 'Quarterly figures';
let alpha, browser;

/** The compliance key, made by GnuPG: its home holds the secret key the node never has. */
const key = gpgComplianceKey('alpha.test');
const gpg = key.gpg;

before(async () => {
  alpha = await TestNode.start('alpha.test', MIN_KDF_ENV);
  enrolAll(alpha, [['alice@alpha.test', { name: 'Alice Martin' }], [BOB, { name: 'Bob Baker' }]], (a) => PW[a.split('@')[0]]);
  assert.match(key.install(alpha), /Installed .* as the compliance key of alpha\.test/);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  alpha?.cleanup();
  key.cleanup();
});

test('alice sends from the web app: encrypted to the compliance key too, which GnuPG decrypts; bob reads it', async () => {
  const org = await (await fetch(`${alpha.url}/api/v1/org`)).json();
  assert.ok(org.compliance_key, 'the organisation record publishes the compliance key');

  const page = await browser.page();
  const shot = shooter(page, 'compliance-send');
  await signIn(page, alpha.url, 'alice@alpha.test', PW.alice);
  await page.click('[data-testid=nav] >> text=Write');
  await page.fill('#compose-to', BOB);
  await page.press('#compose-to', 'Enter');
  await page.waitForSelector('[data-testid=recipient][data-state=ok]', { timeout: 60_000 });
  // Said before sending: a copy also goes to alpha.test's compliance archive.
  const note = await page.waitForSelector('[data-testid=compliance-note]');
  assert.equal(await note.getAttribute('data-domains'), 'alpha.test');
  assert.match(await note.textContent(), /A copy also goes to the compliance archive of alpha\.test/);
  await page.fill('#compose-subject', SUBJECT);
  await page.fill('#compose-body', 'Revenue up, costs flat. Code word: OSPREY.');
  await shot('written');
  await page.click('[data-testid=send]');
  await page.waitForSelector('[data-testid=sent], [data-testid=error]', { timeout: 90_000 });
  if (await page.$('[data-testid=error]')) assert.fail(`the app says: ${await page.textContent('[data-testid=error]')}`);
  await shot('sent');

  // What alpha stored, decrypted by GnuPG with the compliance secret key (which the node never had).
  const id = execFileSync('sqlite3', [join(alpha.data, 'sealpost.db'), 'SELECT id FROM messages ORDER BY accepted_at DESC LIMIT 1']).toString().trim();
  const hex = execFileSync('sqlite3', [join(alpha.data, 'sealpost.db'), `SELECT hex(data) FROM parts WHERE message_id = '${id}' AND idx = 0`]).toString().trim();
  // alice's key, as anyone gets it from her organisation's directory: GnuPG checks her signature.
  gpg(['--import'], await (await fetch(`${alpha.url}/vks/v1/by-email/${encodeURIComponent('alice@alpha.test')}`)).text());
  const plain = key.decrypt(Buffer.from(hex, 'hex'));
  assert.match(plain, new RegExp(SUBJECT));
  assert.match(plain, /OSPREY/);

  const bobPage = await browser.page();
  const bobShot = shooter(bobPage, 'compliance-read');
  await signIn(bobPage, alpha.url, BOB, PW.bob);
  await bobPage.click(`text=${SUBJECT}`);
  await bobPage.waitForSelector('text=OSPREY', { timeout: 60_000 });
  // Said when reading: the copy went to alpha.test's compliance archive.
  const copy = await bobPage.waitForSelector('[data-testid=compliance-copy]');
  assert.equal(await copy.getAttribute('data-domains'), 'alpha.test');
  assert.match(await copy.textContent(), /A copy of this message went to the compliance archive of alpha\.test/);
  await bobShot('read');
});
