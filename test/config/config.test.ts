// Config files: YAML and JSON read into a validated config, and every error naming the file, the
// line and the field. No sockets needed.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadConfigFile } from '../../lib/config/config-file.js';
import { Lb4Error } from '../../lib/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'lb4-config-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

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
    [
      'aliases.yaml',
      `a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n${[1, 2, 3, 4, 5, 6].map((i) => `a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]\n`).join('')}listeners: *a6\n`,
      /aliases\.yaml is not usable YAML: Excessive alias count/,
    ],
    ['field.yaml', 'listeners:\n  - listen: 127.0.0.1:0\n    backends: ["127.0.0.1:9001,weight=lots"]\n', /field\.yaml: listeners\[0\]\.backends\[0\]: weight must be a whole number/],
    ['nobackend.yaml', 'listeners:\n  - listen: 127.0.0.1:0\n', /listeners\[0\]\.backends: at least one backend/],
    ['unknown.yaml', 'listeners:\n  - listen: 127.0.0.1:0\n    backends: ["127.0.0.1:1"]\n    colour: red\n', /listeners\[0\]\.colour: unknown option/],
    ['both.yaml', 'listen: ":0"\nbackends: ["127.0.0.1:1"]\nlisteners: []\n', /listeners: use either listen and backends, or listeners/],
    ['dupe.yaml', 'listeners:\n  - { name: a, listen: "127.0.0.1:0", backends: ["127.0.0.1:1"] }\n  - { name: a, listen: "127.0.0.1:0", backends: ["127.0.0.1:1"] }\n', /listeners\[1\]\.name: listener name "a" is used twice/],
    ['admin.yaml', 'listen: ":0"\nbackends: ["127.0.0.1:1"]\nadmin: { listen: "0.0.0.0:9000" }\n', /admin\.token: a token is required/],
    ['health.yaml', 'listen: ":0"\nbackends: ["127.0.0.1:1"]\nhealth: { type: ping }\n', /health\.type/],
    // A misspelt field must not be dropped in silence (and its default run instead).
    ['backendtypo.yaml', 'listeners:\n  - listen: 127.0.0.1:0\n    backends: [{ address: "127.0.0.1:1", wieght: 3 }]\n', /listeners\[0\]\.backends\[0\]\.wieght: unknown option \(known: address, weight, state, id, maxConnections, pool, proxyProtocol\)/],
    ['admintypo.yaml', 'listen: ":0"\nbackends: ["127.0.0.1:1"]\nadmin: { listen: "127.0.0.1:0", tokne: "0123456789abcdef" }\n', /admin\.tokne: unknown option/],
    ['logtypo.yaml', 'listen: ":0"\nbackends: ["127.0.0.1:1"]\naccessLog: { sampel: 100 }\n', /accessLog\.sampel: unknown option/],
    ['lognumber.yaml', 'listen: ":0"\nbackends: ["127.0.0.1:1"]\naccessLog: 100\n', /accessLog: must be true, false or \{ sample \}, got 100/],
  ];
  for (const [name, text, message] of cases) {
    const path = name === 'missing.yaml' ? join(dir, name) : file(name, text);
    const err = await loadConfigFile(path).then(() => null, (e: unknown) => e);
    t.ok(err instanceof Lb4Error, `${name} is rejected`);
    t.match((err as Error).message, message, `${name}: ${(err as Error).message}`);
  }
});
