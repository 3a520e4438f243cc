// Network namespaces for root tests: a test makes its own (names "lb4t-<pid>-<name>", so runs
// on one machine never meet), links them with veth pairs or through a bridge, and they are
// deleted when the test ends, whether it passed, failed or threw, and when the process exits.
// Namespaces left by a run that was killed (its pid gone) are deleted at the next run's start.
// The namespace work itself is netns-core.mjs, shared with bench/failover.mjs; this file ties
// it to tap.

import type { Test } from 'tap';
import { addNamespace, deleteNamespaceNow, orphanNamespaces, type Netns } from './netns-core.mjs';

export { bridge, ip, link, type Netns } from './netns-core.mjs';

/** Whether this process may make namespaces. Root tests skip, with a message, when it may not. */
export const isRoot = process.getuid?.() === 0;
export const notRootMessage = 'needs root (network namespaces, rtnetlink, raw sockets): CI runs these as root';

const prefix = 'lb4t';
const made = new Set<string>();
let exitHookInstalled = false;

function deleteNow(name: string): void {
  deleteNamespaceNow(name);
  made.delete(name);
}

/** Deletes lb4t- namespaces whose creating process is gone (a run killed before its cleanup). */
export async function deleteOrphans(): Promise<void> {
  for (const name of await orphanNamespaces(prefix)) deleteNow(name);
}

/**
 * Makes namespaces (lo up in each) that are deleted when `t` ends. `names` are short
 * suffixes ("a", "b", "client").
 */
export async function makeNamespaces<N extends string>(t: Test, ...names: N[]): Promise<Record<N, Netns>> {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => [...made].forEach(deleteNow));
  }
  const out = {} as Record<N, Netns>;
  for (const short of names) {
    const name = `${prefix}-${process.pid}-${short}`;
    made.add(name);
    t.teardown(() => deleteNow(name));
    out[short] = await addNamespace(name);
  }
  return out;
}
