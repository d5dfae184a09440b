// The web app across two organisations: two real nodes (alpha.test, beta.test) on loopback,
// peered both ways through the admin command; alice@alpha.test writes to bob@beta.test in the
// browser, bob reads it in his, and his trust badge's path names the bridge. Delivery between
// nodes is asynchronous: every wait has a deadline, none is a sleep.
// Screenshots of every step land in test-artefacts/federation-*/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestNode, launchBrowser, shooter, sealpost, until } from './harness.mjs';

const PW = { alice: 'correct horse battery staple', bob: 'purple monkey dishwasher 42' };
let alpha, beta, browser, alicePage, bobPage;

before(async () => {
  // alpha gives up on a delivery after 25 s (instead of 3 days), so that the last test can show
  // the failure notice; everything before it is delivered within a few seconds.
  const expiry = { SEALPOST__FEDERATION__DELIVERY_EXPIRY_SECS: '25', SEALPOST__FEDERATION__SWEEP_INTERVAL_SECS: '1' };
  [alpha, beta] = await Promise.all([TestNode.start('alpha.test', expiry), TestNode.start('beta.test')]);
  // Peering is an admin action on each side, with the other node's published record.
  const a = sealpost(['admin', '--data', alpha.data, 'peer', 'add', 'beta.test', '--from', beta.url, '--yes']);
  const b = sealpost(['admin', '--data', beta.data, 'peer', 'add', 'alpha.test', '--from', alpha.url, '--yes']);
  assert.match(a + b, /peer ID/);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  alpha?.cleanup();
  beta?.cleanup();
});

async function enrollInBrowser(page, link, name, password, shot) {
  await page.goto(link);
  await page.waitForSelector('[data-testid=enroll-form]');
  await shot('invite-link-opened');
  await page.fill('#enroll-name', name);
  await page.fill('#enroll-password', password);
  await page.fill('#enroll-again', password);
  await page.click('text=Create my key and enrol');
  await page.waitForSelector('[data-testid=welcome]', { timeout: 60_000 });
  await shot('enrolled-fingerprint');
  await page.click('text=Open my mailbox');
  await page.waitForSelector('#folder-title');
  await shot('inbox');
}

test('alice@alpha.test and bob@beta.test enrol through invite links at their own nodes', async () => {
  alicePage = await browser.page();
  bobPage = await browser.page();
  const aliceInvite = alpha.addUser('alice@alpha.test', { admin: true, name: 'Alice' });
  const bobInvite = beta.addUser('bob@beta.test', { name: 'Bob' });
  await enrollInBrowser(alicePage, alpha.inviteLink('alice@alpha.test', aliceInvite), 'Alice Martin', PW.alice, shooter(alicePage, 'federation-enrol-alice'));
  await enrollInBrowser(bobPage, beta.inviteLink('bob@beta.test', bobInvite), 'Bob Baker', PW.bob, shooter(bobPage, 'federation-enrol-bob'));
});

test('alice writes to bob@beta.test: compose resolves him through the remote directory, Sent follows the delivery', async () => {
  const shot = shooter(alicePage, 'federation-alice-writes');
  await alicePage.click('text=Write');
  await alicePage.fill('#compose-to', 'bob@beta.test');
  // Alpha asks beta's directory over QUIC; alice's verdict runs through the bridge.
  await alicePage.waitForSelector('[data-testid=lookup] [data-kind=verified]', { timeout: 30_000 });
  assert.match(await alicePage.textContent('[data-testid=lookup]'), /bob@beta\.test can receive encrypted messages/);
  await shot('remote-recipient-resolved');
  await alicePage.press('#compose-to', 'Enter');
  await alicePage.waitForSelector('[data-testid=recipient][data-state=ok]');
  assert.match(await alicePage.getAttribute('[data-testid=recipient]', 'title'), /bridge to beta\.test/);
  await alicePage.fill('#compose-subject', 'Contract draft across organisations');
  await alicePage.fill('#compose-body', 'Hi Bob,\n\nhere is our side of the contract. Code word: OSPREY.\n\nAlice');
  await shot('composed');
  await alicePage.click('[data-testid=send]');
  await alicePage.waitForSelector('[data-testid=sent], [data-testid=error]');
  if (await alicePage.$('[data-testid=error]')) assert.fail(`the app says: ${await alicePage.textContent('[data-testid=error]')}`);
  assert.match(await alicePage.textContent('[data-testid=sent-remote]'), /beta\.test/);
  await shot('sent');

  // Sent shows bob's copy queued, then delivered once beta's node has acknowledged it.
  await alicePage.click('text=See it in Sent');
  await alicePage.waitForSelector('[data-testid=delivery-state]');
  await alicePage.waitForSelector('[data-testid=delivery-state][data-state=delivered]', { timeout: 30_000 });
  assert.match(await alicePage.textContent('[data-testid=delivery-state]'), /bob@beta\.test · Delivered/);
  await shot('sent-folder-delivered');
  await alicePage.click('text=Contract draft across organisations');
  await alicePage.waitForSelector('[data-testid=reader] [data-testid=delivery] [data-state=delivered]');
  await shot('sent-message-delivery');
});

