// The shape of lib/ and bin/ as rules that fail loudly: no import circles (an import circle is how
// the old Balancer and the admin API grew into each other), a thin facade, no file in lib/ that
// has grown past reading in one sitting, and the addon loaded only by lib/engine/ and only when
// an engine is made.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const facade = 'lib/balancer.ts';
const facadeLimit = 300;
const fileLimit = 400;

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(join(root, path)).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

/**
 * Every relative module a file imports: `import`, `import type`, `export ... from` and
 * `import('...')` alike (a type-only import ties two modules together as much as any other).
 * TypeScript's own pre-processor reads the specifiers, so comments and strings cannot fool it.
 */
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(join(root, file), 'utf8'), true, true);
  return info.importedFiles
    .map((f) => f.fileName)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => relative(root, resolve(root, dirname(file), spec.replace(/\.js$/, '.ts'))));
}

/** Each cycle in `graph` once, as a path that starts and ends at the same file. */
function findCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string) => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of [...graph.keys()].sort()) if (!state.has(node)) visit(node);
  return cycles;
}

function lineCount(file: string): number {
  return readFileSync(join(root, file), 'utf8').split('\n').length - 1;
}

const files = [...sourceFiles('lib'), ...sourceFiles('bin')];

t.test('the cycle finder finds cycles, and reports their path', async (t) => {
  t.same(findCycles(new Map([['a', ['b']], ['b', ['c']], ['c', []]])), []);
  t.same(findCycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]])), [['a', 'b', 'c', 'a']]);
  t.same(findCycles(new Map([['a', ['a']]])), [['a', 'a']]);
});

t.test('no import circle among lib/ and bin/', async (t) => {
  const graph = new Map(files.map((f) => [f, importsOf(f)]));
  t.ok(graph.size > 40, `read ${graph.size} files`);
  t.ok((graph.get('lib/compose.ts') ?? []).includes('lib/api/server.ts'), 'dynamic imports are followed');
  const missing = [...graph].flatMap(([file, deps]) => deps.filter((dep) => !graph.has(dep)).map((dep) => `${file} imports ${dep}`));
  t.same(missing, [], 'every imported file exists');
  const cycles = findCycles(graph);
  t.same(cycles.map((c) => c.join(' -> ')), [], 'no cycles');
});

t.test(`the facade stays under ${facadeLimit} lines and no lib/ file exceeds ${fileLimit}`, async (t) => {
  const facadeLines = lineCount(facade);
  t.ok(facadeLines < facadeLimit, `${facade}: ${facadeLines} lines`);
  for (const file of files.filter((f) => f.startsWith('lib/'))) {
    const lines = lineCount(file);
    if (lines > fileLimit) t.fail(`${file}: ${lines} lines (split it: at most ${fileLimit})`);
  }
  t.pass('sizes checked');
});

t.test('only lib/engine/addon.ts loads the addon, and importing lib/ does not', async (t) => {
  // The addon is found through pkg-prebuilds and binding-options.cjs, which name it.
  const naming = files.filter((file) => /lb4\.node|binding-options\.cjs|pkg-prebuilds/.test(readFileSync(join(root, file), 'utf8')));
  t.same(naming, ['lib/engine/addon.ts'], 'only lib/engine/addon.ts names the addon');
  const lib = await import('../lib/index.js');
  const loaded = () => Object.keys(createRequire(import.meta.url).cache).filter((path) => path.endsWith('.node'));
  t.same(loaded(), [], 'no native module loaded by importing lib/index.ts');
  t.ok(lib.counters.length > 0, 'the counters are there once asked for');
  t.match(loaded(), [/lb4\.node$/], 'the first look at counters loads the addon');
});
