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
//
// Backends are never dropped before something replaces them. An entry a reload renames (a new id,
// name or port: a new entry in the same listener while an old one left) keeps the old entry's
// backends serving until the new one's first good answer; then an address both give keeps its
// engine key, record and flows under its new id, and only the others drain. An address missing
// from one answer is held (it serves on); missing from the next one too, it drains. If it comes
// back, its old record comes back with it (same key, its drain cancelled, the operator's state
// kept), so a flapping answer neither cuts flows at the drain timeout nor makes a new engine key
// (and its counters) each time.

import { Resolver } from 'node:dns/promises';
import type { EventEmitter } from 'node:events';
import type { Clock } from '../clock.js';
import { formatHostPort } from '../config/address.js';
import type { DnsEntryConfig } from '../config/dns-entry.js';
import type { Logger } from '../log.js';
import type { BackendControl } from '../registry/backends.js';
import type { EngineSync } from '../registry/engine-sync.js';
import type { ListenerTable } from '../registry/listeners.js';
import type { BackendRecord, BackendRegistry } from '../registry/registry.js';
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
  /**
   * Watches of entries a reload removed from this listener while it added this one (shared by the
   * entries it added): their backends serve until one of the new entries has a good answer.
   */
  replaces: Watch[];
  /** Addresses the last good answer lacked while they still serve (held for one more answer). */
  readonly missing: Set<string>;
  /** Records of addresses that left the answers, by address: brought back if the address returns. */
  readonly gone: Map<string, BackendRecord>;
  /** Backend ids already logged as taken by another backend: logged once, not at every answer. */
  readonly skipped: Set<string>;
  /** The last answer, as DnsDropTally.note keys it: an equal answer needs no diff. */
  answerKey?: string;
}

/** What a reconcile changed, as `listener/entry` names (a reload's summary reports them). */
export interface DnsEntryChanges {
  readonly added: string[];
  readonly removed: string[];
  /** `listener/old -> listener/new`: one entry left a listener while one came. */
  readonly renamed: string[];
  readonly changed: string[];
}

