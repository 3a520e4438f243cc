// The engine the control plane talks to when listeners may forward by NAT: it has the native
// engine's verbs and splits each call by listener. A NAT listener is still opened in the native
// engine, with an empty backend table, so lb4 holds its port (nothing else can bind it, and a
// conflict fails at start exactly as in proxy mode), while its backend tables go to the NAT driver
// as nftables rules. Because the split happens here, behind the engine's interface, everything
// above it (engine sync, drains, health, reload, the admin API) runs unchanged for both planes.

import type { NativeAffinityUpdate, NativeBackend, NativeBoundAddress, NativeProxySettings, NativeListenerPolicy, NativeConnectionFilter, NativeEngine, NativeEvent, NativeFlow, NativeListenerOptions, NativeStartFailure } from '../engine/native-types.js';
import { counterNames, protocolNames, type CounterName } from '../engine/native-types.js';
import type { NatDriver, NatListenerSpec } from './nat-driver.js';

const width = counterNames.length;
const at = (name: CounterName) => counterNames.indexOf(name);

function specOf(l: NativeListenerOptions, bound: NativeBoundAddress): NatListenerSpec {
  const every = l.dualStack || l.ip === '::' || l.ip === '0.0.0.0';
  return { name: l.name, protocol: protocolNames[l.protocol], ip: every ? null : bound.ip, port: bound.port, snat: l.nat?.snat ?? 'none', algorithm: l.algorithm };
}

export class SplitEngine implements NativeEngine {
  readonly #inner: NativeEngine;
  readonly #nat: NatDriver;
  readonly #listeners: NativeListenerOptions[];
  #slotCount: number;
  /** Open-connection counts per NAT backend key, refreshed in the background on each stats read. */
  #open = new Map<number, number>();
  #counting = false;
  #onEvents: ((events: NativeEvent[]) => void) | null = null;

  constructor(inner: NativeEngine, nat: NatDriver, listeners: NativeListenerOptions[]) {
    this.#inner = inner;
    this.#nat = nat;
    this.#listeners = listeners;
    this.#slotCount = listeners.length;
  }

