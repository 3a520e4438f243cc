// Passive health: the data plane counts connect failures per backend and reports them in
// batches, each with the failures that came after its last success. A backend that fails
// `threshold` connects in a row is marked down; only active checks bring it back. A UDP backend
// without active checks is marked down too (a refused datagram is lost, where a refused TCP
// connect is retried on another backend), and tried again after a hold time: one more refusal
// then marks it down again at once.

import { realClock, type Clock } from '../clock.js';

/** Consecutive connect failures, per backend key. */
export class ConsecutiveFailures {
  #counts = new Map<number, number>();

  /**
   * Adds one report; returns the consecutive failures so far. A report with successes restarts
   * the count from the failures that followed the last success.
   */
  record(key: number, report: { failures: number; successes: number; trailingFailures: number }): number {
    const count = report.successes > 0 ? report.trailingFailures : (this.#counts.get(key) ?? 0) + report.failures;
    if (count === 0) this.#counts.delete(key);
    else this.#counts.set(key, count);
    return count;
  }

  reset(key: number): void {
    this.#counts.delete(key);
  }

  /** Sets the count, so that the next failure takes it to `count + 1`. */
  set(key: number, count: number): void {
    if (count <= 0) this.#counts.delete(key);
    else this.#counts.set(key, count);
  }
}

/**
 * One timer per backend key: when an unchecked UDP backend was marked down by passive health,
 * the time it is tried again. Nothing else could bring such a backend back: it has no active
 * checks, and a down backend gets no datagram whose refusal or answer would tell.
 */
export class PassiveRetryTimers {
  readonly #clock: Clock;
  readonly #timers = new Map<number, unknown>();

  constructor(clock: Clock = realClock) {
    this.#clock = clock;
  }

  /** Calls `retry` in `ms` (replacing any earlier timer for `key`). */
  schedule(key: number, ms: number, retry: () => void): void {
    this.cancel(key);
    this.#timers.set(
      key,
      this.#clock.setTimeout(() => {
        this.#timers.delete(key);
        retry();
      }, ms),
    );
  }

  cancel(key: number): void {
    if (this.#timers.has(key)) this.#clock.clearTimeout(this.#timers.get(key));
    this.#timers.delete(key);
  }

  /** Stops every timer (the balancer is closing). */
  clear(): void {
    for (const key of [...this.#timers.keys()]) this.cancel(key);
  }
}
