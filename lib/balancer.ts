// A running load balancer, as programs and the CLI see it: a thin facade over the control plane
// that lib/compose.ts wires together (engine, registry, health, reload, admin API). Each method
// checks the balancer is open and hands over to the part that does the work. This is what
// `startBalancer` returns and what `lb4 start` runs.

import { EventEmitter } from 'node:events';
import { validateOptions } from './config/validate.js';
import { AbortError } from './errors.js';
import { composeControlPlane, type ControlPlane } from './compose.js';
import type { AdminTarget } from './api/target.js';
import type { ClusterStatus } from './cluster/cluster-types.js';
import { backendInfo, transitionsOf } from './registry/registry.js';
import { listConnections } from './registry/connections.js';
import type {
  BackendInfo,
  BackendOptions,
  BackendScope,
  BackendState,
  BalancerConfig,
  BalancerOptions,
  InternalDeps,
  BalancerStats,
  Connection,
  ConnectionFilter,
  ListenerAddress,
  ReloadSummary,
} from './types.js';
import type { BalancerEvents } from './events.js';

export class Balancer extends EventEmitter<BalancerEvents> implements AdminTarget {
  // Set by startWithConfig before anything can call the balancer.
  #plane!: ControlPlane;
  readonly #startedAt = Date.now();

  private constructor() {
    super();
  }

  /**
   * Validates `options`, opens every listener and starts the data plane (and the admin API).
   * `options.signal` closes the balancer when aborted; aborted before the start, nothing opens
   * and this rejects with an {@link AbortError}; aborted while starting, what opened closes again
   * and this rejects with one too. Programs call `startBalancer`; `deps` may carry lb4's own hooks.
   * @internal
   */
  static async start(options: BalancerOptions, deps: InternalDeps = {}): Promise<Balancer> {
    const { signal, ...settings } = options;
    if (signal?.aborted) throw new AbortError(signal.reason);
    const config = await validateOptions(settings);
    const balancer = await Balancer.startWithConfig(config, deps);
    if (signal) await balancer.#closeOnAbort(signal);
    return balancer;
  }

  /**
   * Starts from a config that is already validated (e.g. by `loadConfigFile`).
   * @internal
   */
  static async startWithConfig(config: BalancerConfig, deps: InternalDeps = {}): Promise<Balancer> {
    const balancer = new Balancer();
    balancer.#plane = composeControlPlane(config, deps, balancer);
    await balancer.#plane.start();
    return balancer;
  }

  /** The running configuration (after reloads). */
  get config(): BalancerConfig {
    return this.#plane.config();
  }

