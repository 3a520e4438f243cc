// The election as a table: each row is a state, an event and a time, and the state and actions
// that must follow. Then two elections wired to each other through a simulated, lossy link:
// simultaneous starts in every delivery order, and random partitions that heal, always end with
// exactly one active node. Also the VIP spec parser. No sockets.

import t from 'tap';
import { elect, initialElection, nextDeadline, outranks, vipRetryMs, type ElectionAction, type ElectionConfig, type ElectionEvent, type ElectionState, type PeerView } from '../../lib/cluster/election.js';
import type { ClusterState } from '../../lib/cluster/heartbeat.js';
import { canonicalIp, inSubnet, parseVipSpec, resolveVip } from '../../lib/cluster/vip.js';
import { Lb4Error } from '../../lib/errors.js';

const config: ElectionConfig = { nodeId: 'b', instance: '5000000000000000', priority: 100, preempt: true, intervalMs: 100, deadAfter: 3 };

function state(s: ClusterState, extra: { peer?: Partial<PeerView> & { state: ClusterState }; healthy?: number; startedAt?: number; cfg?: Partial<ElectionConfig> } = {}): ElectionState {
  const peer = extra.peer ? { nodeId: 'a', instance: '1000000000000000', priority: 100, heardAt: 1000, ...extra.peer } : undefined;
  return { config: { ...config, ...extra.cfg }, state: s, running: true, startedAt: extra.startedAt ?? 0, healthyBackends: extra.healthy ?? 2, peer };
}

const hbFrom = (peerState: ClusterState, fields: { nodeId?: string; instance?: string; priority?: number; leaving?: boolean } = {}): ElectionEvent => ({
  type: 'heartbeat',
  peer: { nodeId: fields.nodeId ?? 'a', instance: fields.instance ?? '1000000000000000', priority: fields.priority ?? 100, state: peerState, leaving: fields.leaving ?? false },
});

/** Actions written short: add, remove, hb, leave, and "from>to:reason" for a state change. */
function short(actions: readonly ElectionAction[]): string[] {
  return actions.map((a) => {
    switch (a.type) {
      case 'add-vips':
        return 'add';
      case 'remove-vips':
        return 'remove';
      case 'send-heartbeat':
        return a.leaving ? 'leave' : 'hb';
      case 'state-change':
        return `${a.from}>${a.to}:${a.reason}`;
    }
  });
}

interface Row {
  name: string;
  from: ElectionState;
  event: ElectionEvent;
  now: number;
  to: ClusterState;
  actions: string[];
  /** Whether a live peer is left in the state afterwards. */
  peerUp?: boolean;
}

const higher = { nodeId: 'z', priority: 200 };
const lower = { nodeId: 'z', priority: 50 };
const tieLowerId = { nodeId: 'a', priority: 100 };
const tieHigherId = { nodeId: 'c', priority: 100 };
// The peer has this node's id ('b'): two nodes misconfigured alike. The instance id decides.
const twinLower = { nodeId: 'b', instance: '4fffffffffffffff', priority: 100 };
const twinHigher = { nodeId: 'b', instance: '5000000000000001', priority: 100 };

