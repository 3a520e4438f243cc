// How flows pick backends: round robin, weights, least connections, states, runtime changes,
// and what happens when a backend refuses, never answers, or none is left.

import t, { type Test } from 'tap';
import { startBalancer, type Balancer } from '../../lib/index.js';
import { startBlackhole } from '../helpers/blackhole.js';
import { connect, echoBackend, nameBackend, readAll, refusingPort, sha256, startBackend, until, whoAnswers, type TestBackend } from '../helpers/sockets.js';
import type net from 'node:net';

async function tally(port: number, flows: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < flows; i++) {
    const name = await whoAnswers(port);
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}

async function withNamedBackends(t: Test, names: string[]): Promise<TestBackend[]> {
  const backends = await Promise.all(names.map(nameBackend));
  t.teardown(() => Promise.all(backends.map((b) => b.close())));
  return backends;
}

function closeAtEnd(t: Test, lb: Balancer): void {
  t.teardown(() => lb.close({ drainTimeout: 0 }));
}


t.test('round robin spreads flows evenly', async (t) => {
  const [a, b, c] = await withNamedBackends(t, ['a', 'b', 'c']);
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [a.address, b.address, c.address], workers: 1 });
  closeAtEnd(t, lb);
  t.same(await tally(lb.address().port, 300), { a: 100, b: 100, c: 100 });
});

t.test('weights split flows in proportion, interleaved', async (t) => {
  const [a, b, c] = await withNamedBackends(t, ['a', 'b', 'c']);
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [`${a.address},weight=5`, `${b.address},weight=1`, { address: c.address, weight: 1 }], workers: 1 });
  closeAtEnd(t, lb);
  const order: string[] = [];
  for (let i = 0; i < 7; i++) order.push(await whoAnswers(lb.address().port));
  t.same(order, ['a', 'a', 'b', 'a', 'c', 'a', 'a'], 'smooth weighted round robin interleaves');
  t.same(await tally(lb.address().port, 700), { a: 500, b: 100, c: 100 });
});

t.test('round robin with two workers still splits by weight overall', async (t) => {
  const [a, b] = await withNamedBackends(t, ['a', 'b']);
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [`${a.address},weight=3`, b.address], workers: 2 });
  closeAtEnd(t, lb);
  const counts = await tally(lb.address().port, 400);
  // Each worker runs its own exact 3:1 sequence; flows split between workers by the kernel, so
  // the total is 3:1 within one sequence length per worker.
  t.ok(Math.abs(counts.a - 300) <= 8, `a took ${counts.a} of 400 (expected 300 +- 8)`);
  t.equal(counts.a + counts.b, 400);
});

t.test('least connections sends new flows to the backend with fewest open flows', async (t) => {
  const held: net.Socket[] = [];
  const servers = await Promise.all(['a', 'b'].map((name) => startBackend((s) => s.write(`${name}\n`))));
  t.teardown(() => Promise.all(servers.map((s) => s.close())));
  const [a, b] = servers;
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [a.address, b.address], algorithm: 'leastconn', workers: 2 });
  closeAtEnd(t, lb);
  const port = lb.address().port;
  const open = async () => {
    const s = await connect(port);
    const name = await new Promise<string>((r) => s.once('data', (d) => r(String(d).trim())));
    held.push(s);
    return { s, name };
  };
  t.teardown(() => held.forEach((s) => s.destroy()));
  const first = [];
  for (let i = 0; i < 20; i++) first.push(await open());
  t.equal(first.filter((f) => f.name === 'a').length, 10, '20 flows opened one by one split 10/10');
  // Close 6 of a's flows: a now has 4 open, b 10. The next 6 flows must all go to a.
  for (const f of first.filter((f) => f.name === 'a').slice(0, 6)) f.s.destroy();
  await until(() => a.sockets.size === 4, 5000, "a's flows to close");
  await until(() => lb.stats().backends[0].counters.flows_active === 4, 5000, 'the engine to see 4 flows on a');
  const next = [];
  for (let i = 0; i < 6; i++) next.push((await open()).name);
  t.same(next, ['a', 'a', 'a', 'a', 'a', 'a'], 'the emptier backend takes the new flows');
});

