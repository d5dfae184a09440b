// Issue 19, registered mail in the browser (docs/evidence.md, "Registered mail"): alice sends
// bob a registered message from the web app; bob's reader shows the notice with Accept and
// Refuse before any part is fetched (checked on the browser's requests); Accept signs the
// acceptance receipt in the browser (the statement the CLI signs, byte for byte: the node
// re-serialises it and refuses any other spelling), and the message opens; the node holds
// bob's receipt. A second registered message bob refuses: the refused view, and the parts stay
// closed. alice downloads the evidence bundle from Sent (`evidence-ID.json`), with its records
// pending (this node has no `[timestamping]`, so nothing is sealed).
// A registered message to a pickup recipient (alice's CLI, `send --registered`): the pickup
// page unlocks with the code and shows the notice with Accept and Refuse before any part is
// fetched (the browser's requests; the node refuses the part to the session as well), Accept
// signs the same statement with a key made in the page, and the message opens; the node's
// record says `pickup-muc`. At 1280x800 and on a 390x844 phone.
// Screenshots at 1280x800 and 390x844 land in test-artefacts/registered-*/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestNode, launchBrowser, shooter, signIn, MIN_KDF_ENV } from './harness.mjs';

const PW = { alice: 'correct horse battery staple', bob: 'purple monkey dishwasher 42' };
const ALICE = 'alice@alpha.test';
const BOB = 'bob@alpha.test';
let alpha, browser;
/** The messages sent so far (to tell the newest apart within one second). */
const sent = new Set(['']);

function sql(query) {
  return execFileSync('sqlite3', [join(alpha.data, 'sealpost.db'), query]).toString().trim();
}

before(async () => {
  alpha = await TestNode.start('alpha.test', MIN_KDF_ENV);
  for (const [address, name] of [[ALICE, 'Alice Martin'], [BOB, 'Bob Baker']]) {
    const invite = alpha.addUser(address, { name });
    alpha.cli(address, PW[address.split('@')[0]]).run('enroll', '--invite', invite, '--address', address, '--name', name);
  }
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  alpha?.cleanup();
});

/** alice writes a registered message to bob in `page` and sends it; its message ID. */
async function sendRegistered(page, shot, subject, body) {
  await page.goto(`${alpha.url}/#/mail/inbox`);
  await page.waitForSelector('#folder-title');
  await page.click('[data-testid=nav] >> text=Write');
  await page.fill('#compose-to', BOB);
  await page.press('#compose-to', 'Enter');
  await page.waitForSelector('[data-testid=recipient][data-state=ok]', { timeout: 60_000 });
  await page.check('[data-testid=registered]');
  assert.equal(await page.$('[data-testid=registered-refusal]'), null, 'a Sealpost recipient can get registered mail');
  await page.fill('#compose-subject', subject);
  await page.fill('#compose-body', body);
  if (shot) await shot('written');
  await page.click('[data-testid=send]');
  await page.waitForSelector('[data-testid=sent], [data-testid=error]', { timeout: 90_000 });
  if (await page.$('[data-testid=error]')) assert.fail(`the app says: ${await page.textContent('[data-testid=error]')}`);
  assert.match(await page.textContent('[data-testid=sent-registered]'), /Registered: bob@alpha\.test can open it only by signing a receipt/);
  if (shot) await shot('sent');
  const known = [...sent].map((x) => `'${x}'`).join(',');
  const id = sql(`SELECT id FROM messages WHERE id NOT IN (${known}) ORDER BY accepted_at DESC LIMIT 1`);
  sent.add(id);
  assert.match(id, /^[0-9a-f]{32}$/);
  // The signed envelope names bob as registered (what `send --registered` writes).
  assert.deepEqual(JSON.parse(sql(`SELECT envelope FROM messages WHERE id = '${id}'`)).registered, [BOB]);
  return id;
}