const table: Row[] = [
  // start
  { name: 'start, healthy: wait in init, drop leftovers, say hello', from: initialElection(config), event: { type: 'start', healthyBackends: 2 }, now: 0, to: 'init', actions: ['remove', 'hb'] },
  { name: 'start, no healthy backend: fault', from: initialElection(config), event: { type: 'start', healthyBackends: 0 }, now: 0, to: 'fault', actions: ['remove', 'hb', 'init>fault:no-healthy-backends'] },
  { name: 'start while running: nothing', from: state('active'), event: { type: 'start', healthyBackends: 2 }, now: 5, to: 'active', actions: [] },
  { name: 'a heartbeat before start: ignored', from: initialElection(config), event: hbFrom('active'), now: 0, to: 'init', actions: [] },

  // init
  { name: 'init, before the dead time: keep waiting', from: state('init'), event: { type: 'peer-timeout' }, now: 274, to: 'init', actions: [] },
  { name: 'init, dead time passed with no peer: active', from: state('init'), event: { type: 'peer-timeout' }, now: 275, to: 'active', actions: ['add', 'hb', 'init>active:no-peer'] },
  { name: 'init, peer init and lower: active', from: state('init'), event: hbFrom('init', lower), now: 50, to: 'active', actions: ['add', 'hb', 'init>active:outranks-peer'], peerUp: true },
  { name: 'init, peer init, same priority, lower id: active', from: state('init'), event: hbFrom('init', tieLowerId), now: 50, to: 'active', actions: ['add', 'hb', 'init>active:outranks-peer'], peerUp: true },
  { name: 'init, peer init, same priority, higher id: backup', from: state('init'), event: hbFrom('init', tieHigherId), now: 50, to: 'backup', actions: ['hb', 'init>backup:peer-outranks'], peerUp: true },
  { name: 'init, peer backup and higher: backup (it takes over on hearing this)', from: state('init'), event: hbFrom('backup', higher), now: 50, to: 'backup', actions: ['hb', 'init>backup:peer-outranks'], peerUp: true },
  { name: 'init, peer backup and lower: active', from: state('init'), event: hbFrom('backup', lower), now: 50, to: 'active', actions: ['add', 'hb', 'init>active:outranks-peer'], peerUp: true },
  { name: 'init, peer init, same id, lower instance: active', from: state('init'), event: hbFrom('init', twinLower), now: 50, to: 'active', actions: ['add', 'hb', 'init>active:outranks-peer'], peerUp: true },
  { name: 'init, peer init, same id, higher instance: backup', from: state('init'), event: hbFrom('init', twinHigher), now: 50, to: 'backup', actions: ['hb', 'init>backup:peer-outranks'], peerUp: true },
  { name: 'init, peer active and higher: backup', from: state('init'), event: hbFrom('active', higher), now: 50, to: 'backup', actions: ['hb', 'init>backup:peer-active'], peerUp: true },
  { name: 'init, peer active and lower, preempt: take over', from: state('init'), event: hbFrom('active', lower), now: 50, to: 'active', actions: ['add', 'hb', 'init>active:preempt'], peerUp: true },
  { name: 'init, peer active and lower, no preempt: backup', from: state('init', { cfg: { preempt: false } }), event: hbFrom('active', lower), now: 50, to: 'backup', actions: ['hb', 'init>backup:peer-active'], peerUp: true },
  { name: 'init, peer active, same priority, lower id, preempt: no preempt between equals', from: state('init'), event: hbFrom('active', tieLowerId), now: 50, to: 'backup', actions: ['hb', 'init>backup:peer-active'], peerUp: true },
  { name: 'init, peer in fault: active', from: state('init'), event: hbFrom('fault', higher), now: 50, to: 'active', actions: ['add', 'hb', 'init>active:peer-fault'], peerUp: true },
  { name: 'init, peer leaving: active at once', from: state('init'), event: hbFrom('active', { ...higher, leaving: true }), now: 50, to: 'active', actions: ['add', 'hb', 'init>active:peer-leaving'], peerUp: false },

  // backup
  { name: 'backup, peer active and higher: stay', from: state('backup', { peer: { state: 'active', ...higher } }), event: hbFrom('active', higher), now: 1100, to: 'backup', actions: [], peerUp: true },
  { name: 'backup, peer timeout before the dead time: stale, nothing', from: state('backup', { peer: { state: 'active', ...higher, heardAt: 1000 } }), event: { type: 'peer-timeout' }, now: 1274, to: 'backup', actions: [], peerUp: true },
  { name: 'backup, peer dead: active', from: state('backup', { peer: { state: 'active', ...higher, heardAt: 1000 } }), event: { type: 'peer-timeout' }, now: 1275, to: 'active', actions: ['add', 'hb', 'backup>active:peer-timeout'], peerUp: false },
  { name: 'backup, peer leaving: active at once', from: state('backup', { peer: { state: 'active', ...higher } }), event: hbFrom('active', { ...higher, leaving: true }), now: 1010, to: 'active', actions: ['add', 'hb', 'backup>active:peer-leaving'], peerUp: false },
  { name: 'backup, peer went to fault: active', from: state('backup', { peer: { state: 'active', ...higher } }), event: hbFrom('fault', higher), now: 1010, to: 'active', actions: ['add', 'hb', 'backup>active:peer-fault'], peerUp: true },
  { name: 'backup, peer active and lower returns us: preempt', from: state('backup', { peer: { state: 'init', ...lower } }), event: hbFrom('active', lower), now: 1010, to: 'active', actions: ['add', 'hb', 'backup>active:preempt'], peerUp: true },
  { name: 'backup, peer active and lower, no preempt: stay', from: state('backup', { cfg: { preempt: false } }), event: hbFrom('active', lower), now: 1010, to: 'backup', actions: [], peerUp: true },
  { name: 'backup, both backup, this one higher: active', from: state('backup'), event: hbFrom('backup', lower), now: 1010, to: 'active', actions: ['add', 'hb', 'backup>active:outranks-peer'], peerUp: true },
  { name: 'backup, no healthy backend: fault', from: state('backup', { peer: { state: 'active' } }), event: { type: 'health', healthyBackends: 0 }, now: 1010, to: 'fault', actions: ['hb', 'backup>fault:no-healthy-backends'], peerUp: true },

  // active
  { name: 'active, split brain, peer higher priority: step down', from: state('active'), event: hbFrom('active', higher), now: 1010, to: 'backup', actions: ['remove', 'hb', 'active>backup:split-brain'], peerUp: true },
  { name: 'active, split brain, same priority, peer higher id: step down', from: state('active', { peer: { state: 'active', ...tieHigherId } }), event: hbFrom('active', tieHigherId), now: 1010, to: 'backup', actions: ['remove', 'hb', 'active>backup:split-brain'], peerUp: true },
  { name: 'active, split brain, same priority, peer lower id: stay, announce again, and tell it now', from: state('active'), event: hbFrom('active', tieLowerId), now: 1010, to: 'active', actions: ['add', 'hb'], peerUp: true },
  { name: 'active, split brain, peer lower priority: stay, announce again, and tell it now', from: state('active'), event: hbFrom('active', lower), now: 1010, to: 'active', actions: ['add', 'hb'], peerUp: true },
  { name: 'active, split brain, same id, peer higher instance: step down', from: state('active', { peer: { state: 'active', ...twinHigher } }), event: hbFrom('active', twinHigher), now: 1010, to: 'backup', actions: ['remove', 'hb', 'active>backup:split-brain'], peerUp: true },
  { name: 'active, split brain, same id, peer lower instance: stay, announce again, and tell it now', from: state('active'), event: hbFrom('active', twinLower), now: 1010, to: 'active', actions: ['add', 'hb'], peerUp: true },
  { name: 'active, split brain heard again: no second announcement', from: state('active', { peer: { state: 'active', ...lower } }), event: hbFrom('active', lower), now: 1010, to: 'active', actions: ['hb'], peerUp: true },
  { name: 'active, split brain even without preempt: rank decides', from: state('active', { cfg: { preempt: false } }), event: hbFrom('active', higher), now: 1010, to: 'backup', actions: ['remove', 'hb', 'active>backup:split-brain'], peerUp: true },
  { name: 'active, a backup peer went active over it: preempted', from: state('active', { peer: { state: 'backup', ...higher } }), event: hbFrom('active', higher), now: 1010, to: 'backup', actions: ['remove', 'hb', 'active>backup:preempted'], peerUp: true },
  { name: 'active, peer backup and higher: stay (the peer preempts, or not)', from: state('active'), event: hbFrom('backup', higher), now: 1010, to: 'active', actions: [], peerUp: true },
  { name: 'active, peer init and higher: stay', from: state('active'), event: hbFrom('init', higher), now: 1010, to: 'active', actions: [], peerUp: true },
  { name: 'active, peer dead: stay, peer down', from: state('active', { peer: { state: 'backup', heardAt: 1000 } }), event: { type: 'peer-timeout' }, now: 1275, to: 'active', actions: [], peerUp: false },
  { name: 'active, no healthy backend: fault, give the address up', from: state('active', { peer: { state: 'backup' } }), event: { type: 'health', healthyBackends: 0 }, now: 1010, to: 'fault', actions: ['remove', 'hb', 'active>fault:no-healthy-backends'], peerUp: true },
  { name: 'active, more healthy backends: nothing to do', from: state('active'), event: { type: 'health', healthyBackends: 7 }, now: 1010, to: 'active', actions: [] },

  // fault
  { name: 'fault, heartbeats change nothing', from: state('fault', { healthy: 0 }), event: hbFrom('fault', lower), now: 1010, to: 'fault', actions: [], peerUp: true },
  { name: 'fault, healthy again, peer active: backup', from: state('fault', { healthy: 0, peer: { state: 'active', ...lower } , cfg: { preempt: false } }), event: { type: 'health', healthyBackends: 1 }, now: 1010, to: 'backup', actions: ['hb', 'fault>backup:peer-active'], peerUp: true },
  { name: 'fault, healthy again, peer in fault too: active', from: state('fault', { healthy: 0, peer: { state: 'fault', ...higher } }), event: { type: 'health', healthyBackends: 1 }, now: 1010, to: 'active', actions: ['add', 'hb', 'fault>active:peer-fault'], peerUp: true },
  { name: 'fault, healthy again, no peer after the dead time: active', from: state('fault', { healthy: 0 }), event: { type: 'health', healthyBackends: 1 }, now: 1010, to: 'active', actions: ['add', 'hb', 'fault>active:no-peer'] },
  { name: 'fault, healthy again soon after start, no peer yet: wait in init', from: state('fault', { healthy: 0, startedAt: 1000 }), event: { type: 'health', healthyBackends: 1 }, now: 1100, to: 'init', actions: ['hb', 'fault>init:waiting-for-peer'] },

  // stop
  { name: 'stop, active: give up, say leaving', from: state('active', { peer: { state: 'backup' } }), event: { type: 'stop' }, now: 1010, to: 'init', actions: ['remove', 'leave', 'active>init:stop'], peerUp: false },
  { name: 'stop, backup', from: state('backup'), event: { type: 'stop' }, now: 1010, to: 'init', actions: ['leave', 'backup>init:stop'] },
  { name: 'stop, init', from: state('init'), event: { type: 'stop' }, now: 10, to: 'init', actions: ['leave'] },
  { name: 'after stop, nothing', from: { ...state('init'), running: false }, event: hbFrom('fault'), now: 10, to: 'init', actions: [] },
];

