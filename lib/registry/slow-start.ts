// Slow start: a backend that comes back (health up again, or the operator puts it back up)
// gets a share of new flows that grows with time, so a cold cache or a JIT that is still warming
// up is not hit with its full share at once.

import { realClock, type Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { BackendRecord, BackendRegistry } from './registry.js';

/** Steps per ramp: the weight is raised this many times over the slow-start period. */
export const slowStartSteps = 10;

/**
 * The weight to use `elapsedMs` into a ramp of `periodMs` towards `weight`: at least 1 (a
 * weight of 0 would take no flows at all), at most `weight`, growing linearly.
 */
export function slowStartWeight(weight: number, elapsedMs: number, periodMs: number): number {
  if (weight === 0 || periodMs <= 0 || elapsedMs >= periodMs) return weight;
  const share = Math.max(0, elapsedMs) / periodMs;
  return Math.max(1, Math.min(weight, Math.ceil(weight * share)));
}

/**
 * The ramps in progress, one timer per backend key. Each step raises the backend's effective
 * weight in the registry and has the change sent to the engine.
 */
export class SlowStart {
  readonly #registry: BackendRegistry;
  readonly #flush: () => Promise<void>;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #timers = new Map<number, unknown>();

  constructor(registry: BackendRegistry, flush: () => Promise<void>, log: Logger, clock: Clock = realClock) {
    this.#registry = registry;
    this.#flush = flush;
    this.#log = log;
    this.#clock = clock;
  }

  /** Starts ramping `b` up over `periodMs`; returns the record with its first, lowered weight. */
  start(b: BackendRecord, periodMs: number): BackendRecord {
    this.stop(b.key);
    const started = this.#clock.now();
    const step = () => {
      const current = this.#registry.byKey(b.key);
      if (!current || !this.#registry.has(current)) return;
      const weight = slowStartWeight(current.weight, this.#clock.now() - started, periodMs);
      this.#registry.update(current, { effectiveWeight: weight });
      void this.#flush();
      if (weight < current.weight) {
        this.#timers.set(b.key, this.#clock.setTimeout(step, periodMs / slowStartSteps));
      } else {
        this.#timers.delete(b.key);
        this.#log.info({ listener: current.listener, backend: current.id, weight }, 'slow start finished');
      }
    };
    const first = this.#registry.update(b, { effectiveWeight: slowStartWeight(b.weight, 0, periodMs) });
    this.#timers.set(b.key, this.#clock.setTimeout(step, periodMs / slowStartSteps));
    this.#log.info({ listener: b.listener, backend: b.id, slowStartMs: periodMs }, 'slow start');
    return first;
  }

  /** Ends a ramp, if any, and gives the backend its whole weight back. */
  stop(key: number): void {
    if (this.#timers.has(key)) this.#clock.clearTimeout(this.#timers.get(key));
    this.#timers.delete(key);
    const b = this.#registry.byKey(key);
    if (b && b.effectiveWeight !== b.weight) this.#registry.update(b, { effectiveWeight: b.weight });
  }

  /** Stops every ramp where it is (the balancer is closing). */
  clear(): void {
    for (const t of this.#timers.values()) this.#clock.clearTimeout(t);
    this.#timers.clear();
  }
}
