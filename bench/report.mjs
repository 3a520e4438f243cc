// Turns the per-round results into medians, ratios, markdown tables and an SVG bar chart.
// Nothing here measures; it only summarises what run.mjs collected.

import { ratiosByRound, ratiosToBest } from './anchors.mjs';
import { median, metrics, verdict } from './metrics.mjs';

/**
 * @typedef {object} RunRecord one system, one scenario, one round, one worker count
 * @property {number} round
 * @property {number | null} workers null for systems without a worker setting
 * @property {string} scenario
 * @property {string} system
 * @property {Record<string, number | null>} metrics
 * @property {object} raw
 * @property {string[]} notes
 * @property {number} [otherCores] CPU cores busy outside the bench during the run, on average
 * @property {number} [stealCores] CPU stolen by the hypervisor during the run, in cores
 * @property {string} [remeasured] set when --retry-disturbed measured the run twice
 */

/**
 * Medians per worker count, system and metric, with the per-round values they come from.
 * Systems without a worker setting (direct, node-pipe) appear under every worker count.
 * @param {RunRecord[]} runs
 * @param {number[]} workersList
 * @param {string[]} systemNames
 */
export function summarise(runs, workersList, systemNames) {
  /** @type {Record<string, Record<string, Record<string, {median: number | null, values: Array<number | null>, rounds: number[]}>>>} */
  const out = {};
  for (const w of workersList) {
    out[w] = {};
    for (const system of systemNames) {
      out[w][system] = {};
      const mine = runs.filter((r) => r.system === system && (r.workers === null || r.workers === w)).sort((a, b) => a.round - b.round);
      for (const m of metrics) {
        const measured = mine.filter((r) => m.key in r.metrics);
        const values = measured.map((r) => r.metrics[m.key]);
        if (values.length > 0) out[w][system][m.key] = { median: median(values), values, rounds: measured.map((r) => r.round) };
      }
    }
  }
  return out;
}

/**
 * lb4's median divided by the best anchor's median, per worker count and metric.
 * @param {ReturnType<typeof summarise>} summary
 * @param {string[]} anchors
 */
export function ratios(summary, anchors) {
  return ratiosToBest(summary, anchors, 'lb4');
}

/**
 * How the anchors read in a column head: the HAProxy settings are one anchor, "HAProxy".
 * @param {string[]} anchors
 */
export function anchorLabel(anchors) {
  return [...new Set(anchors.map((a) => (a.startsWith('haproxy') ? 'HAProxy' : a)))].join(', ');
}

/**
 * Run-to-run spread of one system's metric: (max - min) / median over the rounds, null with
 * fewer than two values (or a zero median).
 * @param {{median: number | null, values: Array<number | null>} | undefined} cell
 * @returns {number | null}
 */
export function spread(cell) {
  const v = (cell?.values ?? []).filter((x) => typeof x === 'number' && Number.isFinite(x));
  if (v.length < 2 || !cell?.median) return null;
  return (Math.max(...v) - Math.min(...v)) / Math.abs(cell.median);
}

/**
 * The spread of every system's metrics, per worker count: what a difference between two systems
 * must exceed before it says more than the noise between rounds.
 * @param {ReturnType<typeof summarise>} summary
 */
export function spreads(summary) {
  /** @type {Record<string, Record<string, Record<string, number | null>>>} */
  const out = {};
  for (const [w, bySystem] of Object.entries(summary)) {
    out[w] = {};
    for (const [system, byMetric] of Object.entries(bySystem)) {
      out[w][system] = Object.fromEntries(Object.entries(byMetric).map(([k, cell]) => [k, spread(cell)]));
    }
  }
  return out;
}

/**
 * lb4 against each other lb4 build in the run (--compare-root): the ratio of the medians
 * (lb4 / build, so after / before when lb4 is the newer one), the ratio round by round (both
 * were measured in the same round, a few seconds apart), and whether the medians' ratio is off 1
 * by more than the run-to-run spread (the larger of the two builds' spreads): with verdict
 * 'worse', that is lb4 slower than the build by more than the noise.
 * @param {ReturnType<typeof summarise>} summary
 * @param {string[]} builds names of the compared builds
 */
