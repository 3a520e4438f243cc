// The only file that loads the native addon. It loads it lazily, on the first engine created or
// the first look at `counters`, so importing lib/ (for validation, `lb4 check-config`, a fake
// engine in tests) never needs a built addon. At load, every list the addon exports is checked
// against its declaration in lib/engine/native-types.ts, and a mismatch fails loudly: a stale
// build would otherwise number counters, states or algorithms differently from this code.
// pkg-prebuilds finds the binary: a local build (build/Release, from `npm run build` or the
// install script's fallback) first, else the prebuilt one for this platform, arch and libc
// (binding-options.cjs names them).

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  counterNames,
  histogramShapes,
  algorithmNames,
  hashKeyNames,
  backendStateNames,
  closeReasonNames,
  optionLimitNames,
  protocolNames,
  proxyVersionNames,
  type Addon,
  type CounterInfo,
  type NativeEngine,
  type NativeEngineOptions,
  type NativeOptionLimits,
} from './native-types.js';

interface BindingOptions {
  readonly name: string;
  readonly napi_versions: number[];
}
/** pkg-prebuilds' loader; `resolve` gives the path it would load, or null. */
interface LoadBinding {
  resolve(root: string, options: BindingOptions, verifyPrebuild: boolean, throwOnMissing: boolean): string | null;
}

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === 'lb4') return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('lb4: cannot find the lb4 package root');
    dir = parent;
  }
}

function check(what: string, exported: readonly string[] | undefined, declared: readonly string[]): void {
  if (!Array.isArray(exported) || exported.length !== declared.length || exported.some((name, i) => name !== declared[i])) {
    throw new Error(`lb4: the native addon's ${what} (${(exported ?? []).join(', ')}) do not match lib/engine/native-types.ts; rebuild the addon`);
  }
}

let loaded: Addon | null = null;

/** The addon, loaded and checked on first use. */
export function addon(): Addon {
  if (loaded) return loaded;
  const root = packageRoot();
  const require = createRequire(import.meta.url);
  const loadBinding = require('pkg-prebuilds') as LoadBinding;
  const options = require(join(root, 'binding-options.cjs')) as BindingOptions;
  const found = loadBinding.resolve(root, options, false, false);
  if (!found) {
    throw new Error(`lb4: no native addon for ${process.platform}-${process.arch}: no prebuilt one fits and none was built; run "npm run build" in a checkout, or reinstall lb4 with cmake, make and g++ on the PATH`);
  }
  const candidate = require(found) as Addon;
  check('counters', candidate.counters.map((c) => c.name), counterNames);
  check(
    'histograms',
    (candidate.histograms ?? []).map((h) => `${h.name}/${h.protocol}/${h.bounds.join(' ')}/${h.help}`),
    histogramShapes.map((h) => `${h.name}/${h.protocol}/${h.bounds.join(' ')}/${h.help}`),
  );
  check('algorithms', candidate.algorithms, algorithmNames);
  check('hash keys', candidate.hashKeys, hashKeyNames);
  check('backend states', candidate.backendStates, backendStateNames);
  check('close reasons', candidate.closeReasons, closeReasonNames);
  check('protocols', candidate.protocols, protocolNames);
  check('proxy versions', candidate.proxyVersions, proxyVersionNames);
  check('option limits', Object.keys(candidate.optionLimits ?? {}), optionLimitNames);
  for (const name of optionLimitNames) {
    const { min, max } = candidate.optionLimits[name];
    if (!Number.isInteger(min) || !Number.isInteger(max) || min > max) {
      throw new Error(`lb4: the native addon's range for ${name} (${min} to ${max}) is not a range; rebuild the addon`);
    }
  }
  loaded = candidate;
  return loaded;
}

/** Creates a data-plane engine (loading the addon on first use). Options must already be validated. */
export function createEngine(options: NativeEngineOptions): NativeEngine {
  return new (addon().Engine)(options);
}

/** The engine options' ranges (native/core/engine_options.h), as the binding checks them. */
export function nativeOptionLimits(): NativeOptionLimits {
  return addon().optionLimits;
}

// `counters` is public and was always a plain frozen array. It stays one to every reader, but
// its elements come from the addon, which must not load on import: the proxy fills its own target
// on the first access of any kind, then behaves as that frozen array (every trap works on the
// filled target, so the proxy invariants for frozen objects hold).
const counterTable: CounterInfo[] = [];
function filled(): CounterInfo[] {
  if (!Object.isFrozen(counterTable)) {
    counterTable.push(...addon().counters.map((c) => Object.freeze({ ...c })));
    Object.freeze(counterTable);
  }
  return counterTable;
}

/** The data plane's counters, in the order readStats() writes them (read from the addon on first use). */
export const counters: readonly CounterInfo[] = new Proxy(counterTable, {
  get: (_t, key) => Reflect.get(filled(), key),
  has: (_t, key) => Reflect.has(filled(), key),
  ownKeys: () => Reflect.ownKeys(filled()),
  getOwnPropertyDescriptor: (_t, key) => Reflect.getOwnPropertyDescriptor(filled(), key),
  isExtensible: () => Reflect.isExtensible(filled()),
  preventExtensions: () => Reflect.preventExtensions(filled()),
  getPrototypeOf: () => Reflect.getPrototypeOf(filled()),
  set: () => false,
  defineProperty: () => false,
  deleteProperty: () => false,
});