t.test('election table', async (t) => {
  for (const row of table) {
    const step = elect(row.from, row.event, row.now);
    t.same({ to: step.state.state, actions: short(step.actions) }, { to: row.to, actions: row.actions }, row.name);
    if (row.peerUp !== undefined) t.equal(step.state.peer !== undefined, row.peerUp, `${row.name}: peer ${row.peerUp ? 'up' : 'down'}`);
    t.same(elect(row.from, row.event, row.now), step, `${row.name}: the same inputs give the same step`);
  }
});

t.test('deadlines, rank, config checks', async (t) => {
  t.equal(nextDeadline(initialElection(config)), undefined, 'none before start');
  t.equal(nextDeadline(state('init', { startedAt: 40 })), 315, 'init: dead time from start');
  t.equal(nextDeadline(state('backup', { peer: { state: 'active', heardAt: 1000 } })), 1275, 'the peer: dead time (3 x 100 ms less the 25 ms reaction budget) from its last heartbeat');
  t.equal(nextDeadline(state('active')), undefined, 'active, no peer: nothing to wait for');
  const i0 = '0000000000000000';
  const i9 = 'f000000000000000';
  t.ok(outranks({ priority: 101, nodeId: 'a', instance: i0 }, { priority: 100, nodeId: 'z', instance: i9 }), 'priority first');
  t.ok(outranks({ priority: 100, nodeId: 'b', instance: i0 }, { priority: 100, nodeId: 'a', instance: i9 }), 'then the node id');
  t.ok(outranks({ priority: 100, nodeId: 'a', instance: i9 }, { priority: 100, nodeId: 'a', instance: i0 }), 'then the instance id');
  t.notOk(outranks({ priority: 100, nodeId: 'a', instance: i0 }, { priority: 100, nodeId: 'a', instance: i9 }));
  t.notOk(outranks({ priority: 100, nodeId: 'a', instance: i0 }, { priority: 100, nodeId: 'a', instance: i0 }), 'nothing outranks itself');
  t.throws(() => initialElection({ ...config, priority: 0 }), RangeError);
  t.throws(() => initialElection({ ...config, deadAfter: 0 }), RangeError);
  const started = elect(initialElection(config), { type: 'start', healthyBackends: 1 }, 500).state;
  t.equal(started.startedAt, 500);
  const heard = elect(started, hbFrom('active', higher), 550).state;
  t.match(heard.peer, { nodeId: 'z', priority: 200, state: 'active', heardAt: 550 });
});

