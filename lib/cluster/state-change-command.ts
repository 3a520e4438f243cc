// `--on-state-change CMD`: a program run on every transition, like keepalived's notify scripts,
// for networks where gratuitous ARP cannot move an address (a cloud's API must be asked to).
//
// The program is run directly, never through a shell: the command line is split into words here
// (quotes and backslashes as a shell reads them, nothing expanded), and what lb4 adds (the new
// state, the VIPs) goes in as separate arguments and environment variables, so no value can
// become shell syntax. It is called as
//
//   CMD [ARGS...] STATE [VIP...]        e.g.  /etc/lb4/move-ip.sh active 192.0.2.10/24
//
// with LB4_CLUSTER_STATE, LB4_CLUSTER_PREVIOUS_STATE, LB4_CLUSTER_REASON, LB4_CLUSTER_NODE_ID,
// LB4_CLUSTER_VIPS (space-separated ADDR/PREFIX) and LB4_CLUSTER_VIP_DEVICES (the interface of
// each, in the same order) in its environment.
//
// One runs at a time, in order. A transition that comes while one runs waits; a later one
// replaces it, since only the newest state says where the address belongs now.

import { spawn } from 'node:child_process';
import type { Logger } from 'pino';
import type { TransitionReason } from './election.js';
import type { ClusterState } from './heartbeat.js';
import { formatVip, type Vip } from './vip.js';

/**
 * Splits a command line into words the way a POSIX shell would without expanding anything:
 * white space separates words, '...' quotes literally, "..." quotes with \" \\ \$ \` as escapes,
 * and a backslash outside quotes escapes the next character. Throws on an unclosed quote.
 */
