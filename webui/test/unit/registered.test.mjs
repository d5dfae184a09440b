// Registered mail in the web app (docs/evidence.md, "Registered mail"): the receipt statement is
// the exact bytes the CLI signs (`proto::ReceiptStatement::to_bytes`: compact JSON, keys in
// sorted order, serde_json's escapes), and only Sealpost and pickup recipients can be sent registered mail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { load } from './bundle.mjs';

const client = await load('src/client.ts', ['browser']);
const ID = '0123456789abcdef0123456789abcdef';
const env = { v: 1, message_id: ID, from: 'alice@alpha.test', to: ['bob@alpha.test'], created_at: 1796637995, parts: [{ sha256: 'aa'.repeat(32), size: 10 }, { sha256: 'bb'.repeat(32), size: 20 }], registered: ['bob@alpha.test'] };

test('the statement is the CLI\'s bytes: sorted keys, compact, parts in order', () => {
  for (const [decision, at] of [['accept', 1796637995], ['refuse', 0], ['accept', -5]]) {
    assert.equal(
      client.receiptStatement(env, 'bob@alpha.test', decision, at),
      `{"at":${at},"decision":"${decision}","format":"sealpost-receipt-v1","message_id":"${ID}","parts":["${'aa'.repeat(32)}","${'bb'.repeat(32)}"],"recipient":"bob@alpha.test"}`,
    );
  }
});

test('strings are escaped as serde_json escapes them', () => {
  // serde_json: \" \\ \n \r \t \b \f, other control characters as \u00xx (lowercase), the rest raw UTF-8.
  const s = client.receiptStatement(env, 'b"o\\b\n\r\t\b\f\u0001é@alpha.test', 'accept', 1);
  assert.ok(s.endsWith('"recipient":"b\\"o\\\\b\\n\\r\\t\\b\\f\\u0001é@alpha.test"}'), s);
});

test('a time that is not whole seconds is refused', () => {
  assert.throws(() => client.receiptStatement(env, 'bob@alpha.test', 'accept', 1.5), /whole seconds/);
  assert.throws(() => client.receiptStatement(env, 'bob@alpha.test', 'accept', Number.NaN), /whole seconds/);
});

test('registered mail: Sealpost and pickup recipients only, mail recipients refused in words', () => {
  assert.equal(client.registeredRefusal('bob@alpha.test', 'local'), null);
  assert.equal(client.registeredRefusal('carol@beta.test', 'remote'), null);
  assert.equal(client.registeredRefusal('x@outside.example', 'pickup'), null);
  for (const mode of ['openpgp', 'smime', 'tls']) {
    assert.match(client.registeredRefusal('dora@pgp.test', mode), /dora@pgp\.test is reached by mail: registered mail goes to Sealpost users and unlock-code recipients only/);
  }
});
