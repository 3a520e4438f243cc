// A running load balancer: the native engine plus the control plane around it. It owns the
// backend registry, the health monitor, drains, slow start, reloads, the access log and the
// admin API, and turns every change into one batch of backend tables for the engine. This is
// what `startBalancer` returns and what `lb4 start` runs.

import { EventEmitter } from 'node:events';
import { formatHostPort } from './address.js';
import {
  backendStates,
  validateBackend,
  validateOptions,
  type BackendOptions,
  type BackendState,
  type BalancerConfig,
  type BalancerOptions,
  type ListenerConfig,
} from './config.js';
import { readConfigFile } from './config-file.js';
import { parseDuration } from './duration.js';
import { Lb4Error } from './errors.js';
import type { HealthConfig } from './health/check-config.js';
import { HealthMonitor } from './health/monitor.js';
import { silentLogger, type Logger } from './log.js';
import {
  counters as counterTable,
  createEngine,
  NativeAlgorithm,
  NativeProtocol,
  systemError,
  type CounterName,
  type NativeEngine,
  type NativeEngineOptions,
  type NativeEvent,
  type NativeBackend,
  type NativeListenerOptions,
} from './native.js';
import { ConsecutiveFailures } from './passive-health.js';
import { BackendRegistry, engineState, type BackendRecord, type Health } from './registry.js';
import { planReload, type ReloadPlan } from './reload.js';
import { slowStartSteps, slowStartWeight } from './slow-start.js';

/** Counter values, by the data plane's counter names (see `counters`). */
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
  readonly listener: string;
  readonly address: string;
  readonly ip: string;
  readonly port: number;
  readonly weight: number;
  /** The weight in use now: below `weight` while slow start ramps the backend up. */
  readonly effectiveWeight: number;
  /** The state the operator set. */
  readonly state: BackendState;
  /** What health checks say: `unchecked` when the listener has none. */
  readonly health: Health;
  readonly healthReason: string | null;
  /** Whether new flows may go to it now. */
  readonly takesNewFlows: boolean;
}

