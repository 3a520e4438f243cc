// Fallback HTTP backend when nginx is not installed: Node's http server answering "ok" in
// several processes (node:cluster). Usage: node http-backend.mjs PORT [PROCESSES [HOST]]

import cluster from 'node:cluster';
import { createServer } from 'node:http';

const port = Number(process.argv[2]);
const processes = Number(process.argv[3] ?? 2);
const host = process.argv[4] ?? '127.0.0.1';

if (cluster.isPrimary) {
  for (let i = 0; i < processes; i++) cluster.fork();
  const stopAll = () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.kill();
    process.exit(0);
  };
  process.on('SIGTERM', stopAll);
  process.on('SIGINT', stopAll);
} else {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '3' });
    res.end('ok\n');
  });
  server.keepAliveTimeout = 300_000;
  server.listen({ port, host, backlog: 4096 });
}
