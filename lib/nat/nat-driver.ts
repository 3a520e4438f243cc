// The NAT data plane's state: which listeners forward by NAT, their backends, and the rules that
// follow from them. Every change re-renders lb4's whole table and applies it as one transaction
// (lib/nat/nft.ts); changes are applied one after another, in the order they were made.
//
// nftables counters live in the table, so replacing the table starts them at zero: before each
// replacement the driver reads them and keeps the totals, so the counters it reports only grow.
// Packets counted between that read and the replacement are lost from the totals (a few, at a
// change of backends).

import { algorithmNames, NativeBackendState, type NativeBackend } from '../engine/native-types.js';
import type { Logger } from '../log.js';
import type { NativeEvent } from '../engine/native-types.js';
import { Conntrack, type ConntrackEntry, type ConntrackFilter } from './conntrack.js';
import { ConntrackEvents, type ConntrackEnd } from './conntrack-events.js';
import { maglevTable, nativeMaglev, type MaglevBuilder } from './maglev.js';
import { NftRunner, type NftCounter } from './nft.js';
import { checkNatHost } from './preflight.js';
import { counterNamesOf, familyOf, renderRemoval, renderRuleset, type NatFamily, type NatListenerRules, type NatPick } from './render.js';

/** A NAT listener as the driver needs it. `ip` null: every address of this host. */
export interface NatListenerSpec {
  readonly name: string;
  readonly protocol: 'tcp' | 'udp';
  readonly ip: string | null;
  readonly port: number;
  readonly snat: 'none' | 'masquerade';
  /** Index into `algorithmNames`. */
  readonly algorithm: number;
}

export interface NatDriverOptions {
  readonly table: string;
  readonly log: Logger;
  readonly nft?: string;
  readonly conntrack?: string;
  readonly maglev?: MaglevBuilder;
  /** Skips the host check (tests with a fake nft). */
  readonly skipHostCheck?: boolean;
}

/** Per-backend totals: new connections, and packets and bytes each way. */
export interface NatBackendCounters {
  flows: number;
  packetsToBackend: number;
  bytesToBackend: number;
  packetsToClient: number;
  bytesToClient: number;
}

interface Slot {
  spec: NatListenerSpec;
  backends: NativeBackend[];
}

const families: readonly NatFamily[] = ['ipv4', 'ipv6'];
/** Event overflows are logged at once, then at most once in this long, with how many there were. */
export const overflowWarnEveryMs = 10_000;
const emptyCounter: NftCounter = { packets: 0, bytes: 0 };

export class NatDriver {
  readonly table: string;
  readonly #log: Logger;
  readonly #nft: NftRunner;
  readonly #conntrack: Conntrack;
  readonly #nftBinary: string;
  readonly #conntrackBinary: string;
  readonly #maglev: MaglevBuilder;
  readonly #skipHostCheck: boolean;
  readonly #slots = new Map<number, Slot>();
  /** Backends that left a listener's table: a drain timeout may still delete their connections. */
  readonly #gone = new Map<number, { slot: number; backend: NativeBackend }>();
  /** Counter totals carried over table replacements, by counter name. */
  readonly #carried = new Map<string, NftCounter>();
  readonly #events: ConntrackEvents;
  /** The access log: one ended connection in `#flowLog` is reported (0: off). */
  #flowLog = 0;
  #ended = 0;
  #emit: ((event: NativeEvent) => void) | null = null;
  /** Event overflows not logged yet, when the last warning was, and the timer that logs the rest. */
  #overflows = 0;
  #overflowsSeen = 0;
  #overflowWarnedAt = -Infinity;
  #overflowTimer: NodeJS.Timeout | null = null;
  #checked = false;
  #applied = false;
  #closed = false;
  #queue: Promise<void> = Promise.resolve();
  /** The apply queued behind the running one, not started yet: later changes join it. */
  #waiting: Promise<void> | null = null;

  constructor(options: NatDriverOptions) {
    this.table = options.table;
    this.#log = options.log;
    this.#nftBinary = options.nft ?? 'nft';
    this.#conntrackBinary = options.conntrack ?? 'conntrack';
    this.#nft = new NftRunner(this.#nftBinary);
    this.#conntrack = new Conntrack(this.#conntrackBinary);
    this.#events = new ConntrackEvents(this.#conntrackBinary);
    this.#maglev = options.maglev ?? nativeMaglev;
    this.#skipHostCheck = options.skipHostCheck ?? false;
  }

