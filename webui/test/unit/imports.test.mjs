// The app's module layering: app.tsx is the root and shell, each screen in src/screens/ is a
// module of its own that depends only on the shared modules (ui, auth, mail, api, client, ...),
// never on another screen, and no import circle anywhere (type-only imports count too).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

function modules(dir = SRC) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? modules(join(dir, e.name)) : /\.tsx?$/.test(e.name) ? [join(dir, e.name)] : []);
}

/** Each module (path relative to src/, no extension) and the local modules it imports. */
function graph() {
  const g = new Map();
  for (const file of modules()) {
    const name = relative(SRC, file).replace(/\.tsx?$/, '');
    const deps = [...readFileSync(file, 'utf8').matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'(\.[^']+)'/gm)]
      .map((m) => relative(SRC, resolve(dirname(file), m[1])));
    g.set(name, deps);
  }
  return g;
}

test('every local import names a module that exists', () => {
  const g = graph();
  for (const [m, deps] of g) for (const d of deps) assert.ok(g.has(d), `${m} imports ${d}, which is not in src/`);
});

test('screens import shared modules only, never another screen or the shell', () => {
  for (const [m, deps] of graph()) {
    if (!m.startsWith('screens/')) continue;
    for (const d of deps) {
      assert.ok(!d.startsWith('screens/') && d !== 'app', `${m} imports ${d}: move what they share into a shared module`);
    }
  }
  for (const [m, deps] of graph()) {
    if (m.startsWith('screens/') || m === 'app') continue;
    assert.deepEqual(deps.filter((d) => d.startsWith('screens/') || d === 'app'), [], `shared module ${m} imports a screen`);
  }
});

test('no import circle', () => {
  const g = graph();
  const state = new Map(); // 1: on the current path, 2: done
  const visit = (m, path) => {
    if (state.get(m) === 2) return;
    assert.notEqual(state.get(m), 1, `import circle: ${[...path.slice(path.indexOf(m)), m].join(' -> ')}`);
    state.set(m, 1);
    for (const d of g.get(m) ?? []) visit(d, [...path, m]);
    state.set(m, 2);
  };
  for (const m of g.keys()) visit(m, []);
});
