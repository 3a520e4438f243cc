// Every metric the bench reports, declared once: the tables, the ratios, the chart and the
// JSON all read this list.

/**
 * @typedef {object} Metric
 * @property {string} key
 * @property {string} label
 * @property {string} unit
 * @property {'higher' | 'lower'} better
 * @property {number} digits decimals in tables
 * @property {string} scenario
 * @property {boolean} [proxyOnly] meaningless for `direct` (no proxy process)
 */

/** @type {Metric[]} */
export const metrics = [
  { key: 'tput_up_1', label: 'throughput, 1 stream, client->backend', unit: 'Gbit/s', better: 'higher', digits: 2, scenario: 'tcp-throughput' },
  { key: 'tput_down_1', label: 'throughput, 1 stream, backend->client (-R)', unit: 'Gbit/s', better: 'higher', digits: 2, scenario: 'tcp-throughput' },
  { key: 'tput_up_4', label: 'throughput, 4 streams, client->backend', unit: 'Gbit/s', better: 'higher', digits: 2, scenario: 'tcp-throughput' },
  { key: 'tput_down_4', label: 'throughput, 4 streams, backend->client (-R)', unit: 'Gbit/s', better: 'higher', digits: 2, scenario: 'tcp-throughput' },
  { key: 'cpu_up_1', label: 'proxy CPU per GB, 1 stream, client->backend', unit: 'CPU s/GB', better: 'lower', digits: 3, scenario: 'tcp-throughput', proxyOnly: true },
  { key: 'cpu_down_1', label: 'proxy CPU per GB, 1 stream, backend->client', unit: 'CPU s/GB', better: 'lower', digits: 3, scenario: 'tcp-throughput', proxyOnly: true },
  { key: 'cpu_up_4', label: 'proxy CPU per GB, 4 streams, client->backend', unit: 'CPU s/GB', better: 'lower', digits: 3, scenario: 'tcp-throughput', proxyOnly: true },
  { key: 'cpu_down_4', label: 'proxy CPU per GB, 4 streams, backend->client', unit: 'CPU s/GB', better: 'lower', digits: 3, scenario: 'tcp-throughput', proxyOnly: true },
  // The whole machine's busy CPU (/proc/stat: user, nice, system, irq, softirq) over the run, per
  // GB: the same measure for every system, direct included, so the kernel's forwarding work (NAT's
  // softirq time, charged to no process) is counted. It counts the load generator, the backend
  // and anything else running on the machine too: only a quiet machine gives a comparable figure.
  { key: 'mcpu_up_1', label: 'machine CPU per GB (all processes + kernel), 1 stream, client->backend', unit: 'CPU s/GB', better: 'lower', digits: 3, scenario: 'tcp-throughput' },
  { key: 'mcpu_down_1', label: 'machine CPU per GB (all processes + kernel), 1 stream, backend->client', unit: 'CPU s/GB', better: 'lower', digits: 3, scenario: 'tcp-throughput' },
  { key: 'mcpu_up_4', label: 'machine CPU per GB (all processes + kernel), 4 streams, client->backend', unit: 'CPU s/GB', better: 'lower', digits: 3, scenario: 'tcp-throughput' },
  { key: 'mcpu_down_4', label: 'machine CPU per GB (all processes + kernel), 4 streams, backend->client', unit: 'CPU s/GB', better: 'lower', digits: 3, scenario: 'tcp-throughput' },
  { key: 'conn_rate', label: 'new connections/s (HTTP, Connection: close)', unit: 'conn/s', better: 'higher', digits: 0, scenario: 'conn-rate' },
  { key: 'rr16_rps', label: 'requests/s, keep-alive, 16 connections', unit: 'req/s', better: 'higher', digits: 0, scenario: 'request-rate' },
  { key: 'rr16_p50', label: 'latency p50, 16 connections', unit: 'ms', better: 'lower', digits: 3, scenario: 'request-rate' },
  { key: 'rr16_p99', label: 'latency p99, 16 connections', unit: 'ms', better: 'lower', digits: 3, scenario: 'request-rate' },
  { key: 'rr256_rps', label: 'requests/s, keep-alive, 256 connections', unit: 'req/s', better: 'higher', digits: 0, scenario: 'request-rate' },
  { key: 'rr256_p50', label: 'latency p50, 256 connections', unit: 'ms', better: 'lower', digits: 3, scenario: 'request-rate' },
  { key: 'rr256_p99', label: 'latency p99, 256 connections', unit: 'ms', better: 'lower', digits: 3, scenario: 'request-rate' },
  { key: 'dns_qps', label: 'DNS queries/s over UDP (dnsperf -> NSD)', unit: 'query/s', better: 'higher', digits: 0, scenario: 'dns-rate' },
  { key: 'dns_p50', label: 'DNS latency p50', unit: 'ms', better: 'lower', digits: 3, scenario: 'dns-rate' },
  { key: 'dns_p99', label: 'DNS latency p99', unit: 'ms', better: 'lower', digits: 3, scenario: 'dns-rate' },
  { key: 'dns_cpu', label: 'proxy CPU per million datagrams, DNS (query + answer = 2)', unit: 'CPU s/Mdgram', better: 'lower', digits: 2, scenario: 'dns-rate', proxyOnly: true },
  { key: 'udp_dgps', label: 'UDP datagrams/s received, iperf3 -u -b 0, client->backend', unit: 'dgram/s', better: 'higher', digits: 0, scenario: 'udp-bulk' },
  { key: 'udp_loss', label: 'UDP datagrams lost, iperf3 -u -b 0', unit: '%', better: 'lower', digits: 1, scenario: 'udp-bulk' },
  { key: 'udp_cpu', label: 'proxy CPU per million datagrams, iperf3 -u', unit: 'CPU s/Mdgram', better: 'lower', digits: 2, scenario: 'udp-bulk', proxyOnly: true },
  { key: 'idle_mem', label: 'proxy RSS per idle connection held open', unit: 'bytes', better: 'lower', digits: 0, scenario: 'idle-memory', proxyOnly: true },
];

/** @param {number[]} values @returns {number | null} */
export function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/**
 * The best value among the anchors for a metric, by its direction.
 * @param {Metric} metric
 * @param {Array<number | null | undefined>} values
 * @returns {number | null}
 */
export function best(metric, values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x));
  if (v.length === 0) return null;
  return metric.better === 'higher' ? Math.max(...v) : Math.min(...v);
}

/**
 * Whether lb4's ratio to the best anchor favours lb4: 'better', 'worse', or 'tie' when it rounds
 * to 1.00 (the tables show two decimals).
 * @param {Metric} metric
 * @param {number} ratio
 * @returns {'better' | 'worse' | 'tie'}
 */
export function verdict(metric, ratio) {
  if (Math.abs(ratio - 1) < 0.005) return 'tie';
  return (metric.better === 'higher' ? ratio > 1 : ratio < 1) ? 'better' : 'worse';
}
