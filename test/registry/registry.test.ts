// The backend registry and what changes it: the registry's combination of operator state and
// health, the slow-start ramp, and (on a fake engine with a hand-advanced clock) drains, slow
// start, passive health and the batching of changes sent to the engine. No sockets needed.

import t from 'tap';
import { validateOptions } from '../../lib/config/validate.js';
import { BackendRegistry, engineState } from '../../lib/registry/registry.js';
import { slowStartWeight } from '../../lib/registry/slow-start.js';

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
