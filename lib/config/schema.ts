// A JSON Schema (draft-07) of the config file, so editors complete and check `lb4.yaml`
// (yaml-language-server: `# yaml-language-server: $schema=.../schema.json`). It is derived from
// the option table (lib/config/options.ts: every field, its help, default and range) and from the
// key lists validation itself uses (listener, backend, admin, health check), so it cannot name an
// option lb4 does not take. The package ships it as `lb4/schema.json`, written by
// `npm run schema` (scripts/write-schema.mjs); test/config/schema.test.ts fails when the committed
// file and this function disagree.
//
// The schema checks shape and ranges; validation (lib/config/validate.ts) stays the judge of
// everything a schema cannot say (addresses that resolve, a token required off loopback, either
// `listen` and `backends` or `listeners`).

import { healthCheckKeys, healthCheckTypes, healthDefaults, healthLimits } from '../health/check-options.js';
import { formatDuration } from './duration.js';
import { defaultDnsMaxBackends, dnsMaxBackendsLimit, maxDnsEntryIdLength } from './dns-entry.js';
import { backendStates, protocols, proxyVersions } from './enums.js';
import { describeDefault, optionTable, type OptionName, type OptionSpec } from './options.js';
import { poolNamePattern } from './sni-routes.js';
import { accessLogKeys, adminKeys, backendKeys, listenerKeys, maxListeners } from './validate.js';

type Schema = Record<string, unknown>;

/** A duration in a file: a number with a unit (`500ms`, `2s`, `1.5m`, `1h`), or 0. */
const durationPattern = '^\\s*(0|\\d+(\\.\\d+)?\\s*(ms|s|m|h))\\s*$';
const duration: Schema = { type: 'string', pattern: durationPattern };
const wholeNumber = (min?: number, max?: number): Schema => ({
  anyOf: [{ type: 'integer', ...(min === undefined ? {} : { minimum: min }), ...(max === undefined ? {} : { maximum: max }) }, { type: 'string', pattern: '^\\s*\\d+\\s*$' }],
});
const addressOrPort: Schema = { type: ['string', 'integer'] };
const oneOrMany = (item: Schema): Schema => ({ anyOf: [item, { type: 'array', items: item }] });

/** A backend pool's name (SNI routing; lib/config/sni-routes.ts checks it the same way). */
const poolName: Schema = { type: 'string', pattern: poolNamePattern };
/** An SNI route: `name=pool`, or { names, pool } with one name or several. */
const sniRoute: Schema = {
  anyOf: [
    { description: 'name=pool', type: 'string', pattern: `^[^=]+=${poolNamePattern.slice(1)}` },
    closedObject(['names', 'pool'], { names: oneOrMany({ type: 'string' }), pool: poolName }, ['names', 'pool']),
  ],
};

/** `base` (its description and default) taking any of `choices` instead of its own type. */
function either(base: Schema, choices: Schema[]): Schema {
  const { type: _type, anyOf: _anyOf, ...rest } = base;
  return { ...rest, anyOf: choices };
}

function described(schema: Schema, name: OptionName): Schema {
  const spec: OptionSpec = optionTable[name];
  const shown = describeDefault(name);
  const help = shown === '' || spec.help.includes('(default:') ? spec.help : `${spec.help} (default: ${shown})`;
  const def = typeof spec.default === 'function' ? undefined : spec.default;
  return { description: help, ...schema, ...(def === undefined ? {} : { default: def }) };
}

/** The value schema of a table option whose kind says it all. */
function scalar(spec: OptionSpec): Schema {
  switch (spec.kind) {
    case 'integer':
      return wholeNumber(spec.min, spec.max);
    case 'duration':
      return duration;
    case 'choice':
      return { enum: [...(spec.choices ?? [])] };
    case 'boolean':
      return { type: 'boolean' };
    case 'network':
      return oneOrMany({ type: 'string' });
    case 'vip':
      return { type: 'array', items: { type: 'string' } };
    case 'address':
      return addressOrPort;
    default:
      return { type: 'string' };
  }
}

