// The admin API's endpoints, as one table (`routes` below): path, method, the query parameters
// each accepts, and the handler. Handlers check the shape of what arrives over HTTP (JSON types,
// known fields, known query parameters) and leave the values to the target, which validates them
// as it does for a program calling it directly, so an HTTP client gets the same error a library
// caller would. Unknown fields and query parameters are refused: a mistyped `?listner=` on a
// DELETE must not quietly remove a backend from every listener.
//
//   GET    /                      200 {name, version, endpoints}; a browser gets the dashboard (server.ts)
//   GET    /status                200 {version, uptimeSeconds, workers, listeners, backends: {total,
//                                     up, down, draining, maintenance, takingNewFlows}, openFlows,
//                                     droppedEvents}
//   GET    /listeners             200 [{name, address, port, family, listen, algorithm, health,
//                                     backends, counters}]
//   GET    /backends              200 [BackendInfo + counters]            ?listener=
//   POST   /backends              201 [BackendInfo] + Location            ?listener=; body {address,
//                                     weight?, id?, state?, listener?}
//   GET    /backends/:id          200 [BackendInfo + counters], one per listener   ?listener=
//   DELETE /backends/:id          204 (no body: the backend is gone)      ?listener= ?drainTimeout=
//   PUT    /backends/:id/weight   200 [BackendInfo]                       ?listener=; body {weight}
//   PUT    /backends/:id/state    200 [BackendInfo]    ?listener= ?drainTimeout=; body {state, drainTimeout?}
//   POST   /backends/:id/drain    200 [BackendInfo]    ?listener= ?drainTimeout=; body {drainTimeout?} or none
//   POST   /backends/:id/enable   200 [BackendInfo]                       ?listener=
//   GET    /connections           200 {items, offset, limit, next}        ?listener= ?backend= ?limit= ?offset=
//   POST   /reload                200 ReloadSummary; body: new options, or none to re-read the file
//   GET    /cluster               200 the HA node's ClusterStatus; 404: not a cluster node
//   GET    /metrics               200 Prometheus text format 0.0.4
// Errors are `{ "error": { "code", "message", "field"? } }` with the status from lib/errors.ts:
// 400 bad input (LB4_BAD_JSON, LB4_INVALID_*), 401 token, 404 unknown backend or endpoint, 405 (Allow),
// 409 duplicate backend, a weight or id a DNS entry owns (LB4_DNS_OWNED) or an address lb4 cannot listen on, 413 body over 1 MiB, 431 URL or headers
// over 16 KiB (server.ts), 500 unexpected, 503 balancer closed.

import { Lb4Error } from '../errors.js';
import type { BackendInfo, BackendOptions, BackendScope, BackendState, BalancerOptions, BalancerStats } from '../types.js';
import type { MetricsCollector } from './metrics.js';
import type { AdminTarget } from './target.js';
import { showValue } from '../config/show-value.js';

/** What every handler can reach. */
export interface AdminContext {
  readonly target: AdminTarget;
  readonly version: string;
  readonly metrics: MetricsCollector;
}

/** One request as a handler sees it. */
export interface AdminRequest {
  readonly ctx: AdminContext;
  /** The backend id from `/backends/:id...`, percent-decoded. */
  readonly id: string;
  readonly query: URLSearchParams;
  /** The JSON body; `undefined` when there is none. */
  body(): Promise<unknown>;
}

/** A handler's answer: JSON (no `json`: no body), or text with its content type. */
export type Reply =
  | { readonly status: number; readonly json?: unknown; readonly headers?: Readonly<Record<string, string>> }
  | { readonly status: number; readonly text: string; readonly contentType: string };

/** One method on one path. */
export interface Handler {
  /** The query parameters it accepts; any other is an error. */
  readonly query: readonly string[];
  run(req: AdminRequest): Promise<Reply> | Reply;
}

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

interface Route {
  readonly path: string; // segments; `:id` matches one (a backend id)
  readonly methods: Readonly<Partial<Record<Method, Handler>>>;
}

/** Page size for /connections when none is asked, the most one page may hold, the deepest page. */
export const defaultPageSize = 100;
export const maxPageSize = 1000;
export const maxOffset = 1_000_000;

const prometheusContentType = 'text/plain; version=0.0.4; charset=utf-8';

// --- request shape helpers ---------------------------------------------------------------------

type JsonObject = Record<string, unknown>;

function invalid(field: string, message: string): Lb4Error {
  return new Lb4Error('LB4_INVALID_OPTION', message, { field });
}

const describe = showValue;

