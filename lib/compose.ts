// The composition root: the one place that makes the control plane's parts and wires them
// together (config -> registry -> engine, health -> registry, engine events -> registry, reload ->
// all of them, the admin API on top). Nothing else constructs a part, and no part imports the
// facade (lib/balancer.ts): the admin API sees the running balancer only through the narrow
// interface it declares (lib/api/target.ts).

import type { EventEmitter } from 'node:events';
import { realClock } from './clock.js';
import { formatHostPort } from './config/address.js';
import { createEngine } from './engine/addon.js';
import type { NativeEngine } from './engine/native-types.js';
import { openEngine } from './engine/open.js';
import { StatsReader } from './engine/stats.js';
import { EngineEvents } from './engine-events.js';
import { HealthMonitor } from './health/monitor.js';
import { NatDriver } from './nat/nat-driver.js';
import { SplitEngine } from './nat/split-engine.js';
import { Lb4Error } from './errors.js';
import { silentLogger } from './log.js';
import type { AdminServer } from './api/server.js';
import type { AdminTarget } from './api/target.js';
import type { BalancerNode } from './cluster/balancer-node.js';
import type { ClusterStatus } from './cluster/cluster-types.js';
import { BackendControl } from './registry/backends.js';
import { DrainTimers } from './registry/drains.js';
import { EngineSync } from './registry/engine-sync.js';
import { ListenerTable } from './registry/listeners.js';
import { BackendRegistry } from './registry/registry.js';
import { SlowStart } from './registry/slow-start.js';
import { Reloader } from './reload/apply.js';
import { backendSetGeneration } from './cluster/generation.js';
import type { BalancerConfig, InternalDeps } from './types.js';
import type { BalancerEvents } from './events.js';

/** The facade the parts report to: it emits the events and is what the admin API serves. */
export type BalancerHost = EventEmitter<BalancerEvents> & AdminTarget;

/** A running control plane, as the facade uses it. */
export interface ControlPlane {
  readonly engine: NativeEngine;
  readonly listeners: ListenerTable;
  readonly registry: BackendRegistry;
  readonly backends: BackendControl;
  readonly stats: StatsReader;
  readonly reloader: Reloader;
  /** The running config (after reloads). */
  readonly config: () => BalancerConfig;
  readonly adminUrl: () => string | null;
  /** This node of the HA pair, when `cluster` is configured and started. */
  readonly clusterStatus: () => ClusterStatus | null;
  /** Set once close() has been called. */
  readonly closing: () => Promise<void> | null;
  /** Throws LB4_CLOSED once close() has been called. */
  readonly assertOpen: () => void;
  /** The balancer's own handle, which keeps the process alive while it runs. */
  readonly keepAlive: NodeJS.Timeout;
  /**
   * Starts the admin API and the cluster node, if configured; when either cannot start, closes
   * everything and throws.
   */
  start(): Promise<void>;
  /** Stops everything; idempotent (a later call may shorten the drain). */
  close(drainMs: number): Promise<void>;
}

const keepAliveIntervalMs = 1000;

/**
 * Opens the engine's listeners and makes the control plane around them; `start()` then adds the
 * admin API. Throws with nothing left running when a listener cannot open.
 */
