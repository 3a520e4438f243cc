// The PROXY protocol options: top-level defaults and per-listener values, networks checked with
// errors that name the field, the engine's listener fields, and a reload that opens a listener
// anew when its PROXY protocol settings change.

import t from 'tap';
import { parseNetwork } from '../../lib/config/network.js';
import { validateOptions } from '../../lib/config/validate.js';
import { nativeListener, nativeOptions } from '../../lib/engine/open.js';
import { planReload } from '../../lib/reload/plan.js';

const base = { listen: '127.0.0.1:0', backends: ['127.0.0.1:9'] };

t.test('defaults: no header sent, none expected, a 5 s header timeout', async (t) => {
  const config = await validateOptions(base);
  t.equal(config.listeners[0].proxyProtocol, 'none');
  t.same(config.listeners[0].acceptProxy, []);
  t.equal(config.proxyHeaderTimeoutMs, 5000);
  const native = nativeOptions(config, false);
  t.equal(native.proxyHeaderTimeoutMs, 5000);
  t.match(native.listeners[0], { proxyProtocol: 0, acceptProxy: [] });
});

t.test('top-level values are every listener\'s default; a listener may set its own', async (t) => {
  const config = await validateOptions({
    proxyProtocol: 'v2',
    acceptProxy: ['10.0.0.0/8', '::1', '2001:db8::/32'],
    proxyHeaderTimeout: '250ms',
    listeners: [
      { listen: '127.0.0.1:0', name: 'inherits', backends: ['127.0.0.1:9'] },
      { listen: '127.0.0.1:0', name: 'own', proxyProtocol: 'v1', acceptProxy: '192.168.0.0/16', backends: ['127.0.0.1:9'] },
      { listen: '127.0.0.1:0', name: 'plain', proxyProtocol: 'none', acceptProxy: [], backends: ['127.0.0.1:9'] },
    ],
  });
  const [inherits, own, plain] = config.listeners;
  t.match(inherits, { proxyProtocol: 'v2', acceptProxy: ['10.0.0.0/8', '::1/128', '2001:db8::/32'] }, 'a bare address is its single-host network');
  t.match(own, { proxyProtocol: 'v1', acceptProxy: ['192.168.0.0/16'] });
  t.match(plain, { proxyProtocol: 'none', acceptProxy: [] });
  t.equal(config.proxyHeaderTimeoutMs, 250);
  t.match(nativeListener(own), { proxyProtocol: 1, acceptProxy: ['192.168.0.0/16'] });
  t.match(nativeListener(inherits), { proxyProtocol: 2 });
});

t.test('bad values name their field', async (t) => {
  const cases: Array<[object, string, RegExp]> = [
    [{ ...base, proxyProtocol: 'v3' }, 'proxyProtocol', /must be one of none, v1, v2/],
    [{ ...base, acceptProxy: ['10.0.0.0/8', '10.0.0.0/33'] }, 'acceptProxy[1]', /prefix \/33 is longer than an IPv4 address/],
    [{ ...base, acceptProxy: 'example.com/8' }, 'acceptProxy', /not a network/],
    [{ ...base, acceptProxy: [42] }, 'acceptProxy[0]', /must be a network/],
    [{ ...base, proxyHeaderTimeout: '2h' }, 'proxyHeaderTimeout', /between/],
    [{ listeners: [{ listen: '127.0.0.1:0', acceptProxy: ['::/129'], backends: ['127.0.0.1:9'] }] }, 'listeners[0].acceptProxy[0]', /IPv6/],
    [{ listeners: [{ listen: '127.0.0.1:0', proxyProtocol: 'v9', backends: ['127.0.0.1:9'] }] }, 'listeners[0].proxyProtocol', /one of/],
    [{ listeners: [{ listen: '127.0.0.1:0/udp', proxyProtocol: 'v1', backends: ['127.0.0.1:9'] }] }, 'listeners[0].proxyProtocol', /no UDP form/],
    [{ listen: '127.0.0.1:0/udp', backends: ['127.0.0.1:9'], acceptProxy: '10.0.0.0/8' }, 'acceptProxy', /TCP listeners only/],
    [{ listeners: [{ listen: '127.0.0.1:0', forward: 'nat', proxyProtocol: 'v1', backends: ['127.0.0.1:9'] }] }, 'listeners[0].proxyProtocol', /needs forward: proxy/],
    [{ listen: '127.0.0.1:0', forward: 'nat', backends: ['127.0.0.1:9'], acceptProxy: '10.0.0.0/8' }, 'acceptProxy', /needs forward: proxy/],
  ];
  for (const [options, field, message] of cases) {
    const err = await validateOptions(options as never).catch((e: unknown) => e);
    t.match(err, { code: 'LB4_INVALID_OPTION', field, message }, field);
  }
  t.equal(parseNetwork(' 10.1.0.0/16 ', 'x'), '10.1.0.0/16', 'spaces around a network are dropped');
});

t.test('a reload keeps the listener and marks its PROXY protocol settings changed, and only when they did', async (t) => {
  const before = await validateOptions({ ...base, listen: { listen: '127.0.0.1:7000', name: 'web' } });
  for (const change of [{ proxyProtocol: 'v1' }, { acceptProxy: ['127.0.0.1'] }]) {
    const after = await validateOptions({ ...base, listen: { listen: '127.0.0.1:7000', name: 'web', ...change } as never });
    const plan = planReload(before, after);
    t.same([plan.removedListeners, plan.addedListeners, plan.keptListeners.map((k) => k.proxyChanged)], [[], [], [true]], JSON.stringify(change));
  }
  const same = planReload(before, await validateOptions({ ...base, listen: { listen: '127.0.0.1:7000', name: 'web' } }));
  t.same(same.keptListeners.map((k) => k.proxyChanged), [false], 'no change');
});