/** Table options that are parts of `parent` (`health.interval`), by their key in it. */
function partsOf(parent: string): Record<string, Schema> {
  const out: Record<string, Schema> = {};
  for (const [name, spec] of Object.entries(optionTable) as Array<[OptionName, OptionSpec]>) {
    if (spec.field?.startsWith(`${parent}.`)) out[spec.field.slice(parent.length + 1)] = described(scalar(spec), name);
  }
  return out;
}

function closedObject(keys: readonly string[], known: Record<string, Schema>, required: readonly string[] = []): Schema {
  const properties = Object.fromEntries(keys.map((k) => [k, known[k] ?? {}]));
  return { type: 'object', properties, additionalProperties: false, ...(required.length > 0 ? { required: [...required] } : {}) };
}

function healthSchema(): Schema {
  const text = { type: 'string' };
  const known: Record<string, Schema> = {
    type: { description: 'the kind of check', enum: [...healthCheckTypes] },
    ...partsOf('health'),
    jitter: { description: `random spread of each interval, a fraction of it (default: ${healthDefaults.jitter})`, type: 'number', minimum: 0, maximum: healthLimits.maxJitter },
    address: { description: "IP address to check instead of the backend's", type: 'string' },
    port: { description: "port to check instead of the backend's", ...wholeNumber(1, 65535) },
    method: { description: `HTTP method (default: ${healthDefaults.method})`, type: 'string' },
    path: { description: 'HTTP request target, starting with /', type: 'string', pattern: '^/' },
    host: { description: 'HTTP Host header', type: 'string' },
    expectStatus: { description: 'statuses that pass: 200, "200-299", "2xx" or [200, 299]', anyOf: [{ type: 'integer' }, { type: 'string' }, { type: 'array', items: { type: 'integer' }, minItems: 2, maxItems: 2 }] },
    expectBody: { description: 'a string the response body must contain', type: 'string' },
    send: text,
    sendHex: { type: 'string', pattern: '^([0-9a-fA-F]{2})*$' },
    expect: text,
    expectHex: { type: 'string', pattern: '^([0-9a-fA-F]{2})*$' },
    match: { description: 'how a UDP reply must hold expect (default: substring)', enum: ['prefix', 'substring'] },
  };
  // The interval's bounds come from the health check's own limits, not the table.
  known.interval = { ...known.interval, description: `${(known.interval as Schema).description} (from ${formatDuration(healthLimits.minInterval)})` };
  return { description: 'active health checks', ...closedObject(healthCheckKeys, known, ['type']) };
}

function backendSchema(): Schema {
  const object = closedObject(
    backendKeys,
    {
      address: { description: 'host:port; a host name is resolved once', type: 'string' },
      weight: { description: 'relative share of new flows; 0 takes none (default: 1)', type: 'integer', minimum: 0, maximum: 1_000_000 },
      state: { description: 'the state it starts in (default: up)', enum: [...backendStates] },
      id: { description: 'its name in the API and stats (default: the address)', type: 'string' },
      maxConnections: { description: 'most concurrent flows to it; 0 is no limit (default: 0)', type: 'integer', minimum: 0, maximum: 100_000_000 },
      pool: { description: 'the backend pool it belongs to, on a listener with sni routes', ...poolName },
      proxyProtocol: { description: "the PROXY protocol header it is sent, over its listener's setting", enum: [...proxyVersions] },
    },
    ['address'],
  );
  // DNS entries (lib/config/dns-entry.ts): every A/AAAA address of a name, or an SRV name's targets.
  const entryState = { description: 'the state each discovered backend starts in (default: up)', enum: [...backendStates] };
  const entryId = { description: 'the entry\'s name; each backend is ID/ADDRESS:PORT', type: 'string', maxLength: maxDnsEntryIdLength };
  const maxBackends = { description: `the most backends one answer gives (default ${defaultDnsMaxBackends}); the rest are cut off and counted`, type: 'integer', minimum: 1, maximum: dnsMaxBackendsLimit };
  const dns = closedObject(
    ['dns', 'port', 'weight', 'state', 'id', 'maxBackends'],
    { dns: { description: 'a name whose A and AAAA records are the backends', type: 'string' }, port: { type: 'integer', minimum: 1, maximum: 65535 }, weight: { type: 'integer', minimum: 0, maximum: 1_000_000 }, state: entryState, id: entryId, maxBackends },
    ['dns', 'port'],
  );
  const srv = closedObject(['srv', 'state', 'id', 'maxBackends'], { srv: { description: 'an SRV name whose records give targets, ports and weights', type: 'string' }, state: entryState, id: entryId, maxBackends }, ['srv']);
  const text = { description: 'host:port[,weight=N][,state=S][,id=NAME][,maxconn=N][,pool=NAME][,proxyProtocol=V], or dns:NAME:PORT, or srv:NAME', type: 'string' };
  return { anyOf: [text, object, dns, srv] };
}

