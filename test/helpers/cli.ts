// The lb4 command line as the tests run it: `node dist/bin/lb4.js ...` in a child process, its
// output awaited line by line, every wait bounded. Shared by test/bin/cli.test.ts and
// test/integration/cli-control.test.ts.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { within } from './sockets.js';

export const root = fileURLToPath(new URL('../..', import.meta.url));
export const cliPath = join(root, 'dist', 'bin', 'lb4.js');

// Generous bounds: they only matter when something is broken, and then they turn a hang into a
// failure that says what it was waiting for.
const buildTimeoutMs = 90_000;
export const waitMs = 10_000;

// Every lb4 process started, so a test file's teardown can kill what an assertion left running.
const children = new Set<ChildProcess>();

/** Kills every lb4 process still running; for `t.teardown`. */
export function killChildren(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/**
 * Builds dist/ if a source is newer than its output. The check and the build run under one
 * flock(1), so test files started together build once, and none rewrites dist/ while another
 * runs lb4 from it.
 */
export async function buildDist(): Promise<void> {
  const lock = join(root, 'build', '.dist-build.lock');
  mkdirSync(join(root, 'build'), { recursive: true });
  const script = join(root, 'test', 'helpers', 'build-dist.mjs');
  const build = new Promise<void>((resolve, reject) => {
    // Without tap's process tracker, as for the CLI below.
    execFile('flock', [lock, 'env', '-u', 'NODE_OPTIONS', process.execPath, script], { cwd: root }, (err, stdout, stderr) => {
      if (err) reject(new Error(`building dist/ failed (${err.message}):\n${stdout}${stderr}`));
      else resolve();
    });
  });
  await within(build, buildTimeoutMs, 'dist/ to be built');
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One JSON log line as pino writes it. */
export interface LogLine {
  level: number;
  msg: string;
  component?: string;
  [field: string]: unknown;
}

export interface LogWait {
  /** Only a line this accepts. */
  where?: (entry: LogLine) => boolean;
  /** Only lines after the first `after` lines of stderr (see {@link Cli.mark}). */
  after?: number;
  ms?: number;
}

/** A JSON log line, or undefined for anything else on stderr (a pretty log, a crash's stack). */
function parseLogLine(line: string): LogLine | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as LogLine;
  } catch {
    return undefined;
  }
}

/** A running lb4 process whose output can be awaited line by line. */
export class Cli extends EventEmitter<{ line: [stream: 'stdout' | 'stderr', line: string] }> {
  readonly child: ChildProcess;
  /** Resolves once the process has exited and its output is complete. */
  readonly closed: Promise<Exit>;
  stdout = '';
  stderr = '';
  readonly #lines: Array<['stdout' | 'stderr', string]> = [];

