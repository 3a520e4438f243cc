// Reloads without sockets: the plan (what a new config changes against the running one), and its
// application to a running control plane on a fake engine.

import t from 'tap';
import { validateOptions } from '../../lib/config/validate.js';
import { planReload } from '../../lib/reload/plan.js';

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
