// Runs dnsperf and reads its report: queries per second, completed and lost queries, and latency
// percentiles. dnsperf 2.10 prints only the average latency; with -v it prints one line per
// answered query with its latency ("> NOERROR host1.bench.test A 0.000123"), from which p50 and
// p99 are taken. Printing them halves dnsperf's own rate here, so a rate run goes without -v and
// latencies come from a separate run (`latency: true`).

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './processes.mjs';

/**
 * @typedef {object} DnsperfResult
 * @property {number} qps answered queries per second
 * @property {number} sent
 * @property {number} completed
 * @property {number} lost queries with no answer within the timeout (the ones still outstanding when the run ends count too)
 * @property {number} seconds
 * @property {number | null} p50Ms
 * @property {number | null} p99Ms
 * @property {number | null} averageMs
 * @property {Record<string, number>} rcodes response codes seen, e.g. {NOERROR: 12345}
 */

/** @param {number[]} sorted @param {number} q */
function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/**
 * @param {string} out dnsperf's stdout
 * @returns {DnsperfResult}
 */
export function parseDnsperf(out) {
  const num = (re) => {
    const m = re.exec(out);
    return m ? Number(m[1]) : null;
  };
  const completed = num(/Queries completed:\s+(\d+)/);
  const seconds = num(/Run time \(s\):\s+([\d.]+)/);
  if (completed === null || seconds === null) throw new Error(`dnsperf printed no statistics: ${out.trim().split('\n').slice(-3).join(' / ').slice(0, 300)}`);
  const latencies = [];
  const rcodes = {};
  for (const m of out.matchAll(/^> (\S+) \S+ \S+ ([\d.]+)$/gm)) {
    latencies.push(Number(m[2]) * 1000);
    rcodes[m[1]] = (rcodes[m[1]] ?? 0) + 1;
  }
  latencies.sort((a, b) => a - b);
  const average = num(/Average Latency \(s\):\s+([\d.]+)/);
  return {
    qps: completed / seconds,
    sent: num(/Queries sent:\s+(\d+)/) ?? 0,
    completed,
    lost: num(/Queries lost:\s+(\d+)/) ?? 0,
    seconds,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    averageMs: average === null ? null : average * 1000,
    rcodes,
  };
}

/**
 * Writes the query file dnsperf reads (one "name type" a line) and returns its path.
 * @param {string} dir
 * @param {string[]} names
 */
export function writeQueries(dir, names) {
  const file = join(dir, 'dnsperf-queries.txt');
  writeFileSync(file, `${names.map((n) => `${n} A`).join('\n')}\n`);
  return file;
}

/**
 * @param {{port: number, queries: string, seconds: number, clients: number, outstanding: number, maxQps?: number, latency?: boolean, host?: string, netns?: string | null}} options
 *   maxQps: dnsperf -Q, a fixed query rate (default: as fast as answers come back);
 *   latency: -v, every answer's latency (p50Ms and p99Ms are null without it)
 * @returns {Promise<DnsperfResult>}
 */
export async function runDnsperf({ port, queries, seconds, clients, outstanding, maxQps, latency = false, host = '127.0.0.1', netns = null }) {
  // -t 1: a lost query holds its outstanding slot for a second at most. -c: each client is its
  // own socket (its own source port).
  const args = ['-s', host, '-p', String(port), '-d', queries, '-l', String(seconds), '-c', String(clients), '-q', String(outstanding), '-t', '1'];
  if (maxQps) args.push('-Q', String(maxQps));
  if (latency) args.push('-v');
  // One line per answer: room for a few million of them.
  const r = await run('dnsperf', 'dnsperf', args, (seconds + 20) * 1000, { stdoutLimit: 256 << 20, netns });
  if (r.timedOut) throw new Error('dnsperf did not finish in time');
  return parseDnsperf(r.stdout);
}
