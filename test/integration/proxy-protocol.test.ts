// The PROXY protocol with real sockets: lb4 sends v1 and v2 headers to backends (checked by a
// separate test parser, with the payload behind them intact); lb4 accepts v1 and v2 headers from
// trusted clients (the backend sees the payload alone, connections() the header's client),
// refuses untrusted, malformed, oversized and slow ones and counts each; and HAProxy as a real
// peer on both sides.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startBalancer, type Balancer } from '../../lib/index.js';
import { call } from '../helpers/admin-http.js';
import { recordingBackend, v1Header, v2Header } from '../helpers/proxy-header.js';
import { connect, nameBackend, readAll, sha256, until, within } from '../helpers/sockets.js';

/**
 * Connects, writes `chunks` one by one, ends, and reads the reply; returns it with the client's
 * port. A refused client may see its reset even before Node reports the connect: that is an
 * answer too (`error`), not a failure of the test.
 */
async function exchange(port: number, chunks: Buffer[]): Promise<{ reply: string; clientPort: number; error?: NodeJS.ErrnoException }> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  let clientPort = 0;
  socket.on('connect', () => (clientPort = socket.localPort!));
  const reading = readAll(socket);
  for (const c of chunks) socket.write(c);
  socket.end();
  const { data, error } = await reading;
  return { reply: data.toString(), clientPort, error };
}

const counters = (lb: Balancer) => lb.stats().listeners[0].counters;

t.test('sends a v1 header with the client and the listener address, then the payload intact', async (t) => {
  const backend = await recordingBackend();
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [backend.address], workers: 1, proxyProtocol: 'v1' });
  t.teardown(async () => {
    await lb.close({ drainTimeout: 0 });
    await backend.close();
  });
  const payload = randomBytes(300_000);
  const { reply, clientPort } = await exchange(lb.address().port, [payload]);
  t.equal(reply, 'ok');
  const got = await backend.next();
  t.same(got.header, { version: 1, family: 'TCP4', source: '127.0.0.1', sourcePort: clientPort, destination: '127.0.0.1', destinationPort: lb.address().port, length: got.header?.length });
  t.equal(sha256(got.payload), sha256(payload), 'the payload follows the header intact');
  await until(() => counters(lb).flows_active === 0, 5000, 'the flow to close');
  t.equal(counters(lb).bytes_to_backend, payload.length, 'the header is not counted as forwarded bytes');
});

t.test('sends a v2 header, set per listener in the full form; a client that sends nothing still gets its header sent', async (t) => {
  const backend = await recordingBackend();
  const plain = await recordingBackend();
  const lb = await startBalancer({
    listeners: [
      { listen: '127.0.0.1:0', name: 'v2', proxyProtocol: 'v2', backends: [backend.address] },
      { listen: '127.0.0.1:0', name: 'plain', backends: [plain.address] },
    ],
    workers: 2,
  });
  t.teardown(async () => {
    await lb.close({ drainTimeout: 0 });
    await backend.close();
    await plain.close();
  });
  const [withHeader, without] = lb.addresses();
  const payload = randomBytes(5000);
  const { clientPort } = await exchange(withHeader.port, [payload.subarray(0, 1), payload.subarray(1)]);
  const got = await backend.next();
  t.match(got.header, { version: 2, family: 'TCP4', source: '127.0.0.1', sourcePort: clientPort, destination: '127.0.0.1', destinationPort: withHeader.port, uniqueId: /^\d+$/ });
  t.equal(got.header?.length, 28 + 3 + (got.header?.uniqueId?.length ?? 0), 'the addresses, then the unique id TLV only');
  t.equal(sha256(got.payload), sha256(payload), 'payload intact');

  // Server-speaks-first protocols: the header must not wait for a client byte.
  await exchange(withHeader.port, []);
  const empty = await backend.next();
  t.match(empty.header, { version: 2, family: 'TCP4' });
  t.equal(empty.payload.length, 0);

  await exchange(without.port, [payload]);
  const p = await plain.next();
  t.equal(p.header, null, 'the other listener sends no header');
  t.equal(sha256(p.payload), sha256(payload));
});

