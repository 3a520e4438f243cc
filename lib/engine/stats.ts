// Decoding the engine's counters and latency histograms. readStats() sums every worker's counters into one flat array:
// each listener slot's block, in slot order, then each backend key's block; a block holds the
// counters in the order of `counterNames`. The array is kept and grown as keys are added, so a
// scrape allocates nothing but the records it returns.
//
// Decoding goes by the declared names, not the addon's list: loading the addon checks that the
// two are the same, and a stand-in engine (tests) then needs no built addon to report counters.

import type { Counters, Latency, LatencyHistogram } from '../types.js';
import { counterNames, histogramShapes, histogramSlots, type CounterName, type HistogramName, type NativeEngine } from './native-types.js';

function counterRecord(values: Float64Array, offset: number): Counters {
  const out = {} as Record<CounterName, number>;
  counterNames.forEach((name, i) => (out[name] = values[offset + i] ?? 0));
  return Object.freeze(out);
}

// readLatency()'s block for one backend key: per histogram, a count per bucket, then the sum in
// microseconds. `values` past the end of what the engine wrote read as zero.
function latencyRecord(values: Float64Array, offset: number): Latency {
  const out = {} as Record<HistogramName, LatencyHistogram>;
  let at = offset;
  for (const shape of histogramShapes) {
    const buckets = Object.freeze(Array.from({ length: shape.bounds.length + 1 }, (_, i) => values[at + i] ?? 0));
    const sum = (values[at + shape.bounds.length + 1] ?? 0) / 1e6;
    out[shape.name] = Object.freeze({ bounds: shape.bounds, buckets, sum, count: buckets.reduce((n, b) => n + b, 0) });
    at += shape.bounds.length + 2;
  }
  return Object.freeze(out);
}

/** A backend's latency before anything was observed. */
export function emptyLatency(): Latency {
  return latencyRecord(new Float64Array(histogramSlots), 0);
}

/** One read of every counter. */
export interface StatsSnapshot {
  listener(slot: number): Counters;
  /** A backend's counters; all zero for a key the engine has not counted yet. */
  backend(key: number): Counters;
  /** A backend's latency histograms; all zero for a key the engine has not counted yet. */
  latency(key: number): Latency;
}

export class StatsReader {
  readonly #engine: NativeEngine;
  #values = new Float64Array(0);
  #latency = new Float64Array(0);

  constructor(engine: NativeEngine) {
    this.#engine = engine;
  }

  /** Reads the counters now; `slotCount` is how many listener slots the engine has opened. */
  read(slotCount: number): StatsSnapshot {
    let needed = this.#engine.readStats(this.#values);
    if (needed > this.#values.length) {
      this.#values = new Float64Array(needed);
      needed = this.#engine.readStats(this.#values);
    }
    let latencyNeeded = this.#engine.readLatency(this.#latency);
    if (latencyNeeded > this.#latency.length) {
      this.#latency = new Float64Array(latencyNeeded);
      latencyNeeded = this.#engine.readLatency(this.#latency);
    }
    const latency = this.#latency;
    const values = this.#values;
    const width = counterNames.length;
    const base = slotCount * width;
    return {
      listener: (slot) => counterRecord(values, slot * width),
      backend: (key) => {
        const offset = base + key * width;
        return offset + width <= needed ? counterRecord(values, offset) : counterRecord(new Float64Array(width), 0);
      },
      latency: (key) => {
        const offset = key * histogramSlots;
        return offset + histogramSlots <= latencyNeeded ? latencyRecord(latency, offset) : emptyLatency();
      },
    };
  }
}
