// Real-socket helpers for the integration tests: backends on 127.0.0.1 port 0, clients that
// check SHA-256 both ways, and waits with timeouts (a broken data plane fails a test, it never
// hangs it).

import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';

/** Rejects after `ms` with `what` in the message; resolves with `promise` otherwise. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms waiting for ${what}`)), ms);
    }),
  ]);
}

/** Polls `check` (every 10 ms) until it returns true, or fails after `ms`. For state that has no event. */
export async function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface TestBackend {
  server: net.Server;
  port: number;
  address: string;
  /** Sockets currently open on this backend. */
  sockets: Set<net.Socket>;
  /** Connections accepted so far. */
  accepted: number;
  close(): Promise<void>;
}

/** A TCP server on 127.0.0.1:0 that hands each connection to `onConnection`. */
export async function startBackend(onConnection: (socket: net.Socket) => void, options: net.ServerOpts = {}): Promise<TestBackend> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer(options);
  const backend: TestBackend = {
    server,
    port: 0,
    address: '',
    sockets,
    accepted: 0,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  server.on('connection', (socket) => {
    backend.accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onConnection(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  backend.port = (server.address() as net.AddressInfo).port;
  backend.address = `127.0.0.1:${backend.port}`;
  return backend;
}

/** Echoes every byte back and ends when the client ends. */
export function echoBackend(): Promise<TestBackend> {
  return startBackend((s) => s.pipe(s));
}

/** Answers each connection with `name\n` and closes: tells the test which backend took a flow. */
export function nameBackend(name: string): Promise<TestBackend> {
  return startBackend((s) => s.end(`${name}\n`));
}

/** A port on 127.0.0.1 where nothing listens (connects are refused). */
export async function refusingPort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

export function sha256(data: Buffer | Buffer[]): string {
  const h = createHash('sha256');
  for (const b of Array.isArray(data) ? data : [data]) h.update(b);
  return h.digest('hex');
}

/**
 * The integrity backend: a client sends an 8-byte header (how many bytes it wants back), then
 * its payload, then FIN. The backend streams that many random bytes back while it reads, and
 * once it has the client's FIN and has sent everything, appends SHA-256(sent) and
 * SHA-256(received) and ends. So both directions are checked by the client alone.
 */
export function integrityBackend(): Promise<TestBackend> {
  return startBackend(
    (socket) => {
      const received = createHash('sha256');
      const sent = createHash('sha256');
      let header = Buffer.alloc(0);
      let wanted = -1;
      let sendingDone = false;
      let clientDone = false;
      const finish = () => {
        if (!sendingDone || !clientDone) return;
        socket.end(Buffer.concat([sent.digest(), received.digest()]));
      };
      const sendAll = async () => {
        let left = wanted;
        while (left > 0) {
          const chunk = randomBytes(Math.min(left, 256 * 1024));
          left -= chunk.length;
          sent.update(chunk);
          if (!socket.write(chunk)) await once(socket, 'drain');
        }
        sendingDone = true;
        finish();
      };
      socket.on('data', (chunk: Buffer) => {
        if (wanted < 0) {
          header = Buffer.concat([header, chunk]);
          if (header.length < 8) return;
          wanted = Number(header.readBigUInt64BE(0));
          chunk = header.subarray(8);
          void sendAll().catch(() => socket.destroy());
        }
        received.update(chunk);
      });
      socket.on('end', () => {
        clientDone = true;
        finish();
      });
    },
    { allowHalfOpen: true },
  );
}

/**
 * Sends `upBytes` random bytes through `port` to an integrity backend and asks for `downBytes`
 * back; resolves when both directions' SHA-256 match, rejects otherwise.
 */
export async function integrityExchange(port: number, upBytes: number, downBytes: number, timeoutMs = 60_000): Promise<void> {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const sentHash = createHash('sha256');
  const receivedHash = createHash('sha256');
  const chunks: Buffer[] = [];
  let receivedLength = 0;
  // Everything but the last 64 bytes (the backend's two digests) is payload.
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    receivedLength += chunk.length;
    while (chunks.length > 1 && receivedLength - chunks[0].length >= 64) {
      const first = chunks.shift()!;
      receivedLength -= first.length;
      receivedHash.update(first);
    }
  });
  const ended = once(socket, 'end');
  await within(once(socket, 'connect'), timeoutMs, 'connect');
  const header = Buffer.alloc(8);
  header.writeBigUInt64BE(BigInt(downBytes));
  socket.write(header);
  let left = upBytes;
  while (left > 0) {
    const chunk = randomBytes(Math.min(left, 256 * 1024));
    left -= chunk.length;
    sentHash.update(chunk);
    if (!socket.write(chunk)) await within(once(socket, 'drain'), timeoutMs, 'drain');
  }
  socket.end();
  await within(ended, timeoutMs, `the end of a ${upBytes}/${downBytes}-byte exchange`);
  socket.destroy();
  const rest = Buffer.concat(chunks);
  if (rest.length < 64) throw new Error(`stream ended early: ${rest.length} trailing bytes`);
  receivedHash.update(rest.subarray(0, rest.length - 64));
  const backendSent = rest.subarray(rest.length - 64, rest.length - 32).toString('hex');
  const backendReceived = rest.subarray(rest.length - 32).toString('hex');
  const got = receivedHash.digest('hex');
  if (got !== backendSent) throw new Error(`download corrupted (${downBytes} bytes): got ${got}, backend sent ${backendSent}`);
  const put = sentHash.digest('hex');
  if (put !== backendReceived) throw new Error(`upload corrupted (${upBytes} bytes): sent ${put}, backend got ${backendReceived}`);
}

/** Connects to 127.0.0.1:`port` and resolves once connected. */
export async function connect(port: number, options: Partial<net.NetConnectOpts> = {}): Promise<net.Socket> {
  const socket = net.connect({ port, host: '127.0.0.1', ...options } as net.NetConnectOpts);
  await within(once(socket, 'connect'), 10_000, `connect to port ${port}`);
  return socket;
}

/** Reads from `socket` until it ends (or errors); resolves with the bytes and the error, if any. */
export function readAll(socket: net.Socket, timeoutMs = 30_000): Promise<{ data: Buffer; error?: NodeJS.ErrnoException }> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return within(
    new Promise((resolve) => {
      socket.once('error', (error: NodeJS.ErrnoException) => resolve({ data: Buffer.concat(chunks), error }));
      socket.once('close', () => resolve({ data: Buffer.concat(chunks) }));
    }),
    timeoutMs,
    'the socket to close',
  );
}

/** Opens a flow through `port` and returns the name line a nameBackend answers with. */
export async function whoAnswers(port: number): Promise<string> {
  const socket = await connect(port);
  const { data } = await readAll(socket);
  return data.toString().trim();
}
