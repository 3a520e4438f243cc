// The plain Node proxy the bench compares against: one process, one event loop, each client
// socket piped to a new backend socket and back. What most people write first.
// Usage: node node-pipe-proxy.mjs LISTEN_PORT BACKEND_PORT [LISTEN_HOST BACKEND_HOST] (default 127.0.0.1)

import { connect, createServer } from 'node:net';

const listenPort = Number(process.argv[2]);
const backendPort = Number(process.argv[3]);
const listenHost = process.argv[4] ?? '127.0.0.1';
const backendHost = process.argv[5] ?? '127.0.0.1';

const server = createServer({ noDelay: true }, (client) => {
  const backend = connect({ port: backendPort, host: backendHost, noDelay: true });
  client.pipe(backend).pipe(client);
  // An error on one side ends both; pipe() alone would leave the other socket open.
  client.on('error', () => backend.destroy());
  backend.on('error', () => client.destroy());
  client.on('close', () => backend.destroy());
  backend.on('close', () => client.destroy());
});
server.maxConnections = 1_000_000;
server.listen({ port: listenPort, host: listenHost, backlog: 511 });
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
