// The data plane's latency histograms and the backend transitions, measured on real traffic and
// read from a real balancer's /metrics: a connect the kernel holds back lands above the fast
// buckets, flows held open land at or above their hold time, and the counts equal the flows and
// sessions made. The same exposition must pass `promtool check metrics` (Prometheus' own linter).

import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import t from 'tap';
import { startBalancer, type Balancer } from '../../lib/index.js';
import { parseExposition, scrape, value } from '../helpers/exposition.js';
import { UdpClient, udpBackend } from '../helpers/datagrams.js';
import { startBlackhole } from '../helpers/blackhole.js';
import { connect, echoBackend, until, within } from '../helpers/sockets.js';

// CI runs as root with promtool installed (.ci/run): the check is skipped only elsewhere.
const promtool = spawnSync('promtool', ['--version']).status === 0;
const skipPromtool = !promtool && process.getuid?.() !== 0 ? 'promtool is not installed (Debian package prometheus)' : false;

/** Opens a flow through `port`, sees one echo, holds the flow `holdMs` more, then closes it. */
async function heldFlow(port: number, holdMs: number): Promise<void> {
  const socket = await connect(port);
  socket.write('ping');
  await within(once(socket, 'data'), 10_000, 'the echo');
  await delay(holdMs); // the hold is what is measured here, not a wait for something
  socket.end();
  await within(once(socket, 'close'), 10_000, 'the flow to close');
}

function portOf(lb: Balancer, name: string): number {
  const found = lb.addresses().find((a) => a.name === name);
  if (!found) throw new Error(`no listener ${name}`);
  return found.port;
}