export interface BalancerStats {
  readonly listeners: ReadonlyArray<ListenerAddress & { readonly counters: Counters }>;
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

/** Which listener a backend operation concerns; all of them (where the id exists) when absent. */
export interface BackendScope {
  listener?: string;
}

/** A closed flow, as the access log records it. */
export interface FlowRecord {
  readonly id: number;
  readonly listener: string;
  readonly client: string;
  readonly backend: string | null;
  readonly bytesToBackend: number;
  readonly bytesToClient: number;
  readonly startedAt: Date;
  readonly durationMs: number;
  readonly reason: string;
}

/** What a reload changed. */
export interface ReloadSummary {
  readonly listenersAdded: string[];
  readonly listenersRemoved: string[];
  readonly backendsAdded: string[];
  readonly backendsRemoved: string[];
  readonly backendsChanged: string[];
  /** Settings that changed in the new config but only take effect on a restart. */
  readonly needsRestart: string[];
}

/** Events a {@link Balancer} emits. */
export interface BalancerEvents {
  /** Connects to a backend failed (refused or timed out), summed over a short interval. */
  'backend-connect-failures': [info: { listener: string; backend: string; failures: number; timeouts: number; successes: number }];
  /** A backend's health changed (active checks or passive connect failures). */
  'backend-health': [info: { listener: string; backend: string; health: 'up' | 'down'; reason: string }];
  /** One active health check finished. */
  'health-check': [info: { listener: string; backend: string; ok: boolean; durationMs: number; reason: string }];
  /** A flow closed (only with the access log on, and only the sampled ones). */
  flow: [record: FlowRecord];
  /** accept() failed on a listener for a reason other than running out of descriptors. */
  'listener-error': [error: NodeJS.ErrnoException, listener: string];
  /** A reload was applied. */
  reload: [summary: ReloadSummary];
  /** The balancer has closed and every worker has stopped. */
  close: [];
}

/** Extra wiring for tests and embedding: a logger, or a stand-in engine. */
export interface BalancerDeps {
  logger?: Logger;
  createEngine?: (options: NativeEngineOptions) => NativeEngine;
  /** The file the options came from: `reload()` without options reads it again. */
  configFile?: string;
  /**
   * How `reload()` without options reads `configFile` again, when more than the file makes the
   * options: the CLI lays the flags typed on its command line over the file each time, so a
   * reload keeps them. Default: the file alone.
   */
  readConfig?: () => Promise<BalancerOptions>;
}

/** The admin API as the balancer starts and stops it (lib/admin/server.ts). */
interface AdminServerHandle {
  close(): Promise<void>;
  readonly url: string;
}

interface ListenerSlot {
  slot: number;
  config: ListenerConfig;
  address: ListenerAddress;
}

const keepAliveIntervalMs = 1000;
const listenBacklog = 511;
const maxIdlePipes = 256;

function counterRecord(values: Float64Array, offset: number): Counters {
  const out = {} as Record<CounterName, number>;
  counterTable.forEach((c, i) => (out[c.name] = values[offset + i] ?? 0));
  return Object.freeze(out);
}

function backendInfo(b: BackendRecord): BackendInfo {
  const state = engineState(b);
  return Object.freeze({
    id: b.id,
    listener: b.listener,
    address: b.address,
    ip: b.ip,
    port: b.port,
    weight: b.weight,
    effectiveWeight: b.effectiveWeight,
    state: b.state,
    health: b.health,
    healthReason: b.healthReason,
    takesNewFlows: state === 'up' && b.effectiveWeight > 0,
  });
}

function nativeListener(l: ListenerConfig, dualStackFallback = false): NativeListenerOptions {
  return {
    name: l.name,
    protocol: NativeProtocol.tcp,
    ip: l.anyInterface && dualStackFallback ? '0.0.0.0' : l.ip,
    port: l.port,
    dualStack: l.anyInterface && !dualStackFallback,
    backlog: listenBacklog,
    algorithm: NativeAlgorithm[l.algorithm],
  };
}

function withBoundPorts(config: BalancerConfig, ports: number[]): BalancerConfig {
  return Object.freeze({ ...config, listeners: Object.freeze(config.listeners.map((l, i) => Object.freeze({ ...l, port: ports[i] }))) });
}

function healthTarget(b: BackendRecord, health: HealthConfig): { ip: string; port: number } {
  return { ip: health.address ?? b.ip, port: health.port ?? b.port };
}

const EAFNOSUPPORT = 97;

export class Balancer extends EventEmitter<BalancerEvents> {
  #config: BalancerConfig;
  readonly #engine: NativeEngine;
  readonly #registry: BackendRegistry;
  readonly #slots = new Map<string, ListenerSlot>();
  readonly #monitor: HealthMonitor;
  readonly #passive = new ConsecutiveFailures();
  readonly #drainTimers = new Map<number, NodeJS.Timeout>();
  readonly #rampTimers = new Map<number, NodeJS.Timeout>();
  readonly #withoutBackends = new Set<string>();
  readonly #log: Logger;
  readonly #logs: Record<'engine' | 'registry' | 'health' | 'reload' | 'access' | 'admin', Logger>;
  readonly #startedAt = Date.now();
  #dualStackFallback: boolean;
  /** Listener slots the engine has ever opened; slots are never reused. */
  #slotCount: number;
  #stats = new Float64Array(0);
  #keepAlive: NodeJS.Timeout;
  #closing: Promise<void> | null = null;
  #lastDropped = 0;
  #admin: AdminServerHandle | null = null;
  #reloading: Promise<ReloadSummary> | null = null;
  #configFile: string | null = null;
  /** Listeners a reload is opening: their slot's algorithm, until they join #slots. */
  readonly #openingAlgorithms = new Map<number, ListenerConfig['algorithm']>();
  /** Per listener slot, what the engine runs now (algorithm and table): #apply sends only slots that differ. */
  readonly #sentTables = new Map<number, string>();
  /** The engine's answer to the last change sent. */
  #lastApply: Promise<void> = Promise.resolve();
  #readConfig: (() => Promise<BalancerOptions>) | null = null;

  private constructor(config: BalancerConfig, engine: NativeEngine, registry: BackendRegistry, slots: ListenerSlot[], log: Logger, dualStackFallback: boolean) {
    super();
    this.#config = config;
    this.#engine = engine;
    this.#registry = registry;
    this.#slotCount = slots.length;
    this.#log = log;
    this.#dualStackFallback = dualStackFallback;
    this.#logs = {
      engine: log.child({ component: 'engine' }),
      registry: log.child({ component: 'registry' }),
      health: log.child({ component: 'health' }),
      reload: log.child({ component: 'reload' }),
      access: log.child({ component: 'access' }),
      admin: log.child({ component: 'admin' }),
    };
    for (const s of slots) this.#slots.set(s.config.name, s);
    this.#monitor = new HealthMonitor();
    this.#monitor.on('transition', (t) => this.#onHealthTransition(Number(t.id), t.up, t.reason));
    this.#monitor.on('result', (r) => this.#onHealthResult(Number(r.id), r.result));
    engine.onEvents((events) => this.#onEngineEvents(events));
    // Like a listening net.Server, a running balancer keeps the process alive: this timer is its
    // handle (the addon holds none of its own). It also reports engine events the JS thread
    // could not take in time.
    this.#keepAlive = setInterval(() => this.#checkDroppedEvents(), keepAliveIntervalMs);
  }

  /** Validates `options`, opens every listener and starts the data plane (and the admin API). */
  static async start(options: BalancerOptions, deps: BalancerDeps = {}): Promise<Balancer> {
    const config = await validateOptions(options);
    return Balancer.startWithConfig(config, deps);
  }

