// The admin HTTP API over real HTTP (127.0.0.1 port 0, and a unix socket), against an in-memory
// AdminTarget, so no data plane is needed: every endpoint, the token, the error mapping, paging,
// and the server's own life (socket files, keep-alive connections on close, process exit). A real
// balancer's admin API is tested in test/integration/control-plane-live.test.ts.

import { execFile, spawn } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import type { BackendInfo, BackendScope, BalancerStats, Connection, ConnectionFilter, Counters, ListenerAddress, ReloadSummary } from '../../lib/types.js';
import type { BalancerEvents } from '../../lib/events.js';
import type { AdminConfig, BackendOptions, BackendState, BalancerConfig, BalancerOptions, ListenerConfig } from '../../lib/types.js';
import { Lb4Error } from '../../lib/errors.js';
import { silentLogger } from '../../lib/log.js';
import { counterNames, type CounterName } from '../../lib/engine/native-types.js';
import { startAdminServer, type AdminServer } from '../../lib/api/server.js';
import type { AdminTarget } from '../../lib/api/target.js';
import type { ClusterStatus } from '../../lib/cluster/cluster-types.js';
import { call, type CallOptions, type Where } from '../helpers/admin-http.js';
import { within } from '../helpers/sockets.js';
import { emptyLatency } from '../../lib/engine/stats.js';

const token = 'correct-horse-battery-staple';
const states: readonly BackendState[] = ['up', 'down', 'draining', 'maintenance'];

function counters(values: Partial<Record<CounterName, number>> = {}): Counters {
  const out = {} as Record<CounterName, number>;
  for (const name of counterNames) out[name] = values[name] ?? 0;
  return out;
}

type FakeBackend = { -readonly [K in keyof BackendInfo]: BackendInfo[K] } & { counters: Counters };

function listenerConfig(name: string, port: number): ListenerConfig {
  return {
    name, listen: `127.0.0.1:${port}`, ip: '127.0.0.1', port, anyInterface: false, freeBind: false, protocol: 'tcp', algorithm: name === 'api' ? 'leastconn' : 'roundrobin', forward: 'proxy', snat: 'none', proxyProtocol: 'none', acceptProxy: [],
    policy: { allow: [], deny: [], maxConnections: 0, maxConnectionsPerSource: 0, connectionRatePerSource: 0, queueSize: 0, queueTimeout: 5000 }, sni: null, defaultPool: null, pools: [], backends: [], discover: [], health: null,
  };
}

/**
 * An in-memory balancer: two listeners (web, api), backends a and b in both, and `flows` open
 * flows. It validates roughly what the real one does, with the same error codes and fields.
 */
class FakeTarget extends EventEmitter<BalancerEvents> implements AdminTarget {
  config: BalancerConfig = Object.freeze({
    listeners: Object.freeze([listenerConfig('web', 8080), listenerConfig('api', 8081)]),
    workers: 4,
    connectTimeoutMs: 5000,
    idleTimeoutMs: 300_000,
    proxyHeaderTimeoutMs: 5000,
    sniTimeoutMs: 5000,
    retries: 2,
    drainTimeoutMs: 10_000,
    pipeSize: 0,
    slowStartMs: 0,
    passiveFailures: 3,
    passiveRetryMs: 5000,
    udpIdleTimeoutMs: 30_000,
    udpResponses: 0,
    udpMaxSessions: 16384,
    udpMaxDatagram: 65535,
    hashKey: 'address',
    forward: 'proxy',
    snat: 'none',
    admin: null,
    accessLog: null,
    cluster: null,
    natTable: 'lb4',
    dnsServers: [],
    dnsIntervalMs: 30_000,
    dnsMinIntervalMs: 1000,
    dnsTimeoutMs: 2000,
    udpProxyHeader: 'first',
  });
  uptimeSeconds = 42.5;
  closed = false;
  cluster: ClusterStatus | null = null;
  clusterStatus(): ClusterStatus | null {
    return this.cluster;
  }
  droppedEvents = 3;
  addressList: ListenerAddress[] = [
    { name: 'web', address: '127.0.0.1', port: 8080, family: 'IPv4' },
    { name: 'api', address: '127.0.0.1', port: 8081, family: 'IPv4' },
  ];
  listenerCounters: Record<string, Counters> = {
    web: counters({ flows_active: 5, flows_total: 100, bytes_to_backend: 1000, bytes_to_client: 5000 }),
    api: counters({ flows_active: 2, flows_total: 7 }),
  };
  records: FakeBackend[] = [];
  flows: Connection[] = [];
  /** Every call that changes something, for the tests to check what arrived. */
  calls: Array<{ method: string; args: unknown[] }> = [];

  constructor(flowCount = 0) {
    super();
    for (const listener of ['web', 'api']) {
      this.#push(listener, 'a', '127.0.0.1:9001', 1);
      this.#push(listener, 'b', '127.0.0.1:9002', 2);
    }
    this.records[1].health = 'down';
    this.records[1].takesNewFlows = false;
    this.records[3].state = 'maintenance';
    this.records[3].takesNewFlows = false;
    for (let i = 0; i < flowCount; i++) {
      this.flows.push({
        id: i,
        protocol: 'tcp',
        listener: i % 2 === 0 ? 'web' : 'api',
        worker: i % 4,
        state: 'established',
        client: `127.0.0.1:${40000 + i}`,
        backend: 'a',
        backendAddress: '127.0.0.1:9001',
        startedAt: new Date(1_700_000_000_000 + i),
        bytesToBackend: i,
        bytesToClient: 2 * i,
      });
    }
  }

