// The backend registry and what changes it: the registry's combination of operator state and
// health, the slow-start ramp, and (on a fake engine with a hand-advanced clock) drains, slow
// start, passive health and the batching of changes sent to the engine. No sockets needed.

import t from 'tap';
import { validateOptions } from '../../lib/config/validate.js';
import { NativeBackendState, type NativeEvent, type NativeFlow } from '../../lib/engine/native-types.js';
import { openEngine } from '../../lib/engine/open.js';
import { silentLogger } from '../../lib/log.js';
import { EngineSync } from '../../lib/registry/engine-sync.js';
import { ListenerTable } from '../../lib/registry/listeners.js';
import { BackendRegistry, engineState } from '../../lib/registry/registry.js';
import { slowStartWeight } from '../../lib/registry/slow-start.js';
import type { BalancerOptions } from '../../lib/types.js';
import type { BalancerEvents } from '../../lib/events.js';
import { settle, startFake } from '../helpers/fake-balancer.js';
import { FakeEngines, type FakeEngine } from '../helpers/fake-engine.js';

t.test('slow start ramps weights from 1 to full', async (t) => {
  t.equal(slowStartWeight(10, 0, 1000), 1);
  t.equal(slowStartWeight(10, 250, 1000), 3);
  t.equal(slowStartWeight(10, 500, 1000), 5);
  t.equal(slowStartWeight(10, 999, 1000), 10);
  t.equal(slowStartWeight(10, 1000, 1000), 10);
  t.equal(slowStartWeight(10, 5000, 0), 10, 'no slow start');
  t.equal(slowStartWeight(0, 0, 1000), 0, 'weight 0 stays 0');
});


t.test('registry: the engine sees operator state combined with health', async (t) => {
  t.equal(engineState({ state: 'up', health: 'up' }), 'up');
  t.equal(engineState({ state: 'up', health: 'unchecked' }), 'up');
  t.equal(engineState({ state: 'up', health: 'down' }), 'down');
  t.equal(engineState({ state: 'draining', health: 'up' }), 'draining');
  t.equal(engineState({ state: 'maintenance', health: 'down' }), 'maintenance');
  const config = await validateOptions({ listen: '127.0.0.1:0', backends: ['127.0.0.1:9001', '127.0.0.1:9002,weight=0'] });
  const r = new BackendRegistry();
  const [a, b] = config.listeners[0].backends.map((x) => r.add(0, 'l', x, 'up'));
  t.not(a.key, b.key);
  r.update(a, { health: 'down' });
  t.same(r.nativeTable(0).map((e) => [e.key, e.state, e.weight]), [[a.key, 1, 1], [b.key, 0, 0]], 'down by health is state 1 for the engine');
  r.remove(a);
  t.equal(r.byKey(a.key)?.id, a.id, 'a removed backend is still known by key');
  t.same(r.nativeTable(0).map((e) => e.key), [b.key]);
  t.throws(() => r.find('nope'), { code: 'LB4_UNKNOWN_BACKEND' });
});

// --- on a fake engine ------------------------------------------------------------------------

/** The engine key of the backend at `address`, from the tables the engine runs. */
function keyOf(engine: FakeEngine, address: string): number {
  for (const table of engine.tables) {
    const b = table.find((e) => `${e.ip}:${e.port}` === address);
    if (b) return b.key;
  }
  throw new Error(`the engine runs no backend at ${address}`);
}

/** A flow the engine holds open on a backend. */
function flow(id: number, listener: number, backendKey: number): NativeFlow {
  return { id, protocol: 'tcp', listener, worker: 0, state: 'established', client: `198.51.100.1:${40000 + id}`, backendKey, backend: 'x', startedAt: 1_700_000_000_000, bytesToBackend: 0, bytesToClient: 0 };
}

/** The weights the engine was sent for `key`, call by call. */
function weightsSent(engine: FakeEngine, key: number): number[] {
  return engine.callsOf('applyBackends').flatMap((c) => c.table.filter((b) => b.key === key).map((b) => b.weight));
}

const A = '192.0.2.1:80';
const B = '192.0.2.2:80';

