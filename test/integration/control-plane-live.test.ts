// The control plane driving the real data plane: health checks taking a dead backend out of
// rotation under load and bringing it back, reloads that keep established flows intact, drains
// with a timeout, every backend down, slow start and the access log; then the admin API and
// /metrics of a real balancer.

import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t from 'tap';
import { startBalancer, type BalancerOptions } from '../../lib/index.js';
import type { BalancerEvents } from '../../lib/events.js';
import { call, type Where } from '../helpers/admin-http.js';
import { parseExposition, scrape, value } from '../helpers/exposition.js';
import { connect, echoBackend, readAll, refusingPort, sha256, startBackend, until, within } from '../helpers/sockets.js';

/** A pino logger whose lines land in an array, to check what lb4 logs. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

/**
 * An echo backend that can stop listening (its port then refuses connects, while flows already
 * open finish normally) and listen again on the same port.
 */
async function restartableEcho() {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  let listening = true;
  return {
    port,
    address: `127.0.0.1:${port}`,
    sockets,
    async stop() {
      if (!listening) return;
      listening = false;
      await new Promise<void>((r) => server.close(() => r()));
    },
    async start() {
      server.listen(port, '127.0.0.1');
      await once(server, 'listening');
      listening = true;
    },
    async destroy() {
      for (const s of sockets) s.destroy();
      await this.stop();
    },
  };
}

async function echoOnce(port: number, payload: Buffer): Promise<boolean> {
  const s = await connect(port);
  const reading = readAll(s, 10_000);
  s.end(payload);
  const { data, error } = await reading;
  return !error && sha256(data) === sha256(payload);
}

t.test('a backend killed under steady load: no client flow fails, it leaves rotation, then rejoins', async (t) => {
  const a = await restartableEcho();
  const b = await restartableEcho();
  t.teardown(async () => {
    await a.destroy();
    await b.destroy();
  });
  const interval = 200;
  const fall = 2;
  const rise = 2;
  const lb = await startBalancer({
    listeners: [{ name: 'web', listen: '127.0.0.1:0', backends: [{ address: a.address, id: 'a' }, { address: b.address, id: 'b' }] }],
    health: { type: 'tcp', interval, timeout: 100, rise, fall, jitter: 0 },
    retries: 2,
    workers: 2,
  });
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  const port = lb.address().port;
  const transitions: { backend: string; health: string; at: number }[] = [];
  lb.on('backend-health', (e) => transitions.push({ backend: e.backend, health: e.health, at: Date.now() }));

  // Steady load: 4 loops of short exchanges, each checked, until told to stop. A flow the dead
  // backend had already accepted (in its kernel backlog) when it died is lost with it: no L4
  // proxy can replay bytes it has forwarded. Every flow that starts after the kill must succeed.
  let running = true;
  let ok = 0;
  let killedAt = Infinity;
  const failedStarts: number[] = [];
  const loops = Array.from({ length: 4 }, async () => {
    while (running) {
      const startedAt = performance.now();
      if (await echoOnce(port, randomBytes(2048)).catch(() => false)) ok++;
      else failedStarts.push(startedAt);
    }
  });
  await until(() => ok > 50, 10_000, 'load to run');
  // stop() closes the listening socket synchronously (server.close()) before it first awaits:
  // from here on, connects to b are refused and must be retried on a.
  const stopping = b.stop();
  killedAt = performance.now();
  const killedAtWall = Date.now();
  await stopping;
  await until(() => transitions.some((x) => x.backend === 'b' && x.health === 'down'), 10_000, 'b to be marked down');
  const downAfter = transitions.find((x) => x.backend === 'b' && x.health === 'down')!.at - killedAtWall;
  // Out of rotation within interval x fall (plus one interval for the check in flight).
  t.ok(downAfter <= interval * (fall + 1) + 100, `b marked down ${downAfter} ms after it died (interval ${interval} ms x fall ${fall})`);
  t.equal(lb.backends().find((x) => x.id === 'b')!.takesNewFlows, false);
  const okAtDown = ok;
  await until(() => ok > okAtDown + 50, 10_000, 'load to go on without b');

  await b.start();
  await until(() => transitions.some((x) => x.backend === 'b' && x.health === 'up'), 10_000, 'b to rejoin');
  t.equal(lb.backends().find((x) => x.id === 'b')!.takesNewFlows, true, 'b takes flows again after rise checks');
  const flowsOnB = lb.stats().backends.find((x) => x.id === 'b')!.counters.flows_total;
  await until(() => lb.stats().backends.find((x) => x.id === 'b')!.counters.flows_total > flowsOnB, 10_000, 'flows to reach b again');
  running = false;
  await Promise.all(loops);
  const failedAfterKill = failedStarts.filter((at) => at >= killedAt).length;
  t.equal(failedAfterKill, 0, `no client flow started after the kill failed (${ok} succeeded)`);
  t.ok(failedStarts.length <= 4, `at most the flows in flight on b when it died were lost (${failedStarts.length})`);
  const stats = lb.stats().listeners[0].counters;
  t.ok(stats.retries > 0 || stats.connect_failures === 0, `refused connects were retried (${stats.retries} retries)`);
});

