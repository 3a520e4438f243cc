// The access log of NAT listeners: the kernel announces each connection tracking entry it
// destroys (`conntrack -E -e DESTROY`), which is the end of a NAT connection or UDP session. One
// long-running `conntrack` process reads the events for the whole table; it is started only while
// the access log is on and a NAT listener exists, and it never keeps the process alive.

import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { parseConntrack, type ConntrackEntry } from './conntrack.js';

/** An ended entry, with how long it lived when the kernel keeps timestamps (else undefined). */
export interface ConntrackEnd {
  readonly entry: ConntrackEntry;
  /** From `delta-time=` (seconds), present with `net.netfilter.nf_conntrack_timestamp=1`. */
  readonly durationMs?: number;
}

/** Parses one event line: `[DESTROY] ipv4 2 tcp 6 src=... ... [delta-time=N]`. */
export function parseDestroyEvent(line: string): ConntrackEnd | undefined {
  const m = /^\s*\[DESTROY\]\s+(.*)$/.exec(line);
  if (!m) return undefined;
  const [entry] = parseConntrack(m[1]);
  if (!entry) return undefined;
  const delta = /delta-time=(\d+)/.exec(m[1]);
  return delta ? { entry, durationMs: Number(delta[1]) * 1000 } : { entry };
}

export class ConntrackEvents {
  readonly #binary: string;
  #child: ChildProcess | null = null;

  constructor(binary = 'conntrack') {
    this.#binary = binary;
  }

  get running(): boolean {
    return this.#child !== null;
  }

  start(onEnd: (end: ConntrackEnd) => void, onError: (message: string) => void): void {
    if (this.#child) return;
    const child = spawn(this.#binary, ['-E', '-e', 'DESTROY', '-o', 'extended,id'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    child.unref();
    (child.stdout as Socket).unref();
    (child.stderr as Socket).unref();
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const end = parseDestroyEvent(line);
      if (end) onEnd(end);
    });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('error', (err) => onError(err.message));
    child.on('exit', (code, signal) => {
      if (this.#child === child) {
        this.#child = null;
        onError(`conntrack -E ended (${signal ?? `exit ${code}`}): ${stderr.trim().split('\n')[0] ?? ''}`);
      }
    });
  }

  stop(): void {
    const child = this.#child;
    this.#child = null;
    child?.kill();
  }
}