t.test('registry: removed backends are known by key while flows run on them, then forgotten, so churn cannot grow it', async (t) => {
  const config = await validateOptions({ listen: '127.0.0.1:0', backends: ['127.0.0.1:9001', '127.0.0.1:9002'] });
  const [first, second] = config.listeners[0].backends;
  const r = new BackendRegistry();
  const kept = r.add(0, 'l', first, 'up');
  // A backend added and removed again and again (reloads, the admin API), each time with a new key.
  const removed = Array.from({ length: 1000 }, () => {
    const b = r.add(0, 'l', second, 'up');
    r.remove(b);
    return b;
  });
  t.equal(r.retiredCount, 1000);
  t.equal(r.byKey(removed[0].key)?.id, second.id, 'a removed backend keeps its name for the flows still open on it');
  const busy = removed[500].key;
  let open = true;
  const idle = (key: number) => key !== busy || !open;
  t.equal(r.forgetIdle(idle), 0, 'the first look only notes who is idle: queued events may still name them');
  t.equal(r.forgetIdle(idle), 999, 'idle at two looks in a row: forgotten');
  t.equal(r.byKey(removed[0].key), undefined);
  t.equal(r.byKey(busy)?.id, second.id, 'one with a flow still open keeps its name');
  t.equal(r.byKey(kept.key)?.id, first.id, 'backends in the table are never retired');
  open = false;
  r.forgetIdle(idle);
  t.equal(r.forgetIdle(idle), 1, 'forgotten once its last flow ended');
  t.equal(r.retiredCount, 0);

  // A failed reload puts a removed record back: it is no longer retired.
  const back = r.add(0, 'l', second, 'up');
  r.remove(back);
  r.restore(back);
  r.forgetIdle(() => true);
  r.forgetIdle(() => true);
  t.equal(r.byKey(back.key)?.id, second.id, 'a restored record stays known');
  // A late update of a forgotten record does not bring its key back.
  r.update(removed[0], { health: 'down' });
  t.equal(r.byKey(removed[0].key), undefined, 'an update does not revive a forgotten key');
});

t.test('drains: a backend leaving the tables keeps its flows until the drain timeout, then they are closed', async (t) => {
  for (const [state, engineState] of [['draining', NativeBackendState.draining], ['down', NativeBackendState.down], ['maintenance', NativeBackendState.maintenance]] as const) {
    await t.test(state, async (t) => {
      const { lb, engine, clock, logged } = await startFake(t, { listen: '127.0.0.1:0', backends: [A, B], drainTimeout: '10s' });
      const a = keyOf(engine, A);
      engine.flows = [flow(1, 0, a), flow(2, 0, a), flow(3, 0, keyOf(engine, B))];
      const [info] = await lb.setBackendState(A, state);
      t.match(info, { id: A, state, takesNewFlows: false }, 'the call answers with the new state');
      t.match(lb.backends().find((b) => b.id === A), { state, takesNewFlows: false }, 'the table shows it');
      t.equal(engine.entry(a)?.state, engineState, 'the engine runs it in that state');
      clock.advance(9_999);
      t.same(engine.callsOf('closeFlows'), [], 'no flow is closed before the drain timeout');
      clock.advance(1);
      t.same(engine.callsOf('closeFlows'), [{ method: 'closeFlows', filter: { backendKey: a }, closed: 2 }], "the backend's flows are closed at the drain timeout");
      t.same(engine.flows.map((f) => f.id), [3], "another backend's flows stay");
      await settle();
      t.match(logged('drain timeout: closed the flows still open'), [{ backend: A, closed: 2 }]);
      clock.advance(60_000);
      t.equal(engine.callsOf('closeFlows').length, 1, 'once');
    });
  }
});

t.test('drains: the timeout given with the call wins; a later drain replaces an earlier one', async (t) => {
  const { lb, engine, clock } = await startFake(t, { listen: '127.0.0.1:0', backends: [A, B], drainTimeout: '10s' });
  const a = keyOf(engine, A);
  await lb.setBackendState(A, 'draining', { drainTimeout: '2s' });
  clock.advance(1_000);
  await lb.setBackendState(A, 'maintenance', { drainTimeout: 500 });
  clock.advance(499);
  t.same(engine.callsOf('closeFlows'), []);
  clock.advance(1);
  t.same(engine.callsOf('closeFlows').map((c) => c.filter), [{ backendKey: a }], 'closed 500 ms after the second call');
  clock.advance(10_000);
  t.equal(engine.callsOf('closeFlows').length, 1, 'the first timer is gone');
});