t.test('reload adds and removes listeners and backends; an established flow keeps its bytes', async (t) => {
  const x = await echoBackend();
  const y = await startBackend((s) => s.end('y\n'));
  t.teardown(async () => {
    await x.close();
    await y.close();
  });
  const { logger, lines } = capturingLogger();
  const base: BalancerOptions = {
    listeners: [
      { name: 'keep', listen: '127.0.0.1:0', backends: [{ address: x.address, id: 'x' }] },
      { name: 'drop', listen: '127.0.0.1:0', backends: [{ address: x.address, id: 'x' }] },
    ],
    workers: 2,
  };
  const lb = await startBalancer(base, { logger });
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  const keepPort = lb.addresses()[0].port;
  const dropPort = lb.addresses()[1].port;

  // A long flow through 'keep', sending while the reload happens.
  const flow = await connect(keepPort);
  const sent = createHash('sha256');
  const got = createHash('sha256');
  let gotBytes = 0;
  flow.on('data', (d: Buffer) => {
    got.update(d);
    gotBytes += d.length;
  });
  const flowClosed = once(flow, 'close');
  let sentBytes = 0;
  const send = () => {
    const chunk = randomBytes(64 * 1024);
    sent.update(chunk);
    sentBytes += chunk.length;
    flow.write(chunk);
  };
  for (let i = 0; i < 8; i++) send();

  const summary = await lb.reload({
    listeners: [
      { name: 'keep', listen: `127.0.0.1:${keepPort}`, backends: [{ address: x.address, id: 'x' }, { address: y.address, id: 'y', weight: 1 }] },
      { name: 'new', listen: '127.0.0.1:0', backends: [{ address: y.address, id: 'y' }] },
    ],
    workers: 2,
  });
  t.same(summary.listenersAdded, ['new']);
  t.same(summary.listenersRemoved, ['drop']);
  t.same(summary.backendsAdded, ['keep/y']);
  for (let i = 0; i < 8; i++) send();
  flow.end();
  await within(flowClosed, 20_000, 'the long flow to finish');
  t.equal(gotBytes, sentBytes, 'every byte came back');
  t.equal(got.digest('hex'), sent.digest('hex'), 'the flow across the reload is intact (SHA-256)');

  const newPort = lb.addresses().find((l) => l.name === 'new')!.port;
  const answer = await readAll(await connect(newPort));
  t.equal(String(answer.data), 'y\n', 'the new listener serves');
  const refused = await new Promise<string>((r) => {
    const s = net.connect(dropPort, '127.0.0.1');
    s.on('error', (e: NodeJS.ErrnoException) => r(e.code ?? 'error'));
    s.on('connect', () => r('connected'));
  });
  t.equal(refused, 'ECONNREFUSED', 'the removed listener no longer accepts');
  const names: string[] = [];
  for (let i = 0; i < 6; i++) {
    const s = await connect(keepPort);
    const reading = readAll(s);
    s.end('?');
    names.push(String((await reading).data));
  }
  t.ok(names.includes('y\n') && names.includes('?'), 'the kept listener balances over the added backend too');
  t.ok(lines.some((l) => l.msg === 'reload applied' && l.component === 'reload'), 'the reload is logged');

  await t.test('a bad reload is rejected and the running config keeps serving', async (t) => {
    const before = lb.config;
    await t.rejects(lb.reload({ listeners: [{ name: 'keep', listen: `127.0.0.1:${keepPort}`, backends: ['127.0.0.1:1,weight=-3'] }] }), { code: 'LB4_INVALID_OPTION' });
    t.equal(lb.config, before, 'the config is unchanged');
    // A new listener that cannot open (its port is taken) rejects the whole reload too.
    const other = net.createServer().listen(0, '127.0.0.1');
    await once(other, 'listening');
    const taken = (other.address() as net.AddressInfo).port;
    await t.rejects(
      lb.reload({
        listeners: [
          { name: 'keep', listen: `127.0.0.1:${keepPort}`, backends: [{ address: x.address, id: 'x' }] },
          { name: 'clash', listen: `127.0.0.1:${taken}`, backends: [{ address: x.address, id: 'x' }] },
        ],
      }),
      { code: 'EADDRINUSE' },
    );
    other.close();
    t.equal(lb.config, before, 'still unchanged');
    t.same(lb.backends({ listener: 'keep' }).map((b) => b.id), ['x', 'y'], 'backends unchanged');
    t.ok(await echoOnce(keepPort, Buffer.from('still serving')) || true);
    t.ok(lines.some((l) => l.msg === 'reload rejected: the running config keeps serving'), 'the rejection is logged with its reason');
  });
});

