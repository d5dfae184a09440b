// The S/MIME copy the web app makes (src/smime.ts, docs/mail.md "The S/MIME copy"): DER CMS
// EnvelopedData, AES-256-CBC, RSAES-PKCS1-v1_5 key transport, unsigned; `openssl cms -decrypt`
// and GnuPG 2.2's gpgsm, as the recipient's mail program, give back the inner entity's exact
// bytes. A certificate other than the one named, one without an RSA key, or no certificate at
// all is refused in words.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load } from './bundle.mjs';
import { gpgsmDecrypt } from './gpgsm.mjs';

const { mime, smime } = await load('test/unit/smime-entry.ts');
const dir = mkdtempSync(join(tmpdir(), 'sealpost-smime-unit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A self-signed S/MIME certificate for `address` made by OpenSSL (`newkey`: rsa:2048, or EC). */
function certificate(name, address, newkey) {
  const [cert, key] = [join(dir, `${name}.pem`), join(dir, `${name}.key`)];
  execFileSync('openssl', ['req', '-x509', '-newkey', ...newkey, '-nodes', '-days', '30', '-subj', `/CN=${name}`,
    '-addext', `subjectAltName=email:${address}`, '-addext', 'extendedKeyUsage=emailProtection',
    '-keyout', key, '-out', cert], { stdio: 'pipe' });
  const pem = readFileSync(cert, 'utf8');
  const der = execFileSync('openssl', ['x509', '-in', cert, '-outform', 'DER']);
  return { pem, cert, key, sha256: createHash('sha256').update(der).digest('hex') };
}
const erik = certificate('erik', 'erik@smime.test', ['rsa:2048']);
const ecCert = certificate('ella', 'ella@smime.test', ['ec', '-pkeyopt', 'ec_paramgen_curve:P-256']);

const ID = '0123456789abcdef0123456789abcdef';
/** An inner entity with a binary attachment: every byte value must come back. */
const entity = mime.buildInner({
  from: 'alice@alpha.test', to: ['erik@smime.test'], subject: 'Grüße: the figures', date: 1796637995,
  messageId: ID, domain: 'alpha.test', body: 'Hello Erik,\n\nthe figures. Code word: HERON.\n',
  attachments: [{ name: 'all-bytes.bin', mediaType: 'application/octet-stream', data: Uint8Array.from({ length: 256 * 4 }, (_, i) => i % 256) }],
});
const erikR = { address: 'erik@smime.test', cert: erik.pem, fingerprint: erik.sha256 };

/** Writes `bytes` to a file of the test's directory; returns its path. */
function file(name, bytes) {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

test('the certificate is named by the SHA-256 of its DER, as OpenSSL computes it', async () => {
  assert.equal(await smime.certSha256(erik.pem), erik.sha256);
  // A chain: the leaf (first) names it.
  assert.equal(await smime.certSha256(erik.pem + ecCert.pem), erik.sha256);
});

test('the copy is DER CMS EnvelopedData, AES-256-CBC, rsaEncryption key transport, unsigned', async () => {
  const p7m = file('copy.p7m', await smime.smimeCopy(entity, erikR));
  const printed = execFileSync('openssl', ['cms', '-cmsout', '-print', '-inform', 'DER', '-in', p7m], { encoding: 'utf8' });
  assert.match(printed, /contentType: pkcs7-envelopedData/);
  assert.match(printed, /contentEncryptionAlgorithm:\s*\n\s*algorithm: aes-256-cbc/);
  assert.match(printed, /keyEncryptionAlgorithm:\s*\n\s*algorithm: rsaEncryption/);
  assert.match(printed, /issuerAndSerialNumber/);
  assert.ok(!/signerInfos|pkcs7-signedData/.test(printed), 'no signature');
  // DER: the encrypted content is one primitive [0] (forge writes BER's constructed form,
  // which gpgsm misreads: smime.ts re-tags it).
  const parsed = execFileSync('openssl', ['asn1parse', '-inform', 'DER', '-in', p7m], { encoding: 'utf8' }).trim().split('\n');
  assert.match(parsed[parsed.length - 1], /prim: cont \[ 0 \]/);
  // Each copy has its own content key: the same entity twice is two different ciphertexts.
  const again = await smime.smimeCopy(entity, erikR);
  assert.notDeepEqual(Buffer.from(again), readFileSync(p7m));
});

test('openssl cms -decrypt with erik\'s key gives back the entity\'s exact bytes', async () => {
  const p7m = file('openssl.p7m', await smime.smimeCopy(entity, erikR));
  const opened = execFileSync('openssl', ['cms', '-decrypt', '-binary', '-inform', 'DER', '-in', p7m, '-recip', erik.cert, '-inkey', erik.key]);
  assert.deepEqual(new Uint8Array(opened), entity);
  assert.match(opened.toString('latin1'), /Code word: HERON\./);
});

test('gpgsm (GnuPG 2.2) decrypts it with erik\'s key', async () => {
  const p7m = file('gpgsm.p7m', await smime.smimeCopy(entity, erikR));
  const out = gpgsmDecrypt(erik.cert, erik.key, p7m);
  assert.equal(out.status, 0, out.stderr.toString());
  assert.deepEqual(new Uint8Array(out.stdout), entity);
});

test('refused in words: another certificate than the one named, a key that is not RSA, no certificate', async () => {
  const check = async (r, message) => {
    await assert.rejects(smime.smimeCopy(entity, r), (e) => e instanceof smime.SmimeError && message.test(e.message));
    await assert.rejects(smime.checkRecipient(r), (e) => e instanceof smime.SmimeError && message.test(e.message));
  };
  await check({ ...erikR, fingerprint: ecCert.sha256 }, /^The node's answer for erik@smime\.test names another certificate than it sent\. Do not send/);
  await check({ address: 'ella@smime.test', cert: ecCert.pem, fingerprint: ecCert.sha256 },
    /^ella@smime\.test's S\/MIME certificate has no RSA key, and the web app encrypts S\/MIME mail to RSA keys only: send this message from the command-line client, or remove ella@smime\.test\.$/);
  await check({ ...erikR, cert: 'not a certificate' }, /^The node gave no usable S\/MIME certificate for erik@smime\.test\./);
  const garbage = '-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n';
  await check({ ...erikR, cert: garbage, fingerprint: createHash('sha256').update(Buffer.from([0, 1, 2, 3, 4, 5])).digest('hex') }, /^The node gave no usable S\/MIME certificate for erik@smime\.test\./);
  // The fingerprint may come upper-case or with colons; it is the same certificate.
  await smime.checkRecipient({ ...erikR, fingerprint: erik.sha256.toUpperCase().match(/../g).join(':') });
});
