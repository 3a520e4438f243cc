// Strict input (issue 11): values lb4 cannot run are refused at validation, naming the field,
// never accepted and then rejected by the engine. The library's validation, a running balancer on
// a fake engine, and `lb4 check-config` as a person runs it.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadConfigFile, readConfigFile } from '../../lib/config/config-file.js';
import { parseDuration } from '../../lib/config/duration.js';
import { validateOptions } from '../../lib/config/validate.js';
import { buildDist, killChildren, onlyLine, refusedByBoth, runCli } from '../helpers/cli.js';
import { startFake } from '../helpers/fake-balancer.js';

const dir = mkdtempSync(join(tmpdir(), 'lb4-reliab-strict-'));
t.teardown(() => {
  // A run that hangs (a FIFO read before the fix) must not outlive the test.
  killChildren();
  rmSync(dir, { recursive: true, force: true });
});
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

t.test('null is a wrong value, not an absent one', async (t) => {
  const base = { listen: '127.0.0.1:0' };
  for (const key of ['weight', 'state', 'id']) {
    await t.rejects(validateOptions({ ...base, backends: [{ address: '127.0.0.1:80', [key]: null }] }), { code: 'LB4_INVALID_OPTION', field: `backends[0].${key}`, message: /got null/ }, `${key}: null`);
  }
  t.match((await validateOptions({ ...base, backends: [{ address: '127.0.0.1:80' }] })).listeners[0].backends[0], { weight: 1, state: 'up', id: '127.0.0.1:80' }, 'absent still means the default');
  const empty = file('empty-weight.yaml', 'listen: 127.0.0.1:0\nbackends:\n  - address: 127.0.0.1:80\n    weight:\n');
  await buildDist();
  const run = await runCli(['check-config', empty]);
  t.equal(run.exit.code, 2);
  t.match(onlyLine(t, run.stderr), /backends\[0\]\.weight: must be a whole number from 0 to 1000000, got null/);
});

t.test('lb4 check-config refuses what start would refuse', async (t) => {
  await buildDist();
  const scoped = file('scoped.yaml', 'listen: 127.0.0.1:0\nbackends: ["[fe80::1%lo]:80"]\n');
  const run = await runCli(['check-config', scoped]);
  t.equal(run.exit.code, 2);
  t.match(onlyLine(t, run.stderr), /backends\[0\]\.address.*scoped IPv6/);
});

t.test('durations need a unit, except in a program, which gives milliseconds as numbers', async (t) => {
  t.throws(() => parseDuration('30', 'drainTimeout'), { code: 'LB4_INVALID_DURATION', field: 'drainTimeout', message: /"30" needs a unit: 30ms, 30s/ });
  t.equal(parseDuration('0', 'drainTimeout'), 0, '0 is 0 in any unit');
  t.equal(parseDuration('1.5s', 'drainTimeout'), 1500);
  t.equal(parseDuration(30, 'drainTimeout'), 30, "a program's number is milliseconds, as documented");
  t.throws(() => parseDuration(null, 'x'), { message: /got null/ });
  await t.rejects(validateOptions({ listen: '127.0.0.1:0', backends: ['127.0.0.1:80'], slowStart: '10' }), { field: 'slowStart', message: /needs a unit/ });
  await t.rejects(validateOptions({ listen: '127.0.0.1:0', backends: ['127.0.0.1:80'], health: { type: 'tcp', interval: '300' } }), { field: 'health.interval', message: /needs a unit/ });
  await t.rejects(readConfigFile(file('bare.yaml', 'listen: 127.0.0.1:0\nbackends: [127.0.0.1:80]\ndrainTimeout: 500\n')), { code: 'LB4_INVALID_DURATION', message: /bare\.yaml: drainTimeout: 500 needs a unit/ });
  await t.rejects(
    readConfigFile(file('bare-health.yaml', 'listeners: [{ listen: 127.0.0.1:0, backends: [127.0.0.1:80], health: { type: tcp, timeout: 200 } }]\n')),
    { message: /listeners\[0\]\.health\.timeout: 200 needs a unit/ },
  );
  t.ok(await loadConfigFile(file('units.yaml', 'listen: 127.0.0.1:0\nbackends: [127.0.0.1:80]\ndrainTimeout: 0\nslowStart: 2s\n')), 'units and 0 are fine');
});

t.test('values that are not numbers say what was given', async (t) => {
  const base = { listen: '127.0.0.1:0', backends: ['127.0.0.1:80'] };
  await t.rejects(validateOptions({ ...base, accessLog: { sample: NaN } }), { field: 'accessLog.sample', message: /got NaN$/ });
  await t.rejects(validateOptions({ ...base, workers: Infinity }), { field: 'workers', message: /got Infinity$/ });
  await t.rejects(validateOptions({ listen: '127.0.0.1:0', backends: [{ address: '127.0.0.1:80', weight: NaN }] }), { field: 'backends[0].weight', message: /got NaN$/ });
  await t.rejects(loadConfigFile(file('nan.yaml', 'listen: 127.0.0.1:0\nbackends: [127.0.0.1:80]\naccessLog: { sample: .nan }\n')), { message: /accessLog\.sample: .*got NaN$/ });
});

