// Runs an iperf3 client and reads its JSON report (-J).

import { setTimeout as sleep } from 'node:timers/promises';
import { run } from './processes.mjs';

/**
 * @typedef {object} IperfResult
 * @property {number} bytes bytes the receiving side got
 * @property {number} seconds
 * @property {number} gbps receiver's rate, Gbit/s
 * @property {number} retransmits sender's TCP retransmits (loopback: normally 0)
 */

/**
 * @param {{port: number, seconds: number, streams: number, reverse: boolean}} options
 * @returns {Promise<IperfResult>}
 */
export async function runIperf3({ port, seconds, streams, reverse }) {
  const args = ['-c', '127.0.0.1', '-p', String(port), '-t', String(seconds), '-P', String(streams), '-J'];
  if (reverse) args.push('-R');
  let lastError = '';
  // The server takes one test at a time; the previous test's teardown can still be running
  // ("the server is busy"), so a failed start is tried again after a pause.
  for (let attempt = 0; attempt < 3; attempt++) {
    const r = await run('iperf3 client', 'iperf3', args, (seconds + 20) * 1000);
    let report;
    try {
      report = JSON.parse(r.stdout);
    } catch {
      lastError = `iperf3 printed no JSON (exit ${r.code}${r.timedOut ? ', timed out' : ''}): ${(r.stderr || r.stdout).trim().slice(0, 300)}`;
      await sleep(500);
      continue;
    }
    if (report.error || !report.end?.sum_received) {
      lastError = `iperf3: ${report.error ?? 'no end.sum_received in report'}`;
      await sleep(500);
      continue;
    }
    const received = report.end.sum_received;
    return {
      bytes: received.bytes,
      seconds: received.seconds,
      gbps: received.bits_per_second / 1e9,
      retransmits: report.end.sum_sent?.retransmits ?? 0,
    };
  }
  throw new Error(lastError);
}
