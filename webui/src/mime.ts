// The inner MIME entity of an external copy (docs/mail.md, "The inner MIME entity"): what an
// OpenPGP-mail or enforced-TLS recipient's mail program reads once the copy is decrypted, with
// the protected headers (RFC 9788, `protected-headers="v1"`) so the real subject travels
// encrypted; and reading such an entity (mail that arrived by SMTP) with postal-mime.
//
// Building: no npm MIME builder fits a browser app here (docs/mail.md, ARCHITECTURE's
// dependency table): mimetext writes file names unescaped into quoted parameters and cannot put
// `protected-headers` on the top Content-Type, emailjs-mime-builder adds ~260 KB gzipped and is
// unmaintained, nodemailer's composer needs Node's streams. So this module writes the entity
// from typed values only, and every user-supplied value goes through one encoder that cannot
// emit CR, LF or an unbalanced quote: addresses are checked, the subject is RFC 2047 encoded
// words, file names RFC 2231 parameters, the body quoted-printable, attachments base64, the
// boundary a random `=_` token that neither encoding can produce.
import type { Email } from 'postal-mime';

export interface InnerAttachment {
  name: string;
  mediaType: string;
  data: Uint8Array;
}

export interface InnerEntity {
  from: string;
  to: string[];
  subject: string;
  /** Seconds since the epoch (the envelope's `created_at`). */
  date: number;
  /** The message ID the node issued (32 lower-case hex digits). */
  messageId: string;
  /** The sender's organisation's domain: `Message-ID: <ID@DOMAIN>`. */
  domain: string;
  body: string;
  attachments: InnerAttachment[];
  /** For a reply to mail that came by SMTP: its Message-ID, with the angle brackets. */
  inReplyTo?: string;
}

export class MimeError extends Error {}

const CRLF = '\r\n';
const enc = new TextEncoder();

/** An address as a header may carry it: printable ASCII, one `@`, no space, quote, angle
 * bracket, comma or semicolon (the node's normalised addresses are all like that). */
const ADDRESS = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;
const DOMAIN = /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;
const MSG_ID = /^[0-9a-f]{32}$/;
const FOREIGN_MSG_ID = /^<[\x21-\x3b\x3d\x3f-\x7e]{1,250}>$/;
const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,62}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,62}$/;

function address(a: string): string {
  if (!ADDRESS.test(a)) throw new MimeError(`“${a}” cannot be written into a mail header.`);
  return a;
}

/** UTF-8 text as RFC 2047 encoded words (base64), each at most 75 characters, split between
 * characters, never inside one; folded onto continuation lines. Control characters (CR and LF
 * among them) become spaces: a subject is one line. */
export function encodeWords(text: string): string {
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, ' ');
  if (/^[\x20-\x7e]*$/.test(clean) && !clean.includes('=?') && clean.length <= 200) return clean;
  const words: string[] = [];
  let chunk = '';
  const flush = () => {
    if (chunk) words.push(`=?utf-8?B?${b64(enc.encode(chunk))}?=`);
    chunk = '';
  };
  for (const ch of clean) {
    // 39 bytes of UTF-8 make 52 base64 characters: 64 with `=?utf-8?B?` and `?=`, so even
    // the first word stays within 78 characters after `Subject: `.
    if (enc.encode(chunk + ch).length > 39) flush();
    chunk += ch;
  }
  flush();
  return words.join(CRLF + ' ');
}

/** A MIME parameter: quoted when the value is plain printable ASCII without quotes or
 * backslashes, otherwise RFC 2231 (`name*=utf-8''percent-encoded`). */
