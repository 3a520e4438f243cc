// Reload as reconciliation, on a fake engine: the new config is compared with what runs (the
// registry, admin API changes included), not with the previous file; the listeners, backend set
// and weights become the file's, an operator's state on a backend the file keeps stays; a reload
// is all or nothing and logs exactly one line.

import t from 'tap';
import type { BalancerOptions } from '../../lib/types.js';
import { startFake, type FakeRig } from '../helpers/fake-balancer.js';
import { failure } from '../helpers/fake-engine.js';

const A = '192.0.2.1:80';
const B = '192.0.2.2:80';
const C = '192.0.2.3:80';

const file = {
  listeners: [
    { name: 'web', listen: '127.0.0.1:0', backends: [A, `${B},weight=2`, C] },
    { name: 'api', listen: '127.0.0.1:0', backends: [A] },
  ],
  drainTimeout: '10s',
} satisfies BalancerOptions;

/** Each listener's backends as `id*weight:state`, as they run. */
function runningState(lb: FakeRig['lb']): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const b of lb.backends()) (out[b.listener] ??= []).push(`${b.id}*${b.weight}:${b.state}`);
  for (const v of Object.values(out)) v.sort();
  return out;
}

/** The lines the reload component logged. */
const reloadLines = (rig: FakeRig) => rig.logs.filter((l) => l.component === 'reload');

t.test('a reload makes the backend set and weights equal to the file, whatever the API changed', async (t) => {
  const rig = await startFake(t, file);
  const { lb, engine } = rig;
  const fileState = runningState(lb);
  // The operator changes things at run time: a backend the file does not list, a new weight, a
  // backend removed, and one drained.
  await lb.addBackend({ address: '192.0.2.9:80', id: 'extra' }, { listener: 'web' });
  await lb.addBackend({ address: '192.0.2.8:80' });
  await lb.setBackendWeight(B, 7, { listener: 'web' });
  await lb.removeBackend(A, { listener: 'api' });
  await lb.setBackendState(C, 'draining', { listener: 'web' });

  const summary = await lb.reload(file);
  t.same(summary.backendsRemoved.sort(), ['api/192.0.2.8:80', 'web/192.0.2.8:80', 'web/extra'], 'the backends only the API added go');
  t.same(summary.backendsAdded, ['api/192.0.2.1:80'], 'the backend the API removed comes back');
  t.same(summary.backendsChanged, ['web/192.0.2.2:80'], 'the weight the API set goes back to the file');
  const running = runningState(lb);
  t.same(running.api, fileState.api, 'api runs what the file says');
  t.same(running.web, ['192.0.2.1:80*1:up', '192.0.2.2:80*2:up', '192.0.2.3:80*1:draining'], "web runs the file's set and weights; the operator's drain on C is kept");
  t.same(
    engine.tables[0].map((b) => `${b.ip}:${b.port}*${b.weight}`).sort(),
    [`${A}*1`, `${B}*2`, `${C}*1`],
    'the engine runs the same table',
  );

  // Repeated reloads of the same file change nothing and call nothing.
  engine.clearCalls();
  for (let i = 0; i < 3; i++) {
    const again = await lb.reload(file);
    t.same([again.listenersAdded, again.listenersRemoved, again.backendsAdded, again.backendsRemoved, again.backendsChanged], [[], [], [], [], []], `reload ${i + 2} changes nothing`);
  }
  t.same(engine.calls, [], 'and sends the engine nothing');
  t.same(runningState(lb), running);
  const lines = reloadLines(rig);
  t.equal(lines.length, 4, 'one log line per reload');
  t.ok(lines.every((l) => l.msg === 'reload applied'));
  t.same(lines[0].backendsAdded, ['api/192.0.2.1:80'], 'the line carries the summary');
});

t.test("a state the file itself changes wins over the operator's", async (t) => {
  const { lb } = await startFake(t, file);
  await lb.setBackendState(C, 'maintenance', { listener: 'web' });
  await lb.setBackendState(A, 'draining', { listener: 'web' });
  const next = structuredClone(file);
  next.listeners[0].backends[2] = `${C}` as never;
  (next.listeners[0].backends as unknown[])[0] = { address: A, state: 'up' };
  (next.listeners[0].backends as unknown[])[2] = { address: C, state: 'down' };
  await lb.reload(next);
  t.same(runningState(lb).web, ['192.0.2.1:80*1:draining', '192.0.2.2:80*2:up', '192.0.2.3:80*1:down'], 'A keeps the drain (the file says up, as before); C goes down (the file says so now)');
});