  /** `env` is added to the test's environment, from which LB4_ADMIN and LB4_ADMIN_TOKEN are removed. */
  constructor(args: string[], options: { env?: Record<string, string>; fdLimit?: number } = {}) {
    super();
    const env = { ...process.env };
    // A developer's own admin address or token must not leak into what a test checks.
    delete env.LB4_ADMIN;
    delete env.LB4_ADMIN_TOKEN;
    // The CLI runs the way a person runs it. tap puts its process tracker into every child's
    // NODE_OPTIONS, whatever env the spawn names: it would add its own signal and exit hooks to
    // lb4 and double its start-up time, so env(1) removes it and then execs node in its place.
    // `fdLimit` runs it as under `ulimit -n` (prlimit(1) sets the limit, then execs env).
    const command = ['env', '-u', 'NODE_OPTIONS', process.execPath, cliPath, ...args];
    if (options.fdLimit !== undefined) command.unshift('prlimit', `--nofile=${options.fdLimit}`);
    this.child = spawn(command[0], command.slice(1), {
      cwd: root,
      env: { ...env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
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

  /** How many lines stderr has had so far: `waitForLog(msg, { after })` then skips them. */
  mark(): number {
    return this.#lines.filter(([s]) => s === 'stderr').length;
  }

  /** The first line (already written or still to come) on `stream` that `match` accepts. */
  waitForLine<T>(stream: 'stdout' | 'stderr', what: string, match: (line: string) => T | undefined, ms = waitMs, after = 0): Promise<T> {
    const wait = new Promise<T>((resolve, reject) => {
      let seen = 0;
      const accept = (s: 'stdout' | 'stderr', line: string): T | undefined => {
        if (s !== stream || seen++ < after) return undefined;
        return match(line);
      };
      for (const [s, line] of this.#lines) {
        const found = accept(s, line);
        if (found !== undefined) return resolve(found);
      }
      const onLine = (s: 'stdout' | 'stderr', line: string): void => {
        const found = accept(s, line);
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
    return within(wait, ms, what);
  }

  /** The first JSON log line with this message (and whatever `options.where` asks of it). */
  waitForLog(msg: string, options: LogWait = {}): Promise<LogLine> {
    const match = (line: string): LogLine | undefined => {
      const entry = parseLogLine(line);
      return entry?.msg === msg && (options.where?.(entry) ?? true) ? entry : undefined;
    };
    return this.waitForLine('stderr', `log "${msg}"`, match, options.ms ?? waitMs, options.after ?? 0);
  }

  /** Every JSON log line so far with this message. */
  logs(msg: string): LogLine[] {
    return this.#lines.flatMap(([s, line]) => {
      const entry = s === 'stderr' ? parseLogLine(line) : undefined;
      return entry?.msg === msg ? [entry] : [];
    });
  }

  /** Every JSON log line on stderr after the first `after` lines (see {@link Cli.mark}). */
  logsAfter(after: number): LogLine[] {
    return this.#lines
      .filter(([s]) => s === 'stderr')
      .slice(after)
      .flatMap(([, line]) => parseLogLine(line) ?? []);
  }

  waitForExit(ms = waitMs): Promise<Exit> {
    return within(this.closed, ms, 'lb4 to exit');
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** Whether the process is still running. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
}

/** Runs lb4 to its end. */
export async function runCli(args: string[], options: { env?: Record<string, string> } = {}): Promise<{ exit: Exit; stdout: string; stderr: string }> {
  const cli = new Cli(args, options);
  const exit = await cli.waitForExit();
  return { exit, stdout: cli.stdout, stderr: cli.stderr };
}

export interface StartedCli {
  cli: Cli;
  /** Each listener's bound address, in config order. */
  listeners: string[];
  ports: number[];
  /** Each listener's port by its name. */
  portOf: Record<string, number>;
}

/** Starts `lb4 start` and returns it with the ports its listeners got, read from the start log. */
export async function startCli(args: string[], options: { env?: Record<string, string>; fdLimit?: number } = {}): Promise<StartedCli> {
  const cli = new Cli(['start', ...args], options);
  const started = await cli.waitForLog('lb4 started');
  const bound = started.listeners as { name: string; address: string }[];
  const ports = bound.map((l) => Number(/:(\d+)$/.exec(l.address)![1]));
  return { cli, listeners: bound.map((l) => l.address), ports, portOf: Object.fromEntries(bound.map((l, i) => [l.name, ports[i]])) };
}

/** The one line on stderr, once checked that there is exactly one and that it is lb4's. */
export function onlyLine(t: { match: (found: string, wanted: RegExp, message: string) => boolean }, stderr: string): string {
  t.match(stderr, /^lb4: [^\n]+\n$/, `exactly one "lb4:" line on stderr: ${JSON.stringify(stderr)}`);
  return stderr.trimEnd();
}

/**
 * Config files `check-config` and `start --config` both refuse: each run exits 2 with one lb4
 * line matching `says`, the same line from both. The runs go in parallel.
 */
export async function refusedByBoth(
  t: { equal: (found: unknown, wanted: unknown, message: string) => boolean; match: (found: string, wanted: RegExp, message: string) => boolean },
  cases: ReadonlyArray<{ path: string; says: RegExp }>,
): Promise<void> {
  const runs = cases.flatMap((c) => [runCli(['check-config', c.path]), runCli(['start', '--config', c.path])]);
  for (const [i, c] of cases.entries()) {
    const [check, start] = [await runs[2 * i], await runs[2 * i + 1]];
    t.equal(check.exit.code, 2, `check-config ${c.path}: exit 2`);
    t.equal(start.exit.code, 2, `start ${c.path}: exit 2`);
    const checkLine = onlyLine(t, check.stderr);
    t.match(checkLine, c.says, `check-config ${c.path} names the problem`);
    t.equal(onlyLine(t, start.stderr), checkLine, 'start says the same, and logs nothing before it');
  }
}

/** Whether a connect to this port is refused (true) or got through, if only for a moment (false). */
export async function refused(port: number): Promise<boolean> {
  const socket = connect(port, '127.0.0.1');
  const outcome = new Promise<boolean>((resolve, reject) => {
    socket.once('connect', () => resolve(false));
    // A reset instead of a refusal: the connection reached a listening socket's queue just as
    // that socket closed.
    socket.once('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNREFUSED' ? resolve(true) : err.code === 'ECONNRESET' ? resolve(false) : reject(err)));
  });
  try {
    return await within(outcome, waitMs, `a connect to 127.0.0.1:${port}`);
  } finally {
    socket.destroy();
  }
}

/**
 * A listener closes a moment after the log line that announces it (a stop, a reload), so a
 * connect sent the moment the line arrives may still get in (or be reset). Keep trying, each
 * attempt awaited and none slept for, until one is refused.
 */
export async function refusedSoon(port: number, ms = 3000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) if (await refused(port)) return true;
  return false;
}
