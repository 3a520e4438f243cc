// Small request/response rate and latency: wrk over keep-alive connections (16, then 256), each
// request a few bytes each way through an already open flow. p50/p99 come from wrk --latency.

import { setTimeout as sleep } from 'node:timers/promises';
import { runWrk } from '../wrk.mjs';

const variants = [
  { connections: 16, prefix: 'rr16' },
  { connections: 256, prefix: 'rr256' },
];

/** @type {import('./index.mjs').Scenario} */
export default {
  name: 'request-rate',
  backend: 'http',
  needs: ['wrk'],
  describe: (s) => `wrk -t ${s.wrkThreads} -c 16 and -c 256 -d ${s.wrkSeconds}s --latency, keep-alive, GET / answered "ok": requests/s, p50, p99`,
  estimateSeconds: (s) => variants.length * (s.wrkSeconds + 0.5),
  async run({ target, settings }) {
    const metrics = {};
    const raw = {};
    const notes = [];
    for (const v of variants) {
      try {
        const r = await runWrk({ host: target.host, netns: target.clientNetns, port: target.port, seconds: settings.wrkSeconds, connections: v.connections, threads: settings.wrkThreads });
        metrics[`${v.prefix}_rps`] = r.rps;
        metrics[`${v.prefix}_p50`] = r.p50Ms;
        metrics[`${v.prefix}_p99`] = r.p99Ms;
        raw[v.prefix] = r;
        if (r.socketErrors > 0) notes.push(`${v.prefix}: ${r.errorDetail}`);
      } catch (e) {
        for (const k of ['rps', 'p50', 'p99']) metrics[`${v.prefix}_${k}`] = null;
        notes.push(`${v.prefix}: ${e.message}`);
      }
      await sleep(100);
    }
    return { metrics, raw, notes };
  },
};