t.test('a reload whose new listener cannot open changes nothing, answers the error and logs one line', async (t) => {
  const rig = await startFake(t, file);
  const { lb, engines, engine } = rig;
  await lb.addBackend({ address: '192.0.2.9:80', id: 'extra' }, { listener: 'web' });
  const before = runningState(lb);
  const tables = structuredClone(engine.tables);
  engines.bind = (l) => (l.name === 'bad' ? failure('EADDRINUSE') : undefined);
  engine.clearCalls();
  const next = { ...file, listeners: [...file.listeners, { name: 'good', listen: '127.0.0.1:0', backends: [A] }, { name: 'bad', listen: '127.0.0.1:8443', backends: [A] }] };
  await t.rejects(lb.reload(next), { code: 'EADDRINUSE' });
  t.same(runningState(lb), before, 'the API-added backend is still there: nothing changed');
  t.same(engine.tables.slice(0, 2), tables);
  t.same(lb.addresses().map((a) => a.name), ['web', 'api']);
  const lines = reloadLines(rig);
  t.equal(lines.length, 1, 'exactly one line');
  t.match(lines[0], { msg: 'reload rejected: the running config keeps serving', code: 'EADDRINUSE', err: /cannot listen on bad/ });
});

t.test('a step that fails while applying rolls every change back', async (t) => {
  const rig = await startFake(t, file);
  const { lb, engine } = rig;
  await lb.addBackend({ address: '192.0.2.9:80', id: 'extra' }, { listener: 'web' });
  await lb.setBackendWeight(B, 5, { listener: 'web' });
  const before = runningState(lb);
  const config = lb.config;
  // The access log is the last step of the plan: make the engine refuse it, once.
  const setFlowLog = engine.setFlowLog.bind(engine);
  engine.setFlowLog = () => {
    engine.setFlowLog = setFlowLog;
    throw new Error('flow log refused');
  };
  const next = { ...file, listeners: [file.listeners[0], { name: 'new', listen: '127.0.0.1:0', backends: [C] }], accessLog: true };
  await t.rejects(lb.reload(next), /flow log refused/);
  t.same(runningState(lb), before, 'the backends are back as they ran (API changes included)');
  t.same(lb.addresses().map((a) => a.name), ['web', 'api'], 'the removed listener still runs, the new one is gone');
  t.same(lb.config, config, 'the running config is the old one');
  t.same(engine.callsOf('removeListener').map((c) => c.slot), [2], 'only the new listener was closed');
  t.same(
    engine.tables[0].map((b) => `${b.ip}:${b.port}*${b.weight}`).sort(),
    [`${A}*1`, `${B}*5`, `${C}*1`, '192.0.2.9:80*1'],
    "the engine runs web's old table",
  );
  t.equal(reloadLines(rig).length, 1, 'one log line: rejected');
});

t.test('tables the engine refuses roll the whole reload back: same records, same keys, no drain, removed listeners still serve', async (t) => {
  const rig = await startFake(t, file);
  const { lb, engine, clock } = rig;
  await lb.addBackend({ address: '192.0.2.9:80', id: 'extra' }, { listener: 'web' });
  await lb.setBackendState(C, 'draining', { listener: 'web', drainTimeout: '1h' });
  const byName = (list: ReturnType<typeof lb.backends>) => [...list].sort((x, y) => `${x.listener}/${x.id}`.localeCompare(`${y.listener}/${y.id}`));
  const before = byName(lb.backends());
  const tables = structuredClone(engine.tables);
  const config = lb.config;
  engine.clearCalls();
  // The engine refuses the first table it is sent, as it would one it cannot run.
  const applyBackends = engine.applyBackends.bind(engine);
  engine.applyBackends = () => {
    engine.applyBackends = applyBackends;
    return Promise.reject(new Error('table refused'));
  };
  const next = { ...file, listeners: [{ ...file.listeners[0], backends: [A, `${B},weight=9`] }, { name: 'new', listen: '127.0.0.1:0', backends: [C] }] };
  await t.rejects(lb.reload(next), /table refused/);
  t.same(byName(lb.backends()), before, 'every backend record is back as it was, with its key and state');
  t.same(engine.tables.slice(0, 2), tables, 'the engine runs the tables it ran, in the same order');
  t.same(lb.addresses().map((a) => a.name), ['web', 'api']);
  t.same(lb.config, config);
  t.same(engine.callsOf('removeListener').map((c) => c.slot), [2], 'api was never removed; the new listener closed');
  clock.advance(60_000);
  t.same(engine.callsOf('closeFlows'), [], 'no drain of the backends the reload had removed');
  t.same(reloadLines(rig).map((l) => l.msg), ['reload rejected: the running config keeps serving']);
  // The same reload, with the engine willing, applies.
  const summary = await lb.reload(next);
  t.same(summary.listenersRemoved, ['api']);
  t.same(summary.backendsRemoved.sort(), ['web/192.0.2.3:80', 'web/extra']);
});
