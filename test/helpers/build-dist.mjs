// Brings dist/ up to date for the tests that run the CLI from it: tsc runs only when a source
// (or a tsconfig) is newer than its output. test/helpers/cli.ts runs this under flock(1), so test
// files that start together build once between them, and none rewrites dist/ while another is
// running lb4 from it (a file rewritten in place is empty for a moment).

import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

function* sources(dir) {
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sources(path);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) yield path;
  }
}

function mtime(path) {
  try {
    return statSync(join(root, path)).mtimeMs;
  } catch {
    return -1;
  }
}

const configs = Math.max(mtime('tsconfig.json'), mtime('tsconfig.build.json'));
const stale = [...sources('lib'), ...sources('bin')].find((source) => {
  const output = join('dist', source.replace(/\.ts$/, '.js'));
  return mtime(output) < Math.max(mtime(source), configs);
});

if (stale !== undefined) {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    process.stderr.write(`tsc -p tsconfig.build.json failed (${stale} was newer than its output):\n${err.stdout}${err.stderr}`);
    process.exit(1);
  }
}
