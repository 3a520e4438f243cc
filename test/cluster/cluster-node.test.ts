// ClusterNode over loopback UDP with a fake VIP driver: two nodes settle on one active; SIGKILL
// of the active one (a child process) makes the other active within the dead time; a clean stop
// hands over at once through the leaving heartbeat; forged, replayed and wrong-key heartbeats
// change nothing and are counted; a partition (a relay that drops) makes both active, and the
// lower-ranked one steps down within one interval of it healing. Also on-state-change.

import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { ClusterNode, type ClusterNodeOptions, type ClusterTransition } from '../../lib/cluster/cluster-node.js';
import type { TransitionReason } from '../../lib/cluster/election.js';
import { encodeHeartbeat, heartbeatVersion } from '../../lib/cluster/heartbeat.js';
import { splitCommandLine, StateChangeCommand, type StateChangeResult } from '../../lib/cluster/state-change-command.js';
import { formatVip, type Vip } from '../../lib/cluster/vip.js';
import type { VipDriver } from '../../lib/cluster/vip-driver.js';
import { startClusterChild } from '../helpers/cluster-child.js';
import { until, within } from '../helpers/sockets.js';

const key = Buffer.alloc(32, 0x5a);
const loopback = '127.0.0.1';
const vips: Vip[] = [
  { ip: '192.0.2.10', prefix: 24, dev: 'eth0', family: 4 },
  { ip: '2001:db8::10', prefix: 64, dev: 'eth0', family: 6 },
];

/** Records what the node asked of it, and keeps the addresses in a set. */
class FakeVipDriver implements VipDriver {
  readonly addresses = new Set<string>();
  readonly calls: string[] = [];
  add(v: Vip) {
    this.calls.push(`add ${formatVip(v)}`);
    const had = this.addresses.has(formatVip(v));
    this.addresses.add(formatVip(v));
    return !had;
  }
  remove(v: Vip) {
    this.calls.push(`remove ${formatVip(v)}`);
    return this.addresses.delete(formatVip(v));
  }
  has(v: Vip) {
    return this.addresses.has(formatVip(v));
  }
  announce(v: Vip, count: number) {
    this.calls.push(`announce ${v.ip} ${count}`);
  }
  get holds() {
    return this.addresses.size === vips.length;
  }
}

interface TestNode {
  node: ClusterNode;
  driver: FakeVipDriver;
  transitions: ClusterTransition[];
}

async function makeNode(t: Test, options: Partial<ClusterNodeOptions> & { nodeId: string }): Promise<TestNode> {
  const driver = new FakeVipDriver();
  const node = new ClusterNode({ heartbeat: { host: loopback, port: 0 }, peer: { host: loopback, port: 9 }, key, vips, vipDriver: driver, ...options });
  const transitions: ClusterTransition[] = [];
  node.on('transition', (x) => transitions.push(x));
  await node.bind();
  t.teardown(() => node.stop());
  return { node, driver, transitions };
}

/** Resolves with the next transition of the node to `state`. Call it before what causes the transition. */
function becomes(n: TestNode, state: string, ms = 5000): Promise<ClusterTransition> {
  return within(
    new Promise<ClusterTransition>((resolve) => {
      const on = (x: ClusterTransition) => {
        if (x.to !== state) return;
        n.node.off('transition', on);
        resolve(x);
      };
      n.node.on('transition', on);
    }),
    ms,
    `${n.node.status().node.id} to become ${state}`,
  );
}

/** A UDP relay between two nodes that can drop each direction: a network partition on loopback. */
async function relay(t: Test, a: TestNode, b: TestNode): Promise<{ drop: { aToB: boolean; bToA: boolean }; captured: Buffer[] }> {
  const drop = { aToB: false, bToA: false };
  const captured: Buffer[] = [];
  const open = async (to: () => number, dropped: () => boolean) => {
    const s = createSocket('udp4');
    s.on('message', (msg) => {
      captured.push(msg);
      if (!dropped()) s.send(msg, to(), loopback);
    });
    s.bind(0, loopback);
    await once(s, 'listening');
    t.teardown(() => s.close());
    return s.address().port;
  };
  const toB = await open(() => b.node.address!.port, () => drop.aToB);
  const toA = await open(() => a.node.address!.port, () => drop.bToA);
  a.node.setPeer({ host: loopback, port: toB });
  b.node.setPeer({ host: loopback, port: toA });
  return { drop, captured };
}

