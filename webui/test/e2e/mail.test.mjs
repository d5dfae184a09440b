// Issue 18 in the browser ("Speak email", docs/mail.md), against real nodes and a real mail
// server: a throw-away Postfix delivering into Maildirs (as root, as CI runs) is the outside
// world's mail. alice@alpha.test imports dora@pgp.test's OpenPGP key (made by GnuPG) in the
// Outside keys screen and writes one message to bob@alpha.test (Sealpost, local),
// carol@beta.test (Sealpost, federated), dora@pgp.test (OpenPGP mail) and erin@outside.test
// (pickup): Write shows each recipient's mode in words, why and where dora's key came from;
// Postfix delivers dora's copy into her Maildir, where GnuPG decrypts it and verifies alice's
// signature, the real subject only inside; Sent shows each one's mode and state. dora answers
// by ordinary mail (swaks into alpha's SMTP door): alice reads it marked "arrived unencrypted"
// with its TLS/SPF/DKIM/DMARC results, in the thread of the message it answers. Enforced TLS
// asks for the sender's confirmation. Screenshots of every step at 1280x800 and 390x844 land
// in test-artefacts/mail-*/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestNode, launchBrowser, shooter, signIn, until, startPostfix, sealpost, freePort, MIN_KDF_ENV } from './harness.mjs';

const PW = { alice: 'correct horse battery staple', bob: 'purple monkey dishwasher 42', carol: 'seven tired otters sing' };
const BOB = 'bob@alpha.test';
const CAROL = 'carol@beta.test';
const ERIN = 'erin@outside.test';
const DORA = 'dora@pgp.test';
const SUBJECT = 'Board minutes, December';
let alpha, beta, direct, browser, postfix, alicePage;
/** alpha's SMTP door (docs/mail.md, "SMTP in"), and the message alice sent (its ID). */
let smtpPort, sentId;

/** dora's GnuPG home: her key (ed25519/cv25519, as gpg 2.2 makes it), as her mail program has it. */
const doraHome = mkdtempSync(join(tmpdir(), 'sealpost-dora-gpg-'));
chmodSync(doraHome, 0o700);
function gpg(args, input) {
  return execFileSync('gpg', ['--homedir', doraHome, '--batch', '--yes', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], { input, stdio: ['pipe', 'pipe', 'pipe'] });
}
gpg(['--quick-gen-key', 'Dora <dora@pgp.test>', 'future-default', 'default', 'never']);
const DORA_FPR = /fpr:+([0-9A-F]{40}):/.exec(gpg(['--with-colons', '--fingerprint', DORA]).toString())[1];
const DORA_KEY = gpg(['--armor', '--export', DORA_FPR]).toString();

before(async () => {
  postfix = await startPostfix([ERIN, DORA]);
  smtpPort = await freePort();
  assert.ok(postfix, 'these tests need Postfix (Debian postfix, run as root as CI does)');
  // allSettled: a node that did start is still cleaned up when the other did not.
  const started = await Promise.allSettled([
    TestNode.start('alpha.test', {
      ...MIN_KDF_ENV,
      // The organisation pins smime.test to S/MIME mail (enforced TLS needs direct delivery:
      // the last test's node).
      SEALPOST__SMTP_IN__ENABLED: 'true',
      SEALPOST__SMTP_IN__LISTEN: `127.0.0.1:${smtpPort}`,
      SEALPOST__DELIVERY__PIN: '[{ domain = "smime.test", mode = "smime" }]',
      SEALPOST__RELAY__HOST: '127.0.0.1',
      SEALPOST__RELAY__PORT: String(postfix.port),
      SEALPOST__RELAY__SECURITY: 'none',
    }),
    TestNode.start('beta.test', MIN_KDF_ENV),
  ]);
  [alpha, beta] = started.map((r) => (r.status === 'fulfilled' ? r.value : undefined));
  for (const r of started) if (r.status === 'rejected') throw r.reason;
  sealpost(['admin', '--data', alpha.data, 'peer', 'add', 'beta.test', '--from', beta.url, '--yes']);
  sealpost(['admin', '--data', beta.data, 'peer', 'add', 'alpha.test', '--from', alpha.url, '--yes']);
  for (const [node, address, name] of [[alpha, 'alice@alpha.test', 'Alice Martin'], [alpha, BOB, 'Bob Baker'], [beta, CAROL, 'Carol Berg']]) {
    const invite = node.addUser(address, { name });
    node.cli(address, PW[address.split('@')[0]]).run('enroll', '--invite', invite, '--address', address, '--name', name);
  }
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  alpha?.cleanup();
  beta?.cleanup();
  direct?.cleanup();
  postfix?.stop();
  rmSync(doraHome, { recursive: true, force: true });
});

