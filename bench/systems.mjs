// How to start and stop each system under test. Every system listens on the topology's system
// address (127.0.0.1 on loopback, inside its own namespace on veth: bench/topology.mjs) and
// forwards to one backend; `direct` is no proxy at all (the client talks to the backend: the
// limit).
//
// Each start() returns the address and port clients connect to and the pid whose process tree is
// measured (CPU time, resident memory), or no pid for `direct`.

import { execFileSync, spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { atCleanup, FD_LIMIT, freePort, MAX_IDLE_FLOWS, nginxPreamble, start, stop, waitListening } from './processes.mjs';
import { deleteNatTable, NAT_TABLE_PREFIX } from './topology.mjs';
import { NGINX_STREAM_MODULE } from './tools.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
/** The checkout whose build is measured unless --lb4-root names another. */
export const REPO = join(here, '..');
/** @param {string} root */
export const lb4Cli = (root) => join(root, 'dist/bin/lb4.js');

/**
 * @typedef {object} Running
 * @property {string} host where clients connect
 * @property {number} port
 * @property {string | null} [clientNetns] where the load generators run (set by run.mjs from the topology)
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
 * @property {{host: string, netns: string | null}} at where the system runs and listens (the topology's system place)
 * @property {string} backendHost
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
 * @property {boolean} [direct] no system in the path: the client connects to the backend
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
      `${rootOf(s) === REPO ? '' : ` built in ${rootOf(s)}`}, defaults otherwise (splice, default pipe size, backlog 511); UDP: --listen HOST:PORT/udp (beside the TCP listener on the same port when the scenario needs both), --udp-responses 1 for dns-rate`,
    async start({ at, backendHost, backendPort, workers, listen = TCP_ONLY }, settings) {
      const root = rootOf(settings);
      if (!existsSync(join(root, 'build/Release/lb4.node')) || !existsSync(join(root, 'dist/lib/index.js'))) {
        throw new Error(`lb4 is not built in ${root}: run \`npx cmake-js compile --log-level error && npx tsc -p tsconfig.build.json\``);
      }
      const port = await freePort();
      const flags = [
        ...listen.protocols.flatMap((p) => ['--listen', `${at.host}:${port}${p === 'udp' ? '/udp' : ''}`]),
        '--backend', `${backendHost}:${backendPort}`, '--workers', String(workers),
      ];
      if (listen.protocols.includes('udp') && listen.udpResponses) flags.push('--udp-responses', String(listen.udpResponses));
      const useCli = settings.lb4Launch === 'cli';
      const args = useCli
        ? [lb4Cli(root), 'start', ...flags, '--log-level', 'warn', '--drain-timeout', '0']
        : [join(here, 'lb4-proxy.mjs'), '--root', root, ...flags];
      const child = start(name, process.execPath, args, { netns: at.netns });
      await waitListening(child, port, undefined, listen.protocols, at.host);
      return { host: at.host, port, pid: child.pid, stop: stopper(child) };
    },
  };
}

/** The nftables table of lb4-nat: one per bench process, so a leftover names the run that made it. */
const natTable = `${NAT_TABLE_PREFIX}${process.pid}`;

/**
 * Runs nft with `args` in a network namespace (null: the bench's own), `input` on its stdin.
 * @param {string | null} netns @param {string[]} args @param {string} [input]
 */
function nftIn(netns, args, input) {
  const [file, argv] = netns ? ['ip', ['netns', 'exec', netns, 'nft', ...args]] : ['nft', args];
  return spawnSync(file, argv, { input, encoding: 'utf8' });
}

/**
 * Resolves once lb4's table holds a DNAT rule (lb4 applies it right after binding its port), in
 * `netns` (null: here). Fails with the child's words if it exits first.
 * @param {import('./processes.mjs').Child} child
 * @param {string | null} netns
 */
async function waitNatRules(child, netns, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!child.running) throw new Error(`lb4-nat exited before its rules were applied: ${child.stderr().trim().split('\n').at(-1) ?? ''}`);
    const r = nftIn(netns, ['list', 'table', 'inet', natTable]);
    if (r.status === 0 && r.stdout.includes('dnat')) return;
    await sleep(20);
  }
  throw new Error(`lb4-nat: no DNAT rule in table inet ${natTable} within ${timeoutMs} ms`);
}

