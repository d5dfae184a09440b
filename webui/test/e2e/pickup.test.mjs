// The main scenario (issue 17, "What must be shown") against real nodes and a real
// relay: a throw-away Postfix delivering into Maildirs (where this runs as root, as CI does),
// else tests/smtp/sink.py on python3-aiosmtpd. Two organisations, alpha.test and beta.test,
// peered both ways. alice@alpha.test writes in the browser one message with a 5 MiB attachment
// to bob@alpha.test, dana@beta.test and carol@outside.test; carol's notification mail carries
// the link; a scanner's GET changes nothing; carol opens the link on a phone in a fresh
// browser, types a wrong code, then the right one, reads, downloads the attachment
// byte-identical and replies with an attachment (once the node takes pickup replies); alice
// reads the reply; bob and dana read the message in their browsers. Then: lock-out and a new
// code, withdrawal, a refused address, the CLI's seal opened in the browser, and a scan of the
// node's data directory for every secret and plaintext.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestNode, launchBrowser, shooter, signIn, until, bearerLogin, startPostfix, parseMail, sealpost, MIN_KDF_ENV, ROOT, BIN } from './harness.mjs';

const PW = { alice: 'correct horse battery staple', bob: 'purple monkey dishwasher 42', dana: 'seven tired otters sing' };
const CAROL = 'carol@outside.test';
const work = mkdtempSync(join(tmpdir(), 'sealpost-pickup-e2e-'));
const mailDir = mkdtempSync(join(tmpdir(), 'sealpost-pickup-mail-'));
let alpha, beta, browser, sink, postfix, ready = false;
/** Every secret and plaintext the tests made, for the scan of the node's data directory. */
const secrets = [];
const OUTSIDE = ['carol@outside.test', 'dave@outside.test', 'erin@outside.test', 'frank@outside.test'];

