// A static backend that is one of lb4's own listeners loops every flow back into lb4 until
// descriptors run out: validation refuses it, naming the field, and `lb4 check-config` agrees.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { validateOptions } from '../../lib/config/validate.js';
import { buildDist, onlyLine, runCli } from '../helpers/cli.js';

t.test('a backend equal to a listener (its address, or any local one on a wildcard listener) is refused', async (t) => {
  const loops: Array<[Parameters<typeof validateOptions>[0], string, RegExp]> = [
    [{ listen: '127.0.0.1:18080', backends: ['127.0.0.1:18080'] }, 'backends', /backend "127\.0\.0\.1:18080" is lb4's own listener 127\.0\.0\.1:18080/],
    [{ listen: ':18081', backends: ['127.0.0.5:18081'] }, 'backends', /own listener :18081/],
    [{ listen: '[::]:18082', backends: ['[::1]:18082'] }, 'backends', /own listener/],
    [{ listen: '0.0.0.0:18083', backends: ['127.0.0.1:18083'] }, 'backends', /own listener/],
    [{ listeners: [{ listen: '127.0.0.1:18084', backends: ['127.0.0.2:9'] }, { listen: '127.0.0.1:18085/udp', backends: ['127.0.0.1:18085'] }] }, 'listeners[1].backends', /own listener 127\.0\.0\.1:18085\/udp/],
    [{ listeners: [{ listen: '127.0.0.1:18086', backends: ['127.0.0.1:18087'] }, { listen: '127.0.0.1:18087', backends: ['127.0.0.2:9'] }] }, 'listeners[0].backends', /own listener 127\.0\.0\.1:18087/],
  ];
  for (const [options, field, message] of loops) await t.rejects(validateOptions(options), { code: 'LB4_INVALID_OPTION', field, message }, JSON.stringify(options));

  const fine: Array<Parameters<typeof validateOptions>[0]> = [
    { listen: '127.0.0.1:18080', backends: ['127.0.0.2:18080'] }, // another address, same port
    { listen: '127.0.0.1:18080', backends: ['127.0.0.1:18081'] },
    { listen: '127.0.0.1:0', backends: ['127.0.0.1:9'] }, // port 0: not known yet, nothing to match
    { listeners: [{ listen: '127.0.0.1:18088/udp', backends: ['127.0.0.2:9'] }, { listen: '127.0.0.1:18089', backends: ['127.0.0.1:18088'] }] }, // TCP backend, UDP listener
  ];
  for (const options of fine) t.ok(await validateOptions(options), `accepted: ${JSON.stringify(options)}`);
});

t.test('lb4 check-config refuses a backend that is lb4 itself, exit 2, one line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lb4-own-listener-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'loop.yaml');
  writeFileSync(path, 'listen: :18090\nbackends: [127.0.0.1:18090]\n');
  await buildDist();
  const run = await runCli(['check-config', path]);
  t.equal(run.exit.code, 2);
  t.match(onlyLine(t, run.stderr), /backends: backend "127\.0\.0\.1:18090" is lb4's own listener :18090: its flows would loop back into lb4/);
});
