// Runs wrk and reads its text report: requests/s, latency percentiles (--latency) and errors.

import { run } from './processes.mjs';

/**
 * @typedef {object} WrkResult
 * @property {number} rps requests per second
 * @property {number} requests
 * @property {number | null} p50Ms
 * @property {number | null} p99Ms
 * @property {number} socketErrors connect + read + write + timeout
 * @property {string} errorDetail wrk's own "Socket errors" / "Non-2xx" lines, if any
 */

const toMs = { us: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** @param {string} text e.g. "123.45us" @returns {number | null} */
function durationMs(text) {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text);
  return m ? Number(m[1]) * toMs[m[2]] : null;
}

/**
 * @param {string} out wrk's stdout
 * @returns {WrkResult}
 */
export function parseWrk(out) {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const requests = /(\d+) requests in/.exec(out);
  const p = (q) => {
    const m = new RegExp(`^\\s+${q}%\\s+(\\S+)`, 'm').exec(out);
    return m ? durationMs(m[1]) : null;
  };
  const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const socketErrors = errs ? errs.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  const detail = [errs?.[0], non2xx?.[0]].filter(Boolean).join('; ');
  if (!rps) throw new Error(`wrk printed no Requests/sec: ${out.trim().slice(0, 300)}`);
  return {
    rps: Number(rps[1]),
    requests: requests ? Number(requests[1]) : 0,
    p50Ms: p(50),
    p99Ms: p(99),
    socketErrors: socketErrors + (non2xx ? Number(non2xx[1]) : 0),
    errorDetail: detail,
  };
}

/**
 * @param {{port: number, seconds: number, connections: number, threads: number, close?: boolean, host?: string, netns?: string | null}} o
 *   host: where the system listens (default 127.0.0.1); netns: run the client there (default: here)
 * @returns {Promise<WrkResult>}
 */
export async function runWrk({ port, seconds, connections, threads, close = false, host = '127.0.0.1', netns = null }) {
  const args = ['-t', String(Math.min(threads, connections)), '-c', String(connections), '-d', `${seconds}s`, '--latency'];
  if (close) args.push('-H', 'Connection: close');
  args.push(`http://${host}:${port}/`);
  const r = await run('wrk', 'wrk', args, (seconds + 20) * 1000, { netns });
  if (r.code !== 0) throw new Error(`wrk exited ${r.code ?? r.signal}${r.timedOut ? ' (timed out)' : ''}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`);
  return parseWrk(r.stdout);
}
