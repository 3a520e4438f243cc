// Where the control plane reads time and sets its timers: drain timeouts, slow-start steps and
// health-check scheduling all go through one Clock. Real time by default; a test passes a clock
// it advances by hand (BalancerDeps.clock), so a ten-second drain runs in no time and in a known
// order.

import { performance } from 'node:perf_hooks';

export interface Clock {
  /** Milliseconds; epoch-based for the real clock. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const timeOrigin = performance.timeOrigin;

/**
 * Real time. Its timers are unref()'d: a drain, a ramp or a health check never keeps the process
 * alive by itself (a running balancer has its own handle for that).
 */
export const realClock: Clock = {
  now: () => timeOrigin + performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};
