// The S/MIME copy of an outside recipient (docs/mail.md, "The S/MIME copy"): a complete MIME
// entity encrypted to the recipient's X.509 certificate as DER CMS `EnvelopedData` (RFC 5652,
// RFC 8551), content AES-256-CBC, the content key wrapped by rsaEncryption (RSAES-PKCS1-v1_5)
// key transport: what the CLI makes with OpenSSL (`proto::crypto::smime::encrypt`).
//
// Why node-forge: WebCrypto has RSA-OAEP only, and GnuPG 2.2's gpgsm (one of the readers
// docs/mail.md names) does not read RSA-OAEP key transport; node-forge is the maintained
// JavaScript PKI library that writes PKCS#7/CMS EnvelopedData with PKCS1-v1_5 key transport.
// No ASN.1 encoder or RSA is written here (one re-tag of forge's output: `primitiveContent`).
// The content key comes from WebCrypto's `getRandomValues`; the IV and the PKCS1-v1_5 padding
// from forge's PRNG, which the browser's `getRandomValues` seeds. The app imports this module
// lazily (client.ts), so forge is fetched only by a sender who has an S/MIME recipient.
//
// Signing (`signEntity`, when the organisation runs an S/MIME CA): the sender's RSA-3072 key
// (WebCrypto makes it; forge's PKCS#7 signer is RSA only, and gpgsm 2.2 verifies RSA) signs
// the inner entity as the CLI does (`proto::crypto::smime::sign`): multipart/signed with a
// detached SignedData, SHA-256, signed attributes contentType, signingTime, messageDigest and
// SMIMECapabilities, the signer's certificate and the CA chain included; then `encryptToCert`.
// forge writes no SMIMECapabilities and reads no non-RSA certificate (an ECDSA CA): both are
// added to forge's own output with forge's ASN.1 objects, each shape checked, and the signed
// attributes signed again (`withCapabilitiesAndChain`).
//
// Must not: encrypt to anything but the certificate the envelope answer names, or hold the
// signing key anywhere but in memory (client.ts keeps it wrapped on the node).
import forge from 'node-forge/lib/forge';
import 'node-forge/lib/asn1';
import 'node-forge/lib/pem';
import 'node-forge/lib/x509';
import 'node-forge/lib/pkcs7';
import 'node-forge/lib/aes';
import 'node-forge/lib/random';
import 'node-forge/lib/rsa';
import 'node-forge/lib/sha256';
import 'node-forge/lib/pki';

/** Why an S/MIME copy cannot be made, in words for the sender (the message is not sent). */
export class SmimeError extends Error {}

/** The DER of the first certificate in `pem` (the leaf; intermediates may follow). */
function leafDer(pem: string, address: string): string {
  let blocks: { type: string; body: string }[];
  try {
    blocks = forge.pem.decode(pem);
  } catch {
    blocks = [];
  }
  const leaf = blocks.find((b) => b.type === 'CERTIFICATE');
  if (!leaf) throw new SmimeError(`The node gave no usable S/MIME certificate for ${address}. Do not send; tell your administrator.`);
  return leaf.body;
}

function bytesOf(binary: string): Uint8Array {
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

function binaryOf(bytes: Uint8Array): string {
  // In slices: String.fromCharCode takes its arguments on the stack.
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return s;
}

/** The SHA-256 (lowercase hex) of the DER of the first certificate in `pem`: how the envelope
 * answer names an X.509 certificate (`fingerprint`), as `proto::crypto::smime::cert_sha256`. */
export async function certSha256(pem: string, address = 'this recipient'): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytesOf(leafDer(pem, address)) as BufferSource));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The recipient's certificate as node-forge reads it: RSA keys only (forge's PKI reads no
 * other key), which is also all PKCS1-v1_5 key transport can encrypt to. */