t.test('accepts v1 and v2 headers from a trusted network: the backend gets the payload alone, the flow the header\'s client', async (t) => {
  const backend = await recordingBackend();
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [backend.address], workers: 1, acceptProxy: ['10.0.0.0/8', '127.0.0.0/8'], admin: { listen: '127.0.0.1:0' }, accessLog: true });
  const logged: string[] = [];
  lb.on('flow', (record) => logged.push(record.client));
  t.teardown(async () => {
    await lb.close({ drainTimeout: 0 });
    await backend.close();
  });
  const port = lb.address().port;
  for (const [version, header] of [
    ['v1', v1Header('203.0.113.7', 4444, '198.51.100.1', 80)],
    ['v2', v2Header('203.0.113.7', 4444, '198.51.100.1', 80)],
  ] as const) {
    const payload = randomBytes(100_000);
    const socket = await connect(port);
    const reading = readAll(socket);
    // The header in two pieces, the second together with the start of the payload.
    socket.write(header.subarray(0, 9));
    socket.write(Buffer.concat([header.subarray(9), payload.subarray(0, 1000)]));
    let flows = await lb.connections();
    await until(async () => (flows = await lb.connections()).some((f) => f.state === 'established'), 5000, `the ${version} flow to be established`);
    t.equal(flows.length, 1);
    t.equal(flows[0].client, '203.0.113.7:4444', `${version}: connections() shows the header's client`);
    socket.end(payload.subarray(1000));
    const { data } = await reading;
    t.equal(data.toString(), 'ok');
    const got = await backend.next();
    t.equal(got.header, null, `${version}: the backend sees no header`);
    t.equal(sha256(got.payload), sha256(payload), `${version}: payload intact`);
  }
  t.equal(counters(lb).proxy_headers_accepted, 2, 'both headers counted as accepted');
  await until(() => logged.length === 2, 5000, 'the access log records');
  t.same(logged, ['203.0.113.7:4444', '203.0.113.7:4444'], "the access log has the header's client");

  // A v2 LOCAL header (a proxy's own health check) keeps the connection's address.
  const socket = await connect(port);
  const reading = readAll(socket);
  socket.write(v2Header('203.0.113.9', 1, '198.51.100.1', 80, 'local'));
  let flows = await lb.connections();
  await until(async () => (flows = await lb.connections()).some((f) => f.state === 'established'), 5000, 'the LOCAL flow');
  t.equal(flows[0].client, `127.0.0.1:${socket.localPort}`, 'LOCAL: the real client address stays');
  socket.end('x');
  await reading;

  const metrics = await call({ port: Number(new URL(lb.adminUrl!).port) }, 'GET', '/metrics');
  t.match(metrics.text, /^lb4_listener_proxy_headers_accepted_total\{listener="[^"]+"\} 3$/m, '/metrics counts accepted headers');
});

t.test('accepts a header and sends one on: the backend learns the first client through two proxies', async (t) => {
  const backend = await recordingBackend();
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [backend.address], workers: 1, acceptProxy: '127.0.0.1', proxyProtocol: 'v1' });
  t.teardown(async () => {
    await lb.close({ drainTimeout: 0 });
    await backend.close();
  });
  const payload = randomBytes(2000);
  await exchange(lb.address().port, [v2Header('192.0.2.33', 5555, '192.0.2.1', 443), payload]);
  const got = await backend.next();
  t.match(got.header, { version: 1, family: 'TCP4', source: '192.0.2.33', sourcePort: 5555, destination: '192.0.2.1', destinationPort: 443 });
  t.equal(sha256(got.payload), sha256(payload));
});

