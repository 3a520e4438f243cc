// The admin API under generated requests over real HTTP: random methods, paths, percent-escapes,
// query parameters and JSON bodies against a balancer on the fake engine (the real control plane,
// no data plane). Whatever arrives, the answer is never a 500, an error is JSON with an lb4 code,
// and the server keeps answering. Every address in a generated body is on loopback, and names go
// to a stub resolver, so nothing leaves this machine even when a health check is switched on.

import fc from 'fast-check';
import t from 'tap';
import { call, type Where } from '../helpers/admin-http.js';
import { startFake } from '../helpers/fake-balancer.js';
import { refuseDnsLookups } from './no-dns.js';

const scale = Number(process.env.LB4_FUZZ_SCALE ?? 1);
t.teardown(refuseDnsLookups());

const loopbackAddress = fc.oneof(
  fc.tuple(fc.integer({ min: 1, max: 254 }), fc.integer({ min: 0, max: 70_000 })).map(([last, port]) => `127.0.0.${last}:${port}`),
  fc.integer({ min: 0, max: 70_000 }).map((port) => `[::1]:${port}`),
  fc.constantFrom('localhost:80', 'not-a-host:80', ':80', '127.0.0.1', '[::1]', '10.0.0.1x:80', ''),
);
const value = fc.oneof(fc.string({ maxLength: 12 }), fc.integer({ min: -5, max: 1e6 }), fc.double(), fc.boolean(), fc.constant(null), fc.constantFrom('1s', '0ms', '1e15', '-1', 'up', 'down', 'draining', 'maintenance'));
const body = fc.oneof(
  fc.record({ address: loopbackAddress, id: fc.string({ maxLength: 10 }), weight: value, state: value, drainTimeout: value, listener: fc.string({ maxLength: 6 }) }, { requiredKeys: [] }),
  fc.record({ listen: loopbackAddress, backends: fc.array(fc.oneof(loopbackAddress, fc.record({ address: loopbackAddress, weight: value }, { requiredKeys: [] })), { maxLength: 3 }), algorithm: value, workers: value }, { requiredKeys: [] }),
  fc.anything({ maxDepth: 2 }).map((v) => JSON.parse(JSON.stringify(v ?? null)) as unknown),
  fc.constant(undefined),
);
const segment = fc.oneof(
  fc.constantFrom('backends', 'listeners', 'status', 'connections', 'reload', 'cluster', 'metrics', 'weight', 'state', 'drain', 'enable', 'b1', 'b2', '127.0.0.1%3A9001', '%', '%zz', '%00', '..', '', 'x'.repeat(300)),
  fc.string({ maxLength: 8 }).map(encodeURIComponent),
);
const backendId = fc.oneof(fc.constantFrom('b2', '127.0.0.1%3A9001', '127.0.0.1:9001', '%zz', 'nope'), fc.string({ maxLength: 8 }).map(encodeURIComponent));
const path = fc.oneof(
  // The routes lb4 has, with ids that exist, do not, or are malformed.
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.constantFrom('/', '/status', '/listeners', '/backends', '/backends/:id', '/backends/:id/weight', '/backends/:id/state', '/backends/:id/drain', '/backends/:id/enable', '/connections', '/reload', '/cluster', '/metrics'), backendId)
      .map(([route, id]) => route.replace(':id', id)),
  },
  { weight: 1, arbitrary: fc.array(segment, { minLength: 0, maxLength: 4 }).map((s) => `/${s.join('/')}`) },
);
const query = fc.array(
  fc.tuple(fc.constantFrom('listener', 'backend', 'limit', 'offset', 'drainTimeout', 'x'), fc.oneof(fc.constantFrom('0', '1', '-1', '1e15', '1.5', 'abc', '', '9007199254740993', 'main', '1s'), fc.string({ maxLength: 6 }))),
  { maxLength: 3 },
);
const request = fc.record({ method: fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'), path, query, body });

t.test('generated admin requests never get a 500 and always get an lb4 error code when refused', async (t) => {
  const rig = await startFake(t, { listen: '127.0.0.1:0', backends: ['127.0.0.1:9001', { address: '127.0.0.1:9002', id: 'b2' }], admin: { listen: '127.0.0.1:0' } });
  const where: Where = { port: Number(new URL(rig.lb.adminUrl!).port) };
  const numRuns = Math.round(300 * scale);
  const statuses = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(request, async ({ method, path, query, body }) => {
      const search = new URLSearchParams(query).toString();
      // A reload body never moves the admin API itself: the test would lose its server.
      const sent = body !== null && typeof body === 'object' && 'admin' in body ? { ...body, admin: undefined } : body;
      const reply = await call(where, method, search ? `${path}?${search}` : path, sent === undefined ? {} : { body: sent });
      statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
      if (reply.status >= 500) throw new Error(`${method} ${path}?${search} answered ${reply.status}: ${reply.text.slice(0, 300)}`);
      if (reply.status >= 400 && method !== 'HEAD' && !/^LB4_[A-Z_]+$/.test(String(reply.json?.error?.code ?? reply.json?.code))) {
        throw new Error(`${method} ${path} answered ${reply.status} without an lb4 error code: ${reply.text.slice(0, 300)}`);
      }
    }),
    { numRuns },
  );
  t.comment(`fuzz cases: ${numRuns}`);
  t.pass(`${numRuns} generated requests; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort(([a], [b]) => a - b)))}`);
  t.ok([...statuses.keys()].some((s) => s < 300), 'some generated requests were valid ones');
  const status = await call(where, 'GET', '/status');
  t.equal(status.status, 200, 'the admin API still answers');
  // Errors an operator's own requests cause are logged as such: a refused reload, and every backend
  // drained or removed (the generated requests do both). Anything else would be lb4's own fault.
  const operational = (l: { component?: string; msg: string }) => l.component === 'reload' || l.msg.startsWith('no backend can take new flows');
  t.same(rig.logs.filter((l) => l.level >= 50 && !operational(l)), [], 'nothing but refused reloads and backend-less listeners was logged as an error');
});