export function composeControlPlane(initial: BalancerConfig, deps: InternalDeps, host: BalancerHost): ControlPlane {
  const log = deps.logger ?? silentLogger();
  const logs = {
    engine: log.child({ component: 'engine' }),
    registry: log.child({ component: 'registry' }),
    health: log.child({ component: 'health' }),
    reload: log.child({ component: 'reload' }),
    access: log.child({ component: 'access' }),
    admin: log.child({ component: 'admin' }),
    cluster: log.child({ component: 'cluster' }),
    nat: log.child({ component: 'nat' }),
  };
  // The registry exists before the engine so the engine starts with whole tables (and keys).
  const registry = new BackendRegistry();
  initial.listeners.forEach((l, slot) => {
    for (const b of l.backends) registry.add(slot, l.name, b, l.health ? 'up' : 'unchecked');
  });
  const tables = initial.listeners.map((_, slot) => registry.nativeTable(slot));
  // Listeners with `forward: nat` are held open by the engine, but their tables become nftables
  // rules (lib/nat/): the split engine sends each listener's calls to the plane it forwards by.
  const nat = new NatDriver({ table: initial.natTable, log: logs.nat, nft: deps.natTools?.nft, conntrack: deps.natTools?.conntrack });
  const make = deps.createEngine ?? createEngine;
  const { engine, addresses, dualStackFallback } = openEngine(initial, tables, (options) => new SplitEngine(make(options), nat, options.listeners));
  registry.takeChanged(); // the engine started with these tables

  // The running config records the ports the listeners got (port 0 asks for any).
  let config: BalancerConfig = Object.freeze({
    ...initial,
    listeners: Object.freeze(initial.listeners.map((l, i) => Object.freeze({ ...l, port: addresses[i].port }))),
  });
  let closing: Promise<void> | null = null;
  let started = false;
  let admin: AdminServer | null = null;
  let cluster: BalancerNode | null = null;

  const listeners = new ListenerTable(addresses.map((address, slot) => ({ slot, config: config.listeners[slot], address })));
  const clock = deps.clock ?? realClock;
  const monitor = new HealthMonitor({ clock });
  const sync = new EngineSync(engine, registry, listeners, logs.registry, () => closing !== null);
  const drains = new DrainTimers(engine, logs.registry, clock);
  const ramps = new SlowStart(registry, () => sync.flush(), logs.registry, clock);
  const backends = new BackendControl({ registry, listeners, monitor, sync, drains, ramps, config: () => config, events: host, logs, clock });
  monitor.on('transition', (t) => backends.setHealth(Number(t.id), t.up ? 'up' : 'down', t.reason));
  monitor.on('result', ({ id, result }) => {
    const b = registry.byKey(Number(id));
    if (b) host.emit('health-check', { listener: b.listener, backend: b.id, ok: result.ok, durationMs: result.durationMs, reason: result.reason });
  });
  const engineEvents = new EngineEvents({ engine, registry, listeners, backends, events: host, logs });
  // Like a listening net.Server, a running balancer keeps the process alive: this timer is its
  // handle (the addon holds none of its own). It also reports engine events the JS thread
  // could not take in time.
  const keepAlive = setInterval(() => engineEvents.checkDropped(), keepAliveIntervalMs);

  const startAdmin = async (): Promise<void> => {
    if (!config.admin) return;
    // Loaded only when configured: most runs have no admin API.
    const { startAdminServer } = await import('./api/server.js');
    admin = await startAdminServer(host, config.admin, logs.admin);
    logs.admin.info({ url: admin.url }, 'admin API listening');
  };
  const restartAdmin = async (): Promise<void> => {
    const old = admin;
    admin = null;
    await old?.close();
    try {
      await startAdmin();
    } catch (err) {
      logs.admin.error({ err: (err as Error).message }, 'admin API could not start with the new config');
    }
  };
  // What the cluster node reports to its peer: backends that may take flows by the operator's
  // state and by health (weight aside: a backend ramping up from 0 is healthy), and a hash of the
  // backend set, which two nodes with the same config share.
  const backendSummary = () => {
    const records = registry.list();
    const healthy = records.filter((b) => b.state === 'up' && b.health !== 'down').length;
    return { healthy, generation: backendSetGeneration(records.map((b) => `${b.listener}/${b.id}=${formatHostPort(b.ip, b.port)}*${b.weight}`)) };
  };
  // Made before the admin API starts, so a node that cannot be made (a VIP on a missing
  // interface) fails the start with nothing logged before its error; started after it.
  const makeCluster = async (): Promise<BalancerNode | null> => {
    if (!config.cluster) return null;
    // Loaded only when configured, like the admin API.
    const { BalancerNode } = await import('./cluster/balancer-node.js');
    // UDP sessions cross to the peer named as both configs name them: listener and backend ids.
    const names = {
      backendOf: (key: number) => {
        const b = registry.byKey(key);
        return b && { listener: b.listener, backend: b.id };
      },
      slotOf: (name: string) => listeners.get(name)?.slot,
      hasBackend: (slot: number, id: string) => registry.get(slot, id) !== undefined,
    };
    const node = new BalancerNode({ config: config.cluster, summary: backendSummary, logger: logs.cluster, vipDriver: deps.vipDriver, sessions: { engine, names } });
    // A health change reaches the node at once (a last backend going down means fault now).
    host.on('backend-health', () => node.update());
    host.on('reload', () => node.update());
    return node;
  };
  const assertOpen = () => {
    if (closing) throw new Lb4Error('LB4_CLOSED', 'the balancer is closed');
  };
  const reloader = new Reloader({
    engine,
    registry,
    listeners,
    backends,
    sync,
    config: () => config,
    // The running node keeps its cluster settings (a change waits for a restart, and the plan
    // says so): the running config goes on saying what runs.
    setConfig: (next) => (config = Object.freeze({ ...next, cluster: config.cluster })),
    assertOpen,
    restartAdmin: () => void restartAdmin(),
    events: host,
    log: logs.reload,
    dualStackFallback,
    configFile: deps.configFile ?? null,
    readConfig: deps.readConfig ?? null,
  });
  const stats = new StatsReader(engine);
  const openFlows = (counter: 'flows_active' | 'drain_closed') => {
    const snapshot = stats.read(listeners.slotCount);
    return listeners.all().reduce((n, s) => n + snapshot.listener(s.slot)[counter], 0);
  };

  const plane: ControlPlane = {
    engine,
    listeners,
    registry,
    backends,
    stats,
    reloader,
    config: () => config,
    adminUrl: () => admin?.url ?? null,
    clusterStatus: () => cluster?.status() ?? null,
    closing: () => closing,
    assertOpen,
    keepAlive,
    async start() {
      try {
        const node = await makeCluster();
        await startAdmin();
        cluster = node;
        await node?.start();
        // Only a start that succeeded says so: one that fails (an admin port in use) ends with
        // its one error and nothing logged before it.
        started = true;
        log.info({ listeners: listeners.all().map((s) => ({ name: s.config.name, address: formatHostPort(s.address.address, s.address.port) })), workers: config.workers }, 'lb4 started');
        for (const b of registry.list()) logs.registry.info({ listener: b.listener, backend: b.id, address: formatHostPort(b.ip, b.port), weight: b.weight, state: b.state }, 'backend added');
      } catch (err) {
        await plane.close(0);
        throw err;
      }
    },
    close(drainMs) {
      if (closing) {
        void engine.close(drainMs);
        return closing;
      }
      // The peer takes over first: the node gives the VIPs up and sends its leaving heartbeat
      // before the listeners stop accepting, so clients move while this node still serves.
      const leaving = cluster?.stop().catch((err: unknown) => logs.cluster.error({ err }, 'cluster: stopping failed'));
      clearInterval(keepAlive);
      drains.clear();
      ramps.clear();
      backends.clearRetries();
      monitor.close();
      if (started) log.info({ openFlows: openFlows('flows_active'), drainTimeoutMs: drainMs }, 'lb4 stopping: no new flows, draining open ones');
      const closingAdmin = admin;
      admin = null;
      closing = Promise.all([leaving, engine.close(drainMs), closingAdmin?.close()]).then(() => {
        if (started) log.info({ closedByDrainTimeout: openFlows('drain_closed') }, 'lb4 stopped');
        host.emit('close');
      });
      return closing;
    },
  };

  for (const b of registry.list()) backends.watch(b);
  if (config.accessLog) engine.setFlowLog(config.accessLog.sample);
  return plane;
}
