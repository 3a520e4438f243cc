// One schema for the balancer's options, whether they come from CLI flags, a config file or a
// program. `validateOptions` checks everything, names the field of the first problem, resolves
// host names, and returns a frozen config: nothing downstream validates again. The known options,
// and the tunables' kinds, defaults and ranges, come from the option table (lib/config/options.ts).

import { isIP } from 'node:net';
import { Lb4Error } from '../errors.js';
import { validateHealthConfig, type HealthConfig } from '../health/check-config.js';
import type {
  AdminConfig,
  AdminOptions,
  Algorithm,
  BackendConfig,
  BackendOptions,
  BalancerConfig,
  BalancerOptions,
  ListenerConfig,
  ListenerOptions,
} from '../types.js';
import { formatHostPort, parseHostPort, resolveHost } from './address.js';
import { backendStates, protocols, type BackendState, type ForwardMode, type Protocol, type ProxyVersion, type SnatMode } from './enums.js';
import { onVip, validateCluster } from './cluster-options.js';
import type { ListenerPolicyConfig } from '../policy-types.js';
import { ownListenerAt } from './own-address.js';
import { checkPolicyReach, listenerPolicyKeys, validateListenerPolicy, validatePolicyDefaults } from './listener-policy.js';
import { checkDescriptorBudget } from './descriptor-budget.js';
import { isDnsEntry, validateDnsEntry, validateDnsServers, type DnsEntryConfig } from './dns-entry.js';
import { parseNetworks } from './network.js';
import { specParams, wholeNumberParam } from './spec-params.js';
import { checkPoolName, validateSni } from './sni-routes.js';
import { checkTableInteger, checkTunable, optionDefault, topLevelOptions, validateTunables } from './options.js';
import { showValue } from './show-value.js';

/**
 * Rejects a key `known` does not list: a misspelt field (`wieght: 3`, `tokne: ...`) would
 * otherwise be dropped in silence and its default run instead.
 */
function checkKnownKeys(opts: object, known: readonly string[], field: string): void {
  for (const key of Object.keys(opts)) {
    if (!known.includes(key)) throw new Lb4Error('LB4_INVALID_OPTION', `unknown option (known: ${known.join(', ')})`, { field: `${field}.${key}` });
  }
}

/** Parses `host:port[,weight=N][,state=S][,id=NAME][,maxconn=N][,pool=NAME][,proxyProtocol=V]`, the CLI's backend syntax. */
export function parseBackendSpec(text: string, field: string): BackendOptions {
  const [address, ...params] = text.split(',');
  const out: BackendOptions = { address: address.trim() };
  for (const [key, value] of specParams(params)) {
    if (key === 'weight') {
      out.weight = wholeNumberParam(key, value, text, field);
    } else if (key === 'state') {
      out.state = value as BackendState;
    } else if (key === 'id') {
      out.id = value;
    } else if (key === 'maxconn') {
      out.maxConnections = wholeNumberParam(key, value, text, field);
    } else if (key === 'pool') {
      out.pool = value;
    } else if (key === 'proxyProtocol') {
      out.proxyProtocol = value as ProxyVersion;
    } else {
      throw new Lb4Error('LB4_INVALID_OPTION', `unknown backend parameter "${key}" in "${text}" (known: weight, state, id, maxconn, pool, proxyProtocol)`, { field });
    }
  }
  return out;
}

/** The longest backend id. */
export const maxBackendIdLength = 128;
/** The keys each object of the options takes (also the config file's JSON Schema, lib/config/schema.ts). */
export const backendKeys = ['address', 'weight', 'state', 'id', 'maxConnections', 'pool', 'proxyProtocol'] as const;
export const listenerKeys = ['listen', 'name', 'protocol', 'algorithm', 'forward', 'snat', 'proxyProtocol', 'acceptProxy', ...listenerPolicyKeys, 'sni', 'defaultPool', 'backends', 'health'] as const;
export const adminKeys = ['listen', 'token', 'maxConnections'] as const;
export const accessLogKeys = ['sample'] as const;

/** The most listeners one balancer runs: the engine's own limit (native/binding/options.cc). */
export const maxListeners = 1024;

