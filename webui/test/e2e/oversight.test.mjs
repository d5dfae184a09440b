// Issue 19's oversight story in one browser scenario ("What must be shown", first bullet),
// against real nodes: alpha.test and beta.test, peered both ways, each requiring its compliance
// copy (alpha's key made, locked and split 2-of-3 in its admin's browser; beta's made by GnuPG,
// whose secret key this test holds). alice writes ONE message to bob (local), dana@beta.test
// (federated) and carol@outside.test (pickup); Write names both archives before sending; every
// stored copy carries both compliance recipients (the heads, the PKESKs, GnuPG with beta's
// key); bob's reader, dana's reader and carol's pickup page (phone) say where copies went.
// Officer 1 requests access with a case reference and alone cannot read; officer 2 approves;
// officer 1 reads it in the browser; the access report and the log hold request and approval
// before the read. alice deletes the message: gone for her, still found by the officer's
// archive search, kept until the retention period ends.
// Screenshots at 1280x800 and 390x844 land in test-artefacts/oversight-*/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  TestNode, launchBrowser, shooter, signIn, until, bearerLogin, enrolAll, peerBoth,
  gpgComplianceKey, setUpCustody, requestAccess, approveCase, openCase, archiveSearch, complianceLog, assertAccessTrail, MIN_KDF_ENV,
} from './harness.mjs';

const PW = 'correct horse battery staple';
const ADMIN = 'admin@alpha.test';
const OFFICERS = ['officer1@alpha.test', 'officer2@alpha.test', 'officer3@alpha.test'];
const ALICE = 'alice@alpha.test';
const BOB = 'bob@alpha.test';
const DANA = 'dana@beta.test';
const CAROL = 'carol@outside.test';
const SUBJECT = 'Board minutes, March';
const BODY = 'The board approved the merger. Code word: CORMORANT.';
const CASE = 'Supervisory request FIN-2026-031';
let alpha, beta, browser, betaKey;

before(async () => {
  betaKey = gpgComplianceKey('beta.test');
  [alpha, beta] = await Promise.all([TestNode.start('alpha.test', MIN_KDF_ENV), TestNode.start('beta.test', MIN_KDF_ENV)]);
  peerBoth(alpha, beta);
  enrolAll(alpha, [[ADMIN, { admin: true }], ...OFFICERS.map((o) => [o]), [ALICE, { name: 'Alice Martin' }], [BOB, { name: 'Bob Baker' }]], PW);
  enrolAll(beta, [[DANA, { name: 'Dana Berg' }]], PW);
  assert.match(betaKey.install(beta), /Installed .* as the compliance key of beta\.test/);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  alpha?.cleanup();
  beta?.cleanup();
  betaKey?.cleanup();
});

/** `GET /api/v1{path}` with a bearer token: [status, JSON or null]. */
async function get(node, token, path) {
  const r = await fetch(`${node.url}/api/v1${path}`, { headers: { authorization: `Bearer ${token}` } });
  return [r.status, r.ok ? await r.json() : null];
}

/** The key IDs a stored part's PKESKs name (GnuPG's packet listing, no key needed). */
function pkeskIds(bytes) {
  const out = betaKey.gpg(['--list-packets'], bytes).toString();
  return [...out.matchAll(/pubkey enc packet: .*keyid ([0-9A-F]{16})/g)].map((m) => m[1]);
}

/** The encryption subkey IDs of an armored certificate. */
function subkeyIds(armored) {
  const out = betaKey.gpg(['--with-colons', '--show-keys'], armored).toString();
  return out.split('\n').filter((l) => l.startsWith('sub:')).map((l) => l.split(':')[4]);
}

/** Part 0 of `id` as `node` stores it. */
function storedHead(node, id) {
  return Buffer.from(node.sql(`SELECT hex(data) FROM parts WHERE message_id = '${id}' AND idx = 0`).trim(), 'hex');
}

