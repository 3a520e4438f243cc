// UDP sessions through the real data plane: request/response from many client ports, a
// DNS-shaped exchange, the largest datagrams, truncation, idle expiry, responses per request,
// the session cap, a refusing backend, wildcard listeners answering from the right address,
// IPv6, TCP and UDP on one port, and no descriptor left behind.

import { createSocket } from 'node:dgram';
import { readdirSync } from 'node:fs';
import t, { type Test } from 'tap';
import { startBalancer, type Balancer, type ListenerOptions } from '../../lib/index.js';
import { UdpClient, namedEcho, udpBackend } from '../helpers/datagrams.js';
import { until } from '../helpers/sockets.js';

function closeAtEnd(t: Test, lb: Balancer): void {
  t.teardown(() => lb.close({ drainTimeout: 0 }));
}

t.test('request/response from many client ports, each answer to its own client', async (t) => {
  const a = await udpBackend(namedEcho('a'));
  const b = await udpBackend(namedEcho('b'));
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const lb = await startBalancer({ listen: '127.0.0.1:0/udp', backends: [a.address, b.address], workers: 2 });
  closeAtEnd(t, lb);
  const port = lb.address().port;
  const clients = await Promise.all(Array.from({ length: 40 }, () => UdpClient.open()));
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  const answers = await Promise.all(
    clients.map(async (c, i) => {
      const out: string[] = [];
      for (let j = 0; j < 3; j++) out.push((await c.ask(`client ${i} request ${j}`, port)).toString());
      return out;
    }),
  );
  const backendsSeen = new Set<string>();
  for (const [i, out] of answers.entries()) {
    for (const [j, text] of out.entries()) t.match(text, new RegExp(`^[ab]:client ${i} request ${j}$`), `client ${i} got its own answer ${j}`);
    t.equal(new Set(out.map((s) => s[0])).size, 1, `client ${i} kept its backend`);
    backendsSeen.add(out[0][0]);
  }
  t.same([...backendsSeen].sort(), ['a', 'b'], 'clients spread over both backends');
  const c = lb.stats().listeners[0].counters;
  t.equal(c.datagrams_to_backend, 120, 'datagrams to backends counted');
  t.equal(c.datagrams_to_client, 120, 'datagrams to clients counted');
  t.equal(c.sessions_total, 40, 'one session per client port');
  t.equal(c.sessions_active, 40);
  const sessions = await lb.connections();
  t.equal(sessions.length, 40, 'sessions are listed with the flows');
  t.match(sessions[0], { protocol: 'udp', state: 'established', datagramsToBackend: 3, datagramsToClient: 3 });
});

