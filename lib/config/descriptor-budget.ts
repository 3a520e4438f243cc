// Whether a config can run under this process's descriptor limit. Every worker opens its own
// SO_REUSEPORT socket per listener, so 1,024 listeners on 2 workers need 2,048 descriptors before
// the first client: under `ulimit -n 1024` such a config passed check-config, then `start` failed
// part-way with EMFILE. Validation (which check-config, start and reloads share) estimates what
// the config needs and refuses one that cannot fit, naming the numbers.
//
// The limit read is the soft RLIMIT_NOFILE as this process has it. Node raises its soft limit to
// the hard one when it starts, so `start` and `check-config` see the same, highest limit a process
// of theirs can have: there is nothing left to raise here.

import { openFileLimit } from '../api/descriptor-limit.js';
import { Lb4Error } from '../errors.js';

/** Node itself: stdio, libuv's epoll, signal and wake-up descriptors, the addon's event wake-up. */
export const runtimeDescriptors = 32;
/** Each worker's own: its epoll, its command eventfd, and the reserve it gives up to shed load under EMFILE. */
export const descriptorsPerWorker = 3;
/** The cluster node: heartbeat sockets, rtnetlink, the announcement sockets. */
export const clusterDescriptors = 8;
/**
 * Room left for flows once everything is open: a TCP flow holds two sockets and, while it moves
 * bytes, a pipe (two more), so this is a handful of flows. A config that leaves less could start
 * and then serve nobody; more than that is the operator's to size (a low limit is also how the
 * shedding under EMFILE is tested).
 */
export const flowDescriptors = 16;

/** What the estimate needs to know of a config. */
export interface DescriptorDemand {
  readonly listeners: number;
  readonly workers: number;
  /** Backends whose listener has active health checks: each check holds a socket while it runs. */
  readonly checkedBackends: number;
  readonly admin: boolean;
  readonly cluster: boolean;
}

/** The descriptors a config needs, at the least, to open and serve a few flows. */
export function descriptorsNeeded(d: DescriptorDemand): number {
  // One listener at a time also opens a probe socket for its fixed port before its group binds.
  const listening = d.listeners * d.workers + 1;
  return runtimeDescriptors + d.workers * descriptorsPerWorker + listening + d.checkedBackends + (d.admin ? 1 : 0) + (d.cluster ? clusterDescriptors : 0) + flowDescriptors;
}

/**
 * Refuses a config that needs more descriptors than `limit` (default: this process's soft limit;
 * no check when it is unlimited or unreadable). `field` is the option that holds the listeners.
 */
export function checkDescriptorBudget(d: DescriptorDemand, field: string, limit: number | undefined = openFileLimit()): void {
  if (limit === undefined) return;
  const needed = descriptorsNeeded(d);
  if (needed <= limit) return;
  const others = needed - d.listeners * d.workers;
  throw new Lb4Error(
    'LB4_INVALID_OPTION',
    `${d.listeners} listener(s) on ${d.workers} worker(s) need ${d.listeners * d.workers} listening sockets, ${needed} descriptors in all with ${others} for lb4 itself and its first flows, but the descriptor limit (ulimit -n) is ${limit}: raise the limit, or run fewer listeners or workers`,
    { field },
  );
}
