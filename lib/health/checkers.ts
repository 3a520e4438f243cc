// The active checks themselves: TCP connect, a minimal HTTP/1.1 request, and send/expect for any
// TCP protocol. They use node:net directly (node:http's agent, parser and request objects would
// cost more than the check), never block, and never read more than `maxResponseBytes`.
//
// A monitor checks each target every second or so, for thousands of targets, so the cost per
// check is what counts (bench/health-check-cost.mjs):
// - `CheckProbe` is made once per target and reused for every check: its event handlers are bound
//   once, and it reconnects the same net.Socket after 'close' (which net documents as supported),
//   so a check allocates no socket object, no closures and no promise.
// - Connected sockets are closed with a reset (SO_LINGER 0). A normal close would leave the
//   checker's side in TIME_WAIT for 60 s: at 1,000 checks a second that is 60,000 sockets holding
//   ephemeral ports, and making every later connect search longer for a free port. HAProxy closes
//   its checks the same way.
// - The probe has no timer of its own: whoever runs it calls `timeout()` (the monitor from its one
//   shared timer, `runCheck` from one timer per check).

import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { formatHostPort } from '../config/address.js';
import { contentLength, describeError, headerEnd, httpPrefix, planFor, quote, statusLine, type Plan } from './check-plan.js';
import type { HealthConfig } from './check-options.js';
import { UdpProbe } from './udp-check.js';

/** Where a check connects: a numeric IP address and a port. */
export interface CheckTarget {
  readonly ip: string;
  readonly port: number;
}

/** The outcome of one check. */
export interface CheckResult {
  readonly ok: boolean;
  /** What happened, for a person: `connected`, `HTTP 503 (expected 200-399)`, `timed out after 1000ms connecting`. */
  readonly reason: string;
  /** From the start of the connect to the verdict, in (fractional) milliseconds. */
  readonly durationMs: number;
}

/**
 * The most a check reads from a backend: an HTTP response (status line, headers and the part of
 * the body searched for `expectBody`) or a send-expect reply. Bounds memory and time per check.
 */
export const maxResponseBytes = 65_536;

function noop(): void {}

/**
 * One target's checker, reused for every check of that target: at most one check in flight.
 * Reports each check's result once through `onResult`, never synchronously from `start()` for a
 * network outcome.
 *
 * @internal The monitor's building block; use {@link runCheck} for a single check.
 */
export class CheckProbe {
  readonly #onResult: (result: CheckResult) => void;
  readonly #now: () => number;
  readonly #unref: boolean;
  #socket: net.Socket | null = null;
  /** Whether #socket listens for data (http, send-expect) or not (tcp, which never reads). */
  #socketReads = false;
  /** #socket has emitted 'close', so it may connect again. */
  #socketClosed = true;
  #closeWaiters: Array<() => void> = [];

  #active = false;
  #connected = false;
  #plan: Plan | null = null;
  #startedAt = 0;
  /** The HTTP request for #requestIp:#requestPort under #requestPlan, kept across checks. */
  #request: Buffer | null = null;
  #requestPlan: Plan | null = null;
  #requestIp = '';
  #requestPort = 0;
  // What the backend sent in this check: #buffer[0, #length). The first chunk is kept as is;
  // only a reply in several chunks is copied, into a buffer that grows by doubling.
  #buffer: Buffer | null = null;
  #length = 0;
  #owned = false;
  /** Offset from which the next search for the needle starts. */
  #searchFrom = 0;
  #status = 0;
  #bodyStart = -1;
  #bodyEnd = -1;
  /** UDP checks go to a probe of their own, made on the first one. */
  #udp: UdpProbe | null = null;

  /**
   * @param onResult - called once per check with its result.
   * @param options.now - clock for durations (ms); default `performance.now`.
   * @param options.unref - let the process exit while a check is in flight.
   */
  constructor(onResult: (result: CheckResult) => void, options: { now?: () => number; unref?: boolean } = {}) {
    this.#onResult = onResult;
    this.#now = options.now ?? (() => performance.now());
    this.#unref = options.unref ?? false;
  }

