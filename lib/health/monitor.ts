// Schedules active health checks for many targets and turns their results into up/down
// transitions (rise/fall).
//
// Scheduling has to stay cheap at thousands of targets, so there is no timer per target or per
// check: every target sits in one min-heap, keyed by when its next check starts or, while a check
// is in flight, by that check's deadline, and one timer is armed for the top of the heap. A check
// start and its result each move the target's key in place (one sift), never remove and re-add it.
//
// Wake-ups are rounded up to a grid of 5 % of the interval (at most 50 ms), so the targets due
// within one grid step start together from one timer callback and their connects complete in the
// same pass of the event loop. Measured with bench/health-check-cost.mjs (1,000 targets every
// second), a 10 ms grid cost about half as much CPU again as a 50 ms one: each pass of the event
// loop has a fixed cost (epoll_wait, timer and tick queue processing) that batching shares. The
// rounding is well within the default jitter, and a deadline fires at most one grid step late
// (the result's durationMs says exactly when).
//
// Each target's checks are due `interval` apart (from due time to due time, +- jitter), so the
// rate neither drifts with the checks' durations nor with the rounding; the first check of a target
// is due at a random point of its first interval, so targets added together spread out at once.

import { EventEmitter } from 'node:events';
import { realClock, type Clock } from '../clock.js';
import { Lb4Error } from '../errors.js';
import { sameHealthConfig, type HealthConfig } from './check-options.js';
import { CheckProbe, type CheckResult, type CheckTarget } from './checkers.js';
import { initialRiseFall, riseFall, type RiseFallState } from './rise-fall.js';

/**
 * Where the monitor reads time and sets its timer: real timers by default; tests pass a clock
 * they advance by hand. `now()` is in milliseconds (epoch-based for the default clock).
 */
export type HealthClock = Clock;

/** A check result and when it came (`at`, on the monitor's clock). */
export interface TimedCheckResult extends CheckResult {
  readonly at: number;
}

/** What the checks say of one target. */
export interface HealthStatus {
  readonly up: boolean;
  /** Results in a row towards the next transition: failures while up, passes while down. */
  readonly consecutive: number;
  readonly lastResult?: TimedCheckResult;
}

/** A target went up or down. `reason` quotes the last result, e.g. `3 consecutive failures: connection refused (ECONNREFUSED)`. */
export interface HealthTransition {
  readonly id: string;
  readonly up: boolean;
  readonly reason: string;
}

/** One check finished, passed or failed. */
export interface HealthResultEvent {
  readonly id: string;
  readonly result: TimedCheckResult;
}

/** The monitor's events. A listener may call any method of the monitor, remove() included. */
export interface HealthMonitorEvents {
  transition: [event: HealthTransition];
  result: [event: HealthResultEvent];
}

/** Options of {@link HealthMonitor}; both exist for tests. */
export interface HealthMonitorOptions {
  /** Default: real time, with an unref()'d timer so health checks never keep the process alive. */
  clock?: HealthClock;
  /** Uniform in [0, 1): spreads first checks and jitter. Default Math.random. */
  random?: () => number;
}

/** The coarsest wake-up grid (ms); finer for intervals under 1 s (5 % of the interval). */
const maxGridMs = 50;

class Entry {
  /** Heap key: when the next check is due, or the deadline of the check in flight. */
  at = 0;
  /** Position in the heap; -1 when not in it. */
  index = -1;
  /** When the check in flight (or the last one) was due, before rounding to the grid. */
  due = 0;
  /** Wake-up grid for this target's checks (ms). */
  grid = maxGridMs;
  inFlight = false;
  lastResult: TimedCheckResult | undefined = undefined;
  readonly id: string;
  target: CheckTarget;
  config: HealthConfig;
  state: RiseFallState;
  readonly probe: CheckProbe;

  constructor(id: string, target: CheckTarget, config: HealthConfig, state: RiseFallState, onResult: (entry: Entry, result: CheckResult) => void, now: () => number) {
    this.id = id;
    this.target = target;
    this.config = config;
    this.state = state;
    this.grid = gridFor(config);
    // One closure per target, made once: each check reuses it.
    this.probe = new CheckProbe((result) => onResult(this, result), { now, unref: true });
  }
}

function gridFor(config: HealthConfig): number {
  return Math.max(1, Math.min(maxGridMs, config.interval / 20));
}

function transitionReason(up: boolean, count: number, reason: string): string {
  if (count === 1) return `check ${up ? 'passed' : 'failed'}: ${reason}`;
  return `${count} consecutive ${up ? 'passes' : 'failures'}: ${reason}`;
}

