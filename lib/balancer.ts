// A running load balancer: the native engine plus the control plane around it (backend
// registry, stats, events, lifecycle). This is what `startBalancer` returns and what `lb4 start`
// runs.

import { EventEmitter } from 'node:events';
import { formatHostPort } from './address.js';
import { validateBackend, validateOptions, backendStates, type BalancerConfig, type BalancerOptions, type BackendOptions, type BackendState } from './config.js';
import { parseDuration } from './duration.js';
import { Lb4Error } from './errors.js';
import { silentLogger, type Logger } from './log.js';
import {
  counters as counterTable,
  createEngine,
  NativeAlgorithm,
  systemError,
  type CounterName,
  type NativeEngine,
  type NativeEngineOptions,
  type NativeEvent,
} from './native.js';
import { BackendRegistry, type BackendRecord } from './registry.js';

/** Counter values, by the data plane's counter names (see {@link counterTable}). */
export type Counters = Readonly<Record<CounterName, number>>;

/** Where a listener accepts clients. */
export interface ListenerAddress {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly family: 'IPv4' | 'IPv6';
}

/** A backend as reported by {@link Balancer.backends}. */
export interface BackendInfo {
  readonly id: string;
  readonly address: string;
  readonly ip: string;
  readonly port: number;
  readonly weight: number;
  readonly state: BackendState;
}

export interface BalancerStats {
  readonly listeners: ReadonlyArray<ListenerAddress & { readonly counters: Counters }>;
  /** Current backends, then removed ones that still have counters worth reading are left out. */
  readonly backends: ReadonlyArray<BackendInfo & { readonly counters: Counters }>;
  /** Engine events dropped because the JS thread did not keep up. */
  readonly droppedEvents: number;
}

/** One tracked flow (a proxied TCP connection). */
export interface Connection {
  readonly id: number;
  readonly listener: string;
  readonly worker: number;
  readonly state: 'connecting' | 'established';
  readonly client: string;
  /** Backend id; absent while no backend is assigned. */
  readonly backend?: string;
  readonly backendAddress?: string;
  readonly startedAt: Date;
  readonly bytesToBackend: number;
  readonly bytesToClient: number;
}

export interface ConnectionFilter {
  listener?: string;
  backend?: string;
  /** At most this many (default 1000). */
  limit?: number;
}

/** Events a {@link Balancer} emits. */
export interface BalancerEvents {
  /** Connects to a backend failed (refused or timed out), summed over a short interval. */
  'backend-connect-failures': [info: { backend: string; failures: number; timeouts: number; successes: number }];
  /** accept() failed on a listener for a reason other than running out of descriptors. */
  'listener-error': [error: NodeJS.ErrnoException, listener: string];
  /** The balancer has closed and every worker has stopped. */
  close: [];
}

/** Extra wiring for tests and embedding: a logger, or a stand-in engine. */
export interface BalancerDeps {
  logger?: Logger;
  createEngine?: (options: NativeEngineOptions) => NativeEngine;
}

const keepAliveIntervalMs = 1000;

function counterRecord(values: Float64Array, offset: number): Counters {
  const out = {} as Record<CounterName, number>;
  counterTable.forEach((c, i) => (out[c.name] = values[offset + i]));
  return Object.freeze(out);
}

function backendInfo(b: BackendRecord): BackendInfo {
  return { id: b.id, address: b.address, ip: b.ip, port: b.port, weight: b.weight, state: b.state };
}

export class Balancer extends EventEmitter<BalancerEvents> {
  readonly config: BalancerConfig;
  readonly #engine: NativeEngine;
  readonly #registry: BackendRegistry;
  readonly #listeners: readonly ListenerAddress[];
  readonly #log: Logger;
  #stats = new Float64Array(0);
  #keepAlive: NodeJS.Timeout;
  #closing: Promise<void> | null = null;
  #lastDropped = 0;

