// Applying a reload: reconciliation. A new config (the desired state) is validated and compared
// with what runs, the listeners and the backends as the registry holds them, admin API changes
// included (plan.ts states the rule), then applied all or nothing. New listeners open first, and
// if one cannot, the ones already opened close again and nothing else has changed; then kept
// listeners change their backends in place and the engine is sent the new tables; only once it
// has taken them do removed listeners stop and drain, the one step that cannot be taken back. If
// a step fails or the engine refuses a table, the backend records are put back exactly as they
// ran (same keys, no drain started) and the new listeners close. Settings that need a restart keep
// their running values and are reported. One reload runs at a time, and each logs exactly one
// line: applied, with its summary, or rejected, with the reason.

import type { EventEmitter } from 'node:events';
import { readConfigFile } from '../config/config-file.js';
import { nativeListenerPolicy, policyDifferences } from '../config/listener-policy.js';
import { restartOnlySettings } from '../config/options.js';
import { validateOptions } from '../config/validate.js';
import type { NativeEngine } from '../engine/native-types.js';
import { listenError, nativeListener, nativeProxySettings } from '../engine/open.js';
import { Lb4Error } from '../errors.js';
import type { Logger } from '../log.js';
import { addedEvent, type BackendControl } from '../registry/backends.js';
import type { EngineSync } from '../registry/engine-sync.js';
import type { ListenerSlot, ListenerTable } from '../registry/listeners.js';
import type { BackendRecord, BackendRegistry } from '../registry/registry.js';
import type { DnsDiscovery } from '../discovery/dns-discovery.js';
import type { BackendConfig, BalancerConfig, BalancerOptions, ListenerConfig, ReloadSummary } from '../types.js';
import type { BalancerEvents } from '../events.js';
import { planReload, type ListenerChanges, type ReloadPlan } from './plan.js';

export interface ReloadParts {
  readonly engine: NativeEngine;
  readonly registry: BackendRegistry;
  readonly listeners: ListenerTable;
  readonly backends: BackendControl;
  readonly sync: EngineSync;
  /** The running config, and how a reload replaces it. */
  readonly config: () => BalancerConfig;
  readonly setConfig: (config: BalancerConfig) => void;
  readonly assertOpen: () => void;
  /** Restarts the admin API on its new address (its errors are its own to log). */
  readonly restartAdmin: () => void;
  readonly events: EventEmitter<BalancerEvents>;
  /** DNS entries: held while a plan applies, then made equal to the new config's entries. */
  readonly discovery: Pick<DnsDiscovery, 'hold' | 'release' | 'reconcile'>;
  readonly log: Logger;
  /** No IPv6 on this host: new "every interface" listeners open on IPv4 (lib/engine/open.ts). */
  readonly dualStackFallback: boolean;
  /** The file the options came from, and how to read the options again (default: the file alone). */
  readonly configFile: string | null;
  readonly readConfig: (() => Promise<BalancerOptions>) | null;
}

export class Reloader {
  readonly #p: ReloadParts;
  #running: Promise<ReloadSummary> | null = null;
  // The backend events of the reload being applied, emitted only once it has applied: a reload
  // that rolls back changed nothing, so it tells nothing.
  #pending: Array<() => void> = [];

  constructor(parts: ReloadParts) {
    this.#p = parts;
  }

  /** Applies `options`, or the config file read again; one reload at a time, in call order. */
  reload(options?: BalancerOptions): Promise<ReloadSummary> {
    // A promise-returning call rejects, never throws: `reload().catch(...)` must see LB4_CLOSED.
    try {
      this.#p.assertOpen();
    } catch (err) {
      return Promise.reject(err);
    }
    // A second reload waits for the first, then applies itself.
    const previous = this.#running ?? Promise.resolve();
    const run = previous.catch(() => {}).then(() => this.#reload(options));
    this.#running = run;
    void run
      .finally(() => {
        if (this.#running === run) this.#running = null;
      })
      .catch(() => {});
    return run;
  }

  /** The one line a failed reload logs: nothing changed, the running config keeps serving. */
  #rejected(err: unknown): void {
    const e = err as Error & { code?: string };
    this.#p.log.error({ err: e.message, code: e.code }, 'reload rejected: the running config keeps serving');
  }

  async #readConfigFile(): Promise<BalancerOptions> {
    const { configFile, readConfig } = this.#p;
    if (!configFile) throw new Lb4Error('LB4_RELOAD_FAILED', 'lb4 was started without a config file, so there is nothing to re-read: give the new options');
    return readConfig ? readConfig() : readConfigFile(configFile);
  }

