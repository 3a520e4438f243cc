// UDP sessions across a failover: this node's session changes go to the peer, and the peer's come
// back as affinity hints for the engine (native/core/udp/session_replication.h). After a
// failover, a client's first datagram to the new active node opens a session on the backend the
// old active node used for it, whatever the algorithm (round robin and least connections would
// pick anew; Maglev picks the same backend anyway).
//
// Out: every flushIntervalMs the engine's queued changes (a session opened, still open, or ended)
// are named the way both nodes agree on (listener name and backend id, not this process's
// numbers), queued, and sent in signed batches (session-batch.ts) on the heartbeat socket: the
// peer's address, the key and the firewall opening are the heartbeat's already. Bounded: at most
// maxPending changes wait (the oldest are dropped and counted) and at most maxBatchesPerFlush
// datagrams leave per flush (about 16 x 1400 bytes every 20 ms: under 1.2 MB/s).
//
// In: a batch is checked like a heartbeat (MAC, version, this node's own looped back, timestamp
// window, replays by instance and sequence), its entries are mapped to this node's listener slots,
// and the engine installs them. Entries for a listener this node does not have are counted and
// skipped. Every node sends what it has and takes what it gets: only the node holding the VIP has
// sessions, so in practice the active node streams and the backup installs.

import type { Logger } from 'pino';
import type { NativeAffinityUpdate, NativeSessionChange } from '../engine/native-types.js';
import type { ClusterClock, SessionReplicationStats } from './cluster-types.js';
import { RejectTally } from './reject-tally.js';
import { SequenceWindow } from './sequence-window.js';
import { batchRejectReasons, decodeSessionBatch, encodeSessionBatches, maxEntriesPerBatch, type BatchRejectReason, type SessionEntry } from './session-batch.js';

/** What the replicator needs of the engine. */
export interface ReplicationEngine {
  setSessionReplication(on: boolean): void;
  resendSessions(): void;
  drainSessionChanges(): { changes: NativeSessionChange[]; dropped: number };
  applyAffinity(updates: NativeAffinityUpdate[]): { set: number; size: number };
}

/** Names that mean the same on both nodes, from this process's numbers, and back. */
export interface SessionNames {
  /** The listener name and backend id of the backend with engine key `key`; undefined once it is gone. */
  backendOf(key: number): { listener: string; backend: string } | undefined;
  /** The slot of this node's listener `name`; undefined when it has none of that name. */
  slotOf(listener: string): number | undefined;
  /** Whether this node's listener in `slot` has a backend with id `backend`. */
  hasBackend(slot: number, backend: string): boolean;
}

export interface SessionReplicatorOptions {
  readonly engine: ReplicationEngine;
  readonly names: SessionNames;
  readonly key: Buffer;
  /** This process's instance id: the batches' sender, and how its own are recognized. */
  readonly instance: string;
  /** Sends one datagram to the peer's heartbeat address. */
  readonly send: (datagram: Buffer) => void;
  readonly clock: ClusterClock;
  /** How far a batch's timestamp may be from this node's clock (ms). Default 2000, as heartbeats. */
  readonly timestampWindowMs?: number;
  readonly flushIntervalMs?: number;
  readonly maxBatchesPerFlush?: number;
  readonly maxPending?: number;
  readonly logger?: Logger;
}

/** Instances whose last sequence is remembered: the peer's current one and a few restarts back. */
const rememberedInstances = 4;

export class SessionReplicator {
  readonly #o: Required<Omit<SessionReplicatorOptions, 'logger'>> & { logger?: Logger };
  readonly #rejected = new RejectTally(batchRejectReasons, 'session batch');
  readonly #seen = new Map<string, SequenceWindow>();
  #pending: SessionEntry[] = [];
  #timer: NodeJS.Timeout | undefined;
  #sequence = 0;
  #sent = 0;
  #received = 0;
  #installed = 0;
  #unknown = 0;
  #unknownBackend = 0;
  #droppedHere = 0;
  #droppedEngine = 0;
  #hints = 0;

  constructor(options: SessionReplicatorOptions) {
    this.#o = { timestampWindowMs: 2000, flushIntervalMs: 20, maxBatchesPerFlush: 16, maxPending: 16384, ...options };
  }

  /** Starts reporting sessions in the engine and sending them. */
  start(): void {
    if (this.#timer) return;
    this.#o.engine.setSessionReplication(true);
    this.#timer = setInterval(() => this.flush(), this.#o.flushIntervalMs);
    this.#timer.unref();
  }

  /** Stops reporting and sending; what is pending is dropped (the peer takes over without it). */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#o.engine.setSessionReplication(false);
    this.#pending = [];
  }