/** Checks one backend and resolves its host. */
export async function validateBackend(raw: unknown, field: string): Promise<BackendConfig> {
  // A DNS entry is part of a listener's config: its backends come and go with the answers.
  if (isDnsEntry(raw)) throw new Lb4Error('LB4_INVALID_OPTION', 'a dns: or srv: entry belongs in the config (backends of a listener), not added at run time', { field });
  const opts: BackendOptions = typeof raw === 'string' ? parseBackendSpec(raw, field) : (raw as BackendOptions);
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) throw new Lb4Error('LB4_INVALID_OPTION', 'must be "host:port" or { address, weight }', { field });
  checkKnownKeys(opts, backendKeys, field);
  const { host, port } = parseHostPort(opts.address, `${field}.address`, { allowEmptyHost: false, allowPortZero: false });
  // null is refused like any other wrong value, not taken as "absent": `weight:` left empty in
  // YAML is null, and running it with weight 1 hides the mistake.
  const weight = opts.weight === undefined ? 1 : opts.weight;
  if (!Number.isInteger(weight) || weight < 0 || weight > 1_000_000) {
    throw new Lb4Error('LB4_INVALID_OPTION', `must be a whole number from 0 to 1000000, got ${showValue(opts.weight)}`, { field: `${field}.weight` });
  }
  const state = opts.state === undefined ? 'up' : opts.state;
  if (!backendStates.includes(state)) {
    throw new Lb4Error('LB4_INVALID_OPTION', `must be one of ${backendStates.join(', ')}, got ${showValue(state)}`, { field: `${field}.state` });
  }
  const maxConnections = opts.maxConnections === undefined ? 0 : opts.maxConnections;
  if (!Number.isInteger(maxConnections) || maxConnections < 0 || maxConnections > 100_000_000) {
    throw new Lb4Error('LB4_INVALID_OPTION', `must be a whole number from 0 to 100000000, got ${showValue(opts.maxConnections)}`, { field: `${field}.maxConnections` });
  }
  const address = formatHostPort(host, port);
  const id = opts.id === undefined ? address : opts.id;
  if (typeof id !== 'string' || id === '') throw new Lb4Error('LB4_INVALID_OPTION', `must be a non-empty string, got ${showValue(id)}`, { field: `${field}.id` });
  // An id is a label in every /metrics scrape and log line: bounded, and with no control characters.
  if (id.length > maxBackendIdLength) throw new Lb4Error('LB4_INVALID_OPTION', `must be at most ${maxBackendIdLength} characters, got ${id.length}`, { field: `${field}.id` });
  if (/[\x00-\x1f\x7f]/.test(id)) throw new Lb4Error('LB4_INVALID_OPTION', `must not hold control characters, got ${showValue(id)}`, { field: `${field}.id` });
  const pool = opts.pool === undefined ? null : checkPoolName(opts.pool, `${field}.pool`);
  // Absent stays absent: the backend then follows its listener's setting, reloads included.
  const proxy = opts.proxyProtocol === undefined ? {} : { proxyProtocol: checkTunable('proxyProtocol', opts.proxyProtocol, `${field}.proxyProtocol`) as ProxyVersion };
  const ip = await resolveHost(host, `${field}.address`);
  return Object.freeze({ id, address, ip, port, weight, state, maxConnections, pool, ...proxy });
}

interface ListenerDefaults {
  algorithm: Algorithm;
  forward: ForwardMode;
  snat: SnatMode;
  proxyProtocol: ProxyVersion;
  acceptProxy: readonly string[];
  policy: ListenerPolicyConfig;
  sni?: unknown;
  defaultPool?: unknown;
  health: HealthConfig | null;
  backends?: readonly BackendConfig[];
  discover?: readonly DnsEntryConfig[];
}

