// What a running balancer reports of its flows (TCP) and sessions (UDP): the listing of open ones
// and the access log's record of closed ones. Types only, like lib/types.ts, which re-exports them.

import type { Protocol } from './config/enums.js';

/** One tracked flow (a proxied TCP connection) or UDP session. */
export interface Connection {
  readonly id: number;
  /** `tcp`: a flow; `udp`: a session (a client address bound to a backend). */
  readonly protocol: Protocol;
  readonly listener: string;
  readonly worker: number;
  /** `awaiting-header`/`awaiting-hello`: no whole PROXY protocol header / TLS ClientHello yet; `queued`: every backend is full. */
  readonly state: 'awaiting-header' | 'awaiting-hello' | 'queued' | 'connecting' | 'established';
  readonly client: string;
  /** Backend id; absent while no backend is assigned. */
  readonly backend?: string;
  readonly backendAddress?: string;
  readonly startedAt: Date;
  readonly bytesToBackend: number;
  readonly bytesToClient: number;
  /** UDP sessions only: datagrams each way. */
  readonly datagramsToBackend?: number;
  readonly datagramsToClient?: number;
  /**
   * `nat`: a kernel conntrack entry of a `forward: nat` listener (its `worker` is -1, `startedAt`
   * the time of the listing, bytes 0 unless `net.netfilter.nf_conntrack_acct` is on).
   */
  readonly forward?: 'nat';
}

export interface ConnectionFilter {
  listener?: string;
  backend?: string;
  /** At most this many (default 1000). */
  limit?: number;
}

/** A closed flow or UDP session, as the access log records it. */
export interface FlowRecord {
  readonly id: number;
  readonly protocol: Protocol;
  readonly listener: string;
  readonly client: string;
  readonly backend: string | null;
  readonly bytesToBackend: number;
  readonly bytesToClient: number;
  readonly startedAt: Date;
  readonly durationMs: number;
  readonly reason: string;
  /** UDP sessions only: datagrams each way. */
  readonly datagramsToBackend?: number;
  readonly datagramsToClient?: number;
  /**
   * `nat`: a kernel conntrack entry of a `forward: nat` listener (its `worker` is -1, `startedAt`
   * the time of the listing, bytes 0 unless `net.netfilter.nf_conntrack_acct` is on).
   */
  readonly forward?: 'nat';
}
