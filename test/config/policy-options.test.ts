// The traffic policy options: defaults, top-level values as every listener's default and a
// listener's own, backend maxConnections (object and CLI forms), bad values with the field named,
// what the engine gets, and a reload that marks a kept listener's policy changed (and a backend's
// limit) only when it did. IPv4-mapped IPv6 networks taken for the IPv4 clients they name; host
// bits, a queue nothing can fill and an allow list no client can match refused naming the field,
// by check-config and start alike; a reload's summary naming the listeners whose policy changed.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { describePolicy } from '../../lib/config/listener-policy.js';
import { parseBackendSpec, validateOptions } from '../../lib/config/validate.js';
import { nativeListener } from '../../lib/engine/open.js';
import { planReload } from '../../lib/reload/plan.js';
import { buildDist, killChildren, onlyLine, refusedByBoth, runCli } from '../helpers/cli.js';
import { startFake } from '../helpers/fake-balancer.js';

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
  // A queue needs a backend with a cap, in both configs, so only the policy differs.
  const capped5 = { backends: ['127.0.0.1:9,maxconn=5'] };
  const queued = await validateOptions({ ...capped5, listen: listen() });
  for (const change of [{ allow: ['127.0.0.1'] }, { deny: '::1' }, { maxConnections: 3 }, { maxConnectionsPerSource: 1 }, { connectionRatePerSource: 1 }, { queueSize: 1 }, { queueTimeout: '1s' }]) {
    const plan = planReload(queued, await validateOptions({ ...capped5, listen: listen(change) as never }));
    t.same([plan.removedListeners, plan.addedListeners, plan.keptListeners.map((k) => k.policyChanged)], [[], [], [true]], JSON.stringify(change));
  }
  const same = planReload(before, await validateOptions({ ...base, listen: listen() }));
  t.same(same.keptListeners.map((k) => k.policyChanged), [false], 'no change');
  const capped = planReload(before, await validateOptions({ listen: listen(), backends: ['127.0.0.1:9,maxconn=2'] }));
  t.same(capped.keptListeners[0].backends.changed.map((c) => [c.before.maxConnections, c.after.maxConnections]), [[0, 2]], 'a backend whose limit changed');
});

t.test('an IPv6 network over IPv4-mapped addresses is taken for the IPv4 clients it names', async (t) => {
  const denied = async (deny: string[]) => (await validateOptions({ listen: ':0', backends: ['127.0.0.1:9'], deny })).listeners[0].policy.deny;
  t.same(await denied(['::ffff:127.0.0.1']), ['127.0.0.1/32'], 'one mapped address: that IPv4 host');
  t.same(await denied(['::ffff:10.0.0.0/104', '::ffff:c0a8:0/112']), ['10.0.0.0/8', '192.168.0.0/16'], 'a mapped network: the IPv4 network /(n-96)');
  t.same(await denied(['::ffff:0:0/96']), ['0.0.0.0/0'], 'all of ::ffff:0:0/96: every IPv4 client');
  t.same(await denied(['::/0']), ['::/0', '0.0.0.0/0'], '::/0 holds every IPv4 client too');
  t.same(await denied(['::/80']), ['::/80', '0.0.0.0/0'], 'as does any network holding all of ::ffff:0:0/96');
  t.same(await denied(['::/81', '2001:db8::/32', '::ffff:0:0/97']), ['::/81', '2001:db8::/32', '0.0.0.0/1'], 'a network that holds none or part of it is taken as written, or for the part');
  t.same(await denied(['::/0', '0.0.0.0/0', '::ffff:1.2.3.4', '1.2.3.4']), ['::/0', '0.0.0.0/0', '1.2.3.4/32'], 'no network twice');
  const config = await validateOptions({ listen: ':0', backends: ['127.0.0.1:9'], allow: '::ffff:127.0.0.0/120', acceptProxy: '::ffff:127.0.0.1' });
  const l = config.listeners[0];
  t.same(nativeListener(l).policy?.allow, ['127.0.0.0/24'], 'the engine gets the IPv4 network');
  t.same(l.acceptProxy, ['127.0.0.1/32'], 'trusted PROXY sources likewise');
  t.same(describePolicy(l.policy), ['allows 127.0.0.0/24'], 'and check-config shows what is judged');
});