  /** Whether a check is in flight. */
  get active(): boolean {
    return this.#active || (this.#udp?.active ?? false);
  }

  /** Starts a check of `config` against `target` (or against `config.address`/`config.port` when set). */
  start(target: CheckTarget, config: HealthConfig): void {
    if (this.active) throw new Error('CheckProbe.start: a check is already in flight');
    if (config.type === 'udp') {
      this.#udp ??= new UdpProbe(this.#onResult, { now: this.#now, unref: this.#unref });
      this.#udp.start(target, config);
      return;
    }
    const plan = planFor(config);
    this.#plan = plan;
    this.#active = true;
    this.#connected = false;
    this.#buffer = null;
    this.#length = 0;
    this.#owned = false;
    this.#searchFrom = 0;
    this.#status = 0;
    this.#bodyStart = -1;
    this.#bodyEnd = -1;
    const ip = config.address ?? target.ip;
    const port = config.port ?? target.port;
    if (plan.kind === 'http') this.#prepareRequest(plan, ip, port);
    const socket = this.#freshSocket(plan.kind !== 'tcp');
    this.#startedAt = this.#now();
    try {
      socket.connect(port, ip);
    } catch (err) {
      // Only arguments that validation already rules out throw here; report, don't crash.
      this.#finish(false, (err as Error).message);
      return;
    }
    if (this.#unref) socket.unref();
  }

  /** Ends the check in flight as failed because its time is up. */
  timeout(): void {
    this.#udp?.timeout();
    if (!this.#active) return;
    const plan = this.#plan!;
    let reason = plan.timeoutReason;
    if (!this.#connected) {
      reason += ' connecting';
    } else if (plan.kind === 'http') {
      reason += this.#status === 0 ? ' waiting for the HTTP status line' : ` reading the body: no ${plan.needleText} yet`;
    } else if (plan.kind === 'send-expect') {
      reason += ` waiting for ${plan.needleText}`;
      if (this.#length > 0) reason += `: got ${quote(this.#received(), plan.hex)}`;
    }
    this.#finish(false, reason);
  }

  /** Abandons the check in flight, if any, without a result. */
  cancel(): void {
    this.#udp?.cancel();
    if (!this.#active) return;
    this.#active = false;
    this.#release();
  }

  /** Cancels any check and resolves once the socket is closed: the probe holds no descriptor then. */
  close(): Promise<void> {
    this.cancel();
    const udp = this.#udp?.close() ?? Promise.resolve();
    if (this.#socketClosed || this.#socket === null) return udp;
    return Promise.all([udp, new Promise<void>((resolve) => this.#closeWaiters.push(resolve))]).then(() => undefined);
  }

  // --- socket ------------------------------------------------------------------------------

  /**
   * The socket for the next check: the previous one when it has closed cleanly and listens the
   * same way; otherwise a new one (the old one, if still closing, is left to finish on its own).
   */
  #freshSocket(reads: boolean): net.Socket {
    const old = this.#socket;
    if (old !== null && this.#socketClosed && this.#socketReads === reads && old.readableLength === 0 && old.writableLength === 0) {
      this.#socketClosed = false;
      return old;
    }
    if (old !== null) {
      old.removeAllListeners();
      old.on('error', noop);
      old.destroy();
      for (const resolve of this.#closeWaiters.splice(0)) resolve();
    }
    // allowHalfOpen: net would otherwise answer the backend's FIN with a shutdown of its own, and
    // a socket that is shutting down can no longer be closed with a reset.
    const socket = new net.Socket({ allowHalfOpen: true });
    socket.on('connect', this.#onConnect);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    if (reads) {
      socket.on('data', this.#onData);
      socket.on('end', this.#onEnd);
    }
    this.#socket = socket;
    this.#socketReads = reads;
    this.#socketClosed = false;
    return socket;
  }

  #release(): void {
    const socket = this.#socket!;
    this.#buffer = null;
    if (this.#connected && !socket.destroyed) socket.resetAndDestroy();
    else socket.destroy();
  }

  #finish(ok: boolean, reason: string): void {
    if (!this.#active) return;
    this.#active = false;
    this.#release();
    this.#onResult({ ok, reason, durationMs: this.#now() - this.#startedAt });
  }

  readonly #onConnect = (): void => {
    if (!this.#active) return;
    this.#connected = true;
    const plan = this.#plan!;
    if (plan.kind === 'tcp') this.#finish(true, 'connected');
    else if (plan.kind === 'http') this.#socket!.write(this.#request!);
    else if (plan.send !== null) this.#socket!.write(plan.send);
  };

  readonly #onError = (err: NodeJS.ErrnoException): void => {
    if (this.#active) this.#finish(false, describeError(err));
  };

  readonly #onClose = (): void => {
    this.#socketClosed = true;
    // Without 'end' or 'error' first: only a destroy from outside the probe gets here.
    if (this.#active) this.#finish(false, 'connection closed');
    for (const resolve of this.#closeWaiters.splice(0)) resolve();
  };

  readonly #onData = (chunk: Buffer): void => {
    if (!this.#active) return;
    const full = this.#append(chunk);
    if (this.#plan!.kind === 'http') this.#onHttpData(full);
    else this.#onReply(full);
  };

  readonly #onEnd = (): void => {
    if (!this.#active) return;
    const plan = this.#plan!;
    if (plan.kind === 'http') {
      if (this.#status === 0) {
        this.#finish(false, this.#length === 0 ? 'connection closed before the HTTP status line' : `connection closed in the HTTP status line: got ${quote(this.#received(), false)}`);
      } else {
        this.#finish(false, `body lacks ${plan.needleText}`);
      }
    } else if (this.#length === 0) {
      this.#finish(false, 'connection closed before expected bytes');
    } else {
      this.#finish(false, `banner mismatch: got ${quote(this.#received(), plan.hex)} expected ${plan.needleText}`);
    }
  };

  // --- replies -----------------------------------------------------------------------------

  #received(): Buffer {
    return this.#buffer!.subarray(0, this.#length);
  }

  /** Adds a chunk (up to maxResponseBytes in all); returns whether the limit is reached. */
  #append(chunk: Buffer): boolean {
    const room = maxResponseBytes - this.#length;
    const take = chunk.length <= room ? chunk.length : room;
    if (this.#buffer === null) {
      this.#buffer = chunk;
    } else {
      const need = this.#length + take;
      if (!this.#owned || need > this.#buffer.length) {
        const grown = Buffer.allocUnsafe(Math.min(maxResponseBytes, Math.max(need, 2 * this.#length, 1024)));
        this.#buffer.copy(grown, 0, 0, this.#length);
        this.#buffer = grown;
        this.#owned = true;
      }
      chunk.copy(this.#buffer, this.#length, 0, take);
    }
    this.#length += take;
    return this.#length >= maxResponseBytes;
  }

  /** Searches the needle in [#searchFrom, end); remembers where the next search starts. */
  #search(end: number): boolean {
    const needle = this.#plan!.needle!;
    const found = this.#buffer!.subarray(0, end).indexOf(needle, this.#searchFrom) >= 0;
    // A needle cut across two chunks must still be found: the next search backs up by its length.
    this.#searchFrom = Math.max(this.#searchFrom, end - needle.length + 1);
    return found;
  }

  #onReply(full: boolean): void {
    const plan = this.#plan!;
    if (this.#search(this.#length)) this.#finish(true, `got ${plan.needleText}`);
    else if (full) this.#finish(false, `banner mismatch: no ${plan.needleText} in the first ${maxResponseBytes} bytes`);
  }

  #onHttpData(full: boolean): void {
    const plan = this.#plan!;
    const buffer = this.#buffer!;
    if (this.#status === 0) {
      // Fail fast on something that is not HTTP at all (a TLS port, an SSH banner).
      const prefix = Math.min(this.#length, httpPrefix.length);
      if (buffer.compare(httpPrefix, 0, prefix, 0, prefix) !== 0) {
        this.#finish(false, `not an HTTP response: got ${quote(this.#received(), false)}`);
        return;
      }
      const lineEnd = buffer.subarray(0, this.#length).indexOf(0x0a);
      if (lineEnd < 0) {
        if (full) this.#finish(false, `not an HTTP response: no status line in the first ${maxResponseBytes} bytes`);
        return;
      }
      const match = statusLine.exec(buffer.toString('latin1', 0, lineEnd));
      if (!match) {
        this.#finish(false, `not an HTTP response: got ${quote(buffer.subarray(0, lineEnd), false)}`);
        return;
      }
      this.#status = Number(match[1]);
      if (this.#status < plan.statusLow || this.#status > plan.statusHigh) {
        this.#finish(false, `HTTP ${this.#status} (expected ${plan.statusText})`);
        return;
      }
      if (plan.needle === null) {
        this.#finish(true, `HTTP ${this.#status}`);
        return;
      }
      // The header block's end may share the status line's CRLF (a response without headers).
      this.#searchFrom = Math.max(0, lineEnd - 1);
    }
    if (this.#bodyStart < 0) {
      const end = buffer.subarray(0, this.#length).indexOf(headerEnd, this.#searchFrom);
      if (end < 0) {
        this.#searchFrom = Math.max(this.#searchFrom, this.#length - headerEnd.length + 1);
        if (full) this.#finish(false, `body lacks ${plan.needleText}: the headers fill the first ${maxResponseBytes} bytes`);
        return;
      }
      this.#bodyStart = end + headerEnd.length;
      this.#searchFrom = this.#bodyStart;
      const length = contentLength.exec(buffer.toString('latin1', 0, end));
      if (length) this.#bodyEnd = this.#bodyStart + Number(length[1]);
    }
    // With a Content-Length the verdict need not wait for the backend to close.
    const bodyEnd = this.#bodyEnd >= 0 ? Math.min(this.#bodyEnd, this.#length) : this.#length;
    if (this.#search(bodyEnd)) this.#finish(true, `HTTP ${this.#status}, body has ${plan.needleText}`);
    else if (this.#bodyEnd >= 0 && this.#length >= this.#bodyEnd) this.#finish(false, `body lacks ${plan.needleText}`);
    else if (full) this.#finish(false, `body lacks ${plan.needleText} in the first ${maxResponseBytes} bytes of the response`);
  }

  #prepareRequest(plan: Plan, ip: string, port: number): void {
    if (this.#request !== null && this.#requestPlan === plan && this.#requestIp === ip && this.#requestPort === port) return;
    const host = plan.host ?? (port === 80 ? formatHostPort(ip, port).replace(/:80$/, '') : formatHostPort(ip, port));
    this.#request = Buffer.from(`${plan.requestHead}${host}\r\nConnection: close\r\nUser-Agent: lb4-health\r\n\r\n`, 'latin1');
    this.#requestPlan = plan;
    this.#requestIp = ip;
    this.#requestPort = port;
  }
}

/**
 * Runs one health check of `config` against `target` (or against `config.address`/`config.port`
 * when set) and resolves with its result; it never rejects. The socket is closed (with a reset
 * once connected, so no TIME_WAIT is left behind) before the promise resolves.
 *
 * - `tcp`: passes once connected.
 * - `http`: sends `METHOD path HTTP/1.1` with `Host`, `Connection: close` and
 *   `User-Agent: lb4-health`; passes on a status in `expectStatus` and, if set, once `expectBody`
 *   appears in the body (searched in the raw bytes, so a match cut by chunked encoding is missed).
 * - `send-expect`: sends `send`, passes once `expect` appears anywhere in what the backend sent;
 *   fails on close, on timeout, or after {@link maxResponseBytes} without it.
 *
 * @example
 * ```ts
 * const result = await runCheck({ ip: '10.0.0.5', port: 80 }, validateHealthConfig('http:/healthz', 'health'));
 * // { ok: false, reason: 'HTTP 503 (expected 200-399)', durationMs: 1.8 }
 * ```
 */
export function runCheck(target: CheckTarget, config: HealthConfig): Promise<CheckResult> {
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined = undefined;
    const probe = new CheckProbe((result) => {
      clearTimeout(timer);
      resolve(result);
    });
    timer = setTimeout(() => probe.timeout(), config.timeout);
    probe.start(target, config);
  });
}
