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

import { Balancer, type BalancerDeps } from './balancer.js';
import type { BalancerOptions } from './config.js';

export { Balancer } from './balancer.js';
export type {
  BackendInfo,
  BalancerDeps,
  BalancerEvents,
  BalancerStats,
  Connection,
  ConnectionFilter,
  Counters,
  ListenerAddress,
} from './balancer.js';
export { algorithms, backendStates, tunables } from './config.js';
export type { Algorithm, BackendOptions, BackendState, BalancerConfig, BalancerOptions, ListenerOptions } from './config.js';
export { Lb4Error } from './errors.js';
export type { Lb4ErrorCode } from './errors.js';
export { formatDuration, parseDuration } from './duration.js';
export { createLogger } from './log.js';
export type { LogFormat, LogLevel, Logger } from './log.js';
export { counters } from './native.js';
export type { CounterInfo, CounterName } from './native.js';

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
 * @param deps - optional logger (pino); silent by default.
 */
export function startBalancer(options: BalancerOptions, deps?: BalancerDeps): Promise<Balancer> {
  return Balancer.start(options, deps);
}
