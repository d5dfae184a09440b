// The compliance key under dual control in the browser (docs/compliance.md, "Dual control"),
// against a real node: the admin makes three officers and sets the compliance key up 2-of-3
// (made, locked, split and wrapped in the admin's browser; the node installs its public key,
// marked by the CA); alice sends bob a message, which her client also encrypts to the
// compliance key; officer 1 finds it by envelope data and requests access with a case
// reference; alone they cannot open it; officer 2 approves; officer 1's browser combines the two
// shares and reads the message. The log holds request, approval, release and read in that
// order; the case's access report downloads as JSON; bob sees that the message was opened for
// compliance. Screenshots of every step at 1280x800 and 390x844 land in test-artefacts/compliance-*/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestNode, launchBrowser, shooter, signIn, enrolAll, setUpCustody, requestAccess, approveCase, openCase, assertAccessTrail, MIN_KDF_ENV } from './harness.mjs';

const PW = 'correct horse battery staple';
const ADMIN = 'admin@alpha.test';
const OFFICERS = ['officer1@alpha.test', 'officer2@alpha.test', 'officer3@alpha.test'];
const ALICE = 'alice@alpha.test';
const BOB = 'bob@alpha.test';
let alpha, browser;

before(async () => {
  alpha = await TestNode.start('alpha.test', MIN_KDF_ENV);
  enrolAll(alpha, [[ADMIN, { admin: true }], ...[...OFFICERS, ALICE, BOB].map((a) => [a])], PW);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  alpha?.cleanup();
});

test('2-of-3: the admin sets up, officer 1 requests, officer 2 approves, officer 1 reads', async () => {
  // The admin: three officers, the key split 2 of 3.
  const admin = await browser.page();
  const shotA = shooter(admin, 'compliance-admin');
  await signIn(admin, alpha.url, ADMIN, PW);
  assert.match(await setUpCustody(admin, OFFICERS, 2, shotA), /2-of-3 control/);
  // The node holds the key locked and the shares wrapped; no share or secret in the clear.
  assert.equal(alpha.sql('SELECT count(*) FROM compliance_custody_shares').trim(), '3');
  assert.equal(alpha.sql('SELECT threshold FROM compliance_custody WHERE retired_at IS NULL').trim(), '2');

  // The setup installed the key (the CA marked it): alice's client encrypts to it by itself.
  const sent = alpha.cli(ALICE, PW).send('--to', BOB, '--subject', 'Quarterly numbers', '--body', 'Revenue is up 4 %.');
  const mid = sent.id;
  assert.match(mid, /^[0-9a-z]{32}$/);

  // Officer 1 finds it by envelope data and requests access.
  const o1 = await browser.page();
  const shot1 = shooter(o1, 'compliance-officer1');
  await signIn(o1, alpha.url, OFFICERS[0], PW);
  const caseId = await requestAccess(o1, ALICE, mid, 'Court order 2026-17', shot1);
  // Alone, officer 1 cannot open it.
  assert.equal(await o1.$('[data-testid=co-open]'), null);
  const r = await o1.evaluate(async (id) => (await fetch(`/api/v1/compliance/cases/${id}/release`, { credentials: 'same-origin' })).status, caseId);
  assert.equal(r, 409);
  await shot1('officer1-pending');

  // Officer 2 approves in their browser (their share re-encrypted to the request key).
  const o2 = await browser.page();
  const shot2 = shooter(o2, 'compliance-officer2');
  await signIn(o2, alpha.url, OFFICERS[1], PW);
  await approveCase(o2, OFFICERS[1], shot2);
  assert.equal(await o2.$('[data-testid=co-approve]'), null);

  // Officer 1 opens the case: the shares meet in this browser, the key unlocks, the message reads.
  assert.equal(await openCase(o1), 'Revenue is up 4 %.');
  assert.match(await o1.textContent('[data-testid=co-message]'), /Quarterly numbers/);
  await shot1('officer1-reads');

  // The access report downloads as JSON, with every step in log order.
  const [download] = await Promise.all([o1.waitForEvent('download'), o1.click('[data-testid=co-report]')]);
  const report = JSON.parse(await (await import('node:fs')).promises.readFile(await download.path(), 'utf8'));
  await assertAccessTrail(alpha, report);
  assert.equal(report.messages[0].opened[0].officer, OFFICERS[0]);

  // bob sees that the message was opened for compliance.
  const b = await browser.page({ phone: true });
  const shotB = shooter(b, 'compliance-bob');
  await signIn(b, alpha.url, BOB, PW);
  await b.goto(`${alpha.url}/#/mail/inbox/${mid}`);
  await b.waitForSelector('[data-testid=compliance-opened]');
  await shotB('bob-sees-opened');
});
