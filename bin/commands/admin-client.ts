// `lb4 status`, `lb4 backends`, `lb4 backend drain|enable|weight|state`: small clients of a
// running lb4's admin API. They print a short human-readable summary, or the API's JSON with
// --json.

import http from 'node:http';
import { Lb4Error } from '../../lib/errors.js';

/** Flags every admin command takes. */
export interface AdminFlags {
  /** `[host:]port`, `http://host:port` or a unix socket path. */
  admin: string;
  token?: string;
  json?: boolean;
  listener?: string;
}

export interface Target {
  socketPath?: string;
  host?: string;
  port?: number;
}

/** Where the admin commands send their requests: only ever the address the user gave. */
export function parseTarget(admin: string): Target {
  if (admin.startsWith('/') || admin.startsWith('.')) return { socketPath: admin };
  const text = admin.replace(/^http:\/\//, '').replace(/\/$/, '');
  // The host, when there is one, ends at a colon: "9090" is a port on loopback, never the host
  // "909" with port 0 (which the resolver would turn into 0.0.3.141, off this machine).
  const m = /^(?:(?:\[([^\]]+)\]|([^:[\]]*)):)?(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535) {
    throw new Lb4Error('LB4_INVALID_ADDRESS', `"${admin}" is not an admin address ([host:]port with a port from 1 to 65535, http://host:port or a socket path)`, { field: 'admin' });
  }
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

/** The admin API answered with an error status. */
export class AdminApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Calls the admin API; resolves with the parsed JSON body, rejects with its error message (an AdminApiError when it answered). */
export async function callAdmin(flags: AdminFlags, method: string, path: string, body?: unknown): Promise<unknown> {
  const target = parseTarget(flags.admin);
  const token = flags.token ?? process.env.LB4_ADMIN_TOKEN;
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        ...target,
        method,
        path,
        timeout: 10_000,
        headers: {
          ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let parsed: unknown = null;
          try {
            parsed = text ? JSON.parse(text) : null;
          } catch {
            parsed = text;
          }
          if ((res.statusCode ?? 500) >= 400) {
            const e = (parsed as { error?: { message?: string } } | null)?.error;
            reject(new AdminApiError(res.statusCode ?? 500, `admin API answered ${res.statusCode}: ${e?.message ?? text.trim()}`));
          } else resolve(parsed);
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`admin API at ${flags.admin} did not answer within 10s`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') reject(new Error(`no admin API at ${flags.admin} (${err.code}): is lb4 running with --admin?`));
      else reject(err);
    });
    req.end(payload);
  });
}

function print(flags: AdminFlags, value: unknown, human: () => string): void {
  process.stdout.write(flags.json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}

/** Rows as aligned columns, two spaces apart; the first row is the header. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

export const query = (flags: AdminFlags) => (flags.listener ? `?listener=${encodeURIComponent(flags.listener)}` : '');

/** 42s, 5m07s, 3h02m: an uptime at a glance. */
export function formatUptime(seconds: number): string {
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** What GET /status answers (lib/api/routes.ts). */
interface StatusReply {
  version: string;
  uptimeSeconds: number;
  workers: number;
  listeners: number;
  backends: { total: number; up: number; down: number; draining: number; maintenance: number; takingNewFlows: number };
  openFlows: number;
  droppedEvents: number;
}

/** `lb4 status`: a few lines for a person; the API's JSON with --json. */
export async function status(flags: AdminFlags): Promise<void> {
  const s = (await callAdmin(flags, 'GET', '/status')) as StatusReply;
  const b = s.backends;
  print(flags, s, () =>
    [
      `version: ${s.version}`,
      `uptime: ${formatUptime(s.uptimeSeconds)}`,
      `workers: ${s.workers}`,
      `listeners: ${s.listeners}`,
      `open flows: ${s.openFlows}`,
      `backends: ${b.total} (${b.takingNewFlows} taking new flows; ${b.up} up, ${b.down} down, ${b.draining} draining, ${b.maintenance} in maintenance)`,
      ...(s.droppedEvents > 0 ? [`dropped events: ${s.droppedEvents} (the control plane fell behind the data plane)`] : []),
    ].join('\n'),
  );
}

export interface BackendRow {
  id: string;
  listener: string;
  address: string;
  weight: number;
  effectiveWeight: number;
  state: string;
  health: string;
  healthReason?: string | null;
  counters?: Record<string, number>;
}

/** `lb4 backends` (and `--watch`): the table once, or redrawn every interval. */
export async function backends(flags: AdminFlags & { watch?: boolean; interval?: string }): Promise<void> {
  const fetchList = async () => (await callAdmin(flags, 'GET', `/backends${query(flags)}`)) as BackendRow[];
  if (flags.watch) {
    if (flags.json) throw new Lb4Error('LB4_INVALID_OPTION', '--watch draws a table for people; leave out --json, or poll without --watch', { field: 'watch' });
    const { parseInterval, runLiveView } = await import('./live-view.js');
    const intervalMs = parseInterval(flags.interval ?? '1s');
    await runLiveView(async () => backendTable(await fetchList()), intervalMs);
    return;
  }
  if (flags.interval !== undefined) throw new Lb4Error('LB4_INVALID_OPTION', 'only with --watch', { field: 'interval' });
  const list = await fetchList();
  print(flags, list, () => backendTable(list));
}

function backendTable(list: BackendRow[]): string {
  return table([
    ['LISTENER', 'BACKEND', 'ADDRESS', 'WEIGHT', 'STATE', 'HEALTH', 'ACTIVE', 'TOTAL'],
    ...list.map((b) => [
      b.listener,
      b.id,
      b.address,
      b.effectiveWeight === b.weight ? String(b.weight) : `${b.effectiveWeight}/${b.weight}`,
      b.state,
      b.health,
      String(b.counters?.flows_active ?? ''),
      String(b.counters?.flows_total ?? ''),
    ]),
  ]);
}

/** `lb4 backend <action> <id> [value]`. */
export async function backendAction(action: string, id: string, value: string | undefined, flags: AdminFlags & { drainTimeout?: string }): Promise<void> {
  const path = `/backends/${encodeURIComponent(id)}`;
  let result: unknown;
  switch (action) {
    case 'drain':
      result = await callAdmin(flags, 'POST', `${path}/drain${query(flags)}`, flags.drainTimeout ? { drainTimeout: flags.drainTimeout } : undefined);
      break;
    case 'enable':
      result = await callAdmin(flags, 'POST', `${path}/enable${query(flags)}`);
      break;
    case 'weight':
      if (value === undefined || !/^\d+$/.test(value)) throw new Lb4Error('LB4_INVALID_OPTION', `weight needs a whole number, got ${JSON.stringify(value ?? '')}`, { field: 'weight' });
      result = await callAdmin(flags, 'PUT', `${path}/weight${query(flags)}`, { weight: Number(value) });
      break;
    case 'state':
      if (value === undefined) throw new Lb4Error('LB4_INVALID_OPTION', 'state needs one of up, down, draining, maintenance', { field: 'state' });
      result = await callAdmin(flags, 'PUT', `${path}/state${query(flags)}`, { state: value, ...(flags.drainTimeout ? { drainTimeout: flags.drainTimeout } : {}) });
      break;
    default:
      throw new Lb4Error('LB4_INVALID_OPTION', `unknown action "${action}" (known: drain, enable, weight, state)`, { field: 'action' });
  }
  print(flags, result, () => `${action} ${id}: done`);
}