export function ratiosToBuilds(summary, builds) {
  /**
   * @type {Record<string, Record<string, Record<string, {ratio: number, perRound: Array<{round: number, ratio: number}>,
   *   min: number | null, max: number | null, spread: number | null, verdict: 'better' | 'worse' | 'tie', beyondSpread: boolean | null}>>>}
   */
  const out = {};
  for (const [w, bySystem] of Object.entries(summary)) {
    out[w] = {};
    for (const build of builds) {
      out[w][build] = {};
      for (const m of metrics) {
        const after = bySystem.lb4?.[m.key];
        const before = bySystem[build]?.[m.key];
        if (typeof after?.median !== 'number' || typeof before?.median !== 'number' || before.median === 0) continue;
        const ratio = after.median / before.median;
        const perRound = ratiosByRound(bySystem, 'lb4', [build], m);
        const rs = perRound.map((r) => r.ratio);
        const sa = spread(after);
        const sb = spread(before);
        const s = sa === null || sb === null ? null : Math.max(sa, sb);
        const v = verdict(m, ratio);
        const beyondSpread = s === null ? null : Math.abs(ratio - 1) > s;
        out[w][build][m.key] = { ratio, perRound, min: rs.length ? Math.min(...rs) : null, max: rs.length ? Math.max(...rs) : null, spread: s, verdict: v, beyondSpread };
      }
    }
  }
  return out;
}

/** @param {number | null | undefined} v @param {number} digits */
function fmt(v, digits) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '–';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/**
 * The markdown table of medians for one worker count.
 * @param {string | number} w
 * @param {ReturnType<typeof summarise>} summary
 * @param {ReturnType<typeof ratios>} ratioTable
 * @param {string[]} systemNames
 * @param {string[]} anchors
 * @param {ReturnType<typeof ratiosToBuilds>} [buildTable] lb4 against the --compare-root builds
 * @param {{bestHaproxy?: Record<string, Record<string, {system: string, value: number}>> | null,
 *   natRatios?: ReturnType<typeof ratios> | null}} [extra] the "best HAProxy" column (when both
 *   HAProxy settings ran) and lb4-nat's ratio to the best anchor (when it ran)
 */
export function medianTable(w, summary, ratioTable, systemNames, anchors, buildTable = {}, extra = {}) {
  const bySystem = summary[w];
  const present = metrics.filter((m) => systemNames.some((s) => bySystem[s]?.[m.key]));
  const builds = Object.keys(buildTable[w] ?? {});
  // Without an anchor in the run the anchor columns would be empty: they are left out.
  const best = `best(${anchorLabel(anchors)})`;
  const bestHaproxy = extra.bestHaproxy?.[w] ? ['best HAProxy'] : [];
  const anchorColumn = anchors.length > 0 && systemNames.includes('lb4') ? [`lb4 / ${best}`] : [];
  const natColumn = anchors.length > 0 && extra.natRatios ? [`lb4-nat / ${best}`] : [];
  const head = ['metric', 'unit', ...systemNames, ...bestHaproxy, ...anchorColumn, ...natColumn, ...builds.map((b) => `lb4 / ${b}`)];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 2 ? ' --- ' : ' ---: ')).join('|')}|`];
  const ratioCell = (r, who) => (r ? `${fmt(r.ratio, 2)}${roundRange(r.rounds)} vs ${r.against.replace(/^haproxy-splice-/, 'haproxy ')} (${r.verdict === 'tie' ? 'tie' : `${who} ${r.verdict}`})` : '–');
  for (const m of present) {
    const cells = systemNames.map((s) => fmt(bySystem[s]?.[m.key]?.median, m.digits));
    if (bestHaproxy.length) {
      const b = extra.bestHaproxy?.[w]?.[m.key];
      cells.push(b ? `${fmt(b.value, m.digits)} (${b.system.replace(/^haproxy-splice-/, '')})` : '–');
    }
    if (anchorColumn.length) cells.push(ratioCell(ratioTable[w]?.[m.key], 'lb4'));
    if (natColumn.length) cells.push(ratioCell(extra.natRatios?.[w]?.[m.key], 'nat'));
    for (const b of builds) {
      const c = buildTable[w][b][m.key];
      if (!c) {
        cells.push('–');
        continue;
      }
      const range = roundRange(c.perRound.length > 1 ? c : null);
      // Bold only where it matters: worse for lb4 by more than the rounds varied.
      const beyond = c.verdict === 'worse' ? '**beyond**' : 'beyond';
      const judged = c.spread === null ? '' : `, ${c.beyondSpread ? beyond : 'within'} ${fmt(c.spread * 100, 1)} % spread`;
      cells.push(`${fmt(c.ratio, 2)}${range} (${c.verdict === 'tie' ? 'tie' : `lb4 ${c.verdict}`}${c.verdict === 'tie' ? '' : judged})`);
    }
    lines.push(`| ${m.label} (${m.better} is better) | ${m.unit} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/**
 * ` [min..max]` of a ratio taken round by round, or nothing with fewer than two rounds.
 * @param {{min: number, max: number} | null | undefined} rounds
 */
