// Forwarding through the real data plane: integrity both ways at many sizes and concurrently,
// 1,000 concurrent flows, half-close in both directions, reset propagation, and proof that the
// payload moved by splice(2).

import { once } from 'node:events';
import net from 'node:net';
import t from 'tap';
import { startBalancer } from '../../lib/index.js';
import { connect, echoBackend, integrityBackend, integrityExchange, readAll, sha256, startBackend, until, within } from '../helpers/sockets.js';
import { randomBytes } from 'node:crypto';

const MiB = 1024 * 1024;

t.test('bytes arrive intact both ways, 1 byte to 64 MiB, on concurrent flows', async (t) => {
  const backend = await integrityBackend();
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [backend.address], workers: 2 });
  t.teardown(async () => {
    await lb.close({ drainTimeout: 0 });
    await backend.close();
  });
  const port = lb.address().port;
  const sizes = [0, 1, 7, 1000, 65535, 65536, 65537, MiB + 13, 8 * MiB, 64 * MiB];
  // Every size up with a different size down, all at once.
  const exchanges = sizes.map((up, i) => integrityExchange(port, up, sizes[(i + 3) % sizes.length]));
  await Promise.all(exchanges);
  t.pass(`${sizes.length} concurrent flows verified with SHA-256 both ways`);
  // A second round with 32 flows of 1 MiB each way, to exercise both workers and pipe reuse.
  await Promise.all(Array.from({ length: 32 }, () => integrityExchange(port, MiB, MiB)));
  t.pass('32 concurrent 1 MiB/1 MiB flows verified');
  const c = lb.stats().listeners[0].counters;
  t.equal(c.flows_total, sizes.length + 32, 'every flow counted');
  await until(() => lb.stats().listeners[0].counters.flows_active === 0, 5000, 'flows to close');
  t.equal(lb.stats().listeners[0].counters.resets, 0, 'no flow was reset');
});

t.test('bulk payload bytes are moved by splice, not copied', async (t) => {
  const backend = await echoBackend();
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [backend.address], workers: 1 });
  t.teardown(async () => {
    await lb.close({ drainTimeout: 0 });
    await backend.close();
  });
  const payload = randomBytes(4 * MiB);
  const socket = await connect(lb.address().port);
  const reading = readAll(socket);
  socket.end(payload);
  const { data } = await reading;
  t.equal(sha256(data), sha256(payload), 'echo intact');
  await until(() => lb.stats().listeners[0].counters.flows_active === 0, 5000, 'the flow to close');
  const c = lb.stats().listeners[0].counters;
  t.equal(c.bytes_to_backend, payload.length, 'bytes to backend counted');
  t.equal(c.bytes_to_client, payload.length, 'bytes to client counted');
  // A direction starts on the small-message path (recv/send through a 16 KiB scratch buffer),
  // turns to splice once a read fills that buffer, and back when a read on an empty pipe is
  // small (the sender paused): only those switching reads are copied.
  t.equal(c.spliced_bytes + c.copied_bytes, 2 * payload.length, 'every byte is either spliced or copied');
  t.ok(c.spliced_bytes >= 0.95 * 2 * payload.length, `the bulk went through splice (${c.spliced_bytes} of ${2 * payload.length} bytes; ${c.copied_bytes} copied)`);
  const b = lb.stats().backends[0].counters;
  t.equal(b.spliced_bytes, c.spliced_bytes, 'the backend counts the same spliced bytes');

  // Small request/response exchanges stay on the copy path: no pipe, two syscalls a message.
  const small = await connect(lb.address().port);
  const before = lb.stats().listeners[0].counters;
  for (let i = 0; i < 20; i++) {
    small.write(`ping ${i}`);
    await within(once(small, 'data'), 5000, 'an echo');
  }
  small.destroy();
  const after = lb.stats().listeners[0].counters;
  t.equal(after.spliced_bytes, before.spliced_bytes, 'small messages are not spliced');
  t.ok(after.copied_bytes > before.copied_bytes, 'they are copied through the scratch buffer');
});

t.test('1,000 concurrent flows', async (t) => {
  const backend = await echoBackend();
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [backend.address], workers: 2 });
  t.teardown(async () => {
    await lb.close({ drainTimeout: 0 });
    await backend.close();
  });
  const port = lb.address().port;
  // Open all 1,000 first and hold them open, so they are truly concurrent.
  const sockets = await Promise.all(Array.from({ length: 1000 }, () => connect(port)));
  await until(() => lb.stats().listeners[0].counters.flows_active === 1000, 20_000, '1,000 open flows');
  t.equal(lb.stats().backends[0].counters.flows_active, 1000, 'the backend side has 1,000 flows too');
  const results = await Promise.all(
    sockets.map(async (socket) => {
      const payload = randomBytes(4096);
      const reading = readAll(socket);
      socket.end(payload);
      const { data } = await reading;
      return sha256(data) === sha256(payload);
    }),
  );
  t.equal(results.filter(Boolean).length, 1000, 'all 1,000 echoes intact');
  await until(() => lb.stats().listeners[0].counters.flows_active === 0, 20_000, 'every flow to close');
  t.equal(lb.stats().listeners[0].counters.flows_total, 1000);
});