/** The mode row Write (or the sent screen) shows for `address`. */
async function modeRow(page, scope, address) {
  const row = await page.waitForSelector(`[data-testid=${scope}] [data-testid=recipient-mode][data-address="${address}"]`);
  return { mode: await row.getAttribute('data-mode'), text: (await row.textContent()).replace(/\s+/g, ' ') };
}

test('alice imports dora@pgp.test\'s OpenPGP key in Outside keys', async () => {
  alicePage = await browser.page();
  const shot = shooter(alicePage, 'mail-import');
  await signIn(alicePage, alpha.url, 'alice@alpha.test', PW.alice);
  await alicePage.click('[data-testid=nav] >> text=Outside keys');
  await alicePage.waitForSelector('#okeys-title');
  await alicePage.fill('#okey-text', DORA_KEY);
  await alicePage.fill('#okey-address', DORA);
  await shot('pasted');
  await alicePage.click('[data-testid=okey-submit]');
  await alicePage.waitForSelector('[data-testid=okey-done], [data-testid=error]');
  if (await alicePage.$('[data-testid=error]')) assert.fail(`the app says: ${await alicePage.textContent('[data-testid=error]')}`);
  assert.match(await alicePage.textContent('[data-testid=okey-done]'), /OpenPGP key of dora@pgp\.test/);
  const row = await alicePage.waitForSelector(`[data-testid=okey][data-fingerprint="${DORA_FPR.toLowerCase()}"], [data-testid=okey][data-fingerprint="${DORA_FPR}"]`);
  assert.match(await row.textContent(), /dora@pgp\.test.*OpenPGP.*imported by you/i);
  await shot('imported');
});

test('Write shows each recipient\'s mode in words and why: Sealpost (local, federated), OpenPGP mail, pickup', async () => {
  const shot = shooter(alicePage, 'mail-write');
  await alicePage.click('[data-testid=nav] >> text=Write');
  for (const address of [BOB, CAROL, DORA, ERIN]) {
    await alicePage.fill('#compose-to', address);
    await alicePage.press('#compose-to', 'Enter');
  }
  await until('every recipient checked', 60_000, async () => (await alicePage.$$('[data-testid=recipient][data-state=checking]')).length === 0);
  assert.deepEqual(await alicePage.$$eval('[data-testid=recipient]', (els) => els.map((e) => e.getAttribute('data-state'))), ['ok', 'ok', 'mail', 'pickup']);

  const bob = await modeRow(alicePage, 'modes', BOB);
  assert.equal(bob.mode, 'local');
  assert.match(bob.text, /bob@alpha\.test Sealpost bob@alpha\.test is a user of alpha\.test: end-to-end encrypted\./);
  const carol = await modeRow(alicePage, 'modes', CAROL);
  assert.equal(carol.mode, 'remote');
  assert.match(carol.text, /carol@beta\.test Sealpost /);
  const dora = await modeRow(alicePage, 'modes', DORA);
  assert.equal(dora.mode, 'openpgp');
  assert.match(dora.text, /dora@pgp\.test OpenPGP mail .+\. Key imported by you\./);
  const erin = await modeRow(alicePage, 'modes', ERIN);
  assert.equal(erin.mode, 'pickup');
  assert.match(erin.text, /erin@outside\.test Pickup /);
  assert.equal(await alicePage.$('[data-testid=sees-content]'), null, 'no recipient here exposes the content');
  await alicePage.fill('#compose-subject', SUBJECT);
  await alicePage.fill('#compose-body', 'Hello all,\n\nthe minutes in words: we agreed. Code word: HERON.\n\nAlice');
  await alicePage.setInputFiles('#compose-files', { name: 'minutes.txt', mimeType: 'text/plain', buffer: Buffer.from('Minutes: agreed, HERON.\n') });
  await shot('modes-shown');

  await alicePage.click('[data-testid=send]');
  await alicePage.waitForSelector('[data-testid=muc-dialog], [data-testid=error]', { timeout: 90_000 });
  if (await alicePage.$('[data-testid=error]')) assert.fail(`the app says: ${await alicePage.textContent('[data-testid=error]')}`);
  await alicePage.click('[data-testid=muc-done]');
  await alicePage.waitForSelector('[data-testid=sent]');
  assert.equal((await modeRow(alicePage, 'sent-modes', CAROL)).mode, 'remote');
  assert.equal((await modeRow(alicePage, 'sent-modes', DORA)).mode, 'openpgp');
  assert.equal((await modeRow(alicePage, 'sent-modes', ERIN)).mode, 'pickup');
  assert.match(await alicePage.textContent('[data-testid=sent-mail]'), /dora@pgp\.test \(OpenPGP mail\)/);
  await shot('sent');
});