function rsaCert(pem: string, address: string): forge.pki.Certificate {
  const der = leafDer(pem, address);
  let asn1: forge.asn1.Asn1;
  try {
    asn1 = forge.asn1.fromDer(der);
  } catch {
    throw new SmimeError(`The node gave no usable S/MIME certificate for ${address}. Do not send; tell your administrator.`);
  }
  try {
    return forge.pki.certificateFromAsn1(asn1);
  } catch (e) {
    // forge's own words for a certificate whose key is not RSA (EC, Ed25519...): the unit test
    // makes an EC certificate, so a forge that words it otherwise fails there, not here.
    if (e instanceof Error && /OID is not RSA/.test(e.message)) {
      throw new SmimeError(`${address}'s S/MIME certificate has no RSA key, and the web app encrypts S/MIME mail to RSA keys only: send this message from the command-line client, or remove ${address}.`);
    }
    throw new SmimeError(`The node gave no usable S/MIME certificate for ${address}. Do not send; tell your administrator.`);
  }
}

/** `entity` (a complete MIME entity, CRLF line ends, its exact bytes: no line-end translation)
 * encrypted to the first certificate of `pem` as DER CMS `EnvelopedData`: AES-256-CBC under a
 * fresh key from the browser's CSPRNG (WebCrypto `getRandomValues`), that key wrapped with
 * RSAES-PKCS1-v1_5, the recipient named by issuer and serial number. A signed entity
 * (`signEntity`) is passed in the same way. */
export function encryptToCert(entity: Uint8Array, pem: string, address: string): Uint8Array {
  const cert = rsaCert(pem, address);
  const p7 = forge.pkcs7.createEnvelopedData();
  p7.addRecipient(cert);
  p7.content = forge.util.createBuffer(binaryOf(entity));
  const key = crypto.getRandomValues(new Uint8Array(32));
  p7.encrypt(forge.util.createBuffer(binaryOf(key)), forge.pki.oids['aes256-CBC']);
  key.fill(0);
  return bytesOf(forge.asn1.toDer(primitiveContent(p7.toAsn1())).getBytes());
}

/** forge writes `encryptedContent` in BER's constructed form (`[0]` holding an OCTET STRING):
 * OpenSSL reads that, but GnuPG 2.2's gpgsm decrypts the wrong bytes ("invalid padding"), and
 * it is not DER. DER's form is primitive `[0] IMPLICIT OCTET STRING`: the same bytes, re-tagged
 * with forge's own ASN.1 objects. The shape is checked, so a forge that changes it fails here. */
function primitiveContent(contentInfo: forge.asn1.Asn1): forge.asn1.Asn1 {
  const { asn1 } = forge;
  const eci = at(at(at(contentInfo, 1), 0), 2);
  const content = at(eci, 2);
  if (content.tagClass !== asn1.Class.CONTEXT_SPECIFIC || content.type !== 0) throw new SmimeError('The S/MIME library wrote an unexpected EnvelopedData.');
  if (content.constructed) {
    const inner = at(content, 0);
    if (inner.tagClass !== asn1.Class.UNIVERSAL || inner.type !== asn1.Type.OCTETSTRING || inner.constructed || typeof inner.value !== 'string') {
      throw new SmimeError('The S/MIME library wrote an unexpected EnvelopedData.');
    }
    (eci.value as forge.asn1.Asn1[])[2] = asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, false, inner.value);
  }
  return contentInfo;
}

/** The `i`th element of a constructed ASN.1 value. */
function at(node: forge.asn1.Asn1, i: number): forge.asn1.Asn1 {
  if (!node.constructed || !Array.isArray(node.value) || !node.value[i]) throw new SmimeError('The S/MIME library wrote an unexpected EnvelopedData.');
  return node.value[i];
}

/** Checks, before anything is sent, that the web app can make the copy for recipient `r` of
 * the envelope answer: the certificate is the one the answer names (SHA-256 of its DER equal to
 * `fingerprint`, as the CLI checks) and has an RSA key. Throws `SmimeError` with the reason. */
export async function checkRecipient(r: { address: string; cert: string; fingerprint: string }): Promise<void> {
  const sha = await certSha256(r.cert, r.address);
  if (sha !== r.fingerprint.replace(/[\s:]+/g, '').toLowerCase()) {
    throw new SmimeError(`The node's answer for ${r.address} names another certificate than it sent. Do not send; tell your administrator.`);
  }
  rsaCert(r.cert, r.address);
}

/** The S/MIME copy of `entity` for recipient `r` of the envelope answer (checked first):
 * signed by `signer` first when there is one. */