  /**
   * The peer appeared (first heard, back after being dead, or restarted): it knows none of this
   * node's sessions, and the refresh of a long-lived one may be half an idle timeout away. The
   * engine reports them all again; they leave with the next flushes, within the same bounds.
   */
  resync(): void {
    if (this.#timer) this.#o.engine.resendSessions();
  }

  /** Takes the engine's changes and sends what the rate allows (the timer calls it). */
  flush(): void {
    const { changes, dropped } = this.#o.engine.drainSessionChanges();
    this.#droppedEngine = dropped;
    for (const c of changes) {
      // A backend removed since is unknown to the peer's config too, or soon will be: skipped.
      const names = this.#o.names.backendOf(c.backendKey);
      if (!names) continue;
      this.#pending.push({ kind: c.opened ? 'opened' : 'ended', clientIp: c.clientIp, clientPort: c.clientPort, localIp: c.localIp ?? null, listener: names.listener, backend: names.backend });
    }
    const excess = this.#pending.length - this.#o.maxPending;
    if (excess > 0) {
      this.#pending.splice(0, excess);
      this.#droppedHere += excess;
    }
    if (this.#pending.length === 0) return;
    // Enough entries to fill every batch allowed this flush, however short they are.
    const take = this.#pending.slice(0, this.#o.maxBatchesPerFlush * maxEntriesPerBatch);
    let batches: Buffer[];
    try {
      batches = encodeSessionBatches(take, { instance: this.#o.instance, sequence: this.#sequence, timestamp: Math.round(this.#o.clock.wall()) }, this.#o.key);
    } catch (err) {
      // Cannot happen with names from this node's own config; dropping beats retrying forever.
      this.#o.logger?.error({ err }, 'cluster: cannot encode session changes');
      this.#droppedHere += this.#pending.length;
      this.#pending = [];
      return;
    }
    let sentEntries = 0;
    for (const b of batches.slice(0, this.#o.maxBatchesPerFlush)) {
      this.#o.send(b);
      this.#sequence++;
      sentEntries += b.readUInt16BE(6);
    }
    this.#pending.splice(0, sentEntries);
    this.#sent += sentEntries;
  }

  /** One datagram with the batch magic from the heartbeat socket. */
  receive(datagram: Buffer, from: { address: string; port: number }): void {
    const reason = this.#accept(datagram);
    if (reason) this.#rejected.record(reason, from, this.#o.clock.monotonic(), this.#o.logger);
  }

  #accept(datagram: Buffer): BatchRejectReason | undefined {
    const decoded = decodeSessionBatch(datagram, this.#o.key);
    if (!decoded.ok) return decoded.reason;
    const { header, entries } = decoded;
    if (header.instance === this.#o.instance) return 'own-batch';
    if (Math.abs(this.#o.clock.wall() - header.timestamp) > this.#o.timestampWindowMs) return 'timestamp';
    // Each sequence number once per instance; a batch the network delivers after a later one is
    // still taken, within 32 of the highest (sequence-window.ts).
    const window = this.#seen.get(header.instance) ?? new SequenceWindow();
    if (!window.accept(header.sequence)) return 'replayed';
    // Most recently heard last, so the oldest instance is the first key.
    this.#seen.delete(header.instance);
    this.#seen.set(header.instance, window);
    if (this.#seen.size > rememberedInstances) this.#seen.delete(this.#seen.keys().next().value!);
    this.#received += entries.length;
    const updates: NativeAffinityUpdate[] = [];
    for (const e of entries) {
      const slot = this.#o.names.slotOf(e.listener);
      if (slot === undefined) {
        this.#unknown++;
        continue;
      }
      // A hint to a backend this node does not have could never be used, and would take a place
      // in the bounded table from real ones (a key holder could fill it so): counted, skipped.
      if (e.kind === 'opened' && !this.#o.names.hasBackend(slot, e.backend)) {
        this.#unknownBackend++;
        continue;
      }
      const update: NativeAffinityUpdate = { set: e.kind === 'opened', listener: slot, clientIp: e.clientIp, clientPort: e.clientPort, backendId: `${e.listener}/${e.backend}` };
      updates.push(e.localIp === null ? update : { ...update, localIp: e.localIp });
    }
    if (updates.length === 0) return undefined;
    try {
      const r = this.#o.engine.applyAffinity(updates);
      this.#installed += r.set;
      this.#hints = r.size;
    } catch {
      // The engine refused an entry the decoder passed (it checks again): a key holder's bug,
      // counted, never a crash of the heartbeat socket's handler.
      return 'malformed';
    }
    return undefined;
  }

  stats(): SessionReplicationStats {
    return {
      sent: this.#sent,
      received: this.#received,
      installed: this.#installed,
      unknownListener: this.#unknown,
      unknownBackend: this.#unknownBackend,
      dropped: this.#droppedHere + this.#droppedEngine,
      hints: this.#hints,
      rejected: this.#rejected.counts(),
    };
  }
}