t.test('least connections weighs load by weight', async (t) => {
  const held: net.Socket[] = [];
  const servers = await Promise.all(['a', 'b'].map((name) => startBackend((s) => s.write(`${name}\n`))));
  t.teardown(() => Promise.all(servers.map((s) => s.close())));
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [`${servers[0].address},weight=3`, servers[1].address], algorithm: 'leastconn', workers: 1 });
  closeAtEnd(t, lb);
  t.teardown(() => held.forEach((s) => s.destroy()));
  const names: string[] = [];
  for (let i = 0; i < 40; i++) {
    const s = await connect(lb.address().port);
    names.push(await new Promise<string>((r) => s.once('data', (d) => r(String(d).trim()))));
    held.push(s);
  }
  t.equal(names.filter((n) => n === 'a').length, 30, 'weight 3 holds three times the flows');
});

t.test('draining, down and maintenance backends take no new flows; open flows finish', async (t) => {
  // a echoes after announcing itself, so a flow on it stays open and can be checked later.
  const a = await startBackend((s) => {
    s.write('a\n');
    s.pipe(s);
  });
  const [b] = await withNamedBackends(t, ['b']);
  t.teardown(() => a.close());
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [{ address: a.address, id: 'a' }, { address: b.address, id: 'b' }], workers: 2 });
  closeAtEnd(t, lb);
  const port = lb.address().port;
  // Open a flow on a (round robin: the first flow of each worker goes to a).
  const firstWord = async () => {
    const s = await connect(port);
    const word = await new Promise<string>((r) => s.once('data', (d) => r(String(d).trim())));
    return { s, word };
  };
  let onA: net.Socket | undefined;
  for (let i = 0; i < 4 && !onA; i++) {
    const { s, word } = await firstWord();
    if (word === 'a') onA = s;
    else s.destroy();
  }
  t.ok(onA, 'a flow is open on a');
  for (const state of ['draining', 'down', 'maintenance'] as const) {
    await lb.setBackendState('a', state);
    t.same(await tally(port, 6), { b: 6 }, `${state}: every new flow goes to b`);
  }
  const reading = readAll(onA!);
  onA!.end('still here');
  t.equal(String((await reading).data), 'still here', 'the flow opened before draining still forwards');
  await lb.setBackendState('a', 'up');
  const words = [];
  for (let i = 0; i < 6; i++) {
    const { s, word } = await firstWord();
    s.destroy();
    words.push(word);
  }
  t.ok(words.includes('a'), `back up: a takes flows again (${words.join(',')})`);
});

t.test('backends can be added, reweighted and removed at runtime', async (t) => {
  const [a, b] = await withNamedBackends(t, ['a', 'b']);
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [{ address: a.address, id: 'a' }], workers: 2 });
  closeAtEnd(t, lb);
  const port = lb.address().port;
  t.same(await tally(port, 4), { a: 4 });
  await lb.addBackend({ address: b.address, id: 'b', weight: 1 });
  t.same(lb.backends().map((x) => x.id), ['a', 'b']);
  const both = await tally(port, 40);
  t.ok(both.a! >= 16 && both.b! >= 16, `both take flows once added (${JSON.stringify(both)})`);
  await lb.setBackendWeight('a', 0);
  t.same(await tally(port, 6), { b: 6 }, 'weight 0 takes no new flows');
  await lb.setBackendWeight('a', 1);
  await lb.removeBackend('b');
  t.same(await tally(port, 6), { a: 6 }, 'a removed backend takes no new flows');
  await t.rejects(lb.removeBackend('b'), { code: 'LB4_UNKNOWN_BACKEND' });
  await t.rejects(lb.setBackendState('nope', 'down'), { code: 'LB4_UNKNOWN_BACKEND' });
  await t.rejects(lb.addBackend({ address: a.address, id: 'a' }), { code: 'LB4_DUPLICATE_BACKEND' });
  await t.rejects(lb.setBackendWeight('a', -1), { code: 'LB4_INVALID_OPTION' });
});

t.test('a refused connect is retried on another backend and counted', async (t) => {
  const good = await echoBackend();
  t.teardown(() => good.close());
  const deadPort = await refusingPort();
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [{ address: `127.0.0.1:${deadPort}`, id: 'dead' }, { address: good.address, id: 'good' }], workers: 1, retries: 1 });
  closeAtEnd(t, lb);
  const failures: number[] = [];
  lb.on('backend-connect-failures', (e) => e.backend === 'dead' && failures.push(e.failures));
  for (let i = 0; i < 10; i++) {
    const s = await connect(lb.address().port);
    const reading = readAll(s);
    s.end(`flow ${i}`);
    t.equal(String((await reading).data), `flow ${i}`, `flow ${i} reached the live backend`);
  }
  const dead = lb.stats().backends.find((b) => b.id === 'dead')!.counters;
  t.ok(dead.connect_failures >= 5, `refusals counted on the dead backend (${dead.connect_failures})`);
  t.equal(lb.stats().listeners[0].counters.retries, dead.connect_failures, 'each refusal led to one retry');
  t.equal(lb.stats().listeners[0].counters.no_backend, 0, 'no client was turned away');
  await until(() => failures.length > 0, 5000, 'a connect-failure event');
  t.pass('connect failures reach the control plane as events');
});

