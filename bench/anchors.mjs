// The anchors lb4 is measured against, and the targets of lb4's NAT mode, from the medians:
//   - "best HAProxy": per metric, the better of the two HAProxy settings that ran (splice-auto and
//     splice-request/response), named with the setting it came from;
//   - the best anchor: the better of best HAProxy and nginx (what the ratio columns divide by);
//   - the NAT targets of issue 10 item 5 (lb4-nat against direct and against the best anchor),
//     computed and shown, never asserted.
// Pure functions of run.mjs's summary, so they are tested without running anything.

import { best, median, metrics, verdict } from './metrics.mjs';

/**
 * The better of the candidates for a metric (higher for rates, lower for CPU, latency, memory),
 * with the system it came from; the first named wins a tie. null when none has a number.
 * @param {import('./metrics.mjs').Metric} metric
 * @param {Array<{system: string, value: number | null | undefined}>} candidates
 * @returns {{system: string, value: number} | null}
 */
export function bestOf(metric, candidates) {
  const b = best(metric, candidates.map((c) => c.value));
  if (b === null) return null;
  const winner = candidates.find((c) => c.value === b);
  return winner ? { system: winner.system, value: b } : null;
}

/**
 * Per workers, system and metric: the median, and (from summarise) the per-round values with the
 * round each came from.
 * @typedef {Record<string, Record<string, Record<string, {median: number | null, values?: Array<number | null>, rounds?: number[]}>>>} Summary
 */

/**
 * The same ratio taken round by round: in each round where `subject` has a value, it over the
 * best of `references` in that round (every system ran once per round, seconds apart). Slow drift
 * of the machine then moves both sides of a ratio together, which the medians' ratio cannot
 * tell: the spread of these ratios is what a comparison of two systems can show on this machine.
 * The tables pass one reference, the system the medians' ratio is against: the best of several
 * noisy values in each round would be biased upwards, and a round missing the best anchor would
 * be judged against a weaker one.
 * @param {Record<string, Record<string, {values?: Array<number | null>, rounds?: number[]}>>} bySystem one worker count
 * @param {string} subject
 * @param {string[]} references
 * @param {import('./metrics.mjs').Metric} metric
 * @returns {Array<{round: number, ratio: number}>} the rounds where both sides have a number
 */
export function ratiosByRound(bySystem, subject, references, metric) {
  const mine = bySystem[subject]?.[metric.key];
  /** @type {Array<{round: number, ratio: number}>} */
  const out = [];
  (mine?.rounds ?? []).forEach((round, i) => {
    const value = mine?.values?.[i];
    const refs = references.map((r) => {
      const cell = bySystem[r]?.[metric.key];
      const j = cell?.rounds?.indexOf(round) ?? -1;
      return j >= 0 ? cell?.values?.[j] : null;
    });
    const b = best(metric, refs);
    if (typeof value === 'number' && Number.isFinite(value) && b !== null && b !== 0) out.push({ round, ratio: value / b });
  });
  return out;
}

/**
 * `ratiosByRound` summed up: the ratios, their lowest, highest and median.
 * @param {Parameters<typeof ratiosByRound>} args
 * @returns {{perRound: number[], min: number, max: number, median: number} | null} null without two rounds
 */
export function roundRatios(...args) {
  const perRound = ratiosByRound(...args).map((r) => r.ratio);
  if (perRound.length < 2) return null;
  return { perRound, min: Math.min(...perRound), max: Math.max(...perRound), median: /** @type {number} */ (median(perRound)) };
}

/**
 * Per worker count and metric, the better of the given systems' medians.
 * @param {Summary} summary
 * @param {string[]} systems
 * @returns {Record<string, Record<string, {system: string, value: number}>>}
 */
export function bestTable(summary, systems) {
  /** @type {Record<string, Record<string, {system: string, value: number}>>} */
  const out = {};
  for (const [w, bySystem] of Object.entries(summary)) {
    out[w] = {};
    for (const m of metrics) {
      const b = bestOf(m, systems.map((system) => ({ system, value: bySystem[system]?.[m.key]?.median })));
      if (b) out[w][m.key] = b;
    }
  }
  return out;
}

