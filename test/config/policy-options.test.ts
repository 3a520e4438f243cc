// The traffic policy options: defaults, top-level values as every listener's default and a
// listener's own, backend maxConnections (object and CLI forms), bad values with the field named,
// what the engine gets, and a reload that marks a kept listener's policy changed (and a backend's
// limit) only when it did.

import t from 'tap';
import { parseBackendSpec, validateOptions } from '../../lib/config/validate.js';
import { nativeListener } from '../../lib/engine/open.js';
import { planReload } from '../../lib/reload/plan.js';

const base = { listen: '127.0.0.1:0', backends: ['127.0.0.1:9'] };

t.test('defaults: no list, no limit, no queue, a 5 s queue timeout', async (t) => {
  const config = await validateOptions(base);
  t.same(config.listeners[0].policy, { allow: [], deny: [], maxConnections: 0, maxConnectionsPerSource: 0, connectionRatePerSource: 0, queueSize: 0, queueTimeout: 5000 });
  t.equal(config.listeners[0].backends[0].maxConnections, 0);
  t.same(nativeListener(config.listeners[0]).policy, { allow: [], deny: [], maxConnections: 0, maxConnectionsPerSource: 0, connectionRatePerSource: 0, queueSize: 0, queueTimeoutMs: 5000 });
});

t.test("top-level values are every listener's default; a listener may set its own", async (t) => {
  const config = await validateOptions({
    deny: '203.0.113.0/24',
    maxConnections: 100,
    connectionRatePerSource: '20',
    queueTimeout: '250ms',
    listeners: [
      { listen: '127.0.0.1:0', name: 'inherits', backends: ['127.0.0.1:9,maxconn=7'] },
      {
        listen: '[::1]:0', name: 'own', allow: ['10.0.0.0/8', '::1'], deny: [], maxConnections: 5, maxConnectionsPerSource: 2, queueSize: 3,
        backends: [{ address: '127.0.0.1:9', maxConnections: 4 }],
      },
      { listen: '127.0.0.1:0/udp', name: 'udp', maxConnections: 0, connectionRatePerSource: 0, allow: '127.0.0.0/8', backends: ['127.0.0.1:9'] },
    ],
  });
  const [inherits, own, udp] = config.listeners;
  t.same(inherits.policy, { allow: [], deny: ['203.0.113.0/24'], maxConnections: 100, maxConnectionsPerSource: 0, connectionRatePerSource: 20, queueSize: 0, queueTimeout: 250 });
  t.equal(inherits.backends[0].maxConnections, 7, 'maxconn=N on the CLI form');
  t.same(own.policy, { allow: ['10.0.0.0/8', '::1/128'], deny: [], maxConnections: 5, maxConnectionsPerSource: 2, connectionRatePerSource: 20, queueSize: 3, queueTimeout: 250 });
  t.equal(own.backends[0].maxConnections, 4);
  t.same(udp.policy.allow, ['127.0.0.0/8'], 'UDP listeners take access lists');
  t.match(nativeListener(own).policy, { allow: ['10.0.0.0/8', '::1/128'], maxConnections: 5, maxConnectionsPerSource: 2, connectionRatePerSource: 20, queueSize: 3, queueTimeoutMs: 250 });
  t.same(parseBackendSpec('127.0.0.1:9,weight=2,maxconn=0', 'backend'), { address: '127.0.0.1:9', weight: 2, maxConnections: 0 });
});

