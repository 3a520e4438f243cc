// /metrics: the exposition is checked by a strict parser of the Prometheus text format 0.0.4
// (test/helpers/exposition.ts, itself tested here on broken input), then the required families,
// labels and values are compared with what an in-memory target holds. A real balancer's /metrics
// is tested in test/integration/control-plane-live.test.ts.

import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import t from 'tap';
import type { BackendInfo, BackendTransitions, BalancerStats, Counters, Latency } from '../../lib/types.js';
import type { BalancerEvents } from '../../lib/events.js';
import type { BalancerConfig } from '../../lib/types.js';
import { silentLogger } from '../../lib/log.js';
import { counters as counterTable } from '../../lib/engine/addon.js';
import { counterNames, type CounterInfo, type CounterName } from '../../lib/engine/native-types.js';
import { healthCheckBuckets, MetricsCollector } from '../../lib/api/metrics.js';
import { emptyLatency } from '../../lib/engine/stats.js';
import { startAdminServer } from '../../lib/api/server.js';
import type { AdminTarget } from '../../lib/api/target.js';
import { parseExposition, scrape, value } from '../helpers/exposition.js';

t.test('the parser refuses broken expositions', async (t) => {
  const ok = '# HELP x_total X.\n# TYPE x_total counter\nx_total{a="1"} 2\n';
  t.equal(parseExposition(ok).get('x_total')?.samples[0].value, 2, 'a valid one passes');
  const broken: Array<[string, string]> = [
    ['no final newline', ok.slice(0, -1)],
    ['a sample before TYPE', '# HELP x_total X.\nx_total 1\n# TYPE x_total counter\n'],
    ['TYPE before HELP', '# TYPE x_total counter\n# HELP x_total X.\nx_total 1\n'],
    ['two TYPEs', '# HELP x_total X.\n# TYPE x_total counter\n# TYPE x_total counter\nx_total 1\n'],
    ['a family twice', `${ok}# HELP y Y.\n# TYPE y gauge\ny 1\n# HELP x_total X.\n# TYPE x_total counter\n`],
    ['a family split', `${ok}# HELP y Y.\n# TYPE y gauge\ny 1\nx_total{a="2"} 3\n`],
    ['a bad metric name', '# HELP 1x X.\n# TYPE 1x gauge\n1x 1\n'],
    ['a bad label name', '# HELP x X.\n# TYPE x gauge\nx{1a="b"} 1\n'],
    ['an unknown escape', '# HELP x X.\n# TYPE x gauge\nx{a="\\t"} 1\n'],
    ['an unescaped quote', '# HELP x X.\n# TYPE x gauge\nx{a="say "hi""} 1\n'],
    ['a duplicate series', '# HELP x X.\n# TYPE x gauge\nx{a="1"} 1\nx{a="1"} 2\n'],
    ['a bad value', '# HELP x X.\n# TYPE x gauge\nx 1,5\n'],
    ['a counter without _total', '# HELP x X.\n# TYPE x counter\nx 1\n'],
    ['a negative counter', '# HELP x_total X.\n# TYPE x_total counter\nx_total -1\n'],
    ['buckets not cumulative', '# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n'],
    ['no +Inf bucket', '# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n'],
    ['_count is not +Inf', '# HELP h H.\n# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n'],
    ['no _sum', '# HELP h H.\n# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_count 2\n'],
  ];
  for (const [what, text] of broken) t.throws(() => parseExposition(text), `${what} is refused`);
});

// --- an in-memory target ---------------------------------------------------------------------------

function counterValues(values: Partial<Record<CounterName, number>>): Counters {
  const out = {} as Record<CounterName, number>;
  for (const name of counterNames) out[name] = values[name] ?? 0;
  return out;
}

const oddId = 'we"ird\\id\nx';

type BackendRow = BalancerStats['backends'][number];

