// The public shapes of a cluster node: its options, its status snapshot, its transitions and
// events, and the clocks it reads. The runner (cluster-node.ts) implements them.

import type { Logger } from 'pino';
import type { TransitionReason } from './election.js';
import type { ClusterState, RejectReason } from './heartbeat.js';
import type { BatchRejectReason } from './session-batch.js';
import type { StateChangeResult } from './state-change-command.js';
import type { Vip } from './vip.js';
import type { VipDriver } from './vip-driver.js';

/** The two clocks a node reads; tests may give their own. */
export interface ClusterClock {
  /** Monotonic milliseconds: intervals, deadlines, ages. */
  monotonic(): number;
  /** Wall-clock milliseconds since 1970: heartbeat timestamps and the epoch. */
  wall(): number;
}

export const systemClock: ClusterClock = Object.freeze({ monotonic: () => performance.now(), wall: () => Date.now() });

export interface ClusterNodeOptions {
  /** This node's name, unique in the pair (default in the CLI: the host name). 1-255 bytes. */
  readonly nodeId: string;
  /** This process's instance id, 16 lower-case hex digits. Default: random (tests may fix it). */
  readonly instance?: string;
  /** 1-255, higher wins. Default 100. */
  readonly priority?: number;
  /** Where this node sends and receives heartbeats. Host '' means every address of the peer's family. */
  readonly heartbeat: { readonly host: string; readonly port: number };
  /** The peer's heartbeat address; a numeric host (resolve names first). */
  readonly peer: { readonly host: string; readonly port: number };
  /** The shared key (cluster-key.ts), at least 32 bytes. */
  readonly key: Buffer;
  readonly vips?: readonly Vip[];
  readonly vipDriver: VipDriver;
  /** Default 100 ms. */
  readonly intervalMs?: number;
  /** Missed heartbeats after which the peer is dead. Default 3. */
  readonly deadAfter?: number;
  /** A returning higher-priority node takes the VIPs back. Default true. */
  readonly preempt?: boolean;
  /** How far a heartbeat's timestamp may be from this node's clock (see heartbeat-filter.ts). Default 2 s. */
  readonly timestampWindowMs?: number;
  /** Program run on each transition (state-change-command.ts), as argv or a command line. */
  readonly onStateChange?: string | readonly string[];
  readonly onStateChangeTimeoutMs?: number;
  /** Healthy backends at start (0 starts in fault). Default 1: the caller updates it. */
  readonly healthyBackends?: number;
  /** The backend-set generation reported to the peer. Default 0. */
  readonly generation?: number;
  /**
   * When to announce a VIP after adding it, in ms from the add, one ARP/NA round each: the
   * first at once, the repeats for the switch or host that missed it. Default [0, 200, 1000].
   */
  readonly announceAtMs?: readonly number[];
  readonly clock?: ClusterClock;
  readonly logger?: Logger;
}

/** UDP session replication's counts (session-replicator.ts), for GET /cluster and the metrics. */
export interface SessionReplicationStats {
  /** Session changes sent to the peer. */
  readonly sent: number;
  /** Changes received in accepted batches. */
  readonly received: number;
  /** Received changes installed as affinity hints. */
  readonly installed: number;
  /** Received changes for a listener this node does not have. */
  readonly unknownListener: number;
  /** Received session starts naming a backend this node's listener does not have: not installed. */
  readonly unknownBackend: number;
  /** Changes never sent: the engine's queue or this side's was full. */
  readonly dropped: number;
  /** Affinity hints held now. */
  readonly hints: number;
  readonly rejected: Readonly<Record<BatchRejectReason, number>>;
}

/** One state change, as logged, emitted and kept in the status. */
export interface ClusterTransition {
  readonly from: ClusterState;
  readonly to: ClusterState;
  readonly reason: TransitionReason;
  /** Wall-clock ms. */
  readonly at: number;
}

/** What `lb4 cluster` and GET /cluster show. A plain JSON-able object. */
export interface ClusterStatus {
  readonly node: {
    readonly id: string;
    /** Random per process: tells two nodes with one node id apart. */
    readonly instance: string;
    readonly priority: number;
    readonly state: ClusterState;
    /** Wall-clock ms of the last transition (or of the start). */
    readonly stateSince: number;
    readonly healthyBackends: number;
    readonly generation: number;
    readonly preempt: boolean;
    readonly heartbeat: { readonly address: string; readonly port: number } | null;
    readonly intervalMs: number;
    readonly deadAfter: number;
  };
  readonly peer: {
    /** Configured heartbeat address. */
    readonly address: string;
    readonly port: number;
    /** Heard within the dead time and not leaving. */
    readonly up: boolean;
    /** What its last accepted heartbeat said; null before the first one. */
    readonly id: string | null;
    readonly instance: string | null;
    /** Its last heartbeat had this node's id: a misconfiguration (give each its own --node-id). */
    readonly duplicateNodeId: boolean;
    readonly priority: number | null;
    readonly state: ClusterState | null;
    readonly healthyBackends: number | null;
    readonly generation: number | null;
    /** Ms since its last accepted heartbeat; null before the first one. */
    readonly lastHeartbeatAgeMs: number | null;
    readonly leaving: boolean;
    /** New epochs seen: how often it restarted while this node ran. */
    readonly restarts: number;
  };
  /** The two nodes report different backend-set generations: their configs differ. */
  readonly generationMismatch: boolean;
  readonly vips: readonly { readonly address: string; readonly dev: string; readonly held: boolean }[];
  readonly transitions: number;
  /** The latest transitions, oldest first (at most 16). */
  readonly recentTransitions: readonly ClusterTransition[];
  readonly heartbeats: {
    readonly sent: number;
    readonly sendErrors: number;
    readonly accepted: number;
    readonly rejected: Readonly<Record<RejectReason, number>>;
  };
  readonly vipErrors: number;
  /** UDP session replication, on a balancer's node (absent on a bare ClusterNode). */
  readonly sessions?: SessionReplicationStats;
}

export interface ClusterNodeEvents {
  transition: [ClusterTransition];
  reject: [{ reason: RejectReason; address: string; port: number }];
  'vip-error': [Error, Vip];
  'state-change-result': [StateChangeResult];
  /** The peer is heard after not being alive (first heartbeat, back from dead or leaving), or restarted. */
  'peer-up': [];
  /** A datagram with the session batch magic, for the session replicator to judge. */
  'session-batch': [Buffer, { address: string; port: number }];
}
