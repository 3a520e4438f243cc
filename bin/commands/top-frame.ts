// One frame of `lb4 top`, from two samples of the admin API taken a known time apart: rates are
// counter deltas over that time. Pure, so the rates and the layout are tested without a terminal.

import { formatUptime, table, type BackendRow } from './admin-client.js';

/** What `lb4 top` reads from the admin API once per interval. */
export interface TopSample {
  /** Monotonic milliseconds when the sample was asked for. */
  readonly at: number;
  readonly status: {
    version: string;
    uptimeSeconds: number;
    backends: { total: number; up: number; down: number; draining: number; maintenance: number };
    openFlows: number;
  };
  readonly listeners: ReadonlyArray<{ name: string; address: string; port: number; counters: Record<string, number> }>;
  readonly backends: readonly BackendRow[];
  /** The HA node's status; null when the balancer is not one of a pair. */
  readonly cluster: {
    node: { id: string; state: string; priority: number };
    peer: { up: boolean; id: string | null; state: string | null; address: string; port: number };
    vips: ReadonlyArray<{ address: string; held: boolean }>;
  } | null;
}

export interface Rates {
  /** Flows (TCP) and sessions (UDP) opened per second. */
  readonly flows: number;
  /** Bytes per second from clients to backends. */
  readonly in: number;
  /** Bytes per second from backends to clients. */
  readonly out: number;
}

const get = (counters: Record<string, number> | undefined, name: string): number => counters?.[name] ?? 0;
const opened = (c: Record<string, number> | undefined) => get(c, 'flows_total') + get(c, 'sessions_total');
/** Flows open now, and UDP sessions: both are what a listener or backend is carrying. */
export const activeOf = (c: Record<string, number> | undefined) => get(c, 'flows_active') + get(c, 'sessions_active');

/**
 * Per-second rates between two counter sets; null when there is no earlier one, or a counter went
 * down (a backend removed and added again starts from zero: no rate for that one interval).
 */
export function rates(before: Record<string, number> | undefined, after: Record<string, number> | undefined, seconds: number): Rates | null {
  if (before === undefined || after === undefined || seconds <= 0) return null;
  const delta = (a: number, b: number) => (b >= a ? (b - a) / seconds : Number.NaN);
  const r = { flows: delta(opened(before), opened(after)), in: delta(get(before, 'bytes_to_backend'), get(after, 'bytes_to_backend')), out: delta(get(before, 'bytes_to_client'), get(after, 'bytes_to_client')) };
  return Number.isNaN(r.flows + r.in + r.out) ? null : r;
}

/** Bytes per second as a person reads them: 0 B/s, 512 B/s, 1.5 KiB/s, 12 MiB/s. */
export function formatBytesPerSecond(n: number): string {
  const units = ['B/s', 'KiB/s', 'MiB/s', 'GiB/s'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(n < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
}

function formatRate(n: number): string {
  return n < 10 ? n.toFixed(1) : n.toFixed(0);
}

const hostPort = (address: string, port: number) => `${address.includes(':') ? `[${address}]` : address}:${port}`;
const backendKey = (b: BackendRow) => `${b.listener}\u0000${b.id}`;

/** The state an operator reads first: the one they set unless it is up, then what health checks say. */
function condition(b: BackendRow): string {
  if (b.state !== 'up') return b.state;
  return b.health === 'down' ? 'down' : 'up';
}

function rateCells(r: Rates | null): string[] {
  return r === null ? ['-', '-', '-'] : [formatRate(r.flows), formatBytesPerSecond(r.in), formatBytesPerSecond(r.out)];
}

/** The frame: a summary line, the HA pair when there is one, the listeners, the backends. */
export function topFrame(before: TopSample | null, now: TopSample, footer: string): string {
  const seconds = before === null ? 0 : (now.at - before.at) / 1000;
  const s = now.status;
  const b = s.backends;
  const lines = [
    `lb4 ${s.version}  up ${formatUptime(s.uptimeSeconds)}  backends: ${b.up} up, ${b.down} down, ${b.draining} draining, ${b.maintenance} maintenance  open flows: ${s.openFlows}  ${footer}`,
  ];
  if (now.cluster !== null) {
    const { node, peer, vips } = now.cluster;
    const peerText = peer.up ? `${peer.id ?? '?'} ${peer.state ?? '?'}` : `${hostPort(peer.address, peer.port)} not heard`;
    const held = vips.filter((v) => v.held).map((v) => v.address);
    lines.push(`HA: ${node.id} ${node.state} (priority ${node.priority}); peer ${peerText}; VIPs held: ${held.join(', ') || 'none'}`);
  }
  const earlierListeners = new Map(before?.listeners.map((l) => [l.name, l.counters]));
  lines.push(
    '',
    table([
      ['LISTENER', 'ADDRESS', 'ACTIVE', 'FLOWS/S', 'IN/S', 'OUT/S'],
      ...now.listeners.map((l) => [l.name, hostPort(l.address, l.port), String(activeOf(l.counters)), ...rateCells(rates(earlierListeners.get(l.name), l.counters, seconds))]),
    ]),
  );
  const earlierBackends = new Map(before?.backends.map((x) => [backendKey(x), x.counters]));
  lines.push(
    '',
    table([
      ['LISTENER', 'BACKEND', 'ADDRESS', 'STATE', 'HEALTH', 'WEIGHT', 'ACTIVE', 'FLOWS/S', 'IN/S', 'OUT/S', 'REASON'],
      ...now.backends.map((x) => [
        x.listener,
        x.id,
        x.address,
        condition(x),
        x.health,
        x.effectiveWeight === x.weight ? String(x.weight) : `${x.effectiveWeight}/${x.weight}`,
        String(activeOf(x.counters)),
        ...rateCells(rates(earlierBackends.get(backendKey(x)), x.counters, seconds)),
        x.healthReason ?? '',
      ]),
    ]),
  );
  return lines.join('\n');
}
