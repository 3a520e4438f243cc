// Command-line options of `npm run bench -- [scenario...] [flags]`.

import { scenarios } from './scenarios/index.mjs';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { REPO, systems, withComparedBuilds } from './systems.mjs';
import { topologies } from './topology.mjs';

export const usage = `Usage: npm run bench -- [scenario ...] [options]

Scenarios (default: all): ${scenarios.map((s) => s.name).join(', ')}

Options:
  --workers LIST            worker counts to compare, e.g. 1,2 (default 1,2)
  --rounds N                rounds; systems alternate within each round (default 3, --quick 1)
  --quick                   one short smoke round: 1 s runs, 1 round
  --systems LIST            subset of ${systems.map((s) => s.name).join(',')} (default all; the
                            --compare-root builds always run)
  --iperf-seconds S         seconds per iperf3 run (default 5, --quick 1)
  --wrk-seconds S           seconds per wrk run (default 5, --quick 1)
  --wrk-threads N           wrk threads (default 2)
  --conn-rate-connections N wrk connections in conn-rate (default 32)
  --idle-connections N      idle connections in idle-memory (default 10000)
  --dns-seconds S           seconds per dnsperf run (default 5, --quick 1)
  --dns-clients N           dnsperf clients (-c: sockets, so source ports) in dns-rate (default 64)
  --dns-outstanding N       dnsperf queries in flight (-q) in dns-rate (default 256)
  --dns-latency-qps N       fixed query rate (dnsperf -Q) of dns-rate's latency run (default 10000)
  --udp-length BYTES        datagram size of iperf3 -u in udp-bulk (default 512)
  --http-backend-workers N  worker processes of the shared HTTP backend (default 1)
  --topology NAME           loopback (everything on 127.0.0.1, the default) or veth (client, system and
                            backends in three network namespaces joined by veth pairs; root only)
  --lb4-launch MODE         cli (dist/bin/lb4.js), lib (bench/lb4-proxy.mjs) or auto (cli if built); default auto
  --lb4-root DIR            measure the lb4 built in another checkout (build/Release + dist/); default this one
  --compare-root DIR        also measure the lb4 built in DIR, as system lb4@<commit of DIR/.lb4-commit>,
                            in the same rounds, with a ratio column lb4 / lb4@<commit>; repeatable
  --retry-disturbed CORES   measure a run again when other processes on the machine kept more than
                            CORES cores busy during it (keeps the less disturbed attempt; default off)
  --no-save                 print only; leave bench/results/ alone
  --verbose                 also print every round's values and each run's raw numbers
  -h, --help                this text
`;

/**
 * @typedef {object} Settings
 * @property {string[]} scenarios
 * @property {string[]} systems
 * @property {number[]} workers
 * @property {number} rounds
 * @property {boolean} quick
 * @property {number} iperfSeconds
 * @property {number} wrkSeconds
 * @property {number} wrkThreads
 * @property {number} connRateConnections
 * @property {number} idleConnections
 * @property {number} dnsSeconds
 * @property {number} dnsClients
 * @property {number} dnsOutstanding
 * @property {number} dnsLatencyQps
 * @property {number} udpLength
 * @property {number} httpBackendWorkers
 * @property {'loopback' | 'veth'} topology
 * @property {'auto' | 'cli' | 'lib'} lb4Launch
 * @property {string} lb4Root
 * @property {string[]} compareRoots more lb4 builds measured beside lb4 (--compare-root, in order)
 * @property {number | null} retryDisturbed
 * @property {boolean} save
 * @property {boolean} verbose
 * @property {boolean} help
 */

function positiveInt(flag, text) {
  if (!/^\d+$/.test(text ?? '') || Number(text) < 1) throw new Error(`${flag} wants a whole number >= 1, got ${JSON.stringify(text)}`);
  return Number(text);
}