test('Postfix delivers dora\'s copy into her Maildir: GnuPG decrypts it, verifies alice\'s signature, the subject only inside', async () => {
  const [file] = await until('dora\'s mail in her Maildir', 60_000, async () => { const f = postfix.delivered(DORA); return f.length ? f : null; });
  const raw = readFileSync(file, 'utf8');
  assert.match(raw, /Content-Type: multipart\/encrypted;[\s\S]*protocol="application\/pgp-encrypted"/i);
  assert.ok(!raw.includes(SUBJECT) && !raw.includes('HERON'), 'neither subject nor body travel in the clear');
  // alice's key, as anyone gets it from her organisation's directory.
  const aliceKey = await (await fetch(`${alpha.url}/vks/v1/by-email/${encodeURIComponent('alice@alpha.test')}`)).text();
  gpg(['--import'], aliceKey);
  const armored = /-----BEGIN PGP MESSAGE-----[\s\S]+?-----END PGP MESSAGE-----/.exec(raw)[0];
  const copy = join(doraHome, 'copy.asc');
  writeFileSync(copy, armored);
  const status = join(doraHome, 'status');
  const plain = gpg(['--status-file', status, '--decrypt', copy]).toString();
  const st = readFileSync(status, 'utf8');
  assert.match(st, /\[GNUPG:\] DECRYPTION_OKAY/);
  assert.match(st, /\[GNUPG:\] GOODSIG [0-9A-F]+ .*alice@alpha\.test/);
  assert.match(st, /\[GNUPG:\] VALIDSIG /);
  assert.match(plain, /protected-headers="v1"/);
  assert.match(plain, new RegExp(`\r\nSubject: ${SUBJECT}\r\n`));
  assert.match(plain, /\r\nFrom: alice@alpha\.test\r\n/);
  assert.match(plain, /Code word: HERON\./);
  assert.match(plain, /filename="minutes\.txt"/);
});