/** How many left addresses a watch remembers: enough for a flapping set, bounded against a hostile one. */
const goneLimit = 1024;

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
   * new entries are resolved (this waits for their first answer), changed ones resolved again.
   * The backends of an entry that is gone drain, unless the same reload added an entry to its
   * listener: then they serve until that entry's first good answer (a rename).
   */
  async reconcile(): Promise<DnsEntryChanges> {
    const out: DnsEntryChanges = { added: [], removed: [], renamed: [], changed: [] };
    if (this.#closed) return out;
    const config = this.#p.config();
    const wanted = new Map<string, { slot: number; listener: string; entry: DnsEntryConfig }>();
    for (const l of config.listeners) {
      const s = this.#p.listeners.get(l.name);
      if (s) for (const entry of l.discover) wanted.set(watchKey(s.slot, entry.id), { slot: s.slot, listener: l.name, entry });
    }
    // The watches that leave, by slot, with those they were themselves still standing in for
    // (an entry renamed again before it answered); `left` only the former, for the summary.
    const leaving = new Map<number, Watch[]>();
    const left = new Map<number, Watch[]>();
    for (const [key, w] of this.#watches) {
      if (wanted.has(key)) continue;
      this.#stop(w);
      this.#watches.delete(key);
      leaving.set(w.slot, [...(leaving.get(w.slot) ?? []), w]);
      left.set(w.slot, [...(left.get(w.slot) ?? []), w]);
    }
    for (const list of leaving.values()) list.push(...list.flatMap((w) => w.replaces.splice(0)));
    const first: Promise<void>[] = [];
    const arrived = new Map<number, Watch[]>();
    for (const [key, want] of wanted) {
      const w = this.#watches.get(key);
      if (!w) {
        const replaces = leaving.get(want.slot) ?? [];
        const watch: Watch = { ...want, found: null, pending: false, failures: 0, timer: null, generation: 0, stopped: false, replaces, missing: new Set(), gone: new Map(), skipped: new Set() };
        this.#watches.set(key, watch);
        arrived.set(want.slot, [...(arrived.get(want.slot) ?? []), watch]);
      } else if (JSON.stringify(w.entry) !== JSON.stringify(want.entry)) {
        const before = w.entry;
        w.entry = want.entry;
        // The file now says something new of the entry's state: its backends take it.
        if (before.state !== want.entry.state) this.#setState(w, want.entry.state);
        // And a `dns:` entry's weight is every address's weight: at once, not at the next answer.
        if (before.weight !== want.entry.weight && want.entry.kind === 'dns') this.#setWeight(w, want.entry.weight);
        w.generation++;
        w.skipped.clear();
        if (w.timer !== null) this.#p.clock.clearTimeout(w.timer);
        w.timer = null;
        out.changed.push(`${w.listener}/${w.entry.id}`);
        first.push(this.#resolve(w));
      }
    }
    const name = (w: Watch) => `${w.listener}/${w.entry.id}`;
    for (const [slot, gone] of left) {
      const came = arrived.get(slot) ?? [];
      if (came.length === 1) {
        out.renamed.push(`${name(gone[0])} -> ${name(came[0])}`);
        out.removed.push(...gone.slice(1).map(name));
      } else {
        out.removed.push(...gone.map(name));
        out.added.push(...came.map(name));
      }
      // Nothing came to this listener: the entries are really gone, and so are their backends.
      if (came.length === 0) for (const w of leaving.get(slot)!) await this.#applyTargets(w, []);
    }
    for (const [slot, came] of arrived) {
      if (!leaving.has(slot)) out.added.push(...came.map(name));
      first.push(...came.map((w) => this.#resolve(w)));
    }
    await Promise.all(first);
    await this.#p.sync.flush();
    return out;
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
        { listener: w.listener, entry: w.entry.id, result: answer.result, reason: answer.reason, backends: this.#serving(w).length },
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
    // The first good answer of an entry that replaced others: an address both give is taken over
    // (same key, flows go on), then what is left of the old entries drains.
    // (A reload that renamed an entry and another that renamed it back before it answered leave
    // the entry's own old watch among them: its backends are this watch's already.)
    const replaced = w.replaces.splice(0).filter((old) => old.entry.id !== w.entry.id);
    const takeOver = new Map(replaced.flatMap((old) => this.#owned(old).map((b) => [formatHostPort(b.ip, b.port), b] as const)));
    const { added, removed } = await this.#applyTargets(w, w.found, { hold: true, takeOver });
    for (const old of replaced) removed.push(...(await this.#applyTargets(old, [])).removed);
    const log = this.#p.log;
    if (added.length > 0 || removed.length > 0) log.info({ listener: w.listener, entry: w.entry.id, added, removed }, 'DNS backends changed');
    this.#report(w, { result: 'ok' }, added, removed);
  }

  #report(w: Watch, answer: DnsAnswer | { result: 'ok' }, added: string[], removed: string[]): void {
    const backends = this.#serving(w).map((b) => b.id);
    const error = answer.result === 'ok' ? {} : { error: answer.reason };
    this.#p.events.emit('dns-resolution', { listener: w.listener, entry: w.entry.id, result: answer.result, ...error, added, removed, backends });
  }

  #owned(w: Watch) {
    return this.#p.registry.list(w.slot).filter((b) => b.entry === w.entry.id);
  }

  /** The backends serving for an entry: its own, or until its first answer those of the entries it replaced. */
  #serving(w: Watch) {
    return [w, ...w.replaces.filter((old) => old.entry.id !== w.entry.id)].flatMap((x) => this.#owned(x));
  }

  /**
   * Makes the entry's backends in its slot equal to `targets`; returns the ids added and removed.
   * `hold`: an address the answer lacks goes only if the answer before lacked it too. `takeOver`:
   * records of replaced entries, by address, that become this entry's.
   */
  async #applyTargets(w: Watch, targets: readonly DnsTarget[], how: { hold?: boolean; takeOver?: Map<string, BackendRecord> } = {}): Promise<{ added: string[]; removed: string[] }> {
    const takeOver = how.takeOver ?? new Map<string, BackendRecord>();
    const { registry, backends, listeners, sync } = this.#p;
    const drainMs = this.#p.config().drainTimeoutMs;
    const wanted = new Map(targets.map((t) => [formatHostPort(t.ip, t.port), t]));
    const added: string[] = [];
    const removed: string[] = [];
    let changed = false;
    for (const b of this.#owned(w)) {
      const address = formatHostPort(b.ip, b.port);
      const t = wanted.get(address);
      wanted.delete(address);
      if (!t && how.hold && !w.missing.has(address)) {
        // One answer without an address is not yet its end: a server that answers with a subset,
        // or a record that is briefly replaced, must not drain it. It goes if the next answer,
        // one re-resolution interval later, lacks it too.
        w.missing.add(address);
      } else if (!t) {
        w.missing.delete(address);
        backends.forget(b, drainMs);
        removed.push(b.id);
        // Remembered, so that the address coming back gets this record back (bounded: oldest out).
        w.gone.delete(address);
        w.gone.set(address, b);
        if (w.gone.size > goneLimit) w.gone.delete(w.gone.keys().next().value!);
      } else {
        w.missing.delete(address);
        if (t.weight !== b.weight) {
          backends.changeWeight(b, t.weight);
          changed = true;
        }
      }
    }
    const s = listeners.bySlot(w.slot);
    for (const [address, t] of wanted) {
      if (!s) break;
      const id = `${w.entry.id}/${address}`;
      if (registry.get(w.slot, id)) {
        // A backend given by address took this id: the file's own backend wins. Said once, not at
        // every answer.
        if (!w.skipped.has(id)) this.#p.log.warn({ listener: w.listener, entry: w.entry.id, backend: id }, 'DNS backend skipped: a backend of that id exists');
        w.skipped.add(id);
        continue;
      }
      w.skipped.delete(id);
      added.push(id);
      const before = takeOver.get(address);
      if (before) {
        let b = registry.rename(before, { id, address, entry: w.entry.id });
        if (b.weight !== t.weight) b = backends.changeWeight(b, t.weight);
        if (b.state !== w.entry.state) backends.changeState(b, w.entry.state, drainMs, 'reload');
        continue;
      }
      const back = w.gone.get(address);
      w.gone.delete(address);
      const draining = back && registry.byKey(back.key);
      if (draining && !registry.has(draining)) {
        // Back while its key is still known (draining, or idle but not yet forgotten): the same
        // record again, its drain cancelled, its flows and the operator's state kept.
        backends.restore(Object.freeze({ ...draining, weight: t.weight }));
        continue;
      }
      // Otherwise a new record; the registry gives it the key this id had, if it had one.
      const config = Object.freeze({ id, address, ip: t.ip, port: t.port, weight: t.weight, state: back?.state ?? w.entry.state, maxConnections: 0, pool: null, entry: w.entry.id });
      backends.watch(registry.add(w.slot, s.config.name, config, s.config.health ? 'up' : 'unchecked'));
    }
    if (added.length > 0 || removed.length > 0 || changed) await sync.flush();
    return { added, removed };
  }

  #setWeight(w: Watch, weight: number): void {
    for (const b of this.#owned(w)) this.#p.backends.changeWeight(b, weight);
    // The answer kept is brought up to date too, so applying it does not undo the new weight.
    if (w.found) w.found = w.found.map((t) => ({ ...t, weight }));
  }

  #setState(w: Watch, state: DnsEntryConfig['state']): void {
    for (const b of this.#owned(w)) this.#p.backends.changeState(b, state, this.#p.config().drainTimeoutMs, 'reload');
  }
}
