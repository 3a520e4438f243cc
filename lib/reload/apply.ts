// Applying a reload: a new config is validated and compared with the running one (plan.ts), then
// applied in an order that never leaves the balancer half-changed. New listeners open first, and
// if one cannot, the ones already opened close again and nothing else has changed; only then do
// removed listeners stop and drain, and kept listeners change their backends in place. Settings
// that need a restart keep their running values and are reported. One reload runs at a time.

import type { EventEmitter } from 'node:events';
import { readConfigFile } from '../config/config-file.js';
import { restartOnlySettings } from '../config/options.js';
import { validateOptions } from '../config/validate.js';
import type { NativeEngine } from '../engine/native-types.js';
import { listenError, nativeListener, nativeProxySettings } from '../engine/open.js';
import { Lb4Error } from '../errors.js';
import type { Logger } from '../log.js';
import type { BackendControl } from '../registry/backends.js';
import type { EngineSync } from '../registry/engine-sync.js';
import type { ListenerSlot, ListenerTable } from '../registry/listeners.js';
import type { BackendRecord, BackendRegistry } from '../registry/registry.js';
import type { BackendConfig, BalancerConfig, BalancerEvents, BalancerOptions, ListenerConfig, ReloadSummary } from '../types.js';
import { planReload, type ReloadPlan } from './plan.js';

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
    const run = previous.catch(() => {}).then(async () => this.#reload(options ?? (await this.#readConfigFile())));
    this.#running = run;
    void run
      .finally(() => {
        if (this.#running === run) this.#running = null;
      })
      .catch(() => {});
    return run;
  }

  #rejected(err: unknown): void {
    this.#p.log.error({ err: (err as Error).message }, 'reload rejected: the running config keeps serving');
  }

  async #readConfigFile(): Promise<BalancerOptions> {
    const { configFile, readConfig } = this.#p;
    if (!configFile) throw new Lb4Error('LB4_RELOAD_FAILED', 'lb4 was started without a config file, so there is nothing to re-read: give the new options');
    try {
      return await (readConfig ? readConfig() : readConfigFile(configFile));
    } catch (err) {
      this.#rejected(err);
      throw err;
    }
  }

  async #reload(options: BalancerOptions): Promise<ReloadSummary> {
    this.#p.assertOpen();
    let next: BalancerConfig;
    try {
      next = await validateOptions(options);
    } catch (err) {
      this.#rejected(err);
      throw err;
    }
    const plan = planReload(this.#p.config(), next);
    // Open new listeners first: if one cannot open, nothing has changed yet.
    const opened: ListenerSlot[] = [];
    try {
      for (const l of plan.addedListeners) opened.push(await this.#openListener(l));
    } catch (err) {
      for (const s of opened) {
        this.#p.listeners.abandon(s.slot);
        await this.#p.engine.removeListener(s.slot, 0);
        for (const b of this.#p.registry.list(s.slot)) this.#p.registry.remove(b);
      }
      this.#rejected(err);
      throw err;
    }
    const { summary, proxyUpdates } = this.#applyPlan(plan, next, opened);
    await this.#p.sync.flush();
    await Promise.all(proxyUpdates);
    this.#p.log.info(summary, 'reload applied');
    if (summary.needsRestart.length > 0) this.#p.log.warn({ settings: summary.needsRestart }, 'these settings changed but only take effect on a restart');
    this.#p.events.emit('reload', summary);
    return summary;
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

  #applyPlan(plan: ReloadPlan, next: BalancerConfig, opened: ListenerSlot[]): { summary: ReloadSummary; proxyUpdates: Promise<void>[] } {
    const { registry, listeners, backends, sync } = this.#p;
    const summary = {
      listenersAdded: plan.addedListeners.map((l) => l.name),
      listenersRemoved: plan.removedListeners.filter((l) => !plan.addedListeners.some((a) => a.name === l.name)).map((l) => l.name),
      backendsAdded: [] as string[],
      backendsRemoved: [] as string[],
      backendsChanged: [] as string[],
      needsRestart: plan.needsRestart,
    };
    const drainMs = next.drainTimeoutMs;
    const proxyUpdates: Promise<void>[] = [];
    // Listeners that are gone (or moved to a new address): stop accepting, drain their flows.
    for (const l of plan.removedListeners) {
      const s = listeners.get(l.name);
      if (!s) continue;
      void this.#p.engine.removeListener(s.slot, drainMs);
      // The engine drains the whole listener; no per-backend drain timers are needed.
      for (const b of registry.list(s.slot)) backends.forget(b, null);
      listeners.remove(l.name);
      sync.forgetListener(l.name);
    }
    // New listeners take their place; their backends were registered when they opened.
    for (const s of opened) {
      listeners.add(s);
      for (const b of registry.list(s.slot)) backends.watch(b);
    }
    // Listeners that stay: change their backends in place.
    for (const change of plan.keptListeners) {
      const s = listeners.get(change.after.name)!;
      s.config = Object.freeze({ ...change.after, port: s.address.port });
      if (change.algorithmChanged) sync.markChanged(s.slot);
      // Flows accepted from now on use the new PROXY protocol settings; open ones keep theirs.
      if (change.proxyChanged) proxyUpdates.push(this.#p.engine.setListenerProxy(s.slot, nativeProxySettings(change.after)));
      const name = change.after.name;
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
        summary.backendsRemoved.push(`${name}/${b.id}`);
      }
      for (const b of change.backends.added) {
        // The plan compares config with config, but the API may have added a backend of this id
        // since: at the same address it stays, with the file's settings; at another, it goes.
        const running = registry.get(s.slot, b.id);
        if (running && running.ip === b.ip && running.port === b.port) {
          if (this.#changeInPlace(running, b, drainMs)) summary.backendsChanged.push(`${name}/${b.id}`);
          continue;
        }
        if (running) {
          backends.forget(running, drainMs);
          summary.backendsRemoved.push(`${name}/${b.id}`);
        }
        backends.watch(registry.add(s.slot, name, b, change.after.health ? 'up' : 'unchecked'));
        summary.backendsAdded.push(`${name}/${b.id}`);
      }
      for (const { after } of change.backends.changed) {
        const record = registry.get(s.slot, after.id);
        if (!record) continue;
        this.#changeInPlace(record, after, drainMs);
        summary.backendsChanged.push(`${name}/${after.id}`);
      }
    }
    if (plan.accessLogChanged) this.#p.engine.setFlowLog(next.accessLog?.sample ?? 0);
    // Settings that need a restart keep their running values; listeners carry their bound ports.
    const running = this.#p.config() as unknown as Readonly<Record<string, unknown>>;
    const kept = Object.fromEntries(restartOnlySettings.map((key) => [key, running[key]]));
    this.#p.setConfig(Object.freeze({ ...next, listeners: Object.freeze(next.listeners.map((l) => listeners.get(l.name)!.config)), ...kept }));
    if (plan.adminChanged) this.#p.restartAdmin();
    return { summary, proxyUpdates };
  }

  /** Gives a running backend the weight, state and address as written of `after`; returns whether any differed. */
  #changeInPlace(record: BackendRecord, after: BackendConfig, drainMs: number): boolean {
    const { registry, backends } = this.#p;
    const changed = record.weight !== after.weight || record.state !== after.state || record.address !== after.address;
    if (record.weight !== after.weight) record = backends.changeWeight(record, after.weight);
    record = registry.update(record, { address: after.address });
    if (record.state !== after.state) backends.changeState(record, after.state, drainMs, 'reload');
    return changed;
  }
}