t.test('a connect that never finishes times out and is retried elsewhere', async (t) => {
  const hole = await startBlackhole();
  const good = await echoBackend();
  t.teardown(async () => {
    await hole.close();
    await good.close();
  });
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [{ address: hole.address, id: 'hole' }, { address: good.address, id: 'good' }], workers: 1, retries: 1, connectTimeout: '200ms' });
  closeAtEnd(t, lb);
  // The first flow goes to the blackhole (first in round robin), waits out the connect timeout,
  // then lands on the live backend with its bytes intact.
  const s = await connect(lb.address().port);
  const reading = readAll(s, 10_000);
  s.end('patience');
  t.equal(String((await reading).data), 'patience');
  const hc = lb.stats().backends.find((b) => b.id === 'hole')!.counters;
  t.equal(hc.connect_timeouts, 1, 'the timeout is counted on the blackhole backend');
  t.equal(hc.connect_failures, 1, 'a timeout is also a connect failure');
  t.equal(lb.stats().listeners[0].counters.retries, 1);
});

t.test('when no backend can take a flow, the client is closed promptly and it is counted', async (t) => {
  const hole = await startBlackhole();
  const deadPort = await refusingPort();
  t.teardown(() => hole.close());

  await t.test('all backends refuse', async (t) => {
    const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [`127.0.0.1:${deadPort}`], workers: 1, retries: 2 });
    closeAtEnd(t, lb);
    const { data } = await readAll(await connect(lb.address().port), 5000);
    t.equal(data.length, 0, 'closed without data');
    t.equal(lb.stats().listeners[0].counters.no_backend, 1);
    t.equal(lb.stats().backends[0].counters.connect_failures, 3, 'one try and two retries');
  });

  await t.test('all backends time out', async (t) => {
    const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [hole.address], workers: 1, retries: 1, connectTimeout: '100ms' });
    closeAtEnd(t, lb);
    await readAll(await connect(lb.address().port), 5000);
    t.equal(lb.stats().listeners[0].counters.no_backend, 1);
    t.equal(lb.stats().backends[0].counters.connect_timeouts, 2);
  });

  await t.test('every backend is down', async (t) => {
    const good = await echoBackend();
    t.teardown(() => good.close());
    const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [{ address: good.address, state: 'down' }], workers: 1 });
    closeAtEnd(t, lb);
    await readAll(await connect(lb.address().port), 5000);
    t.equal(lb.stats().listeners[0].counters.no_backend, 1);
    t.equal(good.accepted, 0, 'the down backend saw nothing');
  });
});

t.test('connections() lists open flows with their backend and bytes', async (t) => {
  const a = await echoBackend();
  t.teardown(() => a.close());
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [{ address: a.address, id: 'a' }], workers: 2 });
  closeAtEnd(t, lb);
  const sockets = await Promise.all([1, 2, 3].map(() => connect(lb.address().port)));
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  for (const s of sockets) {
    s.write('12345');
    await new Promise((r) => s.once('data', r));
  }
  const list = await lb.connections();
  t.equal(list.length, 3);
  for (const c of list) {
    t.equal(c.backend, 'a');
    t.equal(c.state, 'established');
    t.equal(c.bytesToBackend, 5);
    t.equal(c.bytesToClient, 5);
    t.match(c.client, /^127\.0\.0\.1:\d+$/);
    t.ok(c.startedAt instanceof Date && Math.abs(c.startedAt.getTime() - Date.now()) < 60_000, 'start time is a recent wall-clock time');
  }
  t.equal(new Set(list.map((c) => c.id)).size, 3, 'ids are unique');
  t.equal((await lb.connections({ limit: 2 })).length, 2, 'limit');
  t.equal((await lb.connections({ backend: 'a' })).length, 3, 'filter by backend');
  t.equal(sha256(Buffer.from('x')).length, 64);
});