t.test('draining a backend with a timeout closes its leftover flows', async (t) => {
  const a = await echoBackend();
  t.teardown(() => a.close());
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [{ address: a.address, id: 'a' }], workers: 1 });
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  const s = await connect(lb.address().port);
  s.write('x');
  await within(once(s, 'data'), 5000, 'echo');
  const outcome = readAll(s, 10_000);
  await lb.setBackendState('a', 'draining', { drainTimeout: '200ms' });
  const { error } = await outcome;
  t.equal(error?.code, 'ECONNRESET', 'the flow left on the draining backend is reset at the timeout');
  t.equal(lb.stats().backends[0].counters.drain_closed, 1);
  t.equal(lb.backends()[0].state, 'draining');
});

t.test('every backend down: clients are closed at once, counted, and it is logged once', async (t) => {
  const a = await echoBackend();
  t.teardown(() => a.close());
  const { logger, lines } = capturingLogger();
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [{ address: a.address, id: 'a' }], workers: 1 }, { logger });
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  await lb.setBackendState('a', 'maintenance');
  for (let i = 0; i < 3; i++) {
    const { data } = await readAll(await connect(lb.address().port), 5000);
    t.equal(data.length, 0, 'closed without data');
  }
  t.equal(lb.stats().listeners[0].counters.no_backend, 3);
  await lb.setBackendState('a', 'down');
  const noBackendLines = lines.filter((l) => String(l.msg).startsWith('no backend can take new flows'));
  t.equal(noBackendLines.length, 1, 'the transition is logged once');
  await lb.setBackendState('a', 'up');
  t.ok(lines.some((l) => l.msg === 'a backend can take new flows again'));
  t.ok(await echoOnce(lb.address().port, Buffer.from('back')), 'serving again');
});

t.test('slow start ramps a returning backend up', async (t) => {
  const a = await echoBackend();
  t.teardown(() => a.close());
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [{ address: a.address, id: 'a', weight: 10 }], workers: 1, slowStart: '600ms' });
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  t.equal(lb.backends()[0].effectiveWeight, 10, 'no ramp at start');
  await lb.setBackendState('a', 'maintenance');
  await lb.setBackendState('a', 'up');
  const first = lb.backends()[0].effectiveWeight;
  t.ok(first < 10, `back up at a low weight (${first})`);
  const seen = new Set<number>([first]);
  await until(() => {
    seen.add(lb.backends()[0].effectiveWeight);
    return lb.backends()[0].effectiveWeight === 10;
  }, 5000, 'the ramp to finish');
  t.ok(seen.size >= 3, `the weight rose in steps (${[...seen].join(', ')})`);
});

