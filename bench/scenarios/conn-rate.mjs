// New connections per second: wrk sends one HTTP request per connection ("Connection: close"),
// so every request is a full TCP handshake and teardown through the system under test, and a
// new backend connection behind it.

import { runWrk } from '../wrk.mjs';

/** @type {import('./index.mjs').Scenario} */
export default {
  name: 'conn-rate',
  backend: 'http',
  needs: ['wrk'],
  describe: (s) => `wrk -t ${s.wrkThreads} -c ${s.connRateConnections} -d ${s.wrkSeconds}s -H "Connection: close": requests/s = new connections/s`,
  estimateSeconds: (s) => s.wrkSeconds + 0.5,
  async run({ target, settings }) {
    try {
      const r = await runWrk({ host: target.host, netns: target.clientNetns, port: target.port, seconds: settings.wrkSeconds, connections: settings.connRateConnections, threads: settings.wrkThreads, close: true });
      const notes = r.socketErrors > 0 ? [`conn_rate: ${r.errorDetail}`] : [];
      return { metrics: { conn_rate: r.rps }, raw: { conn_rate: r }, notes };
    } catch (e) {
      return { metrics: { conn_rate: null }, raw: {}, notes: [`conn_rate: ${e.message}`] };
    }
  },
};