async function validateListener(raw: unknown, field: string, defaults: ListenerDefaults): Promise<ListenerConfig> {
  const isObject = typeof raw === 'object' && raw !== null;
  const opts: ListenerOptions = isObject ? (raw as ListenerOptions) : { listen: raw as string };
  if (isObject) {
    checkKnownKeys(opts, listenerKeys, field);
  }
  const listenField = isObject ? `${field}.listen` : field;
  const { text: address, protocol: written } = splitProtocol(opts.listen, listenField);
  if (opts.protocol !== undefined && !protocols.includes(opts.protocol)) {
    throw new Lb4Error('LB4_INVALID_OPTION', `must be one of ${protocols.join(', ')}, got ${showValue(opts.protocol)}`, { field: `${field}.protocol` });
  }
  if (opts.protocol !== undefined && written !== null && opts.protocol !== written) {
    throw new Lb4Error('LB4_INVALID_OPTION', `says ${opts.protocol} but listen "${String(opts.listen)}" says ${written}`, { field: `${field}.protocol` });
  }
  const protocol: Protocol = opts.protocol ?? written ?? 'tcp';
  const { host, port } = parseHostPort(address, listenField, { allowEmptyHost: true, allowPortZero: true });
  // A UDP listener's address says so, so that a TCP and a UDP listener on one port get
  // different default names.
  const listen = (host === '' ? `:${port}` : formatHostPort(host, port)) + (protocol === 'udp' ? '/udp' : '');
  const name = opts.name ?? listen;
  if (typeof name !== 'string' || !/^[\w.:\[\]\/-]{1,100}$/.test(name)) {
    throw new Lb4Error('LB4_INVALID_OPTION', 'must be 1-100 letters, digits or ._:-[]/', { field: `${field}.name` });
  }
  const algorithm = opts.algorithm === undefined ? defaults.algorithm : (checkTunable('algorithm', opts.algorithm, `${field}.algorithm`) as Algorithm);
  const forward = opts.forward === undefined ? defaults.forward : (checkTunable('forward', opts.forward, `${field}.forward`) as ForwardMode);
  const snat = opts.snat === undefined ? defaults.snat : (checkTunable('snat', opts.snat, `${field}.snat`) as SnatMode);
  // The kernel's NAT picks a backend per connection with no count of open ones to weigh.
  if (forward === 'nat' && algorithm === 'leastconn') {
    const where = opts.algorithm === undefined ? 'algorithm' : `${field}.algorithm`;
    throw new Lb4Error('LB4_INVALID_OPTION', `leastconn needs forward: proxy; a nat listener (${listen}) takes roundrobin or maglev`, { field: where });
  }
  const proxyProtocol = opts.proxyProtocol === undefined ? defaults.proxyProtocol : (checkTunable('proxyProtocol', opts.proxyProtocol, `${field}.proxyProtocol`) as ProxyVersion);
  const acceptProxy = opts.acceptProxy === undefined ? defaults.acceptProxy : parseNetworks(opts.acceptProxy, `${field}.acceptProxy`);
  // A UDP session's backends may be sent a v2 header (v1 is a TCP line with no word for UDP);
  // lb4 takes headers only from TCP clients.
  if (protocol === 'udp' && (proxyProtocol === 'v1' || acceptProxy.length > 0)) {
    const key = proxyProtocol === 'v1' ? 'proxyProtocol' : 'acceptProxy';
    const where = opts[key] === undefined ? key : `${field}.${key}`;
    const why = key === 'proxyProtocol' ? 'v1 has no UDP form: a UDP listener sends v2' : 'lb4 takes PROXY protocol headers on TCP listeners only';
    throw new Lb4Error('LB4_INVALID_OPTION', `${why}, and ${listen} is UDP`, { field: where });
  }
  // The kernel forwards a nat listener's packets: there is no stream of lb4's to put a header on.
  if (forward === 'nat' && (proxyProtocol !== 'none' || acceptProxy.length > 0)) {
    const key = proxyProtocol !== 'none' ? 'proxyProtocol' : 'acceptProxy';
    const where = opts[key] === undefined ? key : `${field}.${key}`;
    throw new Lb4Error('LB4_INVALID_OPTION', `the PROXY protocol needs forward: proxy, and ${listen} is a nat listener`, { field: where });
  }
  const policy = validateListenerPolicy(isObject ? opts : {}, field, defaults.policy, protocol, forward);
  const health = opts.health === undefined ? defaults.health : opts.health === false ? null : validateHealthConfig(opts.health, `${field}.health`);
  // A UDP backend has no connection to check, and a TCP one no datagram to answer.
  if (health && (health.type === 'udp') !== (protocol === 'udp')) {
    const where = opts.health === undefined ? 'health.type' : `${field}.health.type`;
    throw new Lb4Error('LB4_INVALID_OPTION', protocol === 'udp' ? `a UDP listener (${listen}) takes udp checks, got ${health.type}` : `udp checks are for UDP listeners, and ${listen} is TCP`, { field: where });
  }
  let backends = defaults.backends;
  let discover = defaults.discover ?? [];
  if (!backends) {
    if (!Array.isArray(opts.backends) || opts.backends.length === 0) {
      throw new Lb4Error('LB4_NO_BACKEND', 'at least one backend is required', { field: `${field}.backends` });
    }
    ({ backends, discover } = await validateBackends(opts.backends, `${field}.backends`));
  } else if (opts.backends !== undefined) {
    throw new Lb4Error('LB4_INVALID_OPTION', 'give backends per listener only in the full form (listeners: [...])', { field: `${field}.backends` });
  }
  // A backend's own PROXY protocol setting needs lb4's proxy too, and v2 on UDP.
  const sending = backends.find((b) => b.proxyProtocol !== undefined && b.proxyProtocol !== 'none' && (forward === 'nat' || (protocol === 'udp' && b.proxyProtocol === 'v1')));
  if (sending) {
    const where = defaults.backends ? 'backends' : `${field}.backends`;
    const need = forward === 'nat' ? 'forward: proxy' : 'a TCP listener (UDP takes v2)';
    throw new Lb4Error('LB4_INVALID_OPTION', `backend "${sending.id}" has proxyProtocol ${sending.proxyProtocol}, which needs ${need}, and ${listen} is not one`, { field: where });
  }
  const sni = validateSni(
    opts.sni === undefined ? defaults.sni : opts.sni,
    opts.defaultPool === undefined ? defaults.defaultPool : opts.defaultPool,
    backends,
    {
      sni: opts.sni === undefined ? 'sni' : `${field}.sni`,
      defaultPool: opts.defaultPool === undefined ? 'defaultPool' : `${field}.defaultPool`,
      backends: defaults.backends ? 'backends' : `${field}.backends`,
    },
    { name, protocol, forward },
  );
  const ip = host === '' ? '::' : await resolveHost(host, listenField);
  // Access lists and the queue, against what the listener can see: its client families, its backends' caps.
  const families: ReadonlySet<4 | 6> = new Set(host === '' ? [4, 6] : [isIP(ip) === 4 ? 4 : 6]);
  checkPolicyReach(policy, isObject ? opts : {}, field, { listen, families, cappedBackend: backends.some((b) => b.maxConnections > 0) });
  return Object.freeze({ name, listen, ip, port, anyInterface: host === '', freeBind: false, protocol, algorithm, forward, snat, proxyProtocol, acceptProxy, policy, ...sni, backends, discover, health });
}