  /** Reads, validates and applies; every outcome is logged here, once. */
  async #reload(options: BalancerOptions | undefined): Promise<ReloadSummary> {
    let summary: ReloadSummary;
    try {
      this.#p.assertOpen();
      const next = await validateOptions(options ?? (await this.#readConfigFile()));
      this.#p.discovery.hold();
      try {
        summary = await this.#apply(next);
      } finally {
        await this.#p.discovery.release();
      }
      // Entries added or changed are resolved before the reload answers, as at start.
      const dns = await this.#p.discovery.reconcile();
      if (Object.values(dns).some((list) => list.length > 0)) summary = { ...summary, dnsEntries: dns };
    } catch (err) {
      this.#rejected(err);
      throw err;
    }
    // One line: what changed, and which settings wait for a restart (a warning then, to be seen).
    const line = { ...summary, file: this.#p.configFile ?? undefined };
    if (summary.needsRestart.length > 0) this.#p.log.warn(line, 'reload applied');
    else this.#p.log.info(line, 'reload applied');
    const pending = this.#pending;
    this.#pending = [];
    for (const emit of pending) emit();
    this.#p.events.emit('reload', summary);
    return summary;
  }

  /** The running config with each listener's backends as the registry holds them now. */
  #runningConfig(): BalancerConfig {
    const { registry, listeners } = this.#p;
    const config = this.#p.config();
    const running = config.listeners.map((l) => {
      const s = listeners.get(l.name);
      // Backends a DNS entry found belong to the entry, not to the file's list: the plan leaves
      // them to the discovery's reconcile.
      return s ? { ...s.config, backends: registry.list(s.slot).filter((b) => b.entry === undefined) } : l;
    });
    return { ...config, listeners: running };
  }

  async #apply(next: BalancerConfig): Promise<ReloadSummary> {
    // Everything that can fail happens before the first change: the config was validated (and
    // its host names resolved), and now every new listener opens. If one cannot, the ones already
    // opened close again and nothing else has changed.
    this.#pending = [];
    const opened: ListenerSlot[] = [];
    try {
      for (const l of planReload(this.#runningConfig(), next).addedListeners) opened.push(await this.#openListener(l));
    } catch (err) {
      await this.#closeOpened(opened);
      throw err;
    }
    // The plan is made now, from what runs at this moment, and applied without a pause: an admin
    // change that ran while the listeners opened is part of what it reconciles.
    const previous = this.#p.config();
    const plan = planReload(this.#runningConfig(), next, previous);
    const leaving = plan.removedListeners.map((l) => this.#p.listeners.get(l.name)).filter((s) => s !== undefined);
    const keptSlots = new Set(plan.keptListeners.map((k) => this.#p.listeners.get(k.after.name)!.slot));
    const snapshot = this.#p.registry.list().filter((b) => keptSlots.has(b.slot));
    let summary: ReloadSummary;
    try {
      summary = this.#applyPlan(plan, next, opened);
      // The engine takes the new tables, or refuses them (then nothing may stay changed).
      await this.#p.sync.flush();
    } catch (err) {
      this.#pending = [];
      this.#rollBack(previous, snapshot, keptSlots, opened, leaving, plan.accessLogChanged);
      await this.#p.sync.flush().catch((e: unknown) => this.#p.log.error({ err: (e as Error).message }, 'reload roll-back: the engine refused the previous tables too'));
      throw err;
    }
    // Flows accepted from now on use a kept listener's new PROXY protocol settings; open ones keep theirs.
    await Promise.all(plan.keptListeners.filter((k) => k.proxyChanged).map((k) => this.#p.engine.setListenerProxy(this.#p.listeners.get(k.after.name)!.slot, nativeProxySettings(k.after))));
    // The same for access lists and limits: admitted flows stay.
    await Promise.all(plan.keptListeners.filter((k) => k.policyChanged).map((k) => this.#p.engine.setListenerPolicy(this.#p.listeners.get(k.after.name)!.slot, nativeListenerPolicy(k.after.policy))));
    // Only now, with nothing left to fail, do removed listeners stop: that cannot be taken back.
    this.#removeListeners(leaving, next.drainTimeoutMs);
    await this.#p.sync.flush();
    if (plan.adminChanged) this.#p.restartAdmin();
    return summary;
  }

  /**
   * Undoes an applied plan: the kept listeners get back their settings and their backend records
   * exactly as they ran (same keys, so their flows are untouched, no drain pending), the new
   * listeners close, and the running config is the previous one.
   */
  #rollBack(previous: BalancerConfig, snapshot: BackendRecord[], keptSlots: Set<number>, opened: ListenerSlot[], leaving: ListenerSlot[], accessLogChanged: boolean): void {
    const { listeners, registry, backends, sync } = this.#p;
    for (const s of opened) if (listeners.get(s.config.name) === s) listeners.remove(s.config.name);
    for (const s of leaving) if (!listeners.get(s.config.name)) listeners.add(s);
    for (const l of previous.listeners) {
      const s = listeners.get(l.name);
      if (s && keptSlots.has(s.slot) && s.config.algorithm !== l.algorithm) sync.markChanged(s.slot);
      if (s && keptSlots.has(s.slot)) s.config = l;
    }
    const kept = new Set(snapshot.map((b) => b.key));
    for (const b of registry.list()) if (keptSlots.has(b.slot) && !kept.has(b.key)) backends.forget(b, null);
    for (const b of snapshot) backends.restore(b);
    this.#p.setConfig(previous);
    void this.#closeOpened(opened);
    try {
      if (accessLogChanged) this.#p.engine.setFlowLog(previous.accessLog?.sample ?? 0);
    } catch (err) {
      this.#p.log.error({ err: (err as Error).message }, 'reload roll-back: the access log setting could not be restored');
    }
  }

  /** Listeners that are gone (or moved to a new address): stop accepting, drain their flows. */
  #removeListeners(leaving: ListenerSlot[], drainMs: number): void {
    const { registry, listeners, backends, sync } = this.#p;
    for (const s of leaving) {
      void this.#p.engine.removeListener(s.slot, drainMs);
      // The engine drains the whole listener; no per-backend drain timers are needed.
      for (const b of registry.list(s.slot)) {
        backends.forget(b, null);
        this.#emitLater('backend-removed', { listener: b.listener, backend: b.id, by: 'reload' });
      }
      if (listeners.get(s.config.name) === s) {
        listeners.remove(s.config.name);
        sync.forgetListener(s.config.name);
      }
    }
  }

  #emitLater<E extends 'backend-added' | 'backend-removed' | 'backend-state' | 'backend-weight'>(name: E, ...payload: BalancerEvents[E]): void {
    // Typed at the call; Node's emit signature cannot relate a generic name to its payload.
    const emit = this.#p.events.emit.bind(this.#p.events) as (name: E, ...args: BalancerEvents[E]) => boolean;
    this.#pending.push(() => emit(name, ...payload));
  }

  async #closeOpened(opened: ListenerSlot[]): Promise<void> {
    for (const s of opened) {
      this.#p.listeners.abandon(s.slot);
      for (const b of this.#p.registry.list(s.slot)) {
        this.#p.backends.unwatch(b);
        this.#p.registry.remove(b);
      }
      await this.#p.engine.removeListener(s.slot, 0);
    }
  }

  /** Opens a listener in a new slot, with its backends registered there. */
  async #openListener(l: ListenerConfig): Promise<ListenerSlot> {
    const { registry, listeners } = this.#p;
    // The engine gives slots in order, so the next one is known before it opens; the records go
    // there first so the listener opens with its whole table.
    const slot = listeners.slotCount;
    const records = l.backends.map((b) => registry.add(slot, l.name, b, l.health ? 'up' : 'unchecked'));
    const result = this.#p.engine.addListener(nativeListener(l, this.#p.dualStackFallback), registry.nativeTable(slot));
    if (!('slot' in result)) {
      for (const r of records) registry.remove(r);
      registry.markSent(slot);  // the engine has no such slot: nothing to send it
      throw listenError(l, result.errno, result.syscall);
    }
    registry.markSent(slot);  // addListener carried the whole table
    listeners.opened(result.slot, l.algorithm);
    await result.ready;
    const bound = Object.freeze({ ...l, port: result.port });
    return { slot, config: bound, address: Object.freeze({ name: l.name, address: result.ip, port: result.port, family: result.family }) };
  }

  /**
   * Applies a plan made from what runs, except removing listeners, which cannot be taken back and
   * waits until the engine has taken the new tables: whatever fails here, the roll-back undoes.
   */
  #applyPlan(plan: ReloadPlan, next: BalancerConfig, opened: ListenerSlot[]): ReloadSummary {
    const { registry, listeners, backends } = this.#p;
    const drainMs = next.drainTimeoutMs;
    const summary = {
      listenersAdded: plan.addedListeners.map((l) => l.name),
      listenersRemoved: plan.removedListeners.filter((l) => !plan.addedListeners.some((a) => a.name === l.name)).map((l) => l.name),
      ...this.#applyBackendChanges(plan.keptListeners, drainMs),
      policyChanged: plan.keptListeners.filter((k) => k.policyChanged).map((k) => `${k.after.name}: ${policyDifferences(k.before.policy, k.after.policy).join(', ')}`),
      needsRestart: plan.needsRestart,
    };
    // New listeners join the table; their backends were registered when they opened.
    for (const s of opened) {
      listeners.add(s);
      for (const b of registry.list(s.slot)) {
        backends.watch(b);
        this.#emitLater('backend-added', addedEvent(b, 'reload'));
      }
    }
    if (plan.accessLogChanged) this.#p.engine.setFlowLog(next.accessLog?.sample ?? 0);
    // Settings that need a restart keep their running values; listeners carry their bound ports.
    const running = this.#p.config() as unknown as Readonly<Record<string, unknown>>;
    const kept = Object.fromEntries(restartOnlySettings.map((key) => [key, running[key]]));
    this.#p.setConfig(Object.freeze({ ...next, listeners: Object.freeze(next.listeners.map((l) => listeners.get(l.name)!.config)), ...kept }));
    return summary;
  }

  /** Changes the settings (algorithm, health checks) and backends of listeners that stay. */
  #applyBackendChanges(kept: readonly ListenerChanges[], drainMs: number) {
    const { registry, listeners, backends, sync } = this.#p;
    const out = { backendsAdded: [] as string[], backendsRemoved: [] as string[], backendsChanged: [] as string[] };
    for (const change of kept) {
      const s = listeners.get(change.after.name)!;
      const name = change.after.name;
      s.config = Object.freeze({ ...change.after, port: s.address.port });
      if (change.algorithmChanged) sync.markChanged(s.slot);
      if (change.healthChanged) {
        for (const b of registry.list(s.slot)) {
          backends.unwatch(b);
          backends.watch(registry.update(b, { health: change.after.health ? 'up' : 'unchecked', healthReason: null }));
        }
      }
      for (const b of change.backends.removed) {
        const record = registry.get(s.slot, b.id);
        if (!record) continue;
        backends.forget(record, drainMs);
        this.#emitLater('backend-removed', { listener: name, backend: b.id, by: 'reload' });
        out.backendsRemoved.push(`${name}/${b.id}`);
      }
      for (const b of change.backends.added) {
        this.#emitLater('backend-added', addedEvent(backends.watch(registry.add(s.slot, name, b, s.config.health ? 'up' : 'unchecked')), 'reload'));
        out.backendsAdded.push(`${name}/${b.id}`);
      }
      for (const { after } of change.backends.changed) {
        const record = registry.get(s.slot, after.id);
        if (!record) continue;
        this.#changeInPlace(record, after, drainMs);
        out.backendsChanged.push(`${name}/${after.id}`);
      }
    }
    return out;
  }

  /** Gives a running backend the weight, state and address as written of `after`; returns whether any differed. */
  #changeInPlace(record: BackendRecord, after: BackendConfig, drainMs: number): boolean {
    const { registry, backends } = this.#p;
    const changed = record.weight !== after.weight || record.state !== after.state || record.address !== after.address || record.maxConnections !== after.maxConnections || record.proxyProtocol !== after.proxyProtocol;
    const event = { listener: record.listener, backend: record.id, by: 'reload' } as const;
    if (record.weight !== after.weight) this.#emitLater('backend-weight', { ...event, from: record.weight, to: after.weight });
    if (record.state !== after.state) this.#emitLater('backend-state', { ...event, from: record.state, to: after.state });
    if (record.weight !== after.weight) record = backends.changeWeight(record, after.weight);
    // A new limit or PROXY protocol setting applies to the flows that connect after the reload.
    record = registry.update(record, { address: after.address, maxConnections: after.maxConnections, proxyProtocol: after.proxyProtocol });
    if (record.state !== after.state) backends.changeState(record, after.state, drainMs, 'reload');
    return changed;
  }
}
