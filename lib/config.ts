// One schema for the balancer's options, whether they come from CLI flags or from a program.
// Each tunable is declared once in `tunables`; the CLI builds its flags and help from the same
// table. `validateOptions` checks everything, names the field of the first problem, resolves
// host names, and returns a frozen config: nothing downstream validates again.

import { availableParallelism } from 'node:os';
import { formatHostPort, parseHostPort, resolveHost } from './address.js';
import { formatDuration, parseDuration } from './duration.js';
import { Lb4Error } from './errors.js';
import { validateHealthConfig, type HealthConfig, type HealthOptions } from './health/check-config.js';

/** How a new flow picks its backend. */
export type Algorithm = 'roundrobin' | 'leastconn';
/** A backend's state: only `up` backends take new flows; the others keep the flows they have. */
export type BackendState = 'up' | 'down' | 'draining' | 'maintenance';

export const algorithms: readonly Algorithm[] = ['roundrobin', 'leastconn'];
export const backendStates: readonly BackendState[] = ['up', 'down', 'draining', 'maintenance'];

/** A backend as a program describes it. A string is `host:port[,weight=N]`. */
export interface BackendOptions {
  /** `host:port`; a host name is resolved once, at start or when the backend is added. */
  address: string;
  /** Relative share of new flows; 0 takes none. Default 1. */
  weight?: number;
  /** Default `up`. */
  state?: BackendState;
  /** Stable name used by the API and stats. Default: the address as written. */
  id?: string;
}

/**
 * A listener as a program or a config file describes it. In the shorthand (`listen` and
 * `backends` at the top level) a string or number is the `listen` address alone.
 */
export interface ListenerOptions {
  /** `:port` (every interface, IPv4 and IPv6), `host:port` or `[ipv6]:port`. Port 0 picks a free port. */
  listen: string | number;
  /** Name used in stats, logs, metrics and the admin API. Default: the address as written. */
  name?: string;
  /** Only `tcp` today. */
  protocol?: 'tcp';
  /** Default: the top-level `algorithm`. */
  algorithm?: Algorithm;
  /** This listener's backends (full form only; the shorthand shares the top-level `backends`). */
  backends?: Array<string | BackendOptions>;
  /** Active health checks for this listener's backends; `false` turns the top-level ones off. */
  health?: HealthOptions | false;
}

/** The admin API: HTTP on loopback by default. */
export interface AdminOptions {
  /** `[host:]port` (host defaults to 127.0.0.1) or a unix socket path (starting with `/` or `.`). */
  listen: string | number;
  /** Bearer token; required when `listen` is not a loopback address or a unix socket. */
  token?: string;
}

interface TunableSpec {
  flag: string;
  description: string;
  kind: 'duration' | 'integer' | 'choice';
  default: number | string | (() => number);
  min?: number;
  max?: number;
  choices?: readonly string[];
}

/** The tunables, each declared once: library option name -> CLI flag, help, default and range. */
export const tunables = {
  algorithm: { flag: '--algorithm <name>', description: 'how new flows pick a backend: roundrobin or leastconn', kind: 'choice', default: 'roundrobin', choices: algorithms },
  workers: { flag: '--workers <n>', description: 'data-plane threads (default: one per CPU)', kind: 'integer', default: () => Math.min(availableParallelism(), 255), min: 1, max: 255 },
  connectTimeout: { flag: '--connect-timeout <duration>', description: 'time allowed for a backend connect before trying another backend', kind: 'duration', default: '5s', min: 1, max: 86_400_000 },
  idleTimeout: { flag: '--idle-timeout <duration>', description: 'close a flow with no bytes either way for this long', kind: 'duration', default: '5m', min: 1, max: 7 * 86_400_000 },
  retries: { flag: '--retries <n>', description: 'connect attempts on other backends after a failed one', kind: 'integer', default: 2, min: 0, max: 7 },
  drainTimeout: { flag: '--drain-timeout <duration>', description: 'on stop, how long open flows may finish before they are closed', kind: 'duration', default: '10s', min: 0, max: 86_400_000 },
  pipeSize: { flag: '--pipe-size <bytes>', description: 'splice pipe capacity in bytes (0: kernel default, 64 KiB)', kind: 'integer', default: 0, min: 0, max: 1 << 20 },
  slowStart: { flag: '--slow-start <duration>', description: "ramp a returning backend's weight up over this time (0: off)", kind: 'duration', default: '0ms', min: 0, max: 86_400_000 },
  passiveFailures: { flag: '--passive-failures <n>', description: 'consecutive connect failures that mark a checked backend down (0: off)', kind: 'integer', default: 3, min: 0, max: 1000 },
} as const satisfies Record<string, TunableSpec>;