t.test('refuses and counts: untrusted source, malformed header, oversized header, slow header', async (t) => {
  const backend = await recordingBackend();
  const trusting = await startBalancer({ listen: '127.0.0.1:0', backends: [backend.address], workers: 1, acceptProxy: ['127.0.0.1/32'], proxyHeaderTimeout: '300ms', admin: { listen: '127.0.0.1:0' }, accessLog: true });
  const distrusting = await startBalancer({ listen: '127.0.0.1:0', backends: [backend.address], workers: 1, acceptProxy: ['10.0.0.0/8', '::1'] });
  const closed: string[] = [];
  trusting.on('flow', (record) => closed.push(record.reason));
  t.teardown(async () => {
    await trusting.close({ drainTimeout: 0 });
    await distrusting.close({ drainTimeout: 0 });
    await backend.close();
  });

  const untrusted = await exchange(distrusting.address().port, [v1Header('203.0.113.7', 4444, '198.51.100.1', 80), Buffer.from('hello')]);
  t.not(untrusted.reply, 'ok', 'an untrusted client is not served');
  await until(() => counters(distrusting).proxy_header_untrusted === 1, 5000, 'the untrusted refusal to be counted');

  const port = trusting.address().port;
  const malformed = await exchange(port, [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]);
  t.not(malformed.reply, 'ok');
  await until(() => counters(trusting).proxy_header_malformed === 1, 5000, 'the malformed refusal');

  // A v1 line with the space doubled, and a stream that ends half-way through a header.
  await exchange(port, [Buffer.from('PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n')]);
  await exchange(port, [Buffer.from('PROXY TCP4 1.2.3.4')]);
  await until(() => counters(trusting).proxy_header_malformed === 3, 5000, 'two more malformed refusals');

  const big = v2Header('1.2.3.4', 1, '5.6.7.8', 2);
  big.writeUInt16BE(4000, 14);
  await exchange(port, [big, randomBytes(4000)]);
  await exchange(port, [Buffer.from('PROXY UNKNOWN ' + 'x'.repeat(200) + '\r\n')]);
  await until(() => counters(trusting).proxy_header_oversized === 2, 5000, 'the oversized refusals');

  // Half a header, then nothing: the header timeout closes it.
  const slow = await connect(port);
  const slowReading = readAll(slow);
  slow.write('PROXY TCP4 1.2.3.4 ');
  const { data } = await within(slowReading, 10_000, 'the slow client to be closed');
  t.equal(data.length, 0, 'the slow client got nothing');
  t.equal(counters(trusting).proxy_header_timeouts, 1, 'counted as a header timeout');

  t.equal(backend.accepted, 0, 'no refused client reached the backend');
  t.equal(counters(trusting).proxy_headers_accepted, 0);
  await until(() => counters(trusting).flows_active === 0, 5000, 'every flow to close');
  await until(() => closed.length === 6, 5000, 'the access log records');
  t.same(closed, Array(6).fill('proxy-header'), "each refused flow's close reason is proxy-header");

  const metrics = await call({ port: Number(new URL(trusting.adminUrl!).port) }, 'GET', '/metrics');
  for (const [reason, n] of [['malformed', 3], ['oversized', 2], ['timeout', 1], ['untrusted', 0]] as const) {
    t.match(metrics.text, new RegExp(`^lb4_listener_proxy_headers_rejected_total\\{listener="[^"]+",reason="${reason}"\\} ${n}$`, 'm'), `/metrics: ${reason} ${n}`);
  }
});

t.test("maglev hashes the header's client: the same backend as that client connecting directly", async (t) => {
  const names = ['a', 'b', 'c'];
  const started = await Promise.all(names.map(nameBackend));
  t.teardown(() => Promise.all(started.map((b) => b.close())));
  const addresses = started.map((b) => b.address);
  // Two balancers alike but for acceptProxy: the same listener name and backends give the same
  // Maglev table (as on two nodes of a pair).
  const direct = await startBalancer({ listeners: [{ name: 'web', listen: '127.0.0.1:0', algorithm: 'maglev', backends: addresses }], workers: 1 });
  t.teardown(() => direct.close({ drainTimeout: 0 }));
  const proxied = await startBalancer({ listeners: [{ name: 'web', listen: '127.0.0.1:0', algorithm: 'maglev', acceptProxy: ['127.0.0.1'], backends: addresses }], workers: 2 });
  t.teardown(() => proxied.close({ drainTimeout: 0 }));
  const clients = Array.from({ length: 24 }, (_, i) => `127.0.3.${10 + i}`);
  const seen = new Set<string>();
  for (const client of clients) {
    const socket = net.connect({ port: direct.address().port, host: '127.0.0.1', localAddress: client });
    const { data } = await readAll(socket);
    const viaHeader = await exchange(proxied.address().port, [v1Header(client, 1000 + seen.size, '127.0.0.1', 80)]);
    t.equal(viaHeader.reply, data.toString(), `${client}: the same backend`);
    seen.add(data.toString().trim());
  }
  // Every proxied flow came from 127.0.0.1 itself: without the header's address they would all
  // have gone to one backend.
  t.ok(seen.size > 1, `the header addresses spread over ${seen.size} backends`);
});