// --- two elections over a simulated link ---------------------------------------------------

/** A deterministic PRNG (mulberry32), so a failing seed can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

interface SimNode {
  s: ElectionState;
  /** When it starts; its heartbeats go out at this time plus whole intervals. */
  phase: number;
}

/**
 * Runs two nodes from `start` to `end` in 1 ms steps: each sends a heartbeat every interval (at
 * its phase) and whenever an action says so; `link(from, t)` says whether a heartbeat sent at t
 * arrives (1 ms later). Deadlines are checked every step, as the runner's timer would.
 */
function simulate(nodes: [SimNode, SimNode], start: number, end: number, link: (from: 0 | 1, t: number) => boolean): { bothActiveMs: number } {
  let bothActiveMs = 0;
  const inFlight: { to: 0 | 1; at: number; event: ElectionEvent }[] = [];
  const apply = (i: 0 | 1, event: ElectionEvent, now: number) => {
    const step = elect(nodes[i].s, event, now);
    nodes[i].s = step.state;
    for (const a of step.actions) if (a.type === 'send-heartbeat') send(i, now, a.leaving);
  };
  const send = (i: 0 | 1, now: number, leaving: boolean) => {
    if (!link(i, now)) return;
    const s = nodes[i].s;
    inFlight.push({ to: (1 - i) as 0 | 1, at: now + 1, event: { type: 'heartbeat', peer: { nodeId: s.config.nodeId, instance: s.config.instance, priority: s.config.priority, state: s.state, leaving } } });
  };
  for (let now = start; now <= end; now++) {
    for (const i of [0, 1] as const) if (!nodes[i].s.running && nodes[i].s.startedAt === 0 && now === nodes[i].phase) apply(i, { type: 'start', healthyBackends: 1 }, now);
    for (let k = 0; k < inFlight.length; ) {
      if (inFlight[k].at <= now) {
        const [m] = inFlight.splice(k, 1);
        apply(m.to, m.event, now);
      } else k++;
    }
    for (const i of [0, 1] as const) {
      if (!nodes[i].s.running) continue;
      const d = nextDeadline(nodes[i].s);
      if (d !== undefined && now >= d) apply(i, { type: 'peer-timeout' }, now);
      if (now > nodes[i].phase && (now - nodes[i].phase) % nodes[i].s.config.intervalMs === 0) send(i, now, false);
    }
    if (actives(nodes).length === 2) bothActiveMs++;
  }
  return { bothActiveMs };
}

