#!/usr/bin/env node
// `npm run bench:failover`: how long clients go unserved when the active node of an HA pair
// dies, for lb4 and for keepalived + HAProxy (1 s and 0.1 s advertisements), measured in the
// same run on the same network: namespaces this script makes (lb4fo-<pid>-*) and always deletes,
// with every process in them, on success, error, SIGINT and SIGTERM. See bench/README.md.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { addNamespace, deleteNamespaceNow, nodeCommand, orphanNamespaces } from '../test/helpers/netns-core.mjs';
import { outage, pairAddresses, pairHosts, tcpNameServer, tcpProber, wirePair } from '../test/helpers/pair-topology.mjs';
import { perRoundTable, ratios, resultsTable, save, summarise } from './failover-report.mjs';
import { BACKEND_PORT, failoverSystems, VIP_PORT } from './failover-systems.mjs';
import { cleanup, installCleanupHandlers, removeAtExit, start, stop } from './processes.mjs';
import { installLine, which } from './tools.mjs';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const NS_PREFIX = 'lb4fo';
/** The client opens a connection this often (ms), and gives one up after PROBE_TIMEOUT_MS. */
const PROBE_EVERY_MS = 10;
const PROBE_TIMEOUT_MS = 1000;
/** The kill comes this long (uniformly random, ms) after the pair is settled: every phase of a 100 ms heartbeat or a 1 s advertisement. */
const KILL_JITTER_MS = 1000;
/** Bounds on waits that only matter when something is broken. */
const SERVED_TIMEOUT_MS = 30_000;
const SETTLE_TIMEOUT_MS = 60_000;

const usage = `Usage: npm run bench:failover -- [options]

Options:
  --kills N        SIGKILLs of the active node per system (default 20)
  --stops N        SIGTERMs of the active lb4 node, for lb4's clean-stop figure (default: --kills; 0 skips)
  --block N        failures in a row for one system before the next system takes its turn (default 5)
  --systems LIST   subset of ${failoverSystems.map((s) => s.name).join(',')} (default all)
  --no-save        print only; leave bench/results/ alone
  -h, --help       this text

Runs as root (network namespaces). Needs lb4 built (npm run build), keepalived and haproxy.
`;

function parseOptions(argv) {
  const o = { kills: 20, stops: undefined, block: 5, systems: failoverSystems.map((s) => s.name), save: true, help: false };
  const count = (flag, text, min) => {
    if (!/^\d+$/.test(text ?? '') || Number(text) < min) throw new Error(`${flag} wants a whole number >= ${min}, got ${JSON.stringify(text)}`);
    return Number(text);
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--kills') o.kills = count(flag, argv[++i], 1);
    else if (flag === '--stops') o.stops = count(flag, argv[++i], 0);
    else if (flag === '--block') o.block = count(flag, argv[++i], 1);
    else if (flag === '--systems') {
      o.systems = (argv[++i] ?? '').split(',').filter(Boolean);
      const unknown = o.systems.filter((s) => !failoverSystems.some((x) => x.name === s));
      if (unknown.length > 0 || o.systems.length === 0) throw new Error(`--systems: unknown ${JSON.stringify(unknown.join(',') || argv[i])}; choose from ${failoverSystems.map((s) => s.name).join(',')}`);
    } else if (flag === '--no-save') o.save = false;
    else if (flag === '-h' || flag === '--help') o.help = true;
    else throw new Error(`unknown option ${JSON.stringify(flag)}`);
  }
  o.stops ??= o.kills;
  return o;
}

const log = (line = '') => process.stdout.write(`${line}\n`);

/** Polls `check` every `everyMs` until it returns a truthy value, which it resolves with. */
async function until(check, ms, what, everyMs = 20) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

// ---- namespaces: made here, deleted with every process in them whatever happens ----

const madeNamespaces = new Set();

/** Kills every process in our namespaces, then deletes them; synchronous, so it runs in 'exit'. */
function deleteNamespacesNow() {
  for (const name of madeNamespaces) {
    let pids = [];
    try {
      pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
    } catch {
      // already gone
    }
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }
    deleteNamespaceNow(name);
  }
  madeNamespaces.clear();
}

async function makeTopology() {
  for (const name of await orphanNamespaces(NS_PREFIX)) {
    log(`failover: deleting ${name}, left by a run that no longer runs`);
    madeNamespaces.add(name);
  }
  deleteNamespacesNow();
  const hosts = {};
  for (const short of pairHosts) {
    const name = `${NS_PREFIX}-${process.pid}-${short}`;
    madeNamespaces.add(name);
    hosts[short] = await addNamespace(name);
  }
  await wirePair(hosts);
  return hosts;
}

