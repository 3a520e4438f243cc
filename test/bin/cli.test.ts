// The lb4 command line, run the way a person runs it: `node dist/bin/lb4.js ...` as a child
// process (test/helpers/cli.ts), with real TCP backends on loopback. dist/ is brought up to date
// first, so the test never passes against stale JavaScript.

import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { describeDefault, optionTable, tunables, type OptionName, type OptionSpec } from '../../lib/config/options.js';
import { buildDist, Cli, killChildren, onlyLine, refused, refusedSoon, root, runCli, startCli, waitMs } from '../helpers/cli.js';
import { within } from '../helpers/sockets.js';

const packageVersion = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;

// What the test opens besides lb4 itself, so teardown can close it even when an assertion threw
// half-way.
const servers = new Set<Server>();
const sockets = new Set<Socket>();

t.teardown(() => {
  killChildren();
  for (const socket of sockets) socket.destroy();
  for (const server of servers) server.close();
});

async function listen(server: Server, host = '127.0.0.1'): Promise<number> {
  servers.add(server);
  server.listen(0, host);
  await within(once(server, 'listening'), waitMs, `a test server on ${host}`);
  return (server.address() as AddressInfo).port;
}

/** A TCP backend that sends every byte back and half-closes when its client does. */
async function echoBackend(): Promise<number> {
  return listen(
    createServer((socket) => {
      sockets.add(socket);
      // Drain tests reset flows on purpose; that is not a test failure.
      socket.on('error', () => {});
      socket.pipe(socket);
    }),
  );
}

/** A client connection through lb4 that can read exactly what it expects. */
class Client {
  readonly socket: Socket;
  /** Resolves when the connection is over, however it ended. */
  readonly ended: Promise<void>;
  #received = Buffer.alloc(0);
  #closed = false;
  /** The pending read's check, run on every chunk and on close. */
  #wake: () => void = () => {};

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#received = Buffer.concat([this.#received, chunk]);
      this.#wake();
    });
    this.ended = new Promise((resolve) =>
      socket.once('close', () => {
        this.#closed = true;
        this.#wake();
        resolve();
      }),
    );
  }

  static async connect(port: number, host = '127.0.0.1'): Promise<Client> {
    const socket = connect(port, host);
    sockets.add(socket);
    const client = new Client(socket);
    await within(once(socket, 'connect'), waitMs, `a connection to ${host}:${port}`);
    // Drain tests reset flows on purpose; `ended` reports it.
    socket.on('error', () => {});
    return client;
  }

  /** Writes `data` and waits until the same number of bytes has come back. */
  async exchange(data: Buffer | string): Promise<Buffer> {
    const bytes = Buffer.from(data);
    this.socket.write(bytes);
    return this.read(bytes.length);
  }

  /** The next `length` bytes received. */
  read(length: number): Promise<Buffer> {
    const wait = new Promise<Buffer>((resolve, reject) => {
      this.#wake = () => {
        if (this.#received.length >= length) {
          this.#wake = () => {};
          const out = this.#received.subarray(0, length);
          this.#received = this.#received.subarray(length);
          resolve(out);
        } else if (this.#closed) {
          this.#wake = () => {};
          reject(new Error(`connection closed after ${this.#received.length} of ${length} bytes`));
        }
      };
      this.#wake();
    });
    return within(wait, waitMs, `${length} bytes back`);
  }
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Sends `data` through lb4, half-closes, and returns everything that came back before the end. */
async function echoThrough(port: number, data: Buffer, host = '127.0.0.1'): Promise<Buffer> {
  const socket = connect(port, host);
  sockets.add(socket);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await within(once(socket, 'connect'), waitMs, `a connection to ${host}:${port}`);
  socket.end(data);
  await within(once(socket, 'end'), waitMs, 'the echo to end');
  socket.destroy();
  return Buffer.concat(chunks);
}

function httpBody(url: string): Promise<string> {
  const request = new Promise<string>((resolve, reject) => {
    // A new connection per request: a pooled one would keep going to the same backend.
    httpGet(url, { agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve(body));
      response.on('error', reject);
    }).on('error', reject);
  });
  return within(request, waitMs, `GET ${url}`);
}

async function ipv6Loopback(): Promise<boolean> {
  const probe = createServer();
  try {
    probe.listen(0, '::1');
    await within(Promise.race([once(probe, 'listening'), once(probe, 'error').then(([err]) => Promise.reject(err))]), waitMs, 'a probe on ::1');
    return true;
  } catch {
    return false;
  } finally {
    probe.close();
  }
}

