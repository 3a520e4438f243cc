// How to start and stop each system under test. Every system listens on 127.0.0.1 and forwards
// to one backend port; `direct` is no proxy at all (the client talks to the backend: the limit).
//
// Each start() returns the port clients connect to and the pid whose process tree is measured
// (CPU time, resident memory), or no pid for `direct`.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
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
 * What a scenario needs the system to listen on: TCP (the default), UDP, or both on one port
 * (iperf3's UDP test has a TCP control connection), and for UDP how many replies end a session
 * (nginx `proxy_responses`, lb4 `--udp-responses`; 0: only the idle timeout ends it).
 * @typedef {object} ListenSpec
 * @property {Array<'tcp' | 'udp'>} protocols
 * @property {number} [udpResponses]
 */

/** @type {ListenSpec} */
export const TCP_ONLY = { protocols: ['tcp'] };

/**
 * @typedef {object} StartArgs
 * @property {string} tmp a private temp directory
 * @property {number} backendPort
 * @property {number} workers
 * @property {ListenSpec} [listen] default TCP_ONLY
 */

/**
 * @typedef {object} System
 * @property {string} name
 * @property {boolean} perWorkers false when the system has no worker setting (measured once per round)
 * @property {string[]} needs tools it needs (keys of detectTools())
 * @property {Array<'tcp' | 'udp'>} protocols what it can forward
 * @property {(settings: any) => string} describe one line for the report
 * @property {(args: StartArgs, settings: any) => Promise<Running>} start
 * @property {(settings: any) => string} [rootOf] set on lb4 builds: the checkout they run from
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

/**
 * An lb4 build as a system. `lb4` is the build named by --lb4-root (this checkout by default);
 * each --compare-root adds one more, `lb4@<commit>`, started exactly the same way from its own
 * root, so that two builds can be measured in the same rounds, alternating like every system.
 * @param {string} name
 * @param {(settings: any) => string} rootOf the checkout whose build/Release and dist/ to run
 * @returns {System}
 */
function lb4System(name, rootOf) {
  return {
    name,
    perWorkers: true,
    needs: [],
    protocols: ['tcp', 'udp'],
    rootOf,
    describe: (s) =>
      `lb4 ${s.lb4Launch === 'cli' ? 'CLI (`node dist/bin/lb4.js start ... --workers N --log-level warn --drain-timeout 0`)' : 'via bench/lb4-proxy.mjs (startBalancer, drainTimeout 0)'}` +
      `${rootOf(s) === REPO ? '' : ` built in ${rootOf(s)}`}, defaults otherwise (splice, default pipe size, backlog 511); UDP: --listen 127.0.0.1:PORT/udp (beside the TCP listener on the same port when the scenario needs both), --udp-responses 1 for dns-rate`,
    async start({ backendPort, workers, listen = TCP_ONLY }, settings) {
      const root = rootOf(settings);
      if (!existsSync(join(root, 'build/Release/lb4.node')) || !existsSync(join(root, 'dist/lib/index.js'))) {
        throw new Error(`lb4 is not built in ${root}: run \`npx cmake-js compile --log-level error && npx tsc -p tsconfig.build.json\``);
      }
      const port = await freePort();
      const flags = [
        ...listen.protocols.flatMap((p) => ['--listen', `127.0.0.1:${port}${p === 'udp' ? '/udp' : ''}`]),
        '--backend', `127.0.0.1:${backendPort}`, '--workers', String(workers),
      ];
      if (listen.protocols.includes('udp') && listen.udpResponses) flags.push('--udp-responses', String(listen.udpResponses));
      const useCli = settings.lb4Launch === 'cli';
      const args = useCli
        ? [lb4Cli(root), 'start', ...flags, '--log-level', 'warn', '--drain-timeout', '0']
        : [join(here, 'lb4-proxy.mjs'), '--root', root, ...flags];
      const child = start(name, process.execPath, args);
      await waitListening(child, port, undefined, listen.protocols);
      return { port, pid: child.pid, stop: stopper(child) };
    },
  };
}

const lb4 = lb4System('lb4', (s) => s.lb4Root);

/** @type {System} */
const haproxy = {
  name: 'haproxy',
  perWorkers: true,
  needs: ['haproxy'],
  // HAProxy forwards no UDP (outside its commercial edition): the UDP scenarios skip it.
  protocols: ['tcp'],
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
  protocols: ['tcp', 'udp'],
  describe: () =>
    `nginx stream module, worker_processes N (master + workers measured), listen ... reuseport, worker_connections ${FD_LIMIT - 100}, no access log; ` +
    'UDP: a second server block with listen ... udp reuseport, proxy_timeout 30s (lb4\'s UDP idle timeout), proxy_responses 1 for dns-rate',
  async start({ tmp, backendPort, workers, listen = TCP_ONLY }) {
    const port = await freePort();
    const dir = join(tmp, 'nginx');
    mkdirSync(dir, { recursive: true });
    // One server block per protocol: nginx's timeouts differ (a UDP "session" has no close, so
    // proxy_timeout is its idle timeout), and proxy_responses applies to UDP only.
    const servers = listen.protocols.map((p) =>
      p === 'udp'
        ? `  server {
    listen 127.0.0.1:${port} udp reuseport;
    proxy_pass bench;
    proxy_timeout 30s;${listen.udpResponses ? `\n    proxy_responses ${listen.udpResponses};` : ''}
  }`
        : `  server {
    listen 127.0.0.1:${port} reuseport;
    proxy_pass bench;
    proxy_connect_timeout 5s;
    proxy_timeout 300s;
  }`,
    );
    const config = `# Written by bench/systems.mjs.
load_module ${NGINX_STREAM_MODULE};
${nginxPreamble({ dir, workers })}
stream {
  upstream bench { server 127.0.0.1:${backendPort}; }
${servers.join('\n')}
}
`;
    const file = join(dir, 'nginx.conf');
    writeFileSync(file, config);
    const child = start('nginx', 'nginx', ['-p', dir, '-c', file, '-e', join(dir, 'error.log')]);
    await waitListening(child, port, undefined, listen.protocols);
    return { port, pid: child.pid, stop: stopper(child) };
  },
};

/** @type {System} */
const nodePipe = {
  name: 'node-pipe',
  perWorkers: false,
  needs: [],
  protocols: ['tcp'],
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
  protocols: ['tcp', 'udp'],
  describe: () => 'no proxy: the client connects straight to the backend (the limit; measured once per round)',
  async start({ backendPort }) {
    return { port: backendPort, pid: null, stop: async () => '' };
  },
};

/** In table order. */
export const systems = [direct, lb4, haproxy, nginx, nodePipe];

/**
 * The commit an lb4 build was made from: DIR/.lb4-commit (written by bench/snapshot.mjs), else
 * the checkout's HEAD, else null.
 * @param {string} root
 * @returns {string | null}
 */
export function lb4Commit(root) {
  const snapshot = join(root, '.lb4-commit');
  if (existsSync(snapshot)) return readFileSync(snapshot, 'utf8').trim() || null;
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || null;
  } catch {
    return null;
  }
}

/**
 * Every system of a run in table order: the fixed ones, with one more lb4 build right after `lb4`
 * for each --compare-root, named `lb4@<commit>` (the directory's name when it has no commit; `-2`,
 * `-3` ... appended when two builds would get the same name).
 * @param {string[]} compareRoots
 * @returns {System[]}
 */
export function withComparedBuilds(compareRoots) {
  const taken = new Set(systems.map((s) => s.name));
  const compared = compareRoots.map((root) => {
    const base = `lb4@${lb4Commit(root) ?? basename(root)}`;
    let name = base;
    for (let n = 2; taken.has(name); n++) name = `${base}-${n}`;
    taken.add(name);
    return lb4System(name, () => root);
  });
  const at = systems.indexOf(lb4) + 1;
  return [...systems.slice(0, at), ...compared, ...systems.slice(at)];
}

/** The systems lb4 is compared against (ratio to the best of them). */
export const anchors = ['haproxy', 'nginx'];
