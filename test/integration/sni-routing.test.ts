// TLS SNI routing (passthrough) with real TLS: node:tls servers with self-signed certificates
// made here by the openssl CLI, each pool's with its own subject, so the certificate a client
// sees says which pool answered. Clients are real ones: openssl s_client -servername, curl
// --resolve, and node:tls. Exact and wildcard names, case, the default pool, no SNI, bytes both
// ways after routing; malformed, oversized and slow hellos and unrouted names are refused, each
// counted exactly; and config errors name their field (exit 2 from the CLI).

import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import t from 'tap';
import { validateOptions } from '../../lib/config/validate.js';
import { startBalancer, type Balancer } from '../../lib/index.js';
import { buildDist, runCli } from '../helpers/cli.js';
import { echoBackend, readAll, sha256, until } from '../helpers/sockets.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'lb4-sni-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** A self-signed P-256 certificate whose subject CN is `identity`. */
function certificate(identity: string): { key: Buffer; cert: Buffer } {
  const key = join(dir, `${identity}.key`);
  const cert = join(dir, `${identity}.crt`);
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
    '-subj', `/CN=${identity}`, '-addext', 'subjectAltName=DNS:*.example.org,DNS:api.example.com'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
  return { key: readFileSync(key), cert: readFileSync(cert) };
}

interface TlsBackend {
  address: string;
  /** Sha-256 of every byte each connection sent, as the backend decrypted them. */
  received: string[];
  close(): Promise<void>;
}

/**
 * A TLS server for pool `identity`: an HTTP GET is answered with the identity as the body
 * (for curl); anything else is echoed back until the client ends.
 */
async function tlsBackend(identity: string): Promise<TlsBackend> {
  const received: string[] = [];
  const server = tls.createServer(certificate(identity), (socket) => {
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => {
      if (chunks.length === 0 && d.subarray(0, 4).toString() === 'GET ') {
        socket.end(`HTTP/1.1 200 OK\r\nContent-Length: ${identity.length}\r\nConnection: close\r\n\r\n${identity}`);
        return;
      }
      chunks.push(d);
      socket.write(d);
    });
    socket.on('end', () => {
      received.push(sha256(chunks));
      socket.end();
    });
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The subject CN the server behind `port` shows a client that names `servername` (openssl s_client). */
async function subjectSeen(port: number, servername: string | null): Promise<string> {
  const args = ['s_client', '-connect', `127.0.0.1:${port}`, ...(servername === null ? ['-noservername'] : ['-servername', servername])];
  const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) => {
    const child = execFile('openssl', args, { timeout: 20_000 }, (err, out) => (err && !out ? reject(err) : resolve({ stdout: out })));
    child.stdin!.end();
  });
  const m = /subject=.*CN\s*=\s*([\w-]+)/.exec(stdout);
  return m ? m[1] : `(none in: ${stdout.slice(0, 200)})`;
}

/** Connects with node:tls naming `servername`, and returns the certificate's CN. */
async function tlsConnect(port: number, servername: string): Promise<tls.TLSSocket> {
  const socket = tls.connect({ port, host: '127.0.0.1', servername, rejectUnauthorized: false });
  await once(socket, 'secureConnect');
  return socket;
}

/** Sends raw bytes, then waits for lb4 to close the connection (a reset is fine too). */
async function rawExchange(port: number, bytes: Buffer, end = true): Promise<Buffer> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  socket.write(bytes);
  if (end) socket.end();
  const { data } = await readAll(socket);
  return data;
}

const counters = (lb: Balancer, listener = 0) => lb.stats().listeners[listener].counters;
const sniCounts = (lb: Balancer, listener = 0) => {
  const c = counters(lb, listener);
  return { routed: c.sni_routed, defaulted: c.sni_defaulted, unrouted: c.sni_unrouted, malformed: c.sni_hello_malformed, oversized: c.sni_hello_oversized, timeouts: c.sni_hello_timeouts };
};

