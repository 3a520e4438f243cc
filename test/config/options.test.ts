// The option table (lib/config/options.ts) against everything that must agree with it: the
// README's `lb4 start` table, validation, reload, the engine's options and the addon's own limits.

import { readFileSync } from 'node:fs';
import t from 'tap';
import { describeDefault, optionTable, restartOnlySettings, liveSettings, topLevelOptions, tunableNames, tunables, type OptionName, type OptionSpec } from '../../lib/config/options.js';
import { validateOptions } from '../../lib/config/validate.js';
import { nativeOptionLimits } from '../../lib/engine/addon.js';
import { nativeOptions } from '../../lib/engine/open.js';
import { Lb4Error } from '../../lib/errors.js';
import { planReload } from '../../lib/reload/plan.js';
import type { BalancerConfig } from '../../lib/types.js';

const entries = Object.entries(optionTable) as Array<[OptionName, OptionSpec]>;
const flagName = (spec: OptionSpec) => spec.flag!.split(' ')[0];
const negated = new Set(entries.filter(([, spec]) => spec.negatable).map(([, spec]) => `--no-${flagName(spec).slice(2)}`));

/** The README's `lb4 start` table: each row's flags (from its first cell) with their defaults. */
function readmeFlags(): Map<string, string> {
  const lines = readFileSync(new URL('../../README.md', import.meta.url), 'utf8').split('\n');
  const start = lines.findIndex((l) => l.startsWith('`lb4 start` options:'));
  if (start < 0) throw new Error('README.md has no "`lb4 start` options:" table');
  const rows = [];
  for (let i = start + 1; i < lines.length; i++) {
    if (lines[i].startsWith('|')) rows.push(lines[i]);
    else if (rows.length > 0) break;
  }
  const out = new Map<string, string>();
  for (const row of rows.slice(2)) {
    // Cells are split on pipes that are not escaped (`roundrobin\|leastconn`).
    const cells = row.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
    // `--no-preempt` is the other form of a negatable flag, not a row of its own.
    const flags = [...cells[0].matchAll(/`(--[a-z-]+)/g)].map((m) => m[1]).filter((f) => !negated.has(f));
    const defaults = flags.length > 1 ? cells[2].split(/,\s*/) : [cells[2]];
    if (defaults.length !== flags.length) throw new Error(`README row "${row}" has ${flags.length} flags but ${defaults.length} defaults`);
    flags.forEach((flag, i) => out.set(flag, defaults[i]));
  }
  return out;
}

t.test("the README's lb4 start table lists exactly the table's flags, with the same defaults", async (t) => {
  const readme = readmeFlags();
  const table = new Map(entries.filter(([, spec]) => spec.flag !== null).map(([name, spec]) => [flagName(spec), describeDefault(name)]));
  t.same([...readme.keys()].sort(), [...table.keys()].sort(), 'the same flags');
  for (const [flag, shown] of table) {
    if (readme.has(flag)) t.equal(readme.get(flag), shown, `${flag}: default ${JSON.stringify(shown)}`);
  }
});

t.test('every table entry is consistent', async (t) => {
  for (const [name, spec] of entries) {
    if (spec.kind === 'choice') t.ok(spec.choices && spec.choices.length > 0, `${name}: a choice has choices`);
    if (spec.min !== undefined && spec.max !== undefined) t.ok(spec.min <= spec.max, `${name}: min <= max`);
    if (spec.config !== undefined) t.ok(tunableNames.includes(name as (typeof tunableNames)[number]), `${name}: only a tunable has a config key`);
    if (spec.flag === null && spec.field === null) t.ok(spec.default !== undefined, `${name}: a fixed option has a value`);
  }
  // A tunable's static default passes its own validation.
  const config = await validateOptions({ listen: '127.0.0.1:0', backends: ['127.0.0.1:9'] });
  for (const name of tunableNames) {
    const spec: OptionSpec = optionTable[name];
    if (spec.config !== undefined) t.type((config as unknown as Record<string, unknown>)[spec.config], spec.kind === 'choice' ? 'string' : 'number', `${name} is in the config`);
  }
});

t.test('the public tunables are the table view they always were', async (t) => {
  t.same(Object.keys(tunables), [
    'algorithm', 'hashKey', 'forward', 'snat', 'proxyProtocol', 'proxyHeaderTimeout', 'maxConnections', 'maxConnectionsPerSource', 'connectionRatePerSource', 'queueSize', 'queueTimeout', 'dnsInterval', 'dnsMinInterval', 'dnsTimeout', 'udpProxyHeader', 'sniTimeout', 'workers', 'connectTimeout', 'idleTimeout', 'retries', 'drainTimeout', 'pipeSize', 'slowStart', 'passiveFailures',
    'passiveRetry', 'udpIdleTimeout', 'udpResponses', 'udpMaxSessions', 'udpMaxDatagram',
  ]);
  t.same(tunables.hashKey.choices, ['address', 'address-port']);
  t.equal(tunables.hashKey.default, 'address');
  t.same(tunables.retries, { flag: '--retries <n>', description: 'connect attempts on other backends after a failed one', kind: 'integer', default: 2, min: 0, max: 7 });
  t.same(tunables.algorithm, { flag: '--algorithm <name>', description: 'how new flows pick a backend: roundrobin, leastconn, or maglev (consistent hashing of the client address)', kind: 'choice', default: 'roundrobin', choices: ['roundrobin', 'leastconn', 'maglev'] });
  t.type(tunables.workers.default, 'function', 'workers: computed on the host');
});

t.test('validation knows exactly the top-level options of the table', async (t) => {
  // natTable, acceptProxy, allow, deny and dnsServers (a name and lists of networks and servers, not tunables), sni and defaultPool sit among the tunables in table order.
  const [algorithm, hashKey, forward, snat, proxyProtocol, proxyHeaderTimeout, ...rest] = tunableNames;
  const policy = rest.splice(0, 5);
  t.same(policy, ['maxConnections', 'maxConnectionsPerSource', 'connectionRatePerSource', 'queueSize', 'queueTimeout']);
  const dns = rest.splice(0, 4);
  t.same(dns, ['dnsInterval', 'dnsMinInterval', 'dnsTimeout', 'udpProxyHeader']);
  t.same(topLevelOptions, [
    'listen', 'backends', 'listeners', 'health', 'admin', 'accessLog', algorithm, hashKey, forward, snat, 'natTable', proxyProtocol, 'acceptProxy', proxyHeaderTimeout, 'allow', 'deny',
    ...policy, 'dnsServers', ...dns, 'sni', 'defaultPool', ...rest, 'cluster',
  ]);
  const err = await validateOptions({ listen: '127.0.0.1:0', backends: ['127.0.0.1:9'], colour: 'red' } as never).catch((e: unknown) => e);
  t.ok(err instanceof Lb4Error);
  t.match((err as Lb4Error).message, `colour: unknown option (known: ${topLevelOptions.join(', ')})`);
  // A range from the table is enforced, in the units of its kind.
  const slow = await validateOptions({ listen: '127.0.0.1:0', backends: ['127.0.0.1:9'], slowStart: '2d' }).catch((e: unknown) => e);
  t.match(slow, { code: 'LB4_INVALID_DURATION', field: 'slowStart' });
  const retries = await validateOptions({ listen: '127.0.0.1:0', backends: ['127.0.0.1:9'], retries: 8 }).catch((e: unknown) => e);
  t.match(retries, { code: 'LB4_INVALID_OPTION', field: 'retries', message: 'retries: must be between 0 and 7, got 8' });
});

t.test("a reload reports a change as needing a restart exactly when the table says so", async (t) => {
  const base = await validateOptions({ listen: '127.0.0.1:0', backends: ['127.0.0.1:9'] });
  t.same(restartOnlySettings, ['hashKey', 'proxyHeaderTimeoutMs', 'udpProxyHeader', 'sniTimeoutMs', 'workers', 'connectTimeoutMs', 'idleTimeoutMs', 'retries', 'pipeSize', 'udpIdleTimeoutMs', 'udpResponses', 'udpMaxSessions', 'udpMaxDatagram']);
  t.same(liveSettings, ['forward', 'snat', 'dnsIntervalMs', 'dnsMinIntervalMs', 'dnsTimeoutMs', 'drainTimeoutMs', 'slowStartMs', 'passiveFailures', 'passiveRetryMs']);
  for (const key of [...restartOnlySettings, ...liveSettings]) {
    const changed = { ...base, [key]: (base as unknown as Record<string, number>)[key] + 1 } as BalancerConfig;
    const plan = planReload(base, changed);
    if (restartOnlySettings.includes(key)) t.same([plan.needsRestart, plan.tunablesChanged], [[key], []], `${key}: restart`);
    else t.same([plan.needsRestart, plan.tunablesChanged], [[], [key]], `${key}: live`);
  }
});

t.test("the engine's options come from the table", async (t) => {
  const config = await validateOptions({ listen: '127.0.0.1:0', backends: ['127.0.0.1:9'], workers: 3, connectTimeout: '2s', idleTimeout: '1m', retries: 1, pipeSize: 65536 });
  const native = nativeOptions(config, false);
  t.match(native, { workers: 3, connectTimeoutMs: 2000, idleTimeoutMs: 60_000, retries: 1, pipeSize: 65536, maxIdlePipes: optionTable.maxIdlePipes.default });
  t.equal(native.listeners[0].backlog, optionTable.backlog.default);
  t.equal(native.hashKey, 0, 'hashKey: address, by its number');
  const byPort = nativeOptions(await validateOptions({ listen: '127.0.0.1:0', backends: ['127.0.0.1:9'], hashKey: 'address-port' }), false);
  t.equal(byPort.hashKey, 1, 'hashKey: address-port, by its number');
});

const limits = nativeOptionLimits();
t.test("the table's ranges lie within the addon's limits", async (t) => {
  for (const [name, spec] of entries) {
    if (spec.native === undefined) continue;
    const limit = limits[spec.native];
    t.ok(limit, `${name}: the addon has a limit for ${spec.native}`);
    if (!limit) continue;
    // A choice crosses as its index in the choices.
    const values = spec.choices
      ? spec.choices.map((_, i) => i)
      : [spec.min, spec.max, typeof spec.default === 'number' ? spec.default : undefined].filter((v): v is number => v !== undefined);
    t.ok(values.length > 0, `${name}: has a range or a fixed value to check`);
    for (const v of values) t.ok(v >= limit.min && v <= limit.max, `${name}: ${v} within ${spec.native} [${limit.min}, ${limit.max}]`);
  }
});

t.test('an out-of-range number is echoed as it was typed, not rounded', async (t) => {
  const long = '12345678901234567890123';
  for (const [field, raw, shown] of [
    ['udpResponses', long, long],
    ['udpMaxSessions', ` ${long} `, long],
    ['udpIdleTimeout', `${long}s`, `${long}s`],
    ['udpMaxDatagram', 70000, '70000'],
  ] as const) {
    await t.rejects(async () => validateOptions({ listen: '127.0.0.1:0/udp', backends: ['127.0.0.1:9'], [field]: raw }), { code: 'LB4_INVALID_OPTION', field, message: new RegExp(`got ${shown}$`) }, `${field}: ${shown}`);
  }
});