t.before(buildDist);

t.test('--help lists the commands and every flag', async (t) => {
  const top = await runCli(['--help']);
  t.equal(top.exit.code, 0);
  t.match(top.stdout, /^\s+start\b/m);
  t.match(top.stdout, /^\s+demo\b/m);

  const start = await runCli(['start', '--help']);
  t.equal(start.exit.code, 0);
  const flags = ['--listen', '--backend', '--log-level', '--log-format', ...Object.values(tunables).map((spec) => spec.flag.split(' ')[0])];
  for (const flag of flags) t.match(start.stdout, flag, `start --help shows ${flag}`);
  t.match(start.stdout, /default: 10s/, 'tunable defaults come from the library table');
  // Every flag with a default says it, also the ones the library applies (nested, computed, "off").
  const withDefaults = (Object.entries(optionTable) as Array<[OptionName, OptionSpec]>).filter(([name, spec]) => spec.flag !== null && describeDefault(name) !== '');
  t.ok(withDefaults.length > 30, 'most flags have a default');
  // One flag's entry: from its name to the next flag's, joined into one line.
  const entries = new Map(start.stdout.split(/\n(?= {2}-)/).map((entry) => [entry.trim().split(/[ ,]/)[0], entry.replace(/\s+/g, ' ')]));
  for (const [name, spec] of withDefaults) {
    const flag = spec.flag!.split(' ')[0];
    const entry = entries.get(flag) ?? '';
    t.ok(entry.includes(`default: ${describeDefault(name)}`) || entry.includes(`default: "${describeDefault(name)}"`), `${flag} shows its default: ${entry}`);
  }
  t.notMatch(start.stdout, /accept TCP clients/, 'the description is not TCP only');
  t.match(start.stdout, /UDP sessions/, 'it names UDP');
  t.match(start.stdout.replace(/\s+/g, ' '), /udp,send=TEXT/, 'the udp check syntax is shown');

  const demo = await runCli(['demo', '--help']);
  t.equal(demo.exit.code, 0);
  t.match(demo.stdout, '--port');
});

t.test('help into a pipe closed early (lb4 --help | head -1) exits quietly', async (t) => {
  const cli = new Cli(['start', '--help']);
  cli.child.stdout!.destroy();
  t.same(await cli.waitForExit(), { code: 0, signal: null });
  t.equal(cli.stderr, '', 'no EPIPE stack trace');
});

t.test('--version and -v print the package version', async (t) => {
  for (const flag of ['--version', '-v']) {
    const { exit, stdout } = await runCli([flag]);
    t.equal(exit.code, 0);
    t.equal(stdout.trim(), packageVersion, flag);
  }
});

