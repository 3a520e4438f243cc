// The library as a Node user expects it: `await using` closes a balancer, an AbortSignal closes
// it (or stops it from starting), and every change to a backend is an event, whoever made it: a
// library call, the admin API, a reload (and none for a reload that rolled back), health checks.

import { getEventListeners, once } from 'node:events';
import t from 'tap';
import { AbortError, startBalancer, type Balancer, type BalancerEvents } from '../../lib/index.js';
import { createEngine } from '../../lib/engine/addon.js';
import { startWithHooks } from '../../lib/internal.js';
import { call } from '../helpers/admin-http.js';
import { echoBackend, refusingPort, within } from '../helpers/sockets.js';

type BackendEventName = 'backend-added' | 'backend-removed' | 'backend-state' | 'backend-weight' | 'backend-health';
const names: BackendEventName[] = ['backend-added', 'backend-removed', 'backend-state', 'backend-weight', 'backend-health'];

/** Every backend event `lb` emits from now on, in order, as [name, payload]. */
function record(lb: Balancer): Array<[BackendEventName, BalancerEvents[BackendEventName][0]]> {
  const seen: Array<[BackendEventName, BalancerEvents[BackendEventName][0]]> = [];
  for (const name of names) lb.on(name, (e: BalancerEvents[BackendEventName][0]) => seen.push([name, e]));
  return seen;
}

t.test('await using closes the balancer at the end of the block', async (t) => {
  const backend = await echoBackend();
  t.teardown(() => backend.close());
  let lb: Balancer | undefined;
  {
    await using running = await startBalancer({ listen: '127.0.0.1:0', backends: [backend.address], workers: 1 });
    lb = running;
    t.equal(running.closed, false);
  }
  t.equal(lb.closed, true);
});

t.test('an aborted signal', async (t) => {
  const backend = await echoBackend();
  t.teardown(() => backend.close());

  await t.test('before the start: rejects with an AbortError and opens nothing', async (t) => {
    const controller = new AbortController();
    const reason = new Error('not today');
    controller.abort(reason);
    let engines = 0;
    const err = await startWithHooks({ listen: '127.0.0.1:0', backends: [backend.address], signal: controller.signal }, {
      createEngine: (options) => {
        engines++;
        return createEngine(options);
      },
    }).catch((e: unknown) => e);
    t.type(err, AbortError);
    t.match(err, { name: 'AbortError', code: 'ABORT_ERR', cause: reason });
    t.equal(engines, 0, 'no engine was made');
  });

  await t.test('while running: closes the balancer', async (t) => {
    const controller = new AbortController();
    const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [backend.address], workers: 1, signal: controller.signal });
    t.teardown(() => lb.close({ drainTimeout: 0 }));
    const closed = once(lb, 'close');
    controller.abort();
    await within(closed, 10_000, 'the close event');
    t.equal(lb.closed, true);
  });

  await t.test('a balancer closed otherwise stops listening to its signal', async (t) => {
    const controller = new AbortController();
    const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [backend.address], workers: 1, signal: controller.signal });
    t.equal(getEventListeners(controller.signal, 'abort').length, 1);
    await lb.close();
    t.equal(getEventListeners(controller.signal, 'abort').length, 0);
  });
});

t.test('every backend change is an event, whoever made it', async (t) => {
  const one = await echoBackend();
  const two = await echoBackend();
  t.teardown(() => Promise.all([one.close(), two.close()]));
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [`${one.address},id=one`], workers: 1, admin: { listen: '127.0.0.1:0' } });
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  const admin = { port: Number(new URL(lb.adminUrl!).port) };
  const listener = lb.config.listeners[0]!.name;
  const seen = record(lb);

  await t.test('library calls', async (t) => {
    seen.length = 0;
    await lb.addBackend(`${two.address},id=two`);
    await lb.setBackendWeight('two', 5);
    await lb.setBackendWeight('two', 5);
    await lb.setBackendState('two', 'draining');
    await lb.removeBackend('two');
    t.same(seen, [
      ['backend-added', { listener, backend: 'two', address: two.address, weight: 1, state: 'up', by: 'operator' }],
      ['backend-weight', { listener, backend: 'two', from: 1, to: 5, by: 'operator' }],
      ['backend-state', { listener, backend: 'two', from: 'up', to: 'draining', by: 'operator' }],
      ['backend-removed', { listener, backend: 'two', by: 'operator' }],
    ], 'one event per change; setting the same weight again changes nothing');
  });

  await t.test('the admin API', async (t) => {
    seen.length = 0;
    t.equal((await call(admin, 'POST', '/backends/one/drain')).status, 200);
    t.equal((await call(admin, 'PUT', '/backends/one/weight', { body: { weight: 3 } })).status, 200);
    t.equal((await call(admin, 'POST', '/backends/one/enable')).status, 200);
    t.same(seen, [
      ['backend-state', { listener, backend: 'one', from: 'up', to: 'draining', by: 'operator' }],
      ['backend-weight', { listener, backend: 'one', from: 1, to: 3, by: 'operator' }],
      ['backend-state', { listener, backend: 'one', from: 'draining', to: 'up', by: 'operator' }],
    ]);
  });

  await t.test('a reload, after which the reload event comes', async (t) => {
    seen.length = 0;
    const order: string[] = [];
    const onReload = () => order.push(`reload after ${seen.length}`);
    lb.on('reload', onReload);
    t.teardown(() => lb.off('reload', onReload));
    const admin = { listen: `127.0.0.1:${new URL(lb.adminUrl!).port}` };
    await lb.reload({ listen: '127.0.0.1:0', backends: [`${one.address},id=one,weight=2,state=maintenance`, `${two.address},id=two`], workers: 1, admin });
    t.same(seen, [
      ['backend-added', { listener, backend: 'two', address: two.address, weight: 1, state: 'up', by: 'reload' }],
      ['backend-weight', { listener, backend: 'one', from: 3, to: 2, by: 'reload' }],
      ['backend-state', { listener, backend: 'one', from: 'up', to: 'maintenance', by: 'reload' }],
    ]);
    t.same(order, ['reload after 3']);
    seen.length = 0;
    await lb.reload({ listen: '127.0.0.1:0', backends: [`${one.address},id=one,weight=2,state=maintenance`], workers: 1, admin });
    t.same(seen, [['backend-removed', { listener, backend: 'two', by: 'reload' }]]);
  });

  await t.test('a reload that is rejected tells nothing', async (t) => {
    seen.length = 0;
    // The new listener's port is the kept listener's: it cannot open, and nothing changes.
    const port = lb.address().port;
    await t.rejects(lb.reload({ listeners: [{ name: listener, listen: `127.0.0.1:${port}`, backends: [`${two.address},id=three`] }, { name: 'taken', listen: `127.0.0.1:${port}`, backends: [one.address] }], workers: 1 }));
    t.same(seen, []);
  });
});

t.test('health checks: backend-health', async (t) => {
  const port = await refusingPort();
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [`127.0.0.1:${port},id=gone`], workers: 1, health: { type: 'tcp', interval: 50, timeout: 50, rise: 1, fall: 1, jitter: 0 } });
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  const [event] = await within(once(lb, 'backend-health'), 10_000, 'a backend-health event');
  t.match(event, { listener: lb.config.listeners[0]!.name, backend: 'gone', health: 'down', reason: /refused/i });
});
