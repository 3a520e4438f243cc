// Strict input (issue 11): values lb4 cannot run are refused at validation, naming the field,
// never accepted and then rejected by the engine. The library's validation, a running balancer on
// a fake engine, and `lb4 check-config` as a person runs it.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { validateOptions } from '../../lib/config/validate.js';
import { buildDist, onlyLine, runCli } from '../helpers/cli.js';
import { startFake } from '../helpers/fake-balancer.js';

const dir = mkdtempSync(join(tmpdir(), 'lb4-reliab-strict-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

t.test('scoped IPv6 addresses are refused at validation, naming the field', async (t) => {
  const scoped = '[fe80::1%lo]:80';
  await t.rejects(validateOptions({ listen: '127.0.0.1:0', backends: [scoped] }), { code: 'LB4_INVALID_ADDRESS', field: 'backends[0].address', message: /scoped IPv6/ });
  await t.rejects(validateOptions({ listeners: [{ listen: '[fe80::1%lo]:0', backends: ['127.0.0.1:80'] }] }), { code: 'LB4_INVALID_ADDRESS', field: 'listeners[0].listen', message: /scoped IPv6/ });
  await t.rejects(validateOptions({ listen: '127.0.0.1:0', backends: ['127.0.0.1:80'], admin: { listen: '[fe80::1%lo]:9090' } }), { code: 'LB4_INVALID_ADDRESS', field: 'admin.listen' });
  await t.rejects(
    validateOptions({ listen: '127.0.0.1:0', backends: ['127.0.0.1:80'], health: { type: 'tcp', address: 'fe80::1%lo' } }),
    { code: 'LB4_INVALID_OPTION', field: 'health.address', message: /scoped IPv6/ },
  );
  await t.rejects(validateOptions({ listen: '127.0.0.1:0', backends: ['127.0.0.1:80'], cluster: { peer: '[fe80::2%lo]:7000' } }), { code: 'LB4_INVALID_ADDRESS', field: 'cluster.peer' });
  t.ok(await validateOptions({ listen: '127.0.0.1:0', backends: ['[fe80::1]:80'] }), 'a link-local address without a zone is still an address');

  // A running balancer refuses it through the API and keeps working.
  const { lb, engine } = await startFake(t, { listen: '127.0.0.1:0', backends: ['127.0.0.1:80'] });
  await t.rejects(lb.addBackend(scoped), { code: 'LB4_INVALID_ADDRESS', field: 'backend.address' });
  t.equal(engine.tables[0].length, 1, 'the engine never saw it');
  t.same((await lb.setBackendWeight('127.0.0.1:80', 3)).map((b) => b.weight), [3], 'later changes work');
  t.same((await lb.reload({ listen: '127.0.0.1:0', backends: ['127.0.0.1:80'] })).backendsChanged, ['127.0.0.1:0/127.0.0.1:80'], 'and reloads');
});

t.test('lb4 check-config refuses what start would refuse', async (t) => {
  await buildDist();
  const scoped = file('scoped.yaml', 'listen: 127.0.0.1:0\nbackends: ["[fe80::1%lo]:80"]\n');
  const run = await runCli(['check-config', scoped]);
  t.equal(run.exit.code, 2);
  t.match(onlyLine(t, run.stderr), /backends\[0\]\.address.*scoped IPv6/);
});