t.test('bad input: one "lb4:" line naming the problem, a non-zero exit, nothing started', async (t) => {
  const backend = ['--backend', '127.0.0.1:9'];
  const listen = ['--listen', '127.0.0.1:0'];
  const cases: Array<{ name: string; args: string[]; code: number; names: string[] }> = [
    { name: 'listen address without a port', args: ['start', '--listen', 'foo', ...backend], code: 2, names: ['--listen', '"foo"', 'port'] },
    { name: 'listen port out of range', args: ['start', '--listen', ':99999', ...backend], code: 2, names: ['--listen', '99999'] },
    { name: 'malformed IPv6 listen address', args: ['start', '--listen', '[::1:0', ...backend], code: 2, names: ['--listen', '[::1:0'] },
    { name: 'backend without a port', args: ['start', ...listen, '--backend', '127.0.0.1'], code: 2, names: ['--backend', '"127.0.0.1"', 'port'] },
    { name: 'backend on port 0', args: ['start', ...listen, '--backend', '127.0.0.1:0'], code: 2, names: ['--backend', '127.0.0.1:0', 'port 0'] },
    { name: 'bad backend weight', args: ['start', ...listen, '--backend', '127.0.0.1:9,weight=x'], code: 2, names: ['--backend', 'weight', '"x"'] },
    { name: 'no backend', args: ['start', ...listen], code: 2, names: ['--backend', 'at least one backend'] },
    { name: 'no listen address', args: ['start', ...backend], code: 2, names: ['--listen', 'required'] },
    { name: 'unresolvable backend host', args: ['start', ...listen, '--backend', 'nosuchhost.invalid:80'], code: 2, names: ['--backend', 'nosuchhost.invalid', 'resolve'] },
    { name: 'bad duration', args: ['start', ...listen, ...backend, '--connect-timeout', '5x'], code: 2, names: ['--connect-timeout', '"5x"'] },
    { name: 'bad drain timeout', args: ['start', ...listen, ...backend, '--drain-timeout', '2d'], code: 2, names: ['--drain-timeout', '"2d"'] },
    { name: 'workers out of range', args: ['start', ...listen, ...backend, '--workers', '0'], code: 2, names: ['--workers', '0'] },
    { name: 'workers not a number', args: ['start', ...listen, ...backend, '--workers', 'many'], code: 2, names: ['--workers', '"many"'] },
    { name: 'retries out of range', args: ['start', ...listen, ...backend, '--retries', '99'], code: 2, names: ['--retries', '99'] },
    { name: 'a trusted network with a prefix too long', args: ['start', ...listen, ...backend, '--accept-proxy', '127.0.0.1/32', '--accept-proxy', '10.0.0.0/99'], code: 2, names: ['--accept-proxy', '10.0.0.0/99'] },
    { name: 'unknown PROXY protocol version', args: ['start', ...listen, ...backend, '--proxy-protocol', 'v3'], code: 2, names: ['--proxy-protocol', '"v3"'] },
    { name: 'PROXY protocol on a UDP listener', args: ['start', '--listen', '127.0.0.1:0/udp', ...backend, '--proxy-protocol', 'v2'], code: 2, names: ['--proxy-protocol', 'TCP'] },
    { name: 'an access list network with a bad address', args: ['start', ...listen, ...backend, '--allow', '10.0.0.300/8'], code: 2, names: ['--allow', '10.0.0.300/8'] },
    { name: 'a denied network with a prefix too long', args: ['start', ...listen, ...backend, '--deny', '::1/129'], code: 2, names: ['--deny', '::1/129'] },
    { name: 'a negative listener cap', args: ['start', ...listen, ...backend, '--max-connections', '-1'], code: 2, names: ['--max-connections', '-1'] },
    { name: 'a per-source rate that is no number', args: ['start', ...listen, ...backend, '--connection-rate-per-source', 'fast'], code: 2, names: ['--connection-rate-per-source', '"fast"'] },
    { name: 'a queue timeout without a unit', args: ['start', ...listen, ...backend, '--queue-timeout', '5'], code: 2, names: ['--queue-timeout', '"5"'] },
    { name: 'a bad backend maxconn', args: ['start', ...listen, '--backend', '127.0.0.1:9,maxconn=-3'], code: 2, names: ['--backend', 'maxconn', '"-3"'] },
    { name: 'connection limits on a UDP listener', args: ['start', '--listen', '127.0.0.1:0/udp', ...backend, '--max-connections', '5'], code: 2, names: ['--max-connections', 'TCP'] },
    { name: 'unknown algorithm', args: ['start', ...listen, ...backend, '--algorithm', 'random'], code: 2, names: ['--algorithm', '"random"'] },
    { name: 'a one-value flag given twice', args: ['start', ...listen, ...backend, '--retries', '2', '--retries', '7'], code: 2, names: ['--retries', 'more than once'] },
    { name: 'a CLI-only flag given twice', args: ['start', ...listen, ...backend, '--log-level', 'info', '--log-level', 'debug'], code: 2, names: ['--log-level', 'more than once'] },
    { name: 'access log sample not a number', args: ['start', ...listen, ...backend, '--access-log', 'often'], code: 2, names: ['--access-log', '"often"'] },
    { name: 'unknown log level', args: ['start', ...listen, ...backend, '--log-level', 'loud'], code: 2, names: ['--log-level', 'loud'] },
    { name: 'unknown flag', args: ['start', ...listen, ...backend, '--frobnicate'], code: 2, names: ['--frobnicate'] },
    { name: 'flag without its value', args: ['start', ...backend, '--listen'], code: 2, names: ['--listen', 'missing'] },
    { name: 'unknown command', args: ['frobnicate'], code: 2, names: ['frobnicate'] },
    { name: 'demo port out of range', args: ['demo', '--port', '99999'], code: 2, names: ['--port', '99999'] },
    { name: 'demo admin port out of range', args: ['demo', '--admin-port', '70000'], code: 2, names: ['--admin-port', '70000'] },
  ];
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const { exit, stdout, stderr } = await runCli(c.args);
      t.equal(exit.code, c.code, 'exit code');
      t.equal(stdout, '', 'nothing on stdout');
      const line = onlyLine(t, stderr);
      for (const word of c.names) t.ok(line.includes(word), `names ${word}: ${line}`);
    });
  }
});