/** The whole schema. */
export function configSchema(): Schema {
  const backend = { $ref: '#/definitions/backend' };
  const health = { $ref: '#/definitions/health' };
  const top: Record<string, Schema> = {};
  for (const [name, spec] of Object.entries(optionTable) as Array<[OptionName, OptionSpec]>) {
    if (spec.field === null || spec.field.includes('.')) continue;
    top[spec.field] = described(scalar(spec), name);
  }
  // One route or several (a single route as written on the command line, or a list of them).
  top.sni = either(top.sni, [sniRoute, { type: 'array', items: sniRoute }]);
  const { type: _type, ...backendsBase } = top.backends;
  const backends = { ...backendsBase, type: 'array', items: backend, minItems: 1 };
  const listenerKnown: Record<string, Schema> = {
    ...top,
    listen: { description: optionTable.listen.help, ...addressOrPort },
    name: { description: 'its name in stats, logs, metrics and the API (default: the address)', type: 'string' },
    protocol: { description: 'tcp (default) or udp, like a /udp suffix on listen', enum: [...protocols] },
    backends,
    health: { anyOf: [health, { const: false }] },
  };
  const listener = { $ref: '#/definitions/listener' };
  const cluster = partsOf('cluster');
  // A command line, or a program and its arguments.
  cluster.onStateChange = either(cluster.onStateChange, [{ type: 'string' }, { type: 'array', items: { type: 'string' }, minItems: 1 }]);
  const properties: Record<string, Schema> = {
    ...top,
    listen: either(top.listen, [addressOrPort, listener, { type: 'array', items: { anyOf: [addressOrPort, listener] } }]),
    backends,
    listeners: { ...top.listeners, type: 'array', items: listener, minItems: 1, maxItems: maxListeners },
    health,
    dnsServers: either(top.dnsServers, [addressOrPort, { type: 'array', items: addressOrPort }]),
    admin: either(top.admin, [addressOrPort, closedObject(adminKeys, { listen: addressOrPort, token: { type: 'string', minLength: 16 }, ...partsOf('admin') }, ['listen'])]),
    accessLog: either(top.accessLog, [{ type: 'boolean' }, closedObject(accessLogKeys, { sample: { type: 'integer', minimum: 1, maximum: 1_000_000 } })]),
    cluster: { description: 'makes this balancer one node of an HA pair', ...closedObject(Object.keys(cluster), cluster, ['peer']) },
  };
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'lb4 config file',
    description: 'The options of lb4 start --config (YAML or JSON): the shorthand (listen, backends) or the full form (listeners).',
    type: 'object',
    properties,
    additionalProperties: false,
    definitions: {
      listener: closedObject(listenerKeys, listenerKnown, ['listen']),
      backend: backendSchema(),
      health: healthSchema(),
    },
  };
}

/** The schema as schema.json holds it: two-space JSON and a final newline. */
export function schemaText(schema: Schema): string {
  return `${JSON.stringify(schema, null, 2)}\n`;
}
