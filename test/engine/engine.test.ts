// The engine boundary from the control plane's side, on a fake engine: lib/ loads the addon only
// when an engine is made, opening listeners (failures, hosts without IPv6), the counters decoded
// from readStats(), open flows, the engine's events routed to the balancer's events and logs
// (lib/engine-events.ts), and close(). No sockets needed.

import { EventEmitter } from 'node:events';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import t from 'tap';
import { validateOptions } from '../../lib/config/validate.js';
import { EngineEvents } from '../../lib/engine-events.js';
import { counterNames, type NativeEngine, type NativeEvent } from '../../lib/engine/native-types.js';
import { nativeOptions, openEngine } from '../../lib/engine/open.js';
import { StatsReader } from '../../lib/engine/stats.js';
import { HealthMonitor } from '../../lib/health/monitor.js';
import { BackendControl } from '../../lib/registry/backends.js';
import { DrainTimers } from '../../lib/registry/drains.js';
import { EngineSync } from '../../lib/registry/engine-sync.js';
import { ListenerTable } from '../../lib/registry/listeners.js';
import { BackendRegistry } from '../../lib/registry/registry.js';
import { SlowStart } from '../../lib/registry/slow-start.js';
import type { FlowRecord } from '../../lib/types.js';
import type { BalancerEvents } from '../../lib/events.js';
import { captureLogger, settle, startFake, type LogLine } from '../helpers/fake-balancer.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { failure, FakeEngines } from '../helpers/fake-engine.js';

const A = '192.0.2.1:80';
const B = '192.0.2.2:80';
const lib = fileURLToPath(new URL('../../lib/', import.meta.url));
const addonLoaded = () => Object.keys(createRequire(import.meta.url).cache).some((path) => path.endsWith('lb4.node'));