/** Starts the SMTP sink; resolves to its port. */
function startSink() {
  return new Promise((resolve, reject) => {
    sink = spawn('/usr/bin/python3', [join(ROOT, 'tests/smtp/sink.py'), '--out', mailDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    sink.stdout.on('data', (c) => { out += c; const m = /listening (\d+)/.exec(out); if (m) resolve(Number(m[1])); });
    sink.stderr.on('data', (c) => { out += c; });
    sink.on('exit', (code) => reject(new Error(`the SMTP sink exited ${code}:\n${out}`)));
  });
}

/** The mails `to` has received so far, parsed (headers, text, html). */
function mails(to) {
  if (postfix) return postfix.delivered(to).map(parseMail);
  return readdirSync(mailDir).filter((n) => n.endsWith('.json')).map((f) => JSON.parse(readFileSync(join(mailDir, f), 'utf8')))
    .filter((m) => m.rcpt_tos.includes(to));
}

/** Waits for a notification mail to `to`; returns the pickup link in its text part. */
async function mailTo(to, timeout = 60_000, skip = []) {
  return until(`a notification mail to ${to}`, timeout, async () => {
    for (const mail of mails(to)) {
      const text = mail.text ?? '';
      const m = /(https?:\/\/\S+?\/pickup#[A-Za-z0-9_-]+)/.exec(text);
      if (m && !skip.includes(m[1])) return { link: m[1], mail };
    }
    return null;
  });
}

before(async () => {
  postfix = await startPostfix(OUTSIDE);
  const port = postfix ? postfix.port : await startSink();
  [alpha, beta] = await Promise.all([
    TestNode.start('alpha.test', {
      ...MIN_KDF_ENV,
      SEALPOST__RELAY__HOST: '127.0.0.1',
      SEALPOST__RELAY__PORT: String(port),
      SEALPOST__RELAY__SECURITY: 'none',
    }),
    TestNode.start('beta.test', MIN_KDF_ENV),
  ]);
  const doc = await (await fetch(`${alpha.url}/api/v1/openapi.json`)).json().catch(() => ({}));
  ready = !!doc.paths?.['/pickup/open'];
  if (!ready) return;
  // Peering is an admin action on each side, with the other node's published record.
  sealpost(['admin', '--data', alpha.data, 'peer', 'add', 'beta.test', '--from', beta.url, '--yes']);
  sealpost(['admin', '--data', beta.data, 'peer', 'add', 'alpha.test', '--from', alpha.url, '--yes']);
  for (const [who, name] of [['alice', 'Alice Martin'], ['bob', 'Bob Baker']]) {
    const invite = alpha.addUser(`${who}@alpha.test`, { name });
    alpha.cli(`${who}@alpha.test`, PW[who]).run('enroll', '--invite', invite, '--address', `${who}@alpha.test`, '--name', name);
  }
  const invite = beta.addUser('dana@beta.test', { name: 'Dana Berg' });
  beta.cli('dana@beta.test', PW.dana).run('enroll', '--invite', invite, '--address', 'dana@beta.test', '--name', 'Dana Berg');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  alpha?.cleanup();
  beta?.cleanup();
  if (sink && sink.exitCode === null) sink.kill('SIGTERM');
  postfix?.stop();
  rmSync(work, { recursive: true, force: true });
  rmSync(mailDir, { recursive: true, force: true });
});

/** `who` signs in at `node` in a browser of their own and reads `subject` from alice; returns
 * the page. */
async function readsInBrowser(node, who, subject, expect, test) {
  const page = await browser.page();
  const shot = shooter(page, test);
  await signIn(page, node.url, who, PW[who.split('@')[0]]);
  const row = `[data-testid=message-row] >> text=${subject}`;
  await until(`the message in ${who}'s inbox`, 60_000, async () => {
    await page.click('text=Refresh');
    return page.waitForSelector(row, { timeout: 1_000 });
  });
  await shot('inbox');
  await page.click(row);
  await page.waitForSelector('[data-testid=reader]', { timeout: 60_000 });
  assert.equal(await page.textContent('[data-testid=sender]'), 'alice@alpha.test');
  assert.match(await page.textContent('[data-testid=signature-status]'), /Signed by alice@alpha\.test/);
  assert.match(await page.textContent('[data-testid=body]'), expect);
  await page.waitForSelector('text=loan-offer.pdf');
  await shot('read');
  return page;
}

async function sentState(token, id, address) {
  const r = await fetch(`${alpha.url}/api/v1/messages/${id}`, { headers: { authorization: `Bearer ${token}` } });
  const m = await r.json();
  return (m.item.delivery ?? []).find((d) => d.address === address)?.state;
}

test('pickup, the issue\'s scenario: alice sends one message with 5 MiB to bob@alpha.test, dana@beta.test and carol@outside.test; carol gets the mail through the relay, a scanner changes nothing, carol unlocks on a phone, reads, downloads byte-identical and replies with an attachment; alice reads the reply; bob and dana read the message', async (t) => {
  if (!ready) return t.skip('the node has no pickup routes yet (docs/pickup.md)');
  const alicePage = await browser.page();
  const shotA = shooter(alicePage, 'pickup-e2e-alice');
  await signIn(alicePage, alpha.url, 'alice@alpha.test', PW.alice);
  await alicePage.click('text=Write');
  for (const to of ['bob@alpha.test', 'dana@beta.test', CAROL]) {
    await alicePage.fill('#compose-to', to);
    await alicePage.press('#compose-to', 'Enter');
  }
  await alicePage.waitForSelector('[data-testid=recipient][data-state=pickup]', { timeout: 30_000 });
  // bob (local) and dana (beta.test, through the bridge) are both resolved with trusted keys.
  await until('bob and dana resolved', 30_000, async () => (await alicePage.$$('[data-testid=recipient][data-state=ok]')).length === 2);
  await alicePage.fill('#compose-subject', 'Your loan offer');
  await alicePage.fill('#compose-body', 'Dear Carol,\n\nthe offer is attached. Reference OSPREY-31.\n\nAlice');
  const file = join(work, 'loan-offer.pdf');
  const content = Buffer.concat([Buffer.from('%PDF-1.4 offer\n'), randomBytes(5 * 1024 * 1024)]);
  writeFileSync(file, content);
  await alicePage.setInputFiles('#compose-files', file);
  await shotA('composed');
  await alicePage.click('[data-testid=send]');
  await alicePage.waitForSelector('[data-testid=muc-dialog], [data-testid=error]', { timeout: 90_000 });
  const err = await alicePage.$('[data-testid=error]');
  if (err) assert.fail(`the app says: ${await err.textContent()}`);
  const muc = (await alicePage.textContent(`[data-testid=muc][data-address="${CAROL}"] [data-testid=muc-code]`)).replace(/\s+/g, '');
  secrets.push(muc, 'OSPREY-31', 'Your loan offer', content.subarray(100_000, 100_064));
  await shotA('unlock-code');
  await alicePage.click('[data-testid=muc-done]');

  // The notification mail: the link, and nothing of the message.
  const { link, mail } = await mailTo(CAROL);
  t.diagnostic(`notification mail through ${postfix ? 'Postfix into a Maildir' : 'the aiosmtpd sink'}`);
  const header = (name) => mail.headers.find(([k]) => k.toLowerCase() === name)?.[1];
  assert.match(header('auto-submitted') ?? '', /auto-generated/);
  assert.ok(header('message-id') && header('date'), 'Message-ID and Date are set');
  assert.ok(mail.html, 'an HTML part as well');
  assert.ok(!JSON.stringify(mail).includes('OSPREY-31') && !JSON.stringify(mail).includes('Your loan offer'), 'the mail holds no subject or content');
  assert.ok(!JSON.stringify(mail).includes(muc), 'the mail holds no unlock code');
  const pickupUrl = alpha.url + link.slice(link.indexOf('/pickup#'));

  const token = await bearerLogin(alpha.url, 'alice@alpha.test', PW.alice);
  const sent = await (await fetch(`${alpha.url}/api/v1/mailbox/sent`, { headers: { authorization: `Bearer ${token}` } })).json();
  const id = sent.items[0].message_id;
  const before = await sentState(token, id, CAROL);
  // A mail scanner fetches the link: the fragment is not sent, the page is served, nothing moves.
  const scan = await fetch(link.split('#')[0]);
  assert.equal(scan.status, 200);
  assert.equal(await sentState(token, id, CAROL), before, 'a GET of the link changes nothing');

  const carol = await browser.page({ phone: true });
  const consoleText = [];
  carol.on('console', (m) => consoleText.push(m.text()));
  const seen = [];
  let session = null;
  carol.on('request', (r) => seen.push({ url: r.url(), auth: r.headers().authorization ?? '' }));
  carol.on('response', async (r) => { if (r.url().endsWith('/api/v1/pickup/unlock') && r.ok()) session = (await r.json()).session; });
  const shotC = shooter(carol, 'pickup-e2e-carol');
  await carol.goto(pickupUrl);
  await carol.waitForSelector('[data-testid=pickup-form]');
  assert.ok(!carol.url().includes('#'), 'the token left the address bar');
  assert.match(await carol.textContent('[data-testid=pickup-sender]'), /alice@alpha\.test/);
  await shotC('link-opened');
  await carol.fill('#pickup-code', 'ZZZZ-ZZZZ-ZZZZ-ZZZZ');
  await carol.click('[data-testid=pickup-unlock]');
  await carol.waitForSelector('[data-testid=error] >> text=Wrong code');
  assert.match(await carol.textContent('[data-testid=error]'), /4 attempts left/);
  await shotC('wrong-code');
  await carol.fill('#pickup-code', muc.toLowerCase().replace(/(.{4})/g, '$1 '));
  await carol.click('[data-testid=pickup-unlock]');
  await carol.waitForSelector('[data-testid=pickup-message], [data-testid=pickup-form] [data-testid=error], [data-testid=pickup-gone]', { timeout: 90_000 });
  if (!(await carol.$('[data-testid=pickup-message]'))) assert.fail(`the pickup page says: ${await carol.textContent('main')}`);
  assert.match(await carol.textContent('[data-testid=pickup-body]'), /OSPREY-31/);
  assert.match(await carol.textContent('[data-testid=ca-line]'), /^✔ That key is certified/);
  await shotC('read');
  const [download] = await Promise.all([carol.waitForEvent('download'), carol.click('text=Download')]);
  const saved = join(work, 'carol-loan-offer.pdf');
  await download.saveAs(saved);
  assert.ok(readFileSync(saved).equals(content), 'the attachment arrives byte-identical');
  await carol.waitForSelector('text=Decrypted and verified');
  await shotC('downloaded');
  assert.equal(await sentState(token, id, CAROL), 'read');

  const doc = await (await fetch(`${alpha.url}/api/v1/openapi.json`)).json();
  if (doc.paths['/pickup/submit']) {
    await carol.click('[data-testid=pickup-reply]');
    await carol.fill('#reply-body', 'Thank you, Alice. Signed form attached. KESTREL-8\nCarol');
    const form = join(work, 'signed-form.txt');
    writeFileSync(form, 'signed by carol\n' + 'y'.repeat(90_000));
    await carol.setInputFiles('#reply-files', form);
    await carol.click('[data-testid=reply-send]');
    await carol.waitForSelector('[data-testid=reply-sent], [data-testid=reply-form] [data-testid=error]', { timeout: 90_000 });
    if (!(await carol.$('[data-testid=reply-sent]'))) assert.fail(`the reply was refused: ${await carol.textContent('[data-testid=reply-form] [data-testid=error]')}`);
    await shotC('replied');

    secrets.push('KESTREL-8', 'y'.repeat(64));

    // Alice reads it in her web app, decrypted in her browser: from carol@outside.test,
    // authenticated by the unlock code she gave carol; the attachment byte-identical.
    await alicePage.goto(alpha.url + '/#/mail/inbox');
    await until('the reply in alice\'s inbox', 30_000, async () => {
      await alicePage.click('text=Refresh');
      return alicePage.waitForSelector(`[data-testid=message-row] >> text=${CAROL}`, { timeout: 1_000 });
    });
    await alicePage.click(`[data-testid=message-row] >> text=${CAROL}`);
    await alicePage.waitForSelector('[data-testid=reader]', { timeout: 60_000 });
    assert.match(await alicePage.textContent('[data-testid=body]'), /KESTREL-8/);
    assert.equal(await alicePage.textContent('[data-testid=sender]'), CAROL);
    assert.match(await alicePage.textContent('[data-testid=via-pickup]'), /Authenticated by the unlock code you gave them/);
    const [replyDownload] = await Promise.all([alicePage.waitForEvent('download'), alicePage.click('text=Download')]);
    const got = join(work, 'alice-signed-form.txt');
    await replyDownload.saveAs(got);
    assert.ok(readFileSync(got).equals(readFileSync(form)), 'alice gets carol\'s attachment byte-identical');
    await shotA('reply-read');
    assert.equal(await sentState(token, id, CAROL), 'replied');

    // Alice's next message to carol continues the thread: no new code, a new link, and carol
    // opens it with the code she already has.
    await alicePage.goto(alpha.url + '/#/compose');
    await alicePage.waitForSelector('#compose-to');
    await alicePage.fill('#compose-to', CAROL);
    await alicePage.press('#compose-to', 'Enter');
    await alicePage.waitForSelector('[data-testid=recipient][data-state=pickup]', { timeout: 30_000 });
    await alicePage.fill('#compose-subject', 'Next steps');
    await alicePage.fill('#compose-body', 'Thank you, Carol. Next steps: PLOVER-5.');
    await alicePage.click('[data-testid=send]');
    await alicePage.waitForSelector('[data-testid=sent], [data-testid=muc-dialog], [data-testid=error]', { timeout: 90_000 });
    const sendErr = await alicePage.$('[data-testid=error]');
    if (sendErr) assert.fail(`the app says: ${await sendErr.textContent()}`);
    assert.equal(await alicePage.$('[data-testid=muc-dialog]'), null, 'no new unlock code in a thread');
    assert.match(await alicePage.textContent('[data-testid=sent-continued]'), /carol@outside\.test: the same unlock code as before/);
    await shotA('next-message-same-code');
    secrets.push('PLOVER-5');
    const { link: next } = await mailTo(CAROL, 60_000, [link]);
    assert.notEqual(next, link, 'a new link for the new message');
    await carol.goto('about:blank');
    await carol.goto(alpha.url + next.slice(next.indexOf('/pickup#')));
    await carol.waitForSelector('[data-testid=pickup-form]');
    await carol.fill('#pickup-code', muc);
    await carol.click('[data-testid=pickup-unlock]');
    await carol.waitForSelector('[data-testid=pickup-message], [data-testid=pickup-form] [data-testid=error], [data-testid=pickup-gone]', { timeout: 90_000 });
    if (!(await carol.$('[data-testid=pickup-message]'))) assert.fail(`the pickup page says: ${await carol.textContent('main')}`);
    assert.match(await carol.textContent('[data-testid=pickup-body]'), /PLOVER-5/);
    await shotC('next-message-same-code');
  }
  await alicePage.goto(`${alpha.url}/#/mail/sent/${id}`);
  await alicePage.waitForSelector('[data-testid=pickup-delivery]');
  await shotA('sent-states');

  // The same message, read by the organisation's own bob and by dana at the peered beta.test.
  for (const [node, who] of [[alpha, 'bob@alpha.test'], [beta, 'dana@beta.test']]) {
    const page = await readsInBrowser(node, who, 'Your loan offer', /OSPREY-31/, `pickup-e2e-${who.split('@')[0]}`);
    await page.context().close();
  }

  assert.ok(!consoleText.some((l) => l.includes(muc)), 'no MUC in the console');
  const pickupToken = link.slice(link.indexOf('#') + 1);
  assert.ok(session, 'the unlock answer was seen');
  for (const r of seen) {
    for (const secret of [pickupToken, session, muc]) assert.ok(!r.url.includes(secret), `a secret in the URL ${r.url}`);
    if (r.auth) assert.match(r.url, /\/api\/v1\/pickup\//, `the session went to ${r.url}`);
  }
  assert.equal(await carol.evaluate(() => localStorage.length + sessionStorage.length), 0);
  await carol.context().close();
  await alicePage.context().close();
});

/** Alice sends `subject` to `to` alone from the browser; returns the MUC shown and the
 * message ID. */
async function sendPickup(page, to, subject) {
  await page.goto(alpha.url + '/#/compose');
  await page.waitForSelector('#compose-to');
  await page.fill('#compose-to', to);
  await page.press('#compose-to', 'Enter');
  await page.waitForSelector('[data-testid=recipient][data-state=pickup]', { timeout: 30_000 });
  await page.fill('#compose-subject', subject);
  await page.fill('#compose-body', `${subject}: the details.`);
  await page.click('[data-testid=send]');
  await page.waitForSelector('[data-testid=muc-dialog], [data-testid=error]', { timeout: 90_000 });
  const err = await page.$('[data-testid=error]');
  if (err) assert.fail(`the app says: ${await err.textContent()}`);
  const muc = (await page.textContent('[data-testid=muc-code]')).replace(/\s+/g, '');
  secrets.push(muc, subject);
  await page.click('[data-testid=muc-done]');
  const token = await bearerLogin(alpha.url, 'alice@alpha.test', PW.alice);
  const sent = await (await fetch(`${alpha.url}/api/v1/mailbox/sent`, { headers: { authorization: `Bearer ${token}` } })).json();
  return { muc, id: sent.items[0].message_id, token };
}

test('pickup: locked after five wrong codes, alice sees it and gives a new code that opens it; a withdrawn pickup says so', async (t) => {
  if (!ready) return t.skip('the node has no pickup routes yet (docs/pickup.md)');
  const alicePage = await browser.page();
  const shotA = shooter(alicePage, 'pickup-e2e-relock');
  await signIn(alicePage, alpha.url, 'alice@alpha.test', PW.alice);

  const DAVE = 'dave@outside.test';
  const { muc: first, id, token } = await sendPickup(alicePage, DAVE, 'Account statement');
  const { link } = await mailTo(DAVE);
  const pickupToken = link.slice(link.indexOf('#') + 1);
  // Five wrong verifiers (as a guesser would send them): the fifth locks.
  for (let i = 0; i < 5; i++) {
    const r = await fetch(`${alpha.url}/api/v1/pickup/unlock`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: pickupToken, verifier: randomBytes(32).toString('base64') }) });
    assert.ok(r.status === 401 || r.status === 403, `wrong code ${i + 1}: ${r.status}`);
  }
  assert.equal(await sentState(token, id, DAVE), 'locked');

  const dave = await browser.page({ phone: true });
  const shotD = shooter(dave, 'pickup-e2e-dave');
  await dave.goto(alpha.url + link.slice(link.indexOf('/pickup#')));
  await dave.waitForSelector('[data-testid=pickup-gone] >> text=Locked');
  await shotD('locked');

  await alicePage.goto(`${alpha.url}/#/mail/sent/${id}`);
  await alicePage.waitForSelector('[data-testid=pickup-delivery] [data-state=locked]');
  await shotA('sent-locked');
  await alicePage.click('[data-testid=pickup-relock]');
  await alicePage.waitForSelector('[data-testid=muc-dialog]', { timeout: 60_000 });
  const second = (await alicePage.textContent('[data-testid=muc-code]')).replace(/\s+/g, '');
  secrets.push(second);
  assert.notEqual(second, first);
  await shotA('new-code');
  await alicePage.click('[data-testid=muc-done]');
  await alicePage.waitForSelector('[data-testid=pickup-delivery] [data-state=notified]');

  // The old code no longer opens it; the new one does.
  await dave.goto('about:blank');
  await dave.goto(alpha.url + link.slice(link.indexOf('/pickup#')));
  await dave.waitForSelector('[data-testid=pickup-form]');
  await dave.fill('#pickup-code', first);
  await dave.click('[data-testid=pickup-unlock]');
  await dave.waitForSelector('[data-testid=error] >> text=Wrong code');
  await dave.fill('#pickup-code', second);
  await dave.click('[data-testid=pickup-unlock]');
  await dave.waitForSelector('[data-testid=pickup-message]', { timeout: 90_000 });
  assert.match(await dave.textContent('[data-testid=pickup-body]'), /Account statement: the details/);
  await shotD('opened-with-new-code');
  await dave.context().close();

  // Withdrawn before it is read: the link says so, and no code opens it.
  const ERIN = 'erin@outside.test';
  const { id: id2 } = await sendPickup(alicePage, ERIN, 'Draft contract');
  const { link: link2 } = await mailTo(ERIN);
  await alicePage.goto(`${alpha.url}/#/mail/sent/${id2}`);
  await alicePage.waitForSelector('[data-testid=pickup-withdraw]');
  alicePage.once('dialog', (d) => d.accept());
  await alicePage.click('[data-testid=pickup-withdraw]');
  await alicePage.waitForSelector('[data-testid=pickup-delivery] [data-state=withdrawn]');
  assert.equal(await alicePage.$('[data-testid=pickup-withdraw]'), null, 'nothing more to withdraw');
  await shotA('withdrawn');
  const erin = await browser.page({ phone: true });
  const shotE = shooter(erin, 'pickup-e2e-erin');
  await erin.goto(alpha.url + link2.slice(link2.indexOf('/pickup#')));
  await erin.waitForSelector('[data-testid=pickup-gone] >> text=withdrew this message');
  await shotE('withdrawn');
  await erin.context().close();

  // The relay refuses an address for good (Postfix knows no such mailbox): alice sees it failed,
  // with the relay's answer in words.
  if (postfix) {
    const NOBODY = 'nobody@outside.test';
    const { id: id3 } = await sendPickup(alicePage, NOBODY, 'Undeliverable notice');
    // The open message follows the state while the notification is pending.
    await alicePage.goto(`${alpha.url}/#/mail/sent/${id3}`);
    await alicePage.waitForSelector('[data-testid=pickup-delivery] [data-state=failed]', { timeout: 60_000 });
    assert.match(await alicePage.textContent('[data-testid=pickup-delivery]'), /Not delivered to nobody@outside\.test: /);
    await shotA('notification-failed');
  }
  await alicePage.goto(`${alpha.url}/#/mail/sent`);
  await alicePage.waitForSelector('[data-testid=message-row]');
  await shotA('sent-folder');
  await alicePage.context().close();
});

test('pickup: what the CLI sends to an outside address opens on the pickup page with the code the CLI printed (Rust seal, browser unlock)', async (t) => {
  if (!ready) return t.skip('the node has no pickup routes yet (docs/pickup.md)');
  const FRANK = 'frank@outside.test';
  const cli = alpha.cli('alice@alpha.test', PW.alice);
  const note = join(work, 'terms.txt');
  const terms = 'Terms and conditions, version 7. HERON-55.\n'.repeat(200);
  writeFileSync(note, terms);
  const pw = join(cli.dir, '.password');
  const r = spawnSync(BIN, ['client', '--node', alpha.url, '--dir', cli.dir, '--password-file', pw, 'send', '--to', FRANK, '--subject', 'Terms from the CLI', '--body', 'Sent from a terminal. HERON-55.', '--attach', note], { encoding: 'utf8', env: { ...process.env, RUST_LOG: 'warn' }, timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const m = /unlock code: ([0-9A-Z-]{19})/.exec(r.stderr);
  assert.ok(m, `the CLI printed an unlock code:\n${r.stderr}`);
  secrets.push(m[1].replace(/-/g, ''), 'HERON-55');
  const { link } = await mailTo(FRANK);
  const frank = await browser.page({ phone: true });
  const shot = shooter(frank, 'pickup-e2e-cli-sent');
  await frank.goto(alpha.url + link.slice(link.indexOf('/pickup#')));
  await frank.waitForSelector('[data-testid=pickup-form]');
  await frank.fill('#pickup-code', m[1]);
  await frank.click('[data-testid=pickup-unlock]');
  await frank.waitForSelector('[data-testid=pickup-message], [data-testid=pickup-form] [data-testid=error], [data-testid=pickup-gone]', { timeout: 90_000 });
  if (!(await frank.$('[data-testid=pickup-message]'))) assert.fail(`the pickup page says: ${await frank.textContent('main')}`);
  assert.match(await frank.textContent('[data-testid=pickup-body]'), /HERON-55/);
  const [download] = await Promise.all([frank.waitForEvent('download'), frank.click('text=Download')]);
  const saved = join(work, 'frank-terms.txt');
  await download.saveAs(saved);
  assert.equal(readFileSync(saved, 'utf8'), terms);
  await shot('read');
  await frank.context().close();
});

test('pickup: the node\'s data directory holds no plaintext, attachment bytes or unlock code', async (t) => {
  if (!ready) return t.skip('the node has no pickup routes yet (docs/pickup.md)');
  assert.ok(secrets.length >= 8);
  const { statSync } = await import('node:fs');
  const files = [];
  const walk = (d) => { for (const e of readdirSync(d)) { const p = join(d, e); const st = statSync(p); if (st.isDirectory()) walk(p); else if (st.isFile()) files.push(p); } };
  walk(alpha.data);
  const needles = secrets.flatMap((x) => (typeof x === 'string' ? [Buffer.from(x), ...(/^[0-9A-Z]{16}$/.test(x) ? [Buffer.from(x.match(/.{4}/g).join('-'))] : [])] : [x]));
  for (const f of files) {
    const bytes = readFileSync(f);
    for (const n of needles) assert.ok(!bytes.includes(n), `${f} holds ${n.length > 20 ? 'attachment bytes' : n.toString()}`);
  }
});
