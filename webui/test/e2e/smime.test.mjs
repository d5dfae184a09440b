// S/MIME mail from the web app (issue 18, docs/mail.md "The S/MIME copy"), against a real node
// and a real mail server: alpha.test trusts an S/MIME CA made here (`[delivery] x509_anchors`);
// alice, in Chromium, imports erik@smime.test's certificate (RSA) and ella@smime.test's (EC)
// in Outside keys and writes to both: Write refuses ella in words (the web app encrypts to RSA
// keys only) and lists erik as S/MIME mail, encrypted to his certificate and sent unsigned as
// signed, as the node's `why` says: alpha.test runs an S/MIME CA (`[smime]`, ECDSA P-256, made
// here). Her browser makes an RSA-3072 signing key, has the node certify it and keeps it
// wrapped on the node, signs the inner entity, then makes the copy (DER CMS, AES-256-CBC,
// PKCS1-v1_5 key transport); Postfix delivers it into erik's Maildir, where `openssl cms
// -decrypt` and GnuPG 2.2's gpgsm open it with erik's key, the subject and body only inside,
// and `openssl cms -verify` with the organisation's CA verifies it, the signer
// alice@alpha.test. A second message is signed with the same key and certificate: no second
// issuance. Sent shows erik's mode, "S/MIME mail", and its state. Screenshots at 1280x800 and
// 390x844 land in test-artefacts/smime-*/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gpgsmDecrypt } from '../unit/gpgsm.mjs';
import { TestNode, launchBrowser, shooter, signIn, until, startPostfix, parseMail, MIN_KDF_ENV } from './harness.mjs';

const ALICE = 'alice@alpha.test';
const PW = 'correct horse battery staple';
const ERIK = 'erik@smime.test';
const ELLA = 'ella@smime.test';
const SUBJECT = 'Contract draft, S/MIME';
const BODY = 'Hello Erik,\n\nthe draft follows. Code word: KESTREL.\n\nAlice';
let alpha, browser, postfix, page;

/** The test's PKI, made by OpenSSL: a CA (the node's anchor) and, under it, erik's RSA and
 * ella's EC S/MIME certificates. */
const pki = mkdtempSync(join(tmpdir(), 'sealpost-smime-pki-'));
chmodSync(pki, 0o700);
const openssl = (...args) => execFileSync('openssl', args, { cwd: pki, stdio: 'pipe' });
openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '30', '-subj', '/CN=S-MIME test CA',
  '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  '-keyout', 'ca.key', '-out', 'ca.pem');