t.test('routes by server name to pools with real TLS clients and servers', async (t) => {
  const api = await tlsBackend('api-pool');
  const web = await tlsBackend('web-pool');
  const fallback = await tlsBackend('fallback-pool');
  const lb = await startBalancer({
    listeners: [
      {
        listen: '127.0.0.1:0',
        name: 'tls',
        backends: [`${api.address},pool=api`, `${web.address},pool=web`, { address: fallback.address, pool: 'fallback' }],
        sni: ['api.example.com=api', { names: ['*.example.org'], pool: 'web' }],
        defaultPool: 'fallback',
      },
      {
        listen: '127.0.0.1:0',
        name: 'strict',
        backends: [`${api.address},pool=api`],
        sni: [{ names: ['api.example.com'], pool: 'api' }],
      },
    ],
    workers: 1,
    sniTimeout: '300ms',
    admin: { listen: '127.0.0.1:0' },
  });
  t.teardown(async () => {
    await lb.close({ drainTimeout: 0 });
    await Promise.all([api.close(), web.close(), fallback.close()]);
  });
  const port = lb.addresses()[0].port;
  const strictPort = lb.addresses()[1].port;

  // openssl s_client: exact, wildcard (one label only), no match and no SNI go to the default.
  t.equal(await subjectSeen(port, 'api.example.com'), 'api-pool', 'an exact name reaches its pool');
  t.equal(await subjectSeen(port, 'www.example.org'), 'web-pool', 'a wildcard matches one label');
  t.equal(await subjectSeen(port, 'a.b.example.org'), 'fallback-pool', 'a wildcard does not match two labels');
  t.equal(await subjectSeen(port, 'example.org'), 'fallback-pool', 'nor the bare domain');
  t.equal(await subjectSeen(port, 'unknown.test'), 'fallback-pool', 'an unrouted name goes to the default pool');
  t.equal(await subjectSeen(port, null), 'fallback-pool', 'no SNI goes to the default pool');

  // curl with --resolve: the HTTP answer says which pool served it.
  const curl = async (name: string) =>
    (await run('curl', ['-sk', '--max-time', '20', '--resolve', `${name}:${port}:127.0.0.1`, `https://${name}:${port}/`])).stdout;
  t.equal(await curl('api.example.com'), 'api-pool', 'curl reaches the api pool');
  t.equal(await curl('shop.example.org'), 'web-pool', 'curl reaches the web pool through the wildcard');

  // node:tls: case does not matter; bytes both ways intact after routing.
  const upper = await tlsConnect(port, 'API.Example.COM');
  t.equal(upper.getPeerCertificate().subject.CN, 'api-pool', 'names compare without case');
  upper.end();
  await once(upper, 'close');

  const payload = randomBytes(1 << 20);
  const client = await tlsConnect(port, 'bulk.example.org');
  t.equal(client.getPeerCertificate().subject.CN, 'web-pool');
  const back: Buffer[] = [];
  client.on('data', (d: Buffer) => back.push(d));
  client.end(payload);
  await once(client, 'close');
  t.equal(sha256(back), sha256(payload), 'the client gets every byte back (backend to client)');
  await until(() => web.received.length === 3, 10_000, 'the web backend to see the end of the stream');
  t.equal(web.received.at(-1), sha256(payload), 'the backend got every byte (client to backend)');

  await until(() => counters(lb).flows_active === 0, 10_000, 'the routed flows to close');
  // Matched: api.example.com and www.example.org (s_client), two by curl, the upper-case name
  // and the bulk one; default: a.b.example.org, example.org, unknown.test and no SNI.
  t.same(sniCounts(lb), { routed: 6, defaulted: 4, unrouted: 0, malformed: 0, oversized: 0, timeouts: 0 }, 'each routed flow counted once by how it was routed');
  t.equal(counters(lb).no_backend, 0);
  const backends = lb.backends({ listener: 'tls' });
  t.same(backends.map((b) => b.pool).sort(), ['api', 'fallback', 'web'], 'each backend shows its pool');

  // Malformed: random bytes, and a plaintext HTTP request; oversized: a handshake longer than
  // 16 KiB announced; slow: half a record header, then nothing until the SNI timeout.
  const before = lb.stats().backends.filter((b) => b.listener === 'tls').map((b) => b.counters.flows_total);
  t.same(await rawExchange(port, randomBytes(600)), Buffer.alloc(0), 'random bytes get no answer');
  t.same(await rawExchange(port, Buffer.from('GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n')), Buffer.alloc(0), 'plain HTTP gets no answer');
  const oversized = Buffer.from([22, 3, 1, 0x40, 0x00, 1, 0x00, 0x4e, 0x20, 3, 3]);
  t.same(await rawExchange(port, Buffer.concat([oversized, randomBytes(100)])), Buffer.alloc(0), 'an oversized hello gets no answer');
  t.same(await rawExchange(port, Buffer.from([22, 3]), false), Buffer.alloc(0), 'a slow hello is closed at the timeout');
  // A hello cut short by the client's FIN is malformed too.
  const hello = await captureHello('api.example.com');
  t.same(await rawExchange(port, hello.subarray(0, 40)), Buffer.alloc(0), 'a truncated hello gets no answer');

  await until(() => counters(lb).flows_active === 0, 10_000, 'the refused flows to close');
  t.same(sniCounts(lb), { routed: 6, defaulted: 4, unrouted: 0, malformed: 3, oversized: 1, timeouts: 1 }, 'each refusal counted by its reason');
  t.same(lb.stats().backends.filter((b) => b.listener === 'tls').map((b) => b.counters.flows_total), before, 'no refused client reached a backend');

  // No default pool: an unrouted name and no SNI are closed; a routed one is served.
  t.equal(await subjectSeen(strictPort, 'api.example.com'), 'api-pool');
  t.notOk(/^(api|web|fallback)-pool$/.test(await subjectSeen(strictPort, 'other.example.org')), 'an unrouted name is closed');
  t.notOk(/^(api|web|fallback)-pool$/.test(await subjectSeen(strictPort, null)), 'no SNI is closed');
  await until(() => counters(lb, 1).flows_active === 0, 10_000, 'the strict listener flows to close');
  t.same(sniCounts(lb, 1), { routed: 1, defaulted: 0, unrouted: 2, malformed: 0, oversized: 0, timeouts: 0 });

  // /metrics shows the families.
  const metrics = await (await fetch(`${lb.adminUrl}/metrics`)).text();
  t.match(metrics, /^lb4_listener_sni_flows_total\{listener="tls",route="matched"\} 6$/m);
  t.match(metrics, /^lb4_listener_sni_hellos_rejected_total\{listener="tls",reason="malformed"\} 3$/m);
  t.match(metrics, new RegExp(`^lb4_backend_pool\\{listener="tls",backend="${api.address}",pool="api"\\} 1$`, 'm'), 'each backend names its pool');
});