function pair(a: Partial<ElectionConfig>, b: Partial<ElectionConfig>, phases: [number, number]): [SimNode, SimNode] {
  return [
    { s: initialElection({ ...config, nodeId: 'a', instance: 'a000000000000000', ...a }), phase: phases[0] },
    { s: initialElection({ ...config, nodeId: 'b', instance: 'b000000000000000', ...b }), phase: phases[1] },
  ];
}

const actives = (nodes: SimNode[]) => nodes.filter((n) => n.s.state === 'active').map((n) => n.s.config.nodeId);

t.test('simultaneous start: exactly one active, in every order and with any one heartbeat lost', async (t) => {
  for (const [pa, pb] of [[10, 11], [1, 1], [37, 86], [99, 1], [50, 50]]) {
    for (const lose of [undefined, 0, 1] as const) {
      for (const prio of [[100, 100], [100, 150], [150, 100]]) {
        const nodes = pair({ priority: prio[0] }, { priority: prio[1] }, [pa, pb]);
        let lost = false;
        simulate(nodes, 0, 2000, (from) => {
          if (lose === from && !lost) {
            lost = true;
            return false;
          }
          return true;
        });
        const expected = prio[0] > prio[1] ? 'a' : prio[1] > prio[0] ? 'b' : 'b';
        t.same(actives(nodes), [expected], `phases ${pa}/${pb}, priorities ${prio}, lost first heartbeat of ${lose ?? 'none'}`);
      }
    }
  }
});

