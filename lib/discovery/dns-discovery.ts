// DNS discovery: keeps the backends of each DNS entry (`dns:NAME:PORT`, `srv:NAME`) equal to what
// its last good answer gave. Each entry of each listener is one watch: it resolves, then applies
// the answer to the registry as a diff (an address that appeared is added, one that vanished is
// removed and drained like any removed backend, one still there keeps its record, its flows and
// its health, with its weight brought up to date), then waits for the next resolution: the
// records' TTL, bounded by dnsMinInterval and dnsInterval; after a failure dnsMinInterval,
// doubling up to dnsInterval. A failed or empty answer changes nothing (lib/discovery/dns-resolve.ts).
//
// The backends an entry found carry its id (`entry`), so they belong to it: a reload compares the
// file's backends with the registry's without them (lib/reload/apply.ts), and `reconcile()` then
// makes the watches equal to the new file's entries. While a reload applies its plan the watches
// are held: answers that arrive wait, so a reload that rolls back finds only what it snapshotted.

import { Resolver } from 'node:dns/promises';
import type { EventEmitter } from 'node:events';
import type { Clock } from '../clock.js';
import { formatHostPort } from '../config/address.js';
import type { DnsEntryConfig } from '../config/dns-entry.js';
import type { Logger } from '../log.js';
import type { BackendControl } from '../registry/backends.js';
import type { EngineSync } from '../registry/engine-sync.js';
import type { ListenerTable } from '../registry/listeners.js';
import type { BackendRegistry } from '../registry/registry.js';
import type { BalancerEvents } from '../events.js';
import type { BalancerConfig } from '../types.js';
import { ownListenerAt } from '../config/own-address.js';
import { DnsDropTally } from './dns-drops.js';
import { dnsResults, resolveDnsEntry, type DnsAnswer, type DnsDropCounts, type DnsResult, type DnsTarget } from './dns-resolve.js';

export interface DiscoveryParts {
  readonly registry: BackendRegistry;
  readonly listeners: ListenerTable;
  readonly backends: BackendControl;
  readonly sync: EngineSync;
  /** The running config: entries, servers and intervals are read from it at each step. */
  readonly config: () => BalancerConfig;
  readonly events: EventEmitter<BalancerEvents>;
  readonly log: Logger;
  readonly clock: Clock;
}

/** One entry of one listener slot. */
interface Watch {
  readonly slot: number;
  readonly listener: string;
  entry: DnsEntryConfig;
  /** The last good answer's backends; null: none yet. */
  found: readonly DnsTarget[] | null;
  /** An answer arrived while the watches were held, and waits to be applied. */
  pending: boolean;
  failures: number;
  timer: unknown;
  /** Bumped when the entry changes or the watch stops: an answer to an older question is dropped. */
  generation: number;
  stopped: boolean;
  /** The last answer, as DnsDropTally.note keys it: an equal answer needs no diff. */
  answerKey?: string;
}

const watchKey = (slot: number, entryId: string) => `${slot}\u0000${entryId}`;
const clamp = (n: number, min: number, max: number) => Math.min(Math.max(n, min), max);

export class DnsDiscovery {
  readonly #p: DiscoveryParts;
  readonly #watches = new Map<string, Watch>();
  readonly #counts: Record<DnsResult, number> = Object.fromEntries(dnsResults.map((r) => [r, 0])) as Record<DnsResult, number>;
  #resolver: Resolver | null = null;
  /** The servers and timeout `#resolver` was made with. */
  #resolverFor = '';
  #held = false;
  #closed = false;
  readonly #drops: DnsDropTally;

  constructor(parts: DiscoveryParts) {
    this.#p = parts;
    this.#drops = new DnsDropTally(parts.log);
  }

  /** Records answers gave that were left out, since start, by reason. */
  droppedRecords(): Readonly<DnsDropCounts> {
    return this.#drops.counts();
  }

