// Stand-ins for the command-line tools lb4 runs (nft, conntrack): shell scripts in a temporary
// directory the test removes when it ends.

import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';

export interface FakeTools {
  /** A path in the directory. */
  file(name: string): string;
  /** Writes an executable `sh` script with `body`; returns its path. */
  script(name: string, body: string): string;
}

export function fakeTools(t: Test, prefix: string): FakeTools {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string) => join(dir, name);
  return {
    file,
    script(name, body) {
      writeFileSync(file(name), `#!/bin/sh\n${body}\n`);
      chmodSync(file(name), 0o755);
      return file(name);
    },
  };
}
