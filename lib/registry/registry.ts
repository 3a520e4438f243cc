// The control plane's backends, per listener, and what the engine should run. A backend's
// state as the operator set it (up, draining, maintenance, down) is kept apart from what health
// checks say of it; the engine sees the combination: only a backend the operator has `up` and
// that is not failing its checks takes new flows. Every change yields complete tables for the
// engine. The registry notes which listener slots each change touched, so the engine is sent
// only what changed (lib/registry/engine-sync.ts).

import type { BackendState } from '../config/enums.js';
import { NativeBackendState, NativeProxyVersion, type NativeBackend } from '../engine/native-types.js';
import { Lb4Error } from '../errors.js';
import type { BackendConfig, BackendInfo, BackendTransitions, Health } from '../types.js';

/**
 * A backend as the registry holds it, in one listener slot (a listener that moves to a new
 * address on reload gets a new slot while the old one drains). `key` is the engine's number for
 * the backend, stable for its life.
 */
export interface BackendRecord extends BackendConfig {
  readonly slot: number;
  readonly listener: string;
  readonly key: number;
  /** The state the operator (config, API) set. */
  readonly state: BackendState;
  readonly health: Health;
  /** Why `health` is what it is (the last check's reason), when known. */
  readonly healthReason: string | null;
  /** Weight the engine uses now: below `weight` while slow start ramps it up. */
  readonly effectiveWeight: number;
}

/** The state the engine runs a backend in. */
export function engineState(b: Pick<BackendRecord, 'state' | 'health'>): BackendState {
  if (b.state !== 'up') return b.state;
  return b.health === 'down' ? 'down' : 'up';
}

function recordId(slot: number, id: string): string {
  return `${slot}\u0000${id}`;
}

/** A backend as the public API reports it. */
export function backendInfo(b: BackendRecord): BackendInfo {
  return Object.freeze({
    id: b.id,
    listener: b.listener,
    address: b.address,
    ip: b.ip,
    port: b.port,
    weight: b.weight,
    effectiveWeight: b.effectiveWeight,
    state: b.state,
    health: b.health,
    healthReason: b.healthReason,
    takesNewFlows: takesNewFlows(b),
    pool: b.pool,
    ...(b.entry === undefined ? {} : { entry: b.entry }),
    ...(b.proxyProtocol === undefined ? {} : { proxyProtocol: b.proxyProtocol }),
  });
}

/**
 * How often a backend started or stopped taking new flows (`takesNewFlows`, the metric
 * lb4_backend_up), and when it last did (or was added), in wall-clock milliseconds.
 */
interface TransitionCount {
  readonly up: number;
  readonly down: number;
  readonly lastChangeMs: number;
}

/** A backend's transitions as stats() reports them. */
export function transitionsOf(registry: BackendRegistry, key: number): BackendTransitions {
  const t = registry.transitions(key);
  return Object.freeze({ up: t.up, down: t.down, lastChange: new Date(t.lastChangeMs) });
}

function takesNewFlows(b: BackendRecord): boolean {
  return engineState(b) === 'up' && b.effectiveWeight > 0;
}

export class BackendRegistry {
  #records = new Map<string, BackendRecord>();
  /** By key; kept while flows may still name the key, like #byKey. */
  #transitions = new Map<number, TransitionCount>();
  #byKey = new Map<number, BackendRecord>();
  #nextKey = 0;
  /**
   * Keys of removed backends, still known by name while flows may run on them, with how many
   * checks in a row found them idle. Without forgetting them, every backend ever added stayed in
   * `#byKey`: backend churn (reloads, the admin API) grew it without bound.
   */
  #retired = new Map<number, number>();
  /**
   * The keys {@link forgetIdle} forgot, by slot and id: a backend added again under its old id
   * (a DNS address that comes back, a backend the operator removed and adds again) gets its old
   * key back. The engine keeps each key's counters for its life, so a new key for every return
   * grew its memory without bound; with the old key the counters go on, as a Prometheus counter of
   * the same backend should.
   */
  #forgottenKeys = new Map<string, number>();
  /** Listener slots whose table changed since the last takeChanged(). */
  #changed = new Set<number>();