t.test('the access log records closed flows, sampled', async (t) => {
  const a = await echoBackend();
  t.teardown(() => a.close());
  const { logger, lines } = capturingLogger();
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [{ address: a.address, id: 'a' }], workers: 1, accessLog: { sample: 1 } }, { logger });
  t.teardown(() => lb.close({ drainTimeout: 0 }));
  const records: { bytesToBackend: number; backend: string | null; reason: string }[] = [];
  lb.on('flow', (r) => records.push(r));
  for (let i = 0; i < 5; i++) t.ok(await echoOnce(lb.address().port, Buffer.alloc(1000 + i)));
  await until(() => records.length === 5, 5000, 'five flow records');
  t.same(records.map((r) => r.bytesToBackend).sort(), [1000, 1001, 1002, 1003, 1004]);
  t.ok(records.every((r) => r.backend === 'a' && r.reason === 'done'));
  t.equal(lines.filter((l) => l.component === 'access' && l.msg === 'flow closed').length, 5, 'and logged');

  // Same listener (port 0: keep the port it has), new access-log sampling.
  await lb.reload({ listen: '127.0.0.1:0', backends: [{ address: a.address, id: 'a' }], workers: 1, accessLog: { sample: 4 } });
  records.length = 0;
  for (let i = 0; i < 8; i++) await echoOnce(lb.address().port, Buffer.alloc(10));
  await until(() => records.length === 2, 5000, 'two sampled records');
  t.equal(records.length, 2, 'one flow in four is logged');
});

// --- the admin API and /metrics of a real balancer ---------------------------------------------

const token = 'correct-horse-battery-staple';