export type TunableName = keyof typeof tunables;

/**
 * Options for {@link startBalancer}, and the shape of a config file. Either the shorthand
 * (`listen` and `backends`: every listener balances over the same backends) or the full form
 * (`listeners`, each with its own backends). Durations take milliseconds or strings like `2s`.
 */
export interface BalancerOptions {
  /** Shorthand: where to accept clients, one address or several. */
  listen?: string | number | ListenerOptions | Array<string | number | ListenerOptions>;
  /** Shorthand: the backends every `listen` listener balances over. At least one. */
  backends?: Array<string | BackendOptions>;
  /** Full form: listeners with their own backends, algorithm and health checks. */
  listeners?: ListenerOptions[];
  /** Default active health checks for listeners (none by default). */
  health?: HealthOptions;
  /** Ramp a returning backend's weight up over this time. */
  slowStart?: number | string;
  /** Consecutive connect failures that mark a checked backend down (0: off). */
  passiveFailures?: number | string;
  /** The admin API and /metrics (off by default). */
  admin?: AdminOptions;
  /** Per-flow access log: log one closed flow in `sample` (1: every flow). Off by default. */
  accessLog?: { sample?: number } | boolean;
  /** Default algorithm for listeners. */
  algorithm?: Algorithm | string;
  /** Whole numbers may also be given as strings of digits (as from a command line). */
  workers?: number | string;
  connectTimeout?: number | string;
  idleTimeout?: number | string;
  retries?: number | string;
  drainTimeout?: number | string;
  pipeSize?: number | string;
}

export interface ListenerConfig {
  readonly name: string;
  /** The listen address as written. */
  readonly listen: string;
  /** Numeric address to bind; '::' for every interface. */
  readonly ip: string;
  readonly port: number;
  /** Every interface: bind '::' and take IPv4 clients too. */
  readonly anyInterface: boolean;
  readonly algorithm: Algorithm;
  readonly backends: readonly BackendConfig[];
  readonly health: HealthConfig | null;
}

export type AdminConfig =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number; readonly token: string | null }
  | { readonly kind: 'unix'; readonly path: string; readonly token: string | null };

export interface BackendConfig {
  readonly id: string;
  /** The address as written. */
  readonly address: string;
  readonly ip: string;
  readonly port: number;
  readonly weight: number;
  readonly state: BackendState;
}

export interface BalancerConfig {
  readonly listeners: readonly ListenerConfig[];
  readonly workers: number;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly retries: number;
  readonly drainTimeoutMs: number;
  readonly pipeSize: number;
  readonly slowStartMs: number;
  readonly passiveFailures: number;
  readonly admin: AdminConfig | null;
  /** Log one closed flow in `sample`; null: no access log. */
  readonly accessLog: { readonly sample: number } | null;
}

function tunableDefault(name: TunableName): number | string {
  const d = tunables[name].default;
  return typeof d === 'function' ? d() : d;
}

/** The default of a tunable as shown in help text. */
export function describeDefault(name: TunableName): string {
  const spec: TunableSpec = tunables[name];
  if (typeof spec.default === 'function') return 'one per CPU';
  return String(spec.default);
}

