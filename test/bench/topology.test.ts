// The bench's topologies (bench/topology.mjs), as root: the veth topology carries a TCP connection
// from the client namespace through the system's namespace to the backends' and leaves no
// namespace behind; what a killed run left (namespaces, an lb4-nat table) is removed by the next;
// and a bench interrupted with SIGINT deletes its namespaces and lb4-nat's nftables table itself.

import { execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import t from 'tap';
import { deleteNatTable, makeTopology, NAT_TABLE_PREFIX, NS_PREFIX, removeLeftovers, vethPlan } from '../../bench/topology.mjs';
import { buildDist, root } from '../helpers/cli.js';
import { addNamespace, deleteNamespaceNow } from '../helpers/netns-core.mjs';
import { isRoot, notRootMessage } from '../helpers/netns.js';
import { until, within } from '../helpers/sockets.js';

const run = promisify(execFile);

t.test('veth plan: lb4b-<pid>- names, a private benchmark range', async (t) => {
  const plan = vethPlan(4242);
  t.same(plan.namespaces, { client: 'lb4b-4242-c', system: 'lb4b-4242-lb', backend: 'lb4b-4242-s' });
  for (const a of [plan.client, plan.systemFront, plan.systemBack, plan.backend]) t.match(a, /^198\.1[89]\./, `${a} is in 198.18.0.0/15`);
});

const namespaces = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
const tables = () => execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' });
const installed = (program: string) => {
  try {
    execFileSync(program, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const hasNft = installed('nft');
// The interrupted runs measure lb4-nat with iperf3.
const benchSkip = hasNft && installed('iperf3') && installed('conntrack') ? false : 'nft, conntrack or iperf3 missing';

/** `node -e SCRIPT` inside a namespace, without tap's loader in NODE_OPTIONS. */
function nodeIn(ns: string, script: string, args: string[] = []) {
  return spawn('ip', ['netns', 'exec', ns, 'env', '-u', 'NODE_OPTIONS', process.execPath, '-e', script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
}

if (!isRoot) {
  t.comment(`test/bench/topology.test.ts: the namespace tests skipped: ${notRootMessage}`);
  t.pass('skipped: not root', { skip: notRootMessage });
} else {
  t.test('veth: client -> system namespace -> backends, then nothing left', async (t) => {
    const topo = await makeTopology('veth');
    t.teardown(() => topo.teardown());
    const listed = namespaces();
    for (const n of topo.namespaces) t.match(listed, n, `${n} made`);
    t.equal(topo.client.netns, vethPlan(process.pid).namespaces.client);

    // A server in the backends' namespace, a client in the client's: routed through `lb`.
    const server = nodeIn(
      topo.backend.netns!,
      "const s = require('net').createServer((c) => c.end('hello from s')); s.listen(0, process.argv[1], () => console.log(s.address().port));",
      [topo.backend.host],
    );
    t.teardown(() => server.kill('SIGKILL'));
    const [port] = (await within(once(createInterface({ input: server.stdout! }), 'line'), 10_000, 'the server port')) as [string];
    const client = nodeIn(
      topo.client.netns!,
      "require('net').connect(Number(process.argv[2]), process.argv[1]).on('data', (d) => process.stdout.write(d)).on('error', (e) => { console.log(e.message); process.exit(1); });",
      [topo.backend.host, port],
    );
    t.teardown(() => client.kill('SIGKILL'));
    let reply = '';
    client.stdout!.on('data', (d) => (reply += d));
    const [code] = (await within(once(client, 'exit'), 10_000, 'the client')) as [number];
    t.equal(code, 0);
    t.equal(reply, 'hello from s', 'the backend answered the client across both links');

    topo.teardown();
    const after = namespaces();
    for (const n of topo.namespaces) t.notMatch(after, n, `${n} deleted`);
  });

  t.test('leftovers of a killed run are removed, a live run is left alone', async (t) => {
    const dead = spawn(process.execPath, ['-e', '']);
    await once(dead, 'exit');
    const deadName = `${NS_PREFIX}-${dead.pid}-c`;
    const liveName = `${NS_PREFIX}-${process.pid}-c`;
    await addNamespace(deadName);
    await addNamespace(liveName);
    t.teardown(() => [deadName, liveName].forEach(deleteNamespaceNow));
    const deadTable = `${NAT_TABLE_PREFIX}${dead.pid}`;
    if (hasNft) {
      await run('nft', ['add', 'table', 'inet', deadTable]);
      t.teardown(() => deleteNatTable(deadTable));
    }
    const removed = await removeLeftovers();
    t.ok(removed.includes(deadName), 'the dead run\'s namespace is named as removed');
    const listed = namespaces();
    t.notMatch(listed, deadName, 'and is gone');
    t.match(listed, liveName, 'a namespace of a live process stays');
    if (hasNft) t.notMatch(tables(), new RegExp(`${deadTable}$`, 'm'), "the dead run's lb4-nat table is gone");
  });

  t.test('SIGINT during a veth run with lb4-nat: no namespace and no table left', { skip: benchSkip }, async (t) => {
    await buildDist();
    // conn-rate is short and lb4-nat starts quickly; the bench is interrupted while lb4-nat runs.
    const bench = spawn(process.execPath, [join(root, 'bench', 'run.mjs'), 'tcp-throughput', '--quick', '--no-save', '--workers', '1', '--systems', 'lb4-nat', '--topology', 'veth'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    t.teardown(() => bench.kill('SIGKILL'));
    let out = '';
    bench.stdout!.on('data', (d) => (out += d));
    bench.stderr!.on('data', (d) => (out += d));
    const mine = vethPlan(bench.pid!).namespaces;
    const lbTables = () => {
      try {
        return execFileSync('ip', ['netns', 'exec', mine.system, 'nft', 'list', 'tables'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      } catch {
        return '';
      }
    };
    // lb4-nat's table appears in the system's namespace once lb4 runs.
    await until(async () => (await sleep(100), lbTables().includes(`${NAT_TABLE_PREFIX}${bench.pid}`)), 60_000, 'lb4-nat running in the veth topology');
    bench.kill('SIGINT');
    const [code] = (await within(once(bench, 'exit'), 20_000, 'the bench to exit')) as [number];
    t.equal(code, 130, `the bench stopped on SIGINT (output: ${out.slice(-300)})`);
    const listed = namespaces();
    for (const n of Object.values(mine)) t.notMatch(listed, n, `${n} deleted`);
  });

  t.test('SIGINT during a loopback run with lb4-nat: its table is gone', { skip: benchSkip }, async (t) => {
    await buildDist();
    const bench = spawn(process.execPath, [join(root, 'bench', 'run.mjs'), 'tcp-throughput', '--quick', '--no-save', '--workers', '1', '--systems', 'lb4-nat'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    t.teardown(() => bench.kill('SIGKILL'));
    const table = `${NAT_TABLE_PREFIX}${bench.pid}`;
    t.teardown(() => deleteNatTable(table));
    await until(async () => (await sleep(100), tables().includes(table)), 60_000, 'lb4-nat running on loopback');
    bench.kill('SIGINT');
    await within(once(bench, 'exit'), 20_000, 'the bench to exit');
    t.notMatch(tables(), new RegExp(`${table}$`, 'm'), 'no lb4-nat table left');
  });
}
