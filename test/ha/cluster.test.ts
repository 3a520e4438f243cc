// Two cluster nodes in two network namespaces with the real VIP driver, a client in a third,
// all on one bridge, as root; the namespaces are the test's own and always deleted. The client
// asks the VIP "who are you?" over UDP every 10 ms (each node answers with its id, standing for
// its listener). Measured: SIGKILL of the active node until the backup holds the VIP and until
// the client is answered by it; a node restarted after that crash removing the VIP it left
// behind; SIGTERM (leaving heartbeat) until the other node serves. Then two nodes started with
// the same node id (as two machines cloned from one image would be): exactly one holds the VIP.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import type { ClusterTransition } from '../../lib/cluster/cluster-node.js';
import type { Vip } from '../../lib/cluster/vip.js';
import { nodeCommand, startClusterChild, type ClusterChild } from '../helpers/cluster-child.js';
import { bridge, deleteOrphans, isRoot, makeNamespaces, notRootMessage, type Netns } from '../helpers/netns.js';
import { until, within } from '../helpers/sockets.js';

const prober = fileURLToPath(new URL('../fixtures/udp-prober.mjs', import.meta.url));
const keyHex = 'c3'.repeat(32);
const vips: Vip[] = [
  { ip: '192.0.2.10', prefix: 24, dev: 'eth0', family: 4 },
  { ip: '2001:db8::10', prefix: 64, dev: 'eth0', family: 6 },
];
const heartbeatPort = 7000;
const echoPort = 7001;
const wallMs = () => performance.timeOrigin + performance.now();

function nodeOptions(id: string, priority: number, self: string, peer: string) {
  return { nodeId: id, priority, heartbeat: { host: self, port: heartbeatPort }, peer: { host: peer, port: heartbeatPort }, keyHex, vips, driver: 'native', echoPort };
}

async function startNode(t: Test, ns: Netns, options: object): Promise<ClusterChild> {
  const child = await startClusterChild(options, ns.name);
  t.teardown(() => child.kill());
  child.send('start');
  return child;
}

const transitionTo = (state: string) => (l: Record<string, unknown>) => (l.transition as ClusterTransition | undefined)?.to === state;
const holds = async (ns: Netns) => {
  const a = await ns.addresses('eth0');
  return vips.every((v) => a.includes(`${v.ip}/${v.prefix}`));
};
const holdsNone = async (ns: Netns) => {
  const a = await ns.addresses('eth0');
  return !vips.some((v) => a.includes(`${v.ip}/${v.prefix}`));
};

/** The client: every answer it gets, in order, and a way to wait for one from a given node. */
function startProber(t: Test, ns: Netns) {
  const [command, args] = nodeCommand(prober, [vips[0].ip, String(echoPort), '10'], ns.name);
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  const answers: { from: string; wallMs: number }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => answers.push(JSON.parse(line)));
  return {
    answers,
    firstFrom: (from: string, after: number) => answers.find((a) => a.from === from && a.wallMs > after),
    lastFrom: (from: string, before: number) => answers.filter((a) => a.from === from && a.wallMs < before).at(-1),
    waitFor: (from: string, after: number, ms = 5000) => until(() => answers.some((a) => a.from === from && a.wallMs > after), ms, `the client to be answered by ${from}`),
  };
}

