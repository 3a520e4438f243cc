// The access log of NAT listeners: the kernel announces each connection tracking entry it
// destroys (`conntrack -E -e DESTROY`), which is the end of a NAT connection or UDP session. One
// long-running `conntrack` process reads the events for the whole table; it is started only while
// the access log is on and a NAT listener exists, and it never keeps the process alive.
//
// The kernel drops events the tool's netlink socket has no room for (ENOBUFS): `conntrack` then
// prints a warning and goes on. On lb4's build machine that happened at 15-19k ended
// connections/s. Each warning is counted and reported through `onOverflow`, so a lossy access
// log says so instead of going quiet. `--buffer-size` is not the remedy: conntrack 1.4.7 (Debian
// 12) applies it to another of its sockets, not the one the events arrive on (`ss -f netlink -m`
// shows the subscribed socket keeping `net.core.rmem_default`, which therefore sets its size).

import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
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

/** The line `conntrack` prints each time the kernel dropped events for want of buffer space. */
const overflowWarning = /We have hit ENOBUFS/;
/** Lines that say nothing about why the tool ended: the overflow warning's advice, notices. */
const notAReason = /We have hit ENOBUFS|This message means that the current netlink socket buffer|check --buffer-size|^NOTICE:/;

/** The most of the tool's stderr kept for an error message: it may print a warning per overflow for days. */
const stderrTailBytes = 4096;
/** The longest line read (an event line is some 300 bytes): past it, the rest of the line is dropped. */
export const maxLineBytes = 64 << 10;

/**
 * Calls `onLine` for each line of `stream`, holding at most `maxLineBytes` of a line: a tool that
 * writes without newlines cannot make lb4 hold its output. Returns a function that stops it.
 */
function eachLine(stream: Readable, onLine: (line: string) => void): () => void {
  let partial = '';
  let overlong = false;
  const onData = (chunk: Buffer | string) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!overlong) onLine(line);
      overlong = false;
    }
    if (partial.length > maxLineBytes) {
      partial = '';
      overlong = true;
    }
  };
  const onEnd = () => {
    if (partial && !overlong) onLine(partial);
    partial = '';
  };
  stream.on('data', onData);
  stream.on('end', onEnd);
  return () => {
    stream.off('data', onData);
    stream.off('end', onEnd);
  };
}

export class ConntrackEvents {
  readonly #binary: string;
  #child: ChildProcess | null = null;
  #stopReading: (() => void) | null = null;

  constructor(binary = 'conntrack') {
    this.#binary = binary;
  }

  get running(): boolean {
    return this.#child !== null;
  }

  /**
   * Starts reading events. `onOverflow` is called each time the kernel reports events dropped
   * (how many it does not say). `onError` is called once when the stream ends, with why.
   */
  start(onEnd: (end: ConntrackEnd) => void, onError: (message: string) => void, onOverflow: () => void = () => {}): void {
    if (this.#child) return;
    const child = spawn(this.#binary, ['-E', '-e', 'DESTROY', '-o', 'extended,id'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    child.unref();
    (child.stdout as Socket).unref();
    (child.stderr as Socket).unref();
    let tail = '';
    let failed = false;
    const current = () => this.#child === child;
    // stop() removes these readers, so they only ever hear the current child.
    const stopReading = [
      eachLine(child.stdout!, (line) => {
        const end = parseDestroyEvent(line);
        if (end) onEnd(end);
      }),
      eachLine(child.stderr!, (line) => {
        if (overflowWarning.test(line)) onOverflow();
        tail = `${tail}${line}\n`.slice(-stderrTailBytes);
      }),
    ];
    this.#stopReading = () => stopReading.forEach((stop) => stop());
    child.on('error', (err) => {
      if (!current() || failed) return;
      failed = true;
      onError(err.message);
    });
    // 'close', not 'exit': by then every line the tool wrote to stderr has been read. A child that
    // failed to start ('error') has been reported already.
    child.on('close', (code, signal) => {
      if (!current()) return;
      this.#child = null;
      this.#stopReading = null;
      if (failed) return;
      const reason = tail.trim().split('\n').filter((l) => !notAReason.test(l)).at(-1) ?? '';
      onError(`conntrack -E ended (${signal ?? `exit ${code}`}): ${reason}`);
    });
  }

  /** Stops the tool; nothing it wrote and was not read yet is delivered after this. */
  stop(): void {
    const child = this.#child;
    this.#child = null;
    this.#stopReading?.();
    this.#stopReading = null;
    child?.kill();
  }
}