/** The body as an object with only `known` fields; an absent body is `{}` unless `required`. */
function objectBody(value: unknown, known: readonly string[], required: boolean): JsonObject {
  if (value === undefined) {
    if (required) throw invalid('body', `a JSON object is required, with ${known.join(', ')}`);
    return {};
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid('body', `must be a JSON object, got ${describe(value)}`);
  const body = value as JsonObject;
  for (const key of Object.keys(body)) {
    if (!known.includes(key)) throw invalid(key, known.length > 0 ? `unknown field (known: ${known.join(', ')})` : 'unknown field (this endpoint takes none)');
  }
  return body;
}

function stringField(body: JsonObject, key: string, required: true): string;
function stringField(body: JsonObject, key: string, required: false): string | undefined;
function stringField(body: JsonObject, key: string, required: boolean): string | undefined {
  const value = body[key];
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'string') throw invalid(key, `must be a string, got ${describe(value)}`);
  return value;
}

function numberField(body: JsonObject, key: string, required: true): number;
function numberField(body: JsonObject, key: string, required: false): number | undefined;
function numberField(body: JsonObject, key: string, required: boolean): number | undefined {
  const value = body[key];
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'number') throw invalid(key, `must be a number, got ${describe(value)}`);
  return value;
}

/** A duration as the target takes it: milliseconds or a string such as `5s`. */
function durationField(body: JsonObject, key: string): number | string | undefined {
  const value = body[key];
  if (value === undefined || typeof value === 'number' || typeof value === 'string') return value;
  throw invalid(key, `must be a duration such as "5s" or a number of milliseconds, got ${describe(value)}`);
}

/** One query parameter, or undefined; an empty value is refused rather than read as "all". */
function queryParam(query: URLSearchParams, name: string): string | undefined {
  const value = query.get(name);
  if (value === null) return undefined;
  if (value === '') throw invalid(name, 'must not be empty');
  return value;
}

function wholeParam(query: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const text = queryParam(query, name);
  if (text === undefined) return fallback;
  if (!/^\d{1,9}$/.test(text) || Number(text) < min || Number(text) > max) throw invalid(name, `must be a whole number from ${min} to ${max}, got "${text.slice(0, 40)}"`);
  return Number(text);
}

/** `?listener=`, and the body's `listener` where the body may name one too (not both, unless they agree). */
function scopeOf(query: URLSearchParams, body: JsonObject = {}): BackendScope {
  const fromQuery = queryParam(query, 'listener');
  const fromBody = stringField(body, 'listener', false);
  if (fromQuery !== undefined && fromBody !== undefined && fromQuery !== fromBody) {
    throw invalid('listener', `the query says "${fromQuery}" and the body says "${fromBody}"`);
  }
  const listener = fromQuery ?? fromBody;
  return listener === undefined ? {} : { listener };
}

/** `drainTimeout` from the body or the query (e.g. `?drainTimeout=2s`), not both. */
function drainTimeoutOf(query: URLSearchParams, body: JsonObject = {}): { drainTimeout?: number | string } {
  const fromBody = durationField(body, 'drainTimeout');
  const fromQuery = queryParam(query, 'drainTimeout');
  if (fromBody !== undefined && fromQuery !== undefined) throw invalid('drainTimeout', 'give it in the body or in the query, not both');
  const drainTimeout = fromBody ?? fromQuery;
  return drainTimeout === undefined ? {} : { drainTimeout };
}

// --- handlers ----------------------------------------------------------------------------------

type BackendStats = BalancerStats['backends'][number];

/**
 * A backend's condition as an operator reads it: the state they set unless it is `up`, then
 * what health checks say. A backend that is up with weight 0 counts as up (its weight is the
 * operator's choice); `takingNewFlows` counts what really takes flows.
 */
function condition(b: BackendInfo): BackendState {
  if (b.state !== 'up') return b.state;
  return b.health === 'down' ? 'down' : 'up';
}

function status({ ctx }: AdminRequest): Reply {
  const { target } = ctx;
  const stats = target.stats();
  const backends = { total: stats.backends.length, up: 0, down: 0, draining: 0, maintenance: 0, takingNewFlows: 0 };
  for (const b of stats.backends) {
    backends[condition(b)]++;
    if (b.takesNewFlows) backends.takingNewFlows++;
  }
  return {
    status: 200,
    json: {
      version: ctx.version,
      uptimeSeconds: target.uptimeSeconds,
      workers: target.config.workers,
      listeners: stats.listeners.length,
      backends,
      openFlows: stats.listeners.reduce((n, l) => n + l.counters.flows_active, 0),
      droppedEvents: stats.droppedEvents,
    },
  };
}

