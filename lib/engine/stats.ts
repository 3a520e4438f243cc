// Decoding the engine's counters. readStats() sums every worker's counters into one flat array:
// each listener slot's block, in slot order, then each backend key's block; a block holds the
// counters in the order of `counterNames`. The array is kept and grown as keys are added, so a
// scrape allocates nothing but the records it returns.
//
// Decoding goes by the declared names, not the addon's list: loading the addon checks that the
// two are the same, and a stand-in engine (tests) then needs no built addon to report counters.

import type { Counters } from '../types.js';
import { counterNames, type CounterName, type NativeEngine } from './native-types.js';

function counterRecord(values: Float64Array, offset: number): Counters {
  const out = {} as Record<CounterName, number>;
  counterNames.forEach((name, i) => (out[name] = values[offset + i] ?? 0));
  return Object.freeze(out);
}

/** One read of every counter. */
export interface StatsSnapshot {
  listener(slot: number): Counters;
  /** A backend's counters; all zero for a key the engine has not counted yet. */
  backend(key: number): Counters;
}

export class StatsReader {
  readonly #engine: NativeEngine;
  #values = new Float64Array(0);

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
    const values = this.#values;
    const width = counterNames.length;
    const base = slotCount * width;
    return {
      listener: (slot) => counterRecord(values, slot * width),
      backend: (key) => {
        const offset = base + key * width;
        return offset + width <= needed ? counterRecord(values, offset) : counterRecord(new Float64Array(width), 0);
      },
    };
  }
}