function backend(
  listener: string,
  id: string,
  over: Partial<BackendInfo>,
  values: Partial<Record<CounterName, number>>,
  extra: { latency?: Latency; transitions?: BackendTransitions } = {},
): BackendRow {
  return {
    id,
    pool: null,
    listener,
    address: '127.0.0.1:9001',
    ip: '127.0.0.1',
    port: 9001,
    weight: 1,
    effectiveWeight: 1,
    state: 'up',
    health: 'unchecked',
    healthReason: null,
    takesNewFlows: true,
    ...over,
    counters: counterValues(values),
    latency: extra.latency ?? emptyLatency(),
    transitions: extra.transitions ?? { up: 0, down: 0, lastChange: new Date(0) },
  };
}

// Backend a's connects: 0.3 ms, 0.3 ms and 7 s (past the last bound); its flows: one of 2 s.
const latencyOfA: Latency = (() => {
  const empty = emptyLatency();
  const connect = empty.connect_duration;
  const connectBuckets = connect.buckets.map((_, i) => (i === 2 ? 2 : i === connect.bounds.length ? 1 : 0));
  const flow = empty.flow_duration;
  const flowBuckets = flow.buckets.map((_, i) => (flow.bounds[i] === 5 ? 1 : 0));
  return {
    ...empty,
    connect_duration: { bounds: connect.bounds, buckets: connectBuckets, sum: 7.0006, count: 3 },
    flow_duration: { bounds: flow.bounds, buckets: flowBuckets, sum: 2, count: 1 },
  };
})();

/** Only what /metrics reads; the rest of AdminTarget is not used here and says so. */
class MetricsTarget extends EventEmitter<BalancerEvents> implements AdminTarget {
  config = {
    workers: 3,
    listeners: [
      { name: 'web', protocol: 'tcp', forward: 'proxy' },
      { name: 'api', protocol: 'udp', forward: 'proxy' },
    ],
  } as unknown as BalancerConfig;
  uptimeSeconds = 12.25;
  clusterStatus() {
    return null;
  }
  snapshot: BalancerStats = {
    listeners: [
      { name: 'web', address: '127.0.0.1', port: 8080, family: 'IPv4', counters: counterValues({ flows_active: 5, flows_total: 120, bytes_to_backend: 1000, bytes_to_client: 2000, spliced_bytes: 2900, copied_bytes: 100, no_backend: 2 }) },
      { name: 'api', address: '::1', port: 8081, family: 'IPv6', counters: counterValues({ flows_total: 1 }) },
    ],
    backends: [
      backend('web', 'a', { weight: 3, effectiveWeight: 2, health: 'up' }, { flows_active: 4, flows_total: 90, bytes_to_backend: 700, bytes_to_client: 1500, connect_failures: 5 }, { latency: latencyOfA, transitions: { up: 2, down: 1, lastChange: new Date(1_700_000_000_500) } }),
      backend('web', 'b', { state: 'draining', health: 'down', takesNewFlows: false }, { flows_active: 1 }),
      backend('api', oddId, {}, { flows_total: 1 }),
    ],
    droppedEvents: 9,
  };

  stats(): BalancerStats {
    return this.snapshot;
  }
  backends(): BackendInfo[] {
    return this.snapshot.backends.map(({ counters: _c, latency: _l, transitions: _t, ...b }) => b);
  }
  addresses() {
    return this.snapshot.listeners.map(({ counters: _, ...l }) => l);
  }
  #unused(): never {
    throw new Error('not used by the metrics tests');
  }
  addBackend = async (): Promise<BackendInfo[]> => this.#unused();
  removeBackend = async (): Promise<void> => this.#unused();
  setBackendWeight = async (): Promise<BackendInfo[]> => this.#unused();
  setBackendState = async (): Promise<BackendInfo[]> => this.#unused();
  connections = async () => this.#unused();
  reload = async () => this.#unused();
}

function check(target: MetricsTarget, listener: string, backendId: string, ok: boolean, durationMs: number): void {
  target.emit('health-check', { listener, backend: backendId, ok, durationMs, reason: ok ? 'connected' : 'refused' });
}