/**
 * `subject`'s median divided by the best anchor's, per worker count and metric.
 * @param {Summary} summary
 * @param {string[]} anchors
 * @param {string} [subject]
 * @returns {Record<string, Record<string, {ratio: number, against: string, verdict: 'better' | 'worse' | 'tie'}>>}
 */
export function ratiosToBest(summary, anchors, subject = 'lb4') {
  const bests = bestTable(summary, anchors);
  /** @type {Record<string, Record<string, {ratio: number, against: string, verdict: 'better' | 'worse' | 'tie'}>>} */
  const out = {};
  for (const [w, bySystem] of Object.entries(summary)) {
    out[w] = {};
    for (const m of metrics) {
      const mine = bySystem[subject]?.[m.key]?.median;
      const b = bests[w][m.key];
      if (typeof mine !== 'number' || !b || b.value === 0) continue;
      const ratio = mine / b.value;
      out[w][m.key] = { ratio, against: b.system, verdict: verdict(m, ratio), rounds: roundRatios(bySystem, subject, [b.system], m) };
    }
  }
  return out;
}

/** @typedef {'direct' | 'direct-conntrack' | 'kernel-dnat' | 'best anchor'} TargetReference */

/**
 * The NAT targets of issue 10 item 5: throughput and keep-alive requests/s at least 0.9x direct
 * and 1.3x the best anchor; new connections/s at least 0.8x direct. The same direct targets are
 * also taken against `direct-conntrack` (a direct connection with the kernel's connection tracking
 * on) and `kernel-dnat` (one static nftables DNAT rule, nothing of lb4), when they ran: they split
 * what conntrack costs any host that has it on, and what the kernel's NAT costs any nftables NAT,
 * from what lb4's rules add. The targets proper are the `direct` rows.
 * @type {Array<{metric: string, against: TargetReference, atLeast: number}>}
 */
export const NAT_TARGETS = [
  ...['tput_up_1', 'tput_down_1', 'tput_up_4', 'tput_down_4', 'rr16_rps', 'rr256_rps'].flatMap((metric) => [
    { metric, against: /** @type {const} */ ('direct'), atLeast: 0.9 },
    { metric, against: /** @type {const} */ ('direct-conntrack'), atLeast: 0.9 },
    { metric, against: /** @type {const} */ ('kernel-dnat'), atLeast: 0.9 },
    { metric, against: /** @type {const} */ ('best anchor'), atLeast: 1.3 },
  ]),
  { metric: 'conn_rate', against: 'direct', atLeast: 0.8 },
  { metric: 'conn_rate', against: 'direct-conntrack', atLeast: 0.8 },
  { metric: 'conn_rate', against: 'kernel-dnat', atLeast: 0.8 },
];

/**
 * @typedef {object} TargetRow
 * @property {string} metric
 * @property {TargetReference} against
 * @property {string} reference the system the reference value came from
 * @property {number} value the subject's median
 * @property {number} referenceValue
 * @property {number} ratio
 * @property {number} atLeast
 * @property {boolean} met
 */

/**
 * Each NAT target with both medians present, per worker count.
 * @param {Summary} summary
 * @param {string[]} anchors
 * @param {string} [subject]
 * @returns {Record<string, TargetRow[]>}
 */
export function natTargets(summary, anchors, subject = 'lb4-nat') {
  const bests = bestTable(summary, anchors);
  /** @type {Record<string, TargetRow[]>} */
  const out = {};
  for (const [w, bySystem] of Object.entries(summary)) {
    out[w] = [];
    for (const t of NAT_TARGETS) {
      const value = bySystem[subject]?.[t.metric]?.median;
      const ref = t.against === 'best anchor' ? bests[w][t.metric] : { system: t.against, value: bySystem[t.against]?.[t.metric]?.median };
      if (typeof value !== 'number' || !ref || typeof ref.value !== 'number' || ref.value === 0) continue;
      const ratio = value / ref.value;
      const metric = metrics.find((m) => m.key === t.metric);
      const rounds = metric && ref.system ? roundRatios(bySystem, subject, [ref.system], metric) : null;
      const roundsMet = rounds ? rounds.perRound.filter((r) => r >= t.atLeast).length : null;
      out[w].push({ metric: t.metric, against: t.against, reference: ref.system, value, referenceValue: ref.value, ratio, atLeast: t.atLeast, met: ratio >= t.atLeast, rounds, roundsMet });
    }
  }
  return out;
}