async function pair(t: Test, a: Partial<ClusterNodeOptions> = {}, b: Partial<ClusterNodeOptions> = {}) {
  const na = await makeNode(t, { nodeId: 'lb-a', priority: 200, ...a });
  const nb = await makeNode(t, { nodeId: 'lb-b', priority: 100, ...b });
  const link = await relay(t, na, nb);
  return { a: na, b: nb, link };
}

async function settled(a: TestNode, b: TestNode): Promise<void> {
  await until(() => a.node.state === 'active' && b.node.state === 'backup' && b.node.status().peer.state === 'active', 5000, 'lb-a active and lb-b backup');
}

t.test('two nodes: one active holding the VIPs, one backup; the status tells both sides', async (t) => {
  const { a, b } = await pair(t);
  b.driver.addresses.add(formatVip(vips[0])); // left behind by a crash
  await a.node.start();
  await b.node.start();
  await settled(a, b);
  t.ok(a.driver.holds, 'the active node added every VIP');
  t.equal(b.driver.addresses.size, 0, 'the backup removed the VIP a crash left behind, and holds none');
  t.match(a.driver.calls, ['remove 192.0.2.10/24', 'remove 2001:db8::10/64', 'add 192.0.2.10/24', 'announce 192.0.2.10 1', 'add 2001:db8::10/64', 'announce 2001:db8::10 1']);
  await until(() => a.driver.calls.filter((c) => c.startsWith('announce 192.0.2.10')).length >= 2, 2000, 'the repeated announcement');

  const s = b.node.status();
  t.match(s, {
    node: { id: 'lb-b', priority: 100, state: 'backup', healthyBackends: 1, generation: 0, preempt: true, intervalMs: 100, deadAfter: 3 },
    peer: { up: true, id: 'lb-a', priority: 200, state: 'active', healthyBackends: 1, generation: 0, leaving: false, restarts: 0 },
    generationMismatch: false,
    vips: [
      { address: '192.0.2.10/24', dev: 'eth0', held: false },
      { address: '2001:db8::10/64', dev: 'eth0', held: false },
    ],
    heartbeats: { rejected: { 'bad-mac': 0, replayed: 0 } },
  });
  t.ok(s.peer.lastHeartbeatAgeMs! >= 0 && s.peer.lastHeartbeatAgeMs! < 500, `last heartbeat age ${s.peer.lastHeartbeatAgeMs} ms`);
  t.ok(s.heartbeats.accepted > 0 && s.heartbeats.sent > 0);
  t.same(a.node.status().vips.map((v) => v.held), [true, true]);
  t.equal(a.transitions.at(-1)?.to, 'active');
  t.same(JSON.parse(JSON.stringify(s)), s, 'the status is plain JSON');

  b.node.setGeneration(7);
  await until(() => a.node.status().generationMismatch, 2000, 'the peer to see the differing generation');
  t.equal(a.node.status().peer.generation, 7);
});

t.test('SIGKILL of the active node (a child process): the backup takes over within the dead time', async (t) => {
  const b = await makeNode(t, { nodeId: 'lb-b', priority: 100 });
  const a = await startClusterChild({ nodeId: 'lb-a', priority: 200, heartbeat: { host: loopback, port: 0 }, peer: { host: loopback, port: b.node.address!.port }, keyHex: key.toString('hex'), vips, driver: 'fake' });
  t.teardown(() => a.kill());
  b.node.setPeer({ host: loopback, port: a.port });
  a.send('start');
  await b.node.start();
  await a.next((l) => (l.transition as ClusterTransition | undefined)?.to === 'active');
  await until(() => b.node.state === 'backup' && b.node.status().peer.state === 'active', 5000, 'lb-b backup behind an active lb-a');

  const takeover = becomes(b, 'active');
  const ageAtKill = b.node.status().peer.lastHeartbeatAgeMs!;
  const killedAt = performance.now();
  a.kill('SIGKILL');
  const x = await takeover;
  const ms = performance.now() - killedAt;
  t.equal(x.reason, 'peer-timeout');
  t.ok(b.driver.holds, 'the backup now holds the VIPs');
  // The dead time runs from the last heartbeat heard, which came up to one interval before the
  // kill: the takeover comes 200-300 ms after it, plus timer and scheduling delay.
  t.ok(ms <= b.node.deadTimeMs + 100, `took over ${ms.toFixed(0)} ms after SIGKILL (dead time ${b.node.deadTimeMs} ms)`);
  // Precisely: the dead time after the last heartbeat heard, give or take a timer's lateness.
  const sinceLast = ms + ageAtKill;
  t.ok(sinceLast >= b.node.deadTimeMs - 2 && sinceLast <= b.node.deadTimeMs + 60, `took over ${sinceLast.toFixed(0)} ms after the last heartbeat`);
  t.comment(`loopback SIGKILL takeover: ${ms.toFixed(1)} ms after the kill, ${sinceLast.toFixed(1)} ms after the last heartbeat`);
  t.equal(b.node.status().peer.up, false);
});