  #push(listener: string, id: string, address: string, weight: number, state: BackendState = 'up'): FakeBackend {
    const [ip, port] = address.split(':');
    const record: FakeBackend = {
      id,
      pool: null,
      listener,
      address,
      ip,
      port: Number(port),
      weight,
      effectiveWeight: weight,
      state,
      health: 'unchecked',
      healthReason: null,
      takesNewFlows: state === 'up' && weight > 0,
      counters: counters({ flows_active: weight, connect_failures: 3 * weight }),
    };
    this.records.push(record);
    return record;
  }

  #assertOpen(): void {
    if (this.closed) throw new Lb4Error('LB4_CLOSED', 'the balancer is closed');
  }

  #listenerNames(scope: BackendScope): string[] {
    if (scope.listener === undefined) return this.addressList.map((l) => l.name);
    if (!this.addressList.some((l) => l.name === scope.listener)) {
      throw new Lb4Error('LB4_INVALID_OPTION', `no listener "${scope.listener}"`, { field: 'listener' });
    }
    return [scope.listener];
  }

  #find(id: string, scope: BackendScope): FakeBackend[] {
    const names = this.#listenerNames(scope);
    const found = this.records.filter((b) => b.id === id && names.includes(b.listener));
    if (found.length === 0) throw new Lb4Error('LB4_UNKNOWN_BACKEND', `no backend "${id}"`, { field: 'id' });
    return found;
  }

  #info(b: FakeBackend): BackendInfo {
    const { counters: _, ...info } = b;
    return { ...info };
  }

  addresses(): readonly ListenerAddress[] {
    return this.addressList;
  }

  backends(scope: BackendScope = {}): BackendInfo[] {
    const names = this.#listenerNames(scope);
    return this.records.filter((b) => names.includes(b.listener)).map((b) => this.#info(b));
  }

  stats(): BalancerStats {
    return {
      listeners: this.addressList.map((l) => ({ ...l, counters: this.listenerCounters[l.name] })),
      backends: this.records.map((b) => ({ ...this.#info(b), counters: b.counters, latency: emptyLatency(), transitions: { up: 0, down: 0, lastChange: new Date(0) } })),
      droppedEvents: this.droppedEvents,
    };
  }

  async addBackend(backend: string | BackendOptions, scope: BackendScope = {}): Promise<BackendInfo[]> {
    this.#assertOpen();
    this.calls.push({ method: 'addBackend', args: [backend, scope] });
    const opts = typeof backend === 'string' ? { address: backend } : backend;
    if (!/^\d+\.\d+\.\d+\.\d+:\d+$/.test(opts.address)) throw new Lb4Error('LB4_INVALID_ADDRESS', `"${opts.address}" is not host:port`, { field: 'backend.address' });
    const id = opts.id ?? opts.address;
    const names = this.#listenerNames(scope);
    for (const name of names) {
      if (this.records.some((b) => b.listener === name && b.id === id)) throw new Lb4Error('LB4_DUPLICATE_BACKEND', `backend "${id}" exists already in listener "${name}"`, { field: 'id' });
    }
    return names.map((name) => this.#info(this.#push(name, id, opts.address, opts.weight ?? 1, opts.state)));
  }

  async removeBackend(id: string, scope: BackendScope & { drainTimeout?: number | string } = {}): Promise<void> {
    this.#assertOpen();
    this.calls.push({ method: 'removeBackend', args: [id, scope] });
    const gone = this.#find(id, scope);
    this.records = this.records.filter((b) => !gone.includes(b));
  }

  async setBackendWeight(id: string, weight: number, scope: BackendScope = {}): Promise<BackendInfo[]> {
    this.#assertOpen();
    if (!Number.isInteger(weight) || weight < 0 || weight > 1_000_000) {
      throw new Lb4Error('LB4_INVALID_OPTION', `must be a whole number from 0 to 1000000, got ${weight}`, { field: 'weight' });
    }
    return this.#find(id, scope).map((b) => {
      b.weight = b.effectiveWeight = weight;
      return this.#info(b);
    });
  }

  async setBackendState(id: string, state: BackendState, scope: BackendScope & { drainTimeout?: number | string } = {}): Promise<BackendInfo[]> {
    this.#assertOpen();
    this.calls.push({ method: 'setBackendState', args: [id, state, scope] });
    if (!states.includes(state)) throw new Lb4Error('LB4_INVALID_OPTION', `must be one of ${states.join(', ')}, got ${JSON.stringify(state)}`, { field: 'state' });
    return this.#find(id, scope).map((b) => {
      b.state = state;
      b.takesNewFlows = state === 'up' && b.health !== 'down' && b.weight > 0;
      return this.#info(b);
    });
  }

  async connections(filter: ConnectionFilter = {}): Promise<Connection[]> {
    this.calls.push({ method: 'connections', args: [filter] });
    if (filter.listener === 'explode') throw new Error('secret internal detail');
    if (filter.listener !== undefined) this.#listenerNames(filter);
    return this.flows
      .filter((f) => (filter.listener === undefined || f.listener === filter.listener) && (filter.backend === undefined || f.backend === filter.backend))
      .slice(0, filter.limit ?? 1000);
  }

  /** When set, reload() tells it has been reached, then waits: a request still being handled. */
  reloadGate: { reached(): void; release: Promise<void> } | null = null;

  async reload(options?: BalancerOptions): Promise<ReloadSummary> {
    this.#assertOpen();
    this.calls.push({ method: 'reload', args: [options] });
    if (this.reloadGate) {
      this.reloadGate.reached();
      await this.reloadGate.release;
    }
    if (options !== undefined && options.workers !== undefined && typeof options.workers !== 'number') {
      throw new Lb4Error('LB4_INVALID_OPTION', `must be a whole number, got ${JSON.stringify(options.workers)}`, { field: 'workers' });
    }
    if (options?.workers !== undefined) this.config = Object.freeze({ ...this.config, workers: options.workers as number });
    return { listenersAdded: [], listenersRemoved: [], backendsAdded: ['web/c'], backendsRemoved: [], backendsChanged: [], policyChanged: [], needsRestart: options?.workers !== undefined ? ['workers'] : [] };
  }
}