  /** Every listener's bound address (with the real port when 0 was asked), in config order. */
  addresses(): readonly ListenerAddress[] {
    return this.config.listeners.map((l) => this.#plane.listeners.require(l.name).address);
  }

  /** The first listener's address. */
  address(): ListenerAddress {
    return this.addresses()[0];
  }

  /** The admin API's URL (`http://127.0.0.1:PORT` or `unix:/path`), when it runs. */
  get adminUrl(): string | null {
    return this.#plane.adminUrl();
  }

  /**
   * This node of the HA pair (`cluster` option): its state, the peer as its heartbeats describe
   * it, the VIPs held, transitions and rejected heartbeats. null when the balancer is no cluster node.
   */
  clusterStatus(): ClusterStatus | null {
    return this.#plane.clusterStatus();
  }

  get closed(): boolean {
    return this.#plane.closing() !== null;
  }

  /** Seconds since start. */
  get uptimeSeconds(): number {
    return (Date.now() - this.#startedAt) / 1000;
  }

  backends(scope: BackendScope = {}): BackendInfo[] {
    return this.#plane.backends.list(scope);
  }

  /** Adds a backend to one listener, or to every listener; new flows may use it once this resolves. */
  async addBackend(backend: string | BackendOptions, scope: BackendScope = {}): Promise<BackendInfo[]> {
    this.#assertOpen();
    return this.#plane.backends.add(backend, scope);
  }

  /**
   * Removes a backend: no new flows go to it at once; its open flows may finish for up to
   * `drainTimeout` (default: the configured drain timeout), then are closed.
   */
  async removeBackend(id: string, scope: BackendScope & { drainTimeout?: number | string } = {}): Promise<void> {
    this.#assertOpen();
    return this.#plane.backends.remove(id, scope);
  }

  /** Changes a backend's weight (0 takes no new flows). */
  async setBackendWeight(id: string, weight: number, scope: BackendScope = {}): Promise<BackendInfo[]> {
    this.#assertOpen();
    return this.#plane.backends.setWeight(id, weight, scope);
  }

  /**
   * Sets a backend's state. `draining`, `down` and `maintenance` take no new flows at once; open
   * flows may finish for up to `drainTimeout` (default: the configured drain timeout), then are
   * closed. `up` puts it back (through slow start, if configured).
   */
  async setBackendState(id: string, state: BackendState, scope: BackendScope & { drainTimeout?: number | string } = {}): Promise<BackendInfo[]> {
    this.#assertOpen();
    return this.#plane.backends.setState(id, state, scope);
  }

  /** Counters summed over every worker, per listener and per current backend. */
  stats(): BalancerStats {
    const { listeners, registry, engine } = this.#plane;
    const snapshot = this.#plane.stats.read(listeners.slotCount);
    const listenerStats = this.addresses().map((a) => Object.freeze({ ...a, counters: snapshot.listener(listeners.require(a.name).slot) }));
    const backendStats = registry.list().map((b) => Object.freeze({ ...backendInfo(b), counters: snapshot.backend(b.key), latency: snapshot.latency(b.key), transitions: transitionsOf(registry, b.key) }));
    const { discovery } = this.#plane;
    return Object.freeze({ listeners: Object.freeze(listenerStats), backends: Object.freeze(backendStats), droppedEvents: engine.droppedEvents(), dnsResolutions: discovery.counts(), dnsRecordsDropped: discovery.droppedRecords() });
  }

  /** A snapshot of open flows from every worker. */
  async connections(filter: ConnectionFilter = {}): Promise<Connection[]> {
    const { engine, registry, listeners } = this.#plane;
    return listConnections(engine, registry, listeners, filter);
  }

  /**
   * Applies a new configuration without dropping established flows: new listeners open, removed
   * ones stop accepting and drain, backends are added, removed (drained) and changed in place.
   * It reconciles: the listeners, backend set and weights become the new config's, whatever was
   * changed at run time (`addBackend`, the admin API); a state set at run time on a backend the
   * config keeps stays, unless the config itself changed that backend's state. All or nothing: a
   * config that is invalid, or whose new listeners cannot open, is rejected and nothing changes.
   * Each reload logs one line. Settings that need a restart (workers, timeouts) keep their
   * running values and are reported in `needsRestart`.
   */
  reload(options?: BalancerOptions): Promise<ReloadSummary> {
    // A signal belongs to the start: a reload keeps the running one and takes only settings.
    const { signal: _signal, ...settings } = options ?? {};
    return this.#plane.reloader.reload(options && settings);
  }

  /**
   * Stops accepting at once, lets open flows finish for up to `drainTimeout` (default: the
   * configured drain timeout), closes what is left, and stops the workers. Idempotent: later calls
   * return the same promise (and may shorten the drain).
   */
  close(options: { drainTimeout?: number | string } = {}): Promise<void> {
    // A bad drainTimeout rejects (and closes nothing) rather than throwing: not async, because a
    // second call must return the first call's promise.
    let drainMs: number;
    try {
      drainMs = this.#plane.backends.drainMs(options.drainTimeout);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#plane.close(drainMs);
  }

  /**
   * `await using lb = await startBalancer(...)` closes the balancer when the block ends: the same
   * as {@link Balancer.close} with the configured drain timeout. Node 20 defines the symbol (the
   * syntax comes with TypeScript or a later Node).
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Lets the process exit even though the balancer runs (like `server.unref()`). */
  unref(): this {
    this.#plane.keepAlive.unref();
    return this;
  }

  ref(): this {
    this.#plane.keepAlive.ref();
    return this;
  }

  async #closeOnAbort(signal: AbortSignal): Promise<void> {
    if (signal.aborted) {
      await this.close({ drainTimeout: 0 });
      throw new AbortError(signal.reason);
    }
    // A failed close is logged by the control plane; the abort has no caller to hand it to.
    const onAbort = () => void this.close().catch(() => {});
    signal.addEventListener('abort', onAbort, { once: true });
    this.once('close', () => signal.removeEventListener('abort', onAbort));
  }

  #assertOpen(): void {
    this.#plane.assertOpen();
  }
}