/**
 * lb4 in kernel NAT mode (`--forward nat`): lb4 holds the port, applies an nftables table
 * (`--nat-table lb4b_<bench pid>`), and the kernel's NAT and conntrack forward every packet; no
 * lb4 process touches the data. On loopback the client is on the same host: its connections meet
 * the table's output-chain DNAT (127.0.0.1 to 127.0.0.1 needs no sysctl: both ends stay on lo).
 * On veth lb4 runs in the system's namespace as the backends' gateway (their default route is
 * that namespace), so replies pass its conntrack and clients keep their address: no masquerade.
 * CPU and memory are lb4's process only: the forwarding happens in softirq context, charged to
 * no process; the machine-wide CPU per GB column shows it.
 * @returns {System}
 */
function lb4NatSystem() {
  // The same listening port in every round, as a production listener keeps its port. A new port
  // each round would meet the conntrack entries the last round left in TIME_WAIT (120 s): the
  // backend's side of a new connection (backend port -> client port) would clash with an old
  // entry's, so NAT would move the client's port to a random one, whose SYN then fails the PAWS
  // check of the backend's TIME_WAIT socket for that port about half the time (measured: 4.7k new
  // connections/s in a second round on a new port, against 19.8k in the first).
  let listenPort = 0;
  return {
    name: 'lb4-nat',
    perWorkers: false,
    needs: ['nft', 'conntrack'],
    protocols: ['tcp'],
    describe: () =>
      `lb4 CLI \`start --listen HOST:PORT --backend ... --forward nat --nat-table ${natTable} --log-level warn --drain-timeout 0\` (workers do not forward in nat mode: measured once per round); ` +
      'loopback: the output-chain DNAT of lb4\'s table; veth: lb4 is the backends\' gateway (no masquerade). Its CPU and RSS are the lb4 process\'s: the kernel\'s forwarding work is charged to no process (see machine CPU per GB), and the conntrack entry each idle flow holds in kernel memory is not in idle-memory\'s RSS',
    async start({ at, backendHost, backendPort }, settings) {
      const root = settings.lb4Root;
      if (!existsSync(lb4Cli(root))) throw new Error(`lb4-nat needs the CLI: ${lb4Cli(root)} is not built (npm run build)`);
      // A SIGKILLed lb4 would leave its table in this namespace: removed at the end whatever happens.
      if (!at.netns) atCleanupOnce(() => deleteNatTable(natTable));
      listenPort ||= await freePort();
      const port = listenPort;
      const args = [lb4Cli(root), 'start', '--listen', `${at.host}:${port}`, '--backend', `${backendHost}:${backendPort}`, '--forward', 'nat', '--nat-table', natTable, '--log-level', 'warn', '--drain-timeout', '0'];
      const child = start('lb4-nat', process.execPath, args, { netns: at.netns });
      const stopIt = stopper(child);
      try {
        await waitListening(child, port, undefined, ['tcp'], at.host);
        await waitNatRules(child, at.netns);
      } catch (e) {
        await stopIt();
        throw e;
      }
      return {
        host: at.host,
        port,
        pid: child.pid,
        stop: async () => {
          const stderr = await stopIt();
          if (!at.netns) deleteNatTable(natTable);
          return stderr;
        },
      };
    },
  };
}

let natCleanupRegistered = false;
/** @param {() => void} step */
function atCleanupOnce(step) {
  if (natCleanupRegistered) return;
  natCleanupRegistered = true;
  atCleanup(step);
}

const lb4 = lb4System('lb4', (s) => s.lb4Root);

/**
 * HAProxy in one splice setting. Both run in every bench: `splice-auto` (HAProxy splices when it
 * guesses a transfer is bulk) and `splice-rr` (`option splice-request` + `option
 * splice-response`: always). Its anchor value per metric is the better of the two ("best
 * HAProxy", report.mjs).
 * @param {string} name
 * @param {'auto' | 'always'} splice
 * @returns {System}
 */
