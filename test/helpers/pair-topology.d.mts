// Types of pair-topology.mjs, for the TypeScript tests.

import type { Netns } from './netns-core.mjs';

export const pairAddresses: Readonly<{ client: string; a: string; b: string; s1: string; s2: string; vip: string; prefix: number }>;
export type PairHost = 'sw' | 'c' | 'a' | 'b' | 's1' | 's2';
export const pairHosts: readonly PairHost[];
export function wirePair(hosts: Record<PairHost, Netns>): Promise<void>;
export const tcpProber: string;
export const tcpNameServer: string;

/** One line of the TCP prober: a connection attempt, wall-clock ms. */
export interface Attempt {
  start: number;
  end: number;
  ok: boolean;
  from: string;
}
export function outage(attempts: Attempt[], at: number): { servedAfterMs: number; gapMs: number; failedProbes: number } | undefined;