// ---- the client and the backends ----

/** The TCP prober in the client's namespace; its attempts, as they end. */
function startProber(ns) {
  const [command, args] = nodeCommand(tcpProber, [pairAddresses.vip, String(VIP_PORT), String(PROBE_EVERY_MS), String(PROBE_TIMEOUT_MS)], ns.name);
  // Spawned directly (not through processes.mjs, which keeps a child's whole output as a growing
  // string): 100 lines a second for the whole run. It dies with its namespace at the end.
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  const attempts = [];
  createInterface({ input: child.stdout }).on('line', (line) => attempts.push(JSON.parse(line)));
  return {
    attempts,
    /** Drops attempts that ended long ago: a long run would otherwise keep every one. */
    forgetBefore(ms) {
      const i = attempts.findIndex((a) => a.end >= ms);
      attempts.splice(0, i < 0 ? attempts.length : i);
    },
    servedAfter: (ms) => attempts.find((a) => a.ok && a.start > ms),
  };
}

async function startBackend(ns, name) {
  const [command, args] = nodeCommand(tcpNameServer, [name, String(BACKEND_PORT)], ns.name);
  const child = start(`backend ${name}`, command, args);
  await until(() => child.stdout().includes('"ready":true') || !child.running, 10_000, `backend ${name} to listen`);
  if (!child.running) throw new Error(`backend ${name} exited: ${child.stderr().trim()}`);
  return child;
}

// ---- one pair of one system ----

class Pair {
  /** @type {import('./processes.mjs').Child[]} */ #a = [];
  /** @type {import('./processes.mjs').Child[]} */ #b = [];
  constructor(system, ctx, hosts, client, macA) {
    this.system = system;
    this.ctx = ctx;
    this.hosts = hosts;
    this.client = client;
    this.macA = macA;
    const { a, b } = pairAddresses;
    this.nodeA = { id: 'lb-a', ns: hosts.a, self: a, peer: b, priority: 200 };
    this.nodeB = { id: 'lb-b', ns: hosts.b, self: b, peer: a, priority: 100 };
  }

  async start() {
    this.#a = this.system.startNode(this.ctx, this.nodeA);
    this.#b = this.system.startNode(this.ctx, this.nodeB);
    await this.settle('the pair to start');
  }

  #holds = async (ns) => (await ns.addresses('eth0')).includes(`${pairAddresses.vip}/${pairAddresses.prefix}`);

