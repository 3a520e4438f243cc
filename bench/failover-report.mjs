// The failover bench's report: per system the outage statistics over its kills, lb4's ratio to
// each anchor, a Markdown table and every round's values; saved as
// bench/results/failover-latest.{md,json} plus a time-stamped copy in bench/results/history/.

import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const HISTORY_KEEP = 6;
export const HISTORY_PREFIX = 'failover-';

/** @param {number[]} xs */
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * @typedef {{ servedAfterMs: number, gapMs: number, failedProbes: number }} RoundResult
 * @typedef {{ rounds: number, medianMs: number, meanMs: number, worstMs: number, bestMs: number, medianFailedProbes: number, meanFailedProbes: number }} Summary
 */

/** @param {RoundResult[]} rounds @returns {Summary | null} */
export function summarise(rounds) {
  if (rounds.length === 0) return null;
  const ms = rounds.map((r) => r.servedAfterMs);
  const failed = rounds.map((r) => r.failedProbes);
  return {
    rounds: rounds.length,
    medianMs: median(ms),
    meanMs: mean(ms),
    worstMs: Math.max(...ms),
    bestMs: Math.min(...ms),
    medianFailedProbes: median(failed),
    meanFailedProbes: mean(failed),
  };
}

/**
 * lb4's crash outage divided by each anchor's (below 1: lb4 fails over faster).
 * @param {Record<string, Summary | null>} summaries
 * @param {string[]} anchors
 */
export function ratios(summaries, anchors) {
  const out = {};
  const lb4 = summaries.lb4;
  for (const a of anchors) {
    const s = summaries[a];
    if (lb4 && s) out[a] = { median: lb4.medianMs / s.medianMs, worst: lb4.worstMs / s.worstMs, mean: lb4.meanMs / s.meanMs };
  }
  return out;
}

const f0 = (x) => x.toFixed(0);
const f1 = (x) => x.toFixed(1);
const f3 = (x) => x.toFixed(3);

/**
 * The results table: one row per system.
 * @param {import('./failover-systems.mjs').FailoverSystem[]} systems
 * @param {Record<string, Summary | null>} summaries
 * @param {Record<string, { median: number, worst: number, mean: number }>} ratioTable
 */
export function resultsTable(systems, summaries, ratioTable) {
  const rows = [
    '| system | failure | kills | outage median (ms) | mean (ms) | worst (ms) | best (ms) | failed connections, median (mean) | lb4 / system: median, worst, mean |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const s of systems) {
    const m = summaries[s.name];
    if (!m) continue;
    const r = ratioTable[s.name];
    rows.push(
      `| ${s.label} | ${s.signal} | ${m.rounds} | ${f0(m.medianMs)} | ${f0(m.meanMs)} | ${f0(m.worstMs)} | ${f0(m.bestMs)} | ${f0(m.medianFailedProbes)} (${f1(m.meanFailedProbes)}) | ${r ? `${f3(r.median)}, ${f3(r.worst)}, ${f3(r.mean)}` : '–'} |`,
    );
  }
  return rows.join('\n');
}

/** Every round's outage, per system, in the order run. */
export function perRoundTable(systems, results) {
  const rows = ['| system | outage per kill, in order (ms) | failed connections per kill |', '| --- | --- | --- |'];
  for (const s of systems) {
    const rs = results[s.name] ?? [];
    if (rs.length === 0) continue;
    rows.push(`| ${s.label} | ${rs.map((r) => f0(r.servedAfterMs)).join(' ')} | ${rs.map((r) => r.failedProbes).join(' ')} |`);
  }
  return rows.join('\n');
}

/** Writes failover-latest.{md,json} and a history copy; keeps the newest HISTORY_KEEP copies. */
export function save(resultsDir, when, markdown, json) {
  const history = join(resultsDir, 'history');
  mkdirSync(history, { recursive: true });
  writeFileSync(join(resultsDir, 'failover-latest.md'), markdown);
  writeFileSync(join(resultsDir, 'failover-latest.json'), `${JSON.stringify(json, null, 1)}\n`);
  const stamp = `${HISTORY_PREFIX}${when.replace(/[:.]/g, '-').slice(0, 19)}`;
  writeFileSync(join(history, `${stamp}.md`), markdown);
  writeFileSync(join(history, `${stamp}.json`), `${JSON.stringify(json)}\n`);
  const stamps = [...new Set(readdirSync(history).filter((f) => f.startsWith(HISTORY_PREFIX)).map((f) => f.replace(/\.(md|json)$/, '')))].sort();
  for (const old of stamps.slice(0, Math.max(0, stamps.length - HISTORY_KEEP))) {
    for (const ext of ['md', 'json']) rmSync(join(history, `${old}.${ext}`), { force: true });
  }
  return stamp;
}