  /** Starts from a config that is already validated (e.g. by `loadConfigFile`). */
  static async startWithConfig(config: BalancerConfig, deps: BalancerDeps = {}): Promise<Balancer> {
    const log = deps.logger ?? silentLogger();
    const make = deps.createEngine ?? createEngine;
    // The registry exists before the engine so the engine starts with whole tables (and keys).
    const registry = new BackendRegistry();
    config.listeners.forEach((l, slot) => {
      for (const b of l.backends) registry.add(slot, l.name, b, l.health ? 'up' : 'unchecked');
    });

    const open = (dualStackFallback: boolean) => {
      const engine = make({
        workers: config.workers,
        listeners: config.listeners.map((l) => nativeListener(l, dualStackFallback)),
        connectTimeoutMs: config.connectTimeoutMs,
        idleTimeoutMs: config.idleTimeoutMs,
        retries: config.retries,
        pipeSize: config.pipeSize,
        maxIdlePipes,
      });
      return { engine, result: engine.start(config.listeners.map((_, slot) => registry.nativeTable(slot))) };
    };
    let dualStackFallback = false;
    let { engine, result } = open(false);
    if (!Array.isArray(result) && result.errno === EAFNOSUPPORT) {
      dualStackFallback = true; // no IPv6 on this host: "every interface" means every IPv4 one
      void engine.close(0);
      ({ engine, result } = open(true));
    }
    if (!Array.isArray(result)) {
      void engine.close(0);
      throw Balancer.#listenError(config.listeners[result.listener], result.errno, result.syscall);
    }
    // The running config records the ports the listeners got (port 0 asks for any).
    config = withBoundPorts(config, result.map((bound) => bound.port));
    const slots = result.map((bound, i) => ({
      slot: i,
      config: config.listeners[i],
      address: Object.freeze({ name: config.listeners[i].name, address: bound.ip, port: bound.port, family: bound.family }),
    }));
    const balancer = new Balancer(config, engine, registry, slots, log, dualStackFallback);
    // What start() gave the engine: the registry has not changed since.
    config.listeners.forEach((l, slot) => balancer.#noteSent(slot, registry.nativeTable(slot), NativeAlgorithm[l.algorithm]));
    balancer.#configFile = deps.configFile ?? null;
    balancer.#readConfig = deps.readConfig ?? null;
    for (const b of registry.list()) balancer.#watch(b);
    if (config.accessLog) engine.setFlowLog(config.accessLog.sample);
    log.info(
      {
        listeners: slots.map((s) => ({ name: s.config.name, address: formatHostPort(s.address.address, s.address.port) })),
        workers: config.workers,
      },
      'lb4 started',
    );
    for (const b of registry.list()) balancer.#logs.registry.info({ listener: b.listener, backend: b.id, address: formatHostPort(b.ip, b.port), weight: b.weight, state: b.state }, 'backend added');
    if (config.admin) {
      try {
        await balancer.#startAdmin();
      } catch (err) {
        await balancer.close({ drainTimeout: 0 });
        throw err;
      }
    }
    return balancer;
  }

  static #listenError(listener: ListenerConfig, errno: number, syscall: string): Error {
    const address = listener.anyInterface ? '::' : listener.ip;
    const err = systemError(errno, syscall, { address, port: listener.port });
    err.message = `cannot listen on ${listener.name}: ${err.message}`;
    return err;
  }

  /** The running configuration (after reloads). */
  get config(): BalancerConfig {
    return this.#config;
  }

  /** Every listener's bound address (with the real port when 0 was asked), in config order. */
  addresses(): readonly ListenerAddress[] {
    return this.#config.listeners.map((l) => this.#slots.get(l.name)!.address);
  }

  /** The first listener's address. */
  address(): ListenerAddress {
    return this.addresses()[0];
  }

  /** The admin API's URL (`http://127.0.0.1:PORT` or `unix:/path`), when it runs. */
  get adminUrl(): string | null {
    return this.#admin?.url ?? null;
  }

  get closed(): boolean {
    return this.#closing !== null;
  }

