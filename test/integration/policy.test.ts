// Access lists and limits with real sockets (native/core/policy/, lib/config/listener-policy.ts):
// allow and deny for IPv4 and IPv6 clients and after a reload, IPv4 clients of a dual-stack
// listener against IPv4-mapped IPv6 networks, the listener cap, backend caps
// with the queue (served when room frees, full, timed out, or refused with no queue), per-source
// concurrency and rate limits, the PROXY protocol header's client judged instead of the peer,
// and UDP sessions. Distinct IPv4 sources are 127.0.0.x bound as the client's local address.
// Every refusal a client sees is matched by exactly one count of its reason.

import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import t, { type Test } from 'tap';
import { startBalancer, type Balancer, type BalancerOptions } from '../../lib/index.js';
import { call } from '../helpers/admin-http.js';
import { udpBackend, namedEcho, UdpClient } from '../helpers/datagrams.js';
import { v1Header } from '../helpers/proxy-header.js';
import { echoBackend, readAll, sha256, until, within, type TestBackend } from '../helpers/sockets.js';

const counters = (lb: Balancer, listener = 0) => lb.stats().listeners[listener].counters;

/** Sends `payload` from `from` through `port`, ends, and reads what comes back (the echo, or nothing for a refused client). */
async function echoFrom(port: number, from: string, payload: Buffer, host = '127.0.0.1'): Promise<{ served: boolean; data: Buffer }> {
  const socket = net.connect({ port, host, localAddress: from });
  socket.on('error', () => {});
  const reading = readAll(socket);
  socket.end(payload);
  const { data } = await reading;
  return { served: data.equals(payload), data };
}

/** A client that stays open: it has sent `probe` and had it echoed, so its flow is established. */
async function heldClient(port: number, from = '127.0.0.1'): Promise<net.Socket> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress: from });
  socket.on('error', () => {});
  await within(once(socket, 'connect'), 10_000, 'connect');
  const probe = Buffer.from('hold\n');
  socket.write(probe);
  await within(once(socket, 'data'), 10_000, 'the held client to be echoed');
  return socket;
}

/** Whether a client from `from` is refused: the connection ends with no byte of the echo. */
async function refused(port: number, from = '127.0.0.1', host = '127.0.0.1'): Promise<boolean> {
  const { data } = await echoFrom(port, from, Buffer.from('knock\n'), host);
  return data.length === 0;
}

async function balancer(t: Test, options: BalancerOptions): Promise<Balancer> {
  const lb = await startBalancer({ workers: 1, ...options });
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  return lb;
}

async function echo(t: Test): Promise<TestBackend> {
  const backend = await echoBackend();
  t.teardown(() => backend.close());
  return backend;
}

t.test('IPv4 access lists: deny wins over allow, allow refuses the rest; reload changes them live', async (t) => {
  const backend = await echo(t);
  const options: BalancerOptions = { listen: '127.0.0.1:0', backends: [backend.address], allow: ['127.0.0.0/30'], deny: ['127.0.0.2'] };
  const lb = await balancer(t, options);
  const port = lb.address().port;
  const payload = randomBytes(50_000);
  const allowed = await echoFrom(port, '127.0.0.1', payload);
  t.equal(sha256(allowed.data), sha256(payload), 'an allowed client is served, bytes intact');
  t.ok(await refused(port, '127.0.0.2'), 'a denied client (in allow too: deny wins) is closed with nothing');
  t.ok(await refused(port, '127.0.0.5'), 'a client outside a non-empty allow list is refused');
  t.equal(backend.accepted, 1, 'no backend connect for a refused client');
  t.equal(counters(lb).denied, 2, 'each refusal counted once');
  t.equal(counters(lb).flows_total, 1, 'refused clients are not flows');

  await lb.reload({ ...options, allow: [], deny: ['127.0.0.1'] });
  t.ok(await refused(port, '127.0.0.1'), 'after the reload the newly denied client is refused');
  t.ok((await echoFrom(port, '127.0.0.5', payload)).served, 'and a client outside the old allow list is served');
  t.equal(counters(lb).denied, 3);
});