if (!isRoot) {
  t.comment(`test/ha/cluster.test.ts skipped: ${notRootMessage}`);
  t.pass('skipped: not root', { skip: notRootMessage });
} else {
  await deleteOrphans();

  t.test('the VIP moves between namespaces: SIGKILL, restart after a crash, SIGTERM', async (t) => {
    const { sw, a, b, c } = await makeNamespaces(t, 'sw', 'a', 'b', 'c');
    await bridge(sw, [a, b, c]);
    for (const [ns, host] of [[c, 1], [a, 2], [b, 3]] as const) {
      await ns.ip('addr', 'add', `192.0.2.${host}/24`, 'dev', 'eth0');
      await ns.ip('addr', 'add', `2001:db8::${host}/64`, 'dev', 'eth0', 'nodad');
    }

    let nodeA = await startNode(t, a, nodeOptions('lb-a', 200, '192.0.2.2', '192.0.2.3'));
    const nodeB = await startNode(t, b, nodeOptions('lb-b', 100, '192.0.2.3', '192.0.2.2'));
    await nodeA.next(transitionTo('active'));
    await nodeB.next(transitionTo('backup'));
    await until(() => holds(a), 2000, 'lb-a to hold the VIPs');
    t.ok(await holdsNone(b), 'lb-b holds none');
    const macA = await a.mac('eth0');
    const macB = await b.mac('eth0');

    const client = startProber(t, c);
    await client.waitFor('lb-a', 0);
    t.match(await c.neighbour(vips[0].ip, 'eth0'), { mac: macA }, 'the client reaches the VIP at lb-a');

    // SIGKILL: lb-a cannot say goodbye, and its kernel keeps the VIP on its interface.
    const killedAt = wallMs();
    nodeA.kill('SIGKILL');
    const took = (await nodeB.next(transitionTo('active'))).transition as ClusterTransition & { wallMs: number };
    t.equal(took.reason, 'peer-timeout');
    const takeoverMs = took.wallMs - killedAt;
    await client.waitFor('lb-b', killedAt);
    const servedMs = client.firstFrom('lb-b', killedAt)!.wallMs - killedAt;
    const gapMs = client.firstFrom('lb-b', killedAt)!.wallMs - (client.lastFrom('lb-a', killedAt + 1000)?.wallMs ?? killedAt);
    t.ok(await holds(b), 'lb-b holds the VIPs (IPv4 and IPv6)');
    t.ok(await holds(a), 'the killed node left them on its interface');
    t.match(await c.neighbour(vips[0].ip, 'eth0'), { mac: macB }, "gratuitous ARP moved the client's entry to lb-b");
    // The dead time (300 ms) runs from the last heartbeat heard, up to one interval before the
    // kill; then the address, the ARP and the client's next probe (10 ms apart).
    t.ok(takeoverMs <= 300 + 150, `lb-b active ${takeoverMs.toFixed(0)} ms after SIGKILL`);
    t.ok(servedMs <= 300 + 250, `the client answered by lb-b ${servedMs.toFixed(0)} ms after SIGKILL`);
    t.comment(`SIGKILL: lb-b active after ${takeoverMs.toFixed(1)} ms; client served again after ${servedMs.toFixed(1)} ms (gap between answers ${gapMs.toFixed(1)} ms)`);

    // lb-a comes back after its crash, now below lb-b: it must drop the VIPs it left behind.
    nodeA = await startNode(t, a, nodeOptions('lb-a', 50, '192.0.2.2', '192.0.2.3'));
    await nodeA.next(transitionTo('backup'));
    t.ok(await holdsNone(a), 'the restarted node removed the VIPs a crash left on its interface');
    t.ok(await holds(b), 'lb-b still holds them');
    const before = wallMs();
    await client.waitFor('lb-b', before);
    t.notOk(client.answers.some((x) => x.from === 'lb-a' && x.wallMs > before), 'and only lb-b answers');

    // SIGTERM: lb-b leaves with a final heartbeat, lb-a takes over at once.
    const stoppedAt = wallMs();
    nodeB.kill('SIGTERM');
    const back = (await nodeA.next(transitionTo('active'))).transition as ClusterTransition & { wallMs: number };
    t.equal(back.reason, 'peer-leaving');
    const leaveMs = back.wallMs - stoppedAt;
    await client.waitFor('lb-a', stoppedAt);
    const leaveServedMs = client.firstFrom('lb-a', stoppedAt)!.wallMs - stoppedAt;
    t.ok(leaveMs < 100, `lb-a active ${leaveMs.toFixed(0)} ms after SIGTERM to lb-b`);
    t.ok(leaveServedMs < 150, `the client answered by lb-a ${leaveServedMs.toFixed(0)} ms after SIGTERM`);
    t.comment(`SIGTERM: lb-a active after ${leaveMs.toFixed(1)} ms; client served again after ${leaveServedMs.toFixed(1)} ms`);
    await within(nodeB.exited, 5000, 'lb-b to exit');
    await until(() => holdsNone(b), 2000, 'lb-b to have given the VIPs up');
    t.ok(await holds(a), 'lb-a holds them');
    nodeA.send('stop');
    await within(nodeA.exited, 5000, 'lb-a to exit');
    t.ok(await holdsNone(a), 'a stopped node holds nothing');
  });

  t.test('two nodes with the same node id: exactly one holds the VIP', async (t) => {
    const { dsw: sw, da: a, db: b, dc: c } = await makeNamespaces(t, 'dsw', 'da', 'db', 'dc');
    await bridge(sw, [a, b, c]);
    for (const [ns, host] of [[c, 1], [a, 2], [b, 3]] as const) {
      await ns.ip('addr', 'add', `192.0.2.${host}/24`, 'dev', 'eth0');
      await ns.ip('addr', 'add', `2001:db8::${host}/64`, 'dev', 'eth0', 'nodad');
    }
    // Same id, same priority: only the random instance id can tell them apart. Both are bound
    // before either starts, so they start together and the election, not the start order, decides.
    const nodeA = await startClusterChild(nodeOptions('lb', 100, '192.0.2.2', '192.0.2.3'), a.name);
    t.teardown(() => nodeA.kill());
    const nodeB = await startClusterChild(nodeOptions('lb', 100, '192.0.2.3', '192.0.2.2'), b.name);
    t.teardown(() => nodeB.kill());
    nodeA.send('start');
    nodeB.send('start');
    const first = await Promise.race([nodeA.next(transitionTo('active')).then((l) => ['a', l] as const), nodeB.next(transitionTo('active')).then((l) => ['b', l] as const)]);
    const [winner, loser, winnerNs, loserNs] = first[0] === 'a' ? [nodeA, nodeB, a, b] : [nodeB, nodeA, b, a];
    const reason = (first[1].transition as ClusterTransition).reason;
    await loser.next(transitionTo('backup'));
    await until(() => holds(winnerNs), 2000, 'the active node to hold the VIPs');
    // Ten heartbeat intervals later it is still so: the loser never took the address.
    await new Promise((r) => setTimeout(r, 1000));
    t.ok(await holds(winnerNs), 'the active node holds the VIPs');
    t.ok(await holdsNone(loserNs), 'the other holds none');
    t.notOk(loser.lines.some((l) => (l.transition as ClusterTransition | undefined)?.to === 'active'), 'and never was active');
    for (const n of [winner, loser]) n.send('status');
    const statuses = await Promise.all([winner, loser].map((n) => n.next((l) => 'status' in l)));
    for (const s of statuses) {
      t.match(s.status, { peer: { up: true, id: 'lb', duplicateNodeId: true }, heartbeats: { rejected: { 'own-heartbeat': 0 } } }, 'each sees the other as its peer, flagged as a duplicate id');
    }
    const instances = statuses.map((s) => (s.status as { node: { instance: string } }).node.instance);
    // Started together, each decides on the first heartbeat it hears, by rank: the greater
    // instance id. (Had one started a dead time before the other, it would be active alone and
    // stay so: an active node does not step down for an equal-priority peer.)
    t.equal(reason, 'outranks-peer', 'the winner took the address on hearing the other');
    t.ok(instances[0] > instances[1], `the greater instance id is the active one (${instances.join(' > ')})`);
    const client = startProber(t, c);
    await client.waitFor('lb', 0);
    t.pass('the client is served through the VIP');
  });
}