// A DNS query for `name` (type A, class IN) with id `id`, as a resolver sends it.
function dnsQuery(id: number, name: string): Buffer {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // recursion desired
  header.writeUInt16BE(1, 4); // one question
  return Buffer.concat([header, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

// The answer a DNS server gives: the query with QR set, one A record pointing back at the name.
function dnsAnswer(query: Buffer, ip: number[]): Buffer {
  const out = Buffer.concat([query, Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...ip])]);
  out.writeUInt16BE(0x8180, 2);
  out.writeUInt16BE(1, 6); // one answer
  return out;
}

t.test('a DNS-shaped exchange: with --udp-responses 1 each answer frees its session', async (t) => {
  const dns = await udpBackend((q) => dnsAnswer(q, [192, 0, 2, 7]));
  t.teardown(() => dns.close());
  const lb = await startBalancer({ listen: '127.0.0.1:0/udp', backends: [dns.address], workers: 2, udpResponses: 1 });
  closeAtEnd(t, lb);
  const client = await UdpClient.open();
  t.teardown(() => client.close());
  for (let id = 1; id <= 20; id++) {
    const query = dnsQuery(id, `host${id}.example.com`);
    const answer = await client.ask(query, lb.address().port);
    t.equal(answer.readUInt16BE(0), id, `answer ${id} carries the query's id`);
    t.equal(answer.readUInt16BE(2), 0x8180, 'a response');
    t.same([...answer.subarray(-4)], [192, 0, 2, 7], 'with the address');
  }
  // Each query opened a session and its answer closed it: one client port, 20 sessions.
  await until(() => lb.stats().listeners[0].counters.sessions_active === 0, 5000, 'every session to end');
  const c = lb.stats().listeners[0].counters;
  t.equal(c.sessions_total, 20, 'a session per query');
  t.equal(c.sessions_expired, 0, 'none waited for the idle timeout');
  t.same(await lb.connections(), [], 'no session left');
});

t.test('responses per request: a session ends once every expected reply is back', async (t) => {
  // Three replies per request, and a request for which the backend sends only two.
  const backend = await udpBackend((msg) => (String(msg) === 'short' ? [Buffer.from('1'), Buffer.from('2')] : [Buffer.from('1'), Buffer.from('2'), Buffer.from('3')]));
  t.teardown(() => backend.close());
  const lb = await startBalancer({ listen: '127.0.0.1:0/udp', backends: [backend.address], workers: 1, udpResponses: 3 });
  closeAtEnd(t, lb);
  const client = await UdpClient.open();
  t.teardown(() => client.close());
  await client.send('full', lb.address().port);
  for (const want of ['1', '2', '3']) t.equal(String((await client.next()).msg), want);
  await until(() => lb.stats().listeners[0].counters.sessions_active === 0, 5000, 'the session to end after three replies');
  await client.send('short', lb.address().port);
  for (const want of ['1', '2']) t.equal(String((await client.next()).msg), want);
  const sessions = await lb.connections();
  t.equal(sessions.length, 1, 'a session still waiting for its third reply stays');
  t.match(sessions[0], { protocol: 'udp', datagramsToBackend: 1, datagramsToClient: 2 });
});

t.test('65,507-byte datagrams pass intact both ways; larger than the buffer is dropped and counted', async (t) => {
  const { createHash, randomBytes } = await import('node:crypto');
  const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  // The backend answers with its own largest datagram: the hash of what it got, padded.
  const backend = await udpBackend((msg) => {
    if (String(msg.subarray(0, 4)) === 'big?') return Buffer.alloc(2000, 'x');
    const out = randomBytes(65_507);
    out.write(digest(msg), 0, 'latin1');
    return out;
  });
  t.teardown(() => backend.close());
  const lb = await startBalancer({ listen: '127.0.0.1:0/udp', backends: [backend.address], workers: 1 });
  closeAtEnd(t, lb);
  const client = await UdpClient.open();
  t.teardown(() => client.close());
  for (let i = 0; i < 4; i++) {
    const payload = randomBytes(65_507);
    const answer = await client.ask(payload, lb.address().port);
    t.equal(answer.length, 65_507, 'the answer is whole');
    t.equal(answer.subarray(0, 64).toString('latin1'), digest(payload), 'the backend got the datagram intact');
  }
  t.equal(lb.stats().listeners[0].counters.bytes_to_backend, 4 * 65_507);

  // With a 1024-byte limit: a larger datagram either way is dropped, never forwarded cut.
  const small = await startBalancer({ listen: '127.0.0.1:0/udp', backends: [backend.address], workers: 1, udpMaxDatagram: 1024 });
  closeAtEnd(t, small);
  const port = small.address().port;
  await client.send(Buffer.alloc(2000, 'a'), port);
  await until(() => small.stats().listeners[0].counters.dropped_truncated === 1, 5000, 'the long request to be counted');
  t.equal(small.stats().listeners[0].counters.datagrams_to_backend, 0, 'and not forwarded');
  t.equal(backend.seen.length, 4, 'the backend never saw it');
  await client.send('big?', port);
  await until(() => small.stats().backends[0].counters.dropped_truncated === 1, 5000, 'the long reply to be counted');
  t.equal(small.stats().listeners[0].counters.datagrams_to_client, 0, 'the long reply was not forwarded');
  t.equal(client.received.length, 0, 'the client got nothing cut');
});

t.test('idle sessions expire', async (t) => {
  const backend = await udpBackend(namedEcho('a'));
  t.teardown(() => backend.close());
  const lb = await startBalancer({ listen: '127.0.0.1:0/udp', backends: [backend.address], workers: 2, udpIdleTimeout: '150ms', accessLog: true });
  closeAtEnd(t, lb);
  const records: Array<{ protocol: string; reason: string; datagramsToBackend?: number }> = [];
  lb.on('flow', (r) => records.push(r));
  const client = await UdpClient.open();
  t.teardown(() => client.close());
  t.equal(String(await client.ask('x', lb.address().port)), 'a:x');
  t.equal(lb.stats().listeners[0].counters.sessions_active, 1);
  await until(() => lb.stats().listeners[0].counters.sessions_expired === 1, 5000, 'the session to expire');
  t.equal(lb.stats().listeners[0].counters.sessions_active, 0);
  t.equal(lb.stats().backends[0].counters.sessions_expired, 1, 'counted for the backend too');
  await until(() => records.length === 1, 5000, 'the access log record');
  t.match(records[0], { protocol: 'udp', reason: 'idle-timeout', datagramsToBackend: 1, datagramsToClient: 1 }, 'one access log record per ended session');
  // The client's next datagram opens a new session from the same port.
  t.equal(String(await client.ask('y', lb.address().port)), 'a:y');
  t.equal(lb.stats().listeners[0].counters.sessions_total, 2);
});

t.test('at the session cap the oldest session is evicted', async (t) => {
  const backend = await udpBackend(namedEcho('a'));
  t.teardown(() => backend.close());
  const lb = await startBalancer({ listen: '127.0.0.1:0/udp', backends: [backend.address], workers: 1, udpMaxSessions: 3 });
  closeAtEnd(t, lb);
  const clients = await Promise.all(Array.from({ length: 5 }, () => UdpClient.open()));
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  for (const [i, c] of clients.entries()) t.equal(String(await c.ask(`${i}`, lb.address().port)), `a:${i}`, `client ${i} is served`);
  const counters = lb.stats().listeners[0].counters;
  t.equal(counters.sessions_active, 3, 'never more than the cap');
  t.equal(counters.sessions_evicted, 2, 'two evicted');
  const ports = (await lb.connections()).map((s) => Number(s.client.split(':').pop())).sort();
  t.same(ports, clients.slice(2).map((c) => c.port).sort(), 'the two oldest went');
});

/** A UDP port where nothing listens (the host answers ICMP port unreachable), and a live backend answering "live". */
async function refusingAndLive(t: Test): Promise<{ deadPort: number; live: Awaited<ReturnType<typeof udpBackend>> }> {
  const dead = await udpBackend(() => null);
  const deadPort = dead.port;
  await dead.close();
  const live = await udpBackend(namedEcho('live'));
  t.teardown(() => live.close());
  return { deadPort, live };
}

t.test('a refusing backend: counted for passive health, the session ends, the next datagram goes elsewhere', async (t) => {
  const { deadPort, live } = await refusingAndLive(t);
  // The dead backend's weight makes it the first pick.
  const lb = await startBalancer({
    listen: '127.0.0.1:0/udp',
    backends: [{ address: `127.0.0.1:${deadPort}`, id: 'dead', weight: 100 }, { address: live.address, id: 'live' }],
    workers: 1,
  });
  closeAtEnd(t, lb);
  const failures: Array<{ backend: string; failures: number }> = [];
  lb.on('backend-connect-failures', (e) => failures.push(e));
  const client = await UdpClient.open();
  t.teardown(() => client.close());
  await client.send('first', lb.address().port);
  const deadStats = () => lb.stats().backends.find((b) => b.id === 'dead')!.counters;
  await until(() => deadStats().connect_failures === 1, 5000, 'the refusal to be counted');
  await until(() => lb.stats().listeners[0].counters.sessions_active === 0, 5000, 'the refused session to end');
  t.equal(String(await client.ask('second', lb.address().port)), 'live:second', "the client's retry is answered by the live backend");
  await until(() => failures.length > 0, 5000, 'the passive health event');
  t.match(failures[0], { backend: 'dead', failures: 1 });
});

t.test('a wildcard listener answers from the address the client sent to', async (t) => {
  const backend = await udpBackend(namedEcho('a'));
  t.teardown(() => backend.close());
  for (const listen of ['0.0.0.0:0/udp', ':0/udp']) {
    const lb = await startBalancer({ listen, backends: [backend.address], workers: 2 });
    const client = await UdpClient.open('127.0.0.1');
    for (const to of ['127.0.0.2', '127.0.0.3', '127.0.0.1']) {
      await client.send(`to ${to}`, lb.address().port, to);
      const { msg, from } = await client.next();
      t.equal(String(msg), `a:to ${to}`, `${listen}: the answer to ${to}`);
      t.equal(from.address, to, `${listen}: comes from ${to}`);
      t.equal(from.port, lb.address().port, `${listen}: and from the listener's port`);
    }
    // Two local addresses, one client port: two sessions.
    t.equal(lb.stats().listeners[0].counters.sessions_total, 3, `${listen}: a session per local address`);
    await client.close();
    await lb.close({ drainTimeout: 0 });
  }
});

t.test('IPv6', async (t) => {
  const backend = await udpBackend(namedEcho('six'), '::1');
  t.teardown(() => backend.close());
  const lb = await startBalancer({ listen: '[::1]:0/udp', backends: [backend.address], workers: 1 });
  closeAtEnd(t, lb);
  const client = await UdpClient.open('::1');
  t.teardown(() => client.close());
  t.equal(String(await client.ask('hello', lb.address().port, '::1')), 'six:hello');
  t.match((await lb.connections())[0], { protocol: 'udp', client: /^\[::1\]:\d+$/, backendAddress: backend.address });
});

// A port that is free for both TCP and UDP on 127.0.0.1 right now.
async function portFreeForBoth(): Promise<number> {
  const net = await import('node:net');
  const dgram = await import('node:dgram');
  for (;;) {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const socket = dgram.createSocket('udp4');
    const ok = await new Promise<boolean>((r) => {
      socket.once('error', () => r(false));
      socket.bind(port, '127.0.0.1', () => r(true));
    });
    await new Promise<void>((r) => server.close(() => r()));
    await new Promise<void>((r) => socket.close(() => r()));
    if (ok) return port;
  }
}

t.test('TCP and UDP on one port', async (t) => {
  const { nameBackend, readAll, connect } = await import('../helpers/sockets.js');
  const tcp = await nameBackend('tcp-backend');
  const udp = await udpBackend(namedEcho('udp-backend'));
  t.teardown(() => Promise.all([tcp.close(), udp.close()]));
  const port = await portFreeForBoth();
  const lb = await startBalancer({
    listeners: [
      { listen: `127.0.0.1:${port}`, backends: [tcp.address] },
      { listen: `127.0.0.1:${port}`, protocol: 'udp', backends: [udp.address] },
    ],
    workers: 2,
  });
  closeAtEnd(t, lb);
  t.same(lb.addresses().map((a) => [a.name, a.port]), [[`127.0.0.1:${port}`, port], [`127.0.0.1:${port}/udp`, port]], 'one port, two listeners, named apart');
  t.equal(String((await readAll(await connect(port))).data).trim(), 'tcp-backend', 'TCP goes to the TCP backend');
  const client = await UdpClient.open();
  t.teardown(() => client.close());
  t.equal(String(await client.ask('hi', port)), 'udp-backend:hi', 'UDP goes to the UDP backend');
  const both = await lb.connections();
  t.ok(both.every((c) => c.protocol === 'udp' || c.protocol === 'tcp'));
  t.equal(both.filter((c) => c.protocol === 'udp').length, 1, 'the UDP session is listed');
  // A second UDP listener on the same address and port is refused, as for TCP.
  await t.rejects(startBalancer({ listen: `127.0.0.1:${port}/udp`, backends: [udp.address], workers: 1 }), { code: 'EADDRINUSE' });
});

t.test('backend changes: removed, down or maintenance backends lose their sessions; draining ones keep them', async (t) => {
  const a = await udpBackend(namedEcho('a'));
  const b = await udpBackend(namedEcho('b'));
  const c = await udpBackend(namedEcho('c'));
  t.teardown(() => Promise.all([a.close(), b.close(), c.close()]));
  const lb = await startBalancer({
    listen: '127.0.0.1:0/udp',
    backends: [{ address: a.address, id: 'a' }, { address: b.address, id: 'b' }, { address: c.address, id: 'c' }],
    workers: 1,
  });
  closeAtEnd(t, lb);
  const clients = await Promise.all(Array.from({ length: 9 }, () => UdpClient.open()));
  t.teardown(() => Promise.all(clients.map((x) => x.close())));
  const owner = new Map<UdpClient, string>();
  for (const x of clients) owner.set(x, String(await x.ask('hi', lb.address().port))[0]);
  const sessionsOf = async (id: string) => (await lb.connections({ backend: id })).length;
  t.equal(await sessionsOf('a'), 3);
  await lb.setBackendState('a', 'draining');
  t.equal(await sessionsOf('a'), 3, 'draining: sessions kept');
  for (const [x, id] of owner) if (id === 'a') t.equal(String(await x.ask('again', lb.address().port)), 'a:again', 'and still served by a');
  await lb.setBackendState('b', 'maintenance');
  t.equal(await sessionsOf('b'), 0, 'maintenance: sessions closed');
  await lb.removeBackend('c');
  t.equal((await lb.connections()).filter((s) => s.backend === 'c').length, 0, 'removed: sessions closed');
  // A client of b or c is served anew by the one backend left taking new sessions... none here
  // but a (draining): it is dropped and counted as no backend.
  const [ofB] = [...owner].find(([, id]) => id === 'b')!;
  await ofB.send('anyone?', lb.address().port);
  await until(() => lb.stats().listeners[0].counters.dropped_no_backend === 1, 5000, 'the datagram to be dropped');
  await lb.setBackendState('b', 'up');
  t.equal(String(await ofB.ask('now?', lb.address().port)), 'b:now?', 'b back: served again');
});

t.test('reload adds and removes UDP listeners', async (t) => {
  const a = await udpBackend(namedEcho('a'));
  const b = await udpBackend(namedEcho('b'));
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const lb = await startBalancer({
    listeners: [
      { name: 'keep', listen: '127.0.0.1:0/udp', backends: [a.address] },
      { name: 'drop', listen: '127.0.0.1:0/udp', backends: [a.address] },
    ],
    workers: 2,
  });
  closeAtEnd(t, lb);
  const port = (name: string) => lb.addresses().find((l) => l.name === name)!.port;
  const keepPort = port('keep');
  const dropPort = port('drop');
  const client = await UdpClient.open();
  t.teardown(() => client.close());
  t.equal(String(await client.ask('1', keepPort)), 'a:1');
  t.equal(String(await client.ask('2', dropPort)), 'a:2');
  const summary = await lb.reload({
    listeners: [
      { name: 'keep', listen: `127.0.0.1:${keepPort}/udp`, backends: [a.address] },
      { name: 'new', listen: '127.0.0.1:0/udp', backends: [b.address] },
    ],
    workers: 2,
    drainTimeout: 0,
  });
  t.same(summary.listenersAdded, ['new']);
  t.same(summary.listenersRemoved, ['drop']);
  t.equal(String(await client.ask('3', keepPort)), 'a:3', 'the kept listener keeps serving, on its session');
  t.equal(String(await client.ask('4', port('new'))), 'b:4', 'the new listener serves');
  await client.send('5', dropPort);
  await t.rejects(client.next(300, 'no answer'), /no answer/, 'the removed listener answers no more');
  t.same((await lb.connections()).map((s) => s.listener).sort(), ['keep', 'new'], "with no drain time the removed listener's sessions ended at once");
});

t.test("a removed UDP listener drains: its sessions flow until idle, it takes no new client, then its port is free", async (t) => {
  const a = await udpBackend(namedEcho('a'));
  t.teardown(() => a.close());
  const options = (listeners: ListenerOptions[]) => ({ listeners, workers: 1, udpIdleTimeout: '1500ms', drainTimeout: '20s', accessLog: true });
  const lb = await startBalancer(options([{ name: 'keep', listen: '127.0.0.1:0/udp', backends: [a.address] }, { name: 'drop', listen: '127.0.0.1:0/udp', backends: [a.address] }]));
  closeAtEnd(t, lb);
  const records: Array<{ listener: string; protocol: string; reason: string; datagramsToBackend?: number }> = [];
  lb.on('flow', (r) => records.push(r));
  const keepPort = lb.addresses().find((l) => l.name === 'keep')!.port;
  const dropPort = lb.addresses().find((l) => l.name === 'drop')!.port;
  const old = await UdpClient.open();
  const late = await UdpClient.open();
  t.teardown(() => Promise.all([old.close(), late.close()]));
  t.equal(String(await old.ask('1', dropPort)), 'a:1');
  await lb.reload(options([{ name: 'keep', listen: `127.0.0.1:${keepPort}/udp`, backends: [a.address] }]));
  t.equal(String(await old.ask('2', dropPort)), 'a:2', 'the open session still flows after the reload');
  t.match(await lb.connections(), [{ protocol: 'udp', datagramsToBackend: 2, datagramsToClient: 2 }], 'and is still listed');
  await late.send('new client', dropPort);
  await t.rejects(late.next(300, 'no answer'), /no answer/, 'a new client gets no session on the removed listener');
  t.equal(String(await old.ask('3', dropPort)), 'a:3', 'the draining session is still served');
  // The session ends at the idle timeout, not at once, and then the socket closes: the port is free.
  await until(() => records.length === 1, 10_000, 'the drained session to end');
  t.match(records[0], { protocol: 'udp', reason: 'idle-timeout', datagramsToBackend: 3 }, 'it ended idle, one access log line');
  await until(async () => {
    const probe = createSocket('udp4');
    const bound = await new Promise<boolean>((r) => {
      probe.once('error', () => r(false));
      probe.bind(dropPort, '127.0.0.1', () => r(true));
    });
    await new Promise<void>((r) => probe.close(() => r()));
    return bound;
  }, 5000, "the removed listener's port to be free");
  t.same(await lb.connections(), []);
});

t.test('Maglev over UDP: a client address keeps its backend across ports and balancers', async (t) => {
  const names = ['m1', 'm2', 'm3'];
  const backends = await Promise.all(names.map((n) => udpBackend(namedEcho(n))));
  t.teardown(() => Promise.all(backends.map((b) => b.close())));
  const list = backends.map((b, i) => ({ address: b.address, id: names[i] }));
  const one = await startBalancer({ listeners: [{ name: 'dns', listen: '127.0.0.1:0/udp', backends: list }], algorithm: 'maglev', workers: 2 });
  const two = await startBalancer({ listeners: [{ name: 'dns', listen: '127.0.0.1:0/udp', backends: [...list].reverse() }], algorithm: 'maglev', workers: 1 });
  closeAtEnd(t, one);
  closeAtEnd(t, two);
  const choice = new Map<string, string>();
  for (let i = 0; i < 24; i++) {
    const ip = `127.0.3.${10 + i}`;
    const picks = new Set<string>();
    for (const lb of [one, one, two]) {
      const client = await UdpClient.open(ip); // a new client port each time
      picks.add(String(await client.ask('q', lb.address().port)).split(':')[0]);
      await client.close();
    }
    t.equal(picks.size, 1, `${ip}: one backend from every port and both balancers`);
    choice.set(ip, [...picks][0]);
  }
  t.ok(new Set(choice.values()).size >= 2, 'clients spread over the backends');
});

t.test('no descriptor is left behind when sessions end', async (t) => {
  const backend = await udpBackend(namedEcho('a'));
  t.teardown(() => backend.close());
  const fds = () => readdirSync('/proc/self/fd').length;
  const clients = await Promise.all(Array.from({ length: 20 }, () => UdpClient.open()));
  const before = fds();
  const lb = await startBalancer({ listen: '127.0.0.1:0/udp', backends: [backend.address], workers: 2, udpResponses: 1 });
  const started = fds();
  for (let round = 0; round < 5; round++) await Promise.all(clients.map((c, i) => c.ask(`${round}/${i}`, lb.address().port)));
  await until(() => lb.stats().listeners[0].counters.sessions_active === 0, 5000, 'every session to end');
  t.equal(lb.stats().listeners[0].counters.sessions_total, 100);
  // Each session closes its upstream socket when its answer is back: nothing is left over from
  // 100 sessions (at most one per session open at once, 20, in any case; a leak would hold 100).
  t.ok(fds() - started <= clients.length, `descriptors: ${started} with the balancer started, ${fds()} after 100 sessions`);
  await lb.close({ drainTimeout: 0 });
  await until(() => fds() <= before, 5000, 'every socket to close with the balancer');
  t.ok(fds() <= before, `descriptors: ${before} before the balancer, ${fds()} after it closed`);
  await Promise.all(clients.map((c) => c.close()));
});

t.test('a late answer to a finished session never reaches the next client', async (t) => {
  // The backend answers every request at once and again 150 ms later, while the listener expects
  // one answer: the late one arrives after its session ended, while the next client's session to
  // the same backend is waiting for its own (slow) answer. It must not get the late one.
  const server = createSocket('udp4');
  server.on('message', (msg, from) => {
    const text = String(msg);
    // x is answered at once and again 150 ms later; y only after 300 ms, so x's late answer
    // arrives while y's session waits.
    setTimeout(() => server.send(`first:${text}`, from.port, from.address), text === 'y' ? 300 : 0);
    if (text !== 'y') setTimeout(() => server.send(`late:${text}`, from.port, from.address), 150);
  });
  await new Promise<void>((r) => server.bind(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const lb = await startBalancer({ listen: '127.0.0.1:0/udp', backends: [`127.0.0.1:${server.address().port}`], workers: 1, udpResponses: 1 });
  closeAtEnd(t, lb);
  const port = lb.address().port;
  const one = await UdpClient.open();
  const two = await UdpClient.open();
  t.teardown(() => Promise.all([one.close(), two.close()]));
  t.equal(String(await one.ask('x', port)), 'first:x');
  t.equal(String(await two.ask('y', port)), 'first:y', "the next client gets its own answer, not the late one to x");
  await t.rejects(one.next(400, 'nothing more'), /nothing more/, 'the first client gets nothing after its answer');
  await t.rejects(two.next(400, 'nothing more'), /nothing more/, 'the second client gets nothing after its answer');
  const c = lb.stats().listeners[0].counters;
  t.equal(c.sessions_total, 2);
  t.equal(c.datagrams_to_client, 2, 'only the expected answers were forwarded');
});

t.test('active UDP checks: pass, wrong answer, no answer, refused; a failing backend leaves the rotation', async (t) => {
  const { runCheck } = await import('../../lib/health/checkers.js');
  const { validateHealthConfig } = await import('../../lib/health/check-config.js');
  const pong = await udpBackend((msg) => (String(msg) === 'ping' ? Buffer.from('pong 1.0') : Buffer.from('what?')));
  const silent = await udpBackend(() => null);
  const gone = await udpBackend(() => null);
  const gonePort = gone.port;
  await gone.close();
  t.teardown(() => Promise.all([pong.close(), silent.close()]));
  const check = (text: string) => validateHealthConfig(text, '--health-check');
  const at = (port: number) => ({ ip: '127.0.0.1', port });
  t.match(await runCheck(at(pong.port), check('udp,send=ping,expect=pong')), { ok: true, reason: 'answered with "pong"' });
  t.match(await runCheck(at(pong.port), check('udp,send=ping,expect=1.0')), { ok: true }, 'substring by default');
  t.match(await runCheck(at(pong.port), check('udp,send=ping,expect=1.0,match=prefix')), { ok: false, reason: /wrong answer: got "pong 1.0" expected to start with "1.0"/ });
  t.match(await runCheck(at(pong.port), check('udp,send-hex=70696e67,expect-hex=706f6e67')), { ok: true }, 'hex both ways');
  t.match(await runCheck(at(pong.port), check('udp,send=hello')), { ok: true, reason: /answered \(5 bytes\)/ }, 'any reply passes without an expectation');
  t.match(await runCheck(at(pong.port), check('udp,send=hello,expect=pong')), { ok: false, reason: /wrong answer: got "what\?"/ });
  t.match(await runCheck(at(silent.port), check('udp,send=ping,expect=pong,timeout=200ms,interval=1s')), { ok: false, reason: 'no answer within 200ms' });
  t.match(await runCheck(at(gonePort), check('udp,send=ping,timeout=1s')), { ok: false, reason: /ECONNREFUSED/ }, 'a refusal fails at once');

  // Wired into a UDP listener: the silent backend goes down and clients reach only the other.
  const lb = await startBalancer({
    listen: '127.0.0.1:0/udp',
    backends: [{ address: pong.address, id: 'pong' }, { address: silent.address, id: 'silent' }],
    health: { type: 'udp', send: 'ping', expect: 'pong', interval: '300ms', timeout: '250ms', rise: 1, fall: 2 },
    workers: 1,
  });
  closeAtEnd(t, lb);
  await until(() => lb.backends().find((b) => b.id === 'silent')?.health === 'down', 5000, 'the silent backend to go down');
  t.equal(lb.backends().find((b) => b.id === 'pong')?.health, 'up');
  for (let i = 0; i < 6; i++) {
    const client = await UdpClient.open();
    t.equal(String(await client.ask('ping', lb.address().port)), 'pong 1.0', `client ${i}: answered by the healthy backend`);
    await client.close();
  }
  // And the checks match their listener's protocol.
  await t.rejects(startBalancer({ listen: '127.0.0.1:0/udp', backends: [pong.address], health: { type: 'tcp' } }), { code: 'LB4_INVALID_OPTION', field: 'health.type' });
  await t.rejects(startBalancer({ listen: '127.0.0.1:0', backends: [pong.address], health: { type: 'udp', send: 'x' } }), { code: 'LB4_INVALID_OPTION', field: 'health.type' });
});

t.test("with --udp-responses a client's next request reuses its own upstream socket, never another client's", async (t) => {
  // The backend answers at once, and requests named late* once more 150 ms later; slow* only
  // after 300 ms. It records the source port each request came from.
  const portsOf = new Map<string, number>();
  const server = createSocket('udp4');
  server.on('message', (msg, from) => {
    const text = String(msg);
    portsOf.set(text, from.port);
    setTimeout(() => server.send(`first:${text}`, from.port, from.address), text.startsWith('slow') ? 300 : 0);
    if (text.startsWith('late')) setTimeout(() => server.send(`late:${text}`, from.port, from.address), 150);
  });
  await new Promise<void>((r) => server.bind(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const lb = await startBalancer({ listen: '127.0.0.1:0/udp', backends: [`127.0.0.1:${server.address().port}`], workers: 1, udpResponses: 1, accessLog: true });
  closeAtEnd(t, lb);
  const records: Array<{ protocol: string; reason: string }> = [];
  lb.on('flow', (r) => records.push(r));
  const port = lb.address().port;
  const one = await UdpClient.open();
  const two = await UdpClient.open();
  t.teardown(() => Promise.all([one.close(), two.close()]));
  // one's late answer arrives while its socket is warm and two waits for a slow answer.
  t.equal(String(await one.ask('late-1', port)), 'first:late-1');
  t.equal(String(await two.ask('slow-2', port)), 'first:slow-2', 'two gets its own answer');
  t.equal(String(await one.ask('quick-1', port)), 'first:quick-1');
  t.equal(String(await two.ask('quick-2', port)), 'first:quick-2');
  t.equal(portsOf.get('quick-1'), portsOf.get('late-1'), "one's next request left from its own warm socket");
  t.equal(portsOf.get('quick-2'), portsOf.get('slow-2'), "and two's from its own");
  t.not(portsOf.get('quick-1'), portsOf.get('quick-2'), 'the two clients never share an upstream socket');
  // A late answer arriving while the same client's next session waits goes to that client, the
  // one that asked, as it would if its session had stayed open; never to the other client.
  await one.send('late-3', port);
  t.equal(String((await one.next()).msg), 'first:late-3');
  await one.send('slow-3', port);
  t.equal(String((await one.next()).msg), 'late:late-3', 'the late answer reaches the client that asked');
  await t.rejects(two.next(500, 'nothing for two'), /nothing for two/, 'the other client gets nothing it did not ask for');
  await t.rejects(one.next(200, 'nothing more'), /nothing more/, 'the answer past the expected one is dropped');
  await until(() => lb.stats().listeners[0].counters.sessions_active === 0, 5000, 'every session to end');
  const c = lb.stats().listeners[0].counters;
  t.equal(c.sessions_total, 6, 'a session per request, warm socket or not');
  t.equal(c.datagrams_to_backend, 6);
  t.equal(c.datagrams_to_client, 6, 'exactly the answers the clients got');
  t.equal(c.dropped_late, 2, "late-1's answer on the warm socket and slow-3's past its due");
  await until(() => records.length === 6, 5000, 'an access log line per ended session');
  t.ok(records.every((r) => r.protocol === 'udp' && r.reason === 'responses'), 'each ended by its response');
});

t.test("datagrams the kernel drops on the listener's full socket are counted", async (t) => {
  const { startChildBalancer } = await import('../helpers/child-balancer.js');
  const { readFileSync } = await import('node:fs');
  const backend = await udpBackend(namedEcho('a'));
  t.teardown(() => backend.close());
  // In a process of its own, so that it can be stopped while datagrams pile up on its socket.
  const lb = await startChildBalancer({ listen: '127.0.0.1:0/udp', backends: [backend.address], workers: 1 });
  t.teardown(() => lb.kill());
  const client = await UdpClient.open();
  t.teardown(() => client.close());
  t.equal(String(await client.ask('before', lb.port)), 'a:before');
  // The kernel's own drop count for the listener socket: the last column of /proc/net/udp.
  const kernelDrops = () => {
    const local = `0100007F:${lb.port.toString(16).toUpperCase().padStart(4, '0')}`;
    const rows = readFileSync('/proc/net/udp', 'utf8').split('\n').filter((l) => l.trim().split(/\s+/)[1] === local);
    return rows.reduce((sum, l) => sum + Number(l.trim().split(/\s+/).at(-1)), 0);
  };
  t.equal(kernelDrops(), 0);
  lb.child.kill('SIGSTOP');
  t.teardown(() => lb.child.kill('SIGCONT'));
  const payload = Buffer.alloc(1200, 'x');
  for (let i = 0; i < 3000; i++) await client.send(payload, lb.port);
  const dropped = kernelDrops();
  t.ok(dropped > 0, `the stopped balancer's socket overflowed (${dropped} dropped)`);
  lb.child.kill('SIGCONT');
  // A datagram read after the drops carries the count.
  await until(async () => {
    await client.send('after', lb.port);
    return client.received.some((r) => String(r.msg) === 'a:after');
  }, 10_000, 'the balancer to answer again');
  lb.send('stats');
  const { stats } = (await lb.next()) as { stats: Record<string, number> };
  t.equal(stats.dropped_overflow, kernelDrops(), 'counted exactly as the kernel counted them');
  t.equal(stats.dropped_overflow, dropped, 'and none since the balancer read again');
});

t.test('with --udp-responses and warm sockets, many clients at once each get only their own answers; every session counted and logged once', async (t) => {
  const a = await udpBackend(namedEcho('a'));
  const b = await udpBackend(namedEcho('b'));
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const lb = await startBalancer({ listen: '127.0.0.1:0/udp', backends: [a.address, b.address], workers: 2, udpResponses: 1, accessLog: true });
  closeAtEnd(t, lb);
  let logged = 0;
  lb.on('flow', (r) => {
    if (r.protocol === 'udp' && r.reason === 'responses') logged++;
  });
  const port = lb.address().port;
  const clients = await Promise.all(Array.from({ length: 30 }, () => UdpClient.open()));
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  let wrong = 0;
  await Promise.all(
    clients.map(async (c, i) => {
      for (let j = 0; j < 10; j++) {
        const text = String(await c.ask(`client ${i} query ${j}`, port));
        if (!new RegExp(`^[ab]:client ${i} query ${j}$`).test(text)) wrong++;
      }
    }),
  );
  t.equal(wrong, 0, 'every answer went to the client that asked, for the query it asked');
  await until(() => lb.stats().listeners[0].counters.sessions_active === 0, 5000, 'every session to end');
  const c = lb.stats().listeners[0].counters;
  t.equal(c.sessions_total, 300, 'a session per query');
  t.equal(c.datagrams_to_backend, 300);
  t.equal(c.datagrams_to_client, 300);
  t.equal(c.dropped_late, 0);
  await until(() => logged === 300, 5000, 'an access log line per ended session');
  t.equal(logged, 300);
});

t.test('without active checks, a refusing UDP backend is taken down by passive health, so new clients are answered at once, and is tried again later', async (t) => {
  const { deadPort, live } = await refusingAndLive(t);
  const lb = await startBalancer({
    listen: '127.0.0.1:0/udp',
    backends: [{ address: `127.0.0.1:${deadPort}`, id: 'dead' }, { address: live.address, id: 'live' }],
    workers: 1,
    // A short avoidance on the worker, so refusals keep coming until passive health acts.
    connectTimeout: '20ms',
    passiveFailures: 2,
    passiveRetry: '1s',
  });
  closeAtEnd(t, lb);
  const health: Array<{ backend: string; health: string }> = [];
  lb.on('backend-health', (e) => health.push(e));
  const dropped = () => lb.stats().backends.find((b) => b.id === 'dead')!.counters.connect_failures;
  // New clients, one datagram each, until two refusals in a row took the dead backend down.
  for (let tries = 0; tries < 50 && !health.some((e) => e.health === 'down'); tries++) {
    const c = await UdpClient.open();
    await c.send('hello?', lb.address().port);
    await c.next(300, 'an answer').catch(() => null);
    await c.close();
    await new Promise((r) => setTimeout(r, 30)); // past the worker's 20 ms avoidance
  }
  t.match(lb.backends().find((b) => b.id === 'dead'), { health: 'down', takesNewFlows: false });
  const failuresWhenDown = dropped();
  t.ok(failuresWhenDown >= 2, `${failuresWhenDown} refusals counted`);
  for (let i = 0; i < 6; i++) {
    const c = await UdpClient.open();
    t.equal(String(await c.ask(`q${i}`, lb.address().port)), `live:q${i}`, `new client ${i}: its first datagram is answered`);
    await c.close();
  }
  t.equal(dropped(), failuresWhenDown, 'no datagram went to the down backend');
  await until(() => lb.backends().find((b) => b.id === 'dead')?.health === 'unchecked', 5000, 'the backend to be tried again after --passive-retry');
  t.same(health.map((e) => e.health), ['down', 'unchecked']);
});
