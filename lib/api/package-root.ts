// lb4's own package directory, found from this file's place: lib/api/ when run from source,
// dist/lib/api/ when built, node_modules/lb4/dist/lib/api/ when installed. The admin API reads the
// version and the dashboard's files from there.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let found: { root: string | null; version: string } | undefined;

function find(): { root: string | null; version: string } {
  if (found !== undefined) return found;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'lb4' && typeof pkg.version === 'string') return (found = { root: dir, version: pkg.version });
    }
    const parent = dirname(dir);
    if (parent === dir) return (found = { root: null, version: 'unknown' });
    dir = parent;
  }
}

/** lb4's version from its package.json, or `unknown` when the file cannot be found. */
export function packageVersion(): string {
  return find().version;
}

/** The directory holding lb4's package.json; throws when there is none (a broken install). */
export function packageRoot(): string {
  const { root } = find();
  if (root === null) throw new Error("lb4's package.json cannot be found above its code");
  return root;
}