  #checkRunning(children) {
    const dead = children.find((c) => !c.running);
    if (dead) throw new Error(`${dead.name} exited: ${dead.stderr().trim().split('\n').slice(-5).join('\n')}`);
  }

  /**
   * Node a active and alone: it holds the VIP, node b does not, the client's neighbour entry for
   * the VIP is node a's MAC, and a connection started after that was served.
   */
  async settle(what) {
    const { a, b, c } = this.hosts;
    await until(
      async () => {
        this.#checkRunning([...this.#a, ...this.#b]);
        return (await this.#holds(a)) && !(await this.#holds(b)) && (await c.neighbour(pairAddresses.vip, 'eth0'))?.mac === this.macA;
      },
      SETTLE_TIMEOUT_MS,
      `${what}: node a holding the VIP alone, the client sending to it`,
      50,
    );
    const since = Date.now();
    await until(() => this.client.servedAfter(since), SERVED_TIMEOUT_MS, `${what}: the client to be served`);
  }

  /** Fails node a (SIGKILL of all its processes, or SIGTERM), measures, restarts it, settles. */
  async failOnce() {
    const { a } = this.hosts;
    const pids = await a.pids();
    this.client.forgetBefore(Date.now() - 60_000);
    await sleep(Math.random() * KILL_JITTER_MS);
    this.#checkRunning([...this.#a, ...this.#b]);
    const at = Date.now();
    // A crash hits every process of the node at the same instant. Signals go out one by one, so
    // every process is stopped first and only then killed: keepalived's VRRP child is told when
    // its parent dies (SIGTERM) and, if it ran before its own SIGKILL, would send a priority-0
    // advertisement, a clean handover that the backup follows within its skew time, not a crash.
    const send = (signal) => {
      for (const pid of pids) {
        try {
          process.kill(pid, signal);
        } catch {
          // gone already
        }
      }
    };
    if (this.system.signal === 'SIGKILL') send('SIGSTOP');
    send(this.system.signal);
    const first = await until(() => outage(this.client.attempts, at), SERVED_TIMEOUT_MS, `the client to be served after the ${this.system.signal}`);
    // Node a must be gone before it starts again: after SIGTERM lb4 drains (up to 1 s).
    await Promise.race([Promise.all(this.#a.map((x) => x.exited)), sleep(10_000)]);
    await until(async () => (await a.pids()).length === 0, 10_000, "node a's processes to exit");
    this.#a = this.system.startNode(this.ctx, this.nodeA);
    await this.settle('node a to take the VIP back (preemption)');
    // Connections started before the first served one end within the client's timeout: wait for
    // them before counting the failures.
    await sleep(Math.max(0, at + first.servedAfterMs + PROBE_TIMEOUT_MS + 50 - Date.now()));
    return outage(this.client.attempts, at);
  }

  /** Kills both nodes and removes the VIP either may have left behind, for the next system. */
  async stop() {
    for (const ns of [this.hosts.a, this.hosts.b]) {
      for (const pid of await ns.pids()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    }
    await Promise.all([...this.#a, ...this.#b].map((c) => stop(c, 'SIGKILL', 1000)));
    for (const ns of [this.hosts.a, this.hosts.b]) {
      await until(async () => (await ns.pids()).length === 0, 10_000, `the processes of ${ns.name} to exit`);
      await ns.ip('addr', 'del', `${pairAddresses.vip}/${pairAddresses.prefix}`, 'dev', 'eth0').catch(() => {});
    }
  }
}

// ---- the run ----

/** Which system runs when: blocks of `block` failures, systems taking turns, the first one rotating. */
function schedule(systems, counts, block) {
  const left = new Map(systems.map((s) => [s.name, counts(s)]));
  const out = [];
  for (let pass = 0; [...left.values()].some((n) => n > 0); pass++) {
    for (let i = 0; i < systems.length; i++) {
      const s = systems[(i + pass) % systems.length];
      const n = Math.min(block, left.get(s.name));
      if (n > 0) out.push({ system: s, failures: n });
      left.set(s.name, left.get(s.name) - n);
    }
  }
  return out;
}

/** The first line a program prints about its version (keepalived writes it to stderr). */
function versionOf(file, args) {
  const r = spawnSync(file, args, { encoding: 'utf8', timeout: 5000 });
  return `${r.stdout ?? ''}\n${r.stderr ?? ''}`.split('\n').map((l) => l.trim()).find(Boolean) ?? 'unknown';
}

function git(args) {
  try {
    return execFileSync('git', args, { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

async function main() {
  let o;
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench:failover: ${err.message}\n\n${usage}`);
    process.exit(2);
  }
  if (o.help) return log(usage);
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench:failover: needs root (network namespaces, VIPs, VRRP)\n');
    process.exit(1);
  }
  const lb4Cli = join(REPO, 'dist', 'bin', 'lb4.js');
  if (!existsSync(lb4Cli) || !existsSync(join(REPO, 'build', 'Release', 'lb4.node'))) {
    process.stderr.write('bench:failover: lb4 is not built here: run npm run build\n');
    process.exit(1);
  }
  const chosen = failoverSystems.filter((s) => o.systems.includes(s.name) && (s.signal === 'SIGKILL' ? o.kills : o.stops) > 0);
  const systems = chosen.filter((s) => {
    const missing = s.needs.filter((p) => !which(p));
    if (missing.length > 0) log(`failover: skipping ${s.label}: ${missing.join(', ')} missing; install with:\n  ${installLine(missing)}`);
    return missing.length === 0;
  });
  if (systems.length === 0) {
    log('failover: nothing left to run');
    process.exitCode = 1;
    return;
  }

  installCleanupHandlers();
  process.on('exit', deleteNamespacesNow);
  const began = Date.now();
  const when = new Date(began).toISOString();
  const loadBefore = loadavg();
  const dir = mkdtempSync(join(tmpdir(), 'lb4-failover-'));
  removeAtExit(dir);
  const keyFile = join(dir, 'cluster.key');
  writeFileSync(keyFile, `${'5e'.repeat(32)}\n`);
  chmodSync(keyFile, 0o600);
  const ctx = { dir, keyFile, lb4Cli, starts: 0 };

  const hosts = await makeTopology();
  await startBackend(hosts.s1, 's1');
  await startBackend(hosts.s2, 's2');
  const client = startProber(hosts.c);
  const macA = await hosts.a.mac('eth0');

  const plan = schedule(systems, (s) => (s.signal === 'SIGKILL' ? o.kills : o.stops), o.block);
  log(`failover: ${plan.reduce((n, p) => n + p.failures, 0)} failures over ${systems.map((s) => s.label).join(', ')}; blocks of ${o.block}`);
  const results = Object.fromEntries(systems.map((s) => [s.name, []]));
  for (const { system, failures } of plan) {
    const pair = new Pair(system, ctx, hosts, client, macA);
    try {
      await pair.start();
      for (let i = 0; i < failures; i++) {
        const r = await pair.failOnce();
        results[system.name].push(r);
        log(`  ${system.label.padEnd(28)} ${system.signal} #${String(results[system.name].length).padStart(2)}: served again after ${r.servedAfterMs.toFixed(0).padStart(5)} ms, ${r.failedProbes} failed connections`);
      }
    } finally {
      await pair.stop();
    }
  }

  const summaries = Object.fromEntries(systems.map((s) => [s.name, summarise(results[s.name])]));
  const anchors = systems.filter((s) => s.name.startsWith('keepalived')).map((s) => s.name);
  const ratioTable = ratios(summaries, anchors);
  const elapsedMs = Date.now() - began;
  const host = { cores: cpus().length, kernel: release(), loadavgBefore: loadBefore, loadavgAfter: loadavg() };
  const versions = {
    node: process.version,
    haproxy: which('haproxy') ? versionOf('haproxy', ['-v']) : null,
    keepalived: which('keepalived') ? versionOf('keepalived', ['--version']) : null,
    lb4: `${git(['rev-parse', '--short', 'HEAD'])}${git(['status', '--porcelain', '--', 'lib', 'native', 'bin']) ? ' (with uncommitted changes)' : ''}`,
  };
  const command = ['npm run bench:failover', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' ');
  const method =
    `Network namespaces on one machine: a client, two balancer nodes (a, b) and two backends on one bridge, the VIP ${pairAddresses.vip}/${pairAddresses.prefix}. ` +
    `The client opens a new TCP connection to VIP:${VIP_PORT} every ${PROBE_EVERY_MS} ms; a connection counts as served when a backend's reply arrives (it fails on refusal, reset, or no reply within ${PROBE_TIMEOUT_MS} ms). ` +
    `Each failure: with node a active and the client served, after a random 0-${KILL_JITTER_MS} ms wait (so failures fall at every phase of the heartbeat or advertisement), ` +
    'every process of node a gets the signal at once (SIGKILL: a machine failure; every process is stopped with SIGSTOP before any is killed, so none can hand over cleanly; its kernel stays, with the VIP on its interface, so connections to it are refused until the client follows the gratuitous ARP of node b). ' +
    'Outage = from the signal to the end of the first connection started after it that was served; failed connections = those started in between. ' +
    'Node a is then restarted and takes the VIP back (preemption) before the next failure. Systems take turns in blocks, so load on the machine falls on all of them alike.';
  const caveat = `The client, both nodes and the backends share this machine's ${host.cores} cores with whatever else runs on it (load average ${loadBefore.map((x) => x.toFixed(2)).join(', ')} at the start, ${host.loadavgAfter.map((x) => x.toFixed(2)).join(', ')} at the end).`;
  const md = [
    '# Failover: lb4 pair vs keepalived + HAProxy',
    '',
    `${when.slice(0, 16).replace('T', ' ')} UTC, \`${command}\`, ${(elapsedMs / 1000).toFixed(0)} s; lb4 ${versions.lb4}, ${versions.haproxy ?? 'no haproxy'}, ${versions.keepalived ?? 'no keepalived'}, Node ${process.version}.`,
    '',
    caveat,
    '',
    'Outage: time from the failure of the active node until a new connection is served again (ms). lb4 / system: lb4\'s crash (SIGKILL) outage divided by the system\'s; below 1, lb4 is back sooner.',
    '',
    resultsTable(systems, summaries, ratioTable),
    '',
    '## Method',
    '',
    method,
    '',
    ...systems.map((s) => `- **${s.label}**: ${s.describe}.`),
    '',
    '## Per failure',
    '',
    perRoundTable(systems, results),
    '',
  ].join('\n');
  log();
  log(md);
  if (o.save) {
    const json = { when, command, elapsedMs, settings: o, host, versions, method, systems: systems.map((s) => ({ name: s.name, label: s.label, signal: s.signal, config: s.describe })), summaries, ratios: ratioTable, rounds: results };
    const stamp = save(join(REPO, 'bench', 'results'), when, md, json);
    log(`saved bench/results/failover-latest.md, failover-latest.json (and history/${stamp}.*)`);
  }
}

try {
  await main();
} finally {
  await cleanup();
  deleteNamespacesNow();
}
