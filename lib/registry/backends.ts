// What can happen to a backend while the balancer runs, from any source: the operator (API,
// library calls, reloads), active health checks, passive health (connect failures reported by the
// engine), slow start and drains. Each operation changes the registry and then flushes the change
// to the engine (lib/registry/engine-sync.ts); the rules that tie them together live here: a
// backend that leaves the tables drains, one that comes back ramps up, and passive health only
// marks down what active checks can bring back.

import type { EventEmitter } from 'node:events';
import type { Clock } from '../clock.js';
import { formatDuration, parseDuration } from '../config/duration.js';
import { backendStates, type BackendState } from '../config/enums.js';
import { validateBackend } from '../config/validate.js';
import { formatHostPort } from '../config/address.js';
import { Lb4Error } from '../errors.js';
import type { HealthConfig } from '../health/check-options.js';
import type { HealthMonitor } from '../health/monitor.js';
import { ConsecutiveFailures, PassiveRetryTimers } from '../health/passive.js';
import type { Logger } from '../log.js';
import type { BackendInfo, BackendOptions, BackendScope, BalancerConfig } from '../types.js';
import type { BackendAddedEvent, BalancerEvents, ChangeSource } from '../events.js';
import type { DrainTimers } from './drains.js';
import type { EngineSync } from './engine-sync.js';
import type { ListenerTable } from './listeners.js';
import { backendInfo, engineState, type BackendRecord, type BackendRegistry } from './registry.js';
import type { SlowStart } from './slow-start.js';
import { showValue } from '../config/show-value.js';

/** What the backend operations work with; the composition root (lib/compose.ts) makes them. */
export interface BackendParts {
  readonly registry: BackendRegistry;
  readonly listeners: ListenerTable;
  readonly monitor: HealthMonitor;
  readonly sync: EngineSync;
  readonly drains: DrainTimers;
  readonly ramps: SlowStart;
  /** The running config (reloads replace it). */
  readonly config: () => BalancerConfig;
  readonly events: EventEmitter<BalancerEvents>;
  readonly logs: { readonly registry: Logger; readonly health: Logger };
  /** Sets the passive retry timers. Default: real time. */
  readonly clock?: Clock;
}

function healthTarget(b: BackendRecord, health: HealthConfig): { ip: string; port: number } {
  return { ip: health.address ?? b.ip, port: health.port ?? b.port };
}

function checkWeight(weight: number): void {
  if (!Number.isInteger(weight) || weight < 0 || weight > 1_000_000) {
    throw new Lb4Error('LB4_INVALID_OPTION', `must be a whole number from 0 to 1000000, got ${weight}`, { field: 'weight' });
  }
}

/** The `backend-added` event of a registered backend. */
export function addedEvent(b: BackendRecord, by: ChangeSource): BackendAddedEvent {
  return { listener: b.listener, backend: b.id, address: b.address, weight: b.weight, state: b.state, by };
}

export class BackendControl {
  readonly #p: BackendParts;
  readonly #passive = new ConsecutiveFailures();
  readonly #retries: PassiveRetryTimers;

  constructor(parts: BackendParts) {
    this.#p = parts;
    this.#retries = new PassiveRetryTimers(parts.clock);
  }

  list(scope: BackendScope = {}): BackendInfo[] {
    return this.#p.registry.list(this.#p.listeners.scopeSlot(scope)).map(backendInfo);
  }

  async add(backend: string | BackendOptions, scope: BackendScope = {}): Promise<BackendInfo[]> {
    const { registry, listeners } = this.#p;
    const config = await validateBackend(backend, 'backend');
    const slots = scope.listener === undefined ? listeners.all() : [listeners.require(scope.listener)];
    for (const s of slots) {
      if (registry.get(s.slot, config.id)) throw new Lb4Error('LB4_DUPLICATE_BACKEND', `backend "${config.id}" exists already in listener "${s.config.name}"`, { field: 'id' });
      // `ENTRY/ADDRESS` is the id a DNS entry gives what it finds: taken here, the entry's answer
      // would be skipped at every resolution.
      const entry = s.config.discover.find((e) => config.id.startsWith(`${e.id}/`));
      if (entry) throw new Lb4Error('LB4_DNS_OWNED', `"${config.id}" is an id DNS entry "${entry.id}" of listener "${s.config.name}" gives its backends: choose another id`, { field: 'id' });
    }
    const added = slots.map((s) => this.watch(registry.add(s.slot, s.config.name, config, s.config.health ? 'up' : 'unchecked')));
    await this.#p.sync.flush();
    for (const b of added) {
      this.#p.logs.registry.info({ listener: b.listener, backend: b.id, address: formatHostPort(b.ip, b.port), weight: b.weight }, 'backend added');
      this.#p.events.emit('backend-added', addedEvent(b, 'operator'));
    }
    return added.map(backendInfo);
  }

