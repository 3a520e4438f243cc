#!/usr/bin/env node
// `npm run soak`: lb4 (the CLI, from dist/) under ten minutes of mixed traffic while its config
// and backends keep changing. Clients run exchanges of random size through it, each checked with
// SHA-256 both ways; some exchanges are reset on purpose by the client or by the backend; the
// client always half-closes first while the backend is still sending. Meanwhile the config file
// is rewritten and reloaded with SIGHUP (a backend added and removed, weights changed) and the
// admin API drains, enables, reweights, adds and deletes backends.
//
// It prints bytes verified, corrupt and truncated counts, and lb4's descriptors and RSS idle
// before the traffic, after the warm-up, in the middle and at the end (after the traffic stopped
// and the flows left), and ends with one line. The warm-up is the first tenth of the run, at
// least 5 s and at most 60 s (60 s of a 10-minute run): the time V8 and the allocator take to
// reach the heap size this load needs. It exits non-zero if anything was corrupt, truncated or
// refused, if descriptors did not come back to the idle count, or if RSS at the end is more than
// 10 % above its value after the warm-up.
//
// With --heap, lb4 runs with bench/heap-probe.mjs loaded: at each sample it is asked to collect
// garbage and report its V8 heap after it (heapUsed after a full collection is what lb4 still
// references; RSS may stay above it while V8 keeps pages). --snapshots also writes a heap snapshot
// at each sample, into a directory it names (kept after the run). --change-every sets the pause between two
// config or admin changes, to make many more of them in a short run.
//
//   npm run soak                         # 10 minutes
//   npm run soak -- --seconds 60 --clients 16
//   npm run soak -- --seconds 180 --change-every 50 --heap

import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { rssBytes } from './proc.mjs';
import { cleanup, freePort, installCleanupHandlers, removeAtExit, start, stop } from './processes.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const known = new Set(['--seconds', '--minutes', '--clients', '--change-every', '--heap', '--snapshots']);
for (const a of args) {
  if (a.startsWith('--') && !known.has(a)) {
    console.error(`unknown option ${a} (known: ${[...known].join(', ')})`);
    process.exit(2);
  }
}
const flag = (name) => args.includes(`--${name}`);
function option(name, fallback) {
  const at = args.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const value = Number(args[at + 1]);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`--${name} must be a positive number, got ${args[at + 1]}`);
    process.exit(2);
  }
  return value;
}
const seconds = option('seconds', option('minutes', 10) * 60);
const clients = option('clients', 24);
const changeEveryMs = option('change-every', 500);
const warmupSeconds = Math.min(60, Math.max(5, Math.round(seconds / 10)));
const snapshots = flag('snapshots');
const heapProbe = flag('heap') || snapshots;
const MiB = 1024 * 1024;

// --- backends: the integrity protocol --------------------------------------------------------
// A client sends a 9-byte header (how many bytes it wants back, and whether the backend should
// reset the flow part way), then its payload, then FIN. The backend sends the bytes back while it
// reads and, once it has the FIN and has sent everything, appends SHA-256(sent) and
// SHA-256(received) and ends.

/** Resolves at the first of `events` (never rejects: an error arrives as a 'close' too). */
function firstOf(emitter, ...events) {
  return new Promise((resolve) => {
    const done = (name) => () => {
      for (const e of events) emitter.removeListener(e, handlers[e]);
      resolve(name);
    };
    const handlers = Object.fromEntries(events.map((e) => [e, done(e)]));
    for (const e of events) emitter.once(e, handlers[e]);
  });
}

const live = new Set();
function startBackend() {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    live.add(socket);
    socket.on('close', () => live.delete(socket));
    socket.on('error', () => {});
    const sent = createHash('sha256');
    const received = createHash('sha256');
    let header = Buffer.alloc(0);
    let wanted = -1;
    let resetPartWay = false;
    let sendingDone = false;
    let clientDone = false;
    const finish = () => {
      if (sendingDone && clientDone && !socket.destroyed) socket.end(Buffer.concat([sent.digest(), received.digest()]));
    };
    const sendAll = async () => {
      let left = wanted;
      while (left > 0 && !socket.destroyed) {
        const chunk = randomBytes(Math.min(left, 128 * 1024));
        left -= chunk.length;
        sent.update(chunk);
        if (resetPartWay && left < wanted / 2) return void socket.resetAndDestroy();
        if (!socket.write(chunk)) await firstOf(socket, 'drain', 'close');
      }
      sendingDone = true;
      finish();
    };
    socket.on('data', (chunk) => {
      if (wanted < 0) {
        header = Buffer.concat([header, chunk]);
        if (header.length < 9) return;
        wanted = Number(header.readBigUInt64BE(0));
        resetPartWay = header[8] === 1;
        chunk = header.subarray(9);
        void sendAll().catch(() => socket.destroy());
      }
      received.update(chunk);
    });
    socket.on('end', () => {
      clientDone = true;
      finish();
    });
  });
  server.listen(0, '127.0.0.1');
  return once(server, 'listening').then(() => ({ server, address: `127.0.0.1:${server.address().port}` }));
}

