#!/usr/bin/env node
// What active health checks cost the control plane: N targets (default 1,000) on 127.0.0.1, each
// checked every interval (default 1s) by one HealthMonitor, and the CPU time of this process
// (user + system, every thread) over a measured window after a warm-up. The budget is 5 % of one
// core for 1,000 targets checked every second.
//
// The targets run in a child process, so their user-space work is not counted. Their kernel work
// partly is: on loopback, the kernel processes a packet in the context of the process that sends
// it, so the targets' side of each handshake (the SYN and the final ACK arriving at the listener,
// the reset arriving at the accepted socket) is charged to this process as system time. Against
// remote backends that work happens on their hosts; the figure here is an upper bound.
//
// Usage (after `npx tsc -p tsconfig.build.json`, which compiles lib/ into dist/):
//   node bench/health-check-cost.mjs [--targets 1000] [--interval 1s] [--type tcp|http]
//                                    [--warmup 5] [--duration 20] [--rounds 1]
// The child raises its own descriptor limit (`ulimit -n`) for the listening sockets; this
// process needs one descriptor per check in flight, at most one per target. With --rounds N the
// window is measured N times and the median is reported (a shared machine is noisy).
//
// To leave the targets' kernel work out, as with remote backends, put the targets in a network
// namespace whose packets are processed on another CPU (root; delete the namespace after):
//   ip netns add lb4hc && ip link add lb4hc0 type veth peer name lb4hc1 && ip link set lb4hc1 netns lb4hc
//   ip addr add 10.213.0.1/30 dev lb4hc0 && ip link set lb4hc0 up
//   ip netns exec lb4hc sh -c 'ip addr add 10.213.0.2/30 dev lb4hc1 && ip link set lb4hc1 up'
//   echo 2 > /sys/class/net/lb4hc0/queues/rx-0/rps_cpus
//   ip netns exec lb4hc sh -c 'echo 2 > /sys/class/net/lb4hc1/queues/rx-0/rps_cpus'
//   taskset -c 0 node bench/health-check-cost.mjs --netns lb4hc --host 10.213.0.2
//   ip netns del lb4hc

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const self = fileURLToPath(import.meta.url);

// --- the targets (child process) ---------------------------------------------------------------