/**
 * Runs active health checks for any number of targets and reports results and up/down
 * transitions. Targets are identified by a string id (the registry's backend key). Never blocks
 * the event loop; at most one check per target is in flight.
 *
 * @example
 * ```ts
 * const monitor = new HealthMonitor();
 * monitor.on('transition', ({ id, up, reason }) => log.info({ id, reason }, up ? 'backend up' : 'backend down'));
 * monitor.add('web-1', { ip: '10.0.0.5', port: 80 }, validateHealthConfig('http:/healthz', 'health'), 'up');
 * // ...
 * await monitor.close();
 * ```
 */
export class HealthMonitor extends EventEmitter<HealthMonitorEvents> {
  readonly #clock: HealthClock;
  readonly #random: () => number;
  readonly #now: () => number;
  readonly #targets = new Map<string, Entry>();
  readonly #heap: Entry[] = [];
  #timer: unknown = null;
  /** The grid time #timer is armed for; Infinity when unarmed. */
  #timerAt = Infinity;
  #closing: Promise<void> | null = null;
  /** Inside #fire, which arms the timer once at its end. */
  #firing = false;
  readonly #onResultBound = (entry: Entry, result: CheckResult): void => this.#onResult(entry, result);

  constructor(options: HealthMonitorOptions = {}) {
    super();
    const clock = options.clock ?? realClock;
    this.#clock = clock;
    this.#random = options.random ?? Math.random;
    this.#now = () => clock.now();
  }

  /** How many targets are checked. */
  get size(): number {
    return this.#targets.size;
  }

