// Reloads without sockets: the plan (what a new config changes against the running one), and its
// application to a running control plane on a fake engine.

import t from 'tap';
import { validateOptions } from '../../lib/config/validate.js';
import { NativeBackendState } from '../../lib/engine/native-types.js';
import { planReload } from '../../lib/reload/plan.js';
import type { BalancerOptions, ReloadSummary } from '../../lib/types.js';
import { settle, startFake } from '../helpers/fake-balancer.js';
import { failure, type FakeEngine } from '../helpers/fake-engine.js';

t.test('reload plan: listeners and backends added, removed, changed', async (t) => {
  const before = await validateOptions({
    listeners: [
      { name: 'web', listen: '127.0.0.1:8080', backends: ['127.0.0.1:9001', '127.0.0.1:9002,weight=2', { address: '127.0.0.1:9003', id: 'c' }] },
      { name: 'old', listen: '127.0.0.1:8081', backends: ['127.0.0.1:9001'] },
      { name: 'moved', listen: '127.0.0.1:8082', backends: ['127.0.0.1:9001'] },
    ],
    workers: 1,
  });
  const after = await validateOptions({
    listeners: [
      { name: 'web', listen: '127.0.0.1:8080', algorithm: 'leastconn', backends: ['127.0.0.1:9001,weight=5', { address: '127.0.0.1:9004', id: 'c' }, '127.0.0.1:9005'] },
      { name: 'moved', listen: '127.0.0.1:9082', backends: ['127.0.0.1:9001'] },
      { name: 'new', listen: '127.0.0.1:8083', backends: ['127.0.0.1:9001'] },
    ],
    workers: 2,
    slowStart: '10s',
  });
  const plan = planReload(before, after);
  t.same(plan.addedListeners.map((l) => l.name), ['moved', 'new'], 'a listener on a new address is reopened');
  t.same(plan.removedListeners.map((l) => l.name), ['moved', 'old']);
  t.equal(plan.keptListeners.length, 1);
  const web = plan.keptListeners[0];
  t.ok(web.algorithmChanged);
  t.notOk(web.healthChanged);
  t.same(web.backends.added.map((b) => b.id).sort(), ['127.0.0.1:9005', 'c'], 'a new address under the same id is a new backend');
  t.same(web.backends.removed.map((b) => b.id).sort(), ['127.0.0.1:9002', 'c']);
  t.same(web.backends.changed.map((c) => [c.before.weight, c.after.weight]), [[1, 5]]);
  t.same(plan.needsRestart, ['workers']);
  t.same(plan.tunablesChanged, ['slowStartMs']);
  t.same(planReload(before, before), { addedListeners: [], removedListeners: [], keptListeners: planReload(before, before).keptListeners, adminChanged: false, accessLogChanged: false, needsRestart: [], tunablesChanged: [] });
  t.ok(planReload(before, before).keptListeners.every((k) => k.backends.added.length + k.backends.removed.length + k.backends.changed.length === 0), 'the same config changes nothing');
});

// --- applying a reload on a fake engine --------------------------------------------------------

const A = '192.0.2.1:80';
const B = '192.0.2.2:80';
const C = '192.0.2.3:80';

/** The engine key of the backend at `address` in one listener slot. */
function keyIn(engine: FakeEngine, slot: number, address: string): number {
  const b = engine.tables[slot].find((e) => `${e.ip}:${e.port}` === address);
  if (!b) throw new Error(`slot ${slot} runs no backend at ${address}`);
  return b.key;
}

const running = {
  listeners: [
    { name: 'web', listen: '127.0.0.1:0', backends: [A, B, `${C},weight=2`] },
    { name: 'api', listen: '127.0.0.1:0', backends: [A] },
  ],
  drainTimeout: '10s',
  workers: 1,
} satisfies BalancerOptions;