export function splitCommandLine(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new SyntaxError(`unclosed ' in command: ${line}`);
      word += line.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (c === '"') {
      inWord = true;
      for (i++; ; i++) {
        if (i >= line.length) throw new SyntaxError(`unclosed " in command: ${line}`);
        if (line[i] === '"') break;
        if (line[i] === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1])) i++;
        word += line[i];
      }
    } else if (c === '\\') {
      if (i + 1 < line.length) word += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

export interface StateChange {
  readonly state: ClusterState;
  readonly previous: ClusterState;
  readonly reason: TransitionReason;
  readonly nodeId: string;
  readonly vips: readonly Vip[];
}

export interface StateChangeResult {
  readonly change: StateChange;
  /** Exit code, or null when a signal ended it (see `signal`), or it could not start (`error`). */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly error?: Error;
  readonly timedOut: boolean;
  readonly durationMs: number;
  /** The start of what it printed (stdout and stderr together), for the log. */
  readonly output: string;
}

export interface StateChangeCommandOptions {
  /** The program and its arguments, or a command line to split (see splitCommandLine). */
  readonly command: string | readonly string[];
  /** After this long the program gets SIGTERM, and SIGKILL 2 s later. Default 30 s. */
  readonly timeoutMs?: number;
  readonly logger?: Logger;
  /** The environment the program inherits, before lb4's variables. Default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** Called after each run. */
  readonly onResult?: (result: StateChangeResult) => void;
}

const outputLimit = 4096;
const killGraceMs = 2000;

/**
 * lb4's own secrets, which the program must not inherit: it is often a cloud provider's tool, and
 * a heartbeat key or admin token in its environment is one more place they can leak from (a
 * debug dump, a child it starts in turn).
 */
const secretVariables = ['LB4_CLUSTER_KEY', 'LB4_ADMIN_TOKEN'];

function withoutSecrets(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const copy = { ...env };
  for (const name of secretVariables) delete copy[name];
  return copy;
}

export class StateChangeCommand {
  readonly #argv: readonly string[];
  readonly #options: StateChangeCommandOptions;
  #running: Promise<void> | undefined;
  #pending: StateChange | undefined;
  #replaced = 0;

  constructor(options: StateChangeCommandOptions) {
    const argv = typeof options.command === 'string' ? splitCommandLine(options.command) : [...options.command];
    if (argv.length === 0 || argv[0] === '') throw new TypeError('on-state-change needs a program to run');
    this.#argv = Object.freeze(argv);
    this.#options = options;
  }

  get argv(): readonly string[] {
    return this.#argv;
  }

  /** Transitions that were replaced by a later one before their turn came. */
  get replaced(): number {
    return this.#replaced;
  }

  /** Queues a run for `change` (see the file comment for the order and replacement rule). */
  notify(change: StateChange): void {
    if (this.#pending) {
      this.#replaced++;
      this.#options.logger?.warn({ skipped: this.#pending.state, next: change.state }, 'on-state-change: a later transition replaces one still waiting');
    }
    this.#pending = change;
    if (!this.#running) this.#running = this.#drain();
  }

  /** Resolves once nothing runs and nothing waits. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async #drain(): Promise<void> {
    while (this.#pending) {
      const change = this.#pending;
      this.#pending = undefined;
      const result = await this.#run(change);
      this.#report(result);
    }
    this.#running = undefined;
  }

  #report(r: StateChangeResult): void {
    const log = this.#options.logger;
    const fields = { command: this.#argv[0], state: r.change.state, code: r.code, signal: r.signal, durationMs: Math.round(r.durationMs), output: r.output || undefined };
    if (r.error) log?.error({ ...fields, err: r.error }, 'on-state-change could not run');
    else if (r.timedOut) log?.error(fields, 'on-state-change timed out and was killed');
    else if (r.code !== 0) log?.warn(fields, 'on-state-change failed');
    else log?.info(fields, 'on-state-change ran');
    try {
      this.#options.onResult?.(r);
    } catch (err) {
      log?.error({ err }, 'on-state-change result callback threw');
    }
  }

  #run(change: StateChange): Promise<StateChangeResult> {
    const started = performance.now();
    const vips = change.vips.map(formatVip);
    const env: NodeJS.ProcessEnv = {
      ...withoutSecrets(this.#options.env ?? process.env),
      LB4_CLUSTER_STATE: change.state,
      LB4_CLUSTER_PREVIOUS_STATE: change.previous,
      LB4_CLUSTER_REASON: change.reason,
      LB4_CLUSTER_NODE_ID: change.nodeId,
      LB4_CLUSTER_VIPS: vips.join(' '),
      LB4_CLUSTER_VIP_DEVICES: change.vips.map((v) => v.dev).join(' '),
    };
    return new Promise((resolve) => {
      let output = '';
      let timedOut = false;
      let killTimer: NodeJS.Timeout | undefined;
      // Its own process group, so a timeout stops what it started too (`sh -c '... &'`, a cloud
      // CLI's helpers): those would hold its output open and outlive the command.
      const child = spawn(this.#argv[0], [...this.#argv.slice(1), change.state, ...vips], { env, stdio: ['ignore', 'pipe', 'pipe'], shell: false, detached: true });
      const signalGroup = (signal: NodeJS.Signals) => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, signal);
        } catch {
          child.kill(signal); // the group is gone already; the child itself, if it is not
        }
      };
      const collect = (chunk: Buffer) => {
        if (output.length < outputLimit) output += chunk.toString('utf8').slice(0, outputLimit - output.length);
      };
      child.stdout.on('data', collect);
      child.stderr.on('data', collect);
      const timer = setTimeout(() => {
        timedOut = true;
        signalGroup('SIGTERM');
        killTimer = setTimeout(() => signalGroup('SIGKILL'), killGraceMs);
      }, this.#options.timeoutMs ?? 30_000);
      const done = (code: number | null, signal: NodeJS.Signals | null, error?: Error) => {
        clearTimeout(timer);
        clearTimeout(killTimer);
        resolve({ change, code, signal, error, timedOut, durationMs: performance.now() - started, output: output.trim() });
      };
      // 'error' comes instead of 'close' when the program cannot be started (ENOENT, EACCES).
      child.once('error', (err) => done(null, null, err));
      child.once('close', (code, signal) => done(code, signal));
    });
  }
}
