// How to start and stop each system under test. Every system listens on 127.0.0.1 and forwards
// to one backend port; `direct` is no proxy at all (the client talks to the backend: the limit).
//
// Each start() returns the port clients connect to and the pid whose process tree is measured
// (CPU time, resident memory), or no pid for `direct`.

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FD_LIMIT, freePort, MAX_IDLE_FLOWS, nginxPreamble, start, stop, waitListening } from './processes.mjs';
import { NGINX_STREAM_MODULE } from './tools.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
/** The checkout whose build is measured unless --lb4-root names another. */
export const REPO = join(here, '..');
/** @param {string} root */
export const lb4Cli = (root) => join(root, 'dist/bin/lb4.js');

/**
 * @typedef {object} Running
 * @property {number} port where clients connect
 * @property {number | null} pid the process tree to measure, null for direct
 * @property {() => Promise<string>} stop stops it; resolves to its stderr (for notes)
 */

/**
 * @typedef {object} StartArgs
 * @property {string} tmp a private temp directory
 * @property {number} backendPort
 * @property {number} workers
 */

/**
 * @typedef {object} System
 * @property {string} name
 * @property {boolean} perWorkers false when the system has no worker setting (measured once per round)
 * @property {string[]} needs tools it needs (keys of detectTools())
 * @property {(settings: any) => string} describe one line for the report
 * @property {(args: StartArgs, settings: any) => Promise<Running>} start
 */

// HAProxy refuses to start unless the descriptor limit covers 2 x maxconn + 2 x maxpipes (+ a few).
// maxconn must hold the idle-memory scenario's flows; maxpipes (default maxconn / 4) gets what is
// left. Only the few bulk flows of tcp-throughput need pipes at the same time.
const haproxyMaxconn = Math.min(50_000, MAX_IDLE_FLOWS + 100);
const haproxyMaxpipes = Math.min(Math.floor(haproxyMaxconn / 4), Math.floor((FD_LIMIT - 2 * haproxyMaxconn - 50) / 2));

/** @param {import('./processes.mjs').Child} child */
function stopper(child) {
  return async () => {
    await stop(child);
    return child.stderr();
  };
}

/** @type {System} */
const lb4 = {
  name: 'lb4',
  perWorkers: true,
  needs: [],
  describe: (s) =>
    `lb4 ${s.lb4Launch === 'cli' ? 'CLI (`node dist/bin/lb4.js start ... --workers N --log-level warn --drain-timeout 0`)' : 'via bench/lb4-proxy.mjs (startBalancer, drainTimeout 0)'}` +
    `${s.lb4Root === REPO ? '' : ` built in ${s.lb4Root}`}, defaults otherwise (splice, default pipe size, backlog 511)`,
  async start({ backendPort, workers }, settings) {
    const root = settings.lb4Root;
    if (!existsSync(join(root, 'build/Release/lb4.node')) || !existsSync(join(root, 'dist/lib/index.js'))) {
      throw new Error(`lb4 is not built in ${root}: run \`npx cmake-js compile --log-level error && npx tsc -p tsconfig.build.json\``);
    }
    const port = await freePort();
    const flags = ['--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${backendPort}`, '--workers', String(workers)];
    const useCli = settings.lb4Launch === 'cli';
    const args = useCli
      ? [lb4Cli(root), 'start', ...flags, '--log-level', 'warn', '--drain-timeout', '0']
      : [join(here, 'lb4-proxy.mjs'), '--root', root, ...flags];
    const child = start('lb4', process.execPath, args);
    await waitListening(child, port);
    return { port, pid: child.pid, stop: stopper(child) };
  },
};

/** @type {System} */
const haproxy = {
  name: 'haproxy',
  perWorkers: true,
  needs: ['haproxy'],
  describe: (s) => `HAProxy, mode tcp, option ${s.haproxySplice === 'auto' ? 'splice-auto' : 'splice-request + splice-response'}, nbthread N, maxconn ${haproxyMaxconn}, maxpipes ${haproxyMaxpipes}, no logging`,
  async start({ tmp, backendPort, workers }, settings) {
    const port = await freePort();
    const splice = settings.haproxySplice === 'auto' ? '    option splice-auto' : '    option splice-request\n    option splice-response';
    const config = `# Written by bench/systems.mjs. No "log" line: HAProxy logs nothing.
global
    nbthread ${workers}
    maxconn ${haproxyMaxconn}
    maxpipes ${haproxyMaxpipes}

defaults
    mode tcp
    timeout connect 5s
    timeout client 300s
    timeout server 300s
${splice}

frontend bench
    bind 127.0.0.1:${port}
    default_backend bench

backend bench
    server backend1 127.0.0.1:${backendPort}
`;
    const file = join(tmp, 'haproxy.cfg');
    writeFileSync(file, config);
    const child = start('haproxy', 'haproxy', ['-f', file, '-db'], { cwd: tmp });
    await waitListening(child, port);
    return { port, pid: child.pid, stop: stopper(child) };
  },
};

/** @type {System} */
const nginx = {
  name: 'nginx',
  perWorkers: true,
  needs: ['nginx', 'nginx-stream'],
  describe: () => `nginx stream module, worker_processes N (master + workers measured), listen ... reuseport, worker_connections ${FD_LIMIT - 100}, no access log`,
  async start({ tmp, backendPort, workers }) {
    const port = await freePort();
    const dir = join(tmp, 'nginx');
    mkdirSync(dir, { recursive: true });
    const config = `# Written by bench/systems.mjs.
load_module ${NGINX_STREAM_MODULE};
${nginxPreamble({ dir, workers })}
stream {
  upstream bench { server 127.0.0.1:${backendPort}; }
  server {
    listen 127.0.0.1:${port} reuseport;
    proxy_pass bench;
    proxy_connect_timeout 5s;
    proxy_timeout 300s;
  }
}
`;
    const file = join(dir, 'nginx.conf');
    writeFileSync(file, config);
    const child = start('nginx', 'nginx', ['-p', dir, '-c', file, '-e', join(dir, 'error.log')]);
    await waitListening(child, port);
    return { port, pid: child.pid, stop: stopper(child) };
  },
};

/** @type {System} */
const nodePipe = {
  name: 'node-pipe',
  perWorkers: false,
  needs: [],
  describe: () => 'bench/node-pipe-proxy.mjs: one Node process, socket.pipe() both ways (no worker setting: measured once per round, shown in every table)',
  async start({ backendPort }) {
    const port = await freePort();
    const child = start('node-pipe', process.execPath, [join(here, 'node-pipe-proxy.mjs'), String(port), String(backendPort)]);
    await waitListening(child, port);
    return { port, pid: child.pid, stop: stopper(child) };
  },
};

/** @type {System} */
const direct = {
  name: 'direct',
  perWorkers: false,
  needs: [],
  describe: () => 'no proxy: the client connects straight to the backend (the limit; measured once per round)',
  async start({ backendPort }) {
    return { port: backendPort, pid: null, stop: async () => '' };
  },
};

/** In table order. */
export const systems = [direct, lb4, haproxy, nginx, nodePipe];
/** The systems lb4 is compared against (ratio to the best of them). */
export const anchors = ['haproxy', 'nginx'];