t.test('reload: listeners added and removed, backends added, removed and reweighted, in one call to the engine', async (t) => {
  const { lb, engine, clock } = await startFake(t, running);
  const [web, api] = lb.addresses();
  const removedKey = keyIn(engine, 0, A);
  const summaries: ReloadSummary[] = [];
  lb.on('reload', (s) => summaries.push(s));
  engine.clearCalls();

  const summary = await lb.reload({
    listeners: [
      // Port 0 again: the listener keeps the port it has.
      { name: 'web', listen: '127.0.0.1:0', algorithm: 'leastconn', backends: [B, `${C},weight=5`, '192.0.2.4:80'] },
      { name: 'new', listen: '127.0.0.1:0', backends: [A] },
    ],
    drainTimeout: '5s',
    workers: 2,
    retries: 5,
  });
  t.same(summary, {
    listenersAdded: ['new'],
    listenersRemoved: ['api'],
    backendsAdded: ['web/192.0.2.4:80'],
    backendsRemoved: ['web/192.0.2.1:80'],
    backendsChanged: ['web/192.0.2.3:80'],
    policyChanged: [],
    needsRestart: ['workers', 'retries'],
  });
  t.same(summaries, [summary], "a 'reload' event with the summary");

  t.same(
    engine.calls.map((c) => c.method),
    ['addListener', 'applyBackends', 'removeListener', 'applyBackends'],
    'the new listener opens first (with its table), then the changed table goes out; only once the engine took it does the removed listener stop (its table emptied)',
  );
  const [added] = engine.callsOf('addListener');
  t.match(added, { listener: { name: 'new', ip: '127.0.0.1', port: 0 }, slot: 2 });
  t.same(added.table.map((b) => `${b.ip}:${b.port}`), [A], 'it opens with its whole table');
  t.same(engine.callsOf('removeListener'), [{ method: 'removeListener', slot: 1, drainMs: 5_000 }], 'the removed listener drains for the new drain timeout');
  const applied = new Map(engine.callsOf('applyBackends').map((c) => [c.slot, c]));
  t.same([...applied.keys()].sort(), [0, 1], 'a table for each listener that changed, once each');
  t.same(applied.get(0)?.table.map((b) => [`${b.ip}:${b.port}`, b.weight]), [[B, 1], [C, 5], ['192.0.2.4:80', 1]]);
  t.same(applied.get(1)?.table, [], "the removed listener's backends are forgotten");
  t.equal(applied.get(0)?.algorithm, 1, 'web runs leastconn now');

  t.same(lb.addresses().map((a) => a.name), ['web', 'new']);
  t.equal(lb.addresses()[0].port, web.port, 'web kept its port');
  t.notOk([web.port, api.port].includes(lb.addresses()[1].port), 'new has a port of its own');
  t.equal(lb.config.listeners[1].port, lb.addresses()[1].port, 'the running config records the port it got');
  t.equal(lb.config.workers, 1, 'a setting that needs a restart keeps its running value');
  t.equal(lb.config.retries, 2);
  t.equal(lb.config.drainTimeoutMs, 5_000, 'the drain timeout applies from now on');
  t.same(lb.backends().map((b) => `${b.listener}/${b.id}`), ['web/192.0.2.2:80', 'web/192.0.2.3:80', 'new/192.0.2.1:80', 'web/192.0.2.4:80']);

  clock.advance(4_999);
  t.same(engine.callsOf('closeFlows'), []);
  clock.advance(1);
  t.same(engine.callsOf('closeFlows').map((c) => c.filter), [{ backendKey: removedKey }], "the removed backend's flows are closed after the drain timeout; the removed listener's are the engine's to drain");
});

t.test('reload: the same config changes nothing in the engine', async (t) => {
  const { lb, engine } = await startFake(t, running);
  engine.clearCalls();
  const summary = await lb.reload(running);
  t.same(summary, { listenersAdded: [], listenersRemoved: [], backendsAdded: [], backendsRemoved: [], backendsChanged: [], policyChanged: [], needsRestart: [] });
  t.same(engine.calls, [], 'no call at all');
});