test('bob reads it at beta: signed by alice, verified through the bridge between the organisations', async () => {
  const shot = shooter(bobPage, 'federation-bob-reads');
  await bobPage.goto(beta.url + '/#/mail/inbox');
  const row = '[data-testid=message-row].unread >> text=Contract draft across organisations';
  await until('the message in bob\'s inbox', 30_000, async () => {
    await bobPage.click('text=Refresh');
    return bobPage.waitForSelector(row, { timeout: 1_000 });
  });
  await shot('inbox-unread');
  await bobPage.click('text=Contract draft across organisations');
  await bobPage.waitForSelector('[data-testid=reader]');
  await bobPage.waitForSelector('[data-testid=trust-badge][data-kind=verified]');
  assert.equal(await bobPage.textContent('[data-testid=sender]'), 'alice@alpha.test');
  assert.match(await bobPage.textContent('[data-testid=signature-status]'), /Signed by alice@alpha\.test/);
  assert.match(await bobPage.textContent('[data-testid=body]'), /OSPREY/);
  assert.match(await bobPage.getAttribute('[data-testid=trust-badge]', 'aria-label'), /bridge to alpha\.test/);
  await bobPage.click('[data-testid=trust-badge]');
  const path = await bobPage.textContent('[data-testid=path-panel]');
  assert.match(path, /bridge/);
  assert.match(path, /alpha\.test/);
  assert.match(path, /\(your organisation\)/);
  await shot('badge-path-names-the-bridge');
});

test('the admin console lists the peer with its link state, its backlog and how to peer', async () => {
  const shot = shooter(alicePage, 'federation-admin-peers');
  await alicePage.goto(alpha.url + '/#/admin');
  await alicePage.waitForSelector('[data-testid=peer][data-domain="beta.test"]');
  await until('beta.test connected', 20_000, async () => (await alicePage.getAttribute('[data-testid=peer]', 'data-state')) === 'connected');
  assert.match(await alicePage.textContent('[data-testid=peer-state]'), /Connected/);
  assert.match(await alicePage.textContent('[data-testid=peer-queued]'), /none/);
  const org = await (await fetch(beta.url + '/api/v1/org')).json();
  assert.match((await alicePage.textContent('[data-testid=peer]')).replace(/\s+/g, ''), new RegExp(org.ca_fingerprint, 'i'));
  assert.match(await alicePage.textContent('[data-testid=peer-howto]'), /sealpost admin --data DIR peer add THEIR-DOMAIN --from https:\/\/THEIR-NODE --yes/);
  await shot('peers');

  // beta goes away and alice writes again: the console shows the backlog and the problem.
  beta.stop();
  await alicePage.click('text=Write');
  await alicePage.fill('#compose-to', 'bob@beta.test');
  await alicePage.press('#compose-to', 'Enter');
  await alicePage.waitForSelector('[data-testid=recipient][data-state=ok]', { timeout: 30_000 });
  await alicePage.fill('#compose-subject', 'While your node is down');
  await alicePage.click('[data-testid=send]');
  await alicePage.waitForSelector('[data-testid=sent]');
  await alicePage.click('text=See it in Sent');
  await alicePage.waitForSelector('[data-testid=delivery-state][data-state=queued]');
  await shot('sent-queued');
  await alicePage.goto(alpha.url + '/#/admin');
  await until('the backlog and a down link in the console', 30_000, async () => {
    const state = await alicePage.getAttribute('[data-testid=peer]', 'data-state');
    const queued = await alicePage.textContent('[data-testid=peer-queued]');
    return state !== 'connected' && /1 message/.test(queued) && (await alicePage.$('[data-testid=peer-error]'));
  });
  await shot('peer-down-backlog');
});

test('a delivery that expires fails in Sent with the reason and leaves a notice to dismiss in the inbox', async () => {
  const shot = shooter(alicePage, 'federation-delivery-failed');
  await alicePage.goto(alpha.url + '/#/mail/inbox');
  await until('the failure notice', 60_000, async () => {
    await alicePage.click('text=Refresh');
    return alicePage.waitForSelector('[data-testid=notice]', { timeout: 1_000 });
  });
  assert.match(await alicePage.textContent('[data-testid=notice]'), /bob@beta\.test/);
  await shot('inbox-notice');
  await alicePage.click('[data-testid=notice] >> text=Open the message in Sent');
  await alicePage.waitForSelector('[data-testid=reader] [data-testid=delivery] [data-state=failed]');
  assert.match(await alicePage.textContent('[data-testid=delivery-reason]'), /could not be reached/);
  await shot('failed-delivery-with-reason');
  await alicePage.goto(alpha.url + '/#/mail/inbox');
  await alicePage.click('[data-testid=notice] >> text=Dismiss');
  await alicePage.waitForSelector('[data-testid=notice]', { state: 'detached' });
  // Dismissed for good: the node keeps it read.
  await alicePage.click('nav >> text=Sent');
  await alicePage.waitForSelector('[data-testid=delivery-state]');
  await alicePage.click('nav >> text=Inbox');
  await alicePage.waitForSelector('#folder-title >> text=Inbox');
  await alicePage.waitForSelector('text=Your inbox is empty');
  assert.equal(await alicePage.$('[data-testid=notice]'), null);
  await shot('notice-dismissed');
});
