// Where the bench's three parties run: the load generators (client), the system under test and
// the backends.
//
//   loopback  all three in the bench's own network namespace, on 127.0.0.1 (the default);
//   veth      three network namespaces the bench makes, lb4b-<pid>-{c,lb,s}, joined by veth pairs:
//
//     client 198.18.1.2 --veth-- 198.18.1.1 [lb] 198.18.2.1 --veth-- 198.18.2.2 backends
//
//             The system under test listens on 198.18.1.1 in `lb`; the backends listen on
//             198.18.2.2 in `s`. `lb` forwards between its two links (ip_forward), and both ends
//             route through it: the client's default route and the backends' default route point
//             at `lb`. So `direct` (the client connects to 198.18.2.2) crosses the same two links
//             through the same router as every proxy, and lb4's NAT mode runs as the backends'
//             gateway: replies come back through lb's conntrack, client addresses are kept.
//
// 198.18.0.0/15 is the range set aside for benchmarks (RFC 2544); it exists only inside these
// namespaces. They are deleted at the end, on SIGINT/SIGTERM and on errors (processes.mjs runs
// the cleanup), and a run killed with SIGKILL leaves names whose pid is gone: the next run
// deletes them first (removeLeftovers).

import { execFileSync } from 'node:child_process';
import { addNamespace, deleteNamespaceNow, link, orphanNamespaces } from '../test/helpers/netns-core.mjs';

export const NS_PREFIX = 'lb4b';
/** The nftables table of an lb4-nat system on loopback: lb4b_<pid>, so a leftover names its maker. */
export const NAT_TABLE_PREFIX = 'lb4b_';

export const topologies = ['loopback', 'veth'];

/**
 * @typedef {object} Place where one party runs
 * @property {string | null} netns null: the bench's own namespace
 * @property {string} host the address it listens on (system, backends) or connects from (client)
 */

/**
 * @typedef {object} Topology
 * @property {'loopback' | 'veth'} name
 * @property {Place} client
 * @property {Place} system
 * @property {Place} backend
 * @property {string[]} namespaces the namespaces made (deleted by teardown)
 * @property {() => void} teardown synchronous; deletes the namespaces (and everything in them)
 * @property {string} description one line for the report
 */

/**
 * The names and addresses of a veth topology made by process `pid`: pure, so it is tested.
 * @param {number} pid
 */
export function vethPlan(pid) {
  const name = (suffix) => `${NS_PREFIX}-${pid}-${suffix}`;
  return {
    namespaces: { client: name('c'), system: name('lb'), backend: name('s') },
    client: '198.18.1.2',
    systemFront: '198.18.1.1',
    systemBack: '198.18.2.1',
    backend: '198.18.2.2',
    prefix: 24,
  };
}

/** @returns {Topology} */
function loopback() {
  const here = (host) => ({ netns: null, host });
  return {
    name: 'loopback',
    client: here('127.0.0.1'),
    system: here('127.0.0.1'),
    backend: here('127.0.0.1'),
    namespaces: [],
    teardown: () => {},
    description: 'loopback: client, system under test and backends in one network namespace, all on 127.0.0.1',
  };
}

/**
 * Makes the veth topology. On a failure halfway, what was made is deleted before the error
 * propagates.
 * @param {number} [pid]
 * @returns {Promise<Topology>}
 */
async function veth(pid = process.pid) {
  const plan = vethPlan(pid);
  const names = Object.values(plan.namespaces);
  const teardown = () => {
    for (const n of names) deleteNamespaceNow(n);
  };
  try {
    const c = await addNamespace(plan.namespaces.client);
    const lb = await addNamespace(plan.namespaces.system);
    const s = await addNamespace(plan.namespaces.backend);
    await link(c, lb, 'eth0', 'eth0');
    await link(lb, s, 'eth1', 'eth0');
    await c.ip('addr', 'add', `${plan.client}/${plan.prefix}`, 'dev', 'eth0');
    await lb.ip('addr', 'add', `${plan.systemFront}/${plan.prefix}`, 'dev', 'eth0');
    await lb.ip('addr', 'add', `${plan.systemBack}/${plan.prefix}`, 'dev', 'eth1');
    await s.ip('addr', 'add', `${plan.backend}/${plan.prefix}`, 'dev', 'eth0');
    await c.ip('route', 'add', 'default', 'via', plan.systemFront);
    await s.ip('route', 'add', 'default', 'via', plan.systemBack);
    execFileSync('ip', ['netns', 'exec', plan.namespaces.system, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    // Loopback reuses a TIME_WAIT port for a new outgoing connection (tcp_tw_reuse=2, the default,
    // means loopback only); across veth it would not, and runs that open thousands of connections
    // to the same backend one after another (idle-memory, conn-rate) would wait on TIME_WAIT
    // leftovers of the previous system. The same reuse inside these namespaces keeps the two
    // topologies alike; the sysctl is per namespace, nothing outside changes.
    for (const n of names) execFileSync('ip', ['netns', 'exec', n, 'sysctl', '-qw', 'net.ipv4.tcp_tw_reuse=1']);
  } catch (e) {
    teardown();
    throw e;
  }
  return {
    name: 'veth',
    client: { netns: plan.namespaces.client, host: plan.client },
    system: { netns: plan.namespaces.system, host: plan.systemFront },
    backend: { netns: plan.namespaces.backend, host: plan.backend },
    namespaces: names,
    teardown,
    description:
      `veth: three network namespaces joined by veth pairs (MTU 1500): client ${plan.client} -- ${plan.systemFront} [system under test, ip_forward on] ${plan.systemBack} -- ${plan.backend} backends; tcp_tw_reuse=1 in each (as loopback has by default); ` +
      'the load generators run in the client namespace (ip netns exec), both ends route through the system\'s namespace, so `direct` crosses the same links and router',
  };
}

/**
 * @param {'loopback' | 'veth'} name
 * @returns {Promise<Topology>}
 */
export async function makeTopology(name) {
  if (name === 'loopback') return loopback();
  if (name === 'veth') return veth();
  throw new Error(`unknown topology ${name}`);
}

/**
 * What an earlier run killed with SIGKILL left: lb4b-<pid>-* namespaces and lb4b_<pid> nftables
 * tables in this namespace whose pid is gone. Deleted; returns their names.
 * @returns {Promise<string[]>}
 */
export async function removeLeftovers() {
  const gone = await orphanNamespaces(NS_PREFIX);
  for (const n of gone) deleteNamespaceNow(n);
  let tables = '';
  try {
    tables = execFileSync('nft', ['list', 'tables'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    // no nft: nothing of ours can be there
  }
  for (const m of tables.matchAll(new RegExp(`^table inet (${NAT_TABLE_PREFIX}(\\d+))$`, 'gm'))) {
    if (Number(m[2]) === process.pid || pidAlive(Number(m[2]))) continue;
    deleteNatTable(m[1]);
    gone.push(`nftables table inet ${m[1]}`);
  }
  return gone;
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

/** Deletes an nftables table of ours in this namespace now, if it is there. @param {string} table */
export function deleteNatTable(table) {
  try {
    execFileSync('nft', ['delete', 'table', 'inet', table], { stdio: 'ignore' });
  } catch {
    // not there
  }
}
