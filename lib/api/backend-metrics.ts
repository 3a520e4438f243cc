// /metrics families of a backend that are not plain counters: the latency histograms the data
// plane keeps (native/core/latency.h, declared for JS in lib/engine/native-types.ts) and the
// up/down transitions the registry counts.
//
// A histogram is exported only for backends of listeners of its protocol that lb4 proxies itself:
// a UDP backend has no connect time, and a nat listener's flows never reach the data plane.

import { histogramShapes } from '../engine/native-types.js';
import type { BalancerConfig, BalancerStats } from '../types.js';
import { histogramSamples, writeFamily, type Labels } from './exposition.js';

type BackendRow = BalancerStats['backends'][number];

/** Family names this file writes, so no counter family can take one. */
export const backendMetricFamilies: readonly string[] = Object.freeze([
  ...histogramShapes.map((h) => latencyFamilyName(h.name)),
  'lb4_backend_transitions_total',
  'lb4_backend_last_change_timestamp_seconds',
]);

function latencyFamilyName(histogram: string): string {
  return `lb4_backend_${histogram}_seconds`;
}

/** Appends the latency histograms and transition families for `backends`. */
export function writeBackendFamilies(out: string[], config: Pick<BalancerConfig, 'listeners'>, backends: readonly BackendRow[], labelsOf: (b: BackendRow) => Labels): void {
  const proxied = new Map(config.listeners.filter((l) => l.forward !== 'nat').map((l) => [l.name, l.protocol]));
  for (const shape of histogramShapes) {
    const rows = backends.filter((b) => proxied.get(b.listener) === shape.protocol);
    writeFamily(
      out,
      latencyFamilyName(shape.name),
      'histogram',
      shape.help,
      rows.flatMap((b) => {
        const h = b.latency[shape.name];
        return histogramSamples(labelsOf(b), h.bounds, h.buckets, h.sum, h.count);
      }),
    );
  }
  writeFamily(
    out,
    'lb4_backend_transitions_total',
    'counter',
    'Times the backend started (to="up") or stopped (to="down") taking new flows, by health, operator state or weight',
    backends.flatMap((b) => [
      { labels: [...labelsOf(b), ['to', 'up'] as const], value: b.transitions.up },
      { labels: [...labelsOf(b), ['to', 'down'] as const], value: b.transitions.down },
    ]),
  );
  writeFamily(
    out,
    'lb4_backend_last_change_timestamp_seconds',
    'gauge',
    'When the backend last started or stopped taking new flows, or was added (Unix time)',
    backends.map((b) => ({ labels: labelsOf(b), value: b.transitions.lastChange.getTime() / 1000 })),
  );
}
