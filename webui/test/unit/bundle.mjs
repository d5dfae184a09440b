// Bundles a source module for Node so unit tests exercise the exact code the browser runs.
import { build } from 'esbuild';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** `conditions`: extra package export conditions (['browser'] for code importing
 * openpgp/lightweight, which OpenPGP.js exports to browsers only). */
export async function load(entry, conditions = []) {
  const dir = mkdtempSync(join(tmpdir(), 'sealpost-unit-'));
  const out = join(dir, 'mod.mjs');
  // `require` for CommonJS packages that load Node built-ins when they run under Node
  // (node-forge's `require('crypto')`): an ESM bundle has none of its own.
  const banner = { js: "import { createRequire as __sealpostRequire } from 'node:module'; const require = __sealpostRequire(import.meta.url);" };
  await build({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'node', outfile: out, logLevel: 'error', conditions, banner });
  return import(out);
}
