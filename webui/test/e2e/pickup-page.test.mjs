// The pickup page (dist/pickup.html) in Debian's Chromium against a stand-in of the node's
// pickup API (docs/pickup.md), serving the built files with the node's CSP. The message is
// made with the sender's own code (pickup-crypto, pgp), the reply is decrypted here with the
// sender's key: the page's cryptography is checked end to end without a node. The same flow
// against real nodes, with the notification mail, is in pickup.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, extname } from 'node:path';
import { launchBrowser, shooter, assertFits, WEB_DIR, WEBUI } from './harness.mjs';
import { load } from '../unit/bundle.mjs';

const { pgp, pc } = await load(join(WEBUI, 'test/e2e/pickup-fixture.ts'), ['browser']);
const MIN = { m_cost_kib: 8192, t_cost: 1, p_cost: 1 };
// The node's policy (node/src/api/web.rs `CSP`).
const CSP = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
const sha = (b) => createHash('sha256').update(b).digest('hex');
const b64u = (b) => Buffer.from(b).toString('base64url');
const work = mkdtempSync(join(tmpdir(), 'sealpost-pickup-page-'));

let server, url, browser, world;
const requests = [];

/** A message from alice (certified by Alpha's CA) to bob and carol@outside.test, sealed as the
 * web app's compose does, with one attachment. */
async function makeWorld() {
  const ca = await pgp.generateUserKey('ca@alpha.test', 'Alpha CA');
  const alice = await pgp.generateUserKey('alice@alpha.test', 'Alice Martin');
  const aliceCert = await pgp.readCert(await pgp.certification(ca.privateKey, alice.privateKey.toPublic(), 'alice@alpha.test', { kind: 'certify' }));
  const made = await pc.makePickup('carol@outside.test', alice.privateKey, MIN);
  const messageId = randomBytes(16).toString('hex');
  const attachment = Buffer.concat([Buffer.from('%PDF-1.4 loan offer\n'), randomBytes(200_000)]);
  const sealedAtt = Buffer.from(await pgp.seal(attachment, [made.cert], alice.privateKey));
  const to = ['bob@alpha.test', 'carol@outside.test'];
  const head = {
    v: 1, message_id: messageId, from: 'alice@alpha.test', to, subject: 'Your loan offer',
    body: 'Dear Carol,\n\nplease find the offer attached. The reference is ZEPHYR-77.\n\nAlice Martin\nAlpha Bank',
    attachments: [{ name: 'loan-offer.pdf', media_type: 'application/pdf', size: attachment.length, sha256: sha(attachment), part: 1 }],
    sent_at: Math.floor(Date.now() / 1000),
  };
  const sealedHead = Buffer.from(await pgp.seal(new TextEncoder().encode(JSON.stringify(head)), [made.cert], alice.privateKey));
  const env = {
    v: 1, message_id: messageId, from: 'alice@alpha.test', to, created_at: head.sent_at,
    parts: [{ sha256: sha(sealedHead), size: sealedHead.length }, { sha256: sha(sealedAtt), size: sealedAtt.length }],
    pickup: { 'carol@outside.test': made.fingerprint },
  };
  const envText = JSON.stringify(env);
  const signature = await pgp.signDetached(new TextEncoder().encode(envText), alice.privateKey);
  return {
    ca, alice, aliceCert, made, attachment, parts: [sealedHead, sealedAtt], envText, signature,
    token: b64u(randomBytes(32)), session: b64u(randomBytes(32)),
    state: 'open', attempts: 5, uploads: new Map(), replies: [],
  };
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'content-security-policy': CSP });
  res.end(JSON.stringify(body));
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks);
}

