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
  await build({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'node', outfile: out, logLevel: 'error', conditions });
  return import(out);
}
