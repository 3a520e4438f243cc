// The kernel NAT data plane end to end, in network namespaces this test makes (topology.ts): lb4
// runs `forward: nat` listeners in the lb node's namespace, clients and backends are separate
// hosts. Root only (namespaces, nftables); CI runs it as root, never skipped there.

import t from 'tap';
import { addon } from '../../lib/engine/addon.js';
import { buildDist } from '../helpers/cli.js';
import { deleteOrphans, isRoot, notRootMessage } from '../helpers/netns.js';
import { until } from '../helpers/sockets.js';
import { backendIps, clientIp, hasTable, lbInside, makeTopology, peer, run, shaExchanges, startBackends, startLb, vip, type JsonChild, type Topology } from './topology.js';

const b1 = `${backendIps.b1}:8080`;
const b2 = `${backendIps.b2}:8080`;

const count = (results: Array<{ name: string }>, name: string) => results.filter((r) => r.name === name).length;

async function closeLb(lb: JsonChild): Promise<void> {
  lb.send({ op: 'close' });
  await lb.next('closed');
  await lb.exited;
}

async function table(topo: Topology): Promise<string> {
  return run(topo.lb, ['nft', 'list', 'table', 'inet', 'lb4']);
}

if (!isRoot) {
  t.comment(`test/nat/nat.test.ts skipped: ${notRootMessage}`);
  t.pass('skipped: not root', { skip: notRootMessage });
} else {
  await deleteOrphans();
  await buildDist();

  t.test('TCP through NAT: bytes intact both ways, weights followed, client address kept; stop removes the table', async (t) => {
    const topo = await makeTopology(t);
    await startBackends(t, topo);
    const lb = await startLb(t, topo.lb, { listen: ':80', backends: [b1, `${b2},weight=2`], forward: 'nat', workers: 1 });
    t.ok(await hasTable(topo.lb), 'lb4 made its table');
    const results = await shaExchanges(t, topo.client, 30, 1 << 20, 1 << 20);
    t.equal(results.filter((r) => r.ok).length, 30, 'every exchange: SHA-256 equal both ways (1 MiB each way)');
    // numgen inc walks the weights' cycle exactly: 1 in 3 to b1, 2 in 3 to b2.
    t.equal(count(results, 'b1'), 10);
    t.equal(count(results, 'b2'), 20);
    t.ok(results.every((r) => r.remote === clientIp), 'backends see the client address (lb4 is their gateway)');
    lb.send({ op: 'stats' });
    const stats = await lb.next<{ backends: Array<{ id: string; counters: Record<string, number> }> }>('stats');
    const s1 = stats.backends.find((b) => b.id === b1)!.counters;
    t.equal(s1.flows_total, 10, 'new connections counted per backend');
    t.ok(s1.bytes_to_backend > 10 * (1 << 20) && s1.bytes_to_client > 10 * (1 << 20), 'bytes counted each way per backend');
    await closeLb(lb);
    t.notOk(await hasTable(topo.lb), 'stop removed the table');
  });
}