t.test('a reload that turns acceptProxy and proxyProtocol on applies them to the next client, on the same listener', async (t) => {
  const backend = await recordingBackend();
  const options = { listen: { listen: '127.0.0.1:0', name: 'web' }, backends: [backend.address], workers: 1 };
  const lb = await startBalancer(options);
  t.teardown(async () => {
    await lb.close({ drainTimeout: 0 });
    await backend.close();
  });
  const port = lb.address().port;
  const before = await exchange(port, [Buffer.from('plain')]);
  t.equal(before.reply, 'ok');
  t.equal((await backend.next()).payload.toString(), 'plain');

  const summary = await lb.reload({ ...options, acceptProxy: ['127.0.0.1/32'], proxyProtocol: 'v2' });
  t.match(summary, { listenersAdded: [], listenersRemoved: [] });
  t.equal(lb.address().port, port, 'the same port');
  t.same(lb.config.listeners[0].acceptProxy, ['127.0.0.1/32'], 'the running config has the new settings');
  await exchange(port, [v1Header('203.0.113.50', 7, '198.51.100.2', 8), Buffer.from('after')]);
  const got = await backend.next();
  t.match(got.header, { version: 2, source: '203.0.113.50', sourcePort: 7, destination: '198.51.100.2', destinationPort: 8 });
  t.equal(got.payload.toString(), 'after');
  const refused = await exchange(port, [Buffer.from('plain again')]);
  t.not(refused.reply, 'ok', 'a client without a header is refused now');
});

// --- HAProxy as a real peer ---------------------------------------------------------------------

const haproxyInstalled = spawnSync('haproxy', ['-v']).status === 0;
const isRoot = process.getuid?.() === 0;
const skipHaproxy = !haproxyInstalled && !isRoot ? 'haproxy is not installed' : false;

/** A port on 127.0.0.1 that was free a moment ago (HAProxy cannot report a port 0 bind). */
async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/**
 * Whether a socket listens on 127.0.0.1:`port`, read from /proc/net/tcp: neither a probe
 * connection (it would go through HAProxy to lb4 and be counted there) nor a probe bind (it could
 * take the port from HAProxy for a moment).
 */
function bound(port: number): boolean {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .some((line) => {
      const fields = line.trim().split(/\s+/);
      return fields[1] === local && fields[3] === '0A';  // 0A: LISTEN
    });
}

/** Runs HAProxy in the foreground with `sections` after a minimal global/defaults; resolves once it listens on `port`. */
async function startHaproxy(t: Test, sections: string, port: number): Promise<ChildProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'lb4-proxyproto-haproxy-'));
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, ['global', '  maxconn 100', 'defaults', '  mode tcp', '  timeout connect 5s', '  timeout client 30s', '  timeout server 30s', sections, ''].join('\n'));
  const child = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c) => (stderr += c));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const exited = once(child, 'exit').then(() => {
    throw new Error(`haproxy exited: ${stderr}`);
  });
  exited.catch(() => {});
  const ready = until(() => bound(port), 10_000, 'haproxy to listen');
  await Promise.race([ready, exited]);
  return child;
}

