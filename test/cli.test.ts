// The lb4 command line, run the way a person runs it: `node dist/bin/lb4.js ...` as a child
// process, with real TCP backends on loopback. dist/ is rebuilt first, so the test never passes
// against stale JavaScript.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { readFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { tunables } from '../lib/config.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const cliPath = join(root, 'dist', 'bin', 'lb4.js');
const packageVersion = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;

// Generous bounds: they only matter when something is broken, and then they turn a hang into a
// failure that says what it was waiting for.
const buildTimeoutMs = 60_000;
const waitMs = 10_000;

function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Everything the test opens, so teardown can close it even when an assertion threw half-way.
const children = new Set<ChildProcess>();
const servers = new Set<Server>();
const sockets = new Set<Socket>();

t.teardown(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const socket of sockets) socket.destroy();
  for (const server of servers) server.close();
});

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One JSON log line as pino writes it. */
interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** A running lb4 process whose output can be awaited line by line. */
class Cli extends EventEmitter<{ line: [stream: 'stdout' | 'stderr', line: string] }> {
  readonly child: ChildProcess;
  /** Resolves once the process has exited and its output is complete. */
  readonly closed: Promise<Exit>;
  stdout = '';
  stderr = '';
  readonly #lines: Array<['stdout' | 'stderr', string]> = [];

  constructor(args: string[]) {
    super();
    // The CLI runs the way a person runs it. tap puts its process tracker into every child's
    // NODE_OPTIONS, whatever env the spawn names: it would add its own signal and exit hooks to
    // lb4 and double its start-up time, so env(1) removes it and then execs node in its place.
    this.child = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, cliPath, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(this.child);
    this.closed = new Promise((resolve) => {
      this.child.once('close', (code, signal) => resolve({ code, signal }));
      this.child.once('error', (err) => {
        this.stderr += `(cannot run lb4: ${err.message})`;
        resolve({ code: null, signal: null });
      });
    });
    this.#collect('stdout');
    this.#collect('stderr');
  }

  #collect(name: 'stdout' | 'stderr'): void {
    let pending = '';
    const stream = this.child[name]!;
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      this[name] += chunk;
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        this.#lines.push([name, line]);
        this.emit('line', name, line);
      }
    });
  }

  /** The first line (already written or still to come) on `stream` that `match` accepts. */
  waitForLine<T>(stream: 'stdout' | 'stderr', what: string, match: (line: string) => T | undefined, ms = waitMs): Promise<T> {
    const wait = new Promise<T>((resolve, reject) => {
      for (const [s, line] of this.#lines) {
        const found = s === stream ? match(line) : undefined;
        if (found !== undefined) return resolve(found);
      }
      const onLine = (s: 'stdout' | 'stderr', line: string): void => {
        const found = s === stream ? match(line) : undefined;
        if (found === undefined) return;
        this.off('line', onLine);
        resolve(found);
      };
      this.on('line', onLine);
      void this.closed.then((exit) => {
        this.off('line', onLine);
        reject(new Error(`lb4 exited (${JSON.stringify(exit)}) before ${what}; stderr:\n${this.stderr}`));
      });
    });
    return within(ms, what, wait);
  }

  /** The first JSON log line with this message. */
  waitForLog(msg: string, ms = waitMs): Promise<LogLine> {
    return this.waitForLine('stderr', `log "${msg}"`, (line) => {
      if (!line.startsWith('{')) return undefined;
      const entry = JSON.parse(line) as LogLine;
      return entry.msg === msg ? entry : undefined;
    }, ms);
  }

  waitForExit(ms = waitMs): Promise<Exit> {
    return within(ms, 'lb4 to exit', this.closed);
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }
}

async function runCli(args: string[]): Promise<{ exit: Exit; stdout: string; stderr: string }> {
  const cli = new Cli(args);
  const exit = await cli.waitForExit();
  return { exit, stdout: cli.stdout, stderr: cli.stderr };
}

/** Starts `lb4 start` and returns it with the ports its listeners got, read from the start log. */
async function startCli(args: string[]): Promise<{ cli: Cli; listeners: string[]; ports: number[] }> {
  const cli = new Cli(['start', ...args]);
  const started = await cli.waitForLog('lb4 started');
  const listeners = (started.listeners as { name: string; address: string }[]).map((l) => l.address);
  return { cli, listeners, ports: listeners.map((l) => Number(/:(\d+)$/.exec(l)![1])) };
}

async function listen(server: Server, host = '127.0.0.1'): Promise<number> {
  servers.add(server);
  server.listen(0, host);
  await within(waitMs, `a test server on ${host}`, once(server, 'listening'));
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
    await within(waitMs, `a connection to ${host}:${port}`, once(socket, 'connect'));
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
    return within(waitMs, `${length} bytes back`, wait);
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
  await within(waitMs, `a connection to ${host}:${port}`, once(socket, 'connect'));
  socket.end(data);
  await within(waitMs, 'the echo to end', once(socket, 'end'));
  socket.destroy();
  return Buffer.concat(chunks);
}