function listeners({ ctx }: AdminRequest): Reply {
  const stats = ctx.target.stats();
  const configs = new Map(ctx.target.config.listeners.map((l) => [l.name, l]));
  return {
    status: 200,
    json: stats.listeners.map((l) => {
      const config = configs.get(l.name);
      return {
        name: l.name,
        address: l.address,
        port: l.port,
        family: l.family,
        listen: config?.listen ?? null,
        algorithm: config?.algorithm ?? null,
        health: config?.health ?? null,
        backends: stats.backends.filter((b) => b.listener === l.name).length,
        counters: l.counters,
      };
    }),
  };
}

/** Backends with their counters, of one listener when `scope` names one (an unknown one is the target's error). */
function backendStats(target: AdminTarget, scope: BackendScope): BackendStats[] {
  if (scope.listener !== undefined) target.backends(scope);
  return target.stats().backends.filter((b) => scope.listener === undefined || b.listener === scope.listener);
}

function listBackends({ ctx, query }: AdminRequest): Reply {
  return { status: 200, json: backendStats(ctx.target, scopeOf(query)) };
}

function getBackend({ ctx, query, id }: AdminRequest): Reply {
  const all = backendStats(ctx.target, scopeOf(query));
  const found = all.filter((b) => b.id === id);
  if (found.length === 0) {
    const known = [...new Set(all.map((b) => b.id))].join(', ') || 'none';
    throw new Lb4Error('LB4_UNKNOWN_BACKEND', `no backend "${id}" (known: ${known})`, { field: 'id' });
  }
  return { status: 200, json: found };
}

async function addBackend({ ctx, query, body }: AdminRequest): Promise<Reply> {
  const fields = objectBody(await body(), ['address', 'weight', 'id', 'state', 'listener'], true);
  const backend: BackendOptions = { address: stringField(fields, 'address', true) };
  const weight = numberField(fields, 'weight', false);
  const id = stringField(fields, 'id', false);
  // The target checks the value against the states it knows.
  const state = stringField(fields, 'state', false) as BackendState | undefined;
  if (weight !== undefined) backend.weight = weight;
  if (id !== undefined) backend.id = id;
  if (state !== undefined) backend.state = state;
  const added = await ctx.target.addBackend(backend, scopeOf(query, fields));
  const location = added[0] ? { location: `/backends/${encodeURIComponent(added[0].id)}` } : undefined;
  return { status: 201, json: added, headers: location };
}

async function removeBackend({ ctx, query, id }: AdminRequest): Promise<Reply> {
  await ctx.target.removeBackend(id, { ...scopeOf(query), ...drainTimeoutOf(query) });
  return { status: 204 };
}

async function setWeight({ ctx, query, id, body }: AdminRequest): Promise<Reply> {
  const fields = objectBody(await body(), ['weight'], true);
  return { status: 200, json: await ctx.target.setBackendWeight(id, numberField(fields, 'weight', true), scopeOf(query)) };
}

async function setState({ ctx, query, id, body }: AdminRequest): Promise<Reply> {
  const fields = objectBody(await body(), ['state', 'drainTimeout'], true);
  const state = stringField(fields, 'state', true) as BackendState;
  return { status: 200, json: await ctx.target.setBackendState(id, state, { ...scopeOf(query), ...drainTimeoutOf(query, fields) }) };
}

async function drain({ ctx, query, id, body }: AdminRequest): Promise<Reply> {
  const fields = objectBody(await body(), ['drainTimeout'], false);
  return { status: 200, json: await ctx.target.setBackendState(id, 'draining', { ...scopeOf(query), ...drainTimeoutOf(query, fields) }) };
}

async function enable({ ctx, query, id, body }: AdminRequest): Promise<Reply> {
  objectBody(await body(), [], false);
  return { status: 200, json: await ctx.target.setBackendState(id, 'up', scopeOf(query)) };
}

async function connections({ ctx, query }: AdminRequest): Promise<Reply> {
  // Both bounded: the engine snapshots offset + limit + 1 flows, never an impossible count.
  const limit = Math.min(wholeParam(query, 'limit', defaultPageSize, 1, 1_000_000), maxPageSize);
  const offset = wholeParam(query, 'offset', 0, 0, maxOffset);
  const listener = queryParam(query, 'listener');
  const backend = queryParam(query, 'backend');
  // The engine has no cursor: a page is the tail of a snapshot of offset + limit flows, and
  // one more tells whether there is a next page.
  const flows = await ctx.target.connections({
    ...(listener === undefined ? {} : { listener }),
    ...(backend === undefined ? {} : { backend }),
    limit: offset + limit + 1,
  });
  return { status: 200, json: { items: flows.slice(offset, offset + limit), offset, limit, next: flows.length > offset + limit ? offset + limit : null } };
}

