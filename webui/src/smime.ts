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
// Must not: sign (no S/MIME certificate for senders yet: the copy is unsigned, `why` says so),
// or encrypt to anything but the certificate the envelope answer names. A later signer passes
// its signed entity to `encryptToCert` in place of the inner entity: the function takes any
// entity's exact bytes.
import forge from 'node-forge/lib/forge';
import 'node-forge/lib/asn1';
import 'node-forge/lib/pem';
import 'node-forge/lib/x509';
import 'node-forge/lib/pkcs7';
import 'node-forge/lib/aes';
import 'node-forge/lib/random';

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
 * RSAES-PKCS1-v1_5, the recipient named by issuer and serial number. Unsigned here; a signed
 * entity (S/MIME signing, later) is passed in the same way. */
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

/** The S/MIME copy of `entity` for recipient `r` of the envelope answer (checked first). */
export async function smimeCopy(entity: Uint8Array, r: { address: string; cert: string; fingerprint: string }): Promise<Uint8Array> {
  await checkRecipient(r);
  return encryptToCert(entity, r.cert, r.address);
}