/** Whether a connect to this port is refused (true) or got through, if only for a moment (false). */
async function refused(port: number): Promise<boolean> {
  const socket = connect(port, '127.0.0.1');
  sockets.add(socket);
  const outcome = new Promise<boolean>((resolve, reject) => {
    socket.once('connect', () => resolve(false));
    // A reset instead of a refusal: the connection reached a listening socket's queue just as
    // that socket closed.
    socket.once('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNREFUSED' ? resolve(true) : err.code === 'ECONNRESET' ? resolve(false) : reject(err)));
  });
  try {
    return await within(waitMs, `a connect to 127.0.0.1:${port}`, outcome);
  } finally {
    socket.destroy();
  }
}

/**
 * The stop log line is written just before close() shuts the listeners, so a connect sent the
 * moment it arrives may still get in (or be reset). Keep trying, each attempt awaited and none
 * slept for, until one is refused.
 */
async function refusedSoon(port: number, ms = 3000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) if (await refused(port)) return true;
  return false;
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
  return within(waitMs, `GET ${url}`, request);
}

async function ipv6Loopback(): Promise<boolean> {
  const probe = createServer();
  try {
    probe.listen(0, '::1');
    await within(waitMs, 'a probe on ::1', Promise.race([once(probe, 'listening'), once(probe, 'error').then(([err]) => Promise.reject(err))]));
    return true;
  } catch {
    return false;
  } finally {
    probe.close();
  }
}

/** The one line on stderr, once checked that there is exactly one and that it is lb4's. */
function onlyLine(t: { match: (found: string, wanted: RegExp, message: string) => boolean }, stderr: string): string {
  t.match(stderr, /^lb4: [^\n]+\n$/, `exactly one "lb4:" line on stderr: ${JSON.stringify(stderr)}`);
  return stderr.trimEnd();
}

t.before(async () => {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  await within(
    buildTimeoutMs,
    'tsc -p tsconfig.build.json',
    new Promise<void>((resolve, reject) => {
      // Without tap's process tracker, as for the CLI below.
      execFile('env', ['-u', 'NODE_OPTIONS', process.execPath, tsc, '-p', 'tsconfig.build.json'], { cwd: root }, (err, stdout, stderr) => {
        if (err) reject(new Error(`building dist/ failed:\n${stdout}${stderr}`));
        else resolve();
      });
    }),
  );
});

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

t.test('--version prints the package version', async (t) => {
  const { exit, stdout } = await runCli(['--version']);
  t.equal(exit.code, 0);
  t.equal(stdout.trim(), packageVersion);
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
    { name: 'unknown algorithm', args: ['start', ...listen, ...backend, '--algorithm', 'random'], code: 2, names: ['--algorithm', '"random"'] },
    { name: 'unknown log level', args: ['start', ...listen, ...backend, '--log-level', 'loud'], code: 2, names: ['--log-level', 'loud'] },
    { name: 'unknown flag', args: ['start', ...listen, ...backend, '--frobnicate'], code: 2, names: ['--frobnicate'] },
    { name: 'flag without its value', args: ['start', ...backend, '--listen'], code: 2, names: ['--listen', 'missing'] },
    { name: 'unknown command', args: ['frobnicate'], code: 2, names: ['frobnicate'] },
    { name: 'demo port out of range', args: ['demo', '--port', '99999'], code: 2, names: ['--port', '99999'] },
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
  await within(waitMs, 'the owner to close', client.ended);

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
  await within(waitMs, 'the flow to end', client.ended);

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
  await within(waitMs, 'lb4 to close the flow', client.ended);
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
  await within(waitMs, 'lb4 to close the flow', client.ended);
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
});

t.test('demo: three backends answer in turn, SIGTERM stops it', async (t) => {
  const cli = new Cli(['demo', '--port', '0', '--log-level', 'warn']);
  const url = await cli.waitForLine('stdout', 'the curl command', (line) => /\bcurl (http:\/\/127\.0\.0\.1:\d+\/)\s*$/.exec(line)?.[1]);
  const bodies: string[] = [];
  for (let i = 0; i < 3; i++) bodies.push(await httpBody(url));
  t.same(new Set(bodies), new Set(['hello from backend 1\n', 'hello from backend 2\n', 'hello from backend 3\n']), 'each request reached another backend');

  cli.signal('SIGTERM');
  t.same(await cli.waitForExit(), { code: 0, signal: null });
  t.equal(cli.stderr, '', 'nothing logged at warn level');
});