async function start(t: { teardown(fn: () => unknown): void }, config: Partial<AdminConfig> = {}, target = new FakeTarget()) {
  const admin = await startAdminServer(target, { kind: 'tcp', host: '127.0.0.1', ip: '127.0.0.1', port: 0, token: null, maxConnections: 256, ...config } as AdminConfig, silentLogger());
  t.teardown(() => admin.close());
  const where: Where = { port: Number(new URL(admin.url).port) };
  return { admin, target, where, call: (method: string, path: string, options?: CallOptions) => call(where, method, path, options) };
}

t.test('the server listens on 127.0.0.1 port 0 and reports the real port', async (t) => {
  const { admin, target, call } = await start(t);
  t.match(admin.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.not(new URL(admin.url).port, '0');
  t.equal(target.listenerCount('health-check'), 1, 'metrics listen to health checks while the server runs');
  const index = await call('GET', '/');
  t.equal(index.status, 200);
  t.ok(index.json.endpoints.includes('DELETE /backends/:id'), 'GET / lists the endpoints from the route table');
  await admin.close();
  await admin.close();
  t.equal(target.listenerCount('health-check'), 0, 'and stop on close');
});

t.test('GET /status', async (t) => {
  const { call } = await start(t);
  const r = await call('GET', '/status');
  t.equal(r.status, 200);
  t.match(r.headers['content-type'], /^application\/json/);
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  t.same(r.json, {
    version: pkg.version,
    uptimeSeconds: 42.5,
    workers: 4,
    listeners: 2,
    // a@web up, b@web health down, a@api up, b@api maintenance.
    backends: { total: 4, up: 2, down: 1, draining: 0, maintenance: 1, takingNewFlows: 2 },
    openFlows: 7,
    droppedEvents: 3,
  });
  const head = await call('HEAD', '/status');
  t.equal(head.status, 200, 'HEAD is answered like GET');
  t.equal(head.text, '', 'without a body');
});

t.test('GET /listeners', async (t) => {
  const { call } = await start(t);
  const r = await call('GET', '/listeners');
  t.equal(r.status, 200);
  t.equal(r.json.length, 2);
  t.match(r.json[0], { name: 'web', address: '127.0.0.1', port: 8080, family: 'IPv4', listen: '127.0.0.1:8080', algorithm: 'roundrobin', health: null, backends: 2 });
  t.equal(r.json[0].counters.flows_total, 100);
  t.same(Object.keys(r.json[0].counters), [...counterNames], 'every counter, by its data-plane name');
  t.equal(r.json[1].algorithm, 'leastconn');
});

t.test('GET /backends, one listener, one backend', async (t) => {
  const { call } = await start(t);
  const all = await call('GET', '/backends');
  t.equal(all.status, 200);
  t.equal(all.json.length, 4);
  t.match(all.json[1], { id: 'b', listener: 'web', health: 'down', takesNewFlows: false, counters: { flows_active: 2, connect_failures: 6 } });
  const api = await call('GET', '/backends?listener=api');
  t.same(api.json.map((b: BackendInfo) => `${b.listener}/${b.id}`), ['api/a', 'api/b']);
  const unknownListener = await call('GET', '/backends?listener=nope');
  t.equal(unknownListener.status, 400);
  t.same(unknownListener.json.error, { code: 'LB4_INVALID_OPTION', message: 'listener: no listener "nope"', field: 'listener' });
  const one = await call('GET', '/backends/a?listener=web');
  t.equal(one.status, 200);
  t.same(one.json.map((b: BackendInfo) => b.listener), ['web']);
  const missing = await call('GET', '/backends/zzz');
  t.equal(missing.status, 404);
  t.equal(missing.json.error.code, 'LB4_UNKNOWN_BACKEND');
  t.match(missing.json.error.message, /no backend "zzz" \(known: a, b\)/);
  const typo = await call('GET', '/backends?listner=web');
  t.equal(typo.status, 400, 'an unknown query parameter is refused, not ignored');
  t.match(typo.json.error, { code: 'LB4_INVALID_OPTION', field: 'listner', message: /unknown query parameter \(known: listener\)/ });
  const twice = await call('GET', '/backends?listener=web&listener=api');
  t.equal(twice.status, 400);
  t.match(twice.json.error.message, /more than once/);
});

t.test('POST /backends', async (t) => {
  const { call, target } = await start(t);
  const r = await call('POST', '/backends', { body: { address: '127.0.0.1:9003', weight: 3, id: 'c', listener: 'web' } });
  t.equal(r.status, 201);
  t.equal(r.headers.location, '/backends/c');
  t.match(r.json, [{ id: 'c', listener: 'web', address: '127.0.0.1:9003', weight: 3, state: 'up' }]);
  t.equal(r.json.length, 1);
  t.same(target.calls.at(-1), { method: 'addBackend', args: [{ address: '127.0.0.1:9003', weight: 3, id: 'c' }, { listener: 'web' }] });

  const everywhere = await call('POST', '/backends?listener=api', { body: { address: '127.0.0.1:9004', state: 'maintenance' } });
  t.equal(everywhere.status, 201);
  t.equal(everywhere.headers.location, `/backends/${encodeURIComponent('127.0.0.1:9004')}`);
  const found = await call('GET', everywhere.headers.location!);
  t.equal(found.status, 200, 'the Location answers');
  t.equal(found.json[0].state, 'maintenance');

  const all = await call('POST', '/backends', { body: { address: '127.0.0.1:9005' } });
  t.same(all.json.map((b: BackendInfo) => b.listener), ['web', 'api'], 'no listener: every listener');

  const duplicate = await call('POST', '/backends', { body: { address: '127.0.0.1:9003', id: 'c', listener: 'web' } });
  t.equal(duplicate.status, 409);
  t.equal(duplicate.json.error.code, 'LB4_DUPLICATE_BACKEND');

  const badAddress = await call('POST', '/backends', { body: { address: 'nowhere' } });
  t.equal(badAddress.status, 400);
  t.same(badAddress.json.error, { code: 'LB4_INVALID_ADDRESS', message: 'backend.address: "nowhere" is not host:port', field: 'backend.address' });

  const cases: Array<[unknown, string, RegExp]> = [
    [undefined, 'body', /a JSON object is required/],
    [[1, 2], 'body', /must be a JSON object, got \[1,2\]/],
    [{ weight: 2 }, 'address', /must be a string, got nothing/],
    [{ address: '127.0.0.1:9006', weight: '2' }, 'weight', /must be a number, got "2"/],
    [{ address: '127.0.0.1:9006', colour: 'red' }, 'colour', /unknown field \(known: address, weight, id, state, listener\)/],
  ];
  for (const [body, field, message] of cases) {
    const bad = await call('POST', '/backends', { body });
    t.equal(bad.status, 400, `${JSON.stringify(body)} is refused`);
    t.match(bad.json.error, { code: 'LB4_INVALID_OPTION', field, message });
  }
  const conflict = await call('POST', '/backends?listener=web', { body: { address: '127.0.0.1:9006', listener: 'api' } });
  t.equal(conflict.status, 400);
  t.equal(conflict.json.error.field, 'listener');
});

t.test('DELETE /backends/:id', async (t) => {
  const { call, target } = await start(t);
  const r = await call('DELETE', '/backends/a?listener=web&drainTimeout=2s');
  t.equal(r.status, 204);
  t.equal(r.text, '');
  t.same(target.calls.at(-1), { method: 'removeBackend', args: ['a', { listener: 'web', drainTimeout: '2s' }] });
  t.same(target.backends().map((b) => `${b.listener}/${b.id}`), ['web/b', 'api/a', 'api/b']);
  const again = await call('DELETE', '/backends/a?listener=web');
  t.equal(again.status, 404);
  t.match(again.json.error, { code: 'LB4_UNKNOWN_BACKEND', field: 'id' });
  const typo = await call('DELETE', '/backends/b?listner=web');
  t.equal(typo.status, 400, 'a mistyped scope removes nothing');
  t.equal(target.backends().length, 3);
  const ids = await call('DELETE', `/backends/${encodeURIComponent('x/y')}`);
  t.match(ids.json.error.message, /no backend "x\/y"/, 'ids are percent-decoded');
  const malformed = await call('DELETE', '/backends/%zz');
  t.equal(malformed.status, 400);
  t.equal(malformed.json.error.field, 'id');
});

t.test('PUT weight and state, POST drain and enable', async (t) => {
  const { call, target } = await start(t);
  const w = await call('PUT', '/backends/b/weight?listener=web', { body: { weight: 7 } });
  t.equal(w.status, 200);
  t.match(w.json, [{ id: 'b', listener: 'web', weight: 7 }]);
  t.equal(w.json.length, 1);
  const negative = await call('PUT', '/backends/b/weight', { body: { weight: -1 } });
  t.equal(negative.status, 400);
  t.same(negative.json.error, { code: 'LB4_INVALID_OPTION', message: 'weight: must be a whole number from 0 to 1000000, got -1', field: 'weight' });
  t.equal((await call('PUT', '/backends/b/weight', { body: {} })).json.error.field, 'weight');
  t.equal((await call('PUT', '/backends/nope/weight', { body: { weight: 1 } })).status, 404);

  const s = await call('PUT', '/backends/a/state', { body: { state: 'maintenance', drainTimeout: '5s' } });
  t.equal(s.status, 200);
  t.same(s.json.map((b: BackendInfo) => b.state), ['maintenance', 'maintenance'], 'both listeners');
  t.same(target.calls.at(-1), { method: 'setBackendState', args: ['a', 'maintenance', { drainTimeout: '5s' }] });
  const badState = await call('PUT', '/backends/a/state', { body: { state: 'sleepy' } });
  t.equal(badState.status, 400);
  t.equal(badState.json.error.field, 'state');
  const badDuration = await call('PUT', '/backends/a/state', { body: { state: 'down', drainTimeout: true } });
  t.equal(badDuration.json.error.field, 'drainTimeout');

  const d = await call('POST', '/backends/a/drain?listener=api', { body: { drainTimeout: 1500 } });
  t.equal(d.status, 200);
  t.match(d.json, [{ listener: 'api', state: 'draining' }]);
  t.same(target.calls.at(-1), { method: 'setBackendState', args: ['a', 'draining', { listener: 'api', drainTimeout: 1500 }] });
  const bare = await call('POST', '/backends/a/drain?drainTimeout=3s');
  t.equal(bare.status, 200, 'drain needs no body');
  t.same(target.calls.at(-1), { method: 'setBackendState', args: ['a', 'draining', { drainTimeout: '3s' }] });
  const both = await call('POST', '/backends/a/drain?drainTimeout=3s', { body: { drainTimeout: '1s' } });
  t.equal(both.status, 400);

  const e = await call('POST', '/backends/a/enable?listener=web');
  t.equal(e.status, 200);
  t.match(e.json, [{ listener: 'web', state: 'up', takesNewFlows: true }]);
  t.same(target.calls.at(-1), { method: 'setBackendState', args: ['a', 'up', { listener: 'web' }] });
});

t.test('GET /connections pages through a snapshot', async (t) => {
  const { call, target } = await start(t, {}, new FakeTarget(250));
  const first = await call('GET', '/connections');
  t.equal(first.status, 200);
  t.equal(first.json.items.length, 100, 'default page size');
  t.match(first.json, { offset: 0, limit: 100, next: 100 });
  t.same(target.calls.at(-1), { method: 'connections', args: [{ limit: 101 }] }, 'one more than the page tells whether there is a next');
  t.match(first.json.items[0], { id: 0, listener: 'web', client: '127.0.0.1:40000', backend: 'a', startedAt: new Date(1_700_000_000_000).toISOString() });

  const last = await call('GET', `/connections?offset=${first.json.next + 100}&limit=100`);
  t.same(last.json.items.map((c: Connection) => c.id), Array.from({ length: 50 }, (_, i) => 200 + i));
  t.equal(last.json.next, null);

  const exact = await call('GET', '/connections?offset=150&limit=100');
  t.equal(exact.json.items.length, 100);
  t.equal(exact.json.next, null, 'a page that ends at the last flow has no next');

  const capped = await call('GET', '/connections?limit=5000');
  t.equal(capped.json.limit, 1000, 'the page size is capped');
  t.equal(capped.json.items.length, 250);

  const filtered = await call('GET', '/connections?listener=api&backend=a&limit=10&offset=5');
  t.same(target.calls.at(-1), { method: 'connections', args: [{ listener: 'api', backend: 'a', limit: 16 }] });
  t.same(filtered.json.items.map((c: Connection) => c.id), [11, 13, 15, 17, 19, 21, 23, 25, 27, 29]);
  t.equal(filtered.json.next, 15);

  for (const query of ['limit=0', 'limit=-1', 'limit=ten', 'offset=1.5', 'listener=']) {
    const bad = await call('GET', `/connections?${query}`);
    t.equal(bad.status, 400, `${query} is refused`);
    t.equal(bad.json.error.code, 'LB4_INVALID_OPTION');
  }
  t.equal((await call('GET', '/connections?listener=nope')).status, 400, 'an unknown listener is the target\'s 400');
});

t.test('GET /cluster and the cluster metrics', async (t) => {
  const { call, target } = await start(t);
  const none = await call('GET', '/cluster');
  t.equal(none.status, 404, 'not a cluster node');
  t.match(none.json.error, { code: 'LB4_NOT_FOUND', message: /not a cluster node/ });
  t.notMatch((await call('GET', '/metrics')).text, /lb4_cluster_/, 'and no cluster metrics');
  const rejected = { malformed: 0, 'bad-version': 0, 'bad-mac': 4, 'own-heartbeat': 0, timestamp: 1, replayed: 2 };
  target.cluster = {
    node: { id: 'lb-a', instance: '00000000000000aa', priority: 200, state: 'active', stateSince: 1, healthyBackends: 2, generation: 7, preempt: true, heartbeat: { address: '0.0.0.0', port: 7000 }, intervalMs: 100, deadAfter: 3 },
    peer: { address: '192.0.2.3', port: 7000, up: true, id: 'lb-b', instance: '00000000000000bb', duplicateNodeId: false, priority: 100, state: 'backup', healthyBackends: 2, generation: 7, lastHeartbeatAgeMs: 40, leaving: false, restarts: 0 },
    generationMismatch: false,
    vips: [{ address: '192.0.2.10/24', dev: 'eth0', held: true }],
    transitions: 3,
    recentTransitions: [],
    heartbeats: { sent: 10, sendErrors: 0, accepted: 9, rejected },
    vipErrors: 0,
  };
  const r = await call('GET', '/cluster');
  t.equal(r.status, 200);
  t.same(r.json, target.cluster);
  const text = (await call('GET', '/metrics')).text as string;
  for (const line of ['lb4_cluster_state{state="init"} 0', 'lb4_cluster_state{state="backup"} 0', 'lb4_cluster_state{state="active"} 1', 'lb4_cluster_peer_up 1', 'lb4_cluster_duplicate_node_id 0', 'lb4_cluster_transitions_total 3', 'lb4_cluster_heartbeats_rejected_total{reason="bad-mac"} 4', 'lb4_cluster_heartbeats_rejected_total{reason="replayed"} 2']) {
    t.ok(text.split('\n').includes(line), line);
  }
  t.match(text, '# TYPE lb4_cluster_heartbeats_rejected_total counter');
  t.notMatch(text, /lb4_cluster_session/, 'no session replication: none of its metrics');
  const batches = { malformed: 1, 'bad-version': 0, 'bad-mac': 2, 'own-batch': 0, timestamp: 0, replayed: 3 };
  target.cluster = { ...target.cluster, sessions: { sent: 40, received: 5, installed: 4, unknownListener: 1, unknownBackend: 0, dropped: 2, hints: 4, rejected: batches } };
  const withSessions = (await call('GET', '/metrics')).text as string;
  for (const line of ['lb4_cluster_sessions_replicated_total{change="sent"} 40', 'lb4_cluster_sessions_replicated_total{change="installed"} 4', 'lb4_cluster_sessions_replicated_total{change="dropped"} 2', 'lb4_cluster_session_hints 4', 'lb4_cluster_session_batches_rejected_total{reason="replayed"} 3']) {
    t.ok(withSessions.split('\n').includes(line), line);
  }
});

t.test('the token', async (t) => {
  const { call } = await start(t, { token });
  const none = await call('GET', '/status');
  t.equal(none.status, 401);
  t.equal(none.headers['www-authenticate'], 'Bearer realm="lb4"');
  t.same(none.json.error, { code: 'LB4_UNAUTHORIZED', message: 'this admin API needs "Authorization: Bearer <token>"' });
  const wrong = await call('GET', '/status', { token: 'not-the-token-at-all' });
  t.equal(wrong.status, 401);
  t.match(wrong.headers['www-authenticate'], /^Bearer .*error="invalid_token"/);
  t.equal(wrong.json.error.code, 'LB4_UNAUTHORIZED');
  t.equal((await call('GET', '/status', { token: token.slice(0, -1) })).status, 401, 'a prefix of the token is wrong');
  t.equal((await call('GET', '/status', { token: `${token}x` })).status, 401, 'so is a longer one');
  t.equal((await call('GET', '/status', { headers: { authorization: `Basic ${token}` } })).status, 401, 'only the Bearer scheme');
  t.equal((await call('GET', '/nowhere')).status, 401, 'without the token, routes are not revealed');
  t.equal((await call('DELETE', '/backends/a')).status, 401, 'nor changed');
  const ok = await call('GET', '/status', { token });
  t.equal(ok.status, 200);
  t.equal(ok.json.workers, 4);
  t.equal((await call('GET', '/status', { headers: { authorization: `bearer  ${token}` } })).status, 200, 'the scheme is case-insensitive');
  t.equal((await call('GET', '/metrics', { token })).status, 200, '/metrics needs it too, and takes it');
});

t.test('a web page cannot drive the API through a browser (cross-site requests, DNS rebinding)', async (t) => {
  const { call, target, where } = await start(t);
  // What a page's fetch('http://127.0.0.1:9090/backends', { method: 'POST', mode: 'no-cors',
  // body }) sends: a "simple" request, which the browser sends without asking first.
  const page = { origin: 'http://attacker.example', 'content-type': 'text/plain;charset=UTF-8' };
  const added = await call('POST', '/backends', { raw: '{"address": "203.0.113.7:80", "id": "evil"}', headers: page });
  t.equal(added.status, 403, 'a cross-site POST is refused');
  t.equal(added.json.error.code, 'LB4_FORBIDDEN');
  t.equal((await call('POST', '/backends/a/drain', { headers: page })).status, 403, 'so is a drain');
  t.equal((await call('POST', '/reload', { headers: { origin: 'null' } })).status, 403, 'and a sandboxed page (Origin: null)');
  t.notOk(target.calls.some((c) => c.method === 'addBackend' || c.method === 'setBackendState' || c.method === 'reload'), 'nothing reached the balancer');
  // DNS rebinding: the page's own name, pointed at 127.0.0.1, reads answers as same-origin.
  const rebound = await call('GET', '/connections', { headers: { host: `attacker.example:${where.port}` } });
  t.equal(rebound.status, 403, 'a Host that names another site is refused');
  t.match(rebound.json.error.message, /attacker\.example/);
  // What curl, the CLI and Prometheus send still works.
  for (const host of [`127.0.0.1:${where.port}`, `localhost:${where.port}`, `LOCALHOST`, `[::1]:${where.port}`]) {
    t.equal((await call('GET', '/status', { headers: { host } })).status, 200, `Host: ${host}`);
  }
  t.equal((await call('POST', '/backends', { body: { address: '127.0.0.1:9003' } })).status, 201, 'a POST without Origin');
  // With a token, a remote client may name the API's host as it likes; a page still may not post.
  const tokened = await start(t, { token });
  t.equal((await tokened.call('GET', '/status', { token, headers: { host: 'lb4.internal.example:9090' } })).status, 200, 'any Host with the token');
  t.equal((await tokened.call('POST', '/reload', { token, headers: { origin: 'http://attacker.example' } })).status, 403, 'but never an Origin');
});

t.test('the dashboard: a browser gets the page at /, API clients the JSON index', async (t) => {
  const { call, target, where } = await start(t, { token });
  const browserAccept = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
  // The page and its files hold no data: they load without the token, which the page then asks for.
  const page = await call('GET', '/', { headers: { accept: browserAccept } });
  t.equal(page.status, 200, 'the page loads without the token');
  t.match(page.headers['content-type'], /^text\/html/);
  t.match(page.text, /<script src="\/dashboard\/dashboard\.js"/);
  t.match(page.headers['content-security-policy'], /connect-src 'self'/, 'the page may talk to this API alone');
  t.match(page.headers['content-security-policy'], /frame-ancestors 'none'/, 'and may not be framed');
  t.equal(page.headers.vary, 'Accept');
  for (const [path, type] of [['/dashboard/dashboard.js', /javascript/], ['/dashboard/dashboard.css', /css/], ['/dashboard/uplot.js', /javascript/], ['/dashboard/uplot.css', /css/]] as const) {
    const asset = await call('GET', path);
    t.equal(asset.status, 200, `${path} is served`);
    t.match(asset.headers['content-type'], type);
    t.ok(asset.text.length > 100, `${path} has content`);
  }
  t.equal((await call('HEAD', '/dashboard/uplot.js')).status, 200, 'HEAD too');
  t.equal((await call('GET', '/dashboard/secret.json')).status, 401, 'anything else under /dashboard/ is the API, token and all');
  t.equal((await call('GET', '/dashboard/../package.json')).status, 401, 'no path outside the list');
  // API clients: curl sends */*, scripts may ask for JSON; both get the index, with the token.
  for (const accept of [undefined, '*/*', 'application/json', 'application/json, text/html;q=0.5']) {
    const headers = accept === undefined ? {} : { accept };
    t.equal((await call('GET', '/', { headers })).status, 401, `Accept: ${accept}: the index needs the token`);
    const index = await call('GET', '/', { headers, token });
    t.equal(index.status, 200);
    t.equal(index.json.name, 'lb4', `Accept: ${accept}: JSON`);
    t.equal(index.headers.vary, 'Accept');
  }
  // The page's own requests carry Origin: its own origin passes, any other is refused.
  const own = { origin: `http://127.0.0.1:${where.port!}` };
  t.equal((await call('POST', '/backends/a/drain', { token, headers: own })).status, 200, 'the dashboard\'s drain passes');
  t.ok(target.calls.some((c) => c.method === 'setBackendState'), 'and reaches the balancer');
  for (const origin of [`http://127.0.0.1:${where.port! + 1}`, `https://127.0.0.1:${where.port}`, `http://localhost:${where.port}`, 'null']) {
    t.equal((await call('POST', '/backends/a/drain', { token, headers: { origin } })).status, 403, `Origin ${origin} is refused`);
  }
});

t.test('bad requests: JSON, size, routes, methods', async (t) => {
  const { call } = await start(t);
  const badJson = await call('POST', '/backends', { raw: '{"address": "127.0.0.1:9003",}' });
  t.equal(badJson.status, 400);
  t.equal(badJson.json.error.code, 'LB4_BAD_JSON');
  t.match(badJson.json.error.message, /^the request body is not valid JSON: .*(Unexpected token|Expected double-quoted property name)/);

  const notFound = await call('GET', '/nowhere');
  t.equal(notFound.status, 404);
  t.equal(notFound.json.error.code, 'LB4_NOT_FOUND');
  t.equal((await call('GET', '/backends/a/weight/extra')).status, 404);
  t.equal((await call('GET', '/status/')).status, 200, 'one trailing slash is forgiven');

  const cases: Array<[string, string, string]> = [
    ['DELETE', '/status', 'GET, HEAD'],
    ['GET', '/reload', 'POST'],
    ['PATCH', '/backends', 'GET, HEAD, POST'],
    ['POST', '/backends/a', 'GET, HEAD, DELETE'],
    ['GET', '/backends/a/weight', 'PUT'],
  ];
  for (const [method, path, allow] of cases) {
    const r = await call(method, path);
    t.equal(r.status, 405, `${method} ${path}`);
    t.equal(r.headers.allow, allow);
    t.equal(r.json.error.code, 'LB4_METHOD_NOT_ALLOWED');
  }
  const query = await call('GET', '/status?verbose=1');
  t.match(query.json.error, { field: 'verbose', message: /this endpoint takes none/ });
});

t.test('a body over 1 MiB is 413', async (t) => {
  const { call, where } = await start(t);
  const big = JSON.stringify({ address: '127.0.0.1:9003', id: 'x'.repeat(1024 * 1024) });
  const declared = await call('POST', '/backends', { raw: big });
  t.equal(declared.status, 413, 'known from Content-Length');
  t.equal(declared.json.error.code, 'LB4_BODY_TOO_LARGE');
  t.equal(declared.headers.connection, 'close');

  // Chunked: the size is only known while reading.
  const req = http.request({ host: '127.0.0.1', port: where.port, method: 'POST', path: '/reload', agent: false, headers: { 'content-type': 'application/json' } });
  req.on('error', () => {}); // the server may close before the client has written it all
  const response = once(req, 'response') as Promise<[http.IncomingMessage]>;
  for (let i = 0; i < 20; i++) req.write('x'.repeat(64 * 1024));
  req.end();
  const [res] = await within(response, 10_000, 'the 413');
  t.equal(res.statusCode, 413, 'found while reading a chunked body');
  res.resume();
  const small = await call('POST', '/backends', { body: { address: '127.0.0.1:9003', id: 'y'.repeat(1000) } });
  t.equal(small.status, 201, 'the server still serves');
});

t.test('POST /reload', async (t) => {
  const { call, target } = await start(t);
  const reread = await call('POST', '/reload');
  t.equal(reread.status, 200);
  t.same(reread.json, { listenersAdded: [], listenersRemoved: [], backendsAdded: ['web/c'], backendsRemoved: [], backendsChanged: [], policyChanged: [], needsRestart: [] });
  t.same(target.calls.at(-1), { method: 'reload', args: [undefined] }, 'no body: re-read the config file');

  const before = target.config;
  const invalid = await call('POST', '/reload', { body: { workers: 'many' } });
  t.equal(invalid.status, 400);
  t.same(invalid.json.error, { code: 'LB4_INVALID_OPTION', message: 'workers: must be a whole number, got "many"', field: 'workers' });
  t.equal(target.config, before, 'the running config is untouched');
  t.equal((await call('GET', '/status')).json.workers, 4);

  const notObject = await call('POST', '/reload', { body: ['listen'] });
  t.equal(notObject.status, 400);
  t.match(notObject.json.error.message, /must be a JSON object of options/);

  const applied = await call('POST', '/reload', { body: { workers: 8 } });
  t.equal(applied.status, 200);
  t.same(applied.json.needsRestart, ['workers']);
  t.same(target.calls.at(-1), { method: 'reload', args: [{ workers: 8 }] });
});

t.test('a closed balancer is 503; an unexpected error is 500 and tells nothing', async (t) => {
  const { call, target } = await start(t);
  const boom = await call('GET', '/connections?listener=explode');
  t.equal(boom.status, 500);
  t.same(boom.json.error, { code: 'LB4_INTERNAL', message: 'internal error (see the lb4 log)' });
  target.closed = true;
  const closed = await call('POST', '/backends/a/enable');
  t.equal(closed.status, 503);
  t.equal(closed.json.error.code, 'LB4_CLOSED');
  t.equal((await call('GET', '/status')).status, 200, 'reading still works');
});

t.test('close() ends keep-alive connections at once', async (t) => {
  const { admin, where } = await start(t);
  const agent = new http.Agent({ keepAlive: true, keepAliveMsecs: 60_000 });
  t.teardown(() => agent.destroy());
  const get = () =>
    new Promise<net.Socket>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: where.port, path: '/status', agent }, (res) => {
        // The agent takes the socket back once the answer has been read.
        const socket = res.socket as net.Socket;
        res.resume();
        res.once('end', () => resolve(socket));
      }).once('error', reject);
    });
  const socket = await get();
  t.equal(await get(), socket, 'the connection is kept alive');
  const closedSocket = once(socket, 'close');
  const started = Date.now();
  await within(admin.close(), 1000, 'close() with an idle keep-alive connection');
  await within(closedSocket, 1000, 'the client connection to close');
  t.ok(Date.now() - started < 1000, 'promptly, not after the keep-alive timeout');
  await t.rejects(
    new Promise((resolve, reject) => net.connect(where.port!, '127.0.0.1').once('connect', resolve).once('error', reject)),
    { code: 'ECONNREFUSED' },
    'nothing listens any more',
  );
});

