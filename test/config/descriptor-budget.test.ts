// Issue 11: `check-config` accepted listeners that `start` could not open under the descriptor
// limit (each worker opens a socket per listener). Validation, shared by check-config, start and
// reloads, now estimates the descriptors a config needs and refuses what cannot fit; a config the
// estimate accepts really starts and serves under that limit.

import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { checkDescriptorBudget, descriptorsNeeded } from '../../lib/config/descriptor-budget.js';
import { buildDist, Cli, killChildren, onlyLine, startCli } from '../helpers/cli.js';
import { within } from '../helpers/sockets.js';

const dir = mkdtempSync(join(tmpdir(), 'lb4-soak-rss-fds-'));
t.teardown(() => {
  killChildren();
  rmSync(dir, { recursive: true, force: true });
});

/** The limit the children run under (`ulimit -n`), low enough for a few hundred listeners to exceed. */
const fdLimit = 256;
const workers = 2;
const demand = (listeners: number) => ({ listeners, workers, checkedBackends: 0, admin: false, cluster: false });
/** The most listeners the estimate lets 2 workers run under `fdLimit`. */
let fitting = 1;
while (descriptorsNeeded(demand(fitting + 1)) <= fdLimit) fitting++;

function configFile(name: string, listeners: number, backend: string): string {
  const path = join(dir, name);
  const list = Array.from({ length: listeners }, (_, i) => ({ name: `l${i}`, listen: '127.0.0.1:0', backends: [backend] }));
  writeFileSync(path, JSON.stringify({ workers, listeners: list }));
  return path;
}

t.test('the estimate grows with listeners x workers and refuses past the limit, naming the numbers', async (t) => {
  const base = descriptorsNeeded({ listeners: 1, workers: 1, checkedBackends: 0, admin: false, cluster: false });
  t.equal(descriptorsNeeded({ listeners: 10, workers: 4, checkedBackends: 0, admin: false, cluster: false }) - base, 10 * 4 - 1 + 3 * 3, 'a socket per listener per worker, and each worker its own few');
  t.ok(descriptorsNeeded({ listeners: 1, workers: 1, checkedBackends: 5, admin: true, cluster: true }) > base + 5, 'health checks, the admin API and the cluster count too');

  t.doesNotThrow(() => checkDescriptorBudget(demand(fitting), 'listeners', fdLimit), `${fitting} listeners fit under ${fdLimit}`);
  t.throws(() => checkDescriptorBudget(demand(fitting + 1), 'listeners', fdLimit), {
    code: 'LB4_INVALID_OPTION',
    field: 'listeners',
    message: new RegExp(`${fitting + 1} listener\\(s\\) on 2 worker\\(s\\) need ${(fitting + 1) * 2} listening sockets, \\d+ descriptors in all .* the descriptor limit \\(ulimit -n\\) is ${fdLimit}`),
  });
  t.doesNotThrow(() => checkDescriptorBudget(demand(1024), 'listeners', undefined), 'no limit known (unlimited): nothing to check');
});

t.test('check-config and start refuse what cannot open under ulimit -n, with one line and exit 2', async (t) => {
  await buildDist();
  const tooMany = configFile('too-many.json', 120, '127.0.0.1:9');
  for (const args of [['check-config', tooMany], ['start', '--config', tooMany]]) {
    const cli = new Cli(args, { fdLimit });
    const exit = await cli.waitForExit();
    t.equal(exit.code, 2, `${args[0]}: exit 2`);
    const line = onlyLine(t, cli.stderr);
    t.match(line, new RegExp(`listeners.*120 listener\\(s\\) on 2 worker\\(s\\) need 240 listening sockets.*ulimit -n\\) is ${fdLimit}`), `${args[0]}: ${line}`);
    t.equal(cli.stdout, '', `${args[0]}: nothing on stdout`);
  }
  // The same file passes where the limit is the test's own (high) one.
  const fine = new Cli(['check-config', tooMany]);
  t.equal((await fine.waitForExit()).code, 0, 'without the low limit it is fine');
});

t.test('the largest config the estimate accepts starts and serves under that limit', async (t) => {
  await buildDist();
  const backend = net.createServer((s) => s.pipe(s));
  backend.listen(0, '127.0.0.1');
  await once(backend, 'listening');
  t.teardown(() => backend.close());
  const path = configFile('fitting.json', fitting, `127.0.0.1:${(backend.address() as net.AddressInfo).port}`);

  const check = new Cli(['check-config', path], { fdLimit });
  t.equal((await check.waitForExit()).code, 0, `check-config accepts ${fitting} listeners under ulimit -n ${fdLimit}: ${check.stderr}`);

  const { cli, ports } = await startCli(['--config', path], { fdLimit });
  t.teardown(() => cli.signal('SIGKILL'));
  t.equal(ports.length, fitting, `start opened all ${fitting} listeners`);
  // The last listener opened, and flows get through it.
  const client = net.connect(ports[ports.length - 1], '127.0.0.1');
  t.teardown(() => client.destroy());
  await once(client, 'connect');
  client.end('through the last listener');
  let echoed = '';
  client.on('data', (d: Buffer) => (echoed += d.toString()));
  await within(once(client, 'end'), 10_000, 'the echo to end');
  t.equal(echoed, 'through the last listener');
  cli.signal('SIGTERM');
  t.equal((await cli.waitForExit()).code, 0, 'stops cleanly');
});