/** The nftables table name lb4 owns: a plain identifier, as nft writes them unquoted. */
function validateNatTable(raw: unknown): string {
  if (raw === undefined) return optionDefault('natTable') as string;
  if (typeof raw !== 'string' || !/^[A-Za-z][\w-]{0,31}$/.test(raw)) {
    throw new Lb4Error('LB4_INVALID_OPTION', `must be a letter then up to 31 letters, digits, _ or -, got ${JSON.stringify(raw)}`, { field: 'natTable' });
  }
  return raw;
}

/** Splits `host:port/udp` into the address and the protocol written after it (null: none). */
function splitProtocol(raw: unknown, field: string): { text: unknown; protocol: Protocol | null } {
  if (typeof raw !== 'string') return { text: raw, protocol: null };
  const m = /^(.*)\/([A-Za-z]+)$/.exec(raw);
  if (!m) return { text: raw, protocol: null };
  const protocol = m[2].toLowerCase();
  if (!protocols.includes(protocol as Protocol)) {
    throw new Lb4Error('LB4_INVALID_ADDRESS', `"${raw}": unknown protocol "/${m[2]}" (known: ${protocols.map((p) => `/${p}`).join(', ')})`, { field });
  }
  return { text: m[1], protocol: protocol as Protocol };
}

/** A backend list: backends by address, and DNS entries (resolved later, by lib/discovery/). */
async function validateBackends(list: unknown[], field: string): Promise<{ backends: readonly BackendConfig[]; discover: readonly DnsEntryConfig[] }> {
  const discover = list.flatMap((b, i) => (isDnsEntry(b) ? [validateDnsEntry(b, `${field}[${i}]`)] : []));
  const backends = await Promise.all(list.flatMap((b, i) => (isDnsEntry(b) ? [] : [validateBackend(b, `${field}[${i}]`)])));
  const seen = new Set<string>();
  for (const b of [...backends, ...discover]) {
    if (seen.has(b.id)) throw new Lb4Error('LB4_DUPLICATE_BACKEND', `backend "${b.id}" is listed twice`, { field });
    seen.add(b.id);
  }
  return { backends: Object.freeze(backends), discover: Object.freeze(discover) };
}