t.test('listen port in use: exit 1, and the port still belongs to its owner', async (t) => {
  const owner = createServer((socket) => socket.end('owner\n'));
  const port = await listen(owner);
  const { exit, stderr } = await runCli(['start', '--listen', `127.0.0.1:${port}`, '--backend', '127.0.0.1:9']);
  t.equal(exit.code, 1);
  t.equal(onlyLine(t, stderr), `lb4: cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE)`);

  const client = await Client.connect(port);
  t.equal((await client.read('owner\n'.length)).toString(), 'owner\n', 'a new connection reaches the owner');
  await within(client.ended, waitMs, 'the owner to close');

  const demo = await runCli(['demo', '--port', String(port)]);
  t.equal(demo.exit.code, 1, 'demo: exit 1 too, its backends closed (or it would not have exited)');
  t.equal(onlyLine(t, demo.stderr), `lb4: cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE)`);
  t.equal(demo.stdout, '', 'demo: no curl line for a balancer that did not start');
  owner.close();
});

t.test('start forwards bytes intact, then stops on SIGTERM', async (t) => {
  const backendA = await echoBackend();
  const backendB = await echoBackend();
  const withV6 = await ipv6Loopback();
  const listenArgs = ['--listen', '127.0.0.1:0', ...(withV6 ? ['--listen', '[::1]:0'] : [])];
  const { cli, listeners, ports } = await startCli([
    ...listenArgs,
    '--backend', `127.0.0.1:${backendA}`,
    '--backend', `127.0.0.1:${backendB},weight=2`,
    '--workers', '2',
  ]);
  t.equal(listeners.length, withV6 ? 2 : 1, 'one listener per --listen');
  t.match(listeners[0], /^127\.0\.0\.1:\d+$/);
  if (withV6) t.match(listeners[1], /^\[::1\]:\d+$/);
  const added = await cli.waitForLog('backend added');
  t.equal(added.backend, `127.0.0.1:${backendA}`);

  const payload = randomBytes(4 << 20);
  const echoes = await Promise.all([
    echoThrough(ports[0], payload),
    echoThrough(ports[0], payload.subarray(0, 1 << 20)),
    echoThrough(ports[0], payload.subarray(0, 1000)),
    ...(withV6 ? [echoThrough(ports[1], payload.subarray(0, 1 << 20), '::1')] : []),
  ]);
  t.equal(sha256(echoes[0]), sha256(payload), '4 MiB came back intact');
  t.equal(sha256(echoes[1]), sha256(payload.subarray(0, 1 << 20)), '1 MiB came back intact');
  t.equal(echoes[2].toString('hex'), payload.subarray(0, 1000).toString('hex'), '1000 bytes came back intact');
  if (withV6) t.equal(sha256(echoes[3]), sha256(payload.subarray(0, 1 << 20)), '1 MiB through [::1] came back intact');

  cli.signal('SIGTERM');
  t.same(await cli.waitForExit(), { code: 0, signal: null });
  t.equal(cli.stdout, '', 'stdout stays empty: logs go to stderr');
  const stopped = await cli.waitForLog('lb4 stopped');
  t.equal(stopped.closedByDrainTimeout, 0);
  t.ok(await refused(ports[0]), 'nothing listens after exit');
});

