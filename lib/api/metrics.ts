// Prometheus metrics for /metrics, in the text exposition format 0.0.4.
//
// The data plane's counters are declared once, in native/core/counters.h, and reach this file
// through lib/engine/addon.ts (`counters`: name, kind, help). The one table below, `counterMetrics`,
// says how a counter becomes a metric family; a counter it does not mention still gets one, named
// after the counter, so a counter added in C++ is exported without touching this file. Every
// listener counter family is `lb4_listener_<name>` with a `listener` label, every backend one is
// `lb4_backend_<name>` with `listener` and `backend` labels.
//
// Backend latency histograms and transitions are rendered by backend-metrics.ts, process metrics
// by process-metrics.ts. The health check histogram is the one thing not read from a snapshot: it
// is fed by the target's 'health-check' events, from the moment the collector is made until it is
// closed.

import { counters as nativeCounters } from '../engine/addon.js';
import type { BackendState, BalancerStats, CounterInfo, CounterName, Health } from '../types.js';
import type { BalancerEvents } from '../events.js';
import { clusterStates, rejectReasons } from '../cluster/heartbeat.js';
import { batchRejectReasons } from '../cluster/session-batch.js';
import type { AdminTarget } from './target.js';
import { histogramSamples, writeFamily, type Labels } from './exposition.js';
import { backendMetricFamilies, writeBackendFamilies } from './backend-metrics.js';
import { ProcessMetrics, processMetricFamilies } from './process-metrics.js';

type Scope = 'listener' | 'backend';
const scopes: readonly Scope[] = ['listener', 'backend'];

/** How one data-plane counter becomes a metric family. Every field is optional. */
interface CounterMetric {
  /**
   * The family name after `lb4_<scope>_`, one for both scopes or one per scope. Default: the
   * counter's name, with `_total` added for a counter (Prometheus' naming convention).
   */
  readonly name?: string | Readonly<Record<Scope, string>>;
  /** A label telling apart counters that share one family (e.g. the two byte directions). */
  readonly label?: readonly [name: string, value: string];
  /** Where the data plane moves this counter; it is always 0 elsewhere, so not exported there. Default: both. */
  readonly scopes?: readonly Scope[];
}

