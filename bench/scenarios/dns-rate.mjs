// Small request/response datagrams: dnsperf (many clients, each its own socket, many queries
// outstanding) asks NSD for A records through the system under test. Two runs:
//   - rate: as fast as answers come back; answered queries per second, and the proxy's CPU
//     seconds per million datagrams forwarded (each answered query is two: the query to the
//     backend, the answer back);
//   - latency: at a fixed rate every system sustains (dnsperf -Q), p50 and p99 of every answer's
//     latency (dnsperf -v; printing them costs dnsperf too much CPU to do in the rate run).
// The proxies end a session when its answer is back (nginx `proxy_responses 1`, lb4
// `--udp-responses 1`), as a DNS deployment would: most real clients ask once per source port.

import { DNS_NAMES } from '../backends.mjs';
import { runDnsperf, writeQueries } from '../dnsperf.mjs';
import { cpuSeconds } from '../proc.mjs';

/** @param {import('../dnsperf.mjs').DnsperfResult} r @param {string} what */
function lossNotes(r, what) {
  const notes = [];
  const lostShare = r.sent > 0 ? r.lost / r.sent : 0;
  if (lostShare > 0.01) notes.push(`${what}: ${r.lost} of ${r.sent} queries unanswered (${(lostShare * 100).toFixed(1)} %)`);
  const other = Object.keys(r.rcodes).filter((c) => c !== 'NOERROR');
  if (other.length) notes.push(`${what}: answers other than NOERROR: ${other.map((c) => `${c} ${r.rcodes[c]}`).join(', ')}`);
  return notes;
}

/** @type {import('./index.mjs').Scenario} */
export default {
  name: 'dns-rate',
  backend: 'dns',
  needs: ['dnsperf', 'nsd'],
  listen: { protocols: ['udp'], udpResponses: 1 },
  describe: (s) =>
    `dnsperf -c ${s.dnsClients} -q ${s.dnsOutstanding} -l ${s.dnsSeconds} -t 1, A queries for ${DNS_NAMES.length} names: answered queries/s; ` +
    `proxy CPU s per million datagrams = delta(utime+stime of the proxy process tree) / (2 x answered / 1e6); ` +
    `then p50/p99 latency of every answer (dnsperf -v) in a second run at a fixed ${s.dnsLatencyQps} queries/s (-Q)`,
  estimateSeconds: (s) => 2 * s.dnsSeconds + 0.5,
  async run({ target, settings, tmp }) {
    const queries = writeQueries(tmp, DNS_NAMES);
    const common = { host: target.host, netns: target.clientNetns, port: target.port, queries, seconds: settings.dnsSeconds, clients: settings.dnsClients, outstanding: settings.dnsOutstanding };
    const metrics = { dns_qps: null, dns_p50: null, dns_p99: null, dns_cpu: null };
    const raw = {};
    const notes = [];
    try {
      const cpuBefore = target.pid ? cpuSeconds(target.pid) : 0;
      const r = await runDnsperf(common);
      const cpu = target.pid ? cpuSeconds(target.pid) - cpuBefore : null;
      metrics.dns_qps = r.qps;
      metrics.dns_cpu = cpu === null || r.completed === 0 ? null : cpu / ((2 * r.completed) / 1e6);
      raw.dns = { ...r, cpuSeconds: cpu };
      notes.push(...lossNotes(r, 'dns'));
    } catch (e) {
      notes.push(`dns: ${e.message}`);
    }
    try {
      const r = await runDnsperf({ ...common, maxQps: settings.dnsLatencyQps, latency: true });
      metrics.dns_p50 = r.p50Ms;
      metrics.dns_p99 = r.p99Ms;
      raw.dnsLatency = r;
      notes.push(...lossNotes(r, 'dns latency'));
      // A system that cannot keep up with the fixed rate measures its queueing, not its latency.
      if (r.qps < 0.95 * settings.dnsLatencyQps) notes.push(`dns latency: only ${Math.round(r.qps)} of the ${settings.dnsLatencyQps} queries/s asked were answered`);
    } catch (e) {
      notes.push(`dns latency: ${e.message}`);
    }
    return { metrics, raw, notes };
  },
};