export async function smimeCopy(entity: Uint8Array, r: { address: string; cert: string; fingerprint: string }, signer?: SmimeSigner): Promise<Uint8Array> {
  await checkRecipient(r);
  return encryptToCert(signer ? signEntity(entity, signer) : entity, r.cert, r.address);
}

// ---- signing ----

/** The sender's S/MIME signing identity: forge's RSA key and its certificate with the chain. */
export interface SmimeSigner {
  key: forge.pki.rsa.PrivateKey;
  /** The leaf, PEM (issued by the organisation's CA for `key`). */
  certificate: string;
  /** The CA's certificate and the chain after it, PEM. */
  chain: string;
}

/** A WebCrypto private key's PKCS#8 DER, read by forge. */
export function forgeKey(pkcs8: Uint8Array): forge.pki.rsa.PrivateKey {
  try {
    return forge.pki.privateKeyFromAsn1(forge.asn1.fromDer(binaryOf(pkcs8))) as forge.pki.rsa.PrivateKey;
  } catch {
    throw new SmimeError('Your S/MIME signing key could not be read.');
  }
}

/** The SubjectPublicKeyInfo DER of `key`'s public half (to certify the same key again). */
export function spkiOf(key: forge.pki.rsa.PrivateKey): Uint8Array {
  return bytesOf(forge.asn1.toDer(forge.pki.publicKeyToAsn1(forge.pki.setRsaPublicKey(key.n, key.e))).getBytes());
}

/** `data` with every bare LF and bare CR made CRLF (RFC 8551 §3.1.1's canonical form). */
export function canonicalCrlf(data: Uint8Array): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < data.length; i++) {
    const b = data[i];
    if (b === 13 && data[i + 1] === 10) {
      out.push(13, 10);
      i++;
    } else if (b === 13 || b === 10) out.push(13, 10);
    else out.push(b);
  }
  return Uint8Array.from(out);
}

/** Every certificate of a PEM, as DER (binary strings). */
function pemCerts(pem: string): string[] {
  try {
    return forge.pem.decode(pem).filter((b) => b.type === 'CERTIFICATE').map((b) => b.body);
  } catch {
    return [];
  }
}

/** The SMIMECapabilities attribute (RFC 8551 §2.5.2) OpenSSL writes first: AES-256-CBC,
 * AES-192-CBC, AES-128-CBC. */
function capabilitiesAttribute(): forge.asn1.Asn1 {
  const { asn1 } = forge;
  const oid = (o: string) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(o).getBytes());
  const seq = (v: forge.asn1.Asn1[]) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, v);
  const caps = ['2.16.840.1.101.3.4.1.42', '2.16.840.1.101.3.4.1.22', '2.16.840.1.101.3.4.1.2'].map((o) => seq([oid(o)]));
  return seq([oid('1.2.840.113549.1.9.15'), asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, [seq(caps)])]);
}

/** Binary strings in DER's SET OF order (as unsigned bytes, a shorter prefix first). */
function byBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function signedDataShape(): never {
  throw new SmimeError('The S/MIME library wrote an unexpected SignedData.');
}

/** forge's SignedData completed as the CLI's: the SMIMECapabilities attribute added to the
 * signed attributes (DER order: sorted by encoding), which are then signed again with `key`;
 * and the certificates (`certsDer`: the signer's, then the chain's, of any key type) as their
 * issuer wrote them. Every shape is checked. */