t.test('close() lets an answer being prepared go out, then ends its connection', async (t) => {
  const { admin, target, call } = await start(t);
  let open!: () => void;
  let reached!: () => void;
  const reloading = new Promise<void>((resolve) => (reached = resolve));
  target.reloadGate = { reached, release: new Promise<void>((resolve) => (open = resolve)) };
  const reply = call('POST', '/reload');
  await within(reloading, 5000, 'the reload to reach the target');
  const closed = admin.close();
  open();
  const r = await reply;
  t.equal(r.status, 200, 'the answer arrives whole');
  t.same(r.json.backendsAdded, ['web/c']);
  t.equal(r.headers.connection, 'close', 'on a connection that then ends');
  await within(closed, 1000, 'close() once the answer is out');
});

t.test('an IPv6 address is in brackets in the URL', async (t) => {
  let admin: AdminServer;
  try {
    admin = await startAdminServer(new FakeTarget(), { kind: 'tcp', host: '::1', ip: '::1', port: 0, token: null, maxConnections: 256 }, silentLogger());
  } catch (err) {
    t.pass('IPv6', { skip: `no IPv6 loopback here (${(err as Error).message})` });
    return;
  }
  t.teardown(() => admin.close());
  t.match(admin.url, /^http:\/\/\[::1\]:\d+$/);
  const r = await new Promise<number>((resolve, reject) => http.get(`${admin.url}/status`, (res) => (res.resume(), resolve(res.statusCode ?? 0))).once('error', reject));
  t.equal(r, 200);
});

