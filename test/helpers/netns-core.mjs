// Network namespaces without a test framework: make one (lo up), link namespaces with veth pairs
// or through a bridge, delete them, and find the ones a killed run left behind. Plain JavaScript
// so that both the tap tests (through test/helpers/netns.ts, which ties each namespace to a
// test's teardown) and bench/failover.mjs (which runs under plain Node) use the same code.
//
// A namespace's name is PREFIX-PID-SUFFIX: PREFIX says whose it is ("lb4t" for tests, "lb4fo"
// for the failover bench), PID is the process that made it, so a later run deletes a name whose
// maker is gone and never one of a run still going.

import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Runs `ip ARGS...` and resolves with stdout; rejects with stderr in the message. */
export async function ip(...args) {
  try {
    return (await run('ip', args)).stdout;
  } catch (err) {
    throw new Error(`ip ${args.join(' ')}: ${err.stderr?.trim() || err.message}`);
  }
}

/**
 * argv that runs `node SCRIPT ARGS...`, inside `netns` if given. tap puts its process tracker
 * into every child's NODE_OPTIONS; env(1) removes it (it would double the start-up time) and
 * then execs node, as `ip netns exec` execs env: the child's pid is node's, so signals reach it.
 */
export function nodeCommand(script, args, netns) {
  const argv = ['env', '-u', 'NODE_OPTIONS', process.execPath, script, ...args];
  return netns ? ['ip', ['netns', 'exec', netns, ...argv]] : [argv[0], argv.slice(1)];
}

/** Deletes a namespace now (synchronously, so it also works in an exit handler); a missing one is fine. */
export function deleteNamespaceNow(name) {
  try {
    execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  } catch {
    // gone already
  }
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

/** Names of PREFIX-PID-* namespaces whose maker PID is gone (and is not this process). */
export async function orphanNamespaces(prefix) {
  const list = await ip('netns', 'list').catch(() => '');
  const pattern = new RegExp(`^(${prefix}-(\\d+)-\\S+)`);
  const out = [];
  for (const line of list.split('\n')) {
    const m = pattern.exec(line);
    if (m && Number(m[2]) !== process.pid && !pidAlive(Number(m[2]))) out.push(m[1]);
  }
  return out;
}

/** The namespace NAME as an object: `ip -n NAME ...` and the few reads the HA code needs. */
export function netnsHandle(name) {
  return {
    name,
    ip: (...args) => ip('-n', name, ...args),
    mac: async (ifname) => JSON.parse(await ip('-n', name, '-j', 'link', 'show', ifname))[0].address,
    addresses: async (ifname) => {
      const info = JSON.parse(await ip('-n', name, '-j', 'addr', 'show', ifname));
      return info[0].addr_info.map((a) => `${a.local}/${a.prefixlen}`);
    },
    neighbour: async (address, ifname) => {
      const entries = JSON.parse(await ip('-n', name, '-j', 'neigh', 'show', address, 'dev', ifname));
      return entries[0] ? { mac: entries[0].lladdr, state: entries[0].state } : undefined;
    },
    pids: async () => (await ip('netns', 'pids', name)).split('\n').filter(Boolean).map(Number),
  };
}

/**
 * Makes namespace NAME with lo up (deleting a leftover of the same name first). The caller owns
 * it: it must call deleteNamespaceNow(NAME) when done.
 */
export async function addNamespace(name) {
  deleteNamespaceNow(name);
  await ip('netns', 'add', name);
  await ip('-n', name, 'link', 'set', 'lo', 'up');
  return netnsHandle(name);
}

/** A veth pair between two namespaces, both ends named `ifname` and up. */
export async function link(a, b, ifname = 'eth0', bIfname = ifname) {
  await a.ip('link', 'add', ifname, 'type', 'veth', 'peer', 'name', bIfname, 'netns', b.name);
  await a.ip('link', 'set', ifname, 'up');
  await b.ip('link', 'set', bIfname, 'up');
}

/**
 * A switch: a bridge `br0` in `sw`, and each host's `eth0` on a port of it (`p0`, `p1`, ... in
 * the order given), all up. Returns when every port forwards (a bridge port starts forwarding at
 * once without STP, which is off).
 */
export async function bridge(sw, hosts) {
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
