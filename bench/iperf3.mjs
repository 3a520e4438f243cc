// Runs an iperf3 client (TCP, or one-way UDP) and reads its JSON report (-J).

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
 * @param {{port: number, seconds: number, streams: number, reverse: boolean, host?: string, netns?: string | null}} options
 *   host: where the system listens (default 127.0.0.1); netns: run the client there (default: here)
 * @returns {Promise<IperfResult>}
 */
export async function runIperf3({ port, seconds, streams, reverse, host = '127.0.0.1', netns = null }) {
  const args = ['-c', host, '-p', String(port), '-t', String(seconds), '-P', String(streams), '-J'];
  if (reverse) args.push('-R');
  let lastError = '';
  // The server takes one test at a time; the previous test's teardown can still be running
  // ("the server is busy"), so a failed start is tried again after a pause.
  for (let attempt = 0; attempt < 3; attempt++) {
    const r = await run('iperf3 client', 'iperf3', args, (seconds + 20) * 1000, { netns });
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

/**
 * @typedef {object} IperfUdpResult
 * @property {number} sent datagrams the client sent
 * @property {number} received datagrams the server received
 * @property {number} seconds the server's receiving time
 * @property {number} datagramsPerSecond received / seconds
 * @property {number} gbps the server's received rate, Gbit/s
 * @property {number} lossPercent lost datagrams, as the server counted them from sequence numbers
 */

/**
 * A one-way UDP test (-u), client -> server, at the bitrate given (0: as fast as the client can
 * send). iperf3 also opens a TCP control connection to the same port first.
 * @param {{port: number, seconds: number, length: number, bitrate: string, host?: string, netns?: string | null}} options
 *   host: where the system listens (default 127.0.0.1); netns: run the client there (default: here)
 * @returns {Promise<IperfUdpResult>}
 */
export async function runIperf3Udp({ port, seconds, length, bitrate, host = '127.0.0.1', netns = null }) {
  const args = ['-c', host, '-p', String(port), '-t', String(seconds), '-u', '-b', bitrate, '-l', String(length), '-J'];
  let lastError = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const r = await run('iperf3 client', 'iperf3', args, (seconds + 20) * 1000, { netns });
    let report;
    try {
      report = JSON.parse(r.stdout);
    } catch {
      lastError = `iperf3 printed no JSON (exit ${r.code}${r.timedOut ? ', timed out' : ''}): ${(r.stderr || r.stdout).trim().slice(0, 300)}`;
      await sleep(500);
      continue;
    }
    const received = report.end?.sum_received;
    const sent = report.end?.sum_sent;
    if (report.error || !received || !sent) {
      lastError = `iperf3: ${report.error ?? 'no end.sum_received in report'}`;
      await sleep(500);
      continue;
    }
    // The server's own count of what arrived is its bytes: every datagram is `length` bytes.
    // (Its `packets` is the highest sequence number seen, lost ones included.)
    const got = Math.round(received.bytes / length);
    return {
      sent: sent.packets,
      received: got,
      seconds: received.seconds,
      datagramsPerSecond: got / received.seconds,
      gbps: received.bits_per_second / 1e9,
      lossPercent: received.lost_percent,
    };
  }
  throw new Error(lastError);
}