  /** Whether `ip:port` is one of lb4's listeners of the watch's protocol: a backend there would loop. */
  #isOwn(w: Watch): (ip: string, port: number) => boolean {
    const protocol = this.#p.listeners.bySlot(w.slot)?.config.protocol ?? 'tcp';
    const own = this.#p.listeners.all().map((s) => s.config);
    return (ip, port) => ownListenerAt(ip, port, protocol, own) !== undefined;
  }

  /** Resolutions since start, by result. */
  counts(): Readonly<Record<DnsResult, number>> {
    return { ...this.#counts };
  }

  /** Holds answers until release(): a reload is changing the registry. */
  hold(): void {
    this.#held = true;
  }

  /** Applies the answers that arrived while held. */
  async release(): Promise<void> {
    this.#held = false;
    for (const w of this.#watches.values()) if (w.pending) await this.#apply(w);
  }

  /**
   * Makes the watches equal to the running config's entries (at start, and after each reload):
   * new entries are resolved (this waits for their first answer), changed ones resolved again,
   * and the backends of entries that are gone are removed and drained.
   */
  async reconcile(): Promise<void> {
    if (this.#closed) return;
    const config = this.#p.config();
    const wanted = new Map<string, { slot: number; listener: string; entry: DnsEntryConfig }>();
    for (const l of config.listeners) {
      const s = this.#p.listeners.get(l.name);
      if (s) for (const entry of l.discover) wanted.set(watchKey(s.slot, entry.id), { slot: s.slot, listener: l.name, entry });
    }
    const first: Promise<void>[] = [];
    for (const [key, w] of this.#watches) {
      if (wanted.has(key)) continue;
      this.#stop(w);
      this.#watches.delete(key);
      await this.#applyTargets(w, []);
    }
    for (const [key, want] of wanted) {
      const w = this.#watches.get(key);
      if (!w) {
        const watch: Watch = { ...want, found: null, pending: false, failures: 0, timer: null, generation: 0, stopped: false };
        this.#watches.set(key, watch);
        first.push(this.#resolve(watch));
      } else if (JSON.stringify(w.entry) !== JSON.stringify(want.entry)) {
        const before = w.entry;
        w.entry = want.entry;
        // The file now says something new of the entry's state: its backends take it.
        if (before.state !== want.entry.state) this.#setState(w, want.entry.state);
        w.generation++;
        if (w.timer !== null) this.#p.clock.clearTimeout(w.timer);
        w.timer = null;
        first.push(this.#resolve(w));
      }
    }
    await Promise.all(first);
    await this.#p.sync.flush();
  }

  /** Stops every watch; the backends stay as they are (the balancer is closing). */
  close(): void {
    this.#closed = true;
    for (const w of this.#watches.values()) this.#stop(w);
    this.#watches.clear();
    this.#resolver?.cancel();
  }

  #stop(w: Watch): void {
    w.stopped = true;
    w.generation++;
    if (w.timer !== null) this.#p.clock.clearTimeout(w.timer);
    w.timer = null;
  }

  /** The resolver for the running config's servers and timeout, made anew when they change. */
  #currentResolver(): Resolver {
    const config = this.#p.config();
    const wanted = JSON.stringify([config.dnsServers, config.dnsTimeoutMs]);
    if (!this.#resolver || this.#resolverFor !== wanted) {
      this.#resolver?.cancel();
      // Two tries per query: one lost datagram is not a failure, a dead server is found in
      // twice the timeout.
      this.#resolver = new Resolver({ timeout: config.dnsTimeoutMs, tries: 2 });
      if (config.dnsServers.length > 0) this.#resolver.setServers([...config.dnsServers]);
      this.#resolverFor = wanted;
    }
    return this.#resolver;
  }

  async #resolve(w: Watch): Promise<void> {
    const generation = w.generation;
    const answer = await resolveDnsEntry(this.#currentResolver(), w.entry, this.#isOwn(w));
    if (w.stopped || this.#closed || generation !== w.generation) return;
    this.#counts[answer.result]++;
    const previousKey = w.answerKey ?? null;
    w.answerKey = this.#drops.note(previousKey, w.entry, w.listener, answer);
    // The same answer as last time, already applied and still in the registry: nothing to diff.
    if (answer.result === 'ok' && w.answerKey === previousKey && !w.pending && this.#owned(w).length === answer.targets.length) {
      w.failures = 0;
      this.#report(w, answer, [], []);
    } else if (answer.result === 'ok') {
      w.failures = 0;
      w.found = answer.targets;
      w.pending = true;
      if (!this.#held) await this.#apply(w);
    } else {
      w.failures++;
      this.#p.log.warn(
        { listener: w.listener, entry: w.entry.id, result: answer.result, reason: answer.reason, backends: w.found?.length ?? 0 },
        'DNS resolution failed: the last good backends stay',
      );
      this.#report(w, answer, [], []);
    }
    if (!w.stopped && !this.#closed && generation === w.generation) this.#schedule(w, answer);
  }

  #schedule(w: Watch, answer: DnsAnswer): void {
    const { dnsMinIntervalMs: min, dnsIntervalMs: max } = this.#p.config();
    const low = Math.min(min, max);
    const delay = answer.result === 'ok' ? clamp(answer.ttlMs ?? max, low, max) : Math.min(low * 2 ** Math.min(w.failures - 1, 30), max);
    w.timer = this.#p.clock.setTimeout(() => {
      w.timer = null;
      void this.#resolve(w);
    }, delay);
  }

  async #apply(w: Watch): Promise<void> {
    w.pending = false;
    if (w.found === null || !this.#p.listeners.bySlot(w.slot)) return;
    const { added, removed } = await this.#applyTargets(w, w.found);
    const log = this.#p.log;
    if (added.length > 0 || removed.length > 0) log.info({ listener: w.listener, entry: w.entry.id, added, removed }, 'DNS backends changed');
    this.#report(w, { result: 'ok' }, added, removed);
  }

  #report(w: Watch, answer: DnsAnswer | { result: 'ok' }, added: string[], removed: string[]): void {
    const backends = this.#owned(w).map((b) => b.id);
    const error = answer.result === 'ok' ? {} : { error: answer.reason };
    this.#p.events.emit('dns-resolution', { listener: w.listener, entry: w.entry.id, result: answer.result, ...error, added, removed, backends });
  }

  #owned(w: Watch) {
    return this.#p.registry.list(w.slot).filter((b) => b.entry === w.entry.id);
  }

  /** Makes the entry's backends in its slot equal to `targets`; returns the ids added and removed. */
  async #applyTargets(w: Watch, targets: readonly DnsTarget[]): Promise<{ added: string[]; removed: string[] }> {
    const { registry, backends, listeners, sync } = this.#p;
    const wanted = new Map(targets.map((t) => [formatHostPort(t.ip, t.port), t]));
    const added: string[] = [];
    const removed: string[] = [];
    let changed = false;
    for (const b of this.#owned(w)) {
      const t = wanted.get(formatHostPort(b.ip, b.port));
      wanted.delete(formatHostPort(b.ip, b.port));
      if (!t) {
        backends.forget(b, this.#p.config().drainTimeoutMs);
        removed.push(b.id);
      } else if (t.weight !== b.weight) {
        backends.changeWeight(b, t.weight);
        changed = true;
      }
    }
    const s = listeners.bySlot(w.slot);
    for (const [address, t] of wanted) {
      if (!s) break;
      const id = `${w.entry.id}/${address}`;
      if (registry.get(w.slot, id)) {
        // A backend given by address took this id: the file's own backend wins.
        this.#p.log.warn({ listener: w.listener, entry: w.entry.id, backend: id }, 'DNS backend skipped: a backend of that id exists');
        continue;
      }
      const config = Object.freeze({ id, address, ip: t.ip, port: t.port, weight: t.weight, state: w.entry.state, maxConnections: 0, pool: null, entry: w.entry.id });
      backends.watch(registry.add(w.slot, s.config.name, config, s.config.health ? 'up' : 'unchecked'));
      added.push(id);
    }
    if (added.length > 0 || removed.length > 0 || changed) await sync.flush();
    return { added, removed };
  }

  #setState(w: Watch, state: DnsEntryConfig['state']): void {
    for (const b of this.#owned(w)) this.#p.backends.changeState(b, state, this.#p.config().drainTimeoutMs, 'reload');
  }
}
