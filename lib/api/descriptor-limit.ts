// How many connections the admin API may hold, given the process's descriptor limit. The admin
// port's own limit (admin.maxConnections, 256 by default) protects the data plane only while it is
// well below the number of descriptors the process may open: under `ulimit -n 256`, 256 idle admin
// connections take every descriptor, and the data plane then sheds every new client. So the admin
// API never holds more than a quarter of the soft limit, whatever the config says.

import { readFileSync } from 'node:fs';

/** The share of the descriptor limit the admin API may hold at most. */
const adminShare = 4;

/**
 * The soft RLIMIT_NOFILE of this process, from /proc/self/limits (Node has no getrlimit);
 * undefined when it cannot be read or is unlimited.
 */
export function openFileLimit(limits?: string): number | undefined {
  let text = limits;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return undefined;
    }
  }
  const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(text);
  if (!m || m[1] === 'unlimited') return undefined;
  return Number(m[1]);
}

/** The connection limit to apply: the configured one, lowered to a quarter of the descriptor limit. */
export function adminConnectionLimit(configured: number, descriptorLimit: number | undefined): number {
  if (descriptorLimit === undefined) return configured;
  return Math.max(1, Math.min(configured, Math.floor(descriptorLimit / adminShare)));
}