export function roundRange(rounds) {
  return rounds ? ` [${fmt(rounds.min, 2)}..${fmt(rounds.max, 2)}]` : '';
}

/**
 * The NAT targets for one worker count: lb4-nat's median against direct's or the best anchor's,
 * the ratio, the target and whether it is met (computed from this run; nothing asserts it).
 * @param {import('./anchors.mjs').TargetRow[]} rows
 */
export function natTargetTable(rows) {
  if (rows.length === 0) return 'No NAT target could be computed (lb4-nat, direct or the anchors did not measure these metrics).';
  const byKey = new Map(metrics.map((m) => [m.key, m]));
  const lines = ['| metric | lb4-nat | reference | ratio | round by round: median [min..max] | target | met | rounds met |', '| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |'];
  for (const r of rows) {
    const m = byKey.get(r.metric);
    const digits = m?.digits ?? 2;
    const byRound = r.rounds ? `${fmt(r.rounds.median, 2)}${roundRange(r.rounds)}` : '–';
    const roundsMet = r.rounds && r.roundsMet !== null ? `${r.roundsMet} of ${r.rounds.perRound.length}` : '–';
    lines.push(`| ${m?.label ?? r.metric} (${m?.unit ?? ''}) | ${fmt(r.value, digits)} | ${fmt(r.referenceValue, digits)} (${r.against === 'best anchor' ? `best anchor: ${r.reference}` : r.against}) | ${fmt(r.ratio, 2)} | ${byRound} | >= ${r.atLeast} x ${r.against} | ${r.met ? 'yes' : '**no**'} | ${roundsMet} |`);
  }
  return lines.join('\n');
}

/**
 * Run-to-run spread, (max - min) / median over the rounds in %, per metric and system, for one
 * worker count.
 * @param {string | number} w
 * @param {ReturnType<typeof spreads>} table
 * @param {string[]} systemNames
 */