/** Whether a numeric address is a loopback one (127.0.0.0/8, ::1, or 127/8 mapped into IPv6). */
function isLoopback(ip: string): boolean {
  const v4 = ip.toLowerCase().replace(/^::ffff:/, '');
  return /^127\.\d+\.\d+\.\d+$/.test(v4) || ip === '::1' || ip === '0:0:0:0:0:0:0:1';
}

async function validateAdmin(raw: unknown): Promise<AdminConfig | null> {
  if (raw === undefined || raw === null) return null;
  const opts = (typeof raw === 'object' ? raw : { listen: raw }) as AdminOptions;
  checkKnownKeys(opts, adminKeys, 'admin');
  const token = opts.token ?? null;
  if (token !== null && (typeof token !== 'string' || token.length < 16)) {
    throw new Lb4Error('LB4_INVALID_OPTION', 'must be a string of at least 16 characters', { field: 'admin.token' });
  }
  const maxConnections = checkTableInteger('adminMaxConnections', opts.maxConnections, 'admin.maxConnections');
  if (typeof opts.listen === 'string' && /^[/.]/.test(opts.listen)) return Object.freeze({ kind: 'unix', path: opts.listen, token, maxConnections });
  const text = typeof opts.listen === 'number' || /^\d+$/.test(String(opts.listen)) ? `127.0.0.1:${opts.listen}` : String(opts.listen);
  const { host, port } = parseHostPort(text.startsWith(':') ? `127.0.0.1${text}` : text, 'admin.listen', { allowEmptyHost: false, allowPortZero: true });
  // Whether a token is needed is decided by where the API will listen, not by how the address
  // is written: "127.example.com" may resolve anywhere. The API then listens on that very address.
  const ip = await resolveHost(host, 'admin.listen');
  if (!isLoopback(ip) && token === null) {
    const shown = ip === host ? formatHostPort(host, port) : `${formatHostPort(host, port)} (${ip})`;
    throw new Lb4Error('LB4_INVALID_OPTION', `a token is required when the admin API listens on ${shown}, which is not loopback`, { field: 'admin.token' });
  }
  return Object.freeze({ kind: 'tcp', host, ip, port, token, maxConnections });
}

function validateAccessLog(raw: unknown): { sample: number } | null {
  if (raw === undefined || raw === null || raw === false) return null;
  if (raw === true) return Object.freeze({ sample: 1 });
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new Lb4Error('LB4_INVALID_OPTION', `must be true, false or { sample }, got ${showValue(raw)}`, { field: 'accessLog' });
  }
  checkKnownKeys(raw, accessLogKeys, 'accessLog');
  const sample = (raw as { sample?: unknown }).sample ?? 1;
  if (typeof sample !== 'number' || !Number.isInteger(sample) || sample < 1 || sample > 1_000_000) {
    throw new Lb4Error('LB4_INVALID_OPTION', `must be a whole number from 1 to 1000000, got ${showValue(sample)}`, { field: 'accessLog.sample' });
  }
  return Object.freeze({ sample });
}

/** A backend that is one of lb4's own listeners loops every flow back into lb4 (lib/config/own-address.ts). */
function checkNoBackendIsOwnListener(listeners: readonly ListenerConfig[], fullForm: boolean): void {
  for (const [i, l] of listeners.entries()) {
    for (const b of l.backends) {
      const own = ownListenerAt(b.ip, b.port, l.protocol, listeners);
      if (!own) continue;
      throw new Lb4Error('LB4_INVALID_OPTION', `backend "${b.id}" is lb4's own listener ${own.listen}: its flows would loop back into lb4`, { field: fullForm ? `listeners[${i}].backends` : 'backends' });
    }
  }
}