t.test('backend ids are bounded', async (t) => {
  const long = 'x'.repeat(129);
  await t.rejects(validateOptions({ listen: '127.0.0.1:0', backends: [{ address: '127.0.0.1:80', id: long }] }), { field: 'backends[0].id', message: /at most 128 characters, got 129/ });
  await t.rejects(validateOptions({ listen: '127.0.0.1:0', backends: [{ address: '127.0.0.1:80', id: 'a\nb' }] }), { field: 'backends[0].id', message: /control characters/ });
  t.ok(await validateOptions({ listen: '127.0.0.1:0', backends: [{ address: '127.0.0.1:80', id: 'x'.repeat(128) }] }), '128 is fine');
  const { lb } = await startFake(t, { listen: '127.0.0.1:0', backends: ['127.0.0.1:80'] });
  await t.rejects(lb.addBackend({ address: '127.0.0.1:81', id: 'y'.repeat(900_000) }), { code: 'LB4_INVALID_OPTION', field: 'backend.id' }, 'the admin API cannot add one either');
  t.equal(lb.backends().length, 1);
});

t.test('config files: regular files only, bounded in size and depth, no key twice', async (t) => {
  await t.rejects(readConfigFile('/dev/zero'), { code: 'LB4_CONFIG_FILE', message: 'cannot read /dev/zero: not a regular file' });
  await t.rejects(readConfigFile(dir), { message: /it is a directory/ });
  const big = file('big.yaml', `listen: 127.0.0.1:0\n#${' '.repeat(5 * 1024 * 1024)}\n`);
  await t.rejects(readConfigFile(big), { code: 'LB4_CONFIG_FILE', message: /big\.yaml: it holds \d+ bytes, more than the 4194304/ });
  const deepJson = file('deep.json', `{"listen": ${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
  await t.rejects(readConfigFile(deepJson), { code: 'LB4_CONFIG_FILE', message: /deep\.json is nested too deeply \(at most 32 levels\)$/ });
  const deepYaml = file('deep.yaml', 'a:\n' + Array.from({ length: 1000 }, (_, i) => `${' '.repeat(i + 1)}b:`).join('\n') + ' 1\n');
  await t.rejects(readConfigFile(deepYaml), { message: /deep\.yaml is nested too deeply/ });
  await t.rejects(readConfigFile(file('dup.json', '{"listen": "127.0.0.1:0", "backends": [], "listen": "127.0.0.1:1"}')), { code: 'LB4_CONFIG_FILE', message: /dup\.json is not valid: Map keys must be unique/ });
  t.ok(await readConfigFile(file('fine.json', '{"listen": "127.0.0.1:0", "backends": ["127.0.0.1:80"]}')));
});

t.test('check-config gives the verdict start gives, for bad files of every kind', async (t) => {
  await buildDist();
  const fifo = join(dir, 'config.fifo');
  execFileSync('mkfifo', [fifo]);
  const listeners = Array.from({ length: 2000 }, (_, i) => ({ name: `l${i}`, listen: '127.0.0.1:0', backends: ['127.0.0.1:9'] }));
  const cases = [
    { path: '/dev/zero', says: /cannot read \/dev\/zero: not a regular file/ },
    { path: fifo, says: /config\.fifo: not a regular file/ },
    { path: file('many.json', JSON.stringify({ workers: 1, listeners })), says: /many\.json: listeners: at most 1024 listeners, got 2000/ },
    { path: file('deep-cli.json', `{"listen": ${'['.repeat(50_000)}${']'.repeat(50_000)}}`), says: /deep-cli\.json is nested too deeply/ },
    { path: file('bare-cli.yaml', 'listen: 127.0.0.1:0\nbackends: [127.0.0.1:9]\nidleTimeout: 300\n'), says: /bare-cli\.yaml: idleTimeout: 300 needs a unit/ },
    { path: file('id-cli.yaml', `listen: 127.0.0.1:0\nbackends: [{ address: 127.0.0.1:9, id: ${'z'.repeat(200)} }]\n`), says: /id-cli\.yaml: backends\[0\]\.id: must be at most 128 characters/ },
  ];
  await refusedByBoth(t, cases);
  const dur = await runCli(['start', '--listen', '127.0.0.1:0', '--backend', '127.0.0.1:9', '--drain-timeout', '30']);
  t.equal(dur.exit.code, 2);
  t.match(onlyLine(t, dur.stderr), /--drain-timeout: "30" needs a unit: 30ms, 30s/);
});
