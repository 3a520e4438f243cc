// Every process the bench starts goes through here, so that every one of them is stopped at the
// end, on an error and on SIGINT/SIGTERM: no haproxy, nginx, iperf3 or wrk is left behind.
//
// Each child runs under `sh -c 'ulimit -n ...; exec "$@"'`: the limit is raised (we run as root)
// and `exec` makes the child's pid the program's own pid, which is the pid /proc is read for.
// Each child leads its own process group (detached), so a Ctrl-C in the terminal reaches only
// the bench, which then stops the groups itself, nginx workers included.

import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { isListening, isUdpBound } from './proc.mjs';

/** The descriptor limit the bench would like for every child: 10,000 idle flows need 20,000+ in a proxy. */
export const WANTED_FD_LIMIT = 200_000;

/**
 * The limit children actually get: the wanted one if it can be raised that far, else the hard
 * limit (raising it needs CAP_SYS_RESOURCE, which root inside a container may not have).
 */
const probed = execFileSync('sh', ['-c', `ulimit -n ${WANTED_FD_LIMIT} 2>/dev/null && echo ${WANTED_FD_LIMIT} || ulimit -Hn`], { encoding: 'utf8' }).trim();
export const FD_LIMIT = /^\d+$/.test(probed) ? Number(probed) : WANTED_FD_LIMIT;

/** Idle flows a proxy can hold under FD_LIMIT: two descriptors each, plus room for the rest. */
export const MAX_IDLE_FLOWS = Math.floor((FD_LIMIT - 1000) / 2);

/** @type {Set<Child>} */
const live = new Set();
/** @type {Set<string>} */
const tempDirs = new Set();

/**
 * @typedef {object} Child
 * @property {string} name
 * @property {number} pid
 * @property {import('node:child_process').ChildProcess} proc
 * @property {() => string} stdout everything written so far
 * @property {() => string} stderr everything written so far (the last 64 KiB)
 * @property {Promise<{code: number | null, signal: string | null}>} exited
 * @property {boolean} running
 */

function keepTail(text, max = 64 * 1024) {
  return text.length > max ? text.slice(text.length - max) : text;
}

/**
 * Starts a program with a raised descriptor limit.
 * @param {string} name for messages
 * @param {string} file program
 * @param {string[]} args
 * @param {{cwd?: string, env?: NodeJS.ProcessEnv, stdin?: boolean, stdoutLimit?: number, netns?: string | null}} [options]
 *   stdoutLimit: how much of the end of stdout is kept (default 1 MiB); netns: run it inside this
 *   network namespace (`ip netns exec` execs the program, so the pid is still the program's own)
 * @returns {Child}
 */
export function start(name, file, args, options = {}) {
  const argv = options.netns ? ['ip', 'netns', 'exec', options.netns, file, ...args] : [file, ...args];
  const proc = spawn('sh', ['-c', `ulimit -n ${FD_LIMIT} && exec "$@"`, 'sh', ...argv], {
    cwd: options.cwd,
    env: options.env ?? process.env,
    detached: true,
    stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8').on('data', (d) => (out = keepTail(out + d, options.stdoutLimit ?? 1 << 20)));
  proc.stderr.setEncoding('utf8').on('data', (d) => (err = keepTail(err + d)));
  /** @type {Child} */
  const child = {
    name,
    pid: proc.pid ?? -1,
    proc,
    stdout: () => out,
    stderr: () => err,
    running: true,
    exited: new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        child.running = false;
        live.delete(child);
        resolve({ code, signal });
      });
      proc.on('error', (e) => {
        err += `\nspawn error: ${e.message}`;
        child.running = false;
        live.delete(child);
        resolve({ code: -1, signal: null });
      });
    }),
  };
  live.add(child);
  return child;
}

/**
 * Runs a program to completion (with a time limit) and returns its output.
 * @param {string} name
 * @param {string} file
 * @param {string[]} args
 * @param {number} timeoutMs
 * @param {{stdoutLimit?: number, netns?: string | null}} [options] as for start()
 * @returns {Promise<{code: number | null, signal: string | null, stdout: string, stderr: string, timedOut: boolean}>}
 */
export async function run(name, file, args, timeoutMs, options = {}) {
  const child = start(name, file, args, options);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    signalGroup(child, 'SIGKILL');
  }, timeoutMs);
  const { code, signal } = await child.exited;
  clearTimeout(timer);
  // 'exit' can come before the pipes are drained.
  await sleep(20);
  return { code, signal, stdout: child.stdout(), stderr: child.stderr(), timedOut };
}

function signalGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/**
 * Stops a child: `signal` to its process group, then SIGKILL after `graceMs`.
 * @param {Child} child
 * @param {NodeJS.Signals} [signal]
 * @param {number} [graceMs]
 */
export async function stop(child, signal = 'SIGTERM', graceMs = 3000) {
  if (child.running) {
    signalGroup(child, signal);
    const t = setTimeout(() => signalGroup(child, 'SIGKILL'), graceMs);
    await child.exited;
    clearTimeout(t);
  }
  // The leader may exit before its workers (nginx): make sure the group is gone too.
  signalGroup(child, 'SIGKILL');
}

/**
 * Waits until host:port (127.0.0.1 by default) is listening (TCP) and bound (UDP) as `protocols`
 * says, in the child's own network namespace, or fails with the child's own words if it exits.
 * @param {Child} child
 * @param {number} port
 * @param {number} [timeoutMs]
 * @param {Array<'tcp' | 'udp'>} [protocols]
 * @param {string} [host]
 */
export async function waitListening(child, port, timeoutMs = 10_000, protocols = ['tcp'], host = '127.0.0.1') {
  const ready = () => protocols.every((p) => (p === 'udp' ? isUdpBound(port, host, child.pid) : isListening(port, host, child.pid)));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!child.running) {
      const lines = `${child.stderr()}\n${child.stdout()}`.split('\n').map((l) => l.trim()).filter(Boolean);
      // Node's own errors put the useful line ("Error [ERR_...]: ...") first, other programs last.
      const key = lines.find((l) => /error|alert|emerg/i.test(l)) ?? lines.at(-1) ?? '(no output)';
      throw new Error(`${child.name} exited before listening on port ${port}: ${key}`);
    }
    if (ready()) return;
    await sleep(20);
  }
  throw new Error(`${child.name} did not listen on port ${port} (${protocols.join('+')}) within ${timeoutMs} ms`);
}

/**
 * A port that was free a moment ago: bind 127.0.0.1:0, read the port, close. Configs of
 * HAProxy and nginx need concrete ports; the tiny race is accepted. The UDP scenarios bind the
 * port for UDP too (iperf3's UDP test also needs TCP on it), so the port must be free for both.
 * @returns {Promise<number>}
 */
export async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const { port: p } = /** @type {import('node:net').AddressInfo} */ (server.address());
        server.close(() => resolve(p));
      });
    });
    if (!isUdpBound(port)) return port;
  }
}

/** Registers a directory to delete at exit. @param {string} dir */
export function removeAtExit(dir) {
  tempDirs.add(dir);
}

/** @type {Array<() => void>} synchronous, run after the children are killed, newest first */
const cleanupSteps = [];

/**
 * Registers a synchronous step for the end of the run (also on SIGINT/SIGTERM and errors), after
 * every child is killed: deleting namespaces or an nftables table a killed child left behind.
 * @param {() => void} step
 */
export function atCleanup(step) {
  cleanupSteps.push(step);
}

/** Kills every live child, runs the cleanup steps and removes the temp directories, synchronously. */
export function cleanupNow() {
  for (const child of live) signalGroup(child, 'SIGKILL');
  live.clear();
  while (cleanupSteps.length > 0) {
    try {
      cleanupSteps.pop()();
    } catch (e) {
      process.stderr.write(`bench: cleanup: ${e.message}\n`);
    }
  }
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

/** Stops every live child politely, then removes the temp directories. */
export async function cleanup() {
  await Promise.all([...live].map((c) => stop(c, 'SIGTERM', 1500)));
  cleanupNow();
}

let installed = false;
/** Installs the exit and signal handlers once. */
export function installCleanupHandlers() {
  if (installed) return;
  installed = true;
  process.on('exit', cleanupNow);
  for (const signal of /** @type {NodeJS.Signals[]} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) {
    process.on(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping ${live.size} process(es) and cleaning up\n`);
      cleanupNow();
      process.exit(130);
    });
  }
}

/**
 * The top of an nginx config that runs in the foreground with everything under `dir`: the part
 * the HTTP backend and the nginx stream proxy share.
 * @param {{ dir: string, workers: number }} o
 */
export function nginxPreamble({ dir, workers }) {
  return `worker_processes ${workers};
daemon off;
master_process on;
user root;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
worker_rlimit_nofile ${FD_LIMIT};
events { worker_connections ${FD_LIMIT - 100}; }`;
}
