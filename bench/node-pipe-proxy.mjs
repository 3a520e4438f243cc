// The plain Node proxy the bench compares against: one process, one event loop, each client
// socket piped to a new backend socket and back. What most people write first.
// Usage: node node-pipe-proxy.mjs LISTEN_PORT BACKEND_PORT

import { connect, createServer } from 'node:net';

const listenPort = Number(process.argv[2]);
const backendPort = Number(process.argv[3]);

const server = createServer({ noDelay: true }, (client) => {
  const backend = connect({ port: backendPort, host: '127.0.0.1', noDelay: true });
  client.pipe(backend).pipe(client);
  // An error on one side ends both; pipe() alone would leave the other socket open.
  client.on('error', () => backend.destroy());
  backend.on('error', () => client.destroy());
  client.on('close', () => backend.destroy());
  backend.on('close', () => client.destroy());
});
server.maxConnections = 1_000_000;
server.listen({ port: listenPort, host: '127.0.0.1', backlog: 511 });
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