  start(tables: NativeBackend[][]): NativeBoundAddress[] | NativeStartFailure {
    const natNames = this.#listeners.filter((l) => l.nat).map((l) => l.name);
    if (natNames.length > 0) this.#nat.checkHost(natNames);
    const result = this.#inner.start(tables.map((t, slot) => (this.#listeners[slot].nat ? [] : t)));
    if (!Array.isArray(result) || natNames.length === 0) return result;
    this.#listeners.forEach((l, slot) => {
      if (l.nat) this.#nat.setListener(slot, specOf(l, result[slot]), tables[slot]);
    });
    try {
      this.#nat.applySync();
    } catch (err) {
      void this.#inner.close(0);
      throw err;
    }
    return result;
  }

  applyBackends(slot: number, backends: NativeBackend[], algorithm?: number): Promise<void> {
    if (!this.#nat.has(slot)) return this.#inner.applyBackends(slot, backends, algorithm);
    this.#nat.setBackends(slot, backends, algorithm);
    return this.#nat.commit();
  }

  // PROXY protocol settings are the proxy's: validation keeps them off nat listeners.
  setListenerProxy(slot: number, settings: NativeProxySettings): Promise<void> {
    return this.#inner.setListenerProxy(slot, settings);
  }

  setListenerPolicy(slot: number, policy: NativeListenerPolicy): Promise<void> {
    return this.#inner.setListenerPolicy(slot, policy);
  }

  // UDP session replication (HA) is about the proxy's own sessions; a NAT listener's sessions
  // live in conntrack, which is not replicated (README: "Proxy or NAT").
  setSessionReplication(on: boolean): void {
    this.#inner.setSessionReplication(on);
  }

  resendSessions(): void {
    this.#inner.resendSessions();
  }

  drainSessionChanges(): ReturnType<NativeEngine['drainSessionChanges']> {
    return this.#inner.drainSessionChanges();
  }

  applyAffinity(updates: NativeAffinityUpdate[]): { set: number; size: number } {
    return this.#inner.applyAffinity(updates);
  }

  // NAT flows never pass through the data plane, so their backends have no latency to report.
  readLatency(into: Float64Array): number {
    return this.#inner.readLatency(into);
  }

  readStats(into: Float64Array): number {
    let needed = this.#inner.readStats(into);
    if (this.#nat.slots.size === 0) return needed;
    const totals = this.#nat.counters();
    for (const [slot, { spec, backends }] of this.#nat.slots) {
      for (const b of backends) needed = Math.max(needed, (this.#slotCount + b.key + 1) * width);
      if (needed > into.length) continue;
      // The engine writes only the backend keys it knows, and a NAT backend's key is not one of
      // them: its block still holds the last read, so it starts from zero here.
      for (const b of backends) into.fill(0, (this.#slotCount + b.key) * width, (this.#slotCount + b.key + 1) * width);
      for (const b of backends) {
        const c = totals(b.key);
        const udp = spec.protocol === 'udp';
        const add = (offset: number, name: CounterName, value: number) => (into[offset + at(name)] += value);
        for (const offset of [slot * width, (this.#slotCount + b.key) * width]) {
          add(offset, udp ? 'sessions_total' : 'flows_total', c.flows);
          add(offset, udp ? 'sessions_active' : 'flows_active', this.#open.get(b.key) ?? 0);
          add(offset, 'bytes_to_backend', c.bytesToBackend);
          add(offset, 'bytes_to_client', c.bytesToClient);
          if (udp) {
            add(offset, 'datagrams_to_backend', c.packetsToBackend);
            add(offset, 'datagrams_to_client', c.packetsToClient);
          }
        }
      }
    }
    this.#refreshOpen();
    return needed;
  }

  /** Counts conntrack entries per NAT backend, one refresh at a time (read by the next stats read). */
  #refreshOpen(): void {
    if (this.#counting) return;
    this.#counting = true;
    void Promise.all([...this.#nat.slots.keys()].map((slot) => this.#nat.connections(slot)))
      .then((lists) => {
        const open = new Map<number, number>();
        for (const { key } of lists.flat()) if (key !== undefined) open.set(key, (open.get(key) ?? 0) + 1);
        this.#open = open;
      })
      .catch(() => {})
      .finally(() => (this.#counting = false));
  }

  backendKeyLimit(): number {
    let limit = this.#inner.backendKeyLimit();
    for (const { backends } of this.#nat.slots.values()) for (const b of backends) limit = Math.max(limit, b.key + 1);
    return limit;
  }

  async connections(filter: NativeConnectionFilter = {}): Promise<NativeFlow[]> {
    const natSlots = [...this.#nat.slots.keys()].filter((slot) => filter.listener === undefined || filter.listener === slot);
    const proxied = filter.listener !== undefined && this.#nat.has(filter.listener) ? [] : await this.#inner.connections(filter);
    const lists = await Promise.all(natSlots.map(async (slot) => ({ slot, list: await this.#nat.connections(slot) })));
    const now = Date.now();
    const natFlows = lists.flatMap(({ slot, list }) =>
      list
        .filter(({ key }) => filter.backendKey === undefined || key === filter.backendKey)
        .map(({ entry, key }): NativeFlow => ({
          id: entry.id,
          protocol: entry.protocol,
          listener: slot,
          worker: -1,
          state: entry.replied ? 'established' : 'connecting',
          client: entry.family === 'ipv6' ? `[${entry.client.ip}]:${entry.client.port}` : `${entry.client.ip}:${entry.client.port}`,
          ...(key !== undefined ? { backendKey: key } : {}),
          backend: entry.family === 'ipv6' ? `[${entry.backend.ip}]:${entry.backend.port}` : `${entry.backend.ip}:${entry.backend.port}`,
          // conntrack keeps no start time unless nf_conntrack_timestamp is on: report the listing time.
          startedAt: now,
          bytesToBackend: entry.bytesToBackend,
          bytesToClient: entry.bytesToClient,
          ...(entry.protocol === 'udp' ? { datagramsToBackend: entry.packetsToBackend, datagramsToClient: entry.packetsToClient } : {}),
          forward: 'nat',
        })),
    );
    const all = [...proxied, ...natFlows];
    return filter.limit === undefined ? all : all.slice(0, filter.limit);
  }

  onEvents(callback: (events: NativeEvent[]) => void): void {
    this.#onEvents = callback;
    this.#inner.onEvents(callback);
  }

  droppedEvents(): number {
    return this.#inner.droppedEvents();
  }

  async close(drainMs: number): Promise<void> {
    this.#nat.close();
    await this.#inner.close(drainMs);
  }

  addListener(listener: NativeListenerOptions, table: NativeBackend[]): (NativeBoundAddress & { slot: number; ready: Promise<void> }) | NativeStartFailure {
    if (listener.nat) this.#nat.checkHost([listener.name]);
    const result = this.#inner.addListener(listener, listener.nat ? [] : table);
    if ('errno' in result) return result;
    this.#listeners[result.slot] = listener;
    this.#slotCount = Math.max(this.#slotCount, result.slot + 1);
    if (!listener.nat) return result;
    this.#nat.setListener(result.slot, specOf(listener, result), table);
    return { ...result, ready: Promise.all([result.ready, this.#nat.commit()]).then(() => undefined) };
  }

  async removeListener(slot: number, drainMs: number): Promise<void> {
    if (this.#nat.has(slot)) {
      this.#nat.removeListener(slot);
      await this.#nat.commit();
    }
    await this.#inner.removeListener(slot, drainMs);
  }

  async closeFlows(filter: NativeConnectionFilter): Promise<number> {
    const natSlot = filter.backendKey !== undefined ? this.#nat.slotOfBackend(filter.backendKey) : undefined;
    if (natSlot !== undefined && filter.backendKey !== undefined) return this.#nat.closeBackend(natSlot, filter.backendKey);
    return this.#inner.closeFlows(filter);
  }

  setFlowLog(every: number): void {
    this.#inner.setFlowLog(every);
    this.#nat.setFlowLog(every, (event) => this.#onEvents?.([event]));
  }
}