t.test('a reload changes routes and moves a backend to another pool for the clients after it', async (t) => {
  const one = await tlsBackend('one-pool');
  const two = await tlsBackend('two-pool');
  const listener = (sni: string[], pools: [string, string], defaultPool?: string) => ({
    listen: '127.0.0.1:0',
    name: 'tls',
    backends: [`${one.address},id=one,pool=${pools[0]}`, `${two.address},id=two,pool=${pools[1]}`],
    sni,
    ...(defaultPool ? { defaultPool } : {}),
  });
  const lb = await startBalancer({ listeners: [listener(['a.test=first', 'b.test=second'], ['first', 'second'])], workers: 1 });
  t.teardown(async () => {
    await lb.close({ drainTimeout: 0 });
    await Promise.all([one.close(), two.close()]);
  });
  const port = lb.address().port;
  t.equal(await subjectSeen(port, 'a.test'), 'one-pool');
  t.equal(await subjectSeen(port, 'b.test'), 'two-pool');
  // Routes swap, and a default pool appears; then the backends swap pools instead.
  await lb.reload({ listeners: [{ ...listener(['a.test=second', 'b.test=first'], ['first', 'second'], 'first'), listen: `127.0.0.1:${port}` }] });
  t.equal(await subjectSeen(port, 'a.test'), 'two-pool', 'a.test follows its new route');
  t.equal(await subjectSeen(port, 'b.test'), 'one-pool');
  t.equal(await subjectSeen(port, 'c.test'), 'one-pool', 'the new default pool');
  await lb.reload({ listeners: [{ ...listener(['a.test=second', 'b.test=first'], ['second', 'first'], 'first'), listen: `127.0.0.1:${port}` }] });
  t.equal(await subjectSeen(port, 'a.test'), 'one-pool', 'backend one now serves pool second');
  t.same(lb.backends().map((b) => `${b.id}:${b.pool}`).sort(), ['one:second', 'two:first']);
  await until(() => counters(lb).flows_active === 0, 10_000, 'the flows to close');
  t.same(sniCounts(lb), { routed: 5, defaulted: 1, unrouted: 0, malformed: 0, oversized: 0, timeouts: 0 });
  t.equal(counters(lb).no_backend, 0, 'no client met a pool without backends');
});

