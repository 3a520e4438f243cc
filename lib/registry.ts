// The control plane's list of backends and their states. Every change produces the complete
// table the engine should run next; the engine swaps it in on every worker as one batch.

import { Lb4Error } from './errors.js';
import type { BackendConfig, BackendState } from './config.js';
import { NativeBackendState, type NativeBackend } from './native.js';

/** A backend as the registry holds it. `key` is the engine's number for it, stable for its life. */
export interface BackendRecord extends BackendConfig {
  readonly key: number;
}

export class BackendRegistry {
  #byId = new Map<string, BackendRecord>();
  #byKey = new Map<number, BackendRecord>();
  #nextKey = 0;

  constructor(initial: readonly BackendConfig[] = []) {
    for (const b of initial) this.add(b);
  }

  /** Backends in the order they were added. */
  list(): BackendRecord[] {
    return [...this.#byId.values()];
  }

  get(id: string): BackendRecord {
    const b = this.#byId.get(id);
    if (!b) throw new Lb4Error('LB4_UNKNOWN_BACKEND', `no backend "${id}" (known: ${[...this.#byId.keys()].join(', ') || 'none'})`, { field: 'id' });
    return b;
  }

  byKey(key: number): BackendRecord | undefined {
    return this.#byKey.get(key);
  }

  add(config: BackendConfig): BackendRecord {
    if (this.#byId.has(config.id)) throw new Lb4Error('LB4_DUPLICATE_BACKEND', `backend "${config.id}" exists already`, { field: 'id' });
    const record: BackendRecord = Object.freeze({ ...config, key: this.#nextKey++ });
    this.#byId.set(record.id, record);
    this.#byKey.set(record.key, record);
    return record;
  }

  remove(id: string): BackendRecord {
    const record = this.get(id);
    this.#byId.delete(id);
    // The key stays known: flows of a removed backend still show who they belong to.
    return record;
  }

  update(id: string, change: { weight?: number; state?: BackendState }): BackendRecord {
    const current = this.get(id);
    const next: BackendRecord = Object.freeze({ ...current, ...change });
    this.#byId.set(id, next);
    this.#byKey.set(next.key, next);
    return next;
  }

  /** The engine's next tables: the same backends for each of `listeners` listeners. */
  nativeTables(listeners: number): NativeBackend[][] {
    const table = this.list().map((b) => ({ key: b.key, ip: b.ip, port: b.port, weight: b.weight, state: NativeBackendState[b.state] }));
    return Array.from({ length: listeners }, () => table);
  }
}
