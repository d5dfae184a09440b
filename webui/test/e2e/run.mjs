// Runs the browser tests: checks what they need, then the test files one after another.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { BIN, CHROMIUM } from './harness.mjs';

if (!existsSync(BIN)) {
  console.error(`${BIN} is missing: build the node first (cargo build -p sealpost-bin).`);
  process.exit(1);
}
if (!existsSync(CHROMIUM)) {
  console.error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium), or set CHROMIUM.`);
  process.exit(1);
}
if (!existsSync(new URL('../../dist/index.html', import.meta.url))) {
  console.error('dist/ is missing: run npm run build first.');
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', 'test/e2e/web.test.mjs', 'test/e2e/federation.test.mjs', 'test/e2e/pickup-page.test.mjs', 'test/e2e/pickup-compose.test.mjs', 'test/e2e/pickup.test.mjs', 'test/e2e/guest.test.mjs', 'test/e2e/mail.test.mjs', 'test/e2e/smime.test.mjs', 'test/e2e/app-passwords.test.mjs', 'test/e2e/compliance.test.mjs', 'test/e2e/custody.test.mjs', 'test/e2e/registered.test.mjs', 'test/e2e/oversight.test.mjs'], { stdio: 'inherit' });
process.exit(r.status ?? 1);
