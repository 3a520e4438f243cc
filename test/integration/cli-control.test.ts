// The control plane through the command line, run the way an operator runs it: `lb4 start
// --config` with a YAML file and SIGHUP reloads, `lb4 check-config`, flags over a file, health
// checks seen through `lb4 backends`, the admin client commands (with and without a token) and
// the access log. Every lb4 is a child process (test/helpers/cli.ts); every backend and client
// is a real socket on 127.0.0.1.

import { createHash, randomBytes, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, get as httpGet, type Server as HttpServer } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { buildDist, Cli, killChildren, onlyLine, refusedSoon, runCli, startCli, waitMs, type LogLine } from '../helpers/cli.js';
import { integrityBackend, integrityExchange as exchangeWithin, nameBackend, startBackend, whoAnswers, within, type TestBackend } from '../helpers/sockets.js';

const dir = mkdtempSync(join(tmpdir(), 'lb4-cli-control-'));
// Client sockets a test leaves open when an assertion fails half-way.
const clients = new Set<net.Socket>();

t.before(buildDist);
t.teardown(() => {
  killChildren();
  for (const socket of clients) socket.destroy();
  rmSync(dir, { recursive: true, force: true });
});

/** A backend that the test's teardown closes. */
async function tracked(t: Test, started: Promise<TestBackend>): Promise<TestBackend> {
  const backend = await started;
  t.teardown(() => backend.close());
  return backend;
}

function writeConfig(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** The admin API's URL, from the log line that announces it. */
async function adminUrl(cli: Cli): Promise<string> {
  return (await cli.waitForLog('admin API listening')).url as string;
}

/** GET on the admin API; rejects on any status but 200. */
function adminGet<T>(url: string, path: string): Promise<T> {
  const request = new Promise<T>((resolve, reject) => {
    httpGet(`${url}${path}`, { agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => (response.statusCode === 200 ? resolve(JSON.parse(body) as T) : reject(new Error(`GET ${path}: ${response.statusCode} ${body}`))));
      response.on('error', reject);
    }).on('error', reject);
  });
  return within(request, waitMs, `GET ${url}${path}`);
}

interface BackendJson {
  id: string;
  listener: string;
  weight: number;
  state: string;
  health: string;
  takesNewFlows: boolean;
}

/** `lb4 backends --json`, parsed. */
async function backendsJson(t: Test, url: string): Promise<BackendJson[]> {
  const { exit, stdout, stderr } = await runCli(['backends', '--admin', url, '--json']);
  t.equal(exit.code, 0, `backends --json exits 0 ${stderr}`);
  return JSON.parse(stdout) as BackendJson[];
}

/** The rows of a table as `lb4 backends` prints it (columns two or more spaces apart), by header. */
function parseTable(text: string): Record<string, string>[] {
  const [header, ...rows] = text.trimEnd().split('\n');
  const names = header.trim().split(/\s{2,}/);
  return rows.map((row) => {
    const cells = row.trim().split(/\s{2,}/);
    return Object.fromEntries(names.map((name, i) => [name, cells[i] ?? '']));
  });
}

/** `lb4 backends` (the table), as rows by backend id. */
async function backendsTable(t: Test, url: string): Promise<Map<string, Record<string, string>>> {
  const { exit, stdout, stderr } = await runCli(['backends', '--admin', url]);
  t.equal(exit.code, 0, `backends exits 0 ${stderr}`);
  return new Map(parseTable(stdout).map((row) => [row.BACKEND, row]));
}

/**
 * A flow to an integrity backend whose upload goes in parts, so it can stay open across a reload
 * or a stop. `finish` ends it and checks both directions' SHA-256 the way integrityExchange does.
 */
class LongFlow {
  /** Resolves with the first bytes back: the flow has reached its backend. */
  readonly established: Promise<void>;
  readonly #socket: net.Socket;
  readonly #sent: Hash = createHash('sha256');
  readonly #received: Buffer[] = [];
  readonly #ended: Promise<unknown>;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    this.established = within(once(socket, 'data').then(() => {}), waitMs, 'the first bytes of a long flow');
    socket.on('data', (chunk: Buffer) => this.#received.push(chunk));
    this.#ended = once(socket, 'end');
    // A failure shows as a short or corrupt stream in finish().
    socket.on('error', () => {});
  }

