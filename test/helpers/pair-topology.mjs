// The network of an HA pair, as test/ha/pair.test.ts and bench/failover.mjs build it: one
// bridge (in namespace `sw`) joining a client, two balancer nodes and two backends, one /24, a
// virtual IP on it; the client's TCP prober and the backends' name server (test/fixtures); and
// the reading of an outage from the prober's attempts. Plain JavaScript for the same reason as
// netns-core.mjs: the bench runs under plain Node.

import { fileURLToPath } from 'node:url';
import { bridge } from './netns-core.mjs';

/** Every address of the pair's network. The bridge ports are p0 (client), p1 (a), p2 (b), p3, p4. */
export const pairAddresses = Object.freeze({
  client: '192.0.2.1',
  a: '192.0.2.2',
  b: '192.0.2.3',
  s1: '192.0.2.11',
  s2: '192.0.2.12',
  vip: '192.0.2.10',
  prefix: 24,
});

/** Short names of the namespaces wirePair() expects: the switch, the client, the nodes, the backends. */
export const pairHosts = Object.freeze(['sw', 'c', 'a', 'b', 's1', 's2']);

/** Bridges the hosts in `sw` and gives each its address on eth0. */
export async function wirePair({ sw, c, a, b, s1, s2 }) {
  await bridge(sw, [c, a, b, s1, s2]);
  const plan = [[c, pairAddresses.client], [a, pairAddresses.a], [b, pairAddresses.b], [s1, pairAddresses.s1], [s2, pairAddresses.s2]];
  for (const [ns, address] of plan) await ns.ip('addr', 'add', `${address}/${pairAddresses.prefix}`, 'dev', 'eth0');
}

const fixture = (name) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

/**
 * The client: `node tcpProber HOST PORT EVERY_MS TIMEOUT_MS` opens a new TCP connection every
 * EVERY_MS and prints one JSON line per attempt ({start, end, ok, from}, wall-clock ms).
 */
export const tcpProber = fixture('tcp-prober.mjs');

/** A backend: `node tcpNameServer NAME PORT` answers every connection with NAME; prints {"ready":true}. */
export const tcpNameServer = fixture('tcp-name-server.mjs');

/**
 * The outage around `at` (a kill, wall-clock ms) seen in the prober's attempts, or undefined if
 * no connection started after `at` was served yet. servedAfterMs: from `at` to the end of the
 * first served connection started after it; gapMs: from the last served connection that ended
 * before `at` to that one; failedProbes: connections started after `at` (and before the first
 * served one) that failed.
 */
export function outage(attempts, at) {
  const after = attempts.filter((a) => a.ok && a.start > at).sort((x, y) => x.end - y.end)[0];
  if (!after) return undefined;
  const before = attempts.filter((a) => a.ok && a.end <= at).sort((x, y) => x.end - y.end).at(-1);
  const failedProbes = attempts.filter((a) => !a.ok && a.start > at && a.start < after.start).length;
  return { servedAfterMs: after.end - at, gapMs: after.end - (before?.end ?? at), failedProbes };
}