/** The mapping table: only counters whose metric differs from the default are listed. */
const counterMetrics: Readonly<Partial<Record<CounterName, CounterMetric>>> = {
  flows_active: { name: 'active_flows' },
  // A listener counts flows it accepts; a backend counts flows established to it.
  flows_total: { name: { listener: 'accepted_total', backend: 'flows_total' } },
  bytes_to_backend: { name: 'bytes_total', label: ['direction', 'to_backend'] },
  bytes_to_client: { name: 'bytes_total', label: ['direction', 'to_client'] },
  // These are decided before a backend is chosen, or concern the listening socket.
  retries: { scopes: ['listener'] },
  no_backend: { scopes: ['listener'] },
  accept_shed: { scopes: ['listener'] },
  accept_errors: { scopes: ['listener'] },
  connect_no_descriptors: { scopes: ['listener'] },
  // UDP: datagrams each way in one family, like bytes; sessions beside flows; drops by reason.
  datagrams_to_backend: { name: 'datagrams_total', label: ['direction', 'to_backend'] },
  datagrams_to_client: { name: 'datagrams_total', label: ['direction', 'to_client'] },
  sessions_active: { name: 'active_sessions' },
  // No backend and the cap are decided before a session has a backend.
  dropped_no_backend: { name: 'dropped_datagrams_total', label: ['reason', 'no_backend'], scopes: ['listener'] },
  dropped_cap: { name: 'dropped_datagrams_total', label: ['reason', 'cap'], scopes: ['listener'] },
  dropped_truncated: { name: 'dropped_datagrams_total', label: ['reason', 'truncated'] },
  dropped_send_error: { name: 'dropped_datagrams_total', label: ['reason', 'send_error'] },
  dropped_late: { name: 'dropped_datagrams_total', label: ['reason', 'late'] },
  // Counted when a new session's backend came from the HA peer's session, before it has one.
  sessions_replicated: { name: 'sessions_from_peer_total', scopes: ['listener'] },
  // PROXY protocol headers from clients: decided before a backend is chosen; refusals by reason
  // in one family, lb4_listener_proxy_headers_rejected_total{reason}.
  proxy_headers_accepted: { scopes: ['listener'] },
  proxy_header_untrusted: { name: 'proxy_headers_rejected_total', label: ['reason', 'untrusted'], scopes: ['listener'] },
  proxy_header_malformed: { name: 'proxy_headers_rejected_total', label: ['reason', 'malformed'], scopes: ['listener'] },
  proxy_header_oversized: { name: 'proxy_headers_rejected_total', label: ['reason', 'oversized'], scopes: ['listener'] },
  proxy_header_timeouts: { name: 'proxy_headers_rejected_total', label: ['reason', 'timeout'], scopes: ['listener'] },
  // Traffic policy: every refusal in one family, lb4_listener_refused_total{reason}.
  denied: { name: 'refused_total', label: ['reason', 'denied'], scopes: ['listener'] },
  listener_limit: { name: 'refused_total', label: ['reason', 'listener_limit'], scopes: ['listener'] },
  backend_limit: { name: 'refused_total', label: ['reason', 'backend_limit'], scopes: ['listener'] },
  queue_full: { name: 'refused_total', label: ['reason', 'queue_full'], scopes: ['listener'] },
  queue_timeout: { name: 'refused_total', label: ['reason', 'queue_timeout'], scopes: ['listener'] },
  source_limit: { name: 'refused_total', label: ['reason', 'source_limit'], scopes: ['listener'] },
  source_rate: { name: 'refused_total', label: ['reason', 'source_rate'], scopes: ['listener'] },
  flows_queued: { name: 'queued_flows', scopes: ['listener'] },
  // Dropped by the kernel before lb4 read them: the listener socket's receive queue was full.
  dropped_overflow: { name: 'dropped_datagrams_total', label: ['reason', 'socket_overflow'], scopes: ['listener'] },
  sni_routed: { name: 'sni_flows_total', label: ['route', 'matched'], scopes: ['listener'] },
  sni_defaulted: { name: 'sni_flows_total', label: ['route', 'default'], scopes: ['listener'] },
  sni_unrouted: { name: 'sni_flows_total', label: ['route', 'none'], scopes: ['listener'] },
  sni_hello_malformed: { name: 'sni_hellos_rejected_total', label: ['reason', 'malformed'], scopes: ['listener'] },
  sni_hello_oversized: { name: 'sni_hellos_rejected_total', label: ['reason', 'oversized'], scopes: ['listener'] },
  sni_hello_timeouts: { name: 'sni_hellos_rejected_total', label: ['reason', 'timeout'], scopes: ['listener'] },
};

/** Upper bounds (seconds) of the health check duration histogram's buckets. */
export const healthCheckBuckets: readonly number[] = Object.freeze([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]);

// Enumerations exported as one 0/1 series per value (the usual shape for a state in
// Prometheus). `satisfies Record<...>` makes the compiler insist on every value of the type.
const backendStateValues = Object.keys({ up: true, down: true, draining: true, maintenance: true } satisfies Record<BackendState, true>) as BackendState[];
const healthValues = Object.keys({ up: true, down: true, unchecked: true } satisfies Record<Health, true>) as Health[];

/** What the collector reads of a running balancer. */
export type MetricsSource = Pick<AdminTarget, 'stats' | 'config' | 'uptimeSeconds' | 'on' | 'off'> & Partial<Pick<AdminTarget, 'clusterStatus'>>;

export interface MetricsOptions {
  /** The lb4 version, for `lb4_build_info`. */
  version: string;
  /** The data plane's counter table; default: the addon's (lib/engine/addon.ts). Tests pass their own. */
  counters?: readonly CounterInfo[];
}


interface CounterFamily {
  readonly name: string;
  readonly scope: Scope;
  readonly type: 'counter' | 'gauge';
  readonly help: string;
  readonly members: ReadonlyArray<{ readonly counter: string; readonly label?: readonly [string, string] }>;
}

/** One backend's health check observations. Bucket counts are per bucket here, cumulated when rendered. */
interface CheckSeries {
  readonly buckets: number[];
  sum: number;
  count: number;
  failures: number;
}