test('registered: bob accepts one message (receipt signed in the browser) and refuses another; alice downloads the evidence', async () => {
  const alicePage = await browser.page();
  const aliceShot = shooter(alicePage, 'registered-send');
  await signIn(alicePage, alpha.url, ALICE, PW.alice);
  // An outsider reached by unlock code can get registered mail too (the pickup page asks them
  // to decide): no refusal in words.
  await alicePage.click('[data-testid=nav] >> text=Write');
  for (const to of [BOB, 'carol@outside.test']) {
    await alicePage.fill('#compose-to', to);
    await alicePage.press('#compose-to', 'Enter');
  }
  await alicePage.waitForSelector('[data-testid=recipient][data-state=pickup]', { timeout: 60_000 });
  await alicePage.waitForSelector('[data-testid=recipient][data-state=ok]', { timeout: 60_000 });
  await alicePage.check('[data-testid=registered]');
  assert.equal((await alicePage.$$('[data-testid=registered-refusal]')).length, 0, 'Sealpost and pickup recipients can get it');

  const first = await sendRegistered(alicePage, aliceShot, 'Signed contract', 'The countersigned contract. Code word: PELICAN.');
  const second = await sendRegistered(alicePage, null, 'Notice of termination', 'We terminate the agreement. Code word: HERON.');

  // bob's browser: every request it makes is noted.
  const bobPage = await browser.page();
  const requests = [];
  bobPage.on('request', (r) => requests.push(new URL(r.url()).pathname));
  const partsOf = (id) => requests.filter((p) => p.startsWith(`/api/v1/messages/${id}/parts/`));
  const bobShot = shooter(bobPage, 'registered-read');
  await signIn(bobPage, alpha.url, BOB, PW.bob);
  // The list says it without opening anything: no subject, since the head is a part.
  await bobPage.waitForSelector(`[data-testid=row-registered][data-state=pending]`, { timeout: 60_000 });
  assert.equal((await bobPage.$$('[data-testid=row-registered][data-state=pending]')).length, 2);
  await bobShot('inbox');

  await bobPage.goto(`${alpha.url}/#/mail/inbox/${first}`);
  const notice = await bobPage.waitForSelector('[data-testid=registered-notice]', { timeout: 60_000 });
  assert.match(await notice.textContent(), /Registered: opening it confirms receipt\./);
  assert.ok(await bobPage.$('[data-testid=registered-accept]'));
  assert.ok(await bobPage.$('[data-testid=registered-refuse]'));
  assert.equal(await bobPage.textContent('[data-testid=sender]'), ALICE);
  await bobShot('notice');
  assert.deepEqual(partsOf(first), [], 'no part of the message is fetched before bob decides');
  assert.deepEqual(partsOf(second), []);
  assert.equal(sql(`SELECT count(*) FROM registered_receipts WHERE message_id = '${first}'`), '0');

  await bobPage.click('[data-testid=registered-accept]');
  await bobPage.waitForSelector('text=PELICAN', { timeout: 60_000 });
  assert.match(await bobPage.textContent('#msg-subject'), /Signed contract/);
  await bobPage.waitForSelector('[data-testid=registered-accepted]');
  assert.ok(partsOf(first).length > 0, 'the head is fetched once the receipt is accepted');
  await bobShot('accepted');

  // The node holds bob's receipt: the canonical statement the CLI would sign, about this
  // message and its parts, and bob's signature over it.
  const [decision, recipient, statement] = sql(`SELECT decision || char(31) || recipient || char(31) || statement FROM registered_receipts WHERE message_id = '${first}'`).split('\x1f');
  assert.equal(decision, 'accept');
  assert.equal(recipient, BOB);
  const st = JSON.parse(statement);
  const env = JSON.parse(sql(`SELECT envelope FROM messages WHERE id = '${first}'`));
  assert.deepEqual(Object.keys(st), ['at', 'decision', 'format', 'message_id', 'parts', 'recipient']);
  assert.equal(statement, JSON.stringify(st), 'compact JSON, keys sorted');
  assert.equal(st.format, 'sealpost-receipt-v1');
  assert.equal(st.message_id, first);
  assert.deepEqual(st.parts, env.parts.map((p) => p.sha256));
  assert.ok(Math.abs(st.at - Date.now() / 1000) < 300);
  assert.equal(sql(`SELECT count(*) FROM evidence_records WHERE message_id = '${first}' AND event = 'AcceptanceByRecipient'`), '1');

  // The second: refused, then the refused view; its parts stay closed.
  await bobPage.goto(`${alpha.url}/#/mail/inbox/${second}`);
  await bobPage.waitForSelector('[data-testid=registered-notice]', { timeout: 60_000 });
  bobPage.once('dialog', (d) => d.accept());
  await bobPage.click('[data-testid=registered-refuse]');
  const refused = await bobPage.waitForSelector('[data-testid=registered-refused]', { timeout: 60_000 });
  assert.match(await refused.textContent(), /You refused this registered message/);
  await bobShot('refused');
  assert.equal(sql(`SELECT decision FROM registered_receipts WHERE message_id = '${second}'`), 'refuse');
  assert.equal(sql(`SELECT count(*) FROM evidence_records WHERE message_id = '${second}' AND event = 'RejectionByRecipient'`), '1');
  // Coming back to it (signed in again, on another device): still the refused view, still
  // nothing fetched.
  const again = await browser.page({ phone: true });
  again.on('request', (r) => requests.push(new URL(r.url()).pathname));
  await signIn(again, alpha.url, BOB, PW.bob);
  await again.waitForSelector('[data-testid=row-registered][data-state=refused]', { timeout: 60_000 });
  await again.goto(`${alpha.url}/#/mail/inbox/${second}`);
  await again.waitForSelector('[data-testid=registered-refused]', { timeout: 60_000 });
  assert.deepEqual(partsOf(second), [], 'a refused message is never fetched');

  // alice: the evidence bundle from Sent, saved as evidence-ID.json; pending explained.
  await alicePage.goto(`${alpha.url}/#/mail/sent/${first}`);
  await alicePage.waitForSelector('[data-testid=evidence]', { timeout: 60_000 });
  const [download] = await Promise.all([alicePage.waitForEvent('download'), alicePage.click('[data-testid=evidence-download]')]);
  assert.equal(download.suggestedFilename(), `evidence-${first}.json`);
  const bundle = JSON.parse(readFileSync(await download.path(), 'utf8'));
  assert.equal(bundle.format, 'sealpost-evidence-bundle-v1');
  assert.equal(bundle.message_id, first);
  assert.match(bundle.ca_cert, /BEGIN PGP PUBLIC KEY BLOCK/);
  const pending = await alicePage.waitForSelector('[data-testid=evidence-pending]');
  assert.ok(Number(await pending.getAttribute('data-pending')) > 0, 'no [timestamping]: the records are not sealed');
  assert.match(await pending.textContent(), /pending: not sealed yet/);
  await aliceShot('evidence');
});

