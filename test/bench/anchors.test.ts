// The bench's anchors (bench/anchors.mjs): "best HAProxy" is the better of the two HAProxy
// settings metric by metric, the ratio columns divide by the best of HAProxy and nginx, and the
// NAT targets are computed from the medians, met or not, never assumed.

import t from 'tap';
import { bestOf, bestTable, NAT_TARGETS, natTargets, ratiosToBest, roundRatios, type Summary } from '../../bench/anchors.mjs';

const higher = { better: 'higher' as const };
const lower = { better: 'lower' as const };
const cell = (median: number | null) => ({ median });

// One worker count; the HAProxy settings win different metrics, and nginx wins conn_rate.
const summary: Summary = {
  1: {
    direct: { tput_up_1: cell(20), rr16_rps: cell(100_000), conn_rate: cell(10_000) },
    lb4: { tput_up_1: cell(15), cpu_up_1: cell(0.5), rr16_rps: cell(80_000), conn_rate: cell(7000) },
    'lb4-nat': { tput_up_1: cell(19), cpu_up_1: cell(0.01), rr16_rps: cell(85_000), conn_rate: cell(7900) },
    'haproxy-splice-auto': { tput_up_1: cell(12), cpu_up_1: cell(0.4), rr16_rps: cell(70_000), conn_rate: cell(6000) },
    'haproxy-splice-rr': { tput_up_1: cell(14), cpu_up_1: cell(0.6), rr16_rps: cell(60_000), conn_rate: cell(6500) },
    nginx: { tput_up_1: cell(13), cpu_up_1: cell(0.7), rr16_rps: cell(null), conn_rate: cell(8000) },
  },
};
const haproxy = ['haproxy-splice-auto', 'haproxy-splice-rr'];
const anchors = [...haproxy, 'nginx'];

t.test('bestOf: higher wins for rates, lower for costs; missing values do not count', async (t) => {
  t.same(bestOf(higher, [{ system: 'a', value: 1 }, { system: 'b', value: 3 }, { system: 'c', value: null }]), { system: 'b', value: 3 });
  t.same(bestOf(lower, [{ system: 'a', value: 1 }, { system: 'b', value: 3 }, { system: 'c', value: undefined }]), { system: 'a', value: 1 });
  t.same(bestOf(higher, [{ system: 'a', value: 2 }, { system: 'b', value: 2 }]), { system: 'a', value: 2 }, 'a tie goes to the first named');
  t.equal(bestOf(higher, [{ system: 'a', value: null }]), null, 'nothing measured: no best');
});

t.test('best HAProxy is chosen metric by metric', async (t) => {
  const best = bestTable(summary, haproxy)[1];
  t.same(best.tput_up_1, { system: 'haproxy-splice-rr', value: 14 }, 'throughput from splice-request/response');
  t.same(best.cpu_up_1, { system: 'haproxy-splice-auto', value: 0.4 }, 'CPU per GB from splice-auto (lower)');
  t.same(best.rr16_rps, { system: 'haproxy-splice-auto', value: 70_000 });
  t.notOk('conn_rate' in bestTable({ 1: { lb4: { conn_rate: cell(1) } } }, haproxy)[1], 'no HAProxy value: no entry');
});

t.test('ratios divide by the best of both HAProxy settings and nginx', async (t) => {
  const lb4 = ratiosToBest(summary, anchors)[1];
  t.equal(lb4.tput_up_1.against, 'haproxy-splice-rr');
  t.equal(lb4.tput_up_1.ratio, 15 / 14);
  t.equal(lb4.tput_up_1.verdict, 'better');
  t.equal(lb4.conn_rate.against, 'nginx', 'nginx is the best anchor for new connections');
  t.equal(lb4.conn_rate.verdict, 'worse');
  t.equal(lb4.rr16_rps.against, 'haproxy-splice-auto', "nginx's missing value is skipped");
  t.equal(lb4.cpu_up_1.ratio, 0.5 / 0.4);
  t.equal(lb4.cpu_up_1.verdict, 'worse', 'more CPU per GB than the best anchor is worse');
  const nat = ratiosToBest(summary, anchors, 'lb4-nat')[1];
  t.equal(nat.tput_up_1.ratio, 19 / 14);
  t.equal(nat.cpu_up_1.verdict, 'better');
});