/** Validates options and resolves host names. Throws {@link Lb4Error} naming the first bad field. */
export async function validateOptions(options: BalancerOptions): Promise<BalancerConfig> {
  if (typeof options !== 'object' || options === null) throw new Lb4Error('LB4_INVALID_OPTION', 'options must be an object');
  for (const key of Object.keys(options)) {
    if (!topLevelOptions.includes(key)) throw new Lb4Error('LB4_INVALID_OPTION', `unknown option (known: ${topLevelOptions.join(', ')})`, { field: key });
  }
  const algorithm = checkTunable('algorithm', options.algorithm) as Algorithm;
  const forward = checkTunable('forward', options.forward) as ForwardMode;
  const snat = checkTunable('snat', options.snat) as SnatMode;
  const proxyProtocol = checkTunable('proxyProtocol', options.proxyProtocol) as ProxyVersion;
  const acceptProxy = parseNetworks(options.acceptProxy, 'acceptProxy');
  const policy = validatePolicyDefaults(options);
  const health = options.health === undefined ? null : validateHealthConfig(options.health, 'health');

  let listeners: ListenerConfig[];
  if (options.listeners !== undefined) {
    if (options.listen !== undefined || options.backends !== undefined) {
      throw new Lb4Error('LB4_INVALID_OPTION', 'use either listen and backends, or listeners, not both', { field: 'listeners' });
    }
    if (!Array.isArray(options.listeners) || options.listeners.length === 0) {
      throw new Lb4Error('LB4_INVALID_OPTION', 'at least one listener is required', { field: 'listeners' });
    }
    if (options.listeners.length > maxListeners) {
      throw new Lb4Error('LB4_INVALID_OPTION', `at most ${maxListeners} listeners, got ${options.listeners.length}`, { field: 'listeners' });
    }
    listeners = await Promise.all(options.listeners.map((l, i) => validateListener(l, `listeners[${i}]`, { algorithm, forward, snat, proxyProtocol, acceptProxy, policy, sni: options.sni, defaultPool: options.defaultPool, health })));
  } else {
    if (options.listen === undefined) throw new Lb4Error('LB4_INVALID_OPTION', 'at least one listen address is required', { field: 'listen' });
    const listenList = Array.isArray(options.listen) ? options.listen : [options.listen];
    if (listenList.length === 0) throw new Lb4Error('LB4_INVALID_OPTION', 'at least one listen address is required', { field: 'listen' });
    if (listenList.length > maxListeners) throw new Lb4Error('LB4_INVALID_OPTION', `at most ${maxListeners} listen addresses, got ${listenList.length}`, { field: 'listen' });
    if (!Array.isArray(options.backends) || options.backends.length === 0) {
      throw new Lb4Error('LB4_NO_BACKEND', 'at least one backend is required (e.g. --backend 127.0.0.1:9001)', { field: 'backends' });
    }
    const { backends, discover } = await validateBackends(options.backends, 'backends');
    listeners = await Promise.all(
      listenList.map((l, i) => validateListener(l, Array.isArray(options.listen) ? `listen[${i}]` : 'listen', { algorithm, forward, snat, proxyProtocol, acceptProxy, policy, sni: options.sni, defaultPool: options.defaultPool, health, backends, discover })),
    );
  }
  const names = new Set<string>();
  for (const [i, l] of listeners.entries()) {
    if (names.has(l.name)) throw new Lb4Error('LB4_INVALID_OPTION', `listener name "${l.name}" is used twice`, { field: `listeners[${i}].name` });
    names.add(l.name);
  }
  checkNoBackendIsOwnListener(listeners, options.listeners !== undefined);

  const cluster = await validateCluster(options.cluster);
  // A listener on a virtual IP must bind on the node that does not hold the address too.
  if (cluster) listeners = listeners.map((l) => (onVip(l, cluster) ? Object.freeze({ ...l, freeBind: true }) : l));

  const tunables = validateTunables(options as Readonly<Record<string, unknown>>);
  // "every" changes what a UDP listener sending v2 headers does; with none, it would do nothing.
  if (tunables.udpProxyHeader === 'every' && !listeners.some((l) => l.protocol === 'udp' && (l.proxyProtocol === 'v2' || l.backends.some((b) => b.proxyProtocol === 'v2')))) {
    throw new Lb4Error('LB4_INVALID_OPTION', 'every: no UDP listener sends PROXY protocol v2 (give it proxyProtocol: v2)', { field: 'udpProxyHeader' });
  }
  const admin = await validateAdmin(options.admin);
  const accessLog = validateAccessLog(options.accessLog);
  const natTable = validateNatTable(options.natTable);
  // Checked last, once every field is known good: the estimate needs the listeners and workers.
  checkDescriptorBudget(
    { listeners: listeners.length, workers: tunables.workers, checkedBackends: listeners.reduce((n, l) => n + (l.health ? l.backends.length : 0), 0), admin: admin !== null, cluster: cluster !== null },
    options.listeners !== undefined ? 'listeners' : 'listen',
  );
  return Object.freeze({
    listeners: Object.freeze(listeners),
    ...tunables,
    admin,
    accessLog,
    natTable,
    dnsServers: validateDnsServers(options.dnsServers),
    cluster,
  });
}
