#!/usr/bin/env node
// What lb4's per-connection features cost: one lb4 process (1 worker) with a listener per
// feature, all in front of the same nginx (1 worker), and wrk against each in turn, rounds
// alternating the order so that load from elsewhere falls on all of them alike. Every request is
// a new connection (`Connection: close`): these features act once per connection, so that is
// where a cost would show.
//
//   plain   the baseline: lb4 splicing to nginx's plain HTTP port
//   proxy   PROXY protocol v2 to the backend (nginx `listen ... proxy_protocol` reads it)
//   policy  access lists (an allow list and a deny list) and per-source limits set high enough
//           that nothing is refused: the cost of the checks alone
//   tls     the TLS baseline: lb4 splicing to nginx's HTTPS port (every request a full handshake)
//   sni     the same through a listener that peeks each ClientHello and routes by server name
//
//   npm run build && node bench/feature-cost.mjs [--seconds 5] [--rounds 3] [--connections 32]
//
// Prints each round, then per feature the median of new connections/s and its ratio to its
// baseline (plain for proxy and policy, tls for sni), with the ratios' range over the rounds.

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

const dir = mkdtempSync(join(tmpdir(), 'lb4-feature-bench-'));
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
const [httpPort, proxyPort, tlsPort] = [await freePort(), await freePort(), await freePort()];
writeFileSync(join(dir, 'nginx.conf'), `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  server { listen 127.0.0.1:${httpPort}; location / { return 200 "ok\\n"; } }
  server { listen 127.0.0.1:${proxyPort} proxy_protocol; location / { return 200 "$proxy_protocol_addr\\n"; } }
  server {
    listen 127.0.0.1:${tlsPort} ssl;
    ssl_certificate ${dir}/c.pem;
    ssl_certificate_key ${dir}/k.pem;
    location / { return 200 "ok\\n"; }
  }
}
`);
const nginx = spawn('nginx', ['-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: 'inherit' });
const { startBalancer } = await import(join(root, 'dist/lib/index.js'));
let lb;
const listening = (port) => new Promise((resolve) => net.connect(port, '127.0.0.1').on('connect', function () { this.destroy(); resolve(true); }).on('error', () => resolve(false)));
try {
  for (let i = 0; !(await listening(tlsPort)); i++) {
    if (i > 100) throw new Error('nginx did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  lb = await startBalancer({
    listeners: [
      { name: 'plain', listen: '127.0.0.1:0', backends: [`127.0.0.1:${httpPort}`] },
      { name: 'proxy', listen: '127.0.0.1:0', backends: [`127.0.0.1:${proxyPort}`], proxyProtocol: 'v2' },
      { name: 'policy', listen: '127.0.0.1:0', backends: [`127.0.0.1:${httpPort}`], allow: ['127.0.0.0/8', '::1/128'], deny: ['10.0.0.0/8', '192.0.2.0/24'], maxConnectionsPerSource: 100_000, connectionRatePerSource: 10_000_000 },
      { name: 'tls', listen: '127.0.0.1:0', backends: [`127.0.0.1:${tlsPort}`] },
      { name: 'sni', listen: '127.0.0.1:0', backends: [`127.0.0.1:${tlsPort},pool=web`], sni: ['localhost=web'] },
    ],
    workers: 1,
  });
  const portOf = Object.fromEntries(lb.addresses().map((a) => [a.name, a.port]));
  const wrk = (name) => {
    const url = name === 'tls' || name === 'sni' ? `https://localhost:${portOf[name]}/` : `http://127.0.0.1:${portOf[name]}/`;
    const r = spawnSync('wrk', ['-t', '1', '-c', String(connections), '-d', `${seconds}s`, '-H', 'Connection: close', url], { encoding: 'utf8' });
    const rps = /Requests\/sec:\s+([\d.]+)/.exec(r.stdout);
    const errors = /Socket errors: (.*)/.exec(r.stdout);
    const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(r.stdout);
    return { rps: rps ? Number(rps[1]) : NaN, note: [errors?.[1], non2xx ? `non-2xx ${non2xx[1]}` : ''].filter(Boolean).join('; ') };
  };
  const names = ['plain', 'proxy', 'policy', 'tls', 'sni'];
  const results = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 ? names : [...names].reverse();
    for (const name of order) {
      const r = wrk(name);
      results[name].push(r.rps);
      console.log(`round ${round} ${name}: ${r.rps.toFixed(0)} new connections/s${r.note ? ` (${r.note})` : ''}`);
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const baseOf = { proxy: 'plain', policy: 'plain', sni: 'tls' };
  console.log(`\n| listener | new connections/s (median) | ratio to its baseline [range over rounds] |\n| --- | ---: | ---: |`);
  for (const name of names) {
    const base = baseOf[name];
    const ratio = base ? (median(results[name]) / median(results[base])).toFixed(3) : '–';
    const perRound = base ? results[name].map((v, i) => v / results[base][i]) : [];
    const range = base ? ` [${Math.min(...perRound).toFixed(2)}..${Math.max(...perRound).toFixed(2)}]` : '';
    console.log(`| ${name} | ${median(results[name]).toFixed(0)} | ${ratio}${range} |`);
  }
  const counters = (n) => lb.stats().listeners.find((l) => l.name === n).counters;
  const p = counters('policy');
  console.log(`\npolicy listener refusals: denied ${p.denied}, source_limit ${p.source_limit}, source_rate ${p.source_rate} (all should be 0)`);
  console.log(`(wrk -t1 -c${connections} -d${seconds}s, Connection: close, ${rounds} rounds, lb4 1 worker, nginx 1 worker)`);
} finally {
  if (lb) await lb.close({ drainTimeout: 0 });
  nginx.kill('SIGTERM');
  await once(nginx, 'exit').catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