function checkTunable(name: TunableName, raw: unknown, field: string = name): number | string {
  const spec: TunableSpec = tunables[name];
  const value = raw === undefined ? tunableDefault(name) : raw;
  if (spec.kind === 'choice') {
    if (typeof value !== 'string' || !spec.choices!.includes(value)) {
      throw new Lb4Error('LB4_INVALID_OPTION', `must be one of ${spec.choices!.join(', ')}, got ${JSON.stringify(value)}`, { field });
    }
    return value;
  }
  let n: number;
  if (spec.kind === 'duration') {
    n = parseDuration(value, field);
  } else {
    n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : (value as number);
    if (typeof n !== 'number' || !Number.isInteger(n)) throw new Lb4Error('LB4_INVALID_OPTION', `must be a whole number, got ${JSON.stringify(value)}`, { field });
  }
  if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
    const show = spec.kind === 'duration' ? formatDuration : String;
    throw new Lb4Error('LB4_INVALID_OPTION', `must be between ${show(spec.min ?? 0)} and ${show(spec.max ?? Infinity)}, got ${show(n)}`, { field });
  }
  return n;
}

/** Parses `host:port[,weight=N][,state=S][,id=NAME]`, the CLI's backend syntax. */
export function parseBackendSpec(text: string, field: string): BackendOptions {
  const [address, ...params] = text.split(',');
  const out: BackendOptions = { address: address.trim() };
  for (const param of params) {
    const eq = param.indexOf('=');
    const key = (eq < 0 ? param : param.slice(0, eq)).trim();
    const value = eq < 0 ? '' : param.slice(eq + 1).trim();
    if (key === 'weight') {
      if (!/^\d+$/.test(value)) throw new Lb4Error('LB4_INVALID_OPTION', `weight must be a whole number, got "${value}" in "${text}"`, { field });
      out.weight = Number(value);
    } else if (key === 'state') {
      out.state = value as BackendState;
    } else if (key === 'id') {
      out.id = value;
    } else {
      throw new Lb4Error('LB4_INVALID_OPTION', `unknown backend parameter "${key}" in "${text}" (known: weight, state, id)`, { field });
    }
  }
  return out;
}

/** Checks one backend and resolves its host. */
export async function validateBackend(raw: unknown, field: string): Promise<BackendConfig> {
  const opts: BackendOptions = typeof raw === 'string' ? parseBackendSpec(raw, field) : (raw as BackendOptions);
  if (typeof opts !== 'object' || opts === null) throw new Lb4Error('LB4_INVALID_OPTION', 'must be "host:port" or { address, weight }', { field });
  const { host, port } = parseHostPort(opts.address, `${field}.address`, { allowEmptyHost: false, allowPortZero: false });
  const weight = opts.weight ?? 1;
  if (!Number.isInteger(weight) || weight < 0 || weight > 1_000_000) {
    throw new Lb4Error('LB4_INVALID_OPTION', `must be a whole number from 0 to 1000000, got ${JSON.stringify(opts.weight)}`, { field: `${field}.weight` });
  }
  const state = opts.state ?? 'up';
  if (!backendStates.includes(state)) {
    throw new Lb4Error('LB4_INVALID_OPTION', `must be one of ${backendStates.join(', ')}, got ${JSON.stringify(state)}`, { field: `${field}.state` });
  }
  const address = formatHostPort(host, port);
  const id = opts.id ?? address;
  if (typeof id !== 'string' || id === '') throw new Lb4Error('LB4_INVALID_OPTION', 'must be a non-empty string', { field: `${field}.id` });
  const ip = await resolveHost(host, `${field}.address`);
  return Object.freeze({ id, address, ip, port, weight, state });
}

interface ListenerDefaults {
  algorithm: Algorithm;
  health: HealthConfig | null;
  backends?: readonly BackendConfig[];
}