t.test('a clean stop: the leaving heartbeat hands over at once', async (t) => {
  const { a, b } = await pair(t);
  await a.node.start();
  await b.node.start();
  await settled(a, b);
  const takeover = becomes(b, 'active');
  const stoppedAt = performance.now();
  await a.node.stop();
  const x = await takeover;
  const ms = performance.now() - stoppedAt;
  t.equal(x.reason, 'peer-leaving');
  t.ok(ms < 50, `took over ${ms.toFixed(1)} ms after stop(), far inside the ${b.node.deadTimeMs} ms dead time`);
  t.comment(`loopback leaving-heartbeat takeover: ${ms.toFixed(1)} ms`);
  t.equal(a.driver.addresses.size, 0, 'the stopped node gave the VIPs up');
  t.ok(b.driver.holds);
  t.match(b.node.status().peer, { up: false, leaving: true, state: 'init' }, 'the leaving heartbeat says the node is out (init)');
  t.equal(a.node.state, 'init');
  await a.node.stop(); // idempotent
});

t.test('two nodes with one node id: each takes the other as its peer, one is active, one error each', async (t) => {
  // Both "lb" at equal priority (two machines cloned from one image keep its host name). Before
  // the instance id, each dropped the other's heartbeats as its own and both stayed active.
  const logs: Record<string, unknown>[][] = [[], []];
  const logger = (i: number) => pino({ level: 'info' }, { write: (line: string) => void logs[i].push(JSON.parse(line)) });
  const a = await makeNode(t, { nodeId: 'lb', priority: 100, instance: '00000000000000a1', logger: logger(0) });
  const b = await makeNode(t, { nodeId: 'lb', priority: 100, instance: '00000000000000b2', logger: logger(1) });
  a.node.setPeer({ host: loopback, port: b.node.address!.port });
  b.node.setPeer({ host: loopback, port: a.node.address!.port });
  const peerUps = [0, 0];
  a.node.on('peer-up', () => peerUps[0]++);
  b.node.on('peer-up', () => peerUps[1]++);
  await a.node.start();
  await b.node.start();
  await until(() => b.node.state === 'active' && a.node.state === 'backup', 5000, 'the greater instance (b) active, a backup');
  // Some intervals later it is still so, and a was never active.
  const heard = b.node.status().heartbeats.accepted;
  await until(() => b.node.status().heartbeats.accepted >= heard + 5, 5000, 'five more heartbeats');
  t.same([a.node.state, b.node.state], ['backup', 'active']);
  t.notOk(a.transitions.some((x) => x.to === 'active'), 'a was never active');
  t.ok(b.driver.holds && a.driver.addresses.size === 0, 'only b holds the VIPs');
  for (const [i, n] of [a, b].entries()) {
    const s = n.node.status();
    t.match(s.peer, { up: true, id: 'lb', duplicateNodeId: true, instance: i === 0 ? '00000000000000b2' : '00000000000000a1' }, 'the status flags the duplicate');
    t.equal(s.heartbeats.rejected['own-heartbeat'], 0, 'nothing was refused as its own');
    const errors = logs[i].filter((l) => (l.level as number) >= 50);
    t.equal(errors.length, 1, 'one error logged, however many heartbeats came');
    t.match(errors[0].msg, /the peer has this node's id "lb": give each node its own with --node-id/);
  }
  t.same(peerUps, [1, 1], "each emitted 'peer-up' once, on first hearing the other (session replication resends then)");
});

t.test('forged, wrong-key, replayed and looped heartbeats change nothing and are counted', async (t) => {
  const { a, b, link } = await pair(t);
  await a.node.start();
  await b.node.start();
  await settled(a, b);
  const target = b.node.address!.port;
  const attacker = createSocket('udp4');
  t.teardown(() => attacker.close());
  const send = (buf: Buffer) => new Promise<void>((resolve, reject) => attacker.send(buf, target, loopback, (err) => (err ? reject(err) : resolve())));
  const before = b.node.status();
  const transitions = b.transitions.length;
  // Each claims lb-a is leaving or in fault, which would make lb-b take over if believed.
  const claim = { nodeId: 'lb-a', instance: a.node.status().node.instance, priority: 255, state: 'fault' as const, healthyBackends: 0, generation: 0, epoch: Date.now() + 10_000, sequence: 1e9, timestamp: Date.now(), leaving: true };
  const old = link.captured[0];
  for (let i = 0; i < 5; i++) {
    await send(Buffer.from('LB4H not really a heartbeat'));
    await send(encodeHeartbeat(claim, Buffer.alloc(32, 0x11))); // wrong key
    const forged = encodeHeartbeat(claim, key);
    forged[6] = 2; // a changed field, unsigned
    await send(forged);
    const v2 = Buffer.from(encodeHeartbeat(claim, key));
    v2[4] = heartbeatVersion + 1;
    await send(v2);
    await send(old); // replayed
    await send(encodeHeartbeat({ ...claim, nodeId: 'lb-b', instance: before.node.instance }, key)); // its own, looped back
    await send(encodeHeartbeat({ ...claim, timestamp: Date.now() - 60_000 }, key)); // stale
  }
  await until(() => b.node.status().heartbeats.rejected.timestamp === 5, 2000, 'every datagram to be judged');
  await until(() => b.node.status().heartbeats.accepted > before.heartbeats.accepted, 2000, 'a real heartbeat after the attack');
  const after = b.node.status();
  t.same(after.heartbeats.rejected, { malformed: 5, 'bad-version': 5, 'bad-mac': 10, 'own-heartbeat': 5, timestamp: 5, replayed: 5 });
  t.equal(b.transitions.length, transitions, 'no transition');
  t.equal(b.node.state, 'backup');
  t.equal(a.node.state, 'active');
  t.equal(after.peer.state, 'active', 'the peer is still seen as active, not in fault');
});

t.test('a partition makes both active; when it heals the lower-ranked one steps down within one interval', async (t) => {
  const { a, b, link } = await pair(t);
  await a.node.start();
  await b.node.start();
  await settled(a, b);
  link.drop.aToB = link.drop.bToA = true;
  await becomes(b, 'active');
  t.equal(a.node.state, 'active', 'both active during the partition');
  t.ok(a.driver.holds && b.driver.holds);
  const stepDown = becomes(b, 'backup');
  const healedAt = performance.now();
  link.drop.aToB = link.drop.bToA = false;
  const x = await stepDown;
  const ms = performance.now() - healedAt;
  t.equal(x.reason, 'split-brain');
  t.ok(ms <= 100 + 50, `lb-b stepped down ${ms.toFixed(1)} ms after the link healed (interval 100 ms)`);
  t.comment(`split brain healed in ${ms.toFixed(1)} ms`);
  t.equal(a.node.state, 'active');
  t.equal(b.driver.addresses.size, 0, 'the one that stepped down gave the VIPs up');

  // One-way loss: lb-b stops hearing lb-a, lb-a still hears lb-b (active): lb-a stays active.
  link.drop.aToB = true;
  await becomes(b, 'active');
  await until(() => a.node.status().peer.state === 'active', 2000, 'lb-a to hear lb-b active');
  t.equal(a.node.state, 'active', 'lb-a outranks and stays');
  const back = becomes(b, 'backup');
  link.drop.aToB = false;
  await back;
  t.equal(a.node.state, 'active');
});

t.test('preempt: a returning higher-priority node takes over; without preempt it waits', async (t) => {
  for (const preempt of [true, false]) {
    // A long dead time: a loaded machine must not make lb-a give up waiting for lb-b.
    const { a, b } = await pair(t, { preempt, deadAfter: 10 }, { preempt, deadAfter: 10 });
    await b.node.start();
    await becomes(b, 'active');
    await a.node.start();
    if (preempt) {
      const x = await becomes(a, 'active');
      t.equal(x.reason, 'preempt');
      await until(() => b.node.state === 'backup', 2000, 'lb-b to step down');
      t.equal(b.transitions.at(-1)?.reason, 'preempted');
    } else {
      await becomes(a, 'backup');
      t.equal(b.node.state, 'active', 'no preempt: the address stays where it is');
    }
    await a.node.stop();
    await b.node.stop();
  }
});

t.test('fault: no healthy backend gives the address up and the peer takes over', async (t) => {
  const { a, b } = await pair(t);
  await a.node.start();
  await b.node.start();
  await settled(a, b);
  const takeover = becomes(b, 'active');
  a.node.setHealthyBackends(0);
  t.equal(a.node.state, 'fault');
  t.equal(a.driver.addresses.size, 0);
  t.equal((await takeover).reason, 'peer-fault');
  t.match(b.node.status().peer, { state: 'fault', healthyBackends: 0 });
  await until(() => a.node.status().peer.state === 'active', 2000, 'lb-a to hear lb-b active');
  const back = becomes(a, 'active');
  a.node.setHealthyBackends(2);
  t.equal((await back).reason, 'preempt', 'healthy again: it outranks the active peer and preempts');
  await until(() => b.node.state === 'backup', 2000, 'lb-b to step down');
});

t.test('on-state-change: argv and environment, never a shell; one at a time; timeouts', async (t) => {
  t.same(splitCommandLine(`/bin/notify --tag 'a b' "c \\"d\\" $HOME" e\\ f ''`), ['/bin/notify', '--tag', 'a b', 'c "d" $HOME', 'e f', '']);
  t.throws(() => splitCommandLine(`x 'open`), SyntaxError);
  t.throws(() => new StateChangeCommand({ command: '   ' }), TypeError);

  const dir = mkdtempSync(join(tmpdir(), 'lb4-notify-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'calls.jsonl');
  const script = join(dir, 'notify.mjs');
  writeFileSync(
    script,
    `import { appendFileSync } from 'node:fs';
const e = process.env;
appendFileSync(${JSON.stringify(out)}, JSON.stringify({ argv: process.argv.slice(2), state: e.LB4_CLUSTER_STATE, previous: e.LB4_CLUSTER_PREVIOUS_STATE, reason: e.LB4_CLUSTER_REASON, node: e.LB4_CLUSTER_NODE_ID, vips: e.LB4_CLUSTER_VIPS, devs: e.LB4_CLUSTER_VIP_DEVICES }) + '\\n');
if (process.argv[3] === 'slow') await new Promise((r) => setTimeout(r, 300));
`,
  );
  const calls = () => readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

  // Through a node: the command line is split, the state and VIPs are appended.
  const { a, b } = await pair(t, { onStateChange: `${process.execPath} ${script} '$(touch ${join(dir, 'pwned')})'` });
  await a.node.start();
  await b.node.start();
  await settled(a, b);
  await a.node.stateChangeIdle();
  t.equal(calls().length, 1);
  t.match(calls()[0], {
    argv: [`$(touch ${join(dir, 'pwned')})`, 'active', '192.0.2.10/24', '2001:db8::10/64'],
    state: 'active',
    previous: 'init',
    reason: /^(outranks-peer|no-peer)$/,
    node: 'lb-a',
    vips: '192.0.2.10/24 2001:db8::10/64',
    devs: 'eth0 eth0',
  });
  t.throws(() => readFileSync(join(dir, 'pwned')), 'nothing went through a shell');

  // Alone: a transition arriving while one runs waits; a later one replaces it.
  rmSync(out);
  const results: StateChangeResult[] = [];
  const cmd = new StateChangeCommand({ command: [process.execPath, script, 'slow'], onResult: (r) => results.push(r) });
  const change = (state: 'active' | 'backup' | 'fault', reason: TransitionReason) => cmd.notify({ state, previous: 'init', reason, nodeId: 'n', vips });
  change('active', 'no-peer');
  change('backup', 'split-brain');
  change('fault', 'no-healthy-backends');
  await cmd.idle();
  t.same(calls().map((c) => c.state), ['active', 'fault'], 'the waiting "backup" was replaced by "fault"');
  t.equal(cmd.replaced, 1);
  t.same(results.map((r) => [r.code, r.timedOut]), [[0, false], [0, false]]);

  const hung = new StateChangeCommand({ command: [process.execPath, '-e', 'setTimeout(() => {}, 60000)'], timeoutMs: 100, onResult: (r) => results.push(r) });
  hung.notify({ state: 'active', previous: 'backup', reason: 'peer-timeout', nodeId: 'n', vips });
  await hung.idle();
  t.match(results.at(-1), { timedOut: true, signal: 'SIGTERM', code: null });

  // A command that started a child of its own: the timeout stops both (the whole process group).
  const pidFile = join(dir, 'grandchild.pid');
  const spawner = new StateChangeCommand({
    command: ['sh', '-c', `sleep 60 >/dev/null 2>&1 & echo $! > ${pidFile}; wait`],
    timeoutMs: 300,
    onResult: (r) => results.push(r),
  });
  spawner.notify({ state: 'active', previous: 'backup', reason: 'peer-timeout', nodeId: 'n', vips });
  await spawner.idle();
  t.match(results.at(-1), { timedOut: true });
  const grandchild = Number(readFileSync(pidFile, 'utf8'));
  const alive = () => {
    try {
      process.kill(grandchild, 0);
      return true;
    } catch {
      return false;
    }
  };
  await until(() => !alive(), 5000, 'the command\'s own child to be stopped too').catch(() => {});
  t.notOk(alive(), 'the command\'s own child was stopped with it');
  if (alive()) process.kill(grandchild, 'SIGKILL');

  // lb4's secrets stay out of the program's environment; the rest is passed on.
  const envCmd = new StateChangeCommand({
    command: [process.execPath, '-e', 'console.log(JSON.stringify([process.env.LB4_CLUSTER_KEY ?? null, process.env.LB4_ADMIN_TOKEN ?? null, process.env.KEEP_ME ?? null]))'],
    env: { PATH: process.env.PATH, LB4_CLUSTER_KEY: 'ab'.repeat(32), LB4_ADMIN_TOKEN: 'admin-secret', KEEP_ME: 'kept' },
    onResult: (r) => results.push(r),
  });
  envCmd.notify({ state: 'active', previous: 'backup', reason: 'peer-timeout', nodeId: 'n', vips });
  await envCmd.idle();
  t.same(JSON.parse(results.at(-1)!.output), [null, null, 'kept'], 'no cluster key, no admin token');

  const missing = new StateChangeCommand({ command: join(dir, 'no-such-program'), onResult: (r) => results.push(r) });
  missing.notify({ state: 'active', previous: 'backup', reason: 'peer-timeout', nodeId: 'n', vips });
  await missing.idle();
  t.match(results.at(-1), { code: null, error: { code: 'ENOENT' } });
});

t.test('a node whose VIPs cannot be added goes to fault, holding nothing, instead of claiming them', async (t) => {
  // No peer answers (port 9 on loopback discards): after the dead time from start the node takes
  // the address, the add fails (EPERM), and it must not stay active holding nothing.
  const n = await makeNode(t, { nodeId: 'lb-solo', priority: 100 });
  n.driver.add = (v: Vip) => {
    n.driver.calls.push(`add ${formatVip(v)}`);
    throw Object.assign(new Error('add: EPERM (Operation not permitted)'), { code: 'EPERM' });
  };
  const errors: Error[] = [];
  n.node.on('vip-error', (err) => errors.push(err));
  const fault = becomes(n, 'fault');
  await n.node.start();
  const x = await fault;
  t.equal(x.reason, 'vip-failed');
  t.equal(x.from, 'active', 'it tried as the active node');
  t.equal(n.node.state, 'fault');
  t.ok(errors.length >= 1, 'the failure is reported');
  t.equal(n.driver.addresses.size, 0, 'it holds no address');
});