  async remove(id: string, scope: BackendScope & { drainTimeout?: number | string } = {}): Promise<void> {
    const drainMs = this.drainMs(scope.drainTimeout);
    const records = this.#p.registry.find(id, this.#p.listeners.scopeSlot(scope));
    for (const b of records) this.forget(b, drainMs);
    await this.#p.sync.flush();
    for (const b of records) {
      this.#p.logs.registry.info({ listener: b.listener, backend: id, drainTimeoutMs: drainMs }, 'backend removed');
      this.#p.events.emit('backend-removed', { listener: b.listener, backend: id, by: 'operator' });
    }
  }

  async setWeight(id: string, weight: number, scope: BackendScope = {}): Promise<BackendInfo[]> {
    const slot = this.#p.listeners.scopeSlot(scope);
    checkWeight(weight);
    const before = this.#p.registry.find(id, slot);
    // A discovered backend's weight is its DNS entry's (or its SRV record's): set here, the next
    // answer would silently put it back.
    const owned = before.find((b) => b.entry !== undefined);
    if (owned) throw new Lb4Error('LB4_DNS_OWNED', `backend "${id}" of listener "${owned.listener}" belongs to DNS entry "${owned.entry}", which sets its weight: change the entry's weight in the config`, { field: 'weight' });
    const updated = before.map((b) => this.changeWeight(b, weight));
    await this.#p.sync.flush();
    for (const b of updated) this.#p.logs.registry.info({ listener: b.listener, backend: id, weight }, 'backend weight changed');
    for (const b of before) if (b.weight !== weight) this.#p.events.emit('backend-weight', { listener: b.listener, backend: id, from: b.weight, to: weight, by: 'operator' });
    return updated.map(backendInfo);
  }

  async setState(id: string, state: BackendState, scope: BackendScope & { drainTimeout?: number | string } = {}): Promise<BackendInfo[]> {
    const slot = this.#p.listeners.scopeSlot(scope);
    if (!backendStates.includes(state)) {
      throw new Lb4Error('LB4_INVALID_OPTION', `must be one of ${backendStates.join(', ')}, got ${showValue(state)}`, { field: 'state' });
    }
    const drainMs = this.drainMs(scope.drainTimeout);
    const before = this.#p.registry.find(id, slot);
    const updated = before.map((b) => this.changeState(b, state, drainMs, 'operator'));
    await this.#p.sync.flush();
    for (const b of before) if (b.state !== state) this.#p.events.emit('backend-state', { listener: b.listener, backend: id, from: b.state, to: state, by: 'operator' });
    return updated.map(backendInfo);
  }

  /** A drain timeout as given (ms or a duration string), or the configured one. */
  drainMs(value: number | string | undefined): number {
    return value === undefined ? this.#p.config().drainTimeoutMs : parseDuration(value, 'drainTimeout');
  }

  /** Starts health checks for a backend, if its listener has them. */
  watch(b: BackendRecord): BackendRecord {
    const health = this.#p.listeners.bySlot(b.slot)?.config.health;
    if (health) this.#p.monitor.add(String(b.key), healthTarget(b, health), health, b.health === 'down' ? 'down' : 'up');
    return b;
  }

  /** Stops a backend's health checks (its listener's checks changed, or it is gone). */
  unwatch(b: BackendRecord): void {
    this.#p.monitor.remove(String(b.key));
  }

  /** Takes a backend out of the tables; its flows may run for `drainMs` more (null: the engine drains them). */
  forget(b: BackendRecord, drainMs: number | null): void {
    this.#p.registry.remove(b);
    this.unwatch(b);
    this.#passive.reset(b.key);
    this.#retries.cancel(b.key);
    this.#p.ramps.stop(b.key);
    if (drainMs === null) this.#p.drains.cancel(b.key);
    else this.#p.drains.schedule(b, drainMs);
  }

  /** Puts a record back as it was before a failed reload: no drain pending, checks as before. */
  restore(b: BackendRecord): void {
    this.unwatch(b);
    this.#p.ramps.stop(b.key);
    this.#p.drains.cancel(b.key);
    // A ramp cut short would leave the weight part-way: the record comes back at its whole weight.
    const whole = b.effectiveWeight === b.weight ? b : Object.freeze({ ...b, effectiveWeight: b.weight });
    this.#p.registry.restore(whole);
    this.watch(whole);
  }