async function validateListener(raw: unknown, field: string, defaults: ListenerDefaults): Promise<ListenerConfig> {
  const isObject = typeof raw === 'object' && raw !== null;
  const opts: ListenerOptions = isObject ? (raw as ListenerOptions) : { listen: raw as string };
  if (isObject) {
    const known = ['listen', 'name', 'protocol', 'algorithm', 'backends', 'health'];
    for (const key of Object.keys(opts)) {
      if (!known.includes(key)) throw new Lb4Error('LB4_INVALID_OPTION', `unknown option (known: ${known.join(', ')})`, { field: `${field}.${key}` });
    }
  }
  const listenField = isObject ? `${field}.listen` : field;
  const { host, port } = parseHostPort(opts.listen, listenField, { allowEmptyHost: true, allowPortZero: true });
  const listen = host === '' ? `:${port}` : formatHostPort(host, port);
  const name = opts.name ?? listen;
  if (typeof name !== 'string' || !/^[\w.:\[\]-]{1,100}$/.test(name)) {
    throw new Lb4Error('LB4_INVALID_OPTION', 'must be 1-100 letters, digits or ._:-[]', { field: `${field}.name` });
  }
  if (opts.protocol !== undefined && opts.protocol !== 'tcp') {
    throw new Lb4Error('LB4_INVALID_OPTION', `only tcp is supported, got ${JSON.stringify(opts.protocol)}`, { field: `${field}.protocol` });
  }
  const algorithm = opts.algorithm === undefined ? defaults.algorithm : (checkTunable('algorithm', opts.algorithm, `${field}.algorithm`) as Algorithm);
  const health = opts.health === undefined ? defaults.health : opts.health === false ? null : validateHealthConfig(opts.health, `${field}.health`);
  let backends = defaults.backends;
  if (!backends) {
    if (!Array.isArray(opts.backends) || opts.backends.length === 0) {
      throw new Lb4Error('LB4_NO_BACKEND', 'at least one backend is required', { field: `${field}.backends` });
    }
    backends = await validateBackends(opts.backends, `${field}.backends`);
  } else if (opts.backends !== undefined) {
    throw new Lb4Error('LB4_INVALID_OPTION', 'give backends per listener only in the full form (listeners: [...])', { field: `${field}.backends` });
  }
  const ip = host === '' ? '::' : await resolveHost(host, listenField);
  return Object.freeze({ name, listen, ip, port, anyInterface: host === '', algorithm, backends, health });
}

async function validateBackends(list: Array<string | BackendOptions>, field: string): Promise<readonly BackendConfig[]> {
  const backends = await Promise.all(list.map((b, i) => validateBackend(b, `${field}[${i}]`)));
  const seen = new Set<string>();
  for (const b of backends) {
    if (seen.has(b.id)) throw new Lb4Error('LB4_DUPLICATE_BACKEND', `backend "${b.id}" is listed twice`, { field });
    seen.add(b.id);
  }
  return Object.freeze(backends);
}

function validateAdmin(raw: unknown): AdminConfig | null {
  if (raw === undefined || raw === null) return null;
  const opts = (typeof raw === 'object' ? raw : { listen: raw }) as AdminOptions;
  const token = opts.token ?? null;
  if (token !== null && (typeof token !== 'string' || token.length < 16)) {
    throw new Lb4Error('LB4_INVALID_OPTION', 'must be a string of at least 16 characters', { field: 'admin.token' });
  }
  if (typeof opts.listen === 'string' && /^[/.]/.test(opts.listen)) return Object.freeze({ kind: 'unix', path: opts.listen, token });
  const text = typeof opts.listen === 'number' || /^\d+$/.test(String(opts.listen)) ? `127.0.0.1:${opts.listen}` : String(opts.listen);
  const { host, port } = parseHostPort(text.startsWith(':') ? `127.0.0.1${text}` : text, 'admin.listen', { allowEmptyHost: false, allowPortZero: true });
  const loopback = host === 'localhost' || host === '::1' || /^127\./.test(host);
  if (!loopback && token === null) {
    throw new Lb4Error('LB4_INVALID_OPTION', `a token is required when the admin API listens on ${formatHostPort(host, port)}, which is not loopback`, { field: 'admin.token' });
  }
  return Object.freeze({ kind: 'tcp', host, port, token });
}

