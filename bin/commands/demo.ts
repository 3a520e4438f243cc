// `lb4 demo`: three small HTTP servers and a balancer in front of them, all on loopback, so a
// newcomer sees balancing with one command and one curl.

import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Lb4Error } from '../../lib/errors.js';
import { startBalancer } from '../../lib/index.js';
import { createLogger, type LogFormat, type LogLevel } from '../../lib/log.js';
import { watchStopSignals } from '../stop-signals.js';
import { runUntilStopped } from './start.js';

export interface DemoFlags {
  port: string;
  adminPort: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
}

const backendCount = 3;

function parsePort(text: string, field: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 0 && port <= 65535)) throw new Lb4Error('LB4_INVALID_OPTION', `must be a port number from 0 to 65535, got "${text}"`, { field });
  return port;
}

async function startBackend(n: number): Promise<Server> {
  const server = createServer((_request, response) => {
    // Keep-alive would carry a client's later requests over the same flow, hence to the same
    // backend, and the demo would show no balancing at all.
    response.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
    response.end(`hello from backend ${n}\n`);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

function closeBackend(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export async function demo(flags: DemoFlags): Promise<void> {
  const port = parsePort(flags.port, 'port');
  const adminPort = parsePort(flags.adminPort, 'adminPort');
  const logger = createLogger({ level: flags.logLevel, format: flags.logFormat });
  const signals = watchStopSignals(logger);
  const backends: Server[] = [];
  try {
    for (let n = 1; n <= backendCount; n++) backends.push(await startBackend(n));
    const backendAddresses = backends.map((b) => `127.0.0.1:${(b.address() as AddressInfo).port}`);
    const balancer = await startBalancer(
      {
        listen: `127.0.0.1:${port}`,
        backends: backendAddresses,
        algorithm: 'roundrobin',
        // Round robin turns per worker thread. With one worker, consecutive connections take the
        // backends strictly in turn, which is the point of the demo.
        workers: 1,
        // On loopback, so no token is needed: the dashboard and `lb4 top` work at once.
        admin: { listen: `127.0.0.1:${adminPort}` },
      },
      { logger },
    );
    const url = `http://127.0.0.1:${balancer.address().port}/`;
    const adminUrl = balancer.adminUrl ?? '';
    const adminAddress = adminUrl.replace(/^http:\/\//, '');
    process.stdout.write(
      [
        `lb4 demo: ${backendCount} HTTP backends (${backendAddresses.join(', ')}) behind a round-robin balancer.`,
        'Each request opens a new connection, and each new connection goes to the next backend:',
        '',
        `  curl ${url}`,
        '',
        `Run it a few times, e.g.  for i in 1 2 3; do curl -s ${url}; done`,
        '',
        'Watch it from another terminal, or in a browser:',
        '',
        `  lb4 top --admin ${adminAddress}`,
        `  lb4 backends --admin ${adminAddress}`,
        `  dashboard: ${adminUrl}/`,
        `  metrics:   ${adminUrl}/metrics`,
        '',
        'Press Ctrl-C to stop.',
        '',
      ].join('\n'),
    );
    await runUntilStopped(balancer, signals);
  } finally {
    await Promise.all(backends.map(closeBackend));
  }
}