test('Sent shows each recipient\'s mode and state, at phone size too', async () => {
  const shot = shooter(alicePage, 'mail-sent');
  await alicePage.click('text=See it in Sent');
  await alicePage.waitForSelector('[data-testid=message-row]');
  await shot('list');
  await alicePage.click('[data-testid=message-row]');
  await alicePage.waitForSelector('[data-testid=reader]');
  sentId = new URL(alicePage.url()).hash.split('/').pop();
  assert.match(sentId, /^[0-9a-f]{32}$/);
  // carol's node acknowledges; dora's mail and erin's notification are handed to Postfix.
  await until('carol delivered, dora delivered, erin notified', 60_000, async () =>
    (await alicePage.$(`[data-testid=delivery][data-mode=remote] [data-testid=delivery-state][data-address="${CAROL}"][data-state=delivered]`))
    && (await alicePage.$(`[data-testid=delivery][data-mode=openpgp] [data-testid=delivery-state][data-address="${DORA}"][data-state=delivered]`))
    && (await alicePage.$(`[data-testid=pickup-delivery] [data-testid=delivery-state][data-address="${ERIN}"][data-state=notified]`)));
  assert.match(await alicePage.textContent('[data-testid=delivery][data-mode=remote]'), /Delivery to other organisations: carol@beta\.test\s*Delivered/);
  assert.match(await alicePage.textContent('[data-testid=delivery][data-mode=openpgp]'), /OpenPGP mail: dora@pgp\.test\s*Delivered/);
  assert.match(await alicePage.textContent('[data-testid=pickup-delivery]'), /By unlock code: erin@outside\.test\s*Notified/);
  await shot('reader-states');
  await until('erin\'s notification mail in her Maildir', 30_000, async () => postfix.delivered(ERIN).length === 1);
});

test('dora replies by ordinary mail (swaks): alice reads it marked "arrived unencrypted" with its checks, in the thread it answers', async () => {
  const shot = shooter(alicePage, 'mail-in');
  const id = sentId;
  const attachment = join(doraHome, 'notes.txt');
  writeFileSync(attachment, 'Dora\'s notes: agreed.\n');
  execFileSync('swaks', ['--server', `127.0.0.1:${smtpPort}`, '--from', DORA, '--to', 'alice@alpha.test',
    '--header', `Subject: Re: ${SUBJECT}`, '--header', `In-Reply-To: <${id}@alpha.test>`, '--header', 'From: Dora Pohl <dora@pgp.test>',
    '--body', 'Thanks Alice, agreed. Code word back: EGRET.', '--attach-type', 'text/plain', '--attach-name', 'notes.txt', '--attach', `@${attachment}`],
  { stdio: 'pipe' });
  await alicePage.click('[data-testid=nav] >> text=Inbox');
  const row = `[data-testid=message-row] >> text=Re: ${SUBJECT}`;
  await until('dora\'s reply in alice\'s inbox', 60_000, async () => {
    await alicePage.click('text=Refresh');
    return alicePage.waitForSelector(row, { timeout: 1_000 });
  });
  assert.ok(await alicePage.$('[data-testid=row-via-smtp]'), 'marked as mail from outside');
  await shot('inbox');
  await alicePage.click(row);
  await alicePage.waitForSelector('[data-testid=reader]');
  assert.equal(await alicePage.textContent('[data-testid=sender]'), DORA);
  assert.match(await alicePage.textContent('[data-testid=via-smtp]'), /Arrived by mail · Dora Pohl/);
  assert.equal(await alicePage.getAttribute('[data-testid=arrival]', 'data-encrypted'), 'false');
  assert.match(await alicePage.textContent('[data-testid=arrival-mark]'), /Arrived unencrypted/);
  assert.match(await alicePage.textContent('[data-testid=arrival-tls]'), /unencrypted connection \(no TLS\)/);
  for (const check of ['spf', 'dkim', 'dmarc']) assert.match(await alicePage.textContent(`[data-testid=arrival-${check}]`), /: (none|pass|fail|neutral|softfail|temperror|permerror|could not)/);
  assert.match(await alicePage.textContent('[data-testid=arrival-mail-from]'), /dora@pgp\.test/);
  assert.match(await alicePage.textContent('[data-testid=in-reply-to]'), new RegExp(`In reply to your message “${SUBJECT}”`));
  assert.match(await alicePage.textContent('[data-testid=body]'), /Code word back: EGRET\./);
  await alicePage.waitForSelector('[data-testid=attachment] >> text=notes.txt');
  const [download] = await Promise.all([alicePage.waitForEvent('download'), alicePage.click('[aria-label="Download notes.txt"]')]);
  assert.equal(readFileSync(await download.path(), 'utf8'), 'Dora\'s notes: agreed.\n');
  await shot('reply-read');

  // The thread: the message in Sent lists the reply, which links back.
  await alicePage.click('[data-testid=in-reply-to] a');
  await alicePage.waitForSelector('[data-testid=replies]');
  assert.equal(await alicePage.$('[data-testid=in-reply-to]'), null, 'the message in Sent answers nothing');
  assert.equal(await alicePage.textContent('#msg-subject'), SUBJECT);
  assert.match(await alicePage.textContent('[data-testid=replies]'), new RegExp(`dora@pgp\\.test: “Re: ${SUBJECT}”`));
  await shot('thread');
});