t.test('IPv6 access lists on [::1], changed by a reload', async (t) => {
  const backend = await echo(t);
  const options = (allow: string[]): BalancerOptions => ({ listeners: [{ listen: '[::1]:0', allow, backends: [backend.address] }] });
  const lb = await balancer(t, options(['2001:db8::/32']));
  const port = lb.address().port;
  t.ok(await refused(port, '::1', '::1'), '::1 is outside 2001:db8::/32');
  t.equal(counters(lb).denied, 1);
  await lb.reload(options(['::1/128']));
  t.ok((await echoFrom(port, '::1', Buffer.from('six\n'), '::1')).served, '::1 is served once the reload allows it');
  t.equal(counters(lb).denied, 1);
});

t.test('a dual-stack listener judges IPv4 clients by IPv6 networks over IPv4-mapped addresses, and by ::/0', async (t) => {
  const backend = await echo(t);
  const options = (lists: Partial<BalancerOptions>): BalancerOptions => ({ listen: ':0', backends: [backend.address], ...lists });
  const lb = await balancer(t, options({ deny: ['::ffff:127.0.0.2'] }));
  const port = lb.address().port;
  const payload = Buffer.from('mapped\n');
  t.ok(await refused(port, '127.0.0.2'), 'deny ::ffff:127.0.0.2 refuses the IPv4 client 127.0.0.2');
  t.ok((await echoFrom(port, '127.0.0.1', payload)).served, 'and serves 127.0.0.1');
  await lb.reload(options({ allow: ['::ffff:127.0.0.1'] }));
  t.ok((await echoFrom(port, '127.0.0.1', payload)).served, 'allow ::ffff:127.0.0.1 serves the IPv4 client 127.0.0.1');
  t.ok(await refused(port, '127.0.0.3'), 'and refuses 127.0.0.3');
  await lb.reload(options({ deny: ['::/0'] }));
  t.ok(await refused(port, '127.0.0.1'), 'deny ::/0 refuses IPv4 clients too');
  t.ok(await refused(port, '::1', '::1'), 'as it does IPv6 ones');
  t.equal(counters(lb).denied, 4, 'each refusal counted once');
  t.equal(backend.accepted, 2, 'only the two served clients reached the backend');
});

t.test('the listener cap holds over every worker, refuses past maxConnections and serves again when a flow ends', async (t) => {
  const backend = await echo(t);
  // Two workers: wherever the kernel puts each client, the cap counts the flows of both.
  const lb = await balancer(t, { listen: '127.0.0.1:0', backends: [backend.address], maxConnections: 2, workers: 2 });
  const port = lb.address().port;
  const a = await heldClient(port);
  const b = await heldClient(port);
  t.ok(await refused(port), 'a third client is refused');
  t.equal(counters(lb).listener_limit, 1);
  a.destroy();
  await until(() => counters(lb).flows_active === 1, 10_000, 'the first flow to end');
  t.ok((await echoFrom(port, '127.0.0.1', Buffer.from('again\n'))).served, 'room again: served');
  b.destroy();
  t.equal(counters(lb).listener_limit, 1);
});

t.test('a full backend queues new flows: served when room frees, queue full refused', async (t) => {
  const backend = await echo(t);
  // Two workers: the flow that frees the room and the queued one may be on either (the room
  // reaches another worker's queue on its tick); the backend's cap and the queue's bound hold
  // over both.
  const lb = await balancer(t, {
    listeners: [{ listen: '127.0.0.1:0', queueSize: 1, queueTimeout: '1m', backends: [{ address: backend.address, maxConnections: 1 }] }],
    admin: { listen: '127.0.0.1:0' },
    workers: 2,
  });
  const metrics = async () => (await call({ port: Number(new URL(lb.adminUrl!).port) }, 'GET', '/metrics')).text;
  const port = lb.address().port;
  const first = await heldClient(port);

  // The second client waits in the queue with its bytes already sent.
  const payload = randomBytes(200_000);
  const queued = net.connect({ port, host: '127.0.0.1' });
  queued.on('error', () => {});
  const reading = readAll(queued);
  queued.end(payload);
  await until(() => counters(lb).flows_queued === 1, 10_000, 'the second client to be queued');
  t.equal(backend.accepted, 1, 'the queued client has no backend connection yet');
  t.same((await lb.connections()).map((c) => c.state).sort(), ['established', 'queued']);

  t.ok(await refused(port), 'a third client finds the queue full');
  t.equal(counters(lb).queue_full, 1);
  const exposition = await metrics();
  t.match(exposition, /^lb4_listener_queued_flows\{listener="127\.0\.0\.1:\d+"\} 1$/m, '/metrics: the queue');
  t.match(exposition, /^lb4_listener_refused_total\{listener="127\.0\.0\.1:\d+",reason="queue_full"\} 1$/m, '/metrics: the refusal by reason');

  first.destroy();
  const { data } = await reading;
  t.equal(sha256(data), sha256(payload), 'the queued client is served when the slot frees, bytes intact');
  t.equal(counters(lb).flows_queued, 0);
  t.equal(backend.accepted, 2);
  t.equal(counters(lb).queue_timeout, 0);
});