t.test('drains: putting a backend back up before the timeout keeps its flows', async (t) => {
  const { lb, engine, clock } = await startFake(t, { listen: '127.0.0.1:0', backends: [A, B], drainTimeout: '10s' });
  const a = keyOf(engine, A);
  await lb.setBackendState(A, 'draining');
  clock.advance(5_000);
  const [info] = await lb.setBackendState(A, 'up');
  t.match(info, { state: 'up', takesNewFlows: true });
  t.equal(engine.entry(a)?.state, NativeBackendState.up);
  clock.advance(60_000);
  t.same(engine.callsOf('closeFlows'), [], 'no flow is closed');
  t.equal(clock.pending, 0, 'no timer is left');
});

t.test('drains: removeBackend takes the backend out of the table at once and closes its flows after drainTimeout', async (t) => {
  const { lb, engine, clock } = await startFake(t, { listen: '127.0.0.1:0', backends: [A, B], drainTimeout: '10s' });
  const a = keyOf(engine, A);
  engine.flows = [flow(1, 0, a)];
  await lb.removeBackend(A, { drainTimeout: '3s' });
  t.same(lb.backends().map((b) => b.id), [B]);
  t.equal(engine.entry(a), undefined, 'the engine no longer has it');
  t.same(engine.tables[0].map((b) => b.key), [keyOf(engine, B)]);
  clock.advance(2_999);
  t.same(engine.callsOf('closeFlows'), []);
  clock.advance(1);
  t.same(engine.callsOf('closeFlows'), [{ method: 'closeFlows', filter: { backendKey: a }, closed: 1 }]);

  // With no timeout given, the configured one applies.
  const b = keyOf(engine, B);
  await lb.removeBackend(B);
  clock.advance(9_999);
  t.equal(engine.callsOf('closeFlows').length, 1);
  clock.advance(1);
  t.same(engine.callsOf('closeFlows')[1].filter, { backendKey: b });
});

t.test('drains: close() stops the drain timers (the engine drains as a whole)', async (t) => {
  const { lb, engine, clock } = await startFake(t, { listen: '127.0.0.1:0', backends: [A, B], drainTimeout: '10s' });
  await lb.setBackendState(A, 'draining');
  await lb.close({ drainTimeout: 0 });
  t.equal(clock.pending, 0, 'no timer is left');
  clock.advance(60_000);
  t.same(engine.callsOf('closeFlows'), []);
  await t.rejects(lb.setBackendState(A, 'up'), { code: 'LB4_CLOSED' });
});