async function handle(req, res) {
  const body = await readBody(req);
  requests.push({ method: req.method, url: req.url, headers: JSON.stringify(req.headers), body: body.toString('latin1') });
  const w = world;
  const path = req.url.split('?')[0];
  const bearer = req.headers.authorization === `Bearer ${w.session}`;
  const types = { '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.html': 'text/html; charset=utf-8' };
  if (req.method === 'GET' && (path === '/pickup' || path.startsWith('/assets/'))) {
    const file = path === '/pickup' ? 'pickup.html' : path.slice(1);
    if (!/^(pickup\.html|assets\/[A-Za-z0-9._-]+)$/.test(file)) return json(res, 404, { code: 'not_found', message: 'no' });
    res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream', 'content-security-policy': CSP, 'referrer-policy': 'no-referrer' });
    return res.end(readFileSync(join(WEB_DIR, file)));
  }
  if (req.method === 'GET' && path === '/api/v1/org') {
    return json(res, 200, { domain: 'alpha.test', ca_fingerprint: w.ca.fingerprint, ca_cert: w.ca.publicArmored, node_key: '', limits: { inline_part_max_bytes: 65536 }, accept_partial: false, version: 'test' });
  }
  const q = body.length && /json/.test(req.headers['content-type'] ?? '') ? JSON.parse(body.toString('utf8')) : {};
  const gone = () => {
    if (w.state === 'expired') json(res, 410, { code: 'pickup_expired', message: 'expired' });
    else if (w.state === 'withdrawn') json(res, 410, { code: 'pickup_withdrawn', message: 'withdrawn' });
    else return false;
    return true;
  };
  if (req.method === 'POST' && path === '/api/v1/pickup/open') {
    if (q.token !== w.token) return json(res, 404, { code: 'pickup_not_found', message: 'unknown link' });
    if (gone()) return;
    return json(res, 200, { state: w.state, address: 'carol@outside.test', sender: 'alice@alpha.test', sender_name: 'Alice Martin', organisation: 'alpha.test', expires_at: Math.floor(Date.now() / 1000) + 30 * 86400, salt: w.made.seal.salt, kdf: w.made.seal.kdf, attempts_left: w.attempts });
  }
  if (req.method === 'POST' && path === '/api/v1/pickup/unlock') {
    if (q.token !== w.token) return json(res, 404, { code: 'pickup_not_found', message: 'unknown link' });
    if (gone()) return;
    if (w.state === 'locked') return json(res, 403, { code: 'pickup_locked', message: 'locked' });
    if (q.verifier !== w.made.seal.verifier) {
      w.attempts -= 1;
      if (w.attempts === 0) {
        w.state = 'locked';
        return json(res, 403, { code: 'pickup_locked', message: 'locked' });
      }
      return json(res, 401, { code: 'wrong_unlock_code', message: 'wrong unlock code', attempts_left: w.attempts });
    }
    return json(res, 200, {
      session: w.session, session_expires_at: 0, address: 'carol@outside.test', locked_key: w.made.seal.locked_key, cert: w.made.seal.cert,
      message_id: JSON.parse(w.envText).message_id, envelope: w.envText, signature: w.signature, sender_cert: w.aliceCert.armor(),
      ca_fingerprint: w.ca.fingerprint, parts: w.parts.map((p, index) => ({ index, size: p.length, sha256: sha(p) })),
    });
  }
  if (!path.startsWith('/api/v1/pickup/')) return json(res, 404, { code: 'no_route', message: 'no route' });
  if (!bearer) return json(res, 401, { code: 'unauthenticated', message: 'no session' });
  const m = /^\/api\/v1\/pickup\/parts\/(\d+)$/.exec(path);
  if (req.method === 'GET' && m) {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    return res.end(w.parts[Number(m[1])]);
  }
  if (req.method === 'POST' && path === '/api/v1/pickup/envelope') {
    const verdict = { fingerprint: w.alice.fingerprint, address: 'alice@alpha.test', level: 'full', amount: 120, explanation: [] };
    return json(res, 200, { message_id: randomBytes(16).toString('hex'), expires_at: 0, sender: { address: 'carol@outside.test', fingerprint: w.made.fingerprint, cert: w.made.seal.cert, mode: 'pickup', verdict }, recipients: [{ address: 'alice@alpha.test', fingerprint: w.alice.fingerprint, cert: w.aliceCert.armor(), mode: 'local', verdict }] });
  }
  const up = /^\/api\/v1\/pickup\/uploads\/([0-9a-f]{64})$/.exec(path);
  if (req.method === 'PUT' && up) {
    assert.equal(sha(body), up[1]);
    w.uploads.set(up[1], body);
    return json(res, 200, { sha256: up[1], size: body.length });
  }
  if (req.method === 'POST' && path === '/api/v1/pickup/submit') {
    w.replies.push(q);
    const env = JSON.parse(q.envelope);
    return json(res, 200, { message_id: env.message_id, accepted_at: 0, duplicate: false, recipients: [{ address: 'alice@alpha.test', state: 'delivered' }] });
  }
  return json(res, 404, { code: 'no_route', message: 'no route' });
}