  /**
   * The engine already runs `slot`'s current table (a listener opened with it), or never will
   * (a listener that failed to open): no flush needs to send it.
   */
  markSent(slot: number): void {
    this.#changed.delete(slot);
  }

  /** The slots whose table changed since the last call, and forgets them. */
  takeChanged(): Set<number> {
    const changed = this.#changed;
    this.#changed = new Set();
    return changed;
  }

  /** Backends in the order they were added; of one listener slot when given. */
  list(slot?: number): BackendRecord[] {
    const all = [...this.#records.values()];
    return slot === undefined ? all : all.filter((b) => b.slot === slot);
  }

  /** The backends called `id`, in every slot or the given one. Throws if there are none. */
  find(id: string, slot?: number): BackendRecord[] {
    const found = this.list(slot).filter((b) => b.id === id);
    if (found.length === 0) {
      const known = [...new Set(this.list(slot).map((b) => b.id))].join(', ') || 'none';
      throw new Lb4Error('LB4_UNKNOWN_BACKEND', `no backend "${id}" (known: ${known})`, { field: 'id' });
    }
    return found;
  }

  get(slot: number, id: string): BackendRecord | undefined {
    return this.#records.get(recordId(slot, id));
  }

  /** Whether `record` is still registered (not removed). */
  has(record: BackendRecord): boolean {
    return this.#records.has(recordId(record.slot, record.id));
  }

  byKey(key: number): BackendRecord | undefined {
    return this.#byKey.get(key);
  }

  add(slot: number, listener: string, config: BackendConfig, health: Health): BackendRecord {
    if (this.#records.has(recordId(slot, config.id))) {
      throw new Lb4Error('LB4_DUPLICATE_BACKEND', `backend "${config.id}" exists already in listener "${listener}"`, { field: 'id' });
    }
    const remembered = this.#forgottenKeys.get(recordId(slot, config.id));
    this.#forgottenKeys.delete(recordId(slot, config.id));
    // Never a key a record holds (one put back by restore() after it was forgotten).
    const known = remembered !== undefined && !this.#byKey.has(remembered) ? remembered : undefined;
    const record: BackendRecord = Object.freeze({ ...config, slot, listener, key: known ?? this.#nextKey++, health, healthReason: null, effectiveWeight: config.weight });
    this.#records.set(recordId(slot, record.id), record);
    this.#byKey.set(record.key, record);
    if (known === undefined) this.#transitions.set(record.key, { up: 0, down: 0, lastChangeMs: Date.now() });
    this.#changed.add(slot);
    return record;
  }

  /** A backend's up/down transitions since it was added. */
  transitions(key: number): TransitionCount {
    return this.#transitions.get(key) ?? { up: 0, down: 0, lastChangeMs: 0 };
  }

  /**
   * Puts back a record as it was (same key): a reload that failed undoes its changes. Restored in
   * their old order, a listener's records keep their old order in its table.
   */
  restore(record: BackendRecord): void {
    this.#records.delete(recordId(record.slot, record.id));
    this.#records.set(recordId(record.slot, record.id), record);
    this.#byKey.set(record.key, record);
    this.#retired.delete(record.key);
    this.#changed.add(record.slot);
  }

  /**
   * Forgets a backend. Its key stays known, so flows still open on it keep their name, until
   * {@link forgetIdle} finds it idle.
   */
  remove(record: BackendRecord): void {
    if (!this.#records.delete(recordId(record.slot, record.id))) return;
    this.#changed.add(record.slot);
    this.#retired.set(record.key, 0);
  }

  /** How many removed backends are still known by key. */
  get retiredCount(): number {
    return this.#retired.size;
  }

  /**
   * Forgets the keys of removed backends that `isIdle` (no flow or session open on them, by the
   * engine's counters) found idle at this call and the one before: the second look lets events
   * already queued for their last flows still find their names. Returns how many were forgotten.
   */
  forgetIdle(isIdle: (key: number) => boolean): number {
    let forgotten = 0;
    for (const [key, seen] of this.#retired) {
      if (!isIdle(key)) this.#retired.set(key, 0);
      else if (seen === 0) this.#retired.set(key, 1);
      else {
        const record = this.#byKey.get(key);
        // Only while no registered backend has that id: a new record of it has its own key.
        if (record && !this.#records.has(recordId(record.slot, record.id))) this.#forgottenKeys.set(recordId(record.slot, record.id), key);
        this.#retired.delete(key);
        this.#byKey.delete(key);
        forgotten++;
      }
    }
    return forgotten;
  }

  /**
   * Gives a registered backend a new id (and address as written, and entry) under the same key:
   * its flows, health and counters go on under the new name. A DNS entry renamed by a reload takes
   * over this way the old entry's backend at an address both give.
   */
  rename(record: BackendRecord, change: Pick<BackendRecord, 'id' | 'address' | 'entry'>): BackendRecord {
    const current = this.#records.get(recordId(record.slot, record.id)) ?? record;
    if (this.#records.has(recordId(record.slot, change.id))) {
      throw new Lb4Error('LB4_DUPLICATE_BACKEND', `backend "${change.id}" exists already in listener "${record.listener}"`, { field: 'id' });
    }
    this.#records.delete(recordId(record.slot, record.id));
    const next: BackendRecord = Object.freeze({ ...current, ...change });
    this.#records.set(recordId(next.slot, next.id), next);
    this.#byKey.set(next.key, next);
    this.#changed.add(next.slot);
    return next;
  }

  update(record: BackendRecord, change: Partial<Pick<BackendRecord, 'address' | 'weight' | 'state' | 'health' | 'healthReason' | 'effectiveWeight' | 'maxConnections' | 'proxyProtocol'>>): BackendRecord {
    const id = recordId(record.slot, record.id);
    const current = this.#records.get(id) ?? this.#byKey.get(record.key) ?? record;
    const next: BackendRecord = Object.freeze({ ...current, ...change });
    const was = takesNewFlows(current);
    if (takesNewFlows(next) !== was) {
      const t = this.transitions(next.key);
      this.#transitions.set(next.key, { up: t.up + (was ? 0 : 1), down: t.down + (was ? 1 : 0), lastChangeMs: Date.now() });
    }
    if (this.#records.has(id)) {
      this.#records.set(id, next);
      // Only what the engine runs (state, weight, connection limit, PROXY protocol version) makes
      // the table change: the same state set again, a slow-start step that keeps the weight or a
      // new health reason sends nothing.
      if (engineState(next) !== engineState(current) || next.effectiveWeight !== current.effectiveWeight || next.maxConnections !== current.maxConnections || next.proxyProtocol !== current.proxyProtocol) this.#changed.add(next.slot);
    }
    // A forgotten key stays forgotten: a late update of a removed record must not bring it back.
    if (this.#records.has(id) || this.#byKey.has(next.key)) this.#byKey.set(next.key, next);
    return next;
  }

  /**
   * A listener slot's backend table as the engine takes it. A backend's `id` is its identity
   * across nodes, `<listener name>/<backend id>`; its `key` only indexes this process's counters.
   */
  nativeTable(slot: number): NativeBackend[] {
    return this.list(slot).map((b) => ({
      key: b.key,
      id: `${b.listener}/${b.id}`,
      ip: b.ip,
      port: b.port,
      weight: b.effectiveWeight,
      state: NativeBackendState[engineState(b)],
      maxConnections: b.maxConnections,
      ...(b.pool === null ? {} : { pool: b.pool }),
      // Only a backend with its own setting says so; the others follow their listener's.
      ...(b.proxyProtocol === undefined ? {} : { proxy: NativeProxyVersion[b.proxyProtocol] }),
    }));
  }
}