t.test('HAProxy accepts what lb4 sends (v1 and v2), and passes the client on', { skip: skipHaproxy }, async (t) => {
  // client -> lb4 (send v1|v2) -> HAProxy (accept-proxy; send-proxy on) -> recording backend. The
  // backend's header is HAProxy's, made from what it took out of lb4's: the client's address.
  const backend = await recordingBackend();
  t.teardown(() => backend.close());
  for (const version of ['v1', 'v2'] as const) {
    const hp = await freePort();
    await startHaproxy(t, [`frontend in`, `  bind 127.0.0.1:${hp} accept-proxy`, `  default_backend out`, `backend out`, `  server b ${backend.address} send-proxy`].join('\n'), hp);
    const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [`127.0.0.1:${hp}`], workers: 1, proxyProtocol: version });
    t.teardown(() => lb.close({ drainTimeout: 0 }));
    const payload = randomBytes(200_000);
    const { reply, clientPort } = await exchange(lb.address().port, [payload]);
    t.equal(reply, 'ok', `${version}: the reply came back through both`);
    const got = await backend.next();
    t.match(got.header, { version: 1, family: 'TCP4', source: '127.0.0.1', sourcePort: clientPort, destinationPort: lb.address().port }, `${version}: HAProxy took the client from lb4's header`);
    t.equal(sha256(got.payload), sha256(payload), `${version}: payload intact`);
  }
});

t.test("HAProxy reads lb4's unique id TLV: the flow's id, as lb4's access log gives it", { skip: skipHaproxy }, async (t) => {
  // client -> lb4 (send v2) -> HAProxy (accept-proxy; its unique id is the one lb4 sent, passed
  // on in its own send-proxy-v2 header) -> recording backend.
  const backend = await recordingBackend();
  t.teardown(() => backend.close());
  const hp = await freePort();
  await startHaproxy(
    t,
    [`frontend in`, `  bind 127.0.0.1:${hp} accept-proxy`, '  unique-id-format %[fc_pp_unique_id]', `  default_backend out`, `backend out`, `  server b ${backend.address} send-proxy-v2 proxy-v2-options unique-id`].join('\n'),
    hp,
  );
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [`127.0.0.1:${hp}`], workers: 1, proxyProtocol: 'v2', accessLog: true });
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  const logged = once(lb, 'flow');
  const { reply } = await exchange(lb.address().port, [Buffer.from('hello')]);
  t.equal(reply, 'ok');
  const [record] = await within(logged, 5000, "the flow's access log record");
  const got = await backend.next();
  t.equal(got.header?.uniqueId, String(record.id), "HAProxy's unique id is lb4's flow id");
});

t.test('lb4 accepts what HAProxy sends (send-proxy and send-proxy-v2)', { skip: skipHaproxy }, async (t) => {
  // client -> HAProxy (send-proxy[-v2]) -> lb4 (--accept-proxy 127.0.0.1/32; send v1) -> backend.
  const backend = await recordingBackend();
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [backend.address], workers: 1, acceptProxy: ['127.0.0.1/32'], proxyProtocol: 'v1' });
  t.teardown(async () => {
    await lb.close({ drainTimeout: 0 });
    await backend.close();
  });
  // The third: v2 with a CRC-32C TLV (which lb4 checks) and a unique id TLV (which it skips).
  for (const option of ['send-proxy', 'send-proxy-v2', 'send-proxy-v2 proxy-v2-options crc32c,unique-id']) {
    const hp = await freePort();
    await startHaproxy(t, [`frontend in`, `  bind 127.0.0.1:${hp}`, `  default_backend out`, `backend out`, `  server lb 127.0.0.1:${lb.address().port} ${option}`].join('\n'), hp);
    const payload = randomBytes(150_000);
    const socket = await connect(hp);
    const clientPort = socket.localPort!;
    const reading = readAll(socket);
    socket.write(payload.subarray(0, 10));
    let flows = await lb.connections();
    await until(async () => (flows = await lb.connections()).some((f) => f.state === 'established'), 5000, `the ${option} flow`);
    t.equal(flows[0].client, `127.0.0.1:${clientPort}`, `${option}: lb4's flow has the client HAProxy saw, not HAProxy's own address`);
    socket.end(payload.subarray(10));
    t.equal((await reading).data.toString(), 'ok');
    const got = await backend.next();
    t.match(got.header, { version: 1, family: 'TCP4', source: '127.0.0.1', sourcePort: clientPort, destination: '127.0.0.1', destinationPort: hp }, `${option}: passed on to the backend`);
    t.equal(sha256(got.payload), sha256(payload), `${option}: payload intact`);
  }
  t.equal(counters(lb).proxy_headers_accepted, 3);
  t.equal(counters(lb).proxy_header_malformed, 0);
});