before(async () => {
  world = await makeWorld();
  server = createServer((req, res) => handle(req, res).catch((e) => { console.error(e); json(res, 500, { code: 'internal', message: String(e) }); }));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${server.address().port}`;
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  server?.close();
});

/** Opens `link` as a new document (a fragment-only change would not reload the page). */
async function open(page, link) {
  await page.goto('about:blank');
  await page.goto(link);
}

/** A fresh browser context on a phone, recording the console. */
async function phonePage() {
  const page = await browser.page({ phone: true });
  const consoleText = [];
  page.on('console', (m) => consoleText.push(m.text()));
  return { page, consoleText };
}

test('pickup page (stand-in API): carol opens the link on a phone, a wrong code shows the attempts left, the right one opens, verifies, downloads and replies', async () => {
  const { page, consoleText } = await phonePage();
  const shot = shooter(page, 'pickup-page');
  await page.goto(`${url}/pickup#${world.token}`);
  await page.waitForSelector('[data-testid=pickup-form]');
  assert.ok(!page.url().includes('#') && !page.url().includes(world.token), 'the token is gone from the address bar');
  assert.equal(await page.evaluate(() => location.hash), '');
  assert.match(await page.textContent('[data-testid=pickup-sender]'), /Alice Martin \(alice@alpha\.test\)/);
  await shot('code-asked');

  // Malformed input is refused before any request.
  const unlocks = () => requests.filter((r) => r.url === '/api/v1/pickup/unlock').length;
  await page.fill('#pickup-code', 'ABCD-EFGH');
  await page.click('[data-testid=pickup-unlock]');
  await page.waitForSelector('[data-testid=error]');
  assert.match(await page.textContent('[data-testid=error]'), /too short: 8 of 16/);
  assert.equal(unlocks(), 0);
  await page.fill('#pickup-code', 'ABCD-EFGH-JKMN-PQRU');
  await page.click('[data-testid=pickup-unlock]');
  await page.waitForSelector('[data-testid=error] >> text=cannot contain “U”');
  assert.equal(unlocks(), 0);

  // A wrong code: the node counts it, the page says how many are left.
  const wrong = pc.groupMuc(pc.generateMuc());
  await page.fill('#pickup-code', wrong);
  await page.click('[data-testid=pickup-unlock]');
  await page.waitForSelector('[data-testid=error] >> text=Wrong code');
  assert.match(await page.textContent('[data-testid=error]'), /4 attempts left/);
  await shot('wrong-code');

  // The right one, typed loosely: lower case, spaces, an O for a 0.
  const typed = pc.groupMuc(world.made.muc).toLowerCase().replace(/-/g, ' ').replace(/0/g, 'o');
  await page.fill('#pickup-code', typed);
  await page.click('[data-testid=pickup-unlock]');
  await page.waitForSelector('[data-testid=pickup-message]', { timeout: 60_000 });
  assert.match(await page.textContent('[data-testid=pickup-body]'), /ZEPHYR-77/);
  const verified = await page.textContent('[data-testid=pickup-verified]');
  assert.match(verified, /Signed by alice@alpha\.test/);
  assert.ok(verified.replace(/\s+/g, '').includes(world.alice.fingerprint), 'the sender key fingerprint is shown');
  assert.ok(verified.replace(/\s+/g, '').includes(world.ca.fingerprint), 'the CA fingerprint is shown');
  assert.match(await page.textContent('[data-testid=ca-line]'), /^✔ That key is certified by alpha\.test/);
  assert.match(verified, /Not checked/);
  await shot('message-read');

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('text=Download')]);
  const saved = join(work, 'loan-offer.pdf');
  await download.saveAs(saved);
  assert.ok(readFileSync(saved).equals(world.attachment), 'the attachment arrives byte-identical');
  await page.waitForSelector('text=Decrypted and verified');
  await shot('attachment-downloaded');

  // The reply: encrypted in the page to alice, signed with the pickup key.
  await page.click('[data-testid=pickup-reply]');
  await page.fill('#reply-body', 'Thank you, Alice. Signed form attached.\nCarol');
  const form = join(work, 'signed-form.txt');
  writeFileSync(form, 'signed by carol ' + 'x'.repeat(70_000));
  await page.setInputFiles('#reply-files', form);
  await shot('reply-written');
  await page.click('[data-testid=reply-send]');
  await page.waitForSelector('[data-testid=reply-sent], [data-testid=reply-form] [data-testid=error]', { timeout: 60_000 });
  const replyError = await page.$('[data-testid=reply-form] [data-testid=error]');
  if (replyError) assert.fail(`the reply was not sent: ${await replyError.textContent()}`);
  await shot('reply-sent');

  assert.equal(world.replies.length, 1);
  const r = world.replies[0];
  const env = JSON.parse(r.envelope);
  assert.equal(env.from, 'carol@outside.test');
  assert.deepEqual(env.to, ['alice@alpha.test']);
  await pgp.verifyDetached(new TextEncoder().encode(r.envelope), r.signature, world.made.cert);
  const headCipher = Buffer.from(r.inline_parts['0'], 'base64');
  assert.equal(sha(headCipher), env.parts[0].sha256);
  const head = JSON.parse(new TextDecoder().decode((await pgp.open(headCipher, world.alice.privateKey, world.made.cert)).data));
  assert.match(head.body, /Signed form attached/);
  assert.equal(head.attachments[0].name, 'signed-form.txt');
  const attCipher = world.uploads.get(env.parts[1].sha256);
  const att = (await pgp.open(attCipher, world.alice.privateKey, world.made.cert)).data;
  assert.ok(Buffer.from(att).equals(readFileSync(form)), 'alice can read the attachment of the reply');

  // Nothing secret in a URL, the console or web storage; the session only in Authorization.
  const muc = world.made.muc;
  for (const q of requests) {
    for (const secret of [world.token, world.session, muc, pc.groupMuc(muc)]) assert.ok(!q.url.includes(secret), `a secret in ${q.url}`);
    assert.ok(!q.body.includes(muc) && !q.body.includes(pc.groupMuc(muc)) && !q.headers.includes(muc), `the MUC was sent in ${q.url}`);
    if (q.body.includes(world.session)) assert.fail(`the session was sent in the body of ${q.url}`);
    if (q.url.startsWith('/assets/') || q.url.startsWith('/pickup')) assert.ok(!q.headers.includes(world.session), `the session was sent with ${q.url}`);
  }
  assert.ok(!consoleText.some((t) => t.includes(muc) || t.includes(world.token) || t.includes(world.session)), 'no secret in the console');
  assert.equal(await page.evaluate(() => localStorage.length + sessionStorage.length), 0);
  await page.context().close();
});