// --- clients ---------------------------------------------------------------------------------

const tally = { exchanges: 0, verifiedBytes: 0, corrupt: 0, truncated: 0, clientResets: 0, backendResets: 0, refused: 0 };
const problems = [];

/** One exchange; `kind` is clean, client-reset or backend-reset. */
async function exchange(port, kind) {
  const up = Math.floor(Math.random() ** 3 * 4 * MiB);
  const down = Math.floor(Math.random() ** 3 * 4 * MiB);
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const sentHash = createHash('sha256');
  const chunks = [];
  let closedEarly;
  socket.on('data', (c) => chunks.push(c));
  socket.on('error', (err) => (closedEarly = err.code ?? err.message));
  const ended = firstOf(socket, 'end', 'close');
  if ((await firstOf(socket, 'connect', 'close')) !== 'connect') {
    tally.refused++;
    problems.push(`connect failed: ${closedEarly}`);
    return;
  }
  const header = Buffer.alloc(9);
  header.writeBigUInt64BE(BigInt(down));
  header[8] = kind === 'backend-reset' ? 1 : 0;
  socket.write(header);
  let left = up;
  while (left > 0 && !socket.destroyed) {
    const chunk = randomBytes(Math.min(left, 128 * 1024));
    left -= chunk.length;
    sentHash.update(chunk);
    if (kind === 'client-reset' && left < up / 2) {
      socket.resetAndDestroy();
      tally.clientResets++;
      return;
    }
    if (!socket.write(chunk)) await firstOf(socket, 'drain', 'close');
  }
  if (kind === 'client-reset') {
    socket.resetAndDestroy();
    tally.clientResets++;
    return;
  }
  socket.end();
  const timedOut = await Promise.race([ended.then(() => false), sleep(120_000).then(() => true)]);
  socket.destroy();
  tally.exchanges++;
  if (timedOut) {
    tally.truncated++;
    problems.push(`exchange ${up}/${down} (${kind}) did not end within 120 s`);
    return;
  }
  const rest = Buffer.concat(chunks);
  if (kind === 'backend-reset') {
    // The backend resets before it sends its digests; the client must see the flow end (above),
    // and a reset must not turn into a stream that looks complete.
    tally.backendResets++;
    if (down > 0 && !closedEarly && rest.length === down + 64) {
      tally.corrupt++;
      problems.push(`a backend reset of a ${down}-byte reply reached the client as a complete stream`);
    }
    return;
  }
  if (rest.length < 64 || closedEarly) {
    tally.truncated++;
    problems.push(`exchange ${up}/${down} ended early: ${rest.length} bytes${closedEarly ? `, ${closedEarly}` : ''}`);
    return;
  }
  const payload = rest.subarray(0, rest.length - 64);
  const backendSent = rest.subarray(rest.length - 64, rest.length - 32);
  const backendReceived = rest.subarray(rest.length - 32);
  if (payload.length !== down || !createHash('sha256').update(payload).digest().equals(backendSent) || !sentHash.digest().equals(backendReceived)) {
    tally.corrupt++;
    problems.push(`exchange ${up}/${down} corrupt (${payload.length} bytes down)`);
    return;
  }
  tally.verifiedBytes += up + down;
}

async function clientLoop(port, until) {
  while (Date.now() < until) {
    const r = Math.random();
    await exchange(port, r < 0.08 ? 'client-reset' : r < 0.16 ? 'backend-reset' : 'clean');
  }
}

// --- lb4 and the changes made to it ----------------------------------------------------------

function admin(adminPort, method, path, body) {
  return new Promise((resolve) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ host: '127.0.0.1', port: adminPort, method, path, agent: false, headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {} });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(0));
    req.end(payload);
  });
}

