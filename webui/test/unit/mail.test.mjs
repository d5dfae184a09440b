// The inner MIME entity of an external copy (src/mime.ts, docs/mail.md) and its seal
// (pgp.encryptTo): GnuPG, as an OpenPGP-mail recipient's mail program, decrypts and verifies
// what the web app makes, and postal-mime reads it back (the subject from the protected
// headers); hostile input (CR/LF, quotes in names, bad addresses) never makes a header.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load } from './bundle.mjs';

const { mime, pgp } = await load('test/unit/mail-entry.ts', ['browser']);
const ID = '0123456789abcdef0123456789abcdef';
const text = (bytes) => new TextDecoder().decode(bytes);
const entity = (over = {}) => ({
  from: 'alice@alpha.test', to: ['dora@pgp.test', 'bob@alpha.test'], subject: 'Quarterly figures', date: 1796637995,
  messageId: ID, domain: 'alpha.test', body: 'Hello Dora,\n\nthe figures.\n', attachments: [], ...over,
});
/** The header block of an entity: everything before the first empty line. */
const headerBlock = (bytes) => text(bytes).split('\r\n\r\n')[0];

test('the entity has the protected headers of docs/mail.md, CRLF lines, 7-bit, none longer than 78', () => {
  const e = mime.buildInner(entity());
  const t = text(e);
  const h = headerBlock(e);
  assert.match(h, /^Content-Type: multipart\/mixed; boundary="=_sealpost_[0-9a-f]{24}";\r\n protected-headers="v1"\r\n/);
  assert.match(h, /\r\nFrom: alice@alpha\.test\r\n/);
  assert.match(h, /\r\nTo: dora@pgp\.test,\r\n bob@alpha\.test\r\n/);
  assert.match(h, /\r\nSubject: Quarterly figures\r\n/);
  assert.match(h, /\r\nDate: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \+0000\r\n/);
  assert.match(h, new RegExp(`\\r\\nMessage-ID: <${ID}@alpha\\.test>\\r\\n`));
  assert.match(t, /Content-Type: text\/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n/);
  assert.ok(!/[^\r]\n/.test(t), 'every line break is CRLF');
  assert.ok(/^[\x00-\x7f]*$/.test(t), 'only 7-bit');
  for (const line of t.split('\r\n')) assert.ok(line.length <= 78, `line too long: ${line}`);
});

test('postal-mime reads back subject, body and attachments exactly, whatever they contain', async () => {
  const subject = 'Grüße — 報告 🙂 '.repeat(6) + '=?not-a-word?= end';
  const body = 'Zeile mit Umlaut ä\n.\nFrom here\ntrailing space \nlong ' + 'x'.repeat(200) + '\n=3D literal';
  const long = 'Ein sehr langer Dateiname mit Umlauten äöü '.repeat(8) + '.pdf';
  const data = new Uint8Array(3000).map((_, i) => (i * 37) & 0xff);
  const e = mime.buildInner(entity({ subject, body, attachments: [
    { name: 'Bericht "final"\r\nX-Evil: 1 ü.pdf', mediaType: 'application/pdf', data },
    { name: long, mediaType: 'application/pdf', data },
    { name: 'plain.txt', mediaType: 'text/plain\r\nX-Evil: 2', data: new TextEncoder().encode('hi') },
  ] }));
  assert.ok(!/\r\nX-Evil:/i.test(text(e)), 'no header was injected');
  const r = await mime.readEntity(e);
  assert.equal(r.subject, subject);
  assert.equal(r.text.replace(/\r\n/g, '\n').replace(/\n$/, ''), body);
  assert.equal(r.from, 'alice@alpha.test');
  assert.deepEqual(r.to, ['dora@pgp.test', 'bob@alpha.test']);
  assert.equal(r.messageId, `<${ID}@alpha.test>`);
  for (const line of text(e).split('\r\n')) assert.ok(line.length <= 78, `line too long: ${line}`);
  assert.equal(r.attachments.length, 3);
  assert.equal(r.attachments[1].name, long);
  assert.equal(r.attachments[0].name, 'Bericht "final"X-Evil: 1 ü.pdf');
  assert.equal(r.attachments[0].mediaType, 'application/pdf');
  assert.deepEqual(r.attachments[0].data, data);
  assert.equal(r.attachments[2].mediaType, 'application/octet-stream', 'a malformed media type is not written');
});

test('a subject with CR/LF stays one header; bad addresses, IDs and domains are refused', () => {
  const h = headerBlock(mime.buildInner(entity({ subject: 'hi\r\nBcc: eve@evil.test' })));
  assert.ok(!/\r\nBcc:/i.test(h));
  assert.equal(h.split('\r\n').filter((l) => /^Subject:/.test(l)).length, 1);
  for (const to of [['dora@pgp.test\r\nBcc: eve@evil.test'], ['"dora" <dora@pgp.test>'], ['dora@pgp.test, eve@evil.test'], ['no-at-sign'], []]) {
    assert.throws(() => mime.buildInner(entity({ to })), mime.MimeError, JSON.stringify(to));
  }
  assert.throws(() => mime.buildInner(entity({ from: 'alice@alpha.test\n' })), mime.MimeError);
  assert.throws(() => mime.buildInner(entity({ messageId: 'x@evil' })), mime.MimeError);
  assert.throws(() => mime.buildInner(entity({ domain: 'alpha.test>\r\nX: y' })), mime.MimeError);
  assert.throws(() => mime.buildInner(entity({ inReplyTo: '<a@b>\r\nBcc: x' })), mime.MimeError);
});

/** A GnuPG home of dora's (removed after the test) with her key: an Ed25519 primary and a
 * Cv25519 encryption subkey, as gpg 2.2 makes them. */