t.test('refused naming the field: host bits set, a queue no flow can enter, an allow list no client can match', async (t) => {
  const backends = ['127.0.0.1:9'];
  const listener = (extra: object) => ({ listeners: [{ listen: '127.0.0.1:0', backends, ...extra }] });
  const cases: Array<[object, string, RegExp]> = [
    [{ ...base, deny: '127.0.0.1/0' }, 'deny', /^deny: 127\.0\.0\.1\/0 has host bits set: did you mean 0\.0\.0\.0\/0\?$/],
    [{ ...base, allow: ['10.0.0.0/8', '10.0.0.1/8'] }, 'allow[1]', /10\.0\.0\.1\/8 has host bits set: did you mean 10\.0\.0\.0\/8\?/],
    [listener({ deny: ['2001:db8::1/32'] }), 'listeners[0].deny[0]', /did you mean 2001:db8::\/32\?/],
    [listener({ deny: ['::ffff:10.0.0.1/104'] }), 'listeners[0].deny[0]', /did you mean ::ffff:10\.0\.0\.0\/104\?/],
    [{ ...base, acceptProxy: '10.1.2.3/16' }, 'acceptProxy', /did you mean 10\.1\.0\.0\/16\?/],
    [{ ...base, queueSize: 5 }, 'queueSize', /no flow of 127\.0\.0\.1:0 can ever queue: .*none of its backends has one/],
    [{ ...base, queueSize: 5, maxConnections: 10 }, 'queueSize', /can ever queue/],
    [listener({ queueSize: 5 }), 'listeners[0].queueSize', /can ever queue/],
    [{ ...base, allow: ['::1', '2001:db8::/32'] }, 'allow', /no client of 127\.0\.0\.1:0 can match: it takes IPv4 clients only and the list holds only IPv6 networks/],
    [{ listeners: [{ listen: '[::1]:0', allow: '10.0.0.0/8', backends }] }, 'listeners[0].allow', /takes IPv6 clients only and the list holds only IPv4 networks/],
    [{ allow: '10.0.0.0/8', listeners: [{ listen: '127.0.0.1:0', backends }, { listen: '[::1]:0/udp', backends }] }, 'allow', /no client of \[::1\]:0\/udp can match/],
  ];
  for (const [options, field, message] of cases) {
    const err = await validateOptions(options as never).catch((e: unknown) => e);
    t.match(err, { code: 'LB4_INVALID_OPTION', field, message }, `${field}: ${(err as Error).message}`);
  }
  // What still passes: a dual-stack listener takes both families, ::/0 holds IPv4 clients, a capped backend takes a queue.
  t.ok(await validateOptions({ listen: ':0', backends, allow: '2001:db8::/32' }));
  t.ok(await validateOptions({ ...base, allow: '::/0' }));
  t.ok(await validateOptions({ ...base, allow: '::ffff:127.0.0.1' }));
  t.ok(await validateOptions({ listeners: [{ listen: '127.0.0.1:0', queueSize: 5, backends: ['127.0.0.1:9', '127.0.0.1:10,maxconn=3'] }] }));
});

t.test('check-config and start refuse these alike: one line naming the flag or field, exit 2', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lb4-policy-ops-'));
  t.teardown(() => {
    killChildren();
    rmSync(dir, { recursive: true, force: true });
  });
  await buildDist();
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  const cases = [
    { path: file('bits.yaml', 'listen: 127.0.0.1:0\nbackends: [127.0.0.1:9]\ndeny: [10.0.0.1/8]\n'), says: /bits\.yaml: deny\[0\]: 10\.0\.0\.1\/8 has host bits set: did you mean 10\.0\.0\.0\/8\?$/ },
    { path: file('queue.yaml', 'listen: 127.0.0.1:0\nbackends: [127.0.0.1:9]\nmaxConnections: 10\nqueueSize: 5\n'), says: /queue\.yaml: queueSize: no flow of 127\.0\.0\.1:0 can ever queue/ },
    { path: file('family.yaml', 'listeners:\n  - { listen: "127.0.0.1:0", allow: ["2001:db8::/32"], backends: [127.0.0.1:9] }\n'), says: /family\.yaml: listeners\[0\]\.allow: no client of 127\.0\.0\.1:0 can match/ },
  ];
  await refusedByBoth(t, cases);
  const flags = [
    { args: ['--deny', '127.0.0.1/0'], says: /^lb4: --deny: 127\.0\.0\.1\/0 has host bits set: did you mean 0\.0\.0\.0\/0\?$/ },
    { args: ['--queue-size', '5'], says: /^lb4: --queue-size: no flow of 127\.0\.0\.1:0 can ever queue/ },
    { args: ['--allow', '::1'], says: /^lb4: --allow: no client of 127\.0\.0\.1:0 can match/ },
  ];
  for (const f of flags) {
    const run = await runCli(['start', '--listen', '127.0.0.1:0', '--backend', '127.0.0.1:9', ...f.args]);
    t.equal(run.exit.code, 2, f.args.join(' '));
    t.match(onlyLine(t, run.stderr), f.says);
  }
  const mapped = await runCli(['check-config', file('mapped.yaml', 'listen: ":0"\nbackends: [127.0.0.1:9]\ndeny: ["::ffff:127.0.0.2", "::/0"]\n')]);
  t.equal(mapped.exit.code, 0);
  t.match(mapped.stdout, /denies 127\.0\.0\.2\/32, ::\/0, 0\.0\.0\.0\/0/, 'check-config shows the networks IPv4 clients are judged by');
});

t.test('a reload reports the listeners whose access lists or limits changed, and what changed', async (t) => {
  const options = (web: object) => ({
    listeners: [
      { name: 'web', listen: '127.0.0.1:0', backends: ['127.0.0.1:9,maxconn=4'], ...web },
      { name: 'api', listen: '127.0.0.1:0', backends: ['127.0.0.1:10'] },
    ],
  });
  const { lb, engine, logged } = await startFake(t, options({}));
  const summary = await lb.reload(options({ allow: '127.0.0.0/8', queueSize: 2 }));
  t.same(summary.policyChanged, ['web: allow, limits']);
  t.same(logged('reload applied').at(-1)?.policyChanged, ['web: allow, limits'], 'the one log line says so');
  t.match(engine.calls.filter((c) => c.method === 'setListenerPolicy'), [{ slot: 0, policy: { allow: ['127.0.0.0/8'], queueSize: 2 } }], 'and the engine was sent it');
  t.same((await lb.reload(options({ allow: '127.0.0.0/8', queueSize: 2, deny: '127.0.0.2' }))).policyChanged, ['web: deny']);
  t.same((await lb.reload(options({ allow: '127.0.0.0/8', queueSize: 2, deny: '127.0.0.2' }))).policyChanged, [], 'the same file again: none');
});
