#!/usr/bin/env node
// `npm run bench`: starts the shared backends, then, round after round, each system under test in
// turn (the order rotates every round), runs each scenario through it, and reports medians,
// lb4's ratio to the best of HAProxy and nginx, and to any other lb4 build (--compare-root), with
// the run-to-run spread to judge them by. See bench/README.md.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { portFor, startDns, startHttp, startIdle, startIperf3, stopBackend } from './backends.mjs';
import { metrics } from './metrics.mjs';
import { benchCpuSeconds, machineCpu } from './proc.mjs';
import { parseOptions, usage } from './options.mjs';
import { bestTable, natTargets, ratiosToBest } from './anchors.mjs';
import { atCleanup, cleanup, FD_LIMIT, installCleanupHandlers, MAX_IDLE_FLOWS, removeAtExit, WANTED_FD_LIMIT } from './processes.mjs';
import { anchorLabel, loadTable, medianTable, natTargetTable, perRoundTable, ratioSvg, ratios, ratiosToBuilds, spreads, spreadTable, summarise } from './report.mjs';
import { scenarios } from './scenarios/index.mjs';
import { anchors, HAPROXY_SYSTEMS, lb4Cli, TCP_ONLY, withComparedBuilds } from './systems.mjs';
import { makeTopology, removeLeftovers } from './topology.mjs';
import { detectTools, installLine, versions } from './tools.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const resultsDir = join(here, 'results');
const HISTORY_KEEP = 6;

const CAVEAT =
  'The load generator (iperf3/wrk/helper), the backends and the system under test all share this machine\'s ' +
  `${cpus().length} CPU cores (on loopback, or in network namespaces with --topology veth): numbers are relative comparisons under contention, not what any of these proxies does on dedicated hardware.`;

/** @param {number} ms */
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;

function log(line = '') {
  process.stdout.write(`${line}\n`);
}

