// S/MIME signing in the web app (src/smime.ts `signEntity`, docs/mail.md "The S/MIME copy"):
// an RSA-3072 key made by WebCrypto and read by forge, its certificate from a test CA made with
// OpenSSL (ECDSA P-256, as the Rust test kit's: forge reads no such certificate, smime.ts adds
// it to the chain itself); the entity signed, then encrypted to erik. `openssl cms -decrypt`
// then `openssl cms -verify -CAfile` succeed and give back the canonical entity; gpgsm
// (GnuPG 2.2) says GOODSIG with the CA in its trustlist; the signed attributes are the CLI's.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load } from './bundle.mjs';

const { mime, smime } = await load('test/unit/smime-entry.ts');
const dir = mkdtempSync(join(tmpdir(), 'sealpost-smime-sign-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const path = (n) => join(dir, n);
const ossl = (args, opts = {}) => execFileSync('openssl', args, { stdio: 'pipe', ...opts });

// The organisation's CA (ECDSA P-256) and erik's own certificate (RSA, self-signed).
ossl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30', '-subj', '/CN=Alpha S\\/MIME CA',
  '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-keyout', path('ca.key'), '-out', path('ca.pem')]);
ossl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '30', '-subj', '/CN=erik', '-addext', 'subjectAltName=email:erik@smime.test',
  '-addext', 'extendedKeyUsage=emailProtection', '-keyout', path('erik.key'), '-out', path('erik.pem')]);
const erikPem = readFileSync(path('erik.pem'), 'utf8');
const erikR = { address: 'erik@smime.test', cert: erikPem, fingerprint: createHash('sha256').update(ossl(['x509', '-in', path('erik.pem'), '-outform', 'DER'])).digest('hex') };