t.test('reload: a listener that cannot open rejects the whole reload and leaves the engine as it was', async (t) => {
  const { lb, engines, engine, clock } = await startFake(t, running);
  const tables = structuredClone(engine.tables);
  const config = lb.config;
  const backends = lb.backends();
  let reloads = 0;
  lb.on('reload', () => reloads++);
  engine.clearCalls();
  engines.bind = (l) => (l.name === 'bad' ? failure('EADDRINUSE') : undefined);

  const err = await lb
    .reload({
      listeners: [
        { name: 'web', listen: '127.0.0.1:0', backends: [B] },
        { name: 'good', listen: '127.0.0.1:0', backends: [A] },
        { name: 'bad', listen: '127.0.0.1:8443', backends: [A] },
      ],
    })
    .then(
      () => null,
      (e: NodeJS.ErrnoException) => e,
    );
  t.match(err, { code: 'EADDRINUSE', syscall: 'bind', address: '127.0.0.1', port: 8443, message: /^cannot listen on bad: bind EADDRINUSE 127\.0\.0\.1:8443/ });
  t.same(
    engine.calls.map((c) => [c.method, 'slot' in c ? c.slot : null]),
    [
      ['addListener', 2],
      ['addListener', null],
      ['removeListener', 2],
    ],
    'the listener that had opened is closed again; no table is sent',
  );
  t.equal(engine.callsOf('removeListener')[0].drainMs, 0);
  t.same(engine.tables.slice(0, 2), tables, "the running listeners' tables are as before");
  t.equal(lb.config, config, 'the running config keeps serving');
  t.same(lb.backends(), backends);
  t.same(lb.addresses().map((a) => a.name), ['web', 'api']);
  t.equal(reloads, 0, "no 'reload' event");
  clock.advance(60_000);
  t.same(engine.callsOf('closeFlows'), [], 'no drain was started');

  // The next change sends its listener's table, and the table of the listener the failed reload
  // opened and closed again (slot 2: its backends are forgotten); no other.
  engine.clearCalls();
  await lb.setBackendWeight(B, 3, { listener: 'web' });
  t.same(engine.callsOf('applyBackends').map((c) => [c.slot, c.table.length]).sort(), [[0, 3], [2, 0]]);
  engines.bind = () => undefined;
  await lb.reload({ listeners: [...running.listeners, { name: 'late', listen: '127.0.0.1:0', backends: [C] }] });
  t.match(engine.callsOf('addListener').at(-1), { listener: { name: 'late' }, slot: 3 }, 'a later listener opens in the next slot');
  t.same(engine.tables[3].map((b) => `${b.ip}:${b.port}`), [C]);
});

t.test('reload: a listener on a new address opens in a new slot while the old one drains', async (t) => {
  const { lb, engine } = await startFake(t, running);
  engine.clearCalls();
  const summary = await lb.reload({ listeners: [{ ...running.listeners[0], listen: '127.0.0.2:0' }, running.listeners[1]] });
  t.same([summary.listenersAdded, summary.listenersRemoved], [['web'], []], 'it is reported as added, not removed');
  t.same(
    engine.calls.map((c) => c.method),
    ['addListener', 'removeListener', 'applyBackends'],
  );
  t.match(engine.callsOf('addListener')[0], { listener: { name: 'web', ip: '127.0.0.2' }, slot: 2 });
  t.match(engine.callsOf('removeListener')[0], { slot: 0 });
  t.same(lb.addresses().map((a) => [a.name, a.address]), [['web', '127.0.0.2'], ['api', '127.0.0.1']]);
  t.same(engine.tables[0], [], 'the old slot keeps no backend');
  t.equal(engine.tables[2].length, 3);
});

t.test('reload: state changes drain, the access log follows, and reloads run one at a time', async (t) => {
  const { lb, engine, clock } = await startFake(t, running);
  const c = keyIn(engine, 0, C);
  engine.clearCalls();
  const withState = structuredClone(running);
  withState.listeners[0].backends[2] = { address: C, weight: 2, state: 'maintenance' } as never;
  const summary = await lb.reload({ ...withState, accessLog: { sample: 4 } });
  t.same(summary.backendsChanged, ['web/192.0.2.3:80']);
  t.equal(engine.entry(c)?.state, NativeBackendState.maintenance);
  t.same(engine.callsOf('setFlowLog'), [{ method: 'setFlowLog', every: 4 }], 'the access log is turned on, sampled');
  clock.advance(10_000);
  t.same(engine.callsOf('closeFlows').map((x) => x.filter), [{ backendKey: c }], 'a backend a reload takes out drains');

  await lb.reload(running);
  t.same(engine.callsOf('setFlowLog').at(-1), { method: 'setFlowLog', every: 0 }, 'and off again');

  // The first reload's tables are held in the engine: the second waits for it. (A reweight
  // gives the first reload a table to send; a new listener's table travels with addListener.)
  engine.clearCalls();
  const release = engine.holdApplies();
  const heavier = structuredClone(running);
  heavier.listeners[0].backends[2] = { address: C, weight: 9 } as never;
  const first = lb.reload({ ...heavier, listeners: [...heavier.listeners, { name: 'one', listen: '127.0.0.1:0', backends: [A] }] });
  const second = lb.reload({ ...heavier, listeners: [...heavier.listeners, { name: 'one', listen: '127.0.0.1:0', backends: [A] }, { name: 'two', listen: '127.0.0.1:0', backends: [B] }] });
  await settle();
  t.same(engine.callsOf('addListener').map((x) => x.listener.name), ['one'], 'the second reload has not started');
  release();
  t.same((await first).listenersAdded, ['one']);
  t.same((await second).listenersAdded, ['two'], 'then it applies against the result of the first');
});

