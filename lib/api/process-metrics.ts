// The process families every Prometheus client exports (process_*, named as the Prometheus
// client libraries name them, so existing dashboards work) and Node's event-loop lag, for the
// control plane: a lagging event loop delays health checks, drains and the admin API, while the
// data plane's worker threads keep forwarding.

import { readdirSync, readFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';
import { writeFamily } from './exposition.js';

/** The event-loop delay monitor's sampling interval. */
const lagResolutionMs = 10;

/** Family names this file writes, so no counter family can take one. */
export const processMetricFamilies: readonly string[] = Object.freeze([
  'process_cpu_seconds_total',
  'process_resident_memory_bytes',
  'process_open_fds',
  'process_max_fds',
  'process_start_time_seconds',
  'nodejs_eventloop_lag_seconds',
  'nodejs_eventloop_lag_max_seconds',
  'nodejs_eventloop_lag_p99_seconds',
]);

// The soft limit on descriptors, from /proc/self/limits ("Max open files  1024  4096  files");
// null when unlimited or unreadable.
function maxFds(): number | null {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = Number(line?.slice('Max open files'.length).trim().split(/\s+/)[0]);
    return Number.isFinite(soft) ? soft : null;
  } catch {
    return null;
  }
}

function openFds(): number | null {
  try {
    // The listing's own descriptor on /proc/self/fd is among the entries.
    return readdirSync('/proc/self/fd').length - 1;
  } catch {
    return null;
  }
}

/**
 * Samples the event loop's delay from creation to close(); each write() reports the lag seen
 * since the previous one (then starts over), so the gauges describe the last scrape interval.
 */
export class ProcessMetrics {
  readonly #lag: IntervalHistogram = monitorEventLoopDelay({ resolution: lagResolutionMs });

  constructor() {
    this.#lag.enable();
  }

  /** Stops sampling the event loop. Idempotent. */
  close(): void {
    this.#lag.disable();
  }

  write(out: string[]): void {
    const cpu = process.cpuUsage();
    writeFamily(out, 'process_cpu_seconds_total', 'counter', 'User and system CPU time of the whole process (data-plane workers included), in seconds', [{ labels: [], value: (cpu.user + cpu.system) / 1e6 }]);
    writeFamily(out, 'process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes', [{ labels: [], value: process.memoryUsage.rss() }]);
    const open = openFds();
    if (open !== null) writeFamily(out, 'process_open_fds', 'gauge', 'Open file descriptors', [{ labels: [], value: open }]);
    const max = maxFds();
    if (max !== null) writeFamily(out, 'process_max_fds', 'gauge', 'The soft limit on open file descriptors', [{ labels: [], value: max }]);
    writeFamily(out, 'process_start_time_seconds', 'gauge', 'When the process started (Unix time)', [{ labels: [], value: performance.timeOrigin / 1000 }]);
    // Without a sample yet (a scrape right after the last) the lag is 0, not NaN.
    const sampled = this.#lag.count > 0;
    // The histogram times a timer of `lagResolutionMs`: an idle loop reads that interval itself
    // (about 10 ms), which is no delay. Only what comes on top of it is lag.
    const seconds = (ns: number) => (sampled ? Math.max(0, ns - lagResolutionMs * 1e6) / 1e9 : 0);
    writeFamily(out, 'nodejs_eventloop_lag_seconds', 'gauge', "Mean delay of the control plane's event loop since the last scrape", [{ labels: [], value: seconds(this.#lag.mean) }]);
    writeFamily(out, 'nodejs_eventloop_lag_max_seconds', 'gauge', "Longest delay of the control plane's event loop since the last scrape", [{ labels: [], value: seconds(this.#lag.max) }]);
    writeFamily(out, 'nodejs_eventloop_lag_p99_seconds', 'gauge', "99th percentile delay of the control plane's event loop since the last scrape", [{ labels: [], value: seconds(this.#lag.percentile(99)) }]);
    this.#lag.reset();
  }
}
