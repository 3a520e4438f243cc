// What a receiver accepts: an authentic heartbeat (see heartbeat.ts) from another node, sent
// recently, and newer than anything that sender said before. Everything else is refused with one
// reason from `rejectReasons`, which the node counts.
//
// Replays. Each sender numbers its heartbeats (epoch, sequence): `epoch` is its start time in
// wall-clock milliseconds and `sequence` counts from 0 within that start. The receiver remembers,
// per sender, the highest pair it accepted and takes only higher pairs, compared epoch first.
// A replayed heartbeat is never higher, so it is refused; a restarted peer's sequence starts low
// again, but under a later epoch, so it is taken at once. No state survives a restart of either
// side, and none is needed.
//
// The timestamp window closes the gaps that ordering alone leaves open:
// - a receiver that just started has no record, and would take a heartbeat recorded hours ago;
// - a peer whose clock went back across its restart has a lower epoch than the one remembered.
//   For that case a sender's record is forgotten once it has been silent for twice the window,
//   so such a peer is accepted again after at most that long (its heartbeats count as
//   "replayed" meanwhile). Forgetting is safe because of the window: whatever is accepted
//   afterwards carries a timestamp within one window of now, so at worst a replay delivers late
//   a heartbeat the peer really sent moments ago, never an old one.
// The window is thus also the clock agreement the two nodes need (NTP gives far better).

import { decodeHeartbeat, type Heartbeat, type RejectReason } from './heartbeat.js';

export interface HeartbeatFilterOptions {
  /** This node's id: a peer with the same one is flagged (`duplicateNodeId`), not refused. */
  readonly nodeId: string;
  /** This process's instance id: a heartbeat carrying it is this node's own, looped back. */
  readonly instance: string;
  readonly key: Buffer;
  /** How far a heartbeat's timestamp may be from this node's wall clock, either way (ms). */
  readonly timestampWindowMs: number;
}

/** The receiver's clocks at the time a datagram arrived. */
export interface ReceiveTime {
  /** Wall clock, ms since 1970: compared with the sender's timestamp. */
  readonly wall: number;
  /** Monotonic ms: how long a sender has been silent. */
  readonly monotonic: number;
}

export type FilterResult =
  | {
      ok: true;
      heartbeat: Heartbeat;
      /** First heartbeat of a new epoch from a sender heard before: it restarted. */
      restarted: boolean;
      /** The sender has this node's id (another instance): both nodes are misconfigured. */
      duplicateNodeId: boolean;
    }
  | { ok: false; reason: RejectReason };

interface SenderRecord {
  epoch: number;
  sequence: number;
  acceptedAt: number;
}

export class HeartbeatFilter {
  readonly #options: HeartbeatFilterOptions;
  // Only authentic senders get a record, so its size is the number of key holders.
  readonly #senders = new Map<string, SenderRecord>();

  constructor(options: HeartbeatFilterOptions) {
    if (!(options.timestampWindowMs > 0)) throw new RangeError('timestampWindowMs must be positive');
    this.#options = options;
  }

  /** Decodes and checks one datagram; on success the sender's record moves forward. */
  accept(datagram: Buffer, now: ReceiveTime): FilterResult {
    const decoded = decodeHeartbeat(datagram, this.#options.key);
    if (!decoded.ok) return decoded;
    const hb = decoded.heartbeat;
    // The instance, not the node id, says whether it is this node's own: two nodes cloned from
    // one image share a host name, and refusing each other's heartbeats as "own" would leave
    // both active for good. Such a peer is taken as a peer (the election breaks the tie on the
    // instance id) and flagged, so the node can tell the operator.
    if (hb.instance === this.#options.instance) return { ok: false, reason: 'own-heartbeat' };
    const window = this.#options.timestampWindowMs;
    if (Math.abs(now.wall - hb.timestamp) > window) return { ok: false, reason: 'timestamp' };
    let record = this.#senders.get(hb.nodeId);
    if (record && now.monotonic - record.acceptedAt > 2 * window) {
      this.#senders.delete(hb.nodeId);
      record = undefined;
    }
    if (record && (hb.epoch < record.epoch || (hb.epoch === record.epoch && hb.sequence <= record.sequence))) {
      return { ok: false, reason: 'replayed' };
    }
    const restarted = record !== undefined && hb.epoch > record.epoch;
    this.#senders.set(hb.nodeId, { epoch: hb.epoch, sequence: hb.sequence, acceptedAt: now.monotonic });
    return { ok: true, heartbeat: hb, restarted, duplicateNodeId: hb.nodeId === this.#options.nodeId };
  }

  /** Drops every record (for tests and a key change). */
  reset(): void {
    this.#senders.clear();
  }
}
