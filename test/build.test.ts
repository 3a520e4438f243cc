// The package's build promises: CMake (the default builder) and binding.gyp (the alternative)
// compile the same sources, and every source file under native/ is in the build.

import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import t from 'tap';
import { buildDist } from './helpers/cli.js';

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

/** Files under `dir` (relative to the package root), its folders included, as `dir/...` paths. */
function filesUnder(dir: string): string[] {
  return readdirSync(join(root, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => `${dir}/${relative(join(root, dir), join(e.parentPath, e.name))}`);
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
  for (const f of filesUnder('native/core')) {
    const text = readFileSync(join(root, f), 'utf8');
    t.notMatch(text, /#include\s+[<"](napi|node_api|node)\.h[>"]/, `${f} includes no Node-API header`);
  }
});

t.test('the addon loads and declares its counters', async (t) => {
  const { counters } = await import('../lib/engine/addon.js');
  t.ok(counters.length > 10);
  for (const c of counters) t.match(c, { name: /^[a-z_]+$/, kind: /^(gauge|counter)$/, help: /\w/ });
});

t.test('the addon exports its enumerations and option ranges, checked at load', async (t) => {
  const native = await import('../lib/engine/native-types.js');
  const { nativeOptionLimits } = await import('../lib/engine/addon.js');
  const optionLimits = nativeOptionLimits();
  // Loading the addon already compared each list with its declaration; these are the
  // numbers the rest of lib/ sends.
  t.same(native.NativeAlgorithm, { roundrobin: 0, leastconn: 1, maglev: 2 });
  t.same(native.NativeBackendState, { up: 0, down: 1, draining: 2, maintenance: 3 });
  t.same(native.NativeProtocol, { tcp: 0, udp: 1 });
  t.same(native.NativeProxyVersion, { none: 0, v1: 1, v2: 2 });
  t.same(native.closeReasonNames, [
    'done', 'client-reset', 'backend-reset', 'idle-timeout', 'no-backend', 'drained', 'error', 'evicted', 'responses', 'backend-gone', 'refused',
    'proxy-header', 'policy', 'sni',
  ]);
  t.same(Object.keys(optionLimits), [...native.optionLimitNames]);
  for (const [name, range] of Object.entries(optionLimits)) t.ok(range.min <= range.max, `${name}: ${range.min} to ${range.max}`);
  t.equal(native.counterNames.at(-1), 'sni_hello_timeouts', 'a new counter is appended last');
  t.equal(native.counterNames.indexOf('sni_routed'), native.counterNames.indexOf('dropped_overflow') + 1, 'after the ones before it');
  t.equal(native.counterNames.indexOf('dropped_overflow'), native.counterNames.indexOf('flows_queued') + 1, 'after the ones before it');
  t.equal(native.counterNames.indexOf('denied'), native.counterNames.indexOf('proxy_header_timeouts') + 1, 'after the ones before it');
  t.equal(native.counterNames.indexOf('proxy_headers_accepted'), native.counterNames.indexOf('sessions_replicated') + 1, 'after the ones before it');
  t.equal(native.counterNames.indexOf('sessions_replicated'), native.counterNames.indexOf('dropped_late') + 1, 'after the ones before it');
});


t.test('the package has its MIT LICENSE file, and ships it', async (t) => {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { license: string; files: string[] };
  t.equal(manifest.license, 'MIT');
  t.match(readFileSync(join(root, 'LICENSE'), 'utf8'), /^MIT License\n/);
  t.ok(manifest.files.includes('LICENSE'));
});

t.test('no source map in dist/ points at a file the package does not ship', async (t) => {
  await buildDist();
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { files: string[] };
  const shipped = (path: string) => manifest.files.some((f) => (f.endsWith('/') ? path.startsWith(f) : path === f));
  const maps = filesUnder('dist').filter((f) => f.endsWith('.map'));
  t.ok(maps.length > 10, `${maps.length} maps`);
  for (const map of maps) {
    const { sources, sourcesContent } = JSON.parse(readFileSync(join(root, map), 'utf8')) as { sources: string[]; sourcesContent?: Array<string | null> };
    sources.forEach((source, i) => {
      const path = relative(root, join(root, map, '..', source));
      if (!(typeof sourcesContent?.[i] === 'string' || shipped(path))) t.fail(`${map} needs ${path}, which is not shipped`);
    });
  }
  t.pass('every map carries its sources or names shipped files');
});
