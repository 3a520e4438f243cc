// The control plane's pure parts: reload planning, config files, slow start, passive health,
// and the registry's combination of operator state and health. No sockets needed.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { validateOptions } from '../lib/config/validate.js';
import { loadConfigFile } from '../lib/config/config-file.js';
import { Lb4Error } from '../lib/errors.js';
import { ConsecutiveFailures } from '../lib/health/passive.js';
import { BackendRegistry, engineState } from '../lib/registry/registry.js';
import { planReload } from '../lib/reload/plan.js';
import { slowStartWeight } from '../lib/registry/slow-start.js';

const dir = mkdtempSync(join(tmpdir(), 'lb4-config-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

t.test('reload plan: listeners and backends added, removed, changed', async (t) => {
  const before = await validateOptions({
    listeners: [
      { name: 'web', listen: '127.0.0.1:8080', backends: ['127.0.0.1:9001', '127.0.0.1:9002,weight=2', { address: '127.0.0.1:9003', id: 'c' }] },
      { name: 'old', listen: '127.0.0.1:8081', backends: ['127.0.0.1:9001'] },
      { name: 'moved', listen: '127.0.0.1:8082', backends: ['127.0.0.1:9001'] },
    ],
    workers: 1,
  });
  const after = await validateOptions({
    listeners: [
      { name: 'web', listen: '127.0.0.1:8080', algorithm: 'leastconn', backends: ['127.0.0.1:9001,weight=5', { address: '127.0.0.1:9004', id: 'c' }, '127.0.0.1:9005'] },
      { name: 'moved', listen: '127.0.0.1:9082', backends: ['127.0.0.1:9001'] },
      { name: 'new', listen: '127.0.0.1:8083', backends: ['127.0.0.1:9001'] },
    ],
    workers: 2,
    slowStart: '10s',
  });
  const plan = planReload(before, after);
  t.same(plan.addedListeners.map((l) => l.name), ['moved', 'new'], 'a listener on a new address is reopened');
  t.same(plan.removedListeners.map((l) => l.name), ['moved', 'old']);
  t.equal(plan.keptListeners.length, 1);
  const web = plan.keptListeners[0];
  t.ok(web.algorithmChanged);
  t.notOk(web.healthChanged);
  t.same(web.backends.added.map((b) => b.id).sort(), ['127.0.0.1:9005', 'c'], 'a new address under the same id is a new backend');
  t.same(web.backends.removed.map((b) => b.id).sort(), ['127.0.0.1:9002', 'c']);
  t.same(web.backends.changed.map((c) => [c.before.weight, c.after.weight]), [[1, 5]]);
  t.same(plan.needsRestart, ['workers']);
  t.same(plan.tunablesChanged, ['slowStartMs']);
  t.same(planReload(before, before), { addedListeners: [], removedListeners: [], keptListeners: planReload(before, before).keptListeners, adminChanged: false, accessLogChanged: false, needsRestart: [], tunablesChanged: [] });
  t.ok(planReload(before, before).keptListeners.every((k) => k.backends.added.length + k.backends.removed.length + k.backends.changed.length === 0), 'the same config changes nothing');
});

t.test('config files: YAML and JSON, with errors naming file, line and field', async (t) => {
  const yaml = file(
    'lb4.yaml',
    `listeners:
  - name: web
    listen: 127.0.0.1:0
    algorithm: leastconn
    backends:
      - address: 127.0.0.1:9001
        weight: 3
      - 127.0.0.1:9002
    health: { type: tcp, interval: 2s, timeout: 500ms, rise: 2, fall: 3 }
admin: { listen: 127.0.0.1:0 }
accessLog: { sample: 10 }
workers: 1
`,
  );
  const { config } = await loadConfigFile(yaml);
  t.equal(config.listeners[0].name, 'web');
  t.equal(config.listeners[0].algorithm, 'leastconn');
  t.same(config.listeners[0].backends.map((b) => [b.id, b.weight]), [['127.0.0.1:9001', 3], ['127.0.0.1:9002', 1]]);
  t.match(config.listeners[0].health, { type: 'tcp', rise: 2, fall: 3 });
  t.match(config.admin, { kind: 'tcp', host: '127.0.0.1', port: 0 });
  t.same(config.accessLog, { sample: 10 });

  const json = file('lb4.json', JSON.stringify({ listen: '127.0.0.1:0', backends: ['127.0.0.1:9001'] }));
  t.equal((await loadConfigFile(json)).config.listeners.length, 1);

  const cases: [string, string, RegExp][] = [
    ['missing.yaml', '', /cannot read .*missing\.yaml: no such file/],
    ['bad.yaml', 'listeners:\n  - name: [unclosed\n', /bad\.yaml is not valid YAML at line \d+, column \d+/],
    ['bad.json', '{ "listen": ', /bad\.json is not valid JSON/],
    ['list.yaml', '- a\n- b\n', /must hold a mapping/],
    ['field.yaml', 'listeners:\n  - listen: 127.0.0.1:0\n    backends: ["127.0.0.1:9001,weight=lots"]\n', /field\.yaml: listeners\[0\]\.backends\[0\]: weight must be a whole number/],
    ['nobackend.yaml', 'listeners:\n  - listen: 127.0.0.1:0\n', /listeners\[0\]\.backends: at least one backend/],
    ['unknown.yaml', 'listeners:\n  - listen: 127.0.0.1:0\n    backends: ["127.0.0.1:1"]\n    colour: red\n', /listeners\[0\]\.colour: unknown option/],
    ['both.yaml', 'listen: ":0"\nbackends: ["127.0.0.1:1"]\nlisteners: []\n', /listeners: use either listen and backends, or listeners/],
    ['dupe.yaml', 'listeners:\n  - { name: a, listen: "127.0.0.1:0", backends: ["127.0.0.1:1"] }\n  - { name: a, listen: "127.0.0.1:0", backends: ["127.0.0.1:1"] }\n', /listeners\[1\]\.name: listener name "a" is used twice/],
    ['admin.yaml', 'listen: ":0"\nbackends: ["127.0.0.1:1"]\nadmin: { listen: "0.0.0.0:9000" }\n', /admin\.token: a token is required/],
    ['health.yaml', 'listen: ":0"\nbackends: ["127.0.0.1:1"]\nhealth: { type: ping }\n', /health\.type/],
  ];
  for (const [name, text, message] of cases) {
    const path = name === 'missing.yaml' ? join(dir, name) : file(name, text);
    const err = await loadConfigFile(path).then(() => null, (e: unknown) => e);
    t.ok(err instanceof Lb4Error, `${name} is rejected`);
    t.match((err as Error).message, message, `${name}: ${(err as Error).message}`);
  }
});

t.test('slow start ramps weights from 1 to full', async (t) => {
  t.equal(slowStartWeight(10, 0, 1000), 1);
  t.equal(slowStartWeight(10, 250, 1000), 3);
  t.equal(slowStartWeight(10, 500, 1000), 5);
  t.equal(slowStartWeight(10, 999, 1000), 10);
  t.equal(slowStartWeight(10, 1000, 1000), 10);
  t.equal(slowStartWeight(10, 5000, 0), 10, 'no slow start');
  t.equal(slowStartWeight(0, 0, 1000), 0, 'weight 0 stays 0');
});

t.test('passive health counts consecutive connect failures across reports', async (t) => {
  const c = new ConsecutiveFailures();
  t.equal(c.record(1, { failures: 2, successes: 0, trailingFailures: 2 }), 2);
  t.equal(c.record(1, { failures: 1, successes: 0, trailingFailures: 1 }), 3, 'failures add up across reports');
  t.equal(c.record(1, { failures: 3, successes: 1, trailingFailures: 1 }), 1, 'a success restarts the count');
  t.equal(c.record(1, { failures: 0, successes: 5, trailingFailures: 0 }), 0);
  t.equal(c.record(2, { failures: 1, successes: 0, trailingFailures: 1 }), 1, 'per backend');
  c.reset(2);
  t.equal(c.record(2, { failures: 1, successes: 0, trailingFailures: 1 }), 1);
});

t.test('registry: the engine sees operator state combined with health', async (t) => {
  t.equal(engineState({ state: 'up', health: 'up' }), 'up');
  t.equal(engineState({ state: 'up', health: 'unchecked' }), 'up');
  t.equal(engineState({ state: 'up', health: 'down' }), 'down');
  t.equal(engineState({ state: 'draining', health: 'up' }), 'draining');
  t.equal(engineState({ state: 'maintenance', health: 'down' }), 'maintenance');
  const config = await validateOptions({ listen: '127.0.0.1:0', backends: ['127.0.0.1:9001', '127.0.0.1:9002,weight=0'] });
  const r = new BackendRegistry();
  const [a, b] = config.listeners[0].backends.map((x) => r.add(0, 'l', x, 'up'));
  t.not(a.key, b.key);
  r.update(a, { health: 'down' });
  t.same(r.nativeTable(0).map((e) => [e.key, e.state, e.weight]), [[a.key, 1, 1], [b.key, 0, 0]], 'down by health is state 1 for the engine');
  r.remove(a);
  t.equal(r.byKey(a.key)?.id, a.id, 'a removed backend is still known by key');
  t.same(r.nativeTable(0).map((e) => e.key), [b.key]);
  t.throws(() => r.find('nope'), { code: 'LB4_UNKNOWN_BACKEND' });
});