t.test('a queued flow past queueTimeout is closed and counted; with no queue a full backend refuses at once', async (t) => {
  const backend = await echo(t);
  const lb = await balancer(t, {
    listeners: [
      { name: 'queue', listen: '127.0.0.1:0', queueSize: 4, queueTimeout: '300ms', backends: [{ address: backend.address, id: 'q', maxConnections: 1 }] },
      { name: 'noqueue', listen: '127.0.0.1:0', backends: [{ address: backend.address, id: 'n', maxConnections: 1 }] },
    ],
  });
  const [withQueue, withoutQueue] = lb.addresses().map((a) => a.port);
  const held = await heldClient(withQueue);
  t.ok(await refused(withQueue), 'the queued client is closed at the timeout with nothing served');
  t.equal(counters(lb, 0).queue_timeout, 1);
  t.equal(counters(lb, 0).flows_queued, 0);

  const other = await heldClient(withoutQueue);
  t.ok(await refused(withoutQueue), 'no queue: refused at once');
  t.equal(counters(lb, 1).backend_limit, 1);
  held.destroy();
  other.destroy();
});

t.test('a client that hangs up while queued leaves the queue and never reaches the backend', async (t) => {
  const backend = await echo(t);
  const lb = await balancer(t, { listeners: [{ listen: '127.0.0.1:0', queueSize: 1, queueTimeout: '1m', backends: [{ address: backend.address, maxConnections: 1 }] }] });
  const port = lb.address().port;
  const held = await heldClient(port);
  // Connect and hang up without a byte: the queue's one place is taken, then given back.
  const gone = net.connect({ port, host: '127.0.0.1' });
  gone.on('error', () => {});
  await within(once(gone, 'connect'), 10_000, 'connect');
  await until(() => counters(lb).flows_queued === 1, 10_000, 'the client to be queued');
  gone.end();
  await until(() => counters(lb).flows_queued === 0, 10_000, 'the client that left to leave the queue');
  // The place is free for the next client, who is served once the backend has room.
  const payload = randomBytes(50_000);
  const next = net.connect({ port, host: '127.0.0.1' });
  next.on('error', () => {});
  const reading = readAll(next);
  next.end(payload);
  await until(() => counters(lb).flows_queued === 1, 10_000, 'the next client to be queued');
  t.equal(counters(lb).queue_full, 0, 'not refused: the place was given back');
  held.destroy();
  t.equal(sha256((await reading).data), sha256(payload), 'the next client is served, bytes intact');
  t.equal(backend.accepted, 2, 'the client that left never got a backend connection');
});

t.test('a reload changes a backend\'s maxConnections live', async (t) => {
  const backend = await echo(t);
  const options = (maxConnections: number): BalancerOptions => ({ listeners: [{ listen: '127.0.0.1:0', backends: [{ address: backend.address, maxConnections }] }] });
  const lb = await balancer(t, options(1));
  const port = lb.address().port;
  const first = await heldClient(port);
  t.ok(await refused(port), 'one flow fills the backend');
  t.equal(counters(lb).backend_limit, 1);
  await lb.reload(options(2));
  const second = await heldClient(port);
  t.pass('after the reload a second flow is served');
  t.ok(await refused(port), 'and a third finds it full again');
  t.equal(counters(lb).backend_limit, 2);
  first.destroy();
  second.destroy();
});

