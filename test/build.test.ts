// The package's build promises: CMake (the default builder) and binding.gyp (the alternative)
// compile the same sources, and every source file under native/ is in the build.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');

function cmakeSources(): string[] {
  const text = readFileSync(join(root, 'CMakeLists.txt'), 'utf8');
  const lists = ['LB4_CORE_SOURCES', 'LB4_BINDING_SOURCES'].map((name) => {
    const m = new RegExp(`set\\(${name}([^)]*)\\)`).exec(text);
    if (!m) throw new Error(`CMakeLists.txt has no ${name}`);
    return m[1].split(/\s+/).filter(Boolean);
  });
  return lists.flat().sort();
}

function gypSources(): string[] {
  const gyp = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8')) as { targets: { sources: string[] }[] };
  return [...gyp.targets[0].sources].sort();
}

// Every file under `dir`, as paths relative to the package root: native/core has folders.
function filesUnder(dir: string): string[] {
  return readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' }).map((f) => `${dir}/${f}`);
}

function sourceFiles(): string[] {
  return ['native/core', 'native/binding'].flatMap((dir) => filesUnder(dir).filter((f) => f.endsWith('.cc'))).sort();
}

t.test('CMake and binding.gyp compile the same sources', async (t) => {
  t.same(gypSources(), cmakeSources());
});

t.test('every .cc file under native/ is compiled', async (t) => {
  t.same(cmakeSources(), sourceFiles());
});

t.test('native/core stays free of Node-API headers', async (t) => {
  for (const f of filesUnder('native/core').filter((p) => /\.(h|cc)$/.test(p))) {
    const text = readFileSync(join(root, f), 'utf8');
    t.notMatch(text, /#include\s+[<"](napi|node_api|node)\.h[>"]/, `${f} includes no Node-API header`);
  }
});

t.test('the addon loads and declares its counters', async (t) => {
  const { counters } = await import('../lib/native.js');
  t.ok(counters.length > 10);
  for (const c of counters) t.match(c, { name: /^[a-z_]+$/, kind: /^(gauge|counter)$/, help: /\w/ });
});
