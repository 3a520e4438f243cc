// The VIP driver against the real kernel, as root, inside network namespaces the test makes and
// always deletes: IPv4 and IPv6 addresses added to and removed from a veth (checked with
// `ip addr` as well as with has()), errors shaped like Node's, and the announcements seen from
// the other end of the link: gratuitous ARP and the unsolicited neighbour advertisement each
// move the peer's neighbour entry for the VIP to this node's MAC address.

import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import type { Vip } from '../../lib/cluster/vip.js';
import { nodeCommand } from '../helpers/cluster-child.js';
import { buildDist } from '../helpers/cli.js';
import { deleteOrphans, isRoot, link, makeNamespaces, notRootMessage, type Netns } from '../helpers/netns.js';
import { until } from '../helpers/sockets.js';

const fixture = fileURLToPath(new URL('../fixtures/vip-ops.mjs', import.meta.url));

type Op = { op: 'add' | 'remove' | 'has' | 'announce'; vip: Vip; count?: number };
type Result = { ok?: unknown; error?: { message: string; code: string; errno: number; syscall: string } };

/** Runs driver calls in a node process inside `ns`. */
async function inside(ns: Netns, ops: Op[]): Promise<Result[]> {
  const [command, args] = nodeCommand(fixture, [JSON.stringify(ops)], ns.name);
  const { stdout } = await promisify(execFile)(command, args, { timeout: 30_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!);
}

const v4: Vip = { ip: '192.0.2.10', prefix: 24, dev: 'eth0', family: 4 };
const v6: Vip = { ip: '2001:db8::10', prefix: 64, dev: 'eth0', family: 6 };

if (!isRoot) {
  t.comment(`test/ha/vip.test.ts skipped: ${notRootMessage}`);
  t.pass('skipped: not root', { skip: notRootMessage });
} else {
  await deleteOrphans();
  await buildDist();

  t.test('add, has, remove an IPv4 and an IPv6 address on a veth', async (t) => {
    const { node, peer } = await makeNamespaces(t, 'node', 'peer');
    await link(node, peer);
    const results = await inside(node, [
      { op: 'has', vip: v4 },
      { op: 'add', vip: v4 },
      { op: 'add', vip: v6 },
      { op: 'has', vip: v4 },
      { op: 'has', vip: v6 },
      { op: 'add', vip: v4 },
    ]);
    t.same(results, [{ ok: false }, { ok: true }, { ok: true }, { ok: true }, { ok: true }, { ok: false }], 'added once; a second add finds it there');
    const addrs = await node.addresses('eth0');
    t.ok(addrs.includes('192.0.2.10/24'), `ip addr shows the IPv4 VIP (${addrs.join(' ')})`);
    t.ok(addrs.includes('2001:db8::10/64'), 'ip addr shows the IPv6 VIP');
    const info = JSON.parse(await node.ip('-j', 'addr', 'show', 'eth0')) as { addr_info: { local: string; nodad?: boolean; tentative?: boolean }[] }[];
    const six = info[0].addr_info.find((a) => a.local === '2001:db8::10');
    t.ok(six?.nodad && !six?.tentative, 'the IPv6 VIP skips DAD: usable at once, not tentative');
    t.same(await peer.addresses('eth0').then((a) => a.filter((x) => !x.startsWith('fe80'))), [], 'nothing on the other end');

    const removed = await inside(node, [
      { op: 'remove', vip: v4 },
      { op: 'remove', vip: v6 },
      { op: 'remove', vip: v4 },
      { op: 'has', vip: v4 },
      { op: 'has', vip: v6 },
    ]);
    t.same(removed, [{ ok: true }, { ok: true }, { ok: false }, { ok: false }, { ok: false }], 'removed once; a second remove finds nothing');
    const left = await node.addresses('eth0');
    t.notOk(left.some((a) => a.startsWith('192.0.2.10/') || a.startsWith('2001:db8::10/')), `ip addr shows neither (${left.join(' ')})`);
  });

  t.test('failures are Node-style errors', async (t) => {
    const { node } = await makeNamespaces(t, 'node');
    const r = await inside(node, [
      { op: 'add', vip: { ...v4, dev: 'nosuchif0' } },
      { op: 'has', vip: { ...v6, dev: 'nosuchif0' } },
      { op: 'announce', vip: { ...v4, dev: 'lo' } },
      { op: 'announce', vip: { ...v6, dev: 'lo' } },
    ]);
    t.match(r[0].error, { code: 'ENODEV', errno: -19, syscall: 'if_nametoindex', message: /^cannot add virtual IP: if_nametoindex ENODEV 192\.0\.2\.10\/24 dev nosuchif0/ });
    t.match(r[1].error, { code: 'ENODEV', message: /^cannot list addresses/ });
    t.match(r[2].error, { code: 'ENOTSUP', syscall: 'announce', message: /cannot send gratuitous ARP: .*interface lo is not Ethernet/ });
    t.match(r[3].error, { code: 'ENOTSUP', message: /cannot send neighbour advertisement/ });
  });

  t.test('announcements move the peer’s neighbour entry to this node', async (t) => {
    const { node, peer } = await makeNamespaces(t, 'node', 'peer');
    await link(node, peer);
    await node.ip('addr', 'add', '192.0.2.2/24', 'dev', 'eth0');
    await peer.ip('addr', 'add', '192.0.2.1/24', 'dev', 'eth0');
    await peer.ip('addr', 'add', '2001:db8::1/64', 'dev', 'eth0', 'nodad');
    const nodeMac = await node.mac('eth0');
    // The peer still believes the VIP is at another host's MAC, as after a failover: a
    // gratuitous ARP or NA updates an entry the peer has (it creates none by default).
    const oldMac = '02:00:00:00:00:99';
    await peer.ip('neigh', 'add', v4.ip, 'lladdr', oldMac, 'dev', 'eth0', 'nud', 'stale');
    await peer.ip('neigh', 'add', v6.ip, 'lladdr', oldMac, 'dev', 'eth0', 'nud', 'stale');
    t.match(await peer.neighbour(v4.ip, 'eth0'), { mac: oldMac });

    const r = await inside(node, [
      { op: 'add', vip: v4 },
      { op: 'add', vip: v6 },
      { op: 'announce', vip: v4, count: 2 },
      { op: 'announce', vip: v6, count: 2 },
    ]);
    t.same(r, [{ ok: true }, { ok: true }, { ok: null }, { ok: null }]);
    await until(async () => (await peer.neighbour(v4.ip, 'eth0'))?.mac === nodeMac, 2000, 'the peer to learn the VIP from gratuitous ARP');
    t.pass(`gratuitous ARP: the peer's entry for ${v4.ip} is now ${nodeMac}`);
    await until(async () => (await peer.neighbour(v6.ip, 'eth0'))?.mac === nodeMac, 2000, 'the peer to learn the VIP from the neighbour advertisement');
    t.pass(`neighbour advertisement: the peer's entry for ${v6.ip} is now ${nodeMac}`);
    t.match(await peer.neighbour(v6.ip, 'eth0'), { state: ['STALE'] }, 'override without solicitation: STALE, confirmed by the next packet');

    // Without an announcement nothing would have changed: a second peer entry, for an address
    // the node added without announcing, keeps its old MAC.
    await peer.ip('neigh', 'add', '192.0.2.11', 'lladdr', oldMac, 'dev', 'eth0', 'nud', 'stale');
    t.same(await inside(node, [{ op: 'add', vip: { ...v4, ip: '192.0.2.11' } }]), [{ ok: true }]);
    await new Promise((r) => setTimeout(r, 200));
    t.match(await peer.neighbour('192.0.2.11', 'eth0'), { mac: oldMac }, 'the control: no announcement, no change');
  });
}