/** Names of the families written by hand below, so a counter family can never take one of them. */
const fixedFamilies = [
  'lb4_build_info',
  'lb4_uptime_seconds',
  'lb4_workers',
  'lb4_engine_dropped_events_total',
  'lb4_backend_up',
  'lb4_backend_weight',
  'lb4_backend_effective_weight',
  'lb4_backend_state',
  'lb4_backend_health',
  'lb4_backend_pool',
  'lb4_health_check_duration_seconds',
  'lb4_health_check_failures_total',
  'lb4_dns_resolutions_total',
  'lb4_dns_records_dropped_total',
  'lb4_cluster_state',
  'lb4_cluster_peer_up',
  'lb4_cluster_duplicate_node_id',
  'lb4_cluster_transitions_total',
  'lb4_cluster_heartbeats_rejected_total',
  'lb4_cluster_sessions_replicated_total',
  'lb4_cluster_session_hints',
  'lb4_cluster_session_batches_rejected_total',
  ...backendMetricFamilies,
  ...processMetricFamilies,
];

function counterFamilyName(info: CounterInfo, scope: Scope): string {
  const mapped = counterMetrics[info.name]?.name;
  let suffix: string;
  if (mapped === undefined) {
    suffix = info.name.replace(/[^a-zA-Z0-9_]/g, '_');
    if (info.kind === 'counter' && !suffix.endsWith('_total')) suffix += '_total';
  } else {
    suffix = typeof mapped === 'string' ? mapped : mapped[scope];
  }
  return `lb4_${scope}_${suffix}`;
}

/** Groups the counter table into families, in table order, listener families first. */
function counterFamilies(table: readonly CounterInfo[]): CounterFamily[] {
  const families = new Map<string, { name: string; scope: Scope; type: 'counter' | 'gauge'; helps: string[]; members: CounterFamily['members'][number][] }>();
  for (const scope of scopes) {
    for (const info of table) {
      const metric = counterMetrics[info.name] ?? {};
      if (!(metric.scopes ?? scopes).includes(scope)) continue;
      const name = counterFamilyName(info, scope);
      if (fixedFamilies.includes(name)) throw new Error(`lb4: counter ${info.name} would be exported as ${name}, which is taken`);
      let family = families.get(name);
      if (!family) {
        family = { name, scope, type: info.kind, helps: [], members: [] };
        families.set(name, family);
      }
      // Merging a gauge and a counter into one family would make the family's TYPE a lie.
      if (family.type !== info.kind) throw new Error(`lb4: counters of different kinds share the metric ${name}`);
      const label = metric.label;
      if (family.members.length > 0 && (!label || family.members.some((m) => m.label?.[0] !== label[0] || m.label[1] === label[1]))) {
        throw new Error(`lb4: counters sharing the metric ${name} need one label, with a different value each, to tell them apart`);
      }
      family.members.push({ counter: info.name, ...(label ? { label } : {}) });
      family.helps.push(label ? `${info.help} (${label[0]}="${label[1]}")` : info.help);
    }
  }
  return [...families.values()].map((f) => Object.freeze({ name: f.name, scope: f.scope, type: f.type, help: f.helps.join('; '), members: Object.freeze(f.members) }));
}

function seriesKey(listener: string, backend: string): string {
  return `${listener}\u0000${backend}`;
}

/**
 * Renders the Prometheus exposition of a running balancer, and keeps the health check histogram
 * it cannot read from a snapshot. Call {@link MetricsCollector.close} to stop listening to the
 * target's events.
 */
export class MetricsCollector {
  readonly #target: MetricsSource;
  readonly #version: string;
  readonly #families: readonly CounterFamily[];
  readonly #checks = new Map<string, CheckSeries>();
  // Made at the first scrape: sampling the event loop (a 10 ms timer) costs nothing until someone
  // reads the metrics.
  #process: ProcessMetrics | null = null;
  readonly #onCheck = (info: BalancerEvents['health-check'][0]): void => this.#observe(info);
  #closed = false;