  static async open(port: number, downBytes: number): Promise<LongFlow> {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    clients.add(socket);
    const flow = new LongFlow(socket);
    await within(once(socket, 'connect'), waitMs, `a connection to port ${port}`);
    const header = Buffer.alloc(8);
    header.writeBigUInt64BE(BigInt(downBytes));
    socket.write(header);
    return flow;
  }

  async send(bytes: number): Promise<void> {
    const chunk = randomBytes(bytes);
    this.#sent.update(chunk);
    if (!this.#socket.write(chunk)) await within(once(this.#socket, 'drain'), waitMs, 'a long flow to drain');
  }

  /** Ends the upload, waits for the backend's end, and returns what went wrong (null: nothing). */
  async finish(): Promise<string | null> {
    this.#socket.end();
    await within(this.#ended, waitMs, 'the end of a long flow');
    this.#socket.destroy();
    const all = Buffer.concat(this.#received);
    if (all.length < 64) return `stream ended early: ${all.length} bytes`;
    const got = createHash('sha256').update(all.subarray(0, all.length - 64)).digest('hex');
    const backendSent = all.subarray(all.length - 64, all.length - 32).toString('hex');
    const backendReceived = all.subarray(all.length - 32).toString('hex');
    if (got !== backendSent) return `download corrupted: got ${got}, backend sent ${backendSent}`;
    const put = this.#sent.digest('hex');
    if (put !== backendReceived) return `upload corrupted: sent ${put}, backend got ${backendReceived}`;
    return null;
  }
}

const mib = 1 << 20;

/** integrityExchange, with this file's bound on each wait. */
function integrityExchange(port: number, upBytes: number, downBytes: number): Promise<void> {
  return exchangeWithin(port, upBytes, downBytes, waitMs);
}

t.test('start --config: two listeners, SIGHUP reloads, a bad file is rejected', async (t) => {
  const web1 = await tracked(t, integrityBackend());
  const web2 = await tracked(t, integrityBackend());
  const db1 = await tracked(t, integrityBackend());
  const api1 = await tracked(t, integrityBackend());
  const file = writeConfig(
    'reload.yaml',
    [
      '# two listeners, each with its own backends',
      'workers: 2',
      '# bounds the flows left open across the reload, which end long before it',
      'drainTimeout: 30s',
      'admin: 127.0.0.1:0',
      'listeners:',
      '  - name: web',
      '    listen: 127.0.0.1:0',
      '    backends:',
      `      - ${web1.address}`,
      '  - name: db',
      '    listen: 127.0.0.1:0',
      `    backends: [{ address: "${db1.address}", weight: 2 }]`,
      '',
    ].join('\n'),
  );
  const { cli, portOf } = await startCli(['--config', file]);
  const url = await adminUrl(cli);
  t.same(Object.keys(portOf), ['web', 'db'], 'both listeners are logged by name');

  await integrityExchange(portOf.web, mib, mib);
  await integrityExchange(portOf.db, mib, mib);
  t.pass('1 MiB each way through web and through db, SHA-256 intact');
  t.same([web1.accepted, db1.accepted], [1, 1], 'each listener used its own backend');

  // Flows opened before the reload, one on the listener that stays and one on the one that goes.
  const webFlow = await LongFlow.open(portOf.web, 256 * 1024);
  const dbFlow = await LongFlow.open(portOf.db, 256 * 1024);
  await webFlow.send(128 * 1024);
  await dbFlow.send(128 * 1024);
  await Promise.all([webFlow.established, dbFlow.established]);

  writeConfig(
    'reload.yaml',
    [
      'workers: 2',
      'drainTimeout: 30s',
      'admin: 127.0.0.1:0',
      'listeners:',
      '  - name: web',
      '    listen: 127.0.0.1:0',
      `    backends: [${web1.address}, ${web2.address}]`,
      '  - name: api',
      '    listen: 127.0.0.1:0',
      `    backends: [${api1.address}]`,
      '',
    ].join('\n'),
  );
  let mark = cli.mark();
  cli.signal('SIGHUP');
  const applied = await cli.waitForLog('reload applied', { after: mark });
  t.equal(applied.component, 'reload');
  t.same(applied.listenersAdded, ['api']);
  t.same(applied.listenersRemoved, ['db']);
  t.same(applied.backendsAdded, [`web/${web2.address}`]);
  t.same(applied.needsRestart, []);

  const listeners = await adminGet<{ name: string; port: number }[]>(url, '/listeners');
  t.same(listeners.map((l) => l.name), ['web', 'api'], 'the admin API lists the new listeners');
  const apiPort = listeners.find((l) => l.name === 'api')!.port;
  t.equal(listeners.find((l) => l.name === 'web')!.port, portOf.web, 'web keeps its port');

  t.ok(await refusedSoon(portOf.db), 'the removed listener refuses connections');
  await integrityExchange(apiPort, mib, mib);
  t.equal(api1.accepted, 1, 'the new listener serves, through its own backend');
  for (let i = 0; i < 20 && web2.accepted === 0; i++) await integrityExchange(portOf.web, 1000, 1000);
  t.equal(web2.accepted, 1, 'the backend added to web takes new flows');

  await webFlow.send(128 * 1024);
  await dbFlow.send(128 * 1024);
  t.equal(await webFlow.finish(), null, 'a flow open across the reload on a kept listener completes intact');
  t.equal(await dbFlow.finish(), null, 'a flow open across the reload on a removed listener completes intact');

  writeConfig(
    'reload.yaml',
    ['listeners:', '  - name: web', '    listen: 127.0.0.1:0', `    backends: [${web1.address}, { address: "${web2.address}", weight: lots }]`, ''].join('\n'),
  );
  mark = cli.mark();
  cli.signal('SIGHUP');
  const rejected = await cli.waitForLog('reload rejected: the running config keeps serving', { after: mark });
  t.equal(rejected.component, 'reload');
  t.match(rejected.err, /listeners\[0\]\.backends\[1\]\.weight/, `the reason names the field: ${rejected.err}`);
  t.match(rejected.err, /"lots"/, 'and the bad value');
  await integrityExchange(portOf.web, mib, mib);
  await integrityExchange(apiPort, mib, mib);
  t.pass('traffic still flows through web and api');
  t.same((await adminGet<{ name: string }[]>(url, '/listeners')).map((l) => l.name), ['web', 'api'], 'the running config is unchanged');

  // A SIGHUP while lb4 drains has nothing to reload; it must not end the drain.
  const lastFlow = await LongFlow.open(portOf.web, 1000);
  await lastFlow.established;
  cli.signal('SIGTERM');
  await cli.waitForLog('lb4 stopping: no new flows, draining open ones');
  cli.signal('SIGHUP');
  await cli.waitForLog('SIGHUP: lb4 is stopping, so there is nothing to reload');
  await lastFlow.send(1000);
  t.equal(await lastFlow.finish(), null, 'the draining flow completes intact');
  t.same(await cli.waitForExit(), { code: 0, signal: null });
  t.equal((await cli.waitForLog('lb4 stopped')).closedByDrainTimeout, 0);
});

t.test('SIGHUP without --config: nothing to reload, lb4 keeps running', async (t) => {
  const backend = await tracked(t, integrityBackend());
  const { cli, ports } = await startCli(['--listen', '127.0.0.1:0', '--backend', backend.address]);
  cli.signal('SIGHUP');
  const line = await cli.waitForLog('SIGHUP: lb4 was started without --config, so there is nothing to reload');
  t.equal(line.level, 40, 'a warning');
  await integrityExchange(ports[0], mib, mib);
  t.ok(cli.running, 'still running, still forwarding');
  cli.signal('SIGTERM');
  t.same(await cli.waitForExit(), { code: 0, signal: null });
});

t.test('check-config: ok, or exit 2 with one line naming the file and the field', async (t) => {
  const good = writeConfig(
    'good.yaml',
    [
      'algorithm: leastconn',
      'health: { type: tcp, interval: 1s }',
      'admin: 127.0.0.1:0',
      'listeners:',
      '  - name: web',
      '    listen: 127.0.0.1:0',
      '    backends: [127.0.0.1:9001, { address: 127.0.0.1:9002, weight: 3 }]',
      '  - name: db',
      '    listen: 127.0.0.1:0',
      '    backends: [127.0.0.1:9003]',
      '',
    ].join('\n'),
  );
  const listener = (backends: string) => ['listeners:', '  - name: web', '    listen: 127.0.0.1:0', backends, ''].join('\n');
  const bad: Array<{ name: string; file: string; names: string[] }> = [
    { name: 'YAML syntax error', file: writeConfig('syntax.yaml', listener('    backends: [127.0.0.1:9001\n')), names: ['not valid YAML', 'line'] },
    { name: 'unknown field', file: writeConfig('unknown.yaml', listener('    backend: [127.0.0.1:9001]')), names: ['listeners[0].backend', 'unknown option'] },
    { name: 'bad weight', file: writeConfig('weight.yaml', listener('    backends: [{ address: 127.0.0.1:9001, weight: -1 }]')), names: ['listeners[0].backends[0].weight', '-1'] },
    { name: 'missing backends', file: writeConfig('empty.yaml', listener('    algorithm: roundrobin')), names: ['listeners[0].backends', 'at least one backend'] },
    { name: 'no such file', file: join(dir, 'nothing-here.yaml'), names: ['no such file'] },
    { name: 'unresolvable host', file: writeConfig('host.yaml', listener('    backends: [nosuchhost.invalid:80]')), names: ['listeners[0].backends[0].address', 'nosuchhost.invalid'] },
    { name: 'unknown protocol', file: writeConfig('proto.yaml', ['listen: 127.0.0.1:53/sctp', 'backends: [127.0.0.1:9001]', ''].join('\n')), names: ['listen', '/sctp'] },
    { name: 'two protocols', file: writeConfig('proto2.yaml', ['listeners:', '  - listen: 127.0.0.1:53/udp', '    protocol: tcp', '    backends: [127.0.0.1:9001]', ''].join('\n')), names: ['listeners[0].protocol', 'udp'] },
    { name: 'bad UDP setting', file: writeConfig('udpopt.yaml', ['listen: 127.0.0.1:53/udp', 'udpMaxDatagram: 100', 'backends: [127.0.0.1:9001]', ''].join('\n')), names: ['udpMaxDatagram', '512'] },
  ];
  // A UDP listener beside a TCP one: the UDP settings are listed too.
  const udp = writeConfig('udp.yaml', ['listen: [":5353/udp", "127.0.0.1:0"]', 'udpResponses: 1', 'backends: [127.0.0.1:9001]', ''].join('\n'));
  // The runs are independent: start them together, check them in order.
  const runs = [good, ...bad.map((c) => c.file)].map((file) => runCli(['check-config', file]));
  const udpRun = runCli(['check-config', udp]);
  // A listener with PROXY protocol settings shows them; a bad trusted network names its field.
  const proxy = writeConfig('proxy.yaml', ['listen: { listen: "127.0.0.1:0", name: web, proxyProtocol: v2 }', 'acceptProxy: [10.0.0.0/8, "::1"]', 'backends: [127.0.0.1:9001]', ''].join('\n'));
  const proxyRun = runCli(['check-config', proxy]);
  const badProxy = writeConfig('badproxy.yaml', ['listen: 127.0.0.1:0', 'acceptProxy: [10.0.0.0/40]', 'backends: [127.0.0.1:9001]', ''].join('\n'));
  const badProxyRun = runCli(['check-config', badProxy]);
  // Access lists and limits show where set; a bad network or a negative limit names its field.
  const policy = writeConfig(
    'policy.yaml',
    ['deny: [203.0.113.0/24]', 'listeners:', '  - { listen: "127.0.0.1:0", name: web, allow: [127.0.0.0/8, "::1"], maxConnections: 10, queueSize: 2, queueTimeout: 1s,', '      backends: [{ address: 127.0.0.1:9001, maxConnections: 4 }] }', ''].join('\n'),
  );
  const policyRun = runCli(['check-config', policy]);
  const badPolicy = writeConfig('badpolicy.yaml', ['listeners:', '  - { listen: "127.0.0.1:0", maxConnectionsPerSource: -1, backends: [127.0.0.1:9001] }', ''].join('\n'));
  const badPolicyRun = runCli(['check-config', badPolicy]);

  const ok = await runs[0];
  t.equal(ok.exit.code, 0, `ok file: exit 0 ${ok.stderr}`);
  t.equal(ok.stderr, '');
  t.match(ok.stdout, `${good}: ok: 2 listener(s), 3 backend(s)`);
  t.match(ok.stdout, /web on 127\.0\.0\.1:0: leastconn, 127\.0\.0\.1:9001, 127\.0\.0\.1:9002 \(weight 3\); tcp checks every 1000ms/);
  t.match(ok.stdout, /db on 127\.0\.0\.1:0: leastconn, 127\.0\.0\.1:9003/);
  t.match(ok.stdout, /admin API on 127\.0\.0\.1:0/);
  // The settings lines come from the option table: every setting, by its config file name.
  t.match(ok.stdout, /settings a reload applies: forward proxy, snat none, dnsInterval 30s, dnsMinInterval 1s, dnsTimeout 2s, drainTimeout 10s, slowStart 0ms, passiveFailures 3, passiveRetry 5s\n/);
  t.match(ok.stdout, /settings a restart applies: hashKey address, proxyHeaderTimeout 5s, sniTimeout 5s, workers \d+, connectTimeout 5s, idleTimeout 5m, retries 2, pipeSize 0\n/);
  const proxyOk = await proxyRun;
  t.equal(proxyOk.exit.code, 0, `PROXY file: exit 0 ${proxyOk.stderr}`);
  t.match(proxyOk.stdout, /web on 127\.0\.0\.1:0: roundrobin, 127\.0\.0\.1:9001; no health checks; sends PROXY v2; takes PROXY headers from 10\.0\.0\.0\/8, ::1\/128\n/);
  const proxyBad = await badProxyRun;
  t.equal(proxyBad.exit.code, 2);
  t.match(proxyBad.stderr, /acceptProxy\[0\].*10\.0\.0\.0\/40/);
  const policyOk = await policyRun;
  t.equal(policyOk.exit.code, 0, `policy file: exit 0 ${policyOk.stderr}`);
  t.match(policyOk.stdout, /web on 127\.0\.0\.1:0: roundrobin, 127\.0\.0\.1:9001 \(maxconn 4\); no health checks; allows 127\.0\.0\.0\/8, ::1\/128; denies 203\.0\.113\.0\/24; at most 10 flows; queues 2 flows for 1s\n/);
  const policyBad = await badPolicyRun;
  t.equal(policyBad.exit.code, 2);
  t.match(policyBad.stderr, /listeners\[0\]\.maxConnectionsPerSource.*between 0 and/);
  t.equal(policyBad.stderr.trim().split('\n').length, 1, 'one line');
  const udpOk = await udpRun;
  t.equal(udpOk.exit.code, 0, `UDP file: exit 0 ${udpOk.stderr}`);
  t.match(udpOk.stdout, `${udp}: ok: 2 listener(s) (1 UDP), 2 backend(s)`);
  t.match(udpOk.stdout, /:5353\/udp on :5353\/udp: roundrobin, 127\.0\.0\.1:9001/);
  t.match(udpOk.stdout, /pipeSize 0, udpIdleTimeout 30s, udpResponses 1, udpMaxSessions 16384, udpMaxDatagram 65535\n/);

  for (const [i, c] of bad.entries()) {
    await t.test(c.name, async (t) => {
      const { exit, stdout, stderr } = await runs[i + 1];
      t.equal(exit.code, 2, 'exit 2');
      t.equal(stdout, '', 'nothing on stdout');
      const line = onlyLine(t, stderr);
      for (const word of [c.file, ...c.names]) t.ok(line.includes(word), `names ${word}: ${line}`);
    });
  }
});

t.test('--config with --listen is refused; flags typed on the command line override the file, also after a reload', async (t) => {
  const backend = await tracked(t, integrityBackend());
  const file = writeConfig('override.yaml', ['workers: 1', 'drainTimeout: 3s', 'listen: 127.0.0.1:0', `backends: [${backend.address}]`, ''].join('\n'));

  const both = await runCli(['start', '--config', file, '--listen', '127.0.0.1:0']);
  t.equal(both.exit.code, 2);
  const line = onlyLine(t, both.stderr);
  t.ok(line.includes('--config') && line.includes('--listen'), `names --config and --listen: ${line}`);

  const { cli, ports } = await startCli(['--config', file, '--workers', '2', '--admin', '127.0.0.1:0']);
  const url = await adminUrl(cli);
  t.equal((await adminGet<{ workers: number }>(url, '/status')).workers, 2, '--workers 2 beats workers: 1 in the file');
  await integrityExchange(ports[0], mib, mib);

  // A reload reads the file again, with the typed flags over it again: the admin API given by
  // --admin stays, and workers does not read as a change that needs a restart.
  const mark = cli.mark();
  cli.signal('SIGHUP');
  const applied = await cli.waitForLog('reload applied', { after: mark });
  t.same(applied.needsRestart, [], 'no setting reads as changed');
  t.equal((await adminGet<{ workers: number }>(url, '/status')).workers, 2, 'the admin API from --admin survives the reload');

  cli.signal('SIGTERM');
  const stopping = await cli.waitForLog('lb4 stopping: no new flows, draining open ones');
  t.equal(stopping.drainTimeoutMs, 3000, "a flag's default (--drain-timeout 10s) does not override the file");
  t.same(await cli.waitForExit(), { code: 0, signal: null });
});

/** An echo server on 127.0.0.1:`port`, for a backend that comes back on the port it had. */
async function echoOn(t: Test, port: number): Promise<net.Server> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  server.listen(port, '127.0.0.1');
  await within(once(server, 'listening'), waitMs, `a backend back on port ${port}`);
  return server;
}

t.test('--health-check tcp: a stopped backend shows down in `lb4 backends`, and comes back up', async (t) => {
  const steady = await tracked(t, startBackend((s) => s.pipe(s)));
  const flaky = await startBackend((s) => s.pipe(s));
  t.teardown(() => flaky.close());
  const { cli } = await startCli([
    '--listen', '127.0.0.1:0',
    '--backend', steady.address,
    '--backend', flaky.address,
    '--health-check', 'tcp',
    '--health-interval', '200ms',
    '--rise', '1',
    '--fall', '1',
    '--admin', '127.0.0.1:0',
  ]);
  const url = await adminUrl(cli);
  let table = await backendsTable(t, url);
  t.same([table.get(steady.address)?.HEALTH, table.get(flaky.address)?.HEALTH], ['up', 'up'], 'both up at first');

  let mark = cli.mark();
  await flaky.close();
  const down = await cli.waitForLog('backend down', { after: mark, where: (e) => e.backend === flaky.address });
  t.equal(down.component, 'health');
  t.match(down.reason, /refused/, `the reason says why: ${down.reason}`);
  table = await backendsTable(t, url);
  t.equal(table.get(flaky.address)?.HEALTH, 'down', '`lb4 backends` shows it down');
  t.equal(table.get(steady.address)?.HEALTH, 'up', 'and the other one up');

  mark = cli.mark();
  await echoOn(t, flaky.port);
  const up = await cli.waitForLog('backend up', { after: mark, where: (e) => e.backend === flaky.address });
  t.equal(up.component, 'health');
  table = await backendsTable(t, url);
  t.equal(table.get(flaky.address)?.HEALTH, 'up', 'back up once it listens again');
  cli.signal('SIGTERM');
  t.same(await cli.waitForExit(), { code: 0, signal: null });
});

/** An HTTP backend that answers /healthz with `status`, and counts the checks. */
async function healthzBackend(t: Test, status: number): Promise<{ address: string; checks: string[]; checked: (n: number) => Promise<void> }> {
  const checks: string[] = [];
  let waiting: { n: number; resolve: () => void } | null = null;
  const server: HttpServer = createHttpServer((request, response) => {
    checks.push(`${request.method} ${request.url}`);
    if (waiting && checks.length >= waiting.n) waiting.resolve();
    response.writeHead(request.url === '/healthz' ? status : 404, { connection: 'close' });
    response.end();
  });
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  server.listen(0, '127.0.0.1');
  await within(once(server, 'listening'), waitMs, 'an HTTP backend');
  const checked = (n: number) =>
    within(
      new Promise<void>((resolve) => (checks.length >= n ? resolve() : (waiting = { n, resolve }))),
      waitMs,
      `${n} health checks`,
    );
  return { address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, checks, checked };
}

t.test('--health-check http:/healthz: 200 keeps a backend up, 503 takes one down; a bad spec is exit 2', async (t) => {
  const healthy = await healthzBackend(t, 200);
  const sick = await healthzBackend(t, 503);
  const { cli } = await startCli([
    '--listen', '127.0.0.1:0',
    '--backend', healthy.address,
    '--backend', sick.address,
    '--health-check', 'http:/healthz',
    // The check's timeout is the interval: 500 ms leaves a loaded test machine room to answer.
    '--health-interval', '500ms',
    '--rise', '1',
    '--fall', '1',
    '--admin', '127.0.0.1:0',
  ]);
  const url = await adminUrl(cli);
  const down = await cli.waitForLog('backend down', { where: (e) => e.backend === sick.address });
  t.match(down.reason, /503/, `the reason quotes the status: ${down.reason}`);
  // With --fall 1 a single failed check would take it down: two more passes show it stays up.
  const seen = healthy.checks.length;
  await healthy.checked(seen + 2);
  t.same(new Set(healthy.checks), new Set(['GET /healthz']), 'the checks ask for GET /healthz');
  const backends = await backendsJson(t, url);
  t.same(backends.map((b) => [b.id, b.health]), [[healthy.address, 'up'], [sick.address, 'down']]);
  t.equal(cli.logs('backend down').length, 1, 'only the 503 backend went down');
  cli.signal('SIGTERM');
  t.same(await cli.waitForExit(), { code: 0, signal: null });

  const badSpec = await runCli(['start', '--listen', '127.0.0.1:0', '--backend', healthy.address, '--health-check', 'ping']);
  t.equal(badSpec.exit.code, 2);
  const line = onlyLine(t, badSpec.stderr);
  t.ok(line.includes('--health-check') && line.includes('ping'), `names --health-check and ping: ${line}`);
});

t.test('admin client: status, backends, drain, enable, weight, errors', async (t) => {
  const a = await tracked(t, nameBackend('a'));
  const b = await tracked(t, nameBackend('b'));
  const { cli, ports } = await startCli(['--listen', '127.0.0.1:0', '--backend', a.address, '--backend', b.address, '--workers', '1', '--admin', '127.0.0.1:0']);
  const url = await adminUrl(cli);
  const admin = ['--admin', url];

  const [status, statusJson, backends, backendsJsonRun] = await Promise.all([
    runCli(['status', ...admin]),
    runCli(['status', ...admin, '--json']),
    runCli(['backends', ...admin]),
    runCli(['backends', ...admin, '--json']),
  ]);
  t.equal(status.exit.code, 0, `status exits 0 ${status.stderr}`);
  t.match(status.stdout, /^workers: 1$/m);
  t.match(status.stdout, /^listeners: 1$/m);
  t.match(status.stdout, /^backends: 2 \(2 taking new flows; 2 up, 0 down, 0 draining, 0 in maintenance\)$/m, 'status is for people by default');
  t.match(status.stdout, /^uptime: \d+s$/m);
  t.notMatch(status.stdout, /[{}]/, 'no JSON in the human form');
  t.equal(statusJson.exit.code, 0);
  const parsedStatus = JSON.parse(statusJson.stdout) as { workers: number; listeners: number; backends: { total: number } };
  t.same([parsedStatus.workers, parsedStatus.listeners, parsedStatus.backends.total], [1, 1, 2], 'status --json parses');
  t.equal(backends.exit.code, 0);
  const rows = parseTable(backends.stdout);
  t.same(rows.map((r) => r.BACKEND), [a.address, b.address], 'the table lists the backend ids');
  t.same(rows.map((r) => r.STATE), ['up', 'up']);
  t.same((JSON.parse(backendsJsonRun.stdout) as BackendJson[]).map((x) => x.id), [a.address, b.address], 'backends --json parses');

  const drain = await runCli(['backend', 'drain', a.address, ...admin]);
  t.equal(drain.exit.code, 0, `drain exits 0 ${drain.stderr}`);
  t.equal(drain.stdout, `drain ${a.address}: done\n`);
  const drained = (await backendsJson(t, url)).find((x) => x.id === a.address)!;
  t.same([drained.state, drained.takesNewFlows], ['draining', false]);
  const answers: string[] = [];
  for (let i = 0; i < 4; i++) answers.push(await whoAnswers(ports[0]));
  t.same(answers, ['b', 'b', 'b', 'b'], 'new flows avoid the draining backend');

  const enable = await runCli(['backend', 'enable', a.address, ...admin]);
  t.equal(enable.exit.code, 0, `enable exits 0 ${enable.stderr}`);
  t.equal((await backendsJson(t, url)).find((x) => x.id === a.address)!.state, 'up');
  const after = new Set<string>();
  for (let i = 0; i < 6 && !after.has('a'); i++) after.add(await whoAnswers(ports[0]));
  t.ok(after.has('a'), 'the enabled backend takes new flows again');

  const weight = await runCli(['backend', 'weight', a.address, '5', ...admin]);
  t.equal(weight.exit.code, 0, `weight exits 0 ${weight.stderr}`);
  t.equal((await backendsJson(t, url)).find((x) => x.id === a.address)!.weight, 5);

  const [notNumber, unknown, nobody] = await Promise.all([
    runCli(['backend', 'weight', a.address, 'x', ...admin]),
    runCli(['backend', 'drain', '127.0.0.1:1', ...admin]),
    runCli(['status', '--admin', '127.0.0.1:1']),
  ]);
  t.equal(notNumber.exit.code, 2, 'weight x: exit 2');
  t.match(onlyLine(t, notNumber.stderr), /weight.*"x"/);
  t.not(unknown.exit.code, 0, 'unknown backend: non-zero exit');
  const unknownLine = onlyLine(t, unknown.stderr);
  t.ok(unknownLine.includes('"127.0.0.1:1"') && unknownLine.includes('404'), `names the backend and the 404: ${unknownLine}`);
  t.not(nobody.exit.code, 0, 'no admin API: non-zero exit');
  t.match(onlyLine(t, nobody.stderr), /^lb4: no admin API at 127\.0\.0\.1:1\b/);
  t.equal((await backendsJson(t, url)).length, 2, 'the failed commands changed nothing');

  cli.signal('SIGTERM');
  t.same(await cli.waitForExit(), { code: 0, signal: null });
});

t.test('admin client with a token: 401 without it, ok with --token or LB4_ADMIN_TOKEN', async (t) => {
  const backend = await tracked(t, nameBackend('a'));
  const token = randomBytes(16).toString('hex');
  const { cli } = await startCli(['--listen', '127.0.0.1:0', '--backend', backend.address, '--admin', '127.0.0.1:0'], { env: { LB4_ADMIN_TOKEN: token } });
  const url = await adminUrl(cli);
  const [none, wrong, flag, env] = await Promise.all([
    runCli(['status', '--admin', url]),
    runCli(['status', '--admin', url, '--token', 'x'.repeat(32)]),
    runCli(['status', '--admin', url, '--token', token]),
    runCli(['status', '--admin', url], { env: { LB4_ADMIN_TOKEN: token } }),
  ]);
  t.not(none.exit.code, 0, 'no token: non-zero exit');
  t.match(onlyLine(t, none.stderr), /401/);
  t.not(wrong.exit.code, 0, 'wrong token: non-zero exit');
  t.match(onlyLine(t, wrong.stderr), /401/);
  t.equal(flag.exit.code, 0, `--token: exit 0 ${flag.stderr}`);
  t.match(flag.stdout, /^workers: /m);
  t.equal(env.exit.code, 0, `LB4_ADMIN_TOKEN: exit 0 ${env.stderr}`);
  t.match(env.stdout, /^workers: /m);
  cli.signal('SIGTERM');
  t.same(await cli.waitForExit(), { code: 0, signal: null });
});

t.test('--access-log: each closed flow is a "flow closed" line with its bytes and backend', async (t) => {
  const backend = await tracked(t, integrityBackend());
  const { cli, ports, listeners } = await startCli(['--listen', '127.0.0.1:0', '--backend', backend.address, '--access-log']);
  // The integrity protocol adds an 8-byte header up and two 32-byte digests down.
  const flows = [
    { up: 1000, down: 2000 },
    { up: 300_000, down: 70_000 },
  ];
  for (const f of flows) await integrityExchange(ports[0], f.up, f.down);
  for (const f of flows) {
    const line: LogLine = await cli.waitForLog('flow closed', { where: (e) => e.bytesToBackend === f.up + 8 });
    t.equal(line.component, 'access');
    t.equal(line.backend, backend.address);
    t.equal(line.bytesToClient, f.down + 64, `${f.up} bytes up, ${f.down} down`);
    t.equal(line.listener, '127.0.0.1:0');
    t.match(line.client, /^127\.0\.0\.1:\d+$/);
  }
  t.equal(listeners.length, 1);
  cli.signal('SIGTERM');
  t.same(await cli.waitForExit(), { code: 0, signal: null });
});
