// UDP sessions replicated between two real engines on loopback, as two nodes of an HA pair would
// (without the cluster socket: the batches go from one replicator to the other in memory). Round
// robin on both: a client moved to the second engine keeps the backend the first one chose, and
// a second engine without the hints gives the same clients, arriving in another order, other
// backends: the replication, not the algorithm, keeps them.

import t, { type Test } from 'tap';
import { validateOptions } from '../../lib/config/validate.js';
import { SessionReplicator, type SessionNames } from '../../lib/cluster/session-replicator.js';
import type { NativeBackend, NativeEngine } from '../../lib/engine/native-types.js';
import { nativeOptions } from '../../lib/engine/open.js';
import { StatsReader } from '../../lib/engine/stats.js';
import { UdpClient, namedEcho, udpBackend } from '../helpers/datagrams.js';
import { until } from '../helpers/sockets.js';

const key = Buffer.alloc(32, 0x77);
const clock = { monotonic: () => performance.now(), wall: () => Date.now() };

async function engine(t: Test, backends: string[], keys: number[], algorithm: 'roundrobin' | 'leastconn' = 'roundrobin', udpResponses = 0): Promise<{ engine: NativeEngine; port: number }> {
  const { createEngine } = await import('../../lib/engine/addon.js');
  const config = await validateOptions({ listeners: [{ name: 'dns', listen: '127.0.0.1:0/udp', backends, algorithm }], workers: 1, udpResponses });
  const e = createEngine(nativeOptions(config, false));
  // The two nodes number their backends differently: only the ids (dns/s1, dns/s2) agree.
  const table: NativeBackend[] = backends.map((address, i) => ({ key: keys[i], id: `dns/s${i + 1}`, ip: '127.0.0.1', port: Number(address.split(':')[1]), weight: 1, state: 0 }));
  const bound = e.start([table]);
  if (!Array.isArray(bound)) throw new Error(`engine did not start: ${JSON.stringify(bound)}`);
  t.teardown(() => e.close(0));
  return { engine: e, port: bound[0].port };
}

const namesFor = (keys: number[]): SessionNames => ({
  backendOf: (k) => (keys.includes(k) ? { listener: 'dns', backend: `s${keys.indexOf(k) + 1}` } : undefined),
  slotOf: (name) => (name === 'dns' ? 0 : undefined),
  hasBackend: (slot, id) => slot === 0 && /^s\d+$/.test(id) && Number(id.slice(1)) <= keys.length,
});

t.test('round robin: clients keep their backends on the engine that got the hints', async (t) => {
  const s1 = await udpBackend(namedEcho('s1'));
  const s2 = await udpBackend(namedEcho('s2'));
  t.teardown(() => Promise.all([s1.close(), s2.close()]));
  const backends = [s1.address, s2.address];
  const a = await engine(t, backends, [0, 1]);
  const b = await engine(t, backends, [4, 7]);
  const control = await engine(t, backends, [0, 1]);
  const toB: Buffer[] = [];
  const fromA = new SessionReplicator({ engine: a.engine, names: namesFor([0, 1]), key, instance: '00000000000000a1', send: (d) => toB.push(d), clock });
  const intoB = new SessionReplicator({ engine: b.engine, names: namesFor([4, 7]), key, instance: '00000000000000b2', send: () => {}, clock });
  fromA.start();
  t.teardown(() => fromA.stop());

  const clients = await Promise.all(Array.from({ length: 8 }, () => UdpClient.open()));
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  const backendOf = async (c: UdpClient, port: number) => (await c.ask('who', port)).toString().split(':')[0];
  const onA: string[] = [];
  for (const c of clients) onA.push(await backendOf(c, a.port));
  t.same([...new Set(onA)].sort(), ['s1', 's2'], `round robin spread the clients on the first engine: ${onA.join(' ')}`);

  await until(() => fromA.stats().sent >= clients.length, 5000, 'the first engine to report its sessions');
  for (const d of toB) intoB.receive(d, { address: '127.0.0.1', port: 7000 });
  t.match(intoB.stats(), { received: clients.length, installed: clients.length, hints: clients.length });

  // The clients move (a failover), arriving in the reverse order.
  const order = [...clients.keys()].reverse();
  const onB: string[] = [];
  const onControl: string[] = [];
  for (const i of order) onB[i] = await backendOf(clients[i], b.port);
  for (const i of order) onControl[i] = await backendOf(clients[i], control.port);
  t.same(onB, onA, 'every client is served by the backend it had on the first engine');
  t.ok(onControl.some((x, i) => x !== onA[i]), `without the hints, round robin moves clients: ${onControl.join(' ')} against ${onA.join(' ')}`);
  const replicated = new StatsReader(b.engine).read(1).listener(0).sessions_replicated;
  t.equal(replicated, clients.length, 'each of those sessions was placed by a hint (sessions_replicated)');
  t.equal(new StatsReader(control.engine).read(1).listener(0).sessions_replicated, 0, 'and none on the control engine');

  // A peer that appears later (restarted) gets every live session at once, not at their next refresh.
  const late = await engine(t, backends, [2, 3]);
  const intoLate = new SessionReplicator({ engine: late.engine, names: namesFor([2, 3]), key, instance: '00000000000000c3', send: () => {}, clock });
  const before = fromA.stats().sent;
  toB.length = 0;
  fromA.resync();
  await until(() => fromA.stats().sent >= before + clients.length, 5000, 'the first engine to report its live sessions again');
  for (const d of toB) intoLate.receive(d, { address: '127.0.0.1', port: 7000 });
  t.match(intoLate.stats(), { installed: clients.length, hints: clients.length }, 'the late peer holds a hint for every live session');
});