function withCapabilitiesAndChain(contentInfo: forge.asn1.Asn1, key: forge.pki.rsa.PrivateKey, certsDer: string[]): forge.asn1.Asn1 {
  const { asn1 } = forge;
  const sd = at(at(contentInfo, 1), 0);
  const fields = sd.value as forge.asn1.Asn1[];
  const certs = fields[3];
  if (!certs || certs.tagClass !== asn1.Class.CONTEXT_SPECIFIC || certs.type !== 0 || !certs.constructed) signedDataShape();
  if (!Array.isArray(certs.value) || certs.value.length !== 1) signedDataShape();
  // The certificates exactly as issued: forge re-encodes the one it read (an ECDSA CA's
  // signature on it then no longer verifies), and reads no non-RSA certificate.
  // A DER SET OF is sorted by encoding (the signer is named by issuer and serial, not place).
  certs.value = [...certsDer].sort(byBytes).map((d) => asn1.fromDer(d));
  const infos = fields[fields.length - 1];
  if (infos.type !== asn1.Type.SET || !Array.isArray(infos.value) || infos.value.length !== 1) signedDataShape();
  const info = at(infos, 0).value as forge.asn1.Asn1[];
  // SignerInfo: version, sid, digestAlgorithm, [0] signedAttrs, signatureAlgorithm, signature.
  const attrs = info[3];
  const sig = info[5];
  if (info.length !== 6 || attrs.tagClass !== asn1.Class.CONTEXT_SPECIFIC || attrs.type !== 0 || !Array.isArray(attrs.value)
    || sig.type !== asn1.Type.OCTETSTRING || sig.constructed) signedDataShape();
  const list = [...(attrs.value as forge.asn1.Asn1[]), capabilitiesAttribute()];
  const der = (a: forge.asn1.Asn1) => asn1.toDer(a).getBytes();
  list.sort((a, b) => byBytes(der(a), der(b)));
  attrs.value = list;
  // What is signed is the attributes' DER as a SET (RFC 5652 §5.4), not as the [0] field.
  const md = forge.md.sha256.create();
  md.update(der(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, list)));
  sig.value = key.sign(md, 'RSASSA-PKCS1-V1_5');
  return contentInfo;
}

/** `entity` (a complete MIME entity; line ends made CRLF first) signed by `signer` as the CLI
 * signs (`proto::crypto::smime::sign`): a `multipart/signed; protocol="application/pkcs7-
 * signature"; micalg=sha-256` entity whose first part is exactly the canonical entity and whose
 * second is a detached DER CMS SignedData (SHA-256 with RSA; contentType, signingTime,
 * messageDigest, SMIMECapabilities signed; the signer's certificate and the CA chain
 * included). Pass the result to `encryptToCert` (sign-then-encrypt). */
export function signEntity(entity: Uint8Array, signer: SmimeSigner): Uint8Array {
  const canonical = canonicalCrlf(entity);
  let cert: forge.pki.Certificate;
  try {
    cert = forge.pki.certificateFromPem(signer.certificate);
  } catch {
    throw new SmimeError('Your S/MIME certificate could not be read.');
  }
  const pub = cert.publicKey as forge.pki.rsa.PublicKey;
  if (pub.n.compareTo(signer.key.n) !== 0 || pub.e.compareTo(signer.key.e) !== 0) {
    throw new SmimeError('Your S/MIME certificate is not for your signing key.');
  }
  const p7 = forge.pkcs7.createSignedData();
  p7.content = forge.util.createBuffer(binaryOf(canonical));
  p7.addCertificate(cert);
  p7.addSigner({
    key: signer.key,
    certificate: cert,
    digestAlgorithm: forge.pki.oids.sha256,
    authenticatedAttributes: [
      { type: forge.pki.oids.contentType, value: forge.pki.oids.data },
      { type: forge.pki.oids.messageDigest },
      { type: forge.pki.oids.signingTime },
    ],
  });
  p7.sign({ detached: true });
  const der = forge.asn1.toDer(withCapabilitiesAndChain(p7.toAsn1(), signer.key, [...pemCerts(signer.certificate).slice(0, 1), ...pemCerts(signer.chain)])).getBytes();
  const boundary = `sealpost-signed-${Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, '0')).join('')}`;
  const b64 = forge.util.encode64(der).replace(/(.{76})/g, '$1\r\n').replace(/\r\n$/, '');
  const head = `MIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary="${boundary}"\r\n\r\nThis is a cryptographically signed message in MIME format.\r\n\r\n--${boundary}\r\n`;
  const tail = `\r\n--${boundary}\r\nContent-Type: application/pkcs7-signature; name="smime.p7s"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="smime.p7s"\r\n\r\n${b64}\r\n--${boundary}--\r\n`;
  const enc = new TextEncoder();
  const [h, t] = [enc.encode(head), enc.encode(tail)];
  const out = new Uint8Array(h.length + canonical.length + t.length);
  out.set(h, 0);
  out.set(canonical, h.length);
  out.set(t, h.length + canonical.length);
  return out;
}
