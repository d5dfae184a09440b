// Small shared pieces of the interface: badges, progress, fingerprints, errors, routing.
import { h, type ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { encode } from 'uqr';
import type { VerdictView } from './api';
import { fingerprintWords } from './pgpwords';
import { groupFingerprint } from './pgp';

// ---- routing: everything after '#', so invite codes never reach a server log ----

export function parseHash(): { path: string[]; query: URLSearchParams } {
  const raw = location.hash.replace(/^#\/?/, '');
  const [p, q] = raw.split('?');
  return { path: p ? p.split('/').map(decodeURIComponent) : [], query: new URLSearchParams(q ?? '') };
}

export function useRoute() {
  const [route, setRoute] = useState(parseHash());
  useEffect(() => {
    const on = () => setRoute(parseHash());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}

export function go(path: string) {
  location.hash = '#/' + path;
}

// ---- formatting ----

export function when(ts: number): string {
  const d = new Date(ts * 1000);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  return d.toLocaleDateString(undefined, { day: 'numeric', month: 'short', year: d.getFullYear() === now.getFullYear() ? undefined : 'numeric' });
}

export function fullDate(ts: number): string {
  return new Date(ts * 1000).toLocaleString(undefined, { dateStyle: 'full', timeStyle: 'short' });
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function initials(address: string): string {
  const local = address.split('@')[0] ?? '?';
  return local.slice(0, 2).toUpperCase();
}

// ---- trust ----

export type BadgeKind = 'verified' | 'partial' | 'unverified' | 'revoked';

export function badgeOf(v: VerdictView | null | undefined): { kind: BadgeKind; label: string; detail: string } {
  if (!v) return { kind: 'unverified', label: 'No key', detail: 'No key is known for this address' };
  if (v.why_not === 'revoked') return { kind: 'revoked', label: 'Revoked', detail: 'This key was revoked by its owner' };
  if (v.why_not === 'expired' || v.why_not === 'invalid' || v.why_not === 'user_id_revoked') {
    return { kind: 'revoked', label: 'Invalid key', detail: 'This key can no longer be used' };
  }
  if (v.level === 'full') {
    const text = v.explanation.join('\n');
    const byMe = text.includes('(you certified this key)');
    const byOrg = text.includes('(your organisation)');
    const bridge = /\(bridge, ([^)]+)\)/.exec(text);
    const via = bridge ? `through the bridge to ${bridge[1]}` : byOrg && byMe ? 'by your organisation and by you' : byMe ? 'by you' : byOrg ? 'by your organisation' : 'through people you trust';
    return { kind: 'verified', label: 'Verified', detail: `Verified ${via}` };
  }
  if (v.level === 'partial') return { kind: 'partial', label: 'Partly verified', detail: 'Some trust, not enough: compare fingerprints' };
  return { kind: 'unverified', label: 'Not verified', detail: 'Nobody you trust vouches for this key' };
}

const ICONS: Record<BadgeKind, string> = { verified: '✔', partial: '◐', unverified: '?', revoked: '✖' };

export function Badge({ verdict, onOpen, compact }: { verdict: VerdictView | null | undefined; onOpen?: () => void; compact?: boolean }) {
  const b = badgeOf(verdict);
  const inner = (
    <>
      <span class="badge-icon" aria-hidden="true">{ICONS[b.kind]}</span>
      <span>{compact ? b.label : b.detail}</span>
    </>
  );
  return onOpen ? (
    <button type="button" class={`badge badge-${b.kind}`} onClick={onOpen} aria-label={`${b.detail}. Show why`} data-testid="trust-badge" data-kind={b.kind}>
      {inner}
      <span class="badge-more" aria-hidden="true">Why?</span>
    </button>
  ) : (
    <span class={`badge badge-${b.kind}`} data-testid="trust-badge" data-kind={b.kind}>{inner}</span>
  );
}

/** The explained path: each line of the verdict as a chain of hops. */
export function TrustPath({ verdict }: { verdict: VerdictView }) {
  return (
    <ol class="paths" data-testid="trust-paths">
      {verdict.explanation.map((line) => {
        const [chain, result] = splitLast(line, ': ');
        const hops = chain.split(' → ');
        return (
          <li class="path">
            {hops.length > 1 ? (
              <span class="hops">
                {hops.map((hop, i) => (
                  <>
                    {i > 0 && <span class="arrow" aria-label="vouches for">→</span>}
                    <span class="hop">{hop}</span>
                  </>
                ))}
              </span>
            ) : (
              <span class="hop hop-plain">{chain}</span>
            )}
            {result && <span class="path-result">{result}</span>}
          </li>
        );
      })}
    </ol>
  );
}

function splitLast(s: string, sep: string): [string, string] {
  const i = s.lastIndexOf(sep);
  return i < 0 ? [s, ''] : [s.slice(0, i), s.slice(i + sep.length)];
}

// ---- fingerprints ----

export function Fingerprint({ fpr, qr = false }: { fpr: string; qr?: boolean }) {
  const words = fingerprintWords(fpr);
  return (
    <div class="fingerprint">
      <div>
        <div class="fpr-hex" data-testid="fpr-hex">{halves(groupFingerprint(fpr)).map((half, i) => <>{i > 0 && ' '}<span class="fpr-half">{half}</span></>)}</div>
        <ol class="fpr-words" data-testid="fpr-words" aria-label="Fingerprint as words">
          {words.map((w) => <li>{w}</li>)}
        </ol>
      </div>
      {qr && <QrCode text={`OPENPGP4FPR:${fpr.toUpperCase()}`} label={`QR code of fingerprint ${groupFingerprint(fpr)}`} />}
    </div>
  );
}

/** A grouped fingerprint in its two halves of five groups, which narrow screens put on two
 * lines rather than breaking it anywhere. */
function halves(grouped: string): string[] {
  const groups = grouped.split(' ');
  const mid = Math.ceil(groups.length / 2);
  return [groups.slice(0, mid).join(' '), groups.slice(mid).join(' ')].filter(Boolean);
}

export function QrCode({ text, label }: { text: string; label: string }) {
  const { data } = encode(text, { ecc: 'M', border: 2 });
  const n = data.length;
  let d = '';
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) if (data[y][x]) d += `M${x} ${y}h1v1h-1z`;
  return (
    <svg class="qr" viewBox={`0 0 ${n} ${n}`} role="img" aria-label={label} shape-rendering="crispEdges">
      <rect width={n} height={n} fill="#fff" />
      <path d={d} fill="#0b1b2b" />
    </svg>
  );
}

// ---- feedback ----

export function ErrorBox({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  const msg = error instanceof Error ? error.message : String(error);
  return (
    <div class="alert alert-error" role="alert" data-testid="error">
      {title && <strong>{title} </strong>}
      {msg}
    </div>
  );
}

export function Progress({ value, label }: { value: number; label: string }) {
  const pct = Math.round(Math.max(0, Math.min(1, value)) * 100);
  return (
    <div class="progress-wrap">
      <div class="progress-label"><span>{label}</span><span>{pct}%</span></div>
      <div class="progress" role="progressbar" aria-valuenow={pct} aria-valuemin={0} aria-valuemax={100} aria-label={label}>
        <div class="progress-bar" style={{ width: `${pct}%` }} />
      </div>
    </div>
  );
}

export function Field({ label, hint, children, id }: { label: string; hint?: string; children: ComponentChildren; id: string }) {
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {children}
      {hint && <div class="hint" id={`${id}-hint`}>{hint}</div>}
    </div>
  );
}

export function Logo({ size = 28 }: { size?: number }) {
  return (
    <svg width={size} height={size} viewBox="0 0 32 32" aria-hidden="true" class="logo">
      <rect x="2" y="6" width="28" height="20" rx="4" fill="currentColor" opacity="0.16" />
      <path d="M4 9l12 9 12-9" fill="none" stroke="currentColor" stroke-width="2.4" stroke-linecap="round" stroke-linejoin="round" />
      <circle cx="24" cy="22" r="6" fill="#e8b04a" stroke="#fff" stroke-width="1.5" />
      <path d="M21.8 22l1.6 1.6 2.8-3" fill="none" stroke="#fff" stroke-width="1.6" stroke-linecap="round" stroke-linejoin="round" />
    </svg>
  );
}

/** Triggers a browser download of decrypted bytes (kept in memory, never stored). */
/** Offers a Blob (already decrypted and verified) for download under `name`. */
export function saveBlob(blob: Blob, name: string) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.rel = 'noopener';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export { h };

const ICON_PATHS: Record<string, string> = {
  inbox: 'M3 13h5l2 3h4l2-3h5M3 13l2.5-8h13L21 13v6H3z',
  sent: 'M3 11.5L21 3l-7 18-2.5-7.5z M11.5 13.5L21 3',
  archive: 'M3 4h18v5H3zM5 9v11h14V9M10 13h4',
  shield: 'M12 3l8 3v6c0 5-3.5 8-8 9-4.5-1-8-4-8-9V6zM9 12l2 2 4-4',
  settings: 'M4 7h9M17 7h3M4 17h3M11 17h9M15 5v4M9 15v4',
  building: 'M4 21V4h10v17M14 9h6v12M7 8h4M7 12h4M7 16h4M2 21h20',
  lock: 'M6 11h12v9H6zM8.5 11V8a3.5 3.5 0 017 0v3',
  clip: 'M9 12.5l5.5-5.5a2.5 2.5 0 013.5 3.5l-7.5 7.5a4 4 0 01-5.7-5.7L12 5',
  file: 'M6 3h8l4 4v14H6zM14 3v4h4',
  pen: 'M4 20l4-1L19 8l-3-3L5 16zM14 7l3 3',
  log: 'M6 3h12v18H6zM9 8h6M9 12h6M9 16h4',
  key: 'M14 10a4 4 0 10-3 3.9V16h2v2h2v2h3v-3l-4-4',
  menu: 'M4 7h16M4 12h16M4 17h16',
  close: 'M6 6l12 12M18 6L6 18',
  signout: 'M14 4h5v16h-5M10 8l-4 4 4 4M6 12h10',
};

export function Icon({ name, size = 18 }: { name: keyof typeof ICON_PATHS | string; size?: number }) {
  return (
    <svg class="icon" width={size} height={size} viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round">
      <path d={ICON_PATHS[name] ?? ''} />
    </svg>
  );
}