export function spreadTable(w, table, systemNames) {
  const bySystem = table[w];
  const present = metrics.filter((m) => systemNames.some((s) => m.key in (bySystem[s] ?? {})));
  const head = ['metric', ...systemNames];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const m of present) {
    const cells = systemNames.map((s) => {
      const v = bySystem[s]?.[m.key];
      return typeof v === 'number' ? `${fmt(v * 100, 1)} %` : '–';
    });
    lines.push(`| ${m.key} (${m.unit}) | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/**
 * Every round's value, "a / b / c" per cell, for one worker count.
 * @param {string | number} w
 * @param {ReturnType<typeof summarise>} summary
 * @param {string[]} systemNames
 */
export function perRoundTable(w, summary, systemNames) {
  const bySystem = summary[w];
  const present = metrics.filter((m) => systemNames.some((s) => bySystem[s]?.[m.key]));
  const head = ['metric', ...systemNames];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const m of present) {
    const cells = systemNames.map((s) => (bySystem[s]?.[m.key]?.values ?? []).map((v) => fmt(v, m.digits)).join(' / ') || '–');
    lines.push(`| ${m.key} (${m.unit}) | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/**
 * Other load (cores) per scenario and system, "r1 / r2 / ..." per cell, for one worker count.
 * @param {RunRecord[]} runs
 * @param {number} w
 * @param {string[]} scenarioNames
 * @param {string[]} systemNames
 */
export function loadTable(runs, w, scenarioNames, systemNames) {
  const head = ['scenario', ...systemNames];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const scenario of scenarioNames) {
    const cells = systemNames.map((system) => {
      const mine = runs
        .filter((r) => r.scenario === scenario && r.system === system && (r.workers === null || r.workers === w))
        .sort((a, b) => a.round - b.round);
      return mine.map((r) => fmt(r.otherCores, 2)).join(' / ') || '–';
    });
    lines.push(`| ${scenario} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

function escapeXml(text) {
  return String(text).replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]);
}

/**
 * A hand-written SVG: one horizontal bar per metric and worker count, on a log2 scale centred
 * on 1.0 (lb4 equal to the best anchor). Green bars favour lb4, red ones do not.
 * @param {ReturnType<typeof ratios>} ratioTable
 * @param {string[]} anchors
 * @param {string} subtitle
 */
export function ratioSvg(ratioTable, anchors, subtitle) {
  const workersList = Object.keys(ratioTable);
  const rowsPerGroup = metrics.filter((m) => workersList.some((w) => ratioTable[w][m.key]));
  const labelWidth = 360;
  const plotWidth = 480;
  const rowHeight = 16;
  const barHeight = 12;
  const groupGap = 8;
  const top = 64;
  const limit = 3; // log2: bars are clipped at 1/8 and 8
  const centre = labelWidth + plotWidth / 2;
  const x = (ratio) => centre + (Math.max(-limit, Math.min(limit, Math.log2(ratio))) / limit) * (plotWidth / 2);
  const height = top + rowsPerGroup.length * (workersList.length * rowHeight + groupGap) + 40;
  const width = labelWidth + plotWidth + 90;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="18" font-size="14" font-weight="bold">lb4 / best of (${escapeXml(anchors.join(', '))}), medians</text>`,
    `<text x="10" y="34" fill="#555">${escapeXml(subtitle)}</text>`,
    `<text x="10" y="48" fill="#555">log scale, 1.0 = equal to the best anchor; green: lb4 better (higher rate, or lower CPU/latency/memory), red: worse, grey: within 0.5%</text>`,
  ];
  for (const t of [1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8]) {
    const tx = x(t);
    parts.push(`<line x1="${tx}" y1="${top - 6}" x2="${tx}" y2="${height - 30}" stroke="${t === 1 ? '#000' : '#ddd'}"/>`);
    parts.push(`<text x="${tx}" y="${height - 16}" text-anchor="middle" fill="#555">${t >= 1 ? t : `1/${1 / t}`}</text>`);
  }
  let y = top;
  for (const m of rowsPerGroup) {
    parts.push(`<text x="${labelWidth - 8}" y="${y + (workersList.length * rowHeight) / 2 + 4}" text-anchor="end">${escapeXml(m.label)} (${m.better === 'higher' ? '↑' : '↓'})</text>`);
    for (const w of workersList) {
      const r = ratioTable[w][m.key];
      if (r) {
        const x0 = Math.min(centre, x(r.ratio));
        const x1 = Math.max(centre, x(r.ratio));
        const colour = { better: '#2e8b57', worse: '#c0392b', tie: '#888' }[r.verdict];
        parts.push(`<rect x="${x0}" y="${y + 2}" width="${Math.max(1, x1 - x0)}" height="${barHeight}" fill="${colour}" opacity="${workersList.length > 1 && w !== workersList[0] ? 0.6 : 0.9}"/>`);
        parts.push(`<text x="${labelWidth + plotWidth + 6}" y="${y + barHeight}" fill="#333">w=${escapeXml(w)}: ${r.ratio.toFixed(2)}</text>`);
      } else {
        parts.push(`<text x="${labelWidth + plotWidth + 6}" y="${y + barHeight}" fill="#999">w=${escapeXml(w)}: –</text>`);
      }
      y += rowHeight;
    }
    y += groupGap;
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