t.test('two nodes with one node id: exactly one active, decided by the instance id', async (t) => {
  // Cloned from one image, both are "lb"; each process drew its own instance id.
  for (const [pa, pb] of [[10, 11], [1, 1], [99, 1], [50, 50]]) {
    for (const instances of [['1111111111111111', 'eeeeeeeeeeeeeeee'], ['eeeeeeeeeeeeeeee', '1111111111111111']]) {
      for (const lose of [undefined, 0, 1] as const) {
        const nodes = pair({ nodeId: 'lb', instance: instances[0] }, { nodeId: 'lb', instance: instances[1] }, [pa, pb]);
        let lost = false;
        simulate(nodes, 0, 2000, (from) => {
          if (lose === from && !lost) {
            lost = true;
            return false;
          }
          return true;
        });
        const winner = nodes.filter((n) => n.s.state === 'active').map((n) => n.s.config.instance);
        t.same(winner, ['eeeeeeeeeeeeeeee'], `phases ${pa}/${pb}, instances ${instances.join('/')}, lost ${lose ?? 'none'}: the greater instance alone is active`);
      }
    }
  }
  // A partition makes both active; once it heals, one steps down within one interval.
  const nodes = pair({ nodeId: 'lb', instance: '2222222222222222' }, { nodeId: 'lb', instance: '3333333333333333' }, [5, 60]);
  simulate(nodes, 0, 1000, () => true);
  simulate(nodes, 1001, 2000, () => false);
  t.equal(actives(nodes).length, 2, 'cut off, both are active');
  simulate(nodes, 2001, 2001 + 100 + 2, () => true);
  t.same(nodes.filter((n) => n.s.state === 'active').map((n) => n.s.config.instance), ['3333333333333333'], 'healed: one active within one interval');
});

t.test('random partitions that heal: one active within one interval of the heartbeats returning', async (t) => {
  let splitBrains = 0;
  for (let seed = 1; seed <= 40; seed++) {
    const rnd = prng(seed);
    const preempt = rnd() < 0.5;
    const nodes = pair({ priority: 50 + Math.floor(rnd() * 3) * 50, preempt }, { priority: 50 + Math.floor(rnd() * 3) * 50, preempt }, [1 + Math.floor(rnd() * 100), 1 + Math.floor(rnd() * 100)]);
    // Outages of the link, each direction on its own: 0-3 of them, up to 1.5 s each.
    const cuts: { from: 0 | 1 | 2; start: number; end: number }[] = [];
    for (let k = Math.floor(rnd() * 4); k > 0; k--) {
      const start = Math.floor(rnd() * 3000);
      cuts.push({ from: Math.floor(rnd() * 3) as 0 | 1 | 2, start, end: start + Math.floor(rnd() * 1500) });
    }
    const healed = Math.max(0, ...cuts.map((c) => c.end));
    const link = (from: 0 | 1, now: number) => !cuts.some((c) => (c.from === 2 || c.from === from) && now >= c.start && now < c.end);
    if (simulate(nodes, 0, healed, link).bothActiveMs > 0) splitBrains++;
    // Heartbeats flow both ways again. Within one interval, each has heard the other, and
    // whoever was wrong has stepped down or taken over.
    simulate(nodes, healed + 1, healed + 1 + 100 + 2, link);
    const a = actives(nodes);
    t.equal(a.length, 1, `seed ${seed}: exactly one active one interval after the link healed (${a.join(',') || 'none'})`);
    simulate(nodes, healed + 103, healed + 1500, link);
    t.same(actives(nodes), a, `seed ${seed}: and it stays so`);
  }
  t.ok(splitBrains >= 5, `the partitions did make both nodes active at times (${splitBrains} of 40 runs)`);
});

