// A listener's traffic policy (native/core/policy/): access lists (`allow`, `deny`) and limits
// (`maxConnections`, `maxConnectionsPerSource`, `connectionRatePerSource`, `queueSize`,
// `queueTimeout`). Each is an entry of the option table; the top-level value is every listener's
// default, and a listener object may set its own. Validated here, once, with the field named.

import type { NativeListenerPolicy } from '../engine/native-types.js';
import { Lb4Error } from '../errors.js';
import type { ListenerPolicyConfig } from '../policy-types.js';
import { formatDuration } from './duration.js';
import { networkFamilies, parseNetworks } from './network.js';
import { checkTunable } from './options.js';

/** The policy options, as a listener object or the top level gives them. */
export const listenerPolicyKeys = ['allow', 'deny', 'maxConnections', 'maxConnectionsPerSource', 'connectionRatePerSource', 'queueSize', 'queueTimeout'] as const;

type PolicySource = Partial<Record<(typeof listenerPolicyKeys)[number], unknown>>;

/** The top-level policy: every listener's default. */
export function validatePolicyDefaults(options: PolicySource): ListenerPolicyConfig {
  return policyFrom(options, '', null);
}

/**
 * A listener's policy: its own values over `defaults`. `protocol` and `forward` bound it: only a
 * TCP proxy listener has limits, and a nat listener's packets never reach lb4's checks.
 */
export function validateListenerPolicy(opts: PolicySource, field: string, defaults: ListenerPolicyConfig, protocol: string, forward: string): ListenerPolicyConfig {
  const policy = policyFrom(opts, `${field}.`, defaults);
  const where = (key: (typeof listenerPolicyKeys)[number]): string => (opts[key] === undefined ? key : `${field}.${key}`);
  if (forward === 'nat') {
    const set = listenerPolicyKeys.find((k) => (k === 'allow' || k === 'deny' ? policy[k].length > 0 : k === 'queueTimeout' ? false : policy[k] !== 0));
    if (set) throw new Lb4Error('LB4_INVALID_OPTION', 'access lists and limits need forward: proxy; the kernel forwards a nat listener', { field: where(set) });
  }
  if (protocol === 'udp') {
    const limit = (['maxConnections', 'maxConnectionsPerSource', 'connectionRatePerSource', 'queueSize'] as const).find((k) => policy[k] !== 0);
    if (limit) throw new Lb4Error('LB4_INVALID_OPTION', 'connection limits are for TCP listeners (a UDP listener has udpMaxSessions)', { field: where(limit) });
  }
  return policy;
}

/** What a listener's policy is checked against once the listener is known. */
export interface PolicyReach {
  /** The listener as written (`127.0.0.1:80`, `:443`), for the message. */
  listen: string;
  /** The client families it accepts: an every-interface listener takes both. */
  families: ReadonlySet<4 | 6>;
  /** Whether any of its backends has a maxConnections (the only thing a flow ever queues for). */
  cappedBackend: boolean;
}

/**
 * Refuses a policy that can never do what it says: a queue no flow can enter (the engine queues
 * a flow only when every backend it could take is at its maxConnections), and an allow list
 * that no client of the listener's address family can match (it would refuse every client).
 */
export function checkPolicyReach(policy: ListenerPolicyConfig, opts: PolicySource, field: string, reach: PolicyReach): void {
  const where = (key: (typeof listenerPolicyKeys)[number]): string => (opts[key] === undefined ? key : `${field}.${key}`);
  if (policy.queueSize > 0 && !reach.cappedBackend) {
    throw new Lb4Error('LB4_INVALID_OPTION', `no flow of ${reach.listen} can ever queue: flows queue only when every backend is at its maxConnections, and none of its backends has one (set maxconn=N on a backend, or drop the queue)`, { field: where('queueSize') });
  }
  // A dual-stack listener takes both families, so any list reaches someone there.
  const listed = networkFamilies(policy.allow);
  if (policy.allow.length > 0 && reach.families.size === 1 && ![...reach.families].some((f) => listed.has(f))) {
    const [family] = reach.families;
    throw new Lb4Error('LB4_INVALID_OPTION', `no client of ${reach.listen} can match: it takes IPv${family} clients only and the list holds only IPv${family === 4 ? 6 : 4} networks`, { field: where('allow') });
  }
}

function policyFrom(opts: PolicySource, prefix: string, defaults: ListenerPolicyConfig | null): ListenerPolicyConfig {
  const networks = (key: 'allow' | 'deny'): readonly string[] => (opts[key] === undefined && defaults ? defaults[key] : parseNetworks(opts[key], `${prefix}${key}`));
  const count = (key: 'maxConnections' | 'maxConnectionsPerSource' | 'connectionRatePerSource' | 'queueSize' | 'queueTimeout'): number =>
    opts[key] === undefined && defaults ? defaults[key] : (checkTunable(key, opts[key], `${prefix}${key}`) as number);
  return Object.freeze({
    allow: networks('allow'),
    deny: networks('deny'),
    maxConnections: count('maxConnections'),
    maxConnectionsPerSource: count('maxConnectionsPerSource'),
    connectionRatePerSource: count('connectionRatePerSource'),
    queueSize: count('queueSize'),
    queueTimeout: count('queueTimeout'),
  });
}

/** The policy as the engine takes it (at open, and on reload). */
export function nativeListenerPolicy(p: ListenerPolicyConfig): NativeListenerPolicy {
  return {
    allow: [...p.allow],
    deny: [...p.deny],
    maxConnections: p.maxConnections,
    maxConnectionsPerSource: p.maxConnectionsPerSource,
    connectionRatePerSource: p.connectionRatePerSource,
    queueSize: p.queueSize,
    queueTimeoutMs: p.queueTimeout,
  };
}

/** The parts of a policy that are set, in words (check-config); none for the defaults. */
export function describePolicy(p: ListenerPolicyConfig): string[] {
  return [
    ...(p.allow.length > 0 ? [`allows ${p.allow.join(', ')}`] : []),
    ...(p.deny.length > 0 ? [`denies ${p.deny.join(', ')}`] : []),
    ...(p.maxConnections > 0 ? [`at most ${p.maxConnections} flows`] : []),
    ...(p.maxConnectionsPerSource > 0 ? [`at most ${p.maxConnectionsPerSource} flows per source and worker`] : []),
    ...(p.connectionRatePerSource > 0 ? [`at most ${p.connectionRatePerSource} new flows/s per source and worker`] : []),
    ...(p.queueSize > 0 ? [`queues ${p.queueSize} flows for ${formatDuration(p.queueTimeout)}`] : []),
  ];
}

/** Which parts of a policy differ, in the words a reload reports: `allow`, `deny`, `limits`. */
export function policyDifferences(before: ListenerPolicyConfig, after: ListenerPolicyConfig): string[] {
  const differs = (keys: readonly (keyof ListenerPolicyConfig)[]) => keys.some((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]));
  return [
    ...(differs(['allow']) ? ['allow'] : []),
    ...(differs(['deny']) ? ['deny'] : []),
    ...(differs(['maxConnections', 'maxConnectionsPerSource', 'connectionRatePerSource', 'queueSize', 'queueTimeout']) ? ['limits'] : []),
  ];
}

/** Whether two policies differ (a reload sends the new one). */
export function samePolicy(a: ListenerPolicyConfig, b: ListenerPolicyConfig): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