/**
 * lb4's descriptors, not counting pipes: each worker keeps a bounded pool of spare splice pipes
 * for the next flows, a cache that fills during the run (reported apart), not a leak.
 */
function descriptors(pid) {
  let other = 0;
  let pipes = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target = '';
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed between the listing and the read
    }
    if (target.startsWith('pipe:')) pipes++;
    else other++;
  }
  return { other, pipes };
}

/** Asks the heap probe in lb4 for one report (a full collection first) and waits for it. */
async function probeHeap(pid) {
  const lines = () => (existsSync(probeFile) ? readFileSync(probeFile, 'utf8').trim().split('\n').filter(Boolean) : []);
  const before = lines().length;
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 600; i++) {
    const all = lines();
    if (all.length > before) return JSON.parse(all[all.length - 1]);
    await sleep(50);
  }
  throw new Error('the heap probe in lb4 did not answer within 30 s');
}

/** RSS is read first, so the probe's forced collection cannot change the figure. */
async function sample(pid, when) {
  const { other, pipes } = descriptors(pid);
  const s = { when, fds: other, pipes, rssMiB: rssBytes(pid) / MiB };
  let heap = '';
  if (heapProbe) {
    const p = await probeHeap(pid);
    s.heapUsedMiB = p.memory.heapUsed / MiB;
    const b = p.before;
    heap = `  before gc: heapTotal ${(b.memory.heapTotal / MiB).toFixed(1)} (new ${(b.spaces.new_space / MiB).toFixed(1)}, old ${(b.spaces.old_space / MiB).toFixed(1)}) heapUsed ${(b.memory.heapUsed / MiB).toFixed(1)};  after gc: heapUsed ${s.heapUsedMiB.toFixed(1)} heapTotal ${(p.memory.heapTotal / MiB).toFixed(1)} external ${(p.memory.external / MiB).toFixed(1)} arrayBuffers ${(p.memory.arrayBuffers / MiB).toFixed(1)} MiB, RSS ${(p.memory.rss / MiB).toFixed(1)}${p.snapshot ? `, ${p.snapshot}` : ''}`;
  }
  console.log(`${when.padEnd(6)} descriptors ${String(s.fds).padStart(5)} (+${pipes} pipes)  RSS ${s.rssMiB.toFixed(1)} MiB  (${tally.exchanges} exchanges, ${(tally.verifiedBytes / 1e9).toFixed(2)} GB verified so far)${heap}`);
  return s;
}

installCleanupHandlers();
const dir = mkdtempSync(join(tmpdir(), 'lb4-soak-'));
removeAtExit(dir);
// Heap snapshots are kept for comparing; the probe's report file goes with the run.
const probeDir = snapshots ? mkdtempSync(join(tmpdir(), 'lb4-soak-heap-')) : dir;
const probeFile = join(probeDir, 'heap-probe.jsonl');
const backends = await Promise.all([startBackend(), startBackend(), startBackend(), startBackend()]);
const port = await freePort();
const adminPort = await freePort();
const configPath = join(dir, 'lb4.json');
const writeConfig = (withFourth, weight) =>
  writeFileSync(
    configPath,
    JSON.stringify({
      listen: `127.0.0.1:${port}`,
      backends: [backends[0].address, { address: backends[1].address, weight }, backends[2].address, ...(withFourth ? [backends[3].address] : [])],
      admin: { listen: `127.0.0.1:${adminPort}` },
      workers: 2,
      drainTimeout: '60s',
    }),
  );
writeConfig(false, 1);
const probeArgs = heapProbe ? ['--expose-gc', '--import', join(root, 'bench/heap-probe.mjs')] : [];
const probeEnv = heapProbe ? { LB4_HEAP_PROBE_FILE: probeFile, ...(snapshots ? { LB4_HEAP_PROBE_SNAPSHOTS: '1' } : {}) } : {};
const lb4 = start('lb4', process.execPath, [...probeArgs, join(root, 'dist/bin/lb4.js'), 'start', '--config', configPath], { env: { ...process.env, ...probeEnv } });
for (let i = 0; i < 100 && (await admin(adminPort, 'GET', '/status')) !== 200; i++) await sleep(100);
const startedAt = Date.now();
const until = startedAt + seconds * 1000;
console.log(`soak: ${seconds} s (warm-up ${warmupSeconds} s), ${clients} clients, a change every ${changeEveryMs} ms, lb4 pid ${lb4.pid} on 127.0.0.1:${port}, admin on ${adminPort}`);

