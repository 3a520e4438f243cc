// A balancer's place in an HA pair: the ClusterNode made from the validated `cluster` config, fed
// with what the balancer knows (how many backends are healthy: none puts the node in fault and
// gives the VIPs up; the backend set's generation, so two nodes running different configs see it),
// and stopped first when the balancer closes, so the peer takes over before the drain starts.
// lib/compose.ts makes it; nothing here knows the registry or the engine.

import type { Logger } from 'pino';
import type { ClusterConfig } from '../types.js';
import { loadClusterKey } from './cluster-key.js';
import { ClusterNode, systemClock, type ClusterStatus } from './cluster-node.js';
import { SessionReplicator, type ReplicationEngine, type SessionNames } from './session-replicator.js';
import { NativeVipDriver, type VipDriver } from './vip-driver.js';

/** What the balancer tells the node, read again every heartbeat interval and on health changes. */
export interface BackendSummary {
  /** Backends that may take new flows by state and health (each listener's counted apart). */
  readonly healthy: number;
  /** A hash of the backend set: equal on two nodes with the same backends. */
  readonly generation: number;
}

export interface BalancerNodeOptions {
  readonly config: ClusterConfig;
  readonly summary: () => BackendSummary;
  readonly logger: Logger;
  /** Default: the addon's rtnetlink driver. Tests give a fake. */
  readonly vipDriver?: VipDriver;
  readonly env?: NodeJS.ProcessEnv;
  /** The engine and the names both nodes agree on: UDP sessions go to the peer and come back as hints. */
  readonly sessions?: { readonly engine: ReplicationEngine; readonly names: SessionNames };
}

export class BalancerNode {
  readonly node: ClusterNode;
  readonly #replicator: SessionReplicator | undefined;
  readonly #summary: () => BackendSummary;
  #timer: NodeJS.Timeout | undefined;
  #healthy: number;

  constructor(o: BalancerNodeOptions) {
    const c = o.config;
    const first = o.summary();
    this.#summary = o.summary;
    this.#healthy = first.healthy;
    const key = loadClusterKey({ keyFile: c.keyFile ?? undefined, env: o.env, field: 'cluster.keyFile' });
    this.node = new ClusterNode({
      nodeId: c.nodeId,
      priority: c.priority,
      heartbeat: c.heartbeat,
      peer: c.peer,
      key,
      vips: c.vips,
      vipDriver: o.vipDriver ?? new NativeVipDriver(),
      intervalMs: c.heartbeatIntervalMs,
      deadAfter: c.deadAfter,
      preempt: c.preempt,
      ...(c.onStateChange === null ? {} : { onStateChange: c.onStateChange }),
      healthyBackends: first.healthy,
      generation: first.generation,
      logger: o.logger,
    });
    if (o.sessions) {
      const replicator = new SessionReplicator({ ...o.sessions, key, instance: this.node.instance, send: (d) => this.node.sendToPeer(d), clock: systemClock, logger: o.logger });
      this.node.on('session-batch', (datagram, from) => replicator.receive(datagram, from));
      this.node.on('peer-up', () => replicator.resync());
      this.#replicator = replicator;
    }
  }

  /** Binds the heartbeat socket (removing any VIP a crash left behind) and starts electing. */
  async start(): Promise<void> {
    await this.node.start();
    this.#replicator?.start();
    // Operator changes (drain, state) have no event of their own: a look every interval costs a
    // walk over the backends, and a new fault is seen within one heartbeat.
    this.#timer = setInterval(() => this.update(), this.node.status().node.intervalMs);
    this.#timer.unref();
  }

  /** Reads the summary again and tells the node what changed. */
  update(): void {
    const s = this.#summary();
    this.node.setGeneration(s.generation);
    if (s.healthy !== this.#healthy) {
      this.#healthy = s.healthy;
      this.node.setHealthyBackends(s.healthy);
    }
  }

  status(): ClusterStatus {
    const s = this.node.status();
    return this.#replicator ? { ...s, sessions: this.#replicator.stats() } : s;
  }

  /** Gives the VIPs up and sends the leaving heartbeat. Idempotent. */
  stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#replicator?.stop();
    return this.node.stop();
  }
}
