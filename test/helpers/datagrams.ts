// UDP test peers: backends that answer datagrams, and clients that send one and await the
// answer. Everything binds port 0 on loopback and is closed by the caller (or its teardown).

import dgram from 'node:dgram';
import { once } from 'node:events';
import { within } from './sockets.js';

export interface UdpBackend {
  readonly address: string;
  readonly port: number;
  /** Client addresses ("ip:port", as the backend sees lb4) of every datagram it got. */
  readonly seen: string[];
  close(): Promise<void>;
}

export type Answer = (msg: Buffer, from: dgram.RemoteInfo) => Buffer | Buffer[] | null;

/** A UDP backend that answers each datagram with `answer(msg)` (one datagram, several, or none). */
export async function udpBackend(answer: Answer, host = '127.0.0.1'): Promise<UdpBackend> {
  const socket = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  const seen: string[] = [];
  socket.on('message', (msg, from) => {
    seen.push(`${from.address}:${from.port}`);
    const out = answer(msg, from);
    if (out === null) return;
    for (const d of Array.isArray(out) ? out : [out]) socket.send(d, from.port, from.address);
  });
  socket.bind(0, host);
  await once(socket, 'listening');
  const port = socket.address().port;
  return {
    address: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`,
    port,
    seen,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/** Answers each datagram with "<name>:" and the datagram. */
export const namedEcho = (name: string): Answer => (msg) => Buffer.concat([Buffer.from(`${name}:`), msg]);

/** A client socket bound to `localAddress` (an ephemeral port), with a queue of what it receives. */
export class UdpClient {
  readonly socket: dgram.Socket;
  readonly received: Array<{ msg: Buffer; from: dgram.RemoteInfo }> = [];
  #waiters: Array<() => void> = [];

  private constructor(socket: dgram.Socket) {
    this.socket = socket;
    socket.on('message', (msg, from) => {
      this.received.push({ msg, from });
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  static async open(localAddress = '127.0.0.1'): Promise<UdpClient> {
    const socket = dgram.createSocket({ type: localAddress.includes(':') ? 'udp6' : 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
    socket.bind(0, localAddress);
    await once(socket, 'listening');
    return new UdpClient(socket);
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(data: Buffer | string, port: number, host = '127.0.0.1'): Promise<void> {
    return new Promise((resolve, reject) => this.socket.send(typeof data === 'string' ? Buffer.from(data) : data, port, host, (err) => (err ? reject(err) : resolve())));
  }

  /** The next datagram received (in order), within `ms`. */
  async next(ms = 5000, what = 'a reply'): Promise<{ msg: Buffer; from: dgram.RemoteInfo }> {
    while (this.received.length === 0) await within(new Promise<void>((r) => this.#waiters.push(r)), ms, what);
    return this.received.shift()!;
  }

  /** Sends `data` and awaits one reply. */
  async ask(data: Buffer | string, port: number, host = '127.0.0.1', ms = 5000): Promise<Buffer> {
    await this.send(data, port, host);
    return (await this.next(ms, `a reply to ${String(data).slice(0, 20)}`)).msg;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
