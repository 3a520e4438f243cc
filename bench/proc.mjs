// Reading /proc: CPU time and resident memory of a process and its descendants, and whether a
// TCP port is listening or a UDP port bound. Everything here is a plain synchronous read of a few small files, so
// the numbers are taken at one well-defined moment and no connection is ever made to probe.

import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second for utime/stime in /proc/PID/stat (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/**
 * The fields of /proc/PID/stat after the command name. The name sits in parentheses and may
 * itself contain spaces or parentheses, so the split starts after the last ')'.
 * @param {number} pid
 * @returns {string[] | null} fields numbered from 3 (state) at index 0, or null if gone
 */
function statFields(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/**
 * The process and all its descendants (nginx's master and workers, for instance).
 * @param {number} pid
 * @returns {number[]}
 */
export function processTree(pid) {
  const children = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(Number(entry));
    if (!fields) continue;
    const ppid = Number(fields[1]);
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid).push(Number(entry));
  }
  const out = [];
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.pop();
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

/**
 * User plus system CPU seconds used so far by a process and its descendants. The per-process
 * stat already sums every thread (the per-thread figures live in /proc/PID/task).
 * @param {number} pid
 * @returns {number}
 */
export function cpuSeconds(pid) {
  let ticks = 0;
  for (const p of processTree(pid)) {
    const fields = statFields(p);
    if (fields) ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / TICKS_PER_SECOND;
}

/**
 * Resident memory (VmRSS) in bytes, summed over a process and its descendants.
 * @param {number} pid
 * @returns {number}
 */
export function rssBytes(pid) {
  let kib = 0;
  for (const p of processTree(pid)) {
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) kib += Number(m[1]);
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return kib * 1024;
}

/** /proc/net/tcp's spelling of an IPv4 address: the four bytes in host (little-endian) order, hex. */
export function procAddress(host) {
  return host.split('.').reverse().map((b) => Number(b).toString(16).toUpperCase().padStart(2, '0')).join('');
}

/**
 * The socket table of `pid`'s network namespace (a process inside another namespace sees its own
 * /proc/PID/net), or of the bench's own namespace without a pid.
 * @param {'tcp' | 'udp'} kind @param {number | null} pid
 */
function socketTable(kind, pid) {
  return readFileSync(pid ? `/proc/${pid}/net/${kind}` : `/proc/net/${kind}`, 'utf8');
}

/**
 * Whether something listens on host:port (127.0.0.1 by default), read from /proc/net/tcp without
 * connecting (a probe connection would disturb servers like iperf3 that treat every connection
 * as a test). With `pid`, in that process's network namespace.
 * @param {number} port
 * @param {string} [host]
 * @param {number | null} [pid]
 * @returns {boolean}
 */
export function isListening(port, host = '127.0.0.1', pid = null) {
  const local = `${procAddress(host)}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const text = socketTable('tcp', pid);
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[1] === local && f[3] === '0A') return true;
  }
  return false;
}

/**
 * Whether a UDP socket is bound to host:port (127.0.0.1 by default), read from /proc/net/udp (a
 * datagram sent to probe would reach the server as a real request). With `pid`, in that
 * process's network namespace.
 * @param {number} port
 * @param {string} [host]
 * @param {number | null} [pid]
 * @returns {boolean}
 */
export function isUdpBound(port, host = '127.0.0.1', pid = null) {
  const local = `${procAddress(host)}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const text = socketTable('udp', pid);
  return text.split('\n').some((line) => line.trim().split(/\s+/)[1] === local);
}

/**
 * Busy and stolen CPU seconds of the whole machine so far, from /proc/stat. Busy is user + nice
 * + system + irq + softirq; steal is time the hypervisor gave to someone else.
 * @returns {{busy: number, steal: number}}
 */
export function machineCpu() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { busy: (f[0] + f[1] + f[2] + f[5] + f[6]) / TICKS_PER_SECOND, steal: (f[7] ?? 0) / TICKS_PER_SECOND };
}

/**
 * CPU seconds used by this process and everything it started: the live descendants' own time plus
 * what reaped descendants left in cutime/cstime (finished wrk and iperf3 clients, stopped proxies).
 * @returns {number}
 */
export function benchCpuSeconds() {
  let ticks = 0;
  for (const p of processTree(process.pid)) {
    const fields = statFields(p);
    if (fields) ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  }
  return ticks / TICKS_PER_SECOND;
}