t.test('GET /metrics is a valid exposition with the values of the target', async (t) => {
  const target = new MetricsTarget();
  const admin = await startAdminServer(target, { kind: 'tcp', host: '127.0.0.1', ip: '127.0.0.1', port: 0, token: null, maxConnections: 256 }, silentLogger());
  t.teardown(() => admin.close());
  for (const ms of [0.5, 3, 30, 7000]) check(target, 'web', 'a', ms !== 7000, ms);
  check(target, 'api', oddId, true, 1);

  const { contentType, text } = await scrape(admin.url);
  t.equal(contentType, 'text/plain; version=0.0.4; charset=utf-8');
  const families = parseExposition(text);
  t.pass('the exposition parses strictly');

  const expectedTypes: Record<string, string> = {
    lb4_build_info: 'gauge',
    lb4_uptime_seconds: 'gauge',
    lb4_engine_dropped_events_total: 'counter',
    lb4_listener_accepted_total: 'counter',
    lb4_listener_active_flows: 'gauge',
    lb4_listener_bytes_total: 'counter',
    lb4_listener_spliced_bytes_total: 'counter',
    lb4_backend_up: 'gauge',
    lb4_backend_weight: 'gauge',
    lb4_backend_state: 'gauge',
    lb4_backend_active_flows: 'gauge',
    lb4_backend_bytes_total: 'counter',
    lb4_backend_connect_failures_total: 'counter',
    lb4_health_check_duration_seconds: 'histogram',
    lb4_backend_connect_duration_seconds: 'histogram',
    lb4_backend_flow_duration_seconds: 'histogram',
    lb4_backend_session_duration_seconds: 'histogram',
    lb4_backend_transitions_total: 'counter',
    lb4_backend_last_change_timestamp_seconds: 'gauge',
    process_cpu_seconds_total: 'counter',
    process_resident_memory_bytes: 'gauge',
    process_open_fds: 'gauge',
    process_max_fds: 'gauge',
    process_start_time_seconds: 'gauge',
    nodejs_eventloop_lag_seconds: 'gauge',
  };
  for (const [name, type] of Object.entries(expectedTypes)) t.equal(families.get(name)?.type, type, `${name} is a ${type}`);

  const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  t.equal(value(families, 'lb4_build_info', { version }), 1);
  t.equal(value(families, 'lb4_uptime_seconds'), 12.25);
  t.equal(value(families, 'lb4_workers'), 3);
  t.equal(value(families, 'lb4_engine_dropped_events_total'), 9);

  const web = { listener: 'web' };
  t.equal(value(families, 'lb4_listener_accepted_total', web), 120, "accepted is the listener's flows_total");
  t.equal(value(families, 'lb4_listener_accepted_total', { listener: 'api' }), 1);
  t.equal(value(families, 'lb4_listener_active_flows', web), 5);
  t.equal(value(families, 'lb4_listener_bytes_total', { ...web, direction: 'to_backend' }), 1000);
  t.equal(value(families, 'lb4_listener_bytes_total', { ...web, direction: 'to_client' }), 2000);
  t.equal(value(families, 'lb4_listener_spliced_bytes_total', web), 2900);
  t.equal(value(families, 'lb4_listener_copied_bytes_total', web), 100);
  t.equal(value(families, 'lb4_listener_no_backend_total', web), 2);
  t.notOk(families.has('lb4_backend_no_backend_total'), 'a listener-only counter is not exported per backend');

  const a = { listener: 'web', backend: 'a' };
  const b = { listener: 'web', backend: 'b' };
  t.equal(value(families, 'lb4_backend_up', a), 1);
  t.equal(value(families, 'lb4_backend_up', b), 0, 'up is "takes new flows"');
  t.equal(value(families, 'lb4_backend_weight', a), 3);
  t.equal(value(families, 'lb4_backend_effective_weight', a), 2);
  t.equal(value(families, 'lb4_backend_state', { ...b, state: 'draining' }), 1);
  t.equal(value(families, 'lb4_backend_state', { ...b, state: 'up' }), 0);
  t.equal(families.get('lb4_backend_state')?.samples.filter((s) => s.labels.backend === 'b').length, 4, 'one series per state');
  t.equal(value(families, 'lb4_backend_health', { ...b, health: 'down' }), 1);
  t.equal(value(families, 'lb4_backend_health', { ...a, health: 'up' }), 1);
  t.equal(value(families, 'lb4_backend_active_flows', a), 4);
  t.equal(value(families, 'lb4_backend_flows_total', a), 90);
  t.equal(value(families, 'lb4_backend_bytes_total', { ...a, direction: 'to_backend' }), 700);
  t.equal(value(families, 'lb4_backend_bytes_total', { ...a, direction: 'to_client' }), 1500);
  t.equal(value(families, 'lb4_backend_connect_failures_total', a), 5);
  t.equal(value(families, 'lb4_backend_connect_failures_total', b), 0);

  t.equal(value(families, 'lb4_backend_up', { listener: 'api', backend: oddId }), 1, 'a label value with a quote, a backslash and a newline comes back intact');
  t.match(text, /backend="we\\"ird\\\\id\\nx"/, 'escaped as the format says');

  // 0.5 ms, 3 ms, 30 ms and 7 s (beyond the last bucket, and failed).
  const buckets = healthCheckBuckets.map((le) => value(families, 'lb4_health_check_duration_seconds_bucket', { ...a, le: String(le) }));
  t.same(buckets, [1, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3]);
  t.equal(value(families, 'lb4_health_check_duration_seconds_bucket', { ...a, le: '+Inf' }), 4);
  t.equal(value(families, 'lb4_health_check_duration_seconds_count', a), 4);
  t.ok(Math.abs(value(families, 'lb4_health_check_duration_seconds_sum', a)! - 7.0335) < 1e-9, '_sum in seconds');
  t.equal(value(families, 'lb4_health_check_failures_total', a), 1);
  t.equal(value(families, 'lb4_health_check_duration_seconds_count', { listener: 'api', backend: oddId }), 1);
  t.equal(value(families, 'lb4_health_check_duration_seconds_count', b), undefined, 'no series for a backend never checked');

  // The data plane's latency, per backend of a listener of the histogram's protocol.
  t.equal(value(families, 'lb4_backend_connect_duration_seconds_bucket', { ...a, le: '0.00025' }), 0);
  t.equal(value(families, 'lb4_backend_connect_duration_seconds_bucket', { ...a, le: '0.0005' }), 2, 'buckets are cumulative');
  t.equal(value(families, 'lb4_backend_connect_duration_seconds_bucket', { ...a, le: '5' }), 2);
  t.equal(value(families, 'lb4_backend_connect_duration_seconds_bucket', { ...a, le: '+Inf' }), 3, 'past the last bound counts in +Inf only');
  t.equal(value(families, 'lb4_backend_connect_duration_seconds_count', a), 3);
  t.equal(value(families, 'lb4_backend_connect_duration_seconds_sum', a), 7.0006);
  t.equal(value(families, 'lb4_backend_flow_duration_seconds_bucket', { ...a, le: '1' }), 0);
  t.equal(value(families, 'lb4_backend_flow_duration_seconds_bucket', { ...a, le: '5' }), 1);
  t.equal(value(families, 'lb4_backend_connect_duration_seconds_count', b), 0, 'a backend without connects has an empty series');
  const api = { listener: 'api', backend: oddId };
  t.equal(value(families, 'lb4_backend_connect_duration_seconds_count', api), undefined, 'a UDP backend has no connect time');
  t.equal(value(families, 'lb4_backend_session_duration_seconds_count', api), 0, 'but a session duration');
  t.equal(value(families, 'lb4_backend_session_duration_seconds_count', a), undefined, 'which a TCP backend has not');
  t.equal(value(families, 'lb4_backend_transitions_total', { ...a, to: 'up' }), 2);
  t.equal(value(families, 'lb4_backend_transitions_total', { ...a, to: 'down' }), 1);
  t.equal(value(families, 'lb4_backend_last_change_timestamp_seconds', a), 1_700_000_000.5);

  // The process, as Prometheus client libraries name it.
  t.ok(value(families, 'process_cpu_seconds_total')! > 0, 'CPU time');
  t.ok(value(families, 'process_resident_memory_bytes')! > 1e6, 'resident memory');
  t.ok(value(families, 'process_open_fds')! > 3, 'open descriptors');
  t.ok(value(families, 'process_max_fds')! >= value(families, 'process_open_fds')!, 'the limit');
  const started = value(families, 'process_start_time_seconds')!;
  t.ok(started <= Date.now() / 1000 && started > Date.now() / 1000 - process.uptime() - 5, 'when the process started');
  t.ok(value(families, 'nodejs_eventloop_lag_seconds')! >= 0, 'event-loop lag');

  // Every counter of the data plane is exported somewhere, with the table's HELP text.
  for (const c of counterTable) {
    const exported = [...families.values()].filter((f) => f.help.includes(c.help));
    t.ok(exported.length > 0, `${c.name} is exported (${exported.map((f) => f.name).join(', ')})`);
  }

  await admin.close();
  t.equal(target.listenerCount('health-check'), 0, 'the histogram stops listening on close');
});

t.test('a counter the mapping table does not know gets a default metric', async (t) => {
  const target = new MetricsTarget();
  const table: CounterInfo[] = [
    ...counterTable,
    { name: 'frobs' as CounterName, kind: 'counter', help: 'Frobs made' },
    { name: 'widgets' as CounterName, kind: 'gauge', help: 'Widgets now' },
  ];
  const extra = (c: Counters) => ({ ...c, frobs: 7, widgets: 2 }) as Counters;
  target.snapshot = {
    ...target.snapshot,
    listeners: target.snapshot.listeners.map((l) => ({ ...l, counters: extra(l.counters) })),
    backends: target.snapshot.backends.map((b) => ({ ...b, counters: extra(b.counters) })),
  };
  const collector = new MetricsCollector(target, { version: '9.9.9', counters: table });
  t.teardown(() => collector.close());
  const families = parseExposition(collector.render());
  t.match(families.get('lb4_listener_frobs_total'), { type: 'counter', help: 'Frobs made' });
  t.equal(value(families, 'lb4_listener_frobs_total', { listener: 'web' }), 7);
  t.equal(value(families, 'lb4_backend_frobs_total', { listener: 'web', backend: 'a' }), 7);
  t.match(families.get('lb4_backend_widgets'), { type: 'gauge', help: 'Widgets now' });
  t.equal(value(families, 'lb4_backend_widgets', { listener: 'web', backend: 'b' }), 2);
});

t.test('histogram series follow the backends; close stops recording; odd values stay valid', async (t) => {
  const target = new MetricsTarget();
  const collector = new MetricsCollector(target, { version: '1.0.0' });
  t.teardown(() => collector.close());
  check(target, 'web', 'a', true, 2);
  check(target, 'web', 'b', false, 2);
  let families = parseExposition(collector.render());
  t.equal(value(families, 'lb4_health_check_duration_seconds_count', { listener: 'web', backend: 'b' }), 1);
  t.equal(value(families, 'lb4_health_check_failures_total', { listener: 'web', backend: 'b' }), 1);

  target.snapshot = { ...target.snapshot, backends: target.snapshot.backends.filter((b) => b.id !== 'b') };
  families = parseExposition(collector.render());
  t.equal(value(families, 'lb4_health_check_duration_seconds_count', { listener: 'web', backend: 'b' }), undefined, 'a removed backend loses its series');
  t.equal(value(families, 'lb4_health_check_duration_seconds_count', { listener: 'web', backend: 'a' }), 1);

  collector.close();
  collector.close();
  t.equal(target.listenerCount('health-check'), 0);
  check(target, 'web', 'a', true, 2);
  t.equal(value(parseExposition(collector.render()), 'lb4_health_check_duration_seconds_count', { listener: 'web', backend: 'a' }), 1, 'nothing recorded after close');

  target.uptimeSeconds = NaN;
  const web = target.snapshot.listeners[0];
  target.snapshot = { ...target.snapshot, listeners: [{ ...web, counters: { ...web.counters, flows_active: Infinity } }] };
  const text = collector.render();
  families = parseExposition(text);
  t.match(text, /^lb4_uptime_seconds NaN$/m);
  t.equal(value(families, 'lb4_listener_active_flows', { listener: 'web' }), Infinity, '+Inf');
});