function haproxySystem(name, splice) {
  const options = splice === 'auto' ? 'option splice-auto' : 'option splice-request + option splice-response';
  return {
    name,
    perWorkers: true,
    needs: ['haproxy'],
    // HAProxy forwards no UDP (outside its commercial edition): the UDP scenarios skip it.
    protocols: ['tcp'],
    describe: () => `HAProxy, mode tcp, ${options}, nbthread N, maxconn ${haproxyMaxconn}, maxpipes ${haproxyMaxpipes}, no logging`,
    async start({ tmp, at, backendHost, backendPort, workers }) {
      const port = await freePort();
      const lines = splice === 'auto' ? '    option splice-auto' : '    option splice-request\n    option splice-response';
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
${lines}

frontend bench
    bind ${at.host}:${port}
    default_backend bench

backend bench
    server backend1 ${backendHost}:${backendPort}
`;
      const file = join(tmp, `${name}.cfg`);
      writeFileSync(file, config);
      const child = start(name, 'haproxy', ['-f', file, '-db'], { cwd: tmp, netns: at.netns });
      await waitListening(child, port, undefined, undefined, at.host);
      return { host: at.host, port, pid: child.pid, stop: stopper(child) };
    },
  };
}

/** @type {System} */
const nginx = {
  name: 'nginx',
  perWorkers: true,
  needs: ['nginx', 'nginx-stream'],
  protocols: ['tcp', 'udp'],
  describe: () =>
    `nginx stream module, worker_processes N (master + workers measured), listen ... reuseport, worker_connections ${FD_LIMIT - 100}, no access log; ` +
    'UDP: a second server block with listen ... udp reuseport, proxy_timeout 30s (lb4\'s UDP idle timeout), proxy_responses 1 for dns-rate',
  async start({ tmp, at, backendHost, backendPort, workers, listen = TCP_ONLY }) {
    const port = await freePort();
    const dir = join(tmp, 'nginx');
    mkdirSync(dir, { recursive: true });
    // One server block per protocol: nginx's timeouts differ (a UDP "session" has no close, so
    // proxy_timeout is its idle timeout), and proxy_responses applies to UDP only.
    const servers = listen.protocols.map((p) =>
      p === 'udp'
        ? `  server {
    listen ${at.host}:${port} udp reuseport;
    proxy_pass bench;
    proxy_timeout 30s;${listen.udpResponses ? `\n    proxy_responses ${listen.udpResponses};` : ''}
  }`
        : `  server {
    listen ${at.host}:${port} reuseport;
    proxy_pass bench;
    proxy_connect_timeout 5s;
    proxy_timeout 300s;
  }`,
    );
    const config = `# Written by bench/systems.mjs.
load_module ${NGINX_STREAM_MODULE};
${nginxPreamble({ dir, workers })}
stream {
  upstream bench { server ${backendHost}:${backendPort}; }
${servers.join('\n')}
}
`;
    const file = join(dir, 'nginx.conf');
    writeFileSync(file, config);
    const child = start('nginx', 'nginx', ['-p', dir, '-c', file, '-e', join(dir, 'error.log')], { netns: at.netns });
    await waitListening(child, port, undefined, listen.protocols, at.host);
    return { host: at.host, port, pid: child.pid, stop: stopper(child) };
  },
};

/** @type {System} */
const nodePipe = {
  name: 'node-pipe',
  perWorkers: false,
  needs: [],
  protocols: ['tcp'],
  describe: () => 'bench/node-pipe-proxy.mjs: one Node process, socket.pipe() both ways (no worker setting: measured once per round, shown in every table)',
  async start({ at, backendHost, backendPort }) {
    const port = await freePort();
    const child = start('node-pipe', process.execPath, [join(here, 'node-pipe-proxy.mjs'), String(port), String(backendPort), at.host, backendHost], { netns: at.netns });
    await waitListening(child, port, undefined, undefined, at.host);
    return { host: at.host, port, pid: child.pid, stop: stopper(child) };
  },
};

/** @type {System} */
const direct = {
  name: 'direct',
  direct: true,
  perWorkers: false,
  needs: [],
  protocols: ['tcp', 'udp'],
  describe: () => 'no proxy: the client connects straight to the backend (the limit; measured once per round)',
  async start({ backendHost, backendPort }) {
    return { host: backendHost, port: backendPort, pid: null, stop: async () => '' };
  },
};

/**
 * A direct connection with the kernel's connection tracking on where lb4-nat runs (the root
 * namespace on loopback, the router namespace on veth): a table whose one rule reads `ct state`,
 * which makes netfilter track every connection there, as on any host with a stateful firewall.
 * lb4-nat cannot run without conntrack; this reference tells its cost apart from lb4's rules'.
 * @type {System}
 */
const directConntrack = {
  name: 'direct-conntrack',
  direct: true,
  perWorkers: false,
  needs: ['nft'],
  protocols: ['tcp', 'udp'],
  describe: () =>
    `no proxy, as \`direct\`, with connection tracking on where lb4-nat runs (an nftables table \`${natTable}\` whose one rule is \`ct state invalid counter\` in prerouting): the kernel's conntrack cost alone (measured once per round)`,
  async start({ at, backendHost, backendPort }) {
    if (!at.netns) atCleanupOnce(() => deleteNatTable(natTable));
    const rules = `table inet ${natTable} {\n  chain track {\n    type filter hook prerouting priority filter; policy accept;\n    ct state invalid counter\n  }\n}\n`;
    const r = nftIn(at.netns, ['-f', '-'], rules);
    if (r.status !== 0) throw new Error(`direct-conntrack: nft -f failed: ${(r.stderr || '').trim()}`);
    return { host: backendHost, port: backendPort, pid: null, stop: async () => (nftIn(at.netns, ['delete', 'table', 'inet', natTable]), '') };
  },
};

/**
 * The kernel's NAT with one static rule and nothing of lb4: an nftables table (\`${natTable}\`)
 * whose nat chains DNAT the listener's address and port to the backend, and no counting rules.
 * It is the floor of any nftables NAT data plane: what lb4-nat costs beyond it is lb4's rules'
 * (the backend choice, the per-backend counters). Same port every round, like lb4-nat, and for
 * the same reason (conntrack's TIME_WAIT entries and PAWS).
 * @returns {System}
 */
function kernelDnatSystem() {
  let listenPort = 0;
  return {
    name: 'kernel-dnat',
    perWorkers: false,
    needs: ['nft'],
    protocols: ['tcp'],
    describe: () =>
      `no lb4: one static nftables DNAT rule (table \`${natTable}\`, nat hooks prerouting and output, \`ip daddr HOST tcp dport PORT dnat to BACKEND\`), no counters: the floor of kernel NAT (measured once per round)`,
    async start({ at, backendHost, backendPort }) {
      if (!at.netns) atCleanupOnce(() => deleteNatTable(natTable));
      listenPort ||= await freePort();
      const port = listenPort;
      const rule = `ip daddr ${at.host} tcp dport ${port} dnat ip to ${backendHost}:${backendPort}`;
      const rules =
        `table inet ${natTable} {\n` +
        `  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n    ${rule}\n  }\n` +
        `  chain output {\n    type nat hook output priority -100; policy accept;\n    ${rule}\n  }\n}\n`;
      const r = nftIn(at.netns, ['-f', '-'], rules);
      if (r.status !== 0) throw new Error(`kernel-dnat: nft -f failed: ${(r.stderr || '').trim()}`);
      return { host: at.host, port, pid: null, stop: async () => (nftIn(at.netns, ['delete', 'table', 'inet', natTable]), '') };
    },
  };
}

const lb4Nat = lb4NatSystem();
const kernelDnat = kernelDnatSystem();
/** The two HAProxy settings, both measured in every run; the report's "best HAProxy" is the better per metric. */
export const HAPROXY_SYSTEMS = ['haproxy-splice-auto', 'haproxy-splice-rr'];
const haproxyAuto = haproxySystem(HAPROXY_SYSTEMS[0], 'auto');
const haproxyRr = haproxySystem(HAPROXY_SYSTEMS[1], 'always');

/** In table order. */
export const systems = [direct, directConntrack, lb4, lb4Nat, kernelDnat, haproxyAuto, haproxyRr, nginx, nodePipe];

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

/** The systems lb4 and lb4-nat are compared against (ratio to the best of them). */
export const anchors = [...HAPROXY_SYSTEMS, 'nginx'];