async function reload({ ctx, body }: AdminRequest): Promise<Reply> {
  const options = await body();
  if (options === undefined) return { status: 200, json: await ctx.target.reload() };
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw invalid('body', `must be a JSON object of options, or empty to re-read the config file; got ${describe(options)}`);
  }
  // The target validates every option and names the field of the first bad one.
  return { status: 200, json: await ctx.target.reload(options as BalancerOptions) };
}

function metrics({ ctx }: AdminRequest): Reply {
  return { status: 200, text: ctx.metrics.render(), contentType: prometheusContentType };
}

function cluster({ ctx }: AdminRequest): Reply {
  const json = ctx.target.clusterStatus();
  if (json === null) throw new Lb4Error('LB4_NOT_FOUND', 'this lb4 is not a cluster node (start it with --peer)');
  return { status: 200, json };
}

function index({ ctx }: AdminRequest): Reply {
  const endpoints = routes.flatMap((r) => Object.keys(r.methods).map((m) => `${m} ${r.path}`));
  return { status: 200, json: { name: 'lb4', version: ctx.version, endpoints }, headers: { vary: 'Accept' } };
}

// --- the table ---------------------------------------------------------------------------------

const routes: readonly Route[] = [
  { path: '/', methods: { GET: { query: [], run: index } } },
  { path: '/status', methods: { GET: { query: [], run: status } } },
  { path: '/listeners', methods: { GET: { query: [], run: listeners } } },
  {
    path: '/backends',
    methods: {
      GET: { query: ['listener'], run: listBackends },
      POST: { query: ['listener'], run: addBackend },
    },
  },
  {
    path: '/backends/:id',
    methods: {
      GET: { query: ['listener'], run: getBackend },
      DELETE: { query: ['listener', 'drainTimeout'], run: removeBackend },
    },
  },
  { path: '/backends/:id/weight', methods: { PUT: { query: ['listener'], run: setWeight } } },
  { path: '/backends/:id/state', methods: { PUT: { query: ['listener', 'drainTimeout'], run: setState } } },
  { path: '/backends/:id/drain', methods: { POST: { query: ['listener', 'drainTimeout'], run: drain } } },
  { path: '/backends/:id/enable', methods: { POST: { query: ['listener'], run: enable } } },
  { path: '/connections', methods: { GET: { query: ['listener', 'backend', 'limit', 'offset'], run: connections } } },
  { path: '/reload', methods: { POST: { query: [], run: reload } } },
  { path: '/cluster', methods: { GET: { query: [], run: cluster } } },
  { path: '/metrics', methods: { GET: { query: [], run: metrics } } },
];

const compiled = routes.map((r) => ({ route: r, segments: r.path.split('/').filter((s) => s !== '') }));

/** What a method and path lead to. */
export type RouteMatch =
  | { readonly kind: 'found'; readonly handler: Handler; readonly id: string }
  | { readonly kind: 'wrong-method'; readonly allow: readonly string[] }
  | { readonly kind: 'not-found' };

/**
 * Finds the handler for `method` on `pathname` (without the query). HEAD is answered like GET
 * (Node leaves the body out). A malformed percent-escape in an id is an Lb4Error.
 */
export function matchRoute(method: string, pathname: string): RouteMatch {
  // One trailing slash is forgiven; empty segments are not (an id is never empty).
  const trimmed = pathname.length > 1 && pathname.endsWith('/') ? pathname.slice(0, -1) : pathname;
  const parts = trimmed === '/' ? [] : trimmed.slice(1).split('/');
  for (const { route, segments } of compiled) {
    if (segments.length !== parts.length) continue;
    if (!segments.every((s, i) => (s === ':id' ? parts[i] !== '' : s === parts[i]))) continue;
    const at = segments.indexOf(':id');
    let id = '';
    if (at >= 0) {
      try {
        id = decodeURIComponent(parts[at]);
      } catch {
        throw invalid('id', `"${parts[at]}" is not a valid percent-encoded backend id`);
      }
    }
    const handler = route.methods[(method === 'HEAD' ? 'GET' : method) as Method];
    if (handler) return { kind: 'found', handler, id };
    const allow = Object.keys(route.methods).flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m]));
    return { kind: 'wrong-method', allow };
  }
  return { kind: 'not-found' };
}

/** Refuses query parameters the handler does not take, and repeated ones. */
export function checkQuery(handler: Handler, query: URLSearchParams): void {
  for (const name of new Set(query.keys())) {
    if (!handler.query.includes(name)) {
      const known = handler.query.length > 0 ? `known: ${handler.query.join(', ')}` : 'this endpoint takes none';
      throw invalid(name, `unknown query parameter (${known})`);
    }
    if (query.getAll(name).length > 1) throw invalid(name, 'given more than once');
  }
}