test('registered pickup: the page shows the notice before any part, Accept signs with a key made in the page and opens it (desktop and phone)', async () => {
  const alice = alpha.cli(ALICE, PW.alice);
  for (const phone of [false, true]) {
    const to = phone ? 'dora@outside.test' : 'carol@outside.test';
    const word = phone ? 'OSPREY' : 'KESTREL';
    const out = alice.send('--to', to, '--subject', 'Registered offer', '--body', `The offer. Code word: ${word}.`, '--registered');
    const { link, muc } = out.pickups[to];
    const id = out.id;
    const env = JSON.parse(sql(`SELECT envelope FROM messages WHERE id = '${id}'`));
    assert.deepEqual(env.registered, [to]);

    const page = await browser.page({ phone });
    const requests = [];
    page.on('request', (r) => requests.push(new URL(r.url()).pathname));
    let session = null;
    page.on('response', async (r) => { if (r.url().endsWith('/api/v1/pickup/unlock') && r.ok()) session = (await r.json()).session; });
    const parts = () => requests.filter((p) => p.startsWith('/api/v1/pickup/parts/') || p.startsWith('/api/v1/pickup/messages/'));
    const shot = shooter(page, `registered-pickup-${phone ? 'phone' : 'desktop'}`);
    await page.goto(alpha.url + link.slice(link.indexOf('/pickup#')));
    await page.waitForSelector('[data-testid=pickup-form]');
    await page.fill('#pickup-code', muc);
    await page.click('[data-testid=pickup-unlock]');
    const shown = await page.waitForSelector('[data-testid=registered-notice], [data-testid=pickup-message], [data-testid=pickup-gone], [data-testid=pickup-form] [data-testid=error]', { timeout: 60_000 });
    assert.equal(await shown.getAttribute('data-testid'), 'registered-notice', await page.textContent('main'));
    assert.match(await shown.textContent(), /Registered: opening it will confirm receipt/);
    assert.ok(await page.$('[data-testid=registered-accept]'));
    assert.ok(await page.$('[data-testid=registered-refuse]'));
    await shot('notice');
    assert.deepEqual(parts(), [], 'no part of the message is fetched before Accept');
    assert.equal(sql(`SELECT count(*) FROM registered_receipts WHERE message_id = '${id}'`), '0');
    // The node, not the page, keeps it closed: the session's own request for the head is refused.
    assert.ok(session, 'the unlock answer was seen');
    const early = await fetch(`${alpha.url}/api/v1/pickup/parts/0`, { headers: { authorization: `Bearer ${session}` } });
    assert.equal(early.status, 403);
    assert.equal((await early.json()).code, 'receipt_required');

    await page.click('[data-testid=registered-accept]');
    await page.waitForSelector(`[data-testid=pickup-body] >> text=${word}`, { timeout: 60_000 });
    assert.ok(parts().length > 0, 'the head is fetched once accepted');
    assert.match(await page.textContent('[data-testid=registered-accepted]'), /you accepted it/);
    await shot('accepted');

    // The receipt: the statement the web app and the CLI sign, by a key made in the page (not
    // the pickup key), under the node's record that the unlock code was proven.
    const [decision, statement] = sql(`SELECT decision || char(31) || statement FROM registered_receipts WHERE message_id = '${id}'`).split('\x1f');
    assert.equal(decision, 'accept');
    const st = JSON.parse(statement);
    assert.equal(statement, JSON.stringify(st), 'compact JSON, keys sorted');
    assert.deepEqual([st.message_id, st.recipient, st.parts], [id, to, env.parts.map((p) => p.sha256)]);
    const record = JSON.parse(sql(`SELECT CAST(record AS TEXT) FROM evidence_records WHERE message_id = '${id}' AND event = 'AcceptanceByRecipient'`));
    assert.equal(record.recipient, to);
    assert.equal(record.detail.method, 'pickup-muc');
    assert.match(record.detail.recipient_key_certified, /^none: made in the pickup page/);
    assert.notEqual(record.detail.recipient_key.toUpperCase(), env.pickup[to].toUpperCase());
    assert.equal(record.detail.receipt_statement, statement);
    await page.context().close();
  }
});
