// Network namespaces for root tests: a test makes its own (names "lb4t-<pid>-<name>", so runs
// on one machine never meet), links them with veth pairs or through a bridge, and they are
// deleted when the test ends, whether it passed, failed or threw, and when the process exits.
// Namespaces left by a run that was killed (its pid gone) are deleted at the next run's start.

import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import type { Test } from 'tap';

const run = promisify(execFile);

/** Whether this process may make namespaces. Root tests skip, with a message, when it may not. */
export const isRoot = process.getuid?.() === 0;
export const notRootMessage = 'needs root (network namespaces, rtnetlink, raw sockets): CI runs these as root';

/** Runs `ip ARGS...` and resolves with stdout; rejects with stderr in the message. */
export async function ip(...args: string[]): Promise<string> {
  try {
    return (await run('ip', args)).stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`ip ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

const made = new Set<string>();
let exitHookInstalled = false;

function deleteNow(name: string): void {
  try {
    execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  } catch {
    // gone already
  }
  made.delete(name);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Deletes lb4t- namespaces whose creating process is gone (a run killed before its cleanup). */
export async function deleteOrphans(): Promise<void> {
  const list = await ip('netns', 'list').catch(() => '');
  for (const line of list.split('\n')) {
    const m = /^(lb4t-(\d+)-\S+)/.exec(line);
    if (m && Number(m[2]) !== process.pid && !pidAlive(Number(m[2]))) deleteNow(m[1]);
  }
}

export interface Netns {
  /** The namespace's full name, for `ip netns exec`. */
  readonly name: string;
  /** `ip -n NAME ARGS...` */
  ip(...args: string[]): Promise<string>;
  /** The interface's MAC address. */
  mac(ifname: string): Promise<string>;
  /** The addresses on an interface, as "ip/prefix". */
  addresses(ifname: string): Promise<string[]>;
  /** The neighbour entry for `address`: MAC and state, or undefined. */
  neighbour(address: string, ifname: string): Promise<{ mac?: string; state: string[] } | undefined>;
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
    const name = `lb4t-${process.pid}-${short}`;
    deleteNow(name);
    made.add(name);
    t.teardown(() => deleteNow(name));
    await ip('netns', 'add', name);
    await ip('-n', name, 'link', 'set', 'lo', 'up');
    const ns: Netns = {
      name,
      ip: (...args) => ip('-n', name, ...args),
      mac: async (ifname) => (JSON.parse(await ip('-n', name, '-j', 'link', 'show', ifname)) as { address: string }[])[0].address,
      addresses: async (ifname) => {
        const info = JSON.parse(await ip('-n', name, '-j', 'addr', 'show', ifname)) as { addr_info: { local: string; prefixlen: number }[] }[];
        return info[0].addr_info.map((a) => `${a.local}/${a.prefixlen}`);
      },
      neighbour: async (address, ifname) => {
        const entries = JSON.parse(await ip('-n', name, '-j', 'neigh', 'show', address, 'dev', ifname)) as { lladdr?: string; state: string[] }[];
        return entries[0] ? { mac: entries[0].lladdr, state: entries[0].state } : undefined;
      },
    };
    out[short] = ns;
  }
  return out;
}

/** A veth pair between two namespaces, both ends named `ifname` and up. */
export async function link(a: Netns, b: Netns, ifname = 'eth0', bIfname = ifname): Promise<void> {
  await a.ip('link', 'add', ifname, 'type', 'veth', 'peer', 'name', bIfname, 'netns', b.name);
  await a.ip('link', 'set', ifname, 'up');
  await b.ip('link', 'set', bIfname, 'up');
}

/**
 * A switch: a bridge `br0` in `sw`, and each host's `eth0` on a port of it, all up. Returns when
 * every port forwards (a bridge port starts forwarding at once without STP, which is off).
 */
export async function bridge(sw: Netns, hosts: Netns[]): Promise<void> {
  await sw.ip('link', 'add', 'br0', 'type', 'bridge');
  await sw.ip('link', 'set', 'br0', 'up');
  for (const [i, host] of hosts.entries()) {
    const port = `p${i}`;
    await sw.ip('link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.name);
    await sw.ip('link', 'set', port, 'master', 'br0');
    await sw.ip('link', 'set', port, 'up');
    await host.ip('link', 'set', 'eth0', 'up');
  }
}
