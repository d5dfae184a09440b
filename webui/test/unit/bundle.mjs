// Bundles a source module for Node so unit tests exercise the exact code the browser runs.
import { build } from 'esbuild';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export async function load(entry) {
  const dir = mkdtempSync(join(tmpdir(), 'sealpost-unit-'));
  const out = join(dir, 'mod.mjs');
  await build({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'node', outfile: out, logLevel: 'error' });
  return import(out);
}