function issue(name, address, newkey) {
  openssl('req', '-new', '-newkey', ...newkey, '-nodes', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`);
  // No key usage on the EC certificate: OpenSSL's S/MIME-encryption purpose (the node's anchor
  // check) wants keyEncipherment where there is one, which an EC key does not do.
  const usage = newkey[0].startsWith('rsa') ? 'keyUsage=critical,digitalSignature,keyEncipherment\n' : '';
  writeFileSync(join(pki, `${name}.ext`), `basicConstraints=CA:FALSE\n${usage}extendedKeyUsage=emailProtection\nsubjectAltName=email:${address}\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n`);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', `0x${Date.now().toString(16)}${name.length}`,
    '-days', '30', '-extfile', `${name}.ext`, '-out', `${name}.pem`);
  return { cert: join(pki, `${name}.pem`), key: join(pki, `${name}.key`), pem: readFileSync(join(pki, `${name}.pem`), 'utf8') };
}
const erik = issue('erik', ERIK, ['rsa:2048']);
// The organisation's own S/MIME CA (`[smime]`), which certifies alice's signing key.
openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '60', '-subj', '/CN=Alpha S-MIME CA',
  '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  '-keyout', 'org-ca.key', '-out', 'org-ca.pem');
const ella = issue('ella', ELLA, ['ec', '-pkeyopt', 'ec_paramgen_curve:P-256']);

before(async () => {
  postfix = await startPostfix([ERIK, ELLA]);
  assert.ok(postfix, 'these tests need Postfix (Debian postfix, run as root as CI does)');
  alpha = await TestNode.start('alpha.test', {
    ...MIN_KDF_ENV,
    SEALPOST__DELIVERY__X509_ANCHORS: join(pki, 'ca.pem'),
    SEALPOST__SMIME__CA_CERT: join(pki, 'org-ca.pem'),
    SEALPOST__SMIME__CA_KEY: join(pki, 'org-ca.key'),
    SEALPOST__RELAY__HOST: '127.0.0.1',
    SEALPOST__RELAY__PORT: String(postfix.port),
    SEALPOST__RELAY__SECURITY: 'none',
  });
  const invite = alpha.addUser(ALICE, { name: 'Alice Martin' });
  alpha.cli(ALICE, PW).run('enroll', '--invite', invite, '--address', ALICE, '--name', 'Alice Martin');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  alpha?.cleanup();
  postfix?.stop();
  rmSync(pki, { recursive: true, force: true });
});

/** The mode row Write (or the sent screen) shows for `address`. */
async function modeRow(scope, address) {
  const row = await page.waitForSelector(`[data-testid=${scope}] [data-testid=recipient-mode][data-address="${address}"]`);
  return { mode: await row.getAttribute('data-mode'), text: (await row.textContent()).replace(/\s+/g, ' ') };
}

test('alice imports erik\'s and ella\'s S/MIME certificates in Outside keys', async () => {
  page = await browser.page();
  const shot = shooter(page, 'smime-import');
  await signIn(page, alpha.url, ALICE, PW);
  await page.click('[data-testid=nav] >> text=Outside keys');
  await page.waitForSelector('#okeys-title');
  for (const [who, address] of [[erik, ERIK], [ella, ELLA]]) {
    await page.fill('#okey-text', who.pem);
    await page.click('[data-testid=okey-submit]');
    await page.waitForSelector('[data-testid=okey-done], [data-testid=error]');
    if (await page.$('[data-testid=error]')) assert.fail(`the app says: ${await page.textContent('[data-testid=error]')}`);
    assert.equal(await page.textContent('[data-testid=okey-done]'), `Imported the S/MIME certificate of ${address}.`);
  }
  await shot('imported');
});

/** What `GET /smime/certificate` answers alice's browser session (her stored signing key). */
async function storedSigningKey() {
  return page.evaluate(async () => {
    const r = await fetch('/api/v1/smime/certificate', { credentials: 'same-origin' });
    return { status: r.status, body: await r.json() };
  });
}

test('Write refuses ella (EC key) in words, lists erik as S/MIME mail encrypted to his certificate and signed; alice sends', async () => {
  const shot = shooter(page, 'smime-write');
  await page.click('[data-testid=nav] >> text=Write');
  for (const address of [ELLA, ERIK]) {
    await page.fill('#compose-to', address);
    await page.press('#compose-to', 'Enter');
  }
  await until('every recipient checked', 60_000, async () => (await page.$$('[data-testid=recipient][data-state=checking]')).length === 0);
  assert.deepEqual(await page.$$eval('[data-testid=recipient]', (els) => els.map((e) => e.getAttribute('data-state'))), ['refused', 'mail']);
  assert.match(await page.textContent('[data-testid=refusal]'),
    /ella@smime\.test's S\/MIME certificate has no RSA key, and the web app encrypts S\/MIME mail to RSA keys only: send this message from the command-line client, or remove ella@smime\.test\./);
  const row = await modeRow('modes', ERIK);
  assert.equal(row.mode, 'smime');
  assert.match(row.text, /^erik@smime\.test S\/MIME mail Encrypted to erik@smime\.test's S\/MIME certificate: smime\.test's mail server receives only ciphertext\. /);
  // The node's why, shown as it says it: where the certificate comes from, and signed.
  assert.match(row.text, /ciphertext\. erik@smime\.test has an X\.509 certificate .+; signed with the S\/MIME certificate your organisation issues you/);
  // No signing key yet: the first send makes one.
  assert.equal((await storedSigningKey()).status, 404);
  assert.equal(await page.$('[data-testid=sees-content]'), null, 'S/MIME mail does not expose the content to our node');
  await page.fill('#compose-subject', SUBJECT);
  await page.fill('#compose-body', BODY);
  await page.setInputFiles('#compose-files', { name: 'draft.txt', mimeType: 'text/plain', buffer: Buffer.from('Draft: clause 1, KESTREL.\n') });
  await shot('modes-shown');

  await page.click(`[data-testid=recipient][data-state=refused] .chip-x`);
  await page.click('[data-testid=send]');
  await page.waitForSelector('[data-testid=sent], [data-testid=error]', { timeout: 90_000 });
  if (await page.$('[data-testid=error]')) assert.fail(`the app says: ${await page.textContent('[data-testid=error]')}`);
  assert.equal((await modeRow('sent-modes', ERIK)).mode, 'smime');
  assert.match(await page.textContent('[data-testid=sent-mail]'), /erik@smime\.test \(S\/MIME mail\)/);
  await shot('sent');
});

test('Postfix delivers erik\'s S/MIME mail: openssl cms and gpgsm open it with his key, subject and body only inside', async () => {
  const [file] = await until('erik\'s mail in his Maildir', 60_000, async () => { const f = postfix.delivered(ERIK); return f.length ? f : null; });
  const raw = readFileSync(file, 'utf8');
  assert.ok(!raw.includes(SUBJECT) && !raw.includes('KESTREL'), 'neither subject nor body travel in the clear');
  const outer = parseMail(file);
  assert.match(JSON.stringify(outer), /application\/pkcs7-mime/);
  assert.match(raw, /Content-Type: application\/pkcs7-mime;[\s\S]*smime-type=enveloped-data/i);

  // The CMS the browser made: AES-256-CBC EnvelopedData, rsaEncryption key transport, unsigned.
  const p7m = join(pki, 'erik.p7m');
  openssl('cms', '-cmsout', '-in', file, '-outform', 'DER', '-out', p7m);
  const printed = openssl('cms', '-cmsout', '-print', '-inform', 'DER', '-in', p7m).toString();
  assert.match(printed, /contentType: pkcs7-envelopedData/);
  assert.match(printed, /algorithm: aes-256-cbc/);
  assert.match(printed, /keyEncryptionAlgorithm:\s*\n\s*algorithm: rsaEncryption/);

  // erik's mail program: `openssl cms -decrypt` reads the delivered mail itself.
  const opened = openssl('cms', '-decrypt', '-binary', '-in', file, '-recip', erik.cert, '-inkey', erik.key).toString('latin1');
  assert.match(opened, /protected-headers="v1"/);
  assert.match(opened, new RegExp(`\r\nSubject: ${SUBJECT.replace('/', '\\/')}\r\n`));
  assert.match(opened, /\r\nFrom: alice@alpha\.test\r\n/);
  assert.match(opened, /Code word: KESTREL\./);
  assert.match(opened, /filename="draft\.txt"/);

  // Signed by alice (sign-then-encrypt): multipart/signed, verified against the organisation's
  // CA alone; the signed content is the inner entity.
  assert.match(opened, /^MIME-Version: 1\.0\r\nContent-Type: multipart\/signed; protocol="application\/pkcs7-signature"; micalg=sha-256; /);
  writeFileSync(join(pki, 'signed.eml'), Buffer.from(opened, 'latin1'));
  const content = openssl('cms', '-verify', '-in', 'signed.eml', '-CAfile', 'org-ca.pem', '-purpose', 'smimesign', '-signer', 'signer.pem').toString('latin1');
  assert.match(content, /\r\nFrom: alice@alpha\.test\r\n/);
  assert.match(content, /Code word: KESTREL\./);
  assert.match(openssl('x509', '-in', 'signer.pem', '-noout', '-ext', 'subjectAltName').toString(), /email:alice@alpha\.test/);
  assert.match(openssl('x509', '-in', 'signer.pem', '-noout', '-text').toString(), /Public-Key: \(3072 bit\)/);

  // GnuPG 2.2's gpgsm, erik's key imported from a PKCS#12 export.
  const out = gpgsmDecrypt(erik.cert, erik.key, p7m);
  assert.equal(out.status, 0, out.stderr.toString());
  assert.equal(out.stdout.toString('latin1'), opened);
});

test('the signing key is kept wrapped on the node; a second message reuses it: no second certificate', async () => {
  const kept = await storedSigningKey();
  assert.equal(kept.status, 200, JSON.stringify(kept.body));
  assert.match(kept.body.wrapped_key, /^sealpost-smime-v1\.[A-Za-z0-9+/=]+$/);
  assert.ok(!/PRIVATE KEY/.test(kept.body.wrapped_key), 'never in the clear');
  const signer = readFileSync(join(pki, 'signer.pem'), 'utf8');
  assert.equal(kept.body.certificate.replace(/\s+/g, ''), signer.replace(/\s+/g, ''));

  // A new browser session (a fresh login: nothing in memory) sends again.
  await page.close();
  page = await browser.page();
  await signIn(page, alpha.url, ALICE, PW);
  await page.click('[data-testid=nav] >> text=Write');
  await page.fill('#compose-to', ERIK);
  await page.press('#compose-to', 'Enter');
  await until('erik checked', 60_000, async () => (await page.$$('[data-testid=recipient][data-state=checking]')).length === 0);
  await page.fill('#compose-subject', 'Second draft');
  await page.fill('#compose-body', 'Again. Code word: PLOVER.');
  await page.click('[data-testid=send]');
  await page.waitForSelector('[data-testid=sent], [data-testid=error]', { timeout: 90_000 });
  if (await page.$('[data-testid=error]')) assert.fail(`the app says: ${await page.textContent('[data-testid=error]')}`);
  const file = await until('the second mail', 60_000, async () => postfix.delivered(ERIK).find((f) => {
    const opened = openssl('cms', '-decrypt', '-binary', '-in', f, '-recip', erik.cert, '-inkey', erik.key).toString('latin1');
    return opened.includes('PLOVER') ? f : null;
  }) ?? null);
  writeFileSync(join(pki, 'second.eml'), openssl('cms', '-decrypt', '-binary', '-in', file, '-recip', erik.cert, '-inkey', erik.key));
  openssl('cms', '-verify', '-in', 'second.eml', '-CAfile', 'org-ca.pem', '-purpose', 'smimesign', '-signer', 'signer2.pem', '-out', '/dev/null');
  assert.equal(readFileSync(join(pki, 'signer2.pem'), 'utf8'), signer, 'the same certificate signs');
  const after = await storedSigningKey();
  assert.deepEqual(after.body, kept.body, 'no new certificate or key was stored');
});

test('Sent shows erik\'s mode, S/MIME mail, and its state: delivered', async () => {
  const shot = shooter(page, 'smime-sent');
  await page.click('text=See it in Sent');
  await page.waitForSelector('[data-testid=message-row]');
  await page.click('[data-testid=message-row] >> text=Second draft');
  await page.waitForSelector('[data-testid=reader]');
  await until('erik delivered', 60_000, async () =>
    page.$(`[data-testid=delivery][data-mode=smime] [data-testid=delivery-state][data-address="${ERIK}"][data-state=delivered]`));
  assert.match(await page.textContent('[data-testid=delivery][data-mode=smime]'), /S\/MIME mail: erik@smime\.test\s*Delivered/);
  await shot('reader-state');
});