t.test('per-source concurrency: one source held to its limit, another source unaffected', async (t) => {
  const backend = await echo(t);
  const lb = await balancer(t, { listen: '127.0.0.1:0', backends: [backend.address], maxConnectionsPerSource: 2 });
  const port = lb.address().port;
  const held = [await heldClient(port, '127.0.0.2'), await heldClient(port, '127.0.0.2')];
  t.ok(await refused(port, '127.0.0.2'), 'the third flow of 127.0.0.2 is refused');
  t.ok((await echoFrom(port, '127.0.0.3', Buffer.from('other\n'))).served, '127.0.0.3 is another source');
  t.equal(counters(lb).source_limit, 1);
  held[0].destroy();
  await until(() => counters(lb).flows_active === 1, 10_000, 'a flow of 127.0.0.2 to end');
  t.ok((await echoFrom(port, '127.0.0.2', Buffer.from('back\n'))).served, 'served again once one of its flows ended');
  held[1].destroy();
  t.equal(counters(lb).source_limit, 1);
});

t.test('per-source rate: a burst past the rate is refused, every refusal counted', async (t) => {
  const backend = await echo(t);
  const rate = 3;
  const lb = await balancer(t, { listen: '127.0.0.1:0', backends: [backend.address], connectionRatePerSource: rate });
  const port = lb.address().port;
  const tries = 12;
  const started = Date.now();
  let served = 0;
  for (let i = 0; i < tries; i++) if ((await echoFrom(port, '127.0.0.4', Buffer.from(`n${i}\n`))).served) served++;
  const elapsedS = (Date.now() - started) / 1000;
  // The bucket starts full (a burst of `rate`) and refills `rate` a second: however slow this
  // machine ran the loop, no more than that may have passed.
  t.ok(served >= rate, `the first burst of ${rate} is served (served ${served})`);
  t.ok(served <= rate + Math.ceil(elapsedS * rate), `no more than the bucket allows: ${served} in ${elapsedS.toFixed(2)} s`);
  t.equal(counters(lb).source_rate, tries - served, 'every refused client counted once');
  t.ok((await echoFrom(port, '127.0.0.5', Buffer.from('other\n'))).served, 'another source has its own bucket');
});

t.test('with acceptProxy the header names the client the access lists and source limits judge', async (t) => {
  const backend = await echo(t);
  const lb = await balancer(t, { listen: '127.0.0.1:0', backends: [backend.address], acceptProxy: '127.0.0.1', deny: ['192.0.2.0/24', '127.0.0.2'], connectionRatePerSource: 1 });
  const port = lb.address().port;
  const from = (client: string) => echoFrom(port, '127.0.0.1', Buffer.concat([v1Header(client, 4000, '127.0.0.1', port), Buffer.from('hi\n')]));
  t.equal((await from('192.0.2.7')).data.length, 0, 'a header naming a denied client is refused (the peer itself is not denied)');
  t.equal((await from('198.51.100.1')).data.toString(), 'hi\n', 'a header naming another client is served');
  t.equal((await from('198.51.100.1')).data.length, 0, "that client's second flow within the second is past its rate");
  t.equal((await from('198.51.100.2')).data.toString(), 'hi\n', 'a third client, from the same peer, has its own bucket');
  t.equal(counters(lb).denied, 1);
  t.equal(counters(lb).source_rate, 1);
  t.equal(counters(lb).proxy_headers_accepted, 4);
  t.equal(backend.accepted, 2);
});

t.test('UDP access lists: a denied client opens no session, its datagram dropped and counted', async (t) => {
  const backend = await udpBackend(namedEcho('b'));
  t.teardown(() => backend.close());
  const lb = await balancer(t, { listen: '127.0.0.1:0/udp', backends: [backend.address], deny: '127.0.0.2' });
  const port = lb.address().port;
  const allowed = await UdpClient.open('127.0.0.1');
  const denied = await UdpClient.open('127.0.0.2');
  t.teardown(async () => {
    await allowed.close();
    await denied.close();
  });
  await denied.send('no', port);
  await until(() => counters(lb).denied === 1, 10_000, 'the denied datagram to be counted');
  t.equal((await allowed.ask('yes', port)).toString(), 'b:yes');
  t.equal(denied.received.length, 0, 'nothing came back to the denied client');
  t.equal(counters(lb).sessions_total, 1, 'only the allowed client opened a session');
  t.equal(counters(lb).denied, 1);
});