export function param(name: string, value: string): string {
  const clean = value.replace(/[\u0000-\u001f\u007f]/g, '');
  if (/^[\x20-\x7e]{1,120}$/.test(clean) && !/["\\]/.test(clean)) return `${name}="${clean}"`;
  const pct = Array.from(enc.encode(clean), (b) =>
    /[A-Za-z0-9!#$&+.^_`|~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : '%' + b.toString(16).toUpperCase().padStart(2, '0'),
  ).join('');
  // RFC 2231 continuations keep every line short: `name*0*=utf-8''…;` `name*1*=…`.
  const chunks: string[] = [];
  for (const unit of pct.match(/%[0-9A-F]{2}|[^%]/g) ?? []) {
    if (!chunks.length || chunks[chunks.length - 1].length + unit.length > 54) chunks.push('');
    chunks[chunks.length - 1] += unit;
  }
  if (!chunks.length) chunks.push('');
  if (chunks.length === 1) return `${name}*=utf-8''${pct}`;
  return chunks.map((c, i) => `${name}*${i}*=${i === 0 ? "utf-8''" : ''}${c}`).join(';' + CRLF + ' ');
}

/** Quoted-printable (RFC 2045) of UTF-8 text with CRLF line breaks: lines of at most 76
 * characters, trailing white space encoded, `=` always encoded. */
export function quotedPrintable(text: string): string {
  const lines = text.replace(/\r\n|\r|\n/g, '\n').split('\n');
  const out: string[] = [];
  for (const line of lines) {
    const bytes = enc.encode(line);
    let cur = '';
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i];
      const last = i === bytes.length - 1;
      let t: string;
      if ((b === 0x20 || b === 0x09) && !last) t = String.fromCharCode(b);
      else if (b >= 0x21 && b <= 0x7e && b !== 0x3d) t = String.fromCharCode(b);
      else t = '=' + b.toString(16).toUpperCase().padStart(2, '0');
      // A line ending in a dot alone or "From " at its start is harmless inside ciphertext,
      // but a mail program reading the decrypted entity sees plain lines: encode a leading dot.
      if (cur === '' && b === 0x2e) t = '=2E';
      if (cur.length + t.length > 75) {
        out.push(cur + '=');
        cur = '';
      }
      cur += t;
    }
    out.push(cur);
  }
  return out.join(CRLF);
}

export function b64(data: Uint8Array): string {
  let s = '';
  for (let i = 0; i < data.length; i += 0x8000) s += String.fromCharCode(...data.subarray(i, i + 0x8000));
  return btoa(s);
}

function b64Lines(data: Uint8Array): string {
  const all = b64(data);
  const lines: string[] = [];
  for (let i = 0; i < all.length; i += 76) lines.push(all.slice(i, i + 76));
  return lines.join(CRLF);
}

/** RFC 5322 date in UTC: `Mon, 07 Dec 2026 10:26:35 +0000`. */
function rfc5322Date(seconds: number): string {
  return new Date(seconds * 1000).toUTCString().replace(/GMT$/, '+0000');
}

function boundary(): string {
  const r = crypto.getRandomValues(new Uint8Array(12));
  return '=_sealpost_' + Array.from(r, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The inner MIME entity, as bytes (CRLF line breaks, 7-bit). */
export function buildInner(e: InnerEntity): Uint8Array {
  if (!MSG_ID.test(e.messageId)) throw new MimeError('The message ID is not one the node issues.');
  if (!DOMAIN.test(e.domain)) throw new MimeError(`“${e.domain}” is not a domain.`);
  if (!e.to.length) throw new MimeError('A mail needs at least one recipient.');
  if (e.inReplyTo !== undefined && !FOREIGN_MSG_ID.test(e.inReplyTo)) throw new MimeError('The message replied to has a malformed Message-ID.');
  const b = boundary();
  const head = [
    `Content-Type: multipart/mixed; boundary="${b}";${CRLF} protected-headers="v1"`,
    `From: ${address(e.from)}`,
    `To: ${e.to.map(address).join(',' + CRLF + ' ')}`,
    `Subject: ${encodeWords(e.subject)}`,
    `Date: ${rfc5322Date(e.date)}`,
    `Message-ID: <${e.messageId}@${e.domain.toLowerCase()}>`,
    ...(e.inReplyTo ? [`In-Reply-To: ${e.inReplyTo}`, `References: ${e.inReplyTo}`] : []),
    'MIME-Version: 1.0',
  ];
  const parts = [
    ['Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: quoted-printable', '', quotedPrintable(e.body)].join(CRLF),
    ...e.attachments.map((a) => {
      const type = MEDIA_TYPE.test(a.mediaType) ? a.mediaType.toLowerCase() : 'application/octet-stream';
      return [
        `Content-Type: ${type};${CRLF} ${param('name', a.name)}`,
        `Content-Disposition: attachment;${CRLF} ${param('filename', a.name)}`,
        'Content-Transfer-Encoding: base64',
        '',
        b64Lines(a.data),
      ].join(CRLF);
    }),
  ];
  const text = head.join(CRLF) + CRLF + CRLF + parts.map((p) => `--${b}${CRLF}${p}${CRLF}`).join('') + `--${b}--${CRLF}`;
  return enc.encode(text);
}

/** A MIME entity read: what the reader shows. The protected headers (those of the decrypted
 * entity) are the ones used; the outer mail's are never seen here. */
export interface ReadEntity {
  from: string;
  fromName: string;
  to: string[];
  subject: string;
  date: number | null;
  messageId: string | null;
  text: string;
  /** The HTML body, if any, shown as text only (never rendered). */
  hasHtml: boolean;
  attachments: { name: string; mediaType: string; data: Uint8Array }[];
}

/** Parses a decrypted MIME entity with postal-mime. A PGP/MIME mail whose decrypted content
 * wraps another entity (`protected-headers`) is what postal-mime parses directly. */
export async function readEntity(bytes: Uint8Array): Promise<ReadEntity> {
  // Loaded when a mail from outside is first read (its own chunk).
  const { default: PostalMime } = await import('postal-mime');
  const email: Email = await PostalMime.parse(bytes, { attachmentEncoding: 'arraybuffer' });
  const date = email.date ? Date.parse(email.date) : NaN;
  const toList = (email.to ?? []).flatMap((a) => ('group' in a && a.group ? a.group : [a])).map((a: any) => a.address ?? '').filter(Boolean);
  const fromAddr = email.from && !('group' in email.from && email.from.group) ? (email.from as any) : null;
  return {
    from: fromAddr?.address ?? '',
    fromName: fromAddr?.name ?? '',
    to: toList,
    subject: email.subject ?? '',
    date: Number.isFinite(date) ? Math.floor(date / 1000) : null,
    messageId: email.messageId ?? null,
    text: email.text ?? (email.html ? htmlToText(email.html) : ''),
    hasHtml: !!email.html,
    attachments: email.attachments.map((a) => ({
      name: a.filename || 'attachment',
      mediaType: a.mimeType || 'application/octet-stream',
      data: new Uint8Array(a.content as ArrayBuffer),
    })),
  };
}

/** The text of an HTML body (a mail with no text part), never rendering or fetching anything:
 * parsed into an inert document. */
function htmlToText(html: string): string {
  if (typeof DOMParser === 'undefined') return html;
  const doc = new DOMParser().parseFromString(html, 'text/html');
  return (doc.body?.innerText ?? doc.body?.textContent ?? '').trim();
}