t.test('half-close: the client ends its side while the backend keeps sending', async (t) => {
  const reply = randomBytes(3 * MiB);
  const backend = await startBackend(
    (socket) => {
      let request = '';
      socket.on('data', (d) => (request += d));
      // Only after the client's FIN does the backend answer, and it answers at length.
      socket.on('end', () => socket.end(Buffer.concat([Buffer.from(`${request}|`), reply])));
    },
    { allowHalfOpen: true },
  );
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [backend.address], workers: 1 });
  t.teardown(async () => {
    await lb.close({ drainTimeout: 0 });
    await backend.close();
  });
  const socket = await connect(lb.address().port, { allowHalfOpen: true });
  const reading = readAll(socket);
  socket.end('question');
  const { data, error } = await reading;
  t.notOk(error, 'no error');
  t.equal(data.subarray(0, 9).toString(), 'question|', 'the backend saw the whole request, then the FIN');
  t.equal(sha256(data.subarray(9)), sha256(reply), 'the reply after the client FIN arrived intact');
});

t.test('half-close: the backend ends its side while the client keeps sending', async (t) => {
  const upload = randomBytes(3 * MiB);
  let resolveReceived: (hash: string) => void;
  const received = new Promise<string>((r) => (resolveReceived = r));
  const backend = await startBackend(
    (socket) => {
      const chunks: Buffer[] = [];
      socket.end('greeting'); // FIN first, then keep reading
      socket.on('data', (d: Buffer) => chunks.push(d));
      socket.on('end', () => resolveReceived(sha256(chunks)));
    },
    { allowHalfOpen: true },
  );
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [backend.address], workers: 1 });
  t.teardown(async () => {
    await lb.close({ drainTimeout: 0 });
    await backend.close();
  });
  const socket = await connect(lb.address().port, { allowHalfOpen: true });
  let greeting = '';
  socket.on('data', (d) => (greeting += d));
  const closed = once(socket, 'close');
  await within(once(socket, 'end'), 10_000, "the backend's FIN");
  t.equal(greeting, 'greeting', "the backend's bytes, then its FIN, reached the client");
  socket.end(upload);
  t.equal(await within(received, 20_000, 'the upload'), sha256(upload), 'the client kept sending after the FIN, intact');
  await within(closed, 10_000, 'the flow to close');
});

t.test('a reset on one side becomes a reset on the other', async (t) => {
  const serverSockets: net.Socket[] = [];
  const backend = await startBackend((socket) => serverSockets.push(socket));
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [backend.address], workers: 1 });
  t.teardown(async () => {
    await lb.close({ drainTimeout: 0 });
    await backend.close();
  });
  const port = lb.address().port;

  await t.test('client resets', async (t) => {
    const client = await connect(port);
    await until(() => serverSockets.length === 1, 5000, 'the backend to get the flow');
    const serverSide = serverSockets[0];
    const outcome = readAll(serverSide);
    client.resetAndDestroy();
    const { error } = await outcome;
    t.equal(error?.code, 'ECONNRESET', 'the backend sees a reset');
  });

  await t.test('backend resets', async (t) => {
    const client = await connect(port);
    await until(() => serverSockets.length === 2, 5000, 'the backend to get the flow');
    const outcome = readAll(client);
    serverSockets[1].resetAndDestroy();
    const { error } = await outcome;
    t.equal(error?.code, 'ECONNRESET', 'the client sees a reset');
  });

  await until(() => lb.stats().listeners[0].counters.flows_active === 0, 5000, 'flows to close');
  t.equal(lb.stats().listeners[0].counters.resets, 2, 'both resets counted');
  t.equal(lb.stats().backends[0].counters.resets, 2, 'and counted for the backend');
});

t.test('TCP urgent data does not end the stream early', async (t) => {
  // splice() returns 0 at an urgent mark, as it does at the end of the stream. Node cannot send
  // urgent data, so a small python3 client does: 200,000 bytes (the direction turns to splice),
  // one urgent byte, 100,000 more bytes, then FIN.
  let received = 0;
  let resolveEnd: () => void;
  const ended = new Promise<void>((r) => (resolveEnd = r));
  const backend = await startBackend(
    (socket) => {
      socket.on('data', (d: Buffer) => (received += d.length));
      socket.on('end', () => {
        resolveEnd();
        socket.end();
      });
    },
    { allowHalfOpen: true },
  );
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [backend.address], workers: 1 });
  t.teardown(async () => {
    await lb.close({ drainTimeout: 0 });
    await backend.close();
  });
  const script = `
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"a" * 200000)
s.send(b"!", socket.MSG_OOB)
s.sendall(b"b" * 100000)
s.shutdown(socket.SHUT_WR)
s.recv(1)
s.close()
`;
  const { spawn } = await import('node:child_process');
  const client = spawn('python3', ['-c', script, String(lb.address().port)], { stdio: 'inherit' });
  const exited = once(client, 'exit');
  await within(ended, 20_000, 'the backend to see the end of the stream');
  await within(exited, 20_000, 'the client to finish');
  // The urgent byte travels out of band (not inline), so the stream itself is 300,000 bytes.
  t.equal(received, 300_000, 'every byte after the urgent mark arrived before the FIN');
});