  /** A new weight, in full at once: a ramp in progress ends. */
  changeWeight(b: BackendRecord, weight: number): BackendRecord {
    this.#p.ramps.stop(b.key);
    return this.#p.registry.update(b, { weight, effectiveWeight: weight });
  }

  changeState(b: BackendRecord, state: BackendState, drainMs: number, by: string): BackendRecord {
    const before = engineState(b);
    const next = this.#p.registry.update(b, { state });
    if (b.state !== state) this.#p.logs.registry.info({ listener: b.listener, backend: b.id, from: b.state, to: state, by }, 'backend state changed');
    if (state === 'up') this.#p.drains.cancel(b.key);
    else this.#p.drains.schedule(next, drainMs);
    return this.#afterEligibilityChange(next, before);
  }

  /** What health checks (or passive health) say of a backend now; sends the change to the engine. */
  setHealth(key: number, health: 'up' | 'down' | 'unchecked', reason: string): void {
    const { registry } = this.#p;
    const b = registry.byKey(key);
    if (!b || !registry.has(b) || b.health === health) return;
    const before = engineState(b);
    let next = registry.update(b, { health, healthReason: reason });
    next = this.#afterEligibilityChange(next, before);
    if (health === 'up') this.#passive.reset(key);
    const log = this.#p.logs.health;
    (health === 'down' ? log.warn.bind(log) : log.info.bind(log))({ listener: b.listener, backend: b.id, reason }, `backend ${health}`);
    this.#p.events.emit('backend-health', { listener: b.listener, backend: b.id, health, reason });
    void this.#p.sync.flush();
  }

  /**
   * Passive health: the engine's connect report for one backend. A backend whose listener has
   * active checks is marked down after `passiveFailures` failures in a row; only the checks
   * bring it back, which is why unchecked backends are never marked down this way.
   */
  recordConnects(key: number, report: { failures: number; successes: number; trailingFailures: number }): void {
    const threshold = this.#p.config().passiveFailures;
    const b = this.#p.registry.byKey(key);
    if (!b || threshold === 0) return;
    const consecutive = this.#passive.record(key, report);
    const checked = this.#p.listeners.bySlot(b.slot)?.config.health;
    if (consecutive < threshold || b.health === 'down') return;
    if (checked) {
      this.#p.monitor.markDown(String(b.key));
      this.setHealth(b.key, 'down', `${consecutive} consecutive connect failures (passive)`);
      return;
    }
    // An unchecked UDP backend: each refusal cost a client a datagram (and its retry may land on
    // the same backend again once a worker's short avoidance ends). Down for a hold time, then
    // unchecked again with the count one short of the threshold, so that a backend still
    // refusing goes down after one more refusal rather than `threshold` more.
    if (this.#p.listeners.bySlot(b.slot)?.config.protocol !== 'udp') return;
    // Never the listener's last backend taking flows: refusals alone (which forged ICMP errors
    // can fake) must not leave a listener with nowhere to send, nor keep its only backend out
    // for the hold time after it came back. Like a panic threshold, lb4 fails open.
    const others = this.#p.registry.list(b.slot).some((o) => o.key !== b.key && backendInfo(o).takesNewFlows);
    if (!others) return;
    const holdMs = this.#p.config().passiveRetryMs;
    this.setHealth(b.key, 'down', `${consecutive} consecutive refusals (passive); tried again in ${formatDuration(holdMs)}`);
    this.#retries.schedule(b.key, holdMs, () => {
      // The listener may have active checks by now (a reload): then they, not this timer, decide.
      const now = this.#p.registry.byKey(b.key);
      if (!now || !this.#p.registry.has(now) || this.#p.listeners.bySlot(now.slot)?.config.health || now.health !== 'down') return;
      this.#passive.set(b.key, threshold - 1);
      this.setHealth(b.key, 'unchecked', `tried again ${formatDuration(holdMs)} after passive failures`);
    });
  }

  /** Stops the passive retry timers (the balancer is closing). */
  clearRetries(): void {
    this.#retries.clear();
  }

  /** Starts slow start when a backend becomes able to take flows again. */
  #afterEligibilityChange(b: BackendRecord, before: BackendState): BackendRecord {
    const after = engineState(b);
    const periodMs = this.#p.config().slowStartMs;
    if (before !== 'up' && after === 'up' && periodMs > 0 && b.weight > 1) return this.#p.ramps.start(b, periodMs);
    if (after === 'up') return b;
    // Stopping a ramp gives the backend its whole weight back in the registry: the record the
    // caller answers with must be that one, not `b` from before.
    this.#p.ramps.stop(b.key);
    return this.#p.registry.byKey(b.key) ?? b;
  }
}