/** Opens `count` listening sockets on 127.0.0.1, prints their ports as one JSON line, and serves until stdin closes. */
async function serveTargets(count, type, host) {
  const response = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok';
  const onConnection =
    type === 'http'
      ? (socket) => {
          socket.on('error', () => {});
          let head = '';
          socket.on('data', (chunk) => {
            head += chunk.toString('latin1');
            if (head.includes('\r\n\r\n')) socket.end(response);
          });
        }
      : (socket) => {
          // The check resets the connection once it is established; nothing to do but close.
          socket.on('error', () => {});
          socket.resume();
        };
  const ports = [];
  for (let i = 0; i < count; i++) {
    const server = net.createServer(onConnection);
    server.listen({ host, port: 0, backlog: 511 });
    await once(server, 'listening');
    ports.push(server.address().port);
  }
  process.stdout.write(`${JSON.stringify(ports)}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

// --- the checker (this process) -----------------------------------------------------------------

function startTargets(count, type, host, netns) {
  // A shell raises the child's descriptor limit: one listening socket per target plus the
  // accepted connections. Raising the soft limit up to the hard one needs no privilege.
  const script = `ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"`;
  const args = ['-c', script, process.execPath, self, '--serve', String(count), '--type', type, '--host', host];
  const [command, commandArgs] = netns ? ['ip', ['netns', 'exec', netns, 'sh', ...args]] : ['sh', args];
  const child = spawn(command, commandArgs, { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let text = '';
    child.on('exit', (code) => reject(new Error(`the target process exited (${code}) before listening`)));
    child.stdout.on('data', (chunk) => {
      text += chunk;
      if (!text.includes('\n')) return;
      child.removeAllListeners('exit');
      resolve({ child, ports: JSON.parse(text) });
    });
  });
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function main() {
  const { values } = parseArgs({
    options: {
      targets: { type: 'string', default: '1000' },
      interval: { type: 'string', default: '1s' },
      type: { type: 'string', default: 'tcp' },
      warmup: { type: 'string', default: '5' },
      duration: { type: 'string', default: '20' },
      rounds: { type: 'string', default: '1' },
      serve: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      netns: { type: 'string' },
    },
  });
  if (values.type !== 'tcp' && values.type !== 'http') throw new Error(`--type must be tcp or http, got ${values.type}`);
  if (values.serve !== undefined) return serveTargets(Number(values.serve), values.type, values.host);

  const dist = new URL('../dist/lib/health/', import.meta.url);
  if (!existsSync(new URL('monitor.js', dist))) {
    throw new Error('dist/lib/health/monitor.js is missing: run `npx tsc -p tsconfig.build.json` first');
  }
  const { HealthMonitor } = await import(new URL('monitor.js', dist).href);
  const { validateHealthConfig } = await import(new URL('check-config.js', dist).href);

  const count = Number(values.targets);
  const warmupS = Number(values.warmup);
  const durationS = Number(values.duration);
  const rounds = Number(values.rounds);
  const config = validateHealthConfig({ type: values.type, interval: values.interval, path: values.type === 'http' ? '/' : undefined }, 'bench');
  const { child, ports } = await startTargets(count, values.type, values.host, values.netns);

  const monitor = new HealthMonitor();
  // A real control plane listens to every result (the duration histogram); so does the bench.
  let checks = 0;
  let failures = 0;
  let lastFailure = '';
  monitor.on('result', ({ result }) => {
    checks++;
    if (!result.ok) {
      failures++;
      lastFailure = result.reason;
    }
  });
  for (let i = 0; i < count; i++) monitor.add(String(i), { ip: values.host, port: ports[i] }, config, 'up');

  // The warm-up covers the first interval (whose checks are spread out) and lets the JIT settle.
  await new Promise((r) => setTimeout(r, warmupS * 1000));
  const measured = [];
  for (let round = 0; round < rounds; round++) {
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const checks0 = checks;
    const failures0 = failures;
    await new Promise((r) => setTimeout(r, durationS * 1000));
    const cpu = process.cpuUsage(cpu0);
    const elapsedUs = Number(process.hrtime.bigint() - t0) / 1000;
    const done = checks - checks0;
    measured.push({
      total: (100 * (cpu.user + cpu.system)) / elapsedUs,
      user: (100 * cpu.user) / elapsedUs,
      system: (100 * cpu.system) / elapsedUs,
      rate: (done * 1e6) / elapsedUs,
      perCheckUs: done > 0 ? (cpu.user + cpu.system) / done : 0,
      failures: failures - failures0,
    });
    const m = measured[measured.length - 1];
    if (rounds > 1) console.log(`  round ${round + 1}: ${m.total.toFixed(2)} % (user ${m.user.toFixed(2)}, system ${m.system.toFixed(2)}), ${m.rate.toFixed(0)} checks/s`);
  }
  await monitor.close();
  child.stdin.end();

  const total = median(measured.map((m) => m.total));
  const m = measured.find((x) => x.total === total);
  console.log(`health checks: ${count} targets every ${values.interval}: ${total.toFixed(2)} % of one core (user+system), ${m.rate.toFixed(0)} checks/s`);
  console.log(
    `  ${values.type} checks of ${values.host}${values.netns ? ` in netns ${values.netns}` : ''}: user ${m.user.toFixed(2)} %, system ${m.system.toFixed(2)} %, ` +
      `${m.perCheckUs.toFixed(1)} us of CPU per check, ${m.failures} failed checks in ${durationS}s${rounds > 1 ? ` (the median of ${rounds} rounds)` : ''}`,
  );
  if (m.failures > 0) console.log(`  last failure: ${lastFailure}`);
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
