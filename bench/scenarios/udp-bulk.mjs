// Bulk one-way datagrams: an iperf3 client sends UDP (-u) as fast as it can (-b 0) through the
// system under test to the iperf3 server. iperf3 sets its test up over a TCP control connection
// to the same port, so the system listens on that port for TCP and UDP. Reported: datagrams per
// second the server received, the loss the server counted, and the proxy's CPU seconds per
// million datagrams received. Sessions are not ended by replies here (one long session).

import { runIperf3Udp } from '../iperf3.mjs';
import { cpuSeconds } from '../proc.mjs';

/** @type {import('./index.mjs').Scenario} */
export default {
  name: 'udp-bulk',
  backend: 'iperf3',
  needs: ['iperf3'],
  listen: { protocols: ['udp', 'tcp'], udpResponses: 0 },
  describe: (s) =>
    `iperf3 -c -u -b 0 -l ${s.udpLength} -t ${s.iperfSeconds} through the system (TCP control connection + one UDP flow, client->backend): datagrams/s the server received, loss % it counted; proxy CPU s per million datagrams = delta(utime+stime of the proxy process tree) / (received / 1e6)`,
  estimateSeconds: (s) => s.iperfSeconds + 0.6,
  async run({ target, settings }) {
    const cpuBefore = target.pid ? cpuSeconds(target.pid) : 0;
    try {
      const r = await runIperf3Udp({ host: target.host, netns: target.clientNetns, port: target.port, seconds: settings.iperfSeconds, length: settings.udpLength, bitrate: '0' });
      const cpu = target.pid ? cpuSeconds(target.pid) - cpuBefore : null;
      return {
        metrics: {
          udp_dgps: r.datagramsPerSecond,
          udp_loss: r.lossPercent,
          udp_cpu: cpu === null || r.received === 0 ? null : cpu / (r.received / 1e6),
        },
        raw: { udp: { ...r, cpuSeconds: cpu } },
        notes: [],
      };
    } catch (e) {
      return { metrics: { udp_dgps: null, udp_loss: null, udp_cpu: null }, raw: {}, notes: [`udp: ${e.message}`] };
    }
  },
};
