/**
 * lb4: a TCP load balancer for Linux with a splice(2) data plane, usable as a library.
 *
 * @example
 * ```ts
 * import { startBalancer } from 'lb4';
 * const lb = await startBalancer({ listen: ':8080', backends: ['127.0.0.1:9001', '127.0.0.1:9002,weight=2'] });
 * console.log(lb.address().port, lb.stats().listeners[0].counters.flows_total);
 * await lb.close({ drainTimeout: '5s' });
 * ```
 *
 * @packageDocumentation
 */

import { Balancer } from './balancer.js';
import type { BalancerDeps, BalancerOptions } from './types.js';

/** A running load balancer: see {@link startBalancer}. */
export { Balancer } from './balancer.js';
export type {
  Algorithm,
  BackendInfo,
  BackendOptions,
  BackendState,
  BalancerConfig,
  BalancerDeps,
  BalancerOptions,
  BalancerStats,
  Connection,
  ConnectionFilter,
  CounterInfo,
  CounterName,
  Counters,
  BackendTransitions,
  HistogramName,
  Latency,
  LatencyHistogram,
  ListenerAddress,
  ListenerOptions,
  SniRouteOptions,
} from './types.js';
/** Every event a balancer emits (`lb.on('backend-added', (e) => ...)`) and its payload. */
export type {
  BackendAddedEvent,
  BackendEvent,
  BackendHealthEvent,
  BackendRemovedEvent,
  BackendStateEvent,
  BackendWeightEvent,
  BalancerEvents,
  ChangeSource,
} from './events.js';
/**
 * High availability: `cluster` in {@link BalancerOptions} makes the balancer one node of a pair
 * that moves virtual IPs to whichever node is active ({@link ClusterOptions}: peer, key, VIPs,
 * priority, heartbeat interval, dead-after, preempt, on-state-change). {@link Balancer.clusterStatus}
 * reports the node's state, the peer as its heartbeats describe it and the VIPs held;
 * `BalancerDeps.vipDriver` replaces the rtnetlink driver (tests, or an address that moves through
 * a cloud API instead).
 */
export type { BackendPolicyOptions, ListenerPolicyConfig, ListenerPolicyOptions } from './policy-types.js';
export type { ClusterConfig, ClusterOptions, Vip } from './types.js';
export type { ClusterStatus, ClusterTransition } from './cluster/cluster-types.js';
export type { ClusterState, RejectReason } from './cluster/heartbeat.js';
export type { VipDriver } from './cluster/vip-driver.js';
/** Every balancing algorithm, backend state and listener protocol, as the options spell them. */
export { algorithms, backendStates, protocols } from './config/enums.js';
export type { Protocol } from './config/enums.js';
/** The tunables (algorithm, workers, timeouts, ...): flag, help, default and range of each. */
export { tunables } from './config/options.js';
/** An error in what a person asked of lb4, with a stable `code` and the `field` it is about. */
export { AbortError, Lb4Error } from './errors.js';
export type { Lb4ErrorCode } from './errors.js';
/** Durations as people write them (`500ms`, `2s`, `1m`) to and from milliseconds. */
export { formatDuration, parseDuration } from './config/duration.js';
/** A pino logger writing JSON (or text for reading) to stderr. */
export { createLogger } from './log.js';
export type { LogFormat, LogLevel, Logger } from './log.js';
/**
 * The data plane's counters (name, kind, help), in the order the engine reports them. Read from
 * the native addon the first time the list is used, not when lb4 is imported.
 */
export { counters } from './engine/addon.js';

/**
 * Starts a load balancer: validates `options` (throwing an {@link Lb4Error} that names the bad
 * field), resolves host names, opens every listener on every worker and starts forwarding.
 * Listening errors reject with a Node-style system error (`code`, `errno`, `syscall`, `address`,
 * `port`) and leave nothing open.
 *
 * The returned {@link Balancer} keeps the process alive until {@link Balancer.close} (or
 * {@link Balancer.unref}).
 *
 * @param options - listeners, backends, algorithm, workers and timeouts.
 * @param deps - optional logger (pino; silent by default), and stand-ins for the VIP and NAT tools.
 */
export function startBalancer(options: BalancerOptions, deps?: BalancerDeps): Promise<Balancer> {
  return Balancer.start(options, deps);
}