t.test('slow start: a backend back up ramps its weight up in steps sent to the engine, to its full weight', async (t) => {
  const { lb, engine, clock, logged } = await startFake(t, { listen: '127.0.0.1:0', backends: [`${A},weight=10`, B], slowStart: '10s' });
  const a = keyOf(engine, A);
  await lb.setBackendState(A, 'down');
  t.equal(engine.entry(a)?.state, NativeBackendState.down);
  engine.clearCalls();

  const [info] = await lb.setBackendState(A, 'up');
  t.match(info, { state: 'up', weight: 10, effectiveWeight: 1, takesNewFlows: true }, 'it comes back at weight 1');
  t.match(engine.entry(a), { state: NativeBackendState.up, weight: 1 });
  const seen = [lb.backends()[0].effectiveWeight];
  for (let step = 1; step <= 10; step++) {
    clock.advance(1_000);
    seen.push(lb.backends()[0].effectiveWeight);
  }
  t.same(seen, [1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'one step a tenth of the period, linear, ending at the full weight');
  t.same(weightsSent(engine, a), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'each new weight is sent to the engine, once');
  t.equal(engine.entry(a)?.weight, 10);
  t.match(logged('slow start finished'), [{ backend: A, weight: 10 }]);
  const sent = engine.callsOf('applyBackends').length;
  clock.advance(60_000);
  t.equal(engine.callsOf('applyBackends').length, sent, 'nothing is sent once the ramp is over');
  t.equal(clock.pending, 0, 'no timer is left');
  t.same(weightsSent(engine, keyOf(engine, B)).filter((w) => w !== 1), [], 'the other backend keeps its weight');
});

t.test('slow start: going down during the ramp stops it; coming back starts a new one', async (t) => {
  const { lb, engine, clock } = await startFake(t, { listen: '127.0.0.1:0', backends: [`${A},weight=10`, B], slowStart: '10s', drainTimeout: '1m' });
  const a = keyOf(engine, A);
  await lb.setBackendState(A, 'maintenance');
  await lb.setBackendState(A, 'up');
  clock.advance(3_000);
  t.equal(lb.backends()[0].effectiveWeight, 3);
  const [down] = await lb.setBackendState(A, 'down');
  t.match(lb.backends()[0], { state: 'down', effectiveWeight: 10, takesNewFlows: false }, 'a backend out of the tables keeps its full weight for later');
  t.same(down, lb.backends()[0], 'the call answers with the backend as it now is');
  t.match(engine.entry(a), { state: NativeBackendState.down });
  engine.clearCalls();
  clock.advance(20_000);
  t.same(engine.callsOf('applyBackends'), [], 'the ramp sends nothing more');

  await lb.setBackendState(A, 'up');
  t.equal(engine.entry(a)?.weight, 1, 'back up: a new ramp from 1');
  clock.advance(10_000);
  t.equal(engine.entry(a)?.weight, 10);
});

t.test('slow start: a new weight during the ramp applies in full at once; weight 1 and no slow start do not ramp', async (t) => {
  const { lb, engine, clock } = await startFake(t, { listen: '127.0.0.1:0', backends: [`${A},weight=10`, B], slowStart: '10s' });
  const a = keyOf(engine, A);
  const b = keyOf(engine, B);
  await lb.setBackendState(A, 'down');
  await lb.setBackendState(A, 'up');
  clock.advance(2_000);
  const [info] = await lb.setBackendWeight(A, 4);
  t.match(info, { weight: 4, effectiveWeight: 4 });
  t.equal(engine.entry(a)?.weight, 4);
  clock.advance(20_000);
  t.equal(engine.entry(a)?.weight, 4, 'the ramp is over');

  await lb.setBackendState(B, 'down');
  await lb.setBackendState(B, 'up');
  t.equal(engine.entry(b)?.weight, 1, 'weight 1 is already the least a ramp starts from');
  t.equal(clock.pending, 0, 'no ramp for it');

  const plain = await startFake(t, { listen: '127.0.0.1:0', backends: [`${A},weight=10`] });
  await plain.lb.setBackendState(A, 'down');
  await plain.lb.setBackendState(A, 'up');
  t.equal(plain.engine.entry(keyOf(plain.engine, A))?.weight, 10, 'without slow start, the full weight at once');
});

/** A report of connects to one backend, as the engine sends it. */
function connects(backendKey: number, failures: number, successes: number, trailingFailures: number): NativeEvent {
  return { type: 'backend-connects', worker: 0, backendKey, failures, timeouts: 0, successes, trailingFailures };
}

const checked = (passiveFailures: number) =>
  ({
    listeners: [
      { name: 'checked', listen: '127.0.0.1:0', backends: [A, B], health: { type: 'tcp', interval: '1m' } },
      { name: 'unchecked', listen: '127.0.0.1:0', backends: [A, B] },
    ],
    passiveFailures,
  }) satisfies BalancerOptions;

t.test('passive health: N consecutive connect failures take a checked backend down', async (t) => {
  const { lb, engine } = await startFake(t, checked(3));
  const a = keyOf(engine, A);
  const health: BalancerEvents['backend-health'][0][] = [];
  const failures: BalancerEvents['backend-connect-failures'][0][] = [];
  lb.on('backend-health', (e) => health.push(e));
  lb.on('backend-connect-failures', (e) => failures.push(e));
  engine.clearCalls();

  engine.emit(connects(a, 2, 0, 2));
  t.match(lb.backends({ listener: 'checked' })[0], { health: 'up', takesNewFlows: true }, 'two failures are not enough');
  t.same(failures, [{ listener: 'checked', backend: A, failures: 2, timeouts: 0, successes: 0 }], 'failures are reported as they come');
  t.same(engine.callsOf('applyBackends'), [], 'nothing changes in the engine');

  engine.emit(connects(a, 1, 0, 1));
  const reason = '3 consecutive connect failures (passive)';
  t.match(lb.backends({ listener: 'checked' })[0], { health: 'down', healthReason: reason, takesNewFlows: false }, 'the third in a row takes it down');
  t.same(health, [{ listener: 'checked', backend: A, health: 'down', reason }]);
  t.equal(engine.entry(a)?.state, NativeBackendState.down, 'the engine runs it down');

  engine.emit(connects(a, 5, 0, 5));
  t.equal(health.length, 1, 'a backend already down is not taken down again');
  t.equal(lb.backends({ listener: 'checked' })[1].health, 'up', 'the other backend is untouched');
});

t.test('passive health: a success in between starts the count again', async (t) => {
  const { lb, engine } = await startFake(t, checked(3));
  const a = keyOf(engine, A);
  engine.emit(connects(a, 2, 0, 2));
  engine.emit(connects(a, 4, 1, 0));
  engine.emit(connects(a, 2, 0, 2));
  t.equal(lb.backends({ listener: 'checked' })[0].health, 'up', '2, then a success, then 2: never 3 in a row');
  engine.emit(connects(a, 3, 1, 1));
  t.equal(lb.backends({ listener: 'checked' })[0].health, 'up', 'a report with a success counts only the failures after it');
  engine.emit(connects(a, 2, 0, 2));
  t.equal(lb.backends({ listener: 'checked' })[0].health, 'down', '1 + 2 in a row');
});

t.test('passive health: unchecked listeners, and passiveFailures 0, never mark a backend down', async (t) => {
  const { lb, engine } = await startFake(t, checked(3));
  const a = keyOf(engine, A);
  const unchecked = engine.tables[1].find((b) => b.ip === '192.0.2.1')!.key;
  t.not(unchecked, a, 'the same address has a key per listener');
  let events = 0;
  lb.on('backend-health', () => events++);
  engine.clearCalls();
  engine.emit(connects(unchecked, 10, 0, 10), connects(unchecked, 10, 0, 10));
  t.match(lb.backends({ listener: 'unchecked' })[0], { health: 'unchecked', takesNewFlows: true }, 'only active checks could bring it back, so it is never taken down');
  t.equal(events, 0);
  t.same(engine.callsOf('applyBackends'), []);

  const off = await startFake(t, checked(0));
  off.engine.emit(connects(keyOf(off.engine, A), 50, 0, 50));
  t.equal(off.lb.backends({ listener: 'checked' })[0].health, 'up', 'passiveFailures 0 turns passive health off');
});

t.test('passive health: an unchecked UDP backend goes down after N refusals, is tried again after --passive-retry, and goes down again after one more', async (t) => {
  const { lb, engine, clock } = await startFake(t, {
    listeners: [
      { name: 'dns', listen: '127.0.0.1:0/udp', backends: [A, B] },
      { name: 'web', listen: '127.0.0.1:0', backends: [A, B] },
    ],
    passiveFailures: 3,
    passiveRetry: '2s',
  });
  const a = engine.tables[0].find((b) => b.ip === '192.0.2.1')!.key;
  const health: BalancerEvents['backend-health'][0][] = [];
  lb.on('backend-health', (e) => health.push(e));
  engine.emit(connects(a, 2, 0, 2));
  t.equal(lb.backends({ listener: 'dns' })[0].health, 'unchecked', 'two refusals are not enough');
  engine.emit(connects(a, 1, 0, 1));
  t.match(lb.backends({ listener: 'dns' })[0], { health: 'down', takesNewFlows: false, healthReason: '3 consecutive refusals (passive); tried again in 2s' });
  t.equal(engine.entry(a)?.state, NativeBackendState.down, 'the engine sends new sessions elsewhere');
  t.equal(lb.backends({ listener: 'dns' })[1].health, 'unchecked', 'the other backend is untouched');
  clock.advance(1_999);
  t.equal(lb.backends({ listener: 'dns' })[0].health, 'down');
  clock.advance(1);
  await settle();
  t.match(lb.backends({ listener: 'dns' })[0], { health: 'unchecked', takesNewFlows: true }, 'tried again after the hold');
  t.equal(engine.entry(a)?.state, NativeBackendState.up);
  engine.emit(connects(a, 1, 0, 1));
  t.equal(lb.backends({ listener: 'dns' })[0].health, 'down', 'still refusing: one more refusal takes it down again');
  clock.advance(2_000);
  await settle();
  engine.emit(connects(a, 3, 1, 0));
  t.equal(lb.backends({ listener: 'dns' })[0].health, 'unchecked', 'an answer starts the count again');
  engine.emit(connects(a, 2, 0, 2));
  t.equal(lb.backends({ listener: 'dns' })[0].health, 'unchecked', 'then it takes N refusals again');
  t.same(health.map((e) => e.health), ['down', 'unchecked', 'down', 'unchecked']);
  // A TCP listener's unchecked backend is never taken down: a refused connect is retried elsewhere.
  const web = engine.tables[1].find((b) => b.ip === '192.0.2.1')!.key;
  engine.emit(connects(web, 10, 0, 10));
  t.equal(lb.backends({ listener: 'web' })[0].health, 'unchecked');
});

t.test('passive health on UDP fails open: refusals never take down the last backend taking sessions', async (t) => {
  // Forged ICMP errors sprayed over lb4's ephemeral ports can fake refusals for every backend.
  const { lb, engine } = await startFake(t, { listen: '127.0.0.1:0/udp', backends: [A, B], passiveFailures: 3, passiveRetry: '2s' });
  const [a, b] = [A, B].map((id) => engine.tables[0].find((x) => `${x.ip}` === id.split(':')[0])!.key);
  engine.emit(connects(a, 3, 0, 3));
  t.equal(lb.backends()[0].health, 'down', 'the first goes down: the other still takes sessions');
  engine.emit(connects(b, 30, 0, 30));
  t.match(lb.backends()[1], { health: 'unchecked', takesNewFlows: true }, 'the last one stays');
  t.equal(engine.entry(b)?.state, NativeBackendState.up);

  const single = await startFake(t, { listen: '127.0.0.1:0/udp', backends: [A], passiveFailures: 3 });
  single.engine.emit(connects(keyOf(single.engine, A), 10, 0, 10));
  t.match(single.lb.backends()[0], { health: 'unchecked', takesNewFlows: true }, 'a single backend is never held out after it comes back');
});

t.test('passive health: a retry timer set before a reload added active checks leaves the backend to them', async (t) => {
  const { lb, engine, clock } = await startFake(t, { listen: '127.0.0.1:0/udp', backends: [A, B], passiveFailures: 3, passiveRetry: '2s' });
  const a = engine.tables[0].find((x) => x.ip === '192.0.2.1')!.key;
  engine.emit(connects(a, 3, 0, 3));
  t.equal(lb.backends()[0].health, 'down');
  await lb.reload({ listen: '127.0.0.1:0/udp', backends: [A, B], passiveFailures: 3, passiveRetry: '2s', health: { type: 'udp', send: 'ping', expect: 'pong', interval: '1m' } });
  clock.advance(2_000);
  await settle();
  t.not(lb.backends()[0].health, 'unchecked', 'a checked backend is never set unchecked by the old timer');
});

t.test('passive health: reports for a removed backend are ignored', async (t) => {
  const { lb, engine } = await startFake(t, checked(1));
  const a = keyOf(engine, A);
  await lb.removeBackend(A, { listener: 'checked', drainTimeout: 0 });
  let events = 0;
  lb.on('backend-health', () => events++);
  engine.clearCalls();
  engine.emit(connects(a, 3, 0, 3));
  t.equal(events, 0);
  t.same(engine.callsOf('applyBackends'), [], 'no table is sent for it');
});

// --- the batching promise of engine-sync -----------------------------------------------------

t.test('engine sync: a change to one listener marks only that listener changed', async (t) => {
  const { lb, engine } = await startFake(t, {
    listeners: [
      { name: 'web', listen: '127.0.0.1:0', backends: [A, B] },
      { name: 'api', listen: '127.0.0.1:0', backends: [A, B] },
    ],
  });
  const webTable = structuredClone(engine.tables[0]);
  engine.clearCalls();
  await lb.setBackendWeight(B, 7, { listener: 'api' });
  const calls = engine.callsOf('applyBackends');
  t.same(calls.map((c) => [c.slot, c.changed]), [[1, true]], "one call: api's table, changed");
  t.same(engine.tables[0], webTable, "web's table is as it was");
  t.equal(engine.tables[1][1].weight, 7);

  engine.clearCalls();
  await lb.addBackend('192.0.2.3:80', { listener: 'web' });
  t.same(engine.callsOf('applyBackends').map((c) => c.slot), [0], 'an added backend changes its listener only');
  engine.clearCalls();
  await lb.setBackendState(A, 'draining');
  t.same(engine.callsOf('applyBackends').map((c) => c.slot), [0, 1], 'a change in every listener: each listener sent once');
});

t.test('engine sync: a call that changes nothing the engine runs sends nothing', async (t) => {
  const { lb, engine } = await startFake(t, { listen: '127.0.0.1:0', backends: [`${A},weight=3`, B] });
  engine.clearCalls();
  t.match(await lb.setBackendState(A, 'up'), [{ state: 'up' }]);
  t.match(await lb.setBackendWeight(A, 3), [{ weight: 3 }]);
  t.same(engine.callsOf('applyBackends'), [], 'the same state and the same weight again send nothing');
  await lb.setBackendWeight(A, 4);
  t.same(engine.callsOf('applyBackends').map((c) => [c.slot, c.changed]), [[0, true]], 'a real change is sent');
});

t.test('engine sync: the registry notes the slots each change touches', async (t) => {
  const config = await validateOptions({ listen: '127.0.0.1:0', backends: [A, B] });
  const r = new BackendRegistry();
  const [a, b] = config.listeners[0].backends.map((x, i) => r.add(i, 'l', x, 'up'));
  t.same([...r.takeChanged()], [0, 1]);
  t.same([...r.takeChanged()], [], 'taken: nothing is left');
  r.update(b, { weight: 3, effectiveWeight: 3 });
  t.same([...r.takeChanged()], [1]);
  r.update(b, { healthReason: 'a reason', address: 'another spelling' });
  r.update(a, { health: 'unchecked' });
  t.same([...r.takeChanged()], [], 'a change the engine does not see touches no slot');
  r.update(a, { health: 'down' });
  t.same([...r.takeChanged()], [0], 'down by health is a change the engine sees');
  r.remove(a);
  r.remove(a);
  t.same([...r.takeChanged()], [0], 'removing a removed backend changes nothing more');
});

t.test('engine sync: a flush with nothing changed sends nothing, and waits for the call in flight', async (t) => {
  const config = await validateOptions({
    listeners: [
      { name: 'web', listen: '127.0.0.1:0', backends: [A] },
      { name: 'api', listen: '127.0.0.1:0', backends: [B], algorithm: 'leastconn' },
    ],
  });
  const registry = new BackendRegistry();
  config.listeners.forEach((l, slot) => l.backends.forEach((b) => registry.add(slot, l.name, b, 'unchecked')));
  const engines = new FakeEngines();
  const { engine: native, addresses } = openEngine(config, [registry.nativeTable(0), registry.nativeTable(1)], engines.create);
  const engine = engines.engine;
  t.equal(native, engine);
  registry.takeChanged();
  const listeners = new ListenerTable(addresses.map((address, slot) => ({ slot, config: config.listeners[slot], address })));
  let closed = false;
  const sync = new EngineSync(engine, registry, listeners, silentLogger(), () => closed);
  engine.clearCalls();

  await sync.flush();
  t.same(engine.callsOf('applyBackends'), [], 'nothing changed, nothing sent');

  const release = engine.holdApplies();
  registry.update(registry.list(0)[0], { weight: 2, effectiveWeight: 2 });
  let first = false;
  void sync.flush().then(() => (first = true));
  t.same(engine.callsOf('applyBackends').map((c) => [c.slot, c.algorithm]), [[0, 0]], "only the changed listener is sent, with its algorithm");
  let second = false;
  void sync.flush().then(() => (second = true));
  await settle();
  t.equal(engine.callsOf('applyBackends').length, 1, 'a flush with nothing new sends nothing more');
  t.notOk(second, '... but resolves only once the engine runs the last tables');
  release();
  await settle();
  t.ok(first && second);

  sync.markChanged(1);
  await sync.flush();
  t.same(engine.callsOf('applyBackends').at(-1), { method: 'applyBackends', slot: 1, table: registry.nativeTable(1), algorithm: 1, changed: false }, "an algorithm change resends that listener's table");

  closed = true;
  registry.update(registry.list(0)[0], { weight: 3, effectiveWeight: 3 });
  engine.clearCalls();
  await sync.flush();
  t.same(engine.callsOf('applyBackends'), [], 'nothing is sent once the balancer is closing');
});

t.test('registry: a backend added again under an id whose key was forgotten gets that key back', async (t) => {
  const config = await validateOptions({ listen: '127.0.0.1:0', backends: ['127.0.0.1:9001', '127.0.0.1:9002'] });
  const [a, b] = config.listeners[0].backends;
  const r = new BackendRegistry();
  // An address that flaps: added, removed, forgotten once idle, added again, a thousand times.
  const first = r.add(0, 'l', a, 'up');
  const keys = new Set<number>();
  for (let i = 0; i < 1000; i++) {
    r.remove(r.get(0, a.id)!);
    r.forgetIdle(() => true);
    r.forgetIdle(() => true);
    keys.add(r.add(0, 'l', a, 'up').key);
  }
  t.same([...keys], [first.key], "each return has the same engine key, so the engine's counters for it go on");
  t.equal(r.nativeTable(0)[0].key, first.key);
  const other = r.add(0, 'l', b, 'up');
  t.equal(other.key, first.key + 1, 'only one new key was ever made, for the other id');
  t.equal(r.add(1, 'm', a, 'up').key, first.key + 2, 'the same id in another listener slot is another backend');

  // Added again while its key is still retired (flows may still name it): a new key.
  r.remove(other);
  const again = r.add(0, 'l', b, 'up');
  t.not(again.key, other.key);
  r.forgetIdle(() => true);
  r.forgetIdle(() => true);
  r.remove(again);
  const last = r.add(0, 'l', b, 'up');
  t.not(last.key, other.key, 'a key forgotten while another record had its id is not handed out');
  t.not(last.key, again.key, 'nor one still retired');

  // A record put back (a failed reload) after its key was forgotten holds that key again: an add of
  // its id, once it is removed, does not hand the key out a second time.
  const c = r.add(2, 'n', a, 'up');
  r.remove(c);
  r.forgetIdle(() => true);
  r.forgetIdle(() => true);
  r.restore(c);
  r.remove(c);
  t.not(r.add(2, 'n', a, 'up').key, c.key, 'the key a retired record holds is not reused');
});

t.test('registry: rename keeps the key, so the flows and counters of a renamed backend go on', async (t) => {
  const config = await validateOptions({ listen: '127.0.0.1:0', backends: ['127.0.0.1:9001', '127.0.0.1:9002'] });
  const [a, b] = config.listeners[0].backends;
  const r = new BackendRegistry();
  const old = r.add(0, 'l', a, 'up');
  r.add(0, 'l', b, 'up');
  r.takeChanged();
  const renamed = r.rename(old, { id: 'web/127.0.0.1:9001', address: '127.0.0.1:9001', entry: 'web' });
  t.equal(renamed.key, old.key);
  t.equal(r.get(0, a.id), undefined, 'the old id is gone');
  t.equal(r.get(0, 'web/127.0.0.1:9001')?.key, old.key);
  t.equal(r.byKey(old.key)?.id, 'web/127.0.0.1:9001', 'flows on the key now name the new id');
  t.equal(r.retiredCount, 0, 'nothing was retired: no drain, nothing to forget');
  t.same([...r.takeChanged()], [0], 'the table is sent again, with the new id');
  t.throws(() => r.rename(renamed, { id: b.id, address: b.address, entry: 'web' }), { code: 'LB4_DUPLICATE_BACKEND' });
});
