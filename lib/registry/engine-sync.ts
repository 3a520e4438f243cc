// The one place that turns registry changes into engine calls. Everything that changes a backend
// (the API, health, slow start, drains, reloads) changes the registry, which notes the listener
// slots it touched, then calls `flush()`; this module decides what the engine is sent.
//
// The engine takes one listener's table at a time, so a flush sends only the listeners whose
// backends (or algorithm) changed: a change to one listener rebuilds nothing else.

import { NativeAlgorithm, type NativeEngine } from '../engine/native-types.js';
import type { Logger } from '../log.js';
import type { ListenerTable } from './listeners.js';
import { backendInfo, type BackendRegistry } from './registry.js';

export class EngineSync {
  readonly #engine: NativeEngine;
  readonly #registry: BackendRegistry;
  readonly #listeners: ListenerTable;
  readonly #log: Logger;
  readonly #isClosed: () => boolean;
  /** Slots whose algorithm changed (a reload), which the registry does not see. */
  readonly #changed = new Set<number>();
  /** Listeners that have no backend able to take new flows (logged once per episode). */
  readonly #withoutBackends = new Set<string>();
  /** The last call to the engine: a flush with nothing new waits for it, then it is current. */
  #last: Promise<void> = Promise.resolve();

  constructor(engine: NativeEngine, registry: BackendRegistry, listeners: ListenerTable, log: Logger, isClosed: () => boolean) {
    this.#engine = engine;
    this.#registry = registry;
    this.#listeners = listeners;
    this.#log = log;
    this.#isClosed = isClosed;
  }

  /** Marks a slot's table as changed for a reason the registry cannot see (its algorithm). */
  markChanged(slot: number): void {
    this.#changed.add(slot);
  }

  /** Forgets a listener that is gone. */
  forgetListener(name: string): void {
    this.#withoutBackends.delete(name);
  }

  /** Sends the changed tables to the engine; resolves once every worker runs the registry's current tables. */
  flush(): Promise<void> {
    if (this.#isClosed()) return Promise.resolve();
    const changed = this.#registry.takeChanged();
    for (const slot of this.#changed) changed.add(slot);
    this.#changed.clear();
    this.#logUsable();
    if (changed.size === 0) return this.#last.catch(() => {});
    // A changed slot's table comes from the registry: a removed listener's backends are
    // forgotten (an empty table; its flows keep the backends they have), and a listener still
    // opening during a reload already has its backends there. Workers run commands in order, so
    // once the last of these resolves every one before it has run too.
    const sent = [...changed].map((slot) => this.#engine.applyBackends(slot, this.#registry.nativeTable(slot), NativeAlgorithm[this.#listeners.algorithmOf(slot)]));
    this.#last = Promise.all(sent).then(() => undefined);
    return this.#last;
  }

  /** Logs listeners that lose (or regain) every backend able to take new flows. */
  #logUsable(): void {
    for (const s of this.#listeners.all()) {
      const usable = this.#registry.list(s.slot).some((b) => backendInfo(b).takesNewFlows);
      const name = s.config.name;
      if (!usable && !this.#withoutBackends.has(name)) {
        this.#withoutBackends.add(name);
        this.#log.error({ listener: name }, 'no backend can take new flows: clients are closed at once until one comes back');
      } else if (usable && this.#withoutBackends.delete(name)) {
        this.#log.info({ listener: name }, 'a backend can take new flows again');
      }
    }
  }
}