test('oversight: the compliance copy under dual control, from the admin\'s setup to alice\'s delete', async () => {
  // The admin splits alpha's compliance key 2-of-3 among three officers.
  const admin = await browser.page();
  await signIn(admin, alpha.url, ADMIN, PW);
  const done = await setUpCustody(admin, OFFICERS, 2, shooter(admin, 'oversight-admin'));
  await admin.context().close();
  assert.match(done, /2-of-3 control/);
  assert.equal(alpha.sql('SELECT count(*) FROM compliance_custody_shares').trim(), '3');
  const org = { alpha: await (await fetch(`${alpha.url}/api/v1/org`)).json(), beta: await (await fetch(`${beta.url}/api/v1/org`)).json() };
  assert.ok(org.alpha.compliance_key && org.beta.compliance_key, 'both organisations publish a compliance key');

  // alice writes ONE message to bob, dana@beta.test and carol@outside.test; Write names both
  // archives before she sends.
  const alice = await browser.page();
  const shotA = shooter(alice, 'oversight-alice');
  let submitted = null;
  alice.on('request', (r) => { if (r.method() === 'POST' && new URL(r.url()).pathname === '/api/v1/messages') submitted = JSON.parse(r.postData()); });
  await signIn(alice, alpha.url, ALICE, PW);
  await alice.click('[data-testid=nav] >> text=Write');
  for (const to of [BOB, DANA, CAROL]) {
    await alice.fill('#compose-to', to);
    await alice.press('#compose-to', 'Enter');
  }
  await until('bob and dana resolved, carol by unlock code', 60_000, async () =>
    (await alice.$$('[data-testid=recipient][data-state=ok]')).length === 2 && (await alice.$('[data-testid=recipient][data-state=pickup]')));
  const note = await alice.waitForSelector('[data-testid=compliance-note][data-domains="alpha.test beta.test"]');
  assert.match(await note.textContent(), /A copy also goes to the compliance archive of alpha\.test, beta\.test/);
  await alice.fill('#compose-subject', SUBJECT);
  await alice.fill('#compose-body', BODY);
  await shotA('written');
  await alice.click('[data-testid=send]');
  await alice.waitForSelector('[data-testid=muc-dialog], [data-testid=error]', { timeout: 90_000 });
  if (await alice.$('[data-testid=error]')) assert.fail(`the app says: ${await alice.textContent('[data-testid=error]')}`);
  const muc = (await alice.textContent(`[data-testid=muc][data-address="${CAROL}"] [data-testid=muc-code]`)).replace(/\s+/g, '');
  const link = await alice.textContent(`[data-testid=muc][data-address="${CAROL}"] [data-testid=muc-link]`);
  await alice.click('[data-testid=muc-done]');
  await alice.waitForSelector('[data-testid=sent]');
  await shotA('sent');
  const id = JSON.parse(submitted.envelope).message_id;
  assert.match(id, /^[0-9a-f]{32}$/);

  // Every stored copy carries both compliance recipients: alpha's (bob's, carol's and alice's
  // Sent: one stored message) and beta's (dana's), by the node's head and by the PKESKs.
  const tokens = { alice: await bearerLogin(alpha.url, ALICE, PW), bob: await bearerLogin(alpha.url, BOB, PW), dana: await bearerLogin(beta.url, DANA, PW) };
  const both = ['alpha.test', 'beta.test'];
  for (const who of ['alice', 'bob']) assert.deepEqual((await get(alpha, tokens[who], `/messages/${id}`))[1].compliance.sort(), both, who);
  // beta learns alpha's compliance key from alpha's directory once alpha's transfer is in
  // (in the background: the receipt does not wait for it).
  await until('dana\'s copy at beta, naming both archives', 30_000, async () => {
    const [s, h] = await get(beta, tokens.dana, `/messages/${id}`);
    return s === 200 && h.compliance.sort().join() === both.join();
  });
  // alice's key, as anyone gets it from her organisation's directory: GnuPG checks her signature.
  betaKey.gpg(['--import'], await (await fetch(`${alpha.url}/vks/v1/by-email/${encodeURIComponent(ALICE)}`)).text());
  const archiveKeys = [...subkeyIds(org.alpha.compliance_key), ...subkeyIds(org.beta.compliance_key)];
  for (const [node, bytes] of [[alpha, storedHead(alpha, id)], [beta, storedHead(beta, id)]]) {
    const ids = pkeskIds(bytes);
    for (const k of archiveKeys) assert.ok(ids.includes(k), `${node.domain}'s copy is encrypted to ${k}: ${ids}`);
    // beta's compliance officers (this test holds their secret key) read either copy with GnuPG.
    const plain = betaKey.decrypt(bytes);
    assert.match(plain, new RegExp(SUBJECT));
    assert.match(plain, /CORMORANT/);
  }

  // Each side sees it: bob's reader, dana's reader at beta, carol's pickup page on a phone.
  // Each reader names its own organisation's archive first.
  for (const [node, who, dir, phone, archives] of [[alpha, BOB, 'oversight-bob', false, 'alpha.test, beta.test'], [beta, DANA, 'oversight-dana', true, 'beta.test, alpha.test']]) {
    const page = await browser.page({ phone });
    await signIn(page, node.url, who, PW);
    await page.goto(`${node.url}/#/mail/inbox/${id}`);
    await page.waitForSelector('text=CORMORANT', { timeout: 60_000 });
    const copy = await page.waitForSelector('[data-testid=compliance-copy]');
    assert.equal(await copy.getAttribute('data-domains'), archives.replace(',', ''), who);
    assert.ok((await copy.textContent()).startsWith(`A copy of this message went to the compliance archive of ${archives}:`), who);
    await shooter(page, dir)('reads');
    await page.context().close();
  }
  const carol = await browser.page({ phone: true });
  await carol.goto(link);
  await carol.waitForSelector('[data-testid=pickup-form]');
  await carol.fill('#pickup-code', muc);
  await carol.click('[data-testid=pickup-unlock]');
  await carol.waitForSelector('[data-testid=pickup-message]', { timeout: 90_000 });
  assert.match(await carol.textContent('[data-testid=pickup-body]'), /CORMORANT/);
  const carolCopy = await carol.waitForSelector('[data-testid=compliance-copy]');
  assert.equal(await carolCopy.getAttribute('data-domains'), 'alpha.test beta.test');
  assert.match(await carolCopy.textContent(), /A copy of this message went to the compliance archive of alpha\.test, beta\.test/);
  await shooter(carol, 'oversight-carol')('reads');
  await carol.context().close();

  // Officer 1 requests access with a case reference; alone they cannot read.
  const o1 = await browser.page();
  const shot1 = shooter(o1, 'oversight-officer1');
  await signIn(o1, alpha.url, OFFICERS[0], PW);
  const caseId = await requestAccess(o1, ALICE, id, CASE, shot1);
  assert.equal(await o1.$('[data-testid=co-open]'), null, 'nothing to open before an approval');
  const early = await o1.evaluate(async (c) => (await fetch(`/api/v1/compliance/cases/${c}/release`, { credentials: 'same-origin' })).status, caseId);
  assert.equal(early, 409, 'the node releases no share to officer 1 alone');
  assert.ok(!complianceLog(alpha).includes('compliance.shares_released'));
  await shot1('officer1-pending');

  // Officer 2 approves; officer 1 reads the message in the browser.
  const o2 = await browser.page();
  await signIn(o2, alpha.url, OFFICERS[1], PW);
  await approveCase(o2, OFFICERS[1], shooter(o2, 'oversight-officer2'));
  await o2.context().close();
  assert.equal(await openCase(o1), BODY);
  assert.match(await o1.textContent('[data-testid=co-message]'), new RegExp(SUBJECT));
  await shot1('officer1-reads');

  // The access report and the log: request and approval before the release and the read.
  const [download] = await Promise.all([o1.waitForEvent('download'), o1.click('[data-testid=co-report]')]);
  const report = JSON.parse(readFileSync(await download.path(), 'utf8'));
  await assertAccessTrail(alpha, report);
  assert.deepEqual(report.messages.map((m) => [m.id ?? m.message_id, m.opened[0].officer]), [[id, OFFICERS[0]]]);

  // alice deletes it, told first that the compliance copy stays; it is gone for her.
  await alice.goto(`${alpha.url}/#/mail/sent/${id}`);
  await alice.waitForSelector('text=CORMORANT', { timeout: 60_000 });
  let asked = '';
  alice.once('dialog', (d) => { asked = d.message(); d.accept(); });
  await alice.click('[data-testid=reader] >> text=Delete');
  await alice.waitForSelector('#folder-title >> text=Sent');
  assert.match(asked, /Its copy in the compliance archive of alpha\.test stays until your organisation's retention period ends/);
  assert.equal(await alice.$(`[data-testid=message-row] >> text=${SUBJECT}`), null);
  await shotA('deleted');
  assert.equal((await get(alpha, tokens.alice, `/messages/${id}`))[0], 404);

  // The officer's archive search still finds the compliance copy, kept until retention ends
  // (`[compliance] retention_days`, ten years by default, from its acceptance).
  assert.match(await archiveSearch(o1, ALICE, id), /alice@alpha\.test/);
  await shot1('officer1-finds-after-delete');
  const [acceptedAt, retainUntil] = alpha.sql(`SELECT accepted_at || '|' || retain_until FROM messages WHERE id = '${id}'`).trim().split('|').map(Number);
  assert.equal(retainUntil, acceptedAt + 3650 * 86400);
});