test('pickup page (stand-in API): locked after the last wrong code, expired, withdrawn, unknown and missing links say so in plain words', async () => {
  const { page } = await phonePage();
  const shot = shooter(page, 'pickup-page-states');
  world.state = 'open';
  world.attempts = 1;
  await page.goto(`${url}/pickup#${world.token}`);
  await page.waitForSelector('[data-testid=pickup-form]');
  assert.match(await page.textContent('#pickup-code-hint'), /1 attempt left/);
  await page.fill('#pickup-code', pc.groupMuc(pc.generateMuc()));
  await page.click('[data-testid=pickup-unlock]');
  await page.waitForSelector('[data-testid=pickup-gone]');
  assert.match(await page.textContent('[data-testid=pickup-gone]'), /Locked after too many wrong codes.*Ask the sender for a new unlock code/s);
  await shot('locked');
  // Opening a locked pickup again says so before any code is typed.
  await open(page, `${url}/pickup#${world.token}`);
  await page.waitForSelector('[data-testid=pickup-gone] >> text=Locked');

  for (const [state, words] of [['expired', /has expired/], ['withdrawn', /withdrew this message/]]) {
    world.state = state;
    await open(page, `${url}/pickup#${world.token}`);
    await page.waitForSelector('[data-testid=pickup-gone]');
    assert.match(await page.textContent('[data-testid=pickup-gone]'), words);
    await shot(state);
  }
  await open(page, `${url}/pickup#${b64u(randomBytes(32))}`);
  await page.waitForSelector('[data-testid=pickup-gone] >> text=does not open a message');
  await shot('unknown-link');
  await open(page, `${url}/pickup`);
  await page.waitForSelector('[data-testid=pickup-gone] >> text=Open the link from your mail');
  await shot('no-token');
  await assertFits(page, 'the pickup page without a token');
  await page.context().close();
});