  /** Checks the host once, before the first NAT listener (throws LB4_NAT_UNAVAILABLE). */
  checkHost(names: readonly string[]): void {
    if (this.#checked || this.#skipHostCheck) return;
    checkNatHost(names, { nft: this.#nftBinary, conntrack: this.#conntrackBinary });
    this.#checked = true;
  }

  has(slot: number): boolean {
    return this.#slots.has(slot);
  }

  get slots(): ReadonlyMap<number, { readonly spec: NatListenerSpec; readonly backends: readonly NativeBackend[] }> {
    return this.#slots;
  }

  setListener(slot: number, spec: NatListenerSpec, backends: NativeBackend[]): void {
    this.#slots.set(slot, { spec, backends });
    this.#watchEnds();
  }

  /** Reports one ended NAT connection in `every` through `emit` as a flow-closed event; 0: off. */
  setFlowLog(every: number, emit: (event: NativeEvent) => void): void {
    this.#flowLog = every;
    this.#emit = emit;
    if (every === 0) this.#events.stop();
    else this.#watchEnds();
  }

  #watchEnds(): void {
    if (this.#flowLog === 0 || this.#slots.size === 0 || this.#events.running || this.#closed) return;
    this.#events.start(
      (end) => this.#onEnd(end),
      (message) => this.#log.warn({ err: message }, 'nat: the access log lost its conntrack event stream'),
      () => this.#onOverflow(),
    );
  }

  /** How many times the kernel reported access-log events dropped, since start. */
  get eventOverflows(): number {
    return this.#overflowsSeen;
  }

  /** The kernel dropped access-log events: said at once, then at most every `overflowWarnEveryMs`. */
  #onOverflow(): void {
    this.#overflowsSeen++;
    this.#overflows++;
    const wait = this.#overflowWarnedAt + overflowWarnEveryMs - Date.now();
    if (wait <= 0) return this.#warnOverflows();
    this.#overflowTimer ??= setTimeout(() => this.#warnOverflows(), wait).unref();
  }

  #warnOverflows(): void {
    if (this.#overflowTimer) clearTimeout(this.#overflowTimer);
    this.#overflowTimer = null;
    if (this.#overflows === 0) return;
    this.#log.warn({ overflows: this.#overflows }, 'nat: the kernel dropped conntrack events the access log could not read in time: some ended connections are missing from it');
    this.#overflows = 0;
    this.#overflowWarnedAt = Date.now();
  }

  #onEnd({ entry, durationMs }: ConntrackEnd): void {
    for (const [slot, s] of this.#slots) {
      if (s.spec.protocol !== entry.protocol || s.spec.port !== entry.listener.port) continue;
      if (s.spec.ip !== null && s.spec.ip !== entry.listener.ip) continue;
      const b = s.backends.find((x) => x.ip === entry.backend.ip && x.port === entry.backend.port) ?? this.#goneAt(slot, entry);
      if (!b) continue;
      if (this.#ended++ % this.#flowLog !== 0) return;
      const host = (ip: string, port: number) => (entry.family === 'ipv6' ? `[${ip}]:${port}` : `${ip}:${port}`);
      const udp = entry.protocol === 'udp' ? { datagramsToBackend: entry.packetsToBackend, datagramsToClient: entry.packetsToClient } : {};
      // Without conntrack timestamps the kernel does not say when the connection began: the
      // record then carries the end time and a duration of 0.
      const now = Date.now();
      this.#emit?.({
        type: 'flow-closed', worker: -1, listener: slot, id: entry.id, client: host(entry.client.ip, entry.client.port), backendKey: b.key,
        reason: 'done', bytesToBackend: entry.bytesToBackend, bytesToClient: entry.bytesToClient, startedAt: now - (durationMs ?? 0), durationMs: durationMs ?? 0,
        protocol: entry.protocol, ...udp,
      });
      return;
    }
  }

  setBackends(slot: number, backends: NativeBackend[], algorithm?: number): void {
    const s = this.#slots.get(slot);
    if (!s) return;
    for (const b of s.backends) if (!backends.some((x) => x.key === b.key)) this.#gone.set(b.key, { slot, backend: b });
    for (const b of backends) this.#gone.delete(b.key);
    s.backends = backends;
    if (algorithm !== undefined) s.spec = { ...s.spec, algorithm };
  }

  removeListener(slot: number): void {
    this.#slots.delete(slot);
  }