test('enforced TLS needs the sender\'s explicit confirmation; a pinned mode that is not possible is refused in the node\'s words', async () => {
  // Enforced TLS is possible only where the node delivers to the recipient's MX itself
  // (a relay cannot show that server's certificate): a node of its own, which sends nothing
  // here (the delivery itself: tests/tests/mail_out.rs).
  direct = await TestNode.start('alpha.test', {
    ...MIN_KDF_ENV,
    SEALPOST__RELAY__ROUTE: 'direct',
    SEALPOST__DELIVERY__PIN: '[{ domain = "tls.test", mode = "tls", tls = "pinned" }, { domain = "smime.test", mode = "smime" }]',
  });
  const invite = direct.addUser('alice@alpha.test', { name: 'Alice Martin' });
  direct.cli('alice@alpha.test', PW.alice).run('enroll', '--invite', invite, '--address', 'alice@alpha.test', '--name', 'Alice Martin');
  alicePage = await browser.page();
  await signIn(alicePage, direct.url, 'alice@alpha.test', PW.alice);
  const shot = shooter(alicePage, 'mail-tls');
  await alicePage.click('[data-testid=nav] >> text=Write');
  for (const address of ['fay@tls.test', 'erik@smime.test']) {
    await alicePage.fill('#compose-to', address);
    await alicePage.press('#compose-to', 'Enter');
  }
  await until('every recipient checked', 60_000, async () => (await alicePage.$$('[data-testid=recipient][data-state=checking]')).length === 0);
  assert.deepEqual(await alicePage.$$eval('[data-testid=recipient]', (els) => els.map((e) => e.getAttribute('data-state'))), ['mail', 'refused']);
  const fay = await modeRow(alicePage, 'modes', 'fay@tls.test');
  assert.equal(fay.mode, 'tls');
  assert.match(fay.text, /fay@tls\.test Enforced TLS .*transit/);
  const warn = await alicePage.textContent('[data-testid=sees-content][data-address="fay@tls.test"]');
  assert.match(warn, /fay@tls\.test's mail server will receive the content; our node \(alpha\.test\) sees it in transit\./);
  // erik: smime.test is pinned to S/MIME mail and erik has no certificate: the node says so.
  assert.match(await alicePage.textContent('[data-testid=refusal]'), /erik@smime\.test cannot be reached/);
  await alicePage.fill('#compose-subject', 'Payment details');
  await alicePage.fill('#compose-body', 'Hello Fay,\nthe details follow.');
  await shot('confirmation-asked');

  await alicePage.click('[data-testid=recipient][data-state=refused] .chip-x');
  await alicePage.click('[data-testid=send]');
  await alicePage.waitForSelector('[data-testid=error]');
  assert.match(await alicePage.textContent('[data-testid=error]'), /Not sent\. Confirm that fay@tls\.test may be reached this way \(our node sees the content in transit\)/);
  assert.equal(await alicePage.$('[data-testid=sent]'), null, 'nothing was sent without the confirmation');
  await shot('refused-unconfirmed');
  await alicePage.check('[data-testid=sees-content-confirm]');
  assert.ok(await alicePage.isChecked('[data-testid=sees-content-confirm]'));
  await shot('confirmed');
});