t.test('a unix socket', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lb4-admin-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const target = new FakeTarget();

  await t.test('serves, is owner-only, and is removed on close', async (t) => {
    const path = join(dir, 'admin.sock');
    const admin = await startAdminServer(target, { kind: 'unix', path, token, maxConnections: 256 }, silentLogger());
    t.teardown(() => admin.close());
    t.equal(admin.url, `unix:${path}`);
    t.ok(statSync(path).isSocket());
    t.equal(statSync(path).mode & 0o777, 0o600);
    t.equal((await call({ socketPath: path }, 'GET', '/status')).status, 401, 'the token applies on a socket too');
    const r = await call({ socketPath: path }, 'GET', '/backends?listener=web', { token });
    t.equal(r.status, 200);
    t.equal(r.json.length, 2);
    await admin.close();
    t.notOk(existsSync(path), 'the socket file is gone');
  });

  await t.test('a socket file left by a dead process is replaced', async (t) => {
    const path = join(dir, 'stale.sock');
    // A process that listens and is killed cannot remove its socket file.
    const code = `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`;
    await new Promise<void>((resolve) => execFile(process.execPath, ['-e', code], () => resolve()));
    t.ok(statSync(path).isSocket(), 'the stale socket exists');
    const admin = await startAdminServer(target, { kind: 'unix', path, token: null, maxConnections: 256 }, silentLogger());
    t.teardown(() => admin.close());
    t.equal((await call({ socketPath: path }, 'GET', '/status')).status, 200);
  });

  await t.test('a live socket and a regular file are left alone', async (t) => {
    const live = join(dir, 'live.sock');
    const other = net.createServer((s) => s.on('error', () => {}).end('other\n')).listen(live);
    await once(other, 'listening');
    t.teardown(() => new Promise<void>((r) => other.close(() => r())));
    await t.rejects(startAdminServer(target, { kind: 'unix', path: live, token: null, maxConnections: 256 }, silentLogger()), { code: 'EADDRINUSE', message: /cannot listen for the admin API on .*live\.sock/ });
    const still = net.connect(live).on('error', () => {});
    t.teardown(() => still.destroy());
    const [line] = (await within(once(still, 'data'), 5000, 'the other server')) as [Buffer];
    t.equal(line.toString(), 'other\n', 'the other server still has its socket');

    const file = join(dir, 'file.sock');
    writeFileSync(file, 'not a socket');
    await t.rejects(startAdminServer(target, { kind: 'unix', path: file, token: null, maxConnections: 256 }, silentLogger()), { code: 'EADDRINUSE' });
    t.ok(statSync(file).isFile(), 'the file is untouched');
    t.equal(target.listenerCount('health-check'), 0, 'a failed start leaves no listener on the target');
  });
});

t.test('the admin server does not keep the process alive by itself', async (t) => {
  // A child starts the server and returns; it must exit on its own, with the server still open.
  const server = fileURLToPath(new URL('../../lib/api/server.ts', import.meta.url));
  const code = `
    import { EventEmitter } from 'node:events';
    const { startAdminServer } = await import(${JSON.stringify(server)});
    const target = Object.assign(new EventEmitter(), { config: { workers: 1, listeners: [] }, uptimeSeconds: 0 });
    const admin = await startAdminServer(target, { kind: 'tcp', host: '127.0.0.1', ip: '127.0.0.1', port: 0, token: null, maxConnections: 256 }, { debug() {}, warn() {}, error() {} });
    console.log(admin.url);
  `;
  const child = spawn(process.execPath, [...process.execArgv, '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const [exitCode] = (await within(once(child, 'exit'), 20_000, 'the child to exit by itself')) as [number | null];
  t.equal(exitCode, 0);
  t.match(out, /^http:\/\/127\.0\.0\.1:\d+\n$/, 'after it had started the server');
});
