// Builds the app into dist/: index.html, assets/app-HASH.js (+ lazily loaded chunks), and
// assets/app-HASH.css; and the pickup page (docs/pickup.md): pickup.html and
// assets/pickup-HASH.js, sharing the stylesheet and chunks. No inline script or style anywhere, so the node's CSP can forbid them.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, rmSync, mkdirSync, readdirSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';

const dist = 'dist';
rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, 'assets'), { recursive: true });

const result = await build({
  entryPoints: { app: 'src/app.tsx', pickup: 'src/pickup/main.tsx' },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome110', 'firefox115', 'safari16'],
  outdir: join(dist, 'assets'),
  entryNames: '[name]-[hash]',
  chunkNames: 'chunk-[hash]',
  minify: true,
  sourcemap: false,
  jsx: 'automatic',
  jsxImportSource: 'preact',
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});

const css = readFileSync('src/styles.css');
const cssName = `app-${createHash('sha256').update(css).digest('hex').slice(0, 10)}.css`;
writeFileSync(join(dist, 'assets', cssName), css);
const entry = Object.keys(result.metafile.outputs).find((o) => /assets\/app-[^/]+\.js$/.test(o));
const pickupEntry = Object.keys(result.metafile.outputs).find((o) => /assets\/pickup-[^/]+\.js$/.test(o));
const html = readFileSync('src/index.html', 'utf8')
  .replace('%APP_JS%', `/assets/${entry.split('/').pop()}`)
  .replace('%APP_CSS%', `/assets/${cssName}`);
writeFileSync(join(dist, 'index.html'), html);
// The pickup page: the same document with its own script, title and words.
const pickupHtml = readFileSync('src/index.html', 'utf8')
  .replace('%APP_JS%', `/assets/${pickupEntry.split('/').pop()}`)
  .replace('%APP_CSS%', `/assets/${cssName}`)
  .replace('<title>Sealpost</title>', '<title>Secure message · Sealpost</title>')
  .replace(/<noscript>[^<]*<\/noscript>/, '<noscript>This secure message is decrypted in your browser: please enable JavaScript.</noscript>');
writeFileSync(join(dist, 'pickup.html'), pickupHtml);
writeFileSync(join(dist, 'assets', 'favicon.svg'), readFileSync('src/favicon.svg'));

let total = 0;
let initial = 0;
const entryFile = entry.split('/').pop();
const lines = [];
for (const f of readdirSync(join(dist, 'assets')).filter((f) => f.endsWith('.js')).sort()) {
  const gz = gzipSync(readFileSync(join(dist, 'assets', f)), { level: 9 }).length;
  total += gz;
  const imports = result.metafile.outputs[join(dist, 'assets', f)]?.imports ?? [];
  if (f === entryFile) initial += gz;
  lines.push(`  ${f.padEnd(28)} ${(gz / 1024).toFixed(1).padStart(7)} KB gzipped`);
  void imports;
}
console.log(lines.join('\n'));
console.log(`JavaScript, gzipped: ${(total / 1024).toFixed(1)} KB in all (entry ${(initial / 1024).toFixed(1)} KB)`);
if (total > 300 * 1024) {
  console.error('the app exceeds its 300 KB gzipped JavaScript budget');
  process.exit(1);
}
