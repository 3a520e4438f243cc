// A balancer's place in an HA pair: the ClusterNode made from the validated `cluster` config, fed
// with what the balancer knows (how many backends are healthy: none puts the node in fault and
// gives the VIPs up; the backend set's generation, so two nodes running different configs see it),
// and stopped first when the balancer closes, so the peer takes over before the drain starts.
// lib/compose.ts makes it; nothing here knows the registry or the engine.

import type { Logger } from 'pino';
import type { ClusterConfig } from '../types.js';
import { loadClusterKey } from './cluster-key.js';
import { ClusterNode, type ClusterStatus } from './cluster-node.js';
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
}

export class BalancerNode {
  readonly node: ClusterNode;
  readonly #summary: () => BackendSummary;
  #timer: NodeJS.Timeout | undefined;
  #healthy: number;

  constructor(o: BalancerNodeOptions) {
    const c = o.config;
    const first = o.summary();
    this.#summary = o.summary;
    this.#healthy = first.healthy;
    this.node = new ClusterNode({
      nodeId: c.nodeId,
      priority: c.priority,
      heartbeat: c.heartbeat,
      peer: c.peer,
      key: loadClusterKey({ keyFile: c.keyFile ?? undefined, env: o.env, field: 'cluster.keyFile' }),
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
  }

  /** Binds the heartbeat socket (removing any VIP a crash left behind) and starts electing. */
  async start(): Promise<void> {
    await this.node.start();
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
    return this.node.status();
  }

  /** Gives the VIPs up and sends the leaving heartbeat. Idempotent. */
  stop(): Promise<void> {
    clearInterval(this.#timer);
    return this.node.stop();
  }
}
