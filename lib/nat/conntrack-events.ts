// The access log of NAT listeners: the kernel announces each connection tracking entry it
// destroys (`conntrack -E -e DESTROY`), which is the end of a NAT connection or UDP session. One
// long-running `conntrack` process reads the events for the whole table; it is started only while
// the access log is on and a NAT listener exists, and it never keeps the process alive.
//
// The kernel drops events its netlink socket cannot take (ENOBUFS): `conntrack` then prints a
// warning and goes on. With the socket's default buffer that happened at 15-19k connections/s on
// lb4's build machine; with `eventBufferBytes` it did not. Each warning is counted and reported
// through `onOverflow`, so a lossy access log says so instead of going quiet.

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

/**
 * The event socket's receive buffer: 16 MiB, asked with `--buffer-size` (conntrack forces it past
 * `net.core.rmem_max` as root). Kernel memory is taken only while events wait to be read.
 */
export const eventBufferBytes = 16 << 20;

/** The line `conntrack` prints each time the kernel dropped events for want of buffer space. */
const overflowWarning = /We have hit ENOBUFS/;
/** That warning's lines of advice, which say nothing about why the tool ended. */
const overflowAdvice = /We have hit ENOBUFS|This message means that the current netlink socket buffer|check --buffer-size/;

/** The most of the tool's stderr kept for an error message: it may print a warning per overflow for days. */
const stderrTailBytes = 4096;

export class ConntrackEvents {
  readonly #binary: string;
  #child: ChildProcess | null = null;

  constructor(binary = 'conntrack') {
    this.#binary = binary;
  }

  get running(): boolean {
    return this.#child !== null;
  }

  /**
   * Starts reading events. `onOverflow` is called each time the kernel reports events dropped
   * (how many it does not say).
   */
  start(onEnd: (end: ConntrackEnd) => void, onError: (message: string) => void, onOverflow: () => void = () => {}): void {
    if (this.#child) return;
    const args = ['-E', '-e', 'DESTROY', '-o', 'extended,id', '--buffer-size', String(eventBufferBytes)];
    const child = spawn(this.#binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    child.unref();
    (child.stdout as Socket).unref();
    (child.stderr as Socket).unref();
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const end = parseDestroyEvent(line);
      if (end) onEnd(end);
    });
    let stderr = '';
    createInterface({ input: child.stderr! }).on('line', (line) => {
      if (overflowWarning.test(line)) onOverflow();
      stderr = `${stderr}${line}\n`.slice(-stderrTailBytes);
    });
    child.on('error', (err) => onError(err.message));
    // 'close', not 'exit': by then every line the tool wrote to stderr has been read.
    child.on('close', (code, signal) => {
      if (this.#child === child) {
        this.#child = null;
        const last = stderr.trim().split('\n').filter((l) => !overflowAdvice.test(l)).at(-1) ?? '';
        onError(`conntrack -E ended (${signal ?? `exit ${code}`}): ${last}`);
      }
    });
  }

  stop(): void {
    const child = this.#child;
    this.#child = null;
    child?.kill();
  }
}