function git(root, args) {
  try {
    return execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

/** What lb4 build is measured: the checkout, its commit and whether its sources have edits. */
function lb4Build(root) {
  const addon = join(root, 'build/Release/lb4.node');
  const dirty = git(root, ['status', '--porcelain', '--', 'native', 'lib', 'bin']);
  const snapshot = join(root, '.lb4-commit');
  const commit = existsSync(snapshot)
    ? `${readFileSync(snapshot, 'utf8').trim()} (snapshot made by bench/snapshot.mjs)`
    : git(root, ['rev-parse', '--short', 'HEAD']) || `unknown (${root} is not a git checkout)`;
  return {
    root,
    commit,
    uncommittedChanges: dirty ? dirty.split('\n').length : 0,
    addonBuilt: existsSync(addon) ? statSync(addon).mtime.toISOString() : null,
  };
}

function formatMetrics(values) {
  return metrics
    .filter((m) => m.key in values)
    .map((m) => `${m.key}=${typeof values[m.key] === 'number' ? values[m.key].toFixed(m.digits) : '–'}`)
    .join(' ');
}

function prune(dir, keep) {
  // Only this bench's copies (named by their time stamp): bench/failover.mjs keeps its own
  // failover-* copies in the same directory and prunes them itself.
  const files = readdirSync(dir).filter((f) => /^\d/.test(f)).sort();
  const stamps = [...new Set(files.map((f) => f.replace(/\.(md|json)$/, '')))];
  for (const stamp of stamps.slice(0, Math.max(0, stamps.length - keep))) {
    for (const f of files.filter((x) => x.startsWith(`${stamp}.`))) rmSync(join(dir, f));
  }
}

/**
 * Whether a system sits out a scenario: `direct` has no proxy to measure in proxy-only
 * scenarios, and a system that cannot forward a protocol the scenario needs (UDP) cannot run it.
 */
function skips(scenario, system) {
  if (scenario.proxyOnly && system.direct) return true;
  return !(scenario.listen ?? TCP_ONLY).protocols.every((p) => system.protocols.includes(p));
}

async function main() {
  let settings;
  try {
    settings = parseOptions(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`bench: ${e.message}\n\n${usage}`);
    process.exit(2);
  }
  if (settings.help) {
    log(usage);
    return;
  }
  installCleanupHandlers();
  const began = Date.now();
  const tools = detectTools();

  // What can run here: a missing tool skips what needs it, with the line that installs it.
  const missingTools = Object.keys(tools).filter((t) => !tools[t]);
  const systems = withComparedBuilds(settings.compareRoots);
  const chosenSystems = systems.filter((s) => settings.systems.includes(s.name));
  const isRoot = process.getuid?.() === 0;
  if (settings.topology === 'veth' && !isRoot) {
    log('bench: --topology veth makes network namespaces: run it as root');
    process.exitCode = 2;
    return;
  }
  // The systems that write nftables tables (lb4-nat and the kernel references) need root (CAP_NET_ADMIN).
  const needsRoot = (s) => s.needs.includes('nft');
  const runnableSystems = chosenSystems.filter((s) => s.needs.every((t) => tools[t]) && (!needsRoot(s) || isRoot));
  for (const s of chosenSystems) if (!isRoot && needsRoot(s)) log(`bench: skipping ${s.name}: it writes nftables rules, which needs root (CAP_NET_ADMIN)`);
  const chosenScenarios = scenarios.filter((s) => settings.scenarios.includes(s.name));
  const runnableScenarios = chosenScenarios.filter((s) => s.needs.every((t) => tools[t]));
  for (const s of [...chosenSystems, ...chosenScenarios]) {
    const missing = s.needs.filter((t) => !tools[t]);
    if (missing.length > 0) log(`bench: skipping ${s.name}: ${missing.join(', ')} missing; install with:\n  ${installLine(missing)}`);
  }
  if (runnableSystems.length === 0 || runnableScenarios.length === 0) {
    log('bench: nothing left to run');
    process.exitCode = 1;
    return;
  }
  const fdNote =
    FD_LIMIT < WANTED_FD_LIMIT
      ? `The descriptor limit cannot be raised above ${FD_LIMIT} here (the hard limit; raising it needs CAP_SYS_RESOURCE), so every process runs with ulimit -n ${FD_LIMIT}` +
        (settings.idleConnections > MAX_IDLE_FLOWS ? ` and idle-memory holds ${MAX_IDLE_FLOWS} connections instead of ${settings.idleConnections} (a proxy needs two descriptors per flow).` : '.')
      : '';
  if (settings.idleConnections > MAX_IDLE_FLOWS) settings.idleConnections = MAX_IDLE_FLOWS;
  // Every lb4 build is launched the same way, so the CLI only if each of them has one.
  const lb4Builds = runnableSystems.filter((s) => s.rootOf);
  if (settings.lb4Launch === 'auto') settings.lb4Launch = lb4Builds.every((s) => existsSync(lb4Cli(s.rootOf(settings)))) ? 'cli' : 'lib';

  const tmp = mkdtempSync(join(tmpdir(), 'lb4-bench-'));
  removeAtExit(tmp);

  // Plan and a time estimate.
  const perRound = runnableScenarios.reduce((sum, sc) => {
    const instances = runnableSystems.reduce(
      (n, sys) => n + (skips(sc, sys) ? 0 : sys.perWorkers ? settings.workers.length : 1),
      0,
    );
    return sum + instances * (sc.estimateSeconds(settings) + 0.5);
  }, 0);
  const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const host = { kernel: release(), cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, loadBefore: loadavg(), loadAfter: '' };
  const toolVersions = versions(tools);
  const build = lb4Build(settings.lb4Root);
  const comparedBuilds = lb4Builds.filter((s) => s.name !== 'lb4').map((s) => ({ name: s.name, ...lb4Build(s.rootOf(settings)) }));
  const buildLine = (b) => `${b.commit}${b.uncommittedChanges ? ` + ${b.uncommittedChanges} uncommitted file(s)` : ''}, addon built ${b.addonBuilt}`;
  log(`lb4 bench: ${settings.quick ? 'quick smoke run' : 'full run'}, ${settings.rounds} round(s), workers ${settings.workers.join(',')}`);
  log(`  systems:   ${runnableSystems.map((s) => s.name).join(', ')}`);
  log(`  scenarios: ${runnableScenarios.map((s) => s.name).join(', ')}`);
  log(`  host:      ${host.cores} cores (${host.cpu}), Linux ${host.kernel}; lb4 ${buildLine(build)}`);
  for (const b of comparedBuilds) log(`  compared:  ${b.name}: ${b.root}, ${buildLine(b)}`);
  log(`  estimate:  about ${Math.ceil((perRound * settings.rounds) / 60)} min`);
  log(`  note:      ${CAVEAT}`);
  if (fdNote) log(`  note:      ${fdNote}`);
  log();

  // Namespaces and nftables tables a killed run left, then this run's topology (deleted at exit).
  if (isRoot) {
    const leftovers = await removeLeftovers();
    if (leftovers.length) log(`bench: removed what an earlier run left: ${leftovers.join(', ')}`);
  }
  const topology = await makeTopology(settings.topology);
  atCleanup(topology.teardown);
  log(`  topology:  ${topology.description}`);
  log();

  // The shared backends, started once.
  const needBackend = new Set(runnableScenarios.map((s) => s.backend));
  const backends = {};
  if (needBackend.has('iperf3')) backends.iperf3 = await startIperf3(tmp, topology.backend);
  if (needBackend.has('http')) backends.http = await startHttp(tmp, { useNginx: tools.nginx, processes: settings.httpBackendWorkers, systems: runnableSystems.length }, topology.backend);
  if (needBackend.has('idle')) backends.idle = await startIdle(topology.backend, topology.client);
  if (needBackend.has('dns')) backends.dns = await startDns(tmp, topology.backend);
  const startArgs = (backend, workers, scenario, system) => ({ tmp, at: topology.system, backendHost: topology.backend.host, backendPort: portFor(backend, runnableSystems.indexOf(system)), workers, listen: scenario.listen ?? TCP_ONLY });

  /** @type {import('./report.mjs').RunRecord[]} */
  const runs = [];
  /** @type {Map<string, Set<string>>} stderr lines per system, for the notes */
  const stderrLines = new Map();
  const launchNotes = [];

  /**
   * Starts one system, runs one scenario through it, stops it.
   * @returns {Promise<import('./report.mjs').RunRecord>}
   */
  async function measure({ round, workers, scenario, system, backend, label }) {
    const t0 = Date.now();
    const record = { round, workers: system.perWorkers ? workers : null, scenario: scenario.name, system: system.name, metrics: {}, raw: {}, notes: [] };
    let target;
    try {
      target = await system.start(startArgs(backend, workers, scenario, system), settings);
    } catch (e) {
      let error = e;
      if (system.rootOf && settings.lb4Launch === 'cli') {
        // The CLI may be half-finished in a working tree: fall back to the library, for every lb4
        // build from here on, so that they stay launched alike.
        launchNotes.push(`${system.name} CLI failed to start (${e.message.split('\n')[0]}); switched to bench/lb4-proxy.mjs (startBalancer) for every lb4 build`);
        settings.lb4Launch = 'lib';
        try {
          target = await system.start(startArgs(backend, workers, scenario, system), settings);
        } catch (e2) {
          error = e2;
        }
      }
      if (!target) {
        record.notes.push(`start failed: ${error.message}`);
        log(`${label} start failed: ${error.message.split('\n')[0]}`);
        return record;
      }
    }
    // CPU the rest of the machine used meanwhile: busy time minus the bench's own processes.
    // Only a flag for disturbed runs (kernel threads working for the bench count as other).
    const m0 = machineCpu();
    const own0 = benchCpuSeconds();
    const wall0 = Date.now();
    try {
      // The load generators run where the topology puts the client.
      target.clientNetns = topology.client.netns;
      const result = await scenario.run({ target, settings, backend, tmp });
      Object.assign(record, result);
      if (system.direct) for (const m of metrics) if (m.proxyOnly) delete record.metrics[m.key];
    } catch (e) {
      record.notes.push(`scenario failed: ${e.message}`);
    } finally {
      const m1 = machineCpu();
      const wall = (Date.now() - wall0) / 1000;
      record.otherCores = Math.max(0, (m1.busy - m0.busy - (benchCpuSeconds() - own0)) / wall);
      record.stealCores = (m1.steal - m0.steal) / wall;
      const stderr = await target.stop();
      const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
      if (!stderrLines.has(system.name)) stderrLines.set(system.name, new Set());
      for (const l of lines) if (stderrLines.get(system.name).size < 12) stderrLines.get(system.name).add(l.slice(0, 300));
    }
    log(`${label} ${formatMetrics(record.metrics)} (${secs(Date.now() - t0)}, other load ${record.otherCores.toFixed(2)} cores${record.stealCores >= 0.01 ? `, steal ${record.stealCores.toFixed(2)}` : ''})${record.notes.length ? `\n    notes: ${record.notes.join('; ')}` : ''}`);
    if (settings.verbose) log(`    raw: ${JSON.stringify(record.raw)}`);
    return record;
  }

  // Compared builds (lb4@<commit>) have longer names than the fixed systems.
  const nameWidth = Math.max(9, ...runnableSystems.map((s) => s.name.length));
  for (let round = 1; round <= settings.rounds; round++) {
    // Rotating the order each round spreads any drift (heat, TIME_WAIT build-up) over all systems.
    const order = runnableSystems.map((_, i) => runnableSystems[(i + round - 1) % runnableSystems.length]);
    for (const scenario of runnableScenarios) {
      const backend = backends[scenario.backend];
      for (const [wi, workers] of settings.workers.entries()) {
        for (const system of order) {
          if (!system.perWorkers && wi > 0) continue;
          if (skips(scenario, system)) continue;
          const label = `r${round}/${settings.rounds} ${system.perWorkers ? `w=${workers}` : 'w=-'} ${scenario.name.padEnd(14)} ${system.name.padEnd(nameWidth)}`;
          let record = await measure({ round, workers, scenario, system, backend, label });
          // On a shared machine, a run that competed with much other work is measured once more
          // and the less disturbed attempt is kept. The choice looks only at the load outside the
          // bench, never at the result.
          if (settings.retryDisturbed !== null && record.otherCores > settings.retryDisturbed) {
            const again = await measure({ round, workers, scenario, system, backend, label: `${label.trimEnd()} (again)`.padEnd(label.length) });
            const kept = again.otherCores < record.otherCores ? again : record;
            kept.remeasured = `other load ${record.otherCores.toFixed(2)} cores on the first attempt, ${again.otherCores.toFixed(2)} on the second; kept the ${kept === again ? 'second' : 'first'}`;
            record = kept;
          }
          runs.push(record);
        }
      }
    }
  }
  for (const b of Object.values(backends)) await stopBackend(b);

  // Summary.
  host.loadAfter = loadavg();
  const systemNames = runnableSystems.map((s) => s.name);
  const summary = summarise(runs, settings.workers, systemNames);
  const ratioTable = systemNames.includes('lb4') ? ratios(summary, anchors.filter((a) => systemNames.includes(a))) : {};
  const anchorsRun = anchors.filter((a) => systemNames.includes(a));
  const natRatios = systemNames.includes('lb4-nat') && anchorsRun.length ? ratiosToBest(summary, anchorsRun, 'lb4-nat') : null;
  const haproxyRun = HAPROXY_SYSTEMS.filter((a) => systemNames.includes(a));
  const bestHaproxy = haproxyRun.length === 2 ? bestTable(summary, haproxyRun) : null;
  const targets = systemNames.includes('lb4-nat') ? natTargets(summary, anchorsRun) : null;
  const spreadByMetric = spreads(summary);
  const buildTable = systemNames.includes('lb4') ? ratiosToBuilds(summary, comparedBuilds.map((b) => b.name)) : {};
  const elapsedMs = Date.now() - began;
  const usedAnchors = anchors.filter((a) => systemNames.includes(a));
  const when = new Date().toISOString();
  const command = `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim();

  const md = [];
  md.push(`# lb4 bench results`);
  md.push('');
  md.push(`${settings.quick ? 'Quick smoke run' : 'Full run'} of ${when}, \`${command}\`: ${settings.rounds} round(s), medians over rounds; took ${secs(elapsedMs)}.`);
  md.push('');
  md.push(`- Host: ${host.cores} cores (${host.cpu}), Linux ${host.kernel}, topology ${topology.description}. Load average (1/5/15 min) before: ${host.loadBefore}, after: ${host.loadAfter} (anything else running on the machine competes too).`);
  md.push(`- **Caveat:** ${CAVEAT}`);
  if (fdNote) md.push(`- ${fdNote}`);
  for (const b of [{ name: 'lb4', ...build }, ...comparedBuilds]) {
    md.push(`- ${b.name}: ${b.root}, commit ${b.commit}${b.uncommittedChanges ? ` with ${b.uncommittedChanges} uncommitted file(s) in native/ lib/ bin/` : ''}, addon built ${b.addonBuilt}.`);
  }
  md.push(`- Versions: ${Object.entries(toolVersions).map(([k, v]) => `${k}: ${v}`).join('; ')}.`);
  md.push('');
  md.push('Systems:');
  md.push('');
  for (const s of runnableSystems) md.push(`- \`${s.name}\`: ${s.describe(settings)}`);
  md.push('');
  md.push('Scenarios and backends:');
  md.push('');
  for (const s of runnableScenarios) md.push(`- \`${s.name}\` (backend: ${backends[s.backend].description}): ${s.describe(settings)}`);
  md.push('');
  if (usedAnchors.length) {
    md.push(
      `The ratio columns are lb4's (and lb4-nat's) median divided by the best median of ${usedAnchors.join(', ')}: "best" is the higher one for throughput and rates, the lower one for CPU per GB, latency and memory. So for a rate a ratio above 1 is lb4 ahead, for CPU/latency/memory a ratio below 1 is. In brackets, with two rounds or more, the lowest and highest of the same ratio taken round by round (each round against that round's best anchor, measured seconds apart): a ratio whose bracket holds 1 is not a difference this run can show.` +
        (bestHaproxy ? ' "best HAProxy" is the better of the two HAProxy settings for each metric on its own (in brackets, which one): HAProxy is judged by its better setting, metric by metric.' : ''),
    );
  } else {
    md.push('No anchor (HAProxy, nginx) ran, so there is no ratio to the best anchor.');
  }
  if (comparedBuilds.length) {
    md.push('');
    md.push(
      `Each "lb4 / lb4@..." column is lb4's median divided by that build's (after / before when lb4 is the newer build): for throughput and rates a ratio above 1 is lb4 ahead, for CPU/latency/memory a ratio below 1 is; in brackets the lowest and highest of the same ratio taken round by round (both builds ran in every round). ` +
        `"within/beyond N % spread" says whether the ratio is off 1 by more than the run-to-run spread, the larger of the two builds' (max - min) / median over the rounds (table "Run-to-run spread"); **beyond** in bold marks lb4 worse by more than the rounds varied. With one round there is no spread.`,
    );
  }
  for (const w of settings.workers) {
    md.push('');
    md.push(`## workers = ${w} (lb4 --workers, HAProxy nbthread, nginx worker_processes)`);
    md.push('');
    md.push(medianTable(w, summary, ratioTable, systemNames, usedAnchors, buildTable, { bestHaproxy, natRatios }));
    if (targets) {
      md.push('');
      md.push(`### NAT targets, workers = ${w} (issue 10 item 5: lb4-nat >= 0.9x direct and >= 1.3x best(${anchorLabel(usedAnchors)}) on throughput and keep-alive requests/s, >= 0.8x direct on new connections/s; computed from this run's medians, not asserted; "round by round" takes the ratio within each round, and "rounds met" counts the rounds whose own ratio met the target)`);
      md.push('');
      md.push(natTargetTable(targets[w] ?? []));
    }
  }
  if (settings.rounds > 1) {
    md.push('');
    md.push('## Run-to-run spread');
    md.push('');
    md.push('(max - min) / median of each system\'s values over the rounds, in %: how much a metric moved between rounds on this machine during this run. A difference between two systems smaller than their spread is not a difference this run can show.');
    for (const w of settings.workers) {
      md.push('');
      md.push(`### workers = ${w}`);
      md.push('');
      md.push(spreadTable(w, spreadByMetric, systemNames));
    }
  }
  md.push('');
  const once = runnableSystems.filter((s) => !s.perWorkers).map((s) => `\`${s.name}\``);
  if (once.length && settings.workers.length > 1) {
    md.push(`${once.length > 1 ? `${once.slice(0, -1).join(', ')} and ${once.at(-1)}` : once[0]} ${once.length > 1 ? 'have' : 'has'} no worker setting: measured once per round, shown in every table with the same values.`);
    md.push('');
  }
  md.push('## Notes from the runs');
  md.push('');
  const where = (r) => `round ${r.round}, ${r.workers === null ? '' : `w=${r.workers}, `}${r.scenario}, ${r.system}`;
  const notes = [
    ...launchNotes,
    ...runs.flatMap((r) => r.notes.map((n) => `${where(r)}: ${n}`)),
    ...runs.filter((r) => r.remeasured).map((r) => `${where(r)}: measured twice (--retry-disturbed ${settings.retryDisturbed}): ${r.remeasured}`),
  ];
  md.push(notes.length ? notes.map((n) => `- ${n}`).join('\n') : '- none: no errors, resets or incomplete runs were reported.');
  const stderrSummary = [...stderrLines].filter(([, lines]) => lines.size > 0);
  if (stderrSummary.length) {
    md.push('');
    md.push('What the systems printed on stderr (first distinct lines):');
    md.push('');
    for (const [name, lines] of stderrSummary) {
      md.push(`- ${name}:`);
      for (const l of lines) md.push(`  - \`${l.replace(/`/g, "'")}\``);
    }
  }
  md.push('');
  md.push('## Load outside the bench');
  md.push('');
  md.push(
    'CPU cores kept busy by everything other than the bench\'s own processes during each run (machine busy time from /proc/stat minus the bench\'s process tree; kernel threads working for the bench count here too, so a few hundredths is normal). Large values mean the run competed with other work on the machine; compare the rounds.',
  );
  for (const w of settings.workers) {
    md.push('');
    md.push(`### workers = ${w}, cores (round 1 / 2 / ...)`);
    md.push('');
    md.push(loadTable(runs, w, runnableScenarios.map((s) => s.name), systemNames));
  }
  md.push('');
  md.push('## Per-round values');
  for (const w of settings.workers) {
    md.push('');
    md.push(`### workers = ${w} (round 1 / 2 / ...)`);
    md.push('');
    md.push(perRoundTable(w, summary, systemNames));
  }
  md.push('');
  const markdown = md.join('\n');

  log();
  log(markdown.split('\n## Per-round values')[0]);
  if (settings.verbose) log(`## Per-round values${markdown.split('\n## Per-round values')[1]}`);

  if (settings.save) {
    const json = { when, command, elapsedMs, settings, host, caveat: CAVEAT, fdLimit: FD_LIMIT, fdNote, versions: toolVersions, lb4: build, systems: runnableSystems.map((s) => ({ name: s.name, config: s.describe(settings) })), scenarios: runnableScenarios.map((s) => ({ name: s.name, method: s.describe(settings), backend: backends[s.backend].description })), metrics, topology: topology.description, medians: summary, ratios: ratioTable, natRatios, bestHaproxy, natTargets: targets, spread: spreadByMetric, compared: { builds: comparedBuilds, ratios: buildTable }, notes, stderr: Object.fromEntries(stderrSummary.map(([k, v]) => [k, [...v]])), runs };
    const subtitle = `${settings.quick ? 'quick run' : 'full run'}, ${when.slice(0, 16).replace('T', ' ')} UTC, ${settings.rounds} round(s), workers ${settings.workers.join(',')}; load generator, backends and proxy share ${host.cores} cores`;
    mkdirSync(join(resultsDir, 'history'), { recursive: true });
    writeFileSync(join(resultsDir, 'latest.md'), markdown);
    writeFileSync(join(resultsDir, 'latest.json'), `${JSON.stringify(json, null, 1)}\n`);
    writeFileSync(join(resultsDir, 'latest.svg'), ratioSvg(ratioTable, usedAnchors, subtitle));
    const stamp = `${when.replace(/[:.]/g, '-').slice(0, 19)}-${settings.quick ? 'quick' : 'full'}`;
    writeFileSync(join(resultsDir, 'history', `${stamp}.md`), markdown);
    writeFileSync(join(resultsDir, 'history', `${stamp}.json`), `${JSON.stringify(json)}\n`);
    prune(join(resultsDir, 'history'), HISTORY_KEEP);
    log(`saved bench/results/latest.md, latest.json, latest.svg (and history/${stamp}.*) in ${secs(elapsedMs)}`);
  }
}

try {
  await main();
} finally {
  await cleanup();
}
