// Drain timers: a backend that leaves the tables (removed, drained, down, in maintenance) keeps
// its open flows for a drain timeout; when it runs out, the flows still open are closed. One timer
// per draining backend, keyed by its engine key; a backend put back up cancels its timer.

import { realClock, type Clock } from '../clock.js';
import type { NativeEngine } from '../engine/native-types.js';
import type { Logger } from '../log.js';
import type { BackendRecord } from './registry.js';

export class DrainTimers {
  readonly #engine: NativeEngine;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #timers = new Map<number, unknown>();

  constructor(engine: NativeEngine, log: Logger, clock: Clock = realClock) {
    this.#engine = engine;
    this.#log = log;
    this.#clock = clock;
  }

  /** Closes `b`'s flows still open in `drainMs` (replacing any earlier timer for it). */
  schedule(b: BackendRecord, drainMs: number): void {
    this.cancel(b.key);
    const timer = this.#clock.setTimeout(() => {
      this.#timers.delete(b.key);
      void this.#engine.closeFlows({ backendKey: b.key }).then((closed) => {
        if (closed > 0) this.#log.warn({ listener: b.listener, backend: b.id, closed }, 'drain timeout: closed the flows still open');
      });
    }, drainMs);
    this.#timers.set(b.key, timer);
  }

  cancel(key: number): void {
    if (this.#timers.has(key)) this.#clock.clearTimeout(this.#timers.get(key));
    this.#timers.delete(key);
  }

  /** Stops every timer (the balancer is closing and drains the engine as a whole). */
  clear(): void {
    for (const t of this.#timers.values()) this.#clock.clearTimeout(t);
    this.#timers.clear();
  }
}
