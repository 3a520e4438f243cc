#!/usr/bin/env node
// The cost of TLS SNI routing on lb4: new TLS connections per second through one lb4 process
// with two listeners in front of the same nginx HTTPS backend, one plain and one that peeks each
// ClientHello and routes by its server name. wrk (`-H "Connection: close"`, so every request is a
// new TCP connection and a full TLS handshake with the backend) runs against each in turn, rounds
// alternating so that load from elsewhere falls on both. wrk sends the URL's host as SNI.
//
//   npm run build && node bench/sni-cost.mjs [--seconds 5] [--rounds 3] [--connections 32]
//
// Prints each round and the medians; a smoke figure on a shared machine, not a benchmark result.

import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, fallback) => {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
};
const seconds = arg('seconds', 5);
const rounds = arg('rounds', 3);
const connections = arg('connections', 32);

const dir = mkdtempSync(join(tmpdir(), 'lb4-sni-bench-'));
const freePort = async () => {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = s.address().port;
  s.close();
  return port;
};

const cert = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'),
  '-days', '1', '-subj', '/CN=localhost'], { encoding: 'utf8' });
if (cert.status !== 0) throw new Error(cert.stderr);
const nginxPort = await freePort();
writeFileSync(join(dir, 'nginx.conf'), `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  server {
    listen 127.0.0.1:${nginxPort} ssl;
    ssl_certificate ${dir}/c.pem;
    ssl_certificate_key ${dir}/k.pem;
    location / { return 200 "ok\\n"; }
  }
}
`);
const nginx = spawn('nginx', ['-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: 'inherit' });
const { startBalancer } = await import(join(root, 'dist/lib/index.js'));
let lb;
try {
  // Wait for nginx to listen.
  for (let i = 0; ; i++) {
    const ok = await new Promise((resolve) => net.connect(nginxPort, '127.0.0.1').on('connect', function () { this.destroy(); resolve(true); }).on('error', () => resolve(false)));
    if (ok) break;
    if (i > 100) throw new Error('nginx did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  lb = await startBalancer({
    listeners: [
      { name: 'plain', listen: '127.0.0.1:0', backends: [`127.0.0.1:${nginxPort}`] },
      { name: 'sni', listen: '127.0.0.1:0', backends: [`127.0.0.1:${nginxPort},pool=web`], sni: ['localhost=web'] },
    ],
    workers: 1,
  });
  const [plain, sni] = lb.addresses();
  const wrk = (port) => {
    const r = spawnSync('wrk', ['-t', '1', '-c', String(connections), '-d', `${seconds}s`, '-H', 'Connection: close', `https://localhost:${port}/`], { encoding: 'utf8' });
    const rps = /Requests\/sec:\s+([\d.]+)/.exec(r.stdout);
    const errors = /Socket errors: (.*)/.exec(r.stdout);
    const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(r.stdout);
    return { rps: rps ? Number(rps[1]) : NaN, note: [errors?.[1], non2xx ? `non-2xx ${non2xx[1]}` : ''].filter(Boolean).join('; ') };
  };
  const results = { plain: [], sni: [] };
  for (let round = 1; round <= rounds; round++) {
    for (const [name, address] of round % 2 ? [['plain', plain], ['sni', sni]] : [['sni', sni], ['plain', plain]]) {
      const r = wrk(address.port);
      results[name].push(r.rps);
      console.log(`round ${round} ${name}: ${r.rps.toFixed(0)} new TLS connections/s${r.note ? ` (${r.note})` : ''}`);
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const counters = lb.stats().listeners.find((l) => l.name === 'sni').counters;
  // wrk closes the connections it has open when its time is up: those without a whole hello yet
  // count as malformed (a stream that ended inside the hello).
  console.log(`sni listener: ${counters.sni_routed} routed; refused: ${counters.sni_hello_malformed} malformed, ${counters.sni_hello_oversized} oversized, ${counters.sni_hello_timeouts} slow, ${counters.sni_unrouted} unrouted`);
  const p = median(results.plain);
  const s = median(results.sni);
  console.log(`median: plain ${p.toFixed(0)}/s, sni ${s.toFixed(0)}/s, sni/plain ${(s / p).toFixed(3)} (wrk -t1 -c${connections} -d${seconds}s, Connection: close, ${rounds} rounds, lb4 1 worker, nginx 1 worker)`);
} finally {
  if (lb) await lb.close({ drainTimeout: 0 });
  nginx.kill('SIGTERM');
  await once(nginx, 'exit').catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
