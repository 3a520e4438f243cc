// Helper processes for the idle-memory scenario, each started with the bench's descriptor limit.
// Two modes, two processes, so that each holds only one end of the idle flows:
//   node idle-conns.mjs sink [HOST]    a backend that accepts connections (on HOST, default
//                                      127.0.0.1) and holds them;
//   node idle-conns.mjs client         opens connections through the proxy and keeps them open
//                                      without sending a byte.
// Protocol: one JSON object per line on stdin, one answer per command on stdout. At start each
// prints one line ({"port": P} for the sink, {"ready": true} for the client).
//   sink:   {"op":"count"} -> {"open": n};  {"op":"reset"} closes everything -> {"open": 0}
//   client: {"op":"open","host":H,"port":P,"count":N,"concurrency":C,"timeoutMs":T} (host default 127.0.0.1)
//             -> {"clientOpen", "errors", "closedEarly", "ms"}
//           {"op":"close"} -> {"closed": n}

import { connect, createServer } from 'node:net';
import { createInterface } from 'node:readline';

const mode = process.argv[2];
const listenHost = process.argv[3] ?? '127.0.0.1';

function say(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

/** @param {(command: any) => Promise<object> | object} handle */
function serve(handle) {
  const lines = createInterface({ input: process.stdin });
  let queue = Promise.resolve();
  lines.on('line', (line) => {
    const command = JSON.parse(line);
    queue = queue.then(async () => say(await handle(command)));
  });
  lines.on('close', () => process.exit(0));
}

if (mode === 'sink') {
  /** @type {Set<import('node:net').Socket>} */
  const sockets = new Set();
  const sink = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  sink.listen({ port: 0, host: listenHost, backlog: 4096 }, () => {
    say({ port: /** @type {import('node:net').AddressInfo} */ (sink.address()).port });
  });
  serve((command) => {
    if (command.op === 'reset') {
      for (const s of sockets) s.destroy();
      sockets.clear();
    }
    return { open: sockets.size };
  });
} else if (mode === 'client') {
  /** @type {Set<import('node:net').Socket>} */
  const sockets = new Set();

  async function open({ host = '127.0.0.1', port, count, concurrency = 256, timeoutMs = 60_000 }) {
    const began = Date.now();
    let started = 0;
    let errors = 0;
    let closedEarly = 0;
    const connectOne = () =>
      new Promise((resolve) => {
        const socket = connect({ port, host, noDelay: true });
        let connected = false;
        socket.once('connect', () => {
          connected = true;
          sockets.add(socket);
          resolve(undefined);
        });
        socket.on('error', () => {
          errors++;
          if (!connected) resolve(undefined);
        });
        // A connection the proxy closes while it should be idle is counted, not reopened.
        socket.on('close', () => {
          if (sockets.delete(socket)) closedEarly++;
        });
      });
    const lane = async () => {
      while (started < count && Date.now() - began < timeoutMs) {
        started++;
        await connectOne();
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
    return { clientOpen: sockets.size, errors, closedEarly, ms: Date.now() - began };
  }

  serve((command) => {
    if (command.op === 'open') return open(command);
    const closed = sockets.size;
    for (const s of sockets) s.destroy();
    sockets.clear();
    return { closed };
  });
  say({ ready: true });
} else {
  process.stderr.write('usage: node idle-conns.mjs sink|client\n');
  process.exit(2);
}