t.test('a real balancer measures connect time, flow and session duration per backend', async (t) => {
  const echo = await echoBackend();
  // Its first connect is held back until release() (the SYN dropped, then retransmitted).
  const slow = await startBlackhole();
  const dns = await udpBackend((msg) => msg);
  const startedAt = Date.now() / 1000;
  const lb = await startBalancer({
    listeners: [
      { name: 'fast', listen: '127.0.0.1:0', backends: [{ address: echo.address, id: 'echo' }] },
      { name: 'slow', listen: '127.0.0.1:0', backends: [{ address: slow.address, id: 'slow' }] },
      { name: 'dns', listen: '127.0.0.1:0/udp', backends: [{ address: dns.address, id: 'dns' }] },
    ],
    workers: 2,
    connectTimeout: '20s',
    udpIdleTimeout: '150ms',
    admin: { listen: '127.0.0.1:0' },
  });
  t.teardown(async () => {
    await lb.close({ drainTimeout: 0 });
    await Promise.all([echo.close(), slow.close(), dns.close()]);
  });

  // Three flows held 120 ms each, one after another so both workers may see some.
  const holdMs = 120;
  for (let i = 0; i < 3; i++) await heldFlow(portOf(lb, 'fast'), holdMs);

  // The slow backend: lb4's connect is in progress (its SYN dropped) before the backend frees
  // its queue, so the connect completes only with the SYN's retransmission.
  const client = await connect(portOf(lb, 'slow'));
  await until(async () => (await lb.connections({ listener: 'slow' })).some((c) => c.state === 'connecting'), 10_000, "lb4's connect to the slow backend");
  slow.release();
  await until(() => lb.stats().backends.find((b) => b.id === 'slow')!.counters.flows_total === 1, 20_000, 'the connect to finish');
  // A reset: the backend never closes its side, so a FIN would leave the flow half open.
  client.resetAndDestroy();

  // Two UDP sessions, from two client sockets, each ended by the idle timeout.
  for (let i = 0; i < 2; i++) {
    const udp = await UdpClient.open();
    t.teardown(() => udp.close());
    udp.socket.send('query', portOf(lb, 'dns'), '127.0.0.1');
    await udp.next(10_000, 'the answer');
  }

  // Every flow and session closed: the histograms hold every observation.
  await until(() => lb.stats().backends.every((b) => b.counters.flows_active === 0 && b.counters.sessions_active === 0), 20_000, 'every flow and session to close');

  // A drain and back: one transition each way.
  await lb.setBackendState('echo', 'draining');
  await lb.setBackendState('echo', 'up');

  const { text } = await scrape(lb.adminUrl!);
  const families = parseExposition(text);
  const stats = lb.stats();
  const row = (id: string) => stats.backends.find((b) => b.id === id)!;
  const fast = { listener: 'fast', backend: 'echo' };
  const slowLabels = { listener: 'slow', backend: 'slow' };
  const dnsLabels = { listener: 'dns', backend: 'dns' };

  t.equal(value(families, 'lb4_backend_connect_duration_seconds_count', fast), 3, 'one connect time per flow');
  t.equal(value(families, 'lb4_backend_flow_duration_seconds_count', fast), 3, 'one duration per flow');
  t.equal(row('echo').counters.flows_total, 3);
  t.equal(value(families, 'lb4_backend_flow_duration_seconds_bucket', { ...fast, le: '0.1' }), 0, `no flow held ${holdMs} ms lasted 100 ms or less`);
  t.equal(value(families, 'lb4_backend_flow_duration_seconds_bucket', { ...fast, le: '+Inf' }), 3);
  t.ok(value(families, 'lb4_backend_flow_duration_seconds_sum', fast)! >= (3 * holdMs) / 1000, 'the sum covers the holds');

  t.equal(value(families, 'lb4_backend_connect_duration_seconds_count', slowLabels), 1);
  t.equal(value(families, 'lb4_backend_connect_duration_seconds_bucket', { ...slowLabels, le: '0.5' }), 0, 'the held-back connect is above 0.5 s');
  t.ok(value(families, 'lb4_backend_connect_duration_seconds_sum', slowLabels)! >= 0.9, 'it took the SYN retransmission');
  t.equal(value(families, 'lb4_backend_flow_duration_seconds_count', slowLabels), 1);

  t.equal(value(families, 'lb4_backend_session_duration_seconds_count', dnsLabels), 2, 'one duration per session');
  t.equal(row('dns').counters.sessions_total, 2);
  t.equal(value(families, 'lb4_backend_session_duration_seconds_bucket', { ...dnsLabels, le: '0.1' }), 0, 'sessions lasted at least their 150 ms idle timeout');
  t.equal(value(families, 'lb4_backend_connect_duration_seconds_count', dnsLabels), undefined, 'UDP has no connect time');

  t.same(row('echo').latency.flow_duration.count, 3, 'stats() holds the same histograms');
  t.equal(value(families, 'lb4_backend_transitions_total', { ...fast, to: 'down' }), 1);
  t.equal(value(families, 'lb4_backend_transitions_total', { ...fast, to: 'up' }), 1);
  t.equal(value(families, 'lb4_backend_transitions_total', { ...slowLabels, to: 'down' }), 0);
  t.ok(value(families, 'lb4_backend_last_change_timestamp_seconds', fast)! >= startedAt, 'the last change is recent');
  t.ok(value(families, 'process_open_fds')! > 0);

  t.test('promtool check metrics finds nothing to say', { skip: skipPromtool }, async (t) => {
    const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    t.equal(result.error, undefined, 'promtool ran');
    t.equal(`${result.stdout}${result.stderr}`.trim(), '', 'no findings');
    t.equal(result.status, 0);
  });
});

// With --udp-responses a client that keeps its port reuses its finished session's socket (a
// warm socket, native/core/udp/session_table.h): each reopened session is timed from its own
// first datagram, not from whatever the reused slot held before.
t.test('sessions reopened on a warm socket are timed from their own start', async (t) => {
  const dns = await udpBackend((msg) => msg);
  const lb = await startBalancer({ listeners: [{ name: 'dns', listen: '127.0.0.1:0/udp', backends: [{ address: dns.address, id: 'dns' }] }], workers: 1, udpResponses: 1 });
  t.teardown(async () => {
    await lb.close({ drainTimeout: 0 });
    await dns.close();
  });
  const udp = await UdpClient.open();
  t.teardown(() => udp.close());
  const began = performance.now();
  for (let i = 0; i < 3; i++) {
    udp.socket.send(`query ${i}`, portOf(lb, 'dns'), '127.0.0.1');
    await udp.next(10_000, `answer ${i}`);
  }
  await until(() => lb.stats().backends[0]!.counters.sessions_total === 3 && lb.stats().backends[0]!.counters.sessions_active === 0, 10_000, 'three sessions to end');
  const elapsedS = (performance.now() - began) / 1000;
  const { session_duration: h } = lb.stats().backends[0]!.latency;
  t.equal(h.count, 3, 'one duration per session, reused socket or not');
  t.ok(h.sum <= elapsedS, `the durations (${h.sum} s) fit in the ${elapsedS} s the queries took`);
});
