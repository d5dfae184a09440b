// Issue 19, the compliance key in the browser (docs/compliance.md, "Compliance key"): alpha's
// admin installs a compliance key made by GnuPG (the node gets the public certificate only);
// alice writes to bob in the web app, which checks the CA's marking on the key the envelope
// answer lists and encrypts to it too (the node refuses a message without it); GnuPG with the
// compliance secret key decrypts what alpha stored, and bob reads the message in his browser.
// Write says before sending that a copy goes to alpha.test's compliance archive; the reader says
// so to bob. A PGP/MIME mail that arrives by SMTP encrypted by GnuPG to bob only waits for the
// compliance session-key packet; bob opens it in the web app, which adds the packet, and the
// waiting flag clears (GnuPG with the compliance key then decrypts the archive's copy).
// Screenshots at 1280x800 and 390x844 land in test-artefacts/compliance-*/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { TestNode, freePort, launchBrowser, shooter, signIn, enrolAll, gpgComplianceKey, until, MIN_KDF_ENV } from './harness.mjs';

const PW = { alice: 'correct horse battery staple', bob: 'purple monkey dishwasher 42' };
const BOB = 'bob@alpha.test';
const SUBJECT = 'Quarterly figures';
let alpha, browser, smtpPort;

/** The compliance key, made by GnuPG: its home holds the secret key the node never has. */
const key = gpgComplianceKey('alpha.test');
const gpg = key.gpg;

before(async () => {
  smtpPort = await freePort();
  alpha = await TestNode.start('alpha.test', {
    ...MIN_KDF_ENV,
    SEALPOST__SMTP_IN__ENABLED: 'true',
    SEALPOST__SMTP_IN__LISTEN: `127.0.0.1:${smtpPort}`,
  });
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

/** One value of alpha's database. */
function sql(query) {
  return execFileSync('sqlite3', [join(alpha.data, 'sealpost.db'), query]).toString().trim();
}

test('a PGP/MIME mail encrypted to bob only waits for the compliance packet; opening it in the web app adds it', async () => {
  // An outside sender's GnuPG encrypts to bob's key only (from alpha's directory) and mails it.
  gpg(['--import'], await (await fetch(`${alpha.url}/vks/v1/by-email/${encodeURIComponent(BOB)}`)).text());
  const armored = gpg(['--armor', '--encrypt', '--trust-model', 'always', '--recipient', BOB],
    'Content-Type: text/plain\r\nSubject: Sealed offer\r\n\r\nOur offer stands. Code word: HERON.\r\n').toString();
  // RFC 3156 PGP/MIME, CRLF line ends, handed to swaks as the whole message.
  const boundary = 'pgp-mime-boundary';
  const mail = [
    'From: erin@outside.test', `To: ${BOB}`, 'Subject: ...', 'MIME-Version: 1.0',
    `Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="${boundary}"`, '',
    `--${boundary}`, 'Content-Type: application/pgp-encrypted', '', 'Version: 1', '',
    `--${boundary}`, 'Content-Type: application/octet-stream; name="encrypted.asc"', '', ...armored.trim().split(/\r?\n/), '',
    `--${boundary}--`, '',
  ].join('\r\n');
  execFileSync('swaks', ['--server', `127.0.0.1:${smtpPort}`, '--from', 'erin@outside.test', '--to', BOB, '--data', '-'], { input: mail, stdio: ['pipe', 'pipe', 'pipe'] });
  const id = sql("SELECT id FROM messages WHERE arrival IS NOT NULL ORDER BY accepted_at DESC LIMIT 1");
  assert.equal(sql(`SELECT compliance_pending FROM messages WHERE id = '${id}'`), '1', 'waiting for its packet');

  const page = await browser.page();
  const shot = shooter(page, 'compliance-packet');
  await signIn(page, alpha.url, BOB, PW.bob);
  await page.goto(`${alpha.url}/#/mail/inbox/${id}`);
  await page.waitForSelector('text=HERON', { timeout: 60_000 });
  // The web app added the packet on this first opening: the head no longer says it waits.
  await until('the compliance packet kept beside the mail', 30_000, async () => sql(`SELECT COUNT(*) FROM compliance_packets WHERE message_id = '${id}'`) === '1');
  assert.equal(sql(`SELECT compliance_pending FROM messages WHERE id = '${id}'`), '0');
  assert.equal(await page.$('[data-testid=compliance-pending]'), null, 'no "not yet in the archive" note');
  const copy = await page.waitForSelector('[data-testid=compliance-copy]');
  assert.equal(await copy.getAttribute('data-domains'), 'alpha.test');
  await shot('opened');

  // The archive's copy (the packet in front of the payload as it came) opens with GnuPG and
  // the compliance key.
  const packet = Buffer.from(sql(`SELECT hex(packet) FROM compliance_packets WHERE message_id = '${id}'`), 'hex');
  const stored = Buffer.from(sql(`SELECT hex(data) FROM parts WHERE message_id = '${id}' AND idx = 0`), 'hex');
  const binary = gpg(['--dearmor'], stored);
  const copyFile = join(key.home, 'archived.pgp');
  writeFileSync(copyFile, Buffer.concat([packet, binary]));
  assert.match(gpg(['--decrypt', copyFile]).toString(), /HERON/);
});