  /** Seconds since start. */
  get uptimeSeconds(): number {
    return (Date.now() - this.#startedAt) / 1000;
  }

  backends(scope: BackendScope = {}): BackendInfo[] {
    return this.#registry.list(this.#scopeSlot(scope)).map(backendInfo);
  }

  /** Adds a backend to one listener, or to every listener; new flows may use it once this resolves. */
  async addBackend(backend: string | BackendOptions, scope: BackendScope = {}): Promise<BackendInfo[]> {
    this.#assertOpen();
    const config = await validateBackend(backend, 'backend');
    const slots = scope.listener === undefined ? [...this.#slots.values()] : [this.#slot(scope.listener)];
    for (const s of slots) {
      if (this.#registry.get(s.slot, config.id)) throw new Lb4Error('LB4_DUPLICATE_BACKEND', `backend "${config.id}" exists already in listener "${s.config.name}"`, { field: 'id' });
    }
    const added = slots.map((s) => this.#watch(this.#registry.add(s.slot, s.config.name, config, s.config.health ? 'up' : 'unchecked')));
    await this.#apply();
    for (const b of added) this.#logs.registry.info({ listener: b.listener, backend: b.id, address: formatHostPort(b.ip, b.port), weight: b.weight }, 'backend added');
    return added.map(backendInfo);
  }

  /**
   * Removes a backend: no new flows go to it at once; its open flows may finish for up to
   * `drainTimeout` (default: the configured drain timeout), then are closed.
   */
  async removeBackend(id: string, scope: BackendScope & { drainTimeout?: number | string } = {}): Promise<void> {
    this.#assertOpen();
    const drainMs = this.#drainMs(scope.drainTimeout);
    const records = this.#registry.find(id, this.#scopeSlot(scope));
    for (const b of records) this.#forget(b, drainMs);
    await this.#apply();
    for (const b of records) this.#logs.registry.info({ listener: b.listener, backend: id, drainTimeoutMs: drainMs }, 'backend removed');
  }

  /** Changes a backend's weight (0 takes no new flows). */
  async setBackendWeight(id: string, weight: number, scope: BackendScope = {}): Promise<BackendInfo[]> {
    this.#assertOpen();
    const slot = this.#scopeSlot(scope);
    if (!Number.isInteger(weight) || weight < 0 || weight > 1_000_000) {
      throw new Lb4Error('LB4_INVALID_OPTION', `must be a whole number from 0 to 1000000, got ${weight}`, { field: 'weight' });
    }
    const updated = this.#registry.find(id, slot).map((b) => {
      this.#stopRamp(b.key);
      return this.#registry.update(b, { weight, effectiveWeight: weight });
    });
    await this.#apply();
    for (const b of updated) this.#logs.registry.info({ listener: b.listener, backend: id, weight }, 'backend weight changed');
    return updated.map(backendInfo);
  }

  /**
   * Sets a backend's state. `draining`, `down` and `maintenance` take no new flows at once; open
   * flows may finish for up to `drainTimeout` (default: the configured drain timeout), then are
   * closed. `up` puts it back (through slow start, if configured).
   */
  async setBackendState(id: string, state: BackendState, scope: BackendScope & { drainTimeout?: number | string } = {}): Promise<BackendInfo[]> {
    this.#assertOpen();
    const slot = this.#scopeSlot(scope);
    if (!backendStates.includes(state)) {
      throw new Lb4Error('LB4_INVALID_OPTION', `must be one of ${backendStates.join(', ')}, got ${JSON.stringify(state)}`, { field: 'state' });
    }
    const drainMs = this.#drainMs(scope.drainTimeout);
    const updated = this.#registry.find(id, slot).map((b) => this.#changeState(b, state, drainMs, 'operator'));
    await this.#apply();
    return updated.map(backendInfo);
  }

  /** Counters summed over every worker, per listener and per current backend. */
  stats(): BalancerStats {
    let needed = this.#engine.readStats(this.#stats);
    if (needed > this.#stats.length) {
      this.#stats = new Float64Array(needed);
      needed = this.#engine.readStats(this.#stats);
    }
    const width = counterTable.length;
    const listeners = this.addresses().map((a) => Object.freeze({ ...a, counters: counterRecord(this.#stats, this.#slots.get(a.name)!.slot * width) }));
    const base = this.#slotCount * width;
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
    const listener = filter.listener === undefined ? undefined : this.#slot(filter.listener).slot;
    let backendKey: number | undefined;
    if (filter.backend !== undefined) {
      const found = this.#registry.find(filter.backend, listener);
      if (found.length > 1) throw new Lb4Error('LB4_INVALID_OPTION', `backend "${filter.backend}" is in several listeners: name one`, { field: 'listener' });
      backendKey = found[0].key;
    }
    const slotNames = new Map([...this.#slots.values()].map((s) => [s.slot, s.config.name]));
    const flows = await this.#engine.connections({ listener, backendKey, limit });
    return flows.slice(0, limit).map((f) => {
      const backend = f.backendKey !== undefined ? this.#registry.byKey(f.backendKey) : undefined;
      return Object.freeze({
        id: f.id,
        listener: slotNames.get(f.listener) ?? String(f.listener),
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
   * Applies a new configuration without dropping established flows: new listeners open, removed
   * ones stop accepting and drain, backends are added, removed (drained) and changed in place.
   * A config that is invalid, or whose new listeners cannot open, is rejected and the running
   * one keeps serving. Settings that need a restart (workers, timeouts) keep their running
   * values and are reported in `needsRestart`.
   */
  reload(options?: BalancerOptions): Promise<ReloadSummary> {
    this.#assertOpen();
    // One reload at a time: a second waits for the first, then applies itself.
    const previous = this.#reloading ?? Promise.resolve();
    const run = previous.catch(() => {}).then(async () => this.#reload(options ?? (await this.#readConfigFile())));
    this.#reloading = run;
    void run.finally(() => {
      if (this.#reloading === run) this.#reloading = null;
    }).catch(() => {});
    return run;
  }

  /**
   * Stops accepting at once, lets open flows finish for up to `drainTimeout` (default: the
   * configured drain timeout), closes what is left, and stops the workers. Idempotent: later calls
   * return the same promise (and may shorten the drain).
   */
  close(options: { drainTimeout?: number | string } = {}): Promise<void> {
    const drainMs = this.#drainMs(options.drainTimeout);
    if (this.#closing) {
      void this.#engine.close(drainMs);
      return this.#closing;
    }
    clearInterval(this.#keepAlive);
    for (const t of [...this.#drainTimers.values(), ...this.#rampTimers.values()]) clearTimeout(t);
    this.#drainTimers.clear();
    this.#rampTimers.clear();
    this.#monitor.close();
    const open = this.stats().listeners.reduce((n, l) => n + l.counters.flows_active, 0);
    this.#log.info({ openFlows: open, drainTimeoutMs: drainMs }, 'lb4 stopping: no new flows, draining open ones');
    const admin = this.#admin;
    this.#admin = null;
    this.#closing = Promise.all([this.#engine.close(drainMs), admin?.close()]).then(() => {
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

  // --- backends ------------------------------------------------------------------------------

  /** Starts health checks for a backend, if its listener has them. */
  #watch(b: BackendRecord): BackendRecord {
    const health = this.#slotConfig(b.slot)?.health;
    if (health) this.#monitor.add(String(b.key), healthTarget(b, health), health, b.health === 'down' ? 'down' : 'up');
    return b;
  }

  /** Takes a backend out of the tables; its flows may run for `drainMs` more. */
  #forget(b: BackendRecord, drainMs: number | null): void {
    this.#registry.remove(b);
    this.#monitor.remove(String(b.key));
    this.#passive.reset(b.key);
    this.#stopRamp(b.key);
    if (drainMs === null) this.#cancelDrain(b.key);
    else this.#scheduleDrain(b, drainMs);
  }

  #slotConfig(slot: number): ListenerConfig | undefined {
    for (const s of this.#slots.values()) if (s.slot === slot) return s.config;
    return undefined;
  }

  #changeState(b: BackendRecord, state: BackendState, drainMs: number, by: string): BackendRecord {
    const before = engineState(b);
    const next = this.#registry.update(b, { state });
    if (b.state !== state) this.#logs.registry.info({ listener: b.listener, backend: b.id, from: b.state, to: state, by }, 'backend state changed');
    if (state === 'up') this.#cancelDrain(b.key);
    else this.#scheduleDrain(next, drainMs);
    return this.#afterEligibilityChange(next, before);
  }

  /** Starts slow start when a backend becomes able to take flows again. */
  #afterEligibilityChange(b: BackendRecord, before: BackendState): BackendRecord {
    const after = engineState(b);
    if (before !== 'up' && after === 'up' && this.#config.slowStartMs > 0 && b.weight > 1) return this.#startRamp(b);
    if (after !== 'up') this.#stopRamp(b.key);
    return b;
  }

  #startRamp(b: BackendRecord): BackendRecord {
    this.#stopRamp(b.key);
    const period = this.#config.slowStartMs;
    const started = Date.now();
    const step = () => {
      const current = this.#registry.byKey(b.key);
      if (!current || !this.#registry.has(current)) return;
      const weight = slowStartWeight(current.weight, Date.now() - started, period);
      this.#registry.update(current, { effectiveWeight: weight });
      void this.#apply();
      if (weight < current.weight) {
        this.#rampTimers.set(b.key, setTimeout(step, period / slowStartSteps).unref());
      } else {
        this.#rampTimers.delete(b.key);
        this.#logs.registry.info({ listener: current.listener, backend: current.id, weight }, 'slow start finished');
      }
    };
    const first = this.#registry.update(b, { effectiveWeight: slowStartWeight(b.weight, 0, period) });
    this.#rampTimers.set(b.key, setTimeout(step, period / slowStartSteps).unref());
    this.#logs.registry.info({ listener: b.listener, backend: b.id, slowStartMs: period }, 'slow start');
    return first;
  }

  #stopRamp(key: number): void {
    const t = this.#rampTimers.get(key);
    if (t) clearTimeout(t);
    this.#rampTimers.delete(key);
    const b = this.#registry.byKey(key);
    if (b && b.effectiveWeight !== b.weight) this.#registry.update(b, { effectiveWeight: b.weight });
  }

  #scheduleDrain(b: BackendRecord, drainMs: number): void {
    this.#cancelDrain(b.key);
    const timer = setTimeout(() => {
      this.#drainTimers.delete(b.key);
      void this.#engine.closeFlows({ backendKey: b.key }).then((closed) => {
        if (closed > 0) this.#logs.registry.warn({ listener: b.listener, backend: b.id, closed }, 'drain timeout: closed the flows still open');
      });
    }, drainMs);
    timer.unref();
    this.#drainTimers.set(b.key, timer);
  }

  #cancelDrain(key: number): void {
    const t = this.#drainTimers.get(key);
    if (t) clearTimeout(t);
    this.#drainTimers.delete(key);
  }

  #setHealth(key: number, health: 'up' | 'down', reason: string): void {
    const b = this.#registry.byKey(key);
    if (!b || !this.#registry.has(b) || b.health === health) return;
    const before = engineState(b);
    let next = this.#registry.update(b, { health, healthReason: reason });
    next = this.#afterEligibilityChange(next, before);
    if (health === 'up') this.#passive.reset(key);
    const log = this.#logs.health;
    (health === 'down' ? log.warn.bind(log) : log.info.bind(log))({ listener: b.listener, backend: b.id, reason }, `backend ${health}`);
    this.emit('backend-health', { listener: b.listener, backend: b.id, health, reason });
    void this.#apply();
  }

  #onHealthTransition(key: number, up: boolean, reason: string): void {
    this.#setHealth(key, up ? 'up' : 'down', reason);
  }

  #onHealthResult(key: number, result: { ok: boolean; durationMs: number; reason: string }): void {
    const b = this.#registry.byKey(key);
    if (!b) return;
    this.emit('health-check', { listener: b.listener, backend: b.id, ok: result.ok, durationMs: result.durationMs, reason: result.reason });
  }

  /** Records that the engine runs `table` with `algorithm` in `slot`; true if that is news. */
  #noteSent(slot: number, table: NativeBackend[], algorithm: number): boolean {
    const signature = JSON.stringify([algorithm, table]);
    if (this.#sentTables.get(slot) === signature) return false;
    this.#sentTables.set(slot, signature);
    return true;
  }

  /**
   * Sends the engine the tables of the listener slots whose backends (or algorithm) changed since
   * they were last sent; logs listeners that lose every backend. Resolves once every worker runs
   * what the registry says now.
   */
  #apply(): Promise<void> {
    if (this.#closing) return Promise.resolve();
    const bySlot = new Map([...this.#slots.values()].map((s) => [s.slot, s.config.algorithm]));
    // Every slot's table comes from the registry: a removed listener's backends are forgotten
    // (an empty table; its flows keep the backends they have), and a listener still opening
    // during a reload already has its backends there.
    const sent: Promise<void>[] = [];
    for (let slot = 0; slot < this.#slotCount; slot++) {
      const table = this.#registry.nativeTable(slot);
      const algorithm = NativeAlgorithm[bySlot.get(slot) ?? this.#openingAlgorithms.get(slot) ?? 'roundrobin'];
      if (this.#noteSent(slot, table, algorithm)) sent.push(this.#engine.applyBackends(slot, table, algorithm));
    }
    for (const s of this.#slots.values()) {
      const usable = this.#registry.list(s.slot).some((b) => backendInfo(b).takesNewFlows);
      const name = s.config.name;
      if (!usable && !this.#withoutBackends.has(name)) {
        this.#withoutBackends.add(name);
        this.#logs.registry.error({ listener: name }, 'no backend can take new flows: clients are closed at once until one comes back');
      } else if (usable && this.#withoutBackends.delete(name)) {
        this.#logs.registry.info({ listener: name }, 'a backend can take new flows again');
      }
    }
    // Workers run commands in order, so the last slots sent resolving means every earlier send
    // ran too. With nothing new, the last send's promise still says when the engine caught up.
    if (sent.length > 0) this.#lastApply = Promise.all(sent).then(() => undefined);
    return this.#lastApply;
  }

  // --- reload --------------------------------------------------------------------------------

  async #readConfigFile(): Promise<BalancerOptions> {
    if (!this.#configFile) throw new Lb4Error('LB4_RELOAD_FAILED', 'lb4 was started without a config file, so there is nothing to re-read: give the new options');
    try {
      return await (this.#readConfig ? this.#readConfig() : readConfigFile(this.#configFile));
    } catch (err) {
      this.#logs.reload.error({ err: (err as Error).message }, 'reload rejected: the running config keeps serving');
      throw err;
    }
  }

  async #reload(options: BalancerOptions): Promise<ReloadSummary> {
    this.#assertOpen();
    let next: BalancerConfig;
    try {
      next = await validateOptions(options);
    } catch (err) {
      this.#logs.reload.error({ err: (err as Error).message }, 'reload rejected: the running config keeps serving');
      throw err;
    }
    const plan = planReload(this.#config, next);
    // Open new listeners first: if one cannot open, nothing has changed yet.
    const opened: ListenerSlot[] = [];
    try {
      for (const l of plan.addedListeners) opened.push(await this.#openListener(l));
    } catch (err) {
      for (const s of opened) {
        this.#openingAlgorithms.delete(s.slot);
        await this.#engine.removeListener(s.slot, 0);
        for (const b of this.#registry.list(s.slot)) this.#registry.remove(b);
      }
      this.#logs.reload.error({ err: (err as Error).message }, 'reload rejected: the running config keeps serving');
      throw err;
    }
    const summary = this.#applyPlan(plan, next, opened);
    await this.#apply();
    this.#logs.reload.info(summary, 'reload applied');
    if (summary.needsRestart.length > 0) this.#logs.reload.warn({ settings: summary.needsRestart }, 'these settings changed but only take effect on a restart');
    this.emit('reload', summary);
    return summary;
  }

  /** Opens a listener in a new slot, with its backends registered there. */
  async #openListener(l: ListenerConfig): Promise<ListenerSlot> {
    // The engine gives slots in order, so the next one is known before it opens; the records go
    // there first so the listener opens with its whole table.
    const slot = this.#slotCount;
    const records = l.backends.map((b) => this.#registry.add(slot, l.name, b, l.health ? 'up' : 'unchecked'));
    const table = this.#registry.nativeTable(slot);
    const result = this.#engine.addListener(nativeListener(l, this.#dualStackFallback), table);
    if (!('slot' in result)) {
      for (const r of records) this.#registry.remove(r);
      throw Balancer.#listenError(l, result.errno, result.syscall);
    }
    if (result.slot !== slot) throw new Error(`lb4: engine opened listener slot ${result.slot}, expected ${slot}`);
    this.#slotCount++;
    this.#openingAlgorithms.set(slot, l.algorithm);
    this.#noteSent(slot, table, NativeAlgorithm[l.algorithm]);
    await result.ready;
    const bound = Object.freeze({ ...l, port: result.port });
    return { slot, config: bound, address: Object.freeze({ name: l.name, address: result.ip, port: result.port, family: result.family }) };
  }

  #applyPlan(plan: ReloadPlan, next: BalancerConfig, opened: ListenerSlot[]): ReloadSummary {
    const summary = {
      listenersAdded: plan.addedListeners.map((l) => l.name),
      listenersRemoved: plan.removedListeners.filter((l) => !plan.addedListeners.some((a) => a.name === l.name)).map((l) => l.name),
      backendsAdded: [] as string[],
      backendsRemoved: [] as string[],
      backendsChanged: [] as string[],
      needsRestart: plan.needsRestart,
    };
    const drainMs = next.drainTimeoutMs;
    // Listeners that are gone (or moved to a new address): stop accepting, drain their flows.
    for (const l of plan.removedListeners) {
      const s = this.#slots.get(l.name);
      if (!s) continue;
      void this.#engine.removeListener(s.slot, drainMs);
      // The engine drains the whole listener; no per-backend drain timers are needed.
      for (const b of this.#registry.list(s.slot)) this.#forget(b, null);
      this.#slots.delete(l.name);
      this.#withoutBackends.delete(l.name);
    }
    // New listeners take their place; their backends were registered when they opened.
    for (const s of opened) {
      this.#slots.set(s.config.name, s);
      this.#openingAlgorithms.delete(s.slot);
      for (const b of this.#registry.list(s.slot)) this.#watch(b);
    }
    // Listeners that stay: change their backends in place.
    for (const change of plan.keptListeners) {
      const s = this.#slots.get(change.after.name)!;
      s.config = Object.freeze({ ...change.after, port: s.address.port });
      const name = change.after.name;
      if (change.healthChanged) {
        for (const b of this.#registry.list(s.slot)) {
          this.#monitor.remove(String(b.key));
          this.#watch(this.#registry.update(b, { health: change.after.health ? 'up' : 'unchecked', healthReason: null }));
        }
      }
      for (const b of change.backends.removed) {
        const record = this.#registry.get(s.slot, b.id);
        if (!record) continue;
        this.#forget(record, drainMs);
        summary.backendsRemoved.push(`${name}/${b.id}`);
      }
      for (const b of change.backends.added) {
        this.#watch(this.#registry.add(s.slot, name, b, change.after.health ? 'up' : 'unchecked'));
        summary.backendsAdded.push(`${name}/${b.id}`);
      }
      for (const { after } of change.backends.changed) {
        let record = this.#registry.get(s.slot, after.id);
        if (!record) continue;
        if (record.weight !== after.weight) {
          this.#stopRamp(record.key);
          record = this.#registry.update(record, { weight: after.weight, effectiveWeight: after.weight });
        }
        record = this.#registry.update(record, { address: after.address });
        if (record.state !== after.state) this.#changeState(record, after.state, drainMs, 'reload');
        summary.backendsChanged.push(`${name}/${after.id}`);
      }
    }
    if (plan.accessLogChanged) this.#engine.setFlowLog(next.accessLog?.sample ?? 0);
    // Settings that need a restart keep their running values; listeners carry their bound ports.
    this.#config = Object.freeze({
      ...next,
      listeners: Object.freeze(next.listeners.map((l) => this.#slots.get(l.name)!.config)),
      workers: this.#config.workers,
      connectTimeoutMs: this.#config.connectTimeoutMs,
      idleTimeoutMs: this.#config.idleTimeoutMs,
      retries: this.#config.retries,
      pipeSize: this.#config.pipeSize,
    });
    if (plan.adminChanged) void this.#restartAdmin();
    return summary;
  }

  // --- admin API -----------------------------------------------------------------------------

  async #startAdmin(): Promise<void> {
    if (!this.#config.admin) return;
    const { startAdminServer } = await import('./admin/server.js');
    const admin = await startAdminServer(this, this.#config.admin, this.#logs.admin);
    this.#admin = admin;
    this.#logs.admin.info({ url: admin.url }, 'admin API listening');
  }

  async #restartAdmin(): Promise<void> {
    const old = this.#admin;
    this.#admin = null;
    await old?.close();
    try {
      await this.#startAdmin();
    } catch (err) {
      this.#logs.admin.error({ err: (err as Error).message }, 'admin API could not start with the new config');
    }
  }

  // --- engine events -------------------------------------------------------------------------

  #onEngineEvents(events: NativeEvent[]): void {
    for (const e of events) {
      if (e.type === 'backend-connects') this.#onConnects(e);
      else if (e.type === 'flow-closed') this.#onFlowClosed(e);
      else {
        const listener = [...this.#slots.values()].find((s) => s.slot === e.listener);
        const err = systemError(e.errno, 'accept', { address: listener?.address.address, port: listener?.address.port });
        this.#logs.engine.error({ listener: listener?.config.name, err }, 'accept failed');
        if (this.listenerCount('listener-error') > 0) this.emit('listener-error', err, listener?.config.name ?? String(e.listener));
      }
    }
  }

  #onConnects(e: Extract<NativeEvent, { type: 'backend-connects' }>): void {
    const b = this.#registry.byKey(e.backendKey);
    const backend = b?.id ?? `#${e.backendKey}`;
    const listener = b?.listener ?? '';
    if (e.failures > 0) {
      this.#logs.engine.warn({ listener, backend, failures: e.failures, timeouts: e.timeouts, successes: e.successes }, 'backend connect failures');
      this.emit('backend-connect-failures', { listener, backend, failures: e.failures, timeouts: e.timeouts, successes: e.successes });
    }
    if (!b || this.#config.passiveFailures === 0) return;
    const consecutive = this.#passive.record(e.backendKey, e);
    // Passive health marks down only backends that active checks can bring back.
    const checked = this.#slotConfig(b.slot)?.health;
    if (checked && consecutive >= this.#config.passiveFailures && b.health !== 'down') {
      this.#monitor.markDown(String(b.key));
      this.#setHealth(b.key, 'down', `${consecutive} consecutive connect failures (passive)`);
    }
  }

  #onFlowClosed(e: Extract<NativeEvent, { type: 'flow-closed' }>): void {
    const listener = [...this.#slots.values()].find((s) => s.slot === e.listener)?.config.name ?? String(e.listener);
    const backend = e.backendKey === undefined ? null : (this.#registry.byKey(e.backendKey)?.id ?? `#${e.backendKey}`);
    const record: FlowRecord = {
      id: e.id,
      listener,
      client: e.client,
      backend,
      bytesToBackend: e.bytesToBackend,
      bytesToClient: e.bytesToClient,
      startedAt: new Date(e.startedAt),
      durationMs: e.durationMs,
      reason: e.reason,
    };
    this.#logs.access.info({ flow: e.id, listener, client: e.client, backend, bytesToBackend: e.bytesToBackend, bytesToClient: e.bytesToClient, durationMs: e.durationMs, reason: e.reason }, 'flow closed');
    if (this.listenerCount('flow') > 0) this.emit('flow', Object.freeze(record));
  }

  #checkDroppedEvents(): void {
    const dropped = this.#engine.droppedEvents();
    if (dropped > this.#lastDropped) this.#logs.engine.warn({ dropped: dropped - this.#lastDropped }, 'engine events dropped: the JS thread fell behind');
    this.#lastDropped = dropped;
  }

  // --- helpers -------------------------------------------------------------------------------

  #assertOpen(): void {
    if (this.#closing) throw new Lb4Error('LB4_CLOSED', 'the balancer is closed');
  }

  #drainMs(value: number | string | undefined): number {
    return value === undefined ? this.#config.drainTimeoutMs : parseDuration(value, 'drainTimeout');
  }

  #slot(name: string): ListenerSlot {
    const s = this.#slots.get(name);
    if (!s) throw new Lb4Error('LB4_INVALID_OPTION', `no listener "${name}" (known: ${[...this.#slots.keys()].join(', ')})`, { field: 'listener' });
    return s;
  }

  #scopeSlot(scope: BackendScope): number | undefined {
    return scope.listener === undefined ? undefined : this.#slot(scope.listener).slot;
  }
}
