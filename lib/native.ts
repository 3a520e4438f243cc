// The only file that loads the native addon, and the one place its whole surface is declared.
// Everything else in lib/ talks to the data plane through these types, so it can be tested with a
// fake engine. Errors cross the boundary as numbers and become Node-style errors here.

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getSystemErrorName } from 'node:util';
import { osErrorMessage } from './os-errors.js';

// The data plane's enumerations and option ranges (native/core/enums.h and engine_options.h are
// the source). A value crosses the boundary as its index in its list; the addon exports every
// list and loading fails if these declarations and the addon ever disagree.

/** Balancing algorithms, in the engine's order. */
export const algorithmNames = ['roundrobin', 'leastconn'] as const;
/** Backend states, in the engine's order. */
export const backendStateNames = ['up', 'down', 'draining', 'maintenance'] as const;
/** Why a flow ended, in the engine's order. */
export const closeReasonNames = ['done', 'client-reset', 'backend-reset', 'idle-timeout', 'no-backend', 'drained', 'error'] as const;
/** Listener protocols, in the engine's order. */
export const protocolNames = ['tcp'] as const;
/** The engine options whose ranges the addon exports as `optionLimits`. */
export const optionLimitNames = ['workers', 'connectTimeoutMs', 'idleTimeoutMs', 'retries', 'pipeSize', 'maxIdlePipes', 'backlog'] as const;

export type NativeOptionName = (typeof optionLimitNames)[number];
export interface NativeOptionLimit {
  readonly min: number;
  readonly max: number;
}

/** Each name of `names` mapped to its number (its index). */
function numbering<const T extends readonly string[]>(names: T): { readonly [K in T[number]]: number } {
  return Object.freeze(Object.fromEntries(names.map((n, i) => [n, i]))) as { readonly [K in T[number]]: number };
}

/** Balancing algorithms as the engine numbers them. */
export const NativeAlgorithm = numbering(algorithmNames);
/** Backend states as the engine numbers them. */
export const NativeBackendState = numbering(backendStateNames);
/** Listener protocols as the engine numbers them. */
export const NativeProtocol = numbering(protocolNames);

export interface NativeListenerOptions {
  name: string;
  /** Index into `protocolNames`. */
  protocol: number;
  ip: string;
  port: number;
  dualStack: boolean;
  backlog: number;
  algorithm: number;
}

export interface NativeEngineOptions {
  workers: number;
  listeners: NativeListenerOptions[];
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  retries: number;
  /** Pipe capacity in bytes for splice; 0 keeps the kernel default (64 KiB). */
  pipeSize: number;
  maxIdlePipes: number;
}

export interface NativeBackend {
  /** The process-local counter slot: indexes readStats and events. */
  key: number;
  /**
   * The backend's stable identity, the same on every node for the same config:
   * `<listener name>/<backend id>` (the configured id, or the address as written).
   */
  id: string;
  ip: string;
  port: number;
  weight: number;
  state: number;
}

export interface NativeBoundAddress {
  ip: string;
  port: number;
  family: 'IPv4' | 'IPv6';
}

export interface NativeStartFailure {
  errno: number;
  syscall: string;
  listener: number;
}

export interface NativeFlow {
  id: number;
  listener: number;
  worker: number;
  state: 'connecting' | 'established';
  client: string;
  backendKey?: number;
  backend?: string;
  startedAt: number;
  bytesToBackend: number;
  bytesToClient: number;
}

/** Why a flow ended, as the engine reports it in flow-closed events. */
export type NativeCloseReason = (typeof closeReasonNames)[number];

export type NativeEvent =
  | {
      type: 'backend-connects';
      worker: number;
      backendKey: number;
      failures: number;
      timeouts: number;
      successes: number;
      /** Failures after the last success in this report: consecutive failures so far. */
      trailingFailures: number;
    }
  | { type: 'listener-error'; worker: number; listener: number; errno: number }
  | {
      type: 'flow-closed';
      worker: number;
      listener: number;
      id: number;
      client: string;
      backendKey?: number;
      reason: NativeCloseReason;
      bytesToBackend: number;
      bytesToClient: number;
      startedAt: number;
      durationMs: number;
    };

export interface NativeConnectionFilter {
  listener?: number;
  backendKey?: number;
  limit?: number;
}