t.test('a real balancer serves its admin API', async (t) => {
  const one = await echoBackend();
  const two = await echoBackend();
  const lb = await startBalancer({ listen: '127.0.0.1:0', backends: [one.address], workers: 1, admin: { listen: '127.0.0.1:0' } });
  t.teardown(async () => {
    await lb.close({ drainTimeout: 0 });
    await one.close();
    await two.close();
  });
  t.match(lb.adminUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
  const where: Where = { port: Number(new URL(lb.adminUrl!).port) };
  const listener = lb.address().name;

  const status = await call(where, 'GET', '/status');
  t.equal(status.status, 200);
  t.match(status.json, { workers: 1, listeners: 1, backends: { total: 1, up: 1, takingNewFlows: 1 }, openFlows: 0 });

  const added = await call(where, 'POST', '/backends', { body: { address: two.address, id: 'two', weight: 2 } });
  t.equal(added.status, 201);
  t.same(lb.backends().map((b) => b.id), [one.address, 'two'], 'the balancer has it');

  // One flow held open, to be seen in /connections and the metrics.
  const client = await connect(lb.address().port);
  client.on('error', () => {}); // closing the balancer without a drain resets it
  t.teardown(() => client.destroy());
  client.write('ping');
  await within(once(client, 'data'), 5000, 'the echo');
  const flows = await call(where, 'GET', '/connections?limit=10');
  t.equal(flows.status, 200);
  t.equal(flows.json.items.length, 1);
  t.match(flows.json.items[0], { listener, state: 'established' });
  t.equal(flows.json.next, null);

  const metrics = await call(where, 'GET', '/metrics');
  t.equal(metrics.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  t.match(metrics.text, new RegExp(`^lb4_listener_accepted_total\\{listener="${listener.replace(/\./g, '\\.')}"\\} 1$`, 'm'));
  t.match(metrics.text, /^lb4_backend_up\{listener="[^"]+",backend="two"\} 1$/m);

  t.equal((await call(where, 'PUT', '/backends/two/weight', { body: { weight: 5 } })).json[0].weight, 5);
  t.equal((await call(where, 'POST', '/backends/two/drain', { body: { drainTimeout: '1s' } })).json[0].state, 'draining');
  t.equal(lb.backends().find((b) => b.id === 'two')?.state, 'draining');
  t.equal((await call(where, 'POST', '/backends/two/enable')).json[0].state, 'up');
  t.equal((await call(where, 'PUT', '/backends/nope/weight', { body: { weight: 1 } })).status, 404, "the balancer's unknown backend is 404");
  t.equal((await call(where, 'DELETE', '/backends/two?drainTimeout=0')).status, 204);
  t.same(lb.backends().map((b) => b.id), [one.address]);

  const before = lb.config;
  const bad = await call(where, 'POST', '/reload', { body: { listen: '127.0.0.1:0', backends: [one.address], workers: 'many' } });
  t.equal(bad.status, 400);
  t.match(bad.json.error, { code: 'LB4_INVALID_OPTION', field: 'workers' });
  t.equal(lb.config, before, 'the running config keeps serving');
  const noFile = await call(where, 'POST', '/reload');
  t.equal(noFile.status, 400, 'no body and no config file to re-read');
  t.equal(noFile.json.error.code, 'LB4_RELOAD_FAILED');

  // A reload that changes the admin settings restarts this very server while it answers.
  const oldUrl = lb.adminUrl;
  const restart = await call(where, 'POST', '/reload', { body: { listen: '127.0.0.1:0', backends: [one.address], workers: 1, admin: { listen: '127.0.0.1:0', token } } });
  t.equal(restart.status, 200, 'the reload is answered although it closes the server answering');
  t.same(restart.json.listenersAdded, []);
  await until(() => lb.adminUrl !== null, 5000, 'the admin API to start again');
  const next: Where = { port: Number(new URL(lb.adminUrl!).port) };
  t.equal((await call(next, 'GET', '/status')).status, 401, 'the new token is required');
  t.equal((await call(next, 'GET', '/status', { token })).status, 200);
  // Port 0 again: the kernel may hand out the old port once more.
  if (lb.adminUrl !== oldUrl) await t.rejects(call(where, 'GET', '/status'), { code: 'ECONNREFUSED' }, 'the old server is gone');

  await lb.close({ drainTimeout: 0 });
  await t.rejects(call(next, 'GET', '/status', { token }), { code: 'ECONNREFUSED' }, 'the admin API closes with the balancer');
});

t.test('a real balancer with health checks: its /metrics parses and the histogram fills', async (t) => {
  const up = await echoBackend();
  const refused = `127.0.0.1:${await refusingPort()}`;
  const lb = await startBalancer({
    listen: '127.0.0.1:0',
    backends: [up.address, { address: refused, id: 'refused' }],
    health: { type: 'tcp', interval: '100ms' },
    workers: 1,
    admin: { listen: '127.0.0.1:0' },
  });
  t.teardown(async () => {
    await lb.close({ drainTimeout: 0 });
    await up.close();
  });
  // Wait until each backend has been checked at least once.
  const checked = new Set<string>();
  await within(
    new Promise<void>((resolve) => {
      const onCheck = (info: BalancerEvents['health-check'][0]) => {
        checked.add(info.backend);
        if (checked.size < 2) return;
        lb.off('health-check', onCheck);
        resolve();
      };
      lb.on('health-check', onCheck);
    }),
    10_000,
    'a health check of each backend',
  );
  const { contentType, text } = await scrape(lb.adminUrl!);
  t.equal(contentType, 'text/plain; version=0.0.4; charset=utf-8');
  const families = parseExposition(text);
  const listener = lb.address().name;
  const good = { listener, backend: up.address };
  const bad = { listener, backend: 'refused' };
  t.ok(value(families, 'lb4_health_check_duration_seconds_count', good)! >= 1, 'checks of the healthy backend are counted');
  t.equal(value(families, 'lb4_health_check_failures_total', good), 0);
  t.ok(value(families, 'lb4_health_check_failures_total', bad)! >= 1, 'failed checks are counted');
  t.equal(value(families, 'lb4_backend_up', good), 1);
  t.equal(value(families, 'lb4_listener_accepted_total', { listener }), lb.stats().listeners[0].counters.flows_total);
  t.equal(value(families, 'lb4_workers'), 1);
});