t.test('with traffic policy: access lists judge before the hello; a queued flow keeps its pool, and a full pool does not hold up another', async (t) => {
  const one = await tlsBackend('one-pool');
  const two = await tlsBackend('two-pool');
  const lb = await startBalancer({
    listeners: [
      {
        listen: '127.0.0.1:0',
        name: 'tls',
        // One flow at a time per pool: a second client of a pool waits in the listener's queue.
        backends: [{ address: one.address, pool: 'first', maxConnections: 1 }, { address: two.address, pool: 'second', maxConnections: 1 }],
        sni: ['a.test=first', 'b.test=second'],
        queueSize: 4,
        queueTimeout: '1m',
        deny: ['127.0.0.2'],
      },
    ],
    workers: 1,
  });
  const open: tls.TLSSocket[] = [];
  t.teardown(async () => {
    for (const s of open) s.destroy();
    await lb.close({ drainTimeout: 0 });
    await Promise.all([one.close(), two.close()]);
  });
  const port = lb.address().port;
  const connect = (servername: string) => {
    const socket = tls.connect({ port, host: '127.0.0.1', servername, rejectUnauthorized: false });
    socket.on('error', () => {});
    open.push(socket);
    const handshake = new Promise<string>((resolve) => socket.once('secureConnect', () => resolve(String(socket.getPeerCertificate().subject.CN))));
    // A client left waiting fails the test here rather than at tap's timeout.
    const late = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${servername}: no TLS handshake within 10s`)), 10_000).unref());
    return { socket, secured: Promise.race([handshake, late]) };
  };

  // A denied client is reset at accept: its hello is never read, so no SNI counter moves.
  const hello = await captureHello('a.test');
  const denied = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
  denied.on('error', () => {});  // the reset
  denied.write(hello);
  await new Promise((resolve) => denied.on('close', resolve));
  t.equal(counters(lb).denied, 1, 'the denied client is counted');
  t.same(sniCounts(lb), { routed: 0, defaulted: 0, unrouted: 0, malformed: 0, oversized: 0, timeouts: 0 }, 'and never reached the hello reader');

  const a = connect('a.test');
  t.equal(await a.secured, 'one-pool', 'pool first takes its one flow');
  const c = connect('b.test');
  t.equal(await c.secured, 'two-pool', 'pool second takes its one flow');
  const b = connect('a.test');
  await until(() => counters(lb).flows_queued === 1, 10_000, 'the second a.test client to be queued');
  const d = connect('b.test');
  await until(() => counters(lb).flows_queued === 2, 10_000, 'the second b.test client to be queued behind it');
  t.same((await lb.connections()).map((x) => x.state).sort(), ['established', 'established', 'queued', 'queued']);

  // Room in pool second: the b.test client behind the a.test one (whose pool is still full) goes.
  c.socket.destroy();
  t.equal(await d.secured, 'two-pool', 'the queued b.test client is served by its own pool, past the head of the queue');
  t.equal(counters(lb).flows_queued, 1, 'the a.test client still waits: its pool is full');
  // Room in pool first: the a.test client goes to its pool's backend, not any with room.
  a.socket.destroy();
  t.equal(await b.secured, 'one-pool', 'the queued a.test client kept its pool');
  t.equal(counters(lb).flows_queued, 0);
  b.socket.destroy();
  d.socket.destroy();
  await until(() => counters(lb).flows_active === 0, 10_000, 'the flows to close');
  t.same(sniCounts(lb), { routed: 4, defaulted: 0, unrouted: 0, malformed: 0, oversized: 0, timeouts: 0 }, 'each client routed once, queued or not');
  t.same({ queueFull: counters(lb).queue_full, queueTimeout: counters(lb).queue_timeout, backendLimit: counters(lb).backend_limit, noBackend: counters(lb).no_backend },
    { queueFull: 0, queueTimeout: 0, backendLimit: 0, noBackend: 0 });
});

/** A real ClientHello, as openssl s_client sends it, taken by a plain TCP server. */
async function captureHello(servername: string): Promise<Buffer> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const got = new Promise<Buffer>((resolve) => {
    server.once('connection', (socket) => {
      socket.once('data', (d: Buffer) => {
        resolve(d);
        socket.destroy();
      });
    });
  });
  const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', servername], { timeout: 20_000 }, () => {});
  child.stdin!.end();
  const hello = await got;
  server.close();
  return hello;
}

/** `hello` (one TLS record) cut into records of one handshake byte each. */
function oneByteRecords(hello: Buffer): Buffer {
  const body = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const records: Buffer[] = [];
  for (const byte of body) records.push(Buffer.from([hello[0], hello[1], hello[2], 0, 1, byte]));
  return Buffer.concat(records);
}

/** Writes `bytes` one per TCP segment (no Nagle; each write waits for the last to leave). */
async function writeBytewise(socket: net.Socket, bytes: Buffer): Promise<void> {
  socket.setNoDelay(true);
  for (let i = 0; i < bytes.length; i++) {
    if (!socket.write(bytes.subarray(i, i + 1))) await once(socket, 'drain');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

t.test('a hello sent a byte per segment, or in one-byte records, is routed, and the byte after it is not held back', async (t) => {
  // lb4 waits for the bytes a hello still needs (SO_RCVLOWAT) instead of looking once per byte;
  // once routed, a single byte must go through at once (the wait is undone), or this stalls.
  const echo = await echoBackend();
  const lb = await startBalancer({
    listeners: [{ listen: '127.0.0.1:0', backends: [`${echo.address},pool=api`], sni: ['api.example.com=api'] }],
    workers: 1,
    sniTimeout: '20s',
  });
  t.teardown(async () => {
    await lb.close({ drainTimeout: 0 });
    await echo.close();
  });
  const port = lb.addresses()[0].port;
  const hello = await captureHello('api.example.com');
  for (const [what, bytes] of [['a byte per segment', hello], ['one-byte records, a byte per segment', oneByteRecords(hello)]] as const) {
    const socket = net.connect({ port, host: '127.0.0.1' });
    await once(socket, 'connect');
    const received: Buffer[] = [];
    let length = 0;
    socket.on('data', (d: Buffer) => {
      received.push(d);
      length += d.length;
    });
    await writeBytewise(socket, bytes);
    await until(() => length >= bytes.length, 20_000, `the echo of the hello (${what})`);
    socket.write('Z');
    await until(() => length >= bytes.length + 1, 20_000, `the echo of the byte after the hello (${what})`);
    t.equal(sha256(received), sha256([bytes, Buffer.from('Z')]), `${what}: every byte through, in order`);
    socket.destroy();
  }
  // The hello, a byte after it and the client's FIN in one write: the FIN, read with the hello,
  // reaches the backend after both (the echo backend ends when it sees it).
  const halfClosed = net.connect({ port, host: '127.0.0.1' });
  halfClosed.end(Buffer.concat([hello, Buffer.from('Z')]));
  const { data } = await readAll(halfClosed);
  t.equal(sha256(data), sha256([hello, Buffer.from('Z')]), 'a hello sent with its FIN: every byte back, then the end of the stream');
  await until(() => counters(lb).flows_active === 0, 10_000, 'the flows to close');
  t.same(sniCounts(lb), { routed: 3, defaulted: 0, unrouted: 0, malformed: 0, oversized: 0, timeouts: 0 }, 'all routed by name');
});

t.test('config errors name the field', async (t) => {
  const base = { listen: '127.0.0.1:0', backends: ['127.0.0.1:9,pool=api'] };
  const cases: Array<[object, string, RegExp]> = [
    [{ ...base, sni: ['api.example.com=nope'] }, 'sni[0].pool', /unknown pool "nope"/],
    [{ ...base, sni: ['a..b=api'] }, 'sni[0].names[0]', /host name/],
    [{ ...base, sni: ['*.=api'] }, 'sni[0].names[0]', /host name/],
    [{ ...base, sni: ['no-pool-here'] }, 'sni[0]', /NAME=POOL/],
    [{ ...base, sni: ['a.test=api', 'A.test.=api'] }, 'sni[1].names[0]', /routed twice/],
    [{ ...base, sni: ['a.test=api'], defaultPool: 'nope' }, 'defaultPool', /unknown pool/],
    [{ ...base, defaultPool: 'api' }, 'defaultPool', /needs sni routes/],
    [base, 'sni', /no sni routes/],
    [{ listen: '127.0.0.1:0', backends: ['127.0.0.1:9,pool=api', '127.0.0.1:10'], sni: ['a.test=api'] }, 'backends', /has no pool/],
    [{ listen: '127.0.0.1:0/udp', backends: ['127.0.0.1:9,pool=api'], sni: ['a.test=api'] }, 'sni', /TCP listeners/],
    // A pool nothing routes to (a typo in pool=) would be checked and shown up, and never used.
    [{ listen: '127.0.0.1:0', backends: ['127.0.0.1:9,pool=api', '127.0.0.1:10,pool=apj'], sni: ['a.test=api'] }, 'backends[1].pool', /pool "apj", which no sni route or defaultPool/],
    [{ listeners: [{ listen: '127.0.0.1:0', backends: ['127.0.0.1:9,pool=a b'], sni: ['a.test=a'] }] }, 'listeners[0].backends[0].pool', /pool name/],
  ];
  for (const [options, field, message] of cases) {
    await t.rejects(validateOptions(options), { code: 'LB4_INVALID_OPTION', field, message }, `${field}: ${message}`);
  }
  const ok = await validateOptions({ listen: '127.0.0.1:0', backends: ['127.0.0.1:9,pool=api', '127.0.0.1:10,pool=web'], sni: ['API.example.com.=api', '*.Example.org=web'], defaultPool: 'web' });
  t.same(ok.listeners[0].sni, [{ names: ['api.example.com'], pool: 'api' }, { names: ['*.example.org'], pool: 'web' }]);
  t.same(ok.listeners[0].pools, ['api', 'web']);
  t.equal(ok.sniTimeoutMs, 5000);

  await buildDist();
  const { exit, stderr } = await runCli(['start', '--listen', '127.0.0.1:0', '--backend', '127.0.0.1:9,pool=api', '--sni', 'api.example.com=web']);
  t.equal(exit.code, 2, 'a config error exits 2');
  t.equal(stderr.trim().split('\n').length, 1, 'with one line');
  t.match(stderr, /^lb4: --sni pool: unknown pool "web"/);
  const badName = await runCli(['start', '--listen', '127.0.0.1:0', '--backend', '127.0.0.1:9,pool=api', '--sni', 'bad..name=api']);
  t.equal(badName.exit.code, 2);
  t.equal(badName.stderr, 'lb4: --sni: must be a host name or *.domain (letters, digits, - and _ in dot-separated labels), got "bad..name"\n');
});