// alice's signing key, as the web app makes it (client.ts), and her certificate from the CA.
const pair = await crypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 3072, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['sign', 'verify']);
const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', pair.privateKey));
writeFileSync(path('alice.key'), `-----BEGIN PRIVATE KEY-----\n${Buffer.from(pkcs8).toString('base64').match(/.{1,64}/g).join('\n')}\n-----END PRIVATE KEY-----\n`);
writeFileSync(path('leaf.ext'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\nextendedKeyUsage=emailProtection\nsubjectAltName=email:alice@alpha.test\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
ossl(['req', '-new', '-key', path('alice.key'), '-subj', '/CN=Alice', '-out', path('alice.csr')]);
ossl(['x509', '-req', '-in', path('alice.csr'), '-CA', path('ca.pem'), '-CAkey', path('ca.key'), '-CAcreateserial', '-days', '30', '-sha256', '-extfile', path('leaf.ext'), '-out', path('alice.pem')]);
const signer = { key: smime.forgeKey(pkcs8), certificate: readFileSync(path('alice.pem'), 'utf8'), chain: readFileSync(path('ca.pem'), 'utf8') };

const entity = mime.buildInner({
  from: 'alice@alpha.test', to: ['erik@smime.test'], subject: 'Grüße: the figures', date: 1796637995,
  messageId: '0123456789abcdef0123456789abcdef', domain: 'alpha.test', body: 'Hello Erik,\n\nthe figures. Code word: HERON.\n',
  attachments: [{ name: 'all-bytes.bin', mediaType: 'application/octet-stream', data: Uint8Array.from({ length: 1024 }, (_, i) => i % 256) }],
});

test('line ends are made CRLF before signing, whatever they were', () => {
  const enc = new TextEncoder();
  assert.deepEqual(smime.canonicalCrlf(enc.encode('a\nb\r\nc\rd')), enc.encode('a\r\nb\r\nc\r\nd'));
});

test('signed then encrypted: openssl decrypts, then verifies against the CA, signer alice', async () => {
  const p7m = path('signed.p7m');
  writeFileSync(p7m, await smime.smimeCopy(entity, erikR, signer));
  const signed = ossl(['cms', '-decrypt', '-binary', '-inform', 'DER', '-in', p7m, '-recip', path('erik.pem'), '-inkey', path('erik.key')]);
  writeFileSync(path('signed.eml'), signed);
  const text = signed.toString('latin1');
  assert.match(text, /^MIME-Version: 1\.0\r\nContent-Type: multipart\/signed; protocol="application\/pkcs7-signature"; micalg=sha-256; boundary="sealpost-signed-[0-9a-f]{24}"\r\n/);
  const content = ossl(['cms', '-verify', '-in', path('signed.eml'), '-CAfile', path('ca.pem'), '-purpose', 'smimesign', '-signer', path('signer.pem')]);
  assert.deepEqual(new Uint8Array(content), smime.canonicalCrlf(entity));
  const subject = ossl(['x509', '-in', path('signer.pem'), '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' });
  assert.match(subject, /email:alice@alpha\.test/);

  // The signature as the CLI's: SHA-256 RSA, the four signed attributes, AES-256-CBC first,
  // the signer's certificate and the CA's.
  const p7s = Buffer.from(text.split('filename="smime.p7s"\r\n\r\n')[1].split('\r\n--')[0].replace(/\r\n/g, ''), 'base64');
  writeFileSync(path('smime.p7s'), p7s);
  const printed = ossl(['cms', '-cmsout', '-print', '-inform', 'DER', '-in', path('smime.p7s')], { encoding: 'utf8' });
  for (const want of ['pkcs7-signedData', 'sha256', 'rsaEncryption', 'contentType', 'signingTime', 'messageDigest', 'S/MIME Capabilities', 'aes-256-cbc', 'subject: CN=Alpha S\\/MIME CA', 'subject: CN=Alice']) {
    assert.ok(printed.includes(want), `${want} in the SignedData`);
  }
  assert.ok(printed.indexOf('aes-256-cbc') < printed.indexOf('aes-128-cbc'));
  // DER: the signed attributes sorted by their encoding (openssl writes them so).
  const der = ossl(['cms', '-cmsout', '-inform', 'DER', '-in', path('smime.p7s'), '-outform', 'DER']);
  assert.deepEqual(der, p7s, 'OpenSSL re-encodes it byte for byte: it is DER');
});

test('a signature over other content does not verify', async () => {
  const signed = Buffer.from(smime.signEntity(entity, signer)).toString('latin1').replace('HERON', 'EAGLE');
  writeFileSync(path('tampered.eml'), Buffer.from(signed, 'latin1'));
  const r = spawnSync('openssl', ['cms', '-verify', '-in', path('tampered.eml'), '-CAfile', path('ca.pem'), '-out', '/dev/null']);
  assert.notEqual(r.status, 0);
});

test('gpgsm (GnuPG 2.2) says GOODSIG with the CA trusted', () => {
  const text = Buffer.from(smime.signEntity(entity, signer)).toString('latin1');
  const boundary = `--${/boundary="([^"]+)"/.exec(text)[1]}`;
  const start = text.indexOf(`${boundary}\r\n`) + boundary.length + 2;
  const end = text.indexOf(`\r\n${boundary}`, start);
  writeFileSync(path('content.eml'), Buffer.from(text.slice(start, end), 'latin1'));
  writeFileSync(path('g.p7s'), Buffer.from(text.split('filename="smime.p7s"\r\n\r\n')[1].split('\r\n--')[0].replace(/\r\n/g, ''), 'base64'));
  const home = mkdtempSync(join(tmpdir(), 'sealpost-gpgsm-'));
  chmodSync(home, 0o700);
  try {
    const gpgsm = (args) => spawnSync('gpgsm', ['--homedir', home, '--batch', '--disable-crl-checks', ...args], { timeout: 60_000 });
    assert.equal(gpgsm(['--import', path('ca.pem')]).status, 0);
    const fpr = ossl(['x509', '-in', path('ca.pem'), '-noout', '-fingerprint', '-sha1'], { encoding: 'utf8' }).split('=')[1].trim();
    writeFileSync(join(home, 'trustlist.txt'), `${fpr} S relax\n`);
    const out = gpgsm(['--status-fd', '1', '--verify', path('g.p7s'), path('content.eml')]);
    const status = out.stdout.toString();
    assert.match(status, /\[GNUPG:\] GOODSIG/, out.stderr.toString());
    assert.match(status, /\[GNUPG:\] VALIDSIG/, out.stderr.toString());
  } finally {
    spawnSync('gpgconf', ['--homedir', home, '--kill', 'all']);
    rmSync(home, { recursive: true, force: true });
  }
});

test('a certificate for another key is refused in words', () => {
  const other = smime.forgeKey(pkcs8);
  other.n = other.n.add(other.n.constructor.ONE);
  assert.throws(() => smime.signEntity(entity, { ...signer, key: other }), (e) => e instanceof smime.SmimeError && /not for your signing key/.test(e.message));
});
