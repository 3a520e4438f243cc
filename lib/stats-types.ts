// The parts of a backend's stats beyond its counters: the data plane's latency histograms and the
// registry's up/down transitions (re-exported by lib/types.ts, which holds BalancerStats).

import type { HistogramName } from './engine/native-types.js';

/** One of a backend's latency histograms, summed over every worker. */
export interface LatencyHistogram {
  /** The buckets' upper bounds in seconds, ascending. */
  readonly bounds: readonly number[];
  /** Observations per bucket (not cumulative): one count per bound, then one above every bound. */
  readonly buckets: readonly number[];
  /** Sum of the observations, in seconds. */
  readonly sum: number;
  readonly count: number;
}

/**
 * A backend's latency, measured in the data plane: `connect_duration` (TCP: connect() to
 * established), `flow_duration` (TCP: accept to close, flows that reached the backend) and
 * `session_duration` (UDP: first datagram to close).
 */
export type Latency = Readonly<Record<HistogramName, LatencyHistogram>>;

/** How often a backend started (`up`) or stopped (`down`) taking new flows, and when it last did or was added. */
export interface BackendTransitions {
  readonly up: number;
  readonly down: number;
  readonly lastChange: Date;
}
