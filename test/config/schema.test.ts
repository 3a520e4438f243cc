// The config file's JSON Schema (schema.json, shipped as lb4/schema.json): the committed file is
// what lib/config/schema.ts generates from the option table (run `npm run schema` after changing
// an option), it is a valid schema to a strict validator (ajv), every YAML example in the README
// passes it, and the mistakes people make in a config file fail it.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import t from 'tap';
import { parse } from 'yaml';
import { configSchema, schemaText } from '../../lib/config/schema.js';
import { optionTable, topLevelOptions, tunables } from '../../lib/config/options.js';

const root = new URL('../../', import.meta.url);
const require = createRequire(import.meta.url);
// ajv is CommonJS; its default export is the class.
const Ajv = require('ajv') as new (options: object) => { compile(schema: object): ((data: unknown) => boolean) & { errors?: unknown[] | null } };

t.test('the committed schema.json is the generated one', async (t) => {
  const committed = readFileSync(new URL('schema.json', root), 'utf8');
  t.equal(committed, schemaText(configSchema()), 'schema.json is stale: run npm run schema');
});

t.test('the package publishes it', async (t) => {
  const manifest = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { files: string[]; exports: Record<string, unknown> };
  t.ok(manifest.files.includes('schema.json'), 'in files');
  t.equal(manifest.exports['./schema.json'], './schema.json', 'as lb4/schema.json');
});

const validate = new Ajv({ strict: true, allowUnionTypes: true, allErrors: true }).compile(configSchema());

t.test('every top-level option is in the schema, with its table default', async (t) => {
  const properties = configSchema().properties as Record<string, { default?: unknown; description?: string }>;
  t.same(Object.keys(properties).sort(), [...topLevelOptions].sort());
  for (const [name, spec] of Object.entries(tunables)) {
    if (typeof spec.default !== 'function') t.equal(properties[name].default, spec.default, `${name} default`);
    t.ok(properties[name].description?.startsWith(spec.description), `${name} has its help`);
  }
  t.equal(optionTable.heartbeatInterval.field, 'cluster.heartbeatInterval');
  const cluster = properties.cluster as { properties: Record<string, unknown> };
  t.ok('heartbeatInterval' in cluster.properties, 'nested options come from the table too');
});

t.test("the README's YAML examples pass", async (t) => {
  const readme = readFileSync(new URL('README.md', root), 'utf8');
  const examples = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]);
  t.ok(examples.length >= 3, `${examples.length} examples`);
  for (const text of examples) t.ok(validate(parse(text)), `${text.split('\n')[0]}... ${JSON.stringify(validate.errors)}`);
});

t.test('common mistakes fail it', async (t) => {
  const good = { listen: ':8080', backends: ['10.0.0.5:80'] };
  t.ok(validate(good), 'the shorthand passes');
  const bad: Array<[string, unknown]> = [
    ['a misspelt option', { ...good, conectTimeout: '5s' }],
    ['a duration without a unit', { ...good, connectTimeout: 5 }],
    ['a duration that is not one', { ...good, idleTimeout: 'soon' }],
    ['an unknown algorithm', { ...good, algorithm: 'random' }],
    ['workers out of range', { ...good, workers: 0 }],
    ['a negative weight', { listen: ':8080', backends: [{ address: '10.0.0.5:80', weight: -1 }] }],
    ['a misspelt backend key', { listen: ':8080', backends: [{ address: '10.0.0.5:80', wieght: 2 }] }],
    ['a listener without listen', { listeners: [{ name: 'web', backends: ['10.0.0.5:80'] }] }],
    ['a health check without a type', { ...good, health: { interval: '2s' } }],
    ['an unknown health check type', { ...good, health: { type: 'icmp' } }],
    ['a short admin token', { ...good, admin: { listen: 9090, token: 'short' } }],
    ['a cluster without a peer', { ...good, cluster: { priority: 200 } }],
    ['no backends', { listen: ':8080', backends: [] }],
  ];
  for (const [what, config] of bad) t.notOk(validate(config), what);
});