t.test('SIGTERM: no new flows, an open flow finishes, exit 0', async (t) => {
  const backend = await echoBackend();
  const { cli, ports } = await startCli(['--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${backend}`, '--drain-timeout', '10s']);
  const client = await Client.connect(ports[0]);
  t.equal((await client.exchange('before the signal')).toString(), 'before the signal');

  const signalledAt = Date.now();
  cli.signal('SIGTERM');
  const stopping = await cli.waitForLog('lb4 stopping: no new flows, draining open ones');
  t.equal(stopping.openFlows, 1, 'the open flow is counted');
  t.ok(await refusedSoon(ports[0]), 'new connections are refused');

  t.equal((await client.exchange('after the signal')).toString(), 'after the signal', 'the open flow still forwards');
  client.socket.end();
  await within(client.ended, waitMs, 'the flow to end');

  t.same(await cli.waitForExit(), { code: 0, signal: null });
  t.ok(Date.now() - signalledAt < 10_000, 'exits once the flow ends, before the drain timeout');
  t.equal((await cli.waitForLog('lb4 stopped')).closedByDrainTimeout, 0, 'no flow needed closing');
});

t.test('SIGTERM: a flow still open after --drain-timeout is closed, exit 0', async (t) => {
  const backend = await echoBackend();
  const { cli, ports } = await startCli(['--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${backend}`, '--drain-timeout', '300ms']);
  const client = await Client.connect(ports[0]);
  t.equal((await client.exchange('ping')).toString(), 'ping');

  const signalledAt = Date.now();
  cli.signal('SIGTERM');
  await within(client.ended, waitMs, 'lb4 to close the flow');
  const closedAfter = Date.now() - signalledAt;
  // The worker sweeps on a coarse clock: allow a little slack below the 300 ms asked for.
  t.ok(closedAfter >= 250, `the flow was left open for the drain timeout (${closedAfter} ms)`);
  t.same(await cli.waitForExit(), { code: 0, signal: null });
  t.equal((await cli.waitForLog('lb4 stopped')).closedByDrainTimeout, 1);
});

t.test('a second signal ends the drain at once, still exit 0', async (t) => {
  const backend = await echoBackend();
  const { cli, ports } = await startCli(['--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${backend}`, '--drain-timeout', '1m']);
  const client = await Client.connect(ports[0]);
  t.equal((await client.exchange('ping')).toString(), 'ping');

  cli.signal('SIGTERM');
  await cli.waitForLog('lb4 stopping: no new flows, draining open ones');
  cli.signal('SIGINT');
  await cli.waitForLog('second stop signal: closing open flows now');
  await within(client.ended, waitMs, 'lb4 to close the flow');
  t.same(await cli.waitForExit(), { code: 0, signal: null });
  t.equal((await cli.waitForLog('lb4 stopped')).closedByDrainTimeout, 1);
});

t.test('SIGINT stops it too, and --log-format pretty writes readable logs', async (t) => {
  const backend = await echoBackend();
  const cli = new Cli(['start', '--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${backend}`, '--log-format', 'pretty']);
  await cli.waitForLine('stderr', 'the pretty start line', (line) => (/INFO.*lb4 started/.test(line) ? line : undefined));
  cli.signal('SIGINT');
  t.same(await cli.waitForExit(), { code: 0, signal: null });
  t.match(cli.stderr, /INFO.*lb4 stopped/, 'the last log line is written before the exit');
  // One line per event, its fields inline (pino-pretty's default spreads them over many lines).
  const lines = cli.stderr.split('\n').filter((l) => l !== '');
  t.ok(lines.length >= 2, `some log lines: ${lines.length}`);
  for (const line of lines) t.match(line, /^\[\d\d:\d\d:\d\d\.\d{3}\] [A-Z]+ \(lb4\): /, `one event per line: ${line}`);
  t.match(cli.stderr, /lb4 started.*\{.*"listeners":/, 'the start line carries its fields');
});

t.test('demo: three backends answer in turn, SIGTERM stops it', async (t) => {
  const cli = new Cli(['demo', '--port', '0', '--admin-port', '0', '--log-level', 'warn']);
  const url = await cli.waitForLine('stdout', 'the curl command', (line) => /\bcurl (http:\/\/127\.0\.0\.1:\d+\/)\s*$/.exec(line)?.[1]);
  const admin = await cli.waitForLine('stdout', 'the lb4 top command', (line) => /^\s+lb4 top --admin (127\.0\.0\.1:\d+)\s*$/.exec(line)?.[1]);
  const dashboard = await cli.waitForLine('stdout', 'the dashboard address', (line) => /dashboard: (http:\S+)/.exec(line)?.[1]);
  t.equal(dashboard, `http://${admin}/`, 'the dashboard is the admin API');
  const bodies: string[] = [];
  for (let i = 0; i < 3; i++) bodies.push(await httpBody(url));
  t.same(new Set(bodies), new Set(['hello from backend 1\n', 'hello from backend 2\n', 'hello from backend 3\n']), 'each request reached another backend');
  const page = await within(fetch(dashboard, { headers: { accept: 'text/html' } }), waitMs, 'the dashboard');
  t.match(await page.text(), /<html/i, 'the dashboard answers a browser');
  const top = await runCli(['top', '--admin', admin, '--once']);
  t.equal(top.exit.code, 0, `lb4 top as printed works: ${top.stderr}`);

  cli.signal('SIGTERM');
  t.same(await cli.waitForExit(), { code: 0, signal: null });
  t.equal(cli.stderr, '', 'nothing logged at warn level');
});
