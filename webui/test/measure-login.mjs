// Prints the median over 5 runs of the time from submitting the login form to the inbox being
// shown (its first message listed), in headless Chromium against a debug node on loopback.
// The user enrolled with the default KDF (Argon2id, 64 MiB, 3 passes), as real users do.
// Not a test: run with `npm run measure` after `npm run build` and `cargo build -p sealpost-bin`.
import { TestNode, launchBrowser } from './e2e/harness.mjs';

const RUNS = 5;
const node = await TestNode.start('alpha.test');
const browser = await launchBrowser();
try {
  for (const who of ['alice', 'bob']) {
    const code = node.addUser(`${who}@alpha.test`);
    node.cli(`${who}@alpha.test`, `${who} measuring password`).run('enroll', '--invite', code, '--address', `${who}@alpha.test`);
  }
  node.cli('alice@alpha.test', 'alice measuring password').run('send', '--to', 'bob@alpha.test', '--subject', 'Measured', '--body', 'hello');
  const times = [];
  for (let i = 0; i < RUNS; i++) {
    const page = await browser.page();
    await page.goto(`${node.url}/#/login`);
    await page.fill('#login-address', 'bob@alpha.test');
    await page.fill('#login-password', 'bob measuring password');
    await page.evaluate(() => {
      document.querySelector('[data-testid=login-form]').addEventListener('submit', () => { window.__t0 = performance.now(); }, { capture: true });
    });
    await page.click('[data-testid=login-form] button[type=submit]');
    await page.waitForSelector('[data-testid=message-row] >> text=Measured');
    const ms = await page.evaluate(() => performance.now() - window.__t0);
    times.push(ms);
    console.log(`run ${i + 1}: ${ms.toFixed(0)} ms`);
    await page.context().close();
  }
  times.sort((a, b) => a - b);
  console.log(`login → inbox, median of ${RUNS}: ${times[Math.floor(RUNS / 2)].toFixed(0)} ms`);
} finally {
  await browser.close();
  node.cleanup();
}