t.test('a node in fault holds nothing; the peer takes over and gives back when preempting', async (t) => {
  const nodes = pair({ priority: 200 }, { priority: 100 }, [1, 50]);
  simulate(nodes, 0, 1000, () => true);
  t.same(actives(nodes), ['a']);
  nodes[0].s = elect(nodes[0].s, { type: 'health', healthyBackends: 0 }, 1001).state;
  t.equal(nodes[0].s.state, 'fault');
  simulate(nodes, 1001, 1200, () => true);
  t.same(actives(nodes), ['b'], 'the peer took over on the fault heartbeat');
  nodes[0].s = elect(nodes[0].s, { type: 'health', healthyBackends: 4 }, 1201).state;
  simulate(nodes, 1201, 1400, () => true);
  t.same(actives(nodes), ['a'], 'healthy again, the higher priority takes it back (preempt)');
});

t.test('VIP specs: parse, canonical form, the interface by subnet', async (t) => {
  t.same(parseVipSpec('192.0.2.10/24', 'vip'), { ip: '192.0.2.10', prefix: 24 });
  t.same(parseVipSpec(' 2001:DB8:0::10/64,dev=eth0 ', 'vip'), { ip: '2001:db8::10', prefix: 64, dev: 'eth0' });
  t.same(parseVipSpec('10.0.0.1/32,dev=lb4t-a.1', 'vip'), { ip: '10.0.0.1', prefix: 32, dev: 'lb4t-a.1' });
  for (const [bad, message] of [
    ['192.0.2.10', /is not ADDR\/PREFIX/],
    ['192.0.2.10/33', /prefix \/33 is out of range for an IPv4 address/],
    ['2001:db8::1/129', /out of range for an IPv6 address/],
    ['192.0.2.10/0', /out of range/],
    ['host.example/24', /not a numeric IPv4 or IPv6 address/],
    ['192.0.2.10/24,iface=eth0', /unknown VIP option "iface=eth0"/],
    ['192.0.2.10/24,dev=', /not an interface name/],
    ['192.0.2.10/24,dev=a-very-long-interface', /not an interface name/],
    ['192.0.2.10/24,dev=a/b', /not an interface name/],
  ] as const) {
    t.throws(() => parseVipSpec(bad, 'cluster.vips[0]'), { name: 'Lb4Error', code: 'LB4_INVALID_ADDRESS', field: 'cluster.vips[0]', message } as never, bad);
  }
  t.throws(() => parseVipSpec(42, 'vip'), Lb4Error);
  t.equal(canonicalIp('2001:0DB8:0000:0000:0001:0000:0000:0001'), '2001:db8::1:0:0:1', 'the first longest zero run');
  t.equal(canonicalIp('fe80::1'), 'fe80::1');
  t.equal(canonicalIp('::'), '::');
  t.equal(canonicalIp('1:0:2:0:3:0:4:0'), '1:0:2:0:3:0:4:0', 'single zero words stay');
  t.equal(canonicalIp('::ffff:10.1.2.3'), '::ffff:a01:203');
  t.ok(inSubnet('192.0.2.200', '192.0.2.1', 24));
  t.notOk(inSubnet('192.0.3.1', '192.0.2.1', 24));
  t.ok(inSubnet('10.1.2.3', '10.0.0.0', 15));
  t.notOk(inSubnet('10.2.0.0', '10.0.0.0', 15));
  t.ok(inSubnet('2001:db8::99', '2001:db8::1', 64));
  t.notOk(inSubnet('2001:db8:1::99', '2001:db8::1', 64));
  t.notOk(inSubnet('2001:db8::99', '192.0.2.1', 24), 'families differ');

  const ifaces = {
    lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
    eth0: [
      { address: '192.0.2.5', netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:01', internal: false, cidr: '192.0.2.5/24' },
      { address: '2001:db8::5', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:00:00:00:00:01', internal: false, cidr: '2001:db8::5/64', scopeid: 0 },
    ],
    eth1: [{ address: '198.51.100.5', netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:02', internal: false, cidr: '198.51.100.5/24' }],
    eth2: [{ address: '198.51.100.6', netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:03', internal: false, cidr: '198.51.100.6/24' }],
  } as never;
  t.same(resolveVip(parseVipSpec('192.0.2.10/24', 'v'), 'v', ifaces), { ip: '192.0.2.10', prefix: 24, dev: 'eth0', family: 4 });
  t.same(resolveVip(parseVipSpec('2001:db8::10/64', 'v'), 'v', ifaces), { ip: '2001:db8::10', prefix: 64, dev: 'eth0', family: 6 });
  t.same(resolveVip(parseVipSpec('203.0.113.1/32,dev=eth1', 'v'), 'v', ifaces), { ip: '203.0.113.1', prefix: 32, dev: 'eth1', family: 4 }, 'named: taken as is');
  t.throws(() => resolveVip(parseVipSpec('203.0.113.1/32', 'v'), 'v', ifaces), /no interface has an address in its subnet; add ",dev=IFACE"/);
  t.throws(() => resolveVip(parseVipSpec('198.51.100.9/24', 'v'), 'v', ifaces), /several interfaces have its subnet \(eth1, eth2\)/);
});

t.test('a node that cannot add its VIPs goes to fault, the peer takes over, and it tries again later', async (t) => {
  // The step itself: active, the add failed -> fault, addresses released, the peer told at once.
  const failed = elect(state('active', { peer: { state: 'backup' } }), { type: 'vip-failed' }, 1050);
  t.equal(failed.state.state, 'fault');
  t.same(short(failed.actions), ['remove', 'hb', 'active>fault:vip-failed']);
  t.same(short(elect(state('backup', { peer: { state: 'active' } }), { type: 'vip-failed' }, 1050).actions), [], 'a node not taking the address ignores it');
  // While the retry time runs, nothing brings it back: not a heartbeat, not a health change.
  const stay = elect(failed.state, hbFrom('backup'), 1100);
  t.equal(stay.state.state, 'fault', 'a backup peer does not draw it back to active');
  t.equal(nextDeadline(stay.state), 1100 + 275, "the peer's dead time comes first");
  t.equal(nextDeadline({ ...stay.state, peer: undefined }), 1050 + vipRetryMs, 'then the retry');
  // After the retry time the election decides anew: the peer holds the address now.
  const back = elect(elect(stay.state, hbFrom('active'), 1050 + vipRetryMs - 50).state, { type: 'peer-timeout' }, 1050 + vipRetryMs);
  t.equal(back.state.state, 'backup', 'back as backup beside the active peer');
  t.same(short(back.actions), ['hb', 'fault>backup:peer-active']);

  // Two nodes: a's add fails; b takes the address within the dead time; a, retrying, stays backup
  // (no preempt of a node whose add keeps failing: it fails again and goes back to fault).
  const nodes = pair({ priority: 200 }, { priority: 100 }, [1, 50]);
  simulate(nodes, 0, 1000, () => true);
  t.same(actives(nodes), ['a']);
  nodes[0].s = elect(nodes[0].s, { type: 'vip-failed' }, 1001).state;
  simulate(nodes, 1001, 1400, () => true);
  t.same(actives(nodes), ['b'], 'the peer took over on the fault heartbeat');
});