  private constructor(config: BalancerConfig, engine: NativeEngine, registry: BackendRegistry, listeners: ListenerAddress[], log: Logger) {
    super();
    this.config = config;
    this.#engine = engine;
    this.#registry = registry;
    this.#listeners = Object.freeze(listeners.map((l) => Object.freeze(l)));
    this.#log = log;
    engine.onEvents((events) => this.#onEngineEvents(events));
    // Like a listening net.Server, a running balancer keeps the process alive: this timer is its
    // handle (the addon holds none of its own). It also reports engine events the JS thread
    // could not take in time.
    this.#keepAlive = setInterval(() => this.#checkDroppedEvents(), keepAliveIntervalMs);
  }

  /** Validates `options`, opens every listener and starts the data plane. */
  static async start(options: BalancerOptions, deps: BalancerDeps = {}): Promise<Balancer> {
    const config = await validateOptions(options);
    const log = deps.logger ?? silentLogger();
    const make = deps.createEngine ?? createEngine;
    const registry = new BackendRegistry(config.backends);

    const open = (dualStackFallback: boolean) => {
      const engine = make({
        workers: config.workers,
        listeners: config.listeners.map((l) => ({
          name: l.name,
          ip: l.anyInterface && dualStackFallback ? '0.0.0.0' : l.ip,
          port: l.port,
          dualStack: l.anyInterface && !dualStackFallback,
          backlog: 511,
          algorithm: NativeAlgorithm[config.algorithm],
        })),
        connectTimeoutMs: config.connectTimeoutMs,
        idleTimeoutMs: config.idleTimeoutMs,
        retries: config.retries,
        pipeSize: config.pipeSize,
        maxIdlePipes: 256,
      });
      return { engine, result: engine.start(registry.nativeTables(config.listeners.length)) };
    };

    let { engine, result } = open(false);
    if (!Array.isArray(result) && result.errno === 97 /* EAFNOSUPPORT: no IPv6 on this host */) {
      ({ engine, result } = open(true));
    }
    if (!Array.isArray(result)) {
      const listener = config.listeners[result.listener];
      const address = listener.anyInterface ? '::' : listener.ip;
      const err = systemError(result.errno, result.syscall, { address, port: listener.port });
      err.message = `cannot listen on ${listener.name}: ${err.message}`;
      throw err;
    }
    const listeners = result.map((bound, i) => ({ name: config.listeners[i].name, address: bound.ip, port: bound.port, family: bound.family }));
    const balancer = new Balancer(config, engine, registry, listeners, log);
    log.info(
      { listeners: listeners.map((l) => formatHostPort(l.address, l.port)), workers: config.workers, algorithm: config.algorithm },
      'lb4 started',
    );
    for (const b of registry.list()) log.info({ backend: b.id, address: formatHostPort(b.ip, b.port), weight: b.weight, state: b.state }, 'backend added');
    return balancer;
  }

  /** Every listener's bound address (with the real port when 0 was asked), in option order. */
  addresses(): readonly ListenerAddress[] {
    return this.#listeners;
  }

  /** The first listener's address. */
  address(): ListenerAddress {
    return this.#listeners[0];
  }

  get closed(): boolean {
    return this.#closing !== null;
  }

  backends(): BackendInfo[] {
    return this.#registry.list().map(backendInfo);
  }

  /** Adds a backend; new flows may go to it once the promise resolves. */
  async addBackend(backend: string | BackendOptions): Promise<BackendInfo> {
    this.#assertOpen();
    const config = await validateBackend(backend, 'backend');
    const record = this.#registry.add(config);
    await this.#apply();
    this.#log.info({ backend: record.id, address: formatHostPort(record.ip, record.port), weight: record.weight }, 'backend added');
    return backendInfo(record);
  }

  /** Removes a backend: no new flows go to it; its open flows run on until they end. */
  async removeBackend(id: string): Promise<void> {
    this.#assertOpen();
    this.#registry.remove(id);
    await this.#apply();
    this.#log.info({ backend: id }, 'backend removed');
  }

  /** Changes a backend's weight (0 takes no new flows). */
  async setBackendWeight(id: string, weight: number): Promise<BackendInfo> {
    this.#assertOpen();
    if (!Number.isInteger(weight) || weight < 0 || weight > 1_000_000) {
      throw new Lb4Error('LB4_INVALID_OPTION', `must be a whole number from 0 to 1000000, got ${weight}`, { field: 'weight' });
    }
    const record = this.#registry.update(id, { weight });
    await this.#apply();
    this.#log.info({ backend: id, weight }, 'backend weight changed');
    return backendInfo(record);
  }

  /** Sets a backend's state. `draining`, `down` and `maintenance` take no new flows; open ones finish. */
  async setBackendState(id: string, state: BackendState): Promise<BackendInfo> {
    this.#assertOpen();
    if (!backendStates.includes(state)) {
      throw new Lb4Error('LB4_INVALID_OPTION', `must be one of ${backendStates.join(', ')}, got ${JSON.stringify(state)}`, { field: 'state' });
    }
    const before = this.#registry.get(id).state;
    const record = this.#registry.update(id, { state });
    await this.#apply();
    if (before !== state) this.#log.info({ backend: id, from: before, to: state }, 'backend state changed');
    return backendInfo(record);
  }

  /** Counters summed over every worker, per listener and per current backend. */
  stats(): BalancerStats {
    let needed = this.#engine.readStats(this.#stats);
    if (needed > this.#stats.length) {
      this.#stats = new Float64Array(needed);
      needed = this.#engine.readStats(this.#stats);
    }
    const width = counterTable.length;
    const listeners = this.#listeners.map((l, i) => Object.freeze({ ...l, counters: counterRecord(this.#stats, i * width) }));
    const base = this.#listeners.length * width;
    const backends = this.#registry.list().map((b) => {
      const offset = base + b.key * width;
      const counters = offset + width <= needed ? counterRecord(this.#stats, offset) : counterRecord(new Float64Array(width), 0);
      return Object.freeze({ ...backendInfo(b), counters });
    });
    return Object.freeze({ listeners: Object.freeze(listeners), backends: Object.freeze(backends), droppedEvents: this.#engine.droppedEvents() });
  }

  /** A snapshot of open flows from every worker. */
  async connections(filter: ConnectionFilter = {}): Promise<Connection[]> {
    const limit = filter.limit ?? 1000;
    let listener: number | undefined;
    if (filter.listener !== undefined) {
      listener = this.#listeners.findIndex((l) => l.name === filter.listener);
      if (listener < 0) throw new Lb4Error('LB4_INVALID_OPTION', `no listener "${filter.listener}"`, { field: 'listener' });
    }
    const backendKey = filter.backend !== undefined ? this.#registry.get(filter.backend).key : undefined;
    const flows = await this.#engine.connections({ listener, backendKey, limit });
    return flows.slice(0, limit).map((f) => {
      const backend = f.backendKey !== undefined ? this.#registry.byKey(f.backendKey) : undefined;
      return Object.freeze({
        id: f.id,
        listener: this.#listeners[f.listener]?.name ?? String(f.listener),
        worker: f.worker,
        state: f.state,
        client: f.client,
        ...(backend ? { backend: backend.id, backendAddress: f.backend } : {}),
        startedAt: new Date(f.startedAt),
        bytesToBackend: f.bytesToBackend,
        bytesToClient: f.bytesToClient,
      });
    });
  }

  /**
   * Stops accepting at once, lets open flows finish for up to `drainTimeout` (default: the
   * configured drain timeout), closes what is left, and stops the workers. Idempotent: later calls
   * return the same promise (and may shorten the drain).
   */
  close(options: { drainTimeout?: number | string } = {}): Promise<void> {
    const drainMs = options.drainTimeout === undefined ? this.config.drainTimeoutMs : parseDuration(options.drainTimeout, 'drainTimeout');
    if (this.#closing) {
      void this.#engine.close(drainMs);
      return this.#closing;
    }
    clearInterval(this.#keepAlive);
    const open = this.stats().listeners.reduce((n, l) => n + l.counters.flows_active, 0);
    this.#log.info({ openFlows: open, drainTimeoutMs: drainMs }, 'lb4 stopping: no new flows, draining open ones');
    this.#closing = this.#engine.close(drainMs).then(() => {
      const closedByDrain = this.stats().listeners.reduce((n, l) => n + l.counters.drain_closed, 0);
      this.#log.info({ closedByDrainTimeout: closedByDrain }, 'lb4 stopped');
      this.emit('close');
    });
    return this.#closing;
  }

  /** Lets the process exit even though the balancer runs (like `server.unref()`). */
  unref(): this {
    this.#keepAlive.unref();
    return this;
  }

  ref(): this {
    this.#keepAlive.ref();
    return this;
  }

  #assertOpen(): void {
    if (this.#closing) throw new Lb4Error('LB4_CLOSED', 'the balancer is closed');
  }

  #apply(): Promise<void> {
    return this.#engine.applyBackends(this.#registry.nativeTables(this.#listeners.length));
  }

  #onEngineEvents(events: NativeEvent[]): void {
    for (const e of events) {
      if (e.type === 'backend-connects') {
        const backend = this.#registry.byKey(e.backendKey)?.id ?? `#${e.backendKey}`;
        this.#log.warn({ backend, failures: e.failures, timeouts: e.timeouts, successes: e.successes }, 'backend connect failures');
        this.emit('backend-connect-failures', { backend, failures: e.failures, timeouts: e.timeouts, successes: e.successes });
      } else if (e.type === 'listener-error') {
        const listener = this.#listeners[e.listener];
        const err = systemError(e.errno, 'accept', { address: listener?.address, port: listener?.port });
        this.#log.error({ listener: listener?.name, err }, 'accept failed');
        if (this.listenerCount('listener-error') > 0) this.emit('listener-error', err, listener?.name ?? String(e.listener));
      }
    }
  }

  #checkDroppedEvents(): void {
    const dropped = this.#engine.droppedEvents();
    if (dropped > this.#lastDropped) this.#log.warn({ dropped: dropped - this.#lastDropped }, 'engine events dropped: the JS thread fell behind');
    this.#lastDropped = dropped;
  }
}
