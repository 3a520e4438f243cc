// The backends every system under test forwards to. They are started once per bench run and
// shared by all systems, so every system sees exactly the same backend:
//   - iperf3: an iperf3 server (bulk throughput);
//   - http:   a fixed, fast HTTP server answering "ok" (nginx's http module with its own
//             config, or a multi-process Node server when nginx is missing);
//   - idle:   bench/idle-conns.mjs in two processes: a sink that accepts and holds connections,
//             and the client that opens the idle connections through the proxy;
//   - dns:    NSD, an authoritative DNS server, answering a small zone over UDP (the dns-rate
//             scenario); the iperf3 server above also takes iperf3's UDP tests (udp-bulk).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nsdConfig } from '../test/helpers/nsd-config.mjs';
import { FD_LIMIT, freePort, nginxPreamble, start, stop, waitListening } from './processes.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));

/**
 * @typedef {object} Backend
 * @property {string} kind
 * @property {number} port
 * @property {number[]} [ports] the HTTP backend's ports, one per system under test (portFor)
 * @property {import('./processes.mjs').Child} child
 * @property {string} description
 */

/**
 * Where the backends run (the topology's backend place): the address they listen on and the
 * network namespace (null: the bench's own).
 * @typedef {{host: string, netns: string | null}} Place
 */
/** @type {Place} */
const LOOPBACK = { host: '127.0.0.1', netns: null };

/** @param {string} tmp @param {Place} [at] @returns {Promise<Backend>} */
export async function startIperf3(tmp, at = LOOPBACK) {
  const port = await freePort();
  const child = start('iperf3 server', 'iperf3', ['-s', '-B', at.host, '-p', String(port)], { cwd: tmp, netns: at.netns });
  await waitListening(child, port, undefined, undefined, at.host);
  return { kind: 'iperf3', port, child, description: 'iperf3 -s' };
}

/** The zone NSD serves, and the names the DNS queries ask for (one A record each). */
export const DNS_ZONE = 'bench.test';
export const DNS_NAMES = Array.from({ length: 16 }, (_, i) => `host${i}.${DNS_ZONE}`);

/**
 * NSD on 127.0.0.1, one server process, serving DNS_ZONE from files in a private directory,
 * with response rate limiting off.
 * @param {string} tmp
 * @param {Place} [at]
 * @returns {Promise<Backend>}
 */
export async function startDns(tmp, at = LOOPBACK) {
  const port = await freePort();
  const dir = join(tmp, 'nsd');
  mkdirSync(dir, { recursive: true });
  const records = DNS_NAMES.map((name, i) => `${name}. IN A 127.0.${Math.floor(i / 250) + 1}.${(i % 250) + 1}`);
  writeFileSync(
    join(dir, `${DNS_ZONE}.zone`),
    [`$ORIGIN ${DNS_ZONE}.`, '$TTL 300', `@ IN SOA ns.${DNS_ZONE}. admin.${DNS_ZONE}. 1 3600 600 86400 300`, '@ IN NS ns', 'ns IN A 127.0.0.1', ...records, ''].join('\n'),
  );
  // The DNS backend for the dns-rate scenario: the same for every system under test.
  const config = nsdConfig({ host: at.host, port, dir, zone: DNS_ZONE });
  const file = join(dir, 'nsd.conf');
  writeFileSync(file, config);
  // -d: stay in the foreground, in the process group the bench stops.
  const child = start('nsd', 'nsd', ['-d', '-c', file], { cwd: dir, netns: at.netns });
  await waitListening(child, port, 10_000, ['udp'], at.host);
  return { kind: 'dns', port, child, description: `NSD, 1 server process, zone ${DNS_ZONE} with ${DNS_NAMES.length} A records` };
}

/**
 * The port a system under test forwards to: its own where the backend has one per system.
 * @param {Backend} backend @param {number} systemIndex
 */
export function portFor(backend, systemIndex) {
  return backend.ports?.[systemIndex % backend.ports.length] ?? backend.port;
}

/**
 * The HTTP backend listens on one port per system under test (`systems`), so that the TIME_WAIT
 * sockets one system's connections leave on the backend never meet the next system's. They
 * would hurt only kernel NAT: there the backend sees the client's own port, while the client's
 * timestamps and sequence numbers belong to its connection to lb4's address, so a new SYN that
 * lands on a TIME_WAIT socket left by another system's connection from the same port fails the
 * PAWS check about half the time and waits a second for its retransmission (measured: NAT new
 * connections/s 13.6k right after the direct run on a shared port, 19.8k on a port of its own).
 * @param {string} tmp
 * @param {{useNginx: boolean, processes: number, systems?: number}} options
 * @param {Place} [at]
 * @returns {Promise<Backend>}
 */