function doraGpg(t) {
  const home = mkdtempSync(join(tmpdir(), 'sealpost-gpg-'));
  chmodSync(home, 0o700);
  t.after(() => rmSync(home, { recursive: true, force: true }));
  const gpg = (args, input) => execFileSync('gpg', ['--homedir', home, '--batch', '--yes', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], { input, stdio: ['pipe', 'pipe', 'pipe'] });
  gpg(['--quick-gen-key', 'Dora <dora@pgp.test>', 'ed25519', 'sign,cert', 'never']);
  const fpr = /fpr:+([0-9A-F]{40}):/.exec(gpg(['--with-colons', '--fingerprint', 'dora@pgp.test']).toString())[1];
  gpg(['--quick-add-key', fpr, 'cv25519', 'encr', 'never']);
  return { home, gpg, fpr };
}

test('GnuPG decrypts the OpenPGP-mail copy, verifies alice\'s signature and reads the subject', async (t) => {
  const { home, gpg, fpr } = doraGpg(t);
  const dora = await pgp.readCert(gpg(['--armor', '--export', fpr]).toString());
  const alice = (await pgp.generateUserKey('alice@alpha.test', 'Alice')).privateKey;
  gpg(['--import'], alice.toPublic().armor());

  const inner = mime.buildInner(entity({ subject: 'Vertraulich: Zahlen Q3 ✓' }));
  const copy = await pgp.encryptTo(inner, [dora, alice.toPublic()], alice);
  const file = join(home, 'copy.gpg');
  writeFileSync(file, copy);
  const statusFile = join(home, 'status');
  const plain = gpg(['--status-file', statusFile, '--decrypt', file]);
  const status = execFileSync('cat', [statusFile]).toString();
  assert.match(status, new RegExp(`\\[GNUPG:\\] VALIDSIG ${alice.getFingerprint().toUpperCase()}`));
  assert.match(status, /\[GNUPG:\] DECRYPTION_OKAY/);
  assert.deepEqual(new Uint8Array(plain), inner);
  const r = await mime.readEntity(new Uint8Array(plain));
  assert.equal(r.subject, 'Vertraulich: Zahlen Q3 ✓');

  // Alice can read her own copy back too; the transit copy (enforced TLS) is for one key only.
  const own = await pgp.decryptArrived(copy, alice);
  assert.deepEqual(own.data, inner);
  const transit = await pgp.encryptTo(inner, [dora]);
  await assert.rejects(pgp.decryptArrived(transit, alice));
});

test('mail from outside: a PGP/MIME payload GnuPG encrypted and signed, and a plain mail encrypted on arrival, both read', async (t) => {
  const { gpg, fpr: doraFpr } = doraGpg(t);
  const bob = (await pgp.generateUserKey('bob@alpha.test', 'Bob')).privateKey;
  gpg(['--import'], bob.toPublic().armor());

  // What dora's mail program encrypts inside PGP/MIME: an entity with protected headers.
  const inner = [
    'Content-Type: multipart/mixed; boundary="xyz"; protected-headers="v1"',
    'From: Dora <dora@pgp.test>', 'To: bob@alpha.test', 'Subject: =?utf-8?Q?R=C3=BCckfrage?=',
    'Message-ID: <reply-1@pgp.test>', 'In-Reply-To: <0123456789abcdef0123456789abcdef@alpha.test>', '',
    '--xyz', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit', '', 'Grüße zurück.', '',
    '--xyz', 'Content-Type: text/csv; name="zahlen.csv"', 'Content-Disposition: attachment; filename="zahlen.csv"', '', 'a,b', '1,2', '',
    '--xyz--', '',
  ].join('\r\n');
  const armored = gpg(['--armor', '--trust-model', 'always', '--local-user', doraFpr, '--sign', '--encrypt', '--recipient', bob.getFingerprint()], Buffer.from(inner));
  const got = await pgp.decryptArrived(new Uint8Array(armored), bob);
  assert.equal(got.signedBy.length, 1, 'the signature is reported, not trusted');
  const r = await mime.readEntity(got.data);
  assert.equal(r.subject, 'Rückfrage');
  assert.equal(r.from, 'dora@pgp.test');
  assert.equal(r.fromName, 'Dora');
  assert.match(r.text, /^Grüße zurück\./);
  assert.equal(r.attachments.length, 1);
  assert.equal(r.attachments[0].name, 'zahlen.csv');
  assert.equal(text(r.attachments[0].data).replace(/\r\n/g, '\n').trim(), 'a,b\n1,2');

  // A plain mail the node encrypted to bob as it came (binary, unsigned), text and HTML: the
  // text is what is shown (HTML is never rendered).
  const plain = ['From: erik@plain.test', 'To: bob@alpha.test', 'Subject: Hi', 'MIME-Version: 1.0', 'Content-Type: multipart/alternative; boundary="b"', '',
    '--b', 'Content-Type: text/plain; charset=utf-8', '', 'Hello Bob', '--b', 'Content-Type: text/html; charset=utf-8', '', '<p>Hello <b>Bob</b><img src="https://tracker.test/x.png"></p>', '--b--', ''].join('\r\n');
  const sealed = await pgp.encryptTo(new TextEncoder().encode(plain), [bob.toPublic()]);
  const opened = await pgp.decryptArrived(sealed, bob);
  assert.deepEqual(opened.signedBy, []);
  const p = await mime.readEntity(opened.data);
  assert.equal(p.subject, 'Hi');
  assert.equal(p.hasHtml, true);
  assert.ok(!p.text.includes('<'), `no markup in the text: ${p.text}`);
  assert.match(p.text, /Hello\s+Bob/);
});