t.test('least connections: the hint wins over the emptier backend', async (t) => {
  const s1 = await udpBackend(namedEcho('s1'));
  const s2 = await udpBackend(namedEcho('s2'));
  t.teardown(() => Promise.all([s1.close(), s2.close()]));
  const backends = [s1.address, s2.address];
  const a = await engine(t, backends, [0, 1], 'leastconn');
  const b = await engine(t, backends, [0, 1], 'leastconn');
  const toB: Buffer[] = [];
  const fromA = new SessionReplicator({ engine: a.engine, names: namesFor([0, 1]), key, instance: '00000000000000a1', send: (d) => toB.push(d), clock });
  const intoB = new SessionReplicator({ engine: b.engine, names: namesFor([0, 1]), key, instance: '00000000000000b2', send: () => {}, clock });
  fromA.start();
  t.teardown(() => fromA.stop());
  const clients = await Promise.all(Array.from({ length: 6 }, () => UdpClient.open()));
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  const onA: string[] = [];
  for (const c of clients) onA.push((await c.ask('who', a.port)).toString().split(':')[0]);
  await until(() => fromA.stats().sent >= clients.length, 5000, 'the sessions to be reported');
  for (const d of toB) intoB.receive(d, { address: '127.0.0.1', port: 7000 });
  // Every client that had s1 arrives first: least connections alone would put half of them on s2.
  const order = [...clients.keys()].sort((x, y) => Number(onA[y] === 's1') - Number(onA[x] === 's1'));
  const onB: string[] = [];
  for (const i of order) onB[i] = (await clients[i].ask('who', b.port)).toString().split(':')[0];
  t.same(onB, onA, `every client keeps its backend: ${onB.join(' ')}`);
  t.equal(new StatsReader(b.engine).read(1).listener(0).sessions_replicated, clients.length);
});

t.test('sessions per exchange (--udp-responses) are not replicated: nothing to keep', async (t) => {
  const s1 = await udpBackend(namedEcho('s1'));
  t.teardown(() => s1.close());
  const a = await engine(t, [s1.address], [0], 'roundrobin', 1);
  const plain = await engine(t, [s1.address], [0]);
  a.engine.setSessionReplication(true);
  plain.engine.setSessionReplication(true);
  const client = await UdpClient.open();
  t.teardown(() => client.close());
  for (let i = 0; i < 3; i++) t.equal((await client.ask(`q${i}`, a.port)).toString(), `s1:q${i}`);
  await client.ask('q', plain.port);
  await until(() => new StatsReader(a.engine).read(1).listener(0).sessions_active === 0, 5000, 'the exchanges to end');
  t.same(a.engine.drainSessionChanges().changes, [], 'three exchanges, no change reported');
  await until(() => plain.engine.drainSessionChanges().changes.length > 0, 5000, 'the control engine to report its session');
  t.pass('the same engine without --udp-responses reports its session');
});