  /**
   * Starts checking a target. Its first check starts at a random point within one interval.
   *
   * @param id - unique among the monitor's targets.
   * @param target - where to connect (`config.address`/`config.port` override it).
   * @param config - a validated config ({@link validateHealthConfig}).
   * @param initial - the state before any check: an `up` target needs `fall` failures to go
   *   down, a `down` one `rise` passes to come up.
   * @throws Lb4Error `LB4_DUPLICATE_BACKEND` if `id` is checked already, `LB4_CLOSED` after close().
   */
  add(id: string, target: CheckTarget, config: HealthConfig, initial: 'up' | 'down' = 'up'): void {
    if (this.#closing) throw new Lb4Error('LB4_CLOSED', 'the health monitor is closed');
    if (this.#targets.has(id)) throw new Lb4Error('LB4_DUPLICATE_BACKEND', `health checks for "${id}" are running already`);
    const entry = new Entry(id, { ip: target.ip, port: target.port }, config, initialRiseFall(initial === 'up'), this.#onResultBound, this.#now);
    this.#targets.set(id, entry);
    this.#scheduleFirst(entry);
  }

  /**
   * Changes a target's address or check. A change abandons the check in flight, keeps up/down,
   * restarts the count towards the next transition and spreads the next check within the new
   * interval. The same target and an equal config change nothing.
   *
   * @throws Lb4Error `LB4_UNKNOWN_BACKEND` if `id` is not checked.
   */
  update(id: string, target: CheckTarget, config: HealthConfig): void {
    const entry = this.#targets.get(id);
    if (!entry) throw new Lb4Error('LB4_UNKNOWN_BACKEND', `no health checks for "${id}"`);
    if (entry.target.ip === target.ip && entry.target.port === target.port && sameHealthConfig(entry.config, config)) return;
    this.#stop(entry);
    entry.target = { ip: target.ip, port: target.port };
    entry.config = config;
    entry.grid = gridFor(config);
    entry.state = initialRiseFall(entry.state.up);
    this.#scheduleFirst(entry);
  }

  /** Stops checking a target; a check in flight is abandoned and reports nothing. Returns whether it was checked. */
  remove(id: string): boolean {
    const entry = this.#targets.get(id);
    if (!entry) return false;
    this.#targets.delete(id);
    this.#stop(entry);
    this.#arm();
    return true;
  }

  /**
   * Records that something else (passive health) took the target down: it now needs `rise`
   * passes to come up. Emits no 'transition': the caller made the decision and reports it.
   */
  markDown(id: string): void {
    const entry = this.#targets.get(id);
    if (entry) entry.state = initialRiseFall(false);
  }

  /** What the checks say of a target, or undefined if it is not checked. */
  status(id: string): HealthStatus | undefined {
    const entry = this.#targets.get(id);
    if (!entry) return undefined;
    const { up, consecutive } = entry.state;
    return entry.lastResult ? { up, consecutive, lastResult: entry.lastResult } : { up, consecutive };
  }

  /**
   * Stops every check: no timer is left, checks in flight are abandoned (no events), and the
   * promise resolves once their sockets are closed. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = Infinity;
    const closed = [...this.#targets.values()].map((entry) => entry.probe.close());
    this.#targets.clear();
    for (const entry of this.#heap) entry.index = -1;
    this.#heap.length = 0;
    this.#closing = Promise.all(closed).then(() => {});
    return this.#closing;
  }

  // --- scheduling --------------------------------------------------------------------------

  #scheduleFirst(entry: Entry): void {
    entry.at = entry.due = this.#clock.now() + this.#random() * entry.config.interval;
    this.#push(entry);
    this.#arm();
  }

  #stop(entry: Entry): void {
    if (entry.inFlight) entry.probe.cancel();
    entry.inFlight = false;
    this.#unlink(entry);
  }

  /** Arms the timer for the top of the heap, unless it is armed for that time or earlier already. */
  #arm(): void {
    if (this.#closing || this.#firing) return;
    const top = this.#heap[0];
    if (top === undefined) {
      if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
      this.#timer = null;
      this.#timerAt = Infinity;
      return;
    }
    const wake = Math.ceil(top.at / top.grid) * top.grid;
    if (this.#timer !== null) {
      if (this.#timerAt <= wake) return;
      this.#clock.clearTimeout(this.#timer);
    }
    this.#timerAt = wake;
    this.#timer = this.#clock.setTimeout(this.#fire, Math.max(0, wake - this.#clock.now()));
  }

  readonly #fire = (): void => {
    // Real timers may fire a little before the grid time by the monotonic clock; the timer's own
    // time is the floor, so whatever it was armed for always runs.
    const now = Math.max(this.#clock.now(), this.#timerAt);
    this.#timer = null;
    this.#timerAt = Infinity;
    this.#firing = true;
    try {
      this.#runDue(now);
    } finally {
      // Even when an event listener throws out of #runDue, the checks go on.
      this.#firing = false;
      this.#arm();
    }
  };

  #runDue(now: number): void {
    const heap = this.#heap;
    while (heap.length > 0 && heap[0].at <= now && !this.#closing) {
      const entry = heap[0];
      if (entry.inFlight) {
        // The result (a timeout) comes back synchronously through #onResult, which moves the
        // entry to its next due time.
        entry.probe.timeout();
        // Never spin on an entry whose probe had, against expectations, nothing to time out.
        if (entry.inFlight && heap[0] === entry) this.#onResult(entry, { ok: false, reason: 'check lost', durationMs: 0 });
        continue;
      }
      entry.inFlight = true;
      entry.due = entry.at;
      this.#rekey(entry, now + entry.config.timeout);
      entry.probe.start(entry.target, entry.config);
    }
  }

  #onResult(entry: Entry, result: CheckResult): void {
    // A result that outlived its target (removed, updated or closed) is dropped.
    if (!entry.inFlight || this.#targets.get(entry.id) !== entry) return;
    entry.inFlight = false;
    const now = this.#clock.now();
    const timed: TimedCheckResult = { ok: result.ok, reason: result.reason, durationMs: result.durationMs, at: now };
    entry.lastResult = timed;
    const step = riseFall(entry.state, result.ok, entry.config);
    entry.state = step.state;
    const { interval, jitter } = entry.config;
    // From due time to due time; after a stall (a blocked event loop), one check at once and
    // then the normal pace, not a burst that catches up on the missed ones.
    entry.due = Math.max(now, entry.due + interval * (1 + jitter * (2 * this.#random() - 1)));
    this.#rekey(entry, entry.due);
    this.#arm();
    // State first, events last: a listener sees the new state and may change the monitor.
    this.emit('result', { id: entry.id, result: timed });
    if (step.transition !== undefined) {
      const up = step.transition === 'up';
      this.emit('transition', { id: entry.id, up, reason: transitionReason(up, up ? entry.config.rise : entry.config.fall, result.reason) });
    }
  }

  // --- the heap: a binary min-heap on `at`, each entry knowing its index ----------------------

  #push(entry: Entry): void {
    entry.index = this.#heap.length;
    this.#heap.push(entry);
    this.#siftUp(entry.index);
  }

  /** Changes an entry's key where it stands. */
  #rekey(entry: Entry, at: number): void {
    const before = entry.at;
    entry.at = at;
    if (at > before) this.#siftDown(entry.index);
    else this.#siftUp(entry.index);
  }

  #unlink(entry: Entry): void {
    const i = entry.index;
    if (i < 0) return;
    entry.index = -1;
    const last = this.#heap.pop()!;
    if (last === entry) return;
    this.#heap[i] = last;
    last.index = i;
    this.#siftDown(i);
    this.#siftUp(last.index);
  }

  #siftUp(i: number): void {
    const heap = this.#heap;
    const entry = heap[i];
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent].at <= entry.at) break;
      heap[i] = heap[parent];
      heap[i].index = i;
      i = parent;
    }
    heap[i] = entry;
    entry.index = i;
  }

  #siftDown(i: number): void {
    const heap = this.#heap;
    const entry = heap[i];
    const n = heap.length;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && heap[child + 1].at < heap[child].at) child++;
      if (heap[child].at >= entry.at) break;
      heap[i] = heap[child];
      heap[i].index = i;
      i = child;
    }
    heap[i] = entry;
    entry.index = i;
  }
}