t.test('NAT targets: computed against direct and the best anchor, met or not', async (t) => {
  const rows = natTargets(summary, anchors)[1];
  const row = (metric: string, against: string) => rows.find((r) => r.metric === metric && r.against === against);
  t.match(row('tput_up_1', 'direct'), { reference: 'direct', value: 19, referenceValue: 20, ratio: 19 / 20, atLeast: 0.9, met: true });
  t.match(row('tput_up_1', 'best anchor'), { reference: 'haproxy-splice-rr', ratio: 19 / 14, atLeast: 1.3, met: true });
  t.match(row('rr16_rps', 'direct'), { ratio: 0.85, met: false }, '0.85x direct misses 0.9');
  t.match(row('rr16_rps', 'best anchor'), { reference: 'haproxy-splice-auto', ratio: 85_000 / 70_000, met: false }, '1.21x misses 1.3');
  t.match(row('conn_rate', 'direct'), { ratio: 0.79, atLeast: 0.8, met: false });
  t.notOk(row('conn_rate', 'best anchor'), 'new connections/s has no target against the anchors');
  t.notOk(row('conn_rate', 'kernel-dnat'), 'a reference that did not run gives no row');
  const withFloor = natTargets({ 1: { ...summary[1], 'kernel-dnat': { conn_rate: cell(8000) } } }, anchors)[1];
  t.match(withFloor.find((r) => r.metric === 'conn_rate' && r.against === 'kernel-dnat'), { reference: 'kernel-dnat', ratio: 7900 / 8000, atLeast: 0.8, met: true });
  t.notOk(row('tput_down_1', 'direct'), 'a metric nobody measured gives no row');
  t.equal(NAT_TARGETS.filter((x) => x.against === 'best anchor').every((x) => x.atLeast === 1.3), true);
  t.same(natTargets({ 1: { direct: { tput_up_1: cell(20) } } }, anchors)[1], [], 'no lb4-nat: no rows');
});

// Three rounds; the machine slowed down in round 2 for every system alike.
const rounds = (...values: number[]) => ({ median: [...values].sort((a, b) => a - b)[1], values, rounds: [1, 2, 3] });
const drifting: Summary = {
  1: {
    direct: { rr16_rps: rounds(100, 50, 110), conn_rate: rounds(10, 10, 10) },
    'lb4-nat': { rr16_rps: rounds(95, 48, 80), conn_rate: { median: 9, values: [9], rounds: [2] } },
    lb4: { rr16_rps: rounds(60, 35, 70), cpu_up_1: rounds(1, 2, 1) },
    'haproxy-splice-auto': { rr16_rps: rounds(70, 30, 60), cpu_up_1: rounds(2, 1, 2) },
    nginx: { rr16_rps: rounds(50, 40, 65), cpu_up_1: { median: 1.5, values: [1.5, null, 1.5], rounds: [1, 2, 3] } },
  },
};

t.test('ratios round by round: each round against the same reference, min and max and median', async (t) => {
  const r = roundRatios(drifting[1], 'lb4', ['haproxy-splice-auto', 'nginx'], { key: 'rr16_rps', better: 'higher' });
  t.same(r?.perRound, [60 / 70, 35 / 40, 70 / 65], 'given several references, the best of them in each round');
  t.equal(r?.min, 60 / 70);
  t.equal(r?.max, 70 / 65);
  t.equal(r?.median, 35 / 40);
  const cpu = roundRatios(drifting[1], 'lb4', ['haproxy-splice-auto', 'nginx'], { key: 'cpu_up_1', better: 'lower' });
  t.same(cpu?.perRound, [1 / 1.5, 2 / 1, 1 / 1.5], 'lower is best for CPU; a round without a value skips that anchor');
  t.equal(roundRatios(drifting[1], 'lb4-nat', ['direct'], { key: 'conn_rate', better: 'higher' }), null, 'one round: nothing to compare round by round');
  t.equal(roundRatios(drifting[1], 'nobody', ['direct'], { key: 'rr16_rps', better: 'higher' }), null);
  // The anchor ratios take every round against the anchor of the medians' ratio (HAProxy, whose
  // median 60 beats nginx's 50), not against whichever anchor was best in that round.
  const table = ratiosToBest(drifting, ['haproxy-splice-auto', 'nginx'])[1].rr16_rps;
  t.equal(table.against, 'haproxy-splice-auto');
  t.same(table.rounds?.perRound, [60 / 70, 35 / 30, 70 / 60]);
  // A round that lacks the anchor is left out, not judged against a weaker one.
  const gap: Summary = { 1: { lb4: { rr16_rps: rounds(100, 100, 100) }, a: { rr16_rps: { median: 200, values: [200, 200], rounds: [1, 3] } }, b: { rr16_rps: rounds(50, 50, 50) } } };
  t.same(ratiosToBest(gap, ['a', 'b'], 'lb4')[1].rr16_rps.rounds?.perRound, [0.5, 0.5]);
});

t.test('NAT targets say in how many rounds the round\'s own ratio met the target', async (t) => {
  const rows = natTargets(drifting, ['haproxy-splice-auto', 'nginx'])[1];
  const rr = rows.find((r) => r.metric === 'rr16_rps' && r.against === 'direct');
  t.equal(rr?.ratio, 80 / 100, "the medians' ratio misses 0.9 ...");
  t.equal(rr?.met, false);
  t.same(rr?.rounds?.perRound, [0.95, 0.96, 80 / 110]);
  t.equal(rr?.roundsMet, 2, '... and two of the three rounds met it on their own');
  const conn = rows.find((r) => r.metric === 'conn_rate' && r.against === 'direct');
  t.equal(conn?.rounds, null);
  t.equal(conn?.roundsMet, null);
});