t.test('bad values name their field', async (t) => {
  const listener = (extra: object) => ({ listeners: [{ listen: '127.0.0.1:0', backends: ['127.0.0.1:9'], ...extra }] });
  const cases: Array<[object, string, RegExp]> = [
    [{ ...base, allow: ['10.0.0.0/8', '10.0.0.0/33'] }, 'allow[1]', /prefix \/33 is longer than an IPv4 address/],
    [{ ...base, deny: 'example.com/8' }, 'deny', /not a network/],
    [{ ...base, deny: [7] }, 'deny[0]', /must be a network/],
    [{ ...base, maxConnections: -1 }, 'maxConnections', /between 0 and/],
    [{ ...base, maxConnectionsPerSource: 1.5 }, 'maxConnectionsPerSource', /whole number/],
    [{ ...base, connectionRatePerSource: 'fast' }, 'connectionRatePerSource', /whole number/],
    [{ ...base, queueSize: -3 }, 'queueSize', /between 0 and/],
    [{ ...base, queueTimeout: 0 }, 'queueTimeout', /between/],
    [{ ...base, queueTimeout: '5' }, 'queueTimeout', /unit/],
    [listener({ allow: ['::/129'] }), 'listeners[0].allow[0]', /IPv6/],
    [listener({ maxConnections: -5 }), 'listeners[0].maxConnections', /between 0 and/],
    [listener({ maxConnection: 5 }), 'listeners[0].maxConnection', /unknown option/],
    [{ listeners: [{ listen: '127.0.0.1:0', backends: [{ address: '127.0.0.1:9', maxConnections: -1 }] }] }, 'listeners[0].backends[0].maxConnections', /0 to 100000000/],
    [{ listeners: [{ listen: '127.0.0.1:0', backends: [{ address: '127.0.0.1:9', maxConnections: '3' }] }] }, 'listeners[0].backends[0].maxConnections', /whole number/],
    [{ listen: '127.0.0.1:0', backends: ['127.0.0.1:9,maxconn=x'] }, 'backends', /maxconn must be a whole number/],
    [{ listeners: [{ listen: '127.0.0.1:0/udp', queueSize: 2, backends: ['127.0.0.1:9'] }] }, 'listeners[0].queueSize', /for TCP listeners/],
    [{ listen: '127.0.0.1:0/udp', backends: ['127.0.0.1:9'], maxConnectionsPerSource: 2 }, 'maxConnectionsPerSource', /for TCP listeners/],
    [{ listeners: [{ listen: '127.0.0.1:0', forward: 'nat', deny: '10.0.0.0/8', backends: ['127.0.0.1:9'] }] }, 'listeners[0].deny', /need forward: proxy/],
    [{ listen: '127.0.0.1:0', forward: 'nat', backends: ['127.0.0.1:9'], maxConnections: 9 }, 'maxConnections', /need forward: proxy/],
  ];
  for (const [options, field, message] of cases) {
    const err = await validateOptions(options as never).catch((e: unknown) => e);
    t.match(err, { code: /^LB4_INVALID_(OPTION|DURATION)$/, field, message }, `${field}: ${(err as Error).message}`);
  }
});

t.test('a reload marks a kept listener policyChanged, and a backend changed for its limit, only when they did', async (t) => {
  const listen = (extra: object = {}) => ({ listen: '127.0.0.1:7000', name: 'web', ...extra });
  const before = await validateOptions({ ...base, listen: listen() });
  for (const change of [{ allow: ['127.0.0.1'] }, { deny: '::1' }, { maxConnections: 3 }, { maxConnectionsPerSource: 1 }, { connectionRatePerSource: 1 }, { queueSize: 1 }, { queueTimeout: '1s' }]) {
    const plan = planReload(before, await validateOptions({ ...base, listen: listen(change) as never }));
    t.same([plan.removedListeners, plan.addedListeners, plan.keptListeners.map((k) => k.policyChanged)], [[], [], [true]], JSON.stringify(change));
  }
  const same = planReload(before, await validateOptions({ ...base, listen: listen() }));
  t.same(same.keptListeners.map((k) => k.policyChanged), [false], 'no change');
  const capped = planReload(before, await validateOptions({ listen: listen(), backends: ['127.0.0.1:9,maxconn=2'] }));
  t.same(capped.keptListeners[0].backends.changed.map((c) => [c.before.maxConnections, c.after.maxConnections]), [[0, 2]], 'a backend whose limit changed');
});
