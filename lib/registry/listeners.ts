// The listeners the engine runs, by name and by slot. The engine numbers listeners by slot, in
// the order they opened, and never reuses a slot: a listener that moves to a new address on reload
// opens in a new slot while the old one drains, so flows, counters and events that name an old
// slot stay unambiguous.

import type { Algorithm } from '../config/enums.js';
import { Lb4Error } from '../errors.js';
import type { BackendScope, ListenerAddress, ListenerConfig } from '../types.js';

/** A running listener: its slot, its config (with the port it got) and its bound address. */
export interface ListenerSlot {
  slot: number;
  config: ListenerConfig;
  address: ListenerAddress;
}

export class ListenerTable {
  readonly #byName = new Map<string, ListenerSlot>();
  /** Listener slots the engine has ever opened; slots are never reused. */
  #slotCount = 0;
  /** Listeners a reload is opening: their slot's algorithm, until they join the table. */
  readonly #opening = new Map<number, Algorithm>();

  constructor(slots: readonly ListenerSlot[]) {
    for (const s of slots) this.#byName.set(s.config.name, s);
    this.#slotCount = slots.length;
  }

  /** How many slots the engine has opened, removed ones included. */
  get slotCount(): number {
    return this.#slotCount;
  }

  all(): ListenerSlot[] {
    return [...this.#byName.values()];
  }

  names(): string[] {
    return [...this.#byName.keys()];
  }

  get(name: string): ListenerSlot | undefined {
    return this.#byName.get(name);
  }

  /** The listener called `name`; an unknown name is the caller's error. */
  require(name: string): ListenerSlot {
    const s = this.#byName.get(name);
    if (!s) throw new Lb4Error('LB4_INVALID_OPTION', `no listener "${name}" (known: ${this.names().join(', ')})`, { field: 'listener' });
    return s;
  }

  /** The slot a backend operation is limited to; undefined for every listener. */
  scopeSlot(scope: BackendScope): number | undefined {
    return scope.listener === undefined ? undefined : this.require(scope.listener).slot;
  }

  bySlot(slot: number): ListenerSlot | undefined {
    for (const s of this.#byName.values()) if (s.slot === slot) return s;
    return undefined;
  }

  /** A slot's listener name, or the slot number for a listener that is gone. */
  nameOf(slot: number): string {
    return this.bySlot(slot)?.config.name ?? String(slot);
  }

  /** The algorithm a slot's table runs: its listener's, or an opening listener's. */
  algorithmOf(slot: number): Algorithm {
    return this.bySlot(slot)?.config.algorithm ?? this.#opening.get(slot) ?? 'roundrobin';
  }

  /** Records that the engine opened the next slot for a listener not yet in the table. */
  opened(slot: number, algorithm: Algorithm): void {
    if (slot !== this.#slotCount) throw new Error(`lb4: engine opened listener slot ${slot}, expected ${this.#slotCount}`);
    this.#slotCount++;
    this.#opening.set(slot, algorithm);
  }

  /** Forgets an opening listener that will not join (a reload that failed). */
  abandon(slot: number): void {
    this.#opening.delete(slot);
  }

  /** Adds a listener that has opened. */
  add(s: ListenerSlot): void {
    this.#opening.delete(s.slot);
    this.#byName.set(s.config.name, s);
  }

  remove(name: string): void {
    this.#byName.delete(name);
  }
}