function list(flag, text, known) {
  const items = (text ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new Error(`${flag} wants a comma-separated list`);
  for (const item of items) if (known && !known.includes(item)) throw new Error(`${flag}: unknown "${item}" (known: ${known.join(', ')})`);
  return items;
}

/**
 * @param {string[]} argv
 * @returns {Settings}
 */
export function parseOptions(argv) {
  const quick = argv.includes('--quick');
  /** @type {Settings} */
  const s = {
    scenarios: [],
    systems: systems.map((x) => x.name),
    workers: [1, 2],
    rounds: quick ? 1 : 3,
    quick,
    iperfSeconds: quick ? 1 : 5,
    wrkSeconds: quick ? 1 : 5,
    wrkThreads: 2,
    connRateConnections: 32,
    idleConnections: 10_000,
    dnsSeconds: quick ? 1 : 5,
    dnsClients: 64,
    dnsOutstanding: 256,
    dnsLatencyQps: 10_000,
    udpLength: 512,
    httpBackendWorkers: 1,
    topology: 'loopback',
    lb4Launch: 'auto',
    lb4Root: REPO,
    compareRoots: [],
    retryDisturbed: null,
    save: true,
    verbose: false,
    help: false,
  };
  const names = scenarios.map((x) => x.name);
  /** @type {string[] | null} */
  let systemsAsked = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--quick': break;
      case '--verbose': s.verbose = true; break;
      case '--no-save': s.save = false; break;
      case '-h': case '--help': s.help = true; break;
      case '--workers': s.workers = list(flag, value()).map((w) => positiveInt(flag, w)); break;
      case '--rounds': s.rounds = positiveInt(flag, value()); break;
      // Checked after the loop: the names of the compared builds are known only then.
      case '--systems': systemsAsked = list(flag, value()); break;
      case '--iperf-seconds': s.iperfSeconds = positiveInt(flag, value()); break;
      case '--wrk-seconds': s.wrkSeconds = positiveInt(flag, value()); break;
      case '--wrk-threads': s.wrkThreads = positiveInt(flag, value()); break;
      case '--conn-rate-connections': s.connRateConnections = positiveInt(flag, value()); break;
      case '--idle-connections': s.idleConnections = positiveInt(flag, value()); break;
      case '--dns-seconds': s.dnsSeconds = positiveInt(flag, value()); break;
      case '--dns-clients': s.dnsClients = positiveInt(flag, value()); break;
      case '--dns-outstanding': s.dnsOutstanding = positiveInt(flag, value()); break;
      case '--dns-latency-qps': s.dnsLatencyQps = positiveInt(flag, value()); break;
      case '--udp-length': {
        s.udpLength = positiveInt(flag, value());
        // iperf3 needs room for its own header (16 bytes) and a datagram fits IPv4's limit.
        if (s.udpLength < 16 || s.udpLength > 65_507) throw new Error(`${flag} wants 16 to 65507 bytes, got ${s.udpLength}`);
        break;
      }
      case '--http-backend-workers': s.httpBackendWorkers = positiveInt(flag, value()); break;
      case '--topology': s.topology = /** @type {any} */ (list(flag, value(), topologies)[0]); break;
      // Both HAProxy settings are systems of every run now; the option names them.
      case '--haproxy-splice': throw new Error(`${flag} is gone: every run measures haproxy-splice-auto and haproxy-splice-rr (pick with --systems)`);
      case '--retry-disturbed': {
        const v = value();
        if (!/^\d+(\.\d+)?$/.test(v ?? '')) throw new Error(`${flag} wants a number of cores, e.g. 0.3, got ${JSON.stringify(v)}`);
        s.retryDisturbed = Number(v);
        break;
      }
      case '--lb4-root': s.lb4Root = resolve(value()); break;
      case '--compare-root': {
        const dir = resolve(value() ?? '');
        if (!existsSync(join(dir, 'build/Release/lb4.node'))) throw new Error(`${flag}: no lb4 build in ${dir} (make one with: node bench/snapshot.mjs REV ${dir})`);
        s.compareRoots.push(dir);
        break;
      }
      case '--lb4-launch': s.lb4Launch = /** @type {any} */ (list(flag, value(), ['auto', 'cli', 'lib'])[0]); break;
      default:
        if (flag.startsWith('-')) throw new Error(`unknown option ${flag}`);
        if (!names.includes(flag)) throw new Error(`unknown scenario "${flag}" (known: ${names.join(', ')})`);
        s.scenarios.push(flag);
    }
  }
  if (s.scenarios.length === 0) s.scenarios = names;
  // Keep the declared order whatever order they were typed in.
  s.scenarios = names.filter((n) => s.scenarios.includes(n));
  // The compared builds are what --compare-root asked for, so they run whatever --systems says
  // (naming them there is allowed too).
  const all = withComparedBuilds(s.compareRoots);
  const known = all.map((x) => x.name);
  for (const n of systemsAsked ?? []) if (!known.includes(n)) throw new Error(`--systems: unknown "${n}" (known: ${known.join(', ')})`);
  s.systems = all.filter((x) => !systems.includes(x) || (systemsAsked ?? known).includes(x.name)).map((x) => x.name);
  return s;
}