export async function startHttp(tmp, { useNginx, processes, systems = 1 }, at = LOOPBACK) {
  if (useNginx) return startNginxHttp(tmp, processes, systems, at);
  // The Node fallback listens on one port (http-backend.mjs takes one): lb4-nat there is noted.
  const port = await freePort();
  const child = start('node http backend', process.execPath, [join(here, 'http-backend.mjs'), String(port), String(processes), at.host], { netns: at.netns });
  await waitListening(child, port, undefined, undefined, at.host);
  return { kind: 'http', port, child, description: `Node http, ${processes} process(es), "ok", one port shared by every system` };
}

/** @param {string} tmp @param {number} processes @param {number} systems @param {Place} at @returns {Promise<Backend>} */
async function startNginxHttp(tmp, processes, systems, at) {
  const ports = [];
  while (ports.length < systems) {
    const p = await freePort();
    if (!ports.includes(p)) ports.push(p);
  }
  const dir = join(tmp, 'http-backend');
  mkdirSync(dir, { recursive: true });
  const config = `# HTTP backend for the request scenarios: the same for every system under test.
${nginxPreamble({ dir, workers: processes })}
http {
  access_log off;
  server_tokens off;
  default_type text/plain;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {
${ports.map((p) => `    listen ${at.host}:${p} backlog=4096 reuseport;`).join('\n')}
    location / { return 200 "ok\\n"; }
  }
}
`;
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, config);
  const child = start('nginx http backend', 'nginx', ['-p', dir, '-c', file, '-e', join(dir, 'error.log')], { netns: at.netns });
  for (const p of ports) await waitListening(child, p, undefined, undefined, at.host);
  return { kind: 'http', port: ports[0], ports, child, description: `nginx http, worker_processes ${processes}, return 200 "ok", one port per system under test` };
}

/**
 * One helper process of the idle-memory scenario (bench/idle-conns.mjs), driven by JSON lines on
 * stdin/stdout: the sink backend, or the client that opens the idle connections.
 */
export class IdleHelper {
  /** @type {import('./processes.mjs').Child} */ child;
  /** @type {any} the first line it printed */ hello;
  #buffer = '';
  /** @type {Array<(msg: any) => void>} */
  #waiting = [];

  /** @param {'sink' | 'client'} mode @param {Place} at where it runs (the sink also listens on at.host) */
  static async start(mode, at) {
    const helper = new IdleHelper();
    helper.child = start(`idle-conns ${mode}`, process.execPath, [join(here, 'idle-conns.mjs'), mode, at.host], { stdin: true, netns: at.netns });
    helper.child.proc.stdout.on('data', (d) => helper.#onData(d));
    helper.hello = await helper.#next(10_000);
    return helper;
  }

  #onData(data) {
    this.#buffer += data;
    let nl;
    while ((nl = this.#buffer.indexOf('\n')) >= 0) {
      const line = this.#buffer.slice(0, nl);
      this.#buffer = this.#buffer.slice(nl + 1);
      const resolve = this.#waiting.shift();
      if (resolve) resolve(JSON.parse(line));
    }
  }

  #next(timeoutMs) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.child.name}: no answer in ${timeoutMs} ms`)), timeoutMs);
      this.#waiting.push((msg) => {
        clearTimeout(timer);
        resolve(msg);
      });
    });
  }

  /**
   * Sends one command and waits for its answer.
   * @param {object} command
   * @param {number} timeoutMs
   */
  request(command, timeoutMs) {
    const answer = this.#next(timeoutMs);
    this.child.proc.stdin.write(`${JSON.stringify(command)}\n`);
    return answer;
  }
}

/**
 * The idle backend: a sink holding the backend ends, plus the client that holds the other ends.
 * @param {Place} [at] where the sink runs
 * @param {Place} [clientAt] where the client runs
 * @returns {Promise<Backend & {sink: IdleHelper, client: IdleHelper}>}
 */
export async function startIdle(at = LOOPBACK, clientAt = LOOPBACK) {
  const sink = await IdleHelper.start('sink', at);
  const client = await IdleHelper.start('client', clientAt);
  return { kind: 'idle', port: sink.hello.port, child: sink.child, sink, client, description: 'Node sink holding connections (bench/idle-conns.mjs)' };
}

/** @param {any} backend */
export async function stopBackend(backend) {
  if (!backend) return;
  await stop(backend.child);
  if (backend.client) await stop(backend.client.child);
}