t.test('importing any module of lib/ does not load the native addon', async (t) => {
  const modules = readdirSync(lib, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
  t.ok(modules.length > 30, `${modules.length} modules`);
  for (const m of modules) await import(pathToFileURL(join(lib, m)).href);
  t.notOk(addonLoaded(), 'no lb4.node is loaded');
});

// --- opening listeners -----------------------------------------------------------------------

t.test('a listener that cannot open: a Node-style error naming it, and nothing left running', async (t) => {
  let engines: FakeEngines | undefined;
  const err = await startFake(
    t,
    {
      listeners: [
        { name: 'web', listen: '127.0.0.1:0', backends: [A] },
        { name: 'api', listen: '127.0.0.1:8081', backends: [A] },
      ],
    },
    (e) => {
      engines = e;
      e.bind = (l) => (l.name === 'api' ? failure('EADDRINUSE') : undefined);
    },
  ).then(
    () => null,
    (e: NodeJS.ErrnoException) => e,
  );
  t.match(err, { code: 'EADDRINUSE', errno: -98, syscall: 'bind', address: '127.0.0.1', port: 8081 });
  t.equal(err?.message, 'cannot listen on api: bind EADDRINUSE 127.0.0.1:8081 (address already in use)');
  t.equal(engines?.made.length, 1);
  t.ok(engines?.engine.closed, 'the engine is closed');
  t.notOk(engines?.engine.started, 'and never started');
});

t.test('openEngine: the error of the first listener that cannot open', async (t) => {
  const config = await validateOptions({ listen: ['127.0.0.1:8080', '127.0.0.1:8081'], backends: [A], workers: 1 });
  const engines = new FakeEngines();
  engines.bind = () => failure('EACCES');
  t.throws(() => openEngine(config, [[], []], engines.create), { code: 'EACCES', address: '127.0.0.1', port: 8080, message: /^cannot listen on 127\.0\.0\.1:8080: bind EACCES/ });
  t.ok(engines.engine.closed, 'closed');
});

t.test('a host without IPv6: every-interface listeners open on every IPv4 interface, at start and on reload', async (t) => {
  const noIpv6 = (e: FakeEngines) => (e.bind = (l) => (l.dualStack ? failure('EAFNOSUPPORT', 'socket') : undefined));
  const { lb, engines, engine } = await startFake(t, { listen: ':0', backends: [A] }, noIpv6);
  t.equal(engines.made.length, 2, 'a second engine');
  t.ok(engines.made[0].closed, 'the first one is closed');
  t.match(engines.made[0].listeners[0], { ip: '::', dualStack: true });
  t.match(engine.listeners[0], { ip: '0.0.0.0', dualStack: false });
  t.match(lb.address(), { address: '0.0.0.0', family: 'IPv4' });

  await lb.reload({ listeners: [{ name: ':0', listen: ':0', backends: [A] }, { name: 'more', listen: ':0', backends: [A] }], workers: 1 });
  t.match(engine.callsOf('addListener')[0].listener, { name: 'more', ip: '0.0.0.0', dualStack: false }, 'a new one on reload too');
});

// --- counters ----------------------------------------------------------------------------------

t.test('stats(): counters by name, per listener and per backend, from readStats()', async (t) => {
  const { lb, engine } = await startFake(t, {
    listeners: [
      { name: 'web', listen: '127.0.0.1:0', backends: [A, B] },
      { name: 'api', listen: '127.0.0.1:0', backends: [A] },
    ],
  });
  const [a] = engine.tables[0].map((e) => e.key);
  const apiA = engine.tables[1][0].key;
  engine.setListenerCounters(0, { flows_total: 7, bytes_to_backend: 1000, bytes_to_client: 5000 });
  engine.setListenerCounters(1, { flows_active: 2, accept_errors: 1 });
  engine.setBackendCounters(a, { flows_active: 3, connect_failures: 4 });
  engine.setBackendCounters(apiA, { retries: 9 });
  engine.dropped = 5;

  const stats = lb.stats();
  t.same(Object.keys(stats.listeners[0].counters), [...counterNames], 'every counter, by name, in order');
  t.match(stats.listeners[0], { name: 'web', counters: { flows_total: 7, bytes_to_backend: 1000, bytes_to_client: 5000, flows_active: 0 } });
  t.match(stats.listeners[1], { name: 'api', counters: { flows_active: 2, accept_errors: 1, flows_total: 0 } });
  t.match(stats.backends.map((x) => [x.listener, x.id, x.counters.flows_active, x.counters.connect_failures, x.counters.retries]), [
    ['web', A, 3, 4, 0],
    ['web', B, 0, 0, 0],
    ['api', A, 0, 0, 9],
  ]);
  t.ok(Object.isFrozen(stats.listeners[0].counters), 'frozen');
  t.equal(stats.droppedEvents, 5, 'events the engine dropped are counted');

  // A backend added later gets a key past the array read so far: all zero until it counts.
  const [added] = await lb.addBackend('192.0.2.9:80', { listener: 'web' });
  t.same(Object.values(lb.stats().backends.find((x) => x.id === added.id)!.counters), counterNames.map(() => 0));
  const key = engine.tables[0].find((e) => e.ip === '192.0.2.9')!.key;
  engine.setBackendCounters(key, { flows_total: 11 });
  t.equal(lb.stats().backends.find((x) => x.id === added.id)?.counters.flows_total, 11, 'the array grows with the keys');

  // Listener slots come first: a listener opened by a reload moves every backend block. (The
  // file lists the backend the API added: a reload makes the backends equal to the file.)
  await lb.reload({ listeners: [{ name: 'web', listen: '127.0.0.1:0', backends: [A, B, '192.0.2.9:80'] }, { name: 'api', listen: '127.0.0.1:0', backends: [A] }, { name: 'new', listen: '127.0.0.1:0', backends: [B] }], workers: 1 });
  engine.setListenerCounters(2, { flows_total: 1 });
  const after = lb.stats();
  t.equal(after.listeners[2].counters.flows_total, 1);
  t.match(after.backends.map((x) => [x.listener, x.id, x.counters.connect_failures, x.counters.retries, x.counters.flows_total]), [
    ['web', A, 4, 0, 0],
    ['web', B, 0, 0, 0],
    ['api', A, 0, 9, 0],
    ['web', '192.0.2.9:80', 0, 0, 11],
    ['new', B, 0, 0, 0],
  ]);
});

t.test('StatsReader grows its array once, then reads into it', async (t) => {
  const config = await validateOptions({ listen: '127.0.0.1:0', backends: [A], workers: 1 });
  const engines = new FakeEngines();
  const { engine } = openEngine(config, [[{ key: 0, id: 'web/192.0.2.1:80', ip: '192.0.2.1', port: 80, weight: 1, state: 0 }]], engines.create);
  const sizes: number[] = [];
  const read = engine.readStats.bind(engine);
  engine.readStats = (into) => {
    sizes.push(into.length);
    return read(into);
  };
  engines.engine.setBackendCounters(0, { flows_total: 3 });
  const reader = new StatsReader(engine);
  t.equal(reader.read(1).backend(0).flows_total, 3);
  const width = counterNames.length;
  t.same(sizes, [0, 2 * width], 'asked the size, then read');
  t.equal(reader.read(1).backend(5).flows_total, 0, 'a key the engine has not counted is all zero');
  t.same(sizes, [0, 2 * width, 2 * width], 'one call for the second read');
});

// --- open flows ----------------------------------------------------------------------------------

t.test('connections(): the engine snapshot with listener and backend names', async (t) => {
  const { lb, engine } = await startFake(t, {
    listeners: [
      { name: 'web', listen: '127.0.0.1:0', backends: [A, { address: B, id: 'b' }] },
      { name: 'api', listen: '127.0.0.1:0', backends: [A] },
    ],
  });
  const [a, b] = engine.tables[0].map((e) => e.key);
  const flow = (id: number, listener: number, backendKey?: number) => ({
    id,
    protocol: 'tcp' as const,
    listener,
    worker: id % 2,
    state: backendKey === undefined ? ('connecting' as const) : ('established' as const),
    client: `198.51.100.1:${5000 + id}`,
    ...(backendKey === undefined ? {} : { backendKey, backend: backendKey === a ? A : B }),
    startedAt: 1_700_000_000_000 + id,
    bytesToBackend: id,
    bytesToClient: 2 * id,
  });
  engine.flows = [flow(1, 0, a), flow(2, 0, b), flow(3, 1, engine.tables[1][0].key), flow(4, 0)];

  const all = await lb.connections();
  t.same(all[1], { id: 2, protocol: 'tcp', listener: 'web', worker: 0, state: 'established', client: '198.51.100.1:5002', backend: 'b', backendAddress: B, startedAt: new Date(1_700_000_000_002), bytesToBackend: 2, bytesToClient: 4 });
  t.same(all[3], { id: 4, protocol: 'tcp', listener: 'web', worker: 0, state: 'connecting', client: '198.51.100.1:5004', startedAt: new Date(1_700_000_000_004), bytesToBackend: 4, bytesToClient: 8 }, 'no backend yet');
  t.same(engine.callsOf('connections').at(-1)?.filter, { listener: undefined, backendKey: undefined, limit: 1000 }, 'at most 1000 by default');

  t.same((await lb.connections({ listener: 'api' })).map((c) => c.id), [3]);
  t.same((await lb.connections({ backend: 'b' })).map((c) => c.id), [2], 'a backend id becomes its key');
  t.same(engine.callsOf('connections').at(-1)?.filter, { listener: undefined, backendKey: b, limit: 1000 });
  t.same((await lb.connections({ limit: 2 })).map((c) => c.id), [1, 2]);
  await t.rejects(lb.connections({ backend: A }), { code: 'LB4_INVALID_OPTION', field: 'listener' }, 'a backend in several listeners needs one named');
  t.same((await lb.connections({ backend: A, listener: 'api' })).map((c) => c.id), [3]);
  await t.rejects(lb.connections({ listener: 'nope' }), { code: 'LB4_INVALID_OPTION' });
});

// --- events ----------------------------------------------------------------------------------

function flowClosed(over: Partial<Extract<NativeEvent, { type: 'flow-closed' }>> = {}): NativeEvent {
  return { type: 'flow-closed', worker: 1, listener: 0, protocol: 'tcp', id: 42, client: '198.51.100.1:5000', reason: 'done', bytesToBackend: 10, bytesToClient: 20, startedAt: 1_700_000_000_000, durationMs: 15, ...over };
}

t.test("flow-closed: a 'flow' event and an access log line, sampled as configured", async (t) => {
  const { lb, engine, logged } = await startFake(t, { listen: '127.0.0.1:0', backends: [A, B], accessLog: { sample: 10 } });
  t.same(engine.callsOf('setFlowLog'), [{ method: 'setFlowLog', every: 10 }], 'the engine samples one flow in 10');
  const [a] = engine.tables[0].map((e) => e.key);
  const flows: FlowRecord[] = [];
  lb.on('flow', (f) => flows.push(f));

  engine.emit(flowClosed({ backendKey: a }), flowClosed({ id: 43, reason: 'no-backend', bytesToBackend: 0, bytesToClient: 0 }), flowClosed({ id: 44, backendKey: 999, reason: 'backend-reset' }));
  t.same(flows[0], { id: 42, protocol: 'tcp', listener: '127.0.0.1:0', client: '198.51.100.1:5000', backend: A, bytesToBackend: 10, bytesToClient: 20, startedAt: new Date(1_700_000_000_000), durationMs: 15, reason: 'done' });
  t.ok(Object.isFrozen(flows[0]));
  t.match(flows.slice(1), [{ id: 43, backend: null, reason: 'no-backend' }, { id: 44, backend: '#999', reason: 'backend-reset' }], 'no backend, and a key nobody knows');
  const lines = logged('flow closed');
  t.equal(lines.length, 3, 'one access log line per reported flow');
  t.match(lines[0], { component: 'access', flow: 42, listener: '127.0.0.1:0', client: '198.51.100.1:5000', backend: A, bytesToBackend: 10, bytesToClient: 20, durationMs: 15, reason: 'done' });

  lb.removeAllListeners('flow');
  engine.emit(flowClosed({ id: 45 }));
  t.equal(logged('flow closed').length, 4, "logged without a 'flow' listener too");

  const off = await startFake(t, { listen: '127.0.0.1:0', backends: [A] });
  t.same(off.engine.callsOf('setFlowLog'), [], 'no access log: the engine reports no flow');
});

t.test("listener-error: a Node-style error in a 'listener-error' event, and logged", async (t) => {
  const { lb, engine, logged } = await startFake(t, { listeners: [{ name: 'web', listen: '127.0.0.1:0', backends: [A] }] });
  const port = lb.address().port;
  const seen: [NodeJS.ErrnoException, string][] = [];
  lb.on('listener-error', (err, listener) => seen.push([err, listener]));
  engine.emit({ type: 'listener-error', worker: 0, listener: 0, errno: 105 });
  t.equal(seen.length, 1);
  const [err, listener] = seen[0];
  t.equal(listener, 'web');
  t.match(err, { code: 'ENOBUFS', errno: -105, syscall: 'accept', address: '127.0.0.1', port });
  t.match(logged('accept failed'), [{ component: 'engine', listener: 'web', err: { code: 'ENOBUFS' } }]);

  lb.removeAllListeners('listener-error');
  t.doesNotThrow(() => engine.emit({ type: 'listener-error', worker: 0, listener: 0, errno: 105 }), "no 'listener-error' listener: logged only, never thrown");
  t.equal(logged('accept failed').length, 2);
  lb.on('listener-error', (e, name) => seen.push([e, name]));
  engine.emit({ type: 'listener-error', worker: 0, listener: 7, errno: 1 });
  t.match(seen[1], [{ code: 'EPERM' }, '7'], 'a slot nobody knows is named by its number');
});

t.test("backend-connects: failures become 'backend-connect-failures'; successes alone do not", async (t) => {
  const { lb, engine, logged } = await startFake(t, { listen: '127.0.0.1:0', backends: [A] });
  const [a] = engine.tables[0].map((e) => e.key);
  const seen: BalancerEvents['backend-connect-failures'][0][] = [];
  lb.on('backend-connect-failures', (e) => seen.push(e));
  engine.emit(
    { type: 'backend-connects', worker: 0, backendKey: a, failures: 0, timeouts: 0, successes: 9, trailingFailures: 0 },
    { type: 'backend-connects', worker: 1, backendKey: a, failures: 3, timeouts: 1, successes: 2, trailingFailures: 1 },
    { type: 'backend-connects', worker: 1, backendKey: 77, failures: 1, timeouts: 0, successes: 0, trailingFailures: 1 },
  );
  t.same(seen, [
    { listener: '127.0.0.1:0', backend: A, failures: 3, timeouts: 1, successes: 2 },
    { listener: '', backend: '#77', failures: 1, timeouts: 0, successes: 0 },
  ]);
  t.equal(logged('backend connect failures').length, 2);
});

t.test('dropped events: each check logs how many were dropped since the last one', async (t) => {
  const config = await validateOptions({ listen: '127.0.0.1:0', backends: [A], workers: 1 });
  const registry = new BackendRegistry();
  for (const b of config.listeners[0].backends) registry.add(0, config.listeners[0].name, b, 'unchecked');
  const engines = new FakeEngines();
  const { engine, addresses } = openEngine(config, [registry.nativeTable(0)], engines.create);
  const lines: LogLine[] = [];
  const log = captureLogger(lines);
  const clock = new FakeClock();
  const listeners = new ListenerTable(addresses.map((address, slot) => ({ slot, config: config.listeners[slot], address })));
  const monitor = new HealthMonitor({ clock });
  t.teardown(() => monitor.close());
  const sync = new EngineSync(engine, registry, listeners, log, () => false);
  const ramps = new SlowStart(registry, () => sync.flush(), log, clock);
  const events = new EventEmitter<BalancerEvents>();
  const backends = new BackendControl({ registry, listeners, monitor, sync, drains: new DrainTimers(engine, log, clock), ramps, config: () => config, events, logs: { registry: log, health: log } });
  const engineEvents = new EngineEvents({ engine, registry, listeners, backends, events, logs: { engine: log, access: log } });
  const dropped = () => lines.filter((l) => l.msg === 'engine events dropped: the JS thread fell behind').map((l) => l.dropped);

  engineEvents.checkDropped();
  t.same(dropped(), [], 'none dropped, nothing logged');
  engines.engine.dropped = 4;
  engineEvents.checkDropped();
  engineEvents.checkDropped();
  engines.engine.dropped = 10;
  engineEvents.checkDropped();
  t.same(dropped(), [4, 6], 'the count since the last check, once');
});

// --- closing ---------------------------------------------------------------------------------

t.test('close(): idempotent; a second call may shorten the drain; every timer stops', async (t) => {
  const { lb, engine, clock } = await startFake(t, {
    listeners: [{ name: 'web', listen: '127.0.0.1:0', backends: [`${A},weight=4`, B], health: { type: 'tcp', interval: '1m' } }],
    slowStart: '10s',
    drainTimeout: '30s',
  });
  await lb.setBackendState(B, 'draining');
  await lb.setBackendState(A, 'down');
  await lb.setBackendState(A, 'up');
  t.ok(clock.pending >= 3, 'a drain, a ramp step and the health checks wait on the clock');
  let closes = 0;
  lb.on('close', () => closes++);
  const first = lb.close();
  const second = lb.close({ drainTimeout: 0 });
  t.equal(second, first, 'the same promise');
  t.same(engine.callsOf('close'), [{ method: 'close', drainMs: 30_000 }, { method: 'close', drainMs: 0 }], 'the engine is told the shorter drain');
  t.ok(lb.closed);
  t.equal(clock.pending, 0, 'no drain, ramp or health check timer is left');
  await first;
  await settle();
  t.equal(closes, 1, "one 'close' event");
  engine.clearCalls();
  clock.advance(60_000);
  t.same(engine.calls, [], 'nothing reaches the engine after close');
  await t.rejects(lb.addBackend('192.0.2.3:80'), { code: 'LB4_CLOSED' });
  await t.rejects(lb.removeBackend(A), { code: 'LB4_CLOSED' });
  await t.rejects(lb.setBackendWeight(A, 2), { code: 'LB4_CLOSED' });
});

t.test('close() with a bad drain timeout rejects; it does not throw', async (t) => {
  const { lb } = await startFake(t, { listen: '127.0.0.1:0', backends: [A], workers: 1 });
  let closing: Promise<void> | undefined;
  t.doesNotThrow(() => (closing = lb.close({ drainTimeout: 'soon' })), 'a promise-returning call never throws');
  await t.rejects(closing!, { code: 'LB4_INVALID_DURATION', field: 'drainTimeout' });
  t.notOk(lb.closed, 'a rejected close() leaves the balancer running');
  await lb.close({ drainTimeout: 0 });
});

// Last: it loads the addon into this process.
t.test('the check above sees the addon once an engine needs it', async (t) => {
  const { addon } = await import('../../lib/engine/addon.js');
  t.notOk(addonLoaded());
  addon();
  t.ok(addonLoaded(), 'loaded now');
});

t.test('the fake engine rejects and answers what the addon does, before start and after close', async (t) => {
  const { createEngine } = await import('../../lib/engine/addon.js');
  const config = await validateOptions({ listen: ['127.0.0.1:0', '127.0.0.2:0'], backends: [A], workers: 1 });
  const options = nativeOptions(config, false);
  // A real engine opens no socket and starts no thread before start().
  const real = createEngine(options);
  const fake = new FakeEngines().create(options);
  const entry = { key: 0, id: 'web/a', ip: '192.0.2.1', port: 80, weight: 1, state: 0 };
  const outcome = async (engine: NativeEngine, call: (e: NativeEngine) => unknown): Promise<unknown> => {
    try {
      const value = await call(engine);
      return { value };
    } catch (err) {
      return { error: (err as Error).constructor.name, message: (err as Error).message };
    }
  };
  const calls: Array<[string, (e: NativeEngine) => unknown]> = [
    ['a slot past the listeners', (e) => e.applyBackends(2, [])],
    ['a slot that is not a number', (e) => e.applyBackends('web' as never, [])],
    ['not an array', (e) => e.applyBackends(0, 'tables' as never)],
    ['a host name', (e) => e.applyBackends(0, [{ ...entry, ip: 'example.com' }])],
    ['a weight out of range', (e) => e.applyBackends(0, [{ ...entry, weight: 2_000_000 }])],
    ['a state out of range', (e) => e.applyBackends(0, [{ ...entry, state: 4 }])],
    ['a key out of range', (e) => e.applyBackends(0, [{ ...entry, key: -1 }])],
    ['no id', (e) => e.applyBackends(0, [{ ...entry, id: undefined as never }])],
    ['a port out of range', (e) => e.applyBackends(0, [{ ...entry, port: 70_000 }])],
    ['an algorithm out of range', (e) => e.applyBackends(1, [], 3)],
    ['tables before start are kept', (e) => e.applyBackends(0, [{ ...entry, key: 5 }])],
    ['the keys with counters', (e) => e.backendKeyLimit()],
    ['readStats: the size needed', (e) => e.readStats(new Float64Array(0))],
    ['readStats: not a Float64Array', (e) => e.readStats(new Uint8Array(8) as never)],
    ['connections before start', (e) => e.connections({})],
    ['closeFlows before start', (e) => e.closeFlows({ backendKey: 5 })],
    ['addListener before start', (e) => e.addListener(options.listeners[0], [])],
    ['removeListener with a name', (e) => e.removeListener('web' as never, 0)],
    ['setFlowLog below 0', (e) => e.setFlowLog(-1)],
    ['setSessionReplication without a boolean', (e) => e.setSessionReplication(1 as never)],
    ['drainSessionChanges with nothing reported', (e) => e.drainSessionChanges()],
    ['applyAffinity without an array', (e) => e.applyAffinity('hints' as never)],
    ['applyAffinity: a slot past the listeners', (e) => e.applyAffinity([{ set: true, listener: 2, clientIp: '192.0.2.1', clientPort: 5300, backendId: 'web/a' }])],
    ['applyAffinity: two hints', (e) => e.applyAffinity([{ set: true, listener: 0, clientIp: '192.0.2.1', clientPort: 5300, backendId: 'web/a' }, { set: true, listener: 1, clientIp: '192.0.2.1', clientPort: 5300, localIp: '127.0.0.2', backendId: 'web/a' }])],
    ['applyAffinity: one forgotten', (e) => e.applyAffinity([{ set: false, listener: 0, clientIp: '192.0.2.1', clientPort: 5300, backendId: 'web/a' }])],
    ['onEvents without a function', (e) => e.onEvents(null as never)],
    ['close', (e) => e.close(0)],
    ['close again: the same promise', (e) => e.close(0) === e.close(5)],
    ['start after close', (e) => e.start([[], []])],
    ['closeFlows after close', (e) => e.closeFlows({})],
  ];
  for (const [what, call] of calls) t.same(await outcome(fake, call), await outcome(real, call), what);
});