t.test('reload: an invalid config is rejected and nothing is called', async (t) => {
  const { lb, engine } = await startFake(t, running);
  engine.clearCalls();
  await t.rejects(lb.reload({ listen: '127.0.0.1:0', backends: [A], workers: 'many' }), { code: 'LB4_INVALID_OPTION', field: 'workers' });
  await t.rejects(lb.reload(), { code: 'LB4_RELOAD_FAILED' }, 'no options and no config file');
  t.same(engine.calls, []);
  await lb.close({ drainTimeout: 0 });
  // A promise-returning call never throws: `lb.reload().catch(...)` on a closed balancer must not
  // become an uncaught exception.
  let closedReload: Promise<unknown> | undefined;
  t.doesNotThrow(() => (closedReload = lb.reload(running)), 'a closed balancer rejects, it does not throw');
  await t.rejects(closedReload!, { code: 'LB4_CLOSED' });
});

t.test('reload: a backend added at run time that the file now lists is kept, with the settings of the file', async (t) => {
  const { lb, engine, clock } = await startFake(t, running);
  await lb.addBackend({ address: '192.0.2.8:80', weight: 2 }, { listener: 'web' });
  await lb.addBackend({ address: '192.0.2.9:80', id: 'nine' }, { listener: 'web' });
  const eight = keyIn(engine, 0, '192.0.2.8:80');
  const nine = keyIn(engine, 0, '192.0.2.9:80');
  engine.clearCalls();

  // The operator writes the API's changes into the file, one of them at another address, and
  // adds a listener in the same reload.
  const web = { ...running.listeners[0], backends: [...running.listeners[0].backends, '192.0.2.8:80,weight=3', { address: '192.0.2.10:80', id: 'nine' }] };
  const summary = await lb.reload({ ...running, listeners: [web, running.listeners[1], { name: 'new', listen: '127.0.0.1:0', backends: [A] }] });
  t.same(summary.listenersAdded, ['new']);
  t.same(summary.backendsChanged, ['web/192.0.2.8:80'], 'the same address: changed in place');
  t.same(summary.backendsRemoved, ['web/nine']);
  t.same(summary.backendsAdded, ['web/nine'], 'another address under the same id: replaced');
  t.match(lb.backends({ listener: 'web' }).find((b) => b.id === '192.0.2.8:80'), { weight: 3, state: 'up' });
  t.match(engine.entry(eight), { weight: 3, slot: 0 }, 'it keeps its key: its flows are untouched');
  t.equal(engine.entry(nine), undefined, 'the replaced one leaves the table');
  t.equal(lb.backends({ listener: 'web' }).find((b) => b.id === 'nine')?.address, '192.0.2.10:80');
  t.same(lb.config.listeners.map((l) => l.name), ['web', 'api', 'new'], 'the whole reload applied');
  clock.advance(10_000);
  t.same(engine.callsOf('closeFlows').map((c) => c.filter), [{ backendKey: nine }], 'the replaced one drains');

  // The same file again changes nothing, and opens nothing twice.
  engine.clearCalls();
  const again = await lb.reload({ ...running, listeners: [web, running.listeners[1], { name: 'new', listen: '127.0.0.1:0', backends: [A] }] });
  t.same([again.listenersAdded, again.backendsAdded, again.backendsChanged], [[], [], []]);
  t.same(engine.calls, []);
});
