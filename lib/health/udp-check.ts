// The active check of a UDP backend: one datagram out, the first reply judged. UDP has no
// connect to prove a backend alive, so the check is an exchange, as a resolver's or a game
// client's first packet would be. CheckProbe (checkers.ts) hands its udp checks to a UdpProbe,
// which keeps the same life: start, then a result, a timeout or a cancel; close frees it.

import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import { describeError, planFor, quote } from './check-plan.js';
import type { UdpHealthConfig } from './check-options.js';

// The shapes of checkers.ts' CheckTarget and CheckResult (named there; checkers.ts calls in here).
interface CheckTarget {
  readonly ip: string;
  readonly port: number;
}
interface CheckResult {
  readonly ok: boolean;
  readonly reason: string;
  readonly durationMs: number;
}

/**
 * Runs one UDP check at a time. Each check has a socket of its own, connected to the target, so
 * that the kernel drops datagrams from anyone else and reports an ICMP port unreachable as
 * ECONNREFUSED: a refused check fails at once instead of waiting for its timeout.
 */
export class UdpProbe {
  readonly #onResult: (result: CheckResult) => void;
  readonly #now: () => number;
  readonly #unref: boolean;
  #socket: dgram.Socket | null = null;
  #closing: Promise<void> = Promise.resolve();
  #active = false;
  #startedAt = 0;
  #config: UdpHealthConfig | null = null;

  constructor(onResult: (result: CheckResult) => void, options: { now: () => number; unref: boolean }) {
    this.#onResult = onResult;
    this.#now = options.now;
    this.#unref = options.unref;
  }

  get active(): boolean {
    return this.#active;
  }

  start(target: CheckTarget, config: UdpHealthConfig): void {
    if (this.#active) throw new Error('UdpProbe.start: a check is already in flight');
    const plan = planFor(config);
    const ip = config.address ?? target.ip;
    const port = config.port ?? target.port;
    this.#active = true;
    this.#config = config;
    this.#startedAt = this.#now();
    const socket = dgram.createSocket(isIPv6(ip) ? 'udp6' : 'udp4');
    this.#socket = socket;
    socket.on('error', (err: NodeJS.ErrnoException) => this.#finish(socket, false, describeError(err)));
    socket.on('message', (reply) => {
      if (plan.needle === null) return this.#finish(socket, true, `answered (${reply.length} bytes)`);
      const at = reply.indexOf(plan.needle);
      if (at === 0 || (at > 0 && !plan.prefix)) return this.#finish(socket, true, `answered with ${plan.needleText}`);
      this.#finish(socket, false, `wrong answer: got ${quote(reply, plan.hex)} expected ${plan.prefix ? 'to start with ' : ''}${plan.needleText}`);
    });
    socket.connect(port, ip, () => {
      socket.send(plan.send ?? Buffer.alloc(0), (err) => {
        if (err) this.#finish(socket, false, describeError(err));
      });
    });
    if (this.#unref) socket.unref();
  }

  /** Ends the check in flight as failed because its time is up. */
  timeout(): void {
    if (this.#active && this.#socket) this.#finish(this.#socket, false, `no answer within ${this.#config!.timeout}ms`);
  }

  /** Abandons the check in flight, if any, without a result. */
  cancel(): void {
    if (!this.#active) return;
    this.#active = false;
    this.#release();
  }

  /** Cancels any check and resolves once its socket is closed. */
  close(): Promise<void> {
    this.cancel();
    return this.#closing;
  }

  #release(): void {
    const socket = this.#socket;
    this.#socket = null;
    if (!socket) return;
    this.#closing = new Promise((resolve) => socket.close(() => resolve()));
  }

  #finish(socket: dgram.Socket, ok: boolean, reason: string): void {
    // Events of an earlier check's socket (closed, or closing) say nothing about this one.
    if (!this.#active || socket !== this.#socket) return;
    this.#active = false;
    this.#release();
    this.#onResult({ ok, reason, durationMs: this.#now() - this.#startedAt });
  }
}
