// One schema for the balancer's options, whether they come from CLI flags or from a program.
// Each tunable is declared once in `tunables`; the CLI builds its flags and help from the same
// table. `validateOptions` checks everything, names the field of the first problem, resolves
// host names, and returns a frozen config: nothing downstream validates again.

import { availableParallelism } from 'node:os';
import { formatHostPort, parseHostPort, resolveHost } from './address.js';
import { formatDuration, parseDuration } from './duration.js';
import { Lb4Error } from './errors.js';

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

/** A listener as a program describes it. A string or number is the `listen` address alone. */
export interface ListenerOptions {
  /** `:port` (every interface, IPv4 and IPv6), `host:port` or `[ipv6]:port`. Port 0 picks a free port. */
  listen: string | number;
  /** Name used in stats and logs. Default: the address as written. */
  name?: string;
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
} as const satisfies Record<string, TunableSpec>;

export type TunableName = keyof typeof tunables;

/** Options for {@link startBalancer}. Durations take milliseconds or strings like `2s`. */
export interface BalancerOptions {
  /** Where to accept clients: one address, or several. */
  listen: string | number | ListenerOptions | Array<string | number | ListenerOptions>;
  /** The backends every listener balances over. At least one. */
  backends: Array<string | BackendOptions>;
  algorithm?: Algorithm;
  workers?: number;
  connectTimeout?: number | string;
  idleTimeout?: number | string;
  retries?: number;
  drainTimeout?: number | string;
  pipeSize?: number;
}

export interface ListenerConfig {
  readonly name: string;
  /** Numeric address to bind; '::' for every interface. */
  readonly ip: string;
  readonly port: number;
  /** Every interface: bind '::' and take IPv4 clients too. */
  readonly anyInterface: boolean;
}

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
  readonly backends: readonly BackendConfig[];
  readonly algorithm: Algorithm;
  readonly workers: number;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly retries: number;
  readonly drainTimeoutMs: number;
  readonly pipeSize: number;
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

function checkTunable(name: TunableName, raw: unknown): number | string {
  const spec: TunableSpec = tunables[name];
  const value = raw === undefined ? tunableDefault(name) : raw;
  if (spec.kind === 'choice') {
    if (typeof value !== 'string' || !spec.choices!.includes(value)) {
      throw new Lb4Error('LB4_INVALID_OPTION', `must be one of ${spec.choices!.join(', ')}, got ${JSON.stringify(value)}`, { field: name });
    }
    return value;
  }
  let n: number;
  if (spec.kind === 'duration') {
    n = parseDuration(value, name);
  } else {
    n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : (value as number);
    if (typeof n !== 'number' || !Number.isInteger(n)) throw new Lb4Error('LB4_INVALID_OPTION', `must be a whole number, got ${JSON.stringify(value)}`, { field: name });
  }
  if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
    const show = spec.kind === 'duration' ? formatDuration : String;
    throw new Lb4Error('LB4_INVALID_OPTION', `must be between ${show(spec.min ?? 0)} and ${show(spec.max ?? Infinity)}, got ${show(n)}`, { field: name });
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

async function validateListener(raw: unknown, field: string): Promise<ListenerConfig> {
  const isObject = typeof raw === 'object' && raw !== null;
  const opts: ListenerOptions = isObject ? (raw as ListenerOptions) : { listen: raw as string };
  const listenField = isObject ? `${field}.listen` : field;
  const { host, port } = parseHostPort(opts.listen, listenField, { allowEmptyHost: true, allowPortZero: true });
  const name = opts.name ?? (host === '' ? `:${port}` : formatHostPort(host, port));
  if (host === '') return Object.freeze({ name, ip: '::', port, anyInterface: true });
  return Object.freeze({ name, ip: await resolveHost(host, listenField), port, anyInterface: false });
}

/** Validates options and resolves host names. Throws {@link Lb4Error} naming the first bad field. */
export async function validateOptions(options: BalancerOptions): Promise<BalancerConfig> {
  if (typeof options !== 'object' || options === null) throw new Lb4Error('LB4_INVALID_OPTION', 'options must be an object');
  const known = new Set(['listen', 'backends', ...Object.keys(tunables)]);
  for (const key of Object.keys(options)) {
    if (!known.has(key)) throw new Lb4Error('LB4_INVALID_OPTION', `unknown option (known: ${[...known].join(', ')})`, { field: key });
  }
  if (options.listen === undefined) throw new Lb4Error('LB4_INVALID_OPTION', 'at least one listen address is required', { field: 'listen' });
  const listenList = Array.isArray(options.listen) ? options.listen : [options.listen];
  if (listenList.length === 0) throw new Lb4Error('LB4_INVALID_OPTION', 'at least one listen address is required', { field: 'listen' });
  const listeners = await Promise.all(listenList.map((l, i) => validateListener(l, Array.isArray(options.listen) ? `listen[${i}]` : 'listen')));

  if (!Array.isArray(options.backends) || options.backends.length === 0) {
    throw new Lb4Error('LB4_NO_BACKEND', 'at least one backend is required (e.g. --backend 127.0.0.1:9001)', { field: 'backends' });
  }
  const backends = await Promise.all(options.backends.map((b, i) => validateBackend(b, `backends[${i}]`)));
  const seen = new Set<string>();
  for (const b of backends) {
    if (seen.has(b.id)) throw new Lb4Error('LB4_DUPLICATE_BACKEND', `backend "${b.id}" is listed twice`, { field: 'backends' });
    seen.add(b.id);
  }

  return Object.freeze({
    listeners: Object.freeze(listeners),
    backends: Object.freeze(backends),
    algorithm: checkTunable('algorithm', options.algorithm) as Algorithm,
    workers: checkTunable('workers', options.workers) as number,
    connectTimeoutMs: checkTunable('connectTimeout', options.connectTimeout) as number,
    idleTimeoutMs: checkTunable('idleTimeout', options.idleTimeout) as number,
    retries: checkTunable('retries', options.retries) as number,
    drainTimeoutMs: checkTunable('drainTimeout', options.drainTimeout) as number,
    pipeSize: checkTunable('pipeSize', options.pipeSize) as number,
  });
}