  constructor(target: MetricsSource, options: MetricsOptions) {
    this.#target = target;
    this.#version = options.version;
    this.#families = counterFamilies(options.counters ?? nativeCounters);
    target.on('health-check', this.#onCheck);
  }

  /** Stops recording health checks. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#target.off('health-check', this.#onCheck);
    this.#process?.close();
  }

  #observe(info: BalancerEvents['health-check'][0]): void {
    const key = seriesKey(info.listener, info.backend);
    let series = this.#checks.get(key);
    if (!series) {
      series = { buckets: healthCheckBuckets.map(() => 0), sum: 0, count: 0, failures: 0 };
      this.#checks.set(key, series);
    }
    const seconds = Math.max(0, info.durationMs) / 1000;
    const bucket = healthCheckBuckets.findIndex((le) => seconds <= le);
    if (bucket >= 0) series.buckets[bucket]++;
    series.sum += seconds;
    series.count++;
    if (!info.ok) series.failures++;
  }

  /** The whole exposition, one snapshot of the target's stats. */
  render(): string {
    const stats = this.#target.stats();
    const out: string[] = [];
    writeFamily(out, 'lb4_build_info', 'gauge', 'Always 1; the lb4 version is in the version label', [{ labels: [['version', this.#version]], value: 1 }]);
    writeFamily(out, 'lb4_uptime_seconds', 'gauge', 'Seconds since the balancer started', [{ labels: [], value: this.#target.uptimeSeconds }]);
    writeFamily(out, 'lb4_workers', 'gauge', 'Data-plane worker threads', [{ labels: [], value: this.#target.config.workers }]);
    writeFamily(out, 'lb4_engine_dropped_events_total', 'counter', 'Data-plane events dropped because the JS thread did not keep up', [{ labels: [], value: stats.droppedEvents }]);

    for (const family of this.#families.filter((f) => f.scope === 'listener')) {
      writeFamily(out, family.name, family.type, family.help, this.#counterSamples(family, stats.listeners, (l) => [['listener', l.name]]));
    }

    const backendLabels = (b: { listener: string; id: string }): Labels => [['listener', b.listener], ['backend', b.id]];
    const backends = stats.backends;
    writeFamily(out, 'lb4_backend_up', 'gauge', 'Whether the backend takes new flows now (1) or not (0)', backends.map((b) => ({ labels: backendLabels(b), value: b.takesNewFlows ? 1 : 0 })));
    writeFamily(out, 'lb4_backend_weight', 'gauge', 'The weight the operator set', backends.map((b) => ({ labels: backendLabels(b), value: b.weight })));
    writeFamily(out, 'lb4_backend_effective_weight', 'gauge', 'The weight in use now (below the set weight during slow start)', backends.map((b) => ({ labels: backendLabels(b), value: b.effectiveWeight })));
    writeFamily(
      out,
      'lb4_backend_state',
      'gauge',
      'The state the operator set: 1 for the current state, 0 for the others',
      backends.flatMap((b) => backendStateValues.map((state) => ({ labels: [...backendLabels(b), ['state', state] as const], value: b.state === state ? 1 : 0 }))),
    );
    writeFamily(
      out,
      'lb4_backend_health',
      'gauge',
      'What health checks say of the backend (unchecked: its listener has none): 1 for the current value, 0 for the others',
      backends.flatMap((b) => healthValues.map((health) => ({ labels: [...backendLabels(b), ['health', health] as const], value: b.health === health ? 1 : 0 }))),
    );
    // An info family (always 1), so the pool joins onto every backend series without adding a
    // label to each; only backends in a pool (SNI routing) have one, and without them there is no family.
    const pooled = backends.filter((b) => b.pool !== null);
    if (pooled.length > 0) writeFamily(out, 'lb4_backend_pool', 'gauge', "Always 1; the backend's pool (SNI routing) is in the pool label", pooled.map((b) => ({ labels: [...backendLabels(b), ['pool', b.pool!] as const], value: 1 })));
    for (const family of this.#families.filter((f) => f.scope === 'backend')) {
      writeFamily(out, family.name, family.type, family.help, this.#counterSamples(family, backends, backendLabels));
    }
    writeBackendFamilies(out, this.#target.config, backends, backendLabels);

    // Series of backends that are gone are forgotten, so backend churn cannot grow this map.
    const present = new Set(backends.map((b) => seriesKey(b.listener, b.id)));
    for (const key of this.#checks.keys()) if (!present.has(key)) this.#checks.delete(key);
    const checked = backends.flatMap((b) => {
      const series = this.#checks.get(seriesKey(b.listener, b.id));
      return series ? [{ labels: backendLabels(b), series }] : [];
    });
    writeFamily(
      out,
      'lb4_health_check_duration_seconds',
      'histogram',
      'How long active health checks took, passed or failed',
      checked.flatMap(({ labels, series }) => histogramSamples(labels, healthCheckBuckets, series.buckets, series.sum, series.count)),
    );
    writeFamily(out, 'lb4_health_check_failures_total', 'counter', 'Active health checks that failed', checked.map(({ labels, series }) => ({ labels, value: series.failures })));
    // DNS backend entries' resolutions (lib/discovery/): a source without discovery has none.
    const dns = stats.dnsResolutions;
    if (dns) {
      writeFamily(out, 'lb4_dns_resolutions_total', 'counter', 'Resolutions of dns: and srv: backend entries, by result (only ok changes the backends)', Object.entries(dns).map(([result, value]) => ({ labels: [['result', result]], value })));
    }
    const dropped = stats.dnsRecordsDropped;
    if (dropped) {
      const help = 'Records DNS answers gave that no backend was made of, by reason (unusable address or port, lb4 itself, past maxBackends), once per change of answer';
      writeFamily(out, 'lb4_dns_records_dropped_total', 'counter', help, Object.entries(dropped).map(([reason, value]) => ({ labels: [['reason', reason]], value })));
    }
    this.#clusterFamilies(out);
    if (!this.#closed) this.#process ??= new ProcessMetrics();
    this.#process?.write(out);
    return `${out.join('\n')}\n`;
  }

  // Only a cluster node has these: a balancer without a peer exports none of them.
  #clusterFamilies(out: string[]): void {
    const c = this.#target.clusterStatus?.();
    if (!c) return;
    writeFamily(out, 'lb4_cluster_state', 'gauge', "This node's HA state: 1 for the current state, 0 for the others", clusterStates.map((state) => ({ labels: [['state', state]], value: c.node.state === state ? 1 : 0 })));
    writeFamily(out, 'lb4_cluster_peer_up', 'gauge', 'Whether the peer was heard within the dead time and is not leaving (1) or not (0)', [{ labels: [], value: c.peer.up ? 1 : 0 }]);
    writeFamily(out, 'lb4_cluster_duplicate_node_id', 'gauge', "Whether the peer's last heartbeat had this node's id (1): a misconfiguration, give each node its own --node-id", [{ labels: [], value: c.peer.duplicateNodeId ? 1 : 0 }]);
    writeFamily(out, 'lb4_cluster_transitions_total', 'counter', 'State changes of this node since it started', [{ labels: [], value: c.transitions }]);
    writeFamily(
      out,
      'lb4_cluster_heartbeats_rejected_total',
      'counter',
      'Heartbeats dropped, by reason (bad MAC, replayed, old timestamp, ...)',
      rejectReasons.map((reason) => ({ labels: [['reason', reason]], value: c.heartbeats.rejected[reason] })),
    );
    const r = c.sessions;
    if (!r) return;
    const replicated = { sent: r.sent, received: r.received, installed: r.installed, unknown_listener: r.unknownListener, unknown_backend: r.unknownBackend, dropped: r.dropped };
    writeFamily(
      out,
      'lb4_cluster_sessions_replicated_total',
      'counter',
      'UDP session changes sent to the peer, received from it, installed as hints, received for a listener or backend this node lacks, and dropped unsent',
      Object.entries(replicated).map(([what, value]) => ({ labels: [['change', what]], value })),
    );
    writeFamily(out, 'lb4_cluster_session_hints', 'gauge', "The peer's UDP sessions held as hints for new sessions", [{ labels: [], value: r.hints }]);
    writeFamily(
      out,
      'lb4_cluster_session_batches_rejected_total',
      'counter',
      'Session batches from the peer dropped, by reason',
      batchRejectReasons.map((reason) => ({ labels: [['reason', reason]], value: r.rejected[reason] })),
    );
  }

  #counterSamples<T extends { readonly counters: BalancerStats['listeners'][number]['counters'] }>(family: CounterFamily, rows: readonly T[], labels: (row: T) => Labels) {
    return rows.flatMap((row) =>
      family.members.map((m) => ({
        labels: m.label ? [...labels(row), m.label] : labels(row),
        // Indexed by name: a counter the addon has but this build's types do not know reads as 0.
        value: (row.counters as Readonly<Record<string, number>>)[m.counter] ?? 0,
      })),
    );
  }
}