  /** The rules for the current listeners (the input of `renderRuleset`). */
  rules(): NatListenerRules[] {
    return [...this.#slots].map(([slot, { spec, backends }]) => {
      // A listener on one address takes clients of its family only: backends of the other family
      // could never be reached from it (and nft refuses an IPv6 match on an IPv4 address).
      const reachable = spec.ip === null ? backends : backends.filter((b) => familyOf(b.ip) === familyOf(spec.ip!));
      const all = reachable.map((b) => ({ key: b.key, id: b.id, ip: b.ip, port: b.port, weight: b.state === NativeBackendState.up ? b.weight : 0 }));
      const picks: NatPick[] = families.flatMap((family): NatPick[] => {
        const mine = all.filter((b) => familyOf(b.ip) === family);
        if (mine.length === 0) return [];
        if (algorithmNames[spec.algorithm] === 'maglev') return [{ family, kind: 'maglev' as const, backends: mine, table: maglevTable(mine, this.#maglev) }];
        return [{ family, kind: 'roundrobin' as const, backends: mine }];
      });
      return { slot, name: spec.name, protocol: spec.protocol, ip: spec.ip, port: spec.port, snat: spec.snat, backends: all, picks };
    });
  }

  #carryCounters(): void {
    if (!this.#applied) return;
    for (const [name, c] of this.#nft.counters(this.table)) {
      const before = this.#carried.get(name) ?? emptyCounter;
      this.#carried.set(name, { packets: before.packets + c.packets, bytes: before.bytes + c.bytes });
    }
  }

  /** Applies the rules now (start-up): throws with nft's error, and the kernel keeps what it had. */
  applySync(): void {
    this.#carryCounters();
    this.#nft.applySync(renderRuleset(this.table, this.rules()));
    this.#applied = true;
  }

  /**
   * Applies the current rules after every earlier change; resolves once the kernel has them.
   * Changes made while an apply runs are coalesced into the next one: it renders the state at the
   * time it starts, so a burst of changes (slow start's steps, a health flap) costs one apply.
   */
  commit(): Promise<void> {
    if (this.#waiting) return this.#waiting;
    const run = async () => {
      this.#waiting = null;
      if (this.#closed) return;
      const text = renderRuleset(this.table, this.rules());
      this.#carryCounters();
      await this.#nft.apply(text);
      this.#applied = true;
    };
    const next = this.#queue.then(run, run);
    this.#waiting = next;
    this.#queue = next.catch((err: unknown) => this.#log.error({ err: (err as Error).message }, 'nat: the new rules were refused; the kernel keeps the previous ones'));
    return next;
  }

  /** One read of the kernel's counters: each backend's totals since start. */
  counters(): (key: number) => NatBackendCounters {
    const live = this.#applied ? this.#nft.counters(this.table) : new Map<string, NftCounter>();
    return (key) => this.#totals(key, live);
  }

  #totals(key: number, live: ReadonlyMap<string, NftCounter>): NatBackendCounters {
    const read = (name: string) => {
      const a = this.#carried.get(name) ?? emptyCounter;
      const b = live.get(name) ?? emptyCounter;
      return { packets: a.packets + b.packets, bytes: a.bytes + b.bytes };
    };
    const names = counterNamesOf(key);
    const to = read(names.toBackend);
    const from = read(names.toClient);
    return { flows: read(names.flows).packets, packetsToBackend: to.packets, bytesToBackend: to.bytes, packetsToClient: from.packets, bytesToClient: from.bytes };
  }

  /** The conntrack filter of a listener, optionally narrowed to one backend. */
  #filters(slot: number, backend?: NativeBackend): ConntrackFilter[] {
    const s = this.#slots.get(slot);
    if (!s) return [];
    const fams = backend ? [familyOf(backend.ip)] : [...new Set(s.backends.map((b) => familyOf(b.ip)))];
    return fams.map((family) => ({
      protocol: s.spec.protocol,
      family,
      listenerPort: s.spec.port,
      ...(s.spec.ip !== null ? { listenerIp: s.spec.ip } : {}),
      ...(backend ? { backend: { ip: backend.ip, port: backend.port } } : {}),
    }));
  }

  /** The conntrack entries of a listener's connections, each with the backend key it reached. */
  async connections(slot: number): Promise<Array<{ entry: ConntrackEntry; key: number | undefined }>> {
    const s = this.#slots.get(slot);
    if (!s) return [];
    const lists = await Promise.all(this.#filters(slot).map((f) => this.#conntrack.list(f)));
    return lists.flat().flatMap((entry) => {
      // The port filter catches connections to that port that lb4 did not NAT; a backend's
      // address in the reply direction is what makes an entry one of this listener's.
      const b = s.backends.find((x) => x.ip === entry.backend.ip && x.port === entry.backend.port) ?? this.#goneAt(slot, entry);
      // A TCP connection in TIME_WAIT or CLOSE has ended; conntrack keeps it a while for late packets.
      const ended = entry.state === 'TIME_WAIT' || entry.state === 'CLOSE';
      return b && !ended ? [{ entry, key: b.key }] : [];
    });
  }

  #goneAt(slot: number, entry: ConntrackEntry): NativeBackend | undefined {
    for (const g of this.#gone.values()) if (g.slot === slot && g.backend.ip === entry.backend.ip && g.backend.port === entry.backend.port) return g.backend;
    return undefined;
  }

  /** The listener slot a backend key belongs (or belonged) to, when it is a NAT backend. */
  slotOfBackend(key: number): number | undefined {
    for (const [slot, s] of this.#slots) if (s.backends.some((b) => b.key === key)) return slot;
    return this.#gone.get(key)?.slot;
  }

  /** Deletes the conntrack entries of one backend of a listener (a drain that timed out). */
  async closeBackend(slot: number, key: number): Promise<number> {
    const b = this.#slots.get(slot)?.backends.find((x) => x.key === key) ?? this.#gone.get(key)?.backend;
    if (!b) return 0;
    const counts = await Promise.all(this.#filters(slot, b).map((f) => this.#conntrack.delete(f)));
    return counts.reduce((a, n) => a + n, 0);
  }

  /** Removes lb4's table from the kernel; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#events.stop();
    this.#warnOverflows();
    if (!this.#applied) return;
    try {
      this.#nft.applySync(renderRemoval(this.table));
    } catch (err) {
      this.#log.error({ err: (err as Error).message, table: this.table }, 'nat: could not remove the table');
    }
  }
}