function validateAccessLog(raw: unknown): { sample: number } | null {
  if (raw === undefined || raw === false) return null;
  if (raw === true) return Object.freeze({ sample: 1 });
  const sample = (raw as { sample?: unknown })?.sample ?? 1;
  if (typeof sample !== 'number' || !Number.isInteger(sample) || sample < 1 || sample > 1_000_000) {
    throw new Lb4Error('LB4_INVALID_OPTION', `must be a whole number from 1 to 1000000, got ${JSON.stringify(sample)}`, { field: 'accessLog.sample' });
  }
  return Object.freeze({ sample });
}

const topLevelOptions = ['listen', 'backends', 'listeners', 'health', 'admin', 'accessLog', ...Object.keys(tunables)];

/** Validates options and resolves host names. Throws {@link Lb4Error} naming the first bad field. */
export async function validateOptions(options: BalancerOptions): Promise<BalancerConfig> {
  if (typeof options !== 'object' || options === null) throw new Lb4Error('LB4_INVALID_OPTION', 'options must be an object');
  for (const key of Object.keys(options)) {
    if (!topLevelOptions.includes(key)) throw new Lb4Error('LB4_INVALID_OPTION', `unknown option (known: ${topLevelOptions.join(', ')})`, { field: key });
  }
  const algorithm = checkTunable('algorithm', options.algorithm) as Algorithm;
  const health = options.health === undefined ? null : validateHealthConfig(options.health, 'health');

  let listeners: ListenerConfig[];
  if (options.listeners !== undefined) {
    if (options.listen !== undefined || options.backends !== undefined) {
      throw new Lb4Error('LB4_INVALID_OPTION', 'use either listen and backends, or listeners, not both', { field: 'listeners' });
    }
    if (!Array.isArray(options.listeners) || options.listeners.length === 0) {
      throw new Lb4Error('LB4_INVALID_OPTION', 'at least one listener is required', { field: 'listeners' });
    }
    listeners = await Promise.all(options.listeners.map((l, i) => validateListener(l, `listeners[${i}]`, { algorithm, health })));
  } else {
    if (options.listen === undefined) throw new Lb4Error('LB4_INVALID_OPTION', 'at least one listen address is required', { field: 'listen' });
    const listenList = Array.isArray(options.listen) ? options.listen : [options.listen];
    if (listenList.length === 0) throw new Lb4Error('LB4_INVALID_OPTION', 'at least one listen address is required', { field: 'listen' });
    if (!Array.isArray(options.backends) || options.backends.length === 0) {
      throw new Lb4Error('LB4_NO_BACKEND', 'at least one backend is required (e.g. --backend 127.0.0.1:9001)', { field: 'backends' });
    }
    const backends = await validateBackends(options.backends, 'backends');
    listeners = await Promise.all(
      listenList.map((l, i) => validateListener(l, Array.isArray(options.listen) ? `listen[${i}]` : 'listen', { algorithm, health, backends })),
    );
  }
  const names = new Set<string>();
  for (const [i, l] of listeners.entries()) {
    if (names.has(l.name)) throw new Lb4Error('LB4_INVALID_OPTION', `listener name "${l.name}" is used twice`, { field: `listeners[${i}].name` });
    names.add(l.name);
  }

  return Object.freeze({
    listeners: Object.freeze(listeners),
    workers: checkTunable('workers', options.workers) as number,
    connectTimeoutMs: checkTunable('connectTimeout', options.connectTimeout) as number,
    idleTimeoutMs: checkTunable('idleTimeout', options.idleTimeout) as number,
    retries: checkTunable('retries', options.retries) as number,
    drainTimeoutMs: checkTunable('drainTimeout', options.drainTimeout) as number,
    pipeSize: checkTunable('pipeSize', options.pipeSize) as number,
    slowStartMs: checkTunable('slowStart', options.slowStart) as number,
    passiveFailures: checkTunable('passiveFailures', options.passiveFailures) as number,
    admin: validateAdmin(options.admin),
    accessLog: validateAccessLog(options.accessLog),
  });
}
