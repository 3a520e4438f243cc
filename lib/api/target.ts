// What the admin API needs of a running balancer, declared here by the API itself: the facade
// (lib/balancer.ts) implements it, and the composition root (lib/compose.ts) starts the API with
// the facade as its target, so the API never imports either. Tests use fakes.

import type {
  BackendInfo,
  BackendOptions,
  BackendScope,
  BackendState,
  BalancerConfig,
  BalancerOptions,
  BalancerStats,
  Connection,
  ConnectionFilter,
  ListenerAddress,
  ReloadSummary,
} from '../types.js';
import type { BalancerEvents } from '../events.js';
import type { ClusterStatus } from '../cluster/cluster-types.js';

export interface AdminTarget {
  readonly config: BalancerConfig;
  readonly uptimeSeconds: number;
  addresses(): readonly ListenerAddress[];
  backends(scope?: BackendScope): BackendInfo[];
  stats(): BalancerStats;
  addBackend(backend: string | BackendOptions, scope?: BackendScope): Promise<BackendInfo[]>;
  removeBackend(id: string, scope?: BackendScope & { drainTimeout?: number | string }): Promise<void>;
  setBackendWeight(id: string, weight: number, scope?: BackendScope): Promise<BackendInfo[]>;
  setBackendState(id: string, state: BackendState, scope?: BackendScope & { drainTimeout?: number | string }): Promise<BackendInfo[]>;
  connections(filter?: ConnectionFilter): Promise<Connection[]>;
  /** The HA node's status; null when the balancer is not one of a pair. */
  clusterStatus(): ClusterStatus | null;
  /** New options, or none to re-read the config file the balancer was started from. */
  reload(options?: BalancerOptions): Promise<ReloadSummary>;
  on<K extends keyof BalancerEvents>(event: K, listener: (...args: BalancerEvents[K]) => void): unknown;
  off<K extends keyof BalancerEvents>(event: K, listener: (...args: BalancerEvents[K]) => void): unknown;
}