/** The engine object the addon exports. Every method runs on the JS thread. */
export interface NativeEngine {
  /** Opens the listeners on every worker and starts the workers. */
  start(tables: NativeBackend[][]): NativeBoundAddress[] | NativeStartFailure;
  /**
   * Replaces one listener slot's backend table, its algorithm changed first when given (an index
   * into `algorithmNames`); the other slots keep theirs. Resolves once every worker runs it.
   */
  applyBackends(slot: number, backends: NativeBackend[], algorithm?: number): Promise<void>;
  /** Sums counters into `into` (listeners, then backend keys); returns the length needed. */
  readStats(into: Float64Array): number;
  /** Backend keys with counters are 0 .. backendKeyLimit() - 1. */
  backendKeyLimit(): number;
  connections(filter?: NativeConnectionFilter): Promise<NativeFlow[]>;
  onEvents(callback: (events: NativeEvent[]) => void): void;
  droppedEvents(): number;
  /** Stops accepting, drains up to `drainMs`, joins the workers. Idempotent. */
  close(drainMs: number): Promise<void>;
  /**
   * Opens one more listener while running, in a new slot (slots are never reused), with its
   * first backend table. `ready` resolves once every worker accepts on it.
   */
  addListener(listener: NativeListenerOptions, table: NativeBackend[]): (NativeBoundAddress & { slot: number; ready: Promise<void> }) | NativeStartFailure;
  /** Stops accepting on a listener at once; its flows may run `drainMs` more, then are closed. */
  removeListener(slot: number, drainMs: number): Promise<void>;
  /** Closes matching flows now, with a reset; resolves with how many. */
  closeFlows(filter: NativeConnectionFilter): Promise<number>;
  /** Reports one closed flow in `every` as a flow-closed event; 0 turns the flow log off. */
  setFlowLog(every: number): void;
}

/**
 * The data plane's counter names (native/core/counters.h is the source; the addon exports the
 * list and loading fails if this declaration and the addon ever disagree).
 */
export const counterNames = [
  'flows_active', 'flows_total', 'bytes_to_backend', 'bytes_to_client', 'spliced_bytes', 'copied_bytes',
  'connect_failures', 'connect_timeouts', 'retries', 'no_backend', 'resets', 'idle_timeouts', 'drain_closed',
  'accept_shed', 'accept_errors', 'connect_no_descriptors',
] as const;
export type CounterName = (typeof counterNames)[number];

export interface CounterInfo {
  name: CounterName;
  kind: 'gauge' | 'counter';
  help: string;
}

interface Addon {
  Engine: new (options: NativeEngineOptions) => NativeEngine;
  counters: CounterInfo[];
  algorithms: string[];
  backendStates: string[];
  closeReasons: string[];
  protocols: string[];
  optionLimits: Record<string, NativeOptionLimit>;
}

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === 'lb4') return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('lb4: cannot find the lb4 package root');
    dir = parent;
  }
}

function loadAddon(): Addon {
  const root = packageRoot();
  const candidates = ['build/Release/lb4.node', 'build/Debug/lb4.node'].map((p) => join(root, p));
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(`lb4: the native addon is not built (looked for ${candidates.join(', ')}); run "npm run build"`);
  }
  return createRequire(import.meta.url)(found) as Addon;
}

const addon = loadAddon();

/** Creates a data-plane engine. Options must already be validated (lib/config.ts). */
export function createEngine(options: NativeEngineOptions): NativeEngine {
  return new addon.Engine(options);
}

/** Fails loading when a list the addon exports differs from its declaration here. */
function checkList(what: string, got: readonly string[] | undefined, declared: readonly string[]): void {
  if (!Array.isArray(got) || got.length !== declared.length || got.some((name, i) => name !== declared[i])) {
    throw new Error(`lb4: the native addon's ${what} (${(got ?? []).join(', ')}) do not match lib/native.ts; rebuild the addon`);
  }
}

checkList('counters', addon.counters?.map((c) => c.name), counterNames);
checkList('algorithms', addon.algorithms, algorithmNames);
checkList('backend states', addon.backendStates, backendStateNames);
checkList('close reasons', addon.closeReasons, closeReasonNames);
checkList('protocols', addon.protocols, protocolNames);
checkList('option limits', Object.keys(addon.optionLimits ?? {}), optionLimitNames);
for (const name of optionLimitNames) {
  const { min, max } = addon.optionLimits[name];
  if (!Number.isInteger(min) || !Number.isInteger(max) || min > max) throw new Error(`lb4: the native addon's range for ${name} (${min} to ${max}) is not a range; rebuild the addon`);
}

/** The engine options' ranges (native/core/engine_options.h), as the binding checks them. */
export const optionLimits: Readonly<Record<NativeOptionName, NativeOptionLimit>> = Object.freeze(
  Object.fromEntries(optionLimitNames.map((name) => [name, Object.freeze({ min: addon.optionLimits[name].min, max: addon.optionLimits[name].max })])) as Record<NativeOptionName, NativeOptionLimit>,
);

/** The data plane's counters, in the order readStats() writes them. */
export const counters: readonly CounterInfo[] = Object.freeze(addon.counters.map((c) => Object.freeze({ ...c })));

/** Turns an errno from the data plane into an error shaped like Node's own system errors. */
export function systemError(
  errno: number,
  syscall: string,
  where?: { address?: string; port?: number },
): NodeJS.ErrnoException & { address?: string; port?: number } {
  const code = getSystemErrorName(-errno);
  let message = `${syscall} ${code}`;
  if (where?.address !== undefined) message += ` ${where.address}${where.port !== undefined ? `:${where.port}` : ''}`;
  const err = new Error(`${message} (${osErrorMessage(errno)})`) as NodeJS.ErrnoException & {
    address?: string;
    port?: number;
  };
  err.code = code;
  err.errno = -errno;
  err.syscall = syscall;
  if (where?.address !== undefined) err.address = where.address;
  if (where?.port !== undefined) err.port = where.port;
  return err;
}
