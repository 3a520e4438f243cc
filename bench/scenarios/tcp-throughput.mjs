// Bulk throughput with iperf3 (the iperf3 server is the backend, the client goes through the
// system under test): 1 and 4 parallel streams, each direction. Around each run the proxy's CPU
// time (utime + stime of its process tree, from /proc) is read, and divided by the bytes the
// receiver got: CPU seconds per GB (1e9 bytes) forwarded. The machine's busy CPU time (/proc/stat)
// is read around each run too: machine CPU per GB, the same for every system, kernel work
// included (a NAT's forwarding runs in softirq context, charged to no process).

import { setTimeout as sleep } from 'node:timers/promises';
import { runIperf3 } from '../iperf3.mjs';
import { cpuSeconds, machineCpu } from '../proc.mjs';

const variants = [
  { streams: 1, reverse: false, tput: 'tput_up_1', cpu: 'cpu_up_1', machine: 'mcpu_up_1' },
  { streams: 1, reverse: true, tput: 'tput_down_1', cpu: 'cpu_down_1', machine: 'mcpu_down_1' },
  { streams: 4, reverse: false, tput: 'tput_up_4', cpu: 'cpu_up_4', machine: 'mcpu_up_4' },
  { streams: 4, reverse: true, tput: 'tput_down_4', cpu: 'cpu_down_4', machine: 'mcpu_down_4' },
];

/** @type {import('./index.mjs').Scenario} */
export default {
  name: 'tcp-throughput',
  backend: 'iperf3',
  needs: ['iperf3'],
  describe: (s) =>
    `iperf3 -c through the system, ${s.iperfSeconds} s per run, -P 1 and -P 4, each direction (-R: backend->client); Gbit/s as the receiver counted it; proxy CPU s/GB = delta(utime+stime of the proxy process tree) / (bytes received / 1e9); machine CPU s/GB = delta(busy time in /proc/stat, every process and the kernel, whatever else runs on the machine included) / (bytes received / 1e9)`,
  estimateSeconds: (s) => variants.length * (s.iperfSeconds + 0.6),
  async run({ target, settings }) {
    const metrics = {};
    const raw = {};
    const notes = [];
    for (const v of variants) {
      const cpuBefore = target.pid ? cpuSeconds(target.pid) : 0;
      const machineBefore = machineCpu().busy;
      try {
        const r = await runIperf3({ host: target.host, netns: target.clientNetns, port: target.port, seconds: settings.iperfSeconds, streams: v.streams, reverse: v.reverse });
        const cpu = target.pid ? cpuSeconds(target.pid) - cpuBefore : null;
        metrics[v.tput] = r.gbps;
        const machine = machineCpu().busy - machineBefore;
        metrics[v.cpu] = cpu === null || r.bytes === 0 ? null : cpu / (r.bytes / 1e9);
        metrics[v.machine] = r.bytes === 0 ? null : machine / (r.bytes / 1e9);
        raw[v.tput] = { ...r, cpuSeconds: cpu, machineCpuSeconds: machine };
      } catch (e) {
        metrics[v.tput] = null;
        metrics[v.cpu] = null;
        metrics[v.machine] = null;
        notes.push(`${v.tput}: ${e.message}`);
      }
      // Let the previous test's sockets close before the next one starts.
      await sleep(100);
    }
    return { metrics, raw, notes };
  },
};