const idle = await sample(lb4.pid, 'idle');
const traffic = Promise.all(Array.from({ length: clients }, () => clientLoop(port, until)));
let reloads = 0;
let adminChanges = 0;
const changes = (async () => {
  let step = 0;
  while (Date.now() < until) {
    await sleep(changeEveryMs);
    step++;
    if (step % 4 === 0) {
      writeConfig(step % 8 === 0, 1 + (step % 5));
      lb4.proc.kill('SIGHUP');
      reloads++;
    } else {
      // One backend at a time is drained and enabled again, so some are always up.
      const id = encodeURIComponent(backends[Math.floor(step / 6) % 3].address);
      const action = step % 6;
      if (action === 1) await admin(adminPort, 'POST', `/backends/${id}/drain`);
      else if (action === 3) await admin(adminPort, 'POST', `/backends/${id}/enable`);
      else if (action === 2) await admin(adminPort, 'PUT', `/backends/${id}/weight`, { weight: 1 + (step % 7) });
      else if (action === 5) await admin(adminPort, 'POST', '/backends', { address: backends[3].address });
      else await admin(adminPort, 'DELETE', `/backends/${encodeURIComponent(backends[3].address)}`);
      adminChanges++;
    }
  }
})();

await sleep(warmupSeconds * 1000);
const first = await sample(lb4.pid, 'warm');
// With the probe, a report at every tenth of the run too, to see a trend rather than three points.
const atTenths = heapProbe ? [2, 3, 4, 6, 7, 8, 9] : [];
let middle;
for (const tenth of [...atTenths.filter((t) => t < 5), 5, ...atTenths.filter((t) => t > 5)]) {
  const at = startedAt + (seconds * 1000 * tenth) / 10;
  if (at < Date.now()) continue;
  await sleep(at - Date.now());
  const s = await sample(lb4.pid, tenth === 5 ? 'middle' : `${tenth}/10`);
  if (tenth === 5) middle = s;
}
await Promise.all([traffic, changes]);
// Back to the start's config with every backend enabled, then let the flows leave.
writeConfig(false, 1);
lb4.proc.kill('SIGHUP');
for (const b of backends.slice(0, 3)) await admin(adminPort, 'POST', `/backends/${encodeURIComponent(b.address)}/enable`);
for (let i = 0; i < 100 && descriptors(lb4.pid).other > idle.fds; i++) await sleep(100);
const last = await sample(lb4.pid, 'end');

await stop(lb4);
for (const s of live) s.destroy();
await Promise.all(backends.map((b) => new Promise((r) => b.server.close(r))));
await cleanup();

const growth = last.rssMiB / first.rssMiB - 1;
console.log(`\nexchanges ${tally.exchanges}, verified ${(tally.verifiedBytes / 1e9).toFixed(2)} GB, client resets ${tally.clientResets}, backend resets ${tally.backendResets}, refused ${tally.refused}, reloads ${reloads}, admin changes ${adminChanges}`);
for (const p of problems.slice(0, 10)) console.log(`  ${p}`);
const ok = tally.corrupt === 0 && tally.truncated === 0 && tally.refused === 0 && last.fds <= idle.fds && growth <= 0.1;
console.log(
  `soak: ${(tally.verifiedBytes / 1e9).toFixed(2)} GB verified, ${tally.corrupt} corrupt, ${tally.truncated} truncated, ${tally.refused} refused; descriptors (not pipes) ${idle.fds} idle, ${first.fds}/${middle.fds}/${last.fds}, spare pipes at the end ${last.pipes}, RSS ${idle.rssMiB.toFixed(1)}/${first.rssMiB.toFixed(1)}/${middle.rssMiB.toFixed(1)}/${last.rssMiB.toFixed(1)} MiB (idle/warm/middle/end; end ${growth >= 0 ? '+' : ''}${(growth * 100).toFixed(1)} % from warm, target 10 %)${heapProbe ? `, heapUsed after gc ${first.heapUsedMiB.toFixed(1)}/${middle.heapUsedMiB.toFixed(1)}/${last.heapUsedMiB.toFixed(1)} MiB (warm/middle/end)` : ''}: ${ok ? 'pass' : 'FAIL'}`,
);
process.exit(ok ? 0 : 1);
