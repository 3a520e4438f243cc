// A flag that sets every listener's default (`--deny`, `--algorithm`, ...) cannot reach a
// listener of the config file that sets its own value: lb4 refuses the conflict instead of
// running without what the operator just typed.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { buildDist, killChildren, onlyLine, runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'lb4-flag-shadow-'));
t.teardown(() => {
  killChildren();
  rmSync(dir, { recursive: true, force: true });
});

t.test('--deny over a file listener with its own deny list is refused, naming both', async (t) => {
  await buildDist();
  const file = join(dir, 'own-deny.yaml');
  writeFileSync(file, 'listeners:\n  - listen: 127.0.0.1:0\n    deny: [127.0.0.2]\n    backends: ["127.0.0.1:9"]\n');
  const { exit, stderr } = await runCli(['start', '--config', file, '--deny', '127.0.0.3']);
  t.equal(exit.code, 2);
  const line = onlyLine(t, stderr);
  t.match(line, /--deny sets every listener's default, but listeners\[0\] in .*own-deny\.yaml sets its own deny/);

  // Without its own list the flag is the listener's list: nothing to refuse.
  const plain = join(dir, 'no-deny.yaml');
  writeFileSync(plain, 'listeners:\n  - listen: 127.0.0.1:0\n    backends: ["127.0.0.1:9"]\n');
  const check = await runCli(['start', '--config', plain, '--deny', '127.0.0.3:x']);
  t.equal(check.exit.code, 2, 'the flag itself is still validated');
  t.match(check.stderr, /--deny/);
});
