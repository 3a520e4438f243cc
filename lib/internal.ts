// lb4's own entry for its CLI and its tests: a balancer started with hooks that are no part of
// the package's API (a stand-in engine, a hand-advanced clock, the config file a reload reads
// again). package.json's "exports" does not list this file, so a program that installs lb4 cannot
// import it, and the published types of `Balancer` do not show the statics that take these hooks.

import { Balancer } from './balancer.js';
import type { BalancerOptions, InternalDeps } from './types.js';

export type { Clock } from './clock.js';
export type { InternalDeps } from './types.js';

/** `startBalancer` with lb4's own hooks. */
export function startWithHooks(options: BalancerOptions, deps: InternalDeps): Promise<Balancer> {
  return Balancer.start(options, deps);
}
